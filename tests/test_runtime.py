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
    CONTROL_START,
    DESC_BASE,
    REGISTER_MAP,
    STATUS_BUSY,
    STATUS_DONE,
    STATUS_ERROR,
)
from efgen.runtime import protocol
from efgen.runtime.protocol import DeviceError, rebase, run_descriptor, run_sync


class Regs:
    """desc_regs as the host sees it: a descriptor window, CONTROL, STATUS, CYCLES.
    ``on_start(desc)`` runs the started descriptor and returns (status bits, cycles)."""

    def __init__(self, on_start, busy_polls=3):
        self.words = {}
        self.on_start = on_start
        self.busy_polls = busy_polls
        self.status = 0
        self.cycles = 0
        self.fail = 0
        self.log = []
        self._busy = 0
        self._result = (STATUS_DONE, 0)

    def write(self, off, value):
        self.log.append(("w", off, value))
        assert 0 <= value < 1 << 32
        if off == REGISTER_MAP["control"]:
            if value & CONTROL_START and not self.status & STATUS_BUSY:
                raw = b"".join(self.words.get(DESC_BASE + 4 * i, 0).to_bytes(4, "little")
                               for i in range(len(bytes(EfgenDesc())) // 4))
                self._result = self.on_start(EfgenDesc.from_buffer_copy(raw))
                self.status, self._busy = STATUS_BUSY, self.busy_polls
            return
        self.words[off] = value

    def read(self, off):
        self.log.append(("r", off))
        if off == REGISTER_MAP["status"]:
            if self.status & STATUS_BUSY:
                self._busy -= 1
                if self._busy <= 0:
                    self.status, self.cycles = self._result[0], self._result[1]
            return self.status
        if off == REGISTER_MAP["cycles"]:
            return self.cycles
        if off == REGISTER_MAP["fail_addr"]:
            return self.fail
        return self.words.get(off, 0)


def _desc():
    return make_desc("CONV_FP", ["RELU"], a={0: 1024, 1: 4096, 7: 8192}, batch=2, in_c=3,
                     in_h=8, in_w=8, out_c=4, out_h=8, out_w=8, kh=3, kw=3, stride=1, pad=1,
                     tr=8, tc=8, mc=1, lr=0.5)


def test_a_run_writes_the_descriptor_starts_polls_and_reads_cycles():
    seen = []
    dev = Regs(lambda d: (seen.append(bytes(d)) or (STATUS_DONE, 777)))
    res = run_sync(run_descriptor(_desc()), dev, clock_mhz=1e6)
    assert seen == [bytes(_desc())]                      # the struct, byte for byte
    assert res.cycles == 777 and res.status == STATUS_DONE
    ops = [e[0] + hex(e[1]) for e in dev.log]
    start = ops.index("w" + hex(REGISTER_MAP["control"]))
    assert all(o.startswith("w") for o in ops[:start])   # the whole window before START
    assert ops[start + 1:] == ["r0x4"] * 3 + ["r0x8"]    # polls until not busy, then CYCLES


def test_errors_are_decoded_and_raised():
    dev = Regs(lambda d: (STATUS_DONE | STATUS_ERROR | (4 << 8), 5))
    with pytest.raises(DeviceError, match="conv1:fp: descriptor rejected: ERR_ADDRESS"):
        run_sync(run_descriptor(_desc(), "conv1:fp"), dev, clock_mhz=1e6)
    dev = Regs(lambda d: (STATUS_DONE | STATUS_ERROR | (2 << 12) | (2 << 14), 5))
    dev.fail = 0x1234000
    with pytest.raises(DeviceError, match="SLVERR on write port m_axi2, burst at byte 0x1234000"):
        run_sync(run_descriptor(_desc()), dev, clock_mhz=1e6)
    dev = Regs(lambda d: (0, 5))                         # neither busy nor done
    with pytest.raises(DeviceError, match="neither busy nor done"):
        run_sync(run_descriptor(_desc()), dev, clock_mhz=1e6)
    dev = Regs(lambda d: (STATUS_DONE, 5), busy_polls=10**9)
    with pytest.raises(DeviceError, match="still busy after 3,200 cycles"):
        run_sync(run_descriptor(_desc(), timeout_cycles=3200), dev, clock_mhz=1e6)


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

    def on_start(d):
        assert buf.flushes == len(started) + 1           # the host flushed before START
        local = EfgenDesc.from_buffer_copy(bytes(d))
        for i in range(8):
            if local.a[i]:
                assert local.a[i] >= base + 1024         # rebased onto the buffer
                local.a[i] -= base
        Interp(np.asarray(buf).view(np.float32), hw.lanes, hw.tm, hw.tn).run(local)
        started.append(local.op)
        return STATUS_DONE, 100 + len(started)
    return on_start, started


def test_trainer_steps_through_the_register_map_equal_the_golden_steps():
    """Two steps of tiny through the synchronous (PYNQ) path: descriptors through the
    register window, conv on the 'device', the rest and the loss on the host. The losses
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
    assert len(rtl) == 14 and [r.cycles for r in rtl] == list(range(101, 115))
    assert buf.flushes == buf.invalidates == len(started) == 28
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
