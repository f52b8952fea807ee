//! Recipe files (TOML): a whole conversion described in one file.
//!
//! A recipe gives the inputs, how they combine, what to keep and rename,
//! and the layout, codec and attributes of the output. Relative paths in a
//! recipe are relative to the recipe's directory. Unknown keys are errors,
//! so a typo cannot silently change a conversion. Command-line flags
//! override the recipe. See `docs/recipes.md`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::cli::config::{
    AppendMode, AttrsJson, Codec, CombineSettings, ConvertConfig, DimSizes, NewDim, NewDimFrom,
    VarSettings, ZarrFormat,
};
use crate::cli::error::ConfigError;
use crate::model::schema::{Attr, AttrValue};

/// Sizes by dimension: a table `{ time = 24 }` or the flag text `"time=24"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Sizes {
    /// `{ time = 24, lat = 181 }`
    Table(BTreeMap<String, u64>),
    /// `"time=24,lat=181"`
    Text(String),
}

impl Sizes {
    fn to_dim_sizes(&self, what: &'static str) -> Result<DimSizes, ConfigError> {
        match self {
            Self::Text(t) => DimSizes::parse(what, t),
            Self::Table(m) => {
                let mut out = Vec::new();
                for (d, &n) in m {
                    if n == 0 {
                        return Err(ConfigError::ChunkSize {
                            flag: what,
                            dim: d.clone(),
                            value: "0".into(),
                        });
                    }
                    out.push((d.clone(), n));
                }
                Ok(DimSizes(out))
            }
        }
    }
}

/// An explicit merge group.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MergeGroup {
    /// Paths or globs of the group's files.
    pub inputs: Vec<String>,
}

/// A new outermost dimension made from the files (`[new_dim]`): the
/// recipe form of `--new-dim` and `--new-dim-order`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDimRecipe {
    /// Dimension name.
    pub name: String,
    /// The global attribute giving each file's value.
    pub attribute: Option<String>,
    /// A regular expression with one capture group, matched against each
    /// file's name (or path).
    pub regex: Option<String>,
    /// The values in their order along the dimension.
    #[serde(default)]
    pub order: Vec<String>,
}

/// Per-variable settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VarRecipe {
    /// Chunk sizes.
    pub chunks: Option<Sizes>,
    /// Shard sizes.
    pub shards: Option<Sizes>,
    /// Compression.
    pub codec: Option<String>,
    /// Attributes to set.
    #[serde(default)]
    pub attributes: BTreeMap<String, toml::Value>,
    /// Attributes to remove.
    #[serde(default)]
    pub remove_attributes: Vec<String>,
}

/// A recipe file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// Input paths and globs.
    #[serde(default)]
    pub inputs: Vec<String>,
    /// A file listing inputs, one per line.
    pub file_list: Option<PathBuf>,
    /// Output store.
    pub output: Option<PathBuf>,
    /// 2 or 3.
    pub zarr_format: Option<u8>,
    /// How NaN and infinite float attributes are written: "python" or
    /// "strict".
    pub attrs_json: Option<AttrsJson>,
    /// Default compression.
    pub codec: Option<String>,
    /// Default chunk sizes.
    pub chunks: Option<Sizes>,
    /// Default shard sizes.
    pub shards: Option<Sizes>,
    /// Target MiB per chunk for the heuristic.
    pub target_chunk_mib: Option<u64>,
    /// Concatenation dimension.
    pub concat_dim: Option<String>,
    /// Output time units.
    pub time_units: Option<String>,
    /// Allow gaps along the concatenation dimension.
    #[serde(default)]
    pub allow_gaps: bool,
    /// Allow overlaps and repeated values.
    #[serde(default)]
    pub allow_overlaps: bool,
    /// Compare static variables' values across files.
    #[serde(default)]
    pub check_static_values: bool,
    /// Leave out variables of unsupported types.
    #[serde(default)]
    pub skip_unsupported: bool,
    /// Accept plain HDF5 files with netCDF-C's phony dimension names.
    #[serde(default)]
    pub phony_dims: bool,
    /// Explicit merge groups.
    #[serde(default)]
    pub merge: Vec<MergeGroup>,
    /// A new outermost dimension made from the files (ensemble members).
    pub new_dim: Option<NewDimRecipe>,
    /// Fill the grid's cells that no file holds rather than refuse.
    #[serde(default)]
    pub allow_missing: bool,
    /// Variables to keep.
    #[serde(default)]
    pub include: Vec<String>,
    /// Variables to leave out.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// New names.
    #[serde(default)]
    pub rename: BTreeMap<String, String>,
    /// Global attributes to set.
    #[serde(default)]
    pub attributes: BTreeMap<String, toml::Value>,
    /// Global attributes to remove.
    #[serde(default)]
    pub remove_attributes: Vec<String>,
    /// Per-variable settings.
    #[serde(default)]
    pub variables: BTreeMap<String, VarRecipe>,
    /// Put a provenance line first in the global `history` attribute
    /// (default false: the attributes are the source's).
    pub history: Option<bool>,
    /// Append mode for `--append`: "error" or "skip-existing".
    pub append_mode: Option<AppendMode>,
    /// Mantissa bits kept of float variables, as `--keepbits`:
    /// "all=7,t2m=auto:0.999".
    pub keepbits: Option<String>,
}

impl NewDimRecipe {
    fn to_new_dim(&self) -> Result<NewDim, String> {
        let from = match (&self.attribute, &self.regex) {
            (Some(a), None) => NewDimFrom::Attribute(a.clone()),
            (None, Some(r)) => NewDimFrom::FileName(
                NewDim::check_regex(r).map_err(|e| format!("[new_dim] regex: expected {e}"))?,
            ),
            _ => {
                return Err(format!(
                    "[new_dim] '{}' needs exactly one of attribute = \"NAME\" or regex = \"...\"",
                    self.name
                ))
            }
        };
        Ok(NewDim {
            name: self.name.clone(),
            from,
            order: self.order.clone(),
        })
    }
}

impl Recipe {
    /// Reads and parses a recipe file.
    ///
    /// # Errors
    /// [`ConfigError::Recipe`] with the file and the TOML error.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Recipe {
            path: path.to_path_buf(),
            msg: e.to_string(),
        })?;
        Self::parse(path, &text)
    }

    /// Parses recipe text; `path` is used in messages and to resolve
    /// relative paths.
    ///
    /// # Errors
    /// [`ConfigError::Recipe`].
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let mut r: Self = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|sp| text[..sp.start.min(text.len())].matches('\n').count() + 1);
            ConfigError::Recipe {
                path: path.to_path_buf(),
                msg: match line {
                    Some(l) => format!("line {l}: {}", e.message().trim()),
                    None => e.message().trim().to_string(),
                },
            }
        })?;
        let base = path.parent().unwrap_or(Path::new(""));
        let rel = |s: &str| -> String {
            if Path::new(s).is_absolute() || base.as_os_str().is_empty() {
                s.to_string()
            } else {
                base.join(s).to_string_lossy().into_owned()
            }
        };
        r.inputs = r.inputs.iter().map(|s| rel(s)).collect();
        for g in &mut r.merge {
            g.inputs = g.inputs.iter().map(|s| rel(s)).collect();
        }
        r.file_list = r
            .file_list
            .map(|p| PathBuf::from(rel(&p.to_string_lossy())));
        r.output = r.output.map(|p| PathBuf::from(rel(&p.to_string_lossy())));
        Ok(r)
    }

    /// Applies the recipe to `cfg` (command-line flags are applied after).
    ///
    /// # Errors
    /// [`ConfigError`] for a bad codec, size, format or attribute value.
    #[allow(clippy::too_many_lines)] // one recipe key after another, each checked and applied in a few lines
    pub fn apply(&self, path: &Path, cfg: &mut ConvertConfig) -> Result<(), ConfigError> {
        let bad = |msg: String| ConfigError::Recipe {
            path: path.to_path_buf(),
            msg,
        };
        cfg.inputs.clone_from(&self.inputs);
        cfg.file_list.clone_from(&self.file_list);
        if let Some(o) = &self.output {
            cfg.output.clone_from(o);
        }
        if let Some(f) = self.zarr_format {
            cfg.format = match f {
                2 => ZarrFormat::V2,
                3 => ZarrFormat::V3,
                other => return Err(bad(format!("zarr_format must be 2 or 3, not {other}"))),
            };
        }
        if let Some(a) = self.attrs_json {
            cfg.attrs_json = Some(a);
        }
        if let Some(c) = &self.codec {
            cfg.codec = Codec::parse(c)?;
        }
        if let Some(c) = &self.chunks {
            cfg.chunks = c.to_dim_sizes("chunks")?;
        }
        if let Some(s) = &self.shards {
            cfg.shards = s.to_dim_sizes("shards")?;
        }
        if let Some(m) = self.target_chunk_mib {
            cfg.target_chunk_bytes = m.max(1) << 20;
        }
        cfg.skip_unsupported = self.skip_unsupported;
        cfg.phony_dims = self.phony_dims;
        cfg.combine = CombineSettings {
            concat_dim: self.concat_dim.clone(),
            time_units: self.time_units.clone(),
            allow_gaps: self.allow_gaps,
            allow_overlaps: self.allow_overlaps,
            check_static_values: self.check_static_values,
            merge: self.merge.iter().map(|g| g.inputs.clone()).collect(),
            new_dim: self
                .new_dim
                .as_ref()
                .map(NewDimRecipe::to_new_dim)
                .transpose()
                .map_err(bad)?,
            allow_missing: self.allow_missing,
        };
        cfg.include.clone_from(&self.include);
        cfg.exclude.clone_from(&self.exclude);
        cfg.rename = self
            .rename
            .iter()
            .map(|(a, b)| (a.clone(), b.clone()))
            .collect();
        for (to_name, to) in &cfg.rename {
            if let Some(reason) = crate::model::schema::bad_name(to) {
                return Err(bad(format!(
                    "rename of '{to_name}': {}: name '{to}' cannot be used as a Zarr node name ({reason})",
                    path.display()
                )));
            }
        }
        cfg.attributes = attrs(path, &self.attributes)?;
        cfg.remove_attributes.clone_from(&self.remove_attributes);
        cfg.variables = Vec::new();
        for (name, v) in &self.variables {
            let settings = VarSettings {
                chunks: v
                    .chunks
                    .as_ref()
                    .map(|c| c.to_dim_sizes("chunks"))
                    .transpose()?
                    .unwrap_or_default(),
                shards: v
                    .shards
                    .as_ref()
                    .map(|c| c.to_dim_sizes("shards"))
                    .transpose()?
                    .unwrap_or_default(),
                codec: v.codec.as_deref().map(Codec::parse).transpose()?,
                attributes: attrs(path, &v.attributes)?,
                remove_attributes: v.remove_attributes.clone(),
            };
            cfg.variables.push((name.clone(), settings));
        }
        // The line itself (time, version, command) is made by the caller.
        cfg.history = (self.history == Some(true)).then(String::new);
        if let Some(m) = self.append_mode {
            cfg.append_mode = m;
        }
        if let Some(k) = &self.keepbits {
            cfg.keepbits = crate::cli::config::KeepRule::parse_list(k)?;
        }
        Ok(())
    }
}

fn attrs(path: &Path, m: &BTreeMap<String, toml::Value>) -> Result<Vec<Attr>, ConfigError> {
    m.iter()
        .map(|(name, v)| {
            attr_value(v)
                .map(|value| Attr {
                    name: name.clone(),
                    value,
                })
                .ok_or_else(|| ConfigError::Recipe {
                    path: path.to_path_buf(),
                    msg: format!(
                        "attribute '{name}': use a string, a number, or a list of one of them"
                    ),
                })
        })
        .collect()
}

/// A TOML value as a netCDF-style attribute value.
pub fn attr_value(v: &toml::Value) -> Option<AttrValue> {
    use toml::Value as T;
    let int =
        |i: i64| i32::try_from(i).map_or(AttrValue::I64(vec![i]), |x| AttrValue::I32(vec![x]));
    match v {
        T::String(s) => Some(AttrValue::Text(s.clone())),
        T::Integer(i) => Some(int(*i)),
        T::Float(f) => Some(AttrValue::F64(vec![*f])),
        T::Array(items) => {
            if items.iter().all(|x| matches!(x, T::String(_))) && !items.is_empty() {
                Some(AttrValue::Strings(
                    items
                        .iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect(),
                ))
            } else if items.iter().all(|x| matches!(x, T::Integer(_))) && !items.is_empty() {
                let v: Vec<i64> = items.iter().filter_map(toml::Value::as_integer).collect();
                match v
                    .iter()
                    .map(|&i| i32::try_from(i))
                    .collect::<Result<Vec<i32>, _>>()
                {
                    Ok(small) => Some(AttrValue::I32(small)),
                    Err(_) => Some(AttrValue::I64(v)),
                }
            } else if items
                .iter()
                .all(|x| matches!(x, T::Float(_) | T::Integer(_)))
                && !items.is_empty()
            {
                #[allow(clippy::cast_precision_loss)]
                Some(AttrValue::F64(
                    items
                        .iter()
                        .filter_map(|x| x.as_float().or_else(|| x.as_integer().map(|i| i as f64)))
                        .collect(),
                ))
            } else {
                None
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
inputs = ["data/t2m_*.nc", "/abs/u10_*.nc"]
output = "out.zarr"
zarr_format = 3
attrs_json = "strict"
codec = "zstd:5"
chunks = { time = 24, lat = 181 }
shards = "time=240"
concat_dim = "time"
time_units = "hours since 2000-01-01"
allow_gaps = true
include = ["t2m", "u10"]
rename = { t2m = "tas" }
attributes = { title = "test", version = 2, levels = [1, 2, 3] }
remove_attributes = ["date_created"]
history = true
append_mode = "skip-existing"

[[merge]]
inputs = ["data/t2m_*.nc"]

[variables.t2m]
chunks = { time = 48 }
codec = "blosc:lz4:5:shuffle"
attributes = { long_name = "2 m temperature" }
"#;

    #[test]
    fn a_full_recipe_parses_and_applies() {
        let path = Path::new("/recipes/era.toml");
        let r = Recipe::parse(path, FULL).unwrap();
        assert_eq!(r.inputs[0], "/recipes/data/t2m_*.nc");
        assert_eq!(r.inputs[1], "/abs/u10_*.nc");
        let mut cfg = ConvertConfig::new(Vec::new(), PathBuf::new());
        r.apply(path, &mut cfg).unwrap();
        assert_eq!(cfg.output, PathBuf::from("/recipes/out.zarr"));
        assert_eq!(cfg.codec, Codec::Zstd(5));
        assert_eq!(cfg.attrs_json, Some(AttrsJson::Strict));
        assert_eq!(cfg.chunks.get("time"), Some(24));
        assert_eq!(cfg.shards.get("time"), Some(240));
        assert_eq!(cfg.combine.concat_dim.as_deref(), Some("time"));
        assert!(cfg.combine.allow_gaps);
        assert_eq!(cfg.combine.merge.len(), 1);
        assert_eq!(cfg.rename, vec![("t2m".to_string(), "tas".to_string())]);
        assert_eq!(cfg.history.as_deref(), Some(""));
        assert_eq!(cfg.append_mode, AppendMode::SkipExisting);
        let t2m = cfg.var_settings("t2m").unwrap();
        assert_eq!(t2m.chunks.get("time"), Some(48));
        assert!(matches!(t2m.codec, Some(Codec::Blosc { .. })));
        assert!(cfg
            .attributes
            .iter()
            .any(|a| a.name == "levels" && a.value == AttrValue::I32(vec![1, 2, 3])));
    }

    #[test]
    fn shipped_example_recipes_are_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/recipes");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "toml") {
                let r = Recipe::load(&p).unwrap_or_else(|e| panic!("{e}"));
                let mut cfg = ConvertConfig::new(vec![], PathBuf::new());
                r.apply(&p, &mut cfg)
                    .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                n += 1;
            }
        }
        assert!(n >= 3, "example recipes missing");
    }

    #[test]
    fn typos_and_bad_values_are_errors() {
        let p = Path::new("r.toml");
        for bad in [
            "inputz = [\"a.nc\"]",
            "codec = 3",
            "[variables.t2m]\nchunk = { time = 1 }",
            "zarr_format = 4",
            "codec = \"lz5\"",
            "chunks = { time = 0 }",
            "attributes = { flag = true }",
            "append_mode = \"sometimes\"",
            "attrs_json = \"strings\"",
        ] {
            let r = Recipe::parse(p, bad);
            let applied = r.and_then(|r| {
                let mut cfg = ConvertConfig::new(vec![], PathBuf::new());
                r.apply(p, &mut cfg)
            });
            assert!(applied.is_err(), "accepted: {bad}");
        }
    }
}
