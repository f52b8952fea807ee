//! Machine-readable events of a run (`--events FILE`, `-` for stdout):
//! JSON Lines, one object per line, written by rank 0 and flushed line by
//! line, so that a workflow engine can follow a run as it goes. A file is
//! appended to, so that the runs of a requeued job follow each other.
//!
//! The schema is versioned ([`SCHEMA`]); `docs/events.md` describes it and
//! `docs/events.schema.json` is its JSON Schema. A later version only adds
//! event kinds or fields; a change of meaning changes the version.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

/// The schema name and version every line carries.
pub const SCHEMA: &str = "zarrforge-events/1";

/// What a run tells a workflow engine.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The run began (first line).
    Started {
        /// The subcommand.
        command: String,
        /// zarrforge's version.
        version: String,
        /// The output store (path or URL).
        output: String,
        /// The inputs as given (paths and globs).
        inputs: Vec<String>,
        /// MPI ranks.
        ranks: usize,
        /// Nodes of the job.
        nodes: usize,
    },
    /// A phase of the run began.
    Phase {
        /// `scan`, `plan`, `write`, `exchange`, `commit` or `verify`.
        phase: Phase,
    },
    /// The inputs are scanned and the plan is made.
    Planned {
        /// Input files.
        files: usize,
        /// Arrays of the store.
        arrays: usize,
        /// Units (chunks or shards) of the plan.
        units_total: u64,
        /// Units an interrupted run had finished (skipped).
        units_resumed: u64,
        /// Units this run writes.
        units_to_write: u64,
        /// Uncompressed bytes of those units.
        bytes_to_write: u64,
        /// Arrays written through the exchange between ranks.
        exchange_arrays: Vec<String>,
        /// `create`, `append`, `resume`, `overwrite` or `complete`.
        mode: String,
    },
    /// Where the whole job is (every rank's units).
    Progress(Snapshot),
    /// Something was changed or left out on the way to Zarr.
    Warning {
        /// One line.
        message: String,
    },
    /// One rank failed (one event per failing rank, before `failed`).
    RankFailed {
        /// The rank.
        rank: i32,
        /// Its error, one line.
        message: String,
        /// Whether `--resume` can finish the run.
        resumable: bool,
    },
    /// The store is committed (last line of a successful run).
    Committed {
        /// The output store.
        output: String,
        /// Arrays of the store.
        arrays: usize,
        /// Units written by this run.
        units_written: u64,
        /// Units an interrupted run had finished.
        units_resumed: u64,
        /// Uncompressed bytes read.
        bytes_read: u64,
        /// Encoded bytes written.
        bytes_written: u64,
        /// Wall seconds of the run.
        seconds: f64,
        /// The new snapshot (`--icechunk`; absent for a directory store
        /// and when nothing was committed).
        #[serde(skip_serializing_if = "Option::is_none")]
        snapshot: Option<String>,
    },
    /// The store was compared with its sources (`verify`: its last line
    /// unless an error stopped the comparison; `convert --verify`: before
    /// `committed` or `failed`).
    Verified {
        /// The store.
        output: String,
        /// Source files.
        files: usize,
        /// Arrays compared.
        arrays: usize,
        /// Units (chunks or shards) compared.
        units: u64,
        /// Values compared.
        values: u64,
        /// Values that differ.
        mismatches: u64,
        /// Differences in the metadata.
        metadata_differences: usize,
        /// Whether the store holds exactly what the sources hold.
        identical: bool,
        /// Wall seconds of the comparison.
        seconds: f64,
    },
    /// The run failed (last line of a failed run).
    Failed {
        /// The error, one line.
        error: String,
        /// The exit status every rank returns.
        exit_status: u8,
        /// The name of that status (docs/errors.md).
        status: String,
        /// Whether the same command with `--resume` can finish the run.
        resumable: bool,
    },
}

/// The phases of a conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Reading the inputs' structure.
    Scan,
    /// Planning the layout and opening the store.
    Plan,
    /// Units read, encoded and written directly.
    Write,
    /// Units assembled through the exchange between ranks.
    Exchange,
    /// Metadata written by rank 0.
    Commit,
    /// Values compared with the sources (`--verify`).
    Verify,
}

impl Phase {
    /// Every phase, in run order.
    pub const ALL: [Phase; 6] = [
        Self::Scan,
        Self::Plan,
        Self::Write,
        Self::Exchange,
        Self::Commit,
        Self::Verify,
    ];

    /// Its name in events and progress lines.
    pub fn name(self) -> &'static str {
        match self {
            Self::Scan => "scan",
            Self::Plan => "plan",
            Self::Write => "write",
            Self::Exchange => "exchange",
            Self::Commit => "commit",
            Self::Verify => "verify",
        }
    }

    /// Its index in [`Phase::ALL`].
    pub fn index(self) -> usize {
        Self::ALL.iter().position(|p| *p == self).unwrap_or(0)
    }
}

/// What the progress of a phase counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// Input files scanned (the scan).
    Files,
    /// Units written (the write and exchange phases: one count over both).
    Units,
    /// Units compared with the sources (the verification: a count of its
    /// own).
    Compared,
}

impl Count {
    /// What `phase` counts, if anything.
    pub fn of(phase: Phase) -> Option<Self> {
        match phase {
            Phase::Scan => Some(Self::Files),
            Phase::Write | Phase::Exchange => Some(Self::Units),
            Phase::Verify => Some(Self::Compared),
            Phase::Plan | Phase::Commit => None,
        }
    }

    /// Its noun in a progress line.
    pub fn noun(self) -> &'static str {
        match self {
            Self::Files => "files",
            Self::Units | Self::Compared => "units",
        }
    }
}

/// Where a job is: the progress event and the progress line.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Snapshot {
    /// The current phase.
    pub phase: Option<Phase>,
    /// What `units_*` count: input files in the scan (`bytes_*` are then
    /// 0), units written, or units compared in the verification.
    #[serde(skip)]
    pub count: Option<Count>,
    /// Units written by every rank so far in this run.
    pub units_done: u64,
    /// Units this run writes.
    pub units_total: u64,
    /// Uncompressed bytes of the units written.
    pub bytes_done: u64,
    /// Uncompressed bytes of all units this run writes.
    pub bytes_total: u64,
    /// Uncompressed GB/s since the first unit.
    pub gb_per_s: f64,
    /// Seconds left at that rate (none before the first unit).
    pub eta_s: Option<f64>,
    /// Ranks that have reported.
    pub ranks_reporting: usize,
}

/// One line of the stream, with the fields every line has.
#[derive(Serialize)]
struct Line<'a> {
    schema: &'static str,
    run: &'a str,
    time: String,
    elapsed_s: f64,
    #[serde(flatten)]
    event: &'a Event,
}

/// Where events go.
enum Sink {
    Stdout,
    File(BufWriter<File>, PathBuf),
}

/// The event stream of a run (on rank 0; other ranks hold an empty one).
pub struct Events {
    sink: Option<Sink>,
    run: String,
    start: Instant,
}

/// The events file cannot be created.
#[derive(Debug, thiserror::Error)]
#[error("{}: cannot create the events file: {source}", path.display())]
pub struct EventsError {
    /// The file.
    pub path: PathBuf,
    /// OS error.
    pub source: std::io::Error,
}

impl Events {
    /// A stream to `target` (`-`: stdout), or none.
    ///
    /// # Errors
    /// [`EventsError`] when the file cannot be created.
    pub fn open(target: Option<&Path>) -> Result<Self, EventsError> {
        let sink = match target {
            None => None,
            Some(p) if p == Path::new("-") => Some(Sink::Stdout),
            // Appended to: the runs of a requeued job follow each other in
            // one file, each from its `started` line.
            Some(p) => Some(Sink::File(
                BufWriter::new(File::options().create(true).append(true).open(p).map_err(
                    |source| EventsError {
                        path: p.to_path_buf(),
                        source,
                    },
                )?),
                p.to_path_buf(),
            )),
        };
        Ok(Self {
            sink,
            run: run_id(),
            start: Instant::now(),
        })
    }

    /// A stream that writes nothing.
    pub fn none() -> Self {
        Self {
            sink: None,
            run: String::new(),
            start: Instant::now(),
        }
    }

    /// Whether events are written.
    pub fn enabled(&self) -> bool {
        self.sink.is_some()
    }

    /// Writes one event as one line, flushed. A write that fails (disk
    /// full, a closed pipe) is reported once and the stream is closed: the
    /// run itself goes on.
    pub fn emit(&mut self, event: &Event) {
        let Some(sink) = &mut self.sink else {
            return;
        };
        let line = Line {
            schema: SCHEMA,
            run: &self.run,
            time: crate::system::environment::utc_now(),
            elapsed_s: (self.start.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
            event,
        };
        let Ok(mut bytes) = serde_json::to_vec(&line) else {
            return;
        };
        bytes.push(b'\n');
        let written = match sink {
            Sink::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(&bytes).and_then(|()| out.flush())
            }
            Sink::File(f, _) => f.write_all(&bytes).and_then(|()| f.flush()),
        };
        if let Err(e) = written {
            let name = match sink {
                Sink::Stdout => "stdout".to_string(),
                Sink::File(_, p) => p.display().to_string(),
            };
            crate::say!(
                "zarrforge: warning: {name}: cannot write events, no more are written: {e}"
            );
            self.sink = None;
        }
    }
}

/// An id for the run: host, process and start time.
fn run_id() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!(
        "{}-{}-{t}",
        crate::system::environment::hostname(),
        std::process::id()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_has_the_common_fields_and_the_event_kind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.jsonl");
        let mut ev = Events::open(Some(&path)).unwrap();
        ev.emit(&Event::Phase {
            phase: Phase::Write,
        });
        ev.emit(&Event::Progress(Snapshot {
            phase: Some(Phase::Write),
            units_done: 3,
            units_total: 10,
            eta_s: None,
            ..Snapshot::default()
        }));
        drop(ev);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["schema"], SCHEMA);
        assert_eq!(lines[0]["event"], "phase");
        assert_eq!(lines[0]["phase"], "write");
        assert_eq!(lines[1]["event"], "progress");
        assert_eq!(lines[1]["units_done"], 3);
        assert!(lines[1]["eta_s"].is_null());
        assert_eq!(lines[0]["run"], lines[1]["run"]);
    }

    #[test]
    fn an_unwritable_stream_is_closed_not_fatal() {
        let mut ev = Events::open(Some(Path::new("/dev/full"))).unwrap();
        ev.emit(&Event::Warning {
            message: "x".into(),
        });
        assert!(!ev.enabled());
    }
}
