"""C-simulation: compile the generated HLS C++ with g++ and run whole training steps
through ctypes (the hls4ml pattern), comparing every tensor with the golden model.

The DRAM image is built in Python through efgen/layout.py (inputs, parameters, momentum,
BN running statistics), the generated ``efgen_step`` runs FP, the host loss, BP and WU,
and every region that holds a golden tensor is unpacked and compared with
:func:`efgen.golden.model.train_step`'s trace: max|a-b| / (max|b| + 1e-12) <= 1e-4.
"""

from __future__ import annotations

import ctypes
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from efgen.csim.cc import compile_shared, load
from efgen.design import Design
from efgen.frontend.boards import Board
from efgen.frontend.ir import Net
from efgen.golden.model import SGD, TrainState, init_state, synthetic_batch, train_step
from efgen.hls.emit import write_hls
from efgen.hls.program import Program, Region, build_program
from efgen.layout import FeatureMapLayout, WeightLayout

BAR = 1e-4


@dataclass
class Compared:
    key: str
    rel_err: float
    max_abs: float
    ok: bool


@dataclass
class StepReport:
    step: int
    loss_csim: float
    loss_golden: float
    tensors: list[Compared]
    seconds: float

    @property
    def ok(self) -> bool:
        return all(t.ok for t in self.tensors)

    @property
    def first_bad(self) -> Compared | None:
        return next((t for t in self.tensors if not t.ok), None)


@dataclass
class CsimResult:
    steps: list[StepReport] = field(default_factory=list)
    not_in_dram: list[str] = field(default_factory=list)
    compile_seconds: float = 0.0
    cpp_lines: int = 0

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.steps)


class DramImage:
    """The DRAM image of a Program: pack parameters and inputs, read tensors back.

    Shared by the C-simulation and the RTL co-simulation (efgen.cosim.step).
    """

    def __init__(self, prog: Program):
        self.prog = prog
        hw = prog.design.hw
        self.fm = FeatureMapLayout("blocked", hw.lanes)
        self.wl = WeightLayout("blocked", hw.tm, hw.tn)
        self.mem = np.zeros(prog.words, dtype=np.float32)

    # ---- DRAM image -----------------------------------------------------------------------
    def _put(self, r: Region, value: np.ndarray) -> None:
        if r.kind == "fm":
            flat = self.fm.pack(np.asarray(value, np.float32).reshape(r.shape))
        elif r.kind == "weight":
            flat = self.wl.pack(np.asarray(value, np.float32).reshape(r.shape))
        else:
            flat = np.asarray(value, np.float32).ravel()
        self.mem[r.offset:r.offset + flat.size] = flat

    def _get(self, r: Region) -> np.ndarray:
        flat = self.mem[r.offset:r.offset + r.words]
        if r.kind == "fm":
            return self.fm.unpack(flat, r.shape)
        if r.kind == "weight":
            return self.wl.unpack(flat, r.shape)
        return flat.copy()

    def load_state(self, state: TrainState, x: np.ndarray) -> None:
        for r in self.prog.regions.values():
            if getattr(r, "alias_of", None) or r.init is None:
                continue
            kind, _, what = r.init.partition(":")
            if kind == "input":
                self._put(r, x)
                continue
            layer, _, name = what.rpartition(".")   # parameter names carry no dots
            if kind == "param":
                self._put(r, state.params[layer][name])
            elif kind == "buffer":
                self._put(r, state.buffers[layer][name])
            elif kind == "vel" and name == "gamma+beta":
                v = state.velocity[layer]
                self._put(r, np.concatenate([v["gamma"], v["beta"]]))
            elif kind == "vel":
                self._put(r, state.velocity[layer][name])

    def set_input(self, x: np.ndarray) -> None:
        self._put(self.prog.regions["act:input"], x)

    def golden_image(self, trace: dict[str, np.ndarray]) -> np.ndarray:
        """The DRAM image with every traced region holding the golden values."""
        saved = self.mem.copy()
        for r in self.prog.regions.values():
            if not r.traces or getattr(r, "alias_of", None):
                continue
            # Tensors the golden step does not produce (a frozen layer's parameters)
            # keep their initial value, which is what they must still hold.
            if r.kind == "vec":
                v = self._get(r)
                for t in r.traces:
                    if t.key in trace:
                        v[t.start:t.start + int(np.prod(t.shape))] = np.ravel(trace[t.key])
                self._put(r, v)
            elif r.traces[0].key in trace:
                self._put(r, np.asarray(trace[r.traces[0].key]).reshape(r.shape))
        ref, self.mem = self.mem, saved
        return ref

    def write_tb_data(self, hls_dir: Path, labels: np.ndarray, trace: dict) -> None:
        """dram_in.bin, labels.bin and dram_ref.bin for efgen_tb.cpp (before the step)."""
        hls_dir = Path(hls_dir)
        self.mem.astype("<f4").tofile(hls_dir / "dram_in.bin")
        np.asarray(labels, "<i4").tofile(hls_dir / "labels.bin")
        self.golden_image(trace).astype("<f4").tofile(hls_dir / "dram_ref.bin")

    def tensors(self) -> dict[str, np.ndarray]:
        """Golden-trace key -> the tensor as it is in DRAM now."""
        out = {}
        for r in self.prog.regions.values():
            if not r.traces:
                continue
            value = self._get(r)
            for t in r.traces:
                if r.kind == "vec":
                    n = int(np.prod(t.shape))
                    out[t.key] = value[t.start:t.start + n].reshape(t.shape)
                else:
                    out[t.key] = value.reshape(t.shape)
        return out


class Csim(DramImage):
    """A compiled design: pack a DRAM image, run steps, read tensors back."""

    def __init__(self, net: Net, design: Design, board: Board, workdir: Path,
                 sgd: SGD = SGD()):
        self.net, self.design, self.board, self.sgd = net, design, board, sgd
        super().__init__(build_program(net, design, sgd.lr, sgd.momentum, sgd.weight_decay))
        hls = Path(workdir) / "hls"
        files = write_hls(self.prog, board, hls)
        self.cpp_lines = sum(len((hls / f).read_text().splitlines()) for f in files
                             if f.endswith((".cpp", ".h")))
        t0 = time.perf_counter()
        (Path(workdir) / "csim").mkdir(parents=True, exist_ok=True)
        lib = compile_shared([hls / "efgen_top.cpp", hls / "efgen_host.cpp"],
                             Path(workdir) / "csim" / "libefgen_csim.so", [hls])
        self.compile_seconds = time.perf_counter() - t0
        self.lib = load(lib)
        self.lib.efgen_step.argtypes = [ctypes.POINTER(ctypes.c_float),
                                        ctypes.POINTER(ctypes.c_int32),
                                        ctypes.POINTER(ctypes.c_float)]
        self.lib.efgen_step.restype = ctypes.c_int

    def step(self, labels: np.ndarray) -> float:
        lab = np.ascontiguousarray(labels, dtype=np.int32)
        loss = ctypes.c_float(0.0)
        self.lib.efgen_step(self.mem.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
                            lab.ctypes.data_as(ctypes.POINTER(ctypes.c_int32)), ctypes.byref(loss))
        return float(loss.value)


def compare(trace: dict[str, np.ndarray], got: dict[str, np.ndarray]) -> list[Compared]:
    """Every golden tensor that is in DRAM, in the golden trace's (execution) order."""
    rows = []
    for key, ref in trace.items():
        if key not in got:
            continue
        a = got[key].astype(np.float64)
        b = np.asarray(ref, np.float64).reshape(a.shape)
        diff = float(np.max(np.abs(a - b))) if a.size else 0.0
        if key.endswith(":argmax"):
            rel = diff  # integers: must be equal
        else:
            rel = diff / (float(np.max(np.abs(b))) + 1e-12) if a.size else 0.0
        rows.append(Compared(key, rel, diff, bool(rel <= BAR)))
    return rows


def run_csim(net: Net, design: Design, board: Board, workdir: Path, steps: int = 1,
             seed: int = 0, sgd: SGD = SGD(), progress=None, tb_data: bool = True) -> CsimResult:
    """Train ``steps`` steps in C-simulation and in the golden model, side by side."""
    sim = Csim(net, design, board, workdir, sgd)
    state = init_state(net, seed=seed, dtype=np.float32)
    x, labels = synthetic_batch(net, design.batch, seed=seed + 1)
    sim.load_state(state, x)
    result = CsimResult(not_in_dram=sim.prog.not_in_dram, compile_seconds=sim.compile_seconds,
                        cpp_lines=sim.cpp_lines)
    for k in range(1, steps + 1):
        golden = train_step(net, state, x, labels, sgd)
        # Frozen parameters must come out unchanged: compare them with their old value.
        for l in net:
            if l.has_params and not l.trainable:
                for p, v in state.params[l.name].items():
                    golden.trace.setdefault(f"{l.name}:new.{p}", v)
        if k == 1 and tb_data:
            sim.write_tb_data(Path(workdir) / "hls", labels, golden.trace)
        t0 = time.perf_counter()
        loss = sim.step(labels)
        dt = time.perf_counter() - t0
        rows = compare(golden.trace, sim.tensors())
        result.steps.append(StepReport(k, loss, golden.loss, rows, dt))
        if progress:
            progress(result.steps[-1])
        state = golden.state
        sim.set_input(x)
    return result


def format_report(res: CsimResult, all_rows: bool = False) -> str:
    from efgen.textable import format_table

    lines = []
    for s in res.steps:
        rows = s.tensors if all_rows else [t for t in s.tensors if not t.ok]
        worst = max(s.tensors, key=lambda t: t.rel_err) if s.tensors else None
        lines.append(f"step {s.step}: loss csim {s.loss_csim:.6f} golden {s.loss_golden:.6f}; "
                     f"{len(s.tensors)} tensors compared, worst {worst.key if worst else '-'} "
                     f"{worst.rel_err if worst else 0:.2e} (bar {BAR:g}); "
                     f"{s.seconds * 1e3:.0f} ms")
        if rows:
            lines.append(format_table(["tensor", "max rel err", "max abs err", "ok"],
                                      [[t.key, f"{t.rel_err:.3e}", f"{t.max_abs:.3e}",
                                        "yes" if t.ok else "NO"] for t in rows]))
        bad = s.first_bad
        if bad:
            lines.append(f"first tensor that diverged: {bad.key} ({bad.rel_err:.3e})")
    return "\n".join(lines)
