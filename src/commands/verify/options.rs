//! The options of a conversion that shape what its store holds, as the
//! verification reads them: the combination, renames and selection, and a
//! recipe's attribute edits.

use super::backfill;
use super::shares::{self, Options};
use super::source::NcAttr;
use crate::cli::config::ConvertConfig;

/// The options of `cfg` that shape what the store holds.
pub(super) fn options(cfg: &ConvertConfig) -> Options {
    let attrs = |v: &[crate::model::schema::Attr]| -> Vec<(String, NcAttr)> {
        v.iter()
            .map(|a| (a.name.clone(), recipe_attr(&a.value)))
            .collect()
    };
    Options {
        concat_dim: cfg.combine.concat_dim.clone(),
        time_units: cfg.combine.time_units.clone(),
        rename: cfg.rename.clone(),
        include: cfg.include.clone(),
        exclude: cfg.exclude.clone(),
        var_edits: cfg
            .variables
            .iter()
            .map(|(n, s)| shares::VarEdit {
                var: n.clone(),
                set: attrs(&s.attributes),
                remove: s.remove_attributes.clone(),
            })
            .collect(),
        global_set: attrs(&cfg.attributes),
        global_remove: cfg.remove_attributes.clone(),
        partial: cfg.append,
        strict: cfg.attrs_json == Some(crate::cli::config::AttrsJson::Strict),
        new_dim: cfg.combine.new_dim.clone(),
        allow_missing: cfg.combine.allow_missing,
        backfill: backfill::Generations::default(),
    }
}

/// An attribute value given in a recipe.
fn recipe_attr(v: &crate::model::schema::AttrValue) -> NcAttr {
    use crate::model::schema::AttrValue as A;
    match v {
        A::I8(x) => NcAttr::I8(x.clone()),
        A::U8(x) => NcAttr::U8(x.clone()),
        A::I16(x) => NcAttr::I16(x.clone()),
        A::U16(x) => NcAttr::U16(x.clone()),
        A::I32(x) => NcAttr::I32(x.clone()),
        A::U32(x) => NcAttr::U32(x.clone()),
        A::I64(x) => NcAttr::I64(x.clone()),
        A::U64(x) => NcAttr::U64(x.clone()),
        A::F32(x) => NcAttr::F32(x.clone()),
        A::F64(x) => NcAttr::F64(x.clone()),
        A::Text(s) => NcAttr::Text(s.clone()),
        A::Strings(x) => NcAttr::Strings(x.clone()),
        // A JSON object of integers is an enum's mapping; other JSON is
        // kept as its text.
        A::Json(t) => serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(t)
            .ok()
            .and_then(|m| {
                m.into_iter()
                    .map(|(k, v)| Some((k, i128::from(v.as_i64()?))))
                    .collect::<Option<Vec<_>>>()
            })
            .map_or_else(|| NcAttr::Text(t.clone()), NcAttr::Members),
    }
}
