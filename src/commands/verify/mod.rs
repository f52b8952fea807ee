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

mod backfill;
mod expect;
mod json;
mod members;
mod rounding;
mod shares;
mod source;
mod store;
mod values;

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::de::DeserializeOwned;
use serde::Serialize;
use zarrs::array::Array;
use zarrs::storage::ReadableStorageTraits;

use crate::cli::config::ConvertConfig;
use crate::commands::monitor::Monitor;
use crate::error::Error;
use crate::error::VerifyError;
use crate::mpi::ctx::MpiCtx;
use crate::report::events::{Event, Phase};
use shares::{Job, Options};
use source::{FileScan, NcAttr, NcType, Raw, Sources};

/// Mismatches listed per rank at most.
const FIRST: usize = 5;

/// Elements decoded and read at once at most (a bigger chunk or shard is
/// compared in parts).
const BLOCK_ELEMENTS: u64 = 1 << 22;

/// The outcome of a verification.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// The store.
    pub store: PathBuf,
    /// Source files.
    pub files: usize,
    /// Arrays compared.
    pub arrays: usize,
    /// Units (chunks or shards) compared.
    pub units: u64,
    /// Elements compared.
    pub values: u64,
    /// Elements that differ.
    pub mismatches: u64,
    /// Metadata differences.
    pub metadata: Vec<String>,
    /// The first value mismatches (a few per rank).
    pub first: Vec<String>,
    /// The arrays rounded before compression (`convert --keepbits`) and
    /// the errors of their values against the sources'.
    pub rounded: Vec<RoundedArray>,
    /// Wall seconds.
    pub seconds: f64,
}

/// An array the store records as rounded (`BitRound`, CF quantization
/// attributes): its values are compared with the sources' rounded to its
/// bits, and their errors against the sources' own values measured over
/// the finite values (NaN, ±Inf, fill and missing values aside).
#[derive(Debug, Clone, Serialize)]
pub struct RoundedArray {
    /// Its path.
    pub array: String,
    /// Mantissa bits kept (`quantization_nsb`).
    pub keepbits: u32,
    /// The largest relative error rounding allows
    /// (`quantization_maximum_relative_error`, `2^-(keepbits+1)`).
    pub max_relative_error: f64,
    /// Values measured.
    pub values: u64,
    /// The largest absolute error of a stored value.
    pub largest_absolute_error: f64,
    /// The largest relative error of a stored value (normal values;
    /// subnormal ones are held to the absolute error of the smallest
    /// normal exponent).
    pub largest_relative_error: f64,
    /// Finite source values at the top of the type's range that round to
    /// ±Inf, as `BitRound` rounds them (not measured).
    pub rounded_to_infinity: u64,
}

impl RoundedArray {
    /// One line: the bits, the largest errors and the bound.
    pub fn text(&self) -> String {
        let mut out = format!(
            "{}: {} mantissa bits kept: max absolute error {}, max relative error {} ({} {}) over {} values",
            self.array,
            self.keepbits,
            short(self.largest_absolute_error),
            short(self.largest_relative_error),
            if self.largest_relative_error > self.max_relative_error {
                "beyond"
            } else {
                "at most"
            },
            values::num(self.max_relative_error),
            self.values
        );
        if self.rounded_to_infinity > 0 {
            out.push_str(&format!(
                "; {} value(s) at the top of the range rounded to infinity",
                self.rounded_to_infinity
            ));
        }
        out
    }
}

/// `x` with 4 significant digits, in plain notation unless very large or
/// small.
fn short(x: f64) -> String {
    let a = x.abs();
    if a == 0.0 || !a.is_finite() || !(1e-6..1e16).contains(&a) {
        return values::num(x);
    }
    let digits = (3 - a.log10().floor() as i32).clamp(0, 12);
    format!("{x:.*}", digits as usize)
}

impl VerifyReport {
    /// Whether the store equals the sources.
    pub fn ok(&self) -> bool {
        self.mismatches == 0 && self.metadata.is_empty()
    }

    /// Summary and the first differences, one per line.
    pub fn text(&self) -> String {
        let mut out = format!(
            "zarrforge verify: {} vs {} file(s): {} arrays, {} units, {} values compared in {:.2} s: {}",
            self.store.display(),
            self.files,
            self.arrays,
            self.units,
            self.values,
            self.seconds,
            if self.ok() {
                "identical".to_string()
            } else {
                format!(
                    "{} value(s) differ, {} metadata difference(s)",
                    self.mismatches,
                    self.metadata.len()
                )
            }
        );
        for m in self.metadata.iter().take(20) {
            out.push_str("\n  metadata: ");
            out.push_str(m);
        }
        for m in &self.first {
            out.push_str("\n  value: ");
            out.push_str(m);
        }
        for r in &self.rounded {
            out.push_str("\n  rounded: ");
            out.push_str(&r.text());
        }
        out
    }
}

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

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Runs `f`, turning a panic into an error, so that the rank still meets
/// the others at the next agreement.
fn guarded<T>(f: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
    std::panic::catch_unwind(AssertUnwindSafe(f))
        .unwrap_or_else(|p| Err(VerifyError::Panic(panic_text(p.as_ref())).into()))
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, Error> {
    bincode::serde::encode_to_vec(v, bincode::config::standard())
        .map_err(|e| VerifyError::Exchange(e.to_string()).into())
}

fn decode<T: DeserializeOwned>(b: &[u8]) -> Result<T, Error> {
    bincode::serde::decode_from_slice::<T, _>(b, bincode::config::standard())
        .map(|(v, _)| v)
        .map_err(|e| VerifyError::Exchange(e.to_string()).into())
}

/// Rank 0 computes a value, every rank gets it (or every rank fails, with
/// rank 0's message).
fn from_rank0<T: Serialize + DeserializeOwned>(
    ctx: &MpiCtx,
    f: impl FnOnce() -> Result<T, Error>,
) -> Result<T, Error> {
    ctx.from_root(|| guarded(f), |e| VerifyError::Exchange(e).into())
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

/// Counts of one rank.
#[derive(Debug, Default)]
struct Tally {
    units: u64,
    values: u64,
    mismatches: u64,
    first: Vec<String>,
    /// The errors of each rounded array's values (by path).
    errors: BTreeMap<String, rounding::Errors>,
}

impl Tally {
    fn note(&mut self, text: impl FnOnce() -> String) {
        self.mismatches += 1;
        if self.first.len() < FIRST {
            self.first.push(text());
        }
    }
}

/// Row-major indices of chunk number `k` of a grid. (`model::block` has the
/// same arithmetic; verify keeps its own so that it shares no code with the
/// converter's planning.)
fn unravel(mut k: u64, grid: &[u64]) -> Vec<u64> {
    let mut idx = vec![0u64; grid.len()];
    for d in (0..grid.len()).rev() {
        let n = grid[d].max(1);
        idx[d] = k % n;
        k /= n;
    }
    idx
}

/// Splits a region into blocks of at most `max` elements.
fn blocks(start: &[u64], count: &[u64], max: u64) -> Vec<(Vec<u64>, Vec<u64>)> {
    let n: u64 = count.iter().product();
    if n <= max {
        return vec![(start.to_vec(), count.to_vec())];
    }
    let Some(d) = count.iter().position(|&c| c > 1) else {
        return vec![(start.to_vec(), count.to_vec())];
    };
    let slab: u64 = count[d + 1..].iter().product::<u64>().max(1);
    let step = (max / slab).max(1);
    let mut out = Vec::new();
    let mut k = 0;
    while k < count[d] {
        let m = step.min(count[d] - k);
        let (mut s, mut c) = (start.to_vec(), count.to_vec());
        s[d] += k;
        c[d] = m;
        out.extend(blocks(&s, &c, max));
        k += m;
    }
    out
}

/// The units of every array (chunks, or shards) and their uncompressed
/// bytes: what the comparison goes through.
fn totals(jobs: &[Job], arrays: &[Array<dyn ReadableStorageTraits>]) -> (u64, u64) {
    jobs.iter()
        .zip(arrays)
        .fold((0u64, 0u64), |(u, b), (job, arr)| {
            let units: u64 = arr.chunk_grid_shape().iter().product();
            let elements: u64 = arr.shape().iter().product();
            (
                u.saturating_add(units),
                b.saturating_add(elements.saturating_mul(job.dtype.size() as u64)),
            )
        })
}

/// This rank's share of every array's chunks, compared element by element.
///
/// The chunks are taken in bands: consecutive chunks along the innermost
/// dimension of the chunk grid, about [`BLOCK_ELEMENTS`] in all. A band is
/// compared in blocks of at most that many elements, each read from the
/// sources at once, so a source chunk that many store chunks share (a
/// store chunked as long time series, the sources one step per chunk) is
/// decoded once per block, not once per store chunk.
fn compare(
    ctx: &MpiCtx,
    jobs: &[Job],
    arrays: &[Array<dyn ReadableStorageTraits>],
    files: Vec<PathBuf>,
    monitor: &mut Monitor,
) -> Result<Tally, Error> {
    let (rank, size) = (usize::try_from(ctx.rank()).unwrap_or(0), ctx.size());
    let mut sources = Sources::new(files);
    let mut tally = Tally::default();
    let mut unit = 0usize;
    let store_err = |job: &Job, e: &dyn std::fmt::Display| VerifyError::Store {
        array: job.path.clone(),
        msg: e.to_string(),
    };
    for (job, arr) in jobs.iter().zip(arrays) {
        let grid = arr.chunk_grid_shape().to_vec();
        if grid.contains(&0) {
            continue;
        }
        let inner = grid.last().copied().unwrap_or(1).max(1);
        let outer: u64 = grid[..grid.len().saturating_sub(1)].iter().product();
        let chunk: u64 = arr
            .chunk_shape(&vec![0; grid.len()])
            .map_or(1, |c| c.iter().map(|n| n.get()).product::<u64>())
            .max(1);
        let band = (BLOCK_ELEMENTS / chunk).clamp(1, inner);
        for o in 0..outer {
            let mut j = 0;
            while j < inner {
                let (first, last) = (o * inner + j, o * inner + (j + band).min(inner) - 1);
                let n = last - first + 1;
                j += band;
                unit += 1;
                if (unit - 1) % size.max(1) != rank {
                    continue;
                }
                let a = arr
                    .chunk_subset_bounded(&unravel(first, &grid))
                    .map_err(|e| store_err(job, &e))?;
                let b = arr
                    .chunk_subset_bounded(&unravel(last, &grid))
                    .map_err(|e| store_err(job, &e))?;
                let start = a.start().to_vec();
                let mut count = a.shape().to_vec();
                if let (Some(c), Some(bs), Some(bc)) =
                    (count.last_mut(), b.start().last(), b.shape().last())
                {
                    *c = bs + bc - start.last().copied().unwrap_or(0);
                }
                tally.units += n;
                for (s, c) in blocks(&start, &count, BLOCK_ELEMENTS) {
                    compare_block(job, arr, &mut sources, &s, &c, &mut tally)?;
                }
                let elements: u64 = count.iter().product();
                monitor.add(ctx, n, elements.saturating_mul(job.dtype.size() as u64));
            }
        }
    }
    Ok(tally)
}

/// One block of a store array against the pieces of the sources it holds.
#[allow(clippy::too_many_lines)] // one comparison walk: raw and decoded, element by element, with the report's counters
fn compare_block(
    job: &Job,
    arr: &Array<dyn ReadableStorageTraits>,
    sources: &mut Sources,
    start: &[u64],
    count: &[u64],
    tally: &mut Tally,
) -> Result<(), Error> {
    let n: u64 = count.iter().product();
    if n == 0 {
        return Ok(());
    }
    let stored = match store::retrieve(arr, start, count) {
        Ok(z) => z,
        Err(e) => {
            // A damaged chunk: every value in it differs.
            tally.values += n;
            tally.mismatches += n;
            if tally.first.len() < FIRST {
                tally.first.push(format!(
                    "{}{start:?}: the stored values cannot be decoded: {e}",
                    job.path
                ));
            }
            return Ok(());
        }
    };
    for piece in &job.pieces {
        // The part of the block this piece holds (its member's, along the
        // axis its steps).
        let span = job.axis.map(|k| (k, piece.at, piece.len, piece.from));
        let Some(r) = members::Region::new(start, count, piece.member, span) else {
            continue;
        };
        let (s, c) = (&r.start, &r.count);
        let m = r.len();
        tally.values += m;
        let src = sources.read(
            piece.file,
            &piece.var,
            job.dtype,
            &r.src_start,
            &r.src_count,
        )?;
        // Element j of the piece's part is element `at(j)` of the block.
        let at = |j: u64| r.at(j);
        let idx = |j: u64| values::element_index(s, c, j);
        match (&src, &stored) {
            (Raw::Fixed(x), Raw::Fixed(z)) => {
                compare_fixed(job, piece, &r, x, z, c == count, tally);
            }
            (Raw::Strings(x), Raw::Strings(z)) => {
                for j in 0..m {
                    let (a, b) = (&x[to_usize(j)], &z[at(j)]);
                    if a != b {
                        tally.note(|| {
                            format!("{}{:?}: source {a:?}, store {b:?}", job.path, idx(j))
                        });
                    }
                }
            }
            _ => tally.note(|| {
                format!(
                    "{}{s:?}: the store holds another kind of values than the sources",
                    job.path
                )
            }),
        }
    }
    members::compare_gaps(job, arr, &stored, start, count, tally);
    Ok(())
}

/// One piece's fixed-size values (`x`, read from the sources over `r`)
/// against the block's stored values (`z`; `whole`: the piece is the
/// whole block): raw, bit for bit (time values by instant), then decoded
/// as readers decode. A rounded array is compared with the sources
/// rounded to its recorded bits, and its errors against the sources' own
/// values are measured.
fn compare_fixed(
    job: &Job,
    piece: &shares::Piece,
    r: &members::Region,
    x: &[u8],
    z: &[u8],
    whole: bool,
    tally: &mut Tally,
) {
    let t = job.dtype;
    let decode = job.src_cf != job.store_cf && piece.time.is_none();
    let rounded = job.round.as_ref().map(|q| q.apply(x));
    let expected = match (&rounded, &piece.time) {
        (Some(xr), None) => xr.as_slice(),
        _ => x,
    };
    if whole && piece.time.is_none() && !decode && expected == z {
        // The piece is the whole block, bit for bit.
        let Some((q, xr)) = job.round.as_ref().zip(rounded.as_ref()) else {
            return;
        };
        if let Some(e) = q.errors_of(x, xr) {
            tally.errors.entry(job.path.clone()).or_default().merge(&e);
            return;
        }
    }
    let mut errors = rounding::Errors::default();
    let idx = |j: u64| values::element_index(&r.start, &r.count, j);
    for j in 0..r.len() {
        let (js, jz) = (to_usize(j), r.at(j));
        let same = match (&piece.time, &job.round) {
            (Some(map), Some(q)) => q.same_time(map, x, js, z, jz),
            (Some(map), None) => map.same_at(t, x, js, z, jz),
            (None, _) => values::same_raw_at(t, expected, js, z, jz),
        };
        if let (Some(q), Some(xr)) = (&job.round, &rounded) {
            let m = q.measure(x, xr, js, z, jz, piece.time.as_ref());
            if !errors.add(m) && same {
                tally.note(|| {
                    format!(
                        "{}{:?}: source {}, store {}: beyond quantization_maximum_relative_error {}",
                        job.path,
                        idx(j),
                        values::show(t, x, js),
                        values::show(t, z, jz),
                        values::num(q.bound())
                    )
                });
            }
        }
        if !same {
            tally.note(|| {
                format!(
                    "{}{:?}: source {}{}, store {}",
                    job.path,
                    idx(j),
                    values::show(t, x, js),
                    rounded_to(job, piece, expected, js),
                    values::show(t, z, jz)
                )
            });
        } else if decode {
            let (a, b) = (
                job.src_cf.decode(t, expected, js),
                job.store_cf.decode(t, z, jz),
            );
            if !values::same_decoded(a, b) {
                tally.note(|| {
                    format!(
                        "{}{:?}: decoded by readers: source {}, store {} (raw {})",
                        job.path,
                        idx(j),
                        masked(a),
                        masked(b),
                        values::show(t, expected, js)
                    )
                });
            }
        }
    }
    if job.round.is_some() {
        tally
            .errors
            .entry(job.path.clone())
            .or_default()
            .merge(&errors);
    }
}

/// What element `i` of the sources' values is expected as, when the array
/// is rounded (`expected`: their rounding, unless time values are
/// re-encoded first): ` rounded to N bits V`.
fn rounded_to(job: &Job, piece: &shares::Piece, expected: &[u8], i: usize) -> String {
    match (&job.round, &piece.time) {
        (Some(q), None) => format!(
            " rounded to {} bits {}",
            q.nsb(),
            values::show(job.dtype, expected, i)
        ),
        (Some(q), Some(_)) => format!(" rounded to {} bits", q.nsb()),
        (None, _) => String::new(),
    }
}

fn masked(x: f64) -> String {
    if x.is_nan() {
        "masked".into()
    } else {
        values::num(x)
    }
}

fn to_usize(x: u64) -> usize {
    usize::try_from(x).unwrap_or(usize::MAX)
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

/// The `verified` event of a comparison.
pub fn verified(r: &VerifyReport) -> Event {
    Event::Verified {
        output: r.store.display().to_string(),
        files: r.files,
        arrays: r.arrays,
        units: r.units,
        values: r.values,
        mismatches: r.mismatches,
        metadata_differences: r.metadata.len(),
        identical: r.ok(),
        seconds: (r.seconds * 1000.0).round() / 1000.0,
    }
}

/// Where the text of a verification goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Text {
    /// stdout (the default).
    Stdout,
    /// stderr: stdout carries the events (`--events -`).
    Stderr,
}

impl Text {
    /// Where the text goes beside the events of `progress`: stderr when
    /// they take stdout (`--events -`).
    pub fn beside(progress: &crate::cli::args::ProgressArgs) -> Self {
        if progress.events_on_stdout() {
            Self::Stderr
        } else {
            Self::Stdout
        }
    }
}

/// Prints a verification (rank 0) to `text`, writes it as JSON to `json`,
/// and fails when it found differences.
///
/// # Errors
/// [`Error::Verify`] naming the store and the number of differences.
pub fn finish(
    ctx: &MpiCtx,
    report: &VerifyReport,
    json: Option<&std::path::Path>,
    text: Text,
) -> Result<(), Error> {
    if ctx.is_root() {
        match text {
            Text::Stdout => println!("{}", report.text()),
            Text::Stderr => crate::say!("{}", report.text()),
        }
        if let Some(path) = json {
            super::write_report(path, &serde_json::to_vec_pretty(report).unwrap_or_default())?;
        }
    }
    if report.ok() {
        Ok(())
    } else {
        Err(Error::Verify(format!(
            "{} differs from its sources: {} value(s), {} metadata difference(s)",
            report.store.display(),
            report.mismatches,
            report.metadata.len()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_regions_split_into_blocks() {
        let b = blocks(&[10, 0, 0], &[5, 4, 3], 24);
        assert_eq!(b.len(), 3);
        assert_eq!(b[0], (vec![10, 0, 0], vec![2, 4, 3]));
        assert_eq!(b[2], (vec![14, 0, 0], vec![1, 4, 3]));
        let b = blocks(&[0, 0], &[1, 100], 30);
        assert_eq!(b.len(), 4);
        assert_eq!(b[3], (vec![0, 90], vec![1, 10]));
        assert_eq!(blocks(&[], &[], 1), vec![(vec![], vec![])]);
        assert_eq!(unravel(5, &[2, 3]), vec![1, 2]);
        assert_eq!(unravel(0, &[]), Vec::<u64>::new());
    }
}
