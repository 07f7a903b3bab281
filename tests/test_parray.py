"""Issue 13 (a third unrolled dimension P and first-layer tap packing) in the model, the
scheduler and the golden tiled reference. The HLS C++ with P > 1 and packing runs in
tests/test_csim.py; the RTL flow's P (1, 2, 4, packing at P = 1) is tested here."""

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from efgen.frontend import load_net
from efgen.frontend.boards import load_board
from efgen.model import engine
from efgen.model.evaluate import evaluate_design
from efgen.model.schedule import Request, schedule

REPO = Path(__file__).resolve().parents[1]
# The last commit before issue 13 changed the model: P = 1 without packing must schedule
# the same designs and price every layer-phase at the same cycles as it did. (A later
# change that alters the model on purpose moves this to that change's commit.)
BEFORE_P = "03e7311"   # (was a3dc772, d3530e0; 03e7311 priced full and last reduction blocks
#                         apart and made WU's fill continuous)
SAME_CASES = [("resnet20", "zcu102", 32, True), ("vgg16-cifar", "zcu104", 8, False),
              ("lenet5", "kv260", 4, False), ("resnet20-b", "ultra96v2", 4, True)]

_PROBE = r"""
import json, sys
from efgen.frontend import load_net
from efgen.frontend.boards import load_board
from efgen.model.evaluate import evaluate_design
from efgen.model.schedule import Request, schedule
out = []
for net, board, batch, fuse in json.loads(sys.argv[1]):
    n, b = load_net(net), load_board(board)
    kw = json.loads(sys.argv[2])
    d = schedule(Request(n, b, batch=batch, clock_mhz=100.0, fuse=fuse, **kw))
    ev = evaluate_design(n, d, b)
    dd = d.to_dict()
    dd.pop("efgen_version")
    out.append({"design": dd, "rows": [[r.layer, r.phase, r.engine, r.cycles] for r in ev["rows"]]})
print(json.dumps(out))
"""


def _probe(root: Path, kw: dict) -> list:
    r = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(SAME_CASES), json.dumps(kw)],
                       cwd=root, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout)


def test_p1_reproduces_the_designs_and_cycles_before_issue_13(tmp_path):
    """Schedule several nets/boards with the model as it was before P existed (extracted
    from git) and with P = 1, no packing, now: the same Designs and per-row cycles."""
    try:
        tar = subprocess.run(["git", "-C", str(REPO), "archive", BEFORE_P, "efgen", "configs"],
                             capture_output=True, timeout=120, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.fail(f"cannot extract commit {BEFORE_P} with git: {exc}")
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        t.extractall(tmp_path)
    before = _probe(tmp_path, {})
    for kw in ({}, {"p": 1, "pack": False}):          # the default (no --parray), P = 1
        now = _probe(REPO, kw)
        assert len(before) == len(now) == len(SAME_CASES)
        for case, a, b in zip(SAME_CASES, before, now):
            assert a["design"] == b["design"], (case, kw)
            assert a["rows"] == b["rows"], (case, kw)


# ---- the golden tiled reference: P pixel lanes and tap packing ---------------------------

from efgen.golden import ops, tiled  # noqa: E402
from efgen.golden.tiled import Tiling  # noqa: E402

TILED = [
    # (B, N, M, H, K, S, Pad, Tm, Tn, Tr, Tc): odd widths leave the last column group idle
    (2, 3, 8, 9, 3, 1, 1, 4, 8, 3, 5),      # first layer: 3 channels pack 2 taps in 8 lanes
    (1, 3, 6, 8, 3, 2, 1, 4, 16, 2, 4),     # stride 2, 5 taps in 16 lanes
    (1, 2, 5, 7, 5, 1, 2, 2, 16, 7, 7),     # K=5: 8 taps of 25 per pass, ragged last pass
    (1, 6, 10, 9, 3, 2, 1, 4, 4, 2, 3),     # no packing (6 > 4/2), Tm != Tn
    (2, 5, 7, 6, 1, 1, 0, 8, 16, 4, 3),     # K=1: nothing to pack
]


@pytest.mark.parametrize("p", [1, 2, 4])
@pytest.mark.parametrize("case", TILED, ids=lambda c: "B{}N{}M{}H{}K{}S{}P{}_t{}x{}_{}x{}".format(*c))
def test_tiled_p_and_packing_equal_dense(case, p):
    B, N, M, H, K, S, Pad, tm, tn, tr, tc = case
    t = Tiling(tm, tn, tr, tc, p=p, pack=True)
    rng = np.random.default_rng(H * 7 + K)
    x, w = rng.standard_normal((B, N, H, H)), rng.standard_normal((M, N, K, K))
    b = rng.standard_normal(M)
    y = ops.conv_fp(x, w, b, S, Pad)
    dy = rng.standard_normal(y.shape)
    rel = lambda a, r: np.max(np.abs(a - r)) / np.max(np.abs(r))  # noqa: E731
    for fm_kind, w_kind in (("blocked", "blocked"), ("nchw", "oihw")):
        assert rel(tiled.conv_fp(x, w, b, S, Pad, t, fm_kind, w_kind), y) < 1e-12
        assert rel(tiled.conv_bp(dy, w, S, Pad, (H, H), t, fm_kind, w_kind),
                   ops.conv_bp(dy, w, S, Pad, (H, H))) < 1e-12
        assert rel(tiled.conv_wu(dy, x, S, Pad, K, t, fm_kind, w_kind),
                   ops.conv_wu(dy, x, S, Pad, K)) < 1e-12


def test_packing_rule_is_the_models():
    """The golden reference packs exactly the jobs the model prices as packed, with the
    same taps (engine.packed_taps), and 3-channel 3x3 conv1 uses >= half the lanes."""
    from efgen.design import HwParams
    for tn in (4, 8, 12, 16, 24, 32):
        hw = HwParams(tn=tn, pack=True)
        t = Tiling(4, tn, 1, 1, pack=True)
        for red in (1, 2, 3, 5, 8, 16):
            for k in (1, 3, 5, 7):
                for ph in (engine.FP, engine.WU):
                    assert float(engine.packed_taps(red, k, ph, 0, hw)) == t.taps(red, k)
                assert float(engine.packed_taps(red, k, engine.BP, 0, hw)) == 1
        taps = t.taps(3, 3)
        use = 27 / (tn * -(-9 // taps))      # busy lanes over lanes x passes
        assert use >= 0.5, (tn, use)


# ---- whole steps: the restructured step, tile by tile, against the golden step ----------

def _step_errors(name, batch, dtype, tiling, seed=0):
    from efgen.golden.model import SGD, cast_state, init_state, synthetic_batch, train_step
    from efgen.golden.restructured import restructured_step
    from efgen.model import restructure as R

    net = load_net(name)
    state = cast_state(init_state(net, seed), dtype)
    x, labels = synthetic_batch(net, batch, seed)
    x = x.astype(dtype)
    gold = train_step(net, state, x, labels, SGD())
    got = restructured_step(net, state, x, labels, SGD(), R.initial_plan(net), tiling)
    errs = {k: float(np.max(np.abs(v.reshape(gold.trace[k].shape) - gold.trace[k]))
                     / (np.max(np.abs(gold.trace[k])) + 1e-30)) for k, v in got.tensors.items()}
    assert any(":grad.weight" in k for k in errs) and len(errs) > 20
    return errs


@pytest.mark.parametrize("p", [1, 2, 4])
def test_tiled_step_float64_with_p_and_packing(p):
    errs = _step_errors("tiny", 3, np.float64, Tiling(8, 8, 3, 5, p=p, pack=True))
    assert max(errs.values()) < 1e-10, sorted(errs.items(), key=lambda t: -t[1])[:3]


def test_tiled_step_float32_resnet20_p2_packed():
    errs = _step_errors("resnet20", 2, np.float32, Tiling(16, 8, 16, 32, p=2, pack=True), seed=1)
    assert max(errs.values()) < 1e-4, sorted(errs.items(), key=lambda t: -t[1])[:3]


# ---- the model: pricing and the scheduler's search ------------------------------------------

def _conv1_lane_use(design, net, board):
    """Useful MACs over (compute cycles x the array's MACs) of conv1's FP and WU."""
    rows = [r for r in evaluate_design(net, design, board)["rows"]
            if r.engine == "conv" and r.layer == "conv1_conv"]
    return {r.phase: r.macs / (r.compute_cycles * design.hw.macs) for r in rows}


def test_parray_search_fits_the_caps_and_fills_conv1():
    from efgen.model.resources import over_caps, resource_use

    net, board = load_net("resnet20"), load_board("zcu102")
    base = schedule(Request(net, board, batch=32, clock_mhz=100.0))
    d = schedule(Request(net, board, batch=32, clock_mhz=100.0, parray=True))
    assert d.hw.pack and not base.hw.pack and base.hw.p == 1
    assert not over_caps(resource_use(d.hw, board), board)
    # the --parray search includes every P = 1 candidate: never slower than their best
    t0 = evaluate_design(net, base, board)["totals"]["cycles"]
    t1 = evaluate_design(net, d, board)["totals"]["cycles"]
    assert t1 <= t0
    before, after = _conv1_lane_use(base, net, board), _conv1_lane_use(d, net, board)
    assert before["fp"] < 0.5 and before["wu"] < 0.5          # 3 of Tn lanes: today
    assert after["fp"] >= 0.5 and after["wu"] >= 0.5, after  # issue 13's bar


def test_p_prices_compute_dsp_and_buffer_ports():
    from dataclasses import replace

    from efgen.design import HwParams
    from efgen.model.resources import resource_use

    board = load_board("zcu102")
    hw = HwParams(tm=8, tn=8, ifm_depth=2048, ofm_depth=2048, wbuf_depth=512)
    u1, u2, u4 = (resource_use(replace(hw, p=p), board) for p in (1, 2, 4))
    assert u2.dsp_array == 2 * u1.dsp_array and u4.dsp_array == 4 * u1.dsp_array
    assert u2.bram_wbuf == u1.bram_wbuf                      # one weight a cycle serves P lanes
    assert u2.bram_ifm == u1.bram_ifm and u4.bram_ifm == 2 * u1.bram_ifm  # 2 ports, then copies
    # at 512 words a 32-bit bank is one RAMB18 read on one port (36-bit simple dual port),
    # two read on both (a true dual port is 18 bits wide a port: UG573)
    s1, s2 = (resource_use(replace(hw, ifm_depth=512, p=p), board) for p in (1, 2))
    assert s1.bram_ifm == 8 * 2 * 1 and s2.bram_ifm == 8 * 2 * 2
    assert u4.bram_ofm >= u1.bram_ofm                        # P banks of depth/P
    assert hw.peak_gflops() * 2 == replace(hw, p=2).peak_gflops()
    # compute: a 32-wide tile row takes ceil(32/P) cycles per kernel offset (P = 3: 11,
    # the last group with 2 of 3 lanes busy); 32 one-row tiles, one block, one step
    net = load_net("resnet20")
    job = [j for j in engine.jobs_for(net, 1) if j.layer == "s1b1_a_conv" and j.phase == "fp"]
    for p in (1, 2, 3, 4):
        r = engine.evaluate_chosen(job, [(1, 32, 1, "wo")], replace(hw, p=p, tm=16, tn=16),
                                   4, 1e6, "reshaped")
        assert r["compute_cycles"][0] == 32 * (9 * -(-32 // p) + hw.mac_depth)


# ---- the CLI: the HLS build takes P; the RTL flow builds P in (1, 2, 4), packing at P = 1 --

def test_rtl_flow_builds_p_2_and_refuses_what_it_does_not_build(tmp_path, run_cli):
    code, out, err = run_cli("build", "--board", "kv260", "--net", "tiny", "--batch", "2",
                             "--target", "rtl", "--tiles", "Tm=4,Tn=4,P=2", "-o", tmp_path / "p2")
    assert code == 0, err
    spec = json.loads((tmp_path / "p2" / "rtl" / "rtl.json").read_text())
    assert spec["engine"]["p"] == 2 and "pack" not in spec["engine"]
    assert "4x4x2 engine" in out
    for extra, where, fix in ((["--tiles", "Tm=4,Tn=4,P=3"], "--tiles P", "--target hls"),
                              (["--tiles", "Tm=4,Tn=4,P=2", "--pack"], "--pack", "drop --pack")):
        code, out, err = run_cli("build", "--board", "kv260", "--net", "tiny", "--batch", "2",
                                 "--target", "rtl", *extra, "-o", tmp_path / "x")
        assert code == 2 and out == ""
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in err, err
        assert lines[0].startswith("efgen: error:") and where in lines[0] and fix in lines[0]
        assert not (tmp_path / "x").exists()
    # efgen cosim (the RTL co-simulation): P outside (1, 2, 4) is refused the same way
    code, out, err = run_cli("cosim", "--board", "kv260", "--net", "tiny", "--tiles",
                             "Tm=4,Tn=4,P=3")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--tiles P" in err


def test_parray_build_writes_rtl_only_where_the_rtl_builds_it(tmp_path, run_cli):
    out = tmp_path / "p2"
    code, stdout, err = run_cli("build", "--board", "kv260", "--net", "tiny", "--batch", "2",
                                "--tiles", "Tm=8,Tn=8,P=2", "--stop-after", "hls", "-o", out)
    assert code == 0, err
    d = json.loads((out / "design.json").read_text())
    assert d["hw"]["p"] == 2 and d["hw"]["pack"] is True
    params = (out / "hls" / "efgen_params.h").read_text()
    assert "#define EFGEN_P 2" in params and "#define EFGEN_PACK 1" in params
    assert not (out / "rtl").exists()         # P = 2 with packing: not built in the RTL
    code, stdout, err = run_cli("build", "--board", "kv260", "--net", "tiny", "--batch", "2",
                                "--tiles", "Tm=8,Tn=8,P=2", "-o", tmp_path / "pk")
    assert code == 0, err
    assert not (tmp_path / "pk" / "rtl").exists()
    assert [ln for ln in stdout.splitlines() if "rtl/ not written" in ln and "P = 1" in ln]
    code, stdout, err = run_cli("build", "--board", "kv260", "--net", "tiny", "--batch", "2",
                                "--parray", "-o", tmp_path / "pa")
    assert code == 0, err
    hw = json.loads((tmp_path / "pa" / "design.json").read_text())["hw"]
    assert hw.get("p", 1) > 1 and not hw.get("pack", False), hw   # 8x4x4 on kv260 today
    spec = json.loads((tmp_path / "pa" / "rtl" / "rtl.json").read_text())
    assert spec["engine"]["p"] == hw["p"]


def test_fused_step_with_p2_and_packing_in_csim(tmp_path):
    """--fuse with P = 2 and conv1 packed: the fused program's loader (its second-stream
    variant) packs too; the step within 1e-4 of the golden, every descriptor checked."""
    import efgen
    from efgen.csim.csim import BAR, format_report

    acc = efgen.build("tiny", "zcu102", 2, fuse=True, tiles=(8, 16, 2))
    assert acc.design.hw.p == 2 and acc.design.hw.pack and acc.design.fusion is not None
    res = acc.csim(workdir=tmp_path)
    step = res.steps[0]
    assert step.ok, format_report(res)
    assert max(t.rel_err for t in step.tensors) <= BAR


@pytest.mark.parametrize("p", [2, 4])
def test_tiled_linear_wu_sums_p_images_by_the_tree(p):
    """A linear layer's P lanes are images (its 1 x batch map): WU's adder tree over P."""
    rng = np.random.default_rng(3)
    x, dy = rng.standard_normal((7, 20)), rng.standard_normal((7, 6))
    t = Tiling(4, 8, 1, 5, p=p)
    np.testing.assert_allclose(tiled.conv_wu(dy, x, 1, 0, 1, t), ops.linear_wu(dy, x),
                               rtol=1e-12)
    # float32: the tree's order differs from the per-image sum in the last bits only
    x32, dy32 = x.astype(np.float32), dy.astype(np.float32)
    got = tiled.conv_wu(dy32, x32, 1, 0, 1, t)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, ops.linear_wu(dy, x), rtol=1e-4, atol=1e-5)


def test_rtl_flow_builds_tap_packing(tmp_path, run_cli):
    """--pack alone (no P search): the reference RTL builds first-layer tap packing
    (RtlParams.pack, tests/test_rtl_top.py's pack sets), the Design prices it."""
    for flag, packed in (("--pack", True), ("--no-pack", False)):
        out = tmp_path / flag.strip("-")
        code, stdout, err = run_cli("build", "--board", "kv260", "--net", "tiny", "--batch", "2",
                                    "--tiles", "Tm=8,Tn=8", "--target", "rtl", flag, "-o", out)
        assert code == 0, err
        d = json.loads((out / "design.json").read_text())
        assert d["hw"].get("p", 1) == 1 and d["hw"].get("pack", False) is packed
        rtl = json.loads((out / "rtl" / "rtl.json").read_text())
        assert rtl["engine"].get("pack", False) is packed
        assert ("pk_job" in (out / "rtl" / "layer_seq.v").read_text()) is packed
