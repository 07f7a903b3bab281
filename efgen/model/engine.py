"""Cost of the unified Tm x Tn convolution engine, per layer-phase, vectorised.

Every conv and linear layer-phase becomes a *job* for the engine (see :func:`jobs_for`):

* ``out``  - channels the engine accumulates (Tm lanes): M in FP and WU, N in BP;
* ``red``  - channels the adder tree reduces (Tn lanes): N in FP and WU, M in BP;
* an output map ``ro x co`` tiled in ``tr x tc`` tiles, read from a source map
  ``hs x ws`` in DRAM. FP and WU read the input feature map with stride S and padding
  P; BP runs a stride-1 convolution over the error zero-dilated by S and padded by
  K-1-P, and the loader fetches only the real error rows (the dilation is address
  generation). A linear layer is the same engine on a 1 x batch map: each image is one
  "pixel" (``img_major``), so the batch shares every weight fetch.

Loop nests and their timing (one DRAM port each for input reads, weight reads and
writes; ping-pong IFM and OFM buffers so the load of step i+1 and the store of the
previous tile overlap the compute of step i; L = load of one input tile for one
reduction block, C = compute of one output block, s = store of one output block):

* FP/BP ``wo`` order, per (image, tile, output block) - a group, whose store overlaps
  the whole next group: ``max(sum_n max(L_n, C), s)``
* FP/BP ``io`` order, per (image, tile), ``mc`` output blocks per input tile:
  ``max(sum_n max(L_n, mc*C), mc*s)``

  (L_n: the load of reduction block n's tile: the NB - 1 full blocks' and the last's
  apart, so a longer full-block load is not averaged away against a shorter last one)
* WU, per (image, tile), ``mc`` output blocks whose error tiles E are loaded first:
  ``max(mc*E + NB*L, NB*mc*C)``

(C is ``mc`` blocks plus a per-step control cost where the blocks of a step share it)
plus, per weight chunk, the weight load (FP/BP) or the gradient write-back with the
SGD update (WU), which are not overlapped (one weight-buffer copy), plus the pipeline
fill (first load) and drain (last store). With ``hw.wdb`` (two weight-buffer copies,
``--weight-db``; measured in the reference RTL's co-simulation) FP/BP pay
``W_0 + sum_k max(W_{k+1}, C_k) + C_last`` over their chunks instead (see
:func:`evaluate`), and WU ``C_0 + sum_k max(S_k, C_{k+1}) + S_last`` (S: a chunk's
write-back, beside the next chunk's accumulation: the HLS C++'s run_chunk_wu_wdb, and the
reference RTL, whose write-back then reads W and V on one port). Compute of one block is
``tr*tc*K*K`` cycles plus the MAC pipeline depth: every cycle the array takes one Tm x Tn
weight vector.
Channels that do not fill the Tm or Tn lanes still take the cycles (idle lanes).

Loads and stores cost ``bursts * dma_start + words / bandwidth``; bursts follow the
layout (see :mod:`efgen.layout`; the tests check these counts against its burst
generator) and are split at the AXI maximum burst length.

Issue 13 (``--parray``; HwParams ``p`` and ``pack``, both off by default so the
default designs and their cycles are today's, byte for byte):

* **P pixel lanes.** The array is Tm x Tn x P MACs: one cycle takes one Tm x Tn weight
  vector and P adjacent output pixels of a tile row (BP: of the input-error tile row;
  linear jobs: P images, the columns of their 1 x batch map), so a block computes in
  ``tr * ceil(tc/P)`` cycles per kernel offset. FP/BP give each pixel lane its own adder
  tree and accumulator; in WU the P products of one gradient word pass an adder tree
  over P in front of the Tm x Tn accumulators (its depth is added to WU's pipeline).
  Buffers: P reads a cycle from the IFM half being computed (two BRAM ports, ceil(P/2)
  copies) and P read-modify-writes of the OFM accumulators (P cyclic banks); one weight
  serves all P lanes (efgen/model/resources.py).
  *Why pixels, not images of the batch* (``p_dim="images"`` prices the alternative;
  benchmarks/bench_parray.py prints it): on the same arrays the two are within a few
  points at batch 32 (conv-engine efficiency, zcu102 100 MHz, unfused: resnet20 16x8x2
  89.3% pixels / 89.6% images, 8x8x4 88.0 / 88.6; resnet18 8x8x4 76.2 / 80.9, its 7- and
  14-wide rows leaving pixel lanes idle), but images idle whole lanes when the batch is
  below P (vgg16-bn-224 at batch 2, 8x8x4: 92.8% pixels, 48.0% images), need P input and
  P output tiles on chip (P times the IFM and OFM banks, which the images figures above
  do not even charge) and do not exist in a linear layer's 1 x batch map. Pixels serve
  FP, BP, WU and linear layers with one datapath at any batch.
* **Tap packing.** An FP or WU job whose reduction channels fill at most half of Tn
  (a 3-channel first layer) carries ``taps = min(K*K, Tn // red)`` kernel offsets side
  by side in the lanes (:func:`packed_taps`): ceil(K*K / taps) kernel passes instead of
  K*K (:func:`kernel_passes`), and a weight bank holds that many words per block. BP of
  a first layer does not run; BP of other shallow layers does not pack.

Rows of a tile grid are evaluated in three classes (first, middle, last; the middle
tiles are represented by the second tile), columns likewise, so edge tiles that are
clipped by the padding or by the remainder are priced exactly while the evaluation
stays a fixed-size numpy computation over all candidates at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from efgen.design import HwParams

#: The reference RTL with double-buffered weights (HwParams.wdb with sgd_overhead): W and V
#: of a write-back share one read engine, as commands of at most this many words (whole
#: bursts; sgd_wb's input FIFOs hold two of them each: 64 words stay in LUT RAM; at 64 a
#: piece their 128 words went to block RAM, whose unregistered read into the SGD's NaN
#: test put sgd_wb at 6.45 LUT levels and 178.6 MHz at the slow end)
SGD_RPIECE_MAX = 32


def sgd_rpiece(burst_words: float) -> int:
    """Words of sgd_wb's W and V read commands (double-buffered weights, the reference RTL):
    a burst of ``burst_words`` (a power of two), at most :data:`SGD_RPIECE_MAX`."""
    return int(min(burst_words, SGD_RPIECE_MAX))

FP, BP, WU = 0, 1, 2
#: channels a group of the reference RTL's bias pass (sgd_wb's GROUP = ADD_LATENCY,
#: efgen.rtl.sgd.GROUP)
WUB_GROUP = 5
#: words of a fused descriptor's side record (efgen.hls.desc.XF_WORDS)
XF_RECORD = 16
PHASE_CODE = {"fp": FP, "bp": BP, "wu": WU}
ORDER_CODE = {"wo": 0, "io": 1}
ORDERS = ("wo", "io")

# Candidate grid: row splits 1..ROW_SPLITS, column splits in COL_SPLITS, both orders.
ROW_SPLITS = 32
COL_SPLITS = (1, 2, 4, 8, 16)

JOB_FIELDS = ("out", "red", "ro", "co", "hs", "ws", "k", "s", "lo", "dil", "phase",
              "images", "img_major", "dram_m", "dram_n", "mask", "in_extra", "eo_extra",
              "st_extra", "xf", "acc", "bias", "mk")


@dataclass(frozen=True)
class Job:
    layer: str
    phase: str
    out: int
    red: int
    ro: int
    co: int
    hs: int
    ws: int
    k: int
    s: int        # stride over the on-chip tile (conv stride in FP/WU, 1 in BP)
    lo: int       # FP/WU: padding P; BP: offset K-1-P of error row 0 in dilated coords
    dil: int      # BP: error dilation (conv stride); 1 otherwise
    images: int   # images the tile loop runs over (batch; 1 for linear jobs)
    img_major: bool
    dram_m: int   # the weight tensor's M and N as stored in DRAM
    dram_n: int
    macs: int     # useful MACs of the whole job (all images)
    mask: bool = False  # BP store applies a fused ReLU mask (reads the layer input too)
    # Restructured batchnorm (efgen.model.restructure; all 0 without --fuse):
    in_extra: int = 0   # read streams beside each input tile (second operands, BN BP's y)
    eo_extra: int = 0   # WU: read streams beside each error tile (BN BP's y)
    st_extra: int = 0   # read streams beside each store (error operands, mask sources, y)
    xf: int = 0         # the loads apply per-channel affine/ReLU/add/BN-dx transforms
    acc: int = 0        # the store accumulates per-channel sums (BN FP stats, BN BP sums)
    bias: int = 0       # FLAG_BIAS. FP: the store adds a per-channel bias (priced where
                        # HwParams.bias_overhead > 0: the reference RTL); WU: the bias
                        # gradient and its SGD (priced where HwParams.wub_overhead > 0)
    mk: int = 0         # BP: the store's ReLU mask is bn(src) > 0, recomputed from a fused
                        # BN's input with its constants (record MK; priced where
                        # HwParams.xf_overhead > 0: the reference RTL's fused store)


def phase_job(layer: str, phase: str, op: str, n: int, m: int, batch: int, h: int = 1,
              w: int = 1, ho: int = 1, wo: int = 1, k: int = 1, s: int = 1, p: int = 0,
              mask: bool = False, macs: int | None = None, bias: bool = False) -> Job:
    """The engine job of one conv/linear layer-phase: ``n`` -> ``m`` channels, an ``h x w``
    input and ``ho x wo`` output map (conv), kernel ``k``, stride ``s``, padding ``p``."""
    if op == "conv":
        img, major = batch, False
    else:  # linear: a 1 x batch map, K = 1
        h, w, ho, wo = 1, batch, 1, batch
        k, s, p = 1, 1, 0
        img, major = 1, True
    if macs is None:
        macs = m * n * k * k * (ho * wo if op == "conv" else batch) * img
    if phase == "fp":
        return Job(layer, "fp", m, n, ho, wo, h, w, k, s, p, 1, img, major, m, n, macs,
                   bias=int(bias))
    if phase == "bp":
        return Job(layer, "bp", n, m, h, w, ho, wo, k, 1, k - 1 - p, s, img, major, m, n,
                   macs, mask)
    if phase == "wu":
        return Job(layer, "wu", m, n, ho, wo, h, w, k, s, p, 1, img, major, m, n, macs,
                   bias=int(bias))
    raise ValueError(f"phase {phase!r}: expected fp, bp or wu")


def jobs_for(net, batch: int) -> list[Job]:
    """The engine jobs of a net, in execution order (FP forward, then BP and WU backward)."""
    from efgen.model.fusion import bp_store_masks

    masks = bp_store_masks(net)
    fwd, bwd = [], []
    for l in net:
        if not l.is_weighted:
            continue
        if l.op == "conv":
            (n, h, w), (m, ho, wo) = l.in_shape, l.out_shape
            geo = dict(h=h, w=w, ho=ho, wo=wo, k=l.kernel, s=l.stride, p=l.padding)
        else:
            n, m, geo = l.in_shape[0], l.channels, {}
        job = lambda ph: phase_job(l.name, ph, l.op, n, m, batch,  # noqa: E731
                                   mask=ph == "bp" and l.name in masks,
                                   macs=l.fp_macs * batch, **geo)
        fwd.append(job("fp"))
        if l.runs_bp:
            bwd.append(job("bp"))
        if l.trainable:
            bwd.append(job("wu"))
    order = {l.name: i for i, l in enumerate(net)}
    bwd.sort(key=lambda j: (-order[j.layer], j.phase))  # reverse layer order, bp before wu
    return fwd + bwd


def job_arrays(jobs: list[Job]) -> dict[str, np.ndarray]:
    """Job fields as (J, 1) float arrays, ready to broadcast against candidates."""
    out = {}
    for f in JOB_FIELDS:
        if f == "phase":
            vals = [PHASE_CODE[j.phase] for j in jobs]
        else:
            vals = [getattr(j, f) for j in jobs]
        out[f] = np.asarray(vals, dtype=np.float64).reshape(-1, 1)
    return out


def candidate_grid(jobs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """All (tr, tc, order) candidates per job: arrays of shape (J, C).

    Row splits k give tr = ceil(ro/k) (balanced tiles, no waste), likewise columns.
    The grid is ordered wo before io, fewer splits first, so ties resolve to the
    simpler, larger-tile choice.
    """
    kr = np.arange(1, ROW_SPLITS + 1, dtype=np.float64)
    kc = np.asarray(COL_SPLITS, dtype=np.float64)
    order, kr_g, kc_g = np.meshgrid(np.arange(2.0), kr, kc, indexing="ij")
    order, kr_g, kc_g = order.ravel()[None, :], kr_g.ravel()[None, :], kc_g.ravel()[None, :]
    tr = np.ceil(jobs["ro"] / np.minimum(kr_g, jobs["ro"]))
    tc = np.ceil(jobs["co"] / np.minimum(kc_g, jobs["co"]))
    return {"tr": tr, "tc": tc, "order": np.broadcast_to(order, tr.shape).copy()}


def _classes(n_out, t, n_tiles):
    """(count, output size, index) of the first, middle and last tile along one axis.

    Shapes: inputs (J, C); outputs (J, C, 3).
    """
    last = n_out - (n_tiles - 1) * t
    cnt = np.stack([np.ones_like(n_tiles), np.maximum(n_tiles - 2, 0),
                    (n_tiles >= 2).astype(np.float64)], axis=-1)
    size = np.stack([np.where(n_tiles == 1, last, t), t, last], axis=-1)
    idx = np.stack([np.zeros_like(n_tiles), np.ones_like(n_tiles), n_tiles - 1], axis=-1)
    return cnt, size, idx


def _src_span(idx, size, t, jb, axis_len, phase_bp, n_tiles=None):
    """Source rows (or columns) a tile loads, and its on-chip buffer extent.

    FP/WU: buffer u in [0, (size-1)*S + K) reads source row idx*t*S - P + u.
    BP: dilated coordinate d = idx*t + u, u in [0, size + K - 1), reads error row
    (d - lo)/dil when that is an integer in range.

    With ``n_tiles``, the middle class (index 1 of the last axis) is the mean over every
    middle tile, not the second tile's: in BP with dil > 1 and a tile size that is not a
    multiple of dil, the rows a middle tile loads alternate with the tile's start
    (period dil), so each residue class of the middle tiles is counted apart.
    """
    loaded, ext = _src_span_at(idx, size, t, jb, axis_len, phase_bp)
    if n_tiles is None:
        return loaded, ext
    dmax = int(np.max(jb["dil"])) if jb["dil"].size else 1
    if dmax <= 1:
        return loaded, ext
    mid = np.maximum(n_tiles - 2, 0)                         # middle tiles (J, C)
    acc = np.zeros_like(mid, dtype=np.float64)
    for r in range(dmax):       # middle tiles 1 + r, 1 + r + dmax, ...: (mid - r)/dmax
        cnt = np.maximum(0.0, np.ceil((mid - r) / dmax))
        i_r = idx.copy()
        i_r[..., 1] = 1 + r
        acc = acc + cnt * _src_span_at(i_r, size, t, jb, axis_len, phase_bp)[0][..., 1]
    loaded = loaded.copy()
    loaded[..., 1] = np.where(mid > 0, acc / np.maximum(mid, 1), loaded[..., 1])
    return loaded, ext


def _src_span_at(idx, size, t, jb, axis_len, phase_bp):
    """:func:`_src_span` of the tiles at ``idx``."""
    k, s, lo, dil = jb["k"][..., None], jb["s"][..., None], jb["lo"][..., None], jb["dil"][..., None]
    start_fw = idx * t[..., None] * s - lo
    ext_fw = (size - 1) * s + k
    start_bp = idx * t[..., None]
    ext_bp = size + k - 1
    a = np.where(phase_bp, start_bp, start_fw)
    ext = np.where(phase_bp, ext_bp, ext_fw)
    off = np.where(phase_bp, lo, 0.0)
    b = a + ext - 1
    h_lo = np.maximum(0.0, np.ceil((a - off) / dil))
    h_hi = np.minimum(axis_len[..., None] - 1, np.floor((b - off) / dil))
    loaded = np.maximum(0.0, h_hi - h_lo + 1)
    return loaded, ext


def evaluate(jb: dict[str, np.ndarray], cand: dict[str, np.ndarray], hw: HwParams,
             word_bytes: int, ddr_bytes_per_cycle: float, layout: str = "reshaped",
             mc_override: np.ndarray | None = None, momentum: bool = True,
             weights_blocked: bool | None = None, p_dim: str = "pixels") -> dict[str, np.ndarray]:
    """Cycles, traffic and bursts of every (job, candidate): arrays of shape (J, C).

    ``cand`` holds ``tr``, ``tc`` and ``order`` (and optionally ``mc``). Infeasible
    candidates (a tile or chunk that does not fit its buffer) get ``cycles = inf``.
    ``p_dim``: what the ``hw.p`` lanes span, ``"pixels"`` (the design) or ``"images"``
    (the alternative priced for the comparison in the module docstring).
    """
    tm, tn, T = float(hw.tm), float(hw.tn), float(hw.lanes)
    blocked = layout == "reshaped"
    # weights: blocked (Tm, Tn) with the reshaped layout, OIHW with NCHW unless told
    # (the reference RTL keeps blocked weights in both)
    w_blocked = blocked if weights_blocked is None else weights_blocked
    tr, tc, order = cand["tr"], cand["tc"], cand["order"]
    phase = jb["phase"]
    is_bp, is_wu = phase == BP, phase == WU
    k2 = jb["k"] ** 2
    MB = np.ceil(jb["out"] / tm)
    NB = np.ceil(jb["red"] / tn)
    kpass = kernel_passes(jb, hw)

    # ---- bandwidth: words per cycle per port, capped by the DDR share of each port
    bw = min(float(hw.port_words), ddr_bytes_per_cycle / word_bytes / hw.ports)
    maxb = float(hw.max_burst_beats * hw.port_words)

    # ---- tile classes (J, C, 3) per axis, combined to (J, C, 3, 3)
    n_r = np.ceil(jb["ro"] / tr)
    n_c = np.ceil(jb["co"] / tc)
    cr, sr, ir = _classes(jb["ro"], tr, n_r)
    cc, sc, ic = _classes(jb["co"], tc, n_c)
    rows_ld, rows_buf = _src_span(ir, sr, tr, jb, jb["hs"], is_bp[..., None], n_r)
    # Columns: linear jobs put the images along the column axis with no halo.
    cols_ld, cols_buf = _src_span(ic, sc, tc, jb, jb["ws"], is_bp[..., None], n_c)
    major = jb["img_major"][..., None] > 0
    cols_ld = np.where(major, sc, cols_ld)
    cols_buf = np.where(major, sc, cols_buf)
    R = lambda a: a[..., :, None]  # noqa: E731  rows axis
    Cc = lambda a: a[..., None, :]  # noqa: E731  cols axis
    count = R(cr) * Cc(cc)
    o_r, o_c = R(sr), Cc(sc)
    full_w = Cc(cols_ld) >= jb["ws"][..., None, None]
    full_h = R(rows_ld) >= jb["hs"][..., None, None]
    e = lambda a: a[..., None, None]  # noqa: E731  (J, C) -> (J, C, 1, 1)

    # ---- input tile load, per step (one reduction block), averaged over the blocks
    # (NB-1 full blocks of Tn channels and a last one of what is left: bursts round up
    # per block, so the two kinds are counted apart)
    unit_words = T if blocked else 1.0
    full_units = tn / T if blocked else tn
    last_ch = jb["red"] - (NB - 1) * tn
    last_units = np.ceil(last_ch / T) if blocked else last_ch
    red_units = ((NB - 1) * full_units + last_units) / NB     # lane groups per step (mean)
    major4 = e(jb["img_major"]) > 0

    def in_bursts(units):
        words = e(units) * unit_words * R(rows_ld) * Cc(cols_ld)
        runs = np.where(major4, Cc(cols_ld) + 0 * R(rows_ld),
                        np.where(full_w, np.where(full_h, 1.0, e(units)), e(units) * R(rows_ld)))
        runs = np.where(words > 0, runs, 0.0)
        return runs * np.ceil(np.where(runs > 0, words / np.maximum(runs, 1), 0.0) / maxb)

    # a full block's tile and the last one's (words, bursts); their means per step
    words_f = e(full_units + 0 * NB) * unit_words * R(rows_ld) * Cc(cols_ld)
    words_l = e(last_units) * unit_words * R(rows_ld) * Cc(cols_ld)
    bursts_f, bursts_l = in_bursts(full_units + 0 * NB), in_bursts(last_units)
    in_words = e(red_units) * unit_words * R(rows_ld) * Cc(cols_ld)
    bursts_in = (e(NB - 1) * bursts_f + bursts_l) / e(NB)
    xfer_rd = float(hw.dram_latency + hw.load_overhead)      # per load, not overlapped within it

    def stream(words, bursts, rate=bw):
        # A read burst holds one of `outstanding` slots for latency + 4 + its beats
        # cycles, so many short bursts (NCHW rows) cannot keep the port busy; the DMA
        # takes a command every 2 cycles. (The first latency is in xfer_rd.)
        t = words / rate
        if hw.outstanding > 0:
            slot = hw.dram_latency + 4.0
            beats = words / (rate / bw)
            t = np.maximum(np.maximum(t, 2.0 * bursts),
                           (bursts * slot + beats) / hw.outstanding - slot)
        return t

    def unit_rate(words_a_cycle: int) -> float:
        # a unit that takes more words a cycle than the other streams (HwParams
        # load_words / store_words / wload_words > 0), up to its share of the DDR
        return bw if words_a_cycle <= 0 else min(float(words_a_cycle),
                                                 ddr_bytes_per_cycle / word_bytes / hw.ports)

    # the input-tile loader may take more words a cycle than the other streams (the
    # reference RTL's tile_rd: a whole beat in the reshaped layout; HwParams.load_words)
    bw_in = unit_rate(hw.load_words)
    # Restructured batchnorm (efgen.model.restructure): the second read stream beside an
    # input tile comes on a port of its own (the HLS C++ reads it on gmem2's read
    # channel, in the tile's loop: conv_engine.h load_ifm_pass), so it takes its own
    # bursts and words in parallel with the tile; all streams together are capped by the
    # DDR's words per cycle; the load path's transform units add their pipeline depth
    # (:func:`fx_depth`) to every load.
    # (the reference RTL builds the FP store's BN sums and the FP/WU loads' per-channel
    # transform, priced on their own: t_rec, t_xk, t_stats and xf_depth per load)
    rtl_fx = hw.xf_overhead > 0
    fused = not rtl_fx and any(bool(np.any(jb[f] > 0))
                               for f in ("in_extra", "eo_extra", "st_extra", "xf", "acc"))
    stats_on = jb["acc"] * rtl_fx * (phase == FP)
    # BP's transform is BN BP dx (record LMODE 1): y read beside every input tile on m_axi2's
    # read channel (the same commands, in parallel: its words and bursts below), six
    # constant vectors, the dx pipeline (hw.dx_depth) on every load; WU with y beside its
    # error tiles (Job.eo_extra): the same on the error tiles, its input tiles plain
    wdx_on = jb["xf"] * rtl_fx * (phase == WU) * (jb["eo_extra"] > 0)
    xf_on = jb["xf"] * rtl_fx * (phase != BP) * (jb["eo_extra"] == 0)
    dx_on = jb["xf"] * rtl_fx * (phase == BP)
    # WU with both (record MK: the C++'s wdx2): the dx on the error tiles as wdx_on, and the
    # affine transform on the input tiles as xf_on, its four vectors a second round
    xf_on = xf_on + wdx_on * jb["mk"]
    # BP: the recomputed mask (record MK) and the BN BP sums in the store
    mk_on = jb["mk"] * rtl_fx * (phase == BP)
    bps_on = jb["acc"] * mk_on
    rec_on = np.maximum.reduce([stats_on, xf_on, dx_on, wdx_on, mk_on])   # a side record
    ddr_w = ddr_bytes_per_cycle / word_bytes
    fxd = float(fx_depth(hw))

    def load_time(words, bursts):
        # one step's input tile of ``words`` in ``bursts``
        t = (bursts * hw.dma_start + stream(words, bursts, bw_in)
             + np.where(words > 0, xfer_rd, 0.0))
        if fused:
            xi = e(jb["in_extra"])
            sec = xi * (bursts * hw.dma_start + words / bw) + xfer_rd
            cap = (1 + xi) * words / ddr_w + xfer_rd
            t = np.where(xi > 0, np.maximum(t, np.maximum(sec, cap)), t) + e(jb["xf"]) * fxd
        if rtl_fx:
            t = t + e(xf_on) * hw.xf_depth + e(dx_on) * hw.dx_depth
        return t

    # (a full reduction block's tile and the last one's, apart: a step pays max(load,
    # compute) with its own load, so when Tn does not divide the reduction the full blocks'
    # longer loads can be exposed while the last block's shorter one hides; measured on
    # the reference RTL at 2x4x2, where c1's loads alternate 369 / 201 cycles around a
    # 351-cycle step; their mean, L, is what the totals below use)
    L_full, L_last = load_time(words_f, bursts_f), load_time(words_l, bursts_l)
    L = (e(NB - 1) * L_full + L_last) / e(NB)

    # ---- output block store (FP/BP) or error block load (WU), per output block
    # (MB-1 full blocks of Tm channels and a last one, as for the input)
    o_full_units = tm / T if blocked else tm
    o_last_ch = jb["out"] - (MB - 1) * tm
    o_last_units = np.ceil(o_last_ch / T) if blocked else o_last_ch
    out_units = ((MB - 1) * o_full_units + o_last_units) / MB
    out_words = e(out_units) * unit_words * o_r * o_c
    o_full_w = o_c >= e(jb["co"])
    o_full_h = o_r >= e(jb["ro"])

    def out_bursts(units):
        words = e(units) * unit_words * o_r * o_c
        runs = np.where(major4, o_c + 0 * o_r,
                        np.where(o_full_w, np.where(o_full_h, 1.0, e(units)), e(units) * o_r))
        return runs * np.ceil(words / np.maximum(runs, 1) / maxb)

    bursts_out = (e(MB - 1) * out_bursts(o_full_units + 0 * MB) + out_bursts(o_last_units)) / e(MB)
    # A BP store that applies a fused ReLU mask first reads the same tile of the layer's
    # input (the ReLU output): the same bursts and words again.
    # (restructured BN: st_extra more read streams beside the store, read the same way)
    st_streams = e(jb["mask"]) + e(jb["st_extra"])
    bursts_out = bursts_out * (1 + st_streams)
    # a store pays its set-up; WU's error-tile load (the same walk, read) pays a load's
    # (FP with a bias, on the reference RTL: the store path's adder, hw.bias_store; the
    # RTL's BN FP sums load their shift k into the same buffer and take y - k through the
    # same adders, never together with a bias: bias_on covers both)
    bias_on = jb["bias"] * (hw.bias_overhead > 0) * (phase == FP) + stats_on
    # (BP with the recomputed mask, reference RTL: every store's words leave through the
    # mask source's transform, its pipeline depth more)
    xfer_out = np.where(e(is_wu), xfer_rd, float(hw.store_overhead) + e(bias_on) * hw.bias_store
                        + e(mk_on) * hw.xf_depth)
    # (with a mask port the mask tile streams beside the store: its latency, not its words)
    s_words = out_words * (1 + (e(jb["st_extra"]) if hw.mask_port else st_streams))
    # (WU's error tiles come through the input-tile loader: its rate, bw_in; the storer
    # may hand more words a cycle to its port than the other streams take: the reference
    # RTL's tile_wr, a whole beat in the reshaped layout; HwParams.store_words)
    bw_st = unit_rate(hw.store_words)
    s_out = bursts_out * hw.dma_start + xfer_out + np.where(e(is_wu),
                                                            stream(s_words, bursts_out, bw_in),
                                                            s_words / bw_st)
    if fused:
        # WU: BN BP's y streams beside each error tile on its own port (gmem2's read
        # channel in the HLS C++: conv_engine.h load_err_dx), as the input's
        xo = e(jb["eo_extra"])
        b1 = bursts_out / (1 + st_streams)
        sec = xo * (b1 * hw.dma_start + out_words / bw) + xfer_rd
        cap = (1 + xo) * out_words / ddr_w + xfer_rd
        s_out = np.where(e(is_wu) & (xo > 0), np.maximum(s_out, np.maximum(sec, cap)), s_out)
        s_out = s_out + np.where(e(is_wu), e(jb["xf"]) * fxd, 0.0)
    if rtl_fx:
        s_out = s_out + e(wdx_on) * hw.dx_depth      # (the RTL: WU dx's error tiles)
    if hw.mask_port:
        # the mask read paces the store: its latency, and its bursts' slot limit (the
        # mask tiles come at the store's rate)
        m_b = bursts_out / 2.0
        s_out = np.where(e(jb["mask"]) > 0,
                         xfer_out + float(hw.dram_latency) + bursts_out * hw.dma_start
                         + np.maximum(s_words / bw_st, stream(s_words, m_b, bw_st)), s_out)
        # (the reference RTL's BP store operands, SE and SK: a pass each before the store,
        # its words and bursts counted above, and its read's round trip, serial with the
        # next pass or the store: the DRAM latency and, as a constants load's, xf_overhead;
        # measured on tiny's conv4:bp, 4x4: +48 cycles a pass against the model's 50)
        s_out = s_out + e(jb["st_extra"]) * float(hw.dram_latency + hw.xf_overhead)

    # ---- compute of one output block: P = tr*tc pixels per kernel offset; FP/BP passes
    # shorter than the accumulator's loop-carried distance wait (acc_dist). With pixel
    # lanes (hw.p) a cycle takes hw.p adjacent pixels of one tile row: a row of tc
    # pixels takes ceil(tc / p) cycles (p_dim "images" instead runs hw.p images at once,
    # see the module docstring: the alternative the model rejected). With packing a
    # shallow FP/WU job's kernel offsets take ceil(K*K / taps) passes (kpass).
    pl = float(hw.p)
    if p_dim == "pixels":
        P = o_r * np.ceil(o_c / pl)
    else:                          # images: linear jobs already hold the images in a row
        P = np.where(major4, o_r * np.ceil(o_c / pl), o_r * o_c)
    depth_wu = hw.mac_depth if hw.wu_depth is None else hw.wu_depth
    if hw.p > 1:                   # WU: the adder tree over the P products
        level = (hw.mac_depth - hw.mac_depth // 2 if hw.wu_tree_level is None
                 else hw.wu_tree_level)
        depth_wu = depth_wu + math.ceil(math.log2(hw.p)) * level
    Cy = np.where(e(is_wu), P * e(kpass) + depth_wu,
                  (e(kpass) - 1) * np.maximum(P, hw.acc_dist) + P + hw.mac_depth) + hw.block_overhead
    # WU: a gradient word keeps G = ceil(acc_dist / K*K) partial sums (the reference RTL,
    # efgen.rtl.engine.wu_copies; G = 1 at the HLS engine's acc_dist of 1), and the block
    # that starts them (the first tile of a chunk's first image step) runs at least G pixel
    # slots, so that every copy is written: a batch-1 linear WU (P = 1) pays G - 1 a block.
    # A packed job's word is updated once per pass: G = ceil(acc_dist / KP) (conv_engine.h,
    # efgen.rtl.engine.wu_copies_passes)
    g_copies = np.maximum(1.0, np.ceil(hw.acc_dist / kpass))
    Cy_init = np.where(e(is_wu), e(kpass) * np.maximum(P, e(g_copies)) + depth_wu
                       + hw.block_overhead, Cy)
    # control per step (one reduction block), shared by the step's blocks (io, WU: mc)
    so = float(hw.step_overhead)

    # ---- buffer fit and weight chunk
    ifm_need = R(rows_buf) * Cc(cols_buf)
    fits_in = np.all(ifm_need <= hw.ifm_depth, axis=(-1, -2))
    w_per_block = NB * kpass                    # words per weight bank per output block
    mc_w = np.floor(hw.wbuf_depth / w_per_block)
    mc_o = np.floor(hw.ofm_depth / (tr * tc))
    io_like = (order > 0) | is_wu
    mc = np.minimum(MB, np.where(io_like, np.minimum(mc_w, mc_o), mc_w))
    if mc_override is not None:
        mc = np.minimum(MB, mc_override)
    feasible = fits_in & (mc >= 1) & (tr * tc <= hw.ofm_depth)
    feasible &= ~io_like | (mc * tr * tc <= hw.ofm_depth)
    feasible &= mc * w_per_block <= hw.wbuf_depth
    mc = np.maximum(mc, 1.0)
    n_chunks = np.ceil(MB / mc)
    mc_last = MB - (n_chunks - 1) * mc

    # ---- per-tile group times, for a chunk of m output blocks
    def wu_tile(m4, c, ld, st):
        # WU: the loader (error tiles, then NB input tiles) and the engine are decoupled by
        # the ping-pong halves, so a tile takes the longer of the two
        return np.maximum(m4 * st + e(NB) * ld, e(NB) * (m4 * c + so))

    def steps(c):
        # the NB steps of an output block (or of a group, io): each max(its load, c)
        return e(NB - 1) * np.maximum(L_full, c) + np.maximum(L_last, c)

    def group(m):
        m4 = e(m)
        # the stores of a group overlap all the steps of the next group
        wo = np.maximum(steps(Cy + so), s_out)
        io = np.maximum(steps(m4 * Cy + so), m4 * s_out)
        per_tile = np.where(e(is_wu), wu_tile(m4, Cy, L, s_out),
                            np.where(e(order) > 0, io, m4 * wo))
        return np.sum(count * per_tile, axis=(-1, -2))

    def init_extra(m):
        # WU: what a chunk's first tile (class [0, 0], count 1) adds with Cy_init
        first = (slice(None),) * (L.ndim - 2) + (slice(0, 1), slice(0, 1))
        t = lambda c: wu_tile(e(m), c[first], L[first], s_out[first])[..., 0, 0]  # noqa: E731
        return np.where(is_wu, t(Cy_init) - t(Cy), 0.0)

    if p_dim == "images" and hw.p > 1:
        # hw.p images a step: each lane group loads and stores its own image's tiles
        per_image = np.where(major4, 1.0, pl)
        L, L_full, L_last, s_out = L * per_image, L_full * per_image, L_last * per_image, \
            s_out * per_image
    g_full, g_last = group(mc), group(mc_last)
    # an FP/BP chunk's first step loads the first reduction block's tile (a full one
    # unless there is only one)
    L_first = np.where(NB > 1, L_full[..., 0, 0], L_last[..., 0, 0])
    tiles_time = (n_chunks - 1) * g_full + g_last              # one image, all chunks
    t_init = (n_chunks - 1) * init_extra(mc) + init_extra(mc_last)
    images = jb["images"]
    img_steps = images if p_dim == "pixels" else np.where(jb["img_major"] > 0, images,
                                                          np.ceil(images / pl))

    # ---- weights: FP/BP load per chunk; WU gradient write-back with SGD per chunk
    wwords_chunk = lambda m: (m * tm * NB * tn * k2 if w_blocked  # noqa: E731
                              else np.minimum(m * tm, jb["out"]) * jb["red"] * k2)
    fp_runs = 1.0
    # BP: one run per DRAM row of weight blocks (a row's blocks for the chunk's output
    # channels are contiguous; the rows are not, unless one chunk takes them all, and even
    # then each row is its own transfer: the flip/transpose restarts per row)
    bp_runs = np.ceil(jb["dram_m"] / tm) if w_blocked else jb["dram_m"] + 0 * mc
    w_runs = np.where(is_bp, bp_runs, fp_runs)
    w_runs_last = w_runs

    # the weight loader may take more words a cycle (the reference RTL's engine_wload at
    # wl_words; HwParams.wload_words)
    bw_w = unit_rate(hw.wload_words)

    def wload(m, runs):
        # one transfer per run: a BP chunk is one run per DRAM row of weight blocks
        words = wwords_chunk(m)
        t = (runs * np.ceil(words / runs / maxb) * hw.dma_start + words / bw_w
             + runs * (hw.dram_latency + (hw.load_overhead if hw.wrun_overhead is None
                                          else hw.wrun_overhead)))
        if hw.wpair_overhead > 0:
            # BP: the flip/transpose is set up per (Tm, Tn) weight pair, the stream
            # stalling between the pairs of a run
            pairs = words / (tm * tn * k2)
            t = t + np.where(is_bp, hw.wpair_overhead * np.maximum(pairs - runs, 0.0), 0.0)
        # the weight-load pipeline drains once per chunk before the engine may start
        return t + hw.wload_drain, words

    t_w_full, w_full = wload(mc, w_runs)
    t_w_last, w_last = wload(mc_last, w_runs_last)
    sgd_passes = 2.0 if momentum else 1.0   # weights (+ momentum) read and written
    t_wload = (n_chunks - 1) * t_w_full + t_w_last
    w_words = (n_chunks - 1) * w_full + w_last
    # WU write-back: read weights and momentum, write both (reads and writes overlap).
    t_sgd = np.where(is_wu, t_wload * sgd_passes, 0.0)
    if hw.sgd_overhead > 0:
        # A word-serial write-back (the reference RTL's sgd_wb): one write port carries W'
        # and V' (sgd_passes cycles a word), and a word's G gradient partial sums (WU
        # with K*K < acc_dist keeps G = ceil(acc_dist / K*K) copies, packed ceil(acc_dist /
        # KP)) are read one a cycle.
        copies = np.maximum(1.0, np.ceil(hw.acc_dist / kpass))
        per_word = np.maximum(copies, sgd_passes)
        t_sgd = np.where(is_wu, w_words * per_word
                         + n_chunks * (hw.dram_latency + hw.sgd_overhead), 0.0)
    # WU's write-back beside the next chunk's accumulation (double-buffered weights: the
    # HLS C++'s run_chunk_wu_wdb, and the reference RTL, measured in co-simulation): chunk k
    # accumulates into bank k mod 2 and its write-back S_k runs beside chunk k+1's
    # accumulation C_{k+1}, which waits for S_{k-1} only at its end; so the phase pays
    # C_0 + sum_k max(S_k, C_{k+1}) + S_last: each boundary hides min(S_k, C_{k+1})
    # (every chunk but the last is full). On the RTL W and V share m_axi1 (the loader keeps
    # m_axi0): in pieces of rp words, W's first piece before V's, so each write-back starts
    # min(rp, words) cycles later.
    wu_ov = bool(hw.wdb) & is_wu
    # (the RTL's loader does not wait for a write-back, so a chunk's first tiles load
    # during the chunk before, and only the job's first chunk fills, as FP/BP's below; the
    # HLS C++'s chunk is a DATAFLOW region of its loads, accumulation and the write-back
    # before: each chunk still fills)
    wu_pre = wu_ov & (hw.sgd_overhead > 0)
    if hw.sgd_overhead > 0:
        # (wdb: the later start, V's first word after W's first piece)
        rp = float(sgd_rpiece(maxb)) if hw.wdb else 0.0
        t_sgd = t_sgd + np.where(wu_ov, (n_chunks - 1) * np.minimum(rp, w_full)
                                 + np.minimum(rp, w_last), 0.0)
        s_full = (w_full * per_word + hw.dram_latency + hw.sgd_overhead
                  + np.minimum(rp, w_full))
    else:
        s_full = t_w_full * sgd_passes
    c_acc_full = img_steps * g_full + init_extra(mc)
    c_acc_last = img_steps * g_last + init_extra(mc_last)
    wu_hide = np.where(wu_ov & (n_chunks >= 2),
                       np.maximum(n_chunks - 2, 0.0) * np.minimum(s_full, c_acc_full)
                       + np.minimum(s_full, c_acc_last), 0.0)
    t_sgd = t_sgd - wu_hide
    t_wload = np.where(is_wu, 0.0, t_wload)
    wdb = bool(hw.wdb) & ~is_wu
    # the BP store reads on the weights' port: its mask tiles, and (restructured BN) the
    # tiles its passes read before it (Job.st_extra: the error operand SE, the sums' y SK)
    st_p1 = (jb["mask"] + jb["st_extra"]) > 0
    if hw.wdb:
        # Double-buffered weight chunks (FP/BP; the reference RTL's weight streamer, measured
        # in co-simulation): chunk k+1's weights load into the other bank while the array
        # computes chunk k (C_k = all images' groups of the chunk), so the phase pays
        # W_0 + sum_k max(W_{k+1}, C_k) + C_last: each boundary hides min(W_{k+1}, C_k).
        # The first chunk's load runs beside the first input-tile load (min(W_0, first)).
        # BP with a ReLU mask on the weights' port (mask_port) loads chunk k+1 only after
        # the stores of chunk k: no overlap with compute there.
        c_full = img_steps * g_full
        ovl = ~(is_bp & st_p1 & bool(hw.mask_port))
        hide = np.where(n_chunks >= 2, np.maximum(n_chunks - 2, 0.0) * np.minimum(t_w_full, c_full)
                        + np.minimum(t_w_last, c_full), 0.0)
        w_first = np.where(n_chunks >= 2, t_w_full, t_w_last)
        first0 = L_first
        t_wload = np.where(wdb, t_wload - np.where(ovl, hide, 0.0)
                           - np.minimum(w_first, first0), t_wload)
        # a boundary's exposed weight wait (weight-bound chunks), which hides the stores
        # of the chunk's last group
        w_exposed = np.where(ovl, np.maximum(t_w_full - c_full, 0.0), t_w_full)

    # ---- fill and drain: the first load and the last store are not overlapped
    # (the weight buffer has one copy, so every chunk starts with an exposed load: the
    # first input tile, and in WU the first group's error tiles)
    first = np.where(is_wu, L[..., 0, 0] + mc * s_out[..., 0, 0], L_first)
    m_st = np.where(order > 0, mc_last, 1.0)        # blocks stored by the last group
    # WU: the per-tile time charges each tile's loads against the tile before's last
    # compute; a chunk's first loads are exposed instead, and its last compute has no
    # next loads to hide: the difference is min(first, compute of a step).
    # FP/BP likewise: a chunk of n steps takes L + (n-1)*max(L, C) + C, which is
    # n*max(L, C) + min(L, C).
    m_c = np.where(is_wu | (order > 0), mc, 1.0)
    # (double-buffered weights: the loader runs on into the next chunk, loading its first
    # input tiles during this chunk's last steps, so only the job's first chunk fills; WU
    # on the reference RTL likewise: wu_pre)
    fill_chunks = np.where(wdb | wu_pre, 1.0, n_chunks)
    fill = fill_chunks * np.minimum(first, m_c * Cy[..., 0, 0] + so)
    # (FP/BP: a chunk's first tile sets up while the chunk's weights load, so its load
    # is hw.load_setup shorter than a step's L: the reference RTL's loader)
    fill = np.where(is_wu, fill, np.maximum(fill - fill_chunks * hw.load_setup, 0.0))
    # WU: a chunk's first loads are its error tiles and an input tile (first > L), so
    # its first tile takes first + (NB-1)*max(L, C) + C where the per-tile time above
    # charged max(E + NB*L, NB*C): the difference is the fill (all of `first` when the
    # tile is compute-bound, C when it is load-bound, and continuous in between)
    c0 = mc * Cy_init[..., 0, 0] + so
    l0 = L[..., 0, 0]
    fill_wu = (first + (NB - 1) * np.maximum(l0, c0) + c0
               - np.maximum(mc * s_out[..., 0, 0] + NB * l0, NB * c0))
    fill = np.where(is_wu, fill_chunks * fill_wu, fill)
    fill = fill + np.where(is_wu, 0.0, m_st * s_out[..., -1, -1])
    # FP/BP: the stores of a chunk's last group overlap the next chunk's weight load and
    # first input tile; the per-tile times above charged them to the chunk.
    m_io = np.where(order > 0, mc, 1.0)
    s_last = s_out[..., -1, -1]
    excess = np.maximum(0.0, m_io * s_last - steps(e(m_io) * Cy + so)[..., -1, -1])
    t_next = np.where(n_chunks > 1, t_w_full, 0.0) + first
    if hw.wdb:
        t_next = np.where(wdb, np.where(n_chunks > 1, w_exposed, 0.0), t_next)
    fill = fill - np.where(is_wu, 0.0, (n_chunks - 1) * np.minimum(excess, t_next))
    if hw.mask_port:
        # mask tiles share the weights' read port: a chunk's weights wait for the stores
        # (and mask reads) of the chunk before, which are then exposed
        fill = fill + np.where(st_p1, (n_chunks - 1) * m_io * s_last, 0.0)
    if hw.wdb:
        # double-buffered weights: while the array waits at a chunk boundary (an exposed
        # weight load; with a mask, the stores and the load), a loader slower than the
        # array (L > C a step) runs on and fills both IFM halves, so the next chunk's
        # first two steps do not wait for their tiles: up to 2 (L - C) of the wait is
        # the loader's anyway
        wait = np.where(st_p1, m_io * s_last + t_w_full, 0.0) if hw.mask_port \
            else 0.0
        wait = np.where(ovl, w_exposed, np.maximum(wait, w_exposed))
        slack = 2.0 * np.maximum(first0 - (m_c * Cy[..., 0, 0] + so), 0.0)
        fill = fill - np.where(wdb & (n_chunks > 1), (n_chunks - 1) * np.minimum(wait, slack), 0.0)
    # job set-up: the RTL's sequencer counts the output and reduction blocks (2 cycles
    # each, for the layer's and the weight tensor's view) before the first transfer
    setup = np.where(hw.job_overhead > 0, hw.job_overhead + 2.0 * (MB + NB), 0.0)

    # restructured BN: the per-channel constants of the load transforms (scale and shift
    # per operand, three BN BP dx coefficients) load once per job, and the store's
    # per-channel accumulators (fx_depth partial sums a channel, so the adders run at
    # II=1) drain and write their two sums per channel once per job
    consts = (jb["xf"] * (2.0 * (1 + jb["in_extra"]) * jb["red"] + 3.0 * jb["eo_extra"] * jb["out"]
                          + 3.0 * jb["in_extra"] * jb["red"] * is_bp))
    sums = jb["acc"] * 2.0 * jb["out"]
    t_fx = (np.where(consts > 0, consts / bw + hw.dma_start + hw.dram_latency, 0.0)
            + np.where(sums > 0, MB * math.ceil(math.log2(max(2.0, fxd))) * fxd + sums / bw
                       + hw.dma_start, 0.0)) if fused else 0.0
    # FP with a bias or the BN sums' k (reference RTL): the out-channel words load before anything else,
    # at the storer's rate (one run: the DRAM latency, the words, the set-up and handshakes)
    t_bias = bias_on * (hw.bias_overhead + hw.dram_latency
                        + np.ceil(jb["out"] / unit_rate(hw.store_words)))
    # WU with a bias (reference RTL): the error words accumulate into per-channel partial
    # sums as they load (free), then one bias pass after the last chunk: sgd_wb folds each
    # channel's slots (G = min(ACC_DIST, a tile's positions: the largest tile's)) in groups
    # of WUB_GROUP channels, max(G, 3) passes a group (it writes b, the velocity and the
    # gradient copy: three words a channel), after the DRAM latency of its two reads; the
    # last channel is ready (groups - 1)*WUB_GROUP*G' + WUB_GROUP*(G' - 1) + its place in
    # its group after the first, then the velocity and gradient pieces follow (2 words a
    # channel)
    wub_on = jb["bias"] * (hw.wub_overhead > 0) * is_wu
    wub_g = np.maximum(3.0, np.minimum(float(max(hw.acc_dist, 1)),
                                       np.minimum(tr, jb["ro"]) * np.minimum(tc, jb["co"])))
    n_b = jb["out"]
    wub_last = ((np.ceil(n_b / WUB_GROUP) - 1) * WUB_GROUP * wub_g + WUB_GROUP * (wub_g - 1)
                + np.mod(n_b - 1, WUB_GROUP))
    t_wub = wub_on * (hw.wub_overhead + hw.dram_latency + wub_last + 2.0 * n_b)
    # The reference RTL's fused datapath (RtlParams.fuse): a job with a side record reads
    # its 16 words first; a load transform's four constant vectors (red words each, four
    # commands back to back) follow; FP with the BN sums in the store then loads k (as a
    # bias: t_bias) and, after the last store, tile_wr folds each row's 8 partial sums
    # (7 passes of max(2 R + 1, 10) cycles, R = ceil(out / store_words) rows) and writes
    # the two sums (2 R beats); BP's BN BP sums (with the recomputed mask) fold and write
    # the same way, with no k
    sw = unit_rate(hw.store_words)
    t_rec = rec_on * (hw.xf_overhead + hw.dram_latency + math.ceil(XF_RECORD / sw))
    # the constants' rounds, (on, vectors, words a vector): the load transform's (mean,
    # invstd, gamma, beta), BN BP dx's in BP loads and in WU's error tiles (mean, invstd,
    # coef, n, sdy, sdyx), BP's recomputed mask's (into tile_wr); each a DRAM latency, its
    # commands' set-up and its rows
    k_rounds = ((xf_on, 4.0, jb["red"]), (dx_on, 6.0, jb["red"]), (wdx_on, 6.0, jb["out"]),
                (mk_on, 4.0, jb["out"]))
    t_xk = sum(on * (hw.xf_overhead + hw.dram_latency + v * np.ceil(ch / sw))
               for on, v, ch in k_rounds)
    s_rows = np.ceil(jb["out"] / sw)
    t_stats = (stats_on + bps_on) * (hw.stats_overhead + 7.0 * np.maximum(2.0 * s_rows + 1.0, 10.0)
                          + 2.0 * s_rows)
    cycles = (img_steps * tiles_time + t_init + t_wload + t_sgd + fill + setup + t_fx + t_bias
              + t_wub + t_rec + t_xk + t_stats)
    cycles = np.where(feasible, cycles, np.inf)

    # ---- traffic (words) and bursts over the whole job
    tiles_per = lambda a: np.sum(count * a, axis=(-1, -2))  # noqa: E731  sum over one image's tiles
    reps_in = np.where(is_wu | (order > 0), n_chunks, MB)        # input re-reads per tile
    in_total = images * reps_in * NB * tiles_per(in_words)
    in_bursts = images * reps_in * NB * tiles_per(bursts_in)
    o_total = images * MB * tiles_per(out_words)       # written (FP/BP) or read (WU)
    mask_total = (jb["mask"] + jb["st_extra"]) * o_total  # mask (and fused) tiles read by BP
    if fused:    # restructured BN's second streams and per-channel constants and sums
        mask_total = (mask_total + jb["in_extra"] * in_total + jb["eo_extra"] * o_total * is_wu
                      + consts)
    o_bursts = images * MB * tiles_per(bursts_out)
    # bursts per chunk: each run split at the maximum burst
    w_bursts = ((n_chunks - 1) * w_runs * np.ceil(w_full / w_runs / maxb)
                + w_runs_last * np.ceil(w_last / w_runs_last / maxb))
    read_words = in_total + mask_total + np.where(is_wu, o_total + sgd_passes * w_words, w_words)
    write_words = np.where(is_wu, sgd_passes * w_words, o_total)
    bursts = in_bursts + o_bursts + w_bursts * np.where(is_wu, 2 * sgd_passes, 1.0)
    read_words = read_words + bias_on * jb["out"]
    bursts = bursts + bias_on * np.ceil(jb["out"] / maxb)
    # (the reference RTL's fused datapath: the record and the constants read (k: as a
    # bias, above), the two sums written)
    read_words = read_words + rec_on * XF_RECORD + sum(on * v * ch for on, v, ch in k_rounds)
    read_words = read_words + dx_on * in_total         # BN BP dx: y beside dz
    read_words = read_words + wdx_on * o_total         # WU: y beside the error tiles
    write_words = write_words + (stats_on + bps_on) * 2.0 * jb["out"]
    # (the WU bias pass: b and its velocity read, one run each; b, the velocity and the
    # gradient written in pieces)
    read_words = read_words + wub_on * 2.0 * jb["out"]
    write_words = write_words + wub_on * 3.0 * jb["out"]
    if fused:
        write_words = write_words + sums
        bursts = (bursts + jb["in_extra"] * in_bursts + jb["eo_extra"] * is_wu * o_bursts
                  + (consts > 0) + (sums > 0))
    rd_b = maxb
    if hw.sgd_piece > 0:
        # the write-back writes its results in pieces (one burst each) and reads W and V
        # as one run per chunk (double-buffered weights: in pieces of sgd_rpiece words)
        if hw.wdb:
            rd_b = float(sgd_rpiece(maxb))
            w_bursts = np.where(is_wu, (n_chunks - 1) * w_runs * np.ceil(w_full / w_runs / rd_b)
                                + w_runs_last * np.ceil(w_last / w_runs_last / rd_b), w_bursts)
        pieces = (n_chunks - 1) * np.ceil(w_full / hw.sgd_piece) + np.ceil(w_last / hw.sgd_piece)
        bursts = np.where(is_wu, in_bursts + o_bursts + sgd_passes * (w_bursts + pieces), bursts)
    bursts = bursts + wub_on * (2.0 * np.ceil(jb["out"] / rd_b)
                                + 3.0 * np.ceil(jb["out"] / max(hw.sgd_piece, 1)))
    # (the RTL's record and constants reads, the sums' writes: after WU's recount above)
    bursts = (bursts + rec_on + (stats_on + bps_on) * 2.0 * np.ceil(jb["out"] / maxb)
              + sum(on * v * np.ceil(ch / maxb) for on, v, ch in k_rounds)
              + dx_on * in_bursts + wdx_on * o_bursts)
    compute = img_steps * NB * (MB * tiles_per(Cy) + reps_in * so * tiles_per(np.ones_like(Cy)))
    load_cycles = images * reps_in * NB * tiles_per(L)
    return {
        "cycles": cycles, "feasible": feasible, "mc": mc, "tr": tr, "tc": tc, "order": order,
        "read_words": read_words, "write_words": write_words, "bursts": bursts,
        "compute_cycles": compute, "load_cycles": load_cycles, "sgd_cycles": t_sgd,
        "wload_cycles": t_wload,
        "wu_wb_hidden": wu_hide,           # WU write-back cycles hidden (hw.wdb; in sgd_cycles)
        # components, for tests against the layout's burst generator
        "in_words": in_total, "in_bursts": in_bursts, "out_words": o_total,
        "out_bursts": o_bursts, "w_words": w_words, "w_bursts": w_bursts,
        "fx_const_words": consts if fused else np.zeros_like(jb["out"]),
    }


def dram_score(res):
    """A tiling's DRAM words, its cycles breaking ties (a job's cycles, below 1e10, add
    under 0.01 of a word)."""
    return res["read_words"] + res["write_words"] + 1e-12 * res["cycles"]


def choose(jobs: list[Job], hw: HwParams, word_bytes: int, ddr_bytes_per_cycle: float,
           score=None, fixed: dict[int, dict] | None = None,
           p_dim: str = "pixels") -> dict[str, np.ndarray]:
    """Pick each job's best candidate (min ``score``, default cycles); shape (J,).

    ``fixed`` maps a job index to a forced {tr, tc, order, mc} (schedule overrides).
    Jobs with no feasible candidate get cycles = inf.
    """
    jb = job_arrays(jobs)
    cand = candidate_grid(jb)
    res = evaluate(jb, cand, hw, word_bytes, ddr_bytes_per_cycle, p_dim=p_dim)
    s = res["cycles"] if score is None else score(res)
    s = np.where(res["feasible"], s, np.inf)
    best = np.argmin(s, axis=1)
    pick = {k: np.take_along_axis(np.broadcast_to(v, s.shape), best[:, None], 1)
            for k, v in res.items()}
    if fixed:
        for j, f in fixed.items():
            one = {k: np.asarray([[float(f[k])]]) for k in ("tr", "tc")}
            one["order"] = np.asarray([[float(ORDER_CODE[f["order"]])]])
            sub = {k: v[j:j + 1] for k, v in jb.items()}
            mc = None if f.get("mc") is None else np.asarray([[float(f["mc"])]])
            r = evaluate(sub, one, hw, word_bytes, ddr_bytes_per_cycle, mc_override=mc,
                         p_dim=p_dim)
            for k in pick:
                pick[k][j] = np.broadcast_to(r[k], (1, 1))[0]
    return {k: v[:, 0] for k, v in pick.items()}


def evaluate_chosen(jobs: list[Job], tiles: list[tuple[int, int, int, str]], hw: HwParams,
                    word_bytes: float, ddr_bytes_per_cycle: float, layout: str,
                    momentum: bool = True, weights_blocked: bool | None = None,
                    page_words: int | None = None, beat_words: int = 1):
    """Evaluate fixed (tr, tc, mc, order) per job in ``layout``; arrays of shape (J,).

    With ``page_words`` the bursts include the page splits (:func:`page_splits`: every
    tensor starts on a page), also given apart as ``page_splits``.
    """
    jb = job_arrays(jobs)
    cand = {"tr": np.asarray([[t[0]] for t in tiles], float),
            "tc": np.asarray([[t[1]] for t in tiles], float),
            "order": np.asarray([[ORDER_CODE[t[3]]] for t in tiles], float)}
    mc = np.asarray([[t[2]] for t in tiles], float)
    res = evaluate(jb, cand, hw, word_bytes, ddr_bytes_per_cycle, layout, mc_override=mc,
                   momentum=momentum, weights_blocked=weights_blocked)
    out = {k: np.broadcast_to(v, (len(jobs), 1))[:, 0].copy() for k, v in res.items()}
    if page_words:
        wb = (layout == "reshaped") if weights_blocked is None else weights_blocked
        splits = np.asarray([page_splits(j, int(out["tr"][i]), int(out["tc"][i]),
                                         int(out["mc"][i]), t[3], hw, layout, wb, momentum,
                                         page_words, beat_words)
                             for i, (j, t) in enumerate(zip(jobs, tiles))], float)
        out["page_splits"] = splits
        out["bursts"] = out["bursts"] + splits
    return out


# ---- page splits ---------------------------------------------------------------------
# AXI forbids a burst that crosses a 4 KiB page, so a DMA splits such a run in two. Where
# runs cross pages depends on their addresses, not only on their lengths: page_splits
# walks the job's transfers (the same runs the burst counts above price) at their DRAM
# offsets (efgen.layout) from tensor bases that start on a page, as the co-simulation's
# DRAM image and the HLS program's memory map place them. Runs of one kind share a
# length; only their start addresses modulo the page matter, so each kind is a histogram
# over the page's residues, built axis by axis (images, tiles, blocks, groups, rows).

def _residues(axes, page: int) -> np.ndarray:
    """How many runs start at each residue modulo ``page``: the runs start at every sum
    of one offset per axis (each axis an array of word offsets)."""
    h = np.zeros(page)
    h[0] = 1.0
    for offs in axes:
        oh = np.bincount(np.asarray(offs, dtype=np.int64) % page, minlength=page)
        ia, ib = np.nonzero(h)[0], np.nonzero(oh)[0]
        h = np.bincount(((ia[:, None] + ib[None, :]) % page).ravel(),
                        weights=(h[ia][:, None] * oh[ib][None, :]).ravel(), minlength=page)
    return h


def _split_excess(h: np.ndarray, length: int, maxb: int, page: int, wpb: int = 1) -> float:
    """Bursts that runs of ``length`` words starting at residues ``h`` need beyond
    ceil(length / maxb) each: a DMA cuts at the maximum burst and at every page. With
    ``wpb`` words a beat the DMA moves whole beats: a run covers the beats from the one
    holding its first word to the one holding its last (efgen.rtl.dma.axi_bursts), so an
    unaligned run may need one burst more."""
    if length <= 0 or not h.any():
        return 0.0
    r = np.arange(page)
    a0 = r - r % wpb                                   # the first beat's first word
    span = -(-(length + r % wpb) // wpb) * wpb         # whole beats, in words
    first = np.minimum(span, page - a0)
    rest = span - first
    cd = lambda a, b: -(-a // b)  # noqa: E731
    n = cd(first, maxb) + (rest // page) * cd(page, maxb) + cd(rest % page, maxb)
    return float(np.dot(h, n - cd(length, maxb)))


def _tile_spans(n_out: int, t: int, src_len: int, k: int, s: int, lo: int, dil: int,
                bp: bool) -> dict[int, list[int]]:
    """Source rows (or columns) each tile along one axis loads, as {count: [first, ...]}
    (the loader's validity window; see :func:`_src_span`)."""
    out: dict[int, list[int]] = {}
    for i in range(-(-n_out // t)):
        size = min(t, n_out - i * t)
        if bp:
            a, ext, off = i * t, size + k - 1, lo
        else:
            a, ext, off = i * t * s - lo, (size - 1) * s + k, 0
        h_lo = max(0, -(-(a - off) // dil))
        h_hi = min(src_len - 1, (a + ext - 1 - off) // dil)
        if h_hi >= h_lo:
            out.setdefault(h_hi - h_lo + 1, []).append(h_lo)
    return out


def _map_runs(tiles_r, tiles_c, hmap: int, wmap: int, chans: int, lane: int, blk: int,
              major: bool, images: int) -> list[tuple[list, int]]:
    """(axes, run length) of every run reading or writing the given tiles of a map of
    ``chans`` channels (``lane`` words a position, ``blk`` channels a block), one pass
    over images, tiles and channel blocks; tiles_* are {extent: [first row/col, ...]}."""
    T = lane
    cb = -(-chans // T)
    if major:                               # 1 x B map: (b, c) at (b*cb + c//T)*T + c%T
        s_col, s_row, s_grp, s_img = cb * T, 0, T, 0
    else:
        s_col, s_row, s_grp, s_img = T, wmap * T, hmap * wmap * T, cb * hmap * wmap * T
    s_blk = (blk // T) * s_grp
    runs = []
    nblk = -(-chans // blk)
    for nb in range(nblk):
        ngrp = -(-min(blk, chans - nb * blk) // T)
        for nr, r_first in tiles_r.items():
            for nc, c_first in tiles_c.items():
                base = [np.arange(images) * s_img, [nb * s_blk],
                        np.asarray(r_first) * s_row, np.asarray(c_first) * s_col]
                if major:
                    runs.append((base + [np.arange(nc) * s_col], ngrp * T))
                elif nc == wmap and nr == hmap:
                    runs.append((base, ngrp * nr * nc * T))
                elif nc == wmap:
                    runs.append((base + [np.arange(ngrp) * s_grp], nr * nc * T))
                else:
                    runs.append((base + [np.arange(ngrp) * s_grp, np.arange(nr) * s_row],
                                 nc * T))
    return runs


def page_splits(job: Job, tr: int, tc: int, mc: int, order: str, hw: HwParams,
                layout: str, weights_blocked: bool, momentum: bool = True,
                page_words: int = 1024, beat_words: int = 1) -> float:
    """Extra bursts of one layer-phase because runs cross ``page_words`` pages, with
    every tensor's base on a page (the bursts :func:`evaluate` counts split at the
    maximum burst only), and, with ``beat_words`` words a beat, because a run's
    unaligned ends take whole beats."""
    page = int(page_words)
    maxb = int(hw.max_burst_beats * hw.port_words)
    tm, tn = hw.tm, hw.tn
    T = hw.lanes if layout == "reshaped" else 1
    MB, NB = -(-job.out // tm), -(-job.red // tn)
    mc = max(1, min(mc, MB))
    n_chunks = -(-MB // mc)
    io_like = order == "io" or job.phase == "wu"
    bp = job.phase == "bp"
    total = 0.0
    # input tiles (one pass per output block, wo, or per chunk, io and WU)
    if job.img_major:
        cols = {}
        for j in range(-(-job.co // tc)):
            cols.setdefault(min(tc, job.co - j * tc), []).append(j * tc)
        rows_t = {1: [0]}
    else:
        rows_t = _tile_spans(job.ro, tr, job.hs, job.k, job.s, job.lo, job.dil, bp)
        cols = _tile_spans(job.co, tc, job.ws, job.k, job.s, job.lo, job.dil, bp)
    reps = n_chunks if io_like else MB
    for axes, length in _map_runs(rows_t, cols, job.hs, job.ws, job.red, T, tn,
                                  job.img_major, job.images):
        total += reps * _split_excess(_residues(axes, page), length, maxb, page, beat_words)
    # output tiles: stores (FP/BP; a masked BP reads the mask tile at the same offsets
    # of the layer input) or WU error tiles
    ot_r, ot_c = {}, {}
    for i in range(-(-job.ro // tr)):
        ot_r.setdefault(min(tr, job.ro - i * tr), []).append(i * tr)
    for j in range(-(-job.co // tc)):
        ot_c.setdefault(min(tc, job.co - j * tc), []).append(j * tc)
    if job.img_major:
        ot_r = {1: [0]}
    for axes, length in _map_runs(ot_r, ot_c, job.ro, job.co, job.out, T, tm,
                                  job.img_major, job.images):
        total += (1 + job.mask) * _split_excess(_residues(axes, page), length, maxb, page, beat_words)
    # weights: per chunk (FP, BP) or the write-back's runs (WU)
    k2 = job.k * job.k
    MBW, NBW = -(-job.dram_m // tm), -(-job.dram_n // tn)
    pw = k2 * tm * tn
    w_runs = []                                 # (offset, words)
    for c in range(n_chunks):
        obf, cnt = c * mc, min(mc, MB - c * mc)
        if bp:
            n_lo, n_hi = obf * tm, min(job.dram_n, (obf + cnt) * tm)
            if weights_blocked:
                lo_b, hi_b = n_lo // tn, -(-n_hi // tn)
                w_runs += [(wm * NBW * pw + lo_b * pw, (hi_b - lo_b) * pw) for wm in range(MBW)]
            else:
                w_runs += [((m * job.dram_n + n_lo) * k2, (n_hi - n_lo) * k2)
                           for m in range(job.dram_m)]
        elif weights_blocked:
            w_runs.append((obf * NBW * pw, cnt * NBW * pw))
        else:
            w_runs.append((obf * tm * job.red * k2,
                           (min(job.out, (obf + cnt) * tm) - obf * tm) * job.red * k2))
    passes = 2 if momentum else 1
    for off, words in w_runs:
        h = _residues([[off]], page)
        if job.phase != "wu":
            total += _split_excess(h, words, maxb, page, beat_words)
        elif hw.sgd_piece > 0:
            # W and V read as one run each; W' and V' written in pieces from the run's start
            piece = hw.sgd_piece
            total += passes * _split_excess(h, words, maxb, page, beat_words)
            if words // piece:
                total += passes * _split_excess(
                    _residues([[off], np.arange(words // piece) * piece], page), piece, maxb, page, beat_words)
            if words % piece:
                total += passes * _split_excess(_residues([[off + words - words % piece]], page),
                                                words % piece, maxb, page, beat_words)
        else:
            total += 2 * passes * _split_excess(h, words, maxb, page, beat_words)
    return total


def packed_taps(red, k, phase, img_major, hw: HwParams):
    """Kernel taps a reduction lane group carries (1: no packing): with ``hw.pack`` an FP
    or WU job whose reduction channels fill less than half of Tn puts ``taps`` kernel
    offsets side by side in the lanes, lane ``t*red + c`` holding (channel c, offset
    ``pass*taps + t``). BP (which never runs on a first layer) and linear jobs do not
    pack. Works on numpy arrays or scalars."""
    red, k = np.asarray(red, float), np.asarray(k, float)
    taps = np.minimum(k * k, np.floor(hw.tn / np.maximum(red, 1.0)))
    ok = (bool(hw.pack) & (np.asarray(phase) != BP) & (np.asarray(img_major) <= 0)
          & (2 * red <= hw.tn) & (k > 1))
    return np.where(ok, np.maximum(taps, 1.0), 1.0)


def kernel_passes(jb: dict[str, np.ndarray], hw: HwParams) -> np.ndarray:
    """Passes over the kernel per pixel: K*K, or ceil(K*K / taps) for a packed job."""
    k2 = jb["k"] ** 2
    return np.ceil(k2 / packed_taps(jb["red"], jb["k"], jb["phase"], jb["img_major"], hw))


def fx_depth(hw: HwParams) -> int:
    """Pipeline depth (cycles) of the load/store transform units of the restructured
    batchnorm: a multiply-add for the per-channel affine, a second for BN BP's
    dx = a*dy + b*x_hat + c, and a compare/select for the ReLU."""
    return 2 * hw.mac_depth + 1


def min_wbuf_depth(jobs: list[Job], tn: int) -> int:
    """Smallest weight-bank depth that holds one output block of every job."""
    return max(math.ceil(j.red / tn) * j.k * j.k for j in jobs) if jobs else 1


def tune_allocator() -> None:
    """Keep freed memory in the process (glibc only; results are unaffected).

    The engine allocates and frees arrays of about a megabyte per layer-phase. With
    glibc's defaults each free trims the heap or unmaps the block and the next call
    faults the pages back in: measured, that was half of a sweep's run time in kernel
    page-zeroing. A fixed mmap threshold and a large trim threshold keep the pages.
    """
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-1, 512 * 1024 * 1024)   # M_TRIM_THRESHOLD
        libc.mallopt(-3, 32 * 1024 * 1024)    # M_MMAP_THRESHOLD (glibc's maximum)
    except (OSError, AttributeError):         # not glibc: leave the allocator alone
        pass
