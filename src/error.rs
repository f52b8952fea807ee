//! Error types, one enum per pipeline stage.
//!
//! Messages are lower-case, carry the values involved (file, variable,
//! dimension) and keep their source chain, so the binary can print the whole
//! chain once on one line.

use std::path::PathBuf;

/// A boxed error from a library (zarrs, serde) kept as a source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Any error zarrforge reports.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Invalid command-line option or option value.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The source could not be read or understood.
    #[error(transparent)]
    Schema(#[from] SchemaError),
    /// The input files do not fit together.
    #[error(transparent)]
    Combine(Box<CombineError>),
    /// An append does not fit the existing store.
    #[error(transparent)]
    Append(Box<AppendError>),
    /// Reading variable data failed.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// Encoding or writing the store failed.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// One or more ranks failed; the messages are collected per rank.
    #[error("{} rank(s) failed: {}", .0.len(), .0.iter().map(|f| format!("[rank {}] {}", f.rank, f.message)).collect::<Vec<_>>().join("; "))]
    Ranks(Vec<RankFailure>),
    /// A panic caught on this rank.
    #[error(transparent)]
    Panic(#[from] Panicked),
    /// `verify` found differences.
    #[error("{0}")]
    Verify(String),
    /// `verify` could not read the store or its sources.
    #[error(transparent)]
    Verifying(#[from] VerifyError),
    /// An MPI-level failure (message exchange).
    #[error("mpi: {0}")]
    Mpi(String),
}

/// How a rank failed, as the ranks tell each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// An error to fix.
    Failed,
    /// Stopped by a signal with its finished units recorded: resumable.
    Interrupted,
}

/// One rank's failure, gathered from every rank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RankFailure {
    /// The rank.
    pub rank: i32,
    /// Its kind.
    pub kind: FailureKind,
    /// The error chain on one line.
    pub message: String,
}

impl From<CombineError> for Error {
    fn from(e: CombineError) -> Self {
        Self::Combine(Box::new(e))
    }
}

impl From<AppendError> for Error {
    fn from(e: AppendError) -> Self {
        Self::Append(Box::new(e))
    }
}

/// Errors in options (`--chunks`, `--codec`, paths).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A flag's value that cannot be parsed.
    #[error("invalid {flag} value '{value}': expected {expected}")]
    BadValue {
        /// The flag name.
        flag: String,
        /// The offending value.
        value: String,
        /// What is expected.
        expected: String,
    },
    /// A layout with more stored objects than a plan may hold.
    #[error("{path}: variable '{var}' would need {units} chunks or shards, and a store may hold at most {max}: use larger --chunks (or --shards), or convert only other variables (recipe include list)")]
    TooManyUnits {
        /// A source file holding it.
        path: PathBuf,
        /// The variable.
        var: String,
        /// Its units.
        units: u64,
        /// The bound.
        max: u64,
    },
    /// `--max-memory` cannot hold what one unit needs.
    #[error("--max-memory {have_mib} MiB is too small: variable '{var}' needs at least {need_mib} MiB per rank for its units of {unit_mib} MiB uncompressed; use smaller --chunks (or --shards), or a larger --max-memory")]
    MemoryTooSmall {
        /// The budget, MiB.
        have_mib: u64,
        /// The least that works, MiB.
        need_mib: u64,
        /// The variable with the largest unit.
        var: String,
        /// Its unit, MiB.
        unit_mib: u64,
    },
    /// A `--chunks`/`--shards` item is not `dim=size`.
    #[error("invalid {flag} item '{item}': expected DIM=SIZE with SIZE a positive integer")]
    ChunkItem {
        /// The flag name.
        flag: &'static str,
        /// The offending item.
        item: String,
    },
    /// A size of zero or less.
    #[error("invalid {flag} size for dimension '{dim}': {value} (must be a positive integer)")]
    ChunkSize {
        /// The flag name.
        flag: &'static str,
        /// Dimension name.
        dim: String,
        /// The offending value.
        value: String,
    },
    /// The same dimension given twice.
    #[error("dimension '{dim}' given twice in {flag}")]
    DuplicateDim {
        /// The flag name.
        flag: &'static str,
        /// Dimension name.
        dim: String,
    },
    /// A dimension in `--chunks`/`--shards` that no variable of the source has.
    #[error("{flag} names dimension '{dim}', which is not a dimension of {path}")]
    UnknownDim {
        /// The flag name.
        flag: &'static str,
        /// Dimension name.
        dim: String,
        /// Source file.
        path: PathBuf,
    },
    /// Shard size not a multiple of the chunk size.
    #[error("shard size {shard} of dimension '{dim}' in variable '{var}' is not a multiple of its chunk size {chunk}")]
    ShardNotMultiple {
        /// Variable.
        var: String,
        /// Dimension.
        dim: String,
        /// Shard size.
        shard: u64,
        /// Chunk size.
        chunk: u64,
    },
    /// Unknown or malformed `--codec`.
    #[error("invalid --codec '{spec}': {reason}")]
    Codec {
        /// The spec given.
        spec: String,
        /// Why it was refused.
        reason: String,
    },
    /// Sharding requested with Zarr v2.
    #[error("--shards needs Zarr v3 (sharding does not exist in Zarr v2)")]
    ShardsNeedV3,
    /// The output exists and `--overwrite` was not given.
    #[error("output {0} already exists (use --overwrite to replace a store written by zarrforge)")]
    OutputExists(PathBuf),
    /// `--overwrite` given, but the path is not a zarrforge store.
    #[error("refusing to overwrite {0}: it is not a Zarr store written by zarrforge")]
    NotOurStore(PathBuf),
    /// The output path equals or contains an input.
    #[error("output {output} would overwrite input {input}")]
    OutputIsInput {
        /// Output path.
        output: PathBuf,
        /// Input path.
        input: PathBuf,
    },
    /// A glob pattern is malformed or cannot be read.
    #[error("input pattern '{pattern}': {msg}")]
    Glob {
        /// Pattern.
        pattern: String,
        /// Cause.
        msg: String,
    },
    /// A glob matched no file.
    #[error("input pattern '{0}' matches no file")]
    NoMatch(String),
    /// No input given.
    #[error("no input files given")]
    NoInputs,
    /// `--file-list` cannot be read.
    #[error("{path}: cannot read file list: {source}")]
    FileList {
        /// The list file.
        path: PathBuf,
        /// OS error.
        source: std::io::Error,
    },
    /// No output path given.
    #[error("no output store given (use -o/--output, or 'output' in the recipe)")]
    NoOutput,
    /// Another run holds the store's lock.
    #[error("{store} is locked by another zarrforge run ({holder}); {hint}")]
    Locked {
        /// Store.
        store: PathBuf,
        /// Who holds it.
        holder: String,
        /// What to do.
        hint: &'static str,
    },
    /// `--resume` found a journal of a different plan.
    #[error("cannot resume {store}: {what}; convert again without --resume (with --overwrite) to start over")]
    PlanChanged {
        /// Store.
        store: PathBuf,
        /// What differs.
        what: String,
    },
    /// The output is an interrupted conversion.
    #[error("output {0} is an unfinished conversion: use --resume to finish it, or --overwrite to start over")]
    Unfinished(PathBuf),
    /// A recipe sets an attribute that defines the stored values.
    #[error(
        "attribute '{attr}' of '{var}' cannot be set: it defines how the stored values decode"
    )]
    FixedAttr {
        /// Variable.
        var: String,
        /// Attribute.
        attr: String,
    },
    /// Options that cannot be used together.
    #[error("{0} cannot be used together")]
    Conflict(String),
    /// A recipe file is invalid.
    #[error("{path}: {msg}")]
    Recipe {
        /// Recipe file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// A variable named in the options is in no input file.
    #[error("{what} names variable '{var}', which is in none of the input files")]
    UnknownVar {
        /// The option.
        what: String,
        /// The name.
        var: String,
    },
    /// The output directory could not be created or prepared.
    #[error("cannot create output {path}: {source}")]
    Output {
        /// Output path.
        path: PathBuf,
        /// OS error.
        source: std::io::Error,
    },
}

/// An append that does not fit the existing store.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// The store is missing or was not written by zarrforge.
    #[error("cannot append to {path}: {reason}")]
    NotAppendable {
        /// Store.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The new files differ from the store.
    #[error("cannot append to {store}: {what}")]
    Mismatch {
        /// Store.
        store: PathBuf,
        /// What differs (with file and variable).
        what: String,
    },
    /// The new files hold coordinate values the store already has.
    #[error("{store} already holds '{dim}' = {value} from {file}: this append has probably run before (use --append-mode skip-existing to skip such files)")]
    AlreadyThere {
        /// Store.
        store: PathBuf,
        /// Dimension.
        dim: String,
        /// First value already there.
        value: f64,
        /// The file.
        file: PathBuf,
    },
    /// New values do not come after the store's last one.
    #[error("{file}: '{dim}' starts at {first}, before the end of {store} ({last}); appended steps must come after the existing ones")]
    NotAfter {
        /// Store.
        store: PathBuf,
        /// Dimension.
        dim: String,
        /// The file.
        file: PathBuf,
        /// Its first value.
        first: f64,
        /// Last value in the store.
        last: f64,
    },
}

/// Errors while reading the source's structure.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// The input path does not exist.
    #[error("{0}: no such file")]
    Missing(PathBuf),
    /// The input could not be opened (permissions, I/O).
    #[error("{path}: cannot open: {source}")]
    Open {
        /// Input path.
        path: PathBuf,
        /// OS error.
        source: std::io::Error,
    },
    /// The input has no netCDF or HDF5 signature.
    #[error("{0}: not a netCDF file (no netCDF-3 or HDF5 signature)")]
    NotNetcdf(PathBuf),
    /// netCDF-C refused the file or a query.
    #[error("{path}: {what}: {source}")]
    Netcdf {
        /// Input path.
        path: PathBuf,
        /// What was being done.
        what: String,
        /// netCDF-C's status.
        source: NcError,
    },
    /// netCDF-C could not create or write a file (`generate`, `bench`).
    #[error("{path}: {what}: {source}")]
    Create {
        /// Output path.
        path: PathBuf,
        /// What was being done.
        what: String,
        /// netCDF error.
        source: netcdf::Error,
    },
    /// A netCDF-3 header that is corrupt or promises more than the file holds.
    #[error("{path}: {source}")]
    Header {
        /// Input path.
        path: PathBuf,
        /// What is wrong.
        source: HeaderError,
    },
    /// netCDF-C or HDF5 crashed reading the file's structure.
    #[error("{path}: netCDF-C/HDF5 crashed (signal {signal}) reading the file's structure: the file is damaged or not valid netCDF (check it with ncdump -h)")]
    Crashed {
        /// Input path.
        path: PathBuf,
        /// The signal.
        signal: i32,
    },
    /// Reading the file's structure did not finish in time.
    #[error("{path}: reading the file's structure did not finish in {seconds} s (netCDF-C/HDF5 looping on a damaged file?); if the file is sound but slow to open, raise --scan-timeout")]
    Stalled {
        /// Input path.
        path: PathBuf,
        /// The time allowed.
        seconds: u64,
    },
    /// An attribute whose type Zarr attributes cannot hold.
    #[error("{path}: {attr} has unsupported type {kind} (use --skip-unsupported to leave it out)")]
    UnsupportedAttr {
        /// Input path.
        path: PathBuf,
        /// Which attribute of what.
        attr: String,
        /// The type's class.
        kind: String,
    },
    /// A variable whose type zarrforge cannot represent in Zarr.
    #[error("{path}: variable '{var}' has unsupported type {kind} (use --skip-unsupported to leave it out)")]
    Unsupported {
        /// Input path.
        path: PathBuf,
        /// Variable path.
        var: String,
        /// The type.
        kind: String,
    },
    /// A group or variable name that cannot become a store path.
    #[error("{path}: name '{name}' cannot be used as a Zarr node name ({reason})")]
    BadName {
        /// Input path.
        path: PathBuf,
        /// Offending name.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// An HDF5 file that netCDF-C can open but that is not netCDF-4.
    #[error("{path}: an HDF5 file but not netCDF-4: variable '{var}' has no named dimensions (netCDF-C calls them '{dim}'); pass --phony-dims to convert it with those names (as xarray's netCDF4 engine shows them)")]
    NotNetcdf4 {
        /// Input path.
        path: PathBuf,
        /// A variable without dimension scales.
        var: String,
        /// The made-up dimension name.
        dim: String,
    },
    /// The schema could not be exchanged between ranks.
    #[error("schema exchange: {0}")]
    Exchange(String),
}

/// Errors while reading variable data.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// HDF5 refused to open the file or dataset, or a read failed.
    #[error("{path}: variable '{var}': {what}: {msg}")]
    Hdf5 {
        /// Input path.
        path: PathBuf,
        /// Variable path.
        var: String,
        /// What was being done.
        what: &'static str,
        /// HDF5 error text.
        msg: String,
    },
    /// HDF5 refused to open the file.
    #[error("{path}: cannot open with parallel HDF5: {msg}")]
    Hdf5Open {
        /// Input path.
        path: PathBuf,
        /// HDF5 error text.
        msg: String,
    },
    /// netCDF-C failed while reading.
    #[error("{path}: variable '{var}': {source}")]
    Netcdf {
        /// Input path.
        path: PathBuf,
        /// Variable path.
        var: String,
        /// netCDF-C's status.
        source: NcError,
    },
    /// netCDF-C failed to open the file.
    #[error("{path}: cannot open: {source}")]
    NetcdfOpen {
        /// Input path.
        path: PathBuf,
        /// netCDF-C's status.
        source: NcError,
    },
    /// A stored source chunk could not be decoded (inflate, unshuffle).
    #[error("{path}: variable '{var}': cannot decode the stored chunk at {origin:?}: {msg}")]
    Decode {
        /// Input path.
        path: PathBuf,
        /// Variable path.
        var: String,
        /// Element origin of the chunk.
        origin: Vec<u64>,
        /// The decoder's message.
        msg: String,
    },
    /// A time value that the output units cannot hold exactly.
    #[error("{path}: variable '{var}': time value {value} is not a whole number in the output units (pass --time-units with a finer unit)")]
    Recode {
        /// Input path.
        path: PathBuf,
        /// Variable path.
        var: String,
        /// The value.
        value: String,
    },
    /// Parts of one region read as different kinds of values.
    #[error("{path}: variable '{var}': parts of one region read as strings and as numbers")]
    KindMismatch {
        /// Input path.
        path: PathBuf,
        /// Variable path.
        var: String,
    },
    /// A netCDF-3 file no longer holds what its header describes (it was
    /// truncated after the scan, or is being rewritten).
    #[error("{path}: variable '{var}': the file shrank to {have} bytes while being read; its header needs {need} (truncated or being rewritten)")]
    Shrunk {
        /// Input path.
        path: PathBuf,
        /// Variable path.
        var: String,
        /// Bytes the header needs.
        need: u64,
        /// Bytes the file has now.
        have: u64,
    },
}

/// Errors while encoding or writing the store.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// A filesystem operation on the store failed.
    #[error("{path}: {what}: {source}")]
    Io {
        /// Path in the store.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// OS error.
        source: std::io::Error,
    },
    /// Reading (decoding source chunks on an encoder thread) failed.
    #[error(transparent)]
    Read(Box<ReadError>),
    /// The filesystem is full or the quota is exhausted.
    #[error("{path}: {what}: {kind} ({source}); the store is resumable: free space, then run the same command with --resume")]
    NoSpace {
        /// Path in the store.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// Disk full or quota.
        kind: &'static str,
        /// OS error.
        source: std::io::Error,
    },
    /// A symbolic link inside a store that a run is about to write into
    /// again: zarrforge never writes through one.
    #[error("{0}: a symbolic link inside the store; zarrforge does not write through links: remove it, then run the same command again")]
    Link(PathBuf),
    /// zarrs refused the array metadata zarrforge built.
    #[error("array '{var}': zarrs refused the array metadata")]
    Array {
        /// Variable path.
        var: String,
        /// zarrs' (or serde's) error.
        source: BoxError,
    },
    /// A chunk could not be encoded (or a stored one decoded).
    #[error("array '{var}' chunk {chunk:?}: {what}")]
    Encode {
        /// Variable path.
        var: String,
        /// Chunk indices.
        chunk: Vec<u64>,
        /// What was being done.
        what: &'static str,
        /// zarrs' error.
        source: BoxError,
    },
    /// A stored unit and the values appended to it are of different kinds
    /// (strings and numbers).
    #[error(
        "array '{var}': the stored unit and the new values differ in kind (strings and numbers)"
    )]
    KindMismatch {
        /// Variable path.
        var: String,
    },
    /// A worker thread panicked.
    #[error(transparent)]
    Panic(#[from] Panicked),
    /// The encoder threads could not be started.
    #[error("cannot start encoder threads: {0}")]
    Threads(String),
    /// The run was interrupted by a signal.
    #[error("interrupted by {0}: finished units are recorded; run the same command with --resume to finish")]
    Interrupted(&'static str),
}

/// Exit status of a run stopped by SIGTERM/SIGINT whose finished units are
/// recorded (`EX_TEMPFAIL`): the same command with `--resume` finishes it.
/// Job scripts requeue on it.
pub const EXIT_INTERRUPTED: u8 = 75;

impl Error {
    /// Whether this error is an interruption by a signal on every failing
    /// rank (a run to resume, not a failure to fix).
    pub fn is_interrupted(&self) -> bool {
        match self {
            Error::Write(WriteError::Interrupted(_)) => true,
            Error::Ranks(list) => {
                !list.is_empty() && list.iter().all(|f| f.kind == FailureKind::Interrupted)
            }
            _ => false,
        }
    }

    /// This rank's failure as the other ranks are told of it.
    pub fn failure(&self) -> (FailureKind, String) {
        let kind = if self.is_interrupted() {
            FailureKind::Interrupted
        } else {
            FailureKind::Failed
        };
        (kind, chain(self))
    }
}

impl WriteError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, what: &'static str, source: std::io::Error) -> Self {
        match source.raw_os_error() {
            Some(libc::ENOSPC) => Self::NoSpace {
                path: path.into(),
                what,
                kind: "disk full",
                source,
            },
            Some(libc::EDQUOT) => Self::NoSpace {
                path: path.into(),
                what,
                kind: "quota exceeded",
                source,
            },
            _ => Self::Io {
                path: path.into(),
                what,
                source,
            },
        }
    }
}

/// One line: the error and every source in its chain, separated by ": ".
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = s.source();
    }
    out.replace('\n', " ")
}

// ---------------------------------------------------------------------------
// verify: reading both sides independently of the converter
// ---------------------------------------------------------------------------

/// Errors of `verify` reading the store or the sources. Differences are not
/// errors: they go into the report.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The path has no root Zarr metadata document.
    #[error("{0}: not a Zarr store (no zarr.json, .zgroup or .zarray at its root)")]
    NotAStore(PathBuf),
    /// A file or directory of the store could not be read.
    #[error("{path}: {what}: {source}")]
    Io {
        /// Path in the store.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// OS error.
        source: std::io::Error,
    },
    /// netCDF-C refused a source file or a read.
    #[error("{path}: {what}: {source}")]
    Netcdf {
        /// Source path.
        path: PathBuf,
        /// What was being done.
        what: String,
        /// netCDF error.
        source: netcdf::Error,
    },
    /// zarrs refused a request on an array it opened.
    #[error("store array '{array}': {msg}")]
    Store {
        /// Array path.
        array: String,
        /// zarrs error text.
        msg: String,
    },
    /// Data could not be exchanged between ranks.
    #[error("verify: exchange between ranks: {0}")]
    Exchange(String),
    /// A rank panicked while verifying.
    #[error("internal error (panic) while verifying: {0}")]
    Panic(String),
}

/// A panic caught in a guarded region.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("internal error (panic) during {stage} at {location}: {message}")]
pub struct Panicked {
    /// The stage the rank was in.
    pub stage: &'static str,
    /// Source file and line.
    pub location: String,
    /// The panic's message.
    pub message: String,
}

/// A failed netCDF-C call: its status and netCDF-C's text for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text} (netCDF-C status {code})")]
pub struct NcError {
    /// The `NC_E*` status.
    pub code: i32,
    /// `nc_strerror`'s text, or what zarrforge found wrong with a result.
    pub text: String,
}

impl NcError {
    /// An error found by zarrforge in what netCDF-C returned.
    pub fn invalid(text: impl Into<String>) -> Self {
        Self {
            code: netcdf_sys::NC_EINVAL,
            text: text.into(),
        }
    }
}

/// What is wrong with a netCDF-3 header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// The header itself is cut short or inconsistent.
    #[error("corrupt netCDF-3 header at byte {offset}: {what}")]
    Corrupt {
        /// Byte offset where the problem was found.
        offset: u64,
        /// What is wrong.
        what: String,
    },
    /// A name that is not UTF-8.
    #[error("corrupt netCDF-3 header: the name of {what} is not valid UTF-8")]
    Name {
        /// Which item.
        what: String,
    },
    /// The header describes more data than the file holds.
    #[error("truncated: the header describes {need} bytes of data ({what}) but the file has {have}; netCDF-C would read zeros for the rest")]
    Truncated {
        /// Bytes the header needs.
        need: u128,
        /// Bytes the file has.
        have: u64,
        /// The variable that reaches furthest.
        what: String,
    },
    /// The file could not be read.
    #[error("cannot read the header: {0}")]
    Io(String),
}

/// Inconsistent inputs.
#[derive(Debug, thiserror::Error)]
pub enum CombineError {
    /// No input files.
    #[error("no input files")]
    NoInputs,
    /// The concatenation dimension is in no file.
    #[error("--concat-dim '{0}' is not a dimension of any input file")]
    UnknownConcatDim(String),
    /// A group defines its own dimension named like the concatenation
    /// dimension (its variables are not along the concatenation axis).
    #[error("{path}: group '{group}' defines its own dimension '{dim}', which hides the concatenation dimension of the same name; several files with such groups cannot be concatenated along '{dim}'")]
    ShadowedConcatDim {
        /// A file with such a group.
        path: PathBuf,
        /// The group.
        group: String,
        /// The dimension.
        dim: String,
    },
    /// A variable is in several files but there is nothing to concatenate along.
    #[error("variable '{var}' is in both {a} and {b}, but the files have no common unlimited dimension to concatenate along (pass --concat-dim DIM)")]
    NoConcatDim {
        /// Variable.
        var: String,
        /// First file.
        a: PathBuf,
        /// Second file.
        b: PathBuf,
    },
    /// Two files overlap along the axis.
    #[error("{a} and {b} overlap along '{dim}': {b} starts at {first} but {a} ends at {last} (use --allow-overlaps to keep both)")]
    Overlap {
        /// Dimension.
        dim: String,
        /// Earlier file.
        a: PathBuf,
        /// Later file.
        b: PathBuf,
        /// Last value of `a`.
        last: f64,
        /// First value of `b`.
        first: f64,
    },
    /// Two files hold the same coordinate value.
    #[error("{a} and {b} both hold '{dim}' = {value} (duplicated coordinate value; use --allow-overlaps to keep both)")]
    Duplicate {
        /// Dimension.
        dim: String,
        /// Earlier file.
        a: PathBuf,
        /// Later file.
        b: PathBuf,
        /// The value.
        value: f64,
    },
    /// A gap between consecutive files.
    #[error("gap along '{dim}' between {a} (ends at {last}) and {b} (starts at {first}); the usual step is {step} (use --allow-gaps if this is intended)")]
    Gap {
        /// Dimension.
        dim: String,
        /// Earlier file.
        a: PathBuf,
        /// Later file.
        b: PathBuf,
        /// Last value of `a`.
        last: f64,
        /// First value of `b`.
        first: f64,
        /// Typical step.
        step: f64,
    },
    /// Values not increasing within a file.
    #[error("{file}: coordinate '{dim}' is not strictly increasing (index {index})")]
    NotIncreasing {
        /// File.
        file: PathBuf,
        /// Dimension.
        dim: String,
        /// First offending index.
        index: usize,
    },
    /// Some files have a coordinate variable for the axis and others not.
    #[error(
        "{with} has a coordinate variable '{dim}' but {without} has none: cannot order the files"
    )]
    CoordMix {
        /// Dimension.
        dim: String,
        /// A file with it.
        with: PathBuf,
        /// A file without it.
        without: PathBuf,
    },
    /// A variable is missing from some files.
    #[error("variable '{var}' is missing from {file} (it is in {present})")]
    Missing {
        /// Variable.
        var: String,
        /// File without it.
        file: PathBuf,
        /// A file with it.
        present: PathBuf,
    },
    /// A variable differs between files.
    #[error("variable '{var}': {what} differs between {a} ({va}) and {b} ({vb})")]
    Mismatch {
        /// Variable.
        var: String,
        /// What differs.
        what: String,
        /// First file.
        a: PathBuf,
        /// Its value.
        va: String,
        /// Second file.
        b: PathBuf,
        /// Its value.
        vb: String,
    },
    /// The merged groups do not cover the same axis.
    #[error("merged files disagree on '{dim}': {detail}")]
    Axis {
        /// Dimension.
        dim: String,
        /// Where they first differ.
        detail: String,
    },
    /// Time units cannot be combined.
    #[error("{file}: variable '{var}': {source}")]
    Time {
        /// File.
        file: PathBuf,
        /// Variable.
        var: String,
        /// Cause.
        source: crate::cftime::TimeError,
    },
    /// A time value cannot be expressed exactly in the output units.
    #[error("{file}: '{var}' value {value} in '{from}' is not a whole number of '{to}' (pass --time-units with a finer unit)")]
    Inexact {
        /// File.
        file: PathBuf,
        /// Variable.
        var: String,
        /// Value.
        value: i64,
        /// Its units.
        from: String,
        /// Output units.
        to: String,
    },
    /// A merge group names a file twice or not at all.
    #[error("merge groups: {0}")]
    Groups(String),
}
