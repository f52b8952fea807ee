"""Write the ensemble fixture of zarrforge's interop test (convert --new-dim).

usage: make_ensemble_fixtures.py OUTDIR

Writes a CMIP-like ensemble into OUTDIR (created if needed; .nc files
already there are removed first) and prints nothing on success: 3 members
(r1i1p1f1, r2i1p1f1, r10i1p1f1: in natural order r2 comes before r10, in
plain string order after it) x 4 yearly files (2000-2003), named like
CMIP6 output:

    tas_day_MODEL_historical_r1i1p1f1_gn_2000.nc

Meant to be converted into one store with a new outermost dimension
`member` (`--new-dim member:variant_label`, or the member captured from the
file name) and checked with tests/interop/ensemble_compare.py STORE OUTDIR.

Every file (netCDF-4, netCDF4-python) holds:
  * global attributes: variant_label (the member), realization_index (int32:
    1, 2, 10), initialization_index, physics_index, forcing_index,
    source_id, experiment_id, table_id, grid_label, frequency, Conventions,
    title, and tracking_id (different in every file);
  * time: UNLIMITED, float64 daily means at noon, calendar "noleap", 365
    days a year (one continuous axis across the files), bounds
    time_bnds(time, bnds). Units are
    "days since 2000-01-01" except: every file of r10i1p1f1 uses "hours
    since 2000-01-01 00:00:00" (another member's units: re-encoded to the
    first member's), and r2i1p1f1's 2002 file "days since 2002-01-01"
    (within one member);
  * lat(lat=4), lon(lon=5) float64 with bounds lat_bnds, lon_bnds; a scalar
    coordinate height (2 m), named by tas's `coordinates` attribute;
  * tas(time, lat, lon) float32, chunked (73, 4, 5) and deflated, _FillValue
    and missing_value 1e20 (every 97th value filled), units, standard_name,
    long_name, cell_methods, coordinates;
  * psl(time, lat, lon) int16, one chunk a file, packed: float32 scale_factor 0.5 and add_offset
    100000, _FillValue -32767 (every 89th value masked);
  * orog(lat, lon) float32 without time, different in every member (the
    same in each member's files).
All values are deterministic (no random generator).
"""
import argparse
import glob
import os

import netCDF4
import numpy as np

MEMBERS = ["r1i1p1f1", "r2i1p1f1", "r10i1p1f1"]
YEARS = [2000, 2001, 2002, 2003]
NLAT, NLON = 4, 5
DAYS = 365
TAS_FILL = np.float32(1e20)
PSL_FILL = np.int16(-32767)
PSL_SCALE = np.float32(0.5)
PSL_OFFSET = np.float32(100000.0)


def file_name(member, year):
    return f"tas_day_MODEL_historical_{member}_gn_{year}.nc"


def units_of(member, year):
    """Time units of one file and its offset, in days, from 2000-01-01, and
    the units' length in days."""
    if member == "r10i1p1f1":
        return "hours since 2000-01-01 00:00:00", 0.0, 1.0 / 24.0
    if member == "r2i1p1f1" and year == 2002:
        return "days since 2002-01-01", 2 * 365.0, 1.0
    return "days since 2000-01-01", 0.0, 1.0


def realization(member):
    return int(member[1:].split("i")[0])


def write_file(path, mi, member, yi, year):
    units, origin, per = units_of(member, year)
    # Days since 2000-01-01 of each step's middle and bounds (noleap: a year
    # is 365 days).
    mid = 365.0 * yi + np.arange(DAYS) + 0.5
    lo = mid - 0.5

    def enc(d):
        return (d - origin) / per

    ds = netCDF4.Dataset(path, "w", format="NETCDF4")
    ds.setncatts(
        {
            "Conventions": "CF-1.7 CMIP-6.2",
            "title": "MODEL output prepared for CMIP6 (zarrforge ensemble fixture)",
            "source_id": "MODEL",
            "experiment_id": "historical",
            "table_id": "day",
            "grid_label": "gn",
            "frequency": "day",
            "variant_label": member,
            "realization_index": np.int32(realization(member)),
            "initialization_index": np.int32(1),
            "physics_index": np.int32(1),
            "forcing_index": np.int32(1),
            "tracking_id": f"hdl:21.14100/{mi:04d}-{year}",
        }
    )
    ds.createDimension("time", None)
    ds.createDimension("lat", NLAT)
    ds.createDimension("lon", NLON)
    ds.createDimension("bnds", 2)
    t = ds.createVariable("time", "f8", ("time",))
    t.setncatts(
        {
            "units": units,
            "calendar": "noleap",
            "bounds": "time_bnds",
            "axis": "T",
            "standard_name": "time",
            "long_name": "time",
        }
    )
    t[:] = enc(mid)
    tb = ds.createVariable("time_bnds", "f8", ("time", "bnds"), chunksizes=(DAYS, 2))
    tb[:] = enc(np.stack([lo, lo + 1.0], axis=1))
    for name, n, lo_, step, unit, axis, std in (
        ("lat", NLAT, -60.0, 40.0, "degrees_north", "Y", "latitude"),
        ("lon", NLON, 0.0, 72.0, "degrees_east", "X", "longitude"),
    ):
        v = ds.createVariable(name, "f8", (name,))
        v.setncatts(
            {
                "units": unit,
                "axis": axis,
                "standard_name": std,
                "long_name": std.capitalize(),
                "bounds": f"{name}_bnds",
            }
        )
        c = lo_ + step * np.arange(n)
        v[:] = c
        b = ds.createVariable(f"{name}_bnds", "f8", (name, "bnds"))
        b[:] = np.stack([c - step / 2, c + step / 2], axis=1)
    h = ds.createVariable("height", "f8", ())
    h.setncatts(
        {
            "units": "m",
            "axis": "Z",
            "positive": "up",
            "standard_name": "height",
            "long_name": "height",
        }
    )
    h.assignValue(2.0)

    # Global indices of the steps, for values that run on across files.
    step = DAYS * yi + np.arange(DAYS)
    jj, kk = np.meshgrid(np.arange(NLAT), np.arange(NLON), indexing="ij")
    cell = (step[:, None, None] * NLAT * NLON + jj * NLON + kk).astype(np.int64)

    tas = ds.createVariable(
        "tas",
        "f4",
        ("time", "lat", "lon"),
        zlib=True,
        complevel=4,
        shuffle=True,
        chunksizes=(73, NLAT, NLON),
        fill_value=TAS_FILL,
    )
    tas.setncatts(
        {
            "standard_name": "air_temperature",
            "long_name": "Near-Surface Air Temperature",
            "units": "K",
            "cell_methods": "area: mean time: mean",
            "coordinates": "height",
            "missing_value": TAS_FILL,
        }
    )
    data = (
        270.0
        + 0.5 * mi
        + 10.0 * np.sin(2 * np.pi * step[:, None, None] / 365.0)
        - 0.25 * jj
        + 0.125 * kk
        + 0.001 * (cell % 1000)
    ).astype("f4")
    data[(cell + 13 * mi) % 97 == 0] = TAS_FILL
    tas.set_auto_maskandscale(False)
    tas[:] = data

    psl = ds.createVariable(
        "psl", "i2", ("time", "lat", "lon"), chunksizes=(DAYS, NLAT, NLON), fill_value=PSL_FILL
    )
    psl.setncatts(
        {
            "standard_name": "air_pressure_at_mean_sea_level",
            "long_name": "Sea Level Pressure",
            "units": "Pa",
            "scale_factor": PSL_SCALE,
            "add_offset": PSL_OFFSET,
        }
    )
    raw = ((cell * 37 + 1000 * mi) % 6000 + 1000).astype("i2")
    raw[(cell + 7 * mi) % 89 == 0] = PSL_FILL
    psl.set_auto_maskandscale(False)
    psl[:] = raw

    orog = ds.createVariable("orog", "f4", ("lat", "lon"))
    orog.setncatts(
        {"standard_name": "surface_altitude", "long_name": "Surface Altitude", "units": "m"}
    )
    orog[:] = (100.0 * mi + 10.0 * jj + kk).astype("f4")
    ds.close()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("outdir")
    a = p.parse_args()
    os.makedirs(a.outdir, exist_ok=True)
    for f in glob.glob(os.path.join(a.outdir, "*.nc")):
        os.remove(f)
    for mi, member in enumerate(MEMBERS):
        for yi, year in enumerate(YEARS):
            write_file(os.path.join(a.outdir, file_name(member, year)), mi, member, yi, year)


if __name__ == "__main__":
    main()
