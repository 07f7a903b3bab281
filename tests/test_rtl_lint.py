"""Portability of the generated Verilog (issue 19, requirement 6 and review point 8).

A representative design (4x4 array, synthesizable FP32 units, 40-bit AXI addresses,
256-beat bursts) is linted with `verilator --lint-only -Wall` and `iverilog -g2005`, and
checked for names used before their declaration (efgen.rtl.lint), which neither
simulator reports.

Every module is checked, layer_seq.v included (its 18 WIDTH warnings and its use of
st_addr_w before the declaration were removed after the timing work of issue 14).
"""

from __future__ import annotations

import re
import subprocess

import pytest
from conftest import require_tool as _require

from efgen.rtl.engine import EngineParams
from efgen.rtl.lint import used_before_declared
from efgen.rtl.top import RtlParams, rtl_verilog

# 128-bit AXI data as the Zynq UltraScale+ boards: the beat adapters, tile_rd, tile_wr and
# engine_wload taking whole beats (test_other_shapes_lint_clean: 32 and 64 bits)
P = RtlParams(EngineParams(tm=4, tn=4, ifm_depth=512, ofm_depth=256, wbuf_depth=256, kmax=3,
                           smax=4, impl="synth", wl_words=4), max_burst=256, addr_width=40,
              axi_width=128)
OWNED_ELSEWHERE: set = set()
# no generated module carries an in-source lint waiver (unused bits are named unused_*,
# which Verilator's default -unused-regexp exempts); test_no_lint_waivers checks all of them




@pytest.fixture(scope="module")
def design(tmp_path_factory):
    d = tmp_path_factory.mktemp("lint")
    files = rtl_verilog(P)
    for name, text in files.items():
        (d / name).write_text(text)
    return d, files


def test_verilator_wall_clean(design):
    _require("verilator")
    d, files = design
    r = subprocess.run(["verilator", "--lint-only", "-Wall", "--top-module", "efgen_top",
                        *sorted(str(d / n) for n in files)], capture_output=True, text=True)
    warned = re.findall(r"%(?:Warning|Error)-?(\w*): [^\s:]*/(\w+\.v):", r.stderr)
    by_file: dict = {}
    for kind, f in warned:
        by_file.setdefault(f, set()).add(kind)
    print({f: sorted(k) for f, k in by_file.items()})
    assert set(by_file) <= OWNED_ELSEWHERE, r.stderr[:4000]
    assert "%Error:" not in r.stderr.replace("%Error: Exiting due to", "") or by_file, r.stderr


def test_icarus_2005_clean(design):
    _require("iverilog")
    d, files = design
    r = subprocess.run(["iverilog", "-g2005", "-Wall", "-o", str(d / "a.out"), "-s",
                        "efgen_top", *sorted(str(d / n) for n in files)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    lines = [x for x in (r.stdout + r.stderr).splitlines() if x.strip()]
    # timescale inheritance notes are Icarus's, not the design's; anything else fails
    bad = [x for x in lines if "timescale" not in x]
    print("\n".join(bad))
    assert not [x for x in bad if not any(f"/{n}:" in x for n in OWNED_ELSEWHERE)], bad


def test_declared_before_use(design):
    _, files = design
    found = {(name, sig) for name, text in files.items()
             for _, sig in used_before_declared(text)}
    assert {(n, s) for n, s in found if n not in OWNED_ELSEWHERE} == set(), found
    # the checker catches what review point 8 named (efgen_top before this issue)
    old = ("module t(input wire clk);\nwire a = b & clk;\nwire b;\nreg c;\n"
           "always @(posedge clk) c <= d;\nreg d;\nfunction f; input x; f = x; endfunction\n"
           "endmodule\n")
    assert used_before_declared(old) == [("t", "b"), ("t", "d")]


def test_no_lint_waivers(design):
    _, files = design
    assert len(files) >= 15
    assert [name for name, text in files.items() if "lint_off" in text] == []


def _lint_clean(files: dict[str, str], tmp_path) -> None:
    """``files`` (an efgen_top build) pass Verilator's -Wall lint with no warning, declare
    every name before its use and carry no lint waiver."""
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    r = subprocess.run(["verilator", "--lint-only", "-Wall", "--top-module", "efgen_top",
                        *sorted(str(tmp_path / n) for n in files)], capture_output=True, text=True)
    assert r.returncode == 0 and "%Warning" not in r.stderr, r.stderr[:4000]
    assert {(n, s) for n, t in files.items() for _, s in used_before_declared(t)} == set()
    assert [name for name, text in files.items() if "lint_off" in text] == []


@pytest.mark.parametrize("tm,tn,aw,impl,dw", [(2, 4, 32, "dsp", 32), (6, 4, 40, "synth", 64)])
def test_other_shapes_lint_clean(tm, tn, aw, impl, dw, tmp_path):
    """Tm != Tn both ways, both address widths, 32- and 64-bit data: the widths that differ
    from the 4x4 design's (tile_wr's store lanes were Tn wide at Tm < Tn: a WIDTH warning)."""
    _require("verilator")
    from efgen.rtl.top import rtl_params_hw

    files = rtl_verilog(rtl_params_hw(tm, tn, 4096, 2048, 1024, 3, 256, impl=impl,
                                      addr_width=aw, axi_width=dw))
    _lint_clean(files, tmp_path)


@pytest.mark.parametrize("layout,dw", [("reshaped", 128), ("nchw", 32), ("nchw", 128), ("reshaped", 64)])
def test_fused_datapath_lint_clean(layout, dw, tmp_path):
    """The RTL with the restructured BN's datapath (RtlParams.fuse: the side record, the
    load transform and BN BP dx, the store's recomputed mask and BN sums): whole-beat
    (128-bit), word-serial (NCHW at 32 bits), NCHW beside a 128-bit port (beat_unpack on
    every stream, y's included) and the reshaped layout at 64 bits."""
    _require("verilator")
    import dataclasses

    from efgen.rtl.top import rtl_params_hw

    p = dataclasses.replace(rtl_params_hw(4, 4, 512, 256, 256, 3, 16, impl="dsp", axi_width=dw,
                                          layout=layout), fuse=True)
    files = rtl_verilog(p)
    _lint_clean(files, tmp_path)


@pytest.mark.parametrize("tm,tn,layout,dw,fuse", [(4, 8, "reshaped", 128, True),
                                                  (2, 8, "nchw", 32, False)])
def test_tap_packing_lint_clean(tm, tn, layout, dw, fuse, tmp_path):
    """First-layer tap packing (RtlParams.pack, issue 13): the per-lane offsets and windows
    (engine_ctrl), the rotated whole-beat weight loads (engine_wload), the replicated IFM
    writes (layer_seq) and the packed write-back (sgd_wb), whole-beat and word-serial,
    fused and not."""
    _require("verilator")
    from efgen.rtl.top import rtl_params_hw

    p = rtl_params_hw(tm, tn, 512, 256, 256, 3, 16, impl="dsp", axi_width=dw, layout=layout,
                      fuse=fuse, pack=True)
    assert p.pack
    files = rtl_verilog(p)
    _lint_clean(files, tmp_path)


@pytest.mark.parametrize("tm,tn,pl,layout,dw,fuse", [(2, 4, 2, "reshaped", 128, True),
                                                     (2, 2, 4, "nchw", 32, False),
                                                     (4, 2, 2, "reshaped", 64, False)])
def test_pixel_lanes_lint_clean(tm, tn, pl, layout, dw, fuse, tmp_path):
    """Pixel lanes (EngineParams.p, issue 13): the Tm x Tn x P array with WU's tree over P
    (engine_array), the group counter and per-lane windows (engine_ctrl), the IFM copies of
    engine_ram2 and the OFM's P RAMs a bank (engine_core), whole-beat and word-serial,
    fused and not, Tm > Tn."""
    _require("verilator")
    from efgen.rtl.top import rtl_params_hw

    p = rtl_params_hw(tm, tn, 512, 256, 256, 3, 16, impl="dsp", axi_width=dw, layout=layout,
                      fuse=fuse, p=pl)
    assert p.engine.p == pl
    files = rtl_verilog(p)
    assert "engine_ram2.v" in files
    _lint_clean(files, tmp_path)
