"""cocotb driver of sgd_wb (top: sim/sgd/sgd_tb.v): runs a list of cases, records results.

Run from tests/test_rtl_sgd.py through efgen/cosim/runner.py. The script (JSON, path in
EFGEN_SGD_SCRIPT) is a list of cases; the results (JSON, EFGEN_SGD_RESULTS) map each
case's name to what the run observed. All checking against the models happens in
pytest; this file only drives the ports and reads DRAM back. A case::

    {"name", "latency": L,                      # DRAM read latency, cycles
     "dram": [[word addr, [uint32, ..]], ..],   # written into DRAM before the run
     "wbuf": [[address, [bank0, bank1, ..]], ..],   # weight-buffer rows
     "cfg": {"k", "g", "nblk", "w_addr", "v_addr", "lr", "mom", "wd"},   # lr.. as bits
     "restart": [cycle, {cfg}] or null,         # a start pulse while busy (ignored)
     "again": bool,                             # run twice, the 2nd start in the done cycle
     "stall": probability,                      # random stalls on every DRAM channel
     "windows": [[word addr, words], ..]}       # read back after done

recorded as ``{"cycles": [done cycle - start cycle per run], "busy_ok", "done_pulses",
"dma_idle", "aw": [[byte addr, beats], ..], "windows": [[uint32, ..], ..]}``.

DRAM: cocotbext-axi's AxiRam on m_axi (W reads, all writes) and an AxiRamRead on v_axi
(V reads) over the same memory object; both read sides get a pipelined latency of L
cycles (sim/dma/cocotb_dma.py's model), writes are answered at once.
"""

from __future__ import annotations

import json
import logging
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge
from cocotbext.axi import AxiBus, AxiRam, AxiRamRead, AxiReadBus

from sim.dma.cocotb_dma import _DelayedARChannel

MEM_BYTES = 1 << 20
RUN_TIMEOUT = 100_000


def pack(words) -> int:
    v = 0
    for k, w in enumerate(words):
        v |= (int(w) & 0xFFFFFFFF) << (32 * k)
    return v


class Driver:
    def __init__(self, dut):
        self.dut = dut
        cocotb.start_soon(Clock(dut.clk, 10, units="ns").start())
        self.ram = AxiRam(AxiBus.from_prefix(dut, "m_axi"), dut.clk, dut.rst, size=MEM_BYTES)
        self.vram = AxiRamRead(AxiReadBus.from_prefix(dut, "v_axi"), dut.clk, dut.rst,
                               mem=self.ram.mem)
        self.delays = []
        for rd in (self.ram.read_if, self.vram):
            rd.ar_channel.queue_occupancy_limit = 16
            rd.ar_channel = _DelayedARChannel(rd.ar_channel, dut.clk, 0)
            self.delays.append(rd.ar_channel)
        for log in (self.ram.read_if.log, self.ram.write_if.log, self.vram.log):
            log.setLevel(logging.WARNING)
        self.cycle = 0
        self.fall = FallingEdge(dut.clk)
        self.aw: list = []
        cocotb.start_soon(self._monitor())

    async def _monitor(self):
        d = self.dut
        while True:
            await RisingEdge(d.clk)
            if d.m_axi_awvalid.value and d.m_axi_awready.value:
                self.aw.append([int(d.m_axi_awaddr.value), int(d.m_axi_awlen.value) + 1])

    async def step(self):
        """To the next falling edge (mid-cycle): sample, then drive."""
        await self.fall
        self.cycle += 1

    async def reset(self):
        d = self.dut
        for s in (d.start, d.wbuf_we, d.cfg_k, d.cfg_g, d.cfg_nblk, d.cfg_w_addr,
                  d.cfg_v_addr, d.cfg_lr, d.cfg_mom, d.cfg_wd, d.wbuf_wa, d.wbuf_wd):
            s.value = 0
        d.rst.value = 1
        for _ in range(5):
            await self.step()
        d.rst.value = 0
        for _ in range(5):
            await self.step()

    def set_cfg(self, cfg):
        d = self.dut
        for k, v in cfg.items():
            getattr(d, f"cfg_{k}").value = int(v)

    def backpressure(self, prob: float, seed: int):
        """Random stalls on every channel the DRAM side drives (0: none)."""
        chans = (self.ram.read_if.ar_channel, self.ram.read_if.r_channel,
                 self.ram.write_if.aw_channel, self.ram.write_if.w_channel,
                 self.ram.write_if.b_channel, self.vram.ar_channel, self.vram.r_channel)
        for i, ch in enumerate(chans):
            if prob:
                rng = random.Random(seed + i)
                ch.set_pause_generator(iter(lambda: rng.random() < prob, None))
            else:
                ch.clear_pause_generator()
                ch.pause = False

    async def run_case(self, case):
        d = self.dut
        for ch in self.delays:
            ch._cycles = int(case["latency"])
        self.backpressure(case.get("stall", 0.0), 1000)
        for addr, words in case["dram"]:
            self.ram.write(addr * 4, b"".join(int(w).to_bytes(4, "little") for w in words))
        for addr, lanes in case["wbuf"]:
            d.wbuf_we.value = 1
            d.wbuf_wa.value = addr
            d.wbuf_wd.value = pack(lanes)
            await self.step()
        d.wbuf_we.value = 0
        await self.step()
        assert not int(d.busy.value)
        self.aw.clear()
        runs = 2 if case.get("again") else 1
        self.set_cfg(case["cfg"])
        for _ in range(3):      # sgd_wb's chunk sizes follow cfg_* through registers
            await self.step()
        d.start.value = 1
        starts, done_cycles = [self.cycle], []
        await self.step()
        d.start.value = 0
        busy_ok = True
        restart = case.get("restart")
        while len(done_cycles) < runs or self.cycle < done_cycles[-1] + 3:
            if restart and self.cycle - starts[0] == restart[0]:
                self.set_cfg(restart[1])            # ignored: sgd_wb is busy
                d.start.value = 1
            elif restart and self.cycle - starts[0] == restart[0] + 1:
                self.set_cfg(case["cfg"])
                d.start.value = 0
            await self.step()
            done = int(d.done.value)
            busy = int(d.busy.value)
            d.start.value = 0
            if done:
                done_cycles.append(self.cycle)
                if len(done_cycles) < runs:         # the next run starts in the done cycle
                    d.start.value = 1
                    starts.append(self.cycle)
            # busy from the cycle after a start to the cycle before its done
            if busy != (not done and len(done_cycles) < runs):
                busy_ok = False
            if self.cycle - starts[0] > RUN_TIMEOUT:
                raise AssertionError(f"{case['name']}: no done after {RUN_TIMEOUT} cycles")
        d.start.value = 0
        dma_idle = not (int(d.rd_w_busy.value) or int(d.rd_v_busy.value)
                        or int(d.wr_busy.value))
        windows = [[int.from_bytes(self.ram.read((a + i) * 4, 4), "little") for i in range(n)]
                   for a, n in case["windows"]]
        return {"cycles": [e - b for b, e in zip(starts, done_cycles)], "busy_ok": busy_ok,
                "done_pulses": len(done_cycles), "dma_idle": dma_idle,
                "aw": list(self.aw), "windows": windows}


@cocotb.test(timeout_time=500, timeout_unit="ms")
async def run_script(dut):
    with open(os.environ["EFGEN_SGD_SCRIPT"]) as f:
        cases = json.load(f)
    drv = Driver(dut)
    await drv.reset()
    results = {}
    for case in cases:
        results[case["name"]] = await drv.run_case(case)
        for _ in range(4):
            await drv.step()
    with open(os.environ["EFGEN_SGD_RESULTS"], "w") as f:
        json.dump(results, f)
