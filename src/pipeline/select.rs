//! Variable selection, renaming and attribute edits, applied to the
//! combined [`Dataset`] before planning (pure).
//!
//! Names in the options are source names. Renaming a name renames the
//! variable and the dimension of that name, and every reference to it in the
//! CF attributes `coordinates`, `bounds`, `grid_mapping`,
//! `ancillary_variables` and `cell_measures`.

use crate::cli::config::ConvertConfig;
use crate::cli::error::ConfigError;
use crate::model::schema::{join, set_attr, Attr, AttrValue, Group};
use crate::pipeline::combine::Dataset;

/// Attributes whose text names other variables.
const REFERENCE_ATTRS: [&str; 5] = [
    "coordinates",
    "bounds",
    "grid_mapping",
    "ancillary_variables",
    "cell_measures",
];

/// Attributes a recipe may not set: the stored values depend on them.
const FIXED_ATTRS: [&str; 3] = ["_FillValue", "scale_factor", "add_offset"];

/// Applies include/exclude, renames, attribute edits and the history line.
///
/// # Errors
/// [`ConfigError::UnknownVar`] for a name that no input has;
/// [`ConfigError::FixedAttr`] for an edit of a packing attribute.
#[allow(clippy::too_many_lines)] // the selection options in the order the CLI documents them
pub fn apply(ds: &mut Dataset, cfg: &ConvertConfig) -> Result<(), ConfigError> {
    let names: Vec<String> = ds.schema.vars().iter().map(|v| v.path.clone()).collect();
    let dims: Vec<String> = ds
        .schema
        .vars()
        .iter()
        .flat_map(|v| v.dims.clone())
        .collect();
    let known = |what: &str, n: &str, dims_too: bool| -> Result<(), ConfigError> {
        if names.iter().any(|x| x == n) || (dims_too && dims.iter().any(|d| d == n)) {
            Ok(())
        } else {
            Err(ConfigError::UnknownVar {
                what: what.to_string(),
                var: n.to_string(),
            })
        }
    };
    for n in &cfg.include {
        known("include", n, false)?;
    }
    for n in &cfg.exclude {
        known("exclude", n, false)?;
    }
    for (from, _) in &cfg.rename {
        known("rename", from, true)?;
    }
    for (n, s) in &cfg.variables {
        known(&format!("[variables.{n}]"), n, false)?;
        for a in &s.attributes {
            if FIXED_ATTRS.contains(&a.name.as_str()) {
                return Err(ConfigError::FixedAttr {
                    var: n.clone(),
                    attr: a.name.clone(),
                });
            }
        }
    }

    // Selection.
    let keep: Vec<bool> = {
        let vars = ds.schema.vars();
        let mut keep: Vec<bool> = vars
            .iter()
            .map(|v| cfg.include.is_empty() || cfg.include.contains(&v.path))
            .collect();
        if !cfg.include.is_empty() {
            // The coordinates (and their bounds) of what is kept.
            let wanted: Vec<String> = vars
                .iter()
                .zip(&keep)
                .filter(|(_, k)| **k)
                .flat_map(|(v, _)| v.dims.clone())
                .collect();
            for (i, v) in vars.iter().enumerate() {
                if v.is_coordinate() && wanted.contains(&v.name) {
                    keep[i] = true;
                    if let Some(AttrValue::Text(b)) = v.attr("bounds") {
                        if let Some(j) = vars.iter().position(|x| x.path == *b) {
                            keep[j] = true;
                        }
                    }
                }
            }
        }
        for (i, v) in vars.iter().enumerate() {
            if cfg.exclude.contains(&v.path) {
                keep[i] = false;
            }
        }
        keep
    };
    let kept: Vec<String> = names
        .iter()
        .zip(&keep)
        .filter(|(_, k)| **k)
        .map(|(n, _)| n.clone())
        .collect();
    retain_vars(&mut ds.schema.root, &kept);
    let mut i = 0;
    ds.sources.retain(|_| {
        let k = keep[i];
        i += 1;
        k
    });

    // Attribute edits (by source name, before renaming).
    for (n, s) in &cfg.variables {
        if let Some(v) = ds.schema.root.find_var_mut(n) {
            v.attrs.retain(|a| !s.remove_attributes.contains(&a.name));
            for a in &s.attributes {
                set_attr(&mut v.attrs, a.clone());
            }
        }
    }
    let root = &mut ds.schema.root;
    root.attrs
        .retain(|a| !cfg.remove_attributes.contains(&a.name));
    for a in &cfg.attributes {
        set_attr(&mut root.attrs, a.clone());
    }
    if let Some(line) = &cfg.history {
        add_history(root, line);
    }

    // Renames.
    if !cfg.rename.is_empty() {
        rename_group(&mut ds.schema.root, &cfg.rename);
        if let Some(c) = &mut ds.concat {
            if let Some((_, to)) = cfg.rename.iter().find(|(f, _)| *f == c.dim) {
                c.dim = to.clone();
            }
        }
    }
    Ok(())
}

/// Puts `line` first in the global `history` attribute (newest first, one
/// line per run, as the netCDF operators do).
pub fn add_history(root: &mut Group, line: &str) {
    let old = match root.attrs.iter().find(|a| a.name == "history") {
        Some(Attr {
            value: AttrValue::Text(t),
            ..
        }) => Some(t.clone()),
        _ => None,
    };
    let text = match old {
        Some(o) if !o.is_empty() => format!("{line}\n{o}"),
        _ => line.to_string(),
    };
    set_attr(
        &mut root.attrs,
        Attr {
            name: "history".into(),
            value: AttrValue::Text(text),
        },
    );
}

fn retain_vars(g: &mut Group, kept: &[String]) {
    g.vars.retain(|v| kept.contains(&v.path));
    for c in &mut g.groups {
        retain_vars(c, kept);
    }
}

fn renamed<'a>(map: &'a [(String, String)], name: &'a str) -> &'a str {
    map.iter()
        .find(|(f, _)| f == name)
        .map_or(name, |(_, t)| t.as_str())
}

fn rename_words(text: &str, map: &[(String, String)]) -> String {
    text.split(' ')
        .map(|w| {
            // `cell_measures` holds "area: cell_area".
            renamed(map, w).to_string()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn rename_group(g: &mut Group, map: &[(String, String)]) {
    for d in &mut g.dims {
        d.name = renamed(map, &d.name).to_string();
    }
    for v in &mut g.vars {
        // Renames apply to root names and to full paths.
        let new_path = renamed(map, &v.path).to_string();
        if new_path != v.path {
            let parent = v.path.rsplit_once('/').map_or("", |(p, _)| p);
            let leaf = new_path.rsplit('/').next().unwrap_or(&new_path).to_string();
            v.path = join(parent, &leaf);
            v.name = leaf;
        }
        for d in &mut v.dims {
            *d = renamed(map, d).to_string();
        }
        for a in &mut v.attrs {
            if REFERENCE_ATTRS.contains(&a.name.as_str()) {
                if let AttrValue::Text(t) = &a.value {
                    a.value = AttrValue::Text(rename_words(t, map));
                }
            }
        }
    }
    for c in &mut g.groups {
        rename_group(c, map);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renames_words_in_reference_attributes() {
        let map = vec![("lat".to_string(), "latitude".to_string())];
        assert_eq!(rename_words("lat lon", &map), "latitude lon");
        assert_eq!(rename_words("area: lat", &map), "area: latitude");
    }
}
