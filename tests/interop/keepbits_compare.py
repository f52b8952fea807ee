#!/usr/bin/env python3
"""Interop checks of zarrforge's lossy compression (convert --keepbits) and of
`zarrforge bitinfo`, against tests/interop/bitinfo_reference.py, numcodecs,
xbitinfo and the Zarr readers.

Three commands, run by scripts/interop:

  keepbits_compare.py make FILE.nc
      Writes into u10 of a `zarrforge generate` file (in place) the values
      BitRound has to leave alone or get exactly right: NaN (quiet,
      signalling, with payloads, negative), +-Inf, the _FillValue (1e20),
      a missing_value (-999, added as an attribute), netCDF's default fill
      (9.96921e36), the largest finite values (they round to +-Inf, as
      numcodecs does), subnormals, +-0 and halfway ties for 0..8 kept bits
      (ties to even both ways). t2m and msl are left as generated, for
      xbitinfo (which does not mask).

  keepbits_compare.py stores [--store SOURCE SPEC STORE]... [--identical A B]...
      In the venv of zf_venv (xarray, zarr-python 3, tensorstore, numcodecs,
      netCDF4). For each STORE converted from SOURCE with --keepbits SPEC:
      * attributes: the float variables SPEC rounds (its own rules, written
        again here: a variable's item wins over all=/auto, which leave out
        coordinates: dimension coordinates and the variables named by
        coordinates, bounds, climatology and grid_mapping; N is clamped to
        the mantissa; auto's bits are the reference's keepbits at the level)
        carry quantization = the container's name, quantization_nsb = the
        bits and quantization_maximum_relative_error = 2^-(nsb+1); a
        variable that keeps every bit, and every other variable, carries
        none; the container is a scalar int32 with algorithm = "bitround"
        and implementation = "zarrforge version X" ($ZARRFORGE_VERSION, as
        `zarrforge --version` prints it); no rounded variable, no container;
      * values, bit for bit, of every float variable against the reference
        bitround(source, nsb, keep=[_FillValue, missing_value, netCDF's
        default fill]) with nsb read from the store (the source's bits where
        there is none), read by xarray.open_zarr raw (mask_and_scale=False)
        and decoded (mask_and_scale=True: the reference's _FillValue and
        missing_value elements NaN), by zarr-python (zarr.open) and by
        tensorstore (zarr3 or zarr driver);
      * numcodecs.BitRound(nsb).encode(source) gives the same bits on the
        finite non-fill values, and the relative error of every finite
        normal value that stays finite is at most the recorded maximum;
      * Zarr v2 stores, read by netCDF-C's NCZarr: the netCDF-C that
        netCDF4-python bundles (4.10.1: every float variable and the
        quantization attributes; it leaves out Zarr arrays of shape [],
        zarr-python's too, so not the container nor scalar variables) and
        the system's ncdump (`ncdump -p 9,17 -v VARS
        'file:///STORE#mode=zarr,file'`, values parsed back). Debian's
        netcdf-bin (netCDF-C 4.9.0) opens few of zarrforge's stores: it
        refuses an array whose chunk is longer than the array (zarrforge
        gives the 1-d coordinate of an unlimited dimension chunks of 1 MiB,
        whatever its length), crashes on character arrays (|S1), and,
        having no NCZarr zstd filter, prints the compressed bytes as values
        rather than refuse them; each case is a skip line saying so, and
        scripts/interop converts one store (healpix, no unlimited dimension,
        --codec none) it reads in full.
      --identical A B: every file of B but .zarrforge/ is byte for byte
      the one of A (the same conversion on other rank counts).

  keepbits_compare.py bitinfo SOURCE NP:JSON... [--keepbits SPEC] [--xbitinfo VAR,...]
      In the venv of zf_bitinfo_venv (xbitinfo). Each JSON is `zarrforge
      bitinfo --json [--keepbits SPEC] SOURCE` on NP ranks; each must list
      the variables SPEC (default auto) chooses, with `values` their element
      count and `ranks` NP, and per variable and dimension of length >= 2
      the reference's pairs and counts exactly, its information within
      1e-9 and its keepbits (at the JSON's level; the variable's is the
      largest, or the fixed N of a VAR=N item); the JSONs of several rank
      counts hold the same counts and bit-identical information.
      --xbitinfo VAR,...: xbitinfo's python implementation
      (get_bitinformation(ds, dim=D, implementation="python") per
      dimension, get_keepbits(info, 0.99)) against the first JSON: per
      dimension zarrforge's keepbits within 1 bit of xbitinfo's where
      xbitinfo's answer is in 0..=nmant, and the variable's (the largest)
      within 1 bit of xbitinfo's largest when every dimension's is. When
      xbitinfo's noise filter (information > 1.5 x the largest of the last
      4 bits) drops every bit along a dimension (tests/corpus/nc/
      small_FC_167_mon_19601101.nc's tas along latitude and longitude:
      almost no bit is shared by neighbours there), its cumulative
      information is NaN and get_keepbits answers -(exponent bits), -8 for
      float32; zarrforge keeps every bit there (no information: lossless),
      so that dimension and the variable's maximum are not compared (a skip
      line), the other dimensions are. A variable with NaN or fill elements
      is not compared either (xbitinfo does not mask them).

One line per check ("ok ...", "FAIL ...", "skip ..."); the closing line
counts them; the exit status is 1 when a check failed.
"""

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import bitinfo_reference as R  # noqa: E402

warnings.filterwarnings("ignore")

# netCDF4-python sets HDF5_PLUGIN_PATH to its own filters when imported; the
# system's ncdump is run with the environment as it was.
ENV_AT_START = dict(os.environ)

RESULTS = {"passed": 0, "failed": 0, "skipped": 0}


def ok(what):
    RESULTS["passed"] += 1
    print(f"ok   {what}", flush=True)


def fail(what):
    RESULTS["failed"] += 1
    print(f"FAIL {what}", flush=True)


def check(good, what, why=""):
    if good:
        ok(what)
    else:
        fail(f"{what}: {why}" if why else what)
    return good


def skip(what):
    RESULTS["skipped"] += 1
    print(f"skip {what}", flush=True)


def bits(a):
    a = np.asarray(a)
    return a.view(f"u{a.dtype.itemsize}")


def first_diff(got, want):
    """The first element whose bits differ, as text (None when equal)."""
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        return f"shape {got.shape} != {want.shape}"
    if got.dtype != want.dtype:
        return f"dtype {got.dtype} != {want.dtype}"
    d = bits(got) != bits(want)
    if not d.any():
        return None
    i = np.unravel_index(int(np.flatnonzero(d)[0]), got.shape)
    return (f"{int(d.sum())} elements differ, first at {tuple(int(x) for x in i)}: "
            f"{got[i]!r} (0x{int(bits(got)[i]):x}) != {want[i]!r} (0x{int(bits(want)[i]):x})")


# --------------------------------------------------------------------------
# make: the generated file's u10 with the values BitRound must get right
# --------------------------------------------------------------------------


def special_values():
    """float32 values for u10 (see the module's docstring)."""
    f = np.float32
    u = np.uint32
    pats = [0x7FC00000, 0x7FC00123, 0xFFC00001, 0x7F800001, 0x7FFFFFFF,  # NaN
            0x00000001, 0x00400000, 0x807FFFFF, 0x00800000, 0x80800000,  # subnormals, tiny
            0x80000000]  # -0.0
    vals = [np.inf, -np.inf, f(1e20), f(-999.0), f(R.NC_DEFAULT_FILL),
            np.finfo(f).max, -np.finfo(f).max, np.nextafter(np.finfo(f).max, f(0)),
            np.nextafter(f(1e20), f(0)), np.nextafter(f(-999.0), f(0)), f(0.0)]
    rng = np.random.default_rng(4711)
    ties = []
    for k in range(9):
        drop = 23 - k
        for n in range(8):
            exp = u(127 + rng.integers(-3, 4))  # values of magnitude 1/8 .. 16
            kept = u(rng.integers(0, 1 << k)) if k > 0 else u(0)
            kept = (kept & ~u(1)) | u(n % 2) if k > 0 else kept  # kept lsb 0 and 1: ties to even both ways
            pat = (exp << u(23)) | (kept << u(drop)) | u(1 << (drop - 1))
            if n >= 4:
                pat |= u(0x80000000)
            ties.append(pat)
    out = np.concatenate([np.array(pats, dtype=np.uint32).view(np.float32),
                          np.array(vals, dtype=np.float32),
                          np.array(ties, dtype=np.uint32).view(np.float32)])
    return out


def cmd_make(args):
    import netCDF4

    sp = special_values()
    with netCDF4.Dataset(args.file, "a") as nc:
        v = nc["u10"]
        v.set_auto_maskandscale(False)
        a = np.array(v[...])
        rng = np.random.default_rng(20210713)
        # Spread over the array, a few next to each other along lon, and the
        # corners (first and last element of the array).
        idx = rng.choice(a.size - 2, size=sp.size, replace=False) + 1
        flat = a.reshape(-1)
        flat[idx] = sp
        flat[0], flat[-1] = np.float32(np.nan), np.float32(1e20)
        flat[idx[:20] + 1] = sp[:20][::-1]
        v[...] = a
        v.missing_value = np.float32(-999.0)
    print(f"{args.file}: {sp.size + 22} special values written into u10; missing_value -999")
    return 0


# --------------------------------------------------------------------------
# The source and what --keepbits SPEC does to it
# --------------------------------------------------------------------------

FLOATS = (np.dtype("float32"), np.dtype("float64"))


class Source:
    """The variables of a netCDF file: dims, dtype, attributes, raw values
    of the float ones."""

    def __init__(self, path):
        import netCDF4

        self.path = path
        self.vars = {}
        with netCDF4.Dataset(path) as nc:
            nc.set_auto_maskandscale(False)
            for name, v in nc.variables.items():
                attrs = {k: v.getncattr(k) for k in v.ncattrs()}
                dt = np.dtype(v.dtype) if not isinstance(v.dtype, type) else None
                data = np.asarray(v[...]) if dt in FLOATS else None
                self.vars[name] = {"dims": list(v.dimensions), "dtype": dt, "attrs": attrs, "data": data,
                                   "shape": tuple(v.shape)}
        self.coords = self._coordinates()
        self._ref = {}

    def _coordinates(self):
        out = set()
        for name, v in self.vars.items():
            if v["dims"] == [name]:
                out.add(name)
            for a in ("coordinates", "bounds", "climatology", "grid_mapping"):
                t = v["attrs"].get(a)
                if isinstance(t, str):
                    out.update(w.rstrip(":") for w in t.split())
        return out

    def floats(self):
        return [n for n, v in self.vars.items() if v["dtype"] in FLOATS]

    def fills(self, name):
        """What BitRound leaves alone besides NaN and Inf: netCDF's default
        fill, the _FillValue and missing_value (as the variable's type)."""
        a = self.vars[name]["attrs"]
        out = [R.NC_DEFAULT_FILL]
        for k in ("_FillValue", "missing_value"):
            if k in a:
                out.extend(np.atleast_1d(a[k]).tolist())
        return out

    def masked(self, name):
        """The values a CF decoder masks: _FillValue and missing_value."""
        a = self.vars[name]["attrs"]
        return [x for k in ("_FillValue", "missing_value") if k in a for x in np.atleast_1d(a[k]).tolist()]

    def reference(self, name, level):
        key = (name, level)
        if key not in self._ref:
            v = self.vars[name]
            self._ref[key] = R.bitinfo(v["data"], level=level, fills=self.fills(name), dims=v["dims"], name=name)
        return self._ref[key]


def parse_spec(spec):
    """--keepbits items as (target, ("bits", N) | ("auto", LEVEL)); target
    "all" for all=... and auto[:LEVEL]."""
    items = []
    for it in (s.strip() for s in spec.split(",")):
        if not it:
            continue
        if it == "auto" or it.startswith("auto:"):
            target, keep = "all", it
        else:
            target, keep = it.split("=", 1)
        if keep.startswith("auto"):
            keep = ("auto", float(keep.split(":", 1)[1]) if ":" in keep else 0.99)
        else:
            keep = ("bits", int(keep))
        items.append((target, keep))
    return items


def chosen(src, spec):
    """{float variable: (keep, own)} of the variables SPEC rounds or
    measures (keep ("bits", N) or ("auto", LEVEL))."""
    items = parse_spec(spec)
    out = {}
    for name in src.floats():
        a = src.vars[name]["attrs"]
        if "scale_factor" in a or "add_offset" in a:
            continue
        own = [k for t, k in items if t == name]
        alls = [k for t, k in items if t == "all"]
        if own:
            out[name] = (own[-1], True)
        elif alls and name not in src.coords:
            out[name] = (alls[-1], False)
    return out


def expected_nsb(src, spec):
    """{float variable: the bits it is rounded to, or None when it keeps
    them all}, with why."""
    out = {}
    picks = chosen(src, spec)
    for name in src.floats():
        nmant = R.NMANT[src.vars[name]["dtype"]]
        if name not in picks:
            out[name] = (None, "not chosen")
            continue
        (kind, val), _ = picks[name]
        if kind == "bits":
            k, why = min(val, nmant), f"{val} asked"
        else:
            k, why = src.reference(name, val)["keepbits"], f"reference keepbits at {val}"
        out[name] = (k if k < nmant else None, why if k < nmant else f"{why}: {k}, every bit, not rounded")
    return out


# --------------------------------------------------------------------------
# stores
# --------------------------------------------------------------------------


def store_format(store):
    return 3 if os.path.exists(os.path.join(store, "zarr.json")) else 2


def expected_values(src, name, nsb):
    v = src.vars[name]
    if nsb is None:
        return v["data"]
    return R.bitround(v["data"], nsb, keep=src.fills(name))


def decoded(src, name, raw):
    """CF decoding of the reference's raw values: _FillValue and
    missing_value elements become NaN."""
    out = np.array(raw, copy=True)
    m = R._is_fill(bits(out), R._fill_bits(src.masked(name), out.dtype))
    out[m] = np.nan
    return out


def compare_decoded(got, want):
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape or got.dtype != want.dtype:
        return f"shape/dtype {got.shape} {got.dtype} != {want.shape} {want.dtype}"
    gn, wn = np.isnan(got), np.isnan(want)
    if not np.array_equal(gn, wn):
        i = np.unravel_index(int(np.flatnonzero(gn != wn)[0]), got.shape)
        return f"NaN at {tuple(int(x) for x in i)} differs: {got[i]!r} vs {want[i]!r}"
    return first_diff(np.where(gn, 0, got).astype(got.dtype), np.where(wn, 0, want).astype(want.dtype))


def check_attributes(label, src, spec, store, fmt, version):
    import zarr

    g = zarr.open_group(store, mode="r")
    want = expected_nsb(src, spec)
    problems, desc = [], []
    nsb_of = {}
    containers = set()
    for name in src.floats():
        if name not in g:
            problems.append(f"{name}: not in the store")
            continue
        attrs = dict(g[name].attrs)
        k, why = want[name]
        q = {a: attrs.get(a) for a in ("quantization", "quantization_nsb", "quantization_maximum_relative_error")}
        got = q["quantization_nsb"]
        nsb_of[name] = got if isinstance(got, int) else None
        if k is None:
            if any(x is not None for x in q.values()):
                problems.append(f"{name}: {why}, yet attributes {q}")
            continue
        desc.append(f"{name} {got}" + ("" if why.endswith("asked") else f" ({why})"))
        if not isinstance(got, int) or isinstance(got, bool) or got != k:
            problems.append(f"{name}: quantization_nsb {got!r}, expected {k} ({why})")
            continue
        mre = q["quantization_maximum_relative_error"]
        if not isinstance(mre, float) or mre != 2.0 ** -(k + 1):
            problems.append(f"{name}: quantization_maximum_relative_error {mre!r}, "
                            f"expected 2^-{k + 1} = {2.0 ** -(k + 1)}")
        if not isinstance(q["quantization"], str):
            problems.append(f"{name}: quantization {q['quantization']!r} is not a variable name")
        else:
            containers.add(q["quantization"])
    # quantization_info, unless a source variable has that name (then
    # another one: whatever `quantization` names).
    cname = None if "quantization_info" in src.vars else "quantization_info"
    if containers:
        if len(containers) != 1:
            problems.append(f"several containers named: {sorted(containers)}")
        c = sorted(containers)[0]
        if cname and c != cname:
            problems.append(f"container named {c!r}, expected {cname!r}")
        if c not in g:
            problems.append(f"container {c!r} not in the store")
        else:
            a = g[c]
            attrs = dict(a.attrs)
            attrs.pop("_ARRAY_DIMENSIONS", None)
            if a.shape != () or np.dtype(a.dtype) != np.dtype("int32"):
                problems.append(f"container {c}: shape {a.shape} dtype {a.dtype}, expected a scalar int32")
            want_attrs = {"algorithm": "bitround", "implementation": f"zarrforge version {version}"}
            if attrs != want_attrs:
                problems.append(f"container {c}: attributes {attrs}, expected {want_attrs}")
            if fmt == 2 and list(a.attrs.get("_ARRAY_DIMENSIONS", ["?"])) != []:
                problems.append(f"container {c}: _ARRAY_DIMENSIONS {a.attrs.get('_ARRAY_DIMENSIONS')!r}, expected []")
        desc.append(f"container {c} (scalar int32, bitround, zarrforge version {version})")
    else:
        if "quantization_info" in g and "quantization_info" not in src.vars:
            problems.append("a container quantization_info although no variable is rounded")
        desc.append("nothing rounded, no container")
    if problems:
        fail(f"{label}: CF attributes: " + "; ".join(problems[:4]))
    else:
        ok(f"{label}: CF 1.11 attributes: " + ", ".join(desc))
    return nsb_of


def read_tensorstore(store, name, fmt):
    import tensorstore as ts

    spec = {"driver": "zarr3" if fmt == 3 else "zarr",
            "kvstore": {"driver": "file", "path": os.path.join(store, name) + "/"}}
    return ts.open(spec, open=True, read=True).result().read().result()


def check_values(label, src, store, fmt, nsb_of):
    import numcodecs
    import xarray as xr
    import zarr

    names = [n for n in src.floats() if n in nsb_of]
    want = {n: expected_values(src, n, nsb_of[n]) for n in names}
    errs = {"xarray raw": [], "xarray decoded": [], "zarr-python": [], "tensorstore": []}
    ds_raw = xr.open_zarr(store, mask_and_scale=False, decode_times=False, consolidated=None)
    ds_dec = xr.open_zarr(store, mask_and_scale=True, decode_times=False, consolidated=None)
    g = zarr.open(store, mode="r")
    for n in names:
        for reader, got in (("xarray raw", lambda: ds_raw[n].values),
                            ("zarr-python", lambda: g[n][...]),
                            ("tensorstore", lambda: read_tensorstore(store, n, fmt))):
            try:
                d = first_diff(np.asarray(got()), want[n])
            except Exception as e:  # noqa: BLE001 - a reader's refusal is a failure like any other
                d = f"{type(e).__name__}: {e}"
            if d:
                errs[reader].append(f"{n}: {d}")
        try:
            d = compare_decoded(ds_dec[n].values, decoded(src, n, want[n]))
        except Exception as e:  # noqa: BLE001
            d = f"{type(e).__name__}: {e}"
        if d:
            errs["xarray decoded"].append(f"{n}: {d}")
    rounded = [n for n in names if nsb_of[n] is not None]
    nvals = sum(want[n].size for n in names)
    for reader, e in errs.items():
        if e:
            fail(f"{label}: {reader} != bitround(source, quantization_nsb): " + "; ".join(e[:3]))
    if not any(errs.values()):
        ts_driver = "zarr3" if fmt == 3 else "zarr"
        ok(f"{label}: {nvals} values == bitround(source, quantization_nsb) bit for bit in xarray "
           f"(mask_and_scale False and True), zarr-python and tensorstore {ts_driver}: "
           f"rounded {', '.join(f'{n} {nsb_of[n]}' for n in rounded) or 'none'}; "
           f"as the source {', '.join(n for n in names if nsb_of[n] is None) or 'none'}")
    # numcodecs and the recorded maximum relative error.
    bad, nfin, nrel = [], 0, 0
    for n in rounded:
        src_v = src.vars[n]["data"]
        k = nsb_of[n]
        stored = np.asarray(g[n][...])
        enc = np.asarray(numcodecs.BitRound(k).encode(src_v.copy())).view(src_v.dtype).reshape(src_v.shape)
        plain = np.isfinite(src_v) & ~R._is_fill(bits(src_v), R._fill_bits(src.fills(n), src_v.dtype))
        nfin += int(plain.sum())
        d = first_diff(stored[plain], enc[plain])
        if d:
            bad.append(f"{n}: numcodecs.BitRound({k}): {d}")
        # Kept unchanged: NaN, Inf, fills.
        d = first_diff(stored[~plain], src_v[~plain])
        if d:
            bad.append(f"{n}: NaN/Inf/fill elements changed: {d}")
        normal = plain & (np.abs(src_v) >= np.finfo(src_v.dtype).tiny) & np.isfinite(stored)
        x, y = src_v[normal].astype(np.float64), stored[normal].astype(np.float64)
        if src_v.dtype == np.float64:
            x, y = src_v[normal], stored[normal]  # |y - x| is exact (Sterbenz)
        mre = 2.0 ** -(k + 1)
        over = np.abs(y - x) > mre * np.abs(x)
        nrel += int(normal.sum())
        if over.any():
            i = int(np.flatnonzero(over)[0])
            bad.append(f"{n}: relative error of {x[i]!r} -> {y[i]!r} above {mre}")
    if rounded:
        if bad:
            fail(f"{label}: " + "; ".join(bad[:3]))
        else:
            ok(f"{label}: numcodecs.BitRound(nsb) gives the stored bits on {nfin} finite non-fill values, "
               f"NaN/Inf/fills unchanged; relative error <= 2^-(nsb+1) on {nrel} normal values")
    return want


def check_netcdf4_nczarr(label, src, store, nsb_of, want):
    """netCDF-C's NCZarr as bundled with netCDF4-python."""
    import netCDF4

    url = f"file://{os.path.abspath(store)}#mode=zarr,file"
    problems, scalars = [], []
    try:
        with netCDF4.Dataset(url) as nc:
            nc.set_auto_maskandscale(False)
            for n, w in want.items():
                if n not in nc.variables:
                    if w.shape == ():
                        scalars.append(n)  # this NCZarr leaves out Zarr arrays of shape []
                    else:
                        problems.append(f"{n}: missing")
                    continue
                d = first_diff(np.asarray(nc[n][...]), w)
                if d:
                    problems.append(f"{n}: {d}")
                attrs = set(nc[n].ncattrs())
                if nsb_of[n] is not None:
                    got = nc[n].getncattr("quantization_nsb") if "quantization_nsb" in attrs else None
                    q = nc[n].getncattr("quantization") if "quantization" in attrs else None
                    if got is None or int(got) != nsb_of[n] or q != "quantization_info":
                        problems.append(f"{n}: quantization {q!r}, quantization_nsb {got!r}")
            has_container = "quantization_info" in nc.variables
    except Exception as e:  # noqa: BLE001
        problems.append(f"{type(e).__name__}: {e}")
        has_container = False
    what = f"NCZarr (netCDF-C {netCDF4.__netcdf4libversion__} of netCDF4-python {netCDF4.__version__})"
    left_out = scalars + ([] if has_container or not any(v is not None for v in nsb_of.values())
                          else ["the container"])
    if problems:
        fail(f"{label}: {what}: " + "; ".join(problems[:3]))
    else:
        ok(f"{label}: {what} reads the same bits and quantization attributes of {len(want) - len(scalars)} "
           f"float variables" + (f" (it leaves out Zarr arrays of shape [], zarr-python's too: "
                                 f"not {', '.join(left_out)})" if left_out else ""))


_NCDUMP = {}


def ncdump_info():
    if "exe" not in _NCDUMP:
        exe = shutil.which("ncdump")
        ver = None
        if exe:
            p = subprocess.run([exe], capture_output=True, text=True)
            m = re.search(r"netcdf library version (\S+)", p.stdout + p.stderr)
            ver = m.group(1) if m else "?"
        _NCDUMP.update(exe=exe, version=ver)
    return _NCDUMP["exe"], _NCDUMP["version"]


def undecoded(store, name, printed, dtype):
    """Whether the values ncdump printed are the bytes of the variable's
    first stored chunk as they are (compressed), not its values."""
    zarray = os.path.join(store, name, ".zarray")
    if not os.path.exists(zarray):
        return False
    with open(zarray) as f:
        z = json.load(f)
    key = ".".join("0" for _ in z["shape"]) or "0"
    path = os.path.join(store, name, key)
    if not os.path.exists(path) or not z.get("compressor"):
        return False
    with open(path, "rb") as f:
        raw = f.read()
    n = min(4, len(raw) // dtype.itemsize, len(printed))
    head = np.frombuffer(raw[: n * dtype.itemsize], dtype=dtype.newbyteorder("<"))
    return n > 0 and all(x is not None and (x == y or (math.isnan(x) and np.isnan(y)))
                         for x, y in zip(printed[:n], head.astype(np.float64)))


def parse_ncdump(text, dtypes):
    """{var: flat array} from `ncdump -v` text; '_' (a fill) becomes None."""
    data = text.split("\ndata:\n", 1)[1]
    out = {}
    for m in re.finditer(r"^ (\w+) =(.*?);\s*$", data, flags=re.S | re.M):
        name, body = m.group(1), m.group(2)
        if name not in dtypes:
            continue
        vals = []
        for tok in body.replace("\n", " ").split(","):
            tok = tok.strip()
            if tok == "_":
                vals.append(None)
                continue
            tok = tok[:-1] if tok.endswith("f") and tok[:-1] in ("NaN", "Infinity", "-Infinity") else tok
            vals.append(float({"Infinity": "inf", "-Infinity": "-inf"}.get(tok, tok)))
        out[name] = vals
    return out


def check_ncdump(label, src, store, nsb_of, want):
    """The system's ncdump (netCDF-C's NCZarr), when it reads the store."""
    exe, ver = ncdump_info()
    if not exe:
        skip(f"{label}: NCZarr through ncdump: no ncdump on the PATH (Debian: apt-get install netcdf-bin)")
        return
    url = f"file://{os.path.abspath(store)}#mode=zarr,file"
    what = f"NCZarr through {exe} (netCDF-C {ver})"
    h = subprocess.run([exe, "-h", url], capture_output=True, text=True, env=ENV_AT_START)
    if h.returncode != 0:
        why = (h.stderr.strip().splitlines() or ["?"])[-1]
        if h.returncode < 0:
            why = f"it crashed: signal {-h.returncode}"
        # netCDF-C 4.9's NCZarr refuses an array whose chunk is longer than
        # the array: zarrforge's 1-d coordinate of an unlimited dimension
        # has chunks of 1 MiB whatever its length.
        longer, chars = [], []
        for root, _, files in os.walk(store):
            if ".zarray" in files:
                with open(os.path.join(root, ".zarray")) as f:
                    z = json.load(f)
                if z.get("dtype") == "|S1":
                    chars.append(os.path.relpath(root, store))
                for s, c in zip(z.get("shape", []), z.get("chunks", [])):
                    if c > s:
                        longer.append(f"{os.path.relpath(root, store)} chunk {c} > length {s}")
                        break
        hint = (f"; it refuses arrays whose chunk is longer than the array, as "
                f"{', '.join(longer[:2])} (netCDF-C 4.10's NCZarr reads them)") if longer else ""
        if h.returncode < 0 and chars:
            # Checked by hand on Debian's 4.9.0: the same store without its
            # character arrays opens.
            hint = (f"; the store has character arrays (dtype |S1: {', '.join(chars[:3])}), which netCDF-C "
                    f"4.9.0's NCZarr crashes on (netCDF-C 4.10's reads them)")
        skip(f"{label}: {what} cannot open the store ({why}){hint}")
        return
    names = [n for n in want if n in src.vars]
    p = subprocess.run([exe, "-p", "9,17", "-v", ",".join(names), url], capture_output=True, text=True,
                       env=ENV_AT_START)
    if p.returncode != 0:
        skip(f"{label}: {what} cannot read the values ({(p.stderr.strip().splitlines() or ['?'])[-1]})")
        return
    got = parse_ncdump(p.stdout, {n: want[n].dtype for n in names})
    problems = []
    for n in names:
        w = want[n].ravel()
        g = got.get(n)
        if g is None or len(g) != w.size:
            problems.append(f"{n}: {0 if g is None else len(g)} values printed, {w.size} expected")
            continue
        fillv = src.vars[n]["attrs"].get("_FillValue")
        for i, (x, y) in enumerate(zip(g, w)):
            if x is None:
                good = fillv is not None and (bits(np.asarray(fillv, dtype=w.dtype)) == bits(np.asarray(y))
                                              or (np.isnan(fillv) and np.isnan(y)))
            elif math.isnan(x):
                good = bool(np.isnan(y))
            else:
                good = bits(np.asarray(x, dtype=w.dtype)) == bits(np.asarray(y))
            if not good:
                problems.append(f"{n}[{i}]: ncdump {x!r}, expected {y!r}")
                break
    header_ok = all(re.search(rf"\b{n}:quantization_nsb = {k}\w? ;", h.stdout)
                    for n, k in nsb_of.items() if k is not None)
    if problems:
        # Debian's netCDF-C 4.9.0 has no NCZarr zstd filter; without one it
        # hands the stored (compressed) bytes back as values rather than
        # refuse the variable.
        raw = [n for n in names if got.get(n) and undecoded(store, n, got[n], want[n].dtype)]
        if raw:
            codecs = sorted({(json.load(open(os.path.join(store, n, ".zarray"))).get("compressor") or {}).get("id")
                             for n in raw})
            plugins = ENV_AT_START.get("HDF5_PLUGIN_PATH") or "unset"
            skip(f"{label}: {what} prints the compressed bytes of {', '.join(raw)} as values (no NCZarr "
                 f"{'/'.join(codecs)} filter it can load; HDF5_PLUGIN_PATH {plugins})")
            return
        fail(f"{label}: {what}: " + "; ".join(problems[:3]))
        return
    check(header_ok, f"{label}: {what} reads the same bits of {', '.join(names)} (printed with 9/17 digits) "
                     f"and quantization_nsb", "quantization_nsb missing from the header")


def check_identical(a, b):
    def files(root):
        out = {}
        for d, dirs, fs in os.walk(root):
            dirs[:] = [x for x in dirs if x != ".zarrforge"]
            for f in fs:
                p = os.path.join(d, f)
                out[os.path.relpath(p, root)] = p
        return out

    fa, fb = files(a), files(b)
    meta = {"zarr.json", ".zarray", ".zattrs", ".zgroup", ".zmetadata"}
    label = f"{os.path.basename(b)} == {os.path.basename(a)}"
    if set(fa) != set(fb):
        fail(f"{label}: other files: only in {os.path.basename(a)} {sorted(set(fa) - set(fb))[:3]}, "
             f"only in {os.path.basename(b)} {sorted(set(fb) - set(fa))[:3]}")
        return
    differ = []
    for rel in sorted(fa):
        with open(fa[rel], "rb") as x, open(fb[rel], "rb") as y:
            if x.read() != y.read():
                differ.append(rel)
    nchunks = sum(1 for r in fa if os.path.basename(r) not in meta)
    check(not differ and nchunks > 0,
          f"{label} byte for byte: {nchunks} chunk files, {len(fa) - nchunks} metadata files",
          f"{len(differ)} files differ: {differ[:4]}" if differ else "no chunk files")


def cmd_stores(args):
    version = args.version or os.environ.get("ZARRFORGE_VERSION", "").split()[-1]
    sources = {}
    for src_path, spec, store in args.store or []:
        src = sources.setdefault(src_path, None) or Source(src_path)
        sources[src_path] = src
        label = f"{os.path.basename(store)} (--keepbits {spec})"
        fmt = store_format(store)
        try:
            nsb_of = check_attributes(label, src, spec, store, fmt, version)
            want = check_values(label, src, store, fmt, nsb_of)
        except Exception as e:  # noqa: BLE001 - report and go on with the next store
            fail(f"{label}: {type(e).__name__}: {e}")
            continue
        if fmt == 2:
            check_netcdf4_nczarr(label, src, store, nsb_of, want)
            check_ncdump(label, src, store, nsb_of, want)
    for a, b in args.identical or []:
        check_identical(a, b)


# --------------------------------------------------------------------------
# bitinfo
# --------------------------------------------------------------------------


def cmd_bitinfo(args):
    src = Source(args.source)
    base = os.path.basename(args.source)
    spec = args.keepbits or "auto"
    picks = chosen(src, spec)
    runs = []
    for item in args.json:
        np_, path = item.split(":", 1)
        with open(path) as f:
            runs.append((int(np_), json.load(f)))
    for nranks, res in runs:
        label = f"bitinfo {base} np{nranks}" + (f" --keepbits {args.keepbits}" if args.keepbits else "")
        vs = {v["name"]: v for v in res.get("variables", [])}
        problems, desc, maxdiff = [], [], 0.0
        if sorted(vs) != sorted(picks):
            problems.append(f"variables {sorted(vs)}, expected {sorted(picks)}")
        want_values = sum(int(np.prod(src.vars[n]["shape"])) for n in vs if n in src.vars)
        if res.get("values") != want_values or res.get("ranks") != nranks:
            problems.append(f"values {res.get('values')} ranks {res.get('ranks')}, expected {want_values} and {nranks}")
        for name, v in vs.items():
            if name not in picks:
                continue
            (kind, val), _ = picks[name]
            level = float(v.get("level", -1))
            if kind == "auto" and level != val:
                problems.append(f"{name}: level {level}, expected {val}")
            ref = src.reference(name, level)
            dt = src.vars[name]["dtype"]
            if v.get("dtype") != str(dt):
                problems.append(f"{name}: dtype {v.get('dtype')}")
            along = {a["dim"]: a for a in v.get("along", [])}
            if [a["dim"] for a in v.get("along", [])] != [a["dim"] for a in ref["along"]]:
                problems.append(f"{name}: dims {list(along)}, expected {[a['dim'] for a in ref['along']]}")
                continue
            for r in ref["along"]:
                a = along[r["dim"]]
                if a["pairs"] != r["pairs"] or a["counts"] != r["counts"]:
                    d = next((i for i, (x, y) in enumerate(zip(a["counts"], r["counts"])) if x != y), None)
                    problems.append(f"{name} along {r['dim']}: pairs {a['pairs']} vs {r['pairs']}, counts differ "
                                    f"first at bit {d}: {a['counts'][d] if d is not None else ''} vs "
                                    f"{r['counts'][d] if d is not None else ''}")
                diff = float(np.max(np.abs(np.array(a["info"], dtype=np.float64) - np.array(r["info"]))))
                maxdiff = max(maxdiff, diff)
                if not diff <= 1e-9:
                    problems.append(f"{name} along {r['dim']}: information differs by {diff:.2e}")
                if a["keepbits"] != r["keepbits"]:
                    problems.append(f"{name} along {r['dim']}: keepbits {a['keepbits']}, reference {r['keepbits']}")
            want_k = min(val, R.NMANT[dt]) if kind == "bits" else ref["keepbits"]
            if v.get("keepbits") != want_k:
                problems.append(f"{name}: keepbits {v.get('keepbits')}, expected {want_k}"
                                + (" (fixed)" if kind == "bits" else " (reference: the largest over dims)"))
            dims = ", ".join(f"{a['dim']} {a['keepbits']}" for a in v.get("along", []))
            desc.append(f"{name} {v.get('keepbits')} ({dims})")
        check(not problems,
              f"{label}: {len(vs)} variables, counts and pairs == reference exactly, information within 1e-9 "
              f"(max {maxdiff:.1e}), keepbits == reference: {'; '.join(desc)}",
              "; ".join(problems[:4]))
    if len(runs) > 1:
        n0, r0 = runs[0]
        for n1, r1 in runs[1:]:
            same = [(v0["name"], a0["counts"] == a1["counts"] and a0["info"] == a1["info"]
                     and v0["keepbits"] == v1["keepbits"])
                    for v0, v1 in zip(r0["variables"], r1["variables"])
                    for a0, a1 in zip(v0["along"], v1["along"])]
            check(len(r0["variables"]) == len(r1["variables"]) and all(s for _, s in same),
                  f"bitinfo {base}: np{n1} == np{n0} (counts, information bit for bit, keepbits)",
                  f"differs for {sorted({n for n, s in same if not s})}")
    if args.xbitinfo:
        compare_xbitinfo(src, base, runs[0][1], args.xbitinfo.split(","))
    return 0


def compare_xbitinfo(src, base, res, names):
    import dask
    import xarray as xr
    import xbitinfo as xb

    dask.config.set(scheduler="synchronous")
    try:
        from functools import partialmethod

        from tqdm import tqdm

        tqdm.__init__ = partialmethod(tqdm.__init__, disable=True)
    except ImportError:
        pass
    ds = xr.open_dataset(src.path, mask_and_scale=False, decode_times=False)
    zf = {v["name"]: v for v in res["variables"]}
    for name in names:
        v = src.vars[name]
        dt = v["dtype"]
        nmant, nexp = R.NMANT[dt], R.NEXP[dt]
        masked = int(np.count_nonzero(~R._valid(v["data"], R._fill_bits(src.fills(name), dt))))
        if masked:
            skip(f"xbitinfo {base} {name}: {masked} NaN/fill elements, which xbitinfo's python implementation "
                 f"does not mask (zarrforge and the reference skip their pairs)")
            continue
        if name not in zf:
            fail(f"xbitinfo {base} {name}: not in zarrforge bitinfo's output")
            continue
        zdim = {a["dim"]: a["keepbits"] for a in zf[name]["along"]}
        xk = {}
        for d in zdim:
            info = xb.get_bitinformation(ds[[name]], dim=d, implementation="python")
            xk[d] = int(np.asarray(xb.get_keepbits(info, 0.99)[name].values).ravel()[0])
        inrange = {d: k for d, k in xk.items() if 0 <= k <= nmant}
        out = {d: k for d, k in xk.items() if d not in inrange}
        per_dim = ", ".join(f"{d} {zdim[d]}/{xk[d]}" for d in zdim)
        far = [d for d, k in inrange.items() if abs(zdim[d] - k) > 1]
        check(not far and inrange,
              f"xbitinfo {base} {name} ({dt}): per dimension zarrforge/xbitinfo {per_dim}: within 1 bit "
              f"where xbitinfo's answer is in 0..={nmant}",
              f"more than 1 bit apart along {far}" if far else "no dimension to compare")
        if out:
            skip(f"xbitinfo {base} {name}: along {', '.join(out)} xbitinfo's noise filter drops every bit "
                 f"(get_keepbits {', '.join(str(k) for k in out.values())}, i.e. -(exponent bits): no bit's "
                 f"information is above 1.5 x the largest of the last 4 bits); zarrforge keeps all {nmant} bits there "
                 f"({', '.join(str(zdim[d]) for d in out)}), so the variable's {zf[name]['keepbits']} is not "
                 f"compared with xbitinfo's maximum")
        else:
            zk, xmax = zf[name]["keepbits"], max(xk.values())
            check(abs(zk - xmax) <= 1,
                  f"xbitinfo {base} {name}: zarrforge's keepbits {zk} within 1 bit of xbitinfo's {xmax} "
                  f"(largest over dims)")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make", help="write the special values into u10 of a generated file")
    m.add_argument("file")
    s = sub.add_parser("stores", help="check converted stores")
    s.add_argument("--store", nargs=3, action="append", metavar=("SOURCE", "SPEC", "STORE"))
    s.add_argument("--identical", nargs=2, action="append", metavar=("A", "B"))
    s.add_argument("--version", help="zarrforge's version (default: $ZARRFORGE_VERSION's last word)")
    b = sub.add_parser("bitinfo", help="check zarrforge bitinfo --json")
    b.add_argument("source")
    b.add_argument("json", nargs="+", metavar="NP:JSON")
    b.add_argument("--keepbits")
    b.add_argument("--xbitinfo", metavar="VAR,...")
    args = ap.parse_args(argv)
    if args.cmd == "make":
        return cmd_make(args)
    {"stores": cmd_stores, "bitinfo": cmd_bitinfo}[args.cmd](args)
    print(f"{RESULTS['passed']} passed, {RESULTS['failed']} failed, {RESULTS['skipped']} skipped")
    return 1 if RESULTS["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
