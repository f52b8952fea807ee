//! The `convert` pipeline: schema → plan → read → encode/write → commit.
//!
//! Every stage that can fail on one rank ends in a collective agreement
//! ([`MpiCtx::agree`]), so a failure anywhere makes every rank stop at the
//! same point with the same error and nothing is committed.
//!
//! The stages live beside this file: `job` (scan and combine), `keepbits`
//! (the bits of `--keepbits`, found from the data for `auto`), `planning`
//! (the paths of the plan), `execute` (the direct path) and `exchange` (the
//! exchange path); `command` is `zarrforge convert` around the pipeline.

pub mod budget;
mod command;
mod exchange;
mod execute;
mod job;
pub mod keepbits;
mod planning;
mod references;
mod sharing;
mod store_commit;
#[cfg(feature = "icechunk")]
mod versions;
#[cfg(not(feature = "icechunk"))]
#[path = "versions_off.rs"]
mod versions;

pub use crate::commands::monitor::Monitor;
pub use crate::report::summary::{IcechunkReport, Report};
pub use command::command;
pub use job::{from_root, prepare_job, Job};
pub use planning::{paths, peak_memory};

use std::path::PathBuf;
use std::time::Instant;

use crate::cli::config::ConvertConfig;
use crate::error::Error;
use crate::mpi::ctx::MpiCtx;
use crate::mpi::topology::Topology;
use crate::pipeline::plan::Plan;
use crate::report::events::Phase;
use crate::report::gather;
use crate::report::progress::RankStats;
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
    let versioned = versions::register(cfg)?;
    crate::system::signals::install();
    monitor.phase(Phase::Scan);
    reach_store(ctx, cfg)?;
    // Rank 0 locks an existing store before its state is read.
    let mut lock: Option<crate::store::lock::Lock> = None;
    // (A payload that is never empty: an empty one means "rank 0 failed".)
    let _: bool = from_root(ctx, || {
        lock = versions::lock_existing(cfg)?;
        Ok(true)
    })?;
    let mut job = prepare_job(ctx, cfg, monitor)?;
    let rounded = keepbits::decide(ctx, cfg, &mut job)?;
    let ds = &job.ds;
    monitor.phase(Phase::Plan);
    crate::system::stage::enter("plan");
    let plan = keepbits::rounded(
        match &job.arrays {
            Some(arrays) => Plan::renumber(arrays.clone(), ctx.size()),
            None => Plan::new(ds, cfg, ctx.size())?,
        },
        ds,
    );
    let (workers, topology) = execute::workers(ctx, cfg, topo, &plan)?;
    if ctx.is_root() {
        if let Some(w) = topology.warning() {
            crate::say!("{w}");
            monitor.warning(w.trim_start_matches("zarrforge: warning: "));
        }
    }
    let threads = workers.threads;
    let format = job.arrays.as_ref().map_or(cfg.format, |_| {
        crate::store::state::committed_format(&cfg.output).unwrap_or(cfg.format)
    });
    // An append keeps the store's way unless told otherwise.
    let attrs_json = cfg.attrs_json.or(job.attrs_json).unwrap_or_default();
    let print = journal::PlanPrint::new(
        ds,
        &plan,
        format,
        job.append_from.or(job.region.as_ref().map(|r| r.start)),
    );

    let (opened, plan) = open(ctx, cfg, &job, plan, &print, format, &mut lock)?;

    let nothing_new = opened.complete
        || (job.append_from.is_some()
            && plan.total_units == 0
            && ds.concat.as_ref().map(|c| c.len) == job.append_from);
    let (plan, x) = planning::exchange_plan(ctx, cfg, &job, plan, &workers, &opened)?;
    if ctx.is_root() {
        planning::planned(monitor, cfg, &job, &plan, &x, &opened);
    }
    let mut state = StoreState::new(ds, &plan.arrays, format, attrs_json);
    state.print = Some(print.clone());
    state.regions.clone_from(&job.regions);
    if versioned && !nothing_new {
        versions::fork(ctx, &cfg.output, opened.resumed > 0, || {
            let docs = commit::documents(&cfg.output, &ds.schema, &plan, format, attrs_json)?;
            Ok((docs, state.to_bytes(&cfg.output)?))
        })?;
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
    let merged = if versioned && !nothing_new {
        Some(versions::merge(ctx, &cfg.output)?)
    } else {
        None
    };

    crate::system::stage::enter("commit");
    monitor.phase(Phase::Commit);
    let committed = if ctx.is_root() {
        guarded(|| {
            let inputs: Vec<PathBuf> = ds.files.iter().map(|f| f.path.clone()).collect();
            let merged = merged.as_ref();
            let append = job.append_from.is_some();
            let region = job.region.as_ref().map(ToString::to_string);
            let commit = |()| match merged {
                Some(m) => {
                    versions::commit(cfg, &inputs, (&opened.run, region.as_deref()), m).map(Some)
                }
                None => references::consolidate(cfg, append, nothing_new).map(|()| None),
            };
            let ic = store_commit::commit_store(
                cfg,
                ds,
                &plan,
                &state,
                nothing_new,
                lock.as_ref(),
                commit,
            )?;
            references::export(cfg)?;
            Ok::<_, Error>(ic)
        })
    } else {
        Ok(None)
    };
    let icechunk = ctx.agree(committed)?;
    drop(lock);
    monitor.finish();

    let (skipped, warnings) = gather::notes(ds, cfg.format, attrs_json);
    let per_rank = gather::rank_figures(ctx, &cfg.output, &stats);
    let references = ctx.sum_u64(stats.references);
    Ok(Report {
        peak_rss_mib: per_rank.iter().map(|r| r.peak_rss_mib).fold(0.0, f64::max),
        per_rank,
        phases: monitor.phases(),
        output: references::product(cfg),
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
        region: job.region.as_ref().map(ToString::to_string),
        missing_cells: ds.grid.as_ref().map_or_else(Vec::new, |g| {
            g.missing_lines(ds.concat.as_ref().map(|c| c.dim.as_str()))
        }),
        keepbits: rounded,
        concat_len: ds.concat.as_ref().map(|c| c.len),
        attrs_json,
        rank0: stats,
        exchange: exchanged,
        topology,
        environment: crate::system::environment::RunEnvironment::detect(&cfg.output),
        icechunk,
        references,
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
        append: job.append_from.is_some() || job.region.is_some(),
        nothing_new: job.append_from.is_some() && job.ds.files.is_empty(),
    };
    let inputs: Vec<PathBuf> = job.ds.files.iter().map(|f| f.path.clone()).collect();
    let opened: Opened = from_root(ctx, || {
        let split = job.ds.concat.as_ref().map(|c| c.dim.as_str());
        let (l, o) =
            versions::open_store(cfg, request, &inputs, print, format, split, lock.take())?;
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
    let report = gather::exchange_report(run.ctx, run.plan, run.x, &r);
    stats.absorb(&r);
    Ok(Some(report))
}
