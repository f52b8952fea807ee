//! Fault tolerance: a rank killed mid-run and the job resumed with another
//! rank count, SIGTERM, failure on one rank, the lock, verify, disk full.

// A test reads top to bottom as one scenario.
#![allow(clippy::too_many_lines)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use crate::multifile::{assert_same_files, comparable};

const CHUNKS: &str = "time=4,lat=181,lon=360";

/// A synthetic dataset of `steps` time steps (3 float32 fields of 361 x 720,
/// deflated): 96 steps are 300 MB uncompressed.
fn dataset(dir: &Path, steps: usize) -> PathBuf {
    let path = dir.join("big.nc");
    let r = zarrforge(
        None,
        &["generate", "--time", &steps.to_string(), s(&path)],
        2 * MINUTE,
    );
    assert!(r.ok(), "{}", r.stderr);
    path
}

/// `mpirun -np N zarrforge ARGS` in the background.
pub(crate) fn spawn(ranks: usize, args: &[&str]) -> Child {
    Command::new("mpirun")
        .args(["-np", &ranks.to_string(), BIN])
        .args(args)
        .env("OMPI_MCA_orte_tmpdir_base", ompi_session_base())
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("OMPI_MCA_rmaps_base_oversubscribe", "1")
        .env("HDF5_USE_FILE_LOCKING", "FALSE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mpirun")
}

/// PIDs of the zarrforge ranks whose command line mentions `marker`.
pub(crate) fn rank_pids(marker: &str) -> Vec<i32> {
    let bin = std::fs::canonicalize(BIN).unwrap();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let exe = std::fs::read_link(e.path().join("exe")).ok();
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        if exe.as_deref() == Some(bin.as_path()) && String::from_utf8_lossy(&cmd).contains(marker) {
            out.push(pid);
        }
    }
    out.sort_unstable();
    out
}

/// Units recorded in the store's journal so far.
pub(crate) fn journal_units(store: &Path) -> u64 {
    std::fs::read_dir(store.join(".zarrforge/journal")).map_or(0, |d| {
        d.flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("units-"))
            .map(|e| e.metadata().map_or(0, |m| m.len() / 8))
            .sum()
    })
}

pub(crate) fn wait_for(child: &mut Child, limit: Duration) -> (Option<i32>, String) {
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            let err = child
                .stderr
                .take()
                .map(|p| std::io::read_to_string(p).unwrap_or_default())
                .unwrap_or_default();
            return (st.code(), err);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("mpirun did not end within {limit:?} (hang)");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub(crate) fn signal(pid: i32, sig: libc::c_int) {
    // SAFETY: sending a signal to a child process of this test.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// SIGKILLs rank 1 of the two-rank run `child` writing `out` once its
/// journal records `units`, and waits until every rank of it is gone
/// (mpirun may return while the other rank is still being torn down).
fn kill_rank_1_after(child: &mut Child, out: &Path, units: u64) {
    let start = Instant::now();
    while journal_units(out) < units {
        assert!(start.elapsed() < 2 * MINUTE, "no journal progress");
        assert!(
            child.try_wait().unwrap().is_none(),
            "finished before the kill"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let pids = rank_pids(s(out));
    assert_eq!(pids.len(), 2, "ranks: {pids:?}");
    signal(pids[1], libc::SIGKILL);
    let (code, _) = wait_for(child, MINUTE);
    assert_ne!(code, Some(0));
    let gone = Instant::now();
    while !rank_pids(s(out)).is_empty() {
        assert!(
            gone.elapsed() < MINUTE,
            "ranks of the killed job still alive"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn report(path: &Path) -> serde_json::Value {
    json(path)
}

/// The kill test: SIGKILL one of two ranks after the journal shows
/// progress, resume with three ranks: the store equals a clean run's, chunk
/// for chunk, and no finished unit was redone.
#[test]
fn a_killed_run_resumes_with_another_rank_count() {
    let dir = tmp();
    let src = dataset(dir.path(), 96);
    let clean = dir.path().join("clean.zarr");
    let r = zarrforge(
        Some(2),
        &[
            "convert",
            "--quiet",
            "--chunks",
            CHUNKS,
            "-o",
            s(&clean),
            s(&src),
        ],
        3 * MINUTE,
    );
    assert!(r.ok(), "{}", r.stderr);
    let out = dir.path().join("killed.zarr");
    let mut child = spawn(
        2,
        &[
            "convert",
            "--quiet",
            "--chunks",
            CHUNKS,
            "-o",
            s(&out),
            s(&src),
        ],
    );
    // Wait for the first journal batch (a second's work: a third of the
    // 291 units or so on two cores).
    kill_rank_1_after(&mut child, &out, 30);
    assert!(!out.join("zarr.json").exists(), "a killed run committed");
    let before = journal_units(&out);
    assert!((30..291).contains(&before), "{before}");

    // Without --resume the unfinished store is refused, untouched.
    let r = zarrforge(
        Some(2),
        &[
            "convert",
            "--quiet",
            "--chunks",
            CHUNKS,
            "-o",
            s(&out),
            s(&src),
        ],
        MINUTE,
    );
    assert_eq!(r.code, Some(5));
    assert!(
        r.stderr.contains("unfinished conversion: use --resume"),
        "{}",
        r.stderr
    );

    let rep = dir.path().join("resume.json");
    let t = Instant::now();
    let r = zarrforge(
        Some(3),
        &[
            "convert",
            "--quiet",
            "--resume",
            "--report",
            s(&rep),
            "--chunks",
            CHUNKS,
            "-o",
            s(&out),
            s(&src),
        ],
        3 * MINUTE,
    );
    let resumed_secs = t.elapsed().as_secs_f64();
    assert!(r.ok(), "{}", r.stderr);
    let rep = report(&rep);
    let total = rep["total_units"].as_u64().unwrap();
    let skipped = rep["units_resumed"].as_u64().unwrap();
    let written = rep["units"].as_u64().unwrap();
    assert_eq!(total, 291);
    assert!(
        skipped >= before,
        "journal had {before}, resume skipped {skipped}"
    );
    assert_eq!(skipped + written, total, "units redone or missed");
    eprintln!(
        "kill test: {before} units journaled before the kill, {skipped} skipped, {written} written by the resumed run in {resumed_secs:.2} s"
    );
    let (a, b) = (snapshot(&clean), snapshot(&out));
    let names = |x: &[(PathBuf, Vec<u8>)]| x.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>();
    assert_eq!(
        names(&a),
        names(&b),
        "resumed store has other files than a clean run"
    );
    let differ: Vec<&PathBuf> = a
        .iter()
        .zip(&b)
        .filter(|(x, y)| x.1 != y.1)
        .map(|(x, _)| &x.0)
        .collect();
    assert!(
        differ.is_empty(),
        "resumed store differs from a clean run in {differ:?}"
    );
    // Resuming a complete store does nothing.
    let r = zarrforge(
        Some(2),
        &[
            "convert",
            "--resume",
            "--chunks",
            CHUNKS,
            "-o",
            s(&out),
            s(&src),
        ],
        MINUTE,
    );
    assert!(r.ok(), "{}", r.stderr);
    assert!(r.stderr.contains("already complete"), "{}", r.stderr);
    // Resuming with other options is refused.
    let r = zarrforge(
        None,
        &[
            "convert",
            "--resume",
            "--chunks",
            "time=8",
            "-o",
            s(&out),
            s(&src),
        ],
        MINUTE,
    );
    assert_eq!(r.code, Some(5));
    assert!(r.stderr.contains("cannot resume"), "{}", r.stderr);
}

/// Inputs are files, however they are named: a run started with absolute
/// paths (as a shell expands `/data/in/*.nc`) and killed resumes with the
/// relative glob `'in/*.nc'` from `/data`, keeping the units it finished,
/// and the store verifies; `--resume` of the complete store and the same
/// append again find their work done. Other inputs are refused with the
/// command that keeps the finished units.
#[test]
fn a_resume_knows_its_inputs_however_they_are_named() {
    let dir = tmp();
    let data = std::fs::canonicalize(dir.path()).unwrap().join("data");
    let inputs = data.join("in");
    std::fs::create_dir_all(&inputs).unwrap();
    // 4 files of a day each: 300 MB in all, as `dataset(.., 96)`.
    let files: Vec<PathBuf> = (0..4)
        .map(|i| {
            let f = inputs.join(format!("f_{i:03}.nc"));
            let r = zarrforge(
                None,
                &["generate", "--time", "24", "--t0", &i.to_string(), s(&f)],
                2 * MINUTE,
            );
            assert!(r.ok(), "{}", r.stderr);
            f
        })
        .collect();
    let out = data.join("out.zarr");
    let mut args = vec!["convert", "--quiet", "--chunks", CHUNKS, "-o", s(&out)];
    args.extend(files.iter().map(|f| s(f)));
    let mut child = spawn(2, &args);
    kill_rank_1_after(&mut child, &out, 10);
    let before = journal_units(&out);
    assert!(before >= 10, "{before}");

    // Other inputs (three of the four): refused, nothing changed, and the
    // advice keeps the finished units.
    let r = zarrforge_in(
        &data,
        Some(2),
        &[
            "convert",
            "--quiet",
            "--resume",
            "--chunks",
            CHUNKS,
            "-o",
            "out.zarr",
            "in/f_00[0-2].nc",
        ],
        MINUTE,
    );
    assert_eq!(r.code, Some(5), "{}", r.stderr);
    let keep = format!(
        "run the same command with --resume and its inputs, {} ... {} (4 files)",
        files[0].display(),
        files[3].display()
    );
    assert!(r.stderr.contains(&keep), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("f_003.nc of the interrupted run is not among this run's"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("to start over, replace --resume with --overwrite"),
        "{}",
        r.stderr
    );
    assert_eq!(journal_units(&out), before, "a refused resume wrote");
    assert!(!out.join("zarr.json").exists());

    // The same files through a relative glob from another directory.
    let rep = data.join("resume.json");
    let r = zarrforge_in(
        &data,
        Some(2),
        &[
            "convert",
            "--quiet",
            "--resume",
            "--report",
            "resume.json",
            "--chunks",
            CHUNKS,
            "-o",
            "out.zarr",
            "in/*.nc",
        ],
        3 * MINUTE,
    );
    assert!(r.ok(), "{}", r.stderr);
    let rep = report(&rep);
    let total = rep["total_units"].as_u64().unwrap();
    let skipped = rep["units_resumed"].as_u64().unwrap();
    let written = rep["units"].as_u64().unwrap();
    assert!(
        skipped >= before,
        "journal had {before}, resume skipped {skipped}"
    );
    assert_eq!(skipped + written, total, "units redone or missed");
    let mut verify = vec!["verify"];
    verify.extend(files.iter().map(|f| s(f)));
    verify.push(s(&out));
    let r = zarrforge(Some(2), &verify, 3 * MINUTE);
    assert!(r.ok(), "{}\n{}", r.stdout, r.stderr);

    // The complete store, resumed with the paths of the first run: done.
    let state = std::fs::read(out.join(".zarrforge/dataset.bin")).unwrap();
    let root = std::fs::read(out.join("zarr.json")).unwrap();
    let r = zarrforge(Some(2), &args_with(&args, "--resume"), MINUTE);
    assert!(r.ok(), "{}", r.stderr);
    assert!(r.stderr.contains("already complete"), "{}", r.stderr);
    // The same append run again, named another way: nothing new.
    let r = zarrforge_in(
        &data,
        Some(2),
        &[
            "convert", "--quiet", "--append", "-o", "out.zarr", "in/*.nc",
        ],
        MINUTE,
    );
    assert!(r.ok(), "{}", r.stderr);
    assert_eq!(std::fs::read(out.join("zarr.json")).unwrap(), root);
    assert_eq!(
        std::fs::read(out.join(".zarrforge/dataset.bin")).unwrap(),
        state
    );
}

/// `args` with `flag` after the subcommand.
fn args_with<'a>(args: &[&'a str], flag: &'a str) -> Vec<&'a str> {
    let mut v = args.to_vec();
    v.insert(1, flag);
    v
}

/// SIGTERM (Slurm's warning before the time limit, scancel): every rank
/// stops at its next unit, records its work and exits non-zero; --resume
/// finishes.
#[test]
fn sigterm_stops_cleanly_and_resume_finishes() {
    let dir = tmp();
    let src = dataset(dir.path(), 96);
    let out = dir.path().join("term.zarr");
    let events = dir.path().join("events.jsonl");
    let mut child = spawn(
        2,
        &[
            "convert",
            "--quiet",
            "--events",
            s(&events),
            "--chunks",
            CHUNKS,
            "-o",
            s(&out),
            s(&src),
        ],
    );
    let start = Instant::now();
    while journal_units(&out) < 1 {
        assert!(start.elapsed() < 2 * MINUTE, "no journal progress");
        std::thread::sleep(Duration::from_millis(10));
    }
    for pid in rank_pids(s(&out)) {
        signal(pid, libc::SIGTERM);
    }
    let (code, err) = wait_for(&mut child, MINUTE);
    if code == Some(0) {
        // The ranks had finished their units when the signal came.
        assert!(out.join("zarr.json").exists(), "{err}");
        return;
    }
    assert!(err.contains("interrupted by SIGTERM"), "{err}");
    assert_eq!(
        code,
        Some(75),
        "an interrupted run exits with EX_TEMPFAIL: {err}"
    );
    // The events end with the interruption, resumable, after each rank's.
    let text = std::fs::read_to_string(&events).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let last = lines.last().unwrap();
    assert_eq!(last["event"], "failed", "{text}");
    assert_eq!(last["exit_status"], 75, "{text}");
    assert_eq!(last["status"], "interrupted", "{text}");
    assert_eq!(last["resumable"], true, "{text}");
    assert!(
        lines
            .iter()
            .any(|l| l["event"] == "rank_failed" && l["resumable"] == true),
        "{text}"
    );
    eprintln!(
        "sigterm: stopped after {} journaled units",
        journal_units(&out)
    );
    assert!(!out.join("zarr.json").exists());
    assert!(!out.join(".zarrforge/lock").exists(), "lock left behind");
    let r = zarrforge(
        Some(2),
        &[
            "convert",
            "--quiet",
            "--resume",
            "--verify",
            "--chunks",
            CHUNKS,
            "-o",
            s(&out),
            s(&src),
        ],
        3 * MINUTE,
    );
    assert!(r.ok(), "{}", r.stderr);
    assert!(r.stdout.contains("identical"), "{}", r.stdout);
}

/// A read error on one rank stops every rank early; nothing is committed.
#[test]
fn a_failure_on_one_rank_stops_all_ranks() {
    let dir = tmp();
    let src = dataset(dir.path(), 48);
    // Corrupt the last part of the file: deflated chunks of the last steps,
    // which only the last rank reads.
    let mut bytes = std::fs::read(&src).unwrap();
    let n = bytes.len();
    for b in &mut bytes[n - n / 8..n - 4096] {
        *b ^= 0x5a;
    }
    let bad = dir.path().join("bad.nc");
    std::fs::write(&bad, &bytes).unwrap();
    let out = dir.path().join("o.zarr");
    let t = Instant::now();
    let r = zarrforge(
        Some(2),
        &[
            "convert",
            "--quiet",
            "--chunks",
            CHUNKS,
            "-o",
            s(&out),
            s(&bad),
        ],
        MINUTE,
    );
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(r.code, Some(3), "{}", r.stderr);
    let ours: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("zarrforge"))
        .collect();
    assert_eq!(ours.len(), 1, "{}", r.stderr);
    assert!(ours[0].contains("bad.nc"), "{}", ours[0]);
    assert!(!out.join("zarr.json").exists(), "committed after a failure");
    assert!(!out.join(".zarrforge/lock").exists(), "lock left behind");
    eprintln!("failure on one rank: all ranks ended in {secs:.2} s");
}

#[test]
fn a_second_writer_is_locked_out() {
    let dir = tmp();
    let src = dataset(dir.path(), 8);
    let out = dir.path().join("o.zarr");
    // A run that died (a lock and a journal, no commit).
    std::fs::create_dir_all(out.join(".zarrforge")).unwrap();
    std::fs::write(
        out.join(".zarrforge/store.json"),
        br#"{"writer": "zarrforge"}"#,
    )
    .unwrap();
    let host = String::from_utf8(Command::new("hostname").output().unwrap().stdout).unwrap();
    let live = format!(
        r#"{{"host": "{}", "pid": {}, "job": null, "since": "2026-01-01T00:00:00Z"}}"#,
        host.trim(),
        std::process::id()
    );
    std::fs::write(out.join(".zarrforge/lock"), &live).unwrap();
    let r = zarrforge(
        Some(2),
        &["convert", "--quiet", "--resume", "-o", s(&out), s(&src)],
        MINUTE,
    );
    assert_eq!(r.code, Some(6));
    assert!(
        r.stderr.contains("is locked by another zarrforge run"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(&format!("pid {}", std::process::id())),
        "{}",
        r.stderr
    );
    let r = zarrforge(
        Some(2),
        &["convert", "--quiet", "--overwrite", "-o", s(&out), s(&src)],
        MINUTE,
    );
    assert_eq!(r.code, Some(6), "overwrote a locked store");
    assert!(out.join(".zarrforge/lock").exists());
    // A lock whose process is gone is stale: --resume takes it over.
    let stale = live.replace(&std::process::id().to_string(), "4194300");
    std::fs::write(out.join(".zarrforge/lock"), &stale).unwrap();
    let r = zarrforge(
        None,
        &["convert", "--quiet", "-o", s(&out), s(&src)],
        MINUTE,
    );
    assert_eq!(r.code, Some(5));
    let r = zarrforge(
        Some(2),
        &["convert", "--quiet", "--resume", "-o", s(&out), s(&src)],
        MINUTE,
    );
    assert!(r.ok(), "{}", r.stderr);
    assert!(!out.join(".zarrforge/lock").exists());
    // --break-lock removes a live lock.
    std::fs::write(out.join(".zarrforge/lock"), &live).unwrap();
    let r = zarrforge(
        None,
        &[
            "convert",
            "--quiet",
            "--overwrite",
            "--break-lock",
            "-o",
            s(&out),
            s(&src),
        ],
        MINUTE,
    );
    assert!(r.ok(), "{}", r.stderr);
}

#[test]
fn verify_finds_an_altered_chunk() {
    let dir = tmp();
    let src = dataset(dir.path(), 8);
    let out = dir.path().join("o.zarr");
    let r = zarrforge(
        Some(2),
        &[
            "convert",
            "--quiet",
            "--verify",
            "--chunks",
            "time=2,lat=181,lon=360",
            "-o",
            s(&out),
            s(&src),
        ],
        MINUTE,
    );
    assert!(r.ok(), "{}", r.stderr);
    assert!(r.stdout.contains("identical"), "{}", r.stdout);
    for ranks in [None, Some(3)] {
        let r = zarrforge(ranks, &["verify", s(&src), s(&out)], MINUTE);
        assert!(r.ok(), "{}", r.stderr);
    }
    // Replace one chunk by another: same size, valid, wrong values.
    std::fs::copy(out.join("t2m/c/0/0/1"), out.join("t2m/c/1/0/1")).unwrap();
    let r = zarrforge(Some(2), &["verify", s(&src), s(&out)], MINUTE);
    assert_eq!(r.code, Some(1), "{}", r.stdout);
    assert!(
        r.stdout.contains("value(s) differ") && r.stdout.contains("t2m[2, 0, 360]"),
        "{}",
        r.stdout
    );
    assert!(
        r.stderr.contains("differs from its sources"),
        "{}",
        r.stderr
    );
    // An attribute changed in the metadata.
    let meta = out.join("u10/zarr.json");
    let text = std::fs::read_to_string(&meta)
        .unwrap()
        .replace("m s-1", "km/h");
    std::fs::write(&meta, text).unwrap();
    let r = zarrforge(None, &["verify", s(&src), s(&out)], MINUTE);
    assert_eq!(r.code, Some(1));
    assert!(
        r.stdout
            .contains("'u10' attribute 'units': store \"km/h\", sources \"m s-1\""),
        "{}",
        r.stdout
    );
}

/// Disk full: a size-limited tmpfs (mounted by the test; root or a user
/// namespace is needed). The error names the path and says the store is
/// resumable; after the filesystem grows, --resume finishes.
#[test]
fn disk_full_is_reported_and_resumable() {
    let dir = tmp();
    let src = dataset(dir.path(), 16);
    let small = dir.path().join("small");
    std::fs::create_dir(&small).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=3m", "tmpfs", s(&small)])
        .status()
        .is_ok_and(|st| st.success());
    assert!(
        mounted,
        "cannot mount a tmpfs for the disk-full test (needs root or CAP_SYS_ADMIN)"
    );
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(small.clone());
    let out = small.join("o.zarr");
    let r = zarrforge(
        Some(2),
        &[
            "convert",
            "--quiet",
            "--chunks",
            CHUNKS,
            "-o",
            s(&out),
            s(&src),
        ],
        MINUTE,
    );
    assert_eq!(r.code, Some(4), "{}", r.stderr);
    assert!(
        r.stderr.contains("disk full") && r.stderr.contains("No space left on device"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains(s(&out)), "no path: {}", r.stderr);
    assert!(r.stderr.contains("--resume"), "{}", r.stderr);
    assert!(!out.join("zarr.json").exists());
    let grow = Command::new("mount")
        .args(["-o", "remount,size=256m", s(&small)])
        .status()
        .unwrap();
    assert!(grow.success());
    let r = zarrforge(
        Some(2),
        &[
            "convert",
            "--quiet",
            "--resume",
            "--verify",
            "--chunks",
            CHUNKS,
            "-o",
            s(&out),
            s(&src),
        ],
        2 * MINUTE,
    );
    assert!(r.ok(), "{}", r.stderr);
    assert!(r.stdout.contains("identical"), "{}", r.stdout);
}

/// The 4 hourly steps that follow `dataset(dir, 8)`, in `dir/more.nc`.
fn next_steps(dir: &Path) -> PathBuf {
    let more = dir.join("more.nc");
    let g = zarrforge(
        None,
        &[
            "generate",
            "--time",
            "4",
            "--t0",
            &(8.0f64 / 24.0).to_string(),
            s(&more),
        ],
        MINUTE,
    );
    assert!(g.ok(), "{}", g.stderr);
    more
}

/// Writes `path` until its filesystem is full.
fn fill(path: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let block = vec![7u8; 4096];
    while f.write_all(&block).is_ok() {}
}

/// A mounted tmpfs of `size` under `dir`, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "tmpfs",
                s(dir),
            ])
            .status()
            .is_ok_and(|st| st.success());
        assert!(ok, "cannot mount a tmpfs (needs root or CAP_SYS_ADMIN)");
        Self(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// A filesystem full before the first byte: the error names the store and
/// the cause, the path is left free (no directory that every later command
/// refuses), and once space is freed the same command, or --resume, works.
#[test]
fn a_full_filesystem_at_the_first_write_leaves_no_directory() {
    let dir = tmp();
    let src = dataset(dir.path(), 4);
    let small = dir.path().join("full");
    let _fs = Tmpfs::mount(&small, "64m");
    // Fill it to the last block.
    let filler = small.join("filler");
    fill(&filler);
    let out = small.join("o.zarr");
    let args = [
        "convert",
        "--quiet",
        "--chunks",
        CHUNKS,
        "-o",
        s(&out),
        s(&src),
    ];
    let r = zarrforge(Some(2), &args, MINUTE);
    assert_eq!(r.code, Some(4), "{}", r.stderr);
    let lines: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("zarrforge: error"))
        .collect();
    assert_eq!(lines.len(), 1, "{}", r.stderr);
    assert!(
        lines[0].contains(s(&out)) && lines[0].contains("No space left on device"),
        "{}",
        r.stderr
    );
    assert!(
        !out.exists() || std::fs::read_dir(&out).unwrap().next().is_none(),
        "a stranded directory: {:?}",
        std::fs::read_dir(&out).map(|d| d.map(|e| e.unwrap().path()).collect::<Vec<_>>())
    );
    std::fs::remove_file(&filler).unwrap();
    let r = zarrforge(Some(2), &args, MINUTE);
    assert!(r.ok(), "{}", r.stderr);
    // The same with --resume as the recovery command.
    std::fs::remove_dir_all(&out).unwrap();
    fill(&filler);
    let r = zarrforge(Some(2), &args, MINUTE);
    assert_eq!(r.code, Some(4), "{}", r.stderr);
    std::fs::remove_file(&filler).unwrap();
    let mut resume = args.to_vec();
    resume.push("--resume");
    let r = zarrforge(Some(2), &resume, MINUTE);
    assert!(r.ok(), "{}", r.stderr);
    assert!(out.join("zarr.json").exists());
}

/// Symbolic links planted inside a store are never written through: a
/// resume and an append refuse them by name and touch nothing outside.
#[test]
fn links_inside_a_store_are_refused() {
    let dir = tmp();
    let src = dataset(dir.path(), 8);
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("keep"), b"keep").unwrap();
    let out = dir.path().join("o.zarr");
    let args = [
        "convert",
        "--quiet",
        "--chunks",
        CHUNKS,
        "-o",
        s(&out),
        s(&src),
    ];
    let r = zarrforge(Some(2), &args, MINUTE);
    assert!(r.ok(), "{}", r.stderr);
    // An interrupted store (no root document), a chunk directory replaced
    // by a link.
    std::fs::remove_file(out.join("zarr.json")).unwrap();
    std::fs::remove_file(out.join(".zarrforge/dataset.bin")).unwrap();
    let chunk_dir = out.join("t2m/c/0");
    std::fs::remove_dir_all(&chunk_dir).unwrap();
    std::os::unix::fs::symlink(&outside, &chunk_dir).unwrap();
    let mut resume = args.to_vec();
    resume.push("--resume");
    let r = zarrforge(Some(2), &resume, MINUTE);
    assert_eq!(r.code, Some(4), "{}", r.stderr);
    assert!(
        r.stderr.contains("t2m/c/0") && r.stderr.contains("symbolic link"),
        "{}",
        r.stderr
    );
    let names: Vec<_> = std::fs::read_dir(&outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["keep"], "written through the link");
    // Removing the link, as the message says, lets the resume finish.
    std::fs::remove_file(&chunk_dir).unwrap();
    let r = zarrforge(Some(2), &resume, MINUTE);
    assert!(r.ok(), "{}", r.stderr);
    // An append into a committed store with a planted link.
    let more = next_steps(dir.path());
    let planted = out.join("t2m/c/2");
    std::os::unix::fs::symlink(&outside, &planted).unwrap();
    let r = zarrforge(
        Some(2),
        &["convert", "--quiet", "--append", "-o", s(&out), s(&more)],
        MINUTE,
    );
    assert_eq!(r.code, Some(4), "{}", r.stderr);
    assert!(r.stderr.contains("symbolic link"), "{}", r.stderr);
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 1);
}

/// An append given the very `--chunks` the store was made with is not
/// refused (1-D coordinates kept whole are the planner's choice).
#[test]
fn an_append_accepts_the_stores_own_chunks() {
    let dir = tmp();
    let src = dataset(dir.path(), 8);
    let more = next_steps(dir.path());
    let out = dir.path().join("o.zarr");
    let chunks = "time=4,lat=60,lon=90";
    let r = zarrforge(
        Some(2),
        &[
            "convert",
            "--quiet",
            "--chunks",
            chunks,
            "-o",
            s(&out),
            s(&src),
        ],
        MINUTE,
    );
    assert!(r.ok(), "{}", r.stderr);
    // Another chunk size is refused.
    let r = zarrforge(
        Some(2),
        &[
            "convert",
            "--quiet",
            "--append",
            "--chunks",
            "time=4,lat=30",
            "-o",
            s(&out),
            s(&more),
        ],
        MINUTE,
    );
    assert_eq!(r.code, Some(5), "{}", r.stderr);
    assert!(r.stderr.contains("--chunks asks lat=30"), "{}", r.stderr);
    let append = [
        "convert",
        "--quiet",
        "--append",
        "--chunks",
        chunks,
        "-o",
        s(&out),
        s(&more),
    ];
    let r = zarrforge(Some(2), &append, MINUTE);
    assert!(r.ok(), "{}", r.stderr);
    // Run again, the same append finds its work done.
    let before = snapshot(&out);
    let r = zarrforge(Some(2), &append, MINUTE);
    assert!(r.ok(), "{}", r.stderr);
    assert!(
        snapshot(&out) == before,
        "a repeated append changed the store"
    );
}

/// No inodes left (a filesystem full of small files): the error names the
/// path; once inodes are freed, --resume finishes to a clean run's store.
#[test]
fn inode_starvation_is_reported_and_resumable() {
    let dir = tmp();
    let src = dataset(dir.path(), 8);
    let small = dir.path().join("few-inodes");
    let _fs = Tmpfs::mount(&small, "256m,nr_inodes=24");
    let out = small.join("o.zarr");
    let args = [
        "convert",
        "--quiet",
        "--chunks",
        "time=2,lat=181,lon=360",
        "-o",
        s(&out),
        s(&src),
    ];
    let r = zarrforge(Some(2), &args, MINUTE);
    assert_eq!(r.code, Some(4), "{}", r.stderr);
    assert!(
        r.stderr.contains("No space left on device") && r.stderr.contains(s(&out)),
        "{}",
        r.stderr
    );
    assert!(!out.join("zarr.json").exists());
    let grow = Command::new("mount")
        .args(["-o", "remount,nr_inodes=100000", s(&small)])
        .status()
        .unwrap();
    assert!(grow.success());
    let mut resume = args.to_vec();
    resume.push("--resume");
    let r = zarrforge(Some(2), &resume, 2 * MINUTE);
    assert!(r.ok(), "{}", r.stderr);
    let clean = dir.path().join("clean.zarr");
    let mut direct = args.to_vec();
    direct[5] = s(&clean);
    let r = zarrforge(Some(2), &direct, MINUTE);
    assert!(r.ok(), "{}", r.stderr);
    assert!(
        snapshot(&out) == snapshot(&clean),
        "the resumed store differs"
    );
}

/// A job killed while Open MPI's default MPI-IO component held its
/// per-file-name semaphore (`/dev/shm/sem.OMPIO_<base name>`) leaves it
/// taken: with that component, every later open of a file of that name on
/// the node waits forever, so the killed job's resume would hang. Here the
/// semaphore is left taken on purpose; runs on 1 and 2 ranks convert an
/// input of that name all the same.
#[test]
fn a_semaphore_left_taken_by_a_killed_job_does_not_hang_the_next_run() {
    use std::ffi::CString;
    let dir = tmp();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let name = format!("zf-sem-{}-{nanos}.nc", std::process::id());
    let input = dir.path().join(&name);
    let r = zarrforge(
        None,
        &[
            "generate",
            "--time",
            "4",
            "--lat",
            "10",
            "--lon",
            "20",
            s(&input),
        ],
        MINUTE,
    );
    assert!(r.ok(), "{}", r.stderr);
    let sem_name = CString::new(format!("/OMPIO_{name}")).unwrap();
    // SAFETY: a valid C string; a new semaphore with value 0 (taken).
    let sem = unsafe {
        libc::sem_open(
            sem_name.as_ptr(),
            libc::O_CREAT | libc::O_EXCL,
            0o644 as libc::c_uint,
            0 as libc::c_uint,
        )
    };
    assert_ne!(sem, libc::SEM_FAILED, "cannot create the semaphore");
    let runs: Vec<(Option<usize>, Run)> = [None, Some(2)]
        .into_iter()
        .map(|ranks| {
            let out = dir.path().join(format!("o{}.zarr", ranks.unwrap_or(1)));
            let r = zarrforge(
                ranks,
                &["convert", "--quiet", "-o", s(&out), s(&input)],
                MINUTE,
            );
            (ranks, r)
        })
        .collect();
    // SAFETY: the semaphore opened above.
    unsafe {
        libc::sem_close(sem);
        libc::sem_unlink(sem_name.as_ptr());
    }
    for (ranks, r) in runs {
        assert!(r.ok(), "{ranks:?} rank(s): {:?} {}", r.code, r.stderr);
    }
}

/// Runs started at the same instant on one store: two identical appends on
/// a committed store, an overwrite against a resume of an interrupted one,
/// two creations of one new store. A run that loses the lock exits 6
/// naming the holder, or waits for it and goes on once it is released;
/// never a storage error (exit 4, `ENOENT` on the lock). Every store ends
/// equal to one clean run's, and no lock file is left.
#[test]
fn runs_started_together_lose_the_lock_with_exit_6_never_a_storage_error() {
    let dir = tmp();
    let src = dataset(dir.path(), 8);
    let more = next_steps(dir.path());
    let small = ["--chunks", CHUNKS, "--quiet"];
    let clean_a = dir.path().join("a.zarr");
    let clean_ab = dir.path().join("ab.zarr");
    for out in [&clean_a, &clean_ab] {
        let r = zarrforge(Some(2), &args_of(&small, &["-o", s(out), s(&src)]), MINUTE);
        assert!(r.ok(), "{}", r.stderr);
    }
    let r = zarrforge(
        Some(2),
        &args_of(&small, &["--append", "-o", s(&clean_ab), s(&more)]),
        MINUTE,
    );
    assert!(r.ok(), "{}", r.stderr);
    let judge = |round: &str, results: &[(Option<i32>, String)]| {
        let mut won = 0;
        for (code, err) in results {
            assert!(
                !err.contains("No such file") && *code != Some(4),
                "{round}: a run failed as a storage error: {err}"
            );
            match code {
                Some(0) => won += 1,
                Some(6) => assert!(
                    err.contains("is locked by another zarrforge run (host"),
                    "{round}: {err}"
                ),
                // A creation that meets the winner's committed store.
                Some(5) => assert!(err.contains("already exists"), "{round}: {err}"),
                other => panic!("{round}: exit {other:?}: {err}"),
            }
        }
        won
    };
    let together = |argss: &[Vec<&str>]| -> Vec<(Option<i32>, String)> {
        let mut children: Vec<Child> = argss.iter().map(|a| spawn(2, a)).collect();
        children
            .iter_mut()
            .map(|c| wait_for(c, 2 * MINUTE))
            .collect()
    };
    for round in 0..4 {
        // Two identical appends of the next steps on a committed store.
        let out = dir.path().join(format!("append{round}.zarr"));
        copy_dir(&clean_a, &out);
        let append = args_of(&small, &["--append", "-o", s(&out), s(&more)]);
        let won = judge(
            &format!("append x append #{round}"),
            &together(&[append.clone(), append]),
        );
        assert!(won >= 1, "append x append #{round}: no run appended");
        assert_same_files(
            &comparable(&out),
            &comparable(&clean_ab),
            &format!("append x append #{round}"),
        );
        assert!(
            no_lock_files(&out),
            "append x append #{round}: lock files left"
        );
        // Two creations of one new store.
        let out = dir.path().join(format!("create{round}.zarr"));
        let create = args_of(&small, &["-o", s(&out), s(&src)]);
        let won = judge(
            &format!("create x create #{round}"),
            &together(&[create.clone(), create]),
        );
        assert_eq!(won, 1, "create x create #{round}");
        assert_same_files(
            &comparable(&out),
            &comparable(&clean_a),
            &format!("create x create #{round}"),
        );
        assert!(
            no_lock_files(&out),
            "create x create #{round}: lock files left"
        );
    }
}

fn args_of<'a>(common: &[&'a str], rest: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["convert"];
    v.extend_from_slice(common);
    v.extend_from_slice(rest);
    v
}

/// Whether `.zarrforge` holds no lock file (the lock, a run's own lock
/// file, a claim).
fn no_lock_files(store: &Path) -> bool {
    std::fs::read_dir(store.join(".zarrforge")).map_or(true, |d| {
        d.flatten()
            .all(|e| !e.file_name().to_string_lossy().starts_with("lock"))
    })
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// An unfinished store whose lock names a run on another node (which
/// cannot be checked from here): a plain convert is refused with exit 6
/// and told the one command that finishes the store if that run is gone,
/// `--resume --break-lock`; that command then works.
#[test]
fn a_store_left_by_a_run_on_another_node_leads_to_resume_break_lock() {
    let dir = tmp();
    // Long enough (291 units or so) that the kill lands mid-run.
    let src = dataset(dir.path(), 96);
    let out = dir.path().join("o.zarr");
    let args = |extra: &[&'static str]| -> Vec<String> {
        let mut v: Vec<String> = ["convert", "--quiet", "--chunks", CHUNKS, "-o"]
            .iter()
            .map(ToString::to_string)
            .collect();
        v.push(s(&out).to_string());
        v.extend(extra.iter().map(ToString::to_string));
        v.push(s(&src).to_string());
        v
    };
    // A conversion killed after its first units, its lock then made to name
    // a run on another node.
    let mut child = spawn(2, &args(&[]).iter().map(String::as_str).collect::<Vec<_>>());
    kill_rank_1_after(&mut child, &out, 10);
    let i = zarrforge(None, &["inspect", s(&out)], MINUTE);
    assert!(
        i.ok()
            && i.stdout
                .contains("interrupted (run the same command with --resume)"),
        "{}",
        i.stdout
    );
    let lock = out.join(".zarrforge/lock");
    std::fs::write(
        &lock,
        br#"{"host": "n042-elsewhere", "pid": 81734, "job": null, "since": "2026-11-23T21:00:00Z"}"#,
    )
    .unwrap();
    // inspect says the same: a run holds it (it cannot be told gone).
    let i = zarrforge(None, &["inspect", s(&out)], MINUTE);
    assert!(
        i.ok()
            && i.stdout
                .contains("in progress: a run holds its lock (host n042-elsewhere"),
        "{}",
        i.stdout
    );
    let plain = args(&[]);
    let r = zarrforge(
        Some(2),
        &plain.iter().map(String::as_str).collect::<Vec<_>>(),
        MINUTE,
    );
    assert_eq!(r.code, Some(6), "{}", r.stderr);
    assert!(
        r.stderr.contains("host n042-elsewhere, pid 81734")
            && r.stderr
                .contains("finish its store with --resume --break-lock"),
        "{}",
        r.stderr
    );
    let resume = args(&["--resume", "--break-lock"]);
    let r = zarrforge(
        Some(2),
        &resume.iter().map(String::as_str).collect::<Vec<_>>(),
        MINUTE,
    );
    assert!(r.ok(), "{}", r.stderr);
    assert!(out.join("zarr.json").exists() && !lock.exists());
}
