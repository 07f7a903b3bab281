"""Tiled reference: FP, BP and WU computed tile by tile, as the accelerator does.

The dense ops in :mod:`efgen.golden.ops` say *what* a training step computes; this
module says *in which order and blocking* the unified Tm x Tn engine computes it, and
reads and writes every tensor through the DRAM layouts of :mod:`efgen.layout`. Tests
show it equals the dense golden model for many (Tm, Tn, Tr, Tc, stride, K).

The engine, per call (one output tile):

* ``Tm`` accumulator lanes (output channels of the phase) and ``Tn`` reduction lanes
  (input channels of the phase, summed by an adder tree); one cycle multiplies a
  ``Tm x Tn`` weight vector by a ``Tn`` input vector.
* Output tiles are ``Tr x Tc`` pixels; input tiles carry the halo
  ``((Tr-1)*S + K) x ((Tc-1)*S + K)``. Padding is never stored in DRAM: the loader
  zero-fills the halo where it falls outside the image.

Loop nests (outermost first):

* FP: m-block, image b, row tile, column tile, n-block -> accumulate
  ``O[m] += W[m, n, i, j] * I[n, r*S+i, c*S+j]``, store the ``Tm x Tr x Tc`` tile once.
* BP: the roles of M and N swap. The weights of the layer are loaded once (one burst
  per (m-block, n-block) pair) and flipped by 180 degrees and transposed *at load*, so
  DRAM keeps one weight layout. Then n-block (Tm lanes over N), image, row tile,
  column tile, m-block (Tn lanes over M): a stride-1 convolution of the zero-dilated,
  padded error; the loader generates the dilation and padding from addresses.
* WU: m-block, n-block (one ``Tm x Tn x K x K`` gradient tile in the weight buffer),
  then image, row tile, column tile: ``dW[m, n, i, j] += dO[m, r, c] * I[n, r*S+i,
  c*S+j]``; the whole batch accumulates on chip and each gradient tile is written once.

Feature maps and errors use :class:`FeatureMapLayout` (lane block ``lanes``); weights
and gradients use :class:`WeightLayout` with ``(Tm, Tn)`` blocks.

Issue 13 (``Tiling.p``, ``Tiling.pack``; the model's reasons: efgen/model/engine.py):

* ``p`` pixel lanes: the array is Tm x Tn x P and one cycle takes P adjacent output
  pixels of a tile row (columns ``g*P .. g*P+P-1`` of column group g; a row of tc pixels
  is ceil(tc/P) groups, the last one partly idle). In FP and BP the P lanes own
  separate accumulators, so each pixel's sum runs in the same order as with P = 1; in
  WU the P products of one (m, n, i, j) pass an adder tree (pairs (0,1), (2,3), ...)
  before the one accumulator. A linear layer's map is 1 x batch, so its P lanes are P
  images: WU takes tc images a tile through the same tree (FP and BP keep one image a
  step: per-lane sums, the same numbers).
* ``pack``: an FP or WU job whose N reduction channels fill at most half the Tn lanes
  carries ``taps = min(K*K, Tn // N)`` kernel offsets side by side: lane ``t*N + c``
  holds channel c at offset ``q*taps + t`` in kernel pass q (ceil(K*K/taps) passes
  instead of K*K; offsets past K*K are idle lanes). The loader writes each channel into
  its ``taps`` lanes; the weight (FP) and gradient (WU) buffers hold word (m, t*N+c, q).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from efgen.golden import ops
from efgen.layout import FeatureMapLayout, WeightLayout


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class Tiling:
    """Engine lanes and output-tile size. ``tr``/``tc`` are output rows/cols per tile."""

    tm: int
    tn: int
    tr: int
    tc: int
    p: int = 1            # pixel lanes (issue 13)
    pack: bool = False    # shallow FP/WU jobs carry kernel taps in the idle lanes

    def __post_init__(self):
        for k in ("tm", "tn", "tr", "tc", "p"):
            if getattr(self, k) < 1:
                raise ValueError(f"{k} must be >= 1")

    def taps(self, red: int, k: int) -> int:
        """Kernel offsets an FP/WU job with ``red`` reduction channels packs (1: none);
        the rule of efgen.model.engine.packed_taps."""
        if not self.pack or k < 2 or 2 * red > self.tn:
            return 1
        return min(k * k, self.tn // red)


# ---- DRAM access through the layouts -----------------------------------------------------

def _load_fm(flat, layout: FeatureMapLayout, shape, b, c0, lanes, rows, cols):
    """Load ``lanes`` channels from c0, at the given row/col index vectors of image b.

    Indices outside the tensor (halo over padding, lanes beyond C, dilation holes
    marked -1) read as zero, as the hardware loader zero-fills them.
    """
    _, C, H, W = shape
    ch = np.arange(c0, c0 + lanes)
    rows, cols = np.asarray(rows), np.asarray(cols)
    ok = ((ch < C)[:, None, None] & ((rows >= 0) & (rows < H))[None, :, None]
          & ((cols >= 0) & (cols < W))[None, None, :])
    addr = layout.addr(shape, b, np.clip(ch, 0, C - 1)[:, None, None],
                       np.clip(rows, 0, H - 1)[None, :, None],
                       np.clip(cols, 0, W - 1)[None, None, :])
    return np.where(ok, flat[addr], 0).astype(flat.dtype)


def _store_fm(flat, layout: FeatureMapLayout, shape, b, c0, r0, x0, tile):
    """Store the valid part of an output tile (lanes beyond C are not written)."""
    _, C, H, W = shape
    nc = min(tile.shape[0], C - c0)
    nr = min(tile.shape[1], H - r0)
    nx = min(tile.shape[2], W - x0)
    addr = layout.addr(shape, b, np.arange(c0, c0 + nc)[:, None, None],
                       np.arange(r0, r0 + nr)[None, :, None],
                       np.arange(x0, x0 + nx)[None, None, :])
    flat[addr] = tile[:nc, :nr, :nx]


def _load_w(flat, layout: WeightLayout, shape, m0, tm, n0, tn):
    """A ``tm x tn x K x K`` weight tile (zero beyond M or N)."""
    M, N, K, _ = shape
    m = np.arange(m0, m0 + tm)
    n = np.arange(n0, n0 + tn)
    i = np.arange(K)
    ok = (m < M)[:, None, None, None] & (n < N)[None, :, None, None]
    addr = layout.addr(shape, np.clip(m, 0, M - 1)[:, None, None, None],
                       np.clip(n, 0, N - 1)[None, :, None, None], i[None, None, :, None],
                       i[None, None, None, :])
    return np.where(ok, flat[addr], 0).astype(flat.dtype)


def _store_w(flat, layout: WeightLayout, shape, m0, n0, tile):
    M, N, K, _ = shape
    nm, nn = min(tile.shape[0], M - m0), min(tile.shape[1], N - n0)
    i = np.arange(K)
    addr = layout.addr(shape, np.arange(m0, m0 + nm)[:, None, None, None],
                       np.arange(n0, n0 + nn)[None, :, None, None], i[None, None, :, None],
                       i[None, None, None, :])
    flat[addr] = tile[:nm, :nn]


# ---- the engine: one Tm x Tn array, three modes ------------------------------------------

def _groups(a, p):
    """(..., r, c) -> (..., r, ceil(c/p), p): the column groups the P pixel lanes take,
    the last group's idle lanes zero."""
    c = a.shape[-1]
    g = _cdiv(c, p)
    pad = np.zeros(a.shape[:-1] + (g * p - c,), dtype=a.dtype)
    return np.concatenate([a, pad], axis=-1).reshape(a.shape[:-1] + (g, p))


def _ungroup(a, c):
    return a.reshape(a.shape[:-2] + (-1,))[..., :c]


def _tree(a):
    """Sum the last axis by the hardware adder tree: pairs (0,1), (2,3), ... per level,
    an odd last element waiting a level."""
    v = [a[..., i] for i in range(a.shape[-1])]
    while len(v) > 1:
        v = [v[i] + v[i + 1] if i + 1 < len(v) else v[i] for i in range(0, len(v), 2)]
    return v[0]


def _windows(in_tile, offs, tr, tc, stride):
    """Per lane n the input window at kernel offset ``offs[n]`` = (i, j), or zeros
    (an idle packed lane: offs[n] is None)."""
    if all(o == offs[0] for o in offs):            # unpacked: one offset for every lane
        i, j = offs[0]
        return in_tile[:, i:i + stride * (tr - 1) + 1:stride, j:j + stride * (tc - 1) + 1:stride]
    out = np.zeros((in_tile.shape[0], tr, tc), dtype=in_tile.dtype)
    for n, o in enumerate(offs):
        if o is not None:
            i, j = o
            out[n] = in_tile[n, i:i + stride * (tr - 1) + 1:stride,
                             j:j + stride * (tc - 1) + 1:stride]
    return out


def _passes(K, tn, red, taps):
    """Per kernel pass, each lane's (i, j) offset: K*K passes of one offset for all lanes,
    or with ``taps`` > 1 lane t*red + c at offset q*taps + t (None: idle)."""
    if taps == 1:
        return [[(i, j)] * tn for i in range(K) for j in range(K)]
    out = []
    for q in range(_cdiv(K * K, taps)):
        lanes = [None] * tn
        for t in range(taps):
            o = q * taps + t
            for c in range(red):
                lanes[t * red + c] = divmod(o, K) if o < K * K else None
        out.append(lanes)
    return out


def _pack_input(tile, red, taps):
    """The loader writes channel c of a packed job into lanes t*red + c."""
    if taps == 1:
        return tile
    out = np.zeros_like(tile)
    for t in range(taps):
        out[t * red:(t + 1) * red] = tile[:red]
    return out


def _pack_weights(w_tile, red, taps):
    """(Tm, Tn, K, K) weights -> the weight buffer (Tm, Tn, passes): word (m, t*red+c, q)
    holds W[m, c, offset q*taps + t]; FP's banks as the packed loader fills them."""
    K = w_tile.shape[2]
    if taps == 1:
        return w_tile.reshape(w_tile.shape[0], w_tile.shape[1], K * K)
    nq = _cdiv(K * K, taps)
    out = np.zeros((w_tile.shape[0], w_tile.shape[1], nq), dtype=w_tile.dtype)
    for q in range(nq):
        for t in range(taps):
            o = q * taps + t
            if o < K * K:
                out[:, t * red:(t + 1) * red, q] = w_tile[:, :red, o // K, o % K]
    return out


def _unpack_grads(acc, red, taps, K):
    """The gradient buffer (Tm, Tn, passes) -> (Tm, Tn, K, K), as the write-back reads it."""
    if taps == 1:
        return acc.reshape(acc.shape[0], acc.shape[1], K, K)
    out = np.zeros((acc.shape[0], acc.shape[1], K, K), dtype=acc.dtype)
    for q in range(acc.shape[2]):
        for t in range(taps):
            o = q * taps + t
            if o < K * K:
                out[:, :red, o // K, o % K] = acc[:, t * red:(t + 1) * red, q]
    return out


def _engine_conv(w_tile, in_tile, tr, tc, stride, p=1, red=0, taps=1):
    """FP/BP mode: ``out[m, r, c] = sum_{n,i,j} w[m, n, i, j] * in[n, r*S+i, c*S+j]``.

    One kernel pass is one cycle per column group (P pixels) in hardware; the einsum
    over n is the adder tree of each pixel lane. ``taps`` > 1: the packed lanes (FP).
    """
    K = w_tile.shape[2]
    wbuf = _pack_weights(w_tile, red, taps)
    x = _pack_input(in_tile, red, taps)
    out = np.zeros((w_tile.shape[0], tr, _cdiv(tc, p), p), dtype=in_tile.dtype)
    for q, offs in enumerate(_passes(K, w_tile.shape[1], red, taps)):
        win = _groups(_windows(x, offs, tr, tc, stride), p)
        out += np.einsum("mn,nrgp->mrgp", wbuf[:, :, q], win)
    return _ungroup(out, tc)


def _engine_wu(acc, err_tile, in_tile, stride, K, p=1, red=0, taps=1):
    """WU mode: ``acc[m, n, q] += sum_{r,c} err[m, r, c] * in[n, r*S+i, c*S+j]`` with
    (i, j) lane n's offset in pass q (``acc``: the gradient buffer, (Tm, Tn, passes)).

    Each of the Tm*Tn MACs owns one accumulator; the P products of a column group are
    summed by the adder tree over P in front of it.
    """
    tr, tc = err_tile.shape[1:]
    e = _groups(err_tile, p)
    x = _pack_input(in_tile, red, taps)
    for q, offs in enumerate(_passes(K, acc.shape[1], red, taps)):
        win = _groups(_windows(x, offs, tr, tc, stride), p)
        if p == 1:
            acc[:, :, q] += np.einsum("mrgp,nrgp->mn", e, win)
        else:
            acc[:, :, q] += _tree(np.einsum("mrgp,nrgp->mnrgp", e, win)).sum(axis=(2, 3))


# ---- the three phases ---------------------------------------------------------------------

def conv_fp_tiled(x_flat, x_shape, w_flat, w_shape, bias, stride, padding, t: Tiling,
                  fm: FeatureMapLayout, wl: WeightLayout, load=None, store=None):
    """FP of one conv (or linear, K=1 on a 1x1 map). Returns (y_flat, y_shape).

    ``load(b, c0, lanes, rows, cols)`` replaces the plain input-tile load and
    ``store(y_flat, y_shape, b, m0, r0, c0, tile)`` the plain store: the restructured
    step's transforms (efgen/golden/restructured.py)."""
    B, N, H, W = x_shape
    M, _, K, _ = w_shape
    S, P = stride, padding
    Ho, Wo = ops.conv_out_size(H, K, S, P), ops.conv_out_size(W, K, S, P)
    y_shape = (B, M, Ho, Wo)
    y = np.zeros(fm.size(y_shape), dtype=x_flat.dtype)
    taps = t.taps(N, K)
    for m0 in range(0, M, t.tm):
        # Weight reuse: this m-block's weights are fetched once per batch.
        w_blk = [_load_w(w_flat, wl, w_shape, m0, t.tm, n0, t.tn) for n0 in range(0, N, t.tn)]
        for b in range(B):
            for r0 in range(0, Ho, t.tr):
                tr = min(t.tr, Ho - r0)
                rows = np.arange(r0 * S - P, r0 * S - P + (tr - 1) * S + K)
                for c0 in range(0, Wo, t.tc):
                    tc = min(t.tc, Wo - c0)
                    cols = np.arange(c0 * S - P, c0 * S - P + (tc - 1) * S + K)
                    acc = np.zeros((t.tm, tr, tc), dtype=x_flat.dtype)
                    for nb, n0 in enumerate(range(0, N, t.tn)):
                        tile = (_load_fm(x_flat, fm, x_shape, b, n0, t.tn, rows, cols)
                                if load is None else load(b, n0, t.tn, rows, cols))
                        acc += _engine_conv(w_blk[nb], tile, tr, tc, S, t.p, N, taps)
                    if bias is not None:
                        bvec = np.zeros(t.tm, dtype=acc.dtype)
                        nm = min(t.tm, M - m0)
                        bvec[:nm] = bias[m0:m0 + nm]
                        acc += bvec[:, None, None]
                    (_store_fm if store is None else store)(y, fm, y_shape, b, m0, r0, c0, acc)
    return y, y_shape


def conv_bp_tiled(dy_flat, dy_shape, w_flat, w_shape, x_hw, stride, padding, t: Tiling,
                  fm: FeatureMapLayout, wl: WeightLayout, load=None, store=None):
    """BP of one conv: the input error. Returns (dx_flat, dx_shape). ``load`` and
    ``store``: as :func:`conv_fp_tiled` (rows/cols of -1 are dilation holes)."""
    B, M, Ho, Wo = dy_shape
    _, N, K, _ = w_shape
    H, W = x_hw
    S, P = stride, padding
    dx_shape = (B, N, H, W)
    dx = np.zeros(fm.size(dx_shape), dtype=dy_flat.dtype)
    # Flip and transpose at load: the on-chip buffer holds W'[n, m, i, j] =
    # W[m, n, K-1-i, K-1-j], read from DRAM one (m-block, n-block) pair at a time.
    wbuf = np.zeros((N, M, K, K), dtype=dy_flat.dtype)
    for m0 in range(0, M, t.tm):
        for n0 in range(0, N, t.tn):
            blk = _load_w(w_flat, wl, w_shape, m0, t.tm, n0, t.tn)
            nm, nn = min(t.tm, M - m0), min(t.tn, N - n0)
            wbuf[n0:n0 + nn, m0:m0 + nm] = ops.conv_bp_weights(blk[:nm, :nn])
    lo = K - 1 - P  # offset of dy[0] inside the dilated, padded error

    def src_index(u):
        """Dilated/padded coordinate -> dy index, or -1 for a zero (hole or pad)."""
        v = u - lo
        ok = (v >= 0) & (v % S == 0)
        return np.where(ok, v // S, -1)

    for n0 in range(0, N, t.tm):           # BP output lanes run over N
        for b in range(B):
            for r0 in range(0, H, t.tr):
                tr = min(t.tr, H - r0)
                rows = src_index(np.arange(r0, r0 + tr + K - 1))
                for c0 in range(0, W, t.tc):
                    tc = min(t.tc, W - c0)
                    cols = src_index(np.arange(c0, c0 + tc + K - 1))
                    acc = np.zeros((t.tm, tr, tc), dtype=dy_flat.dtype)
                    for m0 in range(0, M, t.tn):   # BP reduction lanes run over M
                        tile = (_load_fm(dy_flat, fm, dy_shape, b, m0, t.tn, rows, cols)
                                if load is None else load(b, m0, t.tn, rows, cols))
                        w_tile = np.zeros((t.tm, t.tn, K, K), dtype=dy_flat.dtype)
                        nn, nm = min(t.tm, N - n0), min(t.tn, M - m0)
                        w_tile[:nn, :nm] = wbuf[n0:n0 + nn, m0:m0 + nm]
                        acc += _engine_conv(w_tile, tile, tr, tc, 1, t.p)
                    (_store_fm if store is None else store)(dx, fm, dx_shape, b, n0, r0, c0,
                                                            acc)
    return dx, dx_shape


def conv_wu_tiled(dy_flat, dy_shape, x_flat, x_shape, kernel, stride, padding, t: Tiling,
                  fm: FeatureMapLayout, wl: WeightLayout, load_err=None, load_in=None):
    """WU of one conv: the weight gradient summed over the batch, in the weight layout.

    Returns (dw_flat, dw_shape). ``load_err``/``load_in(b, c0, lanes, rows, cols)``
    replace the error- and input-tile loads (the restructured step's transforms).
    """
    B, M, Ho, Wo = dy_shape
    _, N, H, W = x_shape
    K, S, P = kernel, stride, padding
    dw_shape = (M, N, K, K)
    dw = np.zeros(wl.size(dw_shape), dtype=dy_flat.dtype)
    taps = t.taps(N, K)
    linear = H == W == Ho == Wo == 1 and K == 1 and P == 0
    for m0 in range(0, M, t.tm):
        for n0 in range(0, N, t.tn):
            # the weight buffer: Tm x Tn gradient accumulators per kernel pass
            acc = np.zeros((t.tm, t.tn, _cdiv(K * K, taps)), dtype=dy_flat.dtype)
            if linear and t.p > 1:
                # a linear layer's map is 1 x batch: tc images a tile, P of them a cycle
                # through the adder tree over P (FP and BP: per-image lanes, the same sums)
                z = np.zeros(1, dtype=int)
                ld_e = load_err or (lambda b, c0, n, r, c: _load_fm(dy_flat, fm, dy_shape, b,  # noqa: E731
                                                                    c0, n, r, c))
                ld_x = load_in or (lambda b, c0, n, r, c: _load_fm(x_flat, fm, x_shape, b,  # noqa: E731
                                                                   c0, n, r, c))
                for b0 in range(0, B, t.tc):
                    imgs = range(b0, min(B, b0 + t.tc))
                    err = np.concatenate([ld_e(b, m0, t.tm, z, z) for b in imgs], axis=2)
                    tile = np.concatenate([ld_x(b, n0, t.tn, z, z) for b in imgs], axis=2)
                    _engine_wu(acc, err, tile, 1, 1, t.p, N, 1)
                _store_w(dw, wl, dw_shape, m0, n0, _unpack_grads(acc, N, taps, K))
                continue
            for b in range(B):
                for r0 in range(0, Ho, t.tr):
                    tr = min(t.tr, Ho - r0)
                    rows = np.arange(r0 * S - P, r0 * S - P + (tr - 1) * S + K)
                    for c0 in range(0, Wo, t.tc):
                        tc = min(t.tc, Wo - c0)
                        cols = np.arange(c0 * S - P, c0 * S - P + (tc - 1) * S + K)
                        er, ec = np.arange(r0, r0 + tr), np.arange(c0, c0 + tc)
                        err = (_load_fm(dy_flat, fm, dy_shape, b, m0, t.tm, er, ec)
                               if load_err is None else load_err(b, m0, t.tm, er, ec))
                        tile = (_load_fm(x_flat, fm, x_shape, b, n0, t.tn, rows, cols)
                                if load_in is None else load_in(b, n0, t.tn, rows, cols))
                        _engine_wu(acc, err, tile, S, K, t.p, N, taps)
            _store_w(dw, wl, dw_shape, m0, n0, _unpack_grads(acc, N, taps, K))
    return dw, dw_shape


# ---- convenience: dense tensors in, dense tensors out ---------------------------------------

def _as4(a):
    return a.reshape(*a.shape, 1, 1) if a.ndim == 2 else a


def conv_fp(x, w, b, stride, padding, t: Tiling, fm_kind="blocked", w_kind="blocked",
            lanes=None):
    """Dense-in/dense-out wrapper: pack x and w, run the tiled FP, unpack y."""
    fm, wl = _layouts(t, fm_kind, w_kind, lanes)
    x4, w4 = _as4(x), _as4(w)
    y_flat, y_shape = conv_fp_tiled(fm.pack(x4), x4.shape, wl.pack(w4), w4.shape, b, stride,
                                    padding, t, fm, wl)
    y = fm.unpack(y_flat, y_shape)
    return y.reshape(y.shape[:2]) if x.ndim == 2 else y


def conv_bp(dy, w, stride, padding, in_hw, t: Tiling, fm_kind="blocked", w_kind="blocked",
            lanes=None):
    fm, wl = _layouts(t, fm_kind, w_kind, lanes)
    dy4, w4 = _as4(dy), _as4(w)
    dx_flat, dx_shape = conv_bp_tiled(fm.pack(dy4), dy4.shape, wl.pack(w4), w4.shape,
                                      tuple(in_hw), stride, padding, t, fm, wl)
    dx = fm.unpack(dx_flat, dx_shape)
    return dx.reshape(dx.shape[:2]) if dy.ndim == 2 else dx


def conv_wu(dy, x, stride, padding, kernel, t: Tiling, fm_kind="blocked", w_kind="blocked",
            lanes=None):
    fm, wl = _layouts(t, fm_kind, w_kind, lanes)
    dy4, x4 = _as4(dy), _as4(x)
    dw_flat, dw_shape = conv_wu_tiled(fm.pack(dy4), dy4.shape, fm.pack(x4), x4.shape, kernel,
                                      stride, padding, t, fm, wl)
    dw = wl.unpack(dw_flat, dw_shape)
    return dw.reshape(dw.shape[:2]) if dy.ndim == 2 else dw


def _layouts(t: Tiling, fm_kind, w_kind, lanes):
    lanes = lanes or math.gcd(t.tm, t.tn)
    return FeatureMapLayout(fm_kind, lanes), WeightLayout(w_kind, t.tm, t.tn)
