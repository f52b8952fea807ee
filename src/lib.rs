//! zarrforge: an MPI-parallel converter from netCDF to Zarr.
//!
//! The pipeline has one module per stage:
//! [`schema`] (rank 0 reads the source's structure and broadcasts it) →
//! [`plan`] (pure: chunk grid → one writer rank per chunk or shard) →
//! [`read`] (parallel HDF5 hyperslab reads, or netCDF-C for netCDF-3) →
//! [`write`] (zarrs encoding, atomic chunk files) → [`write::commit`]
//! (rank 0 writes the metadata once every rank has succeeded).
//!
//! ```no_run
//! # fn main() -> Result<(), zarrforge::error::Error> {
//! use zarrforge::{config::*, mpi_ctx::MpiCtx, topology::Topology};
//! let ctx = MpiCtx::init()?;
//! let cfg = ConvertConfig {
//!     input: "run.nc".into(),
//!     output: "out.zarr".into(),
//!     chunks: DimSizes::parse("--chunks", "time=24")?,
//!     shards: DimSizes::default(),
//!     codec: Codec::parse("zstd:3")?,
//!     format: ZarrFormat::V3,
//!     overwrite: false,
//!     skip_unsupported: false,
//!     target_chunk_bytes: 4 << 20,
//!     threads: None,
//!     progress: false,
//! };
//! let report = zarrforge::convert::convert(&ctx, &cfg, &Topology::detect())?;
//! println!("{}", report.summary());
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod cli;
pub mod config;
pub mod convert;
pub mod error;
pub mod inspect;
pub mod mpi_ctx;
pub mod plan;
pub mod progress;
pub mod read;
pub mod schema;
pub mod synth;
pub mod topology;
pub mod write;
