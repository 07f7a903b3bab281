"""The reference RTL's vector unit (vec_unit in efgen_top) against the numpy interpreter.

Every element-wise descriptor kind the step programs emit (RELU_FP, RELU_BP, ADD_FP with
and without its ReLU, ERRSUM with 1 to 4 sources, with and without the ReLU mask: 1 to 4
passes; RELU_BP with and without FLAG_MASK, which the step programs do not emit) runs on random
tensors whose channel count is not a multiple of the lane block, with garbage in the
input pad lanes and in the output regions beforehand. The whole DRAM image after the runs
must equal efgen.csim.interp's (same adds in the same order: equal values, bit for bit
up to the sign of zero; pad lanes written as 0; nothing outside the outputs written).
A descriptor the unit rejects writes nothing and ends with ERROR, code 2. Every run's
CYCLES must be within 5% of the model's (efgen.cosim.validate.vec_cycles).
"""

from __future__ import annotations


import numpy as np
import pytest
from conftest import require_tool as _require

from efgen.cosim import layers as cosim
from efgen.cosim.validate import vec_cycles
from efgen.cosim.vector import expected, run_descriptors
from efgen.hls.desc import make_desc
from efgen.layout import FeatureMapLayout
from efgen.rtl.dma import STATUS_ERROR, STATUS_REJECT_SHIFT
from efgen.rtl.engine import EngineParams
from efgen.rtl.top import RtlParams

SHAPE = (2, 6, 3, 5)          # B, C, H, W: C = 6 on T = 4 lanes leaves 2 pad lanes


def _params(tm, tn, layout="reshaped", impl="behav") -> RtlParams:
    eng = EngineParams(tm=tm, tn=tn, ifm_depth=512, ofm_depth=256, wbuf_depth=256, kmax=3,
                       smax=4, impl=impl)
    return RtlParams(eng, layout=layout, max_burst=16)


def _cases(lanes: int, seed: int = 0):
    """(image, descriptors): 6 random source tensors and 9 output regions."""
    rng = np.random.default_rng(seed)
    fm = FeatureMapLayout("blocked", lanes)
    n = fm.size(SHAPE)
    stride = -(-n // 64) * 64 + 64
    base = 1024
    src = [base + i * stride for i in range(6)]
    out = [base + (6 + i) * stride for i in range(10)]
    mem = rng.standard_normal(base + 16 * stride).astype(np.float32) * 3
    B, C, H, W = SHAPE
    geo = dict(batch=B, out_c=C, out_h=H, out_w=W, in_c=C, in_h=H, in_w=W)

    def d(op, srcs, o, flags=(), mask=None, **kw):
        a = {i: s for i, s in enumerate(srcs)}
        a[7] = out[o]
        if mask is not None:
            a[6] = mask
        return make_desc(op, flags, a=a, **geo, **kw)

    descs = [
        d("RELU_FP", [src[0]], 0),
        d("ADD_FP", [src[0], src[1]], 1),
        d("ADD_FP", [src[1], src[2]], 2, ["RELU"]),
        d("RELU_BP", [src[2], src[3]], 3),
        d("RELU_BP", [src[3], src[0]], 4, ["MASK"], mask=src[5]),
        d("ERRSUM", [src[4]], 5, ["MASK"], mask=src[5], n_src=1),
        d("ERRSUM", [src[0], src[1], src[2]], 6, n_src=3),
        d("ERRSUM", [src[5], src[4], src[3], src[2]], 7, ["MASK"], mask=src[1], n_src=4),
        d("ERRSUM", [src[2], src[3]], 8, n_src=2),
    ]
    return mem, descs, out




# 4x4 blocked (T = 4) on Verilator; 2x4 NCHW (T = 1) on Icarus (no build to wait for)
@pytest.mark.parametrize("tm,tn,layout,sim", [(4, 4, "reshaped", "verilator"),
                                              (2, 4, "nchw", "icarus")])
def test_elementwise_ops_match_the_interpreter(tm, tn, layout, sim, tmp_path, build_cache):
    _require("verilator" if sim == "verilator" else "iverilog")
    p = _params(tm, tn, layout)
    mem, descs, out = _cases(p.tl)
    want = expected(mem, descs, p.tl)
    reject = make_desc("ERRSUM", a={0: out[0], 7: out[9]}, batch=2, out_c=6, out_h=3,
                       out_w=5, n_src=5)
    got, runs = run_descriptors(p, mem, descs + [reject], workdir=tmp_path, sim=sim)
    for i, r in enumerate(runs[:-1]):
        assert r["status"] & STATUS_ERROR == 0, (i, hex(r["status"]))
        assert r["cycles"] > 0
    bad = np.flatnonzero(got != want)
    assert bad.size == 0, f"{bad.size} words differ, first at {bad[:8]}"
    st = runs[-1]["status"]
    assert st & STATUS_ERROR and (st >> STATUS_REJECT_SHIFT) & 0xF == 2, hex(st)
    # the model: vec_unit's cycles within the 5% bar (efgen.cosim.validate.vec_cycles)
    model = [vec_cycles(p, d) for d in descs]
    print("cycles", [r["cycles"] for r in runs], "model", model)
    for d, m, r in zip(descs, model, runs):
        assert abs(m - r["cycles"]) <= 0.05 * r["cycles"], (d.op, m, r["cycles"])


def test_backpressure_and_abort(tmp_path, build_cache):
    """Random back-pressure on every AXI channel: the same image. ABORT in the middle of
    a 4-pass ERRSUM ends it with ERROR code 9 (the DMA engines drained); the next
    descriptor runs normally."""
    _require("verilator")
    from efgen.cosim.layers import Pause
    from efgen.rtl.dma import ERR_ABORTED

    p = _params(4, 4)
    mem, descs, out = _cases(p.tl, seed=1)
    descs = descs + [descs[7], descs[1]]          # ERRSUM of 4 with the mask, aborted; ADD
    want = expected(mem, descs[:-2], p.tl)
    got, runs = run_descriptors(p, mem, descs, workdir=tmp_path, pause=Pause(3, 0.3),
                                abort_at={len(descs) - 2: 150})
    st = runs[-2]["status"]
    assert st & STATUS_ERROR and (st >> STATUS_REJECT_SHIFT) & 0xFF == ERR_ABORTED, hex(st)
    assert runs[-1]["status"] & STATUS_ERROR == 0
    # the aborted ERRSUM rewrites its own output only; every other word is as expected
    o7 = int(descs[7].a[7])
    keep = np.ones(got.size, bool)
    keep[o7:o7 + FeatureMapLayout("blocked", p.tl).size(SHAPE)] = False
    bad = np.flatnonzero((got != want) & keep)
    assert bad.size == 0, f"{bad.size} words differ, first at {bad[:8]}"
    assert all(r["cycles"] > vec_cycles(p, d) for d, r in zip(descs[:-2], runs))


def test_a_vec_unit_without_its_gates_is_caught(tmp_path, build_cache, monkeypatch):
    """The check can fail: a vec_unit that drops its gates (RELU_BP's y > 0) differs."""
    _require("iverilog")
    real = cosim.rtl_verilog

    def broken(p):
        files = dict(real(p))
        good = "(p_gate ? (so[1] ? so[33:2] : 32'd0) : add_y)"
        assert good in files["vec_unit.v"]
        files["vec_unit.v"] = files["vec_unit.v"].replace(good, "(p_gate ? so[33:2] : add_y)")
        return files

    monkeypatch.setattr(cosim, "rtl_verilog", broken)
    p = _params(4, 4)
    mem, descs, _ = _cases(p.tl)
    descs = [descs[3]]
    got, _ = run_descriptors(p, mem, descs, workdir=tmp_path, sim="icarus")
    assert np.count_nonzero(got != expected(mem, descs, p.tl)) > 20


def test_cosim_step_model_prices_the_element_wise_descriptors():
    """`efgen cosim --step`'s model column: every element-wise descriptor of the step
    program (tiny: 2 residual adds, 2 error sums) gets vec_unit's model cycles, every
    pooling / shortcut descriptor pool_unit's."""
    from efgen.cosim.cli import _vec_model
    from efgen.cosim.validate import (POOL_SETUP, VEC_PASS_OVERHEAD, VEC_SETUP, pool_cycles,
                                      vec_passes)
    from efgen.hls.program import build_program
    from efgen.frontend import load_net
    from efgen.frontend.boards import load_board
    from efgen.model.schedule import Request, schedule
    from efgen.rtl.top import rtl_params

    net = load_net("tiny")
    design = schedule(Request(net, load_board("zcu102"), batch=2, tm=4, tn=4))
    model = _vec_model(rtl_params(design), design)
    # (and bn_unit's: efgen.cosim.validate.bn_cycles, tests/test_rtl_bn.py)
    vec = ["add1:errsum", "add1:fp", "add2:fp", "pool1:errsum"]
    pool = ["gap:bp", "gap:fp", "pool1:bp", "pool1:fp", "pool2:bp", "pool2:fp", "short:bp",
            "short:fp"]
    bn = [f"bn{i}:{ph}" for i in (1, 2, 3) for ph in ("fp", "bp")]
    assert sorted(model) == sorted(vec + pool + bn)
    assert all(model[k] > VEC_SETUP + VEC_PASS_OVERHEAD + cosim.DRAM_LATENCY for k in vec)
    prog = build_program(design.net_ir, design, 0.01, 0.9, 5e-4)
    descs = {f"{s.layer}:{s.what}": s.desc for s in prog.fp + prog.bp}
    assert all(model[k] == pool_cycles(rtl_params(design), descs[k]) > POOL_SETUP for k in pool)
    e = make_desc("ERRSUM", ["MASK"], n_src=4)
    assert (vec_passes(e), vec_passes(make_desc("ADD_FP")), vec_passes(make_desc("RELU_FP")),
            vec_passes(make_desc("RELU_BP")), vec_passes(make_desc("ERRSUM", n_src=2))) == \
        (4, 1, 1, 1, 1)
