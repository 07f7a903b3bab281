"""The reference RTL's batchnorm unit (bn_unit in efgen_top) against the numpy interpreter.

BN_FP (with and without FLAG_RELU) and BN_BP (FLAG_TRAIN with the SGD of gamma and beta
and the [dgamma, dbeta] copy at a[6]; FLAG_DX with and without FLAG_MASK; TRAIN alone)
run on random tensors whose channel count is not a multiple of the lane block, with
garbage in the pad lanes and the output regions beforehand. The whole DRAM image after
the runs must equal efgen.csim.interp's: bit for bit outside the descriptors' outputs,
and within BN_TOL (relative to max(1, |value|)) in them - the per-channel sums add in
order (images, then pixels), numpy's pairwise; every other operation is numpy's, in its
order. The restructured BN's descriptors (BN_FIN without y, with y, FLAG_RELU, FLAG_ADDX;
BN_BP with FLAG_SUMS, FLAG_DXK, both) run first, on the image's inputs: they add no sums
(BN_FIN's come from the shifted sums a FLAG_STATS store writes, here computed by
efgen.hls.fused.stats_sums), so their outputs must be bit-exact (but DXK's dbeta, dgamma
without SUMS: the BD pass's sums). A descriptor the unit rejects (FLAG_SUMS on BN_FP;
BN_FP or BN_FIN over one element a channel; BN_FIN's x2 address beyond the bus) writes
nothing and ends with ERROR, code 2. Every run's CYCLES must be within 2% of the model's
(efgen.cosim.validate.bn_cycles).
"""

from __future__ import annotations


import numpy as np
import pytest
from conftest import require_tool as _require

from efgen.cosim import layers as cosim
from efgen.cosim.validate import bn_cycles
from efgen.cosim.vector import expected, run_descriptors
from efgen.hls import fused
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
    """(image, descriptors, rejected descriptors, output regions (start, words), the
    restructured BN's output regions)."""
    rng = np.random.default_rng(seed)
    fm = FeatureMapLayout("blocked", lanes)
    B, C, H, W = shape
    n = fm.size(shape)
    stride = -(-n // 64) * 64 + 64
    vs = -(-8 * C // 64) * 64 + 64
    base = 1024
    x, dy, y, dx, dx2, y2, y3, y4, y5, dx3 = [base + i * stride for i in range(10)]
    vb = base + 10 * stride
    (g, bt, st, rm, rv, vel, dbg, st2, st3, rm2, rv2, blk, blk2, st4, dxk1,
     dxk2) = [vb + i * vs for i in range(16)]
    mem = rng.standard_normal(vb + 17 * vs).astype(np.float32)
    mem[x:x + n] = mem[x:x + n] * 2 + 0.5
    for v in (rv, rv2):
        mem[v:v + C] = np.abs(mem[v:v + C])
    for v in (st2, st4):
        mem[v + C:v + 2 * C] = np.abs(mem[v + C:v + 2 * C]) + 0.1   # a variance
    # BN_FIN's block: the shifted sums of x about k (the running mean at rm2), what a
    # FLAG_STATS store accumulates, and x2's address (dy) at 8C, as an int64
    xs = fm.unpack(mem[x:x + n], shape)
    mem[blk:blk + 2 * C] = fused.stats_sums(xs, mem[rm2:rm2 + C])
    mem[blk + 8 * C:blk + 8 * C + 2] = np.array([dy, 0], np.uint32).view(np.float32)
    mem[blk2:blk2 + 2 * C] = mem[blk:blk + 2 * C]
    mem[blk2 + 8 * C:blk2 + 8 * C + 2] = np.array([dy, 1], np.uint32).view(np.float32)
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
    # the restructured BN: BN_FIN without and with y (RELU, plain, ADDX + RELU); BN_BP with
    # the sums read (FLAG_SUMS), the dx constants written (FLAG_DXK), both
    fin = {0: x, 1: g, 2: bt, 3: st3, 4: rm2, 5: rv2, 6: blk}
    bp4 = {0: dy, 1: x, 2: st4, 3: g, 4: bt}
    rdescs = [
        make_desc("BN_FIN", [], a=fin, **geo),
        make_desc("BN_FIN", ["RELU"], a={**fin, 7: y3}, **geo),
        make_desc("BN_FIN", [], a={**fin, 7: y4}, **geo),
        make_desc("BN_FIN", ["RELU", "ADDX"], a={**fin, 7: y5}, **geo),
        make_desc("BN_BP", ["SUMS", "DX", "TRAIN"], a={**bp4, 5: vel, 6: dbg, 7: dx3}, **geo),
        make_desc("BN_BP", ["DXK"], a={**bp4, 2: st2, 7: dxk1}, **geo),
        make_desc("BN_BP", ["SUMS", "DXK", "TRAIN"], a={**bp4, 5: vel, 7: dxk2}, **geo),
    ]
    # (bit-exact: every operation is numpy's, in its order; but DXK without SUMS's
    # dbeta, dgamma, the BD pass's sums)
    routs = [(y3, n), (y4, n), (y5, n), (dx3, n), (blk + 2 * C, 4 * C), (st3, 2 * C),
             (rm2, C), (rv2, C), (dxk1, 4 * C), (dxk1 + 6 * C, 2 * C), (dxk2, 8 * C)]
    outs_sums = [(dxk1 + 4 * C, 2 * C)]
    outs = [(y, n), (dx, n), (dx2, n), (y2, n), (st, 2 * C), (rm, C), (rv, C), (g, C), (bt, C),
            (vel, 2 * C), (dbg, 2 * C)] + routs + outs_sums
    one = {"batch": 1, "in_h": 1, "in_w": 1}
    rejects = [make_desc("BN_FP", ["SUMS"], a={**fp, 7: y}, **geo),
               make_desc("BN_FP", [], a={**fp, 7: y}, **{**geo, **one}),
               make_desc("BN_FIN", [], a={**fin, 7: y}, **{**geo, **one}),
               # x2's address beyond the bus (its high word 1)
               make_desc("BN_FIN", ["ADDX"], a={**fin, 6: blk2, 7: y}, **geo)]
    # the restructured BN's first: on the image's inputs, not on BN_BP's rounded sums
    return mem, rdescs + descs, rejects, outs, routs




def check(p, shape, sim, tmp_path, seed=0):
    _require("verilator" if sim == "verilator" else "iverilog")
    mem, descs, rejects, outs, routs = _cases(p.tl, shape, seed)
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
    rin = np.zeros(got.size, bool)
    for a, n in routs:
        rin[a:a + n] = True
    print("max error", float(err.max()), "words not bit-exact",
          int(np.count_nonzero(got[inside] != want[inside])), "of", int(inside.sum()))
    # the restructured BN's outputs (run first, on the image's inputs): bit for bit
    bad = np.flatnonzero((got.view(np.uint32) != want.astype(np.float32).view(np.uint32))
                         & rin)
    assert bad.size == 0, f"{bad.size} restructured BN words differ, first at {bad[:8]}"
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


def test_bn_model_counts_the_restructured_programs():
    """BN_FIN makes no pass without a[7], one writing pass with it (FLAG_ADDX: the x2
    address read and a longer chain); FLAG_SUMS drops BN_BP's sums pass, FLAG_DXK adds
    its eight vector writes (and no dx pass, even with FLAG_DX: no block then)."""
    p = _params(4, 4)
    geo = dict(batch=2, in_c=8, in_h=6, in_w=5)
    a = {i: 64 * (i + 1) for i in range(8)}
    hwt = 2 * 6 * 5 * 4
    fp = bn_cycles(p, make_desc("BN_FP", a=a, **geo))
    fin0 = bn_cycles(p, make_desc("BN_FIN", a={**a, 7: 0}, **geo))
    fin = bn_cycles(p, make_desc("BN_FIN", a=a, **geo))
    finx = bn_cycles(p, make_desc("BN_FIN", ["ADDX"], a=a, **geo))
    assert fin0 < fp - 2 * hwt and fin > fin0 + hwt and finx > fin + 6
    assert bn_cycles(p, make_desc("BN_FIN", ["ADDX"], a={**a, 7: 0}, **geo)) == fin0
    bp = bn_cycles(p, make_desc("BN_BP", a=a, **geo))
    sums = bn_cycles(p, make_desc("BN_BP", ["SUMS"], a=a, **geo))
    assert sums < bp - hwt
    dxk = bn_cycles(p, make_desc("BN_BP", ["DXK"], a=a, **geo))
    assert dxk > bp + 2 * 8 * 9
    assert bn_cycles(p, make_desc("BN_BP", ["DXK", "DX"], a=a, **geo)) == \
        bn_cycles(p, make_desc("BN_BP", ["DX"], a=a, **geo))
