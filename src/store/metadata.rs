//! Zarr metadata documents (v2 and v3) built from the schema and the plan.
//!
//! The documents match what xarray and zarr-python write for the same data,
//! so `xarray.open_zarr` decodes them as `xarray.open_dataset` decodes the
//! source: `_FillValue` as xarray encodes it (base64 of the little-endian
//! float64 for floats in v3; the array `fill_value` in v2), other attributes
//! as plain JSON, netCDF `char` as one-byte strings (`S1`). NaN and the
//! infinities in other float attributes are written as `--attrs-json`
//! says ([`to_json_bytes`]).

use base64::Engine;
use serde_json::{json, Map, Value};

use crate::cli::config::{AttrsJson, BloscShuffle, Codec, ZarrFormat};
use crate::model::schema::{fill_bytes, fill_text, pad_bytes, Attr, AttrValue, DType, Group, Var};
use crate::model::source_codecs::{Endian, Filter};
use crate::pipeline::plan::ArrayPlan;

/// Marks a non-finite float attribute inside a JSON document until it is
/// written out as the bare `NaN`, `Infinity` or `-Infinity` token or as
/// that string (see [`to_json_bytes`]). Attribute strings never hold a NUL (netCDF text
/// attributes are read without them), so the marker cannot clash.
const NONFINITE: &str = "\u{0}zarrforge-nonfinite:";

/// A float attribute value: a JSON number, or for NaN and the infinities
/// a marked value that [`to_json_bytes`] writes in the chosen form.
pub fn attr_float_json(x: f64) -> Value {
    if x.is_finite() {
        json!(x)
    } else {
        let t = if x.is_nan() {
            "NaN"
        } else if x > 0.0 {
            "Infinity"
        } else {
            "-Infinity"
        };
        Value::String(format!("{NONFINITE}{t}"))
    }
}

/// A metadata document as the bytes written to the store: pretty JSON in
/// which non-finite float attributes are, by `mode`, the bare `NaN`,
/// `Infinity`, `-Infinity` tokens Python's `json` (hence zarr-python and
/// xarray) writes and reads back as floats, or the strings `"NaN"`,
/// `"Infinity"`, `"-Infinity"` (strict JSON; readers get text).
///
/// # Errors
/// When serde cannot serialise the document.
pub fn to_json_bytes(v: &Value, mode: AttrsJson) -> serde_json::Result<Vec<u8>> {
    let text = serde_json::to_string_pretty(v)?;
    let marker = serde_json::to_string(NONFINITE)?;
    let open = &marker[..marker.len() - 1];
    if !text.contains(open) {
        return Ok(text.into_bytes());
    }
    let mut out = text;
    for t in ["NaN", "Infinity", "-Infinity"] {
        let written = match mode {
            AttrsJson::Python => t.to_string(),
            AttrsJson::Strict => format!("\"{t}\""),
        };
        out = out.replace(&format!("{open}{t}\""), &written);
    }
    Ok(out.into_bytes())
}

/// A JSON number for a float, or the Zarr text for NaN and infinities (the
/// form of an array's `fill_value`).
pub fn float_json(x: f64) -> Value {
    if x.is_nan() {
        json!("NaN")
    } else if x == f64::INFINITY {
        json!("Infinity")
    } else if x == f64::NEG_INFINITY {
        json!("-Infinity")
    } else {
        json!(x)
    }
}

fn list_or_scalar<T, F: Fn(&T) -> Value>(v: &[T], f: F) -> Value {
    if v.len() == 1 {
        f(&v[0])
    } else {
        Value::Array(v.iter().map(f).collect())
    }
}

/// An attribute value as JSON: one element as a scalar, more as a list.
pub fn attr_json(v: &AttrValue) -> Value {
    match v {
        AttrValue::I8(x) => list_or_scalar(x, |a| json!(a)),
        AttrValue::U8(x) => list_or_scalar(x, |a| json!(a)),
        AttrValue::I16(x) => list_or_scalar(x, |a| json!(a)),
        AttrValue::U16(x) => list_or_scalar(x, |a| json!(a)),
        AttrValue::I32(x) => list_or_scalar(x, |a| json!(a)),
        AttrValue::U32(x) => list_or_scalar(x, |a| json!(a)),
        AttrValue::I64(x) => list_or_scalar(x, |a| json!(a)),
        AttrValue::U64(x) => list_or_scalar(x, |a| json!(a)),
        AttrValue::F32(x) => list_or_scalar(x, |a| attr_float_json(f64::from(*a))),
        AttrValue::F64(x) => list_or_scalar(x, |a| attr_float_json(*a)),
        AttrValue::Text(s) => json!(s),
        AttrValue::Json(s) => serde_json::from_str(s).unwrap_or_else(|_| json!(s)),
        AttrValue::Strings(x) => list_or_scalar(x, |a| json!(a)),
    }
}

/// Decodes little-endian fill bytes of `dtype` into its JSON fill value.
fn fill_json(dtype: DType, b: &[u8], v2: bool) -> Value {
    macro_rules! int {
        ($t:ty) => {{
            let mut a = [0u8; std::mem::size_of::<$t>()];
            a.copy_from_slice(&b[..std::mem::size_of::<$t>()]);
            json!(<$t>::from_le_bytes(a))
        }};
    }
    match dtype {
        DType::I8 => int!(i8),
        DType::U8 => int!(u8),
        DType::I16 => int!(i16),
        DType::U16 => int!(u16),
        DType::I32 => int!(i32),
        DType::U32 => int!(u32),
        DType::I64 => int!(i64),
        DType::U64 => int!(u64),
        DType::F32 => {
            let x = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            float_json(f64::from(x))
        }
        DType::F64 => {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[..8]);
            float_json(f64::from_le_bytes(a))
        }
        // Base64 of the byte, NUL included ("AA=="), as xarray writes it.
        DType::Char => json!(base64::engine::general_purpose::STANDARD.encode(&b[..1])),
        DType::String => {
            if v2 {
                Value::Null
            } else {
                json!("")
            }
        }
    }
}

/// The attributes of a variable as a JSON object for `format`.
///
/// v3: `_FillValue` as xarray writes it (base64 float64 for floats, base64
/// bytes for chars). v2: `_FillValue` lives in the array's `fill_value` and is
/// left out here; `_ARRAY_DIMENSIONS` carries the dimension names.
pub fn var_attributes(var: &Var, format: ZarrFormat) -> Map<String, Value> {
    let mut m = Map::new();
    for Attr { name, value } in &var.attrs {
        if name == "_FillValue" {
            // v2 keeps it in the array's fill_value; xarray cannot decode a
            // v3 `_FillValue` attribute on a bytes or string array (the fill
            // stays in the array's fill_value, see [`format_warnings`]).
            if format == ZarrFormat::V2 || matches!(var.dtype, DType::Char | DType::String) {
                continue;
            }
            if let Some(b) = fill_bytes(var) {
                let enc = base64::engine::general_purpose::STANDARD;
                let j = match var.dtype {
                    DType::F32 => {
                        let x = f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
                        json!(enc.encode(x.to_le_bytes()))
                    }
                    DType::F64 => json!(enc.encode(&b)),
                    DType::Char => json!(enc.encode(&b)),
                    other => fill_json(other, &b, false),
                };
                m.insert(name.clone(), j);
                continue;
            }
        }
        m.insert(name.clone(), attr_json(value));
    }
    if format == ZarrFormat::V2 {
        m.insert("_ARRAY_DIMENSIONS".into(), json!(var.dims));
    }
    m
}

/// What a store of `format` cannot carry the way the source has it, one
/// line per variable.
pub fn format_warnings(vars: &[&Var], format: ZarrFormat) -> Vec<String> {
    vars.iter()
        .filter(|v| {
            format == ZarrFormat::V3
                && matches!(v.dtype, DType::Char | DType::String)
                && v.attr("_FillValue").is_some()
        })
        .map(|v| {
            format!(
                "variable '{}': the _FillValue of a {} variable is kept as the array's fill_value only (xarray cannot read it as a Zarr v3 attribute; use --zarr-format 2 to keep it)",
                v.path,
                v.dtype.nc_name()
            )
        })
        .collect()
}

/// What `--attrs-json strict` turns into text: one line per variable or
/// group with NaN or infinite float attributes (a variable's `_FillValue`
/// aside: xarray's base64 in v3, the array's `fill_value` in v2).
pub fn attrs_json_warnings(root: &Group, mode: AttrsJson) -> Vec<String> {
    if mode != AttrsJson::Strict {
        return Vec::new();
    }
    let non_finite = |a: &&Attr| match &a.value {
        AttrValue::F32(v) => v.iter().any(|x| !x.is_finite()),
        AttrValue::F64(v) => v.iter().any(|x| !x.is_finite()),
        _ => false,
    };
    let line = |owner: String, attrs: Vec<&Attr>| -> Option<String> {
        if attrs.is_empty() {
            return None;
        }
        let shown: Vec<String> = attrs
            .iter()
            .map(|a| {
                let text = to_json_bytes(&attr_json(&a.value), AttrsJson::Strict)
                    .map(|b| {
                        String::from_utf8_lossy(&b)
                            .split_whitespace()
                            .collect::<String>()
                    })
                    .unwrap_or_default();
                format!("{} = {text}", a.name)
            })
            .collect();
        let infinite_missing = attrs.iter().any(|a| {
            a.name == "missing_value"
                && match &a.value {
                    AttrValue::F32(v) => v.iter().any(|x| x.is_infinite()),
                    AttrValue::F64(v) => v.iter().any(|x| x.is_infinite()),
                    _ => false,
                }
        });
        Some(format!(
            "{owner}: {} written with text for NaN and infinity (--attrs-json strict): readers get strings, not numbers{}",
            shown.join(", "),
            if infinite_missing {
                "; xarray masks no value with a missing_value in text, so the infinities it names stay in the decoded data"
            } else {
                ""
            }
        ))
    };
    let mut out = Vec::new();
    for g in std::iter::once(root).chain(root.all_groups()) {
        let owner = if g.path.is_empty() {
            "global attributes".to_string()
        } else {
            format!("group '{}'", g.path)
        };
        out.extend(line(owner, g.attrs.iter().filter(non_finite).collect()));
    }
    for v in root.all_vars() {
        let attrs = v
            .attrs
            .iter()
            .filter(|a| a.name != "_FillValue")
            .filter(non_finite)
            .collect();
        out.extend(line(format!("variable '{}'", v.path), attrs));
    }
    out
}

/// Group attributes as a JSON object.
pub fn group_attributes(g: &Group) -> Map<String, Value> {
    g.attrs
        .iter()
        .map(|a| (a.name.clone(), attr_json(&a.value)))
        .collect()
}

fn typesize(dtype: DType) -> usize {
    match dtype {
        DType::String => 1,
        d => d.size(),
    }
}

/// The v3 bytes-to-bytes codecs.
pub fn compressors_v3(codec: &Codec, dtype: DType) -> Vec<Value> {
    match codec {
        Codec::Stored { shuffle, level } => {
            let mut v = Vec::new();
            if let Some(s) = shuffle {
                v.push(json!({"name": "numcodecs.shuffle", "configuration": {"elementsize": s}}));
            }
            if let Some(l) = level {
                v.push(json!({"name": "numcodecs.zlib", "configuration": {"level": l}}));
            }
            v
        }
        Codec::Virtual(c) => c.filters.iter().map(Filter::v3).collect(),
        other => compressor_v3(other, dtype).into_iter().collect(),
    }
}

/// The v3 compressor codec, if any.
pub fn compressor_v3(codec: &Codec, dtype: DType) -> Option<Value> {
    Some(match codec {
        Codec::None | Codec::Source | Codec::Stored { .. } | Codec::Virtual(_) => return None,
        Codec::Zstd(l) => json!({"name": "zstd", "configuration": {"level": l, "checksum": false}}),
        Codec::Gzip(l) => json!({"name": "gzip", "configuration": {"level": l}}),
        Codec::Zlib(l) => json!({"name": "numcodecs.zlib", "configuration": {"level": l}}),
        Codec::Blosc {
            cname,
            clevel,
            shuffle,
        } => json!({"name": "blosc", "configuration": {
            "cname": cname, "clevel": clevel, "shuffle": shuffle.name(),
            "typesize": typesize(dtype), "blocksize": 0}}),
    })
}

/// The v2 compressor (`null` for none).
pub fn compressor_v2(codec: &Codec) -> Value {
    match codec {
        // A source pipeline is all filters (v2 applies the compressor
        // last, and a checksum may follow the compression).
        Codec::None | Codec::Source | Codec::Stored { level: None, .. } | Codec::Virtual(_) => {
            Value::Null
        }
        Codec::Stored { level: Some(l), .. } => json!({"id": "zlib", "level": l}),
        Codec::Zstd(l) => json!({"id": "zstd", "level": l}),
        Codec::Gzip(l) => json!({"id": "gzip", "level": l}),
        Codec::Zlib(l) => json!({"id": "zlib", "level": l}),
        Codec::Blosc {
            cname,
            clevel,
            shuffle,
        } => {
            let s = match shuffle {
                BloscShuffle::None => 0,
                BloscShuffle::Byte => 1,
                BloscShuffle::Bit => 2,
            };
            json!({"id": "blosc", "cname": cname, "clevel": clevel, "shuffle": s, "blocksize": 0})
        }
    }
}

fn serializer_v3(dtype: DType) -> Value {
    match dtype {
        DType::String => json!({"name": "vlen-utf8"}),
        d if d.size() == 1 => json!({"name": "bytes"}),
        _ => json!({"name": "bytes", "configuration": {"endian": "little"}}),
    }
}

/// v3 codec list for one array (with the sharding codec when sharded).
pub fn codecs_v3(a: &ArrayPlan, codec: &Codec) -> Vec<Value> {
    let mut inner = vec![match codec {
        Codec::Virtual(c) if a.dtype != DType::String => c.serializer_v3(a.dtype.size()),
        _ => serializer_v3(a.dtype),
    }];
    inner.extend(compressors_v3(codec, a.dtype));
    match &a.shards {
        None => inner,
        Some(_) => vec![json!({"name": "sharding_indexed", "configuration": {
            "chunk_shape": a.chunks,
            "codecs": inner,
            "index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "crc32c"}],
            "index_location": "end"}})],
    }
}

/// The v3 `zarr.json` of an array. With `for_encoding`, chars are `uint8`
/// and there are no attributes (the form zarrs builds its codec chain from).
pub fn array_v3(var: &Var, a: &ArrayPlan, codec: &Codec, for_encoding: bool) -> Value {
    let fill = fill_bytes(var).unwrap_or_else(|| pad_bytes(var));
    let mut m = Map::new();
    m.insert("zarr_format".into(), json!(3));
    m.insert("node_type".into(), json!("array"));
    m.insert("shape".into(), json!(a.shape));
    let data_type = if var.dtype == DType::Char && !for_encoding {
        json!({"name": "null_terminated_bytes", "configuration": {"length_bytes": 1}})
    } else {
        json!(var.dtype.v3_name())
    };
    m.insert("data_type".into(), data_type);
    m.insert(
        "chunk_grid".into(),
        json!({"name": "regular", "configuration": {"chunk_shape": a.unit_shape()}}),
    );
    m.insert(
        "chunk_key_encoding".into(),
        json!({"name": "default", "configuration": {"separator": "/"}}),
    );
    let fill_value = if var.dtype == DType::Char && for_encoding {
        json!(fill[0])
    } else if let Some(t) = fill_text(var) {
        json!(t)
    } else {
        fill_json(var.dtype, &fill, false)
    };
    m.insert("fill_value".into(), fill_value);
    m.insert("codecs".into(), json!(codecs_v3(a, codec)));
    let attrs = if for_encoding {
        Map::new()
    } else {
        var_attributes(var, ZarrFormat::V3)
    };
    m.insert("attributes".into(), Value::Object(attrs));
    if !var.dims.is_empty() {
        m.insert("dimension_names".into(), json!(var.dims));
    }
    Value::Object(m)
}

/// The v2 `.zarray` of an array.
pub fn array_v2(var: &Var, a: &ArrayPlan, codec: &Codec) -> Value {
    let fill_value = match (fill_bytes(var), fill_text(var)) {
        (Some(b), _) => fill_json(var.dtype, &b, true),
        (None, Some(t)) => json!(t),
        (None, None) => Value::Null,
    };
    let filters = match (var.dtype, codec) {
        (DType::String, _) => json!([{"id": "vlen-utf8"}]),
        (
            _,
            Codec::Stored {
                shuffle: Some(s), ..
            },
        ) => {
            json!([{"id": "shuffle", "elementsize": s}])
        }
        (_, Codec::Virtual(c)) if !c.filters.is_empty() => {
            Value::Array(c.filters.iter().map(Filter::v2).collect())
        }
        _ => Value::Null,
    };
    let dtype = match codec {
        Codec::Virtual(c) if c.endian == Endian::Big => var.dtype.v2_name().replace('<', ">"),
        _ => var.dtype.v2_name().to_string(),
    };
    json!({
        "zarr_format": 2,
        "shape": a.shape,
        "chunks": a.chunks,
        "dtype": dtype,
        "fill_value": fill_value,
        "order": "C",
        "filters": filters,
        "dimension_separator": ".",
        "compressor": compressor_v2(codec),
    })
}

/// The v3 `zarr.json` of a group.
pub fn group_v3(g: &Group) -> Value {
    json!({"zarr_format": 3, "node_type": "group", "attributes": group_attributes(g)})
}

/// The store key of a chunk (or shard) relative to the array directory,
/// by zarrs' own encodings: v3 `default` with `/`, v2 with `.`; the same
/// the metadata declares.
pub fn chunk_key(format: ZarrFormat, indices: &[u64]) -> String {
    use zarrs::array::chunk_key_encoding::{DefaultChunkKeyEncoding, V2ChunkKeyEncoding};
    use zarrs::array::ChunkKeyEncodingTraits;
    let key = match format {
        ZarrFormat::V3 => DefaultChunkKeyEncoding::new_slash().encode(indices),
        ZarrFormat::V2 => V2ChunkKeyEncoding::new_dot().encode(indices),
    };
    key.as_str().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn var(dtype: DType, attrs: Vec<Attr>) -> Var {
        Var {
            name: "v".into(),
            path: "v".into(),
            dtype,
            dims: vec!["time".into(), "x".into()],
            shape: vec![2, 3],
            source_chunks: None,
            filters: vec![],
            big_endian: false,
            attrs,
            via_netcdf: false,
        }
    }

    #[test]
    fn float_fill_value_is_encoded_as_xarray_does() {
        let v = var(
            DType::F32,
            vec![Attr {
                name: "_FillValue".into(),
                value: AttrValue::F32(vec![1e20]),
            }],
        );
        let a = var_attributes(&v, ZarrFormat::V3);
        assert_eq!(a["_FillValue"], json!("AAAAgB2vFUQ="));
        let a2 = var_attributes(&v, ZarrFormat::V2);
        assert!(!a2.contains_key("_FillValue"));
        assert_eq!(a2["_ARRAY_DIMENSIONS"], json!(["time", "x"]));
    }

    #[test]
    fn int_fill_value_and_attribute_shapes() {
        let v = var(
            DType::I16,
            vec![
                Attr {
                    name: "_FillValue".into(),
                    value: AttrValue::I16(vec![-32767]),
                },
                Attr {
                    name: "valid_range".into(),
                    value: AttrValue::I16(vec![0, 100]),
                },
                Attr {
                    name: "scale_factor".into(),
                    value: AttrValue::F32(vec![0.1]),
                },
            ],
        );
        let a = var_attributes(&v, ZarrFormat::V3);
        assert_eq!(a["_FillValue"], json!(-32767));
        assert_eq!(a["valid_range"], json!([0, 100]));
        assert_eq!(a["scale_factor"], json!(f64::from(0.1f32)));
    }

    #[test]
    fn chunk_keys() {
        assert_eq!(chunk_key(ZarrFormat::V3, &[0, 1, 2]), "c/0/1/2");
        assert_eq!(chunk_key(ZarrFormat::V3, &[]), "c");
        assert_eq!(chunk_key(ZarrFormat::V2, &[3, 4]), "3.4");
        assert_eq!(chunk_key(ZarrFormat::V2, &[]), "0");
    }

    #[test]
    fn non_finite_floats() {
        assert_eq!(float_json(f64::NAN), json!("NaN"));
        let doc = json!({"a": attr_json(&AttrValue::F64(vec![1.0, f64::INFINITY, f64::NEG_INFINITY])),
            "b": attr_json(&AttrValue::F32(vec![f32::NAN])), "c": "NaN", "fill_value": float_json(f64::NAN)});
        let text = String::from_utf8(to_json_bytes(&doc, AttrsJson::Python).unwrap()).unwrap();
        let flat: String = text.split_whitespace().collect();
        assert_eq!(
            flat,
            r#"{"a":[1.0,Infinity,-Infinity],"b":NaN,"c":"NaN","fill_value":"NaN"}"#
        );
        // Strict: the strings of the Zarr fill_value convention, parsed by
        // a strict JSON parser.
        let text = String::from_utf8(to_json_bytes(&doc, AttrsJson::Strict).unwrap()).unwrap();
        let flat: String = text.split_whitespace().collect();
        assert_eq!(
            flat,
            r#"{"a":[1.0,"Infinity","-Infinity"],"b":"NaN","c":"NaN","fill_value":"NaN"}"#
        );
        assert!(serde_json::from_str::<Value>(&text).is_ok());
    }

    #[test]
    fn strict_attributes_are_named_in_warnings() {
        let mut v = var(
            DType::F64,
            vec![
                Attr {
                    name: "_FillValue".into(),
                    value: AttrValue::F64(vec![f64::NAN]),
                },
                Attr {
                    name: "missing_value".into(),
                    value: AttrValue::F64(vec![f64::NEG_INFINITY]),
                },
                Attr {
                    name: "units".into(),
                    value: AttrValue::Text("K".into()),
                },
            ],
        );
        v.path = "g/flux".into();
        let root = Group {
            name: String::new(),
            path: String::new(),
            dims: vec![],
            attrs: vec![Attr {
                name: "range".into(),
                value: AttrValue::F32(vec![f32::NAN, 1.5]),
            }],
            vars: vec![v],
            groups: vec![],
        };
        assert!(attrs_json_warnings(&root, AttrsJson::Python).is_empty());
        let w = attrs_json_warnings(&root, AttrsJson::Strict);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].starts_with(r#"global attributes: range = ["NaN",1.5] written with text"#),
            "{}",
            w[0]
        );
        assert!(
            w[1].starts_with(r#"variable 'g/flux': missing_value = "-Infinity" written"#),
            "{}",
            w[1]
        );
        assert!(w[1].contains("xarray masks no value"), "{}", w[1]);
    }

    #[test]
    fn char_and_string_fills_in_v2() {
        let c = var(
            DType::Char,
            vec![Attr {
                name: "_FillValue".into(),
                value: AttrValue::Text(String::new()),
            }],
        );
        let a = ArrayPlan::new(0, "v".into(), DType::Char, vec![2, 3], vec![2, 3], None, 0);
        assert_eq!(array_v2(&c, &a, &Codec::None)["fill_value"], json!("AA=="));
        let s = var(
            DType::String,
            vec![Attr {
                name: "_FillValue".into(),
                value: AttrValue::Text("NA".into()),
            }],
        );
        assert_eq!(array_v2(&s, &a, &Codec::None)["fill_value"], json!("NA"));
    }
}
