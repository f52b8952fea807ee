#!/usr/bin/env python3
"""Kill-point and race walk of zarrforge's Icechunk output (convert --icechunk).

usage: icechunk_walk.py BIN WORKDIR [--quick]

The arguments are harness.py's, whose helpers this walk imports (harness.py
reads them when imported and does nothing else). Needs the Icechunk venv
(scripts/env.sh: zf_icechunk_venv): the branch is read with Python icechunk
and xarray.

Kill walk: convert (create), --resume of an interrupted create, --append
and --overwrite, with 2 and 3 ranks. A first run lists the points the
operation reaches (ZARRFORGE_FAULT_TRACE); then the operation starts again
from the same initial repository and is killed (SIGKILL) at the first and
the last occurrence of every point on every rank that reaches it (so
icechunk.handing on each non-root rank). After each kill:

  - the tip of main, read with icechunk + xarray (values, dims, dtypes,
    attributes), is the old snapshot (the same snapshot id) or the complete
    new data; for a create, no dataset at all is the old state;
  - the recovery succeeds: --resume for create and resume; for overwrite
    --resume and --overwrite again in turn (--resume of an overwrite killed
    before its journal existed must refuse in one line, leaving main alone,
    as for a directory store; --overwrite then); for append the same
    --append and the same with --resume in turn; every other pair of kills
    recovers on the other rank count. The recovery writes each unit once
    or takes it over from the journal (its --report); the tip then equals
    a clean run's, one snapshot after the initial tip (no double or empty
    commit; a second --overwrite after a committed one may add one more),
    and REPO/.zarrforge holds no lock, journal or temporary file.

A create killed inside Icechunk's creation of the repository (no kill point
reaches there: the state is planted) must be finished by --resume too.

Races: (1) two appends, two creates, an append and an overwrite started
together on one repository: each ends with success or a one-line refusal,
and the tip is one of the states the pair gives one after the other.
(2) an --append paused (SIGSTOP) just before its commit while this script
commits to main with Python icechunk: a change the append does not touch
(a new array; new values of lat; new values of temp's first chunk, its
metadata unchanged) must be rebased over and both changes kept; a change
to what the append changes (an attribute of temp; temp resized) must make
zarrforge exit 6 with one line saying the branch moved, commit nothing and
leave no lock or journal, and the same --append run again must succeed.

--quick (CI, about 2 minutes) samples: the whole walk at 2 ranks (whose
recoveries run on 3 ranks every other pair of kills), and at 3 ranks only
the points of the two-level merge tree (icechunk.handing on ranks 1 and 2,
both icechunk.merged) of convert and append; pairs race once; every paused
race runs. Without --quick (about 5 minutes): every point at both rank
counts, pairs twice.

Prints a line per failure and a summary; exits 1 when anything failed.
"""

import collections
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings

import icechunk
import numpy as np
import xarray as xr
import zarr

import harness as h

QUICK = h.QUICK
CHUNKS = "time=3"
# Exit status of a refusal because of another writer (error.rs: Locked).
LOCKED = 6
# The id of the first snapshot of every Icechunk repository.
INITIAL_SNAPSHOT = "1CECHNKREP0F1RSTCMT0"

icechunk.set_logs_filter(os.environ.get("ICECHUNK_LOG", "error"))
warnings.simplefilter("ignore")


def why(err):
    """zarrforge's error lines of a failed run (else the end of its
    stderr): mpirun's banner says nothing of the cause."""
    lines = [l for l in err.splitlines() if l.startswith("zarrforge: error:")]
    return " | ".join(dict.fromkeys(lines)) if lines else err.strip()[-400:]


def named(refs, data):
    """Which clean repository's data `data` is, for a FAIL line."""
    if data is None:
        return "no dataset"
    return next((f"the data of {n}" for n in ("A", "AB", "B") if data == refs.data(n)), "other data")


def ic_args(out, files, *extra):
    return ["convert", "--quiet", "--icechunk", "--chunks", CHUNKS, "-o", out] + list(extra) + files


def repo_at(path):
    return icechunk.Repository.open(icechunk.local_filesystem_storage(path))


def tip(path):
    """What readers of main see: (snapshot id, snapshots in its ancestry,
    digest of the dataset xarray reads there). (None, 0, None) without a
    repository or branch; digest None when no dataset opens (an empty
    repository)."""
    try:
        repo = repo_at(path)
        snap = repo.lookup_branch("main")
        count = sum(1 for _ in repo.ancestry(branch="main"))
    except Exception:
        return None, 0, None
    try:
        store = repo.readonly_session(snapshot_id=snap).store
        ds = xr.open_zarr(store, consolidated=False, decode_times=False)
        parts = [("attrs", json.dumps(ds.attrs, sort_keys=True, default=str))]
        for name in sorted(ds.variables):
            v = ds.variables[name]
            data = np.ascontiguousarray(v.values)
            parts.append((name, v.dims, str(data.dtype), hashlib.sha1(data.tobytes()).hexdigest(),
                          json.dumps(v.attrs, sort_keys=True, default=str)))
        ds.close()
        return snap, count, json.dumps(parts)
    except Exception:
        return snap, count, None


# ---------------------------------------------------------------- clean runs


class Refs:
    """Clean repositories: A (files 0-1), AB (A with files 2-3 appended),
    B (A overwritten by a file of other variables, from `zarrforge
    generate`: an overwrite that kept anything of A shows), an interrupted
    create of A."""

    def __init__(self, files):
        base = os.path.join(h.WORK, "ic-refs")
        os.makedirs(base, exist_ok=True)
        self.fa, self.fb = files[:2], files[2:]
        other = os.path.join(h.WORK, "inputs", "other.nc")
        if not os.path.exists(other):
            subprocess.run([h.BIN, "generate", "--time", "6", "--lat", "8", "--lon", "10", other],
                           env=h.ENV, check=True, capture_output=True)
        self.fo = [other]
        self.paths = {n: os.path.join(base, f"{n}.icechunk") for n in ("A", "AB", "B", "partial")}
        p = self.paths
        h.copy_store(None, p["A"])
        rc, _, err = h.run_on(2, ic_args(p["A"], self.fa))
        assert rc == 0, err
        for name, fs, extra in (("AB", self.fb, "--append"), ("B", self.fo, "--overwrite")):
            h.copy_store(p["A"], p[name])
            rc, _, err = h.run_on(2, ic_args(p[name], fs, extra))
            assert rc == 0, err
        # Interrupted: rank 1 killed writing its record of chunk references
        # (rank 0's units are in the journal, rank 1's are not).
        h.copy_store(None, p["partial"])
        rc, _, err = h.run_on(2, ic_args(p["partial"], self.fa), fault="write.temp@1:1")
        assert rc != 0, err
        self.tips = {n: tip(path) for n, path in p.items()}
        for n in ("A", "AB", "B"):
            assert self.tips[n][2] is not None, n
        assert self.tips["partial"][2] is None, self.tips["partial"]

    def data(self, name):
        return self.tips[name][2] if name else None

    def operations(self, out):
        """name -> (initial repository, command, recovery commands, old, new)."""
        conv = ic_args(out, self.fa)
        resume = ic_args(out, self.fa, "--resume")
        append = ic_args(out, self.fb, "--append")
        over = ic_args(out, self.fo, "--overwrite")
        return {
            "convert": (None, conv, [resume], None, "A"),
            "resume": (self.paths["partial"], resume, [resume], None, "A"),
            "append": (self.paths["A"], append, [append, append + ["--resume"]], "A", "AB"),
            "overwrite": (self.paths["A"], over, [ic_args(out, self.fo, "--resume"), over], "A", "B"),
        }


# ---------------------------------------------------------------- kill walk


def sampled(op, ranks, points):
    """The points of `op` at `ranks` that --quick kills at (see the module
    documentation); all of them otherwise."""
    if not QUICK or ranks == 2:
        return points
    if op in ("convert", "append"):
        return [p for p in points if p[1] in ("icechunk.handing", "icechunk.merged")]
    return []


def kill_walk(refs, ranks, stats):
    out = os.path.join(h.WORK, f"ic-walk-{ranks}.icechunk")
    hit = os.path.join(h.WORK, "ic-hit")
    for op, (initial, cmd, recoveries, old, new) in refs.operations(out).items():
        tag = f"icechunk {op} on {ranks} ranks"
        h.RANKS = ranks
        points = sampled(op, ranks, h.trace_points(initial, cmd, out, f"ic-{op}-{ranks}", quick=True))
        before = tip(initial) if initial else (None, 0, None)
        for i, (rank, name, n) in enumerate(points):
            case = f"{tag}: kill rank {rank} at {name}@{n}"
            h.copy_store(initial, out)
            if os.path.exists(hit):
                os.remove(hit)
            rc, _, err = h.run_on(ranks, cmd, fault=f"{name}@{n}:{rank}", hit=hit)
            if not os.path.exists(hit):
                if rc == 0 and n > 1:
                    stats["not reached"] += 1
                    continue
                h.fail(f"{case}: point not reached (exit {rc}): {why(err)}")
                continue
            if rc == 0:
                h.fail(f"{case}: exit 0 after the kill")
            stats["kills"] += 1
            # Recoveries alternate, and every other pair of kills recovers
            # on the other rank count.
            recovery = recoveries[i % len(recoveries)]
            other = 5 - ranks if i // len(recoveries) % 2 else ranks
            if op == "overwrite" and "--resume" in recovery and tip(out)[0] == before[0] and not os.path.exists(
                    os.path.join(out, ".zarrforge", "journal", "plan.json")):
                # Killed before its journal: the overwrite has not begun and
                # main is the committed A, whose plan --resume refuses (as
                # for a directory store). It must say so in one line and
                # change nothing; the recovery is then --overwrite again.
                rc, _, err = h.run_on(other, recovery)
                if rc != 5 or not h.one_line_refusal(rc, err) or tip(out)[0] != before[0]:
                    h.fail(f"{case}: --resume before the overwrite began did not refuse in one line"
                           f" leaving main alone (exit {rc}): {why(err)}")
                recovery = next(c for c in recoveries if "--overwrite" in c)
            after_kill(refs, case, out, before, old, new, recovery, other, stats)


def after_kill(refs, case, out, before, old, new, recovery, ranks, stats):
    """The checks of a repository `out` left by a killed run whose initial
    tip was `before`: what readers see, then `recovery` on `ranks` ranks."""
    # The clean run's count: one snapshot more than its initial tip (a
    # create starts from Icechunk's first snapshot, "Repository
    # initialized").
    count_new = refs.tips[new][1]
    snap, count, data = tip(out)
    # Before a create's repository exists, or with only its first
    # snapshot, readers find no dataset: the create's old state.
    unchanged = snap == before[0] or (old is None and data is None and count <= 1)
    complete = data == refs.data(new) and count == count_new
    if not (unchanged or complete):
        h.fail(f"{case}: main's tip is neither the old snapshot nor the complete new data"
               f" ({count} snapshots, {named(refs, data)})")
    flags = " ".join(a for a in recovery[recovery.index("-o") + 2:] if a.startswith("--"))
    what = f"recovery ({flags}, {ranks} ranks)"
    report = os.path.join(h.WORK, "ic-report.json")
    if os.path.exists(report):
        os.remove(report)
    rc, _, err = h.run_on(ranks, recovery + ["--report", report])
    if rc != 0:
        h.fail(f"{case}: {what} failed (exit {rc}): {why(err)}")
        return
    with open(report) as fh:
        r = json.load(fh)
    # Every unit once: written now or taken over from the journal (none of
    # either when there was nothing left to do).
    if r["units"] + r["units_resumed"] not in (0, r["total_units"]):
        h.fail(f"{case}: the {what} wrote {r['units']} units and took over {r['units_resumed']}"
               f" of {r['total_units']}")
    snap, count, data = tip(out)
    # An --overwrite run again once the first one committed is a second
    # overwrite: one more snapshot of the same data.
    counts = (count_new, count_new + 1) if "--overwrite" in recovery else (count_new,)
    if data != refs.data(new):
        h.fail(f"{case}: after the {what} main's tip holds {named(refs, data)}, not {new}'s")
    elif count not in counts:
        h.fail(f"{case}: after the {what} main has {count} snapshots, a clean run {count_new}")
    left = h.leftovers(out)
    if left:
        h.fail(f"{case}: left behind after the {what}: {left}")
    stats["recovered"] += 1


def killed_creating_repository(refs, stats):
    """A create killed inside Icechunk's creation of the repository: the
    first snapshot and its transaction log written, not yet the `repo`
    object that makes them a repository. No kill point is inside that one
    call into Icechunk: the state is planted, from a create killed with
    its lock held plus those two objects of a clean repository."""
    out = os.path.join(h.WORK, "ic-creating.icechunk")
    conv = refs.operations(out)["convert"][1]
    h.copy_store(None, out)
    rc, _, err = h.run_on(2, conv, fault="lock.published@1:0")
    assert rc != 0, err
    for d in ("snapshots", "transactions"):
        os.makedirs(os.path.join(out, d), exist_ok=True)
        shutil.copy(os.path.join(refs.paths["A"], d, INITIAL_SNAPSHOT), os.path.join(out, d))
    stats["kills"] += 1
    after_kill(refs, "icechunk convert killed creating the repository", out, (None, 0, None), None, "A",
               ic_args(out, refs.fa, "--resume"), 2, stats)


# ---------------------------------------------------------------- races


def together_races(refs, stats, repeats):
    """Pairs started together, each on 2 ranks: each run succeeds, or
    refuses in one line because the other holds the lock (exit 6) or
    because of what the other did (the refusals of the same runs one after
    the other); the tip must be one of the states (data, snapshots) the
    pair gives run one after the other."""
    out = os.path.join(h.WORK, "ic-pair.icechunk")
    ops = refs.operations(out)
    count = {n: refs.tips[n][1] for n in ("A", "AB", "B")}
    # pair -> (end states, (run, exit, words) of the refusals besides the lock)
    pairs = {
        ("append", "append"): ([("AB", count["AB"])], []),
        ("convert", "convert"): ([("A", count["A"])], [("convert", 5, "already exists")]),
        ("append", "overwrite"): ([("AB", count["AB"]), ("B", count["B"]), ("B", count["AB"] + 1)],
                                  [("append", 5, "cannot append")]),
    }
    for (a_name, b_name), (outcomes, refusals) in pairs.items():
        for rep in range(repeats):
            case = f"icechunk {a_name} + {b_name} started together (#{rep + 1})"
            h.copy_store(ops[a_name][0], out)
            procs = [h.launch_on(2, ops[a_name][1]), h.launch_on(2, ops[b_name][1])]
            results = [h.finish(p) for p in procs]
            for (rc, _, err), nm in zip(results, (a_name, b_name)):
                if rc == 0:
                    continue
                expected = (rc == LOCKED and "is locked by another zarrforge run" in err) or any(
                    nm == r and rc == c and words in err for r, c, words in refusals)
                if not (expected and h.one_line_refusal(rc, err)):
                    h.fail(f"{case}: {nm} neither succeeded nor refused as expected in one line (exit {rc}): {why(err)}")
                stats[f"refused with exit {rc}"] += 1
            _, n, data = tip(out)
            if not any(data == refs.data(name) and n == c for name, c in outcomes):
                h.fail(f"{case}: main's tip holds {named(refs, data)} in {n} snapshots, not one of {outcomes}")
            if h.leftovers(out):
                h.fail(f"{case}: left behind: {h.leftovers(out)}")
            stats["pair races"] += 1


def new_array(group):
    a = group.create_array("extra", shape=(4,), chunks=(2,), dtype="i4", fill_value=0)
    a[:] = np.arange(4, dtype="i4")


def new_lat(group):
    group["lat"][:] = np.linspace(-80, 80, 8).astype("f4")


def temp_note(group):
    group["temp"].attrs["note"] = "set by another writer"


def temp_resized(group):
    t = group["temp"]
    t.resize((t.shape[0] + 1,) + t.shape[1:])
    t[-1] = np.zeros(t.shape[1:], "f4")


def temp_first_chunk(group):
    group["temp"][0:3] = np.full((3, 8, 10), 250, "f4")


# (name, the other writer's change, what the paused append does then):
# "rebase" over a change it does not touch, keeping both; "moved": exit 6,
# nothing committed, and the same --append run again succeeds with both
# changes ("both") or, where the other writer changed what the append
# defines (temp's length), with the clean AB ("AB").
OTHER_WRITERS = [
    ("a new array", new_array, "rebase"),
    ("new values of lat (an array the append does not change)", new_lat, "rebase"),
    ("new values of temp's first chunk (metadata unchanged)", temp_first_chunk, "rebase"),
    # The rerun writes temp's document from zarrforge's record: the other
    # writer's attribute is in the snapshot between, not on the new tip
    # (docs/icechunk.md, "Writers other than zarrforge").
    ("an attribute of temp", temp_note, "AB"),
    ("temp resized by one step", temp_resized, "AB"),
]


def commit_change(path, change, message):
    session = repo_at(path).writable_session("main")
    change(zarr.open_group(session.store, mode="r+"))
    return session.commit(message)


def paused_races(refs, stats):
    out = os.path.join(h.WORK, "ic-paused.icechunk")
    hit = os.path.join(h.WORK, "ic-hit-paused")
    initial, cmd, _, _, _ = refs.operations(out)["append"]
    for what, change, outcome in OTHER_WRITERS:
        case = f"icechunk append paused before its commit, {what} committed meanwhile"
        # Both changes: a clean AB with the same change committed on top.
        expected = os.path.join(h.WORK, "ic-expected.icechunk")
        h.copy_store(refs.paths["AB"], expected)
        commit_change(expected, change, "the other writer")
        both = tip(expected)[2]
        h.copy_store(initial, out)
        if os.path.exists(hit):
            os.remove(hit)
        a = h.launch_on(2, cmd, fault="icechunk.commit@1:0:stop", hit=hit)
        if not h.wait_for_point(a, hit):
            h.fail(f"{case}: pause point not reached: {why(h.finish(a)[2])}")
            continue
        theirs = commit_change(out, change, "the other writer")
        os.kill(h.paused_pid(hit), signal.SIGCONT)
        rc, _, err = h.finish(a)
        snap, n, data = tip(out)
        stats["paused races"] += 1
        if outcome == "rebase":
            if rc != 0:
                h.fail(f"{case}: zarrforge did not rebase (exit {rc}): {why(err)}")
            elif data != both or n != refs.tips["AB"][1] + 1:
                h.fail(f"{case}: main's tip does not hold both changes ({n} snapshots, {named(refs, data)})")
            if h.leftovers(out):
                h.fail(f"{case}: left behind: {h.leftovers(out)}")
            continue
        if rc != LOCKED or not h.one_line_refusal(rc, err) or "moved" not in why(err):
            h.fail(f"{case}: zarrforge did not refuse with exit {LOCKED} and one line saying the branch moved"
                   f" (exit {rc}): {why(err)}")
        elif snap != theirs:
            h.fail(f"{case}: zarrforge committed after its refusal")
        if h.leftovers(out):
            h.fail(f"{case}: left behind after the refusal: {h.leftovers(out)}")
        rc, _, err = h.run_on(2, cmd)
        snap, n, data = tip(out)
        if rc != 0:
            h.fail(f"{case}: the same --append run again failed (exit {rc}): {why(err)}")
        elif data != (both if outcome == "both" else refs.data("AB")):
            seen = "AB's (the other writer's change lost)" if data == refs.data("AB") else named(refs, data)
            h.fail(f"{case}: after the same --append again main holds {seen}, not {outcome}")
        if h.leftovers(out):
            h.fail(f"{case}: left behind after the same --append again: {h.leftovers(out)}")


def main():
    os.makedirs(h.WORK, exist_ok=True)
    files = h.make_inputs(os.path.join(h.WORK, "inputs"))
    stats = collections.Counter()
    t0 = time.time()
    refs = Refs(files)
    for ranks in (2, 3):
        h.timed(f"icechunk kill walk, {ranks} ranks", kill_walk, refs, ranks, stats)
    killed_creating_repository(refs, stats)
    h.timed("icechunk pairs", together_races, refs, stats, 1 if QUICK else 2)
    h.timed("icechunk paused races", paused_races, refs, stats)
    refusals = ", ".join(f"{v} x exit {k.rsplit(' ', 1)[1]}" for k, v in sorted(stats.items())
                         if k.startswith("refused"))
    print(
        f"icechunk faults: {stats['kills']} kill points ({stats['recovered']} recovered to a clean run's data, "
        f"{stats['not reached']} not reached in the faulted run), {stats['pair races']} concurrent pairs"
        f" (refusals: {refusals or 'none'}), {stats['paused races']} paused races; "
        f"{len(h.failures)} failures in {time.time() - t0:.0f} s"
    )
    sys.exit(1 if h.failures else 0)


if __name__ == "__main__":
    main()
