//! Lossy compression (`--keepbits`): fixed bits round every value as
//! `BitRound` does (an independent implementation here), NaN, ±Inf and fill
//! values unchanged, coordinates and integer or packed variables left
//! alone; the stores are the same on 1, 2 and 3 ranks and on the exchange
//! path; `auto` finds the same bits on every rank count; the CF
//! quantization metadata and the run report record them; an append rounds
//! its new steps as the store was rounded; each refusal is one line naming
//! the file and variable, the same status on every rank, and no store.

// A test reads top to bottom as one scenario.
#![allow(clippy::too_many_lines)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use netcdf::Extents;

use crate::common::*;
use crate::multifile::{assert_same_files, comparable};

const NLAT: usize = 9;
const NLON: usize = 16;
const T: Duration = Duration::from_mins(2);

/// A pseudo-random number in [0, 1) of `k` (splitmix64).
fn noise(k: u64) -> f64 {
    let mut z = k.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) as f64 / 2f64.powi(64)
}

/// One input file of `nt` steps from step `t0`: `t` (float32, with fill
/// values, NaN and infinities among smooth values), `d` (float64 with a
/// `missing_value`), `p` (int16 packed), `n` (int32), coordinates.
fn input(path: &Path, t0: usize, nt: usize) {
    let mut f = netcdf::create(path).unwrap();
    f.add_unlimited_dimension("time").unwrap();
    f.add_dimension("lat", NLAT).unwrap();
    f.add_dimension("lon", NLON).unwrap();
    {
        let mut v = f.add_variable::<f64>("time", &["time"]).unwrap();
        v.put_attribute("units", "days since 2000-01-01").unwrap();
        let t: Vec<f64> = (t0..t0 + nt).map(|i| i as f64).collect();
        v.put_values(&t, Extents::from(0..nt)).unwrap();
    }
    {
        let mut v = f.add_variable::<f32>("lat", &["lat"]).unwrap();
        let x: Vec<f32> = (0..NLAT).map(|i| -80.0 + 20.123_457 * i as f32).collect();
        v.put_values(&x, Extents::from(0..NLAT)).unwrap();
    }
    {
        let mut v = f.add_variable::<f64>("lon", &["lon"]).unwrap();
        let x: Vec<f64> = (0..NLON).map(|i| 22.5 * i as f64 + 0.123_456_789).collect();
        v.put_values(&x, Extents::from(0..NLON)).unwrap();
    }
    let n = nt * NLAT * NLON;
    let smooth = |i: usize| {
        let k = i + t0 * NLAT * NLON;
        let (lat, lon) = ((k / NLON) % NLAT, k % NLON);
        280.0
            + 15.0 * (lat as f64 * 0.4).cos()
            + 3.0 * (lon as f64 * 0.39).sin()
            + noise(k as u64) * 0.01
    };
    {
        let mut v = f.add_variable::<f32>("t", &["time", "lat", "lon"]).unwrap();
        v.set_fill_value(1e20f32).unwrap();
        v.put_attribute("units", "K").unwrap();
        v.put_attribute("coordinates", "height").unwrap();
        let mut d: Vec<f32> = (0..n).map(|i| smooth(i) as f32).collect();
        d[3] = 1e20;
        d[5] = f32::NAN;
        d[7] = f32::INFINITY;
        d[8] = f32::NEG_INFINITY;
        d[9] = -1.5e-40; // subnormal
        d[10] = -0.0;
        v.put_values(&d, Extents::from([0..nt, 0..NLAT, 0..NLON]))
            .unwrap();
    }
    {
        let mut v = f.add_variable::<f64>("d", &["time", "lat", "lon"]).unwrap();
        v.put_attribute("missing_value", -999.0f64).unwrap();
        let mut d: Vec<f64> = (0..n).map(|i| smooth(i) * 1e3 - 2.5e5).collect();
        d[4] = -999.0;
        v.put_values(&d, Extents::from([0..nt, 0..NLAT, 0..NLON]))
            .unwrap();
    }
    {
        let mut v = f.add_variable::<i16>("p", &["time", "lat", "lon"]).unwrap();
        v.put_attribute("scale_factor", 0.01f32).unwrap();
        let d: Vec<i16> = (0..n).map(|i| (smooth(i) * 10.0) as i16).collect();
        v.put_values(&d, Extents::from([0..nt, 0..NLAT, 0..NLON]))
            .unwrap();
    }
    {
        let mut v = f.add_variable::<i32>("n", &["time"]).unwrap();
        let d: Vec<i32> = (0..nt).map(|i| i as i32 * 7).collect();
        v.put_values(&d, Extents::from(0..nt)).unwrap();
    }
    {
        let mut v = f.add_variable::<f64>("height", &[]).unwrap();
        v.put_values(&[2.345_678_9f64], Extents::from(())).unwrap();
    }
}

/// numcodecs' `BitRound` of one `float32`, on its bits as `i32`, with
/// NaN, ±Inf and the fill value unchanged.
fn round32(x: f32, keepbits: u32, fill: f32) -> u32 {
    if !x.is_finite() || x.to_bits() == fill.to_bits() || keepbits >= 23 {
        return x.to_bits();
    }
    let maskbits = 23 - keepbits;
    let b = x.to_bits() as i32;
    let mask = (-1i32 >> maskbits) << maskbits;
    let half = (1i32 << (maskbits - 1)) - 1;
    (b.wrapping_add(((b >> maskbits) & 1) + half) & mask) as u32
}

fn round64(x: f64, keepbits: u32, keep: f64) -> u64 {
    if !x.is_finite() || x == keep || keepbits >= 52 {
        return x.to_bits();
    }
    let maskbits = 52 - keepbits;
    let b = x.to_bits() as i64;
    let mask = (-1i64 >> maskbits) << maskbits;
    let half = (1i64 << (maskbits - 1)) - 1;
    (b.wrapping_add(((b >> maskbits) & 1) + half) & mask) as u64
}

/// The store's `t` and `d` are the sources' rounded to `kt` and `kd` bits;
/// `p`, `n` and the coordinates are the sources'.
fn assert_rounded(store: &Path, sources: &[PathBuf], kt: u32, kd: u32) {
    let cat = |var: &str| -> Vec<u8> {
        sources
            .iter()
            .flat_map(|f| source_bytes(f, var).1)
            .collect()
    };
    let want: Vec<u32> = f32s(&cat("t"))
        .into_iter()
        .map(|x| round32(x, kt, 1e20))
        .collect();
    let got: Vec<u32> = f32s(&store_bytes(store, "t").1)
        .iter()
        .map(|x| x.to_bits())
        .collect();
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(
            g,
            w,
            "t[{i}]: {} vs {}",
            f32::from_bits(*g),
            f32::from_bits(*w)
        );
    }
    let want: Vec<u64> = f64s(&cat("d"))
        .into_iter()
        .map(|x| round64(x, kd, -999.0))
        .collect();
    let got: Vec<u64> = f64s(&store_bytes(store, "d").1)
        .iter()
        .map(|x| x.to_bits())
        .collect();
    assert_eq!(got, want, "d");
    for v in ["p", "n", "time"] {
        assert_eq!(store_bytes(store, v).1, cat(v), "{v} is not rounded");
    }
    for v in ["lat", "lon"] {
        assert_eq!(
            store_bytes(store, v).1,
            source_bytes(&sources[0], v).1,
            "{v} is not rounded"
        );
    }
    assert_eq!(
        store_bytes(store, "height").1,
        2.345_678_9f64.to_le_bytes().to_vec()
    );
}

/// The attributes of array `var` (v3 or v2).
fn attrs(store: &Path, var: &str) -> serde_json::Value {
    let v3 = store.join(var).join("zarr.json");
    if v3.exists() {
        json(&v3)["attributes"].clone()
    } else {
        json(&store.join(var).join(".zattrs"))
    }
}

#[test]
fn fixed_bits_round_every_value_as_bitround_on_1_2_3_ranks() {
    let dir = tmp();
    let src = dir.path().join("a.nc");
    input(&src, 0, 6);
    let mut stores = Vec::new();
    for (ranks, extra) in [
        (None, None),
        (Some(2), None),
        (Some(3), None),
        (Some(2), Some("always")),
    ] {
        let out = dir
            .path()
            .join(format!("s{}{}.zarr", ranks.unwrap_or(0), extra.is_some()));
        let mut args = vec![
            "convert",
            s(&src),
            "-o",
            s(&out),
            "--chunks",
            "time=2,lat=4,lon=8",
            "--keepbits",
            "all=5",
            "--keepbits",
            "d=20",
        ];
        if let Some(x) = extra {
            args.extend(["--exchange", x]);
        }
        let r = zarrforge(ranks, &args, T);
        assert!(r.ok(), "{ranks:?} {extra:?}: {}", r.stderr);
        // Integer and packed data variables are named in warnings.
        assert!(
            r.stderr.contains(
                "variable 'p' is left out of --keepbits all=5: it is packed (scale_factor)"
            ),
            "{}",
            r.stderr
        );
        assert!(r
            .stderr
            .contains("variable 'n' is left out of --keepbits all=5: it is int32"));
        assert!(
            r.stderr.contains("mantissa bits kept: t 5, d 20"),
            "{}",
            r.stderr
        );
        stores.push(out);
    }
    assert_rounded(&stores[0], std::slice::from_ref(&src), 5, 20);
    let first = comparable(&stores[0]);
    for s in &stores[1..] {
        assert_same_files(&first, &comparable(s), &s.display().to_string());
    }
    let a = attrs(&stores[0], "t");
    assert_eq!(a["quantization"], "quantization_info");
    assert_eq!(a["quantization_nsb"], 5);
    assert_eq!(a["quantization_maximum_relative_error"], 1.0 / 64.0);
    assert_eq!(attrs(&stores[0], "d")["quantization_nsb"], 20);
    assert!(attrs(&stores[0], "lat").get("quantization").is_none());
    let c = json(&stores[0].join("quantization_info/zarr.json"));
    assert_eq!(c["shape"], serde_json::json!([]));
    assert_eq!(c["attributes"]["algorithm"], "bitround");
    assert!(c["attributes"]["implementation"]
        .as_str()
        .unwrap()
        .starts_with("zarrforge version "));

    // Zarr v2, from a recipe: the same values.
    let recipe = dir.path().join("r.toml");
    std::fs::write(
        &recipe,
        format!(
            "inputs = [\"{}\"]\nzarr_format = 2\nkeepbits = \"all=5,d=20\"\n",
            src.display()
        ),
    )
    .unwrap();
    let v2 = dir.path().join("v2.zarr");
    let r = zarrforge(None, &["convert", "--recipe", s(&recipe), "-o", s(&v2)], T);
    assert!(r.ok(), "{}", r.stderr);
    assert_rounded(&v2, std::slice::from_ref(&src), 5, 20);
    assert_eq!(attrs(&v2, "t")["quantization_nsb"], 5);
    assert!(v2.join("quantization_info/.zarray").exists());
}

#[test]
fn auto_finds_the_same_bits_on_every_rank_count() {
    let dir = tmp();
    let src = dir.path().join("a.nc");
    input(&src, 0, 12);
    let mut docs = Vec::new();
    for ranks in [None, Some(2), Some(3)] {
        let r = zarrforge(ranks, &["bitinfo", s(&src), "--json"], T);
        assert!(r.ok(), "{}", r.stderr);
        let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        docs.push(v["variables"].clone());
    }
    assert_eq!(docs[0], docs[1]);
    assert_eq!(docs[0], docs[2]);
    let vars = docs[0].as_array().unwrap();
    let names: Vec<&str> = vars.iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["t", "d"]);
    let t = &vars[0];
    assert_eq!(t["along"].as_array().unwrap().len(), 3);
    // Every pair along lon: 12 steps x 9 lats x 15, less those with the
    // fill, NaN or an infinity (the values at 3, 5, 7, 8 of each file).
    let lon = &t["along"][2];
    assert_eq!(lon["dim"], "lon");
    assert!(lon["pairs"].as_u64().unwrap() < 12 * 9 * 15);
    assert!(lon["pairs"].as_u64().unwrap() >= 12 * 9 * 15 - 7);
    let kt = t["keepbits"].as_u64().unwrap();
    assert!(kt < 23, "smooth values with noise in the last bits: {kt}");

    let mut stores = Vec::new();
    for ranks in [None, Some(3)] {
        let out = dir.path().join(format!("auto{}.zarr", ranks.unwrap_or(0)));
        let report = dir.path().join(format!("auto{}.json", ranks.unwrap_or(0)));
        let r = zarrforge(
            ranks,
            &[
                "convert",
                s(&src),
                "-o",
                s(&out),
                "--keepbits",
                "auto",
                "--report",
                s(&report),
            ],
            T,
        );
        assert!(r.ok(), "{}", r.stderr);
        let rep = json(&report);
        let k = &rep["keepbits"];
        assert_eq!(k[0]["variable"], "t");
        assert_eq!(k[0]["keepbits"].as_u64(), Some(kt));
        assert_eq!(k[0]["auto_level"], 0.99);
        assert_eq!(attrs(&out, "t")["quantization_nsb"].as_u64(), Some(kt));
        stores.push(out);
    }
    assert_same_files(
        &comparable(&stores[0]),
        &comparable(&stores[1]),
        "auto 3 ranks",
    );
    let kd = attrs(&stores[0], "d")["quantization_nsb"]
        .as_u64()
        .unwrap_or(52);
    assert_rounded(&stores[0], std::slice::from_ref(&src), kt as u32, kd as u32);

    // The text table names the kept bits.
    let r = zarrforge(None, &["bitinfo", s(&src), "--keepbits", "t=auto:0.5"], T);
    assert!(r.ok(), "{}", r.stderr);
    assert!(
        r.stdout.starts_with("t (float32): keepbits "),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("* ±"), "{}", r.stdout);
}

#[test]
fn appends_round_their_steps_as_the_store() {
    let dir = tmp();
    let a = dir.path().join("a.nc");
    let b = dir.path().join("b.nc");
    input(&a, 0, 4);
    input(&b, 4, 3);
    let whole = dir.path().join("whole.zarr");
    let r = zarrforge(
        None,
        &[
            "convert",
            s(&a),
            s(&b),
            "-o",
            s(&whole),
            "--chunks",
            "time=3",
            "--keepbits",
            "all=6",
        ],
        T,
    );
    assert!(r.ok(), "{}", r.stderr);
    let grown = dir.path().join("grown.zarr");
    let r = zarrforge(
        Some(2),
        &[
            "convert",
            s(&a),
            "-o",
            s(&grown),
            "--chunks",
            "time=3",
            "--keepbits",
            "all=6",
        ],
        T,
    );
    assert!(r.ok(), "{}", r.stderr);
    let before = snapshot(&grown);
    // Other bits than the store's: refused, the store as it was.
    let (err, codes) = per_rank(
        2,
        &[
            "convert",
            s(&b),
            "-o",
            s(&grown),
            "--append",
            "--keepbits",
            "t=7",
        ],
    );
    assert_eq!(codes, vec![5, 5], "{err}");
    let lines = error_lines(&err);
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].contains("variable 't': the store keeps 6 mantissa bits of it"),
        "{err}"
    );
    assert_eq!(snapshot(&grown), before);
    // Without --keepbits: the store's bits.
    let r = zarrforge(Some(2), &["convert", s(&b), "-o", s(&grown), "--append"], T);
    assert!(r.ok(), "{}", r.stderr);
    assert!(
        r.stderr.contains("mantissa bits kept: t 6, d 6"),
        "{}",
        r.stderr
    );
    assert_same_files(&comparable(&whole), &comparable(&grown), "append");
    assert_rounded(&grown, &[a.clone(), b.clone()], 6, 6);

    // A store written unrounded does not start rounding.
    let plain = dir.path().join("plain.zarr");
    let r = zarrforge(None, &["convert", s(&a), "-o", s(&plain)], T);
    assert!(r.ok(), "{}", r.stderr);
    let r = zarrforge(
        None,
        &[
            "convert",
            s(&b),
            "-o",
            s(&plain),
            "--append",
            "--keepbits",
            "all=6",
        ],
        T,
    );
    assert_eq!(r.code, Some(5), "{}", r.stderr);
    assert!(
        r.stderr.contains("holds its values unrounded"),
        "{}",
        r.stderr
    );
}

#[test]
fn refusals_are_one_line_on_every_rank_and_write_nothing() {
    let dir = tmp();
    let src = dir.path().join("a.nc");
    input(&src, 0, 3);
    let out = dir.path().join("o.zarr");
    for (item, status, says) in [
        ("p=3", 2, "a.nc: variable 'p': --keepbits p=3: it is packed (scale_factor)"),
        ("n=3", 2, "a.nc: variable 'n': --keepbits n=3: it is int32"),
        ("t=24", 2, "a.nc: variable 't': --keepbits t=24: float32 has 23 mantissa bits"),
        ("nope=3", 2, "a.nc: --keepbits nope=3: no variable 'nope' (the float variables are: time, lat, lon, t, d, height)"),
        ("t=auto:1.5", 2, "invalid --keepbits value 't=auto:1.5'"),
        ("t=x", 2, "invalid --keepbits value 't=x'"),
    ] {
        let (err, codes) = per_rank(2, &["convert", s(&src), "-o", s(&out), "--keepbits", item]);
        assert_eq!(codes, vec![status, status], "{item}: {err}");
        let lines = error_lines(&err);
        assert_eq!(lines.len(), 1, "{item}: {err}");
        assert!(lines[0].contains(says), "{item}: {}", lines[0]);
        assert!(!out.exists(), "{item}: a store was made");
    }
    let r = zarrforge(
        None,
        &[
            "convert",
            s(&src),
            "-o",
            s(&out),
            "--keepbits",
            "all=3",
            "--codec",
            "source",
        ],
        T,
    );
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(
        r.stderr.contains("--keepbits and --codec source"),
        "{}",
        r.stderr
    );
    let refs = dir.path().join("refs.json");
    let r = zarrforge(
        None,
        &[
            "convert",
            s(&src),
            "-o",
            s(&refs),
            "--virtual",
            "--keepbits",
            "all=3",
        ],
        T,
    );
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(
        r.stderr.contains("--keepbits and --virtual"),
        "{}",
        r.stderr
    );
    assert!(!out.exists() && !refs.exists());
}
