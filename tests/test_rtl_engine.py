"""The engine core RTL (efgen.rtl.engine): generation, lint, BRAM mapping, and cocotb runs
of FP, BP and WU blocks compared with the bit-exact models, the golden ops and the
cycle formula.

Simulation: one Verilator build per parameter set (efgen/cosim/runner.py), one simulation that
runs every case of the set (sim/engine/cases.py builds the driver scripts and the
checks), memoised per session; each case is then checked as its own test. An Icarus
smoke run covers the second simulator.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import require_tool as _require

from efgen.golden import ops
from efgen.rtl.engine import (
    ACC_DIST,
    ADD_LATENCY,
    MUL_LATENCY,
    RAM_LATENCY,
    EngineParams,
    WloadConfig,
    adder_tree,
    block_cycles,
    conv_block,
    engine_verilog,
    pipeline_depth,
    wload_placement,
    wu_block,
    wu_copies,
    wu_gradient,
)

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:          # sim/ is a folder of the checkout, not installed
    sys.path.insert(0, str(ROOT))

from sim.engine import cases as C  # noqa: E402

TB_DIR = ROOT / "sim" / "engine"
MODULES = ["engine_array", "engine_core", "engine_ctrl", "engine_ram", "engine_wload"]




# ------------------------------------------------------------------ parameter sets

def _small(tm, tn, **kw):
    base = dict(ifm_depth=256, ofm_depth=64, wbuf_depth=512, kmax=5, smax=2)
    base.update(kw)
    return EngineParams(tm, tn, **base)


PSETS = {
    "behav-2x2": _small(2, 2, wl_words=1),
    "behav-4x2": _small(4, 2, wl_words=2),
    # odd adder tree, non-power-of-two lanes; replicated selects per 2 columns (a short
    # last group)
    "behav-3x3": _small(3, 3, wl_words=1, rep_cols=2),
    # Tm < Tn: a DRAM n-block spans BP blocks; a replicated select per lane
    "behav-2x4": _small(2, 4, wl_words=2, rep_cols=1),
    "synth-4x2": _small(4, 2, wl_words=1, impl="synth"),
    # issue 13 tap packing (EngineParams.pack): packed FP/WU blocks beside unpacked ones
    "pack-2x8": _small(2, 8, wl_words=2, pack=True),
    "pack-4x4": _small(4, 4, wl_words=4, pack=True, impl="synth"),
    # issue 13 pixel lanes (EngineParams.p): P = 2 on an odd adder tree over n; P = 4 (the
    # tree over P two levels deeper than the one over n) with a replicated select per lane
    "pix2-2x3": _small(2, 3, wl_words=1, p=2),
    "pix4-2x2": _small(2, 2, wl_words=2, rep_cols=1, p=4),
}


def _cases(pname: str) -> list:
    p = PSETS[pname]
    fp, bp, wu = C.fp_case, C.bp_case, C.wu_case
    if pname == "behav-3x3":
        return [
            fp(p, "fp_k3_s2", N=4, M=5, K=3, S=2, tr=3, tc=4, relu=True, seed=61),
            fp(p, "fp_k1_bias", N=7, M=4, K=1, S=1, tr=2, tc=5, relu=False, seed=62,
               bias=True),
            bp(p, "bp_k3_s2", N=5, M=4, K=3, S=2, P=1, H=7, W=6, r0=2, c0=1, tr=3, tc=5,
               mask=True, seed=63),
            wu(p, "wu_k3_s1", N=4, M=5, K=3, S=1, tr=2, tc=3, images=2, seed=64),
            wu(p, "wu_k1_s1", N=5, M=4, K=1, S=1, tr=1, tc=4, images=2, seed=65),
        ]
    if pname == "behav-2x4":
        return [
            fp(p, "fp_k3_s1", N=6, M=3, K=3, S=1, tr=3, tc=3, relu=True, seed=71),
            bp(p, "bp_k3_s2", N=7, M=5, K=3, S=2, P=1, H=6, W=7, r0=1, c0=2, tr=4, tc=4,
               mask=True, seed=72),
            bp(p, "bp_k3_chunk", N=7, M=5, K=3, S=1, P=1, H=5, W=5, r0=0, c0=1, tr=5,
               tc=3, mask=False, seed=73, chunk=(1, 2)),
            wu(p, "wu_k2_s1", N=6, M=3, K=2, S=1, tr=2, tc=3, images=2, seed=74),
        ]
    if pname == "pack-2x8":
        fpk, wuk = C.fp_packed_case, C.wu_packed_case
        return [
            # 1 channel: taps 8, KP 2; 3 channels: taps 2, KP 5 (6 of 8 lanes); 2 channels,
            # stride 2: taps 4, KP 3; K 5, 4 channels: taps 2, KP 13; K 2: taps 4, KP 1
            fpk(p, "fpk_c1_k3", N=1, M=3, K=3, S=1, tr=3, tc=4, seed=81),
            fpk(p, "fpk_c3_k3", N=3, M=3, K=3, S=1, tr=2, tc=5, seed=82),
            fpk(p, "fpk_c2_k3_s2", N=2, M=2, K=3, S=2, tr=2, tc=3, seed=83),
            fpk(p, "fpk_c4_k5", N=4, M=3, K=5, S=1, tr=2, tc=2, seed=84),
            fpk(p, "fpk_c2_k2_tiny", N=2, M=2, K=2, S=1, tr=1, tc=2, seed=85),
            wuk(p, "wuk_c1_k3", N=1, M=3, K=3, S=1, tr=2, tc=3, images=2, seed=86),
            wuk(p, "wuk_c3_k3", N=3, M=2, K=3, S=2, tr=2, tc=2, images=2, seed=87),
            wuk(p, "wuk_c2_k2", N=2, M=3, K=2, S=1, tr=1, tc=3, images=3, seed=88),
            # unpacked blocks on the pack build: cfg_pack low, or a layer too deep to pack
            fp(p, "fp_k3_s1", N=9, M=3, K=3, S=1, tr=3, tc=3, relu=True, seed=89),
            bp(p, "bp_k3_s2", N=3, M=5, K=3, S=2, P=1, H=6, W=7, r0=1, c0=2, tr=3, tc=4,
               mask=True, seed=90),
            wu(p, "wu_k3_s1", N=3, M=2, K=3, S=1, tr=2, tc=3, images=2, seed=91),
        ]
    if pname == "pack-4x4":
        fpk, wuk = C.fp_packed_case, C.wu_packed_case
        return [
            fpk(p, "fpk_c1_k3", N=1, M=5, K=3, S=1, tr=3, tc=3, seed=101),
            fpk(p, "fpk_c2_k3_s2", N=2, M=4, K=3, S=2, tr=2, tc=4, seed=102),
            wuk(p, "wuk_c1_k3", N=1, M=5, K=3, S=1, tr=2, tc=4, images=2, seed=103),
            wuk(p, "wuk_c2_k3", N=2, M=3, K=3, S=1, tr=3, tc=3, images=2, seed=104),
            fp(p, "fp_k3_s2", N=5, M=3, K=3, S=2, tr=2, tc=3, relu=False, seed=105),
        ]
    if pname.startswith("pix"):
        # tc not a multiple of P (an idle lane at each row's end), tc < P, pixel groups
        # fewer than ACC_DIST (padded conv passes) and than G (WU copies), BP dilation
        return [
            fp(p, "fp_k3_s1", N=4, M=3, K=3, S=1, tr=3, tc=5, relu=True, seed=111),
            fp(p, "fp_k3_s2", N=3, M=5, K=3, S=2, tr=2, tc=7, relu=False, seed=112),
            fp(p, "fp_k1_bias", N=5, M=3, K=1, S=1, tr=3, tc=3, relu=False, seed=113,
               bias=True),
            fp(p, "fp_k3_tiny", N=3, M=2, K=3, S=1, tr=1, tc=1, relu=False, seed=114),
            bp(p, "bp_k3_s2", N=3, M=5, K=3, S=2, P=1, H=7, W=8, r0=3, c0=0, tr=4, tc=5,
               mask=True, seed=115),
            bp(p, "bp_k1_s2", N=3, M=3, K=1, S=2, P=0, H=6, W=6, r0=1, c0=2, tr=5, tc=4,
               mask=False, seed=116),
            wu(p, "wu_k3_s1", N=3, M=5, K=3, S=1, tr=3, tc=5, images=2, seed=117),
            wu(p, "wu_k3_s2", N=4, M=3, K=3, S=2, tr=2, tc=3, images=2, seed=118),
            wu(p, "wu_k1_s1", N=3, M=3, K=1, S=1, tr=2, tc=5, images=2, seed=119),
            wu(p, "wu_k2_s2", N=3, M=2, K=2, S=2, tr=2, tc=2, images=2, seed=120, base_pair=3),
            wu(p, "wu_k1_tiny", N=2, M=3, K=1, S=2, tr=1, tc=3, images=3, seed=121),
        ]
    if pname.startswith("synth"):
        return [
            fp(p, "fp_k3_s2", N=3, M=5, K=3, S=2, tr=3, tc=4, relu=True, seed=11,
               bias=True),
            bp(p, "bp_k3_s2", N=5, M=3, K=3, S=2, P=1, H=7, W=8, r0=3, c0=0, tr=4, tc=5,
               mask=True, seed=12),
            wu(p, "wu_k1_s1", N=3, M=5, K=1, S=1, tr=1, tc=3, images=2, seed=13),
        ]
    return [
        # FP: K 1/3/5, stride 1/2, channels not multiples of Tm/Tn, tr*tc below ACC_DIST
        fp(p, "fp_k3_s1", N=3, M=5, K=3, S=1, tr=4, tc=5, relu=True, seed=1),
        fp(p, "fp_k3_s2", N=4, M=3, K=3, S=2, tr=3, tc=4, relu=False, seed=2),
        fp(p, "fp_k1_s1", N=5, M=4, K=1, S=1, tr=3, tc=7, relu=True, seed=3),
        fp(p, "fp_k1_s2", N=2, M=3, K=1, S=2, tr=5, tc=3, relu=False, seed=4),
        fp(p, "fp_k5_s1", N=2, M=3, K=5, S=1, tr=2, tc=3, relu=True, seed=5),
        fp(p, "fp_k5_s2", N=3, M=2, K=5, S=2, tr=3, tc=2, relu=False, seed=6),
        fp(p, "fp_k3_tiny", N=3, M=2, K=3, S=1, tr=1, tc=2, relu=False, seed=7),
        fp(p, "fp_k3_bias", N=3, M=5, K=3, S=1, tr=2, tc=4, relu=True, seed=8, bias=True),
        fp(p, "fp_k1_bias", N=2, M=6, K=1, S=1, tr=3, tc=3, relu=False, seed=9, bias=True),
        # BP: the stride-1 conv of the dilated, padded error; flip/transpose at load
        bp(p, "bp_k3_s1", N=3, M=5, K=3, S=1, P=1, H=6, W=7, r0=2, c0=1, tr=4, tc=5,
           mask=True, seed=21),
        bp(p, "bp_k3_s2", N=5, M=3, K=3, S=2, P=1, H=7, W=8, r0=3, c0=0, tr=4, tc=5,
           mask=True, seed=22),
        bp(p, "bp_k1_s2", N=3, M=3, K=1, S=2, P=0, H=6, W=6, r0=1, c0=2, tr=5, tc=4,
           mask=False, seed=23),
        bp(p, "bp_k5_s1", N=2, M=3, K=5, S=1, P=2, H=5, W=5, r0=0, c0=0, tr=3, tc=5,
           mask=True, seed=24),
        bp(p, "bp_k3_s2_tiny", N=3, M=2, K=3, S=2, P=1, H=4, W=4, r0=1, c0=2, tr=1, tc=2,
           mask=False, seed=25),
        bp(p, "bp_k3_chunk", N=7, M=3, K=3, S=1, P=1, H=5, W=6, r0=1, c0=0, tr=3, tc=6,
           mask=True, seed=26, chunk=(1, 1)),
        # WU: K 1 (6 copies), 2 (2 copies), 3, 5; first blocks with fewer pixels than copies
        wu(p, "wu_k3_s1", N=3, M=5, K=3, S=1, tr=3, tc=4, images=2, seed=31),
        wu(p, "wu_k3_s2", N=4, M=3, K=3, S=2, tr=2, tc=3, images=2, seed=32),
        wu(p, "wu_k1_s1", N=3, M=3, K=1, S=1, tr=2, tc=5, images=2, seed=33),
        wu(p, "wu_k1_s2_tiny", N=2, M=3, K=1, S=2, tr=1, tc=3, images=3, seed=34),
        wu(p, "wu_k2_s2", N=3, M=2, K=2, S=2, tr=2, tc=2, images=2, seed=35, base_pair=3),
        wu(p, "wu_k5_s1", N=2, M=3, K=5, S=1, tr=2, tc=2, images=2, seed=36),
    ]


CASE_NAMES = {k: [c.name for c in _cases(k)] for k in PSETS}
_RESULTS: dict = {}


def _simulate(pname: str, tmp_path_factory, sim: str = "verilator", cases=None,
              sources=None):
    """Build (once per simulator and parameter set) and run all cases in one simulation."""
    key = (pname, sim, tuple(c.name for c in cases) if cases else None)
    if key in _RESULTS and sources is None:
        return _RESULTS[key]
    _require({"verilator": "verilator", "icarus": "iverilog"}[sim])
    from efgen.cosim.runner import run_cocotb

    p = PSETS[pname]
    cases = cases or _cases(pname)
    work = tmp_path_factory.mktemp(f"engine-{pname}-{sim}")
    script, results = work / "script.json", work / "results.json"
    script.write_text(json.dumps([op for c in cases for op in c.ops]))
    run_cocotb(sim, toplevel="engine_core", sources=sources or engine_verilog(p),
               test_module="cocotb_engine", tb_dir=TB_DIR,
               build_root=tmp_path_factory.getbasetemp() / "build" / "engine",
               extra_env={"EFGEN_ENGINE_SCRIPT": str(script),
                          "EFGEN_ENGINE_RESULTS": str(results),
                          "EFGEN_ENGINE_TM": str(p.tm), "EFGEN_ENGINE_TN": str(p.tn)})
    out = ({c.name: c for c in cases}, json.loads(results.read_text()))
    if sources is None:
        _RESULTS[key] = out
    return out


# ------------------------------------------------------------------ pure Python

def test_params_are_validated():
    with pytest.raises(ValueError, match="power of two"):
        EngineParams(2, 2, ifm_depth=100)
    with pytest.raises(ValueError, match="impl"):
        EngineParams(2, 2, impl="fast")
    with pytest.raises(ValueError, match="wl_words"):
        EngineParams(2, 2, wl_words=3)
    with pytest.raises(ValueError, match="one bank"):      # BP beats would collide
        EngineParams(2, 4, wl_words=4)
    EngineParams(2, 4, wl_words=2)
    assert "pack" not in EngineParams(2, 4).as_dict()       # rtl.json as before issue 13
    assert EngineParams(2, 4, pack=True).as_dict()["pack"] is True
    # issue 13 pixel lanes: P in {1, 2, 4}; P = 1 writes the rtl.json it wrote before
    for bad in (0, 3, 8, True, 2.0):
        with pytest.raises(ValueError, match="EngineParams.p"):
            EngineParams(2, 2, p=bad)
    assert "p" not in EngineParams(2, 4).as_dict()
    assert EngineParams(2, 4, p=2).as_dict()["p"] == 2
    # pixel lanes with tap packing are not built (the models and the C++ have both)
    with pytest.raises(ValueError, match="packs taps at P = 1 only"):
        EngineParams(2, 4, p=2, pack=True)


def test_verilog_is_deterministic_and_complete():
    p = PSETS["behav-4x2"]
    files = engine_verilog(p)
    assert files == engine_verilog(p)
    assert sorted(files) == sorted([f"{m}.v" for m in MODULES]
                                   + ["fp32_add.v", "fp32_mac.v", "fp32_mul.v"])
    for m in MODULES:
        text = files[f"{m}.v"]
        assert re.findall(r"^module (\w+)", text, re.M) == [m]
        assert text.startswith(f"// {m}.v - generated by efgen")
        assert not re.search(r"\{\{ |\{%|\{#", text) and text.isascii()   # no Jinja left
    synth = engine_verilog(EngineParams(4, 2, impl="synth"))
    behav = engine_verilog(EngineParams(4, 2, impl="behav"))
    assert "real" not in re.sub(r"//.*", "", synth["fp32_add.v"])
    assert synth["engine_core.v"] == behav["engine_core.v"].replace("behav", "synth")


@pytest.mark.parametrize("tn", range(1, 10))
def test_adder_tree(tn):
    t = adder_tree(tn)
    assert len(t.nodes) == tn - 1                      # Tn - 1 tree adders + 1 accumulator
    assert t.levels == (math.ceil(math.log2(tn)) if tn > 1 else 0)
    used = [s for node in t.nodes for s in node] + list(t.delays) + [t.root]
    assert sorted(i for k, i in used if k == "p") == list(range(tn))   # every product once


def test_cycle_formula():
    # conv: (K*K - 1) * max(P, ACC_DIST) + P + 2 + MUL + ADD*ceil(log2 Tn) + ADD + 1
    # fp32_mul: 4 cycles (classify, multiply, normalise, round); fp32_add: 5 (classify,
    # align, add + leading zeros, normalise, round); engine_ram: 2 (the RAM's read
    # register, then its output register, issue 19)
    assert (MUL_LATENCY, ADD_LATENCY, RAM_LATENCY) == (4, 5, 2)
    assert ACC_DIST == RAM_LATENCY + ADD_LATENCY + 1 == 8
    assert pipeline_depth("conv", 2) == 2 + MUL_LATENCY + ADD_LATENCY + ADD_LATENCY + 1 == 17
    assert pipeline_depth("conv", 16) == 32 and pipeline_depth("conv", 1) == 12
    assert pipeline_depth("wu", 16) == 12
    assert block_cycles("conv", 3, 4, 5, 2) == 9 * 20 + 17
    assert block_cycles("conv", 3, 1, 2, 2) == 8 * 8 + 2 + 17          # padded passes
    assert block_cycles("conv", 1, 1, 2, 2) == 2 + 17                    # one pass: no pad
    assert block_cycles("wu", 3, 2, 3, 4) == 9 * 6 + 12
    assert block_cycles("wu", 1, 1, 3, 4, acc_init=True) == 8 + 12       # G = 8 slots
    assert block_cycles("wu", 1, 1, 3, 4, acc_init=False) == 3 + 12
    assert [wu_copies(k) for k in (1, 2, 3, 5)] == [8, 2, 1, 1]


def test_cycle_formula_pixel_lanes():
    """Issue 13, P pixel lanes: a pass issues tr * ceil(tc / P) pixel groups; WU's
    adder tree over P lengthens its pipeline by ADD_LATENCY * ceil(log2 P)."""
    for tn in (1, 2, 3, 16):
        assert pipeline_depth("conv", tn, 4) == pipeline_depth("conv", tn)
        assert pipeline_depth("wu", tn, 1) == pipeline_depth("wu", tn) == 12
    assert pipeline_depth("wu", 4, 2) == 12 + ADD_LATENCY
    assert pipeline_depth("wu", 4, 4) == 12 + 2 * ADD_LATENCY
    for args in [("conv", 3, 4, 5, 2), ("conv", 3, 1, 2, 2), ("wu", 3, 2, 3, 4),
                 ("wu", 1, 1, 3, 4, True), ("wu", 1, 1, 3, 4, False)]:
        assert block_cycles(*args, p=1) == block_cycles(*args)
    # tc = 5: 3 groups a row at P = 2, 2 at P = 4
    assert block_cycles("conv", 3, 4, 5, 2, p=2) == 9 * 12 + 17
    assert block_cycles("conv", 3, 4, 5, 2, p=4) == 8 * 8 + 8 + 17       # 8 groups: no pad
    assert block_cycles("conv", 3, 1, 5, 2, p=4) == 8 * 8 + 2 + 17      # padded passes
    assert block_cycles("wu", 3, 2, 3, 4, p=2) == 9 * 4 + 12 + ADD_LATENCY
    assert block_cycles("wu", 1, 2, 5, 4, True, p=4) == 8 + 12 + 2 * ADD_LATENCY  # G slots
    assert block_cycles("wu", 1, 2, 5, 4, False, p=4) == 4 + 12 + 2 * ADD_LATENCY


@pytest.mark.parametrize("tm,tn,M,N,K", [(2, 2, 5, 3, 3), (4, 2, 3, 5, 3), (2, 4, 7, 6, 2),
                                         (3, 2, 4, 7, 1)])
def test_bp_weight_load_is_flip_and_transpose(tm, tn, M, N, K):
    """Loading every DRAM pair through the BP path builds W'[n][m] = W[m][n] rotated."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((M, N, K, K)).astype(np.float32)
    p = EngineParams(tm, tn, wbuf_depth=512, kmax=5)
    ob_n, rb_n = -(-N // tm), -(-M // tn)
    img = C.WeightImage(p)
    img.mem[:] = C.NAN
    for mb in range(-(-M // tm)):
        for nb in range(-(-N // tn)):
            cfg = WloadConfig.bp_pair(tm, tn, K, w.shape, mb, nb, 0, ob_n)
            img.load(cfg, C._pair_words(w, tm, tn, mb, nb))
    wbp = ops.conv_bp_weights(w)                                  # (N, M, K, K)
    for n in range(ob_n * tm):
        for m in range(rb_n * tn):
            blk = img.block(((n // tm) * rb_n + m // tn) * K * K, K)[n % tm, m % tn]
            if n < N and m < M:
                assert np.array_equal(blk, wbp[n, m]), (n, m)
            else:
                assert np.isnan(blk).all(), (n, m)                 # pad lanes untouched
    # A chunk of BP output blocks skips the other blocks' words.
    cfg = WloadConfig.bp_pair(tm, tn, K, w.shape, 0, 0, 1, 1)
    placed = [pl for pl in wload_placement(cfg, tm, tn) if pl is not None]
    assert all(a < rb_n * K * K for _, a in placed)


def test_models_match_golden_ops():
    """The bit-exact models compute the convolution (numpy only, no simulator)."""
    rng = np.random.default_rng(5)
    tm, tn, K, S, tr, tc = 3, 3, 3, 2, 3, 4
    x = rng.standard_normal((tn, (tr - 1) * S + K, (tc - 1) * S + K)).astype(np.float32)
    w = rng.standard_normal((tm, tn, K, K)).astype(np.float32)
    acc = conv_block(w, x, None, k=K, s=S, tr=tr, tc=tc, m_valid=tm, n_valid=tn,
                     acc_init=True)
    ref = ops.conv_fp(x[None].astype(np.float64), w.astype(np.float64), None, S, 0)[0]
    assert np.allclose(acc.reshape(tm, tr, tc), ref, rtol=1e-5, atol=1e-5)
    dy = rng.standard_normal((tm, tr * tc)).astype(np.float32)
    for k in (1, 2, 3):
        xk = x[:, :(tr - 1) * S + k, :(tc - 1) * S + k]
        sl = wu_block(None, dy, xk, k=k, s=S, tr=tr, tc=tc, m_valid=tm, n_valid=tn,
                      acc_init=True)
        sl = wu_block(sl, dy, xk, k=k, s=S, tr=tr, tc=tc, m_valid=tm, n_valid=tn,
                      acc_init=False)
        g = wu_gradient(sl).reshape(tm, tn, k, k)
        ref = 2 * ops.conv_wu(dy.reshape(1, tm, tr, tc).astype(np.float64),
                              xk[None].astype(np.float64), S, 0, k)
        assert np.allclose(g, ref, rtol=1e-5, atol=1e-5), k


def _wu_cpp_order(dy, x_tile, *, k, s, tr, tc, tm, tn, m_valid, n_valid, p, blocks):
    """conv_engine.h mac_pass's WU branch, scalar by scalar in float32 (one block per
    entry of ``blocks``, the first initialising): pixel group q at columns pc .. pc+P-1
    of row pr, lane pp idle past the row's end; the P products pass the tree
    ``for (w = 1; w < P; w *= 2) pv[pp] += pv[pp + w]``, then pv[0] + (first ? 0 : old)."""
    f32 = np.float32
    g_n = wu_copies(k)
    gc = -(-tc // p)
    ng = tr * gc
    wb = np.zeros((tm, tn, g_n * k * k), np.float32)
    for b, init in enumerate(blocks):
        span = max(ng, g_n) if init else ng
        for q in range(span):
            pr, pc = divmod(q, gc)
            pc *= p
            copy = q % g_n
            first = init and q < g_n
            for kk in range(k * k):
                i, j = divmod(kk, k)
                wa = copy * k * k + kk
                for m in range(tm):
                    for n in range(tn):
                        pv = []
                        for pp in range(p):
                            pix = q < ng and pc + pp < tc
                            lane = m < m_valid and n < n_valid
                            a = dy[b][m, pr * tc + pc + pp] if lane and pix else f32(0)
                            bb = (x_tile[b][n, pr * s + i, (pc + pp) * s + j]
                                  if lane and pix else f32(0))
                            pv.append(f32(a) * f32(bb))
                        w = 1
                        while w < p:
                            for pp in range(0, p - w, 2 * w):
                                pv[pp] = f32(pv[pp] + pv[pp + w])
                            w *= 2
                        wb[m, n, wa] = f32(pv[0] + (f32(0) if first else wb[m, n, wa]))
    return wb.reshape(tm, tn, g_n, k * k)


@pytest.mark.parametrize("p", [1, 2, 4])
def test_models_with_pixel_lanes_are_the_cpps_and_the_golden(p):
    """Issue 13: conv_block's roundings do not depend on P; wu_block with P pixel lanes is
    conv_engine.h's WU order bit for bit (_wu_cpp_order) and the gradient (golden ops)."""
    rng = np.random.default_rng(13 + p)
    tm, tn, S = 2, 3, 2
    with np.errstate(all="ignore"):
        for K, tr, tc in [(3, 2, 5), (1, 1, 3), (2, 3, 2), (1, 2, 7)]:
            x = [rng.standard_normal((tn, (tr - 1) * S + K, (tc - 1) * S + K)).astype(np.float32)
                 for _ in range(2)]
            w = rng.standard_normal((tm, tn, K, K)).astype(np.float32)
            kw = dict(k=K, s=S, tr=tr, tc=tc, m_valid=tm, n_valid=tn - 1)
            a1 = conv_block(w, x[0], None, acc_init=True, **kw)
            ap = conv_block(w, x[0], None, acc_init=True, p=p, **kw)
            assert np.array_equal(a1.view(np.uint32), ap.view(np.uint32))
            dy = [rng.standard_normal((tm, tr * tc)).astype(np.float32) for _ in range(2)]
            sl = wu_block(None, dy[0], x[0], acc_init=True, p=p, **kw)
            sl = wu_block(sl, dy[1], x[1], acc_init=False, p=p, **kw)
            ref = _wu_cpp_order(dy, x, tm=tm, tn=tn, p=p, blocks=(True, False), **kw)
            assert np.array_equal(sl.view(np.uint32), ref.view(np.uint32)), (K, tr, tc)
            g = wu_gradient(sl).reshape(tm, tn, K, K)
            gold = sum(ops.conv_wu(dy[b].reshape(1, tm, tr, tc).astype(np.float64),
                                   x[b][None].astype(np.float64), S, 0, K) for b in range(2))
            gold[:, tn - 1:] = 0                                      # lane n_valid.. idle
            assert np.allclose(g, gold, rtol=1e-5, atol=1e-5), (K, tr, tc)


def test_flush_to_zero_units_differ_only_at_subnormals():
    """The synthesizable (flush-to-zero) units against the IEEE ones, whose order of
    operations the HLS C++ shares bit for bit (test_rtl_top's twin test): identical on
    data with no subnormal operand or result; with subnormal inputs, each output moves by
    no more than the flushed values could contribute: sum over the block's products of
    |the other operand| x 2^-126, plus 2^-126 per addition."""
    rng = np.random.default_rng(11)
    tm, tn, K, S, tr, tc = 4, 6, 3, 1, 4, 5
    x = rng.standard_normal((tn, (tr - 1) * S + K, (tc - 1) * S + K)).astype(np.float32)
    w = rng.standard_normal((tm, tn, K, K)).astype(np.float32)
    kw = dict(k=K, s=S, tr=tr, tc=tc, m_valid=tm, n_valid=tn, acc_init=True)
    a = conv_block(w, x, None, impl="behav", **kw)
    b = conv_block(w, x, None, impl="synth", **kw)
    assert np.array_equal(a.view(np.uint32), b.view(np.uint32))
    dy = rng.standard_normal((tm, tr * tc)).astype(np.float32)
    ga = wu_gradient(wu_block(None, dy, x, impl="behav", **kw), "behav")
    gb = wu_gradient(wu_block(None, dy, x, impl="synth", **kw), "synth")
    assert np.array_equal(ga.view(np.uint32), gb.view(np.uint32))
    # subnormal inputs (and so subnormal products and sums): the flush shows
    xs = (x.astype(np.float64) * 2.0 ** -128).astype(np.float32)
    a = conv_block(w, xs, None, impl="behav", **kw).astype(np.float64)
    b = conv_block(w, xs, None, impl="synth", **kw).astype(np.float64)
    tiny = 2.0 ** -126
    bound = np.abs(w).reshape(tm, -1).sum(axis=1)[:, None] * tiny + K * K * tn * tiny
    assert np.all(np.abs(a - b) <= bound)
    assert not np.array_equal(a, b)          # the flush did change something


# ------------------------------------------------------------------ lint, BRAM

LINT_SETS = [EngineParams(4, 2, wl_words=2), EngineParams(1, 1), EngineParams(3, 5),
             EngineParams(2, 4, wl_words=2, impl="synth"), EngineParams(16, 16, wl_words=4),
             EngineParams(4, 4, pack=True, wl_words=4), EngineParams(2, 8, pack=True),
             EngineParams(3, 5, pack=True, impl="synth")]


@pytest.mark.parametrize("p", LINT_SETS, ids=lambda p: f"{p.tm}x{p.tn}-wl{p.wl_words}-{p.impl}")
def test_verilator_lint_clean(p, tmp_path):
    _require("verilator")
    files = engine_verilog(p)
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    r = subprocess.run(["verilator", "--lint-only", "-Wall", "--top-module", "engine_core",
                        *sorted(files)], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0 and not r.stderr, r.stderr


@pytest.mark.parametrize("p", LINT_SETS[:3], ids=lambda p: f"{p.tm}x{p.tn}")
def test_icarus_accepts_verilog_2005(p, tmp_path):
    _require("iverilog")
    files = engine_verilog(p)
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    r = subprocess.run(["iverilog", "-g2005", "-Wall", "-s", "engine_core", "-o", "e.vvp",
                        *sorted(files)], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0 and not r.stderr, r.stderr


def test_yosys_synth_xilinx_core(tmp_path):
    """A 2x2 core (synth FP units) synthesizes; every buffer becomes block RAM."""
    _require("yosys")
    p = EngineParams(2, 2, ifm_depth=1024, ofm_depth=512, wbuf_depth=512, impl="synth")
    files = engine_verilog(p)
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    script = (f"read_verilog {' '.join(sorted(files))}; "
              "synth_xilinx -family xcup -top engine_core -noiopad -flatten; "
              "tee -q -o stat.json stat -json")
    r = subprocess.run(["yosys", "-q", "-p", script], cwd=tmp_path, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    cells = json.loads((tmp_path / "stat.json").read_text())["design"]["num_cells_by_type"]
    luts = sum(v for k, v in cells.items() if re.fullmatch(r"LUT\d", k))
    print(f"engine_core 2x2 (synth) on xcup: {cells.get('DSP48E2', 0)} DSP48E2, "
          f"{cells.get('RAMB36E2', 0)} RAMB36E2, {cells.get('RAMB18E2', 0)} RAMB18E2, "
          f"{luts} LUT")
    # IFM: 2 banks x 2 halves x 1024 x 32 bit = 2 x 2 RAMB36; OFM: 2 x 2 x 512 x 32 and
    # weights: 4 x 512 x 32 = 8 RAMB18. No LUT RAM.
    assert cells.get("RAMB36E2", 0) == 4 and cells.get("RAMB18E2", 0) == 8
    assert not [k for k in cells if re.match(r"RAM(32|64|128|256)", k)]
    assert cells.get("DSP48E2", 0) >= 2 * p.tm * p.tn       # 24x24 significand products


# Fan-out bound of any flip-flop in engine_core (issue 19: the wu/busy selects drove every
# lane's muxes from one flip-flop, 64 loads an adder and 32 a multiplier operand, about
# 100 a lane). With one copy per lane group of rep_cols = 4 columns a copy drives about
# 400 loads (measured: 373 at 8x8, 394 at 16x16, Yosys 0.23); one copy per array would
# drive about 100 * Tm * Tn (6,000+ at 8x8).
FF_FANOUT_BOUND = 512


def _loads_and_drivers(mod):
    loads, drv = {}, {}
    for name, c in mod["cells"].items():
        for pin, bits in c["connections"].items():
            out = c.get("port_directions", {}).get(pin) == "output"
            for b in bits:
                if isinstance(b, int):
                    if out:
                        drv[b] = (name, c["type"])
                    else:
                        loads.setdefault(b, []).append((name, c["type"], pin))
    return loads, drv


def test_selects_replicated_and_ram_reads_registered(tmp_path):
    """Yosys synth_xilinx of an 8x8 engine_core (the FP32 units as black boxes, so that
    only their input pins count as loads): (1) no flip-flop drives more than
    FF_FANOUT_BOUND loads, so the replicated selects (and ofm_half) stayed apart; (2) every
    block RAM's read data goes only into flip-flops (engine_ram's output register, what
    Vivado packs as DOB_REG), never into logic."""
    _require("yosys")
    p = EngineParams(8, 8, ifm_depth=1024, ofm_depth=512, wbuf_depth=512, impl="synth")
    files = engine_verilog(p)
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    units = sorted(n for n in files if n.startswith("fp32_"))
    rest = sorted(n for n in files if n not in units)
    script = (f"read_verilog -lib {' '.join(units)}; read_verilog {' '.join(rest)}; "
              "synth_xilinx -family xcup -top engine_core -noiopad -flatten; "
              "write_json netlist.json")
    r = subprocess.run(["yosys", "-q", "-p", script], cwd=tmp_path, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    mod = json.loads((tmp_path / "netlist.json").read_text())["modules"]["engine_core"]
    loads, drv = _loads_and_drivers(mod)
    names = {}
    for nm, net in mod["netnames"].items():
        for b in net["bits"]:
            if isinstance(b, int) and not nm.startswith("$"):
                names.setdefault(b, nm)
    ffs = sorted(((len(loads.get(b, [])), names.get(b, "?"), b) for b, (_, t) in drv.items()
                  if t.startswith("FD")), reverse=True)
    print("engine_core 8x8: flip-flops with the most loads:",
          ", ".join(f"{n} {nm}" for n, nm, _ in ffs[:6]))
    assert ffs[0][0] <= FF_FANOUT_BOUND, ffs[:6]
    # the copies are there: at least one copy of wu per lane group kept its own flip-flop
    for sel in ("r_wu", "r_busy", "r_opd_valid", "r_opd_x_ok", "r_acc_use"):
        cells = {drv[net["bits"][0]][0] for nm, net in mod["netnames"].items()
                 if re.fullmatch(rf"u_ctrl\.g_rep\[\d+\]\.{sel}", nm)}
        assert len(cells) == p.rep_groups[1], f"{sel}: copies merged into {len(cells)}"
    rams = {n: c for n, c in mod["cells"].items() if c["type"].startswith("RAMB")}
    # IFM: 8 banks of 2 x 1024 words, 2 RAMB36 each; OFM: 2 x 8 RAMB18; weights: 64 RAMB18
    assert len(rams) == 2 * p.tn + 2 * p.tm + p.tm * p.tn == 96, len(rams)
    bad = []
    for n, c in rams.items():
        for pin, bits in c["connections"].items():
            if c["port_directions"][pin] != "output":
                continue
            for b in bits:
                for cell, ctype, lpin in loads.get(b, []) if isinstance(b, int) else ():
                    if not (ctype.startswith("FD") and lpin == "D"):
                        bad.append(f"{n}.{pin} -> {cell} ({ctype}.{lpin})")
    assert not bad, f"{len(bad)} RAM read bits feed logic: " + "; ".join(bad[:5])
    # (3) the accumulator addresses, their write enable and the weight read address are
    # copied once per row (kept apart), and no other net of the array drives more than
    # NET_FANOUT_BOUND loads (main before the copies: the store path's st_op decode 441 at
    # 8x8, 880 at 16x16; the accumulator write address 288 at 16x16)
    for sel in ("r_accr_addr", "r_accw_addr", "r_accw_valid", "r_iss_w_addr"):
        cells = {drv[net["bits"][0]][0] for nm, net in mod["netnames"].items()
                 if re.fullmatch(rf"u_ctrl\.g_rep_(acc|w)\[\d+\]\.{sel}", nm)}
        assert len(cells) == p.tm, f"{sel}: {len(cells)} copies, expected one per row"
    over = _high_fanout_nets(mod, loads, drv, NET_FANOUT_BOUND)
    print("engine_core 8x8: nets above", NET_FANOUT_BOUND, "loads (exempt: clock, rst, "
          "the select copies, engine_wload):", over[:6])
    assert not over, over[:6]


# Loads of any net of engine_core other than the clock, rst (an input: the top's reset
# flip-flop), the lane-group select copies (FF_FANOUT_BOUND above) and engine_wload's bank
# decode and data (the timing branch's; `efgen synth --timing` lists them). Since the
# copies the largest at 8x8 is engine_ctrl's own counter enable (about 220, not growing
# with the array).
NET_FANOUT_BOUND = 256


def _high_fanout_nets(mod, loads, drv, bound):
    names, aliases = {}, {}
    for nm, net in sorted(mod["netnames"].items(), key=lambda kv: (kv[0].count("$"), kv[0])):
        for b in net["bits"]:
            if isinstance(b, int):
                names.setdefault(b, nm)
                aliases.setdefault(b, set()).add(nm)
    sel = re.compile(r"u_ctrl\.g_rep\[\d+\]\.r_\w+|g_rep_half\[\d+\]\.r_ofm_half")

    def ins(cell):
        c = mod["cells"][cell]
        return [b for pin, bits in c["connections"].items()
                if c["port_directions"][pin] == "input" for b in bits if isinstance(b, int)]

    def from_wload(b, depth=3):
        if any(a.startswith("u_wload.") for a in aliases.get(b, ())):
            return True
        if depth == 0 or b not in drv or drv[b][1].startswith(("FD", "BUFG")):
            return False
        return any(from_wload(i, depth - 1) for i in ins(drv[b][0]))

    out = []
    for b, ls in loads.items():
        real = [x for x in ls if x[2] not in ("C", "CLK", "clk", "CLKARDCLK", "CLKBWRCLK")]
        if len(real) <= bound or any(a == "rst" or sel.fullmatch(a) for a in aliases.get(b, ())):
            continue
        if b in drv and drv[b][1].startswith("BUFG") or from_wload(b):
            continue
        out.append((len(real), names.get(b, "?"), drv.get(b, ("input", "?"))[1]))
    return sorted(out, reverse=True)


# ------------------------------------------------------------------ simulation

def _check_case(pname, case_name, tmp_path_factory, sim="verilator"):
    cases, results = _simulate(pname, tmp_path_factory, sim)
    case = cases[case_name]
    errs = case.check(results)
    cyc = case.cycles(results)
    rel = max(case.info.get("rel_err", [0.0]))
    print(f"{pname} {case_name} {case.info}: block cycles {cyc}, max rel err {rel:.2e}")
    assert not errs, "\n".join(errs)


@pytest.mark.parametrize("case_name", CASE_NAMES["behav-2x2"])
def test_engine_2x2(case_name, tmp_path_factory):
    _check_case("behav-2x2", case_name, tmp_path_factory)


@pytest.mark.parametrize("case_name", CASE_NAMES["behav-4x2"])
def test_engine_4x2(case_name, tmp_path_factory):
    _check_case("behav-4x2", case_name, tmp_path_factory)


@pytest.mark.parametrize("case_name", CASE_NAMES["behav-3x3"])
def test_engine_3x3(case_name, tmp_path_factory):
    _check_case("behav-3x3", case_name, tmp_path_factory)


@pytest.mark.parametrize("case_name", CASE_NAMES["behav-2x4"])
def test_engine_2x4(case_name, tmp_path_factory):
    _check_case("behav-2x4", case_name, tmp_path_factory)


@pytest.mark.parametrize("case_name", CASE_NAMES["pack-2x8"])
def test_engine_pack_2x8(case_name, tmp_path_factory):
    _check_case("pack-2x8", case_name, tmp_path_factory)


@pytest.mark.parametrize("case_name", CASE_NAMES["pack-4x4"])
def test_engine_pack_synth_4x4(case_name, tmp_path_factory):
    _check_case("pack-4x4", case_name, tmp_path_factory)


@pytest.mark.parametrize("case_name", CASE_NAMES["pix2-2x3"])
def test_engine_pixel_lanes_2x3x2(case_name, tmp_path_factory):
    _check_case("pix2-2x3", case_name, tmp_path_factory)


@pytest.mark.parametrize("case_name", CASE_NAMES["pix4-2x2"])
def test_engine_pixel_lanes_2x2x4(case_name, tmp_path_factory):
    _check_case("pix4-2x2", case_name, tmp_path_factory)


@pytest.mark.parametrize("case_name", CASE_NAMES["synth-4x2"])
def test_engine_synth_4x2(case_name, tmp_path_factory):
    _check_case("synth-4x2", case_name, tmp_path_factory)


def test_engine_icarus_smoke(tmp_path_factory):
    p = PSETS["behav-2x2"]
    cases = [C.fp_case(p, "fp", N=3, M=3, K=3, S=2, tr=2, tc=3, relu=True, seed=41),
             C.bp_case(p, "bp", N=3, M=3, K=3, S=2, P=1, H=4, W=5, r0=1, c0=0, tr=2, tc=3,
                       mask=True, seed=42),
             C.wu_case(p, "wu", N=3, M=2, K=1, S=1, tr=1, tc=2, images=2, seed=43)]
    by_name, results = _simulate("behav-2x2", tmp_path_factory, "icarus", cases)
    errs = [e for c in cases for e in c.check(results)]
    assert not errs, "\n".join(errs)


def _smoke_cases(p):
    return [C.fp_case(p, "fp", N=3, M=3, K=3, S=1, tr=1, tc=2, relu=True, seed=51),
            C.bp_case(p, "bp", N=3, M=3, K=3, S=2, P=1, H=4, W=5, r0=1, c0=0, tr=2, tc=3,
                      mask=True, seed=52),
            C.bp_case(p, "bp_chunk", N=5, M=3, K=1, S=1, P=0, H=3, W=3, r0=0, c0=0, tr=3,
                      tc=3, mask=False, seed=53, chunk=(1, 1))]


@pytest.mark.parametrize("module,good,bad,symptom", [
    # lanes beyond m_valid / n_valid must multiply zeros: the pad lanes hold NaN
    ("engine_core.v", "ok = rep_opd_valid[R] & m_mask[gm] & n_mask[gn]", "ok = rep_opd_valid[R]",
     "NaN in valid lanes|differ"),
    # a replicated select must equal its scalar in every cycle: acc_use's copy a cycle late
    ("engine_ctrl.v", "tag[RD_WU+RAM_LAT-1] : tag[RD_CV+RAM_LAT-1]",
     "tag[RD_WU+RAM_LAT] : tag[RD_CV+RAM_LAT]", "differ"),
    # the engine is timed for the RAM's output register (RAM_LATENCY 2)
    ("engine_ram.v", "rdata <= q;", "rdata <= mem[raddr];", "differ|NaN|cycles"),
    # without the idle padding of short passes the accumulator is read before written
    ("engine_ctrl.v", "(!wu && p_prod < ACC_DIST)", "(1'b0)", "differ from the bit-exact"),
    # BP weights must be flipped at load
    ("engine_wload.v", "c4   <= bp3 ? flip3 :", "c4   <= bp3 ? 1'b0 :", "weight buffer after the BP load"),
    # BP words of output blocks outside the loaded chunk must be dropped
    ("engine_wload.v", "lim3 && !obf3[", "lim3 || !obf3[", "bp_chunk/wbuf: weight buffer"),
])
def test_engine_checks_catch_bugs(module, good, bad, symptom, tmp_path_factory):
    """The cocotb checks are not vacuous: each injected bug fails them (Icarus)."""
    p = PSETS["behav-2x2"]
    src = engine_verilog(p)
    assert src[module].count(good) == 1
    src[module] = src[module].replace(good, bad)
    cases = _smoke_cases(p)
    _, results = _simulate("behav-2x2", tmp_path_factory, "icarus", cases, sources=src)
    errs = [e for c in cases for e in c.check(results)]
    assert errs and re.search(symptom, "\n".join(errs)), errs


def test_pack_rule_is_the_models_and_the_cpps():
    """The RTL packs exactly the blocks the model prices as packed (efgen.model.engine.
    packed_taps, FP and WU, not image-major) with the same taps, KP and WU copies as
    conv_engine.h's make_job (G = ceil(ACC_DIST / KP)); a 3-channel 3x3 layer on 8 lanes
    uses 6 of them."""
    from efgen.model import engine as model
    from efgen.design import HwParams
    from efgen.rtl.engine import kernel_passes, pack_table, pack_taps, wu_copies_passes

    for tn in (2, 4, 6, 8, 16, 24):
        hw = HwParams(tn=tn, pack=True)
        for rc in range(1, tn + 2):
            for k in range(1, 8):
                for ph in (model.FP, model.WU):
                    want = float(model.packed_taps(rc, k, ph, 0, hw))
                    assert pack_taps(rc, k, tn) == want, (tn, rc, k)
    p = EngineParams(2, 8, kmax=5, pack=True)
    rows = {(e["rc"], e["k"]): e for e in pack_table(p)}
    assert set(rows) == {(rc, k) for rc in range(1, 5) for k in range(2, 6)}
    e = rows[(3, 3)]
    assert (e["taps"], e["kp"], e["g"], sum(e["act"])) == (2, 5, 2, 6)
    for e in rows.values():
        assert e["kp"] == kernel_passes(e["k"], e["taps"]) and e["g"] == wu_copies_passes(e["kp"])
        assert e["tq_i"] * e["k"] + e["tq_j"] == e["taps"]
