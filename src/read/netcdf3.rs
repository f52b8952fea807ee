//! Reads through netCDF-C: netCDF-3 files (classic, 64-bit offset, CDF5),
//! and variable-length strings of netCDF-4 files. Each rank opens the file
//! read-only on its own.

use std::path::{Path, PathBuf};

use netcdf::{Extent, Extents};

use super::Values;
use crate::error::ReadError;
use crate::schema::{DType, Var};

/// A read-only netCDF-C handle.
pub struct NetcdfReader {
    file: netcdf::File,
    path: PathBuf,
}

impl NetcdfReader {
    /// Opens `path` read-only.
    ///
    /// # Errors
    /// [`ReadError::NetcdfOpen`].
    pub fn open(path: &Path) -> Result<Self, ReadError> {
        let file = netcdf::open(path).map_err(|source| ReadError::NetcdfOpen {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self {
            file,
            path: path.to_path_buf(),
        })
    }

    fn err(&self, var: &Var) -> impl FnOnce(netcdf::Error) -> ReadError + '_ {
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
    /// [`ReadError::Netcdf`].
    pub fn read(&self, var: &Var, start: &[u64], count: &[u64]) -> Result<Values, ReadError> {
        let v = self
            .file
            .variable(&var.path)
            .ok_or_else(|| netcdf::Error::NotFound(var.path.clone()))
            .map_err(self.err(var))?;
        let to_usize = |x: u64| usize::try_from(x).unwrap_or(usize::MAX);
        if var.dtype == DType::String {
            let n = to_usize(count.iter().product());
            let mut out = Vec::with_capacity(n);
            let mut idx: Vec<u64> = start.to_vec();
            for _ in 0..n {
                let ext: Vec<Extent> = idx.iter().map(|&i| Extent::from(to_usize(i))).collect();
                out.push(v.get_string(Extents::from(ext)).map_err(self.err(var))?);
                // Advance the C-order index inside the hyperslab.
                for d in (0..idx.len()).rev() {
                    idx[d] += 1;
                    if idx[d] < start[d] + count[d] {
                        break;
                    }
                    idx[d] = start[d];
                }
            }
            return Ok(Values::Strings(out));
        }
        let ext: Vec<Extent> = start
            .iter()
            .zip(count)
            .map(|(&s, &c)| Extent::from(to_usize(s)..to_usize(s + c)))
            .collect();
        let bytes = v
            .get_raw_values(Extents::from(ext))
            .map_err(self.err(var))?;
        Ok(Values::Fixed(bytes))
    }
}
