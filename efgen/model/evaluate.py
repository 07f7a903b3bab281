"""Evaluate a whole Design: one row per layer-phase, and the totals of a training step.

Rows come from the convolution engine (conv/linear FP, BP, WU, and the SGD write-back
of their weights) and from the vector engine (everything else). Each row carries its
cycles and DRAM traffic in the reshaped layout and, with the same tiling, in plain
NCHW/OIHW, so the report shows what reshaping buys. Totals are sums of the rows (a
test checks it).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from efgen.design import Design, HwParams
from efgen.errors import EfgenError
from efgen.frontend.boards import Board
from efgen.frontend.ir import Net
from efgen.model import engine
from efgen.model.aux import aux_costs
from efgen.model.coeffs import word_bits
from efgen.model.energy import energy_constants, energy_joules
from efgen.model.fusion import fused_relus
from efgen.model.resources import resource_use


@dataclass(frozen=True)
class Row:
    layer: str
    phase: str            # fp | bp | wu | sgd
    engine: str           # "conv" or the vector-engine op
    tiles: str            # e.g. "tr=8 tc=32 mc=2 io", or "" for the vector engine
    cycles: float
    cycles_nchw: float
    macs: float           # useful MACs (whole batch)
    flops: float          # useful FLOPs counted for GFLOPS (2 per MAC)
    dram_bytes: float
    dram_bytes_nchw: float
    bursts: float
    bursts_nchw: float
    compute_cycles: float
    load_cycles: float
    energy_j: float
    dram_read_bytes: float = 0.0   # part of dram_bytes that is read (the rest is written)

    @property
    def bound(self) -> str:
        if self.engine != "conv":
            return "memory"
        return "compute" if self.compute_cycles >= self.load_cycles else "memory"

    def as_dict(self) -> dict:
        d = asdict(self)
        d["bound"] = self.bound
        return d


def ddr_bytes_per_cycle(board: Board, clock_mhz: float) -> float:
    return board.ddr.peak_gbps * 1e9 / (clock_mhz * 1e6)


def bram_accesses_per_cycle(hw: HwParams, phase: str) -> float:
    """On-chip buffer accesses per engine cycle (weights, inputs, accumulators)."""
    if phase == "wu":
        return 2.0 * hw.macs + hw.tm + hw.tn      # gradient read+write, error, input
    return float(hw.macs + hw.tn + 2 * hw.tm)     # weights, inputs, partial sums


def engine_rows(net: Net, design: Design, board: Board,
                jobs: list[engine.Job] | None = None) -> list[Row]:
    """Rows of the convolution engine's jobs (default: the net's, efgen.model.engine)."""
    hw = design.hw
    wbits = word_bits(hw.precision)
    wbytes = wbits / 8
    ddr = ddr_bytes_per_cycle(board, hw.clock_mhz)
    if jobs is None:
        jobs = _fusion_jobs(net, design) or engine.jobs_for(net, design.batch)
    tiles = []
    for j in jobs:
        s = design.tiling(j.layer, j.phase)
        tiles.append((s.tr, s.tc, s.mc, s.order))
    mom = design.sgd_momentum
    if not jobs:
        return []
    res = engine.evaluate_chosen(jobs, tiles, hw, wbytes, ddr, "reshaped", mom)
    nchw = engine.evaluate_chosen(jobs, tiles, hw, wbytes, ddr, "nchw", mom)
    k = energy_constants(board, hw.precision, hw)
    clock = hw.clock_mhz * 1e6
    rows = []
    for i, j in enumerate(jobs):
        t = design.tiling(j.layer, j.phase)
        if not np.isfinite(res["cycles"][i]):
            raise EfgenError(f"the tiling of {j.layer} {j.phase.upper()} does not fit the "
                             f"buffers (tr={t.tr} tc={t.tc} mc={t.mc} {t.order})",
                             where=f"schedule ({j.layer}, {j.phase})",
                             fix="choose smaller tiles or larger buffers")
        sgd = float(res["sgd_cycles"][i])
        sgd_n = float(nchw["sgd_cycles"][i])
        cyc = float(res["cycles"][i]) - sgd
        cyc_n = float(nchw["cycles"][i]) - sgd_n
        rw = float(res["read_words"][i] + res["write_words"][i])
        rw_n = float(nchw["read_words"][i] + nchw["write_words"][i])
        # Split the WU job's DRAM words between WU (tiles) and SGD (weights + momentum).
        w_sgd = w_sgd_n = 0.0
        if j.phase == "wu":
            factor = 4.0 if mom else 2.0
            w_sgd = factor * _weight_words(j, hw, True)
            w_sgd_n = factor * _weight_words(j, hw, False)
        comp = float(res["compute_cycles"][i])
        e_bram = comp * bram_accesses_per_cycle(hw, j.phase) + rw
        tiles_s = f"tr={t.tr} tc={t.tc} mc={t.mc} {t.order}"
        macs = float(j.macs)
        e = float(energy_joules(cyc / clock, 2 * macs, e_bram, (rw - w_sgd) * wbytes, k))
        rows.append(Row(j.layer, j.phase, "conv", tiles_s, cyc, cyc_n, macs, 2 * macs,
                        (rw - w_sgd) * wbytes, (rw_n - w_sgd_n) * wbytes,
                        float(res["bursts"][i]), float(nchw["bursts"][i]), comp,
                        float(res["load_cycles"][i]), e,
                        (float(res["read_words"][i]) - w_sgd / 2) * wbytes))
        if j.phase == "wu":
            e = float(energy_joules(sgd / clock, 0, w_sgd, w_sgd * wbytes, k))
            rows.append(Row(j.layer, "sgd", "sgd (weights, fused in WU write-back)", "",
                            sgd, sgd_n, 0.0, 0.0, w_sgd * wbytes, w_sgd_n * wbytes, 0.0, 0.0,
                            0.0, sgd, e, w_sgd / 2 * wbytes))
    return rows


def _fusion_jobs(net: Net, design: Design) -> list[engine.Job] | None:
    """The restructured-BN jobs of a fused Design (None when it is not fused)."""
    if design.fusion is None:
        return None
    from efgen.model.restructure import Plan, fused_jobs

    return fused_jobs(net, design.batch, Plan.from_doc(design.fusion))


def _weight_words(j: engine.Job, hw: HwParams, blocked: bool) -> float:
    if blocked:
        return float(math.ceil(j.out / hw.tm) * hw.tm * math.ceil(j.red / hw.tn) * hw.tn
                     * j.k * j.k)
    return float(j.out * j.red * j.k * j.k)


def aux_rows(net: Net, design: Design, board: Board, costs=None) -> list[Row]:
    """Rows of the vector engine; ``costs``: precomputed (reshaped, nchw) AuxCost lists."""
    hw = design.hw
    wbits = word_bits(hw.precision)
    ddr = ddr_bytes_per_cycle(board, hw.clock_mhz)
    if costs is None and design.fusion is not None:
        from efgen.model.restructure import Plan, fused_aux

        plan = Plan.from_doc(design.fusion)
        a, b = (fused_aux(net, design.batch, hw, wbits, ddr, plan, design.sgd_momentum, lay)
                for lay in ("reshaped", "nchw"))
    elif costs is None:
        a = aux_costs(net, design.batch, hw, wbits, ddr, "reshaped", design.sgd_momentum)
        b = aux_costs(net, design.batch, hw, wbits, ddr, "nchw", design.sgd_momentum)
    else:
        a, b = costs
    k = energy_constants(board, hw.precision, hw)
    rows = []
    for x, y in zip(a, b):
        words = x.read_words + x.write_words
        e = float(energy_joules(x.cycles / (hw.clock_mhz * 1e6), x.elements, words,
                                words * wbits / 8, k))
        rows.append(Row(x.layer, x.phase, x.op, "", x.cycles, y.cycles, 0.0, 0.0,
                        words * wbits / 8, (y.read_words + y.write_words) * wbits / 8,
                        x.bursts, y.bursts, 0.0, x.cycles, e, x.read_words * wbits / 8))
    return rows


PHASE_ORDER = {"fp": 0, "bp": 1, "wu": 2, "sgd": 3}


def evaluate_design(net: Net, design: Design, board: Board) -> dict:
    """Rows (execution order: FP forward, then BP/WU/SGD backward) and totals.

    A Design with training methods (``design.training``) is priced by
    :func:`efgen.methods.cost.evaluate_methods`, which returns the same structure."""
    if getattr(design, "training", None):
        from efgen.methods.cost import evaluate_methods

        return evaluate_methods(net, design, board, engine_rows=engine_rows,
                                aux_rows=aux_rows, totals=design_totals, order=PHASE_ORDER)
    rows = engine_rows(net, design, board) + aux_rows(net, design, board)
    order = {l.name: i for i, l in enumerate(net)}
    rows.sort(key=lambda r: (r.phase != "fp", order[r.layer] if r.phase == "fp"
                             else -order[r.layer], PHASE_ORDER[r.phase]))
    ev = {"rows": rows, "totals": design_totals(net, design, board, rows)}
    if design.fusion is not None:
        from efgen.model.restructure import comparison

        ev["totals"]["fusion"] = comparison(net, design, board, ev)
    return ev


def design_totals(net: Net, design: Design, board: Board, rows: list[Row]) -> dict:
    """The totals of a training step from its rows (sums; rates from the sums)."""
    hw = design.hw
    use = resource_use(hw, board)
    clock = hw.clock_mhz * 1e6
    cycles = sum(r.cycles for r in rows)
    cycles_n = sum(r.cycles_nchw for r in rows)
    seconds = cycles / clock
    flops = sum(r.flops for r in rows)
    dram = sum(r.dram_bytes for r in rows)
    dram_n = sum(r.dram_bytes_nchw for r in rows)
    energy = sum(r.energy_j for r in rows)
    peak = hw.peak_gflops()
    gflops = flops / seconds / 1e9 if seconds else 0.0
    totals = {
        "cycles": cycles,
        "ms_per_step": seconds * 1e3,
        "images_per_s": design.batch / seconds if seconds else 0.0,
        "effective_gflops": gflops,
        "peak_gflops": peak,
        "roofline_fraction": gflops / peak if peak else 0.0,
        "dram_bytes": dram,
        "dram_read_bytes": sum(r.dram_read_bytes for r in rows),
        "dram_write_bytes": dram - sum(r.dram_read_bytes for r in rows),
        "dram_bytes_nchw": dram_n,
        "dram_saving": 1.0 - dram / dram_n if dram_n else 0.0,
        "cycles_nchw": cycles_n,
        "bursts": sum(r.bursts for r in rows),
        "bursts_nchw": sum(r.bursts_nchw for r in rows),
        "speedup_vs_nchw": cycles_n / cycles if cycles else 0.0,
        "dram_gbps": dram / seconds / 1e9 if seconds else 0.0,
        "ddr_peak_gbps": board.ddr.peak_gbps,
        "energy_j": energy,
        "gflops_per_w": (flops / 1e9) / energy if energy else 0.0,
        "edp": energy * seconds,
        "fused_relus": sorted(fused_relus(net)),
        "resources": use.as_dict(),
        "utilisation": {r: (getattr(use, r) / getattr(board.resources, r)
                            if getattr(board.resources, r) else 0.0)
                        for r in ("dsp", "bram18", "uram", "lut", "ff")},
        "caps": {r: board.cap(r) for r in ("dsp", "bram18", "uram", "lut", "ff")},
        "flops": flops,
    }
    return totals
