"""On-device adaptation on real data: proof that the generated accelerator learns.

The scenario (``efgen adapt``, ``make adapt``):

1. scikit-learn's ``load_digits`` (1,797 8x8 handwritten digits, shipped inside the
   package: nothing is downloaded) is split per class, seeded, into a training and a
   test set; each image is upsampled by pixel repetition to the net's input size
   (LeNet-5: 32x32) and normalised with the training set's mean and standard deviation.
2. The net is pretrained with the golden model (:func:`efgen.golden.model.train_step`,
   every layer trainable) on the training images of the old classes 0-4 only.
3. From that start, the net adapts to all ten classes with ``--train-last K`` (the last
   K conv/linear layers train, the rest is frozen) twice, on the same batches with the
   same SGD hyper-parameters: in C-simulation of the generated accelerator (the Vitis
   HLS C++ of the Design compiled with g++, :class:`efgen.csim.csim.Csim`, one whole
   ``efgen_step`` per batch on its own DRAM image) and in the golden model.
4. Test accuracy and loss are computed with the golden forward pass (inference mode):
   for the C-simulation on the parameters read back from its DRAM image, for the golden
   curve on the golden parameters.

The C-simulation must track the golden model (:data:`ACC_TOL_PP`, :data:`LOSS_RTOL` over
the first :data:`LOSS_STEPS` steps); :func:`run_adapt` returns the curves and the
verdict, :func:`write_outputs` writes ``adapt.json``, ``curves.csv`` and ``adapt.png``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from efgen.errors import EfgenError
from efgen.frontend.ir import Net
from efgen.golden.model import SGD, TrainState, forward, init_state, train_step

ACC_TOL_PP = 1.0       # final test accuracy: |csim - golden| in percentage points
LOSS_RTOL = 1e-3       # training loss: |csim - golden| / |golden|, per step ...
LOSS_STEPS = 20        # ... over the first this many steps
CLASSES = 10           # load_digits' classes
DIGIT_SIZE = 8         # load_digits' images are 8x8, values 0..16
PIP_HINT = "pip install 'efgen[data]' (or pip install 'scikit-learn>=1.3,<2')"

# Top-level names an adapt folder holds (efgen.outdir): an existing folder holding
# anything else is not replaced without --force.
MARKER = "adapt.json"
OWNED = ("adapt.json", "adapt.png", "curves.csv", "hls")


@dataclass(frozen=True)
class AdaptConfig:
    """The scenario's knobs. ``old_classes``: pretraining sees classes 0..old_classes-1."""

    net: str = "lenet5"
    board: str = "zcu102"
    tiles: str | None = None          # "Tm=8,Tn=8"; None: the scheduler's array
    train_last: int = 2
    batch: int = 32                   # images per step (the Design's batch)
    steps: int = 300                  # adaptation steps
    eval_every: int = 10              # test evaluation every this many steps (and the last)
    pretrain_epochs: int = 10
    pretrain_lr: float = 0.05
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    seed: int = 0
    test_fraction: float = 0.3
    old_classes: int = 5


@dataclass
class Digits:
    x_train: np.ndarray    # [N, 1, H, W] float32, normalised
    y_train: np.ndarray    # [N] int64
    x_test: np.ndarray
    y_test: np.ndarray


@dataclass
class EvalPoint:
    step: int
    acc: float             # test accuracy, all classes (fraction)
    acc_old: float         # ... on the old classes
    acc_new: float         # ... on the new classes
    loss: float            # test loss (softmax cross-entropy, mean)


@dataclass
class Curve:
    """One adaptation run: the training loss of every step, the test evaluations."""

    loss: list[float] = field(default_factory=list)       # loss of step k at index k-1
    evals: list[EvalPoint] = field(default_factory=list)

    def final(self) -> EvalPoint:
        return self.evals[-1]


@dataclass
class AdaptResult:
    config: AdaptConfig
    net_name: str
    tiles: tuple[int, int]
    sizes: dict[str, int]
    pretrain: EvalPoint                 # the adaptation's start, evaluated
    csim: Curve
    golden: Curve
    seconds: dict[str, float]

    @property
    def loss_steps(self) -> int:
        return min(LOSS_STEPS, len(self.golden.loss))

    @property
    def loss_rel_diff(self) -> list[float]:
        return [abs(c - g) / max(abs(g), 1e-30)
                for c, g in zip(self.csim.loss, self.golden.loss)]

    @property
    def max_loss_rel(self) -> float:
        return max(self.loss_rel_diff[:self.loss_steps])

    @property
    def acc_diff_pp(self) -> float:
        return 100.0 * abs(self.csim.final().acc - self.golden.final().acc)

    @property
    def loss_ok(self) -> bool:
        return self.max_loss_rel <= LOSS_RTOL

    @property
    def acc_ok(self) -> bool:
        return self.acc_diff_pp <= ACC_TOL_PP

    @property
    def ok(self) -> bool:
        return self.loss_ok and self.acc_ok


# ---- checks --------------------------------------------------------------------------------

def check_config(cfg: AdaptConfig) -> None:
    """Every user-given number, before anything runs (EfgenError, exit code 2)."""
    where = "efgen adapt"
    for flag, v in (("--steps", cfg.steps), ("--batch", cfg.batch),
                    ("--eval-every", cfg.eval_every)):
        if v < 1:
            raise EfgenError(f"{flag} {v} must be at least 1", where=where,
                             fix=f"give a positive {flag}")
    if cfg.pretrain_epochs < 0:
        raise EfgenError(f"--pretrain-epochs {cfg.pretrain_epochs} is negative", where=where,
                         fix="give 0 or more epochs")
    for flag, v in (("--lr", cfg.lr), ("--pretrain-lr", cfg.pretrain_lr)):
        if not (math.isfinite(v) and v > 0):
            raise EfgenError(f"{flag} {v} must be a positive number", where=where,
                             fix=f"give a positive finite {flag}, e.g. 0.05")
    if not (math.isfinite(cfg.momentum) and 0 <= cfg.momentum < 1):
        raise EfgenError(f"--momentum {cfg.momentum} is outside [0, 1)", where=where,
                         fix="give a momentum from 0 to below 1, e.g. 0.9")
    if not (math.isfinite(cfg.weight_decay) and cfg.weight_decay >= 0):
        raise EfgenError(f"--weight-decay {cfg.weight_decay} must be zero or positive",
                         where=where, fix="give a finite weight decay, e.g. 5e-4")
    if not 0 < cfg.test_fraction < 1:
        raise EfgenError(f"test fraction {cfg.test_fraction} is outside (0, 1)", where=where,
                         fix="give a fraction such as 0.3")
    if not 1 <= cfg.old_classes < CLASSES:
        raise EfgenError(f"old classes {cfg.old_classes} is outside 1..{CLASSES - 1}",
                         where=where, fix="pretrain on some of the ten digits, e.g. 5")


def check_net(net: Net) -> int:
    """The upsampling factor from 8x8 digits to the net's input; the net must take one
    square channel, a multiple of 8 on a side, and have ten classes."""
    c, h, w = net.input_shape
    if c != 1 or h != w or h % DIGIT_SIZE:
        raise EfgenError(f"net {net.name} takes {c}x{h}x{w} inputs; the digits are 1x8x8 "
                         "images upsampled by an integer factor", file=net.source,
                         where="input", fix="use a net whose input is [1, 8k, 8k], e.g. "
                         "lenet5 ([1, 32, 32])")
    if net.num_classes != CLASSES:
        raise EfgenError(f"net {net.name} has {net.num_classes} classes; the digits have "
                         f"{CLASSES}", file=net.source, where="num_classes",
                         fix=f"use a net with num_classes: {CLASSES}, e.g. lenet5")
    return h // DIGIT_SIZE


# ---- data ----------------------------------------------------------------------------------

def _sklearn():
    """scikit-learn's ``load_digits``, or a one-line error saying how to install it."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise EfgenError("scikit-learn is not installed: 'efgen adapt' trains on its "
                         "load_digits data set", where="efgen adapt", fix=PIP_HINT) from None
    return load_digits


def _load_digits():
    d = _sklearn()()
    return np.asarray(d.images, np.float64), np.asarray(d.target, np.int64)


def load_data(factor: int, seed: int = 0, test_fraction: float = 0.3) -> Digits:
    """The digits, split per class (seeded) into training and test images, upsampled by
    ``factor`` (pixel repetition) and normalised with the training images' mean and
    standard deviation. Deterministic for a given seed."""
    images, target = _load_digits()
    rng = np.random.default_rng(seed)
    train_idx, test_idx = [], []
    for c in range(CLASSES):
        idx = np.flatnonzero(target == c)
        idx = idx[rng.permutation(idx.size)]
        n_test = int(round(idx.size * test_fraction))
        test_idx.append(idx[:n_test])
        train_idx.append(idx[n_test:])
    tr, te = np.sort(np.concatenate(train_idx)), np.sort(np.concatenate(test_idx))
    up = np.kron(images / 16.0, np.ones((factor, factor)))[:, None]     # [N, 1, H, W]
    mean, std = float(up[tr].mean()), float(up[tr].std())
    x = ((up - mean) / std).astype(np.float32)
    return Digits(x[tr], target[tr], x[te], target[te])


def epoch_batches(n: int, batch: int, count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``count`` batches of ``batch`` indices into ``n`` images: seeded epochs (each a
    fresh permutation, the incomplete tail dropped), as many as needed."""
    per_epoch = n // batch
    if per_epoch < 1:
        raise EfgenError(f"--batch {batch} is larger than the {n} training images",
                         where="efgen adapt", fix=f"give a batch of at most {n}")
    out: list[np.ndarray] = []
    while len(out) < count:
        perm = rng.permutation(n)
        out += [perm[i * batch:(i + 1) * batch] for i in range(per_epoch)]
    return out[:count]


# ---- training and evaluation -------------------------------------------------------------

def evaluate(net: Net, state: TrainState, x: np.ndarray, y: np.ndarray, step: int,
             old_classes: int, chunk: int = 256) -> EvalPoint:
    """Test accuracy and loss with the golden forward pass in inference mode."""
    logits = []
    for i in range(0, len(x), chunk):
        acts, _, _ = forward(net, state, x[i:i + chunk], None, train=False)
        logits.append(acts[net.loss_layer.inputs[0]])
    z = np.concatenate(logits).astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    loss = float(-logp[np.arange(len(y)), y].mean())
    hit = np.argmax(z, axis=1) == y
    old = y < old_classes
    return EvalPoint(step, float(hit.mean()), float(hit[old].mean()), float(hit[~old].mean()),
                     loss)


def pretrain(net: Net, data: Digits, cfg: AdaptConfig) -> TrainState:
    """Golden training of every layer on the old classes' training images."""
    state = init_state(net, seed=cfg.seed, dtype=np.float32)
    keep = np.flatnonzero(data.y_train < cfg.old_classes)
    rng = np.random.default_rng(cfg.seed + 1)
    per_epoch = keep.size // cfg.batch
    sgd = SGD(lr=cfg.pretrain_lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    for b in epoch_batches(keep.size, cfg.batch, per_epoch * cfg.pretrain_epochs, rng):
        idx = keep[b]
        state = train_step(net, state, data.x_train[idx], data.y_train[idx], sgd).state
    return state


def adapt_start(net: Net, pretrained: TrainState, seed: int) -> TrainState:
    """The adaptation's start: the pretrained parameters and BN statistics in ``net``
    (with its frozen layers), zero momentum for the layers it trains."""
    state = init_state(net, seed=seed, dtype=np.float32)
    start = pretrained.copy()
    return TrainState(start.params, start.buffers, state.velocity)


@dataclass
class Prepared:
    full: Net              # every layer trainable (pretraining)
    net: Net               # with --train-last (adaptation)
    board: object
    tiles: tuple           # (Tm, Tn), None for the scheduler's choice
    data: Digits


def prepare(cfg: AdaptConfig) -> Prepared:
    """Check the request before anything runs or is written: the numbers, the net (and
    that the digits fit it), the board, ``--tiles``, the SGD floats the descriptors carry,
    the batch against the data (loaded here, through scikit-learn)."""
    from efgen.frontend import load_net
    from efgen.frontend.boards import load_board
    from efgen.hls.emit import c_float
    from efgen.model.schedule import parse_tiles

    check_config(cfg)
    full = load_net(cfg.net)
    check_net(full)
    net = load_net(cfg.net, train_last=cfg.train_last)
    board = load_board(cfg.board)
    tiles = parse_tiles(cfg.tiles) if cfg.tiles else (None, None)
    for flag, value in (("--lr", cfg.lr), ("--momentum", cfg.momentum),
                        ("--weight-decay", cfg.weight_decay)):
        c_float(value, flag)
    data = load_data(check_net(full), cfg.seed, cfg.test_fraction)
    n_old = int((data.y_train < cfg.old_classes).sum())
    for n, what in ((len(data.y_train), "training images"),
                    (n_old if cfg.pretrain_epochs else len(data.y_train),
                     f"training images of classes 0-{cfg.old_classes - 1} (pretraining)")):
        if cfg.batch > n:
            raise EfgenError(f"--batch {cfg.batch} is larger than the {n} {what}",
                             where="efgen adapt", fix=f"give a batch of at most {n}")
    return Prepared(full, net, board, tiles, data)


def run_adapt(cfg: AdaptConfig, workdir: Path, progress=None,
              prepared: Prepared | None = None) -> AdaptResult:
    """The whole scenario (module docstring); C-simulation compiles into ``workdir``
    (``workdir``/hls, ``workdir``/csim). ``progress(str)`` gets one line per evaluation;
    ``prepared``: :func:`prepare`'s result for ``cfg``, if the caller has it."""
    from efgen.csim.csim import Csim
    from efgen.model.schedule import Request, schedule

    say = progress or (lambda s: None)
    p = prepared or prepare(cfg)
    full, net, board, (tm, tn), data = p.full, p.net, p.board, p.tiles, p.data
    batches = epoch_batches(len(data.y_train), cfg.batch, cfg.steps,
                            np.random.default_rng(cfg.seed + 2))
    seconds: dict[str, float] = {}

    t0 = time.perf_counter()
    pre = pretrain(full, data, cfg)
    seconds["pretrain"] = time.perf_counter() - t0
    start = adapt_start(net, pre, cfg.seed)
    ev0 = evaluate(net, start, data.x_test, data.y_test, 0, cfg.old_classes)
    say(f"pretrained on classes 0-{cfg.old_classes - 1} ({cfg.pretrain_epochs} epoch(s), golden): "
        f"test accuracy {100 * ev0.acc:.1f}% (old classes {100 * ev0.acc_old:.1f}%, new "
        f"{100 * ev0.acc_new:.1f}%)")

    t0 = time.perf_counter()
    design = schedule(Request(net, board, batch=cfg.batch, tm=tm, tn=tn,
                              train_last=cfg.train_last))
    sgd = SGD(lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    sim = Csim(net, design, board, workdir, sgd)
    sim.load_state(start, data.x_train[batches[0]])
    seconds["compile"] = time.perf_counter() - t0

    csim, golden = Curve(evals=[ev0]), Curve(evals=[ev0])
    g_state = start
    seconds["csim"] = seconds["golden"] = seconds["evaluate"] = 0.0
    for k, b in enumerate(batches, 1):
        x, y = data.x_train[b], data.y_train[b]
        t0 = time.perf_counter()
        sim.set_input(x)
        csim.loss.append(sim.step(y))
        t1 = time.perf_counter()
        res = train_step(net, g_state, x, y, sgd)
        g_state = res.state
        golden.loss.append(res.loss)
        t2 = time.perf_counter()
        seconds["csim"] += t1 - t0
        seconds["golden"] += t2 - t1
        if k % cfg.eval_every == 0 or k == cfg.steps:
            c_state = sim.read_state(start)
            csim.evals.append(evaluate(net, c_state, data.x_test, data.y_test, k,
                                       cfg.old_classes))
            golden.evals.append(evaluate(net, g_state, data.x_test, data.y_test, k,
                                         cfg.old_classes))
            seconds["evaluate"] += time.perf_counter() - t2
            c, g = csim.evals[-1], golden.evals[-1]
            say(f"step {k}/{cfg.steps}: loss csim {csim.loss[-1]:.6f} golden "
                f"{golden.loss[-1]:.6f}; test accuracy csim {100 * c.acc:.2f}% golden "
                f"{100 * g.acc:.2f}%")
    sizes = {"train": int(len(data.y_train)), "test": int(len(data.y_test)),
             "train_old": int((data.y_train < cfg.old_classes).sum()),
             "test_new": int((data.y_test >= cfg.old_classes).sum())}
    return AdaptResult(cfg, net.name, (design.hw.tm, design.hw.tn), sizes, ev0, csim, golden,
                       seconds)


# ---- outputs -------------------------------------------------------------------------------

def _r(v: float) -> float:
    """Figures in the outputs, rounded so that the files are stable text."""
    return float(f"{v:.9g}")


def summary_lines(res: AdaptResult) -> list[str]:
    cfg = res.config
    c, g = res.csim.final(), res.golden.final()
    n = res.loss_steps
    return [
        f"adaptation of {res.net_name} to {CLASSES} classes, --train-last {cfg.train_last}, "
        f"{cfg.steps} steps of batch {cfg.batch} on {cfg.board} ({res.tiles[0]}x{res.tiles[1]} "
        f"array); {res.sizes['train']} training / {res.sizes['test']} test images",
        f"  start (pretrained on classes 0-{cfg.old_classes - 1}): test accuracy "
        f"{100 * res.pretrain.acc:.2f}% (new classes {100 * res.pretrain.acc_new:.2f}%)",
        f"  final test accuracy: C-simulation {100 * c.acc:.2f}% (new classes "
        f"{100 * c.acc_new:.2f}%), golden {100 * g.acc:.2f}% (new classes "
        f"{100 * g.acc_new:.2f}%)",
        f"  final accuracy difference {res.acc_diff_pp:.2f} pp (bar {ACC_TOL_PP:g} pp): "
        f"{'ok' if res.acc_ok else 'FAIL'}",
        f"  training loss, first {n} steps: max |csim - golden| / golden {res.max_loss_rel:.2e} "
        f"(bar {LOSS_RTOL:g}): {'ok' if res.loss_ok else 'FAIL'}",
        f"adapt: {'PASS' if res.ok else 'FAIL'}",
    ]


def result_dict(res: AdaptResult) -> dict:
    ev = lambda e: {k: (_r(v) if isinstance(v, float) else v) for k, v in asdict(e).items()}  # noqa: E731
    return {
        "config": asdict(res.config),
        "net": res.net_name,
        "tiles": {"tm": res.tiles[0], "tn": res.tiles[1]},
        "images": res.sizes,
        "criteria": {"final_acc_diff_pp": _r(res.acc_diff_pp), "acc_tol_pp": ACC_TOL_PP,
                     "max_loss_rel_first_steps": _r(res.max_loss_rel),
                     "loss_steps": res.loss_steps, "loss_rtol": LOSS_RTOL,
                     "acc_ok": res.acc_ok, "loss_ok": res.loss_ok, "pass": res.ok},
        "start": ev(res.pretrain),
        "final": {"csim": ev(res.csim.final()), "golden": ev(res.golden.final())},
        "loss": {"csim": [_r(v) for v in res.csim.loss],
                 "golden": [_r(v) for v in res.golden.loss]},
        "evals": {"csim": [ev(e) for e in res.csim.evals],
                  "golden": [ev(e) for e in res.golden.evals]},
    }


def curves_csv(res: AdaptResult) -> str:
    """One row per step (step 0: the start): training losses and their relative
    difference, and the test evaluation where one was made."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    cols = ("acc", "acc_old", "acc_new", "loss")
    w.writerow(["step", "loss_csim", "loss_golden", "loss_rel_diff"]
               + [f"test_{c}_{who}" for who in ("csim", "golden") for c in cols])
    ce = {e.step: e for e in res.csim.evals}
    ge = {e.step: e for e in res.golden.evals}
    rel = res.loss_rel_diff
    for k in range(0, len(res.golden.loss) + 1):
        row: list = [k] + (["", "", ""] if k == 0 else
                           [f"{res.csim.loss[k - 1]:.9g}", f"{res.golden.loss[k - 1]:.9g}",
                            f"{rel[k - 1]:.3e}"])
        for evs in (ce, ge):
            e = evs.get(k)
            row += [f"{getattr(e, c):.9g}" for c in cols] if e else [""] * len(cols)
        w.writerow(row)
    return buf.getvalue()


def plot(res: AdaptResult, path: Path) -> None:
    """Training loss, its relative difference and test accuracy against step (PNG)."""
    from efgen.report.plots import _figure, _save

    steps = np.arange(1, len(res.golden.loss) + 1)
    csim_style = {"color": "#D55E00", "label": "C-simulation (generated HLS C++)"}
    gold_style = {"color": "#0072B2", "label": "golden model (numpy)", "linestyle": "--"}
    cfg = res.config
    with _figure(13.0, 4.2) as fig:
        ax1, ax2, ax3 = fig.subplots(1, 3)
        ax1.plot(steps, res.csim.loss, lw=1.2, **csim_style)
        ax1.plot(steps, res.golden.loss, lw=1.2, **gold_style)
        ax1.set_xlabel("adaptation step")
        ax1.set_ylabel("training loss (batch softmax cross-entropy)")
        ax1.set_title("training loss")
        ax1.legend(fontsize=8)
        rel = np.maximum(np.asarray(res.loss_rel_diff), 1e-12)
        ax2.semilogy(steps, rel, ".", ms=3, color="#D55E00")
        ax2.axhline(LOSS_RTOL, color="k", lw=0.8, linestyle=":",
                    label=f"bar {LOSS_RTOL:g} (first {LOSS_STEPS} steps)")
        ax2.axvline(LOSS_STEPS, color="grey", lw=0.8, linestyle=":")
        ax2.set_xlabel("adaptation step")
        ax2.set_ylabel("|loss csim - loss golden| / loss golden (0 at 1e-12)")
        ax2.set_title("loss tracking")
        ax2.legend(fontsize=8)
        for curve, style in ((res.csim, csim_style), (res.golden, gold_style)):
            s = [e.step for e in curve.evals]
            ax3.plot(s, [100 * e.acc for e in curve.evals], marker="o", ms=3, lw=1.2, **style)
            ax3.plot(s, [100 * e.acc_new for e in curve.evals], lw=0.8, alpha=0.7,
                     color=style["color"], linestyle=":")
        ax3.plot([], [], color="grey", linestyle=":", label=f"classes {cfg.old_classes}-9 only")
        ax3.set_xlabel("adaptation step")
        ax3.set_ylabel("test accuracy (%)")
        ax3.set_ylim(0, 100)
        ax3.set_title("test accuracy, all ten classes")
        ax3.legend(fontsize=8)
        fig.suptitle(f"{res.net_name} on load_digits: pretrained on 0-{cfg.old_classes - 1}, "
                     f"adapted to 0-9 with --train-last {cfg.train_last} "
                     f"({res.tiles[0]}x{res.tiles[1]} array, batch {cfg.batch}, lr {cfg.lr:g})",
                     fontsize=10)
        fig.tight_layout()
        _save(fig, path)


def check_out_dir(out: str | Path, force: bool = False) -> Path:
    from efgen.outdir import check_output_dir

    return check_output_dir(out, marker=MARKER, owned=OWNED, what="efgen adapt folder",
                            force=force)


def write_outputs(res: AdaptResult, folder: Path) -> list[str]:
    """adapt.json, curves.csv and adapt.png into ``folder``; returns their names."""
    folder = Path(folder)
    (folder / "adapt.json").write_text(json.dumps(result_dict(res), indent=1) + "\n")
    (folder / "curves.csv").write_text(curves_csv(res))
    plot(res, folder / "adapt.png")
    return ["adapt.json", "curves.csv", "adapt.png"]


def adapt_to_folder(cfg: AdaptConfig, out: str | Path, force: bool = False,
                    progress=None) -> AdaptResult:
    """Run the scenario and publish ``out`` (the outputs and the generated ``hls/``)
    atomically; nothing is written when the request is bad (:mod:`efgen.outdir`)."""
    import shutil

    from efgen.outdir import make_temp, publish

    prepared = prepare(cfg)
    out_path = check_out_dir(out, force)
    tmp = make_temp(out_path)
    try:
        res = run_adapt(cfg, tmp, progress, prepared)
        shutil.rmtree(tmp / "csim", ignore_errors=True)     # the compiled library
        write_outputs(res, tmp)
        publish(tmp, out_path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return res


__all__ = ["AdaptConfig", "AdaptResult", "run_adapt", "adapt_to_folder", "load_data",
           "summary_lines", "write_outputs", "ACC_TOL_PP", "LOSS_RTOL", "LOSS_STEPS"]
