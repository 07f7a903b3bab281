"""cocotb tests of fp32_add, fp32_mul and fp32_mac (toplevel fp32_units_tb).

Run from pytest by tests/test_rtl_fp.py through efgen/cosim/runner.py. Settings come from the
environment: EFGEN_FP_IMPL ("synth", "dsp" or "behav": picks the oracle), EFGEN_FP_VECTORS
(how many operand triples), EFGEN_FP_SEED.

Oracles: ``behav`` must equal numpy float32 bit for bit (``a + b``, ``a * b``,
``float32(a * b) + c``); ``synth`` must equal efgen.golden.ftz (``add_ftz``,
``mul_ftz``, ``mac_ftz``). Where the oracle is NaN, the RTL must output exactly the
canonical quiet NaN 0x7fc00000.
"""

from __future__ import annotations

import os

import cocotb
import fp_vectors
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge

from efgen.golden.ftz import add_ftz, mac_ftz, mul_ftz
from efgen.rtl.fpu import FTZ_IMPLS, LATENCY, QNAN

UNITS = ("add", "mul", "mac")


def expected(impl: str, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> dict:
    """Oracle results (uint32 bit patterns) of each unit."""
    fa, fb, fc = (x.view(np.float32) for x in (a, b, c))
    if impl in FTZ_IMPLS:
        out = {"add": add_ftz(fa, fb), "mul": mul_ftz(fa, fb), "mac": mac_ftz(fa, fb, fc)}
    else:
        with np.errstate(all="ignore"):
            out = {"add": fa + fb, "mul": fa * fb, "mac": (fa * fb) + fc}
    return {k: np.asarray(v, dtype=np.float32).view(np.uint32) for k, v in out.items()}


def mismatches(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """Indices where the RTL differs: bits must match, NaN must be the canonical one."""
    want_nan = np.isnan(want.view(np.float32))
    bad = np.where(want_nan, got != QNAN, got != want)
    return np.flatnonzero(bad)


def bubbles(n_cycles: int, seed: int) -> np.ndarray:
    """Cycles with in_valid=0 (one in 32 on average), to check the valid pipeline."""
    return np.random.default_rng(seed + 1).random(n_cycles) < 1 / 32


@cocotb.test()
async def stream_vectors(dut):
    """Stream every vector, one per clock; check results, order and latency."""
    impl = os.environ["EFGEN_FP_IMPL"]
    n = int(os.environ["EFGEN_FP_VECTORS"])
    seed = int(os.environ.get("EFGEN_FP_SEED", "1"))
    a, b, c = fp_vectors.vectors(n, seed)
    want = expected(impl, a, b, c)
    lat = {u: LATENCY[f"fp32_{u}"] for u in UNITS}

    cocotb.start_soon(Clock(dut.clk, 10, units="ns").start())
    dut.in_valid.value = 0
    dut.a.value = 0
    dut.b.value = 0
    dut.c.value = 0
    dut.rst.value = 1
    for _ in range(3):
        await FallingEdge(dut.clk)
    dut.rst.value = 0

    al, bl, cl = a.tolist(), b.tolist(), c.tolist()
    idle = bubbles(n + n // 16 + 64, seed).tolist()
    handles = [(getattr(dut, f"{u}_valid"), getattr(dut, f"{u}_y")) for u in UNITS]
    got = {u: [] for u in UNITS}
    out_valid = {u: [] for u in UNITS}
    in_valid = []
    fall = FallingEdge(dut.clk)
    i = 0
    t = 0
    drain = max(lat.values()) + 2
    # Outputs are sampled and inputs driven on the falling edge, halfway between the
    # rising edges that the design samples on.
    while i < n or drain > 0:
        await fall
        for u, (hv, hy) in zip(UNITS, handles):
            v = int(hv.value)
            out_valid[u].append(v)
            if v:
                got[u].append(int(hy.value))
        if i < n and not idle[t]:
            dut.a.value = al[i]
            dut.b.value = bl[i]
            dut.c.value = cl[i]
            dut.in_valid.value = 1
            in_valid.append(1)
            i += 1
        else:
            dut.in_valid.value = 0
            in_valid.append(0)
            if i >= n:
                drain -= 1
        t += 1

    failures = []
    for u in UNITS:
        # out_valid at sample t follows in_valid driven LATENCY samples earlier.
        iv = np.array(in_valid, dtype=np.int8)
        ov = np.array(out_valid[u], dtype=np.int8)
        L = lat[u]
        if not np.array_equal(ov[L:], iv[:len(iv) - L]) or ov[:L].any():
            failures.append(f"{u}: out_valid is not in_valid delayed by {L} cycles")
            continue
        g = np.array(got[u], dtype=np.uint32)
        if len(g) != n:
            failures.append(f"{u}: {len(g)} results for {n} inputs")
            continue
        bad = mismatches(g, want[u])
        dut._log.info("%s %s: %d vectors, %d mismatches, latency %d", impl, u, n,
                      len(bad), L)
        for k in bad[:8]:
            ops = f"a={a[k]:08x} b={b[k]:08x}" + (f" c={c[k]:08x}" if u == "mac" else "")
            failures.append(f"{u} #{k}: {ops} -> rtl {g[k]:08x}, expected {want[u][k]:08x}")
        if len(bad) > 8:
            failures.append(f"{u}: ... {len(bad) - 8} more mismatches")
    assert not failures, "\n".join(failures)
