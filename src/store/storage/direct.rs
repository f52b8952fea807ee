//! Writing a chunk file with `O_DIRECT`: the bytes go from a reused,
//! page-aligned buffer straight to the device, with no copy into the page
//! cache (which, on a machine writing its chunks for the first time, costs
//! as much CPU as a fast codec) and nothing left dirty for the final
//! `syncfs` to flush.
//!
//! The file is written padded to [`ALIGN`] bytes and then cut to its length.
//! Where the filesystem refuses `O_DIRECT` (`EINVAL`: tmpfs, some network
//! filesystems) the write falls back to a buffered one and later chunks are
//! written buffered too. Durability is unchanged: `O_DIRECT` does not make
//! a write durable by itself, and the commit protocol's `syncfs` still
//! flushes the device and the files' metadata before a unit is journaled.
//!
//! `ZARRFORGE_WRITES` chooses: `auto` (the default: `O_DIRECT` for chunks of
//! at least [`DIRECT_MIN_BYTES`]), `direct` (every chunk) or `buffered`
//! (never).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

/// Alignment of the buffer, the file offset and the length of a direct
/// write: the largest logical block size of the devices in use.
pub const ALIGN: usize = 4096;

/// In `auto` mode, chunks smaller than this are written buffered: a direct
/// write waits for the device, which costs more than the copy for small
/// chunks.
pub const DIRECT_MIN_BYTES: usize = 256 << 10;

/// How chunks are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `O_DIRECT` for chunks of at least [`DIRECT_MIN_BYTES`].
    Auto,
    /// `O_DIRECT` for every chunk.
    Direct,
    /// Through the page cache.
    Buffered,
}

impl Mode {
    /// The mode `ZARRFORGE_WRITES` names (`auto` when unset or unknown).
    pub fn parse(v: Option<&str>) -> Self {
        match v.map(str::trim) {
            Some("direct") => Self::Direct,
            Some("buffered") => Self::Buffered,
            _ => Self::Auto,
        }
    }
}

/// The mode in force (read once).
pub fn mode() -> Mode {
    static V: OnceLock<Mode> = OnceLock::new();
    *V.get_or_init(|| Mode::parse(std::env::var("ZARRFORGE_WRITES").ok().as_deref()))
}

/// Set once a direct open or write was refused: everything after is
/// written buffered.
static REFUSED: AtomicBool = AtomicBool::new(false);

/// Whether a chunk of `len` bytes is to be written with `O_DIRECT`.
pub fn wanted(len: usize) -> bool {
    if !cfg!(target_os = "linux") || REFUSED.load(Ordering::Relaxed) {
        return false;
    }
    match mode() {
        Mode::Auto => len >= DIRECT_MIN_BYTES,
        Mode::Direct => len > 0,
        Mode::Buffered => false,
    }
}

/// Records that this filesystem refuses direct writes.
pub fn refused() {
    REFUSED.store(true, Ordering::Relaxed);
}

/// Whether `e` is the filesystem's refusal of `O_DIRECT` (or of its
/// alignment).
pub fn is_refusal(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::EINVAL)
}

/// A page-aligned buffer, reused from one chunk to the next so that its
/// pages are touched once.
#[derive(Debug, Default)]
pub struct AlignedBuf {
    raw: Vec<u8>,
}

impl AlignedBuf {
    /// An aligned slice of `len` bytes (`len` a multiple of [`ALIGN`]).
    fn slice(&mut self, len: usize) -> &mut [u8] {
        if self.raw.len() < len + ALIGN {
            self.raw = vec![0; len + ALIGN];
        }
        let off = self.raw.as_ptr().align_offset(ALIGN);
        &mut self.raw[off..off + len]
    }
}

/// Writes `bytes` to `file` (opened with `O_DIRECT`, empty) from `buf`,
/// padded to [`ALIGN`], then cuts the file to `bytes.len()`.
///
/// # Errors
/// The OS error; `EINVAL` when the filesystem refuses the direct write
/// ([`is_refusal`]): the caller writes the file again, buffered.
#[cfg(unix)]
pub fn write(file: &std::fs::File, bytes: &[u8], buf: &mut AlignedBuf) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let padded = bytes.len().next_multiple_of(ALIGN);
    let b = buf.slice(padded);
    b[..bytes.len()].copy_from_slice(bytes);
    b[bytes.len()..].fill(0);
    let mut off = 0;
    while off < padded {
        match file.write_at(&b[off..], off as u64) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => off += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    if padded != bytes.len() {
        file.set_len(bytes.len() as u64)?;
    }
    Ok(())
}

/// Without `O_DIRECT`: a plain write.
///
/// # Errors
/// The OS error.
#[cfg(not(unix))]
pub fn write(mut file: &std::fs::File, bytes: &[u8], _buf: &mut AlignedBuf) -> std::io::Result<()> {
    use std::io::Write;
    file.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mode_is_read_from_its_variable() {
        assert_eq!(Mode::parse(None), Mode::Auto);
        assert_eq!(Mode::parse(Some("direct")), Mode::Direct);
        assert_eq!(Mode::parse(Some(" buffered ")), Mode::Buffered);
        assert_eq!(Mode::parse(Some("fast")), Mode::Auto);
    }

    #[test]
    fn the_buffer_is_aligned_and_reused() {
        let mut b = AlignedBuf::default();
        let p = b.slice(2 * ALIGN).as_ptr();
        assert_eq!(p.align_offset(ALIGN), 0);
        assert_eq!(b.slice(ALIGN).as_ptr(), p);
        assert_eq!(b.slice(ALIGN).len(), ALIGN);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_direct_write_keeps_every_byte_and_the_exact_length() {
        use std::os::unix::fs::OpenOptionsExt;
        let t = tempfile::tempdir().unwrap();
        let mut buf = AlignedBuf::default();
        for len in [1, ALIGN - 1, ALIGN, ALIGN + 1, 3 * ALIGN + 17, 300_001] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let p = t.path().join(format!("c{len}"));
            let f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .custom_flags(libc::O_DIRECT)
                .open(&p);
            let Ok(f) = f else {
                // This filesystem has no O_DIRECT: the buffered path is the
                // one in use, tested elsewhere.
                return;
            };
            match write(&f, &bytes, &mut buf) {
                Ok(()) => assert_eq!(std::fs::read(&p).unwrap(), bytes, "length {len}"),
                Err(e) => assert!(is_refusal(&e), "{e}"),
            }
        }
    }
}
