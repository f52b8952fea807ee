"""Mutation test of zarrforge's input handling (driven by tests/mutants/run).

Generates seed files (seeds.py), mutates them with fixed seeds (mutate.py),
converts every mutant with `timeout -k 5 T zarrforge convert --quiet -o
OUT.zarr MUTANT.nc` (and a deterministic ~1/K of them also under `mpirun -np
2`), and classifies each:

  OK-converted  exit 0, and every variable of every group of the store
                equals what netCDF reads from the mutant (raw values, exact,
                NaN == NaN; dims, shapes, dtypes), see compare.py;
  OK-refused    non-zero exit below 124, no signal, no panic, an error on
                stderr naming the mutant, and no committed store (no
                OUT.zarr/zarr.json nor OUT.zarr/.zgroup);
  FAIL          anything else: a signal, a timeout, exit >= 124, "panicked
                at" or "memory allocation of" on stderr, a refusal without
                a message naming the file or with a committed store, a store
                that differs from the source or that was made from a file
                netCDF-C cannot read, a netCDF-3 file converted although it
                ends before the data its header promises, or a mutant that
                converts with one rank count and is refused with the other.

Exit status 1 when any mutant (or any unmutated seed) fails.
"""
import argparse
import hashlib
import json
import os
import queue
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import mutate  # noqa: E402
import nc3  # noqa: E402
import seeds  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(HERE))


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="tests/mutants/run", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=400, help="mutants in total, shared by the seeds (default 400)")
    ap.add_argument("--seed", default="1", help="mutation seed(s), comma-separated (default 1)")
    ap.add_argument("--bin", default=os.environ.get("ZARRFORGE", os.path.join(ROOT, "target/release/zarrforge")))
    ap.add_argument("--keep", metavar="DIR", help="copy failing mutants to DIR/<symptom>/ with a .txt each")
    ap.add_argument("--mpi-every", type=int, default=10, metavar="K",
                    help="also run ~1/K of the mutants under mpirun (default 10; 0: never)")
    ap.add_argument("--np", type=int, default=2, help="ranks for the mpirun runs (default 2)")
    ap.add_argument("--jobs", type=int, default=2, help="conversions at a time (default 2)")
    ap.add_argument("--timeout", type=int, default=60, help="seconds per conversion (default 60)")
    ap.add_argument("--mem-mib", type=int, default=4096,
                    help="address-space limit of each conversion, MiB (default 4096; 0: none)")
    ap.add_argument("--max-seconds", type=float, default=0,
                    help="stop starting new mutants after this long; the rest count as not run (default: no limit)")
    ap.add_argument("--batch", type=int, default=48, help="mutants per comparison batch (default 48)")
    ap.add_argument("--work", help="work directory (default: a new temporary one, removed at the end)")
    ap.add_argument("--files", nargs="+", metavar="NC",
                    help="check these files instead of generated mutants (each singleton and under mpirun)")
    ap.add_argument("--no-gdb", action="store_true",
                    help="do not re-run crashed conversions under gdb to find the crashing call")
    ap.add_argument("-v", "--verbose", action="store_true", help="one line per mutant")
    return ap.parse_args(argv)


SIGNAMES = {s.value: s.name for s in signal.Signals}
LIBFRAME = re.compile(r"/lib(hdf5\w*|netcdf\w*)\.so[.\d]*\((\w+)\+0x")


def crash_site(stderr):
    """'nc_open>...>H5MM_xfree' from Open MPI's backtrace of a crashed rank:
    the outermost and innermost named frames in libhdf5/libnetcdf."""
    frames = [m.group(2) for m in LIBFRAME.finditer(stderr)]
    if not frames:
        return ""
    inner = [f for f in frames if not f.startswith("H5MM_")][:1] or frames[:1]
    return frames[-1] if frames[-1] == inner[0] else f"{frames[-1]}>{inner[0]}"


def _limits(mem_mib):
    def pre():
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if mem_mib:
            b = mem_mib << 20
            resource.setrlimit(resource.RLIMIT_AS, (b, b))
        os.setpgrp()
    return pre


def convert(args, mutant, out, mode):
    """Runs one conversion; returns a dict with rc, signal, stderr, seconds."""
    cmd = ["timeout", "-k", "5", str(args.timeout)]
    if mode == "mpi":
        cmd += ["mpirun", "-np", str(args.np)]
    # A structure scan stuck inside HDF5 is stopped by zarrforge itself
    # (--scan-timeout) well before this harness's own timeout.
    cmd += [args.bin, "convert", "--quiet", "--scan-timeout", str(max(5, args.timeout // 3)), "-o", out, mutant]
    t0 = time.time()
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         preexec_fn=_limits(args.mem_mib), cwd=os.path.dirname(out))
    try:
        so, se = p.communicate(timeout=args.timeout + 30)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        so, se = p.communicate()
        se += b"\n[runner: timeout(1) did not stop the conversion]"
    return dict(cmd=cmd, rc=p.returncode, stderr=se.decode(errors="replace"),
                stdout=so.decode(errors="replace"), seconds=time.time() - t0)


GDBFRAME = re.compile(r"^#\d+\s+(?:0x[0-9a-f]+ in )?([^\s(]+) \(.*?\)(?: (?:from|at) (\S+))?", re.M)


def gdb_site(args, mutant, workdir):
    """Re-runs a crashed singleton conversion under gdb; returns (site,
    frames text): site is 'API>innermost', API being the outermost
    netCDF-C/HDF5 function called from zarrforge and innermost the first
    named library frame. ('', '') without gdb or when it does not crash again."""
    if not shutil.which("gdb"):
        return "", ""
    out = os.path.join(workdir, "gdb.zarr")
    shutil.rmtree(out, ignore_errors=True)
    cmd = ["timeout", "-k", "5", str(args.timeout + 60), "gdb", "-q", "-batch", "-nx", "-ex", "set pagination off",
           "-ex", "run", "-ex", "bt 40", "--args", args.bin, "convert", "--quiet", "-o", out, mutant]
    try:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace",
                           preexec_fn=_limits(args.mem_mib), cwd=workdir, timeout=args.timeout + 90)
    except subprocess.TimeoutExpired:
        return "", ""
    finally:
        shutil.rmtree(out, ignore_errors=True)
    text = p.stdout
    if "received signal" not in text:
        return "", ""
    frames = []
    for m in GDBFRAME.finditer(text[text.index("received signal"):]):
        fn, where = m.group(1), m.group(2) or ""
        frames.append((fn, where))
    lib = [i for i, (fn, w) in enumerate(frames) if re.search(r"lib(hdf5|netcdf)", w)]
    named = [frames[i][0] for i in lib if frames[i][0] != "??" and not frames[i][0].startswith("H5MM_")]
    top = frames[0][0] if frames else "?"
    site = ""
    if lib:
        entry = frames[lib[-1]][0] if lib[-1] + 1 < len(frames) else frames[lib[-1]][0]
        # the outermost library frame directly called from zarrforge
        for i in lib:
            nxt = frames[i + 1][1] if i + 1 < len(frames) else ""
            if not re.search(r"lib(hdf5|netcdf|c\.so)", nxt) and frames[i][0] != "??":
                entry = frames[i][0]
                break
        site = f"{entry}>{named[0] if named else top}"
    caller = next((f"{fn} at {w}" for fn, w in frames if w.startswith("src/")), "")
    if not site and caller:
        # crashed outside netCDF-C/HDF5: name zarrforge's innermost frame
        site = "zarrforge:" + next(w for fn, w in frames if w.startswith("src/"))
    chain = " < ".join(fn for fn, _ in frames[:24])
    return site, f"gdb: {chain}" + (f"; zarrforge: {caller}" if caller else "")


def triage(args, mutant):
    """How ncdump (system netCDF-C) and netCDF4-python fare on a file that
    crashed zarrforge."""
    notes = []
    try:
        p = subprocess.run(["ncdump", mutant], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           timeout=args.timeout, preexec_fn=_limits(args.mem_mib))
        rc = p.returncode
        err = [l for l in p.stderr.decode(errors="replace").splitlines() if l.strip()]
        notes.append("ncdump: " + ("reads it" if rc == 0 else f"{SIGNAMES.get(-rc, rc)}" if rc < 0 else
                                   f"refuses ({err[0][:160] if err else ''})"))
    except subprocess.TimeoutExpired:
        notes.append("ncdump: hangs")
    code = ("import sys, netCDF4\nwith netCDF4.Dataset(sys.argv[1]) as d:\n"
            "    def w(g):\n        [v[...] for v in g.variables.values()]\n        [w(c) for c in g.groups.values()]\n"
            "    w(d)\n")
    try:
        p = subprocess.run([sys.executable, "-c", code, mutant], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           timeout=args.timeout, preexec_fn=_limits(args.mem_mib * 2 if args.mem_mib else 0))
        rc = p.returncode
        err = p.stderr.decode(errors="replace").strip().splitlines()
        notes.append("netCDF4-python: " + ("reads it" if rc == 0 else f"{SIGNAMES.get(-rc, rc)}" if rc < 0 else
                                           f"refuses ({err[-1][:160] if err else ''})"))
    except subprocess.TimeoutExpired:
        notes.append("netCDF4-python: hangs")
    return "; ".join(notes)


def committed(out):
    return os.path.exists(os.path.join(out, "zarr.json")) or os.path.exists(os.path.join(out, ".zgroup"))


PANIC = re.compile(r"panicked at ([^\n]*?):(\d+):\d+")


def short_loc(path, line):
    parts = path.replace("\\", "/").split("/")
    # a registry path: .../<crate>-<version>/src/x.rs -> <crate>-<version>/x.rs
    for i, p in enumerate(parts):
        if p == "src" and i > 0 and re.search(r"-\d+\.\d+", parts[i - 1]):
            return f"{parts[i - 1]}/{'/'.join(parts[i + 1:])}:{line}"
    return f"{'/'.join(parts[-2:])}:{line}"


def slug(s):
    return re.sub(r"[^A-Za-z0-9._-]+", "-", s).strip("-")[:80]


def first_error(stderr):
    lines = [l for l in stderr.splitlines() if l.strip()]
    for l in lines:
        if "error:" in l or "panicked at" in l or "memory allocation" in l:
            return l.strip()[:300]
    return lines[-1].strip()[:300] if lines else ""


def check_exit(run, name, out, timeout):
    """Classifies a finished conversion. Returns (verdict, cls, reason) with
    verdict 'refused', 'converted' (to be compared) or 'fail'."""
    rc, err = run["rc"], run["stderr"]
    sig = -rc if rc < 0 else rc - 128 if rc > 128 else None
    if "memory allocation of" in err:
        m = re.search(r"memory allocation of \d+ bytes failed", err)
        return "fail", "alloc-failure", (m.group(0) if m else "memory allocation failed") + f" (exit {rc})"
    m = PANIC.search(err)
    if m:
        loc = short_loc(m.group(1), m.group(2))
        msg = err[m.end():].strip().splitlines()
        return "fail", f"panic@{loc}", f"panicked at {loc}: {msg[0][:200] if msg else ''} (exit {rc})"
    if rc == 124 or "[runner: timeout" in err:
        return "fail", "timeout", f"still running after {timeout} s: stopped by SIGTERM (exit {rc})"
    if rc == 137 or sig == signal.SIGKILL:
        if run["seconds"] >= timeout:
            return "fail", "timeout", (f"still running after {timeout} s and SIGTERM did not stop it within 5 s: "
                                       f"SIGKILL (exit {rc})")
        return "fail", "signal-SIGKILL", f"killed by SIGKILL before the timeout (OOM killer?) (exit {rc})"
    if rc < 0 or rc >= 124:
        sname = SIGNAMES.get(sig, f"signal {sig}") if sig else f"exit {rc}"
        site = crash_site(err)
        frames = " < ".join(m.group(2) for m in LIBFRAME.finditer(err))
        cls = (f"signal-{sname}" + (f"-in-{site}" if site else "")) if sig else f"exit-{rc}"
        first = first_error(err)
        return "fail", cls, f"{sname} (exit {rc})" + (f" in {frames}" if frames else "") + (f"; {first}" if first else "")
    if rc != 0:
        if not err.strip():
            return "fail", "refused-silently", f"exit {rc} with nothing on stderr"
        if name not in err:
            return "fail", "refused-without-filename", f"exit {rc}, error does not name {name}: {first_error(err)}"
        if committed(out):
            return "fail", "refused-but-committed", f"exit {rc} but {os.path.basename(out)} has a root zarr.json/.zgroup"
        return "refused", "", first_error(err)
    return "converted", "", ""


def truncated_nc3(path):
    """(size, extent) when a netCDF-3 file ends before the data its header
    promises, else None."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:3] != b"CDF":
        return None
    try:
        h = nc3.parse(data)
    except nc3.ParseError:
        return None
    ext = nc3.data_extent(h)
    if ext is not None and len(data) < ext:
        return len(data), ext
    return None


class Comparer:
    """Runs compare.py over a batch of converted mutants, one process per
    batch, restarted on a crash or hang of the reference reader."""

    def __init__(self, args):
        self.args = args

    def run(self, jobs):
        results = {}
        pending = list(jobs)
        per_job = 2 * int(os.environ.get("ZF_MUTANT_REF_TIMEOUT", "60")) + 60
        while pending:
            p = subprocess.Popen([sys.executable, os.path.join(HERE, "compare.py")], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 preexec_fn=_limits(self.args.mem_mib * 2 if self.args.mem_mib else 0))
            q = queue.Queue()
            threading.Thread(target=lambda: [q.put(l) for l in p.stdout] + [q.put(None)], daemon=True).start()
            errbuf = []
            threading.Thread(target=lambda: errbuf.extend(p.stderr), daemon=True).start()
            try:
                p.stdin.write("".join(json.dumps(j) + "\n" for j in pending))
                p.stdin.close()
            except BrokenPipeError:
                pass
            current = None
            while True:
                try:
                    line = q.get(timeout=per_job)
                except queue.Empty:
                    p.kill()
                    line = None
                    why = f"the reference reader did not finish in {per_job} s"
                    break
                if line is None:
                    p.wait()
                    why = f"the compare process died ({SIGNAMES.get(-p.returncode, p.returncode)}): " + \
                          "".join(errbuf)[-300:]
                    break
                r = json.loads(line)
                if r.get("start"):
                    current = r["id"]
                    continue
                results[r["id"]] = r
                current = None
            p.wait()
            by_id = {j["id"]: j for j in pending}
            left = [j for j in pending if j["id"] not in results]
            if current is not None and current in by_id:
                j = dict(by_id[current])
                if j.get("skip_nc4py"):
                    results[current] = dict(id=current, status="store-error", ref="compare",
                                            detail=f"{why} (without netCDF4-python as well)")
                else:
                    j["skip_nc4py"] = True
                    j["skip_reason"] = f"netCDF4-python: {why}"
                    left = [j if x["id"] == current else x for x in left]
            elif left and current is None and pending == left:
                for j in left:  # no progress at all: do not loop forever
                    results[j["id"]] = dict(id=j["id"], status="store-error", ref="compare", detail=why)
                left = []
            pending = [j for j in left if j["id"] not in results]
        return results


def judge_compare(r):
    st, detail = r["status"], r.get("detail", "")
    if st == "equal":
        note = f"equal to {r['ref']}" + (f" ({detail[:200]})" if detail else "")
        return None, note
    if st == "unreadable":
        return "converted-unreadable-by-netcdf-c", f"exit 0 but netCDF-C cannot read the file: {detail[:600]}"
    if st == "store-error":
        return "store-unreadable", f"exit 0 but the store cannot be read back: {detail[:600]}"
    m = re.search(r"differs from [^:]*: /[^:]*: (\w+)", detail)
    what = m.group(1) if m else "values"
    if re.search(r"differs from [^:]*: /[^:]*: \d+ strings differ", detail):
        what = "strings"
    what = {"dims": "dims", "shape": "shape", "dtype": "dtype", "kind": "dtype", "variables": "variables",
            "groups": "groups", "strings": "strings"}.get(what, "values")
    return f"converted-{what}-differ", f"exit 0 but the store differs: {detail[:700]}"


def mpi_selected(name, every):
    if every <= 0:
        return False
    return int(hashlib.sha1(name.encode()).hexdigest(), 16) % every == 0


def main(argv):
    args = parse_args(argv)
    t_start = time.time()
    if not os.access(args.bin, os.X_OK):
        print(f"mutants: no zarrforge binary at {args.bin} (build it, or set --bin/ZARRFORGE)", file=sys.stderr)
        return 2
    for tool in ("ncgen", "ncdump", "nccopy", "timeout") + (("mpirun",) if args.mpi_every or args.files else ()):
        if not shutil.which(tool):
            print(f"mutants: {tool} not found (scripts/install-deps --tools)", file=sys.stderr)
            return 2
    work = args.work or tempfile.mkdtemp(prefix="zf-mutants.")
    os.makedirs(work, exist_ok=True)
    outdir = os.path.join(work, "out")
    os.makedirs(outdir, exist_ok=True)
    try:
        return _run(args, work, outdir, t_start)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)


def _run(args, work, outdir, t_start):
    controls = []
    if args.files:
        mutants = [dict(name=os.path.basename(f), path=os.path.abspath(f), seed="-", format="?", op="file",
                        desc="given file", mpi=True) for f in args.files]
    else:
        seed_paths = seeds.make_seeds(os.path.join(work, "seeds"))
        controls = [dict(name=f"{n}.nc", path=p, seed=n, format="seed", op="control", desc="unmutated seed",
                         mpi=True) for n, p in seed_paths.items()]
        seed_list = [int(s) for s in str(args.seed).split(",") if s.strip()]
        mutants = []
        for k, s in enumerate(seed_list):
            n = args.count // len(seed_list) + (1 if k < args.count % len(seed_list) else 0)
            mutants += mutate.make_mutants(seed_paths, os.path.join(work, "mutants"), n, s)
        for m in mutants:
            m["mpi"] = mpi_selected(m["name"], args.mpi_every)
    st = os.stat(args.bin)
    with open(args.bin, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:12]
    print(f"mutants: {len(mutants)} mutants ({sum(m['mpi'] for m in mutants)} also under mpirun -np {args.np}), "
          f"{len(controls)} unmutated seeds, binary {args.bin} (sha256 {digest}, "
          f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(st.st_mtime))})", file=sys.stderr)
    comparer = Comparer(args)
    results = []
    counts = {"converted": 0, "refused": 0, "fail": 0}
    classes = {}
    not_run = 0
    all_items = controls + mutants
    i = 0
    while i < len(all_items):
        if args.max_seconds and time.time() - t_start > args.max_seconds:
            not_run = len(all_items) - i
            break
        batch = all_items[i:i + args.batch]
        i += len(batch)
        tasks = []
        for m in batch:
            m["runs"] = {}
            tasks.append((m, "single"))
            if m["mpi"]:
                tasks.append((m, "mpi"))

        def do(task):
            m, mode = task
            out = os.path.join(outdir, f"{m['name']}.{mode}.zarr")
            shutil.rmtree(out, ignore_errors=True)
            run = convert(args, m["path"], out, mode)
            run["out"] = out
            run["verdict"], run["cls"], run["reason"] = check_exit(run, m["name"], out, args.timeout)
            if run["verdict"] == "converted":
                t = truncated_nc3(m["path"])
                if t:
                    run["verdict"], run["cls"] = "fail", "converted-truncated-nc3"
                    run["reason"] = (f"exit 0 but the file ends at byte {t[0]} and its header promises "
                                     f"data up to byte {t[1]}")
            if mode == "single" and run["cls"].startswith("signal-") and run["cls"] != "signal-SIGKILL" \
                    and not args.no_gdb:
                site, frames = gdb_site(args, m["path"], outdir)
                if site:
                    sig = run["cls"].split("-")[1]
                    run["cls"] = f"signal-{sig}-in-{site}"
                run["reason"] = "; ".join(x for x in (run["reason"], triage(args, m["path"]), frames) if x)
            m["runs"][mode] = run

        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as ex:
            list(ex.map(do, tasks))
        jobs = [dict(id=f"{m['name']}|{mode}", mutant=m["path"], store=r["out"])
                for m in batch for mode, r in m["runs"].items() if r["verdict"] == "converted"]
        cmp_results = comparer.run(jobs) if jobs else {}
        for m in batch:
            for mode, r in m["runs"].items():
                if r["verdict"] == "converted":
                    c = cmp_results.get(f"{m['name']}|{mode}",
                                        dict(status="store-error", detail="no comparison result"))
                    cls, note = judge_compare(c)
                    if cls:
                        r["verdict"], r["cls"], r["reason"] = "fail", cls, note
                    else:
                        r["reason"] = note
                shutil.rmtree(r["out"], ignore_errors=True)
            finish(args, m, counts, classes, results, is_control=m in controls)
    elapsed = time.time() - t_start
    with open(os.path.join(work, "results.jsonl"), "w") as f:
        for r in results:
            f.write(json.dumps(r) + "\n")
    if args.keep:
        os.makedirs(args.keep, exist_ok=True)
        with open(os.path.join(args.keep, "results.jsonl"), "a") as f:
            for r in results:
                f.write(json.dumps(r) + "\n")
    if classes:
        print("FAIL classes:", file=sys.stderr)
        for cls, ms in sorted(classes.items(), key=lambda kv: -len(kv[1])):
            fmts = sorted({r["format"] + ":" + r["seed"] for r in ms})
            print(f"  {len(ms):4d}  {cls}  [{', '.join(fmts)}]  e.g. {ms[0]['name']}: {ms[0]['reason'][:200]}",
                  file=sys.stderr)
    ctrl_fail = [r for r in results if r["control"] and r["verdict"] == "fail"]
    if ctrl_fail:
        print(f"mutants: {len(ctrl_fail)} UNMUTATED seed(s) fail: the test itself is broken or zarrforge "
              f"cannot convert valid files", file=sys.stderr)
    n = len([r for r in results if not r["control"]])
    print(f"mutants: {n} total, {counts['converted']} converted-equal, {counts['refused']} refused-cleanly, "
          f"{counts['fail']} fail ({elapsed:.0f} s" + (f"; {not_run} not run: --max-seconds" if not_run else "")
          + ")")
    return 1 if counts["fail"] or ctrl_fail else 0


def finish(args, m, counts, classes, results, is_control):
    runs = {mode: m["runs"][mode] for mode in ("single", "mpi") if mode in m["runs"]}
    fails = [(mode, r) for mode, r in runs.items() if r["verdict"] == "fail"]
    outcomes = {mode: r["verdict"] for mode, r in runs.items()}
    if not fails and len(set(outcomes.values())) > 1:
        detail = ", ".join(f"{mode}: {v} ({runs[mode]['reason'][:150]})" for mode, v in outcomes.items())
        runs["mpi"]["verdict"], runs["mpi"]["cls"] = "fail", "np-inconsistent"
        runs["mpi"]["reason"] = f"outcome depends on the rank count: {detail}"
        fails = [("mpi", runs["mpi"])]
    if fails:
        verdict, cls, reason = "fail", fails[0][1]["cls"], "; ".join(f"[{mo}] {r['reason']}" for mo, r in fails)
    else:
        verdict = runs["single"]["verdict"]
        cls, reason = "", runs["single"]["reason"]
    rec = dict(name=m["name"], seed=m["seed"], format=m["format"], op=m["op"], desc=m["desc"], verdict=verdict,
               cls=cls, reason=reason, control=is_control,
               runs={mode: dict(rc=r["rc"], seconds=round(r["seconds"], 2), verdict=r["verdict"], cls=r["cls"],
                                stderr=r["stderr"][-2000:]) for mode, r in runs.items()})
    results.append(rec)
    if not is_control:
        counts[verdict] += 1
    if verdict == "fail":
        classes.setdefault(cls if not is_control else f"CONTROL {cls}", []).append(rec)
        print(f"FAIL {m['name']} ({m['desc'][:160]}): {cls}: {reason[:400]}", file=sys.stderr)
        if args.keep and not is_control:
            d = os.path.join(args.keep, slug(cls))
            os.makedirs(d, exist_ok=True)
            dst = os.path.join(d, m["name"])
            shutil.copyfile(m["path"], dst)
            with open(dst + ".txt", "w") as f:
                f.write(f"mutant: {m['name']}\nseed file: {m['seed']} ({m['format']})\nmutation: {m['op']}: "
                        f"{m['desc']}\nclass: {cls}\nreason: {reason}\n\nreproduce:\n"
                        f"  {os.path.join(ROOT, 'tests/mutants/run')} --files {dst}\n"
                        f"  rm -rf /tmp/o.zarr; {args.bin} convert --quiet -o /tmp/o.zarr {dst}\n")
                for mode, r in runs.items():
                    f.write(f"\n[{mode}] {' '.join(r['cmd'])}\nexit {r['rc']} in {r['seconds']:.1f} s; stderr:\n"
                            f"{r['stderr'][-3000:]}\n")
    elif args.verbose:
        print(f"{verdict:9s} {m['name']}: {reason[:200]}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
