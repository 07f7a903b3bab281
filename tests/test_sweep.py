"""Sweeps (efgen/sweep.py): outputs, determinism across --jobs, Pareto fronts, over-cap
points, bad sweep files, and all-or-nothing output folders."""

from __future__ import annotations

import csv
import itertools
import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from efgen import dse as sweep
from efgen.cli import cmd_sweep
from efgen.errors import EfgenError
from efgen.frontend.boards import load_board

ROOT = Path(__file__).resolve().parent.parent

SMALL = """\
name: small
boards: [zcu102, pynq-z2]
nets: [tiny]
batch: [4]
tm: [2, 4, 64]
tn: [2, 8]
ifm_depth: [1024, 2048]
"""
SMALL_POINTS = 2 * 1 * 1 * 3 * 2 * 2     # boards x nets x batch x tm x tn x ifm_depth


def _write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.fixture(scope="module")
def small_runs(tmp_path_factory):
    """The SMALL sweep run with --jobs 1 (in this process) and --jobs 2 (a LocalCluster of
    two worker processes), both computing every point (no cache)."""
    d = tmp_path_factory.mktemp("small")
    f = _write(d, SMALL)
    s1 = sweep.run_sweep(f, d / "j1", jobs=1, progress=False, no_cache=True)
    s2 = sweep.run_sweep(f, d / "j2", jobs=2, progress=False, no_cache=True)
    return d, s1, s2


def _points(out: Path) -> list[dict]:
    return json.loads((out / "points.json").read_text())["points"]


# ---- outputs ---------------------------------------------------------------------------

def test_small_sweep_writes_every_file(small_runs):
    d, s1, _ = small_runs
    out = d / "j1"
    names = {"sweep.yaml", "points.csv", "points.json", "pareto.csv", "pareto.json",
             "pareto-throughput.png", "pareto-energy.png"}
    assert {p.name for p in out.iterdir()} == names
    assert s1["points"] == SMALL_POINTS
    pts = _points(out)
    assert [p["index"] for p in pts] == list(range(SMALL_POINTS))
    rows = list(csv.DictReader((out / "points.csv").open()))
    assert len(rows) == SMALL_POINTS and tuple(rows[0]) == sweep.FIELDS
    for png in ("pareto-throughput.png", "pareto-energy.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # product order: boards outermost, then ... tm, tn, ifm_depth innermost
    combos = list(itertools.product(["zcu102", "pynq-z2"], [2, 4, 64], [2, 8], [1024, 2048]))
    assert [(p["board"], p["tm"], p["tn"], p["ifm_depth"]) for p in pts] == combos
    # no clock_mhz axis: each board's default clock (configs/boards/*.yaml clock_mhz)
    assert all(p["clock_mhz"] == load_board(p["board"]).clock_mhz and p["precision"] == "fp32"
               and p["batch"] == 4 for p in pts)
    assert s1["fitting"] == sum(p["fits"] for p in pts) > 0
    assert not list(d.glob(".*tmp*")), "temporary folder left behind"


def test_jobs_1_and_2_give_identical_files(small_runs):
    d, s1, s2 = small_runs
    files = sorted(p.name for p in (d / "j1").iterdir())
    assert files == sorted(p.name for p in (d / "j2").iterdir())
    for name in files:
        assert (d / "j1" / name).read_bytes() == (d / "j2" / name).read_bytes(), name
    assert s1["jobs"] == 1 and s2["jobs"] == 2


def test_fitting_points_match_a_direct_evaluation(small_runs):
    from efgen.frontend import load_net
    from efgen.frontend.boards import load_board
    from efgen.model.evaluate import evaluate_design
    from efgen.model.schedule import Request, base_hw, schedule_fixed

    d, _, _ = small_runs
    net = load_net("tiny")
    p = next(p for p in _points(d / "j1") if p["fits"] and p["board"] == "pynq-z2")
    board = load_board(p["board"])
    req = Request(net, board, batch=p["batch"])
    hw = replace(base_hw(req), tm=p["tm"], tn=p["tn"], ifm_depth=p["ifm_depth"],
                 ofm_depth=p["ofm_depth"], wbuf_depth=p["wbuf_depth"])
    t = evaluate_design(net, schedule_fixed(req, hw), board)["totals"]
    assert p["cycles"] == t["cycles"] and p["energy_j"] == t["energy_j"]
    assert p["images_per_s"] == t["images_per_s"]
    assert p["dram_mb"] == t["dram_bytes"] / 1e6
    assert p["dram_mb_nchw"] == t["dram_bytes_nchw"] / 1e6
    assert p["dsp"] == t["resources"]["dsp"] and p["bram18"] == t["resources"]["bram18"]
    assert p["dsp_util"] == t["utilisation"]["dsp"]


def test_resnet20_point_and_auto_weight_depth(tmp_path):
    from efgen.frontend import load_net
    from efgen.frontend.boards import load_board
    from efgen.model import engine
    from efgen.model.evaluate import evaluate_design
    from efgen.model.schedule import Request, base_hw, hardware_candidates, schedule_fixed

    f = _write(tmp_path, "name: r20\nboards: [zcu102]\nnets: [resnet20]\nbatch: [32]\n"
                         "clock_mhz: [150]\ntm: [16]\ntn: [16]\nofm_depth: [8192]\n")
    s = sweep.run_sweep(f, tmp_path / "out", jobs=1, progress=False)
    [p] = _points(tmp_path / "out")
    assert s["points"] == 1 and p["fits"] and p["clock_mhz"] == 150.0
    net, board = load_net("resnet20"), load_board("zcu102")
    req = Request(net, board, batch=32, clock_mhz=150, tm=16, tn=16)
    # 'auto' is the scheduler's smallest weight-bank depth for this array
    wmin = min(hw.wbuf_depth for hw in hardware_candidates(req, engine.jobs_for(net, 32)))
    assert p["wbuf_depth"] == wmin
    hw = replace(base_hw(req), tm=16, tn=16, ifm_depth=2048, ofm_depth=8192,
                 wbuf_depth=wmin)
    t = evaluate_design(net, schedule_fixed(req, hw), board)["totals"]
    assert p["ms_per_step"] == t["ms_per_step"]
    assert p["roofline_fraction"] == t["roofline_fraction"]


def test_progress_bar_on_stderr(tmp_path, capsys):
    f = _write(tmp_path, "name: p\nboards: [zcu102]\nnets: [tiny]\nbatch: [2]\n"
                         "tm: [2, 4]\ntn: [2]\n")
    sweep.run_sweep(f, tmp_path / "out", jobs=1, progress=True)
    err = capsys.readouterr().err
    assert "2/2" in err and "[" in err


def test_cmd_sweep_prints_a_summary(tmp_path, capsys):
    import argparse

    f = _write(tmp_path, "name: m\nboards: [zcu102]\nnets: [tiny]\nbatch: [2]\n"
                         "tm: [2, 4]\ntn: [2]\n")
    args = argparse.Namespace(file=str(f), output=str(tmp_path / "o"), jobs=1, no_progress=True)
    assert cmd_sweep(args) == 0
    out = capsys.readouterr().out
    assert "sweep m: 2 points, 2 fit" in out and "best by latency" in out


def test_chunks_never_mix_board_net_batch():
    groups = itertools.product(["a", "b"], ["x", "y"], [1, 2], range(5))
    pts = [(i, b, n, bt) + (k,) * 8 for i, (b, n, bt, k) in enumerate(groups)]
    for jobs in (1, 2, 7):
        chunks = sweep._chunks(pts, jobs)
        assert [p for ch in chunks for p in ch] == pts
        for ch in chunks:
            assert len({p[1:4] for p in ch}) == 1


# ---- Pareto fronts ---------------------------------------------------------------------

def _dominates(q: dict, p: dict, x, y) -> bool:
    def better_eq(a, b, goal):
        return a <= b if goal == "min" else a >= b

    def better(a, b, goal):
        return a < b if goal == "min" else a > b

    return (better_eq(q[x[0]], p[x[0]], x[1]) and better_eq(q[y[0]], p[y[0]], y[1])
            and (better(q[x[0]], p[x[0]], x[1]) or better(q[y[0]], p[y[0]], y[1])))


def _check_front(fitting: list[dict], front_idx: set[int], x, y) -> None:
    for p in fitting:
        dominated = any(_dominates(q, p, x, y) for q in fitting if q is not p)
        assert dominated == (p["index"] not in front_idx), (p["index"], dominated)


def test_pareto_fronts_by_brute_force(small_runs):
    d, _, _ = small_runs
    pts = _points(d / "j1")
    fronts = json.loads((d / "j1" / "pareto.json").read_text())["fronts"]
    assert {f["front"] for f in fronts} == set(sweep.FRONTS)
    for f in fronts:
        fitting = [p for p in pts if p["fits"] and p["net"] == f["net"]
                   and p["batch"] == f["batch"]]
        assert f["candidates"] == len(fitting)
        x, y = sweep.FRONTS[f["front"]]
        assert (f["x"], f["x_goal"], f["y"], f["y_goal"]) == (*x, *y)
        assert f["indices"] == [p["index"] for p in f["points"]]
        _check_front(fitting, set(f["indices"]), x, y)
    rows = list(csv.DictReader((d / "j1" / "pareto.csv").open()))
    assert len(rows) == sum(len(f["points"]) for f in fronts)


def test_pareto_front_on_a_real_sweep_of_resnet20(tmp_path):
    f = _write(tmp_path, "name: r\nboards: [zcu102]\nnets: [resnet20]\nbatch: [32]\n"
                         "clock_mhz: [100, 200]\ntm: [4, 8, 16]\ntn: [8, 16]\n")
    sweep.run_sweep(f, tmp_path / "out", jobs=2, progress=False)
    pts = [p for p in _points(tmp_path / "out") if p["fits"]]
    fronts = json.loads((tmp_path / "out" / "pareto.json").read_text())["fronts"]
    for fr in fronts:
        _check_front(pts, set(fr["indices"]), *sweep.FRONTS[fr["front"]])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), max_size=25),
       st.sampled_from(["min", "max"]), st.sampled_from(["min", "max"]))
def test_pareto_mask_brute_force(vals, gx, gy):
    pts = [{"index": i, "a": a, "b": b} for i, (a, b) in enumerate(vals)]
    mask = sweep.pareto_mask(pts, ("a", gx), ("b", gy))
    _check_front(pts, {p["index"] for p, m in zip(pts, mask) if m}, ("a", gx), ("b", gy))


# ---- over-cap points -------------------------------------------------------------------

def test_over_cap_points_are_kept_with_the_binding_resource(small_runs):
    from efgen.frontend import load_net
    from efgen.frontend.boards import load_board
    from efgen.model.resources import over_caps, resource_use
    from efgen.model.schedule import Request, base_hw

    d, _, _ = small_runs
    pts = _points(d / "j1")
    net = load_net("tiny")
    for p in pts:
        board = load_board(p["board"])
        hw = replace(base_hw(Request(net, board, batch=4)), tm=p["tm"], tn=p["tn"],
                     ifm_depth=p["ifm_depth"], ofm_depth=p["ofm_depth"],
                     wbuf_depth=p["wbuf_depth"])
        bad = over_caps(resource_use(hw, board), board)
        if bad:
            assert not p["fits"] and p["cycles"] is None and p["images_per_s"] is None
            worst = max(bad, key=lambda b: b[1] / max(b[2], 1))[0]
            assert p["binding"] == worst and worst in p["reason"]
        else:
            assert p["fits"] and p["binding"] == "" and p["cycles"] > 0
    # 64 x 8 fp32 MACs need 2,560+ DSPs: over the cap of both boards
    big = [p for p in pts if p["tm"] == 64 and p["tn"] == 8]
    assert big and all(not p["fits"] and p["binding"] == "dsp" for p in big)
    assert any(p["fits"] for p in pts if p["board"] == "pynq-z2")


def test_uram_on_a_board_without_uram_binds_uram(tmp_path):
    f = _write(tmp_path, "name: u\nboards: [zcu102, zcu104]\nnets: [tiny]\nbatch: [2]\n"
                         "tm: [4]\ntn: [4]\nweight_mem: [uram]\n")
    sweep.run_sweep(f, tmp_path / "out", jobs=1, progress=False)
    zcu102, zcu104 = _points(tmp_path / "out")
    assert not zcu102["fits"] and zcu102["binding"] == "uram" and "uram" in zcu102["reason"]
    assert zcu104["fits"] and zcu104["uram"] > 0


# ---- bad sweep files -------------------------------------------------------------------

GOOD = ("name: bad\nboards: [zcu102]\nnets: [tiny]\nbatch: [4]\ntm: [4]\ntn: [4]\n")

BAD = {
    # id: (file text, substrings the message must contain)
    "yaml-syntax": ("name: bad\nboards: [zcu102\ntm: [4]\n", ["YAML syntax error", "line"]),
    "not-a-mapping": ("- a\n- b\n", ["top level must be a mapping"]),
    "empty-file": ("", ["the file is empty"]),
    "unknown-key": (GOOD + "tiles: [4]\n", ["unknown key 'tiles'", "tiles (line 7)",
                                            "did you mean 'tm' and 'tn'"]),
    "misspelt-key": (GOOD + "clock_mz: [100]\n", ["unknown key 'clock_mz'",
                                                   "did you mean 'clock_mhz'"]),
    "missing-key": ("name: bad\nboards: [zcu102]\nnets: [tiny]\ntm: [4]\n",
                    ["missing key 'tn'"]),
    "unknown-board": (GOOD.replace("[zcu102]", "[zcu012]"),
                      ["unknown board 'zcu012'", "boards[0] (line 2)", "did you mean"]),
    "unknown-board-block-list": (GOOD.replace("[zcu102]", "\n  - zcu102\n  - zcu1O4"),
                                 ["unknown board 'zcu1O4'", "boards[1] (line 4)"]),
    "unknown-net": (GOOD.replace("[tiny]", "[resnet21]"),
                    ["unknown net 'resnet21'", "nets[0] (line 3)"]),
    "wrong-type-string": (GOOD.replace("tm: [4]", "tm: ['16']"),
                          ["tm[0] must be a positive integer", "(line 5)"]),
    "wrong-type-scalar": (GOOD.replace("batch: [4]", "batch: 4"),
                          ["batch must be a list", "batch (line 4)"]),
    "wrong-type-bool": (GOOD.replace("tn: [4]", "tn: [4, true]"),
                        ["tn[1] must be a positive integer", "a boolean", "(line 6)"]),
    "float-depth": (GOOD + "ifm_depth: [1024.0]\n", ["ifm_depth[0] must be a positive "
                                                     "integer", "without a decimal point"]),
    "empty-list": (GOOD.replace("tn: [4]", "tn: []"), ["tn is an empty list",
                                                       "tn (line 6)"]),
    "zero": (GOOD.replace("tm: [4]", "tm: [4, 0]"), ["tm[1] must be positive"]),
    "negative-clock": (GOOD + "clock_mhz: [-100]\n", ["clock_mhz[0]", "outside"]),
    "duplicate-value": (GOOD.replace("tm: [4]", "tm: [4, 8, 4]"), ["tm lists 4 twice",
                                                                  "tm[2]"]),
    "unknown-precision": (GOOD + "precision: [fp23]\n", ["unknown precision 'fp23'",
                                                          "did you mean 'fp32'"]),
    "bad-wbuf": (GOOD + "wbuf_depth: [automatic]\n", ["wbuf_depth[0] must be 'auto'"]),
    "bad-objective": (GOOD + "objective: speed\n", ["objective must be one of",
                                                    "objective (line 7)"]),
    "bad-train-last": (GOOD + "train_last: 0\n", ["train_last must be a positive integer"]),
    "bad-name": (GOOD.replace("name: bad", "name: ../x"), ["name must be a name"]),
    "duplicate-key": (GOOD + "tm: [8]\n", ["duplicate key 'tm'", "line 7"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_sweep_files_fail_before_writing(tmp_path, case, monkeypatch):
    text, needles = BAD[case]
    f = _write(tmp_path, text, "bad.yaml")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(EfgenError) as exc:
        sweep.run_sweep(f, None, jobs=1, progress=False)
    msg = exc.value.message()
    assert str(f) in msg, msg
    for n in needles:
        assert n in msg, (n, msg)
    assert "\n" not in msg
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"], "something was written"


def test_missing_sweep_file(tmp_path):
    with pytest.raises(EfgenError, match="sweep file not found"):
        sweep.run_sweep(tmp_path / "nope.yaml", tmp_path / "out", jobs=1, progress=False)
    assert not (tmp_path / "out").exists()


def test_bad_jobs(tmp_path):
    f = _write(tmp_path, GOOD)
    with pytest.raises(EfgenError, match="--jobs"):
        sweep.run_sweep(f, tmp_path / "out", jobs=0, progress=False)
    assert not (tmp_path / "out").exists()


def test_board_and_net_paths_are_relative_to_the_sweep_file(tmp_path):
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "mynet.yaml").write_text((ROOT / "configs/nets/tiny.yaml").read_text())
    (sub / "myboard.yaml").write_text((ROOT / "configs/boards/zcu102.yaml").read_text()
                                      .replace("name: zcu102", "name: myboard"))
    f = _write(sub, GOOD.replace("[zcu102]", "[myboard.yaml]").replace("[tiny]",
                                                                       "[mynet.yaml]"))
    sweep.run_sweep(f, tmp_path / "out", jobs=1, progress=False)
    [p] = _points(tmp_path / "out")
    assert p["board"] == "myboard.yaml" and p["net"] == "mynet.yaml" and p["fits"]
    bad = _write(sub, GOOD.replace("[tiny]", "[missing.yaml]"), "bad.yaml")
    with pytest.raises(EfgenError, match=r"net file 'missing.yaml' not found.*nets\[0\]"):
        sweep.run_sweep(bad, tmp_path / "out2", jobs=1, progress=False)


# ---- all-or-nothing output folder ------------------------------------------------------

def test_refuses_to_replace_a_folder_that_is_not_a_sweep(tmp_path):
    f = _write(tmp_path, GOOD)
    out = tmp_path / "out"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    with pytest.raises(EfgenError, match="does not hold an earlier sweep"):
        sweep.run_sweep(f, out, jobs=1, progress=False)
    assert [p.name for p in out.iterdir()] == ["thesis.tex"]


def test_rerun_replaces_an_earlier_output(tmp_path):
    f = _write(tmp_path, GOOD)
    out = tmp_path / "out"
    sweep.run_sweep(f, out, jobs=1, progress=False)
    (out / "stale.txt").write_text("from before")
    sweep.run_sweep(f, out, jobs=1, progress=False)
    assert not (out / "stale.txt").exists() and (out / "points.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "s.yaml"]


def test_a_failure_leaves_no_half_written_folder(tmp_path, monkeypatch):
    from efgen.report import plots

    f = _write(tmp_path, GOOD)
    out = tmp_path / "out"
    sweep.run_sweep(f, out, jobs=1, progress=False)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(plots, "plot_pareto", boom)      # fails while writing
    with pytest.raises(RuntimeError):
        sweep.run_sweep(f, out, jobs=1, progress=False)
    monkeypatch.undo()
    monkeypatch.setattr(sweep, "_evaluate_point", boom)  # fails while computing
    with pytest.raises(RuntimeError):                    # (the cache would answer)
        sweep.run_sweep(f, tmp_path / "new", jobs=1, progress=False, no_cache=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "s.yaml"]


# ---- shipped sweep files ---------------------------------------------------------------

@pytest.mark.parametrize("name", ["zcu102-resnet20", "boards-resnet20", "precision-resnet20"])
def test_shipped_sweeps_validate(name):
    from efgen.design import PRECISIONS
    from efgen.frontend.boards import list_boards

    sw = sweep.load_sweep(ROOT / "configs" / "sweeps" / f"{name}.yaml")
    assert sw.name == name
    if name == "zcu102-resnet20":
        assert sw.n_points >= 2000
    if name == "boards-resnet20":
        assert sorted(sw.values["boards"]) == list_boards()
    if name == "precision-resnet20":
        assert set(sw.values["precision"]) == set(PRECISIONS)
        assert sw.values["boards"] == ("zcu102",)
    assert math.prod(len(v) for v in sw.values.values()) == len(sw.points())


def test_a_sweep_where_nothing_fits_still_writes_everything(tmp_path, capsys):
    import argparse

    f = _write(tmp_path, "name: none\nboards: [pynq-z2]\nnets: [tiny]\nbatch: [2]\n"
                         "tm: [64]\ntn: [64]\n")
    args = argparse.Namespace(file=str(f), output=str(tmp_path / "o"), jobs=1, no_progress=True)
    assert cmd_sweep(args) == 0
    assert "no point fits" in capsys.readouterr().out
    [p] = _points(tmp_path / "o")
    assert not p["fits"] and p["binding"] in ("dsp", "bram18", "lut", "ff")
    fronts = json.loads((tmp_path / "o" / "pareto.json").read_text())["fronts"]
    assert [len(fr["points"]) for fr in fronts] == [0, 0]
    assert (tmp_path / "o" / "pareto-energy.png").is_file()


def test_points_whose_buffers_fit_no_tiling_are_reported(tmp_path):
    # 8-word IFM banks cannot hold even one 3x3 input window
    f = _write(tmp_path, "name: buf\nboards: [zcu102]\nnets: [tiny]\nbatch: [2]\n"
                         "tm: [4]\ntn: [4]\nifm_depth: [8, 2048]\n")
    s = sweep.run_sweep(f, tmp_path / "o", jobs=1, progress=False)
    small, big = _points(tmp_path / "o")
    assert not small["fits"] and small["binding"] == "buffers"
    assert "fits the buffers" in small["reason"] and small["cycles"] is None
    assert big["fits"]
    assert s["unschedulable"] == 1 and s["fitting"] == 1 and s["over_caps"] == 0


def test_cli_arguments(tmp_path, capsys):
    """The argparse lines efgen/cli.py adds (sweep.add_arguments) reach the sweep."""
    import argparse

    f = _write(tmp_path, "name: c\nboards: [zcu102]\nnets: [tiny]\nbatch: [2]\n"
                         "tm: [2, 4]\ntn: [2]\n")
    p = argparse.ArgumentParser()
    sweep.add_arguments(p)
    args = p.parse_args([str(f), "-o", str(tmp_path / "o"), "--jobs", "2", "--no-progress"])
    assert cmd_sweep(args) == 0
    assert "on 2 workers" in capsys.readouterr().out
    assert (tmp_path / "o" / "points.csv").is_file()
    assert capsys.readouterr().err == ""
