"""The Python API (efgen.build, Accelerator, efgen.sweep): the same Designs as the CLI,
numpy in and per-tensor comparisons out, and EfgenError (never SystemExit) on bad input."""

import json
from pathlib import Path

import numpy as np
import pytest

import efgen
from efgen.errors import EfgenError
from efgen.frontend import load_net
from efgen.frontend.yamlio import read_yaml
from efgen.golden.model import SGD, init_state, train_step


@pytest.fixture(scope="module")
def tiny():
    return efgen.build("tiny", board="zcu102", batch=2)


def test_api_and_cli_write_identical_build_folders(tmp_path, tiny):
    from efgen.cli import main

    assert main(["build", "--board", "zcu102", "--net", "tiny", "--batch", "2",
                 "-o", str(tmp_path / "cli")]) == 0
    w = tiny.write(tmp_path / "api")
    assert w.files == sorted(p.name for p in (tmp_path / "cli").iterdir())
    for p in sorted((tmp_path / "cli").rglob("*")):
        if p.is_file():
            q = tmp_path / "api" / p.relative_to(tmp_path / "cli")
            assert q.read_bytes() == p.read_bytes(), p.relative_to(tmp_path / "cli")
    assert json.loads((tmp_path / "api" / "report.json").read_text()) == w.report


def test_a_net_object_a_dict_and_a_path_give_the_name_s_design(tiny):
    net = load_net("tiny")
    doc = read_yaml(net.source)
    for given in (net, doc, Path(net.source)):
        acc = efgen.build(given, board="zcu102", batch=2)
        assert acc.design.to_json() == tiny.design.to_json()
    t = tiny.report["totals"]
    assert t["effective_gflops"] > 0 and t["ms_per_step"] > 0
    assert tiny.summary().splitlines()[0].startswith("tiny on zcu102")


def test_build_options_reach_the_design():
    acc = efgen.build("tiny", "zcu102", 4, clock=150, tiles=(4, 8), train_last=1,
                      momentum=False)
    hw = acc.design.hw
    assert (hw.tm, hw.tn, hw.clock_mhz, acc.design.batch) == (4, 8, 150.0, 4)
    assert sum(l.trainable for l in acc.net) == 1
    assert efgen.build("tiny", "zcu102", 4, tiles={"Tm": 4, "Tn": 8}).design.hw.tn == 8
    assert efgen.build("tiny", "zcu102", 4, tiles="Tm=4,Tn=8").design.hw.tm == 4
    assert acc.words[:7] == ("build", "--board", "zcu102", "--net", "tiny", "--batch", "4")
    assert "--no-momentum" in acc.words and "Tm=4,Tn=8" in acc.words


@pytest.mark.parametrize("kwargs, where", [
    (dict(net="tiny", batch=0), "batch"),
    (dict(net="tiny", batch=True), "batch"),
    (dict(net="tiny", tiles=(4,)), "tiles"),
    (dict(net="tiny", tiles=(0, 4)), "tiles"),
    (dict(net="tiny", clock=-5), "clock"),
    (dict(net="tiny", train_last=0), "train_last"),
    (dict(net=3.5), "net"),
    (dict(net="tiny", board=7), "board"),
    (dict(net="tiny", objective="speed"), "--objective"),
])
def test_bad_arguments_raise_efgen_error_with_where_and_fix(kwargs, where):
    with pytest.raises(EfgenError) as e:
        efgen.build(**kwargs)
    assert e.value.where == where and e.value.fix


def test_unknown_net_and_board_raise_efgen_error_not_system_exit():
    for kwargs in (dict(net="no-such-net"), dict(net="tiny", board="no-such-board")):
        with pytest.raises(EfgenError) as e:
            efgen.build(**kwargs)
        assert e.value.fix


def test_write_refuses_a_user_folder_and_a_bad_rtl_impl(tmp_path, tiny):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(EfgenError):
        tiny.write(mine)
    assert (mine / "notes.txt").read_text() == "keep me"
    with pytest.raises(EfgenError) as e:
        tiny.write(tmp_path / "x", rtl="vhdl")
    assert e.value.where == "rtl" and not (tmp_path / "x").exists()
    w = tiny.write(tmp_path / "x", hls=False, rtl=None)
    assert "hls" not in w.files and "rtl" not in w.files and w.rtl_note is None


def _digits_like(acc, seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (acc.design.batch, *acc.net.input_shape)).astype(np.float32)
    return x, rng.integers(0, acc.net.num_classes, acc.design.batch)


def test_golden_is_the_golden_model_on_the_given_batch(tiny):
    x, labels = _digits_like(tiny, 5)
    state = init_state(tiny.net, seed=3)
    ref = train_step(tiny.net, state, x, labels, SGD(lr=0.05, momentum=0.5))
    got = tiny.golden(x, labels, state=state, lr=0.05, momentum=0.5)
    assert got.loss == ref.loss
    assert got.by_layer["conv1"]["y"] is got.trace["conv1:y"]
    assert list(got.by_layer)[0] == "conv1" and set(got.by_layer) == {
        k.partition(":")[0] for k in ref.trace}
    two = tiny.golden(x, labels, state=state, steps=2)
    assert two.loss != tiny.golden(x, labels, state=state).loss


@pytest.mark.parametrize("args, where", [
    (dict(x=np.zeros((3, 3, 16, 16), np.float32), labels=np.zeros(3, int)), "x"),
    (dict(x=np.zeros((2, 3, 16, 16), np.float32), labels=np.array([0, 99])), "labels"),
    (dict(x=np.zeros((2, 3, 16, 16), np.float32), labels=np.array([0.0, 1.0])), "labels"),
    (dict(x=np.full((2, 3, 16, 16), np.nan, np.float32), labels=np.zeros(2, int)), "x"),
    (dict(x=np.zeros((2, 3, 16, 16), np.float32)), "labels"),
    (dict(steps=0), "steps"),
    (dict(lr=-1.0), "lr"),
])
def test_bad_batches_raise_efgen_error(tiny, args, where):
    assert tiny.net.input_shape == (3, 16, 16)
    with pytest.raises(EfgenError) as e:
        tiny.golden(**args)
    assert e.value.where == where


def test_csim_trains_on_the_given_batch_and_state(tmp_path, tiny):
    """The C++ runs the caller's data from the caller's state: its loss is the golden
    model's on that data (and not on the synthetic batch), and the check passes."""
    x, labels = _digits_like(tiny, 11)
    state = init_state(tiny.net, seed=4)
    res = tiny.csim(x, labels, state=state, steps=2, workdir=tmp_path / "w")
    assert res.ok and len(res.steps) == 2
    ref = train_step(tiny.net, state, x, labels, SGD())
    assert res.steps[0].loss_csim == pytest.approx(ref.loss, rel=1e-5)
    assert res.steps[0].loss_csim != pytest.approx(tiny.golden().loss, rel=1e-3)
    assert (tmp_path / "w" / "hls" / "efgen_top.cpp").is_file()
    assert res.steps[1].loss_csim < res.steps[0].loss_csim     # it trains


def test_csim_refuses_a_precision_it_does_not_implement():
    acc = efgen.build("tiny", "zcu102", 2, precision="fp16")
    with pytest.raises(EfgenError) as e:
        acc.csim()
    assert e.value.where == "precision"
