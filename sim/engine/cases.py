"""Test cases of the engine core: driver scripts (see cocotb_engine.py) + their checks.

Each builder returns a :class:`Case`: the script operations that load the buffers
through the core's ports and run FP, BP or WU blocks, and a ``check(results)`` that
compares what the simulation read back with

* the bit-exact models of efgen.rtl.engine (``conv_block``, ``wu_block``: the same
  float32 roundings in the same order as the RTL) - every lane, pad lanes included;
* the dense golden ops (efgen.golden.ops, in float64): max |rtl - ref| / max |ref|
  must stay <= ``REL_TOL``;
* the cycle formula (efgen.rtl.engine.block_cycles) for every block.

Pad lanes of the IFM and OFM buffers, and the weight-buffer words BP leaves untouched,
hold NaN, so a lane mask that leaks shows up as a NaN.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from efgen.golden import ops
from efgen.layout import WeightLayout
from efgen.rtl.engine import (
    RAM_LATENCY,
    ST_MASK,
    ST_RAW,
    ST_RELU,
    WLOAD_LATENCY,
    EngineParams,
    WloadConfig,
    block_cycles,
    conv_block,
    conv_block_packed,
    kernel_passes,
    pack_taps,
    store_op,
    wload_placement,
    wu_block,
    wu_block_packed,
    wu_copies,
    wu_copies_passes,
    wu_gradient,
)

REL_TOL = 1e-5
NAN = 0x7FC00000


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


def bits(a) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(a, np.float32)).view(np.uint32)


def f32(b) -> np.ndarray:
    return np.asarray(b, np.uint32).view(np.float32)


@dataclass
class Case:
    name: str
    kind: str
    ops: list = field(default_factory=list)
    runs: list = field(default_factory=list)   # (tag, expected cycles, cycles of "during")
    checks: list = field(default_factory=list)         # callables(results) -> [errors]
    info: dict = field(default_factory=dict)

    def check(self, results) -> list[str]:
        errs = []
        for tag, want, during in self.runs:
            got = results[tag]["cycles"]
            if got != want:
                errs.append(f"{tag}: {got} cycles, expected {want}")
            if not results[tag]["busy_seen"]:
                errs.append(f"{tag}: busy not raised after start")
            # The ping-pong writes/stores ran while the block computed (all of them when
            # they fit in the block's cycles).
            if results[tag]["overlapped"] != (got > 1 + during):
                errs.append(f"{tag}: {during} cycles of concurrent accesses, block of "
                            f"{got}, overlapped={results[tag]['overlapped']}")
        for c in self.checks:
            errs += c(results)
        return errs

    def cycles(self, results) -> list[int]:
        return [results[tag]["cycles"] for tag, _, _ in self.runs]


# ------------------------------------------------------------------ script helpers

def _write_op(port: str, half: int, tile: np.ndarray) -> dict:
    """tile (lanes, rows, cols) float32 -> one write op, row-major addresses."""
    lanes = tile.shape[0]
    words = bits(tile).reshape(lanes, -1).T
    return {"op": port, "half": half, "words": words.tolist()}


def _op_cycles(ops_) -> int:
    """Cycles the driver spends on write / store operations (one word per cycle; a store
    waits RAM_LATENCY - 1 more for its last word, cocotb_engine.Driver.store)."""
    return sum(len(o["words"]) if "words" in o else o["n"] + RAM_LATENCY - 1 for o in ops_)


def _wload_op(cfg: WloadConfig, words: np.ndarray, wl: int) -> dict:
    c = {k: int(v) for k, v in vars(cfg).items()}
    c["bp"] = int(cfg.bp)
    if not cfg.pack:                     # (ports of a pack build only; they idle at 0)
        del c["pack"], c["rc"]
    return {"op": "wload", "cfg": c, "beats": np.asarray(words, np.uint32).reshape(-1, wl).tolist(),
            "drain": WLOAD_LATENCY}


class WeightImage:
    """The weight buffer as the Python model sees it: (banks, depth) uint32."""

    def __init__(self, p: EngineParams):
        self.p = p
        self.mem = np.zeros((p.tm * p.tn, p.wbuf_depth), np.uint32)

    def load(self, cfg: WloadConfig, words) -> None:
        for word, place in zip(np.asarray(words, np.uint32), wload_placement(cfg, self.p.tm,
                                                                            self.p.tn)):
            if place is not None:
                bank, addr = place
                self.mem[bank, addr % self.p.wbuf_depth] = word   # the RTL wraps too

    def block(self, base: int, k: int) -> np.ndarray:
        """(Tm, Tn, K, K) float32 words at base .. base + K*K - 1."""
        v = self.mem[:, base:base + k * k].reshape(self.p.tm, self.p.tn, k, k)
        return f32(v)


def _pair_words(w: np.ndarray, tm: int, tn: int, mb: int, nb: int) -> np.ndarray:
    """The DRAM words of weight pair (mb, nb) in the blocked layout."""
    M, N, K, _ = w.shape
    flat = WeightLayout("blocked", tm, tn).pack(w)
    n = K * K * tm * tn
    q = mb * cdiv(N, tn) + nb
    return bits(flat[q * n:(q + 1) * n])


def _lanes(a: np.ndarray, lo: int, n: int) -> np.ndarray:
    """Channels lo..lo+n-1 of a (C, ...) float32 array; NaN beyond C (pad lanes)."""
    out = np.full((n,) + a.shape[1:], np.nan, np.float32)
    hi = min(lo + n, a.shape[0])
    out[:hi - lo] = a[lo:hi]
    return out


def _rel_err(got: np.ndarray, ref: np.ndarray) -> float:
    scale = max(float(np.max(np.abs(ref))), 1e-30)
    return float(np.max(np.abs(got.astype(np.float64) - ref))) / scale


def _compare(tag, got_bits, want_bits, got_vals, ref, errs, info):
    """Bit-exact against the model; relative error against the golden."""
    bad = np.flatnonzero(np.asarray(got_bits, np.uint32).ravel()
                         != np.asarray(want_bits, np.uint32).ravel())
    if bad.size:
        k = bad[0]
        errs.append(f"{tag}: {bad.size} words differ from the bit-exact model, first "
                    f"#{k}: rtl {int(np.ravel(got_bits)[k]):08x} model "
                    f"{int(np.ravel(want_bits)[k]):08x}")
    if ref is not None:
        if np.isnan(got_vals).any():
            errs.append(f"{tag}: NaN in valid lanes")
            return
        e = _rel_err(got_vals, ref)
        info.setdefault("rel_err", []).append(e)
        if not e <= REL_TOL:
            errs.append(f"{tag}: relative error {e:.3g} > {REL_TOL}")


# ------------------------------------------------------------------ FP

def fp_case(p: EngineParams, name: str, *, N: int, M: int, K: int, S: int, tr: int,
            tc: int, relu: bool, seed: int, bias: bool = False) -> Case:
    """FP of one tr x tc output tile: all m-blocks, each accumulated over all n-blocks.

    Ping-pong: while a block runs, the next IFM tile is written into the other IFM
    half, and the previous m-block is stored from (then the next m-block's bias written
    into) the other OFM half. ``bias``: the OFM starts from the bias (written through the
    OFM port) instead of +0.
    """
    tm, tn = p.tm, p.tn
    rng = np.random.default_rng(seed)
    hin, win = (tr - 1) * S + K, (tc - 1) * S + K
    x = rng.standard_normal((N, hin, win)).astype(np.float32)
    w = rng.standard_normal((M, N, K, K)).astype(np.float32)
    b = rng.standard_normal(M).astype(np.float32) if bias else None
    MB, NB, K2, P = cdiv(M, tm), cdiv(N, tn), K * K, tr * tc
    case = Case(name, "fp", info={"N": N, "M": M, "K": K, "S": S, "tr": tr, "tc": tc})

    img = WeightImage(p)
    for mb in range(MB):
        for nb in range(NB):
            cfg = WloadConfig.direct(K, (mb * NB + nb) * K2)
            words = _pair_words(w, tm, tn, mb, nb)
            img.load(cfg, words)
            case.ops.append(_wload_op(cfg, words, p.wl_words))

    def bias_op(mb):
        bv = np.zeros(tm, np.float32)
        nm = min(tm, M - mb * tm)
        bv[:nm] = b[mb * tm:mb * tm + nm]
        return _write_op("ofm", mb % 2, np.repeat(bv[:, None, None], P, axis=1)), bv

    ref = ops.conv_fp(x[None].astype(np.float64), w.astype(np.float64),
                      None if b is None else b.astype(np.float64), S, 0)[0]
    if relu:
        ref = np.maximum(ref, 0)
    st = ST_RELU if relu else ST_RAW

    def store_and_check(mb, acc):
        tag = f"{name}/store{mb}"
        want = bits(store_op(st, acc))                               # (Tm, P)
        nm = min(tm, M - mb * tm)
        lanes_ref = ref[mb * tm:mb * tm + nm].reshape(nm, P)

        def chk(results):
            errs = []
            got = np.asarray(results[tag], np.uint32).T                # (Tm, P)
            _compare(tag, got, want, f32(got[:nm]), lanes_ref, errs, case.info)
            return errs
        case.checks.append(chk)
        return {"op": "store", "half": mb % 2, "n": P, "st_op": st, "mask": None, "tag": tag}

    tiles = [_lanes(x, nb * tn, tn) for _ in range(MB) for nb in range(NB)]
    case.ops.append(_write_op("ifm", 0, tiles[0]))
    if bias:
        op, init = bias_op(0)
        case.ops.append(op)
    pending = None                                     # store of the previous m-block
    for mb in range(MB):
        acc = np.repeat(init[:, None], P, axis=1) if bias else None
        for nb in range(NB):
            t = mb * NB + nb
            first = nb == 0 and not bias
            tag = f"{name}/run{t}"
            cfg = dict(wu=0, k=K, s=S, tr=tr, tc=tc, in_w=win, ifm_half=t % 2,
                       ofm_half=mb % 2, w_base=(mb * NB + nb) * K2, acc_init=int(first),
                       m_valid=min(tm, M - mb * tm), n_valid=min(tn, N - nb * tn))
            during = [_write_op("ifm", (t + 1) % 2, tiles[t + 1])] if t + 1 < len(tiles) else []
            if nb == 0 and pending is not None:
                during.append(pending)
                pending = None
            if nb == NB - 1 and bias and mb + 1 < MB:
                op, next_init = bias_op(mb + 1)
                during.append(op)
            case.ops.append({"op": "run", "cfg": cfg, "during": during, "tag": tag})
            case.runs.append((tag, block_cycles("conv", K, tr, tc, tn, first, p=p.p),
                              _op_cycles(during)))
            acc = conv_block(img.block(cfg["w_base"], K), tiles[t], acc, k=K, s=S, tr=tr,
                             tc=tc, m_valid=cfg["m_valid"], n_valid=cfg["n_valid"],
                             acc_init=first, impl=p.impl, p=p.p)
        if bias and mb + 1 < MB:
            init = next_init
        pending = store_and_check(mb, acc)
    case.ops.append(pending)
    return case


# ------------------------------------------------------------------ BP

def bp_case(p: EngineParams, name: str, *, N: int, M: int, K: int, S: int, P: int, H: int,
            W: int, r0: int, c0: int, tr: int, tc: int, mask: bool, seed: int,
            chunk: tuple[int, int] | None = None) -> Case:
    """BP of one tr x tc tile of the input error dx (N channels, Tm lanes) at (r0, c0):
    weights loaded pair by pair through the flip/transpose path (over a NaN-filled
    region), the dilated, padded error tile (M channels, Tn lanes) in the IFM.
    ``chunk = (ob_first, ob_count)``: the weight buffer holds only those BP output
    blocks (every DRAM pair is still streamed; the load path drops the rest)."""
    tm, tn = p.tm, p.tn
    rng = np.random.default_rng(seed)
    Ho, Wo = ops.conv_out_size(H, K, S, P), ops.conv_out_size(W, K, S, P)
    w = rng.standard_normal((M, N, K, K)).astype(np.float32)
    dy = rng.standard_normal((M, Ho, Wo)).astype(np.float32)
    y = rng.standard_normal((N, H, W)).astype(np.float32)       # the ReLU output (mask)
    y[rng.random(y.shape) < 0.1] = 0
    dx = ops.conv_bp(dy[None].astype(np.float64), w.astype(np.float64), S, P, (H, W))[0]
    dil = ops.conv_bp_input(dy[None], K, S, P, (H, W))[0]       # (M, H+K-1, W+K-1)
    tile = dil[:, r0:r0 + tr + K - 1, c0:c0 + tc + K - 1]
    assert tile.shape[1:] == (tr + K - 1, tc + K - 1)
    RB, K2, NP = cdiv(M, tn), K * K, tr * tc
    ob0, OB = chunk or (0, cdiv(N, tm))
    case = Case(name, "bp", info={"N": N, "M": M, "K": K, "S": S, "tr": tr, "tc": tc})

    img = WeightImage(p)
    region = OB * RB * K2
    # Stale words: NaN. With a chunk, the whole buffer (the dropped words of other
    # chunks would land outside the region).
    kf = p.kmax if chunk else K
    nan_words = np.full(kf * kf * tm * tn, NAN, np.uint32)
    for base in range(0, p.wbuf_depth if chunk else region, kf * kf):
        cfg = WloadConfig.direct(kf, base)
        img.load(cfg, nan_words)
        case.ops.append(_wload_op(cfg, nan_words, p.wl_words))
    if chunk:
        region = p.wbuf_depth
    for mb in range(cdiv(M, tm)):
        for nb in range(cdiv(N, tn)):
            cfg = WloadConfig.bp_pair(tm, tn, K, w.shape, mb, nb, ob0, OB)
            words = _pair_words(w, tm, tn, mb, nb)
            img.load(cfg, words)
            case.ops.append(_wload_op(cfg, words, p.wl_words))
    case.ops.append({"op": "wbread", "addrs": list(range(region)), "tag": f"{name}/wbuf"})
    want_img = img.mem[:, :region].T.copy()

    def chk_img(results, tag=f"{name}/wbuf"):
        got = np.asarray(results[tag], np.uint32)
        if not np.array_equal(got, want_img):
            return [f"{tag}: weight buffer after the BP load differs from wload_placement "
                    f"at {int(np.count_nonzero(got != want_img))} words"]
        return []
    case.checks.append(chk_img)

    tiles = [_lanes(tile, rb * tn, tn) for _ in range(OB) for rb in range(RB)]
    case.ops.append(_write_op("ifm", 0, tiles[0]))
    for ob in range(ob0, ob0 + OB):
        acc = None
        for rb in range(RB):
            t = (ob - ob0) * RB + rb
            tag = f"{name}/run{t}"
            cfg = dict(wu=0, k=K, s=1, tr=tr, tc=tc, in_w=tc + K - 1, ifm_half=t % 2,
                       ofm_half=ob % 2, w_base=((ob - ob0) * RB + rb) * K2,
                       acc_init=int(rb == 0),
                       m_valid=min(tm, N - ob * tm), n_valid=min(tn, M - rb * tn))
            during = [_write_op("ifm", (t + 1) % 2, tiles[t + 1])] if t + 1 < len(tiles) else []
            case.ops.append({"op": "run", "cfg": cfg, "during": during, "tag": tag})
            case.runs.append((tag, block_cycles("conv", K, tr, tc, tn, rb == 0, p=p.p),
                              _op_cycles(during)))
            acc = conv_block(img.block(cfg["w_base"], K), tiles[t], acc, k=K, s=1, tr=tr,
                             tc=tc, m_valid=cfg["m_valid"], n_valid=cfg["n_valid"],
                             acc_init=rb == 0, impl=p.impl, p=p.p)
        nm = min(tm, N - ob * tm)
        ytile = np.zeros((tm, tr, tc), np.float32)
        ytile[:nm] = y[ob * tm:ob * tm + nm, r0:r0 + tr, c0:c0 + tc]
        ymask = ytile.reshape(tm, NP)
        st = ST_MASK if mask else ST_RAW
        tag = f"{name}/store{ob}"
        case.ops.append({"op": "store", "half": ob % 2, "n": NP, "st_op": st,
                         "mask": bits(ymask).T.tolist(), "tag": tag})
        want = bits(store_op(st, acc, ymask))
        ref = dx[ob * tm:ob * tm + nm, r0:r0 + tr, c0:c0 + tc].reshape(nm, NP)
        if mask:
            ref = np.where(ymask[:nm] > 0, ref, 0)

        def chk(results, tag=tag, want=want, nm=nm, ref=ref):
            errs = []
            got = np.asarray(results[tag], np.uint32).T
            _compare(tag, got, want, f32(got[:nm]), ref, errs, case.info)
            return errs
        case.checks.append(chk)
    return case


# ------------------------------------------------------------------ WU

def wu_case(p: EngineParams, name: str, *, N: int, M: int, K: int, S: int, tr: int,
            tc: int, images: int, seed: int, base_pair: int = 0) -> Case:
    """WU of one tile position over ``images`` images, for every (m-block, n-block)
    pair: gradient pair q at slots (base_pair + q) * G*K*K. The next error and input
    tiles are written into the other halves while a block runs."""
    tm, tn = p.tm, p.tn
    rng = np.random.default_rng(seed)
    hin, win = (tr - 1) * S + K, (tc - 1) * S + K
    x = rng.standard_normal((images, N, hin, win)).astype(np.float32)
    dy = rng.standard_normal((images, M, tr, tc)).astype(np.float32)
    ref = ops.conv_wu(dy.astype(np.float64), x.astype(np.float64), S, 0, K)  # (M, N, K, K)
    MB, NB, K2, NP, G = cdiv(M, tm), cdiv(N, tn), K * K, tr * tc, wu_copies(K)
    case = Case(name, "wu", info={"N": N, "M": M, "K": K, "S": S, "tr": tr, "tc": tc,
                                  "G": G})

    seq = [(mb, nb, b) for mb in range(MB) for nb in range(NB) for b in range(images)]
    errs_t = [_lanes(dy[b], mb * tm, tm) for mb, nb, b in seq]
    x_t = [_lanes(x[b], nb * tn, tn) for mb, nb, b in seq]
    case.ops.append(_write_op("ofm", 0, errs_t[0][:, :, :]))
    case.ops.append(_write_op("ifm", 0, x_t[0]))
    slots = {}
    for t, (mb, nb, b) in enumerate(seq):
        q = base_pair + mb * NB + nb
        tag = f"{name}/run{t}"
        cfg = dict(wu=1, k=K, s=S, tr=tr, tc=tc, in_w=win, ifm_half=t % 2, ofm_half=t % 2,
                   w_base=q * G * K2, acc_init=int(b == 0), m_valid=min(tm, M - mb * tm),
                   n_valid=min(tn, N - nb * tn))
        during = []
        if t + 1 < len(seq):
            during = [_write_op("ofm", (t + 1) % 2, errs_t[t + 1]),
                      _write_op("ifm", (t + 1) % 2, x_t[t + 1])]
        case.ops.append({"op": "run", "cfg": cfg, "during": during, "tag": tag})
        case.runs.append((tag, block_cycles("wu", K, tr, tc, tn, b == 0, p=p.p),
                              _op_cycles(during)))
        slots[(mb, nb)] = wu_block(slots.get((mb, nb)), errs_t[t].reshape(tm, NP), x_t[t],
                                   k=K, s=S, tr=tr, tc=tc, m_valid=cfg["m_valid"],
                                   n_valid=cfg["n_valid"], acc_init=b == 0, impl=p.impl,
                                   p=p.p)
    for (mb, nb), sl in slots.items():
        q = base_pair + mb * NB + nb
        tag = f"{name}/grad{mb}_{nb}"
        case.ops.append({"op": "wbread", "addrs": list(range(q * G * K2, (q + 1) * G * K2)),
                         "tag": tag})
        nm, nn = min(tm, M - mb * tm), min(tn, N - nb * tn)
        want = bits(sl)                                               # (Tm, Tn, G, K2)
        lane_ref = ref[mb * tm:mb * tm + nm, nb * tn:nb * tn + nn].reshape(nm, nn, K2)

        def chk(results, tag=tag, want=want, nm=nm, nn=nn, lane_ref=lane_ref):
            errs = []
            got = np.asarray(results[tag], np.uint32).reshape(G, K2, tm, tn)
            got = got.transpose(2, 3, 0, 1)                           # (Tm, Tn, G, K2)
            grad = wu_gradient(f32(got), p.impl)
            _compare(tag, got, want, grad[:nm, :nn], lane_ref, errs, case.info)
            return errs
        case.checks.append(chk)
    return case


# ------------------------------------------------------------------ tap packing (issue 13)

def _packed_tile(x: np.ndarray, tn: int, rc: int, taps: int) -> np.ndarray:
    """The IFM banks of a packed block: bank t*rc + c holds channel c (t < taps; what
    the loader's replicated write leaves), the rest NaN."""
    out = np.full((tn,) + x.shape[1:], np.nan, np.float32)
    for n in range(taps * rc):
        out[n] = x[n % rc]
    return out


def _nan_region(p: EngineParams, case: Case, img: WeightImage, words: int) -> None:
    """Weight words 0 .. words-1 of every bank NaN first: the words a packed load leaves
    untouched (lanes past K*K in the last pass) must not leak."""
    nan_words = np.full(p.tm * p.tn, NAN, np.uint32)
    for base in range(words):
        cfg = WloadConfig.direct(1, base)
        img.load(cfg, nan_words)
        case.ops.append(_wload_op(cfg, nan_words, p.wl_words))


def fp_packed_case(p: EngineParams, name: str, *, N: int, M: int, K: int, S: int, tr: int,
                   tc: int, seed: int) -> Case:
    """Packed FP (EngineParams.pack) of one tr x tc tile, N <= Tn/2 channels (one
    reduction block): weights through the packed load over a NaN-filled region, the
    replicated IFM tile, every m-block one block of KP passes."""
    tm, tn = p.tm, p.tn
    taps = pack_taps(N, K, tn)
    assert p.pack and taps > 1, (N, K, tn)
    rng = np.random.default_rng(seed)
    hin, win = (tr - 1) * S + K, (tc - 1) * S + K
    x = rng.standard_normal((N, hin, win)).astype(np.float32)
    w = rng.standard_normal((M, N, K, K)).astype(np.float32)
    MB, KP, P = cdiv(M, tm), kernel_passes(K, taps), tr * tc
    case = Case(name, "fp", info={"N": N, "M": M, "K": K, "S": S, "tr": tr, "tc": tc,
                                  "taps": taps, "KP": KP})
    img = WeightImage(p)
    _nan_region(p, case, img, MB * KP)
    # one stream of all MB pairs (layer_seq's FP chunk): pair mb lands at mb*KP
    stream = []
    for mb in range(MB):
        words = _pair_words(w, tm, tn, mb, 0)
        img.load(WloadConfig.packed(K, mb * KP, N), words)
        stream.append(words)
    case.ops.append(_wload_op(WloadConfig.packed(K, 0, N), np.concatenate(stream), p.wl_words))
    ref = ops.conv_fp(x[None].astype(np.float64), w.astype(np.float64), None, S, 0)[0]
    tile = _packed_tile(x, tn, N, taps)
    case.ops.append(_write_op("ifm", 0, tile))
    for mb in range(MB):
        tag = f"{name}/run{mb}"
        cfg = dict(wu=0, k=K, s=S, tr=tr, tc=tc, in_w=win, ifm_half=0, ofm_half=mb % 2,
                   w_base=mb * KP, acc_init=1, m_valid=min(tm, M - mb * tm),
                   n_valid=taps * N, pack=1, rc=N)
        case.ops.append({"op": "run", "cfg": cfg, "during": [], "tag": tag})
        case.runs.append((tag, block_cycles("conv", K, tr, tc, tn, True, taps), 0))
        wblk = f32(img.mem[:, mb * KP:(mb + 1) * KP]).reshape(tm, tn, KP)
        acc = conv_block_packed(wblk, tile, None, k=K, s=S, tr=tr, tc=tc,
                                m_valid=cfg["m_valid"], rc=N, acc_init=True, impl=p.impl)
        stag = f"{name}/store{mb}"
        case.ops.append({"op": "store", "half": mb % 2, "n": P, "st_op": ST_RAW, "mask": None,
                         "tag": stag})
        nm = cfg["m_valid"]
        lanes_ref = ref[mb * tm:mb * tm + nm].reshape(nm, P)

        def chk(results, stag=stag, want=bits(acc), nm=nm, lanes_ref=lanes_ref):
            errs = []
            got = np.asarray(results[stag], np.uint32).T
            _compare(stag, got, want, f32(got[:nm]), lanes_ref, errs, case.info)
            return errs
        case.checks.append(chk)
    return case


def wu_packed_case(p: EngineParams, name: str, *, N: int, M: int, K: int, S: int, tr: int,
                   tc: int, images: int, seed: int) -> Case:
    """Packed WU of one tile position over ``images`` images: gradient words (m, n, pass)
    of lane n = t*N + c, G = ceil(ACC_DIST / KP) copies; each lane's gradient is checked
    against W's gradient at (channel c, offset pass*taps + t)."""
    tm, tn = p.tm, p.tn
    taps = pack_taps(N, K, tn)
    assert p.pack and taps > 1, (N, K, tn)
    rng = np.random.default_rng(seed)
    hin, win = (tr - 1) * S + K, (tc - 1) * S + K
    x = rng.standard_normal((images, N, hin, win)).astype(np.float32)
    dy = rng.standard_normal((images, M, tr, tc)).astype(np.float32)
    ref = ops.conv_wu(dy.astype(np.float64), x.astype(np.float64), S, 0, K)  # (M, N, K, K)
    MB, KP, NP = cdiv(M, tm), kernel_passes(K, taps), tr * tc
    G = wu_copies_passes(KP)
    case = Case(name, "wu", info={"N": N, "M": M, "K": K, "S": S, "tr": tr, "tc": tc,
                                  "taps": taps, "KP": KP, "G": G})
    seq = [(mb, b) for mb in range(MB) for b in range(images)]
    errs_t = [_lanes(dy[b], mb * tm, tm) for mb, b in seq]
    x_t = [_packed_tile(x[b], tn, N, taps) for mb, b in seq]
    case.ops.append(_write_op("ofm", 0, errs_t[0]))
    case.ops.append(_write_op("ifm", 0, x_t[0]))
    slots = {}
    for t, (mb, b) in enumerate(seq):
        tag = f"{name}/run{t}"
        cfg = dict(wu=1, k=K, s=S, tr=tr, tc=tc, in_w=win, ifm_half=t % 2, ofm_half=t % 2,
                   w_base=mb * G * KP, acc_init=int(b == 0), m_valid=min(tm, M - mb * tm),
                   n_valid=taps * N, pack=1, rc=N)
        during = []
        if t + 1 < len(seq):
            during = [_write_op("ofm", (t + 1) % 2, errs_t[t + 1]),
                      _write_op("ifm", (t + 1) % 2, x_t[t + 1])]
        case.ops.append({"op": "run", "cfg": cfg, "during": during, "tag": tag})
        case.runs.append((tag, block_cycles("wu", K, tr, tc, tn, b == 0, taps),
                          _op_cycles(during)))
        slots[mb] = wu_block_packed(slots.get(mb), errs_t[t].reshape(tm, NP), x_t[t], k=K,
                                    s=S, tr=tr, tc=tc, m_valid=cfg["m_valid"], rc=N,
                                    acc_init=b == 0, impl=p.impl)
    for mb, sl in slots.items():
        tag = f"{name}/grad{mb}"
        case.ops.append({"op": "wbread", "addrs": list(range(mb * G * KP, (mb + 1) * G * KP)),
                         "tag": tag})
        nm = min(tm, M - mb * tm)
        want = bits(sl)                                               # (Tm, Tn, G, KP)
        # lane (m, t*N + c) pass q: W's gradient at (m, c, kk = q*taps + t)
        gref = np.zeros((nm, tn, KP))
        live = np.zeros((tn, KP), bool)
        for n in range(taps * N):
            for q in range(KP):
                kk = q * taps + n // N
                if kk < K * K:
                    gref[:, n, q] = ref[mb * tm:mb * tm + nm, n % N, kk // K, kk % K]
                    live[n, q] = True

        def chk(results, tag=tag, want=want, nm=nm, gref=gref, live=live):
            errs = []
            got = np.asarray(results[tag], np.uint32).reshape(G, KP, tm, tn)
            got = got.transpose(2, 3, 0, 1)                           # (Tm, Tn, G, KP)
            # bit-exact: every lane, pad lanes included
            _compare(tag, got, want, None, None, errs, case.info)
            grad = wu_gradient(f32(got[:nm]), impl=p.impl)             # (nm, Tn, KP)
            e = _rel_err(grad[:, live], gref[:, live])
            case.info.setdefault("rel_err", []).append(e)
            if not e <= REL_TOL:
                errs.append(f"{tag}: relative error {e:.3g} > {REL_TOL}")
            return errs
        case.checks.append(chk)
    return case
