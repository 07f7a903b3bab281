"""The reference RTL of a Design: the whole accelerator for one layer-phase at a time.

:func:`rtl_verilog` renders ``templates/rtl/*.v.j2`` for one :class:`RtlParams` into
plain Verilog-2005 (file name -> text, byte-identical for equal parameters), top module
``efgen_top``: the AXI4-Lite descriptor registers (``desc_regs``), the layer sequencer
(``layer_seq``: DRAM tile loops, address generators, ping-pong handshakes, weight
loads), the tile loader/storer (``tile_rd``, ``tile_wr``: whole beats in the reshaped
layout, ``load_words``/``store_words``), the engine core
(:mod:`efgen.rtl.engine`), the SGD write-back (``sgd_wb``, :mod:`efgen.rtl.sgd`), the vector unit
(``vec_unit``: the element-wise descriptors RELU_FP/BP, ADD_FP, ERRSUM), the batchnorm
unit (``bn_unit``, :mod:`efgen.rtl.bn`: BN_FP, BN_BP, BN_FIN), the pooling unit (``pool_unit``:
MAXPOOL/AVGPOOL/SHORTCUT/FLATTEN FP and BP) and
three AXI4 DMA engines (:mod:`efgen.rtl.dma`; ``axi_width``-bit data: 1, 2 or 4 FP32 words
a beat, the board's HP port width; beside a wider port, ``beat_unpack``/``beat_pack``
adapt the beats to the sequencer's, the SGD write-back's and the vector unit's word-serial
streams).

:func:`rtl_params` derives the RTL's parameters from a :class:`~efgen.design.Design`:
the buffers are the Design's, rounded up to powers of two; feature maps are stored in the
Design's layout (``reshaped``: blocks of T = gcd(Tm, Tn) lanes; ``nchw``); weights are
always blocked (Tm, Tn) - a layout the host converts to once when it loads a model.

Restrictions the generator checks (:func:`check_params`), each a one-line error: the
lane block T must be a power of two, strides 1, 2 or 4, every geometry below 2**16.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from efgen._version import __version__
from efgen.errors import EfgenError
from efgen.rtl.dma import (AXIL_ADDR_WIDTH, DESC_PORTS, ERR_ABORTED, ERR_RANGE, DmaParams,
                           dma_verilog)
from efgen.rtl.engine import (PIXEL_LANES, RAM_LATENCY, WLOAD_LATENCY, EngineParams,
                              _wload_bank_clash, engine_verilog, pack_table, wu_copies)
from efgen.rtl.fpu import ADD_LATENCY, MUL_LATENCY, _env
# the bias buffers' sizes live with sgd_wb, which reads the WU bias RAM (no import cycle)
from efgen.rtl.sgd import BIAS_BUF, WUB_SLOTS, wub_addr_bits  # noqa: F401

LAYOUTS = ("reshaped", "nchw")
TOP = "efgen_top"
#: vec_unit's output FIFO (words; a power of two): room for every word in its adder
VEC_FIFO = 16
#: the descriptor ops vec_unit runs (efgen.hls.desc.OPS): RELU_FP, RELU_BP, ADD_FP, ERRSUM
VEC_OPS = ("RELU_FP", "RELU_BP", "ADD_FP", "ERRSUM")
#: the batchnorm ops the host hands bn_unit (efgen.rtl.bn): BN_FP, BN_BP (the unfused
#: step's), and the restructured BN's BN_FIN and BN_BP with FLAG_SUMS / FLAG_DXK (a fused
#: build's step, RtlParams.fuse; tests/test_rtl_bn.py)
BN_OPS = ("BN_FP", "BN_BP", "BN_FIN")
#: the descriptor ops pool_unit runs: pooling, the option-A shortcut and flatten, FP and BP
POOL_OPS = ("MAXPOOL_FP", "MAXPOOL_BP", "AVGPOOL_FP", "AVGPOOL_BP", "SHORTCUT_FP", "SHORTCUT_BP",
            "FLATTEN_FP", "FLATTEN_BP")
#: pool_unit's row buffer (words; a power of two): the source rows of one output row
#: (flatten: one (image, channel block) plane of H*W*T words)
POOL_BUF = 2048


def rtl_adds_bias(out_c: int) -> bool:
    """Whether the RTL does a conv's bias itself: FP's add (tile_wr's store lanes) and WU's
    gradient and its SGD (layer_seq's bias RAM, sgd_wb's bias pass), up to BIAS_BUF output
    channels; a wider layer's bias stays on the host (the RTL rejects it, ERR_BIAS)."""
    return int(out_c) <= BIAS_BUF


def bias_addr_bits(p) -> int:
    """Address bits of tile_wr's bias buffer: rows of ``store_words`` words."""
    return max(1, (BIAS_BUF // p.store_words - 1).bit_length())


def store_buf_beats(p) -> int:
    """Beats of tile_wr's SE and SK buffers (RtlParams.fuse): a whole store tile, an OFM
    half's Tm x ofm_depth words in beats of ``store_words`` (BP's error operand and the BN
    sums' y, read before the store in its order)."""
    return p.engine.tm * p.engine.ofm_depth // p.store_words


def _pow2_at_least(n: int, lo: int = 16) -> int:
    return max(lo, 1 << max(0, math.ceil(math.log2(max(1, n)))))


@dataclass(frozen=True)
class RtlParams:
    """Everything the generated RTL depends on.

    ``engine``: the core (Tm, Tn, buffer depths per bank and half, FP32 impl);
    ``layout``: feature-map layout in DRAM; ``max_burst`` (beats)/``outstanding``: the
    DMA engines; ``addr_width``: AXI address bits (the board's PS:
    :data:`efgen.frontend.boards.PS_ADDR_BITS`, 32 to 63); ``axi_width``: AXI data bits
    (32, 64 or 128: the board's ``axi.width_bits``).
    """

    engine: EngineParams
    layout: str = "reshaped"
    max_burst: int = 256
    outstanding: int = 8
    addr_width: int = 32
    axi_width: int = 32
    #: the restructured BN's fused datapath: the side record (FLAG_XF) in layer_seq, the
    #: FP/WU load transform (record LK1, LRELU) before the IFM banks, BN BP dx in the loads
    #: (record LMODE 1: CONV_BP's input, CONV_WU's error tiles; y on m_axi2's read channel,
    #: which only this build has), the FP store's BN sums (FLAG_STATS) on tile_wr's lanes,
    #: and the BP store's mask recomputed from a fused BN's input (record MK) with the BN BP
    #: sums (FLAG_STATS on CONV_BP) and its operands read in passes before each store (record
    #: SE: another sender's error; SK: the sums' y); off, every fused descriptor is
    #: rejected (ERR_XF) and the RTL is the unfused one
    fuse: bool = False

    def __post_init__(self):
        if self.axi_width not in (32, 64, 128):
            raise ValueError(f"RtlParams.axi_width={self.axi_width!r}: expected 32, 64 or 128 bits")
        if not 32 <= self.addr_width <= 63:
            raise ValueError(f"RtlParams.addr_width={self.addr_width!r}: expected 32 to 63 bits")
        if self.layout not in LAYOUTS:
            raise ValueError(f"RtlParams.layout={self.layout!r}: expected one of {LAYOUTS}")
        if self.engine.wl_words not in (1, self.wpb):
            raise ValueError(f"RtlParams: engine.wl_words={self.engine.wl_words} must be 1 or "
                             f"the words of an AXI beat ({self.wpb})")
        if self.store_words > 1 and self.engine.wl_words != self.wpb:
            # (T a multiple of the beat puts a beat's words in distinct weight banks too)
            raise ValueError(f"RtlParams: whole-beat stores take their BP mask tiles as whole "
                             f"beats on port 1, engine.wl_words={self.engine.wl_words} must "
                             f"be {self.wpb}")
        tl = self.tl
        if tl & (tl - 1):
            raise ValueError(f"RtlParams: lane block T = gcd({self.engine.tm}, "
                             f"{self.engine.tn}) = {tl} is not a power of two")

    @property
    def tm(self) -> int:
        return self.engine.tm

    @property
    def pack(self) -> bool:
        """Issue 13's first-layer tap packing (EngineParams.pack): an FP or WU conv job with
        K > 1, not image-major and 2 * in_c <= Tn carries taps = min(K*K, Tn // in_c)
        kernel offsets side by side in the reduction lanes (layer_seq decides it from the
        descriptor, as conv_engine.h's make_job; no descriptor field). Off, every file is
        the unpacked RTL's, byte for byte."""
        return self.engine.pack

    @property
    def tn(self) -> int:
        return self.engine.tn

    @property
    def tl(self) -> int:
        """Words per position of a feature map: T lanes (reshaped) or 1 (NCHW)."""
        return math.gcd(self.tm, self.tn) if self.layout == "reshaped" else 1

    @property
    def wpb(self) -> int:
        """FP32 words an AXI beat carries."""
        return self.axi_width // 32

    @property
    def load_words(self) -> int:
        """Words the tile loader (tile_rd) writes a cycle: a whole beat (``wpb`` words, to
        ``wpb`` IFM/OFM banks at one address) in the reshaped layout when a position's TL
        words fill whole beats; else one (NCHW runs: one channel, one bank)."""
        return self.wpb if self.layout == "reshaped" and self.tl % self.wpb == 0 else 1

    @property
    def store_words(self) -> int:
        """Words the tile storer (tile_wr) reads from the OFM banks and hands to the write
        engine a cycle: a whole beat (``wpb`` words of one OFM address, ``wpb`` banks) when
        ``load_words`` is (the same layout facts, mirrored), else one word (beat_pack then
        packs the beats). Its BP mask tiles then come as whole beats too."""
        return self.load_words

    @property
    def impl(self) -> str:
        return self.engine.impl

    @property
    def dma(self) -> DmaParams:
        return DmaParams(data_width=self.axi_width, addr_width=self.addr_width, len_width=32,
                         max_burst=self.max_burst, outstanding=self.outstanding)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["engine"] = self.engine.as_dict()
        return d


def wload_words(tm: int, tn: int, wpb: int) -> int:
    """Words a beat engine_wload takes in efgen_top: the whole beat (``wpb`` words) when
    Tn is a multiple of it (a beat stays in one lane row) and no two words of a beat hit
    one weight bank in BP (:func:`efgen.rtl.engine._wload_bank_clash`), else 1 (the beat
    split into words)."""
    if wpb > 1 and tn % wpb == 0 and not _wload_bank_clash(tm, tn, wpb):
        return wpb
    return 1


def rtl_params_hw(tm: int, tn: int, ifm_depth: int, ofm_depth: int, wbuf_depth: int,
                  kmax: int, max_burst: int, layout: str | None = None,
                  impl: str = "behav", addr_width: int = 32, axi_width: int = 32,
                  wdb: bool = False, fuse: bool = False, pack: bool = False,
                  p: int = 1) -> RtlParams:
    """The RTL of an array (buffers in words per bank, rounded up to powers of two) for a
    net whose largest conv kernel is ``kmax``, with ``addr_width``-bit AXI addresses and
    ``axi_width``-bit data (``wdb``: double-buffered weight chunks, issue 13; ``fuse``:
    the restructured BN's fused datapath, RtlParams.fuse; ``p``: pixel lanes, issue 13).
    ValueError when the RTL cannot build it."""
    eng = EngineParams(tm=tm, tn=tn, ifm_depth=_pow2_at_least(ifm_depth),
                       ofm_depth=_pow2_at_least(ofm_depth),
                       wbuf_depth=_pow2_at_least(max(wbuf_depth, kmax * kmax * wu_copies(1))),
                       kmax=max(kmax, 3), smax=4, impl=impl,
                       wl_words=wload_words(tm, tn, axi_width // 32), wdb=bool(wdb),
                       pack=bool(pack), p=p)
    return RtlParams(engine=eng, layout=layout or "reshaped", max_burst=min(256, max_burst),
                     addr_width=addr_width, axi_width=axi_width, fuse=bool(fuse))


def net_kmax(net) -> int:
    """The largest conv kernel of a parsed net (1 without convs)."""
    return max([l.kernel for l in net if l.op == "conv"] + [1])


def rtl_params(design, layout: str | None = None, impl: str = "behav") -> RtlParams:
    """The RTL of ``design``: its Tm x Tn and buffers (rounded up to powers of two); a
    fused Design (``hw.fuse``: the restructured-BN program) gets the fused datapath
    (RtlParams.fuse), which runs that program's descriptors."""
    hw = design.hw
    if hw.precision != "fp32":
        raise EfgenError(f"design precision {hw.precision!r}: the reference RTL is FP32 only; "
                         "build with --precision fp32")
    # issue 13: engine_core builds P in PIXEL_LANES (bit-exact with the C++, the model's
    # cycles within the bar: tests/test_rtl_top.py PIX_SETS), tap packing at P = 1 only
    if hw.p not in PIXEL_LANES:
        raise EfgenError(f"the reference RTL builds P in {PIXEL_LANES}, the design has "
                         f"P = {hw.p}", where="--tiles P",
                         fix=f"pick P from {PIXEL_LANES} for rtl/ (--parray with --target "
                             "rtl searches only those)")
    if hw.p > 1 and hw.pack:
        raise EfgenError(f"the reference RTL packs taps at P = 1 only, the design has "
                         f"P = {hw.p} with packing", where="--pack",
                         fix="build without --pack (--no-pack) or with P = 1 for rtl/")
    try:
        return rtl_params_hw(hw.tm, hw.tn, hw.ifm_depth, hw.ofm_depth, hw.wbuf_depth,
                             net_kmax(design.net_ir), hw.max_burst_beats, layout, impl,
                             addr_width=_addr_bits(design.board),
                             axi_width=_axi_bits(design.board), wdb=bool(hw.wdb),
                             fuse=bool(hw.fuse), pack=bool(hw.pack), p=hw.p)
    except ValueError as exc:
        raise EfgenError(f"the reference RTL cannot implement this design: {exc}",
                         fix="pick an array whose gcd(Tm, Tn) is a power of two, e.g. "
                             "--tiles Tm=8,Tn=8") from None


def _addr_bits(board_name: str) -> int:
    from efgen.frontend.boards import PS_ADDR_BITS, load_board
    try:
        return PS_ADDR_BITS[load_board(board_name).family]
    except EfgenError:
        return 32      # a Design whose board is not in the catalogue: the 32-bit default


def pack_qlog(p: RtlParams) -> int:
    """log2 of beat_pack's command-length queue: as many commands as axi_dma_wr queues
    (2**(ceil(log2 OUTSTANDING) + 1))."""
    return max(0, math.ceil(math.log2(p.outstanding))) + 1


#: the load transform's pipeline (RtlParams.fuse; layer_seq): x - mean, * invstd, gamma *,
#: + beta: two adders and two multipliers back to back
XF_DEPTH = 2 * ADD_LATENCY + 2 * MUL_LATENCY
#: BN BP dx in the loads (record LMODE 1, CONV_BP): the same units, then coef * (..)
DX_DEPTH = XF_DEPTH + MUL_LATENCY


def _axi_bits(board_name: str) -> int:
    from efgen.frontend.boards import load_board
    try:
        return load_board(board_name).axi.width_bits
    except EfgenError:
        return 32      # a Design whose board is not in the catalogue: the 32-bit default


def rtl_verilog(p: RtlParams) -> dict[str, str]:
    """File name -> Verilog text of the whole accelerator (top module ``efgen_top``)."""
    e = p.engine
    w = e.widths
    files = dict(engine_verilog(e))
    files.update(dma_verilog(p.dma))
    from efgen.rtl.sgd import sgd_verilog
    # (wdb: W and V share m_axi1, in commands of whole bursts of at most SGD_RPIECE_MAX
    # words: efgen.model.engine counts their bursts)
    from efgen.model.engine import sgd_rpiece
    files.update(sgd_verilog(e, bias_rw=p.load_words, **({"rpiece": sgd_rpiece(p.max_burst * p.wpb)}
                                                          if e.wdb else {})))
    env = _env()
    bw = max(w["IA"] + 1, w["OA"])
    lanes = max(e.tm, e.tn)
    ctx = {"version": __version__, "p": _Ctx(p), "w": w, "bw": bw,
           "lanes": lanes, "lw": max(1, math.ceil(math.log2(lanes + 1))), "tl": p.tl,
           "rw": p.load_words, "ww": p.store_words,
           "cw": 16, "sh_tl": int(math.log2(p.tl)), "prefix": "",
           "wload_latency": WLOAD_LATENCY, "ram_latency": RAM_LATENCY,
           "wu_copies": {k: wu_copies(k) for k in range(1, e.kmax + 1)},
           "dma": p.dma, "axil_aw": AXIL_ADDR_WIDTH,
           "ports": [d._asdict() for d in DESC_PORTS],
           "aw": p.addr_width, "err_range": ERR_RANGE, "err_aborted": ERR_ABORTED,
           "pad30": "" if p.addr_width == 32 else "{ {%d{1'b0}}, " % (p.addr_width - 32),
           "pad30_end": "" if p.addr_width == 32 else "}",
           "bias_words": BIAS_BUF, "baw": bias_addr_bits(p),
           "wub_slots": WUB_SLOTS, "wub_aw": wub_addr_bits(p.load_words),
           "fuse": p.fuse, "mul_latency": MUL_LATENCY,
           "xf_depth": XF_DEPTH, "dx_depth": DX_DEPTH,
           "sb_depth": store_buf_beats(p),
           "sbaw": max(1, (store_buf_beats(p) - 1).bit_length())}
    if p.pack:
        ctx["pack_table"] = pack_table(e)
    for mod in ("tile_rd", "tile_wr", "layer_seq"):
        files[f"{mod}.v"] = env.get_template(f"{mod}.v.j2").render(
            module=mod, add_latency=ADD_LATENCY, **ctx)
    files["vec_unit.v"] = env.get_template("vec_unit.v.j2").render(
        module="vec_unit", add_latency=ADD_LATENCY, fifo_depth=VEC_FIFO,
        fifo_log=VEC_FIFO.bit_length() - 1, **ctx)
    from efgen.rtl.bn import bn_verilog
    files.update(bn_verilog(ctx))
    files["pool_unit.v"] = env.get_template("pool_unit.v.j2").render(
        module="pool_unit", add_latency=ADD_LATENCY, fifo_depth=VEC_FIFO,
        fifo_log=VEC_FIFO.bit_length() - 1, buf_words=POOL_BUF,
        buf_log=POOL_BUF.bit_length() - 1, **ctx)
    if p.wpb > 1:
        # the beat adapters (sgd_wb's sgd_fifo queues beat_pack's command lengths)
        for mod in ("beat_unpack", "beat_pack"):
            files[f"{mod}.v"] = env.get_template(f"{mod}.v.j2").render(
                module=mod, version=__version__, wpb=p.wpb, lnw=int(math.log2(p.wpb)),
                qlog=pack_qlog(p))
    files[f"{TOP}.v"] = env.get_template("efgen_top.v.j2").render(module=TOP, **ctx)
    return files


class _Ctx:
    """Template view of RtlParams: engine fields plus layout facts."""

    def __init__(self, p: RtlParams):
        self._p = p

    def __getattr__(self, name):
        if name in ("layout", "tl", "tm", "tn", "impl", "wpb", "fuse", "pack"):
            return getattr(self._p, name)
        return getattr(self._p.engine, name)
