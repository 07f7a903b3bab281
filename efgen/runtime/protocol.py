"""The host's register protocol for the reference RTL's ``efgen_top``, written once.

One descriptor run, the same on the RTL build and on the Vitis HLS build: write the
descriptor window (``bytes(desc)``, the C struct of ``hls_kernels/efgen_desc.h``, at
:data:`efgen.rtl.dma.DESC_BASE`, the HLS top's ``desc`` argument) and the three m_axi
pointers (``gmem_in``, ``gmem_w``, ``gmem_out``: the DRAM image's byte address), set
AP_CTRL.ap_start, poll AP_CTRL until ap_done (clear on read), then read STATUS: on the
RTL it holds DONE, ERROR and the error code (with FAIL_ADDR), on the HLS build it reads
0 (no error reported: the HLS top has no such register), and CYCLES (0 on the HLS
build). The register map is :data:`efgen.rtl.dma.REGISTERS`, derived from the HLS top's
s_axilite arguments (:mod:`efgen.rtl.regmap`); the RTL's ``desc_regs`` is generated
from it.

The sequence is a *generator of bus operations* (:class:`Write`, :class:`Read`,
:class:`Wait`, :class:`ToDevice`, :class:`FromDevice`): whoever executes it owns the bus.
:func:`run_sync` executes it against a PYNQ ``MMIO``/``DefaultIP`` (``read(offset)``,
``write(offset, value)``) and a ``pynq.allocate`` buffer (``flush``/``invalidate``);
``efgen.cosim.step`` executes the very same generators inside cocotb against the RTL
(cocotbext-axi's ``AxiLiteMaster`` and ``AxiRam``). So the board driver's sequencing is
what co-simulation runs in ``make test``.

Addresses: descriptors carry DRAM *word* offsets (``a[0..7]``; 0 means "absent", and
a program's regions start at word 1024) from the pointer registers, which hold the
image buffer's physical byte address (``base_bytes``), as the HLS top's pointer
arguments do. :func:`rebase` (adding a word address to every present address) remains
for hosts that keep the pointers at 0.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Generator

from efgen.hls.desc import EfgenDesc
from efgen.rtl.dma import (
    ABORT_BIT,
    AP_DONE,
    AP_START,
    REGISTER_MAP,
    STATUS_DONE,
    STATUS_ERROR,
    desc_register_writes,
    pointer_register_writes,
    status_error,
)

CONTROL, STATUS, CYCLES, FAIL_ADDR, FAIL_ADDR_HI, ABORT = (
    REGISTER_MAP[k] for k in ("control", "status", "cycles", "fail_addr", "fail_addr_hi",
                              "abort"))
POLL_CYCLES = 32                 # clock cycles between two STATUS reads
TIMEOUT_CYCLES = 1 << 32         # CYCLES saturates at 2**32 - 1: no run is longer


@dataclass(frozen=True)
class Write:
    """Write ``value`` (32 bits) to the AXI4-Lite register at byte ``offset``."""

    offset: int
    value: int


@dataclass(frozen=True)
class Read:
    """Read the AXI4-Lite register at byte ``offset``; the executor sends the value."""

    offset: int


@dataclass(frozen=True)
class Wait:
    """Let ``cycles`` clock cycles pass (a poll interval)."""

    cycles: int


@dataclass(frozen=True)
class ToDevice:
    """The host's DRAM image must be visible to the device (cache flush / copy in)."""


@dataclass(frozen=True)
class FromDevice:
    """The device's writes must be visible to the host (cache invalidate / copy out)."""


@dataclass(frozen=True)
class RunResult:
    status: int
    cycles: int
    fail_addr: int = 0


class DeviceError(RuntimeError):
    """The device reported an error (a rejected descriptor, an AXI error response) or did
    not finish; the message names the descriptor and the decoded STATUS."""


def rebase(desc: EfgenDesc, base_words: int) -> EfgenDesc:
    """A copy of ``desc`` with ``base_words`` added to every present (non-zero) address."""
    d = EfgenDesc.from_buffer_copy(bytes(desc))
    if base_words:
        for i in range(len(d.a)):
            if d.a[i]:
                d.a[i] += base_words
    return d


def run_descriptor(desc: EfgenDesc, tag: str = "descriptor",
                   timeout_cycles: int = TIMEOUT_CYCLES, base_bytes: int = 0
                   ) -> Generator[Any, Any, RunResult]:
    """Run one descriptor (see the module docstring); returns its STATUS and CYCLES (both
    0 on the HLS build). ``base_bytes``: the DRAM image's byte address, written to the
    three pointer registers.

    Raises :class:`DeviceError` on ERROR, on a STATUS without DONE (an RTL that ended a
    run it did not report), or when ap_done has not come after ``timeout_cycles``: then
    ABORT is written first (the RTL drains its bursts and stops; the HLS build ignores
    it)."""
    for off, val in desc_register_writes(desc):
        yield Write(off, val)
    for off, val in pointer_register_writes(base_bytes):
        yield Write(off, val)
    yield Write(CONTROL, AP_START)
    waited = 0
    while True:
        yield Wait(POLL_CYCLES)
        waited += POLL_CYCLES
        ctrl = int((yield Read(CONTROL)))       # ap_done clears on this read
        if ctrl & AP_DONE:
            break
        if waited >= timeout_cycles:
            yield Write(ABORT, ABORT_BIT)
            raise DeviceError(f"{tag}: no ap_done after {waited:,} cycles (AP_CTRL "
                              f"{ctrl:#x}): the device hangs; ABORT written")
    status = int((yield Read(STATUS)))
    if status & STATUS_ERROR:
        fail = int((yield Read(FAIL_ADDR))) | int((yield Read(FAIL_ADDR_HI))) << 32
        raise DeviceError(f"{tag}: {status_error(status, fail)} (STATUS {status:#x})")
    if status and not status & STATUS_DONE:
        raise DeviceError(f"{tag}: ap_done with STATUS {status:#x} not DONE: the "
                          "device's registers disagree")
    cycles = int((yield Read(CYCLES)))
    return RunResult(status, cycles)


def run_sync(ops: Generator, mmio, buffer=None, clock_mhz: float = 100.0):
    """Execute a generator of bus operations against a memory-mapped device: ``mmio``
    has ``read(offset)`` and ``write(offset, value)`` (a PYNQ ``MMIO`` or ``DefaultIP``);
    ``buffer`` (a ``pynq.allocate`` array) is flushed before the device runs and
    invalidated after. Returns the generator's return value."""
    value = None
    try:
        while True:
            op = ops.send(value)
            value = None
            if isinstance(op, Write):
                mmio.write(op.offset, int(op.value) & 0xFFFFFFFF)
            elif isinstance(op, Read):
                value = int(mmio.read(op.offset))
            elif isinstance(op, Wait):
                time.sleep(op.cycles / (clock_mhz * 1e6))
            elif isinstance(op, ToDevice):
                if hasattr(buffer, "flush"):
                    buffer.flush()
            elif isinstance(op, FromDevice):
                if hasattr(buffer, "invalidate"):
                    buffer.invalidate()
            else:
                raise TypeError(f"unknown bus operation {op!r}")
    except StopIteration as stop:
        return stop.value


__all__ = ["CONTROL", "STATUS", "CYCLES", "FAIL_ADDR", "FAIL_ADDR_HI", "ABORT", "Write", "Read", "Wait", "ToDevice",
           "FromDevice", "RunResult", "DeviceError", "rebase", "run_descriptor", "run_sync"]
