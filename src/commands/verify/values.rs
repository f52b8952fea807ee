//! Element comparisons: raw (bitwise, NaN-aware, time values by instant)
//! and decoded as CF readers decode (masked where the raw value is the
//! `_FillValue` or a `missing_value`, then `scale_factor` and `add_offset`).

use serde::{Deserialize, Serialize};

/// A netCDF element type that Zarr can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub(crate) enum NcType {
    I8,
    U8,
    I16,
    U16,
    I32,
    U32,
    I64,
    U64,
    F32,
    F64,
    /// `char`: one byte.
    Char,
    /// `string`: variable-length text.
    Str,
}

impl NcType {
    /// Bytes per element (strings are not fixed-size: 0).
    pub(crate) fn size(self) -> usize {
        match self {
            Self::I8 | Self::U8 | Self::Char => 1,
            Self::I16 | Self::U16 => 2,
            Self::I32 | Self::U32 | Self::F32 => 4,
            Self::I64 | Self::U64 | Self::F64 => 8,
            Self::Str => 0,
        }
    }

    /// netCDF's name of the type.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::I8 => "byte",
            Self::U8 => "ubyte",
            Self::I16 => "short",
            Self::U16 => "ushort",
            Self::I32 => "int",
            Self::U32 => "uint",
            Self::I64 => "int64",
            Self::U64 => "uint64",
            Self::F32 => "float",
            Self::F64 => "double",
            Self::Char => "char",
            Self::Str => "string",
        }
    }

    /// Whether the type is a floating-point type.
    pub(crate) fn is_float(self) -> bool {
        matches!(self, Self::F32 | Self::F64)
    }

    /// Whether the type is an integer type (chars excluded).
    pub(crate) fn is_int(self) -> bool {
        !matches!(self, Self::F32 | Self::F64 | Self::Char | Self::Str)
    }
}

/// Element `i` of little-endian `bytes` of `dtype` as `f64`.
pub(crate) fn as_f64(dtype: NcType, bytes: &[u8], i: usize) -> f64 {
    let n = dtype.size().max(1);
    let b = &bytes[i * n..(i + 1) * n];
    macro_rules! le {
        ($t:ty) => {{
            let mut a = [0u8; std::mem::size_of::<$t>()];
            a.copy_from_slice(b);
            <$t>::from_le_bytes(a)
        }};
    }
    #[allow(clippy::cast_precision_loss)]
    match dtype {
        NcType::I8 => f64::from(le!(i8)),
        NcType::U8 | NcType::Char => f64::from(le!(u8)),
        NcType::I16 => f64::from(le!(i16)),
        NcType::U16 => f64::from(le!(u16)),
        NcType::I32 => f64::from(le!(i32)),
        NcType::U32 => f64::from(le!(u32)),
        NcType::I64 => le!(i64) as f64,
        NcType::U64 => le!(u64) as f64,
        NcType::F32 => f64::from(le!(f32)),
        NcType::F64 => le!(f64),
        NcType::Str => f64::NAN,
    }
}

/// Element `i` of an integer type as `i128` (exact).
fn as_i128(dtype: NcType, bytes: &[u8], i: usize) -> Option<i128> {
    let n = dtype.size();
    let b = bytes.get(i * n..(i + 1) * n)?;
    let mut a = [0u8; 8];
    a[..n].copy_from_slice(b);
    let u = u64::from_le_bytes(a);
    #[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
    Some(match dtype {
        NcType::I8 => i128::from(u as u8 as i8),
        NcType::I16 => i128::from(u as u16 as i16),
        NcType::I32 => i128::from(u as u32 as i32),
        NcType::I64 => i128::from(u as i64),
        NcType::U8 | NcType::U16 | NcType::U32 | NcType::U64 | NcType::Char => i128::from(u),
        NcType::F32 | NcType::F64 | NcType::Str => return None,
    })
}

/// Element `i` as text for messages.
pub(crate) fn show(dtype: NcType, bytes: &[u8], i: usize) -> String {
    match dtype {
        #[allow(clippy::cast_possible_truncation)]
        NcType::F32 => {
            let x = as_f64(dtype, bytes, i) as f32;
            if big_or_tiny(f64::from(x)) {
                format!("{x:e}")
            } else {
                format!("{x}")
            }
        }
        NcType::F64 => num(as_f64(dtype, bytes, i)),
        t => as_i128(t, bytes, i).map_or_else(String::new, |x| x.to_string()),
    }
}

fn big_or_tiny(x: f64) -> bool {
    x.is_finite() && x != 0.0 && !(1e-6..1e16).contains(&x.abs())
}

/// A number for messages (exponent notation when very large or small).
pub(crate) fn num(x: f64) -> String {
    if big_or_tiny(x) {
        format!("{x:e}")
    } else {
        format!("{x}")
    }
}

/// Raw equality of element `i` of `a` and element `j` of `b`: the same
/// bits, or two NaNs.
pub(crate) fn same_raw_at(dtype: NcType, a: &[u8], i: usize, b: &[u8], j: usize) -> bool {
    let n = dtype.size();
    let (x, y) = (&a[i * n..(i + 1) * n], &b[j * n..(j + 1) * n]);
    x == y || (dtype.is_float() && as_f64(dtype, a, i).is_nan() && as_f64(dtype, b, j).is_nan())
}

/// Time values of a source in other units than the store's: both decode to
/// instants (nanoseconds), compared exactly for integers and to within the
/// rounding of the stored type for floats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeMap {
    /// Nanoseconds per source unit.
    pub(crate) src_unit: i128,
    /// Nanoseconds per store unit.
    pub(crate) store_unit: i128,
    /// Source reference instant minus the store's, in nanoseconds.
    pub(crate) shift: i128,
}

impl TimeMap {
    /// Whether stored element `j` of `z` is source element `i` of `s` at
    /// the same instant.
    pub(crate) fn same_at(&self, dtype: NcType, s: &[u8], i: usize, z: &[u8], j: usize) -> bool {
        if dtype.is_int() {
            let (Some(a), Some(b)) = (as_i128(dtype, s, i), as_i128(dtype, z, j)) else {
                return false;
            };
            // a·su + (ref_s − ref_z) == b·zu, exactly.
            return a
                .checked_mul(self.src_unit)
                .and_then(|x| x.checked_add(self.shift))
                .zip(b.checked_mul(self.store_unit))
                .is_some_and(|(x, y)| x == y);
        }
        let (want, b) = (self.want(dtype, s, i), as_f64(dtype, z, j));
        if want.is_nan() || b.is_nan() {
            return want.is_nan() && b.is_nan();
        }
        (b - want).abs() <= Self::tolerance(dtype, want)
    }

    /// Source element `i` of `s` in the store's units (as `f64`).
    pub(crate) fn want(&self, dtype: NcType, s: &[u8], i: usize) -> f64 {
        let a = as_f64(dtype, s, i);
        #[allow(clippy::cast_precision_loss)]
        let want = (a * self.src_unit as f64 + self.shift as f64) / self.store_unit as f64;
        want
    }

    /// How far a stored float of `dtype` may be from `want` (the
    /// conversion's rounding).
    pub(crate) fn tolerance(dtype: NcType, want: f64) -> f64 {
        match dtype {
            NcType::F32 => ulp32(want as f32),
            _ => 4.0 * ulp64(want),
        }
    }
}

fn ulp64(x: f64) -> f64 {
    let x = x.abs();
    if x.is_finite() {
        f64::from_bits(x.to_bits() + 1) - x
    } else {
        0.0
    }
}

fn ulp32(x: f32) -> f64 {
    let x = x.abs();
    if x.is_finite() {
        f64::from(f32::from_bits(x.to_bits() + 1) - x)
    } else {
        0.0
    }
}

/// How a CF reader decodes one side's raw values.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Cf {
    /// Raw values that are masked (`_FillValue`, `missing_value`), as
    /// little-endian bytes of the array type.
    pub(crate) masked: Vec<Vec<u8>>,
    /// `scale_factor`.
    pub(crate) scale: Option<f64>,
    /// `add_offset`.
    pub(crate) offset: Option<f64>,
}

impl Cf {
    /// Element `i` decoded: NaN where masked, else unpacked.
    pub(crate) fn decode(&self, dtype: NcType, bytes: &[u8], i: usize) -> f64 {
        let n = dtype.size();
        let raw = &bytes[i * n..(i + 1) * n];
        let x = as_f64(dtype, bytes, i);
        let masked = self.masked.iter().any(|m| {
            m.as_slice() == raw || (dtype.is_float() && x.is_nan() && as_f64(dtype, m, 0).is_nan())
        });
        if masked {
            return f64::NAN;
        }
        x * self.scale.unwrap_or(1.0) + self.offset.unwrap_or(0.0)
    }
}

/// Decoded equality: both masked (or NaN), or equal values.
pub(crate) fn same_decoded(a: f64, b: f64) -> bool {
    a == b || (a.is_nan() && b.is_nan())
}

/// Row-major index of the `k`-th element of a region (`count`) as absolute
/// indices from `start`.
pub(crate) fn element_index(start: &[u64], count: &[u64], mut k: u64) -> Vec<u64> {
    let mut idx = vec![0u64; count.len()];
    for d in (0..count.len()).rev() {
        let c = count[d].max(1);
        idx[d] = start[d] + k % c;
        k /= c;
    }
    idx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_equality_is_bitwise_and_nan_aware() {
        let a = [f32::NAN.to_le_bytes(), 1f32.to_le_bytes()].concat();
        let b = [
            f32::from_bits(0x7fc0_0001).to_le_bytes(),
            1f32.to_le_bytes(),
        ]
        .concat();
        assert!(same_raw_at(NcType::F32, &a, 0, &b, 0));
        assert!(same_raw_at(NcType::F32, &a, 1, &b, 1));
        assert!(!same_raw_at(NcType::F32, &a, 0, &b, 1));
        let c = (-0f32).to_le_bytes();
        assert!(!same_raw_at(NcType::F32, &0f32.to_le_bytes(), 0, &c, 0));
        assert_eq!(element_index(&[10, 20], &[2, 3], 4), vec![11, 21]);
        assert_eq!(show(NcType::I16, &(-5i16).to_le_bytes(), 0), "-5");
    }

    #[test]
    fn time_values_compare_by_instant() {
        // days since 2000-01-02 (source) vs hours since 2000-01-01 (store).
        let day = 86_400_000_000_000i128;
        let m = TimeMap {
            src_unit: day,
            store_unit: day / 24,
            shift: day,
        };
        assert!(m.same_at(NcType::I32, &1i32.to_le_bytes(), 0, &48i32.to_le_bytes(), 0));
        assert!(!m.same_at(NcType::I32, &1i32.to_le_bytes(), 0, &47i32.to_le_bytes(), 0));
        assert!(m.same_at(
            NcType::F64,
            &0.5f64.to_le_bytes(),
            0,
            &36f64.to_le_bytes(),
            0
        ));
        assert!(!m.same_at(
            NcType::F64,
            &0.5f64.to_le_bytes(),
            0,
            &36.001f64.to_le_bytes(),
            0
        ));
    }

    #[test]
    fn cf_decoding_masks_and_unpacks() {
        let cf = Cf {
            masked: vec![(-32767i16).to_le_bytes().to_vec()],
            scale: Some(0.5),
            offset: Some(10.0),
        };
        let raw = [(-32767i16).to_le_bytes(), 4i16.to_le_bytes()].concat();
        assert!(cf.decode(NcType::I16, &raw, 0).is_nan());
        assert_eq!(cf.decode(NcType::I16, &raw, 1), 12.0);
        // A wrong fill (0) masks a real zero and leaves the fill unmasked.
        let wrong = Cf {
            masked: vec![0i16.to_le_bytes().to_vec()],
            ..cf.clone()
        };
        let zero = 0i16.to_le_bytes();
        assert!(!same_decoded(
            cf.decode(NcType::I16, &zero, 0),
            wrong.decode(NcType::I16, &zero, 0)
        ));
        let nanfill = Cf {
            masked: vec![f64::NAN.to_le_bytes().to_vec()],
            ..Cf::default()
        };
        assert!(nanfill
            .decode(NcType::F64, &f64::NAN.to_le_bytes(), 0)
            .is_nan());
    }
}
