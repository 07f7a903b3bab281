"""Resources of the accelerator (DSP, BRAM18, URAM, LUT, FF) from its HwParams.

Coefficients and their sources: configs/model/coefficients.yaml. Buffers:

* IFM: ``tn`` banks x 2 (ping-pong) x ``ifm_depth`` words of the data precision;
* OFM: ``tm`` banks x 2 x ``ofm_depth`` accumulator words (32-bit for every precision);
* weights: ``tm * tn`` banks x ``wbuf_depth`` words, wide enough for the WU gradient
  accumulators (32-bit), in BRAM or, where the board has it, URAM; with ``wdb``
  (double-buffered weight chunks) each bank is ``2 * wbuf_depth`` words deep;

each bank costing the RAMB18 count of its best aspect ratio (port-width rules of UG573).

With ``p`` pixel lanes (issue 13) the array is Tm x Tn x P MACs (DSP, LUT, FF scale with
P) and the buffers gain the read ports P needs: the IFM half being computed is read
only, so its two BRAM ports give two pixels a cycle and P > 2 keeps ceil(P/2) copies
(the loader writes them all; both ports reading, each RAMB18 port is at most 18 bits
wide, so a 32-bit bank takes two RAMB18s up to 1024 words, not one up to 512); the OFM accumulators read and write P pixels a cycle, so
each bank is split cyclically over the pixel index into P banks of ofm_depth/P words
(P adjacent pixels of a tile row are consecutive words: no conflict); the weight buffer
is shared by the P lanes (one weight a cycle serves them all), so it does not grow.
Packing (``pack``) adds one address adder per reduction lane (each lane reads its own
kernel tap), counted as one more per-lane LUT/FF term.
With ``fuse`` (the restructured-BN datapath) the conv engine's BP store also holds two
lane-block tiles, ``lanes`` banks x ``ofm_depth`` 32-bit words each (hls_kernels/
conv_engine.h ``seb``, ``syb``: another sender's error, record SE, and the BN input y,
record SK, read before each lane block's store).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from efgen.design import HwParams
from efgen.frontend.boards import Board
from efgen.model.operators import fused_unit_ops, hls_operators, totals
from efgen.model.coeffs import (
    acc_bits,
    bram18_units,
    coefficients,
    mac_cost,
    uram_units,
    word_bits,
)


@dataclass(frozen=True)
class ResourceUse:
    dsp: float
    bram18: int
    uram: int
    lut: int
    ff: int
    dsp_array: float   # the Tm x Tn MAC array alone (the rest: aux_cost and the shell)
    bram_ifm: int
    bram_ofm: int
    bram_wbuf: int
    bram_fuse: int = 0   # the fused BP store's two tiles (SE, SK); not listed when 0

    def as_dict(self) -> dict:
        d = asdict(self)
        if not d["bram_fuse"]:
            del d["bram_fuse"]       # the unfused design's figures, byte for byte
        return d


RESOURCES = ("dsp", "bram18", "uram", "lut", "ff")


def resource_use(hw: HwParams, board: Board) -> ResourceUse:
    c = coefficients()
    mac = mac_cost(board.dsp_type, hw.precision)
    shell = c["shell"]
    lanes = hw.lanes
    dsp_array = hw.macs * mac["dsp"]
    aux = aux_cost(hw, board)
    dsp = dsp_array + aux["dsp"] + shell["dsp"]
    lanes_io = (hw.tm + hw.tn) * hw.p + (hw.tn if hw.pack else 0)
    lut = hw.macs * mac["lut"] + aux["lut"] + lanes_io * c["per_lane"]["lut"] + shell["lut"]
    ff = hw.macs * mac["ff"] + aux["ff"] + lanes_io * c["per_lane"]["ff"] + shell["ff"]
    wb, ab = word_bits(hw.precision), acc_bits(hw.precision)
    # (P > 1: the half being computed is read on both ports, true dual port)
    b_ifm = hw.tn * 2 * -(-hw.p // 2) * bram18_units(wb, hw.ifm_depth, tdp=hw.p > 1)
    b_ofm = hw.tm * 2 * hw.p * bram18_units(ab, -(-hw.ofm_depth // hw.p))
    wbanks = hw.tm * hw.tn                      # shared by the P pixel lanes
    copies = 2 if hw.wdb else 1                 # double-buffered weight chunks
    if hw.weight_mem == "uram":
        b_w, uram = 0, wbanks * uram_units(ab, copies * hw.wbuf_depth)
    else:
        b_w, uram = wbanks * bram18_units(ab, copies * hw.wbuf_depth), 0
    b_fuse = 2 * lanes * bram18_units(32, hw.ofm_depth) if hw.fuse else 0
    bram = b_ifm + b_ofm + b_w + b_fuse + shell["bram18"]
    return ResourceUse(dsp=dsp, bram18=bram, uram=uram, lut=int(math.ceil(lut)),
                       ff=int(math.ceil(ff)), dsp_array=dsp_array, bram_ifm=b_ifm,
                       bram_ofm=b_ofm, bram_wbuf=b_w, bram_fuse=b_fuse)


def aux_cost(hw: HwParams, board: Board) -> dict[str, float]:
    """DSP, LUT and FF of everything outside the Tm x Tn array that computes: for fp32 the
    HLS C++'s own float operators (efgen/model/operators.py: the conv engine's bias and
    SGD units, the vector engine's units), at the measured per-operator costs of
    ``hls_ops``; for other precisions ``lanes`` MAC lanes (``aux_lane``), an estimate."""
    c = coefficients()
    per_op = c.get("hls_ops", {}).get(board.dsp_type)
    if hw.precision != "fp32" or per_op is None:
        mac = mac_cost(board.dsp_type, hw.precision)
        # (the restructured-BN units: about 4 lanes' worth more, an estimate)
        lanes = hw.lanes + (4 * hw.port_words if hw.fuse else 0)
        return {k: lanes * mac[k] for k in ("dsp", "lut", "ff")}
    funcs = hls_operators(hw.tm, hw.tn, hw.lanes, board.axi.width_bits // 32)
    if hw.fuse:     # the restructured-BN load/store units (efgen/model/restructure.py)
        funcs = {**funcs, **fused_unit_ops(board.axi.width_bits // 32)}
    ops = totals(funcs, skip=("mac_pass",))
    return {k: sum(n * per_op[op][k] for op, n in ops.items()) for k in ("dsp", "lut", "ff")}


def over_caps(use: ResourceUse, board: Board) -> list[tuple[str, float, int]]:
    """Resources above the board's caps: (name, needed, allowed)."""
    bad = []
    for r in RESOURCES:
        need = getattr(use, r)
        allowed = board.cap(r)
        if need > allowed:
            bad.append((r, need, allowed))
    return bad
