"""efgen's Python API: what the ``efgen`` command line is a thin layer over.

::

    import efgen
    acc = efgen.build("resnet20", board="zcu102", batch=32)   # a Net, a dict, a path too
    acc.report["effective_gflops"]; acc.design; acc.write("build/r20")
    res = acc.csim(x, labels, steps=3)      # the generated C++ against the golden model
    ref = acc.golden(x, labels)             # the reference step; ref.by_layer["conv1"]
    efgen.sweep("configs/sweeps/zcu102-resnet20.yaml", "sweep-r20")

Units: clocks in MHz; times in the report in seconds (``step_seconds``) and
milliseconds where the key says so (``*_ms``); throughput in GFLOPS and images/s;
sizes in 32-bit words unless a key says bytes. ``x`` is float32 ``[batch, C, H, W]``
(NCHW, the net's input shape), ``labels`` integer class indices ``[batch]``.

Every error the caller can cause raises :class:`efgen.EfgenError` (``.what``,
``.where``: the argument or key, ``.fix``: what to do); nothing exits the interpreter.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from efgen.errors import EfgenError

# The SGD defaults of the command line (PyTorch's CIFAR recipe).
LR, MOMENTUM, WEIGHT_DECAY = 0.01, 0.9, 5e-4


def _net(net: Any, train_last: int | None):
    """A Net from a catalogue name, a YAML/ONNX path, a parsed Net or a net document."""
    from efgen.frontend import load_net
    from efgen.frontend.ir import Net, parse_net

    if isinstance(net, Net):
        return net.with_train_last(train_last) if train_last is not None else net
    if isinstance(net, Mapping):
        n = parse_net(dict(net), "<dict>")
        return n.with_train_last(train_last) if train_last is not None else n
    if isinstance(net, (str, os.PathLike)):
        return load_net(os.fspath(net), train_last=train_last)
    raise EfgenError(f"cannot use a {type(net).__name__} as a net", where="net",
                     fix="give a catalogue name, a .yaml/.onnx path, an efgen Net or a dict")


def _board(board: Any):
    from efgen.frontend.boards import Board, load_board

    if isinstance(board, Board):
        return board
    if isinstance(board, (str, os.PathLike)):
        return load_board(board)
    raise EfgenError(f"cannot use a {type(board).__name__} as a board", where="board",
                     fix="give a catalogue name (efgen boards) or a board .yaml path")


def _tiles(tiles: Any) -> tuple[int | None, int | None, int | None]:
    """(Tm, Tn, P or None) of a ``tiles`` argument."""
    from efgen.model.schedule import parse_array

    if tiles is None:
        return None, None, None
    if isinstance(tiles, str):
        return parse_array(tiles)
    if isinstance(tiles, Mapping):
        low = {str(k).lower(): v for k, v in tiles.items()}
        tiles = ((low.get("tm"), low.get("tn")) + ((low["p"],) if "p" in low else ())
                 if {"tm", "tn"} <= set(low) <= {"tm", "tn", "p"} else None)
    if (isinstance(tiles, (tuple, list)) and len(tiles) in (2, 3)
            and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1
                    for v in tiles)):
        return int(tiles[0]), int(tiles[1]), (int(tiles[2]) if len(tiles) == 3 else None)
    raise EfgenError(f"cannot read tiles {tiles!r}", where="tiles",
                     fix="give (Tm, Tn), (Tm, Tn, P), {'Tm': 16, 'Tn': 16} or 'Tm=16,Tn=16'")


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise EfgenError(f"{name} must be a positive integer, not {value!r}", where=name,
                         fix=f"give {name} >= 1")
    return int(value)


@dataclass
class Accelerator:
    """A net scheduled on a board: the Design, the model's figures, and what can be done
    with them (write the build folder, C-simulate the generated C++, run the golden step).

    Build one with :func:`build`. ``report`` is the dict of ``report.json`` (see
    :func:`efgen.report.summary.report_dict`); ``design`` the Design every artefact is
    generated from; ``evaluation`` the model's per-layer evaluation.
    """

    net: Any                       # efgen.frontend.ir.Net
    board: Any                     # efgen.frontend.boards.Board
    design: Any                    # efgen.design.Design
    evaluation: dict = field(repr=False)
    full_evaluation: dict | None = field(default=None, repr=False)
    words: tuple[str, ...] = field(default=(), repr=False)   # the equivalent command line
    training: Any = field(default=None, repr=False)  # efgen.methods.spec.Training or None

    @property
    def report(self) -> dict:
        """The report (``report.json``): step time, throughput, resources, per layer."""
        from efgen.report.summary import report_dict

        return report_dict(self.design, self.board, self.evaluation, self.full_evaluation)

    def summary(self) -> str:
        """The lines ``efgen build`` prints."""
        from efgen.report.summary import summary_lines

        return "\n".join(summary_lines(self.design, self.board, self.report))

    def write(self, out_dir: str | os.PathLike, *, hls: bool = True,
              rtl: str | None = "dsp", force: bool = False) -> "Written":
        """Write the build folder (design.json, report, plots, ``hls/``, ``rtl/``) into
        ``out_dir``, atomically. ``rtl``: the reference RTL's FP32 units (``"dsp"``,
        ``"synth"``, ``"behav"``) or None for no rtl/. An existing folder is replaced only when it is an
        earlier efgen build, or with ``force``."""
        from efgen.flow import RTL_IMPLS, write_build

        if rtl is not None and rtl not in RTL_IMPLS:
            raise EfgenError(f"RTL impl {rtl!r} unknown", where="rtl",
                             fix=f"use one of {', '.join(RTL_IMPLS)}, or None for no rtl/")
        out = Path(out_dir)
        rep, files, note = write_build(out, self.design, self.board, self.evaluation,
                                       self.full_evaluation, hls=hls, rtl=rtl, force=force,
                                       request=self.words)
        return Written(out, rep, files, note)

    def _sgd(self, lr: float, momentum: float, weight_decay: float):
        from efgen.golden.model import SGD

        for name, v in (("lr", lr), ("momentum", momentum), ("weight_decay", weight_decay)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) \
                    or v < 0:
                example = {"lr": LR, "momentum": MOMENTUM, "weight_decay": WEIGHT_DECAY}[name]
                raise EfgenError(f"{name} must be a finite number >= 0, not {v!r}", where=name,
                                 fix=f"give e.g. {name}={example}")
        return SGD(lr=float(lr), momentum=float(momentum), weight_decay=float(weight_decay))

    def _batch(self, x, labels, seed: int, dtype=np.float32):
        """(x, labels) checked against the net and the Design's batch, or a seeded
        synthetic batch when both are None."""
        from efgen.golden.model import synthetic_batch

        B = self.design.batch
        if x is None and labels is None:
            return synthetic_batch(self.net, B, seed=seed + 1, dtype=dtype)
        if x is None or labels is None:
            raise EfgenError("give both x and labels, or neither (a synthetic batch)",
                             where="x" if x is None else "labels",
                             fix="pass the images and their labels together")
        want = (B, *self.net.input_shape)
        xa = np.asarray(x)
        if xa.shape != want:
            raise EfgenError(f"x has shape {xa.shape}, the accelerator takes {want}",
                             where="x", fix=f"give {B} images of shape "
                             f"{tuple(self.net.input_shape)} (NCHW), or build with batch="
                             f"{xa.shape[0] if xa.ndim else '...'}")
        if not np.issubdtype(xa.dtype, np.number) or not np.all(np.isfinite(xa)):
            raise EfgenError("x must hold finite numbers", where="x",
                             fix="remove NaN/inf values from the images")
        la = np.asarray(labels)
        K = self.net.num_classes
        if la.shape != (B,) or not np.issubdtype(la.dtype, np.integer) \
                or la.size and (la.min() < 0 or la.max() >= K):
            raise EfgenError(f"labels must be {B} integer class indices in [0, {K})",
                             where="labels", fix="give one class index per image")
        return xa.astype(dtype), la.astype(np.int64)

    def golden(self, x=None, labels=None, *, state=None, steps: int = 1, seed: int = 0,
               lr: float = LR, momentum: float = MOMENTUM, weight_decay: float = WEIGHT_DECAY,
               dtype=np.float32):
        """The reference training step(s) of the numpy golden model on ``(x, labels)``
        (a seeded synthetic batch when omitted), from ``state`` (a
        :class:`efgen.golden.model.TrainState`; default the seeded He init).

        With training methods (``build(..., training=...)``) each step draws its drop,
        skip and keep masks from ``seed`` (:func:`efgen.methods.step.draw_plan`); a
        dropped step's ``loss`` is NaN.

        Returns the last step's :class:`efgen.golden.model.StepResult`: ``loss``,
        ``state`` (after the step), ``trace`` (``"layer:tensor"`` -> array) and
        ``by_layer`` (layer -> tensor name -> array)."""
        from efgen.golden.model import cast_state, init_state, train_step

        steps = _positive_int(steps, "steps")
        sgd = self._sgd(lr, momentum, weight_decay)
        x, labels = self._batch(x, labels, seed, dtype)
        state = init_state(self.net, seed=seed, dtype=dtype) if state is None else \
            cast_state(state, dtype)
        res = None
        for i in range(steps):
            if self.training is not None:
                from efgen.methods.step import draw_plan, method_step

                plan = draw_plan(self.net, self.training, x, labels, seed=seed * 1000 + i)
                res = method_step(self.net, state, x, labels, sgd, plan)
            else:
                res = train_step(self.net, state, x, labels, sgd)
            state = res.state
        return res

    def csim(self, x=None, labels=None, *, state=None, steps: int = 1, seed: int = 0,
             lr: float = LR, momentum: float = MOMENTUM, weight_decay: float = WEIGHT_DECAY,
             workdir: str | os.PathLike | None = None, progress: Callable | None = None):
        """C-simulate ``steps`` training steps of the generated HLS C++ (compiled with
        g++) on ``(x, labels)``, from ``state`` (default the seeded He init), each step
        checked descriptor by descriptor against the golden model
        (:func:`efgen.csim.csim.run_csim`).

        Returns a :class:`efgen.csim.csim.CsimResult`: ``ok``, and per step the loss of
        both, the per-descriptor checks and the per-tensor drift. ``workdir`` keeps the
        generated project and the compiled library (default: a temporary folder)."""
        from efgen.csim.csim import run_csim

        if self.training is not None:
            from efgen.hls.methods import training_of

            training_of(self.net, self.design)     # refuses what the C++ does not run
        # A fused design runs the restructured-BN plan the model priced (efgen.hls.fused;
        # the report lists any difference), checked like any other.
        if self.design.hw.precision != "fp32":
            raise EfgenError(f"C-simulation implements fp32, this design is "
                             f"{self.design.hw.precision}", where="precision",
                             fix="build with precision='fp32'")
        steps = _positive_int(steps, "steps")
        sgd = self._sgd(lr, momentum, weight_decay)
        from efgen.hls.emit import c_float

        for name, v in (("lr", sgd.lr), ("momentum", sgd.momentum),
                        ("weight_decay", sgd.weight_decay)):
            c_float(v, name)                 # the descriptors carry them as float32
        x, labels = self._batch(x, labels, seed)
        if workdir is None:
            with tempfile.TemporaryDirectory(prefix="efgen-csim-") as tmp:
                return run_csim(self.net, self.design, self.board, Path(tmp), steps=steps,
                                seed=seed, sgd=sgd, progress=progress, tb_data=False,
                                x=x, labels=labels, state=state)
        return run_csim(self.net, self.design, self.board, Path(workdir), steps=steps,
                        seed=seed, sgd=sgd, progress=progress, x=x, labels=labels,
                        state=state, request=self.words)


@dataclass
class Written:
    """A written build folder: its path, the report, the top-level files, the RTL note."""

    out_dir: Path
    report: dict
    files: list[str]
    rtl_note: str | None = None


def build(net: Any, board: Any = "zcu102", batch: int = 32, *, clock: float | None = None,
          objective: str = "latency", precision: str = "fp32", train_last: int | None = None,
          tiles: Any = None, overrides: str | os.PathLike | None = None,
          momentum: bool = True, progress: Callable[[str], None] | None = None,
          command: Sequence[str] | None = None, training: Any = None,
          fuse: bool = False, target: str = "hls", rtl_impl: str = "dsp",
          parray: bool = False, weight_db: str = "off",
          pack: bool | None = None) -> Accelerator:
    """Schedule ``net`` on ``board`` and price it: the accelerator efgen generates.

    ``net``: a catalogue name (``efgen nets``), a ``.yaml``/``.onnx`` path, an efgen Net
    or a net document (dict). ``board``: a catalogue name (``efgen boards``) or a board
    ``.yaml``. ``batch``: images per training step. ``clock``: the PL clock in MHz
    (default the board's). ``objective``: ``latency``, ``energy``, ``edp`` or ``dram``.
    ``precision``: ``fp32``, ``fp16``, ``bf16``, ``fix16`` or ``int8`` (the code
    generators implement fp32). ``train_last``: train only the last K conv/linear layers.
    ``tiles``: fix the array, ``(Tm, Tn)``. ``overrides``: a per-layer schedule override
    YAML. ``momentum``: SGD with a momentum buffer. ``progress``: called with one-line
    notices. ``command``: the ``efgen build`` words that remake this Design, which the
    HLS project's run_hls.tcl prints when its testbench data is missing (default: derived
    from these arguments). ``training``: the training methods (efgen.methods): a
    ``--training`` YAML path, the ``training:`` mapping, or None for the net file's own
    ``training:`` section (if any). ``fuse``: price the restructured-BN datapath
    (efgen/model/restructure.py; the C++ runs the plan it prices, which :meth:`csim`
    checks, and so does rtl/, the reference RTL built with its fused datapath:
    RtlParams.fuse); False (the default) is the unfused step.
    ``parray``: search a third unrolled dimension P (pixel lanes) and pack shallow
    layers' kernel taps into idle reduction lanes (issue 13; the HLS C++ runs both, the
    reference RTL packing only, so no rtl/ is written for a design with P > 1; ``tiles``
    may fix P as a third value).
    ``pack``: first-layer tap packing (issue 13): True packs the kernel taps of shallow
    FP/WU layers into idle reduction lanes (the HLS C++ and the reference RTL both build
    it), False never, None (the default) with ``parray`` or a fixed P > 1.
    ``weight_db``: double-buffered weight chunks (issue 13): ``"off"`` (one weight buffer,
    the default), ``"on"`` or ``"auto"`` (the scheduler weighs the second buffer's BRAM).
    ``target``: ``"hls"`` (the Vitis HLS build's resources must fit the board's caps)
    or ``"rtl"`` (the reference RTL's, with FP32 units ``rtl_impl``; efgen.rtl.cost).
    Nothing is written until :meth:`Accelerator.write`.
    """
    from efgen.flow import estimate
    from efgen.model.schedule import Request, load_overrides

    batch = _positive_int(batch, "batch")
    if train_last is not None:
        train_last = _positive_int(train_last, "train_last")
    n = _net(net, train_last)
    t = _training(training, n)
    if t is not None:
        from efgen.methods.spec import apply_to_net

        n = apply_to_net(n, t)
    b = _board(board)
    tm, tn, p = _tiles(tiles)
    if clock is not None and (isinstance(clock, bool) or not isinstance(clock, (int, float))
                              or not 0 < clock <= 1000):
        raise EfgenError(f"clock {clock!r} MHz is out of range", where="clock",
                         fix="give the PL clock in MHz, e.g. 100 to 300")
    ov = load_overrides(os.fspath(overrides), n) if overrides is not None else {}
    if target not in ("hls", "rtl"):
        raise EfgenError(f"unknown target {target!r}", where="target", fix="use hls or rtl")
    req = Request(net=n, board=b, batch=batch, clock_mhz=None if clock is None else float(clock),
                  objective=objective, precision=precision, tm=tm, tn=tn, overrides=ov,
                  train_last=train_last, momentum=bool(momentum), training=t,
                  fuse=bool(fuse), target=target, rtl_impl=rtl_impl, p=p,
                  parray=bool(parray), weight_db=weight_db,
                  pack=None if pack is None else bool(pack))
    design, ev, full = estimate(req, progress=progress or (lambda s: None))
    words = tuple(str(w) for w in command) if command is not None else \
        _words(net, board, batch, clock, objective, precision, train_last, tiles, overrides,
               momentum, training if isinstance(training, (str, os.PathLike)) else None,
               fuse, target, parray, weight_db, pack)
    return Accelerator(n, b, design, ev, full, words, training=t)


def _training(training: Any, net):
    """The Training of ``training`` (path, mapping, Training or None) for ``net``."""
    from efgen.methods.spec import Training, parse_training, resolve

    if training is None:
        return resolve(net)
    if isinstance(training, Training):
        return training
    if isinstance(training, (str, os.PathLike)):
        return resolve(net, os.fspath(training))
    if isinstance(training, Mapping):
        doc = dict(training)
        doc = doc["training"] if set(doc) == {"training"} else doc
        return parse_training(doc, net, "<training>")
    raise EfgenError(f"cannot use a {type(training).__name__} as training methods",
                     where="training", fix="give a --training YAML path or a mapping")


def _words(net, board, batch, clock, objective, precision, train_last, tiles, overrides,
           momentum, training=None, fuse=False, target="hls", parray=False,
           weight_db="off", pack=None) -> tuple[str, ...]:
    """The ``efgen build`` command that makes the same Design (without -o), for
    run_hls.tcl's hint (:func:`efgen.flow.request_words`)."""
    from argparse import Namespace

    from efgen.flow import request_words

    def name(v, default):
        if isinstance(v, (str, os.PathLike)):
            return os.fspath(v)
        src = getattr(v, "source", None) or getattr(v, "path", None)
        return str(src) if src and Path(str(src)).is_file() else \
            str(getattr(v, "name", None) or (v.get("name") if isinstance(v, Mapping) else default))

    if tiles is not None and not isinstance(tiles, str):
        tm, tn, p = _tiles(tiles)
        tiles = f"Tm={tm},Tn={tn}" + (f",P={p}" if p is not None else "")
    return request_words(Namespace(
        command="build", board=name(board, "board"), net=name(net, "net"), batch=batch,
        clock=clock, objective=objective, precision=precision, train_last=train_last,
        tiles=tiles, overrides=None if overrides is None else os.fspath(overrides),
        no_momentum=not momentum, fuse=bool(fuse), target=target, parray=bool(parray),
        weight_db=weight_db, pack=pack,
        training=None if training is None else os.fspath(training)))


def sweep(file: str | os.PathLike, out_dir: str | os.PathLike | None = None, *,
          jobs: int | None = None, progress: bool = False, cluster: str | None = None,
          cache_dir: str | os.PathLike | None = None, no_cache: bool = False,
          search: str | None = None, budget: int | None = None, seed: int = 0,
          fuse: bool = False) -> dict:
    """Fully schedule every hardware point of a sweep file (``configs/sweeps``) and write
    the points, the Pareto fronts and their plots into ``out_dir`` (default
    ``sweep-<name>``; nothing is written unless the whole sweep succeeds).

    ``jobs``: Dask worker processes (default every core; 1 runs in this process);
    ``cluster``: ``tcp://HOST:PORT`` of an existing Dask scheduler (default
    ``DASK_SCHEDULER_ADDRESS``, else a LocalCluster); ``cache_dir``/``no_cache``: the
    result cache (default ``EFGEN_CACHE_DIR``, else ``~/.cache/efgen``); ``search="nsga2"``
    with ``budget`` (distinct points) and ``seed``: search the space with Optuna's
    NSGA-II instead of enumerating it. Returns the summary dict ``efgen sweep`` prints:
    ``points``, ``fitting``, ``fronts``, ``best`` (the best point's record), ``files``,
    ``elapsed_s``, ``cached`` (and ``search``). ``fuse``: price the restructured-BN
    datapath at every point (enumerated sweeps only)."""
    common = dict(progress=progress, cluster=cluster, cache_dir=cache_dir, no_cache=no_cache)
    if search is None:
        if budget is not None:
            raise EfgenError("--budget is only for --search", where="--budget",
                             fix="add --search nsga2, or drop --budget to enumerate every "
                                 "point")
        from efgen.dse import run_sweep

        return run_sweep(file, out_dir, jobs, fuse=bool(fuse), **common)
    if fuse:
        raise EfgenError("--fuse is for enumerated sweeps", where="--fuse",
                         fix="drop --search, or drop --fuse")
    if search != "nsga2":
        raise EfgenError(f"unknown search {search!r}", where="--search", fix="use nsga2")
    from efgen.search import run_search

    return run_search(file, out_dir, budget=budget, jobs=jobs, seed=seed, **common)


__all__ = ["Accelerator", "Written", "build", "sweep", "EfgenError"]
