"""Model coefficients, read from configs/model/coefficients.yaml (sources are there)."""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

from efgen.frontend.yamlio import read_yaml
from efgen.resources import configs_dir


@lru_cache(maxsize=1)
def coefficients() -> dict[str, Any]:
    return read_yaml(configs_dir() / "model" / "coefficients.yaml")


def word_bits(precision: str) -> int:
    return int(coefficients()["precisions"][precision]["bits"])


def acc_bits(precision: str) -> int:
    """Accumulator width: partial sums and gradients are 32-bit for every precision."""
    return max(32, word_bits(precision))


def mac_cost(dsp_type: str, precision: str) -> dict[str, float]:
    return dict(coefficients()["mac"][dsp_type][precision])


def bram18_units(width_bits: int, depth: int, tdp: bool = False) -> int:
    """RAMB18s for one bank of ``depth`` words of ``width_bits``: the best aspect ratio.

    Each RAMB18 mode (width x depth, UG573) is tried; a bank spans ceil(width/w_mode)
    columns of ceil(depth/d_mode) blocks. ``tdp``: true dual port (both ports read, as P
    pixel lanes read the IFM), where a port is at most 18 bits wide (UG573: the 36-bit
    mode is simple dual port only), so a 32-bit bank takes two RAMB18s at any depth up
    to 1024 words.
    """
    if depth <= 0:
        return 0
    return min(math.ceil(width_bits / w) * math.ceil(depth / d)
               for w, d in coefficients()["bram18_modes"] if not tdp or w <= 18)


def uram_units(width_bits: int, depth: int) -> int:
    u = coefficients()["uram288"]
    return math.ceil(width_bits / u["width"]) * math.ceil(depth / u["depth"])


def fmax_mhz(family: str) -> float:
    """Highest PL clock efgen accepts on a device family (an estimate; see the YAML)."""
    return float(coefficients()["fmax_mhz"][family])
