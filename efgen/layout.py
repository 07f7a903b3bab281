"""DRAM layouts of feature maps, errors and weights — the executable specification.

The HLS C++ and RTL generators must reproduce these addresses exactly, and the
analytical model counts DRAM bursts with :meth:`FeatureMapLayout.tile_bursts` /
:meth:`WeightLayout.tile_bursts` (or the cheaper ``tile_burst_count``). Addresses are
in **words** (one word = one tensor element) and are offsets from the tensor's base.

Feature maps and errors, shape ``(B, C, H, W)`` (a 2-D ``(B, C)`` activation of a
linear layer is treated as ``H = W = 1``):

* ``"blocked"`` with lane block ``T`` (EF-Train's "data reshaping"): channels are cut
  into ``ceil(C/T)`` blocks of ``T`` lanes and a block's lanes are innermost::

      addr(b, c, r, x) = ((b*ceil(C/T) + c//T)*H*W + r*W + x)*T + c%T
      size             = B * ceil(C/T) * H * W * T

  Lanes ``c >= C`` of the last block are zero padding: ``pack`` writes zeros there,
  ``unpack`` ignores them.
* ``"nchw"``: the plain row-major ``addr = ((b*C + c)*H + r)*W + x``.

Weights, shape ``(M, N, K, K)`` (a linear layer's ``(M, N)`` is treated as ``K = 1``):

* ``"blocked"`` with ``(Tm, Tn)``: one contiguous block per (m-block, n-block) pair,
  pairs in m-block-major order; inside a pair, one ``Tm x Tn`` vector per kernel
  offset ``(i, j)`` (exactly what a ``Tm x Tn`` MAC array consumes per cycle)::

      addr(m, n, i, j) = (mb*ceil(N/Tn) + nb)*K*K*Tm*Tn          # the pair's base
                         + ((i*K + j)*Tm + m%Tm)*Tn + n%Tn        # inside the pair
      with mb = m//Tm, nb = n//Tn;  size = ceil(M/Tm)*ceil(N/Tn)*K*K*Tm*Tn

  Pad lanes (``m >= M`` or ``n >= N``) are zero.
* ``"oihw"``: the plain row-major ``addr = ((m*N + n)*K + i)*K + j``.

Why these layouts: the accelerator works on channel tiles, and every tile it moves in
every training phase should be *one* DRAM burst (long bursts are what keeps the AXI
port near its peak bandwidth). FP reads input-feature-map tiles by n-block and writes
output tiles by m-block; BP reads the error by m-block and writes the input error by
n-block; WU reads both the input feature map and the error. With the blocked layout a
tile of one channel block and full-width rows ``[r0, r1) x [0, W)`` is a single run of
``(r1-r0)*W*T`` words, whatever the phase. In NCHW the same tile is one run per channel.
Weights: FP walks the pairs in storage order; BP (which swaps the roles of M and N)
reads all n-blocks of one m-block, i.e. consecutive pairs — each pair is one burst and
the pairs of one m-block are adjacent, so a whole m-block row is a single burst too.

Burst lists. ``tile_bursts`` returns the minimal list of maximal contiguous address
runs ``(addr, length)``, ascending, covering exactly the words the tile moves. In the
blocked layouts the hardware moves whole lane vectors, so a tile whose channel range
covers only part of a block still moves all ``T`` lanes of every block it touches (pad
lanes included): tile ranges are rounded outwards to whole blocks. Reads of partial
blocks therefore cost the full block; *writes* of partial blocks would clobber the
other lanes, so the schedule must only write block-aligned channel ranges (output
tiles of whole m-blocks). ``tile_words`` is the number of words actually moved.

``max_burst`` (words) splits longer runs into pieces of at most ``max_burst`` words
(AXI4 bursts are limited to 256 beats; the caller converts beats to words for its bus
width). The 4 KiB AXI boundary rule depends on the absolute base address and is left to
the code generator's address allocator (bases aligned to 4 KiB make the two agree when
``max_burst`` words is a power-of-two number of bytes dividing 4096).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Sequence

import numpy as np

FM_KINDS = ("blocked", "nchw")
WEIGHT_KINDS = ("blocked", "oihw")

Range = tuple[int, int]
Burst = tuple[int, int]


# --------------------------------------------------------------------------- helpers

def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _as_count(name: str, v) -> int:
    """A positive int (numpy ints accepted, bools and floats not)."""
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
        raise ValueError(f"{name} must be a positive integer, got {v!r}")
    return int(v)


def _as_shape(shape, ndims: tuple[int, ...], what: str) -> tuple[int, ...]:
    try:
        s = tuple(shape)
    except TypeError:
        raise ValueError(f"{what} shape must be a sequence, got {shape!r}") from None
    if len(s) not in ndims:
        raise ValueError(f"{what} shape must have {' or '.join(map(str, ndims))} "
                         f"dimensions, got {s!r}")
    return tuple(_as_count(f"{what} shape dimension", d) for d in s)


def _index(name: str, v, n: int):
    """Validate index ``v`` (int or integer array) against ``[0, n)``.

    Scalars come back as Python ints, arrays as int64 arrays (so address arithmetic
    cannot overflow a narrower input dtype).
    """
    if isinstance(v, (numbers.Integral, np.integer)) and not isinstance(v, bool):
        v = int(v)
        if not 0 <= v < n:
            raise ValueError(f"index {name}={v} out of range [0, {n})")
        return v
    a = np.asarray(v)
    if a.dtype.kind not in "iu":
        raise ValueError(f"index {name} must be an integer or an integer array, "
                         f"got dtype {a.dtype}")
    a = a.astype(np.int64, copy=False)
    if a.size and (a.min() < 0 or a.max() >= n):
        raise ValueError(f"index {name} out of range [0, {n})")
    return a


def _as_range(name: str, rng, n: int) -> Range:
    """A half-open ``(lo, hi)`` with ``0 <= lo <= hi <= n``.

    Accepts a pair, a step-1 ``range``, ``None`` (the whole dimension) or, where an
    int makes sense, an int ``i`` meaning ``(i, i+1)``.
    """
    if rng is None:
        return (0, n)
    if isinstance(rng, (numbers.Integral, np.integer)) and not isinstance(rng, bool):
        lo, hi = int(rng), int(rng) + 1
    elif isinstance(rng, range):
        if rng.step != 1:
            raise ValueError(f"{name} must have step 1, got {rng!r}")
        lo, hi = rng.start, rng.stop
    else:
        try:
            lo, hi = rng
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a (lo, hi) pair, got {rng!r}") from None
        if not all(isinstance(v, (numbers.Integral, np.integer)) and not isinstance(v, bool)
                   for v in (lo, hi)):
            raise ValueError(f"{name} must be a pair of integers, got {rng!r}")
        lo, hi = int(lo), int(hi)
    if not 0 <= lo <= hi <= n:
        raise ValueError(f"{name}=({lo}, {hi}) is not a half-open range inside [0, {n}]")
    return (lo, hi)


def _block_range(rng: Range, t: int) -> Range:
    """The blocks touched by channel range ``rng`` (rounded outwards)."""
    lo, hi = rng
    if lo >= hi:
        return (0, 0)
    return (lo // t, _ceil_div(hi, t))


def _box_runs(dims: Sequence[int], box: Sequence[Range]) -> tuple[int, int, np.ndarray | None]:
    """Maximal contiguous runs of a box inside a row-major array.

    ``dims`` are the storage dimensions (outermost first), ``box`` one half-open range
    per dimension. Returns ``(n_runs, run_length, starts)``: trailing dimensions the box
    covers completely merge with the first partially covered one (counting from the
    inside) into one run; every combination of the dimensions outside that starts a new
    run. Consecutive runs are separated by the uncovered part of the partial dimension,
    so the runs are maximal and ``starts`` is ascending. ``starts`` is ``None`` when
    only counting (see :func:`_count_runs`).
    """
    n_runs, length, j = _count_runs(dims, box)
    if n_runs == 0:
        return 0, 0, np.zeros(0, dtype=np.int64)
    strides = [math.prod(dims[i + 1:]) for i in range(len(dims))]
    starts = np.array([box[j][0] * strides[j]], dtype=np.int64)
    for i in range(j - 1, -1, -1):  # add the outer dimensions, innermost first
        lo, hi = box[i]
        outer = np.arange(lo, hi, dtype=np.int64) * strides[i]
        starts = (outer[:, None] + starts[None, :]).ravel()
    return n_runs, length, starts


def _count_runs(dims: Sequence[int], box: Sequence[Range]) -> tuple[int, int, int]:
    """``(n_runs, run_length, j)`` of :func:`_box_runs` without listing the runs."""
    ext = [hi - lo for lo, hi in box]
    if min(ext) <= 0:
        return 0, 0, 0
    j = len(dims) - 1
    length = ext[j]
    while j > 0 and ext[j] == dims[j]:  # dimension j fully covered: merge outwards
        j -= 1
        length *= ext[j]
    return math.prod(ext[:j]), length, j


def _bursts(dims, box, max_burst) -> list[Burst]:
    n_runs, length, starts = _box_runs(dims, box)
    if n_runs == 0:
        return []
    if max_burst is None or length <= max_burst:
        return [(s, length) for s in starts.tolist()]
    offs = np.arange(0, length, max_burst, dtype=np.int64)
    lens = np.minimum(max_burst, length - offs)
    addrs = (starts[:, None] + offs[None, :]).ravel().tolist()
    return list(zip(addrs, np.tile(lens, n_runs).tolist()))


def _burst_count(dims, box, max_burst) -> int:
    n_runs, length, _ = _count_runs(dims, box)
    if n_runs == 0:
        return 0
    return n_runs * (1 if max_burst is None else _ceil_div(length, max_burst))


def _check_max_burst(max_burst):
    if max_burst is not None:
        _as_count("max_burst", max_burst)
        return int(max_burst)
    return None


# ---------------------------------------------------------------- feature maps / errors

@dataclass(frozen=True)
class FeatureMapLayout:
    """Layout of a feature map or error tensor ``(B, C, H, W)`` (or ``(B, C)``).

    ``kind`` is ``"blocked"`` (channel blocks of ``lanes`` channels, lanes innermost)
    or ``"nchw"``. ``lanes`` only matters for ``"blocked"``; for ``"nchw"`` it is
    stored as 1, so ``FeatureMapLayout("nchw", 16) == FeatureMapLayout("nchw")``.
    """

    kind: str
    lanes: int = 1

    def __post_init__(self):
        if self.kind not in FM_KINDS:
            raise ValueError(f"unknown feature-map layout kind {self.kind!r}; "
                             f"expected one of {FM_KINDS}")
        lanes = _as_count("lanes", self.lanes)
        object.__setattr__(self, "lanes", lanes if self.kind == "blocked" else 1)

    # -- geometry
    @staticmethod
    def _shape4(shape) -> tuple[int, int, int, int]:
        s = _as_shape(shape, (2, 4), "feature-map")
        return s if len(s) == 4 else (s[0], s[1], 1, 1)

    def blocks(self, channels: int) -> int:
        """Number of lane blocks for ``channels`` channels (``channels`` for NCHW)."""
        return _ceil_div(_as_count("channels", channels), self.lanes)

    def _storage(self, shape) -> tuple[int, ...]:
        """Storage dimensions, outermost first (the layout as a row-major array)."""
        b, c, h, w = self._shape4(shape)
        if self.kind == "blocked":
            return (b, self.blocks(c), h, w, self.lanes)
        return (b, c, h, w)

    def size(self, shape) -> int:
        """Words the tensor occupies in DRAM (including pad lanes)."""
        return math.prod(self._storage(shape))

    # -- addresses
    def addr(self, shape, b, c, r=0, x=0):
        """Word address of element ``[b, c, r, x]``; numpy integer arrays broadcast."""
        B, C, H, W = self._shape4(shape)
        b, c = _index("b", b, B), _index("c", c, C)
        r, x = _index("r", r, H), _index("x", x, W)
        if self.kind == "blocked":
            t = self.lanes
            return ((b * self.blocks(C) + c // t) * (H * W) + r * W + x) * t + c % t
        return ((b * C + c) * H + r) * W + x

    # -- whole-tensor conversion
    def pack(self, arr) -> np.ndarray:
        """The tensor as the 1-D word array stored in DRAM (same dtype)."""
        arr = np.asarray(arr)
        shape = self._shape4(arr.shape)
        arr = arr.reshape(shape)
        if self.kind == "nchw":
            return arr.ravel().copy()
        b, c, h, w = shape
        t, cb = self.lanes, self.blocks(c)
        if cb * t != c:
            padded = np.zeros((b, cb * t, h, w), dtype=arr.dtype)
            padded[:, :c] = arr
            arr = padded
        # (B, Cb, T, H, W) -> (B, Cb, H, W, T): lanes innermost.
        return arr.reshape(b, cb, t, h, w).transpose(0, 1, 3, 4, 2).ravel()

    def unpack(self, flat, shape) -> np.ndarray:
        """Inverse of :meth:`pack`: the tensor of ``shape`` (pad lanes ignored)."""
        flat = np.asarray(flat)
        out_shape = _as_shape(shape, (2, 4), "feature-map")
        if flat.ndim != 1 or flat.size != self.size(shape):
            raise ValueError(f"expected a 1-D array of {self.size(shape)} words for "
                             f"shape {out_shape}, got shape {flat.shape}")
        b, c, h, w = self._shape4(shape)
        if self.kind == "nchw":
            return flat.reshape(out_shape).copy()
        t, cb = self.lanes, self.blocks(c)
        arr = flat.reshape(b, cb, h, w, t).transpose(0, 1, 4, 2, 3).reshape(b, cb * t, h, w)
        return np.ascontiguousarray(arr[:, :c]).reshape(out_shape)

    # -- tiles
    def _tile_box(self, shape, b, c_range, r_range, x_range):
        B, C, H, W = self._shape4(shape)
        box = [_as_range("b", b, B), _as_range("c_range", c_range, C),
               _as_range("r_range", r_range, H), _as_range("x_range", x_range, W)]
        if self.kind == "blocked":
            box[1] = _block_range(box[1], self.lanes)
            box.append((0, self.lanes))  # whole lane vectors, pad lanes included
        return self._storage(shape), box

    def tile_bursts(self, shape, b, c_range, r_range=None, x_range=None,
                    max_burst: int | None = None) -> list[Burst]:
        """Bursts ``(addr, length)`` moving the tile ``[b, c_range, r_range, x_range]``.

        ``b`` is an int or a range; the other ranges are half-open ``(lo, hi)`` pairs
        (``None`` = the whole dimension). The list is ascending, its runs maximal and
        disjoint. Blocked layout: whole lane blocks are moved (see the module
        docstring). Runs longer than ``max_burst`` words are split.
        """
        max_burst = _check_max_burst(max_burst)
        return _bursts(*self._tile_box(shape, b, c_range, r_range, x_range), max_burst)

    def tile_burst_count(self, shape, b, c_range, r_range=None, x_range=None,
                         max_burst: int | None = None) -> int:
        """``len(tile_bursts(...))`` in O(1), for the analytical model."""
        max_burst = _check_max_burst(max_burst)
        return _burst_count(*self._tile_box(shape, b, c_range, r_range, x_range),
                            max_burst)

    def tile_words(self, shape, b, c_range, r_range=None, x_range=None) -> int:
        """Words the tile moves (pad lanes and partial blocks included)."""
        _, box = self._tile_box(shape, b, c_range, r_range, x_range)
        return math.prod(hi - lo for lo, hi in box)


# ------------------------------------------------------------------------------ weights

@dataclass(frozen=True)
class WeightLayout:
    """Layout of a weight tensor ``(M, N, K, K)`` (or a linear layer's ``(M, N)``).

    ``kind`` is ``"blocked"`` (one contiguous ``K*K*Tm*Tn`` block per (m-block,
    n-block) pair, m-block-major) or ``"oihw"``. ``tm``/``tn`` only matter for
    ``"blocked"``; for ``"oihw"`` they are stored as 1.
    """

    kind: str
    tm: int = 1
    tn: int = 1

    def __post_init__(self):
        if self.kind not in WEIGHT_KINDS:
            raise ValueError(f"unknown weight layout kind {self.kind!r}; "
                             f"expected one of {WEIGHT_KINDS}")
        tm, tn = _as_count("tm", self.tm), _as_count("tn", self.tn)
        blocked = self.kind == "blocked"
        object.__setattr__(self, "tm", tm if blocked else 1)
        object.__setattr__(self, "tn", tn if blocked else 1)

    # -- geometry
    @staticmethod
    def _shape4(shape) -> tuple[int, int, int, int]:
        s = _as_shape(shape, (2, 4), "weight")
        return s if len(s) == 4 else (s[0], s[1], 1, 1)

    def _storage(self, shape) -> tuple[int, ...]:
        m, n, kh, kw = self._shape4(shape)
        if self.kind == "blocked":
            return (_ceil_div(m, self.tm), _ceil_div(n, self.tn), kh, kw, self.tm, self.tn)
        return (m, n, kh, kw)

    def size(self, shape) -> int:
        """Words the weights occupy in DRAM (including pad lanes)."""
        return math.prod(self._storage(shape))

    # -- addresses
    def addr(self, shape, m, n, i=0, j=0):
        """Word address of weight ``[m, n, i, j]``; numpy integer arrays broadcast."""
        M, N, KH, KW = self._shape4(shape)
        m, n = _index("m", m, M), _index("n", n, N)
        i, j = _index("i", i, KH), _index("j", j, KW)
        if self.kind == "blocked":
            tm, tn = self.tm, self.tn
            pair = (m // tm) * _ceil_div(N, tn) + n // tn
            return ((pair * KH + i) * KW + j) * tm * tn + (m % tm) * tn + n % tn
        return ((m * N + n) * KH + i) * KW + j

    # -- whole-tensor conversion
    def pack(self, arr) -> np.ndarray:
        """The weights as the 1-D word array stored in DRAM (same dtype)."""
        arr = np.asarray(arr)
        shape = self._shape4(arr.shape)
        arr = arr.reshape(shape)
        if self.kind == "oihw":
            return arr.ravel().copy()
        m, n, kh, kw = shape
        tm, tn = self.tm, self.tn
        mb, nb = _ceil_div(m, tm), _ceil_div(n, tn)
        if (mb * tm, nb * tn) != (m, n):
            padded = np.zeros((mb * tm, nb * tn, kh, kw), dtype=arr.dtype)
            padded[:m, :n] = arr
            arr = padded
        # (Mb, Tm, Nb, Tn, KH, KW) -> (Mb, Nb, KH, KW, Tm, Tn)
        return arr.reshape(mb, tm, nb, tn, kh, kw).transpose(0, 2, 4, 5, 1, 3).ravel()

    def unpack(self, flat, shape) -> np.ndarray:
        """Inverse of :meth:`pack` (pad lanes ignored)."""
        flat = np.asarray(flat)
        out_shape = _as_shape(shape, (2, 4), "weight")
        if flat.ndim != 1 or flat.size != self.size(shape):
            raise ValueError(f"expected a 1-D array of {self.size(shape)} words for "
                             f"shape {out_shape}, got shape {flat.shape}")
        if self.kind == "oihw":
            return flat.reshape(out_shape).copy()
        m, n, kh, kw = self._shape4(shape)
        mb, nb, _, _, tm, tn = self._storage(shape)
        arr = (flat.reshape(mb, nb, kh, kw, tm, tn).transpose(0, 4, 1, 5, 2, 3)
               .reshape(mb * tm, nb * tn, kh, kw))
        return np.ascontiguousarray(arr[:m, :n]).reshape(out_shape)

    # -- tiles
    def _tile_box(self, shape, m_range, n_range):
        M, N, KH, KW = self._shape4(shape)
        mr, nr = _as_range("m_range", m_range, M), _as_range("n_range", n_range, N)
        if self.kind == "blocked":
            box = [_block_range(mr, self.tm), _block_range(nr, self.tn),
                   (0, KH), (0, KW), (0, self.tm), (0, self.tn)]
        else:
            box = [mr, nr, (0, KH), (0, KW)]
        return self._storage(shape), box

    def tile_bursts(self, shape, m_range, n_range,
                    max_burst: int | None = None) -> list[Burst]:
        """Bursts ``(addr, length)`` moving output channels ``m_range`` x input channels
        ``n_range`` x the whole kernel. Blocked: rounded out to whole (m-block, n-block)
        pairs. Ascending, maximal, disjoint; runs longer than ``max_burst`` are split.
        """
        max_burst = _check_max_burst(max_burst)
        return _bursts(*self._tile_box(shape, m_range, n_range), max_burst)

    def tile_burst_count(self, shape, m_range, n_range,
                         max_burst: int | None = None) -> int:
        """``len(tile_bursts(...))`` in O(1), for the analytical model."""
        max_burst = _check_max_burst(max_burst)
        return _burst_count(*self._tile_box(shape, m_range, n_range), max_burst)

    def tile_words(self, shape, m_range, n_range) -> int:
        """Words the tile moves (pad lanes and partial blocks included)."""
        _, box = self._tile_box(shape, m_range, n_range)
        return math.prod(hi - lo for lo, hi in box)
