"""A small netCDF-3 header parser (CDF1 classic, CDF2 64-bit offset, CDF5).

It records the file offset and width of every field it reads, so the
mutator can edit numrecs, dimension lengths, element counts, name lengths,
nc_types, vsize and begin offsets in place, and it computes the extent of the
data the header promises, so the runner can tell a truncated file (one that
ends before its data) from a whole one.

Format: https://docs.unidata.ucar.edu/netcdf-c/current/file_format_specifications.html
"""
import struct

NC_DIMENSION, NC_VARIABLE, NC_ATTRIBUTE = 0x0A, 0x0B, 0x0C
# nc_type -> (name, size in bytes)
TYPES = {
    1: ("byte", 1), 2: ("char", 1), 3: ("short", 2), 4: ("int", 4), 5: ("float", 4), 6: ("double", 8),
    7: ("ubyte", 1), 8: ("ushort", 2), 9: ("uint", 4), 10: ("int64", 8), 11: ("uint64", 8),
}
STREAMING = {4: 0xFFFFFFFF, 8: 0xFFFFFFFFFFFFFFFF}


class ParseError(Exception):
    pass


class Field:
    """One header field: where it is, how wide (big-endian), what it means."""

    __slots__ = ("offset", "width", "kind", "value", "where")

    def __init__(self, offset, width, kind, value, where):
        self.offset, self.width, self.kind, self.value, self.where = offset, width, kind, value, where

    def __repr__(self):
        return f"<{self.kind} {self.where} @{self.offset}/{self.width} = {self.value}>"


class Header:
    def __init__(self):
        self.version = 0
        self.numrecs = 0
        self.dims = []  # [(name bytes, length)]; length 0 = the record dimension
        self.gatts = []  # [(name, nc_type, nelems)]
        self.vars = []  # [dict(name, dimids, atts, nc_type, vsize, begin)]
        self.fields = []  # [Field]
        self.names = []  # [(offset, length, where)] name bytes, for name edits
        self.values = []  # [(offset, length, nc_type, where)] attribute value bytes
        self.end = 0  # first byte after the header


class _Reader:
    def __init__(self, data, hdr, limit):
        self.d, self.h, self.pos, self.limit = data, hdr, 0, limit

    def need(self, n):
        if n < 0 or self.pos + n > len(self.d) or self.pos + n > self.limit:
            raise ParseError(f"header ends early at {self.pos} (needs {n} more bytes)")

    def uint(self, width, kind=None, where=""):
        self.need(width)
        v = int.from_bytes(self.d[self.pos:self.pos + width], "big")
        if kind:
            self.h.fields.append(Field(self.pos, width, kind, v, where))
        self.pos += width
        return v

    def name(self, wide, where):
        n = self.uint(wide, "name_len", where)
        self.need(n)
        self.h.names.append((self.pos, n, where))
        raw = bytes(self.d[self.pos:self.pos + n])
        self.pos += n + (-n % 4)
        self.need(0)
        return raw


def parse(data, limit=1 << 24):
    """Parses the header of a netCDF-3 file given as bytes. Raises ParseError."""
    h = Header()
    if len(data) < 4 or data[:3] != b"CDF" or data[3] not in (1, 2, 5):
        raise ParseError("no CDF1/CDF2/CDF5 signature")
    h.version = data[3]
    wide = 8 if h.version == 5 else 4  # NON_NEG counts and sizes
    off_w = 4 if h.version == 1 else 8  # begin offsets
    r = _Reader(data, h, limit)
    r.pos = 4
    h.numrecs = r.uint(wide, "numrecs", "numrecs")

    def list_header(tag_expected, what):
        tag = r.uint(4, "tag", what)
        n = r.uint(wide, "nelems", what)
        if tag == 0:
            if n != 0:
                raise ParseError(f"{what}: ABSENT with nelems {n}")
            return 0
        if tag != tag_expected:
            raise ParseError(f"{what}: tag {tag:#x}")
        if n > 1 << 20:
            raise ParseError(f"{what}: {n} elements")
        return n

    for i in range(list_header(NC_DIMENSION, "dim_list")):
        name = r.name(wide, f"dim[{i}]")
        length = r.uint(wide, "dim_len", f"dim[{i}]")
        h.dims.append((name, length))

    def atts(where):
        out = []
        for i in range(list_header(NC_ATTRIBUTE, f"{where}.att_list")):
            w = f"{where}.att[{i}]"
            name = r.name(wide, w)
            t = r.uint(4, "nc_type", w)
            n = r.uint(wide, "att_nelems", w)
            if t not in TYPES:
                raise ParseError(f"{w}: nc_type {t}")
            size = n * TYPES[t][1]
            r.need(size)
            h.values.append((r.pos, size, t, w))
            r.pos += size + (-size % 4)
            r.need(0)
            out.append((name, t, n))
        return out

    h.gatts = atts("global")
    for i in range(list_header(NC_VARIABLE, "var_list")):
        w = f"var[{i}]"
        name = r.name(wide, w)
        ndims = r.uint(wide, "ndims", w)
        if ndims > 1024:
            raise ParseError(f"{w}: {ndims} dimensions")
        dimids = [r.uint(wide, "dimid", f"{w}.dim[{j}]") for j in range(ndims)]
        vatts = atts(w)
        t = r.uint(4, "nc_type", w)
        vsize = r.uint(wide, "vsize", w)
        begin = r.uint(off_w, "begin", w)
        h.vars.append(dict(name=name, dimids=dimids, atts=vatts, nc_type=t, vsize=vsize, begin=begin))
    h.end = r.pos
    return h


def data_extent(h):
    """Byte offset just past the last data byte the header promises, computed
    the way netCDF-C lays the data out (per-record sizes padded to 4 bytes,
    except a lone record variable), without padding after the last value.
    None when the header is inconsistent (netCDF-C should refuse it) or when
    numrecs is STREAMING."""
    wide = 8 if h.version == 5 else 4
    if h.numrecs == STREAMING[wide]:
        return None
    rec_dims = [i for i, (_, n) in enumerate(h.dims) if n == 0]
    shapes = []
    for v in h.vars:
        if v["nc_type"] not in TYPES or any(d >= len(h.dims) for d in v["dimids"]):
            return None
        size = TYPES[v["nc_type"]][1]
        is_rec = bool(v["dimids"]) and v["dimids"][0] in rec_dims
        n = 1
        for j, d in enumerate(v["dimids"]):
            if j == 0 and is_rec:
                continue
            n *= h.dims[d][1]
        shapes.append((v, is_rec, n * size))
    recs = [s for s in shapes if s[1]]
    if len(recs) == 1:
        recsize = recs[0][2]
    else:
        recsize = sum(b + (-b % 4) for _, _, b in recs)
    end = 0
    for v, is_rec, nbytes in shapes:
        if is_rec:
            if h.numrecs == 0 or nbytes == 0:
                continue
            end = max(end, v["begin"] + (h.numrecs - 1) * recsize + nbytes)
        elif nbytes:
            end = max(end, v["begin"] + nbytes)
    return end


if __name__ == "__main__":
    import sys

    for p in sys.argv[1:]:
        with open(p, "rb") as f:
            data = f.read()
        h = parse(data)
        print(f"{p}: CDF{h.version} numrecs={h.numrecs} header_end={h.end} size={len(data)} "
              f"extent={data_extent(h)} dims={h.dims}")
        for v in h.vars:
            print(f"  {v['name']!r} type={v['nc_type']} dimids={v['dimids']} vsize={v['vsize']} begin={v['begin']}")
        print(f"  {len(h.fields)} fields, {len(h.names)} names, {len(h.values)} attribute values")
