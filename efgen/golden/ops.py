"""Numpy reference implementations of every training op the accelerator runs.

These are the golden model's building blocks: pure functions, no state. Each op has a
forward (``*_fp``) and, where it has inputs that need an error, a backward (``*_bp``);
ops with parameters also have a weight-gradient function (``*_wu``).

Conventions
-----------
* Feature maps and errors are NCHW ``[B, C, H, W]``; conv weights are OIHW
  ``[M, N, K, K]`` (M output channels, N input channels, square kernel K).
* ``stride`` and ``padding`` are ints applied to both spatial dims; padding is
  symmetric (zeros for conv/avgpool, -inf for maxpool).
* dtype follows the inputs (float32 by default, float64 works the same): outputs have
  the inputs' dtype, Python-float hyper-parameters are cast to it, and mixing float
  dtypes among an op's array arguments is a ``TypeError`` rather than a silent upcast.
* Gradients of parameters are summed over the batch (the accelerator accumulates the
  whole batch's gradient on chip, then does one SGD write-back).

The convolution is written the way the hardware computes it: one stride-S correlation
kernel (im2col + GEMM here) serves FP; BP is the *same* kernel, stride 1, run on the
zero-dilated, zero-padded error with the 180-degree-rotated, M/N-transposed weights;
WU correlates the error with the padded input. Linear layers go through that same
convolution on 1x1 maps.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = [
    "conv_out_size", "conv_fp", "conv_bp", "conv_bp_weights", "conv_bp_input", "conv_wu",
    "conv_bias_grad", "linear_fp", "linear_bp", "linear_wu", "linear_bias_grad",
    "bn_fp_train", "bn_running_update", "bn_fp_eval", "bn_bp", "relu_fp", "relu_bp",
    "maxpool_fp", "maxpool_bp", "avgpool_fp", "avgpool_bp", "global_avgpool_fp",
    "global_avgpool_bp", "add_fp", "add_bp", "shortcut_a_fp", "shortcut_a_bp",
    "softmax", "softmax_ce", "sgd_update", "flush_subnormals",
]


# --------------------------------------------------------------------------- helpers

def _dtype(*arrays) -> np.dtype:
    """The common floating dtype of the (non-None) arrays; refuse to mix float dtypes."""
    dts = {np.asarray(a).dtype for a in arrays if a is not None}
    if len(dts) != 1:
        raise TypeError(f"mixed dtypes {sorted(str(d) for d in dts)}: cast explicitly")
    dt = dts.pop()
    if not np.issubdtype(dt, np.floating):
        raise TypeError(f"expected a floating dtype, got {dt}")
    return dt


def _pad_hw(x: np.ndarray, lo_h: int, hi_h: int, lo_w: int, hi_w: int,
            value: float = 0.0) -> np.ndarray:
    """Pad (positive) or crop (negative) the last two axes of ``x``."""
    if not any((lo_h, hi_h, lo_w, hi_w)):
        return x
    return _place_hw(x, lo_h, lo_w, 1,
                     x.shape[-2] + lo_h + hi_h, x.shape[-1] + lo_w + hi_w, value)


def _place_hw(x: np.ndarray, off_h: int, off_w: int, step: int, out_h: int, out_w: int,
              value: float = 0.0) -> np.ndarray:
    """Write ``x[..., r, c]`` to ``out[..., off_h + r*step, off_w + c*step]``.

    ``out`` has spatial size ``(out_h, out_w)`` and is filled with ``value`` elsewhere;
    elements landing outside it are dropped. With ``step`` > 1 this is zero-dilation,
    with negative offsets it crops: one primitive covers dilation, padding and cropping.
    """
    out = np.full(x.shape[:-2] + (out_h, out_w), value, dtype=x.dtype)
    rows = _placed_range(off_h, step, x.shape[-2], out_h)
    cols = _placed_range(off_w, step, x.shape[-1], out_w)
    if rows is None or cols is None:
        return out
    (r0, r1), (c0, c1) = rows, cols
    out[..., off_h + r0 * step: off_h + (r1 - 1) * step + 1: step,
             off_w + c0 * step: off_w + (c1 - 1) * step + 1: step] = x[..., r0:r1, c0:c1]
    return out


def _placed_range(off: int, step: int, n: int, size: int):
    """Source indices [i0, i1) with 0 <= off + i*step < size, or None if empty."""
    i0 = -(off // step) if off < 0 else 0              # ceil(-off / step)
    i1 = min(n, (size - 1 - off) // step + 1) if off <= size - 1 else 0
    return (i0, i1) if i1 > i0 else None


def _windows(xp: np.ndarray, k: int, stride: int) -> np.ndarray:
    """View ``[B, C, Ho, Wo, K, K]`` of the K x K windows of padded ``xp`` at ``stride``.

    No copy: a strided view, so pooling and im2col only pay for what they read.
    """
    return sliding_window_view(xp, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]


def _im2col(x: np.ndarray, k: int, stride: int,
            padding: int) -> tuple[np.ndarray, tuple[int, int]]:
    """(columns ``[B, N*K*K, Ho*Wo]`` of the zero-padded input, rows ordered n, i, j; (Ho, Wo))."""
    b, n = x.shape[:2]
    win = _windows(_pad_hw(x, padding, padding, padding, padding), k, stride)
    ho, wo = win.shape[2:4]
    # [B, N, K, K, Ho, Wo]: the copy made by reshape is the im2col buffer.
    return win.transpose(0, 1, 4, 5, 2, 3).reshape(b, n * k * k, ho * wo), (ho, wo)


def _chan(v: np.ndarray, ndim: int) -> np.ndarray:
    """Reshape a per-channel vector ``[C]`` to broadcast against ``[B, C, ...]``."""
    return v.reshape((1, -1) + (1,) * (ndim - 2))


def _hw(in_hw) -> tuple[int, int]:
    h, w = (int(v) for v in in_hw)
    return h, w


# ---------------------------------------------------------------------- convolution

def conv_out_size(h: int, k: int, stride: int, padding: int) -> int:
    """Output size of a conv/pool along one axis: (h + 2p - k) // s + 1."""
    return (h + 2 * padding - k) // stride + 1


def conv_fp(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride: int,
            padding: int) -> np.ndarray:
    """Forward convolution (cross-correlation, as in every CNN framework).

    x [B, N, H, W], w [M, N, K, K], b [M] or None -> y [B, M, Ho, Wo] with
    y[b, m, r, c] = sum_{n,i,j} w[m, n, i, j] * xpad[b, n, r*S + i, c*S + j] (+ b[m]).
    """
    dt = _dtype(x, w, b)
    m, n, k, k2 = w.shape
    if k != k2 or x.shape[1] != n:
        raise ValueError(f"conv_fp: x {x.shape} does not match weights {w.shape}")
    cols, (ho, wo) = _im2col(x, k, stride, padding)
    # One GEMM per image, [M, N*K*K] @ [N*K*K, Ho*Wo]: lands directly in NCHW order.
    y = np.matmul(w.reshape(m, n * k * k), cols).reshape(x.shape[0], m, ho, wo)
    if b is not None:
        y += _chan(b, 4)
    return y.astype(dt, copy=False)


def conv_bp_weights(w: np.ndarray) -> np.ndarray:
    """BP weights: w [M, N, K, K] rotated 180 degrees and M/N-transposed -> [N, M, K, K].

    The accelerator builds this on chip while loading weights, so DRAM keeps one layout.
    """
    return np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))


def conv_bp_input(dy: np.ndarray, kernel: int, stride: int, padding: int,
                  in_hw) -> np.ndarray:
    """The error map BP convolves: dy zero-dilated by S, then zero-padded.

    dy [B, M, Ho, Wo] -> [B, M, H + K - 1, W + K - 1]. S-1 zeros go between elements;
    K-1-P zeros on the top/left; K-1-P + (H + 2P - K) % S on the bottom/right (the
    remainder rows/cols of the padded input that no FP window reached still need an
    error, which is zero). A negative pad (P > K-1) crops instead.
    """
    h, w = _hw(in_hw)
    ho, wo = dy.shape[2:]
    if (ho, wo) != (conv_out_size(h, kernel, stride, padding),
                    conv_out_size(w, kernel, stride, padding)):
        raise ValueError(f"conv_bp: dy {dy.shape} is not the output of a "
                         f"K={kernel} S={stride} P={padding} conv on {h}x{w}")
    lo = kernel - 1 - padding
    return _place_hw(dy, lo, lo, stride, h + kernel - 1, w + kernel - 1)


def conv_bp(dy: np.ndarray, w: np.ndarray, stride: int, padding: int,
            in_hw) -> np.ndarray:
    """Error back-propagation through a conv: dy [B, M, Ho, Wo] -> dx [B, N, H, W].

    Computed as the hardware does it: a stride-1 forward convolution of
    ``conv_bp_input(dy)`` with ``conv_bp_weights(w)``. Equivalent to the scatter
    dxpad[b, n, r*S + i, c*S + j] += w[m, n, i, j] * dy[b, m, r, c], cropped by P.
    """
    _dtype(dy, w)
    k = w.shape[2]
    if dy.shape[1] != w.shape[0]:
        raise ValueError(f"conv_bp: dy {dy.shape} does not match weights {w.shape}")
    return conv_fp(conv_bp_input(dy, k, stride, padding, in_hw), conv_bp_weights(w),
                   None, 1, 0)


def conv_wu(dy: np.ndarray, x: np.ndarray, stride: int, padding: int,
            kernel: int) -> np.ndarray:
    """Weight gradient summed over the batch: dy [B, M, Ho, Wo], x [B, N, H, W] -> [M, N, K, K].

    dw[m, n, i, j] = sum_{b,r,c} dy[b, m, r, c] * xpad[b, n, r*S + i, c*S + j].
    """
    dt = _dtype(dy, x)
    bsz, m, ho, wo = dy.shape
    n = x.shape[1]
    cols, (hc, wc) = _im2col(x, kernel, stride, padding)
    if (hc, wc) != (ho, wo):
        raise ValueError(f"conv_wu: dy {dy.shape} does not match x {x.shape} "
                         f"with K={kernel} S={stride} P={padding}")
    # One GEMM per image, [M, Ho*Wo] @ [Ho*Wo, N*K*K], then the batch sum (as the
    # on-chip accumulator does). ~10x faster than one tensordot, which copies both.
    per_image = np.matmul(dy.reshape(bsz, m, ho * wo), cols.transpose(0, 2, 1))
    dw = per_image.sum(axis=0, dtype=dt)
    return dw.reshape(m, n, kernel, kernel)


def conv_bias_grad(dy: np.ndarray) -> np.ndarray:
    """Bias gradient: dy [B, M, Ho, Wo] summed over batch and pixels -> [M]."""
    return dy.sum(axis=(0, 2, 3), dtype=dy.dtype)


# ----------------------------------------------------------------------------- linear
# The accelerator has no separate matrix-vector unit: a linear layer is a 1x1
# convolution on a 1x1 map, so the golden routes it through the conv functions too.

def linear_fp(x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """x [B, N], w [M, N], b [M] or None -> y [B, M] = x @ w.T + b, via conv_fp."""
    (bsz, n), m = x.shape, w.shape[0]
    return conv_fp(x.reshape(bsz, n, 1, 1), w.reshape(m, n, 1, 1), b, 1, 0).reshape(bsz, m)


def linear_bp(dy: np.ndarray, w: np.ndarray) -> np.ndarray:
    """dy [B, M], w [M, N] -> dx [B, N] = dy @ w, via conv_bp."""
    (bsz, m), n = dy.shape, w.shape[1]
    return conv_bp(dy.reshape(bsz, m, 1, 1), w.reshape(m, n, 1, 1), 1, 0,
                   (1, 1)).reshape(bsz, n)


def linear_wu(dy: np.ndarray, x: np.ndarray) -> np.ndarray:
    """dy [B, M], x [B, N] -> dw [M, N] = dy.T @ x (batch-summed), via conv_wu."""
    (bsz, m), n = dy.shape, x.shape[1]
    return conv_wu(dy.reshape(bsz, m, 1, 1), x.reshape(bsz, n, 1, 1), 1, 0, 1).reshape(m, n)


def linear_bias_grad(dy: np.ndarray) -> np.ndarray:
    """dy [B, M] -> db [M], via conv_bias_grad."""
    return conv_bias_grad(dy.reshape(dy.shape + (1, 1)))


# -------------------------------------------------------------------------- batchnorm

def bn_fp_train(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float = 1e-5):
    """Training-mode batchnorm with batch statistics per channel.

    x [B, C, H, W] (or [B, C]), gamma/beta [C] -> (y like x, cache). Statistics are over
    (B, H, W); the variance used to normalise is the biased one. ``cache`` is a dict:
    mean [C], var [C] (biased), invstd [C] = 1/sqrt(var + eps), xhat like x, count
    (elements per channel, an int).
    """
    dt = _dtype(x, gamma, beta)
    axes = (0,) + tuple(range(2, x.ndim))
    mean = x.mean(axis=axes, dtype=dt)
    xc = x - _chan(mean, x.ndim)
    var = np.mean(xc * xc, axis=axes, dtype=dt)        # two-pass: stable in float32
    invstd = (1 / np.sqrt(var + dt.type(eps))).astype(dt, copy=False)
    xhat = xc * _chan(invstd, x.ndim)
    y = _chan(gamma, x.ndim) * xhat + _chan(beta, x.ndim)
    cache = {"mean": mean, "var": var, "invstd": invstd, "xhat": xhat,
             "count": x.size // x.shape[1]}
    return y, cache


def bn_running_update(running_mean: np.ndarray, running_var: np.ndarray,
                      mean: np.ndarray, var_biased: np.ndarray, count: int,
                      momentum: float = 0.1):
    """PyTorch running-statistics update; the running variance takes the unbiased one.

    new = (1 - momentum) * running + momentum * batch, with batch var = var * n/(n-1)
    where n = ``count`` elements per channel. Returns (new_mean, new_var), each [C].
    """
    dt = _dtype(running_mean, running_var, mean, var_biased)
    if count < 2:
        raise ValueError("bn_running_update: need at least 2 values per channel")
    mom, keep = dt.type(momentum), dt.type(1 - momentum)
    unbiased = var_biased * dt.type(count / (count - 1))
    return keep * running_mean + mom * mean, keep * running_var + mom * unbiased


def bn_fp_eval(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray,
               running_mean: np.ndarray, running_var: np.ndarray,
               eps: float = 1e-5) -> np.ndarray:
    """Inference-mode batchnorm with running statistics: x [B, C, ...] -> y like x."""
    dt = _dtype(x, gamma, beta, running_mean, running_var)
    scale = gamma / np.sqrt(running_var + dt.type(eps))
    return (x - _chan(running_mean, x.ndim)) * _chan(scale, x.ndim) + _chan(beta, x.ndim)


def bn_bp(dy: np.ndarray, cache: dict, gamma: np.ndarray):
    """Backward of training-mode batchnorm: dy like x -> (dx like x, dgamma [C], dbeta [C]).

    dx = gamma * invstd / n * (n*dy - dbeta - xhat * dgamma), n = elements per channel;
    the batch mean and variance are functions of x, hence the two correction terms.
    """
    xhat, invstd = cache["xhat"], cache["invstd"]
    dt = _dtype(dy, xhat, gamma)
    axes = (0,) + tuple(range(2, dy.ndim))
    n = dt.type(dy.size // dy.shape[1])
    dbeta = dy.sum(axis=axes, dtype=dt)
    dgamma = (dy * xhat).sum(axis=axes, dtype=dt)
    coef = _chan(gamma * invstd / n, dy.ndim)
    dx = coef * (n * dy - _chan(dbeta, dy.ndim) - xhat * _chan(dgamma, dy.ndim))
    return dx, dgamma, dbeta


# ------------------------------------------------------------------------ activations

def relu_fp(x: np.ndarray) -> np.ndarray:
    """y = max(x, 0), same shape and dtype."""
    return np.maximum(x, x.dtype.type(0))


def relu_bp(dy: np.ndarray, y: np.ndarray) -> np.ndarray:
    """dx = dy where the FP output y > 0, else 0 (the subgradient at 0 is taken as 0)."""
    return np.where(y > 0, dy, dy.dtype.type(0))


# ---------------------------------------------------------------------------- pooling

def maxpool_fp(x: np.ndarray, kernel: int, stride: int, padding: int):
    """Max pooling: x [B, C, H, W] -> (y [B, C, Ho, Wo], argmax [B, C, Ho, Wo] int64).

    Padding is -inf, so it never wins. ``argmax`` is the flat index i*K + j of the
    FIRST maximum in a row-major scan of the window: the tie rule the hardware's
    sequential comparator implements (a later equal value does not replace it).
    """
    _dtype(x)
    p = padding
    win = _windows(_pad_hw(x, p, p, p, p, -np.inf), kernel, stride)
    flat = win.reshape(win.shape[:4] + (kernel * kernel,))
    arg = flat.argmax(axis=-1)                   # numpy returns the first occurrence
    y = np.take_along_axis(flat, arg[..., None], axis=-1)[..., 0]
    return y, arg.astype(np.int64, copy=False)


def maxpool_bp(dy: np.ndarray, argmax: np.ndarray, kernel: int, stride: int,
               padding: int, in_hw) -> np.ndarray:
    """Route each error of dy [B, C, Ho, Wo] to its window's first maximum -> dx [B, C, H, W].

    Windows overlap when stride < kernel, so contributions accumulate.
    """
    h, w = _hw(in_hw)
    p, s = padding, stride
    bsz, c, ho, wo = dy.shape
    dxp = np.zeros((bsz, c, h + 2 * p, w + 2 * p), dtype=dy.dtype)
    zero = dy.dtype.type(0)
    # One pass per kernel offset (K*K passes): each is a strided slice with no
    # self-overlap, so += is safe; overlap between offsets is handled by the sum.
    for i in range(kernel):
        for j in range(kernel):
            hit = argmax == i * kernel + j
            dxp[:, :, i:i + s * (ho - 1) + 1:s, j:j + s * (wo - 1) + 1:s] += np.where(hit, dy, zero)
    return dxp[:, :, p:p + h, p:p + w]


def avgpool_fp(x: np.ndarray, kernel: int, stride: int, padding: int) -> np.ndarray:
    """Average pooling, zero padding counted (divisor always K*K): x -> y [B, C, Ho, Wo]."""
    dt = _dtype(x)
    p = padding
    win = _windows(_pad_hw(x, p, p, p, p), kernel, stride)
    return win.sum(axis=(-2, -1), dtype=dt) / dt.type(kernel * kernel)


def avgpool_bp(dy: np.ndarray, kernel: int, stride: int, padding: int,
               in_hw) -> np.ndarray:
    """Spread each error of dy [B, C, Ho, Wo] evenly over its window -> dx [B, C, H, W]."""
    h, w = _hw(in_hw)
    p, s = padding, stride
    bsz, c, ho, wo = dy.shape
    share = dy / dy.dtype.type(kernel * kernel)
    dxp = np.zeros((bsz, c, h + 2 * p, w + 2 * p), dtype=dy.dtype)
    for i in range(kernel):
        for j in range(kernel):
            dxp[:, :, i:i + s * (ho - 1) + 1:s, j:j + s * (wo - 1) + 1:s] += share
    return dxp[:, :, p:p + h, p:p + w]


def global_avgpool_fp(x: np.ndarray) -> np.ndarray:
    """Mean over the whole map: x [B, C, H, W] -> [B, C, 1, 1] (H != W allowed)."""
    dt = _dtype(x)
    return x.mean(axis=(2, 3), keepdims=True, dtype=dt)


def global_avgpool_bp(dy: np.ndarray, in_hw) -> np.ndarray:
    """dy [B, C, 1, 1] (or [B, C]) -> dx [B, C, H, W], each pixel gets dy / (H*W)."""
    h, w = _hw(in_hw)
    bsz, c = dy.shape[:2]
    share = dy.reshape(bsz, c, 1, 1) / dy.dtype.type(h * w)
    return np.broadcast_to(share, (bsz, c, h, w)).copy()


# ------------------------------------------------------------------ residual shortcut

def add_fp(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Residual add: y = a + b (same shapes and dtype)."""
    _dtype(a, b)
    if a.shape != b.shape:
        raise ValueError(f"add_fp: shapes {a.shape} and {b.shape} differ")
    return a + b


def add_bp(dy: np.ndarray):
    """The add passes its error unchanged to both inputs: (dy, dy)."""
    return dy, dy


def _shortcut_pad(in_channels: int, out_channels: int) -> int:
    if out_channels < in_channels:
        raise ValueError(f"shortcut_a: cannot shrink {in_channels} -> {out_channels} channels")
    return (out_channels - in_channels) // 2


def shortcut_a_fp(x: np.ndarray, out_channels: int, stride: int = 2) -> np.ndarray:
    """He et al. (2016) option-A shortcut: subsample, then zero-pad channels.

    x [B, C, H, W] -> [B, out_channels, ceil(H/S), ceil(W/S)]: x[:, :, ::S, ::S] placed at
    channels [lo, lo + C) with lo = (out_channels - C) // 2; the other channels are 0.
    """
    _dtype(x)
    bsz, c = x.shape[:2]
    lo = _shortcut_pad(c, out_channels)
    sub = x[:, :, ::stride, ::stride]
    y = np.zeros((bsz, out_channels) + sub.shape[2:], dtype=x.dtype)
    y[:, lo:lo + c] = sub
    return y


def shortcut_a_bp(dy: np.ndarray, in_channels: int, stride: int, in_hw) -> np.ndarray:
    """Backward of shortcut_a: dy [B, M, Ho, Wo] -> dx [B, in_channels, H, W].

    Errors of the padded channels are dropped; the rest return to the sampled pixels.
    """
    h, w = _hw(in_hw)
    bsz, m = dy.shape[:2]
    lo = _shortcut_pad(in_channels, m)
    dx = np.zeros((bsz, in_channels, h, w), dtype=dy.dtype)
    dx[:, :, ::stride, ::stride] = dy[:, lo:lo + in_channels]
    return dx


# ------------------------------------------------------------------------------- loss

def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of logits [B, K], stable (the row max is subtracted first)."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def softmax_ce(logits: np.ndarray, labels: np.ndarray):
    """Softmax cross-entropy averaged over the batch.

    logits [B, K] float, labels [B] int -> (loss, a scalar of the logits' dtype,
    dlogits [B, K] = (softmax - onehot) / B).
    """
    dt = _dtype(logits)
    bsz = logits.shape[0]
    labels = np.asarray(labels)
    if labels.shape != (bsz,) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"softmax_ce: labels must be int [{bsz}], got {labels.dtype} {labels.shape}")
    rows = np.arange(bsz)
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    s = e.sum(axis=1, keepdims=True)
    # -log p[label] = log(sum exp z) - z[label]; z <= 0 so nothing overflows.
    loss = (np.log(s[:, 0]) - z[rows, labels]).mean(dtype=dt)
    dlogits = e / s
    dlogits[rows, labels] -= dt.type(1)
    dlogits /= dt.type(bsz)
    return dt.type(loss), dlogits


# -------------------------------------------------------------------------- optimiser

def sgd_update(param: np.ndarray, grad: np.ndarray, velocity: np.ndarray | None,
               lr: float, momentum: float = 0.0, weight_decay: float = 0.0):
    """One SGD step, PyTorch convention. Returns (new_param, new_velocity); inputs unchanged.

    g = grad + wd * param;  v = momentum * v + g;  p = p - lr * v.
    ``velocity`` None means zeros (first step). Hyper-parameters are cast to the
    parameter dtype so a float32 step stays float32 end to end.
    """
    dt = _dtype(param, grad, velocity)
    g = grad + dt.type(weight_decay) * param
    v = g if velocity is None else dt.type(momentum) * velocity + g
    return param - dt.type(lr) * v, v


def flush_subnormals(a: np.ndarray) -> np.ndarray:
    """Flush-to-zero: subnormal values become zero of the same sign (FPGA FP cores do this)."""
    tiny = np.finfo(a.dtype).smallest_normal
    return np.where(np.abs(a) < tiny, np.copysign(a.dtype.type(0), a), a)
