"""hls_kernels/conv_engine.h, the unified Tm x Tn convolution engine, in C simulation.

The header is compiled with g++ (the project's warning bar) behind a two-line extern "C"
wrapper, driven through ctypes on a DRAM image built with efgen.layout, and compared
with the dense golden ops (float32): FP, BP and WU (with the SGD write-back) over
strides, kernels, paddings, odd channel counts, Tm != Tn, both loop orders, weight
chunks and tiles that do not divide the map. Every run also checks that the kernel
wrote exactly its output words: the image starts as a NaN sentinel, and input pad
lanes are poisoned with it too (the engine zero-fills lanes beyond C instead of
trusting the padding).
"""

from __future__ import annotations

import ctypes
import math
import platform
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from efgen.csim.cc import compile_shared, hls_kernels_dir, load
from efgen.golden import ops
from efgen.hls.desc import EfgenDesc, make_desc
from efgen.layout import FeatureMapLayout, WeightLayout

VITIS_STUB = Path(__file__).parent / "fixtures" / "vitis_stub"   # hls_streamofblocks.h API
BAR = 1e-5                      # max|a-b| / (max|b| + 1e-12)
SENTINEL = np.array([0x7FC0DEAD], dtype=np.uint32).view(np.float32)[0]  # a quiet NaN
GUARD = 64                      # words at the start of the image nothing may touch
LR, MOMENTUM, WD = 0.05, 0.9, 5e-4
EXACT_FP = platform.machine() in ("x86_64", "AMD64")  # no FMA contraction at -O2

# One compiled library per engine configuration.
CONFIGS = {
    "16x16": dict(tm=16, tn=16, ifm=1024, ofm=2048, wbuf=1024),
    "8x4": dict(tm=8, tn=4, ifm=1024, ofm=2048, wbuf=1024, max_c=64),
    "4x8": dict(tm=4, tn=8, ifm=1024, ofm=2048, wbuf=1024),
    # issue 13: 3 pixel lanes (odd column groups) and tap packing of shallow FP/WU jobs
    "8x16xP3-pack": dict(tm=8, tn=16, ifm=1024, ofm=2048, wbuf=1024, p=3, pack=True),
}

# issue 13 req. 3, double-buffered weight chunks (EFGEN_WDB): its own tests below
WDB_CONFIGS = {"8x4-wdb": dict(tm=8, tn=4, ifm=1024, ofm=2048, wbuf=1024, max_c=64, wdb=True)}

# Status codes of efgen_conv_check (EfgenConvStatus).
OK, ERR_OP, ERR_GEOMETRY, ERR_TILING, ERR_ADDRESS, ERR_IFM, ERR_OFM, ERR_WBUF, ERR_BIAS = range(9)

WRAPPER = """#include "efgen_params.h"
#include "conv_engine.h"
extern "C" void run(const EfgenDesc* d, float* mem) { efgen_conv_engine(*d, mem, mem, mem); }
extern "C" int check(const EfgenDesc* d) { return efgen_conv_check(*d); }
"""


def params_header(tm, tn, ifm, ofm, wbuf, max_c=None, p=1, pack=False, wdb=False):
    lines = ["#ifndef EFGEN_PARAMS_H", "#define EFGEN_PARAMS_H",
             f"#define EFGEN_TM {tm}", f"#define EFGEN_TN {tn}",
             f"#define EFGEN_LANES {math.gcd(tm, tn)}", f"#define EFGEN_IFM_DEPTH {ifm}",
             f"#define EFGEN_OFM_DEPTH {ofm}", f"#define EFGEN_WBUF_DEPTH {wbuf}",
             "#define EFGEN_MAX_TR 32", "#define EFGEN_MAX_TC 32", "#define EFGEN_MAX_K 7"]
    if max_c is not None:
        lines.append(f"#define EFGEN_MAX_C {max_c}")
    if p > 1:
        lines.append(f"#define EFGEN_P {p}")
    if pack:
        lines.append("#define EFGEN_PACK 1")
    if wdb:
        lines.append("#define EFGEN_WDB 1")
    return "\n".join(lines + ["#endif", ""])


class Engine:
    def __init__(self, name, workdir):
        cfg = {**CONFIGS, **WDB_CONFIGS}[name]
        self.tm, self.tn = cfg["tm"], cfg["tn"]
        self.lanes = math.gcd(self.tm, self.tn)
        self.fm = FeatureMapLayout("blocked", self.lanes)
        self.wl = WeightLayout("blocked", self.tm, self.tn)
        (workdir / "efgen_params.h").write_text(params_header(**cfg))
        src = workdir / "wrapper.cpp"
        src.write_text(WRAPPER)
        self.lib = load(compile_shared([src], workdir / "conv_engine", include_dirs=[workdir]))
        self.lib.run.argtypes = [ctypes.POINTER(EfgenDesc), ctypes.POINTER(ctypes.c_float)]
        self.lib.run.restype = None
        self.lib.check.argtypes = [ctypes.POINTER(EfgenDesc)]
        self.lib.check.restype = ctypes.c_int

    def check(self, d):
        return self.lib.check(ctypes.byref(d))

    def run(self, d, mem):
        assert mem.dtype == np.float32 and mem.flags.c_contiguous
        self.lib.run(ctypes.byref(d), mem.ctypes.data_as(ctypes.POINTER(ctypes.c_float)))


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = Engine(name, tmp_path_factory.mktemp(f"conv_{name}"))
        return cache[name]

    return get


# ---- a DRAM image with regions -------------------------------------------------------------

class Dram:
    """Regions laid out after a guard band, 16-word aligned, with sentinel gaps."""

    def __init__(self):
        self.top = GUARD
        self.regions = {}

    def add(self, name, words, data=None, poison=None):
        off = -(-(self.top + 3) // 16) * 16
        self.regions[name] = (off, words, data, poison)
        self.top = off + words
        return off

    def build(self):
        mem = np.full(self.top + 32, SENTINEL, dtype=np.float32)
        for off, words, data, poison in self.regions.values():
            if data is not None:
                mem[off:off + words] = data
            if poison is not None:
                mem[off + poison] = SENTINEL
        return mem

    def get(self, mem, name):
        off, words, _, _ = self.regions[name]
        return mem[off:off + words]

    def off(self, name):
        return self.regions[name][0]


def fm_valid(fm, shape):
    """Addresses (relative to the tensor) of every real element of a feature map."""
    B, C, H, W = shape
    b, c, r, x = np.meshgrid(np.arange(B), np.arange(C), np.arange(H), np.arange(W),
                             indexing="ij")
    return fm.addr(shape, b.ravel(), c.ravel(), r.ravel(), x.ravel())


def w_valid(wl, shape):
    M, N, K, _ = shape
    m, n, i, j = np.meshgrid(np.arange(M), np.arange(N), np.arange(K), np.arange(K),
                             indexing="ij")
    return wl.addr(shape, m.ravel(), n.ravel(), i.ravel(), j.ravel())


def pad_words(size, valid):
    """Words of a packed tensor that hold no element (pad lanes)."""
    mask = np.ones(size, dtype=bool)
    mask[valid] = False
    return np.flatnonzero(mask)


def put_fm(dram, eng, name, arr):
    shape = arr.shape
    size = eng.fm.size(shape)
    return dram.add(name, size, eng.fm.pack(arr), pad_words(size, fm_valid(eng.fm, shape)))


def put_w(dram, eng, name, arr):
    size = eng.wl.size(arr.shape)
    return dram.add(name, size, eng.wl.pack(arr), pad_words(size, w_valid(eng.wl, arr.shape)))


def rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / (np.max(np.abs(b)) + 1e-12))


def bits(a):
    return np.ascontiguousarray(a).view(np.uint32)


def check_writes(before, after, allowed):
    """Only ``allowed`` words changed, and every one of them did."""
    changed = bits(before) != bits(after)
    ok = np.zeros(before.size, dtype=bool)
    ok[allowed] = True
    stray = np.flatnonzero(changed & ~ok)
    assert stray.size == 0, f"{stray.size} words written outside the outputs, first at {stray[:8]}"
    missed = np.flatnonzero(ok & ~changed)
    assert missed.size == 0, f"{missed.size} output words not written, first at {missed[:8]}"


def check_fm_writes(before, after, off, fm, shape):
    """A stored feature map: exactly its words change (whole lane vectors), and its pad
    lanes are written as +0, as the layout defines them (and as the RTL writes them)."""
    size = fm.size(shape)
    check_writes(before, after, off + np.arange(size))
    pads = off + pad_words(size, fm_valid(fm, shape))
    assert np.all(bits(after[pads]) == 0), "pad lanes not written as +0"


# ---- the test matrix -----------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    name: str
    n: int        # layer input channels
    m: int        # layer output channels
    h: int
    w: int
    k: int
    s: int
    p: int
    batch: int
    bias: bool
    relu: bool    # FP: fused ReLU
    mask: bool    # BP: fused ReLU mask

    @property
    def ho(self):
        return ops.conv_out_size(self.h, self.k, self.s, self.p)

    @property
    def wo(self):
        return ops.conv_out_size(self.w, self.k, self.s, self.p)


CASES = [
    Case("k3s1p1", 6, 10, 9, 9, 3, 1, 1, 2, True, True, True),
    Case("k3s2p1", 10, 10, 9, 8, 3, 2, 1, 2, False, False, True),
    Case("k3s1p0", 5, 7, 8, 9, 3, 1, 0, 2, True, False, False),
    Case("k3s2p0", 4, 5, 10, 11, 3, 2, 0, 3, True, False, True),
    Case("k1s1p0", 3, 16, 7, 7, 1, 1, 0, 3, True, False, False),
    Case("k1s2p0", 10, 6, 8, 8, 1, 2, 0, 2, False, True, True),
    Case("k5s1p2", 3, 6, 10, 10, 5, 1, 2, 2, True, True, True),
    Case("k7s2p3", 3, 16, 13, 13, 7, 2, 3, 2, True, True, False),
    Case("wide", 33, 20, 5, 6, 3, 1, 1, 2, True, False, True),
    Case("k1p1", 5, 6, 6, 7, 1, 1, 1, 2, True, False, True),    # P > K-1: BP crops
    Case("linear", 20, 7, 1, 1, 1, 1, 0, 3, True, True, True),
]

# (tr, tc, mc, order); the engine clips tr/tc to the phase's map and mc to its blocks.
TILINGS = [
    (99, 99, 99, 0),   # whole map, one chunk, wo
    (3, 4, 2, 1),      # non-dividing tiles, chunks of 2, io
    (2, 5, 1, 0),      # chunks of 1, wo
    (1, 1, 3, 1),      # pixel tiles (linear: image by image), io
]


def geometry(c: Case):
    return dict(batch=c.batch, in_c=c.n, in_h=c.h, in_w=c.w, out_c=c.m, out_h=c.ho,
                out_w=c.wo, kh=c.k, kw=c.k, stride=c.s, pad=c.p)


def tiling(t):
    return dict(tr=t[0], tc=t[1], mc=t[2], order=t[3])


def data(c: Case, seed=0):
    rng = np.random.default_rng(seed)
    f = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    return {"x": f(c.batch, c.n, c.h, c.w), "w": f(c.m, c.n, c.k, c.k) * np.float32(0.3),
            "b": f(c.m), "dy": f(c.batch, c.m, c.ho, c.wo), "v": f(c.m, c.n, c.k, c.k),
            "vb": f(c.m)}


def run_fp(eng, c: Case, t, seed=0):
    d = data(c, seed)
    dram = Dram()
    put_fm(dram, eng, "x", d["x"])
    put_w(dram, eng, "w", d["w"])
    dram.add("b", c.m, d["b"])
    y_shape = (c.batch, c.m, c.ho, c.wo)
    dram.add("y", eng.fm.size(y_shape))
    flags = (["BIAS"] if c.bias else []) + (["RELU"] if c.relu else [])
    desc = make_desc("CONV_FP", flags, {0: dram.off("x"), 1: dram.off("w"), 2: dram.off("b"),
                                        7: dram.off("y")}, **geometry(c), **tiling(t))
    assert eng.check(desc) == OK
    mem = dram.build()
    before = mem.copy()
    eng.run(desc, mem)
    check_fm_writes(before, mem, dram.off("y"), eng.fm, y_shape)
    y = eng.fm.unpack(dram.get(mem, "y"), y_shape)
    want = ops.conv_fp(d["x"], d["w"], d["b"] if c.bias else None, c.s, c.p)
    if c.relu:
        want = ops.relu_fp(want)
    return {"y": rel_err(y, want)}


def run_bp(eng, c: Case, t, seed=0):
    d = data(c, seed)
    dram = Dram()
    put_fm(dram, eng, "dy", d["dy"])
    put_w(dram, eng, "w", d["w"])
    xm = ops.relu_fp(d["x"])                 # the mask source: a ReLU output (exact zeros)
    put_fm(dram, eng, "xm", xm)
    dx_shape = (c.batch, c.n, c.h, c.w)
    dram.add("dx", eng.fm.size(dx_shape))
    desc = make_desc("CONV_BP", ["MASK"] if c.mask else [],
                     {0: dram.off("dy"), 1: dram.off("w"), 6: dram.off("xm"), 7: dram.off("dx")},
                     **geometry(c), **tiling(t))
    assert eng.check(desc) == OK
    mem = dram.build()
    before = mem.copy()
    eng.run(desc, mem)
    check_fm_writes(before, mem, dram.off("dx"), eng.fm, dx_shape)
    dx = eng.fm.unpack(dram.get(mem, "dx"), dx_shape)
    want = ops.conv_bp(d["dy"], d["w"], c.s, c.p, (c.h, c.w))
    if c.mask:
        want = ops.relu_bp(want, xm)
    return {"dx": rel_err(dx, want)}


def run_wu(eng, c: Case, t, seed=0, debug=True, keep=None):
    d = data(c, seed)
    dram = Dram()
    put_fm(dram, eng, "dy", d["dy"])
    put_fm(dram, eng, "x", d["x"])
    w_shape = (c.m, c.n, c.k, c.k)
    put_w(dram, eng, "w", d["w"])
    put_w(dram, eng, "v", d["v"])
    dram.add("gw", eng.wl.size(w_shape))
    dram.add("b", c.m, d["b"])
    dram.add("vb", c.m, d["vb"])
    dram.add("gb", c.m)
    a = {0: dram.off("dy"), 1: dram.off("x"), 2: dram.off("w"), 3: dram.off("v")}
    if debug:
        a[6] = dram.off("gw")
    if c.bias:
        a.update({4: dram.off("b"), 5: dram.off("vb")})
        if debug:
            a[7] = dram.off("gb")
    desc = make_desc("CONV_WU", ["BIAS"] if c.bias else [], a, lr=LR, momentum=MOMENTUM,
                     weight_decay=WD, **geometry(c), **tiling(t))
    assert eng.check(desc) == OK
    mem = dram.build()
    before = mem.copy()
    eng.run(desc, mem)
    if keep is not None:
        keep["mem"] = mem
    wv = w_valid(eng.wl, w_shape)
    allowed = [dram.off("w") + wv, dram.off("v") + wv]
    if debug:   # the debug gradient copy: whole (Tm, Tn) blocks, pad words +0
        gw_all = np.arange(eng.wl.size(w_shape))
        allowed.append(dram.off("gw") + gw_all)
        gw_pads = dram.off("gw") + pad_words(gw_all.size, wv)
        assert np.all(bits(mem[gw_pads]) == 0), "debug gradient pads not +0"
    if c.bias:
        allowed += [dram.off("b") + np.arange(c.m), dram.off("vb") + np.arange(c.m)]
        if debug:
            allowed.append(dram.off("gb") + np.arange(c.m))
    check_writes(before, mem, np.concatenate(allowed))

    unpack_w = lambda name: eng.wl.unpack(dram.get(mem, name), w_shape)  # noqa: E731
    g_want = ops.conv_wu(d["dy"], d["x"], c.s, c.p, c.k)
    w_want, v_want = ops.sgd_update(d["w"], g_want, d["v"], LR, MOMENTUM, WD)
    w_new, v_new = unpack_w("w"), unpack_w("v")
    err = {"w": rel_err(w_new, w_want), "v": rel_err(v_new, v_want)}
    if debug:
        g = unpack_w("gw")
        err["gw"] = rel_err(g, g_want)
        # The write-back is sgd_update's float operations in the same order.
        w_exp, v_exp = ops.sgd_update(d["w"], g, d["v"], LR, MOMENTUM, WD)
        if EXACT_FP:
            assert np.array_equal(bits(w_new), bits(w_exp))
            assert np.array_equal(bits(v_new), bits(v_exp))
        else:
            err["w_from_g"] = rel_err(w_new, w_exp)
    if c.bias:
        gb_want = ops.conv_bias_grad(d["dy"])
        b_want, vb_want = ops.sgd_update(d["b"], gb_want, d["vb"], LR, MOMENTUM, WD)
        err["b"] = rel_err(dram.get(mem, "b"), b_want)
        err["vb"] = rel_err(dram.get(mem, "vb"), vb_want)
        if debug:
            err["gb"] = rel_err(dram.get(mem, "gb"), gb_want)
    return err


RUNNERS = {"fp": run_fp, "bp": run_bp, "wu": run_wu}


def tiling_id(t):
    return "tr{}tc{}mc{}{}".format(*t[:3], "io" if t[3] else "wo")


@pytest.mark.parametrize("t", TILINGS, ids=tiling_id)
@pytest.mark.parametrize("c", CASES, ids=lambda c: c.name)
@pytest.mark.parametrize("phase", ["fp", "bp", "wu"])
@pytest.mark.parametrize("cfg", list(CONFIGS))
def test_engine_matches_golden(engine, cfg, phase, c, t):
    errs = RUNNERS[phase](engine(cfg), c, t)
    bad = {k: v for k, v in errs.items() if not v <= BAR}
    assert not bad, f"relative errors above {BAR}: {bad}"


# ---- focused tests -------------------------------------------------------------------------

def test_linear_layers_match_linear_golden(engine):
    """A linear layer (B=3, 20 -> 7) is the same code path; compare with ops.linear_*."""
    eng = engine("8x4")
    c = Case("linear", 20, 7, 1, 1, 1, 1, 0, 3, True, False, False)
    d = data(c, seed=5)
    x2, w2, dy2 = d["x"][:, :, 0, 0], d["w"][:, :, 0, 0], d["dy"][:, :, 0, 0]
    for t in [(1, 1, 1, 0), (1, 3, 1, 1), (1, 2, 9, 0)]:
        dram = Dram()
        put_fm(dram, eng, "x", d["x"])
        put_w(dram, eng, "w", d["w"])
        dram.add("b", 7, d["b"])
        dram.add("y", eng.fm.size((3, 7, 1, 1)))
        desc = make_desc("CONV_FP", ["BIAS"], {0: dram.off("x"), 1: dram.off("w"),
                                               2: dram.off("b"), 7: dram.off("y")},
                         **geometry(c), **tiling(t))
        mem = dram.build()
        eng.run(desc, mem)
        y = eng.fm.unpack(dram.get(mem, "y"), (3, 7))
        assert rel_err(y, ops.linear_fp(x2, w2, d["b"])) <= BAR
        # BP and WU through the generic runners cover the masks and the update; here
        # the 2-D golden of the linear layer.
        dram = Dram()
        put_fm(dram, eng, "dy", d["dy"])
        put_w(dram, eng, "w", d["w"])
        dram.add("dx", eng.fm.size((3, 20, 1, 1)))
        desc = make_desc("CONV_BP", [], {0: dram.off("dy"), 1: dram.off("w"),
                                         7: dram.off("dx")}, **geometry(c), **tiling(t))
        mem = dram.build()
        eng.run(desc, mem)
        dx = eng.fm.unpack(dram.get(mem, "dx"), (3, 20))
        assert rel_err(dx, ops.linear_bp(dy2, w2)) <= BAR
    errs = run_wu(eng, c, (1, 1, 1, 1), seed=5)
    assert max(errs.values()) <= BAR
    assert rel_err(ops.linear_wu(dy2, x2), ops.conv_wu(d["dy"], d["x"], 1, 0, 1)[:, :, 0, 0]) == 0


# Issue 13 req. 3: with EFGEN_WDB a WU job's chunk ch accumulates into weight (and bias
# gradient) buffer ch % 2 while chunk ch-1's write-back runs from the other
# (run_chunk_wu_wdb, threads in C-simulation). The DRAM image it leaves is the single
# buffer's, bit for bit (check_writes inside run_wu: nothing else written), over chunks of
# one and two output blocks, an odd and an even number of chunks, with and without bias
# and debug copies, conv and linear.
WU_WDB_RUNS = [
    (Case("k3s1p1", 6, 20, 9, 9, 3, 1, 1, 2, True, True, True), (3, 4, 1, 1), True),   # 3 chunks
    (Case("k3s2p1", 10, 32, 9, 8, 3, 2, 1, 2, False, False, True), (2, 5, 1, 0), True),  # 4
    (Case("k1s1p0", 3, 33, 7, 7, 1, 1, 0, 3, True, False, False), (99, 99, 2, 0), False),  # 3
    (Case("linear", 20, 30, 1, 1, 1, 1, 0, 3, True, False, False), (1, 2, 1, 1), True),  # 4
]


@pytest.mark.parametrize("run", WU_WDB_RUNS, ids=lambda r: r[0].name)
def test_wu_write_back_overlap_is_the_single_buffers_twin(engine, run):
    c, t, debug = run
    assert -(-c.m // 8) // t[2] >= 3 or -(-c.m // 8) >= 3     # at least three chunks
    one, two = {}, {}
    errs = run_wu(engine("8x4-wdb"), c, t, debug=debug, keep=two)
    assert max(errs.values()) <= BAR, errs
    run_wu(engine("8x4"), c, t, debug=debug, keep=one)
    assert np.array_equal(bits(one["mem"]), bits(two["mem"]))


def test_no_writes_outside_outputs_and_pad_lanes(engine):
    """Outputs whose last lane block is partial: pad lanes are written as +0, the lane
    blocks of the last Tm block that do not exist stay untouched; so does everything else
    (the runners check every word)."""
    eng = engine("8x4")          # T = 4: out_c 10 -> blocks of 4, 4, 2 (+2 pad lanes)
    c = Case("pads", 6, 10, 7, 6, 3, 2, 1, 2, True, True, True)
    t = (2, 2, 1, 1)
    for runner in (run_fp, run_bp, run_wu):
        runner(eng, c, t)        # check_writes runs inside every runner
    y_shape = (c.batch, c.m, c.ho, c.wo)
    pads = pad_words(eng.fm.size(y_shape), fm_valid(eng.fm, y_shape))
    assert pads.size == c.batch * c.ho * c.wo * 2   # the test exercises pad lanes


def test_wu_without_debug_copies_writes_only_parameters(engine):
    c = CASES[0]
    errs = run_wu(engine("4x8"), c, (3, 4, 2, 1), debug=False)
    assert max(errs.values()) <= BAR


def test_repeated_calls_do_not_leak_state(engine):
    """Static on-chip buffers: a small layer after a large one gives the same result."""
    eng = engine("16x16")
    first = run_fp(eng, CASES[0], TILINGS[1], seed=1)
    run_wu(eng, CASES[8], TILINGS[0], seed=2)
    run_bp(eng, CASES[7], TILINGS[0], seed=3)
    assert run_fp(eng, CASES[0], TILINGS[1], seed=1) == first


def test_libraries_with_different_parameters_coexist(tmp_path):
    """Two configurations in one process keep separate buffers and code: a small-buffer
    library loaded first must not lend its buffers to a big one (static on-chip arrays
    of an externally visible inline function would be one STB_GNU_UNIQUE symbol)."""
    small, big = tmp_path / "small", tmp_path / "big"
    for d, depth in ((small, 64), (big, 4096)):
        d.mkdir()
        (d / "efgen_params.h").write_text(params_header(8, 8, depth, depth, depth))
        (d / "wrapper.cpp").write_text(WRAPPER)
    lib_small = compile_shared([small / "wrapper.cpp"], small / "ce", include_dirs=[small])
    lib_big = compile_shared([big / "wrapper.cpp"], big / "ce", include_dirs=[big])
    load(lib_small)                                  # loaded first
    eng = object.__new__(Engine)
    eng.tm = eng.tn = eng.lanes = 8
    eng.fm, eng.wl = FeatureMapLayout("blocked", 8), WeightLayout("blocked", 8, 8)
    eng.lib = load(lib_big)
    eng.lib.run.argtypes = [ctypes.POINTER(EfgenDesc), ctypes.POINTER(ctypes.c_float)]
    eng.lib.check.argtypes = [ctypes.POINTER(EfgenDesc)]
    c = Case("bigtile", 12, 20, 24, 24, 3, 1, 1, 1, True, False, True)
    t = (24, 24, 3, 1)                               # 26*26 input, 3*576 output words
    assert max(run_fp(eng, c, t).values()) <= BAR
    assert max(run_wu(eng, c, t).values()) <= BAR
    nm = shutil.which("nm")
    if nm:
        syms = subprocess.run([nm, "-D", "--defined-only", str(lib_big)], capture_output=True,
                              text=True, check=True).stdout.split()
        # Only the entry points are exported, besides libstdc++'s own inline functions
        # that the C-simulation model of the dataflow channels instantiates on standard
        # types (std::thread, std::unique_lock<std::mutex>): identical in every library.
        names = syms[2::3]
        std = [s for s in names if s.startswith(("_ZNSt", "_ZNKSt", "_ZSt"))]
        assert sorted(set(names) - set(std)) == ["check", "run"]
        assert not [s for s in std if "efgen" in s or "_A" in s], std   # no block types


def _fp_desc(c: Case, t, flags=(), **over):
    geo = geometry(c)
    geo.update(tiling(t))
    geo.update(over)
    return make_desc("CONV_FP", list(flags), {0: GUARD, 1: GUARD, 2: GUARD, 7: GUARD}, **geo)


def test_check_rejects_what_does_not_fit(engine):
    eng = engine("8x4")          # IFM 1024, OFM 2048, WBUF 1024 words, MAX_C 64
    big = Case("big", 4, 24, 40, 40, 1, 1, 0, 1, False, False, False)
    assert eng.check(_fp_desc(big, (20, 40, 1, 0))) == OK
    assert eng.check(_fp_desc(big, (40, 40, 1, 0))) == ERR_IFM          # 1600 > 1024
    mid = Case("mid", 4, 24, 30, 30, 1, 1, 0, 1, False, False, False)
    assert eng.check(_fp_desc(mid, (30, 30, 3, 0))) == OK               # wo: one tile
    assert eng.check(_fp_desc(mid, (30, 30, 2, 1))) == OK               # io: 1800
    assert eng.check(_fp_desc(mid, (30, 30, 3, 1))) == ERR_OFM          # io: 2700 > 2048
    k7 = Case("k7", 24, 32, 9, 9, 7, 1, 3, 1, False, False, False)      # NB 6 x 49 words
    assert eng.check(_fp_desc(k7, (9, 9, 3, 0))) == OK                  # 882
    assert eng.check(_fp_desc(k7, (9, 9, 4, 0))) == ERR_WBUF            # 1176 > 1024
    many = Case("many", 4, 72, 2, 2, 1, 1, 0, 1, True, False, False)    # 9 blocks > 64/8
    assert eng.check(_fp_desc(many, (2, 2, 8, 0), ["BIAS"])) == OK
    assert eng.check(_fp_desc(many, (2, 2, 9, 0), ["BIAS"])) == ERR_BIAS
    assert eng.check(_fp_desc(many, (2, 2, 9, 0))) == OK
    small = CASES[0]
    nop = _fp_desc(small, (2, 2, 1, 0))
    nop.op = 0
    assert eng.check(nop) == ERR_OP
    assert eng.check(_fp_desc(small, (2, 2, 1, 0), out_h=small.ho + 1)) == ERR_GEOMETRY
    assert eng.check(_fp_desc(small, (2, 2, 1, 0), kw=1)) == ERR_GEOMETRY
    assert eng.check(_fp_desc(small, (2, 2, 1, 0), stride=0)) == ERR_GEOMETRY
    assert eng.check(_fp_desc(small, (0, 2, 1, 0))) == ERR_TILING
    assert eng.check(_fp_desc(small, (2, 2, 0, 0))) == ERR_TILING
    assert eng.check(_fp_desc(small, (2, 2, 1, 2))) == ERR_TILING
    bad = _fp_desc(small, (2, 2, 1, 0))
    bad.a[7] = -5
    assert eng.check(bad) == ERR_ADDRESS
    # Hostile sizes are rejected without overflowing the checks.
    huge = 2**31 - 1
    assert eng.check(_fp_desc(small, (2, 2, 1, 0), kh=65537, kw=65537, pad=0, in_h=huge, in_w=huge,
                              out_h=huge - 65536, out_w=huge - 65536)) == ERR_WBUF
    assert eng.check(_fp_desc(small, (huge, huge, huge, 1), in_c=huge, out_c=huge)) == ERR_OFM


def test_rejected_descriptor_touches_nothing(engine):
    eng = engine("8x4")
    big = Case("big", 4, 24, 40, 40, 1, 1, 0, 1, False, False, False)
    dram = Dram()
    put_fm(dram, eng, "x", np.ones((1, 4, 40, 40), np.float32))
    put_w(dram, eng, "w", np.ones((24, 4, 1, 1), np.float32))
    dram.add("y", eng.fm.size((1, 24, 40, 40)))
    desc = make_desc("CONV_FP", [], {0: dram.off("x"), 1: dram.off("w"), 7: dram.off("y")},
                     **geometry(big), **tiling((40, 40, 1, 0)))
    assert eng.check(desc) == ERR_IFM
    mem = dram.build()
    before = mem.copy()
    eng.run(desc, mem)
    assert np.array_equal(bits(mem), bits(before))


# ---- the C++ itself ------------------------------------------------------------------------

def _gxx(tmp_path, cfg, *flags):
    (tmp_path / "efgen_params.h").write_text(params_header(**{**CONFIGS, **WDB_CONFIGS}[cfg]))
    src = tmp_path / "tu.cpp"
    src.write_text(WRAPPER)
    cmd = ["g++", "-std=c++17", *flags, f"-I{tmp_path}", f"-I{hls_kernels_dir()}",
           f"-I{VITIS_STUB}", str(src)]
    return subprocess.run(cmd, capture_output=True, text=True)


@pytest.mark.parametrize("cfg", list(CONFIGS) + list(WDB_CONFIGS))
def test_header_compiles_without_any_warning(tmp_path, cfg):
    proc = _gxx(tmp_path, cfg, "-fsyntax-only", "-O2", "-Wall", "-Wextra", "-Werror",
                "-pedantic", "-Wshadow")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "" and proc.stdout == ""


def test_hls_pragmas_under_synthesis(tmp_path):
    """With __SYNTHESIS__ the pragmas and labels appear, macros expanded to literals."""
    proc = _gxx(tmp_path, "16x16", "-E", "-D__SYNTHESIS__")
    assert proc.returncode == 0, proc.stderr
    pragmas = [ln.strip() for ln in proc.stdout.splitlines()
               if ln.strip().startswith("#pragma HLS")]
    kinds = {p.split()[2].upper() for p in pragmas}
    assert {"PIPELINE", "UNROLL", "ARRAY_PARTITION", "BIND_STORAGE", "LOOP_TRIPCOUNT",
            "DATAFLOW", "DEPENDENCE", "ALLOCATION", "INLINE"} <= kinds
    assert "RESOURCE" not in kinds
    assert not [p for p in pragmas if "EFGEN_" in p]      # every macro became a literal
    assert "#pragma HLS LOOP_TRIPCOUNT min=1 max=16" in pragmas        # EFGEN_TM
    assert ("#pragma HLS DEPENDENCE variable=blk type=inter direction=RAW dependent=true "
            "distance=6") in pragmas                                      # EFGEN_ACC_DIST
    assert re.search(r"^\s*MAC:", proc.stdout, re.M)
    assert "#pragma HLS ALLOCATION function instances=mac_pass limit=1" in pragmas
    # And the synthesis view is valid C++ (g++ knows neither the HLS pragmas nor why
    # a loop has a label).
    proc = _gxx(tmp_path, "16x16", "-fsyntax-only", "-D__SYNTHESIS__", "-Wall", "-Wextra",
                "-Werror", "-Wno-unknown-pragmas",
                "-Wno-unused-label")
    assert proc.returncode == 0, proc.stderr


def test_wdb_synthesis_view(tmp_path):
    """EFGEN_WDB's synthesis view: valid C++, and its DATAFLOW regions are run_chunk,
    run_chunk_wdb (FP/BP: the next chunk's weights) and run_chunk_wu_wdb (WU: the last
    chunk's write-back beside this chunk's accumulation)."""
    proc = _gxx(tmp_path, "8x4-wdb", "-fsyntax-only", "-D__SYNTHESIS__", "-Wall", "-Wextra",
                "-Werror", "-Wno-unknown-pragmas", "-Wno-unused-label")
    assert proc.returncode == 0, proc.stderr
    proc = _gxx(tmp_path, "8x4-wdb", "-E", "-D__SYNTHESIS__")
    assert proc.returncode == 0, proc.stderr
    regions, fn = [], None
    for ln in proc.stdout.splitlines():
        if m := re.match(r"static (?:inline )?void (\w+)\(", ln):
            fn = m.group(1)
        if ln.strip() == "#pragma HLS DATAFLOW":
            regions.append(fn)
    assert regions == ["run_chunk", "run_chunk_wdb", "run_chunk_wu_wdb"], regions
