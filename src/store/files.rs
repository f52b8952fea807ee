//! The store directory: preparation and safety checks before any chunk is
//! written, atomic file writes, and durability before the commit.
//!
//! A store written by zarrforge carries a marker, `.zarrforge/store.json`;
//! `--overwrite` deletes only directories that carry it. Until the commit the
//! store has no root metadata (`zarr.json` or `.zgroup`), so no reader can
//! take a partial store for a finished one.

use std::path::{Path, PathBuf};

use crate::cli::error::ConfigError;
use crate::store::error::WriteError;
use crate::store::storage;

use super::layout::METADATA_KEYS;
pub use super::layout::{root_key, CLEARING_FILE, MARKER_DIR, MARKER_FILE, STATE_FILE};
pub use super::storage::fs::{sync_filesystem, write_atomic};

/// Whether anything is at `output`: a path, or objects under the prefix.
pub fn output_exists(output: &Path) -> bool {
    if storage::is_remote(output) {
        return storage::open(output)
            .and_then(|s| s.children(""))
            .is_ok_and(|k| !k.is_empty());
    }
    output.exists()
}

/// Whether `dir` is a store written by zarrforge.
pub fn is_our_store(dir: &Path) -> bool {
    if storage::is_remote(dir) {
        return storage::open(dir)
            .and_then(|s| s.exists(&super::remote::marker_key()))
            .unwrap_or(false);
    }
    dir.join(MARKER_DIR).join(MARKER_FILE).is_file()
}

/// Whether `output` is an Icechunk repository (zarrforge's, by its marker,
/// or another tool's: its `repo` object and snapshots).
pub fn is_icechunk(output: &Path) -> bool {
    let Ok(s) = storage::open(output) else {
        return false;
    };
    let marker = s
        .get(&storage::join(MARKER_DIR, MARKER_FILE))
        .ok()
        .flatten()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
    if marker.is_some_and(|m| m["format"] == "icechunk") {
        return true;
    }
    s.exists("repo").unwrap_or(false) && !s.children("snapshots").unwrap_or_default().is_empty()
}

/// Whether an `--overwrite` was interrupted while deleting `dir`.
pub fn is_clearing(dir: &Path) -> bool {
    if storage::is_remote(dir) {
        return storage::open(dir)
            .and_then(|s| s.exists(&storage::join(MARKER_DIR, CLEARING_FILE)))
            .unwrap_or(false);
    }
    dir.join(MARKER_DIR).join(CLEARING_FILE).exists()
}

/// Checks the output path against the inputs and creates it as an empty
/// directory. Run by rank 0 only, before any write; the caller then takes
/// the lock and writes the marker ([`mark`]).
///
/// # Errors
/// [`ConfigError`] when the output exists (an existing zarrforge store is
/// replaced by [`clear`], with its lock held), is a symlink, equals or
/// contains an input, or cannot be created. An existing directory that
/// [`is_unclaimed`] is used as it is.
pub fn prepare(output: &Path, inputs: &[PathBuf]) -> Result<(), ConfigError> {
    if storage::is_remote(output) {
        return super::remote::prepare(output);
    }
    let out_err = |source| ConfigError::Output {
        path: output.to_path_buf(),
        source,
    };
    check_inputs(output, inputs)?;
    match std::fs::symlink_metadata(output) {
        Ok(m) if m.is_dir() && is_unclaimed(output) => return Ok(()),
        Ok(m) if m.file_type().is_symlink() || !is_our_store(output) => {
            return Err(ConfigError::NotOurStore(output.to_path_buf()));
        }
        Ok(_) => return Err(ConfigError::OutputExists(output.to_path_buf())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(out_err(e)),
    }
    // Fails when another run created it in the meantime.
    std::fs::create_dir(output).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            ConfigError::OutputExists(output.to_path_buf())
        } else {
            out_err(e)
        }
    })?;
    crate::system::fault::point("store.created");
    Ok(())
}

/// Whether `dir` holds nothing but what a store's creation leaves before its
/// marker (a run killed at its first writes): the lock and temporary files
/// in [`MARKER_DIR`], or nothing at all. Such a directory is used as a new
/// store; nothing in it can be anybody's data.
pub fn is_unclaimed(dir: &Path) -> bool {
    if storage::is_remote(dir) {
        return storage::open(dir)
            .and_then(|s| super::remote::is_unclaimed(s.as_ref()))
            .unwrap_or(false);
    }
    let only = |d: &Path, ok: &dyn Fn(&str, bool) -> bool| -> bool {
        std::fs::read_dir(d).is_ok_and(|entries| {
            entries.into_iter().all(|e| {
                e.is_ok_and(|e| {
                    let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
                    e.file_name().to_str().is_some_and(|n| ok(n, is_dir))
                })
            })
        })
    };
    only(dir, &|n, is_dir| n == MARKER_DIR && is_dir)
        && only(&dir.join(MARKER_DIR), &|n, is_dir| {
            !is_dir && (crate::store::lock::is_lock_name(n) || is_temp_name(n))
        })
        || std::fs::read_dir(dir).is_ok_and(|mut e| e.next().is_none())
}

/// Refuses an output that equals or contains an input.
///
/// # Errors
/// [`ConfigError::OutputIsInput`], or [`ConfigError::Output`].
pub fn check_inputs(output: &Path, inputs: &[PathBuf]) -> Result<(), ConfigError> {
    if storage::is_remote(output) {
        return Ok(());
    }
    let abs_out = absolute(output).map_err(|source| ConfigError::Output {
        path: output.to_path_buf(),
        source,
    })?;
    for input in inputs {
        if let Ok(inp) = std::fs::canonicalize(input) {
            if inp.starts_with(&abs_out) {
                return Err(ConfigError::OutputIsInput {
                    output: output.to_path_buf(),
                    input: input.clone(),
                });
            }
        }
    }
    Ok(())
}

/// Writes the marker of a store created by [`prepare`].
///
/// # Errors
/// [`WriteError::Io`] (disk full at the first write, quota).
pub fn mark(output: &Path) -> Result<(), WriteError> {
    let marker = serde_json::json!({
        "writer": "zarrforge",
        "version": env!("CARGO_PKG_VERSION"),
    });
    storage::open(output)?.put(
        &storage::join(MARKER_DIR, MARKER_FILE),
        &serde_json::to_vec_pretty(&marker).unwrap_or_default(),
    )?;
    crate::system::fault::point("store.marked");
    Ok(())
}

/// Removes a store that [`prepare`] created but that never got its marker
/// (the first write failed): the path is free again, as before the run.
/// Only files zarrforge wrote there are removed; anything else is kept.
pub fn unmake(output: &Path) {
    if storage::is_remote(output) {
        return super::remote::unmake(output);
    }
    let _ = remove_stale_temps(output);
    let _ = std::fs::remove_file(output.join(MARKER_DIR).join(MARKER_FILE));
    let _ = std::fs::remove_dir(output.join(MARKER_DIR));
    let _ = std::fs::remove_dir(output);
}

/// After a new store's lock was refused: removes the directories this
/// run's [`prepare`] may have made, only if they are empty. Without the
/// lock nothing in the store is this run's: the holder may already have
/// written its marker and chunks (on object storage nothing is removed).
pub fn unmake_empty(output: &Path) {
    if storage::is_remote(output) {
        return;
    }
    let _ = std::fs::remove_dir(output.join(MARKER_DIR));
    let _ = std::fs::remove_dir(output);
}

/// Deletes the contents of the zarrforge store `dir` for `--overwrite`,
/// keeping its marker and lock: the caller holds the lock throughout, so
/// the new run owns the directory from the old store's last moment on.
///
/// First a durable `clearing` file records the operation (an interrupted
/// clear is finished by the next `--overwrite` or `--resume`); then the root
/// documents go (consolidated first), which makes the old store invisible
/// in one step; then everything else, metadata before chunks in each
/// directory; `clearing` is removed last. Symbolic links are removed, never
/// followed.
///
/// # Errors
/// [`WriteError::Io`] naming the entry that could not be removed.
pub fn clear(dir: &Path) -> Result<(), WriteError> {
    if storage::is_remote(dir) {
        return super::remote::clear(storage::open(dir)?.as_ref());
    }
    let marker_dir = dir.join(MARKER_DIR);
    let clearing = marker_dir.join(CLEARING_FILE);
    if !clearing.exists() {
        write_atomic(&clearing, b"an --overwrite is deleting this store\n")?;
        sync_filesystem(dir)?;
    }
    crate::system::fault::point("overwrite.begun");
    for key in METADATA_KEYS {
        remove_entry(&dir.join(key))?;
    }
    sync_filesystem(dir)?;
    crate::system::fault::point("overwrite.hidden");
    let entries = read_dir_sorted(dir)?;
    for path in entries {
        if path.file_name().is_some_and(|n| n == MARKER_DIR) {
            continue;
        }
        remove_tree(&path)?;
        crate::system::fault::point("overwrite.removed");
    }
    for path in read_dir_sorted(&marker_dir)? {
        let keep = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
            [MARKER_FILE, CLEARING_FILE].contains(&n) || crate::store::lock::is_lock_name(n)
        });
        if !keep {
            remove_tree(&path)?;
        }
    }
    sync_filesystem(dir)?;
    remove_entry(&clearing)?;
    crate::system::fault::point("overwrite.cleared");
    Ok(())
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>, WriteError> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(WriteError::io(dir, "read directory", e)),
    };
    for e in entries {
        out.push(
            e.map_err(|err| WriteError::io(dir, "read directory", err))?
                .path(),
        );
    }
    out.sort();
    Ok(out)
}

/// Removes a file, a symbolic link (not its target) or an empty directory;
/// absent is fine.
fn remove_entry(path: &Path) -> Result<(), WriteError> {
    let Ok(m) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    let r = if m.is_dir() {
        std::fs::remove_dir(path)
    } else {
        std::fs::remove_file(path)
    };
    match r {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(WriteError::io(path, "remove", e)),
    }
}

/// Removes `path` and everything below it without following links: the
/// metadata documents of each directory before anything else in it.
fn remove_tree(path: &Path) -> Result<(), WriteError> {
    let is_dir = std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir());
    if is_dir {
        for key in METADATA_KEYS {
            remove_entry(&path.join(key))?;
        }
        for child in read_dir_sorted(path)? {
            remove_tree(&child)?;
        }
    }
    remove_entry(path)
}

/// `path` made absolute with its existing ancestors resolved.
fn absolute(path: &Path) -> std::io::Result<PathBuf> {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()?.join(path)
    };
    // Resolve the deepest existing ancestor, keep the rest as given.
    let mut existing = abs.clone();
    let mut rest = Vec::new();
    while !existing.exists() {
        match (existing.parent(), existing.file_name()) {
            (Some(p), Some(n)) => {
                rest.push(n.to_os_string());
                existing = p.to_path_buf();
            }
            _ => break,
        }
    }
    let mut out = std::fs::canonicalize(&existing).unwrap_or(existing);
    for n in rest.into_iter().rev() {
        out.push(n);
    }
    Ok(out)
}

#[cfg(test)]
mod temp_tests {
    use super::*;

    #[test]
    fn stale_temporary_files_are_found_and_removed() {
        assert!(is_temp_name(".0.tmp1234"));
        assert!(is_temp_name(".zarr.json.tmp9"));
        assert!(!is_temp_name("0.tmp1234"));
        assert!(!is_temp_name(".zattrs"));
        assert!(!is_temp_name(".x.tmp"));
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("t/c/0")).unwrap();
        std::fs::write(dir.path().join("t/c/0/.1.tmp77"), b"x").unwrap();
        std::fs::write(dir.path().join("t/c/0/1"), b"x").unwrap();
        assert_eq!(remove_stale_temps(dir.path()).unwrap(), 1);
        assert!(dir.path().join("t/c/0/1").exists());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_existing_and_foreign_directories() {
        let t = tempfile::tempdir().unwrap();
        let out = t.path().join("out.zarr");
        prepare(&out, &[]).unwrap();
        assert!(!is_our_store(&out));
        // A creation killed before its marker: the directory is taken again.
        std::fs::create_dir(out.join(MARKER_DIR)).unwrap();
        std::fs::write(out.join(MARKER_DIR).join("lock"), b"{}").unwrap();
        prepare(&out, &[]).unwrap();
        mark(&out).unwrap();
        assert!(is_our_store(&out));
        assert!(matches!(
            prepare(&out, &[]),
            Err(ConfigError::OutputExists(_))
        ));
        let foreign = t.path().join("home");
        std::fs::create_dir(&foreign).unwrap();
        std::fs::write(foreign.join("notes.txt"), b"keep").unwrap();
        assert!(matches!(
            prepare(&foreign, &[]),
            Err(ConfigError::NotOurStore(_))
        ));
        assert!(foreign.join("notes.txt").exists());
    }

    #[test]
    fn refuses_output_containing_input() {
        let t = tempfile::tempdir().unwrap();
        let input = t.path().join("in.nc");
        std::fs::write(&input, b"x").unwrap();
        assert!(matches!(
            prepare(t.path(), &[input]),
            Err(ConfigError::OutputIsInput { .. })
        ));
    }

    #[test]
    fn clear_keeps_marker_and_lock_and_never_follows_links() {
        let t = tempfile::tempdir().unwrap();
        let out = t.path().join("o.zarr");
        let outside = t.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("keep"), b"keep").unwrap();
        prepare(&out, &[]).unwrap();
        mark(&out).unwrap();
        std::fs::write(out.join(MARKER_DIR).join("lock"), b"{}").unwrap();
        // Another run's own lock file and claim are never removed here.
        std::fs::write(out.join(MARKER_DIR).join("lock.new-y"), b"{}").unwrap();
        std::fs::write(out.join(MARKER_DIR).join("lock.claim-x-0"), b"{}").unwrap();
        for (k, v) in [("zarr.json", "{}"), ("t/zarr.json", "{}"), ("t/c/0/0", "x")] {
            write_atomic(&out.join(k), v.as_bytes()).unwrap();
        }
        std::fs::create_dir_all(out.join(MARKER_DIR).join("journal")).unwrap();
        std::os::unix::fs::symlink(&outside, out.join("t/c/1")).unwrap();
        std::os::unix::fs::symlink(&outside, out.join("link")).unwrap();
        clear(&out).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(out.join(MARKER_DIR))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["lock", "lock.claim-x-0", "lock.new-y", "store.json"]);
        assert_eq!(std::fs::read_dir(&out).unwrap().count(), 1);
        assert_eq!(std::fs::read(outside.join("keep")).unwrap(), b"keep");
        assert!(!is_clearing(&out));
        // An interrupted clear is recognised and finished.
        write_atomic(&out.join(MARKER_DIR).join(CLEARING_FILE), b"").unwrap();
        write_atomic(&out.join("u/zarr.json"), b"{}").unwrap();
        assert!(is_clearing(&out));
        clear(&out).unwrap();
        assert!(!is_clearing(&out) && !out.join("u").exists());
    }

    #[test]
    fn unclaimed_directories_hold_only_a_creations_leftovers() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("d");
        std::fs::create_dir(&d).unwrap();
        assert!(is_unclaimed(&d));
        std::fs::create_dir(d.join(MARKER_DIR)).unwrap();
        std::fs::write(d.join(MARKER_DIR).join("lock.new-1-2-3"), b"").unwrap();
        std::fs::write(d.join(MARKER_DIR).join("lock.claim-1-2-3-0"), b"").unwrap();
        std::fs::write(d.join(MARKER_DIR).join(".store.json.tmp12"), b"").unwrap();
        assert!(is_unclaimed(&d));
        std::fs::write(d.join(MARKER_DIR).join("notes"), b"").unwrap();
        assert!(!is_unclaimed(&d));
        std::fs::remove_file(d.join(MARKER_DIR).join("notes")).unwrap();
        std::fs::write(d.join("data.txt"), b"").unwrap();
        assert!(!is_unclaimed(&d));
    }

    #[test]
    fn atomic_write_creates_parents() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("a/c/0/1");
        write_atomic(&p, b"abc").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"abc");
        assert_eq!(std::fs::read_dir(p.parent().unwrap()).unwrap().count(), 1);
    }
}

/// Whether `name` is a temporary file of [`write_atomic`]: `.NAME.tmpPID`.
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with('.')
        && name
            .rsplit_once(".tmp")
            .is_some_and(|(_, pid)| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
}

/// Prepares an existing store for more writes (a resume, an append):
/// removes the temporary files that a killed run left (a write interrupted
/// between create and rename) and refuses symbolic links anywhere inside,
/// which a later write could follow out of the store. Only called with the
/// store's lock held, so no other writer owns the temporary files. Returns
/// how many were removed.
///
/// # Errors
/// [`WriteError::Link`] naming the first link; [`WriteError::Io`] when a
/// directory cannot be read.
pub fn remove_stale_temps(store: &Path) -> Result<u64, WriteError> {
    if storage::is_remote(store) {
        return Ok(0);
    }
    let mut removed = 0;
    let mut dirs = vec![store.to_path_buf()];
    while let Some(d) = dirs.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| WriteError::io(&d, "read directory", e))?;
        for e in entries {
            let e = e.map_err(|err| WriteError::io(&d, "read directory", err))?;
            let Ok(kind) = e.file_type() else { continue };
            if kind.is_symlink() {
                return Err(WriteError::Link(e.path()));
            }
            if kind.is_dir() {
                dirs.push(e.path());
            } else if kind.is_file() && is_temp_name(&e.file_name().to_string_lossy()) {
                std::fs::remove_file(e.path())
                    .map_err(|err| WriteError::io(e.path(), "remove", err))?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}
