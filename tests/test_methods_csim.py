"""C-simulation of the generated C++ with gradient filtering and error-map pruning: whole
ResNet-20 steps against the golden model run with the same methods (issue 15)."""

from __future__ import annotations

import numpy as np
import pytest

import efgen
from efgen.csim.csim import compare
from efgen.golden.model import init_state, synthetic_batch, train_step
from efgen.methods.step import StepPlan

TRAINING = {"gradient_filter": {"r": 2, "layers": ["s2b1_a_conv", "s3b3_a_conv",
                                                   "s3b3_b_conv"]},
            "error_pruning": {"keep": 0.7, "layers": "all"}}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    acc = efgen.build("resnet20", "zcu102", batch=2, training=TRAINING)
    res = acc.csim(steps=2, workdir=tmp_path_factory.mktemp("csim-methods"))
    return acc, res


def test_resnet20_steps_match_the_golden_model_with_the_methods(run):
    acc, res = run
    assert res.ok and len(res.steps) == 2
    for s in res.steps:
        assert s.drift_ok, s.first_bad                  # every tensor within 1e-4
        keys = {t.key for t in s.tensors}
        assert {"s3b3_b_conv:grad.weight", "s2b1_a_conv:grad.weight",
                "s3b1_b_conv:emp_mask", "s2b1_a_conv:new.weight"} <= keys
        ops = {r.op for r in s.local}
        assert {"HOST_GF_XSUM", "HOST_GF_POOL", "HOST_GF_COPYBACK", "HOST_GF_WSUM",
                "HOST_GF_TAPSGD", "HOST_EMP", "CONV_BP", "CONV_WU"} <= ops


def test_the_comparison_sees_the_methods(run):
    """Full back-propagation's trace is far from the C++'s: the agreement is the methods'."""
    acc, res = run
    net = acc.net
    state = init_state(net, seed=0, dtype=np.float32)
    x, labels = synthetic_batch(net, 2, seed=1)
    plain = train_step(net, state, x, labels, acc._sgd(0.01, 0.9, 5e-4))
    meth = train_step(net, state, x, labels, acc._sgd(0.01, 0.9, 5e-4),
                      plan=StepPlan(acc.training))
    g = meth.trace["s3b3_b_conv:grad.weight"]
    assert np.all(g == g[:, :, :1, :1])                 # one value on every tap
    far = compare(plain.trace, {k: meth.trace[k] for k in ("s3b3_b_conv:grad.weight",
                                                           "s3b1_b_conv:grad.weight")})
    assert all(not t.ok for t in far)
    step1 = {t.key: t for t in res.steps[0].tensors}
    assert step1["s3b3_b_conv:grad.weight"].rel_err <= 1e-4


SLU = {"layer_update": {"keep": 0.5}}


def test_selective_layer_update_in_the_generated_host_runtime(tmp_path):
    """SLU: each gated block's branch runs on its running images only (the host sets the
    branch descriptors' batch to their count; HOST_SLU_GATHER/ADD/SCATTER around it), a
    skipped image's block output is its shortcut, and a block no image ran gets SGD with
    a zero gradient. Tiny's two blocks: a shortcut_a one and an identity one whose branch
    is a biased conv. Whole steps with the seeded gates, then fixed masks (none, some and
    all images running): every descriptor and every tensor within 1e-4 of the golden step."""
    from efgen.csim.csim import Csim, golden_step

    acc = efgen.build("tiny", "zcu102", batch=4, training=SLU)
    res = acc.csim(steps=3, workdir=tmp_path)
    for s in res.steps:
        assert s.ok and s.drift_ok, s.first_bad
        assert {"HOST_SLU_GATHER", "HOST_SLU_ADD", "HOST_SLU_SCATTER"} <= {r.op for r in s.local}
    sim = Csim(acc.net, acc.design, acc.board, tmp_path / "fixed")
    x, labels = synthetic_batch(acc.net, 4, seed=1)
    sgd = acc._sgd(0.01, 0.9, 5e-4)
    st = init_state(acc.net, seed=0, dtype=np.float32)
    for skip, counts in (({"add1": [1, 1, 1, 1], "add2": [1, 0, 1, 0]}, [0, 2]),
                         ({"add1": [0, 0, 0, 0], "add2": [0, 1, 1, 1]}, [4, 1])):
        skip = {n: np.array(m, bool) for n, m in skip.items()}
        golden = golden_step(acc.net, st, x, labels, sgd, StepPlan(acc.training, skip=skip))
        sim.load_state(st, x)
        sim.set_slu(skip)
        assert sim.slu_counts() == counts
        _, check = sim.step_checked(labels)
        assert check.ok
        got = sim.tensors()
        rows = compare(golden.trace, got)
        assert rows and all(r.ok for r in rows), [r for r in rows if not r.ok]
        assert got["conv4:y"].shape[0] == counts[1]           # the branch ran compactly
        if counts[0] == 0:                                  # no image ran add1's branch
            assert "HOST_SGD0" in {r.op for r in check.rows}
            assert "conv3:y" not in golden.trace and not np.any(got["conv2:grad.weight"])
            assert {"conv2:new.weight", "bn2:new.gamma"} <= {r.key for r in rows}
        # efgen_step (the host runtime's own loop over the tables) gives the same image
        stepped = sim.mem.copy()
        sim.load_state(st, x)
        sim.set_slu(skip)
        sim.step(labels)
        np.testing.assert_array_equal(sim.mem, stepped)


def test_selective_layer_update_wrong_masks_are_caught(tmp_path):
    """The comparison sees the gates: full back-propagation is far from the C++'s step,
    a run flag changed between the block's FP and BP makes it drift from the golden
    step, and a wrongly scattered branch error fails its descriptor's local check."""
    from efgen.csim.csim import Csim, golden_step

    acc = efgen.build("tiny", "zcu102", batch=4, training=SLU)
    sim = Csim(acc.net, acc.design, acc.board, tmp_path)
    x, labels = synthetic_batch(acc.net, 4, seed=1)
    sgd = acc._sgd(0.01, 0.9, 5e-4)
    st = init_state(acc.net, seed=0, dtype=np.float32)
    skip = {"add1": np.array([0, 1, 0, 0], bool), "add2": np.array([1, 0, 0, 1], bool)}
    golden = golden_step(acc.net, st, x, labels, sgd, StepPlan(acc.training, skip=skip))
    keys = ("conv2:grad.weight", "conv4:grad.weight", "conv1:grad.weight")

    def run(tamper=None):
        sim.load_state(st, x)
        sim.set_slu(skip)
        _, check = sim.step_checked(labels, tamper)
        return check, {r.key: r for r in compare(golden.trace, sim.tensors())}

    check, rows = run()
    assert check.ok and all(rows[k].ok for k in keys)
    plain = train_step(acc.net, st, x, labels, sgd)
    far = compare(plain.trace, {k: sim.tensors()[k] for k in keys})
    assert not any(r.ok for r in far)
    run_flags = sim.prog.regions["slu:run:add1"]

    def flip(index, step, mem):                         # the gate changes after FP
        if step is not None and step.what == "slu_add" and step.layer == "add1":
            mem[run_flags.offset + 1] = 1.0 - mem[run_flags.offset + 1]

    check, rows = run(flip)
    assert not rows["conv1:grad.weight"].ok and not rows["conv2:grad.weight"].ok

    def swap(index, step, mem):                         # images' errors exchanged
        if step is not None and step.what == "slu_scatter" and step.layer == "add1":
            r = sim.prog.regions["errpart:pool1:conv2"]
            img = r.words // r.shape[0]
            a = mem[r.offset:r.offset + img].copy()
            mem[r.offset:r.offset + img] = mem[r.offset + 2 * img:r.offset + 3 * img]
            mem[r.offset + 2 * img:r.offset + 3 * img] = a

    check, _ = run(swap)
    assert not all(r.ok for r in check.rows if r.op == "HOST_SLU_SCATTER")
    assert all(r.ok for r in check.rows if r.op != "HOST_SLU_SCATTER")


def test_minibatch_drop_in_the_generated_host_runtime(tmp_path):
    """SMD: the host draws each mini-batch's drop (seeded per step, as the golden model
    does) and runs, for a dropped one, only efgen_step_dropped's zero-gradient SGD
    (momentum and weight decay still move every parameter); each of its descriptors is
    checked against numpy and the state against the golden model's."""
    from efgen.methods.step import draw_plan

    acc = efgen.build("tiny", "zcu102", batch=2, training={"minibatch_drop": {"p": 0.5}})
    res = acc.csim(steps=4, workdir=tmp_path)
    x, labels = synthetic_batch(acc.net, 2, seed=1)
    drops = [draw_plan(acc.net, acc.training, x, labels, seed=k).drop for k in (1, 2, 3, 4)]
    assert any(drops) and not all(drops)                # both kinds of step happen
    state = {}
    for s, dropped in zip(res.steps, drops):
        assert s.ok and s.drift_ok, s.first_bad
        ops = {r.op for r in s.local}
        keys = {t.key for t in s.tensors}
        if dropped:
            assert ops == {"HOST_SGD0"} and np.isnan(s.loss_csim)
            assert {"conv1:new.weight", "conv1:vel.weight", "bn1:new.gamma",
                    "bn1:vel.beta"} <= keys
        else:
            assert "CONV_WU" in ops and "HOST_SGD0" not in ops and np.isfinite(s.loss_csim)
        state[s.step] = s
    tamper_hit = []

    def tamper(index, step, mem):                       # a wrong update is caught
        if step is not None and step.what == "sgd0" and not tamper_hit:
            tamper_hit.append(step.layer)
            mem[step.desc.a[2]] += 1.0

    from efgen.csim.csim import Csim
    sim = Csim(acc.net, acc.design, acc.board, tmp_path / "t")
    sim.load_state(init_state(acc.net, seed=0, dtype=np.float32), x)
    _, check = sim.step_checked(labels, tamper, dropped=True)
    assert tamper_hit and not all(r.ok for r in check.rows)
def test_pruned_convs_run_on_their_kept_channels_only(run):
    """A pruned conv without gradient filtering or bias is gathered: its BP and WU
    descriptors run ceil(0.7 * Cout) channels, as the schedule's jobs price them, and an
    SGD pass scatters the kept filters' gradient; a conv that is also filtered runs every
    channel with the pruned ones zeroed, and the model prices that too."""
    from efgen.hls.desc import FLAGS, OPS
    from efgen.hls.program import build_program
    from efgen.methods.cost import emp_gathered, method_jobs
    from efgen.methods.golden import emp_kept

    acc, res = run
    net, design = acc.net, acc.design
    prog = build_program(net, design)
    steps = {}
    for s in prog.bp:
        steps.setdefault((s.layer, s.what), s.desc)
    gathered = emp_gathered(net, acc.training)
    assert "s3b1_b_conv" in gathered and "s3b3_b_conv" not in gathered
    jobs = {(j.layer, j.phase): j for j in method_jobs(net, 2, acc.training)}
    for name in ("s1b1_a_conv", "s3b1_b_conv"):
        kept = emp_kept(net[name].channels, 0.7)
        assert kept < net[name].channels
        emp = steps[(name, "emp")]
        assert emp.flags & FLAGS["GATHER"] and emp.n_src == kept
        assert steps[(name, "bp")].out_c == kept == jobs[(name, "bp")].red
        assert steps[(name, "wu")].out_c == kept == jobs[(name, "wu")].out
        assert steps[(name, "emp_sgd")].op == OPS["HOST_EMP_SGD"]
    emp = steps[("s3b3_b_conv", "emp")]
    assert not emp.flags & FLAGS["GATHER"]
    assert jobs[("s3b3_b_conv", "bp")].red == net["s3b3_b_conv"].channels
    ops = {r.op for s in res.steps for r in s.local}
    assert "HOST_EMP_SGD" in ops                        # checked against its numpy twin


def test_instance_filtering_in_the_generated_host_runtime(tmp_path):
    """EIF: the host runs the frozen filter net's FP on all B images (its batchnorms in
    inference mode, HOST_BN_EVAL), HOST_EIF ranks the instances by the filter's loss and
    packs the top ceil(keep*B) images and labels into the main net's input, and the main
    step (built at the kept batch) trains on them: the kept mask is the golden
    draw_plan's, every tensor and the new state within 1e-4 of the golden method_step."""
    from efgen.csim.csim import Csim
    from efgen.methods.step import draw_plan

    B, K = 5, 3                                         # ceil(0.5 * 5)
    acc = efgen.build("tiny", "zcu102", batch=B,
                      training={"instance_filter": {"keep": 0.5, "filter_net": "tiny"}})
    res = acc.csim(steps=2, workdir=tmp_path)
    x, labels = synthetic_batch(acc.net, B, seed=1)
    fstate = init_state(acc.training.instance_filter.net, seed=0, dtype=np.float32)
    keep = draw_plan(acc.net, acc.training, x, labels, seed=1, filter_state=fstate
                     ).keep_instances
    assert keep.sum() == K and not keep[:K].all()      # not simply the first K images
    for s in res.steps:
        assert s.ok and s.drift_ok, s.first_bad
        rows = {t.key: t for t in s.tensors}
        assert rows["eif:keep"].ok and rows["eif:keep"].max_abs == 0.0
        assert {"conv1:grad.weight", "bn1:new.gamma", "fc:new.weight"} <= set(rows)
        ops = {r.op for r in s.local}
        assert {"HOST_EIF", "HOST_BN_EVAL", "CONV_FP", "CONV_WU", "SOFTMAX_CE"} <= ops
    sim = Csim(acc.net, acc.design, acc.board, tmp_path / "t")
    assert sim.prog.main_batch == K and sim.prog.regions["act:conv1"].shape[0] == K
    sim.filter_state = fstate
    sim.load_state(init_state(acc.net, seed=0, dtype=np.float32), x)
    _, check = sim.step_checked(labels)
    assert all(r.ok for r in check.rows)
    got_keep, got_labels = sim.kept()
    np.testing.assert_array_equal(got_keep, keep)
    np.testing.assert_array_equal(got_labels, labels[keep])
    # the main step trained on the kept instances, not on all B
    full = train_step(acc.net, init_state(acc.net, seed=0, dtype=np.float32), x, labels,
                      acc._sgd(0.01, 0.9, 5e-4))
    far = compare(full.trace, {"conv1:grad.weight": sim.tensors()["conv1:grad.weight"]})
    assert not far[0].ok

    def tamper(index, step, mem):                       # a wrong selection is caught
        if step is not None and step.what == "eif":
            r = sim.prog.regions["eif:keep"]
            mem[r.offset:r.offset + B] = 1.0 - mem[r.offset:r.offset + B]

    sim.load_state(init_state(acc.net, seed=0, dtype=np.float32), x)
    _, check = sim.step_checked(labels, tamper)
    assert not all(r.ok for r in check.rows if r.op == "HOST_EIF")


@pytest.mark.parametrize("training", [
    {"instance_filter": {"keep": 0.5, "filter_net": "tiny"}}, SLU], ids=["eif", "slu"])
def test_host_level_methods_whole_step_testbench_under_cxx14(tmp_path, training):
    """efgen_tb.cpp (Vitis's C-simulation) with EIF or SLU, as C++14 without warnings:
    one efgen_step call gives the golden image of the step (EIF: on all B labels, the
    filter, the selection and the main step on the kept instances; SLU: the gates' run
    flags in the image, the gated branches on their running images)."""
    import shutil
    import subprocess

    if shutil.which("g++") is None:
        pytest.fail("g++ not installed")
    acc = efgen.build("tiny", "zcu102", batch=5, training=training)
    acc.csim(steps=1, workdir=tmp_path)
    hls = tmp_path / "hls"
    subprocess.run(["g++", "-O1", "-Wall", "-Wextra", "-Werror", "-ffp-contract=off",
                    "-std=c++14", "-I.", "-Ihls_kernels", "efgen_tb.cpp", "efgen_host.cpp",
                    "efgen_top.cpp", "-o", str(tmp_path / "tb")], cwd=hls, check=True)
    p = subprocess.run([str(tmp_path / "tb")], cwd=hls, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0 and " 0 of " in p.stdout, p.stdout
