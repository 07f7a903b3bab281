"""Golden training states from trained parameters: weight archives and ONNX models.

The front end (:mod:`efgen.frontend.weights`, :mod:`efgen.frontend.onnx_import`) reads
and checks the parameters as a flat ``{"<layer>.<param>": array}`` dict; this module
builds the golden model's :class:`~efgen.golden.model.TrainState` from it (SGD velocity
starts at zero).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from efgen.errors import EfgenError
from efgen.frontend.ir import Net, parse_net
from efgen.frontend.onnx_import import import_onnx
from efgen.frontend.weights import check_flat, read_weights
from efgen.golden.model import TrainState


def state_from_flat(net: Net, flat: dict[str, np.ndarray], *, file: str | None = None,
                    what: str = "weights", dtype=np.float32) -> TrainState:
    """Build a TrainState (velocity zero for trainable parameters) from a flat dict."""
    check_flat(net, flat, file=file, what=what)
    params: dict[str, dict[str, np.ndarray]] = {}
    buffers: dict[str, dict[str, np.ndarray]] = {}
    for l in net:
        p = {n: np.array(flat[f"{l.name}.{n}"], dtype=dtype) for n in l.param_shapes()}
        if p:
            params[l.name] = p
        b = {n: np.array(flat[f"{l.name}.{n}"], dtype=dtype) for n in l.buffer_shapes()}
        if b:
            buffers[l.name] = b
    velocity = {l.name: {n: np.zeros_like(a) for n, a in params[l.name].items()}
                for l in net if l.trainable and l.name in params}
    return TrainState(params, buffers, velocity)


def load_weights(net: Net, path: str | Path, dtype=np.float32) -> TrainState:
    """A TrainState for ``net`` from the npz at ``path`` (velocity zero), validated."""
    flat = read_weights(path)
    for key, a in flat.items():
        if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
            raise EfgenError(f"'{key}' holds {a.dtype} values, not numbers", file=str(path),
                             fix="store float arrays")
    return state_from_flat(net, flat, file=str(path), dtype=dtype)


def load_onnx(path: str | Path, dtype=np.float32, train_last: int | None = None):
    """(Net, TrainState) of an ONNX model, with its own trained weights."""
    doc, params = import_onnx(path)
    net = parse_net(doc, str(path))
    if train_last is not None:
        net = net.with_train_last(train_last)
    return net, state_from_flat(net, params, file=str(path), dtype=dtype)
