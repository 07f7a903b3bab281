"""Which element-wise work is fused into which engine pass (an architecture decision
that the analytical model and the code generators both read, so they agree).

* A ReLU is *fused* when its producer is a conv, linear, batchnorm or add and the ReLU
  is the producer's only consumer: FP clamps at the producer's store, and no ReLU
  pass runs.
* Its BP mask is applied where the error w.r.t. the ReLU's output is finalised:
  - one layer sends that error: that layer's BP store applies the mask, reading its
    own input (which *is* the ReLU's output) alongside;
  - several layers send it: the error-sum pass applies the mask, reading the ReLU's
    output once more.
"""

from __future__ import annotations

from efgen.frontend.ir import INPUT, Layer, Net

FUSING_PRODUCERS = ("conv", "linear", "batchnorm", "add")


def fused_relus(net: Net) -> set[str]:
    fused = set()
    for l in net:
        if l.op != "relu" or l.inputs[0] == INPUT:
            continue
        src = l.inputs[0]
        if net[src].op in FUSING_PRODUCERS and len(net.consumers(src)) == 1:
            fused.add(l.name)
    return fused


def error_senders(net: Net, tensor: str) -> list[Layer]:
    """Layers whose BP writes an error for ``tensor`` (a layer name)."""
    return [c for c in net.consumers(tensor)
            if c.runs_bp and c.inputs_need_error[list(c.inputs).index(tensor)]]


def bp_store_masks(net: Net) -> set[str]:
    """Layers whose BP store applies a fused ReLU's mask (they are the only sender)."""
    fused = fused_relus(net)
    out = set()
    for r in fused:
        s = error_senders(net, r)
        if len(s) == 1 and s[0].op not in ("add", "flatten"):
            out.add(s[0].name)
    return out


def masked_error_sums(net: Net) -> set[str]:
    """Fused-ReLU outputs whose error is summed from several senders (sum + mask pass)
    or whose single sender cannot mask (add, flatten pass the error through)."""
    fused = fused_relus(net)
    out = set()
    for r in fused:
        s = error_senders(net, r)
        if len(s) > 1 or (len(s) == 1 and s[0].op in ("add", "flatten")):
            out.add(r)
    return out
