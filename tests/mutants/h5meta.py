"""Finds the metadata of an HDF5 file (netCDF-4) for the mutator.

HDF5 >= 1.8 protects most metadata with a Jenkins lookup3 checksum
(superblock v2/v3, object headers OHDR and their continuation chunks OCHK,
v2 B-trees, fractal and free-space headers). A random bit flip there is
rejected by the checksum before any parsing, so the mutator edits such a
structure and then recomputes its checksum; this module finds where each
checksummed structure starts and where its checksum is, without a full HDF5
parser: for every signature found in the file it hashes every prefix length
at once (numpy) and keeps the one whose hash matches the 4 bytes after it.

It also lists object header messages (type, data offset, size), so fields
such as dataspace dimensions, layout chunk sizes and addresses, datatype
sizes, filter parameters and attribute sizes can be targeted, and the
unchecksummed structures (v1 B-tree nodes TREE, global heap GCOL, local heap
HEAP, symbol table nodes SNOD), whose edits need no fix-up.
"""
import numpy as np

CHECKSUMMED = [b"OHDR", b"OCHK", b"BTHD", b"BTLF", b"BTIN", b"FRHP", b"FHIB", b"FHDB", b"FSHD",
               b"FSSE", b"SMTB", b"SMLI", b"EAHD", b"EAIB", b"EASB", b"EADB", b"FAHD", b"FADB"]
PLAIN = [b"TREE", b"GCOL", b"HEAP", b"SNOD"]
HDF5_SIG = b"\x89HDF\r\n\x1a\n"
MAX_STRUCT = 4096

_M = np.uint32(0xFFFFFFFF)


def _rot(x, k):
    return (x << np.uint32(k)) | (x >> np.uint32(32 - k))


def lookup3(data, initval=0):
    """HDF5's H5_checksum_lookup3 (Bob Jenkins' hashlittle) of bytes."""
    n = len(data)
    a = b = c = (0xDEADBEEF + n + initval) & 0xFFFFFFFF

    def rot(x, k):
        return ((x << k) | (x >> (32 - k))) & 0xFFFFFFFF

    def w(i):
        return int.from_bytes(data[i:i + 4].ljust(4, b"\0"), "little")

    i = 0
    while n - i > 12:
        a = (a + w(i)) & 0xFFFFFFFF
        b = (b + w(i + 4)) & 0xFFFFFFFF
        c = (c + w(i + 8)) & 0xFFFFFFFF
        a = (a - c) & 0xFFFFFFFF; a ^= rot(c, 4); c = (c + b) & 0xFFFFFFFF
        b = (b - a) & 0xFFFFFFFF; b ^= rot(a, 6); a = (a + c) & 0xFFFFFFFF
        c = (c - b) & 0xFFFFFFFF; c ^= rot(b, 8); b = (b + a) & 0xFFFFFFFF
        a = (a - c) & 0xFFFFFFFF; a ^= rot(c, 16); c = (c + b) & 0xFFFFFFFF
        b = (b - a) & 0xFFFFFFFF; b ^= rot(a, 19); a = (a + c) & 0xFFFFFFFF
        c = (c - b) & 0xFFFFFFFF; c ^= rot(b, 4); b = (b + a) & 0xFFFFFFFF
        i += 12
    if n - i == 0:
        return c
    tail = data[i:n].ljust(12, b"\0")
    a = (a + int.from_bytes(tail[0:4], "little")) & 0xFFFFFFFF
    b = (b + int.from_bytes(tail[4:8], "little")) & 0xFFFFFFFF
    c = (c + int.from_bytes(tail[8:12], "little")) & 0xFFFFFFFF
    c ^= b; c = (c - rot(b, 14)) & 0xFFFFFFFF
    a ^= c; a = (a - rot(c, 11)) & 0xFFFFFFFF
    b ^= a; b = (b - rot(a, 25)) & 0xFFFFFFFF
    c ^= b; c = (c - rot(b, 16)) & 0xFFFFFFFF
    a ^= c; a = (a - rot(c, 4)) & 0xFFFFFFFF
    b ^= a; b = (b - rot(a, 14)) & 0xFFFFFFFF
    c ^= b; c = (c - rot(b, 24)) & 0xFFFFFFFF
    return c


def _all_prefix_hashes(buf):
    """lookup3 of buf[:L] for every L in 1..len(buf), as a uint32 array
    indexed by L-1."""
    n = len(buf)
    padded = np.frombuffer(bytes(buf) + b"\0" * (16 - n % 4), dtype="<u4").astype(np.uint32)
    L = np.arange(1, n + 1, dtype=np.int64)
    with np.errstate(over="ignore"):
        init = (np.uint32(0xDEADBEEF) + L.astype(np.uint32)).astype(np.uint32)
        a, b, c = init.copy(), init.copy(), init.copy()
        i = 0
        while 12 * (i + 1) < n:
            s = 12 * (i + 1)  # L > 12*(i+1)  <=>  index L-1 >= 12*(i+1)
            A, B, C = a[s:], b[s:], c[s:]
            A += padded[3 * i]; B += padded[3 * i + 1]; C += padded[3 * i + 2]
            A -= C; A ^= _rot(C, 4); C += B
            B -= A; B ^= _rot(A, 6); A += C
            C -= B; C ^= _rot(B, 8); B += A
            A -= C; A ^= _rot(C, 16); C += B
            B -= A; B ^= _rot(A, 19); A += C
            C -= B; C ^= _rot(B, 4); B += A
            i += 1
        nb = (L - 1) // 12
        t = L - 12 * nb
        for k, reg in enumerate((a, b, c)):
            word = padded[np.minimum(3 * nb + k, len(padded) - 1)]
            avail = np.clip(t - 4 * k, 0, 4)
            mask = np.where(avail >= 4, np.uint64(0xFFFFFFFF),
                            (np.uint64(1) << (8 * avail).astype(np.uint64)) - np.uint64(1)).astype(np.uint32)
            reg += word & mask
        c ^= b; c -= _rot(b, 14)
        a ^= c; a -= _rot(c, 11)
        b ^= a; b -= _rot(a, 25)
        c ^= b; c -= _rot(b, 16)
        a ^= c; a -= _rot(c, 4)
        b ^= a; b -= _rot(a, 14)
        c ^= b; c -= _rot(b, 24)
    return c


def _find_checksum(data, start, min_len=8):
    """Length L such that lookup3(data[start:start+L]) is stored little-endian
    at data[start+L:start+L+4]; None if there is none within MAX_STRUCT."""
    end = min(len(data) - 4, start + MAX_STRUCT)
    if end - start < min_len:
        return None
    h = _all_prefix_hashes(data[start:end])
    stored = np.frombuffer(bytes(data[start:end + 4]), dtype=np.uint8)
    # little-endian u32 at every offset L (from start)
    s = stored.astype(np.uint32)
    at = s[:-3] | (s[1:-2] << np.uint32(8)) | (s[2:-1] << np.uint32(16)) | (s[3:] << np.uint32(24))
    # hash of prefix length L (index L-1) vs stored at offset L
    Ls = np.nonzero(h[min_len - 1:] == at[min_len:min_len + len(h) - (min_len - 1)])[0]
    if len(Ls) == 0:
        return None
    return int(Ls[0]) + min_len


class Struct:
    """A metadata structure: [start, csum) is covered by the checksum stored
    at csum (csum None: no checksum; then [start, end) is a rough extent)."""

    def __init__(self, sig, start, csum, end):
        self.sig, self.start, self.csum, self.end = sig, start, csum, end
        self.messages = []  # OHDR/OCHK: [(type, data offset, data size)]

    def __repr__(self):
        return f"<{self.sig.decode(errors='replace')} {self.start}..{self.end} csum@{self.csum} {len(self.messages)} msgs>"


def _ohdr_messages(data, s):
    """Object header messages of an OHDR (v2) or OCHK chunk."""
    msgs = []
    p = s.start + 4
    if s.sig == b"OHDR":
        if data[p] != 2:
            return msgs
        flags = data[p + 1]
        p += 2
        if flags & 0x20:
            p += 16
        if flags & 0x10:
            p += 4
        p += 1 << (flags & 3)
        track_order = bool(flags & 0x04)
    else:
        # The owning OHDR's flags are not known here; netCDF-4 objects track
        # creation order, so assume the 2-byte creation order field.
        track_order = True
    end = s.csum
    hdr = 6 if track_order else 4
    while p + hdr <= end:
        mtype = data[p]
        size = int.from_bytes(data[p + 1:p + 3], "little")
        dstart = p + hdr
        if dstart + size > end:
            break
        msgs.append((mtype, dstart, size))
        p = dstart + size
    return msgs


def scan(data):
    """Returns (superblock Struct or None, [Struct]) for an HDF5 file in bytes."""
    data = bytes(data)
    structs = []
    sb = None
    base = data.find(HDF5_SIG)
    if base >= 0:
        ver = data[base + 8]
        if ver >= 2:
            L = _find_checksum(data, base, 12)
            sb = Struct(b"SUPER", base, base + L if L else None, base + (L + 4 if L else 48))
        else:
            sb = Struct(b"SUPER", base, None, base + 96)
    for sig in CHECKSUMMED + PLAIN:
        p = data.find(sig)
        while p >= 0:
            if sig in PLAIN:
                if sig == b"GCOL":
                    size = int.from_bytes(data[p + 8:p + 16], "little")
                    end = p + (size if 16 <= size <= MAX_STRUCT else 256)
                elif sig == b"HEAP":
                    end = p + 32
                else:
                    end = p + 512
                structs.append(Struct(sig, p, None, min(end, len(data))))
            else:
                L = _find_checksum(data, p)
                if L:
                    st = Struct(sig, p, p + L, p + L + 4)
                    if sig in (b"OHDR", b"OCHK"):
                        st.messages = _ohdr_messages(data, st)
                    structs.append(st)
            p = data.find(sig, p + 1)
    structs.sort(key=lambda s: s.start)
    return sb, structs


def fix_checksum(buf, s):
    """Recomputes the checksum of Struct s in the bytearray buf."""
    if s.csum is not None and s.csum + 4 <= len(buf):
        buf[s.csum:s.csum + 4] = lookup3(bytes(buf[s.start:s.csum])).to_bytes(4, "little")


if __name__ == "__main__":
    import sys

    for path in sys.argv[1:]:
        with open(path, "rb") as f:
            d = f.read()
        sb, ss = scan(d)
        print(path, len(d), sb)
        for s in ss:
            print("  ", s, [(hex(t), o, n) for t, o, n in s.messages][:12])
