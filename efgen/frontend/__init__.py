"""The front end: what a user hands efgen, parsed and checked.

* :mod:`efgen.frontend.ir` - the net IR (a DAG of layers with inferred shapes and
  per-phase counts), parsed from YAML documents.
* :mod:`efgen.frontend.yamlio` - the strict YAML reader (line numbers in every error).
* :mod:`efgen.frontend.onnx_import`, :mod:`efgen.frontend.onnx_export` - ONNX models.
* :mod:`efgen.frontend.weights` - trained-parameter archives (``.npz``).
* :mod:`efgen.frontend.boards` - the board catalogue.

Nothing here imports the golden model, the cost model or the code generators.
"""

from __future__ import annotations

from efgen.frontend.ir import Net, parse_net, resolve_net_path
from efgen.frontend.yamlio import read_yaml


def load_net(name_or_path: str, train_last: int | None = None) -> Net:
    """A catalogue net by name, or a net file by path: ``.onnx`` (its weights ignored)
    or YAML."""
    path = resolve_net_path(name_or_path)
    if path.suffix.lower() == ".onnx":
        from efgen.frontend.onnx_import import load_onnx_net  # onnx only for .onnx nets

        net = load_onnx_net(path)
    else:
        net = parse_net(read_yaml(path), str(path))
    if train_last is not None:
        net = net.with_train_last(train_last)
    return net


__all__ = ["load_net"]
