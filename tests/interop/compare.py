"""Compare a Zarr store written by zarrforge with its netCDF source through xarray.

usage: compare.py SOURCE.nc STORE

STORE is a directory, an s3:// URL or, from Python (compare_file), any
zarr-python store such as an Icechunk session's store.

Checks, for the root group and each nested group:
  * raw (decode_cf=False): xarray.testing.assert_identical, plus equal dtypes;
  * CF-decoded: assert_identical, except that a packed variable may decode to
    float64 from Zarr where netCDF4 gives float32 (JSON attributes carry no
    float32 type; xarray picks the unpacked dtype from the scale_factor type);
    those are compared with values converted to float64 after the same
    computation in float32 on both sides.
  * zarr-python opens every array and its values equal netCDF4's raw values.
Exit status 1 with a readable diff on the first failure.
"""
import sys
import warnings

import netCDF4
import numpy as np
import xarray as xr
import zarr


def storage_options(store):
    """fsspec options for an s3:// store (the test server's endpoint and
    keys, from ZF_S3_ENDPOINT and the AWS_* variables); none for a path."""
    import os
    if not str(store).startswith("s3://"):
        return {}
    return {"storage_options": {
        "endpoint_url": os.environ["ZF_S3_ENDPOINT"],
        "key": os.environ["AWS_ACCESS_KEY_ID"],
        "secret": os.environ["AWS_SECRET_ACCESS_KEY"],
        "client_kwargs": {"region_name": "us-east-1"},
    }}

warnings.filterwarnings("ignore")


def groups_of(nc_path):
    out = []

    def walk(g, prefix):
        for name, child in g.groups.items():
            path = f"{prefix}/{name}" if prefix else name
            out.append(path)
            walk(child, path)

    with netCDF4.Dataset(nc_path) as ds:
        walk(ds, "")
    return out


def check_dtypes(a, b, what):
    text = set("UOT")  # variable-length text: numpy str, object or StringDType
    for name in a.variables:
        if a[name].dtype.kind in text and b[name].dtype.kind in text:
            continue
        if a[name].dtype != b[name].dtype:
            raise AssertionError(f"{what}: dtype of {name}: source {a[name].dtype} store {b[name].dtype}")


def open_store(store, **kw):
    """xarray.open_zarr of a directory or s3:// URL (consolidated metadata if
    the store has it) or of a store object (an Icechunk session's store has
    no consolidated metadata)."""
    if isinstance(store, str):
        return xr.open_zarr(store, consolidated=None, **kw, **storage_options(store))
    return xr.open_zarr(store, consolidated=False, **kw)


def store_format(store):
    import os
    if not isinstance(store, str) or store.startswith("s3://"):
        return zarr.open_group(store, mode="r", **storage_options(store)).metadata.zarr_format
    return 3 if os.path.exists(os.path.join(store, "zarr.json")) else 2


def fill_is_exact(value, dtype):
    """Whether a _FillValue is exactly representable in the variable's dtype."""
    v = np.asarray(value).ravel()
    if v.size != 1:
        return False
    if dtype.kind in "SUO":
        return True
    try:
        with np.errstate(all="ignore"):
            cast = v.astype(dtype)
    except (ValueError, OverflowError):
        return False
    if v.dtype.kind == "f" and np.isnan(v[0]):
        return dtype.kind == "f"
    return bool(cast.astype(v.dtype)[0] == v[0])


def documented(src_raw, out_raw, fmt):
    """The differences zarrforge documents and warns about (docs/errors.md,
    "What is changed on the way to Zarr"), removed from both raw datasets;
    returns the names of string/char variables whose fill lives only in the
    array's fill_value (decoded values then keep the fill unmasked)."""
    unmasked = set()
    for name in list(src_raw.variables):
        if name not in out_raw.variables:
            continue
        s, o = src_raw[name], out_raw[name]
        # Enum variables: the mapping is kept as attributes.
        meta = getattr(s.encoding.get("dtype"), "metadata", None) or {}
        if "enum" in meta and "enum" in o.attrs:
            if o.attrs.get("enum") == dict(meta["enum"]) and o.attrs.get("enum_name") == meta.get("enum_name"):
                o.attrs.pop("enum")
                o.attrs.pop("enum_name")
        if "_FillValue" in s.attrs and "_FillValue" not in o.attrs:
            fv = s.attrs["_FillValue"]
            if not fill_is_exact(fv, s.dtype):
                s.attrs.pop("_FillValue")
            elif fmt == 3 and s.dtype.kind in "SUO":
                s.attrs.pop("_FillValue")
                unmasked.add(name)
    return unmasked


def load(ds):
    """Loads every value and closes the file."""
    with ds:
        return ds.load()


def as_is(ds):
    return ds


def compare_group(nc_path, store, group, expect=as_is):
    """EXPECT turns the source dataset (raw, then decoded) into what the
    store should hold (e.g. nonfinite.strict_attrs)."""
    kw = {} if group is None else {"group": group}
    label = f"{nc_path} vs {store}" + (f" group {group}" if group else "")
    # Each source is loaded and closed at once: netCDF4 is opened again below,
    # and HDF5 must not see a handle that xarray's file cache still holds.
    src = expect(load(xr.open_dataset(nc_path, decode_cf=False, **kw)))
    out = load(open_store(store, decode_cf=False, chunks=None, **kw))
    unmasked = documented(src, out, store_format(store))
    xr.testing.assert_identical(src, out)
    check_dtypes(src, out, label + " (raw)")

    src = expect(load(xr.open_dataset(nc_path, **kw)))
    out = load(open_store(store, chunks=None, **kw))
    documented(src, out, store_format(store))
    for name in unmasked:
        # The fill of a text variable is not masked in a v3 store: compare
        # with the source decoded without its mask.
        raw = load(xr.open_dataset(nc_path, mask_and_scale=False, **kw))[name]
        raw.attrs.pop("_FillValue", None)
        src[name] = raw
        out[name].attrs.pop("_FillValue", None)
    # Decoded packed data: netCDF4 gives float32 when scale_factor is float32.
    for name in list(src.variables):
        s, o = src[name], out[name]
        if s.dtype != o.dtype and s.dtype.kind == "f" and o.dtype.kind == "f":
            raw = load(xr.open_dataset(nc_path, decode_cf=False, **kw))[name]
            sf = raw.attrs.get("scale_factor", 1)
            ao = raw.attrs.get("add_offset", 0)
            if "scale_factor" not in raw.attrs and "add_offset" not in raw.attrs:
                raise AssertionError(f"{label}: decoded dtype of {name}: {s.dtype} vs {o.dtype}")
            sf = abs(float(np.asarray(sf).ravel()[0]))
            ao = abs(float(np.asarray(ao).ravel()[0]))
            # The source side is computed in float32: raw * scale_factor +
            # add_offset rounds each term, so its absolute error is up to about
            # a float32 epsilon of |raw * scale_factor| + |add_offset|, which
            # dominates when the result is small next to add_offset.
            span = sf * float(np.nanmax(np.abs(raw.values.astype("f8")), initial=0))
            atol = sf * 1e-3 + 1e-12 * ao + np.finfo(s.dtype).eps * (span + ao)
            np.testing.assert_allclose(o.values, s.values.astype(o.dtype), rtol=1e-6, equal_nan=True,
                                       atol=atol)
            out[name] = s.variable
    xr.testing.assert_identical(src, out)


def compare_zarr_python(nc_path, store):
    root = zarr.open_group(store, mode="r", **storage_options(store))
    with netCDF4.Dataset(nc_path) as ds:
        ds.set_auto_maskandscale(False)
        # Raw chars, as xarray reads them: with an _Encoding attribute netCDF4
        # would otherwise join char arrays into strings (one dim fewer).
        ds.set_auto_chartostring(False)

        def walk(g, zg, prefix):
            for name, v in g.variables.items():
                arr = zg[name]
                want = v[...]
                got = arr[...]
                if v.dtype == str:
                    want = np.asarray(want, dtype=object)
                    got = np.asarray(got, dtype=object)
                    if want.shape != got.shape or not all(a == b for a, b in zip(want.ravel(), got.ravel())):
                        raise AssertionError(f"{prefix}{name}: strings differ")
                    continue
                want = np.asarray(want)
                if want.dtype.kind == "S":
                    got = np.asarray(got).astype("S1")
                if want.shape != got.shape:
                    raise AssertionError(f"{prefix}{name}: shape {want.shape} vs {got.shape}")
                if not np.array_equal(want, got, equal_nan=want.dtype.kind == "f"):
                    raise AssertionError(f"{prefix}{name}: values differ")
            for name, child in g.groups.items():
                walk(child, zg[name], f"{prefix}{name}/")

        walk(ds, root, "")


def compare_file(nc_path, store, expect=as_is):
    """Every check above, on the root group and each nested group; raises
    AssertionError with a diff on the first failure."""
    compare_group(nc_path, store, None, expect)
    for g in groups_of(nc_path):
        compare_group(nc_path, store, g, expect)
    compare_zarr_python(nc_path, store)


def main():
    nc_path, store = sys.argv[1], sys.argv[2]
    compare_file(nc_path, store)
    print(f"ok {nc_path} == {store}")


if __name__ == "__main__":
    main()
