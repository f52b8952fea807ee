#!/usr/bin/env python3
"""Ranks that finish apart: the units a slower rank has not started are
taken over by the others, and each unit still has exactly one writer.

usage: takeover_walk.py BIN WORKDIR

BIN is zarrforge built with the `fault-injection` feature (tests/faults/run
builds it as target/release/zarrforge-faults): ZARRFORGE_PACE=unit:RANK:MS
makes rank RANK sleep MS milliseconds before each unit it starts
(src/system/fault.rs). The arguments are harness.py's, whose helpers this
walk imports. Needs the test venv (scripts/env.sh: zf_venv).

The store: harness.py's 4 input files, chunks time=1,lat=4 (about a hundred
units), Zarr v3, in a directory. The reference is a clean run on 1 rank.

  (1) On 2 and 3 ranks, with rank 1 slowed down (40 ms a unit): the run
      succeeds; its report shows units taken over (units_taken), every
      unit written once (the ranks' units add up to the plan's); the store
      holds the reference's bytes.
  (2) The same on 2 ranks, with rank 1 killed at its first journal flush,
      after the others took over its units: every unit number is in at
      most one rank's journal, and a journal holds units beyond its rank's
      own share; then --resume on 3 ranks (rank 1 slowed again, so units
      are taken over among the units left) gives the reference's bytes
      and leaves nothing of the run.
  (3) The same kill, then --resume on 1 rank: the reference's bytes.

Prints a line per failure and a one-line summary; exits 1 when anything
failed.
"""

import json
import os
import struct
import sys
import time

import harness as h

LAYOUT = ["--chunks", "time=1,lat=4", "--zarr-format", "3"]
PACE = "unit:1:40"


def why(err):
    lines = [l for l in err.splitlines() if l.startswith("zarrforge: error:")]
    return " | ".join(dict.fromkeys(lines)) if lines else err.strip()[-400:]


def convert(ranks, out, files, *extra, pace=None, fault=None, hit=None):
    if pace:
        h.ENV["ZARRFORGE_PACE"] = pace
    try:
        return h.run_on(ranks, ["convert", "--quiet"] + LAYOUT + ["-o", out] + list(extra) + files,
                        fault=fault, hit=hit)
    finally:
        h.ENV.pop("ZARRFORGE_PACE", None)


def journals(out):
    """{rank: set of unit numbers} of every journal file of the store."""
    d = os.path.join(out, ".zarrforge", "journal")
    found = {}
    for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        if not name.startswith("units-"):
            continue
        rank = int(name.split("-")[-1])
        with open(os.path.join(d, name), "rb") as fh:
            data = fh.read()
        # A torn last record is ignored, as the resume does.
        n = len(data) // 8
        found.setdefault(rank, set()).update(struct.unpack(f"<{n}Q", data[: 8 * n]))
    return found


def shares(files, ranks):
    """Where each rank's own share of the plan on `ranks` ranks starts, and
    where the last ends (`zarrforge plan --json`)."""
    rc, out, err = h.run_on(1, ["plan", "--json", "--ranks", str(ranks), LAYOUT[0], LAYOUT[1]] + files)
    if rc != 0:
        h.fail(f"plan --ranks {ranks}: {why(err)}")
        return None
    plan = json.loads(out)
    return plan["bounds"][:ranks] + [plan["total_units"]]


def main():
    t0 = time.time()
    os.makedirs(h.WORK, exist_ok=True)
    files = h.make_inputs(os.path.join(h.WORK, "inputs"))
    base = os.path.join(h.WORK, "takeover")
    os.makedirs(base, exist_ok=True)
    ref = os.path.join(base, "reference.zarr")
    rc, _, err = convert(1, ref, files)
    if rc != 0:
        h.fail(f"the reference run failed: {why(err)}")
        sys.exit(1)
    want = h.store_files(ref)
    taken = {}

    # (1) a slow rank's units are taken over; the bytes are the reference's.
    for ranks in (2, 3):
        out = os.path.join(base, f"paced-{ranks}.zarr")
        report = os.path.join(base, f"paced-{ranks}.json")
        h.copy_store(None, out)
        rc, _, err = convert(ranks, out, files, "--report", report, pace=PACE)
        case = f"{ranks} ranks, rank 1 slowed"
        if rc != 0:
            h.fail(f"{case}: {why(err)}")
            continue
        with open(report) as fh:
            r = json.load(fh)
        units = [p["units"] for p in r["per_rank"]]
        taken[ranks] = sum(p.get("units_taken", 0) for p in r["per_rank"])
        if taken[ranks] == 0:
            h.fail(f"{case}: no unit taken over ({units} units per rank)")
        if sum(units) != r["units"] or r["units"] != r["total_units"]:
            h.fail(f"{case}: units per rank {units} do not add up to {r['units']} of {r['total_units']}")
        if h.store_files(out) != want:
            h.fail(f"{case}: the store differs from the 1-rank reference")

    # (2), (3) a kill while units are taken over, then --resume.
    bounds = shares(files, 2)
    for resume_ranks in (3, 1):
        case = f"rank 1 killed at its first journal flush, resumed on {resume_ranks}"
        out = os.path.join(base, f"killed-{resume_ranks}.zarr")
        hit = os.path.join(base, "hit")
        for p in (hit,):
            if os.path.exists(p):
                os.remove(p)
        h.copy_store(None, out)
        rc, _, err = convert(2, out, files, pace=PACE, fault="journal.flushed@1:1", hit=hit)
        if not os.path.exists(hit) or rc == 0:
            h.fail(f"{case}: the kill did not happen (exit {rc}): {why(err)}")
            continue
        found = journals(out)
        seen = {}
        for rank, units in found.items():
            for u in units:
                if u in seen:
                    h.fail(f"{case}: unit {u} is in the journals of ranks {seen[u]} and {rank}")
                seen[u] = rank
        if bounds is not None:
            beyond = [u for rank, units in found.items() for u in units
                      if rank + 1 < len(bounds) and not bounds[rank] <= u < bounds[rank + 1]]
            if not beyond:
                h.fail(f"{case}: no journal holds a unit of another rank's share ({ {k: len(v) for k, v in found.items()} })")
        rc, _, err = convert(resume_ranks, out, files, "--resume", pace=PACE)
        if rc != 0:
            h.fail(f"{case}: --resume failed: {why(err)}")
            continue
        if h.store_files(out) != want:
            h.fail(f"{case}: the resumed store differs from the 1-rank reference")
        left = h.leftovers(out)
        if left:
            h.fail(f"{case}: the resumed run left {left}")

    print(
        f"takeover: units taken over on 2 and 3 ranks ({taken.get(2, 0)}, {taken.get(3, 0)}), "
        f"2 kills resumed on 3 and 1 ranks; {len(h.failures)} failures in {time.time() - t0:.0f} s"
    )
    sys.exit(1 if h.failures else 0)


if __name__ == "__main__":
    main()
