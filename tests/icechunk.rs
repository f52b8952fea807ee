//! Icechunk output (`convert --icechunk`): the repository holds the plain
//! v3 store's metadata and chunk bytes (singleton, 2 and 3 ranks, shards);
//! appends become snapshots and earlier snapshots and tags keep what they
//! held; `--overwrite` is a new snapshot; a killed run leaves the branch as
//! it was and `--resume` writes only what is missing; Zarr v2 is refused.
//! Read back through zarrforge's own Icechunk client (the Python readers
//! are in scripts/interop).

// A test reads top to bottom as one scenario.
#![allow(clippy::too_many_lines)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use zarrforge::store::storage::icechunk::{register, Target};
use zarrforge::store::storage::Storage;

use crate::common::*;
use crate::multifile::series;
use crate::reliability::{journal_units, rank_pids, signal, spawn, wait_for};

const MINUTE: std::time::Duration = std::time::Duration::from_mins(1);

/// Every key and its bytes of a plain store (zarrforge's own files aside),
/// with the root document's consolidated metadata dropped (Icechunk
/// readers list the hierarchy).
fn plain(store: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for (p, b) in snapshot(store) {
        let k = p.to_string_lossy().replace('\\', "/");
        if k.starts_with(".zarrforge") {
            continue;
        }
        out.insert(k, b);
    }
    out
}

/// The same keys read from the repository at `reference`.
fn from_repo(repo: &Path, reference: &str, keys: &[String]) -> BTreeMap<String, Vec<u8>> {
    // The handle is per path and process (and its session is opened
    // once): a new link names each read.
    static READS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = READS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let alias = repo.with_extension(format!("read-{n}"));
    std::os::unix::fs::symlink(repo, &alias).unwrap();
    let r = register(
        &alias,
        Target {
            branch: "main".into(),
            reference: Some(reference.into()),
        },
    )
    .unwrap();
    keys.iter()
        .filter_map(|k| r.get(k).unwrap().map(|b| (k.clone(), b)))
        .collect()
}

/// The snapshot id at the tip of `main`.
fn tip_of(repo: &Path) -> String {
    static READS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = READS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let alias = repo.with_extension(format!("tip-{n}"));
    std::os::unix::fs::symlink(repo, &alias).unwrap();
    let r = register(
        &alias,
        Target {
            branch: "main".into(),
            reference: None,
        },
    )
    .unwrap();
    r.open_readonly().unwrap();
    r.base_snapshot().unwrap()
}

fn convert(ranks: Option<usize>, extra: &[&str], out: &Path, inputs: &[&Path]) -> Run {
    let mut args = vec!["convert", "--quiet", "--icechunk"];
    args.extend_from_slice(extra);
    args.extend(["-o", s(out)]);
    args.extend(inputs.iter().map(|p| s(p)));
    zarrforge(ranks, &args, 3 * MINUTE)
}

#[test]
fn a_repository_holds_the_plain_stores_bytes_on_1_2_3_ranks() {
    let dir = tmp();
    let src = dir.path().join("rich.nc");
    rich_fixture(&src);
    for (name, extra) in [("plain", vec![]), ("sharded", vec!["--shards", "time=4"])] {
        let base = dir.path().join(format!("{name}.zarr"));
        let mut args = vec!["convert", "--quiet", "-o", s(&base)];
        args.extend(extra.iter().copied());
        args.push(s(&src));
        let r = zarrforge(Some(2), &args, 3 * MINUTE);
        if !r.ok() && name == "sharded" {
            // The fixture's layout has no shards to make: nothing to compare.
            continue;
        }
        assert!(r.ok(), "{}", r.stderr);
        let want = plain(&base);
        let keys: Vec<String> = want.keys().cloned().collect();
        for ranks in [None, Some(2), Some(3)] {
            let repo = dir.path().join(format!("{name}-{ranks:?}.icechunk"));
            let mut x = extra.clone();
            x.extend(["--tag", "v1", "--message", "first"]);
            let r = convert(ranks, &x, &repo, &[&src]);
            assert!(r.ok(), "{ranks:?}: {}", r.stderr);
            let got = from_repo(&repo, "v1", &keys);
            for (k, b) in &want {
                let g = got
                    .get(k)
                    .unwrap_or_else(|| panic!("{name} {ranks:?}: {k} missing from the repository"));
                if k.ends_with("zarr.json") {
                    let (mut a, mut c): (serde_json::Value, serde_json::Value) = (
                        serde_json::from_slice(b).unwrap(),
                        serde_json::from_slice(g).unwrap(),
                    );
                    for v in [&mut a, &mut c] {
                        if let Some(m) = v.as_object_mut() {
                            m.remove("consolidated_metadata");
                        }
                    }
                    assert_eq!(a, c, "{name} {ranks:?}: {k}");
                } else {
                    assert!(g == b, "{name} {ranks:?}: chunk {k} differs");
                }
            }
            assert!(!repo.join("zarr.json").exists(), "no plain store inside");
            assert!(
                !repo.join(".zarrforge/journal").exists(),
                "the journal is removed after the commit"
            );
        }
    }
}

#[test]
fn appends_become_snapshots_and_earlier_ones_keep_their_data() {
    let dir = tmp();
    let files = series(&dir.path().join("in"), "part", &[4, 3, 5], |_, _| {});
    let repo = dir.path().join("series.icechunk");
    let events = dir.path().join("events.jsonl");
    let r = convert(
        Some(2),
        &[
            "--chunks",
            "time=2",
            "--tag",
            "run1",
            "--events",
            s(&events),
        ],
        &repo,
        &[&files[0]],
    );
    assert!(r.ok(), "{}", r.stderr);
    let committed: Vec<serde_json::Value> = std::fs::read_to_string(&events)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|e: &serde_json::Value| e["event"] == "committed")
        .collect();
    assert_eq!(committed.len(), 1);
    let first = committed[0]["snapshot"].as_str().unwrap().to_string();
    assert!(!first.is_empty(), "the committed event names the snapshot");
    for (i, f) in files.iter().enumerate().skip(1) {
        let tag = format!("run{}", i + 1);
        let r = convert(
            Some(3),
            &[
                "--append",
                "--tag",
                &tag,
                "--message",
                &format!("append {i}"),
            ],
            &repo,
            &[f],
        );
        assert!(r.ok(), "append {i}: {}", r.stderr);
    }
    let shape = |reference: &str| -> u64 {
        let b = from_repo(&repo, reference, &["t2m/zarr.json".to_string()]);
        let v: serde_json::Value = serde_json::from_slice(&b["t2m/zarr.json"]).unwrap();
        v["shape"][0].as_u64().unwrap()
    };
    assert_eq!(shape("run1"), 4, "the first tag keeps its 4 steps");
    assert_eq!(shape(&first), 4, "so does its snapshot id");
    assert_eq!(shape("run2"), 7);
    assert_eq!(shape("run3"), 12);
    assert_eq!(shape("main"), 12);

    // The values equal one conversion of all files into a plain store.
    let all = dir.path().join("all.zarr");
    let mut args = vec!["convert", "--quiet", "--chunks", "time=2", "-o", s(&all)];
    args.extend(files.iter().map(|p| s(p)));
    let r = zarrforge(Some(2), &args, 3 * MINUTE);
    assert!(r.ok(), "{}", r.stderr);
    let want = plain(&all);
    let keys: Vec<String> = want
        .keys()
        .filter(|k| !k.ends_with("zarr.json"))
        .cloned()
        .collect();
    let got = from_repo(&repo, "run3", &keys);
    for k in &keys {
        assert!(got.get(k) == want.get(k), "chunk {k} differs after appends");
    }

    // verify reads any version: the first tag equals the first file, the
    // last one all three; the first snapshot is not all three.
    let verify = |reference: &str, inputs: &[PathBuf]| -> Run {
        let mut args = vec!["verify", "--icechunk", "--ref", reference];
        args.extend(inputs.iter().map(|p| s(p)));
        args.push(s(&repo));
        zarrforge(Some(2), &args, 3 * MINUTE)
    };
    let r = verify("run1", &files[..1]);
    assert!(r.ok(), "{}", r.stderr);
    let r = verify("run3", &files);
    assert!(r.ok(), "{}", r.stderr);
    let r = verify(&first, &files);
    assert_eq!(r.code, Some(1), "{}{}", r.stdout, r.stderr);

    // The same append again (a hook that fires twice) finds its work done
    // and commits nothing: the tip stays run3's.
    let tip = tip_of(&repo);
    let r = convert(Some(2), &["--append"], &repo, &[&files[2]]);
    assert!(r.ok(), "{}", r.stderr);
    assert_eq!(tip_of(&repo), tip, "a repeated append made a snapshot");
    assert_eq!(shape("main"), 12);

    // --overwrite: a new snapshot with the arrays replaced; the tags keep
    // the old data.
    let r = convert(
        None,
        &["--overwrite", "--tag", "fresh"],
        &repo,
        &[&files[1]],
    );
    assert!(r.ok(), "{}", r.stderr);
    assert_eq!(shape("main"), 3);
    assert_eq!(shape("run3"), 12);
}

#[test]
fn a_killed_run_leaves_the_branch_unchanged_and_resumes_without_rewriting() {
    let dir = tmp();
    let src = dir.path().join("big.nc");
    let r = zarrforge(None, &["generate", "--time", "96", s(&src)], 2 * MINUTE);
    assert!(r.ok(), "{}", r.stderr);
    let chunks = "time=4,lat=181,lon=360";
    let repo = dir.path().join("killed.icechunk");
    // A committed first version, so that "unchanged" means something.
    let first = dir.path().join("first.nc");
    let r = zarrforge(None, &["generate", "--time", "8", s(&first)], MINUTE);
    assert!(r.ok(), "{}", r.stderr);
    let r = convert(
        Some(2),
        &["--chunks", chunks, "--tag", "before"],
        &repo,
        &[&first],
    );
    assert!(r.ok(), "{}", r.stderr);
    let before = from_repo(&repo, "before", &["zarr.json".to_string()]);

    let mut child = spawn(
        2,
        &[
            "convert",
            "--quiet",
            "--icechunk",
            "--overwrite",
            "--chunks",
            chunks,
            "-o",
            s(&repo),
            s(&src),
        ],
    );
    let start = std::time::Instant::now();
    while journal_units(&repo) < 20 {
        assert!(start.elapsed() < 2 * MINUTE, "no journal progress");
        assert!(
            child.try_wait().unwrap().is_none(),
            "finished before the kill"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let pids = rank_pids(s(&repo));
    assert_eq!(pids.len(), 2, "ranks: {pids:?}");
    signal(pids[1], libc::SIGKILL);
    let (code, _) = wait_for(&mut child, MINUTE);
    assert_ne!(code, Some(0));
    let done = journal_units(&repo);

    // The branch still shows the first version.
    let now = from_repo(&repo, "main", &["zarr.json".to_string()]);
    assert_eq!(now, before, "a killed run changed the branch");

    // gc keeps the chunks an interrupted run's --resume will reuse.
    let r = zarrforge(None, &["gc", "--older-than-hours", "0", s(&repo)], MINUTE);
    assert_eq!(r.code, Some(5), "{}", r.stderr);
    assert!(r.stderr.contains("--resume"), "{}", r.stderr);

    let rep = dir.path().join("resume.json");
    let r = convert(
        Some(3),
        &["--resume", "--report", s(&rep), "--chunks", chunks],
        &repo,
        &[&src],
    );
    assert!(r.ok(), "{}", r.stderr);
    let report = json(&rep);
    let resumed = report["units_resumed"].as_u64().unwrap();
    assert!(
        resumed >= done.min(20),
        "resumed {resumed}, journal had {done}"
    );
    assert_eq!(
        report["units"].as_u64().unwrap() + resumed,
        report["total_units"].as_u64().unwrap(),
        "finished units were written again"
    );

    // Garbage (a fork's snapshot, chunks the killed run wrote but did not
    // record) goes; the committed data stays.
    let r = zarrforge(None, &["gc", "--older-than-hours", "0", s(&repo)], MINUTE);
    assert!(r.ok(), "{}", r.stderr);
    assert!(r.stderr.contains("deleted"), "{}", r.stderr);

    // The same data as a clean conversion.
    let clean = dir.path().join("clean.zarr");
    let r = zarrforge(
        Some(2),
        &[
            "convert",
            "--quiet",
            "--chunks",
            chunks,
            "-o",
            s(&clean),
            s(&src),
        ],
        3 * MINUTE,
    );
    assert!(r.ok(), "{}", r.stderr);
    let want = plain(&clean);
    let keys: Vec<String> = want
        .keys()
        .filter(|k| !k.ends_with("zarr.json"))
        .cloned()
        .collect();
    let got = from_repo(&repo, "main", &keys);
    for k in &keys {
        assert!(
            got.get(k) == want.get(k),
            "chunk {k} differs after the resume"
        );
    }
    // The first version is still there under its tag.
    assert_eq!(
        from_repo(&repo, "before", &["zarr.json".to_string()]),
        before
    );
}

#[test]
fn wrong_uses_are_refused_with_one_line_and_change_nothing() {
    let dir = tmp();
    let src = dir.path().join("rich.nc");
    rich_fixture(&src);
    let one_line = |r: &Run, code: i32, has: &str| {
        assert_eq!(r.code, Some(code), "{}", r.stderr);
        assert!(r.stderr.contains(has), "{}", r.stderr);
        assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
    };
    let repo: PathBuf = dir.path().join("v2.icechunk");
    one_line(
        &convert(None, &["--zarr-format", "2"], &repo, &[&src]),
        2,
        "--icechunk",
    );
    one_line(
        &convert(None, &["--attrs-json", "python"], &repo, &[&src]),
        2,
        "strict",
    );
    assert!(!repo.exists());

    let r = convert(None, &["--tag", "v1"], &repo, &[&src]);
    assert!(r.ok(), "{}", r.stderr);
    let tip = tip_of(&repo);
    // The repository without --icechunk: refused, never overwritten.
    for extra in [vec!["--overwrite"], vec!["--resume"], vec![]] {
        let mut args = vec!["convert", "--quiet"];
        args.extend(extra.iter().copied());
        args.extend(["-o", s(&repo), s(&src)]);
        one_line(&zarrforge(None, &args, MINUTE), 5, "add --icechunk");
    }
    // A tag that exists is refused before anything is written.
    one_line(
        &convert(None, &["--overwrite", "--tag", "v1"], &repo, &[&src]),
        5,
        "v1",
    );
    assert_eq!(tip_of(&repo), tip, "a refused run changed the branch");
    assert!(!repo.join(".zarrforge/journal").exists());
}

/// A handle of its own on `repo` (a new link: handles are per path).
fn handle(repo: &Path, what: &str) -> std::sync::Arc<zarrforge::store::storage::icechunk::Repo> {
    let alias = repo.with_extension(format!("writer-{what}"));
    std::os::unix::fs::symlink(repo, &alias).unwrap();
    register(
        &alias,
        Target {
            branch: "main".into(),
            reference: None,
        },
    )
    .unwrap()
}

#[test]
fn a_moved_branch_is_rebased_only_for_disjoint_chunks() {
    use zarrforge::store::storage::icechunk::Committed;
    let dir = tmp();
    let files = series(&dir.path().join("in"), "part", &[4], |_, _| {});
    let repo = dir.path().join("moved.icechunk");
    let r = convert(None, &["--chunks", "time=1"], &repo, &[&files[0]]);
    assert!(r.ok(), "{}", r.stderr);
    let chunk = |h: &zarrforge::store::storage::icechunk::Repo, k: &str| h.get(k).unwrap().unwrap();
    let commit = |h: &zarrforge::store::storage::icechunk::Repo| {
        h.commit("test", BTreeMap::new(), None).unwrap()
    };

    // Two writers open the branch at the same snapshot and write
    // different chunks: the later commit is rebased onto the earlier.
    let (a, b) = (handle(&repo, "a1"), handle(&repo, "b1"));
    a.open_writable(false, None).unwrap();
    b.open_writable(false, None).unwrap();
    let c0 = chunk(&a, "t2m/c/0/0/0");
    let c1 = chunk(&b, "t2m/c/1/0/0");
    a.put("t2m/c/0/0/0", &c1).unwrap();
    b.put("t2m/c/1/0/0", &c0).unwrap();
    assert!(matches!(commit(&a), Committed::Snapshot(_)));
    assert!(
        matches!(commit(&b), Committed::Snapshot(_)),
        "disjoint chunks rebase"
    );
    let both = from_repo(&repo, "main", &["t2m/c/0/0/0".into(), "t2m/c/1/0/0".into()]);
    assert_eq!(both["t2m/c/0/0/0"], c1, "the first writer's chunk is kept");
    assert_eq!(both["t2m/c/1/0/0"], c0, "the second writer's chunk is kept");

    // The same chunk: the later commit is refused, never last-writer-wins.
    let (a, b) = (handle(&repo, "a2"), handle(&repo, "b2"));
    a.open_writable(false, None).unwrap();
    b.open_writable(false, None).unwrap();
    a.put("t2m/c/2/0/0", &c0).unwrap();
    b.put("t2m/c/2/0/0", &c1).unwrap();
    assert!(matches!(commit(&a), Committed::Snapshot(_)));
    assert!(
        matches!(commit(&b), Committed::Moved(_)),
        "a double write must not rebase"
    );
    let kept = from_repo(&repo, "main", &["t2m/c/2/0/0".into()]);
    assert_eq!(
        kept["t2m/c/2/0/0"], c0,
        "the refused writer changed nothing"
    );

    // The same array's metadata (two appends): refused too.
    let (a, b) = (handle(&repo, "a3"), handle(&repo, "b3"));
    a.open_writable(false, None).unwrap();
    b.open_writable(false, None).unwrap();
    let meta = chunk(&a, "t2m/zarr.json");
    let mut doc: serde_json::Value = serde_json::from_slice(&meta).unwrap();
    doc["shape"][0] = 6.into();
    let grown = serde_json::to_vec(&doc).unwrap();
    a.put("t2m/zarr.json", &grown).unwrap();
    doc["shape"][0] = 8.into();
    b.put("t2m/zarr.json", &serde_json::to_vec(&doc).unwrap())
        .unwrap();
    assert!(matches!(commit(&a), Committed::Snapshot(_)));
    assert!(
        matches!(commit(&b), Committed::Moved(_)),
        "two metadata updates must not rebase"
    );
}

/// Manifests are split along the series: `plan --icechunk` counts what
/// Icechunk then writes (1100 one-step chunks: 3 manifests of the field,
/// one per coordinate).
#[test]
fn manifests_are_split_along_the_series_as_planned() {
    let dir = tmp();
    let files = series(&dir.path().join("in"), "long", &[1100], |_, p| {
        p.lat = 2;
        p.vars = vec!["t2m"];
    });
    let repo = dir.path().join("long.icechunk");
    let r = convert(None, &["--chunks", "time=1"], &repo, &[&files[0]]);
    assert!(r.ok(), "{}", r.stderr);
    let r = zarrforge(
        None,
        &[
            "plan",
            "--icechunk",
            "--json",
            "--chunks",
            "time=1",
            s(&files[0]),
        ],
        MINUTE,
    );
    assert!(r.ok(), "{}", r.stderr);
    let plan: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let written = std::fs::read_dir(repo.join("manifests")).unwrap().count() as u64;
    assert_eq!(
        plan["icechunk"]["manifests"].as_u64(),
        Some(written),
        "{}",
        plan["icechunk"]
    );
    assert!(
        written >= 4,
        "{written} manifests: the series was not split"
    );
}

/// A backfill (`--region`) of a repository is one snapshot, recorded with
/// its region, holding the bytes of the same backfill of a plain store:
/// the chunks the region covers in part are read back through the
/// session and completed.
#[test]
fn a_backfill_is_one_snapshot_with_the_plain_stores_bytes() {
    let dir = tmp();
    let files = series(&dir.path().join("in"), "part", &[4, 3, 5], |_, _| {});
    let all: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let base = dir.path().join("plain.zarr");
    let repo = dir.path().join("series.icechunk");
    for (out, icechunk) in [(&base, false), (&repo, true)] {
        let mut args = vec!["convert", "--quiet", "--chunks", "time=3", "-o", s(out)];
        if icechunk {
            args.push("--icechunk");
        }
        args.extend(all.iter().map(|p| s(p)));
        let r = zarrforge(Some(2), &args, 3 * MINUTE);
        assert!(r.ok(), "{}", r.stderr);
        let before = snapshots(out);
        let mut again = vec!["convert", "--quiet", "--region", "auto", "-o", s(out)];
        if icechunk {
            again.push("--icechunk");
        }
        again.push(s(&files[1]));
        let r = zarrforge(Some(3), &again, 3 * MINUTE);
        assert!(r.ok(), "{}", r.stderr);
        if icechunk {
            assert_eq!(snapshots(out), before + 1, "one snapshot for the backfill");
        }
    }
    let want = plain(&base);
    let keys: Vec<String> = want
        .keys()
        .filter(|k| !k.ends_with("zarr.json"))
        .cloned()
        .collect();
    let got = from_repo(&repo, "main", &keys);
    for k in &keys {
        assert!(
            got.get(k) == want.get(k),
            "{k} differs from the plain backfill"
        );
    }
    let r = zarrforge(None, &["inspect", s(&base)], MINUTE);
    assert!(r.stdout.contains("region: time[4..7)"), "{}", r.stdout);
}

/// Snapshot files of a repository on a local filesystem.
fn snapshots(repo: &Path) -> usize {
    std::fs::read_dir(repo.join("snapshots")).map_or(0, Iterator::count)
}
