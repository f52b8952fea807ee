//! The metadata scan: each rank reads the structure of its share of the
//! input files (and the values of the concatenation coordinate), and rank 0
//! gathers the results.
//!
//! Files are split into contiguous blocks, one per rank, so thousands of
//! files cost `files / ranks` opens per rank rather than all on rank 0.

use std::hash::Hasher;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::SchemaError;
use crate::schema::{read_schema_from, DType, Schema};

/// Largest coordinate read during the scan (a coordinate of 2^27 time
/// steps; a larger one comes from a corrupt header).
const MAX_COORD_BYTES: usize = 1 << 30;

/// Slab size for the digests of static variables.
const DIGEST_SLAB_BYTES: usize = 64 << 20;

/// What one input file holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileScan {
    /// Its path.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// Its modification time, ns since the epoch.
    pub mtime_ns: i128,
    /// Its structure.
    pub schema: Schema,
    /// Values of the coordinate variables of candidate concatenation
    /// dimensions (the given one, else the root group's unlimited ones).
    pub coords: Vec<ScanCoord>,
    /// Digests of the values of variables without the concatenation
    /// dimension (only with the full static check).
    pub digests: Vec<(String, u64)>,
}

/// One file's coordinate along a candidate concatenation dimension.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanCoord {
    /// Dimension name.
    pub dim: String,
    /// Length of the dimension in this file.
    pub len: u64,
    /// Values of the coordinate variable (named as the dimension), if any.
    pub values: Option<Vec<f64>>,
    /// The same values as integers, for integer coordinates.
    pub ints: Option<Vec<i64>>,
}

/// Options of the scan.
#[derive(Debug, Clone, Default)]
pub struct ScanOptions {
    /// The concatenation dimension, when given.
    pub concat_dim: Option<String>,
    /// Leave out variables of unsupported types.
    pub skip_unsupported: bool,
    /// Accept plain HDF5 files with netCDF-C's phony dimension names.
    pub phony_dims: bool,
    /// Compute value digests of static variables.
    pub digest_static: bool,
}

/// Scans one file.
///
/// # Errors
/// [`SchemaError`] naming the file (and variable).
pub fn scan_file(path: &Path, opts: &ScanOptions) -> Result<FileScan, SchemaError> {
    let format = crate::schema::detect_format(path)?;
    let (size, mtime_ns) = std::fs::metadata(path)
        .map(|m| {
            let t = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| i128::try_from(d.as_nanos()).unwrap_or(i128::MAX));
            (m.len(), t)
        })
        .map_err(|source| SchemaError::Open {
            path: path.to_path_buf(),
            source,
        })?;
    let file = crate::schema::open_checked(path, format)?;
    let schema = read_schema_from(&file, path, format, opts.skip_unsupported, opts.phony_dims)?;
    let nc_err = |what: String| {
        move |source| SchemaError::Netcdf {
            path: path.to_path_buf(),
            what,
            source,
        }
    };
    let dims: Vec<String> = match &opts.concat_dim {
        Some(d) => vec![d.clone()],
        None => schema
            .root
            .dims
            .iter()
            .filter(|d| d.unlimited)
            .map(|d| d.name.clone())
            .collect(),
    };
    let mut coords = Vec::new();
    for dim in dims {
        let len = schema
            .root
            .dims
            .iter()
            .find(|d| d.name == dim)
            .map(|d| d.len)
            .or_else(|| {
                schema
                    .vars()
                    .iter()
                    .find_map(|v| v.dims.iter().position(|d| *d == dim).map(|k| v.shape[k]))
            });
        let Some(len) = len else { continue };
        let coord = schema
            .root
            .vars
            .iter()
            .find(|v| v.name == dim && v.dims.len() == 1 && v.dims[0] == dim);
        let (values, ints) = match coord {
            Some(v) if v.dtype != DType::String && v.dtype != DType::Char => {
                let what = format!("coordinate variable '{dim}'");
                let (grp, varid) = file.var_at(&v.path).map_err(nc_err(what.clone()))?;
                let n = usize::try_from(v.shape[0]).unwrap_or(usize::MAX);
                let values = file
                    .get_vara_f64(grp, varid, &[0], &[n], MAX_COORD_BYTES)
                    .map_err(nc_err(what.clone()))?;
                let ints = if v.dtype.is_float() {
                    None
                } else {
                    Some(
                        file.get_vara_i64(grp, varid, &[0], &[n], MAX_COORD_BYTES)
                            .map_err(nc_err(what))?,
                    )
                };
                (Some(values), ints)
            }
            _ => (None, None),
        };
        coords.push(ScanCoord {
            dim,
            len,
            values,
            ints,
        });
    }
    let mut digests = Vec::new();
    if opts.digest_static {
        let concat: Vec<&str> = coords.iter().map(|c| c.dim.as_str()).collect();
        for v in schema.vars() {
            if v.dims.iter().any(|d| concat.contains(&d.as_str())) {
                continue;
            }
            let what = format!("variable '{}'", v.path);
            let (grp, varid) = file.var_at(&v.path).map_err(nc_err(what.clone()))?;
            let mut h = std::collections::hash_map::DefaultHasher::new();
            // Read in slabs along the first dimension: a static variable may
            // be large, and its digest needs no more than a slab at a time.
            let shape: Vec<usize> = v
                .shape
                .iter()
                .map(|&x| usize::try_from(x).unwrap_or(usize::MAX))
                .collect();
            let rows = shape.first().copied().unwrap_or(1);
            let row_elems = shape
                .iter()
                .skip(1)
                .fold(1usize, |a, &b| a.saturating_mul(b));
            let step = (DIGEST_SLAB_BYTES / row_elems.max(1).saturating_mul(v.dtype.size())).max(1);
            let mut r = 0;
            while r < rows.max(1) && !v.is_empty() {
                let n = step.min(rows - r);
                let mut start = vec![0usize; shape.len()];
                let mut count = shape.clone();
                if !shape.is_empty() {
                    start[0] = r;
                    count[0] = n;
                }
                if v.dtype == DType::String {
                    for s in file
                        .get_vara_strings(grp, varid, &start, &count, usize::MAX)
                        .map_err(nc_err(what.clone()))?
                    {
                        h.write(s.as_bytes());
                        h.write_u8(0);
                    }
                } else {
                    let bytes = file
                        .get_vara(grp, varid, &start, &count, v.dtype.size(), usize::MAX)
                        .map_err(nc_err(what.clone()))?;
                    h.write(&bytes);
                }
                r += n;
                if shape.is_empty() {
                    break;
                }
            }
            digests.push((v.path.clone(), h.finish()));
        }
    }
    Ok(FileScan {
        path: path.to_path_buf(),
        size,
        mtime_ns,
        schema,
        coords,
        digests,
    })
}

/// The block of files `rank` of `ranks` scans: `[lo, hi)`.
pub fn share(files: usize, rank: usize, ranks: usize) -> (usize, usize) {
    let ranks = ranks.max(1);
    (files * rank / ranks, files * (rank + 1) / ranks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_cover_every_file_once() {
        for files in [0, 1, 5, 200, 1001] {
            for ranks in [1, 2, 3, 7, 512] {
                let mut next = 0;
                for r in 0..ranks {
                    let (lo, hi) = share(files, r, ranks);
                    assert_eq!(lo, next);
                    assert!(hi >= lo);
                    next = hi;
                }
                assert_eq!(next, files);
            }
        }
    }
}
