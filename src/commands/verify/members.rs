//! A new outermost dimension made from the files (`--new-dim`): an
//! ensemble's members in front of the concatenation.
//!
//! What such a store must hold is derived here from the sources and the
//! options alone, by the rules of `convert --new-dim`:
//!
//! * each file's value along the dimension is its global attribute (text
//!   trimmed, or one integer), or the first capture group of the regular
//!   expression matched against its name (else its path); the values are
//!   integers when every one is (a text of digits counts), else strings;
//! * the file belongs to the member at the index where the store's
//!   coordinate of the dimension holds its value: a file whose value is not
//!   there is a difference. That coordinate (`int64` or strings, dimension
//!   itself) holds the values in `--new-dim-order`, else in natural order
//!   (integers by value, strings with runs of digits by value), and no
//!   value without a file unless `--allow-missing`; its `comment` (where the
//!   values come from) is in no source and not compared;
//! * *shared* variables — dimension coordinates and the variables any
//!   `coordinates`, `bounds`, `climatology` or `grid_mapping` attribute
//!   names — keep their dimensions, and every file's values are compared
//!   where the file lies along the concatenation dimension (the members'
//!   files hold the same ones);
//! * every other variable is *stacked*: the new dimension first, each
//!   member's files at its index, and within it placed along the
//!   concatenation dimension by their coordinate values, as without the
//!   new dimension;
//! * a cell of a stacked array no file holds (a member's missing steps, or
//!   a member without files) must read as the fill value: the variable's
//!   `_FillValue`, else netCDF's default fill, or the array's `fill_value`
//!   (an unwritten chunk). Without `--allow-missing` such a cell is also a
//!   difference (`convert` refuses it).

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::sync::Arc;

use zarrs::array::Array;
use zarrs::storage::ReadableStorageTraits;

use super::json;
use super::shares::{Gap, Job, Options, Piece, Stack};
use super::source::{FileScan, NcAttr, NcType, Raw, SrcVar};
use super::store::{self, StoreTree};
use super::{values, Tally};
use crate::cli::config::{NewDim, NewDimFrom};

/// Attributes whose text names variables that are shared, not stacked.
const SHARING_ATTRS: [&str; 4] = ["coordinates", "bounds", "climatology", "grid_mapping"];

/// Attributes of the new dimension's coordinate that no source holds.
const OWN_ATTRS: [&str; 3] = ["comment", "_FillValue", "_ARRAY_DIMENSIONS"];

/// A value along the new dimension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Label {
    /// An integer.
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

impl Label {
    /// The integer it is (a text of digits, without a `+`, counts).
    fn as_int(&self) -> Option<i64> {
        match self {
            Self::Int(i) => Some(*i),
            Self::Text(s) if !s.starts_with('+') => s.parse().ok(),
            Self::Text(_) => None,
        }
    }

    /// An integer when `ints` (every value is one), else text.
    fn kind(self, ints: bool) -> Self {
        match (ints, self.as_int()) {
            (true, Some(i)) => Self::Int(i),
            _ => Self::Text(self.to_string()),
        }
    }

    /// The same value, whatever its kind.
    fn same(&self, other: &Self) -> bool {
        self == other || self.to_string() == other.to_string()
    }
}

/// Natural order: runs of digits compare by value (equal values: fewer
/// leading zeros first), other text byte by byte.
fn natural(a: &str, b: &str) -> Ordering {
    fn digits(s: &[u8], from: usize) -> usize {
        from + s[from..].iter().take_while(|c| c.is_ascii_digit()).count()
    }
    fn value(d: &[u8]) -> &[u8] {
        &d[d.iter().take_while(|&&c| c == b'0').count()..]
    }
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i].is_ascii_digit() && b[j].is_ascii_digit() {
            let (ei, ej) = (digits(a, i), digits(b, j));
            let (x, y) = (value(&a[i..ei]), value(&b[j..ej]));
            let o = x
                .len()
                .cmp(&y.len())
                .then_with(|| x.cmp(y))
                .then_with(|| (ei - i).cmp(&(ej - j)));
            if o != Ordering::Equal {
                return o;
            }
            (i, j) = (ei, ej);
        } else {
            if a[i] != b[j] {
                return a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
    }
    (a.len() - i).cmp(&(b.len() - j))
}

fn natural_labels(a: &Label, b: &Label) -> Ordering {
    match (a, b) {
        (Label::Int(x), Label::Int(y)) => x.cmp(y),
        _ => natural(&a.to_string(), &b.to_string()),
    }
}

/// A global attribute's value along the new dimension: text (trimmed) or
/// one integer.
fn attr_label(a: &NcAttr) -> Option<Label> {
    fn one<T: Copy + Into<i64>>(v: &[T]) -> Option<Label> {
        match v {
            [x] => Some(Label::Int((*x).into())),
            _ => None,
        }
    }
    match a {
        NcAttr::Text(_) | NcAttr::Strings(_) => a.text().map(|s| Label::Text(s.trim().into())),
        NcAttr::I8(v) => one(v),
        NcAttr::U8(v) => one(v),
        NcAttr::I16(v) => one(v),
        NcAttr::U16(v) => one(v),
        NcAttr::I32(v) => one(v),
        NcAttr::U32(v) => one(v),
        NcAttr::I64(v) => one(v),
        NcAttr::U64(v) => match v.as_slice() {
            [x] => i64::try_from(*x).ok().map(Label::Int),
            _ => None,
        },
        NcAttr::F32(_) | NcAttr::F64(_) | NcAttr::Members(_) => None,
    }
}

/// The value of one file along the new dimension, or why it has none.
fn file_label(scan: &FileScan, spec: &NewDim, re: Option<&regex::Regex>) -> Result<Label, String> {
    match &spec.from {
        NewDimFrom::Attribute(name) => {
            let a = scan
                .groups
                .iter()
                .find(|g| g.path.is_empty())
                .and_then(|g| g.attrs.iter().find(|(n, _)| n == name))
                .map(|(_, a)| a)
                .ok_or_else(|| format!("it has no global attribute '{name}'"))?;
            attr_label(a).ok_or_else(|| {
                format!(
                    "its global attribute '{name}' is {}, not one string or integer",
                    a.show()
                )
            })
        }
        NewDimFrom::FileName(r) => {
            let re = re.ok_or_else(|| format!("/{r}/ is not a valid regular expression"))?;
            let name = scan
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let full = scan.path.to_string_lossy();
            let caps = re
                .captures(&name)
                .or_else(|| re.captures(&full))
                .ok_or_else(|| format!("its name does not match /{r}/"))?;
            match caps.get(1).map_or("", |m| m.as_str()) {
                "" => Err(format!("the capture group of /{r}/ is empty")),
                text => Ok(Label::Text(text.to_string())),
            }
        }
    }
}

/// The values of the store's coordinate `name` of the new dimension.
///
/// # Errors
/// Why the store has no such coordinate a reader can use, as a difference.
pub(crate) fn retrieve_labels(
    tree: &StoreTree,
    storage: &Arc<dyn ReadableStorageTraits>,
    name: &str,
) -> Result<Vec<Label>, String> {
    let a = tree
        .array(name)
        .ok_or_else(|| format!("coordinate '{name}' of the new dimension is not in the store"))?;
    if a.shape.len() != 1 {
        return Err(format!(
            "'{name}': shape {:?} in the store; the new dimension's coordinate has one dimension",
            a.shape
        ));
    }
    let t = [NcType::I64, NcType::Str]
        .into_iter()
        .find(|&t| a.holds(tree.format, t))
        .ok_or_else(|| {
            format!(
                "'{name}': data type {} in the store; the new dimension's values are int64 or strings",
                a.dtype_text
            )
        })?;
    if a.shape[0] == 0 {
        return Ok(Vec::new());
    }
    let arr = a
        .open(storage, tree.format, t)
        .map_err(|e| format!("'{name}': a Zarr reader cannot open it: {e}"))?;
    match store::retrieve(&arr, &[0], &a.shape) {
        Ok(Raw::Fixed(b)) => Ok(b
            .chunks_exact(8)
            .map(|c| {
                let mut x = [0u8; 8];
                x.copy_from_slice(c);
                Label::Int(i64::from_le_bytes(x))
            })
            .collect()),
        Ok(Raw::Strings(s)) => Ok(s.into_iter().map(Label::Text).collect()),
        Err(e) => Err(format!(
            "'{name}': the stored values cannot be decoded: {e}"
        )),
    }
}

/// The members of the new dimension: which files each holds, and which
/// variables are stacked along it.
#[derive(Debug, Clone)]
pub(crate) struct Members {
    /// The dimension's name (also its coordinate's path).
    pub(crate) dim: String,
    /// Its values, as the store's coordinate holds them (or, when the
    /// store has none, as the sources and the options give them).
    labels: Vec<Label>,
    /// Each file's index along the dimension (`None`: not in the store).
    of_file: Vec<Option<u64>>,
    /// The files, for messages.
    paths: Vec<String>,
    /// Source variables stacked along the dimension.
    stacked: BTreeSet<String>,
    /// Cells no file holds are expected (`--allow-missing`).
    allow_missing: bool,
    /// The sources are only part of the store (an append).
    partial: bool,
    /// Differences found about the dimension and the files' values.
    pub(crate) diffs: Vec<String>,
}

impl Members {
    /// The members of the files `scans` for the new dimension `spec`, and
    /// what is wrong with the store's coordinate `store` (its values, or why
    /// it cannot be read).
    pub(crate) fn new(
        spec: &NewDim,
        opts: &Options,
        scans: &[FileScan],
        tree: &StoreTree,
        store: Result<Vec<Label>, String>,
    ) -> Self {
        let mut diffs = Vec::new();
        let re = match &spec.from {
            NewDimFrom::FileName(r) => regex::Regex::new(r).ok(),
            NewDimFrom::Attribute(_) => None,
        };
        let found: Vec<Option<Label>> = scans
            .iter()
            .map(|s| {
                file_label(s, spec, re.as_ref())
                    .map_err(|e| {
                        diffs.push(format!(
                            "{}: no value along '{}': {e}",
                            s.path.display(),
                            spec.name
                        ));
                    })
                    .ok()
            })
            .collect();
        let ints = found.iter().flatten().all(|l| l.as_int().is_some())
            && spec
                .order
                .iter()
                .all(|s| Label::Text(s.clone()).as_int().is_some());
        let found: Vec<Option<Label>> =
            found.into_iter().map(|l| l.map(|l| l.kind(ints))).collect();
        let expected = expected_order(&found, spec, ints);
        let labels = match store {
            Ok(labels) => {
                let coord = Coordinate {
                    spec,
                    opts,
                    labels: &labels,
                    ints,
                };
                coord.check(tree, &found, &expected, &mut diffs);
                labels
            }
            Err(e) => {
                diffs.push(e);
                expected
            }
        };
        let of_file: Vec<Option<u64>> = found
            .iter()
            .zip(scans)
            .map(|(l, s)| {
                let l = l.as_ref()?;
                let k = labels.iter().position(|x| x.same(l));
                if k.is_none() {
                    diffs.push(format!(
                        "{}: its value {}={l} is not in the store's coordinate '{}'",
                        s.path.display(),
                        spec.name,
                        spec.name
                    ));
                }
                k.map(|k| k as u64)
            })
            .collect();
        Self {
            dim: spec.name.clone(),
            stacked: stacked(scans, &of_file),
            paths: scans.iter().map(|s| s.path.display().to_string()).collect(),
            labels,
            of_file,
            allow_missing: opts.allow_missing,
            partial: opts.partial,
            diffs,
        }
    }

    /// Length of the dimension.
    pub(crate) fn count(&self) -> u64 {
        self.labels.len() as u64
    }

    /// The index of file `i` along the dimension.
    pub(crate) fn member(&self, i: usize) -> Option<u64> {
        self.of_file.get(i).copied().flatten()
    }

    /// Whether source variable `path` is stacked along the dimension.
    pub(crate) fn stacks(&self, path: &str) -> bool {
        self.stacked.contains(path)
    }

    /// The files of each member (members without files left out).
    pub(crate) fn groups(&self) -> Vec<Vec<usize>> {
        (0..self.count())
            .map(|m| {
                (0..self.of_file.len())
                    .filter(|&i| self.of_file[i] == Some(m))
                    .collect::<Vec<_>>()
            })
            .filter(|g| !g.is_empty())
            .collect()
    }

    /// The pieces of a stacked variable: `pieces` of each member's holders
    /// (in the order of `holders`), marked with the member.
    pub(crate) fn spread(
        &self,
        holders: &[usize],
        mut pieces: impl FnMut(&[usize]) -> Vec<Piece>,
    ) -> Vec<Piece> {
        let mut out = Vec::new();
        for m in 0..self.count() {
            let mine: Vec<usize> = holders
                .iter()
                .copied()
                .filter(|&i| self.member(i) == Some(m))
                .collect();
            if !mine.is_empty() {
                out.extend(pieces(&mine).into_iter().map(|p| Piece {
                    member: Some(m),
                    ..p
                }));
            }
        }
        out
    }

    fn cell(&self, m: u64) -> String {
        let label = self
            .labels
            .get(usize::try_from(m).unwrap_or(usize::MAX))
            .map_or_else(|| m.to_string(), Label::to_string);
        format!("{}={label}", self.dim)
    }

    /// The cells of stacked variable `v` (store array `owner`, type `t`)
    /// that no piece holds: per member, the store indices along the
    /// concatenation axis (`along`: its name and length) no file of the
    /// member covers, or the whole member without an axis. They must read
    /// as the fill value; without `--allow-missing` each is also a
    /// difference, as is a piece beyond the axis. An append (the sources
    /// are part of the store) has no such cells.
    pub(crate) fn stack(
        &self,
        owner: &str,
        v: &SrcVar,
        t: NcType,
        pieces: &[Piece],
        along: Option<(&str, u64)>,
        diffs: &mut Vec<String>,
    ) -> Stack {
        let mut gaps = Vec::new();
        for m in 0..self.count() {
            let mine = pieces.iter().filter(|p| p.member == Some(m));
            let Some((d, n)) = along else {
                if !self.partial && mine.count() == 0 {
                    gaps.push(Gap::new(self.cell(m), m, 0, 0));
                }
                continue;
            };
            for p in mine.clone().filter(|p| p.at + p.len > n) {
                diffs.push(format!(
                    "{owner}: {} ({}) has {} step(s) for store indices {}..{} along '{d}', beyond its length {n}",
                    self.paths.get(p.file).map_or("?", String::as_str),
                    self.cell(m),
                    p.len,
                    p.at,
                    p.at + p.len
                ));
            }
            if self.partial {
                continue;
            }
            let spans = mine.map(|p| (p.at, p.at + p.len)).collect();
            for (a, b) in uncovered(spans, n) {
                gaps.push(Gap::new(self.cell(m), m, a, b - a));
            }
        }
        if !self.allow_missing {
            diffs.extend(gaps.iter().map(|g| match along {
                Some((d, _)) => format!(
                    "{owner}: {}: store indices {}..{} along '{d}' come from no source file (a store converted with --allow-missing is verified with --allow-missing)",
                    g.cell,
                    g.at,
                    g.at + g.len
                ),
                None => format!(
                    "{owner}: {}: no source file holds it (a store converted with --allow-missing is verified with --allow-missing)",
                    g.cell
                ),
            }));
        }
        Stack {
            gaps,
            fills: fills(v, t),
        }
    }
}

/// The store's coordinate of the new dimension, checked against the files.
struct Coordinate<'a> {
    spec: &'a NewDim,
    opts: &'a Options,
    /// Its values.
    labels: &'a [Label],
    /// Every file's value is an integer.
    ints: bool,
}

impl Coordinate<'_> {
    /// Dimensions, type, values (each once, each with a file unless
    /// `--allow-missing`, in the expected order) and attributes.
    fn check(
        &self,
        tree: &StoreTree,
        found: &[Option<Label>],
        expected: &[Label],
        diffs: &mut Vec<String>,
    ) {
        let name = &self.spec.name;
        let labels = self.labels;
        if let Some(a) = tree.array(name) {
            if a.dims.as_deref() != Some(std::slice::from_ref(name)) {
                diffs.push(format!(
                    "'{name}': dimensions {:?} in the store, [{name:?}] expected",
                    a.dims.clone().unwrap_or_default()
                ));
            }
            diffs.extend(
                a.attrs
                    .iter()
                    .filter(|(k, _)| !OWN_ATTRS.contains(&k.as_str()))
                    .map(|(k, v)| {
                        format!(
                            "'{name}' attribute '{k}' is only in the store ({})",
                            json::show(v)
                        )
                    }),
            );
        }
        let store_ints = labels.iter().all(|l| matches!(l, Label::Int(_)));
        if !labels.is_empty() && store_ints != self.ints {
            let kind = |ints: bool| if ints { "int64" } else { "strings" };
            diffs.push(format!(
                "'{name}': {} in the store, {} expected (the files' values are {})",
                kind(store_ints),
                kind(self.ints),
                if self.ints {
                    "integers"
                } else {
                    "not all integers"
                }
            ));
        }
        for (k, l) in labels.iter().enumerate() {
            if labels[..k].iter().any(|x| x.same(l)) {
                diffs.push(format!("'{name}' holds {l} more than once"));
            }
        }
        if self.opts.partial {
            return;
        }
        if !self.opts.allow_missing {
            diffs.extend(
                labels
                    .iter()
                    .filter(|l| !found.iter().flatten().any(|f| f.same(l)))
                    .map(|l| {
                        format!(
                            "'{name}' holds {l}, which no source file has (a store converted with --allow-missing is verified with --allow-missing)"
                        )
                    }),
            );
        }
        let same_set = labels.len() == expected.len()
            && labels.iter().all(|l| expected.iter().any(|x| x.same(l)));
        if same_set && !labels.iter().zip(expected).all(|(a, b)| a.same(b)) {
            let show = |v: &[Label]| v.iter().map(Label::to_string).collect::<Vec<_>>().join(",");
            diffs.push(format!(
                "'{name}' holds {} in the store; the order expected is {} ({})",
                show(labels),
                show(expected),
                if self.spec.order.is_empty() {
                    "natural order"
                } else {
                    "--new-dim-order"
                }
            ));
        }
    }
}

/// The values in their expected order: `--new-dim-order`, else the files'
/// values in natural order.
fn expected_order(found: &[Option<Label>], spec: &NewDim, ints: bool) -> Vec<Label> {
    if !spec.order.is_empty() {
        return spec
            .order
            .iter()
            .map(|s| Label::Text(s.clone()).kind(ints))
            .collect();
    }
    let mut out: Vec<Label> = Vec::new();
    for l in found.iter().flatten() {
        if !out.contains(l) {
            out.push(l.clone());
        }
    }
    out.sort_by(natural_labels);
    out
}

fn leaf(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The variables of the files in the store that are stacked: all but the
/// dimension coordinates and the variables named by a sharing attribute.
fn stacked(scans: &[FileScan], of_file: &[Option<u64>]) -> BTreeSet<String> {
    let vars = || {
        scans
            .iter()
            .zip(of_file)
            .filter(|(_, m)| m.is_some())
            .flat_map(|(s, _)| &s.vars)
    };
    let mut shared: BTreeSet<&str> = BTreeSet::new();
    for v in vars() {
        let name = leaf(&v.path);
        if v.dims.len() == 1 && v.dims[0] == name {
            shared.insert(name);
        }
        for a in SHARING_ATTRS {
            if let Some(t) = v.attr(a).and_then(NcAttr::text) {
                shared.extend(
                    t.split(|c: char| c.is_whitespace() || c == ':')
                        .filter(|s| !s.is_empty()),
                );
            }
        }
    }
    vars()
        .filter(|v| !shared.contains(leaf(&v.path)) && !shared.contains(v.path.as_str()))
        .map(|v| v.path.clone())
        .collect()
}

/// The ranges of `0..n` that no span covers.
fn uncovered(mut spans: Vec<(u64, u64)>, n: u64) -> Vec<(u64, u64)> {
    spans.sort_unstable();
    let mut out = Vec::new();
    let mut covered = 0u64;
    for (a, b) in spans {
        if a > covered {
            out.push((covered, a.min(n)));
        }
        covered = covered.max(b);
    }
    if covered < n {
        out.push((covered, n));
    }
    out.retain(|(a, b)| a < b);
    out
}

/// The values a cell no file holds may read as (little-endian bytes; the
/// text of a string): the variable's `_FillValue`, else netCDF's default
/// fill of its type.
fn fills(v: &SrcVar, t: NcType) -> Vec<Vec<u8>> {
    use netcdf_sys as s;
    let declared = v.attr("_FillValue");
    if t == NcType::Str {
        return vec![declared
            .and_then(NcAttr::text)
            .unwrap_or_default()
            .as_bytes()
            .to_vec()];
    }
    if let Some(b) = declared.and_then(|a| json::src_fill(a, t)) {
        return vec![b];
    }
    vec![match t {
        NcType::I8 => s::NC_FILL_BYTE.to_le_bytes().to_vec(),
        NcType::U8 => vec![s::NC_FILL_UBYTE],
        NcType::Char => vec![s::NC_FILL_CHAR],
        NcType::I16 => s::NC_FILL_SHORT.to_le_bytes().to_vec(),
        NcType::U16 => s::NC_FILL_USHORT.to_le_bytes().to_vec(),
        NcType::I32 => s::NC_FILL_INT.to_le_bytes().to_vec(),
        NcType::U32 => s::NC_FILL_UINT.to_le_bytes().to_vec(),
        NcType::I64 => s::NC_FILL_INT64.to_le_bytes().to_vec(),
        NcType::U64 => s::NC_FILL_UINT64.to_le_bytes().to_vec(),
        NcType::F32 => s::NC_FILL_FLOAT.to_le_bytes().to_vec(),
        NcType::F64 => s::NC_FILL_DOUBLE.to_le_bytes().to_vec(),
        NcType::Str => Vec::new(),
    }]
}

/// The part of a block of a store array that one piece of values (or one
/// gap) covers: along the new dimension (a stacked array's first) its
/// member's index, along the concatenation axis its steps, the whole block
/// along the other dimensions.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Region {
    /// Start in store indices.
    pub(crate) start: Vec<u64>,
    /// Shape.
    pub(crate) count: Vec<u64>,
    /// Start in the source variable (the new dimension left out).
    pub(crate) src_start: Vec<u64>,
    /// Shape in the source variable.
    pub(crate) src_count: Vec<u64>,
    /// Offset in the block of its member's first element.
    base: u64,
    /// Along the axis: elements per step (the block's dimensions after
    /// it), the part's steps, its first step's offset in the block, the
    /// block's steps.
    axis: Option<(u64, u64, u64, u64)>,
}

impl Region {
    /// The part of the block `start`/`count` that holds index `member`
    /// along the new dimension (a stacked array) and store indices
    /// `at..at + len` along axis `k`, the source's steps `from..from + len`
    /// (`span`: `(k, at, len, from)`), if any.
    pub(crate) fn new(
        start: &[u64],
        count: &[u64],
        member: Option<u64>,
        span: Option<(usize, u64, u64, u64)>,
    ) -> Option<Self> {
        let (mut s, mut c, mut src) = (start.to_vec(), count.to_vec(), start.to_vec());
        let mut base = 0;
        if let Some(m) = member {
            let (&s0, &c0) = (start.first()?, count.first()?);
            if m < s0 || m >= s0 + c0 {
                return None;
            }
            base = (m - s0) * count[1..].iter().product::<u64>();
            (s[0], c[0]) = (m, 1);
        }
        let mut axis = None;
        if let Some((k, at, len, from)) = span {
            let lo = start[k].max(at);
            let hi = (start[k] + count[k]).min(at + len);
            if lo >= hi {
                return None;
            }
            let inner = count[k + 1..].iter().product::<u64>();
            axis = Some((inner, hi - lo, lo - start[k], count[k]));
            (s[k], c[k], src[k]) = (lo, hi - lo, lo - at + from);
        }
        let lead = usize::from(member.is_some());
        Some(Self {
            src_count: c[lead..].to_vec(),
            src_start: src.split_off(lead),
            start: s,
            count: c,
            base,
            axis,
        })
    }

    /// Elements.
    pub(crate) fn len(&self) -> u64 {
        self.count.iter().product()
    }

    /// The block's element (row-major index) that is the part's element
    /// `j`.
    pub(crate) fn at(&self, j: u64) -> usize {
        let Some((inner, kc, ks, kn)) = self.axis else {
            return to_usize(self.base + j);
        };
        let (outer, rest) = (j / (kc * inner), j % (kc * inner));
        let (a, i) = (rest / inner, rest % inner);
        to_usize(self.base + (outer * kn + ks + a) * inner + i)
    }
}

fn to_usize(x: u64) -> usize {
    usize::try_from(x).unwrap_or(usize::MAX)
}

/// The cells of a block of `job`'s array (`stored`, decoded from
/// `start`/`count`) that no source file holds, each compared with the fill
/// values (the variable's, or `arr`'s `fill_value`).
pub(super) fn compare_gaps(
    job: &Job,
    arr: &Array<dyn ReadableStorageTraits>,
    stored: &Raw,
    start: &[u64],
    count: &[u64],
    tally: &mut Tally,
) {
    let Some(stack) = &job.stack else {
        return;
    };
    let t = job.dtype;
    let mut fills = stack.fills.clone();
    fills.push(arr.fill_value().as_ne_bytes().to_vec());
    for g in &stack.gaps {
        let Some(r) = Region::new(
            start,
            count,
            Some(g.member),
            job.axis.map(|k| (k, g.at, g.len, 0)),
        ) else {
            continue;
        };
        let n = r.len();
        tally.values += n;
        for j in 0..n {
            let jz = r.at(j);
            let ok = match stored {
                Raw::Fixed(z) => fills
                    .iter()
                    .any(|f| f.len() == t.size() && values::same_raw_at(t, f, 0, z, jz)),
                Raw::Strings(z) => fills.iter().any(|f| f.as_slice() == z[jz].as_bytes()),
            };
            if !ok {
                tally.note(|| {
                    let value = match stored {
                        Raw::Fixed(z) => values::show(t, z, jz),
                        Raw::Strings(z) => format!("{:?}", z[jz]),
                    };
                    format!(
                        "{}{:?}: {}: no source file holds it; store {value}, not the fill value",
                        job.path,
                        values::element_index(&r.start, &r.count, j),
                        g.cell
                    )
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_order_naturally_and_integers_by_value() {
        let mut v = vec!["r10i1", "r2i1", "r1i1"];
        v.sort_by(|a, b| natural(a, b));
        assert_eq!(v, ["r1i1", "r2i1", "r10i1"]);
        assert_eq!(natural("r01", "r1"), Ordering::Greater);
        assert_eq!(Label::Text("12".into()).kind(true), Label::Int(12));
        assert_eq!(Label::Text("+1".into()).as_int(), None);
        assert!(Label::Int(3).same(&Label::Text("3".into())));
        assert_eq!(attr_label(&NcAttr::I32(vec![7])), Some(Label::Int(7)));
        assert_eq!(attr_label(&NcAttr::I32(vec![7, 8])), None);
        assert_eq!(attr_label(&NcAttr::F64(vec![7.0])), None);
        assert_eq!(
            attr_label(&NcAttr::Text(" r1 ".into())),
            Some(Label::Text("r1".into()))
        );
        assert_eq!(
            uncovered(vec![(10, 20), (0, 5)], 30),
            vec![(5, 10), (20, 30)]
        );
        assert_eq!(uncovered(vec![], 4), vec![(0, 4)]);
    }

    #[test]
    fn a_member_of_a_block_maps_to_its_elements() {
        // Block [2 members, 4 steps, 3]; member 1, steps 1..3 of the block.
        let r = Region::new(&[0, 10, 0], &[2, 4, 3], Some(1), Some((1, 11, 2, 0))).unwrap();
        assert_eq!(r.start, vec![1, 11, 0]);
        assert_eq!(r.count, vec![1, 2, 3]);
        assert_eq!(r.src_start, vec![0, 0]);
        assert_eq!(r.src_count, vec![2, 3]);
        assert_eq!(r.len(), 6);
        // Element 0 is block element [1, 1, 0]; element 5 is [1, 2, 2].
        assert_eq!(r.at(0), 12 + 3);
        assert_eq!(r.at(5), 12 + 2 * 3 + 2);
        assert!(Region::new(&[0, 0], &[1, 4], Some(1), None).is_none());
        assert!(Region::new(&[0, 0], &[2, 4], Some(0), Some((1, 4, 2, 0))).is_none());
        // Without the new dimension: as the axis alone places it.
        let r = Region::new(&[4, 0], &[4, 2], None, Some((0, 6, 10, 0))).unwrap();
        assert_eq!((r.src_start.clone(), r.at(0), r.at(3)), (vec![0, 0], 4, 7));
        // Part of a file (its steps from 3 on, at store index 6): the
        // block's steps 6.. are the file's 3...
        let r = Region::new(&[4, 0], &[4, 2], None, Some((0, 6, 10, 3))).unwrap();
        assert_eq!(
            (r.src_start.clone(), r.src_count.clone()),
            (vec![3, 0], vec![2, 2])
        );
        let r = Region::new(&[8, 0], &[4, 2], None, Some((0, 6, 3, 3))).unwrap();
        assert_eq!(
            (r.src_start.clone(), r.count.clone(), r.at(0)),
            (vec![5, 0], vec![1, 2], 0)
        );
    }
}
