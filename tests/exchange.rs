//! The exchange path: the same stores, byte for byte, as the direct path,
//! whatever the rank count, the layout (chunks, shards, v2), the inputs
//! (netCDF-4 with time re-encoding, netCDF-3) and the way the store is
//! built (at once, by appends, resumed after a failure on another rank
//! count, across simulated nodes); and a failure in the middle of an
//! exchange stops every rank with the error.

// A test reads top to bottom as one scenario.
#![allow(clippy::too_many_lines)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::*;
use crate::multifile::{assert_same_files, comparable, series, Part};
use crate::reliability::{journal_units, rank_pids, signal, spawn, wait_for};

const LENS: [usize; 6] = [3, 2, 4, 3, 2, 4];

/// Files with time re-encoding (two files in other units), five latitudes.
fn inputs(dir: &Path, classic: bool) -> Vec<PathBuf> {
    series(dir, "x", &LENS, |i, p: &mut Part| {
        p.lat = 5;
        p.vars = vec!["t2m", "p", "u10"];
        p.classic = classic;
        p.units = match i {
            2 => "days since 2000-01-01 00:00:00".into(),
            4 => "hours since 2000-01-01 05:00:00".into(),
            _ => p.units.clone(),
        };
    })
}

fn convert(ranks: Option<usize>, out: &Path, files: &[PathBuf], extra: &[&str]) -> String {
    let mut args = vec!["convert", "--quiet", "--history", "-o", s(out)];
    args.extend(extra);
    args.extend(files.iter().map(|p| s(p)));
    let r = zarrforge(ranks, &args, MINUTE);
    assert!(r.ok(), "{ranks:?} {extra:?}: {}", r.stderr);
    r.stderr
}

#[test]
fn the_exchange_path_writes_the_direct_paths_bytes_on_1_2_3_ranks() {
    let dir = tmp();
    let nc4 = inputs(&dir.path().join("nc4"), false);
    let nc3 = inputs(&dir.path().join("nc3"), true);
    for (label, files, layout) in [
        ("chunks", &nc4, vec!["--chunks", "time=9,lat=2,lon=3"]),
        (
            "shards",
            &nc4,
            vec![
                "--chunks",
                "time=3,lat=2,lon=2",
                "--shards",
                "time=9,lat=4,lon=4",
            ],
        ),
        (
            "v2",
            &nc4,
            vec!["--chunks", "time=7,lat=3,lon=4", "--zarr-format", "2"],
        ),
        ("netcdf3", &nc3, vec!["--chunks", "time=18,lat=1,lon=4"]),
    ] {
        let direct = dir.path().join(format!("{label}-direct.zarr"));
        let mut extra = layout.clone();
        extra.extend(["--exchange", "never"]);
        let text = convert(None, &direct, files, &extra);
        assert!(!text.contains("exchange:"), "{text}");
        let want = comparable(&direct);
        for ranks in [None, Some(1), Some(2), Some(3)] {
            let out = dir.path().join(format!("{label}-{ranks:?}.zarr"));
            let mut extra = layout.clone();
            extra.extend(["--exchange", "always"]);
            let text = convert(ranks, &out, files, &extra);
            assert!(
                text.contains("exchange:") && text.contains("1 pass(es)"),
                "{text}"
            );
            assert_same_files(&want, &comparable(&out), &format!("{label} {ranks:?}"));
        }
    }
}

/// Appending to a time-series store rewrites the last time chunk of every
/// spatial block: on the exchange path the stored part comes from the
/// store and only the new steps from the inputs.
#[test]
fn appends_on_the_exchange_path_equal_one_conversion() {
    let dir = tmp();
    let files = inputs(&dir.path().join("in"), false);
    let layout = ["--chunks", "time=5,lat=2,lon=3"];
    let whole = dir.path().join("whole.zarr");
    let mut extra = layout.to_vec();
    extra.extend(["--exchange", "never"]);
    convert(Some(2), &whole, &files, &extra);
    let parts = dir.path().join("parts.zarr");
    let mut extra = layout.to_vec();
    extra.extend(["--exchange", "always"]);
    convert(Some(2), &parts, &files[..2], &extra);
    let mut append = extra.clone();
    append.push("--append");
    convert(Some(3), &parts, &files[2..4], &append);
    let text = convert(None, &parts, &files[4..], &append);
    assert!(
        text.contains("appended to") && text.contains("exchange:"),
        "{text}"
    );
    assert_same_files(&comparable(&whole), &comparable(&parts), "appended");
}

/// A rank assembles a round while the one before is encoded, and decodes
/// a step's blocks while it exchanges the step before, when its memory
/// holds two rounds without decoding any source block twice: the same
/// bytes as rounds one after the other, within `--max-memory`.
#[test]
fn overlapped_rounds_write_the_same_bytes_within_the_budget() {
    let dir = tmp();
    let files = generated(&dir.path().join("gen"), 4);
    let layout = ["--chunks", "time=96,lat=19,lon=36", "--exchange", "always"];
    // Two ranks at 100 MiB: rounds half as large would decode each block
    // more often, so they follow one another.
    let plain = dir.path().join("plain.zarr");
    let mut extra = layout.to_vec();
    extra.extend(["--max-memory", "100M"]);
    let text = convert(Some(2), &plain, &files, &extra);
    assert!(
        text.contains("2 pass(es)") && !text.contains("overlapped"),
        "{text}"
    );
    let want = comparable(&plain);
    for (ranks, threads, memory) in [(None, "2", "200M"), (Some(3), "1", "1G")] {
        let out = dir.path().join(format!("overlapped-{ranks:?}.zarr"));
        let report = dir.path().join(format!("overlapped-{ranks:?}.json"));
        let mut extra = layout.to_vec();
        extra.extend(["--threads", threads, "--max-memory", memory]);
        extra.extend(["--report", s(&report)]);
        let text = convert(ranks, &out, &files, &extra);
        assert!(
            text.contains(" round(s) overlapped, 1 pass(es)"),
            "{ranks:?}: {text}"
        );
        assert_same_files(&want, &comparable(&out), &format!("{ranks:?}"));
        let r: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
        assert_eq!(r["exchange"]["overlapped"], true, "{r}");
        let budget = if memory == "200M" { 200.0 } else { 1024.0 };
        for rank in r["per_rank"].as_array().unwrap() {
            let rss = rank["peak_rss_mib"].as_f64().unwrap();
            assert!(rss > 0.0 && rss <= budget, "{ranks:?}: {rss} MiB");
        }
    }
}

/// A generated dataset large enough for several rounds under a small
/// `--max-memory`: `files` files of 24 steps of 181 × 360, deflated, one
/// step per source chunk.
fn generated(dir: &Path, files: usize) -> Vec<PathBuf> {
    let files = files.to_string();
    let r = zarrforge(
        None,
        &[
            "bench",
            "--generate-only",
            "--dir",
            s(dir),
            "--files",
            &files,
            "--time",
            "24",
            "--lat",
            "181",
            "--lon",
            "360",
        ],
        MINUTE,
    );
    assert!(r.ok(), "{}", r.stderr);
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("inputs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

/// Flips bytes in the middle of the stored (deflated) chunk `index` of
/// `var` in `path`, keeping the file's size and modification time; returns
/// the original bytes to put back.
fn corrupt_chunk(path: &Path, var: &str, index: usize) -> (u64, Vec<u8>) {
    let (offset, size) = {
        let f = hdf5::File::open(path).unwrap();
        let ds = f.dataset(var).unwrap();
        let info = ds.chunk_info(index).unwrap();
        (info.addr, info.size)
    };
    let mut bytes = std::fs::read(path).unwrap();
    let at = usize::try_from(offset + size / 4).unwrap();
    let n = usize::try_from(size / 2).unwrap();
    let old = bytes[at..at + n].to_vec();
    for b in &mut bytes[at..at + n] {
        *b ^= 0x5a;
    }
    rewrite_keeping_mtime(path, &bytes);
    (offset + size / 4, old)
}

fn rewrite_keeping_mtime(path: &Path, bytes: &[u8]) {
    let mtime = std::fs::metadata(path).unwrap().modified().unwrap();
    std::fs::write(path, bytes).unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.set_modified(mtime).unwrap();
}

#[test]
fn a_failure_mid_exchange_stops_every_rank_and_resume_finishes_on_another_rank_count() {
    let dir = tmp();
    let files = generated(&dir.path().join("gen"), 8);
    let layout = ["--chunks", "time=192,lat=19,lon=36", "--max-memory", "100M"];
    let clean = dir.path().join("clean.zarr");
    let text = convert(Some(2), &clean, &files, &layout);
    // The time-series layout takes the exchange path by itself, in several
    // rounds under this budget.
    assert!(text.contains("exchange: 3 array(s)"), "{text}");
    assert!(!text.contains(" 3 round(s)"), "{text}");

    // A damaged source chunk in a late file of the last variable: the
    // rank that decodes it fails during a round; every rank stops.
    let victim = &files[6];
    let (at, old) = corrupt_chunk(victim, "msl", 5);
    let out = dir.path().join("failed.zarr");
    let mut args = vec!["convert", "--quiet", "-o", s(&out)];
    args.extend(layout);
    args.extend(files.iter().map(|p| s(p)));
    let r = zarrforge(Some(3), &args, 2 * MINUTE);
    assert!(!r.ok(), "a damaged chunk was accepted");
    assert!(
        r.stderr.contains(s(victim)) && r.stderr.contains("msl"),
        "the error names the file and the variable: {}",
        r.stderr
    );
    assert!(!out.join("zarr.json").exists(), "a failed run committed");
    assert!(
        out.join(".zarrforge").exists(),
        "the failed run left no journal"
    );

    // Put the bytes back; the resume on two ranks reads only what its
    // unfinished units need and ends with the clean run's bytes.
    let mut bytes = std::fs::read(victim).unwrap();
    let at = usize::try_from(at).unwrap();
    bytes[at..at + old.len()].copy_from_slice(&old);
    rewrite_keeping_mtime(victim, &bytes);
    args.push("--resume");
    let r = zarrforge(Some(2), &args, 2 * MINUTE);
    assert!(r.ok(), "{}", r.stderr);
    assert!(r.stderr.contains("resumed:"), "{}", r.stderr);
    assert_same_files(&comparable(&clean), &comparable(&out), "resumed");
}

/// SIGTERM to one rank, then SIGKILL of one rank, while the ranks are in
/// the exchange rounds: every rank ends, nothing is committed, and the
/// interrupted store resumes on another rank count to the clean bytes.
#[test]
fn sigterm_or_a_killed_rank_during_the_rounds_ends_every_rank() {
    let dir = tmp();
    let files = generated(&dir.path().join("gen"), 16);
    let layout = ["--chunks", "time=384,lat=19,lon=36", "--max-memory", "100M"];
    let clean = dir.path().join("clean.zarr");
    convert(Some(2), &clean, &files, &layout);
    for (label, sig) in [("term", libc::SIGTERM), ("kill", libc::SIGKILL)] {
        let out = dir.path().join(format!("{label}.zarr"));
        let mut args = vec!["convert", "--quiet", "-o", s(&out)];
        args.extend(layout);
        args.extend(files.iter().map(|p| s(p)));
        let mut child = spawn(3, &args);
        let start = std::time::Instant::now();
        let mut finished = false;
        while journal_units(&out) < 1 {
            assert!(start.elapsed() < 2 * MINUTE, "{label}: no journal progress");
            if child.try_wait().unwrap().is_some() {
                finished = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        if !finished {
            let pids = rank_pids(s(&out));
            assert_eq!(pids.len(), 3, "{label}: ranks {pids:?}");
            signal(pids[1], sig);
        }
        let (code, err) = wait_for(&mut child, MINUTE);
        if code == Some(0) {
            // The rounds were done when the signal came.
            assert!(out.join("zarr.json").exists(), "{label}: {err}");
            continue;
        }
        assert!(!out.join("zarr.json").exists(), "{label}: committed");
        if sig == libc::SIGTERM {
            assert!(err.contains("interrupted by SIGTERM"), "{err}");
        }
        // mpirun may return while a rank is still being torn down.
        let gone = std::time::Instant::now();
        while !rank_pids(s(&out)).is_empty() {
            assert!(gone.elapsed() < MINUTE, "{label}: ranks left running");
            std::thread::sleep(Duration::from_millis(20));
        }
        args.push("--resume");
        let r = zarrforge(Some(2), &args, 2 * MINUTE);
        assert!(r.ok(), "{label} resume: {}", r.stderr);
        assert_same_files(&comparable(&clean), &comparable(&out), label);
    }
}

/// The fakenodes launcher shipped with the tests (`tests/fakenodes`): Open
/// MPI sees distinct hosts and uses TCP between them.
fn fakenodes() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fakenodes/run.sh")
}

#[test]
fn two_simulated_nodes_write_the_same_bytes() {
    // Off /tmp, the binary too: every simulated node has a private /tmp
    // (and the checkout may be under /tmp).
    let work = Path::new("/var/tmp").join(format!("zarrforge-fakenodes-{}", std::process::id()));
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
    let files = inputs(&work.join("in"), false);
    let layout = ["--chunks", "time=9,lat=2,lon=3"];
    let direct = work.join("direct.zarr");
    let mut extra = layout.to_vec();
    extra.extend(["--exchange", "never"]);
    convert(None, &direct, &files, &extra);
    let out = work.join("nodes.zarr");
    let events = work.join("events.jsonl");
    let mut cmd = std::process::Command::new("bash");
    cmd.arg(launcher.join("run.sh"))
        .args(["2", "2", "--", s(&bin), "convert", "--quiet", "--history"])
        .args(["--events", s(&events), "--progress-interval", "0.2"])
        .args(["--exchange", "always", "-o", s(&out)])
        .args(layout)
        .args(files.iter().map(|p| s(p)))
        .current_dir(&work)
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out_put = wait_output(child, Duration::from_mins(3));
    assert!(out_put.0 == Some(0), "fakenodes run: {}", out_put.1);
    assert!(out_put.1.contains("exchange:"), "{}", out_put.1);
    assert_same_files(&comparable(&direct), &comparable(&out), "2 nodes x 2 ranks");
    // Rank 0 heard from the ranks of the other node: the last progress
    // event counts every rank's units.
    let evs: Vec<serde_json::Value> = std::fs::read_to_string(&events)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(evs[0]["nodes"], 2, "{:?}", evs[0]);
    let last = evs.iter().rev().find(|e| e["event"] == "progress").unwrap();
    assert_eq!(last["ranks_reporting"], 4, "{last}");
    assert_eq!(last["units_done"], last["units_total"], "{last}");
    assert_eq!(evs.last().unwrap()["event"], "committed");
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
