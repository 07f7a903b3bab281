"""FP32 arithmetic units of the reference RTL: ``fp32_add``, ``fp32_mul``, ``fp32_mac``.

Three implementations share module names, ports and latency, so one choice switches a
whole design (:func:`fp_units_verilog` ``impl``):

``"synth"``
    Synthesizable Verilog-2001: IEEE-754 binary32, round to nearest even, subnormal
    inputs and results flushed to zero of the same sign (as FPGA FP cores do), inf and
    NaN handled, overflow to inf. Bit-exact against :func:`efgen.golden.ftz.add_ftz` /
    :func:`~efgen.golden.ftz.mul_ftz`.
``"dsp"``
    As ``"synth"`` (same stages, same results bit for bit), but ``fp32_add`` does its two
    barrel shifts as multiplications by a power of two, each in one DSP48E2: the
    alignment right shift (a 2:1 pre-shift by 16 in fabric, then 26 x 16 bits) and the
    normalisation left shift (the same split). The adder then takes 2 DSP48E2 - as many
    as Xilinx's "full DSP" Floating-Point adder - and far fewer LUTs; the add/subtract,
    leading-zero count and rounding stay in fabric. Measured with Yosys in
    :data:`efgen.rtl.unitcost.UNIT_COSTS`.
``"behav"``
    Simulation only: ``real`` (double) arithmetic with hand-written float32<->double
    conversions, rounded once to float32 with gradual underflow. Bit-exact against
    numpy float32, subnormals included.

NaN: both implementations output one canonical quiet NaN, :data:`QNAN` (0x7fc00000),
for NaN inputs, inf - inf and 0 * inf; numpy propagates payloads, so tests compare
NaN-ness, and check that the RTL's NaN is exactly :data:`QNAN`.

Why hand-written Verilog rather than ``pyrtl.rtllib.float`` (1.0.3): its output is a
flat, unpipelined netlist of ``tmp`` wires; its adder gets some cancellations and
subtraction ties wrong (1 - (1 - 2^-24) gives -1, 2 - 2^-24 rounds to 0x3fffffff); its
multiplier flushes before rounding (products in [2^-126 - 2^-150, 2^-126) become 0, not
the smallest normal); its NaN sign varies. yosys ``synth_xilinx -family xcup`` maps an
add + mul pair here to 2 DSP48E2 and about 730 LUT (tests/test_rtl_fp.py).

Ports: ``clk``, ``rst`` (synchronous, active high, clears the valid pipeline only),
``in_valid``, ``a``, ``b`` (and ``c`` for the MAC), ``out_valid``, ``y``. The units are
fully pipelined, one operation per cycle, no back-pressure.
"""

from __future__ import annotations

import jinja2

from efgen._version import __version__
from efgen.resources import data_dir

IMPLS = ("synth", "behav", "dsp")
# Synthesizable implementations: both flush subnormals (efgen.golden.ftz is their oracle).
FTZ_IMPLS = ("synth", "dsp")
QNAN = 0x7FC00000

# Pipeline depth in clock cycles: the rising edge that samples in_valid=1 is followed,
# LATENCY rising edges later, by the one that presents y with out_valid=1. Both
# implementations use the same numbers; the engine's cycle model reads them from here.
ADD_LATENCY = 5   # classify/order, align (+add: dsp), add+lzc (lzc: dsp), normalise, round/pack
MUL_LATENCY = 4   # classify/exponent, 24x24 multiply, normalise, round/pack
#: fp32_div / fp32_sqrt (not pipelined, in_ready): set-up, 25 result bits one a cycle,
#: round/pack, and two cycles to the output (templates/rtl/fp32_div.v.j2, fp32_sqrt.v.j2)
DIV_LATENCY = 28
SQRT_LATENCY = 28
LATENCY = {
    "fp32_add": ADD_LATENCY,
    "fp32_mul": MUL_LATENCY,
    "fp32_mac": MUL_LATENCY + ADD_LATENCY,   # not fused: mul, then add
}

_TITLES = {
    "fp32_add": "y = a + b, IEEE-754 binary32, round to nearest even.",
    "fp32_mul": "y = a * b, IEEE-754 binary32, round to nearest even.",
    "fp32_mac": "y = a * b + c (fp32_mul then fp32_add, two roundings).",
}
_IMPL_NOTES = {
    "synth": "synthesizable; subnormal inputs and results flushed to zero",
    "behav": "simulation only, real arithmetic; numpy float32 bit for bit",
    "dsp": "synthesizable, as synth; fp32_add aligns and normalises in two DSP48E2",
}


def _env() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(data_dir("templates") / "rtl")),
                              undefined=jinja2.StrictUndefined, trim_blocks=True,
                              lstrip_blocks=True, keep_trailing_newline=True,
                              autoescape=False)


def fp_units_verilog(impl: str) -> dict[str, str]:
    """File name -> Verilog text of the FP32 units in implementation ``impl``.

    ``impl`` is ``"synth"`` or ``"behav"``. Deterministic: same ``impl`` and efgen
    version, same bytes. ``fp32_mac.v`` instantiates the other two, so a design that
    uses it needs all three files.
    """
    if impl not in IMPLS:
        raise ValueError(f"unknown FP implementation {impl!r}: expected one of {IMPLS}")
    env = _env()
    files = {}
    for module in sorted(LATENCY):
        ctx = {
            "version": __version__,
            "module": module,
            "title": _TITLES[module],
            "impl": impl,
            "impl_note": _IMPL_NOTES[impl],
            "latency": LATENCY[module],
            "mul_latency": MUL_LATENCY,
            "add_latency": ADD_LATENCY,
        }
        files[f"{module}.v"] = env.get_template(f"{module}.v.j2").render(**ctx, seed_port=False,
                                                                        parallel_align=False)
    return files


def fp_divsqrt_verilog() -> dict[str, str]:
    """``fp32_div.v`` and ``fp32_sqrt.v``: iterative (one result bit a cycle, not
    pipelined), synthesizable, FTZ as the ``synth`` units: bit-exact against
    :func:`efgen.golden.ftz.div_ftz` / :func:`~efgen.golden.ftz.sqrt_ftz` in every impl
    (the BN finalisation's few divisions and square roots per channel)."""
    files = {}
    for module, lat, title in (("fp32_div", DIV_LATENCY, "y = a / b, IEEE-754 binary32, round to nearest even."),
                               ("fp32_sqrt", SQRT_LATENCY, "y = sqrt(a), IEEE-754 binary32, round to nearest even.")):
        ctx = {"version": __version__, "module": module, "title": title, "impl": "synth",
               "impl_note": _IMPL_NOTES["synth"], "latency": lat}
        files[f"{module}.v"] = _env().get_template(f"{module}.v.j2").render(**ctx)
    return files


def fp_add_fb_verilog(impl: str) -> dict[str, str]:
    """``fp32_add_fb.v``: ``fp32_add`` (same ports, latency and results) whose stage 1
    forms the alignment operands for both operand orders in parallel with the magnitude
    compare (impl ``dsp``; 65 Yosys LUTs more, the other impls are unchanged). For an
    adder whose input comes through logic, as sgd_wb's gradient adder with its -0 seed:
    with ``fp32_add``'s smaller stage 1 that mux and the compare in series were sgd_wb's
    deepest path (issue 14)."""
    if impl not in IMPLS:
        raise ValueError(f"unknown FP implementation {impl!r}: expected one of {IMPLS}")
    ctx = {"version": __version__, "module": "fp32_add_fb", "title": _TITLES["fp32_add"],
           "impl": impl, "impl_note": _IMPL_NOTES[impl], "latency": ADD_LATENCY,
           "mul_latency": MUL_LATENCY, "add_latency": ADD_LATENCY, "parallel_align": True,
           "seed_port": True}
    return {"fp32_add_fb.v": _env().get_template("fp32_add.v.j2").render(**ctx)}
