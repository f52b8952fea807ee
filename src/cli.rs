//! Command-line parsing only; [`ConvertArgs::to_config`] builds the validated
//! [`ConvertConfig`].

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{Codec, ConvertConfig, DimSizes, ZarrFormat};
use crate::error::ConfigError;
use crate::plan::DEFAULT_TARGET_CHUNK_BYTES;

/// MPI-parallel netCDF to Zarr converter.
///
/// Run under `mpirun`/`srun` for many ranks, or alone as one rank.
#[derive(Debug, Parser)]
#[command(name = "zarrforge", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Convert a netCDF file into a Zarr store.
    Convert(ConvertArgs),
    /// Show the structure of a netCDF file: dims, variables, dtypes, chunking, filters, attributes.
    Inspect(InspectArgs),
    /// Show which rank writes which chunks, bytes per rank and the imbalance.
    Plan(PlanArgs),
    /// Write a synthetic model-output-like netCDF-4 file (demo and benchmark data).
    Generate(GenerateArgs),
}

/// `generate` options.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Output netCDF-4 file
    pub output: PathBuf,
    /// Time steps
    #[arg(long, default_value_t = 24)]
    pub time: usize,
    /// Latitudes
    #[arg(long, default_value_t = 361)]
    pub lat: usize,
    /// Longitudes
    #[arg(long, default_value_t = 720)]
    pub lon: usize,
    /// First time value, in days since 2000-01-01
    #[arg(long, default_value_t = 0.0)]
    pub t0: f64,
    /// Deflate level of the source chunks (0: uncompressed)
    #[arg(long, default_value_t = 4)]
    pub deflate: i32,
}

/// Zarr format.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FormatArg {
    /// Zarr v2.
    #[value(name = "2")]
    V2,
    /// Zarr v3.
    #[value(name = "3")]
    V3,
}

/// Options that shape the output (shared by `convert` and `plan`).
#[derive(Debug, Args)]
pub struct LayoutArgs {
    /// Chunk sizes by dimension, e.g. `time=24,lat=181,lon=360`; other dimensions use the heuristic
    #[arg(long, value_name = "DIM=N,...", default_value = "")]
    pub chunks: String,
    /// Shard sizes by dimension (Zarr v3); one rank writes each whole shard
    #[arg(long, value_name = "DIM=N,...", default_value = "")]
    pub shards: String,
    /// Target uncompressed MiB per chunk for dimensions not given in --chunks
    #[arg(long, value_name = "MIB", default_value_t = DEFAULT_TARGET_CHUNK_BYTES >> 20)]
    pub target_chunk_mib: u64,
    /// Leave out variables whose type Zarr cannot hold (compound, opaque, enum, vlen), with a warning
    #[arg(long)]
    pub skip_unsupported: bool,
}

/// `convert` options.
#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// Input netCDF file (netCDF-4/HDF5 or netCDF-3)
    pub input: PathBuf,
    /// Output Zarr store (a directory)
    #[arg(short, long)]
    pub output: PathBuf,
    /// Compression: zstd:LEVEL, blosc:CNAME:CLEVEL:SHUFFLE, gzip:LEVEL, zlib:LEVEL, none
    #[arg(long, default_value = "zstd:3")]
    pub codec: String,
    /// Zarr format of the output
    #[arg(long, value_enum, default_value = "3")]
    pub zarr_format: FormatArg,
    /// Replace an existing store, only if zarrforge wrote it
    #[arg(long)]
    pub overwrite: bool,
    /// Encoder threads per rank (default: the PUs of the rank's cpuset)
    #[arg(long)]
    pub threads: Option<usize>,
    /// Do not show progress on a terminal
    #[arg(long)]
    pub quiet: bool,
    /// Write the run report as JSON to this file (rank 0)
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Output layout.
    #[command(flatten)]
    pub layout: LayoutArgs,
}

/// `inspect` options.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Input netCDF file
    pub input: PathBuf,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

/// `plan` options.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Input netCDF file
    pub input: PathBuf,
    /// Number of ranks to plan for (default: the ranks of this run)
    #[arg(long)]
    pub ranks: Option<usize>,
    /// Compression (recorded in the plan)
    #[arg(long, default_value = "zstd:3")]
    pub codec: String,
    /// List every unit with its rank
    #[arg(long)]
    pub units: bool,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
    /// Output layout.
    #[command(flatten)]
    pub layout: LayoutArgs,
}

impl LayoutArgs {
    fn apply(&self, cfg: &mut ConvertConfig) -> Result<(), ConfigError> {
        cfg.chunks = DimSizes::parse("--chunks", &self.chunks)?;
        cfg.shards = DimSizes::parse("--shards", &self.shards)?;
        cfg.target_chunk_bytes = self.target_chunk_mib.max(1) << 20;
        cfg.skip_unsupported = self.skip_unsupported;
        Ok(())
    }
}

fn base_config(input: PathBuf, output: PathBuf, codec: &str) -> Result<ConvertConfig, ConfigError> {
    Ok(ConvertConfig {
        input,
        output,
        chunks: DimSizes::default(),
        shards: DimSizes::default(),
        codec: Codec::parse(codec)?,
        format: ZarrFormat::V3,
        overwrite: false,
        skip_unsupported: false,
        target_chunk_bytes: DEFAULT_TARGET_CHUNK_BYTES,
        threads: None,
        progress: true,
    })
}

impl ConvertArgs {
    /// The validated configuration.
    ///
    /// # Errors
    /// [`ConfigError`] for a bad `--chunks`, `--shards` or `--codec`.
    pub fn to_config(&self) -> Result<ConvertConfig, ConfigError> {
        let mut cfg = base_config(self.input.clone(), self.output.clone(), &self.codec)?;
        self.layout.apply(&mut cfg)?;
        cfg.format = match self.zarr_format {
            FormatArg::V2 => ZarrFormat::V2,
            FormatArg::V3 => ZarrFormat::V3,
        };
        cfg.overwrite = self.overwrite;
        cfg.threads = self.threads.filter(|&t| t > 0);
        cfg.progress = !self.quiet;
        cfg.validate()?;
        Ok(cfg)
    }
}

impl PlanArgs {
    /// The configuration the plan is computed for.
    ///
    /// # Errors
    /// [`ConfigError`] for a bad option.
    pub fn to_config(&self) -> Result<ConvertConfig, ConfigError> {
        let mut cfg = base_config(self.input.clone(), PathBuf::new(), &self.codec)?;
        self.layout.apply(&mut cfg)?;
        Ok(cfg)
    }
}
