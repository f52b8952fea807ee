//! The source's structure as plain data: groups, dimensions, variables,
//! types and attributes.
//!
//! Rank 0 reads it once through netCDF-C ([`read_schema`]) and broadcasts it
//! as JSON; every other stage works from this plain description.

use std::path::{Path, PathBuf};

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::error::SchemaError;
use crate::netcdf_c::{NcAttr, NcError, NcFile, NcType, NcVar};

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
    /// A JSON document kept as text (an enum's mapping).
    Json(String),
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
            Self::Text(_) | Self::Strings(_) | Self::Json(_) => None,
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
            Self::Json(s) => s.clone(),
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
    /// Read through netCDF-C rather than HDF5 (enum variables: HDF5 has no
    /// conversion from an enum type to its base integers).
    #[serde(default)]
    pub via_netcdf: bool,
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
    /// What was changed or left out on the way to Zarr (a fill value no
    /// Zarr type can hold, an attribute of an unsupported type), one line
    /// each, naming the file and variable.
    #[serde(default)]
    pub warnings: Vec<String>,
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
/// [`Schema::skipped`] instead of failing, and attributes of such types are
/// left out with a warning.
///
/// # Errors
/// Any [`SchemaError`]: missing or unreadable file, not netCDF, a netCDF-3
/// header that does not fit the file, an unsupported type, or a name that
/// cannot be a Zarr node name.
pub fn read_schema(path: &Path, skip_unsupported: bool) -> Result<Schema, SchemaError> {
    let format = detect_format(path)?;
    let file = open_checked(path, format)?;
    // Describing a file (inspect, bench) shows phony dimensions as they are.
    read_schema_from(&file, path, format, skip_unsupported, true)
}

/// Opens `path` with netCDF-C, after checking a netCDF-3 header against the
/// file's size (netCDF-C itself would read zeros past the end of the file).
///
/// # Errors
/// [`SchemaError::Header`] or [`SchemaError::Netcdf`].
pub fn open_checked(path: &Path, format: SourceFormat) -> Result<NcFile, SchemaError> {
    crate::stage::reading(path);
    if format == SourceFormat::Netcdf3 {
        crate::cdf_header::check_file(path).map_err(|source| SchemaError::Header {
            path: path.to_path_buf(),
            source,
        })?;
    }
    NcFile::open(path).map_err(|source| SchemaError::Netcdf {
        path: path.to_path_buf(),
        what: "cannot open as netCDF".into(),
        source,
    })
}

/// Reads the structure of an open file (see [`read_schema`]).
///
/// # Errors
/// As [`read_schema`].
pub fn read_schema_from(
    file: &NcFile,
    path: &Path,
    format: SourceFormat,
    skip_unsupported: bool,
    phony_dims: bool,
) -> Result<Schema, SchemaError> {
    let mut walk = Walk {
        file,
        path,
        skip_unsupported,
        netcdf4: format == SourceFormat::Netcdf4,
        dims: HashMap::new(),
        skipped: Vec::new(),
        warnings: Vec::new(),
    };
    let root = walk.group(file.root(), "", 0, &[])?;
    // netCDF-C opens plain HDF5 files too, inventing dimensions named
    // `phony_dim_N` for datasets without dimension scales: such a file is
    // not a netCDF dataset and its structure would be made up.
    // A file written by netCDF-C (it records `_NCProperties`) may name a
    // real dimension `phony_dim_N`; only files from other HDF5 writers have
    // invented ones.
    let written_by_netcdf = file.has_attr(file.root(), netcdf_sys::NC_GLOBAL, "_NCProperties");
    if format == SourceFormat::Netcdf4 && !phony_dims && !written_by_netcdf {
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
        skipped: walk.skipped,
        warnings: walk.warnings,
    })
}

/// Groups nested deeper than this are refused (a corrupt file could loop).
const MAX_GROUP_DEPTH: usize = 64;

/// The state of one walk over a file's groups.
struct Walk<'a> {
    file: &'a NcFile,
    path: &'a Path,
    skip_unsupported: bool,
    netcdf4: bool,
    /// Dimension id → name, length, unlimited: asked once per dimension
    /// (netCDF-C walks every variable to answer an unlimited length, so
    /// asking per variable would make the scan quadratic).
    dims: HashMap<i32, Dim>,
    skipped: Vec<Skipped>,
    warnings: Vec<String>,
}

impl Walk<'_> {
    fn err(&self, what: String) -> impl FnOnce(NcError) -> SchemaError + '_ {
        let path = self.path.to_path_buf();
        move |source| SchemaError::Netcdf { path, what, source }
    }

    /// Reads group `grp`; `outer` are the dimension ids its ancestors
    /// define (a variable may use those and its own group's, no others).
    fn group(
        &mut self,
        grp: i32,
        gpath: &str,
        depth: usize,
        outer: &[i32],
    ) -> Result<Group, SchemaError> {
        let where_ = if gpath.is_empty() {
            "root group".to_string()
        } else {
            format!("group '{gpath}'")
        };
        if depth > MAX_GROUP_DEPTH {
            return Err(SchemaError::Netcdf {
                path: self.path.to_path_buf(),
                what: where_,
                source: NcError::invalid(format!("groups nested deeper than {MAX_GROUP_DEPTH}")),
            });
        }
        let unlimited = self
            .file
            .unlimited_ids(grp)
            .map_err(self.err(format!("{where_}: unlimited dimensions")))?;
        let mut dims = Vec::new();
        let mut visible = outer.to_vec();
        for id in self
            .file
            .dim_ids(grp)
            .map_err(self.err(format!("{where_}: dimensions")))?
        {
            let (name, len) = self
                .file
                .dim(grp, id)
                .map_err(self.err(format!("{where_}: dimension {id}")))?;
            let d = Dim {
                name,
                len,
                unlimited: unlimited.contains(&id),
            };
            self.dims.insert(id, d.clone());
            visible.push(id);
            dims.push(d);
        }
        let natts = self
            .file
            .group_natts(grp)
            .map_err(self.err(format!("{where_}: attributes")))?;
        let attrs = self.attrs(grp, netcdf_sys::NC_GLOBAL, natts, gpath)?;
        let mut vars = Vec::new();
        for v in self
            .file
            .vars(grp)
            .map_err(self.err(format!("{where_}: variables")))?
        {
            if let Some(var) = self.var(grp, gpath, &v, &visible)? {
                vars.push(var);
            }
        }
        let mut groups = Vec::new();
        for child in self
            .file
            .groups(grp)
            .map_err(self.err(format!("{where_}: groups")))?
        {
            let name = self
                .file
                .group_name(child)
                .map_err(self.err(format!("{where_}: group name")))?;
            check_name(self.path, &name)?;
            let cpath = join(gpath, &name);
            groups.push(self.group(child, &cpath, depth + 1, &visible)?);
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

    fn dim(&mut self, grp: i32, id: i32, vpath: &str, visible: &[i32]) -> Result<Dim, SchemaError> {
        if let Some(d) = self.dims.get(&id).filter(|_| visible.contains(&id)) {
            return Ok(d.clone());
        }
        // A dimension of an ancestor group not listed yet (cannot happen in
        // a well-formed file; asked directly rather than trusted).
        let (name, len) = self
            .file
            .dim(grp, id)
            .map_err(self.err(format!("variable '{vpath}': dimension {id}")))?;
        let unlimited = self
            .file
            .unlimited_ids(grp)
            .map_err(self.err(format!("variable '{vpath}': unlimited dimensions")))?
            .contains(&id);
        let d = Dim {
            name,
            len,
            unlimited,
        };
        self.dims.insert(id, d.clone());
        Ok(d)
    }

    fn var(
        &mut self,
        grp: i32,
        gpath: &str,
        v: &NcVar,
        visible: &[i32],
    ) -> Result<Option<Var>, SchemaError> {
        let vpath = join(gpath, &v.name);
        check_name(self.path, &v.name)?;
        let ty = self
            .file
            .type_of(grp, v.xtype)
            .map_err(self.err(format!("variable '{vpath}': type")))?;
        let (dtype, enumeration) = match map_type(&ty) {
            Ok(t) => t,
            Err(kind) if self.skip_unsupported => {
                self.skipped.push(Skipped { path: vpath, kind });
                return Ok(None);
            }
            Err(kind) => {
                return Err(SchemaError::Unsupported {
                    path: self.path.to_path_buf(),
                    var: vpath,
                    kind,
                })
            }
        };
        let mut dims = Vec::with_capacity(v.dimids.len());
        let mut shape = Vec::with_capacity(v.dimids.len());
        for &id in &v.dimids {
            let d = self.dim(grp, id, &vpath, visible)?;
            dims.push(d.name);
            shape.push(d.len);
        }
        let (source_chunks, big_endian) = if self.netcdf4 {
            let chunks = self
                .file
                .chunking(grp, v)
                .map_err(self.err(format!("variable '{vpath}': chunking")))?;
            let big = self
                .file
                .big_endian(grp, v.varid)
                .map_err(self.err(format!("variable '{vpath}': endianness")))?;
            (chunks, big)
        } else {
            (None, false)
        };
        let mut attrs = self.attrs(grp, v.varid, v.natts, &vpath)?;
        if let Some((name, members)) = &enumeration {
            // The mapping xarray keeps in the decoded dtype's metadata
            // (`enum`, `enum_name`), kept here as attributes.
            for (key, value) in [
                ("enum", AttrValue::Json(members.clone())),
                ("enum_name", AttrValue::Text(name.clone())),
            ] {
                if attrs.iter().all(|a| a.name != key) {
                    attrs.push(Attr {
                        name: key.into(),
                        value,
                    });
                }
            }
        }
        let mut var = Var {
            name: v.name.clone(),
            path: vpath,
            dtype,
            dims,
            shape,
            source_chunks,
            filters: Vec::new(),
            big_endian,
            attrs,
            via_netcdf: enumeration.is_some(),
        };
        if let Some(w) = normalize_fill(&mut var) {
            self.warnings.push(format!(
                "{}: variable '{}': {w}",
                self.path.display(),
                var.path
            ));
        }
        Ok(Some(var))
    }

    fn attrs(
        &mut self,
        grp: i32,
        varid: i32,
        natts: usize,
        owner: &str,
    ) -> Result<Vec<Attr>, SchemaError> {
        let mut out = Vec::with_capacity(natts.min(4096));
        for k in 0..natts {
            let what = |name: &str| {
                if varid == netcdf_sys::NC_GLOBAL {
                    if owner.is_empty() {
                        format!("global attribute '{name}'")
                    } else {
                        format!("attribute '{name}' of group '{owner}'")
                    }
                } else {
                    format!("attribute '{name}' of '{owner}'")
                }
            };
            let name = self
                .file
                .attr_name(grp, varid, k)
                .map_err(self.err(what(&format!("#{k}"))))?;
            let raw = self
                .file
                .attr(grp, varid, &name)
                .map_err(self.err(what(&name)))?;
            let value = match attr_value(raw) {
                Ok(v) => v,
                Err(kind) if self.skip_unsupported => {
                    self.warnings.push(format!(
                        "{}: {} has type {kind}, which Zarr attributes cannot hold; left out",
                        self.path.display(),
                        what(&name)
                    ));
                    continue;
                }
                Err(kind) => {
                    return Err(SchemaError::UnsupportedAttr {
                        path: self.path.to_path_buf(),
                        attr: what(&name),
                        kind,
                    })
                }
            };
            out.push(Attr { name, value });
        }
        Ok(out)
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

/// `parent/name`, or `name` at the root.
pub fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}/{name}")
    }
}

/// The Zarr type of a netCDF type, and for an enum its name and mapping
/// (`{"member": value}` as JSON text); `Err` with the type's description
/// when Zarr cannot hold it.
fn map_type(t: &NcType) -> Result<(DType, Option<(String, String)>), String> {
    let atomic = |x: i32| -> Result<DType, String> {
        use netcdf_sys as s;
        Ok(match x {
            s::NC_BYTE => DType::I8,
            s::NC_UBYTE => DType::U8,
            s::NC_SHORT => DType::I16,
            s::NC_USHORT => DType::U16,
            s::NC_INT => DType::I32,
            s::NC_UINT => DType::U32,
            s::NC_INT64 => DType::I64,
            s::NC_UINT64 => DType::U64,
            s::NC_FLOAT => DType::F32,
            s::NC_DOUBLE => DType::F64,
            s::NC_CHAR => DType::Char,
            s::NC_STRING => DType::String,
            other => return Err(format!("netCDF type {other}")),
        })
    };
    match t {
        NcType::Atomic(x) => Ok((atomic(*x)?, None)),
        NcType::Enum {
            name,
            base,
            members,
        } => {
            let map: serde_json::Map<String, serde_json::Value> = members
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::from(*v)))
                .collect();
            let text = serde_json::Value::Object(map).to_string();
            Ok((atomic(*base)?, Some((name.clone(), text))))
        }
        NcType::Other { class, name } => Err(format!("{class} ('{name}')")),
    }
}

/// An attribute value as zarrforge keeps it; `Err` with the type's class
/// for one Zarr attributes cannot hold.
fn attr_value(raw: NcAttr) -> Result<AttrValue, String> {
    use netcdf_sys as s;
    fn each<const N: usize, T>(b: &[u8], f: impl Fn([u8; N]) -> T) -> Vec<T> {
        b.chunks_exact(N)
            .map(|c| {
                let mut a = [0u8; N];
                a.copy_from_slice(c);
                f(a)
            })
            .collect()
    }
    Ok(match raw {
        NcAttr::Text(t) => AttrValue::Text(t),
        NcAttr::Strings(mut v) if v.len() == 1 => AttrValue::Text(v.remove(0)),
        NcAttr::Strings(v) => AttrValue::Strings(v),
        NcAttr::Unsupported(class) => return Err(class.to_string()),
        NcAttr::Numbers { xtype, bytes: b } => match xtype {
            s::NC_BYTE => AttrValue::I8(each(&b, i8::from_ne_bytes)),
            s::NC_UBYTE => AttrValue::U8(b),
            s::NC_SHORT => AttrValue::I16(each(&b, i16::from_ne_bytes)),
            s::NC_USHORT => AttrValue::U16(each(&b, u16::from_ne_bytes)),
            s::NC_INT => AttrValue::I32(each(&b, i32::from_ne_bytes)),
            s::NC_UINT => AttrValue::U32(each(&b, u32::from_ne_bytes)),
            s::NC_INT64 => AttrValue::I64(each(&b, i64::from_ne_bytes)),
            s::NC_UINT64 => AttrValue::U64(each(&b, u64::from_ne_bytes)),
            s::NC_FLOAT => AttrValue::F32(each(&b, f32::from_ne_bytes)),
            s::NC_DOUBLE => AttrValue::F64(each(&b, f64::from_ne_bytes)),
            other => return Err(format!("netCDF type {other}")),
        },
    })
}

/// Brings a variable's `_FillValue` to the variable's own type when the
/// conversion is exact; removes it when it cannot be represented (a NaN or
/// a fraction on an integer variable, a value out of range, several
/// values), returning the warning to show. xarray masks nothing with such
/// a fill either (it compares the stored integers with it, or drops NaN
/// fills), so the decoded values stay the same.
pub fn normalize_fill(var: &mut Var) -> Option<String> {
    let pos = var.attrs.iter().position(|a| a.name == "_FillValue")?;
    let value = &var.attrs[pos].value;
    match exact_fill(var.dtype, value) {
        Ok(Some(v)) => {
            var.attrs[pos].value = v;
            None
        }
        Ok(None) => None,
        Err(why) => {
            let shown = value.display();
            var.attrs.remove(pos);
            Some(format!(
                "_FillValue {shown} left out of the store ({why}); xarray masks no value with it either"
            ))
        }
    }
}

/// The `_FillValue` `value` as exactly the same number in `dtype`
/// (`Ok(None)`: keep it as it is).
fn exact_fill(dtype: DType, value: &AttrValue) -> Result<Option<AttrValue>, String> {
    let tname = dtype.nc_name();
    match (dtype, value) {
        (DType::Char, AttrValue::Text(t)) if t.len() <= 1 => return Ok(None),
        (DType::Char, _) => return Err("not one character, as a char variable needs".into()),
        (DType::String, AttrValue::Text(_)) => return Ok(None),
        (DType::String, _) => return Err("not a string, as a string variable needs".into()),
        _ => {}
    }
    let n = match value {
        AttrValue::I8(v) => v.len(),
        AttrValue::U8(v) => v.len(),
        AttrValue::I16(v) => v.len(),
        AttrValue::U16(v) => v.len(),
        AttrValue::I32(v) => v.len(),
        AttrValue::U32(v) => v.len(),
        AttrValue::I64(v) => v.len(),
        AttrValue::U64(v) => v.len(),
        AttrValue::F32(v) => v.len(),
        AttrValue::F64(v) => v.len(),
        AttrValue::Text(_) | AttrValue::Strings(_) | AttrValue::Json(_) => {
            return Err(format!("text, but the variable is {tname}"))
        }
    };
    if n != 1 {
        return Err(format!("{n} values, not one"));
    }
    // Every numeric attribute value is exactly an i128 or an f64.
    let as_int: Option<i128> = match value {
        AttrValue::I8(v) => Some(i128::from(v[0])),
        AttrValue::U8(v) => Some(i128::from(v[0])),
        AttrValue::I16(v) => Some(i128::from(v[0])),
        AttrValue::U16(v) => Some(i128::from(v[0])),
        AttrValue::I32(v) => Some(i128::from(v[0])),
        AttrValue::U32(v) => Some(i128::from(v[0])),
        AttrValue::I64(v) => Some(i128::from(v[0])),
        AttrValue::U64(v) => Some(i128::from(v[0])),
        _ => None,
    };
    let as_float: f64 = match value {
        AttrValue::F32(v) => f64::from(v[0]),
        AttrValue::F64(v) => v[0],
        _ => f64::NAN,
    };
    let int = |lo: i128, hi: i128| -> Result<i128, String> {
        let x = match as_int {
            Some(x) => x,
            None if as_float.is_nan() => return Err(format!("a NaN cannot be stored in {tname}")),
            None if as_float.fract() != 0.0 || as_float.is_infinite() => {
                return Err(format!("a fraction cannot be stored in {tname}"))
            }
            #[allow(clippy::cast_possible_truncation)]
            None if as_float.abs() < 1.8e19 => as_float as i128,
            None => return Err(format!("outside the range of {tname}")),
        };
        if x < lo || x > hi {
            return Err(format!("outside the range of {tname}"));
        }
        Ok(x)
    };
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let out = match dtype {
        DType::I8 => AttrValue::I8(vec![int(-128, 127)? as i8]),
        DType::U8 => AttrValue::U8(vec![int(0, 255)? as u8]),
        DType::I16 => AttrValue::I16(vec![int(-32768, 32767)? as i16]),
        DType::U16 => AttrValue::U16(vec![int(0, 65535)? as u16]),
        DType::I32 => AttrValue::I32(vec![int(i128::from(i32::MIN), i128::from(i32::MAX))? as i32]),
        DType::U32 => AttrValue::U32(vec![int(0, i128::from(u32::MAX))? as u32]),
        DType::I64 => AttrValue::I64(vec![int(i128::from(i64::MIN), i128::from(i64::MAX))? as i64]),
        DType::U64 => AttrValue::U64(vec![int(0, i128::from(u64::MAX))? as u64]),
        DType::F32 => {
            let y = match as_int {
                Some(i) => i as f32,
                None => as_float as f32,
            };
            let exact = match as_int {
                Some(i) => y.is_finite() && f64::from(y) as i128 == i,
                None => f64::from(y) == as_float || (y.is_nan() && as_float.is_nan()),
            };
            if !exact {
                return Err(format!("not exactly representable in {tname}"));
            }
            AttrValue::F32(vec![y])
        }
        DType::F64 => {
            let x = match as_int {
                Some(i) => i as f64,
                None => as_float,
            };
            if as_int.is_some_and(|i| x as i128 != i) {
                return Err(format!("not exactly representable in {tname}"));
            }
            AttrValue::F64(vec![x])
        }
        DType::Char | DType::String => return Ok(None),
    };
    Ok(Some(out))
}

/// The source `_FillValue` of `var` as raw little-endian bytes of its type.
///
/// The schema has already brought every `_FillValue` to its variable's type
/// exactly, or left it out ([`normalize_fill`]); a value of
/// another type here is not converted (`None`), never cast.
pub fn fill_bytes(var: &Var) -> Option<Vec<u8>> {
    let v = var.attr("_FillValue")?;
    let bytes = match (var.dtype, v) {
        (DType::I8, AttrValue::I8(x)) => x.first()?.to_le_bytes().to_vec(),
        (DType::U8, AttrValue::U8(x)) => x.first()?.to_le_bytes().to_vec(),
        (DType::I16, AttrValue::I16(x)) => x.first()?.to_le_bytes().to_vec(),
        (DType::U16, AttrValue::U16(x)) => x.first()?.to_le_bytes().to_vec(),
        (DType::I32, AttrValue::I32(x)) => x.first()?.to_le_bytes().to_vec(),
        (DType::U32, AttrValue::U32(x)) => x.first()?.to_le_bytes().to_vec(),
        (DType::I64, AttrValue::I64(x)) => x.first()?.to_le_bytes().to_vec(),
        (DType::U64, AttrValue::U64(x)) => x.first()?.to_le_bytes().to_vec(),
        (DType::F32, AttrValue::F32(x)) => x.first()?.to_le_bytes().to_vec(),
        (DType::F64, AttrValue::F64(x)) => x.first()?.to_le_bytes().to_vec(),
        (DType::Char, AttrValue::Text(s)) => vec![s.as_bytes().first().copied().unwrap_or(0)],
        _ => return None,
    };
    Some(bytes)
}

/// The `_FillValue` of a string variable.
pub fn fill_text(var: &Var) -> Option<&str> {
    match (var.dtype, var.attr("_FillValue")?) {
        (DType::String, AttrValue::Text(s)) => Some(s),
        _ => None,
    }
}

/// Fill value bytes used for padding edge chunks: the source `_FillValue`,
/// else NaN for floats and zero for the other types.
pub fn pad_bytes(var: &Var) -> Vec<u8> {
    fill_bytes(var).unwrap_or_else(|| match var.dtype {
        DType::F32 => f32::NAN.to_le_bytes().to_vec(),
        DType::F64 => f64::NAN.to_le_bytes().to_vec(),
        other => vec![0; other.size()],
    })
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
