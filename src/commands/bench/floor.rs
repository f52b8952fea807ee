//! The compute floor of a conversion, measured on this machine: the CPU
//! time to decode the source chunks and to encode the same bytes with the
//! output codec, on a sample (the inputs' first 256 MiB of stored chunks,
//! decoded), scaled to the bytes of the whole conversion.
//!
//! Two measures:
//! - alone: one thread on rank 0 while every other rank sleeps: what one
//!   core does with the machine to itself;
//! - busy: every encoder thread of every rank at once, each on its own copy
//!   of the sample: what each core does while all of them work, sharing
//!   the caches and the memory bandwidth as a conversion does. Its time is
//!   the threads' CPU time, so a job with more threads than cores is not
//!   charged for their sharing of a core.
//!
//! The codec floor of the job is the busy measure over the cores.

use std::time::Instant;

use crate::cli::config::{Codec, ConvertConfig};
use crate::error::Error;
use crate::model::schema::{SourceFormat, Var};
use crate::mpi::ctx::MpiCtx;
use crate::pipeline::plan::ArrayPlan;
use crate::pipeline::read::raw::{RawChunk, RawLayout};
use crate::pipeline::read::{FileReader, Values};
use crate::store::encode::ArrayEncoder;

/// Bytes of source data sampled at most.
const SAMPLE_BYTES: u64 = 256 << 20;

/// The stored chunks of a sample, read once (HDF5 is called by one thread
/// only), decoded and encoded by as many threads as measure.
pub struct Sample {
    vars: Vec<SampleVar>,
    codec: Codec,
    format: crate::cli::config::ZarrFormat,
    /// Decoded bytes of the sample.
    pub bytes: u64,
}

struct SampleVar {
    path: std::path::PathBuf,
    var: Var,
    layout: RawLayout,
    /// Origin and stored bytes of each chunk.
    chunks: Vec<(Vec<u64>, RawChunk)>,
}

/// Reads the sample: the stored chunks of the inputs in turn (netCDF-4
/// with chunked, deflated or shuffled variables), up to [`SAMPLE_BYTES`]
/// decoded. `None` when there is nothing to measure (netCDF-3 inputs,
/// `--codec source`).
///
/// # Errors
/// Errors reading the sample.
pub fn sample(cfg: &ConvertConfig, files: &[std::path::PathBuf]) -> Result<Option<Sample>, Error> {
    let codec = match &cfg.codec {
        Codec::Source => return Ok(None),
        c => c.clone(),
    };
    let mut vars = Vec::new();
    let mut bytes = 0u64;
    for file in files {
        if bytes >= SAMPLE_BYTES {
            break;
        }
        let schema = crate::pipeline::scan::structure::read_schema(file, true)?;
        if schema.format != SourceFormat::Netcdf4 {
            break;
        }
        let mut reader = FileReader::new(file, schema.format);
        for v in schema.vars() {
            let Some(h) = reader.hdf5()? else { break };
            let Some(layout) = h.raw_layout(v)? else {
                continue;
            };
            let extent = h.extent(v)?;
            let zero = vec![0; extent.len()];
            let mut chunks = Vec::new();
            for origin in crate::pipeline::read::raw::chunks_of(&layout.chunk, &zero, &extent) {
                if bytes >= SAMPLE_BYTES {
                    break;
                }
                let raw = h.read_raw(v, &origin)?;
                chunks.push((origin, raw));
                bytes += layout.chunk_bytes() as u64;
            }
            if !chunks.is_empty() {
                vars.push(SampleVar {
                    path: file.clone(),
                    var: v.clone(),
                    layout,
                    chunks,
                });
            }
        }
    }
    if bytes == 0 {
        return Ok(None);
    }
    Ok(Some(Sample {
        vars,
        codec,
        format: cfg.format,
        bytes,
    }))
}

/// This thread's CPU seconds to decode and encode the whole sample (a
/// thread of its own: call it on as many threads as measure at once).
///
/// # Errors
/// A chunk of the sample that does not decode, or an encoder error.
pub fn cpu_seconds(sample: &Sample) -> Result<f64, Error> {
    let tmp = std::env::temp_dir().join(format!(
        "zarrforge-floor-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let result = encode_all(sample, &tmp);
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

fn encode_all(sample: &Sample, tmp: &std::path::Path) -> Result<f64, Error> {
    let mut cpu = 0.0;
    for s in &sample.vars {
        let n = (s.layout.chunk_bytes() / s.layout.elem.max(1)) as u64;
        let a = ArrayPlan::new(0, "floor".into(), s.var.dtype, vec![n], vec![n], None, 0)
            .with_codec(sample.codec.clone());
        let mut flat = s.var.clone();
        flat.dims = vec!["n".into()];
        flat.shape = vec![n];
        let enc = ArrayEncoder::new(tmp, &flat, &a, sample.format)?;
        for (origin, raw) in &s.chunks {
            let raw = raw.clone();
            let t = thread_cpu_seconds();
            let data = crate::pipeline::read::raw::decode(raw, &s.layout).map_err(|msg| {
                crate::pipeline::read::error::ReadError::Decode {
                    path: s.path.clone(),
                    var: s.var.path.clone(),
                    origin: origin.clone(),
                    msg,
                }
            })?;
            enc.encode(&[0], &[n], Values::Fixed(data))?;
            cpu += thread_cpu_seconds() - t;
        }
    }
    Ok(cpu)
}

/// The codec floor's two measures, each one thread's CPU seconds for the
/// whole conversion's `bytes_read` (divide by the cores for the job's):
/// `(busy, alone)`, 0 where nothing was measured. Collective: every rank
/// calls it; `threads` measure at once on each rank.
pub fn measure(
    ctx: &MpiCtx,
    cfg: &ConvertConfig,
    files: &[std::path::PathBuf],
    threads: usize,
    bytes_read: u64,
) -> (f64, f64) {
    let sample = crate::system::stage::guarded(|| sample(cfg, files))
        .ok()
        .flatten();
    // Alone: rank 0's main thread while the others sleep in the barrier.
    let alone = match &sample {
        Some(s) if ctx.is_root() => crate::system::stage::guarded(|| cpu_seconds(s))
            .map_or(0.0, |cpu| cpu * scale(bytes_read, s.bytes)),
        _ => 0.0,
    };
    ctx.wait_polling(|| {});
    // Busy: every thread of every rank at once.
    let mut mine = Vec::new();
    if let Some(s) = &sample {
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads.max(1))
                .map(|_| scope.spawn(|| cpu_seconds(s)))
                .collect();
            for h in handles {
                if let Ok(Ok(cpu)) = h.join() {
                    mine.push(cpu * scale(bytes_read, s.bytes));
                }
            }
        });
    }
    ctx.wait_polling(|| {});
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let nanos = ctx.sum_u64(mine.iter().map(|s| (s * 1e9) as u64).sum());
    let count = ctx.sum_u64(mine.len() as u64);
    #[allow(clippy::cast_precision_loss)]
    let busy = if count == 0 {
        0.0
    } else {
        nanos as f64 * 1e-9 / count as f64
    };
    (busy, ctx.max_f64(alone))
}

/// How many times the sample the conversion's bytes are.
fn scale(bytes_read: u64, sample: u64) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let s = bytes_read as f64 / sample.max(1) as f64;
    s
}

/// CPU seconds of the calling thread (wall seconds since the first call
/// where the clock is missing).
fn thread_cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec, which lives on the stack.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &raw mut ts) };
    if rc == 0 {
        #[allow(clippy::cast_precision_loss)]
        let s = ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9;
        s
    } else {
        static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        START.get_or_init(Instant::now).elapsed().as_secs_f64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_cpu_time_counts_work_not_sleep() {
        let t = thread_cpu_seconds();
        std::thread::sleep(std::time::Duration::from_millis(200));
        let slept = thread_cpu_seconds() - t;
        let t = thread_cpu_seconds();
        let mut x = 0u64;
        let start = Instant::now();
        while start.elapsed().as_millis() < 200 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let worked = thread_cpu_seconds() - t;
        assert!(slept < 0.05, "{slept}");
        assert!(worked > 0.1, "{worked}");
    }
}
