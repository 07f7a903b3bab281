"""Yosys cost of the reference RTL's FP32 units, per implementation: the figures stored
in configs/model/coefficients.yaml (``rtl_yosys``: fp32_mul, fp32_add, fp32_add_dsp),
printed as YAML lines to paste, with each unit's logic depth (efgen/rtl/timing.py).

Yosys 0.23 ``synth_xilinx -family xcup -noiopad`` on each unit alone; LUT counts
LUT1..LUT6 and INV (as efgen.rtl.synth.summarize). About a minute on 2 cores.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

UNITS = (("fp32_mul", "synth", "fp32_mul"), ("fp32_add", "synth", "fp32_add"),
         ("fp32_add_dsp", "dsp", "fp32_add"))


def unit_cost(impl: str, top: str) -> dict[str, int]:
    """DSP48E2, LUT, FF of one FP32 unit under Yosys."""
    from efgen.rtl.fpu import fp_units_verilog
    from efgen.rtl.synth import parse_stat, summarize

    with tempfile.TemporaryDirectory() as tmp:
        for name, text in fp_units_verilog(impl).items():
            (Path(tmp) / name).write_text(text)
        script = ("read_verilog fp32_add.v fp32_mul.v fp32_mac.v; "
                  f"synth_xilinx -family xcup -top {top} -noiopad; "
                  "tee -q -o stat.json stat -json")
        subprocess.run(["yosys", "-q", "-p", script], cwd=tmp, check=True,
                       capture_output=True)
        c = summarize(parse_stat((Path(tmp) / "stat.json").read_text()))
    return {"dsp": c["DSP48E2"], "lut": c["LUT"], "ff": c["FF"]}


def main() -> None:
    from efgen.rtl.fpu import fp_units_verilog
    from efgen.rtl.synth import yosys_version
    from efgen.rtl.timing import run_timing

    print(f"# {yosys_version()}, synth_xilinx -family xcup")
    for key, impl, top in UNITS:
        c = unit_cost(impl, top)
        t = run_timing(fp_units_verilog(impl), top, "xcup")
        print(f"  {key}: {{dsp: {c['dsp']}, lut: {c['lut']}, ff: {c['ff']}}}   "
              f"# {t.levels:.1f} LUT levels, {t.fmax_lo:.0f} .. {t.fmax_hi:.0f} MHz")


if __name__ == "__main__":
    main()
