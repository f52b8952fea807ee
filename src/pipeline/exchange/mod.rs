//! Pure planning of the exchange path: which arrays take it, the rounds of
//! output units, the source blocks each rank reads and the pieces that go
//! from the rank that reads a block to the ranks that write the units it
//! feeds. Every rank computes the same exchange plan; nothing here does I/O.
//!
//! The direct path reads each output unit's region on the rank that writes
//! it. When units cut across many source chunks (one time step per source
//! chunk, long time series per output chunk) each source chunk is then
//! decoded again for every unit that needs a piece of it. The exchange path
//! is the two-phase pattern of collective I/O at the level of chunks:
//!
//! * the units of an array are taken in **rounds** (consecutive units in C
//!   order, whole slabs of the unit grid where they fit) whose values fit
//!   the ranks' combined assembly budget; within a round the units are cut
//!   into one contiguous range per rank, of equal bytes (the write side);
//! * the **blocks** the round needs (source chunks, cut at file boundaries,
//!   split when larger than the step budget) are cut into one contiguous
//!   range per rank, of equal bytes (the read side): each block is read
//!   and decoded once per round, by one rank;
//! * in each **step** every rank decodes a batch of its blocks and the
//!   ranks exchange the pieces ([`Piece`]) in one all-to-all; both sides
//!   enumerate the pieces in the same order, so no piece carries a header.
//!
//! A block that several rounds need is read once per round: the number of
//! **passes** over the source. Rounds follow the unit grid's slabs so that
//! consecutive rounds need disjoint blocks whenever a slab fits.

use std::collections::HashMap;
use std::ops::Range;

use serde::Serialize;

use crate::cli::config::ExchangeMode;
use crate::model::block::unravel;
use crate::model::schema::DType;
use crate::pipeline::combine::VarSource;
use crate::pipeline::plan::{ArrayPlan, Plan};

/// How the units of one array get their values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Path {
    /// Each unit's region is read by the rank that writes it.
    Direct,
    /// Source blocks are read once and their pieces exchanged.
    Exchange,
}

/// The path of one array and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Route {
    /// The path taken.
    pub path: Path,
    /// Source bytes the direct path decodes per byte of the array
    /// (estimated from the source chunk shape; 1 for unchunked sources).
    pub amplification: f64,
    /// Whether the decoded-chunk cache absorbs that amplification (the
    /// source chunks one unit needs fit in half of it, so neighbouring
    /// units share them).
    pub cached: bool,
    /// The shape of one read block (exchange path).
    pub block: Vec<u64>,
}

/// A box of an array, in output coordinates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Block {
    /// First element.
    pub start: Vec<u64>,
    /// Extent.
    pub count: Vec<u64>,
}

impl Block {
    /// Number of elements.
    pub fn len(&self) -> u64 {
        self.count.iter().product()
    }

    /// Whether the box holds no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One piece of a block that goes to one unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    /// The unit's index in its array's unit sequence (C order of the grid
    /// from [`ArrayPlan::lo`]).
    pub unit: u64,
    /// The rank that writes the unit.
    pub owner: usize,
    /// The piece, in output coordinates.
    pub region: Block,
}

/// A round: consecutive units of one array whose values every rank holds
/// at once, and the blocks that feed them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Round {
    /// Index into [`Plan::arrays`].
    pub array: usize,
    /// The units (indices in the array's unit sequence).
    pub units: Range<u64>,
    /// `owners[r]..owners[r + 1]` are the units rank `r` writes.
    pub owners: Vec<u64>,
    /// The blocks the round's unfinished units need, in C order.
    pub blocks: Vec<Block>,
    /// `readers[r]..readers[r + 1]` are the blocks rank `r` reads.
    pub readers: Vec<usize>,
    /// Blocks a rank reads per step.
    pub batch: usize,
    /// Steps (all-to-all exchanges) of the round.
    pub steps: usize,
}

impl Round {
    /// The rank that writes unit `k`.
    pub fn owner(&self, k: u64) -> usize {
        self.owners
            .partition_point(|&b| b <= k)
            .saturating_sub(1)
            .min(self.owners.len().saturating_sub(2))
    }

    /// The units rank `r` writes.
    pub fn units_of(&self, r: usize) -> Range<u64> {
        self.owners[r]..self.owners[r + 1]
    }

    /// The blocks rank `r` reads in step `s`.
    pub fn step_blocks(&self, r: usize, s: usize) -> Range<usize> {
        let (lo, hi) = (self.readers[r], self.readers[r + 1]);
        let a = lo.saturating_add(s.saturating_mul(self.batch)).min(hi);
        let b = a.saturating_add(self.batch).min(hi);
        a..b
    }
}

/// Sizes that bound the exchange on every rank.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Sizing {
    /// Uncompressed bytes of the units a rank assembles in one round.
    pub round_bytes: u64,
    /// Decoded bytes a rank reads in one step (at least one block).
    pub step_bytes: u64,
    /// Whether a round is assembled while the units of the one before are
    /// encoded and written: two rounds in memory, each of at most
    /// `round_bytes`.
    pub overlap: bool,
}

impl Sizing {
    /// The same budget for two rounds in memory at once: rounds half as
    /// large, assembled while the one before is encoded.
    pub fn overlapped(self) -> Self {
        Self {
            round_bytes: self.round_bytes / 2,
            overlap: true,
            ..self
        }
    }
}

/// The exchange plan of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Exchange {
    /// The route of every array of the plan.
    pub routes: Vec<Route>,
    /// The rounds, arrays in plan order.
    pub rounds: Vec<Round>,
    /// Number of ranks.
    pub ranks: usize,
    /// The sizes it was made for.
    pub sizing: Sizing,
    /// The old length along the concatenation dimension of an append: a
    /// unit that starts before it gets only its new part from the inputs.
    pub append_from: Option<u64>,
    /// Position of the concatenation dimension of every array.
    axes: Vec<Option<usize>>,
    /// Cut points of the read blocks of every array, per dimension.
    #[serde(skip)]
    cuts: Vec<Vec<Vec<u64>>>,
}

/// Amplification above which `auto` takes the exchange path.
const AUTO_AMPLIFICATION: f64 = 2.0;

/// The path of every array of `plan`: `mode`, else (`auto`) the exchange
/// path where the direct path would decode source chunks more than twice
/// and the decoded-chunk cache of `cache_bytes` cannot absorb it. Blocks
/// are the source chunks, split to at most `max_block` bytes; variable-
/// length strings always take the direct path.
pub fn routes(
    sources: &[VarSource],
    plan: &Plan,
    mode: ExchangeMode,
    cache_bytes: u64,
    max_block: u64,
) -> Vec<Route> {
    plan.arrays
        .iter()
        .map(|a| {
            let src = sources.get(a.var);
            let size = a.dtype.size() as u64;
            let chunks = src
                .and_then(VarSource::source_chunks)
                .filter(|c| c.len() == a.shape.len() && !c.contains(&0));
            let natural = match (&chunks, src.and_then(|s| s.axis)) {
                (Some(c), _) => c.iter().zip(&a.shape).map(|(c, n)| *c.min(n)).collect(),
                // Unchunked records: one record at a time.
                (None, Some(k)) => {
                    let mut b = a.shape.clone();
                    b[k] = 1;
                    b
                }
                (None, None) => a.shape.clone(),
            };
            let natural: Vec<u64> = natural.iter().map(|&n| n.max(1)).collect();
            let (amplification, per_unit) = match &chunks {
                Some(_) => amplification(a, &natural),
                None => (1.0, 0),
            };
            let cached = per_unit <= cache_bytes / 2;
            // References (`--virtual`) are never read: never exchanged.
            let exchange = a.dtype != DType::String
                && a.num_units() > 0
                && !matches!(a.codec, crate::cli::config::Codec::Virtual(_))
                && match mode {
                    ExchangeMode::Never => false,
                    ExchangeMode::Always => true,
                    ExchangeMode::Auto => amplification > AUTO_AMPLIFICATION && !cached,
                };
            Route {
                path: if exchange {
                    Path::Exchange
                } else {
                    Path::Direct
                },
                amplification,
                cached,
                block: cap(natural, size, max_block),
            }
        })
        .collect()
}

/// Decoded source bytes per array byte on the direct path, and the decoded
/// bytes of the source chunks one unit touches.
fn amplification(a: &ArrayPlan, chunk: &[u64]) -> (f64, u64) {
    let us = a.unit_shape();
    let size = a.dtype.size() as u64;
    #[allow(clippy::cast_precision_loss)]
    let touched: f64 = us
        .iter()
        .zip(chunk)
        .zip(&a.shape)
        .map(|((&u, &c), &n)| {
            let u = u.min(n).max(1) as f64;
            let c = c.max(1) as f64;
            ((u + c - 1.0) / c).min((n.max(1) as f64 / c).ceil())
        })
        .product();
    let chunk_bytes = chunk.iter().product::<u64>().saturating_mul(size);
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let per_unit = (touched * chunk_bytes as f64) as u64;
    let array_bytes = a.shape.iter().product::<u64>().saturating_mul(size);
    if array_bytes == 0 {
        return (1.0, per_unit);
    }
    #[allow(clippy::cast_precision_loss)]
    let amp = a.num_units() as f64 * per_unit as f64 / array_bytes as f64;
    (amp.max(1.0), per_unit)
}

/// `block` split along its outer dimensions until it holds at most `max`
/// bytes (elements of `size` bytes).
fn cap(mut block: Vec<u64>, size: u64, max: u64) -> Vec<u64> {
    for d in 0..block.len() {
        let bytes = block.iter().product::<u64>().saturating_mul(size);
        if bytes <= max {
            break;
        }
        let other = (bytes / block[d].max(1)).max(1);
        block[d] = (max / other).max(1);
    }
    block
}

impl Exchange {
    /// The exchange plan for the arrays of `plan` that `routes` send down
    /// the exchange path, on `ranks` ranks with `sizing`, for the units not
    /// `done` (a resumed run), an append from `append_from`.
    ///
    /// # Errors
    /// The path of an array whose single unit exceeds the round budget
    /// (the caller turns it into a configuration error).
    pub fn new(
        sources: &[VarSource],
        plan: &Plan,
        routes: Vec<Route>,
        ranks: usize,
        sizing: Sizing,
        append_from: Option<u64>,
        done: impl Fn(u64) -> bool,
    ) -> Result<Self, (String, u64)> {
        let ranks = ranks.max(1);
        let axes: Vec<Option<usize>> = plan
            .arrays
            .iter()
            .map(|a| sources.get(a.var).and_then(|s| s.axis))
            .collect();
        let cuts = plan
            .arrays
            .iter()
            .zip(&routes)
            .map(|(a, r)| match r.path {
                Path::Direct => Vec::new(),
                Path::Exchange => block_cuts(sources, a, &r.block),
            })
            .collect();
        let mut x = Self {
            routes,
            rounds: Vec::new(),
            ranks,
            sizing,
            append_from,
            axes,
            cuts,
        };
        for (i, a) in plan.arrays.iter().enumerate() {
            if x.routes[i].path != Path::Exchange {
                continue;
            }
            let full = a
                .unit_shape()
                .iter()
                .product::<u64>()
                .saturating_mul(a.dtype.size() as u64);
            if full > sizing.round_bytes {
                return Err((a.path.clone(), full));
            }
            let pending = |k: u64| !done(a.first_unit + k);
            for units in x.round_ranges(a, i, full, &pending) {
                if let Some(r) = x.round(plan, i, units, &pending) {
                    x.rounds.push(r);
                }
            }
        }
        Ok(x)
    }

    /// Whether any array takes the exchange path.
    pub fn any(&self) -> bool {
        self.routes.iter().any(|r| r.path == Path::Exchange)
    }

    /// Whether array `i` takes the exchange path.
    pub fn is_exchanged(&self, i: usize) -> bool {
        self.routes.get(i).is_some_and(|r| r.path == Path::Exchange)
    }

    /// The paths of the arrays of `plan` that take the exchange path.
    pub fn exchanged_paths(&self, plan: &Plan) -> Vec<String> {
        plan.arrays
            .iter()
            .enumerate()
            .filter(|(i, _)| self.is_exchanged(*i))
            .map(|(_, a)| a.path.clone())
            .collect()
    }

    /// The part of unit `k` of array `i` (`a`) that the inputs give: the
    /// unit's region, from the old end on for a unit an append shares with
    /// the store.
    pub fn needed(&self, a: &ArrayPlan, i: usize, k: u64) -> Block {
        let (mut start, mut count) = a.unit_region(&a.unit_indices(k));
        if let (Some(old), Some(Some(ax))) = (self.append_from, self.axes.get(i)) {
            if start[*ax] < old {
                let end = start[*ax] + count[*ax];
                count[*ax] = end.saturating_sub(old);
                start[*ax] = old.min(end);
            }
        }
        Block { start, count }
    }

    /// Whether unit `k` of array `i` starts before the old end of an
    /// append (its first part is read back from the store).
    pub fn shares_with_store(&self, a: &ArrayPlan, i: usize, k: u64) -> bool {
        match (self.append_from, self.axes.get(i)) {
            (Some(old), Some(Some(ax))) => a.unit_region(&a.unit_indices(k)).0[*ax] < old,
            _ => false,
        }
    }

    /// The position of the concatenation dimension of array `i`.
    pub fn axis(&self, i: usize) -> Option<usize> {
        self.axes.get(i).copied().flatten()
    }

    /// The unit ranges of the rounds of array `i`: whole slabs of the unit
    /// grid at the outermost level where one slab fits the combined budget,
    /// as many consecutive slabs per round as fit.
    fn round_ranges(
        &self,
        a: &ArrayPlan,
        i: usize,
        full: u64,
        pending: &impl Fn(u64) -> bool,
    ) -> Vec<Range<u64>> {
        let r = self.ranks as u64;
        // Units are whole on one rank: a rank's share may exceed an equal
        // split by up to one unit.
        let capacity = if r == 1 {
            self.sizing.round_bytes
        } else {
            (r * self.sizing.round_bytes.saturating_sub(full)).max(full)
        };
        let n = a.num_units();
        // The slab (units sharing their outer grid indices) of each level.
        let slab = (0..=a.grid.len())
            .map(|l| a.grid[l..].iter().product::<u64>().max(1))
            .find(|&s| s.saturating_mul(full) <= capacity)
            .unwrap_or(1);
        let weight = |k: u64| {
            if pending(k) {
                self.needed(a, i, k).len() * a.dtype.size() as u64
            } else {
                0
            }
        };
        let mut out = Vec::new();
        let (mut lo, mut bytes) = (0u64, 0u64);
        let mut k = 0;
        while k < n {
            let end = (k + slab).min(n);
            let w: u64 = (k..end).map(weight).sum();
            if k > lo && bytes + w > capacity {
                out.push(lo..k);
                lo = k;
                bytes = 0;
            }
            bytes += w;
            k = end;
        }
        if lo < n {
            out.push(lo..n);
        }
        out
    }

    /// The round of `units` of array `i`: owners, blocks, readers, steps.
    /// `None` when all its units are done.
    fn round(
        &self,
        plan: &Plan,
        i: usize,
        units: Range<u64>,
        pending: &impl Fn(u64) -> bool,
    ) -> Option<Round> {
        let a = &plan.arrays[i];
        let size = a.dtype.size() as u64;
        let weights: Vec<u64> = units
            .clone()
            .map(|k| {
                if pending(k) {
                    self.needed(a, i, k).len() * size
                } else {
                    0
                }
            })
            .collect();
        if weights.iter().all(|&w| w == 0) {
            return None;
        }
        let owners: Vec<u64> = split(&weights, self.ranks)
            .into_iter()
            .map(|b| units.start + b as u64)
            .collect();
        let blocks = self.blocks_of(a, i, &units, &owners, pending);
        let block_bytes: Vec<u64> = blocks.iter().map(|b| b.len() * size).collect();
        let readers = split(&block_bytes, self.ranks);
        let largest = block_bytes.iter().copied().max().unwrap_or(1).max(1);
        let batch = usize::try_from(self.sizing.step_bytes / largest)
            .unwrap_or(usize::MAX)
            .max(1);
        let steps = (0..self.ranks)
            .map(|r| (readers[r + 1] - readers[r]).div_ceil(batch))
            .max()
            .unwrap_or(0);
        Some(Round {
            array: i,
            units,
            owners,
            blocks,
            readers,
            batch,
            steps,
        })
    }

    /// The blocks that feed at least one pending unit of `units`, in C
    /// order: those of the bounding box of what the units need.
    fn blocks_of(
        &self,
        a: &ArrayPlan,
        i: usize,
        units: &Range<u64>,
        owners: &[u64],
        pending: &impl Fn(u64) -> bool,
    ) -> Vec<Block> {
        let ndim = a.shape.len();
        let mut lo = vec![u64::MAX; ndim];
        let mut hi = vec![0u64; ndim];
        for k in units.clone().filter(|&k| pending(k)) {
            let b = self.needed(a, i, k);
            for d in 0..ndim {
                if b.count[d] > 0 {
                    lo[d] = lo[d].min(b.start[d]);
                    hi[d] = hi[d].max(b.start[d] + b.count[d]);
                }
            }
        }
        let cuts = &self.cuts[i];
        let ranges: Vec<Range<usize>> = (0..ndim)
            .map(|d| {
                let c = &cuts[d];
                if lo[d] >= hi[d] {
                    return 0..0;
                }
                // Block j is [c[j], c[j + 1]).
                let first = c.partition_point(|&x| x <= lo[d]).saturating_sub(1);
                let last = c.partition_point(|&x| x < hi[d]).min(c.len() - 1);
                first..last.max(first)
            })
            .collect();
        let grid: Vec<u64> = ranges.iter().map(|r| r.len() as u64).collect();
        let mut blocks = Vec::new();
        for b in 0..grid.iter().product::<u64>() {
            let idx = unravel(b, &grid);
            let (mut start, mut count) = (Vec::with_capacity(ndim), Vec::with_capacity(ndim));
            for d in 0..ndim {
                let j = ranges[d].start + usize::try_from(idx[d]).unwrap_or(0);
                start.push(cuts[d][j]);
                count.push(cuts[d][j + 1] - cuts[d][j]);
            }
            let block = Block { start, count };
            let mut feeds = false;
            self.for_each_piece(a, i, units, owners, &block, pending, None, |_| {
                feeds = true;
                false
            });
            if feeds {
                blocks.push(block);
            }
        }
        blocks
    }

    /// Calls `f` with every piece of `block` that a pending unit of
    /// `units` needs, in C order of the units, until `f` returns false.
    #[allow(clippy::too_many_arguments)] // the round's parts, before the round exists
    fn for_each_piece(
        &self,
        a: &ArrayPlan,
        i: usize,
        units: &Range<u64>,
        owners: &[u64],
        block: &Block,
        pending: &impl Fn(u64) -> bool,
        only: Option<usize>,
        mut f: impl FnMut(Piece) -> bool,
    ) {
        let us = a.unit_shape();
        let ndim = a.shape.len();
        // The grid indices (from `lo`) of the units the block overlaps.
        let mut first = Vec::with_capacity(ndim);
        let mut ext = Vec::with_capacity(ndim);
        for d in 0..ndim {
            if block.count[d] == 0 {
                return;
            }
            let u = us[d].max(1);
            let g0 = (block.start[d] / u).max(a.lo[d]);
            let g1 =
                ((block.start[d] + block.count[d] - 1) / u).min(a.lo[d] + a.grid[d].max(1) - 1);
            if g1 < g0 {
                return;
            }
            first.push(g0 - a.lo[d]);
            ext.push(g1 - g0 + 1);
        }
        let n: u64 = ext.iter().product();
        // The units the block overlaps, in C order: the box of them, or for
        // one owner, its own range when that is shorter (at many ranks a
        // rank owns a small part of what a block feeds).
        let range = only.map(|o| {
            let lo = owners[o].max(units.start);
            lo..owners[o + 1].min(units.end).max(lo)
        });
        let by_range = range.as_ref().is_some_and(|r| r.end - r.start < n);
        let count = if by_range {
            range.as_ref().map_or(0, |r| r.end - r.start)
        } else {
            n
        };
        for j in 0..count {
            let k = if by_range {
                let k = range.as_ref().map_or(0, |r| r.start) + j;
                let idx = unravel(k, &a.grid);
                let inside = idx
                    .iter()
                    .zip(&first)
                    .zip(&ext)
                    .all(|((i, f), e)| *i >= *f && *i < f + e);
                if !inside {
                    continue;
                }
                k
            } else {
                let off = unravel(j, &ext);
                off.iter()
                    .zip(&first)
                    .zip(&a.grid)
                    .fold(0u64, |acc, ((o, f), g)| acc * g.max(&1) + o + f)
            };
            if !units.contains(&k) || !pending(k) {
                continue;
            }
            let owner = owners
                .partition_point(|&b| b <= k)
                .saturating_sub(1)
                .min(self.ranks - 1);
            if only.is_some_and(|o| o != owner) {
                continue;
            }
            let need = self.needed(a, i, k);
            let Some(region) = intersect(&need, block) else {
                continue;
            };
            if !f(Piece {
                unit: k,
                owner,
                region,
            }) {
                return;
            }
        }
    }

    /// Calls `f` with every piece of block `b` of `round` (only those
    /// for rank `only`, when given), in the order both the reading rank and
    /// the owners use.
    pub fn pieces(
        &self,
        plan: &Plan,
        round: &Round,
        b: usize,
        pending: &impl Fn(u64) -> bool,
        only: Option<usize>,
        mut f: impl FnMut(Piece),
    ) {
        let a = &plan.arrays[round.array];
        let Some(block) = round.blocks.get(b) else {
            return;
        };
        self.for_each_piece(
            a,
            round.array,
            &round.units,
            &round.owners,
            block,
            pending,
            only,
            |p| {
                f(p);
                true
            },
        );
    }

    /// Most reads of one block over the rounds (1: every source byte is
    /// decoded once).
    pub fn passes(&self) -> u32 {
        let mut reads: HashMap<(usize, &[u64]), u32> = HashMap::new();
        for r in &self.rounds {
            for b in &r.blocks {
                *reads.entry((r.array, b.start.as_slice())).or_default() += 1;
            }
        }
        reads.values().copied().max().unwrap_or(0)
    }

    /// What every rank decodes, sends, receives and holds (a pass over
    /// every piece: for `plan` and the report, not for the run itself).
    pub fn traffic(&self, plan: &Plan, done: impl Fn(u64) -> bool) -> Traffic {
        let r = self.ranks;
        let mut t = Traffic {
            decoded: vec![0; r],
            sent: vec![0; r],
            received: vec![0; r],
            written: vec![0; r],
            round_peak: vec![0; r],
            step_peak: vec![0; r],
            passes: 0,
            messages: 0,
            rounds: self.rounds.len(),
            steps: self.rounds.iter().map(|x| x.steps).sum(),
        };
        for round in &self.rounds {
            let a = &plan.arrays[round.array];
            let size = a.dtype.size() as u64;
            let pending = |k: u64| !done(a.first_unit + k);
            for (q, peak) in t.round_peak.iter_mut().enumerate() {
                let held: u64 = round
                    .units_of(q)
                    .filter(|&k| pending(k))
                    .map(|k| a.unit_region(&a.unit_indices(k)).1.iter().product::<u64>() * size)
                    .sum();
                t.written[q] += held;
                *peak = (*peak).max(held);
            }
            // Per step and rank: its decoded blocks, and all it holds while
            // exchanging (those blocks, send and receive buffers).
            let mut steps: Vec<(Vec<u64>, Vec<u64>)> = Vec::with_capacity(round.steps);
            for s in 0..round.steps {
                let mut recv = vec![0u64; r];
                let mut held = vec![0u64; r];
                let mut decoded = vec![0u64; r];
                let mut pairs = vec![false; r * r];
                for q in 0..r {
                    for b in round.step_blocks(q, s) {
                        let block = &round.blocks[b];
                        let n = block.len() * size;
                        t.decoded[q] += n;
                        decoded[q] += n;
                        held[q] += n;
                        self.pieces(plan, round, b, &pending, None, |p| {
                            if p.owner != q {
                                let n = p.region.len() * size;
                                t.sent[q] += n;
                                held[q] += n;
                                recv[p.owner] += n;
                                pairs[q * r + p.owner] = true;
                            }
                        });
                    }
                }
                for q in 0..r {
                    t.received[q] += recv[q];
                    held[q] += recv[q];
                }
                t.messages += pairs.iter().filter(|&&p| p).count() as u64;
                steps.push((decoded, held));
            }
            // The next step of the round decodes while a step is exchanged.
            for (s, (_, held)) in steps.iter().enumerate() {
                let next = steps.get(s + 1).map(|(d, _)| d.as_slice());
                for q in 0..r {
                    let ahead = next.map_or(0, |d| d[q]);
                    t.step_peak[q] = t.step_peak[q].max(held[q] + ahead);
                }
            }
        }
        t.passes = self.passes();
        t
    }
}

/// What the exchange moves, per rank.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Traffic {
    /// Decoded source bytes.
    pub decoded: Vec<u64>,
    /// Bytes sent to other ranks.
    pub sent: Vec<u64>,
    /// Bytes received from other ranks.
    pub received: Vec<u64>,
    /// Uncompressed bytes of the units written.
    pub written: Vec<u64>,
    /// Largest round's assembled units.
    pub round_peak: Vec<u64>,
    /// Largest step's decoded blocks, send and receive buffers, with the
    /// next step's decoded blocks (decoded meanwhile).
    pub step_peak: Vec<u64>,
    /// Most reads of one block (1: every source byte decoded once).
    pub passes: u32,
    /// Point-to-point messages with data (pairs of ranks per step).
    pub messages: u64,
    /// Rounds.
    pub rounds: usize,
    /// Steps.
    pub steps: usize,
}

/// Max over mean of `v` (1.0 for an even or empty split).
pub fn imbalance(v: &[u64]) -> f64 {
    let total: u64 = v.iter().sum();
    if total == 0 || v.is_empty() {
        return 1.0;
    }
    #[allow(clippy::cast_precision_loss)]
    let mean = total as f64 / v.len() as f64;
    #[allow(clippy::cast_precision_loss)]
    let max = v.iter().copied().max().unwrap_or(0) as f64;
    max / mean
}

/// The cut points of the read blocks of `a` along each dimension: source
/// chunk boundaries (each file's own along the concatenation dimension),
/// every `block` elements.
fn block_cuts(sources: &[VarSource], a: &ArrayPlan, block: &[u64]) -> Vec<Vec<u64>> {
    let src = sources.get(a.var);
    let axis = src.and_then(|s| s.axis);
    (0..a.shape.len())
        .map(|d| {
            let n = a.shape[d];
            let step = block.get(d).copied().unwrap_or(n).max(1);
            let mut cuts = vec![0u64];
            match (axis, src) {
                (Some(k), Some(s)) if k == d => {
                    for seg in s.axis_segments() {
                        let end = (seg.start + seg.len).min(n);
                        let mut x = seg.start;
                        while x < end {
                            cuts.push(x);
                            x += step;
                        }
                        cuts.push(end);
                    }
                }
                _ => {
                    let mut x = step;
                    while x < n {
                        cuts.push(x);
                        x += step;
                    }
                }
            }
            cuts.push(n);
            cuts.sort_unstable();
            cuts.dedup();
            cuts
        })
        .collect()
}

/// Cuts `weights` into `ranks` contiguous ranges of equal weight (an item
/// goes to the rank whose share holds the midpoint of its weight); returns
/// the `ranks + 1` bounds.
fn split(weights: &[u64], ranks: usize) -> Vec<usize> {
    let total: u128 = weights.iter().map(|&w| u128::from(w)).sum();
    let r = ranks.max(1) as u128;
    let mut bounds = vec![weights.len(); ranks + 1];
    bounds[0] = 0;
    let mut current = 0usize;
    let mut cum = 0u128;
    for (i, &w) in weights.iter().enumerate() {
        let w = u128::from(w);
        let owner = if total == 0 {
            (i as u128 * r / weights.len().max(1) as u128) as usize
        } else {
            usize::try_from((2 * cum + w) * r / (2 * total)).unwrap_or(ranks - 1)
        }
        .min(ranks - 1);
        while current < owner {
            current += 1;
            bounds[current] = i;
        }
        cum += w;
    }
    bounds
}

/// The common part of two boxes, if any.
fn intersect(a: &Block, b: &Block) -> Option<Block> {
    let mut start = Vec::with_capacity(a.start.len());
    let mut count = Vec::with_capacity(a.start.len());
    for d in 0..a.start.len() {
        let lo = a.start[d].max(b.start[d]);
        let hi = (a.start[d] + a.count[d]).min(b.start[d] + b.count[d]);
        if hi <= lo {
            return None;
        }
        start.push(lo);
        count.push(hi - lo);
    }
    Some(Block { start, count })
}

#[cfg(test)]
mod tests;
