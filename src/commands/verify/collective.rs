//! What the ranks of a verification share: a panic turned into an error
//! so that a rank still meets the others, values serialised for MPI, and
//! rank 0's result handed to every rank.

use std::panic::AssertUnwindSafe;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, VerifyError};
use crate::mpi::ctx::MpiCtx;

pub(super) fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Runs `f`, turning a panic into an error, so that the rank still meets
/// the others at the next agreement.
pub(super) fn guarded<T>(f: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
    std::panic::catch_unwind(AssertUnwindSafe(f))
        .unwrap_or_else(|p| Err(VerifyError::Panic(panic_text(p.as_ref())).into()))
}

pub(super) fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, Error> {
    bincode::serde::encode_to_vec(v, bincode::config::standard())
        .map_err(|e| VerifyError::Exchange(e.to_string()).into())
}

pub(super) fn decode<T: DeserializeOwned>(b: &[u8]) -> Result<T, Error> {
    bincode::serde::decode_from_slice::<T, _>(b, bincode::config::standard())
        .map(|(v, _)| v)
        .map_err(|e| VerifyError::Exchange(e.to_string()).into())
}

/// Rank 0 computes a value, every rank gets it (or every rank fails, with
/// rank 0's message).
pub(super) fn from_rank0<T: Serialize + DeserializeOwned>(
    ctx: &MpiCtx,
    f: impl FnOnce() -> Result<T, Error>,
) -> Result<T, Error> {
    ctx.from_root(|| guarded(f), |e| VerifyError::Exchange(e).into())
}
