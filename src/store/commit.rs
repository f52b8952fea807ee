//! The commit: rank 0 writes all metadata after every rank has succeeded.
//!
//! Every chunk is made durable first (`syncfs`; on object storage, every
//! upload has succeeded). Then the whole commit is
//! written down in one file, `.zarrforge/commit.bin`: every metadata
//! document in order and the store's new state. Once that file is durable
//! the commit is decided: the documents are written (array metadata, group
//! metadata, the consolidated metadata, the root group document last), then
//! the state, and `commit.bin` is removed. A run killed in between leaves
//! `commit.bin`, and the next run on the store finishes it
//! ([`finish_pending`]) before anything else, so an append's new length and
//! its state can never disagree. For a new store the root document
//! (`zarr.json` in v3, `.zgroup` in v2) is what readers wait for.
//!
//! On object storage every document is a single PUT, all or nothing, and
//! each is complete before the next is sent: the root document is the last
//! object a run writes.

use std::path::Path;

use serde_json::{json, Map, Value};

use super::metadata;
use super::storage::{self, Storage};
use crate::cli::config::{AttrsJson, ZarrFormat};
use crate::model::schema::Schema;
use crate::pipeline::plan::Plan;
use crate::store::error::WriteError;

/// File of a decided commit not yet fully written, inside the marker
/// directory.
pub const PENDING_FILE: &str = "commit.bin";

/// A decided commit: the documents in the order they are written, and the
/// store's state after it.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Pending {
    docs: Vec<(String, Vec<u8>)>,
    state: Vec<u8>,
}

/// The documents of one commit, written the same way.
struct Docs<'a> {
    store: &'a Path,
    attrs_json: AttrsJson,
    pending: Pending,
}

impl Docs<'_> {
    fn add(&mut self, key: &str, v: &Value) -> Result<(), WriteError> {
        let store = self.store;
        let bytes = super::metadata::to_json_bytes(v, self.attrs_json)
            .map_err(|e| WriteError::io(store.join(key), "serialise", std::io::Error::other(e)))?;
        self.pending.docs.push((key.to_string(), bytes));
        Ok(())
    }
}

fn pending_key() -> String {
    storage::join(super::layout::MARKER_DIR, PENDING_FILE)
}

/// Consolidated entries sorted by key: readers (zarr-python) group the
/// entries of one parent by runs of equal prefixes, so siblings must be
/// adjacent.
fn sorted(m: Map<String, Value>) -> Map<String, Value> {
    let sorted: std::collections::BTreeMap<String, Value> = m.into_iter().collect();
    sorted.into_iter().collect()
}

/// Writes the documents and the state of a decided commit, then removes
/// its record. Writing them again is harmless: the same bytes.
fn apply(s: &dyn Storage, pending: &Pending) -> Result<(), WriteError> {
    for (key, bytes) in &pending.docs {
        s.put(key, bytes)?;
        crate::system::fault::point("commit.doc");
    }
    s.put(
        &storage::join(super::layout::MARKER_DIR, super::layout::STATE_FILE),
        &pending.state,
    )?;
    crate::system::fault::point("commit.state");
    s.sync()?;
    s.delete(&[pending_key()])?;
    crate::system::fault::point("commit.done");
    s.sync()
}

/// Finishes a commit that a killed run decided but did not finish writing.
/// Called with the store's lock held, before a run looks at the store.
/// Returns whether there was one.
///
/// # Errors
/// [`WriteError::Io`]: the record cannot be read or decoded, or a document
/// cannot be written.
pub fn finish_pending(store: &Path) -> Result<bool, WriteError> {
    let s = storage::open(store)?;
    let Some(bytes) = s.get(&pending_key())? else {
        return Ok(false);
    };
    let (pending, _): (Pending, usize) =
        bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).map_err(|e| {
            WriteError::io(
                s.describe(&pending_key()),
                "decode",
                std::io::Error::other(e.to_string()),
            )
        })?;
    apply(s.as_ref(), &pending)?;
    Ok(true)
}

fn key(path: &str, name: &str) -> String {
    crate::model::schema::join(path, name)
}

/// Decides the commit ([`PENDING_FILE`]), then writes every metadata
/// document of the store (the root document last) and the state.
/// `attrs_json` says how NaN and infinite float attributes are written, in
/// every document, the consolidated metadata included.
///
/// # Errors
/// [`WriteError::Io`] with the path that failed.
pub fn commit(
    store: &Path,
    schema: &Schema,
    plan: &Plan,
    format: ZarrFormat,
    attrs_json: AttrsJson,
    state: &[u8],
) -> Result<(), WriteError> {
    let pending = Pending {
        docs: documents(store, schema, plan, format, attrs_json)?,
        state: state.to_vec(),
    };
    let s = storage::open(store)?;
    let record =
        bincode::serde::encode_to_vec(&pending, bincode::config::standard()).map_err(|e| {
            WriteError::io(
                s.describe(&pending_key()),
                "encode",
                std::io::Error::other(e.to_string()),
            )
        })?;
    // Every chunk durable before the commit is decided, the decision
    // durable before any document changes.
    s.sync()?;
    s.put(&pending_key(), &record)?;
    s.sync()?;
    crate::system::fault::point("commit.decided");
    apply(s.as_ref(), &pending)
}

/// Every metadata document of the store in the order a commit writes them
/// (the root document last): keys and bytes.
///
/// # Errors
/// [`WriteError::Io`] when a document cannot be serialised.
pub fn documents(
    store: &Path,
    schema: &Schema,
    plan: &Plan,
    format: ZarrFormat,
    attrs_json: AttrsJson,
) -> Result<Vec<(String, Vec<u8>)>, WriteError> {
    let vars = schema.vars();
    let groups = schema.root.all_groups();
    let mut docs = Docs {
        store,
        attrs_json,
        pending: Pending::default(),
    };
    match format {
        ZarrFormat::V3 => {
            let mut consolidated = Map::new();
            for a in &plan.arrays {
                let doc = metadata::array_v3(vars[a.var], a, &a.codec, false);
                docs.add(&key(&a.path, "zarr.json"), &doc)?;
                consolidated.insert(a.path.clone(), doc);
            }
            for g in &groups {
                let doc = metadata::group_v3(g);
                docs.add(&key(&g.path, "zarr.json"), &doc)?;
                consolidated.insert(g.path.clone(), doc);
            }
            let mut root = metadata::group_v3(&schema.root);
            root["consolidated_metadata"] = json!({
                "kind": "inline",
                "must_understand": false,
                "metadata": sorted(consolidated),
            });
            docs.add("zarr.json", &root)?;
        }
        ZarrFormat::V2 => {
            let mut consolidated = Map::new();
            for a in &plan.arrays {
                let var = vars[a.var];
                let zarray = metadata::array_v2(var, a, &a.codec);
                let zattrs = Value::Object(metadata::var_attributes(var, ZarrFormat::V2));
                docs.add(&key(&a.path, ".zarray"), &zarray)?;
                docs.add(&key(&a.path, ".zattrs"), &zattrs)?;
                consolidated.insert(key(&a.path, ".zarray"), zarray);
                consolidated.insert(key(&a.path, ".zattrs"), zattrs);
            }
            let zgroup = json!({"zarr_format": 2});
            for g in &groups {
                let zattrs = Value::Object(metadata::group_attributes(g));
                docs.add(&key(&g.path, ".zgroup"), &zgroup)?;
                docs.add(&key(&g.path, ".zattrs"), &zattrs)?;
                consolidated.insert(key(&g.path, ".zgroup"), zgroup.clone());
                consolidated.insert(key(&g.path, ".zattrs"), zattrs);
            }
            let root_attrs = Value::Object(metadata::group_attributes(&schema.root));
            consolidated.insert(".zgroup".into(), zgroup.clone());
            consolidated.insert(".zattrs".into(), root_attrs.clone());
            docs.add(".zattrs", &root_attrs)?;
            docs.add(
                ".zmetadata",
                &json!({"metadata": sorted(consolidated), "zarr_consolidated_format": 1}),
            )?;
            docs.add(".zgroup", &zgroup)?;
        }
    }
    Ok(docs.pending.docs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::storage::fs::write_atomic;

    #[test]
    fn a_decided_commit_is_finished_by_the_next_run() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path();
        let pending = Pending {
            docs: vec![
                ("t/zarr.json".into(), b"{\"a\":1}".to_vec()),
                ("zarr.json".into(), b"{\"root\":1}".to_vec()),
            ],
            state: b"state".to_vec(),
        };
        let record = bincode::serde::encode_to_vec(&pending, bincode::config::standard()).unwrap();
        write_atomic(&store.join(pending_key()), &record).unwrap();
        // Killed after the first document.
        write_atomic(&store.join("t/zarr.json"), b"{\"a\":1}").unwrap();
        assert!(finish_pending(store).unwrap());
        assert_eq!(
            std::fs::read(store.join("zarr.json")).unwrap(),
            b"{\"root\":1}"
        );
        let state = store
            .join(super::super::layout::MARKER_DIR)
            .join(super::super::layout::STATE_FILE);
        assert_eq!(std::fs::read(state).unwrap(), b"state");
        assert!(!store.join(pending_key()).exists());
        assert!(!finish_pending(store).unwrap());
    }

    #[test]
    fn an_unreadable_commit_record_is_an_error_not_a_guess() {
        let dir = tempfile::tempdir().unwrap();
        write_atomic(&dir.path().join(pending_key()), b"\xff\xff\xff").unwrap();
        let e = finish_pending(dir.path()).unwrap_err().to_string();
        assert!(e.contains("commit.bin") && e.contains("decode"), "{e}");
    }
}
