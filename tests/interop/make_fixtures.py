"""Write the netCDF fixtures of zarrforge's interop test.

usage: make_fixtures.py OUTDIR

Creates OUTDIR (if needed) and writes one small netCDF file per topic into it
with netCDF4-python, then prints the path of every file written, one a line.
scripts/interop converts each file with zarrforge and checks the store with
tests/interop/compare.py.

Every file is deterministic: its data comes from numpy's random generator with
a fixed seed per file, so a failing fixture can be regenerated exactly. Files
are a few hundred KB at most.

Topics (file name: what it covers):
  numeric_types.nc     all ten numeric dtypes with a _FillValue (some values
                       equal to it) and without one (fill_value=False)
  packed.nc            int16 packed with scale_factor/add_offset as float32
                       and float64, with _FillValue and missing_value
  nan_floats.nc        float data with NaN (and inf) and no _FillValue, and a
                       NaN _FillValue
  strings.nc           NC_STRING (1-D, 2-D; empty and non-ASCII UTF-8) and
                       char arrays (S1 with a string-length dimension)
  grid_mapping.nc      scalar int32 grid-mapping variables referenced by a
                       grid_mapping attribute
  groups.nc            nested groups (two levels) with their own dims, vars,
                       attrs; an inherited and a shadowed dim; an empty group
  shapes.nc            prime-sized dims (7, 13, 101, 1009), size-1 dims and a
                       0-d variable
  storage.nc           contiguous, chunked with chunks that do not divide the
                       shape, zlib with and without shuffle, fletcher32
  endian.nc            big-endian storage of float and int variables
  unlimited_empty.nc   an unlimited dim of length 0 (variables with no records)
  unlimited_records.nc an unlimited dim with records, one variable written
                       only partly, the unlimited dim not first
  cf_time.nc           CF time (days since 2000-01-01, noleap) with bounds,
                       lat/lon coordinate variables, a scalar coordinate
  attributes.nc        global and variable attributes of every netCDF type
  nc3_classic.nc       NETCDF3_CLASSIC with a record dim, char and byte vars
  nc3_64bit_offset.nc  the same content as NETCDF3_64BIT_OFFSET
  nc3_64bit_data.nc    NETCDF3_64BIT_DATA (CDF5), adding its unsigned and
                       64-bit types
  nc4_classic.nc       the same content as NETCDF4_CLASSIC
"""
import os
import sys

import netCDF4
import numpy as np

# Numeric dtypes and the _FillValue each gets in numeric_types.nc. Some are
# the netCDF default fill values (including the uint64 one, above 2**63, and
# the float32 one, not exactly representable as a short decimal); others are
# typical "missing" codes.
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


def rng_for(name):
    """A random generator seeded from the fixture's name, independent of the
    order in which fixtures are written."""
    return np.random.default_rng(sum(name.encode()) * 7919 + len(name))


def random_values(rng, dtype, shape, low=None, high=None):
    """Random values of `dtype` in [low, high] (default: the dtype's range;
    for floats, a normal distribution scaled to be non-trivial)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return (rng.standard normal(shape) * 100).astype(dtype) if False else (rng.standard_normal(shape) * 100).astype(dtype)
    info = np.iinfo(dtype)
    low = info.min if low is None else low
    high = info.max if high is None else high
    return rng.integers(low, high, size=shape, dtype=dtype, endpoint=True)
