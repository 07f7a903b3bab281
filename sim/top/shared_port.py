"""A testbench-side interconnect: efgen_top's three AXI4 masters behind ONE port.

A Zynq HP port behind a SmartConnect serves the bursts of all masters through one
queue: an arbiter grants one address (AR of m_axi0/m_axi1, AW of m_axi2, and AR of
m_axi2 on builds with the fused datapath's second load stream) at a time, round robin,
and the memory answers the granted bursts strictly in grant order, one beat
a cycle at best. A burst at the head blocks every burst behind it until it is done: a
read burst until its master has accepted every R beat, a write burst until its master has
sent every W beat. So a master whose RREADY waits for another port's data, or whose AW
goes out before its W data exists, deadlocks here (issue 19, review point 3), while
separate cocotbext-axi RAMs per master (sim/top/cocotb_top.py's default) cannot see it.

Random back-pressure: with ``prob`` > 0, each cycle the arbiter withholds its grant,
the R channel withholds its beat, WREADY and BVALID drop, each with probability ``prob``
(seeded). Read data starts ``latency`` cycles after its grant at the earliest
(pipelined, up to ``acceptance`` bursts queued). Every response is OKAY.

This is not generated RTL: it is the test's model of the SoC around the accelerator.
"""

from __future__ import annotations

import random
from collections import deque

import cocotb
from cocotb.triggers import RisingEdge


class SharedPort:
    """One memory (``size`` bytes) behind one arbitrated, in-order port for the DUT's
    ``m_axi0``/``m_axi1`` (read) and ``m_axi2`` (write; with ``read2`` also read: master
    3 below, the RTL's fused build) signals. ``read``/``write`` access the memory from the
    testbench (byte address, bytes)."""

    def __init__(self, dut, clk, size: int, latency: int = 24, seed: int = 0,
                 prob: float = 0.0, acceptance: int = 16, base: int = 0, read2: bool = False):
        self.dut, self.clk = dut, clk
        self.mem = bytearray(size)
        self.base = base                 # the memory's bus address (e.g. upper DDR)
        self.latency, self.acceptance = latency, acceptance
        self.rng = random.Random(seed)
        self.prob = prob
        self.cycle = 0
        # the requesters: 0, 1 reads of m_axi0/m_axi1, 2 m_axi2's writes, 3 its reads
        self.masters = (0, 1, 2, 3) if read2 else (0, 1, 2)
        self.readers = tuple(k for k in self.masters if k != 2)
        self.granted = [0] * len(self.masters)   # bursts granted per master
        self.max_queue = 0
        self.stalled = 0                 # longest run of cycles the head burst made no progress
        for k in self.readers:
            for s in ("arready", "rvalid", "rlast", "rresp", "rid", "rdata"):
                self._rd(k, s).value = 0
        for s in ("awready", "wready", "bvalid", "bresp", "bid"):
            self._sig(f"m_axi2_{s}").value = 0
        cocotb.start_soon(self._run())

    # ------------------------------------------------------------------ testbench access
    def read(self, address: int, length: int) -> bytes:
        return bytes(self.mem[address:address + length])

    def write(self, address: int, data: bytes) -> None:
        self.mem[address:address + len(data)] = data

    def _rd(self, k: int, name: str):
        """Read master k's signal ``name`` (3: m_axi2's read channel)."""
        return self._sig(f"m_axi{2 if k == 3 else k}_{name}")

    def _sig(self, name):
        return getattr(self.dut, name)

    def _local(self, addr_sig, len_sig) -> int:
        """A burst's offset in the memory; a burst outside it fails the test."""
        a = int(addr_sig.value)
        end = a + (int(len_sig.value) + 1) * 4
        assert self.base <= a and end <= self.base + len(self.mem), \
            f"burst at {a:#x}..{end:#x} outside the memory at {self.base:#x}"
        return a - self.base

    def _pause(self) -> bool:
        return self.prob > 0 and self.rng.random() < self.prob

    # ------------------------------------------------------------------ the port
    async def _run(self):
        d = self.dut
        queue: deque = deque()           # granted bursts, in grant order
        bq: deque = deque()              # write responses owed
        grant = None                     # the address channel offered a grant this cycle
        rr = 0
        head_beat = 0                    # beats of the head burst done
        r_on = None                      # the master R is driven to this cycle
        w_on = False
        b_on = False
        idle = 0
        while True:
            await RisingEdge(self.clk)
            self.cycle += 1
            progress = False
            # ---- handshakes of the cycle that just ended (values before the edge)
            if grant is not None:
                if grant != 2:
                    if int(self._rd(grant, "arvalid").value):
                        queue.append(("r", grant,
                                      self._local(self._rd(grant, "araddr"),
                                                  self._rd(grant, "arlen")),
                                      int(self._rd(grant, "arlen").value) + 1,
                                      self.cycle + self.latency))
                        self.granted[grant] += 1
                elif int(d.m_axi2_awvalid.value):
                    queue.append(("w", 2, self._local(d.m_axi2_awaddr, d.m_axi2_awlen),
                                  int(d.m_axi2_awlen.value) + 1, self.cycle))
                    self.granted[2] += 1
                self.max_queue = max(self.max_queue, len(queue))
            r_held = r_on is not None    # a VALID stays high until its handshake
            if r_on is not None and int(self._rd(r_on, "rready").value):
                r_held = False
                head_beat += 1
                progress = True
                if head_beat == queue[0][3]:
                    queue.popleft()
                    head_beat = 0
            if w_on and int(d.m_axi2_wvalid.value):
                kind, _, addr, beats, _ = queue[0]
                data = int(d.m_axi2_wdata.value)
                strb = int(d.m_axi2_wstrb.value)
                wbytes = len(d.m_axi2_wdata) // 8
                base = addr + head_beat * wbytes
                for i in range(wbytes):
                    if strb >> i & 1:
                        self.mem[base + i] = (data >> (8 * i)) & 0xFF
                last = int(d.m_axi2_wlast.value)
                head_beat += 1
                progress = True
                assert bool(last) == (head_beat == beats), \
                    f"WLAST {last} on beat {head_beat} of a {beats}-beat burst at {addr:#x}"
                if head_beat == beats:
                    queue.popleft()
                    head_beat = 0
                    bq.append(self.cycle + 2)
            b_held = b_on
            if b_on and int(d.m_axi2_bready.value):
                bq.popleft()
                b_held = False
            idle = 0 if progress or not queue else idle + 1
            self.stalled = max(self.stalled, idle)

            # ---- drive the next cycle
            grant = None
            if len(queue) < self.acceptance and not self._pause():
                n = len(self.masters)
                for j in range(n):
                    k = (rr + j) % n
                    v = (d.m_axi2_awvalid if k == 2 else self._rd(k, "arvalid"))
                    if int(v.value):
                        grant = k
                        rr = (k + 1) % n
                        break
            for k in self.readers:
                self._rd(k, "arready").value = int(grant == k)
            d.m_axi2_awready.value = int(grant == 2)

            r_keep = r_on if r_held else None
            r_on, w_on = None, False
            if queue:
                kind, port, addr, beats, ready_at = queue[0]
                if kind == "r" and (r_keep is not None or (self.cycle >= ready_at and not self._pause())):
                    r_on = port
                    nb = len(self._rd(port, "rdata")) // 8
                    a = addr + head_beat * nb
                    self._rd(port, "rdata").value = int.from_bytes(self.mem[a:a + nb], "little")
                    self._rd(port, "rlast").value = int(head_beat == beats - 1)
                elif kind == "w" and not self._pause():
                    w_on = True
            for k in self.readers:
                self._rd(k, "rvalid").value = int(r_on == k)
            d.m_axi2_wready.value = int(w_on)
            b_on = b_held or (bool(bq) and bq[0] <= self.cycle and not self._pause())
            d.m_axi2_bvalid.value = int(b_on)
