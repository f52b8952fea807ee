#!/usr/bin/env python3
"""Kill-point walk of zarrforge's virtual references (convert --virtual).

usage: virtual_walk.py BIN WORKDIR [--full]

BIN is zarrforge built with the `fault-injection` feature (tests/faults/run
builds it as target/release/zarrforge-faults). The arguments are
harness.py's, whose helpers this walk imports (harness.py reads them when
imported and does nothing else). Needs the Icechunk venv (scripts/env.sh:
zf_icechunk_venv): Icechunk repositories are read with Python icechunk and
xarray, every virtual chunk container of the repository's config
authorized.

Inputs: the `same` set of tests/interop/make_virtual_fixtures.py (4 netCDF-4
files along time, every check passes), made under WORKDIR; every variable
is referenced (--virtual-copy-below 0). Operations, each on 2 ranks:

  icechunk convert   convert --virtual --icechunk of the 4 files, no repository before;
  icechunk append    --append of files 2-3 onto a committed repository of files 0-1;
  json convert       convert --virtual -o refs.json of the 4 files (kerchunk
                     JSON, its staging store .refs.json.zarrforge beside it);
  json append        --append of files 2-3 onto a committed refs.json of files 0-1.

A first run of each lists the points it reaches (ZARRFORGE_FAULT_TRACE);
then the operation starts again from the same initial state (same paths:
the state is copied back into place) and the rank is killed (SIGKILL) at
the first occurrence of a point. After each kill:

  (1) readers see the previous state, or the complete new one when the kill
      came after the commit: the branch main has the same tip snapshot as
      before (a create: no repository, or only Icechunk's first snapshot,
      no dataset), else it holds exactly a clean run's data in a clean run's
      number of snapshots; refs.json is absent (convert) or byte-identical to
      the committed 2-file version (append), else byte-identical to a clean
      run's refs.json (the last step of the commit is the rename of
      refs.json into place);
  (2) the documented recovery, the same command with --resume, on 1 and 3
      ranks in turn, succeeds; the output then equals a clean run's (the
      same data and number of snapshots; refs.json byte for byte), nothing
      of the run is left (lock, journal, temporary files), and
      tests/interop/virtual_compare.py says ok against the 4 sources.

Sampled by default (about 60 s): the commit points of every operation and
a sixth of the other (rank, point) pairs, the sixth changing every day;
--full kills at every (rank, point) (first occurrence).

Prints a line per failure and a one-line summary; exits 1 when anything
failed.
"""

import collections
import hashlib
import itertools
import json
import os
import shutil
import subprocess
import sys
import time
import warnings
import zlib

import icechunk
import numpy as np
import xarray as xr

import harness as h

FULL = "--full" in sys.argv
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
INTEROP = os.path.join(ROOT, "tests", "interop")
DAY = int(time.time() // 86400)
# Points of the commit itself: always killed at.
COMMIT_POINTS = ("icechunk.commit", "icechunk.committed", "icechunk.staged", "icechunk.merged",
                 "commit.decided", "commit.state", "commit.done")

icechunk.set_logs_filter(os.environ.get("ICECHUNK_LOG", "error"))
warnings.simplefilter("ignore")


def why(err):
    lines = [l for l in err.splitlines() if l.startswith("zarrforge: error:")]
    return " | ".join(dict.fromkeys(lines)) if lines else err.strip()[-400:]


# ---------------------------------------------------------------- reading


def ic_state(path):
    """What readers of main see: (snapshot id, snapshots in its ancestry,
    digest of the dataset xarray reads through the references).
    (None, 0, None) without a repository; digest None without a dataset."""
    try:
        storage = icechunk.local_filesystem_storage(path)
        config = icechunk.Repository.fetch_config(storage)
        prefixes = [c.url_prefix for c in config.virtual_chunk_containers.values()] if config else []
        repo = icechunk.Repository.open(
            storage,
            authorize_virtual_chunk_access=icechunk.containers_credentials(
                {p: icechunk.Credentials.LocalFileSystemAccess() for p in prefixes}) if prefixes else None)
        snap = repo.lookup_branch("main")
        count = sum(1 for _ in repo.ancestry(branch="main"))
    except Exception:
        return None, 0, None
    try:
        ds = xr.open_zarr(repo.readonly_session(snapshot_id=snap).store, consolidated=False,
                          decode_times=False)
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


def json_state(path):
    """The bytes of refs.json (None when absent)."""
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        return None


def compare(out, sources):
    """tests/interop/virtual_compare.py OUT SOURCES...: '' when ok, else its
    lines."""
    p = subprocess.run([sys.executable, os.path.join(INTEROP, "virtual_compare.py"), out] + sources,
                       capture_output=True, text=True, timeout=300)
    if p.returncode == 0 and any(l.startswith("ok ") for l in p.stdout.splitlines()):
        return ""
    return f"exit {p.returncode}: " + " | ".join((p.stdout + p.stderr).strip().splitlines()[-4:])


def leftovers(op_dir, kind):
    """What a finished run must not leave: the lock, journal or temporary
    files of the repository or of the staging store, temporary files
    beside refs.json."""
    if kind == "icechunk":
        return h.leftovers(os.path.join(op_dir, "repo.icechunk"))
    bad = [f for f in os.listdir(op_dir) if f not in ("refs.json", ".refs.json.zarrforge")]
    staging = os.path.join(op_dir, ".refs.json.zarrforge")
    if os.path.isdir(staging):
        bad += [".refs.json.zarrforge/" + f for f in h.leftovers(staging)]
    return bad


# ---------------------------------------------------------------- operations


class Op:
    """One operation: its output directory (op_dir, holding repo.icechunk or
    refs.json and its staging store), its initial state (a copy of op_dir,
    restored at the same path), its command, the clean state before and
    after it."""

    def __init__(self, name, kind, files, first=None):
        self.name, self.kind, self.files = name, kind, files
        self.dir = os.path.join(h.WORK, "virtual", name.replace(" ", "-"))
        self.out = os.path.join(self.dir, "repo.icechunk" if kind == "icechunk" else "refs.json")
        self.template = self.dir + ".initial"
        self.sources = (first or []) + files
        base = ["convert", "--quiet", "--virtual", "--virtual-copy-below", "0", "-o", self.out]
        if kind == "icechunk":
            base.insert(3, "--icechunk")
        self.cmd = base + (["--append"] if first else []) + files
        self.recovery = self.cmd[:-len(files)] + ["--resume"] + files
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        if first:
            rc, _, err = h.run_on(2, base + first)
            assert rc == 0, f"{name}: the first 2 files: {why(err)}"
        shutil.rmtree(self.template, ignore_errors=True)
        shutil.copytree(self.dir, self.template, symlinks=True)
        self.old = self.state()
        # The clean run, traced: its points and its end state.
        trace = os.path.join(h.WORK, f"trace-virtual-{self.name.replace(' ', '-')}")
        if os.path.exists(trace):
            os.remove(trace)
        rc, _, err = h.run_on(2, self.cmd, trace=trace)
        assert rc == 0, f"{name}: the unfaulted run: {why(err)}"
        self.new = self.state()
        firsts = set()
        with open(trace) as fh:
            for line in fh:
                rank, point, _n, _pid = line.split()
                firsts.add((int(rank), point))
        self.points = sorted(firsts)

    def reset(self):
        shutil.rmtree(self.dir, ignore_errors=True)
        shutil.copytree(self.template, self.dir, symlinks=True)

    def state(self):
        return ic_state(self.out) if self.kind == "icechunk" else json_state(self.out)

    def sampled(self):
        if FULL:
            return self.points
        return [(r, p) for r, p in self.points if p in COMMIT_POINTS
                or (zlib.crc32(f"{self.name} {r} {p}".encode()) + DAY) % 6 == 0]

    def seen(self, state):
        """'old', 'new' or None: which state readers see."""
        if self.kind == "json":
            return "old" if state == self.old else "new" if state == self.new else None
        snap, count, data = state
        if snap == self.old[0] or (self.old[0] is None and data is None and count <= 1):
            return "old"
        if data == self.new[2] and count == self.new[1]:
            return "new"
        return None

    def describe(self, state):
        if self.kind == "json":
            return "no refs.json" if state is None else f"a refs.json of {len(state)} bytes, neither the old nor the new"
        snap, count, data = state
        return f"tip {snap} with {count} snapshots ({'no dataset' if data is None else 'other data'})"


def walk(op, stats, recovery_ranks):
    hit = os.path.join(h.WORK, "virtual-hit")
    for rank, point in op.sampled():
        case = f"virtual {op.name}: kill rank {rank} at {point}@1"
        op.reset()
        if os.path.exists(hit):
            os.remove(hit)
        rc, _, err = h.run_on(2, op.cmd, fault=f"{point}@1:{rank}", hit=hit)
        if not os.path.exists(hit):
            h.fail(f"{case}: point not reached (exit {rc}): {why(err)}")
            continue
        if rc == 0:
            h.fail(f"{case}: exit 0 after the kill")
        stats["kills"] += 1
        # (1) what readers see after the kill
        seen = op.seen(op.state())
        if seen is None:
            h.fail(f"{case}: readers see {op.describe(op.state())}")
        else:
            stats[f"{seen} after kill"] += 1
        # (2) the recovery: the same command with --resume
        ranks = next(recovery_ranks)
        rc, _, err = h.run_on(ranks, op.recovery)
        what = f"--resume on {ranks} rank{'s' if ranks > 1 else ''}"
        if rc != 0:
            h.fail(f"{case}: {what} failed (exit {rc}): {why(err)}")
            continue
        after = op.state()
        if op.seen(after) != "new":
            h.fail(f"{case}: after {what} readers see {op.describe(after)}, not the clean run's output")
            continue
        left = leftovers(op.dir, op.kind)
        if left:
            h.fail(f"{case}: left behind after {what}: {left}")
        diff = compare(op.out, op.sources)
        if diff:
            h.fail(f"{case}: after {what} virtual_compare.py: {diff}")
            continue
        stats["recovered"] += 1


def main():
    t0 = time.time()
    os.makedirs(h.WORK, exist_ok=True)
    fx = os.path.join(h.WORK, "virtual-fixtures")
    subprocess.run([sys.executable, os.path.join(INTEROP, "make_virtual_fixtures.py"), fx],
                   check=True, capture_output=True)
    files = sorted(os.path.join(fx, "same", f) for f in os.listdir(os.path.join(fx, "same")))
    assert len(files) == 4, files
    stats = collections.Counter()
    ops = [
        Op("icechunk convert", "icechunk", files),
        Op("icechunk append", "icechunk", files[2:], first=files[:2]),
        Op("json convert", "json", files),
        Op("json append", "json", files[2:], first=files[:2]),
    ]
    # The clean runs themselves read back equal to the sources.
    for op in ops:
        diff = compare(op.out, op.sources)
        if diff:
            h.fail(f"virtual {op.name}: the clean run's output: virtual_compare.py: {diff}")
    recovery_ranks = itertools.cycle((1, 3))
    total = 0
    for op in ops:
        total += len(op.points)
        h.timed(f"virtual {op.name}: {len(op.sampled())} of {len(op.points)} points", walk, op, stats, recovery_ranks)
    print(
        f"virtual faults: {stats['kills']} kills of {total} (rank, point) pairs{'' if FULL else ' (sampled)'}"
        f" ({stats['old after kill']} left the previous state, {stats['new after kill']} the complete new one),"
        f" {stats['recovered']} recovered by --resume and compared ok; {len(h.failures)} failures"
        f" in {time.time() - t0:.0f} s"
    )
    sys.exit(1 if h.failures else 0)


if __name__ == "__main__":
    main()
