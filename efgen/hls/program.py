"""The accelerator program of one training step: the DRAM memory map and the list of
layer-phase descriptors, derived from the net and its Design.

Everything the generated host runtime does is here, stated once in Python:

* every tensor of the step gets a DRAM region (feature maps and errors in the blocked
  layout with lane block T = gcd(Tm, Tn), weights and their momentum in the (Tm, Tn)
  blocked weight layout, vectors plain), aligned to 4 KiB so no burst crosses an AXI
  4 KiB boundary;
* a fused ReLU (efgen.model.fusion) has no region of its own: its producer stores the clamped
  value into the ReLU's region, and the ReLU mask is applied in BP by the single sender's
  store or by an error-sum pass;
* ``add`` needs no BP pass: both operands read the add's error region; a flatten of a
  1x1 map is free in both directions (the region is shared);
* FP descriptors in layer order, then softmax cross-entropy on the host (logits ->
  dlogits), then BP descriptors in reverse layer order: for each layer, its output
  error is finalised (summed from several senders and/or masked) before its BP, BP
  before WU (WU updates the weights in place).

Each region lists the golden-trace tensors it holds at the end of the step, so the
C-simulation compares tensor by tensor with :func:`efgen.golden.model.train_step`.

Restructured batchnorm (``--fuse``, efgen/model/restructure.py; the numpy spec of every
load and store is efgen/golden/restructured.py). The EfgenDesc struct is unchanged: a
fused transform is named by new flag bits, and its parameters sit in a per-descriptor
*side record* in DRAM whose word address is in an address slot the op leaves unused:

* ``FLAG_XF`` (64): the conv engine reads the side record at ``a[3]`` (CONV_FP,
  CONV_BP) or ``a[7]`` (CONV_WU; the bias-gradient debug copy that slot held moves
  into the record's ``DBG`` field). Unfused descriptors never set it, so their bytes
  and their behaviour are those of the unfused step.
* ``FLAG_STATS`` (128, with FLAG_XF): the store accumulates per-channel sums and writes
  them once per weight chunk (a chunk covers all images and tiles of its channels) to
  the record's ``SSUM`` (C words each). CONV_FP: sum(y - k) and sum((y - k)^2) (k: the
  running mean before the step, a shift that keeps the one-pass variance from
  cancelling). CONV_BP (with FLAG_MASK and ``MK``): BN BP's sum(dy) and sum(dy*x_hat)
  of the error it finalises, x_hat = (y - mean)*invstd from the mask source y it reads
  anyway.
* ``FLAG_SUMS`` (256, BN_BP): sum(dy), sum(dy*x_hat) are read from a[2] + 2C (a fused
  BN's stats region is 4C words: mean, var, then the sums a BP store wrote) instead of
  BN_BP's sums pass.

The side record (:data:`XF_WORDS` = 16 words; an address is an int64 word address as two
32-bit words, low first, bit patterns in the float image; 0 = none):

====== ========== ==================================================================
words  field      meaning
====== ========== ==================================================================
0-1    ``LK1``    the load stream's first term (the tile the engine reads from a[0]
                  in FP / a[1] in WU): the BN constants block of its batchnorm; 0 =
                  the term is the plain tensor
2-3    ``LX2``    a second operand (same shape and layout as the first), read in the
                  tile's loop on gmem2's read channel, in parallel with the tile on
                  gmem0 (as the model prices it: efgen/model/engine.py); 0 = none
4-5    ``LK2``    the second term's BN constants block; 0 = plain
6      ``LRELU``  1: the loaded value is clamped at 0 (a fused ReLU), as int bits
7      ``LMODE``  0: the affine terms above (FP input, WU input); 1: BN BP dx of the
                  error stream (CONV_BP's input dz, CONV_WU's error tiles; WU's x
                  stays plain): coef*((n*dz - sdy) - x_hat*sdyx), x_hat = (y -
                  mean)*invstd, y read at LX2 (the BN's input), LK1 -> mean, invstd,
                  coef, n and LK2 -> sdy, sdyx (C words each: the block BN_BP writes
                  to a[7] with FLAG_DXK (512) instead of FLAG_DX); not with FLAG_BIAS
                  on WU. CONV_WU with MK != 0: the dx block is at MK, y at SK, and
                  LK1/LX2/LK2/LRELU transform WU's input tiles as in FP (a conv that
                  reads a fused input)
8-9    ``SK``     CONV_FP FLAG_STATS: k, the shift (C words: the BN's running mean);
                  CONV_BP FLAG_STATS: the BN's input y (a stored tensor shaped as dx)
                  whose x_hat the BP sums use, read before each lane block's store
                  like SE; the mask is then the plain a[6] > 0 and MK holds the BN's
                  mean, invstd (the BN output is stored); CONV_WU LMODE 1: y
10-11  ``SSUM``   FLAG_STATS: sum(y - k)[C] then sum((y - k)^2)[C], overwritten
12-13  ``DBG``    CONV_WU: the bias-gradient debug copy (what a[7] holds unfused)
12-13  ``SE``     CONV_BP (the same words): another sender's error (same shape and
                  layout as dx), read before each lane block's store into an on-chip
                  tile and added to dx before the mask: the final error of a tensor
                  with two senders, written by the last sender's store (no ERRSUM)
14-15  ``MK``     CONV_BP with FLAG_MASK (SK = 0): the mask source a[6] is a fused BN's
                  input y and the mask is bn(y) > 0 with this BN constants block (the
                  ReLU mask recomputed; the BN output is never stored); with SK: the
                  constants of the BP sums' x_hat; CONV_WU LMODE 1: the dx block
====== ========== ==================================================================

A loaded term is ``gamma*((y - mean)*invstd) + beta`` per channel (the golden's order,
no folded constants, so nothing cancels when |mean| >> std), the value loaded is
``relu?(term1 + term2)``; positions outside the map and channels >= C load +0 as before.

A batchnorm's *constants block* ``bnk:<bn>`` is one vec region of 8*C words:
``s1 | s2 | mean | invstd | gamma | beta | sdy | sdyx`` (C words each): the producing
conv's FP store writes s1, s2 (its SSUM = the block); ``BN_FIN`` (op 12, vector engine:
a[6] = the block, a[1] = gamma, a[2] = beta, a[3] = stats (mean, biased var: the golden
trace), a[4] = running mean (also the stats' k), a[5] = running var, updated in place)
turns them into mean = k + s1/n, var = s2/n - (s1/n)^2, invstd = 1/sqrt(var + eps) and
copies gamma and beta in (so a later SGD of gamma cannot change what a load applies);
with a[7] != 0 it also materialises y = relu?(bn(a[0])) (a group the plan materialises,
or one a vector pass reads).
Every consumer's LK points at ``bnk + 2*C`` (mean, invstd, gamma, beta: 4*C words).

``FLAG_ADDX`` (1024, BN_FIN with a[7]): the materialised value is relu?(bn(a[0]) + x2), a
residual add after the BN (its only consumer; the add's other operand x2 is stored; a
BN_FIN whose x2 comes later in the net is placed just after it) in the same pass, x2
read on gmem1 beside a[0]; x2's word address is
the int64 in the two words after the constants block (``bnk`` is then 8*C + 2 words).
The BN output is never stored and the add has no ADD_FP pass.

A CONV_BP record holds MK and SSUM, or an LMODE 1 load, and optionally SE; anything
else (an affine load in BP, BP sums without MK, LMODE 1 with a bias on WU, a DBG/SE
field on CONV_FP) is refused: the engine checks the record before it writes anything.
The second load stream (the second operand, or y for LMODE 1) is read in the tile's
loop on gmem2's read channel, as the model prices it. Planned, not built yet (the next
increments): residual adds and two-source groups in the consumers' loads (BN_FIN with
FLAG_ADDX materialises them once), error sums of three or more senders or finalised by
a vector pass, the BN BP dx of a conv with a bias, the BN transform in the vector
passes' loads, and an add without a BN operand (it keeps its ADD_FP pass).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from efgen.design import Design
from efgen.frontend.ir import BN_EPS, BN_MOMENTUM, INPUT, Layer, Net
from efgen.hls.desc import FLAGS, OPS, EfgenDesc, make_desc
from efgen.hls.regions import Region, Step, Trace, _fm4
from efgen.layout import FeatureMapLayout, WeightLayout
from efgen.model.fusion import bp_store_masks, error_senders, fused_relus

ALIGN = 1024  # words = 4 KiB


@dataclass
class Program:
    net: Net
    design: Design
    regions: dict[str, Region]
    fp: list[Step]
    bp: list[Step]
    logits: str                     # region names around the host loss
    dlogits: str
    words: int                      # DRAM image size
    not_in_dram: list[str]          # golden tensors a fused design never materialises
    sgd: tuple[float, float, float]
    # The update of a dropped mini-batch (SMD): the host runs these instead of the step.
    drop: list[Step] = field(default_factory=list)
    # A fused design: what the C++ fuses, against the plan (efgen.hls.fused.Fusion.summary).
    fusion: dict | None = None
    # EIF: the filter net's FP and the host's instance selection, before the step
    # (efgen.hls.eif); the main net's batch is then the kept ceil(keep * B).
    filter: list[Step] = field(default_factory=list)
    batch: int = 0
    # SLU: the gated blocks' run flags, compact traces and k = 0 updates (efgen.hls.slu).
    slu: object = None

    @property
    def main_batch(self) -> int:
        return self.batch or self.design.batch

    def region(self, name: str) -> Region:
        return self.regions[name]


def build_program(net: Net, design: Design, lr: float = 0.01, momentum: float = 0.9,
                  weight_decay: float = 5e-4, debug_grads: bool = True) -> Program:
    """The memory map and descriptors of one training step of ``net`` on ``design``.

    Named stages, in order (each a method of :class:`_Builder`): the memory map
    (activations, parameters and their state), the FP descriptors, the loss (the host's
    logits and their error), the error routing of BP (who writes which error, where
    sums are needed), the BP/WU descriptors, and the placement of the regions, which
    resolves every descriptor's addresses.
    """
    b = _Builder(net, design, (float(lr), float(momentum), float(weight_decay)), debug_grads)
    b.memory_map()
    b.fp_descriptors()
    b.loss()
    b.error_routing()
    b.bp_wu_descriptors()
    b.drop_descriptors()
    from efgen.hls.eif import filter_steps
    from efgen.hls.slu import apply as slu_steps

    slu = slu_steps(b)
    b.filter = filter_steps(b)
    prog = b.place()
    prog.slu = slu
    return prog


class _Builder:
    """The state :func:`build_program`'s stages share."""

    def __init__(self, net: Net, design: Design, sgd: tuple[float, float, float],
                 debug_grads: bool):
        self.net, self.design, self.sgd, self.debug_grads = net, design, sgd, debug_grads
        hw = design.hw
        from efgen.hls.methods import training_of

        self.training = training_of(net, design)   # gradient filtering, error-map pruning
        from efgen.hls.eif import kept_batch

        self.B = kept_batch(design, self.training)   # EIF: the main net trains on the kept
        self.fml = FeatureMapLayout("blocked", hw.lanes)
        self.wl = WeightLayout("blocked", hw.tm, hw.tn)
        self.regions: dict[str, Region] = {}
        self.fused = fused_relus(net)
        self.fused_into = {net[r].inputs[0]: r for r in self.fused}   # producer -> its relu
        self.masks = bp_store_masks(net)
        self.fp: list[Step] = []
        self.bp: list[Step] = []
        self.drop: list[Step] = []
        self.filter: list[Step] = []
        # Descriptors reference regions by name first; offsets are filled in at the end.
        self.pending: list[tuple[EfgenDesc, dict[int, str]]] = []
        # Restructured BN (--fuse): what the conv engine's loads and stores take over.
        self.fx = None
        if getattr(hw, "fuse", False):
            from efgen.hls.fused import Fusion

            self.fx = Fusion(self)

    # ---- helpers ---------------------------------------------------------------------------
    def add(self, name, kind, shape, traces=(), init=None) -> Region:
        if name in self.regions:
            return self.regions[name]
        words = (self.fml.size(shape) if kind == "fm" else self.wl.size(shape)
                 if kind == "weight" else math.prod(shape))
        r = Region(name, kind, tuple(shape), words=words, traces=list(traces), init=init)
        self.regions[name] = r
        return r

    def dram(self, t: str) -> str:
        """The DRAM tensor holding the value of tensor ``t`` (a layer name or input)."""
        if t == INPUT:
            return INPUT
        l = self.net[t]
        if l.op == "relu" and t in self.fused:
            return t
        if t in self.fused_into:
            return self.fused_into[t]
        if l.op == "flatten" and _flatten_free(l):
            return self.dram(l.inputs[0])
        return t

    def golden_producer(self, d: str) -> str:
        """Layer whose golden ``dy`` the finalised error of DRAM tensor ``d`` equals."""
        return self.net[d].inputs[0] if d in self.fused else d

    def err(self, d: str) -> Region:
        """The final error region of DRAM tensor ``d``."""
        name = f"err:{d}"
        if name not in self.regions:
            g = self.golden_producer(d)
            self.add(name, "fm", _fm4(self.net[d].out_shape, self.B),
                     [Trace(f"{g}:dy", _trace_shape(self.net[g].out_shape, self.B))])
        return self.regions[name]

    def desc(self, op, l: Layer, flags=(), a=None, **kw) -> EfgenDesc:
        geo = _geometry(l, self.B)
        geo.update(kw)
        lr, momentum, weight_decay = self.sgd
        d = make_desc(op, flags, None, batch=self.B, lr=lr, momentum=momentum,
                      weight_decay=weight_decay, eps=BN_EPS, bn_momentum=BN_MOMENTUM, **geo)
        self.pending.append((d, dict(a or {})))
        return d

    def tiling(self, l: Layer, phase: str) -> dict:
        s = self.design.tiling(l.name, phase)
        # Linear layers run on a 1 x batch map (images along the columns), as the model
        # prices them: the schedule's tr is 1 and its tc counts images.
        return dict(tr=s.tr, tc=s.tc, mc=s.mc, order=0 if s.order == "wo" else 1)

    # ---- stage 1: the memory map -----------------------------------------------------------
    def memory_map(self) -> None:
        """Activations (one region per DRAM tensor), parameters and their SGD state."""
        net, B, add, debug_grads = self.net, self.B, self.add, self.debug_grads
        add(f"act:{INPUT}", "fm", _fm4(net.input_shape, B), init="input")
        for l in net:
            if l.op == "softmax_ce":
                continue
            d = self.dram(l.name)
            if self.fx and not self.fx.stored(d):
                continue
            r = add(f"act:{d}", "fm", _fm4(net[d].out_shape, B))
            if l.name not in self.fused_into:    # a fused producer's pre-ReLU value is lost
                r.traces.append(Trace(f"{l.name}:y", _trace_shape(l.out_shape, B)))
        for l in net:
            if l.op in ("conv", "linear"):
                wshape = _w4(l)
                add(f"w:{l.name}", "weight", wshape,
                    [Trace(f"{l.name}:new.weight", _wtrace(l))], init=f"param:{l.name}.weight")
                if l.bias:
                    add(f"b:{l.name}", "vec", (l.channels,),
                        [Trace(f"{l.name}:new.bias", (l.channels,))], init=f"param:{l.name}.bias")
                if l.trainable:
                    add(f"vel:{l.name}.weight", "weight", wshape,
                        [Trace(f"{l.name}:vel.weight", _wtrace(l))], init=f"vel:{l.name}.weight")
                    if l.bias:
                        add(f"vel:{l.name}.bias", "vec", (l.channels,),
                            [Trace(f"{l.name}:vel.bias", (l.channels,))],
                            init=f"vel:{l.name}.bias")
                    if debug_grads:
                        add(f"grad:{l.name}.weight", "weight", wshape,
                            [Trace(f"{l.name}:grad.weight", _wtrace(l))])
                        if l.bias:
                            add(f"grad:{l.name}.bias", "vec", (l.channels,),
                                [Trace(f"{l.name}:grad.bias", (l.channels,))])
            elif l.op == "batchnorm":
                c = l.in_shape[0]
                add(f"gamma:{l.name}", "vec", (c,), [Trace(f"{l.name}:new.gamma", (c,))],
                    init=f"param:{l.name}.gamma")
                add(f"beta:{l.name}", "vec", (c,), [Trace(f"{l.name}:new.beta", (c,))],
                    init=f"param:{l.name}.beta")
                add(f"stats:{l.name}", "vec", (2 * c,),
                    [Trace(f"{l.name}:mean", (c,)), Trace(f"{l.name}:var", (c,), c)])
                add(f"rm:{l.name}", "vec", (c,), [Trace(f"{l.name}:new.running_mean", (c,))],
                    init=f"buffer:{l.name}.running_mean")
                add(f"rv:{l.name}", "vec", (c,), [Trace(f"{l.name}:new.running_var", (c,))],
                    init=f"buffer:{l.name}.running_var")
                if l.trainable:
                    add(f"vel:{l.name}", "vec", (2 * c,),
                        [Trace(f"{l.name}:vel.gamma", (c,)), Trace(f"{l.name}:vel.beta", (c,), c)],
                        init=f"vel:{l.name}.gamma+beta")
                    if debug_grads:
                        add(f"grad:{l.name}", "vec", (2 * c,),
                            [Trace(f"{l.name}:grad.gamma", (c,)),
                             Trace(f"{l.name}:grad.beta", (c,), c)])
            elif l.op == "maxpool":
                add(f"argmax:{l.name}", "fm", _fm4(l.out_shape, B),
                    [Trace(f"{l.name}:argmax", _trace_shape(l.out_shape, B))])
        if self.training is not None:
            from efgen.hls.methods import method_regions

            method_regions(self)
        if self.fx:
            self.fx.memory_map()

    # ---- stage 2: FP descriptors -----------------------------------------------------------
    def fp_descriptors(self) -> None:
        """One descriptor per layer that is not fused away, in net order (a fused design
        may defer a BN_FIN past its add's other operand: efgen.hls.fused)."""
        net, desc, fp = self.net, self.desc, self.fp
        for l in net:
            if self.fx:
                self.fx.flush_fp(fp, l.name)
            if l.op == "softmax_ce" or (l.op == "relu" and l.name in self.fused):
                continue
            x = f"act:{self.dram(l.inputs[0])}"
            y = f"act:{self.dram(l.name)}"
            relu = ["RELU"] if l.name in self.fused_into else []
            if l.op in ("conv", "linear"):
                fl = relu + (["BIAS"] if l.bias else [])
                a = {0: x, 1: f"w:{l.name}", 7: y}
                if l.bias:
                    a[2] = f"b:{l.name}"
                if self.fx:
                    self.fx.conv_fp(l, a, fl)
                fp.append(Step(l.name, "fp", desc("CONV_FP", l, fl, a, **self.tiling(l, "fp"))))
                from efgen.hls.methods import fp_steps

                fp_steps(self, l, x)
            elif l.op == "batchnorm" and self.fx and (fin := self.fx.bn_fp(l, relu, x, y)):
                self.fx.emit_fp(fp, l.name, Step(l.name, "fp", desc("BN_FIN", l, fin[1], fin[0])))
            elif l.op == "batchnorm":
                a = {0: x, 1: f"gamma:{l.name}", 2: f"beta:{l.name}", 3: f"stats:{l.name}",
                     4: f"rm:{l.name}", 5: f"rv:{l.name}", 7: y}
                fp.append(Step(l.name, "fp", desc("BN_FP", l, relu, a)))
            elif l.op == "relu":
                fp.append(Step(l.name, "fp", desc("RELU_FP", l, [], {0: x, 7: y})))
            elif l.op == "maxpool":
                fp.append(Step(l.name, "fp", desc("MAXPOOL_FP", l, [],
                                                   {0: x, 6: f"argmax:{l.name}", 7: y})))
            elif l.op == "avgpool":
                fp.append(Step(l.name, "fp", desc("AVGPOOL_FP", l, [], {0: x, 7: y})))
            elif l.op == "add" and self.fx and self.fx.add_absorbed(l):
                continue                 # its BN's BN_FIN writes it (FLAG_ADDX)
            elif l.op == "add":
                b = f"act:{self.dram(l.inputs[1])}"
                fp.append(Step(l.name, "fp", desc("ADD_FP", l, relu, {0: x, 1: b, 7: y})))
            elif l.op == "shortcut_a":
                fp.append(Step(l.name, "fp", desc("SHORTCUT_FP", l, [], {0: x, 7: y})))
            elif l.op == "flatten" and not _flatten_free(l):
                fp.append(Step(l.name, "fp", desc("FLATTEN_FP", l, [], {0: x, 7: y})))

    # ---- stage 3: the loss ------------------------------------------------------------------
    def loss(self) -> None:
        """The host computes softmax cross-entropy: the logits and their error region."""
        self.logits_d = self.dram(self.net.loss_layer.inputs[0])
        self.logits = f"act:{self.logits_d}"
        self.dlogits = self.err(self.logits_d).name

    # ---- stage 4: BP error routing ----------------------------------------------------------
    def contributors(self, t: str) -> list[Layer]:
        """Layers whose BP contributes to tensor t's error (free flattens expanded)."""
        out = []
        for s in error_senders(self.net, t):
            out += self.contributors(s.name) if _flatten_free(s) else [s]
        return out

    def error_routing(self) -> None:
        """Who writes which error, decided once: straight into the final error region
        (with the ReLU mask where the sender's store can apply it), aliased through an
        add, or into partial regions that an error-sum descriptor adds up."""
        net, err, add = self.net, self.err, self.add
        self.dst_of: dict[tuple[str, str], tuple[str, list[str], dict[int, str]]] = {}
        self.sums: dict[str, tuple[list[str], bool]] = {}   # d -> (sources, mask)
        done: set[str] = set()
        for l in net:
            if l.op == "softmax_ce" or not l.needs_error or (l.op == "flatten"
                                                             and _flatten_free(l)):
                continue
            d = self.dram(l.name)
            if d == self.logits_d or f"err:{d}" in done:
                continue
            done.add(f"err:{d}")
            final = err(d).name
            masked = d in self.fused
            contrib = self.contributors(d)
            passthrough = [c for c in contrib if c.op == "add"]
            if len(contrib) == 1 and not passthrough and (not masked
                                                          or contrib[0].name in self.masks):
                c = contrib[0]
                self.dst_of[(c.name, d)] = (final, ["MASK"] if masked else [],
                                            {6: f"act:{d}"} if masked else {})
            elif len(contrib) == 1 and passthrough and not masked:
                target = err(self.dram(passthrough[0].name)).name
                self.regions[final] = _alias_region(self.regions, final, target)
            else:
                srcs = []
                for c in contrib:
                    if c.op == "add":
                        srcs.append(f"err:{self.dram(c.name)}")
                    else:
                        part = add(f"errpart:{d}:{c.name}", "fm",
                                   _fm4(net[d].out_shape, self.B)).name
                        self.dst_of[(c.name, d)] = (part, [], {})
                        srcs.append(part)
                if len(srcs) > 4:
                    raise ValueError(f"{d}: more than 4 error senders")
                if self.fx and self.fx.sum_in_store(d, contrib, srcs, masked):
                    continue            # the last sender's BP store adds the other error
                self.sums[d] = (srcs, masked)

    def sender_dst(self, sender: Layer, t: str):
        return self.dst_of[(sender.name, self.dram(t))]

    def finalise(self, l: Layer, finalised: set[str]) -> None:
        """The error-sum descriptor of ``l``'s DRAM tensor, before its first reader."""
        d = self.dram(l.name)
        if d in self.sums and d not in finalised:
            finalised.add(d)
            srcs, masked = self.sums[d]
            a = {i: s for i, s in enumerate(srcs)}
            a[7] = self.err(d).name
            fl = []
            if masked:
                fl, a[6] = ["MASK"], f"act:{d}"
            self.bp.append(Step(l.name, "errsum",
                                self.desc("ERRSUM", self.net[d], fl, a, n_src=len(srcs))))

    # ---- stage 5: BP and WU descriptors -----------------------------------------------------
    def bp_wu_descriptors(self) -> None:
        """BP (and the WU of trainable layers) in reverse net order."""
        net, desc, bp, dram, debug_grads = self.net, self.desc, self.bp, self.dram, \
            self.debug_grads
        finalised: set[str] = set()
        for l in reversed(net.layers):
            if l.op == "softmax_ce" or not l.needs_error:
                continue
            if (l.op == "relu" and l.name in self.fused) or (l.op == "flatten"
                                                             and _flatten_free(l)):
                continue
            self.finalise(l, finalised)
            dy = f"err:{dram(l.name)}"
            t = l.inputs[0]
            if l.op in ("conv", "linear"):
                from efgen.hls.methods import bp_steps, handles

                if handles(self, l):
                    bp_steps(self, l, dy)
                else:
                    self.conv_bp_wu(l, dy)
            elif l.op == "batchnorm":
                fl, a = [], {0: dy, 1: f"act:{dram(t)}", 2: f"stats:{l.name}",
                             3: f"gamma:{l.name}", 4: f"beta:{l.name}"}
                if l.trainable:
                    fl.append("TRAIN")
                    a[5] = f"vel:{l.name}"
                    if debug_grads:
                        a[6] = f"grad:{l.name}"
                if l.runs_bp:
                    dst, mfl, _ = self.sender_dst(l, t)   # BN's mask source is its input a[1]
                    fl += ["DX"] + mfl
                    a[7] = dst
                if self.fx:
                    self.fx.bn_bp(l, fl, a)
                bp.append(Step(l.name, "bp", desc("BN_BP", l, fl, a)))
            elif l.op == "relu":
                dst, _, _ = self.sender_dst(l, t)
                bp.append(Step(l.name, "bp", desc("RELU_BP", l, [],
                                                   {0: dy, 1: f"act:{dram(l.name)}", 7: dst})))
            elif l.op in ("maxpool", "avgpool", "shortcut_a", "flatten"):
                if not l.runs_bp:
                    continue
                dst, fl, extra = self.sender_dst(l, t)
                op = {"maxpool": "MAXPOOL_BP", "avgpool": "AVGPOOL_BP",
                      "shortcut_a": "SHORTCUT_BP", "flatten": "FLATTEN_BP"}[l.op]
                a = {0: dy, 7: dst, **extra}
                if l.op == "maxpool":
                    a[1] = f"argmax:{l.name}"
                bp.append(Step(l.name, "bp", desc(op, l, fl, a)))
            # add: no pass (its operands read this error region)

    def conv_bp_wu(self, l: Layer, dy: str) -> None:
        """CONV_BP (when BP goes on) and CONV_WU (when trainable) of a conv/linear layer,
        reading the error region ``dy``."""
        desc, dram, t = self.desc, self.dram, l.inputs[0]
        if l.runs_bp:
            dst, fl, extra = self.sender_dst(l, t)
            a = {0: dy, 1: f"w:{l.name}", 7: dst, **extra}
            fl = list(fl)
            if self.fx:
                self.fx.conv_bp(l, a, fl)
            self.bp.append(Step(l.name, "bp", desc("CONV_BP", l, fl, a,
                                                   **self.tiling(l, "bp"))))
        if l.trainable:
            a = {0: dy, 1: f"act:{dram(t)}", 2: f"w:{l.name}", 3: f"vel:{l.name}.weight"}
            fl = []
            if l.bias:
                fl = ["BIAS"]
                a.update({4: f"b:{l.name}", 5: f"vel:{l.name}.bias"})
            if self.debug_grads:
                a[6] = f"grad:{l.name}.weight"
                if l.bias:
                    a[7] = f"grad:{l.name}.bias"
            if self.fx:
                self.fx.conv_wu(l, a, fl)
            self.bp.append(Step(l.name, "wu", desc("CONV_WU", l, fl, a,
                                                   **self.tiling(l, "wu"))))

    def drop_descriptors(self) -> None:
        """The update of a dropped mini-batch (efgen.hls.methods.drop_steps)."""
        from efgen.hls.methods import drop_steps

        drop_steps(self)

    # ---- stage 6: placement -----------------------------------------------------------------
    def place(self) -> Program:
        """Place the regions (4 KiB aligned, aliases share their target) and resolve the
        descriptors' addresses."""
        regions, net = self.regions, self.net
        if self.fx:
            self.fx.drop_regions(regions)
        # Word 0 stays unused: an address of 0 in a descriptor means "none" (debug outputs).
        offset = ALIGN
        for name, r in regions.items():
            if getattr(r, "alias_of", None):
                continue
            offset = -(-offset // ALIGN) * ALIGN
            r.offset = offset
            offset += r.words
        for name, r in regions.items():
            target = getattr(r, "alias_of", None)
            while target and getattr(regions[target], "alias_of", None):
                target = regions[target].alias_of
            if target:
                r.offset = regions[target].offset
                r.words = regions[target].words
        total = -(-offset // ALIGN) * ALIGN
        if self.fx:
            self.fx.resolve(regions)
        for d, a in self.pending:
            for i, rname in a.items():
                d.a[i] = regions[rname].offset
        held = {t.key for r in regions.values() for t in r.traces}
        not_in_dram = sorted({f"{l.name}:y" for l in net if l.name in self.fused_into}
                             | {f"{r}:dy" for r in self.fused} - held
                             | (self.fx.not_stored() if self.fx else set()))
        return Program(net, self.design, regions, self.fp, self.bp, self.logits, self.dlogits,
                       total, not_in_dram, self.sgd, self.drop,
                       self.fx.summary() if self.fx else None, self.filter, self.B)


def _alias_region(regions: dict[str, Region], name: str, target: str) -> Region:
    old = regions.get(name)
    tgt = regions[target]
    r = Region(name, tgt.kind, tgt.shape, traces=list(old.traces) if old else [])
    r.alias_of = target  # type: ignore[attr-defined]
    return r


def _flatten_free(l: Layer) -> bool:
    """A flatten of a 1x1 map is the identity in the blocked layout."""
    return l.op == "flatten" and math.prod(l.in_shape[1:]) == 1


def _trace_shape(shape: tuple[int, ...], batch: int) -> tuple[int, ...]:
    return (batch, *shape)


def _w4(l: Layer) -> tuple[int, int, int, int]:
    if l.op == "linear":
        return (l.channels, l.in_shape[0], 1, 1)
    return (l.channels, l.in_shape[0], l.kernel, l.kernel)


def _wtrace(l: Layer) -> tuple[int, ...]:
    return l.param_shapes()["weight"]


def _geometry(l: Layer, batch: int) -> dict:
    ins = l.in_shape
    outs = l.out_shape
    in3 = (ins[0], 1, 1) if len(ins) == 1 else ins
    out3 = (outs[0], 1, 1) if len(outs) == 1 else outs
    g = dict(in_c=in3[0], in_h=in3[1], in_w=in3[2], out_c=out3[0], out_h=out3[1], out_w=out3[2],
             kh=1, kw=1, stride=1, pad=0)
    if l.op == "conv":
        g.update(kh=l.kernel, kw=l.kernel, stride=l.stride, pad=l.padding)
    elif l.op == "maxpool" or (l.op == "avgpool" and not l.global_pool):
        g.update(kh=l.kernel, kw=l.kernel, stride=l.stride, pad=l.padding)
    elif l.op == "avgpool":
        g.update(kh=in3[1], kw=in3[2], stride=1, pad=0)
    elif l.op == "shortcut_a":
        g.update(stride=l.stride)
    return g


__all__ = ["Program", "Region", "Step", "Trace", "build_program", "FLAGS", "OPS"]
