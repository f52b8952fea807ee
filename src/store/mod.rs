//! The output store: Zarr metadata ([`metadata`]), chunk encoding
//! ([`encode`]), the store's files, atomic writes and safety checks
//! ([`files`]), the per-rank journal ([`journal`]), the lock ([`lock`]), the saved
//! state of a committed store ([`state`]) and the append planning against
//! it ([`append`]), what a run does with the store it finds ([`opening`]) and
//! the metadata commit by rank 0 ([`commit`]).

pub mod append;
pub mod commit;
pub mod encode;
pub mod error;
pub mod files;
pub mod journal;
pub mod layout;
pub mod lock;
pub mod metadata;
pub mod opening;
pub mod region;
pub mod remote;
pub mod state;
pub mod storage;
#[cfg(feature = "icechunk")]
pub mod versioned;
