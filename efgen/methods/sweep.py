"""Training methods in sweep files: a base ``training:`` section and method axes.

::

    training: {gradient_filter: {r: 2, last: 2}}    # base section (or a --training file path)
    gradient_filter.r: [1, 2, 4]                    # an axis: <method>.<key>: [values]
    error_pruning.keep: [0.9, 0.7]                  # (needs error_pruning in the base,
                                                    #  or layers/last given in another axis)
    batchnorm: [full, shift_only]                   # a method without sub-keys

Every combination of the axes' values is one training variant, applied on top of the
base section; the sweep's points are the product of the hardware values and the
variants (points.csv's ``training`` column names the variant, ``none`` without methods).
Each variant is validated against every net of the sweep before anything runs; an error
names the axis and the value (``gradient_filter.r[2]``).
"""

from __future__ import annotations

import copy
import itertools
from pathlib import Path
from typing import Any

from efgen.errors import EfgenError
from efgen.methods.spec import KEYS, parse_training

NONE = "none"


def is_training_key(key: Any) -> bool:
    return isinstance(key, str) and (key == "training" or key in KEYS
                                     or key.split(".", 1)[0] in KEYS and "." in key)


def _base(doc: dict, file: str) -> dict:
    from efgen.frontend.yamlio import read_yaml

    raw = doc.get("training")
    if raw is None:
        return {}
    if isinstance(raw, str):
        p = Path(raw).expanduser()
        p = p if p.is_absolute() else Path(file).resolve().parent / p
        raw = read_yaml(str(p), "training file")
        if isinstance(raw, dict) and set(raw) == {"training"}:
            raw = raw["training"]
    if not isinstance(raw, dict):
        raise EfgenError(f"'training' must be a mapping or a training file path, got "
                         f"{type(raw).__name__}", file=file, where="training",
                         fix="write training: {gradient_filter: {r: 2, last: 2}}")
    return raw


def training_variants(doc: dict, file: str) -> tuple[tuple[str, ...], dict[str, dict | None]]:
    """(labels in product order, label -> training section or None)."""
    labels, sections, _ = _variants(doc, file)
    return labels, sections


def _variants(doc: dict, file: str):
    base = _base(doc, file)
    axes = [k for k in doc if is_training_key(k) and k != "training"]
    if not axes:
        if base:
            return ("training",), {"training": base}, {"training": {}}
        return (NONE,), {NONE: None}, {NONE: {}}
    lists = []
    for k in axes:
        v = doc[k]
        if not isinstance(v, list) or not v:
            raise EfgenError(f"{k} must be a non-empty list of values", file=file, where=k,
                             fix=f"write {k}: [v1, v2] (a list, even for one value)")
        for i, x in enumerate(v):
            if v.index(x) != i:
                raise EfgenError(f"{k} lists {x!r} twice", file=file, where=f"{k}[{i}]",
                                 fix="remove the repeat")
        lists.append(v)
    labels, sections, combos = [], {}, {}
    for combo in itertools.product(*lists):
        sec = copy.deepcopy(base)
        parts = []
        for k, v in zip(axes, combo):
            method, _, sub = k.partition(".")
            if sub:
                cur = sec.get(method)
                sec[method] = dict(cur) if isinstance(cur, dict) else {}
                sec[method][sub] = v
            else:
                sec[method] = v
            parts.append(f"{k}={v}")
        label = ",".join(parts)
        labels.append(label)
        sections[label] = sec
        combos[label] = dict(zip(axes, combo))
    return tuple(labels), sections, combos


def check_variants(sections: dict[str, dict | None], nets: dict, doc: dict, file: str):
    """Validate every variant against every net; returns label -> {net key -> Training}."""
    axes = [k for k in doc if is_training_key(k) and k != "training"]
    combos = _variants(doc, file)[2]
    out: dict[str, dict] = {}
    for label, sec in sections.items():
        out[label] = {}
        for nkey, net in nets.items():
            if sec is None:
                out[label][nkey] = None
                continue
            try:
                out[label][nkey] = parse_training(sec, net, file)
            except EfgenError as exc:
                where = exc.where or "training"
                # name the axis and value that made the section, when one did
                hit = [k for k in axes if where.startswith(f"training.{k}")
                       or where.startswith(f"training.{k.split('.')[0]}")]
                if hit:
                    k = hit[0]
                    i = doc[k].index(combos[label][k])
                    where = f"{k}[{i}]"
                raise EfgenError(f"{exc.what} (training variant {label}, net {net.name})",
                                 file=file, where=where, fix=exc.fix) from None
    return out
