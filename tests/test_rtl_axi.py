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
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:          # sim/ is a folder of the checkout, not installed
    sys.path.insert(0, str(ROOT))

from efgen.cosim import layers as cosim  # noqa: E402
from efgen.cosim.layers import LayerPhase, Pause, Run  # noqa: E402
from efgen.rtl.engine import EngineParams  # noqa: E402
from efgen.rtl.top import RtlParams  # noqa: E402


def _require(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.fail(f"{tool} not installed: apt-get install {tool}")


# max_burst 256 as the boards' designs: one read burst can hold far more words than the
# SGD write-back's FIFOs (16)
P256 = RtlParams(EngineParams(tm=4, tn=4, ifm_depth=512, ofm_depth=256, wbuf_depth=256,
                              kmax=3, smax=4, impl="behav"), max_burst=256)
# WU with momentum (lr 0.05, momentum 0.9, weight decay 5e-4: efgen.cosim.layers.SGD):
# 540 weights and 540 velocities read in 256-beat bursts on two ports, written on the
# third; then FP and BP, whose input, weight and output streams also share the port.
SHARED_CASES = [
    LayerPhase("w1", "conv", 6, 10, 12, 12, 3, 1, 1, 2, "wu", False, 6, 12, 2, "io"),
    LayerPhase("f1", "conv", 6, 10, 12, 12, 3, 1, 1, 2, "fp", True, 6, 12, 2, "wo"),
    LayerPhase("b1", "conv", 10, 6, 12, 12, 3, 2, 1, 1, "bp", False, 6, 12, 2, "io"),
]
HANG = 200_000     # cycles: each case takes under 10,000 on the shared port


@pytest.mark.parametrize("seed,prob", [(1, 0.0), (2, 0.3)])
def test_wu_step_completes_on_one_shared_port(seed, prob, tmp_path_factory):
    """WU (with momentum), FP and BP complete behind one arbitrated in-order port with
    random back-pressure and match the golden model (fails by timeout on an RTL whose
    RREADY follows its consumer)."""
    _require("verilator")
    runs = [Run(i) for i in range(len(SHARED_CASES))]
    got = cosim.run_passes(P256, SHARED_CASES, [(runs, None)],
                           workdir=tmp_path_factory.mktemp(f"shared{seed}"),
                           shared=Pause(seed, prob), timeout=HANG)
    for r in got[0].results:
        print(r.lp.label, r.cycles, r.max_rel, r.error)
        assert r.ok, (r.lp.label, r.errors, r.error)
