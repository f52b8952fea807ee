//! What a run (`convert`, `verify`) shows while it runs: the job's
//! progress over all ranks on rank 0's stderr, the `--events` stream, and
//! the wall time of each phase.
//!
//! Every rank counts the units it has written. A rank other than 0 sends
//! its counters to rank 0 at most every few seconds (a few words, sent
//! eagerly: it never waits for rank 0). Rank 0 takes whatever has arrived
//! whenever it passes a unit, and while it waits for the other ranks at the
//! end of a phase ([`MpiCtx::wait_polling`]), so that a batch log shows the
//! job's progress even when rank 0 has finished its own share.

use std::time::{Duration, Instant};

use crate::cli::args::ProgressArgs;
use crate::error::Error;
use crate::mpi::ctx::{MpiCtx, PROGRESS_WORDS};
use crate::report::events::{Count, Event, Events, Phase};
use crate::report::progress::{Counters, Display, JobProgress};
use crate::report::summary::PhaseSeconds;

/// Progress, events and phase timings of one rank.
pub struct Monitor {
    rank: usize,
    ranks: usize,
    start: Instant,
    events: Events,
    display: Display,
    job: JobProgress,
    mine: Counters,
    /// How often a rank sends its counters (and rank 0 writes a progress
    /// event).
    send_every: Duration,
    last_send: Instant,
    every: Duration,
    last_event: Instant,
    current: Option<(Phase, Instant)>,
    phases: PhaseSeconds,
}

impl Monitor {
    /// The monitor of this rank: progress shown by rank 0 when `progress`
    /// (a bar on a terminal, else a line every `every`), events written by
    /// rank 0 into `events`.
    pub fn new(ctx: &MpiCtx, progress: bool, every: Duration, events: Events) -> Self {
        let root = ctx.is_root();
        let now = Instant::now();
        let every = every.max(Duration::from_millis(100));
        Self {
            rank: usize::try_from(ctx.rank()).unwrap_or(0),
            ranks: ctx.size(),
            start: now,
            events: if root { events } else { Events::none() },
            display: Display::new(progress && root, every),
            job: JobProgress::new(ctx.size()),
            mine: Counters::default(),
            send_every: (every / 3).clamp(Duration::from_secs(1), Duration::from_secs(10)),
            last_send: now,
            every,
            last_event: now,
            current: None,
            phases: PhaseSeconds::default(),
        }
    }

    /// The monitor of a command run with `args` (progress shown unless
    /// `--quiet`), its events file opened on rank 0. Agreed: an events file
    /// that cannot be created fails every rank before anything is read.
    ///
    /// # Errors
    /// [`Error::Write`] when the events file cannot be created.
    pub fn for_command(ctx: &MpiCtx, args: &ProgressArgs) -> Result<Self, Error> {
        let events = if ctx.is_root() {
            Events::open(args.events.as_deref()).map_err(|e| {
                Error::Write(crate::store::error::WriteError::io(
                    &e.path,
                    "create the events file",
                    e.source,
                ))
            })
        } else {
            Ok(Events::none())
        };
        let events = ctx.agree(events)?;
        let interval = Duration::from_secs_f64(args.progress_interval.max(0.1));
        Ok(Self::new(ctx, !args.quiet, interval, events))
    }

    /// Rank 0's account of a failed run in the events: one `rank_failed`
    /// per failing rank, then `failed`.
    pub fn failed(&mut self, e: &Error) {
        if let Error::Ranks(list) = e {
            for f in list {
                self.event(&Event::RankFailed {
                    rank: f.rank,
                    message: f.failure.message.clone(),
                    resumable: f.failure.resumable,
                });
            }
        }
        let status = e.exit_status();
        self.event(&Event::Failed {
            error: crate::report::console::message(e),
            exit_status: status as u8,
            status: status.name().into(),
            resumable: e.is_resumable(),
        });
    }

    /// Whether `phase` is the current one.
    pub fn is_in(&self, phase: Phase) -> bool {
        self.current.is_some_and(|(p, _)| p == phase)
    }

    /// A monitor that shows and writes nothing (`bench`, tests).
    pub fn silent(ctx: &MpiCtx) -> Self {
        Self::new(ctx, false, Duration::from_secs(30), Events::none())
    }

    /// Seconds since the run began.
    fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Writes an event (rank 0; elsewhere nothing).
    pub fn event(&mut self, e: &Event) {
        self.events.emit(e);
    }

    /// A warning for the events stream (the caller prints it).
    pub fn warning(&mut self, message: &str) {
        self.event(&Event::Warning {
            message: message.to_string(),
        });
    }

    /// A phase begins on this rank: the previous one's time is recorded;
    /// rank 0 announces it. Nothing happens when it is the current one.
    pub fn phase(&mut self, phase: Phase) {
        if self.is_in(phase) {
            return;
        }
        let now = Instant::now();
        self.close_phase(now);
        self.current = Some((phase, now));
        let counted = self.job.counting();
        self.job.set_phase(phase, now);
        if self.job.counting() != counted {
            // The scan's files, then the units: each counted from zero.
            self.mine = Counters::default();
        }
        let elapsed = self.elapsed();
        self.display.phase(phase, elapsed);
        self.event(&Event::Phase { phase });
    }

    /// Adds the time of the current phase to its total.
    fn close_phase(&mut self, now: Instant) {
        if let Some((p, t)) = self.current.take() {
            let s = now.saturating_duration_since(t).as_secs_f64();
            self.phases.add(p, s);
            if Count::of(p).is_some() {
                // Where the job ended up: 100% once every rank is done.
                self.progress_event(now);
            }
        }
    }

    /// The units (and their uncompressed bytes) this run writes, over all
    /// ranks, or the files it scans (what rank 0 shows progress against).
    pub fn set_totals(&mut self, units: u64, bytes: u64) {
        self.job.set_totals(units, bytes);
    }

    /// This rank wrote `units` more units of `bytes` uncompressed bytes
    /// (or, in the scan, scanned `units` more files).
    pub fn add(&mut self, ctx: &MpiCtx, units: u64, bytes: u64) {
        self.mine.units += units;
        self.mine.bytes += bytes;
        self.tick(ctx);
    }

    /// Sends this rank's counters when due (other ranks); takes what has
    /// arrived and shows it when due (rank 0). Cheap: call it often.
    pub fn tick(&mut self, ctx: &MpiCtx) {
        let now = Instant::now();
        if self.rank != 0 {
            if now.saturating_duration_since(self.last_send) >= self.send_every {
                self.send(ctx, now);
            }
            return;
        }
        self.job.update(0, self.mine);
        self.receive(ctx);
        if self.display.due(now) || matches!(self.display, Display::Bar(_)) {
            let s = self.job.snapshot(now);
            let elapsed = self.elapsed();
            self.display.show(&s, elapsed, self.ranks, now);
        }
        if self.events.enabled() && now.saturating_duration_since(self.last_event) >= self.every {
            self.progress_event(now);
        }
    }

    fn send(&mut self, ctx: &MpiCtx, now: Instant) {
        let phase = self.current.map_or(0, |(p, _)| p.index() as u64);
        let words: [u64; PROGRESS_WORDS] = [self.mine.units, self.mine.bytes, phase, 0];
        ctx.send_progress(&words);
        self.last_send = now;
    }

    fn receive(&mut self, ctx: &MpiCtx) {
        let counting = self.job.counting();
        for (rank, w) in ctx.drain_progress() {
            // A late message of the scan counts files, not units.
            let phase = usize::try_from(w[2]).ok().and_then(|i| Phase::ALL.get(i));
            if phase.and_then(|p| Count::of(*p)) != counting {
                continue;
            }
            self.job.update(
                usize::try_from(rank).unwrap_or(usize::MAX),
                Counters {
                    units: w[0],
                    bytes: w[1],
                },
            );
        }
    }

    fn progress_event(&mut self, now: Instant) {
        if self.rank == 0 && self.events.enabled() {
            self.job.update(0, self.mine);
            let s = self.job.snapshot(now);
            self.events.emit(&Event::Progress(s));
            self.last_event = now;
        }
    }

    /// Waits for every rank at the end of a phase (collective; call it on
    /// every rank, whatever happened on this one): a rank sends its final
    /// counters first; rank 0 keeps showing progress while it waits.
    pub fn wait_for_ranks(&mut self, ctx: &MpiCtx) {
        if self.rank != 0 {
            self.send(ctx, Instant::now());
            ctx.wait_polling(|| {});
            return;
        }
        ctx.wait_polling(|| self.tick(ctx));
        // Every rank's final counters were sent before the barrier.
        self.receive(ctx);
    }

    /// The run is over on this rank: the last phase is timed, the bar
    /// removed.
    pub fn finish(&mut self) {
        self.close_phase(Instant::now());
        self.display.finish();
    }

    /// Wall seconds of each phase on this rank.
    pub fn phases(&self) -> PhaseSeconds {
        let mut p = self.phases.clone();
        if let Some((phase, t)) = self.current {
            p.add(phase, t.elapsed().as_secs_f64());
        }
        p
    }
}
