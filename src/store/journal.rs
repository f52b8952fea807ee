//! The journal of a conversion in progress (the store's lock is
//! [`crate::store::lock`]).
//!
//! Layout inside the store:
//!
//! ```text
//! .zarrforge/journal/plan.json       the plan's fingerprint (inputs, arrays, layout, codecs)
//! .zarrforge/journal/units-RUN-RANK  finished unit numbers (u64 LE), append-only
//! ```
//!
//! A rank records a unit only after the unit's file is durable: it collects
//! finished units, and every second (or every [`BATCH_UNITS`] units) syncs
//! the filesystem, appends their numbers to its own journal file and syncs
//! that file. Unit numbers are positions in the plan's unit sequence, which
//! depends on the dataset and the layout but not on the number of ranks, so
//! a run can be resumed with any number of ranks: every journal file of every
//! earlier run is read and its units are skipped. A torn last record (a rank
//! killed while appending) is ignored, and its unit is simply redone.
//!
//! On object storage, which has no append, each batch is an immutable
//! object `units-RUN-RANK-BATCH`, written after every upload of its units
//! has succeeded.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::cli::config::ZarrFormat;
use crate::pipeline::combine::Dataset;
use crate::pipeline::plan::Plan;
use crate::store::error::WriteError;
pub use crate::store::layout::JOURNAL_DIR;
use crate::store::layout::MARKER_DIR;
use crate::store::storage::{self, Storage};

/// Units recorded per batch at most.
pub const BATCH_UNITS: usize = 512;
/// Longest time between two batches.
pub const BATCH_INTERVAL: Duration = Duration::from_secs(1);

/// The journal directory of `store`.
pub fn dir(store: &Path) -> PathBuf {
    store.join(MARKER_DIR).join(JOURNAL_DIR)
}

/// One input of a plan: its canonical path, its size in bytes and its
/// modification time (ns since the epoch).
pub type InputPrint = (PathBuf, u64, i128);

/// What identifies a plan: two runs with the same print write the same
/// units to the same files.
///
/// Inputs are identified by their canonical path (links, `.` and `..`
/// resolved), size and modification time, so the same files named another
/// way (absolute paths expanded by the shell, then a relative glob from
/// another directory) are the same inputs. Device and inode numbers are not
/// used: a network filesystem may number its device differently on another
/// node or after a remount, and a resume often runs in another allocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanPrint {
    /// Inputs: canonical path, size in bytes, modification time (ns since
    /// the epoch). Prints saved by earlier builds hold the paths as given
    /// on the command line; [`PlanPrint::resolved`] reads them from the
    /// current directory.
    pub inputs: Vec<InputPrint>,
    /// Arrays: path, type, shape, chunks, shards, codec, first unit, unit grid.
    pub arrays: Vec<String>,
    /// Zarr format.
    pub format: String,
    /// Length before an append.
    pub append_from: Option<u64>,
    /// Total units.
    pub total_units: u64,
}

impl PlanPrint {
    /// The print of `plan` (of the inputs of `ds`, in `format`, appending
    /// from `append_from`): what must not change between a run and its
    /// resume.
    pub fn new(ds: &Dataset, plan: &Plan, format: ZarrFormat, append_from: Option<u64>) -> Self {
        Self {
            inputs: ds
                .files
                .iter()
                .map(|f| (f.canonical.clone(), f.size, f.mtime_ns))
                .collect(),
            arrays: plan
                .arrays
                .iter()
                .map(|a| {
                    format!(
                        "{} {} shape {:?} chunks {:?} shards {:?} codec {} units {:?}+{:?}",
                        a.path,
                        a.dtype.v3_name(),
                        a.shape,
                        a.chunks,
                        a.shards,
                        a.codec,
                        a.lo,
                        a.grid
                    )
                })
                .collect(),
            format: format!("{format:?}"),
            append_from,
            total_units: plan.total_units,
        }
    }

    /// A saved print with each input path made canonical where it names an
    /// existing file: the identity of a print saved with paths as given
    /// (relative ones are read from the current directory). A path that
    /// names nothing now is kept, and compares unequal to every input.
    pub fn resolved(mut self) -> Self {
        for input in &mut self.inputs {
            if let Ok(p) = std::fs::canonicalize(&input.0) {
                input.0 = p;
            }
        }
        self
    }

    /// The first difference from `then` (the print of the interrupted run),
    /// in words, with the command that keeps the units that run finished
    /// where there is one, and the one that starts over.
    pub fn difference(&self, then: &Self) -> Option<String> {
        let what = self.first_difference(then)?;
        let over = if self.append_from.is_some() {
            "to start the append over, run it without --resume"
        } else {
            "to start over, replace --resume with --overwrite"
        };
        Some(format!("{what}; {over}"))
    }

    /// [`PlanPrint::difference`] without the way to start over.
    fn first_difference(&self, then: &Self) -> Option<String> {
        let keep_inputs = || {
            format!(
                "to keep the units it finished, run the same command with --resume and its inputs, {}",
                name_inputs(&then.inputs)
            )
        };
        let same_paths = self.inputs.len() == then.inputs.len()
            && self
                .inputs
                .iter()
                .zip(&then.inputs)
                .all(|(a, b)| a.0 == b.0);
        if !same_paths {
            let counts = format!(
                "{} file(s) now, {} then",
                self.inputs.len(),
                then.inputs.len()
            );
            let now: std::collections::HashSet<&Path> =
                self.inputs.iter().map(|i| i.0.as_path()).collect();
            let before: std::collections::HashSet<&Path> =
                then.inputs.iter().map(|i| i.0.as_path()).collect();
            let detail = if let Some(gone) =
                then.inputs.iter().find(|i| !now.contains(i.0.as_path()))
            {
                format!(
                    "input {} of the interrupted run is not among this run's ({counts})",
                    gone.0.display()
                )
            } else if let Some(new) = self.inputs.iter().find(|i| !before.contains(i.0.as_path())) {
                format!(
                    "input {} was not among the interrupted run's ({counts})",
                    new.0.display()
                )
            } else {
                "the inputs are the interrupted run's in another order".to_string()
            };
            return Some(format!("{detail}; {}", keep_inputs()));
        }
        for (a, b) in self.inputs.iter().zip(&then.inputs) {
            if a.1 != b.1 || a.2 != b.2 {
                return Some(format!(
                    "input {} changed since the interrupted run (size or modification time), so the units it finished may hold its old contents",
                    a.0.display()
                ));
            }
        }
        let keep_options =
            "to keep the units it finished, run --resume with the interrupted run's options";
        if self.format != then.format {
            return Some(format!(
                "Zarr format {} now, {} in the interrupted run; {keep_options}",
                self.format, then.format
            ));
        }
        if self.append_from != then.append_from {
            return Some("the store's length changed since the interrupted append".into());
        }
        if self.arrays != then.arrays {
            let pos = self
                .arrays
                .iter()
                .zip(&then.arrays)
                .position(|(a, b)| a != b)
                .unwrap_or(self.arrays.len().min(then.arrays.len()));
            return Some(format!(
                "arrays or their layout differ (now: {}; interrupted run: {}); {keep_options}",
                self.arrays.get(pos).map_or("none", String::as_str),
                then.arrays.get(pos).map_or("none", String::as_str)
            ));
        }
        (self.total_units != then.total_units)
            .then(|| format!("the unit count differs; {keep_options}"))
    }
}

/// The inputs of a run for a message: all of them up to three, else the
/// first and the last with their number.
fn name_inputs(inputs: &[InputPrint]) -> String {
    let names: Vec<String> = inputs.iter().map(|i| i.0.display().to_string()).collect();
    let list = match names.as_slice() {
        [] => "none".to_string(),
        [a] => a.clone(),
        [a, b] => format!("{a} {b}"),
        [a, b, c] => format!("{a} {b} {c}"),
        [a, .., z] => format!("{a} ... {z} ({} files)", names.len()),
    };
    if inputs.iter().any(|i| i.0.is_relative()) {
        format!("{list} (relative to the directory it was started from)")
    } else {
        list
    }
}

/// Writes the plan's print into a new journal directory.
///
/// # Errors
/// [`WriteError::Io`].
pub fn start(store: &Path, print: &PlanPrint) -> Result<(), WriteError> {
    let d = dir(store);
    let s = storage::open(store)?;
    if s.dir().is_some() {
        std::fs::create_dir_all(&d).map_err(|e| WriteError::io(&d, "create journal", e))?;
    }
    let bytes = serde_json::to_vec_pretty(print)
        .map_err(|e| WriteError::io(d.join("plan.json"), "encode", std::io::Error::other(e)))?;
    s.put(&plan_key(), &bytes)?;
    crate::system::fault::point("journal.started");
    Ok(())
}

/// The print saved by the run that started the journal, if any.
///
/// # Errors
/// [`WriteError::Io`] when it exists but cannot be read.
pub fn saved_print(store: &Path) -> Result<Option<PlanPrint>, WriteError> {
    let s = storage::open(store)?;
    match s.get(&plan_key())? {
        Some(b) => serde_json::from_slice(&b)
            .map(|p: PlanPrint| Some(p.resolved()))
            .map_err(|e| {
                WriteError::io(s.describe(&plan_key()), "parse", std::io::Error::other(e))
            }),
        None => Ok(None),
    }
}

/// Key of the journal directory inside the store.
fn journal_key() -> String {
    storage::join(MARKER_DIR, JOURNAL_DIR)
}

fn plan_key() -> String {
    storage::join(&journal_key(), "plan.json")
}

/// Every unit recorded by every journal file, as a bitmap of `total` bits.
///
/// # Errors
/// [`WriteError::Io`] when a journal file cannot be read.
pub fn done_units(store: &Path, total: u64) -> Result<Vec<u8>, WriteError> {
    let mut bits = vec![0u8; usize::try_from(total.div_ceil(8)).unwrap_or(0)];
    let s = storage::open(store)?;
    for key in s.list(&journal_key())? {
        let name = key.rsplit('/').next().unwrap_or_default();
        if !name.starts_with("units-") {
            continue;
        }
        // A batch listed but gone since is no record.
        let Some(bytes) = s.get(&key)? else { continue };
        // A torn last record is ignored.
        for rec in bytes.chunks_exact(8) {
            let mut a = [0u8; 8];
            a.copy_from_slice(rec);
            let seq = u64::from_le_bytes(a);
            if seq < total {
                if let Some(b) = bits.get_mut(usize::try_from(seq / 8).unwrap_or(usize::MAX)) {
                    *b |= 1 << (seq % 8);
                }
            }
        }
    }
    Ok(bits)
}

/// Whether unit `seq` is set in `bits`.
pub fn is_done(bits: &[u8], seq: u64) -> bool {
    usize::try_from(seq / 8)
        .ok()
        .and_then(|i| bits.get(i))
        .is_some_and(|b| b & (1 << (seq % 8)) != 0)
}

/// Number of units set in `bits`.
pub fn count(bits: &[u8]) -> u64 {
    bits.iter().map(|b| u64::from(b.count_ones())).sum()
}

/// Removes the journal (after the commit).
///
/// # Errors
/// [`WriteError::Io`].
pub fn remove(store: &Path) -> Result<(), WriteError> {
    let d = dir(store);
    let s = storage::open(store)?;
    if s.dir().is_none() {
        s.delete(&s.list(&journal_key())?)?;
        crate::system::fault::point("journal.removed");
        return Ok(());
    }
    match std::fs::remove_dir_all(&d) {
        Ok(()) => {
            crate::system::fault::point("journal.removed");
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(WriteError::io(&d, "remove journal", e)),
    }
}

/// Where a rank's batches go.
enum Sink {
    /// One append-only file.
    File(std::fs::File),
    /// One object per batch: `units-RUN-RANK-BATCH`.
    Objects {
        /// Key prefix of this rank's batches.
        prefix: String,
        /// Next batch number.
        next: u64,
    },
}

/// One rank's journal, written in batches.
pub struct Journal {
    storage: std::sync::Arc<dyn Storage>,
    sink: Sink,
    path: String,
    pending: Vec<u64>,
    last: Instant,
    recorded: u64,
}

impl Journal {
    /// Opens this rank's journal file for run `run`.
    ///
    /// # Errors
    /// [`WriteError::Io`].
    pub fn open(store: &Path, run: &str, rank: i32) -> Result<Self, WriteError> {
        let storage = storage::open(store)?;
        let name = storage::join(&journal_key(), &format!("units-{run}-{rank}"));
        let sink = if storage.dir().is_some() {
            let d = dir(store);
            std::fs::create_dir_all(&d).map_err(|e| WriteError::io(&d, "create journal", e))?;
            let path = d.join(format!("units-{run}-{rank}"));
            Sink::File(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .map_err(|e| WriteError::io(&path, "open journal", e))?,
            )
        } else {
            Sink::Objects {
                prefix: name.clone(),
                next: 0,
            }
        };
        Ok(Self {
            path: storage.describe(&name),
            storage,
            sink,
            pending: Vec::new(),
            last: Instant::now(),
            recorded: 0,
        })
    }

    /// Queues finished units; writes a batch when it is due.
    ///
    /// # Errors
    /// [`WriteError::Io`].
    pub fn add(&mut self, units: impl IntoIterator<Item = u64>) -> Result<(), WriteError> {
        self.pending.extend(units);
        if self.pending.len() >= BATCH_UNITS || self.last.elapsed() >= BATCH_INTERVAL {
            self.flush()?;
        }
        Ok(())
    }

    /// Makes the queued units' files durable, then records them.
    ///
    /// # Errors
    /// [`WriteError::Io`].
    pub fn flush(&mut self) -> Result<(), WriteError> {
        self.last = Instant::now();
        if self.pending.is_empty() {
            return Ok(());
        }
        self.storage.sync()?;
        let mut buf = Vec::with_capacity(self.pending.len() * 8);
        for s in &self.pending {
            buf.extend_from_slice(&s.to_le_bytes());
        }
        match &mut self.sink {
            Sink::File(file) => file
                .write_all(&buf)
                .and_then(|()| file.sync_data())
                .map_err(|e| WriteError::io(&self.path, "write journal", e))?,
            Sink::Objects { prefix, next } => {
                self.storage.put(&format!("{prefix}-{next}"), &buf)?;
                *next += 1;
            }
        }
        self.recorded += self.pending.len() as u64;
        self.pending.clear();
        crate::system::fault::point("journal.flushed");
        Ok(())
    }

    /// Units recorded by this journal so far.
    pub fn recorded(&self) -> u64 {
        self.recorded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_round_trip_ignores_torn_records() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path();
        let mut j = Journal::open(store, "r1", 0).unwrap();
        j.add([3, 5, 64]).unwrap();
        j.flush().unwrap();
        assert_eq!(j.recorded(), 3);
        // A second run with another rank, and a torn record.
        let mut k = Journal::open(store, "r2", 2).unwrap();
        k.add([7]).unwrap();
        k.flush().unwrap();
        let torn = super::dir(store).join("units-r2-2");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&torn)
            .unwrap();
        f.write_all(&[1, 2, 3]).unwrap();
        let bits = done_units(store, 65).unwrap();
        assert_eq!(count(&bits), 4);
        for s in [3, 5, 7, 64] {
            assert!(is_done(&bits, s), "{s}");
        }
        assert!(!is_done(&bits, 4));
        remove(store).unwrap();
        assert_eq!(count(&done_units(store, 65).unwrap()), 0);
    }

    #[test]
    fn prints_name_their_differences() {
        let a = PlanPrint {
            inputs: vec![("a.nc".into(), 10, 5)],
            arrays: vec!["t [4]".into()],
            format: "3".into(),
            append_from: None,
            total_units: 4,
        };
        assert_eq!(a.difference(&a.clone()), None);
        let mut b = a.clone();
        b.inputs[0].1 = 11;
        assert!(a.difference(&b).unwrap().contains("a.nc changed"));
        let mut c = a.clone();
        c.arrays[0] = "t [8]".into();
        assert!(a.difference(&c).unwrap().contains("layout"));
    }

    #[test]
    fn inputs_are_files_and_the_advice_keeps_finished_units() {
        let dir = tempfile::tempdir().unwrap();
        let d = std::fs::canonicalize(dir.path()).unwrap();
        let names: Vec<PathBuf> = (0..4).map(|i| d.join(format!("f_{i}.nc"))).collect();
        for n in &names {
            std::fs::write(n, b"x").unwrap();
        }
        let print = |files: &[PathBuf]| PlanPrint {
            inputs: files.iter().map(|p| (p.clone(), 1, 7)).collect(),
            arrays: vec!["t [4]".into()],
            format: "V3".into(),
            append_from: None,
            total_units: 4,
        };
        let then = print(&names);
        // A print saved with the paths as given (through a link, with `..`)
        // is the same files once resolved.
        let link = d.join("link");
        std::os::unix::fs::symlink(&d, &link).unwrap();
        std::fs::create_dir(d.join("sub")).unwrap();
        let as_given = print(
            &names
                .iter()
                .map(|n| d.join("sub/../link").join(n.file_name().unwrap()))
                .collect::<Vec<_>>(),
        );
        assert_ne!(as_given, then);
        assert_eq!(as_given.resolved(), then);
        // A path that names nothing is kept, and differs.
        let gone = print(&[d.join("gone.nc")]);
        assert_eq!(gone.clone().resolved(), gone);
        // Other files: the advice names the interrupted run's inputs and
        // keeps --overwrite for starting over.
        let now = print(&names[..3]);
        let why = now.difference(&then).unwrap();
        assert!(
            why.contains("f_3.nc of the interrupted run is not among"),
            "{why}"
        );
        assert!(
            why.contains(&format!(
                "--resume and its inputs, {} ... {} (4 files)",
                names[0].display(),
                names[3].display()
            )),
            "{why}"
        );
        assert!(
            why.ends_with("to start over, replace --resume with --overwrite"),
            "{why}"
        );
        let mut more = names.clone();
        more.push(d.join("f_4.nc"));
        let why = print(&more).difference(&then).unwrap();
        assert!(
            why.contains("f_4.nc was not among the interrupted run's (5 file(s) now, 4 then)"),
            "{why}"
        );
        // An append starts over without --resume, never with --overwrite.
        let mut append = now.clone();
        append.append_from = Some(8);
        let why = append.difference(&then).unwrap();
        assert!(
            why.ends_with("to start the append over, run it without --resume"),
            "{why}"
        );
        assert!(!why.contains("--overwrite"), "{why}");
        // Old prints with relative paths say so.
        let relative = print(&[PathBuf::from("in/f_0.nc")]);
        let why = now.difference(&relative).unwrap();
        assert!(
            why.contains("in/f_0.nc (relative to the directory it was started from)"),
            "{why}"
        );
    }
}
