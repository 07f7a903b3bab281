"""Resource manifest of the HLS vector engine (hls_kernels/vector_engine.h).

The vector engine keeps every float operator in six datapath functions ("units"), each
INLINE off and limited to one RTL instance by an ALLOCATION pragma; the op functions
around them only move data. :func:`vector_engine_manifest` lists, per C++ function,
the float operations its code holds (``code_ops``: T copies in a lane unit), the
operator instances after the ALLOCATION operation limits (``ops``: W = min(T,
EFGEN_AXI_WORDS) lanes' worth in a lane unit) and the on-chip arrays it declares, from
the same parameters that generate the code (lanes T = EFGEN_LANES, EFGEN_MAX_C,
EFGEN_MAX_W, EFGEN_VEC_CHUNK, EFGEN_AXI_WORDS). tests/test_hls_vector.py checks it
against the C++ itself: the float operations of every function in g++'s SSA dump, the
operator limits of every lane unit in the synthesis view, and the arrays' names, sizes
and partitioning.

:func:`vector_params` derives the vector engine's macros of efgen_params.h (capacity of
the on-chip rows, loop tripcounts) from a program's descriptors.
"""

from __future__ import annotations

import math

from efgen.hls.desc import HOST_BASE, OPS
from efgen._version import __version__
from efgen.model.operators import (_CONTROL_OPS, _UNITS, OP_KINDS,  # noqa: F401
                                   conv_engine_ops, totals, vector_lanes)

IL = 8          # interleaved partial sums (kIL)
LINES = 4       # pooling FP line buffer rows (kLines)
ROWS = 6        # rows of the row scratch (kRows)
NCHAN = 8       # batchnorm per-channel vectors (kNChan)
CHUNK = 256     # default vectors per element-wise chunk (EFGEN_VEC_CHUNK)



def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def _array(name: str, ctype: str, dims: list[int], complete: list[int], use: str) -> dict:
    words = math.prod(dims)
    banks = math.prod(dims[d - 1] for d in complete)
    return {"name": name, "type": ctype, "dims": dims, "words": words,
            "partition": [{"dim": d, "type": "complete"} for d in complete],
            "banks": banks, "bank_words": words // banks, "use": use}


def vector_engine_manifest(lanes: int, max_c: int, max_w: int = 64,
                           chunk: int = CHUNK, axi_words: int = 4) -> dict:
    """Float operations, operator instances and on-chip arrays of the vector engine, per
    function.

    ``lanes`` = EFGEN_LANES (T), ``max_c`` = EFGEN_MAX_C, ``max_w`` = EFGEN_MAX_W,
    ``chunk`` = EFGEN_VEC_CHUNK, ``axi_words`` = EFGEN_AXI_WORDS (the header's defaults:
    64, 256 and 4). Returns::

        {"engine": "efgen_vector_engine", "lanes": T, "axi_words": W_axi,
         "vec_w": W = min(T, W_axi),
         "params": {"max_c", "max_cb", "max_w", "row_vectors", "chunk", "il", "lines",
                    "rows", "nchan"},
         "functions": {name: {"kind": "lane unit" | "scalar unit" | "control" | "top",
                              "instances": 1, "copies": T or 1, "alloc_copies": W or 1,
                              "ii": ceil(copies / alloc_copies),
                              "ops_per_copy": {op: n},
                              "code_ops": {op: n * copies},
                              "ops": {op: n * alloc_copies},
                              "arrays": [{"name", "type", "dims", "words", "partition":
                                          [{"dim", "type"}], "banks", "bank_words",
                                          "use"}],
                              "what": str, "used_by": [op names]}},
         "totals": {op: instances summed over functions},
         "code_totals": {op: operations of the code summed over functions},
         "array_words": int}

    op is one of fadd (adds and subtracts), fmul, fdiv, fsqrt, fcmp (float compares),
    sitofp (int -> float conversions); selects are muxes and not counted. ``code_ops``
    are the operations the C++ writes (a lane unit's lane loop has T iterations);
    ``ops`` are the operator instances synthesis is allowed: a lane unit's ALLOCATION
    operation limits give W lanes' worth, shared by the T lanes at II = ``ii``; scalar
    units and control functions are as written. Units have one instance each
    (ALLOCATION function limit=1) whatever the number of loops that call them.
    """
    if lanes < 1 or max_c < 1 or max_w < 1 or chunk < 1 or axi_words < 1:
        raise ValueError("vector_engine_manifest: lanes, max_c, max_w, chunk and axi_words "
                         "must be >= 1")
    w = vector_lanes(lanes, axi_words)
    max_cb = _ceil(max_c, lanes)
    row_v = max(max_w, IL + 1)
    funcs: dict[str, dict] = {}

    def entry(kind, copies, alloc, ops, what, used_by):
        return {"kind": kind, "instances": 1, "copies": copies, "alloc_copies": alloc,
                "ii": _ceil(copies, alloc), "ops_per_copy": dict(ops),
                "code_ops": {k: v * copies for k, v in ops.items()},
                "ops": {k: v * alloc for k, v in ops.items()}, "arrays": [],
                "what": what, "used_by": list(used_by)}

    for name, (copies, ops, what, used_by) in _UNITS.items():
        if copies == "lanes":
            funcs[name] = entry("lane unit", lanes, w, ops, what, used_by)
        else:
            funcs[name] = entry("scalar unit", 1, 1, ops, what, used_by)
    for name, (ops, what) in _CONTROL_OPS.items():
        op = {"bn_fp": "BN_FP/BN_FIN", "bn_bp": "BN_BP", "pool_fp": "MAXPOOL_FP/AVGPOOL_FP",
              "pool_bp": "MAXPOOL_BP/AVGPOOL_BP", "flatten_fp": "FLATTEN_FP"}[name]
        funcs[name] = entry("control", 1, 1, ops, what, op.split("/"))
    arrays = [
        _array("ebuf", "float", [chunk, lanes], [2],
               "element-wise running value between the passes of a chunk (3-5 streams)"),
        _array("part", "float", [2, IL, max_cb, lanes], [1, 2, 4],
               "batchnorm partial sums [sum][slot][channel block][lane]"),
        _array("chan", "float", [NCHAN, max_cb, lanes], [1, 3],
               "batchnorm per-channel vectors (mean, var, invstd, gamma, beta, dgamma, "
               "dbeta, coef)"),
        _array("rows", "float", [ROWS, row_v, lanes], [1, 3],
               "row scratch: pooling lines/accumulators, shortcut blocks, flatten chunks"),
        _array("tags", "int", [LINES], [1], "map row held by each pooling line (FP) or dy/argmax line pair (BP)"),
    ]
    funcs["efgen_vector_engine"] = entry(
        "top", 1, 1, {}, "dispatch; owns the on-chip arrays (static locals)",
        sorted(k for k, v in OPS.items() if 10 <= v < HOST_BASE))
    funcs["efgen_vector_engine"]["arrays"] = arrays
    tot = {k: 0 for k in OP_KINDS}
    code_tot = {k: 0 for k in OP_KINDS}
    for f in funcs.values():
        for k, v in f["ops"].items():
            tot[k] += v * f["instances"]
        for k, v in f["code_ops"].items():
            code_tot[k] += v * f["instances"]
    return {"engine": "efgen_vector_engine", "lanes": lanes, "axi_words": axi_words,
            "vec_w": w,
            "params": {"max_c": max_c, "max_cb": max_cb, "max_w": max_w,
                       "row_vectors": row_v, "chunk": chunk, "il": IL, "lines": LINES,
                       "rows": ROWS, "nchan": NCHAN},
            "functions": funcs, "totals": tot, "code_totals": code_tot,
            "array_words": sum(a["words"] for a in arrays)}


_POOLS = {OPS[k] for k in ("MAXPOOL_FP", "MAXPOOL_BP", "AVGPOOL_FP", "AVGPOOL_BP")}
_ROWS_OPS = _POOLS | {OPS["SHORTCUT_FP"], OPS["SHORTCUT_BP"]}
_FLATTEN = {OPS["FLATTEN_FP"], OPS["FLATTEN_BP"]}


def vector_params(prog, max_c: int) -> dict[str, int]:
    """The vector engine's macros of efgen_params.h, from the program's descriptors.

    EFGEN_MAX_W sizes the on-chip rows (pooling and shortcut maps must fit:
    efgen_vector_check rejects wider ones); the others are loop tripcounts (literals,
    as the pragmas need) and the element-wise chunk (EFGEN_VEC_CHUNK, EFGEN_VEC_CHUNKS).
    """
    lanes = prog.design.hw.lanes
    descs = [s.desc for s in prog.filter + prog.fp + prog.bp if 10 <= int(s.desc.op) < HOST_BASE]
    max_w = max_h = max_k = span = planes = vecs = 1
    for d in descs:
        maps = [(d.in_c, d.in_h, d.in_w), (d.out_c, d.out_h, d.out_w)]
        for c, h, w in maps:
            planes = max(planes, d.batch * _ceil(c, lanes))
            vecs = max(vecs, d.batch * _ceil(c, lanes) * h * w)
        if int(d.op) in _ROWS_OPS:
            max_w = max(max_w, d.in_w, d.out_w)
            max_h = max(max_h, d.in_h, d.out_h)
        if int(d.op) in _POOLS:
            max_k = max(max_k, d.kh, d.kw)
            span = max(span, d.kw * max(d.out_w, IL + 1))
    row_v = max(max_w, IL + 1)
    for d in descs:
        if int(d.op) in _FLATTEN:  # pixel chunks of a plane
            max_h = max(max_h, _ceil(d.in_h * d.in_w, row_v))
    chunk = min(CHUNK, vecs)
    return {"EFGEN_MAX_H": max_h, "EFGEN_MAX_W": max_w, "EFGEN_MAX_CB": _ceil(max_c, lanes),
            "EFGEN_MAX_PLANES": planes, "EFGEN_MAX_VECS": vecs, "EFGEN_MAX_POOL_K": max_k,
            "EFGEN_MAX_POOL_SPAN": span, "EFGEN_VEC_CHUNK": chunk,
            "EFGEN_VEC_CHUNKS": _ceil(vecs, chunk)}




# ------------------------------------------------------------------ the whole kernel

def conv_engine_manifest(tm: int, tn: int, lanes: int, axi_words: int, wbuf_depth: int,
                         bounds: dict[str, int], acc_dist: int, fuse: bool = False,
                         p: int = 1) -> dict:
    """Float operator instances and on-chip memories of hls_kernels/conv_engine.h, per
    function, from the same figures that generate efgen_params.h (``bounds``: the
    EFGEN_* macros of :func:`efgen.hls.conv_job.tripcounts`). ``fuse``: the fused BP
    store's two lane-block tiles (``seb``, ``syb``: records SE and SK) are listed."""
    ops = conv_engine_ops(tm, tn, axi_words, p)
    ifm, ofm, mc = bounds["EFGEN_IFM_BLOCK"], bounds["EFGEN_OFM_BLOCK"], bounds["EFGEN_MAX_MC"]

    def mem(name, banks, bank_words, blocks, use, storage="bram"):
        return {"name": name, "banks": banks, "bank_words": bank_words, "blocks": blocks,
                "words": banks * bank_words * blocks, "storage": storage, "use": use}

    what = {"mac_pass": "the Tm x Tn datapath of FP, BP and WU (ce_mac's two call sites, "
                        "ALLOCATION function limit=1)",
            "ce_load": "input/error tile loader; WU bias-gradient adders",
            "ce_store": "output group storer; FP bias adders, ReLU and mask selects",
            "sgd_writeback": "WU partial-sum fold and SGD of weights and biases"}
    funcs = {name: {"ops": o, "what": what[name]} for name, o in ops.items()}
    memories = [
        mem("wbuf", tm * tn, wbuf_depth, 1, "weights (FP/BP) or gradient partial sums (WU)"),
        mem("ifm_s", tn, ifm, 2, "input tiles: stream of blocks ce_load -> ce_mac"),
        mem("ofm_s", tm, ofm, 2, "FP/BP accumulators: stream of blocks ce_mac -> ce_store"),
        mem("err_s", tm, ofm, 2, "WU error tiles: stream of blocks ce_load -> ce_mac"),
        mem("bbuf", tm, mc, 1, "FP bias of a chunk", "lutram"),
        mem("bacc", tm, mc * acc_dist, 1, "WU bias-gradient partial sums", "lutram"),
    ]
    if fuse:
        memories += [mem("seb", lanes, ofm, 1, "fused BP store: another sender's error "
                         "(record SE), one lane block"),
                     mem("syb", lanes, ofm, 1, "fused BP store: the BN input y (record SK), "
                         "one lane block")]
    return {"engine": "efgen_conv_engine", "functions": funcs, "memories": memories,
            "totals": totals(ops)}


def project_manifest(hw, board, bounds: dict[str, int], acc_dist: int, max_c: int,
                     max_w: int, chunk: int) -> dict:
    """manifest.json of an HLS project: both engines' operators and memories, their DSP,
    LUT and FF at the model's per-operator costs, and the model's own figures beside
    them (tests/test_hls_project.py checks that they agree)."""
    from efgen.model.coeffs import bram18_units, coefficients, mac_cost
    from efgen.model.resources import resource_use
    axi_words = board.axi.width_bits // 32
    conv = conv_engine_manifest(hw.tm, hw.tn, hw.lanes, axi_words, hw.wbuf_depth, bounds,
                                acc_dist, fuse=bool(getattr(hw, "fuse", False)),
                                p=getattr(hw, "p", 1))
    vec = vector_engine_manifest(hw.lanes, max_c, max_w, chunk, axi_words)
    per_op = coefficients()["hls_ops"][board.dsp_type]
    mac = mac_cost(board.dsp_type, hw.precision)

    def cost(ops: dict[str, int]) -> dict[str, int]:
        return {k: sum(n * per_op[op][k] for op, n in ops.items()) for k in ("dsp", "lut", "ff")}

    for eng in (conv, vec):
        for f in eng["functions"].values():
            f["cost"] = cost(f["ops"])
    for m in conv["memories"]:
        m["bram18"] = 0 if m["storage"] != "bram" else \
            m["banks"] * m["blocks"] * bram18_units(32, m["bank_words"])
    use = resource_use(hw, board)
    aux = {k: sum(f["cost"][k] for eng in (conv, vec) for name, f in eng["functions"].items()
                  if name != "mac_pass") for k in ("dsp", "lut", "ff")}
    return {
        "efgen_version": __version__, "tm": hw.tm, "tn": hw.tn, "lanes": hw.lanes,
        "axi_words": axi_words, "precision": hw.precision,
        "engines": {"conv": conv, "vector": vec},
        "kernel": {"dsp_array": conv["functions"]["mac_pass"]["cost"]["dsp"],
                   "dsp_aux": aux["dsp"],
                   "bram18_conv": sum(m["bram18"] for m in conv["memories"])},
        "model": {"dsp": use.dsp, "dsp_array": use.dsp_array,
                  "dsp_aux": use.dsp - use.dsp_array - coefficients()["shell"]["dsp"],
                  "bram18_ifm": use.bram_ifm, "bram18_ofm": use.bram_ofm,
                  "bram18_wbuf": use.bram_wbuf, "mac_dsp": mac["dsp"],
                  **({"bram18_fuse": use.bram_fuse} if use.bram_fuse else {})},
    }


__all__ = ["vector_engine_manifest", "vector_params", "conv_engine_manifest", "project_manifest"]
