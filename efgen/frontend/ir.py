"""Network IR: a validated, shape-inferred DAG of layers, read from YAML.

A net file (configs/nets/*.yaml) looks like::

    name: resnet20
    input: [3, 32, 32]          # channels, height, width of one image
    num_classes: 10
    layers:
      - {name: conv1, op: conv, out_channels: 16, kernel: 3, padding: 1}
      - {name: bn1,   op: batchnorm}
      - {name: relu1, op: relu}
      ...
      - {name: add1,  op: add, inputs: [bn3, relu1]}
      ...
      - {name: loss,  op: softmax_ce}

``inputs`` defaults to the previous layer (the graph input, called ``input``, for the
first layer), so chains need no wiring and residual joins name both operands.

Training semantics that every later stage (golden model, analytical model, code
generators) reads from here, so they agree by construction:

* A layer *has trainable parameters* when it is a conv, linear or batchnorm whose
  ``trainable`` flag is set (default true).
* An error (gradient) is needed for a tensor iff some trainable parameter lies upstream
  of it. Back-propagation therefore stops at the lowest trainable layer: a layer runs
  BP (propagates its error to its inputs) only if one of its inputs needs an error.
* ``train_last=K`` freezes every conv/linear except the last K in topological order;
  batchnorm layers stay trainable only after the first trainable conv/linear.
  Frozen batchnorm still normalises with batch statistics (training mode), as the BN
  engine does in hardware.

Counts are per image: MACs for FP, BP (input error) and WU (weight gradient),
parameters, and the activation words the backward pass must keep.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from efgen.errors import EfgenError
from efgen.resources import configs_dir

Shape = tuple[int, ...]
INPUT = "input"

WEIGHTED_OPS = ("conv", "linear")
PARAM_OPS = ("conv", "linear", "batchnorm")

# op -> {key: (type, default)}; default REQUIRED means the key must be given.
REQUIRED = object()
_COMMON = {"name": (str, REQUIRED), "op": (str, REQUIRED), "inputs": (list, None)}
OP_SCHEMA: dict[str, dict[str, tuple[type, Any]]] = {
    "conv": {"out_channels": (int, REQUIRED), "kernel": (int, REQUIRED), "stride": (int, 1),
             "padding": (int, 0), "bias": (bool, False), "trainable": (bool, True)},
    "linear": {"out_features": (int, REQUIRED), "bias": (bool, True), "trainable": (bool, True)},
    "batchnorm": {"trainable": (bool, True)},
    "relu": {},
    "maxpool": {"kernel": (int, REQUIRED), "stride": (int, None), "padding": (int, 0)},
    "avgpool": {"kernel": (int, None), "stride": (int, None), "padding": (int, 0),
                "global": (bool, False)},
    "add": {},
    "shortcut_a": {"out_channels": (int, REQUIRED), "stride": (int, 2)},
    "flatten": {},
    "softmax_ce": {},
}
OPS = tuple(OP_SCHEMA)
_TOP_KEYS = {"name": str, "input": list, "num_classes": int, "layers": list,
             "description": str, "training": dict}

BN_EPS = 1e-5
BN_MOMENTUM = 0.1


@dataclass(frozen=True)
class Layer:
    """One node of the DAG, with inferred shapes and training roles.

    Shapes are per image: (C, H, W) for feature maps, (F,) for vectors, () for the loss.
    ``channels`` is the output channel/feature count of conv, linear and shortcut_a.
    """

    name: str
    op: str
    inputs: tuple[str, ...]
    in_shapes: tuple[Shape, ...]
    out_shape: Shape
    channels: int = 0
    kernel: int = 1
    stride: int = 1
    padding: int = 0
    bias: bool = False
    global_pool: bool = False
    trainable: bool = False   # has parameters that SGD updates
    needs_error: bool = False  # an error w.r.t. this layer's output is computed
    runs_bp: bool = False      # propagates the error to (some of) its inputs
    inputs_need_error: tuple[bool, ...] = ()

    @property
    def in_shape(self) -> Shape:
        return self.in_shapes[0]

    @property
    def has_params(self) -> bool:
        return self.op in PARAM_OPS

    @property
    def is_weighted(self) -> bool:
        return self.op in WEIGHTED_OPS

    def param_shapes(self) -> dict[str, Shape]:
        """Learnable parameters (what SGD updates), by name."""
        if self.op == "conv":
            shapes = {"weight": (self.channels, self.in_shape[0], self.kernel, self.kernel)}
        elif self.op == "linear":
            shapes = {"weight": (self.channels, self.in_shape[0])}
        elif self.op == "batchnorm":
            c = self.in_shape[0]
            return {"gamma": (c,), "beta": (c,)}
        else:
            return {}
        if self.bias:
            shapes["bias"] = (self.channels,)
        return shapes

    def buffer_shapes(self) -> dict[str, Shape]:
        """Non-learned state (batchnorm running statistics)."""
        if self.op == "batchnorm":
            c = self.in_shape[0]
            return {"running_mean": (c,), "running_var": (c,)}
        return {}

    # ---- counts, per image -------------------------------------------------------
    @property
    def params(self) -> int:
        return sum(math.prod(s) for s in self.param_shapes().values())

    @property
    def fp_macs(self) -> int:
        if self.op == "conv":
            c, h, w = self.out_shape
            return c * h * w * self.in_shape[0] * self.kernel * self.kernel
        if self.op == "linear":
            return self.channels * self.in_shape[0]
        return 0

    @property
    def bp_macs(self) -> int:
        """MACs to compute the input error (zero when BP stops here)."""
        return self.fp_macs if self.runs_bp else 0

    @property
    def wu_macs(self) -> int:
        """MACs to compute the weight gradient (zero when frozen)."""
        return self.fp_macs if self.trainable else 0

    @property
    def saved_words(self) -> int:
        """Activation words per image kept from FP for the backward pass.

        conv/linear keep their input for WU; batchnorm keeps x-hat; relu keeps its mask
        (one bit per element in hardware, counted here as words); maxpool keeps the
        argmax; the loss keeps the probabilities. Layers the backward pass never
        reaches keep nothing. Per-channel batchnorm statistics (2 words per channel
        per batch) are not per-image and are left out.
        """
        op = self.op
        if op in WEIGHTED_OPS:
            return math.prod(self.in_shape) if self.trainable else 0
        if not self.needs_error:
            return 0
        if op == "batchnorm":
            return math.prod(self.in_shape) if (self.runs_bp or self.trainable) else 0
        if op == "relu" and self.runs_bp:
            return math.prod(self.out_shape)
        if op == "maxpool" and self.runs_bp:
            return math.prod(self.out_shape)
        if op == "softmax_ce":
            return self.in_shape[0]
        return 0


@dataclass(frozen=True)
class Net:
    """A validated network: layers in topological order (file order where free)."""

    name: str
    input_shape: Shape
    num_classes: int
    layers: tuple[Layer, ...]
    source: str = ""
    description: str = ""
    training: Any = field(default=None, compare=False)  # the raw ``training:`` section (efgen.methods.spec validates it)
    _index: dict[str, int] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self):
        self._index.update({l.name: i for i, l in enumerate(self.layers)})

    def __getitem__(self, name: str) -> Layer:
        return self.layers[self._index[name]]

    def __iter__(self):
        return iter(self.layers)

    def __len__(self):
        return len(self.layers)

    def shape_of(self, tensor: str) -> Shape:
        return self.input_shape if tensor == INPUT else self[tensor].out_shape

    def consumers(self, tensor: str) -> list[Layer]:
        return [l for l in self.layers if tensor in l.inputs]

    @property
    def weighted_layers(self) -> list[Layer]:
        return [l for l in self.layers if l.is_weighted]

    @property
    def loss_layer(self) -> Layer:
        return self.layers[-1]

    def totals(self) -> dict[str, int]:
        keys = ("params", "fp_macs", "bp_macs", "wu_macs", "saved_words")
        out = {k: sum(getattr(l, k) for l in self.layers) for k in keys}
        out["trainable_params"] = sum(l.params for l in self.layers if l.trainable)
        return out

    def with_train_last(self, k: int) -> "Net":
        """Freeze every conv/linear but the last ``k`` (see the module docstring)."""
        weighted = self.weighted_layers
        if k < 1:
            raise EfgenError(f"--train-last {k} trains nothing", file=self.source,
                             fix=f"give K between 1 and {len(weighted)}")
        if k > len(weighted):
            raise EfgenError(f"--train-last {k}: {self.name} has only {len(weighted)} "
                             "conv/linear layers", file=self.source,
                             fix=f"give K between 1 and {len(weighted)}")
        first = self._index[weighted[len(weighted) - k].name]
        layers = []
        for i, l in enumerate(self.layers):
            if l.is_weighted:
                layers.append(replace(l, trainable=i >= first))
            elif l.op == "batchnorm":
                layers.append(replace(l, trainable=i > first))
            else:
                layers.append(l)
        return _finish(self.name, self.input_shape, self.num_classes, layers,
                       self.source, self.description, self.training)


# ---- loading ------------------------------------------------------------------------

def list_nets() -> list[str]:
    return sorted(p.stem for p in (configs_dir() / "nets").glob("*.yaml"))


def resolve_net_path(name_or_path: str) -> Path:
    p = Path(name_or_path)
    if p.suffix.lower() in (".yaml", ".yml", ".onnx") or p.exists():
        if not p.is_file():
            raise EfgenError("net file not found", file=str(p),
                             fix="check the path, or use a catalogue name (efgen nets)")
        return p
    cat = configs_dir() / "nets" / f"{name_or_path}.yaml"
    if cat.is_file():
        return cat
    names = list_nets()
    hint = did_you_mean(name_or_path, names)
    raise EfgenError(f"unknown net '{name_or_path}'",
                     fix=f"{hint}catalogue nets: {', '.join(names)}; or give a .yaml or .onnx path")


def did_you_mean(word: str, options) -> str:
    """'did you mean 'x'? ' for the closest option, or '' when nothing is close."""
    options = list(options)
    close = [o for o in options if str(word).startswith(o) or o.startswith(str(word))]
    close = close or difflib.get_close_matches(str(word), options, n=1, cutoff=0.5)
    return f"did you mean '{close[0]}'? " if close else ""


def _type_name(t: type) -> str:
    return {int: "an integer", bool: "true or false", str: "a string", list: "a list"}[t]


def _check_type(value: Any, t: type, file: str, where: str) -> None:
    ok = isinstance(value, t) and not (t is int and isinstance(value, bool))
    if not ok:
        raise EfgenError(f"'{where.rsplit('.', 1)[-1]}' must be {_type_name(t)}, "
                         f"got {type(value).__name__} {value!r}", file=file, where=where,
                         fix=f"write {_type_name(t)}")


def _unknown_key(key: str, valid, file: str, where: str) -> EfgenError:
    hint = did_you_mean(key, valid)
    return EfgenError(f"unknown key '{key}'", file=file, where=where,
                      fix=f"{hint}valid keys: {', '.join(sorted(valid))}")


def parse_net(doc: Any, file: str = "<net>") -> Net:
    """Validate a parsed YAML document and build the Net (shapes inferred)."""
    if not isinstance(doc, dict):
        raise EfgenError("a net file must be a mapping with name, input, num_classes, layers",
                         file=file, fix="see the net format in README.md")
    for key in doc:
        if key not in _TOP_KEYS:
            raise _unknown_key(key, _TOP_KEYS, file, str(key))
    for key in ("name", "input", "num_classes", "layers"):
        if key not in doc:
            raise EfgenError(f"missing key '{key}'", file=file, where=key,
                             fix="see the net format in README.md")
    for key, t in _TOP_KEYS.items():
        if key in doc:
            _check_type(doc[key], t, file, key)
    name = doc["name"]
    if not name.strip():
        raise EfgenError("empty net name", file=file, where="name", fix="give the net a name")
    inp = doc["input"]
    if len(inp) != 3:
        raise EfgenError(f"'input' must be [channels, height, width], got {inp!r}",
                         file=file, where="input", fix="write e.g. input: [3, 32, 32]")
    for i, v in enumerate(inp):
        _check_type(v, int, file, f"input[{i}]")
        if v <= 0:
            raise EfgenError(f"input size must be positive, got {v}", file=file,
                             where=f"input[{i}]", fix="give positive sizes")
    if doc["num_classes"] < 2:
        raise EfgenError(f"num_classes must be at least 2, got {doc['num_classes']}",
                         file=file, where="num_classes", fix="give the number of classes")
    if not doc["layers"]:
        raise EfgenError("no layers", file=file, where="layers", fix="list the layers")

    raw = _parse_layers(doc["layers"], file)
    order = _topo_order(raw, file)
    layers = _infer(raw, order, tuple(inp), doc["num_classes"], file)
    return _finish(name, tuple(inp), doc["num_classes"], layers, file,
                   doc.get("description", ""), doc.get("training"))


def _parse_layers(items: list, file: str) -> list[dict]:
    raw: list[dict] = []
    names: dict[str, int] = {}
    for i, item in enumerate(items):
        try:
            raw.append(_parse_layer(i, item, raw, names, file))
        except EfgenError as exc:
            raise _at_line(exc, item) from None
    for spec in raw:
        for src in spec["inputs"]:
            if src != INPUT and src not in names:
                hint = did_you_mean(src, names).strip() or "name another layer or 'input'"
                raise _at_line(EfgenError(f"input '{src}' is not a layer", file=file,
                                          where=f"{spec['where']}.inputs", fix=hint),
                               spec["item"])
    return raw


def _at_line(exc: EfgenError, item: Any) -> EfgenError:
    """Add the YAML line of ``item`` (a layer mapping) to an error's location."""
    line = getattr(item, "line", 0)
    if not line:
        return exc
    return EfgenError(exc.what, file=exc.file, where=f"{exc.where} (line {line})", fix=exc.fix)


def _parse_layer(i: int, item: Any, raw: list[dict], names: dict[str, int], file: str) -> dict:
    where0 = f"layers[{i}]"
    if not isinstance(item, dict):
        raise EfgenError(f"a layer must be a mapping, got {type(item).__name__}",
                         file=file, where=where0, fix="write {name: ..., op: ..., ...}")
    for key in ("name", "op"):
        if key not in item:
            raise EfgenError(f"missing key '{key}'", file=file, where=where0,
                             fix=f"every layer needs '{key}'")
        _check_type(item[key], str, file, f"{where0}.{key}")
    lname, op = item["name"], item["op"]
    where = f"layers[{i}] ({lname})"
    if not lname.strip() or lname == INPUT:
        raise EfgenError(f"invalid layer name {lname!r}", file=file, where=where,
                         fix=f"use a non-empty name other than '{INPUT}'")
    if lname in names:
        raise EfgenError(f"duplicate layer name '{lname}'", file=file, where=where,
                         fix=f"rename it (first used at layers[{names[lname]}])")
    names[lname] = i
    if op not in OP_SCHEMA:
        hint = did_you_mean(op, OPS)
        raise EfgenError(f"unknown op '{op}'", file=file, where=f"{where}.op",
                         fix=f"{hint}supported ops: {', '.join(OPS)}")
    schema = {**_COMMON, **OP_SCHEMA[op]}
    spec: dict[str, Any] = {"index": i, "where": where, "item": item}
    for key, value in item.items():
        if key not in schema:
            raise _unknown_key(key, schema, file, f"{where}.{key}")
    for key, (t, default) in schema.items():
        if key in item:
            _check_type(item[key], t, file, f"{where}.{key}")
            spec[key] = item[key]
        elif default is REQUIRED:
            raise EfgenError(f"missing key '{key}' for op '{op}'", file=file,
                             where=where, fix=f"add '{key}'")
        else:
            spec[key] = default
    for key in ("out_channels", "out_features", "kernel", "stride"):
        if spec.get(key) is not None and spec[key] <= 0:
            raise EfgenError(f"'{key}' must be positive, got {spec[key]}", file=file,
                             where=f"{where}.{key}", fix="give a positive size")
    if spec.get("padding") is not None and spec["padding"] < 0:
        raise EfgenError(f"'padding' must be zero or positive, got {spec['padding']}",
                         file=file, where=f"{where}.padding", fix="give padding >= 0")
    if spec["inputs"] is None:
        spec["inputs"] = [raw[-1]["name"] if raw else INPUT]
    for j, src in enumerate(spec["inputs"]):
        _check_type(src, str, file, f"{where}.inputs[{j}]")
    want = 2 if op == "add" else 1
    if len(spec["inputs"]) != want:
        raise EfgenError(f"op '{op}' takes {want} input(s), got {len(spec['inputs'])}",
                         file=file, where=f"{where}.inputs",
                         fix=f"list exactly {want} input name(s)")
    return spec


def _topo_order(raw: list[dict], file: str) -> list[int]:
    """Kahn's algorithm, taking the lowest file index first so order is stable."""
    import heapq

    idx = {s["name"]: s["index"] for s in raw}
    deps = {s["index"]: {idx[x] for x in s["inputs"] if x != INPUT} for s in raw}
    users: dict[int, list[int]] = {i: [] for i in deps}
    for i, d in deps.items():
        for j in d:
            users[j].append(i)
    pending = {i: len(d) for i, d in deps.items()}
    ready = [i for i, n in pending.items() if n == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for u in users[i]:
            pending[u] -= 1
            if pending[u] == 0:
                heapq.heappush(ready, u)
    if len(order) != len(raw):
        stuck = [raw[i]["name"] for i in sorted(pending) if pending[i] > 0]
        raise EfgenError(f"the layer graph has a cycle through {', '.join(stuck)}",
                         file=file, where=raw[min(i for i in pending if pending[i])]["where"],
                         fix="inputs must form a DAG; check the 'inputs' of those layers")
    return order


def _out_size(h: int, k: int, s: int, p: int) -> int:
    return (h + 2 * p - k) // s + 1


def _infer(raw: list[dict], order: list[int], input_shape: Shape, num_classes: int,
           file: str) -> list[Layer]:
    shapes: dict[str, Shape] = {INPUT: input_shape}
    layers: list[Layer] = []
    for n, i in enumerate(order):
        try:
            layers.append(_infer_layer(raw[i], n == len(order) - 1, shapes, num_classes, file))
        except EfgenError as exc:
            raise _at_line(exc, raw[i]["item"]) from None
    if layers[-1].op != "softmax_ce":
        raise EfgenError("the net has no softmax_ce loss", file=file, where="layers",
                         fix="end the layers with {name: loss, op: softmax_ce}")
    used = {x for l in layers for x in l.inputs}
    for l in layers[:-1]:
        if l.name not in used:
            raise EfgenError(f"the output of layer '{l.name}' is never used", file=file,
                             where=f"layers ({l.name})",
                             fix="connect it to a later layer or remove it")
    return layers


def _infer_layer(s: dict, is_last: bool, shapes: dict[str, Shape], num_classes: int,
                 file: str) -> Layer:
    op, where = s["op"], s["where"]
    ins = tuple(shapes[x] for x in s["inputs"])
    x = ins[0]

    def need_map(what=op):
        if len(x) != 3:
            raise EfgenError(f"'{what}' needs a (C, H, W) feature map, got shape {x}",
                             file=file, where=where,
                             fix="feed it a feature map, not a flattened vector")

    kw: dict[str, Any] = {}
    if op == "conv":
        need_map()
        k, st, p = s["kernel"], s["stride"], s["padding"]
        ho, wo = _out_size(x[1], k, st, p), _out_size(x[2], k, st, p)
        if ho < 1 or wo < 1:
            raise EfgenError(f"kernel {k} with padding {p} does not fit input {x}",
                             file=file, where=where, fix="reduce kernel or add padding")
        out = (s["out_channels"], ho, wo)
        kw = dict(channels=s["out_channels"], kernel=k, stride=st, padding=p,
                  bias=s["bias"], trainable=s["trainable"])
    elif op == "linear":
        if len(x) != 1:
            raise EfgenError(f"'linear' needs a flat input, got shape {x}", file=file,
                             where=where, fix="add a flatten layer before it")
        out = (s["out_features"],)
        kw = dict(channels=s["out_features"], bias=s["bias"], trainable=s["trainable"])
    elif op == "batchnorm":
        out = x
        kw = dict(trainable=s["trainable"])
    elif op in ("relu",):
        out = x
    elif op in ("maxpool", "avgpool"):
        need_map()
        if op == "avgpool" and s["global"]:
            if s["kernel"] is not None or s["stride"] is not None or s["padding"]:
                raise EfgenError("a global avgpool takes no kernel, stride or padding",
                                 file=file, where=where, fix="remove them")
            out = (x[0], 1, 1)
            kw = dict(kernel=x[1], stride=1, padding=0, global_pool=True)
        else:
            if s["kernel"] is None:
                raise EfgenError(f"missing key 'kernel' for op '{op}'", file=file,
                                 where=where, fix="add 'kernel', or 'global: true'")
            k, p = s["kernel"], s["padding"]
            st = s["stride"] if s["stride"] is not None else k
            if 2 * p > k:
                raise EfgenError(f"padding {p} is more than half the kernel {k}",
                                 file=file, where=f"{where}.padding",
                                 fix="use padding <= kernel // 2")
            ho, wo = _out_size(x[1], k, st, p), _out_size(x[2], k, st, p)
            if ho < 1 or wo < 1:
                raise EfgenError(f"kernel {k} does not fit input {x}", file=file,
                                 where=where, fix="reduce the kernel")
            out = (x[0], ho, wo)
            kw = dict(kernel=k, stride=st, padding=p)
    elif op == "add":
        if ins[0] != ins[1]:
            raise EfgenError(f"shape mismatch at add: '{s['inputs'][0]}' is {ins[0]}, "
                             f"'{s['inputs'][1]}' is {ins[1]}", file=file, where=where,
                             fix="make both operands the same shape (e.g. a "
                                 "shortcut_a or 1x1 conv on the skip path)")
        out = x
    elif op == "shortcut_a":
        need_map()
        c, st = s["out_channels"], s["stride"]
        if c < x[0]:
            raise EfgenError(f"shortcut_a cannot shrink channels {x[0]} -> {c}",
                             file=file, where=f"{where}.out_channels",
                             fix="out_channels must be >= the input channels")
        out = (c, -(-x[1] // st), -(-x[2] // st))
        kw = dict(channels=c, stride=st)
    elif op == "flatten":
        out = (math.prod(x),)
    elif op == "softmax_ce":
        if not is_last:
            raise EfgenError("softmax_ce must be the last layer", file=file, where=where,
                             fix="move the loss to the end; the net has one loss")
        if x != (num_classes,):
            raise EfgenError(f"softmax_ce expects ({num_classes},) logits, got {x}",
                             file=file, where=where,
                             fix="end with a linear layer of num_classes outputs")
        out = ()
    else:  # pragma: no cover - OP_SCHEMA and this chain are kept in step
        raise AssertionError(op)
    shapes[s["name"]] = out
    return Layer(name=s["name"], op=op, inputs=tuple(s["inputs"]),
                 in_shapes=ins, out_shape=out, **kw)


def _finish(name, input_shape, num_classes, layers, source, description,
            training=None) -> Net:
    """Derive the training roles (who needs an error, who runs BP) for ``layers``."""
    needs: dict[str, bool] = {INPUT: False}
    out = []
    for l in layers:
        trainable = l.trainable and l.has_params
        in_need = tuple(needs[x] for x in l.inputs)
        need = trainable or any(in_need)
        needs[l.name] = need
        out.append(replace(l, trainable=trainable, needs_error=need,
                           runs_bp=any(in_need), inputs_need_error=in_need))
    return Net(name=name, input_shape=input_shape, num_classes=num_classes,
               layers=tuple(out), source=source, description=description,
               training=training)


def net_to_doc(net: Net) -> dict[str, Any]:
    """The YAML document of ``net`` (explicit inputs, effective trainable flags).

    ``parse_net(net_to_doc(net))`` rebuilds an equal net; design.json embeds this so a
    design regenerates without the original file.
    """
    layers = []
    for l in net:
        d: dict[str, Any] = {"name": l.name, "op": l.op, "inputs": list(l.inputs)}
        if l.op == "conv":
            d.update(out_channels=l.channels, kernel=l.kernel, stride=l.stride,
                     padding=l.padding, bias=l.bias, trainable=l.trainable)
        elif l.op == "linear":
            d.update(out_features=l.channels, bias=l.bias, trainable=l.trainable)
        elif l.op == "batchnorm":
            d.update(trainable=l.trainable)
        elif l.op == "maxpool" or (l.op == "avgpool" and not l.global_pool):
            d.update(kernel=l.kernel, stride=l.stride, padding=l.padding)
        elif l.op == "avgpool":
            d["global"] = True
        elif l.op == "shortcut_a":
            d.update(out_channels=l.channels, stride=l.stride)
        layers.append(d)
    doc: dict[str, Any] = {"name": net.name, "input": list(net.input_shape),
                           "num_classes": net.num_classes, "layers": layers}
    if net.description:
        doc["description"] = net.description
    if net.training is not None:
        doc["training"] = net.training
    return doc


# ---- YAML output (the importer's net files) ---------------------------------------

def _flow(value: Any) -> str:
    """``value`` as one line of flow-style YAML."""
    import yaml

    text = yaml.safe_dump([value], default_flow_style=True, sort_keys=False,
                          width=2**31 - 1, allow_unicode=True).strip()
    return text[1:-1]  # drop the brackets of the wrapping list


def net_yaml(doc: dict[str, Any], header: str | None = None, compact: bool = True) -> str:
    """The text of a net YAML file: top-level keys, then one flow mapping per layer.

    With ``compact``, an ``inputs`` equal to the default (the previous layer) is left out,
    as in the catalogue files; the net is the same either way.
    """
    lines = [f"# {h}".rstrip() for h in (header or "").splitlines()]
    for key in ("name", "description", "input", "num_classes"):
        if key in doc:
            lines.append(f"{key}: {_flow(doc[key])}")
    for key in doc:
        if key not in ("name", "description", "input", "num_classes", "layers"):
            lines.append(f"{key}: {_flow(doc[key])}")
    lines.append("layers:")
    prev = INPUT
    for layer in doc["layers"]:
        layer = dict(layer)
        if compact and list(layer.get("inputs") or []) == [prev]:
            layer.pop("inputs")
        lines.append(f"  - {_flow(layer)}")
        prev = layer["name"]
    return "\n".join(lines) + "\n"


def write_net_yaml(doc: dict[str, Any], path: str | Path, header: str | None = None) -> None:
    """Write ``doc`` as a readable net YAML file (see :func:`net_yaml`)."""
    path = Path(path)
    try:
        path.write_text(net_yaml(doc, header), encoding="utf-8")
    except OSError as exc:
        raise EfgenError(f"cannot write the net file ({exc.strerror or exc.__class__.__name__})",
                         file=str(path), fix="check that the directory exists and is "
                                             "writable") from None
