//! The I/O floor of a conversion, measured on this machine: the time to
//! read the compressed inputs and to write the compressed output at the
//! speeds the storage gives now.
//!
//! Every rank takes part, so that the speeds are those of the whole job
//! (several nodes of a parallel filesystem add their bandwidths):
//! - reading: each rank reads its share of the input files (file `i` by
//!   rank `i mod ranks`), at most [`SAMPLE_BYTES`] over the job, the way
//!   the conversion read them (through the page cache: inputs read or
//!   written a moment ago come from memory, as they did for the conversion);
//! - writing: each rank writes its share of the output's size (at least
//!   64 MiB, at most [`SAMPLE_BYTES`] over the job) into a file of its own
//!   beside the store,
//!   then makes it durable (`fdatasync`), as the conversion makes its
//!   chunks durable before the commit; the files are removed.
//!
//! The job's speed is the bytes of all ranks over the slowest rank's time.
//! The floor is the compressed input bytes over the read speed plus the
//! output bytes over the write speed: one disk shares its bandwidth between
//! reading and writing. Nothing is measured for an object store output.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::mpi::ctx::MpiCtx;

/// Bytes read, and written, at most over the job.
const SAMPLE_BYTES: u64 = 512 << 20;
/// Bytes written at least over the job (a smaller sample would time the
/// calls, not the storage).
const MIN_WRITE_BYTES: u64 = 64 << 20;
/// Size of one read or write call.
const BLOCK: usize = 8 << 20;

/// The storage's measured speeds and the I/O floor.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IoFloor {
    /// Compressed input bytes (the input files' sizes).
    pub input_bytes: u64,
    /// Output bytes (the conversion's encoded bytes).
    pub output_bytes: u64,
    /// Read speed of the job, MB/s (0: not measured).
    pub read_mb_s: f64,
    /// Durable write speed of the job, MB/s (0: not measured).
    pub write_mb_s: f64,
    /// Seconds to read the inputs and write the output at those speeds.
    pub seconds: f64,
}

/// Measures the job's read and write speeds and the I/O floor of a
/// conversion of `inputs` into `output` that wrote `output_bytes`.
/// Collective: every rank calls it. A rank that cannot read or write
/// counts no bytes (the floor is then 0: not measured).
pub fn measure(ctx: &MpiCtx, inputs: &[PathBuf], output: &Path, output_bytes: u64) -> IoFloor {
    let input_bytes = inputs
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum::<u64>();
    let rank = usize::try_from(ctx.rank()).unwrap_or(0);
    let size = ctx.size().max(1);
    let mine: Vec<&PathBuf> = inputs.iter().skip(rank).step_by(size).collect();
    let share = SAMPLE_BYTES / size as u64;

    let _ = ctx.max_f64(0.0);
    let t = Instant::now();
    let read = read_files(&mine, share);
    let read_s = ctx.max_f64(t.elapsed().as_secs_f64());
    let read_failed = ctx.sum_u64(u64::from(read.is_none()));
    let read_total = ctx.sum_u64(read.unwrap_or(0));

    let write_share = output_bytes.clamp(MIN_WRITE_BYTES, SAMPLE_BYTES) / size as u64;
    let dir = output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let path = dir.join(format!(".zarrforge-io-floor-{}-{rank}", std::process::id()));
    let _ = ctx.max_f64(0.0);
    let t = Instant::now();
    let written = write_file(&path, write_share);
    let write_s = ctx.max_f64(t.elapsed().as_secs_f64());
    let _ = std::fs::remove_file(&path);
    let write_failed = ctx.sum_u64(u64::from(written.is_none()));
    let written_total = ctx.sum_u64(written.unwrap_or(0));

    let speed = |bytes: u64, s: f64, failed: u64| {
        if failed > 0 || bytes == 0 || s <= 0.0 {
            0.0
        } else {
            #[allow(clippy::cast_precision_loss)]
            let mb = bytes as f64 / 1e6;
            mb / s
        }
    };
    let read_mb_s = speed(read_total, read_s, read_failed);
    let write_mb_s = speed(written_total, write_s, write_failed);
    #[allow(clippy::cast_precision_loss)]
    let seconds = if read_mb_s > 0.0 && (write_mb_s > 0.0 || output_bytes == 0) {
        input_bytes as f64 / 1e6 / read_mb_s
            + if output_bytes == 0 {
                0.0
            } else {
                output_bytes as f64 / 1e6 / write_mb_s
            }
    } else {
        0.0
    };
    IoFloor {
        input_bytes,
        output_bytes,
        read_mb_s,
        write_mb_s,
        seconds,
    }
}

/// Reads `files` in turn until `limit` bytes: the bytes read (`None` on
/// error).
fn read_files(files: &[&PathBuf], limit: u64) -> Option<u64> {
    let mut buf = vec![0u8; BLOCK];
    let mut total = 0u64;
    for p in files {
        let mut f = std::fs::File::open(p).ok()?;
        loop {
            match f.read(&mut buf).ok()? {
                0 => break,
                n => total += n as u64,
            }
            if total >= limit {
                return Some(total);
            }
        }
    }
    Some(total)
}

/// Writes `bytes` to a new file at `path` and makes them durable: the
/// bytes written (`None` on error).
fn write_file(path: &Path, bytes: u64) -> Option<u64> {
    if bytes == 0 {
        return Some(0);
    }
    // Not zeros: a filesystem that compresses or dedups would cheat.
    let buf: Vec<u8> = (0..BLOCK)
        .map(|i| u8::try_from((i * 2_654_435_761) >> 24 & 0xff).unwrap_or(0))
        .collect();
    let mut f = std::fs::File::create(path).ok()?;
    let mut left = bytes;
    while left > 0 {
        let n = usize::try_from(left).map_or(BLOCK, |l| l.min(BLOCK));
        f.write_all(&buf[..n]).ok()?;
        left -= n as u64;
    }
    f.sync_data().ok()?;
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_stop_at_the_limit_and_a_missing_file_counts_nothing() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a");
        std::fs::write(&a, vec![1u8; 1000]).unwrap();

        assert_eq!(read_files(&[&a, &a], 1 << 20), Some(2000));
        assert_eq!(read_files(&[&a, &a], 10), Some(1000));
        let missing = d.path().join("b");
        assert_eq!(read_files(&[&a, &missing], 1 << 20), None);
    }

    #[test]
    fn writes_are_counted_only_when_durable() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("w");
        assert_eq!(write_file(&p, (BLOCK + 5) as u64), Some((BLOCK + 5) as u64));
        assert_eq!(std::fs::metadata(&p).unwrap().len(), (BLOCK + 5) as u64);
        assert_eq!(write_file(&d.path().join("no/such/dir"), 10), None);
        assert_eq!(write_file(&d.path().join("no/such/dir"), 0), Some(0));
    }
}
