"""Board clocks from the timing estimate: speed grade, PS clock generation, the default.

A board file's ``clock_mhz`` is :func:`default_clock_mhz` of the recorded estimate
(configs/model/coefficients.yaml ``clock_estimate``, measured with
``efgen synth --timing`` / benchmarks/bench_clock.py on the reference RTL):

1. the pessimistic end of the estimate's range for the family (every cell at its slow
   figure, efgen/rtl/timing.py), for the largest array the estimate covers;
2. scaled to the part's speed grade by the ratio of DS925's DSP48 FMAX "with all
   registers used" (Zynq UltraScale+: -3 891, -2 775, -1 645 MHz at 0.85 V; -2 644 and
   -1 600 MHz at 0.72 V): efgen's UltraScale+ delays are -2 (0.85 V) figures;
3. rounded down to a clock the PS can generate: a PL clock is a PS PLL divided by two
   6-bit dividers (UG1085 for Zynq UltraScale+, UG585 for Zynq-7000); efgen assumes the
   IOPLL at 1500 MHz (Zynq UltraScale+) and 1000 MHz (Zynq-7000), so the clocks are
   PLL / n for n = d0 * d1, 1 <= d0, d1 <= 63.

The margin is the whole width of the range: the default sits at or below its slow end.
``--clock`` overrides the default; ``--clock 100`` is the EF-Train comparison.
"""

from __future__ import annotations

import re
from functools import lru_cache

from efgen.model.coeffs import coefficients

# DS925 (Zynq UltraScale+ MPSoC data sheet), DSP48 switching characteristics, FMAX with
# all registers used, MHz: grade (and VCCINT) -> figure.
DS925_DSP_FMAX = {"-3": 891.0, "-2": 775.0, "-1": 645.0, "-2L": 644.0, "-1L": 600.0}
PS_PLL_MHZ = {"zynq-ultrascale+": 1500.0, "zynq-7000": 1000.0}
FAMILY_OF = {"zynq-ultrascale+": "xcup", "zynq-7000": "xc7"}


def speed_grade(part: str) -> str:
    """``"-2"`` from ``xczu9eg-ffvb1156-2-e``, ``"-1"`` from ``xc7z020clg400-1``, ``"-2L"``
    from ``xck26-sfvc784-2LV-c`` (the 0.72 V low-voltage grades)."""
    m = re.search(r"-(\d)(l[vi]?)?(-[a-z])?$", part.lower())
    if not m:
        raise ValueError(f"part {part!r}: no speed grade (expected ...-<grade>-<temp>)")
    return f"-{m.group(1)}" + ("L" if m.group(2) else "")


def grade_scale(family: str, part: str) -> float:
    """Factor on efgen's delays for ``part``'s speed grade (1.0 for the grade they are
    for: -2 UltraScale+, -1 Zynq-7000)."""
    g = speed_grade(part)
    if family == "zynq-ultrascale+":
        if g not in DS925_DSP_FMAX:
            raise ValueError(f"part {part!r}: speed grade {g} not in DS925's table")
        return DS925_DSP_FMAX["-2"] / DS925_DSP_FMAX[g]
    if g != "-1":
        raise ValueError(f"part {part!r}: efgen's 7-series delays are for -1 parts only")
    return 1.0


@lru_cache(maxsize=None)
def ps_clocks(family: str) -> tuple[float, ...]:
    """Every PL clock the PS can make from its IOPLL, MHz, descending."""
    pll = PS_PLL_MHZ[family]
    ns = {a * b for a in range(1, 64) for b in range(1, 64)}
    return tuple(sorted({pll / n for n in ns}, reverse=True))


def ps_clock_at_most(f_mhz: float, family: str) -> float:
    """The fastest PS-generable clock not above ``f_mhz``, rounded to 0.1 MHz."""
    for c in ps_clocks(family):
        if c <= f_mhz + 1e-9:
            return round(c, 1)
    raise ValueError(f"no PS clock at or below {f_mhz} MHz")


def estimate(family: str) -> dict:
    """The recorded estimate for a board family (configs/model/coefficients.yaml)."""
    return dict(coefficients()["clock_estimate"][FAMILY_OF[family]])


def default_clock_mhz(family: str, part: str) -> float:
    """The board default efgen derives for ``part``: see the module docstring."""
    est = estimate(family)
    return ps_clock_at_most(float(est["fmax_mhz_lo"]) / grade_scale(family, part), family)


_FAMILY_TEXT = {"zynq-ultrascale+": ("UltraScale+ -2", "IOPLL"),
                "zynq-7000": ("7-series -1", "IO PLL")}
_GRADE_TEXT = {"-2L": "-2LV (0.72 V)", "-1L": "-1LV (0.72 V)"}


def clock_basis(family: str, part: str) -> str:
    """The ``clock_basis`` text of a board file whose ``clock_mhz`` is
    :func:`default_clock_mhz` (the estimate, the grade scaling, the PS rounding)."""
    est = estimate(family)
    lo, hi = float(est["fmax_mhz_lo"]), float(est["fmax_mhz_hi"])
    fam, pll = _FAMILY_TEXT[family]
    g = speed_grade(part)
    scale = grade_scale(family, part)
    grade = f"speed grade {_GRADE_TEXT.get(g, g)}"
    if scale != 1.0:
        grade += f": x {DS925_DSP_FMAX['-2']:g}/{DS925_DSP_FMAX[g]:g}"
    return (f"efgen synth --timing estimate {lo:g}..{hi:g} MHz ({fam}, arrays up to "
            f"{est['array']}, FP32 units dsp); {grade}; default = the fastest PS clock "
            f"({pll} {PS_PLL_MHZ[family]:g} MHz / n) at or below the slow end "
            f"{lo / scale:.0f} MHz; configs/model/coefficients.yaml clock_estimate")
