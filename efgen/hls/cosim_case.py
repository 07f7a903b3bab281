"""The small C/RTL co-simulation case of a Design: one layer-phase per engine in a compact
DRAM image, with reference outputs from the golden ops.

Vitis HLS co-simulation sizes the memory model of every m_axi port by the port's
``depth`` and exchanges it with the RTL on every call, so a whole training step's image
(ResNet-20 at batch 32: 32.6 million words, on three ports) cannot be co-simulated. The
kernel's m_axi depth is the macro ``EFGEN_AXI_DEPTH`` (efgen_params.h: the whole image);
the co-simulation project of run_hls.tcl compiles the same kernel with
``-DEFGEN_AXI_DEPTH=<words of this image>`` and runs efgen_cosim_tb.cpp, which calls
``efgen_top`` on these descriptors:

* **conv FP** (bias, fused ReLU): in_c = Tn + 1 and out_c = Tm + 1, so the design's real
  Tm x Tn array runs two reduction blocks and two output blocks, the second of each one
  channel wide; a 7 x 7 map, K = 3, stride 1, padding 1, batch 2; tiles of at most
  4 x 4 and at most the schedule's largest (7 is prime: every tile from 2 to 6 leaves an
  edge tile), one output block per weight chunk (mc = 1: two chunks), order "wo".
* **BN FP** on the vector engine: lanes + 1 channels (capped at the design's largest
  channel count, the vector engine's per-channel buffer), the same map and batch;
  writes the output, the batch statistics and the running statistics.

Inputs are seeded (fixed seed: the files are the same for the same Design). The
reference is the golden op (:mod:`efgen.golden.ops`) evaluated in float64 on the
float32 inputs and rounded to float32, so it does not depend on a BLAS's summation
order; tensors are packed with :mod:`efgen.layout` exactly as the program packs them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from efgen.design import Design
from efgen.frontend.ir import BN_EPS, BN_MOMENTUM
from efgen.golden import ops
from efgen.hls.desc import EfgenDesc, make_desc
from efgen.layout import FeatureMapLayout, WeightLayout

SEED = 2022          # fixed: the files are a function of the Design only
ALIGN = 64           # words (256 B): a multiple of every AXI beat; word 0 stays unused
MAP = 7              # feature-map height and width (prime: edge tiles)
BATCH = 2
KERNEL = 3
MAX_TILE = 4
# The SGD fields every descriptor carries (unused by FP; the program's defaults).
SGD = dict(lr=0.01, momentum=0.9, weight_decay=5e-4)


@dataclass
class CosimRegion:
    name: str
    kind: str            # "fm", "weight" or "vec"
    shape: tuple[int, ...]
    offset: int = 0
    words: int = 0
    output: bool = False


@dataclass
class CosimCase:
    """Descriptors, memory map and the two DRAM images (before, expected after)."""

    steps: list[tuple[str, EfgenDesc]]
    regions: dict[str, CosimRegion]
    words: int
    image_in: np.ndarray
    image_ref: np.ndarray

    def checks(self) -> list[CosimRegion]:
        """The regions the descriptors write, in address order."""
        return sorted((r for r in self.regions.values() if r.output), key=lambda r: r.offset)


def conv_tiling(hw, max_tr: int, max_tc: int) -> dict:
    """tr, tc, mc, order of the conv FP case: tiles of at most 4 x 4 that the design's
    IFM, OFM and weight buffers hold (the bounds of efgen_conv_check)."""
    nb = 2                                     # ceil((Tn + 1) / Tn)
    if nb * KERNEL * KERNEL > hw.wbuf_depth:
        raise ValueError(f"weight buffer of {hw.wbuf_depth} words cannot hold a "
                         f"{KERNEL}x{KERNEL} chunk of {nb} reduction blocks")
    tr = max(1, min(MAX_TILE, max_tr, MAP))
    tc = max(1, min(MAX_TILE, max_tc, MAP))
    while tr > 1 and ((tr + KERNEL - 1) * (tc + KERNEL - 1) > hw.ifm_depth
                      or tr * tc > hw.ofm_depth):
        tr -= 1
    while tc > 1 and ((tr + KERNEL - 1) * (tc + KERNEL - 1) > hw.ifm_depth
                      or tr * tc > hw.ofm_depth):
        tc -= 1
    if KERNEL * KERNEL > hw.ifm_depth:
        raise ValueError(f"IFM bank of {hw.ifm_depth} words cannot hold one {KERNEL}x{KERNEL} "
                         "window")
    return dict(tr=tr, tc=tc, mc=1, order=0)


def cosim_case(design: Design, max_c: int, max_tr: int, max_tc: int) -> CosimCase:
    """The case for ``design``; ``max_c``, ``max_tr``, ``max_tc``: the bounds the
    generated efgen_params.h declares (EFGEN_MAX_C, EFGEN_MAX_TR, EFGEN_MAX_TC)."""
    hw = design.hw
    fml = FeatureMapLayout("blocked", hw.lanes)
    wl = WeightLayout("blocked", hw.tm, hw.tn)
    n_in, m_out = hw.tn + 1, hw.tm + 1
    c_bn = max(1, min(hw.lanes + 1, max_c))
    B = BATCH

    regions: dict[str, CosimRegion] = {}

    def add(name, kind, shape, output=False):
        words = (fml.size(shape) if kind == "fm" else wl.size(shape) if kind == "weight"
                 else int(np.prod(shape)))
        regions[name] = CosimRegion(name, kind, tuple(shape), words=words, output=output)

    add("conv_x", "fm", (B, n_in, MAP, MAP))
    add("conv_w", "weight", (m_out, n_in, KERNEL, KERNEL))
    add("conv_b", "vec", (m_out,))
    add("conv_y", "fm", (B, m_out, MAP, MAP), output=True)
    add("bn_x", "fm", (B, c_bn, MAP, MAP))
    add("bn_gamma", "vec", (c_bn,))
    add("bn_beta", "vec", (c_bn,))
    add("bn_stats", "vec", (2 * c_bn,), output=True)
    add("bn_running_mean", "vec", (c_bn,), output=True)
    add("bn_running_var", "vec", (c_bn,), output=True)
    add("bn_y", "fm", (B, c_bn, MAP, MAP), output=True)
    offset = ALIGN                 # word 0 stays unused: address 0 means "none"
    for r in regions.values():
        r.offset = offset
        offset += -(-r.words // ALIGN) * ALIGN
    words = offset

    rng = np.random.default_rng(SEED)
    f32 = np.float32
    x = rng.standard_normal((B, n_in, MAP, MAP)).astype(f32)
    w = (rng.standard_normal((m_out, n_in, KERNEL, KERNEL))
         * np.sqrt(2.0 / (n_in * KERNEL * KERNEL))).astype(f32)
    b = (0.1 * rng.standard_normal(m_out)).astype(f32)
    bx = (0.5 + 2.0 * rng.standard_normal((B, c_bn, MAP, MAP))).astype(f32)
    gamma = (1.0 + 0.1 * rng.standard_normal(c_bn)).astype(f32)
    beta = (0.1 * rng.standard_normal(c_bn)).astype(f32)
    rmean = (0.1 * rng.standard_normal(c_bn)).astype(f32)
    rvar = rng.uniform(0.5, 1.5, c_bn).astype(f32)

    image = np.zeros(words, f32)

    def put(img, name, value):
        r = regions[name]
        v = np.asarray(value, f32)
        flat = (fml.pack(v) if r.kind == "fm" else wl.pack(v) if r.kind == "weight"
                else v.ravel())
        assert flat.size == r.words, name
        img[r.offset:r.offset + r.words] = flat

    for name, v in (("conv_x", x), ("conv_w", w), ("conv_b", b), ("bn_x", bx),
                    ("bn_gamma", gamma), ("bn_beta", beta), ("bn_running_mean", rmean),
                    ("bn_running_var", rvar)):
        put(image, name, v)

    # The reference: the golden ops in float64 on the same float32 values.
    d64 = np.float64
    y = ops.conv_fp(x.astype(d64), w.astype(d64), b.astype(d64), 1, KERNEL // 2)
    y = np.maximum(y, 0.0)
    by, cache = ops.bn_fp_train(bx.astype(d64), gamma.astype(d64), beta.astype(d64), BN_EPS)
    rm2, rv2 = ops.bn_running_update(rmean.astype(d64), rvar.astype(d64), cache["mean"],
                                     cache["var"], B * MAP * MAP, BN_MOMENTUM)
    ref = image.copy()
    put(ref, "conv_y", y)
    put(ref, "bn_y", by)
    put(ref, "bn_stats", np.concatenate([cache["mean"], cache["var"]]))
    put(ref, "bn_running_mean", rm2)
    put(ref, "bn_running_var", rv2)

    a = {k: r.offset for k, r in regions.items()}
    common = dict(batch=B, eps=BN_EPS, bn_momentum=BN_MOMENTUM, **SGD)
    conv = make_desc("CONV_FP", ["RELU", "BIAS"],
                     {0: a["conv_x"], 1: a["conv_w"], 2: a["conv_b"], 7: a["conv_y"]},
                     in_c=n_in, in_h=MAP, in_w=MAP, out_c=m_out, out_h=MAP, out_w=MAP,
                     kh=KERNEL, kw=KERNEL, stride=1, pad=KERNEL // 2,
                     **conv_tiling(hw, max_tr, max_tc), **common)
    bn = make_desc("BN_FP", [],
                   {0: a["bn_x"], 1: a["bn_gamma"], 2: a["bn_beta"], 3: a["bn_stats"],
                    4: a["bn_running_mean"], 5: a["bn_running_var"], 7: a["bn_y"]},
                   in_c=c_bn, in_h=MAP, in_w=MAP, out_c=c_bn, out_h=MAP, out_w=MAP,
                   kh=1, kw=1, stride=1, pad=0, tr=0, tc=0, mc=0, order=0, **common)
    steps = [(f"conv FP {n_in}->{m_out} ch {MAP}x{MAP} K{KERNEL} batch {B}, tiles "
              f"{conv.tr}x{conv.tc} mc {conv.mc}", conv),
             (f"BN FP {c_bn} ch {MAP}x{MAP} batch {B}", bn)]
    return CosimCase(steps, regions, words, image, ref)


__all__ = ["CosimCase", "CosimRegion", "cosim_case", "conv_tiling"]
