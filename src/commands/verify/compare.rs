//! The values, compared: every rank takes its share of every array's
//! chunks (`shares`), reads the expected values from the sources and the
//! stored ones through a Zarr reader, and compares them element by element
//! (`values`), raw and decoded, against rounded values where the array was
//! rounded (`rounding`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use zarrs::array::Array;
use zarrs::storage::ReadableStorageTraits;

use super::collective::{decode, encode};
use super::report::RoundedArray;
use super::source::{Raw, Sources};
use super::{members, rounding, shares, store, values};
use crate::commands::monitor::Monitor;
use crate::error::{Error, VerifyError};
use crate::mpi::ctx::MpiCtx;
use shares::Job;

/// Mismatches listed per rank at most.
pub(super) const FIRST: usize = 5;

/// Elements decoded and read at once at most (a bigger chunk or shard is
/// compared in parts).
pub(super) const BLOCK_ELEMENTS: u64 = 1 << 22;

/// Counts of one rank.
#[derive(Debug, Default)]
pub(super) struct Tally {
    pub(super) units: u64,
    pub(super) values: u64,
    pub(super) mismatches: u64,
    pub(super) first: Vec<String>,
    /// The errors of each rounded array's values (by path).
    pub(super) errors: BTreeMap<String, rounding::Errors>,
}

impl Tally {
    pub(super) fn note(&mut self, text: impl FnOnce() -> String) {
        self.mismatches += 1;
        if self.first.len() < FIRST {
            self.first.push(text());
        }
    }
}

/// Row-major indices of chunk number `k` of a grid. (`model::block` has the
/// same arithmetic; verify keeps its own so that it shares no code with the
/// converter's planning.)
pub(super) fn unravel(mut k: u64, grid: &[u64]) -> Vec<u64> {
    let mut idx = vec![0u64; grid.len()];
    for d in (0..grid.len()).rev() {
        let n = grid[d].max(1);
        idx[d] = k % n;
        k /= n;
    }
    idx
}

/// Splits a region into blocks of at most `max` elements.
pub(super) fn blocks(start: &[u64], count: &[u64], max: u64) -> Vec<(Vec<u64>, Vec<u64>)> {
    let n: u64 = count.iter().product();
    if n <= max {
        return vec![(start.to_vec(), count.to_vec())];
    }
    let Some(d) = count.iter().position(|&c| c > 1) else {
        return vec![(start.to_vec(), count.to_vec())];
    };
    let slab: u64 = count[d + 1..].iter().product::<u64>().max(1);
    let step = (max / slab).max(1);
    let mut out = Vec::new();
    let mut k = 0;
    while k < count[d] {
        let m = step.min(count[d] - k);
        let (mut s, mut c) = (start.to_vec(), count.to_vec());
        s[d] += k;
        c[d] = m;
        out.extend(blocks(&s, &c, max));
        k += m;
    }
    out
}

/// The units of every array (chunks, or shards) and their uncompressed
/// bytes: what the comparison goes through.
pub(super) fn totals(jobs: &[Job], arrays: &[Array<dyn ReadableStorageTraits>]) -> (u64, u64) {
    jobs.iter()
        .zip(arrays)
        .fold((0u64, 0u64), |(u, b), (job, arr)| {
            let units: u64 = arr.chunk_grid_shape().iter().product();
            let elements: u64 = arr.shape().iter().product();
            (
                u.saturating_add(units),
                b.saturating_add(elements.saturating_mul(job.dtype.size() as u64)),
            )
        })
}

/// This rank's share of every array's chunks, compared element by element.
///
/// The chunks are taken in bands: consecutive chunks along the innermost
/// dimension of the chunk grid, about [`BLOCK_ELEMENTS`] in all. A band is
/// compared in blocks of at most that many elements, each read from the
/// sources at once, so a source chunk that many store chunks share (a
/// store chunked as long time series, the sources one step per chunk) is
/// decoded once per block, not once per store chunk.
pub(super) fn compare(
    ctx: &MpiCtx,
    jobs: &[Job],
    arrays: &[Array<dyn ReadableStorageTraits>],
    files: Vec<PathBuf>,
    monitor: &mut Monitor,
) -> Result<Tally, Error> {
    let (rank, size) = (usize::try_from(ctx.rank()).unwrap_or(0), ctx.size());
    let mut sources = Sources::new(files);
    let mut tally = Tally::default();
    let mut unit = 0usize;
    let store_err = |job: &Job, e: &dyn std::fmt::Display| VerifyError::Store {
        array: job.path.clone(),
        msg: e.to_string(),
    };
    for (job, arr) in jobs.iter().zip(arrays) {
        let grid = arr.chunk_grid_shape().to_vec();
        if grid.contains(&0) {
            continue;
        }
        let inner = grid.last().copied().unwrap_or(1).max(1);
        let outer: u64 = grid[..grid.len().saturating_sub(1)].iter().product();
        let chunk: u64 = arr
            .chunk_shape(&vec![0; grid.len()])
            .map_or(1, |c| c.iter().map(|n| n.get()).product::<u64>())
            .max(1);
        let band = (BLOCK_ELEMENTS / chunk).clamp(1, inner);
        for o in 0..outer {
            let mut j = 0;
            while j < inner {
                let (first, last) = (o * inner + j, o * inner + (j + band).min(inner) - 1);
                let n = last - first + 1;
                j += band;
                unit += 1;
                if (unit - 1) % size.max(1) != rank {
                    continue;
                }
                let a = arr
                    .chunk_subset_bounded(&unravel(first, &grid))
                    .map_err(|e| store_err(job, &e))?;
                let b = arr
                    .chunk_subset_bounded(&unravel(last, &grid))
                    .map_err(|e| store_err(job, &e))?;
                let start = a.start().to_vec();
                let mut count = a.shape().to_vec();
                if let (Some(c), Some(bs), Some(bc)) =
                    (count.last_mut(), b.start().last(), b.shape().last())
                {
                    *c = bs + bc - start.last().copied().unwrap_or(0);
                }
                tally.units += n;
                for (s, c) in blocks(&start, &count, BLOCK_ELEMENTS) {
                    compare_block(job, arr, &mut sources, &s, &c, &mut tally)?;
                }
                let elements: u64 = count.iter().product();
                monitor.add(ctx, n, elements.saturating_mul(job.dtype.size() as u64));
            }
        }
    }
    Ok(tally)
}

/// One block of a store array against the pieces of the sources it holds.
#[allow(clippy::too_many_lines)] // one comparison walk: raw and decoded, element by element, with the report's counters
fn compare_block(
    job: &Job,
    arr: &Array<dyn ReadableStorageTraits>,
    sources: &mut Sources,
    start: &[u64],
    count: &[u64],
    tally: &mut Tally,
) -> Result<(), Error> {
    let n: u64 = count.iter().product();
    if n == 0 {
        return Ok(());
    }
    let stored = match store::retrieve(arr, start, count) {
        Ok(z) => z,
        Err(e) => {
            // A damaged chunk: every value in it differs.
            tally.values += n;
            tally.mismatches += n;
            if tally.first.len() < FIRST {
                tally.first.push(format!(
                    "{}{start:?}: the stored values cannot be decoded: {e}",
                    job.path
                ));
            }
            return Ok(());
        }
    };
    for piece in &job.pieces {
        // The part of the block this piece holds (its member's, along the
        // axis its steps).
        let span = job.axis.map(|k| (k, piece.at, piece.len, piece.from));
        let Some(r) = members::Region::new(start, count, piece.member, span) else {
            continue;
        };
        let (s, c) = (&r.start, &r.count);
        let m = r.len();
        tally.values += m;
        let src = sources.read(
            piece.file,
            &piece.var,
            job.dtype,
            &r.src_start,
            &r.src_count,
        )?;
        // Element j of the piece's part is element `at(j)` of the block.
        let at = |j: u64| r.at(j);
        let idx = |j: u64| values::element_index(s, c, j);
        match (&src, &stored) {
            (Raw::Fixed(x), Raw::Fixed(z)) => {
                compare_fixed(job, piece, &r, x, z, c == count, tally);
            }
            (Raw::Strings(x), Raw::Strings(z)) => {
                for j in 0..m {
                    let (a, b) = (&x[to_usize(j)], &z[at(j)]);
                    if a != b {
                        tally.note(|| {
                            format!("{}{:?}: source {a:?}, store {b:?}", job.path, idx(j))
                        });
                    }
                }
            }
            _ => tally.note(|| {
                format!(
                    "{}{s:?}: the store holds another kind of values than the sources",
                    job.path
                )
            }),
        }
    }
    members::compare_gaps(job, arr, &stored, start, count, tally);
    Ok(())
}

/// One piece's fixed-size values (`x`, read from the sources over `r`)
/// against the block's stored values (`z`; `whole`: the piece is the
/// whole block): raw, bit for bit (time values by instant), then decoded
/// as readers decode. A rounded array is compared with the sources
/// rounded to its recorded bits, and its errors against the sources' own
/// values are measured.
fn compare_fixed(
    job: &Job,
    piece: &shares::Piece,
    r: &members::Region,
    x: &[u8],
    z: &[u8],
    whole: bool,
    tally: &mut Tally,
) {
    let t = job.dtype;
    let decode = job.src_cf != job.store_cf && piece.time.is_none();
    let rounded = job.round.as_ref().map(|q| q.apply(x));
    let expected = match (&rounded, &piece.time) {
        (Some(xr), None) => xr.as_slice(),
        _ => x,
    };
    if whole && piece.time.is_none() && !decode && expected == z {
        // The piece is the whole block, bit for bit.
        let Some((q, xr)) = job.round.as_ref().zip(rounded.as_ref()) else {
            return;
        };
        if let Some(e) = q.errors_of(x, xr) {
            tally.errors.entry(job.path.clone()).or_default().merge(&e);
            return;
        }
    }
    let mut errors = rounding::Errors::default();
    let idx = |j: u64| values::element_index(&r.start, &r.count, j);
    for j in 0..r.len() {
        let (js, jz) = (to_usize(j), r.at(j));
        let same = match (&piece.time, &job.round) {
            (Some(map), Some(q)) => q.same_time(map, x, js, z, jz),
            (Some(map), None) => map.same_at(t, x, js, z, jz),
            (None, _) => values::same_raw_at(t, expected, js, z, jz),
        };
        if let (Some(q), Some(xr)) = (&job.round, &rounded) {
            let m = q.measure(x, xr, js, z, jz, piece.time.as_ref());
            if !errors.add(m) && same {
                tally.note(|| {
                    format!(
                        "{}{:?}: source {}, store {}: beyond quantization_maximum_relative_error {}",
                        job.path,
                        idx(j),
                        values::show(t, x, js),
                        values::show(t, z, jz),
                        values::num(q.bound())
                    )
                });
            }
        }
        if !same {
            tally.note(|| {
                format!(
                    "{}{:?}: source {}{}, store {}",
                    job.path,
                    idx(j),
                    values::show(t, x, js),
                    rounded_to(job, piece, expected, js),
                    values::show(t, z, jz)
                )
            });
        } else if decode {
            let (a, b) = (
                job.src_cf.decode(t, expected, js),
                job.store_cf.decode(t, z, jz),
            );
            if !values::same_decoded(a, b) {
                tally.note(|| {
                    format!(
                        "{}{:?}: decoded by readers: source {}, store {} (raw {})",
                        job.path,
                        idx(j),
                        masked(a),
                        masked(b),
                        values::show(t, expected, js)
                    )
                });
            }
        }
    }
    if job.round.is_some() {
        tally
            .errors
            .entry(job.path.clone())
            .or_default()
            .merge(&errors);
    }
}

/// What element `i` of the sources' values is expected as, when the array
/// is rounded (`expected`: their rounding, unless time values are
/// re-encoded first): ` rounded to N bits V`.
fn rounded_to(job: &Job, piece: &shares::Piece, expected: &[u8], i: usize) -> String {
    match (&job.round, &piece.time) {
        (Some(q), None) => format!(
            " rounded to {} bits {}",
            q.nsb(),
            values::show(job.dtype, expected, i)
        ),
        (Some(q), Some(_)) => format!(" rounded to {} bits", q.nsb()),
        (None, _) => String::new(),
    }
}

fn masked(x: f64) -> String {
    if x.is_nan() {
        "masked".into()
    } else {
        values::num(x)
    }
}

pub(super) fn to_usize(x: u64) -> usize {
    usize::try_from(x).unwrap_or(usize::MAX)
}

/// Every rank's first mismatches and errors of rounded values, on rank 0
/// (nothing on the other ranks): the mismatches in rank order, the errors
/// of each rounded array of `jobs` over all ranks.
pub(super) fn gather(
    ctx: &MpiCtx,
    tally: Tally,
    jobs: &[Job],
) -> Result<(Vec<String>, Vec<RoundedArray>), Error> {
    let payload = encode(&(tally.first, tally.errors))?;
    let mut first = Vec::new();
    let mut errors: BTreeMap<String, rounding::Errors> = BTreeMap::new();
    let Some(parts) = ctx.gather_bytes(payload) else {
        return Ok((first, Vec::new()));
    };
    for part in parts {
        type Part = (Vec<String>, BTreeMap<String, rounding::Errors>);
        if let Ok((f, e)) = decode::<Part>(&part) {
            first.extend(f);
            for (path, x) in e {
                errors.entry(path).or_default().merge(&x);
            }
        }
    }
    let rounded = jobs
        .iter()
        .filter_map(|job| {
            let q = job.round.as_ref()?;
            let e = errors.get(&job.path).copied().unwrap_or_default();
            Some(RoundedArray {
                array: job.path.clone(),
                keepbits: q.nsb(),
                max_relative_error: q.bound(),
                values: e.values,
                largest_absolute_error: e.max_abs,
                largest_relative_error: e.max_rel,
                rounded_to_infinity: e.to_infinity,
            })
        })
        .collect();
    Ok((first, rounded))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_regions_split_into_blocks() {
        let b = blocks(&[10, 0, 0], &[5, 4, 3], 24);
        assert_eq!(b.len(), 3);
        assert_eq!(b[0], (vec![10, 0, 0], vec![2, 4, 3]));
        assert_eq!(b[2], (vec![14, 0, 0], vec![1, 4, 3]));
        let b = blocks(&[0, 0], &[1, 100], 30);
        assert_eq!(b.len(), 4);
        assert_eq!(b[3], (vec![0, 90], vec![1, 10]));
        assert_eq!(blocks(&[], &[], 1), vec![(vec![], vec![])]);
        assert_eq!(unravel(5, &[2, 3]), vec![1, 2]);
        assert_eq!(unravel(0, &[]), Vec::<u64>::new());
    }
}
