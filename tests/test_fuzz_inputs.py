"""Fuzzing every user input: each bad input is one line, exit code 2, and no output.

Hypothesis generates broken variants of every file and flag a user hands efgen: net
YAML, board YAML, sweep YAML, schedule overrides, ``--tiles``, and ONNX models
(truncated, wrong opset, unknown operators, initialisers of the wrong shape). Each
variant is broken by construction (a wrong type, a negative size, an unknown or missing
key, a syntax error, garbage bytes, ...), and the unbroken base of each kind is checked to
pass, so a refusal is about the mutation. For every case the CLI, run in-process, must
return 2, print exactly one line on stderr and no traceback, and create no output folder.

1,200 cases in all, derandomised (the same cases on every run of ``make test``).
"""

from __future__ import annotations

import copy
import io
import shutil
import string
import tempfile
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from efgen.cli import main
from efgen.frontend.ir import net_yaml

ROOT = Path(__file__).resolve().parents[1]
NET = yaml.safe_load((ROOT / "configs" / "nets" / "tiny.yaml").read_text())
BOARD = yaml.safe_load((ROOT / "configs" / "boards" / "zcu102.yaml").read_text())
SWEEP = {"name": "fz", "boards": ["zcu102"], "nets": ["tiny"], "batch": [2],
         "precision": ["fp32"], "tm": [4], "tn": [4], "ifm_depth": [1024],
         "ofm_depth": [1024], "wbuf_depth": ["auto"], "objective": "latency"}
OVERRIDES = {"layers": {"conv2": {"fp": {"tr": 4, "tc": 8, "order": "wo"},
                                  "wu": {"tr": 2, "tc": 8, "mc": 1}},
                        "fc": {"bp": {"tr": 1, "tc": 2}}}}
REQUIRED = {"net": [("name",), ("input",), ("layers",), ("num_classes",)],
            "board": [("name",), ("part",), ("resources",), ("resources", "dsp"),
                      ("ddr",), ("clock_mhz",)],
            "sweep": [("name",), ("boards",), ("nets",)],
            "overrides": [("layers",)]}
SETTINGS = dict(derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _run(argv: list[str]) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, err.getvalue()


def _expect_refusal(argv: list[str], out: Path, case: str) -> None:
    code, err = _run(argv + ["-o", str(out)])
    lines = err.splitlines()
    assert code == 2, f"{case}: exit {code}, stderr {err!r}"
    assert len(lines) == 1 and lines[0].startswith("efgen: error: "), f"{case}: {err!r}"
    assert "Traceback" not in err
    assert not out.exists(), f"{case}: {out} was created"


class _Dir:
    """A scratch folder per example (hypothesis runs many examples per test call)."""

    def __enter__(self) -> Path:
        self.path = Path(tempfile.mkdtemp(prefix="efgen-fuzz-"))
        return self.path

    def __exit__(self, *exc):
        shutil.rmtree(self.path, ignore_errors=True)


# ---- YAML mutations ---------------------------------------------------------------------

def _nodes(obj, path=()):
    """(path, value) of every node below the root."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield path + (k,), v
            yield from _nodes(v, path + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield path + (i,), v
            yield from _nodes(v, path + (i,))


def _set(doc, path, value):
    node = doc
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value


def _get(doc, path):
    for p in path:
        doc = doc[p]
    return doc


def _wrong_types(value) -> list:
    """Values that cannot stand where ``value`` stands (another kind of thing)."""
    if isinstance(value, bool):
        return ["maybe", 3, [value]]
    if isinstance(value, (int, float)):
        return ["abc", [value], {"x": value}, True]
    if isinstance(value, str):
        return [[value], {"x": value}]
    if isinstance(value, list):
        return ["abc", 7, {"x": 1}]
    if isinstance(value, dict):
        return ["abc", 7, [1, 2]]
    return ["abc"]


@st.composite
def broken_doc(draw, kind: str, base: dict):
    """(text, what was done): ``base`` broken by one mutation, as YAML text."""
    doc = copy.deepcopy(base)
    nodes = list(_nodes(doc))
    how = draw(st.sampled_from(["type", "negative", "unknown_key", "missing_key", "syntax",
                                "garbage", "not_a_mapping"]))
    if how == "type":
        path, value = draw(st.sampled_from(nodes))
        new = draw(st.sampled_from(_wrong_types(value)))
        _set(doc, path, new)
        return yaml.safe_dump(doc, sort_keys=False), f"{path} = {new!r}"
    if how == "negative":
        nums = [(p, v) for p, v in nodes if isinstance(v, (int, float))
                and not isinstance(v, bool)]
        path, _ = draw(st.sampled_from(nums))
        new = -draw(st.integers(1, 10**6))
        _set(doc, path, new)
        return yaml.safe_dump(doc, sort_keys=False), f"{path} = {new}"
    if how == "unknown_key":
        dicts = [((), doc)] + [(p, v) for p, v in nodes if isinstance(v, dict)]
        path, d = draw(st.sampled_from(dicts))
        key = "zz_" + draw(st.text(string.ascii_lowercase, min_size=1, max_size=8))
        d[key] = draw(st.sampled_from([1, "x", [1]]))
        return yaml.safe_dump(doc, sort_keys=False), f"{path}.{key} added"
    if how == "missing_key":
        path = draw(st.sampled_from(REQUIRED[kind]))
        del _get(doc, path[:-1])[path[-1]]
        return yaml.safe_dump(doc, sort_keys=False), f"{path} removed"
    if how == "syntax":
        lines = yaml.safe_dump(doc, sort_keys=False).splitlines()
        i = draw(st.integers(0, len(lines) - 1))
        bad = draw(st.sampled_from(["{", "[unclosed", "key: [1, 2", "\t- tab: 1", ": :",
                                    "'quote", "- a\nb: c", "&x *y"]))
        lines.insert(i, bad)
        return "\n".join(lines) + "\n", f"line {i + 1}: {bad!r}"
    if how == "garbage":
        data = draw(st.binary(min_size=0, max_size=64))
        return data.decode("latin-1"), f"garbage {data!r}"
    value = draw(st.sampled_from([[1, 2], "just text", 42, None]))
    return yaml.safe_dump(value), f"top level {value!r}"


def _write(d: Path, name: str, text: str) -> Path:
    f = d / name
    f.write_bytes(text.encode("latin-1", errors="replace") if all(ord(c) < 256 for c in text)
                  else text.encode())
    return f


# ---- the bases are valid ----------------------------------------------------------------

def test_the_unbroken_bases_pass(tmp_path):
    from efgen.frontend import load_net
    from efgen.frontend.boards import load_board
    from efgen.model.schedule import load_overrides
    from efgen.dse import load_sweep

    net = load_net(str(_write(tmp_path, "net.yaml", yaml.safe_dump(NET, sort_keys=False))))
    assert net.name == "tiny"
    assert load_board(str(_write(tmp_path, "b.yaml", yaml.safe_dump(BOARD)))).name == "zcu102"
    assert load_sweep(_write(tmp_path, "s.yaml", yaml.safe_dump(SWEEP))).name == "fz"
    assert load_overrides(str(_write(tmp_path, "o.yaml", yaml.safe_dump(OVERRIDES))), net)
    code, err = _run(["net", "show", str(tmp_path / "net.yaml")])
    assert code == 0 and err == ""


# ---- the fuzz tests ---------------------------------------------------------------------

@settings(max_examples=300, **SETTINGS)
@given(broken_doc("net", NET))
def test_broken_net_yaml(case):
    text, what = case
    with _Dir() as d:
        f = _write(d, "net.yaml", text)
        _expect_refusal(["build", "--board", "zcu102", "--net", f], d / "out", what)


@settings(max_examples=250, **SETTINGS)
@given(broken_doc("board", BOARD))
def test_broken_board_yaml(case):
    text, what = case
    with _Dir() as d:
        f = _write(d, "board.yaml", text)
        _expect_refusal(["build", "--board", f, "--net", "tiny"], d / "out", what)


@settings(max_examples=150, **SETTINGS)
@given(broken_doc("sweep", SWEEP))
def test_broken_sweep_yaml(case):
    text, what = case
    with _Dir() as d:
        f = _write(d, "sweep.yaml", text)
        _expect_refusal(["sweep", f, "--jobs", "1", "--no-progress"], d / "out", what)


@settings(max_examples=150, **SETTINGS)
@given(broken_doc("overrides", OVERRIDES))
def test_broken_overrides(case):
    text, what = case
    with _Dir() as d:
        f = _write(d, "over.yaml", text)
        _expect_refusal(["build", "--board", "zcu102", "--net", "tiny", "--overrides", f],
                        d / "out", what)


def _bad_tiles(s: str) -> bool:
    from efgen.errors import EfgenError
    from efgen.model.schedule import parse_tiles

    try:
        parse_tiles(s)
    except EfgenError:
        return True
    return False


@settings(max_examples=150, **SETTINGS)
@given(st.one_of(
    st.text(alphabet="TtMmNn=,0123456789 -x.\n", max_size=20),
    st.builds(lambda a, b: f"Tm={a},Tn={b}", st.integers(-5, 0), st.integers(-5, 64)),
    st.builds(lambda a, b: f"Tm={a},Tn={b}", st.sampled_from(["", "x", "1.5", "1e3", "+4"]),
              st.integers(1, 64)),
    st.text(max_size=12)).filter(_bad_tiles))
def test_bad_tiles(text):
    with _Dir() as d:
        _expect_refusal(["build", "--board", "zcu102", "--net", "tiny", f"--tiles={text}"],
                        d / "out", repr(text))


@settings(max_examples=50, **SETTINGS)
@given(st.sampled_from([f"Tm={a},Tn={b}" for a, b in ((64, 64), (128, 8), (4096, 1),
                                                       (1, 4096), (999, 999))]),
       st.sampled_from(["pynq-z2", "zedboard", "ultra96v2", "zcu102"]))
def test_tiles_that_fit_no_board(text, board):
    """Well-formed tiles the board cannot hold: one line naming the binding resource."""
    with _Dir() as d:
        _expect_refusal(["build", "--board", board, "--net", "tiny", "--tiles", text],
                        d / "out", text)


# ---- ONNX ---------------------------------------------------------------------------------

_ONNX: dict = {}


def _model():
    """tiny exported with its initial weights (once per session)."""
    if not _ONNX:
        import onnx

        from efgen.frontend import load_net
        from efgen.frontend.onnx_export import build_onnx
        from efgen.golden.model import init_state

        net = load_net("tiny")
        _ONNX["model"] = build_onnx(net, init_state(net, seed=0))
        _ONNX["bytes"] = _ONNX["model"].SerializeToString()
        tail = onnx.ModelProto()
        tail.opset_import.extend(_ONNX["model"].opset_import)
        tail.metadata_props.extend(_ONNX["model"].metadata_props)
        _ONNX["graph_end"] = len(_ONNX["bytes"]) - len(tail.SerializeToString())
    return _ONNX


class _Blob(bytes):
    """Model bytes that print as their length (hypothesis shows failing cases)."""

    def __repr__(self) -> str:
        return f"<{len(self)} bytes>"


@st.composite
def broken_onnx(draw):
    import onnx
    from onnx import numpy_helper

    m = _model()
    how = draw(st.sampled_from(["truncated", "opset", "unknown_op", "init_shape"]))
    if how == "truncated":        # cut inside the graph (or before it): never a whole model
        k = draw(st.integers(0, m["graph_end"] - 1))
        return _Blob(m["bytes"][:k]), f"truncated at {k}"
    model = onnx.ModelProto()
    model.CopyFrom(m["model"])
    if how == "opset":
        v = draw(st.one_of(st.integers(1, 6), st.integers(30, 10**4)))
        model.opset_import[0].version = v
        return _Blob(model.SerializeToString()), f"opset {v}"
    if how == "unknown_op":
        i = draw(st.integers(0, len(model.graph.node) - 1))
        name = "Zz" + draw(st.text(string.ascii_letters, min_size=1, max_size=10))
        model.graph.node[i].op_type = name
        return _Blob(model.SerializeToString()), f"node {i} is {name}"
    i = draw(st.integers(0, len(model.graph.initializer) - 1))
    init = model.graph.initializer[i]
    a = numpy_helper.to_array(init)
    shape = list(a.shape) or [1]
    j = draw(st.integers(0, len(shape) - 1))
    shape[j] += draw(st.integers(1, 3))
    if draw(st.booleans()):
        shape.append(1)
    new = numpy_helper.from_array(np.zeros(shape, dtype=a.dtype), init.name)
    init.CopyFrom(new)
    return _Blob(model.SerializeToString()), f"initializer {init.name} shape {shape}"


def test_the_unbroken_onnx_model_passes(tmp_path):
    f = tmp_path / "tiny.onnx"
    f.write_bytes(_model()["bytes"])
    code, err = _run(["net", "show", str(f)])
    assert code == 0 and err == ""


@settings(max_examples=200, **SETTINGS)
@given(broken_onnx())
def test_broken_onnx(case):
    data, what = case
    with _Dir() as d:
        f = d / "model.onnx"
        f.write_bytes(data)
        _expect_refusal(["build", "--board", "zcu102", "--net", f], d / "out", what)


def test_the_fuzz_covers_a_thousand_cases():
    tests = [test_broken_net_yaml, test_broken_board_yaml, test_broken_sweep_yaml,
             test_broken_overrides, test_bad_tiles, test_tiles_that_fit_no_board,
             test_broken_onnx]
    n = sum(t._hypothesis_internal_use_settings.max_examples for t in tests)
    assert n >= 1000


@pytest.mark.parametrize("bad", [b"", b"\x00\x01", b"not onnx at all"])
def test_onnx_garbage(tmp_path, bad):
    f = tmp_path / "m.onnx"
    f.write_bytes(bad)
    _expect_refusal(["build", "--board", "zcu102", "--net", f], tmp_path / "out", repr(bad))
