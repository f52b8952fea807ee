"""Reads a netCDF file with the system's netCDF-C (the library behind
/usr/bin/ncdump and the one zarrforge is built against), through ctypes.

    python3 refc.py FILE OUT.pickle

Writes the same tree as compare.read_netcdf4 builds from netCDF4-python:
{group path: {"vars": {name: {"dims", "shape", "kind", "dtype", "data"}}}},
raw values (no masking or scaling), names decoded with surrogateescape.
Runs as its own process: netCDF4-python wheels bundle another netCDF-C and
HDF5, and a corrupt file may crash the library.
Exit status 0 and the pickle on success; 3 and a message when netCDF-C
cannot read the file.
"""
import ctypes
import ctypes.util
import os
import pickle
import sys

import numpy as np

LIB_CANDIDATES = [os.environ.get("ZF_NETCDF_LIB", ""), "/usr/lib/x86_64-linux-gnu/libnetcdf.so.19",
                  ctypes.util.find_library("netcdf") or ""]
NP = {1: "i1", 2: "S1", 3: "i2", 4: "i4", 5: "f4", 6: "f8", 7: "u1", 8: "u2", 9: "u4", 10: "i8", 11: "u8"}
NC_STRING = 12
NAMEBUF = 1 << 20
LIMIT = int(os.environ.get("ZF_MUTANT_MAX_BYTES", str(1 << 30)))


class NCError(Exception):
    pass


def _lib():
    for c in LIB_CANDIDATES:
        if c and os.path.exists(c) or (c and "/" not in c):
            try:
                return ctypes.CDLL(c)
            except OSError:
                continue
    raise NCError("no netCDF-C library found (set ZF_NETCDF_LIB)")


nc = _lib()
nc.nc_strerror.restype = ctypes.c_char_p
nc.nc_inq_libvers.restype = ctypes.c_char_p


def check(status, what):
    if status != 0:
        raise NCError(f"{what}: {nc.nc_strerror(status).decode(errors='replace')} ({status})")


def name_of(fn, *args):
    buf = ctypes.create_string_buffer(NAMEBUF)
    check(fn(*args, buf), fn.__name__)
    return buf.value.decode("utf-8", "surrogateescape")


def read_var(gid, varid):
    xtype, ndims, natts = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
    check(nc.nc_inq_varndims(gid, varid, ctypes.byref(ndims)), "nc_inq_varndims")
    if not 0 <= ndims.value <= 1024:
        raise NCError(f"variable with {ndims.value} dimensions")
    dimids = (ctypes.c_int * max(1, ndims.value))()
    name = ctypes.create_string_buffer(NAMEBUF)
    check(nc.nc_inq_var(gid, varid, name, ctypes.byref(xtype), ctypes.byref(ndims), dimids, ctypes.byref(natts)),
          "nc_inq_var")
    vname = name.value.decode("utf-8", "surrogateescape")
    dims, shape = [], []
    for i in range(ndims.value):
        n = ctypes.c_size_t()
        dname = ctypes.create_string_buffer(NAMEBUF)
        check(nc.nc_inq_dim(gid, dimids[i], dname, ctypes.byref(n)), f"nc_inq_dim of {vname}")
        dims.append(dname.value.decode("utf-8", "surrogateescape"))
        shape.append(n.value)
    count = 1
    for n in shape:
        count *= n
    t = xtype.value
    if t == NC_STRING:
        if count * 16 > LIMIT:
            raise NCError(f"variable {vname}: {count} strings, too large to read")
        ptrs = (ctypes.c_char_p * max(1, count))()
        if count:
            check(nc.nc_get_var_string(gid, varid, ptrs), f"nc_get_var_string of {vname}")
        data = [ptrs[i] if ptrs[i] is not None else b"" for i in range(count)]
        if count:
            nc.nc_free_string(ctypes.c_size_t(count), ptrs)
        return vname, dict(dims=tuple(dims), shape=tuple(shape), kind="str", dtype="str", data=data)
    if t not in NP:
        raise NCError(f"variable {vname}: type {t} (not a numeric, char or string type)")
    dt = np.dtype(NP[t])
    if count * dt.itemsize > LIMIT:
        raise NCError(f"variable {vname}: {count * dt.itemsize} bytes, too large to read")
    arr = np.zeros(shape, dtype=dt)
    if count:
        check(nc.nc_get_var(gid, varid, arr.ctypes.data_as(ctypes.c_void_p)), f"nc_get_var of {vname}")
    kind = "char" if t == 2 else "num"
    return vname, dict(dims=tuple(dims), shape=tuple(shape), kind=kind, dtype=dt.str, data=arr)


def read_group(gid, path, out):
    nvars = ctypes.c_int()
    check(nc.nc_inq_varids(gid, ctypes.byref(nvars), None), "nc_inq_varids")
    ids = (ctypes.c_int * max(1, nvars.value))()
    check(nc.nc_inq_varids(gid, ctypes.byref(nvars), ids), "nc_inq_varids")
    vars_ = {}
    for i in range(nvars.value):
        n, v = read_var(gid, ids[i])
        vars_[n] = v
    out[path] = {"vars": vars_}
    ng = ctypes.c_int()
    check(nc.nc_inq_grps(gid, ctypes.byref(ng), None), "nc_inq_grps")
    gids = (ctypes.c_int * max(1, ng.value))()
    check(nc.nc_inq_grps(gid, ctypes.byref(ng), gids), "nc_inq_grps")
    for i in range(ng.value):
        gname = name_of(nc.nc_inq_grpname, gids[i])
        read_group(gids[i], f"{path}/{gname}" if path else gname, out)


def read(path):
    ncid = ctypes.c_int()
    check(nc.nc_open(path.encode(), 0, ctypes.byref(ncid)), "nc_open")
    try:
        out = {}
        read_group(ncid.value, "", out)
        return out
    finally:
        nc.nc_close(ncid)


def main():
    path, out = sys.argv[1], sys.argv[2]
    try:
        tree = read(path)
    except NCError as e:
        print(f"netCDF-C {nc.nc_inq_libvers().decode()}: {e}", file=sys.stderr)
        sys.exit(3)
    with open(out, "wb") as f:
        pickle.dump(tree, f)


if __name__ == "__main__":
    main()
