"""Exact numpy semantics of the training methods (the golden model's building blocks).

Gradient filtering (Yang, Yang, Guo, Cheng, Marculescu, CVPR 2023). Semantics read from
the authors' code, GradientFilter-CVPR23 ``classification/custom_op/conv_avg.py``
(``Conv2dAvgOp``), reimplemented here from that reading: for a conv with stride s and an
``H x W`` output, patch size ``r``:

* the output map is covered by ``P = ceil(H/r)`` x ``ceil(W/r)`` patches of ``r x r``,
  centred: the patch grid starts ``ceil((P*r - H)/2)`` rows above row 0;
* FP is unchanged; it keeps ``x_sum``: x summed (not averaged) over the matching
  ``(r*s) x (r*s)`` input patches (grid offset ``ceil((P*r*s - H_in)/2)``, zeros outside),
  and ``w_sum[m, n]``: W summed over its K x K taps;
* BP: ``g = avgpool_r(dy)`` averaging border patches over their real elements only;
  ``dx_sum = w_sum^T g`` (a 1x1 transposed conv on the pooled map); dx is ``dx_sum``
  copied to every element of its ``(r*s) x (r*s)`` input patch (no division);
* WU: ``dW[m, n, i, j] = sum_{b,p,q} g[b,m,p,q] * x_sum[b,n,p,q]`` for every tap (i, j);
  the bias gradient uses the unfiltered dy.

Error-map pruning: per filtered conv, channel score = mean |dy_c| over the batch + 
``weight_norm`` * mean |W_c| (the paper ranks error maps by magnitude with a weight-norm
term; it has no public code, so the weighting is a parameter here); the top
``ceil(keep * M)`` channels are kept (ties to the lower index); BP and WU run on the
error with the pruned channels zeroed, so a pruned filter's gradient is exactly zero and
a kept channel's is that of full back-propagation on the masked error map.

MobileTL (Chiang, Frumkin, Liang, Marculescu, AAAI 2023), BN ``shift_only``: inside each
residual branch every batchnorm but the last trains its shift (beta) only, with its
scale (gamma) and its global (running) statistics frozen: FP normalises with the running
statistics, so the layer is affine and BP is ``dx = dy * gamma * invstd``, ``dbeta =
sum(dy)``, with nothing saved but invstd per channel. The last batchnorm of each branch
trains in full (MobileTL updates the scale, shift and statistics of a block's last
normalisation); batchnorms outside the branches (stem, downsampling shortcut) are
shift-only. This is the exact gradient of that forward pass (tests: finite differences). ReLU masks are kept as 1 bit per element (:func:`pack_mask`; MobileTL's
binary activation masks).
"""

from __future__ import annotations

import math

import numpy as np

from efgen.golden import ops


# ---- gradient filtering -------------------------------------------------------------------

def gf_grid(n_out: int, r: int) -> tuple[int, int]:
    """(patches, offset) of the centred patch grid over ``n_out`` outputs."""
    p = -(-n_out // r)
    return p, -(-(p * r - n_out) // 2)


def gf_input_offset(n_in: int, n_out: int, r: int, stride: int) -> int:
    """Offset of the input patch grid (rows above row 0; negative: rows cropped)."""
    p, _ = gf_grid(n_out, r)
    return math.ceil((p * r * stride - n_in) / 2)


def _blocks(x: np.ndarray, size: int, ph: int, pw: int, off_h: int, off_w: int) -> np.ndarray:
    """x [..., H, W] placed on a (ph*size) x (pw*size) canvas at (-off_h, -off_w),
    as [..., ph, size, pw, size]."""
    H, W = x.shape[-2:]
    canvas = ops._pad_hw(x, off_h, ph * size - H - off_h, off_w, pw * size - W - off_w)
    return canvas.reshape(x.shape[:-2] + (ph, size, pw, size))


def gf_sum_input(x: np.ndarray, r: int, stride: int, out_hw) -> np.ndarray:
    """x [B, N, H, W] summed over (r*s)^2 input patches: [B, N, Ph, Pw]."""
    (ho, wo), (h, w) = out_hw, x.shape[-2:]
    ph, _ = gf_grid(ho, r)
    pw, _ = gf_grid(wo, r)
    k = r * stride
    b = _blocks(x, k, ph, pw, gf_input_offset(h, ho, r, stride),
                gf_input_offset(w, wo, r, stride))
    return b.sum(axis=(-3, -1), dtype=x.dtype)


def gf_pool_error(dy: np.ndarray, r: int) -> np.ndarray:
    """dy [B, M, H, W] averaged over r x r patches (border patches over their real
    elements): [B, M, Ph, Pw]."""
    h, w = dy.shape[-2:]
    (ph, oh), (pw, ow) = gf_grid(h, r), gf_grid(w, r)
    s = _blocks(dy, r, ph, pw, oh, ow).sum(axis=(-3, -1), dtype=dy.dtype)
    ones = np.ones((h, w), dtype=dy.dtype)
    n = _blocks(ones, r, ph, pw, oh, ow).sum(axis=(-3, -1), dtype=dy.dtype)
    return s / n


def gf_weight_sum(w: np.ndarray) -> np.ndarray:
    """W [M, N, K, K] summed over its taps: [M, N]."""
    return w.sum(axis=(2, 3), dtype=w.dtype)


def gf_conv_bp(dy: np.ndarray, w: np.ndarray, r: int, stride: int, in_hw) -> np.ndarray:
    """The filtered input error: dx [B, N, H_in, W_in]."""
    g = gf_pool_error(dy, r)
    dxs = np.einsum("mn,bmpq->bnpq", gf_weight_sum(w), g, optimize=True).astype(dy.dtype)
    return gf_copy_back(dxs, r, stride, in_hw, dy.shape[-2:])


def gf_copy_back(dxs: np.ndarray, r: int, stride: int, in_hw, out_hw) -> np.ndarray:
    """dx_sum [B, N, Ph, Pw] copied over each (r*s)^2 input patch, cropped to ``in_hw``."""
    (h, w), (ho, wo) = in_hw, out_hw
    k = r * stride
    big = np.repeat(np.repeat(dxs, k, axis=-2), k, axis=-1)
    oh, ow = gf_input_offset(h, ho, r, stride), gf_input_offset(w, wo, r, stride)
    return ops._pad_hw(big, -oh, h + oh - big.shape[-2], -ow, w + ow - big.shape[-1])


def gf_conv_wu(dy: np.ndarray, x: np.ndarray, r: int, stride: int, kernel: int) -> np.ndarray:
    """The filtered weight gradient [M, N, K, K] (the same value on every tap)."""
    g = gf_pool_error(dy, r)
    xs = gf_sum_input(x, r, stride, dy.shape[-2:])
    gw = np.einsum("bmpq,bnpq->mn", g, xs, optimize=True).astype(dy.dtype)
    return np.broadcast_to(gw[:, :, None, None], gw.shape + (kernel, kernel)).copy()


# ---- error-map pruning --------------------------------------------------------------------

def emp_scores(dy: np.ndarray, w: np.ndarray, weight_norm: float) -> np.ndarray:
    """Per output channel: mean |dy_c| over (B, H, W) + weight_norm * mean |W_c|, float64."""
    axes = (0,) + tuple(range(2, dy.ndim))
    e = np.abs(dy.astype(np.float64)).mean(axis=axes)
    return e + weight_norm * np.abs(w.astype(np.float64)).reshape(w.shape[0], -1).mean(axis=1)


def emp_kept(channels: int, keep: float) -> int:
    """Channels kept: ceil(keep * channels), at least 1."""
    return max(1, min(channels, math.ceil(keep * channels - 1e-9)))


def emp_mask(scores: np.ndarray, keep: float) -> np.ndarray:
    """Boolean [M]: the top ``emp_kept(M, keep)`` scores (ties to the lower index)."""
    k = emp_kept(len(scores), keep)
    order = np.argsort(-scores, kind="stable")
    mask = np.zeros(len(scores), dtype=bool)
    mask[order[:k]] = True
    return mask


def apply_channel_mask(dy: np.ndarray, mask: np.ndarray) -> np.ndarray:
    shape = (1, len(mask)) + (1,) * (dy.ndim - 2)
    return np.where(mask.reshape(shape), dy, dy.dtype.type(0))


# ---- MobileTL -----------------------------------------------------------------------------

def bn_shift_bp(dy: np.ndarray, cache: dict, gamma: np.ndarray):
    """BN backward with frozen gamma and constant statistics: (dx, dbeta)."""
    axes = (0,) + tuple(range(2, dy.ndim))
    scale = (gamma * cache["invstd"]).astype(dy.dtype)
    dx = dy * scale.reshape((1, -1) + (1,) * (dy.ndim - 2))
    return dx, dy.sum(axis=axes, dtype=dy.dtype)


def pack_mask(y: np.ndarray) -> np.ndarray:
    """The 1-bit ReLU mask of y > 0, packed 8 per byte (what MobileTL stores)."""
    return np.packbits((y > 0).reshape(-1))


def relu_bp_bits(dy: np.ndarray, bits: np.ndarray) -> np.ndarray:
    """ReLU backward from a packed 1-bit mask."""
    m = np.unpackbits(bits, count=dy.size).reshape(dy.shape).astype(bool)
    return np.where(m, dy, dy.dtype.type(0))
