//! Validated options: the only configuration type the core sees.
//!
//! The CLI ([`crate::cli::args`]) only parses text; the parsers here turn
//! `--chunks`, `--shards` and `--codec` into checked values.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::cli::error::ConfigError;

/// Default target of uncompressed bytes per chunk for the chunk heuristic.
pub const DEFAULT_TARGET_CHUNK_BYTES: u64 = 4 << 20;

/// Default seconds allowed to scan one input file (`--scan-timeout`).
pub const DEFAULT_SCAN_TIMEOUT_S: u64 = 60;

/// `dim=size` pairs from `--chunks` or `--shards`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DimSizes(pub Vec<(String, u64)>);

impl DimSizes {
    /// Parses `time=24,lat=181,lon=360`. An empty string gives no entries.
    ///
    /// # Errors
    /// [`ConfigError`] for a malformed item, a size that is not a positive
    /// integer, or a dimension given twice.
    pub fn parse(flag: &'static str, spec: &str) -> Result<Self, ConfigError> {
        let mut out: Vec<(String, u64)> = Vec::new();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (dim, size) = item.split_once('=').ok_or_else(|| ConfigError::ChunkItem {
                flag,
                item: item.to_string(),
            })?;
            let (dim, size) = (dim.trim(), size.trim());
            if dim.is_empty() {
                return Err(ConfigError::ChunkItem {
                    flag,
                    item: item.to_string(),
                });
            }
            let value = size.parse::<u64>().ok().filter(|&v| v > 0).ok_or_else(|| {
                ConfigError::ChunkSize {
                    flag,
                    dim: dim.to_string(),
                    value: size.to_string(),
                }
            })?;
            if out.iter().any(|(d, _)| d == dim) {
                return Err(ConfigError::DuplicateDim {
                    flag,
                    dim: dim.to_string(),
                });
            }
            out.push((dim.to_string(), value));
        }
        Ok(Self(out))
    }

    /// The size given for `dim`.
    pub fn get(&self, dim: &str) -> Option<u64> {
        self.0.iter().find(|(d, _)| d == dim).map(|&(_, v)| v)
    }

    /// Whether nothing was given.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Blosc shuffle mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum BloscShuffle {
    None,
    Byte,
    Bit,
}

impl BloscShuffle {
    /// The name in `--codec blosc:...:SHUFFLE` and in v3 blosc metadata.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "noshuffle",
            Self::Byte => "shuffle",
            Self::Bit => "bitshuffle",
        }
    }
}

/// Output compression.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Codec {
    /// No compression.
    None,
    /// Zstandard at a level (-131072..=22).
    Zstd(i32),
    /// Blosc with a compressor name, level and shuffle.
    Blosc {
        /// Compressor: blosclz, lz4, lz4hc, zlib, zstd.
        cname: String,
        /// Level 0..=9.
        clevel: u8,
        /// Shuffle mode.
        shuffle: BloscShuffle,
    },
    /// gzip stream at a level 0..=9.
    Gzip(u32),
    /// zlib stream at a level 0..=9.
    Zlib(u32),
    /// Keep the source's compression (`source`): the source chunking, and
    /// the source's HDF5 shuffle and deflate as Zarr codecs, copying the
    /// compressed chunks. Resolved per variable before planning.
    Source,
    /// A source pipeline as Zarr codecs: byte shuffle of `shuffle`-byte
    /// elements, then a zlib stream of `level` (what `source` resolves to).
    Stored {
        /// Element size of the shuffle, if the source shuffles.
        shuffle: Option<u8>,
        /// zlib level, if the source deflates.
        level: Option<u32>,
    },
    /// `convert --virtual`: the output references the source's stored
    /// chunks, so its codecs are the source's pipeline (byte order and
    /// filters); set per variable when the references are planned.
    Virtual(crate::model::source_codecs::SourceCodecs),
}

impl Codec {
    /// Parses `zstd:3`, `blosc:lz4:5:shuffle`, `gzip:6`, `zlib:4`, `none`.
    ///
    /// # Errors
    /// [`ConfigError::Codec`] naming what is wrong.
    pub fn parse(spec: &str) -> Result<Self, ConfigError> {
        let err = |reason: &str| ConfigError::Codec {
            spec: spec.to_string(),
            reason: reason.to_string(),
        };
        let parts: Vec<&str> = spec.trim().split(':').collect();
        let level =
            |s: Option<&&str>, default: i64, lo: i64, hi: i64| -> Result<i64, ConfigError> {
                match s {
                    None => Ok(default),
                    Some(s) => s
                        .parse::<i64>()
                        .ok()
                        .filter(|v| (lo..=hi).contains(v))
                        .ok_or_else(|| {
                            err(&format!("level '{s}' is not an integer in {lo}..={hi}"))
                        }),
                }
            };
        let codec = match parts[0].to_ascii_lowercase().as_str() {
            "none" | "raw" if parts.len() == 1 => Self::None,
            "source" if parts.len() == 1 => Self::Source,
            "zstd" if parts.len() <= 2 => {
                let l = level(parts.get(1), 3, -131_072, 22)?;
                Self::Zstd(i32::try_from(l).map_err(|_| err("level out of range"))?)
            }
            "gzip" if parts.len() <= 2 => {
                Self::Gzip(u32::try_from(level(parts.get(1), 6, 0, 9)?).map_err(|_| err("level"))?)
            }
            "zlib" if parts.len() <= 2 => {
                Self::Zlib(u32::try_from(level(parts.get(1), 6, 0, 9)?).map_err(|_| err("level"))?)
            }
            "blosc" if parts.len() <= 4 => {
                let cname = parts.get(1).copied().unwrap_or("lz4").to_ascii_lowercase();
                if !["blosclz", "lz4", "lz4hc", "zlib", "zstd"].contains(&cname.as_str()) {
                    return Err(err(&format!(
                        "unknown blosc compressor '{cname}' (blosclz, lz4, lz4hc, zlib, zstd)"
                    )));
                }
                let clevel = u8::try_from(level(parts.get(2), 5, 0, 9)?).map_err(|_| err("level"))?;
                let shuffle = match parts.get(3).map(|s| s.to_ascii_lowercase()).as_deref() {
                    None | Some("shuffle" | "byte") => BloscShuffle::Byte,
                    Some("bitshuffle" | "bit") => BloscShuffle::Bit,
                    Some("noshuffle" | "none") => BloscShuffle::None,
                    Some(other) => {
                        return Err(err(&format!(
                            "unknown blosc shuffle '{other}' (shuffle, bitshuffle, noshuffle)"
                        )))
                    }
                };
                Self::Blosc {
                    cname,
                    clevel,
                    shuffle,
                }
            }
            "zstd" | "gzip" | "zlib" | "blosc" | "none" | "raw" | "source" => {
                return Err(err("too many ':' fields"))
            }
            other => {
                return Err(err(&format!(
                    "unknown codec '{other}' (zstd:LEVEL, blosc:CNAME:CLEVEL:SHUFFLE, gzip:LEVEL, zlib:LEVEL, none, source)"
                )))
            }
        };
        Ok(codec)
    }
}

impl std::fmt::Display for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::None => write!(f, "none"),
            Self::Source => write!(f, "source"),
            Self::Stored { shuffle, level } => {
                write!(f, "source(")?;
                if let Some(s) = shuffle {
                    write!(f, "shuffle:{s}")?;
                }
                if let Some(l) = level {
                    if shuffle.is_some() {
                        write!(f, "+")?;
                    }
                    write!(f, "zlib:{l}")?;
                }
                write!(f, ")")
            }
            Self::Virtual(c) => write!(f, "virtual({})", c.describe()),
            Self::Zstd(l) => write!(f, "zstd:{l}"),
            Self::Gzip(l) => write!(f, "gzip:{l}"),
            Self::Zlib(l) => write!(f, "zlib:{l}"),
            Self::Blosc {
                cname,
                clevel,
                shuffle,
            } => write!(f, "blosc:{cname}:{clevel}:{}", shuffle.name()),
        }
    }
}

/// Zarr format version of the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ZarrFormat {
    /// Zarr v2 (`.zarray`, `.zattrs`, `.zmetadata`).
    V2,
    /// Zarr v3 (`zarr.json`).
    V3,
}

/// How non-finite float attribute values (NaN, ±infinity) are written in
/// the metadata documents (`--attrs-json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttrsJson {
    /// The bare tokens `NaN`, `Infinity`, `-Infinity`, as Python's `json`
    /// writes them (default): zarr-python and xarray read them back as
    /// floats; strict JSON parsers refuse the document.
    #[default]
    Python,
    /// The strings `"NaN"`, `"Infinity"`, `"-Infinity"` (the Zarr
    /// convention for float fill values): every document is strict JSON;
    /// readers get those attributes as text.
    Strict,
}

impl AttrsJson {
    /// The name in `--attrs-json` and in the recipe.
    pub fn name(self) -> &'static str {
        match self {
            Self::Python => "python",
            Self::Strict => "strict",
        }
    }
}

/// What `--append` does with input files whose coordinate values the store
/// already holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AppendMode {
    /// Refuse the append (default): it has probably run before.
    #[default]
    Error,
    /// Leave those files out; an append of nothing new does nothing.
    SkipExisting,
}

/// Whether the ranks exchange source pieces to build output units
/// (`--exchange`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExchangeMode {
    /// The cheaper path for each variable (default).
    #[default]
    Auto,
    /// Every variable that can takes the exchange path.
    Always,
    /// Every variable takes the direct path.
    Never,
}

/// How input files are combined.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CombineSettings {
    /// Dimension to concatenate along (default: the common unlimited one).
    pub concat_dim: Option<String>,
    /// Output units of the time coordinate (default: the first file's).
    pub time_units: Option<String>,
    /// Allow gaps along the concatenation dimension.
    pub allow_gaps: bool,
    /// Allow overlapping or repeated coordinate values.
    pub allow_overlaps: bool,
    /// Compare the values of static variables across files, not only their
    /// shape, type and attributes.
    pub check_static_values: bool,
    /// Explicit merge groups: each a list of paths or globs.
    pub merge: Vec<Vec<String>>,
    /// A new outermost dimension made from the files (`--new-dim`).
    #[serde(default)]
    pub new_dim: Option<NewDim>,
    /// Fill the cells of the files' grid that no file holds with the fill
    /// value, rather than refuse (`--allow-missing`).
    #[serde(default)]
    pub allow_missing: bool,
}

/// The region of an existing store that a run rewrites (`--region`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RegionSpec {
    /// Where the inputs' coordinate values lie in the store.
    Auto,
    /// `DIM=START..END`: the steps whose coordinate values are from START
    /// to END, both included (numbers in the store's units, or dates for
    /// a time coordinate).
    Range {
        /// The dimension (the store's concatenation dimension).
        dim: String,
        /// First value.
        start: String,
        /// Last value.
        end: String,
    },
}

impl RegionSpec {
    /// Parses `auto` or `DIM=START..END`.
    ///
    /// # Errors
    /// [`ConfigError::BadValue`] for anything else.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let t = text.trim();
        if t == "auto" {
            return Ok(Self::Auto);
        }
        let parsed = t.split_once('=').and_then(|(dim, range)| {
            let (start, end) = range.split_once("..")?;
            let (dim, start, end) = (dim.trim(), start.trim(), end.trim());
            (!dim.is_empty() && !start.is_empty() && !end.is_empty()).then(|| Self::Range {
                dim: dim.to_string(),
                start: start.to_string(),
                end: end.to_string(),
            })
        });
        parsed.ok_or_else(|| ConfigError::BadValue {
            flag: "--region".into(),
            value: text.to_string(),
            expected: "auto, or DIM=START..END in coordinate values (time=2000-01-08..2000-01-14)"
                .into(),
        })
    }
}

/// A dimension made from the files (`--new-dim NAME:ATTR` or
/// `--new-dim 'NAME:/REGEX/'`): each file's position along it is given by
/// a global attribute or by its name. It becomes the outermost dimension of
/// the output, with a coordinate variable of the values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewDim {
    /// Dimension name in the output.
    pub name: String,
    /// Where each file's value comes from.
    pub from: NewDimFrom,
    /// The values in their order along the dimension (`--new-dim-order`);
    /// empty: every value found, in natural order.
    pub order: Vec<String>,
}

/// Where the value of a [`NewDim`] comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum NewDimFrom {
    /// A global attribute of each file.
    Attribute(String),
    /// The first capture group of a regular expression matched against each
    /// file's name (or, when the name does not match, its path).
    FileName(String),
}

impl NewDim {
    /// Parses `NAME:ATTR` or `NAME:/REGEX/` (one capture group).
    ///
    /// # Errors
    /// [`ConfigError::BadValue`] for a missing name or source, or a regular
    /// expression that does not compile or has not exactly one capture group.
    pub fn parse(spec: &str) -> Result<Self, ConfigError> {
        let bad = |expected: String| ConfigError::BadValue {
            flag: "--new-dim".into(),
            value: spec.to_string(),
            expected,
        };
        let Some((name, from)) = spec.split_once(':') else {
            return Err(bad("NAME:ATTRIBUTE or NAME:/REGEX/".into()));
        };
        let name = name.trim();
        if name.is_empty() || from.trim().is_empty() {
            return Err(bad("NAME:ATTRIBUTE or NAME:/REGEX/".into()));
        }
        let from = match from.strip_prefix('/').and_then(|r| r.strip_suffix('/')) {
            Some(re) => NewDimFrom::FileName(Self::check_regex(re).map_err(bad)?),
            None => NewDimFrom::Attribute(from.trim().to_string()),
        };
        Ok(Self {
            name: name.to_string(),
            from,
            order: Vec::new(),
        })
    }

    /// Checks that `re` compiles and has exactly one capture group.
    ///
    /// # Errors
    /// What is wrong with it, in words.
    pub fn check_regex(re: &str) -> Result<String, String> {
        match regex::Regex::new(re) {
            Ok(r) if r.captures_len() == 2 => Ok(re.to_string()),
            Ok(r) => Err(format!(
                "a regular expression with exactly one capture group, like /_(r[0-9]+i[0-9]+p[0-9]+f[0-9]+)_/; this one has {}",
                r.captures_len() - 1
            )),
            Err(e) => Err(format!(
                "a valid regular expression: {}",
                e.to_string().lines().last().unwrap_or_default().trim()
            )),
        }
    }

    /// Sets the order from `--new-dim-order A,B,C`.
    pub fn with_order(mut self, order: &str) -> Self {
        self.order = order
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        self
    }
}

/// Per-variable settings (recipe `[variables.NAME]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VarSettings {
    /// Chunk sizes by dimension for this variable.
    pub chunks: DimSizes,
    /// Shard sizes by dimension for this variable.
    pub shards: DimSizes,
    /// Compression of this variable.
    pub codec: Option<Codec>,
    /// Attributes to set (added or replaced).
    pub attributes: Vec<crate::model::schema::Attr>,
    /// Attributes to remove.
    pub remove_attributes: Vec<String>,
}

/// Which variables a `--keepbits` item is for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum KeepTarget {
    /// Every float variable that can be rounded (`all=` or a bare `auto`).
    All,
    /// One variable, by its source path (or output name).
    Var(String),
}

/// How many mantissa bits a `--keepbits` item keeps.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Keep {
    /// This many.
    Bits(u32),
    /// As many as hold this fraction of the variable's real information
    /// (`auto[:LEVEL]`).
    Auto(f64),
}

impl std::fmt::Display for Keep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bits(n) => write!(f, "{n}"),
            Self::Auto(l) => write!(f, "auto:{l}"),
        }
    }
}

/// One `--keepbits` item: `VAR=N`, `all=N`, `VAR=auto[:LEVEL]`,
/// `all=auto[:LEVEL]` or `auto[:LEVEL]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeepRule {
    /// The variables.
    pub target: KeepTarget,
    /// The bits.
    pub keep: Keep,
}

impl KeepRule {
    /// The default information level of `auto`.
    pub const DEFAULT_LEVEL: f64 = 0.99;

    /// Parses a comma-separated list of items.
    ///
    /// # Errors
    /// [`ConfigError::BadValue`] naming the item.
    pub fn parse_list(spec: &str) -> Result<Vec<Self>, ConfigError> {
        spec.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(Self::parse)
            .collect()
    }

    /// Parses one item.
    ///
    /// # Errors
    /// [`ConfigError::BadValue`] naming the item.
    pub fn parse(item: &str) -> Result<Self, ConfigError> {
        let bad = || {
            ConfigError::BadValue {
            flag: "--keepbits".into(),
            value: item.to_string(),
            expected: "VAR=N, all=N, VAR=auto[:LEVEL], all=auto[:LEVEL] or auto[:LEVEL], with N mantissa bits from 0 to 52 and LEVEL a fraction of the information in (0, 1], like auto:0.99".into(),
        }
        };
        let (target, keep) = match item.split_once('=') {
            Some((t, k)) => (t.trim(), k.trim()),
            None => ("all", item.trim()),
        };
        if target.is_empty() {
            return Err(bad());
        }
        let keep = if let Some(rest) = keep.strip_prefix("auto") {
            let level = match rest.strip_prefix(':') {
                Some(l) => l.trim().parse::<f64>().map_err(|_| bad())?,
                None if rest.is_empty() => Self::DEFAULT_LEVEL,
                None => return Err(bad()),
            };
            if !(level > 0.0 && level <= 1.0) {
                return Err(bad());
            }
            Keep::Auto(level)
        } else {
            let n: u32 = keep.parse().map_err(|_| bad())?;
            if n > crate::model::bitround::F64_MANTISSA {
                return Err(bad());
            }
            Keep::Bits(n)
        };
        let target = if target == "all" {
            KeepTarget::All
        } else {
            KeepTarget::Var(target.to_string())
        };
        Ok(Self { target, keep })
    }
}

/// Where and how an Icechunk output is committed (`--icechunk`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IcechunkOutput {
    /// `--branch`.
    pub branch: String,
    /// `--message`.
    pub message: Option<String>,
    /// `--tag`.
    pub tag: Option<String>,
    /// The full command line (recorded in the snapshot).
    pub command: Vec<String>,
    /// For readers: `--ref` (a branch, tag or snapshot id).
    pub reference: Option<String>,
}

/// What `--virtual` does with a variable that cannot be referenced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum VirtualFallback {
    /// Copy its values (real chunks), with a warning naming it.
    #[default]
    Copy,
    /// Refuse the job, naming the first differing file and property.
    Refuse,
}

/// Default of `--virtual-copy-below`: variables smaller than this are
/// copied (a reference costs more than their bytes).
pub const VIRTUAL_COPY_BELOW: u64 = 64 << 10;

/// `--virtual`: the output references the inputs' stored chunks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VirtualOutput {
    /// `--virtual-fallback`.
    pub fallback: VirtualFallback,
    /// `--virtual-prefix OLD=NEW`, in order (the first match wins).
    pub prefixes: Vec<(String, String)>,
    /// `--virtual-copy-below`: variables smaller than this many bytes (in
    /// the output) are copied rather than referenced.
    pub copy_below: u64,
    /// A kerchunk reference file (`-o NAME.json`): the references and the
    /// copied variables are exported there after the commit; the output
    /// path is then the staging store beside it.
    pub kerchunk: Option<PathBuf>,
}

impl VirtualOutput {
    /// The staging store of a kerchunk reference file `refs`: a hidden
    /// directory beside it that holds the copied chunks, the references
    /// and zarrforge's journal and state (for `--resume` and `--append`).
    pub fn staging(refs: &std::path::Path) -> PathBuf {
        let name = refs
            .file_name()
            .map_or_else(|| "refs".into(), |n| n.to_string_lossy().into_owned());
        refs.with_file_name(format!(".{name}.zarrforge"))
    }

    /// The location references give for the file at `path` (absolute):
    /// the first `--virtual-prefix` whose OLD starts it rewritten to NEW;
    /// a `file://` URL otherwise.
    pub fn url(&self, path: &std::path::Path) -> String {
        let text = path.to_string_lossy();
        for (old, new) in &self.prefixes {
            if let Some(rest) = text.strip_prefix(old.as_str()) {
                let joined = format!(
                    "{}/{}",
                    new.trim_end_matches('/'),
                    rest.trim_start_matches('/')
                );
                return if new.contains("://") {
                    joined
                } else {
                    file_url(&joined)
                };
            }
        }
        file_url(&text)
    }
}

/// `file://` URL of an absolute path, with the characters URLs reserve
/// percent-encoded.
fn file_url(path: &str) -> String {
    let mut out = String::from("file://");
    for b in path.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b));
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

impl IcechunkOutput {
    /// A reader of `reference` (a branch, tag or snapshot id; `main`'s tip
    /// without one).
    pub fn reader(reference: Option<String>) -> Self {
        Self {
            branch: "main".into(),
            message: None,
            tag: None,
            command: Vec::new(),
            reference,
        }
    }
}

/// Everything `convert` needs, validated.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConvertConfig {
    /// Input paths and globs.
    pub inputs: Vec<String>,
    /// A file listing more inputs, one per line.
    pub file_list: Option<PathBuf>,
    /// Output store directory.
    pub output: PathBuf,
    /// Target chunk sizes by dimension name.
    pub chunks: DimSizes,
    /// Shard sizes by dimension name (empty: no sharding).
    pub shards: DimSizes,
    /// Output compression.
    pub codec: Codec,
    /// Output format.
    pub format: ZarrFormat,
    /// How non-finite float attributes are written (`None`: as the store
    /// has them on an append, else [`AttrsJson::Python`]).
    pub attrs_json: Option<AttrsJson>,
    /// Replace an existing store written by zarrforge.
    pub overwrite: bool,
    /// Leave out variables of unsupported types, with a warning.
    pub skip_unsupported: bool,
    /// Accept plain HDF5 files, with netCDF-C's phony dimension names.
    pub phony_dims: bool,
    /// Time allowed to scan one file in a child process (`None`: in the
    /// rank itself).
    pub scan_timeout: Option<std::time::Duration>,
    /// Target uncompressed bytes per chunk for the default chunk heuristic.
    pub target_chunk_bytes: u64,
    /// Encoder threads per rank (`None`: from the rank's cpuset).
    pub threads: Option<usize>,
    /// Memory budget per rank in bytes (`None`: the default caches).
    pub max_memory: Option<u64>,
    /// Direct or exchange path (`--exchange`).
    pub exchange: ExchangeMode,
    /// Print progress on rank 0.
    pub progress: bool,
    /// How files are combined.
    pub combine: CombineSettings,
    /// Variables to keep (empty: all).
    pub include: Vec<String>,
    /// Variables to leave out.
    pub exclude: Vec<String>,
    /// New names of variables and dimensions.
    pub rename: Vec<(String, String)>,
    /// Per-variable settings, by source variable path.
    pub variables: Vec<(String, VarSettings)>,
    /// Global attributes to set.
    pub attributes: Vec<crate::model::schema::Attr>,
    /// Global attributes to remove.
    pub remove_attributes: Vec<String>,
    /// Add to an existing store along the concatenation dimension (also set
    /// by `--region`, which writes into an existing store).
    pub append: bool,
    /// Rewrite a region of an existing store (`--region`).
    #[serde(default)]
    pub region: Option<RegionSpec>,
    /// What an append does with steps the store already holds.
    pub append_mode: AppendMode,
    /// Finish an interrupted conversion: skip the units its journal records.
    pub resume: bool,
    /// Keep the journal after the commit.
    pub keep_journal: bool,
    /// Remove another run's lock.
    pub break_lock: bool,
    /// `--icechunk`: the output is an Icechunk repository.
    pub icechunk: Option<IcechunkOutput>,
    /// `--virtual`: references to the inputs' stored chunks.
    pub virtual_refs: Option<VirtualOutput>,
    /// Verify every value against the sources after the commit.
    pub verify: bool,
    /// Mantissa bits kept of float variables (`--keepbits`; empty: none
    /// rounded).
    pub keepbits: Vec<KeepRule>,
    /// The provenance line put first in the global `history` attribute
    /// (`None`: the attribute is left as the source has it).
    pub history: Option<String>,
}

impl ConvertConfig {
    /// A configuration with the defaults of the command line.
    pub fn new(inputs: Vec<String>, output: PathBuf) -> Self {
        Self {
            inputs,
            file_list: None,
            output,
            chunks: DimSizes::default(),
            shards: DimSizes::default(),
            codec: Codec::Zstd(3),
            format: ZarrFormat::V3,
            attrs_json: None,
            overwrite: false,
            skip_unsupported: false,
            phony_dims: false,
            scan_timeout: Some(std::time::Duration::from_secs(DEFAULT_SCAN_TIMEOUT_S)),
            target_chunk_bytes: DEFAULT_TARGET_CHUNK_BYTES,
            threads: None,
            max_memory: None,
            exchange: ExchangeMode::Auto,
            progress: true,
            combine: CombineSettings::default(),
            include: Vec::new(),
            exclude: Vec::new(),
            rename: Vec::new(),
            variables: Vec::new(),
            attributes: Vec::new(),
            remove_attributes: Vec::new(),
            append: false,
            region: None,
            append_mode: AppendMode::Error,
            resume: false,
            keep_journal: false,
            break_lock: false,
            icechunk: None,
            virtual_refs: None,
            verify: false,
            history: None,
            keepbits: Vec::new(),
        }
    }

    /// Cross-option checks that need no input file.
    ///
    /// # Errors
    /// [`ConfigError::ShardsNeedV3`], [`ConfigError::Conflict`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        let sharded =
            !self.shards.is_empty() || self.variables.iter().any(|(_, v)| !v.shards.is_empty());
        if sharded && self.format == ZarrFormat::V2 {
            return Err(ConfigError::ShardsNeedV3);
        }
        if self.append && self.overwrite {
            return Err(ConfigError::Conflict("--append and --overwrite".into()));
        }
        if self.resume && self.overwrite {
            return Err(ConfigError::Conflict("--resume and --overwrite".into()));
        }
        if self.inputs.is_empty() && self.file_list.is_none() {
            return Err(ConfigError::NoInputs);
        }
        if self.icechunk.is_some() && self.format == ZarrFormat::V2 {
            return Err(ConfigError::Conflict(
                "--zarr-format 2 and --icechunk (Icechunk stores Zarr v3 only)".into(),
            ));
        }
        if let Some(v) = &self.virtual_refs {
            if self.icechunk.is_none() && v.kerchunk.is_none() {
                return Err(ConfigError::VirtualOutput(
                    "writes references into an Icechunk repository (--icechunk) or a kerchunk file (-o NAME.json)".into(),
                ));
            }
        }
        if !self.keepbits.is_empty() {
            if self.virtual_refs.is_some() {
                return Err(ConfigError::Conflict(
                    "--keepbits and --virtual (references point at the source's bytes, which cannot be rounded)".into(),
                ));
            }
            let copies = matches!(self.codec, Codec::Source | Codec::Stored { .. })
                || self
                    .variables
                    .iter()
                    .any(|(_, v)| matches!(v.codec, Some(Codec::Source | Codec::Stored { .. })));
            if copies {
                return Err(ConfigError::Conflict(
                    "--keepbits and --codec source (a copied source chunk is not rounded: choose an output codec such as zstd:3)".into(),
                ));
            }
        }
        if self.icechunk.is_some() && self.attrs_json == Some(AttrsJson::Python) {
            return Err(ConfigError::Conflict(
                "--attrs-json python and --icechunk (Icechunk reads metadata as strict JSON: use --attrs-json strict)".into(),
            ));
        }
        Ok(())
    }

    /// The settings of variable `path`, if any.
    pub fn var_settings(&self, path: &str) -> Option<&VarSettings> {
        self.variables
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_parse() {
        let c = DimSizes::parse("--chunks", "time=24, lat=181,lon=360").unwrap();
        assert_eq!(c.get("time"), Some(24));
        assert_eq!(c.get("lon"), Some(360));
        assert_eq!(c.get("x"), None);
        assert!(DimSizes::parse("--chunks", "").unwrap().is_empty());
    }

    #[test]
    fn chunks_refuse_bad_items() {
        for bad in [
            "time=0", "time=-3", "time", "=4", "time=x", "t=1,t=2", "t=1.5",
        ] {
            assert!(DimSizes::parse("--chunks", bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn codecs_parse() {
        assert_eq!(Codec::parse("zstd:3").unwrap(), Codec::Zstd(3));
        assert_eq!(Codec::parse("zstd").unwrap(), Codec::Zstd(3));
        assert_eq!(Codec::parse("none").unwrap(), Codec::None);
        assert_eq!(Codec::parse("gzip:9").unwrap(), Codec::Gzip(9));
        assert_eq!(
            Codec::parse("blosc:zstd:3:bitshuffle").unwrap(),
            Codec::Blosc {
                cname: "zstd".into(),
                clevel: 3,
                shuffle: BloscShuffle::Bit
            }
        );
        assert_eq!(
            Codec::parse("blosc:lz4:5:shuffle").unwrap().to_string(),
            "blosc:lz4:5:shuffle"
        );
    }

    #[test]
    fn codecs_refuse_bad_specs() {
        for bad in [
            "lz5",
            "zstd:99",
            "gzip:10",
            "zlib:-1",
            "blosc:snappy:5",
            "blosc:lz4:12",
            "blosc:lz4:5:twice",
            "zstd:3:4",
            "none:1",
            "",
        ] {
            assert!(Codec::parse(bad).is_err(), "{bad} accepted");
        }
    }
}

/// Parses a memory size: a number with an optional unit (`K`, `M`, `G`,
/// `T`, with or without `i`/`B`, powers of 1024); a bare number is MiB.
///
/// # Errors
/// [`ConfigError::BadValue`] naming the flag.
pub fn parse_memory(flag: &str, text: &str) -> Result<u64, ConfigError> {
    let bad = || ConfigError::BadValue {
        flag: flag.to_string(),
        value: text.to_string(),
        expected: "a size such as 300M, 2G or 512MiB (a bare number is MiB)".into(),
    };
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num.parse().map_err(|_| bad())?;
    let scale: f64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "M" | "MI" | "MB" | "MIB" => 1024.0 * 1024.0,
        "K" | "KI" | "KB" | "KIB" => 1024.0,
        "G" | "GI" | "GB" | "GIB" => 1024.0 * 1024.0 * 1024.0,
        "T" | "TI" | "TB" | "TIB" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return Err(bad()),
    };
    let bytes = value * scale;
    if !(1.0..1.8e19).contains(&bytes) {
        return Err(bad());
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok(bytes as u64)
}

#[cfg(test)]
mod memory_tests {
    use super::parse_memory;

    #[test]
    fn sizes_parse_with_and_without_units() {
        let m = 1u64 << 20;
        assert_eq!(parse_memory("f", "300").unwrap(), 300 * m);
        assert_eq!(parse_memory("f", "300M").unwrap(), 300 * m);
        assert_eq!(parse_memory("f", "300MiB").unwrap(), 300 * m);
        assert_eq!(parse_memory("f", "2G").unwrap(), 2048 * m);
        assert_eq!(parse_memory("f", "1.5g").unwrap(), 1536 * m);
        assert_eq!(parse_memory("f", "512k").unwrap(), m / 2);
        for bad in ["", "M", "-3M", "3X", "300B", "1e400", "0"] {
            assert!(parse_memory("f", bad).is_err(), "{bad}");
        }
    }
}
