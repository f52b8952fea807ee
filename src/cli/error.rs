//! Errors in what the user asked for: options, recipes, inputs, the output path.

use std::path::PathBuf;

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
    /// Another writer committed to the Icechunk branch since this run
    /// opened it, changing what this run changed: nothing was committed.
    #[error("{store}: branch '{branch}' moved since this run read it, and the other commit changed the same arrays or chunks; nothing was committed ({why}); run the same command again to start from the new tip")]
    BranchMoved {
        /// Repository.
        store: PathBuf,
        /// Branch.
        branch: String,
        /// Icechunk's account of the conflict.
        why: String,
    },
    /// `gc` found the journal of an interrupted run.
    #[error("{0} holds the journal of an interrupted run, whose chunks --resume reuses: finish it with the same command and --resume, or pass --discard-interrupted to reclaim them")]
    Interrupted(PathBuf),
    /// An Icechunk repository's journal is another branch's.
    #[error("{store} holds the journal of an interrupted run on branch '{branch}': finish it first (the same command with --branch {branch} --resume), or discard it with zarrforge gc --discard-interrupted")]
    OtherBranch {
        /// Repository.
        store: PathBuf,
        /// The journal's branch.
        branch: String,
    },
    /// `--tag` names a tag the repository has.
    #[error("{store} already has the tag '{tag}': choose another --tag (tags are never moved)")]
    TagExists {
        /// Repository.
        store: PathBuf,
        /// Tag.
        tag: String,
    },
    /// An Icechunk repository given as a plain store.
    #[error("{0} is an Icechunk repository: add --icechunk (as a plain store it would be refused or damaged)")]
    IsIcechunk(PathBuf),
    /// More chunk references than one Icechunk commit takes.
    #[error("{store}: this run writes {refs} chunks, more than the {limit} references one Icechunk commit takes; convert the files in parts (a first run, then --append of the rest, a snapshot each), or make larger chunks or shards (--chunks, --shards)")]
    TooManyChunks {
        /// Repository.
        store: PathBuf,
        /// Chunks of the run.
        refs: u64,
        /// Icechunk's limit.
        limit: u64,
    },
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
    /// `--resume` found a journal of a different plan; `what` names the
    /// difference, the command that keeps the finished units where there is
    /// one, and the one that starts over.
    #[error("cannot resume {store}: {what}")]
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
    /// `--virtual` needs an output that can hold references.
    #[error("--virtual {0}")]
    VirtualOutput(String),
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
