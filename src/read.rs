//! Source readers: each rank reads only the hyperslabs of its own units.
//!
//! netCDF-4 files are read through parallel HDF5 (MPI-IO file driver,
//! independent transfers, see [`hdf5`]); netCDF-3 files and variable-length
//! strings through netCDF-C ([`netcdf3`]).

pub mod hdf5;
pub mod netcdf3;

use std::path::Path;

use crate::error::ReadError;
use crate::schema::{DType, Schema, SourceFormat, Var};

/// Values of one hyperslab, in C order.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    /// Fixed-size elements as little-endian (native) bytes.
    Fixed(Vec<u8>),
    /// Variable-length strings.
    Strings(Vec<String>),
}

/// Reads hyperslabs of one source file.
pub struct Reader {
    hdf5: Option<hdf5::Hdf5Reader>,
    netcdf: Option<netcdf3::NetcdfReader>,
    format: SourceFormat,
    path: std::path::PathBuf,
}

impl Reader {
    /// Opens the source for this rank. Nothing is opened until the first read.
    pub fn new(schema: &Schema) -> Self {
        Self {
            hdf5: None,
            netcdf: None,
            format: schema.format,
            path: schema.source.clone(),
        }
    }

    /// The source path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads `count` elements from `start` of `var`.
    ///
    /// # Errors
    /// A [`ReadError`] naming the file and variable.
    pub fn read(&mut self, var: &Var, start: &[u64], count: &[u64]) -> Result<Values, ReadError> {
        let n: u64 = count.iter().product();
        if n == 0 {
            return Ok(match var.dtype {
                DType::String => Values::Strings(Vec::new()),
                _ => Values::Fixed(Vec::new()),
            });
        }
        if self.format == SourceFormat::Netcdf4 && var.dtype != DType::String {
            if self.hdf5.is_none() {
                self.hdf5 = Some(hdf5::Hdf5Reader::open(&self.path)?);
            }
            if let Some(r) = self.hdf5.as_mut() {
                return r.read(var, start, count).map(Values::Fixed);
            }
        }
        if self.netcdf.is_none() {
            self.netcdf = Some(netcdf3::NetcdfReader::open(&self.path)?);
        }
        match self.netcdf.as_ref() {
            Some(r) => r.read(var, start, count),
            None => Err(ReadError::NetcdfOpen {
                path: self.path.clone(),
                source: netcdf::Error::NotFound("file".into()),
            }),
        }
    }
}
