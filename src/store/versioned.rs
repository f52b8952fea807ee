//! Opening and committing an Icechunk repository (`convert --icechunk`),
//! on rank 0: the same table of operations and states as a directory store
//! ([`opening::decide`]), read from the repository, and one commit at the
//! end ([`commit`]). The MPI side (forks out, forks back) is
//! `commands::convert::versions`.
//!
//! What a run leaves, step by step (docs/reliability.md, "Icechunk"):
//! before the commit nothing on the branch changes; the journal beside the
//! repository (`.zarrforge/journal`) records finished units and the chunk
//! references written for them, so `--resume` writes only the rest; the
//! commit is one snapshot, made by rank 0 after every rank has handed its
//! fork back; its metadata names the run, so a run killed after its commit
//! is recognised and not committed twice.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::error::StoreError as Error;
use crate::cli::config::ConvertConfig;
use crate::cli::error::ConfigError;
use crate::store::journal::{self, PlanPrint};
use crate::store::layout::{JOURNAL_DIR, MARKER_DIR};
use crate::store::lock::Lock;
use crate::store::opening::{self, Decision, Found, Opened, Refusal, Request};
use crate::store::storage::icechunk::{Committed, Repo};
use crate::store::storage::{self, Storage};
use crate::store::{files, state};

/// Snapshot metadata key of the run that made the snapshot.
pub const RUN_PROPERTY: &str = "zarrforge.run";
/// Journal object naming the run (matched against [`RUN_PROPERTY`]).
const RUN_KEY: &str = "run";
/// Journal object of an `--overwrite` in progress (a resume clears again).
const OVERWRITE_KEY: &str = "overwrite";
/// Journal object naming the branch of the run.
const BRANCH_KEY: &str = "branch";

/// What zarrforge's marker says of a repository it created.
pub const MARKER_FORMAT: &str = "icechunk";

fn journal_key(name: &str) -> String {
    format!("{MARKER_DIR}/{JOURNAL_DIR}/{name}")
}

fn repo_of(out: &Path) -> Result<Arc<Repo>, Error> {
    storage::icechunk::registered(out).ok_or_else(|| {
        Error::from(crate::store::error::WriteError::Remote {
            url: out.display().to_string(),
            what: "open the repository",
            source: "the repository was not opened for this run".into(),
        })
    })
}

/// Whether anything but zarrforge's own directory is at `out` (where no
/// repository is).
fn holds_other_things(out: &Path, repo: &Repo) -> bool {
    let names = if storage::is_remote(out) {
        repo.control().children("").unwrap_or_default()
    } else {
        match std::fs::read_dir(out) {
            Ok(d) => d
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect(),
            Err(_) => return false,
        }
    };
    // Icechunk's own names: what a creation killed before its `repo`
    // object leaves.
    const OURS: [&str; 7] = [
        MARKER_DIR,
        "snapshots",
        "transactions",
        "chunks",
        "manifests",
        "refs",
        "overwritten",
    ];
    names
        .iter()
        .any(|n| !OURS.contains(&n.trim_end_matches('/')))
}

/// What is at the output, in the terms of [`opening::decide`]. Opens the
/// branch's writable session when there is a repository.
fn survey(cfg: &ConvertConfig, repo: &Repo, print: &PlanPrint) -> Result<Found, Error> {
    let out = &cfg.output;
    if !repo.repo_exists()? {
        if !holds_other_things(out, repo) {
            return Ok(Found::Absent);
        }
        // A run creating the repository right now is not a stranger.
        if let Some(h) = crate::store::lock::live_holder(out) {
            return Err(ConfigError::Locked {
                store: out.clone(),
                holder: h.describe(),
                hint: "wait for it to end, then run the same command again",
            }
            .into());
        }
        return Ok(Found::Foreign);
    }
    if repo.base_snapshot().is_none() && !repo.open_writable(false, None)? {
        // No such branch yet.
        return Ok(Found::Absent);
    }
    // (A journal whose run committed is that of a run killed between its
    // commit and the journal's removal: the branch is committed.)
    if journal::saved_print(out)?.is_some() && !journal_committed(repo)? {
        return Ok(if Storage::exists(repo, &journal_key(OVERWRITE_KEY))? {
            Found::Clearing
        } else {
            Found::Building
        });
    }
    if !Storage::exists(repo, "zarr.json")? {
        return Ok(Found::Absent);
    }
    if !repo.control().exists(&format!(
        "{MARKER_DIR}/{}",
        crate::store::layout::MARKER_FILE
    ))? {
        // Another tool's data: never replaced or appended to.
        return Ok(Found::Foreign);
    }
    let same_plan = cfg.resume
        && state::load(out)
            .ok()
            .and_then(|s| s.print)
            .is_some_and(|p| p == *print);
    Ok(Found::Committed { same_plan })
}

/// Whether the journal's run is the one that made the branch's tip (a run
/// killed after its commit, or `--keep-journal`).
fn journal_committed(repo: &Repo) -> Result<bool, Error> {
    let ran = repo.get(&journal_key(RUN_KEY))?;
    let tip_run = repo
        .base_properties()
        .get(RUN_PROPERTY)
        .and_then(serde_json::Value::as_str)
        .map(|s| s.as_bytes().to_vec());
    Ok(ran.is_some() && ran == tip_run)
}

/// Whether the repository at `out` holds the journal of an interrupted run
/// (one that did not commit): its recorded chunks are not garbage.
///
/// # Errors
/// The repository's errors.
pub fn interrupted(out: &Path) -> Result<bool, Error> {
    let repo = repo_of(out)?;
    if journal::saved_print(out)?.is_none() {
        return Ok(false);
    }
    let branch = repo
        .get(&journal_key(BRANCH_KEY))?
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_else(|| "main".into());
    // A branch that is not there yet: its run never committed.
    if repo.open_readonly_at(&branch).is_err() {
        return Ok(true);
    }
    Ok(!journal_committed(&repo)?)
}

/// What is refused before anything is looked at closely: more chunks than
/// a commit takes, a tag the repository has, a journal of another branch.
fn precheck(cfg: &ConvertConfig, repo: &Repo, print: &PlanPrint) -> Result<(), Error> {
    let out = &cfg.output;
    if print.total_units > crate::store::layout::ICECHUNK_MAX_REFS {
        return Err(ConfigError::TooManyChunks {
            store: out.clone(),
            refs: print.total_units,
            limit: crate::store::layout::ICECHUNK_MAX_REFS,
        }
        .into());
    }
    if !repo.repo_exists()? {
        return Ok(());
    }
    if let Some(tag) = cfg.icechunk.as_ref().and_then(|i| i.tag.as_deref()) {
        if repo.has_tag(tag)? {
            return Err(ConfigError::TagExists {
                store: out.clone(),
                tag: tag.to_string(),
            }
            .into());
        }
    }
    if repo.base_snapshot().is_none() {
        repo.open_writable(false, None)?;
    }
    same_branch(repo, out)
}

/// The refusal of an unfinished run's repository: a live run's is locked.
fn unfinished(cfg: &ConvertConfig, print: &PlanPrint) -> Error {
    let out = &cfg.output;
    if let Some(h) = crate::store::lock::live_holder(out).filter(|_| !cfg.break_lock) {
        return ConfigError::Locked {
            store: out.clone(),
            holder: h.describe(),
            hint: "wait for it to end, then run the same command again; if it is gone (killed on another node), go on with --resume --break-lock",
        }
        .into();
    }
    opening::refusal(Refusal::Unfinished, out, print).into()
}

/// Removes what killed writes left in zarrforge's own directory (never in
/// Icechunk's tree), with the lock held.
fn stale_temps(out: &Path) -> Result<(), Error> {
    let d = out.join(MARKER_DIR);
    if !storage::is_remote(out) && d.is_dir() {
        files::remove_stale_temps(&d)?;
    }
    Ok(())
}

/// zarrforge's marker of a repository it created (a plain run refuses it).
fn mark(repo: &Repo) -> Result<(), Error> {
    let marker = serde_json::json!({
        "writer": "zarrforge",
        "version": env!("CARGO_PKG_VERSION"),
        "format": MARKER_FORMAT,
    });
    repo.put(
        &format!("{MARKER_DIR}/{}", crate::store::layout::MARKER_FILE),
        &serde_json::to_vec_pretty(&marker).unwrap_or_default(),
    )?;
    crate::system::fault::point("store.marked");
    Ok(())
}

/// Refuses a run on `branch` while the journal of an interrupted run on
/// another branch is there (one journal per repository).
fn same_branch(repo: &Repo, out: &Path) -> Result<(), Error> {
    if journal::saved_print(out)?.is_none() {
        return Ok(());
    }
    let theirs = repo
        .get(&journal_key(BRANCH_KEY))?
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_else(|| "main".into());
    if theirs != repo.branch() && !journal_committed(repo)? {
        return Err(ConfigError::OtherBranch {
            store: out.to_path_buf(),
            branch: theirs,
        }
        .into());
    }
    Ok(())
}

/// Rank 0, before the inputs are scanned: with a repository there, takes
/// its lock for a run that changes it (`--append`, `--resume`,
/// `--overwrite`) and opens the branch, so that an append reads the state
/// of the branch's tip with the lock held.
///
/// # Errors
/// [`ConfigError::Locked`]; the repository's errors.
pub fn lock_existing(cfg: &ConvertConfig) -> Result<Option<Lock>, Error> {
    let out = &cfg.output;
    let repo = repo_of(out)?;
    if !(cfg.append || cfg.resume || cfg.overwrite) || !repo.repo_exists()? {
        return Ok(None);
    }
    let lock = Lock::acquire(out, opening::takeover(cfg))?;
    repo.open_writable(false, None)?;
    Ok(Some(lock))
}

/// Rank 0: opens or creates the repository and its branch and decides what
/// the run does ([`opening::decide`]); returns the lock (taken here or by
/// [`lock_existing`]) and what every rank needs to know.
///
/// # Errors
/// The refusals of a directory store; a live lock; the repository's errors.
pub fn open(
    cfg: &ConvertConfig,
    req: Request,
    inputs: &[PathBuf],
    print: &PlanPrint,
    split_dim: Option<&str>,
    held: Option<Lock>,
) -> Result<(Option<Lock>, Opened), Error> {
    let out = &cfg.output;
    let repo = repo_of(out)?;
    precheck(cfg, &repo, print)?;
    let opened = Opened {
        run: opening::run_name(),
        ..Opened::default()
    };
    let take = |held: Option<Lock>| -> Result<Lock, Error> {
        match held {
            Some(l) => Ok(l),
            None => Ok(Lock::acquire(out, opening::takeover(cfg))?),
        }
    };
    files::check_inputs(out, inputs)?;
    let found = if req.append {
        Found::Committed { same_plan: false }
    } else {
        survey(cfg, &repo, print)?
    };
    let start = |lock: Lock, overwrite: bool| -> Result<(Option<Lock>, Opened), Error> {
        journal::remove(out)?;
        // The overwrite's mark before the plan: a journal with a plan is
        // never taken for a create's.
        if overwrite {
            repo.put(&journal_key(OVERWRITE_KEY), b"")?;
        }
        journal::start(out, print)?;
        repo.put(&journal_key(RUN_KEY), opened.run.as_bytes())?;
        repo.put(&journal_key(BRANCH_KEY), repo.branch().as_bytes())?;
        if overwrite {
            repo.clear()?;
        }
        Ok((Some(lock), opened.clone()))
    };
    match opening::decide(found, req) {
        Decision::Create => {
            if let crate::store::storage::Location::Dir(d) = storage::Location::parse(out)? {
                std::fs::create_dir_all(&d)
                    .map_err(|e| crate::store::error::WriteError::io(&d, "create", e))?;
            }
            let lock = take(held)?;
            // Another run may have created it while this one waited.
            if let Found::Committed { .. } = survey(cfg, &repo, print)? {
                return Err(ConfigError::OutputExists(out.clone()).into());
            }
            stale_temps(out)?;
            repo.open_writable(true, split_dim)?;
            mark(&repo)?;
            start(lock, false)
        }
        Decision::Refuse(Refusal::Unfinished) => Err(unfinished(cfg, print)),
        Decision::Refuse(why) => Err(opening::refusal(why, out, print).into()),
        Decision::Complete => {
            let lock = take(held)?;
            if journal::saved_print(out)?.is_some() && journal_committed(&repo)? {
                journal::remove(out)?;
            }
            Ok((
                Some(lock),
                Opened {
                    complete: true,
                    ..opened
                },
            ))
        }
        Decision::StartAppend => start(take(held)?, false),
        Decision::Overwrite => start(take(held)?, true),
        Decision::Resume { clear_first } => {
            let lock = take(held)?;
            stale_temps(out)?;
            match journal::saved_print(out)? {
                None => start(lock, clear_first),
                Some(saved) => resume(&repo, out, print, &saved, clear_first, lock, opened),
            }
        }
    }
}

/// Rank 0, before the forks: every metadata document of the new snapshot
/// goes into the session (arrays must exist before their chunks); then, for
/// a resumed run, the chunks the interrupted run recorded. Returns how
/// many chunks were taken over.
///
/// # Errors
/// The repository's errors.
pub fn stage_documents(
    out: &Path,
    docs: &[(String, Vec<u8>)],
    state: &[u8],
    resumed: bool,
) -> Result<u64, Error> {
    let repo = repo_of(out)?;
    // The arrays and groups of an append or a resume are replaced whole:
    // their documents are written again with the new shapes.
    // Parents before children.
    let mut ordered: Vec<&(String, Vec<u8>)> = docs.iter().collect();
    ordered.sort_by_key(|(k, _)| k.matches('/').count());
    for (key, bytes) in ordered {
        repo.put(key, bytes)?;
    }
    repo.put(
        &format!("{MARKER_DIR}/{}", crate::store::layout::STATE_FILE),
        state,
    )?;
    Ok(if resumed { repo.replay_refs()? } else { 0 })
}

/// What a commit's snapshot records about the run.
pub struct Properties<'a> {
    /// The full command line.
    pub command: &'a [String],
    /// Input files.
    pub inputs: &'a [PathBuf],
    /// The run's name.
    pub run: &'a str,
    /// The region a `--region` run rewrote.
    pub region: Option<&'a str>,
}

/// Rank 0, once every rank's fork is merged into its session: one commit
/// on the branch, tagged when asked. Returns the new snapshot's id.
///
/// # Errors
/// [`ConfigError::BranchMoved`] when another writer changed what this run
/// changed since the run opened the branch (nothing is committed); the
/// repository's errors.
pub fn commit(cfg: &ConvertConfig, message: &str, props: &Properties<'_>) -> Result<String, Error> {
    let out = &cfg.output;
    let repo = repo_of(out)?;
    let mut p = BTreeMap::new();
    p.insert(
        "zarrforge.version".to_string(),
        env!("CARGO_PKG_VERSION").into(),
    );
    p.insert(
        "zarrforge.command".to_string(),
        props.command.join(" ").into(),
    );
    p.insert("zarrforge.inputs".to_string(), props.inputs.len().into());
    if let (Some(first), Some(last)) = (props.inputs.first(), props.inputs.last()) {
        p.insert(
            "zarrforge.first_input".to_string(),
            first.display().to_string().into(),
        );
        p.insert(
            "zarrforge.last_input".to_string(),
            last.display().to_string().into(),
        );
    }
    p.insert(RUN_PROPERTY.to_string(), props.run.into());
    if let Some(r) = props.region {
        p.insert("zarrforge.region".to_string(), r.into());
    }
    crate::system::fault::point("icechunk.commit");
    let tag = cfg.icechunk.as_ref().and_then(|i| i.tag.as_deref());
    match repo.commit(message, p, tag)? {
        Committed::Snapshot(id) => {
            crate::system::fault::point("icechunk.committed");
            Ok(id)
        }
        Committed::Moved(why) => {
            // Nothing of this run can be reused on the new tip.
            journal::remove(out)?;
            Err(ConfigError::BranchMoved {
                store: out.clone(),
                branch: repo.branch().to_string(),
                why,
            }
            .into())
        }
    }
}

/// Goes on from the journal of an interrupted run of the same plan: its
/// finished units are skipped, and the chunks it recorded are put into the
/// session after the metadata ([`stage_documents`]).
fn resume(
    repo: &Repo,
    out: &Path,
    print: &PlanPrint,
    saved: &PlanPrint,
    clear_first: bool,
    lock: Lock,
    opened: Opened,
) -> Result<(Option<Lock>, Opened), Error> {
    if saved != print {
        return Err(ConfigError::PlanChanged {
            store: out.to_path_buf(),
            what: print
                .difference(saved)
                .unwrap_or_else(|| "the plan differs".into()),
        }
        .into());
    }
    if clear_first {
        repo.clear()?;
    }
    repo.put(&journal_key(RUN_KEY), opened.run.as_bytes())?;
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
