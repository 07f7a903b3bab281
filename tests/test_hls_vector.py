"""C-simulation of hls_kernels/vector_engine.h against the numpy golden ops, and checks of
its HLS structure against efgen/hls/manifest.py.

The engine is compiled once per lane width T (4 and 16) with g++ -pedantic on top of
the project's warning bar, with on-chip rows of 12 vectors and element-wise chunks of
8 and 5 vectors (so multi-chunk passes, partial last chunks and the width limit are
exercised), and driven through a one-line wrapper on a float32 DRAM
image. Every tensor is placed with efgen.layout's blocked layout; the rest of the image
holds a sentinel, so a write outside the op's output tensors is caught (bitwise), and
pad lanes of every written feature map must be exactly zero (input pad lanes hold NaN,
so nothing may depend on them). Values are compared with efgen/golden/ops.py in
float32: max|a - b| / (max|b| + 1e-12) <= 1e-5 per tensor. Descriptors that
efgen_vector_check rejects must write nothing. Run with -s to print the largest error
seen per op.
"""

from __future__ import annotations

import ctypes
import math
import re
import subprocess
import zlib
from collections import Counter, defaultdict

import numpy as np
import pytest

from efgen.csim.cc import compile_shared, hls_kernels_dir, load
from efgen.frontend import load_net
from efgen.frontend.boards import load_board
from efgen.golden import ops
from efgen.hls.desc import EfgenDesc, make_desc
from efgen.hls.emit import render
from efgen.hls.manifest import vector_engine_manifest, vector_params
from efgen.hls.program import build_program
from efgen.layout import FeatureMapLayout
from efgen.model.schedule import Request, schedule

TOL = 1e-5
EPS = 1e-5
BN_MOM = 0.1
SGD = dict(lr=0.05, momentum=0.9, weight_decay=5e-4)
MAX_C = 64
SENTINEL = np.float32(-7777.25)
F32 = np.float32

PARAMS_H = """#ifndef EFGEN_PARAMS_H
#define EFGEN_PARAMS_H
#define EFGEN_TM {tm}
#define EFGEN_TN {tn}
#define EFGEN_LANES {t}
#define EFGEN_MAX_C {max_c}
#define EFGEN_IFM_DEPTH 2048
#define EFGEN_OFM_DEPTH 2048
#define EFGEN_WBUF_DEPTH 512
#define EFGEN_MAX_W {max_w}
#define EFGEN_VEC_CHUNK {chunk}
{extra}#endif
"""
MAX_W = 12   # on-chip rows of the test builds: max(EFGEN_MAX_W, 9) = 12 vectors
WRAPPER = """#include "efgen_params.h"
#include "vector_engine.h"
extern "C" void run(const EfgenDesc* d, float* mem) { efgen_vector_engine(*d, mem, mem, mem); }
extern "C" int check(const EfgenDesc* d) { return efgen_vector_check(*d); }
"""

ERRORS: dict[str, float] = defaultdict(float)


@pytest.fixture(scope="module", autouse=True)
def _error_summary():
    yield
    if ERRORS:
        print("\nvector engine: max relative error per op")
        for k in sorted(ERRORS):
            print(f"  {k:28s} {ERRORS[k]:.3e}")


@pytest.fixture(scope="module", params=[(4, 8, 4, 8), (16, 16, 16, 5)], ids=["T4", "T16"])
def eng(request, tmp_path_factory):
    t, tm, tn, chunk = request.param
    d = tmp_path_factory.mktemp(f"vector_t{t}")
    (d / "efgen_params.h").write_text(PARAMS_H.format(t=t, tm=tm, tn=tn, max_c=MAX_C,
                                                      max_w=MAX_W, chunk=chunk, extra=""))
    src = d / "vector_wrap.cpp"
    src.write_text(WRAPPER)
    lib = load(compile_shared([src], d / "vector_wrap.so", include_dirs=[d],
                              extra_flags=["-pedantic"]))
    lib.run.argtypes = [ctypes.POINTER(EfgenDesc), ctypes.POINTER(ctypes.c_float)]
    lib.run.restype = None
    lib.check.argtypes = [ctypes.POINTER(EfgenDesc)]
    lib.check.restype = ctypes.c_int
    return lib, t


class Image:
    """A DRAM image under construction: inputs, declared output regions, sentinel gaps."""

    def __init__(self, lanes: int):
        self.t = lanes
        self.fm = FeatureMapLayout("blocked", lanes)
        self.top = 64                      # word 0 stays unused: a[6] = 0 means "absent"
        self.data: list[tuple[int, np.ndarray]] = []
        self.outs: list[tuple[int, int]] = []

    def _alloc(self, size: int) -> int:
        addr = self.top
        self.top += size + 29              # sentinel gap after every tensor
        return addr

    def put(self, flat) -> int:
        flat = np.asarray(flat, dtype=F32).ravel()
        addr = self._alloc(flat.size)
        self.data.append((addr, flat))
        return addr

    def fm_in(self, arr) -> int:
        """A feature-map input. Its pad lanes are poisoned with NaN (the layout promises
        zeros there): the engine must neither depend on them nor leak them."""
        arr = np.asarray(arr, dtype=F32)
        flat = self.fm.pack(arr)
        flat[self.fm.pack(np.ones(arr.shape, dtype=F32)) == 0] = np.nan
        return self.put(flat)

    def out(self, size: int, init=None) -> int:
        """An output region of ``size`` words (``init``: its contents before, in place)."""
        addr = self.put(init) if init is not None else self._alloc(size)
        self.outs.append((addr, size))
        return addr

    def fm_out(self, shape) -> int:
        return self.out(self.fm.size(shape))

    def run(self, lib, desc, status: int = 0) -> np.ndarray:
        """Execute ``desc``; efgen_vector_check must return ``status`` (non-zero: the
        descriptor is rejected and nothing may be written)."""
        assert lib.check(ctypes.byref(desc)) == status
        mem = np.full(self.top + 64, SENTINEL, dtype=F32)
        for addr, flat in self.data:
            mem[addr:addr + flat.size] = flat
        before = mem.copy()
        lib.run(ctypes.byref(desc), mem.ctypes.data_as(ctypes.POINTER(ctypes.c_float)))
        keep = np.ones(mem.size, dtype=bool)
        for addr, size in self.outs:
            keep[addr:addr + size] = False
        bad = np.flatnonzero(keep & (mem.view(np.uint32) != before.view(np.uint32)))
        assert bad.size == 0, f"{bad.size} words written outside the outputs, first at {bad[:5]}"
        return mem

    def get_fm(self, mem, addr, shape) -> np.ndarray:
        """Unpack a written feature map; its pad lanes must be exactly zero."""
        size = self.fm.size(shape)
        flat = mem[addr:addr + size]
        pad = self.fm.pack(np.ones(shape, dtype=F32)) == 0
        assert np.all(flat[pad] == 0), "non-zero pad lanes"
        return self.fm.unpack(flat, shape)


def check(op: str, got, want) -> None:
    got, want = np.asarray(got, dtype=F32), np.asarray(want, dtype=F32)
    assert got.shape == want.shape
    err = float(np.max(np.abs(got.astype(np.float64) - want)) /
                (np.max(np.abs(want.astype(np.float64))) + 1e-12)) if want.size else 0.0
    ERRORS[op] = max(ERRORS[op], err)
    assert err <= TOL, f"{op}: relative error {err:.3e}"


def geom(b, c, h, w, oc=None, oh=None, ow=None, **kw) -> dict:
    return dict(batch=b, in_c=c, in_h=h, in_w=w, out_c=c if oc is None else oc,
                out_h=h if oh is None else oh, out_w=w if ow is None else ow, **kw)


def rng_for(*key) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def flags(**on) -> list[str]:
    return [k.upper() for k, v in on.items() if v]


# ------------------------------------------------------------------------- batchnorm

@pytest.mark.parametrize("b,c,h,w,relu,offset", [
    (2, 6, 5, 5, False, 1.5), (3, 10, 4, 3, True, 0.0), (2, 16, 3, 3, False, -2.0),
    (3, 6, 1, 1, True, 0.5),          # after a linear layer: (B, C) = (B, C, 1, 1)
    (2, 10, 6, 6, False, 100.0),      # |mean| >> std: needs the centred (two-pass) variance
    (2, 6, 32, 32, False, 3.0),       # 2048 values per channel: float32 partial sums
    (16, 20, 4, 4, True, -1.0),       # many short runs (16 pixels) per channel block
])
def test_bn_fp(eng, b, c, h, w, relu, offset):
    lib, t = eng
    r = rng_for("bnfp", b, c, h, w)
    x = (offset + 2.0 * r.standard_normal((b, c, h, w))).astype(F32)
    gamma, beta = r.normal(1, 0.5, c).astype(F32), r.normal(0, 0.5, c).astype(F32)
    rm, rv = r.normal(0, 1, c).astype(F32), r.uniform(0.5, 2, c).astype(F32)
    y, cache = ops.bn_fp_train(x, gamma, beta, EPS)
    if relu:
        y = ops.relu_fp(y)
    nrm, nrv = ops.bn_running_update(rm, rv, cache["mean"], cache["var"], b * h * w, BN_MOM)

    im = Image(t)
    a = {0: im.fm_in(x), 1: im.put(gamma), 2: im.put(beta), 3: im.out(2 * c),
         4: im.out(c, rm), 5: im.out(c, rv), 7: im.fm_out(x.shape)}
    d = make_desc("BN_FP", flags(relu=relu), a, **geom(b, c, h, w), eps=EPS,
                  bn_momentum=BN_MOM)
    mem = im.run(lib, d)
    check("BN_FP y", im.get_fm(mem, a[7], x.shape), y)
    check("BN_FP mean", mem[a[3]:a[3] + c], cache["mean"])
    check("BN_FP var", mem[a[3] + c:a[3] + 2 * c], cache["var"])
    check("BN_FP running_mean", mem[a[4]:a[4] + c], nrm)
    check("BN_FP running_var", mem[a[5]:a[5] + c], nrv)


@pytest.mark.parametrize("b,c,h,w,mask,train,dx,debug", [
    (2, 6, 5, 5, False, True, True, True),
    (3, 10, 3, 4, True, True, True, False),
    (2, 16, 2, 2, False, False, True, True),    # FLAG_TRAIN off: gamma/beta untouched
    (3, 6, 3, 3, False, True, False, True),     # FLAG_DX off: no dx written
    (2, 10, 1, 1, True, False, True, False),
    (2, 6, 32, 32, True, True, True, True),     # 2048 values per channel
    (16, 20, 4, 4, False, True, True, True),
])
def test_bn_bp(eng, b, c, h, w, mask, train, dx, debug):
    lib, t = eng
    r = rng_for("bnbp", b, c, h, w)
    x = (0.3 + r.standard_normal((b, c, h, w))).astype(F32)
    dy = r.standard_normal((b, c, h, w)).astype(F32)
    gamma, beta = r.normal(1, 0.5, c).astype(F32), r.normal(0, 0.5, c).astype(F32)
    vel = r.normal(0, 0.1, 2 * c).astype(F32)
    _, cache = ops.bn_fp_train(x, gamma, beta, EPS)
    gdx, dg, db = ops.bn_bp(dy, cache, gamma)
    if mask:
        gdx = np.where(x > 0, gdx, F32(0))
    ng, nvg = ops.sgd_update(gamma, dg, vel[:c], **SGD)
    nb, nvb = ops.sgd_update(beta, db, vel[c:], **SGD)

    im = Image(t)
    stats = np.concatenate([cache["mean"], cache["var"]])
    a = {0: im.fm_in(dy), 1: im.fm_in(x), 2: im.put(stats)}
    if train:
        a.update({3: im.out(c, gamma), 4: im.out(c, beta), 5: im.out(2 * c, vel)})
    else:
        a.update({3: im.put(gamma), 4: im.put(beta), 5: im.put(vel)})
    a[6] = im.out(2 * c) if debug else 0
    a[7] = im.fm_out(x.shape) if dx else im.put(np.full(im.fm.size(x.shape), SENTINEL))
    d = make_desc("BN_BP", flags(mask=mask, train=train, dx=dx), a, **geom(b, c, h, w),
                  eps=EPS, **SGD)
    mem = im.run(lib, d)   # without DX/TRAIN/debug those regions are checked untouched
    if dx:
        check("BN_BP dx" + (" (mask)" if mask else ""), im.get_fm(mem, a[7], x.shape), gdx)
    if debug:
        check("BN_BP dgamma", mem[a[6]:a[6] + c], dg)
        check("BN_BP dbeta", mem[a[6] + c:a[6] + 2 * c], db)
    if train:
        check("BN_BP gamma (SGD)", mem[a[3]:a[3] + c], ng)
        check("BN_BP beta (SGD)", mem[a[4]:a[4] + c], nb)
        check("BN_BP velocity", mem[a[5]:a[5] + 2 * c], np.concatenate([nvg, nvb]))


def test_bn_too_many_channels_writes_nothing(eng):
    lib, t = eng
    b, c, h, w = 2, MAX_C + 1, 2, 2
    x = rng_for("bnbig").standard_normal((b, c, h, w)).astype(F32)
    im = Image(t)
    ones = np.ones(c, F32)
    a = {0: im.fm_in(x), 1: im.put(ones), 2: im.put(ones), 3: im.put(np.zeros(2 * c)),
         4: im.put(ones), 5: im.put(ones), 7: im.put(np.zeros(im.fm.size(x.shape)))}
    im.run(lib, make_desc("BN_FP", [], a, **geom(b, c, h, w), eps=EPS, bn_momentum=BN_MOM),
           status=3)


# ------------------------------------------------------------------------------ relu

@pytest.mark.parametrize("b,c,h,w", [(2, 6, 4, 5), (3, 10, 3, 3), (2, 16, 1, 1)])
def test_relu(eng, b, c, h, w):
    lib, t = eng
    r = rng_for("relu", b, c, h, w)
    x = r.standard_normal((b, c, h, w)).astype(F32)
    x[0, 0, 0, 0] = 0.0
    dy = r.standard_normal((b, c, h, w)).astype(F32)
    y = ops.relu_fp(x)

    im = Image(t)
    a = {0: im.fm_in(x), 7: im.fm_out(x.shape)}
    mem = im.run(lib, make_desc("RELU_FP", [], a, **geom(b, c, h, w)))
    check("RELU_FP", im.get_fm(mem, a[7], x.shape), y)

    for mask in (False, True):    # RELU_BP reads y (a[1]); FLAG_MASK by a[6] as well
        m = r.standard_normal((b, c, h, w)).astype(F32)
        im = Image(t)
        a = {0: im.fm_in(dy), 1: im.fm_in(y), 6: im.fm_in(m), 7: im.fm_out(x.shape)}
        mem = im.run(lib, make_desc("RELU_BP", flags(mask=mask), a, **geom(b, c, h, w)))
        want = ops.relu_bp(dy, y)
        if mask:
            want = np.where(m > 0, want, F32(0))
        check("RELU_BP", im.get_fm(mem, a[7], x.shape), want)


# --------------------------------------------------------------------------- pooling

POOLS = [  # b, c, h, w, k, s, p
    (2, 6, 8, 8, 2, 2, 0), (3, 10, 7, 7, 3, 2, 1), (2, 16, 9, 9, 3, 1, 1),
    (3, 6, 6, 5, 3, 2, 1), (2, 10, 5, 5, 2, 1, 0),
]


def _pool_x(r, shape, kind):
    if kind == "ties":      # few distinct values: first-maximum ties everywhere
        return r.integers(-2, 3, shape).astype(F32)
    if kind == "negconst":  # a constant negative map: padding (-inf) must never win
        return np.full(shape, -1.0, F32)
    return r.standard_normal(shape).astype(F32)


@pytest.mark.parametrize("kind", ["normal", "ties", "negconst"])
@pytest.mark.parametrize("b,c,h,w,k,s,p", POOLS)
def test_maxpool(eng, b, c, h, w, k, s, p, kind):
    lib, t = eng
    r = rng_for("maxpool", b, c, h, w, k, s, p, kind)
    x = _pool_x(r, (b, c, h, w), kind)
    y, arg = ops.maxpool_fp(x, k, s, p)
    oh, ow = y.shape[2:]
    g = geom(b, c, h, w, c, oh, ow, kh=k, kw=k, stride=s, pad=p)

    relu = kind == "normal"
    im = Image(t)
    a = {0: im.fm_in(x), 6: im.fm_out(y.shape), 7: im.fm_out(y.shape)}
    mem = im.run(lib, make_desc("MAXPOOL_FP", flags(relu=relu), a, **g))
    check("MAXPOOL_FP y", im.get_fm(mem, a[7], y.shape), ops.relu_fp(y) if relu else y)
    got_arg = im.get_fm(mem, a[6], y.shape)
    assert np.array_equal(got_arg, arg.astype(F32)), "argmax differs"

    dy = r.standard_normal(y.shape).astype(F32)
    want = ops.maxpool_bp(dy, arg, k, s, p, (h, w))
    for mask in (False, True):
        m = r.standard_normal(x.shape).astype(F32)
        im = Image(t)
        a = {0: im.fm_in(dy), 1: im.fm_in(arg.astype(F32)), 6: im.fm_in(m),
             7: im.fm_out(x.shape)}
        mem = im.run(lib, make_desc("MAXPOOL_BP", flags(mask=mask), a, **g))
        check("MAXPOOL_BP", im.get_fm(mem, a[7], x.shape),
              np.where(m > 0, want, F32(0)) if mask else want)


AVGPOOLS = POOLS + [  # global pooling: kernel = the map, stride 1, pad 0
    (2, 10, 8, 8, (8, 8), 1, 0), (3, 6, 1, 1, (1, 1), 1, 0), (2, 6, 4, 6, (4, 6), 1, 0),
]


@pytest.mark.parametrize("b,c,h,w,k,s,p", AVGPOOLS)
def test_avgpool(eng, b, c, h, w, k, s, p):
    lib, t = eng
    r = rng_for("avgpool", b, c, h, w, k, s, p)
    x = r.standard_normal((b, c, h, w)).astype(F32)
    glob = isinstance(k, tuple)
    if glob:
        kh, kw = k
        y = ops.global_avgpool_fp(x)
    else:
        kh = kw = k
        y = ops.avgpool_fp(x, k, s, p)
    oh, ow = y.shape[2:]
    g = geom(b, c, h, w, c, oh, ow, kh=kh, kw=kw, stride=s, pad=p)

    for relu in (False, True):
        im = Image(t)
        a = {0: im.fm_in(x), 7: im.fm_out(y.shape)}
        mem = im.run(lib, make_desc("AVGPOOL_FP", flags(relu=relu), a, **g))
        check("AVGPOOL_FP" + (" global" if glob else ""), im.get_fm(mem, a[7], y.shape),
              ops.relu_fp(y) if relu else y)

    dy = r.standard_normal(y.shape).astype(F32)
    want = ops.global_avgpool_bp(dy, (h, w)) if glob else ops.avgpool_bp(dy, k, s, p, (h, w))
    for mask in (False, True):
        m = r.standard_normal(x.shape).astype(F32)
        im = Image(t)
        a = {0: im.fm_in(dy), 6: im.fm_in(m), 7: im.fm_out(x.shape)}
        mem = im.run(lib, make_desc("AVGPOOL_BP", flags(mask=mask), a, **g))
        check("AVGPOOL_BP" + (" global" if glob else ""), im.get_fm(mem, a[7], x.shape),
              np.where(m > 0, want, F32(0)) if mask else want)


# ---------------------------------------------------------------------- add / errsum

@pytest.mark.parametrize("b,c,h,w", [(2, 6, 4, 4), (3, 10, 3, 5), (2, 16, 2, 2)])
@pytest.mark.parametrize("relu", [False, True])
def test_add_fp(eng, b, c, h, w, relu):
    lib, t = eng
    r = rng_for("add", b, c, h, w, relu)
    x0, x1 = (r.standard_normal((b, c, h, w)).astype(F32) for _ in range(2))
    y = ops.add_fp(x0, x1)
    im = Image(t)
    a = {0: im.fm_in(x0), 1: im.fm_in(x1), 7: im.fm_out(y.shape)}
    mem = im.run(lib, make_desc("ADD_FP", flags(relu=relu), a, **geom(b, c, h, w)))
    check("ADD_FP", im.get_fm(mem, a[7], y.shape), ops.relu_fp(y) if relu else y)


@pytest.mark.parametrize("n_src", [1, 2, 3, 4])
@pytest.mark.parametrize("mask", [False, True])
@pytest.mark.parametrize("b,c,h,w", [(2, 6, 3, 3), (3, 10, 2, 5)])
def test_errsum(eng, b, c, h, w, n_src, mask):
    lib, t = eng
    r = rng_for("errsum", b, c, h, w, n_src, mask)
    srcs = [r.standard_normal((b, c, h, w)).astype(F32) for _ in range(n_src)]
    m = r.standard_normal((b, c, h, w)).astype(F32)
    want = srcs[0]
    for e in srcs[1:]:
        want = want + e
    if mask:
        want = np.where(m > 0, want, F32(0))
    im = Image(t)
    a = {i: im.fm_in(e) for i, e in enumerate(srcs)}
    a[6] = im.fm_in(m)
    a[7] = im.fm_out(m.shape)
    g = dict(batch=b, out_c=c, out_h=h, out_w=w)    # the tensor is the layer's output
    mem = im.run(lib, make_desc("ERRSUM", flags(mask=mask), a, n_src=n_src, **g))
    check("ERRSUM", im.get_fm(mem, a[7], m.shape), want)


# -------------------------------------------------------------------------- shortcut

@pytest.mark.parametrize("b,cin,cout,h,w,s", [
    (2, 16, 32, 8, 8, 2), (3, 6, 10, 7, 7, 2), (2, 3, 8, 5, 5, 2), (3, 6, 16, 7, 6, 2),
    (2, 10, 16, 4, 4, 1), (2, 6, 6, 5, 5, 2),
])
def test_shortcut(eng, b, cin, cout, h, w, s):
    lib, t = eng
    r = rng_for("shortcut", b, cin, cout, h, w, s)
    x = r.standard_normal((b, cin, h, w)).astype(F32)
    y = ops.shortcut_a_fp(x, cout, s)
    oh, ow = y.shape[2:]
    assert (oh, ow) == (math.ceil(h / s), math.ceil(w / s))
    g = geom(b, cin, h, w, cout, oh, ow, stride=s)

    for relu in (False, True):
        im = Image(t)
        a = {0: im.fm_in(x), 7: im.fm_out(y.shape)}
        mem = im.run(lib, make_desc("SHORTCUT_FP", flags(relu=relu), a, **g))
        check("SHORTCUT_FP", im.get_fm(mem, a[7], y.shape), ops.relu_fp(y) if relu else y)

    dy = r.standard_normal(y.shape).astype(F32)
    want = ops.shortcut_a_bp(dy, cin, s, (h, w))
    for mask in (False, True):
        im = Image(t)
        a = {0: im.fm_in(dy), 6: im.fm_in(x), 7: im.fm_out(x.shape)}
        mem = im.run(lib, make_desc("SHORTCUT_BP", flags(mask=mask), a, **g))
        check("SHORTCUT_BP", im.get_fm(mem, a[7], x.shape),
              np.where(x > 0, want, F32(0)) if mask else want)


# --------------------------------------------------------------------------- flatten

@pytest.mark.parametrize("b,c,h,w", [(2, 16, 5, 5), (3, 6, 3, 3), (3, 10, 2, 3), (2, 6, 1, 1)])
def test_flatten(eng, b, c, h, w):
    lib, t = eng
    r = rng_for("flatten", b, c, h, w)
    x = r.standard_normal((b, c, h, w)).astype(F32)
    f = c * h * w
    y = x.reshape(b, f)
    g = geom(b, c, h, w, f, 1, 1)

    for relu in (False, True):
        im = Image(t)
        a = {0: im.fm_in(x), 7: im.fm_out(y.shape)}
        mem = im.run(lib, make_desc("FLATTEN_FP", flags(relu=relu), a, **g))
        check("FLATTEN_FP", im.get_fm(mem, a[7], y.shape), ops.relu_fp(y) if relu else y)

    dy = r.standard_normal((b, f)).astype(F32)
    for mask in (False, True):
        im = Image(t)
        a = {0: im.fm_in(dy), 6: im.fm_in(x), 7: im.fm_out(x.shape)}
        mem = im.run(lib, make_desc("FLATTEN_BP", flags(mask=mask), a, **g))
        want = dy.reshape(x.shape)
        check("FLATTEN_BP", im.get_fm(mem, a[7], x.shape),
              np.where(x > 0, want, F32(0)) if mask else want)


REJECTED = [  # (op, flags, geometry, extra fields, status); nothing may be written
    ("NOP", [], geom(2, 6, 3, 3), {}, 1),
    ("CONV_FP", [], geom(2, 6, 3, 3, kh=1, kw=1, stride=1), {}, 1),
    ("CONV_WU", [], geom(2, 6, 3, 3, kh=1, kw=1, stride=1), {}, 1),
    ("RELU_FP", [], geom(0, 6, 3, 3), {}, 2),                         # batch 0
    ("ADD_FP", [], geom(2, 6, 3, 3, 6, 0, 3), {}, 2),                 # out_h 0
    ("BN_BP", ["DX"], geom(2, 0, 3, 3), {}, 2),
    ("MAXPOOL_FP", [], geom(2, 6, 7, 7, 6, 4, 3, kh=3, kw=3, stride=2, pad=1), {}, 2),
    ("AVGPOOL_BP", [], geom(2, 6, 7, 7, 6, 4, 4, kh=3, kw=3, stride=0, pad=1), {}, 2),
    ("AVGPOOL_FP", [], geom(2, 6, 2, 2, 6, 1, 1, kh=5, kw=5, stride=1, pad=0), {}, 2),
    ("SHORTCUT_FP", [], geom(2, 16, 7, 7, 32, 3, 4, stride=2), {}, 2),  # ceil(7/2) = 4
    ("SHORTCUT_BP", [], geom(2, 16, 8, 8, 8, 4, 4, stride=2), {}, 2),   # shrinks
    ("FLATTEN_BP", [], geom(2, 150, 1, 1, 6, 5, 5), {}, 2),            # in/out swapped
    ("ERRSUM", [], dict(batch=2, out_c=6, out_h=3, out_w=3), {"n_src": 0}, 4),
    ("ERRSUM", [], dict(batch=2, out_c=6, out_h=3, out_w=3), {"n_src": 5}, 4),
    ("ERRSUM", ["MASK"], dict(batch=2, out_c=6, out_h=3, out_w=3), {"n_src": 2, 6: -1}, 5),
    ("ERRSUM", [], dict(batch=2, out_c=6, out_h=3, out_w=3), {"n_src": 3, 2: -1}, 5),
    ("BN_FP", [], geom(2, 6, 3, 3), {4: -8}, 5),
    ("BN_BP", ["DX"], geom(2, 6, 3, 3), {6: -8}, 5),
    # maps wider than the on-chip rows (max(EFGEN_MAX_W, 9) = 12 vectors here)
    ("MAXPOOL_FP", [], geom(2, 6, 4, 13, 6, 2, 6, kh=2, kw=2, stride=2, pad=0), {}, 6),
    ("AVGPOOL_BP", [], geom(2, 6, 4, 26, 6, 2, 13, kh=2, kw=2, stride=2, pad=0), {}, 6),
    ("SHORTCUT_FP", [], geom(2, 6, 4, 13, 8, 2, 7, stride=2), {}, 6),
    ("SHORTCUT_BP", [], geom(2, 6, 4, 13, 8, 2, 7, stride=2), {}, 6),
]


@pytest.mark.parametrize("op,fl,g,extra,status", REJECTED,
                         ids=[f"{r[0]}-{i}" for i, r in enumerate(REJECTED)])
def test_rejected_descriptors_write_nothing(eng, op, fl, g, extra, status):
    lib, t = eng
    x = np.ones((2, 6, 3, 3), F32)
    im = Image(t)
    a = {i: im.fm_in(x) for i in range(8)}
    a.update({k: v for k, v in extra.items() if isinstance(k, int)})
    fields = {k: v for k, v in extra.items() if not isinstance(k, int)}
    im.run(lib, make_desc(op, fl, a, **g, **fields), status=status)


def test_unused_slots_are_not_checked(eng):
    """BN_BP without FLAG_DX leaves a[7] alone; a[6] = 0 means "no debug copy"; ERRSUM
    reads only a[0..n_src-1] (and a[6] with FLAG_MASK)."""
    lib, _ = eng
    a = {0: 64, 1: 64, 2: 64, 3: 64, 4: 64, 5: 64, 6: 0, 7: -1}
    d = make_desc("BN_BP", ["TRAIN"], a, **geom(2, 6, 3, 3))
    assert lib.check(ctypes.byref(d)) == 0
    d = make_desc("ERRSUM", [], {0: 64, 1: 64, 2: -1, 3: -1, 6: -1, 7: 64}, n_src=2,
                  batch=2, out_c=6, out_h=3, out_w=3)
    assert lib.check(ctypes.byref(d)) == 0


# ===================================================================== HLS structure
# The header as Vitis sees it, and the manifest of efgen/hls/manifest.py against the
# code: float operations per function from g++'s SSA dump (code_ops), the lane units'
# ALLOCATION operation limits from the synthesis view (ops), arrays from the header.

HEADER = hls_kernels_dir() / "vector_engine.h"
ALONE = '#include "efgen_params.h"\n#include "vector_engine.h"\n'


def _params_dir(tmp_path, t=4, max_w=MAX_W, chunk=8, axi=None, header=None):
    """A folder with efgen_params.h (EFGEN_AXI_WORDS only when ``axi`` is given: else
    the header's default 4) and, with ``header``, its own vector_engine.h text, which
    `#include "vector_engine.h"` then finds before hls_kernels/'s."""
    tag = "" if axi is None else f"_a{axi}"
    tag += "" if header is None else f"_h{zlib.crc32(header.encode()):08x}"
    d = tmp_path / f"params_t{t}_w{max_w}_c{chunk}{tag}"
    d.mkdir(exist_ok=True)
    extra = "" if axi is None else f"#define EFGEN_AXI_WORDS {axi}\n"
    (d / "efgen_params.h").write_text(PARAMS_H.format(t=t, tm=t, tn=t, max_c=MAX_C,
                                                      max_w=max_w, chunk=chunk, extra=extra))
    if header is not None:
        (d / "vector_engine.h").write_text(header)
    return d


def _gxx(tmp_path, src, *flags, t=4, max_w=MAX_W, chunk=8, out=None, axi=None, header=None):
    d = _params_dir(tmp_path, t, max_w, chunk, axi, header)
    f = d / "src.cpp"
    f.write_text(src)
    cmd = ["g++", *flags, f"-I{d}", f"-I{hls_kernels_dir()}", str(f)]
    if out is not None:
        cmd += ["-o", str(out)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=d)


def _code(text: str) -> str:
    """C++ text without comments (string literals do not occur in the header)."""
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


@pytest.mark.parametrize("std", ["c++14", "c++17"])
@pytest.mark.parametrize("t", [4, 16])
def test_header_alone_compiles_warning_free(tmp_path, std, t):
    """vector_engine.h alone (params + header), -Wall -Wextra -Werror -pedantic."""
    proc = _gxx(tmp_path, ALONE, f"-std={std}", "-Wall", "-Wextra", "-Werror", "-pedantic",
                "-fsyntax-only", t=t)
    assert proc.returncode == 0, proc.stderr
    # And with no params beyond EFGEN_LANES/EFGEN_MAX_C: the header's defaults apply.
    proc = _gxx(tmp_path, f"#define EFGEN_LANES {t}\n#define EFGEN_MAX_C 32\n"
                '#include "vector_engine.h"\n', f"-std={std}", "-Wall", "-Wextra",
                "-Werror", "-pedantic", "-fsyntax-only", t=t)
    assert proc.returncode == 0, proc.stderr


def test_pragmas_under_synthesis(tmp_path):
    """Under __SYNTHESIS__ the pragmas appear with literal arguments and the view is valid
    C++; every loop of the header has a tripcount, every unit one ALLOCATION instance."""
    proc = _gxx(tmp_path, ALONE, "-std=c++14", "-E", "-D__SYNTHESIS__")
    assert proc.returncode == 0, proc.stderr
    pragmas = [ln.strip() for ln in proc.stdout.splitlines()
               if ln.strip().startswith("#pragma HLS")]
    kinds = {p.split()[2].upper() for p in pragmas}
    assert {"PIPELINE", "UNROLL", "ARRAY_PARTITION", "LOOP_TRIPCOUNT", "DEPENDENCE",
            "ALLOCATION", "INLINE"} <= kinds
    assert not [p for p in pragmas if "EFGEN_" in p]
    for p in pragmas:
        if p.split()[2].upper() == "LOOP_TRIPCOUNT":
            assert re.fullmatch(r"#pragma HLS LOOP_TRIPCOUNT min=\d+ max=\d+", p), p
        if p.split()[2].upper() == "DEPENDENCE" and "RAW" in p:
            assert "distance=8 dependent=true" in p, p
    man = vector_engine_manifest(4, MAX_C, MAX_W, 8)
    units = [n for n, f in man["functions"].items() if f["kind"].endswith("unit")]
    for u in units:
        assert f"#pragma HLS ALLOCATION function instances={u} limit=1" in pragmas
    ops = [p for p in pragmas if p.startswith("#pragma HLS ALLOCATION operation")]
    assert ops
    for p in ops:
        assert re.fullmatch(r"#pragma HLS ALLOCATION operation instances=[a-z]+ limit=\d+", p), p
    assert re.search(r"^\s*ew_mid:", proc.stdout, re.M)
    proc = _gxx(tmp_path, ALONE, "-std=c++14", "-fsyntax-only", "-D__SYNTHESIS__", "-Wall",
                "-Wextra", "-Werror", "-Wno-unknown-pragmas", "-Wno-unused-label")
    assert proc.returncode == 0, proc.stderr


def _block_end(text: str, start: int) -> int:
    """Index of the brace closing the block that opens at text[start] == "{"."""
    depth = 0
    for i in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return i
    raise ValueError("unbalanced braces")


def _functions(code: str) -> dict[str, str]:
    """name -> body text of every function defined in the header."""
    out = {}
    for m in re.finditer(r"^static inline [\w:]+ (\w+)\(", code, re.M):
        start = code.index("{", m.end())
        out[m.group(1)] = code[start:_block_end(code, start) + 1]
    return out


def _loops(code: str):
    """(header, body, body start) of every for loop."""
    for m in re.finditer(r"\bfor \(", code):
        start = code.index("{", m.end())
        yield code[m.start():start], code[start:_block_end(code, start) + 1], start


def _top_level(body: str) -> str:
    """The body of a loop with the loops nested in it replaced by "LOOP;"."""
    while True:
        m = re.search(r"\bfor \(", body)
        if not m:
            return body
        start = body.index("{", m.end())
        body = body[:m.start()] + "LOOP;" + body[_block_end(body, start) + 1:]


def test_every_loop_has_a_tripcount_and_pipelined_loops_are_flat():
    code = _code(HEADER.read_text())
    loops = list(_loops(code))
    assert len(loops) > 40
    for head, body, _ in loops:
        top = _top_level(body)
        assert "LOOP_TRIPCOUNT" in top or "EFGEN_VEC_LANES" in top, head
        if "PIPELINE" in top:
            # flat and counter-driven: no division or modulo in the loop
            assert not re.search(r"[^/*]/[^/*]|%", top), (head, top)


DRAM = ("mem_in", "mem_w", "mem_out")


def _enclosing_ifs(body: str, pos: int) -> bool:
    """Is position pos of a loop body inside an if/else block or an if statement?"""
    stack = []
    for i, ch in enumerate(body[:pos]):
        if ch == "{":
            head = body[max(0, i - 200):i]
            stack.append(bool(re.search(r"(\bif \([^;{}]*\)|\belse)\s*$", head)))
        elif ch == "}":
            stack.pop()
    stmt_start = max(body.rfind(";", 0, pos), body.rfind("{", 0, pos), body.rfind("}", 0, pos))
    stmt = body[stmt_start + 1:pos]
    return any(stack) or bool(re.search(r"\bif \(|\?", stmt))


def test_dram_accesses_are_bursts_by_construction():
    """Every DRAM access sits in a pipelined loop; in each such loop at most one access per
    m_axi pointer (one stream per bundle and direction), none under an if or a select."""
    code = _code(HEADER.read_text())
    pipelined, spans = 0, []
    for head, body, start in _loops(code):
        top = _top_level(body)
        if "PIPELINE" not in top:
            continue
        pipelined += 1
        spans.append((start, start + len(body)))
        for ptr in DRAM:
            hits = [m.start() for m in re.finditer(rf"\b{ptr}\b", body)]
            assert len(hits) <= 1, (head, ptr)
            for h in hits:
                assert not _enclosing_ifs(body, h), (head, ptr)
    assert pipelined > 25
    accesses = [m.start() for m in re.finditer(r"\bmem_(in|w|out)\[|\bv(read|write)\(mem_",
                                               code)]
    assert len(accesses) > 30
    for pos in accesses:
        line = code.count("\n", 0, pos) + 1
        assert any(a <= pos < b for a, b in spans), f"DRAM access outside a pipelined loop, " \
            f"line {line} of the comment-stripped header"
    # The vector moves: lane t at base + t.
    funcs = _functions(code)
    for name in ("vread", "vwrite"):
        assert re.search(r"mem\[o \+ t\]", funcs[name])


def test_single_precision_only():
    code = _code(HEADER.read_text())
    assert not re.search(r"\bdouble\b|\blong double\b", code)
    for lit in re.findall(r"\b\d+\.\d*(?:e[+-]?\d+)?f?\b", code):
        assert lit.endswith("f"), f"double literal {lit}"


# ---- float operations per function, from g++'s SSA dump (-O0: one statement per
# source operation, nothing inlined or folded away)

_FLOAT_LIT = re.compile(r"^-?(\d+\.\d*(e[+-]?\d+)?|Inf|NaN)$")
_CMP = r"(<=|>=|==|!=|<|>)"


def _split_params(sig: str) -> list[str]:
    out, depth, cur = [], 0, ""
    for ch in sig:
        if ch in "<([":
            depth += 1
        elif ch in ">)]":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


def ssa_float_ops(text: str) -> tuple[dict[str, Counter], set[str], Counter]:
    """Per function of the engine: Counter of fadd/fmul/fdiv/fsqrt/fcmp/sitofp in the
    SSA dump (fadd: adds and subtracts); the functions that declare anything of type
    double; and per function the subtractions among its fadd (Vitis's fsub)."""
    out, doubles, subs = {}, set(), Counter()
    for block in re.split(r"^;; Function ", text, flags=re.M)[1:]:
        full = block.split(" ", 1)[0]
        if not (full.startswith("efgen_vec::") or full.startswith("efgen_vector")):
            continue
        name = full.split("::")[-1]
        lines = block.splitlines()
        sig = next(ln for ln in lines[1:] if ln.strip())
        types = {}
        for p in _split_params(sig[sig.index("(") + 1:sig.rindex(")")]):
            typ, _, var = p.rpartition(" ")
            types[var] = typ
        body_start = lines.index("{")
        for ln in lines[body_start + 1:]:
            if ln.strip().startswith("<bb"):
                break
            m = re.match(r"^  (.+?) ([\w.]+);$", ln)
            if m:
                types[m.group(2)] = m.group(1)
        if any("double" in typ for typ in types.values()):
            doubles.add(name)

        def is_float(tok: str) -> bool:
            if _FLOAT_LIT.match(tok):
                return True
            base = tok if tok in types else re.sub(r"_\d+(\(D\))?$", "", tok)
            return types.get(base, "").replace("const ", "") == "float"

        ops = Counter()
        for ln in lines[body_start + 1:]:
            s = ln.strip()
            m = re.match(r"^(\S+) = (\S+) ([-+*/]) (\S+);$", s)
            if m and is_float(m.group(1)):
                ops[{"+": "fadd", "-": "fadd", "*": "fmul", "/": "fdiv"}[m.group(3)]] += 1
                subs[name] += m.group(3) == "-"
                continue
            m = re.match(rf"^(?:if \((\S+) {_CMP} (\S+)\)|\S+ = (\S+) {_CMP} (\S+);)$", s)
            if m:
                a, b = (m.group(1), m.group(3)) if m.group(1) else (m.group(4), m.group(6))
                if is_float(a) or is_float(b):
                    ops["fcmp"] += 1
                continue
            m = re.match(r"^(\S+) = \((?:const )?float\) (\S+);$", s)
            if m and not is_float(m.group(2)):
                ops["sitofp"] += 1
                continue
            if re.match(r"^(\S+ = )?(std::)?(__builtin_)?sqrtf? \(", s):
                ops["fsqrt"] += 1
        out[name] = ops
    return out, doubles, subs


def _alloc_limits(pre: str, names) -> dict[str, dict[str, int]]:
    """{function: {operation: limit}} of the ALLOCATION operation pragmas in the body of
    each named function of a preprocessed synthesis view (g++ -E -D__SYNTHESIS__)."""
    funcs = _functions(pre[pre.index("namespace efgen_vec {"):])   # not the system headers
    out = {}
    for n in names:
        lim = {}
        for op, n_ in re.findall(r"^\s*#pragma HLS ALLOCATION operation instances=(\w+) "
                                 r"limit=(\d+)\s*$", funcs[n], re.M):
            assert op not in lim, (n, op)
            lim[op] = int(n_)
        out[n] = lim
    return out


def _alloc_mismatches(limits: dict[str, dict[str, int]], man: dict) -> list[str]:
    """Where the operator limits of the synthesis view and the manifest's instances
    disagree: a lane unit's limits (fsub folded into fadd, as the manifest counts) must
    be its ``ops``, i.e. ops per lane x W; every other function has no operation limit
    and ``ops`` == ``code_ops``."""
    bad = []
    for n, f in man["functions"].items():
        lim = limits.get(n, {})
        if f["kind"] == "lane unit":
            folded = Counter()
            for op, v in lim.items():
                folded["fadd" if op == "fsub" else op] += v
            if dict(folded) != f["ops"]:
                bad.append(f"{n}: limits {lim} vs ops {f['ops']}")
            if f["ops"] != {k: v * man["vec_w"] for k, v in f["ops_per_copy"].items()}:
                bad.append(f"{n}: ops {f['ops']} are not W = {man['vec_w']} lanes' worth")
        else:
            if lim:
                bad.append(f"{n}: unexpected operation limits {lim}")
            if f["ops"] != f["code_ops"]:
                bad.append(f"{n}: ops {f['ops']} != code_ops {f['code_ops']}")
    return bad


def _synthesis_view(tmp_path, t, axi=None, header=None) -> str:
    proc = _gxx(tmp_path, ALONE, "-std=c++14", "-E", "-D__SYNTHESIS__", t=t, axi=axi,
                header=header)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.parametrize("t,max_w,chunk", [(4, MAX_W, 8), (16, 32, 256)])
def test_manifest_matches_the_float_ops_of_the_code(tmp_path, t, max_w, chunk):
    """Every float operation of the engine's C++ (g++ SSA dump) is where the manifest
    says, with the count it says: adding an operator anywhere fails this test."""
    proc = _gxx(tmp_path, ALONE + "void run(const EfgenDesc& d, float* m) "
                "{ efgen_vector_engine(d, m, m, m); }\n", "-std=c++14", "-O0",
                "-fdump-tree-ssa", "-c", t=t, max_w=max_w, chunk=chunk,
                out=tmp_path / "w.o")
    assert proc.returncode == 0, proc.stderr
    dump = next(tmp_path.rglob("*.ssa")).read_text()
    got, doubles, subs = ssa_float_ops(dump)
    assert not doubles, f"double in {sorted(doubles)}"
    assert {"unit_ew", "eltwise", "bn_pass", "pool_fp", "efgen_vector_engine"} <= set(got)
    man = vector_engine_manifest(t, MAX_C, max_w, chunk)     # EFGEN_AXI_WORDS default 4
    w = min(t, 4)
    assert man["vec_w"] == w
    # -O0 keeps the lane loop rolled: the dump shows one copy of a lane unit's operations
    # and the loop runs kT times, so the code's operations are the dump's x copies.
    want = {n: Counter(f["ops_per_copy"]) for n, f in man["functions"].items()
            if f["ops_per_copy"]}
    assert {n: c for n, c in got.items() if c} == want
    funcs = _functions(_code(HEADER.read_text()))
    lane_loop = "for (int t = 0; t < kT; ++t)"
    for n, f in man["functions"].items():
        assert f["code_ops"] == {k: v * f["copies"] for k, v in got.get(n, {}).items()}, n
        if f["kind"] == "lane unit":
            assert f["copies"] == t and lane_loop in funcs[n]
            assert f["alloc_copies"] == w and f["ii"] == -(-t // w)
            assert "INLINE off" in funcs[n]
        elif f["kind"] == "scalar unit":
            assert f["copies"] == 1 and lane_loop not in funcs[n]
            assert "INLINE off" in funcs[n]
        elif f["kind"] == "control":
            assert "EFGEN_HLS(INLINE)" in funcs[n]
    # The lane units' limits in the synthesis view, per Vitis operation (fadd and fsub
    # apart): the dump's adds and subtracts per lane x W, and the manifest's instances.
    limits = _alloc_limits(_synthesis_view(tmp_path, t), man["functions"])
    for n, f in man["functions"].items():
        if f["kind"] == "lane unit":
            per_lane = Counter(got[n])
            per_lane["fadd"] -= subs[n]
            per_lane["fsub"] = subs[n]
            assert limits[n] == {k: v * w for k, v in per_lane.items() if v}, n
    assert subs["unit_bn"] == 1 and not subs["unit_ew"] and not subs["unit_pool"]
    assert _alloc_mismatches(limits, man) == []
    assert man["code_totals"] == {"fadd": 6 * t + 2 + 7 + 1 + 3, "fmul": 5 * t + 1 + 1 + 4,
                                  "fdiv": 1, "fsqrt": 1, "fcmp": 5 * t + 1, "sitofp": 6}
    assert man["totals"] == {"fadd": 6 * w + 2 + 7 + 1 + 3, "fmul": 5 * w + 1 + 1 + 4,
                             "fdiv": 1, "fsqrt": 1, "fcmp": 5 * w + 1, "sitofp": 6}


# (T, EFGEN_AXI_WORDS): W = T < 4, W = 4 < T, W = T = 4, 64- and 32-bit ports, T = 3,
# and the header's default (None: 4).
ALLOC_CASES = [(2, 4), (3, 4), (4, 4), (8, 4), (16, 4), (16, 2), (8, 1), (16, 16), (16, None)]


@pytest.mark.parametrize("t,axi", ALLOC_CASES)
def test_allocation_limits_are_the_manifest_instances(tmp_path, t, axi):
    """Each lane unit's ALLOCATION operation limits in the synthesis view are the
    manifest's operator instances (ops per lane x W, W = min(T, EFGEN_AXI_WORDS)); no
    other function limits operations."""
    man = vector_engine_manifest(t, MAX_C, MAX_W, 8, axi_words=axi or 4)
    limits = _alloc_limits(_synthesis_view(tmp_path, t, axi), man["functions"])
    assert _alloc_mismatches(limits, man) == []
    lane = {n for n, f in man["functions"].items() if f["kind"] == "lane unit"}
    assert lane == {"unit_ew", "unit_bn", "unit_pool"} and all(limits[n] for n in lane)


@pytest.mark.parametrize("old,new", [
    # a table entry: 3W for W = 4 (unit_ew's fcmp limit)
    ("#define EFGEN_VEC_W3 12\n#define EFGEN_VEC_W4 16", "#define EFGEN_VEC_W3 11\n#define EFGEN_VEC_W4 16"),
    # a unit's limit names the wrong multiple
    ("instances=fmul limit=EFGEN_VEC_BN_FMUL", "instances=fmul limit=EFGEN_VEC_BN_FADD"),
    # a limit dropped
    ("  EFGEN_HLS(ALLOCATION operation instances=fcmp limit=EFGEN_VEC_POOL_FCMP)\n", ""),
    # W no longer capped by the port
    ("#define EFGEN_VEC_W EFGEN_AXI_WORDS\n", "#define EFGEN_VEC_W EFGEN_LANES\n"),
])
def test_a_changed_limit_fails_the_check(tmp_path, old, new):
    """The check above catches a header whose limits drift from the manifest."""
    text = HEADER.read_text()
    assert text.count(old) == 1, old
    man = vector_engine_manifest(16, MAX_C, MAX_W, 8)
    limits = _alloc_limits(_synthesis_view(tmp_path, 16, header=text.replace(old, new)),
                           man["functions"])
    assert _alloc_mismatches(limits, man)


SIZES = r"""#include <cstdio>
#include <type_traits>
#include "efgen_params.h"
#include "vector_engine.h"
template <class A> void dims(const char* n) {
  std::printf("%s %d %d %d %d %d\n", n, int(std::rank<A>::value), int(std::extent<A, 0>::value),
              int(std::extent<A, 1>::value), int(std::extent<A, 2>::value),
              int(std::extent<A, 3>::value));
}
int main() {
  using namespace efgen_vec;
  dims<ChunkMem>("ChunkMem"); dims<PartMem>("PartMem"); dims<ChanMem>("ChanMem");
  dims<RowMem>("RowMem"); dims<TagMem>("TagMem");
  return 0;
}
"""


@pytest.mark.parametrize("t,max_w,chunk", [(4, MAX_W, 8), (16, 32, 256), (8, 3, 1)])
def test_manifest_arrays_match_the_header(tmp_path, t, max_w, chunk):
    """The static arrays of efgen_vector_engine: names, dims (as compiled), partitioning."""
    exe = tmp_path / "sizes"
    proc = _gxx(tmp_path, SIZES, "-std=c++14", t=t, max_w=max_w, chunk=chunk, out=exe)
    assert proc.returncode == 0, proc.stderr
    sizes = {}
    for ln in subprocess.run([str(exe)], capture_output=True, text=True).stdout.splitlines():
        name, rank, *ext = ln.split()
        sizes[name] = [int(e) for e in ext[:int(rank)]]
    top = _functions(_code(HEADER.read_text()))["efgen_vector_engine"]
    decl = dict((v, k) for k, v in re.findall(r"static (\w+Mem) (\w+);", top))
    parts = Counter()
    part_dims = defaultdict(list)
    for var, dim in re.findall(r"ARRAY_PARTITION variable=(\w+) type=complete dim=(\d+)", top):
        part_dims[var].append(int(dim))
        parts[var] += 1
    man = vector_engine_manifest(t, MAX_C, max_w, chunk)
    arrays = man["functions"]["efgen_vector_engine"]["arrays"]
    assert {a["name"] for a in arrays} == set(decl)
    for a in arrays:
        assert a["dims"] == sizes[decl[a["name"]]], a["name"]
        assert [p["dim"] for p in a["partition"]] == sorted(part_dims[a["name"]]), a["name"]
        assert a["words"] == math.prod(a["dims"])
    assert man["array_words"] == sum(a["words"] for a in arrays)


@pytest.mark.parametrize("name,tm,tn", [("tiny", 8, 4), ("lenet5", 4, 4), ("resnet20", 16, 16)])
def test_design_params_admit_every_vector_descriptor(tmp_path, name, tm, tn):
    """efgen_params.h of a design defines every vector-engine macro, and with it the engine
    accepts every vector descriptor of the design's program (the rows are wide enough)."""
    net = load_net(name)
    board = load_board("zcu102")
    design = schedule(Request(net, board, batch=2, tm=tm, tn=tn))
    prog = build_program(net, design)
    files = render(prog, board)
    defs = dict(re.findall(r"#define (EFGEN_\w+) (\S+)", files["efgen_params.h"]))
    need = set(re.findall(r"#ifndef (EFGEN_\w+)", HEADER.read_text())) - {"EFGEN_VECTOR_ENGINE_H"}
    assert need <= set(defs)
    vp = vector_params(prog, int(defs["EFGEN_MAX_C"]))
    assert {k: int(defs[k]) for k in vp} == vp
    d = tmp_path / name
    d.mkdir()
    (d / "efgen_params.h").write_text(files["efgen_params.h"])
    (d / "w.cpp").write_text(WRAPPER)
    lib = load(compile_shared([d / "w.cpp"], d / "w.so", include_dirs=[d]))
    lib.check.argtypes = [ctypes.POINTER(EfgenDesc)]
    lib.check.restype = ctypes.c_int
    vec = [s.desc for s in prog.fp + prog.bp if int(s.desc.op) >= 10]
    assert vec
    for desc in vec:
        assert lib.check(ctypes.byref(desc)) == 0
