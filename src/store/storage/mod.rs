//! Where a store's objects live: one small interface ([`Storage`]: put,
//! get, list, delete, create-only put, a durability barrier) with a
//! filesystem implementation ([`fs::DirStorage`]) and an S3 one
//! ([`s3::S3Storage`], feature `s3`). The chunk writer, the journal, the
//! lock, the commit, appends and verify go through it.
//!
//! Keys are relative to the store's root and use `/` (`"t/c/0/0"`,
//! `".zarrforge/store.json"`).

pub mod atomic;
pub mod direct;
pub mod fs;
#[cfg(feature = "icechunk")]
pub mod icechunk;
pub mod kerchunk;
#[cfg(feature = "s3")]
pub mod s3;
pub mod url;
pub mod writer;
pub mod zarrs_reader;

use std::path::Path;
use std::sync::Arc;

pub use url::Location;

use crate::store::error::WriteError;

/// What a [`WriteError::Remote`] of a malformed store URL was doing (its
/// exit status is a usage error's).
pub const PARSE_URL: &str = "parse the output URL";

/// Bytes of uploads in flight per rank without `--max-memory` (with it:
/// an eighth of it, between 16 MiB and 1 GiB).
pub const INFLIGHT_DEFAULT_BYTES: u64 = 64 << 20;

/// An object's bytes with its version tag (`ETag`), where the storage has one.
pub type Tagged = (Vec<u8>, Option<String>);

/// A chunk stored in another file: `length` bytes from `offset` of the
/// file at `url` (`file:///...` or `s3://...`), as it was when last
/// modified at `modified` (seconds since the epoch).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VirtualRef {
    /// Where the file is.
    pub url: String,
    /// Offset of the chunk in bytes.
    pub offset: u64,
    /// Length of the chunk in bytes.
    pub length: u64,
    /// The file's modification time when it was scanned: readers that can
    /// check it refuse a file changed since.
    pub modified: Option<u32>,
}

/// A store's objects.
pub trait Storage: Send + Sync + std::fmt::Debug {
    /// Where `key` is, for messages (a path or an `s3://` URL).
    fn describe(&self, key: &str) -> String;

    /// Writes `bytes` under `key`, all or nothing, and returns once done.
    ///
    /// # Errors
    /// [`WriteError`] naming the key.
    fn put(&self, key: &str, bytes: &[u8]) -> Result<(), WriteError>;

    /// Makes the chunk `key` a reference to bytes of another file; may
    /// return before the write is done ([`Storage::sync`] waits for it).
    ///
    /// # Errors
    /// [`WriteError`]; storage without references refuses.
    fn put_virtual(&self, key: &str, _reference: VirtualRef) -> Result<(), WriteError> {
        Err(WriteError::Remote {
            url: self.describe(key),
            what: "write a virtual reference",
            source: "this output cannot hold references to other files: write --icechunk or a kerchunk .json file".into(),
        })
    }

    /// Writes `bytes` under `key`; may return before the write is done.
    /// [`Storage::sync`] waits for every such write and reports the first
    /// failure; a later call may also report an earlier failure.
    ///
    /// # Errors
    /// [`WriteError`] of this write or an earlier one.
    fn put_later(&self, key: &str, bytes: Vec<u8>) -> Result<(), WriteError> {
        self.put(key, &bytes)
    }

    /// Makes every write made so far durable (a filesystem's `syncfs`;
    /// waiting for every upload in flight on object storage).
    ///
    /// # Errors
    /// The first failed write.
    fn sync(&self) -> Result<(), WriteError>;

    /// The bytes under `key`; `None` when there is no such object.
    ///
    /// # Errors
    /// [`WriteError`] for anything but absence.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, WriteError>;

    /// `len` bytes from `offset` of `key` (to the end when `len` is
    /// `None`); `None` when there is no such object.
    ///
    /// # Errors
    /// [`WriteError`] for anything but absence.
    fn get_range(
        &self,
        key: &str,
        offset: u64,
        len: Option<u64>,
    ) -> Result<Option<Vec<u8>>, WriteError> {
        Ok(self.get(key)?.map(|b| {
            let start = usize::try_from(offset).unwrap_or(usize::MAX).min(b.len());
            let end = len.map_or(b.len(), |l| {
                start
                    .saturating_add(usize::try_from(l).unwrap_or(usize::MAX))
                    .min(b.len())
            });
            b[start..end].to_vec()
        }))
    }

    /// Size of `key` in bytes; `None` when absent.
    ///
    /// # Errors
    /// [`WriteError`] for anything but absence.
    fn size(&self, key: &str) -> Result<Option<u64>, WriteError>;

    /// Whether `key` exists (as an object; on a filesystem, a regular file).
    ///
    /// # Errors
    /// [`WriteError`] for anything but absence.
    fn exists(&self, key: &str) -> Result<bool, WriteError> {
        Ok(self.size(key)?.is_some())
    }

    /// Every key under `prefix` (`""`: the whole store; otherwise a
    /// "directory" such as `".zarrforge/journal"`), sorted.
    ///
    /// # Errors
    /// [`WriteError`].
    fn list(&self, prefix: &str) -> Result<Vec<String>, WriteError>;

    /// The names directly under `prefix` (`""`: the store's root): objects
    /// as `name`, deeper levels as `name/`, sorted. One listing request on
    /// object storage, however many objects lie deeper.
    ///
    /// # Errors
    /// [`WriteError`].
    fn children(&self, prefix: &str) -> Result<Vec<String>, WriteError>;

    /// Removes `keys`; absent keys are fine. Object stores remove them in
    /// batches.
    ///
    /// # Errors
    /// [`WriteError`] naming the first key that could not be removed.
    fn delete(&self, keys: &[String]) -> Result<(), WriteError>;

    /// Creates `key` only when it does not exist; `false` when it does.
    ///
    /// # Errors
    /// [`WriteError`].
    fn put_new(&self, key: &str, bytes: &[u8]) -> Result<bool, WriteError>;

    /// The bytes under `key` with their version tag (an object's `ETag`;
    /// `None` where the storage has none); `None` when there is no such
    /// object.
    ///
    /// # Errors
    /// [`WriteError`] for anything but absence.
    fn get_tagged(&self, key: &str) -> Result<Option<Tagged>, WriteError> {
        Ok(self.get(key)?.map(|b| (b, None)))
    }

    /// Replaces `key` only while it still has the version `tag` (a
    /// conditional PUT, `If-Match`); `false` when it changed or is gone.
    ///
    /// # Errors
    /// [`WriteError`]; storage without versions refuses.
    fn put_replace(&self, key: &str, _bytes: &[u8], _tag: &str) -> Result<bool, WriteError> {
        Err(WriteError::Remote {
            url: self.describe(key),
            what: "replace conditionally",
            source: "this storage has no conditional replace".into(),
        })
    }

    /// The local directory, for a filesystem store.
    fn dir(&self) -> Option<&Path> {
        None
    }

    /// Checks that the store can be reached with the credentials given
    /// (object storage: one listing; a directory: nothing to check).
    ///
    /// # Errors
    /// [`WriteError::Remote`] with the server's answer.
    fn check(&self) -> Result<(), WriteError> {
        Ok(())
    }

    /// Bounds the bytes of uploads in flight (object storage).
    fn set_inflight_bytes(&self, _bytes: u64) {}

    /// Requests and bytes uploaded so far (object storage).
    fn uploaded(&self) -> Option<(u64, u64)> {
        None
    }
}

/// Opens and checks the store at `output` (every rank, before anything is
/// read): the URL, the credentials, the endpoint and the bucket.
///
/// # Errors
/// [`WriteError::Remote`].
pub fn check(output: &Path) -> Result<(), WriteError> {
    if is_remote(output) {
        open(output)?.check()?;
    }
    Ok(())
}

/// Opens the storage of a store at `output` (a path, or `s3://BUCKET/PREFIX`).
/// S3 clients are made once per process and output and shared, so that
/// [`Storage::sync`] sees every upload of the rank.
///
/// # Errors
/// [`WriteError::Remote`] when the URL is malformed, no credentials are
/// found, or the client cannot be built (or S3 support is not compiled in).
pub fn open(output: &Path) -> Result<Arc<dyn Storage>, WriteError> {
    #[cfg(feature = "icechunk")]
    if let Some(r) = icechunk::registered(output) {
        return Ok(r);
    }
    if let Some(r) = kerchunk::registered(output) {
        return Ok(r);
    }
    match Location::parse(output)? {
        Location::Dir(p) => Ok(Arc::new(fs::DirStorage::new(p))),
        #[cfg(feature = "s3")]
        Location::S3(u) => Ok(s3::S3Storage::shared(&u)?),
        #[cfg(not(feature = "s3"))]
        Location::S3(u) => Err(WriteError::Remote {
            url: u.to_string(),
            what: "open",
            source: "this zarrforge was built without the `s3` feature".into(),
        }),
    }
}

/// Whether `output` is reached through [`open`] only (object storage, an
/// Icechunk repository), never as files.
pub fn is_object(output: &Path) -> bool {
    #[cfg(feature = "icechunk")]
    if icechunk::registered(output).is_some() {
        return true;
    }
    kerchunk::registered(output).is_some() || is_remote(output)
}

/// Whether `output` names object storage rather than a directory.
pub fn is_remote(output: &Path) -> bool {
    output.to_str().is_some_and(url::is_url)
}

/// Joins a store key and a name.
pub fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{}/{name}", dir.trim_end_matches('/'))
    }
}
