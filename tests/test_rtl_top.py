"""The whole reference RTL (efgen.rtl.top) under cocotb: layer-phases and a training step.

Every case reads and writes DRAM images built with efgen.layout, runs through AXI4-Lite
(AxiLiteMaster) and three AXI4 masters on one cocotbext-axi DRAM with a 24-cycle read
latency, and is compared tensor by tensor with the golden model (max relative error
<= 1e-4). The same runs check the analytical model: cycles within 5% per layer-phase
(no per-case factors; efgen.cosim.validate states the RTL's constants once) and AXI bursts.
This is the CI subset; `make cosim` runs every distinct ResNet-20 layer shape.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import require_tool as _require

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:          # sim/ is a folder of the checkout, not installed
    sys.path.insert(0, str(ROOT))

from efgen.cosim import layers as cosim  # noqa: E402
from efgen.cosim.layers import BAR, Fault, LayerPhase, Pause, Run, run_layer_phases  # noqa: E402
from efgen.cosim.validate import model_rows  # noqa: E402
from efgen.errors import EfgenError  # noqa: E402
from efgen.rtl.dma import STATUS_DONE, STATUS_ERROR  # noqa: E402
from efgen.rtl.engine import EngineParams  # noqa: E402
from efgen.rtl.top import RtlParams, rtl_verilog, wload_words  # noqa: E402

MODEL_BAR = 5.0   # percent, per layer-phase (the bar; the goal is 3)




def _params(tm, tn, layout="reshaped", impl="behav", axi=32, **kw) -> RtlParams:
    eng = EngineParams(tm=tm, tn=tn, ifm_depth=kw.get("ifm", 512), ofm_depth=kw.get("ofm", 256),
                       wbuf_depth=kw.get("wbuf", 256), kmax=3, smax=4, impl=impl,
                       wl_words=wload_words(tm, tn, axi // 32), wdb=kw.get("wdb", False),
                       pack=kw.get("pack", False), p=kw.get("p", 1))
    return RtlParams(eng, layout=layout, max_burst=16, axi_width=axi, fuse=kw.get("fuse", False))


# Stride 1 and 2, K 1 and 3, channel counts that are not multiples of Tm or Tn (6, 10),
# both loop orders, chunks of several output blocks, a fused ReLU, linear layers, ReLU masks.
CASES = [
    LayerPhase("c1", "conv", 6, 10, 12, 12, 3, 1, 1, 2, "fp", True, 6, 12, 2, "wo"),
    LayerPhase("c2", "conv", 10, 6, 12, 12, 3, 2, 1, 1, "fp", False, 3, 6, 2, "io"),
    LayerPhase("c3", "conv", 10, 6, 8, 8, 1, 1, 0, 2, "fp", False, 8, 8, 2, "io"),
    LayerPhase("b1", "conv", 6, 10, 12, 12, 3, 1, 1, 2, "bp", False, 6, 12, 2, "wo"),
    LayerPhase("b2", "conv", 10, 6, 12, 12, 3, 2, 1, 1, "bp", False, 6, 12, 2, "io"),
    LayerPhase("b3", "conv", 8, 12, 8, 8, 1, 2, 0, 2, "bp", False, 8, 8, 2, "wo"),
    LayerPhase("w1", "conv", 6, 10, 12, 12, 3, 1, 1, 2, "wu", False, 6, 12, 2, "io"),
    LayerPhase("w2", "conv", 10, 6, 12, 12, 3, 2, 1, 2, "wu", False, 3, 6, 2, "io"),
    LayerPhase("w3", "conv", 8, 12, 8, 8, 1, 1, 0, 2, "wu", False, 8, 8, 1, "io"),
    LayerPhase("l1", "linear", 24, 10, batch=8, phase="fp", tr=1, tc=8, mc=2),
    LayerPhase("l2", "linear", 24, 10, batch=8, phase="bp", tr=1, tc=8, mc=2, order="io"),
    LayerPhase("l3", "linear", 24, 10, batch=8, phase="wu", tr=1, tc=8, mc=1, order="io"),
    # BP stores with a fused ReLU mask (the mask tile read beside the store)
    LayerPhase("m1", "conv", 6, 10, 12, 12, 3, 2, 1, 2, "bp", False, 6, 12, 2, "wo", True),
    LayerPhase("m2", "linear", 24, 10, batch=8, phase="bp", tr=1, tc=8, mc=2, order="io",
               mask=True),
    # tiles whose DMA runs cross 4 KiB pages (split by the DMA; the model counts the splits)
    # FP with FLAG_BIAS: the bias add on the store lanes, with and without the ReLU after it
    LayerPhase("f1", "conv", 6, 10, 8, 8, 3, 1, 1, 2, "fp", True, 4, 8, 2, "wo", bias=True),
    LayerPhase("f2", "conv", 10, 6, 8, 8, 1, 2, 0, 1, "fp", False, 4, 4, 2, "io", bias=True),
    LayerPhase("f3", "linear", 24, 10, batch=8, phase="fp", relu=True, tr=1, tc=8, mc=2,
               bias=True),
    LayerPhase("g1", "conv", 8, 6, 18, 18, 3, 1, 1, 1, "fp", False, 10, 6, 2, "wo"),
    LayerPhase("g2", "conv", 6, 8, 18, 18, 3, 1, 1, 1, "bp", False, 10, 6, 2, "wo"),
    # a batch-1 linear WU (lenet5's f6 and out at batch 1): one pixel a block, so every
    # block of a chunk starts its G = 8 gradient copies (8 pixel slots, not 1) and the
    # chunk's compute-bound steps leave its error-tile loads exposed (the model missed
    # both: -5.8% at 4x4, -10.2% at 2x4)
    LayerPhase("l4", "linear", 24, 16, batch=1, phase="wu", tr=1, tc=1, mc=4, order="io"),
    # WU with FLAG_BIAS (momentum and weight decay nonzero, the gradient copy at a[7]): the
    # error words summed per channel as they load (8 partial sums a channel; tiles of 6
    # positions write 6 of them), then sgd_wb's bias pass: a conv of two chunks, a conv of
    # 2x3 tiles, a linear layer of three-block chunks
    LayerPhase("u1", "conv", 6, 10, 12, 12, 3, 1, 1, 2, "wu", False, 6, 12, 2, "io", bias=True),
    LayerPhase("u2", "conv", 6, 10, 6, 6, 3, 1, 1, 2, "wu", False, 2, 3, 2, "io", bias=True),
    LayerPhase("u3", "linear", 24, 10, batch=6, phase="wu", tr=1, tc=6, mc=3, order="io",
               bias=True),
    # FP with the restructured BN's sums in the store (FLAG_XF + FLAG_STATS, RtlParams.fuse):
    # sum(y - k), sum((y - k)^2) per channel to the record's SSUM: a conv of two chunks, a
    # strided 1x1 conv in image-loop order, a linear layer (image-major)
    LayerPhase("s1", "conv", 6, 10, 8, 8, 3, 1, 1, 2, "fp", False, 4, 8, 2, "wo", stats=True),
    LayerPhase("s2", "conv", 10, 6, 8, 8, 1, 2, 0, 1, "fp", False, 4, 4, 2, "io", stats=True),
    LayerPhase("s3", "linear", 24, 10, batch=8, phase="fp", tr=1, tc=8, mc=2, stats=True),
    # the load transform (FLAG_XF, record LK1 and LRELU): the input words load as
    # relu?(gamma*((x - mean)*invstd) + beta): FP with the ReLU and the sums (a resnet block's
    # second conv), FP without either (K1 S2, io), WU with the ReLU
    LayerPhase("x1", "conv", 6, 10, 8, 8, 3, 1, 1, 2, "fp", False, 4, 8, 2, "wo", stats=True,
               xf=2),
    LayerPhase("x2", "conv", 10, 6, 8, 8, 1, 2, 0, 1, "fp", False, 4, 4, 2, "io", xf=1),
    LayerPhase("x3", "conv", 6, 10, 12, 12, 3, 1, 1, 2, "wu", False, 6, 12, 2, "io", xf=2),
    # BP with the recomputed mask (record MK: the mask source is a fused BN's input, the mask
    # bn(src) > 0): a strided conv of two chunks; with the BN BP sums sum(dx), sum(dx*x_hat)
    # (FLAG_STATS), tiles of 50 positions; a linear layer (image-major) with the sums
    LayerPhase("r1", "conv", 6, 10, 12, 12, 3, 2, 1, 2, "bp", False, 6, 12, 2, "wo", True,
               mk=True),
    LayerPhase("r2", "conv", 6, 10, 10, 10, 3, 1, 1, 2, "bp", False, 5, 10, 2, "wo", True,
               mk=True, stats=True),
    LayerPhase("r3", "linear", 24, 10, batch=6, phase="bp", tr=1, tc=6, mc=2, order="io",
               mask=True, mk=True, stats=True),
    # BP with BN BP dx in the loads (FLAG_XF, record LMODE 1): dz loads as the BN's dx,
    # coef*((n*dz - sdy) - x_hat*sdyx), y read beside it on m_axi2: a conv of two chunks
    # (dz's 6 channels leave pad lanes), a stride-2 conv in image-loop order, a linear
    # layer (image-major)
    LayerPhase("d1", "conv", 10, 6, 8, 8, 3, 1, 1, 2, "bp", False, 4, 8, 2, "wo", dx=True),
    LayerPhase("d2", "conv", 6, 10, 12, 12, 3, 2, 1, 1, "bp", False, 6, 12, 2, "io", dx=True),
    LayerPhase("d3", "linear", 24, 10, batch=8, phase="bp", tr=1, tc=8, mc=2, order="io",
               dx=True),
    # WU with LMODE 1: the error tiles load as the BN's dx (into the OFM banks), x plain: a
    # conv of two chunks, a linear layer
    LayerPhase("d4", "conv", 6, 10, 12, 12, 3, 1, 1, 2, "wu", False, 6, 12, 2, "io", dx=True),
    LayerPhase("d5", "linear", 24, 10, batch=8, phase="wu", tr=1, tc=8, mc=1, order="io",
               dx=True),
    # resnet20's BP records: dz loads as the BN's dx (LMODE 1) and the store recomputes the
    # previous BN's mask and accumulates its BP sums (MK, FLAG_STATS), one record
    LayerPhase("r4", "conv", 6, 10, 8, 8, 3, 1, 1, 2, "bp", False, 4, 8, 2, "wo", True,
               mk=True, stats=True, dx=True),
    # resnet20's WU records (the C++'s wdx2): the error tiles load as the BN's dx (its
    # constants at MK, y at SK) and the input tiles as the previous BN's affine + ReLU
    LayerPhase("d6", "conv", 6, 10, 8, 8, 3, 1, 1, 2, "wu", False, 8, 8, 2, "io", xf=2,
               dx=True),
    # BP stores with read passes before each store (tile_wr's SE/SK buffers): tiny's record
    # (dz as the BN's dx, another sender's error added in the store: SE) and resnet20's full
    # one (dx loads, SE, the mask src > 0 of the stored BN output, the BN BP sums' x_hat
    # from y at SK)
    LayerPhase("r5", "conv", 6, 10, 8, 8, 3, 1, 1, 2, "bp", False, 4, 8, 2, "wo", dx=True,
               se=True),
    LayerPhase("r6", "conv", 6, 10, 8, 8, 3, 1, 1, 2, "bp", False, 4, 8, 2, "wo", True,
               mk=True, stats=True, dx=True, se=True, sk=True),
]

# AXI data widths: 4x4 at 128 bits (4 words a beat: tile_rd, tile_wr and engine_wload take
# whole beats, as on the Zynq UltraScale+ HP ports); 2x4 NCHW at 32 bits (at 64 its BP weight
# runs' burst count, the Tm != Tn miss below, grows to 2.4% on b2: README); the 64-bit
# build (Zynq-7000) in test_synthesizable_fp_units.
# Both are built with the fused store (RtlParams.fuse: the s* cases); WDB_SETS without it.
SETS = {
    "4x4-reshaped": (_params(4, 4, axi=128, fuse=True), CASES),
    "2x4-nchw": (_params(2, 4, "nchw", fuse=True), CASES),
}
# Double-buffered weight chunks (issue 13, EngineParams.wdb) on the same two builds: FP and
# BP with several chunks (wo and io), a ReLU-masked BP (its chunks wait for the mask reads),
# a weight-bound linear BP, and WU, whose chunk k accumulates into bank k mod 2 while chunk
# k-1 is written back: w1 (2 chunks at 4x4, 3 at 2x4), u1 (the same with the bias pass
# after the last write-back) and w4 (3 chunks at 4x4, 6 at 2x4; this set only).
WDB_CASES = [c for c in CASES if c.name in ("c1", "b2", "m1", "l2", "w1", "f1", "u1")] + [
    LayerPhase("w4", "conv", 6, 12, 8, 8, 3, 1, 1, 2, "wu", False, 4, 8, 1, "io")]
WDB_SETS = {
    "4x4-reshaped-wdb": (_params(4, 4, axi=128, wdb=True), WDB_CASES),
    "2x4-nchw-wdb": (_params(2, 4, "nchw", wdb=True), WDB_CASES),
}

# First-layer tap packing (issue 13, RtlParams.pack): FP and WU of 1-, 2- and 3-channel 3x3
# convs carry taps = min(9, Tn // in_c) kernel offsets in the reduction lanes (4x4: 1 channel
# 4 taps, 2 channels 2 taps; 2x8: 1 channel 8 taps, 3 channels 2 taps, 6 of 8 lanes), with
# padding, stride 2, both loop orders, several chunks, a WU with FLAG_BIAS (its bias pass
# unpacked); beside them jobs that do not pack on the same build: BP of a packed layer,
# a deeper conv, a linear layer. 4x4: the 128-bit build with the fused store (whole-beat
# loads: a bank takes its channel's word of the beat; whole-beat weight loads rotated by
# the tap's lane offset); 2x8: 32 bits.
PACK_CASES = [
    LayerPhase("p1", "conv", 1, 6, 12, 12, 3, 1, 1, 2, "fp", True, 6, 12, 2, "wo"),
    LayerPhase("p2", "conv", 2, 6, 12, 12, 3, 2, 1, 2, "fp", False, 3, 6, 1, "io"),
    LayerPhase("p3", "conv", 1, 6, 12, 12, 3, 1, 1, 2, "wu", False, 6, 12, 2, "io"),
    LayerPhase("p4", "conv", 2, 6, 12, 12, 3, 2, 1, 2, "wu", False, 3, 6, 2, "io", bias=True),
    LayerPhase("q1", "conv", 2, 6, 12, 12, 3, 1, 1, 2, "bp", False, 6, 12, 2, "wo"),
    LayerPhase("q2", "conv", 6, 10, 12, 12, 3, 1, 1, 2, "fp", True, 6, 12, 2, "wo"),
    LayerPhase("q3", "linear", 24, 10, batch=8, phase="fp", tr=1, tc=8, mc=2),
]
PACK_CASES_8 = [
    LayerPhase("t1", "conv", 3, 6, 12, 12, 3, 1, 1, 2, "fp", True, 6, 12, 3, "wo"),
    LayerPhase("t2", "conv", 3, 6, 12, 12, 3, 1, 1, 2, "wu", False, 6, 12, 3, "io"),
    LayerPhase("t3", "conv", 1, 4, 12, 12, 3, 2, 1, 2, "fp", False, 6, 6, 2, "io"),
    LayerPhase("t4", "conv", 1, 4, 12, 12, 3, 2, 1, 2, "wu", False, 6, 6, 2, "io"),
]
PACK_SETS = {
    "4x4-reshaped-pack": (_params(4, 4, axi=128, fuse=True, pack=True), PACK_CASES),
    "2x8-reshaped-pack": (_params(2, 8, pack=True), PACK_CASES_8),
}

# Pixel lanes (issue 13, EngineParams.p): P adjacent output pixels of a tile row a cycle
# (a linear layer's map is 1 x batch: P images). FP, BP and WU; K 3 and 1; stride 1 and 2;
# both loop orders; tiles whose width is not a multiple of P (c2: 6 columns at P = 4; b3,
# c3: 8 columns, w2: 6); a ReLU-masked BP; an FP with its bias; linear FP, BP and WU
# (l3 at P = 4: two pixel groups of the batch of 8), a batch-1 linear WU (l4: one pixel,
# P - 1 lanes idle, G = 8 copies).
PIX_CASES = [c for c in CASES if c.name in ("c1", "c2", "c3", "b1", "b2", "b3", "w1", "w2",
                                            "w3", "l1", "l2", "l3", "l4", "m1", "f1")]
PIX_SETS = {
    "2x4-reshaped-p2": (_params(2, 4, p=2), PIX_CASES),
    "2x2-reshaped-p4": (_params(2, 2, p=4, wbuf=512), PIX_CASES),   # l4: 12 blocks x G 8 x mc 4
}


@pytest.fixture(scope="session")
def build_cache(tmp_path_factory):
    d = tmp_path_factory.mktemp("rtl-top-builds")
    old, cosim.BUILD_CACHE = cosim.BUILD_CACHE, d
    yield d
    cosim.BUILD_CACHE = old


_RUNS: dict = {}
_WORK: dict = {}


def _run(name, tmp_path_factory, build_cache):
    if name not in _RUNS:
        _require("verilator")
        p, cases = {**SETS, **WDB_SETS, **PACK_SETS, **PIX_SETS}[name]
        work = tmp_path_factory.mktemp(name)
        res = run_layer_phases(p, cases, workdir=work)
        _RUNS[name] = (p, res, model_rows(p, res))
        _WORK[name] = work       # image.npy (before) and dump0.npy (after every case)
    return _RUNS[name]


def _assert_model_and_bursts(p, rows, model_bar=MODEL_BAR) -> None:
    """Each layer-phase's measured cycles within ``model_bar`` % of the model's (None: not
    checked), and the bursts the RTL issued the ones the model counts, 4 KiB page splits
    included: exactly, except BP weight loads with Tm != Tn (the RTL loads whole Tn-wide
    DRAM blocks per run, the model prices Tm-wide chunks: not counted yet, within 2%)."""
    bad = [r for r in rows if model_bar is not None and abs(r.err_pct) > model_bar]
    assert not bad, _table(rows)
    for r in rows:
        tol = 0.0 if p.tm == p.tn or not r.label.endswith(":bp") else 0.02 * r.bursts
        assert abs(r.bursts - r.model_bursts) <= tol, _table(rows)


def _table(rows) -> str:
    return "\n".join(f"{r.label:10s} rel {r.max_rel:.2e} cycles {r.cycles:7d} model "
                     f"{r.model:9.0f} ({r.err_pct:+5.1f}%) bursts {r.bursts} / "
                     f"{r.model_bursts:.0f}" for r in rows)


# ------------------------------------------------------------------ generation

def test_verilog_is_deterministic_and_complete():
    p = _params(4, 4)
    a, b = rtl_verilog(p), rtl_verilog(p)
    assert a == b
    assert {"efgen_top.v", "layer_seq.v", "tile_rd.v", "tile_wr.v", "engine_core.v",
            "sgd_wb.v", "axi_dma_rd.v", "axi_dma_wr.v", "desc_regs.v"} <= set(a)
    assert rtl_verilog(_params(2, 4, "nchw"))["layer_seq.v"] != a["layer_seq.v"]


@pytest.mark.parametrize("name", ["4x4-reshaped", "2x4-nchw", "4x4-reshaped-wdb",
                                  "2x4-nchw-wdb", "4x4-reshaped-pack", "2x8-reshaped-pack"])
def test_lint_verilator_and_icarus(name, tmp_path):
    _require("verilator")
    _require("iverilog")
    p, _ = {**SETS, **WDB_SETS, **PACK_SETS}[name]
    files = rtl_verilog(p)
    for f, text in files.items():
        (tmp_path / f).write_text(text)
    srcs = sorted(str(tmp_path / f) for f in files)
    # WIDTH: the sequencer's address arithmetic truncates and extends on purpose.
    r = subprocess.run(["verilator", "--lint-only", "-Wall", "-Wno-WIDTH", "-Wno-UNUSEDSIGNAL",
                        "-Wno-UNUSEDPARAM", "-Wno-PINCONNECTEMPTY", "--top-module", "efgen_top",
                        *srcs], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    r = subprocess.run(["iverilog", "-g2005", "-s", "efgen_top", "-o", str(tmp_path / "t.vvp"),
                        *srcs], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]


def test_unsupported_designs_are_refused():
    with pytest.raises(ValueError, match="power of two"):
        _params(3, 6)
    p = _params(4, 4, ifm=64)
    with pytest.raises(EfgenError, match="IFM depth"):
        cosim.check_params(p, [CASES[0]])
    with pytest.raises(EfgenError, match="stride 3"):
        cosim.check_params(_params(4, 4), [LayerPhase("x", "conv", 4, 4, 9, 9, 3, 3, 0)])


# ------------------------------------------------------------------ layer-phases

@pytest.mark.parametrize("name", list(SETS))
def test_layer_phases_match_golden(name, tmp_path_factory, build_cache):
    _, res, rows = _run(name, tmp_path_factory, build_cache)
    print(f"\n{name}\n{_table(rows)}")
    assert {r.lp.phase for r in res} == {"fp", "bp", "wu"}
    for r in res:
        assert r.max_rel <= BAR, (r.lp.label, r.errors)


@pytest.mark.parametrize("name", list(SETS))
def test_model_predicts_measured_cycles(name, tmp_path_factory, build_cache):
    p, res, rows = _run(name, tmp_path_factory, build_cache)
    _assert_model_and_bursts(p, rows)
    splits = {r.label: r.page_splits for r in rows}
    assert splits["g1:fp"] > 0 and splits["g2:bp"] > 0, splits


@pytest.mark.parametrize("name", list(WDB_SETS))
def test_double_buffered_weights(name, tmp_path_factory, build_cache):
    """Ping-pong weight chunks: the golden within 1e-4, the model within 5% per layer-phase
    with the model's bursts (FP/BP: the single buffer's), and the measured cycles below the
    single buffer's where a chunk's weights can load during the previous chunk's compute
    (FP/BP with several chunks) and where a WU chunk's write-back runs beside the next
    chunk's accumulation (w1, u1)."""
    p, res, rows = _run(name, tmp_path_factory, build_cache)
    _, _, base_rows = _run(name[:-len("-wdb")], tmp_path_factory, build_cache)
    base = {r.label: r for r in base_rows}
    print(f"\n{name}\n{_table(rows)}")
    print("\n".join(f"{r.label:10s} single {base[r.label].cycles:7d} double {r.cycles:7d} "
                    f"({100.0 * (r.cycles - base[r.label].cycles) / base[r.label].cycles:+5.1f}%)"
                    for r in rows if r.label in base))
    for r in res:
        assert r.max_rel <= BAR, (r.lp.label, r.errors)
    _assert_model_and_bursts(p, rows)
    # WU's write-back reads W and V in pieces of sgd_rpiece words on one port: whole bursts
    # leave the single buffer's bursts; shorter ones (at 128 bits, half a maximal burst)
    # more of them, which the model counts (above)
    from efgen.model.engine import sgd_rpiece

    burst = p.max_burst * p.wpb
    for r in rows:
        if r.label in base:
            b0 = base[r.label].bursts
            if r.label.endswith(":wu") and sgd_rpiece(burst) < burst:
                assert r.bursts > b0, (r.label, r.bursts, b0)
            else:
                assert r.bursts == b0, (r.label, r.bursts, b0)
    for label in ("c1:fp", "b2:bp", "l2:bp", "w1:wu", "u1:wu"):
        assert {r.label: r.cycles for r in rows}[label] < base[label].cycles, label


def test_layouts_compared_by_measurement(tmp_path_factory, build_cache):
    """Same layer-phases in both layouts: NCHW needs more, shorter bursts."""
    _, _, nchw = _run("2x4-nchw", tmp_path_factory, build_cache)
    p, _ = SETS["2x4-nchw"]
    pr = _params(2, 4, axi=p.axi_width)
    resh = model_rows(pr, run_layer_phases(
        pr, CASES[:3], workdir=tmp_path_factory.mktemp("2x4-reshaped")))
    for a, b in zip(resh, nchw[:3]):
        assert a.label == b.label and a.max_rel <= BAR
        assert b.bursts >= a.bursts     # equal only when the tile is the whole map (c3)
        assert abs(a.err_pct) <= MODEL_BAR
    assert nchw[0].bursts > resh[0].bursts and nchw[1].bursts > resh[1].bursts


def test_icarus_smoke(tmp_path_factory, build_cache):
    _require("iverilog")
    p = _params(2, 2, ofm=128, wbuf=128)
    res = run_layer_phases(p, [
        LayerPhase("s", "conv", 3, 4, 6, 6, 3, 2, 1, 1, "fp", True, 3, 3, 1, "wo"),
        LayerPhase("s", "conv", 3, 4, 6, 6, 3, 2, 1, 1, "bp", False, 6, 6, 1, "wo"),
        LayerPhase("s", "conv", 3, 4, 6, 6, 3, 2, 1, 1, "wu", False, 3, 3, 1, "io"),
    ], sim="icarus", workdir=tmp_path_factory.mktemp("icarus"))
    for r in res:
        assert r.max_rel <= BAR, (r.lp.label, r.errors)


@pytest.mark.parametrize("impl", ["synth", "dsp"])
def test_synthesizable_fp_units(impl, tmp_path_factory, build_cache):
    """The synthesizable (RNE + flush-to-zero) FP32 units in the whole accelerator: the
    fabric ones and the DSP-based adder (efgen build's default, here with 64-bit AXI data
    as on Zynq-7000: tile_rd, tile_wr and engine_wload take 2-word beats, the BP mask
    tiles too (m2); the model's cycles within MODEL_BAR there)."""
    _require("verilator")
    p = _params(2, 2, impl=impl, axi=64 if impl == "dsp" else 32)
    assert impl != "dsp" or (p.load_words, p.store_words, p.engine.wl_words) == (2, 2, 2)
    cases = [CASES[1], CASES[4], CASES[7]] + ([CASES[13]] if impl == "dsp" else [])
    res = run_layer_phases(p, cases, workdir=tmp_path_factory.mktemp(impl))
    for r in res:
        assert r.max_rel <= BAR, (r.lp.label, r.errors)
    if impl == "dsp":
        rows = model_rows(p, res)
        print(_table(rows))
        assert all(abs(r.err_pct) <= MODEL_BAR for r in rows), _table(rows)


def test_a_broken_sequencer_is_caught(tmp_path_factory, build_cache, monkeypatch):
    """Start every FP block from zero (keep only the last reduction block): FP with
    several reduction blocks must fail the comparison, BP and WU are untouched."""
    _require("verilator")
    real = cosim.rtl_verilog

    def broken(p):
        files = dict(real(p))
        good = "e_acc_init <= mode == 2'd2 ? cp_tile_first : (cp_nb == 0);"
        assert good in files["layer_seq.v"]
        files["layer_seq.v"] = files["layer_seq.v"].replace(
            good, "e_acc_init <= mode == 2'd2 ? cp_tile_first : 1'b1;")
        return files

    monkeypatch.setattr(cosim, "rtl_verilog", broken)
    res = run_layer_phases(_params(2, 2), [CASES[0], CASES[6]],
                           workdir=tmp_path_factory.mktemp("broken"))
    assert res[0].max_rel > 1e-2          # FP, 6 input channels on 2 lanes: 3 blocks
    assert res[1].max_rel <= BAR          # WU does not use that path


# ------------------------------------------------------------------ a training step

def test_tiny_training_step(tmp_path_factory, build_cache):
    """tiny, batch 2: conv and linear layer-phases, the element-wise, batchnorm and pooling /
    shortcut descriptors on the RTL, the rest (flatten, the loss) in numpy."""
    _require("verilator")
    from efgen.cosim.step import format_step, run_rtl_step
    from efgen.frontend import load_net
    from efgen.frontend.boards import load_board
    from efgen.model.schedule import Request, schedule
    from efgen.rtl.top import rtl_params

    net = load_net("tiny")
    design = schedule(Request(net, load_board("zcu102"), batch=2, tm=4, tn=4))
    # every register and memory no reset sets starts random (Verilator --x-initial unique)
    res = run_rtl_step(net, design, rtl_params(design), workdir=tmp_path_factory.mktemp("step"),
                       plusargs=cosim.RANDOM_INIT + ("+verilator+seed+7",))
    print(format_step(res))
    assert res.ok, format_step(res)
    assert res.descriptors == len(res.ran) and all(r.ok for r in res.local)  # the verdict
    assert res.max_rel <= BAR                                                  # and no drift
    assert abs(res.loss - res.golden_loss) <= 1e-5 * abs(res.golden_loss)
    where = {(r.layer, r.phase): r.where for r in res.ran}
    assert where[("conv3", "wu")] == "rtl" and where[("fc", "fp")] == "rtl"
    assert where[("bn1", "fp")] == "rtl" and where[("add1", "errsum")] == "rtl"
    assert where[("pool1", "fp")] == "rtl"
    # conv/linear layer-phases (14), the element-wise descriptors (vec_unit: 4), the
    # batchnorms (bn_unit: 6) and the pooling / shortcut descriptors (pool_unit: 8) on the
    # RTL; the loss on the host (tiny's flatten, of a 1x1 map, is free: no descriptor)
    from efgen.rtl.top import POOL_OPS
    on_rtl = {"CONV_FP", "CONV_BP", "CONV_WU", "RELU_FP", "RELU_BP", "ADD_FP", "ERRSUM",
              "BN_FP", "BN_BP", *POOL_OPS}
    assert all((r.where == "rtl") == (r.op in on_rtl) for r in res.ran)
    assert sum(r.where == "rtl" for r in res.ran) == 32
    # the biases (conv4, fc) run on the RTL: FP's add (tile_wr's store lanes) and WU's
    # gradient and SGD (layer_seq's bias RAM, sgd_wb's bias pass): no host parts at all
    biased = [l.name for l in net if l.bias]
    assert set(biased) == {"conv4", "fc"}
    assert [(r.layer, r.phase, r.host_parts) for r in res.ran if r.host_parts] == []
    assert all(where[(n, "wu")] == "rtl" for n in biased)
    # vec_unit's and pool_unit's cycles against the model (efgen.cosim.validate.vec_cycles,
    # pool_cycles), 5% bar; bn_unit's (bn_cycles), 2%
    from efgen.cosim.validate import bn_cycles, pool_cycles, vec_cycles
    from efgen.hls.program import build_program
    prog = build_program(net, design, 0.01, 0.9, 5e-4)
    descs = {(s.layer, s.what): s.desc for s in prog.fp + prog.bp}
    vec = [(r, (pool_cycles if r.op in POOL_OPS else vec_cycles)(
                rtl_params(design), descs[(r.layer, r.phase)]))
           for r in res.ran if r.where == "rtl"
           and r.op not in ("CONV_FP", "CONV_BP", "CONV_WU", "BN_FP", "BN_BP")]
    assert len(vec) == 12 and all(abs(m - r.cycles) <= 0.05 * r.cycles for r, m in vec), vec
    bn = [(r, bn_cycles(rtl_params(design), descs[(r.layer, r.phase)]))
          for r in res.ran if r.op in ("BN_FP", "BN_BP")]
    assert len(bn) == 6 and all(abs(m - r.cycles) <= 0.02 * r.cycles for r, m in bn), bn
    assert all(r.cycles > 0 for r in res.ran if r.where == "rtl")
    assert len(res.rows) > 60 and {"conv3:new.weight", "fc:vel.weight", "conv1:dy"} <= {
        r.key for r in res.rows}


def test_cli_cosim_layer(tmp_path, build_cache, capsys, monkeypatch):
    _require("verilator")
    from efgen.cli import main

    monkeypatch.chdir(tmp_path)           # a relative -o, as in `make cosim`
    assert main(["cosim", "--net", "tiny", "--tiles", "Tm=4,Tn=4", "--layer", "conv2",
                 "--phase", "bp", "-o", "c"]) == 0
    out = capsys.readouterr().out
    assert "conv2:bp" in out and "model err" in out
    assert (tmp_path / "c" / "cosim.json").exists()
    assert main(["cosim", "--net", "tiny", "--tiles", "Tm=4,Tn=4", "--layer", "conv2",
                 "--phase", "bp", "--backpressure", "1"]) == 0
    assert "back-pressure seed 1" in capsys.readouterr().out
    assert main(["cosim", "--net", "tiny", "--tiles", "Tm=4,Tn=4", "--layer", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nope" in err


def test_live_results_match_the_final_dump(tmp_path_factory, build_cache):
    """`on_result` reports each layer-phase from the testbench's per-run output copy while
    the simulation goes on; the figures equal those read from the final DRAM dump."""
    p, res, _ = _run("4x4-reshaped", tmp_path_factory, build_cache)
    seen = []
    live = run_layer_phases(p, CASES[:4], workdir=tmp_path_factory.mktemp("live"),
                            on_result=seen.append)
    assert [r.lp.label for r in seen] == [lp.label for lp in CASES[:4]]
    assert live == seen
    for a, b in zip(live, res[:4]):
        assert (a.cycles, a.bursts, a.beats, a.errors) == (b.cycles, b.bursts, b.beats, b.errors)


# ------------------------------------------------------------------ bus faults, back-pressure

# Small FP, BP and WU cases (6 -> 4 channels, 6x6, K 3, stride 2): short runs.
SMALL = [     # (the FP with FLAG_BIAS: its bias load on port 1 under back-pressure too)
    LayerPhase("s", "conv", 6, 4, 6, 6, 3, 2, 1, 1, "fp", True, 3, 3, 1, "wo", bias=True),
    LayerPhase("s", "conv", 6, 4, 6, 6, 3, 2, 1, 1, "bp", False, 6, 6, 1, "wo"),
    LayerPhase("s", "conv", 6, 4, 6, 6, 3, 2, 1, 1, "wu", False, 3, 3, 1, "io"),
]
PAUSE_SEEDS = (1, 2, 3)


@pytest.mark.parametrize("name", list(SETS) + ["2x4-nchw-wdb"])
def test_backpressure_is_bit_identical(name, tmp_path_factory, build_cache):
    """Random back-pressure and idle cycles on every AXI channel (3 seeds, FP/BP/WU): the
    DRAM after each pass is bit-identical to the unpaused pass's; only cycles grow. (With
    double-buffered weights: FP and BP of 2 and 3 chunks, the weight streamer stalled, and a
    WU of 2 chunks, its first write-back beside the second chunk's accumulation.)"""
    _require("verilator")
    p, _ = {**SETS, **WDB_SETS}[name]
    runs = [Run(i) for i in range(len(SMALL))]
    passes = cosim.run_passes(p, SMALL, [(runs, None)] + [(runs, Pause(s, 0.3))
                                                          for s in PAUSE_SEEDS],
                              workdir=tmp_path_factory.mktemp(f"pause-{name}"))
    base = passes[0]
    assert all(r.ok for r in base.results), [(r.lp.label, r.errors, r.error) for r in base.results]
    for seed, ps in zip(PAUSE_SEEDS, passes[1:]):
        print(name, seed, [(r.lp.label, a.cycles, r.cycles) for a, r in zip(base.results, ps.results)])
        assert np.array_equal(ps.dump, base.dump), f"seed {seed}: DRAM differs"
        for a, r in zip(base.results, ps.results):
            assert r.error is None and r.cycles > a.cycles, (seed, r.lp.label, r.error)


def test_bus_errors_end_the_descriptor(tmp_path_factory, build_cache):
    """SLVERR/DECERR on reads and write responses: the run ends (no hang) with STATUS.ERROR,
    the response and port in STATUS and the failing burst in FAIL_ADDR; the next
    descriptors run cleanly without a reset. Descriptors the RTL cannot run are rejected
    with their EfgenConvStatus code and write nothing."""
    _require("verilator")
    p, _ = SETS["4x4-reshaped"]
    big = (("in_h", 24), ("in_w", 24), ("out_h", 12), ("out_w", 12), ("tr", 12), ("tc", 12))
    ofm = (("in_h", 20), ("in_w", 20), ("out_h", 20), ("out_w", 20), ("kh", 1), ("kw", 1),
           ("stride", 1), ("pad", 0), ("tr", 20), ("tc", 20))    # 400 pixels > OFM 256
    faulty = [Run(0, faults=(Fault(0, 0, offset=40, resp=2),)),     # FP: x read, SLVERR
              Run(1, faults=(Fault(2, 7, offset=10, resp=3),)),     # BP: dx write, DECERR
              Run(2, faults=(Fault(1, 2, resp=3),)),                # WU: SGD weight read
              Run(2, faults=(Fault(2, 3, resp=2),)),                # WU: SGD momentum write
              Run(0, set=big),                                      # rejected: IFM
              Run(0), Run(1)]                                       # clean afterwards
    rejects = [Run(0, set=(("in_c", 0),)), Run(0, set=(("tr", 0),)), Run(0, set=big),
               Run(2, set=(("mc", 0),)), Run(0, set=ofm), Run(0, set=(("out_c", 64), ("mc", 16))),
               Run(0, set=(("op", 9),)), Run(0, set=(("stride", 3),)),
               Run(0, set=(("flags", 4), ("out_c", 260))),      # FP bias beyond BIAS_BUF
               Run(2, set=(("flags", 4), ("out_c", 260))),      # WU bias beyond BIAS_BUF
               Run(0, set=(("flags", 64 | 128),)),              # FP with a fused record
               Run(1, set=(("flags", 2 | 64),)),                # BP with a fused record
               Run(2, set=(("flags", 64),))]                    # WU with a fused record
    # (the fused records' address, a[3] / a[7], is 0 here: no record, ERR_ADDRESS (4) as the
    # C++'s make_job; word 0 of the image is empty, so no record is read there)
    got = cosim.run_passes(p, SMALL, [(faulty, None), (rejects, None)],
                           workdir=tmp_path_factory.mktemp("faults"))
    res = got[0].results
    for r, (port, resp) in zip(res[:4], [(0, 2), (2, 3), (1, 3), (2, 2)]):
        print(r.lp.label, r.cycles, r.error)
        assert r.status & STATUS_DONE and r.status & STATUS_ERROR, hex(r.status)
        assert r.faulted is not None and r.faulted[0] == port
        assert (r.status >> 12) & 3 == resp and (r.status >> 14) & 3 == port, hex(r.status)
        assert r.fail_addr == r.faulted[1], (hex(r.fail_addr), r.faulted)
        assert ("DECERR" if resp == 3 else "SLVERR") in r.error
    assert (res[4].status >> 8) & 15 == 5 and "ERR_IFM" in res[4].error
    for r in res[5:]:                    # the same cases, clean, after the errors
        assert r.ok, (r.lp.label, r.errors, r.error)
    codes = [(r.status >> 8) & 15 for r in got[1].results]
    assert all(r.status & STATUS_ERROR for r in got[1].results)
    assert codes == [2, 3, 5, 3, 6, 7, 1, 2, 10, 10, 4, 4, 4], codes   # EfgenConvStatus, as efgen_conv_check
    assert all("ERR_BIAS" in r.error for r in got[1].results[8:10])
    assert all("ERR_ADDRESS" in r.error for r in got[1].results[10:])
    assert np.array_equal(got[1].dump, got[1].image), "a rejected descriptor wrote DRAM"


# ------------------------------------------------------------------ the HLS C++ twin

def _hls_engine(p: RtlParams, work: Path, wdb: bool = False):
    """hls_kernels/conv_engine.h compiled with the RTL's array, lanes and buffer depths
    (wdb: with EFGEN_WDB, double-buffered weight chunks)."""
    import ctypes

    from efgen.csim.cc import compile_shared, load
    from efgen.hls.desc import EfgenDesc
    from efgen.rtl.engine import ACC_DIST
    e = p.engine
    (work / "efgen_params.h").write_text("\n".join([
        "#ifndef EFGEN_PARAMS_H", "#define EFGEN_PARAMS_H", f"#define EFGEN_TM {e.tm}",
        f"#define EFGEN_TN {e.tn}", f"#define EFGEN_LANES {p.tl}",
        f"#define EFGEN_IFM_DEPTH {e.ifm_depth}", f"#define EFGEN_OFM_DEPTH {e.ofm_depth}",
        f"#define EFGEN_WBUF_DEPTH {e.wbuf_depth}", f"#define EFGEN_ACC_DIST {ACC_DIST}"]
        + (["#define EFGEN_WDB 1"] if wdb else [])
        + (["#define EFGEN_PACK 1"] if p.pack else [])
        + ([f"#define EFGEN_P {e.p}"] if e.p > 1 else []) + ["#endif", ""]))
    (work / "twin.cpp").write_text(
        '#include "efgen_params.h"\n#include "conv_engine.h"\n'
        'extern "C" void run(const EfgenDesc* d, float* mem) { efgen_conv_engine(*d, mem, mem, mem); }\n')
    lib = load(compile_shared([work / "twin.cpp"], work / "twin", include_dirs=[work]))
    lib.run.argtypes = [ctypes.POINTER(EfgenDesc), ctypes.POINTER(ctypes.c_float)]
    return lib


def test_hls_cpp_is_the_rtls_bit_exact_twin(tmp_path, tmp_path_factory, build_cache):
    """The same descriptors on the same DRAM image: the HLS C++ (C-simulation) and the RTL
    with its behavioural IEEE float32 units leave bit-identical DRAM images, because both
    follow the same order of operations (the adder tree, the accumulation order, the WU
    partial-sum copies and their fold, SGD, the store ops, the BN FP sums' slots and fold).
    Every case of the 4x4 set: FP/BP/WU, K 1 and 3, strides 1 and 2, both loop orders,
    chunks, ReLU, masks, biases, FLAG_STATS, linear layers, channel counts that leave pad
    lanes."""
    _twin(tmp_path, tmp_path_factory, build_cache, wdb=False)


def test_hls_cpp_with_wdb_is_the_rtls_bit_exact_twin(tmp_path, tmp_path_factory, build_cache):
    """The same with EFGEN_WDB: FP/BP load the next chunk's weights beside this chunk's run,
    and WU writes chunk ch-1 back (run_chunk_wu_wdb) beside chunk ch's accumulation into
    the other buffers (the WU cases of several chunks: w1, w3, l3, u1 and u2 with a bias,
    x3 with a load transform; d4 and d6, whose loader reads y on gmem2, stay serial); the
    results are the single buffer's, bit for bit."""
    _twin(tmp_path, tmp_path_factory, build_cache, wdb=True)


def test_hls_cpp_with_wdb_is_the_wdb_rtls_bit_exact_twin(tmp_path, tmp_path_factory,
                                                          build_cache):
    """The RTL with double-buffered weights (4x4-reshaped-wdb: FP/BP chunks in alternate
    banks, WU chunk k accumulated into bank k mod 2 while chunk k-1 is written back, W and V
    on m_axi1) and the C++ with EFGEN_WDB leave bit-identical DRAM images."""
    _twin(tmp_path, tmp_path_factory, build_cache, wdb=True, name="4x4-reshaped-wdb")


def _twin(tmp_path, tmp_path_factory, build_cache, wdb=False, name="4x4-reshaped"):
    """Run the cases of set ``name`` through conv_engine.h compiled with its RTL's array
    (``wdb``: with EFGEN_WDB) on the RTL run's starting image, and assert the C++ leaves
    the RTL's final image bit for bit."""
    import ctypes
    p, res, _ = _run(name, tmp_path_factory, build_cache)
    assert p.engine.impl == "behav"
    work = _WORK[name]
    image = np.load(work / "image.npy")
    rtl = np.load(work / "dump0.npy")
    cases = {**SETS, **WDB_SETS, **PACK_SETS, **PIX_SETS}[name][1]
    descs = cosim.case_descriptors(p, cases, seed=0)
    lib = _hls_engine(p, tmp_path, wdb)
    mem = image.copy().view(np.float32)
    for d in descs:
        lib.run(ctypes.byref(d), mem.ctypes.data_as(ctypes.POINTER(ctypes.c_float)))
    got = mem.view(np.uint32)
    assert not np.array_equal(got, image)                  # the C++ did write its outputs
    diff = np.flatnonzero(got != rtl)
    assert diff.size == 0, (f"{diff.size} words differ from the RTL, first at {diff[:8]}: "
                            f"hls {got[diff[:4]]} rtl {rtl[diff[:4]]}")


def test_board_driver_trains_on_the_rtl(tmp_path, build_cache, capsys):
    """The PYNQ driver's program (efgen.runtime.board, as DIR/driver/efgen_driver.py runs
    it) with --cosim: two steps of tiny on the RTL through the register map, its DRAM image
    at 1 MiB words on the bus (every address rebased), each step checked against the golden
    step; the trained parameters come back as the archive `efgen export` takes."""
    _require("verilator")
    from efgen.cli import main
    from efgen.golden.checkpoint import load_weights
    from efgen.golden.model import init_state
    from efgen.runtime.board import main as driver

    assert main(["build", "--board", "zcu102", "--net", "tiny", "--batch", "2", "--tiles",
                 "Tm=4,Tn=4", "--steps", "estimate,rtl", "-o", str(tmp_path / "b")]) == 0
    rng = np.random.default_rng(3)
    np.savez(tmp_path / "data.npz", x=rng.standard_normal((3, 3, 16, 16)).astype(np.float32),
             labels=np.array([0, 1, 2]))
    capsys.readouterr()
    code = driver(tmp_path / "b" / "design.json",
                  ["--cosim", "--steps", "2", "--data", str(tmp_path / "data.npz"), "--seed", "4",
                   "--out", str(tmp_path / "trained.npz"), "--workdir", str(tmp_path / "w")])
    out = capsys.readouterr().out
    assert code == 0, out
    lines = [l for l in out.splitlines() if l.startswith("step ")]
    assert len(lines) == 2 and all(l.endswith("PASS") for l in lines)
    from efgen.frontend import load_net

    net = load_net("tiny")
    trained, start = load_weights(net, tmp_path / "trained.npz"), init_state(net, seed=4)
    assert not np.array_equal(trained.params["conv1"]["weight"], start.params["conv1"]["weight"])
    assert main(["export", "tiny", "--weights", str(tmp_path / "trained.npz"),
                 "-o", str(tmp_path / "t.onnx")]) == 0


def test_model_record_words_are_the_descriptors():
    """efgen.model.engine prices the RTL's side-record read (FLAG_XF) with XF_RECORD words,
    a constant of its own (the model does not import the codegen stage): it must be the
    record's size; and an RTL built without the fused store refuses a FLAG_STATS case."""
    from efgen.hls.desc import XF_WORDS
    from efgen.model.engine import XF_RECORD

    assert XF_RECORD == XF_WORDS
    stats = [c for c in CASES if c.stats][0]
    with pytest.raises(EfgenError, match="fused store"):
        cosim.check_params(_params(4, 4), [stats])
    cosim.check_params(_params(4, 4, fuse=True), [stats])


def _assert_all_refused(p, mem, descs, workdir):
    """Every descriptor ends with ERR_XF (code 11) and none writes DRAM."""
    from efgen.cosim.vector import run_descriptors

    got, runs = run_descriptors(p, mem, descs, workdir=workdir)
    codes = [(r["status"] >> 8) & 15 for r in runs]
    assert all(r["status"] & STATUS_ERROR for r in runs), [hex(r["status"]) for r in runs]
    assert codes == [11] * len(descs), codes
    assert np.array_equal(got.view(np.uint32), mem.view(np.uint32)), \
        "a refused record's descriptor wrote DRAM"


def test_fused_records_the_rtl_refuses(tmp_path, build_cache):
    """A side record the RTL's fused datapath does not build (FP: a second load operand, an
    LRELU other than 0/1, LMODE 1, a BP record field (MK, the error operand SE), STATS
    without SK, an address beyond 2**30 words; BP: a load transform, an LRELU, an SK or SE
    beyond 2**30 words, FLAG_MASK without MK, FLAG_STATS without SSUM) ends the descriptor
    with ERR_XF (code 11) once the record is read, and nothing is written; BP's FLAG_STATS
    without FLAG_MASK is refused at the start (code 11); the same descriptors with their
    good records run."""
    import copy

    from efgen.cosim.vector import run_descriptors
    from efgen.hls.desc import FLAGS, XF_FIELDS

    _require("verilator")
    p, _ = SETS["4x4-reshaped"]
    img, cases = cosim._build(p, [c for c in CASES if c.name in ("x1", "r2")], 0)
    words = img.words.copy()
    bad = {"x1": {"LX2": 4096, "LRELU": 2, "LMODE": 1, "MK": 4096, "SE": 4096, "SK": 0,
                  "LK1": 1 << 31},
           "r2": {"LK1": 4096, "LRELU": 1, "SK": 1 << 31, "SE": 1 << 31, "MK": 0, "SSUM": 0}}
    descs, records, base = [], [], words.size
    for c in cases:
        rec = int(c.desc.a[3])
        for field, value in bad[c.lp.name].items():
            r = words[rec:rec + 16].copy()
            r[XF_FIELDS[field]] = value & 0xFFFFFFFF
            if field == "LK1":
                r[XF_FIELDS[field] + 1] = 0
            d = copy.copy(c.desc)
            d.a[3] = base + 16 * len(records)
            records.append(r)
            descs.append(d)
    d = copy.copy(cases[1].desc)
    d.flags &= ~FLAGS["MASK"]
    descs.append(d)
    mem = np.concatenate([words] + records).view(np.float32)
    _assert_all_refused(p, mem, descs, tmp_path / "bad")
    good = [c.desc for c in cases]
    got, runs = run_descriptors(p, mem, good, workdir=tmp_path / "good")
    assert all(r["status"] & STATUS_ERROR == 0 for r in runs), [hex(r["status"]) for r in runs]
    assert not np.array_equal(got.view(np.uint32), mem.view(np.uint32))


def test_bn_dx_records_the_rtl_refuses(tmp_path, build_cache):
    """CONV_BP's record (BN BP dx in the loads, LMODE 1; d1's): what the RTL does not build
    or the C++ refuses - a ReLU on the error stream (LRELU 1), LMODE 2, an affine load in BP
    (LMODE 0), no y (LX2 0) or no sdy/sdyx (LK2 0), the BP store's fields where they do not
    apply (MK without FLAG_MASK, SK without FLAG_STATS), an SE or LX2 beyond 2**30 words
    (the SE of 4096 runs: case r5) - ends the descriptor with
    ERR_XF (code 11) and writes nothing; so do CONV_WU records: x3's affine one with LMODE 1
    (no LX2, LK2), d4's LMODE 1 with LRELU 1, or with MK but no SK (the C++'s wdx2, case d6,
    needs y at SK). The good record runs and matches the golden."""
    import copy

    from efgen.cosim.vector import run_descriptors
    from efgen.hls.desc import XF_FIELDS

    _require("verilator")
    p, _ = SETS["4x4-reshaped"]
    cases_in = [c for c in CASES if c.name in ("d1", "x3", "d4")]
    img, cases = cosim._build(p, cases_in, 0)
    c, cw, cd = (next(x for x in cases if x.lp.name == n) for n in ("d1", "x3", "d4"))
    good, wu, wdx = c.desc, cw.desc, cd.desc
    rec, wrec, drec = int(good.a[3]), int(wu.a[7]), int(wdx.a[7])
    words = img.words.copy()
    bad = [("LRELU", 1), ("LMODE", 2), ("LMODE", 0), ("LX2", 0), ("LK2", 0), ("MK", 4096),
           ("SE", 1 << 31), ("SK", 4096), ("LX2", 1 << 31)]
    descs, records, base = [], [], words.size
    for i, (field, value) in enumerate(bad):
        r = words[rec:rec + 16].copy()
        r[XF_FIELDS[field]] = value & 0xFFFFFFFF
        records.append(r)
        d = copy.copy(good)
        d.a[3] = base + 16 * i
        descs.append(d)
    for src, at, field, value in [(wu, wrec, "LMODE", 1), (wdx, drec, "LRELU", 1),
                                  (wdx, drec, "MK", 4096)]:
        r = words[at:at + 16].copy()
        r[XF_FIELDS[field]] = value
        d = copy.copy(src)
        d.a[7] = base + 16 * len(records)
        records.append(r)
        descs.append(d)
    mem = np.concatenate([words] + records).view(np.float32)
    _assert_all_refused(p, mem, descs, tmp_path / "bad")
    got, runs = run_descriptors(p, mem, [good], workdir=tmp_path / "good")
    assert runs[0]["status"] & STATUS_ERROR == 0, hex(runs[0]["status"])
    addr, shape, kind = c.regions["dx"]
    dx = cosim._read(p, got.view(np.uint32), addr, shape, kind).astype(np.float64)
    ref = c.expect["dx"]
    assert np.max(np.abs(dx - ref)) <= BAR * np.max(np.abs(ref))


# ------------------------------------------------------------------ tap packing (issue 13)

@pytest.mark.parametrize("name", list(PACK_SETS))
def test_packed_layer_phases(name, tmp_path_factory, build_cache):
    """First-layer tap packing: every layer-phase within 1e-4 of the golden and within 5% of
    the model (the model prices the packed jobs' KP kernel passes and G copies), the same
    bursts; the packed FP and WU jobs use at least half the lanes."""
    from efgen.rtl.engine import pack_taps

    p, res, rows = _run(name, tmp_path_factory, build_cache)
    print(f"\n{name}\n{_table(rows)}")
    for r in res:
        assert r.max_rel <= BAR, (r.lp.label, r.errors)
    _assert_model_and_bursts(p, rows)
    packed = [lp for lp in PACK_SETS[name][1] if lp.phase != "bp" and lp.op == "conv"
              and pack_taps(lp.n, lp.k, p.tn) > 1]
    assert {lp.phase for lp in packed} == {"fp", "wu"}
    for lp in packed:
        assert pack_taps(lp.n, lp.k, p.tn) * lp.n * 2 >= p.tn, lp.name


@pytest.mark.parametrize("name", list(PACK_SETS))
def test_packed_hls_cpp_is_the_rtls_bit_exact_twin(name, tmp_path, tmp_path_factory,
                                                    build_cache):
    """The C++ with EFGEN_PACK (conv_engine.h: j.taps, the per-lane offsets, the packed
    weight and gradient words, the write-back's gbank) and the pack build's RTL leave
    bit-identical DRAM images."""
    _twin(tmp_path, tmp_path_factory, build_cache, name=name)


# ------------------------------------------------------------------ pixel lanes (issue 13)

@pytest.mark.parametrize("name", list(PIX_SETS))
def test_pixel_lane_layer_phases(name, tmp_path_factory, build_cache):
    """P pixel lanes: every layer-phase within 1e-4 of the golden, the model's cycles
    (tr*ceil(tc/P) pixel groups, WU's adder tree over P at the RTL's adder latency:
    rtl_hw's wu_tree_level) within MODEL_BAR, with the bursts the model counts. (Before
    the model priced each reduction block's tile load apart, c1, b1 and f1 at 2x4x2,
    whose compute lies between a full block's load and the last one's, measured 5-9%
    above it.)"""
    p, res, rows = _run(name, tmp_path_factory, build_cache)
    print(f"\n{name}\n{_table(rows)}")
    assert {r.lp.phase for r in res} == {"fp", "bp", "wu"}
    for r in res:
        assert r.max_rel <= BAR, (r.lp.label, r.errors)
    _assert_model_and_bursts(p, rows)


@pytest.mark.parametrize("name", list(PIX_SETS))
def test_pixel_lane_hls_cpp_is_the_rtls_bit_exact_twin(name, tmp_path, tmp_path_factory,
                                                       build_cache):
    """The C++ with EFGEN_P (conv_engine.h mac_pass: lane pp at column pc + pp, idle past
    the row's end; WU's tree over P in front of each accumulator) and the P-lane RTL leave
    bit-identical DRAM images."""
    _twin(tmp_path, tmp_path_factory, build_cache, name=name)
