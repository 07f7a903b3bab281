"""The "Training methods" section of report.md (from ``totals["methods"]``)."""

from __future__ import annotations

MB = 1024 * 1024


def methods_markdown(m: dict) -> list[str]:
    """Markdown lines: the methods, and each against full back-propagation."""
    L = ["## Training methods", "",
         f"{m['describe']}. Figures are expected per step (SMD, SLU: over the drop and skip "
         "masks), on this design's hardware, each configuration scheduled on its own. "
         "efgen prices cost only: the accuracy these methods reach must be measured by the "
         "user (README.md, \"Efficient training methods\").", ""]
    rows = m.get("comparison") or []
    if not rows:
        return L
    base = rows[0]
    L.append("| configuration | FP MMACs | BP MMACs | WU MMACs | cycles | images/s | DRAM MB | "
             "saved Mwords | energy J | cycle saving | energy saving |")
    L.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        cs = 1 - r["cycles"] / base["cycles"] if base["cycles"] else 0.0
        es = 1 - r["energy_j"] / base["energy_j"] if base["energy_j"] else 0.0
        mac = r["macs"]
        L.append(f"| {r['method']} | {mac['fp'] / 1e6:,.1f} | {mac['bp'] / 1e6:,.1f} | "
                 f"{mac['wu'] / 1e6:,.1f} | {r['cycles']:,.0f} | {r['images_per_s']:,.1f} | "
                 f"{r['dram_bytes'] / MB:,.1f} | {r['saved_words'] / 1e6:,.2f} | "
                 f"{r['energy_j']:.3f} | {cs:.1%} | {es:.1%} |")
    L.append("")
    return L
