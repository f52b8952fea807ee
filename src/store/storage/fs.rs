//! A store in a directory: atomic writes by temporary file and rename
//! ([`super::atomic`]), chunks written off the encoder threads
//! ([`super::writer`], large ones with `O_DIRECT`: [`super::direct`]),
//! durability by `syncfs` ([`sync_filesystem`]), and an exclusive create for
//! [`Storage::put_new`].

use std::io::Write;
use std::path::{Path, PathBuf};

pub use super::atomic::write_atomic;
use super::Storage;
use crate::store::error::WriteError;

/// A store directory.
#[derive(Debug, Clone)]
pub struct DirStorage {
    root: PathBuf,
}

impl DirStorage {
    /// The store at `root`.
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    fn path(&self, key: &str) -> PathBuf {
        if key.is_empty() {
            self.root.clone()
        } else {
            self.root.join(key)
        }
    }
}

impl Storage for DirStorage {
    fn describe(&self, key: &str) -> String {
        self.path(key).display().to_string()
    }

    fn put(&self, key: &str, bytes: &[u8]) -> Result<(), WriteError> {
        write_atomic(&self.path(key), bytes)
    }

    /// References (the staging store of a kerchunk file) are kept in
    /// memory until the next [`Storage::sync`], which records them.
    fn put_virtual(&self, key: &str, reference: super::VirtualRef) -> Result<(), WriteError> {
        super::kerchunk::buffer(&self.root, key, reference);
        Ok(())
    }

    /// Queues the chunk for the process's writer threads.
    fn put_later(&self, key: &str, bytes: Vec<u8>) -> Result<(), WriteError> {
        super::writer::global().put(self.path(key), bytes)
    }

    /// Waits for the queued chunks, then flushes the filesystem.
    fn sync(&self) -> Result<(), WriteError> {
        super::writer::global().drain()?;
        super::kerchunk::flush(&self.root, self)?;
        sync_filesystem(&self.root)
    }

    /// A run's start: bounds the bytes of chunks queued for writing.
    fn set_inflight_bytes(&self, bytes: u64) {
        super::writer::global().begin(bytes);
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, WriteError> {
        let p = self.path(key);
        match std::fs::read(&p) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(WriteError::io(p, "read", e)),
        }
    }

    fn get_range(
        &self,
        key: &str,
        offset: u64,
        len: Option<u64>,
    ) -> Result<Option<Vec<u8>>, WriteError> {
        use std::io::{Read, Seek, SeekFrom};
        let p = self.path(key);
        let mut f = match std::fs::File::open(&p) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(WriteError::io(p, "open", e)),
        };
        let mut out = Vec::new();
        f.seek(SeekFrom::Start(offset))
            .and_then(|_| match len {
                Some(l) => f.take(l).read_to_end(&mut out),
                None => f.read_to_end(&mut out),
            })
            .map_err(|e| WriteError::io(&p, "read", e))?;
        Ok(Some(out))
    }

    fn size(&self, key: &str) -> Result<Option<u64>, WriteError> {
        let p = self.path(key);
        match std::fs::metadata(&p) {
            Ok(m) if m.is_file() => Ok(Some(m.len())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(WriteError::io(p, "stat", e)),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, WriteError> {
        let mut out = Vec::new();
        let mut dirs = vec![(self.path(prefix), prefix.trim_end_matches('/').to_string())];
        while let Some((d, key)) = dirs.pop() {
            let entries = match std::fs::read_dir(&d) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(WriteError::io(&d, "read directory", e)),
            };
            for e in entries {
                let e = e.map_err(|err| WriteError::io(&d, "read directory", err))?;
                let name = e.file_name().to_string_lossy().into_owned();
                let k = super::join(&key, &name);
                match e.file_type() {
                    Ok(t) if t.is_dir() => dirs.push((e.path(), k)),
                    Ok(_) => out.push(k),
                    Err(err) => return Err(WriteError::io(e.path(), "read directory", err)),
                }
            }
        }
        out.sort();
        Ok(out)
    }

    fn children(&self, prefix: &str) -> Result<Vec<String>, WriteError> {
        let d = self.path(prefix);
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(WriteError::io(&d, "read directory", e)),
        };
        let mut out = Vec::new();
        for e in entries {
            let e = e.map_err(|err| WriteError::io(&d, "read directory", err))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let dir = e.file_type().is_ok_and(|t| t.is_dir());
            out.push(if dir { format!("{name}/") } else { name });
        }
        out.sort();
        Ok(out)
    }

    fn delete(&self, keys: &[String]) -> Result<(), WriteError> {
        for k in keys {
            let p = self.path(k);
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(WriteError::io(p, "remove", e)),
            }
        }
        Ok(())
    }

    fn put_new(&self, key: &str, bytes: &[u8]) -> Result<bool, WriteError> {
        let p = self.path(key);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| WriteError::io(parent, "create directory", e))?;
        }
        let mut f = match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&p)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(WriteError::io(p, "create", e)),
        };
        f.write_all(bytes)
            .and_then(|()| f.sync_all())
            .map_err(|e| WriteError::io(&p, "write", e))?;
        Ok(true)
    }

    fn dir(&self) -> Option<&Path> {
        Some(&self.root)
    }
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
mod tests {
    use super::*;

    #[test]
    fn a_directory_behaves_as_the_interface_says() {
        let t = tempfile::tempdir().unwrap();
        let s = DirStorage::new(t.path().join("s"));
        assert_eq!(s.get("a/b").unwrap(), None);
        s.put("a/b", b"hello").unwrap();
        s.put_later("a/c/d", b"x".to_vec()).unwrap();
        s.sync().unwrap();
        assert_eq!(s.get("a/b").unwrap().unwrap(), b"hello");
        assert_eq!(s.get_range("a/b", 1, Some(3)).unwrap().unwrap(), b"ell");
        assert_eq!(s.size("a/b").unwrap(), Some(5));
        assert_eq!(s.size("a").unwrap(), None);
        assert_eq!(s.list("").unwrap(), ["a/b", "a/c/d"]);
        assert_eq!(s.list("a/c").unwrap(), ["a/c/d"]);
        assert_eq!(s.children("").unwrap(), ["a/"]);
        assert_eq!(s.children("a").unwrap(), ["b", "c/"]);
        assert!(s.put_new("l", b"1").unwrap());
        assert!(!s.put_new("l", b"2").unwrap());
        assert_eq!(s.get("l").unwrap().unwrap(), b"1");
        s.delete(&["a/b".into(), "nope".into()]).unwrap();
        assert!(!s.exists("a/b").unwrap());
    }
}
