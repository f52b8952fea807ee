"""Write the netCDF fixtures of zarrforge's interop test.

usage: make_fixtures.py OUTDIR

Creates OUTDIR (if needed), writes one small netCDF file per topic into it
with netCDF4-python and prints the path of every file written, one a line.
scripts/interop converts each file with zarrforge and checks the store with
tests/interop/compare.py.

Every file is deterministic: its data comes from numpy's random generator with
a fixed seed per file, so a failing fixture can be regenerated exactly. Each
file is a few hundred KB at most.

Files and what they cover:
  numeric_types.nc      the ten numeric dtypes with a _FillValue (some values
                        equal to it) and without one (fill_value=False)
  packed.nc             int16 packed with scale_factor/add_offset as float32
                        and as float64, with _FillValue and missing_value
  nan_floats.nc         float data with NaN and inf and no _FillValue, and a
                        NaN _FillValue
  strings.nc            NC_STRING (1-D, 2-D; empty and non-ASCII UTF-8) and
                        char arrays (S1 with a string-length dimension)
  grid_mapping.nc       scalar int32 grid-mapping variables referenced by
                        grid_mapping attributes
  groups.nc             nested groups (two levels) with their own dims, vars
                        and attrs; an inherited and a shadowed dim; an empty
                        group
  shapes.nc             prime-sized dims (7, 13, 101, 1009), size-1 dims and
                        a 0-d variable
  storage.nc            contiguous; chunked with chunks that do not divide the
                        shape; zlib with and without shuffle; fletcher32
  endian.nc             big-endian storage of float and integer variables
  unlimited_empty.nc    an unlimited dim of length 0 (variables with no
                        records)
  unlimited_records.nc  an unlimited dim with records; a variable written only
                        in part; the unlimited dim not first
  cf_time.nc            CF time (days since 2000-01-01, noleap) with bounds,
                        lat/lon coordinate variables, a scalar coordinate
  attributes.nc         global and variable attributes of every netCDF type
  nc3_classic.nc        NETCDF3_CLASSIC with a record dim, char and byte vars
  nc3_64bit_offset.nc   the same content as NETCDF3_64BIT_OFFSET
  nc3_64bit_data.nc     NETCDF3_64BIT_DATA (CDF5), adding its unsigned and
                        64-bit integer types
  nc4_classic.nc        the same content as nc3_classic.nc as NETCDF4_CLASSIC
"""
import os
import sys
import zlib

import netCDF4
import numpy as np

# The ten numeric netCDF types as numpy dtype codes.
NUMERIC_DTYPES = ["i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8", "f4", "f8"]

# The _FillValue of each dtype in numeric_types.nc. Some are netCDF's default
# fill values (among them the uint64 one, above 2**63, and the float32 one,
# which has no short exact decimal form); others are typical missing codes.
FILL_VALUES = {
    "i1": np.int8(-127),
    "u1": np.uint8(255),
    "i2": np.int16(-999),
    "u2": np.uint16(65535),
    "i4": np.int32(-2147483647),
    "u4": np.uint32(4294967295),
    "i8": np.int64(-9223372036854775806),
    "u8": np.uint64(18446744073709551614),
    "f4": np.float32(9.9692099683868690e36),
    "f8": np.float64(-9999.0),
}


def rng_for(filename):
    """A random generator seeded from the fixture's file name (a CRC, stable
    across runs and Python versions), so each file's data does not depend on
    which other fixtures are written or in what order."""
    return np.random.default_rng(zlib.crc32(filename.encode()))


def random_values(rng, dtype, shape, low=None, high=None):
    """Random values of `dtype`: integers uniform in [low, high] (default: the
    dtype's whole range), floats normal with a standard deviation of 100."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return (rng.standard_normal(shape) * 100).astype(dtype)
    info = np.iinfo(dtype)
    low = info.min if low is None else low
    high = info.max if high is None else high
    return rng.integers(low, high, size=shape, dtype=dtype, endpoint=True)


def values_avoiding_fill(rng, dtype, shape, fill):
    """Random values of `dtype` (integers over the whole range) that never
    equal `fill`, so the only fill values in a variable are those placed on
    purpose."""
    out = random_values(rng, dtype, shape)
    if out.dtype.kind != "f":
        # Move any accidental hit to a neighbour inside the dtype's range.
        one = out.dtype.type(1)
        out[out == fill] = fill - one if fill > np.iinfo(out.dtype).min else fill + one
    assert not (out == fill).any()
    return out


def with_fill_at(values, rng, fill, fraction=0.15):
    """`values` with about `fraction` of the elements set to `fill` (and at
    least the first and last one, so edges are covered)."""
    out = values.copy()
    mask = rng.random(out.shape) < fraction
    mask.flat[0] = mask.flat[-1] = True
    out[mask] = fill
    return out


# --------------------------------------------------------------------------
# netCDF-4 fixtures


def make_numeric_types(path):
    """Each numeric dtype twice, on (y=7, x=13): `fill_<dt>` with the
    _FillValue from FILL_VALUES and some elements equal to it, and
    `nofill_<dt>` created with fill_value=False (no _FillValue attribute, no
    fill written) holding values across the dtype's whole range, including
    its minimum and maximum."""
    rng = rng_for(os.path.basename(path))
    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        ds.createDimension("y", 7)
        ds.createDimension("x", 13)
        for dt in NUMERIC_DTYPES:
            fill = FILL_VALUES[dt]
            v = ds.createVariable(f"fill_{dt}", dt, ("y", "x"), fill_value=fill)
            v.long_name = f"{np.dtype(dt).name} with _FillValue"
            v[:] = with_fill_at(values_avoiding_fill(rng, dt, (7, 13), fill), rng, fill)

            v = ds.createVariable(f"nofill_{dt}", dt, ("y", "x"), fill_value=False)
            v.long_name = f"{np.dtype(dt).name} without _FillValue"
            data = random_values(rng, dt, (7, 13))
            if np.dtype(dt).kind == "f":
                info = np.finfo(dt)
                data[0, :4] = [info.min, info.max, info.tiny, -0.0]
            else:
                info = np.iinfo(dt)
                data[0, :3] = [info.min, info.max, 0]
            v[:] = data


def make_packed(path):
    """int16 data packed with scale_factor/add_offset on (time=5, y=11, x=17).
    `packed_f32` has float32 scale_factor/add_offset (decodes to float32),
    `packed_f64` float64 ones (decodes to float64); both have a _FillValue and
    a different missing_value, and both codes occur in the data.
    `scale_only` has a float32 scale_factor and no add_offset, and
    `missing_only` a missing_value but no _FillValue."""
    rng = rng_for(os.path.basename(path))
    shape = (5, 11, 17)
    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        ds.createDimension("time", shape[0])
        ds.createDimension("y", shape[1])
        ds.createDimension("x", shape[2])

        def packed(name, ftype, scale, offset, fill=None, missing=None, units="K"):
            v = ds.createVariable(name, "i2", ("time", "y", "x"),
                                  fill_value=False if fill is None else np.int16(fill))
            # Write the packed integers as they are.
            v.set_auto_maskandscale(False)
            v.scale_factor = ftype(scale)
            if offset is not None:
                v.add_offset = ftype(offset)
            if missing is not None:
                v.missing_value = np.int16(missing)
            v.units = units
            data = random_values(rng, "i2", shape, -30000, 30000)
            for code in (fill, missing):
                if code is not None:
                    data = with_fill_at(data, rng, np.int16(code), fraction=0.05)
            v[:] = data

        packed("packed_f32", np.float32, 0.01, 273.15, fill=-32767, missing=-32768)
        packed("packed_f64", np.float64, 0.001, 1000.0, fill=-32767, missing=-32768,
               units="hPa")
        packed("scale_only", np.float32, 0.5, None, fill=-32767, units="m")
        packed("missing_only", np.float64, 0.25, -5.0, missing=-32768, units="m s-1")


def make_nan_floats(path):
    """Float data containing NaN, +inf and -inf. `nan_f4`/`nan_f8` have no
    _FillValue (fill_value=False); `nanfill_f4`/`nanfill_f8` use NaN as their
    _FillValue, a common convention."""
    rng = rng_for(os.path.basename(path))
    shape = (13, 7)
    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        ds.createDimension("y", shape[0])
        ds.createDimension("x", shape[1])
        for dt in ("f4", "f8"):
            data = with_fill_at(random_values(rng, dt, shape), rng, np.nan, 0.2)
            data[1, 0], data[1, 1] = np.inf, -np.inf
            v = ds.createVariable(f"nan_{dt}", dt, ("y", "x"), fill_value=False)
            v.units = "1"
            v[:] = data

            v = ds.createVariable(f"nanfill_{dt}", dt, ("y", "x"),
                                  fill_value=np.dtype(dt).type(np.nan))
            v.units = "1"
            v[:] = with_fill_at(random_values(rng, dt, shape), rng, np.nan, 0.2)


# Strings with empty ones, non-ASCII UTF-8 (2-, 3- and 4-byte sequences),
# spaces and a long one.
WORDS = ["alpha", "", "Zürich", "東京", "emoji 🌍", "trailing space ", "x" * 40,
         "naïve café", "Ελληνικά", "", "end"]


def make_strings(path):
    """NC_STRING variables `names` (1-D) and `labels` (2-D), with empty and
    non-ASCII strings, a coordinate `station` of NC_STRING type, and char
    arrays: `station_code` (S1, ASCII, with a strlen dimension),
    `station_utf8` (S1 with _Encoding = "utf-8" holding multi-byte text) and
    `code_2d` (S1 on two dims plus strlen)."""
    rng = rng_for(os.path.basename(path))
    n = len(WORDS)
    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        ds.createDimension("n", n)
        ds.createDimension("row", 3)
        ds.createDimension("col", 4)
        ds.createDimension("strlen", 12)

        v = ds.createVariable("names", str, ("n",))
        v.long_name = "1-D NC_STRING"
        v[:] = np.array(WORDS, dtype=object)

        v = ds.createVariable("labels", str, ("row", "col"))
        v.long_name = "2-D NC_STRING"
        picks = rng.integers(0, n, size=(3, 4))
        v[:] = np.array([[WORDS[i] for i in r] for r in picks], dtype=object)

        v = ds.createVariable("value", "f4", ("n",))
        v.coordinates = "names"
        v[:] = random_values(rng, "f4", (n,))

        ascii_codes = np.array(["ABC", "", "STATION_0042", "a b", "z"] * 2 + ["q"], dtype="S12")
        v = ds.createVariable("station_code", "S1", ("n", "strlen"))
        v.long_name = "char array, ASCII"
        v[:] = netCDF4.stringtochar(ascii_codes)

        utf8 = np.array([w.encode("utf-8") for w in
                         ["Zürich", "東京", "", "café", "Ω", "ascii"] + ["ok"] * 5], dtype="S12")
        v = ds.createVariable("station_utf8", "S1", ("n", "strlen"))
        v.long_name = "char array, UTF-8"
        # Split the bytes into single chars (stringtochar would decode ASCII).
        v[:] = utf8.view("S1").reshape(n, 12)
        # Set after writing: with _Encoding present netCDF4-python would expect
        # str input and convert it itself.
        v._Encoding = "utf-8"

        codes = np.array([[f"r{r}c{c}" for c in range(4)] for r in range(3)], dtype="S12")
        v = ds.createVariable("code_2d", "S1", ("row", "col", "strlen"))
        v[:] = netCDF4.stringtochar(codes)


def make_grid_mapping(path):
    """Two scalar int32 grid-mapping variables: `crs` (Lambert conformal,
    never written, so it reads as netCDF's default int fill, as in most model
    output) used by `tas`, and `crs_latlon` (written) used by `pr`; 1-D
    projection coordinates x/y and 2-D lat/lon auxiliary coordinates."""
    rng = rng_for(os.path.basename(path))
    ny, nx = 11, 13
    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        ds.Conventions = "CF-1.8"
        ds.createDimension("y", ny)
        ds.createDimension("x", nx)

        crs = ds.createVariable("crs", "i4", ())
        crs.grid_mapping_name = "lambert_conformal_conic"
        crs.standard_parallel = np.array([30.0, 60.0])
        crs.longitude_of_central_meridian = -97.0
        crs.latitude_of_projection_origin = 40.0
        crs.false_easting = 0.0
        crs.false_northing = 0.0
        crs.earth_radius = 6371229.0

        ll = ds.createVariable("crs_latlon", "i4", ())
        ll.grid_mapping_name = "latitude_longitude"
        ll.semi_major_axis = 6378137.0
        ll.inverse_flattening = 298.257223563
        ll[...] = 0

        x = ds.createVariable("x", "f8", ("x",))
        x.standard_name = "projection_x_coordinate"
        x.units = "m"
        x[:] = np.arange(nx) * 3000.0 - 18000.0
        y = ds.createVariable("y", "f8", ("y",))
        y.standard_name = "projection_y_coordinate"
        y.units = "m"
        y[:] = np.arange(ny) * 3000.0 - 15000.0

        lat = ds.createVariable("lat", "f4", ("y", "x"))
        lat.standard_name = "latitude"
        lat.units = "degrees_north"
        lat[:] = 40 + random_values(rng, "f4", (ny, nx)) / 1000
        lon = ds.createVariable("lon", "f4", ("y", "x"))
        lon.standard_name = "longitude"
        lon.units = "degrees_east"
        lon[:] = -97 + random_values(rng, "f4", (ny, nx)) / 1000

        tas = ds.createVariable("tas", "f4", ("y", "x"), fill_value=np.float32(1e20))
        tas.units = "K"
        tas.grid_mapping = "crs"
        tas.coordinates = "lat lon"
        tas[:] = 280 + random_values(rng, "f4", (ny, nx)) / 10

        pr = ds.createVariable("pr", "f8", ("y", "x"))
        pr.units = "kg m-2 s-1"
        pr.grid_mapping = "crs_latlon"
        pr[:] = np.abs(random_values(rng, "f8", (ny, nx))) * 1e-6


def make_groups(path):
    """Root with dim x=5; group `g1` with its own dim y=3, a variable on the
    inherited dim x and on y; group `g1/g2` with dim z=4 and its own
    variables (including a string variable); group `sibling` whose dim `x`
    (length 2) shadows the root's; group `empty_group` holding only
    attributes."""
    rng = rng_for(os.path.basename(path))
    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        ds.title = "nested groups"
        ds.createDimension("x", 5)
        v = ds.createVariable("x", "i4", ("x",))
        v[:] = np.arange(5)
        v = ds.createVariable("root_var", "f4", ("x",), fill_value=np.float32(-1))
        v.units = "m"
        v[:] = random_values(rng, "f4", (5,))

        g1 = ds.createGroup("g1")
        g1.purpose = "first level"
        g1.level = np.int32(1)
        g1.createDimension("y", 3)
        v = g1.createVariable("y", "f8", ("y",))
        v.units = "km"
        v[:] = [0.5, 1.5, 2.5]
        v = g1.createVariable("g1_var", "i2", ("y",), fill_value=np.int16(-1))
        v[:] = np.array([1, -1, 3], dtype="i2")
        v = g1.createVariable("uses_parent_dim", "f8", ("x", "y"))
        v.note = "x is the root group's dimension"
        v[:] = random_values(rng, "f8", (5, 3))

        g2 = g1.createGroup("g2")
        g2.purpose = "second level"
        g2.level = np.int32(2)
        g2.createDimension("z", 4)
        v = g2.createVariable("g2_var", "u2", ("z",), fill_value=np.uint16(0))
        v.units = "count"
        v[:] = np.array([0, 7, 8, 9], dtype="u2")
        v = g2.createVariable("g2_grid", "f4", ("y", "z"), zlib=True)
        v[:] = random_values(rng, "f4", (3, 4))
        v = g2.createVariable("g2_names", str, ("z",))
        v[:] = np.array(["a", "", "ü", "last"], dtype=object)

        sib = ds.createGroup("sibling")
        sib.purpose = "shadows the root dim x with a shorter one"
        sib.createDimension("x", 2)
        v = sib.createVariable("short_x", "i8", ("x",))
        v[:] = np.array([-(2**40), 2**40], dtype="i8")

        empty = ds.createGroup("empty_group")
        empty.purpose = "attributes only"


def make_shapes(path):
    """Prime-sized dims a=7, b=13, c=101, p=1009 and size-1 dims one/one2:
    3-D a*b*c, 1-D p, variables with size-1 dims at the start, middle and
    end, one of only size-1 dims, and a 0-d float variable."""
    rng = rng_for(os.path.basename(path))
    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        for name, size in [("a", 7), ("b", 13), ("c", 101), ("p", 1009), ("one", 1), ("one2", 1)]:
            ds.createDimension(name, size)
        ds.createVariable("abc", "f4", ("a", "b", "c"))[:] = random_values(rng, "f4", (7, 13, 101))
        ds.createVariable("p", "i4", ("p",))[:] = random_values(rng, "i4", (1009,))
        ds.createVariable("one_first", "f8", ("one", "c"))[:] = random_values(rng, "f8", (1, 101))
        ds.createVariable("one_middle", "i2", ("b", "one", "a"))[:] = random_values(rng, "i2", (13, 1, 7))
        ds.createVariable("one_last", "u1", ("c", "one"))[:] = random_values(rng, "u1", (101, 1))
        ds.createVariable("ones", "f4", ("one", "one2"))[:] = np.array([[42.5]], dtype="f4")
        v = ds.createVariable("scalar", "f8", ())
        v.units = "1"
        v[...] = 3.14159


def make_storage(path):
    """The same kind of data (t=6, y=37, x=53) stored in different layouts:
    `contiguous`; `chunked_odd` with chunks (4, 10, 16) that divide no dim;
    `zlib_shuffle` (level 4 + shuffle, odd chunks); `zlib_noshuffle` (int32);
    `zlib_fill` (int16 with _FillValue, default chunking); `checksum`
    (fletcher32); and `chunk_whole` with a single chunk of the whole shape."""
    rng = rng_for(os.path.basename(path))
    shape = (6, 37, 53)
    dims = ("t", "y", "x")
    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        for name, size in zip(dims, shape):
            ds.createDimension(name, size)

        v = ds.createVariable("contiguous", "f4", dims, contiguous=True)
        v[:] = random_values(rng, "f4", shape)
        v = ds.createVariable("chunked_odd", "f8", dims, chunksizes=(4, 10, 16))
        v[:] = random_values(rng, "f8", shape)
        v = ds.createVariable("zlib_shuffle", "f4", dims, zlib=True, complevel=4,
                              shuffle=True, chunksizes=(5, 9, 20))
        # Rounded values compress, so the filter really shrinks the chunks.
        v[:] = np.round(random_values(rng, "f4", shape), 1)
        v = ds.createVariable("zlib_noshuffle", "i4", dims, zlib=True, complevel=1,
                              shuffle=False, chunksizes=(6, 37, 7))
        v[:] = random_values(rng, "i4", shape, -1000, 1000)
        v = ds.createVariable("zlib_fill", "i2", dims, zlib=True, shuffle=True,
                              fill_value=np.int16(-32767))
        v[:] = with_fill_at(random_values(rng, "i2", shape, 0, 500), rng, np.int16(-32767))
        v = ds.createVariable("checksum", "f4", dims, fletcher32=True, chunksizes=(3, 37, 53))
        v[:] = random_values(rng, "f4", shape)
        v = ds.createVariable("chunk_whole", "u2", dims, zlib=True, chunksizes=shape)
        v[:] = random_values(rng, "u2", shape)


def make_endian(path):
    """Big-endian storage (endian='big') of f4, f8, i2, i4, i8, u4, one of them
    with a _FillValue and one zlib+shuffle compressed; a little-endian f4 for
    comparison."""
    rng = rng_for(os.path.basename(path))
    shape = (13, 7)
    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        ds.createDimension("y", shape[0])
        ds.createDimension("x", shape[1])
        for dt in ("f4", "f8", "i2", "i4", "i8", "u4"):
            v = ds.createVariable(f"big_{dt}", f">{dt}", ("y", "x"), endian="big")
            v[:] = random_values(rng, dt, shape)
        v = ds.createVariable("big_f4_fill", ">f4", ("y", "x"), endian="big",
                              fill_value=np.float32(-999.5))
        v[:] = with_fill_at(random_values(rng, "f4", shape), rng, np.float32(-999.5))
        v = ds.createVariable("big_i4_zlib", ">i4", ("y", "x"), endian="big",
                              zlib=True, shuffle=True, chunksizes=(5, 4))
        v[:] = random_values(rng, "i4", shape, -100000, 100000)
        v = ds.createVariable("little_f4", "<f4", ("y", "x"), endian="little")
        v[:] = random_values(rng, "f4", shape)


def make_unlimited_empty(path):
    """An unlimited dim `rec` with no records: its coordinate variable and a
    2-D variable on (rec, x) have shape (0, ...); a fixed-size variable
    alongside."""
    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        ds.createDimension("rec", None)
        ds.createDimension("x", 4)
        v = ds.createVariable("rec", "f8", ("rec",))
        v.units = "days since 2000-01-01"
        v = ds.createVariable("empty_2d", "i4", ("rec", "x"), fill_value=np.int32(-1))
        v.long_name = "no records written"
        ds.createVariable("x", "f4", ("x",))[:] = np.arange(4, dtype="f4") * 0.5


def make_unlimited_records(path):
    """An unlimited dim `time` with 5 records: coordinate `time`, `obs` on
    (time, station) written fully, `partial` (with _FillValue) written for the
    first 3 records only, so the last 2 read as fill, and `late_unlim` with
    the unlimited dim last, on (station, time)."""
    rng = rng_for(os.path.basename(path))
    nt, ns = 5, 3
    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        ds.createDimension("time", None)
        ds.createDimension("station", ns)
        t = ds.createVariable("time", "f8", ("time",))
        t.units = "hours since 2020-01-01 00:00:00"
        t.calendar = "standard"
        t[:] = np.arange(nt) * 6.0
        ds.createVariable("station", "i4", ("station",))[:] = np.array([101, 205, 309], "i4")
        v = ds.createVariable("obs", "f4", ("time", "station"))
        v[:] = random_values(rng, "f4", (nt, ns))
        v = ds.createVariable("partial", "f8", ("time", "station"), fill_value=-1e30)
        v[:3] = random_values(rng, "f8", (3, ns))
        v = ds.createVariable("late_unlim", "i2", ("station", "time"))
        v[:, :nt] = random_values(rng, "i2", (ns, nt))


def make_cf_time(path):
    """A CF dataset: `time` in days since 2000-01-01 with calendar noleap (its
    values cross Feb 28 -> Mar 1 and year ends, one is fractional),
    `time_bnds` referenced by time:bounds, lat/lon coordinate variables with
    units/standard_name/axis, a scalar coordinate `height` and a data
    variable `tas` listing it in `coordinates`."""
    rng = rng_for(os.path.basename(path))
    times = np.array([0.0, 31.0, 58.0, 59.0, 364.0, 365.0, 730.5])
    nt, nlat, nlon = len(times), 6, 8
    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        ds.Conventions = "CF-1.8"
        ds.createDimension("time", None)
        ds.createDimension("lat", nlat)
        ds.createDimension("lon", nlon)
        ds.createDimension("bnds", 2)

        t = ds.createVariable("time", "f8", ("time",))
        t.units = "days since 2000-01-01"
        t.calendar = "noleap"
        t.standard_name = "time"
        t.axis = "T"
        t.bounds = "time_bnds"
        t[:] = times
        tb = ds.createVariable("time_bnds", "f8", ("time", "bnds"))
        tb[:] = np.stack([times - 0.5, times + 0.5], axis=1)

        lat = ds.createVariable("lat", "f4", ("lat",))
        lat.units = "degrees_north"
        lat.standard_name = "latitude"
        lat.long_name = "latitude"
        lat.axis = "Y"
        lat[:] = np.linspace(-75, 75, nlat, dtype="f4")
        lon = ds.createVariable("lon", "f4", ("lon",))
        lon.units = "degrees_east"
        lon.standard_name = "longitude"
        lon.long_name = "longitude"
        lon.axis = "X"
        lon[:] = np.arange(nlon, dtype="f4") * 45

        h = ds.createVariable("height", "f8", ())
        h.units = "m"
        h.standard_name = "height"
        h.positive = "up"
        h[...] = 2.0

        tas = ds.createVariable("tas", "f4", ("time", "lat", "lon"), fill_value=np.float32(1e20))
        tas.units = "K"
        tas.standard_name = "air_temperature"
        tas.cell_methods = "time: mean"
        tas.coordinates = "height"
        tas[:] = with_fill_at(280 + random_values(rng, "f4", (nt, nlat, nlon)) / 10,
                              rng, np.float32(1e20), 0.05)


def set_typed_attributes(obj):
    """Attributes of every netCDF attribute type on `obj` (a Dataset or a
    Variable): one of each numeric type (using extreme values where JSON or
    float conversion could lose them), text (ASCII, empty, non-ASCII, which
    netCDF4-python writes as NC_STRING), numeric arrays, and NC_STRING
    scalars and arrays."""
    obj.att_i1 = np.int8(-128)
    obj.att_u1 = np.uint8(255)
    obj.att_i2 = np.int16(-32768)
    obj.att_u2 = np.uint16(65535)
    obj.att_i4 = np.int32(-2147483648)
    obj.att_u4 = np.uint32(4294967295)
    obj.att_i8 = np.int64(-9223372036854775807)
    obj.att_u8 = np.uint64(18446744073709551615)
    obj.att_f4 = np.float32(0.1)
    obj.att_f8 = np.float64(0.1)
    obj.att_f8_big = np.float64(1.7976931348623157e308)
    obj.att_text = "plain ASCII text"
    obj.att_text_empty = ""
    obj.att_text_utf8 = "Zürich, 東京 🌍"
    obj.att_list_i1 = np.array([-1, 0, 1], dtype="i1")
    obj.att_list_u2 = np.array([0, 65535], dtype="u2")
    obj.att_list_i4 = np.array([1, 2, 3], dtype="i4")
    obj.att_list_i8 = np.array([-(2**62), 2**62], dtype="i8")
    obj.att_list_u8 = np.array([0, 2**64 - 1], dtype="u8")
    obj.att_list_f4 = np.array([0.5, -1.25, 3.1], dtype="f4")
    obj.att_list_f8 = np.array([0.1, 1e-300, -2.5], dtype="f8")
    obj.att_single_element_list = np.array([7], dtype="i4")
    obj.setncattr_string("att_string", "an NC_STRING attribute")
    obj.setncattr_string("att_string_empty", "")
    obj.att_string_list = ["several", "NC_STRING", "", "values ü"]


def make_attributes(path):
    """Global attributes of every type (set_typed_attributes), the same on a
    variable, plus the CF flag attributes flag_values/flag_meanings and an
    int16 valid_range on an int16 variable."""
    rng = rng_for(os.path.basename(path))
    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        set_typed_attributes(ds)
        ds.createDimension("x", 6)
        v = ds.createVariable("var", "f4", ("x",))
        set_typed_attributes(v)
        v[:] = random_values(rng, "f4", (6,))
        v = ds.createVariable("flags", "i1", ("x",))
        v.flag_values = np.array([0, 1, 2], dtype="i1")
        v.flag_meanings = "clear cloudy unknown"
        v.valid_range = np.array([0, 2], dtype="i1")
        v[:] = np.array([0, 1, 2, 0, 1, 2], dtype="i1")
        v = ds.createVariable("ranged", "i2", ("x",))
        v.valid_range = np.array([-100, 100], dtype="i2")
        v.valid_min = np.int16(-100)
        v[:] = random_values(rng, "i2", (6,), -100, 100)


# --------------------------------------------------------------------------
# Classic-model fixtures (netCDF-3 formats and NETCDF4_CLASSIC)


def write_classic_content(ds, rng, cdf5=False):
    """Content valid in the classic data model: a record dim `time` with 4
    records, fixed dims, byte/short/int/float/double variables with and
    without _FillValue, a char array (station names), a byte variable with
    _Unsigned = "true", a 0-d variable and global attributes. With `cdf5`,
    also the types only CDF5 adds (u1, u2, u4, i8, u8)."""
    ds.title = "classic data model"
    ds.history = "written by tests/interop/make_fixtures.py"
    ds.version = np.int32(3)
    ds.resolution = np.float32(0.25)
    ds.bounds = np.array([-1.5, 2.5])
    nt, nlat, nlon, ns = 4, 5, 7, 3
    ds.createDimension("time", None)
    ds.createDimension("lat", nlat)
    ds.createDimension("lon", nlon)
    ds.createDimension("station", ns)
    ds.createDimension("name_strlen", 8)

    t = ds.createVariable("time", "f8", ("time",))
    t.units = "days since 1990-01-01"
    t[:] = np.arange(nt) * 1.5
    lat = ds.createVariable("lat", "f4", ("lat",))
    lat.units = "degrees_north"
    lat[:] = np.linspace(-60, 60, nlat, dtype="f4")
    lon = ds.createVariable("lon", "f4", ("lon",))
    lon.units = "degrees_east"
    lon[:] = np.linspace(0, 300, nlon, dtype="f4")

    v = ds.createVariable("temp", "f4", ("time", "lat", "lon"), fill_value=np.float32(-999))
    v.units = "degC"
    v[:] = with_fill_at(random_values(rng, "f4", (nt, nlat, nlon)) / 10, rng, np.float32(-999))
    v = ds.createVariable("counts", "i2", ("time", "station"))
    v[:] = random_values(rng, "i2", (nt, ns))
    v = ds.createVariable("ids", "i4", ("station",), fill_value=np.int32(-1))
    v[:] = np.array([17, -1, 23], dtype="i4")
    v = ds.createVariable("heights", "f8", ("station",))
    v[:] = random_values(rng, "f8", (ns,))
    v = ds.createVariable("quality", "i1", ("time", "station"), fill_value=np.int8(-127))
    v[:] = with_fill_at(random_values(rng, "i1", (nt, ns), -100, 100), rng, np.int8(-127))
    # Unsigned bytes in a signed byte variable, as netCDF-3 satellite products
    # store them; -1 (255 unsigned) is the fill.
    v = ds.createVariable("ubyte_as_byte", "i1", ("lat", "lon"), fill_value=np.int8(-1))
    v._Unsigned = "true"
    v[:] = with_fill_at(random_values(rng, "i1", (nlat, nlon), -128, 127), rng, np.int8(-1), 0.1)
    names = np.array(["north", "", "south_po"], dtype="S8")
    v = ds.createVariable("station_name", "S1", ("station", "name_strlen"))
    v.long_name = "station name"
    v[:] = netCDF4.stringtochar(names)
    v = ds.createVariable("level", "i4", ())
    v[...] = 850

    if cdf5:
        for dt in ("u1", "u2", "u4", "i8", "u8"):
            fill = FILL_VALUES[dt]
            v = ds.createVariable(f"cdf5_{dt}", dt, ("time", "station"), fill_value=fill)
            v[:] = with_fill_at(values_avoiding_fill(rng, dt, (nt, ns), fill), rng, fill, 0.2)


def make_classic(fmt, cdf5=False):
    """A writer of write_classic_content in netCDF format `fmt`."""
    def make(path):
        with netCDF4.Dataset(path, "w", format=fmt) as ds:
            write_classic_content(ds, rng_for(os.path.basename(path)), cdf5=cdf5)
    make.__doc__ = f"Classic-model content as {fmt}."
    return make


def make_awkward_fills(path):
    """Fill values other writers leave behind (issue: real files): a NaN
    _FillValue on a packed int16 (written with h5py, as netCDF-C refuses a
    fill of another type), a fill of another but exact type, a char fill of
    NUL and a string fill; xarray must decode the store as the source."""
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("x", 6)
        ds.createDimension("c", 3)
        u = ds.createVariable("u_wind", "i2", ("x",))
        u.set_auto_maskandscale(False)
        u[:] = np.array([0, 1, -5, 0, 7, 0], dtype=np.int16)
        u.scale_factor = np.float32(0.01)
        u.add_offset = np.float32(0.0)
        w = ds.createVariable("w", "i4", ("x",))
        w[:] = np.array([1, -999, 3, 4, -999, 6], dtype=np.int32)
        ch = ds.createVariable("label", "S1", ("x", "c"), fill_value=b"\x00")
        ch[0, :] = np.array([b"a", b"b", b"c"])
        ch[2, 0] = b"z"
        st = ds.createVariable("station", str, ("x",), fill_value="NA")
        st[0] = "alpha"
        st[3] = "NA"
        st[4] = "delta"
    import h5py
    with h5py.File(path, "a") as f:
        f["u_wind"].attrs["_FillValue"] = np.float64(np.nan)
        f["w"].attrs["_FillValue"] = np.float64(-999.0)


def make_awkward_structure(path):
    """Structures from real files: NIL (never written) strings, a variable
    named like a dimension but not its coordinate, an unlimited dimension no
    variable uses, an enum variable, non-finite float attributes and a NUL
    inside a text attribute."""
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("time", None)
        ds.createDimension("x", 4)
        ds.createDimension("y", 2)
        s = ds.createVariable("names", str, ("x",))
        s[1] = "only one written"
        nc = ds.createVariable("x", "f4", ("y",))
        nc[:] = [1.5, 2.5]
        z = ds.createVariable("z", "f8", ("x",))
        z[:] = [1, 2, 3, 4]
        et = ds.createEnumType(np.uint8, "cloud_t", {"clear": 0, "cloudy": 1, "missing": 255})
        e = ds.createVariable("cloud", et, ("x",), fill_value=255)
        e[:] = np.array([0, 1, 255, 1], dtype=np.uint8)
        ds.setncattr("nan_attr", np.float32(np.nan))
        ds.setncattr("inf_attrs", np.array([np.inf, -np.inf, 1.0]))
        z.setncattr("valid_max", np.float64(np.inf))
        ds.note = "before\x00after"


# File name -> writer, in the order they are written.
FIXTURES = {
    "numeric_types.nc": make_numeric_types,
    "packed.nc": make_packed,
    "nan_floats.nc": make_nan_floats,
    "strings.nc": make_strings,
    "grid_mapping.nc": make_grid_mapping,
    "groups.nc": make_groups,
    "shapes.nc": make_shapes,
    "storage.nc": make_storage,
    "endian.nc": make_endian,
    "unlimited_empty.nc": make_unlimited_empty,
    "unlimited_records.nc": make_unlimited_records,
    "cf_time.nc": make_cf_time,
    "attributes.nc": make_attributes,
    "nc3_classic.nc": make_classic("NETCDF3_CLASSIC"),
    "nc3_64bit_offset.nc": make_classic("NETCDF3_64BIT_OFFSET"),
    "nc3_64bit_data.nc": make_classic("NETCDF3_64BIT_DATA", cdf5=True),
    "nc4_classic.nc": make_classic("NETCDF4_CLASSIC"),
    "awkward_fills.nc": make_awkward_fills,
    "awkward_structure.nc": make_awkward_structure,
}


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__.split("\n\n")[1])
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    for name, make in FIXTURES.items():
        path = os.path.join(outdir, name)
        make(path)  # mode "w" replaces an existing file
        print(path)


if __name__ == "__main__":
    main()
