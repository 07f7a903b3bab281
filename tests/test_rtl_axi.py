"""The reference RTL behind a real interconnect (issue 19, review points 3 and 8).

The three AXI masters of efgen_top share ONE memory through one arbitrated, in-order
port (sim/top/shared_port.py, a testbench model of a SmartConnect in front of one HP
port) with random back-pressure. Before the DMA engines reserved buffer space for their
reads, a WU step's SGD write-back hung there: a weight burst (m_axi1) waiting for its
velocity words blocked the velocity burst (m_axi0) queued behind it.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import require_tool as _require

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:          # sim/ is a folder of the checkout, not installed
    sys.path.insert(0, str(ROOT))

from efgen.cosim import layers as cosim  # noqa: E402
from efgen.cosim.layers import LayerPhase, Pause, Run  # noqa: E402
from efgen.rtl.engine import EngineParams  # noqa: E402
from efgen.rtl.top import RtlParams  # noqa: E402




# max_burst 256 as the boards' designs: one read burst can hold far more words than the
# SGD write-back's FIFOs (16); 128-bit data as the Zynq UltraScale+ HP ports (tile_rd
# and engine_wload take whole 4-word beats, beat_unpack/beat_pack serve the rest)
P256 = RtlParams(EngineParams(tm=4, tn=4, ifm_depth=512, ofm_depth=256, wbuf_depth=256,
                              kmax=3, smax=4, impl="behav", wl_words=4), max_burst=256,
                 addr_width=40, axi_width=128)
# WU with momentum (lr 0.05, momentum 0.9, weight decay 5e-4: efgen.cosim.layers.SGD):
# 540 weights and 540 velocities read in 256-beat bursts on two ports, written on the
# third; then FP and BP, whose input, weight and output streams also share the port.
SHARED_CASES = [
    LayerPhase("w1", "conv", 6, 10, 12, 12, 3, 1, 1, 2, "wu", False, 6, 12, 2, "io"),
    LayerPhase("f1", "conv", 6, 10, 12, 12, 3, 1, 1, 2, "fp", True, 6, 12, 2, "wo"),
    LayerPhase("b1", "conv", 10, 6, 12, 12, 3, 2, 1, 1, "bp", False, 6, 12, 2, "io"),
]
HANG = 200_000     # cycles: each case takes under 25,000 on the shared port


@pytest.fixture(scope="module", autouse=True)
def build_cache(tmp_path_factory):
    """One Verilator build per parameter set for the whole module."""
    d = tmp_path_factory.mktemp("rtl-axi-builds")
    old, cosim.BUILD_CACHE = cosim.BUILD_CACHE, d
    yield d
    cosim.BUILD_CACHE = old


@pytest.mark.parametrize("seed,prob", [(1, 0.0), (2, 0.3)])
def test_wu_step_completes_on_one_shared_port(seed, prob, tmp_path_factory):
    """WU (with momentum), FP and BP complete behind one arbitrated in-order port with
    random back-pressure and match the golden model (fails by timeout on an RTL whose
    RREADY follows its consumer). The memory sits at 0x8_0000_0000, the ZCU102's upper
    DDR: every burst must carry the pointer's bit 35 (a 32-bit address fails the test)."""
    _require("verilator")
    runs = [Run(i) for i in range(len(SHARED_CASES))]
    got = cosim.run_passes(P256, SHARED_CASES, [(runs, None)],
                           workdir=tmp_path_factory.mktemp(f"shared{seed}"),
                           shared=Pause(seed, prob), timeout=HANG,
                           dram_base=0x8_0000_0000)    # the ZCU102's upper DDR: 40-bit
    for r in got[0].results:
        print(r.lp.label, r.cycles, r.max_rel, r.error)
        assert r.ok, (r.lp.label, r.errors, r.error)


# The fused datapath (RtlParams.fuse) adds a fourth requester, m_axi2's read channel (BN BP
# dx's y beside the loads), and read passes before the BP store (SE, SK on m_axi1): BP
# with every store operand, the WU with both load transforms, FP with its sums.
P256F = replace(P256, fuse=True)
FUSED_CASES = [
    LayerPhase("r6", "conv", 6, 10, 8, 8, 3, 1, 1, 2, "bp", False, 4, 8, 2, "wo", True,
               mk=True, stats=True, dx=True, se=True, sk=True),
    LayerPhase("d6", "conv", 6, 10, 8, 8, 3, 1, 1, 2, "wu", False, 8, 8, 2, "io", xf=2,
               dx=True),
    LayerPhase("x1", "conv", 6, 10, 8, 8, 3, 1, 1, 2, "fp", False, 4, 8, 2, "wo", stats=True,
               xf=2),
]


def test_fused_datapath_completes_on_one_shared_port(tmp_path_factory):
    """The fused datapath's records (the y stream on m_axi2's read channel joined word for
    word with tile_rd's, the BP store's SE/SK passes and mask on m_axi1) complete behind
    the one in-order port with random back-pressure and match the golden model: no read
    waits for a burst queued behind it."""
    _require("verilator")
    runs = [Run(i) for i in range(len(FUSED_CASES))]
    got = cosim.run_passes(P256F, FUSED_CASES, [(runs, None)],
                           workdir=tmp_path_factory.mktemp("shared-fused"),
                           shared=Pause(2, 0.3), timeout=HANG, dram_base=0x8_0000_0000)
    for r in got[0].results:
        print(r.lp.label, r.cycles, r.max_rel, r.error)
        assert r.ok, (r.lp.label, r.errors, r.error)


# ------------------------------------------------------------------ netlist structure

def _require_yosys() -> None:
    if shutil.which("yosys") is None:
        pytest.fail("yosys not installed: apt-get install yosys")


# 64-bit data: the beat adapters and the beat-wide tile_rd, tile_wr and engine_wload paths are in
# (the 32-bit build differs only by their absence)
P22 = RtlParams(EngineParams(tm=2, tn=2, ifm_depth=64, ofm_depth=32, wbuf_depth=64, kmax=3,
                             smax=4, impl="synth", wl_words=2), max_burst=16, axi_width=64)


def test_io_paths_finds_a_combinational_path(tmp_path):
    """The checker itself: a ready passed straight through is found, a registered one not."""
    _require_yosys()
    from efgen.rtl.paths import io_paths, netlist
    src = {"t.v": "module t(input wire clk, input wire a_ready, input wire [3:0] d,\n"
                  "  output wire b_ready, output reg c_ready, output wire [3:0] q);\n"
                  "assign b_ready = a_ready & d[0];\n"
                  "always @(posedge clk) c_ready <= a_ready;\n"
                  "assign q = {3'b0, d[1]} + 4'd1;\n"
                  "endmodule\n"}
    got = io_paths(netlist(src, "t", workdir=tmp_path), "t")
    assert ("a_ready", "b_ready") in got and ("d", "b_ready") in got and ("d", "q") in got
    assert not any(o == "c_ready" for _, o in got) and not any(i == "clk" for i, _ in got)


def test_no_combinational_path_from_any_input_to_any_output(tmp_path):
    """AMBA: no combinational path between the input and output signals of an AXI
    interface; efgen_top has none at all, from any input port to any output port (the
    FP32 units boxed: conservatively, every one of their inputs reaches every output).
    Before the read buffers, m_axi2_wready reached m_axi1_rready through the SGD
    write-back's FIFOs."""
    _require_yosys()
    from efgen.rtl.paths import io_paths, netlist
    from efgen.rtl.top import rtl_verilog
    assert (P22.load_words, P22.engine.wl_words) == (2, 2)
    net = netlist(rtl_verilog(P22), "efgen_top", workdir=tmp_path,
                  blackbox=("fp32_add", "fp32_mul"))
    assert io_paths(net, "efgen_top") == set()


# ------------------------------------------------------------------ errors, abort, range

SMALL = [
    LayerPhase("s", "conv", 6, 4, 6, 6, 3, 2, 1, 1, "fp", True, 3, 3, 1, "wo"),
    LayerPhase("s", "conv", 6, 4, 6, 6, 3, 2, 1, 1, "wu", False, 3, 3, 1, "io"),
]


def test_abort_and_out_of_range_starts(tmp_path_factory):
    """ABORT mid-run (FP and WU, bursts in flight on every port): the run ends with DONE,
    ERROR and code 9, and the next descriptors run cleanly without a reset. A START whose
    pointer or descriptor address leaves the 40-bit space (or a misaligned pointer) is
    refused with ERR_RANGE and moves nothing."""
    from efgen.rtl.dma import ERR_ABORTED, ERR_RANGE, STATUS_DONE, STATUS_ERROR
    _require("verilator")
    aborts = [Run(0, abort_at=150), Run(1, abort_at=300), Run(0), Run(1)]
    ranges = [Run(0, set=(("a0_hi", 1),)),                        # a[0] >= 2**30 words
              Run(0, set=(("a7_hi", 0xFFFFFFFF),)),               # a negative address
              Run(0, set=(("gmem_in_hi", 0x100),)),               # pointer at 2**40
              Run(0, set=(("gmem_w_hi", 0xFF), ("gmem_w_lo", 0xFFFFF000))),  # a[i] >= 1024: beyond
              Run(0, set=(("gmem_out_lo", 2),))]                  # a misaligned pointer
    got = cosim.run_passes(P256, SMALL, [(aborts, None), (ranges, None)],
                           workdir=tmp_path_factory.mktemp("abort"))
    res = got[0].results
    for r in res[:2]:
        print(r.lp.label, r.cycles, hex(r.status), r.error)
        assert r.status & STATUS_DONE and r.status & STATUS_ERROR, hex(r.status)
        assert (r.status >> 8) & 0xFF == ERR_ABORTED and "ABORTED" in r.error
        assert 150 <= r.cycles < 2000          # ended soon after the abort, not at the end
    for r in res[2:]:
        assert r.ok, (r.lp.label, r.errors, r.error)
    for r in got[1].results:
        assert r.status == STATUS_DONE | STATUS_ERROR | (ERR_RANGE << 8), hex(r.status)
        assert r.cycles == 0 and "ERR_RANGE" in r.error
    assert (got[1].dump == got[1].image).all(), "a refused START wrote DRAM"


@pytest.mark.parametrize("board,bits,data", [("zcu102", 40, 128), ("kv260", 40, 128),
                                             ("pynq-z2", 32, 64)])
def test_address_width_follows_the_board(board, bits, data):
    """The AXI addresses are as wide as the board's PS takes: the masters' ports, the DMA
    engines and the range check of the generated top; the data as wide as its HP ports
    (axi.width_bits)."""
    import re

    import efgen
    from efgen.rtl.top import rtl_params, rtl_verilog

    acc = efgen.build("tiny", board, 2, tiles=(2, 4))
    p = rtl_params(acc.design)
    assert p.addr_width == bits
    top = rtl_verilog(p)["efgen_top.v"]
    for port in ("m_axi0_araddr", "m_axi1_araddr", "m_axi2_awaddr"):
        assert re.search(rf"output wire \[{bits - 1}:0\] {port},", top), port
    assert top.count(f".ADDR_WIDTH({bits})") == 3
    assert p.axi_width == data and top.count(f".DATA_WIDTH({data})") == 3
    for port in ("m_axi0_rdata", "m_axi1_rdata"):
        assert re.search(rf"input  wire \[{data - 1}:0\] {port},", top), port
    assert re.search(rf"output wire \[{data - 1}:0\] m_axi2_wdata,", top)
    assert top.count(f"DATA_WIDTH {data}, ADDR_WIDTH {bits}") == 3     # X_INTERFACE_PARAMETER
