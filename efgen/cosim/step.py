"""One training step with the conv and linear layer-phases on the reference RTL.

The step is the accelerator program of :mod:`efgen.hls.program` (the same descriptors and
DRAM image the C-simulation runs). Inside one cocotb simulation (sim/top/cocotb_top.py)
:func:`drive` walks it in order: every CONV_FP / CONV_BP / CONV_WU descriptor runs on the
RTL (written over AXI4-Lite, started, DRAM shared with the host through cocotbext-axi);
every other descriptor - batchnorm, pooling, adds, error sums, shortcut, flatten, ReLU -
runs in numpy (:class:`efgen.csim.interp.Interp`, itself checked against the golden), and
so does the softmax cross-entropy, as on the real host. Parts of a conv descriptor the RTL
has no datapath for yet also run on the host, right after the RTL run, and are listed:

* FP with a bias: the bias add (and a fused ReLU after it);
* WU with a bias: the bias gradient and its SGD update; the gradient debug copy (a[6])
  is not written, so its trace key is not compared.

The verdict is :mod:`efgen.csim.verdict`'s, as in C-simulation: after each descriptor
(RTL or numpy, with its host parts) its outputs are checked against the interpreter's run
of it on the DRAM image from just before it (the golden op on the step's own inputs), and
the ReLU-mask / maxpool-argmax decisions that flipped against the golden step must lie
within the benign margin. After the step every tensor in DRAM is compared with
:func:`efgen.golden.model.train_step` (the end-to-end drift, reported).
"""

from __future__ import annotations

import pickle
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from efgen.golden import ops
from efgen.golden.model import SGD, init_state, synthetic_batch
from efgen.hls.desc import FLAGS, OPS
from efgen.hls.program import build_program
from efgen.rtl.dma import desc_register_writes

CONV_OPS = {OPS["CONV_FP"]: "fp", OPS["CONV_BP"]: "bp", OPS["CONV_WU"]: "wu"}
OP_NAMES = {v: k for k, v in OPS.items()}


@dataclass
class Ran:
    """One descriptor of the step: where it ran."""

    layer: str
    phase: str
    op: str
    where: str                    # "rtl" or "numpy"
    host_parts: tuple = ()        # parts of an RTL descriptor done on the host
    cycles: int = 0


@dataclass
class StepResult:
    loss: float
    golden_loss: float
    ran: list[Ran] = field(default_factory=list)
    rows: list = field(default_factory=list)       # efgen.csim.csim.Compared
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0
    local: list = field(default_factory=list)      # efgen.csim.verdict.LocalRow
    descriptors: int = 0
    flips: list = field(default_factory=list)      # efgen.csim.verdict.Flip

    @property
    def max_rel(self) -> float:
        """The worst end-to-end drift (reported, not the verdict)."""
        return max((r.rel_err for r in self.rows), default=0.0)

    @property
    def drift_ok(self) -> bool:
        return all(r.ok for r in self.rows)

    @property
    def ok(self) -> bool:
        """The verdict: every descriptor's local check, and only benign decision flips."""
        return (self.descriptors > 0 and all(r.ok for r in self.local)
                and all(f.benign for f in self.flips))


def rtl_desc(d):
    """The descriptor the RTL runs, and the host parts split off it."""
    d2 = type(d).from_buffer_copy(bytes(d))
    parts = []
    phase = CONV_OPS[d.op]
    if phase == "fp" and d.flags & FLAGS["BIAS"]:
        parts.append("bias add")
        d2.flags &= ~FLAGS["BIAS"]
        if d.flags & FLAGS["RELU"]:
            parts.append("ReLU after the bias")
            d2.flags &= ~FLAGS["RELU"]
    if phase == "wu" and d.flags & FLAGS["BIAS"]:
        parts.append("bias gradient + SGD")
        d2.flags &= ~FLAGS["BIAS"]
    return d2, tuple(parts)


def host_parts(it, d) -> None:
    """What the host adds to an RTL conv descriptor (see the module docstring)."""
    fl, B = d.flags, d.batch
    a = [int(v) for v in d.a]
    yout = (B, d.out_c, d.out_h, d.out_w)
    phase = CONV_OPS[d.op]
    if phase == "fp" and fl & FLAGS["BIAS"]:
        y = it.fm_get(a[7], yout) + it.v_get(a[2], d.out_c)[None, :, None, None]
        it.fm_put(a[7], np.maximum(y, 0) if fl & FLAGS["RELU"] else y)
    elif phase == "wu" and fl & FLAGS["BIAS"]:
        gb = ops.conv_bias_grad(it.fm_get(a[0], yout))
        sgd = (float(d.lr), float(d.momentum), float(d.weight_decay))
        bb, vb = ops.sgd_update(it.v_get(a[4], d.out_c), gb, it.v_get(a[5], d.out_c), *sgd)
        it.v_put(a[4], bb)
        it.v_put(a[5], vb)
        if a[7]:
            it.v_put(a[7], gb)


async def drive(host, plan: dict) -> dict:
    """Run the step inside cocotb. ``host`` is sim/top/cocotb_top.py's Host."""
    from efgen.csim.interp import Interp
    from efgen.csim.verdict import LocalCheck

    prog = plan["prog"]
    mem = plan["mem"]
    hw = prog.design.hw
    it = Interp(mem, hw.lanes, hw.tm, hw.tn)
    check = LocalCheck(prog)
    ran = []

    async def one(s):
        d = s.desc
        before = mem.copy()
        skip = set()
        if d.op in CONV_OPS:
            if CONV_OPS[d.op] == "wu" and d.a[6]:
                skip.add(int(d.a[6]))          # the RTL writes no gradient debug copy
            d2, parts = rtl_desc(d)
            host.write_image(0, mem.view(np.uint32))
            res = await host.run(s.layer + ":" + CONV_OPS[d.op],
                                 [[o, v] for o, v in desc_register_writes(d2)])
            mem[:] = host.read_image(0, mem.size).view(np.float32)
            host_parts(it, d)
            ran.append(dict(layer=s.layer, phase=CONV_OPS[d.op], op=OP_NAMES[d.op],
                            where="rtl", host_parts=parts, cycles=res["cycles"]))
        else:
            it.run(d)
            ran.append(dict(layer=s.layer, phase=s.what, op=OP_NAMES[d.op], where="numpy"))
        check.descriptor(s.layer, s.what, d, before, mem, skip)

    for s in prog.fp:
        await one(s)
    B, K = prog.design.batch, prog.net.num_classes
    lr = prog.regions[prog.logits]
    before = mem.copy()
    logits = it.fm_get(lr.offset, lr.shape).reshape(B, K)
    loss, dlogits = ops.softmax_ce(logits, plan["labels"])
    it.fm_put(prog.regions[prog.dlogits].offset, dlogits.reshape(B, K, 1, 1))
    check.loss(plan["labels"], float(loss), before, mem)
    ran.append(dict(layer="loss", phase="fp+bp", op="SOFTMAX_CE", where="numpy"))
    for s in prog.bp:
        await one(s)
    return {"loss": float(loss), "ran": ran, "mem": mem, "local": check.rows,
            "descriptors": check.count}


def run_rtl_step(net, design, p, *, sim: str = "verilator", workdir: Path | None = None,
                 seed: int = 0, sgd: SGD = SGD(), latency: int | None = None, pause=None,
                 plusargs: tuple = ()) -> StepResult:
    """One training step of ``net`` with its conv/linear layer-phases on the RTL of ``p``
    (``pause``: an efgen.cosim.layers.Pause; ``plusargs``: e.g. layers.RANDOM_INIT)."""
    from efgen.cosim.layers import DRAM_LATENCY, simulate
    from efgen.csim.csim import DramImage, compare, golden_step
    from efgen.csim.verdict import decision_flips

    t0 = time.perf_counter()
    work = (Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="efgen-step-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    prog = build_program(net, design, sgd.lr, sgd.momentum, sgd.weight_decay)
    img = DramImage(prog)
    state = init_state(net, seed=seed, dtype=np.float32)
    x, labels = synthetic_batch(net, design.batch, seed=seed + 1)
    img.load_state(state, x)
    golden = golden_step(net, state, x, labels, sgd)
    plan = {"prog": prog, "mem": img.mem, "labels": np.asarray(labels, np.int64)}
    with open(work / "plan.pkl", "wb") as f:
        pickle.dump(plan, f)
    simulate(p, work, {"step": str(work / "plan.pkl"), "step_out": str(work / "step.pkl"),
                       "latency": DRAM_LATENCY if latency is None else latency,
                       "pause": vars(pause) if pause else None}, sim=sim, plusargs=plusargs)
    with open(work / "step.pkl", "rb") as f:
        got = pickle.load(f)
    img.mem = got["mem"]
    # RTL WU descriptors do not write the gradient debug copies (a[6]): not compared.
    skipped = sorted(f"{r['layer']}:grad.weight" for r in got["ran"]
                     if r["where"] == "rtl" and r["phase"] == "wu")
    trace = {k: v for k, v in golden.trace.items() if k not in skipped}
    tensors = img.tensors()
    rows = compare(trace, tensors)
    flips = decision_flips(net, golden.trace, tensors)
    return StepResult(got["loss"], golden.loss, [Ran(**r) for r in got["ran"]], rows,
                      skipped, time.perf_counter() - t0, got["local"], got["descriptors"], flips)


def format_step(res: StepResult, model: dict | None = None) -> str:
    """The ran-where table and the comparison summary."""
    lines = ["descriptor                  ran on  cycles   model  err%   host parts"]
    for r in res.ran:
        m = (model or {}).get(f"{r.layer}:{r.phase}")
        mcol = f"{m:7.0f} {100 * (m - r.cycles) / r.cycles:+5.1f}" if (m and r.cycles) else \
            "      -     -"
        cyc = f"{r.cycles:7d}" if r.where == "rtl" else "      -"
        lines.append(f"{(r.layer + ':' + r.phase):26s}  {r.where:6s} {cyc} {mcol}   "
                     f"{', '.join(r.host_parts) or '-'}")
    from efgen.csim.csim import format_drift
    from efgen.csim.verdict import format_flips, format_local

    lines.append(f"{'PASS' if res.ok else 'FAIL'}; loss {res.loss:.6f} "
                 f"(golden {res.golden_loss:.6f})")
    lines += format_local(res.local, res.descriptors)
    lines += format_flips(res.flips)
    lines += format_drift(res.rows)
    if res.skipped:
        lines.append("not compared (the RTL does not write gradient debug copies): "
                     + ", ".join(res.skipped))
    return "\n".join(lines)


__all__ = ["Ran", "StepResult", "drive", "format_step", "run_rtl_step"]
