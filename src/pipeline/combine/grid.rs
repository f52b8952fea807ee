//! A new outermost dimension made from the files (`--new-dim`): an
//! ensemble's members in front of time.
//!
//! Each file gets its value along the new dimension (a global attribute,
//! or a capture of its name). The files of each value (each *member*) are
//! combined as any file set is ([`super::combine`]); the members must then
//! agree: the same variables with the same types, dimensions, shapes and
//! encodings, and the same steps along the concatenation dimension (after
//! time re-encoding, to one output unit for all). The output puts the new
//! dimension first:
//!
//! * data variables are *stacked*: each member's values at its position
//!   along the new dimension ([`VarSource::stack`]);
//! * coordinates are shared: the concatenation axis and every other
//!   dimension's coordinate, the variables named by a `coordinates`,
//!   `bounds`, `climatology` or `grid_mapping` attribute; taken from the
//!   first member that holds each step;
//! * the new dimension's coordinate holds the values, integers when every
//!   value is one, strings otherwise ([`VarSource::inline`]).
//!
//! A cell of the grid (member × file of steps) that no file holds is
//! refused, or with `--allow-missing` left to the fill value and listed
//! ([`Grid::missing`]).

#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{
    combine_files, same_value, shape_off_axis, CombineError, CombineOptions, Dataset, Segment,
};
use super::{SourceFile, Stack, VarSource, MUST_AGREE};
use crate::cli::config::{NewDim, NewDimFrom};
use crate::model::schema::{Attr, AttrValue, DType, Dim, Var};
use crate::pipeline::inputs::natural_cmp;
use crate::pipeline::scan::FileScan;

/// A value along the new dimension.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Label {
    /// An integer (every value of the dimension is one).
    Int(i64),
    /// A string.
    Text(String),
}

impl std::fmt::Display for Label {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Int(i) => write!(f, "{i}"),
            Self::Text(s) => f.write_str(s),
        }
    }
}

/// A cell of the grid that no file holds (`--allow-missing`): read as the
/// fill value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Missing {
    /// The member's value.
    pub member: String,
    /// Its index along the new dimension.
    pub index: u64,
    /// First index along the concatenation dimension (0 without one).
    pub start: u64,
    /// Number of steps (the whole axis when the member has no files).
    pub len: u64,
    /// The first missing coordinate value, when the axis has values.
    pub first: Option<f64>,
}

/// The new dimension of a [`Dataset`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grid {
    /// Dimension name.
    pub dim: String,
    /// Its values, in output order.
    pub labels: Vec<Label>,
    /// The cells no file holds.
    pub missing: Vec<Missing>,
}

impl Grid {
    /// The data type of the dimension's coordinate.
    pub fn dtype(&self) -> DType {
        if self.labels.iter().all(|l| matches!(l, Label::Int(_))) {
            DType::I64
        } else {
            DType::String
        }
    }

    /// One line per missing cell, for warnings and the report.
    pub fn missing_lines(&self, concat: Option<&str>) -> Vec<String> {
        self.missing
            .iter()
            .map(|m| match (concat, m.first) {
                (Some(d), Some(v)) => format!(
                    "{}={}: {} steps of '{d}' from index {} ({d} = {v}) are in no file; they read as the fill value",
                    self.dim, m.member, m.len, m.start
                ),
                (Some(d), None) => format!(
                    "{}={}: {} steps of '{d}' from index {} are in no file; they read as the fill value",
                    self.dim, m.member, m.len, m.start
                ),
                (None, _) => format!(
                    "{}={}: no file; the member reads as the fill value",
                    self.dim, m.member
                ),
            })
            .collect()
    }
}

/// One file's value along the new dimension.
///
/// # Errors
/// [`CombineError::NewDimValue`] naming the file.
fn label_of(
    scan: &FileScan,
    spec: &NewDim,
    re: Option<&regex::Regex>,
) -> Result<Label, CombineError> {
    let err = |what: String| CombineError::NewDimValue {
        path: scan.path.clone(),
        dim: spec.name.clone(),
        what,
    };
    match (&spec.from, re) {
        (NewDimFrom::Attribute(name), _) => {
            let a = scan
                .schema
                .root
                .attrs
                .iter()
                .find(|a| a.name == *name)
                .ok_or_else(|| err(format!("it has no global attribute '{name}'")))?;
            attr_label(&a.value).ok_or_else(|| {
                err(format!(
                    "its global attribute '{name}' is {}, not one string or integer",
                    a.value.display()
                ))
            })
        }
        (NewDimFrom::FileName(_), Some(re)) => {
            let name = scan
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let full = scan.path.to_string_lossy();
            let caps = re
                .captures(&name)
                .or_else(|| re.captures(&full))
                .ok_or_else(|| err(format!("its name does not match /{}/", re.as_str())))?;
            let text = caps.get(1).map_or("", |m| m.as_str());
            if text.is_empty() {
                return Err(err(format!(
                    "the capture group of /{}/ is empty",
                    re.as_str()
                )));
            }
            Ok(Label::Text(text.to_string()))
        }
        (NewDimFrom::FileName(r), None) => {
            Err(err(format!("/{r}/ is not a valid regular expression")))
        }
    }
}

fn attr_label(v: &AttrValue) -> Option<Label> {
    match v {
        AttrValue::Text(s) => Some(Label::Text(s.trim().to_string())),
        AttrValue::Strings(s) if s.len() == 1 => Some(Label::Text(s[0].trim().to_string())),
        other => {
            let text = other.display();
            let t = text.trim().trim_start_matches('[').trim_end_matches(']');
            t.parse::<i64>().ok().map(Label::Int)
        }
    }
}

/// Integers when every value is one (a text of digits counts), strings
/// otherwise.
fn uniform(labels: Vec<Label>) -> Vec<Label> {
    let as_int = |l: &Label| match l {
        Label::Int(i) => Some(*i),
        Label::Text(s) if !s.starts_with('+') => s.parse::<i64>().ok(),
        Label::Text(_) => None,
    };
    if labels.iter().all(|l| as_int(l).is_some()) {
        labels
            .iter()
            .map(|l| Label::Int(as_int(l).unwrap_or_default()))
            .collect()
    } else {
        labels
            .into_iter()
            .map(|l| Label::Text(l.to_string()))
            .collect()
    }
}

/// The members in output order: `order` when given (every value found
/// must be in it; values without files are members without files), else
/// natural order.
fn ordered(found: &[Label], spec: &NewDim) -> Result<Vec<Label>, CombineError> {
    let mut distinct: Vec<Label> = Vec::new();
    for l in found {
        if !distinct.contains(l) {
            distinct.push(l.clone());
        }
    }
    if spec.order.is_empty() {
        distinct.sort_by(|a, b| match (a, b) {
            (Label::Int(x), Label::Int(y)) => x.cmp(y),
            _ => natural_cmp(&a.to_string(), &b.to_string()),
        });
        return Ok(distinct);
    }
    let order = uniform(spec.order.iter().cloned().map(Label::Text).collect());
    let order: Vec<Label> = if distinct.iter().all(|l| matches!(l, Label::Int(_))) {
        order
    } else {
        order
            .into_iter()
            .map(|l| Label::Text(l.to_string()))
            .collect()
    };
    let mut seen = BTreeSet::new();
    for l in &order {
        if !seen.insert(l.to_string()) {
            return Err(CombineError::Grid(format!(
                "--new-dim-order names '{l}' twice"
            )));
        }
    }
    if let Some(l) = distinct.iter().find(|l| !order.contains(l)) {
        return Err(CombineError::Grid(format!(
            "files have {}={l}, which --new-dim-order does not list",
            spec.name
        )));
    }
    Ok(order)
}

/// Combines the files into a dataset with the new dimension `spec` first.
///
/// # Errors
/// [`CombineError`] naming the member and the file or step that differs.
pub fn combine_grid(
    scans: &[FileScan],
    opts: &CombineOptions,
    spec: &NewDim,
    allow_missing: bool,
) -> Result<Dataset, CombineError> {
    if scans.is_empty() {
        return Err(CombineError::NoInputs);
    }
    let re = match &spec.from {
        NewDimFrom::FileName(r) => Some(
            regex::Regex::new(r)
                .map_err(|e| CombineError::Grid(format!("--new-dim /{r}/: {e}")))?,
        ),
        NewDimFrom::Attribute(_) => None,
    };
    let found = scans
        .iter()
        .map(|s| label_of(s, spec, re.as_ref()))
        .collect::<Result<Vec<_>, _>>()?;
    let found = uniform(found);
    let labels = ordered(&found, spec)?;
    // Each member's files, in input order.
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); labels.len()];
    for (i, l) in found.iter().enumerate() {
        if let Some(m) = labels.iter().position(|x| x == l) {
            members[m].push(i);
        }
    }
    if let Some(m) = members.iter().position(Vec::is_empty) {
        if !allow_missing {
            return Err(CombineError::MemberAbsent {
                dim: spec.name.clone(),
                member: labels[m].to_string(),
            });
        }
    }
    // Combine each member; all in the first member's output time units.
    let mut opts = opts.clone();
    let mut parts: Vec<Option<Dataset>> = Vec::new();
    for (m, files) in members.iter().enumerate() {
        if files.is_empty() {
            parts.push(None);
            continue;
        }
        let sub: Vec<FileScan> = files.iter().map(|&i| scans[i].clone()).collect();
        let mut o = opts.clone();
        o.new_dim = None;
        o.merge_groups = opts.merge_groups.as_ref().map(|groups| {
            groups
                .iter()
                .map(|g| {
                    g.iter()
                        .filter_map(|i| files.iter().position(|f| f == i))
                        .collect::<Vec<_>>()
                })
                .filter(|g| !g.is_empty())
                .collect()
        });
        // Gaps are checked on the members' common axis.
        o.allow_gaps = true;
        let ds = combine_files(&sub, &o).map_err(|e| CombineError::InMember {
            dim: spec.name.clone(),
            member: labels[m].to_string(),
            source: Box::new(e),
        })?;
        if opts.time_units.is_none() {
            opts.time_units = ds.concat.as_ref().and_then(|c| c.time_units.clone());
        }
        parts.push(Some(ds));
    }
    let s = Stacking::new(spec, labels, parts, allow_missing)?;
    if !opts.allow_gaps {
        s.check_gaps()?;
    }
    s.dataset()
}

/// The members' datasets, checked against each other and put on one axis.
struct Stacking<'a> {
    spec: &'a NewDim,
    labels: Vec<Label>,
    parts: Vec<Option<Dataset>>,
    /// The member whose structure the output takes (the first with files).
    first: usize,
    /// Each member's first file's index in the output's file list.
    offsets: Vec<u32>,
    /// The concatenation axis of the output: every step of any member.
    axis: Option<Vec<f64>>,
    /// Each member's position of its own step `k` on that axis, per segment
    /// start: member → (own start → output start).
    starts: Vec<BTreeMap<u64, u64>>,
    axis_len: u64,
}

impl<'a> Stacking<'a> {
    fn new(
        spec: &'a NewDim,
        labels: Vec<Label>,
        parts: Vec<Option<Dataset>>,
        allow_missing: bool,
    ) -> Result<Self, CombineError> {
        let first = parts
            .iter()
            .position(Option::is_some)
            .ok_or(CombineError::NoInputs)?;
        let mut offsets = Vec::new();
        let mut n = 0u32;
        for p in &parts {
            offsets.push(n);
            n += p
                .as_ref()
                .map_or(0, |d| u32::try_from(d.files.len()).unwrap_or(u32::MAX));
        }
        let mut s = Self {
            spec,
            labels,
            parts,
            first,
            offsets,
            axis: None,
            starts: Vec::new(),
            axis_len: 0,
        };
        s.check_structure()?;
        s.place_steps(allow_missing)?;
        Ok(s)
    }

    fn part(&self, m: usize) -> Option<&Dataset> {
        self.parts.get(m).and_then(Option::as_ref)
    }

    fn reference(&self) -> Result<&Dataset, CombineError> {
        self.part(self.first).ok_or(CombineError::NoInputs)
    }

    fn first_file(&self, m: usize) -> PathBuf {
        self.part(m)
            .and_then(|d| d.files.first())
            .map(|f| f.path.clone())
            .unwrap_or_default()
    }

    fn differs(&self, m: usize, what: String) -> CombineError {
        CombineError::MemberDiffers {
            dim: self.spec.name.clone(),
            member: self.labels[m].to_string(),
            file: self.first_file(m),
            reference: self.labels[self.first].to_string(),
            what,
        }
    }

    /// Every member has the reference member's variables, with the same
    /// types, dimensions, shapes off the axis and encodings.
    fn check_structure(&self) -> Result<(), CombineError> {
        let r = self.reference()?;
        let rdim = r.concat.as_ref().map(|c| c.dim.clone());
        let rvars = r.schema.vars();
        for (m, p) in self.parts.iter().enumerate() {
            let Some(p) = p else { continue };
            if m == self.first {
                continue;
            }
            let pdim = p.concat.as_ref().map(|c| c.dim.clone());
            if pdim != rdim {
                return Err(self.differs(
                    m,
                    format!(
                        "its files concatenate along {}, the reference member's along {}",
                        pdim.map_or_else(|| "nothing".into(), |d| format!("'{d}'")),
                        rdim.clone()
                            .map_or_else(|| "nothing".into(), |d| format!("'{d}'"))
                    ),
                ));
            }
            let pvars = p.schema.vars();
            for v in &rvars {
                let Some(w) = pvars.iter().find(|w| w.path == v.path) else {
                    return Err(self.differs(m, format!("variable '{}' is missing", v.path)));
                };
                let axis = rdim
                    .as_ref()
                    .and_then(|d| v.dims.iter().position(|x| x == d));
                check_same_var(v, w, axis)
                    .map_err(|what| self.differs(m, format!("variable '{}': {what}", v.path)))?;
            }
            if let Some(w) = pvars
                .iter()
                .find(|w| !rvars.iter().any(|v| v.path == w.path))
            {
                return Err(self.differs(
                    m,
                    format!(
                        "variable '{}' is in no file of the reference member",
                        w.path
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The output axis, and where each member's steps go on it: every
    /// member must have the same steps, or (`--allow-missing`) a subset of
    /// them made of whole files.
    fn place_steps(&mut self, allow_missing: bool) -> Result<(), CombineError> {
        let members: Vec<(usize, Option<Vec<f64>>, u64)> = self
            .parts
            .iter()
            .enumerate()
            .filter_map(|(m, p)| {
                let c = p.as_ref()?.concat.as_ref()?;
                Some((m, c.values.clone(), c.len))
            })
            .collect();
        if members.is_empty() {
            self.starts = vec![BTreeMap::new(); self.parts.len()];
            return Ok(());
        }
        if !members.iter().all(|(_, v, _)| v.is_some()) {
            let lens: Vec<(usize, u64)> = members.iter().map(|(m, _, n)| (*m, *n)).collect();
            return self.place_by_length(&lens);
        }
        let values = |m: usize| -> Vec<f64> {
            members
                .iter()
                .find(|(k, _, _)| *k == m)
                .and_then(|(_, v, _)| v.clone())
                .unwrap_or_default()
        };
        // Every step of any member; each member's files must sit on it as
        // runs of consecutive steps (else its axis differs).
        let mut axis: Vec<f64> = Vec::new();
        for (m, _, _) in &members {
            axis.extend(values(*m));
        }
        axis.sort_by(f64::total_cmp);
        axis.dedup_by(|a, b| a.total_cmp(b).is_eq());
        let mut starts = vec![BTreeMap::new(); self.parts.len()];
        for (m, _, _) in &members {
            let v = values(*m);
            let Some(coord) = self.coord_segments(*m) else {
                continue;
            };
            for seg in coord {
                let (lo, hi) = (seg.start as usize, (seg.start + seg.len) as usize);
                let Some(own) = v.get(lo..hi) else { continue };
                let Some(&x0) = own.first() else { continue };
                let at = axis.partition_point(|y| y.total_cmp(&x0).is_lt());
                if let Some(j) = own
                    .iter()
                    .enumerate()
                    .position(|(j, x)| axis.get(at + j).is_none_or(|y| y.to_bits() != x.to_bits()))
                {
                    let other = axis.get(at + j).copied().unwrap_or(f64::NAN);
                    return Err(self.blame(&members, *m, own[j], other));
                }
                starts[*m].insert(seg.start, at as u64);
            }
        }
        self.axis_len = axis.len() as u64;
        self.axis = Some(axis);
        self.starts = starts;
        if !allow_missing {
            if let Some(cell) = self.missing().into_iter().next() {
                return Err(CombineError::MissingCell {
                    dim: self.spec.name.clone(),
                    member: cell.member,
                    concat: self.concat_dim(),
                    start: cell.start,
                    len: cell.len,
                    first: cell
                        .first
                        .map_or_else(|| "?".into(), |x| format!("{x}{}", self.units_note())),
                });
            }
        }
        Ok(())
    }

    /// Member `m`'s file `file` has `value` at its step `j`, where member
    /// `holder` has `other`.
    /// Member `m` has `own` where the members' common axis has `other`:
    /// the odd value is the one fewer members hold; blame its member and
    /// file, against a member that holds the other value.
    fn blame(
        &self,
        members: &[(usize, Option<Vec<f64>>, u64)],
        m: usize,
        own: f64,
        other: f64,
    ) -> CombineError {
        let values = |k: usize| -> &[f64] {
            members
                .iter()
                .find(|(x, _, _)| *x == k)
                .and_then(|(_, v, _)| v.as_deref())
                .unwrap_or(&[])
        };
        let holders = |x: f64| -> Vec<usize> {
            members
                .iter()
                .map(|(k, _, _)| *k)
                .filter(|k| values(*k).iter().any(|y| y.to_bits() == x.to_bits()))
                .collect()
        };
        let (with_own, with_other) = (holders(own), holders(other));
        let (blamed, odd, reference) = if with_other.len() < with_own.len() {
            (with_other.first().copied().unwrap_or(m), other, m)
        } else {
            (m, own, with_other.first().copied().unwrap_or(self.first))
        };
        let step = values(blamed)
            .iter()
            .position(|y| y.to_bits() == odd.to_bits())
            .unwrap_or(0);
        let (file, in_file) = self.file_holding(blamed, step);
        let expected = values(reference).get(step).copied().unwrap_or(f64::NAN);
        self.misfit((blamed, file, odd), (reference, expected), in_file)
    }

    /// The file of member `m` that holds its own step `step`, and the
    /// step's index in that file.
    fn file_holding(&self, m: usize, step: usize) -> (u32, u64) {
        let at = step as u64;
        self.coord_segments(m)
            .and_then(|segs| segs.iter().find(|s| s.start <= at && at < s.start + s.len))
            .map_or((0, at), |s| (s.file, at - s.start))
    }

    /// Member `m`'s file `file` has `value` at its step `step`, where
    /// member `holder` has `other`.
    fn misfit(
        &self,
        (m, file, value): (usize, u32, f64),
        (holder, other): (usize, f64),
        step: u64,
    ) -> CombineError {
        let dim = self.concat_dim();
        CombineError::MemberDiffers {
            dim: self.spec.name.clone(),
            member: self.labels[m].to_string(),
            file: self
                .part(m)
                .and_then(|d| d.files.get(file as usize))
                .map(|f| f.path.clone())
                .unwrap_or_default(),
            reference: self.labels[holder].to_string(),
            what: format!(
                "its step {step} of '{dim}' is {value}, where {}={} has {other}{}: the members' steps differ",
                self.spec.name,
                self.labels[holder],
                self.units_note()
            ),
        }
    }

    /// Without coordinate values, members can only be compared by length.
    fn place_by_length(&mut self, lens: &[(usize, u64)]) -> Result<(), CombineError> {
        let len = lens.first().map_or(0, |x| x.1);
        if let Some((m, n)) = lens.iter().find(|(_, n)| *n != len) {
            return Err(self.differs(
                *m,
                format!("it has {n} steps, the reference member {len} (and no coordinate values to place them by)"),
            ));
        }
        self.axis_len = len;
        self.starts = self
            .parts
            .iter()
            .map(|p| {
                p.as_ref()
                    .and_then(|d| d.sources.first())
                    .map(|s| s.segments.iter().map(|g| (g.start, g.start)).collect())
                    .unwrap_or_default()
            })
            .collect();
        Ok(())
    }

    /// No gap along the common axis (a step more than 1.5 times the usual
    /// one), as for the files of one member.
    fn check_gaps(&self) -> Result<(), CombineError> {
        let Some(axis) = &self.axis else {
            return Ok(());
        };
        let mut steps: Vec<f64> = axis.windows(2).map(|w| w[1] - w[0]).collect();
        steps.sort_by(f64::total_cmp);
        let Some(&step) = steps.get(steps.len() / 2) else {
            return Ok(());
        };
        if let Some(&[a, b]) = axis
            .windows(2)
            .find(|w| step > 0.0 && w[1] - w[0] > 1.5 * step)
        {
            return Err(CombineError::Grid(format!(
                "gap along '{}' in every member: from {a} to {b}{}; the usual step is {step} (use --allow-gaps if this is intended)",
                self.concat_dim(),
                self.units_note()
            )));
        }
        Ok(())
    }

    fn concat_dim(&self) -> String {
        self.reference()
            .ok()
            .and_then(|r| r.concat.as_ref())
            .map(|c| c.dim.clone())
            .unwrap_or_default()
    }

    fn units_note(&self) -> String {
        self.reference()
            .ok()
            .and_then(|r| r.concat.as_ref())
            .and_then(|c| c.time_units.clone())
            .map(|u| format!(" (in {u})"))
            .unwrap_or_default()
    }

    /// The segments of member `m`'s axis coordinate (each file's steps).
    fn coord_segments(&self, m: usize) -> Option<&[Segment]> {
        let d = self.part(m)?;
        let dim = &d.concat.as_ref()?.dim;
        let i = d
            .schema
            .vars()
            .iter()
            .position(|v| v.is_coordinate() && v.name == *dim)?;
        d.sources.get(i).map(|s| s.segments.as_slice())
    }

    /// Member `m`'s segments of variable `i` on the output axis, with file
    /// indices into the output's file list.
    fn segments(&self, m: usize, i: usize) -> Vec<Segment> {
        let Some(d) = self.part(m) else {
            return Vec::new();
        };
        let Some(src) = d.sources.get(i) else {
            return Vec::new();
        };
        let off = self.offsets[m];
        src.segments
            .iter()
            .map(|s| Segment {
                file: s.file + off,
                start: if src.axis.is_some() {
                    self.starts[m].get(&s.start).copied().unwrap_or(s.start)
                } else {
                    s.start
                },
                ..s.clone()
            })
            .collect()
    }

    /// Variables shared by all members (not stacked): coordinates, and
    /// the variables coordinates, bounds and grid mappings name.
    fn shared(&self) -> Result<BTreeSet<String>, CombineError> {
        let r = self.reference()?;
        let vars = r.schema.vars();
        let mut names: BTreeSet<String> = BTreeSet::new();
        for v in &vars {
            if v.is_coordinate() {
                names.insert(v.name.clone());
            }
            for a in ["coordinates", "bounds", "climatology", "grid_mapping"] {
                if let Some(AttrValue::Text(t)) = v.attr(a) {
                    // `grid_mapping` may be `crs: x y`; only names that are variables count.
                    names.extend(
                        t.split(|c: char| c.is_whitespace() || c == ':')
                            .filter(|s| !s.is_empty())
                            .map(String::from),
                    );
                }
            }
        }
        Ok(vars
            .iter()
            .filter(|v| names.contains(&v.name) || names.contains(&v.path))
            .map(|v| v.path.clone())
            .collect())
    }

    #[allow(clippy::too_many_lines)] // the output in order: files, schema, sources, grid
    fn dataset(self) -> Result<Dataset, CombineError> {
        let r = self.reference()?;
        let dim = self.spec.name.clone();
        let n = self.labels.len() as u64;
        if r.schema.vars().iter().any(|v| v.dims.contains(&dim))
            || r.schema.root.dims.iter().any(|d| d.name == dim)
        {
            return Err(CombineError::Grid(format!(
                "--new-dim '{dim}' is already a dimension of {}",
                self.first_file(self.first).display()
            )));
        }
        let files: Vec<SourceFile> = self
            .parts
            .iter()
            .flatten()
            .flat_map(|d| d.files.iter().cloned())
            .collect();
        let shared = self.shared()?;
        let concat = r.concat.as_ref().map(|c| c.dim.clone());
        let mut schema = r.schema.clone();
        if let Some(d) = &concat {
            super::set_dim_len(&mut schema.root, d, self.axis_len);
        }
        schema.root.dims.insert(
            0,
            Dim {
                name: dim.clone(),
                len: n,
                unlimited: false,
            },
        );
        let grid = Grid {
            dim: dim.clone(),
            labels: self.labels.clone(),
            missing: self.missing(),
        };
        let concat_name = r.concat.as_ref().map(|c| c.dim.as_str());
        schema.warnings.extend(grid.missing_lines(concat_name));
        let coord = Var {
            name: dim.clone(),
            path: dim.clone(),
            dtype: grid.dtype(),
            dims: vec![dim.clone()],
            shape: vec![n],
            source_chunks: None,
            filters: Vec::new(),
            big_endian: false,
            attrs: coord_attrs(self.spec),
            via_netcdf: false,
        };
        let vars: Vec<Var> = r.schema.vars().into_iter().cloned().collect();
        let mut sources = vec![VarSource {
            var: coord.clone(),
            axis: None,
            segments: Vec::new(),
            stored: None,
            stack: None,
            inline: Some(self.labels.clone()),
        }];
        for (i, v) in vars.iter().enumerate() {
            let Some(src) = r.sources.get(i) else {
                continue;
            };
            if shared.contains(&v.path) {
                // From the first member holding each step.
                let mut segs: Vec<Segment> = Vec::new();
                for m in 0..self.parts.len() {
                    for s in self.segments(m, i) {
                        let free = src.axis.is_none() && segs.is_empty()
                            || src.axis.is_some()
                                && !segs.iter().any(|g| {
                                    g.start < s.start + s.len && s.start < g.start + g.len
                                });
                        if free {
                            segs.push(s);
                        }
                    }
                }
                segs.sort_by_key(|s| s.start);
                sources.push(VarSource {
                    segments: segs,
                    ..src.clone()
                });
            } else {
                sources.push(VarSource {
                    var: src.var.clone(),
                    axis: src.axis.map(|a| a + 1),
                    segments: Vec::new(),
                    stored: None,
                    stack: Some(Stack {
                        axis: src.axis,
                        members: (0..self.parts.len()).map(|m| self.segments(m, i)).collect(),
                    }),
                    inline: None,
                });
            }
        }
        let stacked: BTreeSet<String> = vars
            .iter()
            .filter(|v| !shared.contains(&v.path))
            .map(|v| v.path.clone())
            .collect();
        schema.root.for_each_var_mut(&mut |v| {
            if stacked.contains(&v.path) {
                v.dims.insert(0, dim.clone());
                v.shape.insert(0, n);
                if let Some(c) = &mut v.source_chunks {
                    c.insert(0, 1);
                }
            }
        });
        schema.root.vars.insert(0, coord);
        let mut concat_out = r.concat.clone();
        if let Some(c) = &mut concat_out {
            c.len = self.axis_len;
            c.values.clone_from(&self.axis);
        }
        Ok(Dataset {
            files,
            schema,
            sources,
            concat: concat_out,
            grid: Some(grid),
        })
    }

    /// The cells no file holds: per member, the output ranges its
    /// coordinate's segments leave uncovered (or the whole member).
    fn missing(&self) -> Vec<Missing> {
        let mut out = Vec::new();
        for (m, label) in self.labels.iter().enumerate() {
            let cell = |start: u64, len: u64| Missing {
                member: label.to_string(),
                index: m as u64,
                start,
                len,
                first: self
                    .axis
                    .as_ref()
                    .and_then(|a| a.get(usize::try_from(start).unwrap_or(usize::MAX)))
                    .copied(),
            };
            if self.part(m).is_none() {
                out.push(cell(0, self.axis_len));
                continue;
            }
            let Some(coord) = self.coord_segments(m) else {
                continue;
            };
            let mut covered: Vec<(u64, u64)> = coord
                .iter()
                .map(|s| {
                    let at = self.starts[m].get(&s.start).copied().unwrap_or(s.start);
                    (at, at + s.len)
                })
                .collect();
            covered.sort_unstable();
            let mut x = 0;
            for (a, b) in covered {
                if a > x {
                    out.push(cell(x, a - x));
                }
                x = x.max(b);
            }
            if x < self.axis_len {
                out.push(cell(x, self.axis_len - x));
            }
        }
        out
    }
}

/// Puts the members of `ds` in the order of `labels` (a permutation of
/// its own): an append follows the store's order.
pub fn reorder(ds: &mut Dataset, labels: &[Label]) {
    let Some(g) = &mut ds.grid else { return };
    let perm: Vec<usize> = labels
        .iter()
        .filter_map(|l| g.labels.iter().position(|x| x == l))
        .collect();
    if perm.len() != g.labels.len() || perm.iter().enumerate().all(|(i, &p)| i == p) {
        return;
    }
    g.labels = labels.to_vec();
    for c in &mut g.missing {
        let at = usize::try_from(c.index).unwrap_or(usize::MAX);
        c.index = perm.iter().position(|&p| p == at).unwrap_or(at) as u64;
    }
    for s in &mut ds.sources {
        if let Some(st) = &mut s.stack {
            st.members = perm
                .iter()
                .map(|&p| st.members.get(p).cloned().unwrap_or_default())
                .collect();
        }
        if s.inline.is_some() {
            s.inline = Some(labels.to_vec());
        }
    }
}

/// The attributes of the new dimension's coordinate: where its values
/// come from.
fn coord_attrs(spec: &NewDim) -> Vec<Attr> {
    let text = match &spec.from {
        NewDimFrom::Attribute(a) => format!("global attribute '{a}' of each input file"),
        NewDimFrom::FileName(r) => format!("input file names, /{r}/"),
    };
    vec![Attr {
        name: "comment".into(),
        value: AttrValue::Text(format!("values from the {text}")),
    }]
}

/// The same variable in two members: same type, dimensions, shape off the
/// axis, and encoding attributes.
fn check_same_var(a: &Var, b: &Var, axis: Option<usize>) -> Result<(), String> {
    if a.dtype != b.dtype {
        return Err(format!(
            "type {} in the reference member, {} here",
            a.dtype.nc_name(),
            b.dtype.nc_name()
        ));
    }
    if a.dims != b.dims {
        return Err(format!(
            "dimensions {:?} in the reference member, {:?} here",
            a.dims, b.dims
        ));
    }
    if shape_off_axis(a, axis) != shape_off_axis(b, axis) {
        return Err(format!(
            "shape {:?} in the reference member, {:?} here",
            a.shape, b.shape
        ));
    }
    for name in MUST_AGREE {
        let (x, y) = (a.attr(name), b.attr(name));
        let same = match (x, y) {
            (None, None) => true,
            (Some(x), Some(y)) => same_value(x, y),
            _ => false,
        };
        if !same {
            let show =
                |v: Option<&AttrValue>| v.map_or_else(|| "absent".into(), AttrValue::display);
            return Err(format!(
                "attribute '{name}' is {} in the reference member, {} here",
                show(x),
                show(y)
            ));
        }
    }
    Ok(())
}
