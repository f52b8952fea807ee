//! Lossy compression by `BitRound` (`--keepbits`), before the compressor:
//! [`choose`] (pure: which float variables keep how many mantissa bits, or
//! have them found from the data), [`analyse`] (`auto`: every rank counts
//! the bit pairs of its share of each variable in one read pass, the counts
//! are summed on rank 0, which picks the bits) and [`annotate`] (pure: the
//! CF 1.11 §8.4 quantization attributes, the container variable, and the
//! bits each stored array is rounded to, read back from them).
//!
//! The rounding itself is [`crate::model::bitround`], applied by the
//! encoder to every unit of a rounded array.

pub mod analyse;
pub mod annotate;
pub mod choose;
pub mod error;

pub use annotate::{annotate, recorded, Decided};
pub use choose::{choose, choose_in, Choice, Choices};
pub use error::QuantizeError;
