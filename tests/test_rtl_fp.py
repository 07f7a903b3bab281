"""FP32 units of the reference RTL (efgen.rtl.fpu): generation, lint, cocotb simulation
on Verilator and Icarus for both implementations, and a yosys synth_xilinx smoke run.

The simulations stream 100,000 operand triples (edge-case pairs first, then
constructed ties, overflow, underflow, cancellation, subnormals and random operands)
through fp32_add, fp32_mul and fp32_mac, one per clock, and compare bit for bit:
``synth`` and ``dsp`` against efgen.golden.ftz, ``behav`` against numpy float32.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from efgen.golden.ftz import add_ftz, mac_ftz, mul_ftz
from efgen.rtl.fpu import FTZ_IMPLS, IMPLS, LATENCY, QNAN, fp_units_verilog

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:          # sim/ is a folder of the checkout, not installed
    sys.path.insert(0, str(ROOT))

from sim.fp import fp_vectors  # noqa: E402

FP_TB = ROOT / "sim" / "fp"
N_VECTORS = 100_000
SIMS = ("verilator", "icarus")
TOOLS = {"verilator": "verilator", "icarus": "iverilog", "yosys": "yosys"}


def needs(tool: str):
    """The open tools are project requirements (.ci/run installs them): a missing one is
    a failure with the install command, never a silent skip."""
    def check(fn):
        import functools

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            if shutil.which(TOOLS[tool]) is None:
                pytest.fail(f"{TOOLS[tool]} not installed: apt-get install {tool}")
            return fn(*args, **kwargs)
        return wrapper
    return check


def f32(*bits: int) -> np.ndarray:
    return np.array(bits, dtype=np.uint32).view(np.float32)


def bits(x) -> list[int]:
    return np.asarray(x, dtype=np.float32).reshape(-1).view(np.uint32).tolist()


# ------------------------------------------------------------------- generation

@pytest.mark.parametrize("impl", IMPLS)
def test_fp_units_verilog_is_deterministic_and_complete(impl):
    files = fp_units_verilog(impl)
    assert files == fp_units_verilog(impl)
    assert sorted(files) == ["fp32_add.v", "fp32_mac.v", "fp32_mul.v"]
    for name, text in files.items():
        module = name[:-2]
        assert re.findall(r"^module (\w+)", text, re.M) == [module]
        assert f"localparam integer LATENCY     = {LATENCY[module]};" in text \
            or f"localparam integer LATENCY = {LATENCY[module]};" in text
        assert f"Implementation: {impl} " in text
        assert text.isascii() and text.endswith("endmodule\n\n`default_nettype wire\n")
        assert f"32'h{QNAN:08x}" in text                     # the one NaN, documented
    synthesizable = "real" not in re.sub(r"//.*", "", files["fp32_add.v"])
    assert synthesizable == (impl in FTZ_IMPLS)


def test_unknown_impl_is_refused():
    with pytest.raises(ValueError, match="synth"):
        fp_units_verilog("fast")


def test_mac_latency_is_mul_then_add():
    assert LATENCY["fp32_mac"] == LATENCY["fp32_mul"] + LATENCY["fp32_add"]


# ------------------------------------------------------------------- FTZ oracle

def test_ftz_oracle_flushes_inputs_and_results_keeping_signs():
    min_sub, max_sub, min_norm = 0x00000001, 0x007FFFFF, 0x00800000
    assert bits(add_ftz(f32(min_sub), f32(min_norm))) == [min_norm]
    assert bits(add_ftz(f32(0x80000001), f32(0x00000000))) == [0x00000000]   # -0 + +0
    assert bits(add_ftz(f32(0x80000001), f32(0x80000000))) == [0x80000000]   # -0 + -0
    assert bits(add_ftz(f32(0x00800001), f32(0x80800000))) == [0x00000000]   # 2^-149 flushed
    assert bits(mul_ftz(f32(max_sub), f32(0x40000000))) == [0x00000000]      # input flushed
    assert bits(mul_ftz(f32(0xBF000000), f32(min_norm))) == [0x80000000]     # result flushed
    # IEEE rounds 2^-126 - 2^-150 (a tie) up to the smallest normal, which survives.
    assert bits(mul_ftz(f32(0x3F7FFFFF), f32(min_norm))) == [min_norm]
    assert bits(mul_ftz(f32(0x3F7FFFFE), f32(min_norm))) == [0x00000000]
    assert np.isnan(mul_ftz(f32(min_sub), f32(0x7F800000))).all()          # 0 * inf
    assert np.isnan(add_ftz(f32(0x7F800000), f32(0xFF800000))).all()
    assert bits(mac_ftz(f32(0x40000000), f32(0x40400000), f32(0x3F800000))) == [0x40E00000]


def test_ftz_oracle_refuses_mixed_dtypes():
    with pytest.raises(TypeError, match="mixed"):
        add_ftz(np.float32(1), np.float64(1))


# ------------------------------------------------------------------- vectors

def test_vectors_cover_the_edge_cases():
    a, b, c = fp_vectors.vectors(N_VECTORS)
    assert len(a) == len(b) == len(c) == N_VECTORS
    e = fp_vectors.edge_values()
    assert np.array_equal(a[:len(e) ** 2], np.repeat(e, len(e)))
    got = fp_vectors.coverage(a, b)
    print(json.dumps(got, indent=1))
    floor = {"inf_minus_inf": 2, "zero_times_inf": 8, "zero_operand": 100,
             "mul_min_normal_corner": 100, "add_overflow": 100}
    for k, v in got.items():
        assert v >= floor.get(k, 500), (k, v)
    again = fp_vectors.vectors(N_VECTORS)
    assert all(np.array_equal(x, y) for x, y in zip((a, b, c), again))


# ------------------------------------------------------------------- lint

@needs("verilator")
@pytest.mark.parametrize("impl", IMPLS)
def test_verilator_lint_clean(impl, tmp_path):
    for name, text in fp_units_verilog(impl).items():
        (tmp_path / name).write_text(text)
    r = subprocess.run(["verilator", "--lint-only", "-Wall", "--top-module", "fp32_mac",
                        "fp32_mac.v", "fp32_mul.v", "fp32_add.v"],
                       cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0 and not r.stderr, r.stderr


@needs("icarus")
@pytest.mark.parametrize("impl", IMPLS)
def test_icarus_accepts_verilog_2005(impl, tmp_path):
    for name, text in fp_units_verilog(impl).items():
        (tmp_path / name).write_text(text)
    r = subprocess.run(["iverilog", "-g2005", "-Wall", "-s", "fp32_mac", "-o", "mac.vvp",
                        "fp32_mac.v", "fp32_mul.v", "fp32_add.v"],
                       cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0 and not r.stderr, r.stderr


# ------------------------------------------------------------------- simulation

@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("sim", SIMS)
def test_fp_units_cocotb(sim, impl, tmp_path_factory):
    if shutil.which(TOOLS[sim]) is None:
        pytest.fail(f"{TOOLS[sim]} not installed: apt-get install {sim}")
    from efgen.cosim.runner import read_sources, run_cocotb

    sources = {**fp_units_verilog(impl), **read_sources(FP_TB / "fp32_units_tb.v")}
    run_cocotb(sim, toplevel="fp32_units_tb", sources=sources, test_module="test_fp_units",
               tb_dir=FP_TB, build_root=tmp_path_factory.getbasetemp() / "build" / "sim",
               extra_env={"EFGEN_FP_IMPL": impl, "EFGEN_FP_VECTORS": str(N_VECTORS),
                          "EFGEN_FP_SEED": "1"})


@needs("icarus")
def test_fp_units_cocotb_catches_a_rounding_bug(tmp_path_factory):
    """The testbench is not vacuous: round-half-up instead of half-even must fail."""
    from efgen.cosim.runner import read_sources, run_cocotb

    sources = {**fp_units_verilog("synth"), **read_sources(FP_TB / "fp32_units_tb.v")}
    rne = "s4_norm[2] & (|s4_norm[1:0] | s4_norm[3])"
    assert rne in sources["fp32_add.v"]
    sources["fp32_add.v"] = sources["fp32_add.v"].replace(rne, "s4_norm[2]")
    with pytest.raises(AssertionError, match=r"add #\d+: a=00800000 b=00800001"):
        run_cocotb("icarus", toplevel="fp32_units_tb", sources=sources,
                   test_module="test_fp_units",
                   tb_dir=FP_TB, build_root=tmp_path_factory.getbasetemp() / "build" / "sim",
                   extra_env={"EFGEN_FP_IMPL": "synth", "EFGEN_FP_VECTORS": "4000"})


# ------------------------------------------------------------------- synthesis

@needs("yosys")
def test_yosys_synth_xilinx_ultrascale(tmp_path):
    """An add + mul pair maps its 24x24 significand product onto two DSP48E2."""
    for name, text in fp_units_verilog("synth").items():
        (tmp_path / name).write_text(text)
    script = ("read_verilog fp32_add.v fp32_mul.v fp32_mac.v; "
              "synth_xilinx -family xcup -top fp32_mac -noiopad; "
              "tee -q -o stat.json stat -json")
    r = subprocess.run(["yosys", "-q", "-p", script], cwd=tmp_path,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    cells = json.loads((tmp_path / "stat.json").read_text())["design"]["num_cells_by_type"]
    luts = sum(v for k, v in cells.items() if re.fullmatch(r"LUT\d", k))
    ffs = sum(v for k, v in cells.items() if re.fullmatch(r"FD[A-Z]+", k))
    print(f"fp32_mac (synth) on xcup: {cells.get('DSP48E2', 0)} DSP48E2, {luts} LUT, "
          f"{ffs} FF, {cells.get('SRL16E', 0)} SRL16E")
    assert cells.get("DSP48E2", 0) == 2
    assert 0 < luts < 2000


@needs("yosys")
def test_yosys_unit_costs_are_the_stored_ones():
    """impl "dsp": the adder's alignment/add and normalisation shift go to two DSP48E2 (as
    Xilinx's full-DSP adder) and it takes at least a fifth fewer LUTs than impl synth;
    the per-unit costs the RTL-flow model uses (coefficients.yaml rtl_yosys) are exactly
    what Yosys measures now (benchmarks/bench_rtl_units.py prints them)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_rtl_units import UNITS, unit_cost

    from efgen.model.coeffs import coefficients

    stored = coefficients()["rtl_yosys"]
    got = {key: unit_cost(impl, top) for key, impl, top in UNITS}
    print(got)
    for key, _impl, _top in UNITS:
        assert got[key] == {k: stored[key][k] for k in ("dsp", "lut", "ff")}, key
    assert got["fp32_add"]["dsp"] == 0 and got["fp32_add_dsp"]["dsp"] == 2
    assert got["fp32_add_dsp"]["lut"] < 0.8 * got["fp32_add"]["lut"]


def test_dsp_adder_differs_from_synth_only_in_the_shifts():
    """Same stages and rounding: the two adders share stage 5 (round, pack) verbatim,
    and fp32_mul/fp32_mac are the synth ones."""
    syn, dsp = fp_units_verilog("synth"), fp_units_verilog("dsp")
    for name in ("fp32_mul.v", "fp32_mac.v"):
        strip = lambda t: re.sub(r"^// Implementation: .*\n", "", t, flags=re.M)  # noqa: E731
        assert strip(syn[name]) == strip(dsp[name])
    stage5 = lambda t: t[t.index("// ----------------------------------------"  # noqa: E731
                             "------------------------------------ stage 5"):]
    assert stage5(syn["fp32_add.v"]) == stage5(dsp["fp32_add.v"])
    assert "$signed(s1_al_f)" in dsp["fp32_add.v"] and "*" not in re.sub(
        r"//.*|/\*.*?\*/", "", syn["fp32_add.v"])
