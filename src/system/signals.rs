//! SIGTERM, SIGINT and SIGUSR1: stop at the next unit, leave the store
//! resumable.
//!
//! Slurm sends SIGTERM before a job's time limit (and `scancel` sends it);
//! `mpirun` forwards SIGUSR1 (and SIGTERM, though it kills the ranks soon
//! after) to the ranks. A handler only records the signal; the
//! write loop checks it between units, so every rank stops within one unit,
//! records its finished units in the journal, and fails at the next
//! agreement with a message that says how to resume.

use std::sync::atomic::{AtomicI32, Ordering};

static SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn record(sig: libc::c_int) {
    // A second signal ends the process at once (an impatient Ctrl-C).
    if SIGNAL.swap(sig, Ordering::SeqCst) != 0 {
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(128 + sig) };
    }
}

/// Installs the handlers for SIGTERM, SIGINT and SIGUSR1.
pub fn install() {
    let handler = record as extern "C" fn(libc::c_int);
    // SAFETY: the handler only stores into an atomic (async-signal-safe).
    unsafe {
        libc::signal(libc::SIGTERM, handler as libc::sighandler_t);
        libc::signal(libc::SIGINT, handler as libc::sighandler_t);
        libc::signal(libc::SIGUSR1, handler as libc::sighandler_t);
    }
}

/// The signal received, if any.
pub fn received() -> Option<i32> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// The name of a signal.
pub fn name(sig: i32) -> &'static str {
    match sig {
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        libc::SIGUSR1 => "SIGUSR1",
        _ => "a signal",
    }
}
