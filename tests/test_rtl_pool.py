"""The reference RTL's pooling unit (pool_unit in efgen_top) against the numpy interpreter.

MAXPOOL_FP / MAXPOOL_BP (2x2/s2, 3x3/s2 with padding: overlapping windows), AVGPOOL_FP /
AVGPOOL_BP (2x2/s2, one contiguous 4x4 window as resnet20's 8x8 pool, tiny's 2x2 on 2x2,
the global mean with kh != kw), SHORTCUT_FP / SHORTCUT_BP (option A: stride 2, zero-padded
channels as resnet20's, and as tiny's 6 -> 10), FLATTEN_FP / FLATTEN_BP (a block with pad
lanes and pad words on the flat side; lenet5's 16 x 5 x 5; also at 128 bits, with two
flattens the unit rejects), the BP ops with and without FLAG_MASK, on
random tensors whose channel count is not a multiple of the lane block, garbage in the
input pad lanes and in the outputs beforehand. The whole DRAM image after the runs must
equal efgen.csim.interp's (equal values, bit for bit up to the sign of zero; pad lanes 0;
nothing outside the outputs written). A descriptor the unit cannot run (AVGPOOL 3x3: not a
power-of-two divisor) writes nothing and ends with ERROR, code 2. Every run's CYCLES must
be within 5% of the model's (efgen.cosim.validate.pool_cycles).
"""

from __future__ import annotations


import numpy as np
import pytest
from conftest import require_tool as _require

from efgen.cosim import layers as cosim
from efgen.cosim.validate import pool_cycles
from efgen.cosim.vector import expected, run_descriptors
from efgen.hls.desc import make_desc
from efgen.layout import FeatureMapLayout
from efgen.rtl.dma import STATUS_ERROR, STATUS_REJECT_SHIFT
from efgen.rtl.engine import EngineParams
from efgen.rtl.top import RtlParams


def _params(tm, tn, layout="reshaped", axi_width=32) -> RtlParams:
    eng = EngineParams(tm=tm, tn=tn, ifm_depth=512, ofm_depth=256, wbuf_depth=256, kmax=3,
                       smax=4, impl="behav", wl_words=axi_width // 32)
    return RtlParams(eng, layout=layout, max_burst=16, axi_width=axi_width)


class _Image:
    """A DRAM image of random words with page-aligned regions."""

    def __init__(self, lanes, seed):
        self.fm = FeatureMapLayout("blocked", lanes)
        self.rng = np.random.default_rng(seed)
        self.top = 1024
        self.chunks = []

    def region(self, shape, fill="normal"):
        n = self.fm.size(shape)
        at = self.top
        self.top += -(-n // 1024) * 1024 + 1024
        if fill == "normal":
            v = self.rng.standard_normal(n).astype(np.float32) * 3
        else:                 # a mask: some > 0, some 0, some < 0
            v = self.rng.choice(np.float32([0, 1.5, -2.0, 0.25]), n)
        self.chunks.append((at, v))
        return at

    def mem(self):
        m = self.rng.standard_normal(self.top).astype(np.float32) * 5
        for at, v in self.chunks:
            m[at:at + v.size] = v
        return m


def _cases(lanes: int, seed: int = 0, small: bool = False, flat_only: bool = False):
    """(image, descriptors, a descriptor pool_unit rejects); ``small``: every kind on
    smaller tensors (Icarus); ``flat_only``: the flatten cases, and a list of flatten
    descriptors it rejects (a plane larger than the row buffer, out_c != C*H*W)."""
    im = _Image(lanes, seed)
    descs = []

    def pool(kind, X, k, s, p, Y, mask=False, kw=None):
        B, C, H, W = X
        x = im.region(X)
        y = im.region(Y)
        geo = dict(batch=B, in_c=C, in_h=H, in_w=W, out_c=Y[1], out_h=Y[2], out_w=Y[3],
                   kh=k, kw=kw or k, stride=s, pad=p)
        if kind == "MAXPOOL":
            arg = im.region(Y)
            descs.append(make_desc("MAXPOOL_FP", a={0: x, 6: arg, 7: y}, **geo))
            src = {0: im.region(Y), 1: arg}
        else:
            descs.append(make_desc(f"{kind}_FP", a={0: x, 7: y}, **geo))
            src = {0: im.region(Y)}
        for m in ((False, True) if mask else (False,)):
            a = {**src, 7: im.region(X)}
            if m:
                a[6] = im.region(X, "mask")
            descs.append(make_desc(f"{kind}_BP", ["MASK"] if m else [], a=a, **geo))

    def flat(X, mask=False):
        """FLATTEN_FP X -> (B, C*H*W, 1, 1), FLATTEN_BP back (with and without the mask)."""
        B, C, H, W = X
        Y = (B, C * H * W, 1, 1)
        geo = dict(batch=B, in_c=C, in_h=H, in_w=W, out_c=C * H * W, out_h=1, out_w=1,
                   kh=1, kw=1, stride=1, pad=0)
        descs.append(make_desc("FLATTEN_FP", a={0: im.region(X), 7: im.region(Y)}, **geo))
        dy = im.region(Y)
        for m in ((False, True) if mask else (False,)):
            a = {0: dy, 7: im.region(X)}
            if m:
                a[6] = im.region(X, "mask")
            descs.append(make_desc("FLATTEN_BP", ["MASK"] if m else [], a=a, **geo))

    if flat_only:
        flat((2, 6, 3, 3), mask=True)
        flat((1, 16, 5, 5), mask=True)         # lenet5's flatten at batch 1
        big = dict(batch=1, in_c=4, in_h=24, in_w=24, out_c=4 * 24 * 24, out_h=1, out_w=1,
                   kh=1, kw=1, stride=1, pad=0)  # a 2304-word plane (T = 4)
        bad = dict(big, in_h=5, in_w=5, out_c=4 * 25 + 1)
        rejects = [make_desc("FLATTEN_FP", a={0: im.region((1, 4, 24, 24)),
                                              7: im.region((1, 4 * 576, 1, 1))}, **big),
                   make_desc("FLATTEN_BP", a={0: im.region((1, 101, 1, 1)),
                                              7: im.region((1, 4, 5, 5))}, **bad)]
        return im.mem(), descs, rejects
    if small:
        flat((1, 3, 2, 3), mask=True)
        pool("MAXPOOL", (1, 3, 4, 4), 2, 2, 0, (1, 3, 2, 2), mask=True)
        pool("MAXPOOL", (1, 3, 5, 5), 3, 2, 1, (1, 3, 3, 3))
        pool("AVGPOOL", (1, 3, 4, 4), 2, 2, 0, (1, 3, 2, 2), mask=True)
        pool("AVGPOOL", (1, 3, 4, 4), 4, 1, 0, (1, 3, 1, 1))
        pool("AVGPOOL", (1, 3, 2, 4), 2, 1, 0, (1, 3, 1, 1), kw=4)
        pool("SHORTCUT", (1, 3, 4, 4), 1, 2, 0, (1, 5, 2, 2), mask=True)
    else:
        pool("MAXPOOL", (2, 6, 8, 8), 2, 2, 0, (2, 6, 4, 4), mask=True)
        pool("MAXPOOL", (2, 6, 7, 7), 3, 2, 1, (2, 6, 4, 4))
        pool("AVGPOOL", (2, 6, 8, 8), 2, 2, 0, (2, 6, 4, 4), mask=True)
        pool("AVGPOOL", (2, 6, 4, 4), 4, 1, 0, (2, 6, 1, 1))
        pool("AVGPOOL", (2, 5, 2, 2), 2, 1, 0, (2, 5, 1, 1))
        pool("AVGPOOL", (1, 6, 2, 4), 2, 1, 0, (1, 6, 1, 1), kw=4)      # global: kh != kw
        pool("SHORTCUT", (2, 6, 8, 8), 1, 2, 0, (2, 10, 4, 4), mask=True)
        pool("SHORTCUT", (1, 4, 7, 7), 1, 2, 0, (1, 8, 4, 4))
        flat((2, 6, 3, 3), mask=True)          # pad lanes; F = 54: pad words on the flat side
        flat((2, 16, 5, 5), mask=True)         # lenet5's flatten (16 x 5 x 5 -> 400)
    reject = make_desc("AVGPOOL_FP", a={0: im.region((1, 4, 6, 6)), 7: im.region((1, 4, 2, 2))},
                       batch=1, in_c=4, in_h=6, in_w=6, out_c=4, out_h=2, out_w=2, kh=3,
                       kw=3, stride=3, pad=0)
    return im.mem(), descs, reject




def _check(p, tmp_path, sim, seed=0, flat_only=False):
    mem, descs, reject = _cases(p.tl, seed, small=sim == "icarus", flat_only=flat_only)
    rejects = reject if flat_only else [reject]
    want = expected(mem, descs, p.tl)
    got, runs = run_descriptors(p, mem, descs + rejects, workdir=tmp_path, sim=sim)
    for d, r in zip(descs, runs):
        assert r["status"] & STATUS_ERROR == 0, (d.op, hex(r["status"]))
    bad = np.flatnonzero(got != want)
    assert bad.size == 0, f"{bad.size} words differ, first at {bad[:8]}"
    for r in runs[len(descs):]:
        st = r["status"]
        assert st & STATUS_ERROR and (st >> STATUS_REJECT_SHIFT) & 0xF == 2, hex(st)
    model = [pool_cycles(p, d) for d in descs]
    print("cycles", [r["cycles"] for r in runs], "model", model)
    errs = [100.0 * (m - r["cycles"]) / r["cycles"] for m, r in zip(model, runs)]
    outs = [d.batch * (d.out_c * d.out_h * d.out_w if d.op % 2 == 0 else
                       d.in_c * d.in_h * d.in_w) for d in descs]   # FP ops are even
    print("cycles per output element", [round(r["cycles"] / n, 2) for n, r in zip(outs, runs)])
    print("err %", [round(e, 2) for e in errs])
    for d, e in zip(descs, errs):
        assert abs(e) <= 5.0, (d.op, e)
    return runs


# 4x4 blocked (T = 4); 2x4 NCHW (T = 1: make cosim, tests/conftest.py SLOW); Icarus runs
# the smaller tensors (``small``) when asked for
@pytest.mark.parametrize("tm,tn,layout,sim", [(4, 4, "reshaped", "verilator"),
                                              (2, 4, "nchw", "verilator")])
def test_pool_ops_match_the_interpreter(tm, tn, layout, sim, tmp_path, build_cache):
    _require("verilator" if sim == "verilator" else "iverilog")
    _check(_params(tm, tn, layout), tmp_path, sim)


# flatten at 128-bit AXI (beat_unpack / beat_pack between pool_unit and the DMA engines):
# FLATTEN_FP / FLATTEN_BP with and without the mask, lenet5's 16 x 5 x 5 and a block with
# pad lanes; a plane larger than the row buffer and a wrong out_c are rejected; the same
# image under random back-pressure
def test_flatten_at_128_bits(tmp_path, build_cache):
    _require("verilator")
    p = _params(4, 4, axi_width=128)
    _check(p, tmp_path / "free", "verilator", flat_only=True)
    # random back-pressure on every AXI channel (the FIFO fills, mask words come late):
    # the same image
    mem, descs, _ = _cases(p.tl, 0, flat_only=True)
    got, runs = run_descriptors(p, mem, descs, workdir=tmp_path / "paused", sim="verilator",
                                pause=cosim.Pause(seed=3, prob=0.4))
    assert all(r["status"] & STATUS_ERROR == 0 for r in runs)
    bad = np.flatnonzero(got != expected(mem, descs, p.tl))
    assert bad.size == 0, f"{bad.size} words differ under back-pressure, first at {bad[:8]}"


def test_cosim_step_runs_and_prices_lenet5_flatten_on_pool_unit():
    """lenet5's flatten (16 x 5 x 5 -> 400, not free in the blocked layout) is sent to the
    RTL by the trainer (VEC_OPS) and priced by `efgen cosim --step`'s model column with
    pool_unit's flatten_cycles, both directions."""
    from efgen.cosim.cli import _vec_model
    from efgen.cosim.validate import POOL_SETUP, flatten_cycles
    from efgen.frontend import load_net
    from efgen.frontend.boards import load_board
    from efgen.hls.desc import OPS
    from efgen.hls.program import build_program
    from efgen.model.schedule import Request, schedule
    from efgen.rtl.top import rtl_params
    from efgen.runtime.trainer import VEC_OPS

    net = load_net("lenet5")
    design = schedule(Request(net, load_board("zcu102"), batch=1, tm=4, tn=4))
    p = rtl_params(design)
    model = _vec_model(p, design)
    prog = build_program(design.net_ir, design, 0.01, 0.9, 5e-4)
    flat = {f"{s.layer}:{s.what}": s.desc for s in prog.fp + prog.bp
            if s.desc.op in (OPS["FLATTEN_FP"], OPS["FLATTEN_BP"])}
    assert sorted(flat) == ["flatten:bp", "flatten:fp"]
    assert all(d.op in VEC_OPS for d in flat.values())
    for k, d in flat.items():
        # per plane at least the DRAM latency and 2 x 25 x 4 words (load, out); 4 planes
        assert model[k] == flatten_cycles(p, d) > POOL_SETUP + 4 * (cosim.DRAM_LATENCY + 200)
