"""Compare a Zarr store converted from several netCDF files with those files.

usage: compare_multifile.py STORE FILE...

The reference is what xarray makes of the files: open_mfdataset with
combine="by_coords" (see OPEN_KW for the options and why). FILE order on the
command line does not matter: the files are put in time order by their
decoded time coordinate. Checks, in order:
  * zarr-python: zarr.open_group(STORE) holds exactly the source's variables
    as arrays, each of the source's shape.
  * time encoding: the store's `time` has the units of the file whose first
    time step is earliest (the converter re-encodes every file to that one
    unit) and otherwise the same attributes (calendar, axis, ...).
  * raw (decode_cf=False), every variable but time and its bounds: same dims,
    dtype, values (NaN-aware) and attributes; the same global attributes.
  * CF-decoded: xarray.testing.assert_identical after .load(), time compared
    as decoded values (datetime64 or cftime), so differing units between the
    files do not matter. A packed variable may decode to float64 from Zarr
    where netCDF4 gives float32 (JSON attributes carry no float32 type;
    xarray picks the unpacked dtype from the scale_factor type); those are
    compared with a tolerance, as in compare.py.
The global attribute `history` is left out everywhere: the converter adds a
provenance line to it. Exit status 1 with a readable message on the first
failure; one summary line on success.
"""
import sys
import time
import warnings

import numpy as np
import xarray as xr
import zarr

from compare import as_is, open_store, storage_options

warnings.filterwarnings("ignore")

# How the files combine into one dataset, for sets like those of
# make_multifile.py (a series split along time; variables split across file
# families; static fields repeated in every file):
#   combine="by_coords"  orders the files by their (decoded) time values and
#                        merges families holding different variables;
#   data_vars="minimal", coords="minimal"
#                        concatenate only variables that have the time dim;
#                        static ones (orog, crs, lat, lon) stay as they are
#                        instead of gaining a time dimension;
#   compat="override"    takes those static variables from the first file
#                        without loading and comparing all N copies (they are
#                        identical by construction);
#   join="exact"         fails instead of padding with NaN should lat/lon
#                        (or the time axes of two families) ever differ;
#   combine_attrs="override"
#                        global and variable attributes of the first file
#                        (they are the same in every file).
OPEN_KW = dict(
    engine="netcdf4",
    combine="by_coords",
    data_vars="minimal",
    coords="minimal",
    compat="override",
    join="exact",
    combine_attrs="override",
    parallel=False,
)

# Global attributes the converter may set or extend.
IGNORED_GLOBAL_ATTRS = ("history",)


class Failure(Exception):
    pass


def fail(msg):
    raise Failure(msg)


def time_bounds_names(ds):
    """`time` and the bounds variable it names, if any."""
    names = {"time"}
    if "time" in ds.variables:
        b = ds["time"].attrs.get("bounds") or ds["time"].encoding.get("bounds")
        if b:
            names.add(b)
    return names


def attr_equal(x, y):
    """One attribute value: text exactly, numbers as arrays of equal values
    (NaN equal to NaN; a float32 source value equals the float64 it widens
    to, which is what a JSON attribute can hold)."""
    if isinstance(x, (str, bytes)) or isinstance(y, (str, bytes)):
        return type(x) is type(y) and x == y
    x, y = np.asarray(x), np.asarray(y)
    if x.dtype.kind in "USO" or y.dtype.kind in "USO":
        return x.shape == y.shape and x.tolist() == y.tolist()
    nan = x.dtype.kind in "fc" and y.dtype.kind in "fc"
    return np.array_equal(x.reshape(-1), y.reshape(-1), equal_nan=nan)


def attrs_diff(src, out):
    """'' if the attribute dicts are equal, else one line per differing key."""
    lines = []
    for k in src:
        if k not in out:
            lines.append(f"  {k}: missing in store (source {src[k]!r})")
        elif not attr_equal(src[k], out[k]):
            hint = ""
            if np.asarray(src[k]).dtype == np.float32:
                wide = np.asarray(src[k], dtype="f8").tolist()
                hint = f" (a float32 attribute must be stored as its float64 value {wide!r})"
            lines.append(f"  {k}: source {src[k]!r} != store {out[k]!r}{hint}")
    lines += [f"  {k}: only in store ({out[k]!r})" for k in out if k not in src]
    return "\n".join(lines)


def drop_ignored_attrs(ds):
    for a in IGNORED_GLOBAL_ATTRS:
        ds.attrs.pop(a, None)
    return ds


def open_source_raw(files):
    """The files combined with decode_cf=False, in time order, and per file
    (first decoded time, raw time attributes, path).

    Raw time values cannot order the files (their units differ), so each
    file's `time` is replaced by its decoded values before combining; every
    other variable stays raw. The time attributes are kept before that."""
    info = []

    def preprocess(ds):
        if "time" not in ds.variables:
            fail(f"{ds.encoding.get('source')}: no time variable")
        raw_attrs = dict(ds["time"].attrs)
        decoded = xr.decode_cf(ds[["time"]])["time"]
        if decoded.size:
            info.append((decoded.values[0], raw_attrs, ds.encoding.get("source")))
        return ds.assign_coords(time=decoded.variable)

    ds = xr.open_mfdataset(files, decode_cf=False, preprocess=preprocess, **OPEN_KW)
    return ds, info


def time_first(info):
    """The raw time attributes and path of the file with the earliest first
    time step (the first such file in command-line order on a tie)."""
    if not info:
        fail("no file has a time step")
    best = info[0]
    for item in info[1:]:
        if item[0] < best[0]:
            best = item
    return best[1], best[2]


def check_zarr_python(store, src):
    try:
        root = zarr.open_group(store, mode="r", **storage_options(store))
    except Exception as e:  # noqa: BLE001 - report whatever zarr raises
        fail(f"zarr.open_group({store!r}) failed: {type(e).__name__}: {e}")
    got = set(root.array_keys())
    want = set(src.variables)
    if got != want:
        fail(f"zarr-python: arrays in store {sorted(got)} != source variables {sorted(want)}"
             f" (missing {sorted(want - got)}, extra {sorted(got - want)})")
    for name in sorted(want):
        shape = tuple(root[name].shape)
        if shape != tuple(src[name].shape):
            fail(f"zarr-python: shape of {name}: store {shape} != source {tuple(src[name].shape)}")
    groups = sorted(root.group_keys())
    if groups:
        fail(f"zarr-python: unexpected groups in store: {groups}")


def check_time_encoding(out_raw, first_attrs, first_path):
    if "time" not in out_raw.variables:
        fail("store has no time variable")
    got = dict(out_raw["time"].attrs)
    want_units = first_attrs.get("units")
    if got.get("units") != want_units:
        fail(f"time units: store {got.get('units')!r} != {want_units!r} of the time-first file"
             f" {first_path}")
    want = {k: v for k, v in first_attrs.items() if k != "units"}
    got = {k: v for k, v in got.items() if k not in ("units", "_FillValue")}
    want.pop("_FillValue", None)
    diff = attrs_diff(want, got)
    if diff:
        fail(f"time attributes (other than units and _FillValue) differ:\n{diff}")


def check_raw(src_raw, out_raw):
    skip = time_bounds_names(src_raw)
    src_names = set(src_raw.variables) - skip
    out_names = set(out_raw.variables) - skip
    if src_names != out_names:
        fail(f"raw: variables differ: missing in store {sorted(src_names - out_names)},"
             f" extra in store {sorted(out_names - src_names)}")
    for name in sorted(src_names):
        s, o = src_raw[name].variable, out_raw[name].variable
        if s.dims != o.dims:
            fail(f"raw: dims of {name}: source {s.dims} != store {o.dims}")
        if s.dtype != o.dtype and not (s.dtype.kind in "UOT" and o.dtype.kind in "UOT"):
            fail(f"raw: dtype of {name}: source {s.dtype} != store {o.dtype}")
        sv, ov = s.values, o.values
        if sv.shape != ov.shape:
            fail(f"raw: shape of {name}: source {sv.shape} != store {ov.shape}")
        if not np.array_equal(sv, ov, equal_nan=sv.dtype.kind in "fc"):
            bad = np.argwhere(~((sv == ov) | (np.isnan(sv) & np.isnan(ov))
                                if sv.dtype.kind in "fc" else sv == ov))
            where = tuple(int(i) for i in bad[0]) if bad.size else ()
            fail(f"raw: values of {name} differ ({len(bad)} elements; first at {where}:"
                 f" source {sv[where]!r} store {ov[where]!r})")
        diff = attrs_diff(s.attrs, o.attrs)
        if diff:
            fail(f"raw: attributes of {name} differ:\n{diff}")
    diff = attrs_diff(src_raw.attrs, out_raw.attrs)
    if diff:
        fail(f"raw: global attributes (history aside) differ:\n{diff}")


def check_decoded(src, out, src_raw):
    """assert_identical, tolerating float32 -> float64 decoding of packed
    variables in the store (compare.py explains why)."""
    for name in list(src.variables):
        if name not in out.variables:
            continue  # assert_identical reports it
        s, o = src[name], out[name]
        if s.dtype == o.dtype or s.dtype.kind != "f" or o.dtype.kind != "f":
            continue
        raw = src_raw[name]
        if "scale_factor" not in raw.attrs and "add_offset" not in raw.attrs:
            fail(f"decoded: dtype of {name}: source {s.dtype} != store {o.dtype}")
        if s.dims != o.dims:
            fail(f"decoded: dims of {name}: source {s.dims} != store {o.dims}")
        sf = abs(float(np.asarray(raw.attrs.get("scale_factor", 1)).ravel()[0]))
        ao = abs(float(np.asarray(raw.attrs.get("add_offset", 0)).ravel()[0]))
        # The source side is computed in float32 (see compare.py).
        span = sf * float(np.nanmax(np.abs(raw.values.astype("f8")), initial=0))
        atol = sf * 1e-3 + 1e-12 * ao + np.finfo(s.dtype).eps * (span + ao)
        try:
            np.testing.assert_allclose(o.values, s.values.astype(o.dtype), rtol=1e-6,
                                       equal_nan=True, atol=atol)
        except AssertionError as e:
            fail(f"decoded: values of packed {name} (store {o.dtype}, source {s.dtype}):\n{e}")
        # Keep the store's dims and attributes; take the source's values.
        out[name] = xr.Variable(o.dims, s.values, o.attrs)
    try:
        xr.testing.assert_identical(src, out)
    except AssertionError as e:
        fail(f"decoded (CF) datasets differ:\n{e}")


def compare_files(store, files, expect=as_is):
    """Every check above; returns (source raw, store raw, summary) and raises
    Failure on the first difference. STORE is a directory, an s3:// URL or a
    store object (an Icechunk session's store); EXPECT turns the combined
    source (raw, then decoded) into what the store should hold."""
    t0 = time.monotonic()
    src_raw, info = open_source_raw(files)
    src_raw = expect(drop_ignored_attrs(src_raw.load()))
    first_attrs, first_path = time_first(info)
    src = expect(drop_ignored_attrs(xr.open_mfdataset(files, **OPEN_KW).load()))

    check_zarr_python(store, src)

    out_raw = drop_ignored_attrs(open_store(store, decode_cf=False).load())
    check_time_encoding(out_raw, first_attrs, first_path)
    check_raw(src_raw, out_raw)

    out = drop_ignored_attrs(open_store(store).load())
    check_decoded(src, out, src_raw)
    nt = src.sizes.get("time", 0)
    summary = (f"{len(src.variables)} variables, {nt} time steps,"
               f" time units {first_attrs.get('units')!r}, {time.monotonic() - t0:.1f} s")
    return src_raw, out_raw, summary


def main():
    if len(sys.argv) < 3 or sys.argv[1] in ("-h", "--help"):
        sys.exit(__doc__.split("\n\n")[1])
    store, files = sys.argv[1], sys.argv[2:]
    report(lambda: f"{len(files)} files ({compare_files(store, files)[2]})", lambda: store, f" vs {len(files)} files")


def report(checks, where, versus):
    """Runs CHECKS() and prints "ok WHERE() == what it returned" (nothing if
    None), or "FAIL WHERE()VERSUS: the difference" and exits 1: any exception
    counts (an unreadable store or source is a failure too)."""
    try:
        summary = checks()
    except (Failure, AssertionError) as e:
        print(f"FAIL {where()}{versus}: {e}", file=sys.stderr)
        sys.exit(1)
    except Exception as e:  # noqa: BLE001 - see above
        print(f"FAIL {where()}{versus}: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
    if summary is not None:
        print(f"ok {where()} == {summary}")


if __name__ == "__main__":
    main()
