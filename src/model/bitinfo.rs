//! Bitwise real information (Klöwer et al., Nature Computational Science
//! 1, 713–724, 2021), and the mantissa bits that hold a given fraction of
//! it (pure).
//!
//! * Values are taken as bit patterns after xbitinfo's `signed_exponent`
//!   transform (sign, exponent sign, exponent magnitude, mantissa).
//! * For every pair of adjacent values along one dimension, and every bit
//!   position, the pair of bits is counted ([`PairCounts`]): these counts
//!   add up across blocks, ranks and files, so they are gathered where the
//!   values are read and summed with one reduction.
//! * The information of a bit is the mutual information of the bit in
//!   adjacent values; information at or below what a random bit shows
//!   with the given confidence (BitInformation.jl's binomial test) is 0.
//! * The bits kept are xbitinfo's `get_keepbits`: information below 1.5 ×
//!   the largest of the last four bits' is left out, and the mantissa bits
//!   up to the one where the cumulative information exceeds the level are
//!   kept.

use serde::{Deserialize, Serialize};

use crate::model::schema::DType;

/// Bit-pair counts of one variable along one dimension: per bit position
/// (0 = the most significant), how often the first value of a pair has it
/// set, the second, and both.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairCounts {
    /// Pairs counted.
    pub pairs: u64,
    /// The first value's bit is 1.
    pub first: Vec<u64>,
    /// The second value's bit is 1.
    pub second: Vec<u64>,
    /// Both are 1.
    pub both: Vec<u64>,
}

impl PairCounts {
    /// No pairs yet, for `bits`-bit values.
    pub fn new(bits: usize) -> Self {
        Self {
            pairs: 0,
            first: vec![0; bits],
            second: vec![0; bits],
            both: vec![0; bits],
        }
    }

    /// Bits per value.
    pub fn bits(&self) -> usize {
        self.first.len()
    }

    /// Adds `other`'s counts (of values of the same width).
    pub fn add(&mut self, other: &Self) {
        self.pairs += other.pairs;
        for (a, b) in [
            (&mut self.first, &other.first),
            (&mut self.second, &other.second),
            (&mut self.both, &other.both),
        ] {
            for (x, y) in a.iter_mut().zip(b) {
                *x += y;
            }
        }
    }

    /// The counts as 64-bit words (for a reduction): pairs, then the three
    /// per-bit counts.
    pub fn to_words(&self) -> Vec<u64> {
        let mut w = vec![self.pairs];
        w.extend(&self.first);
        w.extend(&self.second);
        w.extend(&self.both);
        w
    }

    /// The counts of `bits`-bit values from [`Self::to_words`]'s words.
    pub fn from_words(bits: usize, w: &[u64]) -> Option<Self> {
        if w.len() != 1 + 3 * bits {
            return None;
        }
        Some(Self {
            pairs: w[0],
            first: w[1..=bits].to_vec(),
            second: w[1 + bits..=2 * bits].to_vec(),
            both: w[1 + 2 * bits..].to_vec(),
        })
    }

    /// The joint counts of bit `b`: `[n00, n01, n10, n11]` (first value's
    /// bit, second value's bit).
    pub fn joint(&self, b: usize) -> [u64; 4] {
        let n11 = self.both[b];
        let n10 = self.first[b] - n11;
        let n01 = self.second[b] - n11;
        [self.pairs - n11 - n10 - n01, n01, n10, n11]
    }

    /// The mutual information (bits) of each bit position in adjacent
    /// values, with the information of a random bit at `confidence` set to
    /// zero.
    pub fn information(&self, confidence: f64) -> Vec<f64> {
        let n = self.pairs;
        let free = free_entropy(n, confidence);
        (0..self.bits())
            .map(|b| {
                let mi = mutual_information(self.joint(b), n);
                if mi <= free {
                    0.0
                } else {
                    mi
                }
            })
            .collect()
    }
}

/// The mutual information (bits) of a 2×2 joint count table of `n` pairs.
pub fn mutual_information(c: [u64; 4], n: u64) -> f64 {
    if n == 0 {
        return 0.0;
    }
    #[allow(clippy::cast_precision_loss)] // counts of values held in memory
    let p = c.map(|x| x as f64 / n as f64);
    let rows = [p[0] + p[1], p[2] + p[3]];
    let cols = [p[0] + p[2], p[1] + p[3]];
    let mut mi = 0.0;
    for (k, &pk) in p.iter().enumerate() {
        if pk > 0.0 {
            mi += pk * (pk / (rows[k / 2] * cols[k % 2])).log2();
        }
    }
    mi
}

/// The information a random bit shows in `n` pairs with probability
/// `confidence` (BitInformation.jl's `binom_free_entropy`): `1 - H(p)` with
/// `p = 1/2 + z / (2√n)`, `z` the normal quantile of `1 - (1-c)/2`.
pub fn free_entropy(n: u64, confidence: f64) -> f64 {
    if n == 0 {
        return 1.0;
    }
    #[allow(clippy::cast_precision_loss)]
    let p = (0.5 + normal_quantile(1.0 - (1.0 - confidence) / 2.0) / (2.0 * (n as f64).sqrt()))
        .min(1.0);
    let h = |x: f64| if x > 0.0 { -x * x.log2() } else { 0.0 };
    1.0 - (h(p) + h(1.0 - p))
}

/// The standard normal quantile of `p` (0 < p < 1), by Acklam's rational
/// approximation (relative error below 1.2e-9).
#[allow(clippy::unreadable_literal, clippy::excessive_precision)] // the published constants
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.383577518672690e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e1,
        1.615858368580409e2,
        -1.556989798598866e2,
        6.680131188771972e1,
        -1.328068155288572e1,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] = [
        7.784695709041462e-3,
        3.224671290700398e-1,
        2.445134137142996,
        3.754408661907416,
    ];
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// Sign and exponent bits of `dtype` (the bits before the mantissa).
pub fn leading_bits(dtype: DType) -> usize {
    match dtype {
        DType::F64 => 12,
        _ => 9,
    }
}

/// The mantissa bits that hold `level` of the information `info` of a
/// `dtype` variable (one value per bit, most significant first):
/// xbitinfo's `get_keepbits`. Every mantissa bit when `level >= 1` or when
/// there is no information to tell (constant values, too few pairs).
pub fn keepbits(info: &[f64], dtype: DType, level: f64) -> u32 {
    let nmant = crate::model::bitround::mantissa_bits(dtype).unwrap_or(0);
    if level >= 1.0 || info.is_empty() {
        return nmant;
    }
    let tail = info[info.len().saturating_sub(4)..]
        .iter()
        .fold(0.0f64, |m, &x| m.max(x));
    let kept: Vec<f64> = info
        .iter()
        .map(|&x| if x > 1.5 * tail { x } else { 0.0 })
        .collect();
    let total: f64 = kept.iter().sum();
    if total <= 0.0 || !total.is_finite() {
        return nmant;
    }
    let mut sum = 0.0;
    let mut first = kept.len();
    for (i, x) in kept.iter().enumerate() {
        sum += x;
        if sum / total > level {
            first = i;
            break;
        }
    }
    let bits = (first + 1).saturating_sub(leading_bits(dtype));
    u32::try_from(bits).unwrap_or(nmant).min(nmant)
}

/// `SPREAD[v]`: byte `k` is bit `7 - k` of `v` (the bits of a byte, most
/// significant first, one per byte lane).
const SPREAD: [u64; 256] = {
    let mut t = [0u64; 256];
    let mut v = 0;
    while v < 256 {
        let mut k = 0;
        let mut w = 0u64;
        while k < 8 {
            w |= (((v >> (7 - k)) & 1) as u64) << (8 * k);
            k += 1;
        }
        t[v] = w;
        v += 1;
    }
    t
};

/// Adds the bits of the `N`-byte value `x` to the byte lanes (unrolled
/// for the two float widths).
#[inline]
fn spread_n<const N: usize>(lanes: &mut [u64; 8], x: u64) {
    for (j, lane) in lanes.iter_mut().enumerate().take(N) {
        *lane += SPREAD[((x >> (8 * (N - 1 - j))) & 0xff) as usize];
    }
}

/// Sums the bits of `bits`-bit patterns (each in the low bits of a `u64`)
/// per position, most significant first: byte-wide counters, one lane per
/// bit, added to the totals every 255 values.
#[derive(Debug, Clone)]
pub struct BitSum {
    nbytes: usize,
    lanes: [u64; 8],
    pending: u32,
    totals: Vec<u64>,
}

impl BitSum {
    /// Nothing summed yet, of `bits`-bit values (32 or 64).
    pub fn new(bits: usize) -> Self {
        Self {
            nbytes: bits / 8,
            lanes: [0; 8],
            pending: 0,
            totals: vec![0; bits],
        }
    }

    #[inline]
    fn spread(&mut self, x: u64) {
        let n = self.nbytes;
        for (j, lane) in self.lanes.iter_mut().enumerate().take(n) {
            *lane += SPREAD[((x >> (8 * (n - 1 - j))) & 0xff) as usize];
        }
    }

    fn flush(&mut self) {
        for (j, lane) in self.lanes.iter_mut().enumerate().take(self.nbytes) {
            for k in 0..8 {
                self.totals[8 * j + k] += (*lane >> (8 * k)) & 0xff;
            }
            *lane = 0;
        }
        self.pending = 0;
    }

    /// Adds one value.
    #[inline]
    pub fn push(&mut self, x: u64) {
        self.spread(x);
        self.pending += 1;
        if self.pending == 255 {
            self.flush();
        }
    }

    /// Adds every value of `xs`.
    pub fn extend(&mut self, xs: &[u64]) {
        self.flush();
        for c in xs.chunks(255) {
            if self.nbytes == 4 {
                for &x in c {
                    spread_n::<4>(&mut self.lanes, x);
                }
            } else {
                for &x in c {
                    spread_n::<8>(&mut self.lanes, x);
                }
            }
            self.flush();
        }
    }

    /// Adds `a[i] & b[i]` for every `i`.
    pub fn extend_and(&mut self, a: &[u64], b: &[u64]) {
        self.flush();
        for (ca, cb) in a.chunks(255).zip(b.chunks(255)) {
            if self.nbytes == 4 {
                for (&x, &y) in ca.iter().zip(cb) {
                    spread_n::<4>(&mut self.lanes, x & y);
                }
            } else {
                for (&x, &y) in ca.iter().zip(cb) {
                    spread_n::<8>(&mut self.lanes, x & y);
                }
            }
            self.flush();
        }
    }

    /// Adds per-position sums.
    pub fn add(&mut self, sums: &[u64]) {
        for (t, s) in self.totals.iter_mut().zip(sums) {
            *t += s;
        }
    }

    /// Adds `a - b` per position (`b` at most `a`).
    pub fn add_difference(&mut self, a: &[u64], b: &[u64]) {
        for ((t, x), y) in self.totals.iter_mut().zip(a).zip(b) {
            *t += x - y;
        }
    }

    /// The sums.
    pub fn finish(mut self) -> Vec<u64> {
        self.flush();
        self.totals
    }
}

/// The per-position sums of the bits of `xs` (`bits`-bit values).
pub fn ones(xs: &[u64], bits: usize) -> Vec<u64> {
    let mut s = BitSum::new(bits);
    s.extend(xs);
    s.finish()
}

/// Counts bit pairs of `bits`-bit patterns into a [`PairCounts`].
#[derive(Debug, Clone)]
pub struct Counter {
    first: BitSum,
    second: BitSum,
    both: BitSum,
    pairs: u64,
}

impl Counter {
    /// A counter of `bits`-bit values (32 or 64).
    pub fn new(bits: usize) -> Self {
        Self {
            first: BitSum::new(bits),
            second: BitSum::new(bits),
            both: BitSum::new(bits),
            pairs: 0,
        }
    }

    /// Counts the pairs `(a[i], b[i])`; with `valid`, only those whose two
    /// values are both valid (`valid_a[i] && valid_b[i]`).
    pub fn add(&mut self, a: &[u64], b: &[u64], valid: Option<(&[bool], &[bool])>) {
        let Some((va, vb)) = valid else {
            self.first.extend(&a[..a.len().min(b.len())]);
            self.second.extend(&b[..a.len().min(b.len())]);
            self.add_both(a, b);
            return;
        };
        for i in 0..a.len().min(b.len()) {
            if va[i] && vb[i] {
                let (x, y) = (a[i], b[i]);
                self.first.push(x);
                self.second.push(y);
                self.both.push(x & y);
                self.pairs += 1;
            }
        }
    }

    /// Counts only the both-set bits of the pairs `(a[i], b[i])`: their
    /// first and second values' bits are added with [`Self::add_ones`].
    pub fn add_both(&mut self, a: &[u64], b: &[u64]) {
        let n = a.len().min(b.len());
        self.both.extend_and(&a[..n], &b[..n]);
        self.pairs += n as u64;
    }

    /// Adds the bits of pairs' first values (`first`, per position) and
    /// second values (`second`), as `a - b` differences of sums.
    pub fn add_ones(&mut self, first: (&[u64], &[u64]), second: (&[u64], &[u64])) {
        self.first.add_difference(first.0, first.1);
        self.second.add_difference(second.0, second.1);
    }

    /// Adds the bits of one pair's first and second values (sums).
    pub fn add_sums(&mut self, first: &[u64], second: &[u64]) {
        self.first.add(first);
        self.second.add(second);
    }

    /// The counts so far.
    pub fn finish(self) -> PairCounts {
        PairCounts {
            pairs: self.pairs,
            first: self.first.finish(),
            second: self.second.finish(),
            both: self.both.finish(),
        }
    }
}

/// xbitinfo's `signed_exponent` of a float's bits (`single`: a `float32`'s,
/// in the low 32 bits): the exponent as a sign and a magnitude rather than
/// biased.
#[inline]
pub fn signed_exponent(x: u64, single: bool) -> u64 {
    if single {
        signed_exponent_of::<32, 23, 127>(x)
    } else {
        signed_exponent_of::<64, 52, 1023>(x)
    }
}

/// [`signed_exponent`] of an `NBITS`-bit float with `SBITS` mantissa bits
/// and exponent bias `BIAS`.
#[inline]
pub fn signed_exponent_of<const NBITS: u32, const SBITS: u32, const BIAS: i64>(x: u64) -> u64 {
    let sign_mask = 1u64 << (NBITS - 1);
    let sfmask = sign_mask | ((1u64 << SBITS) - 1);
    let emask = (sign_mask - 1) & !((1u64 << SBITS) - 1);
    let esignmask = sign_mask >> 1;
    // xbitinfo takes |e| modulo max_eabs + 1, a power of two.
    let eabs_mask = (u64::MAX >> (64 - NBITS)) >> SBITS;
    #[allow(clippy::cast_possible_wrap)] // at most 11 bits
    let e = ((x & emask) >> SBITS) as i64 - BIAS;
    let eabs = e.unsigned_abs() & eabs_mask;
    let esign = if e < 0 { esignmask } else { 0 };
    let mask = u64::MAX >> (64 - NBITS);
    ((x & sfmask) | esign | (eabs << SBITS)) & mask
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_exponent_is_xbitinfos() {
        // xbitinfo's doctest: 0.03125 as float32 and float64.
        let s = signed_exponent(u64::from(0.03125f32.to_bits()), true);
        assert_eq!(s, 0b0100_0010_1000_0000_0000_0000_0000_0000);
        let d = signed_exponent(0.03125f64.to_bits(), false);
        assert_eq!(
            d,
            0b0100_0000_0101_0000_0000_0000_0000_0000_0000_0000_0000_0000_0000_0000_0000_0000
        );
    }

    #[test]
    fn counts_pairs_by_bit() {
        let mut c = Counter::new(32);
        let a: Vec<u64> = (0..1000u64)
            .map(|i| i * 2_654_435_761 % (1 << 32))
            .collect();
        c.add(&a[..999], &a[1..], None);
        let got = c.finish();
        let mut want = PairCounts::new(32);
        want.pairs = 999;
        for i in 0..999 {
            for b in 0..32 {
                let x = (a[i] >> (31 - b)) & 1;
                let y = (a[i + 1] >> (31 - b)) & 1;
                want.first[b] += x;
                want.second[b] += y;
                want.both[b] += x & y;
            }
        }
        assert_eq!(got, want);
        let mut twice = got.clone();
        twice.add(&got);
        assert_eq!(twice.pairs, 1998);
        assert_eq!(
            PairCounts::from_words(32, &got.to_words()),
            Some(got.clone())
        );
        let j = got.joint(5);
        assert_eq!(j.iter().sum::<u64>(), 999);
        // Masked pairs are not counted.
        let mut c = Counter::new(64);
        let valid = [true, false, true];
        c.add(&[1, 2, 3], &[1, 2, 3], Some((&valid, &valid)));
        assert_eq!(c.finish().pairs, 2);
    }

    #[test]
    fn information_and_keepbits() {
        // Identical bits carry 1 bit; independent ones none.
        assert!((mutual_information([50, 0, 0, 50], 100) - 1.0).abs() < 1e-12);
        assert!(mutual_information([25, 25, 25, 25], 100).abs() < 1e-12);
        assert!((normal_quantile(0.995) - 2.575_829_303_548_9).abs() < 1e-8);
        assert!(free_entropy(1_000_000, 0.99) < 1e-5);
        // Information in the sign, exponent and 3 mantissa bits of a
        // float32, noise after: 3 bits at 0.99.
        let mut info = vec![0.0; 32];
        for (i, x) in info.iter_mut().enumerate().take(12) {
            *x = 1.0 / (1.0 + i as f64);
        }
        let k = keepbits(&info, DType::F32, 0.99);
        assert_eq!(k, 3);
        assert_eq!(keepbits(&info, DType::F32, 1.0), 23);
        assert_eq!(keepbits(&vec![0.0; 32], DType::F32, 0.99), 23);
        assert_eq!(keepbits(&vec![0.0; 64], DType::F64, 0.5), 52);
    }
}
