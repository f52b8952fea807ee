//! Undoing HDF5's byte shuffle, the second half of decoding a shuffled and
//! deflated source chunk.
//!
//! The shuffle stores byte `b` of element `i` at `b * n + i`, so undoing it
//! reads `elem` planes in step and writes whole elements. For 2-, 4- and
//! 8-byte elements on x86-64 this is done 16 elements at a time with SSE2
//! byte, word and double-word interleaves (part of the x86-64 baseline, so
//! no runtime check): about five times the speed of the element-by-element
//! loop, which stays for other sizes, other machines and the tail.

/// Undoes HDF5's byte shuffle: byte `b` of element `i` is at `b * n + i`.
/// Trailing bytes (a length not a multiple of the element) stay in place.
pub fn unshuffle(data: &[u8], elem: usize) -> Vec<u8> {
    if elem <= 1 {
        return data.to_vec();
    }
    let n = data.len() / elem;
    let mut out = vec![0u8; data.len()];
    let body = n * elem;
    match elem {
        2 => interleave::<2>(&data[..body], &mut out[..body], n),
        4 => interleave::<4>(&data[..body], &mut out[..body], n),
        8 => interleave::<8>(&data[..body], &mut out[..body], n),
        _ => {
            for b in 0..elem {
                let plane = &data[b * n..(b + 1) * n];
                for (i, &x) in plane.iter().enumerate() {
                    out[i * elem + b] = x;
                }
            }
        }
    }
    out[body..].copy_from_slice(&data[body..]);
    out
}

/// Gathers byte `b` of element `i` from `planes[b * n + i]` into
/// `out[i * E + b]`, for `n` elements of `E` bytes (`planes` and `out` are
/// `n * E` bytes long).
fn interleave<const E: usize>(planes: &[u8], out: &mut [u8], n: usize) {
    let done = simd::interleave::<E>(planes, out, n);
    interleave_from::<E>(planes, out, n, done);
}

/// [`interleave`] one element at a time from element `from` on: sequential
/// writes of whole elements, `E` sequential read streams.
fn interleave_from<const E: usize>(planes: &[u8], out: &mut [u8], n: usize, from: usize) {
    let p: [&[u8]; E] = std::array::from_fn(|b| &planes[b * n..(b + 1) * n]);
    for (i, o) in out.chunks_exact_mut(E).enumerate().skip(from) {
        for b in 0..E {
            o[b] = p[b][i];
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod simd {
    use std::arch::x86_64::{
        __m128i, _mm_loadu_si128, _mm_storeu_si128, _mm_unpackhi_epi16, _mm_unpackhi_epi32,
        _mm_unpackhi_epi8, _mm_unpacklo_epi16, _mm_unpacklo_epi32, _mm_unpacklo_epi8,
    };

    /// Elements interleaved per block.
    const LANES: usize = 16;

    /// Interleaves the whole blocks of 16 elements for `E` of 2, 4 or 8;
    /// returns how many elements it did (0 for other sizes).
    pub(super) fn interleave<const E: usize>(planes: &[u8], out: &mut [u8], n: usize) -> usize {
        if !matches!(E, 2 | 4 | 8) || planes.len() < n * E || out.len() < n * E {
            return 0;
        }
        let blocks = n / LANES;
        for k in 0..blocks {
            let i = k * LANES;
            // 16 bytes of each plane, as SSE2 registers.
            let a: [__m128i; E] = std::array::from_fn(|b| {
                let src = &planes[b * n + i..b * n + i + LANES];
                // SAFETY: `src` is 16 readable bytes; the load is unaligned.
                unsafe { _mm_loadu_si128(src.as_ptr().cast()) }
            });
            let dst = &mut out[i * E..(i + LANES) * E];
            // SAFETY: SSE2 is part of x86-64; `dst` is 16 * E writable
            // bytes and `store` writes E registers of 16 bytes into it.
            unsafe { store(&a, dst) };
        }
        blocks * LANES
    }

    /// Writes the 16 interleaved elements of the `E = a.len()` byte planes
    /// in `a` to `dst`.
    ///
    /// # Safety
    /// `dst` holds at least `16 * a.len()` bytes.
    // `_mm_storeu_si128` takes an `__m128i` pointer but needs no alignment.
    #[allow(clippy::similar_names, clippy::cast_ptr_alignment)]
    unsafe fn store(a: &[__m128i], dst: &mut [u8]) {
        let o = dst.as_mut_ptr().cast::<__m128i>();
        // SAFETY (every block below): the caller gives 16 * E bytes, so
        // `o.add(j)` for j < E stays inside `dst`; the stores are unaligned.
        unsafe {
            match a.len() {
                2 => {
                    _mm_storeu_si128(o, _mm_unpacklo_epi8(a[0], a[1]));
                    _mm_storeu_si128(o.add(1), _mm_unpackhi_epi8(a[0], a[1]));
                }
                4 => {
                    let lo01 = _mm_unpacklo_epi8(a[0], a[1]);
                    let hi01 = _mm_unpackhi_epi8(a[0], a[1]);
                    let lo23 = _mm_unpacklo_epi8(a[2], a[3]);
                    let hi23 = _mm_unpackhi_epi8(a[2], a[3]);
                    _mm_storeu_si128(o, _mm_unpacklo_epi16(lo01, lo23));
                    _mm_storeu_si128(o.add(1), _mm_unpackhi_epi16(lo01, lo23));
                    _mm_storeu_si128(o.add(2), _mm_unpacklo_epi16(hi01, hi23));
                    _mm_storeu_si128(o.add(3), _mm_unpackhi_epi16(hi01, hi23));
                }
                8 => {
                    // Pairs of planes, then bytes 0-3 and 4-7 of each
                    // element, then whole elements.
                    let pair = |x: usize, hi: bool| {
                        if hi {
                            _mm_unpackhi_epi8(a[x], a[x + 1])
                        } else {
                            _mm_unpacklo_epi8(a[x], a[x + 1])
                        }
                    };
                    for (half, hi) in [(0, false), (4, true)] {
                        let (p01, p23, p45, p67) =
                            (pair(0, hi), pair(2, hi), pair(4, hi), pair(6, hi));
                        let q0 = _mm_unpacklo_epi16(p01, p23);
                        let q1 = _mm_unpackhi_epi16(p01, p23);
                        let r0 = _mm_unpacklo_epi16(p45, p67);
                        let r1 = _mm_unpackhi_epi16(p45, p67);
                        _mm_storeu_si128(o.add(half), _mm_unpacklo_epi32(q0, r0));
                        _mm_storeu_si128(o.add(half + 1), _mm_unpackhi_epi32(q0, r0));
                        _mm_storeu_si128(o.add(half + 2), _mm_unpacklo_epi32(q1, r1));
                        _mm_storeu_si128(o.add(half + 3), _mm_unpackhi_epi32(q1, r1));
                    }
                }
                _ => {}
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod simd {
    /// No vector path on this architecture: nothing done.
    pub(super) fn interleave<const E: usize>(_: &[u8], _: &mut [u8], _: usize) -> usize {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// HDF5's shuffle: byte b of element i goes to b * n + i; trailing
    /// bytes stay in place.
    fn shuffle(data: &[u8], elem: usize) -> Vec<u8> {
        let n = data.len() / elem;
        let mut out = data.to_vec();
        for i in 0..n {
            for b in 0..elem {
                out[b * n + i] = data[i * elem + b];
            }
        }
        out
    }

    #[test]
    fn unshuffle_inverts_hdf5_shuffle() {
        // Elements 0x0102, 0x0304 (LE: 02 01, 04 03) shuffled: 02 04 01 03.
        assert_eq!(unshuffle(&[2, 4, 1, 3], 2), vec![2, 1, 4, 3]);
        assert_eq!(unshuffle(&[1, 2, 3], 1), vec![1, 2, 3]);
    }

    #[test]
    fn unshuffle_inverts_shuffle_for_every_element_size_and_length() {
        // Lengths below, at and across the 16-element blocks, with tails.
        for elem in [2, 3, 4, 8, 16] {
            for n in [0, 1, 15, 16, 17, 31, 32, 33, 1000, 4099] {
                for extra in [0, 1, elem - 1] {
                    let len = n * elem + extra;
                    let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
                    assert_eq!(
                        unshuffle(&shuffle(&data, elem), elem),
                        data,
                        "elem {elem} n {n} extra {extra}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_vector_path_and_the_element_loop_agree() {
        let n = 16 * 37 + 5;
        for elem in [2usize, 4, 8] {
            let planes: Vec<u8> = (0..n * elem).map(|i| (i * 7 % 253) as u8).collect();
            let mut fast = vec![0u8; n * elem];
            let mut slow = vec![0u8; n * elem];
            match elem {
                2 => {
                    interleave::<2>(&planes, &mut fast, n);
                    interleave_from::<2>(&planes, &mut slow, n, 0);
                }
                4 => {
                    interleave::<4>(&planes, &mut fast, n);
                    interleave_from::<4>(&planes, &mut slow, n, 0);
                }
                _ => {
                    interleave::<8>(&planes, &mut fast, n);
                    interleave_from::<8>(&planes, &mut slow, n, 0);
                }
            }
            assert_eq!(fast, slow, "elem {elem}");
        }
    }
}
