"""The restructured training step (efgen/model/restructure.py), tile by tile through the
DRAM layouts: the numpy reference of the fused datapath.

It runs the convolution engine of :mod:`efgen.golden.tiled` with load and store hooks:

* a conv/linear's input tiles are *expressions* of materialised tensors, evaluated as
  the loader would: ``bn`` (gamma*(y - mean)*invstd + beta per channel), ``add`` of
  two, ``relu``; a group the plan materialises is written once by a vector pass;
* the store of a conv that feeds a batchnorm accumulates sum(y - k) and sum((y - k)^2)
  per channel (k: the running mean before the step, a per-channel shift that keeps the
  one-pass variance from cancelling); the BN finalisation turns them into mean, var;
* in BP, the last sender of a tensor's error finalises it in its store (or pass): the
  other senders' errors added, the fused ReLU's mask recomputed from the group's
  sources, and BN BP's sum(dy) and sum(dy*x_hat) accumulated (x_hat from y);
* BN BP dx is an expression of (dz, y) that the producing conv's BP and WU loads
  evaluate, unless the plan materialises it.

:func:`restructured_step` returns the materialised tensors (named by the golden trace
key they equal) and the state after the step; tests/test_restructured.py compares them
with :func:`efgen.golden.model.train_step`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from efgen.frontend.ir import BN_EPS, BN_MOMENTUM, INPUT, Net
from efgen.golden import ops
from efgen.golden.model import SGD, TrainState
from efgen.golden.tiled import (Tiling, _load_fm, _store_fm, conv_bp_tiled, conv_fp_tiled,
                                conv_wu_tiled)
from efgen.layout import FeatureMapLayout, WeightLayout
from efgen.model import restructure as R
from efgen.model.fusion import fused_relus


@dataclass
class Result:
    loss: float
    tensors: dict[str, np.ndarray] = field(repr=False)   # golden trace key -> dense tensor
    state: TrainState = field(repr=False)
    words: dict = field(default_factory=dict, repr=False)  # (layer, phase, stream) -> words


def _as4(shape) -> tuple:
    return tuple(shape) + (1,) * (4 - len(shape))


class _Dram:
    """Materialised tensors, each in the feature-map layout."""

    def __init__(self, fm: FeatureMapLayout):
        self.fm = fm
        self.t: dict[str, tuple[np.ndarray, tuple]] = {}

    def put_dense(self, name, dense):
        d4 = dense.reshape(_as4(dense.shape))
        self.t[name] = (self.fm.pack(d4), d4.shape)

    def dense(self, name):
        flat, shape = self.t[name]
        return self.fm.unpack(flat, shape)


def _valid(shape, c0, lanes, rows, cols):
    _, C, H, W = shape
    ch = np.arange(c0, c0 + lanes)
    rows, cols = np.asarray(rows), np.asarray(cols)
    return ((ch < C)[:, None, None] & ((rows >= 0) & (rows < H))[None, :, None]
            & ((cols >= 0) & (cols < W))[None, None, :])


def _chan(v, c0, lanes, dtype):
    out = np.zeros(lanes, dtype)
    n = max(0, min(lanes, v.shape[0] - c0))
    out[:n] = v[c0:c0 + n]
    return out[:, None, None]


class _Loader:
    """Evaluates expressions over materialised tensors at tile positions (the loader's
    transform units), zero where the loader zero-fills."""

    def __init__(self, dram: _Dram, dtype):
        self.d, self.dt = dram, dtype
        self.ctx = None                       # the (layer, phase, stream) being counted
        self.words: dict[tuple, int] = {}     # DRAM words each loader read

    def _read(self, name, b, c0, lanes, rows, cols):
        """One tensor's tile, as the DMA reads it: the valid rows and columns, whole lane
        blocks of the valid channels (counted under :attr:`ctx`)."""
        flat, shape = self.d.t[name]
        if self.ctx is not None:
            _, C, H, W = shape
            r, c = np.asarray(rows), np.asarray(cols)
            nc = max(0, min(lanes, C - c0))
            T = self.d.fm.lanes
            words = -(-nc // T) * T * int(((r >= 0) & (r < H)).sum()) * int(((c >= 0) & (c < W)).sum())
            self.words[self.ctx] = self.words.get(self.ctx, 0) + words
        return _load_fm(flat, self.d.fm, shape, b, c0, lanes, rows, cols)

    def shape(self, e):
        k = e[0]
        if k in ("mat", "bn"):
            return self.d.t[e[1]][1]
        if k == "bndx":
            return self.d.t[e[2]][1]
        return self.shape(e[1] if k == "relu" else e[1][0])

    def tile(self, e, b, c0, lanes, rows, cols):
        k = e[0]
        if k == "mat":
            return self._read(e[1], b, c0, lanes, rows, cols)
        if k == "relu":
            return ops.relu_fp(self.tile(e[1], b, c0, lanes, rows, cols))
        if k == "add":
            out = self.tile(e[1][0], b, c0, lanes, rows, cols)
            for x in e[1][1:]:
                out = out + self.tile(x, b, c0, lanes, rows, cols)
            return out
        if k == "bn":      # gamma * ((y - mean) * invstd) + beta, the golden's order
            _, y, mean, invstd, gamma, beta = e
            shape = self.d.t[y][1]
            raw = self._read(y, b, c0, lanes, rows, cols)
            ch = lambda v: _chan(v, c0, lanes, self.dt)  # noqa: E731
            val = ch(gamma) * ((raw - ch(mean)) * ch(invstd)) + ch(beta)
            return np.where(_valid(shape, c0, lanes, rows, cols), val, 0).astype(self.dt)
        if k == "bndx":    # gamma*invstd/n * (n*dz - sum(dz) - x_hat*sum(dz*x_hat))
            _, dz, y, mean, invstd, gamma, s_dz, s_dzx, n = e
            ch = lambda v: _chan(v, c0, lanes, self.dt)  # noqa: E731
            d = self.tile(dz, b, c0, lanes, rows, cols)
            shape = self.d.t[y][1]
            raw = self._read(y, b, c0, lanes, rows, cols)
            xhat = (raw - ch(mean)) * ch(invstd)
            coef = ch(gamma * invstd / n)
            val = coef * (n * d - ch(s_dz) - xhat * ch(s_dzx))
            return np.where(_valid(shape, c0, lanes, rows, cols), val, 0).astype(self.dt)
        raise AssertionError(k)

    def counted(self, ctx, e, b, c0, lanes, rows, cols):
        """:meth:`tile`, its DRAM words counted under ``ctx``."""
        self.ctx = ctx
        try:
            return self.tile(e, b, c0, lanes, rows, cols)
        finally:
            self.ctx = None

    def dense(self, e):
        B, C, H, W = self.shape(e)
        return np.stack([self.tile(e, b, 0, C, np.arange(H), np.arange(W)) for b in range(B)])


def _leaves(e) -> list[str]:
    """The stored tensors an expression reads."""
    k = e[0]
    if k in ("mat", "bn"):
        return [e[1]]
    if k == "relu":
        return _leaves(e[1])
    if k == "add":
        return [n for x in e[1] for n in _leaves(x)]
    return _leaves(e[1]) + [e[2]]      # bndx: dz's, then y


def restructured_step(net: Net, state: TrainState, x: np.ndarray, labels: np.ndarray,
                      sgd: SGD, plan: R.Plan, t: Tiling, tilings: dict | None = None,
                      fm_kind: str = "blocked", w_kind: str = "blocked") -> Result:
    """One SGD step of the restructured datapath. ``t``: the engine (Tm, Tn) and the
    default (Tr, Tc); ``tilings``: per (layer, phase) Tiling overrides."""
    dt = x.dtype
    lanes = math.gcd(t.tm, t.tn)
    fm, wl = FeatureMapLayout(fm_kind, lanes), WeightLayout(w_kind, t.tm, t.tn)
    dram = _Dram(fm)
    ld = _Loader(dram, dt)
    tilings = tilings or {}
    T = lambda name, ph: tilings.get((name, ph), t)  # noqa: E731
    out: dict[str, np.ndarray] = {}
    fused = fused_relus(net)
    fin = R.finalisers(net)
    groups = set(R.groups(net))
    dram.put_dense(INPUT, x)
    expr: dict[str, tuple] = {INPUT: ("mat", INPUT)}
    stats: dict[str, list] = {}       # conv -> [sum(y-k), sum((y-k)^2)] of its store
    bn_fp: dict[str, dict] = {}
    argmax: dict[str, np.ndarray] = {}
    dlogits = None
    loss = 0.0
    none = np.zeros(0, dt)

    def wflat(name):
        w = state.params[name]["weight"]
        w4 = w.reshape(_as4(w.shape))
        return wl.pack(w4), w4.shape

    # ---- FP ------------------------------------------------------------------------
    for l in net:
        e_in = expr.get(l.inputs[0]) if l.inputs else None
        if l.op in ("conv", "linear"):
            in_shape = ld.shape(e_in)
            w_flat, w_shape = wflat(l.name)
            bn = R._bn_of(net, l.name)
            k = state.buffers[bn]["running_mean"].astype(dt) if bn else None
            acc = [np.zeros(w_shape[0], dt), np.zeros(w_shape[0], dt)]

            def store(flat, layout, shape, b, m0, r0, c0, tile, _acc=acc, _k=k, _bn=bn):
                if _bn is not None:      # BN FP statistics beside the store
                    C, H, W = shape[1:]
                    nc, nr, nx = min(tile.shape[0], C - m0), min(tile.shape[1], H - r0), \
                        min(tile.shape[2], W - c0)
                    v = tile[:nc, :nr, :nx] - _k[m0:m0 + nc, None, None]
                    _acc[0][m0:m0 + nc] += v.sum(axis=(1, 2))
                    _acc[1][m0:m0 + nc] += (v * v).sum(axis=(1, 2))
                _store_fm(flat, layout, shape, b, m0, r0, c0, tile)

            p = state.params[l.name]
            lt = T(l.name, "fp")
            y, y_shape = conv_fp_tiled(none, in_shape, w_flat, w_shape, p.get("bias"),
                                       l.stride, l.padding, lt, fm, wl,
                                       load=lambda b, c0, n, r, c, _e=e_in, _k=(l.name, "fp", "in"):
                                       ld.counted(_k, _e, b, c0, n, r, c),
                                       store=store)
            dram.t[l.name] = (y, y_shape)
            expr[l.name] = ("mat", l.name)
            stats[l.name] = acc
            out[f"{l.name}:y"] = fm.unpack(y, y_shape).reshape((x.shape[0],) + l.out_shape)
        elif l.op == "batchnorm":
            src = l.inputs[0]
            g, beta = state.params[l.name]["gamma"], state.params[l.name]["beta"]
            k = state.buffers[l.name]["running_mean"].astype(dt)
            if R.stats_producer(net, l):
                s1, s2 = stats[src]
            else:                          # a statistics pass over the stored input
                v = dram.dense(src) - k[None, :, None, None]
                s1, s2 = v.sum(axis=(0, 2, 3)), (v * v).sum(axis=(0, 2, 3))
            n = dt.type(x.shape[0] * math.prod(l.in_shape[1:]))
            d = s1 / n
            mean = k + d
            var = s2 / n - d * d
            invstd = (1 / np.sqrt(var + dt.type(BN_EPS))).astype(dt)
            bn_fp[l.name] = dict(mean=mean, var=var, invstd=invstd, n=n, y=src,
                                 count=int(n))
            out[f"{l.name}:mean"], out[f"{l.name}:var"] = mean, var
            expr[l.name] = ("bn", src, mean, invstd, g, beta)
            assert expr[src] == ("mat", src), f"{l.name}: a batchnorm reads a stored tensor"
        elif l.op == "relu" and R._is_chain(net, l.name):
            expr[l.name] = ("relu", e_in)
        elif l.op == "add":
            expr[l.name] = ("add", tuple(expr[i] for i in l.inputs))
        elif l.op == "softmax_ce":
            logits = ld.dense(e_in).reshape(x.shape[0], -1)
            loss, dlogits = ops.softmax_ce(logits, labels)
            out[f"{l.name}:prob"] = ops.softmax(logits)
            continue
        else:                              # vector passes: read the input's sources
            a = ld.dense(e_in)
            a = a.reshape((x.shape[0],) + l.in_shape)
            if l.op == "relu":
                y = ops.relu_fp(a)
            elif l.op == "maxpool":
                y, argmax[l.name] = ops.maxpool_fp(a, l.kernel, l.stride, l.padding)
            elif l.op == "avgpool":
                y = (ops.global_avgpool_fp(a) if l.global_pool
                     else ops.avgpool_fp(a, l.kernel, l.stride, l.padding))
            elif l.op == "shortcut_a":
                y = ops.shortcut_a_fp(a, l.channels, l.stride)
            elif l.op == "flatten":
                y = a.reshape(a.shape[0], -1)
            else:  # pragma: no cover
                raise AssertionError(l.op)
            dram.put_dense(l.name, y)
            expr[l.name] = ("mat", l.name)
            out[f"{l.name}:y"] = y
        if l.name in groups and l.name in plan.materialise:
            y = ld.dense(expr[l.name])
            dram.put_dense(l.name, y)
            expr[l.name] = ("mat", l.name)
            out[f"{l.name}:y"] = y.reshape((x.shape[0],) + l.out_shape)

    # the fused groups' values as the loaders compute them (not stored; for comparison)
    for l in net:
        if l.op in ("batchnorm", "relu", "add") and f"{l.name}:y" not in out:
            out[f"{l.name}:y"] = ld.dense(expr[l.name]).reshape((x.shape[0],) + l.out_shape)

    # ---- BP and WU ---------------------------------------------------------------------
    contrib: dict[str, list] = {}       # tensor -> error expressions of its senders so far
    final: dict[str, tuple] = {}        # tensor -> its finalised (stored) error expression
    bn_bp: dict[str, list] = {}         # bn -> [sum(dz), sum(dz*x_hat)]
    grads: dict[str, dict] = {}

    def send(tensor, e):
        if tensor != INPUT:
            contrib.setdefault(tensor, []).append(e)

    def needs_final(tname):
        where, senders = fin[tname]
        return len(senders) > 1 or tname in fused or bool(R._bns_finalised_at(net, tname))

    def finalise_tile(tname, own, b, c0, lanes, rows, cols):
        """The finaliser's store: own tile + the other senders' errors, masked, with the
        BN BP sums of the BNs whose dy this is."""
        e = own
        for c in contrib.get(tname, []):
            e = e + ld.tile(c, b, c0, lanes, rows, cols)
        if tname in fused:
            e = np.where(ld.tile(expr[tname], b, c0, lanes, rows, cols) > 0, e, 0).astype(dt)
        for bn in R._bns_finalised_at(net, tname):
            f = bn_fp[bn]
            if any(f["y"] in _leaves(c) for c in [expr[tname]] if tname in fused):
                ld.ctx, keep = None, ld.ctx    # the mask's own y stream: read once
            else:
                keep = ld.ctx
            shape = dram.t[f["y"]][1]
            ok = _valid(shape, c0, lanes, rows, cols)
            raw = ld._read(f["y"], b, c0, lanes, rows, cols)
            ld.ctx = keep
            xhat = np.where(ok, (raw - _chan(f["mean"], c0, lanes, dt))
                            * _chan(f["invstd"], c0, lanes, dt), 0)
            s = bn_bp.setdefault(bn, [np.zeros(len(f["mean"]), dt), np.zeros(len(f["mean"]), dt)])
            nc = max(0, min(lanes, len(f["mean"]) - c0))
            s[0][c0:c0 + nc] += np.where(ok, e, 0).sum(axis=(1, 2))[:nc]
            s[1][c0:c0 + nc] += (np.where(ok, e, 0) * xhat).sum(axis=(1, 2))[:nc]
        return e

    def record_final(tname, flat, shape):
        dram.t["err:" + tname] = (flat, shape)
        final[tname] = ("mat", "err:" + tname)
        key = f"{tname}:dx" if tname in fused else f"{tname}:dy"
        shp = (x.shape[0],) + net[tname].out_shape
        out[key] = fm.unpack(flat, shape).reshape(shp)

    def take(tname):
        """The error w.r.t. ``tname``'s output, as its own BP reads it (for a fused ReLU:
        already masked)."""
        if tname in final:
            return final[tname]
        if tname in fin and needs_final(tname):      # a pass of its own
            shape = _as4((x.shape[0],) + net[tname].out_shape)
            B, C, H, W = shape
            dense = np.stack([finalise_tile(tname, np.zeros((C, H, W), dt), b, 0, C,
                                            np.arange(H), np.arange(W)) for b in range(B)])
            contrib.pop(tname, None)
            record_final(tname, fm.pack(dense), shape)
            return final[tname]
        cs = contrib.pop(tname)
        assert len(cs) == 1, tname
        return cs[0]

    def finalises(l, tname):
        return tname in fin and fin[tname][0] == l.name and needs_final(tname)

    for l in reversed(net.layers):
        if not l.needs_error:
            continue
        if l.op == "softmax_ce":
            dram.put_dense("dlogits", dlogits)
            send(l.inputs[0], ("mat", "dlogits"))
            continue
        src = l.inputs[0] if l.inputs else None
        if l.op == "relu" and l.name in fused:
            dy = take(l.name)
            send(src, dy)
            continue
        if l.op == "add":
            dy = take(l.name)
            for i in l.inputs:
                send(i, dy)
            continue
        if l.op == "flatten" and math.prod(l.in_shape[1:]) == 1:
            send(src, take(l.name))
            continue
        dy = take(l.name)
        if l.op in ("conv", "linear"):
            p = state.params[l.name]
            in_e = expr[src]
            in_shape = ld.shape(in_e)
            dy_shape = ld.shape(dy)
            w_flat, w_shape = wflat(l.name)
            g = {}
            if l.trainable:
                lt = T(l.name, "wu")
                dw, dws = conv_wu_tiled(
                    none, dy_shape, none, in_shape, w_shape[2], l.stride, l.padding, lt, fm, wl,
                    load_err=lambda b, c0, n, r, c: ld.counted((l.name, "wu", "err"), dy, b, c0,
                                                               n, r, c),
                    load_in=lambda b, c0, n, r, c: ld.counted((l.name, "wu", "in"), in_e, b, c0,
                                                              n, r, c))
                g["weight"] = wl.unpack(dw, dws).reshape(p["weight"].shape)
                if l.bias:   # the bias gradient: the error summed per channel
                    g["bias"] = ld.dense(dy).sum(axis=(0, 2, 3))
            if l.runs_bp:
                lt = T(l.name, "bp")
                fz = finalises(l, src)

                def store(flat, layout, shape, b, n0, r0, c0, tile, _fz=fz, _src=src,
                          _k=(l.name, "bp", "store")):
                    if _fz:       # (the rows and columns of the image the store writes)
                        H, W = shape[2:]
                        ld.ctx = _k
                        tile = finalise_tile(_src, tile, b, n0, tile.shape[0],
                                             np.arange(r0, min(H, r0 + tile.shape[1])),
                                             np.arange(c0, min(W, c0 + tile.shape[2])))
                        ld.ctx = None
                    _store_fm(flat, layout, shape, b, n0, r0, c0, tile)

                dx, dxs = conv_bp_tiled(none, dy_shape, w_flat, w_shape, in_shape[2:],
                                        l.stride, l.padding, lt, fm, wl,
                                        load=lambda b, c0, n, r, c: ld.counted(
                                            (l.name, "bp", "in"), dy, b, c0, n, r, c),
                                        store=store)
                if fz:
                    contrib.pop(src, None)
                    record_final(src, dx, dxs)
                else:
                    dram.t[f"dx:{l.name}"] = (dx, dxs)
                    out[f"{l.name}:dx"] = fm.unpack(dx, dxs).reshape((x.shape[0],) + l.in_shape)
                    send(src, ("mat", f"dx:{l.name}"))
            if g:
                grads[l.name] = g
            continue
        if l.op == "batchnorm":
            f = bn_fp[l.name]
            p = state.params[l.name]
            if l.name not in bn_bp:        # sums not fused: a pass over dz and y
                dz = ld.dense(dy)
                xhat = (dram.dense(f["y"]) - f["mean"][None, :, None, None]) \
                    * f["invstd"][None, :, None, None]
                bn_bp[l.name] = [dz.sum(axis=(0, 2, 3)), (dz * xhat).sum(axis=(0, 2, 3))]
            s_dz, s_dzx = bn_bp[l.name]
            if l.trainable:
                grads[l.name] = {"gamma": s_dzx, "beta": s_dz}
            if l.runs_bp:
                e = ("bndx", dy, f["y"], f["mean"], f["invstd"], p["gamma"], s_dz, s_dzx, f["n"])
                if l.name in R.dx_candidates(net) and l.name not in plan.dx_materialise:
                    send(src, e)
                else:
                    d = ld.dense(e)
                    dram.put_dense(f"dx:{l.name}", d)
                    out[f"{l.name}:dx"] = d
                    send(src, ("mat", f"dx:{l.name}"))
            continue
        # vector BP passes
        a_shape = (x.shape[0],) + l.in_shape
        d = ld.dense(dy).reshape((x.shape[0],) + l.out_shape)
        if l.op == "relu":
            dx = ops.relu_bp(d, dram.dense(l.name).reshape(d.shape))
        elif l.op == "maxpool":
            dx = ops.maxpool_bp(d, argmax[l.name], l.kernel, l.stride, l.padding, l.in_shape[1:])
        elif l.op == "avgpool":
            dx = (ops.global_avgpool_bp(d, l.in_shape[1:]) if l.global_pool
                  else ops.avgpool_bp(d, l.kernel, l.stride, l.padding, l.in_shape[1:]))
        elif l.op == "shortcut_a":
            dx = ops.shortcut_a_bp(d, l.in_shape[0], l.stride, l.in_shape[1:])
        elif l.op == "flatten":
            dx = d.reshape(a_shape)
        else:  # pragma: no cover
            raise AssertionError(l.op)
        dx4 = dx.reshape(_as4(dx.shape))
        if finalises(l, src):
            B, C, H, W = dx4.shape
            dense = np.stack([finalise_tile(src, dx4[b], b, 0, C, np.arange(H), np.arange(W))
                              for b in range(B)])
            contrib.pop(src, None)
            record_final(src, fm.pack(dense), dense.shape)
        else:
            dram.put_dense(f"dx:{l.name}", dx4)
            out[f"{l.name}:dx"] = dx
            send(src, ("mat", f"dx:{l.name}"))

    # ---- SGD and the running statistics -------------------------------------------------
    new = state.copy()
    for lname, g in grads.items():
        for n, grad in g.items():
            out[f"{lname}:grad.{n}"] = grad
            p_new, v_new = ops.sgd_update(state.params[lname][n], grad.astype(dt),
                                          state.velocity[lname][n], sgd.lr, sgd.momentum,
                                          sgd.weight_decay)
            new.params[lname][n], new.velocity[lname][n] = p_new, v_new
            out[f"{lname}:new.{n}"], out[f"{lname}:vel.{n}"] = p_new, v_new
    for bn, f in bn_fp.items():
        b = state.buffers[bn]
        rm, rv = ops.bn_running_update(b["running_mean"], b["running_var"], f["mean"],
                                       f["var"], f["count"], BN_MOMENTUM)
        new.buffers[bn] = {"running_mean": rm.astype(dt), "running_var": rv.astype(dt)}
        out[f"{bn}:new.running_mean"] = new.buffers[bn]["running_mean"]
        out[f"{bn}:new.running_var"] = new.buffers[bn]["running_var"]
    return Result(float(loss), out, new, ld.words)
