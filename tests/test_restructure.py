"""Restructured batchnorm in the model and the scheduler (efgen/model/restructure.py)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

import efgen
from efgen.design import Design
from efgen.frontend import load_net
from efgen.frontend.boards import load_board
from efgen.model import engine
from efgen.model import restructure as R
from efgen.model.evaluate import ddr_bytes_per_cycle, evaluate_design
from efgen.model.resources import resource_use
from efgen.model.schedule import Request, base_hw

# The unfused step as main priced it before fusion existed (50b04de), with one later fix
# of the unfused model (stride-2 BP middle tiles of odd height: 65,536 fewer DRAM bytes,
# the same cycles): --no-fuse must keep pricing it exactly.
UNFUSED = {("resnet20", 32): (26751666.0, 489107528.0)}


@pytest.fixture(scope="module")
def resnet20():
    return (efgen.build("resnet20", "zcu102", 32, clock=100, fuse=True),
            efgen.build("resnet20", "zcu102", 32, clock=100))


def test_no_fuse_prices_the_unfused_step_exactly(resnet20):
    fused, plain = resnet20
    t = plain.evaluation["totals"]
    assert (t["cycles"], t["dram_bytes"]) == UNFUSED[("resnet20", 32)]
    d = json.loads(plain.design.to_json())
    assert "fusion" not in d and "fuse" not in d["hw"]      # design.json as before
    assert "fusion" not in t
    assert not any(r.engine.startswith(("group", "bn stats (fused", "bn dx (fused"))
                   for r in plain.evaluation["rows"])
    # the fused report's no-fuse column is the same unfused step on the same array
    assert fused.evaluation["totals"]["fusion"]["no_fuse"]["cycles"] == t["cycles"]


def test_zero_fused_fields_change_nothing_in_the_engine():
    net = load_net("resnet20")
    b = load_board("zcu102")
    hw = replace(base_hw(Request(net=net, board=b, clock_mhz=100.0)), tm=16, tn=16,
                 ifm_depth=4096, ofm_depth=4096, wbuf_depth=1024)
    jobs = engine.jobs_for(net, 32)
    ddr = ddr_bytes_per_cycle(b, 100)
    plain = engine.choose(jobs, hw, 4, ddr)
    # a fused job beside them turns the fused terms on for the whole evaluation: the
    # jobs whose fused fields are zero still price exactly as before
    mixed = engine.choose(jobs + [replace(jobs[1], xf=1, in_extra=1, st_extra=2, acc=1)],
                          hw, 4, ddr)
    for k in ("cycles", "read_words", "write_words", "bursts", "tr", "tc", "mc", "order"):
        assert np.array_equal(mixed[k][:len(jobs)], plain[k]), k
    assert mixed["cycles"][-1] > plain["cycles"][1]


def _hw(net, **kw):
    b = load_board("zcu102")
    return replace(base_hw(Request(net=net, board=b, clock_mhz=100.0)), tm=16, tn=16,
                   ifm_depth=4096, ofm_depth=4096, wbuf_depth=1024, fuse=True, **kw), b


def test_second_streams_and_accumulators_are_priced():
    net = load_net("resnet20")
    hw, b = _hw(net)
    ddr = ddr_bytes_per_cycle(b, 100)
    base = [j for j in engine.jobs_for(net, 32) if j.layer == "s1b2_a_conv"]
    tiles = [(8, 32, 1, "wo")] * len(base)
    r0 = engine.evaluate_chosen(base, tiles, hw, 4, ddr, "reshaped")
    for f, phases in (("in_extra", ("fp", "bp", "wu")), ("st_extra", ("bp",)),
                      ("eo_extra", ("wu",)), ("xf", ("fp", "bp", "wu")), ("acc", ("fp", "bp"))):
        jobs = [replace(j, **{f: 1}) for j in base]
        r1 = engine.evaluate_chosen(jobs, tiles, hw, 4, ddr, "reshaped")
        for i, j in enumerate(base):
            if j.phase not in phases:
                continue
            assert r1["cycles"][i] >= r0["cycles"][i], (f, j.phase)
            moved = r1["read_words"][i] + r1["write_words"][i]
            assert moved > r0["read_words"][i] + r0["write_words"][i], (f, j.phase)
            if f == "in_extra":     # the second operand: the input tiles once more
                assert r1["read_words"][i] - r0["read_words"][i] >= r0["in_words"][i]
            if f == "st_extra":     # one more tile read beside every store
                assert r1["read_words"][i] - r0["read_words"][i] == r0["out_words"][i]


def test_resnet20_plan_and_its_decision():
    net = load_net("resnet20")
    hw, b = _hw(net)
    ddr = ddr_bytes_per_cycle(b, 100)
    plan, res = R.decide(net, 32, hw, 4, ddr)
    assert R.feasible(net, plan)
    # every fused group is one BN/ReLU the engine's loads apply (one stored source)
    for g in R.groups(net):
        if g not in plan.materialise:
            assert R.loadable(net, g) and len(R.sources(net, g, plan)) == 1
    # the blocks' inner BN/ReLU fuse into the second conv's loads; the block outputs
    # (read by the next block's add: a residual group the loads do not apply) and the
    # stem's output are materialised, each add by its BN's BN_FIN (addx_bn)
    outs = ["conv1_relu"] + [f"s{s}b{b}_relu" for s in (1, 2, 3) for b in (1, 2, 3)]
    assert plan.materialise == frozenset(outs)
    assert R.addx_bn(net, "s1b1_add") == "s1b1_b_bn" and "s1b1_b_bn" not in R.groups(net)
    # the decision is a local optimum of the model's step cycles
    def cycles(p):
        jobs = R.fused_jobs(net, 32, p)
        r = engine.choose(jobs, hw, 4, ddr)
        return float(np.sum(r["cycles"])) + sum(
            a.cycles for a in R.fused_aux(net, 32, hw, 32, ddr, p))
    best = cycles(plan)
    assert best <= cycles(R.initial_plan(net))
    for g in ("s1b1_relu", "s2b2_relu", "s3b3_a_relu", "s1b1_a_relu"):
        flip = R.Plan(plan.materialise ^ {g}, plan.dx_materialise)
        assert not R.feasible(net, flip) or cycles(flip) >= best
    flip = R.Plan(plan.materialise, plan.dx_materialise ^ {"s2b1_a_bn"})
    assert cycles(flip) >= best


def test_jobs_carry_the_fused_streams():
    net = load_net("resnet20")
    plan = R.initial_plan(net)
    jobs = {(j.layer, j.phase): j for j in R.fused_jobs(net, 32, plan)}
    # FP: conv1's stats in its store; its output is materialised (the first block's add
    # reads it too); the block's second conv normalises its input while loading
    assert jobs[("conv1_conv", "fp")].acc == 1 and jobs[("conv1_conv", "fp")].xf == 0
    assert jobs[("s1b1_a_conv", "fp")].xf == 0 and jobs[("s1b1_a_conv", "fp")].in_extra == 0
    assert jobs[("s1b1_b_conv", "fp")].xf == 1 and jobs[("s1b1_b_conv", "fp")].in_extra == 0
    # a block output (relu(bn(y) + shortcut)) is materialised: one stream in the loads
    assert jobs[("s1b2_a_conv", "fp")].in_extra == 0
    assert jobs[("s1b2_a_conv", "wu")].in_extra == 0
    # BP: BN dx in the producing conv's loads (y beside dy), WU likewise beside the error
    bp = jobs[("s1b1_b_conv", "bp")]
    assert bp.in_extra == 1 and bp.xf == 1 and not bp.mask
    assert jobs[("s1b1_b_conv", "wu")].eo_extra == 1
    # the first conv of block 2 finalises block 1's output error: the add's error, the
    # mask source (the stored block output) and y of s1b1_b_bn (BN BP's x_hat), and
    # accumulates that BN's BP sums
    st = jobs[("s1b2_a_conv", "bp")]
    assert st.st_extra == 3 and st.acc == 1
    # the block's inner conv: mask and x_hat from the one y stream
    assert jobs[("s1b1_b_conv", "bp")].st_extra == 1 and jobs[("s1b1_b_conv", "bp")].acc == 1


def test_forced_groups_are_materialised():
    net = load_net("tiny")
    plan = R.initial_plan(net)
    assert R.feasible(net, plan)
    for g in R.groups(net):
        if any(c.op in ("batchnorm", "flatten", "softmax_ce") for c in net.consumers(g)):
            assert g in plan.materialise
    bad = R.Plan(frozenset(), frozenset())
    forced = [g for g in R.groups(net) if R._forced(net, g)]
    assert not forced or not R.feasible(net, bad)


def test_fused_resnet20_meets_the_vector_target_and_reports_both(resnet20, tmp_path):
    fused, plain = resnet20
    f = fused.evaluation["totals"]["fusion"]
    assert fused.design.hw.fuse and fused.design.fusion == f["decisions"]
    assert (fused.design.hw.tm, fused.design.hw.tn) == (plain.design.hw.tm, plain.design.hw.tn)
    assert f["fused"]["vector_share"] <= 0.10 < f["no_fuse"]["vector_share"]
    assert f["fused"]["effective_gflops"] > 1.3 * f["no_fuse"]["effective_gflops"]
    assert f["fused"]["dram_bytes"] < 0.8 * f["no_fuse"]["dram_bytes"]
    # the fused units cost DSPs (priced in the resource model)
    assert resource_use(fused.design.hw, fused.board).dsp > \
        resource_use(replace(fused.design.hw, fuse=False), fused.board).dsp
    w = fused.write(tmp_path / "b", hls=False, rtl=None)
    md = (w.out_dir / "report.md").read_text()
    assert "## Restructured batchnorm" in md and "| no-fuse (same array) |" in md
    assert ("materialised by a vector pass: conv1_relu, " + ", ".join(
        f"s{s}b{b}_relu" for s in (1, 2, 3) for b in (1, 2, 3)) + ".") in md
    # design.json alone regenerates the fused evaluation
    d = Design.from_json((w.out_dir / "design.json").read_text())
    ev = evaluate_design(d.net_ir, d, fused.board)
    assert ev["totals"]["cycles"] == fused.evaluation["totals"]["cycles"]


def test_cli_fuse_and_no_fuse(run_cli, tmp_path):
    code, out, _ = run_cli("build", "--board", "zcu102", "--net", "tiny", "--batch", "4",
                           "--no-fuse", "--steps", "estimate", "-o", tmp_path / "a")
    assert code == 0
    d = json.loads((tmp_path / "a" / "design.json").read_text())
    assert "fusion" not in d
    assert d == json.loads(efgen.build("tiny", "zcu102", 4).design.to_json())
    # a fused build writes hls/ (the fused program: side records, BN_FIN, the fused
    # flags) and rtl/, the reference RTL with its fused datapath (m_axi2's read channel,
    # mapped in vivado/), which runs that program
    code, out, _ = run_cli("build", "--board", "zcu102", "--net", "tiny", "--batch", "4",
                           "--fuse", "-o", tmp_path / "b")
    assert code == 0 and "restructured BN (a model)" in out
    assert "the fused datapath: the restructured-BN program" in out
    assert json.loads((tmp_path / "b" / "design.json").read_text())["fusion"]
    top = (tmp_path / "b" / "rtl" / "efgen_top.v").read_text()
    assert "m_axi2_arvalid" in top
    assert "ARVALID m_axi2_arvalid" in (tmp_path / "b" / "vivado" / "package_rtl_ip.tcl"
                                        ).read_text()
    # (and the unfused build's has neither)
    code, _, _ = run_cli("build", "--board", "zcu102", "--net", "tiny", "--batch", "4",
                         "-o", tmp_path / "c")
    assert code == 0 and "m_axi2_arvalid" not in (tmp_path / "c" / "rtl" / "efgen_top.v"
                                                  ).read_text()
    assert "m_axi2_ar" not in (tmp_path / "c" / "vivado" / "package_rtl_ip.tcl").read_text()
    prog = json.loads((tmp_path / "b" / "hls" / "program.json").read_text())
    assert "BN_FIN" in json.dumps(prog) and "--fuse" in (tmp_path / "b" / "hls" /
                                                          "run_hls.tcl").read_text()
    md = (tmp_path / "b" / "report.md").read_text()
    assert "rtl/ holds the reference RTL built with its fused datapath" in md


def test_fused_units_that_fit_nowhere_fall_back_to_the_unfused_step():
    acc = efgen.build("tiny", "pynq-z2", 4, fuse=True)
    assert acc.design.fusion is None and not acc.design.hw.fuse
    assert any("fit beside no array" in n for n in acc.design.notes)


def test_sweep_fuse_and_no_fuse(tmp_path, run_cli):
    f = tmp_path / "s.yaml"
    f.write_text("name: f\nboards: [zcu102]\nnets: [resnet20]\nbatch: [8]\nclock_mhz: [100]\n"
                 "tm: [16]\ntn: [16]\nifm_depth: [4096]\nofm_depth: [4096]\n")
    recs = {}
    for flag in ("--fuse", "--no-fuse"):
        code, _, err = run_cli("sweep", f, "-o", tmp_path / flag, "--jobs", "1", "--no-cache",
                               "--no-progress", flag)
        assert code == 0, err
        doc = json.loads((tmp_path / flag / "points.json").read_text())
        assert doc.get("fuse", False) == (flag == "--fuse")
        recs[flag] = doc["points"][0]
    a, b = recs["--fuse"], recs["--no-fuse"]
    assert a["effective_gflops"] > b["effective_gflops"] and a["dsp"] > b["dsp"]


def test_a_net_with_nothing_to_fuse_gets_no_units():
    acc = efgen.build("lenet5", "zcu102", 4, fuse=True)
    assert acc.design.fusion is None and not acc.design.hw.fuse
    assert acc.design.to_json() == efgen.build("lenet5", "zcu102", 4).design.to_json()


def test_c_simulation_of_a_fused_design_runs_and_says_what_is_not_fused(run_cli, tmp_path):
    """The generated C++ runs the fused step the model prices (efgen/hls/fused.py);
    C-simulation checks it, says it differs from the model's plan nowhere and lists what
    neither fuses (materialised or a pass, priced so)."""
    code, out, err = run_cli("build", "--board", "zcu102", "--net", "tiny", "--batch", "2",
                             "--fuse", "--csim", "-o", tmp_path / "c")
    assert code == 0, err
    assert "step 1: PASS" in out and "not built (materialised or a pass" in out
    assert "the model prices this program: no difference from its plan" in out
    acc = efgen.build("tiny", "zcu102", 2, fuse=True)
    res = acc.csim(workdir=tmp_path / "api")
    assert res.ok and res.steps[0].drift_ok