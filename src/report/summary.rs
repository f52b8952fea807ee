//! The run report: what a conversion did, summed over ranks, as JSON
//! (`--report`) and as one line.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::report::events::Phase;
use crate::report::progress::RankStats;

/// A float variable rounded before compression (`--keepbits`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rounded {
    /// Its path.
    pub variable: String,
    /// Mantissa bits kept (its type's mantissa: not rounded).
    pub keepbits: u32,
    /// The fraction of the information kept, when the data told the bits
    /// (`auto`).
    pub auto_level: Option<f64>,
    /// The largest relative error of a rounded value.
    pub max_relative_error: f64,
}

impl Rounded {
    /// The record of `variable` kept to `keepbits` bits.
    pub fn new(variable: &str, keepbits: u32, auto_level: Option<f64>) -> Self {
        Self {
            variable: variable.to_string(),
            keepbits,
            auto_level,
            max_relative_error: crate::model::bitround::max_relative_error(keepbits),
        }
    }
}

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
    /// The region a `--region` run rewrote (`time[10..17)`).
    pub region: Option<String>,
    /// The cells of the files' grid that no file holds
    /// (`--allow-missing`), one line each.
    pub missing_cells: Vec<String>,
    /// The float variables rounded before compression (`--keepbits`), or
    /// whose bits the data told (`auto`).
    pub keepbits: Vec<Rounded>,
    /// How NaN and infinite float attributes are written in the store's
    /// metadata (`python` or `strict`).
    pub attrs_json: crate::cli::config::AttrsJson,
    /// Rank 0's own counters.
    pub rank0: RankStats,
    /// Every rank's counters, seconds per stage and peak memory.
    pub per_rank: Vec<RankFigures>,
    /// Highest peak resident memory of a rank, MiB.
    pub peak_rss_mib: f64,
    /// Wall seconds of each phase (rank 0).
    pub phases: PhaseSeconds,
    /// The exchange between ranks, when an array took that path.
    pub exchange: Option<ExchangeReport>,
    /// Nodes, ranks per node, threads per rank.
    pub topology: crate::mpi::topology::JobTopology,
    /// Versions, command line, output filesystem.
    pub environment: crate::system::environment::RunEnvironment,
    /// The Icechunk commit (`--icechunk`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icechunk: Option<IcechunkReport>,
    /// Virtual references written by this run (`--virtual`).
    #[serde(default)]
    pub references: u64,
}

/// What an `--icechunk` run committed, and what the merge of the ranks'
/// forks cost.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct IcechunkReport {
    /// The branch.
    pub branch: String,
    /// The new snapshot (none when nothing was committed).
    pub snapshot: Option<String>,
    /// The snapshot the run started from.
    pub parent: Option<String>,
    /// The tag given to the snapshot.
    pub tag: Option<String>,
    /// Levels of the merge tree (log2 of the ranks, rounded up).
    pub merge_levels: u32,
    /// Bytes of the largest fork rank 0 received.
    pub largest_fork_bytes: u64,
    /// Growth of rank 0's resident memory while merging, MiB.
    pub rank0_merge_mib: f64,
    /// Chunk references this run put in the commit.
    pub chunk_refs: u64,
    /// Rank 0's merge memory per million chunk references, MiB.
    pub merge_mib_per_million_refs: f64,
}

/// One rank's figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RankFigures {
    /// Rank.
    pub rank: i32,
    /// Virtual references written (`--virtual`).
    #[serde(default)]
    pub references: u64,
    /// Host.
    pub host: String,
    /// Units written.
    pub units: u64,
    /// Units of other ranks' shares among them (taken over from a slower
    /// rank).
    #[serde(default)]
    pub units_taken: u64,
    /// Uncompressed bytes read.
    pub bytes_read: u64,
    /// Bytes written.
    pub bytes_written: u64,
    /// Main-thread read seconds.
    pub read_s: f64,
    /// Decode + encode seconds (summed over encoder threads).
    pub encode_s: f64,
    /// Write seconds (summed over encoder threads).
    pub write_s: f64,
    /// Seconds the main thread waited for an encoder slot.
    pub wait_s: f64,
    /// Seconds packing, exchanging and placing pieces (exchange path).
    pub exchange_s: f64,
    /// Bytes sent to other ranks (exchange path).
    pub bytes_sent: u64,
    /// Busy seconds: read + encode + write + exchange.
    pub busy_s: f64,
    /// Peak resident memory, MiB.
    pub peak_rss_mib: f64,
    /// PUT requests to object storage (a multipart upload counts its parts).
    #[serde(default)]
    pub puts: u64,
    /// Bytes uploaded to object storage.
    #[serde(default)]
    pub put_bytes: u64,
}

/// Wall seconds of each phase of a run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PhaseSeconds {
    /// Reading the inputs' structure.
    pub scan_s: f64,
    /// Planning and opening the store.
    pub plan_s: f64,
    /// Units read, encoded and written directly.
    pub write_s: f64,
    /// Units assembled through the exchange between ranks.
    pub exchange_s: f64,
    /// The metadata commit.
    pub commit_s: f64,
    /// `--verify`.
    pub verify_s: f64,
}

impl PhaseSeconds {
    /// Adds `s` seconds to `phase`.
    pub fn add(&mut self, phase: Phase, s: f64) {
        let slot = match phase {
            Phase::Scan => &mut self.scan_s,
            Phase::Plan => &mut self.plan_s,
            Phase::Write => &mut self.write_s,
            Phase::Exchange => &mut self.exchange_s,
            Phase::Commit => &mut self.commit_s,
            Phase::Verify => &mut self.verify_s,
        };
        *slot += s;
    }
}

/// What the exchange path did, over all ranks.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ExchangeReport {
    /// Arrays that took the exchange path.
    pub arrays: Vec<String>,
    /// Rounds.
    pub rounds: usize,
    /// Whether a rank assembled each round while the one before was
    /// encoded and written.
    pub overlapped: bool,
    /// Most reads of one source block (1: each decoded once).
    pub passes: u32,
    /// Source bytes decoded by the exchange, all ranks.
    pub bytes_decoded: u64,
    /// Bytes sent between ranks, all ranks.
    pub bytes_sent: u64,
    /// Max over mean of the bytes each rank decoded.
    pub decode_imbalance: f64,
    /// Max over mean of the bytes each rank wrote (uncompressed).
    pub write_imbalance: f64,
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
        let verb = match (&self.region, self.appended_from) {
            (Some(r), _) => format!("rewrote {r} of"),
            (None, Some(_)) => "appended to".into(),
            (None, None) => "wrote".into(),
        };
        let line = format!(
            "zarrforge: {verb} {} ({} arrays, {} {}) from {} file(s), {:.3} GB in {:.2} s: {:.2} GB/s, {:.3} GB stored, {} rank(s) x {} thread(s)",
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
        let exchange = self.exchange.as_ref().map_or_else(String::new, |x| {
            #[allow(clippy::cast_precision_loss)]
            let (d, m) = (x.bytes_decoded as f64 / 1e9, x.bytes_sent as f64 / 1e9);
            format!(
                "; exchange: {} array(s), {} round(s){}, {} pass(es), {d:.3} GB decoded, {m:.3} GB sent between ranks, imbalance decode {:.2} write {:.2}",
                x.arrays.len(),
                x.rounds,
                if x.overlapped { " overlapped" } else { "" },
                x.passes,
                x.decode_imbalance,
                x.write_imbalance
            )
        });
        line + &resumed + &exchange + &self.references_line() + &self.keepbits_line()
    }

    /// `--keepbits`: the mantissa bits each rounded variable keeps.
    fn keepbits_line(&self) -> String {
        if self.keepbits.is_empty() {
            return String::new();
        }
        let each: Vec<String> = self
            .keepbits
            .iter()
            .map(|r| match r.auto_level {
                Some(l) => format!("{} {} (auto:{l})", r.variable, r.keepbits),
                None => format!("{} {}", r.variable, r.keepbits),
            })
            .collect();
        format!("; mantissa bits kept: {}", each.join(", "))
    }

    /// `--virtual`: the references, files per second and references per
    /// second and rank (the scan included).
    fn references_line(&self) -> String {
        if self.references == 0 {
            return String::new();
        }
        #[allow(clippy::cast_precision_loss)]
        let (refs, files, ranks) = (
            self.references as f64,
            self.files as f64,
            self.ranks.max(1) as f64,
        );
        let s = self.seconds.max(1e-9);
        format!(
            "; {} reference(s): {:.0} files/s, {:.0} references/s per rank",
            self.references,
            files / s,
            refs / s / ranks
        )
    }
}
