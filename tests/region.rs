//! Backfills (`convert --region`): rewriting the steps of an existing store
//! that corrected inputs cover gives the bytes of converting the corrected
//! file set from scratch, whatever the rank count, the way the region is
//! named (auto, dates, numbers), the layout (chunks, shards, Zarr v2) and
//! the dataset (an ensemble), also across simulated nodes; nothing outside
//! the region is rewritten. Each refusal is one line naming what differs,
//! the same non-zero status on every rank, and the store's bytes as they
//! were. The run report and the state record the region.

// A test reads top to bottom as one scenario.
#![allow(clippy::too_many_lines)]

use std::collections::BTreeMap;
use std::ops::Range;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use netcdf::Extents;

use crate::common::*;
use crate::multifile::{assert_same_files, comparable};

/// Files of the original run, each of [`STEPS`] daily steps.
const FILES: usize = 4;
const STEPS: usize = 10;
const NLAT: usize = 3;
const NLON: usize = 4;
/// The steps the corrected inputs rewrite: an interior week whose first
/// and last chunks of 7 steps (7..14, 14..21) are only partly covered.
const FIXED: Range<usize> = 10..17;
const DAYS: &str = "days since 2000-01-01";
const HOURS: &str = "hours since 2000-01-01";
/// The members of the ensemble, in natural order.
const MEMBERS: [&str; 3] = ["r1i1p1f1", "r2i1p1f1", "r10i1p1f1"];
const BY_ATTR: &str = "member:variant_label";

/// One input file: steps `steps` (of days since 2000-01-01, at midnight),
/// the values of the steps in `fixed` corrected; the other fields are the
/// ways an input can differ from the store.
#[derive(Clone)]
struct Input {
    steps: Range<usize>,
    fixed: Range<usize>,
    /// Units of `time`; values are written in them.
    units: &'static str,
    calendar: &'static str,
    /// `tas` as double instead of float.
    tas_f64: bool,
    /// `_FillValue` of `tas`.
    fill: f32,
    /// `units` of `tas`.
    tas_units: &'static str,
    /// `tas` with dimensions (time, lon, lat).
    swapped: bool,
    /// `scale_factor` and `add_offset` of `pr`.
    packing: (f32, f32),
    /// Whether `pr` is written.
    pr: bool,
    /// A variable `extra(time, lat, lon)` the store does not have.
    extra: bool,
    /// One step (index in the file) moved by this many days.
    shift: Option<(usize, f64)>,
    /// Index into [`MEMBERS`]: the `variant_label` global attribute.
    member: Option<usize>,
}

impl Input {
    fn new(steps: Range<usize>) -> Self {
        Self {
            steps,
            fixed: 0..0,
            units: DAYS,
            calendar: "noleap",
            tas_f64: false,
            fill: 1e20,
            tas_units: "K",
            swapped: false,
            packing: (0.01, 0.0),
            pr: true,
            extra: false,
            shift: None,
            member: None,
        }
    }

    /// The corrected version of the file: its steps in [`FIXED`] changed.
    fn fixed(mut self) -> Self {
        self.fixed = FIXED;
        self
    }
}

/// `tas` at step `t`, point `(j, k)`: distinct and exact in f32; the
/// corrected values 1000 higher, each member's 100 higher than the
/// previous one's.
fn tas(e: &Input, t: usize, j: usize, k: usize) -> f32 {
    let fix = if e.fixed.contains(&t) { 1000.0 } else { 0.0 };
    let m = e.member.unwrap_or(0) as f32 * 100.0;
    250.0 + t as f32 + fix + m + 0.25 * j as f32 + 0.125 * k as f32
}

/// The stored (packed) `pr` at step `t`, point `(j, k)`.
fn pr(e: &Input, t: usize, j: usize, k: usize) -> i16 {
    let fix = if e.fixed.contains(&t) { 500 } else { 0 };
    (3 * t + fix + 10 * e.member.unwrap_or(0) + j * NLON + k) as i16
}

fn write(path: &Path, e: &Input) {
    let mut f = netcdf::create(path).unwrap();
    f.add_attribute("title", "backfill test").unwrap();
    if let Some(m) = e.member {
        f.add_attribute("variant_label", MEMBERS[m]).unwrap();
    }
    f.add_unlimited_dimension("time").unwrap();
    f.add_dimension("lat", NLAT).unwrap();
    f.add_dimension("lon", NLON).unwrap();
    let n = e.steps.len();
    {
        let per = if e.units.starts_with("hours") {
            24.0
        } else {
            1.0
        };
        let mut v = f.add_variable::<f64>("time", &["time"]).unwrap();
        v.put_attribute("units", e.units).unwrap();
        v.put_attribute("calendar", e.calendar).unwrap();
        let d: Vec<f64> = e
            .steps
            .clone()
            .enumerate()
            .map(|(i, t)| {
                let x = t as f64 + e.shift.filter(|s| s.0 == i).map_or(0.0, |s| s.1);
                x * per
            })
            .collect();
        v.put_values(&d, Extents::from(0..n)).unwrap();
    }
    for (name, len, step) in [("lat", NLAT, 10.0), ("lon", NLON, 90.0)] {
        let mut v = f.add_variable::<f32>(name, &[name]).unwrap();
        let d: Vec<f32> = (0..len).map(|i| i as f32 * step).collect();
        v.put_values(&d, Extents::from(0..len)).unwrap();
    }
    {
        let (dims, shape) = if e.swapped {
            (["time", "lon", "lat"], [n, NLON, NLAT])
        } else {
            (["time", "lat", "lon"], [n, NLAT, NLON])
        };
        let values: Vec<f32> = e
            .steps
            .clone()
            .flat_map(|t| (0..shape[1] * shape[2]).map(move |c| (t, c / shape[2], c % shape[2])))
            .map(|(t, a, b)| {
                if e.swapped {
                    tas(e, t, b, a)
                } else {
                    tas(e, t, a, b)
                }
            })
            .collect();
        let ext = Extents::from([0..shape[0], 0..shape[1], 0..shape[2]]);
        if e.tas_f64 {
            let mut v = f.add_variable::<f64>("tas", &dims).unwrap();
            v.set_fill_value(f64::from(e.fill)).unwrap();
            v.put_attribute("units", e.tas_units).unwrap();
            let d: Vec<f64> = values.iter().map(|x| f64::from(*x)).collect();
            v.put_values(&d, ext).unwrap();
        } else {
            let mut v = f.add_variable::<f32>("tas", &dims).unwrap();
            v.set_chunking(&[5, shape[1], shape[2]]).unwrap();
            v.set_compression(4, true).unwrap();
            v.set_fill_value(e.fill).unwrap();
            v.put_attribute("units", e.tas_units).unwrap();
            v.put_values(&values, ext).unwrap();
        }
    }
    let grid = Extents::from([0..n, 0..NLAT, 0..NLON]);
    if e.pr {
        let mut v = f
            .add_variable::<i16>("pr", &["time", "lat", "lon"])
            .unwrap();
        v.set_fill_value(-32767i16).unwrap();
        v.put_attribute("scale_factor", e.packing.0).unwrap();
        v.put_attribute("add_offset", e.packing.1).unwrap();
        v.put_attribute("units", "kg m-2 s-1").unwrap();
        let d: Vec<i16> = e
            .steps
            .clone()
            .flat_map(|t| (0..NLAT * NLON).map(move |c| pr(e, t, c / NLON, c % NLON)))
            .collect();
        v.put_values(&d, grid.clone()).unwrap();
    }
    if e.extra {
        let mut v = f
            .add_variable::<f32>("extra", &["time", "lat", "lon"])
            .unwrap();
        v.put_values(&vec![1.0f32; n * NLAT * NLON], grid).unwrap();
    }
    {
        let mut v = f.add_variable::<f32>("orog", &["lat", "lon"]).unwrap();
        v.put_attribute("units", "m").unwrap();
        let d: Vec<f32> = (0..NLAT * NLON)
            .map(|c| (c + 1000 * e.member.unwrap_or(0)) as f32)
            .collect();
        v.put_values(&d, Extents::from([0..NLAT, 0..NLON])).unwrap();
    }
    f.close().unwrap();
}

/// The inputs of one test under `dir`: `orig/` (the original run: [`FILES`]
/// files of [`STEPS`] steps), `full/` (the same with the steps of [`FIXED`]
/// corrected) and `fix/fix.nc` (only those steps, corrected, in hours).
/// With `members`, every file once per member (a `variant_label` each).
struct Inputs {
    orig: String,
    full: String,
    fix: String,
}

fn inputs(dir: &Path, members: bool) -> Inputs {
    for d in ["orig", "full", "fix"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    let files = if members { 2 } else { FILES };
    let member_list: Vec<Option<usize>> = if members {
        (0..MEMBERS.len()).map(Some).collect()
    } else {
        vec![None]
    };
    for m in member_list {
        let tag = m.map_or(String::new(), |m| format!("{}_", MEMBERS[m]));
        for y in 0..files {
            let mut e = Input::new(y * STEPS..(y + 1) * STEPS);
            e.member = m;
            write(&dir.join(format!("orig/{tag}{y}.nc")), &e);
            write(&dir.join(format!("full/{tag}{y}.nc")), &e.fixed());
        }
        let mut fix = Input::new(FIXED).fixed();
        fix.units = HOURS;
        fix.member = m;
        write(&dir.join(format!("fix/{tag}fix.nc")), &fix);
    }
    let glob = |d: &str| format!("{}/{d}/*.nc", dir.display());
    Inputs {
        orig: glob("orig"),
        full: glob("full"),
        fix: glob("fix"),
    }
}

/// The arguments of `parts`, one after the other.
fn cat<'a>(parts: &[&[&'a str]]) -> Vec<&'a str> {
    parts.concat()
}

/// `convert --quiet -o OUT EXTRA INPUT` on `ranks`, which must succeed;
/// returns its standard error.
fn convert(ranks: Option<usize>, out: &Path, input: &str, extra: &[&str]) -> String {
    let mut args = vec!["convert", "--quiet", "-o", s(out)];
    args.extend(extra);
    args.push(input);
    let r = zarrforge(ranks, &args, MINUTE);
    assert!(r.ok(), "{ranks:?} {extra:?}: {}", r.stderr);
    r.stderr
}

/// Replaces `dst` by a copy of the store `src`.
fn copy_store(src: &Path, dst: &Path) {
    let _ = std::fs::remove_dir_all(dst);
    let st = Command::new("cp")
        .arg("-a")
        .arg(src)
        .arg(dst)
        .status()
        .unwrap();
    assert!(st.success());
}

/// The inode of every file of a store, by relative path: a file written
/// again (zarrforge writes a file beside it and renames it into place)
/// gets a new one.
fn inodes(store: &Path) -> BTreeMap<PathBuf, u64> {
    snapshot(store)
        .into_iter()
        .map(|(p, _)| {
            let ino = std::fs::metadata(store.join(&p)).unwrap().ino();
            (p, ino)
        })
        .collect()
}

/// The chunk or shard files written again between `before` and `after`,
/// without the metadata documents and zarrforge's state.
fn rewritten(before: &BTreeMap<PathBuf, u64>, after: &BTreeMap<PathBuf, u64>) -> Vec<String> {
    after
        .iter()
        .filter(|(p, ino)| before.get(*p) != Some(*ino))
        .map(|(p, _)| p.to_string_lossy().into_owned())
        .filter(|p| {
            let name = p.rsplit('/').next().unwrap();
            !p.starts_with(".zarrforge") && name != "zarr.json" && !name.starts_with(".z")
        })
        .collect()
}

/// A layout to test a backfill in: its flags, and the chunk or shard
/// files along time that the region [`FIXED`] touches (the others must
/// not be written again).
struct Layout {
    label: &'static str,
    flags: &'static [&'static str],
    touched: &'static [&'static str],
}

const CHUNKS: Layout = Layout {
    label: "v3 chunks",
    flags: &["--chunks", "time=7"],
    touched: &[
        "pr/c/1/0/0",
        "pr/c/2/0/0",
        "tas/c/1/0/0",
        "tas/c/2/0/0",
        "time/c/0",
    ],
};

const SHARDS: Layout = Layout {
    label: "v3 shards",
    flags: &["--chunks", "time=7", "--shards", "time=14"],
    touched: &[
        "pr/c/0/0/0",
        "pr/c/1/0/0",
        "tas/c/0/0/0",
        "tas/c/1/0/0",
        "time/c/0",
    ],
};

const V2: Layout = Layout {
    label: "v2 chunks",
    flags: &["--chunks", "time=7", "--zarr-format", "2"],
    touched: &["pr/1.0.0", "pr/2.0.0", "tas/1.0.0", "tas/2.0.0", "time/0"],
};

/// Ways to name the region [`FIXED`].
const AUTO: &[&str] = &["--region", "auto"];
const DATES: &[&str] = &["--region", "time=2000-01-11..2000-01-17"];
const NUMBERS: &[&str] = &["--region", "time=10..16"];

/// Converts the original files in `layout`, backfills a copy of that
/// store with `fix/` in each way of `runs` (rank count, region, more
/// flags), and compares each with the corrected set converted from
/// scratch, byte for byte; only the chunks along time that the region
/// touches are written again.
fn backfills_equal_a_fresh_conversion(layout: &Layout, runs: &[(Option<usize>, &[&str], &[&str])]) {
    let dir = tmp();
    let inp = inputs(dir.path(), false);
    let orig = dir.path().join("orig.zarr");
    convert(None, &orig, &inp.orig, layout.flags);
    let fresh = dir.path().join("fresh.zarr");
    convert(None, &fresh, &inp.full, layout.flags);
    let want = comparable(&fresh);
    assert!(
        comparable(&orig) != want,
        "{}: the corrected set converts to the same bytes as the original",
        layout.label
    );
    for (ranks, region, extra) in runs {
        let label = format!("{} {ranks:?} ranks {region:?} {extra:?}", layout.label);
        let out = dir.path().join("out.zarr");
        copy_store(&orig, &out);
        let before = inodes(&out);
        let mut flags = region.to_vec();
        flags.extend(*extra);
        let r = zarrforge(
            *ranks,
            &cat(&[&["convert", "-o", s(&out)], &flags, &[inp.fix.as_str()]]),
            MINUTE,
        );
        assert!(r.ok(), "{label}: {}", r.stderr);
        assert!(
            r.stderr
                .contains(&format!("rewrote time[10..17) of {}", out.display())),
            "{label}: {}",
            r.stderr
        );
        assert_same_files(&want, &comparable(&out), &label);
        let mut changed = rewritten(&before, &inodes(&out));
        changed.sort();
        for c in &changed {
            assert!(
                layout.touched.contains(&c.as_str()),
                "{label}: {c} was written again, outside the region (rewritten: {changed:?})"
            );
        }
        // The check above sees rewrites: the region's units were written.
        assert!(
            changed.iter().any(|c| c.starts_with("tas/")),
            "{label}: no tas unit written: {changed:?}"
        );
    }
}

#[test]
fn a_backfill_in_chunks_equals_converting_the_corrected_files() {
    backfills_equal_a_fresh_conversion(
        &CHUNKS,
        &[
            (None, AUTO, &[]),
            (Some(2), AUTO, &[]),
            (Some(3), AUTO, &[]),
            (None, DATES, &[]),
            (Some(2), DATES, &[]),
            (Some(3), DATES, &[]),
            (Some(1), NUMBERS, &[]),
            // The store's own layout, given again, is accepted.
            (None, AUTO, &["--chunks", "time=7"]),
            // Partial units are read back by their owner: never exchanged.
            (Some(2), AUTO, &["--exchange", "always"]),
        ],
    );
}

#[test]
fn a_backfill_in_shards_reads_back_its_partial_shards() {
    backfills_equal_a_fresh_conversion(
        &SHARDS,
        &[
            (None, AUTO, &[]),
            (Some(2), DATES, &[]),
            (Some(3), AUTO, &[]),
            (Some(3), NUMBERS, &["--exchange", "always"]),
        ],
    );
}

#[test]
fn a_backfill_of_a_zarr_v2_store() {
    backfills_equal_a_fresh_conversion(
        &V2,
        &[
            (None, AUTO, &[]),
            (Some(2), DATES, &[]),
            (Some(3), AUTO, &[]),
        ],
    );
}

#[test]
fn an_ensemble_is_backfilled_for_every_member() {
    let dir = tmp();
    let inp = inputs(dir.path(), true);
    let layout = ["--chunks", "time=7", "--new-dim", BY_ATTR];
    let orig = dir.path().join("orig.zarr");
    convert(None, &orig, &inp.orig, &layout);
    let fresh = dir.path().join("fresh.zarr");
    convert(None, &fresh, &inp.full, &layout);
    let want = comparable(&fresh);
    assert!(comparable(&orig) != want);
    let out = dir.path().join("out.zarr");
    for (ranks, region) in [(None, AUTO), (Some(3), DATES), (Some(2), AUTO)] {
        copy_store(&orig, &out);
        let args = cat(&[
            &["convert", "--quiet", "--new-dim", BY_ATTR, "-o", s(&out)],
            region,
            &[inp.fix.as_str()],
        ]);
        let r = zarrforge(ranks, &args, MINUTE);
        assert!(r.ok(), "{ranks:?} {region:?}: {}", r.stderr);
        assert_same_files(&want, &comparable(&out), &format!("{ranks:?} {region:?}"));
    }
    // Inputs for two of the three members: refused, the store untouched.
    let two = dir.path().join("two");
    std::fs::create_dir_all(&two).unwrap();
    for m in 0..2 {
        let name = format!("{}_fix.nc", MEMBERS[m]);
        std::fs::copy(dir.path().join("fix").join(&name), two.join(&name)).unwrap();
    }
    copy_store(&orig, &out);
    refused(
        &out,
        &[
            "--new-dim",
            BY_ATTR,
            "--region",
            "auto",
            &format!("{}/*.nc", two.display()),
        ],
        5,
        &["r1i1p1f1, r2i1p1f1", "not r10i1p1f1"],
    );
    // Not with --allow-missing either: the member without inputs would
    // read as the fill value in the region.
    refused(
        &out,
        &[
            "--new-dim",
            BY_ATTR,
            "--allow-missing",
            "--new-dim-order",
            "r1i1p1f1,r2i1p1f1,r10i1p1f1",
            "--region",
            "auto",
            &format!("{}/*.nc", two.display()),
        ],
        5,
        &[
            "member=r10i1p1f1 has no input",
            "a region is rewritten for every member",
        ],
    );
}

/// `convert --quiet -o OUT ARGS` must be refused with exit `code`, as a
/// singleton and on 3 ranks (each rank with that status), with one error
/// line holding every `want` (and, for a refusal of the store, starting
/// `cannot rewrite a region of OUT: `), and leave every byte of `out` (or
/// its absence) as it was. Returns the line.
fn refused(out: &Path, args: &[&str], code: i32, want: &[&str]) -> String {
    let mut full = vec!["convert", "--quiet", "-o", s(out)];
    full.extend_from_slice(args);
    let before = out.exists().then(|| snapshot(out));
    let r = zarrforge(None, &full, MINUTE);
    assert_eq!(r.code, Some(code), "{args:?}: {}", r.stderr);
    let lines = error_lines(&r.stderr);
    // clap's usage errors are its own lines ("error: ..."), not zarrforge's.
    let line = if lines.is_empty() && code == 2 {
        r.stderr.lines().next().unwrap_or_default().to_string()
    } else {
        assert_eq!(lines.len(), 1, "{args:?}: not one error line: {}", r.stderr);
        lines[0].to_string()
    };
    for w in want {
        assert!(line.contains(w), "{args:?}: {w:?} not in: {line}");
    }
    if code == 5 {
        let head = format!(
            "zarrforge: error: [rank 0] cannot rewrite a region of {}: ",
            out.display()
        );
        assert!(line.starts_with(&head), "{args:?}: {line}");
    }
    let same = |what: &str| match &before {
        Some(b) => assert!(
            snapshot(out) == *b,
            "{args:?} ({what}): the store's bytes changed"
        ),
        None => assert!(!out.exists(), "{args:?} ({what}): output created"),
    };
    same("1 rank");
    let (stderr, codes) = per_rank(3, &full);
    assert_eq!(codes, vec![code; 3], "{args:?} on 3 ranks: {stderr}");
    if lines.is_empty() {
        // clap's line, printed by every rank.
        assert!(stderr.contains(&line), "{args:?} on 3 ranks: {stderr}");
    } else {
        let lines3 = error_lines(&stderr);
        assert_eq!(lines3.len(), 1, "{args:?} on 3 ranks: {stderr}");
        // The rank tag aside, the same line as the singleton's.
        assert_eq!(
            lines3[0].replace("[rank 0] ", ""),
            line.replace("[rank 0] ", ""),
            "{args:?}: 3 ranks"
        );
    }
    same("3 ranks");
    line
}

#[test]
fn refusals_name_what_differs_on_every_rank_and_leave_the_store_alone() {
    let dir = tmp();
    let inp = inputs(dir.path(), false);
    let out = dir.path().join("store.zarr");
    convert(None, &out, &inp.orig, &["--chunks", "time=7"]);
    let bad = dir.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    let make = |name: &str, tweak: &dyn Fn(&mut Input)| -> String {
        let mut e = Input::new(FIXED).fixed();
        tweak(&mut e);
        let p = bad.join(name);
        write(&p, &e);
        p.to_str().unwrap().to_string()
    };
    let auto = |file: &str| vec!["--region".to_string(), "auto".to_string(), file.to_string()];
    let cases: Vec<(&str, Vec<String>, i32, Vec<&str>)> = vec![
        (
            "a coordinate value differs",
            auto(&make("shift.nc", &|e| e.shift = Some((3, 0.25)))),
            5,
            vec![
                "the coordinate values differ at index 13 of 'time'",
                "the store has 13, the inputs 13.25",
                DAYS,
            ],
        ),
        (
            "the inputs run past the store's end",
            auto(&make("past.nc", &|e| e.steps = 36..43)),
            5,
            vec![
                "the inputs run past the store's end",
                "index 40 of 'time'",
                "value 40",
                "has 40 steps",
                "--append",
            ],
        ),
        (
            "the first value is not the store's (other time units)",
            auto(&make("epoch.nc", &|e| e.units = "days since 1999-12-01")),
            5,
            vec!["the inputs' first 'time' value -21", "0 to 39"],
        ),
        (
            "dimensions in another order",
            auto(&make("swapped.nc", &|e| e.swapped = true)),
            5,
            vec![
                "variable 'tas'",
                "swapped.nc",
                r#"["time", "lat", "lon"] in the store, ["time", "lon", "lat"]"#,
            ],
        ),
        (
            "a variable the store does not have",
            auto(&make("extra.nc", &|e| e.extra = true)),
            5,
            vec!["variable 'extra'", "extra.nc", "is not in the store"],
        ),
        (
            "a variable along time missing from the inputs",
            auto(&make("nopr.nc", &|e| e.pr = false)),
            5,
            vec!["variable 'pr' is missing from the new files"],
        ),
        (
            "another type",
            auto(&make("double.nc", &|e| e.tas_f64 = true)),
            5,
            vec![
                "variable 'tas'",
                "double.nc",
                "type float in the store, double",
            ],
        ),
        (
            "another fill value",
            auto(&make("fill.nc", &|e| e.fill = -999.0)),
            5,
            vec!["variable 'tas'", "'_FillValue' is 1e20 in the store, -999"],
        ),
        (
            "another scale_factor",
            auto(&make("scale.nc", &|e| e.packing.0 = 0.1)),
            5,
            vec!["variable 'pr'", "'scale_factor' is 0.01 in the store, 0.1"],
        ),
        (
            "another add_offset",
            auto(&make("offset.nc", &|e| e.packing.1 = 1.0)),
            5,
            vec!["variable 'pr'", "'add_offset' is 0.0 in the store, 1.0"],
        ),
        (
            "other units",
            auto(&make("units.nc", &|e| e.tas_units = "degC")),
            5,
            vec!["variable 'tas'", r#"'units' is "K" in the store, "degC""#],
        ),
        (
            "another calendar",
            auto(&make("calendar.nc", &|e| e.calendar = "360_day")),
            5,
            vec!["calendar of 'time': store 'noleap', new files '360_day'"],
        ),
    ];
    let fix = inp.fix.clone();
    let range = |r: &str| vec!["--region".to_string(), r.to_string(), fix.clone()];
    let more: Vec<(&str, Vec<String>, i32, Vec<&str>)> = vec![
        (
            "a range of more steps than the inputs",
            range("time=2000-01-11..2000-01-18"),
            5,
            vec![
                "--region time=2000-01-11..2000-01-18 holds 8 steps of the store (indices 10..18), the inputs 7",
            ],
        ),
        (
            "a range outside the store",
            range("time=2001-01-01..2001-01-07"),
            5,
            vec!["no step of 'time' lies from 2001-01-01 to 2001-01-07"],
        ),
        (
            "a range along another dimension",
            range("lat=0..10"),
            5,
            vec!["--region names 'lat', the store is concatenated along 'time'"],
        ),
        (
            "a range that is not a value",
            range("time=2000-01-11..yesterday"),
            5,
            vec!["'yesterday' is neither a number nor a date"],
        ),
        (
            "with --append",
            [vec!["--append".to_string()], range("auto")].concat(),
            2,
            vec!["'--append' cannot be used with '--region"],
        ),
        (
            "with --overwrite",
            [vec!["--overwrite".to_string()], range("auto")].concat(),
            2,
            vec!["'--overwrite' cannot be used with '--region"],
        ),
        (
            "with --virtual",
            [vec!["--virtual".to_string()], range("auto")].concat(),
            2,
            vec!["--virtual does not rewrite regions"],
        ),
    ];
    for (what, args, code, want) in cases.iter().chain(&more) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let line = refused(&out, &args, *code, want);
        assert!(!line.contains('\n'), "{what}");
    }
    // No store at the output.
    refused(
        &dir.path().join("none.zarr"),
        &["--region", "auto", &inp.fix],
        5,
        &["there is no committed store there"],
    );
    // The refusals left nothing: the backfill still runs.
    convert(None, &out, &inp.fix, AUTO);
}

/// `--chunks` or `--shards` other than the store's layout are refused as a
/// region refusal (the line starts `cannot rewrite a region of STORE`).
#[test]
fn another_layout_is_refused_as_a_region_refusal() {
    let dir = tmp();
    let inp = inputs(dir.path(), false);
    let out = dir.path().join("store.zarr");
    convert(None, &out, &inp.orig, &["--chunks", "time=7"]);
    refused(
        &out,
        &["--region", "auto", "--chunks", "time=5", &inp.fix],
        5,
        &["--chunks asks time=5", "'tas' has time=7"],
    );
    refused(
        &out,
        &["--region", "auto", "--shards", "time=14", &inp.fix],
        5,
        &["--shards asks time=14", "no shards"],
    );
}

#[test]
fn the_report_and_the_state_record_the_region_and_a_second_run_changes_nothing() {
    let dir = tmp();
    let inp = inputs(dir.path(), false);
    let layout = ["--chunks", "time=7"];
    let fresh = dir.path().join("fresh.zarr");
    convert(None, &fresh, &inp.full, &layout);
    let out = dir.path().join("out.zarr");
    convert(None, &out, &inp.orig, &layout);
    let report = dir.path().join("report.json");
    let backfill = |ranks: Option<usize>, extra: &[&str]| {
        let args = cat(&[
            &[
                "convert",
                "-o",
                s(&out),
                "--region",
                "auto",
                "--report",
                s(&report),
            ],
            extra,
            &[inp.fix.as_str()],
        ]);
        let r = zarrforge(ranks, &args, MINUTE);
        assert!(r.ok(), "{ranks:?} {extra:?}: {}", r.stderr);
        r.stderr
    };
    let err = backfill(Some(2), &[]);
    assert!(err.contains("rewrote time[10..17) of"), "{err}");
    let rep = json(&report);
    assert_eq!(rep["region"], "time[10..17)", "{rep}");
    assert_eq!(rep["concat_len"], 40, "{rep}");
    assert_eq!(rep["ranks"], 2, "{rep}");
    // tas and pr: the two chunks each that hold steps 10..16; time: its one.
    assert_eq!(rep["units"], 5, "{rep}");
    assert_same_files(&comparable(&fresh), &comparable(&out), "first backfill");
    let state = || std::fs::read(out.join(".zarrforge/dataset.bin")).unwrap();
    let records = |bytes: &[u8]| {
        let needle = b"time[10..17) rewritten ";
        bytes.windows(needle.len()).filter(|w| w == needle).count()
    };
    assert_eq!(records(&state()), 1, "the state records the region once");
    let r = zarrforge(None, &["inspect", s(&out)], MINUTE);
    assert!(r.ok(), "inspect: {}", r.stderr);
    assert!(r.stdout.contains("committed"), "{}", r.stdout);
    assert!(r.stdout.contains("tas"), "{}", r.stdout);
    // The same backfill again (the very files of the last commit): done
    // already, the same bytes, one record.
    let err = backfill(Some(3), &[]);
    assert!(err.contains("already complete"), "{err}");
    assert_same_files(&comparable(&fresh), &comparable(&out), "second backfill");
    assert_eq!(records(&state()), 1, "the state records the region once");
    assert!(r.stdout.contains("region: time[10..17)"), "{}", r.stdout);
    // --resume of a finished backfill: success, nothing changed.
    let before = comparable(&out);
    backfill(None, &["--resume"]);
    assert_same_files(&before, &comparable(&out), "resume of a finished backfill");
    for left in [
        ".zarrforge/lock",
        ".zarrforge/journal",
        ".zarrforge/commit.bin",
    ] {
        assert!(!out.join(left).exists(), "{left} left behind");
    }
}

/// `--resume` of a backfill that committed (the documented recovery after a
/// kill at or after its commit decision) finishes it: the state records
/// the region once, as after a run that was not interrupted.
#[test]
fn resuming_a_committed_backfill_records_the_region_once() {
    let dir = tmp();
    let inp = inputs(dir.path(), false);
    let out = dir.path().join("out.zarr");
    convert(None, &out, &inp.orig, &["--chunks", "time=7"]);
    convert(Some(2), &out, &inp.fix, AUTO);
    let report = dir.path().join("report.json");
    let flags = ["--region", "auto", "--resume", "--report", s(&report)];
    convert(Some(2), &out, &inp.fix, &flags);
    let state = std::fs::read(out.join(".zarrforge/dataset.bin")).unwrap();
    let needle = b"time[10..17) rewritten ";
    let records = state.windows(needle.len()).filter(|w| w == needle).count();
    assert_eq!(records, 1, "the state records the region {records} times");
    assert_eq!(json(&report)["already_complete"], true);
}

/// The fakenodes launcher shipped with the tests (`tests/fakenodes`): Open
/// MPI sees distinct hosts and uses TCP between them.
fn fakenodes() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fakenodes/run.sh")
}

#[test]
fn a_backfill_on_two_simulated_nodes_gives_the_fresh_bytes() {
    // Off /tmp, the binary too: every simulated node has a private /tmp
    // (and the checkout may be under /tmp).
    let work = Path::new("/var/tmp").join(format!("zarrforge-region-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let bin = work.join("zarrforge");
    std::fs::copy(BIN, &bin).unwrap();
    // The launcher and its agent as well: the nodes' daemons call it.
    let launcher = work.join("fakenodes");
    std::fs::create_dir_all(&launcher).unwrap();
    for f in ["run.sh", "fake-ssh"] {
        std::fs::copy(fakenodes().with_file_name(f), launcher.join(f)).unwrap();
    }
    let inp = inputs(&work, false);
    let layout = ["--chunks", "time=7", "--shards", "time=14"];
    let fresh = work.join("fresh.zarr");
    convert(None, &fresh, &inp.full, &layout);
    let out = work.join("nodes.zarr");
    convert(None, &out, &inp.orig, &layout);
    let child = Command::new("bash")
        .arg(launcher.join("run.sh"))
        .args(["2", "2", "--", s(&bin), "convert", "--quiet"])
        .args(["--region", "time=2000-01-11..2000-01-17", "-o", s(&out)])
        .arg(&inp.fix)
        .current_dir(&work)
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (code, err) = wait_output(child, Duration::from_mins(3));
    assert!(code == Some(0), "fakenodes run: {err}");
    assert_same_files(&comparable(&fresh), &comparable(&out), "2 nodes x 2 ranks");
    let _ = std::fs::remove_dir_all(&work);
}

/// Waits for `child` at most `timeout` (killing it then: a hang) and returns
/// its exit code and its standard error.
fn wait_output(mut child: std::process::Child, timeout: Duration) -> (Option<i32>, String) {
    let err = child.stderr.take().unwrap();
    let t = std::thread::spawn(move || std::io::read_to_string(err).unwrap_or_default());
    let start = std::time::Instant::now();
    let code = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st.code();
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the fakenodes run did not finish in {timeout:?} (hang)");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (code, t.join().unwrap_or_default())
}
