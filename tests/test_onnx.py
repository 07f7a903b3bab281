"""ONNX import/export, with onnx's own ReferenceEvaluator as the oracle.

Models are built here with ``onnx.helper`` (seeded random weights, non-trivial batchnorm
running statistics), imported, and run with the golden model in inference mode; the
logits must match the ReferenceEvaluator's within 1e-5 relative (max|a-b| / max|b|).
Every catalogue net is exported and re-imported to the same layer table.
"""

from __future__ import annotations

import numpy as np
import onnx  # a core dependency (pyproject.toml)
import pytest
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

from efgen.errors import EfgenError  # noqa: E402
from efgen.frontend import load_net  # noqa: E402
from efgen.frontend.ir import list_nets, net_yaml, parse_net, write_net_yaml  # noqa: E402  # noqa: E402
from efgen.frontend.onnx_export import export_onnx  # noqa: E402
from efgen.frontend.onnx_import import import_onnx, load_onnx_net  # noqa: E402
from efgen.frontend.weights import save_weights, state_to_flat  # noqa: E402
from efgen.frontend.yamlio import read_yaml  # noqa: E402
from efgen.golden.checkpoint import load_onnx, load_weights, state_from_flat  # noqa: E402
from efgen.golden.model import forward, init_state  # noqa: E402

TOL = 1e-5
INT64_MAX = int(np.iinfo(np.int64).max)


# ---- building test models -------------------------------------------------------------

class Builder:
    """An ONNX graph under construction: seeded He-scaled weights, random BN statistics."""

    def __init__(self, in_shape, opset, batch="N", seed=0):
        self.rng = np.random.default_rng(seed)
        self.in_shape, self.opset, self.batch = list(in_shape), opset, batch
        self.nodes, self.inits = [], []

    def init(self, name, value, dtype=np.float32):
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def const(self, name, value, dtype=np.int64):
        """A Constant node: the form exporters use for small parameter tensors."""
        tensor = numpy_helper.from_array(np.asarray(value, dtype=dtype), name)
        self.nodes.append(helper.make_node("Constant", [], [name], name=f"{name}_const",
                                           value=tensor))
        return name

    def node(self, op, inputs, name, **attrs):
        taken = {o for n in self.nodes for o in n.output}
        out = next(f"{name}:{k}" for k in range(len(taken) + 1) if f"{name}:{k}" not in taken)
        self.nodes.append(helper.make_node(op, list(inputs), [out], name=name, **attrs))
        return out

    def conv(self, x, name, cin, cout, k, stride=1, pad=0, bias=False, **attrs):
        w = self.rng.standard_normal((cout, cin, k, k)) * np.sqrt(2.0 / (cin * k * k))
        ins = [x, self.init(f"{name}.W", w)]
        if bias:
            ins.append(self.init(f"{name}.B", self.rng.standard_normal(cout) * 0.1))
        if "auto_pad" not in attrs:
            attrs.setdefault("pads", [pad] * 4)
        return self.node("Conv", ins, name, kernel_shape=[k, k], strides=[stride] * 2, **attrs)

    def bn(self, x, name, c, eps=1e-5):
        r = self.rng
        vals = {"scale": r.uniform(0.5, 1.5, c), "B": r.standard_normal(c) * 0.2,
                "mean": r.standard_normal(c) * 0.3, "var": r.uniform(0.4, 2.5, c)}
        ins = [x] + [self.init(f"{name}.{k}", v) for k, v in vals.items()]
        return self.node("BatchNormalization", ins, name, epsilon=eps)

    def gemm(self, x, name, fin, fout, trans_b=1, bias=True):
        w = self.rng.standard_normal((fout, fin)) * np.sqrt(2.0 / fin)
        ins = [x, self.init(f"{name}.W", w if trans_b else w.T)]
        if bias:
            ins.append(self.init(f"{name}.C", self.rng.standard_normal(fout) * 0.1))
        return self.node("Gemm", ins, name, transB=trans_b)

    def model(self, out, n_out):
        graph = helper.make_graph(
            self.nodes, "test",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [self.batch, *self.in_shape])],
            [helper.make_tensor_value_info(out, TensorProto.FLOAT, n_out if isinstance(
                n_out, list) else [self.batch, n_out])],
            initializer=self.inits)
        opsets = [helper.make_opsetid("", self.opset)]
        m = helper.make_model(graph, opset_imports=opsets, producer_name="efgen-tests")
        m.ir_version = helper.find_min_ir_version_for(opsets)
        onnx.checker.check_model(m, full_check=True)
        return m


def shortcut_one_slice(b, x, name, pad):
    """PyTorch ``F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, p, p))`` (opset >= 11 export)."""
    s = b.node("Slice", [x, b.const(f"{name}.starts", [0, 0]),
                         b.const(f"{name}.ends", [INT64_MAX, INT64_MAX]),
                         b.const(f"{name}.axes", [2, 3]), b.const(f"{name}.steps", [2, 2])],
               f"{name}/Slice")
    if b.opset >= 11:
        return b.node("Pad", [s, b.const(f"{name}.pads", [0, pad, 0, 0, 0, pad, 0, 0])],
                      f"{name}/Pad", mode="constant")
    return b.node("Pad", [s], f"{name}/Pad", mode="constant",
                  pads=[0, pad, 0, 0, 0, pad, 0, 0], value=0.0)


def shortcut_split_slices(b, x, name, pad):
    """The same shortcut as one trivial Slice (axes 0, 1) and one Slice per spatial axis."""
    t = x
    for i, (axes, steps) in enumerate([([0, 1], [1, 1]), ([2], [2]), ([-1], [2])]):
        n = len(axes)
        t = b.node("Slice", [t, b.const(f"{name}.s{i}", [0] * n),
                             b.const(f"{name}.e{i}", [INT64_MAX] * n),
                             b.const(f"{name}.a{i}", axes), b.const(f"{name}.st{i}", steps)],
                   f"{name}/Slice{i}")
    if b.opset >= 11:
        return b.node("Pad", [t, b.const(f"{name}.pads", [0, pad, 0, 0, 0, pad, 0, 0]),
                              b.const(f"{name}.value", 0.0, np.float32)],
                      f"{name}/Pad", mode="constant")
    return b.node("Pad", [t], f"{name}/Pad", pads=[0, pad, 0, 0, 0, pad, 0, 0])


def resnet_like(opset):
    """A ResNet-20-style net: identity block, two option-A (Slice/Pad) downsampling blocks."""
    b = Builder([3, 16, 16], opset, seed=1)

    def block(x, name, cin, cout, stride, shortcut=None):
        y = b.node("Relu", [b.bn(b.conv(x, f"{name}.conv1", cin, cout, 3, stride, 1),
                                 f"{name}.bn1", cout)], f"{name}.relu1")
        y = b.bn(b.conv(y, f"{name}.conv2", cout, cout, 3, 1, 1), f"{name}.bn2", cout)
        skip = x if shortcut is None else shortcut(b, x, f"{name}.short", (cout - cin) // 2)
        return b.node("Relu", [b.node("Add", [y, skip], f"{name}.add")], f"{name}.relu2")

    x = b.node("Relu", [b.bn(b.conv("x", "conv1", 3, 8, 3, 1, 1), "bn1", 8)], "relu1")
    x = block(x, "layer1.0", 8, 8, 1)
    x = block(x, "layer2.0", 8, 16, 2, shortcut_one_slice)
    x = block(x, "layer3.0", 16, 32, 2, shortcut_split_slices)
    x = b.node("Flatten", [b.node("GlobalAveragePool", [x], "gap")], "flatten", axis=1)
    logits = b.gemm(x, "fc", 32, 10)
    return b.model(b.node("Softmax", [logits], "softmax", axis=1), 10), logits


def lenet5():
    """LeNet-5: conv5x5 + bias, avgpool, a constant-shape Reshape, Gemm (transB 0 and 1)."""
    b = Builder([1, 32, 32], 11, batch=3, seed=2)
    x = b.node("Relu", [b.conv("x", "c1", 1, 6, 5, bias=True)], "relu1")
    x = b.node("AveragePool", [x], "s2", kernel_shape=[2, 2], strides=[2, 2])
    x = b.node("Relu", [b.conv(x, "c3", 6, 16, 5, bias=True)], "relu3")
    x = b.node("AveragePool", [x], "s4", kernel_shape=[2, 2], strides=[2, 2])
    x = b.node("Reshape", [x, b.init("flat_shape", [3, -1], np.int64)], "flatten")
    x = b.node("Relu", [b.gemm(x, "c5", 400, 120, trans_b=0)], "relu5")
    x = b.node("Relu", [b.gemm(x, "f6", 120, 84)], "relu6")
    logits = b.gemm(x, "out", 84, 10)
    return b.model(logits, 10), logits


def mixed():
    """Stride-2 5x5, 1x1 and SAME 3x3 convs, padded maxpool and avgpool, a conv bias given
    as Add, a computed-shape Reshape (Shape/Gather/Unsqueeze/Concat), MatMul + Add linears,
    Dropout and Identity, LogSoftmax at the end; opset 18 (Pad-free, axes as inputs)."""
    b = Builder([3, 20, 20], 18, seed=3)
    x = b.node("Relu", [b.conv("x", "conv5s2", 3, 8, 5, stride=2, pad=2, bias=True)], "r1")
    x = b.node("MaxPool", [x], "pool", kernel_shape=[3, 3], strides=[2, 2], pads=[1] * 4)
    x = b.conv(x, "conv1x1", 8, 12, 1)
    x = b.node("Add", [x, b.init("conv1x1.bias", b.rng.standard_normal((1, 12, 1, 1)))],
               "conv1x1.add")
    x = b.node("Relu", [b.bn(x, "bn", 12)], "r2")
    x = b.node("Relu", [b.conv(x, "conv3same", 12, 12, 3, auto_pad="SAME_UPPER")], "r3")
    x = b.node("AveragePool", [x], "avg", kernel_shape=[3, 3], strides=[1, 1], pads=[1] * 4,
               count_include_pad=1)
    x = b.node("Dropout", [x], "drop")
    x = b.node("Identity", [x], "ident")
    n = b.node("Gather", [b.node("Shape", [x], "shape"), b.const("zero", 0)], "batch", axis=0)
    n = b.node("Unsqueeze", [n, b.const("ax0", [0])], "unsq")
    shape = b.node("Concat", [n, b.const("minus1", [-1])], "cat", axis=0)
    x = b.node("Reshape", [x, shape], "view")
    w1 = b.init("fc1.W", b.rng.standard_normal((300, 20)) * np.sqrt(2 / 300))
    x = b.node("Add", [b.node("MatMul", [x, w1], "fc1"), b.init("fc1.b", b.rng.random(20))],
               "fc1.add")
    x = b.node("Relu", [x], "r4")
    w2 = b.init("fc2.W", b.rng.standard_normal((20, 5)) * np.sqrt(2 / 20))
    logits = b.node("Add", [b.init("fc2.b", b.rng.random(5)), b.node("MatMul", [x, w2], "fc2")],
                    "fc2.add")
    return b.model(b.node("LogSoftmax", [logits], "logsoftmax", axis=1), 5), logits


# ---- helpers ----------------------------------------------------------------------------

def oracle(model, outputs, feeds):
    """ReferenceEvaluator's outputs. Models below opset 14 are first converted to opset 14:
    the evaluator's BatchNormalization-9 always blends batch statistics into the running
    ones (its ``momentum`` attribute gets the schema default), although a one-output BN-9
    is inference mode; BatchNormalization-14 with training_mode=0 is evaluated as specified."""
    if model.opset_import[0].version < 14:
        from onnx import version_converter

        model = version_converter.convert_version(model, 14)
    return ReferenceEvaluator(model).run(outputs, feeds)


def rel_err(got, ref):
    return float(np.abs(got.astype(np.float64) - ref).max() / np.abs(ref).max())


def golden_logits(net, state, x):
    acts, _, _ = forward(net, state, x, None, train=False)
    return acts[net.loss_layer.inputs[0]]


def random_state(net, seed):
    """init_state with random biases, BN affine parameters and running statistics."""
    state = init_state(net, seed=seed)
    rng = np.random.default_rng(seed + 100)
    for l in net:
        p = state.params.get(l.name, {})
        if "bias" in p:
            p["bias"][:] = rng.standard_normal(p["bias"].shape) * 0.1
        if l.op == "batchnorm":
            c = l.in_shape[0]
            p["gamma"][:] = rng.uniform(0.5, 1.5, c)
            p["beta"][:] = rng.standard_normal(c) * 0.2
            state.buffers[l.name]["running_mean"][:] = rng.standard_normal(c) * 0.3
            state.buffers[l.name]["running_var"][:] = rng.uniform(0.4, 2.5, c)
    return state


# ---- import: ReferenceEvaluator vs golden ---------------------------------------------------

@pytest.mark.parametrize("case", ["resnet_opset17", "resnet_opset10", "lenet5", "mixed"])
def test_import_matches_reference(case, tmp_path):
    model, logits = {"resnet_opset17": lambda: resnet_like(17),
                     "resnet_opset10": lambda: resnet_like(10),
                     "lenet5": lenet5, "mixed": mixed}[case]()
    path = tmp_path / f"{case}.onnx"
    onnx.save(model, str(path))
    doc, params = import_onnx(path)
    net = parse_net(doc, str(path))
    state = state_from_flat(net, params)
    batch = 3 if case == "lenet5" else 2
    x = np.random.default_rng(7).standard_normal((batch, *net.input_shape)).astype(np.float32)
    ref = oracle(model, [logits], {"x": x})[0]
    got = golden_logits(net, state, x)
    assert got.dtype == np.float32 and got.shape == ref.shape
    err = rel_err(got, ref)
    print(f"{case}: max rel err {err:.3e}")
    assert err <= TOL, err

    ops = [l.op for l in net]
    assert ops[-1] == "softmax_ce" and net.loss_layer.name == "loss"
    assert "Softmax" not in str(doc) and "LogSoftmax" not in str(doc)
    if case.startswith("resnet"):
        shorts = [l for l in net if l.op == "shortcut_a"]
        assert [(s.in_shape, s.channels, s.stride) for s in shorts] == [
            ((8, 16, 16), 16, 2), ((16, 8, 8), 32, 2)]
        assert [s.name for s in shorts] == ["layer2.0.short/Pad", "layer3.0.short/Pad"]
        assert ops.count("add") == 3 and net["layer1.0.add"].inputs == ("layer1.0.bn2", "relu1")
        assert net.num_classes == 10 and net.input_shape == (3, 16, 16)
    elif case == "lenet5":
        assert ops == ["conv", "relu", "avgpool", "conv", "relu", "avgpool", "flatten",
                       "linear", "relu", "linear", "relu", "linear", "softmax_ce"]
        assert net["c5"].channels == 120 and net["c1"].bias
    else:
        assert ops == ["conv", "relu", "maxpool", "conv", "batchnorm", "relu", "conv", "relu",
                       "avgpool", "flatten", "linear", "relu", "linear", "softmax_ce"]
        assert net["conv1x1"].bias and net["fc1"].bias and net["fc2"].bias
        assert (net["pool"].kernel, net["pool"].stride, net["pool"].padding) == (3, 2, 1)
        assert net["conv3same"].padding == 1 and net["conv5s2"].stride == 2
        assert net["fc1"].in_shape == (300,) and net.num_classes == 5


# ---- export -> import round trip -----------------------------------------------------------

@pytest.mark.parametrize("name", list_nets())
def test_round_trip_catalogue(name, tmp_path):
    net = load_net(name)
    state = init_state(net, seed=1)
    path = tmp_path / f"{name}.onnx"
    export_onnx(net, state, path)
    onnx.checker.check_model(str(path), full_check=True)
    doc, params = import_onnx(path)
    back = parse_net(doc, str(path))
    # Same layers: names, ops, wiring, shapes, kernel/stride/padding, bias, training roles.
    assert back.layers == net.layers
    assert back.totals() == net.totals()
    assert (back.name, back.input_shape, back.num_classes) == (
        net.name, net.input_shape, net.num_classes)
    flat = state_to_flat(state)
    assert set(params) == set(flat)
    for key, a in flat.items():
        np.testing.assert_array_equal(params[key], a, err_msg=key)


@pytest.mark.parametrize("name", ["tiny", "lenet5", "resnet20"])
def test_round_trip_numerics(name, tmp_path):
    net = load_net(name)
    state = random_state(net, seed=5)
    path = tmp_path / f"{name}.onnx"
    model = export_onnx(net, state, path)
    x = np.random.default_rng(8).standard_normal((2, *net.input_shape)).astype(np.float32)
    ref = oracle(onnx.load(str(path)), ["logits"], {"input": x})[0]
    err = rel_err(golden_logits(net, state, x), ref)
    net2, state2 = load_onnx(path)
    err2 = rel_err(golden_logits(net2, state2, x), ref)
    print(f"export {name}: max rel err {err:.3e} (re-imported {err2:.3e})")
    assert err <= TOL and err2 <= TOL
    assert model.opset_import[0].version == 17


def test_export_mapping(tmp_path):
    net = load_net("tiny")
    model = export_onnx(net, init_state(net), tmp_path / "tiny.onnx")
    g = model.graph
    by_name = {n.name: n for n in g.node}
    ops = {n.op_type for n in g.node}
    assert ops == {"Conv", "BatchNormalization", "Relu", "MaxPool", "Slice", "Pad", "Add",
                   "AveragePool", "GlobalAveragePool", "Flatten", "Gemm"}
    attrs = lambda n: {a.name: helper.get_attribute_value(a) for a in n.attribute}  # noqa: E731
    assert attrs(by_name["fc"])["transB"] == 1
    assert abs(attrs(by_name["bn1"])["epsilon"] - 1e-5) < 1e-10
    assert attrs(by_name["pool2"])["count_include_pad"] == 1
    assert attrs(by_name["conv2"])["strides"] == [2, 2]
    assert by_name["short/subsample"].op_type == "Slice" and by_name["short"].op_type == "Pad"
    dims = g.input[0].type.tensor_type.shape.dim
    assert g.input[0].name == "input" and dims[0].dim_param == "N"
    assert [d.dim_value for d in dims[1:]] == [3, 16, 16]
    assert g.output[0].name == "logits"
    assert load_onnx_net(tmp_path / "tiny.onnx").layers == net.layers


# ---- errors ---------------------------------------------------------------------------------

def test_unsupported_ops_reported_at_once(tmp_path):
    b = Builder([3, 8, 8], 13, seed=4)
    x = b.node("Sigmoid", [b.conv("x", "conv1", 3, 4, 3, pad=1)], "sig1")
    x = b.conv(x, "dw1", 2, 4, 3, pad=1, group=2)
    x = b.node("Sigmoid", [x], "sig2")
    x = b.node("LeakyRelu", [b.bn(x, "bn_eps", 4, eps=1e-3)], "")
    x = b.conv(x, "dil", 4, 4, 3, pad=2, dilations=[2, 2])
    x = b.node("Flatten", [b.node("GlobalAveragePool", [x], "gap")], "flat")
    path = tmp_path / "bad.onnx"
    onnx.save(b.model(b.gemm(x, "fc", 4, 3), 3), str(path))
    with pytest.raises(EfgenError) as exc:
        import_onnx(path)
    msg = exc.value.message()
    assert "\n" not in msg and str(path) in msg
    assert msg.startswith("unsupported ONNX operators: Sigmoid (sig1, sig2); "
                          "Conv with group=2 (dw1); ")
    assert "BatchNormalization with epsilon=0.001 (efgen's batchnorm uses 1e-05) (bn_eps)" in msg
    assert "LeakyRelu (LeakyRelu_" in msg
    assert "Conv with dilations=[2, 2] (dil)" in msg
    assert exc.value.fix and "efgen imports Conv" in exc.value.fix


@pytest.mark.parametrize("build,key", [
    (lambda b, x: b.conv(x, "c", 3, 4, 3, pads=[1, 1, 0, 0]), "Conv with asymmetric pads"),
    (lambda b, x: b.node("MaxPool", [x], "mp", kernel_shape=[3, 3], strides=[2, 2],
                         ceil_mode=1), "MaxPool with ceil_mode=1"),
    (lambda b, x: b.node("AveragePool", [x], "ap", kernel_shape=[3, 3], pads=[1] * 4),
     "AveragePool with padding and count_include_pad=0"),
    (lambda b, x: b.node("Pad", [x, b.const("p", [0, 0, 1, 1, 0, 0, 1, 1])], "pd"),
     "Pad of axes other than channels"),
    (lambda b, x: b.node("Slice", [x, b.const("s", [1]), b.const("e", [5]), b.const("a", [2])],
                         "crop"), "Slice that crops"),
    (lambda b, x: b.node("Mul", [x, b.init("two", [2.0])], "scale"), "Mul"),
])
def test_unsupported_reasons(build, key, tmp_path):
    b = Builder([3, 8, 8], 13)
    x = build(b, "x")
    x = b.node("Flatten", [b.node("GlobalAveragePool", [x], "gap")], "flat")
    c = 4 if key.startswith("Conv") else 3
    path = tmp_path / "m.onnx"
    onnx.save(b.model(b.gemm(x, "fc", c, 2), 2), str(path))
    with pytest.raises(EfgenError, match="unsupported ONNX operators: " + key):
        import_onnx(path)


@pytest.mark.parametrize("shape,batch,ok", [
    ([0, -1], "N", True), ([-1, 64], "N", True), ([2, -1], 2, True), ([2, 64], 2, True),
    ([1, -1], "N", False), ([-1, 32], "N", False), ([0, 4, 16], "N", False),
])
def test_reshape_forms(shape, batch, ok, tmp_path):
    b = Builder([4, 4, 4], 13, batch=batch)
    x = b.node("Reshape", ["x", b.init("shape", shape, np.int64)], "view")
    x = b.gemm(x, "fc", 64, 3) if ok else b.node("Relu", [x], "relu")
    path = tmp_path / "r.onnx"
    onnx.save(b.model(x, 3 if ok else [None] * len(shape)), str(path))
    if ok:
        assert [l.op for l in load_onnx_net(path)] == ["flatten", "linear", "softmax_ce"]
    else:
        with pytest.raises(EfgenError, match=r"Reshape to \["):
            import_onnx(path)


@pytest.mark.parametrize("content", [b"", b"\x08\x07garbage\xff\xfe not onnx", "truncated"])
def test_unreadable_model(content, tmp_path):
    path = tmp_path / "broken.onnx"
    if content == "truncated":
        net = load_net("tiny")
        export_onnx(net, init_state(net), path)
        data = path.read_bytes()
        content = data[: len(data) // 2]
    path.write_bytes(content)
    with pytest.raises(EfgenError) as exc:
        import_onnx(path)
    assert str(path) in exc.value.message() and "\n" not in exc.value.message()
    with pytest.raises(EfgenError, match="not found"):
        import_onnx(tmp_path / "missing.onnx")


def test_graph_level_errors(tmp_path):
    b = Builder([8], 13)
    path = tmp_path / "vec.onnx"
    onnx.save(b.model(b.gemm("x", "fc", 8, 3), 3), str(path))
    with pytest.raises(EfgenError, match=r"needs \[N, C, H, W\]"):
        import_onnx(path)


# ---- weights ----------------------------------------------------------------------------

def test_weights_round_trip_and_errors(tmp_path):
    net = load_net("tiny").with_train_last(2)
    state = random_state(net, seed=2)
    path = tmp_path / "w.npz"
    save_weights(path, state_to_flat(state))
    assert path.exists()                        # no ".npz" appended twice
    back = load_weights(net, path)
    for lname, p in state.params.items():
        for n, a in p.items():
            np.testing.assert_array_equal(back.params[lname][n], a)
    for lname, bufs in state.buffers.items():
        for n, a in bufs.items():
            np.testing.assert_array_equal(back.buffers[lname][n], a)
    assert set(back.velocity) == {l.name for l in net if l.trainable}
    assert all(not v.any() for d in back.velocity.values() for v in d.values())
    assert load_weights(net, path, dtype=np.float64).params["fc"]["weight"].dtype == np.float64

    flat = state_to_flat(state)
    bad = dict(flat, **{"conv1.weight": np.zeros((6, 3, 5, 5), np.float32)})
    save_weights(tmp_path / "shape.npz", bad)
    with pytest.raises(EfgenError, match=r"'conv1.weight' has shape \(6, 3, 5, 5\), "
                                         r"expected \(6, 3, 3, 3\)") as exc:
        load_weights(net, tmp_path / "shape.npz")
    assert str(tmp_path / "shape.npz") in exc.value.message()

    missing = {k: v for k, v in flat.items() if k != "bn2.running_var"}
    save_weights(tmp_path / "missing.npz", missing)
    with pytest.raises(EfgenError, match=r"missing parameter 'bn2.running_var' "
                                         r"\(expected shape \(10,\)\)"):
        load_weights(net, tmp_path / "missing.npz")

    save_weights(tmp_path / "extra.npz", dict(flat, **{"fc.weigth": np.zeros(3)}))
    with pytest.raises(EfgenError, match="unexpected key 'fc.weigth'"):
        load_weights(net, tmp_path / "extra.npz")

    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(EfgenError, match="cannot read weights"):
        load_weights(net, tmp_path / "junk.npz")
    np.save(tmp_path / "one.npy", np.zeros(3))
    with pytest.raises(EfgenError, match="not an npz archive"):
        load_weights(net, tmp_path / "one.npy")
    with pytest.raises(EfgenError, match="not found"):
        load_weights(net, tmp_path / "nope.npz")


# ---- YAML output and names ------------------------------------------------------------------

def test_odd_names_survive_yaml_and_npz(tmp_path):
    b = Builder([3, 8, 8], 13, seed=6)
    x = b.conv("x", "/layer1/0/conv1/Conv", 3, 4, 3, pad=1)
    x = b.node("Relu", [x], "a: b, [c] #d")
    x = b.node("Relu", [x], "a: b, [c] #d")          # duplicate node name
    x = b.node("Relu", [x], "")                      # no name
    x = b.node("Relu", [x], "input")                 # the graph input's reserved name
    x = b.node("Flatten", [b.node("GlobalAveragePool", [x], "gap")], "flätten")
    path = tmp_path / "odd.onnx"
    onnx.save(b.model(b.gemm(x, "loss", 4, 3), 3), str(path))
    doc, params = import_onnx(path)
    names = [l["name"] for l in doc["layers"]]
    assert names == ["/layer1/0/conv1/Conv", "a: b, [c] #d", "a: b, [c] #d_1", "Relu_3",
                     "input_1", "gap", "flätten", "loss", "loss_1"]
    out = tmp_path / "odd.yaml"
    write_net_yaml(doc, out, header="imported from odd.onnx")
    text = out.read_text(encoding="utf-8")
    assert text.startswith("# imported from odd.onnx\nname: odd\n")
    layer_lines = [ln for ln in text.splitlines() if ln.startswith("  - ")]
    assert len(layer_lines) == len(doc["layers"])
    assert all(ln.startswith("  - {") and ln.endswith("}") for ln in layer_lines)
    assert parse_net(read_yaml(out), str(out)).layers == parse_net(doc, "doc").layers
    net = parse_net(doc, "doc")
    save_weights(tmp_path / "odd.npz", params)
    state = load_weights(net, tmp_path / "odd.npz")
    np.testing.assert_array_equal(state.params["/layer1/0/conv1/Conv"]["weight"],
                                  params["/layer1/0/conv1/Conv.weight"])


def test_yaml_of_catalogue_round_trips(tmp_path):
    for name in ("tiny", "resnet20"):
        net = load_net(name)
        path = tmp_path / f"{name}.onnx"
        export_onnx(net, init_state(net), path)
        doc, _ = import_onnx(path)
        text = net_yaml(doc)
        assert "inputs: [s1b3_relu]" in text or name == "tiny"
        out = tmp_path / f"{name}.yaml"
        out.write_text(text, encoding="utf-8")
        assert parse_net(read_yaml(out), str(out)).layers == net.layers
