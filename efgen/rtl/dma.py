"""Control and memory RTL: the AXI4 read/write DMA engines and the descriptor registers.

:func:`dma_verilog` renders ``templates/rtl/{axi_dma_rd,axi_dma_wr,desc_regs}.v.j2``
into plain Verilog-2005 (file name -> text, byte-identical for the same
:class:`DmaParams`). The rendered values are the *defaults* of the Verilog parameters;
an instantiation may still override them.

The register map of ``desc_regs`` has one source of truth, :data:`REGISTERS`, built here
from :class:`efgen.hls.desc.EfgenDesc` (whose layout ``tests/test_hls_desc.py`` checks
against the C++ compiler's view of ``hls_kernels/efgen_desc.h``). The descriptor window
starting at :data:`DESC_BASE` is the C struct byte for byte (little-endian), so a host
can copy ``bytes(desc)`` into it; :data:`REGISTER_MAP` gives every register's byte
offset by name for host code and tests.

:func:`axi_bursts` is the burst splitter of the engines in Python: the bursts one DMA
command issues (at most ``max_burst`` beats, never crossing a 4 KiB page). The
analytical model and the tests count bursts with it.

Timing of the read engine, measured on Verilator against AxiRam with a pipelined read
latency of L cycles (AR handshake to first R beat; tests/test_rtl_dma.py): a command's
first word leaves the engine L + 7 cycles after its command handshake (2 of them the read
buffer's registered block-RAM read); a burst holds one
of the ``outstanding`` slots for about L + 4 + beats cycles, so back-to-back bursts
stream one beat a cycle when ``outstanding * beats >= L + 4 + beats``, and a load of
``n`` beats in such bursts costs about L + 7 + n cycles, whatever its number of bursts.
An AR also waits for room in the read buffer (OUTSTANDING x MAX_BURST beats, rounded up
to a power of two), which only a consumer slower than the port ever fills.
With fewer slots, bursts cost about (L + 4 + beats) / outstanding cycles each. The
engine accepts at most one command every two cycles.
"""

from __future__ import annotations

import ctypes
import struct
from dataclasses import asdict, dataclass
from typing import NamedTuple

import jinja2

from efgen._version import __version__
from efgen.hls.desc import EfgenDesc
from efgen.resources import data_dir

PAGE_BYTES = 4096       # AXI4: no burst may cross a 4 KiB boundary
AXI_MAX_BEATS = 256     # AXI4 INCR bursts: at most 256 beats


# ------------------------------------------------------------------------ parameters

@dataclass(frozen=True)
class DmaParams:
    """Parameters of the DMA engines (the defaults of the rendered Verilog).

    ``data_width`` - AXI data bus, bits (32, 64 or 128: 1, 2 or 4 FP32 words a beat);
    ``addr_width`` - AXI byte address, bits; command addresses are word addresses of
    ``addr_width - 2`` bits; ``len_width`` - command length field, bits (words);
    ``max_burst`` - longest burst, beats (a power of two, at most 256);
    ``outstanding`` - bursts in flight (issued, last response not yet received).
    """

    data_width: int = 128
    addr_width: int = 32
    len_width: int = 32
    max_burst: int = 256
    outstanding: int = 4

    def __post_init__(self):
        def bad(what, v, how):
            raise ValueError(f"DmaParams.{what}={v!r}: {how}")

        for name, v in asdict(self).items():
            if isinstance(v, bool) or not isinstance(v, int):
                bad(name, v, "must be an integer")
        if self.data_width not in (32, 64, 128):
            bad("data_width", self.data_width, "must be 32, 64 or 128 bits")
        if not 16 <= self.addr_width <= 64:
            bad("addr_width", self.addr_width, "must be between 16 and 64 bits")
        if not 16 <= self.len_width <= 32:
            bad("len_width", self.len_width, "must be between 16 and 32 bits")
        mb = self.max_burst
        if mb < 1 or mb > AXI_MAX_BEATS or mb & (mb - 1):
            bad("max_burst", mb, f"must be a power of two from 1 to {AXI_MAX_BEATS} beats")
        if not 1 <= self.outstanding <= 64:
            bad("outstanding", self.outstanding, "must be between 1 and 64 bursts")

    @property
    def words_per_beat(self) -> int:
        return self.data_width // 32

    @property
    def max_burst_words(self) -> int:
        """Longest burst in words: the ``max_burst`` to give :mod:`efgen.layout`."""
        return self.max_burst * self.words_per_beat

    def verilog_parameters(self) -> dict[str, int]:
        """The Verilog parameter overrides for this parameter set (stable order)."""
        return {"DATA_WIDTH": self.data_width, "ADDR_WIDTH": self.addr_width,
                "LEN_WIDTH": self.len_width, "MAX_BURST": self.max_burst,
                "OUTSTANDING": self.outstanding}


class Burst(NamedTuple):
    addr: int    # byte address of the first beat (beat-aligned)
    beats: int


def axi_bursts(addr_words: int, len_words: int, data_width: int = 128,
               max_burst: int = AXI_MAX_BEATS) -> list[Burst]:
    """The bursts one DMA command (``len_words`` words from word ``addr_words``) issues.

    The command covers ``ceil((addr_words % wpb + len_words) / wpb)`` beats from the
    beat holding its first word (``wpb`` = words per beat); they go out in bursts of
    ``min(beats left, max_burst, beats to the next 4 KiB page)``, exactly as the RTL
    splits them. A zero-length command issues nothing.
    """
    wpb = data_width // 32
    beat_bytes = data_width // 8
    if len_words <= 0:
        return []
    off = addr_words % wpb
    beat = addr_words // wpb
    left = -(-(off + len_words) // wpb)
    page_beats = PAGE_BYTES // beat_bytes
    out = []
    while left:
        n = min(left, max_burst, page_beats - beat % page_beats)
        out.append(Burst(beat * beat_bytes, n))
        beat += n
        left -= n
    return out


# --------------------------------------------------------------------- register map
#
# One map for both builds: the RTL's desc_regs is laid out exactly as Vitis HLS lays out
# the s_axilite bundle of the HLS top (templates/hls/efgen_top.cpp.j2, flow_target
# vivado, ap_ctrl_hs on the same bundle; UG1399 "S_AXILITE Control Register Map"):
# 0x00 AP_CTRL, 0x04 GIE, 0x08 IER, 0x0C ISR, then every argument from 0x10 in argument
# order, each taking ceil(bits / 32) data words and one reserved word. The arguments
# come from the HLS top's source (efgen.rtl.regmap.hls_top_arguments): the descriptor
# struct by value (aggregated: the C struct, padding included, EfgenDesc's ctypes
# layout) and the three m_axi pointers with offset=slave (64-bit address registers).
# The RTL's own registers (STATUS, CYCLES, FAIL_ADDR, ABORT) sit in 0xE0..0xFC, past the
# HLS map but below the 256-byte window its 8-bit s_axilite address decodes, so on the
# HLS build they read 0 and ignore writes instead of aliasing AP_CTRL.

AP_START = 1 << 0             # AP_CTRL bit 0: write 1 to start; reads 1 until accepted
AP_DONE = 1 << 1              # AP_CTRL bit 1: the run ended (clear on read)
AP_IDLE = 1 << 2              # AP_CTRL bit 2: not running
AP_READY = 1 << 3             # AP_CTRL bit 3: ready for the next start (clear on read)
CONTROL_START = AP_START
ISR_DONE, ISR_READY = 1 << 0, 1 << 1   # IER/ISR bits (ISR: toggle on write)
ABORT_BIT = 1 << 0            # ABORT bit 0: write 1 to abort the running descriptor
STATUS_BUSY = 1 << 0          # STATUS bit 0: started and done not yet seen
STATUS_DONE = 1 << 1          # STATUS bit 1: sticky, set by done, cleared by start
STATUS_ERROR = 1 << 2         # STATUS bit 2: sticky, the run ended in error, cleared by start
# STATUS bits 15:8, the first error's code: bits 11:8 a rejected descriptor's
# EfgenConvStatus (hls_kernels/conv_engine.h), or 8 (ERR_RANGE: an address outside the
# AXI address space: START refused), 9 (ABORTED: the host wrote ABORT); for an AXI error
# response, bits 13:12 its RRESP/BRESP (2 SLVERR, 3 DECERR) and bits 15:14 the port
# (0, 1 read, 2 write).
STATUS_REJECT_SHIFT, STATUS_RESP_SHIFT, STATUS_PORT_SHIFT = 8, 12, 14
ERR_RANGE, ERR_ABORTED = 8, 9
# the RTL's FP bias buffer is too small for the descriptor's out_c (layer_seq; the HLS
# engine's EFGEN_CONV_ERR_BIAS is 8, which the RTL's STATUS gives ERR_RANGE)
ERR_BIAS = 10
# a conv descriptor with a restructured-BN flag (FLAG_XF .. FLAG_ADDX) or side record the
# RTL engine does not build (layer_seq; all of them without RtlParams.fuse)
ERR_XF = 11
CONV_STATUS = {1: "ERR_OP", 2: "ERR_GEOMETRY", 3: "ERR_TILING", 4: "ERR_ADDRESS",
               5: "ERR_IFM", 6: "ERR_OFM", 7: "ERR_WBUF",
               ERR_BIAS: "ERR_BIAS (FP with FLAG_BIAS: out_c beyond the RTL's bias buffer)",
               ERR_XF: "ERR_XF (a restructured-BN flag or side record the RTL engine does not build)",
               ERR_RANGE: "ERR_RANGE (an address beyond the AXI address space)",
               ERR_ABORTED: "ABORTED (ABORT written by the host)"}
AXI_RESP = {2: "SLVERR", 3: "DECERR"}


def status_error(status: int, fail_addr: int = 0) -> str | None:
    """The error a STATUS (and FAIL_ADDR) value reports, in words; None without one."""
    if not status & STATUS_ERROR:
        return None
    rej = (status >> STATUS_REJECT_SHIFT) & 0xF
    if rej:
        return f"descriptor rejected: {CONV_STATUS.get(rej, rej)}"
    resp = (status >> STATUS_RESP_SHIFT) & 3
    port = (status >> STATUS_PORT_SHIFT) & 3
    return (f"AXI {AXI_RESP.get(resp, resp)} on {'write' if port == 2 else 'read'} port "
            f"m_axi{port}, burst at byte {fail_addr:#x}")


class Register(NamedTuple):
    name: str      # REGISTER_MAP key
    offset: int    # byte offset
    field: str     # the EfgenDesc field it belongs to ("" for control registers)
    kind: str      # "control", "status", "cycles", "pointer_lo", "pointer_hi", "int32", ...
    doc: str


class DescPort(NamedTuple):
    port: str                # desc_regs output port
    width: int               # bits
    regs: tuple[str, ...]    # register names, least significant word first
    kind: str                # C type of one element
    doc: str


_CTYPE_KIND = {ctypes.c_int32: "int32", ctypes.c_float: "float32", ctypes.c_int64: "int64"}
#: The RTL-only registers, past the HLS map (see above).
RTL_REGISTERS = (
    Register("status", 0xE0, "", "status",
             "bit 0 BUSY, bit 1 DONE (sticky), bit 2 ERROR (sticky), 15:8 error code"),
    Register("cycles", 0xE4, "", "cycles",
             "clock cycles from the start pulse to done (saturates)"),
    Register("fail_addr", 0xE8, "", "status",
             "byte address of the burst of the first AXI error response, bits 31:0"),
    Register("fail_addr_hi", 0xEC, "", "status", "FAIL_ADDR bits 63:32"),
    Register("abort", 0xF0, "", "abort",
             "bit 0 ABORT: write 1 to end the running descriptor (drained, ERROR 9)"),
)


def _build_map() -> tuple[tuple[Register, ...], tuple[DescPort, ...], dict]:
    from efgen.rtl.regmap import hls_top_arguments, vitis_axilite_map

    hls = vitis_axilite_map(hls_top_arguments())
    regs = [
        Register("control", 0x00, "", "control",
                 "AP_CTRL: bit 0 ap_start (W1 to start), 1 ap_done (COR), 2 ap_idle, "
                 "3 ap_ready (COR)"),
        Register("gie", 0x04, "", "gie", "bit 0: global interrupt enable"),
        Register("ier", 0x08, "", "ier", "bit 0 ap_done, bit 1 ap_ready interrupt enable"),
        Register("isr", 0x0C, "", "isr", "bit 0 ap_done, bit 1 ap_ready (toggle on write)"),
    ]
    desc_base = hls["desc"][0]
    for arg in ("gmem_in", "gmem_w", "gmem_out"):
        off = hls[arg][0]
        regs += [Register(f"{arg}_lo", off, "", "pointer_lo",
                          f"{arg}: byte address of the DRAM image on its port, bits 31:0"),
                 Register(f"{arg}_hi", off + 4, "", "pointer_hi", f"{arg} bits 63:32")]
    ports = []
    for field, ctype in EfgenDesc._fields_:
        base = desc_base + getattr(EfgenDesc, field).offset
        if issubclass(ctype, ctypes.Array):
            elems = [(f"{field}{i}", ctype._type_, i * ctypes.sizeof(ctype._type_))
                     for i in range(ctype._length_)]
            elem_type = ctype._type_
        else:
            elems = [(field, ctype, 0)]
            elem_type = ctype
        kind = _CTYPE_KIND[elem_type]
        names = []
        for ename, etype, eoff in elems:
            if ctypes.sizeof(etype) == 8:
                names += [f"{ename}_lo", f"{ename}_hi"]
                regs += [Register(f"{ename}_lo", base + eoff, field, "int64_lo",
                                  f"{ename} bits 31:0"),
                         Register(f"{ename}_hi", base + eoff + 4, field, "int64_hi",
                                  f"{ename} bits 63:32")]
            else:
                names.append(ename)
                regs.append(Register(ename, base + eoff, field, kind, ename))
        width = ctypes.sizeof(elem_type) * 8
        doc = (f"{field}[{len(elems)}] ({kind}), element i at bits [{width}*i +: {width}]"
               if issubclass(ctype, ctypes.Array) else f"{field} ({kind})")
        ports.append(DescPort(f"desc_{field}", ctypes.sizeof(ctype) * 8, tuple(names), kind, doc))
    hls_end = max(off + 4 * words for off, words in hls.values())
    assert all(r.offset >= hls_end for r in RTL_REGISTERS) and \
        max(r.offset for r in RTL_REGISTERS) < 1 << max(hls_end - 1, 1).bit_length()
    regs += RTL_REGISTERS
    regs.sort(key=lambda r: r.offset)
    offsets = [r.offset for r in regs]
    assert len(set(offsets)) == len(offsets) and all(o % 4 == 0 for o in offsets)
    return tuple(regs), tuple(ports), hls


REGISTERS, DESC_PORTS, HLS_MAP = _build_map()
REGISTER_MAP: dict[str, int] = {r.name: r.offset for r in REGISTERS}
DESC_BASE = HLS_MAP["desc"][0]   # byte offset of the EfgenDesc window
#: Bits of the AXI4-Lite byte address that desc_regs decodes.
AXIL_ADDR_WIDTH = max(r.offset for r in REGISTERS).bit_length()


def pointer_register_writes(base_bytes: int) -> list[tuple[int, int]]:
    """``(byte offset, 32-bit value)`` of the three m_axi pointer registers, each set to
    ``base_bytes`` (the DRAM image's byte address; descriptor addresses are word offsets
    from it, as in the HLS build)."""
    out = []
    for arg in ("gmem_in", "gmem_w", "gmem_out"):
        out += [(REGISTER_MAP[f"{arg}_lo"], base_bytes & 0xFFFFFFFF),
                (REGISTER_MAP[f"{arg}_hi"], (base_bytes >> 32) & 0xFFFFFFFF)]
    return out


def desc_register_writes(desc: EfgenDesc) -> list[tuple[int, int]]:
    """``(byte offset, 32-bit value)`` of every descriptor register for ``desc``."""
    raw = bytes(desc)
    out = []
    for r in REGISTERS:
        if r.field:
            k = r.offset - DESC_BASE
            out.append((r.offset, struct.unpack_from("<I", raw, k)[0]))
    return out


# ------------------------------------------------------------------------ rendering

def _env() -> jinja2.Environment:
    # Verilog replications are written "{ {n{x}}, y}" in the templates: "{{" opens Jinja.
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(data_dir("templates") / "rtl")),
                              undefined=jinja2.StrictUndefined, trim_blocks=True,
                              lstrip_blocks=True, keep_trailing_newline=True,
                              autoescape=False)


DMA_FILES = ("axi_dma_rd.v", "axi_dma_wr.v", "desc_regs.v")


def dma_verilog(params: DmaParams | None = None) -> dict[str, str]:
    """File name -> Verilog text of the two DMA engines and the register file."""
    p = params if params is not None else DmaParams()
    if not isinstance(p, DmaParams):
        raise TypeError(f"dma_verilog expects DmaParams, got {type(p).__name__}")
    aw = AXIL_ADDR_WIDTH
    access = {"control": "RW", "gie": "RW", "ier": "RW", "isr": "RW", "status": "R",
              "cycles": "R", "abort": "W"}
    regs = [dict(r._asdict(), const=f"{aw - 2}'d{r.offset // 4}",
                 ident=f"REG_{r.name.upper()}", access=access.get(r.kind, "RW"))
            for r in REGISTERS]
    ctx = {"version": __version__, "p": p, "regs": regs,
           "desc_regs": [r for r in regs if r["field"]],
           "ptr_regs": [r for r in regs if r["kind"].startswith("pointer")],
           "ports": [dict(d._asdict(), reg_idents=[f"r_{n}" for n in d.regs]) for d in DESC_PORTS],
           "axil_addr_width": aw, "desc_base": DESC_BASE}
    env = _env()
    return {name: env.get_template(f"{name}.j2").render(**ctx) for name in DMA_FILES}
