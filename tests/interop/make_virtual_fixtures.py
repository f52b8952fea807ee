"""Small netCDF files for `zarrforge convert --virtual` (docs/virtual.md).

usage: make_virtual_fixtures.py OUTDIR

Writes, under OUTDIR (created; existing files of the same names replaced):

  same/            4 netCDF-4 files along time (6 steps each, time chunk 3):
                   t2m float32 zlib+shuffle, pr int16 packed (scale_factor,
                   add_offset, _FillValue, some fills), u10 big-endian float32
                   (chunked, no filter), zsurf(lat, lon) contiguous; the time
                   units differ per file ("days since 2000-01-01", then
                   "hours since 2000-01-0K"): the materialized time must be
                   re-encoded to one unit. Every check passes: all referenced.
  hetero_chunks/   3 files; file 2 has another chunk shape for t2m.
  hetero_codec/    3 files; file 2 another zlib level for t2m.
  hetero_fill/     3 files; file 2 another _FillValue for t2m.
  hetero_scale/    3 files; file 2 another scale_factor for pr.
  ragged/          3 files of 6, 5, 6 steps, time chunk 3: file 2's length is
                   not a multiple of the chunk length (files 1 and 3 are).
  nc3/             3 netCDF-3 files (classic, 64-bit offset, classic) with a
                   record dimension time, two record variables (float32 tas,
                   int16 flag of 15 values a record: records are padded) and
                   a non-record variable orog.
  filters/         1 file, one variable per HDF5 filter chain: fletcher32+zlib,
                   zstd, blosc (lz4 inside), bzip2, szip, shuffle alone,
                   scaleoffset and nbit (h5py), shuffle+zstd, lz4 and
                   bitshuffle (h5py with hdf5plugin, when installed); a filter this machine cannot
                   write is left out and said so.
  skipped_filter/  1 file whose deflated variables have one chunk stored with
                   the deflate filter skipped (filter_mask bit set), written
                   with h5py write_direct_chunk: HDF5 (2.x) stores an
                   incompressible chunk deflated anyway, so random data does
                   not produce one.

Every file names "hetero_*"/"ragged" part0.nc, part1.nc, ... in time order
("file 2" is part1.nc). Deterministic: fixed seeds, no clock. Prints one line
per set. Needs netCDF4, h5py, numpy; hdf5plugin is optional.
"""
import os
import sys

import h5py
import netCDF4
import numpy as np

try:
    import hdf5plugin
except ImportError:  # optional: lz4 and bitshuffle are left out without it
    hdf5plugin = None

NLAT, NLON = 16, 24
CHUNK = (3, 8, 12)
STEP_H = 6  # hours between time steps
SUMMARY = []


def note(line):
    SUMMARY.append(line)


def grid(ds):
    ds.createDimension("time", None)
    ds.createDimension("lat", NLAT)
    ds.createDimension("lon", NLON)
    lat = ds.createVariable("lat", "f8", ("lat",))
    lat[:] = np.linspace(-82.5, 82.5, NLAT)
    lat.setncatts({"units": "degrees_north", "standard_name": "latitude", "axis": "Y"})
    lon = ds.createVariable("lon", "f8", ("lon",))
    lon[:] = np.arange(NLON) * (360.0 / NLON)
    lon.setncatts({"units": "degrees_east", "standard_name": "longitude", "axis": "X"})
    ds.setncatts({"Conventions": "CF-1.8", "title": "zarrforge virtual-reference fixture",
                  "source": "tests/interop/make_virtual_fixtures.py"})


def time_var(ds, start_h, n, units, origin_h):
    """A time coordinate of N steps from START_H hours after 2000-01-01,
    in UNITS whose origin is ORIGIN_H hours after 2000-01-01."""
    t = ds.createVariable("time", "f8", ("time",))
    t.setncatts({"units": units, "calendar": "standard", "standard_name": "time", "axis": "T"})
    hours = start_h + STEP_H * np.arange(n) - origin_h
    t[:] = hours / 24.0 if units.startswith("days") else hours
    return t


def field(rng, n, base=280.0):
    return (base + 10 * rng.standard_normal((n, NLAT, NLON))).astype("f4")


def t2m_var(ds, rng, n, chunks=CHUNK, level=4, fill=np.float32(-9999.0)):
    v = ds.createVariable("t2m", "f4", ("time", "lat", "lon"), zlib=True, shuffle=True,
                          complevel=level, chunksizes=chunks, fill_value=fill)
    v.setncatts({"units": "K", "long_name": "2 m temperature"})
    data = field(rng, n)
    data[0, 0, :3] = fill  # a few missing values, written as the fill
    v.set_auto_maskandscale(False)
    v[:] = data


def pr_var(ds, rng, n, scale=np.float32(0.01), offset=np.float32(0.0), fill=np.int16(-32767)):
    v = ds.createVariable("pr", "i2", ("time", "lat", "lon"), zlib=True, shuffle=True,
                          complevel=4, chunksizes=(3, NLAT, NLON), fill_value=fill)
    v.setncatts({"units": "mm/day", "scale_factor": np.float32(scale),
                 "add_offset": np.float32(offset), "long_name": "precipitation"})
    raw = rng.integers(0, 3000, (n, NLAT, NLON)).astype("i2")
    raw[:, 1, 1] = fill
    v.set_auto_maskandscale(False)
    v[:] = raw


def u10_var(ds, rng, n):
    v = ds.createVariable("u10", np.dtype(">f4"), ("time", "lat", "lon"), endian="big",
                          chunksizes=CHUNK)
    v.setncatts({"units": "m s-1", "long_name": "10 m eastward wind"})
    v[:] = field(rng, n, base=0.0)


def zsurf_var(ds, rng):
    v = ds.createVariable("zsurf", "f4", ("lat", "lon"), contiguous=True)
    v.setncatts({"units": "m", "long_name": "surface height"})
    v[:] = (1000 * rng.random((NLAT, NLON))).astype("f4")


def make_same(outdir):
    d = os.path.join(outdir, "same")
    os.makedirs(d, exist_ok=True)
    for k in range(4):
        rng = np.random.default_rng(100 + k)
        units = "days since 2000-01-01" if k == 0 else f"hours since 2000-01-0{k}"
        origin_h = 0 if k == 0 else 24 * (k - 1)
        with netCDF4.Dataset(os.path.join(d, f"part{k}.nc"), "w", format="NETCDF4") as ds:
            grid(ds)
            time_var(ds, 36 * k, 6, units, origin_h)
            t2m_var(ds, rng, 6)
            pr_var(ds, rng, 6)
            u10_var(ds, rng, 6)
            zsurf_var(ds, np.random.default_rng(7))
    note(f"same/: 4 files x 6 steps (time units differ per file); t2m zlib+shuffle,"
         f" pr int16 packed, u10 big-endian, zsurf contiguous")


def make_set(outdir, name, lengths=(6, 6, 6), t2m_kw=None, pr_kw=None, what=""):
    """Three files along time, t2m and pr; file 2 (part1.nc) gets T2M_KW /
    PR_KW."""
    d = os.path.join(outdir, name)
    os.makedirs(d, exist_ok=True)
    start = 0
    for k, n in enumerate(lengths):
        rng = np.random.default_rng(200 + k)
        with netCDF4.Dataset(os.path.join(d, f"part{k}.nc"), "w", format="NETCDF4") as ds:
            grid(ds)
            time_var(ds, start, n, "hours since 2000-01-01", 0)
            t2m_var(ds, rng, n, **((t2m_kw or {}) if k == 1 else {}))
            pr_var(ds, rng, n, **((pr_kw or {}) if k == 1 else {}))
            zsurf_var(ds, np.random.default_rng(7))
        start += STEP_H * n
    note(f"{name}/: {len(lengths)} files of {','.join(map(str, lengths))} steps; {what}")


def make_nc3(outdir):
    d = os.path.join(outdir, "nc3")
    os.makedirs(d, exist_ok=True)
    nlat, nlon, n = 3, 5, 4
    formats = ("NETCDF3_CLASSIC", "NETCDF3_64BIT_OFFSET", "NETCDF3_CLASSIC")
    for k, fmt in enumerate(formats):
        rng = np.random.default_rng(300 + k)
        with netCDF4.Dataset(os.path.join(d, f"part{k}.nc"), "w", format=fmt) as ds:
            ds.createDimension("time", None)
            ds.createDimension("lat", nlat)
            ds.createDimension("lon", nlon)
            lat = ds.createVariable("lat", "f4", ("lat",))
            lat[:] = np.linspace(-30, 30, nlat)
            lat.units = "degrees_north"
            lon = ds.createVariable("lon", "f4", ("lon",))
            lon[:] = np.linspace(0, 40, nlon)
            lon.units = "degrees_east"
            t = ds.createVariable("time", "f8", ("time",))
            t.setncatts({"units": "days since 2000-01-01", "calendar": "standard"})
            t[:] = k * n + np.arange(n)
            tas = ds.createVariable("tas", "f4", ("time", "lat", "lon"), fill_value=np.float32(1e20))
            tas.units = "K"
            tas[:] = (280 + rng.standard_normal((n, nlat, nlon))).astype("f4")
            flag = ds.createVariable("flag", "i2", ("time", "lat", "lon"), fill_value=np.int16(-1))
            flag.long_name = "quality flag (15 int16 a record: 30 bytes padded to 32)"
            flag[:] = rng.integers(0, 100, (n, nlat, nlon)).astype("i2")
            orog = ds.createVariable("orog", "f4", ("lat", "lon"))
            orog.units = "m"
            orog[:] = np.arange(nlat * nlon, dtype="f4").reshape(nlat, nlon)
            ds.title = f"netCDF-3 fixture ({fmt})"
    note(f"nc3/: 3 files ({', '.join(formats)}), record dim time x {n}; tas float32 and flag"
         " int16 record variables (padded records), orog non-record")


def attach_dims(f, ds, dims):
    for i, name in enumerate(dims):
        ds.dims[i].attach_scale(f[name])


def make_filters(outdir):
    d = os.path.join(outdir, "filters")
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "filters.nc")
    dims = ("time", "lat", "lon")
    rng = np.random.default_rng(400)
    made, skipped = [], []
    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        grid(ds)
        time_var(ds, 0, 6, "hours since 2000-01-01", 0)
        nc_vars = {
            "f_fletcher32": dict(zlib=True, shuffle=True, fletcher32=True),
            "f_zstd": dict(compression="zstd", complevel=4, shuffle=False),
            "f_blosc": dict(compression="blosc_lz4", complevel=4, blosc_shuffle=1, shuffle=False),
            "f_bzip2": dict(compression="bzip2", complevel=9, shuffle=False),
            "f_szip": dict(compression="szip", szip_coding="nn", szip_pixels_per_block=8),
        }
        for name, kw in nc_vars.items():
            try:
                v = ds.createVariable(name, "f4", dims, chunksizes=CHUNK, **kw)
                v[:] = field(rng, 6)
                made.append(name)
            except Exception as e:  # noqa: BLE001 - a filter this netCDF-C lacks
                skipped.append(f"{name} ({type(e).__name__}: {e})")
    with h5py.File(path, "r+") as f:
        def add(name, make):
            try:
                ds = make()
                attach_dims(f, ds, dims)
                made.append(name)
            except Exception as e:  # noqa: BLE001 - a filter this HDF5 lacks
                if name in f:
                    del f[name]
                skipped.append(f"{name} ({type(e).__name__}: {e})")

        add("f_shuffle_only", lambda: f.create_dataset(
            "f_shuffle_only", data=field(rng, 6), chunks=CHUNK, shuffle=True))
        add("f_scaleoffset", lambda: f.create_dataset(
            "f_scaleoffset", data=field(rng, 6), chunks=CHUNK, scaleoffset=2))

        def nbit():
            tid = h5py.h5t.STD_I32LE.copy()
            tid.set_precision(16)
            dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
            dcpl.set_chunk(CHUNK)
            dcpl.set_filter(h5py.h5z.FILTER_NBIT, 0, ())  # no h5py wrapper; set_local fills the parameters
            space = h5py.h5s.create_simple((6, NLAT, NLON))
            ds = h5py.Dataset(h5py.h5d.create(f.id, b"f_nbit", tid, space, dcpl=dcpl))
            ds[...] = rng.integers(-30000, 30000, (6, NLAT, NLON)).astype("i4")
            return ds
        add("f_nbit", nbit)
        if hdf5plugin is None:
            skipped += [f"{v} (hdf5plugin not installed)" for v in ("f_zstd_shuffle", "f_lz4", "f_bitshuffle")]
        else:
            # netCDF4-python applies shuffle with zlib only: zstd after
            # shuffle through h5py.
            add("f_zstd_shuffle", lambda: f.create_dataset(
                "f_zstd_shuffle", data=field(rng, 6), chunks=CHUNK, shuffle=True,
                **hdf5plugin.Zstd(clevel=4)))
            add("f_lz4", lambda: f.create_dataset(
                "f_lz4", data=field(rng, 6), chunks=CHUNK, **hdf5plugin.LZ4()))
            add("f_bitshuffle", lambda: f.create_dataset(
                "f_bitshuffle", data=field(rng, 6), chunks=CHUNK, **hdf5plugin.Bitshuffle()))
    note(f"filters/filters.nc: {', '.join(made)}")
    for s in skipped:
        note(f"  left out: {s}")


def make_skipped(outdir):
    d = os.path.join(outdir, "skipped_filter")
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "skipped.nc")
    rng = np.random.default_rng(500)
    data = {name: field(rng, 6) for name in ("t2m", "t2m_shuffled")}
    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        grid(ds)
        time_var(ds, 0, 6, "hours since 2000-01-01", 0)
        for name, shuffle in (("t2m", False), ("t2m_shuffled", True)):
            v = ds.createVariable(name, "f4", ("time", "lat", "lon"), zlib=True, shuffle=shuffle,
                                  complevel=4, chunksizes=CHUNK)
            v.units = "K"
            v[:] = data[name]
    with h5py.File(path, "r+") as f:
        # Chunk (0, 0, 0): stored without deflate, the filter skipped in its
        # mask: deflate alone (bit 0), and deflate after shuffle (bit 1; the
        # bytes stay shuffled).
        block = data["t2m"][:3, :8, :12].astype("<f4")
        f["t2m"].id.write_direct_chunk((0, 0, 0), block.tobytes(), filter_mask=1)
        block = data["t2m_shuffled"][:3, :8, :12].astype("<f4")
        shuffled = block.view("u1").reshape(-1, 4).T.copy().tobytes()
        f["t2m_shuffled"].id.write_direct_chunk((0, 0, 0), shuffled, filter_mask=2)
    with netCDF4.Dataset(path) as ds:  # netCDF-C reads them back as written
        for name in data:
            if not np.array_equal(ds[name][:], data[name]):
                sys.exit(f"make_virtual_fixtures: {path}: {name} does not read back")
    note("skipped_filter/skipped.nc: t2m (deflate; chunk 0,0,0 filter_mask=1) and t2m_shuffled"
         " (shuffle+deflate; chunk 0,0,0 filter_mask=2), both read back by netCDF-C")


def main():
    if len(sys.argv) != 2 or sys.argv[1] in ("-h", "--help"):
        sys.exit(__doc__.split("\n\n")[1])
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    make_same(outdir)
    make_set(outdir, "hetero_chunks", t2m_kw=dict(chunks=(3, NLAT, NLON)),
             what="t2m chunks (3,8,12), file 2 (3,16,24)")
    make_set(outdir, "hetero_codec", t2m_kw=dict(level=9), what="t2m zlib level 4, file 2 level 9")
    make_set(outdir, "hetero_fill", t2m_kw=dict(fill=np.float32(-999.0)),
             what="t2m _FillValue -9999, file 2 -999")
    make_set(outdir, "hetero_scale", pr_kw=dict(scale=np.float32(0.02)),
             what="pr scale_factor 0.01, file 2 0.02")
    make_set(outdir, "ragged", lengths=(6, 5, 6), what="time chunk 3: file 2's 5 steps not a multiple")
    make_nc3(outdir)
    make_filters(outdir)
    make_skipped(outdir)
    print(f"virtual fixtures in {outdir}:")
    for line in SUMMARY:
        print("  " + line)


if __name__ == "__main__":
    main()
