//! The sources as netCDF-C returns them: structure, attributes with their
//! netCDF types, and raw values.
//!
//! Nothing here goes through zarrforge's readers (`read/`, which use HDF5)
//! or its schema: every file is opened with netCDF-C (the `netcdf` crate),
//! and `string` variables are read with `nc_get_vara_string` directly.

use std::ffi::{c_char, c_int, CStr, CString};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::VerifyError;

pub(crate) use super::values::NcType;

/// A netCDF attribute value with its netCDF type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub(crate) enum NcAttr {
    I8(Vec<i8>),
    U8(Vec<u8>),
    I16(Vec<i16>),
    U16(Vec<u16>),
    I32(Vec<i32>),
    U32(Vec<u32>),
    I64(Vec<i64>),
    U64(Vec<u64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    /// `char` text.
    Text(String),
    /// `string` values.
    Strings(Vec<String>),
    /// An enum's members (name, value), which a store keeps as a JSON
    /// object attribute (`enum`, as xarray does).
    Members(Vec<(String, i128)>),
}

impl NcAttr {
    /// The text of a `char` attribute or of a single `string`.
    pub(crate) fn text(&self) -> Option<&str> {
        match self {
            Self::Text(s) => Some(s),
            Self::Strings(v) if v.len() == 1 => Some(&v[0]),
            _ => None,
        }
    }

    /// Short human text, e.g. `1.5 (float)` or `"K" (char)`.
    pub(crate) fn show(&self) -> String {
        fn list<T: std::fmt::Debug>(v: &[T], t: &str) -> String {
            if v.len() == 1 {
                format!("{:?} ({t})", v[0])
            } else {
                format!("{v:?} ({t})")
            }
        }
        match self {
            Self::I8(v) => list(v, "byte"),
            Self::U8(v) => list(v, "ubyte"),
            Self::I16(v) => list(v, "short"),
            Self::U16(v) => list(v, "ushort"),
            Self::I32(v) => list(v, "int"),
            Self::U32(v) => list(v, "uint"),
            Self::I64(v) => list(v, "int64"),
            Self::U64(v) => list(v, "uint64"),
            Self::F32(v) => list(v, "float"),
            Self::F64(v) => list(v, "double"),
            Self::Text(s) => format!("{s:?} (char)"),
            Self::Strings(v) => list(v, "string"),
            Self::Members(m) => format!(
                "{{{}}} (enum members)",
                m.iter()
                    .map(|(k, v)| format!("{k:?}: {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// The type of a source variable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum VarType {
    /// A type Zarr can hold.
    Nc(NcType),
    /// Compound, opaque, enum or vlen: left out of a conversion.
    Unsupported(String),
}

/// An enum type: its name and members (name, value).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Enumeration {
    /// Type name.
    pub(crate) name: String,
    /// Members in netCDF-C's order.
    pub(crate) members: Vec<(String, i128)>,
}

/// A variable of one source file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SrcVar {
    /// Path from the root group: `name` or `group/sub/name`.
    pub(crate) path: String,
    /// Element type (an enum's base type).
    pub(crate) dtype: VarType,
    /// The enum type, for an enum variable.
    pub(crate) enumeration: Option<Enumeration>,
    /// Dimension names, outermost first.
    pub(crate) dims: Vec<String>,
    /// Shape.
    pub(crate) shape: Vec<u64>,
    /// Attributes in file order.
    pub(crate) attrs: Vec<(String, NcAttr)>,
}

impl SrcVar {
    /// The attribute called `name`.
    pub(crate) fn attr(&self, name: &str) -> Option<&NcAttr> {
        self.attrs.iter().find(|(n, _)| n == name).map(|(_, a)| a)
    }
}

/// A group of one source file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SrcGroup {
    /// Path from the root (`""` for the root group).
    pub(crate) path: String,
    /// Attributes in file order.
    pub(crate) attrs: Vec<(String, NcAttr)>,
}

/// What one source file holds, as netCDF-C reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct FileScan {
    /// The file.
    pub(crate) path: PathBuf,
    /// Groups, the root first.
    pub(crate) groups: Vec<SrcGroup>,
    /// Variables of every group, depth first.
    pub(crate) vars: Vec<SrcVar>,
    /// Dimensions of the root group: name, length, unlimited.
    pub(crate) dims: Vec<(String, u64, bool)>,
    /// Values (as `f64`) of the root coordinate variables of the candidate
    /// concatenation dimensions.
    pub(crate) coords: Vec<(String, Vec<f64>)>,
}

impl FileScan {
    /// The variable at `path`.
    pub(crate) fn var(&self, path: &str) -> Option<&SrcVar> {
        self.vars.iter().find(|v| v.path == path)
    }

    /// Length of the root dimension `dim`.
    pub(crate) fn dim_len(&self, dim: &str) -> Option<u64> {
        self.dims.iter().find(|d| d.0 == dim).map(|d| d.1)
    }
}

fn nc_err(path: &Path, what: impl Into<String>) -> impl FnOnce(netcdf::Error) -> VerifyError {
    let (path, what) = (path.to_path_buf(), what.into());
    move |source| VerifyError::Netcdf { path, what, source }
}

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}/{name}")
    }
}

/// The type of a variable, and for an enum (stored as its base integers)
/// its name and members.
fn map_type(t: &netcdf::types::NcVariableType) -> (VarType, Option<Enumeration>) {
    use netcdf::types::{EnumTypeValues as E, FloatType, IntType, NcVariableType as T};
    let nc = match t {
        T::Int(IntType::I8) => NcType::I8,
        T::Int(IntType::U8) => NcType::U8,
        T::Int(IntType::I16) => NcType::I16,
        T::Int(IntType::U16) => NcType::U16,
        T::Int(IntType::I32) => NcType::I32,
        T::Int(IntType::U32) => NcType::U32,
        T::Int(IntType::I64) => NcType::I64,
        T::Int(IntType::U64) => NcType::U64,
        T::Float(FloatType::F32) => NcType::F32,
        T::Float(FloatType::F64) => NcType::F64,
        T::Char => NcType::Char,
        T::String => NcType::Str,
        T::Enum(e) => {
            fn wide<T: Copy + Into<i128>>(v: &[T]) -> Vec<i128> {
                v.iter().map(|&x| x.into()).collect()
            }
            let (base, values) = match &e.fieldvalues {
                E::I8(v) => (NcType::I8, wide(v)),
                E::U8(v) => (NcType::U8, wide(v)),
                E::I16(v) => (NcType::I16, wide(v)),
                E::U16(v) => (NcType::U16, wide(v)),
                E::I32(v) => (NcType::I32, wide(v)),
                E::U32(v) => (NcType::U32, wide(v)),
                E::I64(v) => (NcType::I64, wide(v)),
                E::U64(v) => (NcType::U64, wide(v)),
            };
            let members = e.fieldnames.iter().cloned().zip(values).collect();
            return (
                VarType::Nc(base),
                Some(Enumeration {
                    name: e.name.clone(),
                    members,
                }),
            );
        }
        T::Compound(_) => return (VarType::Unsupported("compound".into()), None),
        T::Opaque(_) => return (VarType::Unsupported("opaque".into()), None),
        T::Vlen(_) => return (VarType::Unsupported("vlen".into()), None),
    };
    (VarType::Nc(nc), None)
}

/// Where an attribute lives, for the raw reads.
#[derive(Clone, Copy)]
struct Owner {
    gid: c_int,
    varid: c_int,
}

fn read_attrs<'a>(
    path: &Path,
    owner: &str,
    attrs: impl Iterator<Item = netcdf::Attribute<'a>>,
    raw: &RawNc,
    at: Owner,
) -> Result<Vec<(String, NcAttr)>, VerifyError> {
    use netcdf::AttributeValue as A;
    let mut out = Vec::new();
    for a in attrs {
        let name = a.name().to_string();
        let what = || format!("attribute '{name}' of '{owner}'");
        let value = match a.value() {
            // The crate cuts text at the first NUL; readers (netCDF4-python)
            // drop the NULs and keep the rest.
            Ok(A::Str(_)) | Err(netcdf::Error::TypeUnknown(_)) => {
                match raw.attr(at, &name).map_err(nc_err(path, what()))? {
                    Some(v) => {
                        out.push((name, v));
                        continue;
                    }
                    // Compound, opaque, vlen: Zarr attributes cannot hold
                    // them, a store has no such attribute.
                    None => continue,
                }
            }
            Ok(v) => v,
            Err(e) => return Err(nc_err(path, what())(e)),
        };
        out.push((
            name,
            match value {
                A::Uchar(x) => NcAttr::U8(vec![x]),
                A::Uchars(x) => NcAttr::U8(x),
                A::Schar(x) => NcAttr::I8(vec![x]),
                A::Schars(x) => NcAttr::I8(x),
                A::Ushort(x) => NcAttr::U16(vec![x]),
                A::Ushorts(x) => NcAttr::U16(x),
                A::Short(x) => NcAttr::I16(vec![x]),
                A::Shorts(x) => NcAttr::I16(x),
                A::Uint(x) => NcAttr::U32(vec![x]),
                A::Uints(x) => NcAttr::U32(x),
                A::Int(x) => NcAttr::I32(vec![x]),
                A::Ints(x) => NcAttr::I32(x),
                A::Ulonglong(x) => NcAttr::U64(vec![x]),
                A::Ulonglongs(x) => NcAttr::U64(x),
                A::Longlong(x) => NcAttr::I64(vec![x]),
                A::Longlongs(x) => NcAttr::I64(x),
                A::Float(x) => NcAttr::F32(vec![x]),
                A::Floats(x) => NcAttr::F32(x),
                A::Double(x) => NcAttr::F64(vec![x]),
                A::Doubles(x) => NcAttr::F64(x),
                A::Str(s) => NcAttr::Text(s),
                A::Strs(v) => NcAttr::Strings(v),
            },
        ));
    }
    Ok(out)
}

fn read_vars<'a>(
    path: &Path,
    gpath: &str,
    vars: impl Iterator<Item = netcdf::Variable<'a>>,
    raw: &RawNc,
    gid: c_int,
    out: &mut Vec<SrcVar>,
) -> Result<(), VerifyError> {
    for v in vars {
        let name = v.name();
        let vpath = join(gpath, &name);
        let varid = raw
            .var(gid, &name)
            .map_err(nc_err(path, format!("variable '{vpath}'")))?;
        let attrs = read_attrs(path, &vpath, v.attributes(), raw, Owner { gid, varid })?;
        let (dtype, enumeration) = map_type(&v.vartype());
        out.push(SrcVar {
            dtype,
            enumeration,
            dims: v.dimensions().iter().map(netcdf::Dimension::name).collect(),
            shape: v.dimensions().iter().map(|d| d.len() as u64).collect(),
            attrs,
            path: vpath,
        });
    }
    Ok(())
}

fn read_group(
    path: &Path,
    g: &netcdf::Group<'_>,
    gpath: &str,
    raw: &RawNc,
    groups: &mut Vec<SrcGroup>,
    vars: &mut Vec<SrcVar>,
) -> Result<(), VerifyError> {
    let gid = raw
        .group(gpath)
        .map_err(nc_err(path, format!("group '/{gpath}'")))?;
    let global = Owner {
        gid,
        varid: netcdf_sys::NC_GLOBAL,
    };
    groups.push(SrcGroup {
        path: gpath.to_string(),
        attrs: read_attrs(
            path,
            if gpath.is_empty() { "/" } else { gpath },
            g.attributes(),
            raw,
            global,
        )?,
    });
    read_vars(path, gpath, g.variables(), raw, gid, vars)?;
    for child in g.groups() {
        let cpath = join(gpath, &child.name());
        read_group(path, &child, &cpath, raw, groups, vars)?;
    }
    Ok(())
}

/// Reads the structure of `path`, and the values of the root coordinate
/// variables of `coord_dims` (all root unlimited dimensions when empty).
///
/// # Errors
/// [`VerifyError::Netcdf`] when netCDF-C cannot open or read the file.
pub(crate) fn scan(path: &Path, coord_dims: &[String]) -> Result<FileScan, VerifyError> {
    let file = netcdf::open(path).map_err(nc_err(path, "cannot open with netCDF-C"))?;
    let raw = RawNc::open(path).map_err(nc_err(path, "cannot open with netCDF-C"))?;
    let mut groups = Vec::new();
    let mut vars = Vec::new();
    let dims: Vec<(String, u64, bool)> = match file.root() {
        Some(root) => {
            read_group(path, &root, "", &raw, &mut groups, &mut vars)?;
            root.dimensions()
                .map(|d| (d.name(), d.len() as u64, d.is_unlimited()))
                .collect()
        }
        // netCDF-3: no group API.
        None => {
            let global = Owner {
                gid: raw.0,
                varid: netcdf_sys::NC_GLOBAL,
            };
            groups.push(SrcGroup {
                path: String::new(),
                attrs: read_attrs(path, "/", file.attributes(), &raw, global)?,
            });
            read_vars(path, "", file.variables(), &raw, raw.0, &mut vars)?;
            file.dimensions()
                .map(|d| (d.name(), d.len() as u64, d.is_unlimited()))
                .collect()
        }
    };
    let wanted: Vec<String> = if coord_dims.is_empty() {
        dims.iter().filter(|d| d.2).map(|d| d.0.clone()).collect()
    } else {
        coord_dims.to_vec()
    };
    let mut coords = Vec::new();
    for dim in wanted {
        let Some(v) = vars
            .iter()
            .find(|v| v.path == dim && v.dims.len() == 1 && v.dims[0] == dim)
        else {
            continue;
        };
        let VarType::Nc(t) = v.dtype else { continue };
        if matches!(t, NcType::Char | NcType::Str) {
            continue;
        }
        let n = v.shape[0];
        let values = if n == 0 {
            Vec::new()
        } else {
            let var = file.variable(&dim).ok_or_else(|| VerifyError::Netcdf {
                path: path.to_path_buf(),
                what: format!("variable '{dim}'"),
                source: netcdf::Error::NotFound(dim.clone()),
            })?;
            let bytes = var
                .get_raw_values(netcdf::Extents::from(..))
                .map_err(nc_err(path, format!("read '{dim}'")))?;
            (0..bytes.len() / t.size())
                .map(|i| crate::commands::verify::values::as_f64(t, &bytes, i))
                .collect()
        };
        coords.push((dim, values));
    }
    Ok(FileScan {
        path: path.to_path_buf(),
        groups,
        vars,
        dims,
        coords,
    })
}

/// Values read from a source.
pub(crate) enum Raw {
    /// Fixed-size elements, native (little-endian) byte order.
    Fixed(Vec<u8>),
    /// Strings.
    Strings(Vec<String>),
}

/// Open source files, kept for the regions that follow (a few at a time).
pub(crate) struct Sources {
    paths: Vec<PathBuf>,
    open: Vec<(usize, netcdf::File)>,
}

/// Files kept open at once.
const OPEN_FILES: usize = 16;

impl Sources {
    /// The files, by index.
    pub(crate) fn new(paths: Vec<PathBuf>) -> Self {
        Self {
            paths,
            open: Vec::new(),
        }
    }

    fn file(&mut self, i: usize) -> Result<&netcdf::File, VerifyError> {
        if let Some(k) = self.open.iter().position(|(j, _)| *j == i) {
            // Most recently used last.
            let entry = self.open.remove(k);
            self.open.push(entry);
        } else {
            let path = &self.paths[i];
            let f = netcdf::open(path).map_err(nc_err(path, "cannot open with netCDF-C"))?;
            if self.open.len() >= OPEN_FILES {
                self.open.remove(0);
            }
            self.open.push((i, f));
        }
        Ok(&self.open[self.open.len() - 1].1)
    }

    /// The values of `var` in file `i` over `start`/`count`.
    ///
    /// # Errors
    /// [`VerifyError::Netcdf`] when netCDF-C cannot read them.
    pub(crate) fn read(
        &mut self,
        i: usize,
        var: &str,
        dtype: NcType,
        start: &[u64],
        count: &[u64],
    ) -> Result<Raw, VerifyError> {
        let path = self.paths[i].clone();
        if dtype == NcType::Str {
            return read_strings(&path, var, start, count).map(Raw::Strings);
        }
        let file = self.file(i)?;
        let v = file.variable(var).ok_or_else(|| VerifyError::Netcdf {
            path: path.clone(),
            what: format!("variable '{var}'"),
            source: netcdf::Error::NotFound(var.to_string()),
        })?;
        let what = || format!("read '{var}' at {start:?} count {count:?}");
        let bytes = if start.is_empty() {
            v.get_raw_values(netcdf::Extents::from(()))
        } else {
            let s: Vec<usize> = start.iter().map(|&x| to_usize(x)).collect();
            let c: Vec<usize> = count.iter().map(|&x| to_usize(x)).collect();
            netcdf::Extents::try_from((s, c)).and_then(|e| v.get_raw_values(e))
        }
        .map_err(nc_err(&path, what()))?;
        Ok(Raw::Fixed(bytes))
    }
}

fn to_usize(x: u64) -> usize {
    usize::try_from(x).unwrap_or(usize::MAX)
}

/// A netCDF-C status as a `Result` (the one door for the raw calls below).
fn checked(status: std::ffi::c_int) -> Result<(), netcdf::Error> {
    if status == 0 {
        Ok(())
    } else {
        Err(netcdf::Error::Netcdf(status))
    }
}

/// A file opened by raw netCDF-C (closed on drop), for what the `netcdf`
/// crate does not read the way readers do: text attributes with NULs,
/// enum-typed attributes, `string` variables with NIL elements. Every
/// call holds netCDF-C's lock and goes through [`checked`].
struct RawNc(c_int);

impl Drop for RawNc {
    fn drop(&mut self) {
        let _g = netcdf_sys::libnetcdf_lock.lock();
        // SAFETY: the id came from a successful nc_open and is closed once.
        unsafe { netcdf_sys::nc_close(self.0) };
    }
}

fn c_string(s: &str) -> Result<CString, netcdf::Error> {
    CString::new(s).map_err(Into::into)
}

impl RawNc {
    fn open(path: &Path) -> Result<Self, netcdf::Error> {
        let c_path = c_string(&path.to_string_lossy())?;
        let _g = netcdf_sys::libnetcdf_lock.lock();
        let mut ncid = 0;
        // SAFETY: a NUL-terminated path and a valid out pointer.
        checked(unsafe {
            netcdf_sys::nc_open(c_path.as_ptr(), netcdf_sys::NC_NOWRITE, &raw mut ncid)
        })?;
        Ok(Self(ncid))
    }

    /// The id of the group at `path` (`""`: the root).
    fn group(&self, path: &str) -> Result<c_int, netcdf::Error> {
        if path.is_empty() {
            return Ok(self.0);
        }
        let c = c_string(&format!("/{path}"))?;
        let _g = netcdf_sys::libnetcdf_lock.lock();
        let mut gid = 0;
        // SAFETY: an open file id, a NUL-terminated path, a valid out pointer.
        checked(unsafe { netcdf_sys::nc_inq_grp_full_ncid(self.0, c.as_ptr(), &raw mut gid) })?;
        Ok(gid)
    }

    /// The id of variable `name` in group `gid`.
    fn var(&self, gid: c_int, name: &str) -> Result<c_int, netcdf::Error> {
        let c = c_string(name)?;
        let _g = netcdf_sys::libnetcdf_lock.lock();
        let mut varid = 0;
        // SAFETY: a group id of the open file, a NUL-terminated name, a
        // valid out pointer.
        checked(unsafe { netcdf_sys::nc_inq_varid(gid, c.as_ptr(), &raw mut varid) })?;
        Ok(varid)
    }

    /// A `char` attribute with its NULs dropped, or an enum-typed one as
    /// its base integers; `None` for other user-defined types.
    fn attr(&self, at: Owner, name: &str) -> Result<Option<NcAttr>, netcdf::Error> {
        use netcdf_sys as s;
        let c = c_string(name)?;
        let _g = s::libnetcdf_lock.lock();
        let (mut xtype, mut len) = (0, 0usize);
        // SAFETY: ids of the open file, a NUL-terminated name, valid out
        // pointers.
        checked(unsafe {
            s::nc_inq_att(at.gid, at.varid, c.as_ptr(), &raw mut xtype, &raw mut len)
        })?;
        if xtype == s::NC_CHAR {
            let mut buf = vec![0u8; len];
            if len > 0 {
                // SAFETY: `buf` holds the attribute's `len` chars.
                checked(unsafe {
                    s::nc_get_att_text(at.gid, at.varid, c.as_ptr(), buf.as_mut_ptr().cast())
                })?;
            }
            buf.retain(|&b| b != 0);
            return Ok(Some(NcAttr::Text(
                String::from_utf8_lossy(&buf).into_owned(),
            )));
        }
        if xtype <= s::NC_MAX_ATOMIC_TYPE {
            return Ok(None);
        }
        let mut tname = vec![0u8; 257];
        let (mut size, mut base, mut nfields, mut class) = (0usize, 0, 0usize, 0);
        // SAFETY: a name buffer of NC_MAX_NAME + 1 bytes and valid out pointers.
        checked(unsafe {
            s::nc_inq_user_type(
                at.gid,
                xtype,
                tname.as_mut_ptr().cast(),
                &raw mut size,
                &raw mut base,
                &raw mut nfields,
                &raw mut class,
            )
        })?;
        if class != s::NC_ENUM {
            return Ok(None);
        }
        let width = match base {
            s::NC_BYTE | s::NC_UBYTE => 1,
            s::NC_SHORT | s::NC_USHORT => 2,
            s::NC_INT | s::NC_UINT => 4,
            s::NC_INT64 | s::NC_UINT64 => 8,
            _ => return Ok(None),
        };
        if size != width {
            return Ok(None);
        }
        let mut buf = vec![0u8; len * width];
        if len > 0 {
            // SAFETY: `buf` holds `len` values of the enum's base size.
            checked(unsafe {
                s::nc_get_att(at.gid, at.varid, c.as_ptr(), buf.as_mut_ptr().cast())
            })?;
        }
        fn each<const N: usize, T>(b: &[u8], f: impl Fn([u8; N]) -> T) -> Vec<T> {
            b.chunks_exact(N)
                .map(|c| {
                    let mut a = [0u8; N];
                    a.copy_from_slice(c);
                    f(a)
                })
                .collect()
        }
        Ok(Some(match base {
            s::NC_BYTE => NcAttr::I8(each(&buf, i8::from_ne_bytes)),
            s::NC_UBYTE => NcAttr::U8(buf),
            s::NC_SHORT => NcAttr::I16(each(&buf, i16::from_ne_bytes)),
            s::NC_USHORT => NcAttr::U16(each(&buf, u16::from_ne_bytes)),
            s::NC_INT => NcAttr::I32(each(&buf, i32::from_ne_bytes)),
            s::NC_UINT => NcAttr::U32(each(&buf, u32::from_ne_bytes)),
            s::NC_INT64 => NcAttr::I64(each(&buf, i64::from_ne_bytes)),
            _ => NcAttr::U64(each(&buf, u64::from_ne_bytes)),
        }))
    }

    /// A region of a `string` variable with `nc_get_vara_string`; NULL
    /// (never written) elements read as empty strings.
    fn strings(
        &self,
        gid: c_int,
        varid: c_int,
        start: &[usize],
        count: &[usize],
    ) -> Result<Vec<String>, netcdf::Error> {
        let n = count.iter().product::<usize>();
        if n == 0 {
            return Ok(Vec::new());
        }
        let mut ptrs: Vec<*mut c_char> = vec![std::ptr::null_mut(); n];
        let _g = netcdf_sys::libnetcdf_lock.lock();
        // SAFETY: start/count have one entry per dimension of the variable
        // (the caller's region of its shape) and `ptrs` holds exactly the
        // product of `count` pointers for netCDF-C to fill.
        checked(unsafe {
            netcdf_sys::nc_get_vara_string(
                gid,
                varid,
                start.as_ptr(),
                count.as_ptr(),
                ptrs.as_mut_ptr(),
            )
        })?;
        let out = ptrs
            .iter()
            .map(|&p| {
                if p.is_null() {
                    String::new()
                } else {
                    // SAFETY: a non-NULL pointer netCDF-C returned points to
                    // a NUL-terminated string it allocated.
                    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
                }
            })
            .collect();
        // SAFETY: the n pointers netCDF-C allocated above (NULLs allowed).
        unsafe { netcdf_sys::nc_free_string(n, ptrs.as_mut_ptr()) };
        Ok(out)
    }
}

/// Reads a region of the `string` variable `var` of `path`.
fn read_strings(
    path: &Path,
    var: &str,
    start: &[u64],
    count: &[u64],
) -> Result<Vec<String>, VerifyError> {
    let what = || format!("read '{var}' at {start:?} count {count:?}");
    let (group, name) = var.rsplit_once('/').unwrap_or(("", var));
    let raw = RawNc::open(path).map_err(nc_err(path, "cannot open with netCDF-C"))?;
    let s: Vec<usize> = start.iter().map(|&x| to_usize(x)).collect();
    let c: Vec<usize> = count.iter().map(|&x| to_usize(x)).collect();
    raw.group(group)
        .and_then(|gid| Ok((gid, raw.var(gid, name)?)))
        .and_then(|(gid, varid)| raw.strings(gid, varid, &s, &c))
        .map_err(nc_err(path, what()))
}
