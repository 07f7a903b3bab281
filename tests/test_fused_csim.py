"""Restructured batchnorm in the HLS C++ (issue 12, part 3): the conv engine's fused load
transform and BN FP statistics store (FLAG_XF / FLAG_STATS and the side record,
efgen/hls/program.py's docstring), in C simulation against numpy (efgen.hls.fused's twins
and the golden ops).

Engine-level: the header is compiled with the harness of tests/test_hls_conv.py (a NaN
sentinel image, poisoned pad lanes, exact write sets), on Tm != Tn with channel counts
that are not multiples of the lanes, at two tilings.
"""

from __future__ import annotations

import numpy as np
import pytest

from efgen.golden import ops
from efgen.hls import fused
from efgen.hls.desc import make_desc
from tests.test_hls_conv import (LR, MOMENTUM, WD, Dram, bits, check_writes, engine,  # noqa: F401
                                 fm_valid, put_fm, put_w, rel_err)

BAR = 1e-5
ERR_XF = 9
TILINGS = [(99, 99, 99, 0), (3, 4, 2, 1)]
N, M, H, W, K, S, P, B = 6, 10, 7, 7, 3, 1, 1, 2


def _consts(rng, c):
    """mean, invstd, gamma, beta rows of a BN constants block (4*C words)."""
    return np.stack([rng.standard_normal(c), rng.uniform(0.5, 2.0, c),
                     rng.standard_normal(c), rng.standard_normal(c)]).astype(np.float32)


def _geometry():
    ho = ops.conv_out_size(H, K, S, P)
    return dict(batch=B, in_c=N, in_h=H, in_w=W, out_c=M, out_h=ho, out_w=ho, kh=K, kw=K,
                stride=S, pad=P), ho


def _tiling(t):
    return dict(tr=t[0], tc=t[1], mc=t[2], order=t[3])


def _inputs(seed, second: bool, relu: bool):
    rng = np.random.default_rng(seed)
    f = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    d = {"x1": f(B, N, H, W) * np.float32(2) + np.float32(1), "x2": f(B, N, H, W),
         "k1": _consts(rng, N), "k2": _consts(rng, N), "w": f(M, N, K, K) * np.float32(0.3),
         "kshift": f(M), "b": f(M)}
    v = fused.bn_term(d["x1"], d["k1"])
    if second:
        v = v + fused.bn_term(d["x2"], d["k2"])
    d["xin"] = np.maximum(v, 0).astype(np.float32) if relu else v.astype(np.float32)
    return d


@pytest.mark.parametrize("t", TILINGS, ids=lambda t: "x".join(map(str, t)))
@pytest.mark.parametrize("second", [False, True], ids=["bn-relu", "bn+bn-relu"])
def test_fp_load_transform_and_stats(engine, t, second):
    """CONV_FP reading relu(bn(x1) [+ bn(x2)]) through the loader, storing y and its BN FP
    sums: y matches conv_fp on the transformed input, the sums match sum(y-k),
    sum((y-k)^2), and nothing else in the image is written."""
    eng = engine("8x4")
    d = _inputs(7, second, relu=True)
    geo, ho = _geometry()
    dram = Dram()
    put_fm(dram, eng, "x1", d["x1"])
    put_fm(dram, eng, "x2", d["x2"])
    put_w(dram, eng, "w", d["w"])
    dram.add("k1", 4 * N, d["k1"].ravel())
    dram.add("k2", 4 * N, d["k2"].ravel())
    dram.add("kshift", M, d["kshift"])
    dram.add("sums", 2 * M)
    y_shape = (B, M, ho, ho)
    dram.add("y", eng.fm.size(y_shape))
    rec = fused.xf_record(lk1=dram.off("k1"), lx2=dram.off("x2") if second else 0,
                          lk2=dram.off("k2") if second else 0, relu=True,
                          sk=dram.off("kshift"), ssum=dram.off("sums"))
    dram.add("rec", rec.size, rec)
    desc = make_desc("CONV_FP", ["XF", "STATS"], {0: dram.off("x1"), 1: dram.off("w"),
                                                  3: dram.off("rec"), 7: dram.off("y")},
                     **geo, **_tiling(t))
    assert eng.check(desc) == 0
    mem = dram.build()
    before = mem.copy()
    eng.run(desc, mem)
    size = eng.fm.size(y_shape)
    check_writes(before, mem, np.concatenate([dram.off("y") + np.arange(size),
                                              dram.off("sums") + np.arange(2 * M)]))
    y = eng.fm.unpack(dram.get(mem, "y"), y_shape)
    want = ops.conv_fp(d["xin"], d["w"], None, S, P)
    assert rel_err(y, want) <= BAR
    sums = dram.get(mem, "sums")
    assert rel_err(sums, fused.stats_sums(y, d["kshift"])) <= BAR
    # the record's twin reads what the engine read
    r = fused.read_record(mem, dram.off("rec"))
    assert r["LK1"] == dram.off("k1") and r["LRELU"] and r["SSUM"] == dram.off("sums")
    got_in = fused.load_value(d["x1"], r, lambda a: d["x2"],
                              lambda a, n: mem[a:a + n].copy())
    assert rel_err(got_in, d["xin"]) <= BAR


@pytest.mark.parametrize("t", TILINGS, ids=lambda t: "x".join(map(str, t)))
def test_wu_load_transform(engine, t):
    """CONV_WU with FLAG_XF: the input tiles go through the same transform; the record at
    a[7] moves the bias-gradient debug copy to its DBG field."""
    eng = engine("8x4")
    d = _inputs(11, second=True, relu=True)
    geo, ho = _geometry()
    rng = np.random.default_rng(3)
    dy = rng.standard_normal((B, M, ho, ho)).astype(np.float32)
    vel = rng.standard_normal((M, N, K, K)).astype(np.float32)
    vb = rng.standard_normal(M).astype(np.float32)
    dram = Dram()
    put_fm(dram, eng, "dy", dy)
    put_fm(dram, eng, "x1", d["x1"])
    put_fm(dram, eng, "x2", d["x2"])
    put_w(dram, eng, "w", d["w"])
    put_w(dram, eng, "v", vel)
    dram.add("b", M, d["b"])
    dram.add("vb", M, vb)
    dram.add("k1", 4 * N, d["k1"].ravel())
    dram.add("k2", 4 * N, d["k2"].ravel())
    dram.add("dw", eng.wl.size(d["w"].shape))
    dram.add("db", M)
    rec = fused.xf_record(lk1=dram.off("k1"), lx2=dram.off("x2"), lk2=dram.off("k2"),
                          relu=True, dbg=dram.off("db"))
    dram.add("rec", rec.size, rec)
    a = {0: dram.off("dy"), 1: dram.off("x1"), 2: dram.off("w"), 3: dram.off("v"),
         4: dram.off("b"), 5: dram.off("vb"), 6: dram.off("dw"), 7: dram.off("rec")}
    desc = make_desc("CONV_WU", ["BIAS", "XF"], a, lr=LR, momentum=MOMENTUM,
                     weight_decay=WD, **geo, **_tiling(t))
    assert eng.check(desc) == 0
    mem = dram.build()
    eng.run(desc, mem)
    g = ops.conv_wu(dy, d["xin"], S, P, K)
    w2, v2 = ops.sgd_update(d["w"], g, vel, LR, MOMENTUM, WD)
    gb = ops.conv_bias_grad(dy)
    assert rel_err(eng.wl.unpack(dram.get(mem, "dw"), g.shape), g) <= BAR
    assert rel_err(eng.wl.unpack(dram.get(mem, "w"), w2.shape), w2) <= BAR
    assert rel_err(eng.wl.unpack(dram.get(mem, "v"), v2.shape), v2) <= BAR
    assert rel_err(dram.get(mem, "db"), gb) <= BAR
    assert np.all(bits(dram.get(mem, "rec")) == bits(rec)), "the record was overwritten"


@pytest.mark.parametrize("t", TILINGS, ids=lambda t: "x".join(map(str, t)))
def test_bp_store_recomputes_a_fused_relu_mask(engine, t):
    """CONV_BP with FLAG_MASK and a record whose MK names a BN constants block: the mask
    source a[6] is the BN's input y, the mask bn(y) > 0 (the ReLU output is never stored)."""
    eng = engine("8x4")
    geo, ho = _geometry()
    rng = np.random.default_rng(5)
    dy = rng.standard_normal((B, M, ho, ho)).astype(np.float32)
    w = (rng.standard_normal((M, N, K, K)) * 0.3).astype(np.float32)
    y = (rng.standard_normal((B, N, H, W)) * 2 + 1).astype(np.float32)
    k = _consts(rng, N)
    dram = Dram()
    put_fm(dram, eng, "dy", dy)
    put_w(dram, eng, "w", w)
    put_fm(dram, eng, "y", y)
    dram.add("k", 4 * N, k.ravel())
    dx_shape = (B, N, H, W)
    dram.add("dx", eng.fm.size(dx_shape))
    rec = fused.xf_record(mk=dram.off("k"))
    dram.add("rec", rec.size, rec)
    desc = make_desc("CONV_BP", ["MASK", "XF"], {0: dram.off("dy"), 1: dram.off("w"),
                                                 3: dram.off("rec"), 6: dram.off("y"),
                                                 7: dram.off("dx")}, **geo, **_tiling(t))
    assert eng.check(desc) == 0
    mem = dram.build()
    before = mem.copy()
    eng.run(desc, mem)
    check_writes(before, mem, dram.off("dx") + np.arange(eng.fm.size(dx_shape)))
    dx = eng.fm.unpack(dram.get(mem, "dx"), dx_shape)
    keep = fused.bn_term(y, k) > 0
    assert 0.2 < keep.mean() < 0.8               # the mask matters
    want = ops.conv_bp(dy, w, S, P, (H, W)) * keep
    assert rel_err(dx, want) <= BAR


@pytest.mark.parametrize("t", TILINGS, ids=lambda t: "x".join(map(str, t)))
def test_bp_and_wu_loads_apply_bn_dx(engine, t):
    """Record LMODE 1: CONV_BP's input tiles and CONV_WU's error tiles are the BN's dx
    coef*((n*dz - sdy) - x_hat*sdyx) of the stored dz and y (the BN's input, LX2); WU's
    input x stays plain."""
    eng = engine("8x4")
    geo, ho = _geometry()
    rng = np.random.default_rng(9)
    f = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    dz, y, x = f(B, M, ho, ho), f(B, M, ho, ho) * np.float32(2), f(B, N, H, W)
    w, vel = f(M, N, K, K) * np.float32(0.3), f(M, N, K, K)
    k0 = np.stack([f(M), rng.uniform(0.5, 2, M).astype(np.float32), f(M),
                   np.full(M, 9.0, np.float32)])
    k1 = np.concatenate([f(M), f(M), np.zeros(2 * M, np.float32)])
    ch = lambda v: v[None, :, None, None]  # noqa: E731
    want_dx = ch(k0[2]) * ((ch(k0[3]) * dz - ch(k1[:M])) - (y - ch(k0[0])) * ch(k0[1])
                           * ch(k1[M:2 * M]))
    dram = Dram()
    put_fm(dram, eng, "dz", dz)
    put_fm(dram, eng, "y", y)
    put_fm(dram, eng, "x", x)
    put_w(dram, eng, "w", w)
    put_w(dram, eng, "v", vel)
    dram.add("bnx", 8 * M, np.concatenate([k0.ravel(), k1]))
    dram.add("dx", eng.fm.size((B, N, H, W)))
    dram.add("dw", eng.wl.size(w.shape))
    rec = fused.xf_record(lk1=dram.off("bnx"), lk2=dram.off("bnx") + 4 * M, lx2=dram.off("y"),
                          lmode=1)
    dram.add("rec", rec.size, rec)
    mem = dram.build()
    bp = make_desc("CONV_BP", ["XF"], {0: dram.off("dz"), 1: dram.off("w"), 3: dram.off("rec"),
                                       7: dram.off("dx")}, **geo, **_tiling(t))
    wu = make_desc("CONV_WU", ["XF"], {0: dram.off("dz"), 1: dram.off("x"), 2: dram.off("w"),
                                       3: dram.off("v"), 6: dram.off("dw"), 7: dram.off("rec")},
                   lr=LR, momentum=MOMENTUM, weight_decay=WD, **geo, **_tiling(t))
    assert eng.check(bp) == 0 and eng.check(wu) == 0
    eng.run(bp, mem)
    dx = eng.fm.unpack(dram.get(mem, "dx"), (B, N, H, W))
    assert rel_err(dx, ops.conv_bp(want_dx, w, S, P, (H, W))) <= BAR
    eng.run(wu, mem)
    g = ops.conv_wu(want_dx, x, S, P, K)
    assert rel_err(eng.wl.unpack(dram.get(mem, "dw"), g.shape), g) <= BAR


@pytest.mark.parametrize("t", TILINGS, ids=lambda t: "x".join(map(str, t)))
@pytest.mark.parametrize("mask", [False, True], ids=["plain", "mask"])
def test_bp_store_adds_another_senders_error(engine, t, mask):
    """Record SE on CONV_BP: the store reads the other sender's error beside its tile,
    adds it to dx and then applies the ReLU mask: the final error of a tensor with two
    senders, written once (no ERRSUM pass); only dx is written."""
    eng = engine("8x4")
    geo, ho = _geometry()
    rng = np.random.default_rng(13)
    f = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    dy, w, other, src = f(B, M, ho, ho), f(M, N, K, K) * np.float32(0.3), f(B, N, H, W), \
        f(B, N, H, W)
    dram = Dram()
    put_fm(dram, eng, "dy", dy)
    put_w(dram, eng, "w", w)
    put_fm(dram, eng, "other", other)
    put_fm(dram, eng, "src", src)
    dx_shape = (B, N, H, W)
    dram.add("dx", eng.fm.size(dx_shape))
    rec = fused.xf_record(se=dram.off("other"))
    dram.add("rec", rec.size, rec)
    a = {0: dram.off("dy"), 1: dram.off("w"), 3: dram.off("rec"), 7: dram.off("dx")}
    if mask:
        a[6] = dram.off("src")
    desc = make_desc("CONV_BP", ["XF"] + (["MASK"] if mask else []), a, **geo, **_tiling(t))
    assert eng.check(desc) == 0
    mem = dram.build()
    before = mem.copy()
    eng.run(desc, mem)
    check_writes(before, mem, dram.off("dx") + np.arange(eng.fm.size(dx_shape)))
    dx = eng.fm.unpack(dram.get(mem, "dx"), dx_shape)
    want = ops.conv_bp(dy, w, S, P, (H, W)) + other
    if mask:
        want = ops.relu_bp(want, src)
    assert rel_err(dx, want) <= BAR
    assert fused.read_record(mem, dram.off("rec"))["SE"] == dram.off("other")


@pytest.mark.parametrize("t", TILINGS, ids=lambda t: "x".join(map(str, t)))
def test_bp_store_accumulates_the_sums_of_a_stored_bn_output(engine, t):
    """Record SK on CONV_BP with FLAG_STATS: the BN's output is stored, so the mask is the
    plain src > 0 of a[6], and the BN BP sums sum(dy), sum(dy*x_hat) of the final error
    (SE added, masked) take x_hat from the BN's input y read at SK, with MK's mean and
    invstd; written to SSUM, nothing else but dx."""
    eng = engine("8x4")
    geo, ho = _geometry()
    rng = np.random.default_rng(17)
    f = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    dy, w, other, src, y = f(B, M, ho, ho), f(M, N, K, K) * np.float32(0.3), \
        f(B, N, H, W), f(B, N, H, W), f(B, N, H, W) * np.float32(2)
    k = _consts(rng, N)
    dram = Dram()
    for name, v in (("dy", dy), ("other", other), ("src", src), ("y", y)):
        put_fm(dram, eng, name, v)
    put_w(dram, eng, "w", w)
    dram.add("k", 4 * N, k.ravel())
    dram.add("sums", 2 * N)
    dx_shape = (B, N, H, W)
    dram.add("dx", eng.fm.size(dx_shape))
    rec = fused.xf_record(se=dram.off("other"), sk=dram.off("y"), mk=dram.off("k"),
                          ssum=dram.off("sums"))
    dram.add("rec", rec.size, rec)
    desc = make_desc("CONV_BP", ["XF", "MASK", "STATS"],
                     {0: dram.off("dy"), 1: dram.off("w"), 3: dram.off("rec"),
                      6: dram.off("src"), 7: dram.off("dx")}, **geo, **_tiling(t))
    assert eng.check(desc) == 0
    mem = dram.build()
    before = mem.copy()
    eng.run(desc, mem)
    check_writes(before, mem, np.concatenate([dram.off("dx") + np.arange(eng.fm.size(dx_shape)),
                                              dram.off("sums") + np.arange(2 * N)]))
    dx = eng.fm.unpack(dram.get(mem, "dx"), dx_shape)
    want = ops.relu_bp(ops.conv_bp(dy, w, S, P, (H, W)) + other, src)
    assert rel_err(dx, want) <= BAR
    xhat = (y - k[0][None, :, None, None]) * k[1][None, :, None, None]
    sums = dram.get(mem, "sums")
    assert rel_err(sums[:N], want.sum(axis=(0, 2, 3))) <= BAR
    assert rel_err(sums[N:], (want * xhat).sum(axis=(0, 2, 3))) <= BAR


@pytest.mark.parametrize("t", TILINGS, ids=lambda t: "x".join(map(str, t)))
def test_wu_record_with_both_transforms(engine, t):
    """CONV_WU, record LMODE 1 with MK: the error tiles are the BN's dx (constants block
    at MK, y at SK) and the input tiles go through the FP transform relu(bn(x)) of
    LK1/LRELU: a conv that reads a fused input and whose own BN's dx is fused."""
    eng = engine("8x4")
    geo, ho = _geometry()
    rng = np.random.default_rng(19)
    f = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    dz, y, x = f(B, M, ho, ho), f(B, M, ho, ho) * np.float32(2), f(B, N, H, W)
    w, vel = f(M, N, K, K) * np.float32(0.3), f(M, N, K, K)
    kin = _consts(rng, N)
    k0 = np.stack([f(M), rng.uniform(0.5, 2, M).astype(np.float32), f(M),
                   np.full(M, 9.0, np.float32)])
    k1 = np.concatenate([f(M), f(M), np.zeros(2 * M, np.float32)])
    ch = lambda v: v[None, :, None, None]  # noqa: E731
    want_dx = ch(k0[2]) * ((ch(k0[3]) * dz - ch(k1[:M])) - (y - ch(k0[0])) * ch(k0[1])
                           * ch(k1[M:2 * M]))
    xin = np.maximum(fused.bn_term(x, kin), 0).astype(np.float32)
    dram = Dram()
    for name, v in (("dz", dz), ("y", y), ("x", x)):
        put_fm(dram, eng, name, v)
    put_w(dram, eng, "w", w)
    put_w(dram, eng, "v", vel)
    dram.add("kin", 4 * N, kin.ravel())
    dram.add("bnx", 8 * M, np.concatenate([k0.ravel(), k1]))
    dram.add("dw", eng.wl.size(w.shape))
    rec = fused.xf_record(lk1=dram.off("kin"), relu=True, mk=dram.off("bnx"),
                          sk=dram.off("y"), lmode=1)
    dram.add("rec", rec.size, rec)
    mem = dram.build()
    wu = make_desc("CONV_WU", ["XF"], {0: dram.off("dz"), 1: dram.off("x"), 2: dram.off("w"),
                                       3: dram.off("v"), 6: dram.off("dw"), 7: dram.off("rec")},
                   lr=LR, momentum=MOMENTUM, weight_decay=WD, **geo, **_tiling(t))
    assert eng.check(wu) == 0
    eng.run(wu, mem)
    g = ops.conv_wu(want_dx, xin, S, P, K)
    assert rel_err(eng.wl.unpack(dram.get(mem, "dw"), g.shape), g) <= BAR
    w2, _ = ops.sgd_update(w, g, vel, LR, MOMENTUM, WD)
    assert rel_err(eng.wl.unpack(dram.get(mem, "w"), w2.shape), w2) <= BAR


def test_unsupported_fused_descriptors_are_rejected(engine):
    """What is not built yet is refused before anything is written: FLAG_STATS without
    FLAG_XF or on WU, a missing record (check), and (found in the record at run time) a
    CONV_BP record with a load transform (the BN BP dx load) or BP sums without MK."""
    eng = engine("8x4")
    geo, ho = _geometry()
    base = dict(**geo, **_tiling(TILINGS[0]))
    a = {0: 64, 1: 128, 3: 256, 6: 512, 7: 1024}
    assert eng.check(make_desc("CONV_FP", ["STATS"], a, **base)) == ERR_XF
    assert eng.check(make_desc("CONV_WU", ["XF", "STATS"], a, **base)) == ERR_XF
    assert eng.check(make_desc("CONV_FP", ["XF"], {**a, 3: 0}, **base)) == 4   # ADDRESS
    assert eng.check(make_desc("CONV_FP", ["XF", "STATS"], a, **base)) == 0
    rng = np.random.default_rng(1)
    dram = Dram()
    put_fm(dram, eng, "dy", rng.standard_normal((B, M, ho, ho)).astype(np.float32))
    put_w(dram, eng, "w", rng.standard_normal((M, N, K, K)).astype(np.float32))
    dram.add("k", 4 * N, _consts(rng, N).ravel())
    dram.add("dx", eng.fm.size((B, N, H, W)))
    rec = fused.xf_record(lk1=dram.off("k"))
    dram.add("rec", rec.size, rec)
    desc = make_desc("CONV_BP", ["XF"], {0: dram.off("dy"), 1: dram.off("w"),
                                         3: dram.off("rec"), 7: dram.off("dx")}, **base)
    assert eng.check(desc) == 0
    mem = dram.build()
    before = mem.copy()
    eng.run(desc, mem)
    assert np.all(bits(mem) == bits(before)), "a refused record wrote to the image"
    rec2 = fused.xf_record(ssum=dram.off("k"))          # BP sums, but no mask constants
    mem[dram.off("rec"):dram.off("rec") + rec2.size] = rec2
    desc = make_desc("CONV_BP", ["XF", "STATS", "MASK"], {0: dram.off("dy"), 1: dram.off("w"),
                                                          3: dram.off("rec"), 6: dram.off("dy"),
                                                          7: dram.off("dx")}, **base)
    assert eng.check(desc) == 0
    before = mem.copy()
    eng.run(desc, mem)
    assert np.all(bits(mem) == bits(before)), "a refused record wrote to the image"


# ---- whole steps of fused designs (efgen/hls/program.py with Design.hw.fuse) ---------------

def _fused(name, tm, tn, batch):
    from efgen.frontend import load_net
    from efgen.frontend.boards import load_board
    from efgen.model.schedule import Request, schedule

    net, board = load_net(name), load_board("zcu102")
    design = schedule(Request(net, board, batch=batch, tm=tm, tn=tn, fuse=True))
    assert design.hw.fuse and design.fusion is not None
    return net, design, board


@pytest.mark.parametrize("case", [("tiny", 8, 4, 2), ("tiny", 4, 8, 3)],
                         ids=lambda c: f"{c[0]}-{c[1]}x{c[2]}-b{c[3]}")
def test_fused_tiny_step(case, tmp_path):
    """tiny, fused: every BN's FP sums come from its conv's store (BN_FIN, no BN_FP), the
    BN2/ReLU2 output is never stored (conv3's FP and WU loads apply it, conv3's BP store
    recomputes its mask and accumulates BN2's BP sums), and the whole step passes the local check of every descriptor
    and matches the golden step within 1e-4."""
    from efgen.csim.csim import BAR, format_report, run_csim
    from efgen.hls.desc import FLAGS, OPS
    from efgen.hls.program import build_program

    net, design, board = _fused(*case)
    prog = build_program(net, design)
    ops_ = [s.desc.op for s in prog.fp]
    assert OPS["BN_FP"] not in ops_ and ops_.count(OPS["BN_FIN"]) == 3
    flags = {(s.layer, s.what): s.desc.flags for s in prog.fp + prog.bp}
    for k in [("conv3", "fp"), ("conv3", "bp"), ("conv3", "wu")]:
        assert flags[k] & FLAGS["XF"], k
    assert flags[("conv3", "fp")] & FLAGS["STATS"]
    # BN2's BP sums come from conv3's BP store (the error it finalises, x_hat from the
    # mask source it reads anyway); BN_BP skips its sums pass
    assert flags[("conv3", "bp")] & FLAGS["STATS"] and flags[("bn2", "bp")] & FLAGS["SUMS"]
    # BN3's output is stored (add1 reads it), its dy is relu3's error, which conv4's BP
    # store finalises (record SE: add2's error beside it; the mask from the stored relu3):
    # that store also accumulates BN3's sums, x_hat from conv3's y (record SK)
    assert flags[("conv4", "bp")] & FLAGS["STATS"] and flags[("bn3", "bp")] & FLAGS["SUMS"]
    assert prog.fusion["bn_bp_sums_in_store"] == ["bn2", "bn3"]
    # every BN's dx is applied by its conv's loads (no dx pass, the producers' output
    # errors never stored): conv1's WU, conv2's and conv3's BP and WU; conv3 reads the
    # fused relu2, so its WU record holds both: the input transform (LK1, LRELU) and the
    # dx of its error tiles (constants at MK, y at SK)
    for k in [("conv2", "bp"), ("conv2", "wu"), ("conv1", "wu"), ("conv3", "wu")]:
        assert flags[k] & FLAGS["XF"], k
    assert not any(flags[(b, "bp")] & FLAGS["DX"] for b in ("bn1", "bn2", "bn3"))
    assert {"conv1:dy", "conv2:dy", "conv3:dy"} <= set(prog.not_in_dram)
    assert "err:conv2" not in prog.regions and "err:conv3" not in prog.regions
    assert prog.fusion["bn_dx_in_loads"] == ["bn1", "bn2", "bn3"]
    wu3 = [st.desc for st in prog.bp if (st.layer, st.what) == ("conv3", "wu")][0]
    rec = fused.read_record(np.asarray(prog.regions["xf:conv3:wu"].data), 0)
    assert rec["LMODE"] == 1 and rec["LRELU"] and rec["MK"] and rec["SK"] and rec["LK1"]
    assert wu3.a[7] == prog.regions["xf:conv3:wu"].offset
    assert prog.regions["stats:bn2"].words == 4 * 10 and prog.regions["stats:bn3"].words == 40
    assert prog.regions["stats:bn1"].words == 2 * 6
    assert not flags[("conv4", "fp")] & FLAGS["XF"]          # reads a materialised add
    assert "act:relu2" not in prog.regions and "relu2:y" in prog.not_in_dram
    assert prog.fusion["fused_into_loads"] == ["relu2"]
    # the errors with two senders are finalised in the last sender's BP store (record
    # SE: the other sender's error read beside the store), no ERRSUM pass
    assert OPS["ERRSUM"] not in [s.desc.op for s in prog.bp]
    assert prog.fusion["error_sums_in_store"] == ["conv2", "conv4"]
    assert [r for r in prog.regions if r.startswith("errpart:")] == ["errpart:pool1:short"]
    # add1 = bn3 + short: bn3's BN_FIN writes it (FLAG_ADDX), held until after the
    # shortcut's FP; add2 (conv4 + relu3, no BN) keeps its ADD_FP pass
    assert prog.fusion["adds_in_bn_fin"] == ["add1"] and "act:bn3" not in prog.regions
    fp_order = [s.layer for s in prog.fp]
    assert "add1" not in fp_order and fp_order.index("bn3") == fp_order.index("short") + 1
    assert flags[("bn3", "fp")] & FLAGS["ADDX"] and "add2" in fp_order
    res = run_csim(net, design, board, tmp_path)
    step = res.steps[0]
    assert step.ok, format_report(res)
    assert step.descriptors == len(prog.fp) + len(prog.bp) + 1
    assert abs(step.loss_csim - step.loss_golden) <= 1e-5 * abs(step.loss_golden)
    assert max(t.rel_err for t in step.tensors) <= BAR
    keys = {t.key for t in step.tensors}
    assert {"bn2:mean", "bn2:var", "bn2:new.running_var", "conv3:new.weight",
            "bn2:dy", "conv2:grad.weight", "bn1:grad.gamma", "conv1:new.weight"} <= keys



def _interpreted_step_matches_golden(net, prog, min_tensors):
    """Run ``prog`` (batch 2) in the numpy interpreter from the golden initial state:
    more than ``min_tensors`` tensors in DRAM, each within the verdict's tolerance of the
    golden step, and the same loss within 1e-5."""
    from efgen.csim.csim import DramImage, compare, golden_step
    from efgen.csim.interp import interp_step
    from efgen.golden.model import SGD, init_state, synthetic_batch

    img = DramImage(prog)
    state = init_state(net, seed=0, dtype=np.float32)
    x, labels = synthetic_batch(net, 2, seed=1)
    img.load_state(state, x.astype(np.float32))
    loss = interp_step(prog, img.mem, labels)
    golden = golden_step(net, state, x.astype(np.float32), labels, SGD())
    rows = compare(golden.trace, img.tensors())
    assert len(rows) > min_tensors and all(r.ok for r in rows), [r for r in rows if not r.ok][:3]
    assert abs(loss - golden.loss) <= 1e-5 * abs(golden.loss)

def test_fused_program_interpreted_matches_golden():
    """The fused program run by the numpy interpreter (independently of the C++):
    every tensor in DRAM matches the golden step within 1e-4."""
    from efgen.hls.program import build_program

    net, design, _ = _fused("tiny", 8, 4, 2)
    prog = build_program(net, design)
    _interpreted_step_matches_golden(net, prog, min_tensors=60)


@pytest.mark.parametrize("case", [("tiny", 8, 4), ("resnet20", 8, 8)],
                         ids=lambda c: f"{c[0]}-{c[1]}x{c[2]}")
def test_fused_program_runs_in_float64_for_the_diagnosis(case):
    """The local check diagnoses a failing descriptor by running it in float64
    (efgen.csim.verdict): the whole fused step (BN_FIN with FLAG_ADDX, the side records'
    loads and stores, SE, SK, the MK dx constants) runs on a float64 image under the
    numpy interpreter and agrees with its float32 run within 1e-4."""
    from efgen.csim.csim import DramImage
    from efgen.csim.interp import interp_step
    from efgen.golden.model import init_state, synthetic_batch
    from efgen.hls.program import build_program

    net, design, _ = _fused(*case, 2)
    prog = build_program(net, design)
    img = DramImage(prog)
    x, labels = synthetic_batch(net, 2, seed=1)
    img.load_state(init_state(net, seed=0, dtype=np.float32), x.astype(np.float32))
    m32, m64 = img.mem.copy(), img.mem.astype(np.float64)
    l32, l64 = interp_step(prog, m32, labels), interp_step(prog, m64, labels)
    assert m64.dtype == np.float64 and abs(l32 - l64) <= 1e-5 * abs(l64)
    assert rel_err(m32, m64) <= 1e-4


def test_an_add_of_two_bns_is_written_by_the_later_ones_bn_fin():
    """resnet20-b's projection blocks add two BN outputs: the later BN in the net writes
    the add (FLAG_ADDX) reading the earlier one's stored output; no ADD_FP, no held step."""
    from efgen.hls.desc import FLAGS, OPS
    from efgen.hls.program import build_program

    net, design, _ = _fused("resnet20-b", 8, 4, 2)
    prog = build_program(net, design)
    fl = {s.layer: s.desc.flags for s in prog.fp}
    assert OPS["ADD_FP"] not in [s.desc.op for s in prog.fp]
    assert fl["s2b1_short_bn"] & FLAGS["ADDX"] and not fl["s2b1_b_bn"] & FLAGS["ADDX"]
    assert "act:s2b1_b_bn" in prog.regions and "act:s2b1_short_bn" not in prog.regions
    order = [s.layer for s in prog.fp]
    assert order.index("s2b1_short_bn") > order.index("s2b1_b_bn")


def test_fused_resnet20_step(tmp_path):
    """ResNet-20, batch 2, fused: 19 BN statistics in conv stores, the nine block-internal
    BN/ReLU outputs fused into the second conv's loads, the nine block inputs' error sums
    in the first conv's BP store; the whole step within 1e-4."""
    from efgen.csim.csim import BAR, format_report, run_csim
    from efgen.hls.program import build_program

    net, design, board = _fused("resnet20", 16, 16, 2)
    res = run_csim(net, design, board, tmp_path)
    step = res.steps[0]
    assert step.ok, format_report(res)
    assert len(res.fusion["bn_stats_in_store"]) == 19
    # BN BP sums in the store that finalises the BN's dy: every BN's but the last block's
    # second (its dy is finalised by the average pooling's BP, a vector pass); the
    # blocks' first BNs x_hat from the mask source, the others from their conv's y (SK)
    assert res.fusion["bn_bp_sums_in_store"] == sorted(
        ["conv1_bn"] + [f"s{s}b{b}_{h}_bn" for s in (1, 2, 3) for b in (1, 2, 3)
                        for h in "ab" if (s, b, h) != (3, 3, "b")])
    # every BN's dx in its producing conv's BP/WU loads (the blocks' second convs read
    # the fused first BN/ReLU: their WU records hold both transforms)
    assert res.fusion["bn_dx_in_loads"] == sorted(res.fusion["bn_stats_in_store"])
    assert len(res.fusion["bn_dx_in_loads"]) == 19
    assert res.fusion["fused_into_loads"] == [f"s{s}b{b}_a_relu" for s in (1, 2, 3)
                                              for b in (1, 2, 3)]
    # every block input's error (the add's and the first conv's) in that conv's BP store
    assert res.fusion["error_sums_in_store"] == [f"s{s}b{b}_a_conv" for s in (1, 2, 3)
                                                 for b in (1, 2, 3)]
    # every residual add is written by its block's second BN's BN_FIN (FLAG_ADDX, one pass
    # reading the conv's y and the block input); where the other operand, the option-A
    # shortcut, comes later in the net, BN_FIN runs right after it: no ADD_FP at all
    assert res.fusion["adds_in_bn_fin"] == [f"s{s}b{b}_add" for s in (1, 2, 3)
                                            for b in (1, 2, 3)]
    order = [st.layer for st in build_program(net, design).fp]
    assert "s2b1_add" not in order
    assert order.index("s2b1_b_bn") == order.index("s2b1_short") + 1
    assert max(t.rel_err for t in step.tensors) <= BAR


ODD_NET = {"name": "odd", "input": [3, 8, 8], "num_classes": 4, "layers": [
    {"name": "c1", "op": "conv", "out_channels": 8, "kernel": 3, "padding": 1},
    {"name": "r1", "op": "relu"},
    {"name": "p1", "op": "maxpool", "kernel": 2, "stride": 2},
    {"name": "bn1", "op": "batchnorm"},           # no producing conv: BN_FP's passes
    {"name": "r2", "op": "relu"},
    {"name": "c2", "op": "conv", "out_channels": 8, "kernel": 3, "padding": 1, "bias": True},
    {"name": "bn2", "op": "batchnorm"},           # a conv with a bias: a dx pass
    {"name": "c3", "op": "conv", "out_channels": 8, "kernel": 3, "padding": 1, "inputs": ["r2"]},
    {"name": "bn3", "op": "batchnorm"},
    {"name": "a1", "op": "add", "inputs": ["bn2", "bn3"]},   # two BNs: bn3 writes it
    {"name": "r3", "op": "relu"},
    {"name": "a2", "op": "add", "inputs": ["r3", "r2"]},     # no BN: ADD_FP
    {"name": "c4", "op": "conv", "out_channels": 8, "kernel": 1},
    {"name": "bn4", "op": "batchnorm"},
    {"name": "r4", "op": "relu"},
    {"name": "a3", "op": "add", "inputs": ["r4", "a2"]},     # r2: three senders
    {"name": "f", "op": "flatten"}, {"name": "fc", "op": "linear", "out_features": 4},
    {"name": "loss", "op": "softmax_ce"}]}


def _model_prices(net, design, batch):
    """The program of ``design`` is what the model prices: no difference from the plan,
    the same whole-tensor vector passes, every conv job's streams as the model's Job."""
    from efgen.frontend.boards import load_board
    from efgen.hls.fused import job_streams, whole_tensor_passes
    from efgen.hls.program import build_program
    from efgen.model import restructure as R
    from efgen.model.evaluate import ddr_bytes_per_cycle

    board = load_board("zcu102")
    prog = build_program(net, design)
    assert prog.fusion["differences"] == []
    assert prog.fusion["plan_fused_groups_materialised"] == []
    plan = R.Plan.from_doc(design.fusion)
    aux = R.fused_aux(net, batch, design.hw, 32,
                      ddr_bytes_per_cycle(board, design.hw.clock_mhz), plan)
    assert R.whole_tensor_passes(aux) == whole_tensor_passes(prog)[0]
    streams = job_streams(prog)
    jobs = R.fused_jobs(net, batch, plan)
    assert len(jobs) == len(streams)
    for j in jobs:
        got = streams[(j.layer, j.phase)]
        assert got == {k: getattr(j, k) for k in got}, (j.layer, j.phase)
    return prog


def test_the_model_prices_an_odd_nets_program():
    """A net with the corners the loads do not take (a BN with no producing conv, a conv
    with a bias before its BN, an add of two BNs, an add without a BN, three error
    senders, BN/ReLU outputs read by a pooling and an add): the model materialises and
    runs passes exactly where the program does."""
    from efgen.frontend.boards import load_board
    from efgen.frontend.ir import parse_net
    from efgen.model import restructure as R
    from efgen.model.schedule import Request, schedule

    net = parse_net(ODD_NET, "odd")
    design = schedule(Request(net, load_board("zcu102"), batch=2, tm=8, tn=4, fuse=True))
    assert design.hw.fuse and "bn2" not in R.dx_candidates(net)
    assert R.addx_bn(net, "a1") == "bn3" and "bn2" in R.groups(net)
    prog = _model_prices(net, design, 2)
    assert prog.fusion["bn_fp_pass"] == ["bn1"] and prog.fusion["adds_in_bn_fin"] == ["a1"]


@pytest.mark.parametrize("case", [("tiny", 16, 16), ("resnet20", 16, 16), ("resnet20", None, None),
                                  ("resnet20-b", 16, 16), ("resnet20-b", None, None),
                                  ("vgg16-cifar", 16, 16), ("vgg16-cifar", None, None)],
                         ids=lambda c: f"{c[0]}-{f'{c[1]}x{c[2]}' if c[1] else 'default'}")
def test_fused_program_is_what_the_model_prices(case):
    """The model prices exactly what the generated fused program runs (issue 12): batch 32
    on zcu102, at 16x16 and at the array the scheduler picks. No difference between the
    model's plan and the program (groups in loads, BN dx in loads, BN BP sums and error
    sums in BP stores, error-sum passes, adds in BN_FIN, BN statistics in stores); the
    same number of whole-tensor vector passes; every conv-engine job's extra streams and
    accumulators as the model's Job."""
    from efgen.frontend import load_net
    from efgen.frontend.boards import load_board
    from efgen.model.schedule import Request, schedule

    name, tm, tn = case
    net = load_net(name)
    kw = dict(tm=tm, tn=tn) if tm else {}
    design = schedule(Request(net, load_board("zcu102"), batch=32, fuse=True, **kw))
    _model_prices(net, design, 32)


def test_the_program_follows_the_plans_decisions():
    """A plan that materialises groups the loads could take (two blocks' inner BN/ReLU)
    and two BN dx: the program stores those groups (BN_FIN writes them), runs those BN
    dx passes, and still differs from the plan nowhere; the numpy interpreter's step
    matches the golden one within 1e-4."""
    from dataclasses import replace

    from efgen.hls.desc import FLAGS
    from efgen.hls.program import build_program
    from efgen.model import restructure as R

    net, design, _ = _fused("resnet20", 8, 8, 2)
    plan = R.Plan.from_doc(design.fusion)
    mat, dx = {"s1b1_a_relu", "s2b2_a_relu"}, {"s1b2_a_bn", "conv1_bn"}
    assert not (mat & plan.materialise) and not (dx & plan.dx_materialise)
    plan = R.Plan(plan.materialise | mat, plan.dx_materialise | dx)
    prog = build_program(net, replace(design, fusion=plan.to_doc(net)))
    assert prog.fusion["differences"] == []
    assert not mat & set(prog.fusion["fused_into_loads"]) and len(
        prog.fusion["fused_into_loads"]) == 7
    assert {f"act:{g}" for g in mat} <= set(prog.regions)
    assert not dx & set(prog.fusion["bn_dx_in_loads"])
    bp = {s.layer: s.desc.flags for s in prog.bp if s.what == "bp"}
    assert all(bp[b] & FLAGS["DX"] for b in dx)
    _interpreted_step_matches_golden(net, prog, min_tensors=300)
