"""The command line: every subcommand runs and prints what it promises."""

import re

from efgen import __version__


def test_version(run_cli, capsys):
    import pytest

    with pytest.raises(SystemExit) as exc:
        run_cli("--version")
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"efgen {__version__}"


def test_nets_lists_catalogue_with_totals(run_cli):
    code, out, _ = run_cli("nets")
    assert code == 0
    row = next(l for l in out.splitlines() if l.startswith("resnet20 "))
    assert "269,722" in row and "40,551,040" in row
    for name in ("lenet5", "resnet18", "resnet20-b", "tiny", "vgg16-bn-224", "vgg16-cifar"):
        assert re.search(rf"^{re.escape(name)}\s", out, re.M), name


def test_net_show_table_and_totals(run_cli):
    code, out, _ = run_cli("net", "show", "resnet20")
    assert code == 0
    assert re.search(r"^conv1_conv\s+conv\s+3x32x32\s+16x32x32\s+442,368\s+0\s+442,368\s+432\s",
                     out, re.M)
    assert re.search(r"^s2b1_add\s+add\s+32x16x16, 32x16x16\s+32x16x16", out, re.M)
    total = next(l for l in out.splitlines() if l.startswith("TOTAL"))
    assert "40,551,040" in total and "269,722" in total


def test_net_show_train_last(run_cli):
    code, out, _ = run_cli("net", "show", "lenet5", "--train-last", "2")
    assert code == 0
    assert re.search(r"^c1\s.*\sfrozen\s", out, re.M)
    assert re.search(r"^f6\s.*\syes\s", out, re.M)
    total = next(l for l in out.splitlines() if l.startswith("TOTAL"))
    # WU MACs of the last two layers; BP only through 'out'.
    assert f"{120 * 84 + 84 * 10:,}" in total and f"{84 * 10:,}" in total


def test_net_show_path(run_cli, tmp_path):
    from tests.test_bad_input import GOOD_HEAD, TAIL

    p = tmp_path / "ok.yaml"
    p.write_text(GOOD_HEAD + TAIL)
    code, out, _ = run_cli("net", "show", p)
    assert code == 0 and "fc" in out and str(p) in out


def test_boards(run_cli):
    code, out, _ = run_cli("boards")
    assert code == 0
    for name in ("zcu102", "zcu104", "kv260", "ultra96v2", "pynq-z2", "zedboard"):
        assert re.search(rf"^{name}\s", out, re.M), name
    assert "xczu9eg-ffvb1156-2-e" in out


def test_golden_prints_loss_and_grad_norms(run_cli):
    code, out, _ = run_cli("golden", "--net", "tiny", "--batch", "4", "--steps", "3")
    assert code == 0
    losses = [float(m) for m in re.findall(r"^step \d+: loss ([0-9.]+)", out, re.M)]
    assert len(losses) == 3 and all(l > 0 for l in losses)
    assert len(set(losses)) == 3  # the parameters move between steps
    assert len(re.findall(r"^fc\s+\d\.\d+e[+-]\d+$", out, re.M)) == 3


def test_golden_is_seeded(run_cli):
    strip = lambda s: re.sub(r"\(\d+\.\d ms\)", "", s)  # noqa: E731
    a = strip(run_cli("golden", "--net", "tiny", "--batch", "2", "--seed", "7")[1])
    b = strip(run_cli("golden", "--net", "tiny", "--batch", "2", "--seed", "7")[1])
    c = strip(run_cli("golden", "--net", "tiny", "--batch", "2", "--seed", "8")[1])
    assert a == b and a != c
