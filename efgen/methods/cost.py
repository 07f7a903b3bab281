"""The cost of the training methods: engine jobs for the scheduler, vector-engine rows,
saved-activation words, and the evaluation of a Design that uses them.

What each method changes (B = batch):

* **Gradient filtering** (conv Cin -> Cout, output H x W, stride s, patch r; P = ceil(H/r)
  x ceil(W/r) patches): FP unchanged, plus a vector pass that writes the input patch sums
  ``x_sum`` (read x, write Cin*P words). BP and WU are 1x1 convolutions on the pooled
  maps, B*Cin*Cout*P MACs each, scheduled and tiled like any engine job (the scheduler
  sees a K=1, stride-1 job on a P-sized map); a vector pass pools the error (read dy,
  write Cout*P), another sums W over its taps (read Cout*Cin*K*K, write Cout*Cin), another
  copies the input error back over the patches (read Cin*P, write the input error). The WU write-back updates all K*K taps: the SGD of the (K*K - 1)
  broadcast taps is a vector pass over those weights (and momenta). Saved words: Cin*P
  per image instead of the input map (about (r*s)^2 fewer).
* **Error-map pruning** (keep rho): a pass reads the error and W (the channel scores;
  the top-k is on the host) and writes the kept channels' error and filters gathered
  into compact tensors; BP then reduces over, and WU accumulates, ceil(rho*Cout)
  channels (the engine jobs shrink to those channels), and an SGD pass over W (and its
  momentum) scatters the kept filters' gradient back, the pruned filters' gradient being
  zero (:func:`emp_gathered`). A conv that is also gradient-filtered or has a bias is not
  gathered: its pass writes the error with the pruned channels zeroed and the engine
  runs every channel. Saved words unchanged.
* **SMD** (drop p): every FP, BP and WU row costs (1 - p) of itself (expected per step);
  the SGD write-back runs every step when ``update_on_drop`` (E2-Train), else (1 - p).
* **SLU** (keep q per block): the block's branch runs on round(q*B) images (jobs and
  vector passes at that batch); each gated block adds its gate: a global average pool of
  the block input on the vector engine (E2-Train's gate then runs a 1x1 conv to 10
  features, an LSTM(10, 10) and a linear on the host: 10*C + 810 MACs per image, counted
  in the gate row's MACs, no engine cycles). The generated host runtime takes the gates'
  decisions as its input (efgen.hls.slu) and runs, priced as vector-engine passes, the
  gather of the block input and of the add's error (k images), the add (shortcut at B,
  branch at k) and the scatter of the branch's input error (k in, B out).

The host runtime's HOST_* ops (the methods' glue, hls_kernels/efgen_host_ops.h) are
priced as vector-engine passes over the words they read and write; the softmax
cross-entropy on the host is not modelled (efgen.model.aux).
* **EIF** (keep k, filter net F): F's FP runs on all B images (its jobs and vector
  passes, frozen, names prefixed ``filter/``; its batchnorms in inference mode, one pass,
  as the generated runtime's HOST_BN_EVAL runs them), plus the host's selection
  (HOST_EIF: the logits and labels read, the kept mask and labels written, the kept
  images copied); the main net's FP, BP and WU run on ceil(k*B) images.
* **MobileTL** (BN ``shift_only``): a shift-only batchnorm (every one but the last of
  each residual branch, :meth:`Training.shift_bn_layers`) normalises with its frozen
  statistics: FP is one pass (no statistics pass), BP one pass (read dy, write dx =
  dy*gamma*invstd, dbeta summed in the same pass) instead of a sums pass plus a dx pass
  that both read x; SGD updates beta only; it saves no x-hat. ReLU masks are saved as
  1 bit (``ceil(n/32)`` words per image instead of n).

Saved words are what one executed step keeps for its backward pass (per step, whole
batch): SLU in expectation over the skip masks, EIF on the kept images; SMD does not
change them (a step that runs keeps everything).
"""

from __future__ import annotations

import math
from dataclasses import replace

from efgen.design import Design, HwParams
from efgen.frontend.boards import Board
from efgen.frontend.ir import Net, _finish
from efgen.methods.golden import emp_kept, gf_grid
from efgen.methods.spec import Training, from_doc, residual_blocks
from efgen.model import engine
from efgen.model.aux import AuxCost, _words, aux_costs, passes_cost

FILTER = "filter/"
GATE_EMBED = 10                      # E2-Train's gate: 10 features, LSTM(10, 10), linear
GATE_HOST_MACS = 4 * (GATE_EMBED * GATE_EMBED * 2) + GATE_EMBED


def main_batch(batch: int, t: Training | None) -> int:
    """Images the main net trains on per step (EIF keeps ceil(k*B))."""
    if t is not None and t.instance_filter:
        return emp_kept(batch, t.instance_filter.keep)
    return batch


def branch_batches(net: Net, batch: int, t: Training | None) -> dict[str, int]:
    """Branch layer -> the images it runs on (SLU: round(q*B), at least 1)."""
    out = {}
    if t is None or not t.layer_update:
        return out
    blocks = {b.name: b for b in residual_blocks(net)}
    for name, q in t.block_keep().items():
        nb = max(1, round(q * batch))
        for layer in blocks[name].branch:
            out[layer] = nb
    return out


def frozen(net: Net, prefix: str = FILTER) -> Net:
    """``net`` with nothing trainable and every layer name prefixed (the EIF filter)."""
    ren = {l.name: prefix + l.name for l in net}
    layers = [replace(l, name=ren[l.name], trainable=False,
                      inputs=tuple(ren.get(i, i) for i in l.inputs)) for l in net]
    return _finish(prefix + net.name, net.input_shape, net.num_classes, layers,
                   net.source, net.description)


def emp_gathered(net: Net, t: Training | None) -> set[str]:
    """Pruned convs whose BP and WU run on the kept channels only: the host gathers the
    kept channels' error (and filters) into compact tensors, the engine runs the
    ceil(rho*Cout)-channel jobs, and an SGD pass scatters the kept filters' gradient back
    (pruned filters get a zero gradient). Convs that are also gradient-filtered, or have
    a bias, are not gathered: the engine runs them on every channel with the pruned
    channels' error zeroed, and the model prices that."""
    if t is None:
        return set()
    return {n for n in t.emp_layers() if n not in t.gf_layers() and not net[n].bias}


def _gf_geometry(l, r: int) -> tuple[int, int]:
    (_, ho, wo) = l.out_shape
    return gf_grid(ho, r)[0], gf_grid(wo, r)[0]


def method_jobs(net: Net, batch: int, t: Training | None) -> list[engine.Job]:
    """The engine jobs of one step with the training methods (execution order)."""
    nb = main_batch(batch, t)
    jobs = engine.jobs_for(net, nb)
    if t is None:
        return jobs
    slu = branch_batches(net, nb, t)
    gf, gathered = t.gf_layers(), emp_gathered(net, t)
    out = []
    for j in jobs:
        l = net[j.layer]
        if j.layer in slu:
            j = _rebatch(j, l, slu[j.layer])
        images = j.images
        if j.layer in gf and j.phase in ("bp", "wu"):
            ph, pw = _gf_geometry(l, t.gradient_filter.r)
            n, m = l.in_shape[0], l.channels
            j = engine.phase_job(j.layer, j.phase, "conv", n, m, images, h=ph, w=pw, ho=ph,
                                 wo=pw, k=1, s=1, p=0, macs=n * m * ph * pw * images)
        if j.layer in gathered and j.phase in ("bp", "wu"):
            kept = emp_kept(l.channels, t.error_pruning.keep)
            frac = kept / l.channels
            if j.phase == "bp":
                j = replace(j, red=kept, macs=round(j.macs * frac))
            else:
                j = replace(j, out=kept, macs=round(j.macs * frac))
        out.append(j)
    if t.instance_filter:
        fnet = frozen(t.instance_filter.net)
        out = engine.jobs_for(fnet, batch) + out
    return out


def _rebatch(j: engine.Job, l, images: int) -> engine.Job:
    """A conv job at another batch (SLU branch layers are convs, never linear)."""
    return replace(j, images=images, macs=j.macs // j.images * images)


def method_aux(net: Net, batch: int, hw: HwParams, word_bits: int, ddr_bytes_per_cycle: float,
               layout: str, momentum: bool, t: Training | None) -> list[AuxCost]:
    """The vector engine's rows with the training methods (see the module docstring)."""
    nb = main_batch(batch, t)
    base = aux_costs(net, nb, hw, word_bits, ddr_bytes_per_cycle, layout, momentum)
    if t is None:
        return base
    blocked = layout == "reshaped"
    word_bytes = word_bits / 8
    bw = min(float(hw.port_words), ddr_bytes_per_cycle / word_bytes / hw.ports)
    maxb = float(hw.max_burst_beats * hw.port_words)

    def cost(layer, phase, op, passes):
        return passes_cost(hw, bw, maxb, layer, phase, op, passes)

    from efgen.model.fusion import bp_store_masks

    slu = branch_batches(net, nb, t)
    shift = t.shift_bn_layers(net)
    masks = bp_store_masks(net)
    out: list[AuxCost] = []
    for a in base:
        l = net[a.layer]
        images = slu.get(a.layer, nb)
        W = lambda shape, n=images: _words(shape, n, hw.lanes, blocked)  # noqa: E731
        if l.name in shift and a.phase == "fp":
            a = cost(l.name, "fp", "batchnorm, frozen statistics (one pass)",
                     [([W(l.in_shape)], [W(l.out_shape)], float(images * math.prod(l.in_shape)))])
        elif l.name in shift and a.phase == "bp":
            n_in = float(images * math.prod(l.in_shape))
            if l.runs_bp:      # (+ the layer input where the store applies a ReLU mask)
                mx = [W(l.in_shape)] if l.name in masks else []
                a = cost(l.name, "bp", "batchnorm shift-only (dx = dy*gamma*invstd, dbeta)",
                         [([W(l.out_shape)] + mx, [W(l.in_shape)], n_in)])
            else:
                a = cost(l.name, "bp", "batchnorm shift-only (dbeta)",
                         [([W(l.out_shape)], [], n_in)])
        elif l.name in shift and a.phase == "sgd":
            words = float(l.in_shape[0])
            k = 2 if momentum else 1
            a = cost(l.name, "sgd", "sgd (beta only)", [([words] * (k + 1), [words] * k, words)])
        elif a.layer in slu and a.phase != "sgd":
            f = images / nb
            a = AuxCost(a.layer, a.phase, a.op, a.cycles * f, a.read_words * f,
                        a.write_words * f, a.bursts * f, a.elements * f)
        out.append(a)
    W = lambda shape, n=nb: _words(shape, n, hw.lanes, blocked)  # noqa: E731
    for name in sorted(t.gf_layers(), key=lambda n: [x.name for x in net].index(n)):
        l = net[name]
        images = slu.get(name, nb)
        ph, pw = _gf_geometry(l, t.gradient_filter.r)
        n, m, kk = l.in_shape[0], l.channels, l.kernel * l.kernel
        xs, g = W((n, ph, pw), images), W((m, ph, pw), images)
        n_in = float(images * math.prod(l.in_shape))
        if l.trainable:
            out.append(cost(name, "fp", "gf input patch sums", [([W(l.in_shape, images)],
                                                                  [xs], n_in)]))
        out.append(cost(name, "bp", "gf error pooling", [([W(l.out_shape, images)], [g],
                                                          float(images * math.prod(l.out_shape)))]))
        if l.runs_bp:
            out.append(cost(name, "bp", "gf tap sums of W", [([float(kk * m * n)],
                                                              [float(m * n)], float(kk * m * n))]))
            out.append(cost(name, "bp", "gf copy-back", [([W((n, ph, pw), images)],
                                                          [W(l.in_shape, images)], n_in)]))
        if l.trainable and kk > 1:
            words = float((kk - 1) * m * n)
            k = 2 if momentum else 1
            out.append(cost(name, "sgd", "sgd (gf taps broadcast)",
                            [([words] * k, [words] * k, words)]))
    gathered = emp_gathered(net, t)
    for name in sorted(t.emp_layers(), key=lambda n: [x.name for x in net].index(n)):
        l = net[name]
        images = slu.get(name, nb)
        m, n, kk = l.channels, l.in_shape[0], l.kernel * l.kernel
        kept = emp_kept(m, t.error_pruning.keep)
        n_err = float(images * math.prod(l.out_shape))
        dy, w = W(l.out_shape, images), float(m * n * kk)
        if name in gathered:
            wc = [float(kept * n * kk)] if l.runs_bp else []
            out.append(cost(name, "bp", "emp scores, top-k, gather of the kept channels",
                            [([dy, w], [W((kept,) + l.out_shape[1:], images)] + wc, n_err)]))
            if l.trainable:
                k = 2 if momentum else 1
                out.append(cost(name, "sgd", "sgd (emp: kept filters scattered, pruned "
                                "with zero gradient)",
                                [([float(kept * n * kk)] + [w] * k, [w] * k, w)]))
        else:
            out.append(cost(name, "bp", "emp scores, top-k, pruned channels zeroed",
                            [([dy, w], [dy], n_err)]))
    if t.layer_update:
        out = _slu_rows(net, nb, t, out, W, cost)
    if t.instance_filter:
        out = _eif_rows(t, batch, nb, hw, word_bits, ddr_bytes_per_cycle, layout, momentum,
                        cost, blocked) + out
    return out


def _slu_rows(net: Net, nb: int, t: Training, out: list[AuxCost], W, cost) -> list[AuxCost]:
    """SLU's rows: each gated block's gate, and the host ops the generated runtime runs
    around its branch (efgen.hls.slu), priced as vector-engine passes like every HOST_*
    op: HOST_SLU_GATHER of the block input (FP) and of the add's error (BP), HOST_SLU_ADD
    instead of the add (the shortcut at B images, the branch at k), HOST_SLU_SCATTER of
    the branch's input error (k images in, B out). k = the branch's images."""
    blocks = {b.name: b for b in residual_blocks(net)}
    ks = branch_batches(net, nb, t)
    adds = {}
    for name in t.block_keep():
        b = blocks[name]
        shape = net.shape_of(b.input)
        k = ks[b.branch[0]]
        first = net[b.branch[0]]
        adds[b.add] = (b, k)
        out.append(cost(b.add, "fp", "slu gate (avgpool; 1x1 conv + LSTM on the host)",
                        [([W(shape)], [float(nb * shape[0])],
                          float(nb * math.prod(shape)))]))
        flags = [float(nb)]
        out.append(cost(first.name, "fp", "slu gather of the block input (host)",
                        [([W(shape, k)] + flags, [W(shape, k)], float(k * math.prod(shape)))]))
        if any(net[n].needs_error for n in b.branch):
            ys = net[b.add].out_shape
            out.append(cost(b.add, "bp", "slu gather of the add's error (host)",
                            [([W(ys, k)] + flags, [W(ys, k)], float(k * math.prod(ys)))]))
        if first.runs_bp:
            out.append(cost(first.name, "bp", "slu scatter of the branch's input error "
                            "(host)", [([W(shape, k)] + flags, [W(shape)],
                                       float(nb * math.prod(shape)))]))
    res = []
    for a in out:
        if a.layer in adds and a.phase == "fp" and a.op == "add":
            b, k = adds[a.layer]
            ys = net[b.add].out_shape
            a = cost(b.add, "fp", "slu add (host: shortcut at B, branch at k images)",
                     [([W(ys), W(ys, k), float(nb)], [W(ys)], float(nb * math.prod(ys)))])
        res.append(a)
    return res


def _eif_rows(t: Training, batch: int, nb: int, hw: HwParams, word_bits: int,
              ddr_bytes_per_cycle: float, layout: str, momentum: bool, cost,
              blocked: bool) -> list[AuxCost]:
    """EIF's rows: the frozen filter net's FP at B images as the generated runtime runs
    it (efgen.hls.eif): its vector passes, but each batchnorm in inference mode (HOST_BN_EVAL:
    one pass with the running statistics, no statistics pass), and HOST_EIF (the host's
    selection: read the logits and labels, write the kept mask and labels, copy the kept
    images into the main net's input), priced as vector-engine passes like every HOST_*
    op."""
    fnet = frozen(t.instance_filter.net)
    rows = aux_costs(fnet, batch, hw, word_bits, ddr_bytes_per_cycle, layout, momentum)
    W = lambda shape, n=batch: _words(shape, n, hw.lanes, blocked)  # noqa: E731
    out = []
    for a in rows:
        l = fnet[a.layer]
        if l.op == "batchnorm" and a.phase == "fp":
            a = cost(l.name, "fp", "batchnorm, inference mode (HOST_BN_EVAL on the host)",
                     [([W(l.in_shape)], [W(l.out_shape)], float(batch * math.prod(l.in_shape)))])
        out.append(a)
    C = fnet.num_classes
    img = fnet.input_shape
    out.append(cost(fnet.loss_layer.name, "fp", "eif selection (HOST_EIF on the host: "
                    "loss per instance, top-k, kept images copied)",
                    [([W((C,)), float(batch), W(img, nb)], [float(batch + nb), W(img, nb)],
                      float(batch * C + nb * math.prod(img)))]))
    return out


def gate_host_macs(net: Net, batch: int, t: Training) -> dict[str, float]:
    """SLU gate MACs on the host per step, by the block's add layer."""
    if not t.layer_update:
        return {}
    blocks = {b.name: b for b in residual_blocks(net)}
    nb = main_batch(batch, t)
    return {blocks[n].add: float(nb * (GATE_EMBED * net.shape_of(blocks[n].input)[0]
                                       + GATE_HOST_MACS)) for n in t.block_keep()}


# ---- saved words --------------------------------------------------------------------------

def saved_words(net: Net, batch: int, t: Training | None) -> dict[str, float]:
    """Activation words one executed step keeps for its backward pass, per layer (whole
    batch; see the module docstring)."""
    nb = main_batch(batch, t)
    slu = branch_batches(net, nb, t)
    gf = t.gf_layers() if t is not None else set()
    shift = t.shift_bn_layers(net) if t is not None else set()
    bits = t is not None and t.shift_only
    out = {}
    for l in net:
        images = slu.get(l.name, nb)
        w = float(l.saved_words)
        if l.name in gf and l.trainable:
            ph, pw = _gf_geometry(l, t.gradient_filter.r)
            w = float(l.in_shape[0] * ph * pw)
        elif l.name in shift:
            w = 0.0
        elif bits and l.op == "relu" and w:
            w = float(math.ceil(w / 32))
        out[l.name] = w * images
    return out


# ---- evaluation ---------------------------------------------------------------------------

def _scale(row, f: float):
    return replace(row, cycles=row.cycles * f, cycles_nchw=row.cycles_nchw * f,
                   macs=row.macs * f, flops=row.flops * f, dram_bytes=row.dram_bytes * f,
                   dram_bytes_nchw=row.dram_bytes_nchw * f, bursts=row.bursts * f,
                   bursts_nchw=row.bursts_nchw * f, compute_cycles=row.compute_cycles * f,
                   load_cycles=row.load_cycles * f, energy_j=row.energy_j * f,
                   dram_read_bytes=row.dram_read_bytes * f)


def evaluate_methods(net: Net, design: Design, board: Board, *, engine_rows, aux_rows,
                     totals, order) -> dict:
    """:func:`efgen.model.evaluate.evaluate_design` for a Design with training methods:
    the same rows and totals (expected per step), plus ``totals["methods"]``. The row and
    totals functions are evaluate_design's own, passed in (efgen.model does not import
    this package at module level, and this module does not import efgen.model.evaluate)."""
    from efgen.model.coeffs import word_bits

    t = from_doc(design.training, net)
    hw = design.hw
    ddr = board.ddr.peak_gbps * 1e9 / (hw.clock_mhz * 1e6)   # DDR bytes per cycle
    wbits = word_bits(hw.precision)
    jobs = method_jobs(net, design.batch, t)
    aux = tuple(method_aux(net, design.batch, hw, wbits, ddr, lay, design.sgd_momentum, t)
                for lay in ("reshaped", "nchw"))
    rows = engine_rows(net, design, board, jobs) + aux_rows(net, design, board, aux)
    host = gate_host_macs(net, design.batch, t) if t is not None else {}
    if t is not None and t.minibatch_drop:
        keep = 1.0 - t.minibatch_drop.p
        upd = t.minibatch_drop.update_on_drop
        rows = [r if (r.phase == "sgd" and upd) else _scale(r, keep) for r in rows]
    pos = {l.name: i for i, l in enumerate(net)}
    if t is not None and t.instance_filter:
        fnet = frozen(t.instance_filter.net)
        pos.update({l.name: i - len(fnet) for i, l in enumerate(fnet)})
    rows.sort(key=lambda r: (r.phase != "fp", pos[r.layer] if r.phase == "fp"
                             else -pos[r.layer], order[r.phase]))
    tot = totals(net, design, board, rows)
    tot["methods"] = method_summary(net, design.batch, t, rows, host)
    return {"rows": rows, "totals": tot}


def phase_macs(rows) -> dict[str, float]:
    """Engine MACs per phase (whole step) from evaluation rows."""
    out = {"fp": 0.0, "bp": 0.0, "wu": 0.0}
    for r in rows:
        if r.phase in out:
            out[r.phase] += r.macs
    return out


def method_summary(net: Net, batch: int, t: Training | None, rows, host) -> dict:
    """What report.json/report.md show about the methods (per step, expected)."""
    saved = saved_words(net, batch, t)
    return {"describe": t.describe() if t is not None else "full back-propagation",
            "training": t.to_doc() if t is not None else None,
            "macs": phase_macs(rows),
            "host_gate_macs": float(sum(host.values())),
            "saved_words": float(sum(saved.values())),
            "main_batch": main_batch(batch, t)}


# ---- per-layer counts (hardware-free, per image) ----------------------------------------------

def layer_counts(net: Net, t: Training | None) -> list[dict]:
    """Per layer: expected MACs per image for FP, BP, WU and saved words per image, with
    the methods (what ``efgen net show --training`` prints). EIF's filter net appears as
    ``filter/`` layers (FP only); SMD scales every phase by (1 - p)."""
    drop = 1.0 - t.minibatch_drop.p if t is not None and t.minibatch_drop else 1.0
    fkeep = t.instance_filter.keep if t is not None and t.instance_filter else 1.0
    big = 1 << 20                     # a large batch: SLU/EIF fractions without rounding
    slu = {k: v / big for k, v in branch_batches(net, big, t).items()}
    saved = saved_words(net, 1, t)
    gf, emp = (t.gf_layers(), t.emp_layers()) if t is not None else (set(), set())
    out = []
    if t is not None and t.instance_filter:
        for l in frozen(t.instance_filter.net):
            out.append({"layer": l.name, "fp": l.fp_macs * drop, "bp": 0.0, "wu": 0.0,
                        "saved": 0.0})
    for l in net:
        f = fkeep * slu.get(l.name, 1.0)
        fp, bp, wu = float(l.fp_macs), float(l.bp_macs), float(l.wu_macs)
        if l.name in gf:
            ph, pw = _gf_geometry(l, t.gradient_filter.r)
            one = float(l.in_shape[0] * l.channels * ph * pw)
            bp, wu = (one if l.runs_bp else 0.0), (one if l.trainable else 0.0)
        if l.name in emp:
            frac = emp_kept(l.channels, t.error_pruning.keep) / l.channels
            bp, wu = bp * frac, wu * frac
        out.append({"layer": l.name, "fp": fp * f * drop, "bp": bp * f * drop,
                    "wu": wu * f * drop, "saved": saved[l.name] * fkeep})
    return out
