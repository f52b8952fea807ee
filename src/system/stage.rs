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
//!
//! netCDF-C and HDF5 can crash on a damaged file (a segmentation fault or an
//! abort inside the C library, which no check before the call can rule
//! out). [`install_crash_handler`] turns such a signal into one line naming
//! the rank, the stage and the file being read, then ends the job: never a
//! bare signal death that leaves the user guessing which of thousands of
//! inputs is damaged.

use std::cell::{Cell, RefCell};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicI32, AtomicPtr, AtomicUsize, Ordering};

static RANK: AtomicI32 = AtomicI32::new(-1);
static SIZE: AtomicI32 = AtomicI32::new(1);

thread_local! {
    /// Guarded regions this thread is inside.
    static GUARDS: Cell<u32> = const { Cell::new(0) };
    /// Where the last panic on this thread happened.
    static LAST: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// The stage's name for the crash handler (a static string).
static STAGE_PTR: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
static STAGE_LEN: AtomicUsize = AtomicUsize::new(0);

/// The file being read, for the crash handler.
const FILE_CAP: usize = 4096;
static FILE_BUF: [std::sync::atomic::AtomicU8; FILE_CAP] =
    [const { std::sync::atomic::AtomicU8::new(0) }; FILE_CAP];
static FILE_LEN: AtomicUsize = AtomicUsize::new(0);

/// Records that this rank now runs `stage`.
pub fn enter(stage: &'static str) {
    STAGE_LEN.store(0, Ordering::SeqCst);
    STAGE_PTR.store(stage.as_ptr().cast_mut(), Ordering::SeqCst);
    STAGE_LEN.store(stage.len(), Ordering::SeqCst);
}

/// Records the input file this rank is about to read (named if netCDF-C or
/// HDF5 crashes on it).
pub fn reading(path: &std::path::Path) {
    use std::os::unix::ffi::OsStrExt;
    let b = path.as_os_str().as_bytes();
    let n = b.len().min(FILE_CAP);
    FILE_LEN.store(0, Ordering::SeqCst);
    for (slot, &x) in FILE_BUF.iter().zip(&b[..n]) {
        slot.store(x, Ordering::Relaxed);
    }
    FILE_LEN.store(n, Ordering::SeqCst);
}

/// The signals of a crash.
const CRASH_SIGNALS: [libc::c_int; 5] = [
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGFPE,
    libc::SIGILL,
    libc::SIGABRT,
];

/// Turns SIGSEGV, SIGBUS, SIGFPE, SIGILL and SIGABRT into one error line
/// naming the rank, stage and file, then ends the job (exit status 70).
pub fn install_crash_handler() {
    let handler = crashed as extern "C" fn(libc::c_int);
    for sig in CRASH_SIGNALS {
        // SAFETY: a sigaction with a handler that only formats into a stack
        // buffer and calls write(2) before ending the process; SA_RESETHAND
        // makes a second fault during the handler fatal as usual.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = handler as libc::sighandler_t;
            sa.sa_flags = libc::SA_RESETHAND;
            libc::sigemptyset(&raw mut sa.sa_mask);
            libc::sigaction(sig, &raw const sa, std::ptr::null_mut());
        }
    }
}

/// Restores the default action of the signals [`install_crash_handler`]
/// catches (in a child process that must die of them quietly).
pub fn reset_crash_handler() {
    for sig in CRASH_SIGNALS {
        // SAFETY: restoring the default action is always valid.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
        }
    }
}

extern "C" fn crashed(sig: libc::c_int) {
    let mut buf = [0u8; 8192];
    let mut n = 0;
    let mut put = |b: &[u8]| {
        let k = b.len().min(buf.len() - n);
        buf[n..n + k].copy_from_slice(&b[..k]);
        n += k;
    };
    put(b"zarrforge: error: [rank ");
    let mut digits = [0u8; 12];
    let mut r = i64::from(RANK.load(Ordering::Relaxed));
    let neg = r < 0;
    r = r.abs();
    let mut d = digits.len();
    loop {
        d -= 1;
        digits[d] = b'0' + u8::try_from(r % 10).unwrap_or(0);
        r /= 10;
        if r == 0 {
            break;
        }
    }
    if neg {
        put(b"-");
    }
    put(&digits[d..]);
    put(b"] ");
    let len = FILE_LEN.load(Ordering::SeqCst);
    if len > 0 {
        let mut name = [0u8; FILE_CAP];
        for (dst, src) in name.iter_mut().zip(FILE_BUF.iter()).take(len) {
            *dst = src.load(Ordering::Relaxed);
        }
        put(&name[..len]);
        put(b": ");
    }
    put(match sig {
        libc::SIGSEGV => b"SIGSEGV" as &[u8],
        libc::SIGBUS => b"SIGBUS",
        libc::SIGFPE => b"SIGFPE",
        libc::SIGILL => b"SIGILL",
        _ => b"SIGABRT",
    });
    put(b" during ");
    put(current().as_bytes());
    put(b" (inside netCDF-C/HDF5 when reading that file: it is damaged or not valid netCDF; check it with ncdump -h)\n");
    // SAFETY: write(2) is async-signal-safe; the buffer is initialised.
    unsafe {
        libc::write(2, buf.as_ptr().cast(), n);
    }
    abort_job();
}

/// The stage this rank runs.
pub fn current() -> &'static str {
    let (p, l) = (
        STAGE_PTR.load(Ordering::SeqCst),
        STAGE_LEN.load(Ordering::SeqCst),
    );
    if p.is_null() || l == 0 {
        return "start-up";
    }
    // SAFETY: STAGE_PTR/STAGE_LEN describe a &'static str stored by
    // `enter` (the length is cleared while the pointer changes).
    let bytes: &'static [u8] = unsafe { std::slice::from_raw_parts(p, l) };
    std::str::from_utf8(bytes).unwrap_or("unknown stage")
}

/// Installs the panic hook (see the module docs) for `rank` of `size`.
pub fn install_panic_hook(rank: i32, size: usize) {
    RANK.store(rank, Ordering::Relaxed);
    SIZE.store(i32::try_from(size).unwrap_or(i32::MAX), Ordering::Relaxed);
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
        crate::say!(
            "zarrforge: error: [rank {}] internal error (panic) during {} at {location}: {message}; aborting every rank",
            RANK.load(Ordering::Relaxed),
            current()
        );
        abort_job();
    }));
}

/// Ends every rank of the job now (after an unrecoverable panic or crash).
fn abort_job() {
    // SAFETY: MPI_Abort may be called at any time after MPI_Init; when MPI
    // is not initialised the process exits below anyway.
    unsafe {
        let mut init = 0;
        mpi::ffi::MPI_Initialized(&raw mut init);
        let mut finalized = 0;
        mpi::ffi::MPI_Finalized(&raw mut finalized);
        // A single rank just exits (MPI_Abort would add Open MPI's banner).
        if init != 0 && finalized == 0 && SIZE.load(Ordering::Relaxed) > 1 {
            mpi::ffi::MPI_Abort(mpi::ffi::RSMPI_COMM_WORLD, 70);
        }
    }
    // SAFETY: _exit ends the process without running handlers that could
    // touch the state the panic or crash left behind.
    unsafe { libc::_exit(70) }
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
/// `f`'s error, or the [`Panicked`] as `E`.
pub fn guarded<T, E: From<Panicked>>(f: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
    catch(f).unwrap_or_else(|p| Err(p.into()))
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
