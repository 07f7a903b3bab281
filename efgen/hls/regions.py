"""The pieces of an accelerator program (:mod:`efgen.hls.program`): regions of the DRAM
image, the golden-trace tensors they hold, and the steps (descriptors) of a training step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from efgen.hls.desc import EfgenDesc


@dataclass(frozen=True)
class Trace:
    """A golden-trace tensor held (wholly or in part) by a region."""

    key: str
    shape: tuple[int, ...]
    start: int = 0        # vectors: first word of the slice


@dataclass
class Region:
    name: str
    kind: str                      # "fm", "weight" or "vec"
    shape: tuple[int, ...]         # fm (B, C, H, W); weight (M, N, K, K); vec (n,)
    offset: int = 0
    words: int = 0
    traces: list[Trace] = field(default_factory=list)
    init: str | None = None        # what Python writes before the step ("input", "param:...")


@dataclass
class Step:
    """One kernel call: a descriptor and a readable note (layer, phase)."""

    layer: str
    what: str
    desc: EfgenDesc
    # SLU (efgen.hls.slu): the gated block whose branch this step belongs to; the host
    # runs it on that block's running images only (batch = their count). -1: every image.
    block: int = -1


def _fm4(shape: tuple[int, ...], batch: int) -> tuple[int, int, int, int]:
    if len(shape) == 1:
        return (batch, shape[0], 1, 1)
    return (batch, *shape)
