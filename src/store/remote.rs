//! A store on object storage: what [`super::files`] does for a directory
//! (preparation, the unclaimed check, `--overwrite`'s deletion), by listing
//! and batched deletes. There are no temporary names (a PUT is all or
//! nothing) and no links to refuse.

use std::path::Path;

use super::layout::{CLEARING_FILE, LOCK_FILE, MARKER_DIR, MARKER_FILE, METADATA_KEYS};
use super::storage::{self, Storage};
use crate::cli::error::ConfigError;
use crate::store::error::WriteError;

/// The store's keys that its creation leaves before the marker.
fn is_creation_leftover(key: &str) -> bool {
    key == storage::join(MARKER_DIR, LOCK_FILE)
}

fn to_config(output: &Path, e: WriteError) -> ConfigError {
    ConfigError::Output {
        path: output.to_path_buf(),
        source: std::io::Error::other(e),
    }
}

/// Whether the prefix holds nothing but a creation's leftovers. Lists only
/// the root and `.zarrforge/` (two requests, whatever the store's size).
///
/// # Errors
/// [`WriteError`] when it cannot be listed.
pub fn is_unclaimed(s: &dyn Storage) -> Result<bool, WriteError> {
    let top = s.children("")?;
    if top.iter().any(|n| *n != format!("{MARKER_DIR}/")) {
        return Ok(false);
    }
    if top.is_empty() {
        return Ok(true);
    }
    Ok(s.list(MARKER_DIR)?.iter().all(|k| is_creation_leftover(k)))
}

/// Checks that the prefix is free for a new store: empty, or holding only
/// what a killed creation left.
///
/// # Errors
/// [`ConfigError::OutputExists`] for a zarrforge store,
/// [`ConfigError::NotOurStore`] for anything else there.
pub fn prepare(output: &Path) -> Result<(), ConfigError> {
    let s = storage::open(output).map_err(|e| to_config(output, e))?;
    if is_unclaimed(s.as_ref()).map_err(|e| to_config(output, e))? {
        return Ok(());
    }
    if s.exists(&marker_key()).map_err(|e| to_config(output, e))? {
        return Err(ConfigError::OutputExists(output.to_path_buf()));
    }
    Err(ConfigError::NotOurStore(output.to_path_buf()))
}

/// Key of the marker.
pub fn marker_key() -> String {
    storage::join(MARKER_DIR, MARKER_FILE)
}

/// Removes the marker of a store whose creation failed.
pub fn unmake(output: &Path) {
    if let Ok(s) = storage::open(output) {
        let _ = s.delete(&[marker_key()]);
    }
}

/// `--overwrite`'s deletion: a `clearing` object first, then the root
/// documents (the old store disappears for readers in one step), then the
/// other metadata documents, then everything else in batches, keeping the
/// marker and the lock; `clearing` last.
///
/// # Errors
/// [`WriteError`] of the listing or of a batch.
pub fn clear(s: &dyn Storage) -> Result<(), WriteError> {
    let clearing = storage::join(MARKER_DIR, CLEARING_FILE);
    if !s.exists(&clearing)? {
        s.put(&clearing, b"an --overwrite is deleting this store\n")?;
    }
    crate::system::fault::point("overwrite.begun");
    let roots: Vec<String> = METADATA_KEYS.iter().map(|k| (*k).to_string()).collect();
    s.delete(&roots)?;
    crate::system::fault::point("overwrite.hidden");
    let keep = [
        marker_key(),
        clearing.clone(),
        storage::join(MARKER_DIR, LOCK_FILE),
    ];
    let (docs, rest): (Vec<String>, Vec<String>) = s
        .list("")?
        .into_iter()
        .filter(|k| !keep.contains(k))
        .partition(|k| {
            let name = k.rsplit('/').next().unwrap_or_default();
            METADATA_KEYS.contains(&name)
        });
    s.delete(&docs)?;
    s.delete(&rest)?;
    crate::system::fault::point("overwrite.removed");
    s.delete(&[clearing])?;
    crate::system::fault::point("overwrite.cleared");
    Ok(())
}
