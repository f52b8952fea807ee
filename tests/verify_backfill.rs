//! `verify --backfill` checks a store rewritten in a region (`convert
//! --region`) against the old files outside the region and the new ones
//! inside: an interior week with partial chunks at one and two ranks, two
//! backfills in the order they were run, an ensemble backfilled for every
//! member; without the backfill, or with a chunk of the region holding the
//! old values again, the region's values are differences.

use std::path::{Path, PathBuf};

use netcdf::Extents;

use crate::common::*;
use crate::common::{
    assert_verified as assert_identical, assert_verify_reports as assert_reports,
    convert_ok as convert, verify_files as verify,
};

/// Values of `tas` at day `t`: `250 + t + shift`, the same in every cell
/// but for a member's tenth of a kelvin.
fn tas(t: usize, shift: f32, member: usize) -> f32 {
    250.0 + t as f32 + shift + member as f32 * 0.1
}

/// A file of days `days` (in `units`: days or hours since 2000-01-01):
/// `tas(time, lat, lon)` shifted by `shift`, `orog(lat, lon)` by `orog`;
/// with `label`, the global attribute `variant_label` and member `m`'s
/// values.
struct Fixture<'a> {
    days: std::ops::Range<usize>,
    shift: f32,
    orog: f32,
    hours: bool,
    label: Option<(&'a str, usize)>,
}

impl Fixture<'_> {
    fn write(&self, path: &Path) -> PathBuf {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut f = netcdf::create(path).unwrap();
        let m = self.label.map_or(0, |(_, m)| m);
        if let Some((label, _)) = self.label {
            f.add_attribute("variant_label", label).unwrap();
        }
        f.add_unlimited_dimension("time").unwrap();
        f.add_dimension("lat", 2).unwrap();
        f.add_dimension("lon", 3).unwrap();
        let n = self.days.len();
        {
            let mut v = f.add_variable::<f64>("time", &["time"]).unwrap();
            let (units, per_day) = if self.hours {
                ("hours since 2000-01-01", 24.0)
            } else {
                ("days since 2000-01-01", 1.0)
            };
            v.put_attribute("units", units).unwrap();
            v.put_attribute("calendar", "noleap").unwrap();
            let t: Vec<f64> = self.days.clone().map(|d| d as f64 * per_day).collect();
            v.put_values(&t, Extents::from(0..n)).unwrap();
        }
        {
            let mut v = f.add_variable::<f64>("lat", &["lat"]).unwrap();
            v.put_values(&[-10.0, 10.0], Extents::from(0..2)).unwrap();
            let mut v = f.add_variable::<f64>("lon", &["lon"]).unwrap();
            v.put_values(&[0.0, 120.0, 240.0], Extents::from(0..3))
                .unwrap();
        }
        {
            let mut v = f
                .add_variable::<f32>("tas", &["time", "lat", "lon"])
                .unwrap();
            v.set_fill_value(1e20f32).unwrap();
            v.put_attribute("units", "K").unwrap();
            let d: Vec<f32> = (self.days.clone())
                .flat_map(|t| [tas(t, self.shift, m); 6])
                .collect();
            v.put_values(&d, Extents::from([0..n, 0..2, 0..3])).unwrap();
        }
        {
            let mut v = f.add_variable::<f32>("orog", &["lat", "lon"]).unwrap();
            let d: Vec<f32> = (0..6).map(|k| k as f32 + self.orog).collect();
            v.put_values(&d, Extents::from([0..2, 0..3])).unwrap();
        }
        f.close().unwrap();
        path.to_path_buf()
    }
}

/// A year's file: days `days`, the original values.
fn original(path: &Path, days: std::ops::Range<usize>, label: Option<(&str, usize)>) -> PathBuf {
    Fixture {
        days,
        shift: 0.0,
        orog: 0.0,
        hours: false,
        label,
    }
    .write(path)
}

/// A correction of days `days` by `shift`, in hours since the store's
/// reference; its `orog` differs too (a region write leaves it as it is).
fn correction(
    path: &Path,
    days: std::ops::Range<usize>,
    shift: f32,
    label: Option<(&str, usize)>,
) -> PathBuf {
    Fixture {
        days,
        shift,
        orog: 500.0,
        hours: true,
        label,
    }
    .write(path)
}

/// Three files of ten days.
fn years(dir: &Path) -> Vec<PathBuf> {
    (0..3)
        .map(|y| {
            original(
                &dir.join(format!("orig/f{y}.nc")),
                y * 10..y * 10 + 10,
                None,
            )
        })
        .collect()
}

#[test]
fn a_backfilled_week_verifies_with_its_files_at_one_and_two_ranks() {
    let dir = tmp();
    let old = years(dir.path());
    // Days 10..16: inside the second file, across chunks of 7 days that it
    // covers in part (7..14 and 14..21).
    let fix = correction(&dir.path().join("fix/fix.nc"), 10..17, 1000.0, None);
    for ranks in [None, Some(2)] {
        let store = dir.path().join(format!("s{}.zarr", ranks.unwrap_or(1)));
        convert(ranks, &old, &store, &["--chunks", "time=7"]);
        convert(
            ranks,
            std::slice::from_ref(&fix),
            &store,
            &["--region", "auto"],
        );
        let glob = dir.path().join("fix/*.nc");
        let r = verify(ranks, &old, &store, &["--backfill", s(&glob)]);
        assert_identical(&r);
        assert!(r.stdout.contains(" vs 4 file(s)"), "{}", r.stdout);
        // Without the backfill, the week's values are the old files' no
        // longer: 7 days × 6 cells of tas (time holds the same instants,
        // orog the old values).
        let r = verify(ranks, &old, &store, &[]);
        assert_reports(
            &r,
            &[
                "42 value(s) differ",
                "value: tas[10, 0, 0]: source 260, store 1260",
            ],
        );
        assert!(!r.stdout.contains("value: orog"), "{}", r.stdout);
    }
    // A backfill file whose steps are not all the store's.
    let off = original(&dir.path().join("off/off.nc"), 28..32, None);
    let store = dir.path().join("s1.zarr");
    let r = verify(
        None,
        &old,
        &store,
        &["--backfill", s(&fix), "--backfill", s(&off)],
    );
    assert_reports(
        &r,
        &["off.nc: its 'time' values 28 .. 31 are not in the store's 'time' coordinate"],
    );
}

#[test]
fn two_backfills_verify_in_the_order_they_were_run() {
    let dir = tmp();
    let old = years(dir.path());
    let first = correction(&dir.path().join("fix/a.nc"), 10..17, 1000.0, None);
    // The second overlaps the first (days 14..16) and the third file.
    let second = correction(&dir.path().join("fix/b.nc"), 14..22, 2000.0, None);
    let store = dir.path().join("s.zarr");
    convert(Some(2), &old, &store, &["--chunks", "time=7"]);
    convert(
        None,
        std::slice::from_ref(&first),
        &store,
        &["--region", "auto"],
    );
    convert(
        Some(2),
        std::slice::from_ref(&second),
        &store,
        &["--region", "time=2000-01-15..2000-01-22"],
    );
    let both = ["--backfill", s(&first), "--backfill", s(&second)];
    assert_identical(&verify(Some(2), &old, &store, &both));
    // In the other order, days 14..16 are expected from the first.
    let r = verify(
        None,
        &old,
        &store,
        &["--backfill", s(&second), "--backfill", s(&first)],
    );
    assert_reports(
        &r,
        &[
            "18 value(s) differ",
            "value: tas[14, 0, 0]: source 1264, store 2264",
        ],
    );
}

#[test]
fn a_region_chunk_with_the_old_values_again_is_reported() {
    let dir = tmp();
    let old = years(dir.path());
    let fix = correction(&dir.path().join("fix/fix.nc"), 10..17, 1000.0, None);
    let (before, store) = (dir.path().join("old.zarr"), dir.path().join("s.zarr"));
    convert(None, &old, &before, &["--chunks", "time=7"]);
    convert(None, &old, &store, &["--chunks", "time=7"]);
    convert(
        None,
        std::slice::from_ref(&fix),
        &store,
        &["--region", "auto"],
    );
    assert_identical(&verify(None, &old, &store, &["--backfill", s(&fix)]));
    // tas's chunk of days 7..13 as it was before the backfill.
    let chunk = Path::new("tas/c/1/0/0");
    assert!(store.join(chunk).is_file(), "no chunk {}", chunk.display());
    std::fs::copy(before.join(chunk), store.join(chunk)).unwrap();
    for ranks in [None, Some(2)] {
        let r = verify(ranks, &old, &store, &["--backfill", s(&fix)]);
        // Days 10..13 of the region: 4 × 6 cells.
        assert_reports(
            &r,
            &[
                "24 value(s) differ",
                "value: tas[10, 0, 0]: source 1260, store 260",
            ],
        );
    }
}

#[test]
fn an_ensemble_backfilled_for_every_member_verifies() {
    let dir = tmp();
    let mut old = Vec::new();
    let mut fixes = Vec::new();
    for (m, label) in ["r1", "r2"].into_iter().enumerate() {
        for y in 0..2 {
            let path = dir.path().join(format!("orig/tas_{label}_{y}.nc"));
            old.push(original(&path, y * 5..y * 5 + 5, Some((label, m))));
        }
        // Days 3..6: across both files of the member and chunks of 3.
        let path = dir.path().join(format!("fix/tas_{label}.nc"));
        fixes.push(correction(&path, 3..7, 1000.0, Some((label, m))));
    }
    let spec = ["--new-dim", "member:variant_label"];
    let store = dir.path().join("ens.zarr");
    let mut opts = spec.to_vec();
    opts.extend(["--chunks", "time=3"]);
    convert(Some(2), &old, &store, &opts);
    let mut region = spec.to_vec();
    region.extend(["--region", "auto"]);
    convert(None, &fixes, &store, &region);
    let glob = dir.path().join("fix/*.nc");
    let mut with = spec.to_vec();
    with.extend(["--backfill", s(&glob)]);
    for ranks in [None, Some(2)] {
        assert_identical(&verify(ranks, &old, &store, &with));
    }
    // Without the backfill: 2 members × 4 days × 6 cells.
    let r = verify(None, &old, &store, &spec);
    assert_reports(
        &r,
        &[
            "48 value(s) differ",
            "value: tas[0, 3, 0, 0]: source 253, store 1253",
        ],
    );
    // A backfill of one member only is verified for that member: the
    // other's days are then the old files' (which they are not).
    let r = verify(
        None,
        &old,
        &store,
        &[
            "--new-dim",
            "member:variant_label",
            "--backfill",
            s(&fixes[0]),
        ],
    );
    assert_reports(
        &r,
        &[
            "24 value(s) differ",
            "value: tas[1, 3, 0, 0]: source 253.1, store 1253.1",
        ],
    );
}
