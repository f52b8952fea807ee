//! Per-rank counters and timings, the end-of-run summary, and progress on
//! rank 0.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use serde::Serialize;

/// What one rank did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RankStats {
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
        self.rounds += o.rounds;
        self.bytes_sent += o.bytes_sent;
        self.bytes_received += o.bytes_received;
        self.exchange_s += o.exchange_s;
    }
}

/// Progress display on rank 0 (only when stderr is a terminal).
pub struct Progress {
    enabled: bool,
    start: Instant,
    last: Instant,
    total: u64,
    ranks: usize,
}

impl Progress {
    /// `total` units of this rank, out of a job of `ranks` ranks.
    pub fn new(enabled: bool, total: u64, ranks: usize) -> Self {
        let now = Instant::now();
        Self {
            enabled: enabled && std::io::stderr().is_terminal(),
            start: now,
            last: now,
            total,
            ranks,
        }
    }

    /// Reports `done` units and `bytes` read so far on this rank.
    pub fn update(&mut self, done: u64, bytes: u64) {
        if !self.enabled || self.last.elapsed() < Duration::from_millis(500) {
            return;
        }
        self.last = Instant::now();
        let secs = self.start.elapsed().as_secs_f64().max(1e-9);
        #[allow(clippy::cast_precision_loss)]
        let gbs = bytes as f64 * self.ranks as f64 / secs / 1e9;
        eprint!(
            "\rzarrforge: {done}/{} units on rank 0 ({:.0}%), ~{gbs:.2} GB/s over {} rank(s)   ",
            self.total,
            if self.total == 0 {
                100.0
            } else {
                #[allow(clippy::cast_precision_loss)]
                {
                    done as f64 * 100.0 / self.total as f64
                }
            },
            self.ranks
        );
    }

    /// Clears the progress line.
    pub fn finish(&self) {
        if self.enabled {
            eprint!("\r{:80}\r", "");
        }
    }
}
