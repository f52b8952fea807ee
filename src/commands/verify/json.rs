//! Zarr metadata JSON read as Zarr readers read it, and the rules they apply
//! to attributes and fill values.
//!
//! * Python's `json` (zarr-python, xarray) writes non-finite floats as the
//!   bare tokens `NaN`, `Infinity` and `-Infinity`, which strict JSON
//!   parsers refuse: [`parse`] accepts them and keeps them apart from the
//!   strings `"NaN"` etc. (a float attribute that became a string is a
//!   difference, a float written as a bare token is not).
//! * A store written with `--attrs-json strict` has the strings `"NaN"`,
//!   `"Infinity"`, `"-Infinity"` for them instead (the Zarr convention for
//!   float fill values), and no bare token anywhere ([`not_strict`]):
//!   with `strict`, the comparisons take those strings as the numbers.
//! * A v3 array's `_FillValue` attribute is xarray's encoding: for floats
//!   the base64 text of the little-endian float64 bytes (a number is
//!   accepted too), for chars the base64 of the byte, for integers a number.
//! * A v2 array's fill value is its `.zarray` `fill_value`: a number, the
//!   strings `"NaN"`, `"Infinity"`, `"-Infinity"`, or for `|S1` base64 (or
//!   `""`).

use base64::Engine;
use serde_json::Value;

use super::source::{NcAttr, NcType};

/// Stand-ins for the bare tokens inside a parsed document: strings no
/// writer produces (they start with a private-use character).
const NAN: &str = "\u{e000}NaN";
const INF: &str = "\u{e000}Infinity";
const NEG_INF: &str = "\u{e000}-Infinity";

/// Parses a metadata document, accepting the bare tokens `NaN`, `Infinity`
/// and `-Infinity` outside strings (see [`token`]).
///
/// # Errors
/// The parser's error for anything else that is not JSON.
pub(crate) fn parse(text: &str) -> Result<Value, serde_json::Error> {
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            rest = &rest[c.len_utf8()..];
            continue;
        }
        let replaced = [("NaN", NAN), ("-Infinity", NEG_INF), ("Infinity", INF)]
            .into_iter()
            .find(|(tok, _)| {
                rest.starts_with(tok)
                    && !rest[tok.len()..]
                        .chars()
                        .next()
                        .is_some_and(|n| n.is_alphanumeric() || n == '_')
            });
        if let Some((tok, stand_in)) = replaced {
            out.push('"');
            out.push_str(stand_in);
            out.push('"');
            rest = &rest[tok.len()..];
            continue;
        }
        if c == '"' {
            in_string = true;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    serde_json::from_str(&out)
}

/// Whether a document that readers accepting the bare tokens parse is not
/// strict JSON (it holds a bare `NaN`, `Infinity` or `-Infinity`), so
/// strict parsers (tensorstore, zarrita) refuse it.
pub(crate) fn not_strict(text: &str) -> bool {
    serde_json::from_str::<Value>(text).is_err() && parse(text).is_ok()
}

/// The number a string of the strict convention stands for (`"NaN"`,
/// `"Infinity"`, `"-Infinity"`), with `strict`.
fn strict_number(v: &Value, strict: bool) -> Option<f64> {
    if !strict {
        return None;
    }
    match v.as_str()? {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

/// The value of a bare `NaN`/`Infinity`/`-Infinity` token of the document.
pub(crate) fn token(v: &Value) -> Option<f64> {
    match v.as_str()? {
        NAN => Some(f64::NAN),
        INF => Some(f64::INFINITY),
        NEG_INF => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

/// The document with bare tokens turned into the strings Zarr metadata uses
/// for non-finite numbers (`"NaN"`...), for zarrs.
pub(crate) fn standard(mut v: Value) -> Value {
    fn walk(v: &mut Value) {
        match v {
            Value::String(s) => {
                if let Some(rest) = s.strip_prefix('\u{e000}') {
                    *s = rest.to_string();
                }
            }
            Value::Array(a) => a.iter_mut().for_each(walk),
            Value::Object(m) => m.values_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut v);
    v
}

/// The value as it reads in the document (bare tokens bare).
pub(crate) fn show(v: &Value) -> String {
    if let Some(x) = token(v) {
        return if x.is_nan() {
            "NaN".into()
        } else if x > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    match v {
        Value::Array(a) => format!("[{}]", a.iter().map(show).collect::<Vec<_>>().join(", ")),
        other => other.to_string(),
    }
}

/// What kind of JSON value this is, for messages.
pub(crate) fn kind(v: &Value) -> &'static str {
    if token(v).is_some() {
        return "a float";
    }
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a float",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A float element: a JSON float or a bare token (not an integer literal,
/// not a string; with `strict`, the strings of the strict convention).
fn float_of(v: &Value, strict: bool) -> Option<f64> {
    match v {
        Value::Number(n) if n.is_f64() => n.as_f64(),
        other => token(other).or_else(|| strict_number(other, strict)),
    }
}

/// An integer element: a JSON integer.
fn int_of(v: &Value) -> Option<i128> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from)),
        _ => None,
    }
}

fn same_f64(a: f64, b: f64) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

fn same_f32(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

/// The elements of a stored attribute: one value or a list.
fn elements(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    }
}

/// Why the stored attribute `store` is not the source attribute `src`, with
/// its type: `None` when a reader gets the same value and type. With
/// `strict` (`--attrs-json strict`), NaN and the infinities of float
/// attributes are the strings `"NaN"`, `"Infinity"`, `"-Infinity"`.
pub(crate) fn attr_problem(src: &NcAttr, store: &Value, strict: bool) -> Option<String> {
    let wrong_kind = |want: &str, got: &Value| {
        Some(format!(
            "{want} in the sources, {} in the store",
            kind_of_elements(got)
        ))
    };
    match src {
        NcAttr::Text(s) => match store {
            Value::String(t) if token(store).is_none() => (t != s).then(|| "text differs".into()),
            other => wrong_kind("text", other),
        },
        NcAttr::Strings(v) => {
            let els = elements(store);
            if !els.iter().all(|e| e.is_string() && token(e).is_none()) {
                return wrong_kind("strings", store);
            }
            let got: Vec<&str> = els.iter().filter_map(|e| e.as_str()).collect();
            (got != v.iter().map(String::as_str).collect::<Vec<_>>())
                .then(|| "strings differ".into())
        }
        NcAttr::F32(v) => floats(store, v.len(), strict, |k, x| same_f32(v[k], x as f32)),
        NcAttr::F64(v) => floats(store, v.len(), strict, |k, x| same_f64(v[k], x)),
        NcAttr::I8(v) => ints(store, v.len(), |k| i128::from(v[k])),
        NcAttr::U8(v) => ints(store, v.len(), |k| i128::from(v[k])),
        NcAttr::I16(v) => ints(store, v.len(), |k| i128::from(v[k])),
        NcAttr::U16(v) => ints(store, v.len(), |k| i128::from(v[k])),
        NcAttr::I32(v) => ints(store, v.len(), |k| i128::from(v[k])),
        NcAttr::U32(v) => ints(store, v.len(), |k| i128::from(v[k])),
        NcAttr::I64(v) => ints(store, v.len(), |k| i128::from(v[k])),
        NcAttr::U64(v) => ints(store, v.len(), |k| i128::from(v[k])),
        NcAttr::Members(m) => {
            let Value::Object(o) = store else {
                return wrong_kind("enum members", store);
            };
            let same =
                o.len() == m.len() && m.iter().all(|(k, v)| o.get(k).and_then(int_of) == Some(*v));
            (!same).then(|| "members differ".into())
        }
    }
}

fn kind_of_elements(v: &Value) -> String {
    match v {
        Value::Array(a) if !a.is_empty() => format!("a list of {}", plural(kind(&a[0]))),
        other => kind(other).to_string(),
    }
}

fn plural(k: &str) -> String {
    let k = k
        .strip_prefix("an ")
        .or_else(|| k.strip_prefix("a "))
        .unwrap_or(k);
    format!("{k}s")
}

/// Numeric attributes of `n` elements: a scalar for one, a list for more
/// (a list of one is accepted too).
fn count_ok(store: &Value, n: usize) -> Option<String> {
    let got = elements(store).len();
    (got != n).then(|| format!("{n} value(s) in the sources, {got} in the store"))
}

fn floats(
    store: &Value,
    n: usize,
    strict: bool,
    same: impl Fn(usize, f64) -> bool,
) -> Option<String> {
    if let Some(p) = count_ok(store, n) {
        return Some(p);
    }
    for (k, e) in elements(store).into_iter().enumerate() {
        match float_of(e, strict) {
            None => {
                return Some(format!(
                    "a float in the sources, {} in the store",
                    kind_of_elements(store)
                ))
            }
            Some(x) if !same(k, x) => return Some("value differs".into()),
            Some(_) => {}
        }
    }
    None
}

fn ints(store: &Value, n: usize, want: impl Fn(usize) -> i128) -> Option<String> {
    if let Some(p) = count_ok(store, n) {
        return Some(p);
    }
    for (k, e) in elements(store).into_iter().enumerate() {
        match int_of(e) {
            None => {
                return Some(format!(
                    "an integer in the sources, {} in the store",
                    kind_of_elements(store)
                ))
            }
            Some(x) if x != want(k) => return Some("value differs".into()),
            Some(_) => {}
        }
    }
    None
}

/// Little-endian bytes of `x` as `dtype`, when `x` is exactly a value of it.
pub(crate) fn f64_bytes(x: f64, dtype: NcType) -> Option<Vec<u8>> {
    #[allow(clippy::cast_possible_truncation)]
    match dtype {
        NcType::F32 => Some((x as f32).to_le_bytes().to_vec()),
        NcType::F64 => Some(x.to_le_bytes().to_vec()),
        NcType::Str => None,
        _ => {
            if x.fract() != 0.0 || !x.is_finite() || x.abs() > 1.9e19 {
                return None;
            }
            int_bytes(x as i128, dtype)
        }
    }
}

/// Little-endian bytes of `x` as the integer type `dtype`, if it fits.
pub(crate) fn int_bytes(x: i128, dtype: NcType) -> Option<Vec<u8>> {
    Some(match dtype {
        NcType::I8 => i8::try_from(x).ok()?.to_le_bytes().to_vec(),
        NcType::U8 | NcType::Char => u8::try_from(x).ok()?.to_le_bytes().to_vec(),
        NcType::I16 => i16::try_from(x).ok()?.to_le_bytes().to_vec(),
        NcType::U16 => u16::try_from(x).ok()?.to_le_bytes().to_vec(),
        NcType::I32 => i32::try_from(x).ok()?.to_le_bytes().to_vec(),
        NcType::U32 => u32::try_from(x).ok()?.to_le_bytes().to_vec(),
        NcType::I64 => i64::try_from(x).ok()?.to_le_bytes().to_vec(),
        NcType::U64 => u64::try_from(x).ok()?.to_le_bytes().to_vec(),
        #[allow(clippy::cast_precision_loss)]
        NcType::F32 | NcType::F64 => f64_bytes(x as f64, dtype)?,
        NcType::Str => return None,
    })
}

/// A JSON number (or bare token) as `dtype` bytes.
fn number_bytes(v: &Value, dtype: NcType) -> Option<Vec<u8>> {
    if let Some(i) = int_of(v) {
        return int_bytes(i, dtype);
    }
    f64_bytes(v.as_f64().or_else(|| token(v))?, dtype)
}

fn base64(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(s).ok()
}

/// The `_FillValue` attribute of a v3 array as a reader (xarray) decodes it,
/// as little-endian bytes of `dtype`.
///
/// # Errors
/// Why a reader cannot take it as a fill value of `dtype`.
pub(crate) fn fill_attr_v3(v: &Value, dtype: NcType) -> Result<Vec<u8>, String> {
    let bad = || {
        format!(
            "{} is not a fill value of a {} array",
            show(v),
            dtype.name()
        )
    };
    match (dtype, v) {
        (NcType::F32 | NcType::F64, Value::String(s)) if token(v).is_none() => {
            let b = base64(s).filter(|b| b.len() == 8).ok_or_else(bad)?;
            let mut a = [0u8; 8];
            a.copy_from_slice(&b);
            f64_bytes(f64::from_le_bytes(a), dtype).ok_or_else(bad)
        }
        (NcType::Char, Value::String(s)) if token(v).is_none() => {
            let b = base64(s).filter(|b| b.len() <= 1).ok_or_else(bad)?;
            Ok(vec![b.first().copied().unwrap_or(0)])
        }
        (NcType::Str, _) => Err(bad()),
        (_, Value::String(_)) if token(v).is_none() => Err(bad()),
        (t, _) => number_bytes(v, t).ok_or_else(bad),
    }
}

/// The `fill_value` of a v2 array as a reader decodes it, as little-endian
/// bytes of `dtype`; `None` for `null` (no fill: nothing is masked).
///
/// # Errors
/// Why a reader cannot take it as a fill value of `dtype`.
pub(crate) fn fill_value_v2(v: &Value, dtype: NcType) -> Result<Option<Vec<u8>>, String> {
    let bad = || {
        format!(
            "{} is not a fill value of a {} array",
            show(v),
            dtype.name()
        )
    };
    match (dtype, v) {
        (_, Value::Null) => Ok(None),
        (NcType::F32 | NcType::F64, Value::String(s)) => {
            let x = match s.as_str() {
                "NaN" => f64::NAN,
                "Infinity" => f64::INFINITY,
                "-Infinity" => f64::NEG_INFINITY,
                _ => token(v).ok_or_else(bad)?,
            };
            f64_bytes(x, dtype).map(Some).ok_or_else(bad)
        }
        (NcType::Char, Value::String(s)) => {
            let b = base64(s).filter(|b| b.len() <= 1).ok_or_else(bad)?;
            Ok(Some(vec![b.first().copied().unwrap_or(0)]))
        }
        (NcType::Str, Value::String(_)) => Ok(None),
        (_, Value::String(_)) => Err(bad()),
        (t, _) => number_bytes(v, t).map(Some).ok_or_else(bad),
    }
}

/// `x` as `dtype` bytes when it is exactly a value of that type (source
/// values: a fill or missing value that the type cannot hold exactly masks
/// nothing).
fn exact_bytes(x: f64, dtype: NcType) -> Option<Vec<u8>> {
    #[allow(clippy::cast_possible_truncation)]
    if dtype == NcType::F32 {
        let y = x as f32;
        return (f64::from(y) == x || x.is_nan()).then(|| y.to_le_bytes().to_vec());
    }
    f64_bytes(x, dtype)
}

/// `x` as `dtype` bytes when exactly representable.
fn exact_int_bytes(x: i128, dtype: NcType) -> Option<Vec<u8>> {
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
    match dtype {
        NcType::F32 => {
            let y = x as f32;
            (y.is_finite() && f64::from(y) as i128 == x).then(|| y.to_le_bytes().to_vec())
        }
        NcType::F64 => {
            let y = x as f64;
            (y as i128 == x).then(|| y.to_le_bytes().to_vec())
        }
        _ => int_bytes(x, dtype),
    }
}

/// A source attribute's values as little-endian bytes of `dtype`, those
/// the type holds exactly (for `missing_value`).
pub(crate) fn src_bytes(a: &NcAttr, dtype: NcType) -> Vec<Vec<u8>> {
    let int = |x: i128| exact_int_bytes(x, dtype);
    match a {
        NcAttr::I8(v) => v.iter().filter_map(|&x| int(x.into())).collect(),
        NcAttr::U8(v) => v.iter().filter_map(|&x| int(x.into())).collect(),
        NcAttr::I16(v) => v.iter().filter_map(|&x| int(x.into())).collect(),
        NcAttr::U16(v) => v.iter().filter_map(|&x| int(x.into())).collect(),
        NcAttr::I32(v) => v.iter().filter_map(|&x| int(x.into())).collect(),
        NcAttr::U32(v) => v.iter().filter_map(|&x| int(x.into())).collect(),
        NcAttr::I64(v) => v.iter().filter_map(|&x| int(x.into())).collect(),
        NcAttr::U64(v) => v.iter().filter_map(|&x| int(x.into())).collect(),
        NcAttr::F32(v) if dtype == NcType::F32 => {
            v.iter().map(|x| x.to_le_bytes().to_vec()).collect()
        }
        NcAttr::F32(v) => v
            .iter()
            .filter_map(|&x| exact_bytes(x.into(), dtype))
            .collect(),
        NcAttr::F64(v) => v.iter().filter_map(|&x| exact_bytes(x, dtype)).collect(),
        NcAttr::Text(s) if dtype == NcType::Char && s.len() <= 1 => {
            vec![vec![s.as_bytes().first().copied().unwrap_or(0)]]
        }
        NcAttr::Text(_) | NcAttr::Strings(_) | NcAttr::Members(_) => Vec::new(),
    }
}

/// A source `_FillValue` as little-endian bytes of `dtype`: one value the
/// type holds exactly; otherwise readers mask nothing with it (`None`).
pub(crate) fn src_fill(a: &NcAttr, dtype: NcType) -> Option<Vec<u8>> {
    let n = match a {
        NcAttr::I8(v) => v.len(),
        NcAttr::U8(v) => v.len(),
        NcAttr::I16(v) => v.len(),
        NcAttr::U16(v) => v.len(),
        NcAttr::I32(v) => v.len(),
        NcAttr::U32(v) => v.len(),
        NcAttr::I64(v) => v.len(),
        NcAttr::U64(v) => v.len(),
        NcAttr::F32(v) => v.len(),
        NcAttr::F64(v) => v.len(),
        NcAttr::Text(_) => 1,
        NcAttr::Strings(_) | NcAttr::Members(_) => 0,
    };
    if n != 1 {
        return None;
    }
    src_bytes(a, dtype).into_iter().next()
}

/// A stored attribute's values as little-endian bytes of `dtype` (for
/// `missing_value`), skipping what is not a number (with `strict`, the
/// strings of the strict convention are numbers).
pub(crate) fn store_bytes(v: &Value, dtype: NcType, strict: bool) -> Vec<Vec<u8>> {
    elements(v)
        .into_iter()
        .filter_map(|e| {
            number_bytes(e, dtype)
                .or_else(|| strict_number(e, strict).and_then(|x| f64_bytes(x, dtype)))
        })
        .collect()
}

/// A stored attribute as one `f64` (for `scale_factor`, `add_offset`).
pub(crate) fn store_f64(v: &Value, strict: bool) -> Option<f64> {
    let e = elements(v);
    let first = *e.first()?;
    first
        .as_f64()
        .or_else(|| token(first))
        .or_else(|| strict_number(first, strict))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Attributes of a store written with the bare tokens (the default).
    fn attr_problem(src: &NcAttr, store: &Value) -> Option<String> {
        super::attr_problem(src, store, false)
    }

    #[test]
    fn strict_stores_have_strings_for_nan_and_infinity() {
        let two = NcAttr::F64(vec![f64::NAN, f64::NEG_INFINITY]);
        let strings = json!(["NaN", "-Infinity"]);
        assert_eq!(super::attr_problem(&two, &strings, true), None);
        assert!(super::attr_problem(&two, &strings, false)
            .unwrap()
            .contains("a list of strings"));
        // Only those three strings, and only for the values they name.
        assert!(super::attr_problem(&NcAttr::F32(vec![1.5]), &json!("1.5"), true).is_some());
        assert!(super::attr_problem(&NcAttr::F64(vec![1.0]), &json!("Infinity"), true).is_some());
        // Text stays text.
        let t = NcAttr::Text("NaN".into());
        assert_eq!(super::attr_problem(&t, &json!("NaN"), true), None);
        assert_eq!(
            store_bytes(&json!("-Infinity"), NcType::F32, true),
            vec![f32::NEG_INFINITY.to_le_bytes().to_vec()]
        );
        assert!(store_bytes(&json!("-Infinity"), NcType::F32, false).is_empty());
        assert!(store_f64(&json!("NaN"), true).is_some_and(f64::is_nan));
        assert!(not_strict(r#"{"a": NaN}"#));
        assert!(!not_strict(r#"{"a": "NaN"}"#));
        assert!(!not_strict("{"));
    }

    #[test]
    fn bare_tokens_parse_apart_from_strings() {
        let v = parse(
            r#"{"a": NaN, "b": [1.5, -Infinity, Infinity], "c": "NaN", "d": "x NaN \" Infinity"}"#,
        )
        .unwrap();
        assert!(token(&v["a"]).unwrap().is_nan());
        assert_eq!(token(&v["b"][1]), Some(f64::NEG_INFINITY));
        assert_eq!(token(&v["b"][2]), Some(f64::INFINITY));
        assert_eq!(token(&v["c"]), None);
        assert_eq!(v["c"], json!("NaN"));
        assert_eq!(v["d"], json!("x NaN \" Infinity"));
        assert_eq!(show(&v["b"]), "[1.5, -Infinity, Infinity]");
        assert_eq!(kind(&v["a"]), "a float");
        assert_eq!(kind(&v["c"]), "a string");
        let std = standard(v);
        assert_eq!(std["a"], json!("NaN"));
        assert!(parse("{\"a\": NaNa}").is_err());
        assert!(parse("[nan]").is_err());
    }

    #[test]
    fn float_attributes_keep_their_type() {
        let f = NcAttr::F32(vec![1.5]);
        assert_eq!(attr_problem(&f, &json!(1.5)), None);
        assert_eq!(attr_problem(&f, &json!([1.5])), None);
        assert!(attr_problem(&f, &json!("1.5"))
            .unwrap()
            .contains("a string"));
        assert!(attr_problem(&f, &json!(2)).unwrap().contains("an integer"));
        assert!(attr_problem(&f, &json!(1.25)).is_some());
        // float32 compared after rounding the stored float64 to float32.
        let tenth = NcAttr::F32(vec![0.1]);
        assert_eq!(attr_problem(&tenth, &json!(f64::from(0.1f32))), None);
        let nan = NcAttr::F64(vec![f64::NAN]);
        assert_eq!(attr_problem(&nan, &parse("NaN").unwrap()), None);
        assert!(attr_problem(&nan, &json!("NaN"))
            .unwrap()
            .contains("a string"));
        let two = NcAttr::F64(vec![1.0, f64::INFINITY]);
        assert_eq!(attr_problem(&two, &parse("[1.0, Infinity]").unwrap()), None);
        assert!(attr_problem(&two, &json!(1.0)).is_some());
    }

    #[test]
    fn ints_and_text_keep_their_type() {
        let i = NcAttr::I16(vec![0, 100]);
        assert_eq!(attr_problem(&i, &json!([0, 100])), None);
        assert!(attr_problem(&i, &json!([0.0, 100.0]))
            .unwrap()
            .contains("a list of floats"));
        let big = NcAttr::U64(vec![u64::MAX]);
        assert_eq!(attr_problem(&big, &json!(u64::MAX)), None);
        let t = NcAttr::Text("K".into());
        assert_eq!(attr_problem(&t, &json!("K")), None);
        assert!(attr_problem(&t, &json!(["K"])).is_some());
        assert!(attr_problem(&t, &json!("k")).is_some());
        let s = NcAttr::Strings(vec!["a".into(), "b".into()]);
        assert_eq!(attr_problem(&s, &json!(["a", "b"])), None);
    }

    #[test]
    fn v3_fill_attributes_decode_as_xarray_does() {
        // 1e20 as float32, encoded by xarray as base64 of the float64 bytes.
        assert_eq!(
            fill_attr_v3(&json!("AAAAgB2vFUQ="), NcType::F32).unwrap(),
            1e20f32.to_le_bytes().to_vec()
        );
        let nan = base64::engine::general_purpose::STANDARD.encode(f64::NAN.to_le_bytes());
        let b = fill_attr_v3(&json!(nan), NcType::F64).unwrap();
        assert!(f64::from_le_bytes(b.try_into().unwrap()).is_nan());
        assert_eq!(
            fill_attr_v3(&json!(-1e30), NcType::F64).unwrap(),
            (-1e30f64).to_le_bytes().to_vec()
        );
        assert_eq!(
            fill_attr_v3(&json!(-32767), NcType::I16).unwrap(),
            (-32767i16).to_le_bytes().to_vec()
        );
        assert!(fill_attr_v3(&json!("NaN"), NcType::F32).is_err());
        assert!(fill_attr_v3(&json!(1.5), NcType::I16).is_err());
        assert!(fill_attr_v3(&json!(70000), NcType::I16).is_err());
        assert_eq!(fill_attr_v3(&json!("AQ=="), NcType::Char).unwrap(), vec![1]);
        let tok = parse("NaN").unwrap();
        assert!(fill_attr_v3(&tok, NcType::F32).is_ok());
    }

    #[test]
    fn v2_fill_values_decode_as_zarr_python_does() {
        assert_eq!(fill_value_v2(&json!(null), NcType::F32).unwrap(), None);
        let b = fill_value_v2(&json!("NaN"), NcType::F32).unwrap().unwrap();
        assert!(f32::from_le_bytes(b.try_into().unwrap()).is_nan());
        assert_eq!(
            fill_value_v2(&json!("-Infinity"), NcType::F64).unwrap(),
            Some(f64::NEG_INFINITY.to_le_bytes().to_vec())
        );
        assert_eq!(
            fill_value_v2(&json!(4_000_000_000u32), NcType::U32).unwrap(),
            Some(4_000_000_000u32.to_le_bytes().to_vec())
        );
        assert_eq!(
            fill_value_v2(&json!(""), NcType::Char).unwrap(),
            Some(vec![0])
        );
        assert_eq!(
            fill_value_v2(&json!("QQ=="), NcType::Char).unwrap(),
            Some(vec![b'A'])
        );
        assert!(fill_value_v2(&json!("x"), NcType::I32).is_err());
    }

    #[test]
    fn source_fill_values_convert_to_the_variable_type_when_exact() {
        assert_eq!(
            src_bytes(&NcAttr::F64(vec![-32767.0]), NcType::I16),
            vec![(-32767i16).to_le_bytes().to_vec()]
        );
        assert_eq!(src_fill(&NcAttr::F64(vec![0.1]), NcType::F32), None);
        assert_eq!(
            src_fill(&NcAttr::F64(vec![0.5]), NcType::F32),
            Some(0.5f32.to_le_bytes().to_vec())
        );
        assert_eq!(src_fill(&NcAttr::F64(vec![f64::NAN]), NcType::I16), None);
        assert_eq!(src_fill(&NcAttr::I32(vec![70000]), NcType::I16), None);
        assert_eq!(src_fill(&NcAttr::I16(vec![1, 2]), NcType::I16), None);
        assert_eq!(
            src_fill(&NcAttr::Text(String::new()), NcType::Char),
            Some(vec![0])
        );
        let m = NcAttr::Members(vec![("clear".into(), 0), ("cloudy".into(), 1)]);
        assert_eq!(attr_problem(&m, &json!({"cloudy": 1, "clear": 0})), None);
        assert!(attr_problem(&m, &json!({"clear": 0})).is_some());
        assert!(attr_problem(&m, &json!("clear")).is_some());
        assert_eq!(src_bytes(&NcAttr::I16(vec![1, 2]), NcType::I16).len(), 2);
        assert_eq!(store_f64(&json!([0.5]), false), Some(0.5));
        assert_eq!(
            store_bytes(&json!([1, "x"]), NcType::I32, false),
            vec![1i32.to_le_bytes().to_vec()]
        );
    }
}
