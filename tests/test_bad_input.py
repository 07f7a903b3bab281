"""Bad input: one line `efgen: error: ...` naming the file and layer/key, exit code 2."""

import subprocess
import sys

import pytest

from efgen.frontend import load_net

GOOD_HEAD = """name: bad
input: [3, 8, 8]
num_classes: 2
layers:
"""
TAIL = """  - {name: f, op: flatten}
  - {name: fc, op: linear, out_features: 2}
  - {name: loss, op: softmax_ce}
"""

CASES = {
    # id: (file text, substrings the message must contain)
    "yaml-syntax": ("name: bad\ninput: [3, 8, 8\nnum_classes: 2\n", ["YAML syntax error", "line"]),
    "duplicate-key": (GOOD_HEAD + "  - {name: c, op: conv, out_channels: 2, kernel: 3, kernel: 1}\n" + TAIL,
                      ["duplicate key 'kernel'", "line 5"]),
    "not-a-mapping": ("- just\n- a list\n", ["must be a mapping"]),
    "unknown-op": (GOOD_HEAD + "  - {name: c, op: convolution, out_channels: 2, kernel: 3}\n" + TAIL,
                   ["unknown op 'convolution'", "layers[0] (c).op", "did you mean 'conv'"]),
    "missing-layer-key": (GOOD_HEAD + "  - {name: c, op: conv, kernel: 3}\n" + TAIL,
                          ["missing key 'out_channels'", "layers[0] (c)"]),
    "missing-top-key": ("name: bad\ninput: [3, 8, 8]\nlayers: []\n", ["missing key 'num_classes'"]),
    "misspelt-key": (GOOD_HEAD + "  - {name: c, op: conv, out_channels: 2, kernal: 3}\n" + TAIL,
                     ["unknown key 'kernal'", "layers[0] (c).kernal", "did you mean 'kernel'"]),
    "mistyped-key": (GOOD_HEAD + "  - {name: c, op: conv, out_channels: 2, kernel: '3'}\n" + TAIL,
                     ["'kernel' must be an integer", "layers[0] (c).kernel"]),
    "bool-as-int": (GOOD_HEAD + "  - {name: c, op: conv, out_channels: true, kernel: 3}\n" + TAIL,
                    ["'out_channels' must be an integer", "layers[0] (c).out_channels"]),
    "zero-size": (GOOD_HEAD + "  - {name: c, op: conv, out_channels: 0, kernel: 3}\n" + TAIL,
                  ["'out_channels' must be positive", "layers[0] (c).out_channels"]),
    "negative-stride": (GOOD_HEAD + "  - {name: c, op: conv, out_channels: 2, kernel: 3, stride: -1}\n" + TAIL,
                        ["'stride' must be positive", "layers[0] (c).stride"]),
    "negative-padding": (GOOD_HEAD + "  - {name: c, op: conv, out_channels: 2, kernel: 3, padding: -2}\n" + TAIL,
                         ["'padding' must be zero or positive", "(c).padding"]),
    "zero-input": ("name: bad\ninput: [3, 0, 8]\nnum_classes: 2\nlayers:\n" + TAIL,
                   ["input size must be positive", "input[1]"]),
    "kernel-too-big": (GOOD_HEAD + "  - {name: c, op: conv, out_channels: 2, kernel: 9}\n" + TAIL,
                       ["does not fit input", "layers[0] (c)"]),
    "add-shape-mismatch": (GOOD_HEAD + "  - {name: a, op: conv, out_channels: 2, kernel: 3, padding: 1}\n"
                           "  - {name: b, op: conv, out_channels: 4, kernel: 3, padding: 1}\n"
                           "  - {name: s, op: add, inputs: [a, b]}\n" + TAIL,
                           ["shape mismatch at add", "layers[2] (s)", "2x8x8".replace("x", ", ")]),
    "dangling-input": (GOOD_HEAD + "  - {name: a, op: conv, out_channels: 2, kernel: 3}\n"
                       "  - {name: r, op: relu, inputs: [aa]}\n" + TAIL,
                       ["input 'aa' is not a layer", "layers[1] (r).inputs", "did you mean 'a'"]),
    "cycle": (GOOD_HEAD + "  - {name: a, op: conv, out_channels: 3, kernel: 1, inputs: [input]}\n"
              "  - {name: p, op: add, inputs: [a, q]}\n"
              "  - {name: q, op: relu, inputs: [p]}\n"
              "  - {name: f, op: flatten, inputs: [q]}\n"
              "  - {name: fc, op: linear, out_features: 2}\n  - {name: loss, op: softmax_ce}\n",
              ["cycle", "p, q"]),
    "duplicate-layer": (GOOD_HEAD + "  - {name: f, op: relu}\n" + TAIL,
                        ["duplicate layer name 'f'", "layers[1] (f)"]),
    "linear-on-map": (GOOD_HEAD + "  - {name: fc0, op: linear, out_features: 2}\n" + TAIL,
                      ["needs a flat input", "layers[0] (fc0)", "flatten"]),
    "no-loss": (GOOD_HEAD + "  - {name: f, op: flatten}\n  - {name: fc, op: linear, out_features: 2}\n",
                ["no softmax_ce loss"]),
    "loss-width": (GOOD_HEAD + "  - {name: f, op: flatten}\n  - {name: fc, op: linear, out_features: 3}\n"
                   "  - {name: loss, op: softmax_ce}\n", ["expects (2,) logits", "(loss)"]),
    "dead-layer": (GOOD_HEAD + "  - {name: a, op: relu}\n  - {name: b, op: relu, inputs: [input]}\n" + TAIL,
                   ["output of layer 'a' is never used"]),
    "shortcut-shrinks": (GOOD_HEAD + "  - {name: s, op: shortcut_a, out_channels: 2}\n" + TAIL,
                         ["cannot shrink channels", "(s).out_channels"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_net_file(case, tmp_path, run_cli):
    text, needles = CASES[case]
    path = tmp_path / f"{case}.yaml"
    path.write_text(text)
    code, out, err = run_cli("net", "show", path)
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("efgen: error: ")
    assert str(path) in lines[0]
    assert "—" in lines[0]  # every message says how to fix it
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


# A net file whose line 16 is the bad one (15 good lines before it, good lines after).
LINE16 = {
    # id: (line 16, what the message must say about where)
    "syntax-unclosed-flow": ("  - {name: x, op: relu", ":line 16, column 23 (noticed at line 17"),
    "syntax-in-line": ("  - {name: x op: relu}", ":line 16, column 16 —"),
    "syntax-unclosed-quote": ("  - {name: 'x, op: relu}", ":line 16, column 12 (the quote opened"),
    "syntax-indent": ("   - {name: x, op: relu}", ":line 16, column 4 —"),
    "schema-unknown-key": ("  - {name: x, op: conv, out_channels: 2, kernal: 3}",
                           "layers[11] (x).kernal (line 16) —"),
    "schema-duplicate-key": ("  - {name: x, op: conv, out_channels: 2, kernel: 3, kernel: 1}",
                             "(first defined on line 16) in {path}:line 16 —"),
}


@pytest.mark.parametrize("case", sorted(LINE16))
def test_error_line_numbers_are_exact(case, tmp_path, run_cli):
    bad, where = LINE16[case]
    text = (GOOD_HEAD + "".join(f"  - {{name: r{i}, op: relu}}\n" for i in range(11))
            + bad + "\n" + TAIL)
    assert text.splitlines()[15] == bad
    path = tmp_path / f"{case}.yaml"
    path.write_text(text)
    code, _, err = run_cli("net", "show", path)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert where.format(path=path) in err, err


def test_unknown_net_name(run_cli):
    code, _, err = run_cli("net", "show", "resnet21")
    assert code == 2
    assert "unknown net 'resnet21'" in err and "resnet20" in err


def test_missing_net_file(run_cli, tmp_path):
    code, _, err = run_cli("net", "show", tmp_path / "nope.yaml")
    assert code == 2 and "net file not found" in err and "nope.yaml" in err


def test_unknown_board_name(run_cli):
    from efgen.errors import EfgenError
    from efgen.frontend.boards import load_board

    with pytest.raises(EfgenError) as exc:
        load_board("zcu103")
    msg = exc.value.message()
    assert "zcu103" in msg and "zcu102" in msg


def test_bad_cli_values(run_cli):
    code, _, err = run_cli("golden", "--net", "tiny", "--batch", "0")
    assert code == 2 and "--batch" in err
    code, _, err = run_cli("net", "show", "tiny", "--train-last", "0")
    assert code == 2 and "--train-last 0" in err and "tiny.yaml" in err
    # more than the net's conv/linear layers: refused like 0, naming the count
    n = len(load_net("tiny").weighted_layers)
    code, out, err = run_cli("net", "show", "tiny", "--train-last", "99")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    assert err.startswith("efgen: error: --train-last 99") and f"only {n} conv/linear" in err
    assert "tiny.yaml" in err and f"give K between 1 and {n}" in err
    code, _, err = run_cli("build", "--board", "zcu102", "--net", "tiny", "--train-last",
                           str(n + 1))
    assert code == 2 and f"--train-last {n + 1}" in err
    code, _, err = run_cli("golden", "--net", "tiny", "--batch", "two")
    assert code == 2 and err.startswith("efgen: error:") and "invalid int value" in err


def test_real_process_has_no_traceback(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(CASES["cycle"][0])
    proc = subprocess.run([sys.executable, "-m", "efgen.cli", "net", "show", str(path)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1
