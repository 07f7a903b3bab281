"""Each training method against full back-propagation, on the same hardware.

:func:`method_table` schedules the net once per configuration on the Design's hardware
(:func:`efgen.model.schedule.schedule_fixed`): full back-propagation, each method of the
``training:`` section alone, and all of them together. Its rows are what report.md's
"Training methods" section and benchmarks/bench_methods.py print: MACs per phase, cycles,
images/s, DRAM bytes, saved-activation words and energy, per step (expected).
"""

from __future__ import annotations

from dataclasses import replace

from efgen.frontend.ir import Net, parse_net, net_to_doc
from efgen.methods.spec import KEYS, Training, apply_to_net, parse_training


def full_net(net: Net) -> Net:
    """``net`` with every conv/linear/batchnorm trainable (full back-propagation)."""
    doc = net_to_doc(net)
    doc["layers"] = [{**l, "trainable": True} if "trainable" in l else l
                     for l in doc["layers"]]
    return parse_net(doc, net.source or net.name)


def single_methods(t: Training, net: Net) -> list[tuple[str, Training]]:
    """(key, Training with that key alone) for every key ``t`` sets; MobileTL's
    ``batchnorm`` and ``train_last_blocks`` stay together as one method."""
    doc = t.to_doc()
    out = []
    for k in KEYS:
        if k not in doc or (k == "train_last_blocks" and "batchnorm" in doc):
            continue
        sub = {k: doc[k]}
        name = k
        if k == "batchnorm" and "train_last_blocks" in doc:
            sub["train_last_blocks"] = doc["train_last_blocks"]
            name = "batchnorm + train_last_blocks"
        out.append((name, parse_training(sub, net, t.source)))
    return out


def evaluate_config(net: Net, t: Training | None, board, hw, batch: int, base_req) -> dict:
    """Schedule ``net`` with ``t`` on ``hw`` and return one table row."""
    from efgen.methods.cost import phase_macs, saved_words
    from efgen.model.evaluate import evaluate_design
    from efgen.model.schedule import schedule_fixed

    n = apply_to_net(net, t)
    req = replace(base_req, net=n, training=t, overrides={}, train_last=None)
    design = schedule_fixed(req, hw)
    if design is None:
        return {}
    ev = evaluate_design(n, design, board)
    tot = ev["totals"]
    return {"macs": phase_macs(ev["rows"]), "cycles": tot["cycles"],
            "images_per_s": tot["images_per_s"], "dram_bytes": tot["dram_bytes"],
            "saved_words": float(sum(saved_words(n, batch, t).values())),
            "energy_j": tot["energy_j"]}


def method_table(base: Net, t: Training, board, hw, batch: int, base_req) -> list[dict]:
    """Rows: full back-propagation, each method alone, all together (same hardware)."""
    rows = [{"method": "full back-propagation",
             **evaluate_config(base, None, board, hw, batch, base_req)}]
    singles = single_methods(t, base)
    for name, st in singles:
        rows.append({"method": st.describe(),
                     **evaluate_config(base, st, board, hw, batch, base_req)})
    if len(singles) > 1:
        rows.append({"method": "all: " + t.describe(),
                     **evaluate_config(base, t, board, hw, batch, base_req)})
    return [r for r in rows if "cycles" in r]


def comparison_for(req, design) -> list[dict]:
    """:func:`method_table` for a scheduled Request with training methods."""
    t = req.training
    base = full_net(req.net) if t.train_last_blocks is not None else req.net
    return method_table(base, t, req.board, design.hw, req.batch, req)
