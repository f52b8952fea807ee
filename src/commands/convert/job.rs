//! The job every rank agrees on before writing: the inputs scanned (each
//! rank its share), combined and selected on rank 0, and broadcast; for an
//! append, the store's state and the steps that are new.

use std::path::PathBuf;
use std::time::Instant;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::cli::config::ConvertConfig;
use crate::commands::monitor::Monitor;
use crate::error::Error;
use crate::mpi::ctx::MpiCtx;
use crate::pipeline::combine::{combine, CombineOptions, Dataset};
use crate::pipeline::plan::ArrayPlan;
use crate::pipeline::scan::error::SchemaError;
use crate::pipeline::scan::{scan_files_isolated, FileScan, IsolatedError, ScanOptions};
use crate::pipeline::virtualize::FileLayouts;
use crate::store::append;
use crate::store::state::{self, StoreState};
use crate::system::stage::guarded;

/// Rank 0 computes a value (a panic becomes its error) and broadcasts it;
/// every rank gets it, or every rank fails (rank 0's error is reported once).
///
/// # Errors
/// `f`'s error on rank 0; [`Error::Ranks`] elsewhere.
pub fn from_root<T: Serialize + DeserializeOwned>(
    ctx: &MpiCtx,
    f: impl FnOnce() -> Result<T, Error>,
) -> Result<T, Error> {
    ctx.from_root(|| guarded(f), |e| Error::Schema(SchemaError::Exchange(e)))
}

/// The result of the preparation on rank 0, shared with every rank.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    /// The combined dataset.
    pub ds: Dataset,
    /// Files scanned.
    pub files: usize,
    /// Seconds spent scanning.
    pub scan_seconds: f64,
    /// The store's length before an append.
    pub append_from: Option<u64>,
    /// The arrays of an append (the store's layouts).
    pub arrays: Option<Vec<ArrayPlan>>,
    /// Files left out (already in the store).
    pub skipped_files: Vec<PathBuf>,
    /// How the store of an append writes NaN and infinite float
    /// attributes.
    pub attrs_json: Option<crate::cli::config::AttrsJson>,
    /// Warnings for rank 0 to show (`--virtual`: variables copied rather
    /// than referenced).
    #[serde(default)]
    pub warnings: Vec<String>,
    /// The region a `--region` run rewrites.
    #[serde(default)]
    pub region: Option<crate::store::region::Region>,
    /// The regions the store records, this run's last.
    #[serde(default)]
    pub regions: Vec<String>,
}

/// Scans the input files on all ranks and combines them on rank 0; every
/// rank gets the [`Job`].
///
/// # Errors
/// Any scan, combination, selection or append-check error.
pub fn prepare_job(ctx: &MpiCtx, cfg: &ConvertConfig, monitor: &mut Monitor) -> Result<Job, Error> {
    let t0 = Instant::now();
    // Rank 0 expands the inputs (one directory scan) and reads the store's
    // state for an append.
    let (files, state): (Vec<PathBuf>, Option<StoreState>) = from_root(ctx, || {
        let files = crate::pipeline::inputs::expand(&cfg.inputs, cfg.file_list.as_deref())?;
        let state = if cfg.append && crate::store::files::output_exists(&cfg.output) {
            Some(state::load(&cfg.output)?)
        } else {
            None
        };
        Ok((files, state))
    })?;
    let concat_dim = cfg.combine.concat_dim.clone().or_else(|| {
        state
            .as_ref()
            .and_then(|s| s.concat.as_ref().map(|c| source_dim(cfg, &c.dim)))
    });
    let opts = ScanOptions {
        concat_dim: concat_dim.clone(),
        skip_unsupported: cfg.skip_unsupported,
        phony_dims: cfg.phony_dims,
        digest_static: cfg.combine.check_static_values,
    };
    let rank = usize::try_from(ctx.rank()).unwrap_or(0);
    let (lo, hi) = crate::pipeline::scan::share(files.len(), rank, ctx.size());
    crate::system::stage::enter("scan");
    monitor.set_totals(files.len() as u64, 0);
    let mine = guarded(|| {
        scan_files_isolated(
            &files[lo..hi],
            &opts,
            cfg.scan_timeout,
            |s| with_layouts(cfg, s),
            || monitor.add(ctx, 1, 0),
        )
        .map_err(|e| match e {
            IsolatedError::Scan(e) => Error::from(e),
            IsolatedError::Then(e) => e,
        })
    });
    // Every rank, whatever happened on it: rank 0 shows the scan's
    // progress until the last rank is done.
    monitor.wait_for_ranks(ctx);
    let mine = ctx.agree(mine)?;
    let payload = bincode::serde::encode_to_vec(&mine, bincode::config::standard())
        .map_err(|e| Error::Schema(SchemaError::Exchange(e.to_string())));
    let payload = ctx.agree(payload)?;
    let gathered = ctx.gather_bytes(payload);
    let scan_seconds = ctx.max_f64(t0.elapsed().as_secs_f64());
    from_root(ctx, move || {
        let mut scans: Vec<FileScan> = Vec::with_capacity(files.len());
        for part in gathered.unwrap_or_default() {
            let (v, _): (Vec<FileScan>, usize) =
                bincode::serde::decode_from_slice(&part, bincode::config::standard())
                    .map_err(|e| Error::Schema(SchemaError::Exchange(e.to_string())))?;
            scans.extend(v);
        }
        build_job(cfg, scans, state, concat_dim, scan_seconds)
    })
}

/// With `--virtual`: the scan of a file with the layouts it stores its
/// variables with (read by the rank that scanned it).
fn with_layouts(cfg: &ConvertConfig, mut scan: FileScan) -> Result<FileScan, Error> {
    if cfg.virtual_refs.is_some() {
        scan.layouts =
            crate::pipeline::read::refs::layouts(&scan.path, scan.schema.format, &scan.schema)
                .map_err(Error::from)?;
    }
    Ok(scan)
}

/// With `--virtual`: decides which variables of `ds` are referenced (from
/// the layouts in `scans`) and gives them their chunks and codecs; returns
/// the warnings of variables copied instead.
fn virtualize(
    cfg: &ConvertConfig,
    ds: &mut Dataset,
    layouts: &FileLayouts,
) -> Result<Vec<String>, Error> {
    let Some(v) = &cfg.virtual_refs else {
        return Ok(Vec::new());
    };
    let decisions = crate::pipeline::virtualize::decide(ds, layouts, v)?;
    Ok(crate::pipeline::virtualize::apply(ds, &decisions))
}

/// The layouts of the scanned files, by canonical path.
fn file_layouts(scans: &[FileScan]) -> FileLayouts {
    scans
        .iter()
        .map(|s| (s.canonical.clone(), s.layouts.iter().cloned().collect()))
        .collect()
}

/// The source name of an output dimension (undoing a rename).
fn source_dim(cfg: &ConvertConfig, out: &str) -> String {
    cfg.rename
        .iter()
        .find(|(_, to)| to == out)
        .map_or_else(|| out.to_string(), |(from, _)| from.clone())
}

fn combine_options(
    cfg: &ConvertConfig,
    scans: &[FileScan],
    concat_dim: Option<String>,
    time_units: Option<String>,
) -> Result<CombineOptions, Error> {
    let merge_groups = if cfg.combine.merge.is_empty() {
        None
    } else {
        let mut groups = Vec::new();
        for specs in &cfg.combine.merge {
            let paths = crate::pipeline::inputs::expand(specs, None)?;
            let same = |a: &std::path::Path, b: &std::path::Path| {
                a == b || (std::fs::canonicalize(a).ok() == std::fs::canonicalize(b).ok())
            };
            groups.push(
                scans
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| paths.iter().any(|p| same(p, &s.path)))
                    .map(|(i, _)| i)
                    .collect::<Vec<usize>>(),
            );
        }
        Some(groups)
    };
    Ok(CombineOptions {
        concat_dim,
        time_units,
        allow_gaps: cfg.combine.allow_gaps,
        allow_overlaps: cfg.combine.allow_overlaps,
        merge_groups,
        new_dim: cfg.combine.new_dim.clone(),
        allow_missing: cfg.combine.allow_missing,
    })
}

#[allow(clippy::too_many_lines)] // the job in stage order (combine, append, select, codecs), each step a few lines
fn build_job(
    cfg: &ConvertConfig,
    scans: Vec<FileScan>,
    state: Option<StoreState>,
    concat_dim: Option<String>,
    scan_seconds: f64,
) -> Result<Job, Error> {
    let files = scans.len();
    let time_units = cfg.combine.time_units.clone().or_else(|| {
        state
            .as_ref()
            .and_then(|s| s.concat.as_ref().and_then(|c| c.time_units.clone()))
    });
    crate::system::stage::enter("combine");
    let opts = combine_options(cfg, &scans, concat_dim.clone(), time_units.clone())?;
    let mut ds = combine(&scans, &opts)?;
    let layouts = file_layouts(&scans);
    if let Some(spec) = &cfg.region {
        return region_job(cfg, ds, state, spec, (files, scan_seconds));
    }
    let Some(state) = state else {
        crate::pipeline::select::apply(&mut ds, cfg)?;
        crate::pipeline::read::source_codec::resolve(&mut ds, |path| {
            cfg.var_settings(path)
                .and_then(|o| o.codec.clone())
                .unwrap_or_else(|| cfg.codec.clone())
        })?;
        let warnings = virtualize(cfg, &mut ds, &layouts)?;
        return Ok(Job {
            warnings,
            ds,
            files,
            scan_seconds,
            append_from: None,
            arrays: None,
            skipped_files: Vec::new(),
            attrs_json: None,
            region: None,
            regions: Vec::new(),
        });
    };
    let mut no_history = cfg.clone();
    no_history.history = None;
    crate::pipeline::select::apply(&mut ds, &no_history)?;
    let mut skipped_files = Vec::new();
    // The same files as the last commit of the store (same canonical paths,
    // sizes, modification times, however they are named now): the same
    // append run again, which finds its work done (it was interrupted after
    // its commit was decided, or it is a retry of a run that succeeded).
    let again = last_commits_inputs(
        &state,
        scans
            .iter()
            .map(|f| (f.canonical.clone(), f.size, f.mtime_ns))
            .collect(),
    );
    let mode = if again {
        crate::cli::config::AppendMode::SkipExisting
    } else {
        cfg.append_mode
    };
    if again
        && ds.grid.as_ref().is_some_and(|g| {
            state
                .grid
                .as_ref()
                .is_some_and(|s| g.labels.iter().all(|l| s.labels.contains(l)))
        })
        && ds.concat.as_ref().map(|c| c.values.clone())
            == state.concat.as_ref().map(|c| c.values.clone())
    {
        // The members this run adds are there: it ran before.
        let skipped = scans.iter().map(|s| s.path.clone()).collect();
        return nothing_new(cfg, &state, files, scan_seconds, skipped);
    }
    if append::growth(&cfg.output, &state, &mut ds)? == append::Growth::Members {
        append::check_layout(&cfg.output, &state, &cfg.chunks, &cfg.shards)?;
        let (mut ds, old_m) = append::extend_members(&cfg.output, &state, &ds)?;
        if let Some(line) = &cfg.history {
            crate::pipeline::select::add_history(&mut ds.schema.root, line);
        }
        let warnings = virtualize(cfg, &mut ds, &layouts)?;
        let arrays = append::arrays(&ds, &state, old_m);
        return Ok(Job {
            warnings,
            ds,
            files,
            scan_seconds,
            append_from: Some(old_m),
            arrays: Some(arrays),
            skipped_files: Vec::new(),
            attrs_json: Some(state.attrs_json),
            region: None,
            regions: state.regions.clone(),
        });
    }
    match append::select(&cfg.output, &state, &ds, mode, cfg.combine.allow_gaps)? {
        append::Selection::All => {}
        append::Selection::Skip(skip) => {
            skipped_files = skip.iter().map(|&i| scans[i].path.clone()).collect();
            let kept: Vec<FileScan> = scans
                .into_iter()
                .enumerate()
                .filter(|(i, _)| !skip.contains(i))
                .map(|(_, s)| s)
                .collect();
            if kept.is_empty() || kept.iter().all(|s| s.coords.iter().all(|c| c.len == 0)) {
                // Nothing new: an append that already ran.
                return nothing_new(cfg, &state, files, scan_seconds, skipped_files);
            }
            let opts = combine_options(cfg, &kept, concat_dim, time_units)?;
            ds = combine(&kept, &opts)?;
            crate::pipeline::select::apply(&mut ds, &no_history)?;
            append::select(
                &cfg.output,
                &state,
                &ds,
                crate::cli::config::AppendMode::Error,
                cfg.combine.allow_gaps,
            )?;
        }
    }
    append::check_layout(&cfg.output, &state, &cfg.chunks, &cfg.shards)?;
    let (mut ds, old_len) = append::extend(&cfg.output, &state, &ds)?;
    if let Some(line) = &cfg.history {
        crate::pipeline::select::add_history(&mut ds.schema.root, line);
    }
    let warnings = virtualize(cfg, &mut ds, &layouts)?;
    let arrays = append::arrays(&ds, &state, old_len);
    crate::pipeline::virtualize::check_append(&ds, &arrays, &warnings)?;
    Ok(Job {
        warnings,
        ds,
        files,
        scan_seconds,
        append_from: Some(old_len),
        arrays: Some(arrays),
        skipped_files,
        attrs_json: Some(state.attrs_json),
        region: None,
        regions: state.regions.clone(),
    })
}

/// The job of a region write (`--region`): the inputs placed over the
/// region of the store their coordinate values (or the range) give.
fn region_job(
    cfg: &ConvertConfig,
    mut ds: Dataset,
    state: Option<StoreState>,
    spec: &crate::cli::config::RegionSpec,
    (files, scan_seconds): (usize, f64),
) -> Result<Job, Error> {
    let Some(state) = state else {
        return Err(crate::store::error::AppendError::Region {
            store: cfg.output.clone(),
            what: "there is no committed store there: --region rewrites part of an existing one"
                .into(),
        }
        .into());
    };
    let mut no_history = cfg.clone();
    no_history.history = None;
    crate::pipeline::select::apply(&mut ds, &no_history)?;
    let region = crate::store::region::locate(&cfg.output, &state, &ds, spec)?;
    // The very files of the store's last commit, which rewrote this
    // region: the run is done (a resume of a backfill whose commit was
    // decided, or the same backfill again).
    let again = last_commits_inputs(
        &state,
        ds.files
            .iter()
            .map(|f| (f.canonical.clone(), f.size, f.mtime_ns))
            .collect(),
    ) && state
        .regions
        .last()
        .is_some_and(|r| r.starts_with(&format!("{region} ")));
    if again {
        return nothing_new(cfg, &state, files, scan_seconds, Vec::new());
    }
    let mut ds = crate::store::region::dataset(&cfg.output, &state, &mut ds, &region)?;
    append::check_layout(&cfg.output, &state, &cfg.chunks, &cfg.shards).map_err(|e| match e {
        crate::store::error::AppendError::Mismatch { store, what } => {
            crate::store::error::AppendError::Region { store, what }
        }
        other => other,
    })?;
    if let Some(line) = &cfg.history {
        crate::pipeline::select::add_history(&mut ds.schema.root, line);
    }
    let arrays = crate::store::region::arrays(&ds, &state, &region);
    Ok(Job {
        warnings: vec![format!(
            "rewriting {region} of {}: readers of a directory or S3 store may see old and new chunks mixed until the run ends",
            cfg.output.display()
        )]
        .into_iter()
        .filter(|_| cfg.icechunk.is_none())
        .collect(),
        ds,
        files,
        scan_seconds,
        append_from: None,
        arrays: Some(arrays),
        skipped_files: Vec::new(),
        attrs_json: Some(state.attrs_json),
        regions: state
            .regions
            .iter()
            .cloned()
            .chain(std::iter::once(format!(
                "{region} rewritten {} from {files} input file(s)",
                crate::system::environment::utc_now()
            )))
            .collect(),
        region: Some(region),
    })
}

/// The job of an append that finds nothing new: the store as it is.
fn nothing_new(
    cfg: &ConvertConfig,
    state: &StoreState,
    files: usize,
    scan_seconds: f64,
    skipped_files: Vec<PathBuf>,
) -> Result<Job, Error> {
    let mut ds = append::extend(&cfg.output, state, &empty_like(state))?.0;
    ds.files.clear();
    let arrays = append::arrays(&ds, state, state.concat.as_ref().map_or(0, |c| c.len));
    Ok(Job {
        warnings: Vec::new(),
        ds,
        files,
        scan_seconds,
        append_from: state.concat.as_ref().map(|c| c.len),
        arrays: Some(
            arrays
                .into_iter()
                .map(|mut a| {
                    a.restrict(None, 0);
                    a
                })
                .collect(),
        ),
        skipped_files,
        attrs_json: Some(state.attrs_json),
        region: None,
        regions: state.regions.clone(),
    })
}

/// Whether `these` inputs (canonical path, size, modification time) are
/// those the store's last commit recorded, in any order.
fn last_commits_inputs(
    state: &StoreState,
    mut these: Vec<crate::store::journal::InputPrint>,
) -> bool {
    these.sort();
    state.print.as_ref().is_some_and(|p| {
        let mut last = p.inputs.clone();
        last.sort();
        last == these
    })
}

/// A dataset with the store's structure and nothing new along the axis.
fn empty_like(state: &StoreState) -> Dataset {
    Dataset {
        files: Vec::new(),
        schema: state.schema.clone(),
        sources: state
            .schema
            .vars()
            .iter()
            .map(|v| crate::pipeline::combine::VarSource {
                var: (*v).clone(),
                axis: state
                    .concat
                    .as_ref()
                    .and_then(|c| v.dims.iter().position(|d| *d == c.dim)),
                segments: Vec::new(),
                stored: None,
                stack: None,
                inline: None,
            })
            .collect(),
        concat: state.concat.clone().map(|mut c| {
            c.len = 0;
            c.values = c.values.map(|_| Vec::new());
            c
        }),
        grid: None,
    }
}
