"""ONNX export (the ``onnx`` package from PyPI).

:func:`export_onnx` writes any :class:`~efgen.frontend.ir.Net` with a golden ``TrainState`` as
an opset-17 model: input ``input`` [N, C, H, W] (N symbolic), output ``logits`` [N, K],
parameters as initializers named ``"<layer>.<param>"``, one node named after each
layer (a shortcut_a becomes ``Slice`` named ``<layer>/subsample`` plus ``Pad`` named
``<layer>``), so importing an exported net gives back the same layers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from efgen.errors import EfgenError
from efgen.frontend.ir import BN_EPS, BN_MOMENTUM, INPUT, Net
from efgen.frontend.onnx_import import (
    _META_DESC,
    _META_LOSS,
    _META_NAME,
    EXPORT_OPSET,
    _onnx,
    _short,
)


def build_onnx(net: Net, state, opset: int = EXPORT_OPSET):
    """The ONNX ModelProto of ``net`` with the parameters of ``state`` (checked)."""
    onnx = _onnx()
    from onnx import TensorProto, helper, numpy_helper

    from efgen._version import __version__
    from efgen.frontend.weights import check_flat, state_to_flat

    flat = state_to_flat(state)
    check_flat(net, flat, what="the parameters to export", fix="pass the state of this net")

    taken = {"input", "logits"}

    def fresh(base: str) -> str:
        name, k = base, 1
        while name in taken:
            name = f"{base}_{k}"
            k += 1
        taken.add(name)
        return name

    logits_layer = net.loss_layer.inputs[0]
    tensor = {INPUT: "input"}
    for l in net:
        if l.op != "softmax_ce":
            tensor[l.name] = "logits" if l.name == logits_layer else fresh(l.name)
    inits = []

    def const(base: str, value: np.ndarray, dtype=np.float32) -> str:
        name = fresh(base)
        inits.append(numpy_helper.from_array(np.ascontiguousarray(value, dtype=dtype), name))
        return name

    nodes = []
    for l in net:
        if l.op == "softmax_ce":
            continue
        x = [tensor[i] for i in l.inputs]
        y = [tensor[l.name]]
        p = {n: flat[f"{l.name}.{n}"] for n in {**l.param_shapes(), **l.buffer_shapes()}}
        k, s, pd = l.kernel, l.stride, l.padding
        if l.op == "conv":
            ins = x + [const(f"{l.name}.weight", p["weight"])]
            if l.bias:
                ins.append(const(f"{l.name}.bias", p["bias"]))
            nodes.append(helper.make_node("Conv", ins, y, name=l.name, kernel_shape=[k, k],
                                          strides=[s, s], pads=[pd] * 4))
        elif l.op == "linear":
            ins = x + [const(f"{l.name}.weight", p["weight"])]
            if l.bias:
                ins.append(const(f"{l.name}.bias", p["bias"]))
            nodes.append(helper.make_node("Gemm", ins, y, name=l.name, transB=1))
        elif l.op == "batchnorm":
            ins = x + [const(f"{l.name}.{n}", p[n])
                       for n in ("gamma", "beta", "running_mean", "running_var")]
            nodes.append(helper.make_node("BatchNormalization", ins, y, name=l.name,
                                          epsilon=BN_EPS, momentum=1.0 - BN_MOMENTUM))
        elif l.op == "relu":
            nodes.append(helper.make_node("Relu", x, y, name=l.name))
        elif l.op == "maxpool":
            nodes.append(helper.make_node("MaxPool", x, y, name=l.name, kernel_shape=[k, k],
                                          strides=[s, s], pads=[pd] * 4))
        elif l.op == "avgpool" and l.global_pool:
            nodes.append(helper.make_node("GlobalAveragePool", x, y, name=l.name))
        elif l.op == "avgpool":
            nodes.append(helper.make_node("AveragePool", x, y, name=l.name,
                                          kernel_shape=[k, k], strides=[s, s],
                                          pads=[pd] * 4, count_include_pad=1))
        elif l.op == "add":
            nodes.append(helper.make_node("Add", x, y, name=l.name))
        elif l.op == "flatten":
            nodes.append(helper.make_node("Flatten", x, y, name=l.name, axis=1))
        elif l.op == "shortcut_a":
            c_in = l.in_shape[0]
            lo = (l.channels - c_in) // 2
            hi = l.channels - c_in - lo
            src = x[0]
            if s != 1:
                sub = y[0] if lo == hi == 0 else fresh(f"{l.name}/subsample")
                i64 = np.int64
                nodes.append(helper.make_node(
                    "Slice", [src, const(f"{l.name}.starts", [0, 0], i64),
                              const(f"{l.name}.ends", [np.iinfo(i64).max] * 2, i64),
                              const(f"{l.name}.axes", [2, 3], i64),
                              const(f"{l.name}.steps", [s, s], i64)],
                    [sub], name=l.name if lo == hi == 0 else f"{l.name}/subsample"))
                src = sub
            if lo or hi:
                pads = const(f"{l.name}.pads", [0, lo, 0, 0, 0, hi, 0, 0], np.int64)
                nodes.append(helper.make_node("Pad", [src, pads], y, name=l.name,
                                              mode="constant"))
            elif s == 1:  # an identity (shortcut of equal width, stride 1)
                nodes.append(helper.make_node("Identity", x, y, name=l.name))
        else:  # pragma: no cover - the IR admits no other op
            raise AssertionError(l.op)

    c, h, w = net.input_shape
    graph = helper.make_graph(
        nodes, net.name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", c, h, w])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", net.num_classes])],
        initializer=inits, doc_string=net.description or None)
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(graph, opset_imports=opsets, producer_name="efgen",
                              producer_version=__version__,
                              doc_string=f"efgen net '{net.name}'")
    model.ir_version = helper.find_min_ir_version_for(opsets)
    meta = {_META_NAME: net.name, _META_LOSS: net.loss_layer.name}
    if net.description:
        meta[_META_DESC] = net.description
    helper.set_model_props(model, meta)
    onnx.checker.check_model(model, full_check=True)
    return model


def export_onnx(net: Net, state, path: str | Path, opset: int = EXPORT_OPSET):
    """Write ``net`` with the parameters and batchnorm statistics of ``state`` to ``path``."""
    onnx = _onnx()
    model = build_onnx(net, state, opset)
    try:
        onnx.save(model, str(path))
    except (OSError, ValueError) as exc:
        raise EfgenError(f"cannot write the ONNX model ({_short(exc)})", file=str(path),
                         fix="check that the directory exists and is writable") from None
    return model
