"""Training on the device: the host's side of a training step of the reference RTL.

A step is the accelerator program of :mod:`efgen.hls.program` (the descriptors and DRAM
image the C-simulation runs). :func:`train_step` walks it in order, as a generator of bus
operations (:mod:`efgen.runtime.protocol`):

* every CONV_FP / CONV_BP / CONV_WU descriptor runs on the device: the DRAM image is
  handed to it (:class:`~efgen.runtime.protocol.ToDevice`), the descriptor (its word
  offsets from the image, whose physical byte address goes to the pointer registers)
  is written and started through the register map, and the device's writes are taken back
  (:class:`~efgen.runtime.protocol.FromDevice`);
* every RELU_FP / RELU_BP / ADD_FP / ERRSUM descriptor (the element-wise family) runs on
  the device likewise (the RTL's vector unit, ``vec_unit``), and so does every MAXPOOL /
  AVGPOOL / SHORTCUT / FLATTEN FP and BP descriptor (its pooling unit, ``pool_unit``) and
  every BN_FP / BN_BP / BN_FIN (its batchnorm unit, ``bn_unit``: a fused build's
  restructured BN too, BN_FIN and BN_BP with FLAG_SUMS / FLAG_DXK, beside the fused conv
  descriptors' side records, RtlParams.fuse);
* a CONV_FP with FLAG_BIAS runs whole on the device: the sequencer loads the bias
  (a[2], at most :data:`efgen.rtl.top.BIAS_BUF` channels) and the store path adds it
  before the fused ReLU;
* a CONV_WU with FLAG_BIAS runs whole on the device too: the error words are summed per
  channel as they load (the sequencer's bias RAM), and after the last chunk the SGD
  write-back updates the bias (a[4]) and its velocity (a[5]) and writes the gradient's
  debug copy (a[7], when non-zero), up to BIAS_BUF channels;
* any other descriptor would run on the host in numpy (:class:`efgen.csim.interp.Interp`;
  the programs have none), and so do the parts of a conv descriptor on a layer wider than BIAS_BUF channels that the RTL rejects
  (ERR_BIAS): FP's bias add (with the ReLU after it), WU's bias gradient and its SGD
  update (and its debug copy at a[7]) (:func:`rtl_desc`, :func:`host_parts`);
* the softmax cross-entropy and its gradient run on the host.

:class:`Trainer` holds a DRAM image (a ``pynq.allocate`` buffer on a board, a numpy
array in co-simulation), packs parameters and batches into it with
:mod:`efgen.layout` (through :class:`efgen.csim.csim.DramImage`), runs steps, and reads
the trained parameters back as the ``.npz`` that ``efgen export --weights`` takes.
``DIR/driver/efgen_driver.py`` (written by ``efgen build``) runs it on a PYNQ board;
``efgen.cosim.step`` runs it inside cocotb against the RTL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generator

import numpy as np

from efgen.golden import ops
from efgen.hls.desc import FLAGS, OPS, EfgenDesc
from efgen.rtl.engine import wu_chunk
from efgen.rtl.top import BN_OPS as RTL_BN_OPS
from efgen.rtl.top import POOL_OPS as RTL_POOL_OPS
from efgen.rtl.top import VEC_OPS as RTL_VEC_OPS
from efgen.rtl.top import rtl_adds_bias, rtl_params
from efgen.runtime.protocol import FromDevice, ToDevice, run_descriptor

CONV_OPS = {OPS["CONV_FP"]: "fp", OPS["CONV_BP"]: "bp", OPS["CONV_WU"]: "wu"}
#: the non-conv descriptors the RTL runs: vec_unit's element-wise ones, bn_unit's
#: batchnorms and pool_unit's pooling / shortcut / flatten
VEC_OPS = frozenset(OPS[k] for k in RTL_VEC_OPS + RTL_BN_OPS + RTL_POOL_OPS)
OP_NAMES = {v: k for k, v in OPS.items()}


def rtl_desc(d: EfgenDesc, tn: int | None = None, wbuf_depth: int | None = None
             ) -> tuple[EfgenDesc, tuple[str, ...]]:
    """The descriptor the RTL runs, and the host parts split off it. Given the RTL's
    ``tn`` and ``wbuf_depth``, a WU descriptor's chunk ``mc`` is lowered to what its
    weight buffer holds (:func:`efgen.rtl.engine.wu_chunk`; the HLS engine does the same
    in hardware), which changes the chunking, not the result."""
    d2 = EfgenDesc.from_buffer_copy(bytes(d))
    parts = []
    phase = CONV_OPS[d.op]
    if phase == "wu" and tn is not None and wbuf_depth is not None:
        k = int(d.kh)
        d2.mc = wu_chunk(int(d.mc), int(d.in_c), k, tn, wbuf_depth)
    if phase == "fp" and d.flags & FLAGS["BIAS"] and not rtl_adds_bias(d.out_c):
        parts.append("bias add")
        d2.flags &= ~FLAGS["BIAS"]
        if d.flags & FLAGS["RELU"]:
            parts.append("ReLU after the bias")
            d2.flags &= ~FLAGS["RELU"]
    if phase == "wu" and d.flags & FLAGS["BIAS"] and not rtl_adds_bias(d.out_c):
        parts.append("bias gradient + SGD")
        d2.flags &= ~FLAGS["BIAS"]
    return d2, tuple(parts)


def host_parts(it, d: EfgenDesc) -> None:
    """What the host adds to an RTL conv descriptor (see the module docstring)."""
    fl, B = d.flags, d.batch
    a = [int(v) for v in d.a]
    yout = (B, d.out_c, d.out_h, d.out_w)
    phase = CONV_OPS[d.op]
    if phase == "fp" and fl & FLAGS["BIAS"] and not rtl_adds_bias(d.out_c):
        y = it.fm_get(a[7], yout) + it.v_get(a[2], d.out_c)[None, :, None, None]
        it.fm_put(a[7], np.maximum(y, 0) if fl & FLAGS["RELU"] else y)
    elif phase == "wu" and fl & FLAGS["BIAS"] and not rtl_adds_bias(d.out_c):
        gb = ops.conv_bias_grad(it.fm_get(a[0], yout))
        sgd = (float(d.lr), float(d.momentum), float(d.weight_decay))
        bb, vb = ops.sgd_update(it.v_get(a[4], d.out_c), gb, it.v_get(a[5], d.out_c), *sgd)
        it.v_put(a[4], bb)
        it.v_put(a[5], vb)
        if a[7]:
            it.v_put(a[7], gb)


@dataclass
class Ran:
    """One descriptor of a step: where it ran, the host parts of an RTL descriptor, and
    the device's CYCLES."""

    layer: str
    phase: str
    op: str
    where: str                    # "rtl" or "numpy"
    host_parts: tuple = ()
    cycles: int = 0


@dataclass
class StepLog:
    loss: float
    ran: list[Ran] = field(default_factory=list)

    @property
    def device_cycles(self) -> int:
        return sum(r.cycles for r in self.ran)


def train_step(prog, mem: np.ndarray, labels, *, base_words: int = 0, check=None,
               timeout_cycles: int | None = None) -> Generator[Any, Any, StepLog]:
    """One training step of ``prog`` on the DRAM image ``mem`` (float32 words; the input
    batch already in it), as a generator of bus operations (see the module docstring).

    ``base_words``: the image's word address on the device's bus. ``check``, if given,
    is an :class:`efgen.csim.verdict.LocalCheck`: every descriptor's outputs are checked
    against the golden op on the image from just before it (co-simulation)."""
    from efgen.csim.interp import Interp

    hw = prog.design.hw
    it = Interp(mem, hw.lanes, hw.tm, hw.tn)
    wbuf = rtl_params(prog.design).engine.wbuf_depth     # the RTL's weight bank depth
    log = StepLog(0.0)
    extra = {} if timeout_cycles is None else {"timeout_cycles": timeout_cycles}

    def one(s):
        d = s.desc
        before = mem.copy() if check is not None else None
        skip = set()
        if d.op in CONV_OPS:
            phase = CONV_OPS[d.op]
            if phase == "wu" and d.a[6]:
                skip.add(int(d.a[6]))          # the RTL writes no gradient debug copy
            d2, parts = rtl_desc(d, hw.tn, wbuf)
            yield ToDevice()
            res = yield from run_descriptor(d2, f"{s.layer}:{phase}", base_bytes=4 * base_words,
                                            **extra)
            yield FromDevice()
            host_parts(it, d)
            log.ran.append(Ran(s.layer, phase, OP_NAMES[d.op], "rtl", parts, res.cycles))
        elif d.op in VEC_OPS:
            yield ToDevice()
            res = yield from run_descriptor(d, f"{s.layer}:{s.what}", base_bytes=4 * base_words,
                                            **extra)
            yield FromDevice()
            log.ran.append(Ran(s.layer, s.what, OP_NAMES[d.op], "rtl", (), res.cycles))
        else:
            it.run(d)
            log.ran.append(Ran(s.layer, s.what, OP_NAMES[d.op], "numpy"))
        if check is not None:
            check.descriptor(s.layer, s.what, d, before, mem, skip)

    for s in prog.fp:
        yield from one(s)
    B, K = prog.design.batch, prog.net.num_classes
    region = prog.regions[prog.logits]
    before = mem.copy() if check is not None else None
    logits = it.fm_get(region.offset, region.shape).reshape(B, K)
    loss, dlogits = ops.softmax_ce(logits, np.asarray(labels, np.int64))
    it.fm_put(prog.regions[prog.dlogits].offset, dlogits.reshape(B, K, 1, 1))
    if check is not None:
        check.loss(np.asarray(labels, np.int64), float(loss), before, mem)
    log.loss = float(loss)
    log.ran.append(Ran("loss", "fp+bp", "SOFTMAX_CE", "numpy"))
    for s in prog.bp:
        yield from one(s)
    return log


class Trainer:
    """Training steps of a Design on a device, from the host.

    ``mem``: the DRAM image, a float32 array of at least the program's words (a
    ``pynq.allocate`` buffer on a board: its ``physical_address`` gives the base the
    descriptors are rebased onto; a numpy array in co-simulation, at ``base_words``).
    Hyper-parameters are compiled into the descriptors, as in the generated C++.
    """

    def __init__(self, design, mem: np.ndarray | None = None, *, lr: float = 0.01,
                 momentum: float = 0.9, weight_decay: float = 5e-4,
                 base_words: int | None = None):
        from efgen.csim.csim import DramImage
        from efgen.hls.program import build_program

        self.design = design
        self.net = design.net_ir
        self.prog = build_program(self.net, design, lr, momentum, weight_decay)
        self.image = DramImage(self.prog)
        if mem is not None:
            if mem.dtype != np.float32 or mem.ndim != 1 or mem.size < self.prog.words:
                raise ValueError(f"the DRAM buffer must be float32 with at least "
                                 f"{self.prog.words:,} words (got {mem.dtype}, {mem.shape})")
            self.image.mem = mem
        self.mem = self.image.mem
        if base_words is None:
            phys = int(getattr(mem, "physical_address", 0) or 0)
            if phys % 4:
                raise ValueError(f"the DRAM buffer's physical address {phys:#x} is not "
                                 "word-aligned")
            base_words = phys // 4
        self.base_words = int(base_words)

    @property
    def words(self) -> int:
        """DRAM words the image needs (allocate at least this many float32)."""
        return self.prog.words

    def load_state(self, state, x: np.ndarray | None = None) -> None:
        """Pack a golden :class:`~efgen.golden.model.TrainState` (and a batch) into DRAM."""
        from efgen.golden.model import cast_state, synthetic_batch

        if x is None:
            x = synthetic_batch(self.net, self.design.batch)[0]
        self.image.load_state(cast_state(state, np.float32), x)

    def state(self, like=None):
        """The parameters, BN buffers and momentum now in DRAM, as a TrainState."""
        from efgen.golden.model import init_state

        return self.image.read_state(like if like is not None else
                                     init_state(self.net, dtype=np.float32))

    def step_ops(self, x: np.ndarray, labels, check=None, timeout_cycles: int | None = None
                 ) -> Generator[Any, Any, StepLog]:
        """One step on batch ``(x, labels)`` as a generator of bus operations."""
        self.image.set_input(np.asarray(x, np.float32))
        return (yield from train_step(self.prog, self.mem, labels, base_words=self.base_words,
                                      check=check, timeout_cycles=timeout_cycles))

    def step(self, mmio, x: np.ndarray, labels, clock_mhz: float | None = None) -> StepLog:
        """One step on a memory-mapped device (:func:`efgen.runtime.protocol.run_sync`)."""
        from efgen.runtime.protocol import run_sync

        return run_sync(self.step_ops(x, labels), mmio, self.mem,
                        clock_mhz or self.design.hw.clock_mhz)

    def flat_weights(self) -> dict[str, np.ndarray]:
        """``{"<layer>.<param>": array}`` of every parameter and BN buffer in DRAM (the
        archive ``efgen export --weights`` and ``efgen golden --weights`` read)."""
        st = self.state()
        return {f"{layer}.{name}": v for group in (st.params, st.buffers)
                for layer, d in group.items() for name, v in d.items()}

    def save_weights(self, path) -> None:
        from efgen.frontend.weights import save_weights

        save_weights(path, self.flat_weights())


__all__ = ["Ran", "StepLog", "Trainer", "host_parts", "rtl_desc", "train_step", "CONV_OPS",
           "OP_NAMES", "VEC_OPS"]
