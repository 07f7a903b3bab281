"""The golden training step: FP over all layers, loss, then BP and WU in reverse.

This is the oracle every generated artefact is compared with. It follows the IR's
training roles exactly (``Layer.trainable``, ``Layer.runs_bp``): a frozen conv skips
WU, a layer whose inputs need no error skips BP, so back-propagation stops at the
lowest trainable layer just as the accelerator's schedule does.

The returned trace is a flat ``{"<layer>:<kind>": ndarray}`` mapping so that a
C-simulation or RTL run can be compared with it tensor by tensor. Kinds:

=================  =========================================================
``y``              the layer's output activation (FP)
``mean``, ``var``  batchnorm batch statistics (biased variance)
``argmax``         maxpool window index of the first maximum
``prob``           softmax probabilities (loss layer); ``loss`` the scalar loss
``dy``             error w.r.t. the layer's output, summed over its consumers
``dx``             error the layer's BP writes for its (first) input
``grad.<p>``       gradient of parameter ``p`` summed over the batch (WU output)
``new.<p>``        parameter or running statistic after the step
``vel.<p>``        SGD momentum buffer after the step
``emp_mask``       error-map pruning: the conv's kept output channels (bool)
=================  =========================================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from efgen.frontend.ir import BN_EPS, BN_MOMENTUM, INPUT, Net
from efgen.golden import ops

Params = dict[str, dict[str, np.ndarray]]


@dataclass(frozen=True)
class SGD:
    """SGD hyper-parameters (PyTorch convention; weight decay on every trained tensor)."""

    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4


@dataclass
class TrainState:
    """Everything a training step reads and updates."""

    params: Params
    buffers: Params       # batchnorm running statistics
    velocity: Params      # SGD momentum, one per trainable parameter

    def copy(self) -> "TrainState":
        cp = lambda d: {k: {n: a.copy() for n, a in v.items()} for k, v in d.items()}  # noqa: E731
        return TrainState(cp(self.params), cp(self.buffers), cp(self.velocity))


@dataclass
class StepResult:
    loss: float
    trace: dict[str, np.ndarray] = field(repr=False)
    state: TrainState = field(repr=False)

    @property
    def by_layer(self) -> dict[str, dict[str, np.ndarray]]:
        """The trace by layer, in execution order: ``{"conv1": {"y": ..., "grad.weight":
        ...}, ...}`` (trace keys are ``"layer:tensor"``)."""
        out: dict[str, dict[str, np.ndarray]] = {}
        for key, value in self.trace.items():
            layer, _, name = key.partition(":")
            out.setdefault(layer, {})[name] = value
        return out


def init_state(net: Net, seed: int = 0, dtype=np.float32) -> TrainState:
    """He-normal weights, zero biases, BN gamma=1/beta=0, running stats (0, 1)."""
    rng = np.random.default_rng(seed)
    params: Params = {}
    buffers: Params = {}
    for layer in net:
        shapes = layer.param_shapes()
        if not shapes:
            continue
        p = {}
        for name, shape in shapes.items():
            if name == "weight":
                fan_in = math.prod(shape[1:])
                p[name] = (rng.standard_normal(shape) * math.sqrt(2.0 / fan_in)).astype(dtype)
            elif name == "gamma":
                p[name] = np.ones(shape, dtype)
            else:
                p[name] = np.zeros(shape, dtype)
        params[layer.name] = p
        if layer.buffer_shapes():
            c = layer.in_shape[0]
            buffers[layer.name] = {"running_mean": np.zeros(c, dtype),
                                   "running_var": np.ones(c, dtype)}
    velocity = {l.name: {n: np.zeros_like(a) for n, a in params[l.name].items()}
                for l in net if l.trainable}
    return TrainState(params, buffers, velocity)


def cast_state(state: TrainState, dtype) -> TrainState:
    c = lambda d: {k: {n: a.astype(dtype) for n, a in v.items()} for k, v in d.items()}  # noqa: E731
    return TrainState(c(state.params), c(state.buffers), c(state.velocity))


def synthetic_batch(net: Net, batch: int, seed: int = 0, dtype=np.float32):
    """Seeded standard-normal images and uniform labels: (x [B,C,H,W], labels [B])."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, *net.input_shape)).astype(dtype)
    labels = rng.integers(0, net.num_classes, size=batch)
    return x, labels


def forward(net: Net, state: TrainState, x: np.ndarray, labels: np.ndarray | None = None,
            train: bool = True, plan=None):
    """Run FP. Returns (acts, caches, trace); ``acts[name]`` is each layer's output.

    With ``train=False`` batchnorm uses its running statistics (inference mode) and the
    loss layer is skipped if ``labels`` is None. ``plan`` (an
    :class:`efgen.methods.step.StepPlan`) skips residual blocks per sample (selective
    layer update): a skipped block's branch runs on the samples that keep it only (its
    batchnorm statistics are theirs), and the block's add passes the shortcut through
    for the others.
    """
    acts: dict[str, np.ndarray] = {INPUT: x}
    caches: dict[str, object] = {}
    trace: dict[str, np.ndarray] = {}
    sub = plan.sub_batches(net, x.shape[0]) if plan is not None else {}
    for l in net:
        if l.name in sub and sub[l.name] is not None and sub[l.name].size == 0:
            continue                      # a branch layer no sample runs
        if l.name in sub:
            xs = [acts[i] if sub.get(i) is not None else acts[i][sub[l.name]]
                  for i in l.inputs]
        elif plan is not None and l.name in plan.block_of_add:
            xs = [acts.get(i) for i in l.inputs]    # a branch may not have run
        else:
            xs = [acts[i] for i in l.inputs]
        a = xs[0]
        p = state.params.get(l.name, {})
        if l.op == "conv":
            y = ops.conv_fp(a, p["weight"], p.get("bias"), l.stride, l.padding)
        elif l.op == "linear":
            y = ops.linear_fp(a, p["weight"], p.get("bias"))
        elif l.op == "batchnorm" and train and plan is not None and plan.shift_bn(net, l.name):
            b = state.buffers[l.name]      # MobileTL: frozen global statistics
            y = ops.bn_fp_eval(a, p["gamma"], p["beta"], b["running_mean"],
                               b["running_var"], BN_EPS)
            caches[l.name] = {"invstd": (1 / np.sqrt(b["running_var"] + a.dtype.type(BN_EPS))
                                         ).astype(a.dtype)}
        elif l.op == "batchnorm":
            if train:
                y, cache = ops.bn_fp_train(a, p["gamma"], p["beta"], BN_EPS)
                caches[l.name] = cache
                trace[f"{l.name}:mean"] = cache["mean"]
                trace[f"{l.name}:var"] = cache["var"]
            else:
                b = state.buffers[l.name]
                y = ops.bn_fp_eval(a, p["gamma"], p["beta"], b["running_mean"],
                                   b["running_var"], BN_EPS)
        elif l.op == "relu":
            y = ops.relu_fp(a)
        elif l.op == "maxpool":
            y, arg = ops.maxpool_fp(a, l.kernel, l.stride, l.padding)
            caches[l.name] = arg
            trace[f"{l.name}:argmax"] = arg
        elif l.op == "avgpool":
            y = (ops.global_avgpool_fp(a) if l.global_pool
                 else ops.avgpool_fp(a, l.kernel, l.stride, l.padding))
        elif l.op == "add" and plan is not None and l.name in plan.block_of_add:
            y = plan.add_fp(l, acts, sub)
        elif l.op == "add":
            y = ops.add_fp(xs[0], xs[1])
        elif l.op == "shortcut_a":
            y = ops.shortcut_a_fp(a, l.channels, l.stride)
        elif l.op == "flatten":
            y = a.reshape(a.shape[0], -1)
        elif l.op == "softmax_ce":
            if labels is None:
                acts[l.name] = ops.softmax(a)
                continue
            loss, dlogits = ops.softmax_ce(a, labels)
            caches[l.name] = dlogits
            trace[f"{l.name}:prob"] = ops.softmax(a)
            trace[f"{l.name}:loss"] = np.asarray(loss)
            acts[l.name] = np.asarray(loss)
            continue
        else:  # pragma: no cover - the IR admits no other op
            raise AssertionError(l.op)
        acts[l.name] = y
        trace[f"{l.name}:y"] = y
    return acts, caches, trace


def train_step(net: Net, state: TrainState, x: np.ndarray, labels: np.ndarray,
               sgd: SGD = SGD(), plan=None) -> StepResult:
    """One SGD step on batch ``(x, labels)``; ``state`` is not modified.

    ``plan`` (an :class:`efgen.methods.step.StepPlan`) applies the training methods that
    change the step's arithmetic: gradient filtering and error-map pruning on their
    convs, BN shift-only, and per-sample block skipping (see :mod:`efgen.methods`);
    mini-batch dropping and instance filtering wrap this function
    (:func:`efgen.methods.step.method_step`).
    """
    acts, caches, trace = forward(net, state, x, labels, train=True, plan=plan)
    dtype = x.dtype
    errors: dict[str, np.ndarray] = {}
    grads: Params = {}
    sub = plan.sub_batches(net, x.shape[0]) if plan is not None else {}

    def send(tensor: str, err: np.ndarray, idx=None) -> None:
        # Fan-out: a tensor read by several layers receives the sum of their errors.
        if tensor == INPUT:
            return
        if idx is not None and sub.get(tensor) is None:   # a branch's error, scattered
            full = np.zeros((x.shape[0],) + err.shape[1:], err.dtype)
            full[idx] = err
            err = full
        errors[tensor] = err if tensor not in errors else errors[tensor] + err

    for l in reversed(net.layers):
        if not l.needs_error:
            continue
        if sub.get(l.name) is not None and sub[l.name].size == 0:
            if l.trainable:       # no sample ran it: a zero gradient (SGD still steps)
                grads[l.name] = {n: np.zeros(s, dtype) for n, s in l.param_shapes().items()
                                 if not (plan.shift_bn(net, l.name) and n == "gamma")}
                for n, v in grads[l.name].items():
                    trace[f"{l.name}:grad.{n}"] = v
            continue
        if l.op == "softmax_ce":
            send(l.inputs[0], caches[l.name])
            trace[f"{l.name}:dx"] = caches[l.name]
            continue
        dy = errors.pop(l.name)
        trace[f"{l.name}:dy"] = dy
        a = acts.get(l.inputs[0])
        p = state.params.get(l.name, {})
        g: dict[str, np.ndarray] = {}
        dx = None
        if l.name in sub and sub[l.name] is not None:
            a = acts[l.inputs[0]] if sub.get(l.inputs[0]) is not None \
                else acts[l.inputs[0]][sub[l.name]]
        if l.op == "conv" and plan is not None and plan.changes_conv(l.name):
            g, dx = plan.conv_backward(l, dy, a, p, trace)
        elif l.op == "conv":
            if l.trainable:
                g["weight"] = ops.conv_wu(dy, a, l.stride, l.padding, l.kernel)
                if l.bias:
                    g["bias"] = ops.conv_bias_grad(dy)
            if l.runs_bp:
                dx = ops.conv_bp(dy, p["weight"], l.stride, l.padding, a.shape[2:])
        elif l.op == "linear":
            if l.trainable:
                g["weight"] = ops.linear_wu(dy, a)
                if l.bias:
                    g["bias"] = dy.sum(axis=0)
            if l.runs_bp:
                dx = ops.linear_bp(dy, p["weight"])
        elif l.op == "batchnorm" and plan is not None and plan.shift_bn(net, l.name):
            from efgen.methods.golden import bn_shift_bp

            dx, dbeta = bn_shift_bp(dy, caches[l.name], p["gamma"])
            if l.trainable:
                g["beta"] = dbeta
            dx = dx if l.runs_bp else None
        elif l.op == "batchnorm":
            bdx, dgamma, dbeta = ops.bn_bp(dy, caches[l.name], p["gamma"])
            if l.trainable:
                g["gamma"], g["beta"] = dgamma, dbeta
            dx = bdx if l.runs_bp else None
        elif l.op == "relu":
            dx = ops.relu_bp(dy, acts[l.name])
        elif l.op == "maxpool":
            dx = ops.maxpool_bp(dy, caches[l.name], l.kernel, l.stride, l.padding, a.shape[2:])
        elif l.op == "avgpool":
            dx = (ops.global_avgpool_bp(dy, a.shape[2:]) if l.global_pool
                  else ops.avgpool_bp(dy, l.kernel, l.stride, l.padding, a.shape[2:]))
        elif l.op == "add":
            d0, d1 = ops.add_bp(dy)
            trace[f"{l.name}:dx"] = d0
            idx = plan.branch_rows(l.name, sub) if plan is not None else (None, None)
            for i, d, rows in ((0, d0, idx[0]), (1, d1, idx[1])):
                if not l.inputs_need_error[i] or (rows is not None and rows.size == 0):
                    continue
                send(l.inputs[i], d if rows is None else d[rows])
        elif l.op == "shortcut_a":
            dx = ops.shortcut_a_bp(dy, a.shape[1], l.stride, a.shape[2:])
        elif l.op == "flatten":
            dx = dy.reshape(a.shape)
        if dx is not None and l.runs_bp:
            trace[f"{l.name}:dx"] = dx
            send(l.inputs[0], dx, sub.get(l.name))
        if g:
            grads[l.name] = g
            for n, v in g.items():
                trace[f"{l.name}:grad.{n}"] = v

    new = state.copy()
    for lname, g in grads.items():
        for n, grad in g.items():
            p_new, v_new = ops.sgd_update(state.params[lname][n], grad,
                                          state.velocity[lname][n], sgd.lr, sgd.momentum,
                                          sgd.weight_decay)
            new.params[lname][n] = p_new
            new.velocity[lname][n] = v_new
            trace[f"{lname}:new.{n}"] = p_new
            trace[f"{lname}:vel.{n}"] = v_new
    for l in net:
        if l.op == "batchnorm":
            if "mean" not in caches.get(l.name, {}):  # no sample ran it, or frozen statistics
                continue
            cache = caches[l.name]
            b = state.buffers[l.name]
            count = cache["count"]
            rm, rv = ops.bn_running_update(b["running_mean"], b["running_var"],
                                           cache["mean"], cache["var"], count, BN_MOMENTUM)
            new.buffers[l.name] = {"running_mean": rm.astype(dtype),
                                   "running_var": rv.astype(dtype)}
            trace[f"{l.name}:new.running_mean"] = new.buffers[l.name]["running_mean"]
            trace[f"{l.name}:new.running_var"] = new.buffers[l.name]["running_var"]
    loss = float(trace[f"{net.loss_layer.name}:loss"])
    return StepResult(loss=loss, trace=trace, state=new)


def grad_norms(net: Net, trace: dict[str, np.ndarray]) -> dict[str, float]:
    """L2 norm of each trained layer's gradients (all its parameters together)."""
    out = {}
    for l in net:
        keys = [k for k in trace if k.startswith(f"{l.name}:grad.")]
        if keys:
            out[l.name] = float(math.sqrt(sum(float(np.sum(trace[k].astype(np.float64) ** 2))
                                              for k in keys)))
    return out
