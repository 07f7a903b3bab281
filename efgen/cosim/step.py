"""Training steps with the conv/linear layer-phases and the element-wise descriptors on
the reference RTL.

The steps are the board driver's: :class:`efgen.runtime.trainer.Trainer` (the same
descriptors and DRAM image the C-simulation runs, the same register protocol,
:mod:`efgen.runtime.protocol`). Inside one cocotb simulation (sim/top/cocotb_top.py)
:func:`drive` executes its bus operations (:func:`run_async`), with the DRAM image at a
chosen word address of the simulated bus. On the RTL (written over AXI4-Lite, started,
DRAM shared with the host through cocotbext-axi):

* every CONV_FP / CONV_BP / CONV_WU descriptor (``layer_seq`` and the engine);
* every RELU_FP / RELU_BP / ADD_FP / ERRSUM descriptor (``vec_unit``, the RTL's vector
  unit: residual adds with their ReLU, standalone ReLUs and their masks, error sums of
  tensors with several readers, with the ReLU mask);
* every BN_FP / BN_BP / BN_FIN descriptor (``bn_unit``; the restructured BN's BN_FIN and
  BN_BP with FLAG_SUMS / FLAG_DXK in a fused Design's step, whose conv descriptors run
  with their side records on the RTL built with the fused datapath, RtlParams.fuse);
* every MAXPOOL / AVGPOOL / SHORTCUT / FLATTEN FP and BP descriptor (``pool_unit``: pooling
  with its argmax, the option-A shortcut, flatten's reorder).

In numpy (:class:`efgen.csim.interp.Interp`, itself checked against the golden), as on
the real host: the softmax cross-entropy. A conv descriptor with a bias on a layer wider than
:data:`efgen.rtl.top.BIAS_BUF` channels (the RTL rejects it, ERR_BIAS) runs without it on
the RTL, and its bias part on the host right after, listed as a host part: FP's bias add
(and a fused ReLU after it), WU's bias gradient and its SGD update (and the gradient's
debug copy at a[7]). Narrower ones run whole on the RTL: FP adds the bias on tile_wr's
store lanes, then the ReLU; WU sums the error words per channel as they load and runs
the bias SGD in sgd_wb after the last chunk. (The weight gradient's debug copy, a[6], is
not written by the RTL, so its trace key is not compared.)

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

from efgen.golden.model import SGD, init_state, synthetic_batch
from efgen.runtime import protocol
from efgen.runtime.trainer import Ran, Trainer

TIMEOUT = 5_000_000      # cycles a descriptor may run in co-simulation before it is a hang


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
    final_state: object = None                     # the last step's: the state after it

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


async def run_async(ops, host, mem: np.ndarray, base_words: int = 0):
    """Execute a generator of bus operations (:mod:`efgen.runtime.protocol`) inside
    cocotb: registers through ``host.axil`` (AxiLiteMaster), the DRAM image copied into
    and out of the AxiRam at ``base_words``. ``host`` is sim/top/cocotb_top.py's Host."""
    from cocotb.triggers import ClockCycles

    value = None
    while True:
        try:
            op = ops.send(value)
        except StopIteration as stop:
            return stop.value
        value = None
        if isinstance(op, protocol.Write):
            await host.axil.write_dword(op.offset, int(op.value) & 0xFFFFFFFF)
        elif isinstance(op, protocol.Read):
            value = int(await host.axil.read_dword(op.offset))
        elif isinstance(op, protocol.Wait):
            await ClockCycles(host.dut.clk, op.cycles)
        elif isinstance(op, protocol.ToDevice):
            host.write_image(base_words, mem.view(np.uint32))
        elif isinstance(op, protocol.FromDevice):
            mem[:] = host.read_image(base_words, mem.size).view(np.float32)
        else:
            raise TypeError(f"unknown bus operation {op!r}")


async def drive(host, plan: dict) -> dict:
    """Run ``plan["batches"]`` training steps of ``plan["trainer"]`` (an
    :class:`efgen.runtime.trainer.Trainer`, the board driver's) inside cocotb, every
    descriptor checked (:class:`efgen.csim.verdict.LocalCheck`). Per step: the state
    before it, the loss, where each descriptor ran, the local checks."""
    from efgen.csim.verdict import LocalCheck

    tr = plan["trainer"]
    steps = []
    for x, labels in plan["batches"]:
        before = tr.state()
        check = LocalCheck(tr.prog)
        log = await run_async(tr.step_ops(x, labels, check, TIMEOUT), host, tr.mem,
                              tr.base_words)
        steps.append({"state": before, "loss": log.loss, "ran": [vars(r) for r in log.ran],
                      "local": check.rows, "descriptors": check.count,
                      "tensors": tr.image.tensors()})
    return {"steps": steps, "mem": tr.mem.copy(), "state": tr.state()}


def run_rtl_steps(design, p, batches, state=None, *, sim: str = "verilator",
                  workdir: Path | None = None, sgd: SGD = SGD(), base_words: int = 0,
                  latency: int | None = None, pause=None, plusargs: tuple = (),
                  seed: int = 0) -> list[StepResult]:
    """Training steps of ``design`` on ``batches`` (``[(x, labels), ...]``) with the board
    driver's :class:`~efgen.runtime.trainer.Trainer` against the RTL of ``p``, its DRAM
    image at word ``base_words`` of the simulated bus, from ``state`` (default the seeded
    He init). Step k is compared with the golden step from the RTL's own state after step
    k-1 (``pause``: an efgen.cosim.layers.Pause; ``plusargs``: e.g. layers.RANDOM_INIT)."""
    from efgen.cosim.layers import DRAM_LATENCY, simulate
    from efgen.csim.csim import compare, golden_step
    from efgen.csim.verdict import decision_flips

    t0 = time.perf_counter()
    net = design.net_ir
    work = (Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="efgen-step-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    tr = Trainer(design, lr=sgd.lr, momentum=sgd.momentum, weight_decay=sgd.weight_decay,
                 base_words=base_words)
    batches = [(np.asarray(x, np.float32), np.asarray(lab, np.int64)) for x, lab in batches]
    tr.load_state(init_state(net, seed=seed, dtype=np.float32) if state is None else state,
                  batches[0][0])
    with open(work / "plan.pkl", "wb") as f:
        pickle.dump({"trainer": tr, "batches": batches}, f)
    simulate(p, work, {"step": str(work / "plan.pkl"), "step_out": str(work / "step.pkl"),
                       "latency": DRAM_LATENCY if latency is None else latency,
                       "pause": vars(pause) if pause else None}, sim=sim, plusargs=plusargs)
    with open(work / "step.pkl", "rb") as f:
        got = pickle.load(f)
    out = []
    for (x, labels), st in zip(batches, got["steps"]):
        golden = golden_step(net, st["state"], x, labels, sgd)
        ran = [Ran(**r) for r in st["ran"]]
        # RTL WU descriptors do not write the gradient debug copies (a[6]): not compared.
        skipped = sorted(f"{r.layer}:grad.weight" for r in ran
                         if r.where == "rtl" and r.phase == "wu")
        trace = {k: v for k, v in golden.trace.items() if k not in skipped}
        rows = compare(trace, st["tensors"])
        flips = decision_flips(net, golden.trace, st["tensors"])
        out.append(StepResult(st["loss"], golden.loss, ran, rows, skipped, 0.0, st["local"],
                              st["descriptors"], flips))
    out[-1].seconds = time.perf_counter() - t0
    out[-1].final_state = got["state"]
    return out


def run_rtl_step(net, design, p, *, sim: str = "verilator", workdir: Path | None = None,
                 seed: int = 0, sgd: SGD = SGD(), latency: int | None = None, pause=None,
                 plusargs: tuple = (), base_words: int = 0) -> StepResult:
    """One training step of ``net`` (seeded synthetic batch, seeded He init) with its
    conv/linear layer-phases on the RTL of ``p`` (see :func:`run_rtl_steps`)."""
    x, labels = synthetic_batch(net, design.batch, seed=seed + 1)
    return run_rtl_steps(design, p, [(x, labels)], sim=sim, workdir=workdir, sgd=sgd,
                         base_words=base_words, latency=latency, pause=pause,
                         plusargs=plusargs, seed=seed)[0]


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


__all__ = ["Ran", "StepResult", "drive", "format_step", "run_async", "run_rtl_step",
           "run_rtl_steps"]
