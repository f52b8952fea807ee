//! `zarrforge bench`: generate a model-like dataset (or take given inputs),
//! convert it, and report what every rank did.
//!
//! The dataset is written in parallel (file `i` by rank `i mod ranks`):
//! by default 16 netCDF-4 files of 24 × 361 × 720 with three float32
//! fields, deflate level 4 + shuffle, source chunks of one time step. The
//! conversion is the real `convert` (same code path, same options). The
//! report gives per rank the bytes, units and seconds per phase, the busy
//! time (read + encode + write, the last two summed over encoder threads)
//! and its imbalance (max/mean), the peak RSS, and the total GB/s; and two
//! floors measured on this machine: the codec floor (every thread of every
//! rank decoding and encoding a sample of the source at once, its CPU time
//! scaled to the whole dataset and divided by the cores used; see
//! [`floor`]) and the I/O floor (the compressed inputs read and the output
//! written at the storage's measured speeds; see [`io_floor`]). The wall
//! time is reported over the larger of the two, naming the one that binds.

pub mod floor;
pub mod io_floor;
pub mod report;
pub mod synth;

pub use report::BenchReport;

use std::path::PathBuf;
use std::time::Instant;

use crate::cli::config::ConvertConfig;
use crate::commands::convert::{convert, Monitor};
use crate::error::Error;
use crate::mpi::ctx::MpiCtx;
use crate::mpi::topology::Topology;
use crate::pipeline::scan::error::SchemaError;
pub use crate::report::summary::RankFigures;
use io_floor::IoFloor;
use report::gb;

/// What to generate.
#[derive(Debug, Clone)]
pub struct BenchSpec {
    /// Files.
    pub files: usize,
    /// Time steps per file.
    pub time: usize,
    /// Latitudes.
    pub lat: usize,
    /// Longitudes.
    pub lon: usize,
    /// Working directory (inputs and the store).
    pub dir: PathBuf,
    /// Reuse inputs already in `dir`.
    pub reuse: bool,
}

/// Generates the inputs (in parallel) unless `cfg` names inputs.
///
/// # Errors
/// Errors writing a file.
pub fn generate(ctx: &MpiCtx, spec: &BenchSpec) -> Result<(Vec<String>, f64), Error> {
    let t0 = Instant::now();
    let dir = spec.dir.join("inputs");
    let made = crate::system::stage::guarded(|| {
        std::fs::create_dir_all(&dir).map_err(|e| {
            Error::Schema(SchemaError::Open {
                path: dir.clone(),
                source: e,
            })
        })
    });
    ctx.agree(made)?;
    let rank = usize::try_from(ctx.rank()).unwrap_or(0);
    let mut names = Vec::new();
    let mut mine: Result<(), Error> = Ok(());
    for i in 0..spec.files {
        let path = dir.join(format!("bench_{i:04}.nc"));
        names.push(path.to_string_lossy().into_owned());
        if i % ctx.size() != rank || (spec.reuse && path.is_file()) {
            continue;
        }
        let _ = std::fs::remove_file(&path);
        #[allow(clippy::cast_precision_loss)]
        let s = crate::commands::bench::synth::SynthSpec {
            time: spec.time,
            lat: spec.lat,
            lon: spec.lon,
            t0: (i * spec.time) as f64 / 24.0,
            deflate: 4,
        };
        if let Err(e) = crate::commands::bench::synth::write(&path, &s) {
            mine = Err(e.into());
            break;
        }
    }
    ctx.agree(mine)?;
    Ok((names, ctx.max_f64(t0.elapsed().as_secs_f64())))
}

/// Runs the conversion and gathers the figures.
///
/// # Errors
/// The conversion's errors.
pub fn run(
    ctx: &MpiCtx,
    cfg: &ConvertConfig,
    topo: &Topology,
    generate_s: f64,
    startup_s: Option<f64>,
) -> Result<BenchReport, Error> {
    let report = convert(ctx, cfg, topo, &mut Monitor::silent(ctx))?;
    // The root's figures (summed over ranks) for every rank.
    let from_root = |x: u64| ctx.sum_u64(if ctx.is_root() { x } else { 0 });
    let bytes_read = from_root(report.bytes_read);
    let files =
        crate::pipeline::inputs::expand(&cfg.inputs, cfg.file_list.as_deref()).unwrap_or_default();
    let (floor_one, alone_one) = floor::measure(ctx, cfg, &files, report.threads, bytes_read);
    let ranks = report.per_rank.clone();
    #[allow(clippy::cast_precision_loss)]
    let mean = ranks.iter().map(|r| r.busy_s).sum::<f64>() / ranks.len().max(1) as f64;
    let max = ranks.iter().map(|r| r.busy_s).fold(0.0, f64::max);
    let cores = (report.ranks * report.threads)
        .min(topo.node_pus.max(1) * ctx.nodes())
        .max(1);
    #[allow(clippy::cast_precision_loss)]
    let (floor_s, floor_alone_s) = (floor_one / cores as f64, alone_one / cores as f64);
    let io = if crate::store::storage::is_remote(&cfg.output) {
        IoFloor::default()
    } else {
        io_floor::measure(ctx, &files, &cfg.output, from_root(report.bytes_written))
    };
    let (bound_s, binds) = if io.seconds > floor_s {
        (io.seconds, "io")
    } else {
        (floor_s, "codec")
    };
    Ok(BenchReport {
        version: env!("CARGO_PKG_VERSION").to_string(),
        gb_per_s: gb(report.bytes_read) / report.seconds.max(1e-9),
        imbalance: if mean > 0.0 { max / mean } else { 1.0 },
        peak_rss_mib: ranks.iter().map(|r| r.peak_rss_mib).fold(0.0, f64::max),
        floor_ratio: if floor_s > 0.0 {
            report.seconds / floor_s
        } else {
            0.0
        },
        floor_s,
        floor_alone_s,
        cores,
        io_floor_s: io.seconds,
        bound_ratio: if bound_s > 0.0 {
            report.seconds / bound_s
        } else {
            0.0
        },
        bound_s,
        binds: binds.to_string(),
        io,
        ranks,
        generate_s,
        startup_s,
        convert: report,
    })
}

/// Rank 0: deletes the store an earlier bench wrote at `out` (a local
/// zarrforge store, not through a link; anything else is left to the
/// conversion's `--overwrite`, which refuses what it must), then flushes
/// the filesystem, so that neither the deletion nor other runs' unwritten
/// data are timed with the conversion.
///
/// # Errors
/// The store cannot be deleted, or the filesystem not flushed.
fn clear_earlier_store(out: &std::path::Path) -> Result<(), Error> {
    if crate::store::storage::is_remote(out) {
        return Ok(());
    }
    let is_dir = std::fs::symlink_metadata(out).is_ok_and(|m| m.is_dir());
    if is_dir && crate::store::files::is_our_store(out) {
        std::fs::remove_dir_all(out).map_err(|e| {
            crate::store::error::WriteError::io(out, "delete the earlier bench store", e)
        })?;
    }
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    if parent.is_dir() {
        crate::store::storage::fs::sync_filesystem(parent)?;
    }
    Ok(())
}

/// `zarrforge generate`: one synthetic file, written by rank 0.
///
/// # Errors
/// The output exists, or the file cannot be written.
pub fn generate_command(ctx: &MpiCtx, a: &crate::cli::args::GenerateArgs) -> Result<(), Error> {
    if !ctx.is_root() {
        return Ok(());
    }
    if a.output.exists() {
        return Err(crate::cli::error::ConfigError::OutputExists(a.output.clone()).into());
    }
    let spec = synth::SynthSpec {
        time: a.time,
        lat: a.lat,
        lon: a.lon,
        t0: a.t0,
        deflate: a.deflate,
    };
    synth::write(&a.output, &spec)?;
    Ok(())
}

/// `zarrforge bench`: the inputs generated (or given), converted, and the
/// report printed as a table or JSON.
///
/// # Errors
/// Generating, converting or writing the report failed.
pub fn command(ctx: &MpiCtx, args: &crate::cli::args::BenchArgs) -> Result<(), Error> {
    let topo = Topology::detect();
    // Every rank's time before the bench began; the slowest is the job's.
    let here = crate::system::environment::seconds_since_start();
    let startup_s = Some(ctx.max_f64(here.unwrap_or(-1.0))).filter(|s| *s >= 0.0);
    let (inputs, generate_s) = if args.inputs.is_empty() {
        let spec = BenchSpec {
            files: args.files.max(1),
            time: args.time.max(1),
            lat: args.lat.max(1),
            lon: args.lon.max(1),
            dir: args.dir.clone(),
            reuse: args.reuse,
        };
        generate(ctx, &spec)?
    } else {
        (args.inputs.clone(), 0.0)
    };
    if args.generate_only {
        if ctx.is_root() {
            crate::say!(
                "zarrforge bench: {} input file(s) in {} ({generate_s:.2} s)",
                inputs.len(),
                args.dir.join("inputs").display()
            );
        }
        return Ok(());
    }
    let cfg = args.to_config(inputs)?;
    // The store of an earlier bench goes before the clock starts: the
    // conversion is timed, not the deletion of the last one's output.
    let cleared = crate::system::stage::guarded(|| {
        if ctx.is_root() {
            clear_earlier_store(&cfg.output)?;
        }
        Ok::<_, Error>(())
    });
    ctx.agree(cleared)?;
    let report = run(ctx, &cfg, &topo, generate_s, startup_s)?;
    if ctx.is_root() {
        let json = serde_json::to_string_pretty(&report).unwrap_or_default();
        if let Some(path) = &args.report {
            super::write_report(path, json.as_bytes())?;
        }
        if args.json {
            println!("{json}");
        } else {
            print!("{}", report.table());
        }
    }
    Ok(())
}
