//! Per-rank counters and timings, and the progress of the whole job:
//! every rank's counters gathered on rank 0 ([`JobProgress`], pure) and
//! shown there ([`Display`]: a live bar on a terminal, a plain line every
//! interval in a batch log).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::report::events::{Count, Phase, Snapshot};

/// What one rank did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RankStats {
    /// Virtual references written (`convert --virtual`).
    #[serde(default)]
    pub references: u64,
    /// Units (chunks or shards) written.
    pub units: u64,
    /// Uncompressed bytes read from the source.
    pub bytes_read: u64,
    /// Encoded bytes written to the store.
    pub bytes_written: u64,
    /// Seconds in source reads (main thread).
    pub read_s: f64,
    /// Seconds encoding (summed over encoder threads).
    pub encode_s: f64,
    /// Seconds writing files (summed over encoder threads).
    pub write_s: f64,
    /// Seconds waiting for a free encoder slot.
    pub wait_s: f64,
    /// Whether the units are shards.
    pub sharded: bool,
    /// Units skipped because an interrupted run had finished them.
    pub units_resumed: u64,
    /// Units of other ranks' shares that this rank took over and wrote.
    #[serde(default)]
    pub units_taken: u64,
    /// Exchange rounds done.
    pub rounds: u64,
    /// Bytes sent to other ranks in the exchange.
    pub bytes_sent: u64,
    /// Bytes received from other ranks in the exchange.
    pub bytes_received: u64,
    /// Seconds packing, exchanging and placing pieces (main thread).
    pub exchange_s: f64,
}

impl RankStats {
    /// Adds the counters of a later phase of the same run.
    pub fn absorb(&mut self, o: &Self) {
        self.units += o.units;
        self.bytes_read += o.bytes_read;
        self.bytes_written += o.bytes_written;
        self.read_s += o.read_s;
        self.encode_s += o.encode_s;
        self.write_s += o.write_s;
        self.wait_s += o.wait_s;
        self.units_resumed += o.units_resumed;
        self.units_taken += o.units_taken;
        self.rounds += o.rounds;
        self.bytes_sent += o.bytes_sent;
        self.bytes_received += o.bytes_received;
        self.exchange_s += o.exchange_s;
    }
}

/// What one rank has written so far in this run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Units written.
    pub units: u64,
    /// Uncompressed bytes of those units.
    pub bytes: u64,
}

/// The job's progress from every rank's latest counters (rank 0). Pure:
/// time comes in as arguments.
#[derive(Debug, Clone)]
pub struct JobProgress {
    ranks: Vec<Option<Counters>>,
    units_total: u64,
    bytes_total: u64,
    phase: Option<Phase>,
    /// What is being counted, since when.
    count: Option<(Count, Instant)>,
}

impl JobProgress {
    /// A job of `ranks` ranks, nothing known yet.
    pub fn new(ranks: usize) -> Self {
        Self {
            ranks: vec![None; ranks.max(1)],
            units_total: 0,
            bytes_total: 0,
            phase: None,
            count: None,
        }
    }

    /// The units (and their uncompressed bytes) this run writes, or the
    /// files it scans (no bytes).
    pub fn set_totals(&mut self, units: u64, bytes: u64) {
        self.units_total = units;
        self.bytes_total = bytes;
    }

    /// A phase began at `now`. A phase that counts something new (the
    /// scan's files, then the units) starts its count from zero.
    pub fn set_phase(&mut self, phase: Phase, now: Instant) {
        self.phase = Some(phase);
        if let Some(c) = Count::of(phase) {
            if self.count.map(|(was, _)| was) != Some(c) {
                self.count = Some((c, now));
                self.ranks.iter_mut().for_each(|r| *r = None);
            }
        }
    }

    /// What the current count is of.
    pub fn counting(&self) -> Option<Count> {
        self.count.map(|(c, _)| c)
    }

    /// The current phase.
    pub fn phase(&self) -> Option<Phase> {
        self.phase
    }

    /// `rank`'s latest counters (they only grow; an older message that
    /// arrives late changes nothing).
    pub fn update(&mut self, rank: usize, c: Counters) {
        if let Some(slot) = self.ranks.get_mut(rank) {
            let old = slot.unwrap_or_default();
            *slot = Some(Counters {
                units: old.units.max(c.units),
                bytes: old.bytes.max(c.bytes),
            });
        }
    }

    /// Where the job is at `now`.
    pub fn snapshot(&self, now: Instant) -> Snapshot {
        let units_done: u64 = self.ranks.iter().flatten().map(|c| c.units).sum();
        let bytes_done: u64 = self.ranks.iter().flatten().map(|c| c.bytes).sum();
        let secs = self
            .count
            .map_or(0.0, |(_, t)| now.saturating_duration_since(t).as_secs_f64());
        #[allow(clippy::cast_precision_loss)]
        let (gb_per_s, eta_s) = if secs > 0.0 && bytes_done > 0 {
            let rate = bytes_done as f64 / secs;
            let left = self.bytes_total.saturating_sub(bytes_done) as f64;
            (rate / 1e9, Some((left / rate * 10.0).round() / 10.0))
        } else if secs > 0.0 && units_done > 0 {
            let rate = units_done as f64 / secs;
            let left = self.units_total.saturating_sub(units_done) as f64;
            (0.0, Some((left / rate * 10.0).round() / 10.0))
        } else {
            (0.0, None)
        };
        Snapshot {
            phase: self.phase,
            count: self.counting(),
            units_done,
            units_total: self.units_total,
            bytes_done,
            bytes_total: self.bytes_total,
            gb_per_s: (gb_per_s * 1000.0).round() / 1000.0,
            eta_s,
            ranks_reporting: self.ranks.iter().filter(|c| c.is_some()).count(),
        }
    }
}

impl Snapshot {
    /// One plain line for a batch log.
    pub fn line(&self, elapsed: Duration, ranks: usize) -> String {
        #[allow(clippy::cast_precision_loss)]
        let pct = if self.units_total == 0 {
            100.0
        } else {
            self.units_done as f64 * 100.0 / self.units_total as f64
        };
        let eta = self.eta_s.map_or_else(|| "?".to_string(), hms_f);
        let noun = self.count.map_or("units", Count::noun);
        if self.count == Some(Count::Files) {
            return format!(
                "zarrforge: {} {}: {}/{} files ({pct:.1}%), ETA {eta}, {}/{ranks} ranks reporting",
                hms(elapsed.as_secs()),
                self.phase.map_or("start", Phase::name),
                self.units_done,
                self.units_total,
                self.ranks_reporting,
            );
        }
        format!(
            "zarrforge: {} {}: {}/{} {noun} ({pct:.1}%), {:.2}/{:.2} GB, {:.3} GB/s, ETA {eta}, {}/{ranks} ranks reporting",
            hms(elapsed.as_secs()),
            self.phase.map_or("start", Phase::name),
            self.units_done,
            self.units_total,
            gb(self.bytes_done),
            gb(self.bytes_total),
            self.gb_per_s,
            self.ranks_reporting,
        )
    }
}

#[allow(clippy::cast_precision_loss)]
fn gb(b: u64) -> f64 {
    b as f64 / 1e9
}

/// `H:MM:SS`.
fn hms(secs: u64) -> String {
    format!("{}:{:02}:{:02}", secs / 3600, (secs / 60) % 60, secs % 60)
}

#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn hms_f(secs: f64) -> String {
    hms(secs.max(0.0).round() as u64)
}

/// How rank 0 shows progress.
pub enum Display {
    /// Nothing (`--quiet`, or not rank 0).
    Off,
    /// A live bar on a terminal.
    Bar(indicatif::ProgressBar),
    /// A plain line every `every` (stderr is a file or a pipe).
    Lines {
        /// The interval.
        every: Duration,
        /// When the last line was printed.
        last: Instant,
    },
}

impl Display {
    /// The display for rank 0's stderr: a bar when it is a terminal, else
    /// plain lines every `every`; `Off` when not `enabled`.
    pub fn new(enabled: bool, every: Duration) -> Self {
        if !enabled {
            Self::Off
        } else if std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "zarrforge {prefix:8} [{bar:30}] {pos}/{len} {msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            Self::Bar(bar)
        } else {
            Self::Lines {
                every,
                last: Instant::now(),
            }
        }
    }

    /// Whether a plain line is due at `now` (always false for a bar).
    pub fn due(&self, now: Instant) -> bool {
        match self {
            Self::Lines { every, last } => now.saturating_duration_since(*last) >= *every,
            _ => false,
        }
    }

    /// Shows `s`: updates the bar, or prints a line (and restarts the
    /// interval).
    pub fn show(&mut self, s: &Snapshot, elapsed: Duration, ranks: usize, now: Instant) {
        match self {
            Self::Off => {}
            Self::Bar(bar) => {
                bar.set_length(s.units_total);
                bar.set_position(s.units_done);
                bar.set_prefix(s.phase.map_or("start", Phase::name));
                let eta = s.eta_s.map_or_else(|| "?".to_string(), hms_f);
                let noun = s.count.map_or("units", Count::noun);
                bar.set_message(if s.count == Some(Count::Files) {
                    format!("{noun}, ETA {eta}")
                } else {
                    format!(
                        "{noun}, {:.2}/{:.2} GB, {:.3} GB/s, ETA {eta}",
                        gb(s.bytes_done),
                        gb(s.bytes_total),
                        s.gb_per_s
                    )
                });
            }
            Self::Lines { last, .. } => {
                crate::say!("{}", s.line(elapsed, ranks));
                *last = now;
            }
        }
    }

    /// A phase began: named on the bar, or one line in a batch log.
    pub fn phase(&mut self, phase: Phase, elapsed: Duration) {
        match self {
            Self::Off => {}
            Self::Bar(bar) => bar.set_prefix(phase.name()),
            Self::Lines { .. } => {
                crate::say!(
                    "zarrforge: {} phase {}",
                    hms(elapsed.as_secs()),
                    phase.name()
                );
            }
        }
    }

    /// Removes the bar (lines stay).
    pub fn finish(&mut self) {
        if let Self::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_job_sums_every_rank_and_keeps_the_latest_counters() {
        let t0 = Instant::now();
        let mut p = JobProgress::new(3);
        p.set_totals(100, 1_000_000_000);
        let s = p.snapshot(t0);
        assert_eq!((s.units_done, s.ranks_reporting), (0, 0));
        assert!(s.eta_s.is_none());
        p.set_phase(Phase::Write, t0);
        p.update(
            0,
            Counters {
                units: 10,
                bytes: 100_000_000,
            },
        );
        p.update(
            2,
            Counters {
                units: 15,
                bytes: 150_000_000,
            },
        );
        // A late, older message of rank 2 changes nothing.
        p.update(
            2,
            Counters {
                units: 5,
                bytes: 50_000_000,
            },
        );
        // A rank beyond the job is ignored.
        p.update(7, Counters { units: 5, bytes: 5 });
        let s = p.snapshot(t0 + Duration::from_secs(10));
        assert_eq!(s.units_done, 25);
        assert_eq!(s.bytes_done, 250_000_000);
        assert_eq!(s.ranks_reporting, 2);
        assert!((s.gb_per_s - 0.025).abs() < 1e-9);
        // 750 MB left at 25 MB/s.
        assert_eq!(s.eta_s, Some(30.0));
        let line = s.line(Duration::from_secs(75), 3);
        assert!(
            line.contains("0:01:15 write: 25/100 units (25.0%)"),
            "{line}"
        );
        assert!(line.contains("ETA 0:00:30, 2/3 ranks reporting"), "{line}");
    }

    #[test]
    fn the_rate_counts_from_the_first_phase_that_writes() {
        let t0 = Instant::now();
        let mut p = JobProgress::new(1);
        p.set_totals(4, 0);
        p.set_phase(Phase::Scan, t0);
        p.set_phase(Phase::Exchange, t0 + Duration::from_secs(100));
        p.set_phase(Phase::Write, t0 + Duration::from_secs(200));
        p.update(0, Counters { units: 2, bytes: 0 });
        let s = p.snapshot(t0 + Duration::from_secs(110));
        // No bytes: the ETA comes from units, 2 units in 10 s.
        assert_eq!(s.eta_s, Some(10.0));
    }

    #[test]
    fn the_scan_counts_files_then_the_write_counts_units_from_zero() {
        let t0 = Instant::now();
        let mut p = JobProgress::new(2);
        p.set_phase(Phase::Scan, t0);
        p.set_totals(40, 0);
        p.update(0, Counters { units: 6, bytes: 0 });
        p.update(1, Counters { units: 4, bytes: 0 });
        let s = p.snapshot(t0 + Duration::from_secs(5));
        assert_eq!((s.units_done, s.ranks_reporting), (10, 2));
        // 30 files left at 2 files/s.
        assert_eq!(s.eta_s, Some(15.0));
        let line = s.line(Duration::from_secs(5), 2);
        assert!(
            line.contains("0:00:05 scan: 10/40 files (25.0%), ETA 0:00:15, 2/2 ranks reporting"),
            "{line}"
        );
        assert!(!line.contains("GB"), "{line}");
        p.set_phase(Phase::Plan, t0 + Duration::from_secs(20));
        p.set_totals(1000, 1_000_000);
        p.set_phase(Phase::Write, t0 + Duration::from_secs(21));
        let s = p.snapshot(t0 + Duration::from_secs(21));
        assert_eq!((s.units_done, s.ranks_reporting, s.eta_s), (0, 0, None));
        p.update(
            1,
            Counters {
                units: 100,
                bytes: 100_000,
            },
        );
        let s = p.snapshot(t0 + Duration::from_secs(31));
        assert_eq!((s.units_done, s.units_total), (100, 1000));
        assert_eq!(s.eta_s, Some(90.0));
        assert!(s
            .line(Duration::from_secs(31), 2)
            .contains("100/1000 units"));
        // The exchange goes on counting the same units.
        p.set_phase(Phase::Exchange, t0 + Duration::from_secs(40));
        assert_eq!(p.snapshot(t0 + Duration::from_secs(40)).units_done, 100);
    }

    #[test]
    fn lines_are_due_once_per_interval() {
        let t0 = Instant::now();
        let mut d = Display::Lines {
            every: Duration::from_secs(30),
            last: t0,
        };
        assert!(!d.due(t0 + Duration::from_secs(29)));
        assert!(d.due(t0 + Duration::from_secs(30)));
        d.show(
            &Snapshot::default(),
            Duration::ZERO,
            1,
            t0 + Duration::from_secs(30),
        );
        assert!(!d.due(t0 + Duration::from_secs(59)));
        assert!(!Display::Off.due(t0 + Duration::from_secs(1000)));
    }
}
