"""Descriptors of the training methods that change the datapath: gradient filtering and
error-map pruning (efgen/methods), for :func:`efgen.hls.program.build_program`.

A gradient-filtered conv l (Cin -> Cout, K x K, stride s, output Ho x Wo, patch r, P =
ceil(Ho/r) x ceil(Wo/r) patches) becomes:

* FP: its CONV_FP, then HOST_GF_XSUM (x summed over (r*s)^2 input patches, kept for WU);
* BP: HOST_GF_POOL (the error averaged over r x r patches), HOST_GF_WSUM (W summed over
  its taps, from the weights before this step's update), CONV_BP as a 1x1 convolution
  on the pooled maps (the engine, tiled by the schedule's 1x1 job), HOST_GF_COPYBACK
  (the pooled input error over its patches, with the ReLU mask where the sender applies
  one);
* WU: CONV_WU as a 1x1 convolution of the pooled error with the patch sums into a
  scratch 1 x 1 weight with lr = momentum = weight decay = 0 (its debug copy is the
  gradient), then HOST_GF_TAPSGD: SGD of every K x K tap with that gradient.

Error-map pruning adds HOST_EMP before the conv's BP: the channel scores and the top
ceil(keep * Cout); the channel list is kept as a 0/1 vector (traced as
``<conv>:emp_mask``). For a gathered conv (efgen.methods.cost.emp_gathered: no gradient
filtering, no bias) HOST_EMP (flag GATHER) writes the kept channels' error and filters
into compact tensors, CONV_BP and CONV_WU run on the kept channels only (the
schedule's jobs), WU writes the kept filters' gradient into scratch weights, and
HOST_EMP_SGD updates every filter (a zero gradient for the pruned ones). Otherwise
HOST_EMP writes the error with the pruned channels zeroed, which BP and WU (and gradient
filtering's pooling) read on every channel.

The HOST_* ops run in the generated host runtime (hls_kernels/efgen_host_ops.h), not on
the kernel's vector engine; the cost model prices them as vector-engine passes.
"""

from __future__ import annotations

from efgen.errors import EfgenError
from efgen.frontend.ir import Layer
from efgen.hls.regions import Step, Trace, _fm4
from efgen.methods.cost import emp_gathered
from efgen.methods.golden import emp_kept, gf_grid
from efgen.methods.spec import from_doc

#: Methods whose step the generated C++ runs (the others are host-level control, or not
#: implemented in the code generators).
SUPPORTED = ("gradient_filter", "error_pruning", "minibatch_drop", "instance_filter",
             "layer_update")


def runs_in_cpp(doc: dict) -> bool:
    """True when the generated C++ runs every method of a ``training:`` document (SLU
    and EIF are not combined: efgen.hls.slu)."""
    return (all(k in SUPPORTED for k in doc)
            and not ("layer_update" in doc and "instance_filter" in doc))


def training_of(net, design):
    """The Design's training methods for the program, or None; refuses what the generated
    C++ does not implement."""
    t = from_doc(design.training, net) if design.training else None
    if t is None:
        return None
    other = [m for m in t.methods if m not in SUPPORTED]
    if other:
        raise EfgenError(f"the generated C++ does not implement {', '.join(other)}",
                         where="training",
                         fix="the code generators run gradient_filter, error_pruning, "
                             "minibatch_drop, instance_filter and layer_update; "
                             "the others are priced by the model and run in the golden "
                             "model (efgen golden --training)")
    if t.layer_update and t.instance_filter:
        raise EfgenError("selective layer update with instance filtering is not in the "
                         "generated C++", where="training.layer_update",
                         fix="use one of layer_update and instance_filter (efgen.hls.slu)")
    for name in t.gf_layers():
        if net[name].bias:
            raise EfgenError(f"gradient filtering of '{name}', a conv with a bias, is not in "
                             "the generated C++", where=f"training.gradient_filter ({name})",
                             fix="filter convs without bias (BN follows them)")
    return t


def _pooled(l: Layer, r: int) -> tuple[int, int]:
    return gf_grid(l.out_shape[1], r)[0], gf_grid(l.out_shape[2], r)[0]


def method_regions(b) -> None:
    """The scratch regions of the filtered and pruned convs."""
    t, B = b.training, b.B
    for name in sorted(t.gf_layers()):
        l = b.net[name]
        ph, pw = _pooled(l, t.gradient_filter.r)
        n, m = l.in_shape[0], l.channels
        b.add(f"gf_g:{name}", "fm", (B, m, ph, pw))
        if l.trainable:
            b.add(f"gf_xsum:{name}", "fm", (B, n, ph, pw))
            b.add(f"gf_w1:{name}", "weight", (m, n, 1, 1))
            b.add(f"gf_v1:{name}", "weight", (m, n, 1, 1))
            b.add(f"gf_dw:{name}", "weight", (m, n, 1, 1))
        if l.runs_bp:
            b.add(f"gf_wsum:{name}", "weight", (m, n, 1, 1))
            b.add(f"gf_dxs:{name}", "fm", (B, n, ph, pw))
    gathered = emp_gathered(b.net, t)
    for name in sorted(t.emp_layers()):
        l = b.net[name]
        if name in gathered:
            kept = emp_kept(l.channels, t.error_pruning.keep)
            b.add(f"emp_dy:{name}", "fm", (B, kept) + tuple(_fm4(l.out_shape, B)[2:]))
            wc = (kept, l.in_shape[0], l.kernel, l.kernel)
            if l.runs_bp:
                b.add(f"emp_w:{name}", "weight", wc)
            if l.trainable:
                b.add(f"emp_w1:{name}", "weight", wc)
                b.add(f"emp_v1:{name}", "weight", wc)
                b.add(f"emp_dw:{name}", "weight", wc)
        else:
            b.add(f"emp_dy:{name}", "fm", _fm4(l.out_shape, B))
        b.add(f"emp_mask:{name}", "vec", (l.channels,),
              [Trace(f"{name}:emp_mask", (l.channels,))])


def fp_steps(b, l: Layer, x: str) -> None:
    """After a filtered conv's CONV_FP: its input patch sums (for WU)."""
    t = b.training
    if t is None or l.name not in t.gf_layers() or not l.trainable:
        return
    d = b.desc("HOST_GF_XSUM", l, [], {0: x, 7: f"gf_xsum:{l.name}"},
               kh=t.gradient_filter.r)
    b.fp.append(Step(l.name, "gf_xsum", d))


def handles(b, l: Layer) -> bool:
    t = b.training
    return t is not None and l.op == "conv" and (l.name in t.gf_layers()
                                                 or l.name in t.emp_layers())


def bp_steps(b, l: Layer, dy: str) -> None:
    """BP and WU of a filtered and/or pruned conv (see the module docstring)."""
    t, name = b.training, l.name
    if name in t.emp_layers():
        kept = emp_kept(l.channels, t.error_pruning.keep)
        if name in emp_gathered(b.net, t):
            return _emp_gathered_steps(b, l, dy, kept)
        d = b.desc("HOST_EMP", l, [], {0: dy, 1: f"w:{name}", 5: f"emp_mask:{name}",
                                       7: f"emp_dy:{name}"}, n_src=kept)
        d.eps = t.error_pruning.weight_norm
        b.bp.append(Step(name, "emp", d))
        dy = f"emp_dy:{name}"
    if name not in t.gf_layers():
        b.conv_bp_wu(l, dy)
        return
    r = t.gradient_filter.r
    ph, pw = _pooled(l, r)
    g = f"gf_g:{name}"
    b.bp.append(Step(name, "gf_pool", b.desc("HOST_GF_POOL", l, [], {0: dy, 7: g}, kh=r)))
    one = dict(in_h=ph, in_w=pw, out_h=ph, out_w=pw, kh=1, kw=1, stride=1, pad=0)
    if l.runs_bp:
        b.bp.append(Step(name, "gf_wsum", b.desc("HOST_GF_WSUM", l, [],
                                                 {1: f"w:{name}", 7: f"gf_wsum:{name}"})))
        dxs = f"gf_dxs:{name}"
        b.bp.append(Step(name, "bp", b.desc("CONV_BP", l, [], {0: g, 1: f"gf_wsum:{name}",
                                                              7: dxs},
                                            **one, **b.tiling(l, "bp"))))
        dst, fl, extra = b.sender_dst(l, l.inputs[0])
        b.bp.append(Step(name, "gf_copyback", b.desc("HOST_GF_COPYBACK", l, fl,
                                                     {0: dxs, 7: dst, **extra}, kh=r)))
    if l.trainable:
        d = b.desc("CONV_WU", l, [], {0: g, 1: f"gf_xsum:{name}", 2: f"gf_w1:{name}",
                                      3: f"gf_v1:{name}", 6: f"gf_dw:{name}"},
                   **one, **b.tiling(l, "wu"))
        d.lr = d.momentum = d.weight_decay = 0.0      # the gradient only (its debug copy)
        b.bp.append(Step(name, "wu", d))
        a = {0: f"gf_dw:{name}", 2: f"w:{name}", 3: f"vel:{name}.weight"}
        if b.debug_grads:
            a[6] = f"grad:{name}.weight"
        b.bp.append(Step(name, "gf_tapsgd", b.desc("HOST_GF_TAPSGD", l, [], a)))


def _emp_gathered_steps(b, l: Layer, dy: str, kept: int) -> None:
    """Error-map pruning with the kept channels gathered (efgen.methods.cost.emp_gathered):
    HOST_EMP (GATHER) writes the kept channels' error and filters compactly; CONV_BP and
    CONV_WU run on ``kept`` output channels (the schedule's jobs); WU writes only the
    gradient (into scratch weights, lr = momentum = weight decay = 0, as gradient
    filtering's WU does), and HOST_EMP_SGD updates every filter with it, the pruned ones
    with a zero gradient."""
    t, name = b.training, l.name
    a = {0: dy, 1: f"w:{name}", 5: f"emp_mask:{name}", 7: f"emp_dy:{name}"}
    if l.runs_bp:
        a[2] = f"emp_w:{name}"
    d = b.desc("HOST_EMP", l, ["GATHER"], a, n_src=kept)
    d.eps = t.error_pruning.weight_norm
    b.bp.append(Step(name, "emp", d))
    g = f"emp_dy:{name}"
    if l.runs_bp:
        dst, fl, extra = b.sender_dst(l, l.inputs[0])
        b.bp.append(Step(name, "bp", b.desc("CONV_BP", l, fl, {0: g, 1: f"emp_w:{name}",
                                                               7: dst, **extra},
                                            out_c=kept, **b.tiling(l, "bp"))))
    if l.trainable:
        d = b.desc("CONV_WU", l, [], {0: g, 1: f"act:{b.dram(l.inputs[0])}",
                                      2: f"emp_w1:{name}", 3: f"emp_v1:{name}",
                                      6: f"emp_dw:{name}"},
                   out_c=kept, **b.tiling(l, "wu"))
        d.lr = d.momentum = d.weight_decay = 0.0      # the gradient only (its debug copy)
        b.bp.append(Step(name, "wu", d))
        a = {0: f"emp_dw:{name}", 1: f"emp_mask:{name}", 2: f"w:{name}",
             3: f"vel:{name}.weight"}
        if b.debug_grads:
            a[6] = f"grad:{name}.weight"
        b.bp.append(Step(name, "emp_sgd", b.desc("HOST_EMP_SGD", l, [], a, n_src=kept)))


def drop_steps(b) -> None:
    """SMD: what the host runs for a dropped mini-batch instead of the step (no FP, BP or
    WU). With ``update_on_drop`` (E2-Train's behaviour, the default) that is the SGD update
    with a zero gradient of every trainable parameter: one HOST_SGD0 per weight, per bias
    and per batchnorm (gamma and beta with their shared momentum region); without it,
    nothing. The host decides which batches drop (efgen.methods.step.draw_plan in
    C-simulation; the caller's random draw on the board) and calls
    ``efgen_step_dropped`` for them (efgen_host.cpp)."""
    t = b.training
    if t is None or not t.minibatch_drop or not t.minibatch_drop.update_on_drop:
        return
    regions = b.regions
    for l in b.net:
        if not l.trainable:
            continue
        if l.op in ("conv", "linear"):
            parts = [(f"w:{l.name}", f"vel:{l.name}.weight")]
            if l.bias:
                parts.append((f"b:{l.name}", f"vel:{l.name}.bias"))
            for p, v in parts:
                d = b.desc("HOST_SGD0", l, [], {2: p, 3: v}, in_c=regions[p].words, out_c=0)
                b.drop.append(Step(l.name, "sgd0", d))
        elif l.op == "batchnorm":
            c = l.in_shape[0]
            d = b.desc("HOST_SGD0", l, [], {2: f"gamma:{l.name}", 3: f"vel:{l.name}",
                                            4: f"beta:{l.name}"}, in_c=c, out_c=c)
            b.drop.append(Step(l.name, "sgd0", d))
