//! The paths of a plan once the store is open: which arrays take the
//! exchange between ranks and which the direct path, the memory a rank
//! holds on each, and rank 0's announcement of what the run writes.

use super::budget;
use super::execute::{self, Workers};
use super::Job;
use crate::cli::config::ConvertConfig;
use crate::commands::monitor::Monitor;
use crate::error::Error;
use crate::mpi::ctx::MpiCtx;
use crate::pipeline::exchange::{routes, Exchange, Sizing, Traffic};
use crate::pipeline::plan::Plan;
use crate::report::events::Event;
use crate::store::journal;
use crate::store::opening::Opened;

/// The exchange plan of the run (the same on every rank) and the plan of
/// the direct path, partitioned again over the units that path writes.
pub(super) fn exchange_plan(
    ctx: &MpiCtx,
    cfg: &ConvertConfig,
    job: &Job,
    plan: Plan,
    workers: &Workers,
    opened: &Opened,
) -> Result<(Plan, Exchange), Error> {
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
) -> Result<(Plan, Exchange), Error> {
    let budget = execute::memory_budget(cfg, &plan, threads)?;
    // A region's units are read back and changed by their owner: the
    // direct path.
    let mode = if job.region.is_some() {
        crate::cli::config::ExchangeMode::Never
    } else {
        cfg.exchange
    };
    let routes = routes(
        &job.ds.sources,
        &plan,
        mode,
        budget.chunk_cache,
        budget::STEP_BYTES,
    );
    let largest = execute::largest_unit(&plan);
    let sizing = budget::exchange_sizing(cfg.max_memory, ranks, threads, largest.0);
    let done = |seq: u64| journal::is_done(done, seq);
    let x = Exchange::new(
        &job.ds.sources,
        &plan,
        routes.clone(),
        ranks,
        sizing,
        job.append_from,
        done,
    )
    .map_err(
        |(var, unit)| crate::cli::error::ConfigError::MemoryTooSmall {
            have_mib: cfg.max_memory.unwrap_or(budget::EXCHANGE_DEFAULT_BYTES) >> 20,
            need_mib: (budget::exchange_bound(
                Sizing {
                    round_bytes: unit,
                    step_bytes: 1 << 20,
                    overlap: false,
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
    // Rounds half as large let a rank assemble one while the one before
    // is encoded and written, within the same memory; taken when no source
    // block is then decoded more often.
    let x = if x.rounds.len() > 1 {
        match Exchange::new(
            &job.ds.sources,
            &plan,
            routes,
            ranks,
            sizing.overlapped(),
            job.append_from,
            done,
        ) {
            Ok(o) if o.passes() <= x.passes() => o,
            _ => x,
        }
    } else {
        x
    };
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
/// step on that rank, from `traffic`; two rounds when they `overlap`),
/// bytes.
///
/// # Errors
/// [`crate::cli::error::ConfigError::MemoryTooSmall`] from the direct
/// path's budget.
pub fn peak_memory(
    cfg: &ConvertConfig,
    plan: &Plan,
    threads: usize,
    traffic: &Traffic,
    overlap: bool,
    rank: usize,
) -> Result<(u64, u64), Error> {
    let b = execute::memory_budget(cfg, plan, threads)?;
    let largest = execute::largest_unit(plan).0;
    let direct = b.bound(largest);
    let encoding = (threads.max(1) as u64 * 2).saturating_mul(largest);
    let rounds = if overlap { 2 } else { 1 };
    let exchange = traffic.round_peak.get(rank).map_or(0, |r| {
        budget::BASELINE_BYTES
            + budget::EXCHANGE_HDF5_BYTES
            + encoding
            + r * rounds
            + traffic.step_peak.get(rank).copied().unwrap_or(0)
    });
    Ok((direct, exchange))
}

/// Rank 0 announces the plan: what this run writes, and the totals the
/// job's progress counts against.
pub(super) fn planned(
    monitor: &mut Monitor,
    cfg: &ConvertConfig,
    job: &Job,
    plan: &Plan,
    x: &Exchange,
    opened: &Opened,
) {
    let (units, bytes) = if opened.complete {
        (0, 0)
    } else {
        plan.remaining(opened.resumed, |seq| journal::is_done(&opened.done, seq))
    };
    monitor.set_totals(units, bytes);
    for w in &job.warnings {
        crate::say!("zarrforge: warning: {w}");
        monitor.warning(w);
    }
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
        exchange_arrays: x.exchanged_paths(plan),
        mode: mode.to_string(),
    });
}
