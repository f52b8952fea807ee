//! kerchunk reference files (`convert --virtual -o NAME.json`): the
//! references a run writes, and a reference file read as a store.
//!
//! A run writes a Zarr v2 staging store beside the file
//! (`.NAME.json.zarrforge/`): the copied variables as real chunks,
//! zarrforge's journal and state, and the references. A reference is not a
//! file of the store: each process buffers its references per store
//! ([`buffer`]) and [`flush`] writes them, at every durability barrier, as
//! one record `.zarrforge/journal/vrefs-TOKEN-N` (so a resumed run keeps
//! them). Rank 0 gathers the records into `.zarrforge/refs.bin` before the
//! commit ([`consolidate`]) and writes the reference file from the staging
//! store and `refs.bin` after it ([`export`]): kerchunk's version 1 JSON,
//! metadata as strings, copied chunks inline (`base64:`), references as
//! `[URL, OFFSET, LENGTH]`.
//!
//! [`RefsFile`] reads a reference file as a store, for `verify`.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use base64::Engine as _;

use super::{Storage, VirtualRef};
use crate::store::error::WriteError;
use crate::store::layout::{JOURNAL_DIR, MARKER_DIR};

/// Name of the consolidated references in zarrforge's directory.
const REFS_FILE: &str = "refs.bin";
/// Prefix of the per-process records in the journal.
const RECORD_PREFIX: &str = "vrefs-";

type Buffer = HashMap<PathBuf, Vec<(String, VirtualRef)>>;

fn buffers() -> &'static Mutex<Buffer> {
    static B: OnceLock<Mutex<Buffer>> = OnceLock::new();
    B.get_or_init(|| Mutex::new(HashMap::new()))
}

fn token() -> &'static str {
    static T: OnceLock<String> = OnceLock::new();
    T.get_or_init(|| {
        format!(
            "{:x}-{:x}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
            std::process::id()
        )
    })
}

/// Keeps the reference of chunk `key` of the store at `root` until the
/// next [`flush`].
pub fn buffer(root: &Path, key: &str, reference: VirtualRef) {
    buffers()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .entry(root.to_path_buf())
        .or_default()
        .push((key.to_string(), reference));
}

/// Writes the references buffered for the store `storage` (at `root`) as
/// one journal record.
///
/// # Errors
/// [`WriteError`] of the write.
pub fn flush(root: &Path, storage: &dyn Storage) -> Result<(), WriteError> {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let refs = buffers()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .remove(root)
        .unwrap_or_default();
    if refs.is_empty() {
        return Ok(());
    }
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let key = format!("{MARKER_DIR}/{JOURNAL_DIR}/{RECORD_PREFIX}{}-{n}", token());
    let bytes = encode(&refs)?;
    storage.put(&key, &bytes)
}

fn encode(refs: &[(String, VirtualRef)]) -> Result<Vec<u8>, WriteError> {
    bincode::serde::encode_to_vec(refs, bincode::config::standard()).map_err(|e| {
        WriteError::Remote {
            url: "references".into(),
            what: "encode references",
            source: e.to_string().into(),
        }
    })
}

fn decode(key: &str, bytes: &[u8]) -> Result<Vec<(String, VirtualRef)>, WriteError> {
    bincode::serde::decode_from_slice(bytes, bincode::config::standard())
        .map(|(v, _)| v)
        .map_err(|e| WriteError::Remote {
            url: key.to_string(),
            what: "read references",
            source: e.to_string().into(),
        })
}

/// Rank 0, before the commit: gathers the references of this build (the
/// journal's records) into `.zarrforge/refs.bin`, after those of the
/// committed store when `keep` (an append).
///
/// # Errors
/// [`WriteError`] reading the records or writing the result.
pub fn consolidate(storage: &dyn Storage, keep: bool) -> Result<u64, WriteError> {
    let refs_key = format!("{MARKER_DIR}/{REFS_FILE}");
    let mut all: BTreeMap<String, VirtualRef> = BTreeMap::new();
    if keep {
        if let Some(b) = storage.get(&refs_key)? {
            all.extend(decode(&refs_key, &b)?);
        }
    }
    for key in storage.list(&format!("{MARKER_DIR}/{JOURNAL_DIR}"))? {
        if key
            .rsplit('/')
            .next()
            .is_some_and(|n| n.starts_with(RECORD_PREFIX))
        {
            if let Some(b) = storage.get(&key)? {
                all.extend(decode(&key, &b)?);
            }
        }
    }
    let list: Vec<(String, VirtualRef)> = all.into_iter().collect();
    storage.put(&refs_key, &encode(&list)?)?;
    Ok(list.len() as u64)
}

/// Rank 0, after the commit: writes the reference file `out` from the
/// staging store `storage` (its documents, copied chunks inline) and its
/// consolidated references; atomically (a temporary file renamed).
///
/// # Errors
/// [`WriteError`] reading the store or writing the file.
pub fn export(storage: &dyn Storage, out: &Path) -> Result<u64, WriteError> {
    let refs_key = format!("{MARKER_DIR}/{REFS_FILE}");
    let refs: BTreeMap<String, VirtualRef> = match storage.get(&refs_key)? {
        Some(b) => decode(&refs_key, &b)?.into_iter().collect(),
        None => BTreeMap::new(),
    };
    let tmp = out.with_file_name(format!(
        ".{}.tmp-{}",
        out.file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        std::process::id()
    ));
    let io = |what: &'static str, e: std::io::Error| WriteError::io(out, what, e);
    let file = std::fs::File::create(&tmp).map_err(|e| io("create", e))?;
    let mut w = std::io::BufWriter::new(file);
    let mut first = true;
    let mut entry = |w: &mut std::io::BufWriter<std::fs::File>,
                     key: &str,
                     value: serde_json::Value|
     -> Result<(), WriteError> {
        let sep = if first { "" } else { ",\n" };
        first = false;
        let k = serde_json::to_string(key).unwrap_or_default();
        write!(w, "{sep}{k}: {value}").map_err(|e| io("write", e))
    };
    w.write_all(b"{\"version\": 1, \"refs\": {\n")
        .map_err(|e| io("write", e))?;
    let mut n = 0u64;
    for key in storage.list("")? {
        if key.starts_with(MARKER_DIR) || refs.contains_key(&key) {
            continue;
        }
        let Some(bytes) = storage.get(&key)? else {
            continue;
        };
        let name = key.rsplit('/').next().unwrap_or(&key);
        let value = if name.starts_with(".z") {
            serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned())
        } else {
            serde_json::Value::String(format!(
                "base64:{}",
                base64::engine::general_purpose::STANDARD.encode(&bytes)
            ))
        };
        entry(&mut w, &key, value)?;
    }
    for (key, r) in &refs {
        entry(&mut w, key, serde_json::json!([r.url, r.offset, r.length]))?;
        n += 1;
    }
    w.write_all(b"\n}}\n").map_err(|e| io("write", e))?;
    let file = w.into_inner().map_err(|e| io("write", e.into_error()))?;
    file.sync_all().map_err(|e| io("sync", e))?;
    drop(file);
    std::fs::rename(&tmp, out).map_err(|e| io("rename into place", e))?;
    if let Some(dir) = out.parent() {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(n)
}

/// One entry of a reference file.
#[derive(Debug, Clone)]
enum Entry {
    /// Bytes held in the file (documents, inline chunks).
    Inline(Vec<u8>),
    /// `length` bytes from `offset` of the file at a URL (to the end when
    /// there is no length).
    At(String, u64, Option<u64>),
}

/// A kerchunk reference file read as a (read-only) store.
#[derive(Debug)]
pub struct RefsFile {
    path: PathBuf,
    entries: BTreeMap<String, Entry>,
}

fn registry() -> &'static Mutex<HashMap<PathBuf, Arc<RefsFile>>> {
    static R: OnceLock<Mutex<HashMap<PathBuf, Arc<RefsFile>>>> = OnceLock::new();
    R.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Whether `path` looks like a kerchunk reference file (a `.json` file).
pub fn is_refs_file(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        && path.is_file()
}

/// Reads the reference file at `path` and makes [`super::open`] return it
/// for that path from now on.
///
/// # Errors
/// [`WriteError`] when the file cannot be read or is not a version 1
/// reference file.
pub fn register(path: &Path) -> Result<Arc<RefsFile>, WriteError> {
    let r = Arc::new(RefsFile::read(path)?);
    registry()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(path.to_path_buf(), Arc::clone(&r));
    Ok(r)
}

/// The reference file registered for `path`.
pub fn registered(path: &Path) -> Option<Arc<RefsFile>> {
    registry()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(path)
        .cloned()
}

impl RefsFile {
    fn read(path: &Path) -> Result<Self, WriteError> {
        let bad = |why: String| WriteError::Remote {
            url: path.display().to_string(),
            what: "read the reference file",
            source: why.into(),
        };
        let text = std::fs::read(path).map_err(|e| WriteError::io(path, "read", e))?;
        let doc: serde_json::Value =
            serde_json::from_slice(&text).map_err(|e| bad(e.to_string()))?;
        let refs = doc
            .get("refs")
            .and_then(serde_json::Value::as_object)
            .ok_or_else(|| bad("no \"refs\" object (not a version 1 kerchunk file)".into()))?;
        let mut entries = BTreeMap::new();
        for (k, v) in refs {
            let e = match v {
                serde_json::Value::String(s) => match s.strip_prefix("base64:") {
                    Some(b) => Entry::Inline(
                        base64::engine::general_purpose::STANDARD
                            .decode(b)
                            .map_err(|e| bad(format!("{k}: {e}")))?,
                    ),
                    None => Entry::Inline(s.clone().into_bytes()),
                },
                serde_json::Value::Array(a) => {
                    let url = a
                        .first()
                        .and_then(serde_json::Value::as_str)
                        .ok_or_else(|| bad(format!("{k}: no URL")))?;
                    let off = a.get(1).and_then(serde_json::Value::as_u64).unwrap_or(0);
                    let len = a.get(2).and_then(serde_json::Value::as_u64);
                    Entry::At(url.to_string(), off, len)
                }
                // Other JSON values are documents given as objects.
                other => Entry::Inline(other.to_string().into_bytes()),
            };
            entries.insert(k.clone(), e);
        }
        Ok(Self {
            path: path.to_path_buf(),
            entries,
        })
    }

    fn read_at(&self, url: &str, offset: u64, len: Option<u64>) -> Result<Vec<u8>, WriteError> {
        use std::io::{Read, Seek, SeekFrom};
        let local = url
            .strip_prefix("file://")
            .map(percent_decode)
            .or_else(|| url.starts_with('/').then(|| url.to_string()))
            .ok_or_else(|| WriteError::Remote {
                url: url.to_string(),
                what: "read a referenced chunk",
                source: "only file:// references are read here".into(),
            })?;
        let p = PathBuf::from(local);
        let mut f = std::fs::File::open(&p).map_err(|e| WriteError::io(&p, "open", e))?;
        f.seek(SeekFrom::Start(offset))
            .map_err(|e| WriteError::io(&p, "seek", e))?;
        let mut buf = Vec::new();
        match len {
            Some(n) => {
                buf.resize(usize::try_from(n).unwrap_or(0), 0);
                f.read_exact(&mut buf)
                    .map_err(|e| WriteError::io(&p, "read the referenced bytes", e))?;
            }
            None => {
                f.read_to_end(&mut buf)
                    .map_err(|e| WriteError::io(&p, "read", e))?;
            }
        }
        Ok(buf)
    }
}

/// `%XX` escapes of a URL path decoded.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(x) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(x);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Storage for RefsFile {
    fn describe(&self, key: &str) -> String {
        format!("{}[{key}]", self.path.display())
    }

    fn put(&self, key: &str, _bytes: &[u8]) -> Result<(), WriteError> {
        Err(WriteError::Remote {
            url: self.describe(key),
            what: "write",
            source: "a reference file is read only".into(),
        })
    }

    fn sync(&self) -> Result<(), WriteError> {
        Ok(())
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, WriteError> {
        match self.entries.get(key) {
            None => Ok(None),
            Some(Entry::Inline(b)) => Ok(Some(b.clone())),
            Some(Entry::At(url, off, len)) => self.read_at(url, *off, *len).map(Some),
        }
    }

    fn size(&self, key: &str) -> Result<Option<u64>, WriteError> {
        Ok(match self.entries.get(key) {
            None => None,
            Some(Entry::Inline(b)) => Some(b.len() as u64),
            Some(Entry::At(_, _, Some(n))) => Some(*n),
            Some(Entry::At(..)) => self.get(key)?.map(|b| b.len() as u64),
        })
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, WriteError> {
        let p = if prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", prefix.trim_end_matches('/'))
        };
        Ok(self
            .entries
            .keys()
            .filter(|k| k.starts_with(&p))
            .cloned()
            .collect())
    }

    fn children(&self, prefix: &str) -> Result<Vec<String>, WriteError> {
        let p = if prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", prefix.trim_end_matches('/'))
        };
        let mut out: Vec<String> = self
            .entries
            .keys()
            .filter_map(|k| k.strip_prefix(&p))
            .map(|rest| match rest.split_once('/') {
                Some((dir, _)) => format!("{dir}/"),
                None => rest.to_string(),
            })
            .collect();
        out.dedup();
        out.sort();
        out.dedup();
        Ok(out)
    }

    fn delete(&self, keys: &[String]) -> Result<(), WriteError> {
        match keys.first() {
            None => Ok(()),
            Some(k) => self.put(k, &[]),
        }
    }

    fn put_new(&self, key: &str, bytes: &[u8]) -> Result<bool, WriteError> {
        self.put(key, bytes).map(|()| false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_escapes_are_decoded() {
        assert_eq!(percent_decode("/a%20b/c%25.nc"), "/a b/c%.nc");
        assert_eq!(percent_decode("/plain/x.nc"), "/plain/x.nc");
        assert_eq!(percent_decode("/bad%zz"), "/bad%zz");
    }

    #[test]
    fn a_reference_file_reads_as_a_store() {
        let dir = std::env::temp_dir().join(format!("zf-refs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_default();
        let data = dir.join("data.bin");
        std::fs::write(&data, b"0123456789").unwrap_or_default();
        let refs = dir.join("refs.json");
        let doc = serde_json::json!({"version": 1, "refs": {
            ".zgroup": "{\"zarr_format\": 2}",
            "a/0": format!("base64:{}", base64::engine::general_purpose::STANDARD.encode(b"xy")),
            "a/1": [format!("file://{}", data.display()), 3, 4],
        }});
        std::fs::write(&refs, doc.to_string()).unwrap_or_default();
        let r = RefsFile::read(&refs).expect("a valid reference file");
        assert_eq!(r.get("a/0").ok().flatten(), Some(b"xy".to_vec()));
        assert_eq!(r.get("a/1").ok().flatten(), Some(b"3456".to_vec()));
        assert_eq!(r.get("nope").ok().flatten(), None);
        assert_eq!(r.children("").unwrap_or_default(), vec![".zgroup", "a/"]);
        assert_eq!(r.list("a").unwrap_or_default(), vec!["a/0", "a/1"]);
        assert!(r.put("x", b"").is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
