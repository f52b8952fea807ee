//! The CF 1.11 §8.4 ("Lossy Compression via Quantization") metadata of the
//! rounded variables, and the bits each array is rounded to, read back
//! from it (pure).
//!
//! A rounded variable gets `quantization` (the name of the container
//! variable), `quantization_nsb` (the mantissa bits kept, as netCDF-C's
//! `BitRound` counts them) and `quantization_maximum_relative_error`
//! (`2^-(nsb+1)`). The container is a scalar `int` variable at the root
//! with `algorithm = "bitround"` and `implementation = "zarrforge version
//! X.Y.Z"`. The store's metadata is thus the one record of the rounding:
//! an append or a region write rounds its values the same way.

use serde::{Deserialize, Serialize};

use crate::model::bitround::{mantissa_bits, max_relative_error};
use crate::model::schema::{set_attr, Attr, AttrValue, DType, Schema, Var};
use crate::pipeline::combine::grid::Label;
use crate::pipeline::combine::{Dataset, VarSource};

/// The name of the container variable (another name when a source
/// variable has it).
pub const CONTAINER: &str = "quantization_info";

/// The bits one variable keeps, as decided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decided {
    /// Index in [`Schema::vars`].
    pub var: usize,
    /// Its path.
    pub path: String,
    /// Mantissa bits kept (its type's mantissa: not rounded).
    pub keepbits: u32,
    /// The information level, when the bits were found from the data.
    pub level: Option<f64>,
}

/// `implementation` of the container: this zarrforge.
pub fn implementation() -> String {
    format!("zarrforge version {}", env!("CARGO_PKG_VERSION"))
}

/// Records `decided` in `ds`: the attributes of each rounded variable and
/// one container variable (added last among the root's variables, with
/// its source). Variables that keep every bit are left as they are.
pub fn annotate(ds: &mut Dataset, decided: &[Decided]) {
    let rounded: Vec<&Decided> = decided
        .iter()
        .filter(|d| {
            let dtype = ds.schema.vars().get(d.var).map(|v| v.dtype);
            dtype
                .and_then(mantissa_bits)
                .is_some_and(|m| d.keepbits < m)
        })
        .collect();
    if rounded.is_empty() {
        return;
    }
    let name = container_name(&ds.schema);
    let paths: Vec<String> = ds.schema.vars().iter().map(|v| v.path.clone()).collect();
    for d in rounded {
        let Some(path) = paths.get(d.var) else {
            continue;
        };
        let Some(v) = ds.schema.root.find_var_mut(path) else {
            continue;
        };
        set_attr(&mut v.attrs, text("quantization", &name));
        set_attr(
            &mut v.attrs,
            Attr {
                name: "quantization_nsb".into(),
                value: AttrValue::I32(vec![i32::try_from(d.keepbits).unwrap_or(i32::MAX)]),
            },
        );
        set_attr(
            &mut v.attrs,
            Attr {
                name: "quantization_maximum_relative_error".into(),
                value: AttrValue::F64(vec![max_relative_error(d.keepbits)]),
            },
        );
    }
    let container = Var {
        name: name.clone(),
        path: name,
        dtype: DType::I32,
        dims: Vec::new(),
        shape: Vec::new(),
        source_chunks: None,
        filters: Vec::new(),
        big_endian: false,
        attrs: vec![
            text("algorithm", "bitround"),
            text("implementation", &implementation()),
        ],
        via_netcdf: false,
    };
    let at = ds.schema.root.vars.len();
    ds.schema.root.vars.push(container.clone());
    ds.sources.insert(
        at.min(ds.sources.len()),
        VarSource {
            var: container,
            axis: None,
            segments: Vec::new(),
            stored: None,
            stack: None,
            inline: Some(vec![Label::Int(0)]),
        },
    );
}

fn text(name: &str, value: &str) -> Attr {
    Attr {
        name: name.into(),
        value: AttrValue::Text(value.into()),
    }
}

/// `quantization_info`, or the first of `quantization_info_1`, ... that no
/// variable of the root has.
fn container_name(schema: &Schema) -> String {
    let taken = |n: &str| schema.root.vars.iter().any(|v| v.name == n);
    if !taken(CONTAINER) {
        return CONTAINER.into();
    }
    (1..10_000)
        .map(|i| format!("{CONTAINER}_{i}"))
        .find(|n| !taken(n))
        .unwrap_or_else(|| CONTAINER.into())
}

/// The mantissa bits each variable of `schema` is rounded to (in
/// [`Schema::vars`] order): a float variable whose `quantization` names a
/// container of the root with `algorithm = "bitround"`, and whose
/// `quantization_nsb` is less than its mantissa.
pub fn recorded(schema: &Schema) -> Vec<Option<u32>> {
    let bitround = |name: &str| {
        schema.root.vars.iter().any(|c| {
            c.name == name
                && matches!(c.attr("algorithm"), Some(AttrValue::Text(a)) if a == "bitround")
        })
    };
    schema
        .vars()
        .iter()
        .map(|v| {
            let nmant = mantissa_bits(v.dtype)?;
            let Some(AttrValue::Text(c)) = v.attr("quantization") else {
                return None;
            };
            if !bitround(c) {
                return None;
            }
            let nsb = v.attr("quantization_nsb")?.first_f64()?;
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let nsb = (nsb >= 0.0 && nsb.fract() == 0.0).then_some(nsb as u32)?;
            (nsb < nmant).then_some(nsb)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::schema::{Group, SourceFormat};

    fn dataset() -> Dataset {
        let v = |name: &str, dtype| Var {
            name: name.into(),
            path: name.into(),
            dtype,
            dims: vec!["x".into()],
            shape: vec![3],
            source_chunks: None,
            filters: Vec::new(),
            big_endian: false,
            attrs: Vec::new(),
            via_netcdf: false,
        };
        let vars = vec![
            v("a", DType::F32),
            v("quantization_info", DType::F64),
            v("b", DType::F64),
        ];
        let sources = vars
            .iter()
            .map(|v| VarSource {
                var: v.clone(),
                axis: None,
                segments: Vec::new(),
                stored: None,
                stack: None,
                inline: None,
            })
            .collect();
        Dataset {
            files: Vec::new(),
            schema: Schema {
                source: "a.nc".into(),
                format: SourceFormat::Netcdf4,
                root: Group {
                    name: String::new(),
                    path: String::new(),
                    dims: Vec::new(),
                    attrs: Vec::new(),
                    vars,
                    groups: Vec::new(),
                },
                skipped: Vec::new(),
                warnings: Vec::new(),
            },
            sources,
            concat: None,
            grid: None,
        }
    }

    #[test]
    fn attributes_and_container_record_the_bits() {
        let mut ds = dataset();
        let d = |var, path: &str, keepbits| Decided {
            var,
            path: path.into(),
            keepbits,
            level: None,
        };
        annotate(&mut ds, &[d(0, "a", 7), d(2, "b", 52)]);
        let vars = ds.schema.vars();
        assert_eq!(vars.len(), 4);
        assert_eq!(ds.sources.len(), 4);
        let c = vars[3];
        assert_eq!(c.name, "quantization_info_1");
        assert!(c.dims.is_empty() && c.dtype == DType::I32);
        assert_eq!(
            c.attr("algorithm"),
            Some(&AttrValue::Text("bitround".into()))
        );
        assert!(ds.sources[3].inline.is_some());
        assert_eq!(
            vars[0].attr("quantization"),
            Some(&AttrValue::Text("quantization_info_1".into()))
        );
        assert_eq!(
            vars[0].attr("quantization_nsb"),
            Some(&AttrValue::I32(vec![7]))
        );
        assert_eq!(
            vars[0].attr("quantization_maximum_relative_error"),
            Some(&AttrValue::F64(vec![1.0 / 256.0]))
        );
        // b keeps every bit: not rounded, no attributes.
        assert!(vars[2].attr("quantization").is_none());
        assert_eq!(recorded(&ds.schema), vec![Some(7), None, None, None]);
        // Nothing rounded: nothing added.
        let mut ds = dataset();
        annotate(&mut ds, &[d(0, "a", 23)]);
        assert_eq!(ds.schema.vars().len(), 3);
    }
}
