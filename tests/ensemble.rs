//! Ensembles (`convert --new-dim`): members × yearly files into one store
//! with a new outermost dimension. The refusals (one line naming the member
//! and the file or step, non-zero on every rank, no store), `--allow-missing`
//! (the missing cells read as the fill value), identical stores at 1, 2 and
//! 3 ranks, and `recipe check`'s grid table.

// A test reads top to bottom as one scenario.
#![allow(clippy::too_many_lines)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use netcdf::Extents;

use crate::common::*;
use crate::multifile::{assert_same_files, comparable};

/// The members, in natural order (r2 before r10; in string order r10
/// would come second).
const MEMBERS: [&str; 3] = ["r1i1p1f1", "r2i1p1f1", "r10i1p1f1"];
/// Yearly files per member.
const YEARS: usize = 3;
/// Steps per file.
const STEPS: usize = 4;
const NLAT: usize = 2;
const NLON: usize = 3;
const FILL: f32 = 1e20;
const DAYS: &str = "days since 2000-01-01";

/// One file of the ensemble.
#[derive(Clone)]
struct EnsFile {
    /// Index into [`MEMBERS`].
    member: usize,
    /// Year index (its steps are `year * STEPS ..`).
    year: usize,
    /// Not written at all.
    skip: bool,
    /// The `variant_label` global attribute (`None`: absent).
    label: Option<String>,
    /// Units of `time`; values are written in them.
    units: &'static str,
    /// One step's time moved by this many days.
    shift: Option<(usize, f64)>,
    /// `units` of `tas`.
    tas_units: &'static str,
    /// Whether `orog` is written.
    orog: bool,
}

impl EnsFile {
    fn new(member: usize, year: usize) -> Self {
        Self {
            member,
            year,
            skip: false,
            label: Some(MEMBERS[member].to_string()),
            units: DAYS,
            shift: None,
            tas_units: "K",
            orog: true,
        }
    }

    /// CMIP-like: `tas_day_MODEL_historical_r1i1p1f1_gn_2000.nc`.
    fn name(&self) -> String {
        format!(
            "tas_day_MODEL_historical_{}_gn_{}.nc",
            MEMBERS[self.member],
            2000 + self.year
        )
    }
}

/// `tas` of member `m` at global step `t`, point `(j, k)`: every value
/// distinct and exact in f32.
fn tas(m: usize, t: usize, j: usize, k: usize) -> f32 {
    (200 + 100 * m + t) as f32 + 0.25 * j as f32 + 0.125 * k as f32
}

/// Time of global step `t` in days since 2000-01-01 (daily means at noon).
fn day(t: usize) -> f64 {
    t as f64 + 0.5
}

fn write_file(path: &Path, e: &EnsFile) {
    let mut f = netcdf::create(path).unwrap();
    f.add_attribute("title", "ensemble test").unwrap();
    if let Some(l) = &e.label {
        f.add_attribute("variant_label", l.as_str()).unwrap();
    }
    let realization: i32 = MEMBERS[e.member][1..]
        .split('i')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    f.add_attribute("realization_index", realization).unwrap();
    f.add_unlimited_dimension("time").unwrap();
    f.add_dimension("lat", NLAT).unwrap();
    f.add_dimension("lon", NLON).unwrap();
    let t0 = e.year * STEPS;
    {
        let per = if e.units.starts_with("hours") {
            24.0
        } else {
            1.0
        };
        let mut v = f.add_variable::<f64>("time", &["time"]).unwrap();
        v.put_attribute("units", e.units).unwrap();
        v.put_attribute("calendar", "noleap").unwrap();
        let d: Vec<f64> = (0..STEPS)
            .map(|i| {
                let x = day(t0 + i) + e.shift.filter(|s| s.0 == i).map_or(0.0, |s| s.1);
                x * per
            })
            .collect();
        v.put_values(&d, Extents::from(0..STEPS)).unwrap();
    }
    for (name, n) in [("lat", NLAT), ("lon", NLON)] {
        let mut v = f.add_variable::<f32>(name, &[name]).unwrap();
        let d: Vec<f32> = (0..n).map(|i| i as f32 * 10.0).collect();
        v.put_values(&d, Extents::from(0..n)).unwrap();
    }
    {
        let mut v = f
            .add_variable::<f32>("tas", &["time", "lat", "lon"])
            .unwrap();
        v.set_chunking(&[2, NLAT, NLON]).unwrap();
        v.set_compression(4, true).unwrap();
        v.set_fill_value(FILL).unwrap();
        v.put_attribute("units", e.tas_units).unwrap();
        let d: Vec<f32> = (0..STEPS * NLAT * NLON)
            .map(|c| {
                let (i, r) = (c / (NLAT * NLON), c % (NLAT * NLON));
                tas(e.member, t0 + i, r / NLON, r % NLON)
            })
            .collect();
        v.put_values(&d, Extents::from([0..STEPS, 0..NLAT, 0..NLON]))
            .unwrap();
    }
    if e.orog {
        let mut v = f.add_variable::<f32>("orog", &["lat", "lon"]).unwrap();
        v.put_attribute("units", "m").unwrap();
        let d: Vec<f32> = (0..NLAT * NLON)
            .map(|c| (1000 * e.member + c) as f32)
            .collect();
        v.put_values(&d, Extents::from([0..NLAT, 0..NLON])).unwrap();
    }
    f.close().unwrap();
}

/// Writes the ensemble into `dir` (every member × year, changed by
/// `tweak`); returns the written files, member by member in natural order,
/// each member's in year order.
fn ensemble(dir: &Path, tweak: impl Fn(&mut EnsFile)) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    let mut out = Vec::new();
    for m in 0..MEMBERS.len() {
        for y in 0..YEARS {
            let mut e = EnsFile::new(m, y);
            tweak(&mut e);
            if e.skip {
                continue;
            }
            let path = dir.join(e.name());
            write_file(&path, &e);
            out.push(path);
        }
    }
    out
}

fn glob(dir: &Path) -> String {
    format!("{}/*.nc", dir.display())
}

/// The values of a string array, read with zarrs.
fn store_strings(store: &Path, var: &str) -> Vec<String> {
    let st = Arc::new(zarrs::filesystem::FilesystemStore::new(store).unwrap());
    let a = zarrs::array::Array::open(st, &format!("/{var}")).unwrap();
    a.retrieve_array_subset::<Vec<String>>(&a.subset_all())
        .unwrap()
}

/// `convert --quiet ARGS -o OUT` must be refused with exit `code`, as a
/// singleton and on 3 ranks (each rank with that status), with one error
/// line holding every `want`, and write no store. Returns the line.
fn refused(out: &Path, args: &[&str], code: i32, want: &[&str]) -> String {
    let mut full = vec!["convert", "--quiet"];
    full.extend_from_slice(args);
    full.extend_from_slice(&["-o", s(out)]);
    let r = zarrforge(None, &full, MINUTE);
    assert_eq!(r.code, Some(code), "{full:?}: {}", r.stderr);
    let lines = error_lines(&r.stderr);
    assert_eq!(lines.len(), 1, "{full:?}: not one error line: {}", r.stderr);
    let line = lines[0].to_string();
    for w in want {
        assert!(line.contains(w), "{full:?}: {w:?} not in: {line}");
    }
    assert!(!out.join("zarr.json").exists() && !out.join(".zgroup").exists());
    assert!(!out.exists(), "{full:?}: output created");
    let (stderr, codes) = per_rank(3, &full);
    assert_eq!(codes, vec![code; 3], "{full:?} on 3 ranks: {stderr}");
    let lines = error_lines(&stderr);
    assert_eq!(lines.len(), 1, "{full:?} on 3 ranks: {stderr}");
    // The rank tag aside, the same line as the singleton's.
    assert_eq!(
        lines[0].replace("[rank 0] ", ""),
        line.replace("[rank 0] ", ""),
        "3 ranks"
    );
    assert!(!out.exists(), "{full:?} on 3 ranks: output created");
    line
}

const BY_ATTR: &str = "member:variant_label";
const BY_NAME: &str = "member:/_(r[0-9]+i[0-9]+p[0-9]+f[0-9]+)_/";

#[test]
fn a_missing_cell_is_refused() {
    let dir = tmp();
    let input = dir.path().join("in");
    ensemble(&input, |e| e.skip = e.member == 1 && e.year == 1);
    let line = refused(
        &dir.path().join("out.zarr"),
        &["--new-dim", BY_ATTR, &glob(&input)],
        3,
        &[
            "member=r2i1p1f1",
            "--allow-missing",
            "'time'",
            "from index 4",
        ],
    );
    // The step, in the output's time units.
    assert!(line.contains("4.5") && line.contains(DAYS), "{line}");
    // A member with no file at all.
    let input = dir.path().join("in2");
    ensemble(&input, |e| e.skip = e.member == 2);
    refused(
        &dir.path().join("out2.zarr"),
        &[
            "--new-dim",
            BY_ATTR,
            "--new-dim-order",
            "r1i1p1f1,r2i1p1f1,r10i1p1f1",
            &glob(&input),
        ],
        3,
        &["member=r10i1p1f1", "no input file", "--allow-missing"],
    );
}

#[test]
fn a_duplicated_file_is_refused() {
    let dir = tmp();
    let input = dir.path().join("in");
    ensemble(&input, |_| {});
    // r2's second year again, under another name.
    let copy = input.join("tas_day_MODEL_historical_r2i1p1f1_gn_2001_v2.nc");
    std::fs::copy(input.join(EnsFile::new(1, 1).name()), &copy).unwrap();
    refused(
        &dir.path().join("out.zarr"),
        &["--new-dim", BY_ATTR, &glob(&input)],
        3,
        &[
            "member=r2i1p1f1",
            "_2001.nc",
            "_2001_v2.nc",
            "duplicated coordinate value",
        ],
    );
}

#[test]
fn a_member_with_other_steps_is_refused() {
    let dir = tmp();
    // One step of the reference member's second year a quarter day late.
    let input = dir.path().join("in");
    ensemble(&input, |e| {
        if e.member == 0 && e.year == 1 {
            e.shift = Some((2, 0.25));
        }
    });
    refused(
        &dir.path().join("out.zarr"),
        &["--new-dim", BY_ATTR, &glob(&input)],
        3,
        &[
            "member=r1i1p1f1",
            "r1i1p1f1_gn_2001.nc",
            "step 2 of 'time' is 6.75",
            "has 6.5",
            "the members' steps differ",
        ],
    );
    // A member with a step more (a file more) leaves the others' cells
    // missing.
    let input = dir.path().join("in2");
    ensemble(&input, |_| {});
    write_file(
        &input.join(EnsFile::new(2, YEARS).name()),
        &EnsFile::new(2, YEARS),
    );
    refused(
        &dir.path().join("out2.zarr"),
        &["--new-dim", BY_ATTR, &glob(&input)],
        3,
        &["member=r1i1p1f1", "from index 12", "--allow-missing"],
    );
}

/// The same shift in another member than the reference: the line must name
/// that member's file, the one to fix.
#[test]
fn a_shifted_step_is_blamed_on_its_own_file() {
    let dir = tmp();
    let input = dir.path().join("in");
    ensemble(&input, |e| {
        if e.member == 1 && e.year == 1 {
            e.shift = Some((2, 0.25));
        }
    });
    refused(
        &dir.path().join("out.zarr"),
        &["--new-dim", BY_ATTR, &glob(&input)],
        3,
        &[
            "member=r2i1p1f1 (",
            "r2i1p1f1_gn_2001.nc",
            "6.75",
            "6.5",
            "the members' steps differ",
        ],
    );
}

#[test]
fn a_member_with_another_encoding_or_variable_set_is_refused() {
    let dir = tmp();
    let input = dir.path().join("units");
    ensemble(&input, |e| {
        if e.member == 2 {
            e.tas_units = "degC";
        }
    });
    refused(
        &dir.path().join("units.zarr"),
        &["--new-dim", BY_ATTR, &glob(&input)],
        3,
        &[
            "member=r10i1p1f1",
            "member=r1i1p1f1",
            "r10i1p1f1_gn_2000.nc",
            "'tas'",
            "'units'",
            "degC",
        ],
    );
    // Only one file of the member differs: refused inside the member.
    let input = dir.path().join("units1");
    ensemble(&input, |e| {
        if e.member == 1 && e.year == 2 {
            e.tas_units = "degC";
        }
    });
    refused(
        &dir.path().join("units1.zarr"),
        &["--new-dim", BY_ATTR, &glob(&input)],
        3,
        &["member=r2i1p1f1", "_2002.nc", "'units'"],
    );
    // A member without a variable the others have.
    let input = dir.path().join("orog");
    ensemble(&input, |e| {
        if e.member == 1 {
            e.orog = false;
        }
    });
    refused(
        &dir.path().join("orog.zarr"),
        &["--new-dim", BY_ATTR, &glob(&input)],
        3,
        &[
            "member=r2i1p1f1",
            "r2i1p1f1_gn_2000.nc",
            "'orog'",
            "missing",
        ],
    );
    // A member with a variable the reference member has not.
    let input = dir.path().join("orog0");
    ensemble(&input, |e| {
        if e.member == 0 {
            e.orog = false;
        }
    });
    refused(
        &dir.path().join("orog0.zarr"),
        &["--new-dim", BY_ATTR, &glob(&input)],
        3,
        &["member=r2i1p1f1", "'orog'", "member=r1i1p1f1"],
    );
}

#[test]
fn an_order_that_does_not_fit_the_files_is_refused() {
    let dir = tmp();
    let input = dir.path().join("in");
    ensemble(&input, |_| {});
    // A value no file has.
    refused(
        &dir.path().join("extra.zarr"),
        &[
            "--new-dim",
            BY_ATTR,
            "--new-dim-order",
            "r1i1p1f1,r2i1p1f1,r3i1p1f1,r10i1p1f1",
            &glob(&input),
        ],
        3,
        &["member=r3i1p1f1", "no input file", "--allow-missing"],
    );
    // Files with a value the order does not list.
    refused(
        &dir.path().join("short.zarr"),
        &[
            "--new-dim",
            BY_ATTR,
            "--new-dim-order",
            "r1i1p1f1,r10i1p1f1",
            &glob(&input),
        ],
        3,
        &["member=r2i1p1f1", "--new-dim-order does not list"],
    );
    // A value twice.
    refused(
        &dir.path().join("twice.zarr"),
        &[
            "--new-dim",
            BY_ATTR,
            "--new-dim-order",
            "r1i1p1f1,r2i1p1f1,r10i1p1f1,r2i1p1f1",
            &glob(&input),
        ],
        3,
        &["r2i1p1f1", "twice"],
    );
}

#[test]
fn a_file_without_the_attribute_or_name_is_refused() {
    let dir = tmp();
    let input = dir.path().join("in");
    ensemble(&input, |e| {
        if e.member == 2 && e.year == 1 {
            e.label = None;
        }
    });
    refused(
        &dir.path().join("attr.zarr"),
        &["--new-dim", BY_ATTR, &glob(&input)],
        3,
        &[
            "tas_day_MODEL_historical_r10i1p1f1_gn_2001.nc",
            "'variant_label'",
            "--new-dim 'member'",
        ],
    );
    // The global attribute is no string or integer.
    let odd = dir.path().join("odd");
    ensemble(&odd, |_| {});
    {
        let path = odd.join(EnsFile::new(0, 0).name());
        let mut f = netcdf::append(&path).unwrap();
        f.add_attribute("variant_label", vec![1.5f64, 2.5]).unwrap();
        f.close().unwrap();
    }
    refused(
        &dir.path().join("odd.zarr"),
        &["--new-dim", BY_ATTR, &glob(&odd)],
        3,
        &["r1i1p1f1_gn_2000.nc", "not one string or integer"],
    );
    // A file whose name the regular expression does not match.
    let named = dir.path().join("named");
    ensemble(&named, |_| {});
    std::fs::rename(
        named.join(EnsFile::new(1, 2).name()),
        named.join("tas_day_MODEL_historical_gn_2002.nc"),
    )
    .unwrap();
    refused(
        &dir.path().join("regex.zarr"),
        &["--new-dim", BY_NAME, &glob(&named)],
        3,
        &["tas_day_MODEL_historical_gn_2002.nc", "does not match"],
    );
    // Bad --new-dim syntax: a usage error (exit 2) before any file is read.
    for (spec, want) in [
        ("member", "NAME:ATTRIBUTE or NAME:/REGEX/"),
        (":variant_label", "NAME:ATTRIBUTE or NAME:/REGEX/"),
        ("member:", "NAME:ATTRIBUTE or NAME:/REGEX/"),
        ("member:/r[0-9]+/", "exactly one capture group"),
        ("member:/(r)(i)/", "exactly one capture group"),
        ("member:/(r[/", "valid regular expression"),
    ] {
        refused(
            &dir.path().join("syntax.zarr"),
            &["--new-dim", spec, &glob(&input)],
            2,
            &["--new-dim", want],
        );
    }
    // --new-dim-order without --new-dim.
    let r = zarrforge(
        None,
        &[
            "convert",
            "--new-dim-order",
            "a,b",
            "-o",
            s(&dir.path().join("x.zarr")),
            &glob(&input),
        ],
        MINUTE,
    );
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("--new-dim"), "{}", r.stderr);
}

/// The expected `tas` of the whole grid, member-major, with the cells of
/// `missing` (member, year) at the fill value.
fn expected_tas(missing: &[(usize, usize)]) -> Vec<f32> {
    let mut out = Vec::new();
    for m in 0..MEMBERS.len() {
        for t in 0..YEARS * STEPS {
            for j in 0..NLAT {
                for k in 0..NLON {
                    out.push(if missing.contains(&(m, t / STEPS)) {
                        FILL
                    } else {
                        tas(m, t, j, k)
                    });
                }
            }
        }
    }
    out
}

#[test]
fn allow_missing_fills_and_lists_the_missing_cells() {
    let dir = tmp();
    let input = dir.path().join("in");
    // r1 (the reference member) and r2 lack their last year: its time
    // comes from r10, whose files count in hours (re-encoded to days).
    ensemble(&input, |e| {
        e.skip = e.member < 2 && e.year == YEARS - 1;
        if e.member == 2 {
            e.units = "hours since 2000-01-01 00:00:00";
        }
    });
    let mut stores = Vec::new();
    for ranks in [None, Some(3)] {
        let out = dir.path().join(format!("out{ranks:?}.zarr"));
        let r = zarrforge(
            ranks,
            &[
                "convert",
                "--quiet",
                "--new-dim",
                BY_ATTR,
                "--allow-missing",
                "--chunks",
                "member=1,time=3",
                "-o",
                s(&out),
                &glob(&input),
            ],
            MINUTE,
        );
        assert!(r.ok(), "{ranks:?}: {}", r.stderr);
        let warned: Vec<&str> = r
            .stderr
            .lines()
            .filter(|l| l.contains("are in no file"))
            .collect();
        assert_eq!(
            warned,
            vec![
                "zarrforge: warning: member=r1i1p1f1: 4 steps of 'time' from index 8 (time = 8.5) are in no file; they read as the fill value",
                "zarrforge: warning: member=r2i1p1f1: 4 steps of 'time' from index 8 (time = 8.5) are in no file; they read as the fill value",
            ],
            "{ranks:?}: {}",
            r.stderr
        );
        let (shape, bytes) = store_bytes(&out, "tas");
        assert_eq!(
            shape,
            vec![3, (YEARS * STEPS) as u64, NLAT as u64, NLON as u64]
        );
        assert!(
            f32s(&bytes) == expected_tas(&[(0, YEARS - 1), (1, YEARS - 1)]),
            "{ranks:?}: tas"
        );
        let (_, t) = store_bytes(&out, "time");
        assert_eq!(
            f64s(&t),
            (0..YEARS * STEPS).map(day).collect::<Vec<_>>(),
            "{ranks:?}: time in days"
        );
        let time = json(&out.join("time/zarr.json"));
        assert_eq!(time["attributes"]["units"], DAYS);
        assert_eq!(store_strings(&out, "member"), MEMBERS);
        stores.push(out);
    }
    assert_same_files(
        &comparable(&stores[0]),
        &comparable(&stores[1]),
        "1 and 3 ranks",
    );

    // A whole member without files: named by --new-dim-order, read as the
    // fill value.
    let input = dir.path().join("in2");
    ensemble(&input, |e| e.skip = e.member == 1);
    for ranks in [None, Some(3)] {
        let out = dir.path().join(format!("absent{ranks:?}.zarr"));
        let r = zarrforge(
            ranks,
            &[
                "convert",
                "--quiet",
                "--new-dim",
                BY_ATTR,
                "--new-dim-order",
                "r1i1p1f1,r2i1p1f1,r10i1p1f1",
                "--allow-missing",
                "-o",
                s(&out),
                &glob(&input),
            ],
            MINUTE,
        );
        assert!(r.ok(), "{ranks:?}: {}", r.stderr);
        assert!(
            r.stderr.contains("member=r2i1p1f1: 12 steps of 'time' from index 0 (time = 0.5) are in no file; they read as the fill value"),
            "{ranks:?}: {}",
            r.stderr
        );
        let (_, bytes) = store_bytes(&out, "tas");
        let gone: Vec<(usize, usize)> = (0..YEARS).map(|y| (1, y)).collect();
        assert!(f32s(&bytes) == expected_tas(&gone), "{ranks:?}: tas");
        assert_eq!(store_strings(&out, "member"), MEMBERS);
        // orog of the absent member: orog has no _FillValue, so netCDF's
        // default fill (what netCDF-C reads where nothing was written), or
        // the array's fill_value (NaN) in a chunk never written.
        let (shape, orog) = store_bytes(&out, "orog");
        assert_eq!(shape, vec![3, NLAT as u64, NLON as u64]);
        let orog = f32s(&orog);
        assert!(
            orog[NLAT * NLON..2 * NLAT * NLON]
                .iter()
                .all(|x| x.is_nan() || *x == 9.969_21e36_f32),
            "{orog:?}"
        );
        assert_eq!(orog[0], 0.0);
        assert_eq!(orog[2 * NLAT * NLON], 2000.0);
    }
}

#[test]
fn stores_are_identical_on_1_2_3_ranks_in_natural_member_order() {
    let dir = tmp();
    let input = dir.path().join("in");
    let files = ensemble(&input, |_| {});
    let mut stores = Vec::new();
    for ranks in [None, Some(1), Some(2), Some(3)] {
        let out = dir.path().join(format!("out{ranks:?}.zarr"));
        let r = zarrforge(
            ranks,
            &[
                "convert",
                "--quiet",
                "--new-dim",
                BY_ATTR,
                "--chunks",
                "member=2,time=5",
                "-o",
                s(&out),
                &glob(&input),
            ],
            MINUTE,
        );
        assert!(r.ok(), "{ranks:?}: {}", r.stderr);
        assert!(r.stderr.contains("from 9 file(s)"), "{}", r.stderr);
        // Stacked: the members' files one after the other.
        let (shape, bytes) = store_bytes(&out, "tas");
        assert_eq!(
            shape,
            vec![3, (YEARS * STEPS) as u64, NLAT as u64, NLON as u64]
        );
        let want: Vec<u8> = files
            .iter()
            .flat_map(|f| source_bytes(f, "tas").1)
            .collect();
        assert!(bytes == want, "{ranks:?}: tas differs from the files");
        assert!(f32s(&bytes) == expected_tas(&[]));
        let (shape, orog) = store_bytes(&out, "orog");
        assert_eq!(shape, vec![3, NLAT as u64, NLON as u64]);
        let want: Vec<u8> = (0..3)
            .flat_map(|m| source_bytes(&files[m * YEARS], "orog").1)
            .collect();
        assert!(orog == want, "{ranks:?}: orog");
        // Shared, not stacked.
        for (var, dims) in [
            ("time", serde_json::json!(["time"])),
            ("lat", serde_json::json!(["lat"])),
            ("tas", serde_json::json!(["member", "time", "lat", "lon"])),
            ("orog", serde_json::json!(["member", "lat", "lon"])),
            ("member", serde_json::json!(["member"])),
        ] {
            let meta = json(&out.join(var).join("zarr.json"));
            assert_eq!(meta["dimension_names"], dims, "{var}");
        }
        let (_, t) = store_bytes(&out, "time");
        assert_eq!(f64s(&t), (0..YEARS * STEPS).map(day).collect::<Vec<_>>());
        // Natural order: r2 before r10.
        assert_eq!(store_strings(&out, "member"), MEMBERS);
        let member = json(&out.join("member/zarr.json"));
        assert_eq!(member["data_type"], "string");
        stores.push(out);
    }
    let first = comparable(&stores[0]);
    for other in &stores[1..] {
        assert_same_files(&first, &comparable(other), "rank counts");
    }
    // The members from the file names: the same values; the integer
    // realization_index: an int64 coordinate, in numeric order.
    let out = dir.path().join("byname.zarr");
    let r = zarrforge(
        Some(2),
        &[
            "convert",
            "--quiet",
            "--new-dim",
            BY_NAME,
            "-o",
            s(&out),
            &glob(&input),
        ],
        MINUTE,
    );
    assert!(r.ok(), "{}", r.stderr);
    assert_eq!(store_strings(&out, "member"), MEMBERS);
    assert!(store_bytes(&out, "tas").1 == store_bytes(&stores[0], "tas").1);
    let out = dir.path().join("realization.zarr");
    let r = zarrforge(
        Some(3),
        &[
            "convert",
            "--quiet",
            "--new-dim",
            "realization:realization_index",
            "-o",
            s(&out),
            &glob(&input),
        ],
        MINUTE,
    );
    assert!(r.ok(), "{}", r.stderr);
    let meta = json(&out.join("realization/zarr.json"));
    assert_eq!(meta["data_type"], "int64");
    let (_, v) = store_bytes(&out, "realization");
    let v: Vec<i64> = v
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(v, vec![1, 2, 10]);
    assert!(store_bytes(&out, "tas").1 == store_bytes(&stores[0], "tas").1);
    // --new-dim-order: the members in that order.
    let out = dir.path().join("ordered.zarr");
    let r = zarrforge(
        Some(2),
        &[
            "convert",
            "--quiet",
            "--new-dim",
            BY_ATTR,
            "--new-dim-order",
            "r10i1p1f1,r1i1p1f1,r2i1p1f1",
            "-o",
            s(&out),
            &glob(&input),
        ],
        MINUTE,
    );
    assert!(r.ok(), "{}", r.stderr);
    assert_eq!(
        store_strings(&out, "member"),
        ["r10i1p1f1", "r1i1p1f1", "r2i1p1f1"]
    );
    let want: Vec<u8> = [2, 0, 1]
        .iter()
        .flat_map(|m| &files[m * YEARS..(m + 1) * YEARS])
        .flat_map(|f| source_bytes(f, "tas").1)
        .collect();
    assert!(store_bytes(&out, "tas").1 == want, "ordered tas");
}

#[test]
fn recipe_check_shows_the_grid() {
    let dir = tmp();
    let input = dir.path().join("data");
    ensemble(&input, |e| e.skip = e.member == 1 && e.year == 1);
    let recipe = dir.path().join("recipe.toml");
    let write = |allow: bool| {
        std::fs::write(
            &recipe,
            format!(
                r#"
inputs = ["data/*.nc"]
output = "out.zarr"
allow_missing = {allow}

[new_dim]
name = "member"
regex = '_(r\d+i\d+p\d+f\d+)_'
order = ["r1i1p1f1", "r2i1p1f1", "r10i1p1f1"]
"#
            ),
        )
        .unwrap();
    };
    write(true);
    let r = zarrforge(Some(2), &["recipe", "check", s(&recipe)], MINUTE);
    assert!(r.ok(), "{}", r.stderr);
    assert!(
        r.stdout
            .contains("grid: 'member' (3 values) x 'time' (12 steps)"),
        "{}",
        r.stdout
    );
    let rows: Vec<Vec<&str>> = r
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("grid:"))
        .skip(1)
        .take(4)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0],
        ["member", "files", "steps", "missing"],
        "{}",
        r.stdout
    );
    assert_eq!(rows[1], ["r1i1p1f1", "3", "12", "-"], "{}", r.stdout);
    assert_eq!(
        rows[2],
        ["r2i1p1f1", "2", "8", "time", "4..8", "(4", "steps)"],
        "{}",
        r.stdout
    );
    assert_eq!(rows[3], ["r10i1p1f1", "3", "12", "-"], "{}", r.stdout);
    assert!(!dir.path().join("out.zarr").exists(), "recipe check wrote");
    // The recipe converts (members from the names, in its order).
    let r = zarrforge(
        Some(3),
        &["convert", "--quiet", "--recipe", s(&recipe)],
        MINUTE,
    );
    assert!(r.ok(), "{}", r.stderr);
    let out = dir.path().join("out.zarr");
    assert_eq!(store_strings(&out, "member"), MEMBERS);
    assert!(f32s(&store_bytes(&out, "tas").1) == expected_tas(&[(1, 1)]));
    // Without allow_missing the check refuses, naming the member.
    write(false);
    let r = zarrforge(None, &["recipe", "check", s(&recipe)], MINUTE);
    assert_eq!(r.code, Some(3), "{}", r.stderr);
    let lines = error_lines(&r.stderr);
    assert_eq!(lines.len(), 1, "{}", r.stderr);
    assert!(
        lines[0].contains("member=r2i1p1f1") && lines[0].contains("allow-missing"),
        "{}",
        lines[0]
    );
    // A [new_dim] with both or neither source is a recipe error.
    std::fs::write(
        &recipe,
        "inputs = [\"data/*.nc\"]\n[new_dim]\nname = \"member\"\nattribute = \"variant_label\"\nregex = '_(r1)_'\n",
    )
    .unwrap();
    let r = zarrforge(None, &["recipe", "check", s(&recipe)], MINUTE);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("[new_dim]"), "{}", r.stderr);
}

/// An append of the next year for every member, and an append of a new
/// member with the store's steps, give the bytes of a conversion of all
/// the files at once (chunks holding two members and five steps, so both
/// appends complete chunks that the store holds in part).
#[test]
fn appends_of_steps_and_of_members_equal_one_conversion() {
    let dir = tmp();
    let input = dir.path().join("in");
    let files = ensemble(&input, |_| {});
    let layout = ["--new-dim", BY_ATTR, "--chunks", "member=2,time=5"];
    let run = |ranks: Option<usize>, out: &Path, inputs: &[&PathBuf], extra: &[&str]| {
        let mut args = vec!["convert", "--quiet"];
        args.extend_from_slice(&layout);
        args.extend_from_slice(extra);
        args.extend_from_slice(&["-o", s(out)]);
        args.extend(inputs.iter().map(|p| s(p)));
        let r = zarrforge(ranks, &args, MINUTE);
        assert!(r.ok(), "{args:?}: {}", r.stderr);
    };
    let all: Vec<&PathBuf> = files.iter().collect();
    let whole = dir.path().join("whole.zarr");
    run(None, &whole, &all, &[]);
    let year = |f: &PathBuf| {
        let n = f.file_name().unwrap().to_string_lossy().into_owned();
        n.ends_with(&format!("{}.nc", 2000 + YEARS - 1))
    };
    // Steps: the last year of every member onto the first ones.
    let steps = dir.path().join("steps.zarr");
    let (old, new): (Vec<&PathBuf>, Vec<&PathBuf>) = files.iter().partition(|f| !year(f));
    run(Some(2), &steps, &old, &[]);
    run(Some(3), &steps, &new, &["--append"]);
    assert_same_files(&comparable(&whole), &comparable(&steps), "steps appended");
    // Members: r10 onto r1 and r2.
    let members = dir.path().join("members.zarr");
    let is_r10 = |f: &&PathBuf| f.to_string_lossy().contains("_r10i1p1f1_");
    let (new, old): (Vec<&PathBuf>, Vec<&PathBuf>) = files.iter().partition(is_r10);
    run(Some(3), &members, &old, &[]);
    run(Some(2), &members, &new, &["--append"]);
    assert_same_files(
        &comparable(&whole),
        &comparable(&members),
        "member appended",
    );
    assert_eq!(store_strings(&members, "member"), MEMBERS);
    // The same member again: the store holds it; nothing changes.
    let before = comparable(&members);
    run(None, &members, &new, &["--append"]);
    assert_same_files(&before, &comparable(&members), "member appended twice");
    // One of the store's members and a new one: refused, nothing changed.
    let other = dir.path().join("mixed");
    let mixed = ensemble(&other, |e| {
        e.skip = e.member == 2;
        if e.member == 1 {
            e.label = Some("r11i1p1f1".into());
        }
    });
    let mut args = vec!["convert", "--quiet", "--append"];
    args.extend_from_slice(&layout);
    args.extend_from_slice(&["-o", s(&members)]);
    args.extend(mixed.iter().map(|p| s(p)));
    let r = zarrforge(None, &args, MINUTE);
    assert_eq!(r.code, Some(5), "{}", r.stderr);
    let lines = error_lines(&r.stderr);
    assert!(
        lines.len() == 1
            && lines[0].contains("r1i1p1f1 (in the store)")
            && lines[0].contains("r11i1p1f1 (not in the store)"),
        "{}",
        r.stderr
    );
    assert_same_files(&before, &comparable(&members), "refused append");
}
