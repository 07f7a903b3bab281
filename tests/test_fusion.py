"""ReLU fusion decisions, shared by the model and the code generators."""

from efgen.frontend import load_net
from efgen.frontend.ir import parse_net
from efgen.model import engine
from efgen.model.fusion import bp_store_masks, error_senders, fused_relus, masked_error_sums


def test_resnet20_fusion():
    net = load_net("resnet20")
    fused = fused_relus(net)
    assert len(fused) == 19 and fused == {l.name for l in net if l.op == "relu"}
    # Inside a block the ReLU after BN has one sender (the next conv): its BP masks.
    assert "s2b2_b_conv" in bp_store_masks(net)
    # Block outputs feed the next block's conv and its skip path: a sum + mask pass.
    assert {l.name for l in error_senders(net, "s2b1_relu")} == {"s2b2_a_conv", "s2b2_add"}
    assert "s2b1_relu" in masked_error_sums(net)
    # The last block output has only the global pool as sender: the pool masks.
    assert "pool" in bp_store_masks(net)


def test_relu_with_two_consumers_is_not_fused():
    doc = {"name": "n", "input": [2, 4, 4], "num_classes": 2, "layers": [
        {"name": "c", "op": "conv", "out_channels": 2, "kernel": 1},
        {"name": "r", "op": "relu"},
        {"name": "a", "op": "add", "inputs": ["r", "c"]},
        {"name": "f", "op": "flatten"}, {"name": "fc", "op": "linear", "out_features": 2},
        {"name": "loss", "op": "softmax_ce"}]}
    net = parse_net(doc, "n")
    assert fused_relus(net) == set()  # c has two consumers, so its store cannot clamp


def test_masked_bp_costs_a_mask_read():
    net = load_net("resnet20")
    jobs = {(j.layer, j.phase): j for j in engine.jobs_for(net, 8)}
    masked, plain = jobs[("s2b2_b_conv", "bp")], jobs[("s2b2_a_conv", "bp")]
    assert masked.mask and not plain.mask
    from efgen.design import HwParams

    hw = HwParams(tm=16, tn=16, ifm_depth=8192, ofm_depth=8192, wbuf_depth=1024)
    tiles = [(4, 16, 1, "wo")]
    a = engine.evaluate_chosen([masked], tiles, hw, 4, 1e6, "reshaped")
    b = engine.evaluate_chosen([plain], tiles, hw, 4, 1e6, "reshaped")
    # Same shapes, so the only difference is the mask tile read with every store.
    assert a["read_words"][0] - b["read_words"][0] == a["out_words"][0]
    assert a["cycles"][0] >= b["cycles"][0]
