"""Flush-to-zero float32 arithmetic: the oracle of the synthesizable RTL FP units.

FPGA floating-point cores (Xilinx Floating-Point IP in its default configuration, and
efgen's ``impl="synth"`` units in templates/rtl) flush subnormals: a subnormal input is
read as a zero of the same sign, and a result that IEEE-754 would round to a subnormal
is written as a zero of its sign. Both are modelled here exactly as::

    flush(flush(a) <op> flush(b))

with numpy's correctly rounded float32 ``<op>`` in the middle, so the rounding decision
is the IEEE one (on the subnormal grid): a product in [2^-126 - 2^-150, 2^-126) rounds
up to the smallest normal and survives the flush. NaN results are NaN (the RTL emits
the one quiet NaN 0x7fc00000; compare NaN-ness, not payloads).

How the golden training step will use it: the golden model keeps computing with numpy
ops (gradual underflow), and gains an ``ftz`` option for designs built with the
synthesizable units. With it, every multiply and every add of the engine's dataflow
goes through :func:`mul_ftz` / :func:`add_ftz` (or :func:`mac_ftz`) in the engine's
accumulation order, so that an RTL simulation with ``impl="synth"`` can be compared bit
for bit, and the ``impl="behav"`` simulation against the plain golden.
"""

from __future__ import annotations

import numpy as np

from efgen.golden.ops import flush_subnormals

__all__ = ["add_ftz", "mul_ftz", "mac_ftz", "div_ftz", "sqrt_ftz"]


def _operands(*xs) -> list[np.ndarray]:
    arrs = [np.asarray(x) for x in xs]
    dts = {a.dtype for a in arrs}
    if len(dts) != 1:
        raise TypeError(f"mixed dtypes {sorted(str(d) for d in dts)}: cast explicitly")
    if not np.issubdtype(arrs[0].dtype, np.floating):
        raise TypeError(f"expected a floating dtype, got {arrs[0].dtype}")
    return [flush_subnormals(a) for a in arrs]


def add_ftz(a, b) -> np.ndarray:
    """``a + b`` with subnormal inputs and result flushed to zero (sign kept)."""
    fa, fb = _operands(a, b)
    with np.errstate(over="ignore", invalid="ignore"):
        return flush_subnormals(fa + fb)


def mul_ftz(a, b) -> np.ndarray:
    """``a * b`` with subnormal inputs and result flushed to zero (sign kept)."""
    fa, fb = _operands(a, b)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        return flush_subnormals(fa * fb)


def mac_ftz(a, b, c) -> np.ndarray:
    """``a * b + c``, not fused: the flushed product is rounded, then added to ``c``."""
    return add_ftz(mul_ftz(a, b), c)


def div_ftz(a, b) -> np.ndarray:
    """``a / b`` with subnormal inputs and result flushed to zero (sign kept)."""
    fa, fb = _operands(a, b)
    with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        return flush_subnormals(fa / fb)


def sqrt_ftz(a) -> np.ndarray:
    """``sqrt(a)`` with a subnormal input flushed to zero (sign kept: sqrt(-0) = -0)."""
    (fa,) = _operands(a)
    with np.errstate(invalid="ignore"):
        return flush_subnormals(np.sqrt(fa))
