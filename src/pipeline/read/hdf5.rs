//! Reads netCDF-4 variables through parallel HDF5.
//!
//! Each rank opens the file with the MPI-IO file driver on its own
//! communicator (`MPI_COMM_SELF`) and issues independent hyperslab reads: the
//! ranks' work is uneven by design (whole units, balanced by bytes), so no
//! collective call may couple them, and a failure on one rank cannot leave
//! another waiting inside HDF5. HDF5 converts to the native (little-endian)
//! memory type, so big-endian sources need no special handling.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use hdf5_sys::h5::hsize_t;
use hdf5_sys::h5d::{H5Dget_space, H5Dget_type, H5Dread};
use hdf5_sys::h5p::H5P_DEFAULT;
use hdf5_sys::h5s::{
    H5S_class_t, H5S_seloper_t, H5Sclose, H5Screate, H5Screate_simple, H5Sselect_hyperslab,
};
use hdf5_sys::h5t::{H5T_direction_t, H5Tclose, H5Tget_native_type, H5Tget_size};
use mpi::traits::AsRaw;

use crate::model::schema::{DType, Var};
use crate::model::source_codecs::{Endian, Filter, SourceCodecs, StoredLayout};
use crate::pipeline::read::error::ReadError;

/// Per-file chunk cache: large enough to hold the source chunks that
/// neighbouring output chunks share.
const CHUNK_CACHE_BYTES: usize = 64 << 20;

/// Datasets a file keeps open at once (each with its own chunk cache): a
/// rank reads one variable after the other.
pub const MAX_OPEN_DATASETS: usize = 2;

/// HDF5 chunk cache per dataset for files opened from now on (the memory
/// budget lowers it; see [`crate::commands::convert::budget`]).
static CHUNK_CACHE: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(CHUNK_CACHE_BYTES);

/// Sets the HDF5 chunk cache per dataset of files opened from now on.
pub fn set_chunk_cache_bytes(bytes: usize) {
    CHUNK_CACHE.store(bytes, std::sync::atomic::Ordering::Relaxed);
}
const CHUNK_CACHE_SLOTS: usize = 12_421;

/// The error of the last failed HDF5 call on `var`, from HDF5's error stack.
fn hdf5_error(path: &Path, var: &Var, what: &'static str) -> ReadError {
    ReadError::Hdf5 {
        path: path.to_path_buf(),
        var: var.path.clone(),
        what,
        msg: hdf5::Error::query()
            .ok()
            .and_then(|e| e.stack())
            .map_or_else(|| "HDF5 error".to_string(), |s| s.description().to_string()),
    }
}

/// An open netCDF-4 file.
pub struct Hdf5Reader {
    // Fields drop in order: the datasets must be closed before the file.
    // With the MPI-IO driver HDF5 closes files with H5F_CLOSE_SEMI, which
    // refuses to close a file that still has open objects: the file (and its
    // chunk caches) would stay open for the rest of the run.
    datasets: HashMap<String, hdf5::Dataset>,
    /// The open datasets, least recently used first.
    recent: Vec<String>,
    file: hdf5::File,
    path: PathBuf,
    /// The file's size when opened: a stored chunk cannot be larger.
    file_len: u64,
}

impl Hdf5Reader {
    /// Opens `path` read-only with the MPI-IO driver.
    ///
    /// # Errors
    /// [`ReadError::Hdf5Open`].
    pub fn open(path: &Path) -> Result<Self, ReadError> {
        let comm = mpi::topology::SimpleCommunicator::self_comm();
        let file = hdf5::File::with_options()
            .with_fapl(|p| {
                p.mpio(comm.as_raw(), None).chunk_cache(
                    CHUNK_CACHE_SLOTS,
                    CHUNK_CACHE.load(std::sync::atomic::Ordering::Relaxed),
                    1.0,
                )
            })
            .open(path);
        Self::opened(path, file)
    }

    fn opened(path: &Path, file: hdf5::Result<hdf5::File>) -> Result<Self, ReadError> {
        let file = file.map_err(|e| ReadError::Hdf5Open {
            path: path.to_path_buf(),
            msg: e.to_string(),
        })?;
        Ok(Self {
            file,
            path: path.to_path_buf(),
            datasets: HashMap::new(),
            recent: Vec::new(),
            file_len: std::fs::metadata(path).map_or(u64::MAX, |m| m.len()),
        })
    }

    /// Opens `path` read-only with HDF5's default (POSIX) file driver, for
    /// work that must not call MPI (in a forked child).
    ///
    /// # Errors
    /// [`ReadError::Hdf5Open`].
    pub fn open_local(path: &Path) -> Result<Self, ReadError> {
        Self::opened(path, hdf5::File::open(path))
    }

    fn dataset(&mut self, var: &Var) -> Result<&hdf5::Dataset, ReadError> {
        if let Some(k) = self.recent.iter().position(|p| *p == var.path) {
            let p = self.recent.remove(k);
            self.recent.push(p);
        }
        if !self.datasets.contains_key(&var.path) {
            // Each open dataset holds its own chunk cache: at most
            // MAX_OPEN_DATASETS stay open (the budget counts that many).
            while self.recent.len() >= MAX_OPEN_DATASETS {
                let old = self.recent.remove(0);
                self.datasets.remove(&old);
            }
            // netCDF-4 stores a variable that has a dimension's name without
            // being its coordinate variable as `_nc4_non_coord_NAME`; the
            // dataset `NAME` is then the dimension scale, so the renamed
            // dataset must win whenever it exists.
            let (parent, name) = var.path.rsplit_once('/').unwrap_or(("", &var.path));
            let alt = crate::model::schema::join(parent, &format!("_nc4_non_coord_{name}"));
            let ds = match self.file.dataset(&alt) {
                Ok(ds) => ds,
                Err(_) => self
                    .file
                    .dataset(&var.path)
                    .map_err(|first| ReadError::Hdf5 {
                        path: self.path.clone(),
                        var: var.path.clone(),
                        what: "open dataset",
                        msg: first.to_string(),
                    })?,
            };
            self.datasets.insert(var.path.clone(), ds);
            self.recent.push(var.path.clone());
        }
        self.datasets.get(&var.path).ok_or_else(|| ReadError::Hdf5 {
            path: self.path.clone(),
            var: var.path.clone(),
            what: "open dataset",
            msg: "not found".into(),
        })
    }

    /// Reads the hyperslab `start`/`count` of `var` as native bytes.
    ///
    /// In netCDF-4 a variable along an unlimited dimension may hold fewer
    /// records than the dimension: the part beyond the dataset's extent
    /// reads as the fill value, as netCDF-C returns it.
    ///
    /// # Errors
    /// [`ReadError::Hdf5`] naming the file and variable.
    pub fn read(&mut self, var: &Var, start: &[u64], count: &[u64]) -> Result<Vec<u8>, ReadError> {
        let extent = self.extent(var)?;
        let inside: Vec<u64> = start
            .iter()
            .zip(count)
            .zip(&extent)
            .map(|((&s, &c), &e)| c.min(e.saturating_sub(s)))
            .collect();
        if inside.len() != count.len() || inside == count {
            return self.read_inside(var, start, count);
        }
        let fill = crate::model::schema::fill_bytes(var)
            .unwrap_or_else(|| var.dtype.netcdf_default_fill());
        let part = if inside.contains(&0) {
            Vec::new()
        } else {
            self.read_inside(var, start, &inside)?
        };
        Ok(crate::model::block::pad_region(
            part,
            &inside,
            count,
            &fill,
            var.dtype.size(),
        ))
    }

    /// How `var`'s chunks can be read raw, or `None` when they cannot
    /// (contiguous, other filters, big-endian, a type conversion).
    ///
    /// # Errors
    /// [`ReadError::Hdf5`] when the dataset cannot be opened.
    pub fn raw_layout(&mut self, var: &Var) -> Result<Option<super::raw::RawLayout>, ReadError> {
        use super::raw::{RawFilter, RawLayout};
        if var.big_endian
            || var.via_netcdf
            || matches!(var.dtype, crate::model::schema::DType::String)
        {
            return Ok(None);
        }
        let ds = self.dataset(var)?;
        let Some(chunk) = ds.chunk() else {
            return Ok(None);
        };
        // Raw bytes skip HDF5's type conversion: only a stored type equal
        // to the native one (IEEE floats, two's-complement integers of the
        // same size and order) may be copied as it is.
        if !ds.dtype().is_ok_and(|t| stored_as_native(var.dtype, &t)) {
            return Ok(None);
        }
        let chunk_bytes = chunk
            .iter()
            .try_fold(var.dtype.size() as u64, |a, &c| a.checked_mul(c as u64));
        if chunk_bytes.is_none_or(|b| b > u64::from(u32::MAX)) {
            return Err(ReadError::Hdf5 {
                path: self.path.clone(),
                var: var.path.clone(),
                what: "chunk shape",
                msg: format!("chunks of {chunk:?} elements exceed HDF5's 4 GiB chunk limit: the file is damaged"),
            });
        }
        let mut filters = Vec::new();
        let mut level = None;
        for f in ds.filters() {
            match f {
                hdf5::filters::Filter::Deflate(l) => {
                    filters.push(RawFilter::Deflate);
                    level = Some(u32::from(l));
                }
                hdf5::filters::Filter::Shuffle => filters.push(RawFilter::Shuffle),
                _ => return Ok(None),
            }
        }
        let fill = crate::model::schema::fill_bytes(var)
            .unwrap_or_else(|| var.dtype.netcdf_default_fill());
        Ok(Some(RawLayout {
            chunk: chunk.iter().map(|&c| c as u64).collect(),
            filters,
            elem: var.dtype.size(),
            fill,
            level,
        }))
    }

    /// The stored bytes of the chunk at element `origin` of `var` and its
    /// filter mask; `None` for a chunk never written.
    ///
    /// # Errors
    /// [`ReadError::Hdf5`] naming the file and variable.
    pub fn read_raw(
        &mut self,
        var: &Var,
        origin: &[u64],
    ) -> Result<super::raw::RawChunk, ReadError> {
        use hdf5_sys::h5d::H5Dread_chunk;
        let path = self.path.clone();
        let fail = |what: &'static str| hdf5_error(&path, var, what);
        let ds = self.dataset(var)?;
        let did = ds.id();
        // An unfiltered chunk is read whole (its size from the chunk shape,
        // not from the index): the buffer must hold that much.
        let unfiltered = ds.filters().is_empty();
        let whole = ds
            .chunk()
            .unwrap_or_default()
            .iter()
            .try_fold(var.dtype.size() as u64, |a, &c| a.checked_mul(c as u64))
            .unwrap_or(u64::MAX);
        let file_len = self.file_len;
        let offset: Vec<hsize_t> = origin.to_vec();
        hdf5::sync::sync(|| {
            // SAFETY: plain HDF5 C calls on a dataset id owned by `self`,
            // under the library lock; the buffer has the size HDF5 reports.
            unsafe {
                let Some((_, size, _)) =
                    chunk_info(did, &offset).map_err(|()| fail("chunk info"))?
                else {
                    return Ok(None);
                };
                if size == 0 || (unfiltered && size != whole) {
                    return Err(fail(
                        "a chunk index entry whose size does not match the chunk",
                    ));
                }
                // A stored chunk lies inside the file: a larger size comes
                // from a damaged index and must not size an allocation.
                if size > file_len {
                    return Err(fail("chunk size beyond the end of the file"));
                }
                let n = usize::try_from(size).map_err(|_| fail("chunk size"))?;
                // HDF5 1.10 can read more than the index reported for a
                // damaged file (an edited chunk shape): leave room for the
                // whole chunk, never more than the file holds, so its read
                // cannot run past the buffer.
                let room = size.max(whole.min(file_len));
                // Not zeroed: HDF5 writes the `n` bytes that are kept.
                let mut buf: Vec<u8> =
                    Vec::with_capacity(usize::try_from(room).map_err(|_| fail("chunk size"))?);
                let mut filters: u32 = 0;
                if H5Dread_chunk(
                    did,
                    hdf5_sys::h5p::H5P_DEFAULT,
                    offset.as_ptr(),
                    &raw mut filters,
                    buf.as_mut_ptr().cast(),
                ) < 0
                {
                    return Err(fail("read chunk"));
                }
                // SAFETY: a successful H5Dread_chunk wrote the chunk's stored
                // bytes, the `n` its index reports (`chunk_info` above), into
                // the buffer's first `n <= room` bytes.
                buf.set_len(n);
                if buf.capacity() > n {
                    buf.shrink_to_fit();
                }
                Ok(Some((buf, filters)))
            }
        })
    }

    /// How the file stores `var`, for virtual references: chunked with its
    /// filter pipeline, one contiguous block, or not referencable.
    ///
    /// # Errors
    /// [`ReadError::Hdf5`] when the dataset or its properties cannot be read.
    pub fn stored_layout(&mut self, var: &Var) -> Result<StoredLayout, ReadError> {
        use hdf5_sys::h5d::{H5D_layout_t, H5Dget_create_plist};
        use hdf5_sys::h5p::{H5Pclose, H5Pget_chunk, H5Pget_external_count, H5Pget_layout};
        if var.via_netcdf || matches!(var.dtype, DType::String | DType::Char) {
            return Ok(StoredLayout::Unreferencable(format!(
                "{} values (read through netCDF-C)",
                var.dtype.nc_name()
            )));
        }
        let path = self.path.clone();
        let fail = |what: &'static str| hdf5_error(&path, var, what);
        let dtype = var.dtype;
        let did = self.dataset(var)?.id();
        hdf5::sync::sync(|| {
            // SAFETY: HDF5 C calls on ids owned by `self` or closed here,
            // under the library lock; buffers have the sizes passed.
            unsafe {
                let Some(endian) = stored_order(did, dtype) else {
                    return Ok(StoredLayout::Unreferencable(format!(
                        "a stored type other than a plain {}",
                        dtype.nc_name()
                    )));
                };
                let dcpl = H5Dget_create_plist(did);
                if dcpl < 0 {
                    return Err(fail("creation properties"));
                }
                let layout = H5Pget_layout(dcpl);
                let out = if H5Pget_external_count(dcpl) > 0 {
                    Ok(StoredLayout::Unreferencable(
                        "stored in external files".into(),
                    ))
                } else {
                    match layout {
                        H5D_layout_t::H5D_CONTIGUOUS => Ok(StoredLayout::Contiguous { endian }),
                        H5D_layout_t::H5D_CHUNKED => {
                            let mut dims = [0 as hsize_t; 32];
                            let n = H5Pget_chunk(dcpl, 32, dims.as_mut_ptr());
                            match usize::try_from(n) {
                                Ok(n) if n <= 32 => Ok(StoredLayout::Chunked {
                                    chunk: dims[..n].to_vec(),
                                    codecs: filter_pipeline(dcpl, endian, dtype.size()),
                                }),
                                _ => Err(fail("chunk shape")),
                            }
                        }
                        H5D_layout_t::H5D_COMPACT => Ok(StoredLayout::Unreferencable(
                            "compact storage (the values are inside the object header)".into(),
                        )),
                        _ => Ok(StoredLayout::Unreferencable(
                            "the layout of an HDF5 virtual dataset".into(),
                        )),
                    }
                };
                H5Pclose(dcpl);
                out
            }
        })
    }

    /// Where HDF5's addresses start in the file: the size of the user block
    /// before the superblock (0 for netCDF-4 files; files written with a
    /// user block or a padded superblock have one). Addresses in the chunk
    /// index are relative to it.
    ///
    /// # Errors
    /// [`ReadError::Hdf5`] when the file's properties cannot be read.
    fn base_address(&self, var: &Var) -> Result<u64, ReadError> {
        use hdf5_sys::h5f::H5Fget_create_plist;
        use hdf5_sys::h5p::{H5Pclose, H5Pget_userblock};
        let fid = self.file.id();
        let path = self.path.clone();
        hdf5::sync::sync(|| {
            // SAFETY: HDF5 C calls on the file id owned by `self` and on a
            // property list closed here, under the library lock.
            unsafe {
                let fcpl = H5Fget_create_plist(fid);
                if fcpl < 0 {
                    return Err(hdf5_error(&path, var, "file creation properties"));
                }
                let mut size: hsize_t = 0;
                let ok = H5Pget_userblock(fcpl, &raw mut size) >= 0;
                H5Pclose(fcpl);
                if ok {
                    Ok(size)
                } else {
                    Err(hdf5_error(&path, var, "user block size"))
                }
            }
        })
    }

    /// Where the chunk at element `origin` of `var` is stored: its offset in
    /// the file, size and mask of skipped filters; `None` for a chunk never
    /// written.
    ///
    /// # Errors
    /// [`ReadError::Hdf5`] naming the file and variable.
    pub fn chunk_address(
        &mut self,
        var: &Var,
        origin: &[u64],
    ) -> Result<Option<(u64, u64, u32)>, ReadError> {
        let path = self.path.clone();
        let fail = |what: &'static str| hdf5_error(&path, var, what);
        let file_len = self.file_len;
        let base = self.base_address(var)?;
        let did = self.dataset(var)?.id();
        let offset: Vec<hsize_t> = origin.to_vec();
        hdf5::sync::sync(|| {
            // SAFETY: one HDF5 C call on a dataset id owned by `self`, under
            // the library lock, with out-parameters on the stack.
            unsafe {
                let Some((addr, size, mask)) =
                    chunk_info(did, &offset).map_err(|()| fail("chunk info"))?
                else {
                    return Ok(None);
                };
                let addr = addr.saturating_add(base);
                if size == 0 || addr.saturating_add(size) > file_len {
                    return Err(fail("a chunk index entry beyond the end of the file"));
                }
                Ok(Some((addr, size, mask)))
            }
        })
    }

    /// Address and size of `var`'s contiguous block; `None` when it was
    /// never written (it reads as the fill value).
    ///
    /// # Errors
    /// [`ReadError::Hdf5`] naming the file and variable.
    pub fn contiguous_address(&mut self, var: &Var) -> Result<Option<(u64, u64)>, ReadError> {
        use hdf5_sys::h5d::{H5Dget_offset, H5Dget_storage_size};
        let path = self.path.clone();
        let fail = |what: &'static str| hdf5_error(&path, var, what);
        let file_len = self.file_len;
        let did = self.dataset(var)?.id();
        hdf5::sync::sync(|| {
            // SAFETY: two HDF5 C calls on a dataset id owned by `self`,
            // under the library lock. (Unlike the chunk index, H5Dget_offset
            // counts from the start of the file, user block included.)
            unsafe {
                let addr = H5Dget_offset(did);
                let size = H5Dget_storage_size(did);
                if addr == hdf5_sys::h5::HADDR_UNDEF || size == 0 {
                    return Ok(None);
                }
                if addr.saturating_add(size) > file_len {
                    return Err(fail("a data block beyond the end of the file"));
                }
                Ok(Some((addr, size)))
            }
        })
    }

    /// Current dimensions of `var`'s dataset.
    ///
    /// # Errors
    /// [`ReadError::Hdf5`] when the dataset or its dataspace cannot be read.
    pub fn extent(&mut self, var: &Var) -> Result<Vec<u64>, ReadError> {
        let path = self.path.clone();
        let ds = self.dataset(var)?;
        ds.space()
            .map(|s| s.shape().into_iter().map(|x| x as u64).collect())
            .map_err(|e| ReadError::Hdf5 {
                path,
                var: var.path.clone(),
                what: "dataspace",
                msg: e.to_string(),
            })
    }

    fn read_inside(
        &mut self,
        var: &Var,
        start: &[u64],
        count: &[u64],
    ) -> Result<Vec<u8>, ReadError> {
        let path = self.path.clone();
        let fail = |what: &'static str| hdf5_error(&path, var, what);
        let did = self.dataset(var)?.id();
        let n: u64 = count.iter().fold(1u64, |a, &c| a.saturating_mul(c));
        let elem = var.dtype.size() as u64;
        let rank = i32::try_from(count.len()).map_err(|_| fail("rank"))?;
        let start: Vec<hsize_t> = start.to_vec();
        let count: Vec<hsize_t> = count.to_vec();
        hdf5::sync::sync(|| {
            // SAFETY: plain HDF5 C calls on ids owned here or by `self`,
            // under the library lock; every id created is closed below.
            unsafe {
                let ftype = H5Dget_type(did);
                if ftype < 0 {
                    return Err(fail("get type"));
                }
                let mtype = H5Tget_native_type(ftype, H5T_direction_t::H5T_DIR_ASCEND);
                H5Tclose(ftype);
                if mtype < 0 {
                    return Err(fail("native type"));
                }
                let size = H5Tget_size(mtype) as u64;
                if size != elem {
                    H5Tclose(mtype);
                    return Err(fail("element size differs from the netCDF type"));
                }
                let total = n
                    .checked_mul(size)
                    .and_then(|t| usize::try_from(t).ok())
                    .ok_or_else(|| fail("size"))?;
                let mut buf: Vec<u8> = vec![0; total];
                let fspace = H5Dget_space(did);
                let mspace = if rank == 0 {
                    H5Screate(H5S_class_t::H5S_SCALAR)
                } else {
                    H5Screate_simple(rank, count.as_ptr(), std::ptr::null())
                };
                let mut status = if fspace < 0 || mspace < 0 { -1 } else { 0 };
                if status >= 0 && rank > 0 {
                    status = H5Sselect_hyperslab(
                        fspace,
                        H5S_seloper_t::H5S_SELECT_SET,
                        start.as_ptr(),
                        std::ptr::null(),
                        count.as_ptr(),
                        std::ptr::null(),
                    );
                }
                if status >= 0 {
                    status = H5Dread(
                        did,
                        mtype,
                        mspace,
                        fspace,
                        H5P_DEFAULT,
                        buf.as_mut_ptr().cast(),
                    );
                }
                let err = (status < 0).then(|| fail("read"));
                if mspace >= 0 {
                    H5Sclose(mspace);
                }
                if fspace >= 0 {
                    H5Sclose(fspace);
                }
                H5Tclose(mtype);
                err.map_or(Ok(buf), Err)
            }
        })
    }

    /// Filters of `var`'s dataset as text (for `inspect`).
    pub fn filters(&mut self, var: &Var) -> Vec<String> {
        self.dataset(var)
            .map(|ds| ds.filters().iter().map(|f| format!("{f:?}")).collect())
            .unwrap_or_default()
    }
}

/// Whether HDF5 stores `dtype` exactly as the native little-endian type
/// zarrforge writes (so raw chunk bytes need no conversion).
/// HDF5's index entry of the chunk at element `offset` of dataset `did`:
/// its address (from the file's base address), size and mask of skipped
/// filters; `None` for a chunk never written; `Err` when HDF5 fails.
///
/// # Safety
/// Call under the HDF5 lock with a valid dataset id.
unsafe fn chunk_info(
    did: hdf5_sys::h5i::hid_t,
    offset: &[hsize_t],
) -> Result<Option<(u64, u64, u32)>, ()> {
    let mut mask: u32 = 0;
    let mut addr: hdf5_sys::h5::haddr_t = 0;
    let mut size: hsize_t = 0;
    if hdf5_sys::h5d::H5Dget_chunk_info_by_coord(
        did,
        offset.as_ptr(),
        &raw mut mask,
        &raw mut addr,
        &raw mut size,
    ) < 0
    {
        return Err(());
    }
    if addr == hdf5_sys::h5::HADDR_UNDEF {
        return Ok(None);
    }
    Ok(Some((addr, size, mask)))
}

/// The byte order of `did`'s stored type when it is `dtype` stored as plain
/// numbers (IEEE floats, two's-complement integers) in either order.
///
/// # Safety
/// Call under the HDF5 lock with a valid dataset id.
unsafe fn stored_order(did: hdf5_sys::h5i::hid_t, dtype: DType) -> Option<Endian> {
    use hdf5_sys::h5t::{H5T_order_t, H5Tcopy, H5Tequal, H5Tget_order, H5Tset_order};
    let native = native_type(dtype)?;
    let stored = H5Dget_type(did);
    if stored < 0 {
        return None;
    }
    let order = H5Tget_order(stored);
    let endian = match order {
        H5T_order_t::H5T_ORDER_LE => Endian::Little,
        H5T_order_t::H5T_ORDER_BE => Endian::Big,
        H5T_order_t::H5T_ORDER_NONE if dtype.size() == 1 => Endian::Little,
        _ => {
            H5Tclose(stored);
            return None;
        }
    };
    // The native type with the stored order must equal the stored type.
    let probe = H5Tcopy(native.id());
    let same = probe >= 0
        && (dtype.size() == 1 || H5Tset_order(probe, order) >= 0)
        && H5Tequal(probe, stored) > 0;
    if probe >= 0 {
        H5Tclose(probe);
    }
    H5Tclose(stored);
    same.then_some(endian)
}

/// The filters of a dataset creation property list as Zarr codecs, or the
/// name of the first one no Zarr reader undoes.
///
/// # Safety
/// Call under the HDF5 lock with a valid property list id.
unsafe fn filter_pipeline(
    dcpl: hdf5_sys::h5i::hid_t,
    endian: Endian,
    elem: usize,
) -> Result<SourceCodecs, String> {
    use hdf5_sys::h5p::{H5Pget_filter2, H5Pget_nfilters};
    let n = H5Pget_nfilters(dcpl);
    let mut filters = Vec::new();
    for i in 0..u32::try_from(n).unwrap_or(0) {
        let mut flags: u32 = 0;
        let mut cd = [0u32; 32];
        let mut ncd: usize = cd.len();
        let mut name = [0 as std::ffi::c_char; 128];
        let mut config: u32 = 0;
        let id = H5Pget_filter2(
            dcpl,
            i,
            &raw mut flags,
            &raw mut ncd,
            cd.as_mut_ptr(),
            name.len(),
            name.as_mut_ptr(),
            &raw mut config,
        );
        let cd = &cd[..ncd.min(32)];
        let label = std::ffi::CStr::from_ptr(name.as_ptr()).to_string_lossy();
        // Plugins' names run on ("HDF5 lz4 filter; see https://...").
        let label = label.split(';').next().unwrap_or("").trim().to_string();
        filters.push(map_filter(id, cd, elem).ok_or_else(|| {
            let label = if label.is_empty() {
                "unnamed".into()
            } else {
                label
            };
            format!("HDF5 filter {id} ({label}), which Zarr readers do not decode")
        })?);
    }
    Ok(SourceCodecs { endian, filters })
}

/// One HDF5 filter as a Zarr codec, from its id and client data.
fn map_filter(id: i32, cd: &[u32], elem: usize) -> Option<Filter> {
    let elem32 = u32::try_from(elem).unwrap_or(0);
    Some(match id {
        1 => Filter::Zlib {
            level: cd.first().copied().unwrap_or(6).min(9),
        },
        2 => Filter::Shuffle {
            elem: cd.first().copied().filter(|&e| e > 0).unwrap_or(elem32),
        },
        3 => Filter::Fletcher32,
        32015 => Filter::Zstd {
            level: cd.first().and_then(|&l| i32::try_from(l).ok()).unwrap_or(3),
        },
        32001 => {
            // cd: filter revision, Blosc version, type size, chunk bytes,
            // level, shuffle, compressor code.
            let cname = match cd.get(6).copied().unwrap_or(0) {
                0 => "blosclz",
                1 => "lz4",
                2 => "lz4hc",
                4 => "zlib",
                5 => "zstd",
                _ => return None,
            };
            Filter::Blosc {
                cname: cname.into(),
                clevel: cd.get(4).copied().unwrap_or(5).min(9),
                shuffle: cd.get(5).copied().unwrap_or(1).min(2),
                typesize: cd.get(2).copied().filter(|&t| t > 0).unwrap_or(elem32),
            }
        }
        _ => return None,
    })
}

/// The native HDF5 type of `dtype` (chars as one byte), if it has one.
fn native_type(dtype: DType) -> Option<hdf5::Datatype> {
    use hdf5::Datatype as T;
    match dtype {
        DType::I8 => T::from_type::<i8>(),
        DType::U8 | DType::Char => T::from_type::<u8>(),
        DType::I16 => T::from_type::<i16>(),
        DType::U16 => T::from_type::<u16>(),
        DType::I32 => T::from_type::<i32>(),
        DType::U32 => T::from_type::<u32>(),
        DType::I64 => T::from_type::<i64>(),
        DType::U64 => T::from_type::<u64>(),
        DType::F32 => T::from_type::<f32>(),
        DType::F64 => T::from_type::<f64>(),
        DType::String => return None,
    }
    .ok()
}

fn stored_as_native(dtype: DType, t: &hdf5::Datatype) -> bool {
    match dtype {
        // netCDF chars: one-byte strings, copied as bytes.
        DType::Char => t.size() == 1,
        d => native_type(d).is_some_and(|n| &n == t),
    }
}
