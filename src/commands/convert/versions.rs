//! The Icechunk stages of `convert --icechunk` across ranks: rank 0's
//! session, with the new metadata in it, is forked to every rank
//! ([`fork`]); after the writes the forks come back up a binary tree
//! (rank r merges the fork of r + 2^k at level k: log₂ R levels, and no
//! rank holds more than two changesets at once) into rank 0's session
//! ([`merge`]), which rank 0 then commits (`store::versioned::commit`).
//! A rank that failed sends "nothing" up the tree: rank 0 never commits
//! without every rank's fork.

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::mpi::ctx::MpiCtx;
use crate::store::error::WriteError;
use crate::store::storage::icechunk::Repo;
use crate::store::storage::Storage;
use crate::system::stage::guarded;

/// The figures of a merge, for the run report.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct MergeFigures {
    /// Tree levels.
    pub(super) levels: u32,
    /// Bytes of the largest fork rank 0 received.
    pub(super) largest_fork_bytes: u64,
    /// Rank 0's resident memory grew by this much while merging, MiB.
    pub(super) rank0_merge_mib: f64,
    /// Chunk references in the commit (every rank's writes).
    pub(super) chunk_refs: u64,
}

fn repo(output: &std::path::Path) -> Result<std::sync::Arc<Repo>, Error> {
    crate::store::storage::icechunk::registered(output).ok_or_else(|| {
        Error::from(WriteError::Remote {
            url: output.display().to_string(),
            what: "open the repository",
            source: "the repository was not opened for this run".into(),
        })
    })
}

/// Rank 0 puts the new metadata and state into its session and sends a
/// fork of it to every rank; every other rank works in that fork.
///
/// # Errors
/// The repository's errors, on every rank.
pub(super) fn fork(
    ctx: &MpiCtx,
    output: &std::path::Path,
    resumed: bool,
    docs: impl FnOnce() -> Result<(Vec<(String, Vec<u8>)>, Vec<u8>), Error>,
) -> Result<(), Error> {
    let r = repo(output)?;
    let bytes = crate::commands::convert::from_root(ctx, || {
        let (docs, state) = docs()?;
        crate::store::versioned::stage_documents(output, &docs, &state, resumed)?;
        crate::system::fault::point("icechunk.staged");
        Ok(r.fork_bytes()?)
    })?;
    let adopted = if ctx.is_root() {
        Ok(())
    } else {
        guarded(|| r.adopt(&bytes).map_err(Error::from))
    };
    ctx.agree(adopted)
}

/// Every rank's fork, merged up the tree into rank 0's session.
///
/// # Errors
/// Any rank's failure, on every rank (nothing is then committed).
pub(super) fn merge(ctx: &MpiCtx, output: &std::path::Path) -> Result<MergeFigures, Error> {
    let r = repo(output)?;
    let me = ctx.rank();
    let size = i32::try_from(ctx.size()).unwrap_or(i32::MAX);
    let rss0 = crate::system::heap::rss_mib();
    let mut figures = MergeFigures::default();
    // This rank's writes finished and recorded; a failure is carried up.
    let mut ok: Result<(), Error> = guarded(|| r.sync().map_err(Error::from));
    let mut step = 1;
    while step < size {
        figures.levels += 1;
        if me % (2 * step) == step {
            // Hand this subtree's fork to the parent, then stop.
            crate::system::fault::point("icechunk.handing");
            let bytes = if ok.is_ok() {
                match guarded(|| r.session_bytes().map_err(Error::from)) {
                    Ok(b) => Some(b),
                    Err(e) => {
                        ok = Err(e);
                        None
                    }
                }
            } else {
                None
            };
            ctx.send_bytes(me - step, bytes.as_deref());
            break;
        }
        if me % (2 * step) == 0 && me + step < size {
            let got = ctx.recv_bytes(me + step);
            match (got, &ok) {
                (Some(b), Ok(())) => {
                    if me == 0 {
                        figures.largest_fork_bytes = figures.largest_fork_bytes.max(b.len() as u64);
                    }
                    ok = guarded(|| r.merge_bytes(&b).map_err(Error::from));
                    crate::system::fault::point("icechunk.merged");
                }
                (None, Ok(())) => {
                    ok = Err(WriteError::Remote {
                        url: output.display().to_string(),
                        what: "merge the forks",
                        source: format!("rank {} handed back no fork", me + step).into(),
                    }
                    .into());
                }
                (_, Err(_)) => {}
            }
        }
        step *= 2;
    }
    ctx.agree(ok)?;
    figures.chunk_refs = ctx.sum_u64(r.chunks_written());
    if ctx.is_root() {
        figures.rank0_merge_mib = (crate::system::heap::rss_mib() - rss0).max(0.0);
    }
    Ok(figures)
}

/// Every rank: opens the repository handle of an `--icechunk` output
/// (shared by every stage of the run). Returns whether the output is one.
///
/// # Errors
/// [`WriteError::Remote`]: a malformed URL, no credentials.
pub(super) fn register(cfg: &crate::cli::config::ConvertConfig) -> Result<bool, Error> {
    let Some(ic) = &cfg.icechunk else {
        return Ok(false);
    };
    crate::store::storage::icechunk::register(
        &cfg.output,
        crate::store::storage::icechunk::Target {
            branch: ic.branch.clone(),
            reference: ic.reference.clone(),
        },
    )?;
    Ok(true)
}

/// Refuses an Icechunk repository given without `--icechunk`.
fn plain(cfg: &crate::cli::config::ConvertConfig) -> Result<(), Error> {
    if crate::store::files::is_icechunk(&cfg.output) {
        return Err(crate::cli::error::ConfigError::IsIcechunk(cfg.output.clone()).into());
    }
    Ok(())
}

/// Rank 0: the lock of an existing store or repository, for the runs that
/// change it.
///
/// # Errors
/// As `opening::lock_existing` and `versioned::lock_existing`.
pub(super) fn lock_existing(
    cfg: &crate::cli::config::ConvertConfig,
) -> Result<Option<crate::store::lock::Lock>, Error> {
    Ok(if cfg.icechunk.is_some() {
        crate::store::versioned::lock_existing(cfg)?
    } else {
        plain(cfg)?;
        crate::store::opening::lock_existing(cfg)?
    })
}

/// Rank 0: opens the store or the repository (see `opening::open_store`
/// and `versioned::open`).
///
/// # Errors
/// Their refusals and errors.
pub(super) fn open_store(
    cfg: &crate::cli::config::ConvertConfig,
    req: crate::store::opening::Request,
    inputs: &[std::path::PathBuf],
    print: &crate::store::journal::PlanPrint,
    format: crate::cli::config::ZarrFormat,
    split_dim: Option<&str>,
    held: Option<crate::store::lock::Lock>,
) -> Result<
    (
        Option<crate::store::lock::Lock>,
        crate::store::opening::Opened,
    ),
    Error,
> {
    Ok(if cfg.icechunk.is_some() {
        if let Some(v) = &cfg.virtual_refs {
            repo(&cfg.output)?.set_containers(containers(v, inputs));
        }
        crate::store::versioned::open(cfg, req, inputs, print, split_dim, held)?
    } else {
        plain(cfg)?;
        crate::store::opening::open_store(cfg, req, inputs, print, format, held)?
    })
}

/// The URL prefix that the references to `inputs` share (the deepest
/// directory holding them all): the repository's virtual chunk container.
fn containers(v: &crate::cli::config::VirtualOutput, inputs: &[std::path::PathBuf]) -> Vec<String> {
    let dirs: Vec<std::path::PathBuf> = inputs
        .iter()
        .filter_map(|p| {
            let c = std::fs::canonicalize(p).ok()?;
            c.parent().map(std::path::Path::to_path_buf)
        })
        .collect();
    let Some(first) = dirs.first() else {
        return Vec::new();
    };
    let mut common = first.clone();
    for d in &dirs[1..] {
        while !d.starts_with(&common) {
            if !common.pop() {
                break;
            }
        }
    }
    let url = v.url(&common);
    vec![if url.ends_with('/') {
        url
    } else {
        format!("{url}/")
    }]
}

/// Rank 0, every rank's fork merged: the commit, and what it cost.
///
/// # Errors
/// `versioned::commit`'s.
pub(super) fn commit(
    cfg: &crate::cli::config::ConvertConfig,
    inputs: &[std::path::PathBuf],
    (run, region): (&str, Option<&str>),
    merged: &MergeFigures,
) -> Result<crate::report::summary::IcechunkReport, Error> {
    let Some(ic) = &cfg.icechunk else {
        return Ok(crate::report::summary::IcechunkReport::default());
    };
    let r = repo(&cfg.output)?;
    let parent = r.base_snapshot();
    let message = ic.message.clone().unwrap_or_else(|| match region {
        Some(r) => format!(
            "zarrforge convert --region: rewrote {r} of {} from {} input file(s)",
            cfg.output.display(),
            inputs.len()
        ),
        None => format!(
            "zarrforge convert: {} input file(s) into {}",
            inputs.len(),
            cfg.output.display()
        ),
    });
    let props = crate::store::versioned::Properties {
        command: &ic.command,
        inputs,
        run,
        region,
    };
    let snapshot = crate::store::versioned::commit(cfg, &message, &props)?;
    #[allow(clippy::cast_precision_loss)]
    let per_million = if merged.chunk_refs == 0 {
        0.0
    } else {
        merged.rank0_merge_mib * 1e6 / merged.chunk_refs as f64
    };
    Ok(crate::report::summary::IcechunkReport {
        branch: ic.branch.clone(),
        snapshot: Some(snapshot),
        parent,
        tag: ic.tag.clone(),
        merge_levels: merged.levels,
        largest_fork_bytes: merged.largest_fork_bytes,
        rank0_merge_mib: merged.rank0_merge_mib,
        chunk_refs: merged.chunk_refs,
        merge_mib_per_million_refs: per_million,
    })
}
