//! `verify` on stores rounded before compression (`convert --keepbits`):
//! the CF quantization attributes and container are accepted, the values
//! compared bit for bit with the sources rounded to the recorded bits
//! (NaN, ±Inf, fill and missing values unchanged, the largest value
//! rounded to infinity as `BitRound` does), and each rounded array's
//! largest errors printed and in the JSON report: several files, Zarr v2
//! and v3, 1-3 ranks, an append, an ensemble and a backfill. A store whose
//! values were rounded to other bits than recorded, or whose record is
//! broken, is reported with a line naming the array, the same status on
//! every rank.

use std::path::{Path, PathBuf};

use netcdf::Extents;
use serde_json::Value;

use crate::common::*;
use crate::common::{
    assert_verify_reports as assert_reports, convert_ok as convert, verify_files as verify,
};

const NLAT: usize = 4;
const NLON: usize = 6;

/// A file of days `days` (in hours since 2000-01-01 with `hours`): `t`
/// (float32, a fill value; the first file's first step holds the fill,
/// NaN, ±Inf, a subnormal, -0 and the largest float), `d` (float64 with a
/// `missing_value`), `w` (float32, smooth: for `auto`), `orog` (no time);
/// `shift` added to every value, `label` the global `variant_label`.
fn field(
    path: &Path,
    days: std::ops::Range<usize>,
    shift: f64,
    hours: bool,
    label: Option<&str>,
) -> PathBuf {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut f = netcdf::create(path).unwrap();
    if let Some(l) = label {
        f.add_attribute("variant_label", l).unwrap();
    }
    f.add_unlimited_dimension("time").unwrap();
    f.add_dimension("lat", NLAT).unwrap();
    f.add_dimension("lon", NLON).unwrap();
    let nt = days.len();
    {
        let mut v = f.add_variable::<f64>("time", &["time"]).unwrap();
        let (units, per_day) = if hours {
            ("hours since 2000-01-01", 24.0)
        } else {
            ("days since 2000-01-01", 1.0)
        };
        v.put_attribute("units", units).unwrap();
        let t: Vec<f64> = days.clone().map(|d| d as f64 * per_day).collect();
        v.put_values(&t, Extents::from(0..nt)).unwrap();
        let mut v = f.add_variable::<f64>("lat", &["lat"]).unwrap();
        let x: Vec<f64> = (0..NLAT).map(|i| -60.0 + 40.0 * i as f64).collect();
        v.put_values(&x, Extents::from(0..NLAT)).unwrap();
        let mut v = f.add_variable::<f64>("lon", &["lon"]).unwrap();
        let x: Vec<f64> = (0..NLON).map(|i| 60.0 * i as f64).collect();
        v.put_values(&x, Extents::from(0..NLON)).unwrap();
    }
    let cell = NLAT * NLON;
    let smooth = |k: usize| {
        let (day, lat, lon) = (days.start + k / cell, (k / NLON) % NLAT, k % NLON);
        280.0
            + 15.0 * (lat as f64 * 0.7).cos()
            + 3.0 * (lon as f64 * 0.9).sin()
            + day as f64 * 0.37
            + shift
    };
    let n = nt * cell;
    let whole = Extents::from([0..nt, 0..NLAT, 0..NLON]);
    {
        let mut v = f.add_variable::<f32>("t", &["time", "lat", "lon"]).unwrap();
        v.set_fill_value(1e20f32).unwrap();
        v.put_attribute("units", "K").unwrap();
        let mut x: Vec<f32> = (0..n).map(|k| smooth(k) as f32).collect();
        if days.start == 0 {
            x[1] = 1e20;
            x[2] = f32::NAN;
            x[3] = f32::INFINITY;
            x[4] = f32::NEG_INFINITY;
            x[5] = -1.5e-40;
            x[6] = -0.0;
            x[7] = f32::MAX;
        }
        v.put_values(&x, whole.clone()).unwrap();
    }
    {
        let mut v = f.add_variable::<f64>("d", &["time", "lat", "lon"]).unwrap();
        v.put_attribute("missing_value", -999.0f64).unwrap();
        let mut x: Vec<f64> = (0..n).map(|k| smooth(k) * 1e3 - 2.5e5).collect();
        x[2] = -999.0;
        v.put_values(&x, whole.clone()).unwrap();
    }
    {
        let mut v = f.add_variable::<f32>("w", &["time", "lat", "lon"]).unwrap();
        // 10 mantissa bits at most: the lower ones hold no information.
        let x: Vec<f32> = (0..n)
            .map(|k| ((smooth(k) * 6.4).round() / 64.0) as f32)
            .collect();
        v.put_values(&x, whole).unwrap();
    }
    {
        let mut v = f.add_variable::<f32>("orog", &["lat", "lon"]).unwrap();
        let x: Vec<f32> = (0..cell)
            .map(|k| 0.1 + 7.3 * k as f32 + shift as f32)
            .collect();
        v.put_values(&x, Extents::from([0..NLAT, 0..NLON])).unwrap();
    }
    f.close().unwrap();
    path.to_path_buf()
}

/// A successful verification that printed a line for each rounded array
/// of `rounded` (`(array, bits)`; `None`: any bits).
fn assert_rounded_ok(r: &Run, rounded: &[(&str, Option<u32>)]) {
    assert!(r.ok(), "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains(": identical"), "{}", r.stdout);
    let lines: Vec<&str> = r
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("  rounded: "))
        .collect();
    assert_eq!(lines.len(), rounded.len(), "{}", r.stdout);
    for (array, bits) in rounded {
        let prefix = match bits {
            Some(b) => format!("{array}: {b} mantissa bits kept: max absolute error "),
            None => format!("{array}: "),
        };
        let line = lines.iter().find(|l| l.starts_with(&prefix));
        let line = line.unwrap_or_else(|| panic!("no {prefix:?} in:\n{}", r.stdout));
        assert!(line.contains("max relative error "), "{line}");
        assert!(line.contains("(at most "), "{line}");
    }
}

/// A copy of `store` at `to`, with `edit` applied to the JSON document
/// `doc` (relative to the store).
fn edited(store: &Path, to: &Path, doc: &str, edit: impl FnOnce(&mut Value)) -> PathBuf {
    let _ = std::fs::remove_dir_all(to);
    for (rel, bytes) in snapshot(store) {
        let p = to.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    let path = to.join(doc);
    let mut v = json(&path);
    edit(&mut v);
    std::fs::write(&path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    to.to_path_buf()
}

#[test]
fn rounded_stores_verify_with_their_errors_on_1_to_3_ranks() {
    let dir = tmp();
    let files = [
        field(&dir.path().join("a.nc"), 0..3, 0.0, false, None),
        field(&dir.path().join("b.nc"), 3..5, 0.0, false, None),
    ];
    // Zarr v3, bits fixed and found from the data, partial chunks.
    let v3 = dir.path().join("v3.zarr");
    convert(
        Some(2),
        &files,
        &v3,
        &["--chunks", "time=2,lat=3", "--keepbits", "all=5,w=auto"],
    );
    let nsb = json(&v3.join("w/zarr.json"))["attributes"]["quantization_nsb"].as_u64();
    // w holds 10 mantissa bits: auto keeps them all, and rounding to
    // them changes nothing (its errors are 0).
    let w = nsb.expect("w is rounded") as u32;
    let all = [
        ("t", Some(5)),
        ("d", Some(5)),
        ("w", Some(w)),
        ("orog", Some(5)),
    ];
    let r = verify(None, &files, &v3, &[]);
    assert_rounded_ok(&r, &all);
    // The largest float rounds to infinity, as BitRound rounds it.
    assert!(
        r.stdout
            .contains("; 1 value(s) at the top of the range rounded to infinity"),
        "{}",
        r.stdout
    );
    let report = dir.path().join("report.json");
    let r = verify(Some(3), &files, &v3, &["--report", s(&report)]);
    assert_rounded_ok(&r, &all);
    let rep = json(&report);
    let rounded = rep["rounded"].as_array().unwrap();
    let t = rounded.iter().find(|x| x["array"] == "t").unwrap();
    assert_eq!(t["keepbits"], 5);
    assert_eq!(t["max_relative_error"], 1.0 / 64.0);
    // 5 steps of 24 cells; the fill, NaN, ±Inf and the largest value are
    // not measured.
    assert_eq!(t["values"], 5 * 24 - 5, "{t}");
    assert_eq!(t["rounded_to_infinity"], 1, "{t}");
    for x in rounded {
        let (rel, bound) = (
            x["largest_relative_error"].as_f64().unwrap(),
            x["max_relative_error"].as_f64().unwrap(),
        );
        assert!(rel <= bound, "{x}");
        assert_eq!(rel > 0.0, x["array"] != "w", "{x}");
    }

    // Zarr v2, fixed bits.
    let v2 = dir.path().join("v2.zarr");
    convert(
        None,
        &files,
        &v2,
        &["--zarr-format", "2", "--keepbits", "t=3,d=20"],
    );
    let r = verify(Some(2), &files, &v2, &[]);
    assert_rounded_ok(&r, &[("t", Some(3)), ("d", Some(20))]);
}

#[test]
fn rounded_appends_ensembles_and_backfills_verify() {
    let dir = tmp();
    let d = dir.path();
    let (a, b) = (
        field(&d.join("a.nc"), 0..3, 0.0, false, None),
        field(&d.join("b.nc"), 3..6, 0.0, false, None),
    );
    let both = [a.clone(), b.clone()];
    let rounded = [
        ("t", Some(4)),
        ("d", Some(4)),
        ("w", Some(4)),
        ("orog", Some(4)),
    ];

    // An append rounds its steps as the store records.
    let grown = d.join("grown.zarr");
    convert(
        None,
        std::slice::from_ref(&a),
        &grown,
        &["--chunks", "time=2", "--keepbits", "all=4"],
    );
    convert(None, std::slice::from_ref(&b), &grown, &["--append"]);
    assert_rounded_ok(&verify(None, &both, &grown, &[]), &rounded);

    // A backfill of days 2..4 (in hours: re-encoded time), across chunks.
    let fix = field(&d.join("fix/fix.nc"), 2..4, 100.0, true, None);
    let filled = d.join("filled.zarr");
    convert(
        None,
        &both,
        &filled,
        &["--chunks", "time=2", "--keepbits", "all=4"],
    );
    convert(
        None,
        std::slice::from_ref(&fix),
        &filled,
        &["--region", "auto"],
    );
    let r = verify(Some(2), &both, &filled, &["--backfill", s(&fix)]);
    assert_rounded_ok(&r, &rounded);

    // An ensemble: two members, one file each.
    let members = [
        field(&d.join("m/r1.nc"), 0..3, 0.0, false, Some("r1")),
        field(&d.join("m/r2.nc"), 0..3, 0.5, false, Some("r2")),
    ];
    let ens = d.join("ens.zarr");
    let spec = ["--new-dim", "member:variant_label"];
    convert(
        Some(2),
        &members,
        &ens,
        &[&spec[..], &["--keepbits", "all=4"]].concat(),
    );
    assert_rounded_ok(&verify(None, &members, &ens, &spec), &rounded);
}

#[test]
fn values_rounded_to_other_bits_than_recorded_are_reported() {
    let dir = tmp();
    let d = dir.path();
    let files = [field(&d.join("a.nc"), 0..3, 0.0, false, None)];
    let store = d.join("s.zarr");
    convert(None, &files, &store, &["--keepbits", "all=5"]);
    let set = |nsb: u64, err: f64| {
        move |v: &mut Value| {
            v["attributes"]["quantization_nsb"] = nsb.into();
            v["attributes"]["quantization_maximum_relative_error"] = err.into();
        }
    };

    // Other bits recorded, consistently: the values are not the sources'
    // rounded to them.
    let other = edited(
        &store,
        &d.join("other.zarr"),
        "t/zarr.json",
        set(6, 1.0 / 128.0),
    );
    let r = verify(None, &files, &other, &[]);
    assert_reports(&r, &["0 metadata difference(s)", "value: t["]);
    assert!(r.stdout.contains(" rounded to 6 bits "), "{}", r.stdout);
    // The stored values keep 5 bits: beyond the recorded 7 bits' bound.
    let fewer = edited(
        &store,
        &d.join("fewer.zarr"),
        "t/zarr.json",
        set(7, 1.0 / 256.0),
    );
    let r = verify(None, &files, &fewer, &[]);
    assert_reports(&r, &["value: t[", "rounded: t: 7 mantissa bits kept"]);
    assert!(r.stdout.contains("(beyond 0.00390625)"), "{}", r.stdout);

    // quantization_nsb edited alone: its error bound no longer matches.
    let alone = edited(&store, &d.join("alone.zarr"), "t/zarr.json", |v| {
        v["attributes"]["quantization_nsb"] = 4.into();
    });
    let r = verify(None, &files, &alone, &[]);
    assert_reports(
        &r,
        &[
            "metadata: 't' attribute 'quantization_maximum_relative_error': store 0.015625, 2^-(quantization_nsb+1) = 0.03125 for quantization_nsb 4",
            "value: t[",
        ],
    );
    // Bits beyond the type's mantissa.
    let many = edited(
        &store,
        &d.join("many.zarr"),
        "t/zarr.json",
        set(30, 0.5f64.powi(31)),
    );
    let r = verify(None, &files, &many, &[]);
    assert_reports(
        &r,
        &["metadata: 't' attribute 'quantization_nsb' 30: not a number of mantissa bits"],
    );

    // Zarr v2: the attributes in .zattrs.
    let v2 = d.join("v2.zarr");
    convert(
        None,
        &files,
        &v2,
        &["--zarr-format", "2", "--keepbits", "t=5"],
    );
    let v2_other = edited(&v2, &d.join("v2other.zarr"), "t/.zattrs", |v| {
        v["quantization_nsb"] = 2.into();
        v["quantization_maximum_relative_error"] = 0.125.into();
    });
    assert_reports(
        &verify(None, &files, &v2_other, &[]),
        &["value: t[", " rounded to 2 bits "],
    );
}

#[test]
fn a_broken_container_is_reported_on_every_rank() {
    let dir = tmp();
    let d = dir.path();
    let files = [field(&d.join("a.nc"), 0..3, 0.0, false, None)];
    let store = d.join("s.zarr");
    convert(None, &files, &store, &["--keepbits", "all=5"]);
    // The container without its algorithm: a line for every array naming it,
    // the same status on every rank.
    let bare = edited(
        &store,
        &d.join("bare.zarr"),
        "quantization_info/zarr.json",
        |v| {
            v["attributes"].as_object_mut().unwrap().remove("algorithm");
        },
    );
    let r = verify(None, &files, &bare, &[]);
    assert_reports(&r, &["4 metadata difference(s)"]);
    for a in ["t", "d", "w", "orog"] {
        let line = format!(
            "metadata: '{a}' attribute 'quantization': its container 'quantization_info' has no attribute 'algorithm'"
        );
        assert!(r.stdout.contains(&line), "no {line:?} in:\n{}", r.stdout);
    }
    let (err, codes) = per_rank(2, &verify_args(&files, &bare, &[]));
    assert_eq!(codes, vec![1, 1], "{err}");

    // Zarr v2: the container gone.
    let v2 = d.join("v2.zarr");
    convert(
        None,
        &files,
        &v2,
        &["--zarr-format", "2", "--keepbits", "t=5"],
    );
    let gone = edited(&v2, &d.join("gone.zarr"), "t/.zattrs", |_| {});
    std::fs::remove_dir_all(gone.join("quantization_info")).unwrap();
    let r = verify(None, &files, &gone, &[]);
    assert_reports(
        &r,
        &["metadata: 't' attribute 'quantization': its container 'quantization_info' is not an array of the store"],
    );
}
