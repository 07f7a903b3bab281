"""Tests of the golden-model ops (efgen/golden/ops.py).

Gradient checks use central finite differences in float64 on a scalar loss
L = sum(proj * op(inputs)) with a random projection ``proj``; the analytic gradient is
then the op's backward applied to ``proj``. The error reported per op is the max-norm
relative error max|analytic - numeric| / max(max|analytic|, max|numeric|), maximised over
every input and case of that op; ``test_zz_fd_report`` prints the table (run with -s).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from efgen.golden import ops

FD_EPS = 1e-6
FD_TOL = 1e-7          # the brief asks < 1e-6; observed errors are ~1e-9
FD_ERRORS: dict[str, float] = {}


# ----------------------------------------------------------------------------- helpers

def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def numeric_grad(f, x: np.ndarray, eps: float = FD_EPS) -> np.ndarray:
    """Central-difference gradient of the scalar function f at x (x is perturbed in place)."""
    g = np.zeros_like(x)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        keep = flat[i]
        flat[i] = keep + eps
        up = f()
        flat[i] = keep - eps
        down = f()
        flat[i] = keep
        gflat[i] = (up - down) / (2 * eps)
    return g


def rel_err(analytic: np.ndarray, numeric: np.ndarray) -> float:
    scale = max(np.abs(analytic).max(), np.abs(numeric).max(), 1e-300)
    return float(np.abs(analytic - numeric).max() / scale)


def check_grads(op: str, loss, inputs: dict[str, np.ndarray],
                analytic: dict[str, np.ndarray]) -> float:
    """FD-check d loss / d inputs[k] against analytic[k] for every k; record the worst."""
    worst = 0.0
    for name, x in inputs.items():
        num = numeric_grad(loss, x)
        assert analytic[name].shape == x.shape, name
        err = rel_err(analytic[name], num)
        assert err < FD_TOL, f"{op}: d/d{name} relative error {err:.2e}"
        worst = max(worst, err)
    FD_ERRORS[op] = max(FD_ERRORS.get(op, 0.0), worst)
    return worst


def proj_loss(proj: np.ndarray, fn):
    """Scalar loss sum(proj * fn()) for finite differences."""
    return lambda: float(np.sum(proj * fn()))


def conv_ref(x, w, b, s, p):
    """Naive loop reference of conv_fp: loops over every output pixel and weight tap."""
    bsz, n, h, wd = x.shape
    m, _, k, _ = w.shape
    xp = np.zeros((bsz, n, h + 2 * p, wd + 2 * p), x.dtype)
    xp[:, :, p:p + h, p:p + wd] = x
    ho, wo = ops.conv_out_size(h, k, s, p), ops.conv_out_size(wd, k, s, p)
    y = np.zeros((bsz, m, ho, wo), x.dtype)
    for bi, mi, r, c in itertools.product(range(bsz), range(m), range(ho), range(wo)):
        acc = 0.0
        for ni, i, j in itertools.product(range(n), range(k), range(k)):
            acc += w[mi, ni, i, j] * xp[bi, ni, r * s + i, c * s + j]
        y[bi, mi, r, c] = acc + (b[mi] if b is not None else 0.0)
    return y


def conv_bp_scatter_ref(dy, w, s, p, in_hw):
    """The BP equation read literally: dI[n][r*S+i][c*S+j] += W[m][n][i][j] * dO[m][r][c].

    Scattered into the padded input coordinates, then the padding is cropped off.
    """
    h, wd = in_hw
    bsz, m, ho, wo = dy.shape
    _, n, k, _ = w.shape
    dxp = np.zeros((bsz, n, h + 2 * p, wd + 2 * p), dy.dtype)
    for mi, r, c, i, j in itertools.product(range(m), range(ho), range(wo), range(k), range(k)):
        # vectorised over batch and input channel only
        dxp[:, :, r * s + i, c * s + j] += w[mi, :, i, j][None, :] * dy[:, mi, r, c][:, None]
    return dxp[:, :, p:p + h, p:p + wd]


# (stride, kernel, padding, H, W). Several have (H + 2P - K) % S != 0, one has H != W,
# and K=1,P=1 has P > K-1 (BP pads negatively, i.e. crops).
CONV_CASES = [
    (1, 1, 0, 4, 4),
    (2, 1, 0, 6, 6),        # (6-1) % 2 = 1
    (1, 1, 1, 4, 4),        # P > K-1
    (1, 3, 0, 5, 5),
    (1, 3, 1, 5, 6),
    (1, 3, 2, 4, 4),
    (2, 3, 1, 6, 6),        # (6+2-3) % 2 = 1
    (2, 3, 1, 7, 7),        # (7+2-3) % 2 = 0
    (2, 3, 0, 6, 5),
    (1, 5, 2, 6, 6),
    (2, 5, 2, 7, 8),
    (2, 5, 0, 8, 8),        # (8-5) % 2 = 1
]


def conv_case(s, k, p, h, w, seed=0, n=2, m=3, bsz=2, dtype=np.float64):
    g = rng(seed)
    x = g.standard_normal((bsz, n, h, w)).astype(dtype)
    wt = g.standard_normal((m, n, k, k)).astype(dtype)
    b = g.standard_normal(m).astype(dtype)
    ho, wo = ops.conv_out_size(h, k, s, p), ops.conv_out_size(w, k, s, p)
    dy = g.standard_normal((bsz, m, ho, wo)).astype(dtype)
    return x, wt, b, dy


# ------------------------------------------------------------------- gradient checks

@pytest.mark.parametrize("s,k,p,h,w", CONV_CASES)
def test_fd_conv(s, k, p, h, w):
    x, wt, b, proj = conv_case(s, k, p, h, w)
    loss = proj_loss(proj, lambda: ops.conv_fp(x, wt, b, s, p))
    check_grads("conv", loss, {"x": x, "w": wt, "b": b}, {
        "x": ops.conv_bp(proj, wt, s, p, (h, w)),
        "w": ops.conv_wu(proj, x, s, p, k),
        "b": ops.conv_bias_grad(proj),
    })


def test_fd_linear():
    g = rng(1)
    x, w, b = g.standard_normal((3, 5)), g.standard_normal((4, 5)), g.standard_normal(4)
    proj = g.standard_normal((3, 4))
    loss = proj_loss(proj, lambda: ops.linear_fp(x, w, b))
    check_grads("linear", loss, {"x": x, "w": w, "b": b}, {
        "x": ops.linear_bp(proj, w), "w": ops.linear_wu(proj, x),
        "b": ops.linear_bias_grad(proj)})


@pytest.mark.parametrize("shape", [(3, 2, 3, 4), (5, 3)])
def test_fd_bn(shape):
    g = rng(2)
    c = shape[1]
    x = g.standard_normal(shape) * 2 + 0.5
    gamma, beta = g.standard_normal(c), g.standard_normal(c)
    proj = g.standard_normal(shape)
    loss = proj_loss(proj, lambda: ops.bn_fp_train(x, gamma, beta)[0])
    _, cache = ops.bn_fp_train(x, gamma, beta)
    dx, dgamma, dbeta = ops.bn_bp(proj, cache, gamma)
    check_grads("bn", loss, {"x": x, "gamma": gamma, "beta": beta},
                {"x": dx, "gamma": dgamma, "beta": dbeta})


def test_fd_relu():
    g = rng(3)
    x = g.standard_normal((2, 3, 4, 4))
    x[np.abs(x) < 0.1] = 0.5            # keep clear of the kink: eps never crosses 0
    proj = g.standard_normal(x.shape)
    loss = proj_loss(proj, lambda: ops.relu_fp(x))
    check_grads("relu", loss, {"x": x}, {"x": ops.relu_bp(proj, ops.relu_fp(x))})


POOL_CASES = [(2, 2, 0, 6, 6), (3, 2, 1, 7, 7), (3, 1, 1, 5, 6), (2, 1, 0, 5, 5), (3, 3, 0, 7, 8)]


@pytest.mark.parametrize("k,s,p,h,w", POOL_CASES)
def test_fd_maxpool(k, s, p, h, w):
    g = rng(4)
    # Distinct values 0.01 apart: every window has a unique max that eps cannot change.
    x = g.permutation(2 * 2 * h * w).reshape(2, 2, h, w) * 0.01
    _, arg = ops.maxpool_fp(x, k, s, p)
    proj = g.standard_normal(arg.shape)
    loss = proj_loss(proj, lambda: ops.maxpool_fp(x, k, s, p)[0])
    check_grads("maxpool", loss, {"x": x}, {"x": ops.maxpool_bp(proj, arg, k, s, p, (h, w))})


@pytest.mark.parametrize("k,s,p,h,w", POOL_CASES)
def test_fd_avgpool(k, s, p, h, w):
    g = rng(5)
    x = g.standard_normal((2, 2, h, w))
    proj = g.standard_normal(ops.avgpool_fp(x, k, s, p).shape)
    loss = proj_loss(proj, lambda: ops.avgpool_fp(x, k, s, p))
    check_grads("avgpool", loss, {"x": x}, {"x": ops.avgpool_bp(proj, k, s, p, (h, w))})


@pytest.mark.parametrize("h,w", [(4, 4), (3, 5)])
def test_fd_global_avgpool(h, w):
    g = rng(6)
    x = g.standard_normal((2, 3, h, w))
    proj = g.standard_normal((2, 3, 1, 1))
    loss = proj_loss(proj, lambda: ops.global_avgpool_fp(x))
    check_grads("global_avgpool", loss, {"x": x}, {"x": ops.global_avgpool_bp(proj, (h, w))})


def test_fd_add():
    g = rng(7)
    a, b = g.standard_normal((2, 3, 4, 4)), g.standard_normal((2, 3, 4, 4))
    proj = g.standard_normal(a.shape)
    loss = proj_loss(proj, lambda: ops.add_fp(a, b))
    da, db = ops.add_bp(proj)
    check_grads("add", loss, {"a": a, "b": b}, {"a": da, "b": db})


@pytest.mark.parametrize("c,out,s,h,w", [(3, 8, 2, 5, 5), (4, 8, 2, 6, 6), (2, 5, 1, 3, 4)])
def test_fd_shortcut_a(c, out, s, h, w):
    g = rng(8)
    x = g.standard_normal((2, c, h, w))
    proj = g.standard_normal(ops.shortcut_a_fp(x, out, s).shape)
    loss = proj_loss(proj, lambda: ops.shortcut_a_fp(x, out, s))
    check_grads("shortcut_a", loss, {"x": x}, {"x": ops.shortcut_a_bp(proj, c, s, (h, w))})


def test_fd_softmax_ce():
    g = rng(9)
    logits = g.standard_normal((4, 5)) * 3
    labels = np.array([0, 4, 2, 2])
    loss = lambda: float(ops.softmax_ce(logits, labels)[0])  # noqa: E731
    check_grads("softmax_ce", loss, {"logits": logits},
                {"logits": ops.softmax_ce(logits, labels)[1]})


def test_fd_checker_catches_a_wrong_gradient():
    """The checker itself must be able to fail: a gradient off by 1e-4 is rejected."""
    g = rng(10)
    x = g.standard_normal((2, 3))
    proj = g.standard_normal((2, 3))
    with pytest.raises(AssertionError):
        check_grads("self-test", proj_loss(proj, lambda: 2 * x), {"x": x},
                    {"x": 2 * proj * (1 + 1e-4)})
    FD_ERRORS.pop("self-test", None)


# ------------------------------------------------------------------ conv references

@pytest.mark.parametrize("s,k,p,h,w", CONV_CASES)
def test_conv_fp_matches_loops(s, k, p, h, w):
    x, wt, b, _ = conv_case(s, k, p, h, w, seed=11)
    np.testing.assert_allclose(ops.conv_fp(x, wt, b, s, p), conv_ref(x, wt, b, s, p),
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ops.conv_fp(x, wt, None, s, p), conv_ref(x, wt, None, s, p),
                               rtol=1e-12, atol=1e-12)


# Every (S, K, P, H) with H + 2P >= K, P up to K (so P > K-1 occurs), W = H + 1.
BP_COMBOS = [(s, k, p, h) for s, k, p, h in itertools.product(
    (1, 2, 3), (1, 2, 3, 5), (0, 1, 2, 3), (5, 8)) if p <= k and h + 2 * p >= k]


@pytest.mark.parametrize("s,k,p,h", BP_COMBOS)
def test_conv_bp_matches_scatter(s, k, p, h):
    w = h + 1
    x, wt, _, dy = conv_case(s, k, p, h, w, seed=12)
    got = ops.conv_bp(dy, wt, s, p, (h, w))
    assert got.shape == x.shape
    np.testing.assert_allclose(got, conv_bp_scatter_ref(dy, wt, s, p, (h, w)),
                               rtol=1e-12, atol=1e-12)


def test_conv_bp_input_layout():
    """Dilation by S and padding K-1-P (+ remainder at the bottom/right)."""
    dy = np.arange(1.0, 7.0).reshape(1, 1, 2, 3)          # K=3 S=2 P=1 on H=4, W=6
    d = ops.conv_bp_input(dy, 3, 2, 1, (4, 6))
    assert d.shape == (1, 1, 4 + 2, 6 + 2)
    want = np.zeros((6, 8))
    want[1:4:2, 1:6:2] = dy[0, 0]      # lo = K-1-P = 1; extra rows/cols of zeros after
    np.testing.assert_array_equal(d[0, 0], want)
    with pytest.raises(ValueError):
        ops.conv_bp_input(dy, 3, 2, 1, (8, 6))


def test_conv_bp_weights_rotated_transposed():
    w = np.arange(2 * 3 * 3 * 3, dtype=np.float64).reshape(2, 3, 3, 3)
    r = ops.conv_bp_weights(w)
    assert r.shape == (3, 2, 3, 3) and r.flags.c_contiguous
    for m, n, i, j in itertools.product(range(2), range(3), range(3), range(3)):
        assert r[n, m, 2 - i, 2 - j] == w[m, n, i, j]


def test_conv_wu_matches_loops():
    s, k, p, h, w = 2, 3, 1, 6, 5
    x, _, _, dy = conv_case(s, k, p, h, w, seed=13)
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    want = np.zeros((3, 2, k, k))
    for m, n, i, j in itertools.product(range(3), range(2), range(k), range(k)):
        want[m, n, i, j] = np.sum(dy[:, m] * xp[:, n, i:i + s * dy.shape[2]:s,
                                                 j:j + s * dy.shape[3]:s])
    np.testing.assert_allclose(ops.conv_wu(dy, x, s, p, k), want, rtol=1e-12, atol=1e-12)


def test_conv_out_size():
    assert ops.conv_out_size(32, 3, 1, 1) == 32
    assert ops.conv_out_size(32, 3, 2, 1) == 16
    assert ops.conv_out_size(7, 3, 2, 0) == 3
    assert ops.conv_out_size(1, 1, 1, 0) == 1


def test_linear_runs_through_the_conv_engine(monkeypatch):
    g = rng(14)
    x, w, b = g.standard_normal((3, 5)), g.standard_normal((4, 5)), g.standard_normal(4)
    dy = g.standard_normal((3, 4))
    np.testing.assert_allclose(ops.linear_fp(x, w, b), x @ w.T + b, rtol=1e-12)
    np.testing.assert_allclose(ops.linear_bp(dy, w), dy @ w, rtol=1e-12)
    np.testing.assert_allclose(ops.linear_wu(dy, x), dy.T @ x, rtol=1e-12)
    calls = []
    for name in ("conv_fp", "conv_bp", "conv_wu"):
        real = getattr(ops, name)
        monkeypatch.setattr(ops, name, lambda *a, _r=real, _n=name: calls.append(_n) or _r(*a))
    for run, engine in ((lambda: ops.linear_fp(x, w, b), "conv_fp"),
                        (lambda: ops.linear_bp(dy, w), "conv_bp"),
                        (lambda: ops.linear_wu(dy, x), "conv_wu")):
        calls.clear()
        run()
        assert calls[0] == engine          # (conv_bp itself then calls conv_fp)


# ------------------------------------------------------------------------- batchnorm

def test_bn_forward_values_and_cache():
    g = rng(15)
    x = g.standard_normal((4, 3, 2, 5)) * 3 + 1
    gamma, beta = g.standard_normal(3), g.standard_normal(3)
    y, cache = ops.bn_fp_train(x, gamma, beta, eps=1e-5)
    mean = x.mean(axis=(0, 2, 3))
    var = x.var(axis=(0, 2, 3))                          # biased
    np.testing.assert_allclose(cache["mean"], mean, rtol=1e-12)
    np.testing.assert_allclose(cache["var"], var, rtol=1e-12)
    np.testing.assert_allclose(cache["invstd"], 1 / np.sqrt(var + 1e-5), rtol=1e-12)
    want = gamma[None, :, None, None] * (x - mean[None, :, None, None]) \
        / np.sqrt(var[None, :, None, None] + 1e-5) + beta[None, :, None, None]
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)
    # 2-D input is the H = W = 1 case
    y2, c2 = ops.bn_fp_train(x[:, :, 0, 0], gamma, beta)
    y4, c4 = ops.bn_fp_train(x[:, :, :1, :1], gamma, beta)
    np.testing.assert_allclose(y2, y4[:, :, 0, 0], rtol=1e-12)
    np.testing.assert_allclose(c2["var"], c4["var"], rtol=1e-12)


def test_bn_running_update_pytorch_convention():
    rm, rv = np.array([0.0, 1.0]), np.array([1.0, 2.0])
    mean, var = np.array([2.0, -1.0]), np.array([4.0, 0.5])
    nm, nv = ops.bn_running_update(rm, rv, mean, var, count=8, momentum=0.1)
    np.testing.assert_allclose(nm, [0.2, 0.8])
    np.testing.assert_allclose(nv, [0.9 * 1.0 + 0.1 * 4.0 * 8 / 7, 0.9 * 2.0 + 0.1 * 0.5 * 8 / 7])
    with pytest.raises(ValueError):
        ops.bn_running_update(rm, rv, mean, var, count=1)


def test_bn_eval():
    g = rng(16)
    x = g.standard_normal((2, 3, 4, 4))
    gamma, beta = g.standard_normal(3), g.standard_normal(3)
    rm, rv = g.standard_normal(3), g.random(3) + 0.5
    y = ops.bn_fp_eval(x, gamma, beta, rm, rv, eps=1e-3)
    c = lambda v: v[None, :, None, None]  # noqa: E731
    np.testing.assert_allclose(y, c(gamma) * (x - c(rm)) / np.sqrt(c(rv) + 1e-3) + c(beta),
                               rtol=1e-12)


# ----------------------------------------------------------------------------- pooling

def test_maxpool_ties_route_to_first_max():
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 0:2, 0:2] = [[1.0, 5.0], [5.0, 5.0]]          # three-way tie: (0,1) is first
    x[0, 0, 2:4, 2:4] = 7.0                               # all-equal window: (0,0) first
    y, arg = ops.maxpool_fp(x, 2, 2, 0)
    assert arg[0, 0, 0, 0] == 1 and arg[0, 0, 1, 1] == 0 and arg[0, 0, 0, 1] == 0
    np.testing.assert_array_equal(y[0, 0], [[5.0, 0.0], [0.0, 7.0]])
    dx = ops.maxpool_bp(np.ones_like(y), arg, 2, 2, 0, (4, 4))
    want = np.zeros((4, 4))
    want[0, 1] = want[2, 2] = want[0, 2] = want[2, 0] = 1.0
    np.testing.assert_array_equal(dx[0, 0], want)


def test_maxpool_overlap_accumulates_and_padding_never_wins():
    x = -np.ones((1, 1, 3, 3))
    x[0, 0, 1, 1] = 2.0                                   # the max of every 3x3 window
    y, arg = ops.maxpool_fp(x, 3, 1, 1)                   # pads with -inf, not 0
    assert (y == 2.0).all() and (arg == 4).sum() == 1
    dx = ops.maxpool_bp(np.ones_like(y), arg, 3, 1, 1, (3, 3))
    assert dx[0, 0, 1, 1] == 9.0 and dx.sum() == 9.0
    # all-negative input, K=2 S=2 P=1: each window holds one real pixel and three pads
    x = -np.arange(1.0, 5.0).reshape(1, 1, 2, 2)
    y, arg = ops.maxpool_fp(x, 2, 2, 1)
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(arg[0, 0], [[3, 2], [1, 0]])
    np.testing.assert_array_equal(ops.maxpool_bp(-x, arg, 2, 2, 1, (2, 2)), -x)


def test_avgpool_divisor_counts_padding():
    x = np.ones((1, 1, 2, 2))
    y = ops.avgpool_fp(x, 3, 1, 1)
    np.testing.assert_allclose(y[0, 0], np.full((2, 2), 4 / 9))


def test_global_avgpool_matches_avgpool_and_nonsquare():
    g = rng(17)
    x = g.standard_normal((2, 3, 4, 4))
    np.testing.assert_allclose(ops.global_avgpool_fp(x), ops.avgpool_fp(x, 4, 1, 0), rtol=1e-12)
    dy = g.standard_normal((2, 3, 1, 1))
    np.testing.assert_allclose(ops.global_avgpool_bp(dy, (4, 4)),
                               ops.avgpool_bp(dy, 4, 1, 0, (4, 4)), rtol=1e-12)
    x = g.standard_normal((2, 3, 3, 5))
    np.testing.assert_allclose(ops.global_avgpool_fp(x)[:, :, 0, 0], x.mean(axis=(2, 3)))
    dx = ops.global_avgpool_bp(dy.reshape(2, 3), (3, 5))   # a flattened dy is accepted
    assert dx.shape == (2, 3, 3, 5)
    np.testing.assert_allclose(dx[:, :, 2, 4], dy[:, :, 0, 0] / 15)


# -------------------------------------------------------------------------- shortcut

def test_shortcut_a_layout():
    x = np.arange(1.0, 1 + 2 * 3 * 5 * 5).reshape(2, 3, 5, 5)
    y = ops.shortcut_a_fp(x, 8, 2)
    assert y.shape == (2, 8, 3, 3)
    lo = (8 - 3) // 2                                     # 2 zero channels before, 3 after
    np.testing.assert_array_equal(y[:, lo:lo + 3], x[:, :, ::2, ::2])
    assert not y[:, :lo].any() and not y[:, lo + 3:].any()
    dx = ops.shortcut_a_bp(y, 3, 2, (5, 5))
    np.testing.assert_array_equal(dx[:, :, ::2, ::2], x[:, :, ::2, ::2])
    assert not dx[:, :, 1::2].any() and not dx[:, :, :, 1::2].any()


# ------------------------------------------------------------------------------ loss

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_ce_stable_for_large_logits(dtype):
    base = np.array([[0.0, 1.0, -2.0], [3.0, 3.0, 0.5]])
    labels = np.array([1, 0])
    small_loss, small_grad = ops.softmax_ce(base.astype(dtype), labels)
    with np.errstate(all="raise"):                        # no overflow warnings either
        loss, grad = ops.softmax_ce((base + 1e4).astype(dtype), labels)
        p = ops.softmax((base - 1e4).astype(dtype))
    assert np.isfinite(loss) and np.isfinite(grad).all() and np.isfinite(p).all()
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(loss, small_loss, rtol=tol)   # shift invariance
    np.testing.assert_allclose(grad, small_grad, atol=tol)
    # a confidently wrong prediction: loss ~ 1e4, finite, not inf
    loss, _ = ops.softmax_ce(np.array([[1e4, -1e4]], dtype), np.array([1]))
    np.testing.assert_allclose(loss, 2e4, rtol=1e-6)


def test_softmax_ce_values():
    logits = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    labels = np.array([2, 1])
    loss, grad = ops.softmax_ce(logits, labels)
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(loss, -np.log(p[[0, 1], labels]).mean(), rtol=1e-12)
    onehot = np.eye(3)[labels]
    np.testing.assert_allclose(grad, (p - onehot) / 2, rtol=1e-12)
    np.testing.assert_allclose(ops.softmax(logits), p, rtol=1e-12)


# ---------------------------------------------------------------------------- SGD

def test_sgd_update_by_hand():
    p = np.array([1.0, -2.0], np.float32)
    g = np.array([0.5, 0.25], np.float32)
    v = np.array([0.1, -0.1], np.float32)
    new_p, new_v = ops.sgd_update(p, g, v, lr=0.1, momentum=0.9, weight_decay=0.01)
    # g' = g + wd*p = [0.51, 0.23]; v = 0.9*v + g' = [0.60, 0.14]; p -= 0.1*v
    np.testing.assert_allclose(new_v, [0.60, 0.14], rtol=1e-6)
    np.testing.assert_allclose(new_p, [0.94, -2.014], rtol=1e-6)
    assert new_p.dtype == np.float32 and new_v.dtype == np.float32
    np.testing.assert_array_equal(p, [1.0, -2.0])         # inputs untouched
    # plain SGD, first step (no velocity yet)
    new_p, _ = ops.sgd_update(p, g, None, lr=0.5)
    np.testing.assert_allclose(new_p, [0.75, -2.125], rtol=1e-7)


def test_flush_subnormals():
    tiny = np.finfo(np.float32).smallest_normal
    a = np.array([tiny / 4, -tiny / 4, tiny, -1.0, 0.0, np.nan], np.float32)
    f = ops.flush_subnormals(a)
    assert f.dtype == np.float32
    np.testing.assert_array_equal(f[:5], [0.0, 0.0, tiny, -1.0, 0.0])
    assert np.signbit(f[1]) and not np.signbit(f[0]) and np.isnan(f[5])


# ------------------------------------------------------------------ dtype handling

def _all_ops(dt):
    """Run every op once on small inputs of dtype dt; yields (name, outputs)."""
    g = rng(18)
    r = lambda *s: g.standard_normal(s).astype(dt)  # noqa: E731
    x, w, b = r(2, 3, 6, 6), r(4, 3, 3, 3), r(4)
    dy = r(2, 4, 3, 3)
    yield "conv_fp", ops.conv_fp(x, w, b, 2, 1)
    yield "conv_bp", ops.conv_bp(dy, w, 2, 1, (6, 6))
    yield "conv_bp_weights", ops.conv_bp_weights(w)
    yield "conv_wu", ops.conv_wu(dy, x, 2, 1, 3)
    yield "conv_bias_grad", ops.conv_bias_grad(dy)
    xl, wl, bl, dyl = r(2, 5), r(3, 5), r(3), r(2, 3)
    yield "linear_fp", ops.linear_fp(xl, wl, bl)
    yield "linear_bp", ops.linear_bp(dyl, wl)
    yield "linear_wu", ops.linear_wu(dyl, xl)
    yield "linear_bias_grad", ops.linear_bias_grad(dyl)
    gamma, beta = r(3), r(3)
    y, cache = ops.bn_fp_train(x, gamma, beta)
    yield "bn_fp_train", (y, cache["mean"], cache["var"], cache["invstd"], cache["xhat"])
    yield "bn_bp", ops.bn_bp(r(*x.shape), cache, gamma)
    yield "bn_running_update", ops.bn_running_update(cache["mean"], cache["var"],
                                                     cache["mean"], cache["var"], 72)
    yield "bn_fp_eval", ops.bn_fp_eval(x, gamma, beta, cache["mean"], cache["var"])
    yield "relu_fp", ops.relu_fp(x)
    yield "relu_bp", ops.relu_bp(x, ops.relu_fp(x))
    ym, arg = ops.maxpool_fp(x, 3, 2, 1)
    yield "maxpool_fp", ym
    yield "maxpool_bp", ops.maxpool_bp(ym, arg, 3, 2, 1, (6, 6))
    ya = ops.avgpool_fp(x, 2, 2, 0)
    yield "avgpool_fp", ya
    yield "avgpool_bp", ops.avgpool_bp(ya, 2, 2, 0, (6, 6))
    yg = ops.global_avgpool_fp(x)
    yield "global_avgpool_fp", yg
    yield "global_avgpool_bp", ops.global_avgpool_bp(yg, (6, 6))
    yield "add_fp", ops.add_fp(x, x)
    yield "add_bp", ops.add_bp(x)
    ys = ops.shortcut_a_fp(x, 8, 2)
    yield "shortcut_a_fp", ys
    yield "shortcut_a_bp", ops.shortcut_a_bp(ys, 3, 2, (6, 6))
    yield "conv_bp_input", ops.conv_bp_input(dy, 3, 2, 1, (6, 6))
    logits = r(2, 5)
    yield "softmax", ops.softmax(logits)
    yield "softmax_ce", ops.softmax_ce(logits, np.array([1, 3]))
    yield "sgd_update", ops.sgd_update(w, w, w, 0.1, 0.9, 5e-4)
    yield "flush_subnormals", ops.flush_subnormals(x)


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_dtype_preserved_by_every_op(dt):
    seen = set()
    for name, out in _all_ops(dt):
        seen.add(name)
        for a in (out if isinstance(out, tuple) else (out,)):
            assert np.asarray(a).dtype == dt, f"{name} returned {np.asarray(a).dtype}"
    assert seen == set(ops.__all__) - {"conv_out_size"}     # every array op covered


def test_mixed_dtypes_refused():
    x = np.zeros((1, 2, 4, 4), np.float32)
    with pytest.raises(TypeError):
        ops.conv_fp(x, np.zeros((3, 2, 3, 3)), None, 1, 1)
    with pytest.raises(TypeError):
        ops.bn_fp_train(x, np.ones(2), np.zeros(2, np.float32))


def _rel(a32, a64) -> float:
    return float(np.abs(a32.astype(np.float64) - a64).max() / np.abs(a64).max())


def test_float32_agrees_with_float64_conv():
    s, k, p, h, w = 2, 3, 1, 16, 16
    x, wt, b, dy = conv_case(s, k, p, h, w, seed=19, n=8, m=16, bsz=4)
    f = lambda a: a.astype(np.float32)  # noqa: E731
    assert _rel(ops.conv_fp(f(x), f(wt), f(b), s, p), ops.conv_fp(x, wt, b, s, p)) < 1e-5
    assert _rel(ops.conv_bp(f(dy), f(wt), s, p, (h, w)), ops.conv_bp(dy, wt, s, p, (h, w))) < 1e-5
    assert _rel(ops.conv_wu(f(dy), f(x), s, p, k), ops.conv_wu(dy, x, s, p, k)) < 1e-5


def test_float32_agrees_with_float64_bn():
    g = rng(20)
    x = g.standard_normal((8, 4, 6, 6)) * 5 + 3
    gamma, beta, dy = g.standard_normal(4), g.standard_normal(4), g.standard_normal(x.shape)
    f = lambda a: a.astype(np.float32)  # noqa: E731
    y64, c64 = ops.bn_fp_train(x, gamma, beta)
    y32, c32 = ops.bn_fp_train(f(x), f(gamma), f(beta))
    assert _rel(y32, y64) < 1e-5
    for a32, a64 in zip(ops.bn_bp(f(dy), c32, f(gamma)), ops.bn_bp(dy, c64, gamma)):
        assert _rel(a32, a64) < 1e-5


# ------------------------------------------------------------------------- report

def fd_report() -> dict[str, float]:
    """Max FD relative error per op seen so far in this session."""
    return dict(sorted(FD_ERRORS.items()))


def test_zz_fd_report():
    """Runs last (file order): print the per-op table; every op must have been checked."""
    report = fd_report()
    if not report:
        pytest.fail("no gradient checks ran: run the whole file, whose checks fill this report")
    print("\nmax finite-difference relative error per op (float64, eps=1e-6):")
    for op, err in report.items():
        print(f"  {op:16s} {err:.2e}")
    assert all(err < FD_TOL for err in report.values())
