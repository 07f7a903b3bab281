"""cocotb tests of axi_dma_rd, axi_dma_wr and desc_regs (top: sim/dma/dma_tb.v).

Run from tests/test_rtl_dma.py through efgen.cosim.runner.run_cocotb, one cocotb test at a time
(``TESTCASE``), with:

* ``EFGEN_DMA_PARAMS`` - the DmaParams of the build (JSON);
* ``EFGEN_DMA_REPORT`` - a JSON file the measuring tests write their numbers to;
* ``EFGEN_DMA_SCALE``  - a factor on the random-test sizes (Icarus runs a smaller share).

DRAM is cocotbext-axi's AxiRam; :func:`add_read_latency` gives its read side a DDR-like
pipelined latency. Registers are driven with cocotbext-axi's AxiLiteMaster. Cycle
counts are clock edges seen by :meth:`TB._monitor`; handshakes are sampled at the rising
edge that completes them.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge
from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiRam

from efgen.hls.desc import EfgenDesc
from efgen.layout import FeatureMapLayout, WeightLayout
from efgen.rtl.dma import (
    AP_DONE,
    AP_IDLE,
    AP_READY,
    CONTROL_START,
    ISR_DONE,
    DESC_PORTS,
    REGISTER_MAP,
    REGISTERS,
    STATUS_BUSY,
    STATUS_DONE,
    STATUS_ERROR,
    DmaParams,
    axi_bursts,
    desc_register_writes,
)

MEM_BYTES = 1 << 21          # 2 MiB of DRAM: 512 Ki words
PAGE_WORDS = 1024            # 4 KiB
CLK_NS = 10


# --------------------------------------------------------------------- DRAM model

class _DelayedARChannel:
    """Wraps AxiRam's AR sink: a burst's data starts ``cycles`` clock cycles after its
    AR handshake at the earliest, and several ARs wait at once (pipelined latency,
    like a DDR controller), instead of AxiRam's immediate answer."""

    def __init__(self, sink, clock, cycles: int):
        self._sink, self._clock, self._cycles = sink, clock, cycles
        self._now = 0
        make = sink._transaction_obj

        def stamped():
            obj = make()
            obj.efgen_cycle = self._now   # sampled at the AR handshake edge
            return obj

        sink._transaction_obj = stamped
        cocotb.start_soon(self._count())

    async def _count(self):
        while True:
            await RisingEdge(self._clock)
            self._now += 1

    async def recv(self):
        ar = await self._sink.recv()
        wait = ar.efgen_cycle + self._cycles - self._now
        if wait > 0:
            await ClockCycles(self._clock, wait)
        return ar

    def __getattr__(self, name):
        return getattr(self._sink, name)


def add_read_latency(ram: AxiRam, clock, cycles: int, acceptance: int = 16) -> None:
    """Give ``ram`` a read latency of ``cycles`` (pipelined; up to ``acceptance`` + 1
    read bursts accepted at once, like a Zynq HP port's read acceptance)."""
    ram.read_if.ar_channel.queue_occupancy_limit = acceptance
    if cycles:
        ram.read_if.ar_channel = _DelayedARChannel(ram.read_if.ar_channel, clock, cycles)


def _pauses(prob: float, rng: random.Random):
    while True:
        yield rng.random() < prob


# --------------------------------------------------------------------- testbench

class TB:
    def __init__(self, dut, latency: int = 0, seed: int = 1):
        self.dut = dut
        self.p = DmaParams(**json.loads(os.environ["EFGEN_DMA_PARAMS"]))
        self.wpb = self.p.words_per_beat
        self.rng = random.Random(seed)
        self.nprng = np.random.default_rng(seed)
        cocotb.start_soon(Clock(dut.clk, CLK_NS, units="ns").start())
        self.ram = AxiRam(AxiBus.from_prefix(dut, "m_axi"), dut.clk, dut.rst, size=MEM_BYTES)
        add_read_latency(self.ram, dut.clk, latency)
        self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), dut.clk, dut.rst)
        for log in (self.ram.read_if.log, self.ram.write_if.log,
                    self.axil.read_if.log, self.axil.write_if.log):
            log.setLevel(logging.WARNING)
        self.cycle = 0
        self.ars: list[tuple[int, int, int]] = []   # (cycle, byte addr, beats)
        self.aws: list[tuple[int, int, int]] = []
        self.wr_done = 0
        self.start_cycles: list[int] = []
        cocotb.start_soon(self._monitor())

    async def _monitor(self):
        """Cycle counter and AR/AW/done/start handshake log; checks every burst."""
        d = self.dut
        limit = self.p.max_burst
        while True:
            await RisingEdge(d.clk)
            self.cycle += 1
            for valid, ready, addr, alen, log in (
                    (d.m_axi_arvalid, d.m_axi_arready, d.m_axi_araddr, d.m_axi_arlen, self.ars),
                    (d.m_axi_awvalid, d.m_axi_awready, d.m_axi_awaddr, d.m_axi_awlen, self.aws)):
                if valid.value and ready.value:
                    a, n = int(addr.value), int(alen.value) + 1
                    assert n <= limit, f"burst of {n} beats > MAX_BURST {limit}"
                    assert a % 4096 + n * self.wpb * 4 <= 4096, f"burst at {a:#x} crosses 4 KiB"
                    log.append((self.cycle, a, n))
            if d.wr_done.value:
                self.wr_done += 1
            if d.regs_start.value:
                self.start_cycles.append(self.cycle)

    async def reset(self):
        d = self.dut
        for s in (d.rd_cmd_valid, d.rd_ready, d.wr_cmd_valid, d.wr_valid, d.regs_done,
                  d.regs_error, d.regs_refuse, d.rd_cmd_addr, d.rd_cmd_len, d.wr_cmd_addr, d.wr_cmd_len,
                  d.wr_data):
            s.value = 0
        d.rst.value = 1
        await ClockCycles(d.clk, 5)
        d.rst.value = 0
        await ClockCycles(d.clk, 5)

    # -- memory
    def fill(self, nwords: int | None = None) -> np.ndarray:
        """Random words over the first ``nwords`` of DRAM; returns them (uint32)."""
        n = nwords or MEM_BYTES // 4
        words = self.nprng.integers(0, 1 << 32, n, dtype=np.uint64).astype(np.uint32)
        self.ram.write(0, words.tobytes())
        return words

    def words(self, addr: int, n: int) -> np.ndarray:
        return np.frombuffer(self.ram.read(addr * 4, n * 4), dtype=np.uint32)

    # -- read engine
    async def rd_commands(self, cmds, gap_prob: float = 0.0, serial=None):
        """Issue read commands (word addr, words); returns their handshake cycles.
        ``serial``, an async callable, is awaited after each non-empty command (the
        timing test waits there for the command's last beat)."""
        d = self.dut
        cycles = []
        for addr, n in cmds:
            while self.rng.random() < gap_prob:
                await RisingEdge(d.clk)
            d.rd_cmd_addr.value, d.rd_cmd_len.value, d.rd_cmd_valid.value = addr, n, 1
            while True:
                await RisingEdge(d.clk)
                if d.rd_cmd_ready.value:
                    break
            cycles.append(self.cycle)
            d.rd_cmd_valid.value = 0
            if serial is not None and n:
                await serial()
        return cycles

    async def rd_collect(self, lens, stall_prob: float = 0.0):
        """Collect the packed streams of commands of ``lens`` words (zero-length ones
        produce nothing); checks m_keep/m_last; returns (word arrays, last-beat cycles)."""
        d = self.dut
        out, ends = [], []
        d.rd_ready.value = int(self.rng.random() >= stall_prob)
        for n in lens:
            if n == 0:
                out.append(np.zeros(0, dtype=np.uint32))
                ends.append(None)
                continue
            got = []
            while True:
                await RisingEdge(d.clk)
                if d.rd_valid.value and d.rd_ready.value:
                    left = n - len(got)
                    keep = int(d.rd_keep.value)
                    full = (1 << self.wpb) - 1
                    exp_keep = full if left >= self.wpb else (1 << left) - 1
                    assert keep == exp_keep, f"keep {keep:#x} != {exp_keep:#x} ({left} words left)"
                    assert int(d.rd_last.value) == (left <= self.wpb), "m_last misplaced"
                    # lanes outside m_keep are undefined (X on Icarus)
                    beat = int(d.rd_data.value.binstr.replace("x", "0").replace("z", "0"), 2)
                    got += [(beat >> (32 * k)) & 0xFFFFFFFF for k in range(min(left, self.wpb))]
                    if len(got) == n:
                        ends.append(self.cycle)
                        break
                d.rd_ready.value = int(self.rng.random() >= stall_prob)
            out.append(np.array(got, dtype=np.uint32))
            d.rd_ready.value = int(self.rng.random() >= stall_prob)
        return out, ends

    async def read(self, cmds, gap_prob=0.0, stall_prob=0.0):
        collector = cocotb.start_soon(self.rd_collect([n for _, n in cmds], stall_prob))
        issued = await self.rd_commands(cmds, gap_prob)
        data, ends = await collector
        return data, issued, ends

    # -- write engine
    async def wr_commands(self, cmds, gap_prob: float = 0.0):
        d = self.dut
        for addr, n in cmds:
            while self.rng.random() < gap_prob:
                await RisingEdge(d.clk)
            d.wr_cmd_addr.value, d.wr_cmd_len.value, d.wr_cmd_valid.value = addr, n, 1
            while True:
                await RisingEdge(d.clk)
                if d.wr_cmd_ready.value:
                    break
            d.wr_cmd_valid.value = 0

    async def wr_stream(self, payloads, gap_prob: float = 0.0):
        """Feed the packed words of every command (its words, WPB a beat)."""
        d = self.dut
        beats = []
        for words in payloads:
            for j in range(0, len(words), self.wpb):
                chunk = words[j:j + self.wpb]
                v = 0
                for k, w in enumerate(chunk):
                    v |= int(w) << (32 * k)
                if len(chunk) < self.wpb:  # junk in the unused lanes: must be ignored
                    v |= self.rng.getrandbits(32 * (self.wpb - len(chunk))) << (32 * len(chunk))
                beats.append(v)
        i = 0
        while i < len(beats):
            valid = self.rng.random() >= gap_prob
            d.wr_valid.value = int(valid)
            d.wr_data.value = beats[i] if valid else self.rng.getrandbits(self.p.data_width)
            await RisingEdge(d.clk)
            if valid and d.wr_ready.value:
                i += 1
        d.wr_valid.value = 0

    async def write(self, cmds, payloads, gap_prob=0.0, timeout=200_000):
        expected = self.wr_done + sum(1 for _, n in cmds if n)
        feeder = cocotb.start_soon(self.wr_stream(payloads, gap_prob))
        await self.wr_commands(cmds, gap_prob)
        await feeder
        for _ in range(timeout):
            if self.wr_done >= expected and not self.dut.wr_busy.value:
                break
            await RisingEdge(self.dut.clk)
        assert self.wr_done == expected, f"{self.wr_done} done pulses, expected {expected}"
        assert not self.dut.wr_busy.value

    def backpressure(self, prob: float):
        """Random stalls on every AXI channel the slave side drives."""
        ram = self.ram
        for i, ch in enumerate((ram.read_if.r_channel, ram.write_if.aw_channel,
                                ram.write_if.w_channel, ram.write_if.b_channel,
                                ram.read_if.ar_channel)):
            ch.set_pause_generator(_pauses(prob, random.Random(100 + i)))

    def bursts(self, cmds) -> list[tuple[int, int]]:
        """(byte address, beats) of every burst the commands must issue, in order."""
        return [tuple(b) for a, n in cmds
                for b in axi_bursts(a, n, self.p.data_width, self.p.max_burst)]

    def scale(self, n: int) -> int:
        return max(1, int(n * float(os.environ.get("EFGEN_DMA_SCALE", "1"))))


def _report(key: str, value) -> None:
    path = os.environ.get("EFGEN_DMA_REPORT")
    if not path:
        return
    data = {}
    if os.path.exists(path):
        with open(path) as f:
            data = json.load(f)
    data[key] = value
    with open(path, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)


def _random_transfers(tb: TB, count: int, region_words: int):
    """Random (addr, len) pairs inside [0, region_words): short, page-crossing, longer
    than MAX_BURST, unaligned, single words; non-overlapping, in random order."""
    mb_words = tb.p.max_burst_words
    kinds = ["one", "short", "cross", "long", "any"]
    cmds = []
    cursor = tb.rng.randrange(0, 64)
    for i in range(count):
        kind = kinds[i % len(kinds)]
        if kind == "one":
            n = 1
        elif kind == "short":
            n = tb.rng.randrange(2, 3 * tb.wpb + 2)
        elif kind == "cross":   # straddle the next 4 KiB page boundary
            n = tb.rng.randrange(2, 300)
            boundary = (cursor // PAGE_WORDS + 1) * PAGE_WORDS
            cursor = max(cursor, boundary - tb.rng.randrange(1, n))
        elif kind == "long":
            n = mb_words + tb.rng.randrange(1, mb_words + 7)
        else:
            n = tb.rng.randrange(1, 700)
        if cursor + n > region_words:
            break
        cmds.append((cursor, n))
        cursor += n + tb.rng.randrange(0, 9)
    tb.rng.shuffle(cmds)
    return cmds


# --------------------------------------------------------------------- read tests

@cocotb.test(timeout_time=50, timeout_unit="ms")
async def read_random(dut):
    """Random reads, random stalls everywhere: data bit-exact, bursts legal and counted."""
    tb = TB(dut, latency=20, seed=11)
    await tb.reset()
    mem = tb.fill(1 << 17)
    cmds = _random_transfers(tb, tb.scale(60), 1 << 17)
    cmds += [(5, 0)]  # zero-length: dropped
    tb.backpressure(0.2)
    data, _, _ = await tb.read(cmds, gap_prob=0.3, stall_prob=0.3)
    for (addr, n), got in zip(cmds, data):
        np.testing.assert_array_equal(got, mem[addr:addr + n], err_msg=f"read {addr}+{n}")
    # one ID, in-order: the AR sequence is exactly the commands' bursts in order
    assert [(a, n) for _, a, n in tb.ars] == tb.bursts(cmds)
    await ClockCycles(dut.clk, 2)
    assert not dut.rd_busy.value
    _report("read_random", {"commands": len(cmds), "bursts": len(tb.ars),
                            "words": sum(n for _, n in cmds)})


@cocotb.test(timeout_time=50, timeout_unit="ms")
async def read_edges(dut):
    """Every start lane, 1-word reads, page straddles, > MAX_BURST beats, back to back."""
    tb = TB(dut, latency=3, seed=12)
    await tb.reset()
    mem = tb.fill(1 << 16)
    w, mb = tb.wpb, tb.p.max_burst_words
    cmds = [(PAGE_WORDS * 3 + k, 1) for k in range(w)]               # one word, each lane
    cmds += [(PAGE_WORDS * 4 + k, n) for k in range(w) for n in (w - k, w - k + 1, 2 * w + 1)]
    cmds += [(PAGE_WORDS * 6 - k - 1, 2 * k + 2) for k in range(w + 2)]  # straddle a page
    cmds += [(PAGE_WORDS * 8 + 1, 3 * mb + 5), (PAGE_WORDS * 20, mb), (PAGE_WORDS * 22 - 1, mb + 1)]
    cmds += [(PAGE_WORDS * 30 + 7, 2 * PAGE_WORDS + 3)]               # several pages
    data, _, _ = await tb.read(cmds)
    for (addr, n), got in zip(cmds, data):
        np.testing.assert_array_equal(got, mem[addr:addr + n], err_msg=f"read {addr}+{n}")
    expected = tb.bursts(cmds)
    assert [(a, n) for _, a, n in tb.ars] == expected


def _tiles(p: DmaParams):
    """(name, layout, shape, tile kwargs) - tiles the engines move, from efgen.layout."""
    t = 16
    return [
        ("fm blocked, 2 blocks x 6 full rows", FeatureMapLayout("blocked", t), (2, 40, 12, 12),
         dict(b=1, c_range=(16, 40), r_range=(3, 9))),
        ("fm blocked, column tile", FeatureMapLayout("blocked", t), (1, 32, 12, 12),
         dict(b=0, c_range=(0, 32), r_range=(2, 8), x_range=(2, 8))),
        ("fm blocked, long runs across pages", FeatureMapLayout("blocked", t), (1, 64, 32, 32),
         dict(b=0, c_range=(0, 64), r_range=(5, 20))),
        ("fm nchw, 4 channels of 9x9", FeatureMapLayout("nchw"), (1, 8, 9, 9),
         dict(b=0, c_range=(2, 6))),
        ("fm nchw, row tile", FeatureMapLayout("nchw"), (2, 4, 10, 10),
         dict(b=1, c_range=(0, 4), r_range=(1, 4), x_range=(3, 10))),
        ("w blocked, one m-block row", WeightLayout("blocked", t, t), (32, 48, 3, 3),
         dict(m_range=(16, 32), n_range=(0, 48))),
        ("w blocked, one pair", WeightLayout("blocked", t, t), (32, 48, 3, 3),
         dict(m_range=(0, 16), n_range=(16, 32))),
        ("w oihw, 4 x 8 channels", WeightLayout("oihw"), (16, 16, 3, 3),
         dict(m_range=(4, 8), n_range=(8, 16))),
    ]


@cocotb.test(timeout_time=50, timeout_unit="ms")
async def tile_bursts(dut):
    """One command per contiguous run of efgen.layout tiles; AR handshakes counted."""
    tb = TB(dut, latency=20, seed=13)
    await tb.reset()
    mem = tb.fill(1 << 17)
    p = tb.p
    rows = []
    base = 0
    for name, layout, shape, kw in _tiles(p):
        runs = layout.tile_bursts(shape, **kw)                      # maximal runs
        cmds = [(base + a, n) for a, n in runs]
        before = len(tb.ars)
        data, _, _ = await tb.read(cmds)
        for (addr, n), got in zip(cmds, data):
            np.testing.assert_array_equal(got, mem[addr:addr + n], err_msg=f"{name} {addr}+{n}")
        measured = len(tb.ars) - before
        rtl = sum(len(axi_bursts(a, n, p.data_width, p.max_burst)) for a, n in cmds)
        model = len(layout.tile_bursts(shape, **kw, max_burst=p.max_burst_words))
        assert layout.tile_burst_count(shape, **kw, max_burst=p.max_burst_words) == model
        # the layout splits runs into max_burst pieces from each run's start, blind to
        # 4 KiB pages and to beat alignment: it matches the hardware when every piece
        # starts on a beat and stays inside one page
        pieces = [(base + a, n) for a, n in layout.tile_bursts(shape, **kw,
                                                               max_burst=p.max_burst_words)]
        page_safe = all(a % p.words_per_beat == 0 and a % PAGE_WORDS + n <= PAGE_WORDS
                        for a, n in pieces)
        rows.append({"tile": name, "runs": len(runs), "words": sum(n for _, n in runs),
                     "ar_measured": measured, "ar_axi_bursts": rtl, "layout_tile_bursts": model,
                     "page_safe": page_safe})
        assert measured == rtl, rows[-1]
        if page_safe:
            assert measured == model, rows[-1]
        base = -(-(base + layout.size(shape)) // PAGE_WORDS) * PAGE_WORDS   # 4 KiB-aligned bases
    _report("tile_bursts", rows)


@cocotb.test(timeout_time=50, timeout_unit="ms")
async def read_timing(dut):
    """Cycles of long and of many-burst reads with a 20-cycle DRAM latency (no stalls)."""
    latency = 20
    tb = TB(dut, latency=latency, seed=14)
    await tb.reset()
    tb.fill(1 << 17)
    w = tb.wpb
    res = {"dram_latency": latency, "words_per_beat": w, "max_burst": tb.p.max_burst,
           "outstanding": tb.p.outstanding}

    async def one(cmds, serial=False):
        lens = [n for _, n in cmds]
        collector = cocotb.start_soon(tb.rd_collect(lens))
        async def wait_last():   # issue the next command after this one's last beat
            while True:
                await RisingEdge(dut.clk)
                if dut.rd_valid.value and dut.rd_ready.value and dut.rd_last.value:
                    return

        issued = await tb.rd_commands(cmds, serial=wait_last if serial else None)
        _, ends = await collector
        beats = sum(-(-((a % w) + n) // w) for a, n in cmds)
        bursts = sum(len(axi_bursts(a, n, tb.p.data_width, tb.p.max_burst)) for a, n in cmds)
        cycles = ends[-1] - issued[0]
        return {"commands": len(cmds), "bursts": bursts, "beats": beats, "cycles": cycles,
                "overhead": cycles - beats,
                "overhead_per_burst": round((cycles - beats) / bursts, 2)}

    # one long command: beats + latency + a small constant
    n_long = 16384
    res["long"] = await one([(0, n_long)])
    # one burst at a time, each waiting for the previous one's last word (no overlap)
    for beats in (1, 16):
        res[f"serial_{beats}beat"] = await one(
            [(PAGE_WORDS * (2 + i), beats * w) for i in range(16)], serial=True)
    # back-to-back commands, overlapped up to OUTSTANDING bursts
    for beats in (1, 4, 16, 64):
        res[f"pipelined_{beats}beat"] = await one(
            [(PAGE_WORDS * 40 + i * beats * w, beats * w) for i in range(64)])
    _report("read_timing", res)


# --------------------------------------------------------------------- write tests

@cocotb.test(timeout_time=50, timeout_unit="ms")
async def write_random(dut):
    """Random writes, random stalls: DRAM equals the expected image (strobes exact)."""
    tb = TB(dut, latency=0, seed=21)
    await tb.reset()
    region = 1 << 17
    mem = tb.fill(region).copy()
    cmds = _random_transfers(tb, tb.scale(60), region)
    cmds += [(9, 0)]
    payloads = [tb.nprng.integers(0, 1 << 32, n, dtype=np.uint64).astype(np.uint32)
                for _, n in cmds]
    for (a, n), pl in zip(cmds, payloads):
        mem[a:a + n] = pl
    tb.backpressure(0.2)
    await tb.write(cmds, payloads, gap_prob=0.3)
    np.testing.assert_array_equal(tb.words(0, region), mem)
    expected = tb.bursts(cmds)
    assert [(a, n) for _, a, n in tb.aws] == expected
    _report("write_random", {"commands": len(cmds), "bursts": len(tb.aws)})


@cocotb.test(timeout_time=50, timeout_unit="ms")
async def write_edges(dut):
    """Every start lane and length class; 1-word writes keep their neighbours."""
    tb = TB(dut, seed=22)
    await tb.reset()
    region = 1 << 16
    mem = tb.fill(region).copy()
    w, mb = tb.wpb, tb.p.max_burst_words
    cmds = [(PAGE_WORDS * 3 + 2 * w * k + k, 1) for k in range(w)]
    cmds += [(PAGE_WORDS * 4 + 8 * w * k + k, n) for k in range(w) for n in (w - k, w - k + 1)]
    cmds += [(PAGE_WORDS * 6 - k - 1 + 16 * k, 2 * k + 2) for k in range(w + 2)]
    cmds += [(PAGE_WORDS * 8 + 1, 3 * mb + 5), (PAGE_WORDS * 20, mb), (PAGE_WORDS * 22 - 1, mb + 1)]
    cmds += [(PAGE_WORDS * 30 + 7, 2 * PAGE_WORDS + 3)]
    payloads = [tb.nprng.integers(0, 1 << 32, n, dtype=np.uint64).astype(np.uint32)
                for _, n in cmds]
    for (a, n), pl in zip(cmds, payloads):
        mem[a:a + n] = pl
    await tb.write(cmds, payloads)
    np.testing.assert_array_equal(tb.words(0, region), mem)
    expected = tb.bursts(cmds)
    assert [(a, n) for _, a, n in tb.aws] == expected


@cocotb.test(timeout_time=50, timeout_unit="ms")
async def write_timing(dut):
    """Cycles of a long write, command to done (AxiRam answers B at once)."""
    tb = TB(dut, seed=23)
    await tb.reset()
    n = 16384
    payload = tb.nprng.integers(0, 1 << 32, n, dtype=np.uint64).astype(np.uint32)
    t0 = tb.cycle
    await tb.write([(0, n)], [payload])
    cycles = tb.cycle - t0
    np.testing.assert_array_equal(tb.words(0, n), payload)
    beats = n // tb.wpb
    _report("write_timing", {"words": n, "beats": beats, "cycles": cycles,
                             "overhead": cycles - beats, "bursts": len(tb.aws)})


@cocotb.test(timeout_time=50, timeout_unit="ms")
async def bus_errors(dut):
    """SLVERR responses pulse rd_error / wr_error once per bad beat / burst; the
    transfers still complete."""
    tb = TB(dut, seed=24)
    await tb.reset()
    mem = tb.fill(1 << 14)
    bad = range(4 * 4096, 4 * 4096 + 64)          # bytes 16 KiB .. +64 fail

    async def read_or_fail(address, length):
        if address in bad:
            raise IOError("bad address")
        return tb.ram.read(address, length)

    async def write_or_fail(address, data):
        if address in bad:
            raise IOError("bad address")
        tb.ram.write(address, data)

    tb.ram.read_if._read = read_or_fail      # AxiRam answers SLVERR when these raise
    tb.ram.write_if._write = write_or_fail
    errors = {"rd": 0, "wr": 0}

    async def count():
        while True:
            await RisingEdge(dut.clk)
            errors["rd"] += int(dut.rd_error.value)
            errors["wr"] += int(dut.wr_error.value)

    cocotb.start_soon(count())
    bad_beats = len(bad) * 8 // tb.p.data_width
    data, _, _ = await tb.read([(4096 - 8, 8), (4096 - 4, 64), (4096 + 100, 4)])
    np.testing.assert_array_equal(data[0], mem[4096 - 8:4096])
    np.testing.assert_array_equal(data[2], mem[4196:4200])
    await ClockCycles(dut.clk, 3)
    assert errors["rd"] == bad_beats, errors
    payload = np.arange(64, dtype=np.uint32)
    await tb.write([(4096 - 4, 64), (4096 + 200, 4)], [payload, payload[:4]])
    await ClockCycles(dut.clk, 3)
    bursts = len(axi_bursts(4096 - 4, 64, tb.p.data_width, tb.p.max_burst))
    assert 1 <= errors["wr"] <= bursts, errors   # one per burst that hit a bad beat
    np.testing.assert_array_equal(tb.words(4096 + 200, 4), payload[:4])


# --------------------------------------------------------------------- registers

async def _status(tb):
    return await tb.axil.read_dword(REGISTER_MAP["status"])


@cocotb.test(timeout_time=50, timeout_unit="ms")
async def regs(dut):
    """Full descriptor round trip, field ports, start/busy/done/error, CYCLES."""
    tb = TB(dut, seed=31)
    await tb.reset()
    rng = np.random.default_rng(31)
    desc = EfgenDesc.from_buffer_copy(
        rng.integers(0, 256, ctypes.sizeof(EfgenDesc), dtype=np.uint8).tobytes())
    writes = desc_register_writes(desc)
    assert len(writes) == sum(1 for r in REGISTERS if r.field)
    for off, val in writes:
        await tb.axil.write_dword(off, val)
    for off, val in writes:
        got = await tb.axil.read_dword(off)
        assert got == val, f"register {off:#x}: {got:#x} != {val:#x}"
    raw = bytes(desc)
    for port in DESC_PORTS:
        field = port.port[len("desc_"):]
        off = getattr(EfgenDesc, field).offset
        want = int.from_bytes(raw[off:off + port.width // 8], "little")
        got = int(getattr(dut.u_regs, port.port).value)
        assert got == want, f"{port.port}: {got:#x} != {want:#x}"

    # byte strobes: one byte of `pad`
    off = REGISTER_MAP["pad"]
    old = await tb.axil.read_dword(off)
    await tb.axil.write(off + 2, b"\xa5")
    assert await tb.axil.read_dword(off) == (old & ~0x00FF0000) | 0x00A50000
    # the pointer registers: 64 bits each, on their ports
    for k, arg in enumerate(("gmem_in", "gmem_w", "gmem_out")):
        await tb.axil.write_dword(REGISTER_MAP[f"{arg}_lo"], 0x1000 * (k + 1))
        await tb.axil.write_dword(REGISTER_MAP[f"{arg}_hi"], 0x8 + k)
    for k, arg in enumerate(("gmem_in", "gmem_w", "gmem_out")):
        assert int(getattr(dut, f"regs_{arg}").value) == (0x8 + k) << 32 | 0x1000 * (k + 1)
    # unmapped offsets (the reserved words after each argument, the gap before STATUS)
    # read 0 and ignore writes
    mapped = set(REGISTER_MAP.values())
    for off in (0xB0, 0xBC, 0xC8, 0xD4, 0xD8, 0xF4, 0xFC):
        assert off not in mapped
        await tb.axil.write_dword(off, 0xFFFFFFFF)
        assert await tb.axil.read_dword(off) == 0
    # AP_CTRL: idle; STATUS idle
    assert await tb.axil.read_dword(REGISTER_MAP["control"]) == AP_IDLE
    assert await _status(tb) == 0

    async def pulse_done(k, error_at):
        """Wait for the start pulse; raise done k cycles later (error at error_at)."""
        while True:
            await RisingEdge(dut.clk)
            if dut.regs_start.value:
                break
        for i in range(1, k):
            dut.regs_error.value = int(i == error_at)
            await RisingEdge(dut.clk)
        dut.regs_error.value = 0
        dut.regs_done.value = 1
        await RisingEdge(dut.clk)
        dut.regs_done.value = 0

    async def run(k, error_at=None):
        """Start; done k cycles after the start pulse; returns CYCLES."""
        n0 = len(tb.start_cycles)
        driver = cocotb.start_soon(pulse_done(k, error_at))
        await tb.axil.write_dword(REGISTER_MAP["control"], CONTROL_START)
        await driver
        await RisingEdge(dut.clk)
        assert len(tb.start_cycles) == n0 + 1, "start must be a one-cycle pulse"
        st = await _status(tb)
        assert st & STATUS_DONE and not st & STATUS_BUSY, st
        assert bool(st & STATUS_ERROR) == (error_at is not None), st
        return await tb.axil.read_dword(REGISTER_MAP["cycles"])

    # ap_ctrl_hs: ap_done and ap_ready after the run, cleared by reading AP_CTRL; the
    # interrupt with GIE and IER set, ISR toggled off by writing 1
    await tb.axil.write_dword(REGISTER_MAP["gie"], 1)
    await tb.axil.write_dword(REGISTER_MAP["ier"], ISR_DONE)
    assert not dut.regs_irq.value
    assert await run(37) == 37
    assert await tb.axil.read_dword(REGISTER_MAP["control"]) == AP_IDLE | AP_DONE | AP_READY
    assert await tb.axil.read_dword(REGISTER_MAP["control"]) == AP_IDLE   # clear on read
    assert await tb.axil.read_dword(REGISTER_MAP["isr"]) == ISR_DONE
    assert dut.regs_irq.value
    await tb.axil.write_dword(REGISTER_MAP["isr"], ISR_DONE)
    await ClockCycles(dut.clk, 2)
    assert await tb.axil.read_dword(REGISTER_MAP["isr"]) == 0 and not dut.regs_irq.value
    await tb.axil.write_dword(REGISTER_MAP["gie"], 0)
    # a refused START: no start pulse, DONE and ERROR at once with the refusal's code
    n0 = len(tb.start_cycles)
    dut.regs_refuse.value = 1
    await tb.axil.write_dword(REGISTER_MAP["control"], CONTROL_START)
    await ClockCycles(dut.clk, 3)
    dut.regs_refuse.value = 0
    assert len(tb.start_cycles) == n0
    assert await _status(tb) == STATUS_DONE | STATUS_ERROR | (8 << 8)
    assert await tb.axil.read_dword(REGISTER_MAP["control"]) & AP_DONE
    # FAIL_ADDR holds all 64 bits of the first error's address
    assert await run(20, error_at=5) == 20
    assert await tb.axil.read_dword(REGISTER_MAP["fail_addr"]) == 0x3456_789A
    assert await tb.axil.read_dword(REGISTER_MAP["fail_addr_hi"]) == 0x12
    # ABORT while busy: one pulse; ignored while idle
    aborts = []

    async def watch():
        while True:
            await RisingEdge(dut.clk)
            if dut.regs_abort.value:
                aborts.append(tb.cycle)
    watcher = cocotb.start_soon(watch())
    await tb.axil.write_dword(REGISTER_MAP["abort"], 1)
    await ClockCycles(dut.clk, 3)
    assert aborts == []
    assert await run(1) == 1            # done in the cycle right after the start pulse
    assert await run(500, error_at=100) == 500
    assert await run(12) == 12          # a new start clears DONE and ERROR
    # a start while busy is ignored
    n0 = len(tb.start_cycles)
    await tb.axil.write_dword(REGISTER_MAP["control"], CONTROL_START)
    await ClockCycles(dut.clk, 3)
    await tb.axil.write_dword(REGISTER_MAP["control"], CONTROL_START)
    assert await _status(tb) == STATUS_BUSY
    assert len(tb.start_cycles) == n0 + 1
    await tb.axil.write_dword(REGISTER_MAP["abort"], 1)    # busy: one abort pulse
    await ClockCycles(dut.clk, 3)
    assert len(aborts) == 1
    watcher.kill()
    dut.regs_done.value = 1
    await RisingEdge(dut.clk)
    dut.regs_done.value = 0
    assert await _status(tb) == STATUS_DONE
