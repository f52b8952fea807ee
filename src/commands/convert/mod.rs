//! The `convert` pipeline: schema → plan → read → encode/write → commit.
//!
//! Every stage that can fail on one rank ends in a collective agreement
//! ([`MpiCtx::agree`]), so a failure anywhere makes every rank stop at the
//! same point with the same error and nothing is committed.

pub mod budget;
mod execute;

use std::path::PathBuf;
use std::time::Instant;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::cli::config::ConvertConfig;
use crate::error::Error;
use crate::mpi::ctx::MpiCtx;
use crate::mpi::ctx::RankFailure;
use crate::mpi::topology::Topology;
use crate::pipeline::combine::{combine, CombineOptions, Dataset};
use crate::pipeline::plan::{ArrayPlan, Plan};
use crate::pipeline::scan::error::SchemaError;
use crate::pipeline::scan::{scan_file_isolated, FileScan, ScanOptions};
use crate::report::progress::RankStats;
use crate::store::append::{self, StoreState};
use crate::store::commit;
use crate::store::journal;
use crate::store::opening::{self, Opened};
use crate::system::stage::guarded;

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
    /// Units (chunks or shards) written by this run.
    pub units: u64,
    /// Units an interrupted run had finished (skipped by `--resume`).
    pub units_resumed: u64,
    /// Units of the plan.
    pub total_units: u64,
    /// `--resume` found the store already complete.
    pub already_complete: bool,
    /// Uncompressed bytes.
    pub bytes_read: u64,
    /// Encoded bytes written.
    pub bytes_written: u64,
    /// Wall seconds.
    pub seconds: f64,
    /// Variables left out (`--skip-unsupported`).
    pub skipped: Vec<String>,
    /// What was changed or left out on the way to Zarr, one line each.
    pub warnings: Vec<String>,
    /// Input files used.
    pub files: usize,
    /// Input files left out by `--append-mode skip-existing`.
    pub skipped_files: Vec<PathBuf>,
    /// Seconds of the metadata scan of the inputs (all ranks, gathered).
    pub scan_seconds: f64,
    /// Length of the concatenation dimension before an append.
    pub appended_from: Option<u64>,
    /// Length of the concatenation dimension after the run.
    pub concat_len: Option<u64>,
    /// Rank 0's own counters.
    pub rank0: RankStats,
    /// Nodes, ranks per node, threads per rank.
    pub topology: crate::mpi::topology::JobTopology,
    /// Versions, command line, output filesystem.
    pub environment: crate::system::environment::RunEnvironment,
}

impl Report {
    /// One-line summary.
    pub fn summary(&self) -> String {
        #[allow(clippy::cast_precision_loss)]
        let gb = self.bytes_read as f64 / 1e9;
        if self.already_complete {
            return format!(
                "zarrforge: {} is already complete (nothing to resume)",
                self.output.display()
            );
        }
        let resumed = if self.units_resumed > 0 {
            format!(
                "; resumed: {} of {} units were done before",
                self.units_resumed, self.total_units
            )
        } else {
            String::new()
        };
        let line = format!(
            "zarrforge: {} {} ({} arrays, {} {}) from {} file(s), {:.3} GB in {:.2} s: {:.2} GB/s, {:.3} GB stored, {} rank(s) x {} thread(s)",
            if self.appended_from.is_some() { "appended to" } else { "wrote" },
            self.output.display(),
            self.arrays,
            self.units,
            if self.rank0.sharded { "shards" } else { "chunks" },
            self.files,
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
        );
        line + &resumed
    }
}

/// Rank 0 computes a value and broadcasts it; every rank gets it, or every
/// rank fails (rank 0's error is reported once).
///
/// # Errors
/// `f`'s error on rank 0; [`Error::Ranks`] elsewhere.
pub fn from_root<T: Serialize + DeserializeOwned>(
    ctx: &MpiCtx,
    f: impl FnOnce() -> Result<T, Error>,
) -> Result<T, Error> {
    // Binary (bincode) rather than JSON: attribute values may be NaN or
    // infinite, which JSON cannot carry.
    let config = bincode::config::standard();
    let exchange = |e: String| Error::Schema(SchemaError::Exchange(e));
    let local: Result<T, Error> = if ctx.is_root() {
        let value = guarded(f);
        let payload = match &value {
            Ok(v) => bincode::serde::encode_to_vec(v, config).map_err(|e| exchange(e.to_string())),
            Err(_) => Ok(Vec::new()),
        };
        match payload {
            Ok(bytes) => {
                ctx.bcast_bytes(bytes);
                value
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
            Err(exchange("no data from rank 0".into()))
        } else {
            bincode::serde::decode_from_slice::<T, _>(&bytes, config)
                .map(|(s, _)| s)
                .map_err(|e| exchange(e.to_string()))
        }
    };
    // Every rank learns whether every rank has the value: no rank goes on
    // to a collective that another rank will never reach.
    let ok = local.is_ok();
    let failures = ctx.gather_failures(local.as_ref().err().map(Error::failure));
    if failures.is_empty() {
        return local;
    }
    if ok || !ctx.is_root() {
        // Report rank 0's own message when it has one, else every rank's.
        let root_failed: Vec<RankFailure> =
            failures.iter().filter(|f| f.rank == 0).cloned().collect();
        return Err(Error::Ranks(if root_failed.is_empty() {
            failures
        } else {
            root_failed
        }));
    }
    local
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
}

/// Scans the input files on all ranks and combines them on rank 0; every
/// rank gets the [`Job`].
///
/// # Errors
/// Any scan, combination, selection or append-check error.
pub fn prepare_job(ctx: &MpiCtx, cfg: &ConvertConfig) -> Result<Job, Error> {
    let t0 = Instant::now();
    // Rank 0 expands the inputs (one directory scan) and reads the store's
    // state for an append.
    let (files, state): (Vec<PathBuf>, Option<StoreState>) = from_root(ctx, || {
        let files = crate::pipeline::inputs::expand(&cfg.inputs, cfg.file_list.as_deref())?;
        let state = if cfg.append && cfg.output.exists() {
            Some(append::load(&cfg.output)?)
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
    let mine = guarded(|| {
        files[lo..hi]
            .iter()
            .map(|p| scan_file_isolated(p, &opts, cfg.scan_timeout).map_err(Error::from))
            .collect::<Result<Vec<FileScan>, Error>>()
    });
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
    let Some(state) = state else {
        crate::pipeline::select::apply(&mut ds, cfg)?;
        crate::pipeline::read::source_codec::resolve(&mut ds, |path| {
            cfg.var_settings(path)
                .and_then(|o| o.codec.clone())
                .unwrap_or_else(|| cfg.codec.clone())
        })?;
        return Ok(Job {
            ds,
            files,
            scan_seconds,
            append_from: None,
            arrays: None,
            skipped_files: Vec::new(),
        });
    };
    let mut no_history = cfg.clone();
    no_history.history = None;
    crate::pipeline::select::apply(&mut ds, &no_history)?;
    let mut skipped_files = Vec::new();
    // The same files as the last commit of the store (same paths, sizes,
    // modification times): the same append run again, which finds its work
    // done (it was interrupted after its commit was decided, or it is a
    // retry of a run that succeeded).
    let mut these: Vec<(PathBuf, u64, i128)> = scans
        .iter()
        .map(|f| (f.path.clone(), f.size, f.mtime_ns))
        .collect();
    these.sort();
    let again = state.print.as_ref().is_some_and(|p| {
        let mut last = p.inputs.clone();
        last.sort();
        last == these
    });
    let mode = if again {
        crate::cli::config::AppendMode::SkipExisting
    } else {
        cfg.append_mode
    };
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
                let mut ds = append::extend(&cfg.output, &state, &empty_like(&state))?.0;
                ds.files.clear();
                let arrays =
                    append::arrays(&ds, &state, state.concat.as_ref().map_or(0, |c| c.len));
                return Ok(Job {
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
                });
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
    let arrays = append::arrays(&ds, &state, old_len);
    Ok(Job {
        ds,
        files,
        scan_seconds,
        append_from: Some(old_len),
        arrays: Some(arrays),
        skipped_files,
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
            })
            .collect(),
        concat: state.concat.clone().map(|mut c| {
            c.len = 0;
            c.values = c.values.map(|_| Vec::new());
            c
        }),
    }
}

/// Converts netCDF files into a Zarr store (or appends them to one) on all
/// ranks of `ctx`.
///
/// # Errors
/// Any stage's error; when several ranks fail, [`Error::Ranks`] with each
/// rank's message. The store is then left without root metadata (or, for an
/// append, with its previous metadata).
#[allow(clippy::too_many_lines)] // orchestration: the stages one after another, each ending in an agreement
pub fn convert(ctx: &MpiCtx, cfg: &ConvertConfig, topo: &Topology) -> Result<Report, Error> {
    let t0 = Instant::now();
    cfg.validate()?;
    crate::system::signals::install();
    // Rank 0 locks an existing store before its state is read.
    let mut lock: Option<journal::Lock> = None;
    // (A payload that is never empty: an empty one means "rank 0 failed".)
    let _: bool = from_root(ctx, || {
        lock = opening::lock_existing(cfg)?;
        Ok(true)
    })?;
    let job = prepare_job(ctx, cfg)?;
    let ds = &job.ds;
    crate::system::stage::enter("plan");
    let plan = match &job.arrays {
        Some(arrays) => Plan::renumber(arrays.clone(), ctx.size()),
        None => Plan::new(ds, cfg, ctx.size())?,
    };
    let threads = cfg
        .threads
        .unwrap_or_else(|| topo.encoder_threads(ctx.ranks_on_node()))
        .max(1);
    // Encoder threads of a bound rank are pinned inside its cpuset.
    let pins: Vec<u32> = (0..threads).filter_map(|i| topo.thread_pu(i)).collect();
    let topology = ctx.job_topology(topo, threads, !pins.is_empty());
    if ctx.is_root() {
        if let Some(w) = topology.warning() {
            eprintln!("{w}");
        }
    }
    let budget = execute::memory_budget(cfg, &plan, threads)?;
    crate::pipeline::read::hdf5::set_chunk_cache_bytes(
        usize::try_from(budget.hdf5_cache).unwrap_or(0),
    );
    let workers = execute::Workers {
        threads,
        pins,
        budget,
    };
    let format = job.arrays.as_ref().map_or(cfg.format, |_| {
        store_format(&cfg.output).unwrap_or(cfg.format)
    });
    let print = plan_print(&job, &plan, format);

    // Rank 0 prepares (or reopens) the store, takes its lock and reads the
    // journal; nobody writes before it is ready.
    let request = opening::Request {
        resume: cfg.resume,
        overwrite: cfg.overwrite,
        append: job.append_from.is_some(),
        nothing_new: job.append_from.is_some() && job.ds.files.is_empty(),
    };
    let inputs: Vec<PathBuf> = job.ds.files.iter().map(|f| f.path.clone()).collect();
    let opened: Opened = from_root(ctx, || {
        let (l, o) = opening::open_store(cfg, request, &inputs, &print, format, lock.take())?;
        lock = l;
        Ok(o)
    })?;
    let plan = if opened.resumed > 0 {
        Plan::partition_skipping(plan.arrays, ctx.size(), |seq| {
            journal::is_done(&opened.done, seq)
        })
    } else {
        plan
    };

    let nothing_new = opened.complete
        || (job.append_from.is_some()
            && plan.total_units == 0
            && ds.concat.as_ref().map(|c| c.len) == job.append_from);
    crate::system::stage::enter("write");
    let stats = if opened.complete {
        Ok(RankStats::default())
    } else {
        guarded(|| execute::write_units(ctx, cfg, &job, &plan, format, &workers, &opened))
    };
    let mut stats = ctx.agree(stats)?;
    stats.sharded = plan.arrays.iter().any(|a| a.shards.is_some());

    crate::system::stage::enter("commit");
    let committed: Result<(), Error> = if ctx.is_root() && !nothing_new {
        guarded(|| {
            let mut state = StoreState::new(ds, &plan.arrays, format);
            state.print = Some(print.clone());
            let state = state.to_bytes(&cfg.output)?;
            commit::commit(&cfg.output, &ds.schema, &plan, format, &state)?;
            if !cfg.keep_journal {
                journal::remove(&cfg.output)?;
            }
            Ok(())
        })
    } else if ctx.is_root() && nothing_new && !cfg.keep_journal {
        guarded(|| Ok(journal::remove(&cfg.output)?))
    } else {
        Ok(())
    };
    ctx.agree(committed)?;
    drop(lock);

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
        units_resumed: opened.resumed,
        total_units: plan.total_units,
        already_complete: opened.complete,
        bytes_read,
        bytes_written,
        seconds,
        skipped: ds
            .schema
            .skipped
            .iter()
            .map(|s| format!("{} ({})", s.path, s.kind))
            .collect(),
        warnings: {
            let mut w = ds.schema.warnings.clone();
            w.extend(crate::store::metadata::format_warnings(
                &ds.schema.vars(),
                cfg.format,
            ));
            w
        },
        files: job.files,
        skipped_files: job.skipped_files.clone(),
        scan_seconds: job.scan_seconds,
        appended_from: job.append_from,
        concat_len: ds.concat.as_ref().map(|c| c.len),
        rank0: stats,
        topology,
        environment: crate::system::environment::RunEnvironment::detect(&cfg.output),
    })
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
            .map(|f| (f.path.clone(), f.size, f.mtime_ns))
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
    if path.join("zarr.json").is_file() {
        Some(ZarrFormat::V3)
    } else if path.join(".zgroup").is_file() {
        Some(ZarrFormat::V2)
    } else {
        None
    }
}
