"""The tiled reference (hardware loop order and blocking, through the DRAM layouts)
equals the dense golden ops for many (Tm, Tn, Tr, Tc, stride, K) combinations."""


import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from efgen.golden import ops, tiled
from efgen.golden.tiled import Tiling

CASES = [
    # (B, N, M, H, K, S, P, Tm, Tn, Tr, Tc)
    (2, 3, 16, 8, 3, 1, 1, 4, 4, 3, 5),     # first layer: 3 input channels on 4 lanes
    (1, 6, 10, 9, 3, 2, 1, 4, 2, 2, 3),     # Tm != Tn, stride 2, odd size, ragged tiles
    (2, 10, 6, 7, 5, 1, 2, 2, 4, 7, 7),     # K=5, full-size tiles
    (1, 5, 7, 6, 1, 1, 0, 8, 4, 4, 2),      # K=1, channels not multiples of lanes
    (1, 5, 7, 8, 1, 2, 0, 4, 8, 3, 3),      # K=1 stride 2 (ResNet projection)
    (2, 4, 4, 5, 3, 2, 0, 2, 2, 1, 1),      # 1x1 tiles, no padding, stride 2
    (1, 8, 8, 10, 3, 3, 2, 4, 4, 2, 4),     # stride 3 with a large pad
    (1, 3, 5, 6, 5, 2, 2, 1, 1, 2, 2),      # scalar engine
]


def _data(B, N, M, H, K, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, N, H, H)).astype(dtype)
    w = rng.standard_normal((M, N, K, K)).astype(dtype)
    b = rng.standard_normal(M).astype(dtype)
    return x, w, b


def _rel(a, b):
    return np.max(np.abs(a - b)) / (np.max(np.abs(b)) + 1e-12)


@pytest.mark.parametrize("case", CASES, ids=lambda c: "B{}N{}M{}H{}K{}S{}P{}_t{}x{}_{}x{}".format(*c))
@pytest.mark.parametrize("fm_kind,w_kind", [("blocked", "blocked"), ("nchw", "oihw")])
def test_tiled_equals_dense(case, fm_kind, w_kind):
    B, N, M, H, K, S, P, tm, tn, tr, tc = case
    t = Tiling(tm, tn, tr, tc)
    x, w, b = _data(B, N, M, H, K)
    y = ops.conv_fp(x, w, b, S, P)
    assert _rel(tiled.conv_fp(x, w, b, S, P, t, fm_kind, w_kind), y) < 1e-12
    dy = np.random.default_rng(1).standard_normal(y.shape)
    dx = ops.conv_bp(dy, w, S, P, (H, H))
    assert _rel(tiled.conv_bp(dy, w, S, P, (H, H), t, fm_kind, w_kind), dx) < 1e-12
    dw = ops.conv_wu(dy, x, S, P, K)
    assert _rel(tiled.conv_wu(dy, x, S, P, K, t, fm_kind, w_kind), dw) < 1e-12


@pytest.mark.parametrize("tm,tn", [(4, 4), (2, 8), (16, 1)])
def test_linear_through_the_same_engine(tm, tn):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 20))
    w = rng.standard_normal((7, 20))
    b = rng.standard_normal(7)
    t = Tiling(tm, tn, 1, 1)
    np.testing.assert_allclose(tiled.conv_fp(x, w, b, 1, 0, t), ops.linear_fp(x, w, b), rtol=1e-12)
    dy = rng.standard_normal((3, 7))
    np.testing.assert_allclose(tiled.conv_bp(dy, w, 1, 0, (1, 1), t), ops.linear_bp(dy, w),
                               rtol=1e-12)
    np.testing.assert_allclose(tiled.conv_wu(dy, x, 1, 0, 1, t), ops.linear_wu(dy, x), rtol=1e-12)


def test_float32_stays_float32_and_close():
    x, w, b = _data(2, 6, 8, 8, 3, dtype=np.float32)
    t = Tiling(4, 2, 3, 3)
    y = tiled.conv_fp(x, w, b, 1, 1, t)
    assert y.dtype == np.float32
    assert _rel(y, ops.conv_fp(x, w, b, 1, 1)) < 1e-5


@settings(max_examples=40, deadline=None)
@given(B=st.integers(1, 2), N=st.integers(1, 9), M=st.integers(1, 9), H=st.integers(1, 9),
       K=st.sampled_from([1, 3, 5]), S=st.integers(1, 3), P=st.integers(0, 2),
       tm=st.integers(1, 8), tn=st.integers(1, 8), tr=st.integers(1, 6), tc=st.integers(1, 6))
def test_tiled_equals_dense_property(B, N, M, H, K, S, P, tm, tn, tr, tc):
    if H + 2 * P < K:
        return  # no output pixel; the IR rejects such layers
    t = Tiling(tm, tn, tr, tc)
    x, w, b = _data(B, N, M, H, K, seed=H * 31 + K)
    y = ops.conv_fp(x, w, b, S, P)
    dy = np.random.default_rng(5).standard_normal(y.shape)
    assert _rel(tiled.conv_fp(x, w, b, S, P, t), y) < 1e-12
    assert _rel(tiled.conv_bp(dy, w, S, P, (H, H), t), ops.conv_bp(dy, w, S, P, (H, H))) < 1e-12
    assert _rel(tiled.conv_wu(dy, x, S, P, K, t), ops.conv_wu(dy, x, S, P, K)) < 1e-12


def test_bp_flips_and_transposes_at_load_not_in_dram():
    """BP reads the same DRAM weight image FP reads (one weight layout)."""
    from efgen.layout import FeatureMapLayout, WeightLayout

    x, w, _ = _data(1, 3, 5, 6, 3)
    t = Tiling(2, 4, 2, 2)
    fm, wl = FeatureMapLayout("blocked", 2), WeightLayout("blocked", 2, 4)
    w_img = wl.pack(w)
    before = w_img.copy()
    dy = np.random.default_rng(0).standard_normal((1, 5, 6, 6))
    dx_flat, shape = tiled.conv_bp_tiled(fm.pack(dy), dy.shape, w_img, w.shape, (6, 6), 1, 1,
                                         t, fm, wl)
    assert np.array_equal(w_img, before)
    np.testing.assert_allclose(fm.unpack(dx_flat, shape), ops.conv_bp(dy, w, 1, 1, (6, 6)),
                               rtol=1e-12)
