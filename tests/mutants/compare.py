"""Batch comparison of converted mutants with what netCDF reads from them.

Reads JSON jobs from stdin, one a line: {"id", "mutant", "store", "skip_nc4py"}
and writes one JSON result a line, flushed, in order:
{"id", "status", "ref", "detail"} with status
  "equal"        every variable of every group equals the reference (values
                 raw and exact, NaN == NaN; dims, shapes and dtypes equal);
  "differ"       the store differs from the reference (detail says where);
  "unreadable"   netCDF-C itself cannot read the mutant (ncdump fails), or a
                 reference reader failed;
  "store-error"  zarr-python cannot read the store.

The reference is netCDF4-python (raw: set_auto_maskandscale(False)). The
netCDF4 wheels bundle their own netCDF-C and HDF5, newer than the system's
that zarrforge links and that /usr/bin/ncdump uses; a corrupt file may be
read differently by the two builds. So when netCDF4-python cannot open the
mutant, or its values differ from the store, the arbiter is the system
netCDF-C: ncdump must read the whole file (exit 0), and refc.py (the same
library through ctypes, in its own process) must read values equal to the
store's. The driver restarts this process, with skip_nc4py set for the job
it was on, if netCDF4-python crashes or hangs.
"""
import json
import os
import pickle
import subprocess
import sys
import tempfile
import warnings

import numpy as np

warnings.filterwarnings("ignore")
HERE = os.path.dirname(os.path.abspath(__file__))
LIMIT = int(os.environ.get("ZF_MUTANT_MAX_BYTES", str(1 << 30)))
TIMEOUT = int(os.environ.get("ZF_MUTANT_REF_TIMEOUT", "60"))


class TooLarge(Exception):
    pass


def read_netcdf4(path):
    import netCDF4

    out = {}
    with netCDF4.Dataset(path) as ds:
        ds.set_auto_maskandscale(False)
        ds.set_always_mask(False)
        ds.set_auto_chartostring(False)

        def walk(g, prefix):
            vars_ = {}
            for name, v in g.variables.items():
                shape = tuple(int(n) for n in v.shape)
                count = int(np.prod(shape, dtype=np.float64))
                if v.dtype == str:
                    if count * 16 > LIMIT:
                        raise TooLarge(f"{name}: {count} strings")
                    data = np.asarray(v[...], dtype=object).ravel() if count else []
                    data = [s.encode("utf-8", "surrogateescape") if isinstance(s, str) else bytes(s or b"")
                            for s in data]
                    vars_[name] = dict(dims=tuple(v.dimensions), shape=shape, kind="str", dtype="str", data=data)
                    continue
                dt = np.dtype(v.dtype)
                if dt.kind not in "iufS":
                    raise ValueError(f"variable {name}: type {v.datatype} is not numeric, char or string")
                if count * dt.itemsize > LIMIT:
                    raise TooLarge(f"{name}: {count * dt.itemsize} bytes")
                data = np.asarray(v[...]) if count else np.zeros(shape, dt)
                vars_[name] = dict(dims=tuple(v.dimensions), shape=shape, kind="char" if dt.kind == "S" else "num",
                                   dtype=dt.str, data=data.reshape(shape))
            out[prefix] = {"vars": vars_}
            for name, child in g.groups.items():
                walk(child, f"{prefix}/{name}" if prefix else name)

        walk(ds, "")
    return out


def read_store(store):
    import zarr

    out = {}
    root = zarr.open_group(store, mode="r")

    def walk(g, prefix):
        vars_ = {}
        groups = []
        for name, node in g.members():
            if isinstance(node, zarr.Group):
                groups.append((name, node))
                continue
            shape = tuple(int(n) for n in node.shape)
            dims = getattr(node.metadata, "dimension_names", None)
            if dims is None:
                dims = node.attrs.get("_ARRAY_DIMENSIONS", ())
            dims = tuple(dims or ())
            dt = node.dtype
            kind = getattr(dt, "kind", "O")
            count = int(np.prod(shape, dtype=np.float64))
            itemsize = 16 if kind in "OTU" else np.dtype(dt).itemsize
            if count * itemsize > LIMIT:
                raise TooLarge(f"store array {prefix}/{name}: {count} elements")
            data = node[...] if count else np.zeros(shape, dtype=object if kind in "OTU" else dt)
            if kind in "OTU":
                data = [(s if isinstance(s, str) else str(s)).encode("utf-8", "surrogateescape")
                        for s in np.asarray(data, dtype=object).ravel()]
                vars_[name] = dict(dims=dims, shape=shape, kind="str", dtype="str", data=data)
            else:
                data = np.asarray(data)
                vars_[name] = dict(dims=dims, shape=shape, kind="char" if kind == "S" else "num",
                                   dtype=np.dtype(dt).str, data=data.reshape(shape))
        out[prefix] = {"vars": vars_}
        for name, child in groups:
            walk(child, f"{prefix}/{name}" if prefix else name)

    walk(root, "")
    return out


def _native(dt):
    return np.dtype(dt).newbyteorder("=")


def diff(ref, got):
    """None when equal, else a short description of the first differences."""
    problems = []
    if set(ref) != set(got):
        return (f"groups differ: only in source {sorted(set(ref) - set(got))}, "
                f"only in store {sorted(set(got) - set(ref))}")
    for g in sorted(ref):
        rv, gv = ref[g]["vars"], got[g]["vars"]
        label = f"/{g}/" if g else "/"
        if set(rv) != set(gv):
            problems.append(f"{label}: variables differ: only in source {sorted(set(rv) - set(gv))!r}, "
                            f"only in store {sorted(set(gv) - set(rv))!r}")
            continue
        for name in sorted(rv):
            a, b = rv[name], gv[name]
            where = f"{label}{name}"
            if a["dims"] != b["dims"]:
                problems.append(f"{where}: dims {a['dims']} vs store {b['dims']}")
                continue
            if a["shape"] != b["shape"]:
                problems.append(f"{where}: shape {a['shape']} vs store {b['shape']}")
                continue
            if a["kind"] != b["kind"]:
                problems.append(f"{where}: kind {a['kind']} vs store {b['kind']}")
                continue
            if a["kind"] == "str":
                bad = [i for i, (x, y) in enumerate(zip(a["data"], b["data"])) if x != y]
                if len(a["data"]) != len(b["data"]) or bad:
                    i = bad[0] if bad else 0
                    problems.append(f"{where}: {len(bad)} strings differ, first [{i}]: "
                                    f"{a['data'][i] if a['data'] else None!r} vs store "
                                    f"{b['data'][i] if b['data'] else None!r}")
                continue
            if a["kind"] == "char":
                x = np.ascontiguousarray(a["data"]).view(np.uint8)
                y = np.asarray(b["data"]).astype("S1")
                y = np.ascontiguousarray(y).view(np.uint8)
                eq = x == y
            else:
                if _native(a["dtype"]) != _native(b["dtype"]):
                    problems.append(f"{where}: dtype {np.dtype(a['dtype'])} vs store {np.dtype(b['dtype'])}")
                    continue
                x = np.asarray(a["data"]).astype(_native(a["dtype"]))
                y = np.asarray(b["data"]).astype(_native(a["dtype"]))
                if x.dtype.kind == "f":
                    u = np.dtype(f"u{x.dtype.itemsize}")
                    eq = (x.view(u) == y.view(u)) | (np.isnan(x) & np.isnan(y))
                else:
                    eq = x == y
            if not np.all(eq):
                idx = np.argwhere(~np.asarray(eq))
                first = tuple(int(i) for i in idx[0]) if idx.ndim == 2 and len(idx) else ()
                xs = np.asarray(a["data"])[first] if first else np.asarray(a["data"])
                ys = np.asarray(b["data"])[first] if first else np.asarray(b["data"])
                problems.append(f"{where}: {int(np.size(eq) - np.count_nonzero(eq))} of {np.size(eq)} values "
                                f"differ, first at {first}: source {xs!r} vs store {ys!r}")
        if len(problems) >= 4:
            break
    return "; ".join(problems) if problems else None


def system_netcdf_c(mutant):
    """(tree, None) or (None, why) from ncdump and refc.py (system netCDF-C)."""
    try:
        p = subprocess.run(["ncdump", mutant], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           timeout=TIMEOUT)
        if p.returncode != 0:
            err = p.stderr.decode(errors="replace").strip().splitlines()
            sig = f"signal {-p.returncode}" if p.returncode < 0 else f"exit {p.returncode}"
            return None, f"ncdump fails ({sig}): {err[-1] if err else ''}"
    except subprocess.TimeoutExpired:
        return None, f"ncdump did not finish in {TIMEOUT} s"
    with tempfile.TemporaryDirectory() as t:
        out = os.path.join(t, "ref.pickle")
        try:
            p = subprocess.run([sys.executable, os.path.join(HERE, "refc.py"), mutant, out],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            return None, f"netCDF-C (refc.py) did not finish in {TIMEOUT} s"
        if p.returncode != 0:
            err = p.stderr.decode(errors="replace").strip().splitlines()
            sig = f"signal {-p.returncode}" if p.returncode < 0 else f"exit {p.returncode}"
            return None, f"netCDF-C read fails ({sig}): {err[-1] if err else ''}"
        with open(out, "rb") as f:
            return pickle.load(f), None


def judge(job):
    mutant, store = job["mutant"], job["store"]
    try:
        got = read_store(store)
    except TooLarge as e:
        return "differ", "store", f"store too large to verify: {e}"
    except Exception as e:  # noqa: BLE001 - any failure of zarr-python counts
        return "store-error", "zarr-python", f"{type(e).__name__}: {e}"[:400]
    why1 = None
    if job.get("skip_nc4py"):
        why1 = job.get("skip_reason", "netCDF4-python crashed or hung on this file")
    else:
        try:
            ref = read_netcdf4(mutant)
            d = diff(ref, got)
            if d is None:
                return "equal", "netCDF4-python", ""
            why1 = f"differs from netCDF4-python: {d}"
        except Exception as e:  # noqa: BLE001
            why1 = f"netCDF4-python cannot read it: {type(e).__name__}: {e}"[:400]
    ref, why2 = system_netcdf_c(mutant)
    if ref is None:
        return "unreadable", "netCDF-C", f"{why2}; {why1}"
    d = diff(ref, got)
    if d is None:
        return "equal", "netCDF-C", why1
    return "differ", "netCDF-C", f"differs from system netCDF-C: {d}; {why1}"


def main():
    for line in sys.stdin:
        if not line.strip():
            continue
        job = json.loads(line)
        # Tell the driver which job is running, so a crash is attributed.
        print(json.dumps({"id": job["id"], "start": True}), flush=True)
        status, ref, detail = judge(job)
        print(json.dumps({"id": job["id"], "status": status, "ref": ref, "detail": detail}), flush=True)


if __name__ == "__main__":
    main()
