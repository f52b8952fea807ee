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
//! The stages, each in its own module: reading the two sides (`source`,
//! `store`, `json`), what is expected of the store (`expect`, `members`,
//! `backfill`, `rounding`), each rank's share (`shares`), the comparison of
//! the values (`compare`, `values`), and the outcome (`report`); `collective`
//! holds what the ranks exchange. This module strings them together.

mod backfill;
mod collective;
mod compare;
mod expect;
mod json;
mod members;
mod report;
mod rounding;
mod shares;
mod source;
mod store;
mod values;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use zarrs::array::Array;
use zarrs::storage::ReadableStorageTraits;

use crate::cli::config::ConvertConfig;
use crate::commands::monitor::Monitor;
use crate::error::Error;
use crate::mpi::ctx::MpiCtx;
use crate::report::events::{Event, Phase};
use collective::{decode, encode, from_rank0, guarded};
use compare::{compare, totals, Tally};
pub use report::{finish, verified, RoundedArray, Text, VerifyReport};
use shares::{Job, Options};
use source::{FileScan, NcAttr, NcType, Raw};

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
    let mut opts = options(cfg);
    type Found = (Vec<PathBuf>, Vec<usize>, bool, Vec<(String, String)>);
    let (files, counts, v3, docs): Found = from_rank0(ctx, || {
        let (files, counts) = source_files(cfg, backfills)?;
        let (format, docs) = store::collect(&store)?;
        Ok((files, counts, format == store::Format::V3, docs))
    })?;
    opts.backfill = backfill::Generations::new(&counts);
    let coord_dims: Vec<String> = opts.concat_dim.iter().cloned().collect();
    let scans = share_scans(ctx, &files, &coord_dims, monitor)?;
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
    let prepared = ctx.agree(guarded(|| prepare(&store, &scans, &tree, &opts)))?;
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
    let (first, rounded) = gather(ctx, tally, &expected.jobs)?;
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

/// Every rank's first mismatches and errors of rounded values, on rank 0
/// (nothing on the other ranks): the mismatches in rank order, the errors
/// of each rounded array of `jobs` over all ranks.
fn gather(
    ctx: &MpiCtx,
    tally: Tally,
    jobs: &[Job],
) -> Result<(Vec<String>, Vec<RoundedArray>), Error> {
    let payload = encode(&(tally.first, tally.errors))?;
    let mut first = Vec::new();
    let mut errors: BTreeMap<String, rounding::Errors> = BTreeMap::new();
    let Some(parts) = ctx.gather_bytes(payload) else {
        return Ok((first, Vec::new()));
    };
    for part in parts {
        type Part = (Vec<String>, BTreeMap<String, rounding::Errors>);
        if let Ok((f, e)) = decode::<Part>(&part) {
            first.extend(f);
            for (path, x) in e {
                errors.entry(path).or_default().merge(&x);
            }
        }
    }
    let rounded = jobs
        .iter()
        .filter_map(|job| {
            let q = job.round.as_ref()?;
            let e = errors.get(&job.path).copied().unwrap_or_default();
            Some(RoundedArray {
                array: job.path.clone(),
                keepbits: q.nsb(),
                max_relative_error: q.bound(),
                values: e.values,
                largest_absolute_error: e.max_abs,
                largest_relative_error: e.max_rel,
                rounded_to_infinity: e.to_infinity,
            })
        })
        .collect();
    Ok((first, rounded))
}

/// The sources of `cfg`, then the files of each backfill, and how many
/// files each of them has (the sources first).
fn source_files(
    cfg: &ConvertConfig,
    backfills: &[String],
) -> Result<(Vec<PathBuf>, Vec<usize>), Error> {
    let mut files = crate::pipeline::inputs::expand(&cfg.inputs, cfg.file_list.as_deref())?;
    let mut counts = vec![files.len()];
    for b in backfills {
        let more = crate::pipeline::inputs::expand(std::slice::from_ref(b), None)?;
        counts.push(more.len());
        files.extend(more);
    }
    Ok((files, counts))
}

/// The options of `cfg` that shape what the store holds.
fn options(cfg: &ConvertConfig) -> Options {
    let attrs = |v: &[crate::model::schema::Attr]| -> Vec<(String, NcAttr)> {
        v.iter()
            .map(|a| (a.name.clone(), recipe_attr(&a.value)))
            .collect()
    };
    Options {
        concat_dim: cfg.combine.concat_dim.clone(),
        time_units: cfg.combine.time_units.clone(),
        rename: cfg.rename.clone(),
        include: cfg.include.clone(),
        exclude: cfg.exclude.clone(),
        var_edits: cfg
            .variables
            .iter()
            .map(|(n, s)| shares::VarEdit {
                var: n.clone(),
                set: attrs(&s.attributes),
                remove: s.remove_attributes.clone(),
            })
            .collect(),
        global_set: attrs(&cfg.attributes),
        global_remove: cfg.remove_attributes.clone(),
        partial: cfg.append,
        strict: cfg.attrs_json == Some(crate::cli::config::AttrsJson::Strict),
        new_dim: cfg.combine.new_dim.clone(),
        allow_missing: cfg.combine.allow_missing,
        backfill: backfill::Generations::default(),
    }
}

/// An attribute value given in a recipe.
fn recipe_attr(v: &crate::model::schema::AttrValue) -> NcAttr {
    use crate::model::schema::AttrValue as A;
    match v {
        A::I8(x) => NcAttr::I8(x.clone()),
        A::U8(x) => NcAttr::U8(x.clone()),
        A::I16(x) => NcAttr::I16(x.clone()),
        A::U16(x) => NcAttr::U16(x.clone()),
        A::I32(x) => NcAttr::I32(x.clone()),
        A::U32(x) => NcAttr::U32(x.clone()),
        A::I64(x) => NcAttr::I64(x.clone()),
        A::U64(x) => NcAttr::U64(x.clone()),
        A::F32(x) => NcAttr::F32(x.clone()),
        A::F64(x) => NcAttr::F64(x.clone()),
        A::Text(s) => NcAttr::Text(s.clone()),
        A::Strings(x) => NcAttr::Strings(x.clone()),
        // A JSON object of integers is an enum's mapping; other JSON is
        // kept as its text.
        A::Json(t) => serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(t)
            .ok()
            .and_then(|m| {
                m.into_iter()
                    .map(|(k, v)| Some((k, i128::from(v.as_i64()?))))
                    .collect::<Option<Vec<_>>>()
            })
            .map_or_else(|| NcAttr::Text(t.clone()), NcAttr::Members),
    }
}

/// Every file scanned once (each rank its share), every rank gets all.
fn share_scans(
    ctx: &MpiCtx,
    files: &[PathBuf],
    coord_dims: &[String],
    monitor: &mut Monitor,
) -> Result<Vec<FileScan>, Error> {
    let (rank, size) = (usize::try_from(ctx.rank()).unwrap_or(0), ctx.size());
    // The files are counted when the scan is shown as a phase of its own
    // (`verify`; in `convert --verify` it is part of the verify phase).
    let counted = monitor.is_in(Phase::Scan);
    if counted {
        monitor.set_totals(files.len() as u64, 0);
    }
    let mine = guarded(|| {
        let mut out: Vec<(usize, FileScan)> = Vec::new();
        for (i, f) in files.iter().enumerate().skip(rank).step_by(size.max(1)) {
            out.push((i, source::scan(f, coord_dims)?));
            if counted {
                monitor.add(ctx, 1, 0);
            }
        }
        encode(&out)
    });
    monitor.wait_for_ranks(ctx);
    let mine = ctx.agree(mine)?;
    let gathered = ctx.gather_bytes(mine);
    from_rank0(ctx, || {
        let mut all: Vec<(usize, FileScan)> = Vec::new();
        for part in gathered.unwrap_or_default() {
            all.extend(decode::<Vec<(usize, FileScan)>>(&part)?);
        }
        all.sort_by_key(|(i, _)| *i);
        Ok(all.into_iter().map(|(_, s)| s).collect::<Vec<_>>())
    })
}

type Prepared = (
    expect::Expected,
    Vec<Array<dyn ReadableStorageTraits>>,
    Vec<String>,
);

/// The expectation, with every array to compare opened (on every rank,
/// identically).
fn prepare(
    store: &Path,
    scans: &[FileScan],
    tree: &store::StoreTree,
    opts: &Options,
) -> Result<Prepared, Error> {
    let storage = store::storage(store)?;
    // The store's coordinate along the concatenation dimension.
    let coord: Option<Vec<f64>> = expect::concat_dim(scans, opts).and_then(|d| {
        let path = expect::store_path(opts, &d);
        let a = tree.array(&path)?;
        if a.shape.len() != 1 {
            return None;
        }
        let t = [NcType::F64, NcType::F32, NcType::I64, NcType::I32]
            .into_iter()
            .chain([NcType::I16, NcType::I8, NcType::U64, NcType::U32])
            .chain([NcType::U16, NcType::U8])
            .find(|&t| a.holds(tree.format, t))?;
        let arr = a.open(&storage, tree.format, t).ok()?;
        match store::retrieve(&arr, &[0], &a.shape).ok()? {
            Raw::Fixed(b) => Some(
                (0..b.len() / t.size())
                    .map(|i| values::as_f64(t, &b, i))
                    .collect(),
            ),
            Raw::Strings(_) => None,
        }
    });
    // The new dimension's members, placed by the store's coordinate of it.
    let members = opts.new_dim.as_ref().map(|spec| {
        let labels = members::retrieve_labels(tree, &storage, &spec.name);
        members::Members::new(spec, opts, scans, tree, labels)
    });
    let mut expected = expect::expect(scans, tree, coord.as_deref(), members.as_ref(), opts);
    let mut diffs = std::mem::take(&mut expected.diffs);
    let mut arrays = Vec::new();
    let mut jobs = Vec::new();
    for job in std::mem::take(&mut expected.jobs) {
        let Some(a) = tree.array(&job.path) else {
            continue;
        };
        match a.open(&storage, tree.format, job.dtype) {
            Ok(arr) => {
                arrays.push(arr);
                jobs.push(job);
            }
            Err(e) => diffs.push(format!("'{}': a Zarr reader cannot open it: {e}", job.path)),
        }
    }
    expected.jobs = jobs;
    Ok((expected, arrays, diffs))
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
