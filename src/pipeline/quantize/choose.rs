//! Which float variables are rounded, and to how many bits (pure).
//!
//! * A variable's own item (`t2m=7`, by output path or name) wins over
//!   `all=`; the last item wins among equals.
//! * `all` is every float data variable: coordinates (dimension
//!   coordinates, and the variables named by `coordinates`, `bounds`,
//!   `climatology` and `grid_mapping`) are left alone, and integer or
//!   packed (`scale_factor`/`add_offset`) data variables are left out with
//!   a warning.
//! * A named variable that is missing, not a float or packed is refused
//!   with one line naming it.

use std::collections::BTreeSet;
use std::path::Path;

use super::error::QuantizeError;
use crate::cli::config::{Keep, KeepRule, KeepTarget};
use crate::model::bitround::mantissa_bits;
use crate::model::schema::{AttrValue, DType, Schema, Var};
use crate::pipeline::combine::Dataset;

/// One variable to round.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    /// Index in [`Schema::vars`].
    pub var: usize,
    /// Its path.
    pub path: String,
    /// Its type (`float32` or `float64`).
    pub dtype: DType,
    /// The bits it keeps (at most its mantissa's), or `auto`.
    pub keep: Keep,
}

/// The variables to round, and what was left out.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Choices {
    /// In [`Schema::vars`] order.
    pub chosen: Vec<Choice>,
    /// One line each.
    pub warnings: Vec<String>,
}

impl Choices {
    /// The choices whose bits are found from the data.
    pub fn auto(&self) -> impl Iterator<Item = &Choice> {
        self.chosen
            .iter()
            .filter(|c| matches!(c.keep, Keep::Auto(_)))
    }
}

/// Variables that locate or bound others: never rounded by `all`.
pub fn coordinates(schema: &Schema) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for v in schema.vars() {
        if v.is_coordinate() {
            out.insert(v.name.clone());
        }
        for a in ["coordinates", "bounds", "climatology", "grid_mapping"] {
            if let Some(AttrValue::Text(t)) = v.attr(a) {
                // `grid_mapping` may be "crs: x y"; every word names one.
                for w in t.split_whitespace() {
                    out.insert(w.trim_end_matches(':').to_string());
                }
            }
        }
    }
    out
}

/// Why `v` cannot be rounded, if it cannot.
fn refusal(v: &Var) -> Option<String> {
    for a in ["scale_factor", "add_offset"] {
        if v.attr(a).is_some() {
            return Some(format!(
                "it is packed ({a}): its stored values are not the values readers see, so their bits cannot be rounded as such"
            ));
        }
    }
    if !matches!(v.dtype, DType::F32 | DType::F64) {
        return Some(format!(
            "it is {}: only float32 and float64 values are rounded",
            v.dtype.v3_name()
        ));
    }
    None
}

/// Whether `v` is the variable an item names `n` (by path or name).
fn named(v: &Var, n: &str) -> bool {
    v.path == n.trim_start_matches('/') || v.name == n
}

/// An item as given.
fn item(r: &KeepRule) -> String {
    match &r.target {
        KeepTarget::All => format!("all={}", r.keep),
        KeepTarget::Var(n) => format!("{n}={}", r.keep),
    }
}

/// Every variable an item names exists.
fn check_named(vars: &[&Var], rules: &[KeepRule], file: &Path) -> Result<(), QuantizeError> {
    for r in rules {
        if let KeepTarget::Var(n) = &r.target {
            if !vars.iter().any(|v| named(v, n)) {
                let floats: Vec<&str> = (vars.iter())
                    .filter(|v| refusal(v).is_none())
                    .map(|v| v.path.as_str())
                    .collect();
                return Err(QuantizeError::NoSuchVar {
                    file: file.to_path_buf(),
                    item: item(r),
                    var: n.clone(),
                    floats: if floats.is_empty() {
                        "none".into()
                    } else {
                        floats.join(", ")
                    },
                });
            }
        }
    }
    Ok(())
}

/// The variables of dataset `ds` that `rules` round: [`choose`], with items
/// that name a variable by its source name (before a rename) taken as
/// naming it by its output name, and the first input named in messages.
///
/// # Errors
/// As [`choose`].
pub fn choose_in(ds: &Dataset, rules: &[KeepRule]) -> Result<Choices, QuantizeError> {
    let file = ds
        .files
        .first()
        .map_or_else(|| ds.schema.source.clone(), |f| f.path.clone());
    let vars = ds.schema.vars();
    let rules: Vec<KeepRule> = rules
        .iter()
        .map(|r| match &r.target {
            KeepTarget::Var(n) if !vars.iter().any(|v| named(v, n)) => {
                let renamed = (ds.sources.iter().zip(&vars))
                    .find(|(s, _)| s.var.path == n.trim_start_matches('/'))
                    .map(|(_, v)| v.path.clone());
                KeepRule {
                    target: KeepTarget::Var(renamed.unwrap_or_else(|| n.clone())),
                    keep: r.keep,
                }
            }
            _ => r.clone(),
        })
        .collect();
    choose(&ds.schema, &rules, &file)
}

/// The variables of `schema` that `rules` round. `file` names the sources
/// in messages.
///
/// # Errors
/// [`QuantizeError`] for an item naming a variable that is missing, not a
/// float, packed, or asked for more bits than its mantissa has.
pub fn choose(schema: &Schema, rules: &[KeepRule], file: &Path) -> Result<Choices, QuantizeError> {
    let vars = schema.vars();
    let mut out = Choices::default();
    if rules.is_empty() {
        return Ok(out);
    }
    check_named(&vars, rules, file)?;
    let coords = coordinates(schema);
    for (i, v) in vars.iter().enumerate() {
        let own = rules
            .iter()
            .rev()
            .find(|r| matches!(&r.target, KeepTarget::Var(n) if named(v, n)));
        let all = rules.iter().rev().find(|r| r.target == KeepTarget::All);
        let (rule, is_own) = match (own, all) {
            (Some(r), _) => (r, true),
            (None, Some(r)) => (r, false),
            (None, None) => continue,
        };
        if let Some(why) = refusal(v) {
            if is_own {
                return Err(QuantizeError::CannotRound {
                    file: file.to_path_buf(),
                    var: v.path.clone(),
                    item: item(rule),
                    why,
                });
            }
            let data = !v.dims.is_empty()
                && !coords.contains(&v.name)
                && !matches!(v.dtype, DType::Char | DType::String);
            if data {
                out.warnings.push(format!(
                    "variable '{}' is left out of --keepbits {}: {why}",
                    v.path,
                    item(rule)
                ));
            }
            continue;
        }
        if !is_own && coords.contains(&v.name) {
            continue;
        }
        let nmant = mantissa_bits(v.dtype).unwrap_or(0);
        let keep = match rule.keep {
            Keep::Bits(n) if n > nmant && is_own => {
                return Err(QuantizeError::CannotRound {
                    file: file.to_path_buf(),
                    var: v.path.clone(),
                    item: item(rule),
                    why: format!("{} has {nmant} mantissa bits", v.dtype.v3_name()),
                })
            }
            Keep::Bits(n) => Keep::Bits(n.min(nmant)),
            k @ Keep::Auto(_) => k,
        };
        out.chosen.push(Choice {
            var: i,
            path: v.path.clone(),
            dtype: v.dtype,
            keep,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::schema::{Attr, Group, SourceFormat};

    fn var(name: &str, dtype: DType, dims: &[&str], attrs: &[(&str, AttrValue)]) -> Var {
        Var {
            name: name.into(),
            path: name.into(),
            dtype,
            dims: dims.iter().map(|d| (*d).to_string()).collect(),
            shape: vec![4; dims.len()],
            source_chunks: None,
            filters: Vec::new(),
            big_endian: false,
            attrs: attrs
                .iter()
                .map(|(n, v)| Attr {
                    name: (*n).into(),
                    value: v.clone(),
                })
                .collect(),
            via_netcdf: false,
        }
    }

    fn schema() -> Schema {
        Schema {
            source: "a.nc".into(),
            format: SourceFormat::Netcdf4,
            root: Group {
                name: String::new(),
                path: String::new(),
                dims: Vec::new(),
                attrs: Vec::new(),
                vars: vec![
                    var("time", DType::F64, &["time"], &[]),
                    var("lat", DType::F32, &["lat"], &[]),
                    var(
                        "t2m",
                        DType::F32,
                        &["time", "lat"],
                        &[("coordinates", AttrValue::Text("height".into()))],
                    ),
                    var("height", DType::F64, &[], &[]),
                    var("sst", DType::F64, &["time", "lat"], &[]),
                    var(
                        "pr",
                        DType::I16,
                        &["time", "lat"],
                        &[("scale_factor", AttrValue::F32(vec![0.1]))],
                    ),
                    var("n", DType::I32, &["time"], &[]),
                ],
                groups: Vec::new(),
            },
            skipped: Vec::new(),
            warnings: Vec::new(),
        }
    }

    fn rules(s: &str) -> Vec<KeepRule> {
        KeepRule::parse_list(s).expect("rules")
    }

    #[test]
    fn all_rounds_float_data_variables_and_own_items_win() {
        let s = schema();
        let c = choose(&s, &rules("all=7,sst=auto:0.999"), Path::new("a.nc")).expect("ok");
        let got: Vec<(&str, Keep)> = c.chosen.iter().map(|c| (c.path.as_str(), c.keep)).collect();
        assert_eq!(
            got,
            vec![("t2m", Keep::Bits(7)), ("sst", Keep::Auto(0.999))]
        );
        assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
        assert!(c.warnings[0].contains("'pr'") && c.warnings[0].contains("packed"));
        assert!(c.warnings[1].contains("'n'") && c.warnings[1].contains("int"));
        assert_eq!(c.auto().count(), 1);
        // More bits than float32 has: all of them (nothing to round).
        let c = choose(&s, &rules("all=30"), Path::new("a.nc")).expect("ok");
        assert_eq!(c.chosen[0].keep, Keep::Bits(23));
        assert_eq!(c.chosen[1].keep, Keep::Bits(30));
        // A coordinate only when named.
        let c = choose(&s, &rules("lat=4"), Path::new("a.nc")).expect("ok");
        assert_eq!(c.chosen.len(), 1);
        assert!(choose(&s, &[], Path::new("a.nc"))
            .expect("ok")
            .chosen
            .is_empty());
    }

    #[test]
    fn named_variables_that_cannot_be_rounded_are_refused() {
        let s = schema();
        let e = choose(&s, &rules("pr=5"), Path::new("a.nc")).expect_err("packed");
        assert!(
            e.to_string()
                .starts_with("a.nc: variable 'pr': --keepbits pr=5: it is packed"),
            "{e}"
        );
        let e = choose(&s, &rules("n=5"), Path::new("a.nc")).expect_err("int");
        assert!(e.to_string().contains("it is int"), "{e}");
        let e = choose(&s, &rules("nope=5"), Path::new("a.nc")).expect_err("missing");
        assert!(
            e.to_string().contains("no variable 'nope'") && e.to_string().contains("t2m"),
            "{e}"
        );
        let e = choose(&s, &rules("t2m=24"), Path::new("a.nc")).expect_err("too many");
        assert!(e.to_string().contains("23 mantissa bits"), "{e}");
    }
}
