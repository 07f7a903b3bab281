"""The RTL flow's resources (efgen/rtl/cost.py): the reference RTL's own units priced with
their Yosys costs, `efgen build --target rtl`, and report.md's RTL section."""

from __future__ import annotations

import dataclasses

import pytest

from efgen.frontend.boards import load_board
from efgen.model.coeffs import coefficients
from efgen.rtl.cost import board_use, fp_dsp, rtl_over_caps, rtl_use
from efgen.rtl.engine import EngineParams
from efgen.rtl.synth import predict_rtl, predict_top
from efgen.rtl.top import RtlParams, rtl_params


def _top(tm, tn, impl, **kw):
    return RtlParams(EngineParams(tm, tn, ifm_depth=4096, ofm_depth=4096, wbuf_depth=1024,
                                  kmax=3, smax=4, impl=impl), **kw)


def test_dsp_adders_cost_two_dsp_each_and_fewer_luts():
    y = coefficients()["rtl_yosys"]
    syn, dsp = predict_top(_top(8, 8, "synth")), predict_top(_top(8, 8, "dsp"))
    # one a MAC, four in sgd_wb, one in vec_unit, four in bn_unit, one in pool_unit, one FP
    # bias adder in tile_wr (store_words: 1 at 32 bits), one WU bias adder in layer_seq
    # (load_words: 1 at 32 bits)
    n_add = 64 + 4 + 1 + 4 + 1 + 1 + 1
    assert dsp["DSP48E2"] - syn["DSP48E2"] == 2 * n_add
    assert syn["LUT"] - dsp["LUT"] == n_add * (y["fp32_add"]["lut"] - y["fp32_add_dsp"]["lut"])
    assert dsp["detail"]["dsp_per_fp32_add"] == 2 and syn["detail"]["dsp_per_fp32_add"] == 0
    # engine_core alone too
    e_syn = predict_rtl(dataclasses.replace(_top(2, 2, "synth").engine))
    e_dsp = predict_rtl(dataclasses.replace(_top(2, 2, "dsp").engine))
    assert e_dsp["DSP48E2"] - e_syn["DSP48E2"] == 2 * 4


def test_board_use_maps_yosys_cells_onto_board_resources():
    pred = predict_top(_top(4, 4, "dsp"))
    use = board_use(pred)
    assert use["dsp"] == pred["DSP48E2"] and use["bram18"] == pred["RAMB18-eq"]
    assert use["lut"] == round(pred["LUT"] + pred["LUTRAM"]) and use["uram"] == 0
    # +1 adder: vec_unit; +5 multipliers, +4 adders: bn_unit; +1 adder: pool_unit; +1 adder:
    # tile_wr's FP bias add; +1 adder: layer_seq's WU bias gradient
    assert fp_dsp(16, "dsp") == (16 + 3 + 5) * 2 + (16 + 4 + 1 + 4 + 1 + 1 + 1) * 2 <= use["dsp"]
    assert fp_dsp(16, "synth") == (16 + 3 + 5) * 2


def test_target_rtl_schedules_an_array_whose_rtl_fits(tmp_path):
    from efgen.api import build
    from efgen.rtl.top import net_kmax

    board = load_board("zcu102")
    rtl = build("resnet20", "zcu102", 32, target="rtl")
    use = rtl_use(rtl.design.hw, net_kmax(rtl.design.net_ir), "dsp")
    print("rtl", rtl.design.hw, use)
    assert not rtl_over_caps(use, board)
    assert rtl.design.hw.weight_mem == "bram"
    assert rtl.words[-2:] == ("--target", "rtl")     # run_hls.tcl's hint remakes it
    # 16x16 with IFM and OFM banks of 8192 words takes 1,578 RAMB18 as RTL (1,536 in the
    # engine's buffers, 34 in the DMA engines' read and write buffers at the ZCU102's
    # 128-bit HP width: 9 at 32 bits; 4 in pool_unit's row buffer; 4 in layer_seq's WU bias
    # RAM, four banks of 512 words at 128 bits; above the cap of 1,459) and is never
    # chosen; the HLS flow's 16x24 needs more DSP than the cap. The 16x16 with 4096-word
    # IFM banks fits (Yosys's hierarchical count of it, 2026-12-04, after engine_wload's
    # shared bank registers: 209,402 LUT + 2,752 LUT RAM of 219,264, before the WU bias
    # adders; 257,561 before, when --target rtl picked 16x12), and it is the array chosen
    big = dataclasses.replace(rtl.design.hw, tm=16, tn=16, ifm_depth=8192, ofm_depth=8192,
                              wbuf_depth=1024)
    over = rtl_over_caps(rtl_use(big, 3, "dsp"), board)
    assert over == [("bram18", 1578, 1459)]
    hw = rtl.design.hw
    assert (hw.tm, hw.tn, hw.ifm_depth, hw.ofm_depth, hw.wbuf_depth) == (16, 16, 4096, 8192, 1024)
    from efgen.errors import EfgenError

    with pytest.raises(EfgenError, match="LUT in the RTL flow"):
        build("resnet20", "zcu102", 32, tiles=(16, 16), target="rtl", rtl_impl="synth")
    # the RTL flow's resources are in report.md whenever rtl/ is written
    w = rtl.write(tmp_path / "b")
    md = (w.out_dir / "report.md").read_text()
    assert "## Resources of the reference RTL (rtl/)" in md and "Within the board's caps" in md
    p = rtl_params(rtl.design, rtl.design.layout, impl="dsp")
    assert f"| DSP | {predict_top(p)['DSP48E2']:,} |" in md
    w2 = rtl.write(tmp_path / "c", rtl=None)
    assert "reference RTL" not in (w2.out_dir / "report.md").read_text()


def test_a_fused_rtl_is_priced_as_rtl_builds_it(tmp_path):
    """A fused Design's rtl/ has the fused datapath (rtl_params: RtlParams.fuse): --target
    rtl prices that RTL (rtl_use with hw.fuse), and report.md's RTL section is its."""
    from efgen.api import build
    from efgen.rtl.top import net_kmax

    fz = build("tiny", "zcu102", 2, tiles=(4, 4), fuse=True, target="rtl")
    hw = fz.design.hw
    assert hw.fuse
    p = rtl_params(fz.design, fz.design.layout, impl="dsp")
    assert p.fuse
    assert p.addr_width == 40                     # the ZCU102's PS
    use = rtl_use(hw, net_kmax(fz.design.net_ir), "dsp", p.addr_width)
    assert use == board_use(predict_top(p))
    # (32-bit addresses cost fewer LUTs: the scheduler prices the board's width)
    assert rtl_use(hw, net_kmax(fz.design.net_ir), "dsp")["lut"] < use["lut"]
    plain = rtl_use(dataclasses.replace(hw, fuse=False), net_kmax(fz.design.net_ir), "dsp",
                    p.addr_width)
    assert plain == board_use(predict_top(dataclasses.replace(p, fuse=False)))
    assert use["dsp"] > plain["dsp"] and use["lut"] > plain["lut"]
    md = (fz.write(tmp_path / "b").out_dir / "report.md").read_text()
    assert f"| DSP | {board_use(predict_top(p))['dsp']:,} |" in md
    assert f"| DSP | {plain['dsp']:,} |" not in md


def test_target_rtl_on_the_cli(run_cli, tmp_path):
    code, out, err = run_cli("build", "--board", "kv260", "--net", "tiny", "--batch", "2",
                             "--target", "rtl", "-o", tmp_path / "b")
    assert code == 0, err
    assert "Resources of the reference RTL" in (tmp_path / "b" / "report.md").read_text()
    code, out, err = run_cli("build", "--board", "kv260", "--net", "tiny", "--target", "rtl",
                             "--rtl-impl", "behav", "-o", tmp_path / "c")
    assert code == 2 and err.count("\n") == 1 and "--target" in err and "behav" in err
    assert not (tmp_path / "c").exists()


def test_target_rtl_names_the_binding_resource(run_cli, tmp_path):
    code, _, err = run_cli("build", "--board", "pynq-z2", "--net", "tiny", "--target", "rtl",
                           "--tiles", "Tm=64,Tn=64", "-o", tmp_path / "d")
    assert code == 2 and err.count("\n") == 1 and "in the RTL flow" in err, err


def test_unknown_target_is_refused():
    from efgen.api import build
    from efgen.errors import EfgenError

    with pytest.raises(EfgenError, match="target"):
        build("tiny", "kv260", 2, target="asic")


def test_16x16_fits_the_zcu102_luts_only_with_dsp_adders():
    """The dsp adders save LUTs over the fabric ones (531 - 372 each): with them the 16x16
    efgen_top fits the ZCU102's LUT cap (Yosys's hierarchical count, 2026-12-04: 209,402
    LUT + 2,752 LUT RAM against 219,264), with the fabric adders it does not."""
    from efgen.api import build
    from efgen.rtl.synth import BN_FP_ADDS, POOL_FP_ADDS, VEC_FP_ADDS

    board = load_board("zcu102")
    design = build("resnet20", "zcu102", 32, tiles=(16, 16)).design
    hw = design.hw
    dsp, syn = rtl_use(hw, 3, "dsp"), rtl_use(hw, 3, "synth")
    y = coefficients()["rtl_yosys"]
    # the array, sgd_wb's 4, the units' and tile_wr's FP bias adders (one per stored word)
    # and layer_seq's WU bias adders (one per loaded word)
    rp = rtl_params(design)
    n_add = 256 + 4 + VEC_FP_ADDS + BN_FP_ADDS + POOL_FP_ADDS + rp.store_words + rp.load_words
    assert syn["lut"] - dsp["lut"] == n_add * (y["fp32_add"]["lut"] - y["fp32_add_dsp"]["lut"])
    assert not rtl_over_caps(dsp, board), dsp
    assert [r for r, _, _ in rtl_over_caps(syn, board)] == ["lut"], syn
