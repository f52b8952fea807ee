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
use crate::pipeline::combine::grid::{Grid, Label, Missing};
use crate::pipeline::combine::{
    same_value, set_dim_len, shape_off_axis, Concat, Dataset, Stack, VarSource, MUST_AGREE,
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
    let old_len = state.concat.as_ref().map_or(0, |c| c.len);
    let ds = place(store, state, new, old_len, true)?;
    Ok((ds, old_len))
}

/// The dataset of new files placed at `offset` along the store's axis:
/// after its end (an append, `grow`), or over a region of it.
///
/// # Errors
/// [`AppendError::Mismatch`] naming the variable and what differs.
#[allow(clippy::too_many_lines)] // every check of new files against the store, in the order of its error messages
pub fn place(
    store: &Path,
    state: &StoreState,
    new: &Dataset,
    offset: u64,
    grow: bool,
) -> Result<Dataset, AppendError> {
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
    let new_len = if grow { offset + cur.len } else { old.len };
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
                let stacked = s
                    .stack
                    .iter_mut()
                    .flat_map(|st| st.members.iter_mut().flatten());
                for seg in s.segments.iter_mut().chain(stacked) {
                    seg.start += offset;
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
    if !grow {
        // A region: the store's values, which the new files' equal.
    } else if let (Some(v), Some(n)) = (&mut values, &cur.values) {
        v.extend_from_slice(n);
    } else {
        values = None;
    }
    let grid = if grow {
        grown_steps(state.grid.as_ref(), new.grid.as_ref(), offset)
    } else {
        state.grid.clone()
    };
    Ok(Dataset {
        files: new.files.clone(),
        schema,
        sources,
        concat: Some(Concat {
            len: new_len,
            values,
            ..old.clone()
        }),
        grid,
    })
}

/// The grid after an append of steps: the store's members, with the new
/// files' missing cells after the old end.
fn grown_steps(old: Option<&Grid>, new: Option<&Grid>, old_len: u64) -> Option<Grid> {
    let mut g = old?.clone();
    if let Some(n) = new {
        g.missing.extend(n.missing.iter().map(|c| Missing {
            start: c.start + old_len,
            ..c.clone()
        }));
    }
    Some(g)
}

/// How an append to a store with a new dimension (`--new-dim`) grows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Growth {
    /// New steps along the concatenation dimension, for every member.
    Steps,
    /// New members, with the store's steps.
    Members,
}

/// Whether the new files add steps for the store's members or new
/// members; puts the new dataset's members in the store's order.
///
/// # Errors
/// [`AppendError::Mismatch`] when the store and the new files disagree on
/// the new dimension, or the new files mix the store's members and others.
pub fn growth(store: &Path, state: &StoreState, new: &mut Dataset) -> Result<Growth, AppendError> {
    let mismatch = |what: String| AppendError::Mismatch {
        store: store.to_path_buf(),
        what,
    };
    let (old, cur) = match (&state.grid, &new.grid) {
        (None, None) => return Ok(Growth::Steps),
        (Some(g), None) => {
            return Err(mismatch(format!(
                "the store has the dimension '{}' made from its files; pass the same --new-dim to append to it",
                g.dim
            )))
        }
        (None, Some(g)) => {
            return Err(mismatch(format!(
                "--new-dim '{}' is not a dimension the store was made with",
                g.dim
            )))
        }
        (Some(o), Some(c)) => (o, c),
    };
    if old.dim != cur.dim {
        return Err(mismatch(format!(
            "the store's new dimension is '{}', the new files' '{}'",
            old.dim, cur.dim
        )));
    }
    let known: Vec<&Label> = cur
        .labels
        .iter()
        .filter(|l| old.labels.contains(l))
        .collect();
    if known.is_empty() {
        return Ok(Growth::Members);
    }
    if known.len() == cur.labels.len() && cur.labels.len() == old.labels.len() {
        crate::pipeline::combine::grid::reorder(new, &old.labels);
        return Ok(Growth::Steps);
    }
    let list = |v: Vec<&Label>| {
        v.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let fresh: Vec<&Label> = cur
        .labels
        .iter()
        .filter(|l| !old.labels.contains(l))
        .collect();
    let absent: Vec<&Label> = old
        .labels
        .iter()
        .filter(|l| !cur.labels.contains(l))
        .collect();
    Err(mismatch(format!(
        "an append adds steps for every member of the store, or new members with the store's steps; the new files have {}={} (in the store){}{}",
        cur.dim,
        list(known),
        if fresh.is_empty() { String::new() } else { format!(" and {} (not in the store)", list(fresh)) },
        if absent.is_empty() { String::new() } else { format!(", but not {} (pass --allow-missing with --new-dim-order listing every member to append steps for some)", list(absent)) },
    )))
}

/// The dataset of an append of new members: the store's structure with
/// the new dimension grown, the stacked variables and its coordinate
/// written from the old end on, nothing else. Returns it and the old
/// number of members.
///
/// # Errors
/// [`AppendError::Mismatch`] naming what differs: the steps along the
/// concatenation dimension, or a variable.
pub fn extend_members(
    store: &Path,
    state: &StoreState,
    new: &Dataset,
) -> Result<(Dataset, u64), AppendError> {
    let mismatch = |what: String| AppendError::Mismatch {
        store: store.to_path_buf(),
        what,
    };
    let (Some(old), Some(cur)) = (&state.grid, &new.grid) else {
        return Err(mismatch("no new dimension".into()));
    };
    check_same_steps(state.concat.as_ref(), new.concat.as_ref()).map_err(mismatch)?;
    let old_m = old.labels.len() as u64;
    let new_vars = new.schema.vars();
    let mut schema = state.schema.clone();
    set_dim_len(&mut schema.root, &old.dim, old_m + cur.labels.len() as u64);
    let mut sources = Vec::new();
    for (i, sv) in state.schema.vars().iter().enumerate() {
        let Some(j) = new_vars.iter().position(|v| v.path == sv.path) else {
            return Err(mismatch(format!(
                "variable '{}' is missing from the new files",
                sv.path
            )));
        };
        let member_axis = sv.dims.iter().position(|d| *d == old.dim);
        check_same(sv, new_vars[j], member_axis)
            .map_err(|w| mismatch(format!("variable '{}' of the new members: {w}", sv.path)))?;
        let src = &new.sources[j];
        let mut s = VarSource {
            var: Var {
                path: state.source_paths.get(i).cloned().unwrap_or_default(),
                ..(*sv).clone()
            },
            axis: None,
            segments: Vec::new(),
            stored: None,
            stack: None,
            inline: None,
        };
        if let Some(labels) = &src.inline {
            s.axis = member_axis;
            s.inline = Some(old.labels.iter().chain(labels).cloned().collect());
        } else if let Some(st) = &src.stack {
            let mut members = vec![Vec::new(); old.labels.len()];
            members.extend(st.members.iter().cloned());
            s = VarSource {
                axis: member_axis,
                stack: Some(Stack {
                    axis: st.axis,
                    members,
                }),
                ..src.clone()
            };
        }
        sources.push(s);
    }
    if let Some(w) = new_vars
        .iter()
        .find(|v| !state.schema.vars().iter().any(|s| s.path == v.path))
    {
        return Err(mismatch(format!(
            "variable '{}' of the new files is not in the store",
            w.path
        )));
    }
    let mut grid = old.clone();
    grid.labels.extend(cur.labels.iter().cloned());
    grid.missing.extend(cur.missing.iter().map(|c| Missing {
        index: c.index + old_m,
        ..c.clone()
    }));
    Ok((
        Dataset {
            files: new.files.clone(),
            schema,
            sources,
            concat: state.concat.clone(),
            grid: Some(grid),
        },
        old_m,
    ))
}

/// New members must have exactly the store's steps.
fn check_same_steps(old: Option<&Concat>, new: Option<&Concat>) -> Result<(), String> {
    let (Some(o), Some(n)) = (old, new) else {
        return if old.is_some() == new.is_some() {
            Ok(())
        } else {
            Err("the store and the new members do not have the same concatenation dimension".into())
        };
    };
    if o.dim != n.dim {
        return Err(format!(
            "the store is concatenated along '{}', the new members along '{}'",
            o.dim, n.dim
        ));
    }
    let show = |x: Option<&f64>| x.map_or_else(|| "none".into(), f64::to_string);
    match (&o.values, &n.values) {
        (Some(a), Some(b)) => {
            if let Some(k) = (0..a.len().max(b.len()))
                .find(|&k| a.get(k).map(|x| x.to_bits()) != b.get(k).map(|x| x.to_bits()))
            {
                return Err(format!(
                    "new members must have the store's steps of '{}': step {k} is {} in the store, {} in the new files{}",
                    o.dim,
                    show(a.get(k)),
                    show(b.get(k)),
                    o.time_units.as_ref().map(|u| format!(" (in {u})")).unwrap_or_default()
                ));
            }
        }
        _ if o.len != n.len => {
            return Err(format!(
                "new members must have the store's {} steps of '{}', not {}",
                o.len, o.dim, n.len
            ));
        }
        _ => {}
    }
    Ok(())
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
