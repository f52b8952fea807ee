//! zarrforge: an MPI-parallel converter from netCDF to Zarr.
//!
//! The folders are the pipeline, lowest layer first; each one uses only
//! those above it in this list:
//!
//! * [`system`]: the process and its machine (environment, crash and panic
//!   guards, signals, fault-injection points);
//! * [`model`]: the plain data every stage shares (schema, fill rules, CF
//!   time, N-d blocks);
//! * [`netcdf`]: netCDF-C and the netCDF-3 header check;
//! * [`cli`]: command line, recipes, the validated configuration;
//! * [`mpi`]: the MPI context, agreement on failures, topology;
//! * [`pipeline`]: inputs → scan → combine → select → plan → read;
//! * [`store`]: encode → files and journal → commit, and what a run does
//!   with the store it finds;
//! * [`error`]: the error every command returns, one variant per stage;
//! * [`report`]: what a run tells its user (the job's progress, the
//!   `--events` stream, the run report);
//! * [`commands`]: convert, verify, inspect and bench, each stringing the
//!   stages together.
//!
//! ```no_run
//! # fn main() -> Result<(), zarrforge::error::Error> {
//! use zarrforge::cli::config::*;
//! use std::time::Duration;
//! use zarrforge::commands::convert::{convert, Monitor};
//! use zarrforge::mpi::{ctx::MpiCtx, topology::Topology};
//! let ctx = MpiCtx::init()?;
//! // Inputs may be paths or globs: files are concatenated along their
//! // common unlimited dimension, ordered by its coordinate values.
//! let mut cfg = ConvertConfig::new(vec!["run_*.nc".into()], "out.zarr".into());
//! cfg.chunks = DimSizes::parse("--chunks", "time=24")?;
//! cfg.codec = Codec::parse("zstd:3")?;
//! // Progress lines of the whole job every 30 s on rank 0's stderr, no
//! // events (`report::events::Events::open` writes them).
//! let events = zarrforge::report::events::Events::none();
//! let mut monitor = Monitor::new(&ctx, true, Duration::from_secs(30), events);
//! let report = convert(&ctx, &cfg, &Topology::detect(), &mut monitor)?;
//! println!("{}", report.summary());
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

/// `eprintln!` in one `write` call: a line of rank 0's stderr (progress,
/// warnings, the error) is never split by another writer of the same pipe
/// (the events on stdout when a launcher or a workflow engine merges the
/// two streams, the other ranks' lines).
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        let mut line = format!($($arg)*);
        line.push('\n');
        let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), line.as_bytes());
    }};
}

pub mod cli;
pub mod commands;
pub mod error;
pub mod model;
pub mod mpi;
pub mod netcdf;
pub mod pipeline;
pub mod report;
pub mod store;
pub mod system;
