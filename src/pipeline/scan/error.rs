//! Errors reading a source file's structure.

use crate::netcdf::header::HeaderError;
use crate::netcdf::library::NcError;
use std::path::PathBuf;

/// Errors while reading the source's structure.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// The input path does not exist.
    #[error("{0}: no such file")]
    Missing(PathBuf),
    /// The input could not be opened (permissions, I/O).
    #[error("{path}: cannot open: {source}")]
    Open {
        /// Input path.
        path: PathBuf,
        /// OS error.
        source: std::io::Error,
    },
    /// The input has no netCDF or HDF5 signature.
    #[error("{0}: not a netCDF file (no netCDF-3 or HDF5 signature)")]
    NotNetcdf(PathBuf),
    /// netCDF-C refused the file or a query.
    #[error("{path}: {what}: {source}")]
    Netcdf {
        /// Input path.
        path: PathBuf,
        /// What was being done.
        what: String,
        /// netCDF-C's status.
        source: NcError,
    },
    /// netCDF-C could not create or write a file (`generate`, `bench`).
    #[error("{path}: {what}: {source}")]
    Create {
        /// Output path.
        path: PathBuf,
        /// What was being done.
        what: String,
        /// netCDF error.
        source: netcdf::Error,
    },
    /// A netCDF-3 header that is corrupt or promises more than the file holds.
    #[error("{path}: {source}")]
    Header {
        /// Input path.
        path: PathBuf,
        /// What is wrong.
        source: HeaderError,
    },
    /// netCDF-C or HDF5 crashed reading the file's structure.
    #[error("{path}: netCDF-C/HDF5 crashed (signal {signal}) reading the file's structure: the file is damaged or not valid netCDF (check it with ncdump -h)")]
    Crashed {
        /// Input path.
        path: PathBuf,
        /// The signal.
        signal: i32,
    },
    /// Reading the file's structure did not finish in time.
    #[error("{path}: reading the file's structure did not finish in {seconds} s (netCDF-C/HDF5 looping on a damaged file?); if the file is sound but slow to open, raise --scan-timeout")]
    Stalled {
        /// Input path.
        path: PathBuf,
        /// The time allowed.
        seconds: u64,
    },
    /// An attribute whose type Zarr attributes cannot hold.
    #[error("{path}: {attr} has unsupported type {kind} (use --skip-unsupported to leave it out)")]
    UnsupportedAttr {
        /// Input path.
        path: PathBuf,
        /// Which attribute of what.
        attr: String,
        /// The type's class.
        kind: String,
    },
    /// A variable whose type zarrforge cannot represent in Zarr.
    #[error("{path}: variable '{var}' has unsupported type {kind} (use --skip-unsupported to leave it out)")]
    Unsupported {
        /// Input path.
        path: PathBuf,
        /// Variable path.
        var: String,
        /// The type.
        kind: String,
    },
    /// A group or variable name that cannot become a store path.
    #[error("{path}: name '{name}' cannot be used as a Zarr node name ({reason})")]
    BadName {
        /// Input path.
        path: PathBuf,
        /// Offending name.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// An HDF5 file that netCDF-C can open but that is not netCDF-4.
    #[error("{path}: an HDF5 file but not netCDF-4: variable '{var}' has no named dimensions (netCDF-C calls them '{dim}'); pass --phony-dims to convert it with those names (as xarray's netCDF4 engine shows them)")]
    NotNetcdf4 {
        /// Input path.
        path: PathBuf,
        /// A variable without dimension scales.
        var: String,
        /// The made-up dimension name.
        dim: String,
    },
    /// The schema could not be exchanged between ranks.
    #[error("schema exchange: {0}")]
    Exchange(String),
}
