"""Test vectors for the FP32 units: float32 bit patterns (uint32) a, b, c.

:func:`vectors` returns the edge-case block first (every pair of :func:`edge_values`, so
any prefix longer than it still covers them all), then a shuffled mix of constructed
cases and random operands:

* subnormal operands (flushed by ``synth``, exact in ``behav``);
* rounding ties: ``a + b`` landing exactly halfway between two floats, ``a * b`` with a
  25-bit odd significand product, products halfway on the subnormal grid, and products
  just below the smallest normal (the flush-to-zero corner);
* overflow, underflow into the subnormal range, cancellation ``a + (-a)`` and near it;
* uniform random bit patterns (every class: NaN, inf, subnormal, zero, normal);
* random normal floats, with exponents uniform or close together (alignment shifts).

``c`` (the MAC addend) is a random pattern, an edge value, a value near ``-(a * b)``
(cancellation after the product) or a float of the product's magnitude.

Deterministic for a given ``(n, seed)``.
"""

from __future__ import annotations

import numpy as np

F32_MAX = 0x7F7FFFFF

# Sign-less magnitudes; both signs are used.
_EDGE_MAGS = [
    0x00000000,  # zero
    0x00000001,  # smallest subnormal
    0x00000002,
    0x00400000,  # subnormal, half the smallest normal
    0x007FFFFF,  # largest subnormal
    0x00800000,  # smallest normal
    0x00800001,
    0x00FFFFFF,
    0x01000000,
    0x0C000000,  # 2^-103: half an ulp of the smallest normal's neighbours, in products
    0x33800000,  # 2^-24: half an ulp of 1.0
    0x33800001,
    0x34000000,  # 2^-23: an ulp of 1.0
    0x3F000000,  # 0.5
    0x3F7FFFFF,  # largest float below 1
    0x3F800000,  # 1.0
    0x3F800001,  # 1 + ulp
    0x3FC00000,  # 1.5
    0x3FFFFFFF,
    0x40000000,  # 2.0
    0x40490FDB,  # pi
    0x4B800000,  # 2^24
    0x5F800000,  # 2^64
    0x7F000000,  # 2^127
    0x7F7FFFFE,
    0x7F7FFFFF,  # largest finite
    0x7F800000,  # inf
]
_NANS = [0x7FC00000, 0xFFC00000, 0x7F800001, 0x7FFFFFFF, 0xFFBFFFFF]


def edge_values() -> np.ndarray:
    """Special and boundary float32 bit patterns, both signs, plus a few NaNs."""
    mags = np.array(_EDGE_MAGS, dtype=np.uint32)
    return np.concatenate([mags, mags | np.uint32(0x80000000),
                           np.array(_NANS, dtype=np.uint32)])


def _bits(x64: np.ndarray) -> np.ndarray:
    """float64 values (exactly representable in float32) -> float32 bit patterns."""
    with np.errstate(over="ignore"):
        return np.asarray(x64, dtype=np.float64).astype(np.float32).view(np.uint32)


def _sign(rng, n) -> np.ndarray:
    return np.where(rng.random(n) < 0.5, -1.0, 1.0)


def _normals(rng, n, exp_lo=1, exp_hi=254) -> np.ndarray:
    """Random normal floats, biased exponents uniform in [exp_lo, exp_hi]."""
    e = rng.integers(exp_lo, exp_hi + 1, n).astype(np.uint32)
    m = rng.integers(0, 1 << 23, n).astype(np.uint32)
    s = (rng.random(n) < 0.5).astype(np.uint32)
    return (s << 31) | (e << 23) | m


def _exp_field(bits: np.ndarray) -> np.ndarray:
    return ((bits >> 23) & 0xFF).astype(np.int64)


def add_ties(rng, n):
    """a + b an odd multiple of half an ulp of a: a tie unless the sum changes binade."""
    a = _normals(rng, n, 2, 253)
    ea = _exp_field(a)
    width = rng.choice([1, 5, 23], n)             # size of the odd multiplier
    k = rng.integers(0, 1 << 23, n) % (1 << width)
    k = np.where(rng.random(n) < 0.3, 0, k)       # exactly half an ulp
    b = (2 * k + 1) * np.ldexp(1.0, ea - 151) * _sign(rng, n)
    return a, _bits(b)


def mul_ties(rng, n):
    """Odd significands whose product has exactly 25 bits: a tie at 24-bit rounding."""
    small_bits = rng.integers(2, 13, n)
    m1 = (rng.integers(0, 1 << 62, n) % (1 << small_bits)) | 1 | (1 << (small_bits - 1))
    lo = -(-(1 << 24) // m1)
    hi = ((1 << 25) - 1) // m1
    m2 = lo + rng.integers(0, 1 << 62, n) % (hi - lo + 1)
    m2 = m2 | 1
    m2 = np.where(m2 > hi, m2 - 2, m2)
    # Product exponent (of the 25-bit integer's unit) spread over the normal range and
    # a little beyond it at both ends.
    e_prod = rng.integers(-126 - 24 - 6, 128 - 24 + 4, n)
    e1 = rng.integers(-100, 100, n)
    e1 = np.clip(e1, e_prod - 100, e_prod + 100)
    e2 = e_prod - e1
    a = np.ldexp(m1.astype(np.float64), e1) * _sign(rng, n)
    b = np.ldexp(m2.astype(np.float64), e2) * _sign(rng, n)
    ok = (np.abs(a) <= 3.4e38) & (np.abs(b) <= 3.4e38) & \
         (np.abs(a) >= 2.0 ** -126) & (np.abs(b) >= 2.0 ** -126)
    swap = rng.random(n) < 0.5
    a, b = np.where(swap, b, a), np.where(swap, a, b)
    return _bits(a[ok]), _bits(b[ok])


def mul_subnormal_ties(rng, n):
    """Products that are odd multiples of 2^-150: ties on the subnormal grid."""
    m1 = rng.integers(0, 1 << 11, n) * 2 + 1
    m2 = rng.integers(0, 1 << 11, n) * 2 + 1
    e1 = rng.integers(-100, -20, n)
    e2 = -150 - e1
    a = np.ldexp(m1.astype(np.float64), e1) * _sign(rng, n)
    b = np.ldexp(m2.astype(np.float64), e2) * _sign(rng, n)
    return _bits(a), _bits(b)


def mul_min_normal(rng, n):
    """(1 - j*2^-24)(1 + i*2^-23) * 2^-126: around the smallest normal, from below."""
    j = rng.integers(1, 4, n)
    i = rng.integers(0, 3, n)
    k = rng.integers(-20, 1, n)
    a = np.ldexp(1.0 - j * 2.0 ** -24, k) * _sign(rng, n)
    b = np.ldexp(1.0 + i * 2.0 ** -23, -126 - k) * _sign(rng, n)
    return _bits(a), _bits(b)


def overflow(rng, n):
    """Sums and products near and past the largest finite float."""
    h = n // 2
    a1 = _normals(rng, h, 252, 254)
    b1 = _normals(rng, h, 250, 254)
    b1 = (b1 & np.uint32(0x7FFFFFFF)) | (a1 & np.uint32(0x80000000))   # same sign
    ea = rng.integers(127 + 40, 255, n - h)
    a2 = _normals(rng, n - h, 0, 0) | (ea.astype(np.uint32) << 23)
    eb = np.clip(127 + 127 + 127 - ea + rng.integers(-2, 3, n - h), 1, 254)
    b2 = _normals(rng, n - h, 0, 0) | (eb.astype(np.uint32) << 23)
    return np.concatenate([a1, a2]), np.concatenate([b1, b2])


def underflow(rng, n):
    """Differences of nearby small normals and products around 2^-126 and below."""
    h = n // 2
    a1 = _normals(rng, h, 1, 3)
    delta = rng.integers(-(1 << 22), 1 << 22, h)
    b1 = (a1.astype(np.int64) & 0x7FFFFFFF) + delta
    b1 = np.clip(b1, 0, 0x7F7FFFFF).astype(np.uint32) | (~a1 & np.uint32(0x80000000))
    ea = rng.integers(1, 127, n - h)
    eb = np.clip(127 - 126 + 127 - ea + rng.integers(-26, 3, n - h), 1, 254)
    a2 = _normals(rng, n - h, 0, 0) | (ea.astype(np.uint32) << 23)
    b2 = _normals(rng, n - h, 0, 0) | (eb.astype(np.uint32) << 23)
    return np.concatenate([a1, a2]), np.concatenate([b1, b2])


def cancellation(rng, n):
    """b = -a exactly, or -a moved by a few ulps (massive cancellation); a third of
    them just above a power of two, so that -b lies in the binade below."""
    a = rng.integers(0, 1 << 32, n, dtype=np.uint64).astype(np.uint32)
    a = np.where(rng.random(n) < 0.5, a, _normals(rng, n))
    edge = rng.random(n) < 0.33
    a = np.where(edge, (a & np.uint32(0xFF800000)) | rng.integers(0, 4, n).astype(np.uint32), a)
    ulps = np.where(rng.random(n) < 0.4, 0, rng.integers(-3, 4, n))
    ulps = np.where(edge, -rng.integers(1, 9, n), ulps)
    mag = np.clip((a & np.uint32(0x7FFFFFFF)).astype(np.int64) + ulps, 0, 0x7FFFFFFF)
    b = mag.astype(np.uint32) | (~a & np.uint32(0x80000000))
    return a, b


def subnormals(rng, n):
    """Subnormal a; b subnormal, small normal, or a float that scales a into range."""
    a = rng.integers(1, 1 << 23, n).astype(np.uint32) | \
        (rng.integers(0, 2, n).astype(np.uint32) << 31)
    kind = rng.integers(0, 3, n)
    b_sub = rng.integers(1, 1 << 23, n).astype(np.uint32)
    b_small = _normals(rng, n, 1, 3)
    b_scale = _normals(rng, n, 127, 127 + 40)
    b = np.where(kind == 0, b_sub, np.where(kind == 1, b_small, b_scale))
    b = b | (rng.integers(0, 2, n).astype(np.uint32) << 31)
    swap = rng.random(n) < 0.5
    return np.where(swap, b, a), np.where(swap, a, b)


def random_bits(rng, n):
    r = lambda: rng.integers(0, 1 << 32, n, dtype=np.uint64).astype(np.uint32)  # noqa: E731
    return r(), r()


def random_normals(rng, n):
    """Half with independent exponents, half with exponents at most 30 apart."""
    a = _normals(rng, n)
    b = _normals(rng, n)
    near = rng.random(n) < 0.5
    eb = np.clip(_exp_field(a) + rng.integers(-30, 31, n), 1, 254).astype(np.uint32)
    b = np.where(near, (b & np.uint32(0x807FFFFF)) | (eb << 23), b)
    return a, b


_MIX = [(add_ties, 0.10), (mul_ties, 0.10), (mul_subnormal_ties, 0.03),
        (mul_min_normal, 0.02), (overflow, 0.05), (underflow, 0.05),
        (cancellation, 0.05), (subnormals, 0.04), (random_bits, 0.24),
        (random_normals, 0.32)]


def _addends(rng, a, b) -> np.ndarray:
    """MAC addends: random bits, edge values, near -(a*b), or of a*b's magnitude."""
    n = len(a)
    with np.errstate(all="ignore"):
        p = a.view(np.float32).astype(np.float64) * b.view(np.float32).astype(np.float64)
        p32 = p.astype(np.float32)
    pb = p32.view(np.uint32)
    kind = rng.integers(0, 4, n)
    c = rng.integers(0, 1 << 32, n, dtype=np.uint64).astype(np.uint32)
    edges = edge_values()
    c = np.where(kind == 1, edges[rng.integers(0, len(edges), n)], c)
    near = np.clip((pb & np.uint32(0x7FFFFFFF)).astype(np.int64) + rng.integers(-2, 3, n),
                   0, 0x7FFFFFFF).astype(np.uint32) | (~pb & np.uint32(0x80000000))
    c = np.where(kind == 2, near, c)
    ep = _exp_field(pb)
    mag = _normals(rng, n, 0, 0) | (np.clip(ep + rng.integers(-25, 26, n), 1, 254)
                                    .astype(np.uint32) << 23)
    return np.where(kind == 3, mag, c)


def vectors(n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` operand triples (uint32 arrays a, b, c): edge block first, then the mix."""
    rng = np.random.default_rng(seed)
    e = edge_values()
    ea, eb = np.repeat(e, len(e)), np.tile(e, len(e))
    parts_a, parts_b = [ea], [eb]
    rest = max(n - len(ea), 0)
    got = 0
    for gen, frac in _MIX:
        k = int(round(rest * frac))
        a, b = gen(rng, k)
        parts_a.append(a.astype(np.uint32))
        parts_b.append(b.astype(np.uint32))
        got += len(a)
    if got < rest:                                # filters and rounding: top up
        a, b = random_bits(rng, rest - got)
        parts_a.append(a)
        parts_b.append(b)
    ma, mb = np.concatenate(parts_a[1:]), np.concatenate(parts_b[1:])
    order = rng.permutation(len(ma))
    a = np.concatenate([ea, ma[order]])[:n]
    b = np.concatenate([eb, mb[order]])[:n]
    c = _addends(rng, a, b)
    c[: min(n, len(ea))] = np.roll(e, 7)[np.arange(min(n, len(ea))) % len(e)]
    return a, b, c


def _is_tie(exact: np.ndarray) -> np.ndarray:
    """float64 values lying exactly halfway between two adjacent float32 values."""
    with np.errstate(all="ignore"):
        r = exact.astype(np.float32)
        finite = np.isfinite(exact) & np.isfinite(r)
        toward = np.where(exact > r.astype(np.float64), np.float32(np.inf), -np.float32(np.inf))
        other = np.nextafter(r, toward.astype(np.float32))
        lo = exact - r.astype(np.float64)
        hi = other.astype(np.float64) - exact
        return finite & (r.astype(np.float64) != exact) & (lo == hi)


def coverage(a: np.ndarray, b: np.ndarray) -> dict[str, int]:
    """How many (a, b) pairs fall in each edge-case class (for the test report)."""
    tiny = 2.0 ** -126
    with np.errstate(all="ignore"):
        fa = a.view(np.float32).astype(np.float64)
        fb = b.view(np.float32).astype(np.float64)
        s, p = fa + fb, fa * fb
        s32, p32 = a.view(np.float32) + b.view(np.float32), a.view(np.float32) * b.view(np.float32)
    finite = np.isfinite(fa) & np.isfinite(fb)
    nonzero = (fa != 0) & (fb != 0)
    sub = lambda x: (x != 0) & (np.abs(x) < tiny)  # noqa: E731
    return {
        "add_tie": int(np.sum(_is_tie(s) & finite)),
        "mul_tie_normal": int(np.sum(_is_tie(p) & finite & (np.abs(p) >= tiny))),
        "mul_tie_subnormal": int(np.sum(_is_tie(p) & finite & (np.abs(p) < tiny))),
        "mul_min_normal_corner": int(np.sum(finite & (np.abs(p) >= tiny - 2.0 ** -150)
                                            & (np.abs(p) < tiny) & ~sub(fa) & ~sub(fb))),
        "add_overflow": int(np.sum(finite & np.isinf(s32))),
        "mul_overflow": int(np.sum(finite & np.isinf(p32))),
        "add_underflow": int(np.sum(finite & nonzero & ~sub(fa) & ~sub(fb)
                                    & (np.abs(s32.astype(np.float64)) < tiny))),
        "mul_underflow": int(np.sum(finite & nonzero & ~sub(fa) & ~sub(fb)
                                    & (np.abs(p32.astype(np.float64)) < tiny))),
        "exact_cancellation": int(np.sum(finite & nonzero & (fa == -fb))),
        "subnormal_operand": int(np.sum(sub(fa) | sub(fb))),
        "zero_operand": int(np.sum((fa == 0) | (fb == 0))),
        "nan_operand": int(np.sum(np.isnan(fa) | np.isnan(fb))),
        "inf_minus_inf": int(np.sum(np.isinf(fa) & np.isinf(fb) & (fa == -fb))),
        "zero_times_inf": int(np.sum(((fa == 0) & np.isinf(fb)) | ((fb == 0) & np.isinf(fa)))),
    }
