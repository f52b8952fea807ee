//! Chunk writes of directory stores, off the encoder threads: a queue
//! bounded in bytes, served by [`THREADS`] writer threads that write each
//! chunk through a temporary file and a rename, large ones with `O_DIRECT`
//! ([`super::direct`]). An encoder thread hands its chunk over and goes on
//! encoding; it waits only when the queue is full.
//!
//! [`Writer::drain`] waits for every queued chunk; the store's `sync` calls
//! it before its `syncfs`, so a unit is journaled (and a store committed)
//! only after its chunk was written and made durable, exactly as when the
//! encoder thread wrote it. A failed write is kept: every later call
//! reports it, so no unit queued before it can be journaled.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};

use crate::store::error::WriteError;

/// Writer threads per process: two, so that one chunk's metadata work
/// (create, rename) overlaps another's transfer.
pub const THREADS: usize = 2;

/// One chunk to write.
struct Job {
    path: PathBuf,
    bytes: Vec<u8>,
}

/// A failed write, kept to be reported by every later call.
#[derive(Debug, Clone)]
struct Failure {
    path: PathBuf,
    what: &'static str,
    os: Option<i32>,
    kind: std::io::ErrorKind,
    message: String,
}

impl Failure {
    fn of(path: &std::path::Path, e: &WriteError) -> Self {
        match e {
            WriteError::Io { path, what, source }
            | WriteError::NoSpace {
                path, what, source, ..
            } => Self {
                path: path.clone(),
                what,
                os: source.raw_os_error(),
                kind: source.kind(),
                message: source.to_string(),
            },
            other => Self {
                path: path.to_path_buf(),
                what: "write",
                os: None,
                kind: std::io::ErrorKind::Other,
                message: other.to_string(),
            },
        }
    }

    fn error(&self) -> WriteError {
        let source = self.os.map_or_else(
            || std::io::Error::new(self.kind, self.message.clone()),
            std::io::Error::from_raw_os_error,
        );
        WriteError::io(&self.path, self.what, source)
    }
}

#[derive(Default)]
struct State {
    queue: VecDeque<Job>,
    /// Bytes queued or being written.
    bytes: u64,
    /// Chunks queued or being written.
    busy: usize,
    /// Writer threads started.
    started: usize,
    /// Bytes the queue may hold (one larger chunk is let in when it is
    /// empty).
    limit: u64,
    failure: Option<Failure>,
}

/// The process's chunk writer.
pub struct Writer {
    state: Mutex<State>,
    changed: Condvar,
}

/// The writer of this process (every directory store shares it).
pub fn global() -> &'static Writer {
    static W: OnceLock<Writer> = OnceLock::new();
    W.get_or_init(|| Writer {
        state: Mutex::new(State {
            limit: super::INFLIGHT_DEFAULT_BYTES,
            ..State::default()
        }),
        changed: Condvar::new(),
    })
}

impl Writer {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wait<'a>(&self, g: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.changed.wait(g).unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts a run's writes: waits for an earlier run's chunks, forgets
    /// its failure (that run has ended with it) and bounds the bytes queued.
    pub fn begin(&self, limit: u64) {
        let mut g = self.lock();
        while g.busy > 0 {
            g = self.wait(g);
        }
        g.failure = None;
        g.limit = limit.max(1);
    }

    /// Queues `bytes` for `path`; waits while the queue is full.
    ///
    /// # Errors
    /// An earlier write's failure.
    pub fn put(&'static self, path: PathBuf, bytes: Vec<u8>) -> Result<(), WriteError> {
        let n = bytes.len() as u64;
        let mut g = self.lock();
        loop {
            if let Some(f) = &g.failure {
                return Err(f.error());
            }
            if g.busy == 0 || g.bytes.saturating_add(n) <= g.limit {
                break;
            }
            g = self.wait(g);
        }
        if g.started < THREADS {
            let spawned = std::thread::Builder::new()
                .name(format!("zarrforge-write-{}", g.started))
                .spawn(move || self.serve());
            if spawned.is_err() && g.started == 0 {
                // No thread to hand it to: write it here.
                drop(g);
                return super::atomic::write_chunk(&path, &bytes);
            }
            if spawned.is_ok() {
                g.started += 1;
            }
        }
        g.queue.push_back(Job { path, bytes });
        g.bytes += n;
        g.busy += 1;
        drop(g);
        self.changed.notify_all();
        Ok(())
    }

    /// Waits until every queued chunk is written.
    ///
    /// # Errors
    /// The first failed write (also on every later call).
    pub fn drain(&self) -> Result<(), WriteError> {
        let mut g = self.lock();
        while g.busy > 0 && g.failure.is_none() {
            g = self.wait(g);
        }
        match &g.failure {
            Some(f) => Err(f.error()),
            None => Ok(()),
        }
    }

    /// A writer thread: writes queued chunks until the process ends.
    fn serve(&self) {
        loop {
            let job = {
                let mut g = self.lock();
                loop {
                    if let Some(j) = g.queue.pop_front() {
                        break j;
                    }
                    g = self.wait(g);
                }
            };
            // A panic must not leave the chunk counted as busy forever (a
            // sync would wait for it): it fails the run like an I/O error.
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                super::atomic::write_chunk(&job.path, &job.bytes)
            }))
            .unwrap_or_else(|_| {
                Err(WriteError::io(
                    &job.path,
                    "write",
                    std::io::Error::other("the writer thread panicked"),
                ))
            });
            let mut g = self.lock();
            g.bytes -= job.bytes.len() as u64;
            g.busy -= 1;
            if let Err(e) = r {
                if g.failure.is_none() {
                    g.failure = Some(Failure::of(&job.path, &e));
                }
            }
            drop(g);
            drop(job);
            self.changed.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_is_reported_by_every_later_call() {
        let f = Failure::of(
            std::path::Path::new("/s/a/0"),
            &WriteError::io(
                "/s/a/0",
                "write",
                std::io::Error::from_raw_os_error(libc::ENOSPC),
            ),
        );
        for _ in 0..2 {
            let e = f.error();
            assert!(matches!(e, WriteError::NoSpace { .. }), "{e}");
            assert!(e.to_string().starts_with("/s/a/0: write: disk full"), "{e}");
        }
    }
}
