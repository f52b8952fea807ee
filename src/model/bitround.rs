//! `BitRound`: keeping a float's `keepbits` leading mantissa bits, rounded to
//! the nearest (ties to even), the other mantissa bits zero (pure).
//!
//! The bits are those of numcodecs' `BitRound` (and of netCDF-C's
//! `NC_QUANTIZE_BITROUND`) for every finite value, including a largest
//! value that rounds up to infinity. Unlike them, NaN (any payload), ±Inf
//! and the variable's fill values pass unchanged: a mask stays a mask.
//! Rounded values are ordinary floats: no reader needs a codec for them.

use crate::model::schema::{fill_bytes, AttrValue, DType, Var};

/// Explicit mantissa bits of `float32`.
pub const F32_MANTISSA: u32 = 23;
/// Explicit mantissa bits of `float64`.
pub const F64_MANTISSA: u32 = 52;

/// The explicit mantissa bits of `dtype`; `None` for a type that is not a
/// float.
pub fn mantissa_bits(dtype: DType) -> Option<u32> {
    match dtype {
        DType::F32 => Some(F32_MANTISSA),
        DType::F64 => Some(F64_MANTISSA),
        _ => None,
    }
}

/// The largest relative error of rounding to `keepbits` mantissa bits
/// (half a unit in the last kept place): `2^-(keepbits+1)`.
pub fn max_relative_error(keepbits: u32) -> f64 {
    0.5f64.powi(
        i32::try_from(keepbits)
            .unwrap_or(i32::MAX)
            .saturating_add(1),
    )
}

/// The bit patterns (little-endian bytes) that are masks in `var`'s
/// values, left as they are: `_FillValue`, `missing_value` and netCDF's
/// default fill.
pub fn masks(var: &Var) -> Vec<Vec<u8>> {
    let mut out = vec![var.dtype.netcdf_default_fill()];
    out.extend(fill_bytes(var));
    match (var.dtype, var.attr("missing_value")) {
        (DType::F32, Some(AttrValue::F32(x))) => {
            out.extend(x.iter().map(|v| v.to_le_bytes().to_vec()));
        }
        (DType::F64, Some(AttrValue::F64(x))) => {
            out.extend(x.iter().map(|v| v.to_le_bytes().to_vec()));
        }
        #[allow(clippy::cast_possible_truncation)] // a mask of another type
        (DType::F32, Some(AttrValue::F64(x))) => {
            out.extend(x.iter().map(|&v| (v as f32).to_le_bytes().to_vec()));
        }
        (DType::F64, Some(AttrValue::F32(x))) => {
            out.extend(x.iter().map(|&v| f64::from(v).to_le_bytes().to_vec()));
        }
        _ => {}
    }
    out
}

/// How one float array's values are rounded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rounder {
    /// `float32` (else `float64`).
    single: bool,
    /// Mantissa bits kept.
    keepbits: u32,
    /// Bit patterns left as they are (the fill values).
    keep: Vec<u64>,
}

impl Rounder {
    /// The rounding of `dtype` values to `keepbits` mantissa bits, leaving
    /// the values of `keep` (native-endian bytes of that type; others are
    /// ignored) as they are. `None` when nothing is rounded: not a float
    /// type, or every mantissa bit kept.
    pub fn new(dtype: DType, keepbits: u32, keep: &[Vec<u8>]) -> Option<Self> {
        let nmant = mantissa_bits(dtype)?;
        if keepbits >= nmant {
            return None;
        }
        let keep = keep
            .iter()
            .filter_map(|b| match b.len() {
                4 if dtype == DType::F32 => <[u8; 4]>::try_from(b.as_slice())
                    .ok()
                    .map(|a| u64::from(u32::from_ne_bytes(a))),
                8 if dtype == DType::F64 => <[u8; 8]>::try_from(b.as_slice())
                    .ok()
                    .map(u64::from_ne_bytes),
                _ => None,
            })
            .collect();
        Some(Self {
            single: dtype == DType::F32,
            keepbits,
            keep,
        })
    }

    /// Mantissa bits kept.
    pub fn keepbits(&self) -> u32 {
        self.keepbits
    }

    /// Rounds the values of `bytes` (native-endian elements; a trailing
    /// partial element is left alone) in place.
    pub fn round(&self, bytes: &mut [u8]) {
        if self.single {
            let m = F32_MANTISSA - self.keepbits;
            let keep: Vec<u32> = self
                .keep
                .iter()
                .filter_map(|&k| u32::try_from(k).ok())
                .collect();
            for c in bytes.chunks_exact_mut(4) {
                let x = u32::from_ne_bytes([c[0], c[1], c[2], c[3]]);
                if x & 0x7f80_0000 == 0x7f80_0000 || keep.contains(&x) {
                    continue;
                }
                c.copy_from_slice(&round32(x, m).to_ne_bytes());
            }
        } else {
            let m = F64_MANTISSA - self.keepbits;
            for c in bytes.chunks_exact_mut(8) {
                let mut a = [0u8; 8];
                a.copy_from_slice(c);
                let x = u64::from_ne_bytes(a);
                if x & 0x7ff0_0000_0000_0000 == 0x7ff0_0000_0000_0000 || self.keep.contains(&x) {
                    continue;
                }
                c.copy_from_slice(&round64(x, m).to_ne_bytes());
            }
        }
    }
}

/// `x` (a `float32`'s bits) with its `m` last mantissa bits rounded away
/// (`0 < m <= 23`).
#[inline]
pub fn round32(x: u32, m: u32) -> u32 {
    let half = (1u32 << (m - 1)) - 1;
    x.wrapping_add(((x >> m) & 1) + half) & (u32::MAX << m)
}

/// `x` (a `float64`'s bits) with its `m` last mantissa bits rounded away
/// (`0 < m <= 52`).
#[inline]
pub fn round64(x: u64, m: u32) -> u64 {
    let half = (1u64 << (m - 1)) - 1;
    x.wrapping_add(((x >> m) & 1) + half) & (u64::MAX << m)
}

/// `v` rounded to `keepbits` mantissa bits, by the rule of [`Rounder`]
/// without fill values (for reports and checks).
pub fn round_f64(v: f64, keepbits: u32) -> f64 {
    if !v.is_finite() || keepbits >= F64_MANTISSA {
        return v;
    }
    f64::from_bits(round64(v.to_bits(), F64_MANTISSA - keepbits))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r32(v: f32, keepbits: u32) -> f32 {
        let mut b = v.to_ne_bytes().to_vec();
        if let Some(r) = Rounder::new(DType::F32, keepbits, &[]) {
            r.round(&mut b);
        }
        f32::from_ne_bytes([b[0], b[1], b[2], b[3]])
    }

    #[test]
    fn rounds_to_nearest_with_ties_to_even() {
        // 1 + 2^-23 * k: with 22 bits kept, the last bit is a tie.
        let one = 1.0f32.to_bits();
        assert_eq!(r32(f32::from_bits(one + 1), 22).to_bits(), one);
        assert_eq!(r32(f32::from_bits(one + 3), 22).to_bits(), one + 4);
        // Keep 0 bits: 1.5 is a tie between 1 and 2, even is 2 (mantissa 0
        // of the next binade); 1.25 rounds to 1, 1.75 to 2.
        assert_eq!(r32(1.5, 0), 2.0);
        assert_eq!(r32(1.25, 0), 1.0);
        assert_eq!(r32(1.75, 0), 2.0);
        assert_eq!(r32(-1.75, 0), -2.0);
        // pi with 7 bits.
        assert_eq!(r32(std::f32::consts::PI, 7), 3.140_625);
        assert_eq!(r32(std::f32::consts::PI, 23), std::f32::consts::PI);
        // The largest finite value rounds up to infinity (numcodecs too).
        assert_eq!(r32(f32::MAX, 3), f32::INFINITY);
        // Subnormals and zeros.
        assert_eq!(r32(0.0, 1).to_bits(), 0);
        assert_eq!(r32(-0.0, 1).to_bits(), (-0.0f32).to_bits());
        let sub = f32::from_bits(0x0000_0fff);
        assert_eq!(r32(sub, 12).to_bits(), 0x0000_1000);
    }

    #[test]
    fn masks_pass_unchanged() {
        let fill = 9.969_21e36f32;
        let r = Rounder::new(DType::F32, 2, &[fill.to_ne_bytes().to_vec()]).expect("float");
        let vals = [
            f32::NAN,
            f32::from_bits(0x7fc0_0001),
            f32::INFINITY,
            -f32::INFINITY,
            fill,
            1.3,
        ];
        let mut b: Vec<u8> = vals.iter().flat_map(|v| v.to_ne_bytes()).collect();
        r.round(&mut b);
        let out: Vec<u32> = b
            .chunks_exact(4)
            .map(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        for (o, v) in out.iter().zip(&vals).take(5) {
            assert_eq!(*o, v.to_bits());
        }
        assert_eq!(f32::from_bits(out[5]), 1.25);
        assert!(Rounder::new(DType::I32, 2, &[]).is_none());
        assert!(Rounder::new(DType::F32, 23, &[]).is_none());
    }

    #[test]
    fn doubles_and_idempotence() {
        assert_eq!(round_f64(std::f64::consts::PI, 7), 3.140_625);
        let x = round_f64(123.456_789, 10);
        assert_eq!(round_f64(x, 10), x);
        let mut b = 2.5f64.to_ne_bytes().to_vec();
        Rounder::new(DType::F64, 0, &[])
            .expect("float")
            .round(&mut b);
        assert_eq!(f64::from_ne_bytes(b.try_into().expect("8 bytes")), 2.0);
        assert!((max_relative_error(7) - 1.0 / 256.0).abs() < 1e-18);
    }
}
