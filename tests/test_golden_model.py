"""The golden training step: whole-net finite differences, trace completeness,
frozen layers, float32/float64 agreement, and that training actually trains."""

import numpy as np
import pytest

from efgen.frontend import load_net
from efgen.golden.model import (
    SGD,
    cast_state,
    forward,
    grad_norms,
    init_state,
    synthetic_batch,
    train_step,
)


def _loss(net, state, x, labels):
    _, _, trace = forward(net, state, x, labels, train=True)
    return float(trace[f"{net.loss_layer.name}:loss"])


@pytest.mark.parametrize("netname,train_last", [("tiny", None), ("tiny", 3), ("lenet5", None)])
def test_whole_net_finite_differences(netname, train_last):
    """Every parameter gradient of the whole net against central differences (float64)."""
    net = load_net(netname, train_last=train_last)
    state = init_state(net, seed=3, dtype=np.float64)
    x, labels = synthetic_batch(net, 3, seed=4, dtype=np.float64)
    res = train_step(net, state, x, labels, SGD(lr=0.0, momentum=0.0, weight_decay=0.0))
    rng = np.random.default_rng(0)
    eps = 1e-6
    worst = 0.0
    checked = 0
    for layer in net:
        for pname, p in state.params.get(layer.name, {}).items():
            key = f"{layer.name}:grad.{pname}"
            if not layer.trainable:
                assert key not in res.trace
                continue
            g = res.trace[key]
            assert g.shape == p.shape and g.dtype == np.float64
            for flat in rng.choice(p.size, size=min(6, p.size), replace=False):
                idx = np.unravel_index(flat, p.shape)
                orig = p[idx]
                p[idx] = orig + eps
                lp = _loss(net, state, x, labels)
                p[idx] = orig - eps
                lm = _loss(net, state, x, labels)
                p[idx] = orig
                fd = (lp - lm) / (2 * eps)
                # Relative error; entries below 1e-4 (e.g. a conv bias feeding BN, whose
                # gradient is exactly zero) are judged against 1e-4, since the loss's
                # round-off alone puts ~1e-10 of noise on a central difference.
                err = abs(fd - g[idx]) / max(abs(fd) + abs(g[idx]), 1e-4)
                worst = max(worst, err)
                checked += 1
    assert checked > 20
    assert worst < 1e-5, worst


def test_trace_is_complete_for_tiny():
    net = load_net("tiny")
    state = init_state(net, seed=0)
    x, labels = synthetic_batch(net, 2)
    tr = train_step(net, state, x, labels).trace
    for l in net:
        if l.op != "softmax_ce":
            assert f"{l.name}:y" in tr
            assert f"{l.name}:dy" in tr  # everything is downstream of conv1
        if l.runs_bp and l.op != "softmax_ce":
            assert f"{l.name}:dx" in tr
        for p in l.param_shapes():
            assert f"{l.name}:grad.{p}" in tr and f"{l.name}:new.{p}" in tr
        if l.op == "batchnorm":
            for k in ("mean", "var", "new.running_mean", "new.running_var"):
                assert f"{l.name}:{k}" in tr
    assert "conv1:dx" not in tr  # BP stops at the lowest trainable layer
    assert all(v.dtype == np.float32 for k, v in tr.items() if not k.endswith(":argmax"))


def test_frozen_prefix_is_untouched():
    net = load_net("resnet20", train_last=2)
    state = init_state(net, seed=1)
    x, labels = synthetic_batch(net, 2)
    res = train_step(net, state, x, labels)
    trained = {l.name for l in net if l.trainable}
    assert trained == {"s3b3_b_conv", "s3b3_b_bn", "fc"}
    for lname, params in state.params.items():
        for pname, p in params.items():
            same = np.array_equal(res.state.params[lname][pname], p)
            assert same == (lname not in trained), (lname, pname)
    assert not any(k.endswith(":dx") and k.startswith("s3b3_b_conv") for k in res.trace)
    assert "s3b2_relu:dy" not in res.trace
    # Frozen BN still normalises with batch statistics and tracks running statistics.
    assert not np.array_equal(res.state.buffers["conv1_bn"]["running_mean"],
                              state.buffers["conv1_bn"]["running_mean"])


def test_float32_agrees_with_float64():
    net = load_net("tiny")
    s64 = init_state(net, seed=2, dtype=np.float64)
    x64, labels = synthetic_batch(net, 4, seed=5, dtype=np.float64)
    r64 = train_step(net, s64, x64, labels).trace
    r32 = train_step(net, cast_state(s64, np.float32), x64.astype(np.float32), labels).trace
    for k, ref in r64.items():
        if k.endswith(":argmax"):
            assert np.array_equal(r32[k], ref), k
            continue
        err = np.max(np.abs(r32[k] - ref)) / (np.max(np.abs(ref)) + 1e-12)
        assert err < 1e-4, (k, err)


def test_sgd_step_matches_formula():
    net = load_net("tiny")
    state = init_state(net, seed=0, dtype=np.float64)
    x, labels = synthetic_batch(net, 2, dtype=np.float64)
    sgd = SGD(lr=0.1, momentum=0.9, weight_decay=1e-3)
    r1 = train_step(net, state, x, labels, sgd)
    g = r1.trace["fc:grad.weight"]
    w = state.params["fc"]["weight"]
    v1 = g + 1e-3 * w
    np.testing.assert_allclose(r1.state.params["fc"]["weight"], w - 0.1 * v1, rtol=1e-12)
    r2 = train_step(net, r1.state, x, labels, sgd)
    w1 = r1.state.params["fc"]["weight"]
    v2 = 0.9 * v1 + r2.trace["fc:grad.weight"] + 1e-3 * w1
    np.testing.assert_allclose(r2.state.velocity["fc"]["weight"], v2, rtol=1e-12)


def test_running_statistics_update():
    net = load_net("tiny")
    state = init_state(net, seed=0, dtype=np.float64)
    x, labels = synthetic_batch(net, 4, dtype=np.float64)
    res = train_step(net, state, x, labels)
    a = res.trace["conv1:y"]  # bn1's input
    n = a.shape[0] * a.shape[2] * a.shape[3]
    mean = a.mean(axis=(0, 2, 3))
    var_unbiased = a.var(axis=(0, 2, 3)) * n / (n - 1)
    np.testing.assert_allclose(res.state.buffers["bn1"]["running_mean"], 0.1 * mean, rtol=1e-12)
    np.testing.assert_allclose(res.state.buffers["bn1"]["running_var"],
                               0.9 + 0.1 * var_unbiased, rtol=1e-12)


def test_training_reduces_loss_on_a_fixed_batch():
    net = load_net("tiny")
    state = init_state(net, seed=0)
    x, labels = synthetic_batch(net, 8, seed=1)
    losses = []
    for _ in range(15):
        res = train_step(net, state, x, labels, SGD(lr=0.05, momentum=0.9, weight_decay=0.0))
        losses.append(res.loss)
        state = res.state
    assert losses[-1] < 0.5 * losses[0], losses


def test_inference_mode_uses_running_statistics():
    net = load_net("tiny")
    state = init_state(net, seed=0, dtype=np.float64)
    state.buffers["bn1"]["running_mean"][:] = 0.5
    x, _ = synthetic_batch(net, 2, dtype=np.float64)
    acts, _, _ = forward(net, state, x, None, train=False)
    c = acts["conv1"]
    expect = (c - 0.5) / np.sqrt(1.0 + 1e-5)
    np.testing.assert_allclose(acts["bn1"], expect, rtol=1e-12)
    np.testing.assert_allclose(acts["loss"].sum(axis=1), 1.0)


def test_grad_norms_cover_trained_layers():
    net = load_net("lenet5", train_last=2)
    state = init_state(net)
    x, labels = synthetic_batch(net, 2)
    norms = grad_norms(net, train_step(net, state, x, labels).trace)
    assert list(norms) == ["f6", "out"] and all(v > 0 for v in norms.values())
