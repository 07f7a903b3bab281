"""Python mirror of hls_kernels/efgen_desc.h (ctypes), so Python can build descriptor
tables and drive the compiled kernel. tests/test_hls_desc.py checks the field offsets
against the C++ compiler's."""

from __future__ import annotations

import ctypes

OPS = {
    "NOP": 0, "CONV_FP": 1, "CONV_BP": 2, "CONV_WU": 3, "BN_FP": 10, "BN_BP": 11,
    "RELU_FP": 20, "RELU_BP": 21, "MAXPOOL_FP": 30, "MAXPOOL_BP": 31, "AVGPOOL_FP": 32,
    "AVGPOOL_BP": 33, "ADD_FP": 40, "ERRSUM": 41, "SHORTCUT_FP": 50, "SHORTCUT_BP": 51,
    "FLATTEN_FP": 60, "FLATTEN_BP": 61, "BN_FIN": 12,
    # host runtime ops (hls_kernels/efgen_host_ops.h), never sent to the kernel
    "HOST_GF_XSUM": 100, "HOST_GF_POOL": 101, "HOST_GF_COPYBACK": 102, "HOST_GF_WSUM": 103,
    "HOST_GF_TAPSGD": 104, "HOST_EMP": 105, "HOST_EMP_SGD": 106,
    "HOST_SGD0": 107, "HOST_EIF": 108, "HOST_BN_EVAL": 109,
    "HOST_SLU_GATHER": 110, "HOST_SLU_SCATTER": 111, "HOST_SLU_ADD": 112,
}
HOST_BASE = 100
FLAGS = {"RELU": 1, "MASK": 2, "BIAS": 4, "TRAIN": 8, "DX": 16, "GATHER": 32, "XF": 64,
         "STATS": 128, "SUMS": 256, "DXK": 512, "ADDX": 1024}

# The fused transform's side record (efgen/hls/program.py's docstring): word offsets.
XF_WORDS = 16
XF_FIELDS = {"LK1": 0, "LX2": 2, "LK2": 4, "LRELU": 6, "LMODE": 7, "SK": 8, "SSUM": 10,
             "DBG": 12, "SE": 12, "MK": 14}   # DBG (CONV_WU) and SE (CONV_BP) share words


class EfgenDesc(ctypes.Structure):
    _fields_ = [
        ("op", ctypes.c_int32), ("flags", ctypes.c_int32), ("batch", ctypes.c_int32),
        ("in_c", ctypes.c_int32), ("in_h", ctypes.c_int32), ("in_w", ctypes.c_int32),
        ("out_c", ctypes.c_int32), ("out_h", ctypes.c_int32), ("out_w", ctypes.c_int32),
        ("kh", ctypes.c_int32), ("kw", ctypes.c_int32), ("stride", ctypes.c_int32),
        ("pad", ctypes.c_int32),
        ("tr", ctypes.c_int32), ("tc", ctypes.c_int32), ("mc", ctypes.c_int32),
        ("order", ctypes.c_int32), ("n_src", ctypes.c_int32),
        ("a", ctypes.c_int64 * 8),
        ("lr", ctypes.c_float), ("momentum", ctypes.c_float), ("weight_decay", ctypes.c_float),
        ("eps", ctypes.c_float), ("bn_momentum", ctypes.c_float),
    ]


FIELD_NAMES = [f for f, _ in EfgenDesc._fields_]


def make_desc(op: str, flags=(), a=None, **fields) -> EfgenDesc:
    """Build a descriptor: ``make_desc("CONV_FP", ["RELU"], a={0: 0, 1: 64, 7: 200}, ...)``."""
    d = EfgenDesc()
    d.op = OPS[op]
    d.flags = sum(FLAGS[f] for f in flags)
    for k, v in fields.items():
        if k not in FIELD_NAMES:
            raise KeyError(k)
        setattr(d, k, v)
    for i, v in (a or {}).items():
        d.a[i] = int(v)
    return d
