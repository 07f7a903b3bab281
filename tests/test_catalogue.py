"""Catalogue nets against published totals, and the training-role rules of the IR."""

import pytest

from efgen.frontend import load_net
from efgen.frontend.ir import list_nets

# Published figures: params include conv/linear weights and biases plus BN gamma/beta
# (running statistics excluded); MACs are forward, per image, conv + linear only.
PUBLISHED = {
    "resnet20": (269_722, 40_551_040),      # He et al. 2016, option A
    "resnet20-b": (272_474, 40_813_184),    # option B projections
    "lenet5": (61_706, 416_520),
    "vgg16-cifar": (14_724_042, 313_201_664),
    "resnet18": (11_689_512, 1_814_073_344),  # torchvision resnet18
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_totals(name):
    net = load_net(name)
    t = net.totals()
    params, macs = PUBLISHED[name]
    assert t["params"] == params
    assert t["fp_macs"] == macs
    # Everything trains: WU does one MAC per FP MAC; BP skips only the first layer's
    # input error (nothing upstream of the image needs it).
    assert t["wu_macs"] == macs
    first = net.weighted_layers[0]
    assert t["bp_macs"] == macs - first.fp_macs
    assert t["trainable_params"] == params


def test_vgg16_bn_224():
    net = load_net("vgg16-bn-224")
    convs = [l for l in net if l.op == "conv"]
    assert len(convs) == 13 and all(l.kernel == 3 for l in convs)
    assert sum(1 for l in net if l.op == "batchnorm") == 13
    assert net["gap"].out_shape == (512, 1, 1) and net["gap"].in_shape == (512, 7, 7)
    assert net["fc"].param_shapes() == {"weight": (1000, 512), "bias": (1000,)}
    t = net.totals()
    # 14,710,464 conv + 8,448 BN + 513,000 FC; the usual 15.35 GMAC of VGG-16's convs.
    assert t["params"] == 15_231_912
    assert t["fp_macs"] == 15_346_630_656 + 512_000


def test_tiny_uses_every_op():
    from efgen.frontend.ir import OPS

    net = load_net("tiny")
    assert {l.op for l in net} == set(OPS)
    kernels = {l.kernel for l in net if l.op == "conv"}
    assert kernels == {1, 3, 5}
    assert any(l.op == "conv" and l.stride == 2 for l in net)
    assert any(l.op == "conv" and l.bias for l in net)


def test_every_catalogue_net_loads():
    assert set(list_nets()) >= set(PUBLISHED) | {"vgg16-bn-224", "tiny"}
    for name in list_nets():
        net = load_net(name)
        assert net.layers[-1].op == "softmax_ce"


def test_resnet20_shapes():
    net = load_net("resnet20")
    assert net["conv1_conv"].out_shape == (16, 32, 32)
    assert net["s2b1_a_conv"].out_shape == (32, 16, 16)
    assert net["s2b1_short"].out_shape == (32, 16, 16)
    assert net["s3b3_relu"].out_shape == (64, 8, 8)
    assert net["fc"].in_shape == (64,)
    assert len(net.weighted_layers) == 20  # 19 conv + 1 fc: "ResNet-20"


def test_train_last_freezes_prefix_and_stops_bp():
    net = load_net("resnet20", train_last=3)
    w = net.weighted_layers
    assert [l.trainable for l in w] == [False] * 17 + [True] * 3
    first = w[17]
    # BP stops at the lowest trainable layer: it and everything before it run no BP.
    idx = [l.name for l in net].index(first.name)
    assert all(not l.runs_bp for l in net.layers[: idx + 1])
    assert all(l.bp_macs == 0 and l.saved_words == 0 for l in net.layers[:idx])
    # The BN right after the first trainable conv trains, earlier ones do not.
    bns = [l for l in net if l.op == "batchnorm"]
    assert net.layers[idx + 1].op == "batchnorm" and net.layers[idx + 1].trainable
    assert not any(l.trainable for l in bns if [x.name for x in net].index(l.name) < idx)
    t = net.totals()
    assert t["wu_macs"] == sum(l.fp_macs for l in w[17:])
    assert t["bp_macs"] == sum(l.fp_macs for l in w[18:])
    assert t["params"] == 269_722  # freezing changes what trains, not what exists
    assert t["trainable_params"] < t["params"]


def test_train_last_one_is_classifier_only():
    net = load_net("lenet5", train_last=1)
    assert [l.name for l in net if l.trainable] == ["out"]
    t = net.totals()
    assert t["bp_macs"] == 0 and t["wu_macs"] == 84 * 10
    # Only the classifier's input is kept for WU (plus the loss's probabilities).
    assert t["saved_words"] == 84 + 10


def test_train_last_all_layers_trains_all():
    n = len(load_net("tiny").weighted_layers)
    assert load_net("tiny", train_last=n).totals() == load_net("tiny").totals()


def test_per_layer_trainable_flag(tmp_path):
    p = tmp_path / "n.yaml"
    p.write_text("""
name: frozen-first
input: [1, 8, 8]
num_classes: 2
layers:
  - {name: c1, op: conv, out_channels: 2, kernel: 3, trainable: false}
  - {name: c2, op: conv, out_channels: 2, kernel: 3}
  - {name: f, op: flatten}
  - {name: fc, op: linear, out_features: 2, trainable: false}
  - {name: loss, op: softmax_ce}
""")
    net = load_net(str(p))
    assert not net["c1"].trainable and net["c2"].trainable and not net["fc"].trainable
    assert net["c2"].bp_macs == 0 and net["c2"].wu_macs == net["c2"].fp_macs
    # The frozen fc still propagates the error down to c2.
    assert net["fc"].runs_bp and net["fc"].bp_macs == 2 * 2 * 4 * 4 and net["fc"].wu_macs == 0


def test_saved_words_resnet20_first_layers():
    net = load_net("resnet20")
    assert net["conv1_conv"].saved_words == 3 * 32 * 32    # input for WU
    assert net["conv1_bn"].saved_words == 16 * 32 * 32     # x-hat
    assert net["conv1_relu"].saved_words == 16 * 32 * 32   # mask
    assert net["s1b1_add"].saved_words == 0
    assert net["loss"].saved_words == 10


def test_fanout_and_forward_references(tmp_path):
    # Layers may be listed in any order; the IR sorts them topologically.
    p = tmp_path / "n.yaml"
    p.write_text("""
name: fwd
input: [2, 4, 4]
num_classes: 3
layers:
  - {name: a, op: conv, out_channels: 2, kernel: 1, inputs: [input]}
  - {name: s, op: add, inputs: [a, b]}
  - {name: b, op: relu, inputs: [a]}
  - {name: f, op: flatten, inputs: [s]}
  - {name: fc, op: linear, out_features: 3}
  - {name: loss, op: softmax_ce}
""")
    net = load_net(str(p))
    assert [l.name for l in net] == ["a", "b", "s", "f", "fc", "loss"]
    assert {l.name for l in net.consumers("a")} == {"s", "b"}
