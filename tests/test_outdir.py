"""Output folders never lose a user's files (efgen/outdir.py), and `efgen cosim` checks
everything before it creates anything and keeps what finished when interrupted."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from efgen.cli import main

BUILD = ["build", "--board", "zcu102", "--net", "tiny", "--stop-after", "estimate"]


def _one_line_error(capsys, *needles) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("efgen: error:"), err
    assert "Traceback" not in err
    for n in needles:
        assert n in err, err
    return err


def _listing(d: Path) -> list[str]:
    return sorted(str(p.relative_to(d)) for p in d.rglob("*"))


def test_a_folder_with_user_files_is_refused(tmp_path, capsys):
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    (out / "notes.txt").write_text("mine")
    (out / "sub" / "data.csv").write_text("1,2")
    before = _listing(tmp_path)
    assert main(BUILD + ["-o", str(out)]) == 2
    _one_line_error(capsys, "notes.txt", "sub/", "--force")
    assert _listing(tmp_path) == before          # nothing added, nothing lost


def test_an_earlier_build_with_a_foreign_file_is_refused_then_forced(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(BUILD + ["-o", str(out)]) == 0
    (out / "notes.txt").write_text("mine")
    capsys.readouterr()
    assert main(BUILD + ["-o", str(out)]) == 2
    _one_line_error(capsys, "did not write (notes.txt)")
    assert (out / "notes.txt").read_text() == "mine"
    assert main(BUILD + ["-o", str(out), "--force"]) == 0
    assert not (out / "notes.txt").exists() and (out / "design.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]   # no leftovers


def test_an_earlier_build_is_replaced(tmp_path):
    out = tmp_path / "out"
    assert main(["build", "--board", "zcu102", "--net", "tiny", "-o", str(out)]) == 0
    assert (out / "rtl").is_dir()
    assert main(BUILD + ["-o", str(out)]) == 0          # fewer steps: rtl/ goes
    assert sorted(p.name for p in out.iterdir()) == [
        "design.json", "report.json", "report.md", "roofline.png", "time_per_layer.png"]


def test_output_dot_inside_an_earlier_build(tmp_path, monkeypatch):
    out = tmp_path / "b"
    assert main(BUILD + ["-o", str(out)]) == 0
    inode = out.stat().st_ino
    monkeypatch.chdir(out)
    assert main(["build", "--board", "zcu102", "--net", "tiny", "-o", "."]) == 0
    assert out.stat().st_ino == inode and (out / "hls").is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]     # no ..old.* left


def test_output_dot_in_a_project_is_refused_even_with_force(tmp_path, monkeypatch, capsys):
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "src.py").write_text("x = 1")
    monkeypatch.chdir(proj)
    for extra in ([], ["--force"]):
        assert main(BUILD + ["-o", "."] + extra) == 2
        _one_line_error(capsys)
    assert _listing(tmp_path) == ["proj", "proj/src.py"]


@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_new_folders_follow_the_umask(tmp_path, mask):
    old = os.umask(mask)
    try:
        assert main(BUILD + ["-o", str(tmp_path / "o")]) == 0
    finally:
        os.umask(old)
    assert (tmp_path / "o").stat().st_mode & 0o777 == 0o777 & ~mask


def test_a_file_in_the_way_is_refused(tmp_path, capsys):
    (tmp_path / "o").write_text("a file")
    assert main(BUILD + ["-o", str(tmp_path / "o")]) == 2
    _one_line_error(capsys, "not a folder")
    assert (tmp_path / "o").read_text() == "a file"


# ---- efgen cosim: checks first, progress, interruption ---------------------------------

COSIM = ["cosim", "--net", "tiny", "--tiles", "Tm=4,Tn=4", "--batch", "1"]


@pytest.mark.parametrize("args,needle", [
    (["--layer", "conv1", "--phase", "bp"], "reads the net's input"),
    (["--layer", "nope"], "'nope'"),
    (["--tiles", "Tm=4,Tn=x"], "--tiles"),
    (["--batch", "0"], "--batch"),
])
def test_cosim_rejects_before_creating_anything(tmp_path, capsys, args, needle):
    assert main(COSIM + args + ["-o", str(tmp_path / "c")]) == 2
    _one_line_error(capsys, needle)
    assert list(tmp_path.iterdir()) == []


def test_cosim_reports_each_layer_phase_and_keeps_them_when_interrupted(
        tmp_path, capsys, monkeypatch):
    """The driver prints the model's total first, then progress (tqdm; on a log, a line
    per tenth of the 14 layer-phases, naming the last one), rewrites cosim.json after each
    layer-phase, and keeps them on Ctrl-C (exit 130)."""
    from efgen.cosim import layers

    calls = []

    def fake_run(p, lps, *, sim, workdir, **kw):     # one layer-phase per simulation
        [lp] = lps
        i = len(calls)
        calls.append(lp.label)
        if i == 2:
            raise KeyboardInterrupt
        if i == 1:
            saved = json.loads((tmp_path / "c" / "cosim.json").read_text())
            assert len(saved["layouts"]["reshaped"]) == 1           # written as it goes
        return [layers.Result(lp, 1e-7, {"y": 1e-7}, 1000 + i, (1, 1, 1), (8, 8, 8))]

    monkeypatch.setattr(layers, "run_layer_phases", fake_run)
    monkeypatch.setattr(layers, "BUILD_CACHE", tmp_path / "cache")
    assert main(COSIM + ["--layout", "reshaped", "--no-cache", "-o", str(tmp_path / "c")]) == 130
    err = capsys.readouterr().err.splitlines()
    assert "the model expects" in err[0] and "cycles" in err[0]
    assert "0/14" in err[1]
    assert "2/14" in err[2] and "reshaped conv1:wu: 1,001 cycles" in err[2]
    assert "interrupted after 2 of 14" in err[-1]
    saved = json.loads((tmp_path / "c" / "cosim.json").read_text())
    assert saved["interrupted"] is True
    assert [r["label"] for r in saved["layouts"]["reshaped"]] == ["conv1:fp", "conv1:wu"]
    assert saved["layouts"]["reshaped"][0]["cycles"] == 1000
