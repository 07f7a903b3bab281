"""The verdict on a generated step: a local check per descriptor, and the decisions that
flipped end to end.

Float sums in another order round differently, so a value the golden model computes as
+1e-7 may come out <= 0 in the C++ (or the RTL), and the ReLU mask then drops an error
the golden keeps; the difference spreads upstream through BP and an end-to-end
comparison with the golden trace fails on a correct design. Hence two steps:

* **Local check (the verdict).** Each descriptor's outputs are compared with the golden
  op applied to the implementation's OWN inputs: the numpy interpreter
  (:class:`efgen.csim.interp.Interp`, built on :mod:`efgen.golden.ops`) runs that one
  descriptor on a copy of the implementation's DRAM image from just before it, and every
  region it writes is compared, tensor by tensor: max|a-b| / (max|b| + 1e-12) <= 1e-4
  (argmax indices exactly). A tensor that misses the bar is run again with the op in
  float64 on the same inputs; it passes if the implementation is within the same bar of
  that (an ill-conditioned output such as a BN beta gradient that cancels, where numpy's
  float32 sum is the inaccurate one), or no further from float64 than numpy's own float32
  op is: where float32 arithmetic cannot reach the bar (a sum that cancels to well below
  its terms), an implementation in float32 is judged by what float32 can do. A word the
  implementation changed outside the descriptor's outputs fails too.
* **Decision flips (end to end).** Every ReLU-mask element (output > 0) and maxpool
  argmax that differs between the implementation's DRAM and the golden trace is listed
  with its margin: the golden pre-activation's |value|, or the gap between the golden
  window's maximum and the value the implementation picked, relative to the tensor's
  max|x|. A flip is benign when its margin is below :data:`FLIP_MARGIN`; any other flip
  fails the verdict. The drift of every tensor against the golden trace is reported
  (:func:`efgen.csim.csim.compare`), not judged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from efgen.csim.interp import OP, Interp
from efgen.golden import ops
from efgen.hls.program import Program, Region

BAR = 1e-4           # local check: max relative error per output tensor
FLIP_MARGIN = 1e-5   # a decision flip is benign below this fraction of the tensor's max|x|


@dataclass
class LocalRow:
    """One output tensor of one descriptor, against the golden op on the same inputs."""

    index: int            # position of the descriptor in the step (FP, loss, BP/WU)
    layer: str
    phase: str            # fp, loss, bp, wu, errsum
    op: str
    tensor: str           # golden-trace key(s) of the region, or the region's name
    rel_err: float
    max_abs: float
    ok: bool
    note: str = ""
    # Failing rows only: the errors of the C++ and of numpy's float32 op against the same
    # op in float64 on the same inputs (relative to its max): how well-conditioned it is.
    impl64: float = float("nan")
    ref64: float = float("nan")

    @property
    def where(self) -> str:
        return f"#{self.index} {self.layer}:{self.phase} ({self.op})"


@dataclass
class Flip:
    """An element whose ReLU mask or maxpool argmax differs from the golden trace."""

    layer: str            # the relu or maxpool layer
    kind: str             # "relu" or "argmax"
    index: tuple          # (b, c, h, w)
    golden: float         # relu: golden pre-activation; argmax: golden window maximum
    impl: float           # relu: the implementation's output; argmax: the value it picked
    margin: float         # distance to the decision boundary / the tensor's max|x|
    benign: bool

    def describe(self) -> str:
        at = ",".join(map(str, self.index))
        if self.kind == "relu":
            return (f"{self.layer}[{at}] ReLU mask: golden pre-activation {self.golden:+.3e}, "
                    f"implementation output {self.impl:.3e}; margin {self.margin:.2e}")
        return (f"{self.layer}[{at}] argmax: golden window max {self.golden:+.6e}, "
                f"implementation picked {self.impl:+.6e}; margin {self.margin:.2e}")


def rel_err(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(max|a-b| / (max|b| + 1e-12), max|a-b|), in float64; NaN fails any bar."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64).reshape(a.shape)
    if not a.size:
        return 0.0, 0.0
    diff = float(np.max(np.abs(a - b)))
    if np.isnan(a).any() or np.isnan(b).any():
        diff = float("nan")
    return diff / (float(np.max(np.abs(b))) + 1e-12), diff


class _Recorder(Interp):
    """The interpreter, noting every write: (address, kind, shape or length)."""

    def __init__(self, *args):
        super().__init__(*args)
        self.writes: list[tuple[int, str, tuple]] = []

    def fm_put(self, addr, arr):
        self.writes.append((int(addr), "fm", tuple(arr.shape)))
        super().fm_put(addr, arr)

    def w_put(self, addr, arr):
        self.writes.append((int(addr), "weight", tuple(arr.shape)))
        super().w_put(addr, arr)

    def v_put(self, addr, arr):
        self.writes.append((int(addr), "vec", (int(np.size(arr)),)))
        super().v_put(addr, arr)


class LocalCheck:
    """Checks one implementation's step descriptor by descriptor.

    Call :meth:`descriptor` after each descriptor with the DRAM image from before it and
    the image after the implementation ran it (and :meth:`loss` for the host's loss);
    the rows accumulate in :attr:`rows`.
    """

    def __init__(self, prog: Program):
        self.prog = prog
        hw = prog.design.hw
        self.lanes, self.tm, self.tn = hw.lanes, hw.tm, hw.tn
        self.rows: list[LocalRow] = []
        self.count = 0
        self.at: dict[int, list[Region]] = {}
        for r in prog.regions.values():
            self.at.setdefault(r.offset, []).append(r)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.rows)

    def _pieces(self, addr: int, kind: str, shape: tuple):
        """(name, getter) for each tensor a write covers: vectors split by their traces."""
        regions = self.at.get(addr, [])
        keys = [t.key for r in regions for t in r.traces]
        base = next((r for r in regions if not getattr(r, "alias_of", None)), None)
        name = " = ".join(keys) if keys else (base.name if base else f"@{addr}")
        if kind == "vec" and base is not None and len(base.traces) > 1:
            for t in base.traces:
                n = int(np.prod(t.shape))
                if t.start + n <= shape[0]:
                    yield t.key, (lambda it, s=t.start, n=n: it.v_get(addr + s, n))
            return
        if kind == "fm":
            yield name, (lambda it: it.fm_get(addr, shape))
        elif kind == "weight":
            yield name, (lambda it: it.w_get(addr, shape))
        else:
            yield name, (lambda it: it.v_get(addr, shape[0]))

    def _words(self, it: Interp, kind: str, shape: tuple) -> int:
        return it.fm.size(shape) if kind == "fm" else it.wl.size(shape) if kind == "weight" \
            else shape[0]

    def descriptor(self, layer: str, phase: str, desc, before: np.ndarray, after: np.ndarray,
                   skip: set[int] = frozenset()) -> list[LocalRow]:
        """Compare what the implementation wrote (``after``) with the interpreter's run of
        ``desc`` on ``before`` (which it overwrites). ``skip``: output addresses the
        implementation is known not to write (not compared)."""
        pre = before.copy()
        ref = _Recorder(before, self.lanes, self.tm, self.tn)
        ref.run(desc)
        got = Interp(after, self.lanes, self.tm, self.tn)
        rows = self._compare(layer, phase, OP[desc.op], ref, got, skip)
        bad = [r for r in rows if not r.ok and r.tensor != "(outside its outputs)"]
        if bad:
            self._float64(desc, pre, ref, got, bad)
        return rows

    def _float64(self, desc, pre, ref, got, bad) -> None:
        """Diagnose failing rows: the same op in float64 on the same inputs."""
        r64 = _Recorder(pre.astype(np.float64), self.lanes, self.tm, self.tn)
        r64.run(desc)
        for addr, kind, shape in ref.writes:
            for name, get in self._pieces(addr, kind, shape):
                for row in bad:
                    if row.tensor == name:
                        b64 = np.asarray(get(r64), np.float64)
                        scale = float(np.max(np.abs(b64))) + 1e-12 if b64.size else 1.0
                        row.impl64 = rel_err(get(got), b64)[1] / scale
                        row.ref64 = rel_err(get(ref), b64)[1] / scale
                        row.note = (f"against float64: C++ {row.impl64:.1e}, numpy float32 "
                                    f"{row.ref64:.1e}")
                        if row.impl64 <= BAR:      # the float32 reference is the poor one
                            row.ok = True
                            row.note += " (ill-conditioned in float32; passes against float64)"
                        elif row.impl64 <= row.ref64:  # as close as float32 arithmetic gets
                            row.ok = True
                            row.note += (" (ill-conditioned in float32; no further from "
                                         "float64 than numpy's float32 op)")

    def loss(self, labels: np.ndarray, loss: float, before: np.ndarray,
             after: np.ndarray) -> list[LocalRow]:
        """The host's softmax cross-entropy on the implementation's logits."""
        prog = self.prog
        ref = _Recorder(before, self.lanes, self.tm, self.tn)
        lr = prog.regions[prog.logits]
        B, K = prog.main_batch, prog.net.num_classes
        golden_loss, dlogits = ops.softmax_ce(ref.fm_get(lr.offset, lr.shape).reshape(B, K),
                                              np.asarray(labels, np.int64))
        ref.fm_put(prog.regions[prog.dlogits].offset, dlogits.reshape(B, K, 1, 1))
        got = Interp(after, self.lanes, self.tm, self.tn)
        rows = self._compare("loss", "loss", "SOFTMAX_CE", ref, got, frozenset())
        r, d = rel_err(np.float32(loss), golden_loss)
        row = LocalRow(self.count - 1, "loss", "loss", "SOFTMAX_CE", "loss", r, d, bool(r <= BAR))
        self.rows.append(row)
        return rows + [row]

    def _compare(self, layer, phase, op, ref: _Recorder, got: Interp, skip) -> list[LocalRow]:
        idx = self.count
        self.count += 1
        rows = []
        written = np.zeros(ref.mem.size, dtype=bool)
        for addr, kind, shape in ref.writes:
            written[addr:addr + self._words(ref, kind, shape)] = True
            if addr in skip:
                continue
            for name, get in self._pieces(addr, kind, shape):
                b, a = get(ref), get(got)
                if name.endswith(":argmax") or self._is_argmax(addr):
                    d = float(np.max(np.abs(a.astype(np.float64) - b))) if a.size else 0.0
                    r = d          # indices: must be equal
                else:
                    r, d = rel_err(a, b)
                rows.append(LocalRow(idx, layer, phase, op, name, r, d, bool(r <= BAR)))
        # Nothing else may change (NaN != NaN counts as a change).
        stray = np.flatnonzero((got.mem != ref.mem) & ~written)
        if stray.size:
            first = int(stray[0])
            owner = max((o for o in self.at if o <= first), default=None)
            where = self.at[owner][0].name if owner is not None else "?"
            d = float(np.max(np.abs(got.mem[stray].astype(np.float64)
                                    - ref.mem[stray].astype(np.float64))))
            rows.append(LocalRow(idx, layer, phase, op, "(outside its outputs)", float("inf"), d,
                                 False, f"{stray.size} words changed, first at word {first} "
                                        f"(region {where})"))
        self.rows += rows
        return rows

    def _is_argmax(self, addr: int) -> bool:
        return any(r.name.startswith("argmax:") for r in self.at.get(addr, []))


def decision_flips(net, trace: dict[str, np.ndarray], got: dict[str, np.ndarray],
                   threshold: float = FLIP_MARGIN) -> list[Flip]:
    """Every ReLU-mask and maxpool-argmax decision that differs between the
    implementation's tensors ``got`` (golden-trace keys, as read from its DRAM) and the
    golden ``trace``, with its margin."""
    flips: list[Flip] = []
    for l in net:
        src = l.inputs[0] if l.inputs else None
        if l.op == "relu" and f"{l.name}:y" in got and f"{src}:y" in trace:
            impl = np.asarray(got[f"{l.name}:y"])
            pre = np.asarray(trace[f"{src}:y"], np.float64).reshape(impl.shape)
            scale = float(np.max(np.abs(pre))) if pre.size else 0.0
            for i in np.argwhere((pre > 0) != (impl > 0)):
                i = tuple(int(v) for v in i)
                m = abs(pre[i]) / (scale + 1e-30)
                flips.append(Flip(l.name, "relu", i, float(pre[i]), float(impl[i]), m,
                                  bool(m < threshold)))
        elif l.op == "maxpool" and f"{l.name}:argmax" in got and f"{src}:y" in trace:
            ia = np.rint(np.asarray(got[f"{l.name}:argmax"], np.float64)).astype(np.int64)
            ga = np.asarray(trace[f"{l.name}:argmax"]).reshape(ia.shape)
            x = np.asarray(trace[f"{src}:y"], np.float64)
            k, s, p = l.kernel, l.stride, l.padding
            xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=-np.inf)
            scale = float(np.max(np.abs(x))) if x.size else 0.0
            for i in np.argwhere(ia != ga):
                b, c, oh, ow = (int(v) for v in i)

                def val(a):
                    if not 0 <= a < k * k:
                        return float("nan")        # not an index: no margin is small
                    return float(xp[b, c, oh * s + a // k, ow * s + a % k])

                g, v = val(int(ga[b, c, oh, ow])), val(int(ia[b, c, oh, ow]))
                m = abs(g - v) / (scale + 1e-30)
                flips.append(Flip(l.name, "argmax", (b, c, oh, ow), g, v, m,
                                  bool(m < threshold)))
    return flips


def format_local(rows: list[LocalRow], count: int, all_rows: bool = False) -> list[str]:
    """The local check's summary line and its failing (or all) rows."""
    from efgen.textable import format_table

    def err(r):      # against float64 where that is what passed it
        e = r.rel_err if not (r.ok and r.impl64 <= BAR) else r.impl64
        return float(np.nan_to_num(e, nan=np.inf))

    bad = [r for r in rows if not r.ok]
    worst = max(rows, key=lambda r: (err(r), -r.index), default=None)
    lines = [f"  local check (the verdict): {len(rows)} outputs of {count} descriptors against "
             f"the golden op on the implementation's own inputs; worst "
             + (f"{worst.tensor} at {worst.where} {err(worst):.2e}" if worst else "-")
             + f" (bar {BAR:g}): " + ("PASS" if not bad else f"FAIL ({len(bad)} outputs)")]
    show = rows if all_rows else bad
    if show:
        lines.append(format_table(
            ["descriptor", "output", "max rel err", "max abs err", "ok", "note"],
            [[r.where, r.tensor, f"{r.rel_err:.3e}", f"{r.max_abs:.3e}",
              "yes" if r.ok else "NO", r.note] for r in show]))
    if bad:
        lines.append(f"  first descriptor that failed: {bad[0].where}, {bad[0].tensor}")
    return lines


def format_flips(flips: list[Flip], threshold: float = FLIP_MARGIN) -> list[str]:
    bad = [f for f in flips if not f.benign]
    lines = [f"  decision flips (ReLU mask, maxpool argmax) against the golden step: "
             f"{len(flips)}, benign below a margin of {threshold:g} of the tensor's max|x|"
             + (f"; {len(bad)} NOT benign (FAIL)" if bad else "")]
    for f in flips:
        lines.append(f"    {'benign' if f.benign else 'ERROR '}  {f.describe()}")
    return lines


__all__ = ["BAR", "FLIP_MARGIN", "Flip", "LocalCheck", "LocalRow", "decision_flips",
           "format_flips", "format_local", "rel_err"]
