//! What the store must hold, from the sources alone (pure): which source
//! variable (and which file's records) each store array holds, and every
//! difference of structure and attributes a reader would see.
//!
//! Matching: a source variable `g/v` is the store array `g/v` (after the
//! renames of the options). Along the concatenation dimension (the option,
//! or the root unlimited dimension all files share) each file's records
//! are placed where the store's coordinate holds the file's coordinate
//! values (compared as instants when the time units differ); without
//! coordinate values, files follow each other in their natural order.
//! Variables without that dimension come from the first file (in time
//! order) that holds them. With a new dimension made from the files
//! (`--new-dim`, [`super::members`]), the files are placed within their
//! member, and stacked variables have that dimension first.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::json;
use super::members::Members;
use super::rounding::{self, Round};
use super::shares::{Job, Options, Piece};
use super::source::{FileScan, NcAttr, NcType, SrcVar, VarType};
use super::store::{Format, StoreArray, StoreTree};
use super::values::{Cf, TimeMap};
use crate::model::cftime;

/// Attributes whose text names other variables (renamed with them).
const REFERENCE_ATTRS: [&str; 5] = [
    "coordinates",
    "bounds",
    "grid_mapping",
    "ancillary_variables",
    "cell_measures",
];

/// Attributes that decide how values decode.
const DECODING_ATTRS: [&str; 6] = [
    "_FillValue",
    "missing_value",
    "scale_factor",
    "add_offset",
    "units",
    "calendar",
];

/// The arrays to compare and the differences found without reading values.
#[derive(Debug, Clone, Default)]
pub(crate) struct Expected {
    /// Arrays whose values are compared.
    pub(crate) jobs: Vec<Job>,
    /// Structure and attribute differences.
    pub(crate) diffs: Vec<String>,
}

/// The concatenation dimension (source name): the option, else the root
/// unlimited dimension that every file with one shares.
pub(crate) fn concat_dim(scans: &[FileScan], opts: &Options) -> Option<String> {
    if let Some(d) = &opts.concat_dim {
        return Some(d.clone());
    }
    let mut found: Option<&str> = None;
    for s in scans {
        let unl: Vec<&str> = s
            .dims
            .iter()
            .filter(|d| d.2)
            .map(|d| d.0.as_str())
            .collect();
        match (unl.as_slice(), found) {
            ([], _) => {}
            ([one], None) => found = Some(one),
            ([one], Some(f)) if f == *one => {}
            _ => return None,
        }
    }
    found.map(str::to_string)
}

fn renamed<'a>(map: &'a [(String, String)], name: &'a str) -> &'a str {
    map.iter()
        .find(|(f, _)| f == name)
        .map_or(name, |(_, t)| t.as_str())
}

/// The store path of source variable `path`.
pub(crate) fn store_path(opts: &Options, path: &str) -> String {
    let new = renamed(&opts.rename, path);
    if new == path {
        return path.to_string();
    }
    let leaf = new.rsplit('/').next().unwrap_or(new);
    match path.rsplit_once('/') {
        Some((parent, _)) => format!("{parent}/{leaf}"),
        None => leaf.to_string(),
    }
}

fn text_attr(v: &Map<String, Value>, name: &str) -> Option<String> {
    let x = v.get(name)?;
    if json::token(x).is_some() {
        return None;
    }
    x.as_str().map(str::to_string)
}

/// A source attribute's first value as `f64`.
fn first_f64(a: &NcAttr) -> Option<f64> {
    #[allow(clippy::cast_precision_loss)]
    match a {
        NcAttr::I8(v) => v.first().map(|&x| f64::from(x)),
        NcAttr::U8(v) => v.first().map(|&x| f64::from(x)),
        NcAttr::I16(v) => v.first().map(|&x| f64::from(x)),
        NcAttr::U16(v) => v.first().map(|&x| f64::from(x)),
        NcAttr::I32(v) => v.first().map(|&x| f64::from(x)),
        NcAttr::U32(v) => v.first().map(|&x| f64::from(x)),
        NcAttr::I64(v) => v.first().map(|&x| x as f64),
        NcAttr::U64(v) => v.first().map(|&x| x as f64),
        NcAttr::F32(v) => v.first().map(|&x| f64::from(x)),
        NcAttr::F64(v) => v.first().copied(),
        NcAttr::Text(_) | NcAttr::Strings(_) | NcAttr::Members(_) => None,
    }
}

/// Time units and calendar of a variable, when its `units` are CF time
/// units usable for instants.
struct TimeAxis {
    units: cftime::TimeUnits,
    reference: i128,
}

impl TimeAxis {
    fn new(units: Option<&str>, calendar: Option<&str>) -> Option<Self> {
        let units = cftime::parse_units(units?).ok()?;
        let calendar = cftime::Calendar::parse(calendar).ok()?;
        let reference = units.reference_nanos(calendar).ok()?;
        Some(Self { units, reference })
    }

    fn of_src(v: &SrcVar) -> Option<Self> {
        Self::new(
            v.attr("units").and_then(NcAttr::text),
            v.attr("calendar").and_then(NcAttr::text),
        )
    }

    fn of_store(attrs: &Map<String, Value>) -> Option<Self> {
        Self::new(
            text_attr(attrs, "units").as_deref(),
            text_attr(attrs, "calendar").as_deref(),
        )
    }

    /// The map from values in `self` to values in `to`.
    fn map_to(&self, to: &Self) -> TimeMap {
        TimeMap {
            src_unit: self.units.unit.nanos(),
            store_unit: to.units.unit.nanos(),
            shift: self.reference - to.reference,
        }
    }

    /// A value as nanoseconds after the reference of `base`.
    #[allow(clippy::cast_precision_loss)]
    fn key(&self, x: f64, base: &Self) -> f64 {
        x * self.units.unit.nanos() as f64 + (self.reference - base.reference) as f64
    }
}

/// The time axis of a source variable: its own `units` and `calendar`, or
/// those of the variable whose `bounds` it is (CF bounds inherit them).
fn src_time_of(scan: &FileScan, v: &SrcVar) -> Option<TimeAxis> {
    if v.attr("units").is_some() {
        return TimeAxis::of_src(v);
    }
    let leaf = v.path.rsplit('/').next().unwrap_or(&v.path);
    scan.vars
        .iter()
        .find(|x| {
            x.attr("bounds")
                .and_then(NcAttr::text)
                .is_some_and(|b| b == v.path || b == leaf)
        })
        .and_then(TimeAxis::of_src)
}

/// The time axis of a store array, as [`src_time_of`].
fn store_time_of(tree: &StoreTree, a: &StoreArray) -> Option<TimeAxis> {
    if a.attrs.contains_key("units") {
        return TimeAxis::of_store(&a.attrs);
    }
    let leaf = a.path.rsplit('/').next().unwrap_or(&a.path);
    tree.arrays
        .iter()
        .find(|x| text_attr(&x.attrs, "bounds").is_some_and(|b| b == a.path || b == leaf))
        .and_then(|x| TimeAxis::of_store(&x.attrs))
}

/// Coordinate values equal to within float rounding.
fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

/// Placement of each file's records along the axis (`None`: not placed).
fn place(
    scans: &[&FileScan],
    dim: &str,
    store_coord: Option<(&[f64], Option<&TimeAxis>, u64)>,
    diffs: &mut Vec<String>,
) -> Vec<Option<u64>> {
    fn family<'a>(s: &'a FileScan, dim: &str) -> BTreeSet<&'a str> {
        s.vars
            .iter()
            .filter(|v| v.dims.iter().any(|d| d == dim))
            .map(|v| v.path.as_str())
            .collect()
    }
    let mut out = vec![None; scans.len()];
    // Consecutive placement per family, in natural order, for files without
    // coordinate values.
    let mut next: Vec<(BTreeSet<&str>, u64)> = Vec::new();
    let mut claimed: Vec<(BTreeSet<&str>, u64, u64)> = Vec::new();
    // Files with coordinate values go in order of their first value.
    let mut order: Vec<usize> = (0..scans.len()).collect();
    let first_key = |i: usize| -> f64 {
        scans[i]
            .coords
            .iter()
            .find(|c| c.0 == dim)
            .and_then(|c| c.1.first().copied())
            .unwrap_or(f64::INFINITY)
    };
    order.sort_by(|&a, &b| first_key(a).total_cmp(&first_key(b)).then(a.cmp(&b)));
    for i in order {
        let s = &scans[i];
        let Some(len) = s.dim_len(dim).filter(|&n| n > 0) else {
            continue;
        };
        let fam = family(s, dim);
        let values = s.coords.iter().find(|c| c.0 == dim).map(|c| &c.1);
        match (store_coord, values) {
            (Some((store, store_time, _)), Some(values)) if !values.is_empty() => {
                let file_time = s
                    .var(dim)
                    .filter(|v| v.dims.len() == 1)
                    .and_then(TimeAxis::of_src);
                let keys: Vec<f64> = match (store_time, &file_time) {
                    (Some(base), Some(t)) => values.iter().map(|&x| t.key(x, base)).collect(),
                    _ => values.clone(),
                };
                let store_keys: Vec<f64> = match store_time {
                    Some(base) if file_time.is_some() => {
                        store.iter().map(|&x| base.key(x, base)).collect()
                    }
                    _ => store.to_vec(),
                };
                let candidates: Vec<u64> = matches(&store_keys, &keys)
                    .into_iter()
                    .map(|k| k as u64)
                    .collect();
                let free = candidates.iter().copied().find(|&k| {
                    !claimed
                        .iter()
                        .any(|(f, a, b)| *f == fam && k < *b && *a < k + len)
                });
                match free.or_else(|| candidates.first().copied()) {
                    Some(k) => {
                        claimed.push((fam, k, k + len));
                        out[i] = Some(k);
                    }
                    None => diffs.push(format!(
                        "{}: its '{dim}' values {} .. {} are not in the store's '{dim}' coordinate",
                        s.path.display(),
                        values[0],
                        values[values.len() - 1]
                    )),
                }
            }
            _ => {
                let at = if let Some((_, n)) = next.iter_mut().find(|(f, _)| *f == fam) {
                    let at = *n;
                    *n += len;
                    at
                } else {
                    next.push((fam, len));
                    0
                };
                out[i] = Some(at);
            }
        }
    }
    out
}

/// Positions `k` where `store[k..k + want.len()]` equals `want`.
fn matches(store: &[f64], want: &[f64]) -> Vec<usize> {
    let Some(&first) = want.first() else {
        return Vec::new();
    };
    if want.len() > store.len() {
        return Vec::new();
    }
    let sorted = store.windows(2).all(|w| w[0] <= w[1]);
    let range = if sorted {
        let tol = 1e-9 * first.abs();
        let lo = store.partition_point(|&x| x < first - tol);
        let hi = store.partition_point(|&x| x <= first + tol);
        lo..hi.max(lo)
    } else {
        0..store.len()
    };
    range
        .filter(|&k| k + want.len() <= store.len())
        .filter(|&k| want.iter().zip(&store[k..]).all(|(&a, &b)| close(a, b)))
        .collect()
}

/// Whether a stored global `history` carries the source's (a conversion
/// may put its own line first).
fn history_ok(src: &NcAttr, store: &Value) -> bool {
    match (src.text(), store.as_str()) {
        (Some(s), Some(z)) => z == s || z.ends_with(&format!("\n{s}")),
        _ => false,
    }
}

/// The attribute values of the sources for one node: name → candidates
/// (one per file holding it, time order first).
type Candidates = Vec<(String, Vec<NcAttr>)>;

fn add_candidates(c: &mut Candidates, attrs: &[(String, NcAttr)]) {
    for (n, a) in attrs {
        match c.iter_mut().find(|(x, _)| x == n) {
            Some((_, v)) => {
                if !v.contains(a) {
                    v.push(a.clone());
                }
            }
            None => c.push((n.clone(), vec![a.clone()])),
        }
    }
}

fn set_candidate(c: &mut Candidates, name: &str, a: NcAttr) {
    match c.iter_mut().find(|(x, _)| x == name) {
        Some((_, v)) => *v = vec![a],
        None => c.push((name.to_string(), vec![a])),
    }
}

/// How the attributes of one node are compared.
#[derive(Debug, Clone, Copy, Default)]
struct AttrRules {
    /// The root group (its `history` may start with a provenance line).
    global: bool,
    /// The store's time units may differ (values compared as instants).
    time_units: bool,
    /// Only the attributes that decide how values decode (an append).
    partial: bool,
    /// `--attrs-json strict`: NaN and the infinities are the strings
    /// `"NaN"`, `"Infinity"`, `"-Infinity"`.
    strict: bool,
    /// The store records the array as rounded: its quantization
    /// attributes are checked on their own ([`rounding::recorded`]).
    rounded: bool,
}

/// Compares attributes (other than `_FillValue` and `_ARRAY_DIMENSIONS`)
/// of one node.
fn compare_attrs(
    owner: &str,
    want: &Candidates,
    have: &Map<String, Value>,
    rules: AttrRules,
    diffs: &mut Vec<String>,
) {
    let AttrRules {
        global,
        time_units,
        partial,
        strict,
        rounded,
    } = rules;
    let skip = |n: &str| {
        n == "_FillValue" || n == "_ARRAY_DIMENSIONS" || (rounded && rounding::ATTRS.contains(&n))
    };
    let considered = |n: &str| !partial || DECODING_ATTRS.contains(&n);
    for (name, cands) in want {
        if skip(name) || !considered(name) {
            continue;
        }
        let Some(z) = have.get(name) else {
            diffs.push(format!(
                "{owner} attribute '{name}' is missing from the store (sources: {})",
                cands[0].show()
            ));
            continue;
        };
        if global && name == "history" && cands.iter().any(|c| history_ok(c, z)) {
            continue;
        }
        // Time units may differ: the values are compared as instants.
        if time_units && name == "units" {
            continue;
        }
        let problems: Vec<Option<String>> = cands
            .iter()
            .map(|c| json::attr_problem(c, z, strict))
            .collect();
        if let Some(Some(p)) = problems.iter().find(|p| p.is_some()) {
            if problems.iter().all(Option::is_some) {
                // The strings of a strict store, verified without saying so.
                let hint = if !strict
                    && cands
                        .iter()
                        .any(|c| json::attr_problem(c, z, true).is_none())
                {
                    "; a store converted with --attrs-json strict is verified with --attrs-json strict"
                } else {
                    ""
                };
                diffs.push(format!(
                    "{owner} attribute '{name}': store {}, sources {} ({p}){hint}",
                    json::show(z),
                    cands[0].show()
                ));
            }
        }
    }
    if partial {
        return;
    }
    for name in have.keys() {
        if skip(name) || want.iter().any(|(n, _)| n == name) {
            continue;
        }
        if global && name == "history" {
            continue;
        }
        diffs.push(format!(
            "{owner} attribute '{name}' is only in the store ({})",
            json::show(&have[name])
        ));
    }
}

fn same_bytes(t: NcType, a: &[u8], b: &[u8]) -> bool {
    a == b
        || (t.is_float()
            && super::values::as_f64(t, a, 0).is_nan()
            && super::values::as_f64(t, b, 0).is_nan())
}

/// The fill value as a reader of the store takes it (v3: the `_FillValue`
/// attribute; v2: the array's `fill_value`), compared with the source's.
///
/// Chars and strings in v3 may keep their fill in the array's
/// `fill_value` only (xarray cannot decode a v3 `_FillValue` attribute on
/// bytes or strings): that is not a difference when it is the source's.
fn compare_fill(
    arr: &StoreArray,
    format: Format,
    t: NcType,
    src: Option<&NcAttr>,
    diffs: &mut Vec<String>,
) -> Option<Vec<u8>> {
    let owner = format!("'{}'", arr.path);
    let show_src = || src.map_or_else(|| "none".to_string(), NcAttr::show);
    if format == Format::V2 {
        if let Some(v) = arr.attrs.get("_FillValue") {
            diffs.push(format!(
                "{owner} attribute '_FillValue' is in .zattrs ({}): Zarr v2 readers take the fill from fill_value",
                json::show(v)
            ));
        }
    }
    if t == NcType::Str {
        compare_text_fill(arr, format, src, &owner, diffs);
        return None;
    }
    let want = src.and_then(|a| json::src_fill(a, t));
    let attr = arr.attrs.get("_FillValue");
    let (have, what) = match format {
        Format::V3 => match attr {
            Some(v) => (
                Some((v, json::fill_attr_v3(v, t))),
                "attribute '_FillValue'",
            ),
            None if t == NcType::Char && want.is_some() => {
                let v = arr.fill_value();
                let decoded = json::fill_value_v2(v, t).map(Option::unwrap_or_default);
                (Some((v, decoded)), "fill_value")
            }
            None => (None, "attribute '_FillValue'"),
        },
        Format::V2 => {
            let v = arr.fill_value();
            (
                (!v.is_null())
                    .then(|| (v, json::fill_value_v2(v, t).map(Option::unwrap_or_default))),
                "fill_value",
            )
        }
    };
    match (want, have) {
        (None, None) => None,
        (Some(_), None) => {
            diffs.push(format!(
                "{owner} {what} is missing from the store (sources: _FillValue {}): readers no longer mask the fill",
                show_src()
            ));
            None
        }
        (None, Some((v, decoded))) => {
            diffs.push(format!(
                "{owner} {what} {} is only in the store (sources: _FillValue {}): readers mask values the sources do not",
                json::show(v),
                show_src()
            ));
            decoded.ok()
        }
        (Some(w), Some((v, decoded))) => match decoded {
            Ok(b) if same_bytes(t, &b, &w) => Some(b),
            Ok(b) => {
                diffs.push(format!(
                    "{owner} {what}: store {}, sources {} (a different fill value)",
                    json::show(v),
                    show_src()
                ));
                Some(b)
            }
            Err(e) => {
                diffs.push(format!(
                    "{owner} {what}: store {}, sources {} ({e})",
                    json::show(v),
                    show_src()
                ));
                None
            }
        },
    }
}

/// The fill of a string array: v3 the `_FillValue` attribute or else the
/// array's `fill_value`; v2 the `fill_value` (`null`: none).
fn compare_text_fill(
    arr: &StoreArray,
    format: Format,
    src: Option<&NcAttr>,
    owner: &str,
    diffs: &mut Vec<String>,
) {
    let want = src.and_then(NcAttr::text);
    let attr = arr.attrs.get("_FillValue");
    let (have, what) = match (format, attr) {
        (Format::V3, Some(v)) => (Some(v), "attribute '_FillValue'"),
        (Format::V3, None) if want.is_some() => (Some(arr.fill_value()), "fill_value"),
        (Format::V3, None) => (None, "attribute '_FillValue'"),
        (Format::V2, _) => (
            Some(arr.fill_value()).filter(|v| !v.is_null()),
            "fill_value",
        ),
    };
    let show_src = || src.map_or_else(|| "none".to_string(), NcAttr::show);
    match (want, have) {
        (None, None) => {}
        (Some(w), Some(v)) if v.as_str() == Some(w) && json::token(v).is_none() => {}
        (Some(_), None) => diffs.push(format!(
            "{owner} {what} is missing from the store (sources: _FillValue {})",
            show_src()
        )),
        (_, Some(v)) => diffs.push(format!(
            "{owner} {what}: store {}, sources _FillValue {}",
            json::show(v),
            show_src()
        )),
    }
}

/// What the store must hold.
///
/// `store_coord`: the values of the store's coordinate of the
/// concatenation dimension, when it has one; `members`: the new dimension
/// made from the files (`--new-dim`), if any.
pub(crate) fn expect(
    scans: &[FileScan],
    tree: &StoreTree,
    store_coord: Option<&[f64]>,
    members: Option<&Members>,
    opts: &Options,
) -> Expected {
    let mut diffs = tree.problems.clone();
    if let Some(m) = members {
        diffs.extend(m.diffs.iter().cloned());
    }
    let dim = concat_dim(scans, opts);
    let dim_store = dim.as_deref().map(|d| renamed(&opts.rename, d).to_string());
    let coord_arr = dim_store.as_deref().and_then(|d| tree.array(d));
    let store_time = coord_arr.and_then(|a| store_time_of(tree, a));
    if let (Some(u), Some(a)) = (&opts.time_units, coord_arr) {
        check_time_units(u, a, &mut diffs);
    }
    // Each member's files are placed on their own (all files without a new
    // dimension), the old files and each backfill's apart; a file whose
    // member is not in the store is left out.
    let in_store = |i: usize| members.is_none_or(|m| m.member(i).is_some());
    let placed: Vec<Option<u64>> = match &dim {
        Some(d) => {
            let coord = store_coord.map(|c| (c, store_time.as_ref(), c.len() as u64));
            let mut placed = vec![None; scans.len()];
            let sets = members.map_or_else(|| vec![(0..scans.len()).collect()], Members::groups);
            for set in sets.into_iter().flat_map(|s| opts.backfill.split(s)) {
                let set = opts
                    .backfill
                    .placeable(scans, &set, d, coord.is_some(), &mut diffs);
                let subset: Vec<&FileScan> = set.iter().map(|&i| &scans[i]).collect();
                for (&i, at) in set.iter().zip(place(&subset, d, coord, &mut diffs)) {
                    placed[i] = at;
                }
            }
            placed
        }
        None => (0..scans.len()).map(|i| in_store(i).then_some(0)).collect(),
    };
    // Time order (the old files first, then each backfill's): placed files
    // by position, then the others, naturally.
    let mut order: Vec<usize> = (0..scans.len()).filter(|&i| in_store(i)).collect();
    order.sort_by_key(|&i| {
        let g = opts.backfill.of(i);
        (g, placed[i].is_none() || dim.is_none(), placed[i], i)
    });
    let mut e = Expecting {
        scans,
        tree,
        opts,
        dim,
        placed,
        order,
        diffs,
        matched: members.map(|m| m.dim.clone()).into_iter().collect(),
        members,
    };
    let mut paths: Vec<&str> = Vec::new();
    for &i in &e.order {
        for v in &scans[i].vars {
            if !paths.contains(&v.path.as_str()) {
                paths.push(&v.path);
            }
        }
    }
    let mut jobs: Vec<Job> = paths.into_iter().filter_map(|p| e.variable(p)).collect();
    for a in &tree.arrays {
        if !e.matched.contains(&a.path) {
            e.diffs.push(format!(
                "array '{}' is in the store but not in the sources",
                a.path
            ));
        }
    }
    e.groups();
    jobs.sort_by(|a, b| a.path.cmp(&b.path));
    Expected {
        jobs,
        diffs: e.diffs,
    }
}

/// `--time-units` given to verify: the store's coordinate must have them.
fn check_time_units(u: &str, a: &StoreArray, diffs: &mut Vec<String>) {
    let have = text_attr(&a.attrs, "units");
    let same = match (
        cftime::parse_units(u),
        have.as_deref().map(cftime::parse_units),
    ) {
        (Ok(x), Some(Ok(y))) => x == y,
        _ => have.as_deref() == Some(u),
    };
    if !same {
        diffs.push(format!(
            "'{}' attribute 'units': store {}, --time-units {u:?}",
            a.path,
            have.map_or_else(|| "none".into(), |h| format!("{h:?}"))
        ));
    }
}

/// The sources and the store, and what was found so far.
struct Expecting<'a> {
    scans: &'a [FileScan],
    tree: &'a StoreTree,
    opts: &'a Options,
    /// The concatenation dimension, if any.
    dim: Option<String>,
    /// Each file's first index along it in the store (`None`: not found).
    placed: Vec<Option<u64>>,
    /// The files in time order.
    order: Vec<usize>,
    diffs: Vec<String>,
    /// Store arrays some source variable stands for.
    matched: Vec<String>,
    /// The new dimension made from the files, if any.
    members: Option<&'a Members>,
}

impl<'a> Expecting<'a> {
    /// What the store must hold for source variable `p`: its structure and
    /// attributes are compared here (differences go to `diffs`), its values
    /// are to be compared by the returned job.
    fn variable(&mut self, p: &str) -> Option<Job> {
        let (scans, opts) = (self.scans, self.opts);
        let holders: Vec<usize> = self
            .order
            .iter()
            .copied()
            .filter(|&i| scans[i].var(p).is_some())
            .collect();
        let v = scans[holders[0]].var(p)?;
        let (sp, arr, t) = self.store_array(p, v)?;
        let owner = format!("'{sp}'");
        // A stacked variable has the new dimension first.
        let stacked = self.members.filter(|m| m.stacks(p));
        let src_axis = self
            .dim
            .as_deref()
            .and_then(|d| v.dims.iter().position(|x| x == d));
        let axis = src_axis.map(|k| k + usize::from(stacked.is_some()));
        let want_dims: Vec<String> = (stacked.map(|m| m.dim.clone()).into_iter())
            .chain(v.dims.iter().map(|d| renamed(&opts.rename, d).to_string()))
            .collect();
        let shape: Vec<u64> = (stacked.map(Members::count).into_iter())
            .chain(v.shape.iter().copied())
            .collect();
        let comparable = self.structure(&owner, &shape, arr, t, &want_dims, axis);
        let (store_fill, round) = self.attributes(&owner, p, v, arr, t, &holders);
        if !comparable {
            return None;
        }
        let store_axis = store_time_of(self.tree, arr);
        let pieces = match stacked {
            Some(m) => m.spread(&holders, |hs| {
                self.pieces(p, v, hs, src_axis, store_axis.as_ref())
            }),
            None => self.pieces(p, v, &holders, src_axis, store_axis.as_ref()),
        };
        // Steps a later backfill holds are its values.
        let pieces = if src_axis.is_some() && self.dim.is_some() {
            opts.backfill.supersede(pieces)
        } else {
            pieces
        };
        let axis = axis.filter(|_| self.dim.is_some());
        let along = axis.map(|k| (want_dims[k].as_str(), arr.shape[k]));
        let stack = match (stacked, along) {
            (Some(m), _) => Some(m.stack(&owner, v, t, &pieces, along, &mut self.diffs)),
            (None, Some((d, n))) => {
                self.check_coverage(&owner, &pieces, n, d);
                None
            }
            (None, None) => None,
        };
        let (src_cf, store_cf) = cf_pair(v, arr, t, store_fill, opts.strict);
        Some(Job {
            path: sp,
            dtype: t,
            shape: arr.shape.clone(),
            axis,
            pieces,
            src_cf,
            store_cf,
            stack,
            round,
        })
    }

    /// The attributes of source variable `p` (`v`, held by `holders`) and
    /// the store's `arr`, `owner` in messages, compared: the old files'
    /// (a region write keeps the store's), and the store's record of a
    /// rounding (`--keepbits`) checked in their stead. The fill value as
    /// readers of the store take it, and the rounding of the values.
    fn attributes(
        &mut self,
        owner: &str,
        p: &str,
        v: &SrcVar,
        arr: &StoreArray,
        t: NcType,
        holders: &[usize],
    ) -> (Option<Vec<u8>>, Option<Round>) {
        let opts = self.opts;
        let cands = self.attr_candidates(p, v, &opts.backfill.first(holders));
        let time_differs = store_time_of(self.tree, arr).is_some()
            && src_time_of(&self.scans[holders[0]], v).is_some();
        let recorded = rounding::recorded(
            self.tree,
            arr,
            owner,
            t,
            &cands,
            opts.strict,
            &mut self.diffs,
        );
        let rules = AttrRules {
            global: false,
            time_units: time_differs,
            partial: opts.partial,
            strict: opts.strict,
            rounded: recorded.is_some(),
        };
        compare_attrs(owner, &cands, &arr.attrs, rules, &mut self.diffs);
        let store_fill = compare_fill(
            arr,
            self.tree.format,
            t,
            v.attr("_FillValue"),
            &mut self.diffs,
        );
        let Some(recorded) = recorded else {
            return (store_fill, None);
        };
        // The container the array names stands for no source variable.
        self.matched.extend(recorded.container);
        (store_fill, recorded.round)
    }

    /// The store array of source variable `v` (at `p`) and its type, when
    /// its values are to be compared; what is missing, unsupported or
    /// excluded goes to `diffs`.
    fn store_array<'t>(&mut self, p: &str, v: &SrcVar) -> Option<(String, &'t StoreArray, NcType)>
    where
        'a: 't,
    {
        let opts = self.opts;
        let sp = store_path(opts, p);
        let arr = self.tree.array(&sp);
        let t = match &v.dtype {
            VarType::Nc(t) => *t,
            VarType::Unsupported(kind) => {
                if arr.is_some() {
                    self.matched.push(sp.clone());
                    self.diffs.push(format!(
                        "array '{sp}' is in the store, but variable '{p}' of the sources has type {kind}, which Zarr cannot hold"
                    ));
                }
                return None;
            }
        };
        let optional = !opts.include.is_empty() && !opts.include.iter().any(|x| x == p);
        let excluded = opts.exclude.iter().any(|x| x == p);
        let Some(arr) = arr else {
            if !optional && !excluded {
                self.diffs
                    .push(format!("variable '{p}' of the sources is not in the store"));
            }
            return None;
        };
        self.matched.push(sp.clone());
        if excluded {
            self.diffs.push(format!(
                "array '{sp}' is in the store, but the options exclude variable '{p}'"
            ));
            return None;
        }
        Some((sp, arr, t))
    }

    /// Dimensions, data type and shape (`shape`: the sources', the new
    /// dimension first for a stacked variable): whether the values can be
    /// compared.
    fn structure(
        &mut self,
        owner: &str,
        shape: &[u64],
        arr: &StoreArray,
        t: NcType,
        want_dims: &[String],
        axis: Option<usize>,
    ) -> bool {
        let have_dims = arr.dims.clone().unwrap_or_default();
        let mut comparable = true;
        if have_dims != want_dims {
            self.diffs.push(format!(
                "{owner}: dimensions {have_dims:?} in the store, {want_dims:?} in the sources"
            ));
            comparable = false;
        }
        if !arr.holds(self.tree.format, t) {
            self.diffs.push(format!(
                "{owner}: data type {} in the store, {} in the sources",
                arr.dtype_text,
                t.name()
            ));
            comparable = false;
        }
        let mut want_shape = shape.to_vec();
        if let Some(k) = axis {
            if let Some(&n) = arr.shape.get(k) {
                want_shape[k] = n;
            }
        }
        if arr.shape != want_shape {
            self.diffs.push(format!(
                "{owner}: shape {:?} in the store, {want_shape:?} in the sources",
                arr.shape
            ));
            comparable = false;
        }
        comparable
    }

    /// The attributes variable `p` may have in the store: every holder's,
    /// the enum mapping, the options' edits and renames applied.
    fn attr_candidates(&self, p: &str, v: &SrcVar, holders: &[usize]) -> Candidates {
        let opts = self.opts;
        let mut cands: Candidates = Vec::new();
        for &i in holders {
            if let Some(x) = self.scans[i].var(p) {
                add_candidates(&mut cands, &x.attrs);
            }
        }
        if let Some(e) = &v.enumeration {
            // An enum is stored as its base integers; the mapping is kept
            // as xarray keeps it (`enum`, `enum_name`).
            for (n, a) in [
                ("enum", NcAttr::Members(e.members.clone())),
                ("enum_name", NcAttr::Text(e.name.clone())),
            ] {
                if !cands.iter().any(|(x, _)| x == n) {
                    cands.push((n.to_string(), vec![a]));
                }
            }
        }
        if let Some(edit) = opts.var_edits.iter().find(|e| e.var == p) {
            cands.retain(|(n, _)| !edit.remove.contains(n));
            for (n, a) in &edit.set {
                set_candidate(&mut cands, n, a.clone());
            }
        }
        if !opts.rename.is_empty() {
            for (n, vals) in &mut cands {
                if !REFERENCE_ATTRS.contains(&n.as_str()) {
                    continue;
                }
                for a in vals.iter_mut() {
                    if let NcAttr::Text(s) = a {
                        *s = s
                            .split(' ')
                            .map(|w| renamed(&opts.rename, w))
                            .collect::<Vec<_>>()
                            .join(" ");
                    }
                }
            }
        }
        cands
    }

    /// Where the values of `p` come from: one piece per file along the
    /// axis, or the first holder's whole variable.
    fn pieces(
        &self,
        p: &str,
        v: &SrcVar,
        holders: &[usize],
        axis: Option<usize>,
        store_axis: Option<&TimeAxis>,
    ) -> Vec<Piece> {
        let scans = self.scans;
        let time_of = |i: usize, x: &SrcVar| -> Option<TimeMap> {
            let m = src_time_of(&scans[i], x)?.map_to(store_axis?);
            (m.src_unit != m.store_unit || m.shift != 0).then_some(m)
        };
        match axis {
            Some(k) if self.dim.is_some() => holders
                .iter()
                .filter_map(|&i| {
                    let x = scans[i].var(p)?;
                    Some(Piece {
                        file: i,
                        var: p.to_string(),
                        at: self.placed[i]?,
                        len: *x.shape.get(k)?,
                        from: 0,
                        time: time_of(i, x),
                        member: None,
                    })
                })
                .filter(|pc| pc.len > 0)
                .collect(),
            _ => vec![Piece {
                file: holders[0],
                var: p.to_string(),
                at: 0,
                len: 0,
                from: 0,
                time: time_of(holders[0], v),
                member: None,
            }],
        }
    }

    /// Every piece within the store's length `n` along dimension `d`, and
    /// (unless partial) every index covered by some piece.
    fn check_coverage(&mut self, owner: &str, pieces: &[Piece], n: u64, d: &str) {
        for pc in pieces {
            if pc.at + pc.len > n {
                self.diffs.push(format!(
                    "{owner}: {} has {} step(s) for store indices {}..{} along '{d}', beyond its length {n}",
                    self.scans[pc.file].path.display(),
                    pc.len,
                    pc.at,
                    pc.at + pc.len
                ));
            }
        }
        if self.opts.partial {
            return;
        }
        let mut spans: Vec<(u64, u64)> = pieces.iter().map(|pc| (pc.at, pc.at + pc.len)).collect();
        spans.sort_unstable();
        let mut covered = 0u64;
        for (a, b) in spans {
            if a > covered {
                self.diffs.push(format!(
                    "{owner}: store indices {covered}..{a} along '{d}' come from no source file"
                ));
            }
            covered = covered.max(b);
        }
        if covered < n {
            self.diffs.push(format!(
                "{owner}: store indices {covered}..{n} along '{d}' come from no source file"
            ));
        }
    }

    /// Groups and their attributes.
    fn groups(&mut self) {
        let (scans, opts) = (self.scans, self.opts);
        let mut groups: Vec<&str> = Vec::new();
        for &i in &self.order {
            for g in &scans[i].groups {
                if !groups.contains(&g.path.as_str()) {
                    groups.push(&g.path);
                }
            }
        }
        for g in &groups {
            let owner = if g.is_empty() {
                "global".to_string()
            } else {
                format!("group '{g}'")
            };
            let Some(have) = self.tree.group(g) else {
                self.diffs
                    .push(format!("{owner} of the sources is not in the store"));
                continue;
            };
            if opts.partial {
                continue;
            }
            let mut cands: Candidates = Vec::new();
            let holders: Vec<usize> = (self.order.iter().copied())
                .filter(|&i| scans[i].groups.iter().any(|x| x.path == *g))
                .collect();
            for i in opts.backfill.first(&holders) {
                if let Some(x) = scans[i].groups.iter().find(|x| x.path == *g) {
                    add_candidates(&mut cands, &x.attrs);
                }
            }
            if g.is_empty() {
                cands.retain(|(n, _)| !opts.global_remove.contains(n));
                for (n, a) in &opts.global_set {
                    set_candidate(&mut cands, n, a.clone());
                }
            }
            let rules = AttrRules {
                global: g.is_empty(),
                strict: self.opts.strict,
                ..AttrRules::default()
            };
            compare_attrs(&owner, &cands, &have.attrs, rules, &mut self.diffs);
        }
        for g in &self.tree.groups {
            if !groups.contains(&g.path.as_str()) {
                self.diffs.push(format!(
                    "group '{}' is in the store but not in the sources",
                    g.path
                ));
            }
        }
    }
}

/// How CF readers decode the source variable and the store array: masked
/// values, scale and offset (none for text). With `strict`, the store's
/// strings `"NaN"`, `"Infinity"`, `"-Infinity"` are the numbers they name.
fn cf_pair(
    v: &SrcVar,
    arr: &StoreArray,
    t: NcType,
    store_fill: Option<Vec<u8>>,
    strict: bool,
) -> (Cf, Cf) {
    if matches!(t, NcType::Char | NcType::Str) {
        return (Cf::default(), Cf::default());
    }
    let mut src_cf = Cf {
        masked: v
            .attr("_FillValue")
            .and_then(|a| json::src_fill(a, t))
            .into_iter()
            .collect(),
        scale: v.attr("scale_factor").and_then(first_f64),
        offset: v.attr("add_offset").and_then(first_f64),
    };
    if let Some(m) = v.attr("missing_value") {
        src_cf.masked.extend(json::src_bytes(m, t));
    }
    let mut store_cf = Cf {
        masked: store_fill.into_iter().collect(),
        scale: arr
            .attrs
            .get("scale_factor")
            .and_then(|s| json::store_f64(s, strict)),
        offset: arr
            .attrs
            .get("add_offset")
            .and_then(|s| json::store_f64(s, strict)),
    };
    if let Some(m) = arr.attrs.get("missing_value") {
        store_cf.masked.extend(json::store_bytes(m, t, strict));
    }
    (src_cf, store_cf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn var(path: &str, dims: &[&str], shape: &[u64], attrs: Vec<(String, NcAttr)>) -> SrcVar {
        SrcVar {
            path: path.into(),
            dtype: VarType::Nc(NcType::F64),
            enumeration: None,
            dims: dims.iter().map(|d| (*d).to_string()).collect(),
            shape: shape.to_vec(),
            attrs,
        }
    }

    fn file(name: &str, t: &[f64], units: &str, extra: &str) -> FileScan {
        let n = t.len() as u64;
        let units = vec![("units".to_string(), NcAttr::Text(units.into()))];
        FileScan {
            path: PathBuf::from(name),
            groups: vec![super::super::source::SrcGroup {
                path: String::new(),
                attrs: vec![],
            }],
            vars: vec![
                var("time", &["time"], &[n], units),
                var(extra, &["time", "x"], &[n, 2], vec![]),
            ],
            dims: vec![("time".into(), n, true), ("x".into(), 2, false)],
            coords: vec![("time".into(), t.to_vec())],
        }
    }

    fn store(arrays: &[(&str, &[&str], &[u64], &str)]) -> StoreTree {
        let mut docs = vec![(
            "zarr.json".to_string(),
            r#"{"zarr_format": 3, "node_type": "group", "attributes": {}}"#.to_string(),
        )];
        for (p, dims, shape, attrs) in arrays {
            docs.push((
                format!("{p}/zarr.json"),
                format!(
                    r#"{{"zarr_format": 3, "node_type": "array", "shape": {shape:?}, "data_type": "float64",
                    "dimension_names": {dims:?}, "fill_value": "NaN", "attributes": {attrs}}}"#
                ),
            ));
        }
        StoreTree::new(Format::V3, &docs)
    }

    #[test]
    fn files_are_placed_by_their_coordinate_values_across_units() {
        // Two files in other units than the store's, given in reverse order.
        let a = file("a.nc", &[2.0, 3.0], "days since 2000-01-01", "t2m");
        let b = file("b.nc", &[0.0, 24.0], "hours since 2000-01-01", "t2m");
        let tree = store(&[
            (
                "time",
                &["time"],
                &[4],
                r#"{"units": "hours since 2000-01-01"}"#,
            ),
            ("t2m", &["time", "x"], &[4, 2], "{}"),
        ]);
        let coord = [0.0, 24.0, 48.0, 72.0];
        let e = expect(&[a, b], &tree, Some(&coord), None, &Options::default());
        assert!(e.diffs.is_empty(), "{:?}", e.diffs);
        let t2m = e.jobs.iter().find(|j| j.path == "t2m").unwrap();
        let at: Vec<(usize, u64)> = t2m.pieces.iter().map(|p| (p.file, p.at)).collect();
        assert_eq!(at, vec![(1, 0), (0, 2)]);
        let time = e.jobs.iter().find(|j| j.path == "time").unwrap();
        assert!(time
            .pieces
            .iter()
            .find(|p| p.file == 0)
            .unwrap()
            .time
            .is_some());
        assert!(time
            .pieces
            .iter()
            .find(|p| p.file == 1)
            .unwrap()
            .time
            .is_none());
    }

    #[test]
    fn merged_families_share_the_axis_and_gaps_are_reported() {
        let files = [
            file("t2m_0.nc", &[0.0, 1.0], "hours since 2000-01-01", "t2m"),
            file("u10_0.nc", &[0.0, 1.0], "hours since 2000-01-01", "u10"),
        ];
        let tree = store(&[
            (
                "time",
                &["time"],
                &[3],
                r#"{"units": "hours since 2000-01-01"}"#,
            ),
            ("t2m", &["time", "x"], &[3, 2], "{}"),
            ("u10", &["time", "x"], &[3, 2], "{}"),
        ]);
        let e = expect(
            &files,
            &tree,
            Some(&[0.0, 1.0, 2.0]),
            None,
            &Options::default(),
        );
        let gaps: Vec<&String> = e.diffs.iter().filter(|d| d.contains("2..3")).collect();
        assert_eq!(gaps.len(), 3, "{:?}", e.diffs);
        let u10 = e.jobs.iter().find(|j| j.path == "u10").unwrap();
        assert_eq!(u10.pieces[0].at, 0);
        // An append verifies only the given files' records.
        let opts = Options {
            partial: true,
            ..Options::default()
        };
        let e = expect(&files, &tree, Some(&[0.0, 1.0, 2.0]), None, &opts);
        assert!(e.diffs.is_empty(), "{:?}", e.diffs);
    }

    #[test]
    fn renames_map_paths_dims_and_references() {
        let opts = Options {
            rename: vec![("lat".into(), "latitude".into())],
            ..Options::default()
        };
        assert_eq!(store_path(&opts, "lat"), "latitude");
        assert_eq!(store_path(&opts, "g/lat"), "g/lat");
        assert_eq!(store_path(&opts, "t"), "t");
    }

    #[test]
    fn missing_extra_and_mistyped_arrays_are_differences() {
        let a = file("a.nc", &[0.0], "hours since 2000-01-01", "t2m");
        let tree = store(&[
            (
                "time",
                &["time"],
                &[1],
                r#"{"units": "hours since 2000-01-01", "x": 1}"#,
            ),
            ("other", &["time"], &[1], "{}"),
        ]);
        let e = expect(&[a], &tree, Some(&[0.0]), None, &Options::default());
        let all = e.diffs.join("\n");
        assert!(
            all.contains("variable 't2m' of the sources is not in the store"),
            "{all}"
        );
        assert!(
            all.contains("array 'other' is in the store but not in the sources"),
            "{all}"
        );
        assert!(
            all.contains("'time' attribute 'x' is only in the store"),
            "{all}"
        );
    }
}
