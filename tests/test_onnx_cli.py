"""The ONNX commands end to end: export, import, and .onnx wherever --net is taken."""

import numpy as np
import onnx
from onnx import TensorProto, helper


def test_export_import_golden_roundtrip(tmp_path, run_cli):
    model = tmp_path / "lenet.onnx"
    code, out, _ = run_cli("export", "lenet5", "-o", model, "--seed", "3")
    assert code == 0 and model.exists()
    code, out, _ = run_cli("import", model, "-o", tmp_path / "lenet.yaml", "--weights",
                           tmp_path / "w.npz")
    assert code == 0 and "61,706 parameters" in out
    # The imported YAML is a net like any other, with the same table.
    a = run_cli("net", "show", "lenet5")[1].splitlines()[1:]
    b = run_cli("net", "show", tmp_path / "lenet.yaml")[1].splitlines()[1:]
    assert a == b
    c = run_cli("net", "show", model)[1].splitlines()[1:]
    assert c == a
    # Golden training from the imported weights equals training from the ONNX file.
    g1 = run_cli("golden", "--net", tmp_path / "lenet.yaml", "--weights", tmp_path / "w.npz",
                 "--batch", "2")[1]
    g2 = run_cli("golden", "--net", model, "--batch", "2")[1]
    loss = lambda s: [l for l in s.splitlines() if l.startswith("step 1")][0].split("(")[0]  # noqa: E731
    assert loss(g1) == loss(g2)
    w = np.load(tmp_path / "w.npz")
    assert w["c1.weight"].shape == (6, 1, 5, 5)


def test_build_accepts_onnx(tmp_path, run_cli):
    model = tmp_path / "tiny.onnx"
    assert run_cli("export", "tiny", "-o", model)[0] == 0
    code, out, _ = run_cli("build", "--board", "ultra96v2", "--net", model, "--batch", "4",
                           "-o", tmp_path / "b")
    assert code == 0 and (tmp_path / "b" / "design.json").exists()


def test_unsupported_operators_reported_at_once(tmp_path, run_cli):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1, 4, 4])
    g = helper.make_graph([helper.make_node("Sigmoid", ["x"], ["a"], name="s1"),
                           helper.make_node("Tanh", ["a"], ["b"], name="t1"),
                           helper.make_node("Sigmoid", ["b"], ["y"], name="s2")],
                          "g", [x], [y])
    path = tmp_path / "bad.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)
    code, out, err = run_cli("import", path)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and str(path) in err
    assert "Sigmoid (s1, s2)" in err and "Tanh (t1)" in err


def test_garbage_onnx_file(tmp_path, run_cli):
    path = tmp_path / "junk.onnx"
    path.write_bytes(b"\x00\x01not a model at all")
    code, _, err = run_cli("net", "show", path)
    assert code == 2 and "junk.onnx" in err and "Traceback" not in err
