//! netCDF-C through one checked door.
//!
//! The structure of a source (groups, dimensions, variables, types,
//! attributes) and the data of netCDF-3 files and of variable-length strings
//! are read with these few wrappers around `netcdf-sys`. Every call goes
//! through `checked`, under the library lock that the `netcdf` and `hdf5`
//! crates share (netCDF-C and HDF5 are not thread-safe); every size that
//! comes from the file is checked before it sizes a buffer, names are
//! checked UTF-8, and NULL pointers returned for variable-length strings
//! read as empty strings (what netCDF4-python and xarray show).

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::{Path, PathBuf};

use netcdf_sys as sys;

/// Longest name netCDF-C writes into a caller's buffer, NUL excluded.
const MAX_NAME: usize = sys::NC_MAX_NAME as usize;

/// Runs one netCDF-C call under the library lock and checks its status.
fn checked(f: impl FnOnce() -> c_int) -> Result<(), NcError> {
    let status = {
        let _guard = sys::libnetcdf_lock.lock();
        f()
    };
    if status == sys::NC_NOERR {
        return Ok(());
    }
    // SAFETY: nc_strerror returns a pointer to a static NUL-terminated
    // message for every status, known or not.
    let text = unsafe {
        let p = sys::nc_strerror(status);
        if p.is_null() {
            String::from("unknown error")
        } else {
            CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    };
    Err(NcError { code: status, text })
}

/// A name returned by netCDF-C in a buffer of `MAX_NAME + 1` bytes.
fn name_from(buf: &[u8]) -> Result<String, NcError> {
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8(buf[..end].to_vec()).map_err(|e| {
        NcError::invalid(format!(
            "a name is not valid UTF-8 ({:?})",
            String::from_utf8_lossy(e.as_bytes())
        ))
    })
}

/// Converts a count returned by netCDF-C.
fn count(n: c_int) -> Result<usize, NcError> {
    usize::try_from(n).map_err(|_| NcError::invalid(format!("negative count {n}")))
}

/// Elements in a hyperslab, checked against overflow and a buffer bound.
///
/// # Errors
/// When the product overflows or exceeds `max_bytes` for `elem` bytes each.
pub fn elements(count: &[usize], elem: usize, max_bytes: usize) -> Result<usize, NcError> {
    let n = count
        .iter()
        .try_fold(1usize, |acc, &c| acc.checked_mul(c))
        .ok_or_else(|| NcError::invalid("hyperslab size overflows"))?;
    match n.checked_mul(elem.max(1)) {
        Some(b) if b <= max_bytes => Ok(n),
        _ => Err(NcError::invalid(format!(
            "a read of {n} elements of {elem} bytes exceeds the {max_bytes}-byte bound"
        ))),
    }
}

/// The class of a netCDF type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NcType {
    /// An atomic type (`NC_BYTE` … `NC_STRING`).
    Atomic(i32),
    /// An enumeration over an integer base type.
    Enum {
        /// Type name.
        name: String,
        /// Base atomic type.
        base: i32,
        /// Members: name and value.
        members: Vec<(String, i64)>,
    },
    /// A type Zarr cannot hold: compound, opaque or vlen (with its class
    /// name and type name).
    Other {
        /// `compound`, `opaque`, `vlen`.
        class: &'static str,
        /// Type name.
        name: String,
    },
}

/// An open netCDF file (closed on drop).
#[derive(Debug)]
pub struct NcFile {
    ncid: c_int,
    path: PathBuf,
}

impl Drop for NcFile {
    fn drop(&mut self) {
        let ncid = self.ncid;
        // SAFETY: ncid came from nc_open and is closed once, here.
        let _ = checked(|| unsafe { sys::nc_close(ncid) });
    }
}

/// A variable's header entry.
#[derive(Debug, Clone)]
pub struct NcVar {
    /// Variable id in its group.
    pub varid: c_int,
    /// Name.
    pub name: String,
    /// Its type id.
    pub xtype: i32,
    /// Dimension ids, outermost first.
    pub dimids: Vec<c_int>,
    /// Number of attributes.
    pub natts: usize,
}

/// An attribute's value as netCDF-C returns it.
#[derive(Debug, Clone, PartialEq)]
pub enum NcAttr {
    /// Fixed-size numbers of atomic type `xtype` as native bytes.
    Numbers {
        /// The atomic type.
        xtype: i32,
        /// Native-endian bytes.
        bytes: Vec<u8>,
    },
    /// `NC_CHAR` text, NULs dropped and invalid UTF-8 replaced (as
    /// netCDF4-python does).
    Text(String),
    /// `NC_STRING` values (NULL pointers as empty strings).
    Strings(Vec<String>),
    /// A value of a type Zarr attributes cannot hold (its class).
    Unsupported(&'static str),
}

/// Size in bytes of an atomic fixed-size type, `None` otherwise.
pub fn atomic_size(xtype: i32) -> Option<usize> {
    Some(match xtype {
        sys::NC_BYTE | sys::NC_UBYTE | sys::NC_CHAR => 1,
        sys::NC_SHORT | sys::NC_USHORT => 2,
        sys::NC_INT | sys::NC_UINT | sys::NC_FLOAT => 4,
        sys::NC_INT64 | sys::NC_UINT64 | sys::NC_DOUBLE => 8,
        _ => return None,
    })
}

/// Largest single read of header-sized data (attributes, names): a bound
/// far above any real attribute, far below what a corrupt count would ask.
pub const MAX_ATTR_BYTES: usize = 1 << 30;

impl NcFile {
    /// Opens `path` read-only.
    ///
    /// # Errors
    /// [`NcError`] from `nc_open`.
    pub fn open(path: &Path) -> Result<Self, NcError> {
        use std::os::unix::ffi::OsStrExt;
        let c = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| NcError::invalid("the path contains a NUL byte"))?;
        let mut ncid: c_int = -1;
        // SAFETY: c is a valid NUL-terminated path; ncid is a valid out pointer.
        checked(|| unsafe { sys::nc_open(c.as_ptr(), sys::NC_NOWRITE, &raw mut ncid) })?;
        Ok(Self {
            ncid,
            path: path.to_path_buf(),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The root group id.
    pub fn root(&self) -> c_int {
        self.ncid
    }

    /// Whether the file is netCDF-4 (HDF5-based).
    ///
    /// # Errors
    /// [`NcError`] from `nc_inq_format`.
    pub fn is_netcdf4(&self) -> Result<bool, NcError> {
        let mut f: c_int = 0;
        let ncid = self.ncid;
        // SAFETY: valid ncid and out pointer.
        checked(|| unsafe { sys::nc_inq_format(ncid, &raw mut f) })?;
        Ok(f == sys::NC_FORMAT_NETCDF4 || f == sys::NC_FORMAT_NETCDF4_CLASSIC)
    }

    /// Child groups of `grp`.
    ///
    /// # Errors
    /// [`NcError`].
    pub fn groups(&self, grp: c_int) -> Result<Vec<c_int>, NcError> {
        ids(|n, p| unsafe { sys::nc_inq_grps(grp, n, p) })
    }

    /// The name of group `grp`.
    ///
    /// # Errors
    /// [`NcError`], also for a name that is not UTF-8.
    pub fn group_name(&self, grp: c_int) -> Result<String, NcError> {
        let mut buf = vec![0u8; MAX_NAME + 1];
        // SAFETY: buf holds NC_MAX_NAME + 1 bytes as netCDF-C requires.
        checked(|| unsafe { sys::nc_inq_grpname(grp, buf.as_mut_ptr().cast()) })?;
        name_from(&buf)
    }

    /// Dimension ids defined in `grp` (not its parents).
    ///
    /// # Errors
    /// [`NcError`].
    pub fn dim_ids(&self, grp: c_int) -> Result<Vec<c_int>, NcError> {
        ids(|n, p| unsafe { sys::nc_inq_dimids(grp, n, p, 0) })
    }

    /// Unlimited dimension ids visible in `grp`.
    ///
    /// # Errors
    /// [`NcError`].
    pub fn unlimited_ids(&self, grp: c_int) -> Result<Vec<c_int>, NcError> {
        ids(|n, p| unsafe { sys::nc_inq_unlimdims(grp, n, p) })
    }

    /// Name and current length of a dimension.
    ///
    /// # Errors
    /// [`NcError`].
    pub fn dim(&self, grp: c_int, dimid: c_int) -> Result<(String, u64), NcError> {
        let mut buf = vec![0u8; MAX_NAME + 1];
        let mut len: usize = 0;
        // SAFETY: buf holds NC_MAX_NAME + 1 bytes; len is a valid out pointer.
        checked(|| unsafe { sys::nc_inq_dim(grp, dimid, buf.as_mut_ptr().cast(), &raw mut len) })?;
        Ok((name_from(&buf)?, len as u64))
    }

    /// The variables of `grp`.
    ///
    /// # Errors
    /// [`NcError`].
    pub fn vars(&self, grp: c_int) -> Result<Vec<NcVar>, NcError> {
        let varids = ids(|n, p| unsafe { sys::nc_inq_varids(grp, n, p) })?;
        let mut out = Vec::with_capacity(varids.len());
        for varid in varids {
            let mut buf = vec![0u8; MAX_NAME + 1];
            let (mut xtype, mut ndims, mut natts): (sys::nc_type, c_int, c_int) = (0, 0, 0);
            // SAFETY: name buffer of NC_MAX_NAME + 1 bytes, valid out pointers;
            // dimids are asked separately once their number is known.
            checked(|| unsafe {
                sys::nc_inq_var(
                    grp,
                    varid,
                    buf.as_mut_ptr().cast(),
                    &raw mut xtype,
                    &raw mut ndims,
                    std::ptr::null_mut(),
                    &raw mut natts,
                )
            })?;
            let ndims = count(ndims)?;
            if ndims > sys::NC_MAX_VAR_DIMS as usize {
                return Err(NcError::invalid(format!("{ndims} dimensions")));
            }
            let mut dimids: Vec<c_int> = vec![0; ndims];
            // SAFETY: dimids holds ndims entries, as netCDF-C reported.
            checked(|| unsafe { sys::nc_inq_vardimid(grp, varid, dimids.as_mut_ptr()) })?;
            out.push(NcVar {
                varid,
                name: name_from(&buf)?,
                xtype,
                dimids,
                natts: count(natts)?,
            });
        }
        Ok(out)
    }

    /// Number of attributes of `grp` (`NC_GLOBAL`).
    ///
    /// # Errors
    /// [`NcError`].
    pub fn group_natts(&self, grp: c_int) -> Result<usize, NcError> {
        let mut n: c_int = 0;
        // SAFETY: valid out pointer.
        checked(|| unsafe { sys::nc_inq_natts(grp, &raw mut n) })?;
        count(n)
    }

    /// The class of type `xtype` as seen from `grp`.
    ///
    /// # Errors
    /// [`NcError`].
    pub fn type_of(&self, grp: c_int, xtype: i32) -> Result<NcType, NcError> {
        if xtype < sys::NC_FIRSTUSERTYPEID {
            return Ok(NcType::Atomic(xtype));
        }
        let mut buf = vec![0u8; MAX_NAME + 1];
        let (mut size, mut base, mut nfields, mut class): (usize, sys::nc_type, usize, c_int) =
            (0, 0, 0, 0);
        // SAFETY: name buffer of NC_MAX_NAME + 1 bytes, valid out pointers.
        checked(|| unsafe {
            sys::nc_inq_user_type(
                grp,
                xtype,
                buf.as_mut_ptr().cast(),
                &raw mut size,
                &raw mut base,
                &raw mut nfields,
                &raw mut class,
            )
        })?;
        let name = name_from(&buf)?;
        Ok(match class {
            sys::NC_ENUM => {
                let Some(width) = atomic_size(base).filter(|_| base != sys::NC_CHAR) else {
                    return Err(NcError::invalid(format!(
                        "enum type '{name}' has base type {base}"
                    )));
                };
                if nfields > 1 << 20 {
                    return Err(NcError::invalid(format!(
                        "enum type '{name}' has {nfields} members"
                    )));
                }
                let mut members = Vec::with_capacity(nfields);
                for i in 0..nfields {
                    let idx = c_int::try_from(i).map_err(|_| NcError::invalid("member index"))?;
                    let mut mname = vec![0u8; MAX_NAME + 1];
                    let mut value = [0u8; 8];
                    // SAFETY: name buffer of NC_MAX_NAME + 1 bytes; value holds
                    // 8 bytes, the largest base type.
                    checked(|| unsafe {
                        sys::nc_inq_enum_member(
                            grp,
                            xtype,
                            idx,
                            mname.as_mut_ptr().cast(),
                            value.as_mut_ptr().cast(),
                        )
                    })?;
                    members.push((name_from(&mname)?, int_value(base, &value[..width])));
                }
                NcType::Enum {
                    name,
                    base,
                    members,
                }
            }
            sys::NC_COMPOUND => NcType::Other {
                class: "compound",
                name,
            },
            sys::NC_OPAQUE => NcType::Other {
                class: "opaque",
                name,
            },
            sys::NC_VLEN => NcType::Other {
                class: "vlen",
                name,
            },
            _ => NcType::Other {
                class: "user-defined",
                name,
            },
        })
    }

    /// The chunk shape of a variable, `None` when contiguous or compact.
    ///
    /// # Errors
    /// [`NcError`].
    pub fn chunking(&self, grp: c_int, v: &NcVar) -> Result<Option<Vec<u64>>, NcError> {
        let mut storage: c_int = 0;
        let mut sizes = vec![0usize; v.dimids.len().max(1)];
        let varid = v.varid;
        // SAFETY: sizes holds one entry per dimension (at least one).
        checked(|| unsafe {
            sys::nc_inq_var_chunking(grp, varid, &raw mut storage, sizes.as_mut_ptr())
        })?;
        if storage != sys::NC_CHUNKED || v.dimids.is_empty() {
            return Ok(None);
        }
        sizes.truncate(v.dimids.len());
        Ok(Some(sizes.into_iter().map(|x| x as u64).collect()))
    }

    /// Whether a netCDF-4 variable is stored big-endian.
    ///
    /// # Errors
    /// [`NcError`].
    pub fn big_endian(&self, grp: c_int, varid: c_int) -> Result<bool, NcError> {
        let mut e: c_int = 0;
        // SAFETY: valid out pointer.
        checked(|| unsafe { sys::nc_inq_var_endian(grp, varid, &raw mut e) })?;
        Ok(e == sys::NC_ENDIAN_BIG)
    }

    /// Name of attribute number `k` of `varid` (`NC_GLOBAL` for the group).
    ///
    /// # Errors
    /// [`NcError`], also for a name that is not UTF-8.
    pub fn attr_name(&self, grp: c_int, varid: c_int, k: usize) -> Result<String, NcError> {
        let k = c_int::try_from(k).map_err(|_| NcError::invalid("attribute index"))?;
        let mut buf = vec![0u8; MAX_NAME + 1];
        // SAFETY: buf holds NC_MAX_NAME + 1 bytes.
        checked(|| unsafe { sys::nc_inq_attname(grp, varid, k, buf.as_mut_ptr().cast()) })?;
        name_from(&buf)
    }

    /// The value of attribute `name` of `varid`.
    ///
    /// # Errors
    /// [`NcError`], also for an attribute larger than [`MAX_ATTR_BYTES`].
    pub fn attr(&self, grp: c_int, varid: c_int, name: &str) -> Result<NcAttr, NcError> {
        let cname = CString::new(name).map_err(|_| NcError::invalid("attribute name"))?;
        let (mut xtype, mut len): (sys::nc_type, usize) = (0, 0);
        // SAFETY: valid name and out pointers.
        checked(|| unsafe {
            sys::nc_inq_att(grp, varid, cname.as_ptr(), &raw mut xtype, &raw mut len)
        })?;
        if xtype == sys::NC_STRING {
            elements(&[len], std::mem::size_of::<*mut c_char>(), MAX_ATTR_BYTES)?;
            let mut ptrs: Vec<*mut c_char> = vec![std::ptr::null_mut(); len];
            // SAFETY: ptrs holds len pointers, as netCDF-C reported.
            checked(|| unsafe {
                sys::nc_get_att_string(grp, varid, cname.as_ptr(), ptrs.as_mut_ptr())
            })?;
            // Attribute text is read as netCDF4-python reads it: invalid
            // UTF-8 replaced.
            return Ok(NcAttr::Strings(take_strings(ptrs, false)?));
        }
        // An enum-typed attribute (an enum variable's _FillValue) holds
        // values of the enum's base type.
        let xtype = if xtype >= sys::NC_FIRSTUSERTYPEID {
            match self.type_of(grp, xtype)? {
                NcType::Enum { base, .. } => base,
                NcType::Other { class, .. } => return Ok(NcAttr::Unsupported(class)),
                NcType::Atomic(x) => x,
            }
        } else {
            xtype
        };
        let Some(size) = atomic_size(xtype) else {
            return Ok(NcAttr::Unsupported("unknown"));
        };
        let n = elements(&[len], size, MAX_ATTR_BYTES)?;
        // Room for one more element: netCDF-C copies reserved text
        // attributes (`_NCProperties`, ...) with their NUL terminator.
        let mut bytes = vec![0u8; (n + 1) * size];
        if n > 0 {
            // SAFETY: bytes holds len elements of the attribute's type, and
            // one more.
            checked(|| unsafe {
                sys::nc_get_att(
                    grp,
                    varid,
                    cname.as_ptr(),
                    bytes.as_mut_ptr().cast::<c_void>(),
                )
            })?;
        }
        bytes.truncate(n * size);
        if xtype == sys::NC_CHAR {
            bytes.retain(|&b| b != 0);
            return Ok(NcAttr::Text(String::from_utf8_lossy(&bytes).into_owned()));
        }
        Ok(NcAttr::Numbers { xtype, bytes })
    }

    /// Whether attribute `name` of `varid` exists (nothing is read).
    pub fn has_attr(&self, grp: c_int, varid: c_int, name: &str) -> bool {
        let Ok(cname) = CString::new(name) else {
            return false;
        };
        let (mut xtype, mut len): (sys::nc_type, usize) = (0, 0);
        // SAFETY: valid name and out pointers.
        checked(|| unsafe {
            sys::nc_inq_att(grp, varid, cname.as_ptr(), &raw mut xtype, &raw mut len)
        })
        .is_ok()
    }

    /// Reads a hyperslab of a fixed-size variable as native bytes.
    ///
    /// # Errors
    /// [`NcError`]: a failed read or a hyperslab beyond `max_bytes`.
    pub fn get_vara(
        &self,
        grp: c_int,
        varid: c_int,
        start: &[usize],
        count: &[usize],
        elem: usize,
        max_bytes: usize,
    ) -> Result<Vec<u8>, NcError> {
        if start.len() != count.len() {
            return Err(NcError::invalid("start and count differ in rank"));
        }
        let n = elements(count, elem, max_bytes)?;
        let mut out = vec![0u8; n * elem];
        if n == 0 {
            return Ok(out);
        }
        // SAFETY: start/count have the variable's rank (checked by the
        // caller's schema; netCDF-C rejects a mismatch with NC_EINVALCOORDS
        // only for out-of-range values, so equal lengths are checked above)
        // and out holds every element of the hyperslab.
        checked(|| unsafe {
            sys::nc_get_vara(
                grp,
                varid,
                start.as_ptr(),
                count.as_ptr(),
                out.as_mut_ptr().cast::<c_void>(),
            )
        })?;
        Ok(out)
    }

    /// Reads a hyperslab converted by netCDF-C to `T` (`f64` or `i64`).
    ///
    /// # Errors
    /// [`NcError`].
    pub fn get_vara_as<T: Converted>(
        &self,
        grp: c_int,
        varid: c_int,
        start: &[usize],
        count: &[usize],
        max_bytes: usize,
    ) -> Result<Vec<T>, NcError> {
        if start.len() != count.len() {
            return Err(NcError::invalid("start and count differ in rank"));
        }
        let n = elements(count, std::mem::size_of::<T>(), max_bytes)?;
        let mut out = vec![T::default(); n];
        if n == 0 {
            return Ok(out);
        }
        // SAFETY: as get_vara, with out holding n values of T.
        checked(|| unsafe {
            T::get_vara(grp, varid, start.as_ptr(), count.as_ptr(), out.as_mut_ptr())
        })?;
        Ok(out)
    }

    /// Reads a hyperslab of an `NC_STRING` variable; NULL (NIL) strings
    /// read as empty strings.
    ///
    /// # Errors
    /// [`NcError`].
    pub fn get_vara_strings(
        &self,
        grp: c_int,
        varid: c_int,
        start: &[usize],
        count: &[usize],
        max_items: usize,
    ) -> Result<Vec<String>, NcError> {
        let n = elements(count, 1, max_items)?;
        let mut ptrs: Vec<*mut c_char> = vec![std::ptr::null_mut(); n];
        if n == 0 {
            return Ok(Vec::new());
        }
        // SAFETY: ptrs holds one pointer per element of the hyperslab.
        checked(|| unsafe {
            sys::nc_get_vara_string(
                grp,
                varid,
                start.as_ptr(),
                count.as_ptr(),
                ptrs.as_mut_ptr(),
            )
        })?;
        take_strings(ptrs, true)
    }

    /// The group id of `path` (`a/b`), the root for an empty path.
    ///
    /// # Errors
    /// [`NcError`] for a group that does not exist.
    pub fn group_at(&self, path: &str) -> Result<c_int, NcError> {
        let mut grp = self.ncid;
        for part in path.split('/').filter(|p| !p.is_empty()) {
            let c = CString::new(part).map_err(|_| NcError::invalid("group name"))?;
            let mut child: c_int = 0;
            // SAFETY: valid name and out pointer.
            checked(|| unsafe { sys::nc_inq_ncid(grp, c.as_ptr(), &raw mut child) })?;
            grp = child;
        }
        Ok(grp)
    }

    /// The group and variable id of the variable at `path` (`g/h/name`).
    ///
    /// # Errors
    /// [`NcError`] for a variable that does not exist.
    pub fn var_at(&self, path: &str) -> Result<(c_int, c_int), NcError> {
        let (parent, name) = path.rsplit_once('/').unwrap_or(("", path));
        let grp = self.group_at(parent)?;
        let c = CString::new(name).map_err(|_| NcError::invalid("variable name"))?;
        let mut varid: c_int = 0;
        // SAFETY: valid name and out pointer.
        checked(|| unsafe { sys::nc_inq_varid(grp, c.as_ptr(), &raw mut varid) })?;
        Ok((grp, varid))
    }
}

/// A value type netCDF-C converts to on reading.
pub trait Converted: Copy + Default {
    /// The `nc_get_vara_TYPE` call.
    ///
    /// # Safety
    /// As `nc_get_vara_TYPE`: `start`/`count` hold the variable's rank and
    /// `out` room for every element of the hyperslab.
    unsafe fn get_vara(
        grp: c_int,
        varid: c_int,
        start: *const usize,
        count: *const usize,
        out: *mut Self,
    ) -> c_int;
}

impl Converted for f64 {
    unsafe fn get_vara(
        grp: c_int,
        varid: c_int,
        start: *const usize,
        count: *const usize,
        out: *mut Self,
    ) -> c_int {
        // SAFETY: the caller's contract.
        unsafe { sys::nc_get_vara_double(grp, varid, start, count, out) }
    }
}

impl Converted for i64 {
    unsafe fn get_vara(
        grp: c_int,
        varid: c_int,
        start: *const usize,
        count: *const usize,
        out: *mut Self,
    ) -> c_int {
        // SAFETY: the caller's contract.
        unsafe { sys::nc_get_vara_longlong(grp, varid, start, count, out) }
    }
}

/// A list of ids from a two-call netCDF-C query (count, then ids).
fn ids(f: impl Fn(*mut c_int, *mut c_int) -> c_int) -> Result<Vec<c_int>, NcError> {
    let mut n: c_int = 0;
    checked(|| f(&raw mut n, std::ptr::null_mut()))?;
    let n = count(n)?;
    if n > 1 << 24 {
        return Err(NcError::invalid(format!("{n} items in one group")));
    }
    let mut out: Vec<c_int> = vec![0; n];
    if n > 0 {
        let mut again: c_int = 0;
        checked(|| f(&raw mut again, out.as_mut_ptr()))?;
        out.truncate(count(again)?.min(n));
    }
    Ok(out)
}

/// Copies strings returned by netCDF-C and frees them. With `strict`, a
/// value that is not UTF-8 is an error (netCDF4-python, hence xarray,
/// refuses to decode it); otherwise it is replaced.
fn take_strings(mut ptrs: Vec<*mut c_char>, strict: bool) -> Result<Vec<String>, NcError> {
    let out = ptrs
        .iter()
        .enumerate()
        .map(|(k, &p)| {
            if p.is_null() {
                return Ok(String::new());
            }
            // SAFETY: a non-NULL pointer from netCDF-C points to a
            // NUL-terminated string it allocated.
            let c = unsafe { CStr::from_ptr(p) };
            match c.to_str() {
                Ok(s) => Ok(s.to_string()),
                Err(_) if !strict => Ok(c.to_string_lossy().into_owned()),
                Err(_) => Err(NcError::invalid(format!(
                    "string value #{k} of the read is not valid UTF-8 ({:?})",
                    c.to_string_lossy()
                ))),
            }
        })
        .collect();
    let len = ptrs.len();
    // SAFETY: every pointer came from netCDF-C (or is NULL, which
    // nc_free_string skips); freed once.
    let _ = checked(|| unsafe { sys::nc_free_string(len, ptrs.as_mut_ptr()) });
    out
}

/// A native-endian integer of atomic type `xtype` widened to `i64`
/// (`u64` values above `i64::MAX` wrap, as enum values never are).
fn int_value(xtype: i32, b: &[u8]) -> i64 {
    let mut a = [0u8; 8];
    a[..b.len()].copy_from_slice(b);
    match xtype {
        sys::NC_BYTE => i64::from(i8::from_ne_bytes([a[0]])),
        sys::NC_UBYTE => i64::from(a[0]),
        sys::NC_SHORT => i64::from(i16::from_ne_bytes([a[0], a[1]])),
        sys::NC_USHORT => i64::from(u16::from_ne_bytes([a[0], a[1]])),
        sys::NC_INT => i64::from(i32::from_ne_bytes([a[0], a[1], a[2], a[3]])),
        sys::NC_UINT => i64::from(u32::from_ne_bytes([a[0], a[1], a[2], a[3]])),
        #[allow(clippy::cast_possible_wrap)]
        sys::NC_UINT64 => u64::from_ne_bytes(a) as i64,
        _ => i64::from_ne_bytes(a),
    }
}

/// A failed netCDF-C call: its status and netCDF-C's text for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text} (netCDF-C status {code})")]
pub struct NcError {
    /// The `NC_E*` status.
    pub code: i32,
    /// `nc_strerror`'s text, or what zarrforge found wrong with a result.
    pub text: String,
}

impl NcError {
    /// An error found by zarrforge in what netCDF-C returned.
    pub fn invalid(text: impl Into<String>) -> Self {
        Self {
            code: netcdf_sys::NC_EINVAL,
            text: text.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn element_counts_are_bounded() {
        assert_eq!(elements(&[2, 3], 4, 100).ok(), Some(6));
        assert!(elements(&[usize::MAX, 2], 1, usize::MAX).is_err());
        assert!(elements(&[1 << 40], 8, 1 << 30).is_err());
        assert_eq!(elements(&[], 8, 8).ok(), Some(1));
    }

    #[test]
    fn names_must_be_utf8() {
        assert_eq!(name_from(b"abc\0\0").ok().as_deref(), Some("abc"));
        assert!(name_from(b"a\xffb\0").is_err());
    }

    #[test]
    fn enum_values_widen() {
        assert_eq!(int_value(sys::NC_BYTE, &[0xff]), -1);
        assert_eq!(int_value(sys::NC_UBYTE, &[0xff]), 255);
        assert_eq!(int_value(sys::NC_SHORT, &(-2i16).to_ne_bytes()), -2);
    }
}
