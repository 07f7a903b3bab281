"""The board runtime (efgen.runtime): the register protocol against a register-level model
of desc_regs, and whole training steps of the Trainer's synchronous (PYNQ) path against a
device model that runs each started descriptor with the golden ops on the shared buffer.
The same Trainer against the RTL under cocotb is in tests/test_rtl_top.py."""

import subprocess
import sys

import numpy as np
import pytest

from efgen.hls.desc import EfgenDesc, make_desc
from efgen.rtl.dma import (
    AP_DONE,
    AP_IDLE,
    AP_START,
    DESC_BASE,
    REGISTER_MAP,
    STATUS_DONE,
    STATUS_ERROR,
)
from efgen.runtime import protocol
from efgen.runtime.protocol import DeviceError, rebase, run_descriptor, run_sync

RTL_ONLY = {REGISTER_MAP[k] for k in ("status", "cycles", "fail_addr", "fail_addr_hi", "abort")}


class Regs:
    """The accelerator's s_axilite block as the host sees it: AP_CTRL (ap_ctrl_hs:
    ap_start, ap_done clear on read, ap_idle), the descriptor window, the pointers and,
    unless ``hls`` (the Vitis HLS build, where those offsets are unmapped and read 0),
    STATUS, CYCLES, FAIL_ADDR. ``on_start(desc, pointers)`` runs the started descriptor
    and returns (status bits, cycles)."""

    def __init__(self, on_start, busy_polls=3, hls=False):
        self.words = {}
        self.on_start = on_start
        self.busy_polls = busy_polls
        self.hls = hls
        self.status = 0
        self.cycles = 0
        self.fail = 0
        self.log = []
        self._busy = 0
        self._done = False
        self._result = (STATUS_DONE, 0)

    def write(self, off, value):
        self.log.append(("w", off, value))
        assert 0 <= value < 1 << 32
        if off == REGISTER_MAP["control"]:
            if value & AP_START and not self._busy:
                raw = b"".join(self.words.get(DESC_BASE + 4 * i, 0).to_bytes(4, "little")
                               for i in range(len(bytes(EfgenDesc())) // 4))
                ptrs = [self.words.get(REGISTER_MAP[f"{a}_lo"], 0)
                        | self.words.get(REGISTER_MAP[f"{a}_hi"], 0) << 32
                        for a in ("gmem_in", "gmem_w", "gmem_out")]
                self._result = self.on_start(EfgenDesc.from_buffer_copy(raw), ptrs)
                self._busy, self._done = self.busy_polls, False
            return
        if self.hls and off in RTL_ONLY:
            return
        self.words[off] = value

    def read(self, off):
        self.log.append(("r", off))
        if off == REGISTER_MAP["control"]:
            if self._busy:
                self._busy -= 1
                if not self._busy:
                    self._done = True
                    self.status, self.cycles = self._result
            done, self._done = self._done, False            # clear on read
            return (AP_DONE if done else 0) | (0 if self._busy else AP_IDLE)
        if self.hls and off in RTL_ONLY:
            return 0
        if off == REGISTER_MAP["status"]:
            return self.status
        if off == REGISTER_MAP["cycles"]:
            return self.cycles
        if off == REGISTER_MAP["fail_addr"]:
            return self.fail & 0xFFFFFFFF
        if off == REGISTER_MAP["fail_addr_hi"]:
            return self.fail >> 32
        return self.words.get(off, 0)


def _desc():
    return make_desc("CONV_FP", ["RELU"], a={0: 1024, 1: 4096, 7: 8192}, batch=2, in_c=3,
                     in_h=8, in_w=8, out_c=4, out_h=8, out_w=8, kh=3, kw=3, stride=1, pad=1,
                     tr=8, tc=8, mc=1, lr=0.5)


def test_a_run_writes_the_descriptor_starts_polls_and_reads_cycles():
    seen = []
    dev = Regs(lambda d, p: (seen.append((bytes(d), p)) or (STATUS_DONE, 777)))
    res = run_sync(run_descriptor(_desc(), base_bytes=0x8_0000_1000), dev, clock_mhz=1e6)
    # the struct byte for byte, the image's 40-bit address in all three pointers
    assert seen == [(bytes(_desc()), [0x8_0000_1000] * 3)]
    assert res.cycles == 777 and res.status == STATUS_DONE
    ops = [e[0] + hex(e[1]) for e in dev.log]
    start = ops.index("w" + hex(REGISTER_MAP["control"]))
    assert all(o.startswith("w") for o in ops[:start])   # the whole window before START
    # polls AP_CTRL until ap_done, then STATUS and CYCLES
    assert ops[start + 1:] == ["r0x0"] * 3 + ["r0xe0", "r0xe4"]


def test_one_driver_runs_the_hls_build():
    """The same protocol against the Vitis HLS register block (ap_ctrl_hs, the same
    argument offsets, no STATUS/CYCLES: they read 0): the run completes, cycles 0."""
    seen = []
    dev = Regs(lambda d, p: (seen.append((bytes(d), p)) or (0, 0)), hls=True)
    res = run_sync(run_descriptor(_desc(), base_bytes=0x7000_0000), dev, clock_mhz=1e6)
    assert seen == [(bytes(_desc()), [0x7000_0000] * 3)]
    assert res.status == 0 and res.cycles == 0


def test_errors_are_decoded_and_raised():
    dev = Regs(lambda d, p: (STATUS_DONE | STATUS_ERROR | (4 << 8), 5))
    with pytest.raises(DeviceError, match="conv1:fp: descriptor rejected: ERR_ADDRESS"):
        run_sync(run_descriptor(_desc(), "conv1:fp"), dev, clock_mhz=1e6)
    dev = Regs(lambda d, p: (STATUS_DONE | STATUS_ERROR | (2 << 12) | (2 << 14), 5))
    dev.fail = 0x8_1234_0000
    with pytest.raises(DeviceError,
                       match="SLVERR on write port m_axi2, burst at byte 0x812340000"):
        run_sync(run_descriptor(_desc()), dev, clock_mhz=1e6)
    dev = Regs(lambda d, p: (STATUS_DONE | STATUS_ERROR | (8 << 8), 0))
    with pytest.raises(DeviceError, match="ERR_RANGE"):
        run_sync(run_descriptor(_desc()), dev, clock_mhz=1e6)
    dev = Regs(lambda d, p: (1, 5))                      # an RTL still BUSY at ap_done
    with pytest.raises(DeviceError, match="not DONE"):
        run_sync(run_descriptor(_desc()), dev, clock_mhz=1e6)
    dev = Regs(lambda d, p: (STATUS_DONE, 5), busy_polls=10**9)
    with pytest.raises(DeviceError, match="no ap_done after 3,200 cycles"):
        run_sync(run_descriptor(_desc(), timeout_cycles=3200), dev, clock_mhz=1e6)
    assert ("w", REGISTER_MAP["abort"], 1) in dev.log    # a hang is aborted


def test_rebase_moves_present_addresses_only():
    d = rebase(_desc(), 1 << 20)
    assert [int(v) for v in d.a] == [1024 + (1 << 20), 4096 + (1 << 20), 0, 0, 0, 0, 0,
                                     8192 + (1 << 20)]
    assert bytes(rebase(_desc(), 0)) == bytes(_desc())
    assert d.lr == np.float32(0.5) and d.out_c == 4


class Buffer(np.ndarray):
    """A pynq.allocate stand-in: a physical address, and flush/invalidate counted."""

    def __new__(cls, words, phys):
        obj = np.zeros(words, np.float32).view(cls)
        obj.physical_address, obj.flushes, obj.invalidates = phys, 0, 0
        return obj

    def flush(self):
        self.flushes += 1

    def invalidate(self):
        self.invalidates += 1


def _device(buf, hw):
    """The conv engine as the golden ops on the shared buffer, at its physical address."""
    from efgen.csim.interp import Interp

    base = buf.physical_address // 4
    started = []

    def on_start(d, pointers):
        assert buf.flushes == len(started) + 1           # the host flushed before START
        assert pointers == [4 * base] * 3                # the buffer's physical address
        local = EfgenDesc.from_buffer_copy(bytes(d))
        assert all(not a or a >= 1024 for a in local.a)  # word offsets into the image
        Interp(np.asarray(buf).view(np.float32), hw.lanes, hw.tm, hw.tn).run(local)
        started.append(local.op)
        return STATUS_DONE, 100 + len(started)
    return on_start, started


def test_trainer_steps_through_the_register_map_equal_the_golden_steps():
    """Two steps of tiny through the synchronous (PYNQ) path: descriptors through the
    register window, conv and element-wise ops on the 'device', the rest and the loss on
    the host. The losses
    and the trained parameters are the golden model's."""
    import efgen
    from efgen.golden.model import SGD, init_state, synthetic_batch, train_step
    from efgen.runtime.trainer import Trainer

    acc = efgen.build("tiny", "zcu102", 2, tiles=(4, 4))
    words = Trainer(acc.design).words
    buf = Buffer(words, phys=0x3000_0000)
    tr = Trainer(acc.design, buf, lr=0.05)
    assert tr.base_words == 0x3000_0000 // 4 and tr.mem is buf
    on_start, started = _device(buf, acc.design.hw)
    dev = Regs(on_start, busy_polls=2)
    state = init_state(acc.net, seed=2)
    x, labels = synthetic_batch(acc.net, 2, seed=9)
    tr.load_state(state, x)
    logs = [tr.step(dev, x, labels, clock_mhz=1e6) for _ in range(2)]
    ref = state
    for log in logs:
        g = train_step(acc.net, ref, x, labels, SGD(lr=0.05))
        assert log.loss == pytest.approx(g.loss, rel=1e-5)
        ref = g.state
    got = tr.state()
    for layer, params in ref.params.items():
        for name, v in params.items():
            np.testing.assert_allclose(got.params[layer][name], v, rtol=1e-4, atol=1e-5)
    rtl = [r for r in logs[0].ran if r.where == "rtl"]
    # 14 conv/linear layer-phases, 4 element-wise descriptors (the RTL's vec_unit), 6
    # batchnorms (its bn_unit) and 8 pooling / shortcut descriptors (its pool_unit)
    assert len(rtl) == 32 and [r.cycles for r in rtl] == list(range(101, 133))
    assert buf.flushes == buf.invalidates == len(started) == 64
    assert logs[0].ran[-1].phase == "wu" and any(r.op == "SOFTMAX_CE" for r in logs[0].ran)
    assert logs[1].loss < logs[0].loss


def test_flat_weights_are_the_archive_export_reads(tmp_path):
    import efgen
    from efgen.cli import main
    from efgen.golden.checkpoint import load_weights
    from efgen.golden.model import init_state
    from efgen.runtime.trainer import Trainer

    acc = efgen.build("tiny", "zcu102", 2, tiles=(4, 4))
    tr = Trainer(acc.design)
    state = init_state(acc.net, seed=5)
    tr.load_state(state)
    tr.save_weights(tmp_path / "w.npz")
    back = load_weights(acc.net, tmp_path / "w.npz")
    for layer, params in state.params.items():
        for name, v in params.items():
            np.testing.assert_array_equal(back.params[layer][name], v)
    assert main(["export", "tiny", "--weights", str(tmp_path / "w.npz"),
                 "-o", str(tmp_path / "t.onnx")]) == 0


def test_build_writes_a_driver_that_runs(tmp_path):
    from efgen.cli import main

    assert main(["build", "--board", "zcu102", "--net", "tiny", "--batch", "2",
                 "-o", str(tmp_path / "b")]) == 0
    drv = tmp_path / "b" / "driver" / "efgen_driver.py"
    text = drv.read_text()
    assert "tiny" not in text and "zcu102" not in text         # numbers only
    out = subprocess.run([sys.executable, str(drv), "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--cosim" in out.stdout and "--bit" in out.stdout
    # without pynq (this machine) it says so in one line, exit 2
    out = subprocess.run([sys.executable, str(drv), "--bit", "x.bit"], capture_output=True,
                         text=True)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "pynq" in out.stderr
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros((3, 3, 7, 7), np.float32), labels=np.zeros(3, int))
    out = subprocess.run([sys.executable, str(drv), "--cosim", "--data", str(bad)],
                         capture_output=True, text=True)
    assert out.returncode == 2 and str(bad) in out.stderr and out.stderr.count("\n") == 1


def test_protocol_module_names_every_register_it_uses():
    assert {protocol.CONTROL, protocol.STATUS, protocol.CYCLES, protocol.FAIL_ADDR} == {
        REGISTER_MAP[k] for k in ("control", "status", "cycles", "fail_addr")}


def test_wu_descriptors_are_chunked_to_the_rtl_weight_buffer():
    """lenet5 at 4x4: the Design prices f6's WU with the HLS engine's accumulation distance
    (mc = 21 chunks of 30 blocks); the RTL keeps G = wu_copies(1) = 8 partial sums a word,
    so that chunk needs 5,040 of its 1,024 words and layer_seq rejected it (ERR_WBUF).
    The trainer hands the RTL every WU descriptor with its chunk lowered to fit, and every
    FP/BP descriptor unchanged."""
    import efgen
    from efgen.hls.desc import OPS
    from efgen.hls.program import build_program
    from efgen.rtl.engine import wu_copies
    from efgen.rtl.top import rtl_params
    from efgen.runtime.trainer import CONV_OPS, rtl_desc

    acc = efgen.build("lenet5", "zcu102", 4, tiles=(4, 4))
    p = rtl_params(acc.design)
    lowered = []
    prog = build_program(acc.net, acc.design, 0.01, 0.9, 5e-4)
    for s in prog.fp + prog.bp:
        d = s.desc
        if d.op not in CONV_OPS:
            continue
        d2, parts = rtl_desc(d, p.tn, p.engine.wbuf_depth)
        # every lenet5 layer is at most BIAS_BUF wide: FP's bias and WU's bias gradient and
        # SGD run on the RTL, the descriptor keeps its flags and nothing is left to the host
        assert parts == () and d2.flags == d.flags, (s.layer, parts)
        if d.op != OPS["CONV_WU"]:
            assert d2.mc == d.mc
            continue
        per_block = -(-d.in_c // p.tn) * d.kh * d.kh * wu_copies(d.kh)
        assert 1 <= d2.mc <= d.mc and d2.mc * per_block <= p.engine.wbuf_depth
        assert d2.mc == d.mc or (d2.mc + 1) * per_block > p.engine.wbuf_depth  # the largest
        if d2.mc != d.mc:
            lowered.append((s.layer, d.mc, d2.mc))
    assert ("f6", 21, 4) in lowered
    # a layer wider than BIAS_BUF: the RTL rejects FLAG_BIAS (ERR_BIAS), so the trainer
    # strips it and runs the bias gradient and its SGD on the host
    wu = next(s.desc for s in prog.bp if s.desc.op == OPS["CONV_WU"] and s.desc.flags & 4)
    wide = type(wu).from_buffer_copy(bytes(wu))
    wide.out_c = 300
    d2, parts = rtl_desc(wide, p.tn, p.engine.wbuf_depth)
    assert parts == ("bias gradient + SGD",) and not d2.flags & 4
