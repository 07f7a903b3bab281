"""The design report: report.json (everything, machine-readable) and report.md.

Pure formatting of what :func:`efgen.model.evaluate.evaluate_design` computed; nothing
here models anything.
"""

from __future__ import annotations

import json
from typing import Any

from efgen._version import __version__
from efgen.design import Design
from efgen.frontend.boards import Board
from efgen.model.energy import energy_note
from efgen.model.resources import RESOURCES

MB = 1e6


def report_dict(design: Design, board: Board, ev: dict, full: dict | None = None) -> dict:
    """The JSON report. ``full`` is the evaluation of full training on the same
    hardware, given when the design trains only the last K layers."""
    hw = design.hw
    rows = []
    for r in ev["rows"]:
        d = r.as_dict()
        secs = r.cycles / (hw.clock_mhz * 1e6)
        d["ms"] = secs * 1e3
        d["gflops"] = r.flops / secs / 1e9 if secs and r.flops else 0.0
        d["peak_fraction"] = d["gflops"] / hw.peak_gflops() if r.flops else 0.0
        rows.append(d)
    out: dict[str, Any] = {
        "efgen_version": __version__,
        "net": design.net["name"],
        "board": board.name,
        "part": board.part,
        "batch": design.batch,
        "objective": design.objective,
        "train_last": design.train_last,
        "hw": design.to_dict()["hw"],
        "totals": ev["totals"],
        "rows": rows,
        "notes": [
            energy_note(board),
            "softmax cross-entropy runs on the host and is not modelled.",
        ],
    }
    if full is not None:
        ft = full["totals"]
        t = ev["totals"]
        out["partial_training"] = {
            "full_cycles": ft["cycles"], "full_energy_j": ft["energy_j"],
            "full_dram_bytes": ft["dram_bytes"],
            "cycle_saving": 1 - t["cycles"] / ft["cycles"],
            "energy_saving": 1 - t["energy_j"] / ft["energy_j"],
            "dram_saving": 1 - t["dram_bytes"] / ft["dram_bytes"],
        }
    return out


def report_json(rep: dict) -> str:
    return json.dumps(rep, indent=1, sort_keys=True, default=_jsonable) + "\n"


def _jsonable(o):
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(type(o))


def _f(x: float, nd: int = 2) -> str:
    return f"{x:,.{nd}f}"


def clock_line(clock_mhz: float, board: Board) -> str:
    """Where the design's clock comes from: the board file's default and its stated basis,
    or a --clock override."""
    if clock_mhz == board.clock_mhz:
        return (f"Clock: {clock_mhz:g} MHz, the default of board {board.name} "
                f"({board.clock_basis}).")
    return (f"Clock: {clock_mhz:g} MHz, set with --clock (board {board.name}'s default is "
            f"{board.clock_mhz:g} MHz: {board.clock_basis}).")


def report_markdown(design: Design, board: Board, rep: dict) -> str:
    hw = design.hw
    t = rep["totals"]
    res = t["resources"]
    L: list[str] = []
    L.append(f"# efgen design report: {rep['net']} on {board.name}")
    L.append("")
    L.append(f"efgen {rep['efgen_version']}. Board {board.name} ({board.part}), "
             f"{hw.precision.upper()}, Tm x Tn = {hw.tm} x {hw.tn}"
             + (f" x P {hw.p}" if hw.p > 1 else "") + (", tap packing" if hw.pack else "")
             + f" at {hw.clock_mhz:g} MHz, "
             f"batch {design.batch}, objective {design.objective}"
             + (f", training the last {design.train_last} conv/linear layers"
                if design.train_last else "") + ".")
    L.append("")
    L.append(clock_line(hw.clock_mhz, board))
    L.append("")
    L.append(f"Buffers per bank: IFM {hw.ifm_depth} words x {hw.tn} banks x 2, OFM "
             f"{hw.ofm_depth} x {hw.tm} x 2, weights {hw.wbuf_depth} x {hw.tm * hw.tn} "
             f"({hw.weight_mem.upper()}). DRAM: {hw.ports} AXI ports of {hw.port_words} "
             f"words per beat, {hw.dma_start} cycles per burst start.")
    L.append("")
    L.append("## Training step")
    L.append("")
    L.append("| figure | value |")
    L.append("| --- | ---: |")
    rowsT = [
        ("cycles per step", f"{t['cycles']:,.0f}"),
        ("ms per step", _f(t["ms_per_step"])),
        ("images/s", _f(t["images_per_s"], 1)),
        ("effective GFLOPS", _f(t["effective_gflops"])),
        ("array peak GFLOPS", _f(t["peak_gflops"])),
        ("fraction of the DSP roofline", f"{t['roofline_fraction']:.1%}"),
        ("DRAM per step, reshaped (MB)", f"{t['dram_bytes'] / MB:,.1f} (read "
                                         f"{t['dram_read_bytes'] / MB:,.1f}, written "
                                         f"{t['dram_write_bytes'] / MB:,.1f})"),
        ("DRAM per step, NCHW (MB)", _f(t["dram_bytes_nchw"] / MB, 1)),
        ("DRAM bursts per step, reshaped", f"{t['bursts']:,.0f}"),
        ("DRAM bursts per step, NCHW", f"{t['bursts_nchw']:,.0f}"),
        ("cycles per step, NCHW", f"{t['cycles_nchw']:,.0f}"),
        ("DRAM bandwidth used (GB/s)", f"{t['dram_gbps']:.2f} of {t['ddr_peak_gbps']:.2f} peak"),
        ("energy per step (J, estimate)", f"{t['energy_j']:.3f}"),
        ("GFLOPS/W (estimate)", _f(t["gflops_per_w"])),
    ]
    if "partial_training" in rep:
        p = rep["partial_training"]
        rowsT.append(("saving against full training (cycles)", f"{p['cycle_saving']:.1%}"))
        rowsT.append(("saving against full training (energy)", f"{p['energy_saving']:.1%}"))
    L += [f"| {a} | {b} |" for a, b in rowsT]
    L.append("")
    if "fusion" in t:
        from efgen.model.restructure import fusion_markdown

        L += fusion_markdown(t["fusion"])
    if "methods" in t:
        from efgen.methods.report import methods_markdown

        L += methods_markdown(t["methods"])
    L.append("## Resources")
    L.append("")
    L.append("| resource | used | cap | board | utilisation |")
    L.append("| --- | ---: | ---: | ---: | ---: |")
    for r in RESOURCES:
        total = getattr(board.resources, r)
        L.append(f"| {r.upper()} | {res[r]:,.0f} | {t['caps'][r]:,} | {total:,} | "
                 f"{t['utilisation'][r]:.1%} |")
    L.append("")
    L.append(f"The MAC array alone takes {res['dsp_array']:,.0f} DSP; BRAM18: IFM "
             f"{res['bram_ifm']}, OFM {res['bram_ofm']}, weights {res['bram_wbuf']}"
             + (f", the fused BP store's SE/SK tiles {res['bram_fuse']}" if res.get("bram_fuse")
                else "") + ".")
    L.append("")
    L.append("## Per layer and phase")
    L.append("")
    L.append("| layer | phase | engine | tiles | cycles | GFLOPS | % peak | DRAM MB | "
             "DRAM MB NCHW | bursts | bursts NCHW | bound |")
    L.append("| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for r in rep["rows"]:
        g = f"{r['gflops']:.2f}" if r["flops"] else ""
        pk = f"{r['peak_fraction']:.0%}" if r["flops"] else ""
        L.append(f"| {r['layer']} | {r['phase']} | {r['engine']} | {r['tiles']} | "
                 f"{r['cycles']:,.0f} | {g} | {pk} | {r['dram_bytes'] / MB:.2f} | "
                 f"{r['dram_bytes_nchw'] / MB:.2f} | {r['bursts']:,.0f} | "
                 f"{r['bursts_nchw']:,.0f} | {r['bound']} |")
    L.append("")
    L.append("## Notes")
    L.append("")
    if t["fused_relus"]:
        L.append(f"- ReLUs fused into their producer's store (no cycles of their own): "
                 f"{', '.join(t['fused_relus'])}.")
    L += [f"- {n}" for n in rep["notes"]]
    L.append("")
    return "\n".join(L)


def summary_lines(design: Design, board: Board, rep: dict) -> list[str]:
    t = rep["totals"]
    res = t["resources"]
    hw = design.hw
    lines = [
        f"{rep['net']} on {board.name}: {hw.precision} Tm={hw.tm} Tn={hw.tn}"
        + (f" P={hw.p}" if hw.p > 1 else "") + (" packed" if hw.pack else "") + " @ "
        f"{hw.clock_mhz:g} MHz, batch {design.batch}",
        f"  {t['ms_per_step']:.2f} ms/step, {t['images_per_s']:.1f} images/s, "
        f"{t['effective_gflops']:.2f} GFLOPS ({t['roofline_fraction']:.1%} of "
        f"{t['peak_gflops']:.1f} peak)",
        f"  DSP {res['dsp']:,.0f}/{board.resources.dsp:,} ({t['utilisation']['dsp']:.1%}), "
        f"BRAM18 {res['bram18']:,}/{board.resources.bram18:,} "
        f"({t['utilisation']['bram18']:.1%}), LUT {t['utilisation']['lut']:.1%}",
        f"  DRAM {t['dram_bytes'] / MB:.1f} MB/step reshaped vs "
        f"{t['dram_bytes_nchw'] / MB:.1f} MB NCHW; bursts {t['bursts']:,.0f} vs "
        f"{t['bursts_nchw']:,.0f}; cycles NCHW/reshaped {t['speedup_vs_nchw']:.3f}",
        f"  {t['energy_j']:.3f} J/step, {t['gflops_per_w']:.2f} GFLOPS/W (estimates)",
    ]
    if "fusion" in t and t["fusion"].get("no_fuse"):
        a, b = t["fusion"]["fused"], t["fusion"]["no_fuse"]
        lines.append(f"  restructured BN (a model): {a['effective_gflops']:.2f} GFLOPS, "
                     f"{a['dram_bytes'] / MB:.1f} MB/step; --no-fuse on this array "
                     f"{b['effective_gflops']:.2f} GFLOPS, {b['dram_bytes'] / MB:.1f} MB")
    if "partial_training" in rep:
        p = rep["partial_training"]
        lines.append(f"  vs full training: {p['cycle_saving']:.1%} fewer cycles, "
                     f"{p['energy_saving']:.1%} less energy")
    return lines


# ---- model vs vendor (efgen report DIR) -------------------------------------------------------

def model_figures(design: Design, ev: dict) -> dict[str, float]:
    """The model's side of a vendor comparison: cycles of one training step (what a
    co-simulation of the generated testbench measures) and design resources."""
    t = ev["totals"]
    res = t["resources"]
    return {"latency": t["cycles"], "dsp": res["dsp"], "bram_18k": res["bram18"],
            "lut": res["lut"], "ff": res["ff"], "uram": res["uram"]}


def vendor_comparison(design: Design, ev: dict, build_dir) -> list[tuple[str, list]]:
    """[(report file, comparison rows)] for every vendor report under ``build_dir``."""
    from efgen.report.vendor import compare_table, find_reports, parse_report, vendor_figures

    model = model_figures(design, ev)
    out = []
    for path in find_reports(build_dir):
        rep = parse_report(path)
        out.append((str(path), compare_table(model, vendor_figures(rep))))
    return out
