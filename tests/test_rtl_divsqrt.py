"""fp32_div and fp32_sqrt (efgen.rtl.fpu.fp_divsqrt_verilog), the iterative units of the
BN finalisation: lint, then a plain Verilog testbench on Icarus streams corner cases
(zeros, subnormals, infinities, NaNs, the largest and smallest normals, results that
round up to 2^-126 or overflow, exact and near-tie quotients and roots) and random
operands through each unit one operation at a time and compares every result bit for
bit with efgen.golden.ftz.div_ftz / sqrt_ftz (NaN: the RTL's one quiet NaN), and the
result's cycle with the stated latency.
"""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from efgen.golden.ftz import div_ftz, sqrt_ftz
from efgen.rtl.fpu import DIV_LATENCY, QNAN, SQRT_LATENCY, fp_divsqrt_verilog

N_RANDOM = 3000

TB = """`timescale 1ns / 1ps
`default_nettype none
module tb;
reg clk = 0, rst = 1, in_valid = 0;
reg [31:0] a, b;
wire in_ready, out_valid;
wire [31:0] y;
reg [63:0] vec [0:{n}];
integer i, f, t0;
always #5 clk = ~clk;
{inst}
initial begin
    $readmemh("{vecs}", vec);
    f = $fopen("{out}", "w");
    @(posedge clk); #1 rst = 0;
    for (i = 0; i < {n}; i = i + 1) begin
        while (!in_ready) @(posedge clk);
        #1 a = vec[i][63:32]; b = vec[i][31:0]; in_valid = 1;
        @(posedge clk); t0 = $time;
        #1 in_valid = 0;
        while (!out_valid) @(posedge clk);
        $fdisplay(f, "%h %0d", y, ($time - t0) / 10);
        @(posedge clk);
    end
    $fclose(f);
    $finish;
end
endmodule
"""

INST = {
    "fp32_div": "fp32_div u (.clk(clk), .rst(rst), .in_valid(in_valid), .in_ready(in_ready), "
                ".a(a), .b(b), .out_valid(out_valid), .y(y));",
    "fp32_sqrt": "fp32_sqrt u (.clk(clk), .rst(rst), .in_valid(in_valid), .in_ready(in_ready), "
                 ".a(a), .out_valid(out_valid), .y(y));\nwire unused_b = &{1'b0, b};",
}


def _f(bits) -> np.ndarray:
    return np.asarray(bits, np.uint32).view(np.float32)


def _corner_bits() -> list[int]:
    return [0x00000000, 0x80000000, 0x00000001, 0x807fffff, 0x00800000, 0x80800000,
            0x00800001, 0x7f7fffff, 0xff7fffff, 0x7f800000, 0xff800000, 0x7fc00000,
            0x7f800001, 0xffc00123, 0x3f800000, 0xbf800000, 0x40000000, 0x40400000,
            0x3f7fffff, 0x3f800001, 0x3fffffff, 0x40800000, 0x40490fdb, 0x3dcccccd,
            0x00ffffff, 0x01000000, 0x7effffff, 0x0d000000, 0x33800000, 0x4b800000]


def _div_vectors(rng) -> tuple[np.ndarray, np.ndarray]:
    c = np.array(_corner_bits(), np.uint32)
    a, b = [x.ravel() for x in np.meshgrid(c, c)]
    # results near 2^-126 (round up to it or flush), near overflow, exact quotients
    tiny = _f([0x00800000, 0x00ffffff, 0x00800001])
    ones = _f([0x3f800001, 0x3f800002, 0x3f7fffff, 0x3f7ffffe])
    near = np.array([np.float32(t) * o for t in tiny for o in ones], np.float32)
    a2 = np.concatenate([near.view(np.uint32), _f([0x7f7fffff] * 4).view(np.uint32)])
    b2 = np.concatenate([np.tile(ones, 3).view(np.uint32),
                         _f([0x3f7fffff, 0x3f000000, 0x3effffff, 0x3f7ffffe]).view(np.uint32)])
    ints = rng.integers(1, 1 << 12, size=(2, 300)).astype(np.float32)
    exact = (ints[0] * ints[1]).astype(np.float32)
    a3, b3 = exact.view(np.uint32), ints[1].view(np.uint32)
    ra = rng.integers(0, 1 << 32, N_RANDOM, dtype=np.uint64).astype(np.uint32)
    rb = rng.integers(0, 1 << 32, N_RANDOM, dtype=np.uint64).astype(np.uint32)
    # operands near 1 (the BN's count divisions: integers and sums of normalised values)
    rn = (rng.standard_normal((2, N_RANDOM)) * [[1e3], [30.0]]).astype(np.float32).view(np.uint32)
    return (np.concatenate([a, a2, a3, ra, rn[0]]).astype(np.uint32),
            np.concatenate([b, b2, b3, rb, rn[1]]).astype(np.uint32))


def _sqrt_vectors(rng) -> np.ndarray:
    c = np.array(_corner_bits(), np.uint32)
    sq = rng.integers(1, 1 << 12, 400).astype(np.float32) ** 2      # exact roots
    near = np.concatenate([sq.view(np.uint32) + 1, sq.view(np.uint32) - 1])
    ra = rng.integers(0, 1 << 32, N_RANDOM, dtype=np.uint64).astype(np.uint32)
    rp = np.abs(rng.standard_normal(N_RANDOM) * 10).astype(np.float32).view(np.uint32)
    return np.concatenate([c, sq.view(np.uint32), near.astype(np.uint32), ra, rp & 0x7fffffff])


def _run(module, a, b, tmp_path):
    if shutil.which("iverilog") is None:
        pytest.fail("iverilog not installed: apt-get install iverilog")
    src = tmp_path / f"{module}.v"
    src.write_text(fp_divsqrt_verilog()[f"{module}.v"])
    vecs, out = tmp_path / "vec.hex", tmp_path / "out.txt"
    vecs.write_text("".join(f"{int(x):08x}{int(y):08x}\n" for x, y in zip(a, b)))
    (tmp_path / "tb.v").write_text(TB.format(n=len(a), inst=INST[module], vecs=vecs, out=out))
    subprocess.run(["iverilog", "-g2005", "-o", str(tmp_path / "sim"), str(tmp_path / "tb.v"),
                    str(src)], check=True, capture_output=True, text=True)
    subprocess.run(["vvp", "-n", str(tmp_path / "sim")], check=True, capture_output=True,
                   text=True, cwd=tmp_path)
    rows = [ln.split() for ln in out.read_text().split("\n") if ln.strip()]
    assert len(rows) == len(a)
    return (np.array([int(r[0], 16) for r in rows], np.uint32),
            np.array([int(r[1]) for r in rows]))


def _compare(got, want):
    want = np.asarray(want, np.float32)
    nan = np.isnan(want)
    assert np.all(got[nan] == QNAN), "a NaN result is not the quiet NaN"
    wb = want.view(np.uint32)
    bad = np.flatnonzero((got != wb) & ~nan)
    assert bad.size == 0, [(int(i), hex(got[i]), hex(wb[i])) for i in bad[:6]]


def test_divsqrt_lint_clean(tmp_path):
    if shutil.which("verilator") is None:
        pytest.fail("verilator not installed: apt-get install verilator")
    for name, text in fp_divsqrt_verilog().items():
        (tmp_path / name).write_text(text)
        r = subprocess.run(["verilator", "--lint-only", "-Wall", str(tmp_path / name),
                            "--top-module", name[:-2]], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr


def test_fp32_div_is_bit_exact_against_div_ftz(tmp_path):
    a, b = _div_vectors(np.random.default_rng(7))
    got, lat = _run("fp32_div", a, b, tmp_path)
    _compare(got, div_ftz(a.view(np.float32), b.view(np.float32)))
    assert np.all(lat == DIV_LATENCY), set(lat.tolist())


def test_fp32_sqrt_is_bit_exact_against_sqrt_ftz(tmp_path):
    a = _sqrt_vectors(np.random.default_rng(8))
    got, lat = _run("fp32_sqrt", a, np.zeros_like(a), tmp_path)
    _compare(got, sqrt_ftz(a.view(np.float32)))
    assert np.all(lat == SQRT_LATENCY), set(lat.tolist())


def test_ftz_oracles_flush_and_keep_signs():
    f = np.float32
    assert div_ftz(f(1e-39), f(1.0)) == 0 and np.signbit(div_ftz(f(-1e-39), f(1.0)))
    assert div_ftz(f(1.0), f(1e-39)) == np.inf                 # a subnormal divisor is 0
    assert div_ftz(f(2.0**-126), f(1.5)) == 0                  # a subnormal result
    assert np.signbit(sqrt_ftz(f(-0.0))) and sqrt_ftz(f(1e-39)) == 0
    assert np.isnan(sqrt_ftz(f(-1.0)))
