#!/usr/bin/env python3
"""Reference implementation of zarrforge's lossy float compression, in NumPy.

Two parts, both written to be read next to the Rust code they check:

* ``bitround``: numcodecs' BitRound (round to nearest, ties to even, on the
  bit pattern), plus zarrforge's rule that NaN, +-Inf and fill values pass
  unchanged.
* ``bitinfo``: the bitwise real information of Kloewer et al. (2021,
  Nature Computational Science 1, 713-724): the mutual information of each
  bit position between adjacent elements along a dimension, computed on the
  "signed exponent" bit patterns as xbitinfo does, with BitInformation.jl's
  significance test (information indistinguishable from a fair coin at the
  given confidence is set to zero), and xbitinfo.get_keepbits' rule for the
  number of mantissa bits that hold a level (e.g. 99%) of the information.

Only NumPy is needed. As a program it reads float variables of a netCDF file
(with netCDF4) and prints, as JSON, what ``zarrforge bitinfo --json`` prints:

    python bitinfo_reference.py FILE.nc [--vars a,b] [--level 0.99] [--json]

Bit positions are numbered from the most significant bit: position 0 is the
sign, then the exponent bits, then the mantissa bits (32 positions for
float32, 64 for float64).
"""

import argparse
import json
import math
import sys

import numpy as np

# netCDF's default fill of float and double (NC_FILL_FLOAT, NC_FILL_DOUBLE).
NC_DEFAULT_FILL = 9.969209968386869e36

# Mantissa (explicit significand) and exponent bits of each float type.
NMANT = {np.dtype("float32"): 23, np.dtype("float64"): 52}
NEXP = {np.dtype("float32"): 8, np.dtype("float64"): 11}


def _float_dtype(a):
    dt = np.dtype(a.dtype).newbyteorder("=")
    if dt not in NMANT:
        raise TypeError(f"only float32 and float64 are supported, not {a.dtype}")
    return dt


def _uint_dtype(dt):
    return np.dtype(f"u{dt.itemsize}")


def _fill_bits(fills, dt):
    """The bit patterns (as the unsigned int of the width) of the fill values,
    each converted to the float type first (a float64 attribute of a float32
    variable compares as the float32 it is stored as)."""
    return [np.asarray(f, dtype=dt).reshape(()).view(_uint_dtype(dt)).item() for f in fills]


def _is_fill(u, fill_bits):
    """Where the unsigned bit patterns ``u`` equal one of ``fill_bits``."""
    out = np.zeros(u.shape, dtype=bool)
    for fb in fill_bits:
        out |= u == u.dtype.type(fb)
    return out


# --------------------------------------------------------------------------
# BitRound
# --------------------------------------------------------------------------


def bitround_numcodecs(a, keepbits):
    """numcodecs.BitRound(keepbits).encode(a), bit for bit, as floats.

    Round to nearest with ties to even on the bit pattern viewed as a signed
    integer of the same width, then clear the ``nmant - keepbits`` lowest
    bits. The largest finite values may round up to +-Inf, exactly as
    numcodecs does. Applied to every element, NaN and Inf included.
    """
    a = np.asarray(a)
    dt = _float_dtype(a)
    nmant = NMANT[dt]
    keepbits = int(keepbits)
    if not 0 <= keepbits <= nmant:
        raise ValueError(f"keepbits must be in 0..={nmant} for {dt}, not {keepbits}")
    a = a.astype(dt, copy=False)
    if keepbits == nmant:
        return a.copy()
    idt = np.dtype(f"i{dt.itemsize}")
    b = a.copy().view(idt)
    maskbits = nmant - keepbits
    all_set = np.array(-1, dtype=idt)
    mask = (all_set >> maskbits) << maskbits
    half_quantum1 = idt.type((1 << (maskbits - 1)) - 1)
    # Signed wrap-around is what numcodecs gets (NumPy wraps array arithmetic).
    with np.errstate(over="ignore"):
        b += ((b >> maskbits) & 1) + half_quantum1
    b &= mask
    return b.view(dt)


def bitround(a, keepbits, keep=()):
    """zarrforge's BitRound: numcodecs' rounding of the finite values; NaN
    (any payload), +-Inf and elements whose bits equal one of ``keep`` (fill
    values: _FillValue, missing_value, converted to the array's type) are
    left unchanged."""
    a = np.asarray(a)
    dt = _float_dtype(a)
    a = a.astype(dt, copy=False)
    out = bitround_numcodecs(a, keepbits)
    u = a.view(_uint_dtype(dt))
    unchanged = ~np.isfinite(a) | _is_fill(u, _fill_bits(keep, dt))
    out[unchanged] = a[unchanged]
    return out


# --------------------------------------------------------------------------
# Bitwise real information
# --------------------------------------------------------------------------


def signed_exponent(a):
    """xbitinfo's (and BitInformation.jl's) signed-exponent transform.

    The biased exponent field becomes a sign-and-magnitude exponent: the first
    exponent bit is set when the unbiased exponent is negative and the others
    hold its absolute value; sign and mantissa bits stay. As in xbitinfo's
    python implementation the absolute value is not special-cased for zeros
    and subnormals (exponent -bias: all exponent bits set). Returns the bit
    patterns as unsigned integers of the same width.
    """
    a = np.asarray(a)
    dt = _float_dtype(a)
    a = a.astype(dt, copy=False)
    nbits = 8 * dt.itemsize
    nmant = NMANT[dt]
    bias = (1 << (NEXP[dt] - 1)) - 1
    udt = _uint_dtype(dt)
    u = a.view(udt)
    sfmask = udt.type((1 << (nbits - 1)) | ((1 << nmant) - 1))
    emask = udt.type(((1 << NEXP[dt]) - 1) << nmant)
    esignmask = udt.type(1 << (nbits - 2))
    e = ((u & emask) >> udt.type(nmant)).astype(np.int64) - bias
    # xbitinfo: eabs = |e| mod (max_uint >> nmant) + 1; here |e| <= bias + 1,
    # which the modulus never changes.
    eabs = np.abs(e).astype(udt)
    esigned = np.where(e < 0, esignmask, udt.type(0)).astype(udt) | (eabs << udt.type(nmant))
    return (u & sfmask) | esigned


def _valid(a, fill_bits):
    """Elements that take part in pairs: not NaN, not a fill value."""
    u = a.view(_uint_dtype(a.dtype))
    return ~(np.isnan(a) | _is_fill(u, fill_bits))


def bitpair_counts(a, axis, mask=None, fills=()):
    """Joint bit counts of adjacent pairs (a[i], a[i+1]) along ``axis``.

    For each bit position (0 = sign, most significant first) of the
    signed-exponent patterns, the counts [n00, n01, n10, n11] of the bit of the
    first element of a pair and the bit of the second. Pairs where either
    element is NaN or a fill value (``fills``) are skipped; ``mask`` (True =
    valid element), when given, replaces that NaN/fill test.

    Returns (counts: int64 array (nbits, 4), number of pairs used).
    """
    a = np.asarray(a)
    dt = _float_dtype(a)
    a = a.astype(dt, copy=False)
    nbits = 8 * dt.itemsize
    axis = axis % a.ndim
    n = a.shape[axis]
    counts = np.zeros((nbits, 4), dtype=np.int64)
    if n < 2:
        return counts, 0
    if mask is None:
        mask = _valid(a, _fill_bits(fills, dt))
    mask = np.asarray(mask, dtype=bool)
    s = signed_exponent(a)
    first = tuple(slice(0, n - 1) if i == axis else slice(None) for i in range(a.ndim))
    second = tuple(slice(1, n) if i == axis else slice(None) for i in range(a.ndim))
    x, y = s[first], s[second]
    pair_ok = mask[first] & mask[second]
    npairs = int(np.count_nonzero(pair_ok))
    if npairs == 0:
        return counts, 0
    if npairs != pair_ok.size:
        x, y = x[pair_ok], y[pair_ok]
    else:
        x, y = x.ravel(), y.ravel()  # a copy only where not contiguous
    xy = x & y
    udt = _uint_dtype(dt)
    for pos in range(nbits):
        bit = udt.type(1 << (nbits - 1 - pos))
        ones_x = np.count_nonzero(x & bit)
        ones_y = np.count_nonzero(y & bit)
        n11 = np.count_nonzero(xy & bit)
        n10 = ones_x - n11
        n01 = ones_y - n11
        n00 = npairs - n11 - n10 - n01
        counts[pos] = (n00, n01, n10, n11)
    return counts, npairs


def mutual_information(counts, npairs):
    """Per bit, the mutual information (bits, base 2) of the 2x2 joint
    distribution p = counts / npairs (0 log 0 = 0), as xbitinfo's
    _py_bitinfo.mutual_information and BitInformation.jl compute it."""
    counts = np.asarray(counts, dtype=np.int64)
    mi = np.zeros(counts.shape[0], dtype=np.float64)
    if npairs <= 0:
        return mi
    p = counts.astype(np.float64).reshape(-1, 2, 2) / float(npairs)
    pr = p.sum(axis=2)  # first element's bit
    ps = p.sum(axis=1)  # second element's bit
    for i in range(p.shape[0]):
        m = 0.0
        for j in range(2):
            for k in range(2):
                if p[i, j, k] > 0:
                    m += p[i, j, k] * math.log(p[i, j, k] / (pr[i, j] * ps[i, k]))
        mi[i] = m / math.log(2.0)
    return mi


def norm_ppf(q):
    """The standard normal quantile (inverse CDF) at ``q`` in (0, 1).

    Acklam's rational approximation (relative error < 1.2e-9) refined by one
    Halley step on math.erfc, which brings it to double precision.
    """
    if not 0.0 < q < 1.0:
        raise ValueError(f"quantile needs 0 < q < 1, not {q}")
    a = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02,
         1.383577518672690e02, -3.066479806614716e01, 2.506628277459239e00)
    b = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02,
         6.680131188771972e01, -1.328068155288572e01)
    c = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00,
         -2.549732539343734e00, 4.374664141464968e00, 2.938163982698783e00)
    d = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00,
         3.754408661907416e00)
    plow = 0.02425
    if q < plow:
        r = math.sqrt(-2.0 * math.log(q))
        x = (((((c[0] * r + c[1]) * r + c[2]) * r + c[3]) * r + c[4]) * r + c[5]) / \
            ((((d[0] * r + d[1]) * r + d[2]) * r + d[3]) * r + 1.0)
    elif q <= 1.0 - plow:
        r = q - 0.5
        t = r * r
        x = (((((a[0] * t + a[1]) * t + a[2]) * t + a[3]) * t + a[4]) * t + a[5]) * r / \
            (((((b[0] * t + b[1]) * t + b[2]) * t + b[3]) * t + b[4]) * t + 1.0)
    else:
        r = math.sqrt(-2.0 * math.log(1.0 - q))
        x = -(((((c[0] * r + c[1]) * r + c[2]) * r + c[3]) * r + c[4]) * r + c[5]) / \
            ((((d[0] * r + d[1]) * r + d[2]) * r + d[3]) * r + 1.0)
    # One Halley step: e = Phi(x) - q.
    e = 0.5 * math.erfc(-x / math.sqrt(2.0)) - q
    u = e * math.sqrt(2.0 * math.pi) * math.exp(x * x / 2.0)
    return x - u / (1.0 + x * u / 2.0)


def entropy2(ps):
    """Shannon entropy in bits of a probability vector (0 log 0 = 0)."""
    return -sum(p * math.log2(p) for p in ps if p > 0)


def free_entropy(npairs, confidence=0.99):
    """BitInformation.jl's binom_free_entropy: 1 - H([p, 1-p]) for the
    probability p of heads that n fair coin tosses do not exceed at the given
    confidence, p = 0.5 + z / (2 sqrt(n)), capped at 1."""
    if npairs <= 0:
        return 1.0
    z = norm_ppf(1.0 - (1.0 - confidence) / 2.0)
    p = min(1.0, 0.5 + z / (2.0 * math.sqrt(npairs)))
    return 1.0 - entropy2([p, 1.0 - p])


def significance(mi, npairs, confidence=0.99):
    """BitInformation.jl's set_zero_insignificant: information not above the
    free entropy of a fair coin at ``npairs`` trials is set to zero."""
    mi = np.array(mi, dtype=np.float64)
    mi[mi <= free_entropy(npairs, confidence)] = 0.0
    return mi


def keepbits_from_info(info, dtype, level=0.99):
    """xbitinfo.get_keepbits' rule for one information-per-bit vector.

    Information not above 1.5 times the largest of the last four bits is
    dropped (taken as rounding noise); the rest makes a cumulative
    distribution, and the keepbits are the mantissa bits up to the first bit
    where it exceeds ``level``. Clamped into [0, nmant]; ``level >= 1`` keeps
    every mantissa bit, and so does an info vector with no information left
    (nothing can be told from it, so it stays lossless).
    """
    dt = np.dtype(dtype)
    nmant, nexp = NMANT[dt], NEXP[dt]
    if level >= 1.0:
        return nmant
    info = np.asarray(info, dtype=np.float64)
    threshold = 1.5 * np.max(info[-4:])
    cleaned = np.where(info > threshold, info, 0.0)
    total = cleaned.sum()
    if not total > 0.0:
        return nmant
    cdf = np.cumsum(cleaned) / total
    k = int(np.argmax(cdf > level)) + 1 - (1 + nexp)
    return min(max(k, 0), nmant)


def bitinfo(a, level=0.99, fills=(), dims=None, confidence=0.99, name=None):
    """The bitwise real information of ``a`` along every dimension of length
    >= 2, and keepbits per dimension and for the variable (their maximum).

    Returns a dict shaped like one entry of ``zarrforge bitinfo --json``:
    {"name", "dtype", "level", "keepbits", "along": [{"dim", "pairs",
    "counts", "info", "keepbits"}, ...]}. ``dims`` names the dimensions
    (default dim0, dim1, ...). A variable with no dimension of length >= 2
    or no valid pair keeps every mantissa bit.
    """
    a = np.asarray(a)
    dt = _float_dtype(a)
    a = a.astype(dt, copy=False)
    if dims is None:
        dims = [f"dim{i}" for i in range(a.ndim)]
    mask = _valid(a, _fill_bits(fills, dt))
    along = []
    for axis, dim in enumerate(dims):
        if a.shape[axis] < 2:
            continue
        counts, npairs = bitpair_counts(a, axis, mask=mask)
        info = significance(mutual_information(counts, npairs), npairs, confidence)
        along.append({
            "dim": dim,
            "pairs": npairs,
            "counts": counts.tolist(),
            "info": [float(v) for v in info],
            "keepbits": keepbits_from_info(info, dt, level),
        })
    keepbits = max((d["keepbits"] for d in along), default=NMANT[dt])
    out = {"name": name, "dtype": str(dt), "level": level, "keepbits": keepbits, "along": along}
    if name is None:
        del out["name"]
    return out


# --------------------------------------------------------------------------
# netCDF
# --------------------------------------------------------------------------


def file_bitinfo(path, names=None, level=0.99):
    """``bitinfo`` of the float32/float64 variables of a netCDF file (or of
    ``names``), read raw (no mask, no scale); packed variables (scale_factor
    or add_offset) are skipped; _FillValue, missing_value and netCDF's
    default fill (9.969209968386869e36, what an unwritten element holds)
    are fills, as zarrforge masks them."""
    import netCDF4

    out = []
    with netCDF4.Dataset(path) as ds:
        ds.set_auto_maskandscale(False)
        for vname, var in ds.variables.items():
            if names is not None and vname not in names:
                continue
            if var.dtype not in (np.float32, np.float64):
                continue
            attrs = set(var.ncattrs())
            if "scale_factor" in attrs or "add_offset" in attrs:
                continue
            fills = [NC_DEFAULT_FILL]
            for att in ("_FillValue", "missing_value"):
                if att in attrs:
                    fills.extend(np.atleast_1d(var.getncattr(att)).tolist())
            data = np.asarray(var[...])
            out.append(bitinfo(data, level=level, fills=fills, dims=list(var.dimensions), name=vname))
    return {"variables": out}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("file", help="netCDF file")
    ap.add_argument("--vars", help="comma-separated variable names (default: every float variable)")
    ap.add_argument("--level", type=float, default=0.99, help="information level (default 0.99)")
    ap.add_argument("--json", action="store_true", help="print JSON (as zarrforge bitinfo --json)")
    args = ap.parse_args(argv)
    names = args.vars.split(",") if args.vars else None
    res = file_bitinfo(args.file, names, args.level)
    if args.json:
        json.dump(res, sys.stdout)
        sys.stdout.write("\n")
    else:
        for v in res["variables"]:
            per_dim = ", ".join(f"{d['dim']}: {d['keepbits']}" for d in v["along"])
            print(f"{v['name']} ({v['dtype']}): keepbits {v['keepbits']} at level {v['level']} ({per_dim})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
