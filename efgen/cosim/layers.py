"""Co-simulation of the reference RTL against the golden model, layer-phase by layer-phase.

A :class:`LayerPhase` is one conv or linear layer in one phase (FP, BP or WU) with its
tiling. :func:`run_layer_phases` builds ONE DRAM image holding the inputs of every case
(random, seeded; feature maps through :class:`efgen.layout.FeatureMapLayout` in the RTL's
layout, weights and momentum blocked (Tm, Tn)), generates the RTL, runs all cases one
after the other under cocotb (sim/top/cocotb_top.py: AxiLiteMaster writes each
descriptor and starts it; DRAM is cocotbext-axi's AxiRamRead/AxiRamWrite with a
pipelined read latency), and compares every output tensor with the golden model
(:mod:`efgen.golden.ops`), as max |rtl - golden| / max |golden|.

Per case it also records the cycles from start to done (the CYCLES register) and the AXI
bursts of each port, for :mod:`efgen.cosim.validate` to set against the analytical model.

Bus faults and back-pressure (:func:`run_passes`): one simulation runs several passes,
each from the same DRAM image and dumped after its last run: optionally with random
back-pressure and idle cycles on every AXI channel (``Pause``), runs with AXI error
responses on chosen address ranges (``Fault``) or with descriptor registers overridden
(``Run.set``, e.g. a tile the buffers cannot hold). A run's STATUS and FAIL_ADDR come
back in its :class:`Result` (``error``: :func:`efgen.rtl.dma.status_error`).
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from efgen.errors import EfgenError
from efgen.golden import ops
from efgen.hls.desc import make_desc
from efgen.hls.fused import bn_term, xf_record
from efgen.layout import FeatureMapLayout, WeightLayout
from efgen.rtl.dma import REGISTER_MAP, desc_register_writes, status_error
from efgen.rtl.engine import wu_chunk, wu_copies
from efgen.rtl.top import BIAS_BUF, RtlParams, rtl_adds_bias, rtl_verilog

ALIGN = 1024                # words: regions start on a 4 KiB page
DRAM_LATENCY = 24           # cycles from AR to first R beat (DDR4 behind a Zynq HP port, ~100 MHz PL)
BAR = 1e-4                  # max relative error per tensor
POISON = 0xFFC0DEAD         # a NaN: outputs the RTL fails to write show up as NaN
PHASES = ("fp", "bp", "wu")
SGD = (0.05, 0.9, 5e-4)     # lr, momentum, weight decay of the WU cases
#: Where Verilator builds are kept (one per simulator + parameter hash); None: per run.
BUILD_CACHE: Path | None = None


@dataclass(frozen=True)
class LayerPhase:
    """One conv/linear layer-phase and its tiling (tr, tc, mc, order as in the Design)."""

    name: str
    op: str                 # "conv" or "linear"
    n: int                  # input channels / features
    m: int                  # output channels / features
    h: int = 1
    w: int = 1
    k: int = 1
    s: int = 1
    p: int = 0
    batch: int = 1
    phase: str = "fp"
    relu: bool = False      # FP: a fused ReLU clamps the store
    tr: int = 1
    tc: int = 1
    mc: int = 1
    order: str = "wo"
    mask: bool = False      # BP: a fused ReLU mask, dx * (x > 0) with x the layer's input
    bias: bool = False      # FLAG_BIAS. FP: y = conv + b (then the ReLU), b at a[2]; WU: the
                            # bias gradient and SGD of b (a[4]), velocity a[5], gradient a[7]
    stats: bool = False     # FLAG_XF and FLAG_STATS (restructured BN, RtlParams.fuse): FP, the
                            # store's sums sum(y - k), sum((y - k)^2) to the record's SSUM; BP
                            # (with mk), the BN BP sums sum(dx), sum(dx * x_hat) of the masked
                            # error, x_hat = (src - mean)*invstd
    mk: bool = False        # BP with FLAG_MASK and a record MK (RtlParams.fuse): the mask
                            # source is a fused BN's input and the mask is bn(src) > 0
    xf: int = 0             # FP/WU with FLAG_XF and LK1 (RtlParams.fuse): the input x loads as
                            # gamma*((x - mean)*invstd) + beta per channel, 2: then the ReLU
    dx: bool = False        # BP with FLAG_XF and a record LMODE 1 (RtlParams.fuse): the input
                            # dz loads as a batchnorm's BP dx (y at LX2, constants LK1, LK2)
    se: bool = False        # BP with FLAG_XF, record SE (RtlParams.fuse): the store adds another
                            # sender's error (a tensor of dx's shape) before the mask
    sk: bool = False        # BP with mk and stats, record SK: the mask source is the stored BN
                            # output (the mask src > 0) and the sums' x_hat comes from the BN
                            # input y at SK

    @property
    def out_hw(self) -> tuple[int, int]:
        if self.op == "linear":
            return 1, 1
        return (ops.conv_out_size(self.h, self.k, self.s, self.p),
                ops.conv_out_size(self.w, self.k, self.s, self.p))

    @property
    def label(self) -> str:
        return f"{self.name}:{self.phase}"

    def shapes(self) -> dict[str, tuple]:
        ho, wo = self.out_hw
        if self.op == "linear":
            return {"x": (self.batch, self.n), "y": (self.batch, self.m),
                    "w": (self.m, self.n, 1, 1)}
        return {"x": (self.batch, self.n, self.h, self.w), "y": (self.batch, self.m, ho, wo),
                "w": (self.m, self.n, self.k, self.k)}


def layer_phases(net, design, p: RtlParams | None = None,
                 batch: int | None = None) -> list[LayerPhase]:
    """Every conv/linear layer-phase of ``net`` with the tiling ``design`` chose for it.

    With ``p``, a WU chunk is shrunk where the RTL's G gradient partial sums per word
    (K*K < the accumulator distance) do not fit its weight buffer; the Design's model
    does not know G.
    """
    from efgen.model.fusion import bp_store_masks, fused_relus

    into = {net[r].inputs[0] for r in fused_relus(net)}    # producers that clamp at the store
    masks = bp_store_masks(net)                             # BP stores that apply a ReLU mask
    b = batch or design.batch
    out = []
    for l in net:
        if l.op not in ("conv", "linear"):
            continue
        for ph in PHASES:
            if (ph == "bp" and not l.runs_bp) or (ph == "wu" and not l.trainable):
                continue
            t = design.tiling(l.name, ph)
            mc = t.mc
            k = l.kernel if l.op == "conv" else 1
            if p is not None and ph == "wu":
                mc = wu_chunk(mc, l.in_shape[0], k, p.tn, p.engine.wbuf_depth)
            relu = ph == "fp" and l.name in into
            # FP with a bias: the RTL adds it; WU: the RTL does the bias gradient and its
            # SGD (both up to BIAS_BUF channels; wider: the host)
            bias = bool(l.bias) and ph in ("fp", "wu") and rtl_adds_bias(l.channels)
            mask = ph == "bp" and l.name in masks
            if l.op == "conv":
                n, h, w = l.in_shape
                lp = LayerPhase(l.name, "conv", n, l.channels, h, w, l.kernel, l.stride,
                                l.padding, b, ph, relu, t.tr, t.tc, mc, t.order, mask, bias)
            else:
                lp = LayerPhase(l.name, "linear", l.in_shape[0], l.channels, batch=b,
                                phase=ph, relu=relu, tr=1, tc=min(t.tc, b), mc=mc,
                                order=t.order, mask=mask, bias=bias)
            out.append(lp)
    if getattr(design.hw, "fuse", False):
        from dataclasses import replace

        fx = program_fields(design)
        out = [replace(lp, **fx[lp.label]) if lp.label in fx else lp for lp in out]
    return out


def program_fields(design) -> dict[str, dict]:
    """``layer:phase`` -> the LayerPhase fields a fused Design's program (efgen.hls.program,
    its side records: efgen.hls.fused) gives each conv/linear descriptor: FP's store ReLU
    and BN sums (``relu``, ``stats``) and load transform (``xf``: LK1, 2 with LRELU); BP's
    mask (``mask``, ``mk``: recomputed from a fused BN's input at MK), BN BP sums
    (``stats``), dx load (``dx``: LMODE 1) and store operands (``se``: another sender's
    error at SE; ``sk``: the sums' y at SK); WU's dx load (``dx``) and input transform
    (``xf``: LK1 without LMODE 1, or with MK, the wdx2 WU). The unfused program's flags are
    the net's (:func:`layer_phases`)."""
    from efgen.hls.desc import FLAGS, OPS
    from efgen.hls.fused import read_record
    from efgen.hls.program import build_program

    prog = build_program(design.net_ir, design, 0.01, 0.9, 5e-4)
    conv = {OPS["CONV_FP"], OPS["CONV_BP"], OPS["CONV_WU"]}
    out = {}
    for s in prog.fp + prog.bp:
        d = s.desc
        if d.op not in conv:
            continue
        fl = d.flags
        rec = {}
        if fl & FLAGS["XF"]:
            rec = read_record(np.asarray(prog.regions[f"xf:{s.layer}:{s.what}"].data), 0)
        dx = rec.get("LMODE") == 1
        xf = (2 if rec["LRELU"] else 1) if rec.get("LK1") and (
            s.what == "fp" or (s.what == "wu" and (not dx or rec["MK"]))) else 0
        if s.what == "fp":
            f = dict(relu=bool(fl & FLAGS["RELU"]), stats=bool(fl & FLAGS["STATS"]), xf=xf)
        elif s.what == "bp":
            f = dict(mask=bool(fl & FLAGS["MASK"]), mk=bool(rec.get("MK")),
                     stats=bool(fl & FLAGS["STATS"]), dx=dx, se=bool(rec.get("SE")),
                     sk=bool(rec.get("SK")))
        else:
            f = dict(dx=dx, xf=xf)
        out[f"{s.layer}:{s.what}"] = f
    return out


def distinct(lps: list[LayerPhase]) -> list[LayerPhase]:
    """One layer-phase per distinct shape and tiling (the first one's name)."""
    seen, out = set(), []
    for lp in lps:
        key = (lp.op, lp.n, lp.m, lp.h, lp.w, lp.k, lp.s, lp.p, lp.batch, lp.phase, lp.relu,
               lp.stats, lp.mk, lp.xf, lp.dx, lp.se, lp.sk,
               lp.tr, lp.tc, lp.mc, lp.order, lp.mask, lp.bias)
        if key not in seen:
            seen.add(key)
            out.append(lp)
    return out


# ------------------------------------------------------------------ DRAM image

@dataclass
class _Case:
    lp: LayerPhase
    regions: dict[str, tuple[int, tuple, str]] = field(default_factory=dict)  # name -> (addr, shape, kind)
    expect: dict[str, np.ndarray] = field(default_factory=dict)
    regs: list = field(default_factory=list)
    slots: dict = field(default_factory=dict)    # descriptor address slot -> word address
    desc: object = None                          # the EfgenDesc the registers encode


@dataclass(frozen=True)
class Result:
    """One co-simulated layer-phase."""

    lp: LayerPhase
    max_rel: float
    errors: dict          # output tensor -> relative error
    cycles: int
    bursts: tuple         # (rd port 0, rd port 1, wr port)
    beats: tuple
    status: int = 0       # the STATUS register after the run
    fail_addr: int = 0    # FAIL_ADDR
    faulted: tuple | None = None   # (port, burst byte address, resp) the testbench failed first

    @property
    def error(self) -> str | None:
        """The error the accelerator reported (None: the run ended cleanly)."""
        return status_error(self.status, self.fail_addr)

    @property
    def ok(self) -> bool:
        return self.max_rel <= BAR and self.error is None


@dataclass(frozen=True)
class Fault:
    """AXI error responses (``resp`` 2 SLVERR, 3 DECERR) for every beat of ``port`` (0, 1:
    read ports, 2: write port) in ``words`` words from word ``offset`` of the case's
    descriptor address slot a[``slot``]."""

    port: int
    slot: int
    offset: int = 0
    words: int = 1
    resp: int = 2


@dataclass(frozen=True)
class Run:
    """One descriptor run of a pass: case ``case`` (an index into the layer-phases), with
    ``faults`` and registers overridden by ``set`` ((name, value), ...: descriptor or
    pointer registers); ``abort_at``: the host writes ABORT that many cycles after START."""

    case: int
    faults: tuple = ()
    set: tuple = ()
    abort_at: int | None = None


@dataclass(frozen=True)
class Pause:
    """Random back-pressure: each cycle every AXI channel pauses with probability ``prob``."""

    seed: int
    prob: float = 0.3


@dataclass
class PassResult:
    results: list          # Result per Run (outputs compared from the pass's final DRAM)
    dump: np.ndarray       # the DRAM after the pass
    image: np.ndarray      # the DRAM before it


class _Image:
    def __init__(self):
        # the first page stays empty: word address 0 is a side record's "none" (LK1 = 0: no
        # transform), so no region may start there
        self.words = np.zeros(ALIGN, np.uint32)

    def alloc(self, n: int) -> int:
        at = -(-self.words.size // ALIGN) * ALIGN
        self.words = np.concatenate([self.words, np.zeros(at + n - self.words.size, np.uint32)])
        return at

    def put(self, flat: np.ndarray) -> int:
        at = self.alloc(flat.size)
        self.words[at:at + flat.size] = flat.view(np.uint32)
        return at

    def get(self, at: int, n: int) -> np.ndarray:
        """The ``n`` float32 words put at ``at``."""
        return self.words[at:at + n].view(np.float32).copy()

    def poison(self, n: int) -> int:
        at = self.alloc(n)
        self.words[at:at + n] = POISON
        return at


def _layouts(p: RtlParams):
    fm = FeatureMapLayout("blocked", p.tl) if p.layout == "reshaped" else FeatureMapLayout("nchw")
    return fm, WeightLayout("blocked", p.tm, p.tn)


def _build(p: RtlParams, lps: list[LayerPhase], seed: int):
    rng = np.random.default_rng(seed)
    fm, wl = _layouts(p)
    img = _Image()
    cases = []
    for lp in lps:
        c = _Case(lp)
        sh = lp.shapes()
        f32 = lambda shape, scale=1.0: (rng.standard_normal(shape) * scale).astype(np.float32)  # noqa: E731

        def bn_dx(dy):
            # LMODE 1: dy (dz) is a batchnorm's output error; the conv's error is the BN's
            # dx (efgen.golden.ops.bn_bp on the BN's input yb, float64), and the record
            # carries what the fused program's BN_BP (FLAG_DXK) leaves: LK1 -> mean,
            # invstd, coef = gamma*invstd/n, n; LK2 -> sdy, sdyx; LX2 -> yb. Returns (the
            # BN's dx, the record's fields).
            axes = (0,) + tuple(range(2, dy.ndim))
            yb = (f32(sh["y"]) * 1.5 + f32((1, lp.m) + (1,) * (dy.ndim - 2))).astype(np.float32)
            yb64 = yb.astype(np.float64)
            chan = (1, lp.m) + (1,) * (dy.ndim - 2)
            mean = yb64.mean(axis=axes)
            invstd = 1.0 / np.sqrt(yb64.var(axis=axes) + 1e-5)
            gamma = f32((lp.m,)).astype(np.float64)
            cache = {"xhat": (yb64 - mean.reshape(chan)) * invstd.reshape(chan),
                     "invstd": invstd}
            dxb, sdyx, sdy = ops.bn_bp(dy.astype(np.float64), cache, gamma)
            cnt = dy.size // lp.m
            k1 = np.concatenate([mean, invstd, gamma * invstd / cnt,
                                 np.full(lp.m, float(cnt))]).astype(np.float32)
            k2 = np.concatenate([sdy, sdyx]).astype(np.float32)
            lk1, lk2, lx2 = img.put(k1), img.put(k2), img.put(fm.pack(yb))
            return dxb, dict(lk1=lk1, lx2=lx2, lk2=lk2, lmode=1)
        def bn_consts():
            # a BN's constants block as a consumer reads it: mean, invstd, gamma, beta
            # (n words each)
            return np.stack([f32((lp.n,), 0.5), (np.abs(f32((lp.n,))) + 0.5).astype(np.float32),
                             f32((lp.n,)), f32((lp.n,), 0.5)])

        w = f32(sh["w"], 1.0 / math.sqrt(lp.n * lp.k * lp.k))
        a = {}
        lk = 0
        if lp.xf:
            kv = bn_consts()
            lk = img.put(kv.reshape(-1))

        def loaded(x):
            if not lp.xf:
                return x.astype(np.float64)
            t = bn_term(x.astype(np.float64).reshape(x.shape[0], lp.n, -1, 1),
                        kv.astype(np.float64)).reshape(x.shape)
            return np.maximum(t, 0.0) if lp.xf == 2 else t

        if lp.phase == "fp":
            x = f32(sh["x"])
            a[0] = img.put(fm.pack(x))
            a[1] = img.put(wl.pack(w))
            bias = None
            if lp.bias:
                bias = f32((lp.m,))
                a[2] = img.put(bias)
            a[7] = img.poison(fm.size(sh["y"]))
            x64 = loaded(x).reshape(sh["x"][0], lp.n, lp.h, lp.w) if lp.op == "conv" \
                else loaded(x).reshape(lp.batch, lp.n, 1, 1)
            y = ops.conv_fp(x64, w.astype(np.float64), None if bias is None else
                            bias.astype(np.float64), lp.s if lp.op == "conv" else 1,
                            lp.p if lp.op == "conv" else 0)
            if lp.relu:
                y = np.maximum(y, 0.0)
            c.regions["y"] = (a[7], sh["y"], "fm")
            c.expect["y"] = y.reshape(sh["y"])
            sk = ssum = 0
            if lp.stats:
                # the shift k (a running mean) near the channels' means, so the sums
                # neither vanish nor are all the same sign
                k = f32((lp.m,), 0.5)
                sk = img.put(k)
                ssum = img.poison(2 * lp.m)
                yk = y.reshape(y.shape[0], lp.m, -1) - k.astype(np.float64)[None, :, None]
                c.regions["s1"] = (ssum, (lp.m,), "v")
                c.regions["s2"] = (ssum + lp.m, (lp.m,), "v")
                c.expect["s1"] = yk.sum(axis=(0, 2))
                c.expect["s2"] = (yk * yk).sum(axis=(0, 2))
            if lp.stats or lp.xf:
                a[3] = img.put(xf_record(lk1=lk, relu=lp.xf == 2, sk=sk, ssum=ssum))
            op = "CONV_FP"
        elif lp.phase == "bp":
            dy = f32(sh["y"])
            a[0] = img.put(fm.pack(dy))
            a[1] = img.put(wl.pack(w))
            a[7] = img.poison(fm.size(sh["x"]))
            dy64, rec = dy.astype(np.float64), {}      # rec: the side record's fields
            if lp.dx:
                dy64, rec = bn_dx(dy)
            if lp.op == "conv":
                dx = ops.conv_bp(dy64, w.astype(np.float64), lp.s, lp.p, (lp.h, lp.w))
            else:
                dx = dy64 @ w.astype(np.float64).reshape(lp.m, lp.n)
            if lp.se:
                # another sender's error, added in the store before the mask
                e2 = f32(sh["x"])
                rec["se"] = img.put(fm.pack(e2))
                dx = dx + e2.astype(np.float64).reshape(dx.shape)
            if lp.mask:
                src = f32(sh["x"])
                src4 = src.reshape(lp.batch, lp.n, -1, 1)
                if lp.mk:
                    kv = bn_consts()            # the fused BN's constants (record MK)
                    k64 = kv.astype(np.float64)
                if lp.sk:
                    # the stored BN output is the mask source (src > 0); x_hat from the
                    # BN input y at SK with MK's mean and invstd
                    y_in = f32(sh["x"])
                    rec["sk"] = img.put(fm.pack(y_in))
                    xsrc4 = y_in.reshape(src4.shape).astype(np.float64)
                    msrc = src4.astype(np.float64)
                elif lp.mk:
                    # src redrawn where bn(src) is within 1e-3 of 0, so the float32
                    # datapath's mask is the float64 golden's
                    while np.any(near := np.abs(bn_term(src4.astype(np.float64), k64)) < 1e-3):
                        src4[near] = f32((int(near.sum()),))
                    msrc = bn_term(src4.astype(np.float64), k64)
                    xsrc4 = src4.astype(np.float64)
                else:
                    msrc = src4.astype(np.float64)
                a[6] = img.put(fm.pack(src))
                dx = dx.reshape(msrc.shape) * (msrc > 0)
                if lp.stats:
                    # the BN BP sums of the masked error, x_hat from the mask source
                    ssum = img.poison(2 * lp.n)
                    xhat = (xsrc4 - k64[0][None, :, None, None]) * k64[1][None, :, None, None]
                    c.regions["s1"] = (ssum, (lp.n,), "v")
                    c.regions["s2"] = (ssum + lp.n, (lp.n,), "v")
                    c.expect["s1"] = dx.sum(axis=(0, 2, 3))
                    c.expect["s2"] = (dx * xhat).sum(axis=(0, 2, 3))
                if lp.mk:
                    rec.update(mk=img.put(kv.reshape(-1)), ssum=ssum if lp.stats else 0)
            if rec:
                a[3] = img.put(xf_record(**rec))
            c.regions["dx"] = (a[7], sh["x"], "fm")
            c.expect["dx"] = dx.reshape(sh["x"])
            op = "CONV_BP"
        else:
            dy, x = f32(sh["y"]), f32(sh["x"])
            vel = f32(sh["w"], 0.1)
            a[0] = img.put(fm.pack(dy))
            a[1] = img.put(fm.pack(x))
            a[2] = img.put(wl.pack(w))
            a[3] = img.put(wl.pack(vel))
            a[6] = 0
            if lp.xf:
                a[7] = img.put(xf_record(lk1=lk, relu=lp.xf == 2))
            dy64 = dy.astype(np.float64)
            if lp.dx:                       # LMODE 1: the error tiles load as the BN's dx
                dy64, rec = bn_dx(dy)
                if lp.xf:
                    # and the input tiles as the affine transform (the C++'s wdx2): the dx
                    # constants at MK (LK1's four vectors, then LK2's two: one block), y at
                    # SK, LK1/LRELU the input's
                    blk = img.put(np.concatenate([img.get(rec["lk1"], 4 * lp.m),
                                                  img.get(rec["lk2"], 2 * lp.m)]))
                    rec = dict(lk1=lk, relu=lp.xf == 2, sk=rec["lx2"], mk=blk, lmode=1)
                a[7] = img.put(xf_record(**rec))
            if lp.op == "conv":
                g = ops.conv_wu(dy64, loaded(x), lp.s, lp.p, lp.k)
            else:
                g = (dy64.T @ loaded(x)).reshape(sh["w"])
            lr, mom, wd = SGD
            v2 = mom * vel.astype(np.float64) + (g + wd * w.astype(np.float64))
            w2 = w.astype(np.float64) - lr * v2
            c.regions["w"] = (a[2], sh["w"], "w")
            c.regions["vel"] = (a[3], sh["w"], "w")
            c.expect["w"] = w2
            c.expect["vel"] = v2
            if lp.bias:
                # FLAG_BIAS: gb = dy summed over (batch, h, w), its SGD on b (a[4]) and the
                # velocity (a[5]), the debug copy of gb at a[7]
                b, vb = f32((lp.m,)), f32((lp.m,), 0.1)
                a[4], a[5] = img.put(b), img.put(vb)
                a[7] = img.poison(lp.m)
                gb = dy.astype(np.float64).reshape(lp.batch, lp.m, -1).sum(axis=(0, 2))
                vb2 = mom * vb.astype(np.float64) + (gb + wd * b.astype(np.float64))
                c.regions["b"] = (a[4], (lp.m,), "v")
                c.regions["vb"] = (a[5], (lp.m,), "v")
                c.regions["gb"] = (a[7], (lp.m,), "v")
                c.expect["b"] = b.astype(np.float64) - lr * vb2
                c.expect["vb"] = vb2
                c.expect["gb"] = gb
            op = "CONV_WU"
        ho, wo = lp.out_hw
        geo = dict(batch=lp.batch, in_c=lp.n, in_h=lp.h if lp.op == "conv" else 1,
                   in_w=lp.w if lp.op == "conv" else 1, out_c=lp.m, out_h=ho, out_w=wo,
                   kh=lp.k, kw=lp.k, stride=lp.s, pad=lp.p, tr=lp.tr, tc=lp.tc, mc=lp.mc,
                   order=0 if lp.order == "wo" else 1)
        lr, mom, wd = SGD
        flags = (["RELU"] if lp.relu else []) + (["MASK"] if lp.mask else []) + \
            (["BIAS"] if lp.bias else []) + \
            (["XF"] if lp.stats or lp.xf or lp.mk or lp.dx or lp.se else []) + \
            (["STATS"] if lp.stats else [])
        d = make_desc(op, flags, a, lr=lr, momentum=mom,
                      weight_decay=wd, **geo)
        c.desc = d
        c.regs = [[o, v] for o, v in desc_register_writes(d)]
        c.slots = dict(a)
        cases.append(c)
    return img, cases


def case_descriptors(p: RtlParams, lps: list[LayerPhase], seed: int = 0) -> list:
    """The descriptors (EfgenDesc) of ``lps`` on the DRAM image that
    :func:`run_layer_phases` with the same ``seed`` builds: the same calls run the HLS
    C++ (efgen_conv_engine) on that image."""
    return [c.desc for c in _build(p, lps, seed)[1]]


def _read(p: RtlParams, dump: np.ndarray, addr: int, shape: tuple, kind: str) -> np.ndarray:
    if kind == "v":                    # a plain vector (the WU bias, its velocity, gradient)
        return dump[addr:addr + shape[0]].view(np.float32).copy()
    fm, wl = _layouts(p)
    lay = fm if kind == "fm" else wl
    n = lay.size(shape)
    return lay.unpack(dump[addr:addr + n].view(np.float32), shape)


def check_params(p: RtlParams, lps: list[LayerPhase]) -> None:
    """One-line errors for layer-phases this RTL cannot run."""
    e = p.engine
    for lp in lps:
        where = f"layer {lp.name!r} ({lp.phase})"
        if lp.s not in (1, 2, 4):
            raise EfgenError(f"{where}: stride {lp.s}; the reference RTL supports 1, 2, 4")
        if lp.k > e.kmax:
            raise EfgenError(f"{where}: kernel {lp.k} > the RTL's kmax {e.kmax}")
        if lp.stats and not (p.fuse and ((lp.phase == "fp" and not lp.bias and lp.m <= BIAS_BUF)
                                         or (lp.phase == "bp" and lp.mk))):
            raise EfgenError(f"{where}: the BN sums in the store (FLAG_STATS) need an RTL "
                             f"built with the fused store (RtlParams.fuse): FP with no bias and "
                             f"out_c <= {BIAS_BUF}, or BP with a recomputed mask (mk)")
        if lp.mk and not (p.fuse and lp.phase == "bp" and lp.mask and lp.n <= BIAS_BUF):
            raise EfgenError(f"{where}: the recomputed ReLU mask (record MK) needs an RTL built "
                             f"with the fused store (RtlParams.fuse), BP with the mask, in_c <= "
                             f"{BIAS_BUF}")
        if lp.xf and not (p.fuse and lp.phase in ("fp", "wu") and not (lp.bias and lp.phase == "wu")
                          and lp.n <= BIAS_BUF):
            raise EfgenError(f"{where}: the load transform (FLAG_XF) needs an RTL built with the "
                             f"fused datapath (RtlParams.fuse), FP or WU (no bias), in_c <= "
                             f"{BIAS_BUF}")
        if lp.dx and not (p.fuse and lp.phase in ("bp", "wu") and not (lp.xf and lp.phase == "bp")
                          and not lp.bias
                          and lp.m <= BIAS_BUF):
            raise EfgenError(f"{where}: BN BP dx in the loads (FLAG_XF, LMODE 1) needs an RTL "
                             f"built with the fused datapath (RtlParams.fuse), BP or WU (no "
                             f"bias; WU's input may be transformed too), out_c <= {BIAS_BUF}")
        s_eng = 1 if lp.phase == "bp" else lp.s
        er, ec = (min(lp.tr, lp.out_hw[0]) - 1) * s_eng + lp.k, (lp.tc - 1) * s_eng + lp.k
        if lp.phase == "bp":
            er, ec = min(lp.tr, lp.h) + lp.k - 1, min(lp.tc, lp.w) + lp.k - 1
        if lp.op == "conv" and er * ec > e.ifm_depth:
            raise EfgenError(f"{where}: input tile {er}x{ec} > IFM depth {e.ifm_depth}; "
                             "pick smaller tiles (--tiles) or a deeper buffer")
        ro, co = (lp.h, lp.w) if lp.phase == "bp" else lp.out_hw
        if lp.op == "linear":
            ro, co = 1, lp.batch
        out_c, red_c = (lp.n, lp.m) if lp.phase == "bp" else (lp.m, lp.n)
        mb, nb = -(-out_c // e.tm), -(-red_c // e.tn)
        mc = min(lp.mc, mb)
        pix = min(lp.tr, ro) * min(lp.tc, co)
        if (mc if (lp.order == "io" or lp.phase == "wu") else 1) * pix > e.ofm_depth:
            raise EfgenError(f"{where}: {mc} output tile(s) of {pix} pixels > OFM depth "
                             f"{e.ofm_depth}; lower mc or the tile")
        g = wu_copies(lp.k) if lp.phase == "wu" else 1
        if mc * nb * lp.k * lp.k * g > e.wbuf_depth:
            raise EfgenError(f"{where}: a chunk of {mc} output block(s) needs "
                             f"{mc * nb * lp.k * lp.k * g} words per weight bank > "
                             f"{e.wbuf_depth}; lower mc")


def testbench_dir() -> Path:
    """The cocotb testbenches, sim/ of the checkout (a folder of the repository, not
    shipped in the wheel)."""
    sim_dir = Path(__file__).resolve().parents[2] / "sim"
    if not (sim_dir / "top" / "cocotb_top.py").is_file():
        raise EfgenError("the cocotb testbenches (sim/) are not installed with the wheel",
                         where="efgen cosim",
                         fix="run it from a checkout of efgen (make install)")
    return sim_dir


#: Verilator builds let +verilator+rand+reset+2 (``plusargs``) randomise every register
#: and memory that no reset sets (the default, +verilator+rand+reset+0, is all zeros).
VERILATOR_ARGS = ["-Wno-WIDTH", "--x-assign", "unique", "--x-initial", "unique"]
RANDOM_INIT = ("+verilator+rand+reset+2",)


def simulate(p: RtlParams, work: Path, script: dict, sim: str = "verilator",
             plusargs: tuple = ()) -> dict:
    """Build the RTL of ``p`` (cached per parameter set) and run sim/top/cocotb_top.py with
    ``script``; returns the per-run results the driver wrote."""
    from efgen.cosim.runner import available, run_cocotb  # cocotb is a test extra

    SIM_DIR = testbench_dir()
    if not available(sim):
        raise EfgenError(f"simulator {sim!r} not found: apt-get install "
                         f"{'verilator' if sim == 'verilator' else 'iverilog'}")
    work = Path(work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    # (the fused datapath's build reads on m_axi2 too: the testbench serves that channel)
    (work / "script.json").write_text(json.dumps({**script, "m_axi2_read": bool(p.fuse)}))
    res_path = work / "results.json"
    run_cocotb(sim, toplevel="top_tb",
               # (the fused datapath's top has m_axi2's read channel: EFGEN_FUSE connects it)
               sources={**rtl_verilog(p), "top_tb.v": ("`define EFGEN_FUSE\n" if p.fuse else "")
                        + (SIM_DIR / "top" / "top_tb.v").read_text()},
               test_module="cocotb_top", tb_dir=SIM_DIR / "top",
               build_root=Path(BUILD_CACHE).resolve() if BUILD_CACHE else work / "build",
               # the sequencer's address arithmetic truncates and extends on purpose
               build_args=(VERILATOR_ARGS + [f"-GAW={p.addr_width}", f"-GDW={p.axi_width}"]
                           if sim == "verilator"
                           else [f"-Ptop_tb.AW={p.addr_width}", f"-Ptop_tb.DW={p.axi_width}"]),
               plusargs=list(plusargs), test_dir=work if BUILD_CACHE else None,
               extra_env={"EFGEN_TOP_SCRIPT": str(work / "script.json"),
                          "EFGEN_TOP_RESULTS": str(res_path)})
    return json.loads(res_path.read_text())


def _prepare(p: RtlParams, lps: list[LayerPhase], workdir, seed: int):
    """Check ``lps``, make the (absolute: the simulator runs in its build folder) work
    folder and write the DRAM image into it: (work, image, cases)."""
    check_params(p, lps)
    work = (Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="efgen-cosim-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    img, cases = _build(p, lps, seed)
    np.save(work / "image.npy", img.words)
    return work, img, cases


def run_layer_phases(p: RtlParams, lps: list[LayerPhase], *, sim: str = "verilator",
                     workdir: Path | None = None, seed: int = 0,
                     latency: int = DRAM_LATENCY, on_result=None, pause: Pause | None = None,
                     plusargs: tuple = ()) -> list[Result]:
    """Co-simulate ``lps`` on the RTL of ``p``; one build, one simulation.

    ``on_result(Result)`` is called as each layer-phase finishes, while the simulation
    goes on (the testbench reports every run with its outputs; see sim/top/cocotb_top.py).
    """
    if on_result is None:
        runs = [Run(i) for i in range(len(lps))]
        return run_passes(p, lps, [(runs, pause)], sim=sim, workdir=workdir, seed=seed,
                          latency=latency, plusargs=plusargs)[0].results
    work, img, cases = _prepare(p, lps, workdir, seed)
    runs = [{"tag": f"{i}", "regs": c.regs,
             "outputs": [[addr, _size(p, shape, kind)] for addr, shape, kind in c.regions.values()]}
            for i, c in enumerate(cases)]
    script = {"image": str(work / "image.npy"), "dump": str(work / "dump.npy"),
              "latency": latency, "runs": runs, "pause": vars(pause) if pause else None}
    progress = work / "progress.jsonl"
    progress.unlink(missing_ok=True)
    script["progress"] = str(progress)
    return _follow(p, cases, work, script, sim, progress, on_result, plusargs)


def _fault_range(c: _Case, f: Fault) -> dict:
    lo = (c.slots[f.slot] + f.offset) * 4
    return {"port": f.port, "lo": lo, "hi": lo + 4 * f.words, "resp": f.resp}


def run_passes(p: RtlParams, lps: list[LayerPhase], passes: list, *, sim: str = "verilator",
               workdir: Path | None = None, seed: int = 0, latency: int = DRAM_LATENCY,
               plusargs: tuple = (), shared: Pause | None = None, dram_base: int = 0,
               timeout: int | None = None) -> list[PassResult]:
    """Co-simulate ``passes`` ([(list of Run, Pause or None), ...]) of ``lps`` in one
    simulation; each pass starts from the same DRAM image. A case run several times in a
    pass is compared from its last run (the pass's final DRAM).

    ``shared``: the three masters share one memory through one arbitrated, in-order port
    (sim/top/shared_port.py) with ``shared.prob`` random back-pressure, instead of a
    memory model per master; the passes then take no ``Pause`` and no ``Fault``; its
    memory sits at bus address ``dram_base`` (the pointer registers are set to it).
    ``timeout``: cycles a run may take before the testbench fails it (a hang)."""
    work, img, cases = _prepare(p, lps, workdir, seed)
    script_passes = []
    for k, (runs, pause) in enumerate(passes):
        rs = []
        for j, r in enumerate(runs):
            c = cases[r.case]
            over = {REGISTER_MAP[name]: int(v) & 0xFFFFFFFF for name, v in r.set}
            regs = [[o, over.pop(o, v)] for o, v in c.regs] + [[o, v] for o, v in over.items()]
            rs.append({"tag": f"{j}", "regs": regs, "abort_at": r.abort_at,
                       "faults": [_fault_range(c, f) for f in r.faults]})
        script_passes.append({"dump": str(work / f"dump{k}.npy"), "runs": rs,
                              "pause": vars(pause) if pause else None})
    script = {"image": str(work / "image.npy"), "latency": latency, "passes": script_passes}
    if shared is not None:
        script["shared"] = {**vars(shared), "base": int(dram_base)}
    if timeout is not None:
        script["timeout"] = int(timeout)
    got = simulate(p, work, script, sim=sim, plusargs=plusargs)
    out = []
    for k, (runs, _) in enumerate(passes):
        dump = np.load(work / f"dump{k}.npy")
        res = [_result(p, cases[run.case], dump, got[k][f"{j}"]) for j, run in enumerate(runs)]
        out.append(PassResult(res, dump, img.words))
    return out


def _size(p: RtlParams, shape: tuple, kind: str) -> int:
    if kind == "v":
        return shape[0]
    fm, wl = _layouts(p)
    return (fm if kind == "fm" else wl).size(shape)


def _result(p: RtlParams, c: _Case, dump: np.ndarray, r: dict) -> Result:
    """Compare one case's output regions in ``dump`` with the golden."""
    errs = {}
    for name, (addr, shape, kind) in c.regions.items():
        a = _read(p, dump, addr, shape, kind).astype(np.float64)
        b = c.expect[name]
        errs[name] = (float(np.max(np.abs(a - b)) / (np.max(np.abs(b)) + 1e-30))
                      if np.all(np.isfinite(a)) else math.inf)
    return Result(c.lp, max(errs.values()), errs, int(r["cycles"]),
                  tuple(r["bursts"]), tuple(r["beats"]), int(r.get("status", 0)),
                  int(r.get("fail_addr", 0)), tuple(r["faulted"]) if r.get("faulted") else None)


def _follow(p, cases, work: Path, script: dict, sim: str, progress: Path, on_result,
            plusargs: tuple = ()):
    """Run the simulation in a thread; report each run from the progress file."""
    import threading

    box: dict = {}

    def target():
        try:
            box["got"] = simulate(p, work, script, sim=sim, plusargs=plusargs)
        except BaseException as exc:     # re-raised in the caller's thread
            box["exc"] = exc

    th = threading.Thread(target=target, daemon=True)
    th.start()
    done: list[Result] = []

    def drain():
        if not progress.exists():
            return
        lines = progress.read_text().splitlines()
        for line in lines[len(done):]:
            if not line.endswith("}"):
                break                     # a line still being written
            r = json.loads(line)
            c = cases[int(r["tag"])]
            part = np.load(f"{progress}-{r['tag']}.npy")
            sparse = np.zeros(max(a + n for a, n in
                                  ([[a, _size(p, s, k)] for a, s, k in c.regions.values()]
                                   or [[0, 0]])), "<u4")
            off = 0
            for addr, shape, kind in c.regions.values():
                n = _size(p, shape, kind)
                sparse[addr:addr + n] = part[off:off + n]
                off += n
            done.append(_result(p, c, sparse, r))
            on_result(done[-1])

    while th.is_alive():
        th.join(0.25)
        drain()
    drain()
    if "exc" in box:
        raise box["exc"]
    return done