"""Cost of the vector engine: every layer-phase that is not a convolution.

The vector engine streams whole tensors: min(T, port words) elements per cycle (its
units are one AXI beat wide: :func:`vector_lanes`), two read
ports (the input and weight ports are free while it runs) and one write port. A pass
costs ``max(reads / (2*bw), writes / bw, elements / lanes)`` cycles plus one DMA start
per burst and its pipeline depth. Tensors are contiguous per batch in both layouts, so
the layouts differ only in the pad lanes the reshaped layout moves.

What each op costs (per batch; "x" input, "y" output, "dy"/"dx" errors):

=============  ==========================================  ===============================
op             FP                                          BP
=============  ==========================================  ===============================
batchnorm      stats pass (read x); normalise (read x,     sums pass (read dy, x); dx pass
               write y; a following ReLU is fused here)    (read dy, x, write dx)
relu           fused into the producer's store when the    fused: the mask is applied by the
               producer is conv/linear/BN/add and the      single sender's BP store (reading
               ReLU is its only consumer; else read+write  its input) or by the error sum
                                                           (see efgen/model/fusion.py)
maxpool        read x, write y and the argmax bits         read dy and argmax, write dx
avgpool        read x, write y                             read dy, write dx
add            read a and b, write y                       free: both branches read dy
shortcut_a     read x, write y                             read dy, write dx
flatten        free on a 1x1 map or in NCHW; else reorder  same
softmax_ce     on the host (not modelled)                  on the host
error sum      -                                           tensors read by k>1 layers that
                                                           send errors: read k, write 1
                                                           (+ read y to apply a fused mask)
SGD (vectors)  -                                           BN gamma/beta, biases: read p, v,
                                                           g; write p, v
=============  ==========================================  ===============================

Conv/linear weights are updated by the convolution engine's WU write-back (see
:mod:`efgen.model.engine`), not here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from efgen.design import HwParams
from efgen.frontend.ir import Layer, Net
from efgen.model.fusion import bp_store_masks, error_senders, fused_relus, masked_error_sums


@dataclass(frozen=True)
class AuxCost:
    layer: str
    phase: str          # "fp", "bp" or "sgd"
    op: str             # what runs, e.g. "batchnorm", "errsum", "relu (fused)"
    cycles: float
    read_words: float
    write_words: float
    bursts: float
    elements: float     # elements processed (for energy)


def _words(shape, batch: int, lanes: int, blocked: bool) -> float:
    """Words of a per-image tensor ``shape`` over the batch, pad lanes included."""
    if not shape:
        return 0.0
    c = shape[0]
    rest = math.prod(shape[1:]) if len(shape) > 1 else 1
    cw = math.ceil(c / lanes) * lanes if blocked else c
    return float(batch * cw * rest)


def vector_lanes(hw: HwParams) -> int:
    """Elements the vector engine computes per cycle: its datapath units hold one AXI
    beat's worth of lanes, min(T, port words) (hls_kernels/vector_engine.h: a T-lane
    vector takes T/W beats per stream, so wider units would only wait)."""
    return max(1, min(hw.lanes, hw.port_words))


def _pass(hw: HwParams, bw: float, maxb: float, reads: list[float], writes: list[float],
          elements: float) -> tuple[float, float]:
    """(cycles, bursts) of one streaming pass."""
    r, w = sum(reads), sum(writes)
    bursts = sum(math.ceil(x / maxb) for x in reads + writes if x > 0)
    cyc = max(r / (2 * bw), w / bw, elements / vector_lanes(hw))
    return cyc + bursts * hw.dma_start + hw.mac_depth, float(bursts)


def passes_cost(hw: HwParams, bw: float, maxb: float, layer: str, phase: str, op: str,
                passes: list[tuple[list, list, float]]) -> AuxCost:
    """The AuxCost of a layer-phase that runs ``passes`` (reads, writes, elements) one
    after the other (:func:`_pass` each)."""
    cyc = bursts = rd = wr = el = 0.0
    for reads, writes, elements in passes:
        c, b = _pass(hw, bw, maxb, reads, writes, elements)
        cyc, bursts = cyc + c, bursts + b
        rd, wr, el = rd + sum(reads), wr + sum(writes), el + elements
    return AuxCost(layer, phase, op, cyc, rd, wr, bursts, el)


def aux_costs(net: Net, batch: int, hw: HwParams, word_bits: int, ddr_bytes_per_cycle: float,
              layout: str = "reshaped", momentum: bool = True) -> list[AuxCost]:
    blocked = layout == "reshaped"
    word_bytes = word_bits / 8
    bw = min(float(hw.port_words), ddr_bytes_per_cycle / word_bytes / hw.ports)
    maxb = float(hw.max_burst_beats * hw.port_words)
    fused = fused_relus(net)
    masks = bp_store_masks(net)          # layers whose BP store applies a ReLU mask
    mask_sums = masked_error_sums(net)   # fused-ReLU outputs finalised by a sum/mask pass
    out: list[AuxCost] = []
    W = lambda shape: _words(shape, batch, hw.lanes, blocked)  # noqa: E731

    def add(layer: Layer, phase: str, op: str, passes: list[tuple[list, list, float]]):
        out.append(passes_cost(hw, bw, maxb, layer.name, phase, op, passes))

    for l in net:
        x = W(l.in_shape) if l.in_shapes else 0.0
        y = W(l.out_shape)
        n_out = float(batch * math.prod(l.out_shape)) if l.out_shape else 0.0
        n_in = float(batch * math.prod(l.in_shape)) if l.in_shapes else 0.0
        op = l.op
        mx = [x] if l.name in masks else []   # mask source: the layer's own input
        if op == "batchnorm":
            add(l, "fp", "batchnorm", [([x], [], n_in), ([x], [y], n_in)])
            if l.runs_bp:
                add(l, "bp", "batchnorm", [([y, x], [], n_in), ([y, x] + mx, [x], n_in)])
            elif l.trainable:
                add(l, "bp", "batchnorm (gamma/beta only)", [([y, x], [], n_in)])
        elif op == "relu":
            if l.name in fused:
                out.append(AuxCost(l.name, "fp", "relu (fused into "
                                   f"{net[l.inputs[0]].name})", 0, 0, 0, 0, 0))
                if l.runs_bp:
                    out.append(AuxCost(l.name, "bp", "relu (fused)", 0, 0, 0, 0, 0))
            else:
                add(l, "fp", "relu", [([x], [y], n_in)])
                if l.runs_bp:
                    add(l, "bp", "relu", [([y, y], [x], n_in)])
        elif op == "maxpool":
            bits = max(1, math.ceil(math.log2(l.kernel * l.kernel)))
            arg = math.ceil(n_out * bits / word_bits)
            add(l, "fp", "maxpool", [([x], [y, arg], n_in)])
            if l.runs_bp:
                add(l, "bp", "maxpool", [([y, arg] + mx, [x], n_in)])
        elif op == "avgpool":
            add(l, "fp", "avgpool", [([x], [y], n_in)])
            if l.runs_bp:
                add(l, "bp", "avgpool", [([y] + mx, [x], n_in)])
        elif op == "add":
            add(l, "fp", "add", [([x, x], [y], n_out)])
            if l.runs_bp:
                out.append(AuxCost(l.name, "bp", "add (shares dy)", 0, 0, 0, 0, 0))
        elif op == "shortcut_a":
            add(l, "fp", "shortcut_a", [([x], [y], n_out)])
            if l.runs_bp:
                src = W((l.in_shape[0], *l.out_shape[1:]))
                add(l, "bp", "shortcut_a", [([src] + mx, [x], n_in)])
        elif op == "flatten":
            free = (not blocked) or math.prod(l.in_shape[1:]) == 1
            if free:
                out.append(AuxCost(l.name, "fp", "flatten (free)", 0, 0, 0, 0, 0))
            else:
                add(l, "fp", "flatten (reorder)", [([x], [y], n_in)])
                if l.runs_bp:
                    add(l, "bp", "flatten (reorder)", [([y], [x], n_in)])
        # Error sums where a tensor feeds several layers that send it errors.
        if l.needs_error and op != "softmax_ce":
            senders = error_senders(net, l.name)
            k = len(senders)
            masked = l.name in mask_sums
            if k > 1 or masked:
                name = (f"error sum of {k}" if k > 1 else "relu mask") + (
                    " + relu mask" if masked and k > 1 else "")
                reads = [y] * k + ([y] if masked else [])   # k errors (+ the mask source)
                add(l, "bp", name, [(reads, [y], n_out)])
        # SGD on vectors (BN gamma/beta, biases); weights are updated by the engine.
        if l.trainable:
            vec = [s for n, s in l.param_shapes().items() if n != "weight"]
            words = float(sum(math.prod(s) for s in vec))
            if words:
                k = 2 if momentum else 1
                add(l, "sgd", "sgd (vectors)", [([words] * (k + 1), [words] * k, words)])
    return out
