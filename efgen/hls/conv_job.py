"""Python mirror of the HLS convolution engine's job (hls_kernels/conv_engine.h
``make_job``, the step walk and the DRAM runs), for the loop tripcounts efgen_params.h
gives Vitis: every loop's largest trip count over the descriptors of a program.

Only geometry: the same clipping (tiles to the map, chunks to the output blocks, WU
chunks to the partial-sum copies that fit) and the same loop bounds as the C++.
tests/test_hls_program.py checks them on hand-counted cases.
"""

from __future__ import annotations

from dataclasses import dataclass

from efgen.hls.desc import OPS

FP, BP, WU = OPS["CONV_FP"], OPS["CONV_BP"], OPS["CONV_WU"]


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class ConvJob:
    mode: int
    OC: int
    RC: int
    MB: int
    NB: int
    ro: int
    co: int
    images: int
    tr: int
    tc: int
    mc: int
    io: bool
    K: int
    s: int
    G: int
    M: int
    src_rows: int
    src_cols: int
    major: bool
    src_blocks: int       # lane blocks of the source tensor (ceil(C/T))
    dst_blocks: int
    KP: int = 0           # kernel passes: K*K, fewer when packed


def conv_job(d, tm: int, tn: int, lanes: int, wbuf_depth: int, acc_dist: int,
             pack: bool = False) -> ConvJob:
    """The resolved job of a conv descriptor (the C++ ``make_job``; the descriptor is
    assumed valid: efgen builds only descriptors the engine accepts)."""
    major = (d.in_h == 1 and d.in_w == 1 and d.out_h == 1 and d.out_w == 1 and d.kh == 1
             and d.pad == 0)
    bp = d.op == BP
    if bp:
        OC, RC = d.in_c, d.out_c
        ro, co = (1, d.batch) if major else (d.in_h, d.in_w)
        src_rows, src_cols = (1, d.batch) if major else (d.out_h, d.out_w)
        s = 1
        src_c, dst_c = d.out_c, d.in_c
    else:
        OC, RC = d.out_c, d.in_c
        ro, co = (1, d.batch) if major else (d.out_h, d.out_w)
        src_rows, src_cols = (1, d.batch) if major else (d.in_h, d.in_w)
        s = 1 if major else d.stride
        src_c, dst_c = d.in_c, d.out_c
    K = d.kh
    MB, NB = _cdiv(OC, tm), _cdiv(RC, tn)
    mc = min(d.mc, MB)
    taps = (min(K * K, tn // RC) if pack and not bp and not major and K > 1 and 2 * RC <= tn
            else 1)
    KP = _cdiv(K * K, taps)                  # kernel passes (packing: C++ make_job)
    G = max(1, _cdiv(acc_dist, KP)) if d.op == WU else 1
    if d.op == WU and mc * NB * KP * G > wbuf_depth and NB * KP * G <= wbuf_depth:
        mc = max(1, wbuf_depth // (NB * KP * G))
    return ConvJob(mode=d.op, OC=OC, RC=RC, MB=MB, NB=NB, ro=ro, co=co,
                   images=1 if major else d.batch, tr=min(d.tr, ro), tc=min(d.tc, co), mc=mc,
                   io=d.op == WU or d.order == 1, K=K, s=s, G=G, M=d.out_c, KP=KP,
                   src_rows=src_rows, src_cols=src_cols, major=major,
                   src_blocks=_cdiv(src_c, lanes), dst_blocks=_cdiv(dst_c, lanes))


def _runs(major_split: bool, rows: int, cols: int, full_cols: int) -> tuple[int, int]:
    """(runs, lane vectors per run) of a rows x cols window (the C++ ``fm_runs``)."""
    if major_split:
        return rows * cols, 1
    if cols == full_cols:
        return 1, rows * cols
    return rows, cols


def tripcounts(descs, tm: int, tn: int, lanes: int, wbuf_depth: int, acc_dist: int,
               p: int = 1, pack: bool = False) -> dict:
    """Largest trip count of every loop of conv_engine.h over ``descs`` (conv ones only),
    as the EFGEN_MAX_* macros of efgen_params.h, and the channel block sizes the tiles
    need (EFGEN_IFM_BLOCK, EFGEN_OFM_BLOCK words per bank). Bounds, not exact per-tile counts: a
    window's rows and columns are taken at the full tile (the halo clipped to the map)."""
    out = dict(EFGEN_MAX_STEPS=1, EFGEN_MAX_GROUPS=1, EFGEN_MAX_CHUNKS=1, EFGEN_MAX_NB=1,
               EFGEN_MAX_PASS=1, EFGEN_MAX_RUN=1, EFGEN_MAX_RUNS=1, EFGEN_MAX_WROWS=1,
               EFGEN_MAX_FOLD=0, EFGEN_MAX_CHUNK_C=1, EFGEN_MAX_BACC=1, EFGEN_MAX_MC=1,
               EFGEN_IFM_BLOCK=1, EFGEN_OFM_BLOCK=1)

    def up(k, v):
        out[k] = max(out[k], int(v))

    for d in descs:
        if d.op not in (FP, BP, WU):
            continue
        j = conv_job(d, tm, tn, lanes, wbuf_depth, acc_dist, pack)
        kk = j.K * j.K
        groups = j.images * _cdiv(j.ro, j.tr) * _cdiv(j.co, j.tc) * (1 if j.io else j.mc)
        npix = j.tr * j.tc
        ngrp = j.tr * _cdiv(j.tc, p)                      # pixel groups of P lanes
        nblk = j.mc if j.io else 1
        span = max(ngrp, j.G) if j.mode == WU else max(ngrp, acc_dist)
        er, ec = (j.tr - 1) * j.s + j.K, (j.tc - 1) * j.s + j.K
        dil = d.stride if (j.mode == BP and not j.major) else 1
        nr = min(_cdiv(er, dil), j.src_rows)
        nc = min(_cdiv(ec, dil), j.src_cols)
        split_src = j.major and j.src_blocks > 1
        split_dst = j.major and j.dst_blocks > 1
        runs_in = _runs(split_src, nr, nc, j.src_cols)
        runs_out = _runs(split_dst, j.tr, j.tc, j.co)
        up("EFGEN_IFM_BLOCK", er * ec)                    # the make_job checks' sizes
        up("EFGEN_OFM_BLOCK", nblk * npix)
        up("EFGEN_MAX_STEPS", groups * j.NB)
        up("EFGEN_MAX_GROUPS", groups)
        up("EFGEN_MAX_CHUNKS", _cdiv(j.MB, j.mc))
        up("EFGEN_MAX_NB", j.NB)
        up("EFGEN_MAX_PASS", nblk * j.KP * span)
        up("EFGEN_MAX_RUN", max(runs_in[1], runs_out[1]))
        up("EFGEN_MAX_RUNS", max(runs_in[0], runs_out[0]))
        up("EFGEN_MAX_MC", j.mc)
        up("EFGEN_MAX_CHUNK_C", min(j.mc * tm, j.OC if j.mode == BP else j.M))
        up("EFGEN_MAX_BACC", j.mc * acc_dist)
        rows = kk * tm * (tn // lanes)
        up("EFGEN_MAX_WROWS", rows if j.mode == WU else kk * tm)   # SGD / weight-load rows
        if j.mode == WU:
            up("EFGEN_MAX_FOLD", (j.G - 1) * j.KP * tm * (tn // lanes))
    return out
