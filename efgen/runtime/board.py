"""The board driver's program: ``DIR/driver/efgen_driver.py`` (written by ``efgen build``)
calls :func:`main` with its build folder's Design.

On a PYNQ board (``pynq`` importable, efgen installed): load the overlay, allocate the
DRAM image with ``pynq.allocate``, pack the parameters and each batch into it with
:mod:`efgen.layout`, run N training steps through the AXI4-Lite register map
(:class:`efgen.runtime.trainer.Trainer`), print each step's loss and device cycles, and
write the trained parameters as the ``.npz`` that ``efgen export --weights`` turns into
ONNX. With ``--cosim`` the same Trainer runs here against the reference RTL under
cocotb/Verilator, behind the same register interface, and every step is also checked
against the golden model.

Data: ``--data FILE.npz`` with ``x`` (float32 ``[M, C, H, W]``) and ``labels``
(integers ``[M]``), taken in consecutive batches of the Design's batch (wrapping
around); without it, seeded synthetic batches. Start: ``--weights W.npz`` (an
``efgen import --weights`` or an earlier ``--out``) or the seeded He init.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from efgen.errors import EfgenError


def _batches(design, net, data: str | None, steps: int, seed: int):
    from efgen.golden.model import synthetic_batch

    B = design.batch
    if data is None:
        x, labels = synthetic_batch(net, B, seed=seed + 1)
        return [(x, labels)] * steps
    try:
        with np.load(data) as z:
            x, labels = np.asarray(z["x"], np.float32), np.asarray(z["labels"])
    except (OSError, ValueError, KeyError) as exc:
        raise EfgenError(f"cannot read the batches ({exc.__class__.__name__})", file=data,
                         fix="give an .npz with arrays 'x' [M,C,H,W] and 'labels' [M]") from None
    if x.ndim != 4 or tuple(x.shape[1:]) != tuple(net.input_shape) or labels.shape != x.shape[:1] \
            or x.shape[0] < 1 or not np.issubdtype(labels.dtype, np.integer) \
            or labels.min() < 0 or labels.max() >= net.num_classes:
        raise EfgenError(f"x {x.shape} / labels {labels.shape} do not fit the net's input "
                         f"{tuple(net.input_shape)} and {net.num_classes} classes", file=data,
                         fix="store x as [M,C,H,W] float32 and labels as [M] class indices")
    idx = [np.arange(k * B, (k + 1) * B) % x.shape[0] for k in range(steps)]
    return [(x[i], labels[i].astype(np.int64)) for i in idx]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="efgen_driver.py", description="Train the generated "
                                "accelerator on a PYNQ board (or, with --cosim, on the "
                                "reference RTL in simulation).")
    p.add_argument("--bit", metavar="FILE.bit", help="the bitstream (with its .hwh beside "
                   "it) built by the vivado/ scripts; required on a board")
    p.add_argument("--ip", default="efgen_top_0", help="the accelerator's instance name "
                   "in the block design (default efgen_top_0)")
    p.add_argument("--steps", type=int, default=1, help="training steps")
    p.add_argument("--data", metavar="FILE.npz", help="training data: x [M,C,H,W], labels [M]")
    p.add_argument("--weights", metavar="W.npz", help="start from these parameters")
    p.add_argument("--seed", type=int, default=0, help="init and synthetic-data seed")
    p.add_argument("--lr", type=float, default=0.01, help="SGD learning rate")
    p.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    p.add_argument("--weight-decay", type=float, default=5e-4, help="SGD weight decay")
    p.add_argument("--out", metavar="W.npz", default="trained.npz",
                   help="write the trained parameters here (default trained.npz)")
    p.add_argument("--cosim", action="store_true", help="run against the reference RTL "
                   "under cocotb/Verilator instead of a board (needs efgen's test extra)")
    p.add_argument("--workdir", metavar="DIR", help="--cosim: keep the simulation here")
    return p


def main(design_json: str | Path, argv: list[str] | None = None) -> int:
    """Run the driver on ``design_json``'s Design with command-line ``argv``."""
    try:
        return _main(Path(design_json), parser().parse_args(argv))
    except EfgenError as exc:
        print(f"efgen_driver: error: {exc.message()}", file=sys.stderr)
        return 2


def _main(design_json: Path, args) -> int:
    from efgen.design import Design
    from efgen.frontend.yamlio import read_text
    from efgen.golden.checkpoint import load_weights
    from efgen.golden.model import SGD, init_state
    from efgen.runtime.trainer import Trainer

    from efgen.hls.emit import c_float

    if args.steps < 1:
        raise EfgenError("--steps must be at least 1", where="--steps", fix="give --steps 1 or more")
    for v, flag in ((args.lr, "--lr"), (args.momentum, "--momentum"),
                    (args.weight_decay, "--weight-decay")):
        c_float(v, flag)                   # the descriptors carry them as float32
    lr, momentum, weight_decay = args.lr, args.momentum, args.weight_decay
    design = Design.from_json(read_text(design_json, "design.json"), str(design_json))
    net = design.net_ir
    state = load_weights(net, args.weights) if args.weights else \
        init_state(net, seed=args.seed, dtype=np.float32)
    batches = _batches(design, net, args.data, args.steps, args.seed)
    if args.cosim:
        from efgen.cosim.step import run_rtl_steps
        from efgen.rtl.top import rtl_params

        sgd = SGD(lr=lr, momentum=momentum, weight_decay=weight_decay)
        res = run_rtl_steps(design, rtl_params(design, design.layout, impl="behav"), batches,
                            state, sgd=sgd, base_words=1 << 18,
                            workdir=Path(args.workdir) if args.workdir else None)
        for k, r in enumerate(res, 1):
            cycles = sum(x.cycles for x in r.ran)
            print(f"step {k}: loss {r.loss:.6f} (golden {r.golden_loss:.6f}), "
                  f"{cycles:,} device cycles, {'PASS' if r.ok else 'FAIL'}")
        tr = Trainer(design, lr=lr, momentum=momentum, weight_decay=weight_decay)
        tr.load_state(res[-1].final_state)
        tr.save_weights(args.out)
        print(f"wrote {args.out}")
        return 0 if all(r.ok for r in res) else 1
    try:
        from pynq import Overlay, allocate
    except ImportError:
        raise EfgenError("pynq is not installed: this runs on a PYNQ board", where="pynq",
                         fix="run it on the board, or use --cosim to run it against the RTL "
                             "in simulation") from None
    if not args.bit:
        raise EfgenError("--bit is required on a board", where="--bit",
                         fix="give the bitstream built by the vivado/ scripts")
    overlay = Overlay(args.bit)
    ip = getattr(overlay, args.ip, None)
    if ip is None:
        raise EfgenError(f"the overlay has no IP {args.ip!r}", where="--ip",
                         fix=f"use one of {', '.join(sorted(overlay.ip_dict))}")
    words = Trainer(design).words
    buf = allocate(shape=(words,), dtype=np.float32)
    tr = Trainer(design, buf, lr=lr, momentum=momentum, weight_decay=weight_decay)
    tr.load_state(state, batches[0][0])
    for k, (x, labels) in enumerate(batches, 1):
        log = tr.step(ip, x, labels)
        print(f"step {k}: loss {log.loss:.6f}, {log.device_cycles:,} device cycles")
    tr.save_weights(args.out)
    print(f"wrote {args.out}")
    return 0


def write_driver(out_dir: Path, design) -> list[str]:
    """Write ``out_dir``/efgen_driver.py for ``design`` (its numbers only: no user
    string reaches the file); returns the file names."""
    import jinja2

    from efgen._version import __version__
    from efgen.resources import data_dir

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(data_dir("templates") / "driver")),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             autoescape=False)
    hw = design.hw
    text = env.get_template("efgen_driver.py.j2").render(
        version=__version__, tm=int(hw.tm), tn=int(hw.tn), batch=int(design.batch),
        clock=f"{float(hw.clock_mhz):g}")
    out_dir.mkdir()
    (out_dir / "efgen_driver.py").write_text(text)
    return ["efgen_driver.py"]


__all__ = ["main", "parser", "write_driver"]
