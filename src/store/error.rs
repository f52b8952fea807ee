//! Errors of the store: encoding, writing, locking, committing, and appends
//! that do not fit the store.

use crate::cli::error::ConfigError;
use crate::pipeline::read::error::ReadError;
use crate::system::stage::Panicked;
use std::path::PathBuf;

/// A boxed error from a library (zarrs, serde) kept as a source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An append that does not fit the existing store.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// The store is missing or was not written by zarrforge.
    #[error("cannot append to {path}: {reason}")]
    NotAppendable {
        /// Store.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The new files differ from the store.
    #[error("cannot append to {store}: {what}")]
    Mismatch {
        /// Store.
        store: PathBuf,
        /// What differs (with file and variable).
        what: String,
    },
    /// The inputs of a region write do not fit the store's region.
    #[error("cannot rewrite a region of {store}: {what}")]
    Region {
        /// Store.
        store: PathBuf,
        /// What does not fit (index, values, variable).
        what: String,
    },
    /// The new files hold coordinate values the store already has.
    #[error("{store} already holds '{dim}' = {value} from {file}: this append has probably run before (use --append-mode skip-existing to skip such files)")]
    AlreadyThere {
        /// Store.
        store: PathBuf,
        /// Dimension.
        dim: String,
        /// First value already there.
        value: f64,
        /// The file.
        file: PathBuf,
    },
    /// New values do not come after the store's last one.
    #[error("{file}: '{dim}' starts at {first}, before the end of {store} ({last}); appended steps must come after the existing ones")]
    NotAfter {
        /// Store.
        store: PathBuf,
        /// Dimension.
        dim: String,
        /// The file.
        file: PathBuf,
        /// Its first value.
        first: f64,
        /// Last value in the store.
        last: f64,
    },
}

/// Errors while encoding or writing the store.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// A filesystem operation on the store failed.
    #[error("{path}: {what}: {source}")]
    Io {
        /// Path in the store.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// OS error.
        source: std::io::Error,
    },
    /// Reading (decoding source chunks on an encoder thread) failed.
    #[error(transparent)]
    Read(Box<ReadError>),
    /// The filesystem is full or the quota is exhausted.
    #[error("{path}: {what}: {kind} ({source}); the store is resumable: free space, then run the same command with --resume")]
    NoSpace {
        /// Path in the store.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// Disk full or quota.
        kind: &'static str,
        /// OS error.
        source: std::io::Error,
    },
    /// An object-storage request failed (after its retries), or the store's
    /// URL or credentials are unusable.
    #[error("{url}: {what}: {source}")]
    Remote {
        /// The object's (or store's) URL.
        url: String,
        /// What was being done.
        what: &'static str,
        /// The client's error.
        source: BoxError,
    },
    /// A symbolic link inside a store that a run is about to write into
    /// again: zarrforge never writes through one.
    #[error("{0}: a symbolic link inside the store; zarrforge does not write through links: remove it, then run the same command again")]
    Link(PathBuf),
    /// zarrs refused the array metadata zarrforge built.
    #[error("array '{var}': zarrs refused the array metadata")]
    Array {
        /// Variable path.
        var: String,
        /// zarrs' (or serde's) error.
        source: BoxError,
    },
    /// A chunk could not be encoded (or a stored one decoded).
    #[error("array '{var}' chunk {chunk:?}: {what}")]
    Encode {
        /// Variable path.
        var: String,
        /// Chunk indices.
        chunk: Vec<u64>,
        /// What was being done.
        what: &'static str,
        /// zarrs' error.
        source: BoxError,
    },
    /// A stored unit and the values appended to it are of different kinds
    /// (strings and numbers).
    #[error(
        "array '{var}': the stored unit and the new values differ in kind (strings and numbers)"
    )]
    KindMismatch {
        /// Variable path.
        var: String,
    },
    /// A worker thread panicked.
    #[error(transparent)]
    Panic(#[from] Panicked),
    /// The encoder threads could not be started.
    #[error("cannot start encoder threads: {0}")]
    Threads(String),
    /// A step of the exchange between ranks failed.
    #[error("array '{var}': exchange between ranks: {source}")]
    Exchange {
        /// Variable path.
        var: String,
        /// What went wrong.
        source: crate::mpi::alltoall::StepError,
    },
    /// A rank received other bytes than the exchange plan gives it.
    #[error("array '{var}': rank {from} sent {got} bytes in an exchange step where the plan gives {want}: the ranks do not share one plan")]
    ExchangeMismatch {
        /// Variable path.
        var: String,
        /// The sending rank.
        from: usize,
        /// Bytes received.
        got: usize,
        /// Bytes the plan gives.
        want: usize,
    },
    /// The run was interrupted by a signal.
    #[error("interrupted by {0}: finished units are recorded; run the same command with --resume to finish")]
    Interrupted(&'static str),
}

impl WriteError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, what: &'static str, source: std::io::Error) -> Self {
        match source.raw_os_error() {
            Some(libc::ENOSPC) => Self::NoSpace {
                path: path.into(),
                what,
                kind: "disk full",
                source,
            },
            Some(libc::EDQUOT) => Self::NoSpace {
                path: path.into(),
                what,
                kind: "quota exceeded",
                source,
            },
            _ => Self::Io {
                path: path.into(),
                what,
                source,
            },
        }
    }
}

/// What opening a store can fail with: a refusal of the user's request, a
/// write that failed, or an append that does not fit.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The request does not fit the store found (exists, locked, ...).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Reading or writing the store failed.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// An append does not fit the store.
    #[error(transparent)]
    Append(Box<AppendError>),
}

impl From<AppendError> for StoreError {
    fn from(e: AppendError) -> Self {
        Self::Append(Box::new(e))
    }
}
