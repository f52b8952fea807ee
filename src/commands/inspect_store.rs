//! `zarrforge inspect STORE`: what a store is (a directory or
//! `s3://BUCKET/PREFIX`): committed, being written or being deleted; its
//! arrays from the root metadata; and, for a run in progress or
//! interrupted, the units its journal records and who holds its lock. On
//! object storage, where there is no `ls -l`, this is how a user follows or
//! diagnoses a run.

use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use crate::error::Error;
use crate::store::files::{CLEARING_FILE, MARKER_DIR, MARKER_FILE};
use crate::store::storage;

/// What `inspect` reports of a store.
#[derive(Debug, Serialize)]
pub struct StoreView {
    /// The store.
    pub store: String,
    /// `committed`, `in progress` (a live run holds its lock),
    /// `interrupted`, `being deleted (--overwrite)`, or `not a zarrforge
    /// store`.
    pub state: String,
    /// Written by zarrforge (its marker is there).
    pub zarrforge: bool,
    /// Zarr format of the root document, when committed.
    pub zarr_format: Option<u8>,
    /// Arrays: path, shape, chunks, data type (from the root metadata).
    pub arrays: Vec<(String, Value, Value, Value)>,
    /// Units recorded by the journal, and the plan's total.
    pub journal: Option<(u64, u64)>,
    /// The lock's holder, as recorded.
    pub lock: Option<Value>,
    /// The new dimension made from the files (`--new-dim`) and its values.
    pub grid: Option<(String, Vec<String>)>,
    /// The regions rewritten since the store was made (`--region`).
    pub regions: Vec<String>,
}

/// Whether `path` names a store rather than a netCDF file: an `s3://` URL,
/// or a directory.
pub fn is_store(path: &Path) -> bool {
    storage::is_object(path) || path.is_dir()
}

fn arrays_of(root: &Value, format: u8) -> Vec<(String, Value, Value, Value)> {
    let mut out = Vec::new();
    let meta = match format {
        3 => &root["consolidated_metadata"]["metadata"],
        _ => &root["metadata"],
    };
    let Some(m) = meta.as_object() else {
        return out;
    };
    for (k, v) in m {
        match format {
            3 if v["node_type"] == "array" => out.push((
                k.clone(),
                v["shape"].clone(),
                v["chunk_grid"]["configuration"]["chunk_shape"].clone(),
                v["data_type"].clone(),
            )),
            2 if k.ends_with("/.zarray") || k == ".zarray" => out.push((
                k.trim_end_matches(".zarray")
                    .trim_end_matches('/')
                    .to_string(),
                v["shape"].clone(),
                v["chunks"].clone(),
                v["dtype"].clone(),
            )),
            _ => {}
        }
    }
    out
}

/// Reads what `inspect` reports.
///
/// # Errors
/// The store cannot be reached or listed.
pub fn view(path: &Path) -> Result<StoreView, Error> {
    let s = storage::open(path)?;
    s.check()?;
    let key = |name: &str| storage::join(MARKER_DIR, name);
    let zarrforge = s.exists(&key(MARKER_FILE))?;
    let parse = |k: &str| -> Result<Option<Value>, Error> {
        Ok(s.get(k)?.and_then(|b| serde_json::from_slice(&b).ok()))
    };
    let (format, root) = match parse("zarr.json")? {
        Some(r) => (Some(3), Some(r)),
        None => match parse(".zmetadata")? {
            Some(r) => (Some(2), Some(r)),
            None => (None, None),
        },
    };
    let state = if !zarrforge && format.is_none() {
        "not a zarrforge store"
    } else if s.exists(&key(CLEARING_FILE))? {
        "being deleted (--overwrite)"
    } else if format.is_some() {
        "committed"
    } else if let Some(h) = crate::store::lock::live_holder(path) {
        &*format!(
            "in progress: a run holds its lock ({}); wait for it to end",
            h.describe()
        )
    } else {
        "interrupted (run the same command with --resume)"
    };
    let journal_dir = key(crate::store::journal::JOURNAL_DIR);
    let total =
        parse(&storage::join(&journal_dir, "plan.json"))?.and_then(|p| p["total_units"].as_u64());
    let journal = match total {
        Some(t) => {
            let mut done = 0;
            for k in s.list(&journal_dir)? {
                if k.rsplit('/')
                    .next()
                    .is_some_and(|n| n.starts_with("units-"))
                {
                    done += s.size(&k)?.unwrap_or(0) / 8;
                }
            }
            Some((done, t))
        }
        None => None,
    };
    let saved = if zarrforge && format.is_some() {
        crate::store::state::load(path).ok()
    } else {
        None
    };
    Ok(StoreView {
        grid: saved.as_ref().and_then(|st| {
            st.grid.as_ref().map(|g| {
                (
                    g.dim.clone(),
                    g.labels.iter().map(ToString::to_string).collect(),
                )
            })
        }),
        regions: saved.map(|st| st.regions).unwrap_or_default(),
        store: s.describe(""),
        state: state.into(),
        zarrforge,
        zarr_format: format,
        arrays: root
            .as_ref()
            .zip(format)
            .map(|(r, f)| arrays_of(r, f))
            .unwrap_or_default(),
        journal,
        lock: parse(&key(crate::store::layout::LOCK_FILE))?,
    })
}

/// The view as text.
pub fn describe(v: &StoreView) -> String {
    let mut out = format!("{}: {}\n", v.store, v.state);
    if let Some(f) = v.zarr_format {
        out.push_str(&format!("  Zarr format {f}, {} array(s)\n", v.arrays.len()));
    }
    for (path, shape, chunks, dtype) in &v.arrays {
        out.push_str(&format!(
            "  {path}: {dtype} shape {shape} chunks {chunks}\n"
        ));
    }
    if let Some((dim, labels)) = &v.grid {
        out.push_str(&format!(
            "  '{dim}' made from the files: {} value(s): {}\n",
            labels.len(),
            labels.join(", ")
        ));
    }
    for r in &v.regions {
        out.push_str(&format!("  region: {r}\n"));
    }
    if let Some((done, total)) = v.journal {
        out.push_str(&format!("  journal: {done} of {total} units recorded\n"));
    }
    if let Some(l) = &v.lock {
        out.push_str(&format!("  locked by: {l}\n"));
    }
    out
}
