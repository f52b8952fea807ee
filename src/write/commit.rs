//! The commit: rank 0 writes all metadata after every rank has succeeded.
//!
//! Order: array metadata, then group metadata, then the consolidated
//! metadata, and the root group document last. The root document
//! (`zarr.json` in v3, `.zgroup` in v2) is the commit point.

use std::path::Path;

use serde_json::{json, Map, Value};

use super::metadata;
use super::store::write_atomic;
use crate::config::ZarrFormat;
use crate::error::WriteError;
use crate::plan::Plan;
use crate::schema::Schema;

fn write_json(store: &Path, key: &str, v: &Value) -> Result<(), WriteError> {
    let bytes = super::metadata::to_json_bytes(v)
        .map_err(|e| WriteError::io(store.join(key), "serialise", std::io::Error::other(e)))?;
    write_atomic(&store.join(key), &bytes)
}

/// Consolidated entries sorted by key: readers (zarr-python) group the
/// entries of one parent by runs of equal prefixes, so siblings must be
/// adjacent.
fn sorted(m: Map<String, Value>) -> Map<String, Value> {
    let sorted: std::collections::BTreeMap<String, Value> = m.into_iter().collect();
    sorted.into_iter().collect()
}

/// The state an append needs, saved before the commit point.
fn save_state(store: &Path, state: &[u8]) -> Result<(), WriteError> {
    write_atomic(
        &store
            .join(super::store::MARKER_DIR)
            .join(crate::append::STATE_FILE),
        state,
    )
}

fn key(path: &str, name: &str) -> String {
    crate::schema::join(path, name)
}

/// Writes every metadata document of the store; the root document last.
///
/// # Errors
/// [`WriteError::Io`] with the path that failed.
pub fn commit(
    store: &Path,
    schema: &Schema,
    plan: &Plan,
    format: ZarrFormat,
    state: &[u8],
) -> Result<(), WriteError> {
    let vars = schema.vars();
    let groups = schema.root.all_groups();
    match format {
        ZarrFormat::V3 => {
            let mut consolidated = Map::new();
            for a in &plan.arrays {
                let doc = metadata::array_v3(vars[a.var], a, &a.codec, false);
                write_json(store, &key(&a.path, "zarr.json"), &doc)?;
                consolidated.insert(a.path.clone(), doc);
            }
            for g in &groups {
                let doc = metadata::group_v3(g);
                write_json(store, &key(&g.path, "zarr.json"), &doc)?;
                consolidated.insert(g.path.clone(), doc);
            }
            let mut root = metadata::group_v3(&schema.root);
            root["consolidated_metadata"] = json!({
                "kind": "inline",
                "must_understand": false,
                "metadata": sorted(consolidated),
            });
            save_state(store, state)?;
            super::store::sync_filesystem(store)?;
            write_json(store, "zarr.json", &root)?;
            super::store::sync_filesystem(store)
        }
        ZarrFormat::V2 => {
            let mut consolidated = Map::new();
            for a in &plan.arrays {
                let var = vars[a.var];
                let zarray = metadata::array_v2(var, a, &a.codec);
                let zattrs = Value::Object(metadata::var_attributes(var, ZarrFormat::V2));
                write_json(store, &key(&a.path, ".zarray"), &zarray)?;
                write_json(store, &key(&a.path, ".zattrs"), &zattrs)?;
                consolidated.insert(key(&a.path, ".zarray"), zarray);
                consolidated.insert(key(&a.path, ".zattrs"), zattrs);
            }
            let zgroup = json!({"zarr_format": 2});
            for g in &groups {
                let zattrs = Value::Object(metadata::group_attributes(g));
                write_json(store, &key(&g.path, ".zgroup"), &zgroup)?;
                write_json(store, &key(&g.path, ".zattrs"), &zattrs)?;
                consolidated.insert(key(&g.path, ".zgroup"), zgroup.clone());
                consolidated.insert(key(&g.path, ".zattrs"), zattrs);
            }
            let root_attrs = Value::Object(metadata::group_attributes(&schema.root));
            consolidated.insert(".zgroup".into(), zgroup.clone());
            consolidated.insert(".zattrs".into(), root_attrs.clone());
            write_json(store, ".zattrs", &root_attrs)?;
            write_json(
                store,
                ".zmetadata",
                &json!({"metadata": sorted(consolidated), "zarr_consolidated_format": 1}),
            )?;
            save_state(store, state)?;
            super::store::sync_filesystem(store)?;
            write_json(store, ".zgroup", &zgroup)?;
            super::store::sync_filesystem(store)
        }
    }
}
