"""Early instance filtering (EIF) in the generated host runtime (issue 15).

Golden semantics: :func:`efgen.methods.step.filter_keep` and ``method_step``. The
filter net F (frozen, its layers named ``filter/<layer>`` as the cost model's
:func:`efgen.methods.cost.frozen` names them, so the schedule tiles them) runs its FP on
all B images; the main net's program is built at the kept batch ceil(keep * B), as
:func:`efgen.methods.cost.main_batch` prices it. The host runs, before the main step,
the ``filter`` steps:

* F's FP descriptors on the engine (regions ``eif:...`` in the same DRAM image, with F's
  parameters), its batchnorms as HOST_BN_EVAL (inference mode with the running
  statistics, as the golden filter runs F: ``forward(train=False)``);
* HOST_EIF: the per-instance cross-entropy from F's logits (a[0]) and the labels (a[2],
  B floats the host writes), the top ceil(keep*B) by loss (ties by index, the golden's
  stable argsort), the kept mask (B words) and the kept labels (K words) to a[5], and
  the kept images, in index order, from F's input (a[1]) into the main net's input (a[3]).

Then the main net's FP, loss (on the kept labels) and BP/WU run as without EIF.
"""

from __future__ import annotations

from dataclasses import replace

from efgen.errors import EfgenError
from efgen.frontend.ir import INPUT
from efgen.hls.desc import OPS
from efgen.hls.regions import Step
from efgen.methods.cost import frozen, main_batch

PREFIX = "eif:"
LABELS = "eif:labels"
KEEP = "eif:keep"


def filter_steps(b) -> list[Step]:
    """Add F's regions to the main builder ``b`` and return the host's filter steps (F's
    program is built by a builder of ``b``'s own class, efgen.hls.program's)."""
    t = b.training
    if t is None or not t.instance_filter:
        return []
    if b.fx:
        raise EfgenError("instance filtering is not in the fused (--fuse) C++ yet",
                         where="training.instance_filter",
                         fix="build without --fuse to run EIF in the generated C++")
    fnet = frozen(t.instance_filter.net)
    B = b.design.batch
    sub = type(b)(fnet, replace(b.design, training=None), b.sgd, debug_grads=False)
    sub.memory_map()
    sub.fp_descriptors()
    sub.loss()
    ren = {name: PREFIX + name for name in sub.regions}
    for name, r in sub.regions.items():
        # F is frozen and nothing golden traces it: its regions hold no trace.
        b.regions[ren[name]] = replace(r, name=ren[name], traces=[])
    for d, a in sub.pending:
        b.pending.append((d, {i: ren[n] for i, n in a.items()}))
    steps = []
    for s in sub.fp:
        if s.desc.op == OPS["BN_FP"]:
            s.desc.op = OPS["HOST_BN_EVAL"]
        steps.append(s)
    main_in = b.regions[f"act:{INPUT}"]
    main_in.init = None                       # HOST_EIF writes the kept images
    k = b.B
    b.add(LABELS, "vec", (B,))
    b.add(KEEP, "vec", (B + k,))
    c, h, w = fnet.input_shape
    d = b.desc("HOST_EIF", fnet[fnet.loss_layer.inputs[0]], [], {0: ren[sub.logits], 1: ren[f"act:{INPUT}"],
                                                 2: LABELS, 3: f"act:{INPUT}", 5: KEEP},
               n_src=k, in_c=c, in_h=h, in_w=w, out_c=fnet.num_classes,
               out_h=1, out_w=1)
    d.batch = B                               # the step's images (the main net's: k)
    steps.append(Step("filter", "eif", d))
    return steps


def kept_batch(design, training) -> int:
    """The main net's batch: ceil(keep * B) under EIF, else B."""
    return main_batch(design.batch, training)


def filter_net(prog):
    """The frozen filter net of an EIF program (its layers ``filter/<layer>``)."""
    from efgen.methods.spec import from_doc

    return frozen(from_doc(prog.design.training, prog.net).instance_filter.net)
