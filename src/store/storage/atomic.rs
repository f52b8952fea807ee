//! Writing one file so that readers never see it partial: a temporary
//! file in the same directory, then a rename. Chunks
//! ([`write_chunk`]) are written with `O_DIRECT` when
//! [`super::direct::wanted`] says so.

use std::io::Write;
use std::path::Path;

use crate::store::error::WriteError;

/// Writes `bytes` to `path` through a temporary file in the same directory
/// and a rename, so readers never see a partial file. Creates missing parent
/// directories.
///
/// # Errors
/// [`WriteError::Io`] with the path (disk full, quota, permissions).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    write_via(path, bytes, None)
}

/// [`write_atomic`] for a chunk: with `O_DIRECT` from this thread's aligned
/// buffer when [`super::direct::wanted`] says so.
///
/// # Errors
/// As [`write_atomic`].
pub fn write_chunk(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    thread_local! {
        static BUF: std::cell::RefCell<super::direct::AlignedBuf> =
            std::cell::RefCell::default();
    }
    if !super::direct::wanted(bytes.len()) {
        return write_via(path, bytes, None);
    }
    BUF.with_borrow_mut(|buf| write_via(path, bytes, Some(buf)))
}

fn write_via(
    path: &Path,
    bytes: &[u8],
    direct: Option<&mut super::direct::AlignedBuf>,
) -> Result<(), WriteError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("chunk");
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let (f, is_direct) = create(dir, &tmp, direct.is_some())?;
    let written = match direct {
        Some(buf) if is_direct => super::direct::write(&f, bytes, buf),
        _ => (&f).write_all(bytes),
    };
    drop(f);
    let written = match written {
        // The filesystem took the open but not the write: write it again,
        // buffered, from the start.
        Err(e) if is_direct && super::direct::is_refusal(&e) => {
            super::direct::refused();
            create(dir, &tmp, false)?.0.write_all(bytes)
        }
        r => r,
    };
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(WriteError::io(path, "write", e));
    }
    crate::system::fault::point("write.temp");
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        WriteError::io(path, "rename", e)
    })?;
    crate::system::fault::point("write.renamed");
    Ok(())
}

/// Creates (or truncates) `tmp` in `dir`, creating `dir` when missing; with
/// `O_DIRECT` when `direct` and the filesystem allows it. Returns the file
/// and whether it is open for direct writes.
fn create(dir: &Path, tmp: &Path, direct: bool) -> Result<(std::fs::File, bool), WriteError> {
    let open = |direct: bool| {
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create(true).truncate(true);
        #[cfg(target_os = "linux")]
        if direct {
            use std::os::unix::fs::OpenOptionsExt;
            o.custom_flags(libc::O_DIRECT);
        }
        o.open(tmp).map(|f| (f, direct))
    };
    let attempt = |direct: bool| match open(direct) {
        Err(e) if direct && super::direct::is_refusal(&e) => {
            super::direct::refused();
            open(false)
        }
        r => r,
    };
    match attempt(direct) {
        Ok(f) => Ok(f),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(|e| WriteError::io(dir, "create directory", e))?;
            attempt(direct).map_err(|e| WriteError::io(tmp, "create", e))
        }
        Err(e) => Err(WriteError::io(tmp, "create", e)),
    }
}
