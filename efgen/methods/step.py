"""A golden training step with training methods: the plan of one step and its wrapper.

The golden model takes every random decision as an input, so a step is deterministic:
:class:`StepPlan` carries the mini-batch drop flag (SMD), the per-block per-sample skip
masks (SLU) and the per-instance keep mask (EIF). :func:`draw_plan` draws them from a
seed with the configured ratios (and, for EIF, from the filter net's FP), and
:func:`method_step` runs one step:

* SMD (E2-Train, ``main_all.py``): a dropped mini-batch runs no FP, BP or WU. E2-Train's
  code still calls ``optimizer.step()`` after ``zero_grad()`` on a dropped batch, so
  momentum and weight decay still move the weights (PyTorch of 2019 kept zero-filled
  gradients); ``update_on_drop: true`` (the default) does the same: an SGD update with a
  zero gradient. BN running statistics do not change.
* EIF: the main net trains on the kept instances only (its BN statistics are theirs).
* SLU and the per-conv methods happen inside :func:`efgen.golden.model.train_step`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from efgen.frontend.ir import Net
from efgen.golden import ops
from efgen.methods import golden as mg
from efgen.methods.spec import Training, residual_blocks


@dataclass
class StepPlan:
    training: Training
    drop: bool = False
    skip: dict[str, np.ndarray] = field(default_factory=dict)   # block -> bool [B], True: skipped
    keep_instances: np.ndarray | None = None                      # bool [B]

    # ---- SLU --------------------------------------------------------------------------
    def _blocks(self, net: Net):
        if not hasattr(self, "_blk"):
            self._blk = {b.name: b for b in residual_blocks(net)}
        return self._blk

    @property
    def block_of_add(self) -> dict[str, str]:
        return getattr(self, "_adds", {})

    def sub_batches(self, net: Net, batch: int) -> dict[str, np.ndarray]:
        """Branch layer -> the sample rows that run it (only for blocks in ``skip``)."""
        blocks = self._blocks(net)
        self._net = net
        out: dict[str, np.ndarray] = {}
        adds = {}
        for name, mask in self.skip.items():
            b = blocks[name]
            m = np.asarray(mask, dtype=bool)
            if m.shape != (batch,):
                raise ValueError(f"skip mask of block {name}: shape {m.shape}, want ({batch},)")
            idx = np.flatnonzero(~m)
            for layer in b.branch:
                out[layer] = idx
            adds[b.add] = name
        self._adds = adds
        self._idx = {blocks[n].add: out[blocks[n].branch[0]] for n in self.skip}
        return out

    def add_fp(self, layer, acts, sub) -> np.ndarray:
        """The block's add: shortcut for every sample, plus the branch where it ran."""
        b = self._blocks(None)[self._adds[layer.name]]
        idx = self._idx[layer.name]
        y = acts[b.shortcut].copy()
        if idx.size:
            y[idx] = y[idx] + acts[b.branch[-1]]
        return y

    def branch_rows(self, add: str, sub) -> tuple:
        """(rows of operand 0, rows of operand 1) of an add's error: the branch operand
        takes the rows that ran it, the shortcut all (None)."""
        if add not in self.block_of_add:
            return None, None
        b = self._blocks(None)[self._adds[add]]
        idx = self._idx[add]
        first = self._net[add].inputs[0]
        return (idx, None) if first == b.branch[-1] else (None, idx)

    # ---- MobileTL -----------------------------------------------------------------------
    def shift_bn(self, net: Net, name: str) -> bool:
        """True for a batchnorm that trains its shift only (frozen scale and statistics)."""
        if not self.training.shift_only:
            return False
        if not hasattr(self, "_shift"):
            self._shift = self.training.shift_bn_layers(net)
        return name in self._shift

    # ---- per-conv methods ---------------------------------------------------------------
    def changes_conv(self, name: str) -> bool:
        return name in self.training.gf_layers() or name in self.training.emp_layers()

    def conv_backward(self, l, dy, a, p, trace):
        """(grads, dx) of a conv under error-map pruning and/or gradient filtering."""
        t = self.training
        w = p["weight"]
        if l.name in t.emp_layers():
            mask = mg.emp_mask(mg.emp_scores(dy, w, t.error_pruning.weight_norm),
                               t.error_pruning.keep)
            trace[f"{l.name}:emp_mask"] = mask
            dy = mg.apply_channel_mask(dy, mask)
        g, dx = {}, None
        if l.name in t.gf_layers():
            r = t.gradient_filter.r
            if l.trainable:
                g["weight"] = mg.gf_conv_wu(dy, a, r, l.stride, l.kernel)
            if l.runs_bp:
                dx = mg.gf_conv_bp(dy, w, r, l.stride, a.shape[2:])
        else:
            if l.trainable:
                g["weight"] = ops.conv_wu(dy, a, l.stride, l.padding, l.kernel)
            if l.runs_bp:
                dx = ops.conv_bp(dy, w, l.stride, l.padding, a.shape[2:])
        if l.trainable and l.bias:
            g["bias"] = ops.conv_bias_grad(dy)
        return g, dx


def draw_plan(net: Net, training: Training, x: np.ndarray, labels: np.ndarray,
              seed: int = 0, filter_state=None) -> StepPlan:
    """Seeded masks for one step with the configured ratios.

    SMD: drop with probability p. SLU: each sample skips block b with probability
    1 - keep_b. EIF: the filter net (its seeded He init unless ``filter_state``) scores
    every instance by its cross-entropy loss; the top ceil(keep * B) train.
    """
    rng = np.random.default_rng(seed)
    B = x.shape[0]
    plan = StepPlan(training)
    if training.minibatch_drop:
        plan.drop = bool(rng.random() < training.minibatch_drop.p)
    for name, q in training.block_keep().items():
        plan.skip[name] = rng.random(B) >= q
    if training.instance_filter:
        plan.keep_instances = filter_keep(training, x, labels, seed, filter_state)
    return plan


def filter_keep(training: Training, x, labels, seed: int = 0, filter_state=None) -> np.ndarray:
    """EIF: the instances the main net trains on (the filter net's FP on all of them)."""
    from efgen.golden.model import forward, init_state

    f = training.instance_filter
    state = filter_state or init_state(f.net, seed=seed, dtype=x.dtype)
    acts, _, _ = forward(f.net, state, x, None, train=False)
    return rank_instances(acts[f.net.loss_layer.name], labels,
                          mg.emp_kept(len(labels), f.keep))


def rank_instances(prob, labels, k: int) -> np.ndarray:
    """The k instances of highest cross-entropy -log prob[label] (ties by index)."""
    prob = np.asarray(prob).astype(np.float64)
    score = -np.log(np.maximum(prob[np.arange(len(labels)), labels], 1e-30))
    order = np.argsort(-score, kind="stable")
    keep = np.zeros(len(labels), dtype=bool)
    keep[order[:k]] = True
    return keep


def method_step(net: Net, state, x, labels, sgd, plan: StepPlan):
    """One golden step under ``plan``: SMD and EIF here, the rest in ``train_step``."""
    from efgen.golden.model import StepResult, train_step

    t = plan.training
    if plan.drop:
        new = state.copy()
        trace: dict[str, np.ndarray] = {}
        if t.minibatch_drop.update_on_drop:
            for lname, vel in state.velocity.items():
                for n, v in vel.items():
                    if n == "gamma" and plan.shift_bn(net, lname):
                        continue
                    p = state.params[lname][n]
                    p_new, v_new = ops.sgd_update(p, np.zeros_like(p), v, sgd.lr,
                                                  sgd.momentum, sgd.weight_decay)
                    new.params[lname][n], new.velocity[lname][n] = p_new, v_new
                    trace[f"{lname}:new.{n}"] = p_new
                    trace[f"{lname}:vel.{n}"] = v_new
        return StepResult(loss=float("nan"), trace=trace, state=new)
    if plan.keep_instances is not None:
        k = np.asarray(plan.keep_instances, dtype=bool)
        x, labels = x[k], labels[k]
        plan = StepPlan(t, plan.drop, {n: m[k] for n, m in plan.skip.items()}, None)
    return train_step(net, state, x, labels, sgd, plan=plan)


def describe_plan(plan: StepPlan) -> str:
    """One line: what this step's random decisions were."""
    if plan.drop:
        return "mini-batch dropped (no FP/BP/WU" + (
            "; SGD with a zero gradient)" if plan.training.minibatch_drop.update_on_drop
            else "; no update)")
    parts = []
    if plan.keep_instances is not None:
        k = np.asarray(plan.keep_instances)
        parts.append(f"instance filter kept {int(k.sum())} of {k.size}")
    if plan.skip:
        ran = sum(int((~np.asarray(m)).sum()) for m in plan.skip.values())
        tot = sum(np.asarray(m).size for m in plan.skip.values())
        parts.append(f"gated blocks ran {ran} of {tot} block-samples")
    return "; ".join(parts) or "every sample trains"
