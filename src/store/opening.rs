//! Opening the output store, on rank 0: what is found at the output path
//! ([`survey`]), what the run does about it ([`decide`], pure: the table
//! "What each operation does in each state" of docs/reliability.md), and
//! carrying that out with the store's lock held ([`open_store`]).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::StoreError as Error;
use crate::cli::config::{ConvertConfig, ZarrFormat};
use crate::cli::error::ConfigError;
use crate::store::journal::{self, PlanPrint};
use crate::store::lock::{Lock, Takeover};
use crate::store::state;
use crate::store::storage;
use crate::store::{commit, files as store};

/// What rank 0 found when it opened the store; every rank gets it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Opened {
    /// Units recorded by the journal (bitmap over the unit sequence).
    pub done: Vec<u8>,
    /// How many.
    pub resumed: u64,
    /// The store is already complete for this plan (`--resume` after a
    /// commit, an append of files it holds): nothing to do.
    pub complete: bool,
    /// This run's name in the journal.
    pub run: String,
}

/// The state of the output path, as far as the decision needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// Nothing there, or an unclaimed directory (a creation killed before
    /// its marker).
    Absent,
    /// A path zarrforge did not write (or a link, for `--overwrite`).
    Foreign,
    /// A zarrforge store without root metadata: being built, or interrupted.
    Building,
    /// An interrupted `--overwrite` deleting the old store.
    Clearing,
    /// A committed store; whether its last plan is this run's (asked only
    /// for `--resume`).
    Committed {
        /// The store's saved plan print equals this run's.
        same_plan: bool,
    },
}

/// What the run asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Request {
    /// `--resume`.
    pub resume: bool,
    /// `--overwrite`.
    pub overwrite: bool,
    /// An append to the committed store (its state was read).
    pub append: bool,
    /// An append whose every file the store holds already.
    pub nothing_new: bool,
}

/// Why a run is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A committed store and no `--overwrite`, `--resume` or `--append`.
    Exists,
    /// An interrupted store and neither `--resume` nor `--overwrite`.
    Unfinished,
    /// Not a store written by zarrforge.
    Foreign,
    /// `--resume` of a committed store written by another plan.
    PlanChanged,
}

/// What the run does with the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Create a new store (directory, lock, marker, journal).
    Create,
    /// Go on from the journal of the interrupted run (a fresh journal when
    /// there is none); with `clear_first`, finish an interrupted
    /// `--overwrite`'s deletion before.
    Resume {
        /// Finish the deletion first.
        clear_first: bool,
    },
    /// An append from scratch: discard an old journal, start a new one.
    StartAppend,
    /// Nothing to write: the store is complete for this run.
    Complete,
    /// Delete the old store under the lock, then convert into it.
    Overwrite,
    /// Refuse, changing nothing.
    Refuse(Refusal),
}

/// The decision for a request on what was found. Pure.
pub fn decide(found: Found, req: Request) -> Decision {
    if req.append {
        return if req.nothing_new {
            Decision::Complete
        } else if req.resume {
            Decision::Resume { clear_first: false }
        } else {
            Decision::StartAppend
        };
    }
    match found {
        Found::Absent => Decision::Create,
        Found::Foreign => Decision::Refuse(Refusal::Foreign),
        _ if req.overwrite => Decision::Overwrite,
        Found::Building if req.resume => Decision::Resume { clear_first: false },
        Found::Clearing if req.resume => Decision::Resume { clear_first: true },
        Found::Committed { same_plan: true } if req.resume => Decision::Complete,
        Found::Committed { same_plan: false } if req.resume => {
            Decision::Refuse(Refusal::PlanChanged)
        }
        Found::Committed { .. } => Decision::Refuse(Refusal::Exists),
        Found::Building | Found::Clearing => Decision::Refuse(Refusal::Unfinished),
    }
}

/// What is at `out`. Reads the store's saved plan print only for
/// `--resume` of a committed store.
pub fn survey(cfg: &ConvertConfig, format: ZarrFormat, print: &PlanPrint) -> Found {
    let out = &cfg.output;
    let remote = storage::is_remote(out);
    let link = if remote {
        false
    } else {
        let Ok(meta) = std::fs::symlink_metadata(out) else {
            return Found::Absent;
        };
        meta.file_type().is_symlink()
    };
    if store::is_unclaimed(out) && !link {
        return Found::Absent;
    }
    if !store::is_our_store(out) || (link && cfg.overwrite) {
        return Found::Foreign;
    }
    if store::is_clearing(out) {
        return Found::Clearing;
    }
    let committed = if remote {
        storage::open(out)
            .and_then(|s| s.exists(store::root_key(format)))
            .unwrap_or(false)
    } else {
        out.join(store::root_key(format)).is_file()
    };
    if !committed {
        return Found::Building;
    }
    let same_plan = cfg.resume
        && state::load(out)
            .ok()
            .and_then(|s| s.print)
            .is_some_and(|p| p == *print);
    Found::Committed { same_plan }
}

/// How a run treats an existing lock: `--break-lock` removes any; every
/// other run takes over a lock whose holder is provably gone.
pub fn takeover(cfg: &ConvertConfig) -> Takeover {
    if cfg.break_lock {
        Takeover::Always
    } else {
        Takeover::Stale
    }
}

/// Rank 0, before the inputs are scanned: takes the lock of an existing
/// zarrforge store that this run will change (`--append`, `--resume`,
/// `--overwrite`) and brings it out of an interrupted state: a decided
/// commit is finished, and an interrupted `--overwrite` deletion is
/// finished for `--resume`. An append thus reads the store's state with
/// the lock held, and no other run can change it before this one ends.
///
/// # Errors
/// [`ConfigError::Locked`] for a live holder; [`ConfigError::Unfinished`]
/// for an interrupted `--overwrite` found by an append; I/O errors.
pub fn lock_existing(cfg: &ConvertConfig) -> Result<Option<Lock>, Error> {
    let out = &cfg.output;
    if !(cfg.append || cfg.resume || cfg.overwrite) {
        return Ok(None);
    }
    // --overwrite never deletes through a link; the others may reach a
    // store through one.
    let is_dir = if storage::is_remote(out) {
        true
    } else if cfg.overwrite {
        std::fs::symlink_metadata(out).is_ok_and(|m| m.is_dir())
    } else {
        std::fs::metadata(out).is_ok_and(|m| m.is_dir())
    };
    if !is_dir || !store::is_our_store(out) {
        // A new store, or one that open_store refuses.
        return Ok(None);
    }
    let lock = Lock::acquire(out, takeover(cfg))?;
    if cfg.overwrite {
        return Ok(Some(lock));
    }
    if store::is_clearing(out) {
        if !cfg.resume {
            return Err(ConfigError::Unfinished(out.clone()).into());
        }
        store::clear(out)?;
    }
    commit::finish_pending(out)?;
    // Writes a killed run did not finish (no one else owns them now); links
    // planted inside are refused before anything is written again.
    store::remove_stale_temps(out)?;
    Ok(Some(lock))
}

/// Rank 0: prepares a new store or reopens an existing one and reads the
/// journal; returns the lock, taken here or by [`lock_existing`] (`held`).
///
/// # Errors
/// The refusals of [`decide`] as [`ConfigError`]s; a live lock; I/O errors.
pub fn open_store(
    cfg: &ConvertConfig,
    req: Request,
    inputs: &[PathBuf],
    print: &PlanPrint,
    format: ZarrFormat,
    held: Option<Lock>,
) -> Result<(Option<Lock>, Opened), Error> {
    let out = &cfg.output;
    let opened = Opened {
        run: run_name(),
        ..Opened::default()
    };
    let take = |held: Option<Lock>| -> Result<Lock, Error> {
        match held {
            Some(l) => Ok(l),
            None => Ok(Lock::acquire(out, takeover(cfg))?),
        }
    };
    // An output that is or holds an input is refused before anything else.
    store::check_inputs(out, inputs)?;
    let found = if req.append {
        Found::Committed { same_plan: false }
    } else {
        survey(cfg, format, print)
    };
    match decide(found, req) {
        Decision::Create => fresh(cfg, inputs, print, format, opened),
        Decision::Refuse(Refusal::Unfinished) => {
            // Not an interrupted run when a live one is creating or
            // changing the store right now: its advice is to wait, not
            // --resume; and a run that ended since the survey may have
            // committed it.
            // (With --break-lock the user says that run is gone.)
            if let Some(h) = crate::store::lock::live_holder(out).filter(|_| !cfg.break_lock) {
                return Err(ConfigError::Locked {
                    store: out.clone(),
                    holder: h.describe(),
                    hint: "wait for it to end, then run the same command again; if it is gone (killed on another node), finish its store with --resume --break-lock",
                }
                .into());
            }
            let why = match survey(cfg, format, print) {
                Found::Committed { .. } => Refusal::Exists,
                _ => Refusal::Unfinished,
            };
            Err(refusal(why, out, print).into())
        }
        Decision::Refuse(why) => Err(refusal(why, out, print).into()),
        Decision::Complete => Ok((
            Some(take(held)?),
            Opened {
                complete: true,
                ..opened
            },
        )),
        Decision::StartAppend => {
            let lock = take(held)?;
            journal::remove(out)?;
            journal::start(out, print)?;
            Ok((Some(lock), opened))
        }
        Decision::Overwrite => {
            // The lock is held from the old store's last moment to the new
            // store's first: no other run can take the directory between.
            let lock = take(held)?;
            store::clear(out)?;
            journal::start(out, print)?;
            Ok((Some(lock), opened))
        }
        Decision::Resume { clear_first } => {
            // A lock taken by lock_existing comes with the store already
            // cleared and walked; one taken only now (the store appeared
            // since) needs that walk here, not a second one.
            let walked = held.is_some();
            let lock = take(held)?;
            if clear_first {
                store::clear(out)?;
            }
            if !walked {
                store::remove_stale_temps(out)?;
            }
            resume_journal(out, print, lock, opened)
        }
    }
}

/// A new run's name in the journal: unique per process and time.
pub fn run_name() -> String {
    format!(
        "{:x}-{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
        std::process::id()
    )
}

/// The error of a refusal.
pub fn refusal(why: Refusal, out: &Path, print: &PlanPrint) -> ConfigError {
    match why {
        Refusal::Exists => ConfigError::OutputExists(out.to_path_buf()),
        Refusal::Unfinished => ConfigError::Unfinished(out.to_path_buf()),
        Refusal::Foreign => ConfigError::NotOurStore(out.to_path_buf()),
        Refusal::PlanChanged => ConfigError::PlanChanged {
            store: out.to_path_buf(),
            what: state::load(out)
                .ok()
                .and_then(|s| s.print)
                .and_then(|p| print.difference(&p))
                .unwrap_or_else(|| "the store is complete and was written by another plan".into()),
        },
    }
}

/// Reads the journal of the interrupted run (refusing another plan's), or
/// starts one.
fn resume_journal(
    out: &Path,
    print: &PlanPrint,
    lock: Lock,
    opened: Opened,
) -> Result<(Option<Lock>, Opened), Error> {
    match journal::saved_print(out)? {
        Some(saved) if saved == *print => {
            let done = journal::done_units(out, print.total_units)?;
            let resumed = journal::count(&done);
            Ok((
                Some(lock),
                Opened {
                    done,
                    resumed,
                    ..opened
                },
            ))
        }
        Some(saved) => Err(ConfigError::PlanChanged {
            store: out.to_path_buf(),
            what: print
                .difference(&saved)
                .unwrap_or_else(|| "the plan differs".into()),
        }
        .into()),
        None => {
            journal::start(out, print)?;
            Ok((Some(lock), opened))
        }
    }
}

/// Rank 0: creates a new store: the directory, then its lock, then its
/// marker. A failure before the marker (disk full at the first write)
/// removes what it created, so the path is free again.
fn fresh(
    cfg: &ConvertConfig,
    inputs: &[PathBuf],
    print: &PlanPrint,
    format: ZarrFormat,
    opened: Opened,
) -> Result<(Option<Lock>, Opened), Error> {
    let out = &cfg.output;
    store::prepare(out, inputs)?;
    // An unclaimed directory may hold the lock of a killed creation.
    let lock = match Lock::acquire(out, takeover(cfg)) {
        Ok(l) => l,
        Err(e) => {
            // Another run holds the store (and may have marked it since
            // the survey): nothing there is this run's to remove.
            store::unmake_empty(out);
            return Err(e.into());
        }
    };
    // A run that waited for the lock of another creation gets it once that
    // run has ended: the directory is then its store, not this run's.
    if !storage::is_remote(out) {
        let why = match survey(cfg, format, print) {
            Found::Absent => None,
            Found::Committed { .. } => Some(Refusal::Exists),
            Found::Foreign => Some(Refusal::Foreign),
            Found::Building | Found::Clearing => Some(Refusal::Unfinished),
        };
        if let Some(why) = why {
            drop(lock);
            return Err(refusal(why, out, print).into());
        }
    }
    // What a creation killed before its marker left (an unclaimed directory).
    if let Err(e) = store::remove_stale_temps(out) {
        drop(lock);
        return Err(e.into());
    }
    // Object storage has no exclusive mkdir: with the lock held, the prefix
    // must still hold nothing but it (another run may have created and
    // committed a store between the survey and the lock).
    if storage::is_remote(out) {
        if let Err(e) = crate::store::remote::prepare(out) {
            drop(lock);
            return Err(e.into());
        }
    }
    if let Err(e) = store::mark(out) {
        drop(lock);
        store::unmake(out);
        return Err(e.into());
    }
    journal::start(out, print)?;
    Ok((Some(lock), opened))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONVERT: Request = Request {
        resume: false,
        overwrite: false,
        append: false,
        nothing_new: false,
    };

    #[test]
    fn the_table_of_operations_and_states() {
        let resume = Request {
            resume: true,
            ..CONVERT
        };
        let overwrite = Request {
            overwrite: true,
            ..CONVERT
        };
        let committed = Found::Committed { same_plan: false };
        let same = Found::Committed { same_plan: true };
        use Decision as D;
        use Found as F;
        let cases = [
            (F::Absent, CONVERT, D::Create),
            (F::Absent, resume, D::Create),
            (F::Absent, overwrite, D::Create),
            (F::Foreign, CONVERT, D::Refuse(Refusal::Foreign)),
            (F::Foreign, overwrite, D::Refuse(Refusal::Foreign)),
            (F::Foreign, resume, D::Refuse(Refusal::Foreign)),
            (F::Building, CONVERT, D::Refuse(Refusal::Unfinished)),
            (F::Building, resume, D::Resume { clear_first: false }),
            (F::Building, overwrite, D::Overwrite),
            (F::Clearing, CONVERT, D::Refuse(Refusal::Unfinished)),
            (F::Clearing, resume, D::Resume { clear_first: true }),
            (F::Clearing, overwrite, D::Overwrite),
            (committed, CONVERT, D::Refuse(Refusal::Exists)),
            (committed, resume, D::Refuse(Refusal::PlanChanged)),
            (same, resume, D::Complete),
            (same, CONVERT, D::Refuse(Refusal::Exists)),
            (committed, overwrite, D::Overwrite),
        ];
        for (found, req, want) in cases {
            assert_eq!(decide(found, req), want, "{found:?} {req:?}");
        }
    }

    #[test]
    fn appends_resume_restart_or_find_nothing_to_do() {
        let append = Request {
            append: true,
            ..CONVERT
        };
        let found = Found::Committed { same_plan: false };
        assert_eq!(decide(found, append), Decision::StartAppend);
        let again = Request {
            resume: true,
            ..append
        };
        assert_eq!(
            decide(found, again),
            Decision::Resume { clear_first: false }
        );
        let done = Request {
            nothing_new: true,
            ..again
        };
        assert_eq!(decide(found, done), Decision::Complete);
    }

    #[test]
    fn the_survey_reads_the_path() {
        let t = tempfile::tempdir().unwrap();
        let out = t.path().join("o.zarr");
        let mut cfg = ConvertConfig::new(vec![], out.clone());
        let print = PlanPrint {
            inputs: vec![],
            arrays: vec![],
            format: "V3".into(),
            append_from: None,
            total_units: 0,
        };
        let f = |cfg: &ConvertConfig| survey(cfg, ZarrFormat::V3, &print);
        assert_eq!(f(&cfg), Found::Absent);
        std::fs::create_dir(&out).unwrap();
        assert_eq!(f(&cfg), Found::Absent, "an empty directory is unclaimed");
        std::fs::write(out.join("notes.txt"), b"x").unwrap();
        assert_eq!(f(&cfg), Found::Foreign);
        std::fs::remove_file(out.join("notes.txt")).unwrap();
        store::mark(&out).unwrap();
        assert_eq!(f(&cfg), Found::Building);
        store::write_atomic(&out.join("zarr.json"), b"{}").unwrap();
        assert_eq!(f(&cfg), Found::Committed { same_plan: false });
        store::write_atomic(&out.join(".zarrforge").join(store::CLEARING_FILE), b"").unwrap();
        assert_eq!(f(&cfg), Found::Clearing);
        let link = t.path().join("link.zarr");
        std::os::unix::fs::symlink(&out, &link).unwrap();
        cfg.output = link;
        assert_eq!(f(&cfg), Found::Clearing, "reached through a link");
        cfg.overwrite = true;
        assert_eq!(f(&cfg), Found::Foreign, "never overwritten through a link");
    }
}
