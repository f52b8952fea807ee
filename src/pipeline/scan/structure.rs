//! Reading one file's structure through netCDF-C: its format from the
//! signature, then groups, dimensions, variables and attributes into a
//! [`Schema`], refusing what Zarr cannot hold (naming the file and the
//! variable) and bringing fill values to their variable's type.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::error::SchemaError;
use crate::model::schema::{
    bad_name, join, normalize_fill, Attr, AttrValue, DType, Dim, Group, Schema, Skipped,
    SourceFormat, Var,
};
use crate::netcdf::library::{NcAttr, NcError, NcFile, NcType, NcVar};

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
    if f.metadata().is_ok_and(|m| m.is_dir()) {
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
    let len = f.metadata().map_or(0, |m| m.len());
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
    crate::system::stage::reading(path);
    if format == SourceFormat::Netcdf3 {
        crate::netcdf::header::check_file(path).map_err(|source| SchemaError::Header {
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
        dim_paths: HashMap::new(),
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
    /// Dimension id → its path (`/group/name`), for those listed by the
    /// group that defines them.
    dim_paths: HashMap<i32, String>,
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
            self.dim_paths
                .insert(id, format!("/{}", join(gpath, &d.name)));
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
        let mut uses = Vec::new();
        for v in self
            .file
            .vars(grp)
            .map_err(self.err(format!("{where_}: variables")))?
        {
            if let Some(var) = self.var(grp, gpath, &v, &visible)? {
                uses.push((var.path.clone(), self.dim_uses(&v.dimids)));
                vars.push(var);
            }
        }
        self.warnings.extend(name_clashes(gpath, &uses));
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

    /// The dimensions `ids` of a variable already read (so each is known).
    fn dim_uses(&self, ids: &[i32]) -> Vec<DimUse> {
        ids.iter()
            .filter_map(|id| {
                let d = self.dims.get(id)?;
                Some(DimUse {
                    id: *id,
                    name: d.name.clone(),
                    path: self
                        .dim_paths
                        .get(id)
                        .cloned()
                        .unwrap_or_else(|| format!("'{}' (dimension id {id})", d.name)),
                    len: d.len,
                })
            })
            .collect()
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

/// A dimension as a variable uses it.
#[derive(Debug, Clone)]
struct DimUse {
    /// Its id in the file: one per definition.
    id: i32,
    /// Its name.
    name: String,
    /// Where it is defined: `/group/name` (`/name` in the root group).
    path: String,
    /// Its length.
    len: u64,
}

/// The warnings for group `gpath` whose variables (`vars`: path and
/// dimensions) use one name for dimensions defined in different groups
/// (`var2(/dim, /g2/dim, dim)`): Zarr names a dimension without its group,
/// so the store has one name where the source has several dimensions, and
/// a reader of the group takes them for one.
fn name_clashes(gpath: &str, vars: &[(String, Vec<DimUse>)]) -> Vec<String> {
    let mut by_name: BTreeMap<&str, Vec<&DimUse>> = BTreeMap::new();
    for (_, dims) in vars {
        for d in dims {
            let defs = by_name.entry(d.name.as_str()).or_default();
            if defs.iter().all(|e| e.id != d.id) {
                defs.push(d);
            }
        }
    }
    let mut out = Vec::new();
    for (name, mut defs) in by_name {
        if defs.len() < 2 {
            continue;
        }
        defs.sort_by(|a, b| a.path.cmp(&b.path));
        let listed: Vec<String> = defs
            .iter()
            .map(|d| format!("{} (length {})", d.path, d.len))
            .collect();
        let users: Vec<String> = vars
            .iter()
            .filter(|(_, dims)| dims.iter().any(|d| d.name == name))
            .map(|(p, _)| format!("'{p}'"))
            .collect();
        let reader = if defs.iter().any(|d| d.len != defs[0].len) {
            format!("xarray cannot open the group (conflicting sizes for dimension '{name}')")
        } else {
            "xarray opens the group taking them for one dimension".to_string()
        };
        out.push(format!(
            "group '{gpath}': dimensions {} are all named '{name}' in the store (Zarr names a dimension without its group), used by {} {}; {reader}; zarr-python reads every array as it is",
            and_list(&listed),
            if users.len() == 1 { "variable" } else { "variables" },
            and_list(&users)
        ));
    }
    out
}

/// `a`, `a and b`, `a, b and c`.
fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [a] => a.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// Checks that a group or variable name is safe as a Zarr node name.
///
/// # Errors
/// [`SchemaError::BadName`].
pub fn check_name(path: &Path, name: &str) -> Result<(), SchemaError> {
    match bad_name(name) {
        Some(reason) => Err(SchemaError::BadName {
            path: path.to_path_buf(),
            name: name.to_string(),
            reason,
        }),
        None => Ok(()),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn dim(id: i32, group: &str, len: u64) -> DimUse {
        DimUse {
            id,
            name: "dim".into(),
            path: format!("{group}/dim"),
            len,
        }
    }

    #[test]
    fn one_name_for_dimensions_of_different_groups_is_warned() {
        // netCDF-C's tst_group_data.nc, group g2/g3.
        let vars = vec![
            ("g2/g3/var".to_string(), vec![dim(2, "/g2/g3", 3)]),
            (
                "g2/g3/var2".to_string(),
                vec![dim(0, "", 4), dim(1, "/g2", 2), dim(2, "/g2/g3", 3)],
            ),
        ];
        let w = name_clashes("g2/g3", &vars);
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(
            w[0],
            "group 'g2/g3': dimensions /dim (length 4), /g2/dim (length 2) and /g2/g3/dim (length 3) are all named 'dim' in the store (Zarr names a dimension without its group), used by variables 'g2/g3/var' and 'g2/g3/var2'; xarray cannot open the group (conflicting sizes for dimension 'dim'); zarr-python reads every array as it is"
        );
        // Equal lengths: one dimension to xarray.
        let vars = vec![("g/v".to_string(), vec![dim(0, "", 3), dim(1, "/g", 3)])];
        let w = name_clashes("g", &vars);
        assert!(w[0].contains("used by variable 'g/v';"), "{w:?}");
        assert!(w[0].contains("taking them for one dimension"), "{w:?}");
        // The same dimension twice, or one definition: nothing to say.
        let vars = vec![("g/m".to_string(), vec![dim(1, "/g", 3), dim(1, "/g", 3)])];
        assert!(name_clashes("g", &vars).is_empty());
    }
}
