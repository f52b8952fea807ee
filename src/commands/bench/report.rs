//! The report of `zarrforge bench`: the conversion's figures, the floors
//! it is measured against, and a table for people.

use serde::Serialize;

use crate::commands::bench::io_floor::IoFloor;
use crate::commands::convert::Report;
use crate::report::summary::RankFigures;

/// The benchmark report.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// zarrforge version.
    pub version: String,
    /// The conversion's own report.
    pub convert: Report,
    /// Seconds to generate the inputs (0 when reused or given).
    pub generate_s: f64,
    /// Start-up: the most seconds a rank had run when the bench began
    /// (the dynamic loader, MPI's start-up, the machine's topology; not the
    /// launcher's own time before it started the rank). `None` where the
    /// system does not say.
    pub startup_s: Option<f64>,
    /// Uncompressed GB/s of the conversion.
    pub gb_per_s: f64,
    /// Per rank.
    pub ranks: Vec<RankFigures>,
    /// Max over mean busy time.
    pub imbalance: f64,
    /// Highest peak RSS of a rank, MiB.
    pub peak_rss_mib: f64,
    /// The codec floor: a thread's CPU seconds to decode and encode the
    /// whole dataset (extrapolated from a sample) while every thread of
    /// every rank does the same, divided by the cores used.
    pub floor_s: f64,
    /// Wall seconds over the floor.
    pub floor_ratio: f64,
    /// The same floor from one thread working alone (the other cores
    /// idle), divided by the cores used: the floor if cores scaled
    /// perfectly.
    pub floor_alone_s: f64,
    /// Cores used (ranks × threads, at most the PUs of the nodes).
    pub cores: usize,
    /// Seconds to read the compressed inputs and write the output at the
    /// storage's measured speeds (0: not measured, as for object storage).
    pub io_floor_s: f64,
    /// The storage's measured speeds behind `io_floor_s`.
    pub io: IoFloor,
    /// The larger of the compute and the I/O floors.
    pub bound_s: f64,
    /// Wall seconds over `bound_s`.
    pub bound_ratio: f64,
    /// The resource that binds: "codec" (the compute floor is the larger)
    /// or "io".
    pub binds: String,
}

impl BenchReport {
    /// A table for people.
    pub fn table(&self) -> String {
        let c = &self.convert;
        let mut out = format!(
            "zarrforge bench {}: {} file(s), {:.3} GB read, {:.3} GB written, {} units, {} rank(s) x {} thread(s)\n",
            self.version,
            c.files,
            gb(c.bytes_read),
            gb(c.bytes_written),
            c.units,
            c.ranks,
            c.threads
        );
        out.push_str(&format!(
            "  convert {:.2} s ({:.3} GB/s), start-up {}, scan {:.2} s, generate {:.2} s; floor {:.2} s on {} core(s) (every core busy; {:.2} s from one core alone): {:.2} x floor; imbalance {:.3}; peak RSS {:.0} MiB\n",
            c.seconds, self.gb_per_s, self.startup_s.map_or_else(|| "n/a".to_string(), |s| format!("{s:.2} s")), c.scan_seconds, self.generate_s, self.floor_s, self.cores, self.floor_alone_s, self.floor_ratio, self.imbalance, self.peak_rss_mib
        ));
        out.push_str(&self.io_line());
        out.push_str(&format!(
            "  topology: {}\n  versions: zarrforge {}, HDF5 {}, netCDF {}, {}; output on {}\n",
            c.topology.line(),
            c.environment.zarrforge,
            c.environment.hdf5,
            c.environment.netcdf,
            c.environment.mpi,
            c.environment.output_filesystem
        ));
        if let Some(x) = &c.exchange {
            out.push_str(&format!(
                "  exchange: {} of {} arrays, {} round(s){}, {} pass(es), {:.3} GB decoded, {:.3} GB sent between ranks; imbalance decode {:.3} write {:.3}\n",
                x.arrays.len(),
                c.arrays,
                x.rounds,
                if x.overlapped { " overlapped" } else { "" },
                x.passes,
                gb(x.bytes_decoded),
                gb(x.bytes_sent),
                x.decode_imbalance,
                x.write_imbalance
            ));
        }
        if self.ranks.iter().any(|r| r.puts > 0) {
            let secs = c.seconds.max(1e-9);
            for r in &self.ranks {
                out.push_str(&format!(
                    "  object storage, rank {}: {} PUTs, {:.3} GB: {:.1} MB/s, {:.1} requests/s\n",
                    r.rank,
                    r.puts,
                    gb(r.put_bytes),
                    r.put_bytes as f64 / 1e6 / secs,
                    r.puts as f64 / secs
                ));
            }
        }
        out.push_str("  rank  units  taken   read GB  written GB   read s  encode s  write s   wait s  exch s   busy s  RSS MiB\n");
        for r in &self.ranks {
            out.push_str(&format!(
                "  {:>4} {:>6} {:>6} {:>9.3} {:>11.3} {:>8.2} {:>9.2} {:>8.2} {:>8.2} {:>7.2} {:>8.2} {:>8.0}\n",
                r.rank,
                r.units,
                r.units_taken,
                gb(r.bytes_read),
                gb(r.bytes_written),
                r.read_s,
                r.encode_s,
                r.write_s,
                r.wait_s,
                r.exchange_s,
                r.busy_s,
                r.peak_rss_mib
            ));
        }
        out
    }

    /// The I/O floor's line of the table.
    fn io_line(&self) -> String {
        if self.io_floor_s > 0.0 {
            format!(
                "  I/O floor {:.2} s: read {:.3} GB at {:.0} MB/s, write {:.3} GB durably at {:.0} MB/s; {:.2} x the larger floor ({} binds)\n",
                self.io_floor_s,
                gb(self.io.input_bytes),
                self.io.read_mb_s,
                gb(self.io.output_bytes),
                self.io.write_mb_s,
                self.bound_ratio,
                if self.binds == "io" { "I/O" } else { "codec" }
            )
        } else {
            "  I/O floor not measured (object storage, or the storage could not be read or written)\n".to_string()
        }
    }
}

#[allow(clippy::cast_precision_loss)]
pub(crate) fn gb(b: u64) -> f64 {
    b as f64 / 1e9
}
