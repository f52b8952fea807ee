//! The metadata scan: each rank reads the structure of its share of the
//! input files (and the values of the concatenation coordinate), and rank 0
//! gathers the results.
//!
//! Files are split into contiguous blocks, one per rank, so thousands of
//! files cost `files / ranks` opens per rank rather than all on rank 0.

pub mod error;
pub mod structure;

use std::hash::Hasher;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::schema::{DType, Schema};
use crate::pipeline::scan::error::SchemaError;
use structure::read_schema_from;

/// Largest coordinate read during the scan (a coordinate of 2^27 time
/// steps; a larger one comes from a corrupt header).
const MAX_COORD_BYTES: usize = 1 << 30;

/// Slab size for the digests of static variables.
const DIGEST_SLAB_BYTES: usize = 64 << 20;

/// What one input file holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileScan {
    /// Its path, as given.
    pub path: PathBuf,
    /// Its canonical path (links, `.` and `..` resolved): what identifies
    /// it between runs (the plan's print), however it is named.
    pub canonical: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// Its modification time, ns since the epoch.
    pub mtime_ns: i128,
    /// Its structure.
    pub schema: Schema,
    /// Values of the coordinate variables of candidate concatenation
    /// dimensions (the given one, else the root group's unlimited ones).
    pub coords: Vec<ScanCoord>,
    /// Digests of the values of variables without the concatenation
    /// dimension (only with the full static check).
    pub digests: Vec<(String, u64)>,
    /// How the file stores each variable (source path), for virtual
    /// references (`convert --virtual` only; empty otherwise).
    #[serde(default)]
    pub layouts: Vec<(String, crate::model::source_codecs::StoredLayout)>,
}

/// One file's coordinate along a candidate concatenation dimension.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanCoord {
    /// Dimension name.
    pub dim: String,
    /// Length of the dimension in this file.
    pub len: u64,
    /// Values of the coordinate variable (named as the dimension), if any.
    pub values: Option<Vec<f64>>,
    /// The same values as integers, for integer coordinates.
    pub ints: Option<Vec<i64>>,
}

/// Options of the scan.
#[derive(Debug, Clone, Default)]
pub struct ScanOptions {
    /// The concatenation dimension, when given.
    pub concat_dim: Option<String>,
    /// Leave out variables of unsupported types.
    pub skip_unsupported: bool,
    /// Accept plain HDF5 files with netCDF-C's phony dimension names.
    pub phony_dims: bool,
    /// Compute value digests of static variables.
    pub digest_static: bool,
}

/// Scans one file.
///
/// # Errors
/// [`SchemaError`] naming the file (and variable).
#[allow(clippy::too_many_lines)] // one file's scan in order: header check, open, structure, coordinate values, digests
pub fn scan_file(path: &Path, opts: &ScanOptions) -> Result<FileScan, SchemaError> {
    let format = structure::detect_format(path)?;
    let (size, mtime_ns) = std::fs::metadata(path)
        .map(|m| {
            let t = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| i128::try_from(d.as_nanos()).unwrap_or(i128::MAX));
            (m.len(), t)
        })
        .map_err(|source| SchemaError::Open {
            path: path.to_path_buf(),
            source,
        })?;
    let file = structure::open_checked(path, format)?;
    let schema = read_schema_from(&file, path, format, opts.skip_unsupported, opts.phony_dims)?;
    let nc_err = |what: String| {
        move |source| SchemaError::Netcdf {
            path: path.to_path_buf(),
            what,
            source,
        }
    };
    let dims: Vec<String> = match &opts.concat_dim {
        Some(d) => vec![d.clone()],
        None => schema
            .root
            .dims
            .iter()
            .filter(|d| d.unlimited)
            .map(|d| d.name.clone())
            .collect(),
    };
    let mut coords = Vec::new();
    for dim in dims {
        let len = schema
            .root
            .dims
            .iter()
            .find(|d| d.name == dim)
            .map(|d| d.len)
            .or_else(|| {
                schema
                    .vars()
                    .iter()
                    .find_map(|v| v.dims.iter().position(|d| *d == dim).map(|k| v.shape[k]))
            });
        let Some(len) = len else { continue };
        let coord = schema
            .root
            .vars
            .iter()
            .find(|v| v.name == dim && v.dims.len() == 1 && v.dims[0] == dim);
        let (values, ints) = match coord {
            Some(v) if v.dtype != DType::String && v.dtype != DType::Char => {
                let what = format!("coordinate variable '{dim}'");
                let (grp, varid) = file.var_at(&v.path).map_err(nc_err(what.clone()))?;
                let n = usize::try_from(v.shape[0]).unwrap_or(usize::MAX);
                let values = file
                    .get_vara_as::<f64>(grp, varid, &[0], &[n], MAX_COORD_BYTES)
                    .map_err(nc_err(what.clone()))?;
                let ints = if v.dtype.is_float() {
                    None
                } else {
                    Some(
                        file.get_vara_as::<i64>(grp, varid, &[0], &[n], MAX_COORD_BYTES)
                            .map_err(nc_err(what))?,
                    )
                };
                (Some(values), ints)
            }
            _ => (None, None),
        };
        coords.push(ScanCoord {
            dim,
            len,
            values,
            ints,
        });
    }
    let mut digests = Vec::new();
    if opts.digest_static {
        let concat: Vec<&str> = coords.iter().map(|c| c.dim.as_str()).collect();
        for v in schema.vars() {
            if v.dims.iter().any(|d| concat.contains(&d.as_str())) {
                continue;
            }
            let what = format!("variable '{}'", v.path);
            let (grp, varid) = file.var_at(&v.path).map_err(nc_err(what.clone()))?;
            let mut h = std::collections::hash_map::DefaultHasher::new();
            // Read in slabs along the first dimension: a static variable may
            // be large, and its digest needs no more than a slab at a time.
            let shape: Vec<usize> = v
                .shape
                .iter()
                .map(|&x| usize::try_from(x).unwrap_or(usize::MAX))
                .collect();
            let rows = shape.first().copied().unwrap_or(1);
            let row_elems = shape
                .iter()
                .skip(1)
                .fold(1usize, |a, &b| a.saturating_mul(b));
            let step = (DIGEST_SLAB_BYTES / row_elems.max(1).saturating_mul(v.dtype.size())).max(1);
            let mut r = 0;
            while r < rows.max(1) && !v.is_empty() {
                let n = step.min(rows - r);
                let mut start = vec![0usize; shape.len()];
                let mut count = shape.clone();
                if !shape.is_empty() {
                    start[0] = r;
                    count[0] = n;
                }
                if v.dtype == DType::String {
                    for s in file
                        .get_vara_strings(grp, varid, &start, &count, usize::MAX)
                        .map_err(nc_err(what.clone()))?
                    {
                        h.write(s.as_bytes());
                        h.write_u8(0);
                    }
                } else {
                    let bytes = file
                        .get_vara(grp, varid, &start, &count, v.dtype.size(), usize::MAX)
                        .map_err(nc_err(what.clone()))?;
                    h.write(&bytes);
                }
                r += n;
                if shape.is_empty() {
                    break;
                }
            }
            digests.push((v.path.clone(), h.finish()));
        }
    }
    Ok(FileScan {
        path: path.to_path_buf(),
        // The file was just opened: canonicalize can fail only if it went
        // since, and then the path as given stands for it.
        canonical: std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()),
        size,
        mtime_ns,
        schema,
        coords,
        digests,
        layouts: Vec::new(),
    })
}

/// Why [`scan_files_isolated`] failed: the scan of a file, or the work
/// done on its result.
#[derive(Debug)]
pub enum IsolatedError<E> {
    /// The scan itself (crashed and stalled children included).
    Scan(SchemaError),
    /// The work after the scan (`then`).
    Then(E),
}

/// Scans `paths` in one child process, so that netCDF-C or HDF5 crashing or
/// looping forever on a damaged file (which no check before the call can
/// rule out) becomes an error naming the file instead of a dead or stuck
/// rank. The child scans the files one after the other, runs `then` on each
/// scan (more reading of the file, equally isolated) and sends each result
/// back as soon as it has it; `timeout` bounds each file. On an ordinary
/// error the file is scanned again here for the typed error (the child got
/// through it, so it is safe). `None` scans in this process. `done` is
/// called after each file.
///
/// # Errors
/// The first file's [`IsolatedError`]: [`scan_file`]'s errors plus
/// [`SchemaError::Crashed`] and [`SchemaError::Stalled`], or `then`'s.
pub fn scan_files_isolated<E>(
    paths: &[PathBuf],
    opts: &ScanOptions,
    timeout: Option<std::time::Duration>,
    then: impl Fn(FileScan) -> Result<FileScan, E>,
    mut done: impl FnMut(),
) -> Result<Vec<FileScan>, IsolatedError<E>> {
    let here = |p: &Path| {
        scan_file(p, opts)
            .map_err(IsolatedError::Scan)
            .and_then(|s| then(s).map_err(IsolatedError::Then))
    };
    let Some(timeout) = timeout else {
        return paths
            .iter()
            .map(|p| {
                let s = here(p);
                done();
                s
            })
            .collect();
    };
    let mut out = Vec::with_capacity(paths.len());
    let mut failure = None;
    child::run_each(
        timeout,
        paths.len(),
        |i| {
            let p = &paths[i];
            crate::system::stage::catch(|| here(p))
                .ok()
                .and_then(Result::ok)
                .and_then(|s| bincode::serde::encode_to_vec(&s, bincode::config::standard()).ok())
        },
        |i, outcome| {
            let path = &paths[i];
            let scan = match outcome {
                child::Outcome::Done(Some(bytes)) => {
                    bincode::serde::decode_from_slice(&bytes, bincode::config::standard())
                        .map(|(s, _)| s)
                        .or_else(|_| here(path))
                }
                child::Outcome::Done(None) | child::Outcome::Unavailable => here(path),
                child::Outcome::Signal(signal) => Err(IsolatedError::Scan(SchemaError::Crashed {
                    path: path.clone(),
                    signal,
                })),
                child::Outcome::TimedOut => Err(IsolatedError::Scan(SchemaError::Stalled {
                    path: path.clone(),
                    seconds: timeout.as_secs(),
                })),
            };
            done();
            match scan {
                Ok(s) => {
                    out.push(s);
                    true
                }
                Err(e) => {
                    failure = Some(e);
                    false
                }
            }
        },
    );
    match failure {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// A function run in a forked child process, its result sent back through
/// a pipe.
mod child {
    use std::io::{Read, Write};
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::time::{Duration, Instant};

    /// How the child ended.
    pub(super) enum Outcome {
        /// It sent its result (`None`: it had nothing to send).
        Done(Option<Vec<u8>>),
        /// It died of this signal.
        Signal(i32),
        /// It did not finish in time (and was killed).
        TimedOut,
        /// No child could be started.
        Unavailable,
    }

    /// Runs `f(0)`, `f(1)`, ... `f(n - 1)` in one child process and hands
    /// each result to `on` as it arrives (`on` returns whether to go on).
    /// Each item gets `timeout`; a child that dies or stalls ends the run
    /// with that item's outcome. Items a child could not be started for, or
    /// that a child that stopped early left, come as
    /// [`Outcome::Unavailable`].
    pub(super) fn run_each(
        timeout: Duration,
        n: usize,
        f: impl Fn(usize) -> Option<Vec<u8>>,
        mut on: impl FnMut(usize, Outcome) -> bool,
    ) {
        let mut next = 0;
        while next < n {
            match batch(timeout, next, n, &f, &mut on) {
                Ok(k) if k > next => next = k,
                Ok(_) => {
                    // The child sent nothing (it could not run): go on
                    // here, item by item.
                    if !on(next, Outcome::Unavailable) {
                        return;
                    }
                    next += 1;
                }
                Err(()) => return,
            }
        }
    }

    /// One child for items `from..n`: returns the next item to do (`Err`
    /// when `on` stopped the run).
    fn batch(
        timeout: Duration,
        from: usize,
        n: usize,
        f: &impl Fn(usize) -> Option<Vec<u8>>,
        on: &mut impl FnMut(usize, Outcome) -> bool,
    ) -> Result<usize, ()> {
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills two descriptors on success.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Ok(from);
        }
        // SAFETY: the descriptors are fresh and owned here from now on.
        let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: fork in a process whose other threads (MPI's) hold none of
        // the locks the child uses; the child only runs `f` (netCDF-C, HDF5,
        // Rust allocation, no MPI) and leaves with _exit.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Ok(from);
        }
        if pid == 0 {
            drop(rd);
            serve(wr, from, n, f);
        }
        drop(wr);
        let mut r = std::fs::File::from(rd);
        let mut buf: Vec<u8> = Vec::new();
        let mut chunk = vec![0u8; 1 << 16];
        let mut item = from;
        let mut deadline = Instant::now() + timeout;
        let mut stopped = false;
        let mut timed_out = false;
        let mut eof = false;
        while item < n && !stopped {
            // Whole frames first.
            if let Some((frame, used)) = frame(&buf) {
                buf.drain(..used);
                stopped = !on(item, Outcome::Done(frame));
                item += 1;
                deadline = Instant::now() + timeout;
                continue;
            }
            if eof {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                timed_out = true;
                break;
            }
            let mut pfd = libc::pollfd {
                fd: std::os::fd::AsRawFd::as_raw_fd(&r),
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = i32::try_from(left.as_millis().min(1000)).unwrap_or(1000);
            // SAFETY: one valid pollfd.
            let k = unsafe { libc::poll(&raw mut pfd, 1, ms) };
            if k <= 0 {
                continue;
            }
            match r.read(&mut chunk) {
                Ok(0) => eof = true,
                Ok(k) => buf.extend_from_slice(&chunk[..k]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => eof = true,
            }
        }
        if timed_out || stopped || item < n {
            // SAFETY: the child is ours; killed, then reaped below.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
        let status = reap(pid);
        if stopped {
            return Err(());
        }
        if timed_out {
            on(item, Outcome::TimedOut);
            return Err(());
        }
        if item < n && libc::WIFSIGNALED(status) && libc::WTERMSIG(status) != libc::SIGKILL {
            on(item, Outcome::Signal(libc::WTERMSIG(status)));
            return Err(());
        }
        if item < n && libc::WIFSIGNALED(status) {
            // Killed by us (or by the OOM killer) before it finished.
            on(item, Outcome::Signal(libc::SIGKILL));
            return Err(());
        }
        Ok(item)
    }

    /// The child: sends `f(from..n)` as frames, then leaves.
    fn serve(wr: OwnedFd, from: usize, n: usize, f: &impl Fn(usize) -> Option<Vec<u8>>) -> ! {
        crate::system::stage::reset_crash_handler();
        let mut w = std::fs::File::from(wr);
        let mut ok = true;
        for i in from..n {
            let frame = match f(i) {
                Some(bytes) => {
                    let mut v = Vec::with_capacity(bytes.len() + 9);
                    v.push(1);
                    v.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
                    v.extend_from_slice(&bytes);
                    v
                }
                None => vec![0],
            };
            if w.write_all(&frame).is_err() {
                ok = false;
                break;
            }
        }
        // SAFETY: leaving the child without atexit handlers (MPI, HDF5).
        unsafe { libc::_exit(i32::from(!ok)) }
    }

    /// Waits for the child `pid` and returns its status.
    fn reap(pid: libc::pid_t) -> i32 {
        let mut status = 0;
        // SAFETY: reaping our own child.
        while unsafe { libc::waitpid(pid, &raw mut status, 0) } < 0 {
            if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                break;
            }
        }
        status
    }

    /// The first whole frame of `buf` (`[1, len: u64 LE, bytes]` or `[0]`)
    /// and the bytes it takes.
    fn frame(buf: &[u8]) -> Option<(Option<Vec<u8>>, usize)> {
        match buf.first()? {
            0 => Some((None, 1)),
            _ => {
                let len =
                    usize::try_from(u64::from_le_bytes(buf.get(1..9)?.try_into().ok()?)).ok()?;
                let end = 9usize.checked_add(len)?;
                Some((Some(buf.get(9..end)?.to_vec()), end))
            }
        }
    }
}

/// The block of files `rank` of `ranks` scans: `[lo, hi)`.
pub fn share(files: usize, rank: usize, ranks: usize) -> (usize, usize) {
    let ranks = ranks.max(1);
    (files * rank / ranks, files * (rank + 1) / ranks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_cover_every_file_once() {
        for files in [0, 1, 5, 200, 1001] {
            for ranks in [1, 2, 3, 7, 512] {
                let mut next = 0;
                for r in 0..ranks {
                    let (lo, hi) = share(files, r, ranks);
                    assert_eq!(lo, next);
                    assert!(hi >= lo);
                    next = hi;
                }
                assert_eq!(next, files);
            }
        }
    }
}
