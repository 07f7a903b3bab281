"""Plots of the analytical model's results (matplotlib, Agg backend, no pyplot).

Every figure is drawn on a fresh :class:`~matplotlib.figure.Figure` under matplotlib's
built-in default style (a user's ``matplotlibrc`` cannot change the output), at a fixed
size and dpi, and saved without the "Software" text chunk or any date, so the PNG bytes
depend only on the inputs (and on the matplotlib version).

* :func:`plot_layer_times` - cycles (or ms) per layer, stacked by phase (fp, bp, wu, sgd);
* :func:`plot_roofline` - the array's compute roof and the memory roof, with every conv
  layer-phase placed at (operational intensity, achieved GFLOPS);
* :func:`plot_pareto` - all points of a sweep and one Pareto front.

matplotlib is imported lazily, so importing this module costs nothing.
"""

from __future__ import annotations

import math
import os
from contextlib import contextmanager
from typing import Any, Iterable, Sequence

__all__ = ["plot_layer_times", "plot_roofline", "plot_pareto", "memory_roof_gbps",
           "PHASE_STYLE", "AXIS_LABELS"]

DPI = 100
# Colour-blind-safe (Okabe-Ito) colours and distinct markers per phase.
PHASE_STYLE = {
    "fp": {"color": "#0072B2", "marker": "o", "label": "FP (forward)"},
    "bp": {"color": "#D55E00", "marker": "s", "label": "BP (input error)"},
    "wu": {"color": "#009E73", "marker": "^", "label": "WU (weight gradient)"},
    "sgd": {"color": "#CC79A7", "marker": "D", "label": "SGD (weight update)"},
}
PHASES = tuple(PHASE_STYLE)

# Axis labels of the sweep's point fields (plot_pareto); other keys are shown as is.
AXIS_LABELS = {
    "images_per_s": "throughput (images/s)",
    "dsp": "DSP slices",
    "bram18": "BRAM18 blocks",
    "energy_j": "energy per training step (J)",
    "ms_per_step": "latency per training step (ms)",
    "effective_gflops": "effective GFLOPS",
    "gflops_per_w": "GFLOPS/W",
    "cycles": "cycles per training step",
}


@contextmanager
def _figure(width: float, height: float):
    """A fresh Agg figure under matplotlib's default style (deterministic output)."""
    import matplotlib
    import matplotlib.style
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with matplotlib.style.context("default"), matplotlib.rc_context(
            {"svg.hashsalt": "efgen", "path.simplify": True}):
        fig = Figure(figsize=(width, height), dpi=DPI)
        FigureCanvasAgg(fig)
        yield fig


def _save(fig, path: str | os.PathLike) -> None:
    fig.savefig(os.fspath(path), format="png", dpi=DPI, metadata={"Software": None})


def _ordered_layers(rows: Iterable[Any]) -> list[str]:
    """Layers in order of first appearance: evaluate_design lists the FP rows first, in
    net order, so this is the net order."""
    seen: dict[str, None] = {}
    for r in rows:
        seen.setdefault(r.layer, None)
    return list(seen)


# ---- per-layer times ---------------------------------------------------------------------

def plot_layer_times(rows: Sequence[Any], path: str | os.PathLike, title: str,
                     clock_mhz: float | None = None) -> None:
    """Bar per layer (net order), stacked by phase: cycles, or ms when ``clock_mhz`` is
    given. ``rows``: evaluate_design's Row objects (anything with layer, phase, cycles)."""
    layers = _ordered_layers(rows)
    idx = {name: i for i, name in enumerate(layers)}
    per = {ph: [0.0] * len(layers) for ph in PHASES}
    for r in rows:
        ph = r.phase if r.phase in per else "sgd"
        per[ph][idx[r.layer]] += float(r.cycles)
    scale = 1.0 if clock_mhz is None else 1e3 / (clock_mhz * 1e6)
    ylabel = "cycles" if clock_mhz is None else f"ms at {clock_mhz:g} MHz"

    width = min(40.0, max(8.0, 0.2 * len(layers) + 2.0))
    with _figure(width, 5.0) as fig:
        ax = fig.add_subplot(1, 1, 1)
        xs = list(range(len(layers)))
        bottom = [0.0] * len(layers)
        for ph in PHASES:
            vals = [v * scale for v in per[ph]]
            if not any(vals):
                continue
            st = PHASE_STYLE[ph]
            ax.bar(xs, vals, bottom=bottom, color=st["color"], label=st["label"],
                   width=0.8, linewidth=0)
            bottom = [b + v for b, v in zip(bottom, vals)]
        ax.set_xticks(xs)
        ax.set_xticklabels(layers, rotation=90, fontsize=7)
        ax.set_xlim(-0.6, max(len(layers) - 0.4, 0.6))
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
        if layers:
            ax.legend(loc="upper right", fontsize=8)
        fig.tight_layout()
        _save(fig, path)


# ---- roofline ----------------------------------------------------------------------------

def memory_roof_gbps(hw: Any, ddr_peak_gbps: float) -> float:
    """Bandwidth the design can use: min(DDR peak, ports x port_words x word bytes x clock)."""
    from efgen.model.coeffs import word_bits

    axi = hw.ports * hw.port_words * word_bits(hw.precision) / 8 * hw.clock_mhz * 1e6 / 1e9
    return min(float(ddr_peak_gbps), axi)


def plot_roofline(rows: Sequence[Any], hw: Any, bw_gbps: float, path: str | os.PathLike,
                  title: str) -> None:
    """Log-log roofline: the compute roof ``hw.peak_gflops()``, the memory roof
    ``bw_gbps`` (see :func:`memory_roof_gbps`), and every conv-engine layer-phase at
    (FLOPs / DRAM bytes, FLOPs / time). Rows without FLOPs or traffic are left out."""
    peak = float(hw.peak_gflops())
    clock = hw.clock_mhz * 1e6
    pts: dict[str, list[tuple[float, float]]] = {ph: [] for ph in PHASES}
    for r in rows:
        if getattr(r, "engine", "conv") != "conv" or r.flops <= 0 or r.dram_bytes <= 0 \
                or r.cycles <= 0:
            continue
        oi = r.flops / r.dram_bytes
        gf = r.flops / (r.cycles / clock) / 1e9
        pts[r.phase if r.phase in pts else "sgd"].append((oi, gf))

    ridge = peak / bw_gbps if bw_gbps > 0 else 1.0
    all_oi = [p[0] for v in pts.values() for p in v] + [ridge]
    all_gf = [p[1] for v in pts.values() for p in v] + [peak]
    x_lo = 10 ** math.floor(math.log10(min(all_oi) / 2))
    x_hi = 10 ** math.ceil(math.log10(max(all_oi) * 2))
    y_lo = 10 ** math.floor(math.log10(max(min(all_gf) / 2, 1e-6)))
    y_hi = 10 ** math.ceil(math.log10(peak * 2))

    with _figure(8.0, 6.0) as fig:
        ax = fig.add_subplot(1, 1, 1)
        ax.set_xscale("log")
        ax.set_yscale("log")
        # roof: min(peak, bw * oi), drawn through the ridge point
        xs = [x_lo, ridge, x_hi] if x_lo < ridge < x_hi else [x_lo, x_hi]
        ax.plot(xs, [min(peak, bw_gbps * x) for x in xs], color="black", linewidth=1.5,
                label=f"roof: {peak:.1f} GFLOPS, {bw_gbps:.2f} GB/s")
        ax.axvline(ridge, color="grey", linestyle=":", linewidth=1)
        for ph in PHASES:
            if not pts[ph]:
                continue
            st = PHASE_STYLE[ph]
            ax.scatter([p[0] for p in pts[ph]], [p[1] for p in pts[ph]], s=22,
                       color=st["color"], marker=st["marker"], label=st["label"],
                       alpha=0.8, edgecolors="none")
        ax.set_xlim(x_lo, x_hi)
        ax.set_ylim(y_lo, y_hi)
        ax.set_xlabel("operational intensity (FLOP per DRAM byte)")
        ax.set_ylabel("achieved GFLOPS")
        ax.set_title(title)
        ax.grid(which="both", alpha=0.25)
        ax.legend(loc="lower right", fontsize=8)
        fig.tight_layout()
        _save(fig, path)


# ---- Pareto fronts -----------------------------------------------------------------------

def _auto_log(vals: list[float]) -> bool:
    pos = [v for v in vals if v > 0]
    return len(pos) == len(vals) and bool(pos) and max(pos) / min(pos) >= 50


CATEGORY_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9",
                    "#F0E442", "#000000")


def plot_pareto(points: Sequence[dict], x: str, y: str, path: str | os.PathLike,
                title: str, front_mask: Sequence[bool], logx: bool | None = None,
                logy: bool | None = None, color_by: str | None = None) -> None:
    """Scatter ``points`` (dicts) at (point[x], point[y]); the points where
    ``front_mask`` is true are drawn larger, outlined, and joined in x order (the
    attainment staircase). With ``color_by`` (e.g. "board") every point is coloured by
    that key's value (in order of first appearance), otherwise the points are grey and
    the front orange. Axes are logarithmic when the values span 50x or more, unless
    ``logx``/``logy`` say otherwise."""
    if len(front_mask) != len(points):
        raise ValueError("front_mask must have one entry per point")
    xs = [float(p[x]) for p in points]
    ys = [float(p[y]) for p in points]
    logx = _auto_log(xs) if logx is None else logx
    logy = _auto_log(ys) if logy is None else logy
    if color_by is not None:
        cats: dict[Any, str] = {}
        for p in points:
            if p[color_by] not in cats:
                cats[p[color_by]] = CATEGORY_COLOURS[len(cats) % len(CATEGORY_COLOURS)]
        colours = [cats[p[color_by]] for p in points]
    else:
        cats = {}
        colours = ["#999999" if not f else "#D55E00" for f in front_mask]
    front = sorted((xv, yv) for xv, yv, f in zip(xs, ys, front_mask) if f)

    with _figure(8.0, 6.0) as fig:
        ax = fig.add_subplot(1, 1, 1)
        if logx:
            ax.set_xscale("log")
        if logy:
            ax.set_yscale("log")
        rest = [i for i, f in enumerate(front_mask) if not f]
        on = [i for i, f in enumerate(front_mask) if f]
        if rest:
            ax.scatter([xs[i] for i in rest], [ys[i] for i in rest], s=10,
                       c=[colours[i] for i in rest], alpha=0.6, edgecolors="none")
        if front:
            ax.plot([p[0] for p in front], [p[1] for p in front], color="#D55E00"
                    if color_by is None else "#444444", linewidth=1,
                    drawstyle="steps-post", alpha=0.7, zorder=2)
            ax.scatter([xs[i] for i in on], [ys[i] for i in on], s=30,
                       c=[colours[i] for i in on], edgecolors="black", linewidths=0.6,
                       zorder=3)
        # legend: what the markers mean, then the colour of each category
        from matplotlib.lines import Line2D

        handles = [Line2D([], [], linestyle="none", marker="o", markersize=3,
                          color="#999999" if color_by is None else "#777777",
                          label=f"other points ({len(rest)})"),
                   Line2D([], [], linestyle="none", marker="o", markersize=6,
                          markerfacecolor="#D55E00" if color_by is None else "white",
                          markeredgecolor="black", label=f"Pareto front ({len(on)})")]
        handles += [Line2D([], [], linestyle="none", marker="o", markersize=6, color=c,
                           label=f"{color_by} {v}") for v, c in cats.items()]
        ax.set_xlabel(AXIS_LABELS.get(x, x))
        ax.set_ylabel(AXIS_LABELS.get(y, y))
        ax.set_title(title)
        ax.grid(which="both", alpha=0.25)
        if points:
            ax.legend(handles=handles, loc="best", fontsize=8)
        fig.tight_layout()
        _save(fig, path)
