//! Conversions compared value by value with the source.

use std::path::Path;

use crate::common::*;

fn check_values(src: &Path, store: &Path) {
    for var in RICH_VARS {
        let (s_shape, s_bytes) = source_bytes(src, var);
        let (z_shape, z_bytes) = store_bytes(store, var);
        assert_eq!(s_shape, z_shape, "{var}: shape");
        assert_eq!(s_bytes.len(), z_bytes.len(), "{var}: byte count");
        if s_bytes != z_bytes {
            let first = s_bytes
                .iter()
                .zip(&z_bytes)
                .position(|(a, b)| a != b)
                .unwrap();
            panic!(
                "{var}: values differ from byte {first} in {}",
                store.display()
            );
        }
    }
}

fn check_v3_metadata(store: &Path) {
    assert!(store.join("zarr.json").is_file(), "root zarr.json missing");
    let root = json(&store.join("zarr.json"));
    assert_eq!(root["attributes"]["title"], "rich fixture");
    assert_eq!(root["attributes"]["levels"], serde_json::json!([1, 2, 3]));
    assert_eq!(root["attributes"]["version"], serde_json::json!(1.5));
    assert!(root["consolidated_metadata"]["metadata"]["sub/deeper/x"].is_object());
    let temp = json(&store.join("temp/zarr.json"));
    assert_eq!(
        temp["dimension_names"],
        serde_json::json!(["time", "lat", "lon"])
    );
    assert_eq!(temp["attributes"]["_FillValue"], "AAAAgB2vFUQ=");
    assert_eq!(temp["attributes"]["units"], "K");
    assert_eq!(temp["data_type"], "float32");
    let packed = json(&store.join("packed/zarr.json"));
    assert_eq!(packed["attributes"]["_FillValue"], -32767);
    assert_eq!(
        packed["attributes"]["scale_factor"],
        serde_json::json!(f64::from(0.01f32))
    );
    assert_eq!(packed["fill_value"], -32767);
    let nans = json(&store.join("nans/zarr.json"));
    assert!(
        nans["attributes"].get("_FillValue").is_none(),
        "no _FillValue in the source"
    );
    let crs = json(&store.join("crs/zarr.json"));
    assert_eq!(crs["shape"], serde_json::json!([]));
    assert_eq!(crs["attributes"]["grid_mapping_name"], "latitude_longitude");
    assert_eq!(
        json(&store.join("sub/zarr.json"))["attributes"]["purpose"],
        "nested"
    );
    assert_eq!(
        json(&store.join("sub/empty/zarr.json"))["shape"],
        serde_json::json!([0, 101])
    );
}

fn check_v2_metadata(store: &Path) {
    assert!(store.join(".zgroup").is_file());
    let zm = json(&store.join(".zmetadata"));
    assert_eq!(
        zm["metadata"]["temp/.zarray"]["fill_value"],
        serde_json::json!(f64::from(1e20f32))
    );
    assert!(zm["metadata"]["temp/.zattrs"].get("_FillValue").is_none());
    assert_eq!(
        zm["metadata"]["temp/.zattrs"]["_ARRAY_DIMENSIONS"],
        serde_json::json!(["time", "lat", "lon"])
    );
    assert_eq!(
        zm["metadata"]["nans/.zarray"]["fill_value"],
        serde_json::Value::Null
    );
    assert!(zm["metadata"]["sub/deeper/.zgroup"].is_object());
}

fn convert_and_check(ranks: Option<usize>, extra: &[&str], v2: bool) {
    let t = tmp();
    let src = t.path().join("rich.nc");
    rich_fixture(&src);
    let out = t.path().join("out.zarr");
    let mut args = vec!["convert", "--quiet", "-o", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    if v2 {
        args.extend_from_slice(&["--zarr-format", "2"]);
    }
    args.push(src.to_str().unwrap());
    let run = zarrforge(ranks, &args, 3 * MINUTE);
    assert!(run.ok(), "convert failed ({ranks:?} ranks): {}", run.stderr);
    assert!(
        run.stderr.contains("zarrforge: wrote"),
        "no summary: {}",
        run.stderr
    );
    check_values(&src, &out);
    if v2 {
        check_v2_metadata(&out);
    } else {
        check_v3_metadata(&out);
    }
}

#[test]
fn singleton_without_mpirun() {
    convert_and_check(None, &[], false);
}

#[test]
fn one_rank_small_chunks() {
    convert_and_check(Some(1), &["--chunks", "time=4,lat=5,lon=3"], false);
}

#[test]
fn two_ranks_default_chunks() {
    convert_and_check(Some(2), &[], false);
}

#[test]
fn three_ranks_small_chunks_blosc() {
    convert_and_check(
        Some(3),
        &["--chunks", "time=3,lat=4", "--codec", "blosc:lz4:5:shuffle"],
        false,
    );
}

#[test]
fn three_ranks_sharded() {
    convert_and_check(
        Some(3),
        &[
            "--chunks",
            "time=2,lat=5,lon=3",
            "--shards",
            "time=4,lat=10",
        ],
        false,
    );
}

#[test]
fn two_ranks_small_memory_budget() {
    convert_and_check(
        Some(2),
        &["--max-memory", "70M", "--chunks", "time=1"],
        false,
    );
}

#[test]
fn two_ranks_zarr_v2_gzip() {
    convert_and_check(
        Some(2),
        &["--chunks", "time=4,lat=5", "--codec", "gzip:5"],
        true,
    );
}

#[test]
fn three_ranks_zarr_v2_zlib_uncompressed_mix() {
    convert_and_check(Some(3), &["--chunks", "lon=2", "--codec", "zlib:3"], true);
    convert_and_check(Some(2), &["--codec", "none"], false);
}

/// The same input converted with 1 and 3 ranks gives byte-identical chunks.
#[test]
fn rank_count_does_not_change_the_store() {
    let t = tmp();
    let src = t.path().join("rich.nc");
    rich_fixture(&src);
    let mut snaps = Vec::new();
    for ranks in [1, 3] {
        let out = t.path().join(format!("out{ranks}.zarr"));
        let run = zarrforge(
            Some(ranks),
            &[
                "convert",
                "--quiet",
                "--chunks",
                "time=3,lat=4",
                "-o",
                out.to_str().unwrap(),
                src.to_str().unwrap(),
            ],
            3 * MINUTE,
        );
        assert!(run.ok(), "{}", run.stderr);
        snaps.push(snapshot(&out));
    }
    assert_eq!(snaps[0].len(), snaps[1].len());
    for (a, b) in snaps[0].iter().zip(&snaps[1]) {
        assert_eq!(a.0, b.0);
        assert!(
            a.1 == b.1,
            "{} differs between 1 and 3 ranks",
            a.0.display()
        );
    }
}

/// A netCDF-3 (classic) input goes through netCDF-C with the same plan.
#[test]
fn netcdf3_classic_input() {
    let t = tmp();
    let src = t.path().join("classic.nc");
    {
        let mut f = netcdf::create_with(&src, netcdf::Options::CLASSIC).unwrap();
        f.add_unlimited_dimension("time").unwrap();
        f.add_dimension("x", 11).unwrap();
        f.add_variable::<f32>("v", &["time", "x"])
            .unwrap()
            .put_attribute("units", "m")
            .unwrap();
        f.add_variable::<i16>("w", &["x"]).unwrap();
        f.enddef().unwrap();
        let d: Vec<f32> = (0..55).map(|i| val(i, 30) as f32).collect();
        f.variable_mut("v")
            .unwrap()
            .put_values(&d, netcdf::Extents::from([0..5, 0..11]))
            .unwrap();
        let d: Vec<i16> = (0..11).map(|i| i as i16 - 5).collect();
        f.variable_mut("w")
            .unwrap()
            .put_values(&d, netcdf::Extents::from(0..11))
            .unwrap();
        f.close().unwrap();
    }
    let out = t.path().join("out.zarr");
    let run = zarrforge(
        Some(2),
        &[
            "convert",
            "--quiet",
            "--chunks",
            "time=2,x=4",
            "-o",
            out.to_str().unwrap(),
            src.to_str().unwrap(),
        ],
        2 * MINUTE,
    );
    assert!(run.ok(), "{}", run.stderr);
    for var in ["v", "w"] {
        assert_eq!(source_bytes(&src, var), store_bytes(&out, var), "{var}");
    }
}

/// `plan` and `inspect` describe the source and the partition.
#[test]
fn plan_and_inspect() {
    let t = tmp();
    let src = t.path().join("rich.nc");
    rich_fixture(&src);
    let run = zarrforge(None, &["inspect", src.to_str().unwrap()], MINUTE);
    assert!(run.ok(), "{}", run.stderr);
    assert!(
        run.stdout
            .contains("var temp float(time=10, lat=13, lon=7) chunks [3, 5, 4]"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("big-endian"), "{}", run.stdout);
    let run = zarrforge(
        None,
        &[
            "plan",
            "--ranks",
            "4",
            "--chunks",
            "time=2",
            src.to_str().unwrap(),
        ],
        MINUTE,
    );
    assert!(run.ok(), "{}", run.stderr);
    assert!(run.stdout.contains("4 ranks"), "{}", run.stdout);
    for r in 0..4 {
        assert!(run.stdout.contains(&format!("rank {r}:")), "{}", run.stdout);
    }
    // The planned job is not the planning process's launch, and each line
    // says which it is.
    assert!(
        run.stdout
            .contains("planned job: 4 rank(s); node count not known (--ranks-per-node gives it); "),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("planning launch (not the planned job): 1 node(s), 1 rank(s) per node, "),
        "{}",
        run.stdout
    );
    let run = zarrforge(
        None,
        &[
            "plan",
            "--json",
            "--ranks",
            "64",
            "--ranks-per-node",
            "16",
            "--threads",
            "4",
            src.to_str().unwrap(),
        ],
        MINUTE,
    );
    assert!(run.ok(), "{}", run.stderr);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let job = &v["planned_job"];
    assert_eq!(job["ranks"], 64, "{job}");
    assert_eq!(job["nodes"], 4, "{job}");
    assert_eq!(job["ranks_per_node"], 16, "{job}");
    assert_eq!(job["threads_per_rank"], 4, "{job}");
    assert_eq!(v["planning_launch"]["nodes"], 1, "{v}");
}

#[test]
fn plan_and_report_show_the_topology() {
    let t = tmp();
    let src = t.path().join("rich.nc");
    rich_fixture(&src);
    let run = zarrforge(Some(2), &["plan", src.to_str().unwrap()], MINUTE);
    assert!(run.ok(), "{}", run.stderr);
    assert!(
        run.stdout
            .contains("planned job (this launch): 1 node(s), 2 rank(s) per node, "),
        "{}",
        run.stdout
    );
    let out = t.path().join("o.zarr");
    let report = t.path().join("r.json");
    let run = zarrforge(
        Some(3),
        &[
            "convert",
            "--quiet",
            "--threads",
            "2",
            "--report",
            report.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            src.to_str().unwrap(),
        ],
        MINUTE,
    );
    assert!(run.ok(), "{}", run.stderr);
    let r = json(&report);
    let topo = &r["topology"];
    assert_eq!(topo["nodes"], 1, "{topo}");
    assert_eq!(topo["ranks_per_node_max"], 3, "{topo}");
    assert_eq!(topo["threads_per_rank_max"], 2, "{topo}");
    // 3 ranks x 2 threads on this node: oversubscribed unless it has 6 PUs,
    // and then said once.
    let pus = topo["node_pus"].as_f64().unwrap();
    let load = topo["max_node_load"].as_f64().unwrap();
    assert!((load - 6.0 / pus).abs() < 1e-9, "{topo}");
    assert_eq!(
        run.stderr.matches("oversubscribed").count(),
        usize::from(load > 1.0),
        "{}",
        run.stderr
    );
    let env = &r["environment"];
    for key in ["zarrforge", "hdf5", "netcdf", "mpi", "output_filesystem"] {
        assert!(
            env[key].as_str().is_some_and(|s| !s.is_empty()),
            "{key}: {env}"
        );
    }
}
