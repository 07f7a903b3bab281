"""The restructured step, tile by tile through the DRAM layouts
(efgen/golden/restructured.py), equals the golden training step: every tensor it
stores or its loaders compute, every gradient, updated parameter and momentum, and the
BN statistics and running statistics."""

from __future__ import annotations

import numpy as np
import pytest

from efgen.csim.verdict import decision_flips
from efgen.frontend import load_net
from efgen.golden.model import SGD, cast_state, init_state, synthetic_batch, train_step
from efgen.golden.restructured import restructured_step
from efgen.golden.tiled import Tiling
from efgen.model import restructure as R


def _plans(net):
    return {"initial": R.initial_plan(net),
            # every group and BN dx through a vector pass: the other side of each decision
            "materialised": R.Plan(frozenset(R.groups(net)), frozenset(R.dx_candidates(net)))}


def _compare(net, batch, dtype, plan, tiling, seed=0, fm_kind="blocked"):
    state = cast_state(init_state(net, seed), dtype)
    x, labels = synthetic_batch(net, batch, seed)
    x = x.astype(dtype)
    gold = train_step(net, state, x, labels, SGD())
    got = restructured_step(net, state, x, labels, SGD(), plan, tiling, fm_kind=fm_kind)
    errs = {}
    for k, v in got.tensors.items():
        ref = gold.trace[k]
        errs[k] = float(np.max(np.abs(v.reshape(ref.shape) - ref))
                        / (np.max(np.abs(ref)) + 1e-30))
    # nothing the step updates is left out
    want = [k for k in gold.trace if ":new." in k or ":vel." in k or ":grad." in k
            or k.endswith((":mean", ":var"))]
    assert set(want) <= set(got.tensors), sorted(set(want) - set(got.tensors))
    for l in net:
        if l.op not in ("softmax_ce",):
            assert f"{l.name}:y" in got.tensors, l.name
    return gold, got, errs


@pytest.mark.parametrize("plan", ["initial", "materialised"])
@pytest.mark.parametrize("tiling,fm_kind", [((8, 4, 3, 5), "blocked"), ((4, 4, 16, 16), "nchw")])
def test_tiny_float64(plan, tiling, fm_kind):
    net = load_net("tiny")
    gold, got, errs = _compare(net, 3, np.float64, _plans(net)[plan], Tiling(*tiling),
                               fm_kind=fm_kind)
    assert max(errs.values()) < 1e-10, sorted(errs.items(), key=lambda t: -t[1])[:3]
    assert abs(got.loss - gold.loss) < 1e-12
    # the stored errors include the finalised sums (pool1 has two senders)
    assert "pool1:dy" in got.tensors and "relu3:dx" in got.tensors


@pytest.mark.parametrize("name", ["resnet20", "resnet20-b"])
def test_resnets_float64(name):
    net = load_net(name)
    plan = R.initial_plan(net)
    gold, got, errs = _compare(net, 2, np.float64, plan, Tiling(16, 8, 16, 32))
    assert max(errs.values()) < 1e-10, sorted(errs.items(), key=lambda t: -t[1])[:3]
    # the block outputs are materialised (each written with its add by the BN's pass),
    # the blocks' inner BN/ReLU fused into the second conv's loads; the block output's
    # error is summed in the next block's first conv's BP store
    assert "s1b1_relu" in plan.materialise and "s1b1_a_relu" not in plan.materialise
    assert "s1b1_relu:dx" in got.tensors


def test_decided_plan_with_a_materialised_dx_float64():
    net = load_net("resnet20")
    plan = R.Plan(R.initial_plan(net).materialise, frozenset({"s2b1_a_bn", "conv1_bn"}))
    _, got, errs = _compare(net, 2, np.float64, plan, Tiling(16, 16, 8, 8))
    assert max(errs.values()) < 1e-10
    assert "s2b1_a_bn:dx" in got.tensors and "s2b1_b_bn:dx" not in got.tensors


@pytest.mark.parametrize("name,batch,seed,tiling", [("tiny", 4, 0, (8, 4, 3, 5)),
                                                    ("resnet20", 2, 1, (16, 8, 16, 32))])
def test_float32(name, batch, seed, tiling):
    """float32: the BN statistics come from one-pass sums (shifted by the running mean),
    so values differ from the golden's two-pass ones in the last bits; a ReLU decision
    at a golden value of exactly 0 may then flip (README.md: resnet20 at seed 0 does).
    These cases flip none, which the test checks first."""
    net = load_net(name)
    gold, got, errs = _compare(net, batch, np.float32, R.initial_plan(net), Tiling(*tiling),
                               seed=seed)
    assert decision_flips(net, gold.trace, got.tensors) == []
    assert max(errs.values()) < 1e-4, sorted(errs.items(), key=lambda t: -t[1])[:3]


@pytest.mark.parametrize("name,tiling", [("resnet20-b", (16, 8, 4, 8)), ("tiny", (8, 8, 6, 6)),
                                         ("resnet20-b", (16, 8, 3, 8)), ("tiny", (8, 8, 5, 5))])
def test_model_streams_are_the_words_the_reference_reads(name, tiling):
    """The model's words of every conv layer-phase's loads (with their second streams)
    and of the BP stores' extra reads equal what the reference's loaders read from DRAM.
    (WU: the reference reloads each error tile per reduction block, the model's engine
    once per tile: a factor NB. Odd tile sizes too: for stride-2 BP the middle tiles
    load alternately more and fewer error rows, and the model counts each kind.)"""
    from dataclasses import replace

    from efgen.frontend.boards import load_board
    from efgen.model import engine
    from efgen.model.evaluate import ddr_bytes_per_cycle
    from efgen.model.schedule import Request, base_hw

    net = load_net(name)
    t = Tiling(*tiling)
    board = load_board("zcu102")
    hw = replace(base_hw(Request(net=net, board=board, clock_mhz=100.0)), tm=t.tm, tn=t.tn,
                 ifm_depth=8192, ofm_depth=8192, wbuf_depth=4096, fuse=True)
    plan = R.initial_plan(net)
    state = init_state(net, 0, np.float64)
    x, labels = synthetic_batch(net, 2, 0)
    got = restructured_step(net, state, x.astype(np.float64), labels, SGD(), plan, t)
    jobs = [j for j in R.fused_jobs(net, 2, plan) if net[j.layer].op == "conv"]
    tiles = [(t.tr, t.tc, 1, "wo")] * len(jobs)
    ddr = ddr_bytes_per_cycle(board, 100)
    res = engine.evaluate_chosen(jobs, tiles, hw, 4, ddr, "reshaped")
    plain = [replace(j, in_extra=0, eo_extra=0, st_extra=0, xf=0, acc=0) for j in jobs]
    res0 = engine.evaluate_chosen(plain, tiles, hw, 4, ddr, "reshaped")
    seen = {"extra_in": 0, "extra_store": 0, "extra_err": 0}
    for i, j in enumerate(jobs):
        w = lambda s: got.words.get((j.layer, j.phase, s), 0)  # noqa: E731
        assert w("in") == res["in_words"][i] * (1 + j.in_extra), (j.layer, j.phase)
        if j.phase == "bp":
            assert w("store") == res["out_words"][i] * j.st_extra, (j.layer, j.phase)
            seen["extra_store"] += j.st_extra
        if j.phase == "wu":
            nb = -(-j.red // hw.tn)
            assert w("err") == res["out_words"][i] * (1 + j.eo_extra) * nb, (j.layer, j.phase)
            seen["extra_err"] += j.eo_extra
        seen["extra_in"] += j.in_extra
        # the reads the model prices beyond the unfused job's: these streams (and the
        # per-channel constants of the load transforms)
        extra = (w("in") - res0["in_words"][i] + w("store")
                 + (w("err") / nb - res0["out_words"][i] if j.phase == "wu" else 0))
        assert res["read_words"][i] - res0["read_words"][i] - res["fx_const_words"][i] \
            == pytest.approx(extra, abs=0.5), (j.layer, j.phase)
    assert all(v > 0 for v in seen.values()), seen     # every kind of stream was checked
