//! C-order block copies: placing a sub-block inside a larger block.

/// C-order indices of block number `k` of a grid of shape `grid` (an empty
/// extent counts as one).
pub fn unravel(mut k: u64, grid: &[u64]) -> Vec<u64> {
    let mut idx = vec![0u64; grid.len()];
    for d in (0..grid.len()).rev() {
        let n = grid[d].max(1);
        idx[d] = k % n;
        k /= n;
    }
    idx
}

/// Calls `f(src_offset, dst_offset, len)` (in elements) for every innermost
/// row of a C-order block of shape `sub` placed at `origin` inside a C-order
/// block of shape `full`.
pub fn for_each_row(sub: &[u64], full: &[u64], origin: &[u64], f: impl FnMut(usize, usize, usize)) {
    let zero = vec![0u64; sub.len()];
    for_each_row_between(sub, (sub, &zero), (full, origin), f);
}

/// Calls `f(src_offset, dst_offset, len)` (in elements) for every innermost
/// row of a block of shape `ext` taken at `src.1` of a C-order block of
/// shape `src.0` and put at `dst.1` of a C-order block of shape `dst.0`.
pub fn for_each_row_between(
    ext: &[u64],
    src: (&[u64], &[u64]),
    dst: (&[u64], &[u64]),
    mut f: impl FnMut(usize, usize, usize),
) {
    let n = ext.len();
    if n == 0 {
        f(0, 0, 1);
        return;
    }
    if ext.contains(&0) {
        return;
    }
    let to = |x: u64| usize::try_from(x).unwrap_or(0);
    let row = to(ext[n - 1]);
    let rows: u64 = ext[..n - 1].iter().product();
    let mut idx = vec![0u64; n - 1];
    for _ in 0..rows {
        let (mut s, mut d) = (0u64, 0u64);
        for k in 0..n - 1 {
            s = s * src.0[k] + src.1[k] + idx[k];
            d = d * dst.0[k] + dst.1[k] + idx[k];
        }
        s = s * src.0[n - 1] + src.1[n - 1];
        d = d * dst.0[n - 1] + dst.1[n - 1];
        f(to(s), to(d), row);
        for k in (0..n - 1).rev() {
            idx[k] += 1;
            if idx[k] < ext[k] {
                break;
            }
            idx[k] = 0;
        }
    }
}

/// Copies the `ext` block at `src_off` of a C-order block of shape
/// `src_shape` to `dst_off` of a block of shape `dst_shape` (elements of
/// `size` bytes).
#[allow(clippy::too_many_arguments)] // both blocks' shape and offset, named
pub fn copy_block(
    src: &[u8],
    src_shape: &[u64],
    src_off: &[u64],
    dst: &mut [u8],
    dst_shape: &[u64],
    dst_off: &[u64],
    ext: &[u64],
    size: usize,
) {
    for_each_row_between(
        ext,
        (src_shape, src_off),
        (dst_shape, dst_off),
        |s, d, n| {
            dst[d * size..(d + n) * size].copy_from_slice(&src[s * size..(s + n) * size]);
        },
    );
}

/// Copies a C-order block `src` of shape `sub` (elements of `size` bytes)
/// into `dst` of shape `full` at `origin`.
pub fn place(dst: &mut [u8], full: &[u64], src: &[u8], sub: &[u64], origin: &[u64], size: usize) {
    for_each_row(sub, full, origin, |s, d, n| {
        dst[d * size..(d + n) * size].copy_from_slice(&src[s * size..(s + n) * size]);
    });
}

/// [`place`] for items (strings).
pub fn place_items<T: Clone>(dst: &mut [T], full: &[u64], src: &[T], sub: &[u64], origin: &[u64]) {
    for_each_row(sub, full, origin, |s, d, n| {
        dst[d..d + n].clone_from_slice(&src[s..s + n]);
    });
}

/// Places a C-order region of `count` elements at the origin of a C-order
/// block of `full` elements, filling the rest with the `pad` element.
pub fn pad_region(
    region: Vec<u8>,
    count: &[u64],
    full: &[u64],
    pad: &[u8],
    size: usize,
) -> Vec<u8> {
    if count == full {
        return region;
    }
    let total: u64 = full.iter().product();
    let total = usize::try_from(total).unwrap_or(0);
    let mut out = if pad.iter().all(|&b| b == 0) {
        vec![0u8; total * size]
    } else {
        pad.repeat(total)
    };
    copy_rows(count, full, |src, dst, n| {
        out[dst * size..(dst + n) * size].copy_from_slice(&region[src * size..(src + n) * size]);
    });
    out
}

/// [`pad_region`] for items (strings).
pub fn pad_region_items(region: Vec<String>, count: &[u64], full: &[u64]) -> Vec<String> {
    if count == full {
        return region;
    }
    let total = usize::try_from(full.iter().product::<u64>()).unwrap_or(0);
    let mut out = vec![String::new(); total];
    copy_rows(count, full, |src, dst, n| {
        out[dst..dst + n].clone_from_slice(&region[src..src + n]);
    });
    out
}

fn copy_rows(count: &[u64], full: &[u64], f: impl FnMut(usize, usize, usize)) {
    for_each_row(count, full, &vec![0; count.len()], f);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_at_an_offset() {
        // 2x2 block at (1, 1) of a 3x4 block.
        let mut dst = vec![0u8; 12];
        place(&mut dst, &[3, 4], &[1, 2, 3, 4], &[2, 2], &[1, 1], 1);
        assert_eq!(dst, vec![0, 0, 0, 0, 0, 1, 2, 0, 0, 3, 4, 0]);
        let mut items = vec![String::new(); 3];
        place_items(&mut items, &[3], &["a".to_string()], &[1], &[2]);
        assert_eq!(items, ["", "", "a"]);
        let mut scalar = vec![0u8; 2];
        place(&mut scalar, &[], &[7, 8], &[], &[], 2);
        assert_eq!(scalar, [7, 8]);
    }

    #[test]
    fn pads_edge_region() {
        // 2x2 region into a 3x3 block, element size 1, pad 9.
        let out = pad_region(vec![1, 2, 3, 4], &[2, 2], &[3, 3], &[9], 1);
        assert_eq!(out, vec![1, 2, 9, 3, 4, 9, 9, 9, 9]);
        let same = pad_region(vec![1, 2], &[2], &[2], &[0], 1);
        assert_eq!(same, vec![1, 2]);
        let scalar = pad_region(vec![5, 6], &[], &[], &[0, 0], 2);
        assert_eq!(scalar, vec![5, 6]);
    }

    #[test]
    fn pads_three_dimensions_with_wide_elements() {
        let region: Vec<u8> = (0..8).collect(); // 2 x 1 x 2 elements of 2 bytes
        let out = pad_region(region.clone(), &[2, 1, 2], &[2, 2, 3], &[0xff, 0xff], 2);
        assert_eq!(out.len(), 2 * 2 * 3 * 2);
        assert_eq!(&out[0..4], &[0, 1, 2, 3]);
        assert_eq!(&out[4..6], &[0xff, 0xff]);
        assert_eq!(&out[12..16], &[4, 5, 6, 7]);
    }

    #[test]
    fn copies_between_offsets() {
        // The 2x2 block at (1, 1) of a 3x3 block to (0, 2) of a 2x4 block.
        let src: Vec<u8> = (0..9).collect();
        let mut dst = vec![0u8; 8];
        copy_block(
            &src,
            &[3, 3],
            &[1, 1],
            &mut dst,
            &[2, 4],
            &[0, 2],
            &[2, 2],
            1,
        );
        assert_eq!(dst, vec![0, 0, 4, 5, 0, 0, 7, 8]);
    }

    #[test]
    fn pads_strings() {
        let out = pad_region_items(vec!["a".into(), "b".into()], &[2], &[3]);
        assert_eq!(out, vec!["a", "b", ""]);
    }
}
