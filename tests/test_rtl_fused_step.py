"""A fused build's whole training step on the reference RTL (issue 12): the restructured-BN
program (efgen.hls.program with the Design's fusion plan) on an RTL built with its fused
datapath (RtlParams.fuse, which :func:`efgen.rtl.top.rtl_params` gives a fused Design):
the conv descriptors with their side records (layer_seq, tile_rd, tile_wr), BN_FIN and
BN_BP with FLAG_SUMS / FLAG_DXK on bn_unit, the pooling on pool_unit; only the softmax
cross-entropy on the host. Every descriptor is checked against the golden op on its own
inputs (the verdict), every tensor against the golden step (the drift), and the measured
cycles against the RTL's model (efgen.cosim.validate: the fused datapath's terms)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import require_tool as _require

from efgen.cosim.layers import BAR

CHAIN = str(Path(__file__).parent / "fixtures" / "fused-chain.yaml")
MODEL_BAR = 5.0      # percent: conv/linear layer-phases (tests/test_rtl_top.py), vec/pool
BN_BAR = 2.0         # percent: bn_unit's descriptors (tests/test_rtl_top.py's step)
CONV = ("CONV_FP", "CONV_BP", "CONV_WU")


def _design(net: str):
    from efgen.frontend import load_net
    from efgen.frontend.boards import load_board
    from efgen.model.schedule import Request, schedule

    n = load_net(net)
    return n, schedule(Request(n, load_board("zcu102"), batch=2, tm=4, tn=4, fuse=True))


def _model_misses(ran, model: dict) -> list:
    """The RTL descriptors whose model cycles miss the measured ones beyond the bars."""
    bad = []
    for r in ran:
        if r["where"] != "rtl":
            continue
        m = model.get(f"{r['layer']}:{r['phase']}")
        bar = BN_BAR if r["op"].startswith("BN_") else MODEL_BAR
        if m is None or abs(100.0 * (m - r["cycles"]) / r["cycles"]) > bar:
            bad.append((r["layer"], r["phase"], r["op"], r["cycles"], m))
    return bad


def test_fused_design_gets_the_fused_rtl_and_its_records_fields():
    """rtl_params of a fused Design builds the fused datapath (of an unfused one, not);
    the step's layer-phases carry what the program's side records ask of the RTL, so the
    model prices the fused datapath's terms."""
    from efgen.cosim import layers as cosim
    from efgen.frontend import load_net
    from efgen.frontend.boards import load_board
    from efgen.model.schedule import Request, schedule
    from efgen.rtl.top import rtl_params

    net, design = _design(CHAIN)
    p = rtl_params(design)
    assert design.hw.fuse and p.fuse
    plain = schedule(Request(net, load_board("zcu102"), batch=2, tm=4, tn=4))
    assert not rtl_params(plain).fuse
    assert rtl_params(plain) == replace(p, fuse=False)      # the same RTL otherwise
    lps = {lp.label: lp for lp in cosim.layer_phases(net, design, p)}
    f = {k: (lp.relu, lp.mask, lp.stats, lp.mk, lp.xf, lp.dx) for k, lp in lps.items()}
    assert f == {
        "conv1:fp": (False, False, True, False, 0, False),   # BN sums in the store
        "conv1:wu": (False, False, False, False, 0, True),   # BN BP dx in the error loads
        "conv2:fp": (False, False, True, False, 0, False),
        "conv2:bp": (False, False, False, False, 0, True),
        "conv2:wu": (False, False, False, False, 0, True),
        "conv3:fp": (False, False, True, False, 2, False),   # + bn2 -> relu in the loads
        "conv3:bp": (False, True, True, True, 0, True),      # dx, the BN mask and sums
        "conv3:wu": (False, False, False, False, 2, True),   # wdx2
        "fc:fp": (False, False, False, False, 0, False),
        "fc:bp": (False, False, False, False, 0, False),
        "fc:wu": (False, False, False, False, 0, False)}
    # tiny's BP records: the store adds another sender's error (SE: conv2, conv4) and
    # conv4's BN BP sums take y at SK
    tiny, dt = _design("tiny")
    bp = {lp.label: (lp.se, lp.sk, lp.mk, lp.stats, lp.dx)
          for lp in cosim.layer_phases(tiny, dt, rtl_params(dt)) if lp.phase == "bp"}
    assert bp == {"conv2:bp": (True, False, False, False, True),
                  "conv3:bp": (False, False, True, True, True),
                  "conv4:bp": (True, True, True, True, False),
                  "fc:bp": (False, False, False, False, False)}
    # the unfused Design's layer-phases are the net's, untouched
    d0 = schedule(Request(tiny, load_board("zcu102"), batch=2, tm=4, tn=4))
    assert not any(lp.stats or lp.mk or lp.xf or lp.dx
                   for lp in cosim.layer_phases(tiny, d0, rtl_params(d0)))


def test_cli_cosim_fused_step_runs_whole_on_the_rtl(tmp_path, build_cache, capsys):
    """`efgen cosim --step --fuse` of a net whose fused BP records need no SE/SK: every
    descriptor on the RTL but the loss, the verdict and the drift within BAR, and every
    descriptor's model cycles beside the measured ones, within the bars."""
    _require("verilator")
    from efgen.cli import main

    code = main(["cosim", "--net", CHAIN, "--tiles", "Tm=4,Tn=4", "--batch", "2", "--step",
                 "--fuse", "-o", str(tmp_path / "c")])
    out = capsys.readouterr().out
    print(out)
    assert code == 0, out
    st = json.loads((tmp_path / "c" / "cosim.json").read_text())["step"]
    assert st["ok"] and st["max_rel"] <= BAR and st["local_max_rel"] <= BAR
    assert abs(st["loss"] - st["golden_loss"]) <= 1e-5 * abs(st["golden_loss"])
    ran = st["ran"]
    # the host runs the loss and nothing else; no host parts
    assert [r["op"] for r in ran if r["where"] != "rtl"] == ["SOFTMAX_CE"]
    assert not any(r["host_parts"] for r in ran)
    ops = {r["op"] for r in ran if r["where"] == "rtl"}
    assert {*CONV, "BN_FIN", "BN_BP", "MAXPOOL_FP", "MAXPOOL_BP", "AVGPOOL_FP",
            "AVGPOOL_BP"} == ops
    assert sum(r["where"] == "rtl" for r in ran) == 21 and all(
        r["cycles"] > 0 for r in ran if r["where"] == "rtl")
    # the restructured BN's BN_BP: with the sums (bn2: conv2's BP store has no sums) and
    # without (bn1, bn3: conv3's BP store summed them)
    assert {(r["layer"], r["phase"]) for r in ran if r["op"] == "BN_BP"} == {
        ("bn1", "bp"), ("bn2", "bp"), ("bn3", "bp")}
    assert _model_misses(ran, st["model"]) == []
    assert "bn2:fp" in out and "PASS" in out
    # the layer-phase mode with --fuse: conv3's BP (dx load, recomputed mask, BN BP sums)
    # on its own synthetic case, against the harness's golden and the same model
    assert main(["cosim", "--net", CHAIN, "--tiles", "Tm=4,Tn=4", "--batch", "2", "--fuse",
                 "--layer", "conv3", "--phase", "bp", "--no-progress",
                 "-o", str(tmp_path / "l")]) == 0
    [row] = json.loads((tmp_path / "l" / "cosim.json").read_text())["layouts"]["reshaped"]
    assert row["label"] == "conv3:bp" and row["max_rel"] <= BAR
    assert abs(row["err_pct"]) <= MODEL_BAR and row["model"] == st["model"]["conv3:bp"]


def test_tiny_fused_training_step(tmp_path_factory, build_cache):
    """tiny's fused step, whole on the RTL (its BP records add other senders' errors, SE,
    and read the BN BP sums' y, SK, in the store; the residual adds in BN_FIN and the
    stores), compared as the unfused step is (tests/test_rtl_top.py::test_tiny_training_step):
    the verdict, the drift, the vector units' model per descriptor; the conv/linear
    layer-phases' model in total (per layer-phase: tests/test_rtl_top.py's cases)."""
    _require("verilator")
    from efgen.cosim import layers as cosim
    from efgen.cosim.cli import _step_model
    from efgen.cosim.step import format_step, run_rtl_step
    from efgen.rtl.top import rtl_params

    net, design = _design("tiny")
    p = rtl_params(design)
    assert p.fuse
    res = run_rtl_step(net, design, p, workdir=tmp_path_factory.mktemp("fstep"),
                       plusargs=cosim.RANDOM_INIT + ("+verilator+seed+7",))
    model = _step_model(p, res, {lp.label: lp for lp in cosim.layer_phases(net, design, p)},
                        design)
    print(format_step(res, model))
    assert res.ok, format_step(res, model)
    assert res.descriptors == len(res.ran) and all(r.ok for r in res.local)
    assert res.max_rel <= BAR
    assert abs(res.loss - res.golden_loss) <= 1e-5 * abs(res.golden_loss)
    assert [r.op for r in res.ran if r.where != "rtl"] == ["SOFTMAX_CE"]
    assert not any(r.host_parts for r in res.ran)
    assert {"BN_FIN", "BN_BP", "ADD_FP", *CONV} <= {r.op for r in res.ran}
    lps = {lp.label: lp for lp in cosim.layer_phases(net, design, p)}
    assert lps["conv4:bp"].se and lps["conv4:bp"].sk and lps["conv2:bp"].se
    ran = [vars(r) for r in res.ran]
    assert _model_misses([r for r in ran if r["op"] not in CONV], model) == []
    conv = [(r["cycles"], model[f"{r['layer']}:{r['phase']}"]) for r in ran if r["op"] in CONV]
    got, want = sum(c for c, _ in conv), sum(m for _, m in conv)
    assert len(conv) == 14 and abs(100.0 * (want - got) / got) <= MODEL_BAR, conv
