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

/// Scans one file in a child process, so that netCDF-C or HDF5 crashing or
/// looping forever on a damaged file (which no check before the call can
/// rule out) becomes an error naming the file instead of a dead or stuck
/// rank. The child sends the scan back; on an ordinary error the file is
/// scanned again here for the typed error (the child got through it, so it
/// is safe). `timeout` bounds the child; `None` scans in this process.
///
/// # Errors
/// As [`scan_file`], plus [`SchemaError::Crashed`] and
/// [`SchemaError::Stalled`].
pub fn scan_file_isolated(
    path: &Path,
    opts: &ScanOptions,
    timeout: Option<std::time::Duration>,
) -> Result<FileScan, SchemaError> {
    let Some(timeout) = timeout else {
        return scan_file(path, opts);
    };
    match child::run(timeout, || {
        crate::system::stage::catch(|| scan_file(path, opts))
            .ok()
            .and_then(Result::ok)
            .and_then(|s| bincode::serde::encode_to_vec(&s, bincode::config::standard()).ok())
    }) {
        child::Outcome::Done(Some(bytes)) => {
            bincode::serde::decode_from_slice(&bytes, bincode::config::standard())
                .map(|(s, _)| s)
                .or_else(|_| scan_file(path, opts))
        }
        child::Outcome::Done(None) | child::Outcome::Unavailable => scan_file(path, opts),
        child::Outcome::Signal(signal) => Err(SchemaError::Crashed {
            path: path.to_path_buf(),
            signal,
        }),
        child::Outcome::TimedOut => Err(SchemaError::Stalled {
            path: path.to_path_buf(),
            seconds: timeout.as_secs(),
        }),
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

    pub(super) fn run(timeout: Duration, f: impl FnOnce() -> Option<Vec<u8>>) -> Outcome {
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills two descriptors on success.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Outcome::Unavailable;
        }
        // SAFETY: the descriptors are fresh and owned here from now on.
        let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: fork in a process whose other threads (MPI's) hold none of
        // the locks the child uses; the child only runs `f` (netCDF-C, HDF5,
        // Rust allocation, no MPI) and leaves with _exit.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Outcome::Unavailable;
        }
        if pid == 0 {
            drop(rd);
            crate::system::stage::reset_crash_handler();
            let out = f();
            let mut w = std::fs::File::from(wr);
            let ok = match out {
                Some(bytes) => w.write_all(&[1]).and_then(|()| w.write_all(&bytes)).is_ok(),
                None => w.write_all(&[0]).is_ok(),
            };
            // SAFETY: leaving the child without atexit handlers (MPI, HDF5).
            unsafe { libc::_exit(i32::from(!ok)) }
        }
        drop(wr);
        let mut r = std::fs::File::from(rd);
        let deadline = Instant::now() + timeout;
        let mut buf = Vec::new();
        let mut chunk = vec![0u8; 1 << 16];
        let timed_out = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break true;
            }
            let mut pfd = libc::pollfd {
                fd: std::os::fd::AsRawFd::as_raw_fd(&r),
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = i32::try_from(left.as_millis().min(1000)).unwrap_or(1000);
            // SAFETY: one valid pollfd.
            let n = unsafe { libc::poll(&raw mut pfd, 1, ms) };
            if n <= 0 {
                continue;
            }
            match r.read(&mut chunk) {
                Ok(0) => break false,
                Ok(k) => buf.extend_from_slice(&chunk[..k]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break false,
            }
        };
        if timed_out {
            // SAFETY: the child is ours; killed, then reaped below.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
        let mut status = 0;
        // SAFETY: reaping our own child.
        while unsafe { libc::waitpid(pid, &raw mut status, 0) } < 0 {
            if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                break;
            }
        }
        if timed_out {
            return Outcome::TimedOut;
        }
        if libc::WIFSIGNALED(status) {
            return Outcome::Signal(libc::WTERMSIG(status));
        }
        match buf.split_first() {
            Some((1, rest)) => Outcome::Done(Some(rest.to_vec())),
            _ => Outcome::Done(None),
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
