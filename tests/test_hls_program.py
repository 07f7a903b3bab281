"""The accelerator program (memory map + descriptors) and the emitted HLS project.

The program is checked without any C++: a numpy interpreter runs its descriptors on the
DRAM image and every tensor is compared with the golden trace."""

import re

import numpy as np
import pytest

from efgen.csim import csim
from efgen.csim.interp import interp_step
from efgen.frontend import load_net
from efgen.frontend.boards import load_board
from efgen.frontend.ir import parse_net
from efgen.golden.model import init_state, synthetic_batch, train_step
from efgen.hls.desc import FLAGS
from efgen.hls.emit import c_text, render, write_hls
from efgen.hls.program import build_program
from efgen.layout import FeatureMapLayout, WeightLayout
from efgen.model.schedule import Request, schedule


class _PySim(csim.Csim):
    """The Csim DRAM plumbing without compiling anything."""

    def __init__(self, net, design):
        self.net, self.design = net, design
        self.prog = build_program(net, design)
        hw = design.hw
        self.fm = FeatureMapLayout("blocked", hw.lanes)
        self.wl = WeightLayout("blocked", hw.tm, hw.tn)
        self.mem = np.zeros(self.prog.words, np.float32)


def _design(net, tm=8, tn=4, batch=2, board="zcu102"):
    return schedule(Request(net, load_board(board), batch=batch, tm=tm, tn=tn))


def _interp(net, design, mutate=None):
    sim = _PySim(net, design)
    if mutate:
        mutate(sim.prog)
    state = init_state(net, seed=0)
    x, labels = synthetic_batch(net, design.batch, seed=1)
    sim.load_state(state, x)
    loss = interp_step(sim.prog, sim.mem, labels)
    golden = train_step(net, state, x, labels)
    return loss, golden, csim.compare(golden.trace, sim.tensors())


@pytest.mark.parametrize("name,train_last,tm,tn", [
    ("tiny", None, 8, 4), ("tiny", None, 4, 16), ("tiny", 3, 8, 8), ("lenet5", None, 4, 4),
    ("resnet20", None, 16, 16), ("resnet20-b", 4, 8, 16)])
def test_program_reproduces_the_golden_step(name, train_last, tm, tn):
    net = load_net(name, train_last=train_last)
    loss, golden, rows = _interp(net, _design(net, tm, tn))
    assert loss == pytest.approx(golden.loss, rel=1e-6)
    assert len(rows) > 20
    bad = [(r.key, r.rel_err) for r in rows if r.rel_err > 1e-6]
    assert not bad
    # Every trained parameter's new value, momentum and gradient is among them.
    keys = {r.key for r in rows}
    for l in net:
        for p in l.param_shapes() if l.trainable else ():
            assert {f"{l.name}:new.{p}", f"{l.name}:vel.{p}", f"{l.name}:grad.{p}"} <= keys


def test_dropping_the_relu_masks_is_caught():
    net = load_net("tiny")

    def drop_masks(prog):
        for s in prog.bp:
            s.desc.flags &= ~FLAGS["MASK"]

    _, _, rows = _interp(net, _design(net), drop_masks)
    bad = [r.key for r in rows if not r.ok]
    assert bad and bad[0].endswith(":dy")


def test_fused_tensors_are_listed():
    net = load_net("resnet20")
    prog = build_program(net, _design(net, 16, 16))
    assert "conv1_bn:y" in prog.not_in_dram and "s1b1_relu:dy" in prog.not_in_dram
    assert "conv1_conv:y" not in prog.not_in_dram  # BN needs it: it is in DRAM


def test_regions_do_not_overlap_and_are_aligned():
    net = load_net("resnet20")
    prog = build_program(net, _design(net, 16, 16))
    spans = sorted((r.offset, r.offset + r.words) for r in prog.regions.values()
                   if not getattr(r, "alias_of", None))
    for (a0, a1), (b0, _) in zip(spans, spans[1:]):
        assert a1 <= b0
    assert all(o % 1024 == 0 for o, _ in spans)
    assert spans[-1][1] <= prog.words


def test_emitted_project_is_deterministic(tmp_path):
    net = load_net("tiny")
    d = _design(net)
    board = load_board("zcu102")
    a = write_hls(build_program(net, d), board, tmp_path / "a")
    b = write_hls(build_program(net, d), board, tmp_path / "b")
    assert a == b
    for f in a:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f


def test_params_header_agrees_with_the_design():
    net = load_net("tiny")
    d = _design(net, 8, 4)
    text = render(build_program(net, d), load_board("zcu102"))["efgen_params.h"]
    defs = dict(re.findall(r"#define (EFGEN_\w+) (\S+)", text))
    assert int(defs["EFGEN_TM"]) == d.hw.tm == 8
    assert int(defs["EFGEN_TN"]) == d.hw.tn == 4
    assert int(defs["EFGEN_LANES"]) == 4
    assert int(defs["EFGEN_IFM_DEPTH"]) == d.hw.ifm_depth
    assert int(defs["EFGEN_OFM_DEPTH"]) == d.hw.ofm_depth
    assert int(defs["EFGEN_WBUF_DEPTH"]) == d.hw.wbuf_depth
    assert int(defs["EFGEN_BATCH"]) == d.batch


HOSTILE = ['conv*/ evil', 'bn\n#include <x>', 'r"; system("x"); //', 'add\\', 'fc$(rm -rf)']


def test_hostile_names_are_sanitised():
    doc = {"name": 'net */ #define X "', "input": [3, 8, 8], "num_classes": 2, "layers": [
        {"name": HOSTILE[0], "op": "conv", "out_channels": 4, "kernel": 3, "padding": 1},
        {"name": HOSTILE[1], "op": "batchnorm"},
        {"name": HOSTILE[2], "op": "relu"},
        {"name": "g", "op": "avgpool", "global": True},
        {"name": HOSTILE[3], "op": "flatten"},
        {"name": HOSTILE[4], "op": "linear", "out_features": 2},
        {"name": "loss", "op": "softmax_ce"}]}
    net = parse_net(doc, "hostile")
    files = render(build_program(net, _design(net, 4, 4)), load_board("zcu102"))
    for name, text in files.items():
        if name.endswith((".h", ".cpp", ".tcl")):
            for h in HOSTILE + [doc["name"]]:
                assert h not in text, (name, h)
            assert "#include <x>" not in text and "system(" not in text
    assert c_text('a*/b"\n') == "a__b__"
