//! Command-line parsing only; [`ConvertArgs::to_config`] builds the validated
//! [`ConvertConfig`].

// The doc comments below are the --help text, shown to users as written.
#![allow(clippy::doc_markdown)]

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::cli::config::{
    AppendMode, AttrsJson, Codec, ConvertConfig, DimSizes, IcechunkOutput, KeepRule, NewDim,
    RegionSpec, VirtualFallback, VirtualOutput, ZarrFormat,
};
use crate::cli::error::ConfigError;

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
#[allow(clippy::large_enum_variant)] // parsed once per run
pub enum Command {
    /// Convert netCDF files into one Zarr store (concatenated and merged), or append to one.
    Convert(ConvertArgs),
    /// Show the structure of a netCDF file: dims, variables, dtypes, chunking, filters, attributes.
    Inspect(InspectArgs),
    /// Show which rank writes which chunks, bytes per rank and the imbalance.
    Plan(PlanArgs),
    /// The bitwise real information of float variables (Klöwer et al. 2021) and the mantissa bits `--keepbits auto` keeps, without writing anything.
    Bitinfo(BitinfoArgs),
    /// Write a synthetic model-output-like netCDF-4 file (demo and benchmark data).
    Generate(GenerateArgs),
    /// Benchmark: generate a model-like dataset in parallel (or take given inputs), convert it, report per rank
    Bench(BenchArgs),
    /// Compare a store with its sources, independently of the converter: structure, attributes with their types, raw and CF-decoded values.
    Verify(VerifyArgs),
    /// Work with recipe files.
    #[command(subcommand)]
    Recipe(RecipeCommand),
    /// Reclaim the space of abandoned runs in an Icechunk repository (their chunks, fork snapshots); history is kept.
    Gc(GcArgs),
}

/// `gc` options.
#[derive(Debug, Args)]
pub struct GcArgs {
    /// The Icechunk repository (a directory or s3://BUCKET/PREFIX)
    pub repository: PathBuf,
    /// Delete only objects written more than this many hours ago (another tool's writer may be between its writes and its commit)
    #[arg(long, default_value_t = 24.0, value_name = "HOURS")]
    pub older_than_hours: f64,
    /// Count what would be deleted; delete nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Also reclaim the chunks of an interrupted zarrforge run: its journal is removed, so it can no longer be resumed
    #[arg(long)]
    pub discard_interrupted: bool,
}

/// `bitinfo` options.
#[derive(Debug, Args)]
pub struct BitinfoArgs {
    /// Inputs and how they combine.
    #[command(flatten)]
    pub input: InputArgs,
    /// The variables and the information level, as `convert --keepbits` (fixed bits show the information too) [default: all=auto:0.99]
    #[arg(long, value_name = "VAR=N|all=N|auto[:LEVEL]")]
    pub keepbits: Vec<String>,
    /// Print JSON instead of text: per variable and dimension, the bit-pair counts, the information per bit and the bits kept
    #[arg(long)]
    pub json: bool,
}

impl BitinfoArgs {
    /// The configuration of the analysis.
    ///
    /// # Errors
    /// [`ConfigError`] for a bad option or recipe.
    pub fn to_config(&self) -> Result<ConvertConfig, ConfigError> {
        let mut cfg = self.input.base()?;
        keepbits(&self.keepbits, &mut cfg)?;
        if cfg.keepbits.is_empty() {
            cfg.keepbits = KeepRule::parse_list("auto")?;
        }
        cfg.progress = false;
        Ok(cfg)
    }
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

impl From<FormatArg> for ZarrFormat {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::V2 => Self::V2,
            FormatArg::V3 => Self::V3,
        }
    }
}

/// `--attrs-json`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum AttrsJsonArg {
    /// The bare tokens NaN, Infinity, -Infinity, as Python's json writes them: zarr-python and xarray read them back as floats; tensorstore and zarrita refuse such documents
    Python,
    /// The strings "NaN", "Infinity", "-Infinity": every document is strict JSON (tensorstore, zarrita and other strict parsers read it); readers get those attributes as text
    Strict,
}

impl From<AttrsJsonArg> for AttrsJson {
    fn from(a: AttrsJsonArg) -> Self {
        match a {
            AttrsJsonArg::Python => Self::Python,
            AttrsJsonArg::Strict => Self::Strict,
        }
    }
}

/// Options that shape the output (shared by `convert` and `plan`).
#[derive(Debug, Args)]
pub struct LayoutArgs {
    /// Chunk sizes by dimension, e.g. `time=24,lat=181,lon=360`; other dimensions use the heuristic
    #[arg(long, value_name = "DIM=N,...")]
    pub chunks: Option<String>,
    /// Shard sizes by dimension (Zarr v3); one rank writes each whole shard
    #[arg(long, value_name = "DIM=N,...")]
    pub shards: Option<String>,
    /// Target uncompressed MiB per chunk for dimensions not given in --chunks [default: 4]
    #[arg(long, value_name = "MIB")]
    pub target_chunk_mib: Option<u64>,
    /// Leave out variables whose type Zarr cannot hold (compound, opaque, vlen), and attributes of such types, with a warning
    #[arg(long)]
    pub skip_unsupported: bool,
    /// Convert plain HDF5 files whose datasets have no netCDF dimensions, naming the dimensions as netCDF-C does (phony_dim_0, phony_dim_1, ...; what xarray's netCDF4 engine shows)
    #[arg(long)]
    pub phony_dims: bool,
    /// Seconds allowed to read one input file's structure, in a child process that a crash or a hang of netCDF-C/HDF5 on a damaged file cannot take down; 0 reads it in the rank itself [default: 60]
    #[arg(long, value_name = "SECONDS")]
    pub scan_timeout: Option<u64>,
}

/// Which files, and how they combine (shared by `convert` and `plan`).
#[derive(Debug, Args)]
pub struct InputArgs {
    /// Input netCDF files or globs (quoted globs are expanded by zarrforge, sorted naturally)
    #[arg(value_name = "INPUT")]
    pub inputs: Vec<String>,
    /// A file listing input paths, one per line (relative to the list's directory)
    #[arg(long, value_name = "FILE")]
    pub file_list: Option<PathBuf>,
    /// A recipe file (TOML, see docs/recipes.md); flags given here override it
    #[arg(long, value_name = "FILE")]
    pub recipe: Option<PathBuf>,
    /// Dimension to concatenate the files along [default: their common unlimited dimension]
    #[arg(long, value_name = "DIM")]
    pub concat_dim: Option<String>,
    /// Units of the time coordinate in the output, e.g. "hours since 2000-01-01" [default: the first file's]
    #[arg(long, value_name = "UNITS")]
    pub time_units: Option<String>,
    /// Allow gaps between files along the concatenation dimension
    #[arg(long)]
    pub allow_gaps: bool,
    /// Allow files that overlap or repeat coordinate values along the concatenation dimension
    #[arg(long)]
    pub allow_overlaps: bool,
    /// Check that variables without the concatenation dimension have equal values in every file
    #[arg(long)]
    pub check_static_values: bool,
    /// A new outermost dimension from the files, e.g. an ensemble's members: `NAME:ATTR` takes each file's value from a global attribute (`member:variant_label`), `NAME:/REGEX/` from its name (one capture group)
    #[arg(long, value_name = "NAME:SOURCE")]
    pub new_dim: Option<String>,
    /// The values of --new-dim in their order along it, comma-separated [default: the values found, in natural order]
    #[arg(long, value_name = "A,B,...", requires = "new_dim")]
    pub new_dim_order: Option<String>,
    /// Fill cells of the files' grid (member × step) that no file holds with the fill value, and list them, rather than refuse
    #[arg(long)]
    pub allow_missing: bool,
}

/// What `--virtual` does with a variable that cannot be referenced.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum VirtualFallbackArg {
    /// Copy its values, with a warning naming it
    Copy,
    /// Stop, naming the first differing file and property
    Refuse,
}

/// What `--append` does with files whose steps the store already holds.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum AppendModeArg {
    /// Refuse the append
    Error,
    /// Leave those files out (an append that already ran does nothing)
    SkipExisting,
}

/// `--exchange`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ExchangeArg {
    /// The cheaper path for each variable
    Auto,
    /// Every variable through the exchange between ranks (except strings)
    Always,
    /// Every variable read directly by the rank that writes it
    Never,
}

/// `convert` options.
#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// Inputs and how they combine.
    #[command(flatten)]
    pub input: InputArgs,
    /// Output Zarr store (a directory)
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Compression: zstd:LEVEL, blosc:CNAME:CLEVEL:SHUFFLE, gzip:LEVEL, zlib:LEVEL, none, or source (keep the source's chunks, shuffle and deflate: compressed chunks are copied as stored) [default: zstd:3]
    #[arg(long)]
    pub codec: Option<String>,
    /// Round float variables before compression, keeping N mantissa bits (BitRound: round to nearest, ties to even; NaN, ±Inf and fill values unchanged; the CF quantization attributes are recorded): VAR=N or all=N, or VAR=auto[:LEVEL] / auto[:LEVEL] for the bits that hold LEVEL of each variable's real information (Klöwer et al. 2021; LEVEL default 0.99); comma-separated or repeated, a variable's own item wins over all
    #[arg(long, value_name = "VAR=N|all=N|auto[:LEVEL]")]
    pub keepbits: Vec<String>,
    /// Zarr format of the output [default: 3]
    #[arg(long, value_enum)]
    pub zarr_format: Option<FormatArg>,
    /// How NaN and infinite float attribute values are written in the metadata (the only values JSON has no number for) [default: python; on --append: as the store has them]
    #[arg(long, value_enum, value_name = "MODE")]
    pub attrs_json: Option<AttrsJsonArg>,
    /// Replace an existing store, only if zarrforge wrote it
    #[arg(long)]
    pub overwrite: bool,
    /// Add the inputs' steps along the concatenation dimension to an existing store written by zarrforge (creates it when missing)
    #[arg(long)]
    pub append: bool,
    /// Rewrite a region of an existing store written by zarrforge with the inputs (a backfill): `auto` (where the inputs' coordinate values lie in the store), or DIM=START..END in coordinate values, both included (dates for time: time=2000-01-08..2000-01-14); every variable along DIM is rewritten there, nothing else
    #[arg(long, value_name = "auto|DIM=START..END", conflicts_with_all = ["append", "overwrite"])]
    pub region: Option<String>,
    /// With --append: what to do with inputs whose steps the store already holds [default: error]
    #[arg(long, value_enum)]
    pub append_mode: Option<AppendModeArg>,
    /// Finish an interrupted conversion with the same arguments: units its journal records are skipped (any number of ranks)
    #[arg(long)]
    pub resume: bool,
    /// Keep the journal (.zarrforge/journal) after the commit
    #[arg(long)]
    pub keep_journal: bool,
    /// Take over the lock of another run on the output, even a live-looking one (only when that
    /// run is known to be gone: a run whose lock is taken stops before its commit)
    #[arg(long)]
    pub break_lock: bool,
    /// Write into an Icechunk repository at -o (a directory or s3://BUCKET/PREFIX; created when absent): every rank writes, rank 0 commits one versioned snapshot once every rank has succeeded (Zarr v3 only)
    #[arg(long)]
    pub icechunk: bool,
    /// With --icechunk: the branch to commit to (created from main's tip when absent) [default: main]
    #[arg(long, requires = "icechunk", value_name = "NAME")]
    pub branch: Option<String>,
    /// With --icechunk: the snapshot's message [default: names the command]
    #[arg(long, requires = "icechunk", value_name = "TEXT")]
    pub message: Option<String>,
    /// With --icechunk: tag the new snapshot
    #[arg(long, requires = "icechunk", value_name = "NAME")]
    pub tag: Option<String>,
    /// Reference the inputs' stored chunks instead of copying them (no data is read): into an Icechunk repository (with --icechunk) or a kerchunk reference file (-o NAME.json); coordinates and small variables are copied
    #[arg(long = "virtual")]
    pub virtual_refs: bool,
    /// With --virtual: a variable whose files differ (chunks, filters, byte order) or that uses a filter Zarr readers cannot decode is copied, with a warning (copy), or stops the job (refuse); a kerchunk file cannot hold copies and always refuses [default: copy]
    #[arg(long, value_enum, requires = "virtual_refs", value_name = "MODE")]
    pub virtual_fallback: Option<VirtualFallbackArg>,
    /// With --virtual: copy variables smaller than this many bytes (whole output variable) rather than reference them; coordinates are always copied [default: 65536]
    #[arg(long, requires = "virtual_refs", value_name = "BYTES")]
    pub virtual_copy_below: Option<u64>,
    /// With --virtual: give the location of a file under OLD as under NEW (a directory, or s3://BUCKET/PREFIX), for readers that see the files there; repeatable, the first match wins
    #[arg(long, requires = "virtual_refs", value_name = "OLD=NEW")]
    pub virtual_prefix: Vec<String>,
    /// After the commit, compare every value of the store with the sources (as `zarrforge verify`)
    #[arg(long)]
    pub verify: bool,
    /// Put a provenance line (time, zarrforge version, command) first in the global `history` attribute
    #[arg(long)]
    pub history: bool,
    /// Encoder threads and memory of each rank.
    #[command(flatten)]
    pub workers: WorkerArgs,
    /// Progress and events.
    #[command(flatten)]
    pub progress: ProgressArgs,
    /// Write the run report as JSON to this file (rank 0)
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Output layout.
    #[command(flatten)]
    pub layout: LayoutArgs,
}

/// Encoder threads and memory budget of each rank (`convert`, `bench`).
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Encoder threads per rank (default: the PUs of the rank's cpuset)
    #[arg(long)]
    pub threads: Option<usize>,
    /// Memory budget per rank, e.g. 300M or 2G: sizes the caches and the units in flight, and
    /// refuses a layout whose units cannot fit; on the exchange path it sizes the rounds
    /// [default: about 250 MiB of caches on the direct path, 512 MiB on the exchange path]
    #[arg(long, value_name = "SIZE")]
    pub max_memory: Option<String>,
    /// How output units get their data: `direct` reads each unit's region from the inputs on the
    /// rank that writes it; `exchange` reads and decodes every source chunk once, on one rank, and
    /// sends its pieces to the ranks that write the units needing them (MPI all-to-all), in rounds
    /// that fit --max-memory. `auto` picks the cheaper path for each variable [default: auto]
    #[arg(long, value_enum)]
    pub exchange: Option<ExchangeArg>,
}

impl WorkerArgs {
    /// Sets `cfg.threads` and `cfg.max_memory`.
    ///
    /// # Errors
    /// [`ConfigError::BadValue`] for a `--max-memory` that is not a size.
    pub fn apply(&self, cfg: &mut ConvertConfig) -> Result<(), ConfigError> {
        cfg.threads = self.threads.filter(|&t| t > 0);
        if let Some(x) = self.exchange {
            cfg.exchange = match x {
                ExchangeArg::Auto => crate::cli::config::ExchangeMode::Auto,
                ExchangeArg::Always => crate::cli::config::ExchangeMode::Always,
                ExchangeArg::Never => crate::cli::config::ExchangeMode::Never,
            };
        }
        if let Some(m) = &self.max_memory {
            cfg.max_memory = Some(crate::cli::config::parse_memory("--max-memory", m)?);
        }
        Ok(())
    }
}

/// `inspect` options.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Input netCDF file, or a store (a directory or s3://BUCKET/PREFIX): its state, arrays, journal and lock
    pub input: PathBuf,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
    /// The store is an Icechunk repository (read at --ref)
    #[arg(long)]
    pub icechunk: bool,
    /// With --icechunk: the branch, tag or snapshot id to read [default: main]
    #[arg(long = "ref", requires = "icechunk", value_name = "REF")]
    pub reference: Option<String>,
}

/// `plan` options.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Inputs and how they combine.
    #[command(flatten)]
    pub input: InputArgs,
    /// Number of ranks to plan for (default: the ranks of this run)
    #[arg(long)]
    pub ranks: Option<usize>,
    /// Ranks per node of the planned job (with --ranks): gives its node count, and its threads
    /// per rank as this node's PUs shared by that many ranks (unless --threads)
    #[arg(long, requires = "ranks", value_name = "N", value_parser = positive_count)]
    pub ranks_per_node: Option<usize>,
    /// Compression (recorded in the plan) [default: zstd:3]
    #[arg(long)]
    pub codec: Option<String>,
    /// List every unit with its rank
    #[arg(long)]
    pub units: bool,
    /// Show the Icechunk commit of the plan: chunk references, commits and manifests
    #[arg(long)]
    pub icechunk: bool,
    /// Threads, memory and exchange of each rank, as `convert` would use them.
    #[command(flatten)]
    pub workers: WorkerArgs,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
    /// Output layout.
    #[command(flatten)]
    pub layout: LayoutArgs,
}

/// `bench` options.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Inputs to convert instead of the generated dataset
    #[arg(value_name = "INPUT")]
    pub inputs: Vec<String>,
    /// Working directory: generated inputs (DIR/inputs) and the store (DIR/bench.zarr)
    #[arg(long, value_name = "DIR", default_value = "zarrforge-bench")]
    pub dir: PathBuf,
    /// Where the store goes instead of DIR/bench.zarr: a directory or s3://BUCKET/PREFIX (replaced at each run)
    #[arg(long, value_name = "STORE")]
    pub output: Option<PathBuf>,
    /// Files to generate
    #[arg(long, default_value_t = 16)]
    pub files: usize,
    /// Time steps per generated file
    #[arg(long, default_value_t = 24)]
    pub time: usize,
    /// Latitudes of the generated fields
    #[arg(long, default_value_t = 361)]
    pub lat: usize,
    /// Longitudes of the generated fields
    #[arg(long, default_value_t = 720)]
    pub lon: usize,
    /// Reuse generated inputs already in DIR (same sizes)
    #[arg(long)]
    pub reuse: bool,
    /// Only generate the inputs (in parallel), do not convert
    #[arg(long)]
    pub generate_only: bool,
    /// Compression of the output [default: zstd:3]
    #[arg(long)]
    pub codec: Option<String>,
    /// Round float variables before compression (as `convert --keepbits`)
    #[arg(long, value_name = "VAR=N|all=N|auto[:LEVEL]")]
    pub keepbits: Vec<String>,
    /// Zarr format of the output [default: 3]
    #[arg(long, value_enum)]
    pub zarr_format: Option<FormatArg>,
    /// Encoder threads and memory of each rank.
    #[command(flatten)]
    pub workers: WorkerArgs,
    /// Print the report as JSON
    #[arg(long)]
    pub json: bool,
    /// Also write the JSON report to this file (rank 0)
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Output layout [default chunks: time=24,lat=181,lon=360 for generated data, except with --codec source].
    #[command(flatten)]
    pub layout: LayoutArgs,
}

impl BenchArgs {
    /// The conversion the benchmark runs (inputs filled in by the caller).
    ///
    /// # Errors
    /// [`ConfigError`] for a bad option.
    pub fn to_config(&self, inputs: Vec<String>) -> Result<ConvertConfig, ConfigError> {
        let out = self
            .output
            .clone()
            .unwrap_or_else(|| self.dir.join("bench.zarr"));
        let mut cfg = ConvertConfig::new(inputs, out);
        let source = self.codec.as_deref().map(str::trim) == Some("source");
        if self.inputs.is_empty() && self.layout.chunks.is_none() && !source {
            cfg.chunks = DimSizes::parse("--chunks", "time=24,lat=181,lon=360")?;
        }
        self.layout.apply(&mut cfg)?;
        if let Some(c) = &self.codec {
            cfg.codec = Codec::parse(c)?;
        }
        keepbits(&self.keepbits, &mut cfg)?;
        if let Some(f) = self.zarr_format {
            cfg.format = f.into();
        }
        cfg.overwrite = true;
        cfg.progress = false;
        self.workers.apply(&mut cfg)?;
        cfg.validate()?;
        Ok(cfg)
    }
}

/// How a run shows itself while it runs (`convert`, `verify`).
#[derive(Debug, Args)]
pub struct ProgressArgs {
    /// Do not show progress (events are still written)
    #[arg(long)]
    pub quiet: bool,
    /// Seconds between two progress lines of the whole job on rank 0's stderr when it is not a terminal (a batch log); on a terminal a live bar is shown instead
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0, value_parser = positive_seconds)]
    pub progress_interval: f64,
    /// Write the run's events as JSON Lines to this file (rank 0), `-` for stdout: started, phases, progress, warnings, failures, then committed (convert), verified (verify) or failed (schema in docs/events.md)
    #[arg(long, value_name = "FILE")]
    pub events: Option<PathBuf>,
}

impl ProgressArgs {
    /// Whether the events go to stdout (`--events -`): then nothing else
    /// may.
    pub fn events_on_stdout(&self) -> bool {
        self.events.as_deref() == Some(std::path::Path::new("-"))
    }
}

/// `verify` options.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The source files (or globs), then the store: `SOURCE... STORE`
    #[arg(value_name = "PATH", required = true, num_args = 1..)]
    pub paths: Vec<String>,
    /// A file listing source paths, one per line
    #[arg(long, value_name = "FILE")]
    pub file_list: Option<PathBuf>,
    /// The recipe the store was converted with (its inputs, renames, selection and attribute edits)
    #[arg(long, value_name = "FILE")]
    pub recipe: Option<PathBuf>,
    /// Dimension the sources were concatenated along, as given to convert [default: their common unlimited dimension]
    #[arg(long, value_name = "DIM")]
    pub concat_dim: Option<String>,
    /// Time units the store's concatenation coordinate must have, as given to convert (values in other units are compared as instants)
    #[arg(long, value_name = "UNITS")]
    pub time_units: Option<String>,
    /// Accepted for compatibility: files are placed by their coordinate values, gaps need no flag
    #[arg(long)]
    pub allow_gaps: bool,
    /// Accepted for compatibility: files are placed by their coordinate values, overlaps need no flag
    #[arg(long)]
    pub allow_overlaps: bool,
    /// The new dimension made from the files, as given to convert (`NAME:ATTR` or `NAME:/REGEX/`)
    #[arg(long, value_name = "NAME:SOURCE")]
    pub new_dim: Option<String>,
    /// The order of --new-dim's values, as given to convert
    #[arg(long, value_name = "A,B,...", requires = "new_dim")]
    pub new_dim_order: Option<String>,
    /// Cells of --new-dim's grid that no file holds are expected, as given to convert: they must read as the fill value [default: each is a difference]
    #[arg(long)]
    pub allow_missing: bool,
    /// Files (a path or glob) a region of the store was rewritten with (`convert --region`); repeatable, in the order the backfills were run: where their steps are also earlier files', their values are the expected ones
    #[arg(long, value_name = "PATH")]
    pub backfill: Vec<String>,
    /// How the store writes NaN and infinite float attributes, as given to convert: `python` (bare tokens) or `strict` (every metadata document must be strict JSON, and those attributes the strings "NaN", "Infinity", "-Infinity") [default: python]
    #[arg(long, value_enum, value_name = "MODE", hide_possible_values = true)]
    pub attrs_json: Option<AttrsJsonArg>,
    /// Write the verification report as JSON to this file (rank 0)
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// The store is an Icechunk repository (read at --ref)
    #[arg(long)]
    pub icechunk: bool,
    /// With --icechunk: the branch, tag or snapshot id to read [default: main]
    #[arg(long = "ref", requires = "icechunk", value_name = "REF")]
    pub reference: Option<String>,
    /// Progress and events.
    #[command(flatten)]
    pub progress: ProgressArgs,
}

impl VerifyArgs {
    /// The configuration: sources and options as `convert` had them, the
    /// store as output.
    ///
    /// # Errors
    /// [`ConfigError`] for a bad recipe or missing store.
    pub fn to_config(&self) -> Result<ConvertConfig, ConfigError> {
        let (store, sources) = match self.paths.split_last() {
            Some((s, rest)) => (PathBuf::from(s), rest.to_vec()),
            None => return Err(ConfigError::NoOutput),
        };
        let input = InputArgs {
            inputs: sources,
            file_list: self.file_list.clone(),
            recipe: self.recipe.clone(),
            concat_dim: self.concat_dim.clone(),
            time_units: self.time_units.clone(),
            allow_gaps: self.allow_gaps,
            allow_overlaps: self.allow_overlaps,
            check_static_values: false,
            new_dim: self.new_dim.clone(),
            new_dim_order: self.new_dim_order.clone(),
            allow_missing: self.allow_missing,
        };
        let mut cfg = input.base()?;
        cfg.output = store;
        if let Some(a) = self.attrs_json {
            cfg.attrs_json = Some(a.into());
        }
        cfg.history = None;
        cfg.progress = false;
        if self.icechunk {
            cfg.icechunk = Some(IcechunkOutput::reader(self.reference.clone()));
        }
        if cfg.inputs.is_empty() && cfg.file_list.is_none() {
            return Err(ConfigError::NoInputs);
        }
        Ok(cfg)
    }
}

/// `recipe` subcommands.
#[derive(Debug, Subcommand)]
pub enum RecipeCommand {
    /// Validate a recipe: parse it, scan its inputs and combine them, without converting
    Check(RecipeCheckArgs),
}

/// `recipe check` options.
#[derive(Debug, Args)]
pub struct RecipeCheckArgs {
    /// The recipe file
    pub recipe: PathBuf,
}

/// The command line as one string, for the provenance line.
pub fn command_line() -> String {
    std::env::args()
        .map(|a| {
            if a.is_empty() || a.contains(|c: char| c.is_whitespace() || "'\"$*?[]".contains(c)) {
                format!("'{}'", a.replace('\'', "'\\''"))
            } else {
                a
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

impl LayoutArgs {
    fn apply(&self, cfg: &mut ConvertConfig) -> Result<(), ConfigError> {
        if let Some(c) = &self.chunks {
            cfg.chunks = DimSizes::parse("--chunks", c)?;
        }
        if let Some(s) = &self.shards {
            cfg.shards = DimSizes::parse("--shards", s)?;
        }
        if let Some(m) = self.target_chunk_mib {
            cfg.target_chunk_bytes = m.max(1) << 20;
        }
        cfg.skip_unsupported |= self.skip_unsupported;
        cfg.phony_dims |= self.phony_dims;
        if let Some(s) = self.scan_timeout {
            cfg.scan_timeout = (s > 0).then(|| std::time::Duration::from_secs(s));
        }
        Ok(())
    }
}

impl InputArgs {
    /// A configuration from the recipe (if any) with these flags applied.
    fn base(&self) -> Result<ConvertConfig, ConfigError> {
        let mut cfg = ConvertConfig::new(Vec::new(), PathBuf::new());
        if let Some(path) = &self.recipe {
            crate::cli::recipe::Recipe::load(path)?.apply(path, &mut cfg)?;
        }
        if !self.inputs.is_empty() {
            cfg.inputs.clone_from(&self.inputs);
        }
        if let Some(f) = &self.file_list {
            cfg.file_list = Some(f.clone());
        }
        if let Some(d) = &self.concat_dim {
            cfg.combine.concat_dim = Some(d.clone());
        }
        if let Some(u) = &self.time_units {
            cfg.combine.time_units = Some(u.clone());
        }
        cfg.combine.allow_gaps |= self.allow_gaps;
        cfg.combine.allow_overlaps |= self.allow_overlaps;
        cfg.combine.check_static_values |= self.check_static_values;
        if let Some(spec) = &self.new_dim {
            cfg.combine.new_dim = Some(NewDim::parse(spec)?);
        }
        if let Some(order) = &self.new_dim_order {
            cfg.combine.new_dim = cfg.combine.new_dim.take().map(|d| d.with_order(order));
        }
        cfg.combine.allow_missing |= self.allow_missing;
        Ok(cfg)
    }
}

impl ConvertArgs {
    /// The validated configuration.
    ///
    /// # Errors
    /// [`ConfigError`] for a bad option or recipe.
    pub fn to_config(&self) -> Result<ConvertConfig, ConfigError> {
        let mut cfg = self.input.base()?;
        self.layout.apply(&mut cfg)?;
        if let Some(o) = &self.output {
            cfg.output.clone_from(o);
        }
        if cfg.output.as_os_str().is_empty() {
            return Err(ConfigError::NoOutput);
        }
        if let Some(c) = &self.codec {
            cfg.codec = Codec::parse(c)?;
        }
        keepbits(&self.keepbits, &mut cfg)?;
        if let Some(f) = self.zarr_format {
            cfg.format = f.into();
        }
        if let Some(a) = self.attrs_json {
            cfg.attrs_json = Some(a.into());
        }
        cfg.overwrite = self.overwrite;
        cfg.append = self.append;
        if let Some(r) = &self.region {
            cfg.region = Some(RegionSpec::parse(r)?);
            cfg.append = true;
        }
        cfg.resume = self.resume;
        cfg.keep_journal = self.keep_journal;
        cfg.break_lock = self.break_lock;
        cfg.verify = self.verify;
        if self.icechunk {
            // Icechunk reads metadata as strict JSON.
            cfg.attrs_json = cfg.attrs_json.or(Some(AttrsJson::Strict));
            cfg.icechunk = Some(IcechunkOutput {
                branch: self.branch.clone().unwrap_or_else(|| "main".into()),
                message: self.message.clone(),
                tag: self.tag.clone(),
                command: vec![command_line()],
                reference: None,
            });
        }
        if self.virtual_refs {
            self.virtual_config(&mut cfg)?;
        }
        if let Some(m) = self.append_mode {
            cfg.append_mode = match m {
                AppendModeArg::Error => AppendMode::Error,
                AppendModeArg::SkipExisting => AppendMode::SkipExisting,
            };
        }
        if self.history || cfg.history.is_some() {
            cfg.history = Some(format!(
                "{}: zarrforge {}: {}",
                crate::system::environment::utc_now(),
                env!("CARGO_PKG_VERSION"),
                command_line()
            ));
        }
        self.workers.apply(&mut cfg)?;
        cfg.progress = !self.progress.quiet;
        cfg.validate()?;
        Ok(cfg)
    }
}

impl ConvertArgs {
    /// The `--virtual` settings; a kerchunk file output (`-o NAME.json`)
    /// becomes its staging store.
    fn virtual_config(&self, cfg: &mut ConvertConfig) -> Result<(), ConfigError> {
        let mut v = VirtualOutput {
            fallback: match self.virtual_fallback {
                Some(VirtualFallbackArg::Refuse) => VirtualFallback::Refuse,
                _ => VirtualFallback::Copy,
            },
            copy_below: self
                .virtual_copy_below
                .unwrap_or(crate::cli::config::VIRTUAL_COPY_BELOW),
            ..VirtualOutput::default()
        };
        for p in &self.virtual_prefix {
            let (old, new) = p
                .split_once('=')
                .filter(|(o, n)| !o.is_empty() && !n.is_empty())
                .ok_or_else(|| ConfigError::BadValue {
                    flag: "--virtual-prefix".into(),
                    value: p.clone(),
                    expected: "OLD=NEW".into(),
                })?;
            v.prefixes.push((old.to_string(), new.to_string()));
        }
        if cfg.region.is_some() {
            return Err(ConfigError::VirtualOutput(
                "does not rewrite regions: references point at whole files; convert the corrected file set again".into(),
            ));
        }
        if cfg.icechunk.is_none() {
            let ext = cfg
                .output
                .extension()
                .map(|e| e.to_string_lossy().to_ascii_lowercase());
            match ext.as_deref() {
                Some("json") => {}
                Some("parq" | "parquet") => {
                    return Err(ConfigError::VirtualOutput(
                        "does not write kerchunk Parquet yet: use -o NAME.json, or --icechunk".into(),
                    ))
                }
                _ => {
                    return Err(ConfigError::VirtualOutput(format!(
                        "writes references into an Icechunk repository (--icechunk) or a kerchunk file (-o NAME.json), not into {}",
                        cfg.output.display()
                    )))
                }
            }
            if cfg.output.to_string_lossy().contains("://") {
                return Err(ConfigError::VirtualOutput(
                    "writes a kerchunk file to a local path only (or use --icechunk for object storage)".into(),
                ));
            }
            let refs = std::path::absolute(&cfg.output).unwrap_or_else(|_| cfg.output.clone());
            cfg.output = VirtualOutput::staging(&refs);
            v.kerchunk = Some(refs);
            cfg.format = ZarrFormat::V2;
        }
        cfg.virtual_refs = Some(v);
        Ok(())
    }
}

impl PlanArgs {
    /// The configuration the plan is computed for.
    ///
    /// # Errors
    /// [`ConfigError`] for a bad option.
    pub fn to_config(&self) -> Result<ConvertConfig, ConfigError> {
        let mut cfg = self.input.base()?;
        self.layout.apply(&mut cfg)?;
        if let Some(c) = &self.codec {
            cfg.codec = Codec::parse(c)?;
        }
        self.workers.apply(&mut cfg)?;
        cfg.progress = false;
        Ok(cfg)
    }
}

/// Sets `cfg.keepbits` from `--keepbits` items (replacing a recipe's).
fn keepbits(items: &[String], cfg: &mut ConvertConfig) -> Result<(), ConfigError> {
    if items.is_empty() {
        return Ok(());
    }
    cfg.keepbits = Vec::new();
    for i in items {
        cfg.keepbits.extend(KeepRule::parse_list(i)?);
    }
    Ok(())
}

/// A count of at least 1.
fn positive_count(v: &str) -> Result<usize, String> {
    match v.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("'{v}' is not a count of at least 1")),
    }
}

/// A number of seconds of at least 0.1.
fn positive_seconds(v: &str) -> Result<f64, String> {
    match v.parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.1 => Ok(x),
        _ => Err(format!("'{v}' is not a number of seconds of at least 0.1")),
    }
}
