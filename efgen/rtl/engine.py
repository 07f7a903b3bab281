"""The compute core of the unified Tm x Tn engine, tile level (no DRAM): RTL + models.

:func:`engine_verilog` renders ``templates/rtl/engine_*.v.j2`` for one
:class:`EngineParams` into plain Verilog-2005 (file name -> text; the FP32 units of
:mod:`efgen.rtl.fpu` included), with top module ``engine_core``:

* on-chip buffers, all simple dual-port synchronous RAMs (``engine_ram``: one write
  port, one read port, registered read plus the block RAM's output register, two
  cycles, :data:`RAM_LATENCY`), which yosys maps to block RAM:

  - IFM: ``Tn`` banks of ``2 * ifm_depth`` words, ping-pong halves selected by the
    address MSB; the loader writes one half while the engine reads the other.
  - OFM: ``Tm`` banks x two halves of ``ofm_depth`` words (two RAMs per bank, so that
    the engine can read-modify-write one half while the store path reads the other).
    FP/BP: output accumulators; WU: the error tile.
  - weights: ``Tm * Tn`` banks of ``wbuf_depth`` words, one copy. FP/BP: a chunk of
    weights; WU: gradient accumulators.
* the ``Tm x Tn`` FP32 MAC array (``engine_array``): ``Tm * Tn`` multipliers and
  ``Tm * Tn`` adders. FP/BP: per output lane ``m``, ``Tn - 1`` adders form the adder
  tree over the ``Tn`` products (:func:`adder_tree`) and the last one accumulates into
  the OFM. WU: every adder is the accumulator of its own ``(m, n)`` lane.
* the tile controller (``engine_ctrl``), the weight-load path (``engine_wload``: DRAM
  stream -> banks, with flip + transpose for BP) and the store path (raw, ReLU clamp,
  ReLU-mask).

Accumulation and the loop-carried dependence
--------------------------------------------
An accumulator update takes ``ACC_DIST = RAM_LATENCY + ADD_LATENCY + 1`` cycles from
the read of the old value to the first cycle in which a read returns the new one (the
two RAM read cycles, the adder, one write cycle), so two updates of one accumulator must be issued
at least ``ACC_DIST`` cycles apart. No forwarding paths: the loop order hides it.

* FP/BP (``conv``): kernel offsets ``(i, j)`` outermost, then the ``tr x tc`` pixels
  of the block: the ``P = tr*tc`` pixel partial sums are interleaved in the OFM
  buffer, and each is updated once per ``(i, j)`` pass, ``max(P, ACC_DIST)`` cycles
  apart. Blocks with ``P < ACC_DIST`` pad each pass but the last with idle cycles.
* WU: pixels outermost, ``(i, j)`` innermost: the ``K*K`` gradient words of a lane are
  updated round robin. For ``K*K < ACC_DIST`` (K = 1, 2) each gradient word keeps
  ``G = ceil(ACC_DIST / (K*K))`` partial sums (:func:`wu_copies`), pixel ``p``
  updating copy ``p % G``: the gradient is the sum of the copies (in copy order,
  :func:`wu_gradient`), formed once per batch by the write-back; a gradient tile
  takes ``G*K*K`` words per weight bank. A first block
  (``acc_init``) with fewer than ``G`` pixels runs ``G`` pixel slots (the extra ones
  multiply zeros) so that every copy is initialised.

Cycle counts, exact (``start`` sampled in cycle t0, ``done`` high for one cycle in
t0 + cycles; :func:`block_cycles`), with ``P = tr*tc``, ``ACC_DIST = 8``::

    conv (FP, BP): cycles = (K*K - 1) * max(P, ACC_DIST) + P + depth_conv
    wu:            cycles = K*K * (max(P, G) if acc_init else P) + depth_wu
    depth_conv = 2 (RAM read, output register) + MUL_LATENCY (4)
                 + ADD_LATENCY * ceil(log2 Tn) (tree) + ADD_LATENCY (5, accumulate)
                 + 1 (write, then done) = 12 + 5*ceil(log2 Tn)
    depth_wu   = 2 + MUL_LATENCY + ADD_LATENCY + 1 = 12

(issue 19 added the RAM output register: before it, RAM_LATENCY was 1, ACC_DIST 7 and
the depths 11 + 5*ceil(log2 Tn) and 11)

so for ``P >= ACC_DIST`` (and WU blocks that are not a first block of fewer than G
pixels) a block takes exactly ``tr*tc*K*K + depth`` cycles, the analytical model's form
with ``mac_depth = depth`` (:func:`pipeline_depth`). A packed block (``EngineParams.pack``, issue 13:
``taps`` kernel offsets side by side in the reduction lanes, :func:`pack_taps`) runs
KP = ceil(K*K / taps) passes where K*K stands above, with G = ceil(ACC_DIST / KP) WU
copies (:func:`issue_cycles` with ``taps``). A new block may start in the cycle
``done`` is high; the next block's first accumulator read comes after the last write.

Pixel lanes (``EngineParams.p``, issue 13): the array is Tm x Tn x P, lane pp of a cycle on
column c + pp of a tile row (a pixel group; a row of tc pixels is ceil(tc / P) groups, the
last one's lanes past the row's end idle), so a pass issues ``tr * ceil(tc / P)`` groups
where P = tr*tc stands above (:func:`pixel_groups`). conv: a tree over n and an accumulator
per (pp, m), roundings as at P = 1. WU: the P products of a gradient word pass the adder
tree over P (pairs (0,1), (2,3), ...) in front of its accumulator, ``ADD_LATENCY *
log2(P)`` more cycles (``depth_wu = 12 + 5*log2(P)``); copies count groups. Buffers: the
IFM keeps P/2 copies x 2 halves of engine_ram2 (a read/write and a read port, the half
being computed read-only), the OFM P RAMs of ofm_depth/P a bank and half (pixel x -> RAM
x % P, address x / P; the external write port and the store path address one pixel as
before), the weight buffer is shared.

Usage rules the RTL does not check: ``1 <= K <= kmax``, ``1 <= S <= smax``, ``tr*tc <=
ofm_depth``, the IFM tile (row pitch ``in_w``) fits in ``ifm_depth`` words, weight and
gradient regions fit in ``wbuf_depth``; while busy the engine owns IFM half
``cfg_ifm_half``, OFM half ``cfg_ofm_half`` and the whole weight buffer (weight loads
and weight-buffer reads only when idle).

Bit-exact models: :func:`conv_block` and :func:`wu_block` perform the same sequence of
float32 roundings as the RTL (numpy for ``impl="behav"``, :mod:`efgen.golden.ftz` for
``"synth"``); :func:`wload_placement` is the weight-load path in Python.
"""

from __future__ import annotations

import functools

import math
from dataclasses import asdict, dataclass

import numpy as np

from efgen._version import __version__
from efgen.rtl.fpu import ADD_LATENCY, FTZ_IMPLS, IMPLS, MUL_LATENCY, _env, fp_units_verilog

RAM_LATENCY = 2                      # synchronous read + the block RAM's output register
ACC_DIST = RAM_LATENCY + ADD_LATENCY + 1   # read, add, write of one accumulator (cycles)
# engine_wload: cycles from a weight beat (in_valid) to its bank write leaving the
# registers: five pipeline stages (offsets, constant div/mod, BP indices, row product,
# address) and the bank registers. Before pipelining (efgen < issue 14) it was 1.
WLOAD_LATENCY = 6
ST_RAW, ST_RELU, ST_MASK = 0, 1, 2   # store-path operations
# engine_ctrl replicates the mode/busy/enable selects once per lane group of REP_COLS
# columns of a row (issue 19: one flip-flop drove every lane's muxes); EngineParams.rep_cols.
REP_COLS = 4
# issue 13: the pixel-lane counts P the engine is built for (EngineParams.p)
PIXEL_LANES = (1, 2, 4)


def _clog2(n: int) -> int:
    return max(1, math.ceil(math.log2(n))) if n > 1 else 1


def _is_pow2(n: int) -> bool:
    return n >= 1 and n & (n - 1) == 0


@dataclass(frozen=True)
class EngineParams:
    """Parameters of one generated engine core.

    ``ifm_depth``/``ofm_depth``: words per bank per ping-pong half; ``wbuf_depth``:
    words per weight bank (powers of two). ``kmax``/``smax``: largest kernel and stride
    the controller's counters hold. ``wl_words``: words per weight-load beat (divides
    ``tn``, and no two words of a beat hit one bank in BP).
    ``impl``: FP32 unit implementation (:data:`efgen.rtl.fpu.IMPLS`).
    ``wdb`` (issue 13): the weight buffer holds two chunks (two RAMs of ``wbuf_depth``
    words a bank, one a chunk bank): engine_wload writes one bank (``wl_bank``) while the
    array computes from the other (``cfg_w_bank``); conv blocks leave the weight RAMs'
    write port to the loader while busy. A WU block accumulates into bank ``cfg_w_bank``
    (chunk k: bank k mod 2) while the read port ``wb_rd`` reads bank ``wb_rd_bank``
    (sgd_wb's write-back of chunk k-1).
    """

    tm: int
    tn: int
    ifm_depth: int = 1024
    ofm_depth: int = 512
    wbuf_depth: int = 512
    kmax: int = 7
    smax: int = 4
    wl_words: int = 1
    impl: str = "behav"
    rep_cols: int = REP_COLS
    wdb: bool = False          # issue 13: two weight banks of wbuf_depth (ping-pong chunks)
    #: issue 13, first-layer tap packing: a block started with cfg_pack whose reduction
    #: channels cfg_rc fill at most half the Tn lanes carries taps = min(K*K, Tn // RC)
    #: kernel offsets side by side in the lanes (:func:`pack_taps`; lane n = t*RC + c holds
    #: channel c at offset q*taps + t of pass q, KP = ceil(K*K / taps) passes, weight /
    #: gradient word (m, n, pass)): per-lane IFM addresses and windows in engine_ctrl, the
    #: packed weight placement in engine_wload. Off, the Verilog is the unpacked one.
    pack: bool = False
    #: issue 13, pixel lanes: the array is Tm x Tn x P, the P lanes on P adjacent output
    #: pixels of a tile row (a pixel group; ceil(tc / P) groups a row, the last partly
    #: idle). conv: each lane has its own adder tree over n and accumulator; WU: the P
    #: products of a gradient word pass an adder tree over P (:func:`adder_tree`) in front
    #: of its accumulator (:func:`wu_block`). 1, 2 or 4, built (engine_array_p), tap
    #: packing at P = 1 only (P > 1 with ``pack`` is refused).
    p: int = 1

    def as_dict(self) -> dict:
        """The fields as a dict; a single weight buffer (``wdb`` false) leaves the key out,
        so a design without ``--weight-db`` writes the rtl.json it wrote before it (and
        ``pack`` likewise)."""
        d = asdict(self)
        if not self.wdb:
            del d["wdb"]
        if not self.pack:
            del d["pack"]
        if self.p == 1:
            del d["p"]
        return d

    @property
    def shape(self) -> str:
        """The array as a user reads it: ``TmxTn``, ``TmxTnxP`` with pixel lanes."""
        return f"{self.tm}x{self.tn}" + (f"x{self.p}" if self.p > 1 else "")

    @property
    def rep_groups(self) -> tuple[int, int]:
        """(lane groups per row, in all) of engine_ctrl's replicated selects."""
        ng = -(-self.tn // self.rep_cols)
        return ng, self.tm * ng

    def __post_init__(self):
        def bad(what, how):
            raise ValueError(f"EngineParams.{what}={getattr(self, what)!r}: {how}")

        if not isinstance(self.wdb, bool):
            bad("wdb", "must be true or false")
        if not isinstance(self.pack, bool):
            bad("pack", "must be true or false")
        if isinstance(self.p, bool) or not isinstance(self.p, int) or self.p not in PIXEL_LANES:
            bad("p", f"expected one of {PIXEL_LANES}")
        if self.p > 1 and self.pack:
            # issue 13: pixel lanes with tap packing (per (pp, n) IFM addresses) are not built
            bad("p", "the engine packs taps at P = 1 only")
        for k in ("tm", "tn", "ifm_depth", "ofm_depth", "wbuf_depth", "kmax", "smax",
                  "wl_words", "rep_cols"):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                bad(k, "must be a positive integer")
        for k in ("ifm_depth", "ofm_depth", "wbuf_depth"):
            if not _is_pow2(getattr(self, k)) or getattr(self, k) < 16:
                bad(k, "must be a power of two >= 16")
        if self.wbuf_depth < max(k * k * wu_copies(k) for k in range(1, self.kmax + 1)):
            bad("wbuf_depth", "must hold the K*K*G gradient words of one WU block "
                "(G = wu_copies(K)) for every K up to kmax")
        if self.impl not in IMPLS:
            bad("impl", f"expected one of {IMPLS}")
        if self.tn % self.wl_words:
            # engine_wload shares its bank registers per row (one beat, one lane row)
            bad("wl_words", "must divide tn")
        clash = _wload_bank_clash(self.tm, self.tn, self.wl_words)
        if clash:
            bad("wl_words", f"two words of one beat would hit one bank in BP ({clash})")

    # ---- derived widths (the Verilog parameters)
    @property
    def widths(self) -> dict[str, int]:
        ia, oa, wa = (_clog2(d) for d in (self.ifm_depth, self.ofm_depth, self.wbuf_depth))
        kw = _clog2(self.kmax + 1)
        return {
            "IA": ia, "OA": oa, "WA": wa,
            "KW": kw, "K2W": 2 * kw,
            "SW": _clog2(self.smax + 1),
            "TW": oa + 1,                     # tr, tc, P <= ofm_depth
            "MVW": _clog2(self.tm + 1), "NVW": _clog2(self.tn + 1),
            "A0W": _clog2(self.tm), "B0W": _clog2(self.tn),
            "LW": _clog2(self.tm * self.tn + self.tm + self.tn + 1),   # lane arithmetic
            "GW": _clog2(wu_copies(1) + 1),
            "DW": _clog2(max(pipeline_depth("conv", self.tn),
                             pipeline_depth("wu", self.tn, self.p)) + 1),
        }


# ------------------------------------------------------------------ structure, timing

def tree_levels(tn: int) -> int:
    return math.ceil(math.log2(tn)) if tn > 1 else 0


def tree_latency(tn: int) -> int:
    return ADD_LATENCY * tree_levels(tn)


@dataclass(frozen=True)
class Tree:
    """The adder tree of one output lane over ``tn`` products.

    Sources are ``("p", n)`` (product of lane n), ``("s", k)`` (output of adder k) and
    ``("d", k)`` (a source delayed by ADD_LATENCY, for the odd one out of a level).
    ``nodes[k] = (a, b)`` are the inputs of adder k (level order); ``delays[k]`` the
    source of delay k; ``root`` the tree's output.
    """

    nodes: tuple
    delays: tuple
    root: tuple
    levels: int


def adder_tree(tn: int) -> Tree:
    """Pairs (0,1), (2,3), ... per level; an odd last element waits one level."""
    cur = [("p", n) for n in range(tn)]
    nodes, delays, levels = [], [], 0
    while len(cur) > 1:
        nxt = []
        for q in range(0, len(cur) - 1, 2):
            nodes.append((cur[q], cur[q + 1]))
            nxt.append(("s", len(nodes) - 1))
        if len(cur) % 2:
            delays.append(cur[-1])
            nxt.append(("d", len(delays) - 1))
        cur = nxt
        levels += 1
    assert len(nodes) == tn - 1 and levels == tree_levels(tn)
    return Tree(tuple(nodes), tuple(delays), cur[0], levels)


def wu_copies(k: int) -> int:
    """Partial sums per gradient word in WU: ``ceil(ACC_DIST / (K*K))``."""
    return max(1, -(-ACC_DIST // (k * k)))


def pack_taps(rc: int, k: int, tn: int) -> int:
    """Kernel offsets a packed block carries side by side in the reduction lanes (1: it
    does not pack): ``min(K*K, Tn // RC)`` when K > 1 and 2*RC <= Tn (conv_engine.h's
    make_job, efgen.model.engine.packed_taps)."""
    if k > 1 and 1 <= rc and 2 * rc <= tn:
        return min(k * k, tn // rc)
    return 1


def kernel_passes(k: int, taps: int = 1) -> int:
    """Passes over the kernel per pixel: K*K, or ceil(K*K / taps) packed."""
    return -(-(k * k) // taps)


def wu_copies_passes(kp: int) -> int:
    """Partial sums per gradient word of a WU block of ``kp`` kernel passes:
    ``ceil(ACC_DIST / kp)`` (wu_copies(K) when kp = K*K)."""
    return max(1, -(-ACC_DIST // kp))


def wu_chunk(mc: int, in_c: int, k: int, tn: int, wbuf_depth: int) -> int:
    """The output-channel blocks a WU weight chunk of the RTL holds: ``mc`` lowered until
    its ``mc * ceil(in_c / Tn) * K*K * G`` gradient words fit ``wbuf_depth`` (at least
    1). A Design's WU tiling is priced with its own accumulation distance (1 for the
    HLS engine, which lowers ``mc`` the same way in hardware, conv_engine.h); the RTL's
    ``G = wu_copies(K)`` partial sums a word can need a smaller chunk, and layer_seq
    rejects one that does not fit (ERR_WBUF) rather than lowering it."""
    per_block = -(-in_c // tn) * k * k * wu_copies(k)
    return max(1, min(mc, wbuf_depth // per_block))


def pipeline_depth(mode: str, tn: int, p: int = 1) -> int:
    """Cycles from the last issue to ``done``: the RAM read, the multiplier, (conv:
    the adder tree over Tn; WU with P pixel lanes: the adder tree over P,) the
    accumulating adder, the write, and done one cycle later."""
    tree = tree_latency(tn) if mode == "conv" else tree_latency(p)
    return RAM_LATENCY + MUL_LATENCY + tree + ADD_LATENCY + 1


def pixel_groups(tr: int, tc: int, p: int = 1) -> int:
    """Issue slots of a block's pixels with ``p`` pixel lanes: ``tr * ceil(tc / p)``."""
    return tr * -(-tc // p)


def issue_cycles(mode: str, k: int, tr: int, tc: int, acc_init: bool = True,
                 taps: int = 1, p: int = 1) -> int:
    """Cycles the controller spends issuing (including idle padding); a packed block
    (``taps`` > 1) runs KP = ceil(K*K / taps) kernel passes instead of K*K; with ``p``
    pixel lanes a pass issues the tr * ceil(tc / p) pixel groups."""
    p = pixel_groups(tr, tc, p)
    kp = kernel_passes(k, taps)
    if mode == "conv":
        return (kp - 1) * max(p, ACC_DIST) + p
    if mode == "wu":
        return kp * (max(p, wu_copies_passes(kp)) if acc_init else p)
    raise ValueError(f"mode {mode!r}: expected 'conv' or 'wu'")


def block_cycles(mode: str, k: int, tr: int, tc: int, tn: int, acc_init: bool = True,
                 taps: int = 1, p: int = 1) -> int:
    """Cycles from ``start`` to ``done`` for one output block (one reduction block).

    ``start`` is sampled in cycle t0, ``done`` is high (one cycle) in cycle
    t0 + block_cycles; a new ``start`` may be given in that same cycle.
    """
    return issue_cycles(mode, k, tr, tc, acc_init, taps, p) + pipeline_depth(mode, tn, p)


def replica_ff(p: "EngineParams") -> int:
    """Flip-flops of the register copies added after efgen's LUT/FF remainder was fitted
    (issue 19, the address fan-out): per row of the array, copies of the accumulator read
    and write addresses (``max(OA, WA)`` bits each), of the accumulator write enable and of
    the weight read address (``WA``), plus engine_ctrl's ``slot_q`` (``WA``); per output
    lane, a copy of the store op (2 bits) where there was one."""
    w = p.widths
    aaw = max(w["OA"], w["WA"])
    return p.tm * (2 * aaw + 1 + w["WA"]) + w["WA"] + 2 * (p.tm - 1)


# ------------------------------------------------------------------ weight load

@functools.lru_cache(maxsize=256)
def _wload_bank_clash(tm: int, tn: int, wl: int) -> str:
    """A BP (a0, b0, beat) for which two words of a beat map to one bank, or ''."""
    for a0 in range(tm):
        for b0 in range(tn):
            for e0 in range(0, tm * tn, wl):
                banks = set()
                for e in range(e0, e0 + wl):
                    mm, nn = divmod(e, tn)
                    bank = ((a0 + nn) % tm) * tn + (b0 + mm) % tn
                    if bank in banks:
                        return f"a0={a0} b0={b0} beat at {e0}"
                    banks.add(bank)
    return ""


@dataclass(frozen=True)
class WloadConfig:
    """Configuration of one weight-load stream: one (m-block, n-block) pair of the
    blocked DRAM layout (``K*K*Tm*Tn`` words, :class:`efgen.layout.WeightLayout`).

    Direct (FP, WU): word ``(i*K+j, mm, nn)`` -> bank ``mm*Tn + nn``, address
    ``base + i*K + j`` (pad lanes are written: they are zeros in DRAM).
    BP (``bp``): ``m = m_base + mm``, ``n = n_base + nn`` -> bank
    ``(n % Tm)*Tn + m % Tn``, address ``((n//Tm - ob_first)*nbred + m//Tn)*K*K +
    (K*K-1 - (i*K+j))`` (flipped, transposed); skipped when ``mm >= m_lim``,
    ``nn >= n_lim`` (pad lanes) or ``n//Tm`` is outside ``[ob_first, ob_first +
    ob_count)``. The RTL gets ``n_base`` and ``m_base`` as ``a0 = n_base % Tm``,
    ``q0 = n_base // Tm``, ``b0 = m_base % Tn``, ``rb0 = m_base // Tn``.
    """

    bp: bool
    k: int
    base: int = 0
    a0: int = 0
    q0: int = 0
    b0: int = 0
    rb0: int = 0
    ob_first: int = 0
    ob_count: int = 0
    nbred: int = 0
    m_lim: int = 0
    n_lim: int = 0
    #: packed direct load (EngineParams.pack): word (i*K+j, mm, nn), nn < rc -> bank
    #: mm*Tn + t*rc + nn, address base + q, i*K + j = q*taps + t; nn >= rc dropped
    pack: bool = False
    rc: int = 0

    @staticmethod
    def direct(k: int, base: int) -> "WloadConfig":
        return WloadConfig(False, k, base=base)

    @staticmethod
    def packed(k: int, base: int, rc: int) -> "WloadConfig":
        return WloadConfig(False, k, base=base, pack=True, rc=rc)

    @staticmethod
    def bp_pair(tm: int, tn: int, k: int, w_shape, mb: int, nb: int, ob_first: int,
                ob_count: int) -> "WloadConfig":
        """BP load of DRAM pair (mb, nb) of weights ``w_shape = (M, N, K, K)`` into a
        chunk holding BP output blocks (over N, Tm lanes) ``ob_first ..
        ob_first+ob_count-1`` and all ``ceil(M/Tn)`` reduction blocks."""
        M, N = w_shape[0], w_shape[1]
        m_base, n_base = mb * tm, nb * tn
        return WloadConfig(True, k, a0=n_base % tm, q0=n_base // tm, b0=m_base % tn,
                           rb0=m_base // tn, ob_first=ob_first, ob_count=ob_count,
                           nbred=-(-M // tn), m_lim=min(tm, M - m_base),
                           n_lim=min(tn, N - n_base))


def wload_placement(cfg: WloadConfig, tm: int, tn: int):
    """Where each word of the stream lands: a list, in stream order, of
    ``(bank, address)`` or ``None`` (skipped)."""
    out = []
    k2 = cfg.k * cfg.k
    taps = pack_taps(cfg.rc, cfg.k, tn) if cfg.pack else 1
    for kk in range(k2):
        for mm in range(tm):
            for nn in range(tn):
                if taps > 1:
                    q, t = divmod(kk, taps)
                    out.append((mm * tn + t * cfg.rc + nn, cfg.base + q) if nn < cfg.rc
                               else None)
                    continue
                if not cfg.bp:
                    out.append((mm * tn + nn, cfg.base + kk))
                    continue
                m_off, n_off = cfg.b0 + mm, cfg.a0 + nn
                ob, a = cfg.q0 + n_off // tm, n_off % tm
                rb, b = cfg.rb0 + m_off // tn, m_off % tn
                if mm >= cfg.m_lim or nn >= cfg.n_lim or not (
                        cfg.ob_first <= ob < cfg.ob_first + cfg.ob_count):
                    out.append(None)
                    continue
                out.append((a * tn + b, ((ob - cfg.ob_first) * cfg.nbred + rb) * k2
                            + k2 - 1 - kk))
    return out


# ------------------------------------------------------------------ bit-exact models

def _ops(impl: str):
    if impl in FTZ_IMPLS:
        from efgen.golden.ftz import add_ftz, mul_ftz
        return add_ftz, mul_ftz
    if impl == "behav":
        def add(a, b):
            with np.errstate(all="ignore"):
                return np.add(a, b, dtype=np.float32)

        def mul(a, b):
            with np.errstate(all="ignore"):
                return np.multiply(a, b, dtype=np.float32)
        return add, mul
    raise ValueError(f"unknown FP implementation {impl!r}")


def _tree_sum(products: np.ndarray, tn: int, add) -> np.ndarray:
    """Reduce axis 1 (the Tn lanes) of ``products`` in the order of adder_tree(tn)."""
    t = adder_tree(tn)
    sums = []

    def src(s):
        kind, i = s
        if kind == "p":
            return products[:, i]
        return sums[i] if kind == "s" else src(t.delays[i])   # a delay keeps the value

    for a, b in t.nodes:
        sums.append(add(src(a), src(b)))
    return src(t.root)


def _windows(x_tile: np.ndarray, k: int, s: int, tr: int, tc: int) -> np.ndarray:
    """(Tn, K*K, P): x[n, r*S+i, c*S+j] for kernel offset i*K+j and pixel r*tc+c."""
    tn = x_tile.shape[0]
    out = np.empty((tn, k * k, tr * tc), dtype=np.float32)
    for i in range(k):
        for j in range(k):
            out[:, i * k + j] = x_tile[:, i:i + s * (tr - 1) + 1:s,
                                       j:j + s * (tc - 1) + 1:s].reshape(tn, -1)
    return out


def _group_pixels(tr: int, tc: int, p: int) -> list[list]:
    """The pixels of each issue slot with ``p`` pixel lanes: slot ``q = r*ceil(tc/p) + g``
    holds pixel ``r*tc + g*p + pp`` in lane ``pp``, or None past the row's end (the lane
    idles: it multiplies +0 by +0)."""
    gc = -(-tc // p)
    return [[r * tc + g * p + pp if g * p + pp < tc else None for pp in range(p)]
            for r in range(tr) for g in range(gc)]


def _wu_lanes_sum(prods: list, add) -> np.ndarray:
    """The adder tree over the P pixel lanes' products (pairs (0,1), (2,3), ...,
    :func:`adder_tree`), in front of a WU accumulator; P = 1: the product itself."""
    if len(prods) == 1:
        return prods[0]
    shape = prods[0].shape
    stack = np.stack([np.asarray(a, np.float32).reshape(-1) for a in prods], axis=1)
    return np.asarray(_tree_sum(stack, len(prods), add), np.float32).reshape(shape)


def conv_block(w_blk, x_tile, acc, *, k: int, s: int, tr: int, tc: int, m_valid: int,
               n_valid: int, acc_init: bool, impl: str = "behav", p: int = 1) -> np.ndarray:
    """One FP/BP block exactly as the RTL rounds it.

    ``w_blk`` (Tm, Tn, K, K): the weight-buffer words of the block; ``x_tile`` (Tn,
    hin, win): the IFM half; ``acc`` (Tm, P): the OFM half before the block (ignored
    when ``acc_init``). Returns the OFM half after the block, (Tm, P) float32.
    ``p`` pixel lanes (EngineParams.p) do not change the roundings: every pixel keeps its
    own adder tree over n and its own accumulator, updated once per kernel offset in
    offset order; only the issue order (pixel groups) and the cycles change.
    """
    if p not in PIXEL_LANES:
        raise ValueError(f"p={p!r}: expected one of {PIXEL_LANES}")
    add, mul = _ops(impl)
    tm, tn = w_blk.shape[:2]
    p = tr * tc
    lane = (np.arange(tm)[:, None] < m_valid) & (np.arange(tn)[None, :] < n_valid)
    zero = np.float32(0)
    w = np.where(lane[:, :, None, None], w_blk, zero).astype(np.float32)
    win = _windows(np.asarray(x_tile, np.float32), k, s, tr, tc)
    out = np.zeros((tm, p), np.float32) if acc_init else np.array(acc, np.float32)
    for kk in range(k * k):
        xs = np.where(lane[:, :, None], win[None, :, kk, :], zero)       # (Tm, Tn, P)
        prod = mul(w[:, :, kk // k, kk % k][:, :, None], xs)
        tree = _tree_sum(prod, tn, add)                                   # (Tm, P)
        base = np.zeros_like(out) if (acc_init and kk == 0) else out
        out = add(tree, base)
    return out


def wu_block(slots, dy, x_tile, *, k: int, s: int, tr: int, tc: int, m_valid: int,
             n_valid: int, acc_init: bool, impl: str = "behav", p: int = 1) -> np.ndarray:
    """One WU block exactly as the RTL rounds it.

    ``slots`` (Tm, Tn, G, K*K): gradient partial sums before the block (ignored when
    ``acc_init``); ``dy`` (Tm, tr*tc): the error tile; ``x_tile`` (Tn, hin, win). Returns
    the slots after the block.

    With ``p`` pixel lanes (EngineParams.p) the block issues its tr * ceil(tc / P) pixel
    groups (:func:`_group_pixels`); the P products of a gradient word (lanes past the
    row's end: +0 * +0) pass the adder tree over P, whose sum updates copy
    ``group % G``, G = wu_copies(K) (a first block of fewer than G groups runs G slots).
    """
    if p not in PIXEL_LANES:
        raise ValueError(f"p={p!r}: expected one of {PIXEL_LANES}")
    add, mul = _ops(impl)
    tm, tn = dy.shape[0], x_tile.shape[0]
    g = wu_copies(k)
    groups = _group_pixels(tr, tc, p)
    ng = len(groups)
    lane = (np.arange(tm)[:, None] < m_valid) & (np.arange(tn)[None, :] < n_valid)
    win = _windows(np.asarray(x_tile, np.float32), k, s, tr, tc)          # (Tn, K2, tr*tc)
    out = (np.zeros((tm, tn, g, k * k), np.float32) if acc_init
           else np.array(slots, np.float32))
    zero = np.float32(0)
    dy = np.asarray(dy, np.float32)
    runs = max(ng, g) if acc_init else ng
    for q in range(runs):
        prods = []
        for pix in (groups[q] if q < ng else [None] * p):
            ok = lane if pix is not None else np.zeros_like(lane)
            px = 0 if pix is None else pix
            a = np.where(ok[:, :, None], dy[:, px][:, None, None], zero)
            b = np.where(ok[:, :, None], win[None, :, :, px], zero)
            prods.append(mul(a, b))                                       # (Tm, Tn, K2)
        prod = _wu_lanes_sum(prods, add)
        base = np.zeros_like(prod) if (acc_init and q < g) else out[:, :, q % g]
        out[:, :, q % g] = add(prod, base)
    return out


def pack_windows(x_tile, k: int, s: int, tr: int, tc: int, rc: int, taps: int):
    """The IFM words a packed block multiplies: ``(win, tap)``, win (Tn, KP, P) the word
    of bank n at its kernel offset q*taps + n // rc in pass q (+0 where that offset is
    past K*K or the lane is idle, n >= taps*rc), tap (Tn, KP) whether the offset exists."""
    x_tile = np.asarray(x_tile, np.float32)
    tn, k2, kp = x_tile.shape[0], k * k, kernel_passes(k, taps)
    full = _windows(x_tile, k, s, tr, tc)                                # (Tn, K2, P)
    win = np.zeros((tn, kp, tr * tc), np.float32)
    tap = np.zeros((tn, kp), bool)
    for n in range(min(tn, taps * rc)):
        for q in range(kp):
            kk = q * taps + n // rc
            if kk < k2:
                win[n, q], tap[n, q] = full[n, kk], True
    return win, tap


def conv_block_packed(w_blk, x_tile, acc, *, k: int, s: int, tr: int, tc: int, m_valid: int,
                      rc: int, acc_init: bool, impl: str = "behav") -> np.ndarray:
    """One packed FP block exactly as the RTL rounds it (EngineParams.pack): ``w_blk``
    (Tm, Tn, KP) the weight words (m, n, pass); lanes n >= taps*rc and lanes whose
    offset is past K*K multiply +0 by +0. Returns the OFM half (Tm, P)."""
    add, mul = _ops(impl)
    tm, tn = w_blk.shape[:2]
    taps = pack_taps(rc, k, tn)
    win, tap = pack_windows(x_tile, k, s, tr, tc, rc, taps)
    lane = (np.arange(tm)[:, None] < m_valid) & (np.arange(tn)[None, :] < taps * rc)
    zero = np.float32(0)
    out = np.zeros((tm, tr * tc), np.float32) if acc_init else np.array(acc, np.float32)
    for q in range(win.shape[1]):
        ok = lane & tap[None, :, q]                                       # (Tm, Tn)
        a = np.where(ok, np.asarray(w_blk, np.float32)[:, :, q], zero)
        b = np.where(ok[:, :, None], win[None, :, q, :], zero)
        tree = _tree_sum(mul(a[:, :, None], b), tn, add)
        base = np.zeros_like(out) if (acc_init and q == 0) else out
        out = add(tree, base)
    return out


def wu_block_packed(slots, dy, x_tile, *, k: int, s: int, tr: int, tc: int, m_valid: int,
                    rc: int, acc_init: bool, impl: str = "behav", p: int = 1) -> np.ndarray:
    """One packed WU block exactly as the RTL rounds it: ``slots`` (Tm, Tn, G, KP), G =
    wu_copies_passes(KP), gradient word (m, n, pass) of lane n = t*rc + c (channel c,
    offset pass*taps + t). Returns the slots after the block. ``p`` pixel lanes as in
    :func:`wu_block` (pixel groups, the adder tree over P)."""
    if p not in PIXEL_LANES:
        raise ValueError(f"p={p!r}: expected one of {PIXEL_LANES}")
    add, mul = _ops(impl)
    tm, tn = dy.shape[0], x_tile.shape[0]
    taps = pack_taps(rc, k, tn)
    win, tap = pack_windows(x_tile, k, s, tr, tc, rc, taps)               # (Tn, KP, P)
    kp = win.shape[1]
    g = wu_copies_passes(kp)
    groups = _group_pixels(tr, tc, p)
    ng = len(groups)
    lane = (np.arange(tm)[:, None] < m_valid) & (np.arange(tn)[None, :] < taps * rc)
    out = (np.zeros((tm, tn, g, kp), np.float32) if acc_init
           else np.array(slots, np.float32))
    zero = np.float32(0)
    dy = np.asarray(dy, np.float32)
    runs = max(ng, g) if acc_init else ng
    for q in range(runs):
        prods = []
        for pix in (groups[q] if q < ng else [None] * p):
            ok = ((lane[:, :, None] & tap[None]) if pix is not None
                  else np.zeros((tm, tn, kp), bool))
            px = 0 if pix is None else pix
            a = np.where(ok, dy[:, px][:, None, None], zero)
            b = np.where(ok, win[None, :, :, px], zero)
            prods.append(mul(a, b))                                       # (Tm, Tn, KP)
        prod = _wu_lanes_sum(prods, add)
        base = np.zeros_like(prod) if (acc_init and q < g) else out[:, :, q % g]
        out[:, :, q % g] = add(prod, base)
    return out


def wu_gradient(slots, impl: str = "behav") -> np.ndarray:
    """The gradient from its WU partial sums: ((copy0 + copy1) + copy2) + ...,
    the order the write-back adds them in. (Tm, Tn, G, K*K) -> (Tm, Tn, K*K)."""
    add, _ = _ops(impl)
    out = np.asarray(slots[:, :, 0], np.float32)
    for q in range(1, slots.shape[2]):
        out = add(out, np.asarray(slots[:, :, q], np.float32))
    return out


def store_op(op: int, x: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
    """The store path on float32 words: raw, ReLU (``np.maximum(x, 0)``; NaN stays),
    or the ReLU mask (``np.where(y > 0, x, 0)``)."""
    x = np.asarray(x, np.float32)
    if op == ST_RAW:
        return x
    if op == ST_RELU:
        return np.where(np.isnan(x) | (x > 0), x, np.float32(0))
    if op == ST_MASK:
        return np.where(np.asarray(y, np.float32) > 0, x, np.float32(0))
    raise ValueError(f"store op {op}")


# ------------------------------------------------------------------ Verilog

def _zext(expr: str, from_w: int, to_w: int) -> str:
    """Verilog zero-extension of ``expr`` from ``from_w`` to ``to_w`` bits."""
    if to_w < from_w:
        raise ValueError(f"cannot zero-extend {from_w} bits to {to_w}")
    return expr if to_w == from_w else f"{{{{{to_w - from_w}{{1'b0}}}}, {expr}}}"


def _src(s) -> str:
    kind, i = s
    return {"p": f"prod[{i * 32 + 31}:{i * 32}]", "s": f"sum[{i * 32 + 31}:{i * 32}]",
            "d": f"dly{i}_q"}[kind]


def pack_table(p: EngineParams) -> list[dict]:
    """The (RC, K) pairs a pack build packs (:func:`pack_taps` > 1), with what engine_ctrl
    and engine_wload decode from them: taps, the per-pass offset step (tq_i, tq_j) =
    divmod(taps, K), KP, the WU copies G = ceil(ACC_DIST / KP), and per lane n its pass-0
    offset (i0, j0) = divmod(n // RC, K) and whether it is active (n < taps*RC)."""
    out = []
    for rc in range(1, p.tn // 2 + 1):
        for k in range(2, p.kmax + 1):
            taps = pack_taps(rc, k, p.tn)
            kp = kernel_passes(k, taps)
            lanes = [(n < taps * rc, *divmod(n // rc, k)) if n < taps * rc else (False, 0, 0)
                     for n in range(p.tn)]
            out.append({"rc": rc, "k": k, "taps": taps, "tq_i": taps // k, "tq_j": taps % k,
                        "kp": kp, "g": wu_copies_passes(kp),
                        "act": [int(a) for a, _, _ in lanes], "i0": [i for _, i, _ in lanes],
                        "j0": [j for _, _, j in lanes]})
    return out


def engine_verilog(p: EngineParams) -> dict[str, str]:
    """File name -> Verilog text of the engine core (``engine_core`` on top) and the
    FP32 units it instantiates. Deterministic for equal params."""
    env = _env()
    tree = adder_tree(p.tn)
    ctx = {
        "version": __version__, "p": p, "w": p.widths,
        "mul_latency": MUL_LATENCY, "add_latency": ADD_LATENCY,
        "tree_latency": tree_latency(p.tn), "acc_dist": ACC_DIST, "ram_latency": RAM_LATENCY,
        "depth_conv": pipeline_depth("conv", p.tn), "depth_wu": pipeline_depth("wu", p.tn, p.p),
        "tree": tree, "src": _src, "zext": _zext, "AAW": max(p.widths["OA"], p.widths["WA"]),
        "fp_adder_a": [_src(a) for a, _ in tree.nodes] + [_src(tree.root)],
        "fp_adder_b": [_src(b) for _, b in tree.nodes],
        "delay_src": [_src(d) for d in tree.delays],
        "wu_copies": {k: wu_copies(k) for k in range(1, p.kmax + 1)},
        "rep_cols": p.rep_cols, "NG": p.rep_groups[0], "NR": p.rep_groups[1],
    }
    if p.pack:
        ctx["pack_table"] = pack_table(p)
    mods = ("engine_ram", "engine_array", "engine_ctrl", "engine_wload", "engine_core")
    tmpl = {m: m for m in mods}
    if p.p > 1:
        # pixel lanes: the WU adder tree over P (node t in adder (t+1, m, n), its root into
        # the accumulator adder (0, m, n)); the IFM's two-read-port RAM
        ptree = adder_tree(p.p)
        assert not ptree.delays                       # P is a power of two

        def wu_src(sv, k):
            kind, i = sv
            if kind == "p":
                return f"prod_all[(({i * p.tm}+gm)*{p.tn}+{k})*32 +: 32]"
            return f"sum_all[(({(i + 1) * p.tm}+gm)*{p.tn}+{k})*32 +: 32]"
        ctx.update(tree_p_latency=tree_latency(p.p), wu_src=wu_src,
                   wu_a=[ptree.root] + [a for a, _ in ptree.nodes],
                   wu_b=[None] + [b for _, b in ptree.nodes])
        mods = mods[:1] + ("engine_ram2",) + mods[1:]
        tmpl.update(engine_ram2="engine_ram2", engine_array="engine_array_p")
    files = dict(fp_units_verilog(p.impl))
    for mod in mods:
        files[f"{mod}.v"] = env.get_template(f"{tmpl[mod]}.v.j2").render(module=mod, **ctx)
    return files
