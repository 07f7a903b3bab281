"""Restructured batchnorm (Jung et al., MLSys 2019): batchnorm, residual adds, ReLU and
error sums folded into the convolution engine's loads and stores, and the per-tensor
fuse/materialise decision that the scheduler makes with the model.

The datapath this prices (``HwParams.fuse``), as the generated HLS C++ runs it
(efgen/hls/fused.py builds the program from the plan decided here and lists every
difference from it in program.json's ``fusion``; tests/test_fused_csim.py requires none
for resnet20, resnet20-b and vgg16-cifar; the reference RTL built with its fused
datapath, RtlParams.fuse, runs the same program):

* **BN FP statistics**: sum(y) and sum(y^2) per channel accumulate in the store of the
  conv/linear that produces y (``Job.acc``); a small per-channel pass finalises mean,
  1/std, the affine constants and the running statistics.
* **Element-wise groups**: the chain members computed in one pass form a *group*: a
  batchnorm or an add with its fused ReLU, and a residual add with the batchnorm whose
  BN_FIN writes it (:func:`addx_bn`, FLAG_ADDX); its output is relu?(sum of
  gamma*(y-mu)*lambda+beta terms) of one or two stored tensors (its *sources*). A group
  is either *fused* (every consumer's load reads its source and applies the transform:
  ``Job.xf``) or *materialised* (one vector pass reads the sources and writes it;
  consumers read it plainly). The decision is per group, among the groups the engine's
  load path takes (:func:`loadable`: one batchnorm and its ReLU, read only by
  conv/linear loads, its mask's error from one conv/linear). Residual groups in the
  consumers' loads (a second operand with its own BN and ReLU in every FP and WU load,
  and a mask recomputed from two sources in the BP store) and the BN transform in the
  vector passes' loads are not built: those groups are materialised, once, and priced
  so. On resnet20 (zcu102, batch 32, 16 x 16) the earlier plan that fused them was
  priced 3% fewer step cycles and 1% fewer DRAM bytes (every consumer load re-reads the
  second stream with each input-tile reload, about what the one materialisation writes).
* **ReLU masks** are recomputed where the error is finalised, from the group's sources
  (or from the materialised tensor).
* **Error finalisation**: a tensor's error (the sum over its senders, masked by a fused
  ReLU) is written by its one sender's BP store or pass, or, with two senders, by the
  last one's BP store if it is a conv/linear (``Job.st_extra`` read streams: the other
  sender's error and the mask source); otherwise by an error-sum pass (:func:
  `finalisers`). A conv/linear store that masks also accumulates one BN's BP sum(dy)
  and sum(dy*x_hat) (x_hat recomputed from y, one more stream unless the mask already
  reads y); every other BN runs a sums pass (:func:`bn_sums_pass`).
* **BN BP dx** = gamma*lambda/N*(N*dy - sum(dy) - x_hat*sum(dy*x_hat)) is element-wise in
  (dy, y): either fused into the loads of the producing conv's BP (input tiles) and WU
  (error tiles), one more stream (y) each, where that conv has no bias, or
  materialised by a pass (per BN).

The decision (:func:`decide`) is a deterministic greedy descent over those choices on
the model's step cycles for the given hardware, from the plan that fuses every group
the loader can take.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from efgen.design import HwParams
from efgen.frontend.ir import INPUT, Layer, Net
from efgen.model import engine
from efgen.model.aux import AuxCost, _words, passes_cost
from efgen.model.fusion import error_senders, fused_relus

CHAIN = ("batchnorm", "relu", "add")
ENGINE = ("conv", "linear")
MAX_SOURCES = 2          # the loader's streams: the tile and one second operand (a fused
#                          group is one source; LMODE 1's y is the second stream)


@dataclass(frozen=True)
class Plan:
    """Decisions: groups (named by their output layer) and BN layers whose BP dx are
    materialised; every other group and BN dx is fused."""

    materialise: frozenset = frozenset()
    dx_materialise: frozenset = frozenset()

    def to_doc(self, net: Net) -> dict:
        g, b = groups(net), dx_candidates(net)
        return {"groups_fused": sorted(x for x in g if x not in self.materialise),
                "groups_materialised": sorted(x for x in g if x in self.materialise),
                "bn_dx_fused": sorted(x for x in b if x not in self.dx_materialise),
                "bn_dx_materialised": sorted(x for x in b if x in self.dx_materialise)}

    @classmethod
    def from_doc(cls, doc: dict) -> "Plan":
        return cls(frozenset(doc.get("groups_materialised", ())),
                   frozenset(doc.get("bn_dx_materialised", ())))


# ---- the net's structure -------------------------------------------------------------
# Structure queries are pure functions of the net; the decision asks them thousands of
# times, so each is memoised per net object (the last few nets only).
_MEMO: dict[int, tuple[Net, dict]] = {}


def _memo(fn):
    def wrapped(net: Net, *args):
        ent = _MEMO.get(id(net))
        if ent is None or ent[0] is not net:
            if len(_MEMO) > 8:
                _MEMO.clear()
            ent = _MEMO[id(net)] = (net, {})
        key = (fn.__name__, *args)
        if key not in ent[1]:
            ent[1][key] = fn(net, *args)
        return ent[1][key]
    wrapped.__name__ = fn.__name__
    wrapped.__doc__ = fn.__doc__
    return wrapped


@_memo
def _consumers(net: Net, name: str) -> list[Layer]:
    return net.consumers(name)


@_memo
def _fused_relus(net: Net) -> set:
    return fused_relus(net)


@_memo
def _is_chain(net: Net, name: str) -> bool:
    """``name`` is an element-wise group member: a batchnorm, an add, or a ReLU after one."""
    if name == INPUT:
        return False
    l = net[name]
    if l.op in ("batchnorm", "add"):
        return True
    return (l.op == "relu" and _is_chain(net, l.inputs[0])
            and len(_consumers(net, l.inputs[0])) == 1)


@_memo
def _absorbed(net: Net, name: str) -> bool:
    """A chain member computed in the same pass as the next member of its group (its
    only consumer), as the generated program runs it (efgen/hls/fused.py): a batchnorm
    or an add with its fused ReLU (the store clamps), and the batchnorm whose BN_FIN
    writes the residual add after it (:func:`addx_bn`). Every other member is a group
    of its own: a ReLU'd batchnorm or an add read by an add, the earlier of two
    batchnorm operands."""
    cons = _consumers(net, name)
    if len(cons) != 1 or not _is_chain(net, name):
        return False
    c, op = cons[0], net[name].op
    if c.op == "relu":
        return op != "relu"
    if c.op == "add":
        return addx_bn(net, c.name) == name
    return False


@_memo
def addx_bn(net: Net, add: str) -> str | None:
    """The batchnorm whose materialisation pass (BN_FIN with FLAG_ADDX) also writes the
    residual ``add``: an operand of a two-input add whose only consumer is the add,
    whose statistics its producer's store accumulates, the other operand not the net's
    input; of two such operands the later in the net."""
    l = net[add]
    if l.op != "add" or len(l.inputs) != 2 or l.inputs[0] == l.inputs[1] \
            or INPUT in l.inputs:
        return None
    order = {x.name: i for i, x in enumerate(net)}
    cand = [x for x in l.inputs if net[x].op == "batchnorm"
            and len(_consumers(net, x)) == 1 and stats_producer(net, net[x]) is not None]
    return max(cand, key=lambda x: order[x]) if cand else None


@_memo
def loadable(net: Net, g: str) -> bool:
    """Group ``g`` can be fused into its consumers' loads as the engine's load path is
    built (efgen/hls/fused.py, the side record's LK1/LRELU): one batchnorm, its fused
    ReLU optional, whose statistics its producer's store accumulates; every consumer a
    conv/linear (their FP and WU loads apply it); a ReLU's error, if needed, sent by one
    conv/linear (its BP store recomputes the mask from y). Two-source groups (a residual
    add in the load) and groups read by a vector pass are materialised: the loads and
    masks for those are not built (the materialisation pass is priced instead)."""
    l = net[g]
    bn = l if l.op == "batchnorm" else (
        net[l.inputs[0]] if l.op == "relu" and l.inputs[0] != INPUT else None)
    if bn is None or bn.op != "batchnorm" or stats_producer(net, bn) is None:
        return False
    cons = _consumers(net, g)
    if not cons or any(c.op not in ENGINE for c in cons):
        return False
    if l.op == "relu" and l.needs_error:
        s = error_senders(net, g)
        if len(s) != 1 or s[0].op not in ENGINE:
            return False
    return True


@_memo
def groups(net: Net) -> list[str]:
    """Group outputs (the decision points), in net order."""
    return [l.name for l in net if _is_chain(net, l.name) and not _absorbed(net, l.name)]


@_memo
def _forced(net: Net, name: str) -> bool:
    """Groups that must be materialised: read by a batchnorm (its statistics need a
    stored input), by a layer that reads no tile (flatten, the loss), or a BN whose
    input is not stored."""
    for c in _consumers(net, name):
        if c.op in ("batchnorm", "flatten", "softmax_ce"):
            return True
    return not _consumers(net, name)


def stats_producer(net: Net, bn: Layer) -> str | None:
    """The conv/linear whose store accumulates ``bn``'s FP statistics (None: a pass)."""
    x = bn.inputs[0]
    if x == INPUT or net[x].op not in ENGINE or len(_consumers(net, x)) != 1:
        return None
    return x


@_memo
def dx_candidates(net: Net) -> list[str]:
    """BN layers whose BP dx may be fused into the producing conv's BP/WU loads (LMODE
    1): the producer has no bias (the WU's bias gradient reads the error plainly) and
    runs BP or WU."""
    out = []
    for l in net:
        p = stats_producer(net, l) if l.op == "batchnorm" and l.runs_bp else None
        if p is not None and not net[p].bias and (net[p].trainable or net[p].runs_bp):
            out.append(l.name)
    return out


def sources(net: Net, name: str, plan: Plan, inner: bool = False) -> list[str]:
    """Materialised tensors a consumer of ``name`` reads (in order, no repeats);
    ``inner``: as if the group ``name`` itself were fused (what its pass reads)."""
    if name == INPUT or not _is_chain(net, name):
        return [name]
    if name in plan.materialise and not inner:
        return [name]
    l = net[name]
    if l.op == "add":
        out: list[str] = []
        for x in l.inputs:
            for s in sources(net, x, plan):
                if s not in out:
                    out.append(s)
        return out
    return sources(net, l.inputs[0], plan)


@_memo
def _bn_of(net: Net, conv: str) -> str | None:
    cons = _consumers(net, conv)
    if len(cons) == 1 and cons[0].op == "batchnorm" and stats_producer(net, cons[0]):
        return cons[0].name
    return None


@_memo
def _dz_tensor(net: Net, bn: str) -> str:
    """The tensor whose finalised error is BN ``bn``'s dy (walking its ReLU/add chain)."""
    cur = bn
    while True:
        cons = _consumers(net, cur)
        if len(cons) == 1 and cons[0].op in ("relu", "add") and _is_chain(net, cons[0].name):
            cur = cons[0].name
            continue
        return cur


def _writes_bp(net: Net, l: Layer, fused: set) -> bool:
    """``l``'s BP writes an error tensor of its own (an engine store or a vector pass)."""
    if l.op in ENGINE:
        return True
    if l.op == "relu":
        return l.name not in fused
    if l.op == "flatten":
        return math.prod(l.in_shape[1:]) != 1
    return l.op in ("maxpool", "avgpool", "shortcut_a", "batchnorm")


@_memo
def finalisers(net: Net) -> dict[str, tuple[str, list[str]]]:
    """Tensor -> (where its error is finalised, its senders): one sender whose BP writes
    (its store or pass applies the mask), or of two senders the last, a conv/linear
    (its BP store reads the other's error beside the store: record SE); "" for a pass
    of its own (three or more senders, a last sender that is a vector pass or writes
    nothing: the error-sum pass, ERRSUM)."""
    fused = _fused_relus(net)
    order = {l.name: i for i, l in enumerate(net)}
    out = {}
    for l in net:
        if not l.needs_error or l.op == "softmax_ce":
            continue
        s = error_senders(net, l.name)
        if not s:
            continue
        last = min(s, key=lambda x: order[x.name])
        ok = _writes_bp(net, last, fused) if len(s) == 1 else (
            len(s) == 2 and last.op in ENGINE)
        out[l.name] = (last.name if ok else "", [x.name for x in s])
    return out


# ---- the fused jobs and vector passes ----------------------------------------------------

def _mask_streams(net: Net, t: str, plan: Plan, fused: set) -> list[str]:
    """Tensors read to recompute the fused ReLU mask of ``t`` (empty: no mask)."""
    if t not in fused:
        return []
    return sources(net, t, plan)


def _final_reads(net: Net, t: str, plan: Plan, fused: set, fin: dict) -> list[str]:
    """Extra streams at the finalisation of ``t``'s error, beyond the finaliser's own:
    the other senders' errors ("err:<sender>"), the mask sources and the BN ys."""
    where, senders = fin[t]
    reads = [f"err:{s}" for s in senders if s != where]
    reads += [m for m in _mask_streams(net, t, plan, fused) if m not in reads]
    for bn in _bns_finalised_at(net, t):
        y = net[bn].inputs[0]
        if y not in reads:
            reads.append(y)
    return reads


@_memo
def _bns_finalised_at(net: Net, t: str) -> list[str]:
    """BNs whose BP sums (sum(dy), sum(dy*x_hat)) accumulate where ``t``'s error is
    finalised: in a conv/linear's BP store that applies a fused ReLU's mask (x_hat from
    y, read beside the store unless y is the mask source), one BN per store, the first
    in the net whose statistics its producer accumulated. Every other BN runs a sums
    pass (:func:`bn_sums_pass`)."""
    fin = finalisers(net)
    if t not in fin or not fin[t][0] or net[fin[t][0]].op not in ENGINE \
            or t not in _fused_relus(net):
        return []
    for l in net:
        if l.op == "batchnorm" and (l.runs_bp or l.trainable) and _dz_tensor(net, l.name) == t \
                and stats_producer(net, l) is not None:
            return [l.name]
    return []


def bn_sums_pass(net: Net, bn: Layer) -> bool:
    """``bn``'s BP sums need a pass of their own (no finalising store takes them)."""
    return (bn.runs_bp or bn.trainable) and bn.name not in _bns_finalised_at(
        net, _dz_tensor(net, bn.name))


def fused_jobs(net: Net, batch: int, plan: Plan) -> list[engine.Job]:
    """:func:`efgen.model.engine.jobs_for` with the restructured loads and stores."""
    fused = _fused_relus(net)
    fin = finalisers(net)
    out = []
    for j in engine.jobs_for(net, batch):
        l = net[j.layer]
        x = l.inputs[0]
        src = sources(net, x, plan)
        xf_in = int(_is_chain(net, x) and x not in plan.materialise)
        bn = _bn_of(net, l.name)
        dx = int(bn is not None and bn in dx_candidates(net) and bn not in plan.dx_materialise)
        if j.phase == "fp":
            j = replace(j, in_extra=len(src) - 1, xf=xf_in, acc=int(bn is not None))
        elif j.phase == "wu":
            j = replace(j, in_extra=len(src) - 1, eo_extra=dx, xf=int(bool(xf_in or dx)))
        else:
            st = 0
            acc = 0
            if x in fin and fin[x][0] == l.name:
                st = len(_final_reads(net, x, plan, fused, fin))
                acc = int(bool(_bns_finalised_at(net, x)))
            j = replace(j, mask=False, in_extra=dx, xf=dx, st_extra=st, acc=acc)
        out.append(j)
    return out


def fused_aux(net: Net, batch: int, hw: HwParams, word_bits: int, ddr_bytes_per_cycle: float,
              plan: Plan, momentum: bool = True, layout: str = "reshaped") -> list[AuxCost]:
    """The vector engine's passes of the restructured step (as :func:`efgen.model.aux.
    aux_costs`: one AuxCost per layer-phase that runs or is fused away)."""
    word_bytes = word_bits / 8
    bw = min(float(hw.port_words), ddr_bytes_per_cycle / word_bytes / hw.ports)
    maxb = float(hw.max_burst_beats * hw.port_words)
    fused = _fused_relus(net)
    fin = finalisers(net)
    W = lambda shape: _words(shape, batch, hw.lanes, layout == "reshaped")  # noqa: E731
    size = lambda t: W(net.shape_of(t) if t != INPUT else net.input_shape)  # noqa: E731
    out: list[AuxCost] = []

    def add(name, phase, op, passes):
        out.append(passes_cost(hw, bw, maxb, name, phase, op, passes))

    def zero(name, phase, op):
        out.append(AuxCost(name, phase, op, 0, 0, 0, 0, 0))

    def read_of(streams):
        return [size(s[4:]) if s.startswith("err:") else size(s) for s in streams]

    gset = set(groups(net))
    # errors finalised by a vector BP pass: that pass reads the extras beside its write
    pass_extra: dict[str, list[str]] = {}
    for t, (where, _s) in fin.items():
        if where and net[where].op not in ENGINE:
            pass_extra.setdefault(where, []).extend(
                [r for r in _final_reads(net, t, plan, fused, fin)])
    for l in net:
        y = W(l.out_shape)
        n_out = float(batch * math.prod(l.out_shape)) if l.out_shape else 0.0
        n_in = float(batch * math.prod(l.in_shape)) if l.in_shapes else 0.0
        x_reads = read_of(sources(net, l.inputs[0], plan)) if l.in_shapes else []
        extra = read_of(pass_extra.get(l.name, []))
        op = l.op
        if op == "batchnorm":
            c = float(l.in_shape[0])
            p = stats_producer(net, l)
            if p:
                zero(l.name, "fp", f"bn stats (fused in {p} store)")
            else:
                # BN_FP's mean and centred-variance passes over the stored input (its
                # normalisation is the group's materialisation pass)
                add(l.name, "fp", "bn stats (mean)", [(x_reads, [], n_in)])
                add(l.name, "fp", "bn stats (variance)", [(x_reads, [], n_in)])
            # per-channel finalisation: sums, gamma, beta, running stats in; the affine
            # constants and running stats out (one element per channel)
            add(l.name, "fp", "bn finalise", [([2 * c, 2 * c, 2 * c], [4 * c], c)])
            if l.runs_bp or l.trainable:
                add(l.name, "bp", "bn finalise", [([2 * c, 2 * c], [5 * c], c)])
                if bn_sums_pass(net, l):
                    add(l.name, "bp", "bn sums", [([y, W(l.in_shape)], [], n_in)])
            if l.runs_bp:
                if l.name in dx_candidates(net) and l.name not in plan.dx_materialise:
                    zero(l.name, "bp", f"bn dx (fused in {p} BP/WU loads)")
                else:
                    add(l.name, "bp", "bn dx", [([y, W(l.in_shape)], [W(l.in_shape)], n_in)])
        elif op in ("relu", "add") and _is_chain(net, l.name):
            pass
        elif op == "relu":
            if l.name in fused:
                zero(l.name, "fp", f"relu (fused into {net[l.inputs[0]].name})")
                if l.runs_bp:
                    zero(l.name, "bp", "relu (fused)")
            else:
                add(l.name, "fp", "relu", [(x_reads, [y], n_in)])
                if l.runs_bp:
                    add(l.name, "bp", "relu", [([y, y] + extra, [W(l.in_shape)], n_in)])
        elif op == "maxpool":
            bits = max(1, math.ceil(math.log2(l.kernel * l.kernel)))
            arg = math.ceil(n_out * bits / word_bits)
            add(l.name, "fp", "maxpool", [(x_reads, [y, arg], n_in)])
            if l.runs_bp:
                add(l.name, "bp", "maxpool", [([y, arg] + extra, [W(l.in_shape)], n_in)])
        elif op == "avgpool":
            add(l.name, "fp", "avgpool", [(x_reads, [y], n_in)])
            if l.runs_bp:
                add(l.name, "bp", "avgpool", [([y] + extra, [W(l.in_shape)], n_in)])
        elif op == "shortcut_a":
            add(l.name, "fp", "shortcut_a", [(x_reads, [y], n_out)])
            if l.runs_bp:
                src = W((l.in_shape[0], *l.out_shape[1:]))
                add(l.name, "bp", "shortcut_a", [([src] + extra, [W(l.in_shape)], n_in)])
        elif op == "flatten":
            if math.prod(l.in_shape[1:]) == 1:
                zero(l.name, "fp", "flatten (free)")
            else:
                add(l.name, "fp", "flatten (reorder)", [(x_reads, [y], n_in)])
                if l.runs_bp:
                    add(l.name, "bp", "flatten (reorder)", [([y] + extra, [W(l.in_shape)], n_in)])
        # a group's materialisation pass: its sources in, the group's output out
        if l.name in gset and l.name in plan.materialise:
            add(l.name, "fp", "group (materialise)",
                [(read_of(sources(net, l.name, plan, inner=True)), [y], n_out)])
        elif l.name in gset:
            zero(l.name, "fp", "group (fused in consumers' loads)")
        # errors finalised by a pass of their own (the last sender writes nothing)
        if l.name in fin:
            where, senders = fin[l.name]
            if not where:
                more = [r for r in _final_reads(net, l.name, plan, fused, fin)
                        if not r.startswith("err:")]
                if len(senders) > 1 or more:
                    reads = read_of([f"err:{s}" for s in senders] + more)
                    add(l.name, "bp", "error sum/mask", [(reads, [y], n_out)])
            elif len(senders) > 1 or _mask_streams(net, l.name, plan, fused):
                zero(l.name, "bp", f"error sum/mask (fused in {where} BP)")
        if l.trainable:
            vec = [s for n, s in l.param_shapes().items() if n != "weight"]
            words = float(sum(math.prod(s) for s in vec))
            if words:
                k = 2 if momentum else 1
                add(l.name, "sgd", "sgd (vectors)", [([words] * (k + 1), [words] * k, words)])
    return out


# ---- the decision ----------------------------------------------------------------------

def initial_plan(net: Net) -> Plan:
    """Fuse every group the loader can take (:func:`loadable`) and every BN dx;
    materialise the others."""
    return Plan(frozenset(g for g in groups(net) if _forced(net, g) or not loadable(net, g)))


def feasible(net: Net, plan: Plan) -> bool:
    for g in groups(net):
        if g in plan.materialise:
            continue
        if _forced(net, g) or not loadable(net, g) \
                or len(sources(net, g, plan)) > MAX_SOURCES:
            return False
    return True


def decide(net: Net, batch: int, hw: HwParams, word_bytes: float, ddr_bytes_per_cycle: float,
           momentum: bool = True, fixed: dict | None = None,
           energy=None, dram: bool = False) -> tuple[Plan, dict]:
    """The plan with the fewest modelled step cycles (greedy single flips from
    :func:`initial_plan`, the best flip first, ties to the earlier decision), and the
    chosen tilings of its jobs (:func:`efgen.model.engine.choose`). ``energy``: the
    board's energy constants (:func:`efgen.model.energy.energy_constants`) to minimise
    joules instead (the energy objective: tilings and decisions by joules); ``dram``:
    to minimise the DRAM words moved, cycles breaking ties (the dram objective)."""
    dram_score = engine.dram_score
    from efgen.model.energy import bram_accesses_per_cycle, energy_joules

    clock = hw.clock_mhz * 1e6
    cache: dict = {}
    fixed = fixed or {}
    base_jobs = engine.jobs_for(net, batch)
    key_of = {(j.layer, j.phase): i for i, j in enumerate(base_jobs)}
    wbits = int(round(word_bytes * 8))

    def price(jobs):
        """Choose the tilings of the jobs not yet priced, in one engine evaluation."""
        miss = [j for j in dict.fromkeys(jobs) if j not in cache]
        if miss:
            fx = {i: fixed[key_of[(j.layer, j.phase)]] for i, j in enumerate(miss)
                  if key_of[(j.layer, j.phase)] in fixed}
            score = dram_score if dram else None
            if energy is not None:
                acc = np.asarray([bram_accesses_per_cycle(hw, j.phase) for j in miss])[:, None]

                def score(r):
                    words = r["read_words"] + r["write_words"]
                    return energy_joules(r["cycles"] / clock, 0.0,
                                         r["compute_cycles"] * acc + words,
                                         words * word_bytes, energy)
            res = engine.choose(miss, hw, word_bytes, ddr_bytes_per_cycle, fixed=fx,
                                score=score)
            for i, j in enumerate(miss):
                cache[j] = {k: v[i] for k, v in res.items()}
                if energy is not None:
                    words = res["read_words"][i] + res["write_words"][i]
                    cache[j]["value"] = float(energy_joules(
                        res["cycles"][i] / clock, 0.0, res["compute_cycles"][i]
                        * bram_accesses_per_cycle(hw, j.phase) + words, words * word_bytes,
                        energy))
                elif dram:
                    cache[j]["value"] = float(dram_score({k: v[i] for k, v in res.items()}))
                else:
                    cache[j]["value"] = float(res["cycles"][i])

    def costs(plans):
        jobs = {p: fused_jobs(net, batch, p) for p in plans if feasible(net, p)}
        price([j for js in jobs.values() for j in js])
        out = []
        for p in plans:
            if p not in jobs:
                out.append(math.inf)
                continue
            a = fused_aux(net, batch, hw, wbits, ddr_bytes_per_cycle, p, momentum)
            if dram:
                va = sum(x.read_words + x.write_words + 1e-12 * x.cycles for x in a)
            elif energy is None:
                va = sum(x.cycles for x in a)
            else:
                w = sum(x.read_words + x.write_words for x in a)
                va = float(energy_joules(sum(x.cycles for x in a) / clock,
                                         sum(x.elements for x in a), w, w * word_bytes, energy))
            out.append(sum(cache[j]["value"] for j in jobs[p]) + va)
        return out

    plan = initial_plan(net)
    best = costs([plan])[0]
    choices = [("g", g) for g in groups(net) if not _forced(net, g) and loadable(net, g)] + \
              [("d", b) for b in dx_candidates(net)]
    while choices:
        flips = [Plan(plan.materialise ^ {name}, plan.dx_materialise) if kind == "g"
                 else Plan(plan.materialise, plan.dx_materialise ^ {name})
                 for kind, name in choices]
        cs = costs(flips)
        i = int(np.argmin(cs))
        if not cs[i] < best - 1e-9:
            break
        best, plan = cs[i], flips[i]
    jobs = fused_jobs(net, batch, plan)
    price(jobs)
    res = {k: np.asarray([cache[j][k] for j in jobs]) for k in cache[jobs[0]]
           if k != "value"} if jobs else {}
    return plan, res


PER_CHANNEL = ("bn finalise", "sgd (vectors)")


def whole_tensor_passes(aux: list[AuxCost]) -> int:
    """The vector engine's whole-tensor passes among :func:`fused_aux`'s rows (each row
    that runs is one pass; BN finalisation and the SGD of vectors are per channel)."""
    return sum(1 for a in aux if a.cycles > 0 and a.op not in PER_CHANNEL)


def vector_cycles(rows) -> float:
    """Cycles of the vector engine among evaluate_design's rows (everything but the
    convolution engine's jobs and their SGD write-back)."""
    return float(sum(r.cycles for r in rows
                     if r.engine != "conv" and not r.engine.startswith("sgd (weights")))


def figures(t: dict, rows) -> dict:
    """The totals :func:`efgen.model.schedule.fusion_comparison` reports."""
    v = vector_cycles(rows)
    return {"cycles": t["cycles"], "effective_gflops": t["effective_gflops"],
            "dram_bytes": t["dram_bytes"], "vector_cycles": v,
            "vector_share": v / t["cycles"] if t["cycles"] else 0.0,
            "energy_j": t["energy_j"], "dsp": t["resources"]["dsp"]}


def fusion_markdown(f: dict) -> list[str]:
    """report.md's section on the restructured batchnorm."""
    L = ["## Restructured batchnorm", ""]
    L.append("BN statistics and sums accumulate in the engine's stores; BN normalise, "
             "ReLU and BN BP dx apply in its loads where the model decided so, a residual "
             "add in the pass that finalises the BN before it "
             "(efgen/model/restructure.py). The generated HLS C++ (hls/) runs this plan "
             "(hls/program.json's `fusion` lists any difference; `--csim` checks it against "
             "the golden step); these cycle terms are the HLS engine's model. rtl/ holds the "
             "reference RTL built with its fused datapath, which runs the same program "
             "(`efgen cosim --step --fuse` runs a step of it on the RTL against the golden and "
             "the RTL's model). `--no-fuse` prices and generates the unfused step (hls/ and "
             "rtl/).")
    L.append("")
    L.append("| figure | fused | no-fuse (same array) |")
    L.append("| --- | ---: | ---: |")
    a, b = f["fused"], f.get("no_fuse")
    rows = [("cycles per step", "{:,.0f}", "cycles"), ("effective GFLOPS", "{:.2f}", "effective_gflops"),
            ("DRAM per step (MB)", "{:,.1f}", "dram_bytes"),
            ("vector-engine share of the cycles", "{:.1%}", "vector_share"),
            ("DSP", "{:,.0f}", "dsp")]
    for name, fmt, k in rows:
        va, vb = a[k], (b[k] if b else None)
        if k == "dram_bytes":
            va, vb = va / 1e6, (vb / 1e6 if b else None)
        L.append(f"| {name} | {fmt.format(va)} | {fmt.format(vb) if b else 'n/a'} |")
    L.append("")
    d = f["decisions"]
    for key, what in (("groups_fused", "Element-wise groups fused into their consumers' loads"),
                      ("groups_materialised", "Element-wise groups materialised by a vector pass"),
                      ("bn_dx_fused", "BN BP dx fused into the producing conv's BP/WU loads"),
                      ("bn_dx_materialised", "BN BP dx materialised by a vector pass")):
        L.append(f"- {what}: {', '.join(d.get(key, [])) or 'none'}.")
    L.append("")
    return L
