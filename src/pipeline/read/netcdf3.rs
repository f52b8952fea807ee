//! Reads through netCDF-C: netCDF-3 files (classic, 64-bit offset, CDF5),
//! and variable-length strings and enum variables of netCDF-4 files. Each
//! rank opens the file read-only on its own.
//!
//! A netCDF-3 file is checked against its header when opened and again
//! after every read: netCDF-C returns zeros for bytes past the end of a
//! file, so a file truncated while the job runs must fail the read rather
//! than give invented values.

use std::path::{Path, PathBuf};

use super::Values;
use crate::model::schema::{DType, SourceFormat, Var};
use crate::netcdf::library::NcFile;
use crate::pipeline::read::error::ReadError;

/// Largest hyperslab read in one call (a unit is far smaller; this bounds a
/// request computed from a corrupt shape).
const MAX_READ_BYTES: usize = 1 << 34;

/// A read-only netCDF-C handle.
pub struct NetcdfReader {
    file: NcFile,
    path: PathBuf,
    /// Bytes the header of a netCDF-3 file needs (0 for netCDF-4).
    required: u64,
}

impl NetcdfReader {
    /// Opens `path` read-only, checking a netCDF-3 header against the file.
    ///
    /// # Errors
    /// [`ReadError::NetcdfOpen`].
    pub fn open(path: &Path, format: SourceFormat) -> Result<Self, ReadError> {
        let open_err = |source| ReadError::NetcdfOpen {
            path: path.to_path_buf(),
            source,
        };
        let required = if format == SourceFormat::Netcdf3 {
            crate::netcdf::header::check_file(path)
                .map_err(|e| open_err(crate::netcdf::library::NcError::invalid(e.to_string())))?
                .required_len
        } else {
            0
        };
        let file = NcFile::open(path).map_err(open_err)?;
        Ok(Self {
            file,
            path: path.to_path_buf(),
            required,
        })
    }

    fn err(&self, var: &Var) -> impl FnOnce(crate::netcdf::library::NcError) -> ReadError + '_ {
        let var = var.path.clone();
        move |source| ReadError::Netcdf {
            path: self.path.clone(),
            var,
            source,
        }
    }

    /// Reads a hyperslab.
    ///
    /// # Errors
    /// [`ReadError::Netcdf`], or [`ReadError::Shrunk`] when the file no
    /// longer holds what its header describes.
    pub fn read(&self, var: &Var, start: &[u64], count: &[u64]) -> Result<Values, ReadError> {
        let (grp, varid) = self.file.var_at(&var.path).map_err(self.err(var))?;
        let to_usize = |x: &u64| usize::try_from(*x).unwrap_or(usize::MAX);
        let start: Vec<usize> = start.iter().map(to_usize).collect();
        let count: Vec<usize> = count.iter().map(to_usize).collect();
        let values = if var.dtype == DType::String {
            Values::Strings(
                self.file
                    .get_vara_strings(grp, varid, &start, &count, MAX_READ_BYTES / 16)
                    .map_err(self.err(var))?,
            )
        } else {
            let mut bytes = self
                .file
                .get_vara(grp, varid, &start, &count, var.dtype.size(), MAX_READ_BYTES)
                .map_err(self.err(var))?;
            // netCDF-C returns native-endian values; the pipeline works in
            // little-endian bytes.
            if cfg!(target_endian = "big") {
                let w = var.dtype.size();
                for c in bytes.chunks_exact_mut(w) {
                    c.reverse();
                }
            }
            Values::Fixed(bytes)
        };
        if self.required > 0 {
            let have = std::fs::metadata(&self.path).map_or(0, |m| m.len());
            if have < self.required {
                return Err(ReadError::Shrunk {
                    path: self.path.clone(),
                    var: var.path.clone(),
                    need: self.required,
                    have,
                });
            }
        }
        Ok(values)
    }
}
