"""`efgen adapt`: LeNet-5 pretrained on digits 0-4 (golden), adapted to 0-9 with
--train-last 2 in C-simulation of the generated accelerator and in the golden model from
the same start. A short run (24 steps of batch 16 on a 4x4 array, 3 pretraining epochs):
the C-simulation must track the golden model on the issue's criteria, and adaptation must
actually teach the new classes. The full run is `make adapt` (README)."""

import contextlib
import io
import json
import sys

import pytest

from efgen import adapt
from efgen.adapt import ACC_TOL_PP, LOSS_RTOL, LOSS_STEPS, AdaptConfig
from efgen.cli import main

SHORT = ["--steps", "24", "--batch", "16", "--tiles", "Tm=4,Tn=4", "--pretrain-epochs", "3",
         "--eval-every", "8"]
FILES = ("adapt.json", "curves.csv", "adapt.png")


def _cli(*args):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("adapt") / "run"
    code, out, err = _cli("adapt", *SHORT, "-o", folder)
    return folder, code, out, err


def test_csim_tracks_golden_and_learns_new_classes(short_run):
    folder, code, out, err = short_run
    assert code == 0, out + err
    assert "adapt: PASS" in out
    doc = json.loads((folder / "adapt.json").read_text())
    loss_c, loss_g = doc["loss"]["csim"], doc["loss"]["golden"]
    assert len(loss_c) == len(loss_g) == 24
    # The criteria, recomputed from the written curves.
    rel = [abs(c - g) / abs(g) for c, g in zip(loss_c[:LOSS_STEPS], loss_g[:LOSS_STEPS])]
    assert max(rel) <= LOSS_RTOL
    final_c, final_g = doc["final"]["csim"], doc["final"]["golden"]
    assert 100 * abs(final_c["acc"] - final_g["acc"]) <= ACC_TOL_PP
    assert doc["criteria"]["pass"] is True
    # Pretraining saw only classes 0-4: the start knows them and none of 5-9.
    start = doc["start"]
    assert start["acc_old"] > 0.8 and start["acc_new"] < 0.05
    # Adaptation on the accelerator teaches the new classes and lowers the loss.
    assert final_c["acc_new"] >= start["acc_new"] + 0.10
    assert final_c["loss"] < start["loss"]
    assert sum(loss_c[-4:]) < sum(loss_c[:4])
    # The evaluations are the C-simulation's own weights: step 0 is shared, later ones
    # come from two runs (the accuracy curves are not one curve written twice).
    evals = doc["evals"]["csim"]
    assert [e["step"] for e in evals] == [0, 8, 16, 24]
    assert evals[0] == doc["evals"]["golden"][0]


def test_outputs(short_run):
    folder, code, out, _ = short_run
    assert sorted(p.name for p in folder.iterdir()) == sorted(FILES + ("hls",))
    assert (folder / "hls" / "efgen_top.cpp").is_file()
    assert (folder / "adapt.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = (folder / "curves.csv").read_text().splitlines()
    assert rows[0].startswith("step,loss_csim,loss_golden,loss_rel_diff,test_acc_csim")
    assert len(rows) == 1 + 25            # header, step 0 (the start), 24 steps
    assert "final test accuracy: C-simulation" in out


def test_rerun_replaces_earlier_output_byte_for_byte(short_run, tmp_path):
    folder, *_ = short_run
    before = {f: (folder / f).read_bytes() for f in FILES}
    code, out, err = _cli("adapt", *SHORT, "-o", folder)     # an earlier adapt folder
    assert code == 0, out + err
    for f in FILES:
        assert (folder / f).read_bytes() == before[f], f


def test_fail_exits_nonzero(short_run, monkeypatch, tmp_path):
    """A C-simulation whose loss drifts by 2e-3 in step 5 fails the run (exit 1)."""
    real = adapt.run_adapt

    def drifting(*args, **kw):
        res = real(*args, **kw)
        res.csim.loss[4] *= 1 + 2 * LOSS_RTOL
        return res

    monkeypatch.setattr(adapt, "run_adapt", drifting)
    code, out, _ = _cli("adapt", *SHORT, "--steps", "6", "--eval-every", "6",
                        "-o", tmp_path / "out")
    assert code == 1
    assert "adapt: FAIL" in out and "FAIL" in out.splitlines()[-3]


def test_accuracy_criterion():
    """The final-accuracy bar is |csim - golden| <= 1 percentage point."""
    ev = lambda acc: adapt.EvalPoint(10, acc, acc, acc, 1.0)  # noqa: E731
    res = adapt.AdaptResult(AdaptConfig(steps=10), "lenet5", (4, 4), {"train": 9, "test": 9},
                            ev(0.5),
                            adapt.Curve([1.0] * 10, [ev(0.5), ev(0.900)]),
                            adapt.Curve([1.0] * 10, [ev(0.5), ev(0.909)]), {})
    assert res.loss_ok and res.acc_ok and res.ok
    res.csim.evals[-1] = ev(0.898)
    assert not res.acc_ok and not res.ok
    assert "adapt: FAIL" in adapt.summary_lines(res)[-1]


@pytest.mark.parametrize("args, words", [
    (["--steps", "0"], ["--steps 0 must be at least 1"]),
    (["--net", "nope"], ["unknown net 'nope'"]),
    (["--net", "tiny"], ["tiny.yaml:input", "[1, 8k, 8k]"]),
    (["--train-last", "9"], ["--train-last 9"]),
    (["--batch", "700"], ["--batch 700", "631 training images of classes 0-4"]),
    (["--lr", "-1"], ["--lr -1.0 must be a positive number"]),
    (["--tiles", "Tm=x"], ["--tiles"]),
])
def test_bad_input(args, words, tmp_path):
    out = tmp_path / "out"
    code, stdout, err = _cli("adapt", *args, "-o", out)
    assert code == 2
    assert err.startswith("efgen: error:") and err.count("\n") == 1, err
    for w in words:
        assert w in err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_foreign_output_folder_is_kept(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    code, _, err = _cli("adapt", *SHORT, "-o", out)
    assert code == 2 and "notes.txt" in err and "--force" in err
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_missing_scikit_learn(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "sklearn", None)       # import sklearn fails
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    code, _, err = _cli("adapt", "-o", tmp_path / "out")
    assert code == 2 and err.count("\n") == 1
    assert "scikit-learn is not installed" in err and "pip install" in err
    assert not (tmp_path / "out").exists()


def test_data_split_is_seeded_and_stratified():
    a, b = adapt.load_data(4, seed=0), adapt.load_data(4, seed=0)
    c = adapt.load_data(4, seed=1)
    assert a.x_train.shape[1:] == (1, 32, 32) and a.x_train.dtype.name == "float32"
    assert len(a.y_train) + len(a.y_test) == 1797
    assert (a.x_test == b.x_test).all() and (a.y_test == b.y_test).all()
    assert not (a.x_test.shape == c.x_test.shape and (a.x_test == c.x_test).all())
    for k in range(10):            # every class in the test set at ~30%
        n = (a.y_test == k).sum() + (a.y_train == k).sum()
        assert abs((a.y_test == k).sum() - 0.3 * n) <= 1
    assert abs(float(a.x_train.mean())) < 1e-4 and abs(float(a.x_train.std()) - 1) < 1e-4
