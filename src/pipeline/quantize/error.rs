//! What can be wrong with `--keepbits` for the sources at hand.

use std::path::PathBuf;

/// A `--keepbits` item that does not fit the sources or the store.
#[derive(Debug, thiserror::Error)]
pub enum QuantizeError {
    /// A named variable that no source holds.
    #[error("{file}: --keepbits {item}: no variable '{var}' (the float variables are: {floats})")]
    NoSuchVar {
        /// The first source file.
        file: PathBuf,
        /// The item as given.
        item: String,
        /// The name.
        var: String,
        /// The variables that could be rounded.
        floats: String,
    },
    /// A named variable that cannot be rounded.
    #[error("{file}: variable '{var}': --keepbits {item}: {why}")]
    CannotRound {
        /// The first source file.
        file: PathBuf,
        /// The variable.
        var: String,
        /// The item as given.
        item: String,
        /// Why not, in words.
        why: String,
    },
    /// An append or a region write that would round otherwise than the
    /// store was rounded.
    #[error("{store}: variable '{var}': {why}")]
    Store {
        /// The store.
        store: PathBuf,
        /// The variable.
        var: String,
        /// What differs, and what to do.
        why: String,
    },
}
