"""ONNX import (the ``onnx`` package from PyPI).

:func:`import_onnx` reads an ONNX model and returns efgen's YAML net document (the
dict a ``configs/nets/*.yaml`` file parses to, validated with :func:`efgen.frontend.ir.parse_net`
so all shape checking is shared) and the trained parameters keyed
``"<layer>.<param>"`` (see :mod:`efgen.frontend.weights`).

Only the nodes the logits depend on through activations are converted ("live"
nodes): initializers and ``Constant`` nodes are constants, and the nodes that only
compute parameter inputs (e.g. ``Shape -> Gather -> Concat`` feeding a ``Reshape``'s
shape) are never visited. Every live node efgen cannot represent is collected first;
then one :class:`EfgenError` lists them all, grouped by operator and reason, e.g.
``unsupported ONNX operators: Sigmoid (sig1, sig2); Conv with group=32 (dw1)``.

==========================================  =============================================
ONNX                                        efgen
==========================================  =============================================
Conv (2-D, square kernel, group 1,          conv (bias optional)
dilation 1, symmetric equal pads or
auto_pad giving them)
Gemm (transA 0, transB 0/1, alpha 1,        linear
beta 1); MatMul(x, W) [+ Add(bias)]
Add of a constant right after a bias-less   the bias of that conv/linear
Conv/Gemm/MatMul (the MatMul+Add pattern)
BatchNormalization (epsilon 1e-5,           batchnorm (gamma, beta, running stats)
inference mode)
Relu                                        relu
MaxPool / AveragePool (square, equal        maxpool / avgpool
strides and pads, ceil_mode 0;
AveragePool: count_include_pad 1 if padded)
GlobalAveragePool                           avgpool global
Add of two activations                      add
Flatten (axis 1); Reshape [N,C,H,W] ->      flatten
[N, C*H*W] (constant or computed shape)
Slice x[:, :, ::S, ::S] [-> Pad channels]   shortcut_a (option-A residual shortcut)
Identity, Dropout                           (pass through)
Softmax / LogSoftmax at the output          (dropped; efgen appends softmax_ce)
==========================================  =============================================

Export is :mod:`efgen.frontend.onnx_export`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from efgen.errors import EfgenError
from efgen.frontend.ir import BN_EPS, INPUT, Net, parse_net

EXPORT_OPSET = 17
MIN_OPSET = 7                # the oldest opset read (BatchNormalization-7 and later)
_BIG = 2**31 - 1            # a Slice end at or past this means "to the end"
_MAX_NAMES = 8              # node names listed per unsupported-operator entry
_META_NAME = "efgen.net_name"
_META_LOSS = "efgen.loss_name"
_META_DESC = "efgen.description"

SUPPORTED_OPS = (
    "Conv", "Gemm", "MatMul(+Add bias)", "BatchNormalization", "Relu", "MaxPool",
    "AveragePool", "GlobalAveragePool", "Add", "Flatten", "Reshape (flattening)",
    "Slice(+Pad) option-A shortcut", "Identity", "Dropout",
    "Softmax/LogSoftmax at the output",
)

# Input positions that carry activations; the others are parameters (constants, or
# shape computations for Reshape). Ops not listed: every input is an activation.
_DATA_POS = {
    "Conv": (0,), "Gemm": (0,), "BatchNormalization": (0,), "Reshape": (0,),
    "Slice": (0,), "Pad": (0,), "Dropout": (0,), "Identity": (0,), "Relu": (0,),
    "MaxPool": (0,), "AveragePool": (0,), "GlobalAveragePool": (0,), "Flatten": (0,),
    "Softmax": (0,), "LogSoftmax": (0,),
}
_PASS = ("Identity", "Dropout")
_SOFTMAX = ("Softmax", "LogSoftmax")


def _onnx():
    try:
        import onnx
    except ImportError:  # pragma: no cover - onnx is a dependency of ONNX support
        raise EfgenError("ONNX support needs the 'onnx' package",
                         fix="pip install onnx") from None
    return onnx


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or exc.__class__.__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _is_default_domain(node) -> bool:
    return node.domain in ("", "ai.onnx")


def _op_key(node) -> str:
    return node.op_type if _is_default_domain(node) else f"{node.domain}.{node.op_type}"


# ---- reading ----------------------------------------------------------------------------

def read_model(path: str | Path):
    """Load and check an ONNX model; every problem is an EfgenError naming the file."""
    onnx = _onnx()
    p = Path(path)
    if not p.exists():
        raise EfgenError("ONNX model not found", file=str(p), fix="check the path")
    if not p.is_file():
        raise EfgenError("ONNX model path is not a file", file=str(p),
                         fix="pass a .onnx file")
    fix = ("pass a complete ONNX model file; this one may be truncated or not ONNX at all "
           "(re-export it)")
    try:
        model = onnx.load(str(p))
    except Exception as exc:  # noqa: BLE001 - protobuf DecodeError, bad external data, ...
        raise EfgenError(f"cannot read the ONNX model ({_short(exc)})", file=str(p),
                         fix=fix) from None
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    newest = onnx.defs.onnx_opset_version()
    if opset is None or not MIN_OPSET <= opset <= newest:
        raise EfgenError(f"ONNX opset {opset} is not supported (efgen reads opsets "
                         f"{MIN_OPSET} to {newest}, the newest the installed onnx "
                         f"{onnx.__version__} knows)", file=str(p),
                         fix=f"re-export the model with an opset from {MIN_OPSET} to {newest}, "
                             f"e.g. torch.onnx.export(..., opset_version={EXPORT_OPSET})")
    try:
        onnx.checker.check_model(str(p))
    except Exception as exc:  # noqa: BLE001 - ValidationError and friends
        raise EfgenError(f"invalid ONNX model ({_short(exc)})", file=str(p), fix=fix) from None
    return model


def _attrs(node) -> dict[str, Any]:
    from onnx import helper

    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        if isinstance(v, bytes):
            v = v.decode("utf-8", "replace")
        out[a.name] = v
    return out


def _constant_value(attrs: dict[str, Any]) -> np.ndarray | None:
    from onnx import numpy_helper

    if "value" in attrs:
        return numpy_helper.to_array(attrs["value"])
    for key, dt in (("value_float", np.float32), ("value_floats", np.float32),
                    ("value_int", np.int64), ("value_ints", np.int64)):
        if key in attrs:
            return np.array(attrs[key], dtype=dt)
    return None


def _infer_shapes(onnx, model) -> dict[str, list]:
    """Tensor name -> dims (int, symbolic name, or None) from ONNX shape inference."""
    inferred = model
    for data_prop in (True, False):
        try:
            inferred = onnx.shape_inference.infer_shapes(model, data_prop=data_prop)
            break
        except Exception:  # noqa: BLE001, PERF203 - best effort (e.g. > 2 GB models)
            continue
    g = inferred.graph
    shapes: dict[str, list] = {}
    for vi in [*g.input, *g.value_info, *g.output]:
        if not vi.type.HasField("tensor_type"):
            continue
        tt = vi.type.tensor_type
        if tt.HasField("shape"):
            shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                               for d in tt.shape.dim]
    return shapes


class _Unsupported(Exception):
    """A node efgen cannot represent; ``key`` (op type and reason) groups the report."""

    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


def _ints(a) -> list[int]:
    return [int(v) for v in np.asarray(a).reshape(-1)]


class _Importer:
    """One pass over the live nodes of an ONNX graph, in graph (topological) order."""

    def __init__(self, model, path: str):
        from onnx import numpy_helper

        onnx = _onnx()
        self.path = path
        self.model = model
        g = self.graph = model.graph
        self.opset = next((o.version for o in model.opset_import
                           if o.domain in ("", "ai.onnx")), 1)
        self.consts: dict[str, np.ndarray] = {i.name: numpy_helper.to_array(i)
                                              for i in g.initializer}
        self.node_attrs = [_attrs(n) for n in g.node]
        for n, a in zip(g.node, self.node_attrs):
            if n.op_type == "Constant" and _is_default_domain(n) and n.output:
                v = _constant_value(a)
                if v is not None:
                    self.consts[n.output[0]] = v
        self.shapes = _infer_shapes(onnx, model)
        self.producer = {o: i for i, n in enumerate(g.node) for o in n.output if o}
        self.layers: list[dict[str, Any]] = []
        self.params: dict[str, np.ndarray] = {}
        self.alias: dict[str, str | None] = {}      # ONNX tensor -> efgen tensor (None: unknown)
        self.pending: dict[str, tuple[str, int, int, str]] = {}  # subsample not yet a layer
        self.direct: dict[str, dict[str, Any]] = {}  # ONNX tensor -> the layer that made it
        self.uses: dict[str, int] = {}
        self.issues: list[tuple[str, str]] = []
        self.used_names: set[str] = {INPUT}

    # ---- graph-level structure ----------------------------------------------------------
    def _error(self, what: str, fix: str) -> EfgenError:
        return EfgenError(what, file=self.path, fix=fix)

    def _graph_input(self) -> tuple[str, list[int]]:
        from onnx import TensorProto

        real = [i for i in self.graph.input if i.name not in self.consts]
        if len(real) != 1:
            names = ", ".join(i.name for i in real) or "none"
            raise self._error(f"efgen imports models with one input (a batch of images), "
                              f"this one has {len(real)} ({names})",
                              fix="export the model with a single [N, C, H, W] input")
        vi = real[0]
        floats = (TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16,
                  TensorProto.BFLOAT16)
        if vi.type.HasField("tensor_type") and vi.type.tensor_type.elem_type not in floats:
            raise self._error(f"input '{vi.name}' is not a floating-point tensor",
                              fix="export the model with a float input (normalise "
                                  "integer images before the model)")
        dims = self.shapes.get(vi.name)
        if (dims is None or len(dims) != 4
                or not all(isinstance(d, int) and d > 0 for d in dims[1:])):
            raise self._error(f"input '{vi.name}' has shape {dims}; efgen needs "
                              f"[N, C, H, W] with fixed C, H and W",
                              fix="export the model with a fixed image size (the batch "
                                  "dimension may stay symbolic)")
        return vi.name, [int(d) for d in dims[1:]]

    def _logits_tensor(self) -> str:
        outs = list(self.graph.output)
        if len(outs) != 1:
            raise self._error(f"efgen imports models with one output (the logits), this one "
                              f"has {len(outs)} ({', '.join(o.name for o in outs)})",
                              fix="export the model with only the classifier output")
        t, softmax_seen = outs[0].name, False
        # Walk back over a trailing Identity/Dropout and at most one Softmax/LogSoftmax.
        while t in self.producer:
            node = self.graph.node[self.producer[t]]
            if not _is_default_domain(node) or not node.input:
                break
            if node.op_type in _PASS or (node.op_type in _SOFTMAX and not softmax_seen):
                softmax_seen |= node.op_type in _SOFTMAX
                t = node.input[0]
            else:
                break
        return t

    def _data_pos(self, node) -> tuple[int, ...]:
        if _is_default_domain(node) and node.op_type in _DATA_POS:
            return _DATA_POS[node.op_type]
        return tuple(range(len(node.input)))

    def _live_nodes(self, logits: str) -> list[int]:
        live: set[int] = set()
        stack, seen = [logits], set()
        while stack:
            t = stack.pop()
            if t in seen or t in self.consts or t == self.input_name:
                continue
            seen.add(t)
            if t not in self.producer:
                raise self._error(f"tensor '{t}' is used but no node produces it",
                                  fix="the model is malformed; re-export it")
            i = self.producer[t]
            live.add(i)
            node = self.graph.node[i]
            for pos in self._data_pos(node):
                if pos < len(node.input) and node.input[pos]:
                    stack.append(node.input[pos])
        for i in live:
            node = self.graph.node[i]
            for pos in self._data_pos(node):
                if pos < len(node.input) and node.input[pos]:
                    self.uses[node.input[pos]] = self.uses.get(node.input[pos], 0) + 1
        self.uses[logits] = self.uses.get(logits, 0) + 1
        return sorted(live)

    # ---- helpers --------------------------------------------------------------------------
    def _unique(self, base: str) -> str:
        base = base if base.strip() else "layer"
        name, k = base, 1
        while name in self.used_names:
            name = f"{base}_{k}"
            k += 1
        self.used_names.add(name)
        return name

    def _emit(self, name: str, op: str, inputs: list, **attrs) -> dict[str, Any]:
        layer = {"name": self._unique(name), "op": op, "inputs": list(inputs), **attrs}
        self.layers.append(layer)
        return layer

    def _out(self, node, layer: dict[str, Any]) -> None:
        self.alias[node.output[0]] = layer["name"]
        self.direct[node.output[0]] = layer

    def _shape(self, t: str) -> list | None:
        if t in self.consts:
            return list(self.consts[t].shape)
        return self.shapes.get(t)

    def _channels(self, t: str) -> int | None:
        s = self._shape(t)
        return s[1] if s and len(s) >= 2 and isinstance(s[1], int) and s[1] > 0 else None

    def _src(self, t: str, node) -> str | None:
        """The efgen tensor (layer name or 'input') for ONNX tensor ``t``."""
        if t == self.input_name:
            return INPUT
        if t in self.alias:
            return self.alias[t]
        if t in self.pending:
            return self._materialise(t)
        if t in self.consts:
            raise _Unsupported(f"{node.op_type if node is not None else 'Slice'} of a constant")
        return None  # made by a node already reported as unsupported

    def _materialise(self, t: str) -> str | None:
        """A subsample (Slice) not followed by a channel Pad: a shortcut_a of equal width."""
        src, sh, sw, sname = self.pending[t]
        self.alias[t] = None
        if sh != sw:
            self.issues.append((f"Slice with unequal steps on H and W ({sh}, {sw})", sname))
            return None
        c = self._channels(src)
        if c is None:
            self.issues.append(("Slice of a tensor of unknown shape", sname))
            return None
        layer = self._emit(sname, "shortcut_a", [self._src(src, None)], out_channels=c,
                           stride=sh)
        self.alias[t] = layer["name"]
        return layer["name"]

    def _param(self, node, pos: int, what: str, optional: bool = False) -> np.ndarray | None:
        if pos >= len(node.input) or not node.input[pos]:
            if optional:
                return None
            raise _Unsupported(f"{node.op_type} without {what}")
        t = node.input[pos]
        if t not in self.consts:
            raise _Unsupported(f"{node.op_type} with non-constant {what}")
        return self.consts[t]

    @staticmethod
    def _float(node, a: np.ndarray, what: str) -> np.ndarray:
        if not np.issubdtype(a.dtype, np.floating):
            raise _Unsupported(f"{node.op_type} with {a.dtype} {what}")
        return np.ascontiguousarray(a, dtype=np.float32)

    @staticmethod
    def _square(node, what: str, values) -> int:
        values = [int(v) for v in values]
        if len(values) != 2:
            raise _Unsupported(f"{node.op_type} with {len(values)}-D {what}")
        if values[0] != values[1]:
            raise _Unsupported(f"{node.op_type} with unequal {what}={values}")
        return values[0]

    @staticmethod
    def _no_dilation(node, a: dict) -> None:
        dil = [int(v) for v in a.get("dilations", [])]
        if any(d != 1 for d in dil):
            raise _Unsupported(f"{node.op_type} with dilations={dil}")

    def _pads(self, node, a: dict, k: int, s: int) -> int:
        mode = a.get("auto_pad", "NOTSET") or "NOTSET"
        if mode == "NOTSET":
            pads = [int(v) for v in a.get("pads", [0, 0, 0, 0])]
            if len(pads) != 4:
                raise _Unsupported(f"{node.op_type} with {len(pads)} pads")
            if len(set(pads)) != 1:
                raise _Unsupported(f"{node.op_type} with asymmetric pads={pads}")
            if pads[0] < 0:
                raise _Unsupported(f"{node.op_type} with negative pads")
            return pads[0]
        if mode == "VALID":
            return 0
        if mode in ("SAME_UPPER", "SAME_LOWER"):
            dims = self._shape(node.input[0])
            if dims and len(dims) == 4 and all(isinstance(d, int) for d in dims[2:]):
                totals = {max((-(-d // s) - 1) * s + k - d, 0) for d in dims[2:]}
                if len(totals) == 1 and next(iter(totals)) % 2 == 0:
                    return next(iter(totals)) // 2
            raise _Unsupported(f"{node.op_type} with auto_pad={mode} (asymmetric padding)")
        raise _Unsupported(f"{node.op_type} with auto_pad={mode}")

    # ---- operators ------------------------------------------------------------------------
    def _op_Conv(self, node, a, name):
        w = self._float(node, self._param(node, 1, "weights"), "weights")
        b = self._param(node, 2, "bias", optional=True)
        if w.ndim != 4:
            raise _Unsupported(f"Conv with a {w.ndim - 2}-D kernel")
        group = int(a.get("group", 1))
        if group != 1:
            raise _Unsupported(f"Conv with group={group}")
        self._no_dilation(node, a)
        m, _, kh, kw = (int(v) for v in w.shape)
        if kh != kw:
            raise _Unsupported(f"Conv with a non-square {kh}x{kw} kernel")
        if "kernel_shape" in a and [int(v) for v in a["kernel_shape"]] != [kh, kw]:
            raise _Unsupported("Conv whose kernel_shape differs from its weights")
        s = self._square(node, "strides", a.get("strides", [1, 1]))
        p = self._pads(node, a, kh, s)
        attrs: dict[str, Any] = {"out_channels": m, "kernel": kh}
        if s != 1:
            attrs["stride"] = s
        if p:
            attrs["padding"] = p
        if b is not None:
            b = self._float(node, b, "bias")
            if b.shape != (m,):
                raise _Unsupported(f"Conv with a bias of shape {list(b.shape)}")
            attrs["bias"] = True
        layer = self._emit(name, "conv", [self._src(node.input[0], node)], **attrs)
        self.params[f"{layer['name']}.weight"] = w
        if b is not None:
            self.params[f"{layer['name']}.bias"] = b
        self._out(node, layer)

    def _linear(self, node, name, x: str, w: np.ndarray, b: np.ndarray | None):
        """Emit a linear layer: w [out, in] (float32), b [out] or None."""
        attrs: dict[str, Any] = {"out_features": int(w.shape[0])}
        if b is None:
            attrs["bias"] = False
        layer = self._emit(name, "linear", [self._src(x, node)], **attrs)
        self.params[f"{layer['name']}.weight"] = np.ascontiguousarray(w)
        if b is not None:
            self.params[f"{layer['name']}.bias"] = b
        self._out(node, layer)

    @staticmethod
    def _vector(node, c: np.ndarray, n: int, shapes: set, what: str) -> np.ndarray:
        """A per-channel vector [n] from a constant of one of the allowed shapes."""
        if tuple(c.shape) not in shapes:
            raise _Unsupported(f"{node.op_type} with a {what} of shape {list(c.shape)}")
        return np.ascontiguousarray(np.broadcast_to(c.reshape(-1), (n,)), dtype=np.float32)

    def _op_Gemm(self, node, a, name):
        if int(a.get("transA", 0)):
            raise _Unsupported("Gemm with transA=1")
        alpha, beta = float(a.get("alpha", 1.0)), float(a.get("beta", 1.0))
        if alpha != 1.0:
            raise _Unsupported(f"Gemm with alpha={alpha:g}")
        bmat = self._float(node, self._param(node, 1, "weights"), "weights")
        if bmat.ndim != 2:
            raise _Unsupported(f"Gemm with {bmat.ndim}-D weights")
        w = bmat if int(a.get("transB", 0)) else bmat.T
        c = self._param(node, 2, "bias", optional=True)
        bias = None
        if c is not None:
            if beta != 1.0:
                raise _Unsupported(f"Gemm with beta={beta:g}")
            n = w.shape[0]
            bias = self._vector(node, self._float(node, c, "bias"), n,
                                {(), (1,), (n,), (1, 1), (1, n)}, "bias")
        self._linear(node, name, node.input[0], w, bias)

    def _op_MatMul(self, node, a, name):
        x, y = node.input[0], node.input[1]
        if y in self.consts and x not in self.consts:
            w = self._float(node, self.consts[y], "weights")
            if w.ndim != 2:
                raise _Unsupported(f"MatMul with a {w.ndim}-D constant")
            dims = self._shape(x)
            if dims is not None and len(dims) != 2:
                raise _Unsupported(f"MatMul of a rank-{len(dims)} tensor")
            self._linear(node, name, x, w.T, None)
        elif x in self.consts:
            raise _Unsupported("MatMul with the constant on the left")
        else:
            raise _Unsupported("MatMul of two activations")

    def _op_Add(self, node, a, name):
        x, y = node.input[0], node.input[1]
        cx, cy = x in self.consts, y in self.consts
        if not cx and not cy:
            layer = self._emit(name, "add", [self._src(x, node), self._src(y, node)])
            self._out(node, layer)
            return
        t, c = (y, self.consts[x]) if cx else (x, self.consts[y])
        layer = self.direct.get(t)
        if layer is None or layer["op"] not in ("conv", "linear") or self.uses.get(t, 0) != 1:
            raise _Unsupported("Add of a constant that is not the bias of a Conv/Gemm/MatMul")
        c = self._float(node, c, "constant")
        if layer["op"] == "linear":
            n = layer["out_features"]
            bias = self._vector(node, c, n, {(), (1,), (n,), (1, 1), (1, n)}, "bias")
            has_bias = layer.get("bias", True)
        else:
            n = layer["out_channels"]
            bias = self._vector(node, c, n, {(), (1,), (1, 1, 1), (1, 1, 1, 1), (n, 1, 1),
                                             (1, n, 1, 1)}, "bias")
            has_bias = layer.get("bias", False)
        key = f"{layer['name']}.bias"
        if has_bias:
            self.params[key] = self.params[key] + bias
        else:
            self.params[key] = bias
            if layer["op"] == "linear":
                del layer["bias"]          # linear layers have a bias by default
            else:
                layer["bias"] = True
        self.alias[node.output[0]] = layer["name"]
        self.direct[node.output[0]] = layer

    def _op_BatchNormalization(self, node, a, name):
        eps = float(a.get("epsilon", 1e-5))
        if abs(eps - BN_EPS) > 1e-3 * BN_EPS:
            raise _Unsupported(f"BatchNormalization with epsilon={eps:g} "
                               f"(efgen's batchnorm uses {BN_EPS:g})")
        if int(a.get("training_mode", 0)):
            raise _Unsupported("BatchNormalization in training mode")
        if int(a.get("spatial", 1)) != 1:
            raise _Unsupported("BatchNormalization with spatial=0")
        if any(o and self.uses.get(o) for o in node.output[1:]):
            raise _Unsupported("BatchNormalization with running-statistics outputs")
        names = ("gamma", "beta", "running_mean", "running_var")
        what = ("scale", "bias", "mean", "variance")
        vals = [self._float(node, self._param(node, i + 1, what[i]), what[i]) for i in range(4)]
        c = vals[0].size
        if any(v.ndim != 1 or v.size != c for v in vals):
            raise _Unsupported("BatchNormalization with parameters that are not [C] vectors")
        layer = self._emit(name, "batchnorm", [self._src(node.input[0], node)])
        for n, v in zip(names, vals):
            self.params[f"{layer['name']}.{n}"] = v
        self._out(node, layer)

    def _op_Relu(self, node, a, name):
        self._out(node, self._emit(name, "relu", [self._src(node.input[0], node)]))

    def _pool(self, node, a, name, op: str):
        ks = [int(v) for v in a.get("kernel_shape", [])]
        if len(ks) != 2:
            raise _Unsupported(f"{node.op_type} with a {len(ks)}-D kernel")
        if ks[0] != ks[1]:
            raise _Unsupported(f"{node.op_type} with a non-square {ks[0]}x{ks[1]} kernel")
        k = ks[0]
        s = self._square(node, "strides", a.get("strides", [1, 1]))
        self._no_dilation(node, a)
        p = self._pads(node, a, k, s)
        if int(a.get("ceil_mode", 0)):
            dims = self._shape(node.input[0])
            exact = (dims and len(dims) == 4 and all(isinstance(d, int) for d in dims[2:])
                     and all((d + 2 * p - k) % s == 0 for d in dims[2:]))
            if not exact:   # ceil_mode changes the output size
                raise _Unsupported(f"{node.op_type} with ceil_mode=1")
        if op == "avgpool" and p and int(a.get("count_include_pad", 0)) != 1:
            raise _Unsupported("AveragePool with padding and count_include_pad=0")
        if op == "maxpool" and len(node.output) > 1 and self.uses.get(node.output[1]):
            raise _Unsupported("MaxPool with an Indices output")
        if 2 * p > k:
            raise _Unsupported(f"{node.op_type} with padding more than half the kernel")
        attrs: dict[str, Any] = {"kernel": k}
        if s != k:
            attrs["stride"] = s
        if p:
            attrs["padding"] = p
        self._out(node, self._emit(name, op, [self._src(node.input[0], node)], **attrs))

    def _op_MaxPool(self, node, a, name):
        self._pool(node, a, name, "maxpool")

    def _op_AveragePool(self, node, a, name):
        self._pool(node, a, name, "avgpool")

    def _op_GlobalAveragePool(self, node, a, name):
        self._out(node, self._emit(name, "avgpool", [self._src(node.input[0], node)],
                                   **{"global": True}))

    def _op_Flatten(self, node, a, name):
        axis = int(a.get("axis", 1))
        if axis < 0:
            dims = self._shape(node.input[0])
            if dims is None:
                raise _Unsupported("Flatten with a negative axis on a tensor of unknown rank")
            axis += len(dims)
        if axis != 1:
            raise _Unsupported(f"Flatten with axis={a.get('axis', 1)}")
        self._out(node, self._emit(name, "flatten", [self._src(node.input[0], node)]))

    def _fold(self, t: str, depth: int = 0) -> tuple[list, bool] | None:
        """The value of a small integer tensor computed from shapes, or None.

        Follows Constant/initializer, Shape, Gather, Unsqueeze, Squeeze, Concat, Cast and
        Identity (what exporters emit for ``x.view(x.size(0), -1)``). Returns (values,
        is_scalar); a value is an int or a symbolic dimension name.
        """
        if depth > 64:
            return None
        if t in self.consts:
            a = self.consts[t]
            if not np.issubdtype(a.dtype, np.integer) or a.ndim > 1:
                return None
            return _ints(a), a.ndim == 0
        i = self.producer.get(t)
        if i is None or not _is_default_domain(self.graph.node[i]):
            return None
        node, a = self.graph.node[i], self.node_attrs[i]
        op = node.op_type

        def arg(pos):
            return self._fold(node.input[pos], depth + 1) if pos < len(node.input) else None

        if op == "Shape":
            dims = self._shape(node.input[0])
            if dims is None or any(d is None for d in dims):
                return None
            end = a.get("end")
            return list(dims)[int(a.get("start", 0)):None if end is None else int(end)], False
        if op in ("Cast", "Identity"):
            return arg(0)
        if op == "Gather":
            data, idx = arg(0), arg(1)
            if data is None or idx is None or data[1] or int(a.get("axis", 0)) != 0:
                return None
            n = len(data[0])
            if any(not -n <= k < n for k in idx[0]):
                return None
            return [data[0][k] for k in idx[0]], idx[1]
        if op in ("Unsqueeze", "Squeeze"):
            v = arg(0)
            axes = _ints(a["axes"]) if "axes" in a else (arg(1) or ([0], False))[0]
            if v is None or axes not in ([0], [-1]):
                return None
            if op == "Unsqueeze":
                return (v[0], False) if v[1] else None
            return (v[0], True) if not v[1] and len(v[0]) == 1 else None
        if op == "Concat":
            parts = [arg(k) for k in range(len(node.input))]
            if int(a.get("axis", 0)) not in (0, -1) or any(p is None or p[1] for p in parts):
                return None
            return [v for p in parts for v in p[0]], False
        return None

    def _flattens(self, node, a) -> tuple[bool, str]:
        """Whether a Reshape maps [N, ...] to [N, prod(...)] for every batch size N."""
        dims = self._shape(node.input[0])
        per = (math.prod(dims[1:]) if dims and all(isinstance(d, int) for d in dims[1:])
               else None)
        batch = dims[0] if dims else None
        folded = self._fold(node.input[1]) if len(node.input) > 1 else None
        if folded is None:
            out = self.shapes.get(node.output[0])
            ok = (out is not None and len(out) == 2 and batch is not None and out[0] == batch
                  and per is not None and out[1] == per)
            return ok, "a computed shape" if out is None else str(out)
        s = folded[0]
        text = "[" + ", ".join(str(v) for v in s) + "]"
        if len(s) != 2 or (int(a.get("allowzero", 0)) and 0 in s):
            return False, text
        if s == [0, -1]:
            return True, text
        if dims is None:
            return False, text
        is_batch = s[0] == 0 or (batch is not None and s[0] == batch)
        s1 = dims[1] if s[1] == 0 else s[1]
        if s1 == -1:
            return is_batch, text
        if s[0] == -1:
            return per is not None and s1 == per, text
        return is_batch and per is not None and s1 == per, text

    def _op_Reshape(self, node, a, name):
        ok, target = self._flattens(node, a)
        if not ok:
            raise _Unsupported(f"Reshape to {target} (only [N, C, H, W] -> [N, C*H*W] "
                               f"flattening is supported)")
        self._out(node, self._emit(name, "flatten", [self._src(node.input[0], node)]))

    def _pass(self, node, a, name):
        x, out = node.input[0], node.output[0]
        if x in self.pending:
            self.pending[out] = self.pending[x]
        else:
            self.alias[out] = self._src(x, node)

    _op_Identity = _pass
    _op_Dropout = _pass

    def _op_Slice(self, node, a, name):
        x = node.input[0]
        if "starts" in a:  # Slice-1 (opset < 10): attributes, no steps
            starts, ends = _ints(a["starts"]), _ints(a["ends"])
            axes = _ints(a["axes"]) if "axes" in a else None
            steps = None
        else:
            starts = _ints(self._param(node, 1, "starts"))
            ends = _ints(self._param(node, 2, "ends"))
            ax = self._param(node, 3, "axes", optional=True)
            st = self._param(node, 4, "steps", optional=True)
            axes = _ints(ax) if ax is not None else None
            steps = _ints(st) if st is not None else None
        axes = axes if axes is not None else list(range(len(starts)))
        steps = steps if steps is not None else [1] * len(starts)
        if not len(starts) == len(ends) == len(axes) == len(steps):
            raise _Unsupported(f"Slice with {len(starts)} starts, {len(ends)} ends, "
                               f"{len(axes)} axes and {len(steps)} steps (the ONNX spec "
                               "wants one of each per sliced axis)")
        dims = self._shape(x)
        rank = len(dims) if dims is not None else None
        src, sh, sw, _ = self.pending.get(x, (x, 1, 1, name))
        for ax, st, en, sp in zip(axes, starts, ends, steps):
            if ax < 0:
                if rank is None:
                    raise _Unsupported("Slice with a negative axis on a tensor of unknown rank")
                ax += rank
            if rank is not None and not 0 <= ax < rank:
                raise _Unsupported(f"Slice on axis {ax} of a rank-{rank} tensor")
            d = dims[ax] if dims is not None and isinstance(dims[ax], int) else None
            if sp < 1:
                raise _Unsupported("Slice with a negative step")
            full = ((st == 0 or (d is not None and st <= -d))
                    and (en >= _BIG or (d is not None and en >= d)))
            if not full:
                raise _Unsupported("Slice that crops (only x[:, :, ::S, ::S] is supported)")
            if ax == 2:
                sh *= sp
            elif ax == 3:
                sw *= sp
            elif sp != 1:
                raise _Unsupported(f"Slice with step {sp} on axis {ax}")
        if rank is not None and rank != 4 and (sh, sw) != (1, 1):
            raise _Unsupported(f"Slice of a rank-{rank} tensor")
        if (sh, sw) == (1, 1):
            self._pass(node, a, name)
        else:
            self.pending[node.output[0]] = (src, sh, sw, name)

    def _op_Pad(self, node, a, name):
        x = node.input[0]
        mode = a.get("mode", "constant") or "constant"
        if mode != "constant":
            raise _Unsupported(f"Pad with mode={mode}")
        if "pads" in a:  # Pad-2 (opset < 11): attributes
            pads, value, axes = _ints(a["pads"]), float(a.get("value", 0.0)), None
        else:
            pads = _ints(self._param(node, 1, "pads"))
            cv = self._param(node, 2, "constant value", optional=True)
            value = float(np.asarray(cv).reshape(-1)[0]) if cv is not None and cv.size else 0.0
            ax = self._param(node, 3, "axes", optional=True)
            axes = _ints(ax) if ax is not None else None
        if value != 0.0:
            raise _Unsupported(f"Pad with value {value:g}")
        dims = self._shape(x)
        rank = len(dims) if dims is not None else (len(pads) // 2 if axes is None else None)
        if rank is None:
            raise _Unsupported("Pad of a tensor of unknown rank")
        if axes is not None:
            full = [0] * (2 * rank)
            for i, ax in enumerate(axes):
                full[ax % rank] = pads[i]
                full[ax % rank + rank] = pads[i + len(axes)]
            pads = full
        if len(pads) != 2 * rank or rank != 4:
            raise _Unsupported(f"Pad of a rank-{rank} tensor")
        if any(v < 0 for v in pads):
            raise _Unsupported("Pad with negative pads")
        lo, hi = pads[1], pads[1 + rank]
        if any(v for i, v in enumerate(pads) if i not in (1, 1 + rank)):
            raise _Unsupported("Pad of axes other than channels")
        src, sh, sw, _ = self.pending.get(x, (x, 1, 1, name))
        if sh != sw:
            raise _Unsupported(f"Slice+Pad with unequal steps on H and W ({sh}, {sw})")
        if lo != (lo + hi) // 2:
            raise _Unsupported(f"Pad with uneven channel padding ({lo} before, {hi} after)")
        if lo == hi == 0:
            self._pass(node, a, name)
            return
        c = self._channels(src)
        if c is None:
            raise _Unsupported("Pad of a tensor of unknown shape")
        layer = self._emit(name, "shortcut_a", [self._src(src, node)], out_channels=c + lo + hi,
                           stride=sh)
        self._out(node, layer)

    def _op_Softmax(self, node, a, name):
        raise _Unsupported(f"{node.op_type} before the output")

    _op_LogSoftmax = _op_Softmax

    # ---- driver ---------------------------------------------------------------------------
    def _report(self) -> EfgenError:
        groups: dict[str, list[str]] = {}
        for key, node_name in self.issues:
            names = groups.setdefault(key, [])
            if node_name not in names:
                names.append(node_name)
        parts = []
        for key, names in groups.items():
            shown = ", ".join(names[:_MAX_NAMES])
            if len(names) > _MAX_NAMES:
                shown += f", +{len(names) - _MAX_NAMES} more"
            parts.append(f"{key} ({shown})")
        return EfgenError("unsupported ONNX operators: " + "; ".join(parts), file=self.path,
                          fix="efgen imports " + ", ".join(SUPPORTED_OPS) + "; replace these "
                              "nodes in the source model and export it again")

    def run(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        self.input_name, chw = self._graph_input()
        logits = self._logits_tensor()
        g = self.graph
        for i in self._live_nodes(logits):
            node = g.node[i]
            name = node.name if node.name.strip() else f"{node.op_type}_{i}"
            handler = (getattr(self, f"_op_{node.op_type}", None)
                       if _is_default_domain(node) and node.op_type.isidentifier() else None)
            try:
                if handler is None:
                    raise _Unsupported(_op_key(node))
                handler(node, self.node_attrs[i], name)
            except _Unsupported as exc:
                self.issues.append((exc.key, name))
                for o in node.output:
                    self.alias[o] = None
        try:
            out = self._src(logits, None)
        except _Unsupported:
            out = None
        if self.issues:
            raise self._report()
        if out in (None, INPUT):
            raise self._error("the model computes nothing efgen can train (its output is "
                              "its input or a constant)", fix="import a CNN classifier")
        num_classes = self._num_classes(logits)
        meta = {p.key: p.value for p in self.model.metadata_props}
        self.layers.append({"name": self._unique(meta.get(_META_LOSS) or "loss"),
                            "op": "softmax_ce", "inputs": [out]})
        doc: dict[str, Any] = {"name": meta.get(_META_NAME) or Path(self.path).stem or "net"}
        desc = meta.get(_META_DESC)
        if desc is None:
            prod = " ".join(v for v in (self.model.producer_name,
                                        self.model.producer_version) if v)
            desc = (f"imported from {Path(self.path).name}"
                    + (f" (exported by {prod}, opset {self.opset})" if prod
                       else f" (opset {self.opset})"))
        if desc:
            doc["description"] = desc
        doc.update(input=chw, num_classes=num_classes, layers=self.layers)
        return doc, self.params

    def _num_classes(self, logits: str) -> int:
        dims = self._shape(logits)
        if dims is not None and len(dims) == 2 and isinstance(dims[1], int):
            return int(dims[1])
        layer = self.direct.get(logits)
        if layer is not None and layer["op"] == "linear":
            return int(layer["out_features"])
        raise self._error(f"cannot tell the number of classes: the output has shape {dims}",
                          fix="end the model with a Gemm/MatMul giving [N, classes] logits")


def import_onnx(path: str | Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read an ONNX model: (net document as a dict, parameters ``{"<layer>.<param>": array}``).

    The document is validated with :func:`efgen.frontend.ir.parse_net` and the parameters are
    checked against the resulting net, so both are ready to use.
    """
    from efgen.frontend.weights import check_flat

    model = read_model(path)
    doc, params = _Importer(model, str(path)).run()
    net = parse_net(doc, str(path))
    check_flat(net, params, file=str(path), what="the ONNX initializers",
               fix="the model's weights disagree with its own graph; re-export it")
    return doc, params


def load_onnx_net(path: str | Path) -> Net:
    """The Net of an ONNX model (its weights are ignored)."""
    doc, _ = import_onnx(path)
    return parse_net(doc, str(path))
