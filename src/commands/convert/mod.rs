//! The `convert` pipeline: schema → plan → read → encode/write → commit.
//!
//! Every stage that can fail on one rank ends in a collective agreement
//! ([`MpiCtx::agree`]), so a failure anywhere makes every rank stop at the
//! same point with the same error and nothing is committed.

pub mod budget;
mod exchange;
mod execute;
mod job;

pub use crate::commands::monitor::Monitor;
pub use crate::report::summary::Report;
pub use job::{from_root, prepare_job, Job};

use std::path::PathBuf;
use std::time::Instant;

use crate::cli::config::ConvertConfig;
use crate::error::Error;
use crate::mpi::ctx::MpiCtx;
use crate::mpi::topology::Topology;
use crate::pipeline::plan::Plan;
use crate::report::events::{Event, Phase};
use crate::report::progress::RankStats;
use crate::report::summary::RankFigures;
use crate::store::commit;
use crate::store::journal;
use crate::store::opening::{self, Opened};
use crate::store::state::StoreState;
use crate::system::stage::guarded;

/// Converts netCDF files into a Zarr store (or appends them to one) on all
/// ranks of `ctx`.
///
/// # Errors
/// Any stage's error; when several ranks fail, [`Error::Ranks`] with each
/// rank's message. The store is then left without root metadata (or, for an
/// append, with its previous metadata).
#[allow(clippy::too_many_lines)] // one stage after the other, each a few lines
pub fn convert(
    ctx: &MpiCtx,
    cfg: &ConvertConfig,
    topo: &Topology,
    monitor: &mut Monitor,
) -> Result<Report, Error> {
    let t0 = Instant::now();
    cfg.validate()?;
    crate::system::signals::install();
    monitor.phase(Phase::Scan);
    reach_store(ctx, cfg)?;
    // Rank 0 locks an existing store before its state is read.
    let mut lock: Option<crate::store::lock::Lock> = None;
    // (A payload that is never empty: an empty one means "rank 0 failed".)
    let _: bool = from_root(ctx, || {
        lock = opening::lock_existing(cfg)?;
        Ok(true)
    })?;
    let job = prepare_job(ctx, cfg, monitor)?;
    let ds = &job.ds;
    monitor.phase(Phase::Plan);
    crate::system::stage::enter("plan");
    let plan = match &job.arrays {
        Some(arrays) => Plan::renumber(arrays.clone(), ctx.size()),
        None => Plan::new(ds, cfg, ctx.size())?,
    };
    let (workers, topology) = workers(ctx, cfg, topo, &plan)?;
    if ctx.is_root() {
        if let Some(w) = topology.warning() {
            crate::say!("{w}");
            monitor.warning(w.trim_start_matches("zarrforge: warning: "));
        }
    }
    let threads = workers.threads;
    let format = job.arrays.as_ref().map_or(cfg.format, |_| {
        store_format(&cfg.output).unwrap_or(cfg.format)
    });
    // An append keeps the store's way unless told otherwise.
    let attrs_json = cfg.attrs_json.or(job.attrs_json).unwrap_or_default();
    let print = plan_print(&job, &plan, format);

    let (opened, plan) = open(ctx, cfg, &job, plan, &print, format, &mut lock)?;

    let nothing_new = opened.complete
        || (job.append_from.is_some()
            && plan.total_units == 0
            && ds.concat.as_ref().map(|c| c.len) == job.append_from);
    let (plan, x) = exchange_plan(ctx, cfg, &job, plan, &workers, &opened)?;
    if ctx.is_root() {
        planned(monitor, cfg, &job, &plan, &x, &opened);
    }
    let run = execute::Run {
        ctx,
        cfg,
        job: &job,
        plan: &plan,
        x: &x,
        format,
        workers: &workers,
        opened: &opened,
    };
    crate::system::stage::enter("write");
    monitor.phase(Phase::Write);
    let stats = if opened.complete {
        Ok(RankStats::default())
    } else {
        guarded(|| execute::write_units(run, monitor))
    };
    // Every rank, whatever happened on it: rank 0 shows the job's progress
    // until the last rank is done.
    monitor.wait_for_ranks(ctx);
    let mut stats = ctx.agree(stats)?;
    let exchanged = exchange_phase(run, &mut stats, monitor)?;
    stats.sharded = plan.arrays.iter().any(|a| a.shards.is_some());

    crate::system::stage::enter("commit");
    monitor.phase(Phase::Commit);
    let committed = if ctx.is_root() {
        guarded(|| {
            let mut state = StoreState::new(ds, &plan.arrays, format, attrs_json);
            state.print = Some(print.clone());
            commit_store(cfg, ds, &plan, &state, nothing_new, lock.as_ref())
        })
    } else {
        Ok(())
    };
    ctx.agree(committed)?;
    drop(lock);
    monitor.finish();

    let (skipped, warnings) = notes(ds, cfg, attrs_json);
    let per_rank = gather_figures(ctx, cfg, &stats);
    Ok(Report {
        peak_rss_mib: per_rank.iter().map(|r| r.peak_rss_mib).fold(0.0, f64::max),
        per_rank,
        phases: monitor.phases(),
        output: cfg.output.clone(),
        ranks: ctx.size(),
        threads,
        arrays: plan.arrays.len(),
        units: ctx.sum_u64(stats.units),
        units_resumed: opened.resumed,
        total_units: plan.total_units,
        already_complete: opened.complete,
        bytes_read: ctx.sum_u64(stats.bytes_read),
        bytes_written: ctx.sum_u64(stats.bytes_written),
        seconds: ctx.max_f64(t0.elapsed().as_secs_f64()),
        skipped,
        warnings,
        files: job.files,
        skipped_files: job.skipped_files.clone(),
        scan_seconds: job.scan_seconds,
        appended_from: job.append_from,
        concat_len: ds.concat.as_ref().map(|c| c.len),
        attrs_json,
        rank0: stats,
        exchange: exchanged,
        topology,
        environment: crate::system::environment::RunEnvironment::detect(&cfg.output),
    })
}

/// Every rank reaches the store with its own client (credentials and
/// endpoints may differ between nodes) before anything is read.
fn reach_store(ctx: &MpiCtx, cfg: &ConvertConfig) -> Result<(), Error> {
    let checked = guarded(|| crate::store::storage::check(&cfg.output).map_err(Error::from));
    ctx.agree(checked)
}

/// Rank 0 prepares (or reopens) the store, takes its lock (kept in `lock`)
/// and reads the journal; nobody writes before it is ready. A resumed run's
/// plan is partitioned again over its unfinished units.
fn open(
    ctx: &MpiCtx,
    cfg: &ConvertConfig,
    job: &Job,
    plan: Plan,
    print: &journal::PlanPrint,
    format: crate::cli::config::ZarrFormat,
    lock: &mut Option<crate::store::lock::Lock>,
) -> Result<(Opened, Plan), Error> {
    let request = opening::Request {
        resume: cfg.resume,
        overwrite: cfg.overwrite,
        append: job.append_from.is_some(),
        nothing_new: job.append_from.is_some() && job.ds.files.is_empty(),
    };
    let inputs: Vec<PathBuf> = job.ds.files.iter().map(|f| f.path.clone()).collect();
    let opened: Opened = from_root(ctx, || {
        let (l, o) = opening::open_store(cfg, request, &inputs, print, format, lock.take())?;
        *lock = l;
        Ok(o)
    })?;
    let plan = if opened.resumed > 0 {
        Plan::partition_skipping(plan.arrays, ctx.size(), |seq| {
            journal::is_done(&opened.done, seq)
        })
    } else {
        plan
    };
    Ok((opened, plan))
}

/// After every rank wrote its direct units: the rounds of the exchange
/// path, when there are any; their counters go into `stats`.
fn exchange_phase(
    run: execute::Run<'_>,
    stats: &mut RankStats,
    monitor: &mut Monitor,
) -> Result<Option<crate::report::summary::ExchangeReport>, Error> {
    if run.x.rounds.is_empty() || run.opened.complete {
        return Ok(None);
    }
    crate::system::stage::enter("exchange");
    monitor.phase(Phase::Exchange);
    // Raw chunk reads bypass HDF5's caches; reads that re-encode time
    // values use them.
    crate::pipeline::read::hdf5::set_chunk_cache_bytes(
        usize::try_from(budget::hdf5_cache_per_dataset(budget::EXCHANGE_HDF5_BYTES)).unwrap_or(0),
    );
    let r = guarded(|| exchange::write_rounds(run, monitor));
    monitor.wait_for_ranks(run.ctx);
    let r = run.ctx.agree(r)?;
    let report = exchange_report(run.ctx, run.plan, run.x, &r);
    stats.absorb(&r);
    Ok(Some(report))
}

/// The exchange plan of the run (the same on every rank) and the plan of
/// the direct path, partitioned again over the units that path writes.
fn exchange_plan(
    ctx: &MpiCtx,
    cfg: &ConvertConfig,
    job: &Job,
    plan: Plan,
    workers: &execute::Workers,
    opened: &Opened,
) -> Result<(Plan, crate::pipeline::exchange::Exchange), Error> {
    paths(cfg, job, plan, ctx.size(), workers.threads, &opened.done)
}

/// The paths of `plan` on `ranks` ranks of `threads` encoder threads, for
/// the units not `done` (journal bits): the exchange plan, and the plan of
/// the direct path partitioned again over the units that path writes.
/// Pure: `plan` shows what `convert` will do.
///
/// # Errors
/// [`crate::cli::error::ConfigError::MemoryTooSmall`] when one unit does
/// not fit the exchange's round budget.
pub fn paths(
    cfg: &ConvertConfig,
    job: &Job,
    plan: Plan,
    ranks: usize,
    threads: usize,
    done: &[u8],
) -> Result<(Plan, crate::pipeline::exchange::Exchange), Error> {
    use crate::pipeline::exchange::{routes, Exchange};
    let budget = execute::memory_budget(cfg, &plan, threads)?;
    let routes = routes(
        &job.ds.sources,
        &plan,
        cfg.exchange,
        budget.chunk_cache,
        budget::STEP_BYTES,
    );
    let largest = execute::largest_unit(&plan);
    let sizing = budget::exchange_sizing(cfg.max_memory, ranks, threads, largest.0);
    let done = |seq: u64| journal::is_done(done, seq);
    let x = Exchange::new(
        &job.ds.sources,
        &plan,
        routes,
        ranks,
        sizing,
        job.append_from,
        done,
    )
    .map_err(
        |(var, unit)| crate::cli::error::ConfigError::MemoryTooSmall {
            have_mib: cfg.max_memory.unwrap_or(budget::EXCHANGE_DEFAULT_BYTES) >> 20,
            need_mib: (budget::exchange_bound(
                crate::pipeline::exchange::Sizing {
                    round_bytes: unit,
                    step_bytes: 1 << 20,
                },
                ranks,
                threads,
                unit,
            ) + unit)
                .div_ceil(1 << 20),
            var,
            unit_mib: unit.div_ceil(1 << 20),
        },
    )?;
    if !x.any() {
        return Ok((plan, x));
    }
    let firsts: Vec<(u64, bool)> = plan
        .arrays
        .iter()
        .enumerate()
        .map(|(i, a)| (a.first_unit + a.num_units(), x.is_exchanged(i)))
        .collect();
    let exchanged = move |seq: u64| {
        let i = firsts.partition_point(|(end, _)| *end <= seq);
        firsts.get(i).is_some_and(|(_, e)| *e)
    };
    let plan = Plan::partition_skipping(plan.arrays, ranks, |seq| done(seq) || exchanged(seq));
    Ok((plan, x))
}

/// The most a rank holds on each path: the direct path's bound
/// ([`budget::Budget::bound`]) and the exchange's (its largest round and
/// step on that rank, from `traffic`), bytes.
///
/// # Errors
/// [`crate::cli::error::ConfigError::MemoryTooSmall`] from the direct
/// path's budget.
pub fn peak_memory(
    cfg: &ConvertConfig,
    plan: &Plan,
    threads: usize,
    traffic: &crate::pipeline::exchange::Traffic,
    rank: usize,
) -> Result<(u64, u64), Error> {
    let b = execute::memory_budget(cfg, plan, threads)?;
    let largest = execute::largest_unit(plan).0;
    let direct = b.bound(largest);
    let encoding = (threads.max(1) as u64 * 2).saturating_mul(largest);
    let exchange = traffic.round_peak.get(rank).map_or(0, |r| {
        budget::BASELINE_BYTES
            + budget::EXCHANGE_HDF5_BYTES
            + encoding
            + r
            + traffic.step_peak.get(rank).copied().unwrap_or(0)
    });
    Ok((direct, exchange))
}

/// The exchange's figures over all ranks (collective).
fn exchange_report(
    ctx: &MpiCtx,
    plan: &Plan,
    x: &crate::pipeline::exchange::Exchange,
    mine: &RankStats,
) -> crate::report::summary::ExchangeReport {
    let written: u64 = x
        .rounds
        .iter()
        .map(|r| {
            let a = &plan.arrays[r.array];
            let me = usize::try_from(ctx.rank()).unwrap_or(0);
            r.units_of(me)
                .map(|k| a.unit_bytes(&a.unit_indices(k)))
                .sum::<u64>()
        })
        .sum();
    let imbalance = |v: u64| {
        let total = ctx.sum_u64(v);
        #[allow(clippy::cast_precision_loss)]
        let max = ctx.max_f64(v as f64);
        if total == 0 {
            1.0
        } else {
            #[allow(clippy::cast_precision_loss)]
            let mean = total as f64 / ctx.size() as f64;
            max / mean
        }
    };
    crate::report::summary::ExchangeReport {
        arrays: exchanged_paths(plan, x),
        rounds: x.rounds.len(),
        passes: x.passes(),
        bytes_decoded: ctx.sum_u64(mine.bytes_read),
        bytes_sent: ctx.sum_u64(mine.bytes_sent),
        decode_imbalance: imbalance(mine.bytes_read),
        write_imbalance: imbalance(written),
    }
}

/// The paths of the arrays that take the exchange path.
fn exchanged_paths(plan: &Plan, x: &crate::pipeline::exchange::Exchange) -> Vec<String> {
    plan.arrays
        .iter()
        .enumerate()
        .filter(|(i, _)| x.is_exchanged(*i))
        .map(|(_, a)| a.path.clone())
        .collect()
}

/// Rank 0 announces the plan: what this run writes, and the totals the
/// job's progress counts against.
fn planned(
    monitor: &mut Monitor,
    cfg: &ConvertConfig,
    job: &Job,
    plan: &Plan,
    x: &crate::pipeline::exchange::Exchange,
    opened: &Opened,
) {
    let (units, bytes) = if opened.complete {
        (0, 0)
    } else {
        totals(plan, opened.resumed, |seq| {
            journal::is_done(&opened.done, seq)
        })
    };
    monitor.set_totals(units, bytes);
    let mode = if opened.complete {
        "complete"
    } else if opened.resumed > 0 {
        "resume"
    } else if job.append_from.is_some() {
        "append"
    } else if cfg.overwrite {
        "overwrite"
    } else {
        "create"
    };
    monitor.event(&Event::Planned {
        files: job.ds.files.len(),
        arrays: plan.arrays.len(),
        units_total: plan.total_units,
        units_resumed: opened.resumed,
        units_to_write: units,
        bytes_to_write: bytes,
        exchange_arrays: exchanged_paths(plan, x),
        mode: mode.to_string(),
    });
}

/// Every rank's figures, gathered on rank 0 (elsewhere empty).
fn gather_figures(ctx: &MpiCtx, cfg: &ConvertConfig, s: &RankStats) -> Vec<RankFigures> {
    let (puts, put_bytes) = if crate::store::storage::is_remote(&cfg.output) {
        crate::store::storage::open(&cfg.output)
            .ok()
            .and_then(|st| st.uploaded())
            .unwrap_or((0, 0))
    } else {
        (0, 0)
    };
    let mine = RankFigures {
        puts,
        put_bytes,
        rank: ctx.rank(),
        host: crate::system::environment::hostname(),
        units: s.units,
        bytes_read: s.bytes_read,
        bytes_written: s.bytes_written,
        read_s: s.read_s,
        encode_s: s.encode_s,
        write_s: s.write_s,
        wait_s: s.wait_s,
        exchange_s: s.exchange_s,
        bytes_sent: s.bytes_sent,
        busy_s: s.read_s + s.encode_s + s.write_s + s.exchange_s,
        peak_rss_mib: crate::system::heap::peak_rss_mib(),
    };
    let bytes =
        bincode::serde::encode_to_vec(&mine, bincode::config::standard()).unwrap_or_default();
    ctx.gather_bytes(bytes)
        .unwrap_or_default()
        .iter()
        .filter_map(|part| {
            bincode::serde::decode_from_slice::<RankFigures, _>(part, bincode::config::standard())
                .ok()
                .map(|(r, _)| r)
        })
        .collect()
}

/// What the run report lists besides its figures: the variables left out
/// (`--skip-unsupported`) and every warning of the way to Zarr.
fn notes(
    ds: &crate::pipeline::combine::Dataset,
    cfg: &ConvertConfig,
    attrs_json: crate::cli::config::AttrsJson,
) -> (Vec<String>, Vec<String>) {
    let skipped = ds
        .schema
        .skipped
        .iter()
        .map(|s| format!("{} ({})", s.path, s.kind))
        .collect();
    let mut warnings = ds.schema.warnings.clone();
    warnings.extend(crate::store::metadata::format_warnings(
        &ds.schema.vars(),
        cfg.format,
    ));
    warnings.extend(crate::store::metadata::attrs_json_warnings(
        &ds.schema.root,
        attrs_json,
    ));
    (skipped, warnings)
}

/// The rank's encoder threads (pinned inside its cpuset when it is bound),
/// its memory budget (which also sizes HDF5's chunk cache), and the job's
/// topology; rank 0 warns of oversubscription.
fn workers(
    ctx: &MpiCtx,
    cfg: &ConvertConfig,
    topo: &Topology,
    plan: &Plan,
) -> Result<(execute::Workers, crate::mpi::topology::JobTopology), Error> {
    let threads = cfg
        .threads
        .unwrap_or_else(|| topo.encoder_threads(ctx.ranks_on_node()))
        .max(1);
    // Encoder threads of a bound rank are pinned inside its cpuset.
    let pins: Vec<u32> = (0..threads).filter_map(|i| topo.thread_pu(i)).collect();
    let topology = ctx.job_topology(topo, threads, !pins.is_empty());
    let budget = execute::memory_budget(cfg, plan, threads)?;
    if crate::store::storage::is_remote(&cfg.output) {
        crate::store::storage::open(&cfg.output)?.set_inflight_bytes(
            cfg.max_memory
                .map_or(crate::store::storage::INFLIGHT_DEFAULT_BYTES, |m| {
                    (m / 8).clamp(16 << 20, 1 << 30)
                }),
        );
    }
    // Each open dataset gets its own HDF5 chunk cache: the budget's share.
    crate::pipeline::read::hdf5::set_chunk_cache_bytes(
        usize::try_from(budget::hdf5_cache_per_dataset(budget.hdf5_cache)).unwrap_or(0),
    );
    let workers = execute::Workers {
        threads,
        pins,
        budget,
    };
    Ok((workers, topology))
}

/// On rank 0 once every rank has written: the metadata commit (in the
/// format and with the attribute encoding of `state`) with the store's new
/// state (nothing when there is nothing new), then the journal removed
/// unless kept.
fn commit_store(
    cfg: &ConvertConfig,
    ds: &crate::pipeline::combine::Dataset,
    plan: &Plan,
    state: &StoreState,
    nothing_new: bool,
    lock: Option<&crate::store::lock::Lock>,
) -> Result<(), Error> {
    // Only a --break-lock of another run can take a live run's lock: this
    // run then stops before its commit rather than commit over that run.
    if let Some(l) = lock {
        l.confirm(&cfg.output)?;
    }
    if !nothing_new {
        let bytes = state.to_bytes(&cfg.output)?;
        commit::commit(
            &cfg.output,
            &ds.schema,
            plan,
            state.format,
            state.attrs_json,
            &bytes,
        )?;
    }
    if !cfg.keep_journal {
        journal::remove(&cfg.output)?;
    }
    Ok(())
}

/// The print of a plan: what must not change between a run and its resume.
fn plan_print(
    job: &Job,
    plan: &Plan,
    format: crate::cli::config::ZarrFormat,
) -> journal::PlanPrint {
    journal::PlanPrint {
        inputs: job
            .ds
            .files
            .iter()
            .map(|f| (f.canonical.clone(), f.size, f.mtime_ns))
            .collect(),
        arrays: plan
            .arrays
            .iter()
            .map(|a| {
                format!(
                    "{} {} shape {:?} chunks {:?} shards {:?} codec {} units {:?}+{:?}",
                    a.path,
                    a.dtype.v3_name(),
                    a.shape,
                    a.chunks,
                    a.shards,
                    a.codec,
                    a.lo,
                    a.grid
                )
            })
            .collect(),
        format: format!("{format:?}"),
        append_from: job.append_from,
        total_units: plan.total_units,
    }
}

/// The format of an existing store, from its root document.
fn store_format(path: &std::path::Path) -> Option<crate::cli::config::ZarrFormat> {
    use crate::cli::config::ZarrFormat;
    let s = crate::store::storage::open(path).ok()?;
    if s.exists("zarr.json").ok()? {
        Some(ZarrFormat::V3)
    } else if s.exists(".zgroup").ok()? {
        Some(ZarrFormat::V2)
    } else {
        None
    }
}

/// `zarrforge convert`: converts, prints the warnings and the summary
/// (rank 0), writes the `--report` and the `--events`, and verifies when
/// asked.
///
/// # Errors
/// The conversion's or the verification's error.
pub fn command(ctx: &MpiCtx, args: &crate::cli::args::ConvertArgs) -> Result<(), Error> {
    let t0 = Instant::now();
    let mut monitor = Monitor::for_command(ctx, &args.progress)?;
    let cfg = args.to_config();
    let nodes = ctx.nodes();
    monitor.event(&Event::Started {
        command: "convert".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        output: cfg.as_ref().map_or_else(
            |_| {
                args.output
                    .as_ref()
                    .map(|o| o.display().to_string())
                    .unwrap_or_default()
            },
            |c| c.output.display().to_string(),
        ),
        inputs: cfg
            .as_ref()
            .map_or_else(|_| args.input.inputs.clone(), |c| c.inputs.clone()),
        ranks: ctx.size(),
        nodes,
    });
    let result = cfg
        .map_err(Error::from)
        .and_then(|cfg| run_command(ctx, args, &cfg, &mut monitor, t0));
    if let Err(e) = &result {
        monitor.finish();
        if ctx.is_root() {
            failed(&mut monitor, e, args.report.as_deref());
        }
    }
    result
}

/// Converts, reports and verifies (see [`command`]).
fn run_command(
    ctx: &MpiCtx,
    args: &crate::cli::args::ConvertArgs,
    cfg: &ConvertConfig,
    monitor: &mut Monitor,
    t0: Instant,
) -> Result<(), Error> {
    let topo = Topology::detect();
    let report = convert(ctx, cfg, &topo, monitor)?;
    if ctx.is_root() {
        for s in &report.skipped {
            crate::say!("zarrforge: warning: skipped unsupported variable {s}");
            monitor.warning(&format!("skipped unsupported variable {s}"));
        }
        crate::report::console::print_warnings(&report.warnings);
        for w in &report.warnings {
            monitor.warning(w);
        }
        if let Some(path) = &args.report {
            let mut value = serde_json::to_value(&report).unwrap_or_default();
            if let Some(m) = value.as_object_mut() {
                m.insert("status".into(), "complete".into());
                m.insert("exit_status".into(), 0.into());
            }
            super::write_report(path, &serde_json::to_vec_pretty(&value).unwrap_or_default())?;
        }
        crate::say!("{}", report.summary());
    }
    if cfg.verify {
        monitor.phase(Phase::Verify);
        // The store's way of writing NaN and infinite attributes (an
        // append may have taken it from the store).
        let mut cfg = cfg.clone();
        cfg.attrs_json = Some(report.attrs_json);
        let v = super::verify::verify(ctx, &cfg, monitor)?;
        monitor.finish();
        monitor.event(&super::verify::verified(&v));
        let text = super::verify::Text::beside(&args.progress);
        super::verify::finish(ctx, &v, None, text)?;
    }
    monitor.event(&Event::Committed {
        output: report.output.display().to_string(),
        arrays: report.arrays,
        units_written: report.units,
        units_resumed: report.units_resumed,
        bytes_read: report.bytes_read,
        bytes_written: report.bytes_written,
        seconds: (t0.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
    });
    Ok(())
}

/// Rank 0's account of a failed run: one event per failing rank, the
/// `failed` event, and the `--report` with the status. A launcher may not
/// pass the ranks' exit status on (`mpirun` stopped by SIGTERM exits 1
/// while the ranks exit 75); a job script reads the report or the events.
fn failed(monitor: &mut Monitor, e: &Error, report: Option<&std::path::Path>) {
    monitor.failed(e);
    if let Some(path) = report {
        let msg = crate::report::console::message(e);
        crate::report::console::failure_report(path, &msg, e.exit_status(), e.is_resumable());
    }
}

/// The units of `plan` not `done` and their uncompressed bytes (exact up
/// to a few million units; beyond, the bytes of finished units are
/// estimated from their share of the units).
fn totals(plan: &Plan, resumed: u64, done: impl Fn(u64) -> bool) -> (u64, u64) {
    const EXACT: u64 = 4 << 20;
    let units = plan.total_units.saturating_sub(resumed);
    let mut bytes = 0u64;
    for a in &plan.arrays {
        let us = a.unit_shape();
        // The region the units cover, clipped to the array.
        let covered =
            a.lo.iter()
                .zip(&a.grid)
                .zip(us)
                .zip(&a.shape)
                .fold(1u64, |acc, (((lo, g), s), n)| {
                    let from = lo.saturating_mul(*s).min(*n);
                    let to = (lo + g).saturating_mul(*s).min(*n);
                    acc.saturating_mul(to - from)
                })
                .saturating_mul(a.dtype.size() as u64);
        bytes = bytes.saturating_add(covered);
        if resumed > 0 && plan.total_units <= EXACT {
            for k in 0..a.num_units() {
                if done(a.first_unit + k) {
                    bytes = bytes.saturating_sub(a.unit_bytes(&a.unit_indices(k)));
                }
            }
        }
    }
    if resumed > 0 && plan.total_units > EXACT {
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss
        )]
        {
            bytes = (bytes as f64 * units as f64 / plan.total_units.max(1) as f64) as u64;
        }
    }
    (units, bytes)
}
