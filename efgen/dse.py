"""Design-space sweeps: ``efgen sweep FILE.yaml [-o DIR] [--jobs N]``.

A sweep file names lists of values; every point of their cartesian product is a fixed
hardware configuration that is *fully scheduled* (every layer-phase tiled by
:func:`efgen.model.schedule.schedule_fixed`) and evaluated (:func:`efgen.model.evaluate.
evaluate_design`)::

    name: zcu102-resnet20            # letters, digits, '-', '_', '.'; names the output
    boards: [zcu102]                 # catalogue names, or .yaml paths (relative to this file)
    nets: [resnet20]                 # catalogue names, or .yaml/.onnx paths (ditto)
    batch: [32]                      # optional, default [32]
    clock_mhz: [100, 150, 200]       # optional, default: each board's clock
    precision: [fp32]                # optional, default [fp32]
    tm: [4, 8, 16, 32]               # output lanes of the MAC array
    tn: [4, 8, 16, 32]               # input lanes of the MAC array
    ifm_depth: [1024, 2048, 4096]    # optional, default [2048]  (words per IFM bank)
    ofm_depth: [1024, 2048, 4096]    # optional, default [2048]  (words per OFM bank)
    wbuf_depth: [auto]               # optional, default [auto]: the smallest depth that
                                     #   holds one output block of every layer (rounded up
                                     #   to whole RAMB18s, as the scheduler does), or integers
    weight_mem: [bram]               # optional, default [bram]; 'uram' where the board has it
    objective: latency               # optional: latency | energy | edp | dram (picks "best")
    train_last: null                 # optional: train only the last K conv/linear layers
    training: {gradient_filter: {r: 2, last: 2}}   # optional: training methods (or a file)
    gradient_filter.r: [1, 2, 4]     # optional: method axes, <method>.<key>: [values]
                                     #   (efgen/methods/sweep.py); points.csv 'training'

Every list must be non-empty, without repeats; numbers must be positive. The file is
validated completely (and every board and net loaded) before anything runs; each
problem is one :class:`~efgen.errors.EfgenError` naming the file, the key path (e.g.
``tm[2]``) and its line.

Per point: ``resource_use`` is checked against the board caps; points over a cap are
kept but marked ``fits: false`` with the binding resource (the one most over its cap).
Points that fit are scheduled; when some layer-phase cannot be tiled into the buffers
the point is ``fits: false`` with ``binding: buffers``. The rest are evaluated.

Outputs, in ``DIR`` (default ``sweep-<name>``), written to a temporary folder that is
renamed at the end (a failure never leaves a half-written folder):

* ``points.csv``, ``points.json`` - every point, in product order (``index``);
* ``pareto.csv``, ``pareto.json`` - two Pareto fronts among fitting points, within each
  (net, batch) group: *throughput* (images/s, maximise) vs DSP (minimise), and *energy*
  per step (minimise) vs latency per step (minimise);
* ``pareto-throughput[-<net>-b<batch>].png``, ``pareto-energy[...].png``;
* ``sweep.yaml`` - a copy of the sweep file.

Work is spread over processes (``--jobs``, default: the cores this process may use) in
chunks of points that share (board, net, batch); results are sorted by point index, so
every output file is byte-identical whatever ``--jobs`` is.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import os
import re
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import yaml

from efgen._version import __version__
from efgen.design import OBJECTIVES, PRECISIONS
from efgen.errors import EfgenError
from efgen.farm import Farm
from efgen.frontend import load_net
from efgen.frontend.boards import MAX_CLOCK_MHZ, Board, list_boards, load_board
from efgen.frontend.ir import Net, did_you_mean, list_nets
from efgen.frontend.yamlio import LineMap, describe_value, parse_yaml, read_text
from efgen.outdir import make_temp, publish
from efgen.progress import bar
from efgen.resultcache import Cache, digest
from efgen.resultcache import default_dir as default_cache_dir

__all__ = ["Sweep", "load_sweep", "run_sweep", "print_summary", "pareto_mask", "FIELDS",
           "FRONTS", "add_arguments"]

MAX_POINTS = 200_000
WEIGHT_MEMS = ("bram", "uram")
RESOURCES = ("dsp", "bram18", "uram", "lut", "ff")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")

# Column order of points.csv / keys of points.json records.
FIELDS = (
    "index", "board", "net", "batch", "precision", "clock_mhz", "tm", "tn",
    "ifm_depth", "ofm_depth", "wbuf_depth", "weight_mem", "training",
    "fits", "binding", "reason",
    "cycles", "ms_per_step", "images_per_s", "effective_gflops", "peak_gflops",
    "roofline_fraction",
    "dsp", "bram18", "uram", "lut", "ff",
    "dsp_util", "bram18_util", "uram_util", "lut_util", "ff_util",
    "energy_j", "gflops_per_w", "edp", "dram_mb", "dram_mb_nchw",
)

# name -> ((x key, goal), (y key, goal)); goals are "min" or "max".
FRONTS: dict[str, tuple[tuple[str, str], tuple[str, str]]] = {
    "throughput": (("dsp", "min"), ("images_per_s", "max")),
    "energy": (("ms_per_step", "min"), ("energy_j", "min")),
}
_BEST_KEY = {"latency": "ms_per_step", "energy": "energy_j", "edp": "edp", "dram": "dram_mb"}


# =========================================================================== the file

@dataclass(frozen=True)
class _Key:
    kind: str                 # board | net | posint | clock | precision | wbuf | weight_mem
    required: bool
    default: tuple = ()
    example: str = ""


# The product order of the points is the order of these keys.
_LIST_KEYS: dict[str, _Key] = {
    "boards": _Key("board", True, example="[zcu102]"),
    "nets": _Key("net", True, example="[resnet20]"),
    "batch": _Key("posint", False, (32,), "[32]"),
    "precision": _Key("precision", False, ("fp32",), "[fp32, fp16]"),
    "clock_mhz": _Key("clock", False, (None,), "[100, 150, 200]"),
    "tm": _Key("posint", True, example="[8, 16, 32]"),
    "tn": _Key("posint", True, example="[8, 16, 32]"),
    "ifm_depth": _Key("posint", False, (2048,), "[1024, 2048, 4096]"),
    "ofm_depth": _Key("posint", False, (2048,), "[1024, 2048, 4096]"),
    "wbuf_depth": _Key("wbuf", False, ("auto",), "[auto]"),
    "weight_mem": _Key("weight_mem", False, ("bram",), "[bram]"),
}
_ALL_KEYS = ("name",) + tuple(_LIST_KEYS) + ("objective", "train_last")


@dataclass(frozen=True)
class Sweep:
    """A validated sweep file, with its boards and nets loaded."""

    name: str
    file: str
    text: str
    values: dict[str, tuple]          # _LIST_KEYS -> values (clock None = board default)
    objective: str
    train_last: int | None
    boards: dict[str, Board]          # as written in the file -> Board
    nets: dict[str, Net]              # as written in the file -> Net (train_last applied)
    trainings: dict = None            # training variant -> training section (efgen.methods.sweep)
    fuse: bool = False                # --fuse: the restructured-BN datapath (efgen.model.restructure)

    @property
    def n_points(self) -> int:
        return math.prod(len(v) for v in self.values.values())

    def points(self) -> list[tuple]:
        """(index, board, net, batch, precision, clock, tm, tn, ifm, ofm, wbuf, mem)."""
        return [(i,) + p for i, p in enumerate(itertools.product(*self.values.values()))]


_describe = describe_value


def _item_lines(text: str) -> dict[Any, list[int]]:
    """Top-level key -> 1-based line of each item of its list (for error messages)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return {}
    out: dict[Any, list[int]] = {}
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and isinstance(v, yaml.SequenceNode):
                out[k.value] = [item.start_mark.line + 1 for item in v.value]
    return out


class _Checker:
    def __init__(self, file: str, doc: LineMap, text: str):
        self.file, self.doc = file, doc
        self.items = _item_lines(text)

    def where(self, key: str, i: int | None = None) -> str:
        line = None
        if i is not None:
            lines = self.items.get(key, [])
            line = lines[i] if i < len(lines) else None
        if line is None:
            line = self.doc.line_of(key) if isinstance(self.doc, LineMap) else None
        path = key if i is None else f"{key}[{i}]"
        return f"{path} (line {line})" if line else path

    def error(self, what: str, key: str, fix: str, i: int | None = None) -> EfgenError:
        return EfgenError(what, file=self.file, where=self.where(key, i), fix=fix)


def _check_value(c: _Checker, key: str, spec: _Key, i: int, v: Any, base: Path) -> Any:
    path = f"{key}[{i}]"

    def err(what: str, fix: str) -> EfgenError:
        return c.error(what, key, fix, i)

    if spec.kind in ("board", "net"):
        if not isinstance(v, str) or not v.strip():
            raise err(f"{path} must be a {spec.kind} name, got {_describe(v)}",
                      f"write e.g. {key}: {spec.example}")
        exts = (".yaml", ".yml") if spec.kind == "board" else (".yaml", ".yml", ".onnx")
        if v.lower().endswith(exts) or "/" in v:
            p = Path(v).expanduser()
            p = p if p.is_absolute() else base / p
            if not p.is_file():
                raise err(f"{spec.kind} file '{v}' not found (paths are relative to the "
                          "sweep file)", "check the path, or give a catalogue name")
            return str(p)
        names = list_boards() if spec.kind == "board" else list_nets()
        if v not in names:
            hint = did_you_mean(v, names)
            raise err(f"unknown {spec.kind} '{v}'",
                      f"{hint}catalogue {spec.kind}s: {', '.join(names)}; or give a "
                      f"{'.yaml' if spec.kind == 'board' else '.yaml or .onnx'} path")
        return v
    if spec.kind == "precision" or spec.kind == "weight_mem":
        choices = PRECISIONS if spec.kind == "precision" else WEIGHT_MEMS
        if not isinstance(v, str) or v not in choices:
            hint = did_you_mean(str(v), choices) if isinstance(v, str) else ""
            raise err(f"unknown {key} {v!r}" if isinstance(v, str)
                      else f"{path} must be one of {', '.join(choices)}, got {_describe(v)}",
                      f"{hint}valid values: {', '.join(choices)}")
        return v
    if spec.kind == "wbuf" and isinstance(v, str):
        if v != "auto":
            raise err(f"{path} must be 'auto' or a positive integer, got {_describe(v)}",
                      "write 'auto' (smallest depth that fits the net) or e.g. 1024")
        return v
    if spec.kind == "clock":
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise err(f"{path} must be a number (MHz), got {_describe(v)}",
                      f"write e.g. {key}: {spec.example} (no quotes, no units)")
        if not 0 < v <= MAX_CLOCK_MHZ:
            raise err(f"{path} = {v!r} MHz is outside (0, {MAX_CLOCK_MHZ:g}]",
                      f"write a clock in MHz, e.g. {key}: {spec.example}")
        return float(v)
    # positive integers (posint, and wbuf when numeric)
    if isinstance(v, bool) or not isinstance(v, int):
        fix = f"write whole numbers, e.g. {key}: {spec.example}"
        if isinstance(v, float) and v.is_integer():
            fix = f"write it without a decimal point: {int(v)}"
        raise err(f"{path} must be a positive integer, got {_describe(v)}", fix)
    if v <= 0:
        raise err(f"{path} must be positive, got {v}", f"write e.g. {key}: {spec.example}")
    return v


def _check_doc(file: str, text: str, doc: Any, max_points: int | None = MAX_POINTS
               ) -> tuple[str, dict[str, tuple], str, int | None]:
    if not isinstance(doc, dict):
        what = ("the file is empty" if doc is None
                else f"the top level must be a mapping of keys, got {_describe(doc)}")
        raise EfgenError(what, file=file, where="line 1",
                         fix="write 'key: value' lines; see configs/sweeps/*.yaml")
    c = _Checker(file, doc, text)
    from efgen.methods.sweep import is_training_key

    for key in doc:
        if is_training_key(key):
            continue
        if not isinstance(key, str) or key not in _ALL_KEYS:
            k = str(key) if isinstance(key, str) else str(key).lower()
            hint = ("did you mean 'tm' and 'tn'? " if k.lower() in ("tiles", "tile", "tiling")
                    else did_you_mean(k, _ALL_KEYS))
            raise EfgenError(f"unknown key '{k}'", file=file,
                             where=c.where(key) if isinstance(key, str) else k,
                             fix=f"{hint}valid keys: {', '.join(_ALL_KEYS)}")
    for key in ("name",) + tuple(k for k, s in _LIST_KEYS.items() if s.required):
        if key not in doc:
            ex = "my-sweep" if key == "name" else _LIST_KEYS[key].example
            raise EfgenError(f"missing key '{key}'", file=file, where=key,
                             fix=f"add '{key}: {ex}'")

    name = doc["name"]
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise c.error(f"name must be a name made of letters, digits, '-', '_', '.', got "
                      f"{_describe(name)}", "name",
                      "write e.g. 'name: zcu102-resnet20' (it names the output folder)")

    base = Path(file).resolve().parent
    values: dict[str, tuple] = {}
    for key, spec in _LIST_KEYS.items():
        if key not in doc or (doc[key] is None and not spec.required):
            values[key] = spec.default      # absent, or 'key:' with nothing after it
            continue
        raw = doc[key]
        if not isinstance(raw, list):
            ex = f"[{raw}]" if isinstance(raw, (int, float, str)) else spec.example
            raise c.error(f"{key} must be a list, got {_describe(raw)}", key,
                          f"write {key}: {ex} (a list, even for one value)")
        if not raw:
            raise c.error(f"{key} is an empty list", key,
                          f"give at least one value, e.g. {key}: {spec.example}"
                          + ("" if spec.required else ", or delete the key for the default"))
        vals: list[Any] = []
        for i, v in enumerate(raw):
            cv = _check_value(c, key, spec, i, v, base)
            if cv in vals:
                raise c.error(f"{key} lists {v!r} twice", key,
                              "remove the repeat (each value is swept once)", i)
            vals.append(cv)
        values[key] = tuple(vals)

    objective = doc.get("objective", "latency")
    if objective is None:
        objective = "latency"
    if not isinstance(objective, str) or objective not in OBJECTIVES:
        hint = did_you_mean(objective, OBJECTIVES) if isinstance(objective, str) else ""
        raise c.error(f"objective must be one of {', '.join(OBJECTIVES)}, got "
                      f"{_describe(objective)}", "objective",
                      f"{hint}write e.g. 'objective: latency'")
    train_last = doc.get("train_last")
    if train_last is not None and (isinstance(train_last, bool) or not isinstance(
            train_last, int) or train_last < 1):
        raise c.error(f"train_last must be a positive integer or null, got "
                      f"{_describe(train_last)}", "train_last",
                      "write e.g. 'train_last: 2' (train the last 2 conv/linear layers), "
                      "or 'train_last: null' to train every layer")

    from efgen.methods.sweep import training_variants

    values["training"] = training_variants(doc, file)[0]
    n = math.prod(len(v) for v in values.values())
    if max_points is not None and n > max_points:
        raise EfgenError(f"the sweep has {n:,} points (limit {max_points:,})", file=file,
                         fix="shorten some lists, split the sweep into several files, or "
                             "search it: efgen sweep FILE --search nsga2 --budget N")
    return name, values, objective, train_last


def load_sweep(path: str | os.PathLike, max_points: int | None = MAX_POINTS) -> Sweep:
    """Read and validate a sweep file and load its boards and nets (nothing is run);
    ``max_points=None``: no limit on the product (for a search)."""
    file = os.fspath(path)
    text = read_text(file, "sweep file")
    doc = parse_yaml(text, file)
    name, values, objective, train_last = _check_doc(file, text, doc, max_points)
    c = _Checker(file, doc, text)
    boards: dict[str, Board] = {}
    for i, b in enumerate(values["boards"]):
        try:
            boards[b] = load_board(b)
        except EfgenError as exc:
            raise EfgenError(f"{exc.what} (board listed at {c.where('boards', i)} of {file})",
                             file=exc.file, where=exc.where, fix=exc.fix) from None
    nets: dict[str, Net] = {}
    for i, n in enumerate(values["nets"]):
        try:
            nets[n] = load_net(n, train_last=train_last)
        except EfgenError as exc:
            raise EfgenError(f"{exc.what} (net listed at {c.where('nets', i)} of {file})",
                             file=exc.file, where=exc.where, fix=exc.fix) from None
    # Record the names as written; paths were resolved against the sweep file.
    shown = {k: tuple(doc[k]) if k in doc and isinstance(doc[k], list) else v
             for k, v in values.items() if k in ("boards", "nets")}
    boards = {s: boards[r] for s, r in zip(shown["boards"], values["boards"])}
    nets = {s: nets[r] for s, r in zip(shown["nets"], values["nets"])}
    values = dict(values, boards=shown["boards"], nets=shown["nets"])
    from efgen.methods.sweep import check_variants, training_variants

    sections = training_variants(doc, file)[1]
    check_variants(sections, nets, doc, file)
    return Sweep(name, file, text, values, objective, train_last, boards, nets, sections)


# =========================================================================== one point

_CTX: dict[str, Any] = {}


def _init_worker(ctx: dict[str, Any]) -> None:
    global _CTX
    from efgen.model.engine import tune_allocator

    tune_allocator()
    _CTX = dict(ctx, jobs={})


def _fmt(v: float) -> str:
    return f"{v:,.0f}" if float(v).is_integer() else f"{v:,.1f}"


def _evaluate_point(p: tuple) -> dict[str, Any]:
    from efgen.model import engine
    from efgen.model.coeffs import acc_bits, word_bits
    from efgen.model.evaluate import ddr_bytes_per_cycle, evaluate_design
    from efgen.model.resources import over_caps, resource_use
    from efgen.model.schedule import Request, _bank_round, base_hw, schedule_fixed

    index, bname, nname, batch, prec, clock, tm, tn, ifm, ofm, wbuf, mem = p[:12]
    tlabel = p[12] if len(p) > 12 else "none"
    board: Board = _CTX["boards"][bname]
    net: Net = _CTX["nets"][nname]
    training = None
    if (_CTX.get("trainings") or {}).get(tlabel) is not None:
        from efgen.methods.spec import apply_to_net, parse_training

        training = parse_training(_CTX["trainings"][tlabel], net, "sweep")
        net = apply_to_net(net, training)
    req = Request(net, board, batch=batch, clock_mhz=clock, objective=_CTX["objective"],
                  precision=prec, train_last=_CTX["train_last"], training=training,
                  fuse=bool(_CTX.get("fuse")))
    jobs = _CTX["jobs"].get((nname, batch, tlabel))
    if jobs is None:
        from efgen.model.schedule import request_jobs

        jobs = _CTX["jobs"][(nname, batch, tlabel)] = request_jobs(req)
    if wbuf == "auto":
        # the scheduler's smallest weight bank (schedule.hardware_candidates)
        wbuf = _bank_round(engine.min_wbuf_depth(jobs, tn), acc_bits(prec))
    hw = replace(base_hw(req), tm=tm, tn=tn, ifm_depth=ifm, ofm_depth=ofm,
                 wbuf_depth=int(wbuf), weight_mem=mem)
    use = resource_use(hw, board)
    rec: dict[str, Any] = dict.fromkeys(FIELDS)
    rec.update(index=index, board=bname, net=nname, batch=batch, precision=prec,
               clock_mhz=hw.clock_mhz, tm=tm, tn=tn, ifm_depth=ifm, ofm_depth=ofm,
               wbuf_depth=hw.wbuf_depth, weight_mem=mem, training=tlabel, fits=False, binding="", reason="",
               peak_gflops=hw.peak_gflops())
    for r in RESOURCES:
        total = getattr(board.resources, r)
        need = getattr(use, r)
        rec[r] = int(need) if float(need).is_integer() else float(need)
        rec[f"{r}_util"] = need / total if total else 0.0
    from efgen.model.coeffs import fmax_mhz

    limit = fmax_mhz(board.family)
    if hw.clock_mhz > limit:
        rec["binding"] = "clock"
        rec["reason"] = (f"{hw.clock_mhz:g} MHz is above the {limit:g} MHz efgen expects "
                         f"{board.family} designs to close timing at")
        return rec
    bad = over_caps(use, board)
    if bad:
        r, need, allowed = max(bad, key=lambda b: b[1] / max(b[2], 1))
        rec["binding"] = r
        rec["reason"] = "over the caps of {}: {}".format(board.name, "; ".join(
            f"{n} {_fmt(u)} > {a:,}" for n, u, a in bad))
        return rec
    design = schedule_fixed(req, hw)
    if design is None:
        res = engine.choose(jobs, hw, word_bits(prec) / 8,
                            ddr_bytes_per_cycle(board, hw.clock_mhz))
        bad_jobs = [j for j, c in zip(jobs, res["cycles"]) if not math.isfinite(float(c))]
        j = bad_jobs[0] if bad_jobs else None
        rec["binding"] = "buffers"
        rec["reason"] = (f"no tiling of {j.layer} {j.phase.upper()} fits the buffers"
                         if j else "no tiling fits the buffers")
        return rec
    t = evaluate_design(net, design, board)["totals"]
    rec.update(fits=True,
               cycles=float(t["cycles"]), ms_per_step=float(t["ms_per_step"]),
               images_per_s=float(t["images_per_s"]),
               effective_gflops=float(t["effective_gflops"]),
               roofline_fraction=float(t["roofline_fraction"]),
               energy_j=float(t["energy_j"]), gflops_per_w=float(t["gflops_per_w"]),
               edp=float(t["edp"]), dram_mb=float(t["dram_bytes"]) / 1e6,
               dram_mb_nchw=float(t["dram_bytes_nchw"]) / 1e6)
    return rec


def _run_chunk(chunk: list[tuple], ctx: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Evaluate ``chunk`` (a task of :class:`~efgen.farm.Farm`); ``ctx`` (boards, nets,
    objective) is set up once per worker process and sweep."""
    if ctx is not None and _CTX.get("token") != ctx["token"]:
        _init_worker(ctx)
    return [_evaluate_point(p) for p in chunk]


# =========================================================================== Pareto

def pareto_mask(points: Sequence[dict], x: tuple[str, str], y: tuple[str, str]) -> list[bool]:
    """True for the points no other point dominates in (x, y); ``x``/``y`` are
    (key, "min"|"max"). A point dominates another when it is at least as good in both
    and better in one; equal points do not dominate each other (both stay)."""
    sx = 1.0 if x[1] == "min" else -1.0
    sy = 1.0 if y[1] == "min" else -1.0
    vals = [(sx * float(p[x[0]]), sy * float(p[y[0]])) for p in points]
    order = sorted(range(len(points)), key=lambda i: vals[i])
    mask = [False] * len(points)
    best_prev = math.inf       # best (smallest) y among points with a strictly smaller x
    i = 0
    while i < len(order):
        a = vals[order[i]][0]
        j = i
        while j < len(order) and vals[order[j]][0] == a:
            j += 1
        group_min = vals[order[i]][1]      # sorted: the first of the group is the smallest
        if group_min < best_prev:
            for k in order[i:j]:
                if vals[k][1] == group_min:
                    mask[k] = True
        best_prev = min(best_prev, group_min)
        i = j
    return mask


def _fronts(sw: Sweep, records: list[dict]) -> list[dict[str, Any]]:
    """Both fronts for every (net, batch) group of the sweep (in product order), among
    its fitting points; a group where nothing fits gets empty fronts."""
    groups: dict[tuple[str, int], list[dict]] = {
        g: [] for g in itertools.product(sw.values["nets"], sw.values["batch"])}
    for r in records:
        if r["fits"]:
            groups[(r["net"], r["batch"])].append(r)
    out = []
    for fname, (x, y) in FRONTS.items():
        for (net, batch), pts in groups.items():
            mask = pareto_mask(pts, x, y)
            sx = 1.0 if x[1] == "min" else -1.0
            front = sorted((p for p, m in zip(pts, mask) if m),
                           key=lambda p: (sx * p[x[0]], p["index"]))
            out.append({"front": fname, "net": net, "batch": batch,
                        "x": x[0], "x_goal": x[1], "y": y[0], "y_goal": y[1],
                        "candidates": len(pts), "mask": mask, "all": pts,
                        "points": front})
    return out


# =========================================================================== output

def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    return str(v)


def _csv(rows: list[dict], fields: Sequence[str]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(fields)
    for r in rows:
        w.writerow([_cell(r.get(f)) for f in fields])
    return buf.getvalue()


def _json(obj: Any) -> str:
    return json.dumps(obj, indent=1, allow_nan=False) + "\n"


def _safe(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_",
                  Path(s).stem if s.lower().endswith((".yaml", ".yml", ".onnx")) else s)


def _write_outputs(tmp: Path, sw: Sweep, records: list[dict], fronts: list[dict]) -> list[str]:
    from efgen.report import plots

    files = []

    def put(name: str, text: str) -> None:
        (tmp / name).write_text(text, encoding="utf-8")
        files.append(name)

    put("sweep.yaml", sw.text)
    put("points.csv", _csv(records, FIELDS))
    put("points.json", _json({"sweep": sw.name, "efgen_version": __version__,
                              "objective": sw.objective, "train_last": sw.train_last,
                              **({"fuse": True} if sw.fuse else {}),
                              "fields": list(FIELDS), "points": records}))
    pfields = ("front", "rank") + FIELDS
    prow = [dict(p, front=f["front"], rank=k) for f in fronts
            for k, p in enumerate(f["points"])]
    put("pareto.csv", _csv(prow, pfields))
    put("pareto.json", _json({"sweep": sw.name, "fronts": [
        {k: f[k] for k in ("front", "net", "batch", "x", "x_goal", "y", "y_goal",
                           "candidates")} | {"indices": [p["index"] for p in f["points"]],
                                             "points": f["points"]}
        for f in fronts]}))
    several = len({(f["net"], f["batch"]) for f in fronts}) > 1
    for f in fronts:
        suffix = f"-{_safe(f['net'])}-b{f['batch']}" if several else ""
        png = f"pareto-{f['front']}{suffix}.png"
        title = (f"{sw.name}: {f['front']} front, {f['net']} batch {f['batch']} "
                 f"({len(f['points'])} of {f['candidates']} fitting points)")
        varying = [k for k in ("board", "precision", "clock_mhz", "weight_mem")
                   if len({p[k] for p in f["all"]}) > 1]
        plots.plot_pareto(f["all"], f["x"], f["y"], tmp / png, title, f["mask"],
                          color_by=varying[0] if varying else None)
        files.append(png)
    return files


def _check_out_dir(out: Path) -> None:
    """Refuse to replace anything but an empty folder or an earlier sweep's output."""
    if not out.exists() and not out.is_symlink():
        parent = out.parent
        if not parent.is_dir():
            raise EfgenError("the output folder's parent does not exist", file=str(out),
                             fix=f"create {parent} first, or choose another -o DIR")
        return
    if not out.is_dir() or out.is_symlink():
        raise EfgenError("the output path exists and is not a folder", file=str(out),
                         fix="choose another -o DIR, or remove it")
    entries = list(out.iterdir())
    if entries and not (out / "points.json").is_file():
        raise EfgenError("the output folder exists and does not hold an earlier sweep",
                         file=str(out), fix="choose another -o DIR, or empty it")


# =========================================================================== running

def default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def check_jobs(jobs: int | None) -> int:
    """``--jobs`` checked (None: :func:`default_jobs`)."""
    if jobs is None:
        return default_jobs()
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise EfgenError(f"--jobs must be a positive integer, got {jobs!r}", where="--jobs",
                         fix="give e.g. --jobs 2, or leave it out to use every core")
    return jobs


def _chunks(points: list[tuple], jobs: int) -> list[list[tuple]]:
    """Chunks of consecutive points sharing (board, net, batch), small enough to keep
    every worker busy and the progress bar moving."""
    size = max(1, min(64, math.ceil(len(points) / (jobs * 8))))
    out: list[list[tuple]] = []
    for _, grp in itertools.groupby(points, key=lambda p: (p[1], p[2], p[3])):
        grp = list(grp)
        out.extend(grp[i:i + size] for i in range(0, len(grp), size))
    return out


#: The code a scheduled point depends on (besides its inputs): part of its cache key.
_POINT_CODE = ("model/*.py", "dse.py", "design.py", "methods/*.py")


def _context(sw: Sweep) -> dict[str, Any]:
    ctx = {"boards": sw.boards, "nets": sw.nets, "objective": sw.objective,
           "train_last": sw.train_last, "trainings": sw.trainings or {}}
    if sw.fuse:
        ctx["fuse"] = True
    ctx["token"] = digest({k: repr(v) for k, v in ctx.items()})
    return ctx


def _point_keys(sw: Sweep, cache: Cache, points: list[tuple]) -> list[str]:
    """The cache key of each point: its values, the board and net definitions, the
    objective and train_last (plus, in Cache.key, efgen's version, the coefficients and
    the model's source)."""
    defs = {("board", k): digest(repr(v)) for k, v in sw.boards.items()}
    defs.update({("net", k): digest(repr(v)) for k, v in sw.nets.items()})
    keys = []
    for p in points:
        _, b, n = p[:3]
        spec = {"point": list(p[1:]), "board": defs[("board", b)],
                "net": defs[("net", n)], "objective": sw.objective,
                "train_last": sw.train_last}
        if sw.fuse:
            spec["fuse"] = True
        section = (sw.trainings or {}).get(p[12]) if len(p) > 12 else None
        if section is not None:
            spec["training"] = json.dumps(section, sort_keys=True)
        keys.append(cache.key(spec, _POINT_CODE))
    return keys


def _evaluate(sw: Sweep, points: list[tuple], farm: Farm, cache: Cache, bar) -> list[dict]:
    """The record of every point of ``points``, in their order: from the cache where it
    holds them, the rest computed on ``farm`` (and stored)."""
    keys = _point_keys(sw, cache, points) if cache.enabled else [None] * len(points)
    records: list[dict | None] = [None] * len(points)
    todo = []
    for i, (p, k) in enumerate(zip(points, keys)):
        hit = cache.get(k) if k is not None else None
        if hit is not None and set(hit) == set(FIELDS) - {"index"}:
            records[i] = {f: (p[0] if f == "index" else hit[f]) for f in FIELDS}
        else:
            todo.append(i)
    bar.update(len(points) - len(todo))
    chunks = _chunks([points[i] for i in todo], farm.workers)
    pos = {p[0]: i for i, p in enumerate(points)}

    def done(_, chunk_records):
        bar.update(len(chunk_records))

    for chunk_records in farm.map(_run_chunk, chunks, _context(sw), on_done=done):
        for r in chunk_records:
            i = pos[r["index"]]
            records[i] = r
            if keys[i] is not None:
                cache.put(keys[i], {f: v for f, v in r.items() if f != "index"})
    return records  # type: ignore[return-value]


def _compute(sw: Sweep, farm: Farm, cache: Cache, progress: bool) -> list[dict]:
    points = sw.points()
    with bar(len(points), f"sweep {sw.name}", unit="pt", enabled=progress) as b:
        results = _evaluate(sw, points, farm, cache, b)
    results.sort(key=lambda r: r["index"])
    return results


def _cache_for(cache_dir, no_cache: bool) -> Cache:
    if no_cache:
        return Cache(POINT_KIND, None)
    return Cache(POINT_KIND, cache_dir if cache_dir is not None else default_cache_dir())


POINT_KIND = "sweep-point"


def run_sweep(path: str | os.PathLike, out_dir: str | os.PathLike | None = None,
              jobs: int | None = None, progress: bool = True, *,
              cluster: str | None = None, cache_dir: str | os.PathLike | None = None,
              no_cache: bool = False, client=None, fuse: bool = False) -> dict[str, Any]:
    """Validate, run and write a sweep; returns a summary dict (see :func:`print_summary`).

    ``jobs`` worker processes of a local Dask cluster (1: in this process), or the Dask
    cluster at ``cluster`` (or ``client``); points already in the result cache
    (``cache_dir``, default :func:`efgen.resultcache.default_dir`) are not recomputed.
    Nothing is written unless the whole sweep succeeds."""
    t0 = time.perf_counter()
    jobs = check_jobs(jobs)
    sw = load_sweep(path)
    if fuse:
        sw = replace(sw, fuse=True)
    out = Path(out_dir) if out_dir is not None else Path(f"sweep-{sw.name}")
    _check_out_dir(out)

    cache = _cache_for(cache_dir, no_cache)
    with Farm(jobs, cluster, client=client) as farm:
        workers = farm.workers
        records = _compute(sw, farm, cache, progress)
    return _finish(sw, out, records, cache, workers, t0)


def _finish(sw: Sweep, out: Path, records: list[dict], cache: Cache, workers: int,
            t0: float, extra: dict[str, str] | None = None) -> dict[str, Any]:
    """Fronts, output files (``extra``: more name -> text) and the summary."""
    fronts = _fronts(sw, records)
    tmp = make_temp(out.resolve())
    try:
        files = _write_outputs(tmp, sw, records, fronts)
        for name, text in (extra or {}).items():
            (tmp / name).write_text(text, encoding="utf-8")
            files.append(name)
        publish(tmp, out.resolve())
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

    fitting = [r for r in records if r["fits"]]
    key = _BEST_KEY[sw.objective]
    best = min(fitting, key=lambda r: (r[key], r["dsp"], r["bram18"], r["index"]),
               default=None)
    return {
        "name": sw.name, "file": sw.file, "out_dir": str(out), "files": files,
        "points": len(records), "fitting": len(fitting),
        "over_caps": sum(1 for r in records if not r["fits"] and r["binding"] != "buffers"),
        "unschedulable": sum(1 for r in records if r["binding"] == "buffers"),
        "fronts": [{"front": f["front"], "net": f["net"], "batch": f["batch"],
                    "points": len(f["points"]), "candidates": f["candidates"]}
                   for f in fronts],
        "objective": sw.objective, "best": best,
        "jobs": workers, "cached": cache.hits, "computed": len(records) - cache.hits,
        "cache_dir": str(cache.dir.parent) if cache.enabled else None,
        "elapsed_s": time.perf_counter() - t0,
    }


# =========================================================================== CLI

def add_arguments(parser) -> None:
    """The arguments of ``efgen sweep`` (for efgen/cli.py)."""
    import argparse

    import efgen.farm as farm

    parser.add_argument("file", metavar="FILE.yaml", help="sweep file (see configs/sweeps)")
    parser.add_argument("-o", "--output", metavar="DIR",
                        help="output folder (default: sweep-<name>)")
    farm.add_arguments(parser)
    parser.add_argument("--search", choices=["nsga2"],
                        help="do not enumerate: search the sweep's space with Optuna's "
                             "NSGA-II for the Pareto fronts (needs --budget)")
    parser.add_argument("--budget", type=int, metavar="N",
                        help="--search: distinct points to evaluate")
    parser.add_argument("--seed", type=int, default=0,
                        help="--search: the sampler's seed (default 0)")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bar on stderr")
    parser.add_argument("--fuse", action=argparse.BooleanOptionalAction, default=False,
                        help="price every point's restructured-BN datapath (a model; "
                             "efgen/model/restructure.py); --no-fuse (the default): unfused")


def print_summary(s: dict) -> None:
    """What ``efgen sweep`` prints of a sweep's (or search's) summary dict."""
    print(f"sweep {s['name']}: {s['points']:,} points, {s['fitting']:,} fit "
          f"({s['over_caps']:,} over the board caps, {s['unschedulable']:,} with a layer "
          f"that fits no tiling) in {s['elapsed_s']:.1f} s on {s['jobs']} "
          f"worker{'s' if s['jobs'] != 1 else ''}"
          + (f"; {s['cached']:,} from the cache" if s.get("cached") else ""))
    if s.get("search"):
        q = s["search"]
        print(f"  searched with {q['sampler']} (seed {q['seed']}): {q['evaluated']:,} of "
              f"{q['space']:,} points evaluated in {q['trials']:,} trials")
    for f in s["fronts"]:
        print(f"  {f['front']} front ({f['net']}, batch {f['batch']}): {f['points']} of "
              f"{f['candidates']} fitting points")
    b = s["best"]
    if b is None:
        print("  no point fits: see the 'binding' and 'reason' columns of points.csv")
    else:
        print(f"  best by {s['objective']}: #{b['index']} {b['board']} {b['net']} "
              f"{b['precision']} {b['clock_mhz']:g} MHz Tm={b['tm']} Tn={b['tn']} "
              f"ifm={b['ifm_depth']} ofm={b['ofm_depth']} wbuf={b['wbuf_depth']}"
              + (f" training {b['training']}" if b.get("training") not in (None, "none")
                 else "") + ": "
              f"{b['ms_per_step']:.2f} ms/step, {b['images_per_s']:.1f} images/s, "
              f"{b['energy_j']:.3f} J/step, {b['dsp']:g} DSP")
    print(f"  wrote {s['out_dir']}/: {', '.join(s['files'])}")
