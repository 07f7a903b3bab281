"""Golden semantics of the training methods (issue 15): gradient filtering against a plain
loop-over-patches reference, error-map pruning / SMD / SLU / EIF against masked-vs-unmasked
identities, MobileTL's BN shift-only by finite differences of the net with its batch
statistics held fixed, and 1-bit ReLU masks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from efgen.frontend import load_net
from efgen.frontend.ir import parse_net
from efgen.golden import ops
from efgen.golden.model import SGD, forward, init_state, synthetic_batch, train_step
from efgen.methods import golden as mg
from efgen.methods.spec import parse_training, residual_blocks
from efgen.methods.step import StepPlan, draw_plan, filter_keep, method_step


# ---- gradient filtering: a brute-force reference ---------------------------------------

def _brute_gf(dy, x, w, r, s):
    """The paper's semantics written as loops over patches (no shared helpers)."""
    B, M, H, W = dy.shape
    _, N, Hi, Wi = x.shape
    K = w.shape[-1]
    ph, pw = math.ceil(H / r), math.ceil(W / r)
    oh, ow = math.ceil((ph * r - H) / 2), math.ceil((pw * r - W) / 2)
    xoh, xow = math.ceil((ph * r * s - Hi) / 2), math.ceil((pw * r * s - Wi) / 2)
    g = np.zeros((B, M, ph, pw))
    xs = np.zeros((B, N, ph, pw))
    for p in range(ph):
        for q in range(pw):
            rows = [i for i in range(p * r - oh, p * r - oh + r) if 0 <= i < H]
            cols = [j for j in range(q * r - ow, q * r - ow + r) if 0 <= j < W]
            g[:, :, p, q] = dy[:, :, rows][:, :, :, cols].mean(axis=(2, 3))
            rows = [i for i in range(p * r * s - xoh, (p + 1) * r * s - xoh) if 0 <= i < Hi]
            cols = [j for j in range(q * r * s - xow, (q + 1) * r * s - xow) if 0 <= j < Wi]
            if rows and cols:
                xs[:, :, p, q] = x[:, :, rows][:, :, :, cols].sum(axis=(2, 3))
    wsum = w.sum(axis=(2, 3))
    dx = np.zeros(x.shape)
    for i in range(Hi):
        for j in range(Wi):
            p, q = (i + xoh) // (r * s), (j + xow) // (r * s)
            dx[:, :, i, j] = np.einsum("mn,bm->bn", wsum, g[:, :, p, q])
    dw = np.zeros(w.shape)
    for m in range(M):
        for n in range(N):
            dw[m, n, :, :] = (g[:, m] * xs[:, n]).sum()
    return dx, dw


@pytest.mark.parametrize("hw,k,s,pad,r", [
    ((8, 8), 3, 1, 1, 2), ((8, 8), 3, 1, 1, 4), ((7, 9), 3, 1, 1, 2), ((7, 7), 3, 2, 1, 2),
    ((8, 8), 3, 2, 1, 4), ((6, 6), 1, 2, 0, 2), ((9, 9), 3, 1, 1, 3), ((5, 5), 3, 1, 1, 1)])
def test_gradient_filter_matches_loop_over_patches(hw, k, s, pad, r):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3) + hw)
    w = rng.standard_normal((4, 3, k, k))
    y = ops.conv_fp(x, w, None, s, pad)
    dy = rng.standard_normal(y.shape)
    dx_ref, dw_ref = _brute_gf(dy, x, w, r, s)
    np.testing.assert_allclose(mg.gf_conv_bp(dy, w, r, s, x.shape[2:]), dx_ref, rtol=1e-12,
                               atol=1e-12)
    np.testing.assert_allclose(mg.gf_conv_wu(dy, x, r, s, k), dw_ref, rtol=1e-12, atol=1e-12)


def test_gradient_filter_r1_on_1x1_conv_is_exact():
    """r = 1 on a 1x1 stride-1 conv filters nothing: the exact conv gradients."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 5, 6))
    w = rng.standard_normal((4, 3, 1, 1))
    dy = rng.standard_normal((2, 4, 5, 6))
    np.testing.assert_allclose(mg.gf_conv_bp(dy, w, 1, 1, (5, 6)),
                               ops.conv_bp(dy, w, 1, 0, (5, 6)), rtol=1e-12)
    np.testing.assert_allclose(mg.gf_conv_wu(dy, x, 1, 1, 1), ops.conv_wu(dy, x, 1, 0, 1),
                               rtol=1e-12)


def test_gradient_filter_in_a_step_uses_the_filtered_ops():
    net = load_net("resnet20")
    t = parse_training({"gradient_filter": {"r": 2, "last": 2}}, net)
    assert t.gradient_filter.layers == ("s3b3_a_conv", "s3b3_b_conv")
    st = init_state(net, seed=0, dtype=np.float64)
    x, y = synthetic_batch(net, 2, seed=1, dtype=np.float64)
    res = train_step(net, st, x, y, plan=StepPlan(t))
    tr = res.trace
    a = res_act = forward(net, st, x, y)[0]["s3b2_relu"]
    dy = tr["s3b3_a_conv:dy"]
    np.testing.assert_allclose(tr["s3b3_a_conv:grad.weight"],
                               mg.gf_conv_wu(dy, res_act, 2, 1, 3), rtol=1e-12)
    np.testing.assert_allclose(tr["s3b3_a_conv:dx"],
                               mg.gf_conv_bp(dy, st.params["s3b3_a_conv"]["weight"], 2, 1,
                                             a.shape[2:]), rtol=1e-12)
    # the unfiltered convs are untouched: their gradient is the exact one on their dy
    d2 = tr["s3b2_b_conv:dy"]
    a2 = forward(net, st, x, y)[0]["s3b2_a_relu"]
    np.testing.assert_allclose(tr["s3b2_b_conv:grad.weight"], ops.conv_wu(d2, a2, 1, 1, 3),
                               rtol=1e-12)


# ---- error-map pruning -------------------------------------------------------------------

def test_error_pruning_kept_channels_are_full_bp_on_the_masked_map():
    net = load_net("resnet20")
    t = parse_training({"error_pruning": {"keep": 0.7, "layers": ["s3b1_a_conv"]}}, net)
    st = init_state(net, seed=0, dtype=np.float64)
    x, y = synthetic_batch(net, 3, seed=1, dtype=np.float64)
    res = train_step(net, st, x, y, plan=StepPlan(t))
    tr = res.trace
    mask = tr["s3b1_a_conv:emp_mask"]
    assert mask.sum() == math.ceil(0.7 * 64) == 45
    dy = tr["s3b1_a_conv:dy"]
    w = st.params["s3b1_a_conv"]["weight"]
    # the kept set is the top scores
    sc = mg.emp_scores(dy, w, 1.0)
    assert sc[mask].min() >= sc[~mask].max()
    a = forward(net, st, x, y)[0]["s2b3_relu"]
    dm = mg.apply_channel_mask(dy, mask)
    gw = tr["s3b1_a_conv:grad.weight"]
    assert np.all(gw[~mask] == 0)                                  # pruned: exactly zero
    np.testing.assert_array_equal(gw, ops.conv_wu(dm, a, 2, 1, 3))  # kept: full BP on the mask
    np.testing.assert_array_equal(tr["s3b1_a_conv:dx"], ops.conv_bp(dm, w, 2, 1, a.shape[2:]))
    # keep = 1 prunes nothing: identical to plain back-propagation
    t1 = parse_training({"error_pruning": {"keep": 1.0, "layers": "all"}}, net)
    r1 = train_step(net, st, x, y, plan=StepPlan(t1))
    r0 = train_step(net, st, x, y)
    for k in r0.trace:
        np.testing.assert_array_equal(r1.trace[k], r0.trace[k], err_msg=k)


# ---- SMD, EIF ----------------------------------------------------------------------------

def test_dropped_minibatch_applies_momentum_and_weight_decay_only():
    net = load_net("tiny")
    st = init_state(net, seed=0, dtype=np.float64)
    x, y = synthetic_batch(net, 2, seed=1, dtype=np.float64)
    st = train_step(net, st, x, y).state            # a non-zero momentum buffer
    sgd = SGD(lr=0.1, momentum=0.9, weight_decay=1e-3)
    t = parse_training({"minibatch_drop": {"p": 0.5}}, net)
    res = method_step(net, st, x, y, sgd, StepPlan(t, drop=True))
    for lname, p in st.params.items():
        for n, v in p.items():
            want = v - 0.1 * (0.9 * st.velocity[lname][n] + 1e-3 * v)
            np.testing.assert_allclose(res.state.params[lname][n], want, rtol=1e-14)
    for lname, b in st.buffers.items():                 # no FP: statistics unchanged
        for n, v in b.items():
            np.testing.assert_array_equal(res.state.buffers[lname][n], v)
    t0 = parse_training({"minibatch_drop": {"p": 0.5, "update_on_drop": False}}, net)
    still = method_step(net, st, x, y, sgd, StepPlan(t0, drop=True))
    for lname, p in st.params.items():
        for n, v in p.items():
            np.testing.assert_array_equal(still.state.params[lname][n], v)
    kept = method_step(net, st, x, y, sgd, StepPlan(t, drop=False))
    assert kept.loss == train_step(net, st, x, y, sgd).loss


def test_instance_filter_trains_on_the_kept_instances():
    net = load_net("tiny")
    t = parse_training({"instance_filter": {"keep": 0.5, "filter_net": "tiny"}}, net)
    st = init_state(net, seed=0, dtype=np.float64)
    x, y = synthetic_batch(net, 6, seed=1, dtype=np.float64)
    keep = filter_keep(t, x, y, seed=4)
    assert keep.sum() == 3
    res = method_step(net, st, x, y, SGD(), StepPlan(t, keep_instances=keep))
    ref = train_step(net, st, x[keep], y[keep], SGD())
    assert res.loss == ref.loss
    for k in ref.trace:
        np.testing.assert_array_equal(res.trace[k], ref.trace[k])


# ---- SLU ---------------------------------------------------------------------------------

RES_NET = {
    "name": "resblock", "input": [2, 5, 5], "num_classes": 3,
    "layers": [
        {"name": "c0", "op": "conv", "out_channels": 3, "kernel": 3, "padding": 1},
        {"name": "bn0", "op": "batchnorm"}, {"name": "r0", "op": "relu"},
        {"name": "b1_a_conv", "op": "conv", "out_channels": 3, "kernel": 3, "padding": 1},
        {"name": "b1_a_bn", "op": "batchnorm"}, {"name": "b1_a_relu", "op": "relu"},
        {"name": "b1_b_conv", "op": "conv", "out_channels": 3, "kernel": 3, "padding": 1},
        {"name": "b1_b_bn", "op": "batchnorm"},
        {"name": "b1_add", "op": "add", "inputs": ["b1_b_bn", "r0"]},
        {"name": "b1_relu", "op": "relu"},
        {"name": "gap", "op": "avgpool", "global": True}, {"name": "flat", "op": "flatten"},
        {"name": "fc", "op": "linear", "out_features": 3}, {"name": "loss", "op": "softmax_ce"}]}


def _fd_check(loss_fn, grads, params, eps=1e-6, per_tensor=4):
    rng = np.random.default_rng(0)
    for lname, g in grads.items():
        for n, gv in g.items():
            p = params[lname][n]
            for flat in rng.choice(p.size, size=min(per_tensor, p.size), replace=False):
                idx = np.unravel_index(flat, p.shape)
                orig = p[idx]
                p[idx] = orig + eps
                lp = loss_fn()
                p[idx] = orig - eps
                lm = loss_fn()
                p[idx] = orig
                fd = (lp - lm) / (2 * eps)
                assert abs(fd - gv[idx]) <= 1e-6 + 1e-5 * abs(fd), (lname, n, idx, fd, gv[idx])


def test_layer_update_block_skip_is_exact_and_identity_when_all_kept():
    net = parse_net(RES_NET)
    assert [b.name for b in residual_blocks(net)] == ["b1"]
    t = parse_training({"layer_update": {"keep": {"b1": 0.5}}}, net)
    st = init_state(net, seed=0, dtype=np.float64)
    x, y = synthetic_batch(net, 5, seed=1, dtype=np.float64)
    none = StepPlan(t, skip={"b1": np.zeros(5, bool)})
    r0, r1 = train_step(net, st, x, y), train_step(net, st, x, y, plan=none)
    for k in r0.trace:
        np.testing.assert_array_equal(r1.trace[k], r0.trace[k], err_msg=k)
    skip = np.array([True, False, True, False, False])
    plan = StepPlan(t, skip={"b1": skip})
    res = train_step(net, st, x, y, plan=plan)
    acts = forward(net, st, x, y, plan=StepPlan(t, skip={"b1": skip}))[0]
    # skipped samples: the add passes the shortcut; the branch ran on 3 samples
    np.testing.assert_array_equal(acts["b1_add"][skip], acts["r0"][skip])
    assert acts["b1_a_conv"].shape[0] == 3
    # the step is the exact gradient of the gated net's loss
    loss = lambda: float(forward(net, st, x, y, plan=StepPlan(t, skip={"b1": skip}))  # noqa
                         [0]["loss"])
    grads = {k: {n: res.trace[f"{k}:grad.{n}"] for n in st.params[k]} for k in st.params}
    _fd_check(loss, grads, st.params)
    # every sample skips: the branch gets a zero gradient and no FP at all
    allskip = train_step(net, st, x, y, plan=StepPlan(t, skip={"b1": np.ones(5, bool)}))
    assert not np.any(allskip.trace["b1_a_conv:grad.weight"])
    assert "b1_a_conv:y" not in allskip.trace


def test_draw_plan_is_seeded_and_follows_the_ratios():
    net = load_net("resnet20")
    t = parse_training({"layer_update": {"keep": 0.7}, "minibatch_drop": {"p": 0.5}}, net)
    x, y = synthetic_batch(net, 64, seed=1)
    a, b = draw_plan(net, t, x, y, seed=5), draw_plan(net, t, x, y, seed=5)
    assert a.drop == b.drop and all(np.array_equal(a.skip[k], b.skip[k]) for k in a.skip)
    frac = np.mean([m.mean() for m in a.skip.values()])
    assert 0.2 < frac < 0.4                           # about 1 - 0.7 skipped
    drops = [draw_plan(net, t, x, y, seed=s).drop for s in range(200)]
    assert 70 < sum(drops) < 130


# ---- MobileTL ----------------------------------------------------------------------------

def test_bn_shift_only_is_exact_and_freezes_scale_and_statistics():
    """MobileTL: shift-only BNs normalise with frozen global statistics (an affine layer);
    the last BN of each residual branch trains in full. The step is the exact gradient of
    that forward pass."""
    net = parse_net(RES_NET)
    t = parse_training({"batchnorm": "shift_only"}, net)
    assert t.shift_bn_layers(net) == {"bn0", "b1_a_bn"}
    st = init_state(net, seed=0, dtype=np.float64)
    rng = np.random.default_rng(7)
    for lname, p in st.params.items():            # non-trivial BN parameters and statistics
        if "gamma" in p:
            p["gamma"][:] = np.linspace(0.5, 1.5, p["gamma"].size)
            p["beta"][:] = np.linspace(-0.2, 0.3, p["beta"].size)
            st.buffers[lname]["running_mean"][:] = rng.standard_normal(p["gamma"].size) * 0.1
            st.buffers[lname]["running_var"][:] = 1 + rng.random(p["gamma"].size)
    x, y = synthetic_batch(net, 4, seed=1, dtype=np.float64)
    res = train_step(net, st, x, y, plan=StepPlan(t))
    for name in ("bn0", "b1_a_bn"):
        assert f"{name}:grad.gamma" not in res.trace and f"{name}:mean" not in res.trace
        np.testing.assert_array_equal(res.state.params[name]["gamma"], st.params[name]["gamma"])
        for n, v in st.buffers[name].items():
            np.testing.assert_array_equal(res.state.buffers[name][n], v)
    assert "b1_b_bn:grad.gamma" in res.trace          # the branch's last BN: in full
    assert not np.array_equal(res.state.buffers["b1_b_bn"]["running_mean"],
                              st.buffers["b1_b_bn"]["running_mean"])
    # the shift-only BN is affine with the frozen statistics
    acts = forward(net, st, x, y, plan=StepPlan(t))[0]
    b = st.buffers["b1_a_bn"]
    g, be = st.params["b1_a_bn"]["gamma"], st.params["b1_a_bn"]["beta"]
    want = (acts["b1_a_conv"] - b["running_mean"][:, None, None]) / np.sqrt(
        b["running_var"][:, None, None] + 1e-5) * g[:, None, None] + be[:, None, None]
    np.testing.assert_allclose(acts["b1_a_bn"], want, rtol=1e-12)
    loss = lambda: float(forward(net, st, x, y, plan=StepPlan(t))[0]["loss"])  # noqa: E731
    assert abs(loss() - res.loss) < 1e-12
    grads = {k: {n: res.trace[f"{k}:grad.{n}"] for n in st.params[k]
                 if f"{k}:grad.{n}" in res.trace} for k in st.params}
    assert "beta" in grads["b1_a_bn"] and "gamma" not in grads["b1_a_bn"]
    _fd_check(loss, grads, st.params)


def test_one_bit_relu_masks_give_the_same_error():
    rng = np.random.default_rng(3)
    y = ops.relu_fp(rng.standard_normal((2, 3, 5, 7)))
    dy = rng.standard_normal(y.shape)
    bits = mg.pack_mask(y)
    assert bits.nbytes == math.ceil(y.size / 8)
    np.testing.assert_array_equal(mg.relu_bp_bits(dy, bits), ops.relu_bp(dy, y))
