//! `zarrforge gc`: reclaims the space of abandoned runs in an Icechunk
//! repository (their chunks, the snapshots of forks), with zarrforge's lock
//! held so that no run of zarrforge is writing, and never the chunks of an
//! interrupted run that `--resume` can still reuse unless told so.
//! Snapshots on a branch or a tag are kept: expiring history stays a
//! deliberate act in Icechunk's own tools (docs/icechunk.md).

use std::time::{Duration, SystemTime};

use crate::error::Error;
use crate::mpi::ctx::MpiCtx;
use crate::store::error::WriteError;
use crate::store::lock::{Lock, Takeover};
use crate::store::storage::icechunk::{register, Target};

/// Runs `gc` on rank 0 (the other ranks have nothing to do).
///
/// # Errors
/// No repository; a run holds its lock; an interrupted run's journal
/// without `--discard-interrupted`; Icechunk's errors.
pub fn command(ctx: &MpiCtx, args: &crate::cli::args::GcArgs) -> Result<(), Error> {
    if !ctx.is_root() {
        return Ok(());
    }
    let out = &args.repository;
    let repo = register(
        out,
        Target {
            branch: "main".into(),
            reference: None,
        },
    )?;
    if !repo.repo_exists()? {
        return Err(WriteError::Remote {
            url: out.display().to_string(),
            what: "collect garbage",
            source: "no Icechunk repository there".into(),
        }
        .into());
    }
    // No zarrforge run writes while the lock is held.
    let lock = Lock::acquire(out, Takeover::Stale)?;
    if crate::store::versioned::interrupted(out)? {
        if !args.discard_interrupted {
            return Err(crate::cli::error::ConfigError::Interrupted(out.clone()).into());
        }
        crate::store::journal::remove(out)?;
    } else if crate::store::journal::saved_print(out)?.is_some() {
        // Kept by --keep-journal, or left by a run killed after its commit.
        crate::store::journal::remove(out)?;
    }
    let hours = args.older_than_hours.max(0.0);
    let before = SystemTime::now()
        .checked_sub(Duration::from_secs_f64(hours * 3600.0))
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let c = repo.collect_garbage(before, args.dry_run)?;
    drop(lock);
    #[allow(clippy::cast_precision_loss)]
    let mib = c.bytes as f64 / f64::from(1 << 20);
    crate::say!(
        "zarrforge gc: {} {}: {} chunk(s) ({mib:.1} MiB), {} manifest(s), {} snapshot(s), {} transaction log(s) written more than {hours} h ago and reached by no branch or tag{}",
        out.display(),
        if args.dry_run { "would delete" } else { "deleted" },
        c.chunks,
        c.manifests,
        c.snapshots,
        c.transaction_logs,
        if c.failed > 0 {
            format!("; {} object(s) could not be deleted (run gc again)", c.failed)
        } else {
            String::new()
        }
    );
    Ok(())
}
