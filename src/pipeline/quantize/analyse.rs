//! `--keepbits auto`: the bits that hold a variable's real information,
//! from one read pass over its values.
//!
//! Each rank reads a contiguous run of the variable's outermost index (one
//! more index at its end, for the pairs that cross into the next rank's),
//! in slabs of whole inner extents, and counts the bit pairs of adjacent
//! values along every dimension ([`count`]). The counts of all ranks add
//! up to the counts of the whole array, so the result does not depend on
//! the number of ranks; [`decide`] turns the summed counts into the
//! information per bit and the bits kept.
//!
//! NaN, the fill value, `missing_value` and netCDF's default fill are
//! masks, not values: a pair with one of them is not counted.

use serde::{Deserialize, Serialize};

use super::choose::Choice;
use crate::cli::config::Keep;
use crate::model::bitinfo::{self, BitSum, Counter, PairCounts};
use crate::model::bitround::{mantissa_bits, masks};
use crate::model::schema::{DType, Var};
use crate::pipeline::combine::Dataset;
use crate::pipeline::read::error::ReadError;
use crate::pipeline::read::{Reader, Values};

/// The confidence of the significance test of the information.
pub const CONFIDENCE: f64 = 0.99;

/// Bytes of values one slab holds at most (a slab is at least one index
/// of the outermost dimension). A slab is held twice more as bit patterns
/// (`u64`) while it is counted.
const SLAB_BYTES: u64 = 8 << 20;

/// Decoded source chunks kept between slabs (a source chunk that spans
/// several slabs is decoded once).
const CACHE_BYTES: usize = 32 << 20;

/// The information of one variable along one dimension.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Along {
    /// The dimension.
    pub dim: String,
    /// The bit-pair counts of adjacent values along it.
    pub counts: PairCounts,
    /// The information of each bit (most significant first), after the
    /// significance test.
    pub info: Vec<f64>,
    /// The mantissa bits that hold the level of it.
    pub keepbits: u32,
}

/// What the data says of one variable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    /// Index in [`crate::model::schema::Schema::vars`].
    pub var: usize,
    /// Its path.
    pub path: String,
    /// Its type.
    pub dtype: DType,
    /// The fraction of the information kept.
    pub level: f64,
    /// Along each dimension of at least two values.
    pub along: Vec<Along>,
    /// The mantissa bits kept: the most of any dimension's (every bit when
    /// no dimension has pairs to count).
    pub keepbits: u32,
}

/// Bits per value of `dtype` (a float type).
fn width(dtype: DType) -> usize {
    if dtype == DType::F64 {
        64
    } else {
        32
    }
}

/// Two runs of a block's values, and which are values.
type Pair<'a> = (&'a [u64], &'a [u64], Option<(&'a [bool], &'a [bool])>);

/// A block of values as signed-exponent bit patterns, with which are
/// values (`None`: all).
struct Block {
    bits: Vec<u64>,
    valid: Option<Vec<bool>>,
}

impl Block {
    fn new(bytes: &[u8], single: bool, masks: &[u64]) -> Self {
        let raw: Vec<u64> = if single {
            bytes
                .chunks_exact(4)
                .map(|c| u64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect()
        } else {
            bytes
                .chunks_exact(8)
                .map(|c| {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(c);
                    u64::from_le_bytes(a)
                })
                .collect()
        };
        let nan = |x: u64| {
            if single {
                x & 0x7f80_0000 == 0x7f80_0000 && x & 0x007f_ffff != 0
            } else {
                x & 0x7ff0_0000_0000_0000 == 0x7ff0_0000_0000_0000 && x & 0x000f_ffff_ffff_ffff != 0
            }
        };
        let masked = |x: u64| nan(x) || masks.contains(&x);
        let any = raw.iter().any(|&x| masked(x));
        let bits = if single {
            raw.iter()
                .map(|&x| bitinfo::signed_exponent_of::<32, 23, 127>(x))
                .collect()
        } else {
            raw.iter()
                .map(|&x| bitinfo::signed_exponent_of::<64, 52, 1023>(x))
                .collect()
        };
        let valid = any.then(|| raw.iter().map(|&x| !masked(x)).collect());
        Self { bits, valid }
    }

    fn pair(&self, a: usize, b: usize, len: usize) -> Pair<'_> {
        (
            &self.bits[a..a + len],
            &self.bits[b..b + len],
            self.valid
                .as_ref()
                .map(|v| (&v[a..a + len], &v[b..b + len])),
        )
    }
}

/// Counts the pairs inside `block` (shape `shape`, C order, `bits`-bit
/// values) along every dimension into `counters` (one per dimension).
/// Without masks, the bits of the pairs' first and second values are the
/// block's less one boundary slice, so only the both-set bits are counted
/// pair by pair.
fn count_block(counters: &mut [Counter], block: &Block, shape: &[usize], bits: usize) {
    // The bits of each outermost index, and of the whole block.
    let row: usize = shape[1..].iter().product();
    let rows: Option<Vec<Vec<u64>>> = block.valid.is_none().then(|| {
        (block.bits.chunks(row.max(1)))
            .map(|r| bitinfo::ones(r, bits))
            .collect()
    });
    let all: Option<Vec<u64>> = rows.as_ref().map(|rows| {
        let mut sum = vec![0u64; bits];
        for r in rows {
            for (s, x) in sum.iter_mut().zip(r) {
                *s += x;
            }
        }
        sum
    });
    for (d, counter) in counters.iter_mut().enumerate() {
        let n = shape[d];
        if n < 2 {
            continue;
        }
        let outer: usize = shape[..d].iter().product();
        let stride: usize = shape[d + 1..].iter().product();
        let len = (n - 1) * stride;
        let Some(all) = &all else {
            for o in 0..outer {
                let base = o * n * stride;
                let (a, b, v) = block.pair(base, base + stride, len);
                counter.add(a, b, v);
            }
            continue;
        };
        if let (0, Some(rows)) = (d, &rows) {
            counter.add_both(&block.bits[..len], &block.bits[stride..stride + len]);
            let (head, tail) = (&rows[0], &rows[rows.len() - 1]);
            counter.add_ones((all, tail), (all, head));
            continue;
        }
        let (mut head, mut tail) = (BitSum::new(bits), BitSum::new(bits));
        for o in 0..outer {
            let base = o * n * stride;
            counter.add_both(
                &block.bits[base..base + len],
                &block.bits[base + stride..base + stride + len],
            );
            head.extend(&block.bits[base..base + stride]);
            tail.extend(&block.bits[base + len..base + len + stride]);
        }
        let (head, tail) = (head.finish(), tail.finish());
        counter.add_ones((all, &tail), (all, &head));
    }
}

fn to_usize(x: u64) -> usize {
    usize::try_from(x).unwrap_or(usize::MAX)
}

/// The bit-pair counts of this rank's share (`rank` of `ranks`) of each
/// variable of `choices`: one [`PairCounts`] per dimension of each.
///
/// # Errors
/// A [`ReadError`] naming the file and variable.
pub fn count(
    ds: &Dataset,
    choices: &[&Choice],
    rank: usize,
    ranks: usize,
) -> Result<Vec<Vec<PairCounts>>, ReadError> {
    let mut reader = Reader::new(ds);
    reader.set_cache_limit(CACHE_BYTES);
    let vars = ds.schema.vars();
    let mut out = Vec::with_capacity(choices.len());
    for c in choices {
        let Some(var) = vars.get(c.var) else {
            out.push(Vec::new());
            continue;
        };
        out.push(count_var(&mut reader, c.var, var, rank, ranks)?);
    }
    Ok(out)
}

fn count_var(
    reader: &mut Reader<'_>,
    index: usize,
    var: &Var,
    rank: usize,
    ranks: usize,
) -> Result<Vec<PairCounts>, ReadError> {
    let bits = width(var.dtype);
    let single = bits == 32;
    let shape = &var.shape;
    let mut counters: Vec<Counter> = shape.iter().map(|_| Counter::new(bits)).collect();
    let Some((&n0, inner)) = shape.split_first() else {
        return Ok(Vec::new());
    };
    let masks: Vec<u64> = masks(var)
        .iter()
        .filter_map(|b| match b.len() {
            4 => Some(u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))),
            8 => <[u8; 8]>::try_from(b.as_slice())
                .ok()
                .map(u64::from_le_bytes),
            _ => None,
        })
        .collect();
    let (r, n) = (rank as u64, ranks.max(1) as u64);
    let lo = n0 * r / n;
    let hi = n0 * (r + 1) / n;
    let row: u64 = inner.iter().product();
    let size = var.dtype.size() as u64;
    let rows_per_slab = (SLAB_BYTES / (row * size).max(1)).max(1);
    let inner_us: Vec<usize> = inner.iter().map(|&x| to_usize(x)).collect();
    let read = |reader: &mut Reader<'_>, s: u64, k: u64| -> Result<Block, ReadError> {
        let mut start = vec![0; shape.len()];
        let mut count = shape.clone();
        start[0] = s;
        count[0] = k;
        let values = reader.prepare(index, &start, &count)?.finish()?;
        let bytes = match values {
            Values::Fixed(b) => b,
            Values::Strings(_) => Vec::new(),
        };
        Ok(Block::new(&bytes, single, &masks))
    };
    let row_len = to_usize(row);
    let mut last: Option<Block> = None;
    let mut s = lo;
    while s < hi {
        let k = rows_per_slab.min(hi - s);
        let block = read(reader, s, k)?;
        if let (Some(prev), Some(c0)) = (&last, counters.first_mut()) {
            carry(c0, prev, &block, row_len);
        }
        let mut bshape = vec![to_usize(k)];
        bshape.extend(&inner_us);
        count_block(&mut counters, &block, &bshape, bits);
        last = Some(last_row(block, row_len));
        s += k;
    }
    // The pairs into the next rank's first index.
    if let (Some(prev), true) = (&last, hi < n0) {
        let next = read(reader, hi, 1)?;
        if let Some(c0) = counters.first_mut() {
            carry(c0, prev, &next, row_len);
        }
    }
    Ok(counters.into_iter().map(Counter::finish).collect())
}

/// Counts the pairs of `prev` (one index of the outermost dimension) with
/// the first index of `next` along the outermost dimension.
fn carry(c0: &mut Counter, prev: &Block, next: &Block, row: usize) {
    let valid = match (&prev.valid, &next.valid) {
        (None, None) => None,
        (a, b) => Some((
            a.as_ref()
                .map_or_else(|| vec![true; row], |v| v[..row].to_vec()),
            b.as_ref()
                .map_or_else(|| vec![true; row], |v| v[..row].to_vec()),
        )),
    };
    c0.add(
        &prev.bits[..row],
        &next.bits[..row],
        valid.as_ref().map(|(a, b)| (a.as_slice(), b.as_slice())),
    );
}

/// The last outermost index of `block`.
fn last_row(block: Block, row: usize) -> Block {
    let from = block.bits.len().saturating_sub(row);
    Block {
        bits: block.bits[from..].to_vec(),
        valid: block.valid.map(|v| v[from..].to_vec()),
    }
}

/// The counts of every choice as words for one reduction.
pub fn to_words(counts: &[Vec<PairCounts>]) -> Vec<u64> {
    counts
        .iter()
        .flatten()
        .flat_map(PairCounts::to_words)
        .collect()
}

/// The counts of [`to_words`]'s words (`None`: the words do not fit).
pub fn from_words(
    ds: &Dataset,
    choices: &[&Choice],
    words: &[u64],
) -> Option<Vec<Vec<PairCounts>>> {
    let vars = ds.schema.vars();
    let mut at = 0;
    let mut out = Vec::with_capacity(choices.len());
    for c in choices {
        let v = vars.get(c.var)?;
        let bits = width(v.dtype);
        let n = 1 + 3 * bits;
        let mut per = Vec::with_capacity(v.shape.len());
        for _ in &v.shape {
            per.push(PairCounts::from_words(bits, words.get(at..at + n)?)?);
            at += n;
        }
        out.push(per);
    }
    (at == words.len()).then_some(out)
}

/// The information and the bits kept of each choice, from the counts of
/// the whole arrays.
pub fn decide(ds: &Dataset, choices: &[&Choice], totals: Vec<Vec<PairCounts>>) -> Vec<Analysis> {
    let vars = ds.schema.vars();
    choices
        .iter()
        .zip(totals)
        .filter_map(|(c, counts)| {
            let v = vars.get(c.var)?;
            let level = match c.keep {
                Keep::Auto(l) => l,
                Keep::Bits(_) => 1.0,
            };
            let along: Vec<Along> = (v.dims.iter().zip(counts))
                .filter(|(_, k)| k.pairs > 0)
                .map(|(dim, counts)| {
                    let info = counts.information(CONFIDENCE);
                    let keepbits = bitinfo::keepbits(&info, v.dtype, level);
                    Along {
                        dim: dim.clone(),
                        counts,
                        info,
                        keepbits,
                    }
                })
                .collect();
            let nmant = mantissa_bits(v.dtype).unwrap_or(0);
            let keepbits = along.iter().map(|a| a.keepbits).max().unwrap_or(nmant);
            Some(Analysis {
                var: c.var,
                path: c.path.clone(),
                dtype: v.dtype,
                level,
                along,
                keepbits,
            })
        })
        .collect()
}
