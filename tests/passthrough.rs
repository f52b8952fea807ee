//! `--codec source`: the source's chunks and compression, copied as stored.

// A test reads top to bottom as one scenario.
#![allow(clippy::too_many_lines)]

use crate::common::*;

#[test]
fn source_chunks_are_copied_and_read_back_identical() {
    let dir = tmp();
    let src = dir.path().join("gen.nc");
    let r = zarrforge(
        None,
        &[
            "generate",
            "--time",
            "6",
            "--lat",
            "50",
            "--lon",
            "70",
            s(&src),
        ],
        MINUTE,
    );
    assert!(r.ok(), "{}", r.stderr);
    for fmt in ["3", "2"] {
        let out = dir.path().join(format!("o{fmt}.zarr"));
        let rep = dir.path().join(format!("r{fmt}.json"));
        let r = zarrforge(
            Some(2),
            &[
                "convert",
                "--quiet",
                "--codec",
                "source",
                "--zarr-format",
                fmt,
                "--verify",
                "--report",
                s(&rep),
                "-o",
                s(&out),
                s(&src),
            ],
            MINUTE,
        );
        assert!(r.ok(), "{}", r.stderr);
        assert!(r.stdout.contains("identical"), "{}", r.stdout);
        for var in ["t2m", "u10", "msl"] {
            assert_eq!(store_bytes(&out, var).1, source_bytes(&src, var).1, "{var}");
        }
        if fmt == "3" {
            let meta = json(&out.join("t2m/zarr.json"));
            assert_eq!(
                meta["chunk_grid"]["configuration"]["chunk_shape"],
                serde_json::json!([1, 50, 70])
            );
            assert_eq!(meta["codecs"][1]["name"], "numcodecs.shuffle");
            assert_eq!(meta["codecs"][2]["name"], "numcodecs.zlib");
            assert_eq!(meta["codecs"][2]["configuration"]["level"], 4);
            // The coordinates are contiguous in the source: compressed anew.
            let lat = json(&out.join("lat/zarr.json"));
            assert_eq!(lat["codecs"][1]["name"], "zstd");
        } else {
            let z = json(&out.join("t2m/.zarray"));
            assert_eq!(z["compressor"]["id"], "zlib");
            assert_eq!(z["filters"][0]["id"], "shuffle");
        }
        // The stored chunk is the source's compressed chunk, byte for byte:
        // as small as the source, not recompressed.
        let written = json(&rep)["bytes_written"].as_u64().unwrap();
        let source_size = std::fs::metadata(&src).unwrap().len();
        assert!(written < source_size, "{written} >= {source_size}");
    }
    // Explicit chunks that differ from the source: re-encoded with the
    // source's filters, still identical values.
    let out = dir.path().join("rechunked.zarr");
    let r = zarrforge(
        Some(2),
        &[
            "convert",
            "--quiet",
            "--codec",
            "source",
            "--chunks",
            "time=3",
            "--verify",
            "-o",
            s(&out),
            s(&src),
        ],
        MINUTE,
    );
    assert!(r.ok(), "{}", r.stderr);
    assert!(r.stdout.contains("identical"), "{}", r.stdout);
    let meta = json(&out.join("t2m/zarr.json"));
    assert_eq!(
        meta["chunk_grid"]["configuration"]["chunk_shape"],
        serde_json::json!([3, 50, 70])
    );
    assert_eq!(meta["codecs"][2]["name"], "numcodecs.zlib");
}

#[test]
fn bench_reports_every_rank() {
    let dir = tmp();
    let work = dir.path().join("b");
    // The generated dataset of every bench below.
    let base = [
        "bench",
        "--dir",
        s(&work),
        "--files",
        "3",
        "--time",
        "4",
        "--lat",
        "40",
        "--lon",
        "60",
    ];
    let r = zarrforge(
        Some(2),
        &[&base[..], &["--chunks", "time=4,lat=20,lon=30", "--json"]].concat(),
        2 * MINUTE,
    );
    assert!(r.ok(), "{}", r.stderr);
    let rep: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(rep["convert"]["files"], 3);
    assert_eq!(rep["convert"]["concat_len"], 12);
    assert_eq!(rep["ranks"].as_array().unwrap().len(), 2);
    assert!(rep["floor_s"].as_f64().unwrap() > 0.0, "{rep}");
    // The codec floor measured with every core busy, and from one core alone.
    assert!(rep["floor_alone_s"].as_f64().unwrap() > 0.0, "{rep}");
    // The I/O floor: the inputs' compressed size read and the output's
    // bytes written at the measured speeds; the larger floor binds.
    let io = &rep["io"];
    let input_bytes: u64 = std::fs::read_dir(work.join("inputs"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert_eq!(io["input_bytes"].as_u64().unwrap(), input_bytes, "{rep}");
    assert_eq!(io["output_bytes"], rep["convert"]["bytes_written"], "{rep}");
    let (read, write) = (
        io["read_mb_s"].as_f64().unwrap(),
        io["write_mb_s"].as_f64().unwrap(),
    );
    assert!(read > 0.0 && write > 0.0, "{rep}");
    let io_s = rep["io_floor_s"].as_f64().unwrap();
    let want = input_bytes as f64 / 1e6 / read
        + rep["convert"]["bytes_written"].as_f64().unwrap() / 1e6 / write;
    assert!((io_s - want).abs() < 1e-9 * want.max(1.0), "{rep}");
    let floor = rep["floor_s"].as_f64().unwrap();
    assert_eq!(rep["bound_s"].as_f64().unwrap(), floor.max(io_s), "{rep}");
    assert_eq!(
        rep["binds"],
        if io_s > floor { "io" } else { "codec" },
        "{rep}"
    );
    let wall = rep["convert"]["seconds"].as_f64().unwrap();
    assert!((rep["bound_ratio"].as_f64().unwrap() - wall / floor.max(io_s)).abs() < 1e-9);
    assert!(
        !std::fs::read_dir(&work).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains("io-floor")),
        "the I/O floor's files are left"
    );
    assert!(rep["imbalance"].as_f64().unwrap() >= 1.0);
    assert!(rep["peak_rss_mib"].as_f64().unwrap() > 1.0);
    // Start-up: the ranks had run (loader, MPI's start-up) before the
    // bench began, and not for longer than this test has.
    let startup = rep["startup_s"].as_f64().unwrap();
    assert!((0.0..120.0).contains(&startup), "{rep}");
    let units: u64 = rep["ranks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["units"].as_u64().unwrap())
        .sum();
    assert_eq!(units, rep["convert"]["units"].as_u64().unwrap());
    // The store it wrote is complete and equals the generated inputs.
    let inputs = format!("{}/inputs/*.nc", work.display());
    let r = zarrforge(
        None,
        &["verify", &inputs, s(&work.join("bench.zarr"))],
        MINUTE,
    );
    assert!(r.ok(), "{}", r.stdout);
    // Again, reusing the inputs, as a table.
    let r = zarrforge(None, &[&base[..], &["--reuse"]].concat(), 2 * MINUTE);
    assert!(r.ok(), "{}", r.stderr);
    assert!(
        r.stdout.contains("x floor")
            && r.stdout.contains("every core busy")
            && r.stdout.contains("I/O floor")
            && r.stdout.contains("x the larger floor")
            && r.stdout.contains("rank  units"),
        "{}",
        r.stdout
    );
    // The earlier store was deleted before the clock started, and the one
    // written over it is complete.
    let r = zarrforge(
        None,
        &["verify", &inputs, s(&work.join("bench.zarr"))],
        MINUTE,
    );
    assert!(r.ok(), "{}", r.stdout);
    // A directory zarrforge did not write is never deleted as an earlier
    // bench's store: the conversion refuses it, and its file stays.
    let foreign = work.join("mine");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("keep.txt"), b"keep").unwrap();
    let r = zarrforge(
        None,
        &[&base[..], &["--reuse", "--output", s(&foreign)]].concat(),
        2 * MINUTE,
    );
    assert!(!r.ok(), "{}", r.stdout);
    assert_eq!(std::fs::read(foreign.join("keep.txt")).unwrap(), b"keep");
}
