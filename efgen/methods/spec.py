"""The ``training:`` section: parsed, validated against a net, resolved to layer names.

::

    training:
      gradient_filter: {r: 2, layers: [s3b3_a_conv, s3b3_b_conv]}  # or {r: 4, last: 2}
      error_pruning:   {keep: 0.9, layers: all}                    # or a list, or {last: N}
      minibatch_drop:  {p: 0.5}                                    # update_on_drop: true
      layer_update:    {keep: {s2b1: 0.5, s3b1: 0.7}}              # or keep: 0.7 (every block)
      instance_filter: {keep: 0.3, filter_net: lenet5}             # catalogue net or file
      batchnorm:       shift_only                                  # or full (the default)
      train_last_blocks: 3                                         # MobileTL's top blocks

Every error names the file and the key (``training.gradient_filter.r``) and says how to
fix it. :func:`parse_training` returns a frozen :class:`Training` whose layer lists are
resolved (``all``/``last`` expanded) so the golden model, the cost model and the Design
read the same thing; :meth:`Training.to_doc` gives the normalised document design.json
keeps.

Residual blocks (for ``layer_update`` and ``train_last_blocks``) are found in the graph:
every ``add`` closes one; its *branch* is the operand path that holds a conv, back to the
block input; its name is the add's name without a trailing ``_add`` (``s2b1_add`` ->
``s2b1``, ``layer2_0_add`` -> ``layer2_0``). A block can be skipped (SLU) only when its
shortcut has no parameters (identity or ``shortcut_a``), as in E2-Train, whose gates
skip the residual branch and keep the shortcut.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from efgen.errors import EfgenError
from efgen.frontend.ir import INPUT, Net, did_you_mean

KEYS = ("gradient_filter", "error_pruning", "minibatch_drop", "layer_update",
        "instance_filter", "batchnorm", "train_last_blocks")
BN_MODES = ("full", "shift_only")


@dataclass(frozen=True)
class Block:
    """A residual block: ``branch`` layers (topological order) between ``input`` (the
    block's input tensor) and ``add``; ``shortcut`` is the add operand that skips."""

    name: str
    add: str
    input: str
    branch: tuple[str, ...]
    shortcut: str
    skippable: bool


@dataclass(frozen=True)
class GradientFilter:
    r: int
    layers: tuple[str, ...]


@dataclass(frozen=True)
class ErrorPruning:
    keep: float
    layers: tuple[str, ...]
    weight_norm: float = 1.0


@dataclass(frozen=True)
class MinibatchDrop:
    p: float
    update_on_drop: bool = True


@dataclass(frozen=True)
class LayerUpdate:
    keep: tuple[tuple[str, float], ...]    # (block, keep fraction), blocks in net order


@dataclass(frozen=True)
class InstanceFilter:
    keep: float
    filter_net: str
    net: Any = field(default=None, compare=False, repr=False)   # the parsed filter Net


@dataclass(frozen=True)
class Training:
    gradient_filter: GradientFilter | None = None
    error_pruning: ErrorPruning | None = None
    minibatch_drop: MinibatchDrop | None = None
    layer_update: LayerUpdate | None = None
    instance_filter: InstanceFilter | None = None
    batchnorm: str = "full"
    train_last_blocks: int | None = None
    source: str = field(default="", compare=False)

    @property
    def shift_only(self) -> bool:
        return self.batchnorm == "shift_only"

    @property
    def methods(self) -> tuple[str, ...]:
        """The keys that are set, in :data:`KEYS` order."""
        out = []
        for k in KEYS:
            v = getattr(self, k)
            if k == "batchnorm":
                if v != "full":
                    out.append(k)
            elif v is not None:
                out.append(k)
        return tuple(out)

    def shift_bn_layers(self, net: Net) -> set[str]:
        """MobileTL's shift-only batchnorms: every batchnorm but the last one of each
        residual branch (MobileTL trains the last normalisation of a block in full: scale,
        shift and statistics). Empty unless ``batchnorm: shift_only``."""
        if not self.shift_only:
            return set()
        last = set()
        for b in residual_blocks(net):
            bns = [x for x in b.branch if net[x].op == "batchnorm"]
            if bns:
                last.add(bns[-1])
        return {l.name for l in net if l.op == "batchnorm" and l.name not in last}

    def gf_layers(self) -> set[str]:
        return set(self.gradient_filter.layers) if self.gradient_filter else set()

    def emp_layers(self) -> set[str]:
        return set(self.error_pruning.layers) if self.error_pruning else set()

    def block_keep(self) -> dict[str, float]:
        return dict(self.layer_update.keep) if self.layer_update else {}

    def to_doc(self) -> dict[str, Any]:
        """The normalised section (layer lists expanded), as design.json keeps it."""
        d: dict[str, Any] = {}
        if self.gradient_filter:
            d["gradient_filter"] = {"r": self.gradient_filter.r,
                                    "layers": list(self.gradient_filter.layers)}
        if self.error_pruning:
            d["error_pruning"] = {"keep": self.error_pruning.keep,
                                  "layers": list(self.error_pruning.layers),
                                  "weight_norm": self.error_pruning.weight_norm}
        if self.minibatch_drop:
            d["minibatch_drop"] = {"p": self.minibatch_drop.p,
                                   "update_on_drop": self.minibatch_drop.update_on_drop}
        if self.layer_update:
            d["layer_update"] = {"keep": {b: q for b, q in self.layer_update.keep}}
        if self.instance_filter:
            from efgen.frontend.ir import net_to_doc

            d["instance_filter"] = {"keep": self.instance_filter.keep,
                                    "filter_net": net_to_doc(self.instance_filter.net)}
        if self.batchnorm != "full":
            d["batchnorm"] = self.batchnorm
        if self.train_last_blocks is not None:
            d["train_last_blocks"] = self.train_last_blocks
        return d

    def describe(self) -> str:
        """One line naming each method and its setting."""
        parts = []
        if self.gradient_filter:
            parts.append(f"gradient filter r={self.gradient_filter.r} on "
                         f"{len(self.gradient_filter.layers)} conv(s)")
        if self.error_pruning:
            parts.append(f"error-map pruning keep={self.error_pruning.keep:g} on "
                         f"{len(self.error_pruning.layers)} conv(s)")
        if self.minibatch_drop:
            parts.append(f"mini-batch drop p={self.minibatch_drop.p:g}")
        if self.layer_update:
            parts.append(f"selective layer update on {len(self.layer_update.keep)} block(s)")
        if self.instance_filter:
            parts.append(f"instance filter keep={self.instance_filter.keep:g} "
                         f"({self.instance_filter.net.name})")
        if self.shift_only:
            parts.append("BN shift only (MobileTL), 1-bit ReLU masks")
        if self.train_last_blocks is not None:
            parts.append(f"last {self.train_last_blocks} block(s) trained")
        return "; ".join(parts) or "full back-propagation"


# ---- residual blocks --------------------------------------------------------------------

def residual_blocks(net: Net) -> list[Block]:
    """The residual blocks of ``net`` in order (see the module docstring)."""
    out = []
    for l in net:
        if l.op != "add":
            continue
        paths = [_branch(net, src) for src in l.inputs]
        convs = [any(net[x].is_weighted for x in p[0]) if p else False for p in paths]
        # the branch is the operand path with a conv; with convs on both (a downsampling
        # conv on the shortcut) the longer path is the branch
        if convs[0] and convs[1]:
            bi = 0 if len(paths[0][0]) >= len(paths[1][0]) else 1
        else:
            bi = 0 if convs[0] else 1
        branch, start = paths[bi]
        sc = l.inputs[1 - bi]
        skippable = sc == start or (sc != INPUT and net[sc].op == "shortcut_a"
                                    and net[sc].inputs[0] == start)
        name = l.name[:-4] if l.name.endswith("_add") and len(l.name) > 4 else l.name
        out.append(Block(name, l.name, start, tuple(branch), sc, skippable))
    return out


def _branch(net: Net, src: str) -> tuple[list[str], str]:
    """Walk back from ``src`` through single-input layers to the first tensor that has
    other consumers (the block input): (layers in order, that tensor)."""
    path = []
    t = src
    while t != INPUT:
        layer = net[t]
        if layer.op == "add" or len(layer.inputs) != 1:
            break
        path.append(t)
        prev = layer.inputs[0]
        if prev == INPUT or len(net.consumers(prev)) > 1:
            t = prev
            break
        t = prev
    return list(reversed(path)), t


# ---- parsing ------------------------------------------------------------------------------

def _err(what: str, file: str, key: str, fix: str) -> EfgenError:
    return EfgenError(what, file=file, where=f"training.{key}", fix=fix)


def _mapping(v: Any, file: str, key: str, example: str) -> dict:
    if not isinstance(v, dict):
        raise _err(f"'{key}' must be a mapping, got {type(v).__name__}", file, key,
                   f"write {key}: {example}")
    return v


def _keys(d: dict, valid: tuple[str, ...], file: str, key: str,
          required: tuple[str, ...] = ()) -> None:
    for k in d:
        if k not in valid:
            raise _err(f"unknown key '{k}'", file, f"{key}.{k}" if key else str(k),
                       f"{did_you_mean(str(k), valid)}valid keys: {', '.join(valid)}")
    for k in required:
        if k not in d:
            raise _err(f"missing key '{k}'", file, key, f"add '{k}'")


def _fraction(v: Any, file: str, key: str, lo_open: bool = True, hi_open: bool = False) -> float:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    if ok:
        ok = (v > 0 if lo_open else v >= 0) and (v < 1 if hi_open else v <= 1)
    if not ok:
        lo, hi = ("0 <" if lo_open else "0 <="), ("< 1" if hi_open else "<= 1")
        raise _err(f"'{key.rsplit('.', 1)[-1]}' must be a number with {lo} value {hi}, "
                   f"got {v!r}", file, key, "give a fraction, e.g. 0.5")
    return float(v)


def _posint(v: Any, file: str, key: str, hi: int | None = None) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1 or (hi is not None and v > hi):
        rng = f"between 1 and {hi}" if hi is not None else "a positive integer"
        raise _err(f"'{key.rsplit('.', 1)[-1]}' must be {rng}, got {v!r}", file, key,
                   f"give an integer {rng}" if hi is not None else "give e.g. 2")
    return v


def _layer_list(d: dict, net: Net, file: str, key: str, allow_all: bool) -> tuple[str, ...]:
    """``layers: [..]`` / ``layers: all`` / ``last: N`` -> conv names in net order."""
    convs = [l.name for l in net if l.op == "conv" and (l.trainable or l.runs_bp)]
    has_layers, has_last = "layers" in d, "last" in d
    if has_layers == has_last:
        raise _err("give exactly one of 'layers' and 'last'", file, key,
                   "write layers: [<conv>, ...]" + (" or layers: all" if allow_all else "")
                   + ", or last: N")
    if has_last:
        n = _posint(d["last"], file, f"{key}.last", len(convs))
        return tuple(convs[len(convs) - n:])
    v = d["layers"]
    if v == "all" and allow_all:
        return tuple(convs)
    if not isinstance(v, list) or not v:
        raise _err(f"'layers' must be a non-empty list of conv layers"
                   f"{' or all' if allow_all else ''}, got {v!r}", file, f"{key}.layers",
                   "list conv layer names")
    names = {l.name for l in net}
    for i, n in enumerate(v):
        w = f"{key}.layers[{i}]"
        if not isinstance(n, str) or n not in names:
            raise _err(f"'{n}' is not a layer of {net.name}", file, w,
                       f"{did_you_mean(str(n), convs)}name a conv layer (efgen net show "
                       f"{net.name})")
        if net[n].op != "conv":
            raise _err(f"'{n}' is a {net[n].op}, not a conv", file, w, "name a conv layer")
        if n not in convs:
            raise _err(f"'{n}' computes no error (it is frozen and below every trained "
                       "layer)", file, w, "name a conv that trains or back-propagates")
    if len(set(v)) != len(v):
        raise _err("a layer is listed twice", file, f"{key}.layers", "list each once")
    want = set(v)
    return tuple(l.name for l in net if l.name in want)


def parse_training(doc: Any, net: Net, file: str = "<training>") -> Training | None:
    """Validate ``doc`` (the mapping under ``training:``) against ``net``; None if empty."""
    if doc is None:
        return None
    if not isinstance(doc, dict):
        raise EfgenError(f"'training' must be a mapping, got {type(doc).__name__}",
                         file=file, where="training",
                         fix="write training: {gradient_filter: {r: 2, last: 2}, ...}")
    _keys(doc, KEYS, file, "")
    kw: dict[str, Any] = {}
    if "train_last_blocks" in doc:      # first: the layer lists resolve on the frozen net
        blocks = residual_blocks(net)
        if not blocks:
            raise _err(f"{net.name} has no residual blocks", file, "train_last_blocks",
                       "use --train-last K (conv/linear layers) instead")
        kw["train_last_blocks"] = _posint(doc["train_last_blocks"], file,
                                          "train_last_blocks", len(blocks))
        net = apply_to_net(net, Training(train_last_blocks=kw["train_last_blocks"]))
    if "gradient_filter" in doc:
        key = "gradient_filter"
        d = _mapping(doc[key], file, key, "{r: 2, last: 2}")
        _keys(d, ("r", "layers", "last"), file, key, ("r",))
        r = _posint(d["r"], file, f"{key}.r")
        layers = _layer_list(d, net, file, key, allow_all=True)
        kw[key] = GradientFilter(r, layers)
    if "error_pruning" in doc:
        key = "error_pruning"
        d = _mapping(doc[key], file, key, "{keep: 0.9, layers: all}")
        _keys(d, ("keep", "layers", "last", "weight_norm"), file, key, ("keep",))
        keep = _fraction(d["keep"], file, f"{key}.keep")
        wn = d.get("weight_norm", 1.0)
        if isinstance(wn, bool) or not isinstance(wn, (int, float)) or not math.isfinite(wn) \
                or wn < 0:
            raise _err(f"'weight_norm' must be a number >= 0, got {wn!r}", file,
                       f"{key}.weight_norm", "give e.g. 1.0 (0: error norm only)")
        kw[key] = ErrorPruning(keep, _layer_list(d, net, file, key, True), float(wn))
    if "minibatch_drop" in doc:
        key = "minibatch_drop"
        d = _mapping(doc[key], file, key, "{p: 0.5}")
        _keys(d, ("p", "update_on_drop"), file, key, ("p",))
        p = _fraction(d["p"], file, f"{key}.p", lo_open=False, hi_open=True)
        upd = d.get("update_on_drop", True)
        if not isinstance(upd, bool):
            raise _err(f"'update_on_drop' must be true or false, got {upd!r}", file,
                       f"{key}.update_on_drop", "write true (E2-Train) or false")
        kw[key] = MinibatchDrop(p, upd)
    if "layer_update" in doc:
        kw["layer_update"] = _layer_update(doc["layer_update"], net, file)
    if "instance_filter" in doc:
        key = "instance_filter"
        d = _mapping(doc[key], file, key, "{keep: 0.3, filter_net: lenet5}")
        _keys(d, ("keep", "filter_net"), file, key, ("keep", "filter_net"))
        keep = _fraction(d["keep"], file, f"{key}.keep")
        fnet = _filter_net(d["filter_net"], net, file)
        kw[key] = InstanceFilter(keep, fnet.source or fnet.name, fnet)
    if "batchnorm" in doc:
        v = doc["batchnorm"]
        if v not in BN_MODES:
            raise _err(f"unknown batchnorm mode {v!r}", file, "batchnorm",
                       f"{did_you_mean(str(v), BN_MODES)}use one of {', '.join(BN_MODES)}")
        if v == "shift_only" and not any(l.op == "batchnorm" for l in net):
            raise _err(f"{net.name} has no batchnorm layer", file, "batchnorm",
                       "remove 'batchnorm: shift_only'")
        kw["batchnorm"] = v
    t = Training(**kw, source=file)
    return t if t.methods else None


def _layer_update(v: Any, net: Net, file: str) -> LayerUpdate:
    key = "layer_update"
    d = _mapping(v, file, key, "{keep: {s2b1: 0.5}} or {keep: 0.7}")
    _keys(d, ("keep", "default"), file, key, ("keep",))
    blocks = [b for b in residual_blocks(net)]
    if not blocks:
        raise _err(f"{net.name} has no residual blocks", file, key,
                   "selective layer update skips residual blocks; remove it")
    skippable = [b.name for b in blocks if b.skippable]
    by_name = {b.name: b for b in blocks}
    keep = d["keep"]
    default = None
    if "default" in d:
        default = _fraction(d["default"], file, f"{key}.default")
    out: dict[str, float] = {}
    if isinstance(keep, dict):
        for b, q in keep.items():
            w = f"{key}.keep.{b}"
            if b not in by_name:
                raise _err(f"'{b}' is not a residual block of {net.name}", file, w,
                           f"{did_you_mean(str(b), by_name)}blocks: {', '.join(by_name)}")
            if not by_name[b].skippable:
                raise _err(f"block '{b}' has a conv on its shortcut and cannot be skipped",
                           file, w, f"skippable blocks: {', '.join(skippable)}")
            out[b] = _fraction(q, file, w)
        if default is not None:
            for b in skippable:
                out.setdefault(b, default)
    else:
        q = _fraction(keep, file, f"{key}.keep")
        if default is not None:
            raise _err("'default' goes with a per-block 'keep' mapping", file,
                       f"{key}.default", "remove it, or write keep: {<block>: q}")
        out = {b: q for b in skippable}
    return LayerUpdate(tuple((b.name, out[b.name]) for b in blocks if b.name in out))


def _filter_net(v: Any, net: Net, file: str) -> Net:
    from efgen.frontend import load_net
    from efgen.frontend.ir import parse_net

    key = "instance_filter.filter_net"
    if isinstance(v, dict):
        fnet = parse_net(v, f"{file}:training.{key}")
    elif isinstance(v, str) and v.strip():
        fnet = load_net(v)
    else:
        raise _err(f"'filter_net' must be a catalogue net name or a net file, got {v!r}",
                   file, key, "give e.g. filter_net: lenet5")
    if tuple(fnet.input_shape) != tuple(net.input_shape):
        raise _err(f"filter net {fnet.name} takes {list(fnet.input_shape)}, {net.name} "
                   f"takes {list(net.input_shape)}", file, key,
                   "give a filter net with the main net's input shape")
    return fnet


def load_training(path: str, net: Net) -> Training | None:
    """A ``--training FILE``: a mapping with one key ``training`` (or the section itself)."""
    from efgen.frontend.yamlio import read_yaml

    doc = read_yaml(path, "training file")
    if isinstance(doc, dict) and set(doc) == {"training"}:
        doc = doc["training"]
    t = parse_training(doc, net, str(path))
    if t is None:
        raise EfgenError("the training file selects no method", file=str(path),
                         where="training", fix=f"set one of {', '.join(KEYS)}")
    return t


def resolve(net: Net, training_file: str | None = None) -> Training | None:
    """The training methods for ``net``: ``--training FILE`` if given, else the net file's
    own ``training:`` section (the file replaces the section)."""
    if training_file is not None:
        return load_training(training_file, net)
    raw = getattr(net, "training", None)
    return parse_training(raw, net, net.source or net.name) if raw is not None else None


def apply_to_net(net: Net, t: Training | None) -> Net:
    """The net with ``train_last_blocks`` applied (the freezing every stage reads)."""
    if t is None or t.train_last_blocks is None:
        return net
    blocks = residual_blocks(net)
    first = blocks[len(blocks) - t.train_last_blocks]
    order = {l.name: i for i, l in enumerate(net)}
    start = min(order[x] for x in first.branch) if first.branch else order[first.add]
    k = sum(1 for l in net if l.is_weighted and order[l.name] >= start)
    return net.with_train_last(k)


def from_doc(doc: dict | None, net: Net) -> Training | None:
    """The Training of a design.json's normalised ``training`` document."""
    return parse_training(doc, net, "design.json:training") if doc else None
