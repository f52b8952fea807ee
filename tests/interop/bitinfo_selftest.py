#!/usr/bin/env python3
"""Checks tests/interop/bitinfo_reference.py against numcodecs and xbitinfo.

Run in the venv of scripts/env.sh's zf_bitinfo_venv:

    source scripts/env.sh && zf_bitinfo_venv
    .venv-bitinfo/bin/python tests/interop/bitinfo_selftest.py

One line per check ("ok ..." / "FAIL ..." / "skip ..."), informational
lines start with "  "; the closing line counts them, and the exit status is
non-zero when any check failed.

* bitround == numcodecs.BitRound(keepbits).encode bit for bit on finite
  values (float32 and float64, every keepbits), and NaN, +-Inf and fill values
  pass unchanged;
* the mutual information of bitpair_counts equals xbitinfo's python
  implementation per bit (1e-9), and keepbits_from_info equals
  xbitinfo.get_keepbits, on a small synthetic dataset;
* keepbits of the reference (with BitInformation.jl's significance test)
  and of xbitinfo's python implementation are within 1 bit on the synthetic
  data of `zarrforge generate` (when target/release/zarrforge exists) and
  on real files of tests/corpus/nc;
* timings of both on the generated file (information only).
"""

import os
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import bitinfo_reference as R  # noqa: E402

RESULTS = {"passed": 0, "failed": 0, "skipped": 0}


def check(ok, what):
    if ok:
        RESULTS["passed"] += 1
        print(f"ok   {what}", flush=True)
    else:
        RESULTS["failed"] += 1
        print(f"FAIL {what}", flush=True)
    return ok


def skip(what):
    RESULTS["skipped"] += 1
    print(f"skip {what}", flush=True)


def info(line):
    print(f"  {line}", flush=True)


FILLS = (1e20, 9.969209968386869e36, -999.0)


# --------------------------------------------------------------------------
# BitRound
# --------------------------------------------------------------------------


def bits(a):
    return np.asarray(a).view(f"u{np.asarray(a).dtype.itemsize}")


def sample_values(dt, rng):
    """Finite values of every kind the rounding has to get right."""
    dt = np.dtype(dt)
    udt = np.dtype(f"u{dt.itemsize}")
    nmant = R.NMANT[dt]
    parts = []
    for scale in (1e-30, 1e-6, 1e-2, 1.0, 3.7, 1e3, 1e6, 1e30):
        parts.append(rng.normal(scale=scale, size=400))
    parts.append(rng.uniform(-1, 1, 200) * 10.0 ** rng.integers(-35, 35, 200))
    out = np.concatenate(parts).astype(dt)
    # Subnormals: exponent field zero, random mantissas, both signs.
    mant = rng.integers(1, 1 << nmant, 300, dtype=np.uint64).astype(udt)
    sub = mant.view(dt).copy()
    sub[::2] *= -1
    # The largest finite values and their neighbours (they may round to Inf),
    # the smallest normals, zeros.
    fmax = np.finfo(dt).max
    edges = [fmax, -fmax, np.nextafter(fmax, 0, dtype=dt), np.nextafter(-fmax, 0, dtype=dt),
             np.finfo(dt).tiny, -np.finfo(dt).tiny, 0.0, -0.0, 1.0, -1.0, 2.0, 0.5]
    # Random bit patterns near the top of the exponent range.
    top = ((np.uint64((1 << R.NEXP[dt]) - 2) << np.uint64(nmant)).astype(udt)
           | rng.integers(0, 1 << nmant, 100, dtype=np.uint64).astype(udt))
    return np.concatenate([out, sub, np.array(edges, dtype=dt), top.view(dt), -top.view(dt)])


def halfway_values(dt, keepbits, rng):
    """Values whose dropped bits are exactly 10...0, with the kept lsb 0 and
    1 (ties to even both ways), of both signs, and their neighbours."""
    dt = np.dtype(dt)
    udt = np.dtype(f"u{dt.itemsize}")
    nmant = R.NMANT[dt]
    maskbits = nmant - keepbits
    n = 64
    # Random sign, exponent (finite) and kept mantissa bits.
    exp = rng.integers(0, (1 << R.NEXP[dt]) - 1, n, dtype=np.uint64)
    kept = rng.integers(0, 1 << keepbits, n, dtype=np.uint64) if keepbits > 0 else np.zeros(n, np.uint64)
    kept[: n // 2] &= ~np.uint64(1)  # kept lsb 0
    kept[n // 2:] |= np.uint64(1) if keepbits > 0 else np.uint64(0)  # kept lsb 1
    half = np.uint64(1 << (maskbits - 1))
    pat = (exp << np.uint64(nmant)) | (kept << np.uint64(maskbits)) | half
    pat = pat.astype(udt)
    sign = np.asarray(1 << (8 * dt.itemsize - 1), dtype=np.uint64).astype(udt)
    pats = np.concatenate([pat, pat | sign, pat + udt.type(1), pat - udt.type(1)])
    return pats.view(dt)


def nan_payloads(dt):
    dt = np.dtype(dt)
    udt = np.dtype(f"u{dt.itemsize}")
    nmant = R.NMANT[dt]
    nbits = 8 * dt.itemsize
    expall = ((1 << R.NEXP[dt]) - 1) << nmant
    sign = 1 << (nbits - 1)
    pays = [1 << (nmant - 1), 1, (1 << nmant) - 1, (1 << (nmant - 1)) | 0x5A5, 0x3]
    pats = [expall | p for p in pays] + [sign | expall | p for p in pays]
    return np.array(pats, dtype=np.uint64).astype(udt).view(dt)


def check_bitround():
    import numcodecs

    rng = np.random.default_rng(20211)
    for dt in ("float32", "float64"):
        nmant = R.NMANT[np.dtype(dt)]
        base = sample_values(dt, rng)
        specials = np.concatenate([nan_payloads(dt), np.array([np.inf, -np.inf], dtype=dt)])
        fills = np.array(FILLS, dtype=np.float64).astype(dt)
        bad, nvals = [], 0
        passthrough_bad, fill_changed_somewhere = [], False
        for k in range(nmant + 1):
            finite = base if k == nmant else np.concatenate([base, halfway_values(dt, k, rng)])
            want = np.asarray(numcodecs.BitRound(k).encode(finite.copy())).view(dt)
            got = R.bitround(finite, k)
            nvals += finite.size
            if not np.array_equal(bits(got), bits(want)):
                i = np.flatnonzero(bits(got) != bits(want))[0]
                bad.append(f"keepbits {k}: {finite[i]!r} -> {got[i]!r}, numcodecs {want[i]!r}")
            # The numcodecs-exact kernel matches on everything, NaN included.
            allv = np.concatenate([finite, specials, fills])
            want_all = np.asarray(numcodecs.BitRound(k).encode(allv.copy())).view(dt)
            if not np.array_equal(bits(R.bitround_numcodecs(allv, k)), bits(want_all)):
                bad.append(f"keepbits {k}: bitround_numcodecs differs on NaN/Inf/fills")
            # zarrforge's rule: NaN, Inf and fills unchanged, the rest rounded.
            mixed = np.concatenate([specials, fills, finite])
            out = R.bitround(mixed, k, keep=FILLS)
            ns = specials.size + fills.size
            if not np.array_equal(bits(out[:ns]), bits(mixed[:ns])):
                passthrough_bad.append(k)
            if not np.array_equal(bits(out[ns:]), bits(want)):
                bad.append(f"keepbits {k}: values next to fills differ from numcodecs")
            if not np.array_equal(bits(want_all[-fills.size:]), bits(fills)):
                fill_changed_somewhere = True
        check(not bad, f"bitround {dt} == numcodecs.BitRound.encode, keepbits 0..={nmant}, "
                       f"{nvals} finite values (normals of 8 scales, halfway ties both ways, negatives, "
                       f"subnormals, largest finite, +-0)" + (f": {bad[:3]}" if bad else ""))
        check(not passthrough_bad and fill_changed_somewhere,
              f"bitround {dt}: NaN ({len(nan_payloads(dt))} payloads), +-Inf and fills {FILLS} pass unchanged "
              f"(numcodecs alone changes the fills)" + (f": differs at keepbits {passthrough_bad}" if passthrough_bad else ""))
    # Rounding to Inf, as numcodecs does.
    fmax = np.array([np.finfo(np.float32).max], dtype=np.float32)
    check(np.isinf(R.bitround(fmax, 0)[0]) and np.isinf(np.asarray(numcodecs.BitRound(0).encode(fmax.copy())).view(np.float32)[0]),
          "bitround float32 max at keepbits 0 rounds to Inf, as numcodecs")
    # A float64 fill attribute of a float32 variable compares as its float32.
    a = np.array([9.969209968386869e36, 1.5], dtype=np.float32)
    check(bits(R.bitround(a, 2, keep=[9.969209968386869e36]))[0] == bits(a)[0],
          "bitround: a float64 fill of a float32 array matches as float32")


# --------------------------------------------------------------------------
# Information: exact agreement with xbitinfo's python implementation
# --------------------------------------------------------------------------


def clamp(k, nmant):
    return min(max(int(k), 0), nmant)


def xb_info(ds, dim):
    import xbitinfo as xb

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return xb.get_bitinformation(ds, dim=dim, implementation="python")


def xb_keepbits(info, level=0.99):
    import xbitinfo as xb

    kb = xb.get_keepbits(info, level)
    return {v: np.asarray(kb[v].values).ravel() for v in kb.data_vars}


def synthetic_small(rng):
    """A smooth field plus noise: float32 (time, lat, lon), float64 (lat, lon)."""
    import xarray as xr

    t = np.arange(12)[:, None, None]
    y = np.linspace(-1.5, 1.5, 37)[None, :, None]
    x = np.linspace(0, 2 * np.pi, 48)[None, None, :]
    temp = 280 + 20 * np.cos(y) * np.sin(x + 0.3 * t) + rng.normal(scale=0.05, size=(12, 37, 48))
    wind = (5 * np.sin(2 * y) * np.cos(x))[0] + rng.normal(scale=0.5, size=(37, 48))
    return xr.Dataset({
        "temp": (("time", "lat", "lon"), temp.astype(np.float32)),
        "wind": (("lat", "lon"), wind.astype(np.float64)),
    })


def check_against_xbitinfo_exact():
    rng = np.random.default_rng(7)
    ds = synthetic_small(rng)
    for var in ds.data_vars:
        a = ds[var].values
        dt = a.dtype
        for axis, dim in enumerate(ds[var].dims):
            counts, npairs = R.bitpair_counts(a, axis)
            mi = R.mutual_information(counts, npairs)
            xinfo = xb_info(ds[[var]], dim)
            xmi = np.asarray(xinfo[var].values, dtype=np.float64)
            diff = float(np.max(np.abs(mi - xmi)))
            check(diff <= 1e-9 and npairs == a.size // a.shape[axis] * (a.shape[axis] - 1),
                  f"mutual information {var} ({dt}) along {dim}: == xbitinfo python per bit "
                  f"(max |diff| {diff:.1e}, {npairs} pairs)")
            xk = int(xb_keepbits(xinfo)[var][0])
            mine = R.keepbits_from_info(xmi, dt, 0.99)
            nmant = R.NMANT[dt]
            check(mine == clamp(xk, nmant),
                  f"keepbits_from_info {var} along {dim} == xbitinfo.get_keepbits(info, 0.99): "
                  f"{mine} vs {xk}" + (" (clamped)" if clamp(xk, nmant) != xk else ""))
    # Counts against a direct per-element count (and a masked pair skipped).
    a = ds["temp"].values.copy()
    a[3, 5, 7] = np.nan
    a[4, 9, 2] = 1e20
    counts, npairs = R.bitpair_counts(a, 2, fills=[1e20])
    s = R.signed_exponent(a)
    x, y = s[:, :, :-1], s[:, :, 1:]
    ok = ~(np.isnan(a[:, :, :-1]) | np.isnan(a[:, :, 1:]) | (a[:, :, :-1] == np.float32(1e20)) | (a[:, :, 1:] == np.float32(1e20)))
    slow = np.zeros((32, 4), np.int64)
    for pos in range(32):
        sh = np.uint32(31 - pos)
        bx = ((x[ok] >> sh) & np.uint32(1)).astype(np.int64)
        by = ((y[ok] >> sh) & np.uint32(1)).astype(np.int64)
        slow[pos] = np.bincount(bx * 2 + by, minlength=4)
    check(np.array_equal(counts, slow) and npairs == int(ok.sum()) and npairs == a.size // 48 * 47 - 4,
          f"bitpair_counts skips the 4 pairs of a NaN and a fill ({npairs} pairs) and equals a direct count")
    # Significance: the free entropy at n pairs.
    hf = R.free_entropy(10000, 0.99)
    p = 0.5 + R.norm_ppf(0.995) / 200
    check(abs(R.norm_ppf(0.995) - 2.5758293035489004) < 1e-12 and abs(hf - (1 - R.entropy2([p, 1 - p]))) < 1e-15
          and 4.7e-4 < hf < 4.9e-4,
          f"significance: z(0.995) = {R.norm_ppf(0.995):.15f}, free entropy at 10000 pairs = {hf:.6e}")
    # No information left: lossless.
    check(R.keepbits_from_info(np.zeros(32), np.float32) == 23 and R.keepbits_from_info(np.zeros(64), np.float64) == 52,
          "keepbits_from_info: no information -> every mantissa bit")


# --------------------------------------------------------------------------
# Keepbits within 1 bit of xbitinfo on realistic data
# --------------------------------------------------------------------------


def compare_file(path, names, label, timings=None):
    """Reference (with significance) vs xbitinfo python keepbits per variable,
    max over dims; also the reference without the significance test."""
    import netCDF4
    import xarray as xr

    t0 = time.perf_counter()
    ref = R.file_bitinfo(path, names)
    t_ref = time.perf_counter() - t0
    ref_by = {v["name"]: v for v in ref["variables"]}
    ds = xr.open_dataset(path, mask_and_scale=False, decode_times=False)[names]
    # xbitinfo's python implementation does not mask; it is given the data
    # as stored, and is only compared on variables without NaN or fills.
    t0 = time.perf_counter()
    xinfo = xb_info(ds, None)
    t_xb = time.perf_counter() - t0
    xkb = xb_keepbits(xinfo)
    with netCDF4.Dataset(path) as nc:
        nc.set_auto_maskandscale(False)
        for var in names:
            r = ref_by[var]
            dt = np.dtype(r["dtype"])
            nmant = R.NMANT[dt]
            a = np.asarray(nc[var][...])
            fills = [R.NC_DEFAULT_FILL] + [nc[var].getncattr(k) for k in ("_FillValue", "missing_value") if k in nc[var].ncattrs()]
            masked = int(np.count_nonzero(~R._valid(a, R._fill_bits(fills, dt))))
            dims = [d["dim"] for d in r["along"]]
            # xbitinfo's per-dim keepbits, in its dim order.
            xdims = list(np.atleast_1d(xinfo["dim"].values)) if "dim" in xinfo[var].dims else [str(xinfo["dim"].values)]
            xk_raw = {str(d): int(k) for d, k in zip(xdims, xkb[var]) if d in dims}
            xinfo_dim = {d: np.asarray(xinfo[var].sel(dim=d).values if "dim" in xinfo[var].dims
                                       else xinfo[var].values, dtype=np.float64) for d in xk_raw}
            # zarrforge's rule where xbitinfo has nothing to go on: when its
            # rounding-noise filter (info > 1.5 max(last 4 bits)) drops every
            # bit, its cdf is all NaN and get_keepbits answers -(nexp) (e.g.
            # -8: all of a float32 is noise); the reference keeps every bit.
            empty = {str(d) for d, v in xinfo_dim.items() if not np.any(v > 1.5 * np.max(v[-4:]))}
            xk_dim = {d: (nmant if d in empty else clamp(k, nmant)) for d, k in xk_raw.items()}
            xk = max(xk_dim.values())
            xk_plain = max(clamp(k, nmant) for k in xk_raw.values())
            # Reference without the significance test: xbitinfo's numbers exactly.
            plain = max(R.keepbits_from_info(R.mutual_information(np.array(d["counts"]), d["pairs"]), dt)
                        for d in r["along"])
            per_dim = ", ".join(f"{d['dim']} {d['keepbits']}/{xk_dim[d['dim']]}" for d in r["along"])
            info(f"{label} {var} ({dt}, {dict(zip(dims, [d['pairs'] for d in r['along']]))} pairs, "
                 f"{masked} masked): keepbits reference {r['keepbits']}, xbitinfo {xk}, "
                 f"reference without significance {plain}; per dim ref/xbitinfo: {per_dim}")
            if empty:
                info(f"{label} {var}: xbitinfo's noise filter drops every bit along {sorted(empty)} "
                     f"(get_keepbits {[xk_raw[d] for d in sorted(empty)]}, max over dims clamped {xk_plain}); "
                     f"taken as {nmant} (no information: lossless), as the reference does")
            if masked:
                skip(f"{label} {var}: {masked} NaN/fill elements, xbitinfo python does not mask")
                continue
            check(abs(r["keepbits"] - xk) <= 1, f"{label} {var}: reference keepbits {r['keepbits']} "
                                                f"within 1 bit of xbitinfo {xk}")
            check(plain == xk, f"{label} {var}: without significance the reference gives xbitinfo's {xk}")
    if timings is not None:
        timings.append((label, t_ref, t_xb))


def check_generated(timings):
    exe = os.path.join(ROOT, "target", "release", "zarrforge")
    if not os.access(exe, os.X_OK):
        skip(f"generated benchmark data: no {exe} (cargo build --release)")
        return
    with tempfile.TemporaryDirectory(prefix="bitinfo-selftest-") as tmp:
        path = os.path.join(tmp, "bench.nc")
        subprocess.run([exe, "generate", path, "--time", "24", "--lat", "361", "--lon", "720"],
                       check=True, stdout=subprocess.DEVNULL)
        import netCDF4

        with netCDF4.Dataset(path) as nc:
            names = [v for v, var in nc.variables.items() if var.dtype == np.float32 and var.ndim == 3]
        info(f"zarrforge generate --time 24 --lat 361 --lon 720: float variables {names}")
        compare_file(path, names, "generated", timings)


def check_corpus(timings):
    corpus = os.path.join(ROOT, "tests", "corpus", "nc")
    for fname, names in (
        ("small_FC_167_mon_19601101.nc", ["tas"]),
        ("euro_air_temp.nc", ["air_temperature"]),
        ("mpas_QU480_data.nc", ["bottomDepth"]),
        ("healpix_outCSne30_data.nc", ["psi"]),
    ):
        path = os.path.join(corpus, fname)
        if not os.path.exists(path):
            skip(f"corpus {fname}: missing")
            continue
        compare_file(path, names, fname, timings)


def check_cli():
    """The program's JSON on a small file with the cases it has to sort out:
    a packed float variable and an integer one (skipped), fills from
    _FillValue, missing_value and netCDF's default fill plus NaN (masked),
    a dimension of length 1
    (no pairs along it)."""
    import json

    import netCDF4

    rng = np.random.default_rng(3)
    with tempfile.TemporaryDirectory(prefix="bitinfo-cli-") as tmp:
        path = os.path.join(tmp, "cli.nc")
        with netCDF4.Dataset(path, "w") as nc:
            nc.createDimension("one", 1)
            nc.createDimension("y", 20)
            nc.createDimension("x", 30)
            v = nc.createVariable("field", "f4", ("one", "y", "x"), fill_value=np.float32(-999.0))
            v.missing_value = np.float32(1e20)
            data = (250 + 30 * np.sin(np.linspace(0, 3, 600)).reshape(1, 20, 30)
                    + rng.normal(scale=0.1, size=(1, 20, 30))).astype(np.float32)
            data[0, 3, 4] = -999.0
            data[0, 10, 10] = 1e20
            data[0, 15, 0] = np.nan
            data[0, 18, 20] = np.float32(R.NC_DEFAULT_FILL)  # netCDF's default fill, masked too
            v.set_auto_maskandscale(False)
            v[...] = data
            p = nc.createVariable("packed", "f4", ("y", "x"))
            p.scale_factor = np.float32(0.5)
            p[...] = np.ones((20, 30), np.float32)
            nc.createVariable("count", "i4", ("y", "x"))[...] = np.ones((20, 30), np.int32)
            d = nc.createVariable("double", "f8", ("x",))
            d[...] = np.linspace(0, 1, 30) ** 2
        out = subprocess.run([sys.executable, os.path.join(HERE, "bitinfo_reference.py"), path, "--json"],
                             check=True, capture_output=True, text=True).stdout
        res = json.loads(out)
        vs = {v["name"]: v for v in res["variables"]}
        f = vs.get("field", {})
        along = {a["dim"]: a for a in f.get("along", [])}
        # Pairs along y: 19*30 less those touching the 3 masked elements
        # (each masks the pairs on both sides, the nan at y=15 too).
        want_y = 19 * 30 - 2 - 2 - 2 - 2
        want_x = 20 * 29 - 2 - 2 - 1 - 2  # the nan sits at x=0: one pair
        shape_ok = all(len(a["counts"]) == 32 and len(a["info"]) == 32
                       and all(sum(c) == a["pairs"] for c in a["counts"]) for a in along.values())
        check(sorted(vs) == ["double", "field"] and list(along) == ["y", "x"]
              and along["y"]["pairs"] == want_y and along["x"]["pairs"] == want_x and shape_ok
              and f["keepbits"] == max(a["keepbits"] for a in along.values()) and f["dtype"] == "float32"
              and f["level"] == 0.99 and len(vs["double"]["along"][0]["counts"]) == 64,
              f"CLI --json: packed and integer variables skipped, dim of length 1 left out, "
              f"fills and NaN masked ({along.get('y', {}).get('pairs')} and {along.get('x', {}).get('pairs')} pairs), "
              f"32/64 rows of counts summing to the pairs; keepbits field {f.get('keepbits')}, "
              f"double {vs.get('double', {}).get('keepbits')}")


def main():
    import dask

    # One thread: xbitinfo's dask graphs would take both cores of the
    # machine otherwise, and the reference is single-threaded too.
    dask.config.set(scheduler="synchronous")
    try:
        from tqdm import tqdm
        from functools import partialmethod

        tqdm.__init__ = partialmethod(tqdm.__init__, disable=True)
    except ImportError:
        pass

    check_bitround()
    check_against_xbitinfo_exact()
    check_cli()
    timings = []
    check_generated(timings)
    check_corpus(timings)
    for label, t_ref, t_xb in timings:
        info(f"time {label}: reference bitinfo (all dims, with significance) {t_ref:.2f} s, "
             f"xbitinfo get_bitinformation(implementation='python', all dims) {t_xb:.2f} s")
    print(f"{RESULTS['passed']} passed, {RESULTS['failed']} failed, {RESULTS['skipped']} skipped")
    return 1 if RESULTS["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
