"""Seed files for the mutation test: small, feature-rich netCDF files written
at test time from CDL with ncgen (netCDF-C, the library zarrforge links).

    python3 seeds.py OUTDIR      # writes cdf1.nc cdf2.nc cdf5.nc nc4.nc nc4c.nc

Every value is derived from a fixed random.Random, so the seeds (and hence
the mutants) are the same on every run with the same ncgen.
"""
import os
import random
import subprocess
import sys

NAN = "NaN"


def _floats(rng, n, lo, hi, nan_every=0, fill=None, fill_every=0, digits=4):
    out = []
    for i in range(n):
        if nan_every and i % nan_every == nan_every - 1:
            out.append(NAN)
        elif fill is not None and fill_every and i % fill_every == fill_every // 2:
            out.append(fill)
        else:
            out.append(repr(round(rng.uniform(lo, hi), digits)))
    return out


def _ints(rng, n, lo, hi, suffix=""):
    return [f"{rng.randint(lo, hi)}{suffix}" for _ in range(n)]


def _data(name, values, per_line=10):
    lines = [", ".join(values[i:i + per_line]) for i in range(0, len(values), per_line)]
    return f" {name} =\n  " + ",\n  ".join(lines) + " ;\n"


def _strings(values):
    return ", ".join('"' + v.replace('"', '\\"') + '"' for v in values)


def cdl_classic(name, rng, kind):
    """netCDF-3 (CDF1/CDF2): a record dimension with several record variables,
    fixed variables of every classic type, a scalar, chars, attributes."""
    nt, nlat, nlon, nst, sl = 9, 10, 14, 4, 12
    d = [f"netcdf {name} {{\n"]
    d.append("dimensions:\n")
    d.append(f"  time = UNLIMITED ; // ({nt} currently)\n")
    d.append(f"  lat = {nlat} ;\n  lon = {nlon} ;\n  station = {nst} ;\n  strlen = {sl} ;\n  nv = 2 ;\n")
    d.append("variables:\n")
    d.append('  double time(time) ;\n    time:units = "hours since 2000-01-01" ;\n'
             '    time:calendar = "standard" ;\n    time:axis = "T" ;\n')
    d.append('  float lat(lat) ;\n    lat:units = "degrees_north" ;\n    lat:bounds = "lat_bnds" ;\n')
    d.append('  float lon(lon) ;\n    lon:units = "degrees_east" ;\n')
    d.append("  double lat_bnds(lat, nv) ;\n")
    d.append('  float t2m(time, lat, lon) ;\n    t2m:_FillValue = -9999.f ;\n'
             '    t2m:missing_value = -8888.f ;\n    t2m:units = "K" ;\n'
             '    t2m:valid_range = 100.f, 400.f ;\n')
    d.append('  short pk(time, lat, lon) ;\n    pk:scale_factor = 0.01 ;\n'
             '    pk:add_offset = 273.15 ;\n    pk:_FillValue = -32767s ;\n')
    d.append('  byte flag(time, station) ;\n    flag:flag_values = 0b, 1b, 2b ;\n'
             '    flag:flag_meanings = "ok suspect bad" ;\n')
    d.append("  char label(time, strlen) ;\n")
    d.append('  char station_name(station, strlen) ;\n    station_name:cf_role = "timeseries_id" ;\n')
    d.append('  int count(station) ;\n    count:_FillValue = -1 ;\n')
    d.append('  double height ;\n    height:units = "m" ;\n')
    if kind == 2:
        d.append("  short odd(station, nv) ;\n")
    d.append("\n")
    d.append('  :title = "zarrforge mutation seed" ;\n  :Conventions = "CF-1.8" ;\n')
    d.append("  :version = 3 ;\n  :valid_shorts = -5s, 0s, 5s ;\n  :pi = 3.141592653589793 ;\n")
    d.append("  :ratio = 0.5f, 1.5f ;\n  :bytes = 1b, -2b, 3b ;\n  :empty = \"\" ;\n")
    d.append("data:\n\n")
    d.append(_data("time", [repr(float(6 * i)) for i in range(nt)]))
    d.append(_data("lat", [repr(-45.0 + 10 * i) for i in range(nlat)]))
    d.append(_data("lon", [repr(0.0 + 25 * i) for i in range(nlon)]))
    d.append(_data("lat_bnds", [repr(-50.0 + 10 * i + 10 * j) for i in range(nlat) for j in range(2)]))
    d.append(_data("t2m", _floats(rng, nt * nlat * nlon, 200, 320, nan_every=37, fill="-9999", fill_every=23)))
    d.append(_data("pk", _ints(rng, nt * nlat * nlon, -30000, 30000)))
    d.append(_data("flag", _ints(rng, nt * nst, 0, 2)))
    d.append(" label = " + _strings([f"step {i:02d}" for i in range(nt)]) + " ;\n")
    d.append(" station_name = " + _strings(["alpha", "bravo", "charlie-12ch", "d"]) + " ;\n")
    d.append(_data("count", ["7", "-1", "2147483647", "-2147483648"]))
    d.append(" height = 2.5 ;\n")
    if kind == 2:
        d.append(_data("odd", _ints(rng, nst * 2, -100, 100)))
    d.append("}\n")
    return "".join(d)


def cdl_single_record(name, rng):
    """CDF2 variant: exactly one record variable (netCDF-3 then does not pad
    the record), of an odd-sized type, plus a larger fixed variable."""
    nrec, nx, ny = 11, 5, 40
    d = [f"netcdf {name} {{\ndimensions:\n  rec = UNLIMITED ;\n  x = {nx} ;\n  y = {ny} ;\n"]
    d.append("variables:\n")
    d.append('  short series(rec, x) ;\n    series:long_name = "the only record variable" ;\n')
    d.append('  double field(y, x) ;\n    field:_FillValue = 9.96920996838687e+36 ;\n')
    d.append("  byte tiny(x) ;\n  int x(x) ;\n")
    d.append('  :source = "seed" ;\n  :doubles = 1.0, -0.0, 1.0e300 ;\n')
    d.append("data:\n")
    d.append(_data("series", _ints(rng, nrec * nx, -32768, 32767)))
    d.append(_data("field", _floats(rng, ny * nx, -1e6, 1e6, nan_every=29)))
    d.append(_data("tiny", _ints(rng, nx, -128, 127)))
    d.append(_data("x", [str(i) for i in range(nx)]))
    d.append("}\n")
    return "".join(d)


def cdl_cdf5(name, rng):
    """CDF5: the unsigned and 64-bit types, as variables and attributes."""
    nt, n = 6, 24
    d = [f"netcdf {name} {{\ndimensions:\n  time = UNLIMITED ;\n  n = {n} ;\n  m = 3 ;\n"]
    d.append("variables:\n")
    d.append('  int64 time(time) ;\n    time:units = "seconds since 1970-01-01" ;\n')
    d.append("  int n(n) ;\n")
    d.append('  ubyte ub(time, n) ;\n    ub:_FillValue = 255UB ;\n    ub:valid_max = 250UB ;\n')
    d.append('  ushort us(time, n) ;\n    us:scale_factor = 0.5f ;\n')
    d.append('  uint ui(n) ;\n    ui:big = 4294967295U ;\n')
    d.append('  int64 i64(time, n) ;\n    i64:_FillValue = -9223372036854775806LL ;\n')
    d.append('  uint64 u64(n, m) ;\n    u64:limits = 0ULL, 18446744073709551615ULL ;\n')
    d.append("  double d(time, m) ;\n  float f(m) ;\n  char c(m) ;\n")
    d.append('  :history = "cdf5 seed" ;\n  :ll = -9223372036854775807LL, 42LL ;\n'
             "  :us = 65535US, 1US ;\n  :ui = 4000000000U ;\n  :ub = 1UB, 2UB ;\n")
    d.append("data:\n")
    d.append(_data("time", [str(1_600_000_000 + 3600 * i) for i in range(nt)]))
    d.append(_data("n", [str(i) for i in range(n)]))
    d.append(_data("ub", _ints(rng, nt * n, 0, 255)))
    d.append(_data("us", _ints(rng, nt * n, 0, 65535)))
    d.append(_data("ui", _ints(rng, n, 0, 4294967295)))
    d.append(_data("i64", _ints(rng, nt * n, -(2 ** 62), 2 ** 62)))
    d.append(_data("u64", _ints(rng, n * 3, 0, 2 ** 64 - 1)))
    d.append(_data("d", _floats(rng, nt * 3, -1, 1, nan_every=5)))
    d.append(' f = 1.5, NaN, -0 ;\n c = "ab\\000" ;\n')
    d.append("}\n")
    return "".join(d)


def cdl_nc4(name, rng):
    """netCDF-4 (HDF5): groups, an unlimited dimension with records, a
    chunked + deflate + shuffle variable, a contiguous one, char and string
    variables, attributes of several types, coordinate variables."""
    nt, ny, nx = 12, 30, 40
    d = [f"netcdf {name} {{\ndimensions:\n  time = UNLIMITED ;\n  y = {ny} ;\n  x = {nx} ;\n  nchar = 8 ;\n"]
    d.append("variables:\n")
    d.append('  double time(time) ;\n    time:units = "days since 2001-01-01" ;\n')
    d.append('  float y(y) ;\n    y:units = "m" ;\n')
    d.append('  float x(x) ;\n    x:units = "m" ;\n')
    d.append('  float temp(time, y, x) ;\n    temp:_FillValue = 1.e+20f ;\n    temp:_Storage = "chunked" ;\n'
             '    temp:_ChunkSizes = 4, 15, 20 ;\n    temp:_DeflateLevel = 4 ;\n    temp:_Shuffle = "true" ;\n'
             '    temp:long_name = "temperature" ;\n')
    d.append('  short elev(y, x) ;\n    elev:_Storage = "contiguous" ;\n    elev:scale_factor = 0.1f ;\n')
    d.append('  int64 big(time) ;\n    big:_Storage = "chunked" ;\n    big:_ChunkSizes = 5 ;\n'
             '    big:_Endianness = "big" ;\n')
    d.append('  char code(y, nchar) ;\n    code:_Storage = "contiguous" ;\n')
    d.append('  string names(x) ;\n    names:_Storage = "chunked" ;\n    names:_ChunkSizes = 16 ;\n')
    d.append("  ubyte mask(y, x) ;\n    mask:_Storage = \"chunked\" ;\n    mask:_ChunkSizes = 30, 40 ;\n"
             "    mask:_DeflateLevel = 1 ;\n")
    d.append('\n  string :title = "netCDF-4 mutation seed" ;\n  :int64s = 1LL, -9223372036854775807LL ;\n'
             '  :ubytes = 0UB, 255UB ;\n  :floats = 1.5f, NaNf, -Infinityf ;\n  :c = "text attribute" ;\n'
             '  string :strings = "a", "bc", "" ;\n')
    d.append("data:\n")
    d.append(_data("time", [repr(0.25 * i) for i in range(nt)]))
    d.append(_data("y", [repr(float(i * 1000)) for i in range(ny)]))
    d.append(_data("x", [repr(float(i * 500)) for i in range(nx)]))
    d.append(_data("temp", _floats(rng, nt * ny * nx, 250, 300, nan_every=101, fill="1.e+20f", fill_every=53, digits=2)))
    d.append(_data("elev", _ints(rng, ny * nx, -500, 9000)))
    d.append(_data("big", _ints(rng, nt, -(2 ** 62), 2 ** 62)))
    d.append(" code = " + _strings([f"c{i:03d}" for i in range(ny)]) + " ;\n")
    d.append(" names = " + _strings([f"name{i}" if i % 7 else "" for i in range(nx)]) + " ;\n")
    d.append(_data("mask", _ints(rng, ny * nx, 0, 1)))
    d.append("\ngroup: obs {\n  dimensions:\n    station = 5 ;\n    obs = UNLIMITED ;\n  variables:\n")
    d.append('    int station(station) ;\n    double value(obs, station) ;\n      value:_FillValue = -999. ;\n'
             '      value:_Storage = "chunked" ;\n      value:_ChunkSizes = 3, 5 ;\n      value:_Shuffle = "true" ;\n'
             '      value:_DeflateLevel = 9 ;\n')
    d.append('    string station_id(station) ;\n    ushort qc(obs) ;\n')
    d.append('  string :kind = "surface" ;\n  :nums = 1s, 2s ;\n')
    d.append("  data:\n")
    d.append(_data("  station", [str(100 + i) for i in range(5)]))
    d.append(_data("  value", _floats(rng, 7 * 5, -10, 40, nan_every=11, fill="-999", fill_every=9)))
    d.append('   station_id = "A1", "béta", "", "with space", "日本" ;\n')
    d.append(_data("  qc", _ints(rng, 7, 0, 65535)))
    d.append("\n  group: nested {\n    variables:\n      byte deep(station) ;\n        deep:_FillValue = -127b ;\n"
             "    data:\n      deep = 1, -2, _, 4, 127 ;\n  } // group nested\n")
    d.append("} // group obs\n")
    d.append("}\n")
    return "".join(d)


def cdl_nc4_classic(name, rng):
    """netCDF-4 classic model: HDF5 without groups or new types, a record
    dimension shared by two chunked variables, one of them big-endian."""
    nt, nz = 20, 16
    d = [f"netcdf {name} {{\ndimensions:\n  t = UNLIMITED ;\n  z = {nz} ;\nvariables:\n"]
    d.append("  int t(t) ;\n  float z(z) ;\n")
    d.append('  double prof(t, z) ;\n    prof:_ChunkSizes = 8, 16 ;\n    prof:_DeflateLevel = 2 ;\n'
             '    prof:_Shuffle = "true" ;\n    prof:_Fletcher32 = "true" ;\n')
    d.append('  int cnt(t) ;\n    cnt:_Endianness = "big" ;\n')
    d.append('  :about = "nc4 classic seed" ;\n')
    d.append("data:\n")
    d.append(_data("t", [str(i) for i in range(nt)]))
    d.append(_data("z", [repr(float(i) * 0.5) for i in range(nz)]))
    d.append(_data("prof", _floats(rng, nt * nz, -5, 5, nan_every=17)))
    d.append(_data("cnt", _ints(rng, nt, -1000, 1000)))
    d.append("}\n")
    return "".join(d)


# name -> (ncgen -k kind, CDL builder)
SEEDS = {
    "cdf1": ("classic", lambda n, r: cdl_classic(n, r, 1)),
    "cdf2": ("64-bit offset", lambda n, r: cdl_classic(n, r, 2)),
    "cdf2r": ("64-bit offset", cdl_single_record),
    "cdf5": ("64-bit data", cdl_cdf5),
    "nc4": ("netCDF-4", cdl_nc4),
    "nc4c": ("netCDF-4 classic model", cdl_nc4_classic),
}


def make_seeds(outdir):
    os.makedirs(outdir, exist_ok=True)
    paths = {}
    for i, (name, (kind, build)) in enumerate(SEEDS.items()):
        rng = random.Random(1000 + i)
        cdl = os.path.join(outdir, name + ".cdl")
        nc = os.path.join(outdir, name + ".nc")
        with open(cdl, "w", encoding="utf-8") as f:
            f.write(build(name, rng))
        if os.path.exists(nc):
            os.remove(nc)
        if kind == "64-bit data":
            # ncgen 4.9.0 writes CDF5 int64 variables as int: write netCDF-4,
            # then let nccopy write the CDF5 file.
            tmp = nc + ".nc4"
            subprocess.run(["ncgen", "-k", "netCDF-4", "-o", tmp, cdl], check=True)
            subprocess.run(["nccopy", "-k", "cdf5", tmp, nc], check=True)
            os.remove(tmp)
        else:
            subprocess.run(["ncgen", "-k", kind, "-o", nc, cdl], check=True)
        paths[name] = nc
    return paths


if __name__ == "__main__":
    for name, path in make_seeds(sys.argv[1]).items():
        print(f"{name}\t{os.path.getsize(path)}\t{path}")
