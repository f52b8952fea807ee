//! The source's structure as plain data: groups, dimensions, variables,
//! types and attributes.
//!
//! Rank 0 reads it once through netCDF-C ([`read_schema`]) and broadcasts it
//! as JSON; every other stage works from this plain description.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::SchemaError;

/// On-disk format of a source file, from its signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SourceFormat {
    /// netCDF-3 classic, 64-bit offset or CDF5: read through netCDF-C.
    Netcdf3,
    /// netCDF-4 (HDF5): read through parallel HDF5.
    Netcdf4,
}

/// Element type of a variable, as it is stored in Zarr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum DType {
    I8,
    U8,
    I16,
    U16,
    I32,
    U32,
    I64,
    U64,
    F32,
    F64,
    /// netCDF `char`: one byte, numpy `S1`.
    Char,
    /// netCDF `string` (variable length UTF-8).
    String,
}

impl DType {
    /// Size of one element in memory; strings count as 16 bytes for planning.
    pub fn size(self) -> usize {
        match self {
            Self::I8 | Self::U8 | Self::Char => 1,
            Self::I16 | Self::U16 => 2,
            Self::I32 | Self::U32 | Self::F32 => 4,
            Self::I64 | Self::U64 | Self::F64 => 8,
            Self::String => 16,
        }
    }

    /// Zarr v3 core data type name (chars are encoded as `uint8`).
    pub fn v3_name(self) -> &'static str {
        match self {
            Self::I8 => "int8",
            Self::U8 | Self::Char => "uint8",
            Self::I16 => "int16",
            Self::U16 => "uint16",
            Self::I32 => "int32",
            Self::U32 => "uint32",
            Self::I64 => "int64",
            Self::U64 => "uint64",
            Self::F32 => "float32",
            Self::F64 => "float64",
            Self::String => "string",
        }
    }

    /// Zarr v2 (numpy) dtype string.
    pub fn v2_name(self) -> &'static str {
        match self {
            Self::I8 => "|i1",
            Self::U8 => "|u1",
            Self::Char => "|S1",
            Self::I16 => "<i2",
            Self::U16 => "<u2",
            Self::I32 => "<i4",
            Self::U32 => "<u4",
            Self::I64 => "<i8",
            Self::U64 => "<u8",
            Self::F32 => "<f4",
            Self::F64 => "<f8",
            Self::String => "|O",
        }
    }

    /// netCDF's name for the type (for `inspect`).
    pub fn nc_name(self) -> &'static str {
        match self {
            Self::I8 => "byte",
            Self::U8 => "ubyte",
            Self::I16 => "short",
            Self::U16 => "ushort",
            Self::I32 => "int",
            Self::U32 => "uint",
            Self::I64 => "int64",
            Self::U64 => "uint64",
            Self::F32 => "float",
            Self::F64 => "double",
            Self::Char => "char",
            Self::String => "string",
        }
    }

    /// netCDF's default fill value (`NC_FILL_*`) as little-endian bytes: what
    /// netCDF-C returns for elements never written when a variable has no
    /// `_FillValue`.
    pub fn netcdf_default_fill(self) -> Vec<u8> {
        match self {
            Self::I8 => (-127i8).to_le_bytes().to_vec(),
            Self::U8 => 255u8.to_le_bytes().to_vec(),
            Self::I16 => (-32767i16).to_le_bytes().to_vec(),
            Self::U16 => 65535u16.to_le_bytes().to_vec(),
            Self::I32 => (-2_147_483_647i32).to_le_bytes().to_vec(),
            Self::U32 => 4_294_967_295u32.to_le_bytes().to_vec(),
            Self::I64 => (-9_223_372_036_854_775_806i64).to_le_bytes().to_vec(),
            Self::U64 => 18_446_744_073_709_551_614u64.to_le_bytes().to_vec(),
            Self::F32 => 9.969_21e36_f32.to_le_bytes().to_vec(),
            Self::F64 => 9.969_209_968_386_869e36_f64.to_le_bytes().to_vec(),
            Self::Char | Self::String => vec![0],
        }
    }

    /// Whether the type is a floating-point type.
    pub fn is_float(self) -> bool {
        matches!(self, Self::F32 | Self::F64)
    }
}

/// A netCDF attribute value, kept with its type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum AttrValue {
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
    Text(String),
    Strings(Vec<String>),
}

impl AttrValue {
    /// The first element as `f64`, for numeric attributes.
    pub fn first_f64(&self) -> Option<f64> {
        #[allow(clippy::cast_precision_loss)]
        match self {
            Self::I8(v) => v.first().map(|&x| f64::from(x)),
            Self::U8(v) => v.first().map(|&x| f64::from(x)),
            Self::I16(v) => v.first().map(|&x| f64::from(x)),
            Self::U16(v) => v.first().map(|&x| f64::from(x)),
            Self::I32(v) => v.first().map(|&x| f64::from(x)),
            Self::U32(v) => v.first().map(|&x| f64::from(x)),
            Self::I64(v) => v.first().map(|&x| x as f64),
            Self::U64(v) => v.first().map(|&x| x as f64),
            Self::F32(v) => v.first().map(|&x| f64::from(x)),
            Self::F64(v) => v.first().copied(),
            Self::Text(_) | Self::Strings(_) => None,
        }
    }

    /// Short human text (for `inspect`).
    pub fn display(&self) -> String {
        fn list<T: std::fmt::Debug>(v: &[T]) -> String {
            if v.len() == 1 {
                format!("{:?}", v[0])
            } else {
                format!("{v:?}")
            }
        }
        match self {
            Self::I8(v) => list(v),
            Self::U8(v) => list(v),
            Self::I16(v) => list(v),
            Self::U16(v) => list(v),
            Self::I32(v) => list(v),
            Self::U32(v) => list(v),
            Self::I64(v) => list(v),
            Self::U64(v) => list(v),
            Self::F32(v) => list(v),
            Self::F64(v) => list(v),
            Self::Text(s) => format!("{s:?}"),
            Self::Strings(v) => list(v),
        }
    }
}

/// A named attribute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attr {
    /// Attribute name.
    pub name: String,
    /// Typed value.
    pub value: AttrValue,
}

/// A dimension defined in a group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dim {
    /// Dimension name.
    pub name: String,
    /// Current length.
    pub len: u64,
    /// Whether the dimension is unlimited.
    pub unlimited: bool,
}

/// A variable of the source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Var {
    /// Name in its group.
    pub name: String,
    /// Path from the root: `name` or `group/sub/name`.
    pub path: String,
    /// Element type.
    pub dtype: DType,
    /// Dimension names, outermost first.
    pub dims: Vec<String>,
    /// Shape (same length as `dims`).
    pub shape: Vec<u64>,
    /// Source chunk shape, `None` for contiguous (or netCDF-3) storage.
    pub source_chunks: Option<Vec<u64>>,
    /// Source filters, as text (for `inspect`).
    pub filters: Vec<String>,
    /// Whether the source stores the data big-endian.
    pub big_endian: bool,
    /// Attributes in file order.
    pub attrs: Vec<Attr>,
}

impl Var {
    /// The attribute called `name`.
    pub fn attr(&self, name: &str) -> Option<&AttrValue> {
        self.attrs.iter().find(|a| a.name == name).map(|a| &a.value)
    }

    /// Number of elements.
    pub fn len(&self) -> u64 {
        self.shape.iter().product()
    }

    /// Whether the variable has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether this is a 1-D coordinate variable (named as its dimension).
    pub fn is_coordinate(&self) -> bool {
        self.dims.len() == 1 && self.dims[0] == self.name
    }
}

/// A variable left out because its type cannot be represented.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Skipped {
    /// Variable path.
    pub path: String,
    /// Its type.
    pub kind: String,
}

/// A group (the root group has an empty path).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    /// Name (empty for the root).
    pub name: String,
    /// Path from the root (empty for the root).
    pub path: String,
    /// Dimensions defined in this group.
    pub dims: Vec<Dim>,
    /// Group attributes.
    pub attrs: Vec<Attr>,
    /// Variables of this group.
    pub vars: Vec<Var>,
    /// Child groups.
    pub groups: Vec<Group>,
}

impl Group {
    /// All variables of this group and its descendants, depth first.
    pub fn all_vars(&self) -> Vec<&Var> {
        let mut out: Vec<&Var> = self.vars.iter().collect();
        for g in &self.groups {
            out.extend(g.all_vars());
        }
        out
    }

    /// All groups below this one (not including it), depth first.
    pub fn all_groups(&self) -> Vec<&Group> {
        let mut out = Vec::new();
        for g in &self.groups {
            out.push(g);
            out.extend(g.all_groups());
        }
        out
    }
}

/// The whole source description.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schema {
    /// Source path.
    pub source: PathBuf,
    /// Source format.
    pub format: SourceFormat,
    /// Root group.
    pub root: Group,
    /// Variables left out with `--skip-unsupported`.
    pub skipped: Vec<Skipped>,
}

impl Schema {
    /// All variables, depth first.
    pub fn vars(&self) -> Vec<&Var> {
        self.root.all_vars()
    }
}

/// Detects the format from the file signature.
///
/// # Errors
/// [`SchemaError::Missing`], [`SchemaError::Open`] or
/// [`SchemaError::NotNetcdf`].
pub fn detect_format(path: &Path) -> Result<SourceFormat, SchemaError> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => SchemaError::Missing(path.to_path_buf()),
        _ => SchemaError::Open {
            path: path.to_path_buf(),
            source: e,
        },
    })?;
    if f.metadata().map(|m| m.is_dir()).unwrap_or(false) {
        return Err(SchemaError::NotNetcdf(path.to_path_buf()));
    }
    let mut head = [0u8; 8];
    let n = read_up_to(&mut f, &mut head).map_err(|e| SchemaError::Open {
        path: path.to_path_buf(),
        source: e,
    })?;
    if n >= 4 && &head[..3] == b"CDF" && matches!(head[3], 1 | 2 | 5) {
        return Ok(SourceFormat::Netcdf3);
    }
    const HDF5_SIG: &[u8; 8] = b"\x89HDF\r\n\x1a\n";
    // The HDF5 superblock may follow a user block of 512, 1024, 2048, ... bytes.
    let mut offset = 0u64;
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    while offset + 8 <= len {
        if offset > 0 {
            f.seek(SeekFrom::Start(offset))
                .and_then(|_| f.read_exact(&mut head))
                .map_err(|e| SchemaError::Open {
                    path: path.to_path_buf(),
                    source: e,
                })?;
        }
        if &head == HDF5_SIG {
            return Ok(SourceFormat::Netcdf4);
        }
        offset = if offset == 0 { 512 } else { offset * 2 };
    }
    Err(SchemaError::NotNetcdf(path.to_path_buf()))
}

fn read_up_to(f: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    use std::io::Read;
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Reads the structure of `path` through netCDF-C.
///
/// With `skip_unsupported`, variables of types Zarr cannot hold are listed in
/// [`Schema::skipped`] instead of failing.
///
/// # Errors
/// Any [`SchemaError`]: missing or unreadable file, not netCDF, an
/// unsupported type, or a name that cannot be a Zarr node name.
pub fn read_schema(path: &Path, skip_unsupported: bool) -> Result<Schema, SchemaError> {
    let format = detect_format(path)?;
    let file = netcdf::open(path).map_err(|source| SchemaError::Netcdf {
        path: path.to_path_buf(),
        what: "cannot open as netCDF".into(),
        source,
    })?;
    read_schema_from(&file, path, format, skip_unsupported)
}

/// Reads the structure of an open file (see [`read_schema`]).
///
/// # Errors
/// As [`read_schema`].
pub fn read_schema_from(
    file: &netcdf::File,
    path: &Path,
    format: SourceFormat,
    skip_unsupported: bool,
) -> Result<Schema, SchemaError> {
    let mut skipped = Vec::new();
    let root = match file.root() {
        Some(root) => read_group(path, &root, "", skip_unsupported, &mut skipped)?,
        // netCDF-3 files have no group API: read the file-level items.
        None => {
            let dims = file.dimensions().map(|d| dim_of(&d)).collect();
            let attrs = read_attrs(path, file.attributes(), "")?;
            let vars = read_vars(path, file.variables(), "", skip_unsupported, &mut skipped)?;
            Group {
                name: String::new(),
                path: String::new(),
                dims,
                attrs,
                vars,
                groups: Vec::new(),
            }
        }
    };
    // netCDF-C opens plain HDF5 files too, inventing dimensions named
    // `phony_dim_N` for datasets without dimension scales: such a file is
    // not a netCDF dataset and its structure would be made up.
    if format == SourceFormat::Netcdf4 {
        for v in root.all_vars() {
            if let Some(d) = v.dims.iter().find(|d| d.starts_with("phony_dim_")) {
                return Err(SchemaError::NotNetcdf4 {
                    path: path.to_path_buf(),
                    var: v.path.clone(),
                    dim: d.clone(),
                });
            }
        }
    }
    Ok(Schema {
        source: path.to_path_buf(),
        format,
        root,
        skipped,
    })
}

fn nc_err(path: &Path, what: String) -> impl FnOnce(netcdf::Error) -> SchemaError + '_ {
    move |source| SchemaError::Netcdf {
        path: path.to_path_buf(),
        what,
        source,
    }
}

/// Checks that a group or variable name is safe as a Zarr node name.
///
/// # Errors
/// [`SchemaError::BadName`].
pub fn check_name(path: &Path, name: &str) -> Result<(), SchemaError> {
    let bad = |reason| {
        Err(SchemaError::BadName {
            path: path.to_path_buf(),
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("empty name");
    }
    if name == "." || name == ".." {
        return bad("'.' and '..' are not node names");
    }
    if name.contains('/') || name.contains('\\') || name.contains('\0') {
        return bad("contains a path separator");
    }
    if name.starts_with("__") {
        return bad("names starting with '__' are reserved by Zarr");
    }
    if name == "zarr.json" || name.starts_with(".z") || name == ".zarrforge" {
        return bad("clashes with a Zarr metadata key");
    }
    Ok(())
}

fn read_group(
    path: &Path,
    g: &netcdf::Group<'_>,
    gpath: &str,
    skip_unsupported: bool,
    skipped: &mut Vec<Skipped>,
) -> Result<Group, SchemaError> {
    let dims = g.dimensions().map(|d| dim_of(&d)).collect();
    let attrs = read_attrs(path, g.attributes(), gpath)?;
    let vars = read_vars(path, g.variables(), gpath, skip_unsupported, skipped)?;
    let mut groups = Vec::new();
    for child in g.groups() {
        let name = child.name();
        check_name(path, &name)?;
        let cpath = join(gpath, &name);
        groups.push(read_group(path, &child, &cpath, skip_unsupported, skipped)?);
    }
    Ok(Group {
        name: gpath.rsplit('/').next().unwrap_or_default().to_string(),
        path: gpath.to_string(),
        dims,
        attrs,
        vars,
        groups,
    })
}

fn dim_of(d: &netcdf::Dimension<'_>) -> Dim {
    Dim {
        name: d.name(),
        len: d.len() as u64,
        unlimited: d.is_unlimited(),
    }
}

fn read_vars<'a>(
    path: &Path,
    vars: impl Iterator<Item = netcdf::Variable<'a>>,
    gpath: &str,
    skip_unsupported: bool,
    skipped: &mut Vec<Skipped>,
) -> Result<Vec<Var>, SchemaError> {
    let mut out = Vec::new();
    for v in vars {
        let name = v.name();
        let vpath = join(gpath, &name);
        check_name(path, &name)?;
        match read_var(path, &v, &vpath)? {
            Ok(var) => out.push(var),
            Err(kind) if skip_unsupported => skipped.push(Skipped { path: vpath, kind }),
            Err(kind) => {
                return Err(SchemaError::Unsupported {
                    path: path.to_path_buf(),
                    var: vpath,
                    kind,
                })
            }
        }
    }
    Ok(out)
}

/// `parent/name`, or `name` at the root.
pub fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}/{name}")
    }
}

fn map_type(t: &netcdf::types::NcVariableType) -> Result<DType, String> {
    use netcdf::types::{FloatType, IntType, NcVariableType as T};
    Ok(match t {
        T::Int(IntType::I8) => DType::I8,
        T::Int(IntType::U8) => DType::U8,
        T::Int(IntType::I16) => DType::I16,
        T::Int(IntType::U16) => DType::U16,
        T::Int(IntType::I32) => DType::I32,
        T::Int(IntType::U32) => DType::U32,
        T::Int(IntType::I64) => DType::I64,
        T::Int(IntType::U64) => DType::U64,
        T::Float(FloatType::F32) => DType::F32,
        T::Float(FloatType::F64) => DType::F64,
        T::Char => DType::Char,
        T::String => DType::String,
        T::Compound(_) => return Err("compound".into()),
        T::Opaque(_) => return Err("opaque".into()),
        T::Enum(_) => return Err("enum".into()),
        T::Vlen(_) => return Err("vlen".into()),
    })
}

#[allow(clippy::type_complexity)]
fn read_var(
    path: &Path,
    v: &netcdf::Variable<'_>,
    vpath: &str,
) -> Result<Result<Var, String>, SchemaError> {
    let dtype = match map_type(&v.vartype()) {
        Ok(t) => t,
        Err(kind) => return Ok(Err(kind)),
    };
    let dims: Vec<String> = v.dimensions().iter().map(netcdf::Dimension::name).collect();
    let shape: Vec<u64> = v.dimensions().iter().map(|d| d.len() as u64).collect();
    let source_chunks = v
        .chunking()
        .map_err(nc_err(path, format!("variable '{vpath}': chunking")))?
        .map(|c| c.into_iter().map(|x| x as u64).collect());
    let big_endian = matches!(v.endianness(), Ok(netcdf::Endianness::Big));
    let attrs = read_attrs(path, v.attributes(), vpath)?;
    Ok(Ok(Var {
        name: v.name(),
        path: vpath.to_string(),
        dtype,
        dims,
        shape,
        source_chunks,
        filters: Vec::new(),
        big_endian,
        attrs,
    }))
}

fn read_attrs<'a>(
    path: &Path,
    attrs: impl Iterator<Item = netcdf::Attribute<'a>>,
    owner: &str,
) -> Result<Vec<Attr>, SchemaError> {
    use netcdf::AttributeValue as A;
    let mut out = Vec::new();
    for a in attrs {
        let name = a.name().to_string();
        let what = if owner.is_empty() {
            format!("global attribute '{name}'")
        } else {
            format!("attribute '{name}' of '{owner}'")
        };
        let value = a.value().map_err(nc_err(path, what))?;
        let value = match value {
            A::Uchar(x) => AttrValue::U8(vec![x]),
            A::Uchars(x) => AttrValue::U8(x),
            A::Schar(x) => AttrValue::I8(vec![x]),
            A::Schars(x) => AttrValue::I8(x),
            A::Ushort(x) => AttrValue::U16(vec![x]),
            A::Ushorts(x) => AttrValue::U16(x),
            A::Short(x) => AttrValue::I16(vec![x]),
            A::Shorts(x) => AttrValue::I16(x),
            A::Uint(x) => AttrValue::U32(vec![x]),
            A::Uints(x) => AttrValue::U32(x),
            A::Int(x) => AttrValue::I32(vec![x]),
            A::Ints(x) => AttrValue::I32(x),
            A::Ulonglong(x) => AttrValue::U64(vec![x]),
            A::Ulonglongs(x) => AttrValue::U64(x),
            A::Longlong(x) => AttrValue::I64(vec![x]),
            A::Longlongs(x) => AttrValue::I64(x),
            A::Float(x) => AttrValue::F32(vec![x]),
            A::Floats(x) => AttrValue::F32(x),
            A::Double(x) => AttrValue::F64(vec![x]),
            A::Doubles(x) => AttrValue::F64(x),
            A::Str(s) => AttrValue::Text(s),
            A::Strs(v) => AttrValue::Strings(v),
        };
        out.push(Attr { name, value });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_escape_the_store_are_refused() {
        let p = Path::new("in.nc");
        for bad in ["..", ".", "a/b", "__x", "", "zarr.json", ".zarray"] {
            assert!(check_name(p, bad).is_err(), "{bad} accepted");
        }
        for ok in ["t2m", "a.b", "lat_bnds", "_x"] {
            assert!(check_name(p, ok).is_ok(), "{ok} refused");
        }
    }

    #[test]
    fn dtype_names() {
        assert_eq!(DType::F32.v3_name(), "float32");
        assert_eq!(DType::Char.v2_name(), "|S1");
        assert_eq!(DType::I16.size(), 2);
    }

    #[test]
    fn join_paths() {
        assert_eq!(join("", "a"), "a");
        assert_eq!(join("g/h", "a"), "g/h/a");
    }
}
