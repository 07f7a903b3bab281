"""Vitis HLS / Vivado HLS report parsing (efgen.report.vendor) against real vendor reports.

The fixtures in tests/fixtures/vitis_reports are real files from public repositories, copied
byte for byte. SOURCES.md records where each came from and states the figures asserted
below. Each fixture has its own test, registered with @figures_of, and
test_every_fixture_has_a_figures_test makes sure none is left out.

Truncation policy (see the efgen.report.vendor docstring):
* Every fixture cut at 50 % raises EfgenError.
* Wherever a file is cut, the parser either raises EfgenError or returns figures identical to
  the complete file's. Only the summary layout, cut between tables after its estimates table,
  can do the latter. It never returns wrong or partial figures.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import shutil
from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from efgen.errors import EfgenError
from efgen.report.vendor import (
    KIND_COSIM_RPT,
    KIND_CSYNTH_RPT,
    KIND_CSYNTH_SUMMARY_RPT,
    KIND_CSYNTH_XML,
    CosimReport,
    HlsReport,
    Range,
    Resources,
    compare_table,
    find_reports,
    format_comparison,
    parse_cosim_rpt,
    parse_csynth_rpt,
    parse_csynth_xml,
    parse_report,
    vendor_figures,
)

FIX = Path(__file__).resolve().parent / "fixtures" / "vitis_reports"
FIXTURES = sorted(p.name for p in FIX.iterdir() if p.suffix in (".xml", ".rpt"))


@cache
def parsed(name: str):
    return parse_report(FIX / name)


_FIGURE_TESTS: dict[str, object] = {}


def figures_of(name: str):
    """Register a test as the figures test of fixture `name`; the test receives the report."""
    def deco(fn):
        assert name not in _FIGURE_TESTS, name
        _FIGURE_TESTS[name] = fn

        def test():
            fn(parsed(name))
        test.__name__ = fn.__name__
        test.__doc__ = fn.__doc__
        return test
    return deco


def res(r) -> tuple:
    return (r.bram_18k, r.dsp, r.ff, r.lut, r.uram)


def insts(report: HlsReport, module_prefix: str):
    return [i for i in report.instances if (i.module or "").startswith(module_prefix)]


# --------------------------------------------------------------------------------------
# The copy is byte-exact
# --------------------------------------------------------------------------------------

def test_fixtures_match_git_blob_ids_in_sources_md():
    text = (FIX / "SOURCES.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([^`]+)` \| `[^`]+` \| ([0-9a-f]{40}) \| (\d+) \|$", text, re.M)
    assert sorted(n for n, _, _ in rows) == FIXTURES
    for name, blob, size in rows:
        data = (FIX / name).read_bytes()
        assert len(data) == int(size), name
        assert hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest() == blob, name


def test_every_fixture_has_a_figures_test():
    assert sorted(_FIGURE_TESTS) == FIXTURES


# --------------------------------------------------------------------------------------
# Set 1: Vitis HLS 2023.2, xc7z020, nms
# --------------------------------------------------------------------------------------

def _nms_common(r: HlsReport):
    assert (r.tool, r.version, r.part, r.top) == ("Vitis HLS", "2023.2", "xc7z020-clg400-1", "nms")
    assert r.flow_target == "vivado"
    assert r.latency == Range() and r.interval == Range()          # undef / ?
    assert not r.latency.known
    assert res(r.resources) == (38, 27, 8709, 19329, 0)


@figures_of("vitis2023.2_z7020_nms_csynth.xml")
def test_nms_csynth_xml(r):
    _nms_common(r)
    assert r.kind == KIND_CSYNTH_XML
    assert (r.target_clock_ns, r.clock_uncertainty_ns, r.estimated_clock_ns) == (10.0, 2.7, 7.3)
    assert r.available.uram == 0
    l27 = r.loop("VITIS_LOOP_27_3")
    assert l27.trip_count == Range(0, 65535) and l27.parent == "VITIS_LOOP_25_2"
    assert l27.latency == Range()                                     # undef
    l63 = r.loop("VITIS_LOOP_63_6")
    assert l63.latency == Range(6237, 15939) and l63.iteration_latency == Range(63, 161)
    assert l63.trip_count == Range(99, 99) and l63.pipelined is False and l63.ii is None
    assert r.loop("VITIS_LOOP_85_8").latency == Range(1188, 88506)
    l89 = r.loop("VITIS_LOOP_89_9")
    assert l89.trip_count == Range(0, 98) and l89.parent == "VITIS_LOOP_85_8"
    assert l89.iteration_latency == Range(9, 9) and l89.latency == Range(0, 882)
    assert l89.slack_ns == 7.3                                        # <Slack> per loop
    assert r.instances == ()                                          # this XML lists none


@figures_of("vitis2023.2_z7020_nms_csynth.rpt")
def test_nms_classic_rpt(r):
    _nms_common(r)
    assert r.kind == KIND_CSYNTH_RPT and r.build == "4023990"
    assert (r.target_clock_ns, r.clock_uncertainty_ns, r.estimated_clock_ns) == (10.0, 2.7, 7.3)
    assert r.loop("VITIS_LOOP_27_3").trip_count == Range(0, 65535)       # "0 ~ 65535"
    assert r.loop("VITIS_LOOP_63_6").iteration_latency == Range(63, 161)  # "63 ~ 161"
    assert r.loop("VITIS_LOOP_63_6").latency == Range(6237, 15939)
    assert r.loop("VITIS_LOOP_85_8").latency == Range(1188, 88506)
    assert r.loop("VITIS_LOOP_89_9").trip_count == Range(0, 98)
    assert r.loop("VITIS_LOOP_89_9").parent == "VITIS_LOOP_85_8"
    fadd = insts(r, "faddfsub_32ns_32ns_32_5_full_dsp_1")
    assert len(fadd) == 2 and all(i.resources.dsp == 2 for i in fadd)
    assert r.instance("fmul_32ns_32ns_32_4_max_dsp_1").resources.dsp == 3
    assert r.instance("fcmp_32ns_32ns_1_2_no_dsp_1").resources.dsp == 0
    # Instance table DSPs are 26; the 27th is the mac_muladd in the "DSP" category.
    assert sum(i.resources.dsp for i in r.instances if i.resources) == 26
    p2 = r.instance("nms_Pipeline_2")
    assert p2.name == "grp_nms_Pipeline_2_fu_5795"
    assert p2.latency == Range(4952, 4952) and p2.interval == Range(4952, 4952)
    assert r.instance("nms_Pipeline_VITIS_LOOP_65_7").latency == Range(45, 143)
    assert r.instance("nms_Pipeline_VITIS_LOOP_37_4").latency == Range()     # "?"
    assert res(r.instance("nms_Pipeline_VITIS_LOOP_65_7").resources) == (1, 19, 2985, 4266, 0)


@figures_of("vitis2023.2_z7020_nms_summary_csynth.rpt")
def test_nms_summary_rpt(r):
    _nms_common(r)
    assert r.kind == KIND_CSYNTH_SUMMARY_RPT and r.build == "4023990"
    # This layout has no timing table.
    assert (r.target_clock_ns, r.estimated_clock_ns, r.clock_uncertainty_ns) == (None, None, None)
    # One value per cell, the worst case: stored as max, min unknown.
    l89 = r.loop("VITIS_LOOP_89_9")
    assert l89.trip_count == Range(max=98) and l89.latency == Range(max=882)
    assert l89.module == "nms" and l89.parent == "VITIS_LOOP_85_8"
    l63 = r.loop("VITIS_LOOP_63_6")
    assert l63.latency == Range(max=15939) and l63.iteration_latency == Range(max=161)
    l27 = r.loop("VITIS_LOOP_27_3")
    assert l27.trip_count == Range() and l27.parent == "VITIS_LOOP_25_2"
    l65 = r.loop("VITIS_LOOP_65_7")
    assert (l65.module, l65.ii, l65.pipelined, l65.trip_count) == (
        "nms_Pipeline_VITIS_LOOP_65_7", 1, True, Range(max=99))
    assert r.loop("VITIS_LOOP_37_4").ii == 4           # Issue Type "II": achieved 4
    assert r.loop("Loop 1", module="nms_Pipeline_2").trip_count == Range(max=4950)
    with pytest.raises(KeyError):
        r.loop("Loop 1", module="nms")
    p2 = r.instance("nms_Pipeline_2")
    assert p2.latency == Range(max=4952) and res(p2.resources) == (0, 0, 15, 55, 0)
    p65 = r.instance("nms_Pipeline_VITIS_LOOP_65_7")
    assert p65.latency == Range(max=143) and res(p65.resources) == (1, 19, 2985, 4266, 0)


@figures_of("vitis2023.2_z7020_nms_cosim.rpt")
def test_nms_cosim(r):
    assert isinstance(r, CosimReport) and r.kind == KIND_COSIM_RPT
    assert (r.simulator, r.status) == ("xsim", "Pass")
    assert r.result.rtl == "Verilog"
    assert r.latency == Range(66215, 66215, 66215)
    assert r.interval == Range()                                     # NA
    assert r.total_cycles == 66215
    vhdl = next(x for x in r.runs if x.rtl == "VHDL")
    assert vhdl.status is None and vhdl.latency == Range() and vhdl.total_cycles is None


def test_cosim_fail_status(tmp_path):
    src = (FIX / "vitis2023.2_z7020_nms_cosim.rpt").read_text(encoding="utf-8")
    f = tmp_path / "nms_cosim.rpt"
    f.write_text(src.replace("|      Pass|", "|      Fail|"), encoding="utf-8")
    r = parse_cosim_rpt(f)
    assert r.status == "Fail" and r.result.rtl == "Verilog"


# --------------------------------------------------------------------------------------
# Set 2: Vitis HLS 2022.1, xck26 (KV260)
# --------------------------------------------------------------------------------------

def _kv260(r: HlsReport):
    assert (r.tool, r.version, r.part) == ("Vitis HLS", "2022.1", "xck26-sfvc784-2LV-c")
    assert (r.target_clock_ns, r.clock_uncertainty_ns) == (10.0, 2.7)
    assert r.available.uram == 64 and r.available.dsp == 1248


@figures_of("vitis2022.1_kv260_mnist_top_csynth.xml")
def test_kv260_mnist_top_xml(r):
    _kv260(r)
    assert r.top == "MNIST" and r.estimated_clock_ns == 7.331
    assert r.pipeline_type == "dataflow"
    assert r.latency == Range(1735, 1735, 1735)
    assert r.interval == Range(1297, 1297)
    assert res(r.resources) == (30, 156, 30761, 28240, 0)
    assert r.loops == ()


@figures_of("vitis2022.1_kv260_dwconv_px_csynth.xml")
def test_kv260_px_xml(r):
    _kv260(r)
    assert r.top == "DepthwiseConv2d_28_10_1_3_Pipeline_px" and r.estimated_clock_ns == 7.016
    assert r.latency == Range(70, 70, 70) and r.interval == Range(70, 70)
    px = r.loop("px")
    assert px.trip_count == Range(10, 10) and px.latency == Range(68, 68)
    assert (px.ii, px.pipeline_depth, px.pipelined) == (3, 42, True)
    assert px.ii_target is None            # the XML does not state the target II
    assert res(r.resources) == (0, 15, 2483, 1798, 0)


@figures_of("vitis2022.1_kv260_dwconv_px_csynth.rpt")
def test_kv260_px_rpt(r):
    _kv260(r)
    assert r.kind == KIND_CSYNTH_RPT and r.build == "3526262" and r.estimated_clock_ns == 7.016
    assert r.latency == Range(70, 70) and r.interval == Range(70, 70)
    px = r.loop("px")
    assert (px.ii, px.ii_target, px.pipelined) == (3, 1, True)        # II 3 achieved vs 1
    assert px.iteration_latency == Range(42, 42) and px.trip_count == Range(10, 10)
    assert px.latency == Range(68, 68)
    fadd = insts(r, "fadd_32ns_32ns_32_4_full_dsp_1")
    fmul = insts(r, "fmul_32ns_32ns_32_3_max_dsp_1")
    assert len(fadd) == 3 and {res(i.resources) for i in fadd} == {(0, 2, 227, 214, 0)}
    assert len(fmul) == 3 and {res(i.resources) for i in fmul} == {(0, 3, 128, 135, 0)}
    assert len(r.instances) == 6
    assert res(r.resources) == (0, 15, 2483, 1798, 0)


# --------------------------------------------------------------------------------------
# Set 3: Vitis HLS 2020.1, xczu7ev, dataflow with unknown latency
# --------------------------------------------------------------------------------------

def _vecdot(r: HlsReport):
    assert (r.tool, r.version, r.part, r.top) == (
        "Vitis HLS", "2020.1", "xczu7ev-ffvc1156-2-e", "VecDotProduct")
    assert (r.target_clock_ns, r.clock_uncertainty_ns, r.estimated_clock_ns) == (10.0, 2.7, 7.3)
    assert r.pipeline_type == "dataflow"
    assert r.latency == Range() and r.interval == Range()
    assert res(r.resources) == (34, 0, 3726, 5322, 0)
    assert res(r.available) == (624, 1728, 460800, 230400, 96)


@figures_of("vitis2020.1_zu7ev_vecdot_csynth.xml")
def test_vecdot_xml(r):
    _vecdot(r)
    assert r.flow_target == "vivado"      # FlowTarget is what marks 2020.1 as Vitis HLS


@figures_of("vitis2020.1_zu7ev_vecdot_csynth.rpt")
def test_vecdot_rpt(r):
    _vecdot(r)
    assert r.build == "2902540" and r.loops == ()
    reader = r.instance("VecReader_U0")
    assert reader.latency == Range(1, None) and str(reader.latency) == "1..?"   # "1 .. ?"
    assert r.instance("ScaWriter_U0").latency == Range(7, 7)
    assert r.instance("EWiseMultipiler").latency == Range()
    assert res(r.instance("ddr0_m_axi_U").resources) == (8, 0, 613, 787, 0)


@figures_of("vitis2020.1_zu7ev_vecdot_cosim.rpt")
def test_vecdot_cosim(r):
    assert r.status == "Pass" and r.simulator == "xsim"
    assert r.latency == Range(10099, 10099, 10099)
    assert r.interval == Range() and r.total_cycles == 10099


# --------------------------------------------------------------------------------------
# Set 4: Vivado HLS 2018.2, xcvu13p (old formats)
# --------------------------------------------------------------------------------------

def _mnist_2018(r: HlsReport):
    assert (r.tool, r.version, r.part, r.top) == (
        "Vivado HLS", "2018.2", "xcvu13p-flga2577-2-e", "c_mnist")
    assert (r.target_clock_ns, r.clock_uncertainty_ns, r.estimated_clock_ns) == (10.0, 1.25, 8.419)
    assert r.flow_target is None
    assert r.latency == Range() and r.interval == Range()
    assert res(r.resources) == (3391, 80, 14744, 21133, 0)        # DSP48E -> dsp
    assert r.available.uram == 1280
    for n in (1, 6, 8, 10, 12):
        assert r.loop(f"Loop{n}").trip_count == Range(), n
    l3 = r.loop("Loop3")
    assert l3.trip_count == Range(784, 784) and l3.iteration_latency == Range(3931, 3931)
    assert l3.latency == Range(3081904, 3081904) and l3.pipelined is False
    l31 = r.loop("Loop 3.1")
    assert l31.ii == 5 and l31.trip_count == Range(784, 784)
    assert l31.parent == l3.name
    assert r.loop("Loop9").trip_count == Range(1, 25)
    assert r.loop("Loop9").latency == Range(2, 26)


@figures_of("vivadohls2018.2_vu13p_mnist_csynth.xml")
def test_mnist2018_xml(r):
    _mnist_2018(r)
    assert r.loop("Loop3.1").name == "Loop3.1"                      # dotted element name
    assert r.loop("Loop3.1").pipeline_depth == 8


@figures_of("vivadohls2018.2_vu13p_mnist_csynth.rpt")
def test_mnist2018_rpt(r):
    _mnist_2018(r)
    assert r.kind == KIND_CSYNTH_RPT and r.build == "2258646"
    l31 = r.loop("Loop 3.1")
    assert (l31.ii_target, l31.iteration_latency) == (5, Range(8, 8))
    assert r.loop("Loop 1").iteration_latency == Range(2, 2)
    fadd = insts(r, "c_mnist_fadd_32nsbzo")
    fmul = insts(r, "c_mnist_fmul_32nsbAo")
    # The 2018.2 instance table has no URAM column: uram is None (not reported), not 0.
    assert len(fadd) == 16 and {res(i.resources) for i in fadd} == {(0, 2, 227, 214, None)}
    assert len(fmul) == 16 and {res(i.resources) for i in fmul} == {(0, 3, 128, 135, None)}
    assert len(insts(r, "c_mnist_fcmp")) == 32


@figures_of("vivadohls2018.2_vu13p_mnist_cosim.rpt")
def test_mnist2018_cosim(r):
    assert r.status == "Pass"
    assert r.latency == Range(4642865, 4642865, 4642865)
    assert r.interval == Range()
    assert r.total_cycles is None               # old layout: no Total Execution Time column


# --------------------------------------------------------------------------------------
# Set 5: Vivado HLS 2019.1, xc7k325t, min != max
# --------------------------------------------------------------------------------------

def _carsim(r: HlsReport, top: str, est: float):
    assert (r.tool, r.version, r.part, r.top) == ("Vivado HLS", "2019.1", "xc7k325t-ffg900-2", top)
    assert (r.target_clock_ns, r.clock_uncertainty_ns, r.estimated_clock_ns) == (10.0, 1.25, est)


@figures_of("vivadohls2019.1_k7_carsim_csynth.xml")
def test_carsim_xml(r):
    _carsim(r, "top_level", 9.466)
    assert r.latency == Range(449, 2537, 1121)
    assert r.interval == Range(450, 2538)                  # the XML's own interval fields
    assert res(r.resources) == (56, 750, 49552, 86225, 0)
    assert r.available.uram == 0


@figures_of("vivadohls2019.1_k7_carsim_csynth.rpt")
def test_carsim_rpt(r):
    _carsim(r, "top_level", 9.466)
    assert r.latency == Range(449, 2537)                   # the .rpt gives no average
    assert r.interval == Range(449, 2537)                  # ...and its own interval
    assert res(r.resources) == (56, 750, 49552, 86225, 0)
    upd = r.instance("grp_update_1_fu_109")
    assert upd.module == "update_1" and upd.latency == Range(447, 2535)
    assert res(upd.resources) == (56, 750, 49516, 86208, 0)


@figures_of("vivadohls2019.1_k7_carsim_update_csynth.rpt")
def test_carsim_update_rpt(r):
    _carsim(r, "update", 9.006)
    assert r.latency == Range(197, 1241)
    assert r.instance("sin").latency == Range(28, 31)
    assert r.instance("atan").latency == Range(2, 204)
    assert r.instance("sin_or_cos_double_s").latency == Range(26, 29)

    def count(prefix):   # operator module names are hashed: top_level_faddfsupcA, ...
        return [i for i in r.instances if (i.module or "").startswith("top_level_" + prefix)]

    assert len(count("fadd_")) == 2
    assert {res(i.resources)[1:4] for i in count("fadd_")} == {(2, 227, 214)}
    assert len(count("faddfsu")) == 1
    assert len(count("fmul_")) == 5
    assert {res(i.resources)[1:4] for i in count("fmul_")} == {(3, 128, 135)}
    assert len(count("fdiv_")) == 2 and all(i.resources.dsp == 0 for i in count("fdiv_"))
    assert len(count("fsqrt_")) == 1
    assert len(count("dmul_")) == 2 and all(i.resources.dsp == 11 for i in count("dmul_"))
    assert len(count("dadddsu")) == 1 and count("dadddsu")[0].resources.dsp == 3
    assert len(count("ddiv_")) == 2 and len(count("fpext_")) == 2 and len(count("fptrunc")) == 2
    assert len(count("sitofp_")) == 1
    assert res(r.resources) == (20, 243, 18770, 34116, 0)


# --------------------------------------------------------------------------------------
# Set 6: Vivado HLS 2020.1, xc7z020, average undef
# --------------------------------------------------------------------------------------

@figures_of("vivadohls2020.1_z7020_cnn_csynth.xml")
def test_cnn_vivado2020_xml(r):
    assert (r.tool, r.version, r.part, r.top) == (
        "Vivado HLS", "2020.1", "xc7z020-clg484-1", "top")
    assert (r.target_clock_ns, r.clock_uncertainty_ns, r.estimated_clock_ns) == (
        10.0, 1.25, 11.169)
    assert r.estimated_clock_ns > r.target_clock_ns          # timing missed
    assert r.latency == Range(423377, 677313, None)          # average undef
    assert r.interval == Range(423378, 677314)
    assert res(r.resources) == (10, 118, 38483, 44659, 0)


# --------------------------------------------------------------------------------------
# Set 7: Vitis HLS 2020.1, xcu200
# --------------------------------------------------------------------------------------

@figures_of("vitis2020.1_u200_sysarr_csynth.xml")
def test_sysarr_xml(r):
    assert (r.tool, r.version, r.part, r.top) == (
        "Vitis HLS", "2020.1", "xcu200-fsgd2104-2-e", "Conv_sysarr_dbbuf")
    assert (r.target_clock_ns, r.clock_uncertainty_ns, r.estimated_clock_ns) == (10.0, 2.7, 4.3)
    assert r.latency == Range(6244, 6244, 6244) and r.interval == Range(6245, 6245)
    big = r.loop("VITIS_LOOP_108_11_VITIS_LOOP_110_12")
    assert (big.ii, big.pipeline_depth, big.trip_count, big.parent) == (
        98, 244, Range(9, 9), "VITIS_LOOP_89_4")
    l96 = r.loop("VITIS_LOOP_96_8")
    assert (l96.ii, l96.pipeline_depth, l96.latency) == (25, 26, Range(100, 100))
    outer = r.loop("VITIS_LOOP_89_4")
    assert outer.iteration_latency == Range(1132, 1132) and outer.pipelined is False
    assert res(r.resources) == (24, 589, 29874, 31698, 0)
    assert r.available.uram == 960


@figures_of("vitis2020.1_u200_sysarr_cosim.rpt")
def test_sysarr_cosim(r):
    assert r.status == "Pass"
    assert r.latency == Range(12637, 12637, 12637)
    assert r.interval == Range(12638, 12638, 12638)
    assert r.total_cycles == 50551
    assert "(일)" in r.report_time                           # UTF-8, not ASCII


# --------------------------------------------------------------------------------------
# Kind detection, find_reports
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", FIXTURES)
def test_kind_is_detected_from_content_not_name(name, tmp_path):
    copy = tmp_path / "renamed.txt"
    shutil.copyfile(FIX / name, copy)
    r = parse_report(copy)
    assert r.kind == parsed(name).kind
    assert r == dataclasses.replace(parsed(name), source=str(copy))
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.kind = "x"


def test_specific_parsers_accept_their_kind_only():
    xml = FIX / "vitis2020.1_zu7ev_vecdot_csynth.xml"
    rpt = FIX / "vitis2020.1_zu7ev_vecdot_csynth.rpt"
    cos = FIX / "vitis2020.1_zu7ev_vecdot_cosim.rpt"
    summ = FIX / "vitis2023.2_z7020_nms_summary_csynth.rpt"
    assert parse_csynth_xml(xml).kind == KIND_CSYNTH_XML
    assert parse_csynth_rpt(rpt).kind == KIND_CSYNTH_RPT
    assert parse_csynth_rpt(summ).kind == KIND_CSYNTH_SUMMARY_RPT
    assert parse_cosim_rpt(cos).kind == KIND_COSIM_RPT
    for fn, wrong, expect in ((parse_csynth_xml, rpt, "not XML"),
                              (parse_csynth_rpt, xml, "not a Vitis/Vivado HLS csynth.rpt"),
                              (parse_csynth_rpt, cos, "not a Vitis/Vivado HLS csynth.rpt"),
                              (parse_cosim_rpt, rpt, "not a Vitis/Vivado HLS cosim.rpt")):
        with pytest.raises(EfgenError) as ei:
            fn(wrong)
        assert expect in ei.value.what and ei.value.file == str(wrong)


def test_find_reports(tmp_path):
    proj = tmp_path / "proj"
    layout = {
        "solution1/syn/report/nms_csynth.xml": "vitis2023.2_z7020_nms_csynth.xml",
        "solution1/syn/report/nms_csynth.rpt": "vitis2023.2_z7020_nms_csynth.rpt",
        "solution1/syn/report/csynth.rpt": "vitis2023.2_z7020_nms_summary_csynth.rpt",
        "solution1/sim/report/nms_cosim.rpt": "vitis2023.2_z7020_nms_cosim.rpt",
    }
    for dest, src in layout.items():
        (proj / dest).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(FIX / src, proj / dest)
    (proj / "solution1/syn/verilog").mkdir(parents=True)
    (proj / "solution1/syn/verilog/nms.v").write_text("module nms; endmodule\n")
    (proj / "solution1/sim/report/nms_cosim.log").write_text("log\n")
    want = sorted(proj / d for d in layout)
    assert find_reports(proj) == want
    assert find_reports(proj / "solution1") == want
    assert find_reports(proj / "solution1/syn/report") == sorted(
        p for p in want if "/syn/" in p.as_posix())
    kinds = {p.name: parse_report(p).kind for p in find_reports(proj)}
    assert kinds == {"nms_csynth.xml": KIND_CSYNTH_XML, "nms_csynth.rpt": KIND_CSYNTH_RPT,
                     "csynth.rpt": KIND_CSYNTH_SUMMARY_RPT, "nms_cosim.rpt": KIND_COSIM_RPT}
    (tmp_path / "empty").mkdir()
    assert find_reports(tmp_path / "empty") == []
    with pytest.raises(EfgenError, match="not a folder"):
        find_reports(tmp_path / "missing")


# --------------------------------------------------------------------------------------
# Columns are found by name
# --------------------------------------------------------------------------------------

def _rewrite_table(text: str, header_regex: str, order: list[int]) -> str:
    """Reorder/drop the columns of the single-header-row table whose header matches."""
    lines = text.split("\n")
    h = next(i for i, ln in enumerate(lines) if re.search(header_regex, ln))
    start, end = h - 1, h + 1
    while end + 1 < len(lines) and lines[end + 1].lstrip()[:1] in ("|", "+"):
        end += 1
    ncols = len(re.split(r"[|+]", lines[h].strip())) - 2
    for i in range(start, end + 1):
        ln = lines[i]
        indent = ln[:len(ln) - len(ln.lstrip())]
        s = ln.strip()
        sep = s[0]
        cells = re.split(r"[|+]", s)[1:-1]
        assert len(cells) == ncols, ln
        lines[i] = indent + sep + sep.join(cells[k] for k in order) + sep
    return "\n".join(lines)


def test_columns_are_read_by_name_not_position(tmp_path):
    src = (FIX / "vitis2022.1_kv260_dwconv_px_csynth.rpt").read_text(encoding="utf-8")
    # Utilisation summary: Name|BRAM_18K|DSP|FF|LUT|URAM -> Name|LUT|FF|DSP|BRAM_18K (no URAM).
    text = _rewrite_table(src, r"\|\s+Name\s+\| BRAM_18K\|", [0, 4, 3, 2, 1])
    # Instance detail: Instance|Module|BRAM_18K|DSP|FF|LUT|URAM -> Module|URAM|LUT|DSP|Instance|FF.
    text = _rewrite_table(text, r"\|\s+Instance\s+\|\s+Module\s+\| BRAM_18K\|", [1, 6, 5, 3, 0, 4])
    assert text != src
    (tmp_path / "x.rpt").write_text(text, encoding="utf-8")
    r = parse_report(tmp_path / "x.rpt")
    assert res(r.resources) == (0, 15, 2483, 1798, None)      # URAM column dropped -> None
    fadd = r.instance("fadd_32ns_32ns_32_4_full_dsp_1_U142")
    assert res(fadd.resources) == (None, 2, 227, 214, 0)      # BRAM column dropped -> None
    assert r.loop("px").ii == 3


# --------------------------------------------------------------------------------------
# Broken input: truncated, empty, binary, foreign
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", FIXTURES)
def test_truncated_at_half_is_a_clean_error(name, tmp_path):
    data = (FIX / name).read_bytes()
    cut = tmp_path / name
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(EfgenError) as ei:
        parse_report(cut)
    e = ei.value
    assert e.file == str(cut)
    msg = e.message()
    assert "\n" not in msg and str(cut) in msg
    assert re.search(r"truncated|no .*table|no .*section|malformed", e.what), e.what


@pytest.mark.parametrize("name", FIXTURES)
def test_truncated_anywhere_errors_or_gives_the_same_figures(name, tmp_path):
    data = (FIX / name).read_bytes()
    full = parsed(name)
    same = 0
    for k in range(1, 24):
        cut = tmp_path / name
        cut.write_bytes(data[: len(data) * k // 24])
        try:
            r = parse_report(cut)
        except EfgenError:
            continue
        assert {**r.__dict__, "source": ""} == {**full.__dict__, "source": ""}
        same += 1
    if full.kind != KIND_CSYNTH_SUMMARY_RPT:
        assert same == 0


FOREIGN = {
    "empty": (b"", "empty file"),
    "blank": (b" \n\n\t\n", "empty file"),
    "binary": (bytes(range(256)) * 8, "binary data"),
    "utf16": ("== Vitis HLS Report for 'x'\n".encode("utf-16"), "binary data"),
    "python": (b"import os\n\n\ndef main():\n    print('+---+')\n", "not a recognised HLS report"),
    "other-xml": (b'<?xml version="1.0"?>\n<project name="x"><file/></project>\n',
                  "not a Vitis/Vivado HLS csynth.xml"),
    "html": (b"<html><body><table><tr><td>Latency</td></tr></table></body></html>",
             "not a Vitis/Vivado HLS csynth.xml"),
    "bad-xml": (b"<profile><ReportVersion>", "truncated or malformed XML"),
    "profile-without-areas": (b"<profile><ReportVersion><Version>2020.1</Version></ReportVersion>"
                              b"</profile>", "no <UserAssignments>"),
    "entity-xml": (b'<?xml version="1.0"?><!DOCTYPE p [<!ENTITY a "aaaa">]><profile>&a;</profile>',
                   "DOCTYPE"),
    "title-only": (b"== Vitis HLS Report for 'x'\n", "no '* Version:' line"),
}


@pytest.mark.parametrize("case", sorted(FOREIGN))
def test_foreign_or_empty_files_raise_efgen_error(case, tmp_path):
    data, expect = FOREIGN[case]
    f = tmp_path / f"{case}.rpt"
    f.write_bytes(data)
    for fn in (parse_report, parse_csynth_xml, parse_csynth_rpt, parse_cosim_rpt):
        with pytest.raises(EfgenError) as ei:
            fn(f)
        assert ei.value.file == str(f)
    with pytest.raises(EfgenError) as ei:
        parse_report(f)
    assert expect in ei.value.what


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(EfgenError, match="not found"):
        parse_report(tmp_path / "nope_csynth.xml")
    with pytest.raises(EfgenError, match="folder"):
        parse_report(tmp_path)


def test_damaged_number_names_file_and_line(tmp_path):
    src = (FIX / "vivadohls2019.1_k7_carsim_csynth.rpt").read_text(encoding="utf-8")
    bad = src.replace("|  449|  2537|  449|  2537|   none  |",
                      "|  4x9|  2537|  449|  2537|   none  |")
    assert bad != src
    f = tmp_path / "csynth.rpt"
    f.write_text(bad, encoding="utf-8")
    with pytest.raises(EfgenError) as ei:
        parse_report(f)
    assert "4x9" in ei.value.what and ei.value.where == "line 32"


_SMALL = ["vivadohls2019.1_k7_carsim_csynth.rpt", "vitis2022.1_kv260_dwconv_px_csynth.xml",
          "vitis2020.1_u200_sysarr_cosim.rpt", "vitis2023.2_z7020_nms_summary_csynth.rpt"]


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(_SMALL), data=st.data())
def test_damaged_reports_never_raise_anything_but_efgen_error(name, data, tmp_path):
    raw = bytearray((FIX / name).read_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(raw) - 1))
        if data.draw(st.booleans()):
            raw[i] = data.draw(st.sampled_from(b"|+-?~ x09<>/\n\x00"))
        else:
            del raw[i: i + data.draw(st.integers(1, 300))]
    f = tmp_path / "damaged"
    f.write_bytes(bytes(raw))
    try:
        parse_report(f)
    except EfgenError as e:
        assert e.file == str(f) and "\n" not in e.message()


# --------------------------------------------------------------------------------------
# Model vs vendor table
# --------------------------------------------------------------------------------------

def test_compare_table_with_px_report():
    vendor = vendor_figures(parsed("vitis2022.1_kv260_dwconv_px_csynth.rpt"))
    assert vendor == {"latency": 70, "interval": 70, "bram_18k": 0, "dsp": 15, "ff": 2483,
                      "lut": 1798, "uram": 0}
    model = {"latency": 84, "interval": None, "DSP48E": 12, "BRAM_18K": 2, "LUT": 2697,
             "ff": 2483, "uram": 0}
    rows = compare_table(model, vendor)
    got = {r.figure: (r.model, r.vendor, r.error_pct) for r in rows}
    assert [r.figure for r in rows] == [
        "latency", "interval", "dsp", "bram_18k", "lut", "ff", "uram"]
    assert got["latency"] == (84, 70, pytest.approx(20.0))
    assert got["interval"] == (None, 70, None)                    # model unknown -> n/a
    assert got["dsp"] == (12, 15, pytest.approx(-20.0))
    assert got["bram_18k"] == (2, 0, None)                        # vendor 0, model not -> n/a
    assert got["lut"] == (2697, 1798, pytest.approx(50.0))
    assert got["ff"] == (2483, 2483, 0.0)
    assert got["uram"] == (0, 0, 0.0)                             # 0 vs 0 -> 0 %

    text = format_comparison(rows)
    lines = text.splitlines()
    assert lines[0].split() == ["Figure", "Model", "Vendor", "Error"]
    assert re.fullmatch(r"Latency \(cycles\)\s+84\s+70\s+\+20\.0%", lines[2])
    assert re.fullmatch(r"Interval \(cycles\)\s+n/a\s+70\s+n/a", lines[3])
    assert re.fullmatch(r"DSP\s+12\s+15\s+-20\.0%", lines[4])
    assert re.fullmatch(r"BRAM_18K\s+2\s+0\s+n/a", lines[5])
    assert re.fullmatch(r"LUT\s+2,697\s+1,798\s+\+50\.0%", lines[6])
    assert re.fullmatch(r"URAM\s+0\s+0\s+\+0\.0%", lines[8])


def test_compare_table_unknown_vendor_latency_and_cosim():
    # nms: the synthesis latency is '?', but co-simulation measured 66215 cycles.
    model = {"latency": 70000, "interval": 70001, "dsp": 27, "lut": 21262, "ff": 8709,
             "uram": None}
    syn = compare_table(model, vendor_figures(parsed("vitis2023.2_z7020_nms_csynth.xml")))
    by = {r.figure: r for r in syn}
    assert by["latency"].vendor is None and by["latency"].error_pct is None
    assert by["lut"].error_pct == pytest.approx((21262 - 19329) / 19329 * 100)
    assert by["uram"].error_pct is None                           # model unknown
    assert "bram_18k" in by and by["bram_18k"].model is None      # only in vendor -> still a row
    cos = compare_table(model, vendor_figures(parsed("vitis2023.2_z7020_nms_cosim.rpt"), "avg"))
    by = {r.figure: r for r in cos}
    assert by["latency"].vendor == 66215
    assert by["latency"].error_pct == pytest.approx((70000 - 66215) / 66215 * 100)
    assert by["interval"].error_pct is None                       # co-sim interval NA
    assert by["dsp"].vendor is None                               # co-sim has no resources
    assert "n/a" in format_comparison(cos)


def test_range_semantics():
    assert str(Range()) == "?" and str(Range(3, 3)) == "3" and str(Range(0, 98)) == "0..98"
    assert Range(3, 3).value == 3 and Range(0, 98).value is None and not Range(max=5).known
    assert Resources(dsp=1).as_dict() == {"bram_18k": None, "dsp": 1, "ff": None, "lut": None,
                                          "uram": None}


def test_per_function_rows_from_a_real_report(tmp_path, run_cli):
    """A manifest's functions next to a real report's modules (Vivado HLS 2019.1 carsim,
    classic .rpt with instance and loop tables): figures come from the module of the same
    name, a function without a module says so, and `efgen report` prints the table when
    the build folder holds manifest.json and a report."""
    import json

    from efgen.report.vendor import format_processes, parse_report, process_rows
    rep = parse_report(FIX / "vivadohls2019.1_k7_carsim_update_csynth.rpt")
    man = {"engines": {"conv": {"functions": {
        "atan": {"ops": {"fmul": 2}, "cost": {"dsp": 6}},
        "sin": {"ops": {"fadd": 1}, "cost": {"dsp": 2}},
        "mac_pass": {"ops": {"fmul": 4, "fadd": 4}, "cost": {"dsp": 20}},
        "top": {"ops": {}}}}}}
    rows = {r.function: r for r in process_rows(man, rep)}
    assert set(rows) == {"atan", "sin", "mac_pass"}          # no operators: no row
    assert rows["atan"].module == "atan" and rows["atan"].dsp == 3
    assert rows["atan"].latency == 204
    assert rows["sin"].dsp == 97 and rows["sin"].dsp_manifest == 2
    assert rows["mac_pass"].module is None
    text = format_processes(rows.values())
    assert "not in the report" in text and "| conv | atan | 2 fmul | 6 |" in text
    # through the CLI: a build folder with a manifest and a vendor report
    out = tmp_path / "b"
    code, _, err = run_cli("build", "--board", "zcu102", "--net", "tiny", "--batch", "2",
                           "-o", str(out))
    assert code == 0, err
    dst = out / "hls" / "efgen_prj" / "solution1" / "syn" / "report"
    dst.mkdir(parents=True)
    shutil.copyfile(FIX / "vivadohls2019.1_k7_carsim_update_csynth.rpt", dst / "csynth.rpt")
    code, text, err = run_cli("report", str(out))
    assert code == 0, err
    assert "per function (hls/manifest.json)" in text and "| conv | mac_pass |" in text
    man = json.loads((out / "hls" / "manifest.json").read_text())
    assert "unit_bn" in man["engines"]["vector"]["functions"]
