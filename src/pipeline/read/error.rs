//! Errors reading variable data.

use crate::netcdf::library::NcError;
use std::path::PathBuf;

/// Errors while reading variable data.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// HDF5 refused to open the file or dataset, or a read failed.
    #[error("{path}: variable '{var}': {what}: {msg}")]
    Hdf5 {
        /// Input path.
        path: PathBuf,
        /// Variable path.
        var: String,
        /// What was being done.
        what: &'static str,
        /// HDF5 error text.
        msg: String,
    },
    /// HDF5 refused to open the file.
    #[error("{path}: cannot open with parallel HDF5: {msg}")]
    Hdf5Open {
        /// Input path.
        path: PathBuf,
        /// HDF5 error text.
        msg: String,
    },
    /// netCDF-C failed while reading.
    #[error("{path}: variable '{var}': {source}")]
    Netcdf {
        /// Input path.
        path: PathBuf,
        /// Variable path.
        var: String,
        /// netCDF-C's status.
        source: NcError,
    },
    /// netCDF-C failed to open the file.
    #[error("{path}: cannot open: {source}")]
    NetcdfOpen {
        /// Input path.
        path: PathBuf,
        /// netCDF-C's status.
        source: NcError,
    },
    /// A stored source chunk could not be decoded (inflate, unshuffle).
    #[error("{path}: variable '{var}': cannot decode the stored chunk at {origin:?}: {msg}")]
    Decode {
        /// Input path.
        path: PathBuf,
        /// Variable path.
        var: String,
        /// Element origin of the chunk.
        origin: Vec<u64>,
        /// The decoder's message.
        msg: String,
    },
    /// A time value that the output units cannot hold exactly.
    #[error("{path}: variable '{var}': time value {value} is not a whole number in the output units (pass --time-units with a finer unit)")]
    Recode {
        /// Input path.
        path: PathBuf,
        /// Variable path.
        var: String,
        /// The value.
        value: String,
    },
    /// Parts of one region read as different kinds of values.
    #[error("{path}: variable '{var}': parts of one region read as strings and as numbers")]
    KindMismatch {
        /// Input path.
        path: PathBuf,
        /// Variable path.
        var: String,
    },
    /// A netCDF-3 file no longer holds what its header describes (it was
    /// truncated after the scan, or is being rewritten).
    #[error("{path}: variable '{var}': the file shrank to {have} bytes while being read; its header needs {need} (truncated or being rewritten)")]
    Shrunk {
        /// Input path.
        path: PathBuf,
        /// Variable path.
        var: String,
        /// Bytes the header needs.
        need: u64,
        /// Bytes the file has now.
        have: u64,
    },
}
