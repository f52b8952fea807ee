//! The source's structure as plain data: groups, dimensions, variables,
//! types and attributes.
//!
//! The scan reads it from each file
//! ([`crate::pipeline::scan::structure`]) and rank 0 broadcasts it; every
//! other stage works from this plain description. The fill rules
//! ([`normalize_fill`], [`fill_bytes`]) live here too: the scan, the
//! reader, the encoder and the metadata all apply the same ones.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

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

    /// The variable at `path` in this group or below.
    pub fn find_var(&self, path: &str) -> Option<&Var> {
        self.vars
            .iter()
            .find(|v| v.path == path)
            .or_else(|| self.groups.iter().find_map(|c| c.find_var(path)))
    }

    /// [`Group::find_var`], to change the variable.
    pub fn find_var_mut(&mut self, path: &str) -> Option<&mut Var> {
        if let Some(k) = self.vars.iter().position(|v| v.path == path) {
            return self.vars.get_mut(k);
        }
        self.groups.iter_mut().find_map(|c| c.find_var_mut(path))
    }

    /// Calls `f` on every variable of this group and below, depth first.
    pub fn for_each_var_mut(&mut self, f: &mut impl FnMut(&mut Var)) {
        self.vars.iter_mut().for_each(&mut *f);
        for c in &mut self.groups {
            c.for_each_var_mut(f);
        }
    }
}

/// Sets attribute `a` in `attrs`: replaces the one of its name, or appends.
pub fn set_attr(attrs: &mut Vec<Attr>, a: Attr) {
    match attrs.iter_mut().find(|x| x.name == a.name) {
        Some(x) => *x = a,
        None => attrs.push(a),
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

/// Why a group or variable name cannot be a Zarr node name, if it cannot.
pub fn bad_name(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("empty name");
    }
    if name == "." || name == ".." {
        return Some("'.' and '..' are not node names");
    }
    if name.contains('/') || name.contains('\\') || name.contains('\0') {
        return Some("contains a path separator");
    }
    if name.starts_with("__") {
        return Some("names starting with '__' are reserved by Zarr");
    }
    if name == "zarr.json" || name.starts_with(".z") || name == ".zarrforge" {
        return Some("clashes with a Zarr metadata key");
    }
    None
}

/// `parent/name`, or `name` at the root.
pub fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}/{name}")
    }
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
#[allow(clippy::too_many_lines)] // one arm per netCDF type
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
        for bad in ["..", ".", "a/b", "__x", "", "zarr.json", ".zarray"] {
            assert!(bad_name(bad).is_some(), "{bad} accepted");
        }
        for ok in ["t2m", "a.b", "lat_bnds", "_x"] {
            assert!(bad_name(ok).is_none(), "{ok} refused");
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
