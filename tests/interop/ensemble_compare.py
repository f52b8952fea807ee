"""Compare a store converted with `zarrforge convert --new-dim` with its files.

usage: ensemble_compare.py STORE [STORE...] INPUT_DIR [--dim NAME]
                           [--attr ATTR] [--full DIR]

INPUT_DIR holds the ensemble's netCDF files (make_ensemble_fixtures.py);
each file's value along the new dimension NAME (default `member`) is its
global attribute ATTR (default `variant_label`). The expected values are
those found, in natural order (r2 before r10; integers by value); the
coordinate is int64 when every value is an integer, else strings.

The reference is what xarray makes of the files:

    xr.open_mfdataset([[files of member 1 in time order], [member 2], ...],
                      combine="nested", concat_dim=[NAME, "time"],
                      decode_coords="all", data_vars="all")
      .assign_coords(NAME=[values])

decode_coords="all" makes the variables named by `coordinates` and `bounds`
attributes (height, time_bnds, lat_bnds, lon_bnds) coordinates, which
xarray, like zarrforge, does not stack along NAME. data_vars="all" stacks
every data variable; it also repeats a data variable without time (orog)
along time: for those, every step of xarray's must be equal and its
.isel(time=0) is compared with the store's (which has NAME but no time).

--full DIR: the store was converted from INPUT_DIR with --allow-missing,
INPUT_DIR being DIR without some files. The reference is then built from
DIR, and the steps of each file missing from INPUT_DIR must read as missing
in that member: NaN once decoded, the fill value raw.

Several STOREs converted from the same files (other rank counts, chunks,
formats) are compared with one reference built once. Checks, in order, for
each STORE (a "FAIL STORE vs INPUT_DIR: ..." line with the first
difference, or one "ok STORE == ..." line; exit status 1 if any failed):
  * zarr-python: the arrays are the reference's variables; the NAME array
    has the expected dtype (int64 or variable-length strings) and values.
  * dims: the dataset's sizes; each variable's dims in order (NAME first for
    the stacked ones).
  * coordinates: the same names; decoded time (cftime, so differing time
    units between the files do not matter), its bounds, lat, lon, their
    bounds, height, NAME: same values.
  * values of every data variable, decoded (NaN-aware) and raw
    (decode_cf=False, per member against that member's files).
  * dtypes: equal raw; decoded too, except that a packed variable decodes
    to float64 from Zarr where netCDF4 gives float32 (JSON attributes carry
    no float32 type; compare.py explains), compared with a tolerance.
  * attributes: every variable's (NAME's aside, which only zarrforge
    has) and the global ones (xarray takes the first file's), `history`
    aside.
  * CF encoding in `.encoding`: time's units (the first member's first
    file's: the converter re-encodes every file to them) and calendar;
    _FillValue, missing_value, scale_factor, add_offset and dtype of every
    data variable.
"""
import argparse
import glob
import os
import re
import sys
import time
import warnings

import dask
import netCDF4
import numpy as np
import xarray as xr
import zarr

warnings.filterwarnings("ignore")
# A few hundred small chunks: threads only add overhead.
dask.config.set(scheduler="synchronous")

CONCAT = "time"
IGNORED_GLOBAL_ATTRS = ("history",)
ENCODING_KEYS = ("_FillValue", "missing_value", "scale_factor", "add_offset", "dtype")


class Failure(Exception):
    pass


def fail(msg):
    raise Failure(msg)


def natural_key(label):
    """r2i1p1f1 before r10i1p1f1: digit runs compare as numbers."""
    if isinstance(label, (int, np.integer)):
        return [(0, int(label), "")]
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", label) if t]


def label_of(path, attr):
    with netCDF4.Dataset(path) as ds:
        if attr not in ds.ncattrs():
            fail(f"{path}: no global attribute {attr!r}")
        v = ds.getncattr(attr)
    if isinstance(v, str):
        v = v.strip()
        return int(v) if re.fullmatch(r"-?\d+", v) else v
    v = np.asarray(v).ravel()
    if v.size != 1 or v.dtype.kind not in "iu":
        fail(f"{path}: global attribute {attr!r} = {v!r} is not one string or integer")
    return int(v[0])


def first_time(path):
    """The file's first time step, decoded (orders a member's files)."""
    with xr.open_dataset(path, decode_times=True) as ds:
        return ds[CONCAT].values[0]


def members_of(input_dir, attr):
    """{label: [files in time order]} and the labels in natural order."""
    files = sorted(glob.glob(os.path.join(input_dir, "*.nc")))
    if not files:
        fail(f"no .nc files in {input_dir}")
    by = {}
    for f in files:
        by.setdefault(label_of(f, attr), []).append(f)
    labels = list(by)
    if not all(isinstance(x, int) for x in labels):
        # Like the converter: integers only when every value is one.
        by = {str(k): v for k, v in by.items()}
        labels = [str(x) for x in labels]
    labels.sort(key=natural_key)
    return {k: sorted(by[k], key=first_time) for k in labels}, labels


def open_reference(members, labels, dim, **kw):
    files = [members[k] for k in labels]
    lengths = {len(f) for f in files}
    if len(lengths) != 1:
        fail(f"members have different numbers of files {sorted(lengths)}: not a nested grid (use --full)")
    ds = xr.open_mfdataset(files, combine="nested", concat_dim=[dim, CONCAT], decode_coords="all",
                           data_vars="all", **kw)
    return ds.assign_coords({dim: labels})


def drop_ignored(ds):
    for a in IGNORED_GLOBAL_ATTRS:
        ds.attrs.pop(a, None)
    return ds


def attr_equal(x, y):
    if isinstance(x, (str, bytes)) or isinstance(y, (str, bytes)):
        return type(x) is type(y) and x == y
    x, y = np.asarray(x), np.asarray(y)
    if x.dtype.kind in "USO" or y.dtype.kind in "USO":
        return x.shape == y.shape and x.tolist() == y.tolist()
    nan = x.dtype.kind in "fc" and y.dtype.kind in "fc"
    return np.array_equal(x.reshape(-1), y.reshape(-1), equal_nan=nan)


def attrs_diff(src, out):
    lines = [f"  {k}: missing in store (source {src[k]!r})" for k in src if k not in out]
    lines += [f"  {k}: source {src[k]!r} != store {out[k]!r}"
              for k in src if k in out and not attr_equal(src[k], out[k])]
    lines += [f"  {k}: only in store ({out[k]!r})" for k in out if k not in src]
    return "\n".join(lines)


def values_equal(a, b):
    if a.shape != b.shape:
        return False
    if a.dtype.kind in "fc" and b.dtype.kind in "fc":
        return np.array_equal(a, b, equal_nan=True)
    return np.array_equal(a, b)


def first_difference(a, b):
    if a.shape != b.shape:
        return f"shape {a.shape} != {b.shape}"
    same = a == b
    if a.dtype.kind in "fc" and b.dtype.kind in "fc":
        same |= np.isnan(a) & np.isnan(b)
    bad = np.argwhere(~np.asarray(same))
    where = tuple(int(i) for i in bad[0]) if bad.size else ()
    return f"{len(bad)} elements differ; first at {where}: reference {a[where]!r} store {b[where]!r}"


def without_time(ref, name, dim):
    """A data variable xarray repeats along time but the store has only
    along `dim`: every step must be equal; the first one is compared."""
    v = ref[name]
    first = v.isel({CONCAT: 0})
    vals = v.transpose(CONCAT, ...).values
    if not all(values_equal(vals[0], vals[i]) for i in range(1, vals.shape[0])):
        fail(f"{name}: xarray's copies along '{CONCAT}' differ (the fixture's static field changes between files)")
    return first.transpose(dim, ...)


def check_zarr_python(store, ref, dim, labels):
    root = zarr.open_group(store, mode="r")
    got, want = set(root.array_keys()), set(ref.variables)
    if got != want:
        fail(f"zarr-python: arrays {sorted(got)} != reference variables {sorted(want)}"
             f" (missing {sorted(want - got)}, extra {sorted(got - want)})")
    m = root[dim]
    values = m[:].tolist()
    if all(isinstance(x, int) for x in labels):
        if m.dtype != np.dtype("int64"):
            fail(f"zarr-python: {dim} dtype {m.dtype}, expected int64 (every value is an integer)")
    elif np.dtype(m.dtype).kind not in "UOT":
        fail(f"zarr-python: {dim} dtype {m.dtype}, expected variable-length strings")
    if values != list(labels):
        fail(f"zarr-python: {dim} values {values} != {list(labels)} (natural order)")


def check_dims(ref, out, dim, static):
    if dict(out.sizes) != dict(ref.sizes):
        fail(f"sizes: store {dict(out.sizes)} != reference {dict(ref.sizes)}")
    for name in ref.variables:
        r, o = ref[name], out[name]
        want = r.dims
        if name in static:
            want = (dim,) + tuple(d for d in want if d not in (dim, CONCAT))
        if o.dims != want:
            fail(f"dims of {name}: store {o.dims} != reference {want}")


def check_coords(ref, out, dim, labels):
    if set(out.coords) != set(ref.coords):
        fail(f"coordinates: store {sorted(out.coords)} != reference {sorted(ref.coords)}")
    for name in ref.coords:
        r, o = ref[name].values, out[name].values
        if name == dim:
            if o.tolist() != list(labels):
                fail(f"coordinate {dim}: store {o.tolist()} != {list(labels)}")
            continue
        if not values_equal(r, o):
            fail(f"coordinate {name}: {first_difference(r, o)}")


def expect_missing(ref, missing, dim, static):
    """Sets the cells of the missing files to NaN (decoded) in a copy."""
    ref = ref.copy()
    for label, times in missing:
        for name in ref.data_vars:
            v = ref[name]
            if name in static or dim not in v.dims or CONCAT not in v.dims:
                continue
            v = v.copy(data=np.array(v.values))
            v.loc[{dim: label, CONCAT: times}] = np.nan
            ref[name] = v
    return ref


def check_values(ref, out, dim, static):
    """Decoded values and dtypes of every data variable."""
    for name in ref.data_vars:
        o = out[name]
        r = ref[name]
        if name in static:
            r = without_time(ref, name, dim)
        rv, ov = r.values, o.values
        if rv.dtype != ov.dtype:
            packed = "scale_factor" in r.encoding or "add_offset" in r.encoding
            if not (packed and rv.dtype.kind == "f" and ov.dtype.kind == "f"):
                fail(f"decoded dtype of {name}: store {ov.dtype} != reference {rv.dtype}")
            sf = abs(float(r.encoding.get("scale_factor", 1)))
            ao = abs(float(r.encoding.get("add_offset", 0)))
            atol = sf * 1e-3 + np.finfo(rv.dtype).eps * 4 * (ao + sf * 32768)
            if np.isnan(rv).tolist() != np.isnan(ov).tolist() or not np.allclose(
                    ov, rv.astype(ov.dtype), rtol=1e-6, atol=atol, equal_nan=True):
                fail(f"decoded values of packed {name} (store {ov.dtype}, reference {rv.dtype}):"
                     f" {first_difference(rv.astype(ov.dtype), ov)}")
        elif not values_equal(rv, ov):
            fail(f"decoded values of {name}: {first_difference(rv, ov)}")


def open_raw_members(members, labels):
    """Each member's files combined along time with decode_cf=False (raw
    time values cannot be concatenated across members whose units differ,
    so there is no whole-grid raw reference)."""
    return {
        label: xr.open_mfdataset(members[label], combine="nested", concat_dim=CONCAT, decode_cf=False,
                                 data_vars="minimal", coords="minimal", compat="override").load()
        for label in labels
    }


def check_raw(raw, labels, store, dim, missing):
    """Raw values (decode_cf=False) and dtypes, member by member, against
    that member's files; the steps of its missing files hold the fill value."""
    out = xr.open_zarr(store, consolidated=False, decode_cf=False, chunks=None)
    for i, label in enumerate(labels):
        src = raw[label]
        gone = [t for lab, t in missing if lab == label]
        for name in src.data_vars:
            if dim not in out[name].dims:
                continue
            s, o = src[name], out[name].isel({dim: i})
            if s.dtype != o.dtype:
                fail(f"raw dtype of {name}: store {o.dtype} != source {s.dtype}")
            ov = o.values
            if CONCAT in o.dims and gone:
                fill = s.attrs.get("_FillValue")
                ax = o.dims.index(CONCAT)
                t_out = xr.decode_cf(out[[CONCAT]])[CONCAT].values
                hole = np.isin(t_out, np.concatenate(gone))
                held = np.take(ov, np.flatnonzero(~hole), axis=ax)
                empty = np.take(ov, np.flatnonzero(hole), axis=ax)
                if fill is None or not np.all(empty == np.asarray(fill, dtype=ov.dtype)):
                    fail(f"raw {name} of {dim}={label}: steps of missing files are not the fill value {fill!r}")
                ov = held
            if not values_equal(s.values, ov):
                fail(f"raw values of {name} of {dim}={label}: {first_difference(s.values, ov)}")


def check_attrs(ref, out, dim):
    for name in ref.variables:
        if name == dim:
            continue
        diff = attrs_diff(ref[name].attrs, out[name].attrs)
        if diff:
            fail(f"attributes of {name} differ:\n{diff}")
    diff = attrs_diff(ref.attrs, out.attrs)
    if diff:
        fail(f"global attributes (history aside) differ:\n{diff}")
    comment = out[dim].attrs.get("comment", "")
    if "values from the" not in comment:
        fail(f"{dim}: no comment saying where its values come from ({out[dim].attrs!r})")


def check_encoding(ref, out):
    for key in ("units", "calendar"):
        want, got = ref[CONCAT].encoding.get(key), out[CONCAT].encoding.get(key)
        if want != got:
            fail(f"encoding of {CONCAT}: {key} store {got!r} != {want!r} (the first member's first file's)")
    for name in ref.data_vars:
        for key in ENCODING_KEYS:
            want, got = ref[name].encoding.get(key), out[name].encoding.get(key)
            if key == "dtype":
                ok = np.dtype(want) == np.dtype(got) if want is not None and got is not None else want == got
            else:
                ok = (want is None) == (got is None) and (want is None or attr_equal(want, got))
            if not ok:
                fail(f"encoding of {name}: {key} store {got!r} != reference {want!r}")


class Reference:
    """What every store converted from INPUT_DIR must hold: built once, for
    any number of stores."""

    def __init__(self, input_dir, dim, attr, full):
        self.dim = dim
        members, self.labels = members_of(full or input_dir, attr)
        self.missing = []
        if full:
            present = {os.path.basename(f) for f in glob.glob(os.path.join(input_dir, "*.nc"))}
            for label in self.labels:
                for f in members[label]:
                    if os.path.basename(f) not in present:
                        with xr.open_dataset(f) as ds:
                            self.missing.append((label, ds[CONCAT].values))
            if not self.missing:
                fail(f"--full {full}: every file is also in {input_dir}")
            have, _ = members_of(input_dir, attr)
        else:
            have = members
        self.nfiles = sum(len(v) for v in have.values())
        # Data variables without time in the files (xarray repeats them along it).
        with xr.open_dataset(members[self.labels[0]][0], decode_coords="all") as one:
            self.static = {n for n in one.data_vars if CONCAT not in one[n].dims}
        ref = drop_ignored(open_reference(members, self.labels, dim).load())
        if self.missing:
            ref = expect_missing(ref, self.missing, dim, self.static)
        self.ds = ref
        self.raw = open_raw_members(have, self.labels)

    def compare(self, store):
        """Every check above; raises Failure on the first difference."""
        t0 = time.monotonic()
        ref, dim = self.ds, self.dim
        out = drop_ignored(xr.open_zarr(store, consolidated=False, decode_coords="all", chunks=None).load())
        check_zarr_python(store, ref, dim, self.labels)
        check_dims(ref, out, dim, self.static)
        check_coords(ref, out, dim, self.labels)
        check_values(ref, out, dim, self.static)
        check_raw(self.raw, self.labels, store, dim, self.missing)
        check_attrs(ref, out, dim)
        check_encoding(ref, out)
        return (f"{len(self.labels)} x {out.sizes.get(CONCAT, 0)} ({dim} x {CONCAT}) from {self.nfiles} files,"
                f" {len(ref.data_vars)} data variables, {len(self.missing)} missing files,"
                f" {time.monotonic() - t0:.1f} s")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("store", nargs="+", help="one or more stores, then INPUT_DIR")
    p.add_argument("--dim", default="member")
    p.add_argument("--attr", default="variant_label")
    p.add_argument("--full", help="the complete set INPUT_DIR lacks files of (--allow-missing)")
    a = p.parse_args()
    if len(a.store) < 2:
        p.error("expected STORE [STORE...] INPUT_DIR")
    *stores, input_dir = a.store
    failed = False

    def attempt(what, f):
        try:
            return f()
        except Failure as e:
            print(f"FAIL {what} vs {input_dir}: {e}", file=sys.stderr)
        except Exception as e:  # noqa: BLE001 - an unreadable store or source is a failure too
            print(f"FAIL {what} vs {input_dir}: {type(e).__name__}: {e}", file=sys.stderr)
        return None

    ref = attempt("reference", lambda: Reference(input_dir, a.dim, a.attr, a.full))
    if ref is None:
        sys.exit(1)
    for store in stores:
        summary = attempt(store, lambda: ref.compare(store))
        if summary is None:
            failed = True
        else:
            print(f"ok {store} == {summary}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
