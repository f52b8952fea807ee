//! The store directory: preparation and safety checks before any chunk is
//! written, atomic file writes, and durability before the commit.
//!
//! A store written by zarrforge carries a marker, `.zarrforge/store.json`;
//! `--overwrite` deletes only directories that carry it. Until the commit the
//! store has no root metadata (`zarr.json` or `.zgroup`), so no reader can
//! take a partial store for a finished one.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::config::ZarrFormat;
use crate::error::{ConfigError, WriteError};

/// Hidden directory of zarrforge's own files inside a store.
pub const MARKER_DIR: &str = ".zarrforge";
/// The marker file that identifies a store written by zarrforge.
pub const MARKER_FILE: &str = "store.json";

/// The root metadata key whose presence means "committed".
pub fn root_key(format: ZarrFormat) -> &'static str {
    match format {
        ZarrFormat::V3 => "zarr.json",
        ZarrFormat::V2 => ".zgroup",
    }
}

/// Whether `dir` is a store written by zarrforge.
pub fn is_our_store(dir: &Path) -> bool {
    dir.join(MARKER_DIR).join(MARKER_FILE).is_file()
}

/// Checks the output path against the inputs and prepares an empty store
/// directory with its marker. Run by rank 0 only, before any write.
///
/// # Errors
/// [`ConfigError`] when the output exists (without `--overwrite`), is not a
/// zarrforge store (with `--overwrite`), is a symlink, equals or contains an
/// input, or cannot be created.
pub fn prepare(output: &Path, inputs: &[PathBuf], overwrite: bool) -> Result<(), ConfigError> {
    let out_err = |source| ConfigError::Output {
        path: output.to_path_buf(),
        source,
    };
    let abs_out = absolute(output).map_err(out_err)?;
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
    match std::fs::symlink_metadata(output) {
        Ok(m) if m.file_type().is_symlink() => {
            return Err(ConfigError::NotOurStore(output.to_path_buf()));
        }
        Ok(_) if !overwrite => return Err(ConfigError::OutputExists(output.to_path_buf())),
        Ok(m) => {
            if !m.is_dir() || !is_our_store(output) {
                return Err(ConfigError::NotOurStore(output.to_path_buf()));
            }
            std::fs::remove_dir_all(output).map_err(out_err)?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(out_err(e)),
    }
    std::fs::create_dir(output).map_err(out_err)?;
    let marker = serde_json::json!({
        "writer": "zarrforge",
        "version": env!("CARGO_PKG_VERSION"),
    });
    write_atomic(
        &output.join(MARKER_DIR).join(MARKER_FILE),
        &serde_json::to_vec_pretty(&marker).unwrap_or_default(),
    )
    .map_err(|e| match e {
        WriteError::Io { source, .. } => out_err(source),
        other => out_err(std::io::Error::other(other.to_string())),
    })
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

/// Writes `bytes` to `path` through a temporary file in the same directory
/// and a rename, so readers never see a partial file. Creates missing parent
/// directories.
///
/// # Errors
/// [`WriteError::Io`] with the path (disk full, quota, permissions).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("chunk");
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let create = || std::fs::File::create(&tmp);
    let mut f = match create() {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(|e| WriteError::io(dir, "create directory", e))?;
            create().map_err(|e| WriteError::io(&tmp, "create", e))?
        }
        Err(e) => return Err(WriteError::io(&tmp, "create", e)),
    };
    if let Err(e) = f.write_all(bytes) {
        drop(f);
        let _ = std::fs::remove_file(&tmp);
        return Err(WriteError::io(path, "write", e));
    }
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        WriteError::io(path, "rename", e)
    })
}

/// Flushes the filesystem holding `dir` to stable storage (`syncfs`).
///
/// # Errors
/// [`WriteError::Io`].
pub fn sync_filesystem(dir: &Path) -> Result<(), WriteError> {
    let f = std::fs::File::open(dir).map_err(|e| WriteError::io(dir, "open for sync", e))?;
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: syncfs on a valid, open file descriptor.
        let rc = unsafe { libc::syncfs(f.as_raw_fd()) };
        if rc != 0 {
            return Err(WriteError::io(dir, "sync", std::io::Error::last_os_error()));
        }
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    {
        // No syncfs: flush everything (sync) and the directory itself.
        // SAFETY: sync(2) takes no arguments and cannot fail.
        unsafe { libc::sync() };
        f.sync_all().map_err(|e| WriteError::io(dir, "sync", e))
    }
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
        prepare(&out, &[], false).unwrap();
        assert!(is_our_store(&out));
        assert!(matches!(
            prepare(&out, &[], false),
            Err(ConfigError::OutputExists(_))
        ));
        prepare(&out, &[], true).unwrap();
        let foreign = t.path().join("home");
        std::fs::create_dir(&foreign).unwrap();
        std::fs::write(foreign.join("notes.txt"), b"keep").unwrap();
        assert!(matches!(
            prepare(&foreign, &[], true),
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
            prepare(t.path(), &[input], true),
            Err(ConfigError::OutputIsInput { .. })
        ));
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

/// Removes the temporary files that a killed run left in `store` (a write
/// interrupted between create and rename). Only called with the store's
/// lock held, so no other writer can own them. Returns how many.
///
/// # Errors
/// [`WriteError::Io`] when a directory cannot be read.
pub fn remove_stale_temps(store: &Path) -> Result<u64, WriteError> {
    let mut removed = 0;
    let mut dirs = vec![store.to_path_buf()];
    while let Some(d) = dirs.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| WriteError::io(&d, "read directory", e))?;
        for e in entries {
            let e = e.map_err(|err| WriteError::io(&d, "read directory", err))?;
            let Ok(kind) = e.file_type() else { continue };
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
