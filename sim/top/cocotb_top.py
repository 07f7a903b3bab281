"""cocotb driver of efgen_top (efgen.rtl.top): a host that writes descriptors and starts them.

Run from efgen.cosim.layers through efgen/cosim/runner.py. The script (JSON, path in
EFGEN_TOP_SCRIPT) is::

    {"image": "<.npy of uint32 DRAM words>", "latency": L,
     "passes": [{"dump": "<.npy>", "pause": null | {"seed": s, "prob": p},
                 "runs": [{"tag": str, "regs": [[byte offset, value], ...],
                           "faults": [{"port": 0|1|2, "lo": byte, "hi": byte,
                                       "resp": 2|3}, ...]}, ...]}, ...]}

(or the runs and dump of one pass at the top level). Each pass starts from the image.
"pause": random back-pressure and idle cycles on every AXI channel of the three DRAM
ports (cocotbext-axi pause generators; each cycle a channel pauses with probability p,
seeded per channel from s). "faults": while that run executes, every beat of ``port``
whose byte address is in [lo, hi) is answered with ``resp`` (2 SLVERR, 3 DECERR; the
write port answers it in the burst's B response).

DRAM is one memory shared by cocotbext-axi models: AxiRamRead on m_axi0 and m_axi1,
AxiRamWrite on m_axi2 and AxiRamRead on its read channel (the fused datapath's second load
stream; a fourth burst/beat counter; faults are not injected there); reads answer L cycles after their AR handshake (pipelined, like a
DDR controller; sim/dma/cocotb_dma.py). Control goes through AxiLiteMaster: per run the
descriptor registers are written, CONTROL.START set, STATUS polled until DONE. With "progress":
"<path>" in the script, each finished run appends a JSON line (its tag and figures) to
that file and saves its "outputs" ([[word address, words], ...]) as <path>-<tag>.npy, so
the host can report and keep runs while the simulation goes on. Results
(JSON, EFGEN_TOP_RESULTS) map each tag to the CYCLES register, the cycles the monitor saw
from the start pulse to done, and the AXI bursts and beats of each port during the run.
After the last run of a pass the whole DRAM is dumped for the host to unpack and
compare. A run also reports STATUS, FAIL_ADDR and the burst the testbench first failed.
"""

from __future__ import annotations

import json
import logging
import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge
import random

from cocotbext.axi import AxiLiteBus, AxiLiteMaster, AxiReadBus, AxiResp, AxiWriteBus
from cocotbext.axi.axi_ram import AxiRamRead, AxiRamWrite

from efgen.rtl.dma import CONTROL_START, REGISTER_MAP, STATUS_BUSY, STATUS_ERROR
from sim.dma.cocotb_dma import _DelayedARChannel

CLK_NS = 10
TIMEOUT = 5_000_000      # cycles per run
POLL = 32                # cycles between STATUS reads


#: layer_seq's handshakes the trace records (EFGEN_TRACE): the engine's block start and
#: done, the tile loader's and the storer's start and done
TRACE_SIGNALS = ("e_start", "e_done", "tr_start", "tr_done", "tw_start", "tw_done")


class Monitor:
    """Cycle counter and per-port burst/beat counters. With the environment variable
    EFGEN_TRACE set to a file name, every cycle in which one of layer_seq's
    :data:`TRACE_SIGNALS` (or the run's start, ``RUN``) is high is appended to it as
    ``<cycle> <name>``: the load/compute overlap of a layer-phase, for checking the cycle
    model by hand (how issue 13's load terms were found)."""

    def __init__(self, dut, read2: bool = False):
        self.dut = dut
        self.read2 = read2
        self.cycle = 0
        self.bursts = [0, 0, 0, 0]   # m_axi0 AR, m_axi1 AR, m_axi2 AW, m_axi2 AR (fused builds)
        self.beats = [0, 0, 0, 0]
        self.start_cycle = None
        self.done_cycle = None
        trace = os.environ.get("EFGEN_TRACE")
        self.trace = open(trace, "a") if trace else None
        self.traced = [(n, getattr(dut.dut.u_seq, n)) for n in TRACE_SIGNALS] if trace else []
        cocotb.start_soon(self._run())

    async def _run(self):
        d = self.dut
        chans = [(d.m_axi0_arvalid, d.m_axi0_arready, d.m_axi0_arlen),
                 (d.m_axi1_arvalid, d.m_axi1_arready, d.m_axi1_arlen),
                 (d.m_axi2_awvalid, d.m_axi2_awready, d.m_axi2_awlen)]
        if self.read2:
            chans.append((d.m_axi2_arvalid, d.m_axi2_arready, d.m_axi2_arlen))
        while True:
            await RisingEdge(d.clk)
            self.cycle += 1
            for k, (v, r, ln) in enumerate(chans):
                if v.value and r.value:
                    self.bursts[k] += 1
                    self.beats[k] += int(ln.value) + 1
            if d.dut.r_start.value:
                self.start_cycle = self.cycle
            if d.dut.seq_done.value:
                self.done_cycle = self.cycle
            if self.trace is not None:
                if d.dut.r_start.value:
                    self.trace.write(f"{self.cycle} RUN\n")
                for name, sig in self.traced:
                    if sig.value:
                        self.trace.write(f"{self.cycle} {name}\n")


class _Tap:
    """Wraps an AR/AW sink: remembers the address of the burst being served."""

    def __init__(self, ch, attr: str):
        self._ch, self._attr, self.addr = ch, attr, None

    async def recv(self):
        t = await self._ch.recv()
        self.addr = int(getattr(t, self._attr))
        return t

    def __getattr__(self, name):
        return getattr(self._ch, name)


def _pauses(prob: float, rng: random.Random):
    while True:
        yield rng.random() < prob


class Host:
    """The host side: DRAM (three cocotbext-axi models on one memory) and AXI4-Lite."""

    def __init__(self, dut, latency: int, size: int, shared: dict | None = None,
                 read2: bool = False):
        self.dut = dut
        self.read2 = read2
        cocotb.start_soon(Clock(dut.clk, CLK_NS, units="ns").start())
        self.faults: list[dict] = []
        self.faulted: list = []
        self.shared = None
        self.timeout = TIMEOUT
        if shared is not None:         # all the masters behind one port (shared_port.py)
            from sim.top.shared_port import SharedPort
            self.ram0 = self.shared = SharedPort(dut, dut.clk, size, latency,
                                                 int(shared["seed"]), float(shared["prob"]),
                                                 base=int(shared.get("base", 0)),
                                                 read2=read2)
            self.rams = ()
            self._control()
            return
        self.ram0 = AxiRamRead(AxiReadBus.from_prefix(dut, "m_axi0"), dut.clk, dut.rst, size=size)
        ram1 = AxiRamRead(AxiReadBus.from_prefix(dut, "m_axi1"), dut.clk, dut.rst,
                          mem=self.ram0.mem)
        ram2 = AxiRamWrite(AxiWriteBus.from_prefix(dut, "m_axi2"), dut.clk, dut.rst,
                           mem=self.ram0.mem)
        # m_axi2's read channel (read2: the fused datapath's second load stream; tied off
        # in top_tb on builds without it)
        self.ram2r = ram2r = (AxiRamRead(AxiReadBus.from_prefix(dut, "m_axi2"), dut.clk,
                                         dut.rst, mem=self.ram0.mem) if read2 else None)
        for ram in (self.ram0, ram1) + ((ram2r,) if read2 else ()):
            ram.ar_channel.queue_occupancy_limit = 16
            if latency:
                ram.ar_channel = _DelayedARChannel(ram.ar_channel, dut.clk, latency)
            ram.ar_channel = _Tap(ram.ar_channel, "araddr")
        ram2.aw_channel = _Tap(ram2.aw_channel, "awaddr")
        self.rams = (self.ram0, ram1, ram2)
        for port, ram in enumerate(self.rams):   # faulted: (port, burst byte address, resp)
            self._hook(port, ram)
        for log in (self.ram0.log, ram1.log, ram2.log) + ((ram2r.log,) if read2 else ()):
            log.setLevel(logging.WARNING)
        self._control()

    def _control(self):
        dut = self.dut
        self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), dut.clk, dut.rst)
        for log in (self.axil.read_if.log, self.axil.write_if.log):
            log.setLevel(logging.WARNING)
        self.mon = Monitor(dut, self.read2)

    def _fault(self, port: int, address: int, length: int = 1):
        """The fault whose byte range [lo, hi) a beat of ``length`` bytes at ``address``
        touches (a beat carries 1, 2 or 4 words: efgen_top's AXI data width)."""
        for f in self.faults:
            if f["port"] == port and f["lo"] < address + length and address < f["hi"]:
                return f
        return None

    def _hook(self, port: int, ram) -> None:
        """Fault injection: a failing beat raises (cocotbext-axi answers SLVERR); the
        response is then rewritten to the fault's code on its way out."""
        tap = ram.aw_channel if port == 2 else ram.ar_channel
        resp = {}

        def failing(address, length):
            f = self._fault(port, address, length)
            if f is not None:
                resp["code"] = f["resp"]
                if not any(x[:2] == (port, tap.addr) for x in self.faulted):
                    self.faulted.append((port, tap.addr, f["resp"]))
            return f is not None

        if port == 2:
            orig, out = ram._write, ram.b_channel

            async def write(address, data):
                if failing(address, len(data)):
                    raise IOError(f"fault at {address:#x}")
                await orig(address, data)
            ram._write, field = write, "bresp"
        else:
            orig, out = ram._read, ram.r_channel

            async def read(address, length):
                if failing(address, length):
                    raise IOError(f"fault at {address:#x}")
                return await orig(address, length)
            ram._read, field = read, "rresp"
        send = out.send

        async def send_resp(t):
            if getattr(t, field) == AxiResp.SLVERR:
                setattr(t, field, AxiResp(resp.get("code", 2)))
            await send(t)
        out.send = send_resp

    def set_pause(self, pause: dict | None) -> None:
        """Random back-pressure/idle cycles on every channel (None: none)."""
        if self.shared is not None:
            assert not pause, "the shared port has its own back-pressure (script 'shared')"
            return
        chans = [c for r in self.rams[:2] for c in (r.ar_channel, r.r_channel)]
        chans += [self.rams[2].aw_channel, self.rams[2].w_channel, self.rams[2].b_channel]
        if self.read2:
            chans += [self.ram2r.ar_channel, self.ram2r.r_channel]
        for k, ch in enumerate(chans):
            if pause:
                rng = random.Random(int(pause["seed"]) * 101 + k)
                ch.set_pause_generator(_pauses(float(pause["prob"]), rng))
            else:
                ch.clear_pause_generator()

    async def reset(self):
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 5)
        self.dut.rst.value = 0
        await ClockCycles(self.dut.clk, 4)   # ap_rst_n passes two synchronising flip-flops

    def write_image(self, addr_words: int, words: np.ndarray) -> None:
        self.ram0.write(addr_words * 4, np.ascontiguousarray(words, "<u4").tobytes())

    def read_image(self, addr_words: int, n: int) -> np.ndarray:
        return np.frombuffer(self.ram0.read(addr_words * 4, n * 4), dtype="<u4").copy()

    async def run(self, tag: str, regs, faults=(), allow_error: bool = False,
                  abort_at: int | None = None) -> dict:
        """Write a descriptor, start it, wait for DONE; cycles and AXI traffic.
        ``abort_at``: write ABORT that many cycles after START."""
        mon, axil = self.mon, self.axil
        self.faults, self.faulted = list(faults), []
        base = self.shared.base if self.shared is not None else 0
        pointers = [(REGISTER_MAP[f"{a}_{h}"], (base >> s) & 0xFFFFFFFF)
                    for a in ("gmem_in", "gmem_w", "gmem_out") for h, s in (("lo", 0), ("hi", 32))]
        for off, val in pointers + list(regs):      # regs may override the pointers
            await axil.write_dword(off, int(val) & 0xFFFFFFFF)
        b0, n0 = list(mon.bursts), list(mon.beats)
        mon.start_cycle = mon.done_cycle = None
        await axil.write_dword(REGISTER_MAP["control"], CONTROL_START)
        waited = 0
        if abort_at is not None:
            await ClockCycles(self.dut.clk, abort_at)
            await axil.write_dword(REGISTER_MAP["abort"], 1)
        while True:
            await ClockCycles(self.dut.clk, POLL)
            waited += POLL
            status = await axil.read_dword(REGISTER_MAP["status"])
            if not status & STATUS_BUSY:
                break
            assert waited < self.timeout, f"{tag}: no done after {self.timeout} cycles"
        self.faults = []
        assert status & 2, f"{tag}: STATUS {status:#x} without DONE"
        assert allow_error or not status & STATUS_ERROR, f"{tag}: error (STATUS {status:#x})"
        cycles = await axil.read_dword(REGISTER_MAP["cycles"])
        return {
            "cycles": cycles,
            "status": status,
            "fail_addr": await axil.read_dword(REGISTER_MAP["fail_addr"]),
            "faulted": self.faulted[0] if self.faulted else None,
            "cycles_seen": (mon.done_cycle - mon.start_cycle
                            if mon.done_cycle is not None and mon.start_cycle is not None else None),
            "bursts": [a - b for a, b in zip(mon.bursts, b0)],
            "beats": [a - b for a, b in zip(mon.beats, n0)],
        }


def _mem_size(words: int) -> int:
    return max(1 << 20, 1 << int(np.ceil(np.log2(words * 4 + 4096))))


@cocotb.test()
async def run_script(dut):
    with open(os.environ["EFGEN_TOP_SCRIPT"]) as f:
        script = json.load(f)
    lat = int(script.get("latency", 0))
    if "step" in script:                     # one training step (efgen.cosim.step)
        import pickle

        from efgen.cosim.step import drive
        with open(script["step"], "rb") as f:
            plan = pickle.load(f)
        tr = plan["trainer"]
        host = Host(dut, lat, _mem_size(tr.base_words + tr.words), script.get("shared"),
                    bool(script.get("m_axi2_read")))
        await host.reset()
        host.set_pause(script.get("pause"))
        out = await drive(host, plan)
        with open(script["step_out"], "wb") as f:
            pickle.dump(out, f)
        results = {r["layer"] + ":" + r["phase"]: r.get("cycles", 0)
                   for r in out["steps"][0]["ran"]}
    else:                                    # independent layer-phases (efgen.cosim.layers)
        image = np.load(script["image"]).astype("<u4")
        host = Host(dut, lat, _mem_size(image.size), script.get("shared"),
                    bool(script.get("m_axi2_read")))
        await host.reset()
        host.timeout = int(script.get("timeout", TIMEOUT))
        results = []
        for ps in script.get("passes") or [{"dump": script["dump"], "runs": script["runs"],
                                             "pause": script.get("pause")}]:
            host.write_image(0, image)
            host.set_pause(ps.get("pause"))
            got = {}
            for run in ps["runs"]:
                got[run["tag"]] = await host.run(run["tag"], run["regs"], run.get("faults", ()),
                                                 allow_error=True, abort_at=run.get("abort_at"))
                if "progress" in script:     # the run's outputs and figures, as it ends
                    parts = [host.read_image(a, n) for a, n in run.get("outputs", [])]
                    np.save(f"{script['progress']}-{run['tag']}.npy",
                            np.concatenate(parts) if parts else np.zeros(0, "<u4"))
                    with open(script["progress"], "a") as f:
                        f.write(json.dumps({"tag": run["tag"], **got[run["tag"]]}) + "\n")
            host.set_pause(None)
            np.save(ps["dump"], host.read_image(0, image.size))
            results.append(got)
        if "passes" not in script:
            results = results[0]
    with open(os.environ["EFGEN_TOP_RESULTS"], "w") as f:
        json.dump(results, f)
