"""A numpy interpreter of the accelerator program: runs the same descriptors the C++
kernel runs, on the same DRAM image, with the golden ops.

It checks the *program* (memory map, fusion, error routing, masks, order of passes)
independently of the C++ engines: if the interpreter matches the golden trace and the
C-simulation does not, the bug is in the C++; if both fail, it is in the program.
"""

from __future__ import annotations

import numpy as np

from efgen.golden import ops
from efgen.hls import fused
from efgen.hls.desc import FLAGS, OPS, EfgenDesc
from efgen.layout import FeatureMapLayout, WeightLayout

OP = {v: k for k, v in OPS.items()}


class Interp:
    def __init__(self, mem: np.ndarray, lanes: int, tm: int, tn: int):
        self.mem = mem
        self.fm = FeatureMapLayout("blocked", lanes)
        self.wl = WeightLayout("blocked", tm, tn)

    # ---- DRAM access --------------------------------------------------------------------
    def fm_get(self, addr, shape):
        n = self.fm.size(shape)
        return self.fm.unpack(self.mem[addr:addr + n], shape)

    def fm_put(self, addr, arr):
        flat = self.fm.pack(arr.astype(np.float32))
        self.mem[addr:addr + flat.size] = flat

    def w_get(self, addr, shape):
        n = self.wl.size(shape)
        return self.wl.unpack(self.mem[addr:addr + n], shape)

    def w_put(self, addr, arr):
        flat = self.wl.pack(arr.astype(np.float32))
        self.mem[addr:addr + flat.size] = flat

    def v_get(self, addr, n):
        return self.mem[addr:addr + n].copy()

    def v_put(self, addr, arr):
        self.mem[addr:addr + arr.size] = arr.astype(np.float32)

    # ---- one descriptor -------------------------------------------------------------------
    def run(self, d: EfgenDesc) -> None:
        op = OP[d.op]
        fl = d.flags
        B = d.batch
        xin = (B, d.in_c, d.in_h, d.in_w)
        yout = (B, d.out_c, d.out_h, d.out_w)
        a = [int(v) for v in d.a]
        relu = bool(fl & FLAGS["RELU"])
        mask = bool(fl & FLAGS["MASK"])
        sgd = (float(d.lr), float(d.momentum), float(d.weight_decay))

        def masked(v, src_addr, shape):
            return v * (self.fm_get(src_addr, shape) > 0) if mask else v

        xf = bool(fl & FLAGS["XF"])
        rec = fused.read_record(self.mem, a[7] if op == "CONV_WU" else a[3]) if xf else None

        def loaded(addr, shape):
            """A conv's input stream as its loader delivers it (FLAG_XF: transformed)."""
            x = self.fm_get(addr, shape)
            if rec is None or (rec["LMODE"] == 1 and not (op == "CONV_WU" and rec["MK"])):
                return x                              # LMODE 1 transforms the error
            return fused.load_value(x, rec, lambda ad: self.fm_get(ad, shape), self.v_get)

        if op == "CONV_FP":
            w = self.w_get(a[1], (d.out_c, d.in_c, d.kh, d.kw))
            b = self.v_get(a[2], d.out_c) if fl & FLAGS["BIAS"] else None
            y = ops.conv_fp(loaded(a[0], xin), w, b, d.stride, d.pad)
            y = np.maximum(y, 0) if relu else y
            self.fm_put(a[7], y)
            if rec is not None and fl & FLAGS["STATS"]:
                self.v_put(rec["SSUM"], fused.stats_sums(y, self.v_get(rec["SK"], d.out_c)))
        elif op == "CONV_BP":
            w = self.w_get(a[1], (d.out_c, d.in_c, d.kh, d.kw))
            dz = self.fm_get(a[0], yout)
            if rec is not None and rec["LMODE"] == 1:     # the loads apply the BN's dx
                dz = fused.bndx_value(dz, self.fm_get(rec["LX2"], yout), rec, self.v_get)
            dx = ops.conv_bp(dz, w, d.stride, d.pad, (d.in_h, d.in_w))
            if rec is not None and rec["SE"]:           # another sender's error, in the store
                dx = dx + self.fm_get(rec["SE"], xin)
            if rec is not None and rec["MK"] and mask:
                k = self.v_get(rec["MK"], 4 * d.in_c).reshape(4, d.in_c)
                src = self.fm_get(a[6], xin)
                if rec["SK"]:        # the BN output is stored: plain mask, y at SK for x_hat
                    dx = masked(dx, a[6], xin)
                    src = self.fm_get(rec["SK"], xin)
                else:                # a fused BN's ReLU mask, recomputed
                    dx = dx * (fused.bn_term(src, k) > 0)
                if fl & FLAGS["STATS"]:                   # BN BP sums of this error
                    xhat = (src - k[0][None, :, None, None]) * k[1][None, :, None, None]
                    self.v_put(rec["SSUM"], np.concatenate(
                        [dx.sum(axis=(0, 2, 3)), (dx * xhat).sum(axis=(0, 2, 3))]))
            else:
                dx = masked(dx, a[6], xin)
            self.fm_put(a[7], dx)
        elif op == "CONV_WU":
            shape = (d.out_c, d.in_c, d.kh, d.kw)
            dy, x = self.fm_get(a[0], yout), loaded(a[1], xin)
            if rec is not None and rec["LMODE"] == 1 and rec["MK"]:   # dx constants at MK
                k = {"LK1": rec["MK"], "LK2": rec["MK"] + 4 * d.out_c}
                dy = fused.bndx_value(dy, self.fm_get(rec["SK"], yout), k, self.v_get)
            elif rec is not None and rec["LMODE"] == 1:
                dy = fused.bndx_value(dy, self.fm_get(rec["LX2"], yout), rec, self.v_get)
            g = ops.conv_wu(dy, x, d.stride, d.pad, d.kh)
            if rec is not None:           # the record moved the bias-gradient debug copy
                a[7] = rec["DBG"]
            w, v = ops.sgd_update(self.w_get(a[2], shape), g, self.w_get(a[3], shape), *sgd)
            self.w_put(a[2], w)
            self.w_put(a[3], v)
            if a[6]:
                self.w_put(a[6], g)
            if fl & FLAGS["BIAS"]:
                gb = ops.conv_bias_grad(dy)
                bb, vb = ops.sgd_update(self.v_get(a[4], d.out_c), gb, self.v_get(a[5], d.out_c), *sgd)
                self.v_put(a[4], bb)
                self.v_put(a[5], vb)
                if a[7]:
                    self.v_put(a[7], gb)
        elif op == "BN_FP":
            c = d.in_c
            x = self.fm_get(a[0], xin)
            y, cache = ops.bn_fp_train(x, self.v_get(a[1], c), self.v_get(a[2], c), float(d.eps))
            self.v_put(a[3], np.concatenate([cache["mean"], cache["var"]]))
            count = B * d.in_h * d.in_w
            rm, rv = ops.bn_running_update(self.v_get(a[4], c), self.v_get(a[5], c),
                                           cache["mean"], cache["var"], count,
                                           float(d.bn_momentum))
            self.v_put(a[4], rm)
            self.v_put(a[5], rv)
            self.fm_put(a[7], np.maximum(y, 0) if relu else y)
        elif op == "BN_FIN":
            c, count = d.in_c, B * d.in_h * d.in_w
            blk = self.v_get(a[6], 2 * c)
            k = self.v_get(a[4], c)
            mean, var, invstd = fused.bn_finalise(blk[:c], blk[c:], k, count, float(d.eps))
            gamma, beta = self.v_get(a[1], c), self.v_get(a[2], c)
            self.v_put(a[6] + 2 * c, np.concatenate([mean, invstd, gamma, beta]))
            self.v_put(a[3], np.concatenate([mean, var]))
            rm, rv = ops.bn_running_update(k, self.v_get(a[5], c), mean, var, count,
                                           float(d.bn_momentum))
            self.v_put(a[4], rm)
            self.v_put(a[5], rv)
            if a[7]:
                y = fused.bn_term(self.fm_get(a[0], xin), np.stack([mean, invstd, gamma, beta]))
                if fl & FLAGS["ADDX"]:        # a residual add in the materialisation
                    w = np.asarray(self.mem[a[6] + 8 * c:a[6] + 8 * c + 2], np.float32) \
                        .view(np.uint32).astype(np.int64)
                    y = y + self.fm_get(int(w[0] | (w[1] << 32)), xin)
                self.fm_put(a[7], np.maximum(y, 0) if relu else y)
        elif op == "BN_BP":
            c = d.in_c
            x = self.fm_get(a[1], xin)
            stats = self.v_get(a[2], 2 * c)
            mean, var = stats[:c], stats[c:]
            invstd = (1.0 / np.sqrt(var + np.float32(d.eps))).astype(np.float32)
            cache = {"mean": mean, "var": var, "invstd": invstd,
                     "xhat": ((x - mean[None, :, None, None]) * invstd[None, :, None, None])}
            gamma, beta = self.v_get(a[3], c), self.v_get(a[4], c)
            dy = self.fm_get(a[0], yout)
            dx, dgamma, dbeta = ops.bn_bp(dy, cache, gamma)
            if fl & FLAGS["SUMS"]:        # the sums a BP store accumulated (restructured BN)
                sums = self.v_get(a[2] + 2 * c, 2 * c)
                dbeta, dgamma = sums[:c], sums[c:]
                n = dy.dtype.type(dy.size // c)
                ch = lambda v: v[None, :, None, None]  # noqa: E731
                dx = ch(gamma * invstd / n) * (n * dy - ch(dbeta) - cache["xhat"] * ch(dgamma))
            if fl & FLAGS["DX"]:
                self.fm_put(a[7], dx * (x > 0) if mask else dx)
            elif fl & FLAGS["DXK"]:       # the dx constants a conv's loads apply
                n = np.float32(dy.size // c)
                coef = (gamma * invstd / n).astype(np.float32)
                self.v_put(a[7], np.concatenate([mean, invstd, coef, np.full(c, n, np.float32),
                                                 dbeta, dgamma, np.zeros(2 * c, np.float32)]))
            if fl & FLAGS["TRAIN"]:
                vel = self.v_get(a[5], 2 * c)
                g2, vg = ops.sgd_update(gamma, dgamma, vel[:c], *sgd)
                b2, vb = ops.sgd_update(beta, dbeta, vel[c:], *sgd)
                self.v_put(a[3], g2)
                self.v_put(a[4], b2)
                self.v_put(a[5], np.concatenate([vg, vb]))
                if a[6]:
                    self.v_put(a[6], np.concatenate([dgamma, dbeta]))
        elif op == "RELU_FP":
            self.fm_put(a[7], ops.relu_fp(self.fm_get(a[0], xin)))
        elif op == "RELU_BP":
            dx = ops.relu_bp(self.fm_get(a[0], yout), self.fm_get(a[1], yout))
            self.fm_put(a[7], masked(dx, a[6], yout))        # FLAG_MASK: as the HLS engine
        elif op == "MAXPOOL_FP":
            y, arg = ops.maxpool_fp(self.fm_get(a[0], xin), d.kh, d.stride, d.pad)
            self.fm_put(a[7], y)
            self.fm_put(a[6], arg.astype(np.float32))
        elif op == "MAXPOOL_BP":
            arg = self.fm_get(a[1], yout).astype(np.int64)
            dx = ops.maxpool_bp(self.fm_get(a[0], yout), arg, d.kh, d.stride, d.pad,
                                (d.in_h, d.in_w))
            self.fm_put(a[7], masked(dx, a[6], xin))
        elif op == "AVGPOOL_FP":
            x = self.fm_get(a[0], xin)
            y = (ops.global_avgpool_fp(x) if (d.kh, d.kw) == (d.in_h, d.in_w) and d.kh != d.kw
                 else ops.avgpool_fp(x, d.kh, d.stride, d.pad))
            self.fm_put(a[7], y)
        elif op == "AVGPOOL_BP":
            dy = self.fm_get(a[0], yout)
            dx = (ops.global_avgpool_bp(dy, (d.in_h, d.in_w)) if d.kh != d.kw
                  else ops.avgpool_bp(dy, d.kh, d.stride, d.pad, (d.in_h, d.in_w)))
            self.fm_put(a[7], masked(dx, a[6], xin))
        elif op == "ADD_FP":
            y = self.fm_get(a[0], xin) + self.fm_get(a[1], xin)
            self.fm_put(a[7], np.maximum(y, 0) if relu else y)
        elif op == "ERRSUM":
            total = sum(self.fm_get(a[i], yout) for i in range(d.n_src))
            self.fm_put(a[7], masked(total, a[6], yout))
        elif op == "SHORTCUT_FP":
            self.fm_put(a[7], ops.shortcut_a_fp(self.fm_get(a[0], xin), d.out_c, d.stride))
        elif op == "SHORTCUT_BP":
            dx = ops.shortcut_a_bp(self.fm_get(a[0], yout), d.in_c, d.stride, (d.in_h, d.in_w))
            self.fm_put(a[7], masked(dx, a[6], xin))
        elif op == "FLATTEN_FP":
            x = self.fm_get(a[0], xin)
            self.fm_put(a[7], x.reshape(B, -1, 1, 1))
        elif op == "FLATTEN_BP":
            dy = self.fm_get(a[0], (B, d.in_c * d.in_h * d.in_w, 1, 1))
            self.fm_put(a[7], masked(dy.reshape(xin), a[6], xin))
        elif op.startswith("HOST_"):
            self.host_op(op, d, a, xin, yout, masked)
        else:  # pragma: no cover
            raise AssertionError(op)


    def host_op(self, op, d, a, xin, yout, masked) -> None:
        """The host runtime's ops (hls_kernels/efgen_host_ops.h), with efgen.methods.golden."""
        from efgen.methods import golden as mg

        B, r, s, K = d.batch, d.kh, d.stride, d.kw
        ph, pw = mg.gf_grid(d.out_h, r)[0], mg.gf_grid(d.out_w, r)[0]
        if op == "HOST_GF_XSUM":
            self.fm_put(a[7], mg.gf_sum_input(self.fm_get(a[0], xin), r, s,
                                              (d.out_h, d.out_w)))
        elif op == "HOST_GF_POOL":
            self.fm_put(a[7], mg.gf_pool_error(self.fm_get(a[0], yout), r))
        elif op == "HOST_GF_COPYBACK":
            dxs = self.fm_get(a[0], (B, d.in_c, ph, pw))
            dx = mg.gf_copy_back(dxs, r, s, (d.in_h, d.in_w), (d.out_h, d.out_w))
            self.fm_put(a[7], masked(dx, a[6], xin))
        elif op == "HOST_GF_WSUM":
            w = self.w_get(a[1], (d.out_c, d.in_c, K, K))
            self.w_put(a[7], mg.gf_weight_sum(w)[:, :, None, None])
        elif op == "HOST_GF_TAPSGD":
            g1 = self.w_get(a[0], (d.out_c, d.in_c, 1, 1))
            shape = (d.out_c, d.in_c, K, K)
            self._weight_sgd(d, a, shape, np.broadcast_to(g1, shape).astype(np.float32))
        elif op == "HOST_EMP":
            dy = self.fm_get(a[0], yout)
            w = self.w_get(a[1], (d.out_c, d.in_c, d.kh, d.kw))
            mask = mg.emp_mask(mg.emp_scores(dy, w, float(d.eps)), d.n_src / d.out_c)
            if d.flags & FLAGS["GATHER"]:
                self.fm_put(a[7], dy[:, mask])
                if a[2]:
                    self.w_put(a[2], w[mask])
            else:
                self.fm_put(a[7], mg.apply_channel_mask(dy, mask))
            if a[5]:
                self.v_put(a[5], mask.astype(np.float32))
        elif op == "HOST_SGD0":
            if a[6]:                  # the gradient's debug copy: zero
                self.v_put(a[6], np.zeros(d.in_c + d.out_c, np.float32))
            parts = [(a[2], 0, d.in_c)] + ([(a[4], d.in_c, d.out_c)] if a[4] else [])
            for p, off, n in parts:
                w = self.v_get(p, n)
                v = self.v_get(a[3] + off, n)
                w, v = ops.sgd_update(w, np.zeros_like(w), v, float(d.lr), float(d.momentum),
                                      float(d.weight_decay))
                self.v_put(p, w)
                self.v_put(a[3] + off, v)
        elif op == "HOST_BN_EVAL":
            c = d.in_c
            y = ops.bn_fp_eval(self.fm_get(a[0], xin), self.v_get(a[1], c), self.v_get(a[2], c),
                               self.v_get(a[4], c), self.v_get(a[5], c), float(d.eps))
            self.fm_put(a[7], np.maximum(y, 0) if d.flags & FLAGS["RELU"] else y)
        elif op == "HOST_EIF":
            from efgen.methods.step import rank_instances

            logits = self.fm_get(a[0], (B, d.out_c, 1, 1)).reshape(B, d.out_c)
            labels = self.v_get(a[2], B).astype(np.int64)
            keep = rank_instances(ops.softmax(logits), labels, d.n_src)
            self.v_put(a[5], np.concatenate([keep, labels[keep]]).astype(np.float32))
            self.fm_put(a[3], self.fm_get(a[1], xin)[keep])
        elif op in ("HOST_SLU_GATHER", "HOST_SLU_SCATTER", "HOST_SLU_ADD"):
            run = self.v_get(a[5], B) != 0.0            # efgen.methods.step.StepPlan
            k = int(run.sum())
            sub = (k, d.in_c, d.in_h, d.in_w)
            if op == "HOST_SLU_GATHER":
                if k:
                    self.fm_put(a[7], self.fm_get(a[0], xin)[run])
            elif op == "HOST_SLU_SCATTER":
                full = np.zeros(xin, np.float32)
                if k:
                    full[run] = self.fm_get(a[7], sub)
                self.fm_put(a[7], full)
            else:
                y = self.fm_get(a[1], xin).copy()
                if k:
                    y[run] = y[run] + self.fm_get(a[0], sub)
                self.fm_put(a[7], np.maximum(y, 0) if d.flags & FLAGS["RELU"] else y)
        elif op == "HOST_EMP_SGD":
            shape = (d.out_c, d.in_c, d.kh, d.kw)
            mask = self.v_get(a[1], d.out_c) > 0.5
            g = np.zeros(shape, np.float32)
            g[mask] = self.w_get(a[0], (d.n_src,) + shape[1:])
            self._weight_sgd(d, a, shape, g)
        else:  # pragma: no cover
            raise AssertionError(op)

    def _weight_sgd(self, d, a, shape, g) -> None:
        """SGD of a[2] = W and a[3] = vel with the gradient ``g``; its copy to a[6]."""
        w, v = ops.sgd_update(self.w_get(a[2], shape), g, self.w_get(a[3], shape),
                              float(d.lr), float(d.momentum), float(d.weight_decay))
        self.w_put(a[2], w)
        self.w_put(a[3], v)
        if a[6]:
            self.w_put(a[6], g)


def interp_step(prog, mem: np.ndarray, labels: np.ndarray) -> float:
    """One training step of ``prog`` on ``mem`` with numpy; returns the loss."""
    hw = prog.design.hw
    it = Interp(mem, hw.lanes, hw.tm, hw.tn)
    for s in prog.fp:
        it.run(s.desc)
    B, K = prog.main_batch, prog.net.num_classes
    lr = prog.regions[prog.logits]
    logits = it.fm_get(lr.offset, lr.shape).reshape(B, K)
    loss, dlogits = ops.softmax_ce(logits, labels)
    it.fm_put(prog.regions[prog.dlogits].offset, dlogits.reshape(B, K, 1, 1))
    for s in prog.bp:
        it.run(s.desc)
    return float(loss)
