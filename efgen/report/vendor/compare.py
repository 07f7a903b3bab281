"""The analytical model's figures next to the vendor tool's, with the % error per figure."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from efgen.report.vendor.common import CosimReport, HlsReport

# --------------------------------------------------------------------------------------
# Model-vs-vendor comparison
# --------------------------------------------------------------------------------------

# (key, label) in display order.
FIGURES: tuple[tuple[str, str], ...] = (
    ("latency", "Latency (cycles)"),
    ("interval", "Interval (cycles)"),
    ("dsp", "DSP"),
    ("bram_18k", "BRAM_18K"),
    ("lut", "LUT"),
    ("ff", "FF"),
    ("uram", "URAM"),
)
_ALIASES = {"latency_cycles": "latency", "interval_cycles": "interval", "ii": "interval",
            "dsp48e": "dsp", "dsp48": "dsp", "bram": "bram_18k", "bram18k": "bram_18k"}


@dataclass(frozen=True)
class ComparisonRow:
    figure: str                 # canonical key ("latency", "dsp", ...)
    label: str                  # display name
    model: float | None
    vendor: float | None
    error_pct: float | None     # (model - vendor) / vendor * 100; None = n/a


def _canon(key: str) -> str:
    k = key.strip().lower()
    return _ALIASES.get(k, k)


def vendor_figures(report: HlsReport | CosimReport,
                   statistic: str = "max") -> dict[str, float | None]:
    """The vendor side of :func:`compare_table`, taken from a parsed report.

    ``statistic`` ("min", "max" or "avg") picks which latency/interval figure is used. A
    csynth report also gives its design resources; a co-simulation gives only cycles.
    """
    if statistic not in ("min", "max", "avg"):
        raise ValueError(f"statistic must be 'min', 'max' or 'avg', not {statistic!r}")
    out: dict[str, float | None] = {"latency": getattr(report.latency, statistic),
                                    "interval": getattr(report.interval, statistic)}
    if isinstance(report, HlsReport):
        out.update(report.resources.as_dict())
    return out


def compare_table(model: Mapping[str, float | None],
                  vendor: Mapping[str, float | None]) -> list[ComparisonRow]:
    """One row per figure found in either dict: model value, vendor value and % error.

    Keys are case-insensitive: ``latency``, ``interval``, ``dsp`` (or ``DSP48E``),
    ``bram_18k``, ``lut``, ``ff``, ``uram``. Other keys are kept, after these, in the order they
    first appear. % error is ``(model - vendor) / vendor * 100``. It is None ("n/a") when
    either value is unknown, or when the vendor value is 0 and the model value is not
    (0 vs 0 is 0 %).
    """
    m = {_canon(k): v for k, v in model.items()}
    v = {_canon(k): x for k, x in vendor.items()}
    labels = dict(FIGURES)
    order = [k for k, _ in FIGURES if k in m or k in v]
    for k in list(m) + list(v):
        if k not in labels and k not in order:
            order.append(k)
    rows = []
    for k in order:
        mv, vv = m.get(k), v.get(k)
        rows.append(ComparisonRow(figure=k, label=labels.get(k, k), model=mv, vendor=vv,
                                  error_pct=_error_pct(mv, vv)))
    return rows


def _error_pct(model: float | None, vendor: float | None) -> float | None:
    if model is None or vendor is None:
        return None
    if not (math.isfinite(model) and math.isfinite(vendor)):
        return None
    if vendor == 0:
        return 0.0 if model == 0 else None
    return (model - vendor) / vendor * 100.0


def _fmt_value(x: float | None) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float) and not x.is_integer():
        return f"{x:,.2f}"
    return f"{int(x):,}"


def format_comparison(rows: Iterable[ComparisonRow]) -> str:
    """A plain-text table: figure, model, vendor, % error (``n/a`` where unknown)."""
    header = ("Figure", "Model", "Vendor", "Error")
    body = [(r.label, _fmt_value(r.model), _fmt_value(r.vendor),
             "n/a" if r.error_pct is None else f"{r.error_pct:+.1f}%") for r in rows]
    cells = [header, *body]
    widths = [max(len(row[i]) for row in cells) for i in range(4)]

    def line(row: tuple[str, ...]) -> str:
        return "  ".join([row[0].ljust(widths[0])] +
                         [c.rjust(w) for c, w in zip(row[1:], widths[1:])]).rstrip()

    return "\n".join([line(header), "  ".join("-" * w for w in widths)] + [line(r) for r in body])


# --------------------------------------------------------------------------------------
# Per process: the HLS project's manifest next to the vendor's modules
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ProcessRow:
    """One function of the kernel (manifest.json) and the vendor module made from it."""

    engine: str
    function: str
    ops: str                    # the manifest's float operators, e.g. "384 fmul, 384 fadd"
    dsp_manifest: int           # at the model's per-operator costs
    module: str | None          # the vendor's module/instance, None: not in the report
    dsp: float | None = None
    bram_18k: float | None = None
    latency: float | None = None    # worst case, cycles
    ii: int | None = None       # worst achieved II of the module's pipelined loops
    ii_target: int | None = None


def _matches(module: str | None, function: str) -> bool:
    return module is not None and (module == function or module.startswith(function + "_"))


def process_rows(manifest: Mapping, report: HlsReport) -> list[ProcessRow]:
    """A row per function of ``manifest`` (efgen/hls/manifest.py's manifest.json) that
    holds float operators: its operators and their DSP at the model's costs, next to the
    vendor module of the same name (``name`` or ``name_<suffix>``, as Vitis names the
    modules of non-inlined functions): DSP, BRAM, worst latency and the worst achieved
    II of its pipelined loops (the kernel's loops are all written for II=1)."""
    rows = []
    for eng_name, eng in manifest["engines"].items():
        for fn, f in eng["functions"].items():
            ops = {k: v for k, v in f["ops"].items() if v}
            if not ops:
                continue
            desc = ", ".join(f"{v} {k}" for k, v in sorted(ops.items()))
            inst = next((i for i in report.instances
                         if _matches(i.module, fn) or i.name.startswith(f"grp_{fn}_")), None)
            loops = [lp for lp in report.loops if _matches(lp.module, fn) and lp.ii is not None]
            ii = max((lp.ii for lp in loops), default=None)
            tgt = max((lp.ii_target for lp in loops if lp.ii_target is not None), default=None)
            res = inst.resources if inst is not None else None
            rows.append(ProcessRow(
                eng_name, fn, desc, int(f.get("cost", {}).get("dsp", 0)),
                inst.module if inst is not None else None,
                dsp=res.dsp if res else None, bram_18k=res.bram_18k if res else None,
                latency=inst.latency.max if inst is not None else None,
                ii=ii, ii_target=tgt if tgt is not None else (1 if loops else None)))
    return rows


def format_processes(rows: Iterable[ProcessRow]) -> str:
    rows = list(rows)
    head = ("| engine | function | float operators | DSP (manifest) | vendor module | DSP | "
            "BRAM_18K | latency | II (target) |\n| --- | --- | --- | ---: | --- | ---: | ---: | "
            "---: | ---: |")
    out = [head]
    for r in rows:
        ii = "-" if r.ii is None else f"{r.ii} ({r.ii_target})"
        out.append(f"| {r.engine} | {r.function} | {r.ops} | {r.dsp_manifest:,} | "
                   f"{r.module or 'not in the report'} | {_fmt_value(r.dsp)} | "
                   f"{_fmt_value(r.bram_18k)} | {_fmt_value(r.latency)} | {ii} |")
    return "\n".join(out)
