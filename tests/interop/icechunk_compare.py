"""Compare an Icechunk repository written by zarrforge with its netCDF source(s).

usage: icechunk_compare.py REPO [SOURCE.nc ...] [--ref REF] [--history] [--attrs-json strict|python]
       icechunk_compare.py --bucket B --prefix P [--s3-endpoint URL] [SOURCE.nc ...] [--ref ...]

REPO is a directory or s3://BUCKET/PREFIX; --bucket/--prefix name an S3
repository instead (every positional argument is then a source). S3 settings:
--s3-endpoint (else ZF_S3_ENDPOINT, AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL; none for AWS;
an http:// endpoint is allowed, with path-style requests), keys from
AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (else the usual AWS environment),
region from AWS_REGION or AWS_DEFAULT_REGION (default us-east-1).

REF is a branch, a tag or a snapshot id, tried in that order (default main).
The repository is read through a read-only session at that snapshot:
  * one source: tests/interop/compare.py's checks (compare_file: raw and
    CF-decoded xarray, every group, dtypes, zarr-python values against
    netCDF4);
  * several: tests/interop/compare_multifile.py's checks (open_mfdataset by
    coordinates along time; compare_files), and zarr-python reads every array,
    its values equal to the sources' raw ones (time and its bounds aside: they
    are re-encoded to one unit);
  * either way, every attribute present on both sides has the same type on
    both (text, integer, float, bool; a list of the same), raw datasets,
    _FillValue aside (it takes the array's dtype in Zarr).
NaN and infinite float attributes are expected as the strings "NaN",
"Infinity", "-Infinity" (--attrs-json strict, the default: Icechunk refuses
a zarr.json with bare NaN tokens), or as floats with --attrs-json python.
--history prints the ancestry of REF, newest first, one snapshot a line:
  ID  WRITTEN_AT  [refs]  MESSAGE  METADATA (JSON; text over 200 characters
  shown as its length)
With --history and no source, only the history is printed.

Exit status 0 when equal, 1 with a diff on the first difference (or when the
repository or REF cannot be opened), 2 for bad usage. Icechunk's own log is
set to errors only unless ICECHUNK_LOG says otherwise.
"""
import argparse
import json
import os
import sys
import warnings

import icechunk
import numpy as np
import xarray as xr
import zarr

import compare
import compare_multifile
import nonfinite
from compare_multifile import Failure

warnings.filterwarnings("ignore")


def storage_of(args):
    """The icechunk Storage of REPO or of --bucket/--prefix."""
    bucket, prefix = args.bucket, args.prefix
    if bucket is None and args.repo.startswith("s3://"):
        bucket, _, prefix = args.repo[len("s3://"):].partition("/")
    if bucket is None:
        return icechunk.local_filesystem_storage(os.path.abspath(args.repo))
    endpoint = args.s3_endpoint or next(
        (os.environ[k] for k in ("ZF_S3_ENDPOINT", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL") if os.environ.get(k)), None)
    keys = {"from_env": True}
    if os.environ.get("AWS_ACCESS_KEY_ID") and os.environ.get("AWS_SECRET_ACCESS_KEY"):
        keys = {"access_key_id": os.environ["AWS_ACCESS_KEY_ID"],
                "secret_access_key": os.environ["AWS_SECRET_ACCESS_KEY"],
                "session_token": os.environ.get("AWS_SESSION_TOKEN")}
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    return icechunk.s3_storage(
        bucket=bucket, prefix=prefix or None, region=region, endpoint_url=endpoint,
        allow_http=bool(endpoint and endpoint.startswith("http://")),
        force_path_style=endpoint is not None, **keys)


def resolve(repo, ref):
    """(kind, snapshot id) of REF: a branch, else a tag, else a snapshot id."""
    for kind, lookup in (("branch", repo.lookup_branch), ("tag", repo.lookup_tag)):
        try:
            return kind, lookup(ref)
        except icechunk.IcechunkError:
            pass
    try:
        return "snapshot", repo.lookup_snapshot(ref).id
    except icechunk.IcechunkError:
        pass
    raise Failure(f"{ref!r} is neither a branch ({sorted(repo.list_branches())}), a tag"
                  f" ({sorted(repo.list_tags())}) nor a snapshot id of the repository")


def short(value, limit=200):
    """A metadata value for one history line: long text (zarrforge.state)
    as its length."""
    if isinstance(value, str) and len(value) > limit:
        return f"<{len(value)} characters>"
    return value


def print_history(repo, snapshot_id):
    refs = {}
    for b in sorted(repo.list_branches()):
        refs.setdefault(repo.lookup_branch(b), []).append(b)
    for t in sorted(repo.list_tags()):
        refs.setdefault(repo.lookup_tag(t), []).append(f"tag:{t}")
    for snap in repo.ancestry(snapshot_id=snapshot_id):
        names = f"[{','.join(refs[snap.id])}]" if snap.id in refs else "[]"
        meta = json.dumps({k: short(v) for k, v in snap.metadata.items()}, sort_keys=True, default=str)
        print(f"{snap.id}  {snap.written_at.isoformat()}  {names}  {snap.message!r}  {meta}")


def attr_kind(value):
    """The JSON-level type of an attribute value: text, int, float, bool, or
    a list of those ('[float]'); numpy widths do not count (a float32 netCDF
    attribute is a float in JSON)."""
    if isinstance(value, (str, bytes, np.str_, np.bytes_)):
        return "text"
    if isinstance(value, (list, tuple, np.ndarray)) and np.ndim(value) > 0:
        items = value.tolist() if isinstance(value, np.ndarray) else list(value)
        return "[" + ",".join(sorted({attr_kind(x) for x in items})) + "]"
    if isinstance(value, (bool, np.bool_)):
        return "bool"
    if isinstance(value, (int, np.integer)):
        return "int"
    if isinstance(value, (float, np.floating)):
        return "float"
    return type(value).__name__


def check_attr_types(src, out, label):
    """Every attribute on both sides (global and per variable) has one kind;
    _FillValue aside: in Zarr it is the array's fill_value, of the array's
    dtype (a double -999 fill on an int becomes an int: docs/errors.md)."""
    lines = []
    for name in [None] + sorted(set(src.variables) & set(out.variables)):
        sa = src.attrs if name is None else src[name].attrs
        oa = out.attrs if name is None else out[name].attrs
        for k in sorted(set(sa) & set(oa) - {"_FillValue"}):
            if attr_kind(sa[k]) != attr_kind(oa[k]):
                lines.append(f"  {name or '(global)'}.{k}: source {attr_kind(sa[k])} {sa[k]!r}"
                             f" != store {attr_kind(oa[k])} {oa[k]!r}")
    if lines:
        raise Failure(f"{label}: attribute types differ:\n" + "\n".join(lines))


def compare_one(source, store, expect):
    compare.compare_file(source, store, expect)
    for group in [None] + compare.groups_of(source):
        kw = {} if group is None else {"group": group}
        src = expect(compare.load(xr.open_dataset(source, decode_cf=False, **kw)))
        out = compare.load(compare.open_store(store, decode_cf=False, chunks=None, **kw))
        check_attr_types(src, out, "raw" + (f" group {group}" if group else ""))


def check_zarr_values(store, src_raw):
    """zarr-python reads every array; values equal the raw sources' (but for
    time and its bounds, re-encoded on the way)."""
    root = zarr.open_group(store, mode="r")
    skip = compare_multifile.time_bounds_names(src_raw)
    for name, arr in root.arrays():
        got = arr[...]
        if name in skip or name not in src_raw.variables:
            continue
        want = src_raw[name].values
        if want.dtype.kind in "UOT" or got.dtype.kind in "UOT":
            same = want.shape == got.shape and want.tolist() == np.asarray(got).tolist()
        else:
            same = np.array_equal(want, got, equal_nan=want.dtype.kind in "fc")
        if not same:
            raise Failure(f"zarr-python: values of {name} differ from the sources'")


def compare_several(sources, store, expect):
    src_raw, out_raw, summary = compare_multifile.compare_files(store, sources, expect)
    check_zarr_values(store, src_raw)
    check_attr_types(src_raw, out_raw, "raw")
    return summary


def versus(sources):
    """What the repository is compared with, for the FAIL line."""
    if not sources:
        return ""
    return f" vs {sources[0]}" if len(sources) == 1 else f" vs {len(sources)} files"


def parse_args(argv):
    p = argparse.ArgumentParser(usage=__doc__.split("\n\n")[1].removeprefix("usage: "),
                                description=__doc__.split("\n\n", 2)[2],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="*")
    p.add_argument("--ref", default="main")
    p.add_argument("--history", action="store_true")
    p.add_argument("--attrs-json", choices=("strict", "python"), default="strict")
    p.add_argument("--s3-endpoint")
    p.add_argument("--bucket")
    p.add_argument("--prefix")
    args = p.parse_args(argv)
    if args.bucket is None:
        if not args.paths:
            p.error("REPO is missing")
        args.repo, args.sources = args.paths[0], args.paths[1:]
    else:
        args.repo, args.sources = f"s3://{args.bucket}/{args.prefix or ''}", args.paths
    if not args.sources and not args.history:
        p.error("no SOURCE.nc (give one or more, or --history)")
    return args


def main():
    args = parse_args(sys.argv[1:])
    icechunk.set_logs_filter(os.environ.get("ICECHUNK_LOG", "error"))
    where = [f"{args.repo}@{args.ref}"]

    def checks():
        repo = icechunk.Repository.open(storage_of(args))
        kind, snapshot_id = resolve(repo, args.ref)
        where.append(f"({kind}, snapshot {snapshot_id})")
        if args.history:
            print_history(repo, snapshot_id)
        if not args.sources:
            return None
        store = repo.readonly_session(snapshot_id=snapshot_id).store
        expect = nonfinite.strict_attrs if args.attrs_json == "strict" else compare.as_is
        if len(args.sources) == 1:
            compare_one(args.sources[0], store, expect)
            return args.sources[0]
        return f"{len(args.sources)} files ({compare_several(args.sources, store, expect)})"

    compare_multifile.report(checks, lambda: " ".join(where), versus(args.sources))


if __name__ == "__main__":
    main()
