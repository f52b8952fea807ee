//! Arrays rounded before compression (`convert --keepbits`, `BitRound`), as
//! the store records them (CF 1.11 §8.4, "Lossy Compression via
//! Quantization"), and the errors of their values (pure).
//!
//! A rounded array has `quantization` (the name of a container array at
//! the store's root), `quantization_nsb` (the mantissa bits kept: an
//! integer below its type's mantissa) and
//! `quantization_maximum_relative_error` (`2^-(nsb+1)`); the container is
//! a scalar with `algorithm = "bitround"` and an `implementation`. Such an
//! array's values are expected to be the sources' rounded to its recorded
//! bits, by the rule of [`crate::model::bitround`] (NaN, ±Inf, the fill
//! values, `missing_value` and netCDF's default fill unchanged), and their
//! error against the sources' own values is measured: relative for normal
//! values, absolute for subnormal ones (whose precision is less than the
//! mantissa: half a unit of the kept place at the smallest normal
//! exponent).
//!
//! Attributes a source variable has itself (a file quantized before the
//! conversion, kept as it was) are compared as any attribute.

use serde::{Deserialize, Serialize};

use super::json;
use super::source::{NcAttr, NcType};
use super::store::{StoreArray, StoreTree};
use super::values::{self, TimeMap};
use crate::model::bitround::{self, Rounder};
use crate::model::schema::{Attr, AttrValue, DType, Var};

/// The attributes of a rounded array.
pub(crate) const ATTRS: [&str; 3] = [
    "quantization",
    "quantization_nsb",
    "quantization_maximum_relative_error",
];

/// The algorithm whose rounding verify reproduces.
const ALGORITHM: &str = "bitround";

/// What a store array records of its rounding.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Recorded {
    /// The container array it names (its path), when it names one.
    pub(crate) container: Option<String>,
    /// How its values are rounded, when the recorded bits are valid.
    pub(crate) round: Option<Round>,
}

/// The rounding a store records for `arr` (of type `t`, named `owner` in
/// messages), its attributes and container checked (each problem a line
/// of `diffs`); `None` when `arr` has no `quantization` attribute, or has
/// the source's own three attributes (`src`: the attribute values the
/// sources may give it, the first one each taken for the fill values).
pub(crate) fn recorded(
    tree: &StoreTree,
    arr: &StoreArray,
    owner: &str,
    t: NcType,
    src: &[(String, Vec<NcAttr>)],
    strict: bool,
    diffs: &mut Vec<String>,
) -> Option<Recorded> {
    let q = arr.attrs.get(ATTRS[0])?;
    let sources_own = ATTRS.iter().all(|n| {
        let (Some(z), Some((_, cands))) = (arr.attrs.get(*n), src.iter().find(|(x, _)| x == n))
        else {
            return false;
        };
        cands
            .iter()
            .any(|c| json::attr_problem(c, z, strict).is_none())
    });
    if sources_own {
        return None;
    }
    let container = match q.as_str().filter(|_| json::token(q).is_none()) {
        Some(name) => {
            let path = name.trim_start_matches('/').to_string();
            check_container(tree, owner, &path, diffs);
            Some(path)
        }
        None => {
            diffs.push(format!(
                "{owner} attribute 'quantization' {}: not the name of a quantization container",
                json::show(q)
            ));
            None
        }
    };
    let nsb = check_bits(arr, owner, t, strict, diffs);
    let round = nsb.and_then(|n| Round::new(t, n, masks(t, src)));
    Some(Recorded { container, round })
}

/// The container at `path`: a scalar array of the store with
/// `algorithm = "bitround"` and an `implementation`.
fn check_container(tree: &StoreTree, owner: &str, path: &str, diffs: &mut Vec<String>) {
    let what = format!("{owner} attribute 'quantization': its container '{path}'");
    let Some(c) = tree.array(path) else {
        diffs.push(format!("{what} is not an array of the store"));
        return;
    };
    if !c.shape.is_empty() {
        diffs.push(format!("{what} is not a scalar (shape {:?})", c.shape));
    }
    match c.attrs.get("algorithm") {
        None => diffs.push(format!(
            "{what} has no attribute 'algorithm' ({ALGORITHM:?} expected)"
        )),
        Some(a) if a.as_str() == Some(ALGORITHM) && json::token(a).is_none() => {}
        Some(a) => diffs.push(format!(
            "{what} has algorithm {}: only {ALGORITHM:?} is verified",
            json::show(a)
        )),
    }
    if !c.attrs.contains_key("implementation") {
        diffs.push(format!("{what} has no attribute 'implementation'"));
    }
}

/// The recorded mantissa bits, when they are valid for `t` and
/// `quantization_maximum_relative_error` is theirs (every other case a
/// line of `diffs`).
fn check_bits(
    arr: &StoreArray,
    owner: &str,
    t: NcType,
    strict: bool,
    diffs: &mut Vec<String>,
) -> Option<u32> {
    let Some(nmant) = dtype(t).and_then(bitround::mantissa_bits) else {
        diffs.push(format!(
            "{owner} attribute 'quantization' on {} values: only float and double values are rounded",
            t.name()
        ));
        return None;
    };
    let missing = |name: &str| {
        format!("{owner} attribute '{name}' is missing from the store, which records the array as rounded")
    };
    let Some(v) = arr.attrs.get(ATTRS[1]) else {
        diffs.push(missing(ATTRS[1]));
        return None;
    };
    let nsb = v
        .as_u64()
        .filter(|_| json::token(v).is_none())
        .and_then(|n| u32::try_from(n).ok())
        .filter(|&n| n < nmant);
    let Some(nsb) = nsb else {
        diffs.push(format!(
            "{owner} attribute 'quantization_nsb' {}: not a number of mantissa bits kept of {} values (an integer 0..{nmant})",
            json::show(v),
            t.name()
        ));
        return None;
    };
    let want = bitround::max_relative_error(nsb);
    match arr.attrs.get(ATTRS[2]) {
        None => diffs.push(missing(ATTRS[2])),
        Some(e) if json::store_f64(e, strict) == Some(want) => {}
        Some(e) => diffs.push(format!(
            "{owner} attribute 'quantization_maximum_relative_error': store {}, 2^-(quantization_nsb+1) = {} for quantization_nsb {nsb}",
            json::show(e),
            values::num(want)
        )),
    }
    Some(nsb)
}

fn dtype(t: NcType) -> Option<DType> {
    match t {
        NcType::F32 => Some(DType::F32),
        NcType::F64 => Some(DType::F64),
        _ => None,
    }
}

/// The bit patterns rounding leaves alone in values of `t` (little-endian
/// bytes): [`bitround::masks`] of the variable with the sources' first
/// `_FillValue` and `missing_value`.
fn masks(t: NcType, src: &[(String, Vec<NcAttr>)]) -> Vec<Vec<u8>> {
    let Some(dtype) = dtype(t) else {
        return Vec::new();
    };
    let attrs = src
        .iter()
        .filter(|(n, _)| n == "_FillValue" || n == "missing_value")
        .filter_map(|(n, cands)| {
            let value = match cands.first()? {
                NcAttr::F32(v) => AttrValue::F32(v.clone()),
                NcAttr::F64(v) => AttrValue::F64(v.clone()),
                _ => return None,
            };
            Some(Attr {
                name: n.clone(),
                value,
            })
        })
        .collect();
    let var = Var {
        name: String::new(),
        path: String::new(),
        dtype,
        dims: Vec::new(),
        shape: Vec::new(),
        source_chunks: None,
        filters: Vec::new(),
        big_endian: false,
        attrs,
        via_netcdf: false,
    };
    bitround::masks(&var)
}

/// How the values of one rounded array are expected.
///
/// Values are little-endian bytes, as everywhere in verify: the native
/// order of the targets zarrforge runs on, which [`Rounder`] takes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Round {
    t: NcType,
    nsb: u32,
    rounder: Rounder,
    /// The patterns left as they are.
    masks: Vec<Vec<u8>>,
    /// `2^-(nsb+1)`.
    bound: f64,
    /// The smallest normal value of the type.
    smallest: f64,
}

impl Round {
    /// Rounding values of `t` to `nsb` mantissa bits, `masks` left alone;
    /// `None` for a type that is not a float or every bit kept.
    pub(crate) fn new(t: NcType, nsb: u32, masks: Vec<Vec<u8>>) -> Option<Self> {
        let rounder = Rounder::new(dtype(t)?, nsb, &masks)?;
        Some(Self {
            t,
            nsb,
            rounder,
            masks,
            bound: bitround::max_relative_error(nsb),
            smallest: match t {
                NcType::F32 => f64::from(f32::MIN_POSITIVE),
                _ => f64::MIN_POSITIVE,
            },
        })
    }

    /// Mantissa bits kept.
    pub(crate) fn nsb(&self) -> u32 {
        self.nsb
    }

    /// The largest relative error of a rounded value: `2^-(nsb+1)`.
    pub(crate) fn bound(&self) -> f64 {
        self.bound
    }

    /// `x` (elements of the array's type) rounded.
    pub(crate) fn apply(&self, x: &[u8]) -> Vec<u8> {
        let mut out = x.to_vec();
        self.rounder.round(&mut out);
        out
    }

    /// Whether element `i` of `x` is a pattern rounding leaves alone.
    fn is_mask(&self, x: &[u8], i: usize) -> bool {
        let n = self.t.size();
        x.get(i * n..(i + 1) * n)
            .is_some_and(|b| self.masks.iter().any(|m| m.as_slice() == b))
    }

    /// `v`, a value of the array's type, rounded (no mask).
    fn value(&self, v: f64) -> f64 {
        match self.t {
            NcType::F32 => {
                let x = v as f32;
                if !x.is_finite() {
                    return f64::from(x);
                }
                let m = bitround::F32_MANTISSA - self.nsb;
                f64::from(f32::from_bits(bitround::round32(x.to_bits(), m)))
            }
            _ => bitround::round_f64(v, self.nsb),
        }
    }

    /// Whether stored element `j` of `z` is source element `i` of `x`
    /// (time values in other units, re-encoded before rounding): the
    /// source's instant in the store's units, rounded, where the
    /// re-encoding may be off by its own rounding (rounding is monotonic:
    /// the rounding of either end of that interval).
    pub(crate) fn same_time(&self, map: &TimeMap, x: &[u8], i: usize, z: &[u8], j: usize) -> bool {
        let (want, b) = (map.want(self.t, x, i), values::as_f64(self.t, z, j));
        if want.is_nan() || b.is_nan() {
            return want.is_nan() && b.is_nan();
        }
        let tolerance = TimeMap::tolerance(self.t, want);
        [want - tolerance, want, want + tolerance]
            .into_iter()
            .any(|w| self.value(w) == b)
    }

    /// The error of stored element `j` of `z` against source element `i`
    /// of `x` (`time`: the source's values in other units), whose rounding
    /// is element `i` of `rounded`.
    pub(crate) fn measure(
        &self,
        x: &[u8],
        rounded: &[u8],
        i: usize,
        z: &[u8],
        j: usize,
        time: Option<&TimeMap>,
    ) -> Measure {
        let t = self.t;
        let (a, expected) = match time {
            Some(map) => {
                let a = map.want(t, x, i);
                (a, self.value(a))
            }
            None => (values::as_f64(t, x, i), values::as_f64(t, rounded, i)),
        };
        let b = values::as_f64(t, z, j);
        // Time values re-encoded are held to their instant (`same_time`).
        self.error(a, expected, b, self.is_mask(x, i), time.is_some())
    }

    /// The errors of `rounded`, the sources' values `x` rounded, against
    /// them, when the store holds `rounded` as it is: `None` when a value
    /// is beyond the bound (for the caller to look at each).
    pub(crate) fn errors_of(&self, x: &[u8], rounded: &[u8]) -> Option<Errors> {
        let mut e = Errors::default();
        let mut add = |a: f64, r: f64, masked: bool| e.add(self.error(a, r, r, masked, false));
        match self.t {
            NcType::F32 => {
                let masks: Vec<[u8; 4]> = (self.masks.iter())
                    .filter_map(|m| m.as_slice().try_into().ok())
                    .collect();
                for (a, r) in x.chunks_exact(4).zip(rounded.chunks_exact(4)) {
                    let (a, r): ([u8; 4], [u8; 4]) = (a.try_into().ok()?, r.try_into().ok()?);
                    let (va, vr) = (f32::from_le_bytes(a), f32::from_le_bytes(r));
                    if !add(f64::from(va), f64::from(vr), masks.contains(&a)) {
                        return None;
                    }
                }
            }
            _ => {
                let masks: Vec<[u8; 8]> = (self.masks.iter())
                    .filter_map(|m| m.as_slice().try_into().ok())
                    .collect();
                for (a, r) in x.chunks_exact(8).zip(rounded.chunks_exact(8)) {
                    let (a, r): ([u8; 8], [u8; 8]) = (a.try_into().ok()?, r.try_into().ok()?);
                    let (va, vr) = (f64::from_le_bytes(a), f64::from_le_bytes(r));
                    if !add(va, vr, masks.contains(&a)) {
                        return None;
                    }
                }
            }
        }
        Some(e)
    }

    /// The error of stored value `b` against the source's `a` (`masked`:
    /// a pattern rounding leaves alone), which rounds to `expected`;
    /// `loose`: within the bound whatever it is.
    fn error(&self, a: f64, expected: f64, b: f64, masked: bool, loose: bool) -> Measure {
        if !a.is_finite() || masked {
            return Measure::Skipped;
        }
        if expected.is_infinite() {
            // The largest values round up to infinity (as BitRound does).
            return Measure::ToInfinity;
        }
        if !b.is_finite() {
            // Not the rounded source: a value difference of its own.
            return Measure::Skipped;
        }
        let abs = (b - a).abs();
        if a.abs() >= self.smallest {
            let rel = abs / a.abs();
            Measure::Error {
                abs,
                rel: Some(rel),
                within: loose || rel <= self.bound,
            }
        } else {
            Measure::Error {
                abs,
                rel: None,
                within: loose || abs <= self.bound * self.smallest,
            }
        }
    }
}

/// The error of one stored value against its source's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Measure {
    /// Not measured: NaN, ±Inf, a fill or missing value, or a stored
    /// value that is not finite.
    Skipped,
    /// A finite source value that rounds to ±Inf.
    ToInfinity,
    /// A finite value.
    Error {
        /// Absolute error.
        abs: f64,
        /// Relative error (a normal source value).
        rel: Option<f64>,
        /// Within the rounding's bound: relative for normal values,
        /// absolute (`bound · smallest normal`) for subnormal ones.
        within: bool,
    },
}

/// The errors of one rounded array's values (of one rank, or summed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Errors {
    /// Values measured.
    pub(crate) values: u64,
    /// Largest absolute error.
    pub(crate) max_abs: f64,
    /// Largest relative error (of normal values).
    pub(crate) max_rel: f64,
    /// Finite values that round to ±Inf (not measured).
    pub(crate) to_infinity: u64,
}

impl Errors {
    /// Adds one measure; whether it is within the bound.
    pub(crate) fn add(&mut self, m: Measure) -> bool {
        match m {
            Measure::Skipped => true,
            Measure::ToInfinity => {
                self.to_infinity += 1;
                true
            }
            Measure::Error { abs, rel, within } => {
                self.values += 1;
                self.max_abs = self.max_abs.max(abs);
                if let Some(r) = rel {
                    self.max_rel = self.max_rel.max(r);
                }
                within
            }
        }
    }

    /// Both ranks' (or blocks') errors.
    pub(crate) fn merge(&mut self, o: &Self) {
        self.values += o.values;
        self.max_abs = self.max_abs.max(o.max_abs);
        self.max_rel = self.max_rel.max(o.max_rel);
        self.to_infinity += o.to_infinity;
    }
}

#[cfg(test)]
mod tests {
    use super::super::store::Format;
    use super::*;

    fn tree(t2m_attrs: &str, container: Option<&str>) -> StoreTree {
        let mut docs = vec![
            (
                "zarr.json".to_string(),
                r#"{"zarr_format": 3, "node_type": "group", "attributes": {}}"#.to_string(),
            ),
            (
                "t2m/zarr.json".to_string(),
                format!(
                    r#"{{"zarr_format": 3, "node_type": "array", "shape": [4], "data_type": "float32",
                    "dimension_names": ["x"], "fill_value": "NaN", "attributes": {t2m_attrs}}}"#
                ),
            ),
        ];
        if let Some(c) = container {
            docs.push(("quantization_info/zarr.json".to_string(), c.to_string()));
        }
        StoreTree::new(Format::V3, &docs)
    }

    const CONTAINER: &str = r#"{"zarr_format": 3, "node_type": "array", "shape": [], "data_type": "int32",
        "fill_value": 0, "attributes": {"algorithm": "bitround", "implementation": "zarrforge version 0.1.0"}}"#;

    fn check(t: &StoreTree, src: &[(String, Vec<NcAttr>)]) -> (Option<Recorded>, Vec<String>) {
        let mut diffs = Vec::new();
        let arr = t.array("t2m").unwrap();
        let r = recorded(t, arr, "'t2m'", NcType::F32, src, false, &mut diffs);
        (r, diffs)
    }

    const GOOD: &str = r#"{"quantization": "quantization_info", "quantization_nsb": 7,
        "quantization_maximum_relative_error": 0.00390625}"#;

    #[test]
    fn a_recorded_rounding_is_checked() {
        let fill = vec![("_FillValue".to_string(), vec![NcAttr::F32(vec![1e20])])];
        let (r, diffs) = check(&tree(GOOD, Some(CONTAINER)), &fill);
        assert!(diffs.is_empty(), "{diffs:?}");
        let r = r.unwrap();
        assert_eq!(r.container.as_deref(), Some("quantization_info"));
        let round = r.round.unwrap();
        assert_eq!(round.nsb(), 7);
        assert!(round.masks.contains(&1e20f32.to_le_bytes().to_vec()));
        // No quantization attribute: not rounded.
        let (r, diffs) = check(&tree("{}", None), &[]);
        assert!(r.is_none() && diffs.is_empty());
        // The source's own attributes: compared as any attribute.
        let own = vec![
            (
                "quantization".into(),
                vec![NcAttr::Text("quantization_info".into())],
            ),
            ("quantization_nsb".into(), vec![NcAttr::I32(vec![7])]),
            (
                "quantization_maximum_relative_error".into(),
                vec![NcAttr::F64(vec![0.003_906_25])],
            ),
        ];
        assert!(check(&tree(GOOD, Some(CONTAINER)), &own).0.is_none());
    }

    #[test]
    fn bad_records_are_one_line_each_naming_the_array() {
        let cases = [
            (
                GOOD.replace(": 7", ": 8"),
                Some(CONTAINER.to_string()),
                "quantization_maximum_relative_error",
            ),
            (
                GOOD.replace(": 7", ": 23"),
                Some(CONTAINER.to_string()),
                "an integer 0..23",
            ),
            (
                GOOD.replace(": 7", ": 7.5"),
                Some(CONTAINER.to_string()),
                "quantization_nsb",
            ),
            (
                GOOD.replace(": 7,", ": -1,"),
                Some(CONTAINER.to_string()),
                "quantization_nsb",
            ),
            (
                GOOD.replace("\"quantization_nsb\": 7,", ""),
                Some(CONTAINER.to_string()),
                "'quantization_nsb' is missing",
            ),
            (GOOD.to_string(), None, "is not an array of the store"),
            (
                GOOD.to_string(),
                Some(CONTAINER.replace("\"algorithm\": \"bitround\", ", "")),
                "no attribute 'algorithm'",
            ),
            (
                GOOD.to_string(),
                Some(CONTAINER.replace("bitround", "bitgroom")),
                "only \"bitround\"",
            ),
            (
                GOOD.to_string(),
                Some(CONTAINER.replace(", \"implementation\": \"zarrforge version 0.1.0\"", "")),
                "'implementation'",
            ),
            (
                GOOD.to_string(),
                Some(CONTAINER.replace("\"shape\": []", "\"shape\": [1]")),
                "not a scalar",
            ),
            (
                GOOD.replace("\"quantization_info\"", "3"),
                Some(CONTAINER.to_string()),
                "not the name",
            ),
        ];
        for (attrs, container, needle) in cases {
            let (r, diffs) = check(&tree(&attrs, container.as_deref()), &[]);
            assert!(r.is_some(), "{attrs}");
            assert_eq!(diffs.len(), 1, "{attrs} {container:?}: {diffs:?}");
            assert!(diffs[0].starts_with("'t2m'"), "{diffs:?}");
            assert!(diffs[0].contains(needle), "{needle}: {diffs:?}");
        }
    }

    #[test]
    fn values_round_and_errors_stay_within_the_bound() {
        let fill = 1e20f32;
        let q = Round::new(NcType::F32, 2, vec![fill.to_le_bytes().to_vec()]).unwrap();
        let src: Vec<f32> = vec![1.3, fill, f32::NAN, f32::MAX, -1.5e-40, 0.0, -2.9];
        let x: Vec<u8> = src.iter().flat_map(|v| v.to_le_bytes()).collect();
        let r = q.apply(&x);
        let got: Vec<f32> = r
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(got[0], 1.25);
        assert_eq!(got[1].to_bits(), fill.to_bits());
        assert!(got[2].is_nan() && got[3].is_infinite());
        let mut e = Errors::default();
        for i in 0..src.len() {
            assert!(e.add(q.measure(&x, &r, i, &r, i, None)), "{i}");
        }
        assert_eq!((e.values, e.to_infinity), (4, 1));
        // 1.3 → 1.25 and -2.9 → -3: the largest errors.
        assert!((e.max_rel - 0.05 / 1.3).abs() < 1e-6, "{e:?}");
        assert!((e.max_abs - 0.1).abs() < 1e-6, "{e:?}");
        assert!(e.max_rel <= q.bound());
        // The same, element by element or a whole block at once.
        assert_eq!(q.errors_of(&x, &r), Some(e));
        // A store value rounded to fewer bits than recorded is beyond it.
        let coarse = 1.0f32.to_le_bytes();
        let m = q.measure(&x, &r, 0, &coarse, 0, None);
        assert!(matches!(m, Measure::Error { within: false, .. }), "{m:?}");
        assert_eq!(q.errors_of(&x[..4], &coarse), None);
        let mut all = Errors::default();
        all.merge(&e);
        all.merge(&Errors {
            values: 1,
            max_abs: 9.0,
            max_rel: 0.0,
            to_infinity: 0,
        });
        assert_eq!((all.values, all.max_abs), (5, 9.0));
    }

    #[test]
    fn rounded_time_values_compare_by_instant() {
        // days (source) to hours (store), rounded to 2 bits: 1.3 days is
        // 31.2 hours, which rounds to 32 (1.00b·2^5; 28 is 1.11b·2^4).
        let m = TimeMap {
            src_unit: 24,
            store_unit: 1,
            shift: 0,
        };
        let q = Round::new(NcType::F64, 2, Vec::new()).unwrap();
        let x = 1.3f64.to_le_bytes();
        assert!(q.same_time(&m, &x, 0, &32f64.to_le_bytes(), 0));
        for wrong in [28f64, 31.2, 31.0, 40.0] {
            assert!(!q.same_time(&m, &x, 0, &wrong.to_le_bytes(), 0), "{wrong}");
        }
        let nan = f64::NAN.to_le_bytes();
        assert!(q.same_time(&m, &nan, 0, &nan, 0));
    }
}
