"""Selective layer update (SLU) in the generated host runtime (issue 15).

Golden semantics: :class:`efgen.methods.step.StepPlan` (``sub_batches``, ``add_fp``,
``branch_rows``) inside :func:`efgen.golden.model.train_step`, after E2-Train
(``main_all.py``, ``models/new_resnet.py``): a gated residual block whose gate skips it
for a sample costs no FP, BP or WU for that sample, and its output is the shortcut. The
branch runs on the samples that keep it (its batchnorms' statistics are theirs); a
branch no sample ran gets a zero gradient (SGD still applies momentum and weight decay)
and its batchnorms' running statistics do not change.

The program is built at the full batch B; for each gated block j the host holds a run
flag per image (region ``slu:run:<block>``, B floats, 1 = the image runs the branch,
which the caller writes before ``efgen_step``: on the board its gate's decisions, in
C-simulation :func:`efgen.methods.step.draw_plan`'s seeded masks). The branch's
feature maps and errors are compact: the k_j running images are the first k_j images
of the B-image regions (an image of a blocked map is contiguous), and every descriptor of
a branch layer (Step.block = j) runs with ``batch = k_j``: the host copies the compiled
descriptor and sets its batch field (the EfgenDesc layout is unchanged), or skips it
when k_j = 0. Around the branch, host ops (hls_kernels/efgen_host_ops.h) run at B:

* FP: HOST_SLU_GATHER copies the running images of the block input into
  ``slu_in:<block>``, which the branch's first layer reads (FP and WU);
* FP: HOST_SLU_ADD replaces the block's ADD_FP: y = shortcut (every image) plus the
  compact branch output on the running images (its fused ReLU too);
* BP: HOST_SLU_GATHER copies the running images' rows of the add's error into the
  branch's last layer's error (an alias of the add's error without SLU);
* BP: HOST_SLU_SCATTER expands the branch's input error (the first layer's error part)
  in place to B images, zero for the skipped ones, before the error sum with the
  shortcut's error;
* k_j = 0: the branch's descriptors are skipped and the host runs HOST_SGD0 for every
  trainable branch parameter (SGD with a zero gradient; the gradient's debug copy
  zeroed), as the golden step does.

Not with ``--fuse`` (the restructured loads and stores assume the full batch) nor with
instance filtering (the gate masks would be for the kept instances, which only the
filter decides inside the step).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from efgen.errors import EfgenError
from efgen.frontend.ir import INPUT
from efgen.hls.desc import OPS
from efgen.hls.regions import Step
from efgen.methods.spec import residual_blocks

RUN = "slu:run:"


@dataclass
class SluPlan:
    """What the host runtime needs for SLU (Program.slu)."""

    blocks: list[str]                       # gated blocks; index = Step.block
    run: list[str]                          # per block: its run-flag region
    rows: dict[str, int] = field(default_factory=dict)   # compact trace key -> block
    zero: list[Step] = field(default_factory=list)       # k = 0: SGD0 (Step.block)


def _refuse(what: str, fix: str) -> EfgenError:
    return EfgenError(what, where="training.layer_update", fix=fix)


def apply(b) -> SluPlan | None:
    """Rewrite the builder ``b``'s FP/BP steps for the gated blocks (module docstring)."""
    t = b.training
    if t is None or not t.layer_update:
        return None
    if b.fx:
        raise _refuse("selective layer update is not in the fused (--fuse) C++",
                      "build without --fuse to run SLU in the generated C++")
    if t.instance_filter:
        raise _refuse("selective layer update with instance filtering is not in the "
                      "generated C++", "use one of layer_update and instance_filter")
    blocks = {blk.name: blk for blk in residual_blocks(b.net)}
    plan = SluPlan([], [])
    for j, name in enumerate(t.block_keep()):
        _block(b, blocks[name], j, plan)
    return plan


def _index(steps: list[Step], branch: set[str]) -> list[int]:
    return [i for i, s in enumerate(steps) if s.layer in branch]


def _block(b, blk, j: int, plan: SluPlan) -> None:
    net, B = b.net, b.B
    branch = set(blk.branch)
    run = RUN + blk.name
    b.add(run, "vec", (B,))
    plan.blocks.append(blk.name)
    plan.run.append(run)
    first, last = net[blk.branch[0]], net[blk.branch[-1]]
    xin = f"act:{b.dram(blk.input)}" if blk.input != INPUT else f"act:{INPUT}"
    sin = f"slu_in:{blk.name}"
    b.add(sin, "fm", b.regions[xin].shape)
    # every branch step runs on the compact sub-batch and reads the compact block input
    mine = {id(s.desc) for s in b.fp + b.bp if s.layer in branch}
    for s in b.fp + b.bp:
        if s.layer in branch:
            s.block = j
    for d, a in b.pending:
        if id(d) in mine:
            for i, rname in a.items():
                if rname == xin:
                    a[i] = sin
    # FP: gather the block input; the add passes the shortcut where the branch is skipped
    fi = _index(b.fp, branch)
    if not fi:
        raise _refuse(f"block {blk.name}'s branch has no FP pass", "gate another block")
    g = b.desc("HOST_SLU_GATHER", first, [], {0: xin, 5: run, 7: sin})
    b.fp.insert(fi[0], Step(blk.name, "slu_gather", g))
    add = next(s for s in b.fp if s.layer == blk.add and s.desc.op == OPS["ADD_FP"])
    add.desc.op = OPS["HOST_SLU_ADD"]
    a = next(a for d, a in b.pending if d is add.desc)
    y = a[7]
    a.clear()
    a.update({0: f"act:{b.dram(last.name)}", 1: f"act:{b.dram(blk.shortcut)}"
              if blk.shortcut != INPUT else f"act:{INPUT}", 5: run, 7: y})
    add.what = "slu_add"
    rows = {f"act:{b.dram(n)}" for n in blk.branch} | {f"err:{b.dram(n)}" for n in blk.branch}
    _zero_steps(b, blk, j, plan)
    if _index(b.bp, branch):
        _bp(b, blk, run)
    for rname in rows:
        r = b.regions.get(rname)
        if r is not None and r.kind == "fm" and not getattr(r, "alias_of", None):
            for tr in r.traces:
                plan.rows[tr.key] = j


def _bp(b, blk, run: str) -> None:
    """BP around a gated branch: its error gathered from the add's, its input error
    scattered back (module docstring)."""
    net, branch = b.net, set(blk.branch)
    first, last = net[blk.branch[0]], net[blk.branch[-1]]
    # the branch's error is the running images' rows of the add's error
    bi = _index(b.bp, branch)
    e = f"err:{b.dram(last.name)}"
    old = b.regions[e]
    target = getattr(old, "alias_of", None)
    while target and getattr(b.regions[target], "alias_of", None):
        target = b.regions[target].alias_of
    if target is None:
        raise _refuse(f"block {blk.name}: the error of {last.name} is not the add's",
                      "gate a block whose branch ends in a layer only the add reads")
    del b.regions[e]
    b.add(e, "fm", b.regions[target].shape, old.traces)
    g = b.desc("HOST_SLU_GATHER", net[blk.add], [], {0: target, 5: run, 7: e})
    b.bp.insert(bi[0], Step(blk.name, "slu_gather_dy", g))
    # ... and its input error goes back to the running images (zero for the others)
    if first.runs_bp:
        dst, fl, extra = b.sender_dst(first, blk.input)
        if not dst.startswith("errpart:") or fl or extra:
            raise _refuse(f"block {blk.name}: the input error of {first.name} is not summed "
                          "with the shortcut's", "gate a block whose input feeds its shortcut")
        last_i = _index(b.bp, branch)[-1]
        s = b.desc("HOST_SLU_SCATTER", first, [], {5: run, 7: dst})
        b.bp.insert(last_i + 1, Step(blk.name, "slu_scatter", s))


def _zero_steps(b, blk, j: int, plan: SluPlan) -> None:
    """k = 0: SGD with a zero gradient of every trainable branch parameter (HOST_SGD0,
    as efgen.hls.methods.drop_steps), the gradient's debug copy zeroed."""
    regions = b.regions
    for name in blk.branch:
        l = b.net[name]
        if not l.trainable:
            continue
        if l.op in ("conv", "linear"):
            parts = [("weight", f"w:{name}", f"vel:{name}.weight")]
            if l.bias:
                parts.append(("bias", f"b:{name}", f"vel:{name}.bias"))
            for n, p, v in parts:
                a = {2: p, 3: v}
                if f"grad:{name}.{n}" in regions:
                    a[6] = f"grad:{name}.{n}"
                d = b.desc("HOST_SGD0", l, [], a, in_c=regions[p].words, out_c=0)
                plan.zero.append(Step(name, "slu_sgd0", d, j))
        elif l.op == "batchnorm":
            c = l.in_shape[0]
            a = {2: f"gamma:{name}", 3: f"vel:{name}", 4: f"beta:{name}"}
            if f"grad:{name}" in regions:
                a[6] = f"grad:{name}"
            d = b.desc("HOST_SGD0", l, [], a, in_c=c, out_c=c)
            plan.zero.append(Step(name, "slu_sgd0", d, j))
