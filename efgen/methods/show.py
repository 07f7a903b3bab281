"""``efgen net show --training F``: MACs per phase and saved words, before and after."""

from __future__ import annotations

from efgen.frontend.ir import Net
from efgen.methods.cost import layer_counts
from efgen.methods.spec import Training, apply_to_net
from efgen.textable import fmt_int, format_table


def _fmt(x: float) -> str:
    return fmt_int(round(x))


def show_lines(net: Net, t: Training) -> list[str]:
    """The per-layer table (expected per image) of ``net`` without and with ``t``."""
    after_net = apply_to_net(net, t)
    before = {r["layer"]: r for r in layer_counts(net, None)}
    after = layer_counts(after_net, t)
    rows = []
    tot_b = {k: 0.0 for k in ("fp", "bp", "wu", "saved")}
    tot_a = dict(tot_b)
    for r in after:
        b = before.get(r["layer"], {"fp": 0.0, "bp": 0.0, "wu": 0.0, "saved": 0.0})
        for k in tot_b:
            tot_b[k] += b[k]
            tot_a[k] += r[k]
        if not any(b[k] or r[k] for k in tot_b):
            continue
        rows.append([r["layer"]] + [f"{_fmt(b[k])} -> {_fmt(r[k])}" if b[k] != r[k]
                                    else _fmt(b[k]) for k in ("fp", "bp", "wu", "saved")])
    rows.append(["TOTAL"] + [f"{_fmt(tot_b[k])} -> {_fmt(tot_a[k])}"
                             for k in ("fp", "bp", "wu", "saved")])
    rows.append(["saving"] + [f"{1 - tot_a[k] / tot_b[k]:.1%}" if tot_b[k] else ""
                              for k in ("fp", "bp", "wu", "saved")])
    lines = [f"net {net.name} with training methods ({t.source}): {t.describe()}",
             format_table(["layer", "FP MACs", "BP MACs", "WU MACs", "saved words"], rows),
             "",
             "Per image, full back-propagation -> with the methods; expected values for "
             "the random ones (SMD scales every phase by 1 - p, SLU a block by its keep "
             "ratio, EIF the main net by its keep ratio, plus the filter net's FP). Saved "
             "words: activations kept from FP for BP/WU (ReLU masks as words, or 1 bit "
             "with BN shift-only). Layers without MACs or saved words are left out."]
    return lines
