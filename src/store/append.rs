//! Appending new steps to a store written by zarrforge, against the
//! store's saved state ([`super::state`]). An append scans only the new
//! files, checks them against that state ([`select`], [`extend`]), and builds a
//! [`Dataset`] whose arrays are the store's, grown along the axis, with the
//! new files' segments after the old end. Only units at or after the old end
//! are written; a unit that the previous run filled in part is read back
//! from the store and completed. The length along the axis is taken from the
//! committed root metadata, so a run killed between saving the state and the
//! commit cannot make the state run ahead of what readers see.

use std::path::Path;

use crate::cli::config::{AppendMode, Codec};
use crate::model::schema::Var;
use crate::pipeline::combine::{
    same_value, set_dim_len, shape_off_axis, Concat, Dataset, VarSource, MUST_AGREE,
};
use crate::pipeline::plan::ArrayPlan;
use crate::store::error::AppendError;
use crate::store::state::StoreState;

/// Which new files an append keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// All new files are after the store's end.
    All,
    /// Leave out these files (indices into the dataset's files): the store
    /// already holds their steps (`--append-mode skip-existing`).
    Skip(Vec<usize>),
}

/// Checks the new files' axis against the store: their values must come
/// after the store's last value (without a gap, unless allowed). Files whose
/// values the store already holds are refused, or left out with
/// `skip-existing`.
///
/// # Errors
/// [`AppendError::AlreadyThere`], [`AppendError::NotAfter`],
/// [`AppendError::Mismatch`] for a gap.
pub fn select(
    store: &Path,
    state: &StoreState,
    new: &Dataset,
    mode: AppendMode,
    allow_gaps: bool,
) -> Result<Selection, AppendError> {
    let (Some(old), Some(cur)) = (&state.concat, &new.concat) else {
        return Ok(Selection::All);
    };
    let (Some(old_vals), Some(new_vals)) = (&old.values, &cur.values) else {
        return Ok(Selection::All);
    };
    let Some(&last) = old_vals.last() else {
        return Ok(Selection::All);
    };
    // Segments of the coordinate variable: which file holds which values.
    let coord = new
        .schema
        .vars()
        .iter()
        .position(|v| v.is_coordinate() && v.name == cur.dim)
        .and_then(|i| new.sources.get(i));
    let Some(coord) = coord else {
        return Ok(Selection::All);
    };
    let mut skip = Vec::new();
    for seg in &coord.segments {
        let lo = usize::try_from(seg.start).unwrap_or(usize::MAX);
        let hi = usize::try_from(seg.start + seg.len).unwrap_or(usize::MAX);
        let Some(vals) = new_vals.get(lo..hi) else {
            continue;
        };
        let Some(&first) = vals.first() else { continue };
        let file = new
            .files
            .get(seg.file as usize)
            .map(|f| f.path.clone())
            .unwrap_or_default();
        if first > last {
            continue;
        }
        let all_there = vals
            .iter()
            .all(|x| old_vals.binary_search_by(|y| y.total_cmp(x)).is_ok());
        if all_there {
            match mode {
                AppendMode::Error => {
                    return Err(AppendError::AlreadyThere {
                        store: store.to_path_buf(),
                        dim: cur.dim.clone(),
                        value: first,
                        file,
                    })
                }
                AppendMode::SkipExisting => skip.push(seg.file as usize),
            }
        } else {
            return Err(AppendError::NotAfter {
                store: store.to_path_buf(),
                dim: cur.dim.clone(),
                file,
                first,
                last,
            });
        }
    }
    if !skip.is_empty() {
        return Ok(Selection::Skip(skip));
    }
    if !allow_gaps {
        let mut steps: Vec<f64> = old_vals.windows(2).map(|w| w[1] - w[0]).collect();
        steps.extend(new_vals.windows(2).map(|w| w[1] - w[0]));
        steps.sort_by(f64::total_cmp);
        if let (Some(&step), Some(&first)) = (steps.get(steps.len() / 2), new_vals.first()) {
            if step > 0.0 && first - last > 1.5 * step {
                return Err(AppendError::Mismatch {
                    store: store.to_path_buf(),
                    what: format!(
                        "gap along '{}': the store ends at {last}, the new files start at {first}; the usual step is {step} (use --allow-gaps if this is intended)",
                        cur.dim
                    ),
                });
            }
        }
    }
    Ok(Selection::All)
}

/// The dataset of an append: the store's structure grown by the new steps,
/// with the new files as sources. Returns it and the store's old length.
///
/// # Errors
/// [`AppendError::Mismatch`] naming the variable and what differs.
#[allow(clippy::too_many_lines)] // every check of an append against the store, in the order of its error messages
pub fn extend(
    store: &Path,
    state: &StoreState,
    new: &Dataset,
) -> Result<(Dataset, u64), AppendError> {
    let mismatch = |what: String| AppendError::Mismatch {
        store: store.to_path_buf(),
        what,
    };
    let (Some(old), Some(cur)) = (&state.concat, &new.concat) else {
        return Err(mismatch(
            "the new files have no concatenation dimension".into(),
        ));
    };
    if old.dim != cur.dim {
        return Err(mismatch(format!(
            "the store is concatenated along '{}', the new files along '{}'",
            old.dim, cur.dim
        )));
    }
    if old.time_units != cur.time_units && old.time_units.is_some() {
        return Err(mismatch(format!(
            "time units of '{}': store '{}', new files '{}'",
            old.dim,
            old.time_units.clone().unwrap_or_default(),
            cur.time_units.clone().unwrap_or_default()
        )));
    }
    if old.calendar != cur.calendar && old.calendar.is_some() {
        return Err(mismatch(format!(
            "calendar of '{}': store '{}', new files '{}'",
            old.dim,
            old.calendar.clone().unwrap_or_default(),
            cur.calendar.clone().unwrap_or_default()
        )));
    }
    let old_len = old.len;
    let new_len = old_len + cur.len;
    let new_vars = new.schema.vars();
    let first_file = new
        .files
        .first()
        .map(|f| f.path.clone())
        .unwrap_or_default();
    for v in &new_vars {
        if !state.schema.vars().iter().any(|s| s.path == v.path) {
            return Err(mismatch(format!(
                "variable '{}' of {} is not in the store",
                v.path,
                first_file.display()
            )));
        }
    }
    let mut schema = state.schema.clone();
    set_dim_len(&mut schema.root, &old.dim, new_len);
    let mut sources = Vec::new();
    for (i, sv) in state.schema.vars().iter().enumerate() {
        let axis = sv.dims.iter().position(|d| *d == old.dim);
        let found = new_vars.iter().position(|v| v.path == sv.path);
        match (axis, found) {
            (Some(_), None) => {
                return Err(mismatch(format!(
                    "variable '{}' is missing from the new files",
                    sv.path
                )))
            }
            (_, Some(j)) => check_same(sv, new_vars[j], axis).map_err(|w| {
                let file = new
                    .sources
                    .get(j)
                    .and_then(|s| s.segments.first())
                    .and_then(|s| new.files.get(s.file as usize))
                    .map(|f| f.path.display().to_string())
                    .unwrap_or_default();
                mismatch(format!("variable '{}' in {file}: {w}", sv.path))
            })?,
            (None, None) => {}
        }
        let source = match (axis, found) {
            (Some(_), Some(j)) => {
                let mut s: VarSource = new.sources[j].clone();
                for seg in &mut s.segments {
                    seg.start += old_len;
                }
                s
            }
            _ => VarSource {
                var: Var {
                    path: state.source_paths.get(i).cloned().unwrap_or_default(),
                    ..(*sv).clone()
                },
                axis: None,
                segments: Vec::new(),
                stored: None,
                stack: None,
                inline: None,
            },
        };
        sources.push(source);
    }
    let mut values = old.values.clone();
    if let (Some(v), Some(n)) = (&mut values, &cur.values) {
        v.extend_from_slice(n);
    } else {
        values = None;
    }
    Ok((
        Dataset {
            files: new.files.clone(),
            schema,
            sources,
            concat: Some(Concat {
                len: new_len,
                values,
                ..old.clone()
            }),
            grid: new.grid.clone(),
        },
        old_len,
    ))
}

fn check_same(old: &Var, new: &Var, axis: Option<usize>) -> Result<(), String> {
    if old.dtype != new.dtype {
        return Err(format!(
            "type {} in the store, {} in the new files",
            old.dtype.nc_name(),
            new.dtype.nc_name()
        ));
    }
    if old.dims != new.dims {
        return Err(format!(
            "dimensions {:?} in the store, {:?} in the new files",
            old.dims, new.dims
        ));
    }
    if shape_off_axis(old, axis) != shape_off_axis(new, axis) {
        return Err(format!(
            "shape {:?} in the store, {:?} in the new files",
            old.shape, new.shape
        ));
    }
    for name in MUST_AGREE {
        let (a, b) = (old.attr(name), new.attr(name));
        let same = match (a, b) {
            (None, None) => true,
            (Some(x), Some(y)) => same_value(x, y),
            _ => false,
        };
        if !same {
            let show = |v: Option<&crate::model::schema::AttrValue>| {
                v.map_or_else(|| "absent".into(), crate::model::schema::AttrValue::display)
            };
            return Err(format!(
                "attribute '{name}' is {} in the store, {} in the new files",
                show(a),
                show(b)
            ));
        }
    }
    Ok(())
}

/// The array plans of an append: the store's layouts at the new shapes,
/// restricted to the units from the old end on.
pub fn arrays(ds: &Dataset, state: &StoreState, old_len: u64) -> Vec<ArrayPlan> {
    ds.schema
        .vars()
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let layout = state.arrays.get(i);
            let chunks = layout.map_or_else(
                || v.shape.iter().map(|&n| n.max(1)).collect(),
                |l| l.chunks.clone(),
            );
            let shards = layout.and_then(|l| l.shards.clone());
            let codec = layout.map_or(Codec::None, |l| l.codec.clone());
            let mut a = ArrayPlan::new(
                i,
                v.path.clone(),
                v.dtype,
                v.shape.clone(),
                chunks,
                shards,
                0,
            )
            .with_codec(codec);
            a.restrict(ds.sources.get(i).and_then(|s| s.axis), old_len);
            a
        })
        .collect()
}

/// Checks chunk and shard sizes given for an append against the store's:
/// an append keeps the store's layout, so a different request is an error
/// rather than silently ignored.
///
/// # Errors
/// [`AppendError::Mismatch`] naming the array and dimension.
pub fn check_layout(
    store: &Path,
    state: &StoreState,
    chunks: &crate::cli::config::DimSizes,
    shards: &crate::cli::config::DimSizes,
) -> Result<(), AppendError> {
    let growable = state.concat.as_ref().map(|c| c.dim.as_str());
    for (v, l) in state.schema.vars().iter().zip(&state.arrays) {
        // The planner's own choices for coordinates, whatever was asked:
        // the growable one has a fixed chunk, small ones are one chunk.
        if v.is_coordinate() && Some(v.dims[0].as_str()) == growable {
            continue;
        }
        let whole_coord = crate::pipeline::plan::kept_whole(v);
        for (k, d) in v.dims.iter().enumerate() {
            let asked = [
                ("--chunks", chunks.get(d), l.chunks.get(k).copied()),
                (
                    "--shards",
                    shards.get(d),
                    l.shards.as_ref().and_then(|s| s.get(k).copied()),
                ),
            ];
            for (flag, want, have) in asked {
                let Some(want) = want else { continue };
                if whole_coord && flag == "--chunks" {
                    continue;
                }
                // Sizes beyond the dimension were clamped when the store was made.
                let clamped = have.is_some_and(|h| h < want && h >= v.shape[k]);
                if have != Some(want) && !clamped {
                    return Err(AppendError::Mismatch {
                        store: store.to_path_buf(),
                        what: format!(
                            "{flag} asks {d}={want} but array '{}' has {}; an append keeps the store's layout",
                            v.path,
                            have.map_or_else(|| "no shards".to_string(), |h| format!("{d}={h}"))
                        ),
                    });
                }
            }
        }
    }
    Ok(())
}
