//! Kill points for the store-safety tests.
//!
//! Every step that changes a store on disk calls [`point`] with its name:
//! each temporary write and rename, each unlink of `--overwrite`, each lock
//! step, each journal flush and each document of the commit. In the shipped
//! binary [`point`] is empty. Built with the `fault-injection` feature (only
//! the test suite does), two environment variables act on it:
//!
//! - `ZARRFORGE_FAULT_TRACE=FILE` appends `RANK NAME N PID` to `FILE` for every
//!   point reached (`N`: how many times this rank reached `NAME`), so a test
//!   can list every step of an operation;
//! - `ZARRFORGE_FAULT=NAME@N[:RANK][:ACTION]` stops the rank `RANK` (default
//!   0) the `N`-th time it reaches `NAME`: `kill` (default) sends it
//!   SIGKILL, `stop` SIGSTOP (a paused process, for races). Before that it
//!   appends the same line to `ZARRFORGE_FAULT_HIT` when set.
//!
//! [`pace`] slows a rank down, for the tests of ranks that finish apart:
//! `ZARRFORGE_PACE=NAME:RANK:MS` makes rank `RANK` sleep `MS` milliseconds
//! each time it reaches `NAME`. Paced steps are not kill points and are not
//! traced.

/// Marks the named step; see the module documentation.
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn point(_name: &str) {}

/// Marks the named step; see the module documentation.
#[cfg(feature = "fault-injection")]
pub fn point(name: &str) {
    imp::point(name);
}

/// Marks a step that a test may slow down; see the module documentation.
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn pace(_name: &str) {}

/// Marks a step that a test may slow down; see the module documentation.
#[cfg(feature = "fault-injection")]
pub fn pace(name: &str) {
    imp::pace(name);
}

#[cfg(feature = "fault-injection")]
mod imp {
    use std::collections::HashMap;
    use std::io::Write;
    use std::sync::{Mutex, OnceLock};

    struct Fault {
        name: String,
        nth: u64,
        rank: u32,
        stop: bool,
    }

    fn parse(spec: &str) -> Option<Fault> {
        let mut parts = spec.split(':');
        let (name, nth) = parts.next()?.split_once('@')?;
        let rank = parts.next().map_or(Some(0), |r| r.parse().ok())?;
        let stop = match parts.next() {
            None | Some("kill") => false,
            Some("stop") => true,
            Some(_) => return None,
        };
        Some(Fault {
            name: name.to_string(),
            nth: nth.parse().ok()?,
            rank,
            stop,
        })
    }

    fn rank() -> u32 {
        [
            "OMPI_COMM_WORLD_RANK",
            "PMIX_RANK",
            "PMI_RANK",
            "SLURM_PROCID",
        ]
        .iter()
        .find_map(|v| std::env::var(v).ok()?.parse().ok())
        .unwrap_or(0)
    }

    fn log(var: &str, line: &str) {
        if let Some(path) = std::env::var_os(var) {
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                let _ = f.write_all(line.as_bytes());
                let _ = f.sync_data();
            }
        }
    }

    static COUNTS: OnceLock<Mutex<HashMap<String, u64>>> = OnceLock::new();
    static FAULT: OnceLock<Option<Fault>> = OnceLock::new();

    pub(super) fn point(name: &str) {
        let n = {
            let mut counts = COUNTS
                .get_or_init(|| Mutex::new(HashMap::new()))
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let c = counts.entry(name.to_string()).or_insert(0);
            *c += 1;
            *c
        };
        let me = rank();
        let line = format!("{me} {name} {n} {}\n", std::process::id());
        log("ZARRFORGE_FAULT_TRACE", &line);
        let fault = FAULT.get_or_init(|| {
            std::env::var("ZARRFORGE_FAULT")
                .ok()
                .and_then(|s| parse(&s))
        });
        if let Some(f) = fault {
            if f.name == name && f.nth == n && f.rank == me {
                log("ZARRFORGE_FAULT_HIT", &line);
                let sig = if f.stop { libc::SIGSTOP } else { libc::SIGKILL };
                // SAFETY: signals this very process.
                unsafe { libc::kill(libc::getpid(), sig) };
            }
        }
    }

    static PACE: OnceLock<Option<(String, u32, u64)>> = OnceLock::new();

    pub(super) fn pace(name: &str) {
        let pace = PACE.get_or_init(|| {
            let spec = std::env::var("ZARRFORGE_PACE").ok()?;
            let mut parts = spec.split(':');
            let step = parts.next()?.to_string();
            let rank = parts.next()?.parse().ok()?;
            let ms = parts.next()?.parse().ok()?;
            Some((step, rank, ms))
        });
        if let Some((step, who, ms)) = pace {
            if step == name && *who == rank() {
                std::thread::sleep(std::time::Duration::from_millis(*ms));
            }
        }
    }
}
