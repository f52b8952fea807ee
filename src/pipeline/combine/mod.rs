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
pub mod grid;
mod time;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::model::cftime::Recode;
use crate::model::schema::{set_attr, Attr, AttrValue, Group, Schema, SourceFormat, Var};
use crate::pipeline::scan::FileScan;
use time::TimeAxis;

/// One input file of the dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceFile {
    /// Path, as given.
    pub path: PathBuf,
    /// Canonical path: what identifies the file between runs.
    pub canonical: PathBuf,
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
    /// A variable stacked along a new outermost dimension (`--new-dim`):
    /// each member's segments, in place of `segments`.
    #[serde(default)]
    pub stack: Option<Stack>,
    /// Values given in the dataset rather than read from a file (the new
    /// dimension's coordinate).
    #[serde(default)]
    pub inline: Option<Vec<grid::Label>>,
}

/// The members of a variable stacked along a new outermost dimension.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stack {
    /// Position of the concatenation dimension in the source variable's
    /// dimensions (the output's, less the new one).
    pub axis: Option<usize>,
    /// Each member's segments along it; empty for a member without files.
    pub members: Vec<Vec<Segment>>,
}

/// The source chunking and compression of a variable, as Zarr sees them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredChunks {
    /// The source chunk shape.
    pub chunks: Vec<u64>,
    /// The source filters as a [`crate::cli::config::Codec::Stored`] (or
    /// [`crate::cli::config::Codec::Virtual`] for references).
    pub codec: crate::cli::config::Codec,
    /// How every file stores the variable, when it is referenced in place
    /// (`convert --virtual`).
    #[serde(default)]
    pub layout: Option<crate::model::source_codecs::StoredLayout>,
}

impl VarSource {
    /// Segments overlapping `[lo, hi)` along the axis.
    pub fn segments_in(&self, lo: u64, hi: u64) -> impl Iterator<Item = &Segment> {
        segments_in(&self.segments, lo, hi)
    }

    /// The segments along the axis: a stacked variable's of its first
    /// member with files.
    pub fn axis_segments(&self) -> &[Segment] {
        match &self.stack {
            Some(stack) => stack
                .members
                .iter()
                .find(|m| !m.is_empty())
                .map_or(&[][..], Vec::as_slice),
            None => &self.segments,
        }
    }

    /// The source chunk shape in the output's dimensions (a stacked
    /// variable's holds one member).
    pub fn source_chunks(&self) -> Option<Vec<u64>> {
        let c = self.var.source_chunks.clone()?;
        Some(match self.stack {
            Some(_) => std::iter::once(1).chain(c).collect(),
            None => c,
        })
    }
}

/// Segments of `all` (in order) overlapping `[lo, hi)`.
pub fn segments_in(all: &[Segment], lo: u64, hi: u64) -> impl Iterator<Item = &Segment> {
    let first = all.partition_point(|s| s.start + s.len <= lo);
    all[first..].iter().take_while(move |s| s.start < hi)
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
    /// The new outermost dimension made from the files (`--new-dim`).
    #[serde(default)]
    pub grid: Option<grid::Grid>,
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
    /// A new outermost dimension from the files (`--new-dim`).
    pub new_dim: Option<crate::cli::config::NewDim>,
    /// Fill the grid's cells that no file holds (`--allow-missing`).
    pub allow_missing: bool,
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

/// Combines the scans of the input files (in their natural order), with
/// the new dimension of `opts` in front when there is one.
///
/// # Errors
/// [`CombineError`] naming the files, variable and the mismatch.
pub fn combine(scans: &[FileScan], opts: &CombineOptions) -> Result<Dataset, CombineError> {
    match &opts.new_dim {
        Some(spec) => grid::combine_grid(scans, opts, spec, opts.allow_missing),
        None => combine_files(scans, opts),
    }
}

/// Combines the scans of the input files along the concatenation
/// dimension.
fn combine_files(scans: &[FileScan], opts: &CombineOptions) -> Result<Dataset, CombineError> {
    if scans.is_empty() {
        return Err(CombineError::NoInputs);
    }
    let dim = concatenation(scans, opts)?;
    let files: Vec<SourceFile> = scans
        .iter()
        .map(|s| SourceFile {
            path: s.path.clone(),
            canonical: s.canonical.clone(),
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
    let keys = group_keys(scans, &dim);
    let groups = file_groups(scans, &dim, &keys, opts)?;
    check_groups_disjoint(scans, &keys, &groups)?;
    let ordered = groups
        .iter()
        .map(|g| order_group(scans, &dim, g, &time, opts))
        .collect::<Result<Vec<_>, _>>()?;
    let axis = common_axis(scans, &dim, &keys, &groups, &ordered)?;
    let axis_len = axis.len() as u64;
    let (first_rep, mut out_schema) = output_schema(scans, &dim, &groups, &ordered, axis_len);
    let c = Combination {
        scans,
        keys: &keys,
        groups: &groups,
        ordered: &ordered,
        time: &time,
        axis_paths: axis_vars(&scans[first_rep].schema, &dim),
    };
    let mut sources = Vec::new();
    let mut time_units_out: Vec<(String, String)> = Vec::new();
    let out_vars: Vec<Var> = out_schema.vars().into_iter().cloned().collect();
    for v in &out_vars {
        match v.dims.iter().position(|d| *d == dim) {
            Some(k) => {
                let (source, units) = c.along_axis(v, k)?;
                time_units_out.extend(units.map(|u| (v.path.clone(), u)));
                sources.push(source);
            }
            None => sources.push(c.static_var(v)?),
        }
    }
    // Output attributes: from each variable's first file; time units: the output's.
    set_var_attrs(&mut out_schema.root, &sources);
    for (path, units) in &time_units_out {
        if let Some(v) = out_schema.root.find_var_mut(path) {
            set_attr(
                &mut v.attrs,
                Attr {
                    name: "units".into(),
                    value: AttrValue::Text(units.clone()),
                },
            );
        }
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
        grid: None,
    })
}

/// The concatenation dimension, if any. A dimension no variable uses (an
/// unlimited dimension left empty, or whose variables were skipped)
/// concatenates nothing.
fn concatenation(
    scans: &[FileScan],
    opts: &CombineOptions,
) -> Result<Option<String>, CombineError> {
    let dim = concat_dim(scans, opts)?.filter(|d| {
        scans
            .iter()
            .any(|s| s.schema.vars().iter().any(|v| v.dims.contains(d)))
    });
    // Variables are matched to the concatenation dimension by name: a group
    // defining its own dimension of that name would be taken for it. One
    // file converts as it is (nothing to concatenate); several are refused.
    Ok(match dim {
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
    })
}

/// Whether a file has a variable along `dim`.
fn uses_dim(s: &FileScan, dim: &str) -> bool {
    s.schema
        .vars()
        .iter()
        .any(|v| v.dims.iter().any(|d| d == dim))
}

/// Each file's key: the variables it holds along `dim`, its axis
/// coordinate and bounds excepted.
fn group_keys(scans: &[FileScan], dim: &str) -> Vec<BTreeSet<String>> {
    scans
        .iter()
        .map(|s| {
            let axis = axis_vars(&s.schema, dim);
            s.schema
                .vars()
                .iter()
                .filter(|v| v.dims.iter().any(|d| d == dim) && !axis.contains(&v.path))
                .map(|v| v.path.clone())
                .collect()
        })
        .collect()
}

/// The groups of files, each concatenated along the axis: the recipe's
/// merge groups (checked), or the files grouped by their keys in order of
/// first appearance.
fn file_groups(
    scans: &[FileScan],
    dim: &str,
    keys: &[BTreeSet<String>],
    opts: &CombineOptions,
) -> Result<Vec<Vec<usize>>, CombineError> {
    let Some(g) = &opts.merge_groups else {
        let mut by_key: BTreeMap<&BTreeSet<String>, Vec<usize>> = BTreeMap::new();
        let mut order: Vec<&BTreeSet<String>> = Vec::new();
        for (i, s) in scans.iter().enumerate() {
            if !uses_dim(s, dim) {
                continue;
            }
            let e = by_key.entry(&keys[i]).or_default();
            if e.is_empty() {
                order.push(&keys[i]);
            }
            e.push(i);
        }
        return Ok(order.iter().map(|k| by_key[k].clone()).collect());
    };
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
            check_same_vars(scans, keys, w[0], w[1])?;
        }
    }
    Ok(g.iter().filter(|grp| !grp.is_empty()).cloned().collect())
}

/// Two groups sharing a variable: it is missing from some files.
fn check_groups_disjoint(
    scans: &[FileScan],
    keys: &[BTreeSet<String>],
    groups: &[Vec<usize>],
) -> Result<(), CombineError> {
    for (gi, a) in groups.iter().enumerate() {
        for b in &groups[gi + 1..] {
            let (ka, kb) = (&keys[a[0]], &keys[b[0]]);
            if ka.is_disjoint(kb) {
                continue;
            }
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
    Ok(())
}

/// One group's files ordered along the axis by their first coordinate
/// value (files empty along it left out), each file's values increasing
/// and the whole axis checked.
fn order_group(
    scans: &[FileScan],
    dim: &str,
    group: &[usize],
    time: &TimeAxis,
    opts: &CombineOptions,
) -> Result<Vec<Member>, CombineError> {
    let mut members: Vec<Member> = group
        .iter()
        .map(|&i| {
            let c = scans[i].coords.iter().find(|c| c.dim == dim);
            Member {
                file: i,
                len: c.map_or(0, |c| c.len),
                values: c
                    .and_then(|c| c.values.as_ref())
                    .map(|v| time.to_output(i, v)),
            }
        })
        .collect();
    let with = members.iter().find(|m| m.values.is_some() && m.len > 0);
    let without = members.iter().find(|m| m.values.is_none() && m.len > 0);
    if let (Some(w), Some(wo)) = (with, without) {
        return Err(CombineError::CoordMix {
            dim: dim.to_string(),
            with: scans[w.file].path.clone(),
            without: scans[wo.file].path.clone(),
        });
    }
    let has_coords = with.is_some();
    members.retain(|m| m.len > 0);
    if !has_coords {
        return Ok(members);
    }
    for m in members.iter().filter(|_| scans.len() > 1) {
        let Some(v) = &m.values else { continue };
        if let Some(k) = v
            .windows(2)
            .position(|w| w[1].partial_cmp(&w[0]) != Some(std::cmp::Ordering::Greater))
        {
            return Err(CombineError::NotIncreasing {
                file: scans[m.file].path.clone(),
                dim: dim.to_string(),
                index: k + 1,
            });
        }
    }
    // Stable: equal first values keep the natural order.
    let first = |m: &Member| {
        m.values
            .as_ref()
            .and_then(|v| v.first())
            .copied()
            .unwrap_or(f64::NAN)
    };
    members.sort_by(|a, b| first(a).total_cmp(&first(b)));
    check_axis(scans, dim, &members, opts)?;
    Ok(members)
}

/// The axis every group gives: they must all give the same.
fn common_axis(
    scans: &[FileScan],
    dim: &str,
    keys: &[BTreeSet<String>],
    groups: &[Vec<usize>],
    ordered: &[Vec<Member>],
) -> Result<Vec<Option<f64>>, CombineError> {
    let axis: Vec<Option<f64>> = axis_of(&ordered[0]);
    for (gi, g) in ordered.iter().enumerate().skip(1) {
        let other = axis_of(g);
        if other == axis {
            continue;
        }
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
            dim: dim.to_string(),
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
    Ok(axis)
}

/// The output structure, merged from representative files (each group's
/// first file, then the files without the axis) with the axis at its
/// combined length; returns the first representative too.
fn output_schema(
    scans: &[FileScan],
    dim: &str,
    groups: &[Vec<usize>],
    ordered: &[Vec<Member>],
    axis_len: u64,
) -> (usize, Schema) {
    let mut reps: Vec<usize> = ordered
        .iter()
        .filter_map(|g| g.first().map(|m| m.file))
        .collect();
    for g in groups {
        // Groups whose files are all empty along the axis.
        if !g.iter().any(|i| reps.contains(i)) {
            reps.push(g[0]);
        }
    }
    for (i, s) in scans.iter().enumerate() {
        if !uses_dim(s, dim) {
            reps.push(i);
        }
    }
    let mut root = scans[reps[0]].schema.root.clone();
    for &r in &reps[1..] {
        merge_group(&mut root, &scans[r].schema.root);
    }
    set_dim_len(&mut root, dim, axis_len);
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
    (reps[0], schema)
}

/// What the per-variable step needs of the combination.
struct Combination<'a> {
    scans: &'a [FileScan],
    keys: &'a [BTreeSet<String>],
    groups: &'a [Vec<usize>],
    ordered: &'a [Vec<Member>],
    time: &'a TimeAxis,
    /// The axis coordinate and its bounds.
    axis_paths: Vec<String>,
}

impl Combination<'_> {
    /// The group whose files hold `path` (the axis variables: the first).
    fn group_of_var(&self, path: &str) -> Option<usize> {
        self.groups
            .iter()
            .position(|g| self.keys[g[0]].contains(path))
            .or_else(|| self.axis_paths.iter().any(|p| p == path).then_some(0))
    }

    /// A variable along the axis (at dimension `k`): one segment per file
    /// of its group, every file's copy checked against the first; with the
    /// output time units when its values are re-encoded.
    fn along_axis(&self, v: &Var, k: usize) -> Result<(VarSource, Option<String>), CombineError> {
        let scans = self.scans;
        let g = self.group_of_var(&v.path).unwrap_or(0);
        let members = &self.ordered[g];
        let all = &self.groups[g];
        let first = members.first().map_or(all[0], |m| m.file);
        let base = scans[first]
            .schema
            .root
            .find_var(&v.path)
            .cloned()
            .unwrap_or_else(|| v.clone());
        let recoded = self.time.applies_to(&base, &self.axis_paths);
        for &i in all {
            let Some(x) = scans[i].schema.root.find_var(&v.path) else {
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
                recode: if recoded {
                    self.time.recode(m.file)
                } else {
                    None
                },
            });
            start += m.len;
        }
        let units = if recoded && base.attr("units").is_some() {
            self.time.output_units.clone()
        } else {
            None
        };
        let source = VarSource {
            var: base,
            axis: Some(k),
            segments,
            stored: None,
            stack: None,
            inline: None,
        };
        Ok((source, units))
    }

    /// A variable without the axis: from its first holder in time order,
    /// every other holder's copy checked to be the same.
    fn static_var(&self, v: &Var) -> Result<VarSource, CombineError> {
        let scans = self.scans;
        let holders: Vec<usize> = scans
            .iter()
            .enumerate()
            .filter(|(_, s)| s.schema.vars().iter().any(|x| x.path == v.path))
            .map(|(i, _)| i)
            .collect();
        let first = self
            .ordered
            .iter()
            .flat_map(|g| g.iter().map(|m| m.file))
            .chain(0..scans.len())
            .find(|i| holders.contains(i))
            .unwrap_or(holders[0]);
        let base = scans[first]
            .schema
            .root
            .find_var(&v.path)
            .cloned()
            .unwrap_or_else(|| v.clone());
        for &i in &holders {
            if let Some(x) = scans[i].schema.root.find_var(&v.path) {
                check_var(&base, x, None, false, &scans[first].path, &scans[i].path)?;
                check_digest(&scans[first], &scans[i], &v.path)?;
            }
        }
        Ok(VarSource {
            var: base,
            axis: None,
            segments: vec![Segment {
                file: u32::try_from(first).unwrap_or(u32::MAX),
                start: 0,
                len: 0,
                recode: None,
            }],
            stored: None,
            stack: None,
            inline: None,
        })
    }
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
                stack: None,
                inline: None,
            }
        })
        .collect();
    Ok(Dataset {
        files,
        schema,
        sources,
        concat: None,
        grid: None,
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
    let by_path: BTreeMap<&str, &Var> = sources
        .iter()
        .map(|s| (s.var.path.as_str(), &s.var))
        .collect();
    root.for_each_var_mut(&mut |v| {
        if let Some(s) = by_path.get(v.path.as_str()) {
            v.attrs = s.attrs.clone();
            v.source_chunks = s.source_chunks.clone();
        }
    });
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
