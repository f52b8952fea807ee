#!/usr/bin/env python3
"""Kill-point and race harness of zarrforge's store safety.

usage: harness.py BIN WORKDIR [--quick] [--s3] [--takeover-only]

BIN is zarrforge built with the `fault-injection` feature (src/system/fault.rs):
every step that changes a store calls a named kill point. For each
operation (convert, resume, append, overwrite) and Zarr format (2, 3), a
first run lists every point the operation reaches (ZARRFORGE_FAULT_TRACE).
Then, for each point (and for repeated points the 1st, 2nd, middle and last
time it is reached; in Zarr v2, whose protocol steps are v3's, the 1st and
last), the operation starts again from the same initial store
and the chosen rank is killed (SIGKILL) there. After each kill:

  - what xarray sees, with consolidated metadata and without, must be the
    old store, the new one, or nothing (the store does not open);
  - the documented recovery command (docs/reliability.md) must succeed and
    leave a store byte-for-byte equal to a clean run's, with nothing of the
    interrupted run left (lock, journal, commit record, temporary files).

Races: (1) an operation paused (SIGSTOP) while it holds the store, at its
lock, its commit decision and, for --overwrite, once the old store is
hidden; every operation started against it must refuse with a one-line
message and leave it alone; once resumed the paused operation must finish
as a clean run. (2) every pair of operations started together on one store,
repeated: each ends with success or a one-line refusal, and the store is
one of the states the pair can produce when run one after the other.

With --s3 the stores live on a real S3 server (s3s-fs on 127.0.0.1, its
data under WORKDIR): the commands write s3://faults/..., xarray reads
through s3fs, and the harness copies and compares stores in the server's
data directory (one file per object). The kill walk of v3 (first and last
occurrence of each point) and the paused races run there.

Prints a line per failure and a summary; exits 1 when anything failed.
"""

import hashlib
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import warnings
import zlib

import netCDF4
import numpy as np
import xarray as xr

BIN = os.path.abspath(sys.argv[1])
WORK = os.path.abspath(sys.argv[2])
QUICK = "--quick" in sys.argv
# --sample (tests/faults/run's default; FAULTS_FULL=1 there turns it off):
# in the v3 walk the 2nd and middle occurrences of a repeated point are
# killed for a third of the points only; the first-and-last walks (v2, the
# exchange path, S3) kill a third of their points; a different third each
# day, so three days of CI walk them all; each pair of operations races once;
# half of the paused and of the takeover races run, the other half the next day;
# the v2 paused races (the same protocol steps as v3's) run every other day,
# and on S3 the paused races and the takeover races take turns by the day.
SAMPLE = "--sample" in sys.argv
SAMPLE_DAY = int(time.time() // 86400) if SAMPLE else 0
S3 = "--s3" in sys.argv
# Only the takeover races (for working on the lock): --takeover-only.
TAKEOVER_ONLY = "--takeover-only" in sys.argv
S3_BUCKET = "faults"
S3_ROOT = os.path.join(WORK, "s3data", S3_BUCKET)
S3_OPTIONS = {}
RANKS = 2
TIMEOUT = 180

ENV = dict(os.environ)
ENV.update(
    OMPI_ALLOW_RUN_AS_ROOT="1",
    OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
    OMPI_MCA_rmaps_base_oversubscribe="1",
    HDF5_USE_FILE_LOCKING="FALSE",
    # When a rank is killed, mpirun ends the others at once rather than
    # after a second's grace: the store sees the same kill, sooner.
    OMPI_MCA_odls_base_sigkill_timeout="0",
)
# Every chunk through the writer threads' O_DIRECT path, which the walk's
# small chunks would otherwise skip (chunks under 256 KiB are written
# buffered); the other suites cover buffered writes.
ENV.setdefault("ZARRFORGE_WRITES", "direct")
for k in ("ZARRFORGE_FAULT", "ZARRFORGE_FAULT_TRACE", "ZARRFORGE_FAULT_HIT"):
    ENV.pop(k, None)

failures = []
# Every mpirun gets an Open MPI session directory of its own: launches
# sharing one can fail in orte_init ("orte_session_dir failed") when one
# of them, ending, removes the directory another is creating its files in.
LAUNCHES = itertools.count()


def start_s3():
    """s3s-fs on a free port; its data (one file per object) under WORK."""
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    os.makedirs(S3_ROOT, exist_ok=True)
    exe = os.environ.get("ZF_S3S_FS") or os.path.expanduser("~/.cargo/bin/s3s-fs")
    if not os.path.exists(exe):
        exe = shutil.which("s3s-fs") or exe
    server = subprocess.Popen(
        [exe, "--host", "127.0.0.1", "--port", str(port), "--access-key", "zfkey",
         "--secret-key", "zfsecret", os.path.dirname(S3_ROOT)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    ENV.update(AWS_ACCESS_KEY_ID="zfkey", AWS_SECRET_ACCESS_KEY="zfsecret",
               AWS_ENDPOINT_URL=endpoint, AWS_REGION="us-east-1")
    S3_OPTIONS.update(endpoint_url=endpoint, key="zfkey", secret="zfsecret",
                      client_kwargs={"region_name": "us-east-1"})
    return server


def loc(path):
    """What the commands and readers are given for a store kept at `path`:
    the path, or on S3 the URL of the object prefix the server keeps there."""
    if S3 and path.startswith(S3_ROOT):
        return f"s3://{S3_BUCKET}/" + os.path.relpath(path, S3_ROOT)
    return path


def fail(what):
    failures.append(what)
    print("FAIL", what, flush=True)


# ---------------------------------------------------------------- inputs


def make_inputs(d):
    """Four files of six steps each: time, lat, lon coordinates, a float32
    field with a fill value and an int16 field."""
    os.makedirs(d, exist_ok=True)
    paths = []
    rng = np.random.default_rng(7)
    for f in range(4):
        p = os.path.join(d, f"run_{f}.nc")
        paths.append(p)
        if os.path.exists(p):
            continue
        with netCDF4.Dataset(p, "w") as nc:
            nc.createDimension("time", None)
            nc.createDimension("lat", 8)
            nc.createDimension("lon", 10)
            t = nc.createVariable("time", "f8", ("time",))
            t.units = "days since 2000-01-01"
            t[:] = np.arange(6) + 6 * f
            la = nc.createVariable("lat", "f4", ("lat",))
            la[:] = np.linspace(-70, 70, 8)
            lo = nc.createVariable("lon", "f4", ("lon",))
            lo[:] = np.linspace(0, 324, 10)
            v = nc.createVariable("temp", "f4", ("time", "lat", "lon"), fill_value=-999.0)
            v.units = "K"
            v[:] = rng.normal(280, 10, (6, 8, 10)).astype("f4")
            w = nc.createVariable("count", "i2", ("time", "lat", "lon"))
            w[:] = rng.integers(0, 1000, (6, 8, 10)).astype("i2")
            nc.title = "zarrforge fault harness"
    return paths


# ---------------------------------------------------------------- running


def launch(args, fault=None, trace=None, hit=None):
    env = dict(ENV)
    if fault:
        env["ZARRFORGE_FAULT"] = fault
    if trace:
        env["ZARRFORGE_FAULT_TRACE"] = trace
    if hit:
        env["ZARRFORGE_FAULT_HIT"] = hit
    session = os.path.join(WORK, "ompi", str(next(LAUNCHES)))
    os.makedirs(session, exist_ok=True)
    env["OMPI_MCA_orte_tmpdir_base"] = session
    cmd = ["mpirun", "-np", str(RANKS), BIN] + args
    return subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def finish(p, timeout=TIMEOUT):
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        return None, out, err + "\n(hang: killed by the harness)"
    return p.returncode, out, err


def run(args, **kw):
    return finish(launch(args, **kw))


def launch_on(ranks, args, **kw):
    """launch on `ranks` ranks; RANKS stays `ranks` for what follows (the
    trace, the refusal's line count)."""
    global RANKS
    RANKS = ranks
    return launch(args, **kw)


def run_on(ranks, args, **kw):
    return finish(launch_on(ranks, args, **kw))


def store_files(path):
    """Every file of a store with its bytes, except the lock and journal."""
    out = {}
    for root, dirs, files in os.walk(path):
        for f in files:
            full = os.path.join(root, f)
            rel = os.path.relpath(full, path)
            if rel.startswith(".zarrforge/lock") or rel.startswith(".zarrforge/journal"):
                continue
            with open(full, "rb") as fh:
                out[rel] = hashlib.sha1(fh.read()).hexdigest()
    return out


def leftovers(path):
    """What an interrupted run leaves and a finished one must not."""
    bad = []
    for root, dirs, files in os.walk(path):
        # The S3 server keeps empty directories where objects were: only
        # objects count there.
        for f in files if S3 else files + dirs:
            rel = os.path.relpath(os.path.join(root, f), path)
            if re.match(r".*/?\.[^/]*\.tmp\d+$", rel) or rel.startswith(".zarrforge/lock") or rel in (
                ".zarrforge/commit.bin",
                ".zarrforge/clearing",
                ".zarrforge/journal",
            ):
                bad.append(rel)
    return bad


def view(path, consolidated):
    """What xarray sees: a digest of every variable, or None (no store)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            kw = {"storage_options": S3_OPTIONS} if S3 else {}
            ds = xr.open_zarr(loc(path), consolidated=consolidated, decode_times=False, **kw)
            parts = []
            for name in sorted(ds.variables):
                v = ds.variables[name]
                data = np.ascontiguousarray(v.values)
                parts.append(
                    (name, v.dims, str(data.dtype), hashlib.sha1(data.tobytes()).hexdigest())
                )
            ds.close()
            return json.dumps(parts)
    except Exception:
        return None


def copy_store(src, dst):
    if os.path.lexists(dst):
        shutil.rmtree(dst)
    if src is not None:
        shutil.copytree(src, dst, symlinks=True)


# ---------------------------------------------------------------- scenarios


def convert_args(fmt, out, files, *extra):
    return ["convert", "--quiet", "--zarr-format", str(fmt), "--chunks", "time=3,lat=4", "-o", loc(out)] + list(extra) + files


class Refs:
    """Clean stores of one format: A (files 0-1), B (files 2-3), AB (A with
    files 2-3 appended) and an interrupted conversion of A."""

    def __init__(self, fmt, files, extra=()):
        self.extra = list(extra)
        # The label in stores' names and cases: the format, and "x" for the
        # exchange path.
        self.fmt = f"{fmt}x" if self.extra else fmt
        base = os.path.join(S3_ROOT if S3 else WORK, f"refs-v{self.fmt}")
        os.makedirs(base, exist_ok=True)
        self.a = os.path.join(base, "A.zarr")
        self.b = os.path.join(base, "B.zarr")
        self.ab = os.path.join(base, "AB.zarr")
        self.partial = os.path.join(base, "partial.zarr")
        fa, fb = files[:2], files[2:]
        self.fa, self.fb = fa, fb
        x = self.extra
        for out, fs in ((self.a, fa), (self.b, fb)):
            copy_store(None, out)
            rc, _, err = run(convert_args(fmt, out, fs, *x))
            assert rc == 0, err
        copy_store(self.a, self.ab)
        rc, _, err = run(convert_args(fmt, self.ab, fb, "--append", *x))
        assert rc == 0, err
        # Interrupted: rank 1 killed after its first journal batch.
        copy_store(None, self.partial)
        rc, _, err = run(convert_args(fmt, self.partial, fa, *x), fault="journal.flushed@1:1")
        assert rc != 0 and not os.path.exists(os.path.join(self.partial, "zarr.json" if fmt == 3 else ".zgroup"))
        self.views = {}
        for name, path in (("A", self.a), ("B", self.b), ("AB", self.ab)):
            for c in (True, False):
                self.views[(name, c)] = view(path, c)
                assert self.views[(name, c)] is not None, (name, c)
        self.files = {"A": store_files(self.a), "B": store_files(self.b), "AB": store_files(self.ab)}

    def operations(self, out):
        """name -> (initial store, command, recovery commands, old, new)."""
        fmt = str(self.fmt).rstrip("x")
        x = self.extra
        conv = convert_args(fmt, out, self.fa, *x)
        resume = convert_args(fmt, out, self.fa, "--resume", *x)
        append = convert_args(fmt, out, self.fb, "--append", *x)
        over = convert_args(fmt, out, self.fb, "--overwrite", *x)
        return {
            "convert": (None, conv, [resume], None, "A"),
            "resume": (self.partial, resume, [resume], None, "A"),
            "append": (self.a, append, [append, append + ["--resume"]], "A", "AB"),
            "overwrite": (self.a, over, [over], "A", "B"),
        }


def trace_points(initial, cmd, out, tag, quick=False):
    copy_store(initial, out)
    trace = os.path.join(WORK, f"trace-{tag}")
    if os.path.exists(trace):
        os.remove(trace)
    rc, _, err = run(cmd, trace=trace)
    if rc != 0:
        fail(f"{tag}: the unfaulted run failed: {err.strip()}")
        return []
    counts = {}
    with open(trace) as fh:
        for line in fh:
            rank, name, n, _pid = line.split()
            key = (int(rank), name)
            counts[key] = max(counts.get(key, 0), int(n))
    points = []
    for (rank, name), total in sorted(counts.items()):
        # The first-and-last walks (v2, the exchange path, S3) take a third
        # of their points a day under --sample.
        if SAMPLE and quick and (zlib.crc32(f"{tag} {rank} {name}".encode()) + SAMPLE_DAY) % 3 != 0:
            continue
        picks = sorted({1, 2, (total + 1) // 2, total} & set(range(1, total + 1)))
        if QUICK or quick or (SAMPLE and (zlib.crc32(name.encode()) + SAMPLE_DAY) % 3 != 0):
            picks = sorted({1, total})
        for n in picks:
            points.append((rank, name, n))
    return points


def kill_walk(refs, stats, quick=False):
    out = os.path.join(S3_ROOT if S3 else WORK, f"store-v{refs.fmt}.zarr")
    hit = os.path.join(WORK, "hit")
    for op, (initial, cmd, recoveries, old, new) in refs.operations(out).items():
        tag = f"v{refs.fmt} {op}"
        points = trace_points(initial, cmd, out, f"v{refs.fmt}-{op}", quick)
        for i, (rank, name, n) in enumerate(points):
            case = f"{tag}: kill rank {rank} at {name}@{n}"
            copy_store(initial, out)
            if os.path.exists(hit):
                os.remove(hit)
            rc, _, err = run(cmd, fault=f"{name}@{n}:{rank}", hit=hit)
            if not os.path.exists(hit):
                if rc == 0 and n > 1:
                    stats["not reached"] += 1
                    continue
                fail(f"{case}: point not reached (exit {rc}): {err.strip()[-300:]}")
                continue
            if rc == 0:
                fail(f"{case}: exit 0 after the kill")
            stats["kills"] += 1
            for c in (True, False):
                seen = view(out, c)
                allowed = {None, refs.views[(new, c)]}
                if old is not None:
                    allowed.add(refs.views[(old, c)])
                if seen not in allowed:
                    fail(f"{case}: xarray (consolidated={c}) sees neither the old store, the new one, nor nothing")
            recovery = recoveries[i % len(recoveries)]
            rc, _, err = run(recovery)
            if rc != 0:
                fail(f"{case}: recovery {' '.join(recovery[:1] + recovery[-3:])} failed: {err.strip()}")
                continue
            if store_files(out) != refs.files[new]:
                a, b = store_files(out), refs.files[new]
                diff = sorted(set(a.items()) ^ set(b.items()))[:4]
                fail(f"{case}: recovered store differs from a clean run: {diff}")
            left = leftovers(out)
            if left:
                fail(f"{case}: left behind after recovery: {left}")
            stats["recovered"] += 1


# ---------------------------------------------------------------- races


def one_line_refusal(rc, err):
    """A non-zero exit with zarrforge's one error line (mpirun adds its own
    banner around it)."""
    lines = [l for l in err.splitlines() if l.startswith("zarrforge: error:")]
    return rc not in (0, None) and 0 < len(lines) <= RANKS


def in_lanes(jobs, one, lanes=3):
    """Runs `one(lane, job)` for every job, `lanes` at a time: job i in lane
    i % lanes, one after the other within a lane, so that a lane can keep
    one store and one hit file. For races whose time is mostly runs
    waiting for a paused one."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=lanes) as pool:
        futures = [pool.submit(lambda k=k: [one(k, j) for i, j in enumerate(jobs) if i % lanes == k])
                   for k in range(lanes)]
        for f in futures:
            f.result()


def sampled(jobs, every_other_day):
    """Under --sample, half of the race cases, the other half the next time
    they run: two days of CI race them all, or four for races that run every
    other day (every_other_day)."""
    if not SAMPLE:
        return jobs
    turn = SAMPLE_DAY // 2 if every_other_day else SAMPLE_DAY
    return [job for job in jobs if (zlib.crc32(repr(job).encode()) + turn) % 2 == 0]


def paused_races(refs, stats):
    pauses = {
        "convert": ["store.marked", "commit.decided"],
        "resume": ["lock.published", "commit.decided"],
        "append": ["lock.published", "commit.decided"],
        "overwrite": ["lock.published", "overwrite.hidden", "journal.started"],
    }
    names = list(pauses)
    jobs = sampled([(a, point, b) for a in names for point in pauses[a] for b in names], S3 or refs.fmt == 2)

    def one(lane, job):
        a_name, point, b_name = job
        out = os.path.join(S3_ROOT if S3 else WORK, f"race-v{refs.fmt}-{lane}.zarr")
        hit = os.path.join(WORK, f"hit-race-{lane}")
        ops = refs.operations(out)
        initial, cmd, _, _, new = ops[a_name]
        b_cmd = ops[b_name][1]
        case = f"v{refs.fmt} {a_name} paused at {point}, {b_name} started"
        copy_store(initial, out)
        if os.path.exists(hit):
            os.remove(hit)
        a = launch(cmd, fault=f"{point}@1:0:stop", hit=hit)
        if not wait_for_point(a, hit):
            fail(f"{case}: pause point not reached")
            finish(a)
            return
        time.sleep(0.1)
        rc, _, err = run(b_cmd)
        if not one_line_refusal(rc, err):
            fail(f"{case}: the second run did not refuse (exit {rc}): {err.strip()[-400:]}")
        os.kill(paused_pid(hit), signal.SIGCONT)
        rc, _, err = finish(a)
        if rc != 0:
            fail(f"{case}: the paused run failed once resumed: {err.strip()}")
            return
        if store_files(out) != refs.files[new] or leftovers(out):
            fail(f"{case}: the store is not a clean {new}")
        stats["paused races"] += 1

    in_lanes(jobs, one)


def check_end_state(case, refs, out, before):
    """The store after runs raced on it: one of the clean stores A, B, AB
    (byte for byte, so it verifies as they do) or as it was before, and
    nothing of the runs left behind unless it is unchanged."""
    final = store_files(out)
    states = [k for k, v in refs.files.items() if v == final]
    if final == before:
        states.append("unchanged")
    if not states:
        fail(f"{case}: the store is none of A, B, AB or its initial state")
    elif states != ["unchanged"] and leftovers(out):
        fail(f"{case}: left behind: {leftovers(out)}")


def together_races(refs, stats, repeats):
    out = os.path.join(WORK, f"pair-v{refs.fmt}.zarr")
    ops = refs.operations(out)
    names = list(ops)
    for initial_name, initial in (("committed", refs.a), ("interrupted", refs.partial)):
        for a_name, b_name in itertools.combinations_with_replacement(names, 2):
            for rep in range(repeats):
                case = f"v{refs.fmt} {a_name} + {b_name} on a {initial_name} store (#{rep + 1})"
                copy_store(initial, out)
                before = store_files(out)
                procs = [launch(ops[a_name][1]), launch(ops[b_name][1])]
                results = [finish(p) for p in procs]
                for (rc, _, err), nm in zip(results, (a_name, b_name)):
                    if rc == 4 or "No such file" in err:
                        fail(f"{case}: {nm} failed as a storage error (exit {rc}): {err.strip()[-400:]}")
                    elif rc != 0 and not one_line_refusal(rc, err):
                        fail(f"{case}: {nm} neither succeeded nor refused in one line (exit {rc}): {err.strip()[-400:]}")
                check_end_state(case, refs, out, before)
                stats["pair races"] += 1


def holders_overlap(trace):
    """Whether two runs ever held the store at once, from the shared trace
    of every run of a race: a lock is held from its `lock.published` to its
    `lock.released` (lines are appended in the order the steps happen)."""
    holding = set()
    with open(trace) as fh:
        for line in fh:
            rank, name, _n, pid = line.split()
            if rank != "0":
                continue
            if name == "lock.published":
                if holding - {pid}:
                    return f"pid {pid} took the lock while {sorted(holding)} held it"
                holding.add(pid)
            elif name == "lock.released":
                holding.discard(pid)
    return None


def wait_for_point(p, hit, seconds=60):
    """Waits until the run `p` has reached its pause point (its hit file) or
    ended; whether it reached it."""
    deadline = time.time() + seconds
    while not os.path.exists(hit) and time.time() < deadline and p.poll() is None:
        time.sleep(0.05)
    # The hit line is written just before the process stops itself.
    time.sleep(0.1)
    return os.path.exists(hit)


def paused_pid(hit):
    with open(hit) as fh:
        return int(fh.read().split()[3])


def stale_template(refs, name, initial, cmd):
    """A store left by `cmd` SIGKILLed right after it took the lock: its
    lock is stale (the setting of every takeover race)."""
    out = os.path.join(os.path.dirname(refs.a), f"stale-{name}.zarr")
    copy_store(initial, out)
    rc, _, err = run(cmd, fault="lock.published@1:0")
    assert rc != 0, err
    assert os.path.exists(os.path.join(out, ".zarrforge", "lock")), name
    return out


def takeover_races(refs, stats):
    """Runs that find a stale lock, one of them paused (SIGSTOP) at each step
    of its takeover (judged stale, claim taken, lock replaced, lock held),
    while others start: at every moment at most one run holds the store,
    every run ends with success or a one-line refusal (a lost lock is exit 6
    naming the holder, never a storage error), and the store ends as one of
    the states the runs give one after the other, with nothing left behind.
    Cases run three at a time, each on its own store (most of a case is
    runs waiting for a paused one)."""
    base = os.path.dirname(refs.a)
    stale = {
        "stale-append": stale_template(refs, "append", refs.a, refs.operations(os.path.join(base, "stale-append.zarr"))["append"][1]),
        "stale-create": stale_template(refs, "create", None, refs.operations(os.path.join(base, "stale-create.zarr"))["convert"][1]),
        "interrupted": refs.partial,
    }
    # (name, initial store, paused operation, operations started against it)
    cases = [
        ("overwrite x append", "stale-append", "overwrite", ["append"]),
        ("append x overwrite", "stale-append", "append", ["overwrite"]),
        ("resume x overwrite", "interrupted", "resume", ["overwrite"]),
        ("overwrite x resume", "interrupted", "overwrite", ["resume"]),
        ("append x append", "stale-append", "append", ["append"]),
        ("create x create", "stale-create", "convert", ["convert"]),
        ("overwrite x append + append", "stale-append", "overwrite", ["append", "append"]),
    ]
    steps = ["lock.stale", "lock.replaced", "lock.published"] if S3 else [
        "lock.stale", "lock.claimed", "lock.replaced", "lock.published"]
    # (step the first run is paused at, step the first of the others is
    # paused at until the first run has ended, or None: the others run to
    # their end while the first is paused). Only a first run paused before
    # its claim can meet another run holding the store.
    orders = [(step, None) for step in steps]
    orders += [("lock.stale", "commit.decided")]
    if not S3:
        orders += [("lock.stale", "lock.claimed")]
    jobs = sampled([(name, initial, first, others, step, other_step)
                    for name, initial, first, others in cases for step, other_step in orders], S3)
    jobs = [(name, stale[initial], first, others, step, other_step)
            for name, initial, first, others, step, other_step in jobs]

    def one(lane, job):
        name, initial, first, others, step, other_step = job
        out = os.path.join(S3_ROOT if S3 else WORK, f"takeover-v{refs.fmt}-{lane}.zarr")
        hit = os.path.join(WORK, f"hit-takeover-{lane}")
        trace = os.path.join(WORK, f"trace-takeover-{lane}")
        ops = refs.operations(out)
        case = f"v{refs.fmt} takeover {name}, the first paused at {step}"
        if other_step:
            case += f", then the second at {other_step}"
        takeover_case(refs, case, out, hit, trace, initial, ops[first][1], [ops[o][1] for o in others], step, other_step)
        stats["takeover races"] += 1

    in_lanes(jobs, one)


def takeover_case(refs, case, out, hit, trace, initial, paused_cmd, others, step, other_step):
    copy_store(initial, out)
    before = store_files(out)
    hit_b = hit + "-b"
    for f in (hit, hit_b, trace):
        if os.path.exists(f):
            os.remove(f)
    a = launch(paused_cmd, fault=f"{step}@1:0:stop", hit=hit, trace=trace)
    if not wait_for_point(a, hit):
        fail(f"{case}: pause point not reached: {finish(a)[2].strip()[-300:]}")
        return
    procs = [launch(c, trace=trace, fault=f"{other_step}@1:0:stop" if other_step and i == 0 else None,
                    hit=hit_b if other_step and i == 0 else None)
             for i, c in enumerate(others)]
    if other_step:
        # The second run holds its pause point (or has ended): the first
        # goes on now and ends, then the second.
        wait_for_point(procs[0], hit_b)
        os.kill(paused_pid(hit), signal.SIGCONT)
        first = finish(a)
        if os.path.exists(hit_b):
            os.kill(paused_pid(hit_b), signal.SIGCONT)
        results = [finish(p) for p in procs] + [first]
    else:
        results = [finish(p) for p in procs]
        os.kill(paused_pid(hit), signal.SIGCONT)
        results.append(finish(a))
    for i, (rc, _, err) in enumerate(results):
        who = "the first run" if i == len(results) - 1 else f"run {i + 2}"
        if rc == 0:
            continue
        if rc == 4 or "No such file" in err or not one_line_refusal(rc, err):
            fail(f"{case}: {who} exit {rc}: {err.strip()[-400:]}")
        elif rc == 6 and "is locked by another zarrforge run (host" not in err:
            fail(f"{case}: {who} lost the lock without naming its holder: {err.strip()[-300:]}")
    overlap = holders_overlap(trace)
    if overlap:
        fail(f"{case}: two runs held the store at once: {overlap}")
    check_end_state(case, refs, out, before)


def timed(what, fn, *args, **kw):
    """Runs one section and says how long it took (the CI log's budget)."""
    t = time.time()
    fn(*args, **kw)
    print(f"  {what}: {time.time() - t:.0f} s", flush=True)


def main():
    os.makedirs(WORK, exist_ok=True)
    files = make_inputs(os.path.join(WORK, "inputs"))
    stats = {"kills": 0, "recovered": 0, "not reached": 0, "paused races": 0, "pair races": 0,
             "takeover races": 0}
    t0 = time.time()
    if S3:
        server = start_s3()
        try:
            refs = Refs(3, files)
            if not TAKEOVER_ONLY:
                timed("S3 kill walk", kill_walk, refs, stats, quick=True)
                if not SAMPLE or SAMPLE_DAY % 2 == 0:
                    timed("S3 paused races", paused_races, refs, stats)
            if TAKEOVER_ONLY or not SAMPLE or SAMPLE_DAY % 2 == 1:
                timed("S3 takeover races", takeover_races, refs, stats)
        finally:
            server.terminate()
        print(
            f"faults on S3: {stats['kills']} kill points ({stats['recovered']} recovered to a clean run's bytes, "
            f"{stats['not reached']} not reached in the faulted run), {stats['paused races']} paused races, "
            f"{stats['takeover races']} takeover races; "
            f"{len(failures)} failures in {time.time() - t0:.0f} s"
        )
        sys.exit(1 if failures else 0)
    if TAKEOVER_ONLY:
        takeover_races(Refs(3, files), stats)
        print(f"takeover races: {stats['takeover races']}; {len(failures)} failures in {time.time() - t0:.0f} s")
        sys.exit(1 if failures else 0)
    for fmt in (3, 2):
        refs = Refs(fmt, files)
        # Zarr v2 differs from v3 in the metadata written, not in the steps
        # of the protocol: its walk kills at the first and last occurrence of
        # every point (v3 also at the second and the middle one).
        timed(f"v{fmt} kill walk", kill_walk, refs, stats, quick=fmt == 2)
        if fmt == 3 or not SAMPLE or SAMPLE_DAY % 2 == 0:
            timed(f"v{fmt} paused races", paused_races, refs, stats)
        if fmt == 3:
            timed("v3 takeover races", takeover_races, refs, stats)
        timed(f"v{fmt} pairs", together_races, refs, stats, 1 if QUICK or SAMPLE or fmt == 2 else 2)
    # The exchange path (every array through the all-to-all rounds): the
    # same operations killed at the first and last occurrence of every point.
    timed("v3 exchange kill walk", kill_walk, Refs(3, files, ["--exchange", "always"]), stats, quick=True)
    print(
        f"faults: {stats['kills']} kill points ({stats['recovered']} recovered to a clean run's bytes, "
        f"{stats['not reached']} not reached in the faulted run), {stats['paused races']} paused races, "
        f"{stats['pair races']} concurrent pairs, {stats['takeover races']} takeover races; "
        f"{len(failures)} failures in {time.time() - t0:.0f} s"
    )
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
