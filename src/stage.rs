//! The stage a rank is in, and what a panic does.
//!
//! Each rank records the pipeline stage it is running (scan, combine, plan,
//! write, commit, verify). A panic inside a guarded region ([`guarded`],
//! [`catch`]) becomes an ordinary error naming its stage and source
//! location, so the rank still reaches the next collective and every rank
//! exits with a clear message. A panic anywhere else would leave the other
//! ranks waiting in a collective: the hook installed by
//! [`install_panic_hook`] prints one line naming the rank, stage and place,
//! then aborts the whole MPI job at once.

use std::cell::{Cell, RefCell};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Mutex;

static STAGE: Mutex<&str> = Mutex::new("start-up");
static RANK: AtomicI32 = AtomicI32::new(-1);

thread_local! {
    /// Guarded regions this thread is inside.
    static GUARDS: Cell<u32> = const { Cell::new(0) };
    /// Where the last panic on this thread happened.
    static LAST: RefCell<Option<String>> = const { RefCell::new(None) };
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

/// Records that this rank now runs `stage`.
pub fn enter(stage: &'static str) {
    if let Ok(mut s) = STAGE.lock() {
        *s = stage;
    }
}

/// The stage this rank runs.
pub fn current() -> &'static str {
    STAGE.lock().map_or("unknown stage", |s| *s)
}

/// Installs the panic hook (see the module docs) for `rank`.
pub fn install_panic_hook(rank: i32) {
    RANK.store(rank, Ordering::Relaxed);
    std::panic::set_hook(Box::new(|info| {
        let location = info.location().map_or_else(
            || "unknown place".into(),
            |l| format!("{}:{}", l.file(), l.line()),
        );
        let _ = LAST.try_with(|l| l.replace(Some(location.clone())));
        if GUARDS.try_with(Cell::get).unwrap_or(0) > 0 {
            return;
        }
        let message = payload_text(info.payload());
        eprintln!(
            "zarrforge: error: [rank {}] internal error (panic) during {} at {location}: {message}; aborting every rank",
            RANK.load(Ordering::Relaxed),
            current()
        );
        abort_job();
    }));
}

/// Ends every rank of the job now (after an unrecoverable panic).
fn abort_job() {
    // SAFETY: MPI_Abort may be called at any time after MPI_Init; when MPI
    // is not initialised the process exits below anyway.
    unsafe {
        let mut init = 0;
        mpi::ffi::MPI_Initialized(&raw mut init);
        let mut finalized = 0;
        mpi::ffi::MPI_Finalized(&raw mut finalized);
        if init != 0 && finalized == 0 {
            mpi::ffi::MPI_Abort(mpi::ffi::RSMPI_COMM_WORLD, 70);
        }
    }
    std::process::exit(70);
}

fn payload_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Runs `f`; a panic inside becomes [`Panicked`] for the current stage.
///
/// # Errors
/// [`Panicked`] when `f` panics.
pub fn catch<T>(f: impl FnOnce() -> T) -> Result<T, Panicked> {
    let _ = GUARDS.try_with(|g| g.set(g.get() + 1));
    let out = std::panic::catch_unwind(AssertUnwindSafe(f));
    let _ = GUARDS.try_with(|g| g.set(g.get().saturating_sub(1)));
    out.map_err(|p| Panicked {
        stage: current(),
        location: LAST
            .try_with(|l| l.borrow_mut().take())
            .ok()
            .flatten()
            .unwrap_or_else(|| "unknown place".into()),
        message: payload_text(p.as_ref()),
    })
}

/// Runs a fallible `f`, turning a panic into an error, so the rank still
/// reaches the next collective instead of leaving the others waiting.
///
/// # Errors
/// `f`'s error, or [`crate::error::Error::Panic`].
pub fn guarded<T>(
    f: impl FnOnce() -> Result<T, crate::error::Error>,
) -> Result<T, crate::error::Error> {
    catch(f).unwrap_or_else(|p| Err(p.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guarded_panic_names_its_stage_and_place() {
        enter("scan");
        let e = catch(|| -> u32 { panic!("boom") }).unwrap_err();
        assert_eq!(e.stage, "scan");
        assert_eq!(e.message, "boom");
        assert!(e
            .to_string()
            .starts_with("internal error (panic) during scan"));
        assert_eq!(catch(|| 3).ok(), Some(3));
    }
}
