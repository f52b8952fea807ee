//! What the run report gathers once every rank is done: the figures of
//! every rank and of the exchange over all ranks (collective), and what
//! the report lists besides its figures.

use std::path::Path;

use crate::cli::config::{AttrsJson, ZarrFormat};
use crate::mpi::ctx::MpiCtx;
use crate::pipeline::combine::Dataset;
use crate::pipeline::exchange::Exchange;
use crate::pipeline::plan::Plan;
use crate::report::progress::RankStats;
use crate::report::summary::{ExchangeReport, RankFigures};

/// Every rank's figures (`output`: the store), gathered on rank 0
/// (elsewhere empty).
pub fn rank_figures(ctx: &MpiCtx, output: &Path, s: &RankStats) -> Vec<RankFigures> {
    let (puts, put_bytes) = if crate::store::storage::is_remote(output) {
        crate::store::storage::open(output)
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
        references: s.references,
        host: crate::system::environment::hostname(),
        units: s.units,
        units_taken: s.units_taken,
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

/// The exchange's figures over all ranks (collective).
pub fn exchange_report(
    ctx: &MpiCtx,
    plan: &Plan,
    x: &Exchange,
    mine: &RankStats,
) -> ExchangeReport {
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
    ExchangeReport {
        arrays: x.exchanged_paths(plan),
        rounds: x.rounds.len(),
        overlapped: x.sizing.overlap,
        passes: x.passes(),
        bytes_decoded: ctx.sum_u64(mine.bytes_read),
        bytes_sent: ctx.sum_u64(mine.bytes_sent),
        decode_imbalance: imbalance(mine.bytes_read),
        write_imbalance: imbalance(written),
    }
}

/// What the run report lists besides its figures: the variables left out
/// (`--skip-unsupported`) and every warning of the way to Zarr (in
/// `format`, with attributes written as `attrs_json` says).
pub fn notes(
    ds: &Dataset,
    format: ZarrFormat,
    attrs_json: AttrsJson,
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
        format,
    ));
    warnings.extend(crate::store::metadata::attrs_json_warnings(
        &ds.schema.root,
        attrs_json,
    ));
    (skipped, warnings)
}
