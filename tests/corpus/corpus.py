"""Classifies the corpus runs made by tests/corpus/run (see the rules at the top of that script).

usage: [CORPUS_CONVERTED=MARKER] corpus.py check RUNS.tsv EXPECTED.txt [--workers N]
       (corpus.py worker: internal, one checking child)

RUNS.tsv has one line per conversion:
    NAME  SOURCE  MODE  STORE  RC_FILE  ERR_FILE  COMMAND
(RC_FILE holds the exit status, ERR_FILE the stderr; a missing SOURCE means
that the corpus entry could not be made, ERR_FILE then says why.) With
CORPUS_CONVERTED set, the conversions may still be running: a run is checked
once its RC_FILE exists, or once the MARKER file exists (all runs ended).
The stores of a file are deleted once it is checked, unless CORPUS_KEEP is set.

Every run of one file is checked in one task, so the source is opened and read
once per file (netCDF4 scan, ncdump -h, xarray raw and CF-decoded); the values
are compared with tests/interop/compare.py's rules (imported, not copied).
Prints one line per file, then `corpus: N files, P pass, R refused, F fail`;
exits 1 when any run FAILs.
"""
import fnmatch
import os
import re
import subprocess
import sys
import time
import warnings

warnings.filterwarnings("ignore")

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "interop"))

PANIC = re.compile(r"panicked at|RUST_BACKTRACE|stack backtrace")
SIGNAL_TEXT = re.compile(r"exited on signal|Segmentation fault|core dumped|Aborted|killed by signal|"
                         r"Bus error|double free|free\(\): invalid|malloc\(\)|stack smashing")
# Type classes Zarr (and xarray) cannot represent, and the words a refusal
# must use to be counted as refusing for that reason.
UNREPRESENTABLE_WORDS = {
    "compound": re.compile(r"compound", re.I),
    "opaque": re.compile(r"opaque", re.I),
    "vlen": re.compile(r"vlen|variable[- ]length", re.I),
}


def read_expected(path):
    out = []
    if not os.path.exists(path):
        return out
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            pat, *reason = line.split(None, 1)
            out.append((pat, reason[0].strip() if reason else ""))
    return out


def expected_reason(name, expected):
    for pat, reason in expected:
        if fnmatch.fnmatchcase(name, pat):
            return reason
    return None


# ---------------------------------------------------------------- source scan

TYPE_DECL = [
    (re.compile(r"^\s*compound\s+(\S+)\s*\{"), "compound"),
    (re.compile(r"^\s*opaque\(\d+\)\s+(\S+)\s*;"), "opaque"),
    (re.compile(r"^\s*\S+\(\*\)\s+(\S+)\s*;"), "vlen"),
    (re.compile(r"^\s*\S+\s+enum\s+(\S+)\s*\{"), "enum"),
]


def ncdump_scan(path):
    """User-defined types and where they are used, from `ncdump -h` (the
    netCDF-C that zarrforge links). Returns (readable, error, {class: uses})
    where uses is a set of "var" / "att"."""
    try:
        p = subprocess.run(["ncdump", "-h", path], capture_output=True, timeout=60)
    except Exception as e:  # no ncdump: no type information
        return True, f"ncdump: {e}", {}
    if p.returncode != 0:
        err = p.stderr.decode("utf-8", "replace").strip()
        return False, err or f"ncdump -h exit {p.returncode}", {}
    text = p.stdout.decode("utf-8", "replace")
    types = {}
    for line in text.splitlines():
        for rx, cls in TYPE_DECL:
            m = rx.match(line)
            if m:
                types[m.group(1)] = cls
    uses = {}
    in_compound = False
    for line in text.splitlines():
        st = line.strip()
        # Members of a compound type declaration are not uses by variables.
        if re.match(r"^compound \S+ \{", st):
            in_compound = True
            continue
        if in_compound:
            in_compound = not st.startswith("}")
            continue
        if not st or st.startswith("//"):
            continue
        # "T name(dims) ;" / "T name ;" declares a variable, "T var:att = ..."
        # or "T :att = ..." an attribute; T may be a path (/g/cmpd_t).
        parts = st.split(None, 1)
        base = parts[0].rsplit("/", 1)[-1]
        if base not in types or len(parts) < 2 or " enum " in f" {st} " or st.startswith("opaque("):
            continue
        kind = "att" if ":" in parts[1].split("(")[0].split("=")[0] else "var"
        uses.setdefault(types[base], set()).add(kind)
    return True, "", uses


def unrepresentable(uses):
    """Type classes the file uses that Zarr cannot hold: compound, opaque and
    vlen, in variables or attributes (enums must convert). zarrforge refuses
    them by default, naming the type; --skip-unsupported leaves them out
    (docs/errors.md)."""
    return [cls for cls in ("compound", "opaque", "vlen") if cls in uses]


def nofill_unwritten(path):
    """Variables ("group/name") of a netCDF-4 source that are _NoFill (HDF5
    fill time "never") and have no storage allocated (never written): HDF5
    reads them as uninitialised memory, a new value at every read, so their
    values are undefined and not compared. Found with `h5dump -p -H`."""
    try:
        with open(path, "rb") as f:
            if f.read(8) != b"\x89HDF\r\n\x1a\n":
                return set()
        p = subprocess.run(["h5dump", "-p", "-H", path], capture_output=True, timeout=60)
    except Exception:
        return set()
    out, stack, cur = set(), [], None  # stack: (indent, group name); cur: (indent, name, lines)
    for line in p.stdout.decode("utf-8", "replace").splitlines():
        indent = len(line) - len(line.lstrip())
        m = re.match(r'^\s*GROUP "(.*)" \{$', line)
        if m and cur is None:
            stack.append((indent, m.group(1)))
            continue
        m = re.match(r'^\s*DATASET "(.*)" \{$', line)
        if m and cur is None:
            cur = (indent, m.group(1), [])
            continue
        if line.strip() == "}":
            if cur is not None and indent == cur[0]:
                text = "\n".join(cur[2])
                if "H5D_FILL_TIME_NEVER" in text and re.search(r"^\s*SIZE 0\b", text, re.M):
                    groups = [g for _, g in stack if g != "/"]
                    name = re.sub(r"^_nc4_non_coord_", "", cur[1])
                    out.add("/".join(groups + [name]))
                cur = None
            elif cur is None and stack and indent == stack[-1][0]:
                stack.pop()
            continue
        if cur is not None:
            cur[2].append(line)
    return out


class NoFillSkippingNetCDF4:
    """Stands in for netCDF4 in compare.compare_zarr_python: the datasets it
    opens hide the variables in `skip` ("group/name")."""

    def __init__(self, real, skip):
        self._real, self._skip = real, skip

    def __getattr__(self, name):
        return getattr(self._real, name)

    def Dataset(self, path, *a, **kw):
        return _SkippingGroup(self._real.Dataset(path, *a, **kw), self._skip, "")


class _SkippingGroup:
    def __init__(self, g, skip, prefix):
        self._g, self._skip, self._prefix = g, skip, prefix

    def __getattr__(self, name):
        return getattr(self._g, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._g.close()

    @property
    def variables(self):
        return {n: v for n, v in self._g.variables.items() if self._prefix + n not in self._skip}

    @property
    def groups(self):
        return {n: _SkippingGroup(c, self._skip, f"{self._prefix}{n}/") for n, c in self._g.groups.items()}


def netcdf4_openable(path):
    import netCDF4

    try:
        with netCDF4.Dataset(path) as ds:
            ds.data_model
        return True, ""
    except Exception as e:
        return False, f"{type(e).__name__}: {e}"


# ----------------------------------------------------------- store compare

class CachingXarray:
    """Stands in for the xarray module inside compare.py.

    * Opening the same source twice returns the dataset already loaded
      (compare.load() closes it after .load(), which leaves the values in
      memory), so the 2-4 stores of one file cost one read of the source.
    * The source comes back with its dimension coordinates first: compare.py
      replaces a packed variable decoded to float64 from Zarr by the float32
      source one (`out[name] = s`), which aligns on the coordinates; a
      variable on packed float32 coordinates replaced before them would align
      against the float64 ones and turn all-NaN (a false difference).
    * Attributes named "_nc*" (any case) are hidden by xarray's zarr backend:
      taken out of the source and checked with zarr-python instead.
    * A source whose times xarray cannot decode is compared CF-decoded
      without decoding times, on both sides.
    * Values of _NoFill variables never written are undefined in the source:
      see nofill_unwritten; both sides get zeros there.
    """

    def __init__(self, xr, src, undefined=()):
        self._xr = xr
        self._src = src
        self._cache = {}
        self._undefined = set(undefined)
        self.times_undecoded = set()  # groups whose source times xarray cannot decode
        self.hidden_attrs = {}  # (group, variable or None, name): source value

    def _hide_nc_attrs(self, ds, group):
        """Attributes whose name starts with "_nc" in any case: xarray's zarr
        backend hides them (NCZarr's), so they are taken out of the source
        here and checked in the store with zarr-python (check_hidden_attrs)."""
        for where, attrs in [(None, ds.attrs)] + [(n, v.attrs) for n, v in ds.variables.items()]:
            for k in [k for k in attrs if k.lower().startswith("_nc")]:
                self.hidden_attrs[(group, where, k)] = attrs.pop(k)
        return ds

    def _blank_undefined(self, ds, group):
        """Zeros in place of the values of the variables whose source values
        are undefined (see nofill_unwritten), on both sides."""
        import numpy as np

        prefix = f"{group}/" if group else ""
        for name in list(ds.variables):
            if prefix + name in self._undefined:
                v = ds.variables[name]
                v.data = np.zeros(v.shape, dtype=v.dtype)
        return ds

    def __getattr__(self, name):
        return getattr(self._xr, name)

    def open_dataset(self, path, **kw):
        # Sources are read by netCDF-C whatever their name (xarray guesses
        # the engine from the extension or signature, and a .h5 file with a
        # padded superblock defeats both).
        kw.setdefault("engine", "netcdf4")
        key = (path, tuple(sorted(kw.items())))
        if key not in self._cache:
            try:
                ds = self._xr.open_dataset(path, **kw)
                with ds:
                    ds.load()
            except ValueError as e:
                # Times xarray cannot decode (units it cannot parse): both
                # sides are compared CF-decoded but for the times.
                if kw.get("decode_cf") is False or "decode_times" in kw or "time" not in str(e):
                    raise
                self.times_undecoded.add(kw.get("group"))
                ds = self._xr.open_dataset(path, decode_times=False, **kw)
                with ds:
                    ds.load()
            self._cache[key] = self._hide_nc_attrs(self._blank_undefined(ds, kw.get("group")), kw.get("group"))
        ds = self._cache[key]
        dims = [n for n in ds.variables if n in ds.dims]
        ordered = ds[dims + [n for n in ds.data_vars if n not in dims]]
        # ds[names] keeps only the coordinates those variables need
        return (ordered if set(ordered.variables) == set(ds.variables) else ds).copy()

    def error(self, path, **kw):
        """The exception opening the source raises, or None."""
        try:
            self.open_dataset(path, **kw)
            return None
        except Exception as e:
            return e

    def open_zarr(self, store, **kw):
        if kw.get("decode_cf") is not False and kw.get("group") in self.times_undecoded:
            kw["decode_times"] = False
        ds = self._xr.open_zarr(store, **kw)
        return self._blank_undefined(ds, kw.get("group"))


def short(e, lines=5):
    """One line out of an error: xarray's header line dropped, the diff lines
    that follow it joined with " | "."""
    text = f"{type(e).__name__}: {e}" if isinstance(e, BaseException) else str(e)
    text = re.sub(r"Left and right \S+ objects are not identical\n?", "", text)
    out = [l.strip() for l in text.splitlines() if l.strip()][:lines]
    return " | ".join(out)[:700]


def zarr_readable(store):
    """Every array of every group of the store reads with zarr-python."""
    import zarr

    def walk(g):
        for _, a in g.arrays():
            a[...]
        for _, child in g.groups():
            walk(child)

    walk(zarr.open_group(store, mode="r"))


def check_hidden_attrs(hidden, store):
    """The "_nc*" attributes xarray's zarr backend does not show: equal in the
    store, read with zarr-python."""
    import numpy as np
    import zarr

    root = zarr.open_group(store, mode="r")
    for (group, var, name), want in hidden.items():
        node = root[group] if group else root
        if var is not None:
            node = node[var]
        if name not in node.attrs:
            raise AssertionError(f"attribute {name} of {(group or '') + '/' + (var or '')} missing in the store")
        got = node.attrs[name]
        w, g = np.asarray(want), np.asarray(got)
        if w.ravel().tolist() != g.ravel().tolist() and not (w.size == 1 and g.size == 1 and str(w.ravel()[0]) == str(g.ravel()[0])):
            raise AssertionError(f"attribute {name} of {(group or '') + '/' + (var or '')}: source {want!r} store {got!r}")


def compare_store(compare, cx, src, store):
    """compare.py's checks, group by group; returns a list of notes. Raises on
    the first difference. Where the reference readers cannot read the source
    the check is weaker, and a note says so: a source netCDF4-python cannot
    walk -> the store is only read through with zarr-python; a group xarray
    cannot open raw -> zarr-python values only; a group xarray cannot
    CF-decode -> compared raw only."""
    import xarray as xr

    notes = []
    if cx._undefined:
        notes.append(f"values of _NoFill variable(s) {', '.join(sorted(cx._undefined))} not compared "
                     "(unwritten netCDF-4 data is undefined: HDF5 returns uninitialised memory)")
    try:
        groups = compare.groups_of(src)
    except Exception as e:
        zarr_readable(store)
        return [f"netCDF4-python cannot read the source ({short(e, 1)}): store only read through with zarr-python"]
    for g in [None] + groups:
        kw = {} if g is None else {"group": g}
        err_raw = cx.error(src, decode_cf=False, **kw)
        if err_raw is not None:
            notes.append(f"xarray cannot read source{' group ' + g if g else ''} ({short(err_raw, 1)}): zarr-python only")
            continue
        if cx.error(src, **kw) is None:
            try:
                compare.compare_group(src, store, g)
            except AssertionError as e:
                raise AssertionError(f"group {g or '/'}: {e}") from None
        else:
            notes.append(f"xarray cannot CF-decode source{' group ' + g if g else ''} "
                         f"({short(cx.error(src, **kw), 1)}): raw compare only")
            s = compare.load(cx.open_dataset(src, decode_cf=False, **kw))
            o = compare.load(cx.open_zarr(store, decode_cf=False, consolidated=None, chunks=None, **kw))
            if hasattr(compare, "documented"):
                compare.documented(s, o, compare.store_format(store))
            xr.testing.assert_identical(s, o)
            compare.check_dtypes(s, o, f"{src} vs {store} (raw)")
    check_hidden_attrs(cx.hidden_attrs, store)
    if cx.times_undecoded:
        notes.append("xarray cannot decode the source's times: compared CF-decoded with decode_times=False")
    real = compare.netCDF4
    if cx._undefined:
        compare.netCDF4 = NoFillSkippingNetCDF4(real, cx._undefined)
    try:
        compare.compare_zarr_python(src, store)
    except RuntimeError as e:
        # netCDF4-python's own read of the source failed (its errors start
        # "NetCDF:"; zarr-python raises other types): nothing to compare with.
        if not str(e).startswith("NetCDF:"):
            raise
        notes.append(f"netCDF4-python cannot read a source variable ({short(e, 1)}): zarr-python check skipped")
    finally:
        compare.netCDF4 = real
    return notes


def same_tree(a, b):
    """Two directories hold the same files with the same bytes."""
    import filecmp

    def files(root):
        out = []
        for d, _, names in os.walk(root):
            out += [os.path.relpath(os.path.join(d, n), root) for n in names]
        return sorted(out)

    fa = files(a)
    if fa != files(b):
        return False
    return all(filecmp.cmp(os.path.join(a, f), os.path.join(b, f), shallow=False) for f in fa)


def committed(store):
    return os.path.exists(os.path.join(store, "zarr.json")) or os.path.exists(os.path.join(store, ".zgroup"))


def read(path, default=""):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return default


def check_file(args):
    name, runs, expected = args
    import xarray
    import compare

    src = runs[0]["source"]
    cx = CachingXarray(xarray, src, nofill_unwritten(src) if os.path.exists(src) else ())
    compare.xr = cx
    results = []
    prep_err = None
    if not os.path.exists(src):
        prep_err = read(runs[0]["err"]).strip() or "source not made"
    info = None
    marker = os.environ.get("CORPUS_CONVERTED")
    checked_pass = []  # stores of this file compared and found equal
    for r in runs:
        mode = r["mode"]
        # The runner converts while this checks: wait for this run's exit
        # status, or for the marker saying every conversion has ended.
        while marker and not os.path.exists(r["rc"]) and not os.path.exists(marker):
            time.sleep(0.05)
        if prep_err is not None:
            results.append((mode, "FAIL", f"corpus entry not made: {short(prep_err, 2)}", r))
            continue
        rc_text = read(r["rc"]).strip()
        err = read(r["err"])
        if not rc_text:
            results.append((mode, "FAIL", "no exit status (runner killed?)", r))
            continue
        rc = int(rc_text)
        store = r["store"]
        if rc == 0:
            if not committed(store):
                results.append((mode, "FAIL", "exit 0 but the store has no root zarr.json/.zgroup", r))
                continue
            # A store byte for byte equal to one already checked (the same
            # format at 1 rank) reads the same: not compared again.
            twin = next((t for t in checked_pass if same_tree(t, store)), None)
            if twin is not None:
                results.append((mode, "PASS", "", r))
                continue
            try:
                notes = compare_store(compare, cx, src, store)
                results.append((mode, "PASS", "; ".join(dict.fromkeys(notes)), r))
                checked_pass.append(store)
            except Exception as e:
                results.append((mode, "FAIL", f"exit 0, data differ: {short(e)}", r))
            continue
        # A failure: it must be a clean refusal.
        lines = [l for l in err.splitlines() if l.strip()]
        first = next((l for l in lines if "zarrforge" in l.lower() or "error" in l.lower()), lines[0] if lines else "")
        if rc == 124 or rc == 137:
            results.append((mode, "FAIL", f"timeout (exit {rc})", r))
            continue
        if rc >= 128:
            results.append((mode, "FAIL", f"killed by signal {rc - 128} (exit {rc}): {short(first, 1)}", r))
            continue
        m = PANIC.search(err)
        if m:
            pl = next((l for l in lines if "panicked at" in l), m.group(0))
            nxt = lines[lines.index(pl) + 1] if pl in lines and lines.index(pl) + 1 < len(lines) else ""
            results.append((mode, "FAIL", f"panic (exit {rc}): {pl.strip()} {nxt.strip()}"[:500], r))
            continue
        m = SIGNAL_TEXT.search(err)
        if m:
            sl = next((l for l in lines if m.group(0) in l), m.group(0))
            results.append((mode, "FAIL", f"crash (exit {rc}): {sl.strip()}"[:400], r))
            continue
        if committed(store):
            results.append((mode, "FAIL", f"exit {rc} but the store was committed: {short(first, 1)}", r))
            continue
        if os.path.basename(src) not in err:
            results.append((mode, "FAIL", f"refusal does not name the file (exit {rc}): {short(first, 2)}", r))
            continue
        if info is None:
            # netCDF4-python (its own netCDF-C) is asked only when the system
            # netCDF-C reads the file: it can crash on a corrupt header.
            readable, nc_err, uses = ncdump_scan(src)
            ok4, err4 = netcdf4_openable(src) if readable else (False, "")
            info = (readable and ok4, nc_err or err4, unrepresentable(uses))
        readable, why_unreadable, bad_types = info
        reason = expected_reason(name, expected)
        why = None
        if reason:
            why = f"expected: {reason}"
        elif not readable:
            why = f"source unreadable by netCDF-C/netCDF4 ({short(why_unreadable, 1)})"
        else:
            said = [t for t in bad_types if UNREPRESENTABLE_WORDS[t].search(err)]
            if said:
                why = f"{'/'.join(said)} type"
        if why:
            results.append((mode, "REFUSED", f"{why}: {short(first, 1)}", r))
        else:
            extra = f" [file uses {'/'.join(bad_types)} but the error does not say so]" if bad_types else ""
            results.append((mode, "FAIL", f"unexpected refusal (exit {rc}): {short(first, 2)}{extra}", r))
    if not os.environ.get("CORPUS_KEEP"):
        # Done with this file: its stores go now rather than all at the end.
        import shutil

        for r in runs:
            shutil.rmtree(r["store"], ignore_errors=True)
    return name, results


def worker():
    """Checks the files whose tasks arrive on stdin (one JSON line each) and
    answers one JSON line each; run as a child so that a crash of netCDF-C,
    HDF5 or numcodecs while reading one file costs only that file."""
    import json

    # Answers go to a copy of fd 1; fd 1 itself (Python's and C libraries'
    # stdout) becomes stderr, so nothing else can write into the channel.
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    for line in sys.stdin:
        name, runs, expected = json.loads(line)
        name, res = check_file((name, runs, [tuple(e) for e in expected]))
        out.write(json.dumps([name, res]) + "\n")
        out.flush()


def run_workers(tasks, workers):
    """Yields (name, results) in task order, checking with `workers` child
    processes; a child that dies makes its current file a FAIL and is replaced."""
    import json
    import subprocess
    import threading

    done = {}
    cond = threading.Condition()
    queue = list(tasks)
    qlock = threading.Lock()

    def drive():
        proc = None
        while True:
            with qlock:
                if not queue:
                    break
                task = queue.pop(0)
            if proc is None:
                # HDF5's error stacks on corrupt files are noise: the child's
                # stderr is dropped unless CORPUS_DEBUG is set.
                proc = subprocess.Popen([sys.executable, "-X", "faulthandler", os.path.abspath(__file__), "worker"],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                        stderr=None if os.environ.get("CORPUS_DEBUG") else subprocess.DEVNULL)
            try:
                proc.stdin.write(json.dumps(task) + "\n")
                proc.stdin.flush()
                answer = proc.stdout.readline()
            except BrokenPipeError:
                answer = ""
            if answer:
                name, res = json.loads(answer)
            else:
                rc = proc.wait()
                proc = None
                name = task[0]
                why = f"checker crashed (exit {rc}) reading this file with netCDF4-python/xarray/zarr-python"
                res = [(r["mode"], "FAIL", why, r) for r in task[1]]
            with cond:
                done[name] = res
                cond.notify_all()
        if proc is not None:
            proc.stdin.close()
            proc.wait()

    threads = [threading.Thread(target=drive, daemon=True) for _ in range(max(1, workers))]
    for t in threads:
        t.start()
    for name, _, _ in tasks:
        with cond:
            while name not in done:
                cond.wait()
            yield name, done.pop(name)


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "worker":
        worker()
        return
    if len(sys.argv) < 4 or sys.argv[1] != "check":
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    runs_path, expected_path = sys.argv[2], sys.argv[3]
    workers = 2
    if "--workers" in sys.argv:
        workers = int(sys.argv[sys.argv.index("--workers") + 1])
    expected = read_expected(expected_path)
    by_name = {}
    order = []
    with open(runs_path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 7:
                continue
            name, source, mode, store, rc, err, cmd = parts[:7]
            if name not in by_name:
                by_name[name] = []
                order.append(name)
            by_name[name].append(dict(source=source, mode=mode, store=store, rc=rc, err=err, cmd=cmd))
    tasks = [(n, by_name[n], expected) for n in order]
    counts = {"PASS": 0, "REFUSED": 0, "FAIL": 0}
    nruns = 0
    width = min(40, max((len(n) for n in order), default=10))
    for name, res in run_workers(tasks, workers):
        nruns += len(res)
        states = [s for _, s, _, _ in res]
        status = "FAIL" if "FAIL" in states else ("REFUSED" if "REFUSED" in states else "PASS")
        counts[status] += 1
        modes = " ".join(f"{m}{'' if s == 'PASS' else ':' + s.lower()}" for m, s, _, _ in res)
        print(f"{status:<8} {name:<{width}}  {modes}", flush=True)
        noted = False  # one note (refusal reason, weaker check) per file
        for mode, s, msg, r in res:
            if s == "FAIL" or (msg and not noted):
                noted = noted or s != "FAIL"
                print(f"         {mode}: {msg}", flush=True)
        if status == "FAIL":
            r = next(r for _, s, _, r in res if s == "FAIL")
            print(f"         repro: {r['cmd']}", flush=True)
    print(f"corpus: {len(order)} files, {counts['PASS']} pass, {counts['REFUSED']} refused, "
          f"{counts['FAIL']} fail ({nruns} runs)")
    sys.exit(1 if counts["FAIL"] else 0)


if __name__ == "__main__":
    main()
