"""Write the multi-file netCDF fixtures of zarrforge's interop test.

usage: make_multifile.py OUTDIR [--files N] [--seed S]

Writes three sets of netCDF-4 files (netCDF4-python) into subdirectories of
OUTDIR (created if needed; .nc files already in those subdirectories are
removed first, so a smaller --files leaves no stale files) and prints nothing
on success. Each set is meant to be converted into one store and checked with
tests/interop/compare_multifile.py STORE FILE...

Every file is deterministic for a given --seed (default 0): its data comes
from numpy's random generator seeded with (seed, set, file index). --files
(default 200) sets the size of the series set only; the other sets have fixed
sizes.

Sets:
  series/   series_0000.nc ... (N files). 1, 2 or 3 steps per file along an
            UNLIMITED dim `time`; `time` is float64, calendar "standard",
            hourly and consecutive across the set (one regular axis, no gaps,
            no overlaps). Most files use units "hours since 2000-01-01
            00:00:00"; every 7th file (series_0006, 0013, ...) "minutes since
            <its own first time stamp>" (values 0, 60, 120) and every 5th
            file (series_0004, 0009, ...; the 7th rule wins where both apply)
            "hours since 2000-01-02 00:00:00" (values shifted by -24), so a
            converter must re-encode time to one unit. The first file uses
            the common units. Dims lat=5, lon=7 with float32 coordinates;
            t2m(time,lat,lon) float32 with _FillValue -9999 (some points
            filled, no NaN); precip(time,lat,lon) int16 packed with float32
            scale_factor 0.01 / add_offset 0.0 and _FillValue -32767 (some
            points masked); orog(lat,lon) float64 and a scalar int32 `crs`
            (grid-mapping attributes), both identical in every file; global
            title and Conventions.
  merge/    t2m_0000.nc ... t2m_0011.nc (time, lat, lon + t2m) and
            u10_0000.nc ... u10_0011.nc (time, lat, lon + u10 float32 without
            _FillValue), 2 steps per file, the same hourly time axis in both
            families: variables are split across files and must be merged.
  ragged/   ragged_0000.nc ... ragged_0009.nc with 1 to 4 steps each (all four
            counts occur), int32 time "days since 2000-01-01", calendar
            "noleap", daily from day 50 so the axis crosses Feb 28 -> Mar 1
            (no Feb 29 in noleap); sst(time,lat,lon) float32 WITHOUT
            _FillValue; no char or string variables. Used by the append test
            (convert files 0-5, append 6-9).
"""
import argparse
import glob
import os

import netCDF4
import numpy as np

NLAT, NLON = 5, 7
HOURS_UNITS = "hours since 2000-01-01 00:00:00"
T2M_FILL = np.float32(-9999.0)
PRECIP_FILL = np.int16(-32767)
PRECIP_SCALE = np.float32(0.01)
PRECIP_OFFSET = np.float32(0.0)
TITLE = "zarrforge multi-file interop fixture"

# Set ids mixed into the random seeds, so the sets do not share data.
SERIES, MERGE, RAGGED, STATIC = 1, 2, 3, 4


def rng_for(seed, set_id, index):
    return np.random.default_rng([seed, set_id, index])


def stamp(hour):
    """The time stamp `hour` hours after 2000-01-01 00:00:00 (proleptic
    Gregorian = standard calendar after 1582), as CF units text."""
    t = np.datetime64("2000-01-01T00:00:00") + np.timedelta64(int(hour), "h")
    return str(t).replace("T", " ")


def add_lat_lon(ds):
    ds.createDimension("lat", NLAT)
    ds.createDimension("lon", NLON)
    lat = ds.createVariable("lat", "f4", ("lat",))
    lat.units = "degrees_north"
    lat.standard_name = "latitude"
    lat[:] = np.linspace(40.0, 48.0, NLAT, dtype="f4")
    lon = ds.createVariable("lon", "f4", ("lon",))
    lon.units = "degrees_east"
    lon.standard_name = "longitude"
    lon[:] = np.linspace(-5.0, 10.0, NLON, dtype="f4")


def add_hourly_time(ds, values, units):
    ds.createDimension("time", None)
    t = ds.createVariable("time", "f8", ("time",))
    t.units = units
    t.calendar = "standard"
    t.standard_name = "time"
    t.long_name = "time"
    t.axis = "T"
    t[:] = np.asarray(values, dtype="f8")


def set_globals(ds):
    ds.title = TITLE
    ds.Conventions = "CF-1.8"


def t2m_values(rng, shape):
    """Air temperatures (no NaN) with about 3% of the points, and always the
    first one, set to the _FillValue."""
    data = (280.0 + rng.standard_normal(shape) * 5.0).astype("f4")
    mask = rng.random(shape) < 0.03
    mask.flat[0] = True
    data[mask] = T2M_FILL
    return data


def add_t2m(ds, rng, nt):
    v = ds.createVariable("t2m", "f4", ("time", "lat", "lon"), fill_value=T2M_FILL)
    v.units = "K"
    v.long_name = "2 metre temperature"
    v.standard_name = "air_temperature"
    v[:] = t2m_values(rng, (nt, NLAT, NLON))
    return v


def series_time(index, start, nt):
    """(units, values) of series file `index` whose first step is `start`
    hours after 2000-01-01."""
    hours = start + np.arange(nt, dtype="f8")
    if (index + 1) % 7 == 0:
        return f"minutes since {stamp(start)}", (hours - start) * 60.0
    if (index + 1) % 5 == 0:
        return "hours since 2000-01-02 00:00:00", hours - 24.0
    return HOURS_UNITS, hours


def static_fields(seed):
    """orog(lat, lon): the same in every series file."""
    rng = rng_for(seed, STATIC, 0)
    return np.abs(rng.standard_normal((NLAT, NLON))) * 800.0


def make_series(outdir, nfiles, seed):
    rng = np.random.default_rng([seed, SERIES])
    # 1, 2 and 3 steps per file in equal shares, shuffled, so every count
    # occurs for any N >= 3.
    steps = rng.permutation(np.resize([1, 2, 3], nfiles))
    orog = static_fields(seed)
    start = 0
    for i, nt in enumerate(steps):
        nt = int(nt)
        frng = rng_for(seed, SERIES, i)
        path = os.path.join(outdir, f"series_{i:04d}.nc")
        with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
            set_globals(ds)
            units, values = series_time(i, start, nt)
            add_hourly_time(ds, values, units)
            add_lat_lon(ds)

            crs = ds.createVariable("crs", "i4", ())
            crs.grid_mapping_name = "latitude_longitude"
            crs.semi_major_axis = 6378137.0
            crs.inverse_flattening = 298.257223563
            crs[...] = 0

            v = ds.createVariable("orog", "f8", ("lat", "lon"))
            v.units = "m"
            v.long_name = "surface altitude"
            v.grid_mapping = "crs"
            v[:] = orog

            v = add_t2m(ds, frng, nt)
            v.grid_mapping = "crs"

            v = ds.createVariable("precip", "i2", ("time", "lat", "lon"), fill_value=PRECIP_FILL)
            # Write the packed integers as they are.
            v.set_auto_maskandscale(False)
            v.scale_factor = PRECIP_SCALE
            v.add_offset = PRECIP_OFFSET
            v.units = "mm"
            v.long_name = "hourly precipitation"
            v.grid_mapping = "crs"
            packed = np.rint(frng.gamma(0.6, 150.0, (nt, NLAT, NLON))).clip(0, 30000).astype("i2")
            mask = frng.random(packed.shape) < 0.05
            mask.flat[-1] = True
            packed[mask] = PRECIP_FILL
            v[:] = packed
        start += nt


def make_merge(outdir, seed, nfiles=12, nt=2):
    for i in range(nfiles):
        hours = i * nt + np.arange(nt, dtype="f8")
        for name in ("t2m", "u10"):
            frng = rng_for(seed, MERGE, 2 * i + (name == "u10"))
            path = os.path.join(outdir, f"{name}_{i:04d}.nc")
            with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
                set_globals(ds)
                add_hourly_time(ds, hours, HOURS_UNITS)
                add_lat_lon(ds)
                if name == "t2m":
                    add_t2m(ds, frng, nt)
                else:
                    v = ds.createVariable("u10", "f4", ("time", "lat", "lon"), fill_value=False)
                    v.units = "m s-1"
                    v.long_name = "10 metre eastward wind"
                    v[:] = (frng.standard_normal((nt, NLAT, NLON)) * 4.0).astype("f4")


def make_ragged(outdir, seed, nfiles=10, first_day=50):
    rng = np.random.default_rng([seed, RAGGED])
    # Every count 1..4 occurs.
    steps = rng.permutation(np.resize([1, 2, 3, 4], nfiles))
    day = first_day
    for i, nt in enumerate(steps):
        nt = int(nt)
        frng = rng_for(seed, RAGGED, i)
        path = os.path.join(outdir, f"ragged_{i:04d}.nc")
        with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
            set_globals(ds)
            ds.createDimension("time", None)
            t = ds.createVariable("time", "i4", ("time",))
            t.units = "days since 2000-01-01"
            t.calendar = "noleap"
            t.standard_name = "time"
            t.axis = "T"
            t[:] = np.arange(day, day + nt, dtype="i4")
            add_lat_lon(ds)
            v = ds.createVariable("sst", "f4", ("time", "lat", "lon"), fill_value=False)
            v.units = "K"
            v.long_name = "sea surface temperature"
            v[:] = (288.0 + frng.standard_normal((nt, NLAT, NLON))).astype("f4")
        day += nt


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("outdir")
    p.add_argument("--files", type=int, default=200, help="files in the series set (default 200)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = p.parse_args()
    if args.files < 1:
        p.error("--files must be at least 1")
    if args.seed < 0:
        p.error("--seed must not be negative")
    dirs = {name: os.path.join(args.outdir, name) for name in ("series", "merge", "ragged")}
    for d in dirs.values():
        os.makedirs(d, exist_ok=True)
        for old in glob.glob(os.path.join(glob.escape(d), "*.nc")):
            os.remove(old)
    make_series(dirs["series"], args.files, args.seed)
    make_merge(dirs["merge"], args.seed)
    make_ragged(dirs["ragged"], args.seed)


if __name__ == "__main__":
    main()
