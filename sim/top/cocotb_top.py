"""cocotb driver of efgen_top (efgen.rtl.top): a host that writes descriptors and starts them.

Run from efgen.rtl.cosim through sim/runner.py. The script (JSON, path in
EFGEN_TOP_SCRIPT) is::

    {"image": "<.npy of uint32 DRAM words>", "latency": L, "dump": "<.npy>",
     "runs": [{"tag": str, "regs": [[byte offset, value], ...]}, ...]}

DRAM is one memory shared by three cocotbext-axi models: AxiRamRead on m_axi0 and m_axi1,
AxiRamWrite on m_axi2; reads answer L cycles after their AR handshake (pipelined, like a
DDR controller; sim/dma/cocotb_dma.py). Control goes through AxiLiteMaster: per run the
descriptor registers are written, CONTROL.START set, STATUS polled until DONE. Results
(JSON, EFGEN_TOP_RESULTS) map each tag to the CYCLES register, the cycles the monitor saw
from the start pulse to done, and the AXI bursts and beats of each port during the run.
After the last run the whole DRAM is dumped for the host to unpack and compare.
"""

from __future__ import annotations

import json
import logging
import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge
from cocotbext.axi import AxiLiteBus, AxiLiteMaster, AxiReadBus, AxiWriteBus
from cocotbext.axi.axi_ram import AxiRamRead, AxiRamWrite

from efgen.rtl.dma import CONTROL_START, REGISTER_MAP, STATUS_BUSY
from sim.dma.cocotb_dma import _DelayedARChannel

CLK_NS = 10
TIMEOUT = 5_000_000      # cycles per run
POLL = 32                # cycles between STATUS reads


class Monitor:
    """Cycle counter and per-port burst/beat counters."""

    def __init__(self, dut):
        self.dut = dut
        self.cycle = 0
        self.bursts = [0, 0, 0]
        self.beats = [0, 0, 0]
        self.start_cycle = None
        self.done_cycle = None
        cocotb.start_soon(self._run())

    async def _run(self):
        d = self.dut
        chans = [(d.m_axi0_arvalid, d.m_axi0_arready, d.m_axi0_arlen),
                 (d.m_axi1_arvalid, d.m_axi1_arready, d.m_axi1_arlen),
                 (d.m_axi2_awvalid, d.m_axi2_awready, d.m_axi2_awlen)]
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


@cocotb.test()
async def run_script(dut):
    with open(os.environ["EFGEN_TOP_SCRIPT"]) as f:
        script = json.load(f)
    image = np.load(script["image"]).astype("<u4")
    size = max(1 << 20, 1 << int(np.ceil(np.log2(image.size * 4 + 4096))))

    cocotb.start_soon(Clock(dut.clk, CLK_NS, units="ns").start())
    ram0 = AxiRamRead(AxiReadBus.from_prefix(dut, "m_axi0"), dut.clk, dut.rst, size=size)
    ram1 = AxiRamRead(AxiReadBus.from_prefix(dut, "m_axi1"), dut.clk, dut.rst, mem=ram0.mem)
    ram2 = AxiRamWrite(AxiWriteBus.from_prefix(dut, "m_axi2"), dut.clk, dut.rst, mem=ram0.mem)
    lat = int(script.get("latency", 0))
    for ram in (ram0, ram1):
        ram.ar_channel.queue_occupancy_limit = 16
        if lat:
            ram.ar_channel = _DelayedARChannel(ram.ar_channel, dut.clk, lat)
    axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), dut.clk, dut.rst)
    for log in (ram0.log, ram1.log, ram2.log, axil.read_if.log, axil.write_if.log):
        log.setLevel(logging.WARNING)
    mon = Monitor(dut)

    dut.rst.value = 1
    await ClockCycles(dut.clk, 5)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 2)
    ram0.write(0, image.tobytes())

    results = {}
    for run in script["runs"]:
        for off, val in run["regs"]:
            await axil.write_dword(off, int(val) & 0xFFFFFFFF)
        b0, n0 = list(mon.bursts), list(mon.beats)
        mon.start_cycle = mon.done_cycle = None
        await axil.write_dword(REGISTER_MAP["control"], CONTROL_START)
        waited = 0
        while True:
            await ClockCycles(dut.clk, POLL)
            waited += POLL
            status = await axil.read_dword(REGISTER_MAP["status"])
            if not status & STATUS_BUSY:
                break
            assert waited < TIMEOUT, f"{run['tag']}: no done after {TIMEOUT} cycles"
        assert status & 2, f"{run['tag']}: STATUS {status:#x} without DONE"
        assert not status & 4, f"{run['tag']}: DMA error (STATUS {status:#x})"
        cycles = await axil.read_dword(REGISTER_MAP["cycles"])
        results[run["tag"]] = {
            "cycles": cycles,
            "cycles_seen": (mon.done_cycle - mon.start_cycle
                            if mon.done_cycle is not None and mon.start_cycle is not None else None),
            "bursts": [a - b for a, b in zip(mon.bursts, b0)],
            "beats": [a - b for a, b in zip(mon.beats, n0)],
        }
    dump = np.frombuffer(ram0.read(0, image.size * 4), dtype="<u4")
    np.save(script["dump"], dump)
    with open(os.environ["EFGEN_TOP_RESULTS"], "w") as f:
        json.dump(results, f)
