//! The `convert` pipeline: schema → plan → read → encode/write → commit.
//!
//! Every stage that can fail on one rank ends in a collective agreement
//! ([`MpiCtx::agree`]), so a failure anywhere makes every rank stop at the
//! same point with the same error and nothing is committed.

use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;

use crate::config::ConvertConfig;
use crate::error::{Error, SchemaError, WriteError};
use crate::mpi_ctx::MpiCtx;
use crate::plan::Plan;
use crate::progress::{Progress, RankStats};
use crate::read::{Reader, Values};
use crate::schema::{read_schema, Schema};
use crate::topology::Topology;
use crate::write::chunks::ArrayEncoder;
use crate::write::{commit, store};

/// The outcome of a conversion, summed over ranks.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Output store.
    pub output: PathBuf,
    /// Ranks used.
    pub ranks: usize,
    /// Encoder threads per rank (rank 0).
    pub threads: usize,
    /// Arrays written.
    pub arrays: usize,
    /// Units (chunks or shards) written.
    pub units: u64,
    /// Uncompressed bytes.
    pub bytes_read: u64,
    /// Encoded bytes written.
    pub bytes_written: u64,
    /// Wall seconds.
    pub seconds: f64,
    /// Variables left out (`--skip-unsupported`).
    pub skipped: Vec<String>,
    /// Rank 0's own counters.
    pub rank0: RankStats,
}

impl Report {
    /// One-line summary.
    pub fn summary(&self) -> String {
        #[allow(clippy::cast_precision_loss)]
        let gb = self.bytes_read as f64 / 1e9;
        format!(
            "zarrforge: wrote {} ({} arrays, {} chunks) from {:.3} GB in {:.2} s: {:.2} GB/s, {:.3} GB stored, {} rank(s) x {} thread(s)",
            self.output.display(),
            self.arrays,
            self.units,
            gb,
            self.seconds,
            gb / self.seconds.max(1e-9),
            {
                #[allow(clippy::cast_precision_loss)]
                {
                    self.bytes_written as f64 / 1e9
                }
            },
            self.ranks,
            self.threads
        )
    }
}

/// Rank 0 reads the schema and broadcasts it; every rank gets it or the error.
///
/// # Errors
/// The schema error on rank 0; [`Error::Ranks`] elsewhere.
pub fn shared_schema(
    ctx: &MpiCtx,
    path: &std::path::Path,
    skip_unsupported: bool,
) -> Result<Schema, Error> {
    // Binary (bincode) rather than JSON: attribute values may be NaN or
    // infinite, which JSON cannot carry.
    let config = bincode::config::standard();
    let exchange = |e: String| Error::Schema(SchemaError::Exchange(e));
    let local: Result<Schema, Error> = if ctx.is_root() {
        let read = read_schema(path, skip_unsupported).map_err(Error::from);
        let payload = match &read {
            Ok(s) => bincode::serde::encode_to_vec(s, config).map_err(|e| exchange(e.to_string())),
            Err(_) => Ok(Vec::new()),
        };
        match payload {
            Ok(bytes) => {
                ctx.bcast_bytes(bytes);
                read
            }
            Err(e) => {
                ctx.bcast_bytes(Vec::new());
                Err(e)
            }
        }
    } else {
        let bytes = ctx.bcast_bytes(Vec::new());
        if bytes.is_empty() {
            // Rank 0 failed; its message arrives through the agreement.
            Err(exchange("no schema from rank 0".into()))
        } else {
            bincode::serde::decode_from_slice::<Schema, _>(&bytes, config)
                .map(|(s, _)| s)
                .map_err(|e| exchange(e.to_string()))
        }
    };
    // Every rank learns whether every rank has the schema: no rank goes on
    // to a collective that another rank will never reach.
    let ok = local.is_ok();
    let failures = ctx.gather_failures(local.as_ref().err().map(|e| crate::error::chain(e)));
    if failures.is_empty() {
        return local;
    }
    if ok || !ctx.is_root() {
        // Report rank 0's own message when it has one, else every rank's.
        let root_failed: Vec<(i32, String)> =
            failures.iter().filter(|(r, _)| *r == 0).cloned().collect();
        return Err(Error::Ranks(if root_failed.is_empty() {
            failures
        } else {
            root_failed
        }));
    }
    local
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Runs `f`, turning a panic into an error, so the rank still reaches the
/// next collective instead of leaving the others waiting.
fn guarded<T>(f: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
    std::panic::catch_unwind(AssertUnwindSafe(f))
        .unwrap_or_else(|p| Err(WriteError::Panic(panic_text(p.as_ref())).into()))
}

/// Converts one netCDF file into a Zarr store on all ranks of `ctx`.
///
/// # Errors
/// Any stage's error; when several ranks fail, [`Error::Ranks`] with each
/// rank's message. The store is then left without root metadata.
pub fn convert(ctx: &MpiCtx, cfg: &ConvertConfig, topo: &Topology) -> Result<Report, Error> {
    let t0 = Instant::now();
    cfg.validate()?;
    let schema = shared_schema(ctx, &cfg.input, cfg.skip_unsupported)?;
    let plan = Plan::new(&schema, cfg, ctx.size())?;
    let threads = cfg
        .threads
        .unwrap_or_else(|| topo.encoder_threads(ctx.ranks_on_node()))
        .max(1);

    // Rank 0 prepares the store; nobody writes before it is ready.
    let prepared = if ctx.is_root() {
        guarded(|| {
            Ok(store::prepare(
                &cfg.output,
                std::slice::from_ref(&cfg.input),
                cfg.overwrite,
            )?)
        })
    } else {
        Ok(())
    };
    ctx.agree(prepared)?;

    let rank = usize::try_from(ctx.rank()).unwrap_or(0);
    let stats = guarded(|| write_units(ctx, cfg, &schema, &plan, rank, threads));
    let stats = ctx.agree(stats)?;

    let committed = if ctx.is_root() {
        guarded(|| Ok(commit::commit(&cfg.output, &schema, &plan, cfg)?))
    } else {
        Ok(())
    };
    ctx.agree(committed)?;

    let units = ctx.sum_u64(stats.units);
    let bytes_read = ctx.sum_u64(stats.bytes_read);
    let bytes_written = ctx.sum_u64(stats.bytes_written);
    let seconds = ctx.max_f64(t0.elapsed().as_secs_f64());
    Ok(Report {
        output: cfg.output.clone(),
        ranks: ctx.size(),
        threads,
        arrays: plan.arrays.len(),
        units,
        bytes_read,
        bytes_written,
        seconds,
        skipped: schema
            .skipped
            .iter()
            .map(|s| format!("{} ({})", s.path, s.kind))
            .collect(),
        rank0: stats,
    })
}

/// Reads, encodes and stores the units of `rank`; reads on this thread,
/// encodes and writes on `threads` workers with a bounded number of units in
/// flight.
fn write_units(
    ctx: &MpiCtx,
    cfg: &ConvertConfig,
    schema: &Schema,
    plan: &Plan,
    rank: usize,
    threads: usize,
) -> Result<RankStats, Error> {
    let vars = schema.vars();
    let mut encoders = Vec::with_capacity(plan.arrays.len());
    for a in &plan.arrays {
        encoders.push(ArrayEncoder::new(
            &cfg.output,
            vars[a.var],
            a,
            &cfg.codec,
            cfg.format,
        )?);
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("zarrforge-encode-{i}"))
        .build()
        .map_err(|e| WriteError::Panic(format!("cannot start encoder threads: {e}")))?;
    let in_flight = threads * 2;
    let (tok_tx, tok_rx) = std::sync::mpsc::sync_channel::<()>(in_flight);
    for _ in 0..in_flight {
        let _ = tok_tx.send(());
    }
    let failure: Mutex<Option<Error>> = Mutex::new(None);
    let shared = Mutex::new(RankStats::default());
    let mut stats = RankStats::default();
    let mut reader = Reader::new(schema);
    let mut progress = Progress::new(
        cfg.progress && ctx.is_root(),
        plan.units_count(rank),
        ctx.size(),
    );
    let failed = |f: &Mutex<Option<Error>>| f.lock().map(|g| g.is_some()).unwrap_or(true);

    pool.in_place_scope(|s| {
        for (done, unit) in plan.units_of(rank).enumerate() {
            if failed(&failure) {
                break;
            }
            let a = &plan.arrays[unit.array];
            let var = vars[a.var];
            let (start, count) = a.unit_region(&unit.indices);
            let t = Instant::now();
            let values = match reader.read(var, &start, &count) {
                Ok(v) => v,
                Err(e) => {
                    if let Ok(mut g) = failure.lock() {
                        g.get_or_insert(e.into());
                    }
                    break;
                }
            };
            stats.read_s += t.elapsed().as_secs_f64();
            stats.bytes_read += match &values {
                Values::Fixed(b) => b.len() as u64,
                Values::Strings(v) => v.iter().map(|x| x.len() as u64).sum(),
            };
            let t = Instant::now();
            if tok_rx.recv().is_err() {
                break;
            }
            stats.wait_s += t.elapsed().as_secs_f64();
            let enc = &encoders[unit.array];
            let (failure, shared, tok_tx) = (&failure, &shared, tok_tx.clone());
            s.spawn(move |_| {
                let t = Instant::now();
                let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    let bytes = enc.encode(&unit.indices, &count, values)?;
                    let t_enc = t.elapsed().as_secs_f64();
                    let t = Instant::now();
                    enc.store(&unit.indices, &bytes)?;
                    Ok::<_, WriteError>((bytes.len() as u64, t_enc, t.elapsed().as_secs_f64()))
                }))
                .unwrap_or_else(|p| Err(WriteError::Panic(panic_text(p.as_ref()))));
                match result {
                    Ok((n, te, tw)) => {
                        if let Ok(mut st) = shared.lock() {
                            st.units += 1;
                            st.bytes_written += n;
                            st.encode_s += te;
                            st.write_s += tw;
                        }
                    }
                    Err(e) => {
                        if let Ok(mut g) = failure.lock() {
                            g.get_or_insert(e.into());
                        }
                    }
                }
                let _ = tok_tx.send(());
            });
            progress.update(done as u64 + 1, stats.bytes_read);
        }
    });
    progress.finish();
    if let Some(e) = failure.into_inner().ok().flatten() {
        return Err(e);
    }
    if stats.bytes_read > 0 || plan.units_count(rank) > 0 {
        store::sync_filesystem(&cfg.output)?;
    }
    let shared = shared.into_inner().unwrap_or_default();
    stats.units = shared.units;
    stats.bytes_written = shared.bytes_written;
    stats.encode_s = shared.encode_s;
    stats.write_s = shared.write_s;
    Ok(stats)
}
