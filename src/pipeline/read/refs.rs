//! Where stored chunks lie, for virtual references (`convert --virtual`):
//! how each file stores each variable (the chunk index is not read), and the
//! byte range of one output chunk. Nothing here reads values.
//!
//! - netCDF-4: HDF5's chunk index (`H5Dget_chunk_info_by_coord`) or the
//!   address of a contiguous block.
//! - netCDF-3: offsets computed from the header: one range per record of a
//!   record variable, one for a fixed-size variable.

use std::path::Path;

use super::error::ReadError;
use super::hdf5::Hdf5Reader;
use super::{FileReader, Reader};
use crate::model::schema::{Schema, SourceFormat, Var};
use crate::model::source_codecs::StoredLayout;
use crate::netcdf::header::{self, HeaderInfo};

/// Where one output chunk's bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkPlace {
    /// Bytes `[offset, offset + length)` of input file `file`.
    At {
        /// The file (index into the dataset's files).
        file: u32,
        /// Offset in bytes.
        offset: u64,
        /// Length in bytes.
        length: u64,
    },
    /// Never written: the chunk reads as the fill value.
    Missing,
    /// The stored bytes do not follow the array's codecs (a filter was
    /// skipped for this chunk, or the chunk reaches past the variable's
    /// extent in its file): its values are copied instead.
    Copy,
}

/// How `path` stores each variable of `schema` (source paths), for the
/// checks of virtual references. A variable whose layout cannot be read is
/// reported as not referencable, with the reason.
///
/// # Errors
/// [`ReadError`] when the file cannot be opened.
pub fn layouts(
    path: &Path,
    format: SourceFormat,
    schema: &Schema,
) -> Result<Vec<(String, StoredLayout)>, ReadError> {
    let vars = schema.root.all_vars();
    match format {
        SourceFormat::Netcdf4 => {
            // Run in the scan's child process: no MPI-IO there.
            let mut h = Hdf5Reader::open_local(path)?;
            Ok(vars
                .into_iter()
                .map(|v| {
                    let l = h.stored_layout(v).unwrap_or_else(|e| {
                        StoredLayout::Unreferencable(format!(
                            "a layout that could not be read ({e})"
                        ))
                    });
                    (v.path.clone(), l)
                })
                .collect())
        }
        SourceFormat::Netcdf3 => {
            let info = netcdf3_header(path)?;
            Ok(vars
                .into_iter()
                .map(|v| {
                    let l = match info.vars.iter().find(|p| p.name == v.name) {
                        Some(_) if v.via_netcdf => StoredLayout::Unreferencable(format!(
                            "{} values (read through netCDF-C)",
                            v.dtype.nc_name()
                        )),
                        Some(p) => StoredLayout::Netcdf3 { record: p.record },
                        None => StoredLayout::Unreferencable("no entry in the header".into()),
                    };
                    (v.path.clone(), l)
                })
                .collect())
        }
    }
}

fn netcdf3_header(path: &Path) -> Result<HeaderInfo, ReadError> {
    header::check_file(path).map_err(|e| ReadError::NetcdfOpen {
        path: path.to_path_buf(),
        source: crate::netcdf::library::NcError::invalid(e.to_string()),
    })
}

impl FileReader {
    /// Where the chunk of `var` at element `local` (in this file; `count`
    /// elements of the output chunk lie in the file) is stored, under
    /// `layout`.
    ///
    /// # Errors
    /// [`ReadError`] naming the file and variable.
    pub fn chunk_place(
        &mut self,
        file: u32,
        var: &Var,
        layout: &StoredLayout,
        local: &[u64],
        count: &[u64],
    ) -> Result<ChunkPlace, ReadError> {
        let at = |(offset, length): (u64, u64)| ChunkPlace::At {
            file,
            offset,
            length,
        };
        match layout {
            StoredLayout::Chunked { .. } | StoredLayout::Contiguous { .. } => {
                // The chunk index is read with the POSIX driver: opening a
                // file through MPI-IO costs more than its few index reads.
                if self.index.is_none() {
                    self.index = Some(Hdf5Reader::open_local(&self.path)?);
                }
                let Some(h) = self.index.as_mut() else {
                    return Ok(ChunkPlace::Copy);
                };
                let extent = h.extent(var)?;
                if local.iter().zip(&extent).any(|(s, e)| s >= e) {
                    return Ok(ChunkPlace::Missing);
                }
                let inside = local
                    .iter()
                    .zip(count)
                    .zip(&extent)
                    .all(|((s, c), e)| s + c <= *e);
                if !inside || extent.len() != local.len() {
                    return Ok(ChunkPlace::Copy);
                }
                if matches!(layout, StoredLayout::Contiguous { .. }) {
                    if local.iter().any(|&s| s != 0) {
                        return Ok(ChunkPlace::Copy);
                    }
                    return Ok(h.contiguous_address(var)?.map_or(ChunkPlace::Missing, at));
                }
                Ok(match h.chunk_address(var, local)? {
                    None => ChunkPlace::Missing,
                    Some((addr, size, 0)) => at((addr, size)),
                    Some(_) => ChunkPlace::Copy,
                })
            }
            StoredLayout::Netcdf3 { record } => {
                let info = self.netcdf3_places()?;
                let Some(p) = info.vars.iter().find(|p| p.name == var.name) else {
                    return Ok(ChunkPlace::Copy);
                };
                if !*record {
                    return Ok(if local.iter().all(|&s| s == 0) {
                        at((p.begin, p.size))
                    } else {
                        ChunkPlace::Copy
                    });
                }
                let r = local.first().copied().unwrap_or(0);
                if local.iter().skip(1).any(|&s| s != 0) || count.first() != Some(&1) {
                    return Ok(ChunkPlace::Copy);
                }
                if info.numrecs.is_some_and(|n| r >= n) {
                    return Ok(ChunkPlace::Missing);
                }
                let offset = r
                    .checked_mul(info.recsize)
                    .and_then(|o| o.checked_add(p.begin));
                Ok(offset.map_or(ChunkPlace::Copy, |o| at((o, p.size))))
            }
            StoredLayout::Unreferencable(_) => Ok(ChunkPlace::Copy),
        }
    }

    /// The parsed netCDF-3 header (read once).
    fn netcdf3_places(&mut self) -> Result<&HeaderInfo, ReadError> {
        if self.nc3_header.is_none() {
            self.nc3_header = Some(netcdf3_header(&self.path)?);
        }
        self.nc3_header
            .as_ref()
            .ok_or_else(|| ReadError::NetcdfOpen {
                path: self.path.clone(),
                source: crate::netcdf::library::NcError::invalid("header not read"),
            })
    }
}

impl Reader<'_> {
    /// Where the output chunk `start`/`count` of variable `index` is stored
    /// in its input file, under the layout `layout` that every file of the
    /// variable shares; [`ChunkPlace::Copy`] when the chunk is not exactly
    /// one stored block of one file.
    ///
    /// # Errors
    /// [`ReadError`] naming the file and variable.
    pub fn chunk_place(
        &mut self,
        index: usize,
        layout: &StoredLayout,
        start: &[u64],
        count: &[u64],
    ) -> Result<ChunkPlace, ReadError> {
        let ds = self.ds;
        let Some(src) = ds.sources.get(index) else {
            return Ok(ChunkPlace::Copy);
        };
        let (file, local) = match super::place(src, start, count) {
            super::Place::In(file, local) => (file, local),
            super::Place::Gap => return Ok(ChunkPlace::Missing),
            super::Place::Spread => return Ok(ChunkPlace::Copy),
        };
        self.file(file)?
            .chunk_place(file, &src.var, layout, &local, count)
    }
}
