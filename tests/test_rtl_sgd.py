"""The SGD write-back RTL (efgen.rtl.sgd, sgd_wb): generation, lint, the bit-exact model
against the golden sgd_update, the cycle formula, and cocotb runs of whole chunks
(weight buffer -> gradient sums, W and V from DRAM, W' and V' back to DRAM) through
axi_dma_rd/axi_dma_wr and cocotbext-axi AxiRam, compared with the model bit for bit and
with sgd_cycles cycle for cycle.

Simulation: one Verilator build per parameter set (efgen/cosim/runner.py), one simulation that
runs every case of the set (sim/sgd/cases.py builds the script and the checks),
memoised per session; each case is then checked as its own test. Icarus runs a smoke
set (3 x 3 lanes: partial groups, PIECE = 8, the smallest power of two >= GROUP) and the injected-bug checks.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import require_tool as _require

from efgen.golden import ops
from efgen.rtl.dma import DmaParams, dma_verilog
from efgen.rtl.engine import EngineParams, wu_copies, wu_gradient
from efgen.rtl.sgd import (
    GROUP,
    PIECE,
    gradient_copies,
    rtl_gradient,
    sgd_cycles,
    sgd_cycles_closed,
    sgd_verilog,
    sgd_wb_model,
    sgd_words,
    wbuf_addresses,
    word_ready,
)

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:          # sim/ is a folder of the checkout, not installed
    sys.path.insert(0, str(ROOT))

from sim.sgd import cases as C  # noqa: E402

TB_DIR = ROOT / "sim" / "sgd"
DMA = DmaParams(data_width=32, max_burst=C.MAX_BURST, outstanding=4)




def _p(tm, tn, impl):
    return EngineParams(tm, tn, ifm_depth=64, ofm_depth=64, wbuf_depth=512, kmax=5, impl=impl)


# name -> (engine parameters, PIECE)
PSETS = {
    "behav-2x2": (_p(2, 2, "behav"), 16),
    "synth-4x4": (_p(4, 4, "synth"), 16),
    "behav-2x4": (_p(2, 4, "behav"), 64),
    "synth-3x3": (_p(3, 3, "synth"), 8),       # Icarus: 9 lanes, partial groups, PIECE 8
}


def _cases(pname: str) -> list:
    """K 1, 2, 3 (G 6, 2, 1) x 1..3 blocks; latencies 0, 9, 31; mom = 0 and wd = 0 once
    each and together; special values in every third case; a start while busy; a
    second run started in the done cycle; two runs under random DRAM stalls."""
    p, piece = PSETS[pname]
    rng = np.random.default_rng(sum(map(ord, pname)))
    out = []
    i = 0
    for k in (1, 2, 3):
        for nblk in (1, 2, 3):
            i += 1
            mom = 0.0 if i in (2, 8) else float(rng.choice([0.9, 0.5, 0.99]))
            wd = 0.0 if i in (4, 8) else float(rng.choice([5e-4, 1e-4, 3e-2]))
            out.append(C.case(p, f"k{k}_nblk{nblk}", k=k, nblk=nblk, seed=100 * i + len(pname),
                              latency=(0, 9, 31)[i % 3], lr=float(rng.uniform(1e-3, 0.3)),
                              mom=mom, wd=wd, special=i % 3 == 0, restart=i == 5,
                              again=i == 7, piece=piece))
    # random stalls on every DRAM channel (AR, R, AW, W, B): still bit-exact
    out.append(C.case(p, "stall_k1", k=1, nblk=3, seed=7, latency=9, stall=0.4, piece=piece))
    out.append(C.case(p, "stall_k3", k=3, nblk=2, seed=8, latency=0, stall=0.2, special=True,
                      piece=piece))
    return out


def _tb_args(p: EngineParams, sim: str) -> list[str]:
    w = p.widths
    vals = {"TM": p.tm, "TN": p.tn, "WA": w["WA"], "KW": w["KW"], "GW": w["GW"],
            "MAX_BURST": DMA.max_burst, "OUTSTANDING": DMA.outstanding}
    return [f"-G{k}={v}" if sim == "verilator" else f"-Psgd_tb.{k}={v}" for k, v in vals.items()]


def _sources(p: EngineParams, piece: int) -> dict[str, str]:
    from efgen.cosim.runner import read_sources
    dma = dma_verilog(DMA)
    return {**sgd_verilog(p, piece), "axi_dma_rd.v": dma["axi_dma_rd.v"],
            "axi_dma_wr.v": dma["axi_dma_wr.v"], **read_sources(TB_DIR / "sgd_tb.v")}


_RESULTS: dict = {}


def _simulate(pname: str, tmp_path_factory, sim: str = "verilator", cases=None,
              sources=None):
    """Build (once per simulator and parameter set) and run the cases in one simulation."""
    key = (pname, sim, tuple(c.name for c in cases) if cases else None)
    if key in _RESULTS and sources is None:
        return _RESULTS[key]
    _require({"verilator": "verilator", "icarus": "iverilog"}[sim])
    from efgen.cosim.runner import run_cocotb

    p, piece = PSETS[pname]
    cases = cases or _cases(pname)
    work = tmp_path_factory.mktemp(f"sgd-{pname}-{sim}")
    script, results = work / "script.json", work / "results.json"
    script.write_text(json.dumps([c.script for c in cases]))
    run_cocotb(sim, toplevel="sgd_tb", sources=sources or _sources(p, piece),
               test_module="cocotb_sgd", tb_dir=TB_DIR,
               build_root=tmp_path_factory.getbasetemp() / "build" / "sgd",
               build_args=_tb_args(p, sim),
               extra_env={"EFGEN_SGD_SCRIPT": str(script), "EFGEN_SGD_RESULTS": str(results)})
    out = ({c.name: c for c in cases}, json.loads(results.read_text()))
    if sources is None:
        _RESULTS[key] = out
    return out


# ------------------------------------------------------------------ pure Python

def test_render_is_deterministic_and_complete():
    p = _p(4, 2, "behav")
    files = sgd_verilog(p)
    assert files == sgd_verilog(p)
    assert sorted(files) == ["fp32_add.v", "fp32_add_fb.v", "fp32_mac.v", "fp32_mul.v", "sgd_fifo.v",
                            "sgd_wb.v"]
    for m in ("sgd_fifo", "sgd_wb"):
        text = files[f"{m}.v"]
        assert re.findall(r"^module (\w+)", text, re.M) == [m]
        assert text.startswith(f"// {m}.v - generated by efgen")
        assert not re.search(r"\{\{ |\{%|\{#", text) and text.isascii()
    top = files["sgd_wb.v"]
    assert f"parameter integer PIECE = {PIECE}" in top
    assert "parameter integer PIECE = 64" in sgd_verilog(p, 64)["sgd_wb.v"]
    assert "input  wire [255:0]         wb_rd_data" in top            # 4*2 banks x 32
    assert "cycles = s_last + n_last + 8" in top                       # the formula
    synth = sgd_verilog(_p(4, 2, "synth"))
    assert synth["sgd_wb.v"] == top.replace("units: behav", "units: synth")
    assert "real" not in re.sub(r"//.*", "", synth["fp32_add.v"])


@pytest.mark.parametrize("bad", [0, 2, 4, 12, 3, True])
def test_piece_is_validated(bad):
    with pytest.raises(ValueError, match="piece"):
        sgd_verilog(_p(2, 2, "behav"), bad)
    with pytest.raises(TypeError):
        sgd_verilog(DMA)


def test_weight_buffer_layout():
    """Word ((blk*K*K + kk)*Tm + mm)*Tn + nn, copy q: bank mm*Tn + nn, address
    (blk*G + q)*K*K + kk - spelled out loop by loop."""
    for tm, tn, k, nblk in [(2, 2, 3, 2), (3, 2, 1, 3), (2, 4, 2, 2), (1, 1, 3, 1)]:
        p = _p(tm, tn, "behav")
        g = wu_copies(k)
        depth = nblk * g * k * k
        wbuf = np.arange(tm * tn * depth, dtype=np.float32).reshape(tm * tn, depth)
        got = gradient_copies(wbuf, p, k, g, nblk)
        want = []
        for blk in range(nblk):
            for kk in range(k * k):
                for mm in range(tm):
                    for nn in range(tn):
                        want.append([wbuf[mm * tn + nn, (blk * g + q) * k * k + kk]
                                     for q in range(g)])
        assert np.array_equal(got, np.array(want, np.float32))
        bank, a0 = wbuf_addresses(p, k, g, nblk)
        assert a0.max() + (g - 1) * k * k == depth - 1 and bank.max() == tm * tn - 1


def _special_words(rng, n) -> np.ndarray:
    pool = np.array([0.0, -0.0, 1e-40, -1e-45, 1.1754942e-38, -1.17549435e-38, np.inf,
                     -np.inf, np.nan, 3e38, -3e38, 1.0], np.float32)
    x = (rng.standard_normal(n) * rng.choice([1e-3, 1.0, 1e3], n)).astype(np.float32)
    pick = rng.random(n) < 0.5
    x[pick] = rng.choice(pool, pick.sum())
    return x


def _same(a, b) -> bool:
    """Bit-equal, NaN equal to NaN (the RTL's NaN is canonical)."""
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    nan = np.isnan(a)
    return bool(np.array_equal(nan, np.isnan(b))
                and np.array_equal(a[~nan].view(np.uint32), b[~nan].view(np.uint32)))


def test_model_is_golden_sgd_update():
    """behav: the write-back model is efgen.golden.ops.sgd_update on the wu_gradient of
    the copies, bit for bit (w - lr*v computed as w + (-(lr*v)))."""
    rng = np.random.default_rng(7)
    p = _p(2, 4, "behav")
    for k, nblk, special in [(1, 2, False), (2, 3, True), (3, 1, True), (3, 2, False)]:
        g = wu_copies(k)
        words = nblk * k * k * p.tm * p.tn
        depth = nblk * g * k * k
        mk = (lambda n: _special_words(rng, n)) if special else \
            (lambda n: rng.standard_normal(n).astype(np.float32))
        wbuf = mk(p.tm * p.tn * depth).reshape(p.tm * p.tn, depth)
        w, v = mk(words), mk(words)
        for lr, mom, wd in [(0.05, 0.9, 5e-4), (0.1, 0.0, 0.0), (1e-3, 0.99, 0.0)]:
            w2, v2 = sgd_wb_model(wbuf, w, v, p, k=k, g=g, nblk=nblk, lr=lr, mom=mom, wd=wd)
            grad = wu_gradient(gradient_copies(wbuf, p, k, g, nblk)[:, None, :, None])[:, 0, 0]
            with np.errstate(all="ignore"):
                w_ref, v_ref = ops.sgd_update(w, grad, v, lr, mom, wd)
            assert w_ref.dtype == np.float32
            assert _same(w2, w_ref) and _same(v2, v_ref), (k, nblk, lr, mom, wd)


@pytest.mark.parametrize("impl", ["behav", "synth"])
def test_minus_zero_seed_changes_nothing(impl):
    """The RTL's gradient adder computes (-0 + copy0) + copy1 ...; after the SGD it is
    the same W' and V' as wu_gradient's copy0 + copy1 ..., on signed zeros, subnormals,
    infinities and NaNs, for every G."""
    rng = np.random.default_rng(11)
    n = 20000
    for g in (1, 2, 3, 6):
        copies = _special_words(rng, n * g).reshape(n, g)
        w, v = _special_words(rng, n), _special_words(rng, n)
        ref = wu_gradient(copies[:, None, :, None], impl)[:, 0, 0]
        seeded = rtl_gradient(copies, impl)
        for lr, mom, wd in [(0.05, 0.9, 5e-4), (0.5, 0.0, 0.0), (2.0, 1.0, 1.0)]:
            a = sgd_words(w, v, ref, lr, mom, wd, impl)
            b = sgd_words(w, v, seeded, lr, mom, wd, impl)
            assert _same(a[0], b[0]) and _same(a[1], b[1]), (g, lr, mom, wd)
    if impl == "synth":   # the flush is real: a subnormal gradient vanishes
        one = np.ones(1, np.float32)
        assert sgd_words(one, one * 0, np.float32([1e-40]), 1.0, 0.0, 0.0, impl)[1][0] == 0
        assert sgd_words(one, one * 0, np.float32([1e-40]), 1.0, 0.0, 0.0, "behav")[1][0] != 0


def test_cycle_formula():
    # hand-computed (header of sgd_wb.v): G = 2, 16 words, L = 0, one piece, GROUP = 5
    # (fp32_add's latency), fp32_mul 4 cycles
    #   ready(15) = 6 + 5 + 31 + 5 + 10*3 + 0 = 77 (STREAM = 2 + WO_PUSH 28 + 1: the read
    #   path is engine_ram's two registers (its read and output registers, issue 19) plus
    #   sgd_wb's two bank-mux registers); the stream takes W' by 77 and V' by
    #   T = 77 + 16 = 93; the W channel sends W' (buffered whole) from 77, V' from
    #   max(93, 77 + 16) = 93; done = 93 + 16 + WRITE_LAG 8
    assert GROUP == 5
    assert word_ready(15, 16, 2, 0) == 77
    assert sgd_cycles(16, 2, 0) == 117
    # 36 words, G = 1, pieces 16, 16, 4: the W channel trails the stream by a whole piece
    #   (16 - 4 = 12 more than the stream for the last piece)
    assert sgd_cycles(4, 6, 0) == 85 and sgd_cycles(36, 1, 0) == 152
    assert sgd_cycles(36, 1, 17) == 152 + 17
    for g in (1, 2):       # the closed form the docs state for G <= 2, several pieces:
        # the piece term max_k (n_k + max_(j<=k) (n_j - e_j % 5)) is 2*PIECE here (the
        # first piece ends at word 15, 15 % 5 = 0)
        for words in (17, 36, 100, 1000):
            assert sgd_cycles(words, g, 13) == 13 + 2 * words + 2 * PIECE + 38 + 5 * g + 5
    # the closed forms are the recurrence
    n = 0
    for piece in (8, 16, 32, 64, 128):   # powers of two >= GROUP
        for g in range(1, 8):
            for lat in (0, 5, 17, 40):
                for words in range(1, 260, 3):
                    try:
                        c = sgd_cycles_closed(words, g, lat, piece)
                    except ValueError:
                        assert g >= 3 and piece > GROUP * (g - 1) and words > piece
                        continue
                    assert c == sgd_cycles(words, g, lat, piece), (words, g, lat, piece)
                    n += 1
    assert n > 6000
    # throughput: max(G, 2) cycles a word in the steady state
    for g in (1, 2, 6):
        for piece in (16, 64):
            big = 64 * piece * GROUP     # whole groups and pieces
            assert (sgd_cycles(2 * big, g, 20, piece) - sgd_cycles(big, g, 20, piece)
                    == max(g, 2) * big)
    with pytest.raises(ValueError):
        sgd_cycles(0, 1, 0)


# ------------------------------------------------------------------ lint

LINT_SETS = [(_p(2, 2, "behav"), 16), (_p(4, 4, "synth"), 16), (_p(3, 5, "behav"), 8),
             (EngineParams(1, 1), 16), (EngineParams(16, 16, impl="synth"), 256),
             (EngineParams(2, 3, wbuf_depth=64, kmax=3), 8)]
LINT_IDS = [f"{p.tm}x{p.tn}-{p.impl}-wb{p.wbuf_depth}-k{p.kmax}-piece{pc}" for p, pc in LINT_SETS]


def _write(files, d: Path):
    for name, text in files.items():
        (d / name).write_text(text)
    return sorted(files)


@pytest.mark.parametrize("p,piece", LINT_SETS, ids=LINT_IDS)
def test_verilator_lint_clean(p, piece, tmp_path):
    """-Wall clean with the rendered PIECE and with PIECE given as a -G override."""
    _require("verilator")
    names = _write(sgd_verilog(p, piece), tmp_path)
    for extra in ([], [f"-GPIECE={2 * piece}"]):
        r = subprocess.run(["verilator", "--lint-only", "-Wall", "--top-module", "sgd_wb",
                            *extra, *names], cwd=tmp_path, capture_output=True, text=True)
        assert r.returncode == 0 and not r.stderr, r.stderr


@pytest.mark.parametrize("p,piece", LINT_SETS[:3], ids=LINT_IDS[:3])
def test_icarus_accepts_verilog_2005(p, piece, tmp_path):
    _require("iverilog")
    names = _write(sgd_verilog(p, piece), tmp_path)
    r = subprocess.run(["iverilog", "-g2005", "-Wall", "-s", "sgd_wb", "-o", "s.vvp", *names],
                       cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0 and not r.stderr, r.stderr


def test_yosys_synthesizable_without_latches(tmp_path):
    _require("yosys")
    names = _write(sgd_verilog(_p(2, 2, "synth")), tmp_path)
    script = (f"read_verilog {' '.join(names)}; hierarchy -check -top sgd_wb; proc; "
              "select -assert-none t:$dlatch t:$adlatch t:$dlatchsr; check -assert")
    r = subprocess.run(["yosys", "-q", "-p", script], cwd=tmp_path, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]


# ------------------------------------------------------------------ simulation

CASE_NAMES = [c.name for c in _cases("behav-2x2")]


def _check_case(pname, case_name, tmp_path_factory):
    cases, results = _simulate(pname, tmp_path_factory)
    case = cases[case_name]
    errs = case.check(results)
    r = results[case_name]
    print(f"{pname} {case_name} {case.info}: cycles {r['cycles']} (sgd_cycles "
          f"{case.cycles}), {len(r['aw'])} write bursts")
    assert not errs, "\n".join(errs)


@pytest.mark.parametrize("case_name", CASE_NAMES)
def test_sgd_2x2_behav(case_name, tmp_path_factory):
    _check_case("behav-2x2", case_name, tmp_path_factory)


@pytest.mark.parametrize("case_name", CASE_NAMES)
def test_sgd_4x4_synth(case_name, tmp_path_factory):
    _check_case("synth-4x4", case_name, tmp_path_factory)


@pytest.mark.parametrize("case_name", CASE_NAMES)
def test_sgd_2x4_behav_piece64(case_name, tmp_path_factory):
    _check_case("behav-2x4", case_name, tmp_path_factory)


def _smoke_cases(pname):
    p, piece = PSETS[pname]
    return [C.case(p, "k1_nblk2", k=1, nblk=2, seed=1, latency=5, special=True, piece=piece),
            C.case(p, "k2_nblk1", k=2, nblk=1, seed=2, latency=0, mom=0.0, restart=True,
                   piece=piece),
            C.case(p, "k3_nblk1", k=3, nblk=1, seed=3, latency=12, wd=0.0, again=True,
                   piece=piece)]


def test_sgd_icarus_smoke(tmp_path_factory):
    """Icarus: 3 x 3 lanes (9-word rows: groups and pieces straddle rows and blocks),
    synth units, PIECE = 8."""
    cases = _smoke_cases("synth-3x3")
    _, results = _simulate("synth-3x3", tmp_path_factory, "icarus", cases)
    errs = [e for c in cases for e in c.check(results)]
    assert not errs, "\n".join(errs)


@pytest.mark.parametrize("good,bad,symptom", [
    # w' = w - lr*v': the sign flip of the subtraction
    (".b({~lv[31], lv[30:0]})", ".b(lv)", "differ from the model"),
    # w waits exactly from its pop to the w' adder
    ("localparam integer W_DLY    = 18;", "localparam integer W_DLY    = 17;",
     "differ from the model"),
    # copy q of a word comes from its own lane
    ("wb_rd_data[{s1_lane, 5'b00000} +: 32]", "wb_rd_data[31:0]", "differ from the model"),
    # each V' piece follows its W' piece on the write stream
    ("assign o_data  = ds_v[1] ? go_head : ds_v[0] ? vo_head : wo_head;",
     "assign o_data  = ds_v[1] ? go_head : ds_v[0] ? wo_head : vo_head;",
     "differ from the model|Unresolvable bit"),
    # G <= 2 runs groups every 2*GROUP cycles, not 3*GROUP
    ("(cfg_bias && cfg_dbg) ? 4'd2 : 4'd1;", "(cfg_bias && cfg_dbg) ? 4'd2 : 4'd2;",
     "sgd_cycles gives"),
    # done waits for the last write response
    ("od_left <= cmds_in;", "od_left <= cmds_in - ONE32;", "cycles|still busy"),
])
def test_checks_catch_bugs(good, bad, symptom, tmp_path_factory):
    """The cocotb checks are not vacuous: each injected bug fails them (Icarus)."""
    p, piece = PSETS["behav-2x2"]
    src = _sources(p, piece)
    assert src["sgd_wb.v"].count(good) == 1, good
    src["sgd_wb.v"] = src["sgd_wb.v"].replace(good, bad)
    cases = _smoke_cases("behav-2x2")
    try:
        _, results = _simulate("behav-2x2", tmp_path_factory, "icarus", cases, sources=src)
        errs = [e for c in cases for e in c.check(results)]
    except AssertionError as e:     # the simulation itself failed (e.g. X on the AXI bus)
        errs = [str(e)[-3000:]]
    print(errs[:2])
    assert errs and re.search(symptom, "\n".join(errs)), errs


def test_model_bias_pass_group_is_sgd_wbs():
    """efgen.model.engine prices the WU bias pass in groups of WUB_GROUP channels, a
    constant of its own (the model does not import the RTL stage): it must be sgd_wb's."""
    from efgen.model.engine import WUB_GROUP
    from efgen.rtl.sgd import GROUP

    assert WUB_GROUP == GROUP
