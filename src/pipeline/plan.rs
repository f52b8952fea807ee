//! Pure planning: output chunk shapes, the work-unit grid of every array, and
//! the assignment of units to ranks.
//!
//! A work unit is one chunk, or one whole shard when sharding is on, so every
//! stored object has exactly one writer. Units are laid out in one sequence
//! (arrays in schema order, units in C order of each array's unit grid) and
//! the sequence is cut into one contiguous range per rank with equal
//! uncompressed bytes. Contiguous ranges keep neighbouring chunks, which share
//! source chunks, on the same rank. Every rank computes the same plan from
//! the same schema and options; nothing here does I/O.

use serde::{Deserialize, Serialize};

use crate::cli::config::{Codec, ConvertConfig, DimSizes};
use crate::cli::error::ConfigError;
use crate::model::schema::{DType, Var};
use crate::pipeline::combine::Dataset;

/// 1-D coordinate variables up to this size are stored as one chunk.
pub const SINGLE_CHUNK_COORD_BYTES: u64 = 16 << 20;

/// Chunk size in bytes of the coordinate variable of the concatenation
/// dimension (1 MiB: 131072 float64 time steps per chunk).
pub const GROWABLE_COORD_CHUNK_BYTES: u64 = 1 << 20;

/// One output array and its unit grid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArrayPlan {
    /// Index of the variable in [`crate::model::schema::Schema::vars`].
    pub var: usize,
    /// Variable path (also the array's path in the store).
    pub path: String,
    /// Element type.
    pub dtype: DType,
    /// Array shape.
    pub shape: Vec<u64>,
    /// Chunk shape (the inner chunk when sharded).
    pub chunks: Vec<u64>,
    /// Shard shape, when sharded.
    pub shards: Option<Vec<u64>>,
    /// Units per dimension.
    pub grid: Vec<u64>,
    /// Sequence number of this array's first unit.
    pub first_unit: u64,
    /// Grid index of the first unit to write, per dimension (all zero
    /// except when appending: only the units from the old end on).
    pub lo: Vec<u64>,
    /// Output compression of this array.
    pub codec: Codec,
    /// Mantissa bits its float values are rounded to before compression
    /// (`--keepbits`; `None`: not rounded).
    #[serde(default)]
    pub keepbits: Option<u32>,
}

impl ArrayPlan {
    /// An array plan with its unit grid derived from `shape` and the unit
    /// shape (`shards`, else `chunks`).
    pub fn new(
        var: usize,
        path: String,
        dtype: DType,
        shape: Vec<u64>,
        chunks: Vec<u64>,
        shards: Option<Vec<u64>>,
        first_unit: u64,
    ) -> Self {
        let unit = shards.as_deref().unwrap_or(&chunks);
        let grid: Vec<u64> = shape
            .iter()
            .zip(unit)
            .map(|(n, u)| n.div_ceil(*u))
            .collect();
        Self {
            var,
            path,
            dtype,
            lo: vec![0; grid.len()],
            shape,
            chunks,
            shards,
            grid,
            first_unit,
            codec: Codec::None,
            keepbits: None,
        }
    }

    /// The same plan with output compression `codec`.
    #[must_use]
    pub fn with_codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// Restricts the units to write to those at or beyond element `from`
    /// along dimension `axis` (an append: earlier units are complete), or to
    /// none when `axis` is `None` (a variable an append leaves unchanged).
    pub fn restrict(&mut self, axis: Option<usize>, from: u64) {
        let Some(k) = axis else {
            self.grid = vec![0; self.grid.len().max(1)];
            if self.lo.is_empty() {
                self.lo = vec![0];
            }
            return;
        };
        let u = self.unit_shape()[k];
        let total = self.shape[k].div_ceil(u);
        self.lo[k] = (from / u).min(total);
        self.grid[k] = total - self.lo[k];
    }

    /// Restricts the units to write to those holding elements in
    /// `[lo, hi)` along dimension `axis` (a region write), or to none when
    /// `axis` is `None`.
    pub fn restrict_range(&mut self, axis: Option<usize>, lo: u64, hi: u64) {
        let Some(k) = axis else {
            self.restrict(None, 0);
            return;
        };
        let u = self.unit_shape()[k].max(1);
        let total = self.shape[k].div_ceil(u);
        self.lo[k] = (lo / u).min(total);
        self.grid[k] = hi.div_ceil(u).min(total).saturating_sub(self.lo[k]);
    }

    /// Shape of one work unit (shard, or chunk).
    pub fn unit_shape(&self) -> &[u64] {
        self.shards.as_deref().unwrap_or(&self.chunks)
    }

    /// Number of units of this array.
    pub fn num_units(&self) -> u64 {
        self.grid.iter().fold(1u64, |a, &g| a.saturating_mul(g))
    }

    /// Grid indices of the `k`-th unit (C order).
    pub fn unit_indices(&self, k: u64) -> Vec<u64> {
        let mut idx = crate::model::block::unravel(k, &self.grid);
        for (i, lo) in idx.iter_mut().zip(&self.lo) {
            *i += lo;
        }
        idx
    }

    /// Start and extent (clipped to the array) of the unit at `idx`.
    pub fn unit_region(&self, idx: &[u64]) -> (Vec<u64>, Vec<u64>) {
        let us = self.unit_shape();
        let start: Vec<u64> = idx.iter().zip(us).map(|(i, s)| i * s).collect();
        let count = start
            .iter()
            .zip(us)
            .zip(&self.shape)
            .map(|((st, s), n)| (*s).min(n - st))
            .collect();
        (start, count)
    }

    /// Uncompressed bytes of the unit at `idx` (clipped to the array).
    pub fn unit_bytes(&self, idx: &[u64]) -> u64 {
        let (_, count) = self.unit_region(idx);
        count
            .iter()
            .fold(1u64, |a, &c| a.saturating_mul(c))
            .saturating_mul(self.dtype.size() as u64)
    }
}

/// Most units (stored objects) one plan may hold: far more than any
/// filesystem or object store holds for one dataset, few enough that the
/// planner's pass over every unit takes seconds. A larger count comes from
/// a corrupt header or from chunks far too small.
pub const MAX_UNITS: u64 = 1 << 28;

/// One unit: array index into [`Plan::arrays`] and unit-grid indices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unit {
    /// Index into [`Plan::arrays`].
    pub array: usize,
    /// Sequence number of the unit in the whole plan.
    pub seq: u64,
    /// Indices in the array's unit grid.
    pub indices: Vec<u64>,
}

/// The whole plan: arrays and the rank ranges over the unit sequence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// Output arrays in schema order.
    pub arrays: Vec<ArrayPlan>,
    /// Number of ranks.
    pub ranks: usize,
    /// `bounds[r]..bounds[r+1]` is the unit range of rank `r`.
    pub bounds: Vec<u64>,
    /// Uncompressed bytes per rank.
    pub rank_bytes: Vec<u64>,
    /// Total number of units.
    pub total_units: u64,
}

impl Plan {
    /// Builds the plan for `ranks` ranks.
    ///
    /// # Errors
    /// [`ConfigError`] for a `--chunks`/`--shards` dimension that no variable
    /// has, or a shard size that is not a multiple of the chunk size.
    pub fn new(ds: &Dataset, cfg: &ConvertConfig, ranks: usize) -> Result<Self, ConfigError> {
        let vars = ds.schema.vars();
        for (flag, sizes) in [("--chunks", &cfg.chunks), ("--shards", &cfg.shards)] {
            for (dim, _) in &sizes.0 {
                if !vars.iter().any(|v| v.dims.contains(dim)) {
                    return Err(ConfigError::UnknownDim {
                        flag,
                        dim: dim.clone(),
                        path: ds.schema.source.clone(),
                    });
                }
            }
        }
        let mut arrays = Vec::with_capacity(vars.len());
        let mut first_unit = 0u64;
        for (i, v) in vars.iter().enumerate() {
            let own = ds
                .sources
                .get(i)
                .and_then(|s| cfg.var_settings(&s.var.path));
            let chunk_sizes = merged(&cfg.chunks, own.map(|o| &o.chunks));
            let shard_sizes = merged(&cfg.shards, own.map(|o| &o.shards));
            let mut codec = own
                .and_then(|o| o.codec.clone())
                .unwrap_or_else(|| cfg.codec.clone());
            // `source`: the source chunks and filters where Zarr can express
            // them, else zstd:3 with the usual chunking.
            let stored = ds.sources.get(i).and_then(|s| s.stored.as_ref());
            if codec == Codec::Source {
                codec = stored.map_or(Codec::Zstd(3), |st| st.codec.clone());
            }
            // `--virtual`: a referenced variable has exactly the source's
            // chunks and codecs, whatever the flags say.
            let referenced = stored.filter(|st| matches!(st.codec, Codec::Virtual(_)));
            if let Some(st) = referenced {
                codec = st.codec.clone();
            }
            let stored = stored.filter(|_| matches!(codec, Codec::Stored { .. }));
            // The coordinates of the concatenation dimension and of the
            // files' new dimension (`--new-dim`): appends grow both.
            let growable = v.is_coordinate()
                && (ds.concat.as_ref().is_some_and(|c| v.dims[0] == c.dim)
                    || ds.grid.as_ref().is_some_and(|g| v.dims[0] == g.dim));
            let chunks = if let Some(st) = referenced {
                st.chunks.clone()
            } else if let Some(st) = stored {
                // Explicit sizes win (then chunks are re-encoded, not copied).
                v.dims
                    .iter()
                    .zip(&st.chunks)
                    .map(|(d, &c)| chunk_sizes.get(d).unwrap_or(c))
                    .collect()
            } else if growable {
                // The coordinate of the concatenation dimension: a fixed
                // chunk that does not depend on the current length, so
                // appends extend it and a store built in steps equals one
                // built at once.
                vec![(GROWABLE_COORD_CHUNK_BYTES / v.dtype.size() as u64).max(1)]
            } else {
                choose_chunks(v, &chunk_sizes, cfg.target_chunk_bytes)
            };
            let shards = if referenced.is_some() {
                None
            } else {
                choose_shards(v, &chunks, &shard_sizes)?
            };
            let a = ArrayPlan::new(
                i,
                v.path.clone(),
                v.dtype,
                v.shape.clone(),
                chunks,
                shards,
                first_unit,
            )
            .with_codec(codec);
            let units = a.num_units();
            if units > MAX_UNITS - first_unit.min(MAX_UNITS) {
                return Err(ConfigError::TooManyUnits {
                    path: ds.schema.source.clone(),
                    var: v.path.clone(),
                    units,
                    max: MAX_UNITS,
                });
            }
            first_unit += units;
            arrays.push(a);
        }
        Ok(Self::partition(arrays, ranks.max(1)))
    }

    /// Re-numbers the units of `arrays` after a [`ArrayPlan::restrict`] and
    /// partitions them.
    pub fn renumber(mut arrays: Vec<ArrayPlan>, ranks: usize) -> Self {
        let mut first = 0;
        for a in &mut arrays {
            a.first_unit = first;
            first += a.num_units();
        }
        Self::partition(arrays, ranks.max(1))
    }

    /// Cuts the unit sequence of `arrays` into `ranks` contiguous ranges of
    /// equal bytes: a unit goes to the rank whose share contains the midpoint
    /// of its byte range.
    pub fn partition(arrays: Vec<ArrayPlan>, ranks: usize) -> Self {
        Self::partition_skipping(arrays, ranks, |_| false)
    }

    /// [`Plan::partition`] balanced on the units not `skipped` (a resumed
    /// run: finished units weigh nothing, so the remaining work is spread
    /// evenly; the sequence and its numbers are unchanged).
    pub fn partition_skipping(
        arrays: Vec<ArrayPlan>,
        ranks: usize,
        skipped: impl Fn(u64) -> bool,
    ) -> Self {
        let ranks = ranks.max(1);
        let total_units: u64 = arrays.iter().map(ArrayPlan::num_units).sum();
        let weight = |a: &ArrayPlan, k: u64| -> u128 {
            if skipped(a.first_unit + k) {
                0
            } else {
                u128::from(a.unit_bytes(&a.unit_indices(k)))
            }
        };
        let total_bytes: u128 = arrays
            .iter()
            .map(|a| (0..a.num_units()).map(|k| weight(a, k)).sum::<u128>())
            .sum();
        let mut bounds = vec![total_units; ranks + 1];
        bounds[0] = 0;
        let mut rank_bytes = vec![0u64; ranks];
        let mut cum: u128 = 0;
        let mut seq = 0u64;
        let mut current = 0usize;
        let r128 = ranks as u128;
        for a in &arrays {
            for k in 0..a.num_units() {
                let w = weight(a, k);
                let owner = if total_bytes == 0 {
                    // No bytes at all: spread units by count.
                    usize::try_from(u128::from(seq) * r128 / u128::from(total_units.max(1)))
                        .unwrap_or(ranks - 1)
                } else {
                    usize::try_from(((2 * cum + w) * r128) / (2 * total_bytes)).unwrap_or(ranks - 1)
                }
                .min(ranks - 1);
                while current < owner {
                    current += 1;
                    bounds[current] = seq;
                }
                #[allow(clippy::cast_possible_truncation)]
                {
                    rank_bytes[owner] += w as u64;
                }
                cum += w;
                seq += 1;
            }
        }
        while current < ranks {
            current += 1;
            bounds[current] = seq;
        }
        Self {
            arrays,
            ranks,
            bounds,
            rank_bytes,
            total_units,
        }
    }

    /// The units of `rank`, in sequence order.
    pub fn units_of(&self, rank: usize) -> impl Iterator<Item = Unit> + '_ {
        self.range_of(rank).map(move |seq| self.unit(seq))
    }

    /// The unit with sequence number `seq`.
    pub fn unit(&self, seq: u64) -> Unit {
        let array = self
            .arrays
            .partition_point(|a| a.first_unit + a.num_units() <= seq);
        let a = &self.arrays[array];
        Unit {
            array,
            seq,
            indices: a.unit_indices(seq - a.first_unit),
        }
    }

    /// The range of this rank's own units, `rank`'s share of the plan.
    pub fn range_of(&self, rank: usize) -> std::ops::Range<u64> {
        self.bounds[rank]..self.bounds[rank + 1]
    }

    /// Where to cut `units` (not yet started) so that the part from the cut
    /// on holds about half the bytes of the units that `counts` (units to
    /// be written: neither finished nor left to another path); `None` when
    /// fewer than two such units remain, so nothing is worth giving away.
    /// Both parts keep at least one counted unit.
    pub fn tail_cut(
        &self,
        units: std::ops::Range<u64>,
        counts: impl Fn(u64) -> bool,
    ) -> Option<u64> {
        let weighed: Vec<(u64, u128)> = units
            .filter(|&seq| counts(seq))
            .map(|seq| {
                let u = self.unit(seq);
                let a = &self.arrays[u.array];
                // A unit of no bytes still costs a write: weigh it as one.
                (seq, u128::from(a.unit_bytes(&u.indices).max(1)))
            })
            .collect();
        if weighed.len() < 2 {
            return None;
        }
        let total: u128 = weighed.iter().map(|w| w.1).sum();
        // The tail starts at the first unit whose bytes' midpoint lies in
        // the second half, and keeps at least one unit on either side.
        let mut before: u128 = 0;
        let mut cut = weighed.len() - 1;
        for (i, &(_, w)) in weighed.iter().enumerate().skip(1) {
            before += weighed[i - 1].1;
            if 2 * before + w > total {
                cut = i;
                break;
            }
        }
        Some(weighed[cut].0)
    }

    /// Number of units of `rank`.
    pub fn units_count(&self, rank: usize) -> u64 {
        let r = self.range_of(rank);
        r.end - r.start
    }

    /// Max over mean of the bytes per rank (1.0 is perfect balance).
    pub fn imbalance(&self) -> f64 {
        let total: u64 = self.rank_bytes.iter().sum();
        if total == 0 {
            return 1.0;
        }
        #[allow(clippy::cast_precision_loss)]
        let mean = total as f64 / self.ranks as f64;
        #[allow(clippy::cast_precision_loss)]
        let max = self.rank_bytes.iter().copied().max().unwrap_or(0) as f64;
        max / mean
    }

    /// Total uncompressed bytes.
    pub fn total_bytes(&self) -> u64 {
        self.rank_bytes.iter().sum()
    }

    /// The units not `done` of a plan of which `resumed` were done before,
    /// and their uncompressed bytes (exact up to a few million units;
    /// beyond, the bytes of finished units are estimated from their share of
    /// the units).
    pub fn remaining(&self, resumed: u64, done: impl Fn(u64) -> bool) -> (u64, u64) {
        const EXACT: u64 = 4 << 20;
        let units = self.total_units.saturating_sub(resumed);
        let mut bytes = 0u64;
        for a in &self.arrays {
            let us = a.unit_shape();
            // The region the units cover, clipped to the array.
            let covered =
                a.lo.iter()
                    .zip(&a.grid)
                    .zip(us)
                    .zip(&a.shape)
                    .fold(1u64, |acc, (((lo, g), s), n)| {
                        let from = lo.saturating_mul(*s).min(*n);
                        let to = (lo + g).saturating_mul(*s).min(*n);
                        acc.saturating_mul(to - from)
                    })
                    .saturating_mul(a.dtype.size() as u64);
            bytes = bytes.saturating_add(covered);
            if resumed > 0 && self.total_units <= EXACT {
                for k in 0..a.num_units() {
                    if done(a.first_unit + k) {
                        bytes = bytes.saturating_sub(a.unit_bytes(&a.unit_indices(k)));
                    }
                }
            }
        }
        if resumed > 0 && self.total_units > EXACT {
            #[allow(
                clippy::cast_precision_loss,
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss
            )]
            {
                bytes = (bytes as f64 * units as f64 / self.total_units.max(1) as f64) as u64;
            }
        }
        (units, bytes)
    }
}

fn bytes_of(shape: &[u64], itemsize: u64) -> u64 {
    shape
        .iter()
        .fold(1u64, |a, &c| a.saturating_mul(c))
        .saturating_mul(itemsize)
}

/// Whether `v` is a 1-D coordinate variable small enough to be stored as
/// one chunk whatever `--chunks` asks.
pub fn kept_whole(v: &Var) -> bool {
    v.is_coordinate() && bytes_of(&v.shape, v.dtype.size() as u64) <= SINGLE_CHUNK_COORD_BYTES
}

/// The chunk shape of `v`: sizes given in `--chunks` for its dimensions, the
/// heuristic for the others.
///
/// Heuristic: start from the source chunk shape (the whole array when the
/// source is contiguous), then grow free dimensions innermost first by whole
/// multiples of the source chunk until about `target` bytes, or halve them
/// outermost first while above `target`. 1-D coordinate variables up to
/// [`SINGLE_CHUNK_COORD_BYTES`] are one chunk. Sizes are clamped to the
/// dimension length (at least 1).
pub fn choose_chunks(v: &Var, given: &DimSizes, target: u64) -> Vec<u64> {
    let n = v.shape.len();
    if n == 0 {
        return Vec::new();
    }
    let itemsize = v.dtype.size() as u64;
    let target = target.max(itemsize);
    if kept_whole(v) {
        return vec![v.shape[0].max(1)];
    }
    let fixed: Vec<Option<u64>> = v.dims.iter().map(|d| given.get(d)).collect();
    let mut c: Vec<u64> = (0..n)
        .map(|d| {
            let base = v
                .source_chunks
                .as_ref()
                .and_then(|s| s.get(d).copied())
                .unwrap_or(v.shape[d]);
            fixed[d].unwrap_or(base).max(1)
        })
        .collect();
    // Never larger than the dimension (a chunk of 1 for an empty dimension).
    for d in 0..n {
        if fixed[d].is_none() || v.shape[d] > 0 {
            c[d] = c[d].min(v.shape[d].max(1));
        }
    }
    let free: Vec<usize> = (0..n).filter(|&d| fixed[d].is_none()).collect();
    if bytes_of(&c, itemsize) > target {
        for &d in &free {
            while c[d] > 1 && bytes_of(&c, itemsize) > target {
                c[d] = c[d].div_ceil(2);
            }
        }
    } else {
        for &d in free.iter().rev() {
            let cur = bytes_of(&c, itemsize).max(1);
            let factor = (target / cur).max(1);
            let grown = c[d].saturating_mul(factor);
            c[d] = grown.min(v.shape[d].max(1));
            if grown < v.shape[d] {
                break;
            }
        }
    }
    c
}

/// The shard shape of `v`, or `None` without `--shards`.
///
/// # Errors
/// [`ConfigError::ShardNotMultiple`].
pub fn choose_shards(
    v: &Var,
    chunks: &[u64],
    given: &DimSizes,
) -> Result<Option<Vec<u64>>, ConfigError> {
    if given.is_empty() || v.shape.is_empty() {
        return Ok(None);
    }
    let mut s = Vec::with_capacity(chunks.len());
    for (d, dim) in v.dims.iter().enumerate() {
        let c = chunks[d];
        // A shard never needs to reach past the (chunk-rounded) dimension.
        let limit = v.shape[d].max(1).div_ceil(c) * c;
        let shard = match given.get(dim).map(|g| g.min(limit)) {
            Some(g) if g <= c => c,
            Some(g) if g % c == 0 => g,
            Some(g) => {
                return Err(ConfigError::ShardNotMultiple {
                    var: v.path.clone(),
                    dim: dim.clone(),
                    shard: g,
                    chunk: c,
                })
            }
            None => c,
        };
        s.push(shard);
    }
    Ok(Some(s))
}

/// A variable's own sizes (`local`), then the global ones for the other
/// dimensions.
fn merged(global: &DimSizes, local: Option<&DimSizes>) -> DimSizes {
    let mut out = local.cloned().unwrap_or_default();
    for (d, n) in &global.0 {
        if out.get(d).is_none() {
            out.0.push((d.clone(), *n));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::schema::{DType, Var};

    fn var(name: &str, dims: &[&str], shape: &[u64], src: Option<&[u64]>, dtype: DType) -> Var {
        Var {
            name: name.into(),
            path: name.into(),
            dtype,
            dims: dims.iter().map(std::string::ToString::to_string).collect(),
            shape: shape.to_vec(),
            source_chunks: src.map(<[u64]>::to_vec),
            filters: vec![],
            big_endian: false,
            attrs: vec![],
            via_netcdf: false,
        }
    }

    fn array(shape: &[u64], chunks: &[u64], first_unit: u64) -> ArrayPlan {
        ArrayPlan::new(
            0,
            "a".into(),
            DType::F32,
            shape.to_vec(),
            chunks.to_vec(),
            None,
            first_unit,
        )
    }

    #[test]
    fn remaining_counts_the_units_not_done_and_their_bytes() {
        // Units of 4, 4 and 2 rows of 6 f32: 96, 96 and 48 bytes.
        let plan = Plan::partition(vec![array(&[10, 6], &[4, 6], 0)], 2);
        assert_eq!(plan.remaining(0, |_| false), (3, 240));
        assert_eq!(plan.remaining(1, |seq| seq == 2), (2, 192));
        assert_eq!(plan.remaining(1, |seq| seq == 0), (2, 144));
    }

    #[test]
    fn heuristic_grows_source_chunks_to_target() {
        let v = var(
            "t",
            &["time", "lat", "lon"],
            &[384, 361, 720],
            Some(&[1, 361, 720]),
            DType::F32,
        );
        assert_eq!(
            choose_chunks(&v, &DimSizes::default(), 4 << 20),
            vec![4, 361, 720]
        );
    }

    #[test]
    fn heuristic_splits_contiguous_arrays() {
        let v = var(
            "t",
            &["time", "lat", "lon"],
            &[1000, 721, 1440],
            None,
            DType::F64,
        );
        let c = choose_chunks(&v, &DimSizes::default(), 4 << 20);
        let bytes = c.iter().product::<u64>() * 8;
        assert!(bytes <= 4 << 20 && bytes > 1 << 20, "{c:?}");
        assert_eq!(c, vec![1, 361, 1440]);
    }

    #[test]
    fn heuristic_never_one_element_per_chunk() {
        let v = var("t", &["x", "y"], &[5000, 5000], Some(&[1, 1]), DType::F32);
        let c = choose_chunks(&v, &DimSizes::default(), 4 << 20);
        assert!(c.iter().product::<u64>() * 4 > 1 << 20, "{c:?}");
    }

    #[test]
    fn coordinates_are_one_chunk_and_given_sizes_win() {
        let t = var("time", &["time"], &[100_000], Some(&[512]), DType::F64);
        assert_eq!(
            choose_chunks(&t, &DimSizes::default(), 4 << 20),
            vec![100_000]
        );
        let v = var("v", &["time", "x"], &[100, 7], None, DType::F32);
        let given = DimSizes::parse("--chunks", "time=24").unwrap();
        assert_eq!(choose_chunks(&v, &given, 4 << 20), vec![24, 7]);
    }

    #[test]
    fn empty_and_scalar_arrays() {
        let v = var("v", &["time", "x"], &[0, 7], Some(&[1, 7]), DType::F32);
        let c = choose_chunks(&v, &DimSizes::default(), 4 << 20);
        assert!(c.iter().all(|&x| x >= 1));
        let s = var("crs", &[], &[], None, DType::I32);
        assert!(choose_chunks(&s, &DimSizes::default(), 4 << 20).is_empty());
        let a = array(&[0, 7], &c, 0);
        assert_eq!(a.num_units(), 0);
        let sc = array(&[], &[], 0);
        assert_eq!(sc.num_units(), 1);
        assert_eq!(sc.unit_bytes(&[]), 4);
    }

    #[test]
    fn shards_must_be_multiples() {
        let v = var("v", &["time", "x"], &[100, 8], None, DType::F32);
        let given = DimSizes::parse("--shards", "time=30").unwrap();
        assert!(choose_shards(&v, &[4, 8], &given).is_err());
        let given = DimSizes::parse("--shards", "time=40").unwrap();
        assert_eq!(
            choose_shards(&v, &[4, 8], &given).unwrap(),
            Some(vec![40, 8])
        );
    }

    /// Every unit has exactly one owner, ranges are contiguous and cover the
    /// sequence, and bytes per rank differ by at most one unit.
    fn check_partition(arrays: Vec<ArrayPlan>, ranks: usize) {
        let p = Plan::partition(arrays, ranks);
        assert_eq!(p.bounds[0], 0);
        assert_eq!(p.bounds[ranks], p.total_units);
        assert!(p.bounds.windows(2).all(|w| w[0] <= w[1]));
        let mut seen = 0;
        let mut max_unit = 0;
        for r in 0..ranks {
            let mut bytes = 0;
            for u in p.units_of(r) {
                assert_eq!(u.seq, seen);
                seen += 1;
                let a = &p.arrays[u.array];
                let b = a.unit_bytes(&u.indices);
                max_unit = max_unit.max(b);
                bytes += b;
            }
            assert_eq!(bytes, p.rank_bytes[r]);
        }
        assert_eq!(seen, p.total_units);
        let mean = p.total_bytes() / ranks as u64;
        for &b in &p.rank_bytes {
            assert!(
                b <= mean + max_unit,
                "rank bytes {b} > mean {mean} + unit {max_unit}"
            );
        }
    }

    #[test]
    fn partition_properties() {
        let mut seed = 12345u64;
        let mut next = |m: u64| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) % m
        };
        for _ in 0..200 {
            let narr = 1 + next(4) as usize;
            let mut arrays = Vec::new();
            let mut first = 0;
            for _ in 0..narr {
                let nd = next(4) as usize;
                let shape: Vec<u64> = (0..nd).map(|_| next(40)).collect();
                let chunks: Vec<u64> = (0..nd).map(|_| 1 + next(9)).collect();
                let a = array(&shape, &chunks, first);
                first += a.num_units();
                arrays.push(a);
            }
            let ranks = 1 + next(7) as usize;
            check_partition(arrays, ranks);
        }
    }

    #[test]
    fn tail_cut_halves_the_bytes_left_and_keeps_a_unit_on_each_side() {
        // Two arrays: units of 4 bytes (4 units), then of 400 bytes (4 units).
        let small = array(&[4, 1], &[1, 1], 0);
        let large = array(&[4, 100], &[1, 100], 4);
        let plan = Plan::partition(vec![small, large], 1);
        let all = |_| true;
        // Equal units: the last half of them.
        assert_eq!(plan.tail_cut(4..8, all), Some(6));
        assert_eq!(plan.tail_cut(0..4, all), Some(2));
        // By bytes, not by count: the three small units weigh less than
        // half of one large unit.
        assert_eq!(plan.tail_cut(1..6, all), Some(5));
        // One unit left: nothing to give. A small unit and a large one:
        // the large one goes.
        assert_eq!(plan.tail_cut(7..8, all), None);
        assert_eq!(plan.tail_cut(3..5, all), Some(4));
        // Units that do not count are neither weighed nor a side's unit.
        assert_eq!(plan.tail_cut(4..8, |s| s != 5 && s != 6), Some(7));
        assert_eq!(plan.tail_cut(4..8, |s| s == 4), None);
        assert_eq!(plan.tail_cut(5..5, all), None);
    }

    #[test]
    fn unit_lookup_and_regions() {
        let a = array(&[10, 7], &[4, 3], 0);
        let b = array(&[5], &[5], a.num_units());
        let p = Plan::partition(vec![a, b], 3);
        let u = p.unit(4);
        assert_eq!((u.array, u.indices.clone()), (0, vec![1, 1]));
        assert_eq!(p.arrays[0].unit_region(&[2, 2]), (vec![8, 6], vec![2, 1]));
        let last = p.unit(p.total_units - 1);
        assert_eq!(last.array, 1);
        assert_eq!(
            p.units_of(0).count() as u64 + p.units_count(1) + p.units_count(2),
            p.total_units
        );
    }
}
