//! What a workflow sees of a run: progress lines in a batch log (stderr not
//! a terminal) at the interval, the `--events` stream valid against
//! docs/events.schema.json and telling the run as it went, and the same
//! exit status for an error class in every subcommand.

// A test reads top to bottom as one scenario.
#![allow(clippy::too_many_lines)]

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::*;

/// The events JSON Schema of the docs.
fn schema() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/events.schema.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Checks `v` against `schema` for the keywords the events schema uses
/// (`$ref`, `oneOf` by event kind, `type`, `const`, `enum`, `required`,
/// `properties`, `additionalProperties: false`, `items`, `minimum`,
/// `maximum`); the Python `jsonschema` check in tests/workflows/run covers
/// the full standard.
fn check(v: &Value, schema: &Value, root: &Value, at: &str) -> Result<(), String> {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.trim_start_matches("#/$defs/");
        return check(v, &root["$defs"][name], root, at);
    }
    if let Some(alts) = schema.get("oneOf").and_then(Value::as_array) {
        let n = alts
            .iter()
            .filter(|a| check(v, a, root, at).is_ok())
            .count();
        if n != 1 {
            return Err(format!("{at}: matches {n} of oneOf: {v}"));
        }
    }
    if let Some(c) = schema.get("const") {
        if v != c {
            return Err(format!("{at}: {v} is not {c}"));
        }
    }
    if let Some(e) = schema.get("enum").and_then(Value::as_array) {
        if !e.contains(v) {
            return Err(format!("{at}: {v} not in {e:?}"));
        }
    }
    if let Some(t) = schema.get("type") {
        let types: Vec<&str> = match t {
            Value::String(x) => vec![x.as_str()],
            Value::Array(xs) => xs.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let ok = types.iter().any(|t| match *t {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "integer" => v.is_u64() || v.is_i64(),
            "number" => v.is_number(),
            "boolean" => v.is_boolean(),
            "null" => v.is_null(),
            _ => false,
        });
        if !ok {
            return Err(format!("{at}: {v} is not of type {t}"));
        }
    }
    if let (Some(min), Some(x)) = (schema.get("minimum").and_then(Value::as_f64), v.as_f64()) {
        if x < min {
            return Err(format!("{at}: {x} < {min}"));
        }
    }
    if let (Some(max), Some(x)) = (schema.get("maximum").and_then(Value::as_f64), v.as_f64()) {
        if x > max {
            return Err(format!("{at}: {x} > {max}"));
        }
    }
    if let (Some(items), Some(xs)) = (schema.get("items"), v.as_array()) {
        for (i, x) in xs.iter().enumerate() {
            check(x, items, root, &format!("{at}[{i}]"))?;
        }
    }
    if let Some(obj) = v.as_object() {
        for r in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let k = r.as_str().unwrap();
            if !obj.contains_key(k) {
                return Err(format!("{at}: no '{k}' in {v}"));
            }
        }
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            for (k, x) in obj {
                match props.get(k) {
                    Some(p) => check(x, p, root, &format!("{at}.{k}"))?,
                    None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                        return Err(format!("{at}: unexpected '{k}' in {v}"));
                    }
                    None => {}
                }
            }
        }
    }
    Ok(())
}

/// The events of a file or of stdout, each checked against the schema.
fn events(text: &str) -> Vec<Value> {
    let root = schema();
    text.lines()
        .enumerate()
        .map(|(i, l)| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("line {i}: {e}: {l}"));
            if let Err(e) = check(&v, &root, &root, &format!("line {i}")) {
                panic!("{e}");
            }
            v
        })
        .collect()
}

fn kinds(evs: &[Value]) -> Vec<&str> {
    evs.iter().map(|e| e["event"].as_str().unwrap()).collect()
}

/// A dataset slow enough to convert that the progress shows (three files of
/// `steps` steps, 3 MB per step and field).
fn dataset(dir: &Path, steps: usize) -> Vec<PathBuf> {
    (0..3)
        .map(|i| {
            let path = dir.join(format!("in{i}.nc"));
            // Hourly steps; --t0 is in days.
            #[allow(clippy::cast_precision_loss)]
            let t0 = format!("{}", (i * steps) as f64 / 24.0);
            let r = zarrforge(
                None,
                &[
                    "generate",
                    "--time",
                    &steps.to_string(),
                    "--t0",
                    &t0,
                    s(&path),
                ],
                2 * MINUTE,
            );
            assert!(r.ok(), "{}", r.stderr);
            path
        })
        .collect()
}

/// A conversion under mpirun with stderr a pipe (a batch log): the job's
/// progress every interval, the phases, and an events file that follows
/// the schema and tells the run in order, to 100%.
#[test]
fn a_batch_log_shows_progress_at_the_interval_and_the_events_tell_the_run() {
    let dir = tmp();
    let files = dataset(dir.path(), 48);
    let out = dir.path().join("o.zarr");
    let ev = dir.path().join("events.jsonl");
    let interval = 0.5;
    let mut args = vec![
        "convert",
        "--chunks",
        "time=1,lat=181,lon=360",
        "--progress-interval",
        "0.5",
        "--events",
        s(&ev),
        "-o",
        s(&out),
    ];
    args.extend(files.iter().map(|p| s(p)));
    let r = zarrforge(Some(2), &args, 3 * MINUTE);
    assert!(r.ok(), "{}", r.stderr);
    eprintln!("{}", r.stderr);

    // The log: the phases in order, then progress lines of the whole job.
    let log: Vec<&str> = r.stderr.lines().collect();
    let at = |needle: &str| {
        log.iter()
            .position(|l| l.starts_with("zarrforge: ") && l.ends_with(needle))
            .unwrap_or_else(|| panic!("no '{needle}' line in {}", r.stderr))
    };
    assert!(at("phase scan") < at("phase plan"));
    assert!(at("phase plan") < at("phase write"));
    assert!(at("phase write") < at("phase commit"));
    let progress: Vec<(u64, u64)> = log
        .iter()
        .filter(|l| l.contains(" write: ") && l.contains(" units ("))
        .map(|l| {
            let frac = l.split(" write: ").nth(1).unwrap();
            let frac = frac.split(' ').next().unwrap();
            let (a, b) = frac.split_once('/').unwrap();
            (a.parse().unwrap(), b.parse().unwrap())
        })
        .collect();
    let evs = events(&std::fs::read_to_string(&ev).unwrap());
    let planned = evs.iter().find(|e| e["event"] == "planned").unwrap();
    let total = planned["units_to_write"].as_u64().unwrap();
    let write_start = evs
        .iter()
        .find(|e| e["event"] == "phase" && e["phase"] == "write")
        .unwrap()["elapsed_s"]
        .as_f64()
        .unwrap();
    let write_end = evs
        .iter()
        .find(|e| e["event"] == "phase" && e["phase"] == "commit")
        .unwrap()["elapsed_s"]
        .as_f64()
        .unwrap();
    let write_s = write_end - write_start;
    eprintln!(
        "write phase {write_s:.2} s, {} progress lines",
        progress.len()
    );
    assert!(
        write_s > 3.0 * interval,
        "the conversion is too short to test the interval ({write_s} s)"
    );
    // One line per interval: not more often, and not much less.
    #[allow(clippy::cast_precision_loss)]
    let n = progress.len() as f64;
    assert!(n >= 2.0, "{}", r.stderr);
    assert!(n <= write_s / interval + 1.0, "{n} lines in {write_s} s");
    assert!(n >= write_s / interval / 3.0, "{n} lines in {write_s} s");
    assert!(progress.iter().all(|(_, t)| *t == total), "{progress:?}");
    assert!(
        progress.windows(2).all(|w| w[0].0 <= w[1].0),
        "{progress:?}"
    );
    // Rank 0 reports the other rank's units too.
    assert!(
        log.iter().any(|l| l.contains("2/2 ranks reporting")),
        "{}",
        r.stderr
    );

    // The events: the run in order, progress at the interval, to 100%.
    let k = kinds(&evs);
    assert_eq!(k[0], "started");
    assert_eq!(*k.last().unwrap(), "committed");
    assert_eq!(evs[0]["ranks"], 2);
    assert_eq!(evs[0]["inputs"].as_array().unwrap().len(), 3);
    let phases: Vec<&str> = evs
        .iter()
        .filter(|e| e["event"] == "phase")
        .map(|e| e["phase"].as_str().unwrap())
        .collect();
    assert_eq!(phases, ["scan", "plan", "write", "commit"]);
    assert!(evs.iter().all(|e| e["run"] == evs[0]["run"]));
    let elapsed: Vec<f64> = evs
        .iter()
        .map(|e| e["elapsed_s"].as_f64().unwrap())
        .collect();
    assert!(elapsed.windows(2).all(|w| w[0] <= w[1]), "{elapsed:?}");
    // The scan counts the input files, over both ranks, then ends.
    let end = last_progress(&evs, "scan");
    assert_eq!(
        (end["units_done"].as_u64(), end["units_total"].as_u64()),
        (Some(3), Some(3))
    );
    assert_eq!(end["ranks_reporting"], 2);
    let prog: Vec<&Value> = evs
        .iter()
        .filter(|e| e["event"] == "progress" && e["phase"] == "write")
        .collect();
    assert!(prog.len() >= 2, "{prog:?}");
    // Spaced by the interval, except the last (the end of the phase).
    for w in prog[..prog.len() - 1].windows(2) {
        let gap = w[1]["elapsed_s"].as_f64().unwrap() - w[0]["elapsed_s"].as_f64().unwrap();
        assert!(gap >= interval * 0.9, "progress events {gap} s apart");
    }
    let last = prog.last().unwrap();
    assert_eq!(last["units_done"], total);
    assert_eq!(last["units_total"], total);
    assert_eq!(last["bytes_done"], planned["bytes_to_write"]);
    assert_eq!(last["ranks_reporting"], 2);
    assert_eq!(last["eta_s"], 0.0);
    let done: Vec<u64> = prog
        .iter()
        .map(|p| p["units_done"].as_u64().unwrap())
        .collect();
    assert!(done.windows(2).all(|w| w[0] <= w[1]), "{done:?}");
    let committed = evs.last().unwrap();
    assert_eq!(committed["units_written"], total);
    assert_eq!(committed["output"], s(&out));
    assert_eq!(planned["mode"], "create");
    assert_eq!(planned["files"], 3);

    // --quiet: no progress at all; `--events -`: the events alone on stdout.
    let mut args = vec![
        "convert",
        "--quiet",
        "--overwrite",
        "--chunks",
        "time=8,lat=181,lon=360",
        "--progress-interval",
        "0.1",
        "--events",
        "-",
        "-o",
        s(&out),
    ];
    args.extend(files.iter().map(|p| s(p)));
    let r = zarrforge(Some(2), &args, 3 * MINUTE);
    assert!(r.ok(), "{}", r.stderr);
    assert!(
        !r.stderr.contains(" units (") && !r.stderr.contains("phase "),
        "{}",
        r.stderr
    );
    let evs = events(&r.stdout);
    assert_eq!(kinds(&evs)[0], "started");
    assert_eq!(*kinds(&evs).last().unwrap(), "committed");
    let planned = evs.iter().find(|e| e["event"] == "planned").unwrap();
    assert_eq!(planned["mode"], "overwrite");
}

/// A failure: every rank's error in the events, then `failed` with the exit
/// status the ranks return (3 ranks, a non-netCDF input).
#[test]
fn a_failed_run_ends_its_events_with_the_status_and_each_rank_error() {
    let dir = tmp();
    let good = dir.path().join("good.nc");
    rich_fixture(&good);
    let bad = dir.path().join("bad.nc");
    std::fs::write(&bad, b"not a netCDF file at all").unwrap();
    let out = dir.path().join("o.zarr");
    let ev = dir.path().join("events.jsonl");
    let r = zarrforge(
        Some(3),
        &[
            "convert",
            "--events",
            s(&ev),
            "-o",
            s(&out),
            s(&good),
            s(&bad),
        ],
        MINUTE,
    );
    assert_eq!(r.code, Some(3), "{}", r.stderr);
    let evs = events(&std::fs::read_to_string(&ev).unwrap());
    let k = kinds(&evs);
    assert_eq!(k[0], "started", "{k:?}");
    assert_eq!(*k.last().unwrap(), "failed", "{k:?}");
    assert!(k.contains(&"rank_failed"), "{k:?}");
    let failed = evs.last().unwrap();
    assert_eq!(failed["exit_status"], 3);
    assert_eq!(failed["status"], "input");
    assert_eq!(failed["resumable"], false);
    assert!(
        failed["error"].as_str().unwrap().contains("bad.nc"),
        "{failed}"
    );
    assert!(!out.join("zarr.json").exists());

    // An events file that cannot be created: nothing is read, every rank
    // fails with the store error status.
    let r = zarrforge(
        Some(2),
        &[
            "convert",
            "--events",
            "/nonexistent/dir/events.jsonl",
            "-o",
            s(&out),
            s(&good),
        ],
        MINUTE,
    );
    assert_eq!(r.code, Some(4), "{}", r.stderr);
    assert!(
        r.stderr.contains("/nonexistent/dir/events.jsonl"),
        "{}",
        r.stderr
    );
    assert!(!out.exists());
}

/// The exit status of an error class is the same in every subcommand
/// (docs/errors.md); singleton and under mpirun.
#[test]
fn every_subcommand_gives_the_same_exit_status_for_an_error_class() {
    let dir = tmp();
    let good = dir.path().join("good.nc");
    rich_fixture(&good);
    let out = dir.path().join("o.zarr");
    let r = zarrforge(
        None,
        &["convert", "--quiet", "-o", s(&out), s(&good)],
        MINUTE,
    );
    assert!(r.ok(), "{}", r.stderr);
    let missing = dir.path().join("missing.nc");
    let no_store = dir.path().join("none.zarr");
    let cases: Vec<(&str, Vec<&str>, i32)> = vec![
        // 2: usage.
        (
            "convert usage",
            vec!["convert", "--chunks", "x", "-o", s(&no_store), s(&good)],
            2,
        ),
        ("plan usage", vec!["plan", "--chunks", "x", s(&good)], 2),
        (
            "inspect usage",
            vec!["inspect", "--no-such-flag", s(&good)],
            2,
        ),
        (
            "verify usage",
            vec!["verify", "--no-such-flag", s(&good), s(&out)],
            2,
        ),
        ("bench usage", vec!["bench", "--files", "x"], 2),
        // 3: input.
        (
            "convert input",
            vec!["convert", "-o", s(&no_store), s(&missing)],
            3,
        ),
        ("plan input", vec!["plan", s(&missing)], 3),
        ("inspect input", vec!["inspect", s(&missing)], 3),
        ("verify input", vec!["verify", s(&missing), s(&out)], 3),
        // 4: store.
        ("verify store", vec!["verify", s(&good), s(&no_store)], 4),
        // 5: refused.
        (
            "convert refused",
            vec!["convert", "-o", s(&out), s(&good)],
            5,
        ),
        // 0.
        ("verify ok", vec!["verify", s(&good), s(&out)], 0),
        (
            "resume of a complete store",
            vec!["convert", "--resume", "-o", s(&out), s(&good)],
            0,
        ),
    ];
    for ranks in [None, Some(2)] {
        for (label, args, want) in &cases {
            let r = zarrforge(ranks, args, MINUTE);
            assert_eq!(
                r.code,
                Some(*want),
                "{label} ({ranks:?} ranks): {}",
                r.stderr
            );
            if *want != 0 && *want != 2 {
                assert!(
                    r.stderr.lines().any(|l| l.starts_with("zarrforge: error:")),
                    "{label}: {}",
                    r.stderr
                );
            }
        }
    }
}

/// The final progress event of `phase` (it ends each counted phase).
fn last_progress<'a>(evs: &'a [Value], phase: &str) -> &'a Value {
    evs.iter()
        .rfind(|e| e["event"] == "progress" && e["phase"] == phase)
        .unwrap_or_else(|| panic!("no progress event of {phase}: {evs:?}"))
}

/// `verify` (and `convert --verify`) follow a run the same way: progress
/// of the scan in files and of the comparison in units, then `verified`,
/// identical or not; an error that stops the comparison ends with `failed`.
#[test]
fn verify_shows_its_progress_and_ends_its_events_with_verified() {
    let dir = tmp();
    let files = dataset(dir.path(), 24);
    let out = dir.path().join("o.zarr");
    let ev = dir.path().join("convert.jsonl");
    let mut args = vec![
        "convert",
        "--quiet",
        "--verify",
        "--chunks",
        "time=2,lat=181,lon=360",
        "--events",
        s(&ev),
        "-o",
        s(&out),
    ];
    args.extend(files.iter().map(|p| s(p)));
    let r = zarrforge(Some(2), &args, 3 * MINUTE);
    assert!(r.ok(), "{}", r.stderr);
    let evs = events(&std::fs::read_to_string(&ev).unwrap());
    let k = kinds(&evs);
    assert_eq!(k[k.len() - 2..], ["verified", "committed"], "{k:?}");
    let verified = &evs[evs.len() - 2];
    assert_eq!(verified["identical"], true);
    assert_eq!(verified["mismatches"], 0);
    let end = last_progress(&evs, "verify");
    assert_eq!(end["units_done"], verified["units"]);
    assert_eq!(end["units_total"], verified["units"]);
    assert!(end["bytes_done"].as_u64().unwrap() > 0);
    assert_eq!(end["bytes_done"], end["bytes_total"]);

    // `verify` alone, its events on stdout and its report on stderr.
    let verify = |store: &Path| {
        let mut args = vec!["verify", "--progress-interval", "0.2", "--events", "-"];
        args.extend(files.iter().map(|p| s(p)));
        args.push(s(store));
        zarrforge(Some(2), &args, 3 * MINUTE)
    };
    let r = verify(&out);
    assert!(r.ok(), "{}", r.stderr);
    assert!(
        r.stderr.contains("zarrforge verify: ") && r.stderr.contains(": identical"),
        "{}",
        r.stderr
    );
    let evs = events(&r.stdout);
    let k = kinds(&evs);
    assert_eq!(k[0], "started");
    assert_eq!(evs[0]["command"], "verify");
    assert_eq!(evs[0]["output"], s(&out));
    assert_eq!(*k.last().unwrap(), "verified", "{k:?}");
    let phases: Vec<&str> = evs
        .iter()
        .filter(|e| e["event"] == "phase")
        .map(|e| e["phase"].as_str().unwrap())
        .collect();
    assert_eq!(phases, ["scan", "verify"]);
    let scan = last_progress(&evs, "scan");
    assert_eq!(
        (scan["units_done"].as_u64(), scan["units_total"].as_u64()),
        (Some(3), Some(3))
    );
    assert_eq!(scan["ranks_reporting"], 2);
    let end = last_progress(&evs, "verify");
    let verified = evs.last().unwrap();
    assert_eq!(end["units_done"], verified["units"]);
    assert_eq!(end["units_total"], verified["units"]);
    assert_eq!(end["ranks_reporting"], 2);
    assert_eq!(verified["identical"], true);
    assert_eq!(verified["files"], 3);

    // A chunk gone: the comparison ends, with its differences, exit 1.
    std::fs::remove_file(out.join("t2m/c/0/0/0")).unwrap();
    let r = verify(&out);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    let evs = events(&r.stdout);
    let verified = evs.last().unwrap();
    assert_eq!(verified["event"], "verified");
    assert_eq!(verified["identical"], false);
    assert!(verified["mismatches"].as_u64().unwrap() > 0, "{verified}");

    // No store: the comparison cannot start.
    let r = verify(&dir.path().join("none.zarr"));
    assert_ne!(r.code, Some(0));
    let evs = events(&r.stdout);
    let failed = evs.last().unwrap();
    assert_eq!(failed["event"], "failed");
    assert_eq!(failed["exit_status"].as_i64(), r.code.map(i64::from));
}
