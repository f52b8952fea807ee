//! The dataset: many input files combined into one output structure.
//!
//! [`combine`] is pure: it takes the scans of all input files and returns
//! the output [`Schema`] plus, for every output variable, where its values
//! come from ([`VarSource`]: which file holds which range of the
//! concatenation dimension, and how its time values are re-encoded).
//!
//! Rules:
//! * Files are grouped by the set of variables along the concatenation
//!   dimension they hold (or by the recipe's merge groups). Each group is
//!   ordered by its coordinate values (not by name) and must form one axis
//!   without gaps, overlaps or duplicated values (unless allowed). All groups
//!   must give the same axis: that is how `t2m_*.nc` and `u10_*.nc` merge.
//! * Variables without the concatenation dimension are taken once, from the
//!   first file in time order that holds them, and must be the same in every
//!   file (shape, type, attributes; values too with the full check).
//! * A variable along the concatenation dimension must have the same type,
//!   dimensions, shape off that dimension, packing (`scale_factor`,
//!   `add_offset`, `_FillValue`, `missing_value`) and `units` in every file.
//! * A time coordinate whose `units` differ between files is re-encoded to
//!   one unit (the first file's, or `--time-units`) exactly.

// Combination errors carry both files and both values; they are returned
// once per run, never on a hot path.
#![allow(clippy::result_large_err)]

pub mod error;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::model::cftime::{self, Calendar, Recode};
use crate::model::schema::{AttrValue, DType, Group, Schema, SourceFormat, Var};
use crate::pipeline::scan::FileScan;

/// One input file of the dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceFile {
    /// Path.
    pub path: PathBuf,
    /// Format.
    pub format: SourceFormat,
    /// Size in bytes when scanned.
    pub size: u64,
    /// Modification time when scanned (ns since the epoch).
    pub mtime_ns: i128,
}

/// One file's share of a variable along the concatenation dimension.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    /// The file (index into [`Dataset::files`]).
    pub file: u32,
    /// First index along the concatenation dimension in the output.
    pub start: u64,
    /// Number of indices.
    pub len: u64,
    /// Time re-encoding of the values, if their units differ.
    pub recode: Option<Recode>,
}

/// Where an output variable's values come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VarSource {
    /// The variable as the source files hold it (source path and
    /// attributes: the reader needs its fill value).
    pub var: Var,
    /// Position of the concatenation dimension in its dimensions.
    pub axis: Option<usize>,
    /// The segments in output order; one covering everything when `axis` is
    /// `None`.
    pub segments: Vec<Segment>,
    /// The source's chunking and compression, when the output keeps them
    /// (`--codec source`).
    #[serde(default)]
    pub stored: Option<StoredChunks>,
}

/// The source chunking and compression of a variable, as Zarr sees them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredChunks {
    /// The source chunk shape.
    pub chunks: Vec<u64>,
    /// The source filters as a [`crate::cli::config::Codec::Stored`].
    pub codec: crate::cli::config::Codec,
}

impl VarSource {
    /// Segments overlapping `[lo, hi)` along the axis.
    pub fn segments_in(&self, lo: u64, hi: u64) -> impl Iterator<Item = &Segment> {
        let first = self.segments.partition_point(|s| s.start + s.len <= lo);
        self.segments[first..]
            .iter()
            .take_while(move |s| s.start < hi)
    }
}

/// The concatenation axis of the dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Concat {
    /// Dimension name (in the output).
    pub dim: String,
    /// Its length.
    pub len: u64,
    /// Values of its coordinate variable in the output's units, if any.
    pub values: Option<Vec<f64>>,
    /// Time units of the coordinate in the output, if it is a time axis.
    pub time_units: Option<String>,
    /// Calendar of the time axis.
    pub calendar: Option<String>,
}

/// Inputs combined into one output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    /// Input files.
    pub files: Vec<SourceFile>,
    /// The output structure.
    pub schema: Schema,
    /// Sources of the variables, in the order of [`Schema::vars`].
    pub sources: Vec<VarSource>,
    /// The concatenation axis, if any.
    pub concat: Option<Concat>,
}

/// Options of [`combine`].
#[derive(Debug, Clone, Default)]
pub struct CombineOptions {
    /// Dimension to concatenate along (default: the common unlimited one).
    pub concat_dim: Option<String>,
    /// Units of the time coordinate in the output (default: the first
    /// file's in time order).
    pub time_units: Option<String>,
    /// Allow gaps between files along the axis.
    pub allow_gaps: bool,
    /// Allow overlapping or repeated coordinate values between files.
    pub allow_overlaps: bool,
    /// Explicit merge groups (file indices); default: by variable set.
    pub merge_groups: Option<Vec<Vec<usize>>>,
}

pub use crate::pipeline::combine::error::CombineError;

/// Attributes that must agree between files for a variable along the axis:
/// packed or masked values would be silently wrong otherwise.
pub const MUST_AGREE: [&str; 6] = [
    "scale_factor",
    "add_offset",
    "_FillValue",
    "missing_value",
    "units",
    "calendar",
];

/// NaN-aware equality of attribute values (same type, same bits).
pub fn same_value(a: &AttrValue, b: &AttrValue) -> bool {
    let cfg = bincode::config::standard();
    match (
        bincode::serde::encode_to_vec(a, cfg),
        bincode::serde::encode_to_vec(b, cfg),
    ) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

fn text_attr(v: &Var, name: &str) -> Option<String> {
    match v.attr(name)? {
        AttrValue::Text(s) => Some(s.trim().to_string()),
        AttrValue::Strings(s) => s.first().map(|x| x.trim().to_string()),
        _ => None,
    }
}

fn show(v: Option<&AttrValue>) -> String {
    v.map_or_else(|| "absent".to_string(), AttrValue::display)
}

/// The coordinate variable of `dim` in the root group of `s`.
fn coord_var<'a>(s: &'a Schema, dim: &str) -> Option<&'a Var> {
    s.root
        .vars
        .iter()
        .find(|v| v.name == dim && v.dims.len() == 1 && v.dims[0] == dim)
}

/// Axis variables: the coordinate and its `bounds` variable.
fn axis_vars(s: &Schema, dim: &str) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(c) = coord_var(s, dim) {
        out.push(c.path.clone());
        if let Some(b) = text_attr(c, "bounds") {
            out.push(b);
        }
    }
    out
}

struct Member {
    file: usize,
    len: u64,
    values: Option<Vec<f64>>,
}

/// Combines the scans of the input files (in their natural order).
///
/// # Errors
/// [`CombineError`] naming the files, variable and the mismatch.
#[allow(clippy::too_many_lines)]
pub fn combine(scans: &[FileScan], opts: &CombineOptions) -> Result<Dataset, CombineError> {
    if scans.is_empty() {
        return Err(CombineError::NoInputs);
    }
    // A concatenation dimension no variable uses (an unlimited dimension
    // left empty, or whose variables were skipped) concatenates nothing.
    let dim = concat_dim(scans, opts)?.filter(|d| {
        scans
            .iter()
            .any(|s| s.schema.vars().iter().any(|v| v.dims.contains(d)))
    });
    // Variables are matched to the concatenation dimension by name: a group
    // defining its own dimension of that name would be taken for it. One
    // file converts as it is (nothing to concatenate); several are refused.
    let dim = match dim {
        Some(d) => match shadowing_group(scans, &d) {
            None => Some(d),
            Some(_) if scans.len() == 1 && opts.concat_dim.is_none() => None,
            Some((path, group)) => {
                return Err(CombineError::ShadowedConcatDim {
                    path,
                    group,
                    dim: d,
                })
            }
        },
        None => None,
    };
    let files: Vec<SourceFile> = scans
        .iter()
        .map(|s| SourceFile {
            path: s.path.clone(),
            format: s.schema.format,
            size: s.size,
            mtime_ns: s.mtime_ns,
        })
        .collect();
    let Some(dim) = dim else {
        return combine_static_only(scans, files);
    };

    // Time units: one calendar, one output unit, one recode per file.
    let time = TimeAxis::new(scans, &dim, opts)?;

    // Groups of files.
    let uses_dim = |s: &FileScan| s.schema.vars().iter().any(|v| v.dims.contains(&dim));
    let keys: Vec<BTreeSet<String>> = scans
        .iter()
        .map(|s| {
            let axis = axis_vars(&s.schema, &dim);
            s.schema
                .vars()
                .iter()
                .filter(|v| v.dims.contains(&dim) && !axis.contains(&v.path))
                .map(|v| v.path.clone())
                .collect()
        })
        .collect();
    let groups: Vec<Vec<usize>> = match &opts.merge_groups {
        Some(g) => {
            let mut seen = vec![false; scans.len()];
            for &i in g.iter().flatten() {
                if i >= scans.len() || std::mem::replace(&mut seen[i], true) {
                    return Err(CombineError::Groups(format!(
                        "file {} is in more than one group",
                        scans
                            .get(i)
                            .map_or_else(String::new, |s| s.path.display().to_string())
                    )));
                }
            }
            if let Some(i) = seen.iter().position(|s| !s) {
                return Err(CombineError::Groups(format!(
                    "{} matches no merge group",
                    scans[i].path.display()
                )));
            }
            for grp in g {
                for w in grp.windows(2) {
                    check_same_vars(scans, &keys, w[0], w[1])?;
                }
            }
            g.iter().filter(|grp| !grp.is_empty()).cloned().collect()
        }
        None => {
            let mut by_key: BTreeMap<&BTreeSet<String>, Vec<usize>> = BTreeMap::new();
            let mut order: Vec<&BTreeSet<String>> = Vec::new();
            for (i, s) in scans.iter().enumerate() {
                if !uses_dim(s) {
                    continue;
                }
                let e = by_key.entry(&keys[i]).or_default();
                if e.is_empty() {
                    order.push(&keys[i]);
                }
                e.push(i);
            }
            order.iter().map(|k| by_key[k].clone()).collect()
        }
    };
    // Two groups sharing a variable: it is missing from some files.
    for (gi, a) in groups.iter().enumerate() {
        for b in &groups[gi + 1..] {
            let (ka, kb) = (&keys[a[0]], &keys[b[0]]);
            if !ka.is_disjoint(kb) {
                let (fa, fb) = (a[0], b[0]);
                if let Some(v) = ka.difference(kb).next() {
                    return Err(CombineError::Missing {
                        var: v.clone(),
                        file: scans[fb].path.clone(),
                        present: scans[fa].path.clone(),
                    });
                }
                if let Some(v) = kb.difference(ka).next() {
                    return Err(CombineError::Missing {
                        var: v.clone(),
                        file: scans[fa].path.clone(),
                        present: scans[fb].path.clone(),
                    });
                }
                let v = ka.iter().next().cloned().unwrap_or_default();
                return Err(CombineError::Groups(format!(
                    "variable '{v}' is in two merge groups ({} and {})",
                    scans[fa].path.display(),
                    scans[fb].path.display()
                )));
            }
        }
    }

    // Order each group along the axis and check it.
    let mut ordered: Vec<Vec<Member>> = Vec::new();
    for g in &groups {
        let mut members: Vec<Member> = Vec::new();
        for &i in g {
            let c = scans[i].coords.iter().find(|c| c.dim == dim);
            let len = c.map_or(0, |c| c.len);
            let values = c
                .and_then(|c| c.values.as_ref())
                .map(|v| time.to_output(i, v));
            members.push(Member {
                file: i,
                len,
                values,
            });
        }
        let with = members.iter().find(|m| m.values.is_some() && m.len > 0);
        let without = members.iter().find(|m| m.values.is_none() && m.len > 0);
        if let (Some(w), Some(wo)) = (with, without) {
            return Err(CombineError::CoordMix {
                dim: dim.clone(),
                with: scans[w.file].path.clone(),
                without: scans[wo.file].path.clone(),
            });
        }
        let has_coords = with.is_some();
        members.retain(|m| m.len > 0);
        if has_coords {
            for m in members.iter().filter(|_| scans.len() > 1) {
                if let Some(v) = &m.values {
                    if let Some(k) = v
                        .windows(2)
                        .position(|w| w[1].partial_cmp(&w[0]) != Some(std::cmp::Ordering::Greater))
                    {
                        return Err(CombineError::NotIncreasing {
                            file: scans[m.file].path.clone(),
                            dim: dim.clone(),
                            index: k + 1,
                        });
                    }
                }
            }
            // Stable: equal first values keep the natural order.
            members.sort_by(|a, b| {
                let fa = a
                    .values
                    .as_ref()
                    .and_then(|v| v.first())
                    .copied()
                    .unwrap_or(f64::NAN);
                let fb = b
                    .values
                    .as_ref()
                    .and_then(|v| v.first())
                    .copied()
                    .unwrap_or(f64::NAN);
                fa.total_cmp(&fb)
            });
            check_axis(scans, &dim, &members, opts)?;
        }
        ordered.push(members);
    }

    // Every group must give the same axis.
    let axis: Vec<Option<f64>> = axis_of(&ordered[0]);
    for (gi, g) in ordered.iter().enumerate().skip(1) {
        let other = axis_of(g);
        if other != axis {
            let pos = axis
                .iter()
                .zip(&other)
                .position(|(a, b)| a != b)
                .unwrap_or(axis.len().min(other.len()));
            let at = |m: &[Member], p: usize| -> String {
                let mut off = 0u64;
                for x in m {
                    if (p as u64) < off + x.len {
                        return scans[x.file].path.display().to_string();
                    }
                    off += x.len;
                }
                "(end)".into()
            };
            let name = |g: usize| -> String {
                let k = &keys[groups[g][0]];
                if k.is_empty() {
                    format!("'{dim}'")
                } else {
                    k.iter()
                        .map(|v| format!("'{v}'"))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            };
            return Err(CombineError::Axis {
                dim: dim.clone(),
                detail: format!(
                    "the files of {} hold {} steps, those of {} hold {}; they first differ at step {pos} ({} vs {})",
                    name(0),
                    axis.len(),
                    name(gi),
                    other.len(),
                    at(&ordered[0], pos),
                    at(g, pos),
                ),
            });
        }
    }
    let axis_len = axis.len() as u64;

    // The output structure: representative files, groups first.
    let mut reps: Vec<usize> = ordered
        .iter()
        .filter_map(|g| g.first().map(|m| m.file))
        .collect();
    for g in &groups {
        // Groups whose files are all empty along the axis.
        if !g.iter().any(|i| reps.contains(i)) {
            reps.push(g[0]);
        }
    }
    for (i, s) in scans.iter().enumerate() {
        if !uses_dim(s) {
            reps.push(i);
        }
    }
    let mut root = scans[reps[0]].schema.root.clone();
    for &r in &reps[1..] {
        merge_group(&mut root, &scans[r].schema.root);
    }
    set_dim_len(&mut root, &dim, axis_len);
    let mut skipped = Vec::new();
    for s in scans {
        for k in &s.schema.skipped {
            if !skipped.contains(k) {
                skipped.push(k.clone());
            }
        }
    }
    let schema = Schema {
        source: scans[reps[0]].path.clone(),
        format: scans[reps[0]].schema.format,
        root,
        skipped,
        warnings: warnings_of(scans),
    };

    // Files holding each variable, in output order.
    let axis_paths = axis_vars(&scans[reps[0]].schema, &dim);
    let group_of_var = |path: &str| -> Option<usize> {
        groups
            .iter()
            .position(|g| keys[g[0]].contains(path))
            .or_else(|| axis_paths.iter().any(|p| p == path).then_some(0))
    };
    let mut sources = Vec::new();
    let mut out_schema = schema;
    let out_vars: Vec<Var> = out_schema.vars().into_iter().cloned().collect();
    let mut time_units_out: Vec<(String, String)> = Vec::new();
    for v in &out_vars {
        let holders: Vec<usize> = scans
            .iter()
            .enumerate()
            .filter(|(_, s)| s.schema.vars().iter().any(|x| x.path == v.path))
            .map(|(i, _)| i)
            .collect();
        let axis_pos = v.dims.iter().position(|d| *d == dim);
        if let Some(k) = axis_pos {
            let g = group_of_var(&v.path).unwrap_or(0);
            let members = &ordered[g];
            let all: Vec<usize> = groups[g].clone();
            let first = members.first().map_or(all[0], |m| m.file);
            let base = find_var(&scans[first].schema, &v.path)
                .cloned()
                .unwrap_or_else(|| v.clone());
            let recoded = time.applies_to(&base, &axis_paths);
            for &i in &all {
                let Some(x) = find_var(&scans[i].schema, &v.path) else {
                    return Err(CombineError::Missing {
                        var: v.path.clone(),
                        file: scans[i].path.clone(),
                        present: scans[first].path.clone(),
                    });
                };
                check_var(
                    &base,
                    x,
                    Some(k),
                    recoded,
                    &scans[first].path,
                    &scans[i].path,
                )?;
            }
            let mut segments = Vec::new();
            let mut start = 0u64;
            for m in members {
                segments.push(Segment {
                    file: u32::try_from(m.file).unwrap_or(u32::MAX),
                    start,
                    len: m.len,
                    recode: if recoded { time.recode(m.file) } else { None },
                });
                start += m.len;
            }
            if recoded && base.attr("units").is_some() {
                if let Some(u) = &time.output_units {
                    time_units_out.push((v.path.clone(), u.clone()));
                }
            }
            sources.push(VarSource {
                var: base,
                axis: Some(k),
                segments,
                stored: None,
            });
        } else {
            // Static: from the first holder in time order.
            let order: Vec<usize> = ordered
                .iter()
                .flat_map(|g| g.iter().map(|m| m.file))
                .chain(0..scans.len())
                .collect();
            let first = order
                .iter()
                .copied()
                .find(|i| holders.contains(i))
                .unwrap_or(holders[0]);
            let base = find_var(&scans[first].schema, &v.path)
                .cloned()
                .unwrap_or_else(|| v.clone());
            for &i in &holders {
                if let Some(x) = find_var(&scans[i].schema, &v.path) {
                    check_var(&base, x, None, false, &scans[first].path, &scans[i].path)?;
                    check_digest(&scans[first], &scans[i], &v.path)?;
                }
            }
            sources.push(VarSource {
                var: base,
                axis: None,
                segments: vec![Segment {
                    file: u32::try_from(first).unwrap_or(u32::MAX),
                    start: 0,
                    len: 0,
                    recode: None,
                }],
                stored: None,
            });
        }
    }
    // Output attributes: from each variable's first file; time units: the output's.
    set_var_attrs(&mut out_schema.root, &sources);
    for (path, units) in &time_units_out {
        set_attr(
            &mut out_schema.root,
            path,
            "units",
            AttrValue::Text(units.clone()),
        );
    }
    let values: Option<Vec<f64>> = axis.iter().copied().collect();
    Ok(Dataset {
        files,
        schema: out_schema,
        sources,
        concat: Some(Concat {
            dim,
            len: axis_len,
            values,
            time_units: time.output_units.clone(),
            calendar: time.calendar_name.clone(),
        }),
    })
}

fn axis_of(members: &[Member]) -> Vec<Option<f64>> {
    let mut out = Vec::new();
    for m in members {
        match &m.values {
            Some(v) => out.extend(v.iter().map(|&x| Some(x))),
            None => out.extend((0..m.len).map(|_| None)),
        }
    }
    out
}

fn check_same_vars(
    scans: &[FileScan],
    keys: &[BTreeSet<String>],
    a: usize,
    b: usize,
) -> Result<(), CombineError> {
    if let Some(v) = keys[a].difference(&keys[b]).next() {
        return Err(CombineError::Missing {
            var: v.clone(),
            file: scans[b].path.clone(),
            present: scans[a].path.clone(),
        });
    }
    if let Some(v) = keys[b].difference(&keys[a]).next() {
        return Err(CombineError::Missing {
            var: v.clone(),
            file: scans[a].path.clone(),
            present: scans[b].path.clone(),
        });
    }
    Ok(())
}

/// Gaps, overlaps and duplicates between consecutive files of one group.
fn check_axis(
    scans: &[FileScan],
    dim: &str,
    members: &[Member],
    opts: &CombineOptions,
) -> Result<(), CombineError> {
    let vals = |m: &Member| m.values.clone().unwrap_or_default();
    let mut inner: Vec<f64> = Vec::new();
    for m in members {
        inner.extend(vals(m).windows(2).map(|w| w[1] - w[0]));
    }
    let mut across: Vec<f64> = Vec::new();
    for w in members.windows(2) {
        let (a, b) = (vals(&w[0]), vals(&w[1]));
        let (Some(&last), Some(&first)) = (a.last(), b.first()) else {
            continue;
        };
        if first <= last && !opts.allow_overlaps {
            let (pa, pb) = (scans[w[0].file].path.clone(), scans[w[1].file].path.clone());
            if a.contains(&first) {
                return Err(CombineError::Duplicate {
                    dim: dim.to_string(),
                    a: pa,
                    b: pb,
                    value: first,
                });
            }
            return Err(CombineError::Overlap {
                dim: dim.to_string(),
                a: pa,
                b: pb,
                last,
                first,
            });
        }
        across.push(first - last);
    }
    if opts.allow_gaps {
        return Ok(());
    }
    let mut steps = if inner.is_empty() { across } else { inner };
    let step = median(&mut steps);
    let Some(step) = step.filter(|s| *s > 0.0) else {
        return Ok(());
    };
    for w in members.windows(2) {
        let (a, b) = (vals(&w[0]), vals(&w[1]));
        let (Some(&last), Some(&first)) = (a.last(), b.first()) else {
            continue;
        };
        if first - last > 1.5 * step {
            return Err(CombineError::Gap {
                dim: dim.to_string(),
                a: scans[w[0].file].path.clone(),
                b: scans[w[1].file].path.clone(),
                last,
                first,
                step,
            });
        }
    }
    Ok(())
}

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

/// The concatenation dimension: the given one, else the unlimited dimension
/// common to every file that has one.
fn concat_dim(scans: &[FileScan], opts: &CombineOptions) -> Result<Option<String>, CombineError> {
    if let Some(d) = &opts.concat_dim {
        let known = scans.iter().any(|s| {
            s.schema.vars().iter().any(|v| v.dims.contains(d))
                || s.schema.root.dims.iter().any(|x| &x.name == d)
        });
        if !known {
            return Err(CombineError::UnknownConcatDim(d.clone()));
        }
        return Ok(Some(d.clone()));
    }
    let mut found: Option<String> = None;
    for s in scans {
        let unl: Vec<&str> = s
            .schema
            .root
            .dims
            .iter()
            .filter(|d| d.unlimited)
            .map(|d| d.name.as_str())
            .collect();
        match (unl.as_slice(), &found) {
            ([], _) => {}
            ([one], None) => found = Some((*one).to_string()),
            ([one], Some(f)) if f == one => {}
            _ => return Ok(None),
        }
    }
    Ok(found)
}

/// Several files and nothing to concatenate: variables must be disjoint.
fn combine_static_only(
    scans: &[FileScan],
    files: Vec<SourceFile>,
) -> Result<Dataset, CombineError> {
    let mut root = scans[0].schema.root.clone();
    let mut owner: BTreeMap<String, usize> = BTreeMap::new();
    for (i, s) in scans.iter().enumerate() {
        for v in s.schema.vars() {
            if let Some(&j) = owner.get(&v.path) {
                return Err(CombineError::NoConcatDim {
                    var: v.path.clone(),
                    a: scans[j].path.clone(),
                    b: s.path.clone(),
                });
            }
            owner.insert(v.path.clone(), i);
        }
        if i > 0 {
            merge_group(&mut root, &s.schema.root);
        }
    }
    let schema = Schema {
        source: scans[0].path.clone(),
        format: scans[0].schema.format,
        root,
        skipped: scans
            .iter()
            .flat_map(|s| s.schema.skipped.clone())
            .collect(),
        warnings: warnings_of(scans),
    };
    let sources = schema
        .vars()
        .iter()
        .map(|v| {
            let i = owner.get(&v.path).copied().unwrap_or(0);
            VarSource {
                var: (*v).clone(),
                axis: None,
                segments: vec![Segment {
                    file: u32::try_from(i).unwrap_or(u32::MAX),
                    start: 0,
                    len: 0,
                    recode: None,
                }],
                stored: None,
            }
        })
        .collect();
    Ok(Dataset {
        files,
        schema,
        sources,
        concat: None,
    })
}

/// Adds the dimensions, variables and groups of `src` missing from `dst`.
fn merge_group(dst: &mut Group, src: &Group) {
    for d in &src.dims {
        if !dst.dims.iter().any(|x| x.name == d.name) {
            dst.dims.push(d.clone());
        }
    }
    for v in &src.vars {
        if !dst.vars.iter().any(|x| x.name == v.name) {
            dst.vars.push(v.clone());
        }
    }
    for a in &src.attrs {
        if !dst.attrs.iter().any(|x| x.name == a.name) {
            dst.attrs.push(a.clone());
        }
    }
    for g in &src.groups {
        match dst.groups.iter_mut().find(|x| x.name == g.name) {
            Some(x) => merge_group(x, g),
            None => dst.groups.push(g.clone()),
        }
    }
}

/// Sets the length of dimension `dim` in `g` and below, and the shapes of
/// the variables that use it.
pub fn set_dim_len(g: &mut Group, dim: &str, len: u64) {
    for d in &mut g.dims {
        if d.name == dim {
            d.len = len;
        }
    }
    for v in &mut g.vars {
        for (k, d) in v.dims.iter().enumerate() {
            if d == dim {
                v.shape[k] = len;
            }
        }
    }
    for c in &mut g.groups {
        set_dim_len(c, dim, len);
    }
}

/// Attributes and storage details of each output variable from its source
/// (the first file in time order that holds it).
fn set_var_attrs(root: &mut Group, sources: &[VarSource]) {
    fn walk(g: &mut Group, by_path: &BTreeMap<&str, &Var>) {
        for v in &mut g.vars {
            if let Some(s) = by_path.get(v.path.as_str()) {
                v.attrs = s.attrs.clone();
                v.source_chunks = s.source_chunks.clone();
            }
        }
        for c in &mut g.groups {
            walk(c, by_path);
        }
    }
    let by_path: BTreeMap<&str, &Var> = sources
        .iter()
        .map(|s| (s.var.path.as_str(), &s.var))
        .collect();
    walk(root, &by_path);
}

fn set_attr(g: &mut Group, path: &str, name: &str, value: AttrValue) {
    for v in &mut g.vars {
        if v.path == path {
            match v.attrs.iter_mut().find(|a| a.name == name) {
                Some(a) => a.value = value.clone(),
                None => v.attrs.push(crate::model::schema::Attr {
                    name: name.to_string(),
                    value: value.clone(),
                }),
            }
        }
    }
    for c in &mut g.groups {
        set_attr(c, path, name, value.clone());
    }
}

fn find_var<'a>(s: &'a Schema, path: &str) -> Option<&'a Var> {
    fn walk<'a>(g: &'a Group, path: &str) -> Option<&'a Var> {
        g.vars
            .iter()
            .find(|v| v.path == path)
            .or_else(|| g.groups.iter().find_map(|c| walk(c, path)))
    }
    walk(&s.root, path)
}

/// The shape of `v` without the concatenation axis.
pub fn shape_off_axis(v: &Var, axis: Option<usize>) -> Vec<u64> {
    v.shape
        .iter()
        .enumerate()
        .filter(|(k, _)| Some(*k) != axis)
        .map(|(_, &n)| n)
        .collect()
}

/// Checks that `x` (in file `b`) agrees with `base` (in file `a`).
fn check_var(
    base: &Var,
    x: &Var,
    axis: Option<usize>,
    recoded: bool,
    a: &std::path::Path,
    b: &std::path::Path,
) -> Result<(), CombineError> {
    let mismatch = |what: &str, va: String, vb: String| CombineError::Mismatch {
        var: base.path.clone(),
        what: what.to_string(),
        a: a.to_path_buf(),
        va,
        b: b.to_path_buf(),
        vb,
    };
    if base.dtype != x.dtype {
        return Err(mismatch(
            "type",
            base.dtype.nc_name().into(),
            x.dtype.nc_name().into(),
        ));
    }
    if base.dims != x.dims {
        return Err(mismatch(
            "dimensions",
            format!("{:?}", base.dims),
            format!("{:?}", x.dims),
        ));
    }
    if shape_off_axis(base, axis) != shape_off_axis(x, axis) {
        return Err(mismatch(
            if axis.is_some() {
                "shape off the concatenation dimension"
            } else {
                "shape"
            },
            format!("{:?}", base.shape),
            format!("{:?}", x.shape),
        ));
    }
    let names: Vec<&str> = if axis.is_some() {
        MUST_AGREE.to_vec()
    } else {
        // Static variables: every attribute.
        let mut n: Vec<&str> = base.attrs.iter().map(|a| a.name.as_str()).collect();
        n.extend(x.attrs.iter().map(|a| a.name.as_str()));
        n
    };
    for name in names {
        // The time axis checks its own units and calendar.
        if recoded && (name == "units" || name == "calendar") {
            continue;
        }
        let (va, vb) = (base.attr(name), x.attr(name));
        let same = match (va, vb) {
            (None, None) => true,
            (Some(p), Some(q)) => same_value(p, q),
            _ => false,
        };
        if !same {
            return Err(mismatch(&format!("attribute '{name}'"), show(va), show(vb)));
        }
    }
    Ok(())
}

fn check_digest(a: &FileScan, b: &FileScan, path: &str) -> Result<(), CombineError> {
    let get = |s: &FileScan| s.digests.iter().find(|(p, _)| p == path).map(|(_, d)| *d);
    match (get(a), get(b)) {
        (Some(x), Some(y)) if x != y => Err(CombineError::Mismatch {
            var: path.to_string(),
            what: "data".into(),
            a: a.path.clone(),
            va: format!("digest {x:016x}"),
            b: b.path.clone(),
            vb: format!("digest {y:016x}"),
        }),
        _ => Ok(()),
    }
}

/// The time axis: calendar, output units and each file's recode.
struct TimeAxis {
    /// The calendar attribute as the first file writes it.
    calendar_name: Option<String>,
    output_units: Option<String>,
    recodes: Vec<Option<Recode>>,
}

impl TimeAxis {
    fn new(scans: &[FileScan], dim: &str, opts: &CombineOptions) -> Result<Self, CombineError> {
        let units: Vec<Option<String>> = scans
            .iter()
            .map(|s| coord_var(&s.schema, dim).and_then(|c| text_attr(c, "units")))
            .collect();
        let is_time: Vec<bool> = units
            .iter()
            .map(|u| u.as_deref().is_some_and(cftime::is_time_units))
            .collect();
        let Some(first) = is_time.iter().position(|&t| t) else {
            return Ok(Self {
                calendar_name: None,
                output_units: None,
                recodes: vec![None; scans.len()],
            });
        };
        let reference = units[first].clone().unwrap_or_default();
        let all_same = units
            .iter()
            .zip(&is_time)
            .all(|(u, &t)| !t || u.as_deref() == Some(reference.as_str()));
        let given = opts.time_units.as_ref().map(|s| s.trim().to_string());
        let raw_cal = |i: usize| -> String {
            coord_var(&scans[i].schema, dim)
                .and_then(|c| text_attr(c, "calendar"))
                .unwrap_or_else(|| "standard".into())
                .to_ascii_lowercase()
        };
        if all_same && given.as_ref().is_none_or(|g| *g == reference) {
            // Nothing to re-encode: the calendar need not be one zarrforge
            // knows, only the same everywhere.
            for i in 0..scans.len() {
                let (a, b) = (raw_cal(first), raw_cal(i));
                let same = match (Calendar::parse(Some(&a)), Calendar::parse(Some(&b))) {
                    (Ok(x), Ok(y)) => x == y,
                    _ => a == b,
                };
                if coord_var(&scans[i].schema, dim).is_some() && !same {
                    return Err(CombineError::Mismatch {
                        var: dim.to_string(),
                        what: "calendar".into(),
                        a: scans[first].path.clone(),
                        va: raw_cal(first),
                        b: scans[i].path.clone(),
                        vb: raw_cal(i),
                    });
                }
            }
            return Ok(Self {
                calendar_name: coord_var(&scans[first].schema, dim)
                    .and_then(|c| text_attr(c, "calendar")),
                output_units: Some(reference),
                recodes: vec![None; scans.len()],
            });
        }
        let cal_of = |i: usize| -> Result<Calendar, CombineError> {
            let c = coord_var(&scans[i].schema, dim).and_then(|c| text_attr(c, "calendar"));
            Calendar::parse(c.as_deref()).map_err(|source| CombineError::Time {
                file: scans[i].path.clone(),
                var: dim.to_string(),
                source,
            })
        };
        let calendar = cal_of(first)?;
        for i in 0..scans.len() {
            if coord_var(&scans[i].schema, dim).is_none() {
                continue;
            }
            if !is_time[i] {
                return Err(CombineError::Mismatch {
                    var: dim.to_string(),
                    what: "attribute 'units'".into(),
                    a: scans[first].path.clone(),
                    va: units[first].clone().unwrap_or_default(),
                    b: scans[i].path.clone(),
                    vb: units[i].clone().unwrap_or_else(|| "absent".into()),
                });
            }
            let c = cal_of(i)?;
            if c != calendar {
                return Err(CombineError::Mismatch {
                    var: dim.to_string(),
                    what: "calendar".into(),
                    a: scans[first].path.clone(),
                    va: calendar.name().into(),
                    b: scans[i].path.clone(),
                    vb: c.name().into(),
                });
            }
        }
        if let Some(g) = &given {
            cftime::parse_units(g).map_err(|source| CombineError::Time {
                file: PathBuf::from("--time-units"),
                var: dim.to_string(),
                source,
            })?;
        }
        // Order the files with every value in the reference units first.
        let to_ref = |i: usize| -> Result<Option<Recode>, CombineError> {
            let u = units[i].clone().unwrap_or_default();
            if u == reference {
                return Ok(None);
            }
            cftime::recode(&u, &reference, calendar)
                .map(Some)
                .map_err(|source| {
                    // Name the file whose units are the problem.
                    let culprit = match &source {
                        cftime::TimeError::Ambiguous(t) => units
                            .iter()
                            .position(|x| x.as_deref().map(str::trim) == Some(t.trim()))
                            .unwrap_or(i),
                        _ => i,
                    };
                    CombineError::Time {
                        file: scans[culprit].path.clone(),
                        var: dim.to_string(),
                        source,
                    }
                })
        };
        let mut first_time: Option<(f64, usize)> = None;
        for i in 0..scans.len() {
            if !is_time[i] {
                continue;
            }
            let Some(v0) = scans[i]
                .coords
                .iter()
                .find(|c| c.dim == dim)
                .and_then(|c| c.values.as_ref())
                .and_then(|v| v.first().copied())
            else {
                continue;
            };
            let v0 = match to_ref(i)? {
                Some(r) => r.apply_f64(v0),
                None => v0,
            };
            if first_time.is_none_or(|(t, _)| v0 < t) {
                first_time = Some((v0, i));
            }
        }
        let output = match given {
            Some(g) => g,
            None if all_same => reference.clone(),
            None => first_time
                .and_then(|(_, i)| units[i].clone())
                .unwrap_or(reference.clone()),
        };
        let mut recodes = vec![None; scans.len()];
        for i in 0..scans.len() {
            if !is_time[i] {
                continue;
            }
            let u = units[i].clone().unwrap_or_default();
            if u == output {
                continue;
            }
            let r = cftime::recode(&u, &output, calendar).map_err(|source| CombineError::Time {
                file: scans[i].path.clone(),
                var: dim.to_string(),
                source,
            })?;
            if r.is_identity() {
                continue;
            }
            // Integer coordinates must stay exact.
            if let Some(ints) = scans[i]
                .coords
                .iter()
                .find(|c| c.dim == dim)
                .and_then(|c| c.ints.as_ref())
            {
                for &x in ints {
                    if r.apply_i64(x).is_none() {
                        return Err(CombineError::Inexact {
                            file: scans[i].path.clone(),
                            var: dim.to_string(),
                            value: x,
                            from: u.clone(),
                            to: output.clone(),
                        });
                    }
                }
            }
            recodes[i] = Some(r);
        }
        Ok(Self {
            calendar_name: coord_var(&scans[first].schema, dim)
                .and_then(|c| text_attr(c, "calendar")),
            output_units: Some(output),
            recodes,
        })
    }

    fn recode(&self, file: usize) -> Option<Recode> {
        self.recodes.get(file).copied().flatten()
    }

    /// A file's coordinate values in the output units.
    fn to_output(&self, file: usize, v: &[f64]) -> Vec<f64> {
        match self.recode(file) {
            Some(r) => v.iter().map(|&x| r.apply_f64(x)).collect(),
            None => v.to_vec(),
        }
    }

    /// Whether the values of `v` are re-encoded: the axis coordinate and its
    /// bounds. (Other time-valued variables must share their units.)
    fn applies_to(&self, v: &Var, axis_paths: &[String]) -> bool {
        self.output_units.is_some()
            && axis_paths.contains(&v.path)
            && matches!(v.dtype, DType::I32 | DType::I64 | DType::F32 | DType::F64)
    }
}

#[cfg(test)]
mod tests;

/// The scans' warnings, each once, in file order.
fn warnings_of(scans: &[FileScan]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for w in scans.iter().flat_map(|s| &s.schema.warnings) {
        if !out.contains(w) {
            out.push(w.clone());
        }
    }
    out
}

/// A file and group (below the root) that defines a dimension named `dim`.
fn shadowing_group(scans: &[FileScan], dim: &str) -> Option<(PathBuf, String)> {
    scans.iter().find_map(|s| {
        s.schema
            .root
            .all_groups()
            .into_iter()
            .find(|g| g.dims.iter().any(|d| d.name == dim))
            .map(|g| (s.path.clone(), g.path.clone()))
    })
}
