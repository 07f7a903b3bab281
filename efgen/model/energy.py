"""Energy per training step.

    joules = (P_static + P_clock) x seconds
             + pl_scale x (pJ/FLOP x FLOPs + pJ/access x BRAM accesses)
             + pJ/byte x DRAM bytes

* ``P_static``: the board's ``power.static_w`` (PS + PL static; a placeholder where the
  board file says so).
* ``P_clock``: clocked resources burn power whenever the accelerator runs, busy or not:
  ``pl_scale x f_MHz x sum_r uW_per_MHz[r] x used[r]`` over DSP, BRAM18, LUT, FF of the
  design (efgen.model.resources). This is the term that makes a larger array cost
  power even on layers it cannot fill, so energy and latency can trade off.
* per-event terms: FP arithmetic, buffer accesses, DRAM traffic.

Every constant is in configs/model/coefficients.yaml (``energy``) with its source.
``pl_scale`` is the one *fitted* coefficient: the model of EF-Train's design (ZCU102,
16x16 FP32, 100 MHz, vgg16-bn-224 at batch 2) is scaled to the 7.72 W its authors
measured (46.99 GFLOPS at 6.09 GFLOPS/W); benchmarks/bench_clock.py reproduces the fit
(:func:`fit_pl_scale`). One point fits one number, so agreement there is by
construction; the split between static, clock and per-event power is only as good as
the unfitted constants, and joules are for ranking designs, not for quoting.
"""

from __future__ import annotations

from efgen.frontend.boards import Board
from efgen.model.coeffs import coefficients


def _family(board: Board) -> dict:
    return coefficients()["energy"][board.family]


def clock_power_w(board: Board, hw, scale: float | None = None) -> float:
    """W the design's clocked resources burn at ``hw.clock_mhz`` (before ``pl_scale``
    when ``scale`` is 1.0)."""
    from efgen.model.resources import resource_use

    e = _family(board)
    uw = e["uw_per_mhz"]
    use = resource_use(hw, board)
    s = float(e["pl_scale"]) if scale is None else scale
    per_mhz = sum(float(uw[r]) * float(getattr(use, r)) for r in ("dsp", "bram18", "lut", "ff"))
    return s * per_mhz * float(hw.clock_mhz) * 1e-6


def energy_constants(board: Board, precision: str, hw=None) -> dict[str, float]:
    """The constants of :func:`energy_joules` for ``board``; with ``hw`` (the design's
    HwParams) the clocked-resource power is included in ``static_w``."""
    e = _family(board)
    s = float(e["pl_scale"])
    static = float(board.power.static_w)
    if hw is not None:
        static += clock_power_w(board, hw)
    return {"pj_flop": s * float(e["pj_per_flop"][precision]),
            "pj_bram": s * float(e["pj_per_bram_access"]),
            "pj_dram_byte": float(e["pj_per_dram_byte"]),
            "static_w": static}


def energy_note(board: Board) -> str:
    """What the energy figures of a design on ``board`` rest on, for report.md: the one
    fitted coefficient (or that the family is not fitted) and whether the board's static
    power is a placeholder."""
    e = _family(board)
    fit = e.get("pl_scale_fit")
    fitted = (f"PL dynamic terms scaled by pl_scale = {float(e['pl_scale']):g}, {fit}"
              if fit else f"pl_scale not fitted for {board.family} (no measured training "
              "point): unfitted estimates")
    static = (f"the board's static power {board.power.static_w:g} W is a placeholder "
              "(no sourced figure)" if board.power.placeholder
              else f"static power {board.power.static_w:g} W from the board file")
    return (f"Energy: estimated per-resource, per-event and per-byte constants "
            f"(configs/model/coefficients.yaml energy); {fitted}; {static}: use the "
            "joules to rank designs, not to quote.")


def bram_accesses_per_cycle(hw, phase: str) -> float:
    """On-chip buffer accesses per engine cycle (weights, inputs, accumulators)."""
    w, p = hw.tm * hw.tn, hw.p                  # the P pixel lanes share each weight
    if phase == "wu":
        return 2.0 * w + (hw.tm + hw.tn) * p      # gradient read+write, error, input
    return float(w + (hw.tn + 2 * hw.tm) * p)     # weights, inputs, partial sums


def energy_joules(seconds, flops, bram_accesses, dram_bytes, k: dict[str, float]):
    """Joules; works elementwise on numpy arrays."""
    return (k["static_w"] * seconds + 1e-12 * (k["pj_flop"] * flops
            + k["pj_bram"] * bram_accesses + k["pj_dram_byte"] * dram_bytes))


def fit_pl_scale(target_w: float, seconds: float, static_w: float, clock_w_unscaled: float,
                 event_j_unscaled: float, dram_j: float) -> float:
    """The ``pl_scale`` that makes the average power ``target_w``:
    target * t = (static + s * clock) * t + s * events + dram."""
    pl = target_w * seconds - static_w * seconds - dram_j
    denom = clock_w_unscaled * seconds + event_j_unscaled
    if denom <= 0 or pl <= 0:
        raise ValueError("the static and DRAM terms alone exceed the target power")
    return pl / denom
