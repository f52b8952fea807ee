//! zarrforge: an MPI-parallel converter from netCDF to Zarr.
//!
//! The pipeline has one module per stage:
//! [`inputs`] (paths and globs) → [`scan`] (each rank reads the structure of
//! its share of the files) → [`dataset`] (rank 0 combines the files into one
//! structure and broadcasts it) → [`select`] (variables, names, attributes) →
//! [`plan`] (pure: chunk grid → one writer rank per chunk or shard) →
//! [`read`] (parallel HDF5 hyperslab reads, or netCDF-C for netCDF-3) →
//! [`write`] (zarrs encoding, atomic chunk files) → [`write::commit`]
//! (rank 0 writes the metadata once every rank has succeeded).
//!
//! ```no_run
//! # fn main() -> Result<(), zarrforge::error::Error> {
//! use zarrforge::{config::*, mpi_ctx::MpiCtx, topology::Topology};
//! let ctx = MpiCtx::init()?;
//! // Inputs may be paths or globs: files are concatenated along their
//! // common unlimited dimension, ordered by its coordinate values.
//! let mut cfg = ConvertConfig::new(vec!["run_*.nc".into()], "out.zarr".into());
//! cfg.chunks = DimSizes::parse("--chunks", "time=24")?;
//! cfg.codec = Codec::parse("zstd:3")?;
//! let report = zarrforge::convert::convert(&ctx, &cfg, &Topology::detect())?;
//! println!("{}", report.summary());
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod append;
pub mod bench;
pub mod block;
pub mod budget;
pub mod cdf_header;
pub mod cftime;
pub mod cli;
pub mod config;
pub mod convert;
pub mod dataset;
pub mod environment;
pub mod error;
pub mod fault;
pub mod floor;
pub mod inputs;
pub mod inspect;
pub mod journal;
pub mod mpi_ctx;
pub mod netcdf_c;
pub mod opening;
pub mod plan;
pub mod progress;
pub mod read;
pub mod recipe;
pub mod scan;
pub mod schema;
pub mod select;
pub mod signals;
pub mod stage;
pub mod synth;
pub mod topology;
pub mod verify;
pub mod write;
