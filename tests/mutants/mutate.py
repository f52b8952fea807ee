"""Deterministic mutants of the seed files.

    python3 mutate.py SEEDDIR OUTDIR [--count N] [--seed S]

Mutant i of a given seed is the same whatever --count is: a master
random.Random(seed) draws one 64-bit sub-seed per mutant, and each mutant is
made from its own random.Random(sub-seed).

netCDF-3 (CDF1, CDF2, CDF5) mutations: bit flips anywhere or in the header,
truncations, extreme values over 4/8-byte words of the header, and edits of
parsed header fields (numrecs, dimension lengths, list element counts, name
lengths, nc_type, ndims, dimids, vsize, begin), of name bytes and of
attribute values, alone or combined; byte insertions/deletions in the header.

HDF5 (netCDF-4) mutations: bit flips anywhere, in the raw data, or in a
metadata structure (superblock, object headers and their continuation
chunks, B-trees, heaps, free-space headers) with the structure's checksum
recomputed, so the edit reaches HDF5's parser; extreme values over fields of
object header messages (dataspace dimensions, datatype, fill value, layout,
filter pipeline, attributes, links, continuations) and of the superblock
(base/EOF/root addresses); v1 B-tree node fields (chunk index: entry count,
chunk sizes and offsets, child addresses); global heap objects (variable
length strings); truncations.
"""
import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import h5meta  # noqa: E402
import nc3  # noqa: E402

# Share of mutants per seed file (seeds.py names).
SEED_WEIGHTS = {"cdf1": 2.0, "cdf2": 1.5, "cdf2r": 1.0, "cdf5": 2.0, "nc4": 3.0, "nc4c": 1.5}


def _put(buf, off, width, value, order):
    """Writes value (two's complement, truncated to width) at off, in place."""
    if off < 0 or off + width > len(buf):
        return False
    buf[off:off + width] = (value & ((1 << (8 * width)) - 1)).to_bytes(width, order)
    return True


def _get(buf, off, width, order):
    return int.from_bytes(buf[off:off + width], order)


def extremes(rng, width, old, size):
    """Candidate replacement values for a field of width bytes holding old."""
    top = (1 << (8 * width)) - 1
    c = [0, 1, top, top >> 1, (top >> 1) + 1, old + 1, old - 1, old * 2, old ^ (1 << rng.randrange(8 * width))]
    if width >= 4:
        c += [0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, size, size + 1, size - 4, 1 << 31, 1 << 32, -2]
    if width >= 8:
        c += [1 << 40, 1 << 62, (1 << 63) - 1, 1 << 63, size << 8]
    return rng.choice(c)


def flip_bits(rng, buf, lo, hi, nbits):
    hi = min(hi, len(buf))
    if hi <= lo:
        return []
    done = []
    for _ in range(nbits):
        off = rng.randrange(lo, hi)
        bit = rng.randrange(8)
        buf[off] ^= 1 << bit
        done.append(f"{off}.{bit}")
    return done


# ---------------------------------------------------------------- netCDF-3

def _field_value(rng, f, h, size):
    """A mutated value for a parsed netCDF-3 header field."""
    v, w = f.value, f.width
    big = [0xFFFFFFFF, 0x7FFFFFFF, 1 << 31] + ([1 << 40, 1 << 62, (1 << 64) - 1, 1 << 63] if w == 8 else [])
    k = f.kind
    if k == "numrecs":
        c = [0, v - 1, v + 1, 2 * v, 1000 * v, nc3.STREAMING[w]] + big
    elif k == "dim_len":
        c = [0, 1, v - 1, v + 1, 2 * v, v * 1000] + big
    elif k in ("nelems", "att_nelems"):
        c = [0, v - 1, v + 1, v + 2, 1000] + big
    elif k == "name_len":
        c = [0, v - 1, v + 1, v + 4, 256, 257, 4096, size] + big
    elif k == "nc_type":
        c = [0, 12, 13, 14, 0xFF, 0xFFFFFFFF, 0x80000000] + list(range(1, 12))
    elif k == "ndims":
        c = [0, v - 1, v + 1, 1024, 1025] + big
    elif k == "dimid":
        c = [0, v + 1, v - 1, len(h.dims), len(h.dims) + 1] + [i for i in range(len(h.dims))] + big
    elif k == "vsize":
        c = [0, 1, v - 1, v + 4, v * 2] + big
    elif k == "begin":
        c = [0, 4, h.end - 4, h.end, v - 4, v + 4, v - 1, v + 1, size, size - 1, size + 4096] + big
    elif k == "tag":
        c = [0, 0x0A, 0x0B, 0x0C, 0x0D, 0xFFFFFFFF]
    else:
        c = [0] + big
    return rng.choice(c)


BAD_NAME_BYTES = [b"\xff", b"\xc0\xaf", b"\xe2\x82", b"\xed\xa0\x80", b"/", b"\\", b"\x00", b".", b" ", b"\x7f",
                  b"__", b".z", b"zarr.json", b"..", b"\x01"]


def mutate_nc3(rng, data, h, op):
    buf = bytearray(data)
    size = len(data)
    hdr_end = max(h.end, 4)
    if op == "flip":
        return buf, "bits " + ",".join(flip_bits(rng, buf, 0, size, rng.randint(1, 8)))
    if op == "flip-header":
        return buf, "bits " + ",".join(flip_bits(rng, buf, 0, min(1024, hdr_end + 32), rng.randint(1, 4)))
    if op == "trunc":
        mode = rng.choice(["any", "header", "tail", "data"])
        if mode == "any":
            n = rng.randrange(0, size)
        elif mode == "header":
            n = rng.randrange(0, min(hdr_end + 64, size))
        elif mode == "tail":
            n = size - rng.randint(1, min(64, size))
        else:
            n = rng.randrange(hdr_end, size)
        return buf[:n], f"truncate {mode} to {n} of {size}"
    if op == "extreme":
        w = rng.choice([4, 4, 8])
        off = rng.randrange(0, max(4, min(1024, hdr_end) - w)) & ~3
        old = _get(buf, off, w, "big")
        val = extremes(rng, w, old, size)
        _put(buf, off, w, val, "big")
        return buf, f"word {off}/{w}: {old:#x} -> {val & ((1 << 8 * w) - 1):#x}"
    if op == "field":
        f = rng.choice(h.fields)
        val = _field_value(rng, f, h, size)
        _put(buf, f.offset, f.width, val, "big")
        return buf, f"{f.kind} {f.where} @{f.offset}: {f.value} -> {val & ((1 << 8 * f.width) - 1)}"
    if op == "name":
        off, n, where = rng.choice(h.names)
        if n == 0:
            return mutate_nc3(rng, data, h, "field")
        bad = rng.choice(BAD_NAME_BYTES)[:n]
        at = off + rng.choice([0, 0, n - len(bad), rng.randrange(0, n - len(bad) + 1)])
        old = bytes(buf[off:off + n])
        buf[at:at + len(bad)] = bad
        return buf, f"name {where} {old!r} -> {bytes(buf[off:off + n])!r}"
    if op == "attr-value":
        if not h.values:
            return mutate_nc3(rng, data, h, "field")
        off, n, t, where = rng.choice(h.values)
        if n == 0:
            return mutate_nc3(rng, data, h, "field")
        if t == 2:
            bad = rng.choice([b"\xff", b"\xc3", b"\x00", b"\xe2\x82"])[:n]
            at = off + rng.randrange(0, n - len(bad) + 1)
            buf[at:at + len(bad)] = bad
            return buf, f"char attribute {where} bytes @{at} -> {bad!r}"
        w = nc3.TYPES[t][1]
        k = rng.randrange(0, n // w)
        old = _get(buf, off + k * w, w, "big")
        val = extremes(rng, w, old, size) if rng.random() < 0.6 else (
            0x7FF8000000000001 if w == 8 else 0x7FC00001 if w == 4 else old ^ 0x80)
        _put(buf, off + k * w, w, val, "big")
        return buf, f"attribute {where} value {k}: {old:#x} -> {val & ((1 << 8 * w) - 1):#x}"
    if op == "splice":
        at = rng.randrange(4, hdr_end)
        if rng.random() < 0.5:
            ins = bytes(rng.randrange(256) for _ in range(rng.choice([1, 2, 4, 8])))
            buf[at:at] = ins
            return buf, f"insert {ins.hex()} at {at}"
        n = rng.choice([1, 2, 4, 8])
        del buf[at:at + n]
        return buf, f"delete {n} bytes at {at}"
    if op == "data-flip":
        return buf, "data bits " + ",".join(flip_bits(rng, buf, hdr_end, size, rng.randint(1, 16)))
    raise ValueError(op)


NC3_OPS = {"flip": 1.0, "flip-header": 2.0, "trunc": 1.5, "extreme": 1.5, "field": 4.5, "name": 1.0,
           "attr-value": 0.5, "splice": 0.5, "data-flip": 0.3, "multi": 1.2}


# ---------------------------------------------------------------- HDF5

# Object header message types worth aiming at, with their weights.
MSG_WEIGHTS = {0x01: 4, 0x03: 2, 0x05: 1.5, 0x08: 4, 0x0B: 2, 0x0C: 3, 0x10: 1.5, 0x06: 1, 0x02: 1, 0x15: 1,
               0x0A: 0.5, 0x00: 0.2}


def _pick_struct(rng, structs, kinds):
    c = [s for s in structs if s.sig in kinds]
    return rng.choice(c) if c else None


def mutate_h5(rng, data, sb, structs, op):
    buf = bytearray(data)
    size = len(data)
    meta = [s for s in structs if s.csum is not None] + ([sb] if sb and sb.csum else [])
    if op == "flip":
        return buf, [], "bits " + ",".join(flip_bits(rng, buf, 0, size, rng.randint(1, 8)))
    if op == "trunc":
        mode = rng.choice(["any", "meta", "tail"])
        if mode == "any":
            n = rng.randrange(0, size)
        elif mode == "meta":
            n = rng.randrange(0, min(size, max(s.end for s in structs) if structs else 2048))
        else:
            n = size - rng.randint(1, min(512, size))
        return buf[:n], [], f"truncate {mode} to {n} of {size}"
    if op == "flip-meta" or op == "flip-meta-nofix":
        s = rng.choice(meta)
        lo = s.start + (4 if s.sig != b"SUPER" else 8)
        bits = flip_bits(rng, buf, lo, s.csum, rng.choice([1, 1, 1, 2, 3]))
        fixed = [s] if op == "flip-meta" else []
        return buf, fixed, f"{s.sig.decode()}@{s.start} bits {','.join(bits)}" + ("" if fixed else " (checksum kept)")
    if op == "msg-field":
        heads = [s for s in structs if s.messages]
        s = rng.choice(heads)
        msgs = [m for m in s.messages if m[2] > 0]
        m = rng.choices(msgs, [MSG_WEIGHTS.get(t, 0.5) for t, _, _ in msgs])[0]
        t, off, n = m
        w = rng.choice([1, 2, 4, 8, 8, 8] if n >= 8 else [1, 2, 4] if n >= 4 else [1])
        w = min(w, n)
        at = off + rng.randrange(0, n - w + 1)
        if rng.random() < 0.6:
            at = off + ((at - off) // w) * w
        old = _get(buf, at, w, "little")
        val = extremes(rng, w, old, size)
        _put(buf, at, w, val, "little")
        return buf, [s], (f"{s.sig.decode()}@{s.start} msg {t:#04x}+{at - off}/{w}: "
                          f"{old:#x} -> {val & ((1 << 8 * w) - 1):#x}")
    if op == "super":
        if not sb:
            return mutate_h5(rng, data, sb, structs, "flip")
        # v2/v3: version, sizes, flags (8..12), base, ext, EOF, root (12..44)
        choices = [(8, 1), (9, 1), (10, 1), (11, 1), (12, 8), (20, 8), (28, 8), (36, 8)]
        if sb.csum is None:
            choices = [(o, w) for o, w in choices if o + w <= 96]
        o, w = rng.choice(choices)
        at = sb.start + o
        old = _get(buf, at, w, "little")
        val = extremes(rng, w, old, size)
        _put(buf, at, w, val, "little")
        return buf, [sb], f"superblock +{o}/{w}: {old:#x} -> {val & ((1 << 8 * w) - 1):#x}"
    if op == "tree":
        s = _pick_struct(rng, structs, [b"TREE"])
        if not s:
            return mutate_h5(rng, data, sb, structs, "msg-field")
        # sig(4) type(1) level(1) entries(2) left(8) right(8), then keys and children
        if rng.random() < 0.3:
            o, w = rng.choice([(4, 1), (5, 1), (6, 2), (8, 8), (16, 8)])
        else:
            w = rng.choice([4, 8])
            o = 24 + rng.randrange(0, 256 // w) * w
        at = s.start + o
        old = _get(buf, at, w, "little")
        val = extremes(rng, w, old, size)
        _put(buf, at, w, val, "little")
        return buf, [], f"TREE@{s.start} +{o}/{w}: {old:#x} -> {val & ((1 << 8 * w) - 1):#x}"
    if op == "gcol":
        s = _pick_struct(rng, structs, [b"GCOL"])
        if not s:
            return mutate_h5(rng, data, sb, structs, "msg-field")
        # header 16 bytes; objects: index(2) refcount(2) reserved(4) size(8) data (padded to 8)
        objs = []
        p = s.start + 16
        while p + 16 <= s.end:
            idx = _get(buf, p, 2, "little")
            osz = _get(buf, p + 8, 8, "little")
            if idx == 0 or osz > s.end - p:
                break
            objs.append((p, osz))
            p += 16 + osz + (-osz % 8)
        if not objs:
            return mutate_h5(rng, data, sb, structs, "flip")
        p, osz = rng.choice(objs)
        if rng.random() < 0.5 or osz == 0:
            o, w = rng.choice([(0, 2), (2, 2), (8, 8)])
            old = _get(buf, p + o, w, "little")
            val = extremes(rng, w, old, size)
            _put(buf, p + o, w, val, "little")
            return buf, [], f"GCOL@{s.start} object@{p} +{o}/{w}: {old:#x} -> {val & ((1 << 8 * w) - 1):#x}"
        at = p + 16 + rng.randrange(osz)
        bad = rng.choice([b"\xff", b"\xc3", b"\x00", b"\xe2\x82"])[: p + 16 + osz - at]
        buf[at:at + len(bad)] = bad
        return buf, [], f"GCOL@{s.start} object@{p} data @{at} -> {bad!r}"
    if op == "name":
        # A link name (message 0x06) or attribute name (0x0C) in an object header.
        cands = []
        for st in structs:
            for t, off, n in st.messages:
                if t == 0x06 and n >= 4:
                    flags = buf[off + 1]
                    q = off + 2 + (1 if flags & 0x08 else 0) + (8 if flags & 0x04 else 0) + (1 if flags & 0x10 else 0)
                    lw = 1 << (flags & 3)
                    ln = _get(buf, q, lw, "little")
                    if 0 < ln and q + lw + ln <= off + n:
                        cands.append((st, q + lw, ln, "link"))
                elif t == 0x0C and n >= 8 and buf[off] in (1, 3):
                    ln = _get(buf, off + 2, 2, "little") - 1  # without the NUL
                    q = off + (9 if buf[off] == 3 else 8)
                    if 0 < ln and q + ln <= off + n:
                        cands.append((st, q, ln, "attribute"))
        if not cands:
            return mutate_h5(rng, data, sb, structs, "msg-field")
        st, q, ln, what = rng.choice(cands)
        old = bytes(buf[q:q + ln])
        bad = rng.choice(BAD_NAME_BYTES)[:ln]
        at = q + rng.choice([0, 0, ln - len(bad), rng.randrange(0, ln - len(bad) + 1)])
        buf[at:at + len(bad)] = bad
        return buf, [st], f"{what} name {old!r} -> {bytes(buf[q:q + ln])!r} ({st.sig.decode()}@{st.start})"
    if op == "data-flip":
        covered = [(s.start, s.end) for s in structs] + ([(sb.start, sb.end)] if sb else [])
        for _ in range(100):
            off = rng.randrange(0, size)
            if not any(a <= off < b for a, b in covered):
                break
        n = rng.randint(1, 8)
        bits = []
        for _ in range(n):
            o = min(size - 1, off + rng.randrange(0, 64))
            b = rng.randrange(8)
            buf[o] ^= 1 << b
            bits.append(f"{o}.{b}")
        return buf, [], "data bits " + ",".join(bits)
    raise ValueError(op)


H5_OPS = {"flip": 1.0, "trunc": 1.0, "flip-meta": 3.0, "flip-meta-nofix": 0.4, "msg-field": 4.0, "super": 1.0,
          "tree": 1.5, "gcol": 0.8, "name": 0.8, "data-flip": 0.6, "multi": 1.0}


# ---------------------------------------------------------------- driver

class Seed:
    def __init__(self, name, path):
        self.name, self.path = name, path
        with open(path, "rb") as f:
            self.data = f.read()
        self.nc3 = None
        self.sb, self.structs = None, []
        if self.data[:3] == b"CDF":
            self.nc3 = nc3.parse(self.data)
            self.format = {1: "CDF1", 2: "CDF2", 5: "CDF5"}[self.data[3]]
        else:
            self.sb, self.structs = h5meta.scan(self.data)
            self.format = "HDF5"


def _one(rng, seed):
    if seed.nc3 is not None:
        op = rng.choices(list(NC3_OPS), list(NC3_OPS.values()))[0]
        if op == "multi":
            data, descs = seed.data, []
            for _ in range(rng.randint(2, 3)):
                sub = rng.choices([o for o in NC3_OPS if o not in ("multi", "trunc", "splice")],
                                  [w for o, w in NC3_OPS.items() if o not in ("multi", "trunc", "splice")])[0]
                try:
                    h = nc3.parse(data)
                except nc3.ParseError:
                    h = seed.nc3
                data, d = mutate_nc3(rng, data, h, sub)
                descs.append(f"{sub}: {d}")
            return op, bytes(data), "; ".join(descs)
        data, desc = mutate_nc3(rng, seed.data, seed.nc3, op)
        return op, bytes(data), desc
    op = rng.choices(list(H5_OPS), list(H5_OPS.values()))[0]
    if op == "multi":
        buf, descs, fix = bytearray(seed.data), [], []
        for _ in range(rng.randint(2, 3)):
            sub = rng.choices([o for o in H5_OPS if o not in ("multi", "trunc")],
                              [w for o, w in H5_OPS.items() if o not in ("multi", "trunc")])[0]
            buf, f, d = mutate_h5(rng, bytes(buf), seed.sb, seed.structs, sub)
            fix += f
            descs.append(f"{sub}: {d}")
        for s in fix:
            h5meta.fix_checksum(buf, s)
        return op, bytes(buf), "; ".join(descs)
    buf, fix, desc = mutate_h5(rng, seed.data, seed.sb, seed.structs, op)
    for s in fix:
        h5meta.fix_checksum(buf, s)
    return op, bytes(buf), desc


def make_mutants(seed_paths, outdir, count, seed, prefix=None):
    """Writes count mutants to outdir; returns their descriptions (dicts)."""
    os.makedirs(outdir, exist_ok=True)
    seeds = [Seed(n, p) for n, p in seed_paths.items()]
    weights = [SEED_WEIGHTS.get(s.name, 1.0) for s in seeds]
    master = random.Random(seed)
    prefix = prefix if prefix is not None else f"s{seed}-"
    out = []
    for i in range(count):
        rng = random.Random(master.getrandbits(64))
        s = rng.choices(seeds, weights)[0]
        op, data, desc = _one(rng, s)
        name = f"{prefix}m{i:04d}-{s.name}-{op}.nc"
        path = os.path.join(outdir, name)
        with open(path, "wb") as f:
            f.write(data)
        out.append(dict(name=name, path=path, seed=s.name, format=s.format, op=op, desc=desc,
                        mutseed=seed, index=i, size=len(data)))
    return out


def main(argv):
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("seeddir")
    ap.add_argument("outdir")
    ap.add_argument("--count", type=int, default=400)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args(argv)
    paths = {os.path.splitext(f)[0]: os.path.join(a.seeddir, f) for f in sorted(os.listdir(a.seeddir))
             if f.endswith(".nc")}
    for m in make_mutants(paths, a.outdir, a.count, a.seed):
        print(json.dumps({k: m[k] for k in ("name", "format", "op", "desc")}))


if __name__ == "__main__":
    main(sys.argv[1:])
