"""The restructured-BN datapath's descriptor-level encoding (efgen/hls/program.py's
docstring): the side record of a FLAG_XF descriptor, the BN constants block, and their
numpy twins (what the conv engine's fused load and store, and BN_FIN, compute), used by
the program builder, the DRAM image and :mod:`efgen.csim.interp`.
"""

from __future__ import annotations

import numpy as np

from efgen.hls.desc import XF_FIELDS, XF_WORDS

ADDR_FIELDS = ("LK1", "LX2", "LK2", "SK", "SSUM", "DBG", "MK")

# The BN constants block bnk:<bn>, 8*C words: the C-word vectors in this order.
BNK = ("s1", "s2", "mean", "invstd", "gamma", "beta", "sdy", "sdyx")
BNK_LOAD = BNK.index("mean")      # a consumer's LK points at bnk + BNK_LOAD*C


def xf_record(lk1: int = 0, lx2: int = 0, lk2: int = 0, relu: bool = False, sk: int = 0,
              ssum: int = 0, dbg: int = 0, mk: int = 0) -> np.ndarray:
    """The 16-word side record, as float32 words of the DRAM image (addresses as two
    32-bit words, low first; bit patterns)."""
    words = np.zeros(XF_WORDS, np.uint32)
    for name, v in zip(ADDR_FIELDS, (lk1, lx2, lk2, sk, ssum, dbg, mk)):
        v = int(v)
        if v < 0 or v >= 1 << 63:
            raise ValueError(f"{name}: address {v} out of range")
        words[XF_FIELDS[name]] = v & 0xFFFFFFFF
        words[XF_FIELDS[name] + 1] = v >> 32
    words[XF_FIELDS["LRELU"]] = 1 if relu else 0
    return words.view(np.float32)


def read_record(mem: np.ndarray, addr: int) -> dict:
    """The fields of the side record at word ``addr`` of the image ``mem``."""
    w = np.asarray(mem[addr:addr + XF_WORDS], np.float32).view(np.uint32).astype(np.int64)
    rec = {n: int(w[XF_FIELDS[n]] | (w[XF_FIELDS[n] + 1] << 32)) for n in ADDR_FIELDS}
    rec["LRELU"] = bool(w[XF_FIELDS["LRELU"]])
    return rec


def bn_term(y: np.ndarray, k: np.ndarray) -> np.ndarray:
    """gamma*((y - mean)*invstd) + beta per channel (axis 1), k = (mean, invstd, gamma,
    beta) rows: the golden's order of operations (efgen.golden.restructured)."""
    ch = lambda v: v[None, :, None, None]  # noqa: E731
    mean, invstd, gamma, beta = k
    return ch(gamma) * ((y - ch(mean)) * ch(invstd)) + ch(beta)


def load_value(x1: np.ndarray, rec: dict, get_fm, get_vec) -> np.ndarray:
    """The dense value a FLAG_XF load stream delivers: relu?(term1 + term2).
    ``get_fm(addr)`` reads a tensor of x1's shape; ``get_vec(addr, n)`` a plain vector."""
    C = x1.shape[1]
    consts = lambda a: get_vec(a, 4 * C).reshape(4, C)  # noqa: E731
    v = bn_term(x1, consts(rec["LK1"])) if rec["LK1"] else x1
    if rec["LX2"]:
        x2 = get_fm(rec["LX2"])
        v = v + (bn_term(x2, consts(rec["LK2"])) if rec["LK2"] else x2)
    if rec["LRELU"]:
        v = np.where(v > 0, v, 0).astype(v.dtype) if not np.isnan(v).any() else \
            np.where((v > 0) | np.isnan(v), v, 0).astype(v.dtype)
    return v.astype(np.float32)


def stats_sums(y: np.ndarray, k: np.ndarray) -> np.ndarray:
    """sum(y - k) then sum((y - k)^2) per channel (2*C words), what FLAG_STATS writes."""
    v = (y.astype(np.float64) - k[None, :, None, None])
    return np.concatenate([v.sum(axis=(0, 2, 3)), (v * v).sum(axis=(0, 2, 3))]).astype(np.float32)


def bn_finalise(s1, s2, k, n: int, eps: float):
    """BN_FIN: mean, biased var and invstd from the shifted sums (float32, the order of
    efgen.golden.restructured)."""
    f = np.float32
    s1, s2, k = (np.asarray(a, f) for a in (s1, s2, k))
    d = s1 / f(n)
    mean = k + d
    var = s2 / f(n) - d * d
    invstd = (f(1) / np.sqrt(var + f(eps))).astype(f)
    return mean.astype(f), var.astype(f), invstd
