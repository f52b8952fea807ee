"""NaN and infinite attributes and NaN fill values, read by four Zarr readers.

usage:
  nonfinite.py make OUT.nc
  nonfinite.py check SOURCE.nc FORMAT MODE STORE [FORMAT MODE STORE]...

`make` writes the fixture: float attributes that are NaN, +Infinity or
-Infinity (scalars and lists) on variables, on the root group and on a
nested group; float variables whose _FillValue is NaN (with NaN, infinite
and filled elements in the data), a float variable whose missing_value is
-Infinity, an integer variable with a NaN attribute, and coordinates
without any such attribute.

`check` takes stores converted from it by `zarrforge convert --zarr-format
FORMAT --attrs-json MODE` and checks, for every array, what each reader
gets against netCDF4's values of the source:

  * the documents: with `strict` every metadata document (consolidated
    metadata included) is strict JSON; with `python` exactly the documents
    that hold a non-finite attribute are not. The arrays' fill_value is
    the spec's form in both (v2 and v3: the string "NaN" for a NaN fill);
  * zarr-python: every value; attributes as floats (python) or as the
    strings "NaN", "Infinity", "-Infinity" (strict);
  * xarray: with `python`, open_zarr equals open_dataset of the source
    (raw and CF-decoded, tests/interop/compare.py); with `strict`, the same
    once those attributes are the strings, and decoded values differ only
    where the -Infinity missing_value (text in the store) masks nothing;
  * tensorstore: every value with `strict`; with `python` the Zarr v3
    arrays whose zarr.json holds a bare token are refused (Invalid JSON),
    the others read (its v2 driver does not read .zattrs);
  * zarrita (node tests/interop/zarrita_read.mjs): every value with
    `strict`, each array from its own documents and through the
    consolidated metadata; with `python` every array whose documents hold
    a bare token is refused, and so is the consolidated metadata.

Prints one line per reader and store; exits 1 when anything differs from
what docs/design.md ("Attributes") says.
"""
import json
import math
import os
import subprocess
import sys
import warnings

import netCDF4
import numpy as np
import xarray as xr
import zarr

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import compare  # noqa: E402  (tests/interop/compare.py)

warnings.filterwarnings("ignore")

ARRAYS = ["time", "lat", "temp", "flux", "count", "g/p"]
# Arrays whose own documents hold a non-finite attribute (the _FillValue
# aside: v3 writes it as xarray's base64, v2 in the array's fill_value).
NONFINITE_ARRAYS = {"temp", "flux", "count", "g/p"}
# Groups that hold one.
NONFINITE_GROUPS = {"", "g"}
STRINGS = {"NaN", "Infinity", "-Infinity"}


def make(path):
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("time", None)
        ds.createDimension("lat", 3)
        ds.createDimension("lon", 4)
        t = ds.createVariable("time", "f8", ("time",))
        t.units = "days since 2000-01-01"
        t[:] = np.arange(6) * 0.25
        lat = ds.createVariable("lat", "f4", ("lat",))
        lat.units = "degrees_north"
        lat[:] = [-10, 0, 10]
        v = ds.createVariable("temp", "f4", ("time", "lat", "lon"), fill_value=np.float32(np.nan))
        v.valid_max = np.float32(np.inf)
        v.actual_range = np.array([np.nan, 71.0])
        d = np.arange(72, dtype="f4").reshape(6, 3, 4)
        d[0, 0, 0] = np.nan
        d[1, 1, 1] = np.inf
        d[5, 2, 3] = -np.inf
        v[:] = d
        f = ds.createVariable("flux", "f8", ("time", "lat"), fill_value=1e20)
        f.missing_value = -np.inf
        d = np.arange(18, dtype="f8").reshape(6, 3)
        d[2, 2] = -np.inf
        d[3, 0] = 1e20
        f[:] = d
        c = ds.createVariable("count", "i2", ("time", "lat"), fill_value=np.int16(-999))
        c.nan_note = np.nan
        d = np.arange(18, dtype="i2").reshape(6, 3)
        d[4, 1] = -999
        c[:] = d
        ds.nan_attr = np.float32(np.nan)
        ds.inf_attrs = np.array([np.inf, -np.inf, 1.0])
        g = ds.createGroup("g")
        g.g_nan = np.nan
        g.createDimension("p", 5)
        p = g.createVariable("p", "f4", ("p",), fill_value=np.float32(np.nan))
        p.bound = -np.inf
        p[:] = np.array([1, np.nan, 3, np.inf, 5], "f4")


def source_values(src):
    """Every array's raw values (no mask, no scaling), by path."""
    out = {}
    with netCDF4.Dataset(src) as ds:
        ds.set_auto_maskandscale(False)
        for p in ARRAYS:
            node = ds
            parts = p.split("/")
            for part in parts[:-1]:
                node = node.groups[part]
            out[p] = np.asarray(node.variables[parts[-1]][...])
    return out


def source_attrs(src):
    """Attributes of every array and group (path "" for the root)."""
    out = {}
    with netCDF4.Dataset(src) as ds:
        out[""] = {k: ds.getncattr(k) for k in ds.ncattrs()}
        out["g"] = {k: ds.groups["g"].getncattr(k) for k in ds.groups["g"].ncattrs()}
        for p in ARRAYS:
            node = ds
            parts = p.split("/")
            for part in parts[:-1]:
                node = node.groups[part]
            v = node.variables[parts[-1]]
            out[p] = {k: v.getncattr(k) for k in v.ncattrs() if k != "_FillValue"}
    return out


def as_strict(value):
    """An attribute value as --attrs-json strict writes it (lists for
    arrays, the strings for NaN and the infinities)."""
    arr = np.asarray(value)
    if arr.dtype.kind != "f":
        return value
    items = ["NaN" if math.isnan(x) else "Infinity" if x == math.inf else "-Infinity" if x == -math.inf else x
             for x in arr.astype("f8").ravel().tolist()]
    return items[0] if len(items) == 1 else items


def same_attr(want, got):
    """NaN-aware equality of an attribute value as a reader gives it."""
    if isinstance(want, (str, bytes)) or isinstance(got, str):
        return want == got
    w = np.asarray(want, dtype=object).ravel().tolist()
    g = np.asarray(got, dtype=object).ravel().tolist()
    if len(w) != len(g):
        return False
    for a, b in zip(w, g):
        if isinstance(a, str) or isinstance(b, str):
            if a != b:
                return False
        elif not (a == b or (math.isnan(float(a)) and math.isnan(float(b)))):
            return False
    return True


def strict_json(text):
    """Whether a strict JSON parser takes the document."""
    def refuse(token):
        raise ValueError(f"bare {token}")
    try:
        json.loads(text, parse_constant=refuse)
        return True
    except ValueError:
        return False


def documents(store):
    """Every metadata document of the store (zarrforge's own folder aside)."""
    names = {"zarr.json", ".zarray", ".zattrs", ".zgroup", ".zmetadata"}
    out = {}
    for root, dirs, files in os.walk(store):
        dirs[:] = [d for d in dirs if d != ".zarrforge"]
        for f in files:
            if f in names:
                key = os.path.relpath(os.path.join(root, f), store)
                with open(os.path.join(root, f)) as fh:
                    out[key] = fh.read()
    return out


def check_documents(store, fmt, mode):
    docs = documents(store)
    not_strict = {k for k, text in docs.items() if not strict_json(text)}
    if mode == "strict":
        assert not not_strict, f"not strict JSON: {sorted(not_strict)}"
    else:
        def key(node, name):
            return f"{node}/{name}" if node else name
        if fmt == 3:
            want = {key(n, "zarr.json") for n in NONFINITE_ARRAYS | NONFINITE_GROUPS}
        else:
            want = {key(n, ".zattrs") for n in NONFINITE_ARRAYS | NONFINITE_GROUPS} | {".zmetadata"}
        assert not_strict == want, f"documents with bare tokens: {sorted(not_strict)}, expected {sorted(want)}"
    # fill_value as the spec writes it, in both modes: "NaN" for a NaN fill.
    want_fill = {"temp": "NaN", "g/p": "NaN", "flux": 1e20, "count": -999}
    if fmt == 3:
        want_fill.update({"time": "NaN", "lat": "NaN"})
    else:
        want_fill.update({"time": None, "lat": None})
    for p, want in want_fill.items():
        doc = json.loads(docs[f"{p}/zarr.json" if fmt == 3 else f"{p}/.zarray"])
        got = doc["fill_value"]
        assert got == want and type(got) is type(want), f"{p}: fill_value {got!r}, expected {want!r}"
    if fmt == 3:
        temp = json.loads(docs["temp/zarr.json"])
        # xarray's encoding of the NaN _FillValue: base64 of the float64.
        assert temp["attributes"]["_FillValue"] == "AAAAAAAA+H8=", temp["attributes"]
    return f"{len(docs)} documents, {len(docs) - len(not_strict)} strict JSON"


def check_zarr_python(src, store, mode):
    values = source_values(src)
    attrs = source_attrs(src)
    root = zarr.open_group(store, mode="r")
    for p in ARRAYS:
        a = root[p]
        got = a[...]
        assert got.dtype == values[p].dtype, f"{p}: dtype {got.dtype} vs {values[p].dtype}"
        assert np.array_equal(got, values[p], equal_nan=got.dtype.kind == "f"), f"{p}: values differ"
    for node, want in attrs.items():
        have = dict(root.attrs) if node == "" else dict(root[node].attrs)
        for k, v in want.items():
            expected = as_strict(v) if mode == "strict" else v
            assert k in have and same_attr(expected, have[k]), \
                f"{node or 'root'} attribute {k}: {have.get(k)!r}, expected {expected!r}"
    return f"{len(ARRAYS)} arrays, attributes as {'strings' if mode == 'strict' else 'floats'}"


def strict_attrs(ds):
    """The dataset with its float attributes as --attrs-json strict writes
    them (the _FillValue aside)."""
    for obj in [ds] + [ds[v] for v in ds.variables]:
        for k, v in list(obj.attrs.items()):
            if k != "_FillValue":
                obj.attrs[k] = as_strict(v)
    return ds


def check_xarray(src, store, fmt, mode):
    if mode == "python":
        for group in (None, "g"):
            compare.compare_group(src, store, group)
        return "open_zarr equals open_dataset (raw and decoded)"
    for group in (None, "g"):
        kw = {} if group is None else {"group": group}
        s = strict_attrs(compare.load(xr.open_dataset(src, decode_cf=False, **kw)))
        o = compare.load(xr.open_zarr(store, decode_cf=False, consolidated=None, chunks=None, **kw))
        compare.documented(s, o, fmt)
        xr.testing.assert_identical(s, o)
        s = strict_attrs(compare.load(xr.open_dataset(src, **kw)))
        o = compare.load(xr.open_zarr(store, consolidated=None, chunks=None, **kw))
        if group is None:
            # The -Infinity missing_value is text in the store: xarray
            # masks nothing with it, so -inf stays where the source reads NaN.
            raw = source_values(src)["flux"]
            differ = ~np.isclose(s["flux"].values, o["flux"].values, equal_nan=True, rtol=0, atol=0)
            assert np.array_equal(differ, np.isneginf(raw)), "flux: decoded values differ elsewhere"
            assert np.all(np.isneginf(o["flux"].values[differ])), "flux: not -inf where unmasked"
            o["flux"] = s["flux"].variable
        xr.testing.assert_identical(s, o)
    return "open_zarr equals open_dataset with text attributes; flux's -inf unmasked"


def check_tensorstore(src, store, fmt, mode):
    import tensorstore as ts
    values = source_values(src)
    refused = set()
    for p in ARRAYS:
        spec = {"driver": "zarr3" if fmt == 3 else "zarr",
                "kvstore": {"driver": "file", "path": os.path.join(store, p) + "/"}}
        expect_refusal = mode == "python" and fmt == 3 and p in NONFINITE_ARRAYS
        try:
            got = ts.open(spec, open=True, read=True).result().read().result()
        except Exception as e:  # tensorstore raises ValueError for a bad document
            assert expect_refusal, f"{p}: refused: {e}"
            assert "Invalid JSON" in str(e), f"{p}: refused for another reason: {e}"
            refused.add(p)
            continue
        assert not expect_refusal, f"{p}: opened although its zarr.json holds a bare token"
        assert got.dtype == values[p].dtype, f"{p}: dtype {got.dtype} vs {values[p].dtype}"
        assert np.array_equal(got, values[p], equal_nan=got.dtype.kind == "f"), f"{p}: values differ"
    return f"{len(ARRAYS) - len(refused)} arrays read, {len(refused)} refused (Invalid JSON)"


def js_values(a):
    """Values as zarrita_read.mjs prints them."""
    out = []
    for x in a.ravel().tolist():
        if isinstance(x, float) and not math.isfinite(x):
            out.append("NaN" if math.isnan(x) else "Infinity" if x > 0 else "-Infinity")
        else:
            out.append(x)
    return out


def same_js(want, got):
    return len(want) == len(got) and all(
        a == b if isinstance(a, str) or isinstance(b, str) else float(a) == float(b)
        for a, b in zip(want, got))


def check_zarrita(src, store, fmt, mode):
    values = source_values(src)
    script = os.path.join(HERE, "zarrita_read.mjs")
    run = subprocess.run(["node", script, store, str(fmt), *ARRAYS], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, f"node failed: {run.stderr.strip()}"
    out = json.loads(run.stdout)

    def check(results, how):
        refused = 0
        for p in ARRAYS:
            r = results[p]
            if mode == "python" and p in NONFINITE_ARRAYS:
                assert "error" in r and "JSON" in r["error"], f"{how} {p}: not refused: {str(r)[:200]}"
                refused += 1
                continue
            assert "error" not in r, f"{how} {p}: {r.get('error')}"
            assert r["shape"] == list(values[p].shape), f"{how} {p}: shape {r['shape']}"
            assert same_js(js_values(values[p]), r["values"]), f"{how} {p}: values differ"
            if mode == "strict":
                for k, v in source_attrs(src)[p].items():
                    assert same_attr(as_strict(v), r["attrs"].get(k)), f"{how} {p}: attribute {k}: {r['attrs'].get(k)!r}"
        return refused

    refused = check(out["direct"], "direct")
    cons = out["consolidated"]
    if mode == "python":
        assert "error" in cons and "JSON" in cons["error"], f"consolidated metadata not refused: {str(cons)[:200]}"
        return f"{len(ARRAYS) - refused} arrays read, {refused} refused (JSON), consolidated metadata refused"
    assert "error" not in cons, f"consolidated: {cons.get('error')}"
    assert cons["nodes"] == len(ARRAYS) + 2, f"consolidated: {cons['nodes']} nodes"
    check(cons["arrays"], "consolidated")
    return f"{len(ARRAYS)} arrays read, directly and through the consolidated metadata"


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "make":
        make(sys.argv[2])
        return 0
    if len(sys.argv) < 6 or sys.argv[1] != "check" or (len(sys.argv) - 3) % 3:
        print(__doc__, file=sys.stderr)
        return 2
    src = sys.argv[2]
    failures = 0
    for i in range(3, len(sys.argv), 3):
        fmt, mode, store = int(sys.argv[i]), sys.argv[i + 1], sys.argv[i + 2]
        checks = [
            ("documents", lambda: check_documents(store, fmt, mode)),
            ("zarr-python", lambda: check_zarr_python(src, store, mode)),
            ("xarray", lambda: check_xarray(src, store, fmt, mode)),
            ("tensorstore", lambda: check_tensorstore(src, store, fmt, mode)),
            ("zarrita", lambda: check_zarrita(src, store, fmt, mode)),
        ]
        for name, f in checks:
            label = f"v{fmt} --attrs-json {mode}: {name}"
            try:
                print(f"PASS {label}: {f()}")
            except AssertionError as e:
                text = str(e).splitlines()
                print(f"FAIL {label}: " + "\n".join(text[:20] + (["..."] if len(text) > 20 else [])))
                failures += 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
