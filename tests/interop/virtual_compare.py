"""Compare a virtual dataset (zarrforge convert --virtual) with its netCDF sources.

usage: virtual_compare.py OUTPUT SOURCE... [--concat-dim D] [--icechunk] [--container PREFIX ...] [--ref BRANCH]

OUTPUT is an Icechunk repository (a directory or s3://BUCKET/PREFIX; with
--icechunk, or found by itself when OUTPUT is a directory) or a kerchunk
version-1 JSON file of references (anything else). The Icechunk repository
is opened with access to every virtual chunk container its config declares
(and every --container PREFIX: normally not needed): file:// prefixes with
icechunk.Credentials.LocalFileSystemAccess(), s3:// ones with credentials
from the environment; then a read-only session on BRANCH (default main) and
xr.open_zarr(session.store, consolidated=False). The JSON is opened with
xr.open_dataset("reference://", engine="zarr") through fsspec's reference
filesystem.

The sources are what xarray makes of them: one file with open_dataset,
several with open_mfdataset(combine="nested", concat_dim=D) in command-line
order (D defaults to time; variables without D are taken from the first
file). Checks, every difference reported:
  * the same variables and coordinates, the same global attributes
    (history aside: the converter adds a line to it);
  * CF-decoded, every variable: dims, shape, dtype, values (exact, NaN and
    NaT equal to themselves), attributes, and the CF encoding xarray read
    (_FillValue, missing_value, scale_factor, add_offset, units, calendar,
    the stored dtype). A packed float32 variable may decode to float64 from
    Zarr (JSON attributes carry no float32 type; docs/errors.md): then its
    values must equal the sources decoded in float64, exactly. A time
    coordinate (units "... since ...") must carry the units of the file
    whose first step is earliest (the materialized time is re-encoded to
    that one unit) and the sources' calendar;
  * raw (decode_cf=False), every variable but the time-like ones: dims,
    dtype (byte order aside), attributes, and values equal to netCDF4's raw
    values (no masking or scaling) concatenated along D, so that a lost
    scale_factor or fill value shows. A variable whose packing attributes
    (_FillValue, missing_value, scale_factor, add_offset) differ between the
    files has no single raw form: a note says its raw values were skipped.
One line per difference on stdout and exit status 1; "ok N variables" and
exit status 0 when all is equal; 2 for bad usage. HDF5 filter plugins: the
netCDF4 wheel's and hdf5plugin's (when installed) are put on
HDF5_PLUGIN_PATH, so sources with lz4 or bitshuffle chunks open too.
"""
import argparse
import importlib.util
import os
import sys
import types
import warnings


def plugin_path():
    """netCDF4's bundled filter plugins and hdf5plugin's, ahead of any
    HDF5_PLUGIN_PATH already set (netCDF4 sets its own only when unset)."""
    dirs = []
    for pkg in ("netCDF4", "hdf5plugin"):
        spec = importlib.util.find_spec(pkg)
        if spec is not None and spec.origin:
            d = os.path.join(os.path.dirname(spec.origin), "plugins")
            if os.path.isdir(d):
                dirs.append(d)
    if os.environ.get("HDF5_PLUGIN_PATH"):
        dirs.append(os.environ["HDF5_PLUGIN_PATH"])
    return ":".join(dirs)


# Before netCDF4 (imported by compare_multifile) initializes its HDF5.
os.environ["HDF5_PLUGIN_PATH"] = plugin_path()

import netCDF4  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

from compare_multifile import attr_equal, attrs_diff  # noqa: E402

warnings.filterwarnings("ignore")

PACKING = ("_FillValue", "missing_value", "scale_factor", "add_offset")
ENCODING_KEYS = PACKING + ("units", "calendar", "dtype")
IGNORED_GLOBAL_ATTRS = ("history",)


class Output:
    """The output dataset, opened decoded or raw."""

    def __init__(self, args):
        self.args = args
        self.store = None
        if args.icechunk:
            self.store = icechunk_store(args)

    def open(self, **kw):
        if self.store is not None:
            return xr.open_zarr(self.store, consolidated=False, chunks=None, **kw)
        return xr.open_dataset(
            "reference://", engine="zarr", chunks=None,
            backend_kwargs={"consolidated": False,
                            "storage_options": {"fo": os.path.abspath(self.args.output)}},
            **kw)


def credentials_for(prefix):
    import icechunk
    if prefix.startswith("file://"):
        return icechunk.Credentials.LocalFileSystemAccess()
    if prefix.startswith("s3://"):
        return icechunk.s3_credentials(from_env=True)
    return None  # http, gcs, az: the defaults (icechunk may warn)


def icechunk_store(args):
    """A read-only session's store on BRANCH, every container authorized."""
    import icechunk
    from icechunk_compare import storage_of
    icechunk.set_logs_filter(os.environ.get("ICECHUNK_LOG", "error"))
    storage = storage_of(types.SimpleNamespace(repo=args.output, bucket=None, prefix=None,
                                               s3_endpoint=None))
    config = icechunk.Repository.fetch_config(storage)
    prefixes = set(args.container or [])
    if config is not None and config.virtual_chunk_containers:
        prefixes |= {c.url_prefix for c in config.virtual_chunk_containers.values()}
    access = icechunk.containers_credentials({p: credentials_for(p) for p in sorted(prefixes)})
    repo = icechunk.Repository.open(storage, authorize_virtual_chunk_access=access)
    return repo.readonly_session(branch=args.ref).store


class Report:
    def __init__(self):
        self.lines = []

    def __call__(self, line):
        self.lines.append(line)


def is_time_like(var):
    units = var.attrs.get("units", var.encoding.get("units"))
    return isinstance(units, str) and " since " in units


def normal(dtype):
    """A dtype without its byte order (u10 is big-endian in the source)."""
    dtype = np.dtype(dtype)
    return dtype.newbyteorder("=") if dtype.byteorder in "<>" else dtype


def value_diff(want, got):
    """'' when equal (NaN, NaT equal to themselves), else how they differ."""
    want, got = np.asarray(want), np.asarray(got)
    if want.shape != got.shape:
        return f"shape: source {want.shape} != output {got.shape}"
    if want.dtype.kind in "SUOT" or got.dtype.kind in "SUOT":
        same = want.tolist() == got.tolist()
        return "" if same else "values differ (text or objects)"
    if want.dtype.kind in "mM" or got.dtype.kind in "mM":
        if want.dtype.kind != got.dtype.kind:
            return f"values: source {want.dtype} != output {got.dtype}"
        want, got = want.astype("M8[ns]" if want.dtype.kind == "M" else "m8[ns]"), \
            got.astype("M8[ns]" if got.dtype.kind == "M" else "m8[ns]")
        equal = (want == got) | (np.isnat(want) & np.isnat(got))
    elif want.dtype.kind in "fc" and got.dtype.kind in "fc":
        equal = (want == got) | (np.isnan(want) & np.isnan(got))
    else:
        equal = want == got
    equal = np.asarray(equal)
    if equal.all():
        return ""
    bad = np.argwhere(~equal) if equal.ndim else np.zeros((1, 0), int)
    where = tuple(int(i) for i in bad[0])
    return (f"values differ in {len(bad)} of {want.size} elements; first at {where}:"
            f" source {want[where]!r} output {got[where]!r}")


def open_sources(args, **kw):
    if len(args.sources) == 1:
        return xr.open_dataset(args.sources[0], engine="netcdf4", **kw)
    return xr.open_mfdataset(args.sources, engine="netcdf4", combine="nested",
                             concat_dim=args.concat_dim, data_vars="minimal", coords="minimal",
                             compat="override", join="override", combine_attrs="override",
                             parallel=False, **kw)


def widened(args):
    """The sources decoded with float64 packing attributes, file by file:
    what a reader of JSON attributes computes."""
    def preprocess(ds):
        for v in ds.variables.values():
            for k in ("scale_factor", "add_offset"):
                if k in v.attrs:
                    v.attrs[k] = np.float64(np.asarray(v.attrs[k]).ravel()[0])
        return xr.decode_cf(ds)
    if len(args.sources) == 1:
        with xr.open_dataset(args.sources[0], engine="netcdf4", decode_cf=False) as ds:
            return preprocess(ds.load())
    return open_sources(args, decode_cf=False, preprocess=preprocess).load()


def time_first_units(args, name):
    """(units, calendar) of NAME in the file whose first step is earliest."""
    best = None
    for path in args.sources:
        with netCDF4.Dataset(path) as nc:
            if name not in nc.variables or nc[name].size == 0:
                continue
            v = nc[name]
            units, cal = v.getncattr("units"), getattr(v, "calendar", "standard")
            first = netCDF4.num2date(np.asarray(v[0]).item(), units, cal)
            if best is None or first < best[0]:
                best = (first, units, getattr(v, "calendar", None))
    return (best[1], best[2]) if best else (None, None)


def netcdf_raw(args, name, dims):
    """NAME's raw values (no masking, scaling or char joining) over the
    sources, concatenated along D; None when the packing attributes differ
    between the files (no single raw array exists)."""
    arrays, packing = [], set()
    files = args.sources if args.concat_dim in dims else args.sources[:1]
    for path in files:
        with netCDF4.Dataset(path) as nc:
            v = nc[name]
            v.set_auto_maskandscale(False)
            v.set_auto_chartostring(False)
            packing.add(tuple((k, repr(np.asarray(v.getncattr(k)).tolist()))
                              for k in PACKING if k in v.ncattrs()))
            arrays.append(np.asarray(v[...]))
    if len(packing) > 1:
        return None
    if len(arrays) == 1:
        return arrays[0]
    return np.concatenate(arrays, axis=dims.index(args.concat_dim))


def undefined_vars(args):
    """Variables whose values are undefined where never written: HDF5
    datasets with fill time NEVER (netCDF-C's NC_NOFILL) and chunks left
    unallocated. Any two reads of them may differ (HDF5 leaves the reader's
    buffer as it was), so their values are not compared."""
    try:
        import h5py
    except ImportError:
        return set()
    out = set()
    for path in args.sources:
        try:
            f = h5py.File(path, "r")
        except OSError:
            continue  # netCDF-3: every value is written or filled
        with f:
            def visit(name, obj):
                if not isinstance(obj, h5py.Dataset):
                    return
                try:
                    never = obj.id.get_create_plist().get_fill_time() == h5py.h5d.FILL_TIME_NEVER
                    partial = obj.id.get_storage_size() < obj.size * obj.dtype.itemsize
                except Exception:  # noqa: BLE001 - a type h5py cannot size
                    return
                if never and partial:
                    out.add(name)
            f.visititems(visit)
    return out


def check_decoded(args, src, out, say):
    src_names, out_names = set(src.variables), set(out.variables)
    for n in sorted(src_names - out_names):
        say(f"{n}: missing in output")
    for n in sorted(out_names - src_names):
        say(f"{n}: only in output")
    if set(src.coords) != set(out.coords):
        say(f"coordinates: source {sorted(src.coords)} != output {sorted(out.coords)}")
    sa = {k: v for k, v in src.attrs.items() if k not in IGNORED_GLOBAL_ATTRS}
    oa = {k: v for k, v in out.attrs.items() if k not in IGNORED_GLOBAL_ATTRS}
    for line in filter(None, attrs_diff(sa, oa).split("\n")):
        say(f"(global attributes): {line.strip()}")
    wide = None
    for name in sorted(src_names & out_names):
        s, o = src[name].variable, out[name].variable
        if s.dims != o.dims:
            say(f"{name}: dims: source {s.dims} != output {o.dims}")
            continue
        if name in args.undefined:
            print(f"note: {name}: never written and without fill (NC_NOFILL): its values are"
                  " undefined, not compared", file=sys.stderr)
            for line in filter(None, attrs_diff(s.attrs, o.attrs).split("\n")):
                say(f"{name}: attribute {line.strip()}")
            continue
        want = s.values
        packed = any(k in s.encoding for k in ("scale_factor", "add_offset"))
        if normal(s.dtype) != normal(o.dtype):
            if packed and s.dtype == np.float32 and o.dtype == np.float64:
                if wide is None:
                    wide = widened(args)
                want = wide[name].values  # JSON attributes: float64 decoding
            else:
                say(f"{name}: decoded dtype: source {s.dtype} != output {o.dtype}")
                continue
        diff = value_diff(want, o.values)
        if diff:
            say(f"{name}: decoded {diff}")
        for line in filter(None, attrs_diff(s.attrs, o.attrs).split("\n")):
            say(f"{name}: attribute {line.strip()}")
        check_encoding(args, name, s, o, say)


def check_encoding(args, name, s, o, say):
    se, oe = dict(s.encoding), dict(o.encoding)
    if is_time_like(s) and len(args.sources) > 1:
        units, calendar = time_first_units(args, name)
        se["units"] = units
        if calendar is not None:
            se["calendar"] = calendar
    for k in ENCODING_KEYS:
        a, b = se.get(k), oe.get(k)
        if a is None and b is None:
            continue
        if k == "dtype":
            if a is not None and b is not None and normal(a) == normal(b):
                continue
        elif a is not None and b is not None and attr_equal(a, b):
            continue
        say(f"{name}: encoding {k}: source {a!r} != output {b!r}")


def check_raw(args, src_raw, out_raw, say):
    for name in sorted(set(src_raw.variables) & set(out_raw.variables)):
        s, o = src_raw[name].variable, out_raw[name].variable
        if is_time_like(s) or is_time_like(o):
            continue  # re-encoded to one unit: compared decoded
        if s.dims != o.dims:
            say(f"{name}: raw dims: source {s.dims} != output {o.dims}")
            continue
        if normal(s.dtype) != normal(o.dtype):
            say(f"{name}: raw dtype: source {s.dtype} != output {o.dtype}")
        for line in filter(None, attrs_diff(s.attrs, o.attrs).split("\n")):
            say(f"{name}: raw attribute {line.strip()}")
        if name in args.undefined:
            continue
        want = netcdf_raw(args, name, s.dims)
        if want is None:
            print(f"note: {name}: packing attributes differ between the files;"
                  " raw values not compared (decoded values are)", file=sys.stderr)
            continue
        diff = value_diff(want, o.values)
        if diff:
            say(f"{name}: raw {diff}")


def parse_args(argv):
    p = argparse.ArgumentParser(usage=__doc__.split("\n\n")[1].removeprefix("usage: "),
                                description=__doc__.split("\n\n", 2)[2],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("output")
    p.add_argument("sources", nargs="+")
    p.add_argument("--concat-dim", default="time")
    p.add_argument("--icechunk", action="store_true")
    p.add_argument("--container", action="append", nargs="+", default=None,
                   help="virtual chunk container prefix to authorize (repeatable)")
    p.add_argument("--ref", default="main", help="Icechunk branch (default main)")
    args = p.parse_args(argv)
    if args.container:
        args.container = [c for group in args.container for c in group]
    if not args.icechunk and (os.path.isdir(args.output) or args.output.startswith("s3://")):
        args.icechunk = True
    return args


def main():
    args = parse_args(sys.argv[1:])
    args.undefined = undefined_vars(args)
    say = Report()
    try:
        output = Output(args)
        with open_sources(args) as src, output.open() as out:
            src, out = src.load(), out.load()
            check_decoded(args, src, out, say)
            n = len(src.variables)
        with open_sources(args, decode_cf=False) as src_raw, output.open(decode_cf=False) as out_raw:
            check_raw(args, src_raw.load(), out_raw.load(), say)
    except Exception as e:  # noqa: BLE001 - an unreadable output or source is a mismatch too
        say(f"cannot compare: {type(e).__name__}: {e}")
    for line in say.lines:
        print(line)
    if say.lines:
        sys.exit(1)
    print(f"ok {n} variables")


if __name__ == "__main__":
    main()
