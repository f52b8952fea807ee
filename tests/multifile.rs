//! Many files into one store: concatenation in time order, merge of
//! variable families, time re-encoding, append, recipes, and the
//! consistency errors.

// A test reads top to bottom as one scenario.
#![allow(clippy::too_many_lines)]

use std::path::{Path, PathBuf};

use netcdf::Extents;

use crate::common::*;

/// One input file of a series.
#[derive(Clone)]
pub(crate) struct Part {
    /// First hour (absolute, hours since 2000-01-01).
    pub t0: i64,
    /// Steps.
    pub n: usize,
    /// Units of the time coordinate; values are written in these units.
    pub units: String,
    /// Data variables to write (`t2m`, `p`, `u10`).
    pub vars: Vec<&'static str>,
    /// Type of t2m (f32 normally).
    pub t2m_f64: bool,
    /// Latitudes.
    pub lat: usize,
    /// `scale_factor` of `p`.
    pub scale: f32,
    /// _`FillValue` of t2m.
    pub fill: f32,
    /// Calendar.
    pub calendar: &'static str,
    /// Time as int32 instead of float64.
    pub int_time: bool,
    /// A netCDF-3 (classic) file instead of netCDF-4.
    pub classic: bool,
}

impl Part {
    pub(crate) fn new(t0: i64, n: usize) -> Self {
        Self {
            t0,
            n,
            units: "hours since 2000-01-01 00:00:00".into(),
            vars: vec!["t2m", "p"],
            t2m_f64: false,
            lat: 3,
            scale: 0.01,
            fill: -9999.0,
            calendar: "standard",
            int_time: false,
            classic: false,
        }
    }
}

/// Hours of `units` "hours since 2000-01-01 HH:00" or "days since
/// 2000-01-DD": the offset of its reference from 2000-01-01 in hours and
/// the hours per unit.
fn unit_offset(units: &str) -> (i64, i64) {
    let (unit, since) = units.split_once(" since ").unwrap();
    let per = match unit {
        "hours" => 1,
        "days" => 24,
        "minutes" => 0,
        other => panic!("{other}"),
    };
    let date = since.split(' ').next().unwrap();
    let day: i64 = date.rsplit('-').next().unwrap().parse().unwrap();
    let hour: i64 = since
        .split(' ')
        .nth(1)
        .map_or(0, |t| t.split(':').next().unwrap().parse().unwrap());
    ((day - 1) * 24 + hour, per)
}

/// The value of t2m at absolute hour `h`, lat `j`, lon `k`.
fn t2m(h: i64, j: usize, k: usize) -> f32 {
    if (h + j as i64 + k as i64) % 11 == 0 {
        return -9999.0;
    }
    250.0 + (h as f32) * 0.5 + j as f32 + k as f32 * 0.25
}

/// Writes one file of a series.
pub(crate) fn write_part(path: &Path, p: &Part) {
    if p.classic {
        // Written as netCDF-4, then copied to the classic format by
        // netCDF-C's own nccopy.
        let tmp = path.with_extension("nc4");
        let mut q = p.clone();
        q.classic = false;
        write_part(&tmp, &q);
        let st = std::process::Command::new("nccopy")
            .args(["-k", "classic"])
            .arg(&tmp)
            .arg(path)
            .status()
            .expect("nccopy (netcdf-bin)");
        assert!(st.success(), "nccopy failed");
        std::fs::remove_file(&tmp).unwrap();
        return;
    }
    let mut f = netcdf::create(path).unwrap();
    f.add_attribute("title", "series").unwrap();
    f.add_attribute("source_file", path.file_name().unwrap().to_str().unwrap())
        .unwrap();
    f.add_unlimited_dimension("time").unwrap();
    f.add_dimension("lat", p.lat).unwrap();
    f.add_dimension("lon", 4).unwrap();
    f.add_dimension("nv", 2).unwrap();
    let n = p.n;
    let (off, per) = unit_offset(&p.units);
    let minutes = p.units.starts_with("minutes");
    let enc = |h: i64| -> f64 {
        if minutes {
            ((h - off) * 60) as f64
        } else {
            (h - off) as f64 / per as f64
        }
    };
    {
        if p.int_time {
            let mut t = f.add_variable::<i32>("time", &["time"]).unwrap();
            t.put_attribute("units", p.units.as_str()).unwrap();
            t.put_attribute("calendar", p.calendar).unwrap();
            let v: Vec<i32> = (0..n as i64).map(|i| enc(p.t0 + i) as i32).collect();
            t.put_values(&v, Extents::from(0..n)).unwrap();
        } else {
            let mut t = f.add_variable::<f64>("time", &["time"]).unwrap();
            t.put_attribute("units", p.units.as_str()).unwrap();
            t.put_attribute("calendar", p.calendar).unwrap();
            t.put_attribute("bounds", "time_bnds").unwrap();
            let v: Vec<f64> = (0..n as i64).map(|i| enc(p.t0 + i)).collect();
            t.put_values(&v, Extents::from(0..n)).unwrap();
            let mut b = f.add_variable::<f64>("time_bnds", &["time", "nv"]).unwrap();
            let v: Vec<f64> = (0..n as i64)
                .flat_map(|i| [enc(p.t0 + i), enc(p.t0 + i + 1)])
                .collect();
            b.put_values(&v, Extents::from([0..n, 0..2])).unwrap();
        }
    }
    {
        let mut v = f.add_variable::<f32>("lat", &["lat"]).unwrap();
        v.put_attribute("units", "degrees_north").unwrap();
        let d: Vec<f32> = (0..p.lat).map(|j| j as f32 * 10.0).collect();
        v.put_values(&d, Extents::from(0..p.lat)).unwrap();
    }
    {
        let mut v = f.add_variable::<f64>("orog", &["lat", "lon"]).unwrap();
        v.put_attribute("units", "m").unwrap();
        let d: Vec<f64> = (0..p.lat * 4).map(|i| i as f64 * 1.5).collect();
        v.put_values(&d, Extents::from([0..p.lat, 0..4])).unwrap();
    }
    let cells = n * p.lat * 4;
    for name in &p.vars {
        match *name {
            "t2m" | "u10" => {
                let d: Vec<f32> = (0..cells)
                    .map(|c| {
                        let (i, r) = (c / (p.lat * 4), c % (p.lat * 4));
                        let x = t2m(p.t0 + i as i64, r / 4, r % 4);
                        if *name == "u10" && x != -9999.0 {
                            x - 250.0
                        } else {
                            x
                        }
                    })
                    .collect();
                if p.t2m_f64 {
                    let mut v = f
                        .add_variable::<f64>(name, &["time", "lat", "lon"])
                        .unwrap();
                    let d: Vec<f64> = d.iter().map(|&x| f64::from(x)).collect();
                    v.put_values(&d, Extents::from([0..n, 0..p.lat, 0..4]))
                        .unwrap();
                } else {
                    let mut v = f
                        .add_variable::<f32>(name, &["time", "lat", "lon"])
                        .unwrap();
                    v.set_fill_value(p.fill).unwrap();
                    v.put_attribute("units", "K").unwrap();
                    v.set_chunking(&[1, p.lat, 4]).unwrap();
                    v.set_compression(4, true).unwrap();
                    v.put_values(&d, Extents::from([0..n, 0..p.lat, 0..4]))
                        .unwrap();
                }
            }
            "p" => {
                let mut v = f.add_variable::<i16>("p", &["time", "lat", "lon"]).unwrap();
                v.set_fill_value(-32767i16).unwrap();
                v.put_attribute("scale_factor", p.scale).unwrap();
                v.put_attribute("add_offset", 0.0f32).unwrap();
                let d: Vec<i16> = (0..cells)
                    .map(|c| ((p.t0 as usize * 7 + c * 13) % 3000) as i16)
                    .collect();
                v.put_values(&d, Extents::from([0..n, 0..p.lat, 0..4]))
                    .unwrap();
            }
            other => panic!("{other}"),
        }
    }
    f.close().unwrap();
}

/// A series of `lens.len()` files covering consecutive hours, named so that
/// the name order is not the time order. Returns the paths in time order.
pub(crate) fn series(
    dir: &Path,
    prefix: &str,
    lens: &[usize],
    tweak: impl Fn(usize, &mut Part),
) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    let mut t0 = 0;
    let mut out = Vec::new();
    for (i, &n) in lens.iter().enumerate() {
        // Names scramble the order: 7 * i mod 101.
        let path = dir.join(format!("{prefix}{:03}.nc", (i * 37) % 101));
        let mut p = Part::new(t0, n);
        tweak(i, &mut p);
        write_part(&path, &p);
        out.push(path);
        t0 += n as i64;
    }
    out
}

/// The concatenation of `var` over `files` (in the given order).
fn concat_bytes(files: &[PathBuf], var: &str) -> Vec<u8> {
    files.iter().flat_map(|f| source_bytes(f, var).1).collect()
}

/// Every data file under a store, without zarrforge's own state.
fn chunks_of(store: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    snapshot(store)
        .into_iter()
        .filter(|(p, _)| !p.starts_with(".zarrforge"))
        .collect()
}

/// The store's files with the metadata documents parsed and `history`
/// removed, for comparing two stores written by different runs.
pub(crate) fn comparable(store: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    chunks_of(store)
        .into_iter()
        .map(|(p, b)| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if name == "zarr.json" || name.starts_with(".z") {
                let mut v: serde_json::Value = serde_json::from_slice(&b).unwrap();
                strip_history(&mut v);
                (p, serde_json::to_vec_pretty(&v).unwrap())
            } else {
                (p, b)
            }
        })
        .collect()
}

fn strip_history(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            m.remove("history");
            for (_, x) in m.iter_mut() {
                strip_history(x);
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(strip_history),
        _ => {}
    }
}

pub(crate) fn assert_same_files(a: &[(PathBuf, Vec<u8>)], b: &[(PathBuf, Vec<u8>)], what: &str) {
    let names = |x: &[(PathBuf, Vec<u8>)]| x.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>();
    assert_eq!(names(a), names(b), "{what}: file lists differ");
    for ((p, x), (_, y)) in a.iter().zip(b) {
        assert!(x == y, "{what}: {} differs", p.display());
    }
}

const LENS: [usize; 10] = [2, 1, 3, 2, 2, 1, 3, 2, 1, 2];

#[test]
fn concatenates_in_time_order_on_1_2_3_ranks() {
    let dir = tmp();
    let files = series(&dir.path().join("in"), "era_", &LENS, |_, _| {});
    let glob = format!("{}/era_*.nc", dir.path().join("in").display());
    let mut stores = Vec::new();
    for ranks in [None, Some(1), Some(2), Some(3)] {
        let out = dir.path().join(format!("out{ranks:?}.zarr"));
        let report = dir.path().join(format!("out{ranks:?}.json"));
        let r = zarrforge(
            ranks,
            &[
                "convert",
                "--quiet",
                "--chunks",
                "time=4",
                "--report",
                s(&report),
                "-o",
                s(&out),
                &glob,
            ],
            MINUTE,
        );
        assert!(r.ok(), "{ranks:?}: {}", r.stderr);
        assert!(r.stderr.contains("from 10 file(s)"), "{}", r.stderr);
        // Whichever rank wrote a unit (its own, or one it took over from a
        // slower rank), every unit was written once.
        let rep = json(&report);
        let per_rank = rep["per_rank"].as_array().unwrap();
        assert_eq!(per_rank.len(), ranks.unwrap_or(1), "{rep}");
        let units = |k: &str| per_rank.iter().map(|p| p[k].as_u64().unwrap()).sum::<u64>();
        assert_eq!(units("units"), rep["units"].as_u64().unwrap(), "{rep}");
        assert_eq!(rep["units"], rep["total_units"], "{rep}");
        assert!(units("units_taken") < units("units"), "{rep}");
        for var in ["t2m", "p", "time_bnds"] {
            let (shape, bytes) = store_bytes(&out, var);
            assert_eq!(shape[0], 19, "{var}");
            assert!(
                bytes == concat_bytes(&files, var),
                "{var}: values differ ({ranks:?} ranks)"
            );
        }
        let (_, t) = store_bytes(&out, "time");
        assert_eq!(f64s(&t), (0..19).map(f64::from).collect::<Vec<_>>());
        let (_, orog) = store_bytes(&out, "orog");
        assert_eq!(orog, source_bytes(&files[0], "orog").1);
        let root = json(&out.join("zarr.json"));
        assert_eq!(
            root["attributes"]["source_file"],
            files[0].file_name().unwrap().to_str().unwrap()
        );
        stores.push(out);
    }
    let first = chunks_of(&stores[0]);
    for other in &stores[1..] {
        assert_same_files(&first, &chunks_of(other), "rank counts");
    }
}

#[test]
fn shuffled_inputs_give_the_identical_store() {
    let dir = tmp();
    let mut files = series(&dir.path().join("in"), "f", &LENS, |_, _| {});
    let a = dir.path().join("a.zarr");
    let b = dir.path().join("b.zarr");
    let mut args: Vec<String> = ["convert", "--quiet", "--chunks", "time=3", "-o"]
        .iter()
        .map(|x| (*x).to_string())
        .collect();
    let run = |out: &Path, files: &[PathBuf]| {
        let mut v = args.clone();
        v.push(s(out).into());
        v.extend(files.iter().map(|p| s(p).to_string()));
        let v: Vec<&str> = v.iter().map(String::as_str).collect();
        let r = zarrforge(Some(2), &v, MINUTE);
        assert!(r.ok(), "{}", r.stderr);
    };
    run(&a, &files);
    files.reverse();
    files.swap(1, 7);
    run(&b, &files);
    assert_same_files(&snapshot(&a), &snapshot(&b), "shuffled order");
    args.clear();
}

/// Converting all files at once equals converting the first ones and
/// appending the rest, chunk for chunk, for plain chunks, shards and v2.
#[test]
fn append_equals_one_conversion() {
    let dir = tmp();
    let files = series(&dir.path().join("in"), "d", &LENS, |_, _| {});
    for (label, extra) in [
        ("chunks", vec!["--chunks", "time=4"]),
        ("shards", vec!["--chunks", "time=2", "--shards", "time=4"]),
        ("v2", vec!["--chunks", "time=5", "--zarr-format", "2"]),
    ] {
        let whole = dir.path().join(format!("whole-{label}.zarr"));
        let parts = dir.path().join(format!("parts-{label}.zarr"));
        let mut args = vec!["convert", "--quiet", "--history", "-o", s(&whole)];
        args.extend(&extra);
        args.extend(files.iter().map(|p| s(p)));
        let r = zarrforge(Some(3), &args, MINUTE);
        assert!(r.ok(), "{label}: {}", r.stderr);
        let mut args = vec!["convert", "--quiet", "--history", "-o", s(&parts)];
        args.extend(&extra);
        args.extend(files[..6].iter().map(|p| s(p)));
        let r = zarrforge(Some(2), &args, MINUTE);
        assert!(r.ok(), "{label}: {}", r.stderr);
        let mut args = vec![
            "convert",
            "--quiet",
            "--history",
            "--append",
            "-o",
            s(&parts),
        ];
        args.extend(files[6..].iter().map(|p| s(p)));
        let r = zarrforge(Some(3), &args, MINUTE);
        assert!(r.ok(), "{label} append: {}", r.stderr);
        assert!(r.stderr.contains("appended to"), "{}", r.stderr);
        assert_same_files(&comparable(&whole), &comparable(&parts), label);
        // The history records both runs, newest first.
        let attrs = if label == "v2" {
            json(&parts.join(".zattrs"))
        } else {
            json(&parts.join("zarr.json"))["attributes"].clone()
        };
        let h = attrs["history"].as_str().unwrap().to_string();
        assert_eq!(h.lines().count(), 2, "{h}");
        assert!(h.lines().next().unwrap().contains("--append"), "{h}");
    }
}

#[test]
fn a_repeated_append_is_refused_or_skipped() {
    let dir = tmp();
    let files = series(&dir.path().join("in"), "d", &[2, 2, 2], |_, _| {});
    let out = dir.path().join("o.zarr");
    let r = zarrforge(
        Some(2),
        &[
            "convert",
            "--quiet",
            "-o",
            s(&out),
            s(&files[0]),
            s(&files[1]),
        ],
        MINUTE,
    );
    assert!(r.ok(), "{}", r.stderr);
    let r = zarrforge(
        Some(2),
        &[
            "convert",
            "--quiet",
            "--append",
            "-o",
            s(&out),
            s(&files[2]),
        ],
        MINUTE,
    );
    assert!(r.ok(), "{}", r.stderr);
    let before = snapshot(&out);
    // The hook fires twice: the very files of the last commit (same paths,
    // sizes, times) find their work done and change nothing; that is also
    // how an append interrupted after its commit was decided is finished.
    let r = zarrforge(
        Some(2),
        &[
            "convert",
            "--quiet",
            "--append",
            "-o",
            s(&out),
            s(&files[2]),
        ],
        MINUTE,
    );
    assert!(r.ok(), "{}", r.stderr);
    assert_same_files(&before, &snapshot(&out), "repeated append");
    // Another file holding the same steps (a copy, a rewritten file) is
    // refused.
    let copy = dir.path().join("copy.nc");
    std::fs::copy(&files[2], &copy).unwrap();
    let r = zarrforge(
        Some(2),
        &["convert", "--quiet", "--append", "-o", s(&out), s(&copy)],
        MINUTE,
    );
    assert_eq!(r.code, Some(5));
    assert!(
        r.stderr.contains("already holds 'time' = 4") && r.stderr.contains("skip-existing"),
        "{}",
        r.stderr
    );
    assert_same_files(&before, &snapshot(&out), "refused append");
    let r = zarrforge(
        Some(2),
        &[
            "convert",
            "--quiet",
            "--append",
            "--append-mode",
            "skip-existing",
            "-o",
            s(&out),
            s(&copy),
        ],
        MINUTE,
    );
    assert!(r.ok(), "{}", r.stderr);
    assert_same_files(&before, &snapshot(&out), "skipped append");
    // Steps before the store's end that it does not hold: refused.
    let odd = dir.path().join("odd.nc");
    let mut p = Part::new(1, 1);
    p.units = "hours since 2000-01-01 00:30:00".into();
    write_part(&odd, &p);
    let r = zarrforge(
        None,
        &["convert", "--quiet", "--append", "-o", s(&out), s(&odd)],
        MINUTE,
    );
    assert_eq!(r.code, Some(5));
    assert!(
        r.stderr.contains("units") || r.stderr.contains("before the end"),
        "{}",
        r.stderr
    );
    assert_same_files(&before, &snapshot(&out), "refused odd append");
}

#[test]
fn append_creates_a_missing_store_and_refuses_foreign_ones() {
    let dir = tmp();
    let files = series(&dir.path().join("in"), "d", &[2, 2], |_, _| {});
    let out = dir.path().join("new.zarr");
    let r = zarrforge(
        Some(2),
        &[
            "convert",
            "--quiet",
            "--append",
            "-o",
            s(&out),
            s(&files[0]),
        ],
        MINUTE,
    );
    assert!(r.ok(), "{}", r.stderr);
    assert!(out.join("zarr.json").is_file());
    let foreign = dir.path().join("foreign.zarr");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(
        foreign.join("zarr.json"),
        br#"{"zarr_format":3,"node_type":"group"}"#,
    )
    .unwrap();
    let before = snapshot(&foreign);
    let r = zarrforge(
        Some(2),
        &[
            "convert",
            "--quiet",
            "--append",
            "-o",
            s(&foreign),
            s(&files[1]),
        ],
        MINUTE,
    );
    assert_eq!(r.code, Some(5));
    assert!(
        r.stderr.contains("not a store written by zarrforge"),
        "{}",
        r.stderr
    );
    assert_same_files(&before, &snapshot(&foreign), "foreign store");
    // New files with another variable set.
    let other = dir.path().join("other.nc");
    let mut p = Part::new(2, 1);
    p.vars = vec!["t2m"];
    write_part(&other, &p);
    let r = zarrforge(
        None,
        &["convert", "--quiet", "--append", "-o", s(&out), s(&other)],
        MINUTE,
    );
    assert_eq!(r.code, Some(5));
    assert!(
        r.stderr.contains("'p' is missing from the new files"),
        "{}",
        r.stderr
    );
    // A layout other than the store's.
    let r = zarrforge(
        None,
        &[
            "convert",
            "--quiet",
            "--append",
            "--chunks",
            "lat=2",
            "-o",
            s(&out),
            s(&files[1]),
        ],
        MINUTE,
    );
    assert_eq!(r.code, Some(5));
    assert!(
        r.stderr.contains("keeps the store's layout"),
        "{}",
        r.stderr
    );
}

#[test]
fn time_units_are_reencoded_exactly() {
    let dir = tmp();
    let _ = series(&dir.path().join("in"), "u", &[2, 3, 1, 2], |i, p| {
        p.units = match i {
            1 => "days since 2000-01-01 00:00:00".into(),
            2 => "hours since 2000-01-01 05:00:00".into(),
            3 => "minutes since 2000-01-01 06:00:00".into(),
            _ => p.units.clone(),
        };
    });
    let out = dir.path().join("o.zarr");
    let r = zarrforge(
        Some(3),
        &[
            "convert",
            "--quiet",
            "-o",
            s(&out),
            &format!("{}/u*.nc", dir.path().join("in").display()),
        ],
        MINUTE,
    );
    assert!(r.ok(), "{}", r.stderr);
    let (_, t) = store_bytes(&out, "time");
    assert_eq!(f64s(&t), (0..8).map(f64::from).collect::<Vec<_>>());
    let (_, b) = store_bytes(&out, "time_bnds");
    let want: Vec<f64> = (0..8)
        .flat_map(|i| [f64::from(i), f64::from(i + 1)])
        .collect();
    assert_eq!(f64s(&b), want);
    let meta = json(&out.join("time/zarr.json"));
    assert_eq!(
        meta["attributes"]["units"],
        "hours since 2000-01-01 00:00:00"
    );
    // An integer coordinate that cannot be expressed exactly.
    let ints = series(&dir.path().join("ints"), "i", &[2, 2], |i, p| {
        p.int_time = true;
        if i == 1 {
            p.units = "minutes since 2000-01-01 01:30:00".into();
        }
    });
    let _ = ints;
    let bad = dir.path().join("bad.zarr");
    let r = zarrforge(
        Some(2),
        &[
            "convert",
            "--quiet",
            "--time-units",
            "days since 2000-01-01",
            "-o",
            s(&bad),
            &format!("{}/i*.nc", dir.path().join("ints").display()),
        ],
        MINUTE,
    );
    assert_eq!(r.code, Some(3));
    assert!(r.stderr.contains("not a whole number"), "{}", r.stderr);
    assert!(!bad.join("zarr.json").exists());
}

#[test]
fn merges_variable_families() {
    let dir = tmp();
    let t = series(&dir.path().join("in"), "t2m_", &[2, 2, 2], |_, p| {
        p.vars = vec!["t2m"];
    });
    let u = series(&dir.path().join("in"), "u10_", &[2, 2, 2], |_, p| {
        p.vars = vec!["u10"];
    });
    let out = dir.path().join("o.zarr");
    let glob = format!("{}/*.nc", dir.path().join("in").display());
    let r = zarrforge(
        Some(2),
        &["convert", "--quiet", "-o", s(&out), &glob],
        MINUTE,
    );
    assert!(r.ok(), "{}", r.stderr);
    assert!(store_bytes(&out, "t2m").1 == concat_bytes(&t, "t2m"));
    assert!(store_bytes(&out, "u10").1 == concat_bytes(&u, "u10"));
    assert_eq!(store_bytes(&out, "time").0, vec![6]);
    // One family short of a step: refused, nothing committed.
    std::fs::remove_file(&u[2]).unwrap();
    let bad = dir.path().join("bad.zarr");
    let r = zarrforge(
        Some(2),
        &["convert", "--quiet", "-o", s(&bad), &glob],
        MINUTE,
    );
    assert_eq!(r.code, Some(3));
    assert!(
        r.stderr.contains("merged files disagree on 'time'"),
        "{}",
        r.stderr
    );
    assert!(!bad.exists());
}

/// Each inconsistency: a one-line message naming the files, nothing written.
#[test]
fn inconsistent_inputs_are_refused() {
    let dir = tmp();
    type Tweak = fn(usize, &mut Part);
    let cases: Vec<(&str, Tweak, &str)> = vec![
        (
            "gap",
            |i, p| {
                if i == 2 {
                    p.t0 += 5;
                }
            },
            "gap along 'time'",
        ),
        (
            "overlap",
            |i, p| {
                if i == 2 {
                    p.t0 -= 2;
                    p.units = "hours since 2000-01-01 00:30:00".into();
                }
            },
            "overlap along 'time'",
        ),
        (
            "duplicate",
            |i, p| {
                if i == 2 {
                    p.t0 -= 2;
                }
            },
            "duplicated coordinate value",
        ),
        (
            "missing",
            |i, p| {
                if i == 1 {
                    p.vars = vec!["t2m"];
                }
            },
            "'p' is missing from",
        ),
        (
            "dtype",
            |i, p| {
                if i == 1 {
                    p.t2m_f64 = true;
                }
            },
            "variable 't2m': type differs",
        ),
        (
            "shape",
            |i, p| {
                if i == 1 {
                    p.lat = 4;
                }
            },
            "shape",
        ),
        (
            "scale",
            |i, p| {
                if i == 2 {
                    p.scale = 0.1;
                }
            },
            "attribute 'scale_factor' differs",
        ),
        (
            "fill",
            |i, p| {
                if i == 1 {
                    p.fill = -1.0;
                }
            },
            "attribute '_FillValue' differs",
        ),
        (
            "calendar",
            |i, p| {
                if i == 1 {
                    p.calendar = "noleap";
                }
            },
            "calendar",
        ),
    ];
    for (name, tweak, want) in cases {
        let files = series(&dir.path().join(name), "x", &[2, 2, 2], tweak);
        let out = dir.path().join(format!("{name}.zarr"));
        let mut args = vec!["convert", "--quiet", "-o", s(&out)];
        args.extend(files.iter().map(|p| s(p)));
        let r = zarrforge(Some(2), &args, MINUTE);
        assert_eq!(r.code, Some(3), "{name}: {}", r.stderr);
        // One line from zarrforge (mpirun adds its own notice).
        let ours: Vec<&str> = r
            .stderr
            .lines()
            .filter(|l| l.starts_with("zarrforge"))
            .collect();
        assert_eq!(ours.len(), 1, "{name}: {}", r.stderr);
        let line = ours[0];
        assert!(line.contains(want), "{name}: {line}");
        assert!(line.contains(".nc"), "{name}: no file named: {line}");
        assert!(!out.exists(), "{name}: output created");
    }
}

#[test]
fn recipes_drive_a_conversion() {
    let dir = tmp();
    let files = series(&dir.path().join("data"), "r", &[2, 2, 2], |_, _| {});
    let recipe = dir.path().join("recipe.toml");
    std::fs::write(
        &recipe,
        r#"
inputs = ["data/r*.nc"]
output = "out.zarr"
chunks = { time = 4 }
include = ["t2m"]
rename = { t2m = "tas", lat = "latitude" }
attributes = { title = "renamed", project = "test" }
history = true

[variables.t2m]
codec = "blosc:lz4:5:shuffle"
attributes = { long_name = "2 m temperature" }
"#,
    )
    .unwrap();
    let r = zarrforge(Some(2), &["recipe", "check", s(&recipe)], MINUTE);
    assert!(r.ok(), "{}", r.stderr);
    assert!(
        r.stdout.contains("3 input file(s)") && r.stdout.contains("tas"),
        "{}",
        r.stdout
    );
    let r = zarrforge(
        None,
        &["plan", "--recipe", s(&recipe), "--ranks", "512"],
        MINUTE,
    );
    assert!(r.ok(), "{}", r.stderr);
    assert!(r.stdout.contains("512 ranks"), "{}", r.stdout);
    let r = zarrforge(
        Some(2),
        &["convert", "--quiet", "--recipe", s(&recipe)],
        MINUTE,
    );
    assert!(r.ok(), "{}", r.stderr);
    let out = dir.path().join("out.zarr");
    assert!(store_bytes(&out, "tas").1 == concat_bytes(&files, "t2m"));
    let tas = json(&out.join("tas/zarr.json"));
    assert_eq!(
        tas["dimension_names"],
        serde_json::json!(["time", "latitude", "lon"])
    );
    assert_eq!(tas["attributes"]["long_name"], "2 m temperature");
    assert_eq!(tas["codecs"][1]["name"], "blosc");
    assert!(out.join("latitude/zarr.json").is_file());
    assert!(!out.join("p").exists() && !out.join("orog").exists());
    let root = json(&out.join("zarr.json"));
    assert_eq!(root["attributes"]["title"], "renamed");
    assert!(root["attributes"]["history"]
        .as_str()
        .unwrap()
        .contains("zarrforge"));
    // A typo in a recipe is an error naming the key.
    std::fs::write(&recipe, "inputz = [\"data/r*.nc\"]\n").unwrap();
    let r = zarrforge(None, &["recipe", "check", s(&recipe)], MINUTE);
    assert_eq!(r.code, Some(2));
    assert!(
        r.stderr.contains("inputz") && r.stderr.contains("recipe.toml"),
        "{}",
        r.stderr
    );
    // A glob that matches nothing.
    let r = zarrforge(
        None,
        &[
            "convert",
            "-o",
            s(&dir.path().join("x.zarr")),
            "/nonexistent/*.nc",
        ],
        MINUTE,
    );
    assert_eq!(r.code, Some(3));
    assert!(r.stderr.contains("matches no file"), "{}", r.stderr);
}

#[test]
fn static_values_are_compared_on_request_and_file_lists_work() {
    let dir = tmp();
    let files = series(&dir.path().join("in"), "s", &[1, 1, 1], |_, _| {});
    // Change one value of `orog` in the last file.
    {
        let mut f = netcdf::append(&files[2]).unwrap();
        let mut v = f.variable_mut("orog").unwrap();
        v.put_value(99.0f64, Extents::from([1, 1])).unwrap();
    }
    let list = dir.path().join("in/files.txt");
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    std::fs::write(&list, format!("# inputs\n{}\n", names.join("\n"))).unwrap();
    let out = dir.path().join("cheap.zarr");
    let r = zarrforge(
        Some(2),
        &["convert", "--quiet", "--file-list", s(&list), "-o", s(&out)],
        MINUTE,
    );
    assert!(r.ok(), "{}", r.stderr);
    assert!(r.stderr.contains("from 3 file(s)"), "{}", r.stderr);
    let full = dir.path().join("full.zarr");
    let r = zarrforge(
        Some(2),
        &[
            "convert",
            "--quiet",
            "--check-static-values",
            "--file-list",
            s(&list),
            "-o",
            s(&full),
        ],
        MINUTE,
    );
    assert_eq!(r.code, Some(3));
    assert!(
        r.stderr.contains("variable 'orog': data differs between"),
        "{}",
        r.stderr
    );
    assert!(!full.exists());
}
