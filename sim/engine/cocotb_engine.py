"""cocotb driver of engine_core (efgen.rtl.engine): runs a script, records what it reads.

Run from pytest by tests/test_rtl_engine.py through efgen/cosim/runner.py. The script (JSON,
path in EFGEN_ENGINE_SCRIPT) is a list of operations; results (JSON, written to
EFGEN_ENGINE_RESULTS) map each operation's ``tag`` to what it observed. All checking
against numpy happens in pytest, so this file only drives ports:

``{"op": "ifm", "half", "words": [[lane0, ..], ..], "we": lane mask}``
    IFM words at addresses 0, 1, ... of one half, one address per cycle.
``{"op": "ofm", ...}``
    The same for the OFM write port.
``{"op": "wload", "cfg": {...}, "beats": [[w0, ..], ..]}``
    One cycle of ``wl_cfg``, then one beat per cycle, then ``drain`` idle cycles
    (``efgen.rtl.engine.WLOAD_LATENCY``) while the last bank writes leave.
``{"op": "run", "cfg": {...}, "during": [ops], "tag"}``
    ``start`` for one cycle with the block configuration; runs the ``during``
    operations (writes, stores) right away, while the engine is busy (ping-pong), then
    waits for ``done``. Records ``{"cycles": done cycle - start cycle, "busy_seen",
    "overlapped": done came after the last "during" operation}``.
``{"op": "store", "half", "n", "st_op", "mask": [[..], ..] or null, "tag"}``
    Reads OFM words 0..n-1 through the store path; records the words.
``{"op": "wbread", "addrs": [..], "tag"}``
    Reads weight-buffer vectors; records them.
``{"op": "idle", "cycles"}``
    Waits.

Words are uint32 bit patterns; lane k of a vector port is bits [32k, 32k+32).
"""

from __future__ import annotations

import json
import os

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge

from efgen.rtl.engine import RAM_LATENCY

RUN_TIMEOUT = 200_000      # cycles


def pack(words) -> int:
    v = 0
    for k, w in enumerate(words):
        v |= (int(w) & 0xFFFFFFFF) << (32 * k)
    return v


def unpack(v: int, n: int) -> list[int]:
    return [(v >> (32 * k)) & 0xFFFFFFFF for k in range(n)]


class Driver:
    def __init__(self, dut, tm: int, tn: int):
        self.dut, self.tm, self.tn = dut, tm, tn
        self.cycle = 0
        self.done_cycles: list[int] = []
        self.results: dict = {}
        self.fall = FallingEdge(dut.clk)

    async def do(self, op):
        """Run one script operation; record what it observes under its tag."""
        kind = op["op"]
        if kind in ("ifm", "ofm"):
            await self.write(op)
        elif kind == "wload":
            await self.wload(op)
        elif kind == "idle":
            for _ in range(op["cycles"]):
                await self.step()
        else:
            self.results[op["tag"]] = await getattr(self, kind)(op)

    async def step(self):
        """Advance to the next falling edge (mid-cycle): sample, then drive."""
        await self.fall
        self.cycle += 1
        if int(self.dut.done.value):
            self.done_cycles.append(self.cycle)

    # ---- buffer writes
    async def write(self, op):
        d = self.dut
        port = op["op"]
        lanes = self.tn if port == "ifm" else self.tm
        we = getattr(d, f"{port}_we")
        getattr(d, f"{port}_wr_half").value = op["half"]
        addr, data = getattr(d, f"{port}_wr_addr"), getattr(d, f"{port}_wr_data")
        mask = op.get("we", (1 << lanes) - 1)
        base = op.get("base", 0)
        for a, words in enumerate(op["words"]):
            we.value = mask
            addr.value = base + a
            data.value = pack(words)
            await self.step()
        we.value = 0

    async def wload(self, op):
        d = self.dut
        if hasattr(d, "wl_pack") and "pack" not in op["cfg"]:
            d.wl_pack.value = 0
        for k, v in op["cfg"].items():
            getattr(d, f"wl_{k}").value = int(v)
        d.wl_cfg.value = 1
        await self.step()
        d.wl_cfg.value = 0
        for beat in op["beats"]:
            d.wl_valid.value = 1
            d.wl_data.value = pack(beat)
            await self.step()
        d.wl_valid.value = 0
        for _ in range(op["drain"]):   # the last beat's bank writes leave engine_wload
            await self.step()

    async def run(self, op):
        d = self.dut
        assert not int(d.busy.value), "start while busy"
        if hasattr(d, "cfg_pack") and "pack" not in op["cfg"]:
            d.cfg_pack.value = 0                # an unpacked block on a pack build
        for k, v in op["cfg"].items():
            getattr(d, f"cfg_{k}").value = int(v)
        d.start.value = 1
        c0 = self.cycle
        n_done = len(self.done_cycles)
        await self.step()
        d.start.value = 0
        busy_seen = bool(int(d.busy.value))
        for sub in op.get("during", []):
            await self.do(sub)
        # ping-pong: the writes into the other halves finished while the block ran
        overlapped = len(self.done_cycles) == n_done
        while len(self.done_cycles) == n_done:
            await self.step()
            if self.cycle - c0 > RUN_TIMEOUT:
                raise AssertionError(f"{op.get('tag')}: no done after {RUN_TIMEOUT} cycles")
        return {"cycles": self.done_cycles[n_done] - c0, "busy_seen": busy_seen,
                "overlapped": overlapped}

    async def store(self, op):
        # pipelined: a read a cycle, its word RAM_LATENCY cycles later with st_valid
        d = self.dut
        out = []
        d.st_half.value = op["half"]
        d.st_op.value = op["st_op"]
        mask = op.get("mask")
        n = op["n"]
        for t in range(n + RAM_LATENCY - 1):
            d.st_re.value = int(t < n)
            if t < n:
                d.st_addr.value = t
                d.st_mask.value = pack(mask[t]) if mask else 0
            await self.step()
            valid = int(d.st_valid.value)
            assert valid == int(RAM_LATENCY - 1 <= t < n + RAM_LATENCY - 1), (t, valid)
            if valid:
                out.append(unpack(int(d.st_data.value), self.tm))
        d.st_re.value = 0
        return out

    async def wbread(self, op):
        # pipelined: an address a cycle, its vector RAM_LATENCY cycles later
        d = self.dut
        out = []
        addrs = op["addrs"]
        for t in range(len(addrs) + RAM_LATENCY - 1):
            if t < len(addrs):
                d.wb_rd_addr.value = addrs[t]
            await self.step()
            if t >= RAM_LATENCY - 1:
                out.append(unpack(int(d.wb_rd_data.value), self.tm * self.tn))
        return out


@cocotb.test()
async def run_script(dut):
    tm, tn = int(os.environ["EFGEN_ENGINE_TM"]), int(os.environ["EFGEN_ENGINE_TN"])
    with open(os.environ["EFGEN_ENGINE_SCRIPT"]) as f:
        script = json.load(f)

    cocotb.start_soon(Clock(dut.clk, 10, units="ns").start())
    for name in ("ifm_we", "ofm_we", "st_re", "wl_cfg", "wl_valid", "start", "wb_rd_addr",
                 "ifm_wr_half", "ifm_wr_addr", "ifm_wr_data", "ofm_wr_half", "ofm_wr_addr",
                 "ofm_wr_data", "st_half", "st_addr", "st_op", "st_mask", "wl_data",
                 "cfg_o_base", "cfg_u_lo", "cfg_v_lo", "cfg_dil_mask"):
        getattr(dut, name).value = 0
    for name in ("cfg_pack", "cfg_rc", "wl_pack", "wl_rc"):   # a pack build's ports
        if hasattr(dut, name):
            getattr(dut, name).value = 0
    for name in ("cfg_u_hi", "cfg_v_hi"):           # the whole buffer is valid
        sig = getattr(dut, name)
        sig.value = (1 << len(sig)) - 1
    dut.rst.value = 1
    drv = Driver(dut, tm, tn)
    for _ in range(3):
        await drv.step()
    dut.rst.value = 0
    await drv.step()

    for op in script:
        await drv.do(op)
    results = dict(drv.results, _done_cycles=drv.done_cycles)
    with open(os.environ["EFGEN_ENGINE_RESULTS"], "w") as f:
        json.dump(results, f)
