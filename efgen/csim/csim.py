"""C-simulation: compile the generated HLS C++ with g++ and run training steps through
ctypes (the hls4ml pattern), checking them against the golden model.

The DRAM image is built in Python through efgen/layout.py (inputs, parameters, momentum,
BN running statistics). The step runs descriptor by descriptor (``efgen_run_desc`` on
the compiled descriptor tables, ``efgen_host_loss`` for the host's loss), and each
descriptor's outputs are checked against the golden op on the C++'s own inputs
(:mod:`efgen.csim.verdict`: the verdict, bar max|a-b| / (max|b| + 1e-12) <= 1e-4). After
the step every region that holds a golden tensor is compared with
:func:`efgen.golden.model.train_step`'s trace (drift, reported), and the ReLU-mask and
maxpool-argmax decisions that flipped are listed with their margins (only a flip within
:data:`efgen.csim.verdict.FLIP_MARGIN` of its boundary is benign).
"""

from __future__ import annotations

import ctypes
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from efgen.csim.cc import compile_shared, load
from efgen.csim.verdict import BAR, FLIP_MARGIN, Flip, LocalCheck, LocalRow, decision_flips
from efgen.design import Design
from efgen.frontend.boards import Board
from efgen.frontend.ir import Net
from efgen.golden.model import (
    SGD,
    TrainState,
    cast_state,
    init_state,
    synthetic_batch,
    train_step,
)
from efgen.hls.desc import EfgenDesc
from efgen.hls.emit import write_hls
from efgen.hls.program import Program, Region, build_program
from efgen.layout import FeatureMapLayout, WeightLayout
from efgen.methods.cost import FILTER




@dataclass
class Compared:
    key: str
    rel_err: float
    max_abs: float
    ok: bool


@dataclass
class StepReport:
    """One step. The verdict (``ok``) is the local check of every descriptor and the
    flipped decisions' margins; ``tensors`` is the end-to-end drift (reported)."""

    step: int
    loss_csim: float
    loss_golden: float
    tensors: list[Compared]          # drift against the golden step
    seconds: float
    local: list[LocalRow] = field(default_factory=list)
    descriptors: int = 0
    flips: list[Flip] = field(default_factory=list)

    @property
    def local_ok(self) -> bool:
        return all(r.ok for r in self.local)

    @property
    def flips_ok(self) -> bool:
        return all(f.benign for f in self.flips)

    @property
    def ok(self) -> bool:
        return self.descriptors > 0 and self.local_ok and self.flips_ok

    @property
    def drift_ok(self) -> bool:
        return all(t.ok for t in self.tensors)

    @property
    def first_bad(self) -> Compared | None:
        """The first tensor (in execution order) that drifted above the bar."""
        return next((t for t in self.tensors if not t.ok), None)


@dataclass
class CsimResult:
    steps: list[StepReport] = field(default_factory=list)
    not_in_dram: list[str] = field(default_factory=list)
    compile_seconds: float = 0.0
    cpp_lines: int = 0
    fusion: dict | None = None        # a fused design: what the C++ fuses (Program.fusion)

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.steps)


class DramImage:
    """The DRAM image of a Program: pack parameters and inputs, read tensors back.

    Shared by the C-simulation and the RTL co-simulation (efgen.cosim.step).
    """

    def __init__(self, prog: Program):
        self.prog = prog
        self.filter_state: TrainState | None = None   # EIF: the frozen filter net's
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
            if kind == "data":                    # words the program fixed (fused records)
                self.mem[r.offset:r.offset + r.words] = r.data
                continue
            layer, _, name = what.rpartition(".")   # parameter names carry no dots
            st = state
            if layer.startswith(FILTER):             # EIF: the frozen filter net's
                st, layer = self.filter_state, layer[len(FILTER):]
            if kind == "param":
                self._put(r, st.params[layer][name])
            elif kind == "buffer":
                self._put(r, st.buffers[layer][name])
            elif kind == "vel" and name == "gamma+beta":
                v = state.velocity[layer]
                self._put(r, np.concatenate([v["gamma"], v["beta"]]))
            elif kind == "vel":
                self._put(r, state.velocity[layer][name])

    def read_state(self, like: TrainState) -> TrainState:
        """The parameters, BN buffers and momentum now in DRAM (the inverse of
        :meth:`load_state`); what DRAM does not hold is copied from ``like``."""
        state = like.copy()
        for r in self.prog.regions.values():
            if getattr(r, "alias_of", None) or r.init in (None, "input", "data"):
                continue
            kind, _, what = r.init.partition(":")
            layer, _, name = what.rpartition(".")
            if layer.startswith(FILTER):             # EIF: the filter net stays frozen
                continue
            value = self._get(r)
            if kind in ("param", "buffer"):
                d = (state.params if kind == "param" else state.buffers)[layer]
                d[name] = value.reshape(d[name].shape).astype(d[name].dtype)
            elif kind == "vel" and name == "gamma+beta":
                v = state.velocity[layer]
                c = v["gamma"].size
                v["gamma"], v["beta"] = value[:c].copy(), value[c:].copy()
            elif kind == "vel":
                v = state.velocity[layer]
                v[name] = value.reshape(v[name].shape).astype(v[name].dtype)
        return state

    def set_input(self, x: np.ndarray) -> None:
        self._put(next(r for r in self.prog.regions.values() if r.init == "input"), x)

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
                v = np.asarray(trace[r.traces[0].key])
                if r.traces[0].key in self.compact():     # SLU: the first k images
                    full = self._get(r)
                    full[:v.shape[0]] = v.reshape((v.shape[0],) + tuple(r.shape[1:]))
                    v = full
                self._put(r, v.reshape(r.shape))
        ref, self.mem = self.mem, saved
        return ref

    def write_tb_data(self, hls_dir: Path, labels: np.ndarray, trace: dict) -> None:
        """dram_in.bin, labels.bin and dram_ref.bin for efgen_tb.cpp (before the step)."""
        hls_dir = Path(hls_dir)
        self.mem.astype("<f4").tofile(hls_dir / "dram_in.bin")
        np.asarray(labels, "<i4").tofile(hls_dir / "labels.bin")
        self.golden_image(trace).astype("<f4").tofile(hls_dir / "dram_ref.bin")

    def slu_counts(self) -> list[int]:
        """SLU: each gated block's running images (its run flags in DRAM now)."""
        p = self.prog.slu
        if p is None:
            return []
        regions = self.prog.regions
        return [int(np.count_nonzero(self._get(regions[r]))) for r in p.run]

    def set_slu(self, skip: dict[str, np.ndarray]) -> None:
        """SLU: write the gated blocks' run flags (1 = the image runs the branch) from the
        golden plan's skip masks (True = skipped)."""
        p = self.prog.slu
        for name, r in zip(p.blocks, p.run):
            self._put(self.prog.regions[r], (~np.asarray(skip[name], bool)).astype(np.float32))

    def compact(self) -> dict[str, int]:
        """SLU: golden-trace key -> the images its compact region holds now."""
        p = self.prog.slu
        if p is None:
            return {}
        k = self.slu_counts()
        return {key: k[j] for key, j in p.rows.items()}

    def tensors(self) -> dict[str, np.ndarray]:
        """Golden-trace key -> the tensor as it is in DRAM now (SLU's compact branch
        tensors: their first k images)."""
        out = {}
        compact = self.compact()
        for r in self.prog.regions.values():
            if not r.traces:
                continue
            value = self._get(r)
            for t in r.traces:
                if r.kind == "vec":
                    n = int(np.prod(t.shape))
                    out[t.key] = value[t.start:t.start + n].reshape(t.shape)
                elif t.key in compact:
                    out[t.key] = value.reshape(t.shape)[:compact[t.key]]
                else:
                    out[t.key] = value.reshape(t.shape)
        return out


class Csim(DramImage):
    """A compiled design: pack a DRAM image, run steps, read tensors back."""

    def __init__(self, net: Net, design: Design, board: Board, workdir: Path,
                 sgd: SGD = SGD(), request: tuple[str, ...] | None = None):
        self.net, self.design, self.board, self.sgd = net, design, board, sgd
        super().__init__(build_program(net, design, sgd.lr, sgd.momentum, sgd.weight_decay))
        hls = Path(workdir) / "hls"
        files = write_hls(self.prog, board, hls, request)
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
        self.lib.efgen_run_desc.argtypes = [ctypes.POINTER(EfgenDesc),
                                            ctypes.POINTER(ctypes.c_float)]
        self.lib.efgen_run_desc.restype = None
        self.lib.efgen_step_desc.argtypes = [ctypes.c_int, ctypes.c_int]
        self.lib.efgen_step_desc.restype = ctypes.POINTER(EfgenDesc)
        self.lib.efgen_host_loss.argtypes = [ctypes.POINTER(ctypes.c_float),
                                             ctypes.POINTER(ctypes.c_int32)]
        self.lib.efgen_host_loss.restype = ctypes.c_float
        if self.prog.slu is not None:
            self.lib.efgen_slu_block.argtypes = [ctypes.c_int, ctypes.c_int]
            self.lib.efgen_slu_block.restype = ctypes.c_int
            self.lib.efgen_slu_zero_desc.argtypes = [ctypes.c_int]
            self.lib.efgen_slu_zero_desc.restype = ctypes.POINTER(EfgenDesc)

    def eif_region(self, part: str) -> slice:
        """EIF: the words of the labels (B) or of the kept mask and labels (B + K)."""
        r = self.prog.regions[f"eif:{part}"]
        return slice(r.offset, r.offset + r.words)

    def kept(self) -> tuple[np.ndarray, np.ndarray]:
        """EIF: the kept mask (bool [B]) and the kept labels (int32 [K]) the host wrote."""
        v = self.mem[self.eif_region("keep")]
        B = self.prog.design.batch
        return v[:B] > 0.5, v[B:].astype(np.int32)

    def _fptr(self):
        return self.mem.ctypes.data_as(ctypes.POINTER(ctypes.c_float))

    def step(self, labels: np.ndarray) -> float:
        """One whole step in one call of the generated ``efgen_step`` (no local check)."""
        lab = np.ascontiguousarray(labels, dtype=np.int32)
        loss = ctypes.c_float(0.0)
        self.lib.efgen_step(self._fptr(), lab.ctypes.data_as(ctypes.POINTER(ctypes.c_int32)),
                            ctypes.byref(loss))
        return float(loss.value)

    def step_checked(self, labels: np.ndarray, tamper=None, dropped: bool = False
                     ) -> tuple[float, LocalCheck]:
        """One step descriptor by descriptor, each checked against the golden op on the
        DRAM image just before it (:class:`efgen.csim.verdict.LocalCheck`).

        The C++ runs its own compiled descriptor tables; a table entry that differs from
        the Python program's descriptor fails the check. ``tamper(index, step, mem)``, if
        given, may alter the image after a descriptor ran (tests of the verdict).
        """
        lab = np.ascontiguousarray(labels, dtype=np.int32)
        check = LocalCheck(self.prog)
        loss = 0.0
        index = 0
        phases = [(0, self.prog.fp), None, (1, self.prog.bp)]
        if dropped:                   # SMD: the host's update of a dropped mini-batch only
            phases, loss = [(2, self.prog.drop)], float("nan")
        elif self.prog.filter:        # EIF: the labels in, the filter net, the selection
            self.mem[self.eif_region("labels")] = lab
            phases.insert(0, (3, self.prog.filter))
        slu = self.prog.slu
        k = self.slu_counts()
        if slu is not None and not dropped:   # SLU: a gated block no image ran: SGD0
            phases.append((4, slu.zero))
        for part in phases:
            if part is not None and part[0] == 0 and self.prog.filter:
                lab = self.kept()[1]                  # the main step's labels
            before = self.mem.copy()
            if part is None:                      # the host's softmax cross-entropy
                loss = float(self.lib.efgen_host_loss(
                    self._fptr(), lab.ctypes.data_as(ctypes.POINTER(ctypes.c_int32))))
                if tamper:
                    tamper(index, None, self.mem)
                check.loss(lab, loss, before, self.mem)
                index += 1
                continue
            phase, steps = part
            for i, s in enumerate(steps):
                if i:
                    before = self.mem.copy()
                cdesc = (self.lib.efgen_slu_zero_desc(i) if phase == 4
                         else self.lib.efgen_step_desc(phase, i))
                run, block = cdesc.contents, -1
                if slu is not None and phase in (0, 1, 4):
                    # SLU: the host runs a gated branch's step on its running images
                    block = self.lib.efgen_slu_block(phase if phase < 4 else 2, i)
                    if block != s.block:
                        check.rows.append(LocalRow(
                            check.count, s.layer, s.what, "?", "(SLU block table)",
                            float("inf"), 0.0, False,
                            "efgen_program.h's gated block differs from the program's"))
                    if block >= 0 and (k[block] == 0) != (phase == 4):
                        continue                  # not run this step
                    if block >= 0 and phase != 4:
                        run = EfgenDesc.from_buffer_copy(cdesc.contents)
                        run.batch = k[block]
                self.lib.efgen_run_desc(ctypes.byref(run), self._fptr())
                if tamper:
                    tamper(index, s, self.mem)
                check.descriptor(s.layer, s.what, run, before, self.mem)
                if bytes(cdesc.contents) != bytes(s.desc):
                    check.rows.append(LocalRow(
                        check.count - 1, s.layer, s.what, "?", "(descriptor table)",
                        float("inf"), 0.0, False,
                        "efgen_program.h's descriptor differs from the program's"))
                index += 1
        return loss, check


def compare(trace: dict[str, np.ndarray], got: dict[str, np.ndarray]) -> list[Compared]:
    """Every golden tensor that is in DRAM, in the golden trace's (execution) order: the
    end-to-end drift (reported; the verdict is :mod:`efgen.csim.verdict`'s)."""
    rows = []
    for key, ref in trace.items():
        if key not in got:
            continue
        a = got[key].astype(np.float64)
        if np.size(ref) != a.size:         # SLU: a compact tensor of another image count
            rows.append(Compared(key, float("inf"), float("inf"), False))
            continue
        b = np.asarray(ref, np.float64).reshape(a.shape)
        diff = float(np.max(np.abs(a - b))) if a.size else 0.0
        if key.endswith(":argmax"):
            rel = diff  # integers: must be equal
        else:
            rel = diff / (float(np.max(np.abs(b))) + 1e-12) if a.size else 0.0
        rows.append(Compared(key, rel, diff, bool(rel <= BAR)))
    return rows


def golden_step(net: Net, state: TrainState, x, labels, sgd: SGD, plan=None):
    """The golden step, with frozen parameters traced as unchanged (they are compared).
    ``plan``: the training methods' :class:`efgen.methods.step.StepPlan`, if any."""
    if plan is not None and plan.keep_instances is not None:   # EIF: on the kept instances
        from efgen.methods.step import method_step

        golden = method_step(net, state, x, labels, sgd, plan)
    else:
        golden = train_step(net, state, x, labels, sgd, plan=plan)
    for l in net:
        if l.has_params and not l.trainable:
            for p, v in state.params[l.name].items():
                golden.trace.setdefault(f"{l.name}:new.{p}", v)
    return golden


def run_csim(net: Net, design: Design, board: Board, workdir: Path, steps: int = 1,
             seed: int = 0, sgd: SGD = SGD(), progress=None, tb_data: bool = True,
             tamper=None, flip_margin: float = FLIP_MARGIN,
             request: tuple[str, ...] | None = None, x: np.ndarray | None = None,
             labels: np.ndarray | None = None, state: TrainState | None = None
             ) -> CsimResult:
    """Train ``steps`` steps in C-simulation, each checked descriptor by descriptor and
    compared with the golden step from the same state.

    Step k's golden step starts from the C++'s own state after step k-1 (read back from
    DRAM), so its drift and flips are those of one step, not of the trajectories of two
    trainings drifting apart. ``tamper``: see :meth:`Csim.step_checked`. ``request``:
    the command that made the build, for run_hls.tcl (:func:`efgen.hls.emit.write_hls`).
    ``x``/``labels``: the batch every step trains on (default: seeded synthetic data);
    ``state``: the parameters to start from (default: the seeded He init).
    """
    sim = Csim(net, design, board, workdir, sgd, request)
    if state is None:
        state = init_state(net, seed=seed, dtype=np.float32)
    else:
        state = cast_state(state, np.float32)
    if x is None:
        x, labels = synthetic_batch(net, design.batch, seed=seed + 1)
    x = np.asarray(x, np.float32)
    plan = training = None
    if sim.prog.design.training:           # gradient filtering, error-map pruning, SMD, EIF
        from efgen.methods.step import StepPlan, draw_plan, method_step

        training = build_training(net, sim.prog.design)
        plan = StepPlan(training)
        if training.instance_filter:       # the frozen filter net: its seeded init
            sim.filter_state = init_state(training.instance_filter.net, seed=seed,
                                          dtype=np.float32)
    sim.load_state(state, x)
    result = CsimResult(not_in_dram=sim.prog.not_in_dram, compile_seconds=sim.compile_seconds,
                        cpp_lines=sim.cpp_lines, fusion=sim.prog.fusion)
    for k in range(1, steps + 1):
        if k > 1:
            state = sim.read_state(state)
        dropped = False
        if training is not None and (training.minibatch_drop or training.instance_filter
                                     or training.layer_update):
            # The host's draw for this mini-batch (seeded per step, as the golden's); EIF's
            # kept instances from the filter net whose weights are in DRAM.
            plan = draw_plan(net, training, x, labels, seed=seed + k,
                             filter_state=sim.filter_state)
            dropped = plan.drop
            if plan.skip:                  # SLU: the gates' decisions, in DRAM
                sim.set_slu(plan.skip)
        if dropped:
            golden = method_step(net, state, x, labels, sgd, plan)
        else:
            golden = golden_step(net, state, x, labels, sgd, plan)
        if tb_data and not dropped:          # the first step that trains
            sim.write_tb_data(Path(workdir) / "hls", labels, golden.trace)
            tb_data = False
        t0 = time.perf_counter()
        loss, check = sim.step_checked(labels, tamper, dropped=dropped)
        dt = time.perf_counter() - t0
        got = sim.tensors()
        rows = compare(golden.trace, got)
        if plan is not None and plan.keep_instances is not None and not dropped:
            # EIF: the host's kept mask must be the golden's, exactly.
            diff = float(np.max(np.abs(sim.kept()[0].astype(np.float64)
                                       - np.asarray(plan.keep_instances, np.float64))))
            rows.insert(0, Compared("eif:keep", diff, diff, diff == 0.0))
        flips = [] if dropped else decision_flips(net, golden.trace, got, flip_margin)
        result.steps.append(StepReport(k, loss, golden.loss, rows, dt, check.rows, check.count,
                                       flips))
        if progress:
            progress(result.steps[-1])
        sim.set_input(x)
    return result


def build_training(net: Net, design: Design):
    """The Design's training methods that the generated C++ runs (efgen.hls.methods)."""
    from efgen.hls.methods import training_of

    return training_of(net, design)


def format_drift(tensors: list[Compared], all_rows: bool = False) -> list[str]:
    """The end-to-end drift against the golden step (information, not the verdict)."""
    from efgen.textable import format_table

    worst = max(tensors, key=lambda t: t.rel_err) if tensors else None
    above = [t for t in tensors if not t.ok]
    lines = [f"  end-to-end drift against the golden step (reported, not the verdict): "
             f"{len(tensors)} tensors, worst {worst.key if worst else '-'} "
             f"{worst.rel_err if worst else 0:.2e}; {len(above)} above {BAR:g}"]
    rows = tensors if all_rows else above
    if rows:
        lines.append(format_table(["tensor", "max rel err", "max abs err", "within bar"],
                                  [[t.key, f"{t.rel_err:.3e}", f"{t.max_abs:.3e}",
                                    "yes" if t.ok else "no"] for t in rows]))
    if above:
        lines.append(f"  first tensor that drifted: {above[0].key} ({above[0].rel_err:.3e})")
    return lines


def format_fusion(f: dict) -> list[str]:
    """A fused design's C-simulation: what the C++ fuses, and any difference from the
    model's plan (none expected)."""
    lines = [f"restructured BN in the C++: BN FP sums in the producing conv's store for "
             f"{len(f['bn_stats_in_store'])} batchnorm(s); {len(f['fused_into_loads'])} BN/ReLU "
             f"output(s) fused into conv loads ({', '.join(f['fused_into_loads']) or '-'}), "
             f"{len(f['materialised_by_bn_fin'])} materialised by BN_FIN; BN BP sums in the "
             f"finalising BP store for {len(f['bn_bp_sums_in_store'])}; BN BP dx in the "
             f"producing conv's BP/WU loads for {len(f['bn_dx_in_loads'])}"]
    if f["plan_fused_groups_materialised"]:
        lines.append("  fused in the model's plan but stored by the C++: "
                     + ", ".join(f["plan_fused_groups_materialised"]))
    diff = f.get("differences", [])
    lines.append("  the model prices this program: " + (
        "no difference from its plan" if not diff else
        f"{len(diff)} difference(s) from its plan: " + "; ".join(diff)))
    lines += [f"  not built (materialised or a pass, priced so): {x}" for x in f["not_built"]]
    return lines


def format_report(res: CsimResult, all_rows: bool = False) -> str:
    from efgen.csim.verdict import format_flips, format_local

    lines = format_fusion(res.fusion) if res.fusion else []
    for s in res.steps:
        lines.append(f"step {s.step}: {'PASS' if s.ok else 'FAIL'}; loss csim {s.loss_csim:.6f} "
                     f"golden {s.loss_golden:.6f}; {s.seconds * 1e3:.0f} ms")
        lines += format_local(s.local, s.descriptors, all_rows)
        lines += format_flips(s.flips)
        lines += format_drift(s.tensors, all_rows)
    return "\n".join(lines)
