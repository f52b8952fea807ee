//! The saved state of a committed store: `.zarrforge/dataset.bin`, written
//! by rank 0 at every commit (the output structure, the layout of every
//! array, the concatenation axis with its values, the source name of each
//! variable), read back by an append and by `--resume`. The length along the
//! axis is taken from the committed root metadata, so a run killed between
//! saving the state and the commit cannot make the state run ahead of what
//! readers see.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cli::config::{AttrsJson, Codec, ZarrFormat};
use crate::model::schema::Schema;
use crate::pipeline::combine::grid::Grid;
use crate::pipeline::combine::{set_dim_len, Concat, Dataset};
use crate::pipeline::plan::ArrayPlan;
use crate::store::error::AppendError;
use crate::store::error::WriteError;
use crate::store::layout::{root_key, MARKER_DIR, STATE_FILE};

/// One array's layout, as committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArrayLayout {
    /// Path in the store.
    pub path: String,
    /// Chunk shape.
    pub chunks: Vec<u64>,
    /// Shard shape.
    pub shards: Option<Vec<u64>>,
    /// Compression.
    pub codec: Codec,
}

/// What an append needs to know about a store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreState {
    /// zarrforge version that wrote it.
    pub version: String,
    /// Zarr format.
    pub format: ZarrFormat,
    /// Output structure (shapes as committed).
    pub schema: Schema,
    /// Layout of each array, in [`Schema::vars`] order.
    pub arrays: Vec<ArrayLayout>,
    /// Source path of each array's variable, same order.
    pub source_paths: Vec<String>,
    /// The concatenation axis.
    pub concat: Option<Concat>,
    /// The print of the plan that wrote the store last.
    pub print: Option<crate::store::journal::PlanPrint>,
    /// How NaN and infinite float attributes are written (an append keeps
    /// it unless told otherwise). Last: the state of a store written before
    /// it existed ends just before it ([`decode`]).
    pub attrs_json: AttrsJson,
    /// The new outermost dimension made from the files (`--new-dim`), with
    /// its values. Older states end before it ([`decode`]).
    pub grid: Option<Grid>,
    /// The regions rewritten since the store was made (`--region`), one
    /// line each: region, time of the commit, inputs. Last: older states
    /// end before it ([`decode`]).
    pub regions: Vec<String>,
}

/// The state as stores written before `grid` hold it.
#[derive(Deserialize)]
struct StateWithoutGrid {
    version: String,
    format: ZarrFormat,
    schema: Schema,
    arrays: Vec<ArrayLayout>,
    source_paths: Vec<String>,
    concat: Option<Concat>,
    print: Option<crate::store::journal::PlanPrint>,
    attrs_json: AttrsJson,
}

/// The state as stores written before `attrs_json` hold it.
#[derive(Deserialize)]
struct StateWithoutAttrsJson {
    version: String,
    format: ZarrFormat,
    schema: Schema,
    arrays: Vec<ArrayLayout>,
    source_paths: Vec<String>,
    concat: Option<Concat>,
    print: Option<crate::store::journal::PlanPrint>,
}

/// Decodes a saved state, of this version or of one before `attrs_json`
/// (whose stores wrote bare NaN/Infinity tokens: [`AttrsJson::Python`]).
fn decode(bytes: &[u8]) -> Result<StoreState, String> {
    let cfg = bincode::config::standard();
    if let Ok((state, used)) = bincode::serde::decode_from_slice::<StoreState, _>(bytes, cfg) {
        if used == bytes.len() {
            return Ok(state);
        }
    }
    match bincode::serde::decode_from_slice::<StateWithoutGrid, _>(bytes, cfg) {
        Ok((old, used)) if used == bytes.len() => Ok(StoreState {
            version: old.version,
            format: old.format,
            schema: old.schema,
            arrays: old.arrays,
            source_paths: old.source_paths,
            concat: old.concat,
            print: old.print,
            attrs_json: old.attrs_json,
            grid: None,
            regions: Vec::new(),
        }),
        now => {
            let (old, used) = bincode::serde::decode_from_slice::<StateWithoutAttrsJson, _>(
                bytes, cfg,
            )
            .map_err(|e| match now {
                Err(n) => n.to_string(),
                Ok(_) => e.to_string(),
            })?;
            if used != bytes.len() {
                return Err(format!("{} bytes left over", bytes.len() - used));
            }
            Ok(StoreState {
                version: old.version,
                format: old.format,
                schema: old.schema,
                arrays: old.arrays,
                source_paths: old.source_paths,
                concat: old.concat,
                print: old.print,
                attrs_json: AttrsJson::Python,
                grid: None,
                regions: Vec::new(),
            })
        }
    }
}

impl StoreState {
    /// The state of a dataset and its plan.
    pub fn new(
        ds: &Dataset,
        arrays: &[ArrayPlan],
        format: ZarrFormat,
        attrs_json: AttrsJson,
    ) -> Self {
        Self {
            version: env!("CARGO_PKG_VERSION").to_string(),
            format,
            attrs_json,
            schema: ds.schema.clone(),
            arrays: arrays
                .iter()
                .map(|a| ArrayLayout {
                    path: a.path.clone(),
                    chunks: a.chunks.clone(),
                    shards: a.shards.clone(),
                    codec: a.codec.clone(),
                })
                .collect(),
            source_paths: ds.sources.iter().map(|s| s.var.path.clone()).collect(),
            concat: ds.concat.clone(),
            print: None,
            grid: ds.grid.clone(),
            regions: Vec::new(),
        }
    }

    /// Serialised form.
    ///
    /// # Errors
    /// [`WriteError::Io`] if it cannot be encoded.
    pub fn to_bytes(&self, store: &Path) -> Result<Vec<u8>, WriteError> {
        bincode::serde::encode_to_vec(self, bincode::config::standard()).map_err(|e| {
            WriteError::io(
                store.join(MARKER_DIR).join(STATE_FILE),
                "encode state",
                std::io::Error::other(e.to_string()),
            )
        })
    }
}

fn not_appendable(path: &Path, reason: impl Into<String>) -> AppendError {
    AppendError::NotAppendable {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Loads the state of `store`, with the axis length as committed.
///
/// # Errors
/// [`AppendError::NotAppendable`] when the store was not written by
/// zarrforge, is not committed, or its state cannot be read.
pub fn load(store: &Path) -> Result<StoreState, AppendError> {
    let s = crate::store::storage::open(store).map_err(|e| not_appendable(store, e.to_string()))?;
    if !crate::store::files::is_our_store(store) {
        return Err(not_appendable(store, "not a store written by zarrforge"));
    }
    let key = crate::store::storage::join(MARKER_DIR, STATE_FILE);
    let path = s.describe(&key);
    let bytes = s
        .get(&key)
        .map_err(|e| not_appendable(store, e.to_string()))?
        .ok_or_else(|| not_appendable(store, format!("{path}: not found")))?;
    let mut state = decode(&bytes).map_err(|e| not_appendable(store, format!("{path}: {e}")))?;
    // Input paths saved as given (by earlier builds) become canonical.
    state.print = state.print.map(crate::store::journal::PlanPrint::resolved);
    let committed = s
        .exists(root_key(state.format))
        .map_err(|e| not_appendable(store, e.to_string()))?;
    if !committed {
        return Err(not_appendable(
            store,
            "the store was never committed (an earlier run did not finish); convert it again",
        ));
    }
    if let Some(g) = state.grid.clone() {
        // Members added by a run that did not reach its commit are not there.
        let committed = committed_len(store, &state, &g.dim)?;
        if committed < g.labels.len() as u64 {
            let n = usize::try_from(committed).unwrap_or(usize::MAX);
            if let Some(grid) = &mut state.grid {
                grid.labels.truncate(n);
                grid.missing.retain(|c| c.index < committed);
            }
            set_dim_len(&mut state.schema.root, &g.dim, committed);
        }
    }
    let Some(concat) = state.concat.clone() else {
        if state.grid.is_some() {
            return Ok(state);
        }
        return Err(not_appendable(
            store,
            "it was written without a concatenation dimension",
        ));
    };
    let committed = committed_len(store, &state, &concat.dim)?;
    if committed != concat.len {
        // The state was saved by a run that did not reach its commit.
        set_len(&mut state, committed);
    }
    Ok(state)
}

/// The format of the store at `store`, from its root metadata (none when
/// it has none, or cannot be read).
pub fn committed_format(store: &Path) -> Option<ZarrFormat> {
    let s = crate::store::storage::open(store).ok()?;
    if s.exists(root_key(ZarrFormat::V3)).ok()? {
        Some(ZarrFormat::V3)
    } else if s.exists(root_key(ZarrFormat::V2)).ok()? {
        Some(ZarrFormat::V2)
    } else {
        None
    }
}

/// The axis length in the committed (consolidated) root metadata.
fn committed_len(store: &Path, state: &StoreState, dim: &str) -> Result<u64, AppendError> {
    let vars = state.schema.vars();
    let Some((v, k)) = vars
        .iter()
        .find_map(|v| v.dims.iter().position(|d| d == dim).map(|k| (v, k)))
    else {
        return Err(not_appendable(
            store,
            format!("no array has dimension '{dim}'"),
        ));
    };
    let s = crate::store::storage::open(store).map_err(|e| not_appendable(store, e.to_string()))?;
    let read = |key: &str| -> Result<Value, AppendError> {
        let p = s.describe(key);
        let text = s
            .get(key)
            .map_err(|e| not_appendable(store, e.to_string()))?
            .ok_or_else(|| not_appendable(store, format!("{p}: not found")))?;
        serde_json::from_slice(&text).map_err(|e| not_appendable(store, format!("{p}: {e}")))
    };
    let shape = match state.format {
        ZarrFormat::V3 => {
            let root = read("zarr.json")?;
            let shape = root["consolidated_metadata"]["metadata"][&v.path]["shape"].clone();
            if shape.is_null() {
                // A root document rewritten by another tool (an Icechunk
                // commit of zarr-python's) may hold no consolidated
                // metadata: the array's own document has the shape.
                read(&format!("{}/zarr.json", v.path))?["shape"].clone()
            } else {
                shape
            }
        }
        ZarrFormat::V2 => {
            let root = read(".zmetadata")?;
            root["metadata"][format!("{}/.zarray", v.path)]["shape"].clone()
        }
    };
    shape.get(k).and_then(Value::as_u64).ok_or_else(|| {
        not_appendable(
            store,
            format!("no shape for '{}' in the root metadata", v.path),
        )
    })
}

fn set_len(state: &mut StoreState, len: u64) {
    if let Some(c) = &mut state.concat {
        c.len = len;
        if let Some(v) = &mut c.values {
            v.truncate(usize::try_from(len).unwrap_or(usize::MAX));
        }
        let dim = c.dim.clone();
        set_dim_len(&mut state.schema.root, &dim, len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::schema::{Dim, Group, SourceFormat};

    fn state(attrs_json: AttrsJson) -> StoreState {
        StoreState {
            version: "0.1.0".into(),
            format: ZarrFormat::V3,
            schema: Schema {
                source: "a.nc".into(),
                format: SourceFormat::Netcdf4,
                root: Group {
                    name: String::new(),
                    path: String::new(),
                    dims: vec![Dim {
                        name: "time".into(),
                        len: 4,
                        unlimited: true,
                    }],
                    attrs: vec![],
                    vars: vec![],
                    groups: vec![],
                },
                skipped: vec![],
                warnings: vec![],
            },
            arrays: vec![],
            source_paths: vec!["t".into()],
            concat: None,
            print: None,
            attrs_json,
            grid: None,
            regions: Vec::new(),
        }
    }

    #[test]
    fn states_of_stores_written_before_attrs_json_still_load() {
        let strict = state(AttrsJson::Strict);
        let bytes = strict.to_bytes(Path::new("s.zarr")).unwrap();
        assert_eq!(decode(&bytes).unwrap(), strict);
        // A store written before `grid` and `regions`: the same bytes
        // without them (one byte each for `None` and the empty list);
        // before `attrs_json`: one byte less again.
        let without_grid = &bytes[..bytes.len() - 2];
        assert_eq!(decode(without_grid).unwrap(), strict);
        let old = &bytes[..bytes.len() - 3];
        assert_eq!(decode(old).unwrap(), state(AttrsJson::Python));
        assert!(decode(&bytes[..bytes.len() / 2]).is_err());
    }
}
