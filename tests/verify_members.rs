//! `verify` checks a store with a new outermost dimension made from the
//! files (`--new-dim`: an ensemble's members): conversions by attribute and
//! by file name, at one and two ranks, verify identical; a member's values
//! replaced by another's, a wrong member order and cells no file holds are
//! reported; with `--allow-missing`, the cells of a missing file must read
//! as the fill value.

use std::path::{Path, PathBuf};

use netcdf::Extents;

use crate::common::*;
use crate::common::{
    assert_verified as assert_identical, assert_verify_reports as assert_reports,
    convert_ok as convert, verify_files as verify,
};

/// Steps per file.
const STEPS: usize = 3;

/// One file of member `m` (global attribute `variant_label` = `label`,
/// padded with blanks that the value leaves out), holding year `year`:
/// `tas(time, lat, lon)` and `orog(lat, lon)` differ per member; `time`,
/// its bounds, `lat` and `lon` are the same in every member.
fn member_file(dir: &Path, label: &str, m: usize, year: usize) -> PathBuf {
    let path = dir.join(format!("tas_day_{label}_{}.nc", 2000 + year));
    let mut f = netcdf::create(&path).unwrap();
    f.add_attribute("variant_label", format!(" {label} ").as_str())
        .unwrap();
    f.add_unlimited_dimension("time").unwrap();
    f.add_dimension("lat", 2).unwrap();
    f.add_dimension("lon", 3).unwrap();
    f.add_dimension("bnds", 2).unwrap();
    let t: Vec<f64> = (0..STEPS).map(|k| (year * STEPS + k) as f64).collect();
    {
        let mut v = f.add_variable::<f64>("time", &["time"]).unwrap();
        v.put_attribute("units", "days since 2000-01-01").unwrap();
        v.put_attribute("calendar", "noleap").unwrap();
        v.put_attribute("bounds", "time_bnds").unwrap();
        v.put_values(&t, Extents::from(0..STEPS)).unwrap();
    }
    {
        let mut v = f
            .add_variable::<f64>("time_bnds", &["time", "bnds"])
            .unwrap();
        let b: Vec<f64> = t.iter().flat_map(|&x| [x, x + 1.0]).collect();
        v.put_values(&b, Extents::from([0..STEPS, 0..2])).unwrap();
    }
    {
        let mut v = f.add_variable::<f64>("lat", &["lat"]).unwrap();
        v.put_attribute("units", "degrees_north").unwrap();
        v.put_values(&[-10.0, 10.0], Extents::from(0..2)).unwrap();
        let mut v = f.add_variable::<f64>("lon", &["lon"]).unwrap();
        v.put_attribute("units", "degrees_east").unwrap();
        v.put_values(&[0.0, 120.0, 240.0], Extents::from(0..3))
            .unwrap();
    }
    {
        let mut v = f
            .add_variable::<f32>("tas", &["time", "lat", "lon"])
            .unwrap();
        v.set_fill_value(1e20f32).unwrap();
        v.put_attribute("units", "K").unwrap();
        let d: Vec<f32> = (0..STEPS * 6)
            .map(|k| 200.0 + (m * 10 + year) as f32 + k as f32 * 0.25)
            .collect();
        v.put_values(&d, Extents::from([0..STEPS, 0..2, 0..3]))
            .unwrap();
    }
    {
        let mut v = f.add_variable::<f32>("orog", &["lat", "lon"]).unwrap();
        let d: Vec<f32> = (0..6).map(|k| (m * 100 + k) as f32).collect();
        v.put_values(&d, Extents::from([0..2, 0..3])).unwrap();
    }
    f.close().unwrap();
    path
}

/// Members r1, r2, r10 (three, so that natural and text order differ), two
/// yearly files each, in `dir`.
fn ensemble(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for (m, label) in ["r1", "r2", "r10"].into_iter().enumerate() {
        for year in 0..2 {
            files.push(member_file(dir, label, m, year));
        }
    }
    files
}

#[test]
fn members_by_attribute_verify_at_one_and_two_ranks() {
    let dir = tmp();
    let files = ensemble(dir.path());
    let by_attr = ["--new-dim", "member:variant_label"];
    for ranks in [None, Some(2)] {
        let store = dir.path().join(format!("attr-{}.zarr", ranks.unwrap_or(1)));
        // Chunks of two steps: files of three steps cross chunks.
        let mut opts = by_attr.to_vec();
        opts.extend(["--chunks", "time=2"]);
        convert(ranks, &files, &store, &opts);
        let r = verify(ranks, &files, &store, &by_attr);
        assert_identical(&r);
        // Every element of the 3 members × 6 steps of tas (108) and of the
        // 3 orog fields (18); the shared time (18) and bounds (36) once per
        // file; lat and lon (5).
        assert!(r.stdout.contains(" 185 values compared"), "{}", r.stdout);
    }
    // Without --new-dim the store is not what the files make.
    let store = dir.path().join("attr-1.zarr");
    let r = verify(None, &files, &store, &[]);
    assert_reports(
        &r,
        &["'tas': dimensions [\"member\", \"time\", \"lat\", \"lon\"] in the store"],
    );
    // A v2 store, as the attribute's values are read through netCDF-C.
    let v2 = dir.path().join("attr-v2.zarr");
    let mut opts = by_attr.to_vec();
    opts.extend(["--zarr-format", "2"]);
    convert(Some(2), &files, &v2, &opts);
    assert_identical(&verify(None, &files, &v2, &by_attr));
}

#[test]
fn members_by_file_name_in_a_given_order_verify() {
    let dir = tmp();
    let files = ensemble(dir.path());
    let store = dir.path().join("name.zarr");
    let spec = [
        "--new-dim",
        "member:/_(r[0-9]+)_/",
        "--new-dim-order",
        "r10,r1,r2",
    ];
    convert(None, &files, &store, &spec);
    assert_identical(&verify(None, &files, &store, &spec));
    assert_identical(&verify(Some(2), &files, &store, &spec));
    // Verified without the order it was converted with: the values are in
    // another order than the natural one.
    let r = verify(None, &files, &store, &spec[..2]);
    assert_reports(
        &r,
        &["'member' holds r10,r1,r2 in the store; the order expected is r1,r2,r10 (natural order)"],
    );
    // Integer values (a capture of digits): an int64 coordinate, in
    // numeric order.
    let ints = dir.path().join("ints.zarr");
    let spec = ["--new-dim", "realization:/_r([0-9]+)_/"];
    convert(Some(2), &files, &ints, &spec);
    let coord = json(&ints.join("realization/zarr.json"));
    assert_eq!(coord["data_type"], "int64");
    assert_identical(&verify(None, &files, &ints, &spec));
    // A file whose value the store's coordinate does not hold.
    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let mut more = files.clone();
    more.push(member_file(&other, "r7", 1, 0));
    let r = verify(None, &more, &ints, &spec);
    assert_reports(
        &r,
        &["its value realization=7 is not in the store's coordinate 'realization'"],
    );
}

#[test]
fn a_member_holding_another_members_values_is_reported() {
    let dir = tmp();
    let files = ensemble(dir.path());
    let store = dir.path().join("altered.zarr");
    let spec = ["--new-dim", "member:variant_label"];
    let mut opts = spec.to_vec();
    opts.extend(["--chunks", "member=1"]);
    convert(Some(2), &files, &store, &opts);
    assert_identical(&verify(None, &files, &store, &spec));
    // Member 1's chunks of tas become member 0's.
    let chunks = store.join("tas/c");
    let (from, to) = (chunks.join("0"), chunks.join("1"));
    assert!(to.is_dir(), "no chunks of member 1 in {}", chunks.display());
    std::fs::remove_dir_all(&to).unwrap();
    for (rel, bytes) in snapshot(&from) {
        let p = to.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    for ranks in [None, Some(2)] {
        let r = verify(ranks, &files, &store, &spec);
        // Every value of member 1 (2 files × 3 steps × 2 × 3) differs.
        assert_reports(&r, &["36 value(s) differ", "value: tas[1, "]);
        assert!(!r.stdout.contains("value: orog"), "{}", r.stdout);
    }
}

#[test]
fn a_missing_file_reads_as_the_fill_value_with_allow_missing() {
    let dir = tmp();
    let files = ensemble(dir.path());
    // Member r2 lacks its second year.
    let missing = files[3].clone();
    assert!(s(&missing).contains("_r2_2001"), "{}", missing.display());
    let some: Vec<PathBuf> = files.iter().filter(|f| **f != missing).cloned().collect();
    let store = dir.path().join("missing.zarr");
    let spec = ["--new-dim", "member:variant_label", "--allow-missing"];
    convert(Some(2), &some, &store, &spec);
    assert_identical(&verify(None, &some, &store, &spec));
    assert_identical(&verify(Some(2), &some, &store, &spec));
    // Without --allow-missing, the cells no file holds are differences.
    let r = verify(None, &some, &store, &spec[..2]);
    assert_reports(
        &r,
        &["'tas': member=r2: store indices 3..6 along 'time' come from no source file"],
    );
    // A complete store checked against the files without r2's second
    // year: those cells hold values where the fill value is expected.
    let full = dir.path().join("full.zarr");
    convert(None, &files, &full, &spec[..2]);
    let r = verify(None, &some, &full, &spec);
    assert_reports(
        &r,
        &[
            "18 value(s) differ",
            "tas[1, 3, 0, 0]: member=r2: no source file holds it",
        ],
    );
}
