"""Self-test of icechunk_compare.py, without zarrforge: Icechunk repositories
written from Python must pass, and fail once a value is changed.

usage: icechunk_selftest.py WORKDIR [ZARR_STORE SOURCE.nc ...]

In WORKDIR (created):
  1. fixtures from make_fixtures.py (cf_time.nc, numeric_types.nc, packed.nc)
     and a 12-file series from make_multifile.py, each written raw by xarray
     (icechunk.xarray.to_icechunk) into its own repository, committed on
     main with metadata and tagged "converted";
  2. icechunk_compare.py passes on each at main (and prints --history);
  3. a second commit changes one value: the compare fails at main and
     passes at the tag and at the first snapshot id (time travel); an
     integer attribute stored as the equal float (branch "retyped" of
     attributes.nc's repository) fails;
  4. a repository made of the keys of each ZARR_STORE given (a Zarr
     directory written by zarrforge, copied key by key: the bytes the Rust
     writer stores) passes against the SOURCE.nc files that follow it; the
     pairs are separated by "--". Stores with NaN or infinite attributes
     must be converted with --attrs-json strict (Icechunk refuses bare NaN
     tokens in zarr.json).
  5. cf_time.nc through xarray into a repository on moto's S3 server
     (moto_server of this venv, a free port on 127.0.0.1), compared through
     --s3-endpoint/--bucket/--prefix and through s3://BUCKET/PREFIX.
Prints one line a check and "N passed, N failed"; exit 1 if any failed.
"""
import glob
import os
import shutil
import subprocess
import sys
import warnings

import icechunk
import numpy as np
import xarray as xr
import zarr
from icechunk.xarray import to_icechunk
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync

import compare_multifile

HERE = os.path.dirname(os.path.abspath(__file__))
warnings.filterwarnings("ignore")
icechunk.set_logs_filter(os.environ.get("ICECHUNK_LOG", "error"))
results = []


def create(path):
    """A new repository: a directory (emptied first) or an icechunk Storage."""
    if isinstance(path, str):
        shutil.rmtree(path, ignore_errors=True)
        path = icechunk.local_filesystem_storage(path)
    return icechunk.Repository.create(path)


def write_xarray(path, sources):
    """SOURCES through xarray into a new repository, raw (values and
    attributes as stored; several files combined as compare_multifile.py
    does, time re-encoded to the units of the earliest file); returns the
    snapshot id."""
    if len(sources) == 1:
        ds = xr.open_dataset(sources[0], decode_cf=False)
        time_encoding = None
    else:
        ds, info = compare_multifile.open_source_raw(sources)
        first_attrs = compare_multifile.time_first(info)[0]
        time_encoding = {"units": first_attrs["units"], "calendar": first_attrs.get("calendar")}
    ds = ds.load()
    for v in ds.variables.values():
        # No netCDF-4 storage settings; no NaN fill where the source has none.
        v.encoding = {} if "_FillValue" in v.attrs else {"_FillValue": None}
    if time_encoding:
        # Encoded here: xarray would shorten "hours since 2000-01-01 00:00:00".
        values = xr.coding.times.encode_cf_datetime(ds["time"].values, **time_encoding)[0]
        ds = ds.assign_coords(time=xr.Variable("time", values.astype("f8"), first_attrs))
    repo = create(path)
    session = repo.writable_session("main")
    to_icechunk(ds, session)
    sid = session.commit("converted by xarray", metadata={"tool": "icechunk_selftest", "files": len(sources)})
    repo.create_tag("converted", sid)
    return sid


def copy_store(zarr_dir, path):
    """Every Zarr key of a Zarr directory into a new repository, bytes
    unchanged (zarrforge's own .zarrforge/ is no Zarr key: Icechunk refuses
    it)."""
    repo = create(path)
    session = repo.writable_session("main")
    proto = default_buffer_prototype()
    for root, dirs, files in os.walk(zarr_dir):
        dirs[:] = [d for d in dirs if d != ".zarrforge"]
        for f in files:
            full = os.path.join(root, f)
            key = os.path.relpath(full, zarr_dir).replace(os.sep, "/")
            with open(full, "rb") as fh:
                sync(session.store.set(key, proto.buffer.from_bytes(fh.read())))
    return session.commit(f"copy of {zarr_dir}")


def corrupt(path, sources):
    """A new commit on main with one value of the first data variable changed."""
    repo = icechunk.Repository.open(icechunk.local_filesystem_storage(path))
    session = repo.writable_session("main")
    root = zarr.open_group(session.store, mode="r+")
    with xr.open_dataset(sources[0]) as ds:
        name = max((n for n in ds.data_vars if ds[n].dtype.kind in "iuf"), key=lambda n: ds[n].size)
    arr = root[name]
    first = (0,) * arr.ndim
    value = arr[first]
    if arr.dtype.kind in "iu":
        arr[first] = value ^ 1  # the lowest bit flipped: in range, always different
    else:
        arr[first] = -value if np.isfinite(value) and value != 0 else 1  # (1e20 + 1 == 1e20)
    return session.commit(f"change {name}{list(first)}", metadata={"corrupted": name})


def retype_attribute(path):
    """A branch "retyped" on which one integer attribute of an array is
    stored as the equal float (1 -> 1.0): equal values, another type."""
    repo = icechunk.Repository.open(icechunk.local_filesystem_storage(path))
    repo.create_branch("retyped", repo.lookup_branch("main"))
    session = repo.writable_session("retyped")
    root = zarr.open_group(session.store, mode="r+")
    for name, arr in root.arrays():
        ints = [k for k, v in arr.attrs.items() if isinstance(v, int) and not isinstance(v, bool)]
        if ints:
            arr.attrs[ints[0]] = float(arr.attrs[ints[0]])
            return session.commit(f"{name}.{ints[0]} as a float")
    raise AssertionError(f"{path}: no integer attribute to retype")


def check_s3(work, source):
    """A repository on moto's S3 server (from this venv), read through
    --s3-endpoint/--bucket/--prefix and through s3://BUCKET/PREFIX."""
    import socket
    import time

    import boto3
    import botocore

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    log = open(os.path.join(work, "moto.log"), "w")
    server = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "moto_server"),
                               "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log)
    try:
        os.environ.update(AWS_ACCESS_KEY_ID="zfkey", AWS_SECRET_ACCESS_KEY="zfsecret", AWS_REGION="us-east-1")
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        deadline = time.monotonic() + 60
        while True:
            try:
                s3.create_bucket(Bucket="zarrforge")
                break
            except botocore.exceptions.EndpointConnectionError:  # still starting
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.2)
        storage = icechunk.s3_storage(bucket="zarrforge", prefix="runs/one", endpoint_url=endpoint, allow_http=True,
                                      force_path_style=True, region="us-east-1", access_key_id="zfkey",
                                      secret_access_key="zfsecret")
        write_xarray(storage, [source])
        run_compare("S3: --s3-endpoint --bucket --prefix",
                    ["--s3-endpoint", endpoint, "--bucket", "zarrforge", "--prefix", "runs/one", source], True)
        run_compare("S3: s3://zarrforge/runs/one with --history",
                    ["s3://zarrforge/runs/one", source, "--s3-endpoint", endpoint, "--history", "--ref", "converted"], True)
    finally:
        server.terminate()
        server.wait()


def run_compare(label, args, want_ok):
    p = subprocess.run([sys.executable, os.path.join(HERE, "icechunk_compare.py"), *args],
                       capture_output=True, text=True)
    ok = (p.returncode == 0) == want_ok
    results.append(ok)
    tail = (p.stdout + p.stderr).strip().splitlines()
    print(f"{'PASS' if ok else 'FAIL'} {label}: exit {p.returncode}"
          + (f" | {' | '.join(tail[:4])}" if tail else ""))
    return p


def check_xarray(work, name, sources):
    repo = os.path.join(work, f"{name}.icechunk")
    first = write_xarray(repo, sources)
    run_compare(f"{name}: xarray-written repository equals its source(s)", [repo, *sources], True)
    p = run_compare(f"{name}: --history", [repo, "--history"], True)
    results.append(first in p.stdout and "icechunk_selftest" in p.stdout and "tag:converted" in p.stdout)
    print(f"{'PASS' if results[-1] else 'FAIL'} {name}: history names the snapshot, its metadata and tag")
    corrupt(repo, sources)
    run_compare(f"{name}: one changed value fails at main", [repo, *sources], False)
    run_compare(f"{name}: --ref converted (tag) still equal", [repo, *sources, "--ref", "converted"], True)
    run_compare(f"{name}: --ref {first} (snapshot) still equal", [repo, *sources, "--ref", first], True)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__.split("\n\n")[1])
    work = sys.argv[1]
    os.makedirs(work, exist_ok=True)
    fx, mf = os.path.join(work, "fixtures"), os.path.join(work, "multifile")
    subprocess.run([sys.executable, os.path.join(HERE, "make_fixtures.py"), fx], check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run([sys.executable, os.path.join(HERE, "make_multifile.py"), mf, "--files", "12"], check=True)
    for name in ("cf_time", "numeric_types", "packed"):
        check_xarray(work, name, [os.path.join(fx, f"{name}.nc")])
    check_xarray(work, "series", sorted(glob.glob(os.path.join(mf, "series", "*.nc"))))
    check_s3(work, os.path.join(fx, "cf_time.nc"))
    attrs = os.path.join(fx, "attributes.nc")
    write_xarray(os.path.join(work, "attributes.icechunk"), [attrs])
    retype_attribute(os.path.join(work, "attributes.icechunk"))
    run_compare("attributes: equal at main", [os.path.join(work, "attributes.icechunk"), attrs], True)
    p = run_compare("attributes: an int attribute stored as the equal float fails",
                    [os.path.join(work, "attributes.icechunk"), attrs, "--ref", "retyped"], False)
    results.append("attribute types differ" in p.stderr)
    print(f"{'PASS' if results[-1] else 'FAIL'} attributes: the failure names the attribute types")
    run_compare("missing ref fails", [os.path.join(work, "cf_time.icechunk"), "--history", "--ref", "nope"], False)

    rest = sys.argv[2:]
    while rest:
        group = rest[:rest.index("--")] if "--" in rest else rest
        rest = rest[len(group) + 1:]
        store, sources = group[0], group[1:]
        repo = os.path.join(work, os.path.basename(store.rstrip("/")) + ".icechunk")
        try:
            copy_store(store, repo)
        except icechunk.IcechunkError as e:
            results.append(False)
            print(f"FAIL copy of {store}: Icechunk refuses a key: {str(e).splitlines()[0]}")
            continue
        run_compare(f"copy of {store}: equals its source(s)", [repo, *sources], True)

    passed = sum(results)
    print(f"{passed} passed, {len(results) - passed} failed")
    sys.exit(0 if passed == len(results) else 1)


if __name__ == "__main__":
    main()
