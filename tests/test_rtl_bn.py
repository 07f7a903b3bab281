"""The reference RTL's batchnorm unit (bn_unit in efgen_top) against the numpy interpreter.

BN_FP (with and without FLAG_RELU) and BN_BP (FLAG_TRAIN with the SGD of gamma and beta
and the [dgamma, dbeta] copy at a[6]; FLAG_DX with and without FLAG_MASK; TRAIN alone)
run on random tensors whose channel count is not a multiple of the lane block, with
garbage in the pad lanes and the output regions beforehand. The whole DRAM image after
the runs must equal efgen.csim.interp's: bit for bit outside the descriptors' outputs,
and within BN_TOL (relative to max(1, |value|)) in them - the per-channel sums add in
order (images, then pixels), numpy's pairwise; every other operation is numpy's, in its
order. A descriptor the unit rejects (FLAG_SUMS; BN_FP over one element a channel)
writes nothing and ends with ERROR, code 2. Every run's CYCLES must be within 2% of the
model's (efgen.cosim.validate.bn_cycles).
"""

from __future__ import annotations


import numpy as np
import pytest
from conftest import require_tool as _require

from efgen.cosim import layers as cosim
from efgen.cosim.validate import bn_cycles
from efgen.cosim.vector import expected, run_descriptors
from efgen.hls.desc import make_desc
from efgen.layout import FeatureMapLayout
from efgen.rtl.dma import STATUS_ERROR, STATUS_REJECT_SHIFT
from efgen.rtl.engine import EngineParams
from efgen.rtl.top import RtlParams

#: the largest error in the outputs, relative to max(1, |value|): the sums' order
BN_TOL = 2e-5
MODEL_TOL = 0.02


def _params(tm, tn, layout="reshaped", axi_width=32) -> RtlParams:
    eng = EngineParams(tm=tm, tn=tn, ifm_depth=512, ofm_depth=256, wbuf_depth=256, kmax=3,
                       smax=4, impl="behav", wl_words=axi_width // 32)
    return RtlParams(eng, layout=layout, max_burst=16, axi_width=axi_width)


def _cases(lanes: int, shape, seed: int = 0):
    """(image, descriptors, output regions (start, words))."""
    rng = np.random.default_rng(seed)
    fm = FeatureMapLayout("blocked", lanes)
    B, C, H, W = shape
    n = fm.size(shape)
    stride = -(-n // 64) * 64 + 64
    vs = -(-4 * C // 64) * 64 + 64
    base = 1024
    x, dy, y, dx, dx2, y2 = [base + i * stride for i in range(6)]
    vb = base + 6 * stride
    g, bt, st, rm, rv, vel, dbg, st2 = [vb + i * vs for i in range(8)]
    mem = rng.standard_normal(vb + 9 * vs).astype(np.float32)
    mem[x:x + n] = mem[x:x + n] * 2 + 0.5
    mem[rv:rv + C] = np.abs(mem[rv:rv + C])
    mem[st2 + C:st2 + 2 * C] = np.abs(mem[st2 + C:st2 + 2 * C]) + 0.1   # a variance
    geo = dict(batch=B, in_c=C, in_h=H, in_w=W, out_c=C, out_h=H, out_w=W, lr=0.05,
               momentum=0.9, weight_decay=5e-4, eps=1e-5, bn_momentum=0.1)
    fp = {0: x, 1: g, 2: bt, 3: st, 4: rm, 5: rv, 7: y}
    descs = [
        make_desc("BN_FP", ["RELU"], a=fp, **geo),
        make_desc("BN_BP", ["TRAIN", "DX"], a={0: dy, 1: x, 2: st, 3: g, 4: bt, 5: vel, 6: dbg,
                                              7: dx}, **geo),
        make_desc("BN_BP", ["DX", "MASK"], a={0: dy, 1: x, 2: st2, 3: g, 4: bt, 7: dx2}, **geo),
        make_desc("BN_BP", ["TRAIN"], a={0: dx, 1: x, 2: st, 3: g, 4: bt, 5: vel}, **geo),
        make_desc("BN_FP", [], a={**fp, 0: dx2, 7: y2}, **geo),
    ]
    outs = [(y, n), (dx, n), (dx2, n), (y2, n), (st, 2 * C), (rm, C), (rv, C), (g, C), (bt, C),
            (vel, 2 * C), (dbg, 2 * C)]
    rejects = [make_desc("BN_BP", ["SUMS", "DX"], a={0: dy, 1: x, 2: st, 3: g, 4: bt, 7: y},
                         **geo),
               make_desc("BN_FP", [], a={**fp, 7: y}, **{**geo, "batch": 1, "in_h": 1,
                                                          "in_w": 1})]
    return mem, descs, rejects, outs




def check(p, shape, sim, tmp_path, seed=0):
    _require("verilator" if sim == "verilator" else "iverilog")
    mem, descs, rejects, outs = _cases(p.tl, shape, seed)
    want = expected(mem, descs, p.tl).astype(np.float64)
    got, runs = run_descriptors(p, mem, descs + rejects, workdir=tmp_path, sim=sim)
    for i, r in enumerate(runs[:len(descs)]):
        assert r["status"] & STATUS_ERROR == 0, (i, hex(r["status"]))
    for r in runs[len(descs):]:
        st = r["status"]
        assert st & STATUS_ERROR and (st >> STATUS_REJECT_SHIFT) & 0xF == 2, hex(st)
    inside = np.zeros(got.size, bool)
    for a, n in outs:
        inside[a:a + n] = True
    bad = np.flatnonzero((got.view(np.uint32) != want.astype(np.float32).view(np.uint32))
                         & ~inside)
    assert bad.size == 0, f"{bad.size} words outside the outputs differ, first at {bad[:8]}"
    err = np.abs(got - want) / np.maximum(1.0, np.abs(want))
    assert np.all(np.isfinite(got[inside]))
    print("max error", float(err.max()))
    assert err.max() <= BN_TOL, (float(err.max()), np.flatnonzero(err > BN_TOL)[:8])
    model = [bn_cycles(p, d) for d in descs]
    print("cycles", [r["cycles"] for r in runs], "model", model)
    for d, m, r in zip(descs, model, runs):
        assert abs(m - r["cycles"]) <= MODEL_TOL * r["cycles"], (d.op, d.flags, m, r["cycles"])
    return float(err.max())


# 4x4 blocked (T = 4; C = 6: 2 pad lanes), 32- and 128-bit AXI (beat_unpack/beat_pack)
@pytest.mark.parametrize("axi", [32, 128])
def test_bn_ops_match_the_interpreter(axi, tmp_path, build_cache):
    check(_params(4, 4, axi_width=axi), (2, 6, 3, 5), "icarus", tmp_path)


# one lane (NCHW, T = 1: the accumulating passes wait for each sum); 16x16 (T = 16: C
# below one block) with a larger N*H*W on Verilator
@pytest.mark.parametrize("tm,tn,layout,shape,sim", [
    (2, 4, "nchw", (2, 3, 4, 5), "icarus"),
    (16, 16, "reshaped", (4, 10, 8, 8), "verilator"),
    (4, 4, "reshaped", (3, 9, 8, 8), "verilator"),
], ids=["2x4-nchw", "16x16", "4x4-nhw192"])
def test_bn_ops_more_geometries(tm, tn, layout, shape, sim, tmp_path, build_cache):
    check(_params(tm, tn, layout), shape, sim, tmp_path, seed=1)


def test_bn_model_counts_the_program():
    """The model walks the micro-program: one more channel block adds a block's steps;
    FLAG_DX adds BN_BP's dx pass, FLAG_TRAIN its SGD."""
    p = _params(4, 4)
    geo = dict(batch=2, in_c=4, in_h=3, in_w=5)
    a = {i: 1 for i in range(8)}
    one = bn_cycles(p, make_desc("BN_FP", a=a, **geo))
    two = bn_cycles(p, make_desc("BN_FP", a=a, **{**geo, "in_c": 8}))
    assert two > 1.8 * one - 200
    bp = bn_cycles(p, make_desc("BN_BP", a=a, **geo))
    assert bn_cycles(p, make_desc("BN_BP", ["DX"], a=a, **geo)) > bp + 2 * 60
    assert bn_cycles(p, make_desc("BN_BP", ["TRAIN"], a=a, **geo)) > bp + 12 * 8
