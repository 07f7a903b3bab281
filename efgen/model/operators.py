"""The float operators of the generated HLS C++, per function: the machine the resource
model prices (efgen/model/resources.py) and the manifest the HLS project carries
(efgen/hls/manifest.py, DIR/hls/manifest.json).

Two engines, one descriptor at a time:

* the convolution engine (hls_kernels/conv_engine.h): the Tm x Tn datapath ``mac_pass``
  (Tm*Tn fmul + Tm*Tn fadd, shared by FP, BP and WU) and three auxiliaries with as many
  operators as an AXI beat has words (ALLOCATION limits): the WU bias-gradient adders of
  ``ce_load``, the FP bias adders of ``ce_store``, the SGD write-back's multipliers and
  adders;
* the vector engine (hls_kernels/vector_engine.h): six datapath units, one instance each,
  and a few scalar operations in the op functions. The lane units' code has T = lanes
  copies of their per-lane operators; ALLOCATION operation limits instantiate
  W = min(T, axi_words) lanes' worth (:func:`vector_lanes`), as many as the AXI port
  brings words per beat: a T-word vector takes ceil(T/W) beats, the units' II.

The counts here are operator instances (what the hardware has); the manifest
(efgen/hls/manifest.py) lists the code's own operations beside them.

tests/test_hls_structure.py and tests/test_hls_vector.py check the C++ against it.
"""

from __future__ import annotations

OP_KINDS = ("fadd", "fmul", "fdiv", "fsqrt", "fcmp", "sitofp")

# name: (copies: "lanes" or 1, float operators per copy, what it does, ops that use it).
# "lanes": T copies in the code, W = min(T, axi_words) instantiated (ALLOCATION operation
# limits, per copy x W). fadd counts adds and subtracts: unit_bn's 3 are 2 adds and
# 1 subtract, which the header limits separately (Vitis's fadd and fsub operations).
_UNITS = {
    "unit_ew": ("lanes", {"fadd": 2, "fcmp": 3},
                "element-wise / store stage: sums, ReLU gates, masks, fused ReLU, pad lanes",
                ["RELU_FP", "RELU_BP", "ADD_FP", "ERRSUM", "BN_FP", "BN_FIN", "BN_BP",
                 "MAXPOOL_FP",
                 "MAXPOOL_BP", "AVGPOOL_FP", "AVGPOOL_BP", "SHORTCUT_FP", "SHORTCUT_BP",
                 "FLATTEN_BP"]),
    "unit_bn": ("lanes", {"fadd": 3, "fmul": 4},
                "batchnorm passes: mean, centred variance, BP sums, normalise, BP dx",
                ["BN_FP", "BN_FIN", "BN_BP"]),
    "unit_pool": ("lanes", {"fadd": 1, "fmul": 1, "fcmp": 2},
                  "pooling FP (max compare / avg sum), BP (argmax hit / avg share), avg scale",
                  ["MAXPOOL_FP", "MAXPOOL_BP", "AVGPOOL_FP", "AVGPOOL_BP"]),
    "unit_tree": (1, {"fadd": 7, "fmul": 1},
                  "fixed-order pairwise combine of a channel's 8 partial sums, times a scale",
                  ["BN_FP", "BN_BP"]),
    "unit_rcp": (1, {"fadd": 1, "fsqrt": 1, "fdiv": 1},
                 "1/x and 1/sqrt(x + eps): 1/n, 1/(kh*kw), n/(n-1), invstd (the only divider)",
                 ["BN_FP", "BN_FIN", "BN_BP", "AVGPOOL_FP", "AVGPOOL_BP"]),
    "unit_sgd": (1, {"fadd": 3, "fmul": 4},
                 "SGD of gamma/beta, running statistics, BN BP coefficient, BN_FIN's "
                 "mean and variance from the store's sums",
                 ["BN_FP", "BN_FIN", "BN_BP"]),
}

# Control functions (force-inlined into efgen_vector_engine) that hold scalar float
# operations of their own: int->float conversions of counts and window indices, the
# running-statistic constants, the ReLU of flatten's word stream.
_CONTROL_OPS = {
    "bn_fp": ({"sitofp": 1, "fadd": 2, "fmul": 1}, "n as float; 1 - bn_momentum; n/(n-1)"),
    "bn_bp": ({"sitofp": 1}, "n as float"),
    "pool_fp": ({"sitofp": 2}, "kh*kw as float; window index i*kw + j per scan step"),
    "pool_bp": ({"sitofp": 2}, "kh*kw as float; window index i*kw + j per scan step"),
    "flatten_fp": ({"fcmp": 1}, "fused ReLU of the word stream"),
}



def conv_engine_ops(tm: int, tn: int, axi_words: int, p: int = 1) -> dict[str, dict[str, int]]:
    """Float operator instances of the convolution engine, per function (``p`` pixel
    lanes: Tm x Tn x P multipliers and adders; in WU a (m, n) pair's P adders are its
    adder tree over P and its accumulator)."""
    w = axi_words
    return {"mac_pass": {"fmul": tm * tn * p, "fadd": tm * tn * p},
            "ce_load": {"fadd": w}, "ce_store": {"fadd": w},
            "sgd_writeback": {"fmul": w, "fadd": w}}


def fused_unit_ops(axi_words: int) -> dict[str, dict[str, int]]:
    """Float operator instances of the restructured-BN units (efgen/model/restructure.py;
    priced, not yet in the generated C++): one AXI beat (W words) wide, as the streams
    they sit on.

    * ``fx_load``: the loader's transform, per word: two per-channel affines (fmul +
      fadd each: the tile and its second operand), their add, the ReLU compare, and BN
      BP's dx = a*dy + b*x_hat + c (x_hat = (y - mu)*lambda: 3 fmul, 3 fadd);
    * ``fx_store``: the storer's, per word: the error operands' adds (3 fadd), the mask
      recomputed from y (an affine and a compare), the per-channel sums (BN FP: y and
      y*y; BN BP: dy and dy*x_hat, x_hat an affine again: 4 fadd, 3 fmul).
    """
    w = axi_words
    return {"fx_load": {"fmul": 5 * w, "fadd": 6 * w, "fcmp": w},
            "fx_store": {"fmul": 4 * w, "fadd": 8 * w, "fcmp": w}}


def vector_lanes(lanes: int, axi_words: int = 4) -> int:
    """W = min(T, EFGEN_AXI_WORDS): the lanes' worth of operators a lane unit of the
    vector engine instantiates (vector_engine.h, EFGEN_VEC_W)."""
    if lanes < 1 or axi_words < 1:
        raise ValueError("vector_lanes: lanes and axi_words must be >= 1")
    return min(lanes, axi_words)


def vector_engine_ops(lanes: int, axi_words: int = 4) -> dict[str, dict[str, int]]:
    """Float operator instances of the vector engine, per function: lane units W lanes'
    worth (W = :func:`vector_lanes`), scalar units and control functions as written."""
    w = vector_lanes(lanes, axi_words)
    out = {}
    for name, (copies, ops, _what, _used) in _UNITS.items():
        n = w if copies == "lanes" else 1
        out[name] = {k: v * n for k, v in ops.items()}
    for name, (ops, _what) in _CONTROL_OPS.items():
        out[name] = dict(ops)
    return out


def hls_operators(tm: int, tn: int, lanes: int, axi_words: int,
                  p: int = 1) -> dict[str, dict[str, int]]:
    """Every function of the HLS C++ that holds float operators -> {op: instances}."""
    return {**conv_engine_ops(tm, tn, axi_words, p), **vector_engine_ops(lanes, axi_words)}


def totals(funcs: dict[str, dict[str, int]], skip=()) -> dict[str, int]:
    out = {k: 0 for k in OP_KINDS}
    for name, ops in funcs.items():
        if name in skip:
            continue
        for k, v in ops.items():
            out[k] += v
    return out
