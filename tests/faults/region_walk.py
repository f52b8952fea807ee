#!/usr/bin/env python3
"""Kill-point walk of a backfill (convert --region).

usage: region_walk.py BIN WORKDIR [--full]

BIN is zarrforge built with the `fault-injection` feature (tests/faults/run
builds it as target/release/zarrforge-faults). The arguments are
harness.py's, whose helpers this walk imports (harness.py reads them when
imported and does nothing else). Needs the test venv (scripts/env.sh:
zf_venv: xarray, netCDF4).

The store: harness.py's 4 input files (24 daily steps) converted on 2 ranks
into a directory store, Zarr v3, chunks time=7,lat=4. The operation, on 2
ranks: convert --region auto of one corrected file holding steps 10..16
(in hours: re-encoded to the store's days), whose first and last chunks
along time (7..14, 14..21) it covers in part, so both are read back and
completed by their owner.

A first run lists the points the operation reaches (ZARRFORGE_FAULT_TRACE)
and gives the clean backfill's bytes; then the store is restored to its
initial bytes (at the same path) and the rank is killed (SIGKILL) at the
first occurrence of a point. After each kill:

  (1) a directory region write is not atomic: readers may see old and new
      chunks mixed, but never anything else. Every file of the store (but
      zarrforge's own .zarrforge/ and temporary files) holds its old bytes
      or the clean backfill's, and is present or absent as in one of them;
      xarray opens the store, with consolidated metadata and without, and
      every chunk of every variable reads as the old store's or the clean
      backfill's;
  (2) the documented recovery, the same command with --resume, on 1 and 3
      ranks in turn, succeeds; the store then holds a clean backfill's
      bytes (the state's record of the region compared with its time
      stamp masked) and nothing of the run is left (lock, journal,
      commit record, temporary files).

Sampled by default (at most about 40 s): the commit points and a sixth of
the other (rank, point) pairs, the sixth changing every day; --full kills
at every (rank, point), at its first occurrence and, for a repeated point,
at its last too.

Prints a line per failure and a one-line summary; exits 1 when anything
failed.
"""

import collections
import itertools
import os
import re
import shutil
import sys
import time
import warnings
import zlib

import netCDF4
import numpy as np
import xarray as xr

import harness as h

FULL = "--full" in sys.argv
DAY = int(time.time() // 86400)
LAYOUT = ["--chunks", "time=7,lat=4"]
# The steps the corrected file rewrites.
REGION = range(10, 17)
REGION_TEXT = "time[10..17)"
STATE = ".zarrforge/dataset.bin"
# The time stamp of the state's record of each region.
STAMP = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")

warnings.simplefilter("ignore")


def why(err):
    lines = [l for l in err.splitlines() if l.startswith("zarrforge: error:")]
    return " | ".join(dict.fromkeys(lines)) if lines else err.strip()[-400:]


def make_fix(path):
    """Steps 10..16 of harness.py's inputs, corrected: time in hours since
    2000-01-01, other values in every variable along time."""
    with netCDF4.Dataset(path, "w") as nc:
        nc.createDimension("time", None)
        nc.createDimension("lat", 8)
        nc.createDimension("lon", 10)
        t = nc.createVariable("time", "f8", ("time",))
        t.units = "hours since 2000-01-01"
        t[:] = np.array(REGION, "f8") * 24.0
        la = nc.createVariable("lat", "f4", ("lat",))
        la[:] = np.linspace(-70, 70, 8)
        lo = nc.createVariable("lon", "f4", ("lon",))
        lo[:] = np.linspace(0, 324, 10)
        v = nc.createVariable("temp", "f4", ("time", "lat", "lon"), fill_value=-999.0)
        v.units = "K"
        v[:] = 400.0 + np.arange(7 * 8 * 10, dtype="f4").reshape(7, 8, 10) / 8
        w = nc.createVariable("count", "i2", ("time", "lat", "lon"))
        w[:] = 5000 + np.arange(7 * 8 * 10).reshape(7, 8, 10).astype("i2")
        nc.title = "zarrforge fault harness"


# ---------------------------------------------------------------- reading


def internal(rel):
    """zarrforge's own files (lock, journal, state) and temporary files:
    not part of what readers see."""
    return rel.startswith(".zarrforge/") or re.match(r".*/?\.[^/]*\.tmp\d+$", rel) is not None


def data_files(path):
    """Hash of every file readers may open."""
    return {rel: sha for rel, sha in h.store_files(path).items() if not internal(rel)}


def state_bytes(path):
    """The state with the time stamps of its region records masked (None
    when absent)."""
    try:
        with open(os.path.join(path, STATE), "rb") as fh:
            return STAMP.sub(b"YYYY-MM-DDTHH:MM:SSZ", fh.read())
    except FileNotFoundError:
        return None


def arrays(path, consolidated):
    """Every variable xarray reads: its dimensions, values (numpy) and
    chunk shape; None when the store does not open."""
    try:
        ds = xr.open_zarr(path, consolidated=consolidated, decode_times=False)
        out = {}
        for name, v in ds.variables.items():
            chunks = v.encoding.get("chunks") or tuple(
                v.encoding.get("preferred_chunks", {}).get(d, n) for d, n in zip(v.dims, v.shape))
            out[name] = (v.dims, np.asarray(v.values), tuple(chunks))
        ds.close()
        return out
    except Exception:
        return None


def chunks_mixed(seen, old, new):
    """The chunks in `seen` that read as neither the old store's nor the
    new one's: '' when every chunk is one of them."""
    if set(seen) != set(old) or set(seen) != set(new):
        return f"variables {sorted(seen)}, not {sorted(new)}"
    bad = []
    for name, (dims, a, chunks) in sorted(seen.items()):
        o, n = old[name][1], new[name][1]
        if a.shape != n.shape or a.dtype != n.dtype:
            bad.append(f"{name}: shape {a.shape} {a.dtype}")
            continue
        grid = [range(0, size, c) for size, c in zip(a.shape, chunks)]
        for origin in itertools.product(*grid):
            block = tuple(slice(s, s + c) for s, c in zip(origin, chunks))
            if not (np.array_equal(a[block], o[block], equal_nan=True)
                    or np.array_equal(a[block], n[block], equal_nan=True)):
                bad.append(f"{name} chunk at {origin}")
    return ", ".join(bad[:6])


# ---------------------------------------------------------------- the walk


class Backfill:
    """The store (at `out`), its initial bytes (a copy in `template`,
    restored at the same path), the command and its recovery, the old and
    the clean backfill's states."""

    def __init__(self, files, fix):
        base = os.path.join(h.WORK, "region")
        shutil.rmtree(base, ignore_errors=True)
        os.makedirs(base)
        self.out = os.path.join(base, "store.zarr")
        self.template = os.path.join(base, "initial.zarr")
        rc, _, err = h.run_on(2, ["convert", "--quiet", "--zarr-format", "3"] + LAYOUT + ["-o", self.template] + files)
        assert rc == 0, f"the initial store: {why(err)}"
        self.cmd = ["convert", "--quiet", "--region", "auto", "-o", self.out, fix]
        self.recovery = self.cmd[:-1] + ["--resume", fix]
        self.old_files = data_files(self.template)
        self.old_arrays = {c: arrays(self.template, c) for c in (True, False)}
        # The clean run, traced: its points and its bytes.
        self.reset()
        trace = os.path.join(h.WORK, "trace-region")
        if os.path.exists(trace):
            os.remove(trace)
        rc, _, err = h.run_on(2, self.cmd, trace=trace)
        assert rc == 0, f"the unfaulted backfill: {why(err)}"
        self.new_files = data_files(self.out)
        self.new_state = state_bytes(self.out)
        self.new_arrays = {c: arrays(self.out, c) for c in (True, False)}
        assert self.new_files != self.old_files, "the backfill changed no file"
        assert self.new_state.count(f"{REGION_TEXT} rewritten ".encode()) == 1, "the state does not record the region"
        counts = collections.Counter()
        with open(trace) as fh:
            for line in fh:
                rank, point, n, _pid = line.split()
                counts[(int(rank), point)] = max(counts[(int(rank), point)], int(n))
        self.counts = counts
        self.points = sorted(counts)

    def reset(self):
        h.copy_store(self.template, self.out)

    def cases(self):
        """(rank, point, occurrence) to kill at."""
        if FULL:
            return [(r, p, n) for (r, p), last in sorted(self.counts.items())
                    for n in sorted({1, last})]
        return [(r, p, 1) for r, p in self.points
                if p.startswith("commit.")
                or (zlib.crc32(f"region {r} {p}".encode()) + DAY) % 6 == 0]

    def after_kill(self, case):
        """(1): every file old or new, xarray reads old or new chunks."""
        now = data_files(self.out)
        odd = []
        for rel in sorted(set(now) | set(self.old_files) | set(self.new_files)):
            if now.get(rel) not in (self.old_files.get(rel), self.new_files.get(rel)):
                odd.append(rel if rel in now else f"{rel} (missing)")
        if odd:
            h.fail(f"{case}: files neither old nor new: {odd[:8]}")
        for c in (True, False):
            seen = arrays(self.out, c)
            if seen is None:
                h.fail(f"{case}: xarray (consolidated={c}) cannot open the store")
                continue
            bad = chunks_mixed(seen, self.old_arrays[c], self.new_arrays[c])
            if bad:
                h.fail(f"{case}: xarray (consolidated={c}) reads neither the old nor the new values: {bad}")
        return "new" if now == self.new_files else "old" if now == self.old_files else "mixed"

    def recovered(self, case, what):
        """(2): the clean backfill's bytes, nothing left."""
        ok = True
        now = data_files(self.out)
        if now != self.new_files:
            diff = sorted(k for k in set(now) | set(self.new_files) if now.get(k) != self.new_files.get(k))
            h.fail(f"{case}: after {what} these files differ from a clean backfill: {diff[:8]}")
            ok = False
        state = state_bytes(self.out)
        if state != self.new_state:
            records = (state or b"").count(f"{REGION_TEXT} rewritten ".encode())
            h.fail(f"{case}: after {what} {STATE} differs from a clean backfill's"
                   f" ({'absent' if state is None else f'it records {REGION_TEXT} {records} time(s), a clean run once'})")
            ok = False
        left = h.leftovers(self.out)
        if left:
            h.fail(f"{case}: left behind after {what}: {left}")
            ok = False
        return ok


def walk(bf, stats, recovery_ranks):
    hit = os.path.join(h.WORK, "region-hit")
    for rank, point, n in bf.cases():
        case = f"region: kill rank {rank} at {point}@{n}"
        bf.reset()
        if os.path.exists(hit):
            os.remove(hit)
        rc, _, err = h.run_on(2, bf.cmd, fault=f"{point}@{n}:{rank}", hit=hit)
        if not os.path.exists(hit):
            h.fail(f"{case}: point not reached (exit {rc}): {why(err)}")
            continue
        if rc == 0:
            h.fail(f"{case}: exit 0 after the kill")
        stats["kills"] += 1
        stats[f"{bf.after_kill(case)} after kill"] += 1
        ranks = next(recovery_ranks)
        what = f"--resume on {ranks} rank{'s' if ranks > 1 else ''}"
        rc, _, err = h.run_on(ranks, bf.recovery)
        if rc != 0:
            h.fail(f"{case}: {what} failed (exit {rc}): {why(err)}")
            continue
        if bf.recovered(case, what):
            stats["recovered"] += 1


def main():
    t0 = time.time()
    os.makedirs(h.WORK, exist_ok=True)
    files = h.make_inputs(os.path.join(h.WORK, "inputs"))
    fix = os.path.join(h.WORK, "fix.nc")
    make_fix(fix)
    bf = Backfill(files, fix)
    stats = collections.Counter()
    cases = bf.cases()
    h.timed(f"region: {len(cases)} kills at {len(bf.points)} (rank, point) pairs", walk, bf, stats,
            itertools.cycle((1, 3)))
    print(
        f"region faults: {stats['kills']} kills at {len(bf.points)} (rank, point) pairs{'' if FULL else ' (sampled)'}"
        f" ({stats['old after kill']} left the old store, {stats['mixed after kill']} old and new chunks mixed,"
        f" {stats['new after kill']} the new one), {stats['recovered']} recovered by --resume to a clean"
        f" backfill's bytes; {len(h.failures)} failures in {time.time() - t0:.0f} s"
    )
    sys.exit(1 if h.failures else 0)


if __name__ == "__main__":
    main()
