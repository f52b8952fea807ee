//! `zarrforge verify`: compares a store with its sources, independently of
//! the converter.
//!
//! Nothing of the conversion is reused: no scan or combination of the
//! inputs, no reader, no metadata or encoding code, no saved state. The two
//! sides are read the way their own readers read them:
//!
//! * the sources through netCDF-C (`source`): structure, attributes with
//!   their netCDF types, raw values;
//! * the store as a Zarr reader does (`store`): the nodes its own
//!   `zarr.json` (v3) or `.zgroup`/`.zarray`/`.zattrs` (v2) documents
//!   describe, attributes parsed from the JSON (`json`: bare `NaN` tokens
//!   accepted; with `--attrs-json strict`, every document, the consolidated
//!   metadata included, must be strict JSON and the strings `"NaN"`,
//!   `"Infinity"`, `"-Infinity"` stand for those floats), arrays opened with
//!   zarrs from their documents and decoded region by region.
//!
//! `expect` then matches every source variable with the store array at
//! the same path (after the renames of the options), placing each file's
//! records along the concatenation dimension where the store's coordinate
//! holds the file's coordinate values, and lists every difference of
//! structure (missing or extra arrays and groups, dimensions, shapes, data
//! types) and of attributes, types included (a float must be a JSON number,
//! the fill value must be what readers decode as the source's). Every rank
//! then takes its share of the store's chunks and compares each element
//! (`values`) twice: raw (bitwise, two NaNs equal; time values as
//! instants when the units differ) and decoded as CF readers decode
//! (masked where the value is the `_FillValue` or a `missing_value` that
//! each side declares, then unpacked with `scale_factor` and `add_offset`),
//! so a wrong or dropped fill value shows even where the bytes are equal.
//!
//! A store with a new outermost dimension made from the files
//! (`--new-dim`: an ensemble's members) is checked by the same rules as
//! `convert` makes it (`members`): each file at its member's index, where
//! the store's coordinate of that dimension holds the file's value, and the
//! cells no file holds read as the fill value.
//!
//! A store rewritten in a region (`convert --region`, a backfill) is
//! checked against the old files and each backfill's (`--backfill`,
//! [`backfill`]): where a backfill's steps are also earlier files', its
//! values are the expected ones.
//!
//! An array rounded before compression (`convert --keepbits`), as its CF
//! quantization attributes and their container say (`rounding`: checked,
//! not compared with the sources), holds the sources' values rounded to
//! the recorded bits: raw and decoded comparisons are made with those, and
//! the largest errors against the sources' own values are reported.
//!
//! The stages, each in its own module: the files and their scans (`scan`,
//! `source`), the options that shaped the store (`options`), the store's
//! documents (`store`, `json`), what is expected of the store and the
//! arrays opened to check it (`plan`, `expect`, `members`, `backfill`,
//! `rounding`), each rank's share (`shares`), the comparison of the values
//! (`compare`, `values`), and the outcome (`report`); `collective` holds
//! what the ranks exchange. This module strings them together.

mod backfill;
mod collective;
mod compare;
mod expect;
mod json;
mod members;
mod options;
mod plan;
mod report;
mod rounding;
mod scan;
mod shares;
mod source;
mod store;
mod values;

use std::path::PathBuf;
use std::time::Instant;

use crate::cli::config::ConvertConfig;
use crate::commands::monitor::Monitor;
use crate::error::Error;
use crate::mpi::ctx::MpiCtx;
use crate::report::events::{Event, Phase};
use collective::{from_rank0, guarded};
use compare::{compare, totals, Tally};
pub use report::{finish, verified, RoundedArray, Text, VerifyReport};

/// Verifies `cfg.output` against the sources of `cfg` on all ranks.
///
/// The options that shaped the store are honoured: `--concat-dim`,
/// `--time-units`, and a recipe's renames, selection and attribute edits.
/// After an append (`cfg.append`), only the records of the given sources
/// are compared, with the attributes that decide how values decode.
///
/// # Errors
/// Errors reading either side (not differences: those are in the report).
pub fn verify(
    ctx: &MpiCtx,
    cfg: &ConvertConfig,
    monitor: &mut Monitor,
) -> Result<VerifyReport, Error> {
    verify_backfilled(ctx, cfg, &[], monitor)
}

/// Verifies `cfg.output` against the sources of `cfg` and the files of
/// `backfills` (paths or globs, one entry per region write, in the order
/// they were run), on all ranks: where a backfill's steps are also
/// earlier files', its values are the expected ones there.
///
/// # Errors
/// As [`verify`]; a backfill's glob that matches nothing.
pub fn verify_backfilled(
    ctx: &MpiCtx,
    cfg: &ConvertConfig,
    backfills: &[String],
    monitor: &mut Monitor,
) -> Result<VerifyReport, Error> {
    let t0 = Instant::now();
    let store = cfg.output.clone();
    #[cfg(feature = "icechunk")]
    if let Some(ic) = &cfg.icechunk {
        let r = crate::store::storage::icechunk::register(
            &store,
            crate::store::storage::icechunk::Target {
                branch: ic.branch.clone(),
                reference: ic.reference.clone(),
            },
        )?;
        // `convert --verify` reads the snapshot it committed.
        if let Some(reference) = &ic.reference {
            r.open_readonly_at(reference)?;
        }
    }
    if crate::store::storage::kerchunk::is_refs_file(&store) {
        crate::store::storage::kerchunk::register(&store)?;
    }
    let mut opts = options::options(cfg);
    type Found = (Vec<PathBuf>, Vec<usize>, bool, Vec<(String, String)>);
    let (files, counts, v3, docs): Found = from_rank0(ctx, || {
        let (files, counts) = scan::source_files(cfg, backfills)?;
        let (format, docs) = store::collect(&store)?;
        Ok((files, counts, format == store::Format::V3, docs))
    })?;
    opts.backfill = backfill::Generations::new(&counts);
    let coord_dims: Vec<String> = opts.concat_dim.iter().cloned().collect();
    let scans = scan::share_scans(ctx, &files, &coord_dims, monitor)?;
    let format = if v3 {
        store::Format::V3
    } else {
        store::Format::V2
    };
    let mut tree = store::StoreTree::new(format, &docs);
    if opts.strict {
        // A strict store holds no bare NaN/Infinity token, consolidated
        // metadata included.
        tree.problems.extend(
            docs.iter()
                .filter(|(_, text)| json::not_strict(text))
                .map(|(k, _)| {
                    format!("{k}: a bare NaN, Infinity or -Infinity: not strict JSON, which strict parsers (tensorstore's, zarrita's) refuse")
                }),
        );
    }
    let prepared = ctx.agree(guarded(|| plan::prepare(&store, &scans, &tree, &opts)))?;
    let (expected, arrays, diffs) = prepared;
    monitor.phase(Phase::Verify);
    let (units, bytes) = totals(&expected.jobs, &arrays);
    monitor.set_totals(units, bytes);
    let local = guarded(|| compare(ctx, &expected.jobs, &arrays, files.clone(), monitor));
    // Every rank, whatever happened on it: rank 0 shows the comparison's
    // progress until the last rank is done.
    monitor.wait_for_ranks(ctx);
    let tally = ctx.agree(local)?;
    let units = ctx.sum_u64(tally.units);
    let values = ctx.sum_u64(tally.values);
    let mismatches = ctx.sum_u64(tally.mismatches);
    let (first, rounded) = compare::gather(ctx, tally, &expected.jobs)?;
    Ok(VerifyReport {
        store,
        files: files.len(),
        arrays: expected.jobs.len(),
        units,
        values,
        mismatches,
        // Every rank found the same differences: every rank's outcome
        // (and exit status) is the same.
        metadata: diffs,
        first,
        rounded,
        seconds: ctx.max_f64(t0.elapsed().as_secs_f64()),
    })
}

/// `zarrforge verify`.
///
/// # Errors
/// The verification's error, or [`Error::Verify`] when it found
/// differences.
pub fn command(ctx: &MpiCtx, args: &crate::cli::args::VerifyArgs) -> Result<(), Error> {
    let mut monitor = Monitor::for_command(ctx, &args.progress)?;
    let cfg = args.to_config();
    monitor.event(&Event::Started {
        command: "verify".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        output: cfg.as_ref().map_or_else(
            |_| args.paths.last().cloned().unwrap_or_default(),
            |c| c.output.display().to_string(),
        ),
        inputs: cfg.as_ref().map_or_else(
            |_| args.paths[..args.paths.len().saturating_sub(1)].to_vec(),
            |c| c.inputs.clone(),
        ),
        ranks: ctx.size(),
        nodes: ctx.nodes(),
    });
    let report = cfg.map_err(Error::from).and_then(|cfg| {
        monitor.phase(Phase::Scan);
        verify_backfilled(ctx, &cfg, &args.backfill, &mut monitor)
    });
    monitor.finish();
    match report {
        Ok(report) => {
            monitor.event(&verified(&report));
            finish(
                ctx,
                &report,
                args.report.as_deref(),
                Text::beside(&args.progress),
            )
        }
        Err(e) => {
            monitor.failed(&e);
            Err(e)
        }
    }
}
