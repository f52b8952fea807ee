//! The lock of a store: who is writing it, taken and given up so that two
//! runs can never both believe they hold the store, and no run removes a
//! lock it does not own.
//!
//! # In a directory
//!
//! ```text
//! .zarrforge/lock                  the holder (host, PID, Slurm job, start time, token)
//! .zarrforge/lock.new-TOKEN        a run's own lock, written whole before it is published
//! .zarrforge/lock.claim-HOLDER-N   a run taking over (or releasing) the lock of HOLDER
//! ```
//!
//! Every lock carries a token unique to the run that wrote it. The lock
//! file changes only in three ways, each one atomic:
//!
//! - **publish** a lock where there is none: `link(2)` of the run's own
//!   file, which fails when a lock exists;
//! - **replace** a provably stale lock: only the run that holds the claim
//!   on that lock (`lock.claim-HOLDER-N`, created by `link(2)` so exactly
//!   one run gets it) may, and only after reading the lock again under the
//!   claim and finding the same bytes it judged stale; it then renames its
//!   own file over the lock (`rename(2)`), so the lock never disappears
//!   during a takeover and no third run can slip in between;
//! - **release**: the holder claims its own lock, checks it is still its
//!   own, and unlinks it.
//!
//! A claim whose claimant is itself provably gone is passed over (claim
//! `N + 1`); a live claimant makes others wait for it and then refuse
//! naming it. After publishing, a run reads the lock back and goes on only
//! if it holds its own bytes. Only files whose writer is provably gone are
//! ever swept away, so a run never deletes another live run's files.
//!
//! `link(2)` and `rename(2)` are atomic on local filesystems (ext4, XFS,
//! tmpfs), on Lustre, GPFS/Spectrum Scale, `BeeGFS` and on NFS v3 and v4 (the
//! server performs them; a retransmitted `link` that reports `EEXIST` after
//! it succeeded is recognised by reading back the run's own token). Locks
//! of `flock`/`fcntl` are not used: Lustre mounted with `localflock` (or
//! without `flock`) and some NFS setups silently make them node-local.
//!
//! # On object storage
//!
//! The lock is one object. It is created with a create-only PUT
//! (`If-None-Match: *`); a stale lock is replaced with a conditional PUT
//! (`If-Match` on the `ETag` read with the bytes that were judged stale), so
//! a lock that changed since is never overwritten; the lock is read back
//! after each. Release reads the lock with its `ETag` and deletes it only
//! when the bytes are the run's own.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::cli::error::ConfigError;
use crate::store::error::WriteError;
use crate::store::layout::{LOCK_FILE, MARKER_DIR};
use crate::store::storage::{self, Storage};

/// How long a run waits for a lock holder on this host to exit (`--resume`
/// after a kill), and for a live run that is taking over a lock to finish.
pub const STALE_GRACE: Duration = Duration::from_secs(5);

/// Who holds a store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    /// Host name.
    pub host: String,
    /// Process id of rank 0.
    pub pid: u32,
    /// Slurm job id, if any.
    pub job: Option<String>,
    /// How many times that job was requeued (`SLURM_RESTART_COUNT`).
    #[serde(default)]
    pub restart: Option<u32>,
    /// Start time (UTC).
    pub since: String,
    /// The kernel's boot id (`/proc/sys/kernel/random/boot_id`): a holder
    /// recorded before a reboot of this host is gone.
    #[serde(default)]
    pub boot_id: Option<String>,
    /// The PID namespace (`/proc/self/ns/pid`): a PID means something only
    /// inside its namespace (containers).
    #[serde(default)]
    pub pid_ns: Option<String>,
    /// The holder's start time in clock ticks since boot (field 22 of
    /// `/proc/PID/stat`): a reused PID has another one.
    #[serde(default)]
    pub start_ticks: Option<u64>,
    /// Unique to the run and the moment it took the lock (absent in locks
    /// of older versions, which are told apart by their bytes).
    #[serde(default)]
    pub token: Option<String>,
}

impl LockInfo {
    /// This process, with a new token.
    pub fn current() -> Self {
        let pid = std::process::id();
        Self {
            host: crate::system::environment::hostname(),
            pid,
            job: std::env::var("SLURM_JOB_ID").ok().filter(|s| !s.is_empty()),
            restart: std::env::var("SLURM_RESTART_COUNT")
                .ok()
                .and_then(|s| s.parse().ok()),
            since: crate::system::environment::utc_now(),
            boot_id: boot_id(),
            pid_ns: pid_ns(),
            start_ticks: start_ticks(pid),
            token: Some(new_token(pid)),
        }
    }

    /// The holder in one phrase, for messages.
    pub fn describe(&self) -> String {
        format!(
            "host {}, pid {}{}, since {}",
            self.host,
            self.pid,
            self.job
                .as_ref()
                .map(|j| format!(", Slurm job {j}"))
                .unwrap_or_default(),
            self.since
        )
    }

    /// Whether the holder is provably gone:
    /// - its Slurm job is this one, requeued since (a higher restart count),
    ///   or Slurm says that job is no longer running;
    /// - on this host: it was recorded before the last boot, or no process
    ///   with its PID and start time exists in its PID namespace (a PID
    ///   reused by another process, this one included, is not the holder; a
    ///   lock written without a start time is judged by its PID alone).
    ///
    /// A holder on another host whose job Slurm cannot vouch for is never
    /// taken for gone.
    pub fn is_stale(&self) -> bool {
        let my_job = std::env::var("SLURM_JOB_ID").ok().filter(|s| !s.is_empty());
        if let Some(job) = &self.job {
            if Some(job) == my_job.as_ref() {
                let my_restart: u32 = std::env::var("SLURM_RESTART_COUNT")
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                if self.restart.unwrap_or(0) < my_restart {
                    return true;
                }
            } else if slurm_job_ended(job) == Some(true) {
                return true;
            }
        }
        if self.host != crate::system::environment::hostname() {
            return false;
        }
        let me_boot = boot_id();
        if self.boot_id.is_some() && me_boot.is_some() && self.boot_id != me_boot {
            return true;
        }
        let me_ns = pid_ns();
        if self.pid_ns.is_some() && me_ns.is_some() && self.pid_ns != me_ns {
            // Another container on this host: its PIDs cannot be checked.
            return false;
        }
        if !pid_alive(self.pid) {
            return true;
        }
        match (self.start_ticks, start_ticks(self.pid)) {
            (Some(recorded), Some(now)) => recorded != now,
            _ => false,
        }
    }
}

/// This process's PID namespace (`/proc/self/ns/pid`).
fn pid_ns() -> Option<String> {
    std::fs::read_link("/proc/self/ns/pid")
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
}

/// A token no other run has: the time in nanoseconds, the PID and 64
/// random bits.
fn new_token(pid: u32) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut rnd = [0u8; 8];
    let random = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut rnd))
        .is_ok();
    let r = if random {
        u64::from_le_bytes(rnd)
    } else {
        // No /dev/urandom: the address of a stack value and the time's low
        // bits still differ between two runs of one PID at one nanosecond.
        (std::ptr::addr_of!(rnd) as u64) ^ (nanos as u64).rotate_left(29)
    };
    format!("{nanos:x}-{pid:x}-{r:016x}")
}

/// Whether Slurm says job `id` has ended (or was requeued and waits): its
/// ranks are gone. `None` when Slurm cannot be asked (no `squeue`, no
/// answer within 10 s).
fn slurm_job_ended(id: &str) -> Option<bool> {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return None;
    }
    let mut child = std::process::Command::new("squeue")
        .args(["-h", "-j", id, "-o", "%T"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .ok()?;
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(50)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
    let out = child.wait_with_output().ok()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        // A job the controller has forgotten.
        return stderr.contains("Invalid job id").then_some(true);
    }
    let state = stdout.trim();
    Some(!matches!(
        state,
        "RUNNING"
            | "COMPLETING"
            | "CONFIGURING"
            | "SUSPENDED"
            | "STOPPED"
            | "SIGNALING"
            | "STAGE_OUT"
            | "RESIZING"
    ))
}

/// State of process `pid` (field 3 of `/proc/PID/stat`: `R`, `S`, `Z`…).
fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..]
        .split_whitespace()
        .next()?
        .chars()
        .next()
}

/// Start time of process `pid` in clock ticks since boot.
fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count
    // fields after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

fn pid_alive(pid: u32) -> bool {
    // A zombie (an exited process its parent has not reaped yet, as a
    // killed job's rank is for a moment) never acts again.
    if process_state(pid).is_some_and(|s| s == 'Z' || s == 'X') {
        return false;
    }
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill with signal 0 only checks for the process.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// How to treat an existing lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Takeover {
    /// Refuse any existing lock.
    Never,
    /// Take over a lock whose holder is provably gone.
    Stale,
    /// Take over any lock (`--break-lock`).
    Always,
}

/// The identity of a lock's bytes in file names: its token, or for a lock
/// without one (older versions, an unreadable lock) a hash of its bytes.
fn identity(bytes: &[u8]) -> String {
    let token = serde_json::from_slice::<LockInfo>(bytes)
        .ok()
        .and_then(|i| i.token)
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    token.unwrap_or_else(|| {
        // FNV-1a, 64 bits: stable across versions and platforms.
        let h = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        format!("bytes-{h:016x}")
    })
}

fn holder_of(bytes: &[u8]) -> Option<LockInfo> {
    serde_json::from_slice(bytes).ok()
}

fn describe(holder: Option<&LockInfo>) -> String {
    holder.map_or_else(|| "an unreadable lock".into(), LockInfo::describe)
}

/// What a run may do with a lock it found.
#[derive(Debug, PartialEq, Eq)]
enum Judgement {
    /// Take it over.
    Take,
    /// The lock changed while its holder was given time to exit (released,
    /// or taken by another run): look at it again.
    Changed,
}

/// Whether a run may take over the lock held by `holder` (`None`: an
/// unreadable lock); waits a moment for a holder on this host to exit,
/// watching the lock (`still`: whether the lock is still the one judged).
///
/// # Errors
/// [`ConfigError::Locked`] naming the holder and what to do.
fn may_take(
    store: &Path,
    holder: Option<&LockInfo>,
    takeover: Takeover,
    still: &dyn Fn() -> bool,
) -> Result<Judgement, ConfigError> {
    let mut stale = holder.is_none_or(LockInfo::is_stale);
    // A resumed run may start while the killed job's ranks are still being
    // torn down, or another run may be about to end: give a holder on this
    // host a moment to exit, and take the lock if it is released.
    if !stale && takeover == Takeover::Stale {
        if let Some(h) = holder.filter(|h| h.host == crate::system::environment::hostname()) {
            let until = Instant::now() + STALE_GRACE;
            while !stale && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(100));
                if !still() {
                    return Ok(Judgement::Changed);
                }
                stale = h.is_stale();
            }
        }
    }
    let take = match takeover {
        Takeover::Always => true,
        Takeover::Stale => stale,
        Takeover::Never => false,
    };
    if take {
        return Ok(Judgement::Take);
    }
    Err(ConfigError::Locked {
        store: store.to_path_buf(),
        holder: describe(holder),
        hint: if stale {
            "that run is gone: run the same command again to take the store over"
        } else {
            "wait for it to end; if it is gone (killed on another node), run the same command with --break-lock"
        },
    })
}

/// The holder of `store`'s lock when that holder is alive (or cannot be
/// proved gone): a store being created or changed by another run right
/// now. `None` when there is no lock or its holder is gone.
pub fn live_holder(store: &Path) -> Option<LockInfo> {
    let bytes = if storage::is_remote(store) {
        storage::open(store)
            .ok()?
            .get(&storage::join(MARKER_DIR, LOCK_FILE))
            .ok()??
    } else {
        read_lock(&store.join(MARKER_DIR).join(LOCK_FILE)).ok()??
    };
    holder_of(&bytes).filter(|h| !h.is_stale())
}

/// The error of a run that finds `store` held by `holder`, a live run.
fn held_by(store: &Path, holder: &LockInfo) -> ConfigError {
    ConfigError::Locked {
        store: store.to_path_buf(),
        holder: holder.describe(),
        hint: "wait for it to end, then run the same command again; if it is gone (killed on another node), run the same command with --break-lock",
    }
}

/// The lock of a store, held by rank 0 and released on drop.
#[derive(Debug)]
pub struct Lock {
    /// The bytes this run published.
    mine: Vec<u8>,
    release: Release,
}

/// Where the lock is.
#[derive(Debug)]
enum Release {
    /// A directory: `.zarrforge/` and this run's own file in it.
    File { dir: PathBuf, own: PathBuf },
    /// Object storage.
    Object(Arc<dyn Storage>, String),
}

/// Names of the lock's files in `.zarrforge/`.
fn own_name(token: &str) -> String {
    format!("{LOCK_FILE}.new-{token}")
}

fn claim_name(holder: &str, n: u32) -> String {
    format!("{LOCK_FILE}.claim-{holder}-{n}")
}

/// Whether `name` is one of the lock's files (the lock, a run's own lock
/// file, a claim), which nothing but this module may remove.
pub fn is_lock_name(name: &str) -> bool {
    name == LOCK_FILE
        || name.starts_with(&format!("{LOCK_FILE}.new-"))
        || name.starts_with(&format!("{LOCK_FILE}.claim-"))
}

/// What happened when a claim was tried.
enum Claimed {
    /// This run holds the claim (its path).
    Mine(PathBuf),
    /// A live run is taking over (or releasing) the same lock.
    Busy(Option<LockInfo>),
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> ConfigError + '_ {
    move |e| ConfigError::Output {
        path: path.to_path_buf(),
        source: e,
    }
}

/// The bytes of the lock; `None` when there is none.
///
/// # Errors
/// A symbolic link there (never followed: a planted link would otherwise
/// read as "no lock" while `link(2)` finds the name taken); I/O errors.
fn read_lock(path: &Path) -> Result<Option<Vec<u8>>, ConfigError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            return Err(io_err(path)(std::io::Error::other(
                "a symbolic link where the lock should be; zarrforge does not follow links inside a store: remove it, then run the same command again",
            )));
        }
        // A directory, a FIFO (whose read would wait forever), a device.
        Ok(m) if !m.is_file() => {
            return Err(io_err(path)(std::io::Error::other(
                "not a regular file where the lock should be: remove it, then run the same command again",
            )));
        }
        _ => {}
    }
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path)(e)),
    }
}

/// Links `own` to `target`; `Ok(false)` when `target` exists.
fn link_new(own: &Path, target: &Path) -> Result<bool, std::io::Error> {
    match std::fs::hard_link(own, target) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        // A filesystem without hard links: an exclusive create, filled
        // before anyone can judge it (a reader that finds it empty or
        // partial takes it for unreadable, never for its holder's).
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EPERM | libc::EOPNOTSUPP | libc::ENOSYS)
            ) =>
        {
            let bytes = std::fs::read(own)?;
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(target)
            {
                Ok(mut f) => {
                    f.write_all(&bytes)?;
                    f.sync_all()?;
                    Ok(true)
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

/// Claims the lock whose identity is `holder` for this run (`own`): the
/// first claim name that does not exist, passing over claims whose
/// claimant is provably gone (all of them with `Takeover::Always`).
fn claim(dir: &Path, own: &Path, holder: &str, takeover: Takeover) -> Result<Claimed, ConfigError> {
    for n in 0..64 {
        let path = dir.join(claim_name(holder, n));
        if link_new(own, &path).map_err(io_err(&path))? {
            return Ok(Claimed::Mine(path));
        }
        let bytes = read_lock(&path)?;
        if bytes.is_some() && bytes == std::fs::read(own).ok() {
            // This run's own claim, whose link reply was lost (NFS).
            return Ok(Claimed::Mine(path));
        }
        let claimant = bytes.and_then(|b| holder_of(&b));
        let gone = takeover == Takeover::Always || claimant.as_ref().is_none_or(LockInfo::is_stale);
        if !gone {
            return Ok(Claimed::Busy(claimant));
        }
    }
    Err(io_err(dir)(std::io::Error::other(
        "64 claims on one lock by runs that are gone: remove the lock.claim-* files of .zarrforge by hand",
    )))
}

/// Removes the lock's files whose writer is provably gone: runs' own files
/// and claims on locks that are no longer the lock. Never another live
/// run's file.
fn sweep(dir: &Path, current: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let own = name.strip_prefix(&format!("{LOCK_FILE}.new-"));
        let claim = name.strip_prefix(&format!("{LOCK_FILE}.claim-"));
        if own.is_none() && claim.is_none() {
            continue;
        }
        // A claim on the current lock stays: removing it would let a
        // second claimant in.
        if claim.is_some_and(|c| c.rsplit_once('-').is_some_and(|(h, _)| h == current)) {
            continue;
        }
        let writer = std::fs::read(e.path()).ok().and_then(|b| holder_of(&b));
        if writer.is_some_and(|w| w.is_stale()) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

impl Lock {
    /// Takes the lock of `store`.
    ///
    /// # Errors
    /// [`ConfigError::Locked`] when another run holds it (or a stale run,
    /// without takeover), or takes it over at the same moment.
    pub fn acquire(store: &Path, takeover: Takeover) -> Result<Self, ConfigError> {
        if storage::is_remote(store) {
            return Self::acquire_object(store, takeover);
        }
        let dir = store.join(MARKER_DIR);
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let info = LockInfo::current();
        let mine = serde_json::to_vec_pretty(&info).unwrap_or_default();
        let own = dir.join(own_name(info.token.as_deref().unwrap_or("none")));
        let write_own = || -> std::io::Result<()> {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&own)?;
            f.write_all(&mine)?;
            f.sync_all()
        };
        if let Err(e) = write_own() {
            // This run's own file (a full disk): nothing stays behind.
            let _ = std::fs::remove_file(&own);
            return Err(io_err(&own)(e));
        }
        crate::system::fault::point("lock.written");
        match Self::take_file(store, &dir, &own, &mine, takeover) {
            Ok(()) => {
                crate::system::fault::point("lock.published");
                sweep(&dir, &identity(&mine));
                Ok(Self {
                    mine,
                    release: Release::File { dir, own },
                })
            }
            Err(e) => {
                let _ = std::fs::remove_file(&own);
                Err(e)
            }
        }
    }

    /// The takeover protocol of the module documentation, in a directory.
    fn take_file(
        store: &Path,
        dir: &Path,
        own: &Path,
        mine: &[u8],
        takeover: Takeover,
    ) -> Result<(), ConfigError> {
        let path = dir.join(LOCK_FILE);
        // Since when a live run has been taking over the same lock.
        let mut busy_since: Option<Instant> = None;
        loop {
            if link_new(own, &path).map_err(io_err(&path))? {
                return confirm_file(store, &path, mine);
            }
            let Some(bytes) = read_lock(&path)? else {
                // Released since: try again.
                continue;
            };
            if bytes == mine {
                // A link whose reply was lost (NFS) and retried.
                return Ok(());
            }
            let holder = holder_of(&bytes);
            let still = || read_lock(&path).ok().flatten().as_deref() == Some(&bytes[..]);
            if may_take(store, holder.as_ref(), takeover, &still)? == Judgement::Changed {
                continue;
            }
            crate::system::fault::point("lock.stale");
            match claim(dir, own, &identity(&bytes), takeover)? {
                Claimed::Busy(claimant) => {
                    // A live run is taking this lock over right now: wait
                    // for it to finish, then judge its lock.
                    let since = *busy_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= STALE_GRACE {
                        return Err(ConfigError::Locked {
                            store: store.to_path_buf(),
                            holder: format!(
                                "{}, taking over the lock of a run that is gone",
                                describe(claimant.as_ref())
                            ),
                            hint: "wait for it to end, then run the same command again",
                        });
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                Claimed::Mine(claimed) => {
                    crate::system::fault::point("lock.claimed");
                    let replaced = replace_under_claim(store, dir, own, &path, &bytes, mine);
                    let _ = std::fs::remove_file(&claimed);
                    if replaced? {
                        return Ok(());
                    }
                    // The lock changed between the judgement and the claim
                    // (released, or taken by another run): judge it again.
                }
            }
        }
    }

    /// The lock of a store on object storage (module documentation).
    /// Where the server ignores create-only PUTs, the run goes on with a
    /// warning: two runs started at the same instant cannot then be told
    /// apart.
    fn acquire_object(store: &Path, takeover: Takeover) -> Result<Self, ConfigError> {
        let remote = |e: WriteError| ConfigError::Output {
            path: store.to_path_buf(),
            source: std::io::Error::other(e),
        };
        let s = storage::open(store).map_err(remote)?;
        let key = storage::join(MARKER_DIR, LOCK_FILE);
        let mine = serde_json::to_vec_pretty(&LockInfo::current()).unwrap_or_default();
        let held = |s: Arc<dyn Storage>, mine: Vec<u8>| {
            crate::system::fault::point("lock.published");
            Self {
                mine,
                release: Release::Object(s, key.clone()),
            }
        };
        // Each turn ends with the lock taken, a refusal, or a lock that
        // changed hands since it was read.
        for _ in 0..100 {
            if s.put_new(&key, &mine).map_err(remote)? {
                let back = s.get(&key).map_err(remote)?;
                if back.as_deref() == Some(&mine[..]) {
                    // The same bytes again: a server that honours the
                    // condition refuses; one that does not rewrites them.
                    if s.put_new(&key, &mine).map_err(remote)? {
                        crate::say!(
                            "zarrforge: warning: {}: the object store ignores conditional writes (If-None-Match: *); the lock is checked by reading it, which cannot exclude two runs started at the same instant",
                            store.display()
                        );
                    }
                    return Ok(held(s, mine));
                }
                // Another run won a race the server did not arbitrate.
                return Err(beaten(store, back.as_deref()));
            }
            let Some((bytes, etag)) = s.get_tagged(&key).map_err(remote)? else {
                // Released since: try again.
                continue;
            };
            if bytes == mine {
                return Ok(held(s, mine));
            }
            let holder = holder_of(&bytes);
            let still = || {
                s.get_tagged(&key).ok().flatten().is_some_and(|(b, t)| {
                    if etag.is_some() {
                        t == etag
                    } else {
                        b == bytes
                    }
                })
            };
            if may_take(store, holder.as_ref(), takeover, &still)? == Judgement::Changed {
                continue;
            }
            crate::system::fault::point("lock.stale");
            let Some(etag) = etag else {
                return Err(remote(WriteError::Remote {
                    url: s.describe(&key),
                    what: "take over the lock",
                    source: "the object store gives no ETag: a stale lock cannot be replaced safely; remove it by hand once its holder is surely gone".into(),
                }));
            };
            if s.put_replace(&key, &mine, &etag).map_err(remote)? {
                crate::system::fault::point("lock.replaced");
                let back = s.get(&key).map_err(remote)?;
                if back.as_deref() == Some(&mine[..]) {
                    return Ok(held(s, mine));
                }
                return Err(beaten(store, back.as_deref()));
            }
            // The lock changed since it was read (412): judge it again.
        }
        let now = s.get(&key).map_err(remote)?;
        Err(ConfigError::Locked {
            store: store.to_path_buf(),
            holder: describe(now.as_deref().and_then(holder_of).as_ref()),
            hint: "the lock keeps changing hands: wait for the other runs to end, then run the same command again",
        })
    }

    /// Checks that this run still holds the lock (before its commit).
    ///
    /// # Errors
    /// [`ConfigError::Locked`] naming the run that holds it now (only a
    /// `--break-lock` of another run can take a live run's lock).
    pub fn confirm(&self, store: &Path) -> Result<(), ConfigError> {
        let now = match &self.release {
            Release::File { dir, .. } => read_lock(&dir.join(LOCK_FILE))?,
            Release::Object(s, key) => s.get(key).map_err(|e| ConfigError::Output {
                path: store.to_path_buf(),
                source: std::io::Error::other(e),
            })?,
        };
        if now.as_deref() == Some(&self.mine[..]) {
            return Ok(());
        }
        Err(lost(store, now.as_deref()))
    }
}

/// The error of a run that published its lock but reads back another's:
/// a run that won a race the storage did not arbitrate.
fn beaten(store: &Path, back: Option<&[u8]>) -> ConfigError {
    match back.and_then(holder_of) {
        Some(h) => held_by(store, &h),
        None => ConfigError::Locked {
            store: store.to_path_buf(),
            holder: "another run that took the lock at the same moment".into(),
            hint: "wait for it to end, or run the same command again",
        },
    }
}

/// The error of a run whose lock is no longer its own.
fn lost(store: &Path, now: Option<&[u8]>) -> ConfigError {
    ConfigError::Locked {
        store: store.to_path_buf(),
        holder: now.map_or_else(
            || "nobody: this run's lock was removed".into(),
            |b| describe(holder_of(b).as_ref()),
        ),
        hint: "this run's lock was taken (--break-lock) and it stopped before committing; once that run ends, run the same command with --resume",
    }
}

/// Under the claim on the lock judged stale (`judged`), only this run may
/// change the lock: replaces it when it still holds those bytes (`true`),
/// or leaves it (`false`: it changed since).
fn replace_under_claim(
    store: &Path,
    dir: &Path,
    own: &Path,
    path: &Path,
    judged: &[u8],
    mine: &[u8],
) -> Result<bool, ConfigError> {
    if read_lock(path)?.as_deref() != Some(judged) {
        return Ok(false);
    }
    replace(dir, own, path)?;
    crate::system::fault::point("lock.replaced");
    confirm_file(store, path, mine)?;
    Ok(true)
}

/// Renames a link of `own` over the lock `path`: the lock is replaced in one
/// step and never absent.
fn replace(dir: &Path, own: &Path, path: &Path) -> Result<(), ConfigError> {
    let name = own
        .file_name()
        .map(|n| format!("{}.swap", n.to_string_lossy()))
        .unwrap_or_default();
    let swap = dir.join(name);
    let _ = std::fs::remove_file(&swap);
    std::fs::hard_link(own, &swap)
        .or_else(|_| std::fs::copy(own, &swap).map(|_| ()))
        .map_err(io_err(&swap))?;
    let r = std::fs::rename(&swap, path).map_err(io_err(path));
    if r.is_err() {
        let _ = std::fs::remove_file(&swap);
    }
    r
}

/// Reads the lock back after publishing it: this run's bytes, or refused.
fn confirm_file(store: &Path, path: &Path, mine: &[u8]) -> Result<(), ConfigError> {
    let now = read_lock(path)?;
    if now.as_deref() == Some(mine) {
        return Ok(());
    }
    Err(match now.as_deref().and_then(holder_of) {
        Some(h) => held_by(store, &h),
        None => lost(store, now.as_deref()),
    })
}

impl Drop for Lock {
    fn drop(&mut self) {
        crate::system::fault::point("lock.released");
        match &self.release {
            Release::File { dir, own } => {
                let path = dir.join(LOCK_FILE);
                // Claim this run's own lock, so that no takeover can come
                // between the check and the unlink.
                let id = identity(&self.mine);
                let claimed = dir.join(claim_name(&id, 0));
                if link_new(own, &claimed).unwrap_or(false) {
                    if read_lock(&path).ok().flatten().as_deref() == Some(&self.mine[..]) {
                        let _ = std::fs::remove_file(&path);
                    }
                    let _ = std::fs::remove_file(&claimed);
                }
                let _ = std::fs::remove_file(own);
            }
            Release::Object(s, key) => {
                if let Ok(Some(bytes)) = s.get(key) {
                    if bytes == self.mine {
                        let _ = s.delete(std::slice::from_ref(key));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reused_pid_is_not_the_holder() {
        let me = LockInfo::current();
        assert!(me.start_ticks.is_some());
        // This very process: alive.
        assert!(!me.is_stale());
        // Our PID with another start time (a PID namespace gave a dead
        // holder's PID to this process): stale.
        let reused = LockInfo {
            start_ticks: me.start_ticks.map(|t| t + 1),
            ..me.clone()
        };
        assert!(reused.is_stale());
        // PID 1 with its own start time is alive; with another, stale.
        if let Some(t1) = start_ticks(1) {
            let init = LockInfo {
                pid: 1,
                start_ticks: Some(t1),
                ..me.clone()
            };
            assert!(!init.is_stale());
            let other = LockInfo {
                start_ticks: Some(t1 + 12345),
                ..init
            };
            assert!(other.is_stale());
        }
        // The same Slurm job before a requeue: stale; the same run of it on
        // another host: cannot be told, live.
        if me.job.is_some() {
            let before = LockInfo {
                restart: Some(me.restart.unwrap_or(0)),
                host: "elsewhere".into(),
                ..me.clone()
            };
            assert!(!before.is_stale());
        }
        let other_host = LockInfo {
            host: "n042-elsewhere".into(),
            job: None,
            ..me.clone()
        };
        assert!(!other_host.is_stale());
        // Recorded before the last boot of this host: stale.
        let rebooted = LockInfo {
            boot_id: Some("another-boot".into()),
            ..me
        };
        assert!(rebooted.is_stale());
    }

    #[test]
    fn a_link_or_a_fifo_in_place_of_the_lock_is_refused_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let md = dir.path().join(MARKER_DIR);
        std::fs::create_dir_all(&md).unwrap();
        std::os::unix::fs::symlink(dir.path().join("nowhere"), md.join(LOCK_FILE)).unwrap();
        let e = Lock::acquire(dir.path(), Takeover::Stale)
            .unwrap_err()
            .to_string();
        assert!(e.contains("symbolic link"), "{e}");
        std::fs::remove_file(md.join(LOCK_FILE)).unwrap();
        std::fs::write(dir.path().join("target"), b"{}").unwrap();
        std::os::unix::fs::symlink(dir.path().join("target"), md.join(LOCK_FILE)).unwrap();
        let e = Lock::acquire(dir.path(), Takeover::Always)
            .unwrap_err()
            .to_string();
        assert!(e.contains("symbolic link"), "{e}");
        assert_eq!(std::fs::read(dir.path().join("target")).unwrap(), b"{}");
        // A FIFO: refused, not read (a read would wait forever).
        std::fs::remove_file(md.join(LOCK_FILE)).unwrap();
        let fifo = std::ffi::CString::new(md.join(LOCK_FILE).to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        let e = Lock::acquire(dir.path(), Takeover::Stale)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a regular file"), "{e}");
    }

    #[test]
    fn a_zombie_holder_is_gone() {
        // An exited child not reaped yet: a zombie, never alive again.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let t = Instant::now();
        while process_state(pid) != Some('Z') && t.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(process_state(pid), Some('Z'));
        assert!(!pid_alive(pid));
        assert!(pid_alive(std::process::id()));
        child.wait().unwrap();
    }

    fn dead_holder() -> LockInfo {
        LockInfo {
            pid: u32::MAX - 1,
            ..LockInfo::current()
        }
    }

    fn names(store: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(store.join(MARKER_DIR))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn locks_exclude_and_break() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path();
        let held = Lock::acquire(store, Takeover::Never).unwrap();
        let e = Lock::acquire(store, Takeover::Stale)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("is locked") && e.contains(&crate::system::environment::hostname()),
            "{e}"
        );
        let broken = Lock::acquire(store, Takeover::Always).unwrap();
        // The broken holder finds out before its commit, and its release
        // leaves the new holder's lock alone.
        assert!(held.confirm(store).is_err());
        drop(held);
        assert!(broken.confirm(store).is_ok());
        drop(broken);
        assert!(names(store).is_empty(), "{:?}", names(store));
        // A lock of a process that is gone is stale.
        std::fs::write(
            store.join(MARKER_DIR).join(LOCK_FILE),
            serde_json::to_vec(&dead_holder()).unwrap(),
        )
        .unwrap();
        let e = Lock::acquire(store, Takeover::Never)
            .unwrap_err()
            .to_string();
        assert!(e.contains("run the same command again"), "{e}");
        let l = Lock::acquire(store, Takeover::Stale).unwrap();
        assert_eq!(names(store).len(), 2, "{:?}", names(store));
        drop(l);
        assert!(names(store).is_empty(), "{:?}", names(store));
    }

    #[test]
    fn a_live_claim_on_a_stale_lock_is_waited_for_and_a_dead_one_passed_over() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path();
        let md = store.join(MARKER_DIR);
        std::fs::create_dir_all(&md).unwrap();
        let stale = serde_json::to_vec(&dead_holder()).unwrap();
        std::fs::write(md.join(LOCK_FILE), &stale).unwrap();
        let id = identity(&stale);
        // A claim by a dead run: passed over.
        std::fs::write(
            md.join(claim_name(&id, 0)),
            serde_json::to_vec(&dead_holder()).unwrap(),
        )
        .unwrap();
        let l = Lock::acquire(store, Takeover::Stale).unwrap();
        assert!(l.confirm(store).is_ok());
        drop(l);
        // The dead claim on a lock that is gone is swept by the next run.
        std::fs::write(md.join(LOCK_FILE), &stale).unwrap();
        // A claim by a live run (this process): the run waits for it, then
        // refuses naming it; the stale lock is left as it was.
        std::fs::write(
            md.join(claim_name(&id, 0)),
            serde_json::to_vec(&LockInfo::current()).unwrap(),
        )
        .unwrap();
        let t = Instant::now();
        let e = Lock::acquire(store, Takeover::Stale)
            .unwrap_err()
            .to_string();
        assert!(t.elapsed() >= STALE_GRACE, "{e}");
        assert!(e.contains("taking over the lock"), "{e}");
        assert_eq!(std::fs::read(md.join(LOCK_FILE)).unwrap(), stale);
        // Once that claimant's claim is gone (it finished), the lock is taken.
        std::fs::remove_file(md.join(claim_name(&id, 0))).unwrap();
        let l = Lock::acquire(store, Takeover::Stale).unwrap();
        drop(l);
        assert!(names(store).is_empty(), "{:?}", names(store));
    }

    #[test]
    fn a_lock_released_while_judged_is_taken_not_an_error() {
        // The holder ends while this run judges its lock: the claim finds
        // no lock, and the run publishes its own.
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().to_path_buf();
        let first = Lock::acquire(&store, Takeover::Never).unwrap();
        let s2 = store.clone();
        let second = std::thread::spawn(move || Lock::acquire(&s2, Takeover::Stale).map(drop));
        std::thread::sleep(Duration::from_millis(300));
        drop(first);
        // Same process: the holder looks alive throughout; the waiting run
        // sees its lock go and takes the store.
        second.join().unwrap().unwrap();
        assert!(names(&store).is_empty(), "{:?}", names(&store));
    }

    #[test]
    fn sweeping_keeps_live_files_and_claims_on_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let md = dir.path().join(MARKER_DIR);
        std::fs::create_dir_all(&md).unwrap();
        let dead = serde_json::to_vec(&dead_holder()).unwrap();
        let live = serde_json::to_vec(&LockInfo::current()).unwrap();
        std::fs::write(md.join(own_name("dead")), &dead).unwrap();
        std::fs::write(md.join(own_name("live")), &live).unwrap();
        std::fs::write(md.join(claim_name("old", 0)), &dead).unwrap();
        std::fs::write(md.join(claim_name("cur", 0)), &dead).unwrap();
        std::fs::write(md.join(claim_name("old", 1)), &live).unwrap();
        sweep(&md, "cur");
        let mut left: Vec<String> = std::fs::read_dir(&md)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [claim_name("cur", 0), claim_name("old", 1), own_name("live")]
        );
        assert!(is_lock_name(&claim_name("x", 3)) && is_lock_name(LOCK_FILE));
        assert!(!is_lock_name("lock.tmp12") && !is_lock_name(".lock.tmp12"));
    }
}
