//! The memory budget of a rank (`--max-memory`): how many units may be in
//! flight and how large the caches may grow. Pure: no I/O.
//!
//! A rank's memory is its baseline (libraries, MPI, HDF5 metadata), the
//! units in flight (each holds its assembled values, the decoded source
//! chunks only it uses and its encoded bytes: about three times its
//! uncompressed size), the cache of decoded source chunks shared between
//! units, and HDF5's own chunk cache (used when source chunks are read
//! through HDF5's filter pipeline rather than raw).

use crate::cli::error::ConfigError;
use crate::pipeline::exchange::Sizing;
use crate::pipeline::read::hdf5::MAX_OPEN_DATASETS;
use crate::pipeline::read::{CHUNK_CACHE_BYTES, MAX_OPEN_FILES};

const MIB: u64 = 1 << 20;

/// Memory of a rank before any unit: libraries, MPI, HDF5 metadata.
pub const BASELINE_BYTES: u64 = 64 * MIB;

/// Default HDF5 chunk caches of a rank, all open datasets together.
pub const HDF5_CACHE_BYTES: u64 = 64 * MIB;

/// Bytes a unit in flight holds, per uncompressed byte.
const UNIT_FACTOR: u64 = 3;

/// The memory of a rank on the exchange path without `--max-memory`.
pub const EXCHANGE_DEFAULT_BYTES: u64 = 512 * MIB;

/// Most decoded bytes a rank reads in one exchange step.
pub const STEP_BYTES: u64 = 32 * MIB;

/// Step-sized buffers a rank holds besides what it receives: the blocks
/// of the step being exchanged, its send buffer, and the blocks of the
/// next step, decoded meanwhile.
const LOOKAHEAD_STEPS: u64 = 3;

/// HDF5's chunk caches on the exchange path, all datasets together (raw
/// chunk reads bypass them; reads that re-encode time values use them).
pub const EXCHANGE_HDF5_BYTES: u64 = 16 * MIB;

/// HDF5 chunk cache of each dataset for `total` bytes over every dataset a
/// rank may hold open ([`MAX_OPEN_FILES`] files × [`MAX_OPEN_DATASETS`]
/// datasets each).
pub fn hdf5_cache_per_dataset(total: u64) -> u64 {
    total / (MAX_OPEN_FILES * MAX_OPEN_DATASETS) as u64
}

/// The sizes of the exchange for `max` bytes per rank (default
/// [`EXCHANGE_DEFAULT_BYTES`]), `ranks` ranks, `threads` encoder threads and
/// units of at most `unit_bytes`: what is left after the baseline, HDF5's
/// caches and the units being encoded goes to two steps' decoded blocks
/// (one exchanged, the next decoded meanwhile), a send buffer and a
/// receive buffer (at most one step from every rank, at most the round's
/// units), and the units of a round.
pub fn exchange_sizing(max: Option<u64>, ranks: usize, threads: usize, unit_bytes: u64) -> Sizing {
    let m = max.unwrap_or(EXCHANGE_DEFAULT_BYTES);
    let encoding = (threads.max(1) as u64 * 2).saturating_mul(unit_bytes);
    let avail = m.saturating_sub(BASELINE_BYTES + EXCHANGE_HDF5_BYTES + encoding);
    let step = (avail / 8).clamp(MIB, STEP_BYTES);
    let rest = avail.saturating_sub(LOOKAHEAD_STEPS * step);
    let receive = (ranks.max(1) as u64).saturating_mul(step);
    let round_bytes = if receive <= rest / 2 {
        rest - receive
    } else {
        rest / 2
    };
    Sizing {
        round_bytes,
        step_bytes: step,
        overlap: false,
    }
}

/// What the exchange holds at most on a rank with `sizing` (the bound
/// [`exchange_sizing`] keeps under `--max-memory`).
pub fn exchange_bound(sizing: Sizing, ranks: usize, threads: usize, unit_bytes: u64) -> u64 {
    let receive = (ranks.max(1) as u64 * sizing.step_bytes).min(sizing.round_bytes);
    BASELINE_BYTES
        + EXCHANGE_HDF5_BYTES
        + (threads.max(1) as u64 * 2).saturating_mul(unit_bytes)
        + LOOKAHEAD_STEPS * sizing.step_bytes
        + receive
        + sizing.round_bytes * if sizing.overlap { 2 } else { 1 }
}

/// What a rank may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Units read and not yet written.
    pub in_flight: usize,
    /// Decoded source chunks kept for later units, bytes.
    pub chunk_cache: u64,
    /// HDF5 chunk caches, all open datasets together, bytes.
    pub hdf5_cache: u64,
}

impl Budget {
    /// Without `--max-memory`: two units per encoder thread, default caches.
    pub fn unlimited(threads: usize) -> Self {
        Self {
            in_flight: threads.max(1) * 2,
            chunk_cache: CHUNK_CACHE_BYTES as u64,
            hdf5_cache: HDF5_CACHE_BYTES,
        }
    }

    /// The budget for `max` bytes per rank, `threads` encoder threads and
    /// units of at most `unit_bytes` uncompressed (of variable `var`).
    /// Units in flight get up to half of what the baseline leaves (at least
    /// one, at most two per thread); the caches share the rest, up to their
    /// defaults.
    ///
    /// # Errors
    /// [`ConfigError::MemoryTooSmall`] when not even one unit fits.
    pub fn fit(max: u64, threads: usize, unit_bytes: u64, var: &str) -> Result<Self, ConfigError> {
        let per_unit = unit_bytes.saturating_mul(UNIT_FACTOR).max(1);
        let need = BASELINE_BYTES + per_unit;
        if max < need {
            return Err(ConfigError::MemoryTooSmall {
                have_mib: max / MIB,
                need_mib: need.div_ceil(MIB),
                var: var.to_string(),
                unit_mib: unit_bytes.div_ceil(MIB),
            });
        }
        let avail = max - BASELINE_BYTES;
        let most = threads.max(1) * 2;
        let fits = usize::try_from((avail / 2) / per_unit).unwrap_or(usize::MAX);
        let in_flight = fits.clamp(1, most);
        let rest = avail - per_unit * in_flight as u64;
        let hdf5_cache = (rest / 4).min(HDF5_CACHE_BYTES);
        let chunk_cache = (rest - hdf5_cache).min(CHUNK_CACHE_BYTES as u64);
        Ok(Self {
            in_flight,
            chunk_cache,
            hdf5_cache,
        })
    }

    /// The most this budget lets a rank hold, bytes.
    pub fn bound(&self, unit_bytes: u64) -> u64 {
        BASELINE_BYTES
            + unit_bytes * UNIT_FACTOR * self.in_flight as u64
            + self.chunk_cache
            + self.hdf5_cache
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_budget_keeps_the_defaults() {
        let b = Budget::fit(4 << 30, 2, 6 * MIB, "t").unwrap();
        assert_eq!(b, Budget::unlimited(2));
    }

    #[test]
    fn a_small_budget_shrinks_caches_and_units_in_flight() {
        for max in [100 * MIB, 200 * MIB, 300 * MIB, 1 << 30] {
            for threads in [1, 2, 8] {
                for unit in [MIB, 6 * MIB, 25 * MIB] {
                    let Ok(b) = Budget::fit(max, threads, unit, "t") else {
                        assert!(max < BASELINE_BYTES + 3 * unit);
                        continue;
                    };
                    assert!(b.in_flight >= 1 && b.in_flight <= 2 * threads);
                    assert!(b.bound(unit) <= max, "{max} {threads} {unit} {b:?}");
                }
            }
        }
    }

    #[test]
    fn the_exchange_fits_the_budget() {
        for max in [Some(256 * MIB), Some(512 * MIB), Some(4 << 30), None] {
            for ranks in [1, 2, 64, 1000] {
                for unit in [MIB, 4 * MIB] {
                    let s = exchange_sizing(max, ranks, 2, unit);
                    let m = max.unwrap_or(EXCHANGE_DEFAULT_BYTES);
                    for s in [s, s.overlapped()] {
                        assert!(
                            exchange_bound(s, ranks, 2, unit) <= m,
                            "{max:?} {ranks} {s:?}"
                        );
                    }
                    assert!(s.step_bytes >= MIB && s.step_bytes <= STEP_BYTES);
                }
            }
        }
        let s = exchange_sizing(None, 2, 1, MIB);
        assert!(s.round_bytes > 250 * MIB, "{s:?}");
    }

    #[test]
    fn hdf5_caches_share_the_total() {
        assert_eq!(hdf5_cache_per_dataset(64 * MIB), 8 * MIB);
    }

    #[test]
    fn too_small_names_the_variable_and_the_need() {
        let e = Budget::fit(80 * MIB, 1, 25 * MIB, "t2m").unwrap_err();
        let text = e.to_string();
        assert!(text.contains("'t2m'") && text.contains("139 MiB"), "{text}");
    }
}
