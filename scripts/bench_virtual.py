"""The Python half of `scripts/bench-peers --layout virtual` (run in .venv-icechunk).

  gen DIR N                  N netCDF-4 files DIR/f00000.nc ... (cached: DIR/.complete) and DIR/files.txt
  vz LIST REPO               VirtualiZarr 2.8: open_virtual_mfdataset (HDFParser, 2 processes) + to_icechunk
  kc LIST OUT.json PHASES    kerchunk 0.2.10: SingleHdf5ToZarr per file (2 processes) + MultiZarrToZarr;
                             then the Parquet form (refs_to_dataframe) next to it, phase seconds to PHASES
  check LIST [KIND LABEL PATH]...  read every output back with xarray and compare with the sources;
                             KIND is icechunk, json (kerchunk JSON) or parquet; prints one JSON line each
"""
import json
import multiprocessing as mp
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

STEPS = 4  # steps per file (6-hourly, one day per file)
NLAT, NLON = 73, 144


def _write_one(args):
    import netCDF4

    path, i = args
    tmp = path + ".tmp"
    with netCDF4.Dataset(tmp, "w", format="NETCDF4") as nc:
        nc.createDimension("time", None)
        nc.createDimension("lat", NLAT)
        nc.createDimension("lon", NLON)
        t = nc.createVariable("time", "f8", ("time",))
        t.units, t.calendar, t.standard_name, t.axis = "days since 2000-01-01", "standard", "time", "T"
        la = nc.createVariable("lat", "f8", ("lat",))
        la.units, la.standard_name = "degrees_north", "latitude"
        lo = nc.createVariable("lon", "f8", ("lon",))
        lo.units, lo.standard_name = "degrees_east", "longitude"
        v = nc.createVariable("tas", "f4", ("time", "lat", "lon"), zlib=True, complevel=4, shuffle=True,
                              chunksizes=(1, NLAT, NLON), fill_value=np.float32(1e20))
        v.units, v.standard_name, v.long_name = "K", "air_temperature", "Near-Surface Air Temperature"
        nc.Conventions = "CF-1.8"
        nc.title = "zarrforge bench-peers --layout virtual"
        lat = np.linspace(-90, 90, NLAT)
        lon = np.arange(NLON) * 2.5
        la[:] = lat
        lo[:] = lon
        t[:] = i + np.arange(STEPS) / STEPS
        rng = np.random.default_rng(i)
        base = 250 + 40 * np.cos(np.deg2rad(lat))[:, None] + 5 * np.sin(np.deg2rad(lon))[None, :]
        for k in range(STEPS):
            step = base + 3 * np.sin(2 * np.pi * (i + k / STEPS) / 365) + rng.normal(0, 1, (NLAT, NLON))
            v[k] = np.round(step, 2).astype("f4")
    os.replace(tmp, path)


def gen(d, n):
    n = int(n)
    os.makedirs(d, exist_ok=True)
    marker = os.path.join(d, ".complete")
    if os.path.exists(marker) and open(marker).read().strip() == str(n):
        return
    paths = [os.path.join(d, f"f{i:05d}.nc") for i in range(n)]
    todo = [(p, i) for i, p in enumerate(paths) if not os.path.exists(p)]
    with ProcessPoolExecutor(2) as ex:
        list(ex.map(_write_one, todo, chunksize=16))
    with open(os.path.join(d, "files.txt"), "w") as f:
        f.write("".join(p + "\n" for p in paths))
    with open(marker, "w") as f:
        f.write(f"{n}\n")


def read_list(path):
    return [line.strip() for line in open(path) if line.strip()]


def pool():
    # forkserver: obstore's and icechunk's runtimes hold threads, which fork does not carry.
    return ProcessPoolExecutor(2, mp_context=mp.get_context("forkserver"))


def _probe(_):
    import resource

    time.sleep(0.1)  # long enough for every worker to take one
    return os.getpid(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def report_worker_rss(ex):
    """The forkserver's workers are not children of this process, so GNU time's peak RSS misses
    them: their largest ru_maxrss (KiB) and the seconds this probe took (the benchmark takes
    them off the wall time) go to $ZF_BENCH_WORKER_RSS."""
    out = os.environ.get("ZF_BENCH_WORKER_RSS")
    if out:
        t = time.time()
        rss = max(dict(ex.map(_probe, range(4))).values())
        with open(out, "w") as f:
            f.write(f"{rss} {time.time() - t:.3f}\n")


def vz(listfile, out):
    import shutil

    import icechunk
    from obspec_utils.registry import ObjectStoreRegistry
    from obstore.store import LocalStore
    from virtualizarr import open_virtual_mfdataset
    from virtualizarr.parsers import HDFParser

    icechunk.set_logs_filter("error")
    files = read_list(listfile)
    datadir = os.path.dirname(files[0])
    prefix = f"file://{datadir}/"
    shutil.rmtree(out, ignore_errors=True)
    registry = ObjectStoreRegistry({"file://": LocalStore()})
    with pool() as ex:
        vds = open_virtual_mfdataset(["file://" + f for f in files], registry=registry, parser=HDFParser(),
                                     parallel=ex, combine="nested", concat_dim="time",
                                     data_vars="minimal", coords="minimal", compat="override",
                                     loadable_variables=["time", "lat", "lon"], decode_times=False)
        report_worker_rss(ex)
    config = icechunk.RepositoryConfig.default()
    config.set_virtual_chunk_container(icechunk.VirtualChunkContainer(prefix, icechunk.local_filesystem_store(datadir)))
    repo = icechunk.Repository.create(
        icechunk.local_filesystem_storage(out), config=config,
        authorize_virtual_chunk_access=icechunk.containers_credentials(
            {prefix: icechunk.Credentials.LocalFileSystemAccess()}))
    session = repo.writable_session("main")
    vds.vz.to_icechunk(session.store)
    session.commit("VirtualiZarr open_virtual_mfdataset + to_icechunk")


def _kc_one(path):
    from kerchunk.hdf import SingleHdf5ToZarr

    h = SingleHdf5ToZarr("file://" + path, inline_threshold=500)
    try:
        return h.translate()
    finally:
        h.close()


def kc(listfile, out, phases):
    import shutil

    from kerchunk.combine import MultiZarrToZarr

    files = read_list(listfile)
    t0 = time.time()
    with pool() as ex:
        singles = list(ex.map(_kc_one, files, chunksize=16))
        t1 = time.time()
        report_worker_rss(ex)
    combined = MultiZarrToZarr(singles, remote_protocol="file", concat_dims=["time"],
                               identical_dims=["lat", "lon"]).translate()
    t2 = time.time()
    with open(out, "w") as f:
        json.dump(combined, f)
    t3 = time.time()
    ph = {"scan_s": t1 - t0, "combine_s": t2 - t1, "json_s": t3 - t2}
    try:
        from kerchunk.df import refs_to_dataframe

        parq = out[:-5] + ".parq" if out.endswith(".json") else out + ".parq"
        shutil.rmtree(parq, ignore_errors=True)
        refs_to_dataframe(combined, parq)
        ph["parquet_s"] = time.time() - t3
    except Exception as e:  # the Parquet form is an extra: report, do not fail the run
        ph["parquet_error"] = f"{type(e).__name__}: {e}"
    with open(phases, "w") as f:
        json.dump(ph, f)


def sources(files):
    import netCDF4

    tas = np.empty((len(files) * STEPS, NLAT, NLON), "f4")
    times = np.empty(len(files) * STEPS, "f8")
    pos = 0
    for path in files:
        with netCDF4.Dataset(path) as nc:
            nc.set_auto_mask(False)
            v = nc["tas"][:]
            t = nc["time"][:]
            assert nc["time"].units == "days since 2000-01-01"
            tas[pos:pos + len(t)] = v
            times[pos:pos + len(t)] = t
            pos += len(t)
            lat, lon = nc["lat"][:], nc["lon"][:]
    tas = tas[:pos]
    tas[tas == np.float32(1e20)] = np.nan
    times = np.datetime64("2000-01-01T00:00:00", "ns") + np.round(times[:pos] * 86400e9).astype("timedelta64[ns]")
    return tas, times, lat, lon


def open_output(kind, path):
    import xarray as xr

    if kind == "icechunk":
        import icechunk

        icechunk.set_logs_filter("error")
        storage = icechunk.local_filesystem_storage(path)
        cfg = icechunk.Repository.fetch_config(storage)
        prefixes = [c.url_prefix for c in ((cfg.virtual_chunk_containers or {}).values() if cfg else [])]
        repo = icechunk.Repository.open(storage, authorize_virtual_chunk_access=icechunk.containers_credentials(
            {p: icechunk.Credentials.LocalFileSystemAccess() for p in prefixes}))
        return xr.open_zarr(repo.readonly_session("main").store, consolidated=False, chunks=None)
    so = {"fo": path, "remote_protocol": "file"}
    return xr.open_dataset("reference://", engine="zarr", chunks=None,
                           backend_kwargs={"consolidated": False, "storage_options": so})


def check(listfile, outputs):
    files = read_list(listfile)
    t0 = time.time()
    tas, times, lat, lon = sources(files)
    print(f"sources read in {time.time() - t0:.1f} s", file=sys.stderr)
    for i in range(0, len(outputs) - 2, 3):
        kind, label, path = outputs[i:i + 3]
        res = {"label": label, "equal": False}
        try:
            ds = open_output(kind, path)
            got_t = ds["time"].values
            got = ds["tas"].values
            problems = []
            if got.shape != tas.shape:
                problems.append(f"tas shape {got.shape} != {tas.shape}")
            elif not np.array_equal(got, tas, equal_nan=True):
                problems.append(f"tas differs at {int((~((got == tas) | (np.isnan(got) & np.isnan(tas)))).sum())} points")
            if got_t.dtype != times.dtype or got_t.shape != times.shape or not np.array_equal(got_t, times):
                problems.append(f"time differs ({got_t.dtype} {got_t.shape} {got_t[:2]} vs {times[:2]})")
            for name, ref in (("lat", lat), ("lon", lon)):
                if not np.array_equal(ds[name].values, ref):
                    problems.append(f"{name} differs")
            res["equal"] = not problems
            res["detail"] = "; ".join(problems)
        except Exception as e:
            res["detail"] = f"{type(e).__name__}: {e}"[:300]
        print(json.dumps(res), flush=True)


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "check":
        check(args[0], args[1:])
    else:
        {"gen": gen, "vz": vz, "kc": kc}[cmd](*args)
