//! The store as a Zarr reader sees it: the nodes its own metadata documents
//! describe (v3 `zarr.json`; v2 `.zgroup`, `.zarray`, `.zattrs`), attributes
//! parsed from the JSON, arrays opened with zarrs from their own documents.
//!
//! Consolidated metadata is not used to find nodes: every node is read
//! from its own document (v2's `.zmetadata` is collected only to check that
//! it parses; v3's is part of the root `zarr.json`). Arrays are opened from the document with the attributes left
//! out (they may hold bare `NaN` tokens, which zarrs' strict parser refuses)
//! and with one-byte strings (netCDF `char`: v3 `null_terminated_bytes` of
//! one byte, v2 `|S1`, which zarrs does not know) read as the bytes they are.

use std::path::Path;
use std::sync::Arc;

use serde_json::{Map, Value};
use zarrs::array::{Array, ArrayBytes, ArrayMetadata, ArraySubset};
use zarrs::storage::ReadableStorageTraits;

use super::json;
use super::source::{NcType, Raw};
use crate::error::VerifyError;

/// Zarr format of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// `.zgroup`/`.zarray`/`.zattrs`.
    V2,
    /// `zarr.json`.
    V3,
}

/// zarrforge's own directory in a store (not a Zarr node).
const PRIVATE_DIR: &str = ".zarrforge";

/// Rank 0's read of the store: its format and every metadata document
/// (key relative to the store, text).
///
/// # Errors
/// [`VerifyError::NotAStore`] without a root document; [`VerifyError::Io`]
/// when a directory or document cannot be read.
pub(crate) fn collect(store: &Path) -> Result<(Format, Vec<(String, String)>), VerifyError> {
    if crate::store::storage::is_object(store) {
        return collect_remote(store);
    }
    let format = if store.join("zarr.json").is_file() {
        Format::V3
    } else if store.join(".zgroup").is_file() || store.join(".zarray").is_file() {
        Format::V2
    } else {
        return Err(VerifyError::NotAStore(store.to_path_buf()));
    };
    let names: &[&str] = match format {
        Format::V3 => &["zarr.json"],
        Format::V2 => &[".zgroup", ".zarray", ".zattrs", ".zmetadata"],
    };
    let mut docs = Vec::new();
    let mut stack = vec![String::new()];
    while let Some(rel) = stack.pop() {
        let dir = if rel.is_empty() {
            store.to_path_buf()
        } else {
            store.join(&rel)
        };
        let mut is_array = false;
        for name in names {
            let p = dir.join(name);
            if !p.is_file() {
                continue;
            }
            let text = std::fs::read_to_string(&p).map_err(|source| VerifyError::Io {
                path: p.clone(),
                what: "read metadata",
                source,
            })?;
            is_array |= match format {
                // An unreadable document: its directory is not walked either.
                Format::V3 => json::parse(&text)
                    .map_or(true, |v| v.get("node_type") != Some(&Value::from("group"))),
                Format::V2 => *name == ".zarray",
            };
            docs.push((key(&rel, name), text));
        }
        if is_array {
            continue;
        }
        let entries = std::fs::read_dir(&dir).map_err(|source| VerifyError::Io {
            path: dir.clone(),
            what: "list directory",
            source,
        })?;
        let mut subdirs = Vec::new();
        for e in entries {
            let e = e.map_err(|source| VerifyError::Io {
                path: dir.clone(),
                what: "list directory",
                source,
            })?;
            let name = e.file_name().to_string_lossy().into_owned();
            if e.file_type().is_ok_and(|t| t.is_dir()) && !(rel.is_empty() && name == PRIVATE_DIR) {
                subdirs.push(key(&rel, &name));
            }
        }
        subdirs.sort();
        stack.extend(subdirs.into_iter().rev());
    }
    Ok((format, docs))
}

fn key(rel: &str, name: &str) -> String {
    if rel.is_empty() {
        name.to_string()
    } else {
        format!("{rel}/{name}")
    }
}

/// A group of the store.
#[derive(Debug, Clone)]
pub(crate) struct StoreGroup {
    /// Path (`""` for the root).
    pub(crate) path: String,
    /// Attributes.
    pub(crate) attrs: Map<String, Value>,
}

/// An array of the store, from its own metadata document.
#[derive(Debug, Clone)]
pub(crate) struct StoreArray {
    /// Path.
    pub(crate) path: String,
    /// Key of its metadata document.
    pub(crate) key: String,
    /// The document (`zarr.json` or `.zarray`).
    doc: Value,
    /// Attributes (v3 `attributes`, v2 `.zattrs`).
    pub(crate) attrs: Map<String, Value>,
    /// Shape.
    pub(crate) shape: Vec<u64>,
    /// Dimension names (v3 `dimension_names`, v2 `_ARRAY_DIMENSIONS`).
    pub(crate) dims: Option<Vec<String>>,
    /// The data type as the document writes it.
    pub(crate) dtype_text: String,
}

impl StoreArray {
    /// The data type element as written (v3 `data_type`, v2 `dtype`).
    fn dtype_value(&self, format: Format) -> Option<&Value> {
        self.doc.get(match format {
            Format::V3 => "data_type",
            Format::V2 => "dtype",
        })
    }

    /// Whether the stored data type holds the netCDF type `t` the way
    /// readers expect: numbers as themselves, `char` as one byte (`uint8`
    /// or one-byte strings), `string` as variable-length UTF-8.
    pub(crate) fn holds(&self, format: Format, t: NcType) -> bool {
        let Some(dt) = self.dtype_value(format) else {
            return false;
        };
        match format {
            Format::V3 => {
                let name = dt
                    .as_str()
                    .or_else(|| dt.get("name").and_then(Value::as_str))
                    .unwrap_or("");
                let one_byte_string = name == "null_terminated_bytes"
                    && dt.pointer("/configuration/length_bytes") == Some(&Value::from(1));
                match t {
                    NcType::Char => name == "uint8" || one_byte_string,
                    NcType::Str => name == "string",
                    _ => name == v3_name(t),
                }
            }
            Format::V2 => {
                let s = dt.as_str().unwrap_or("");
                let s = s.strip_prefix(['<', '>', '|', '=']).unwrap_or(s);
                s == v2_name(t)
            }
        }
    }

    /// The array's `fill_value` field.
    pub(crate) fn fill_value(&self) -> &Value {
        self.doc.get("fill_value").unwrap_or(&Value::Null)
    }

    /// Opens the array with zarrs from its document, as type `t`.
    ///
    /// # Errors
    /// zarrs' refusal, as text.
    pub(crate) fn open(
        &self,
        storage: &Arc<dyn ReadableStorageTraits>,
        format: Format,
        t: NcType,
    ) -> Result<Array<dyn ReadableStorageTraits>, String> {
        let mut doc = json::standard(self.doc.clone());
        let Some(m) = doc.as_object_mut() else {
            return Err("the metadata is not a JSON object".into());
        };
        m.remove("attributes");
        if t == NcType::Char {
            // One-byte strings are bytes; their fill value is base64 or "".
            let fill = match m.get("fill_value") {
                Some(Value::String(s)) => {
                    use base64::Engine;
                    let b = base64::engine::general_purpose::STANDARD
                        .decode(s)
                        .map_err(|e| format!("fill_value {s:?}: {e}"))?;
                    Value::from(b.first().copied().unwrap_or(0))
                }
                Some(other) => other.clone(),
                None => Value::Null,
            };
            match format {
                Format::V3 => {
                    m.insert("data_type".into(), Value::from("uint8"));
                    m.insert(
                        "fill_value".into(),
                        if fill.is_null() { Value::from(0) } else { fill },
                    );
                }
                Format::V2 => {
                    m.insert("dtype".into(), Value::from("|u1"));
                    m.insert("fill_value".into(), fill);
                }
            }
        }
        let path = format!("/{}", self.path);
        let metadata = match format {
            Format::V3 => ArrayMetadata::V3(
                serde_json::from_value(doc).map_err(|e| format!("{}: {e}", self.key))?,
            ),
            Format::V2 => ArrayMetadata::V2(
                serde_json::from_value(doc).map_err(|e| format!("{}: {e}", self.key))?,
            ),
        };
        Array::new_with_metadata(storage.clone(), &path, metadata).map_err(|e| e.to_string())
    }
}

/// zarrs/Zarr v3 name of a numeric type.
fn v3_name(t: NcType) -> &'static str {
    match t {
        NcType::I8 => "int8",
        NcType::U8 | NcType::Char => "uint8",
        NcType::I16 => "int16",
        NcType::U16 => "uint16",
        NcType::I32 => "int32",
        NcType::U32 => "uint32",
        NcType::I64 => "int64",
        NcType::U64 => "uint64",
        NcType::F32 => "float32",
        NcType::F64 => "float64",
        NcType::Str => "string",
    }
}

/// numpy type code (without the byte order) of a type.
fn v2_name(t: NcType) -> &'static str {
    match t {
        NcType::I8 => "i1",
        NcType::U8 => "u1",
        NcType::I16 => "i2",
        NcType::U16 => "u2",
        NcType::I32 => "i4",
        NcType::U32 => "u4",
        NcType::I64 => "i8",
        NcType::U64 => "u8",
        NcType::F32 => "f4",
        NcType::F64 => "f8",
        NcType::Char => "S1",
        NcType::Str => "O",
    }
}

/// The store's nodes.
#[derive(Debug, Clone)]
pub(crate) struct StoreTree {
    /// Format.
    pub(crate) format: Format,
    /// Groups, the root first.
    pub(crate) groups: Vec<StoreGroup>,
    /// Arrays.
    pub(crate) arrays: Vec<StoreArray>,
    /// Documents a reader cannot use (as differences).
    pub(crate) problems: Vec<String>,
}

impl StoreTree {
    /// The nodes of the documents [`collect`] read.
    #[allow(clippy::too_many_lines)] // v2 and v3 documents parsed side by side into one tree
    pub(crate) fn new(format: Format, docs: &[(String, String)]) -> Self {
        let mut t = Self {
            format,
            groups: Vec::new(),
            arrays: Vec::new(),
            problems: Vec::new(),
        };
        let dir_of = |k: &str| k.rsplit_once('/').map_or("", |(d, _)| d).to_string();
        let parsed: Vec<(String, String, Option<Value>)> = docs
            .iter()
            .map(|(k, text)| {
                let name = k.rsplit('/').next().unwrap_or(k).to_string();
                match json::parse(text) {
                    Ok(v) => (k.clone(), name, Some(v)),
                    Err(e) => {
                        t.problems.push(format!(
                            "{k}: not valid JSON ({e}): a reader cannot open it"
                        ));
                        (k.clone(), name, None)
                    }
                }
            })
            .collect();
        let attrs_v2 = |dir: &str| -> Map<String, Value> {
            parsed
                .iter()
                .find(|(k, n, _)| n == ".zattrs" && dir_of(k) == dir)
                .and_then(|(_, _, v)| v.as_ref()?.as_object().cloned())
                .unwrap_or_default()
        };
        for (k, name, doc) in &parsed {
            let Some(doc) = doc else { continue };
            let dir = dir_of(k);
            let kind = match (format, name.as_str()) {
                (Format::V3, "zarr.json") => {
                    if doc.get("zarr_format") != Some(&Value::from(3)) {
                        t.problems.push(format!("{k}: zarr_format is not 3"));
                    }
                    doc.get("node_type").and_then(Value::as_str).unwrap_or("")
                }
                (Format::V2, ".zgroup") => "group",
                (Format::V2, ".zarray") => "array",
                _ => continue,
            };
            let attrs = match format {
                Format::V3 => doc
                    .get("attributes")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default(),
                Format::V2 => attrs_v2(&dir),
            };
            match kind {
                "group" => t.groups.push(StoreGroup { path: dir, attrs }),
                "array" => {
                    let shape = doc
                        .get("shape")
                        .and_then(Value::as_array)
                        .map(|a| a.iter().filter_map(Value::as_u64).collect());
                    let Some(shape) = shape else {
                        t.problems.push(format!("{k}: no valid shape"));
                        continue;
                    };
                    let names = match format {
                        Format::V3 => doc.get("dimension_names"),
                        Format::V2 => attrs.get("_ARRAY_DIMENSIONS"),
                    };
                    let dims = match names {
                        None | Some(Value::Null) => None,
                        Some(Value::Array(a)) => Some(
                            a.iter()
                                .map(|x| x.as_str().unwrap_or("").to_string())
                                .collect(),
                        ),
                        Some(_) => None,
                    };
                    let dtype_text = json::show(
                        doc.get(match format {
                            Format::V3 => "data_type",
                            Format::V2 => "dtype",
                        })
                        .unwrap_or(&Value::Null),
                    );
                    t.arrays.push(StoreArray {
                        path: dir,
                        key: k.clone(),
                        doc: doc.clone(),
                        attrs,
                        shape,
                        dims,
                        dtype_text,
                    });
                }
                other => t.problems.push(format!(
                    "{k}: node_type {other:?} is neither group nor array"
                )),
            }
        }
        t.groups.sort_by(|a, b| a.path.cmp(&b.path));
        t.arrays.sort_by(|a, b| a.path.cmp(&b.path));
        t
    }

    /// The array at `path`.
    pub(crate) fn array(&self, path: &str) -> Option<&StoreArray> {
        self.arrays.iter().find(|a| a.path == path)
    }

    /// The group at `path`.
    pub(crate) fn group(&self, path: &str) -> Option<&StoreGroup> {
        self.groups.iter().find(|g| g.path == path)
    }
}

/// Decodes the region `start`/`count` of an array (fill values where a
/// chunk is missing, as readers do).
///
/// # Errors
/// zarrs' error (a damaged chunk), as text.
pub(crate) fn retrieve(
    array: &Array<dyn ReadableStorageTraits>,
    start: &[u64],
    count: &[u64],
) -> Result<Raw, String> {
    let subset = ArraySubset::new_with_start_shape(start.to_vec(), count.to_vec())
        .map_err(|e| e.to_string())?;
    let bytes: ArrayBytes<'static> = array
        .retrieve_array_subset(&subset)
        .map_err(|e| e.to_string())?;
    Ok(match bytes {
        ArrayBytes::Variable(v) => {
            let (data, offsets) = v.into_parts();
            Raw::Strings(
                offsets
                    .windows(2)
                    .map(|w| String::from_utf8_lossy(&data[w[0]..w[1]]).into_owned())
                    .collect(),
            )
        }
        other => Raw::Fixed(other.into_fixed().map_err(|e| e.to_string())?.into_owned()),
    })
}

/// Storage for zarrs.
///
/// # Errors
/// [`VerifyError::Io`] when the store cannot be opened.
pub(crate) fn storage(store: &Path) -> Result<Arc<dyn ReadableStorageTraits>, VerifyError> {
    let err = |e: String| VerifyError::Io {
        path: store.to_path_buf(),
        what: "open the store",
        source: std::io::Error::other(e),
    };
    if crate::store::storage::is_object(store) {
        let s = crate::store::storage::open(store).map_err(|e| err(e.to_string()))?;
        return Ok(Arc::new(crate::store::storage::zarrs_reader::ZarrsReader(
            s,
        )));
    }
    zarrs::filesystem::FilesystemStore::new(store)
        .map(|s| Arc::new(s) as Arc<dyn ReadableStorageTraits>)
        .map_err(|e| err(e.to_string()))
}

/// [`collect`] for a store on object storage: one listing, the metadata
/// documents taken from it (nothing below an array, nothing in zarrforge's
/// own directory).
fn collect_remote(store: &Path) -> Result<(Format, Vec<(String, String)>), VerifyError> {
    let io = |what: &'static str, e: crate::store::error::WriteError| VerifyError::Io {
        path: store.to_path_buf(),
        what,
        source: std::io::Error::other(e),
    };
    let s = crate::store::storage::open(store).map_err(|e| io("open the store", e))?;
    let keys = s.list("").map_err(|e| io("list the store", e))?;
    let has = |k: &str| keys.iter().any(|x| x == k);
    let format = if has("zarr.json") {
        Format::V3
    } else if has(".zgroup") || has(".zarray") {
        Format::V2
    } else {
        return Err(VerifyError::NotAStore(store.to_path_buf()));
    };
    let names: &[&str] = match format {
        Format::V3 => &["zarr.json"],
        Format::V2 => &[".zgroup", ".zarray", ".zattrs", ".zmetadata"],
    };
    let mut docs = Vec::new();
    let mut arrays: Vec<String> = Vec::new();
    for k in &keys {
        let (rel, name) = k.rsplit_once('/').unwrap_or(("", k.as_str()));
        if !names.contains(&name)
            || rel == PRIVATE_DIR
            || rel.starts_with(&format!("{PRIVATE_DIR}/"))
            || arrays.iter().any(|a| {
                // Below an array (its own documents are in `rel == a`).
                if a.is_empty() {
                    !rel.is_empty()
                } else {
                    rel.starts_with(&format!("{a}/"))
                }
            })
        {
            continue;
        }
        let bytes = s
            .get(k)
            .map_err(|e| io("read metadata", e))?
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let is_array = match format {
            Format::V3 => json::parse(&text)
                .map_or(true, |v| v.get("node_type") != Some(&Value::from("group"))),
            Format::V2 => name == ".zarray",
        };
        if is_array {
            arrays.push(rel.to_string());
        }
        docs.push((k.clone(), text));
    }
    Ok((format, docs))
}
