"""The ``efgen`` command line.

Every error a user can cause is an :class:`EfgenError`, printed as one line
``efgen: error: ...`` with exit code 2; nothing a user types produces a traceback.
"""

from __future__ import annotations

import argparse
import sys
import time

from efgen._version import __version__
from efgen.errors import EfgenError
from efgen.textable import fmt_int, format_table


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors in efgen's one-line format (exit code 2)."""

    def error(self, message):  # noqa: D401 - argparse API
        raise EfgenError(message, where=self.prog, fix=f"see '{self.prog} --help'")


def _shape(s) -> str:
    return "x".join(str(v) for v in s) if s else "scalar"


# ---- commands -------------------------------------------------------------------------

def cmd_nets(args) -> int:
    from efgen.frontend import load_net
    from efgen.frontend.ir import list_nets

    rows = []
    for name in list_nets():
        net = load_net(name)
        t = net.totals()
        rows.append([name, _shape(net.input_shape), net.num_classes, len(net),
                     fmt_int(t["params"]), fmt_int(t["fp_macs"]), fmt_int(t["bp_macs"]),
                     fmt_int(t["wu_macs"])])
    print(format_table(["net", "input", "classes", "layers", "params", "FP MACs",
                        "BP MACs", "WU MACs"], rows))
    print("\nMACs are per image; BP MACs exclude the first layer's input error.")
    return 0


def cmd_net_show(args) -> int:
    from efgen.frontend import load_net

    net = load_net(args.net, train_last=args.train_last)
    from efgen.methods.spec import resolve

    training = resolve(net, args.training)
    if training is not None:
        from efgen.methods.show import show_lines

        print("\n".join(show_lines(net, training)))
        return 0
    rows = []
    for l in net:
        ins = ", ".join(_shape(net.shape_of(i)) for i in l.inputs)
        train = "yes" if l.trainable else ("frozen" if l.has_params else "")
        rows.append([l.name, l.op, ins, _shape(l.out_shape), fmt_int(l.fp_macs),
                     fmt_int(l.bp_macs), fmt_int(l.wu_macs), fmt_int(l.params), train,
                     fmt_int(l.saved_words)])
    t = net.totals()
    rows.append(["TOTAL", "", "", "", fmt_int(t["fp_macs"]), fmt_int(t["bp_macs"]),
                 fmt_int(t["wu_macs"]), fmt_int(t["params"]),
                 fmt_int(t["trainable_params"]), fmt_int(t["saved_words"])])
    print(f"net {net.name} ({net.source}): input {_shape(net.input_shape)}, "
          f"{net.num_classes} classes, {len(net)} layers")
    print(format_table(["layer", "op", "input", "output", "FP MACs", "BP MACs", "WU MACs",
                        "params", "trains", "saved words"], rows))
    print("\nPer image. 'saved words': activations kept from FP for the backward pass. "
          "TOTAL 'trains' column: trainable parameters.")
    return 0


def cmd_boards(args) -> int:
    from efgen.frontend.boards import boards_table

    print(boards_table())
    return 0


def cmd_golden(args) -> int:
    import numpy as np

    from efgen.frontend import load_net
    from efgen.golden.model import SGD, grad_norms, init_state, synthetic_batch, train_step

    if args.batch < 1 or args.steps < 1:
        raise EfgenError("--batch and --steps must be at least 1", where="efgen golden",
                         fix="give positive values")
    net = load_net(args.net, train_last=args.train_last)
    dtype = np.float64 if args.dtype == "float64" else np.float32
    if args.weights:
        from efgen.golden.checkpoint import load_weights

        state = load_weights(net, args.weights, dtype=dtype)
    elif str(args.net).lower().endswith(".onnx"):
        from efgen.golden.checkpoint import load_onnx  # the model's own trained parameters

        net, state = load_onnx(args.net, dtype=dtype, train_last=args.train_last)
    else:
        state = init_state(net, seed=args.seed, dtype=dtype)
    from efgen.methods.spec import apply_to_net, resolve

    training = resolve(net, args.training)
    if training is not None:
        net = apply_to_net(net, training)
        if not args.weights and not str(args.net).lower().endswith(".onnx"):
            state = init_state(net, seed=args.seed, dtype=dtype)
        print(f"training methods: {training.describe()}")
    x, labels = synthetic_batch(net, args.batch, seed=args.seed + 1, dtype=dtype)
    sgd = SGD(lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay)
    print(f"golden training of {net.name}: batch {args.batch}, {args.dtype}, lr {sgd.lr}, "
          f"momentum {sgd.momentum}, weight decay {sgd.weight_decay}, seed {args.seed}")
    for step in range(1, args.steps + 1):
        t0 = time.perf_counter()
        if training is not None:
            from efgen.methods.step import describe_plan, draw_plan, method_step

            plan = draw_plan(net, training, x, labels, seed=args.seed * 1000 + step)
            res = method_step(net, state, x, labels, sgd, plan)
        else:
            res = train_step(net, state, x, labels, sgd)
        dt = time.perf_counter() - t0
        state = res.state
        print(f"\nstep {step}: " + (f"loss {res.loss:.6f}" if res.loss == res.loss
                                      else "no loss (dropped)") + f"  ({dt * 1e3:.1f} ms)")
        if training is not None:
            print(f"  {describe_plan(plan)}")
        norms = grad_norms(net, res.trace)
        print(format_table(["layer", "grad L2 norm"],
                           [[k, f"{v:.6e}"] for k, v in norms.items()]))
    return 0


def cmd_build(args) -> int:
    """efgen build (and csim): a thin layer over :func:`efgen.api.build`."""
    import sys
    from pathlib import Path

    from efgen.api import build
    from efgen.flow import check_out_dir, request_words, select_steps
    from efgen.frontend import load_net
    from efgen.frontend.boards import load_board

    if args.command == "build" and args.build_steps is not None \
            and args.build_steps.strip().isdigit():
        # before build steps existed, 'build --csim --steps N' meant N training steps
        args.train_steps, args.build_steps = int(args.build_steps), None

    if args.batch < 1:
        raise EfgenError("--batch must be at least 1", where="efgen build",
                         fix="give a positive batch")
    if args.train_steps < 1:
        raise EfgenError(f"{'--steps' if args.command == 'csim' else '--train-steps'} must be "
                         "at least 1", where=f"efgen {args.command}",
                         fix="give a positive number of training steps")
    steps = select_steps(getattr(args, "build_steps", None), getattr(args, "stop_after", None),
                         csim=getattr(args, "csim", False))
    net, board = load_net(args.net), load_board(args.board)
    out = Path(args.output or f"build/{net.name}-{board.name}")
    check_out_dir(out, args.force)        # before the (long) scheduling
    if "csim" in steps:                   # C-simulation's descriptors carry them as float32
        from efgen.hls.emit import c_float

        for flag, value in (("--lr", args.lr), ("--momentum", args.momentum),
                            ("--weight-decay", args.weight_decay)):
            c_float(value, flag)
    # The "scheduling ..." notice is for a person at a terminal; in logs and pipes stderr
    # then carries nothing but the one-line error of a bad request.
    tty = getattr(sys.stderr, "isatty", lambda: False)()
    acc = build(net, board, args.batch, clock=args.clock, objective=args.objective,
                precision=args.precision, train_last=args.train_last, tiles=args.tiles,
                overrides=args.overrides, momentum=not args.no_momentum,
                fuse=getattr(args, "fuse", False), parray=getattr(args, "parray", False),
                weight_db=getattr(args, "weight_db", "off"), pack=getattr(args, "pack", None),
                progress=(lambda s: print(s, file=sys.stderr)) if tty else None,
                command=request_words(args), training=args.training,
                target=getattr(args, "target", "hls"), rtl_impl=getattr(args, "rtl_impl", "dsp"))
    if "csim" in steps and acc.training is not None:
        from efgen.hls.methods import training_of

        training_of(acc.net, acc.design)   # what the generated C++ does not run: refused
    written = acc.write(out, hls="hls" in steps,
                        rtl=getattr(args, "rtl_impl", "dsp") if "rtl" in steps else None,
                        force=args.force)
    print(acc.summary())
    print(f"  wrote {written.out_dir}/: {', '.join(written.files)}")
    if written.rtl_note:
        print(f"  {written.rtl_note}")
    if "csim" not in steps:
        return 0
    from efgen.csim.csim import format_report

    print(f"efgen: C-simulation of {net.name} (batch {acc.design.batch}, {args.train_steps} "
          "step(s)) ...", file=sys.stderr)
    from efgen.progress import bar, on_tty

    with bar(args.train_steps, "csim", unit="step", enabled=on_tty()) as b:
        res = acc.csim(steps=args.train_steps, seed=args.seed, lr=args.lr,
                       momentum=args.momentum, weight_decay=args.weight_decay,
                       workdir=written.out_dir, progress=lambda _step: b.update(1))
    print(format_report(res))
    print(f"  {res.cpp_lines:,} lines of generated C++ (with hls_kernels), compiled in "
          f"{res.compile_seconds:.1f} s; {len(res.not_in_dram)} golden tensors are fused away "
          "(not in DRAM)")
    return 0 if res.ok else 1


def cmd_csim(args) -> int:
    """efgen csim: build (estimate + hls) at a small batch and run C-simulation."""
    if args.output is None:
        from pathlib import Path

        from efgen.frontend.ir import resolve_net_path

        stem = resolve_net_path(args.net).stem
        args.output = f"build/{stem}-{Path(args.board).stem}-csim"
    args.csim = True
    args.train_steps, args.build_steps = args.steps, None
    return cmd_build(args)


def cmd_report(args) -> int:
    from pathlib import Path

    from efgen.design import Design
    from efgen.frontend.boards import load_board
    from efgen.frontend.yamlio import read_text
    from efgen.model.schedule import evaluate_for_report
    from efgen.report.summary import report_dict, summary_lines, vendor_comparison
    import json

    from efgen.report.vendor import HlsReport, format_comparison, format_processes, parse_report
    from efgen.report.vendor import process_rows

    d = Path(args.dir)
    path = d / "design.json"
    design = Design.from_json(read_text(path, "design.json"), str(path))
    board = load_board(design.board)
    ev = evaluate_for_report(design.net_ir, design, board)
    for line in summary_lines(design, board, report_dict(design, board, ev)):
        print(line)
    found = vendor_comparison(design, ev, d)
    if not found:
        print(f"\nno Vitis/Vivado HLS reports under {d} (they appear after running the "
              "vendor flow on a machine that has it); model figures only.")
    man_path = d / "hls" / "manifest.json"
    manifest = json.loads(read_text(man_path, "manifest.json")) if man_path.is_file() else None
    for file, rows in found:
        print(f"\nmodel vs {file}:")
        print(format_comparison(rows))
        rep = parse_report(file)
        if manifest is not None and isinstance(rep, HlsReport):
            print(f"\nper function (hls/manifest.json) vs {file}:")
            print(format_processes(process_rows(manifest, rep)))
    return 0


def cmd_import(args) -> int:
    from pathlib import Path

    from efgen.frontend.ir import parse_net, write_net_yaml
    from efgen.frontend.onnx_import import import_onnx
    from efgen.frontend.weights import save_weights

    src = Path(args.model)
    doc, params = import_onnx(src)
    net = parse_net(doc, str(src))
    out = Path(args.output) if args.output else src.with_suffix(".yaml")
    write_net_yaml(doc, out, header=f"Imported from {src.name} by 'efgen import'.")
    t = net.totals()
    print(f"imported {src}: {len(net)} layers, input {_shape(net.input_shape)}, "
          f"{net.num_classes} classes, {fmt_int(t['params'])} parameters -> {out}")
    if args.weights:
        save_weights(args.weights, params)
        print(f"trained parameters ({len(params)} arrays) -> {args.weights}")
    return 0


def cmd_export(args) -> int:
    from efgen.frontend import load_net
    from efgen.frontend.onnx_export import export_onnx
    from efgen.golden.checkpoint import load_weights
    from efgen.golden.model import init_state

    net = load_net(args.net)
    if args.weights:
        state, what = load_weights(net, args.weights), f"weights {args.weights}"
    else:
        state, what = init_state(net, seed=args.seed), f"random weights (seed {args.seed})"
    export_onnx(net, state, args.output)
    print(f"exported {net.name} ({len(net)} layers, {what}) -> {args.output}")
    return 0


def cmd_cosim(args) -> int:
    from efgen.cosim.cli import cosim_main

    return cosim_main(args)


def cmd_synth(args) -> int:
    """efgen synth --yosys DIR: Yosys on DIR/rtl/*.v, next to the model's prediction."""
    from efgen.rtl.synth import format_table as synth_table
    from efgen.rtl.synth import synth_build_dir

    if args.timing is not None:
        from efgen.rtl.timing import format_timing, timing_build_dir

        fam = args.family or "xcup"
        if fam not in ("xcup", "xc7"):
            raise EfgenError(f"--family {fam} has no timing model", where="efgen synth --timing",
                             fix="use --family xcup (UltraScale+) or xc7 (7-series)")
        reports, path = timing_build_dir(args.timing, family=fam,
                                         array=not getattr(args, "no_array", False))
        print(format_timing(reports))
        print(f"\nwrote {path}")
        return 0
    if args.yosys is None:
        raise EfgenError("nothing to do", where="efgen synth",
                         fix="give --yosys DIR (resources) or --timing DIR (fmax estimate)")
    fam = args.family or "xcup"
    if fam not in ("xcup", "xcu"):
        raise EfgenError(f"--family {fam} is not supported by --yosys", where="efgen synth",
                         fix="use --family xcup or xcu")
    spec, pred, res = synth_build_dir(args.yosys, family=fam)
    e = spec.engine
    print(f"{res.version}: synth_xilinx -family {res.family} -top {spec.top}: "
          f"{res.seconds:.1f} s ({e.shape} engine, buffers ifm {e.ifm_depth} ofm "
          f"{e.ofm_depth} wbuf {e.wbuf_depth}; {pred['detail']['fp32_mul']} fp32_mul in all)")
    print(synth_table(pred, res))
    print(f"\nwrote {res.log.parent / 'synth.json'} and {res.log}")
    return 0


def cmd_adapt(args) -> int:
    """efgen adapt: pretrain on digits 0-4 (golden), adapt to 0-9 in C-simulation and in
    the golden model from the same start; PASS/FAIL on the tracking criteria."""
    from efgen.adapt import AdaptConfig, adapt_to_folder, summary_lines

    cfg = AdaptConfig(net=args.net, board=args.board, tiles=args.tiles,
                      train_last=args.train_last, batch=args.batch, steps=args.steps,
                      eval_every=args.eval_every, pretrain_epochs=args.pretrain_epochs,
                      pretrain_lr=args.pretrain_lr, lr=args.lr, momentum=args.momentum,
                      weight_decay=args.weight_decay, seed=args.seed)
    out = args.output or f"build/adapt-{args.net}"
    t0 = time.perf_counter()
    res = adapt_to_folder(cfg, out, force=args.force,
                          progress=lambda line: print(line, flush=True))
    print("\n".join(summary_lines(res)))
    print(f"  wrote {out}/: adapt.json, curves.csv, adapt.png, hls/ "
          f"({time.perf_counter() - t0:.0f} s)")
    return 0 if res.ok else 1


def cmd_sweep(args) -> int:
    """efgen sweep: :func:`efgen.api.sweep`, and its summary printed."""
    from efgen.api import sweep
    from efgen.dse import print_summary

    print_summary(sweep(args.file, getattr(args, "output", None), jobs=getattr(args, "jobs", None),
                        progress=not getattr(args, "no_progress", False),
                        cluster=getattr(args, "cluster", None),
                        cache_dir=getattr(args, "cache_dir", None),
                        no_cache=getattr(args, "no_cache", False),
                        search=getattr(args, "search", None), budget=getattr(args, "budget", None),
                        seed=getattr(args, "seed", 0), fuse=getattr(args, "fuse", False)))
    return 0


# ---- parser -----------------------------------------------------------------------------

def _csim_args(s, default: bool) -> None:
    s.add_argument("--force", action="store_true",
                   help="replace -o DIR even if it holds files efgen did not write")
    if not default:
        s.add_argument("--csim", action="store_true",
                       help="also run C-simulation of the generated HLS C++ (adds the csim "
                            "step)")
        s.add_argument("--steps", dest="build_steps", metavar="STEP,..",
                       help="build steps to run (estimate always runs; default "
                            "estimate,hls,rtl); see the list below")
        s.add_argument("--stop-after", metavar="STEP", help="end the build after this step")
        s.add_argument("--train-steps", type=int, default=1,
                       help="C-simulation: training steps")
    else:
        s.add_argument("--steps", type=int, default=1, help="C-simulation: training steps")
    s.add_argument("--seed", type=int, default=0, help="C-simulation: data and init seed")
    s.add_argument("--lr", type=float, default=0.01)
    s.add_argument("--momentum", type=float, default=0.9)
    s.add_argument("--weight-decay", type=float, default=5e-4)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="efgen", description="Generate FPGA accelerators that train CNNs "
                "on edge boards.")
    p.add_argument("--version", action="version", version=f"efgen {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    s = sub.add_parser("nets", help="list the catalogue nets with their totals")
    s.set_defaults(func=cmd_nets)

    s = sub.add_parser("net", help="inspect a net")
    nsub = s.add_subparsers(dest="net_command", metavar="ACTION", parser_class=_Parser)
    show = nsub.add_parser("show", help="per-layer table: shapes, MACs per phase, params")
    show.add_argument("net", metavar="NAME|PATH")
    show.add_argument("--train-last", type=int, metavar="K",
                      help="freeze all but the last K conv/linear layers")
    show.add_argument("--training", metavar="FILE",
                      help="training methods (a training: section; default: the net file's own)")
    show.set_defaults(func=cmd_net_show)

    s = sub.add_parser("boards", help="list the catalogue boards")
    s.set_defaults(func=cmd_boards)

    from efgen.flow import steps_help

    s = sub.add_parser("build", help="schedule a net on a board and write the design, "
                       "report and plots", epilog=steps_help(),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("--board", required=True, metavar="NAME|PATH")
    s.add_argument("--net", required=True, metavar="NAME|PATH")
    s.add_argument("--batch", type=int, default=32)
    s.add_argument("--clock", type=float, metavar="MHZ", help="PL clock (default: the board's)")
    s.add_argument("--objective", choices=["latency", "energy", "edp", "dram"], default="latency")
    s.add_argument("--precision", choices=["fp32", "fp16", "bf16", "fix16", "int8"],
                   default="fp32")
    s.add_argument("--train-last", type=int, metavar="K",
                   help="freeze all but the last K conv/linear layers")
    s.add_argument("--tiles", metavar="Tm=..,Tn=..[,P=..]",
                   help="fix the array size (P: pixel lanes, HLS C++ only)")
    s.add_argument("--overrides", metavar="FILE", help="per-layer schedule overrides (YAML)")
    s.add_argument("--no-momentum", action="store_true",
                   help="SGD without a momentum buffer (halves the update traffic)")
    s.add_argument("--fuse", action=argparse.BooleanOptionalAction, default=False,
                   help="price the restructured-BN datapath (batchnorm, residual adds, ReLU "
                        "and error sums in the engine's loads and stores) and write hls/ "
                        "and rtl/ (the reference RTL with its fused datapath) for the plan "
                        "it prices. --no-fuse (the default): the unfused step")
    s.add_argument("--training", metavar="FILE",
                   help="training methods (a training: section; default: the net file's own)")
    s.add_argument("--parray", action="store_true",
                   help="search a third unrolled dimension P (adjacent output pixels) and "
                        "pack shallow layers' kernel taps into idle reduction lanes; the HLS "
                        "C++ runs both; the reference RTL builds packing (--pack) but not P "
                        "(rtl/ is not written when the design has P > 1)")
    s.add_argument("--pack", action=argparse.BooleanOptionalAction, default=None,
                   help="first-layer tap packing alone (issue 13): shallow FP/WU layers "
                        "carry kernel taps in idle reduction lanes; the HLS C++ and the "
                        "reference RTL (rtl/) both build it. --no-pack: never (default: "
                        "with --parray)")
    s.add_argument("--weight-db", choices=["off", "on", "auto"], default="off",
                   help="double-buffered weight chunks: the next chunk's weights load while "
                        "the array computes (twice the weight buffer's BRAM); auto lets the "
                        "scheduler decide (default: off)")
    s.add_argument("-o", "--output", metavar="DIR", help="default: build/<net>-<board>")
    s.add_argument("--rtl-impl", choices=["dsp", "synth", "behav"], default="dsp",
                   help="FP32 units of the reference RTL in DIR/rtl: synthesizable with the "
                        "adders' shifts in DSP48E2 (dsp, default), all in fabric (synth), or "
                        "behavioural (simulation only)")
    s.add_argument("--target", choices=["hls", "rtl"], default="hls",
                   help="whose resources must fit the board's caps: the Vitis HLS build "
                        "(default) or the reference RTL in DIR/rtl (with --rtl-impl's units)")
    _csim_args(s, default=False)
    s.set_defaults(func=cmd_build)

    s = sub.add_parser("csim", help="emit the HLS project and train in C-simulation (g++) "
                       "against the golden model, tensor by tensor")
    s.add_argument("--board", required=True, metavar="NAME|PATH")
    s.add_argument("--net", required=True, metavar="NAME|PATH")
    s.add_argument("--batch", type=int, default=2)
    s.add_argument("--clock", type=float, metavar="MHZ")
    s.add_argument("--objective", choices=["latency", "energy", "edp", "dram"], default="latency")
    s.add_argument("--precision", choices=["fp32"], default="fp32",
                   help="the code generators implement fp32")
    s.add_argument("--train-last", type=int, metavar="K")
    s.add_argument("--tiles", metavar="Tm=..,Tn=..")
    s.add_argument("--overrides", metavar="FILE")
    s.add_argument("--no-momentum", action="store_true")
    s.add_argument("--training", metavar="FILE",
                   help="training methods (a training: section; default: the net file's own)")
    s.add_argument("-o", "--output", metavar="DIR", help="default: build/<net>-<board>-csim")
    _csim_args(s, default=True)
    s.set_defaults(func=cmd_csim)

    s = sub.add_parser("report", help="the model's figures for a build folder, next to "
                       "the vendor's where Vitis HLS reports are present")
    s.add_argument("dir", metavar="DIR")
    s.set_defaults(func=cmd_report)

    s = sub.add_parser("sweep", help="fully schedule every hardware point of a sweep file; "
                       "all points, two Pareto fronts and their plots")
    from efgen.dse import add_arguments as sweep_arguments

    sweep_arguments(s)
    s.set_defaults(func=cmd_sweep)

    s = sub.add_parser("cosim", help="run conv/linear layer-phases (or one training step) on "
                       "the reference RTL under cocotb; compare with the golden and the model")
    s.add_argument("--board", default="zcu102", metavar="NAME|PATH")
    s.add_argument("--net", required=True, metavar="NAME|PATH")
    s.add_argument("--batch", type=int, default=1)
    s.add_argument("--tiles", metavar="Tm=..,Tn=..[,P=..]", help="fix the array size, P "
                   "pixel lanes in 1, 2, 4 (default: the scheduler's for the board)")
    s.add_argument("--layer", metavar="NAME", help="only this layer")
    s.add_argument("--phase", choices=["fp", "bp", "wu"], help="only this phase")
    s.add_argument("--weight-db", choices=["off", "on", "auto"], default="off",
                   help="double-buffered weight chunks (as efgen build --weight-db)")
    s.add_argument("--sim", choices=["verilator", "icarus"], default="verilator")
    s.add_argument("--layout", choices=["reshaped", "nchw", "both"], default="reshaped",
                   help="feature-map layout in DRAM")
    s.add_argument("--impl", choices=["behav", "synth", "dsp"], default="behav",
                   help="FP32 units: behavioural (fast) or synthesizable (synth: fabric "
                        "adder, dsp: the adder's shifts in DSP48E2)")
    s.add_argument("--distinct", action="store_true",
                   help="one run per distinct layer shape and tiling")
    s.add_argument("--step", action="store_true",
                   help="one training step: every descriptor on the RTL, the loss (and a "
                        "bias wider than the RTL's buffer) in numpy")
    s.add_argument("--fuse", action="store_true",
                   help="the restructured-BN design (as efgen build --fuse): its fused "
                        "program on the RTL built with the fused datapath")
    s.add_argument("--backpressure", type=int, metavar="SEED",
                   help="random back-pressure and idle cycles (30%% a cycle) on every AXI "
                        "channel, seeded")
    s.add_argument("-o", "--output", metavar="DIR", help="write cosim.json (and keep builds) here")
    from efgen.farm import add_arguments as farm_arguments

    farm_arguments(s, "layer-phases at a time", default_jobs="1")
    s.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    s.set_defaults(func=cmd_cosim)

    s = sub.add_parser("synth", help="synthesize a build folder's RTL with Yosys and "
                       "compare DSP/RAMB/LUT/FF with the model")
    s.add_argument("--yosys", metavar="DIR",
                   help="build folder holding rtl/*.v and rtl/rtl.json")
    s.add_argument("--timing", metavar="DIR",
                   help="fmax estimate of DIR/rtl/*.v per module (logic depth x cited "
                        "delays; efgen/rtl/timing.py); writes DIR/rtl/timing.json")
    s.add_argument("--family", choices=["xcup", "xcu", "xc7"], default=None,
                   help="synth_xilinx -family (default: xcup, UltraScale+; --timing: xcup "
                        "or xc7)")
    s.add_argument("--no-array", action="store_true",
                   help="--timing: leave out engine_core (the whole array with black-box "
                        "FP32 units, for its paths and fan-out; minutes at 16x16)")
    s.set_defaults(func=cmd_synth)

    s = sub.add_parser("adapt", help="on-device adaptation on load_digits: pretrain on "
                       "0-4 (golden), adapt to 0-9 in C-simulation and golden, compare")
    s.add_argument("--net", default="lenet5", metavar="NAME|PATH")
    s.add_argument("--board", default="zcu102", metavar="NAME|PATH")
    s.add_argument("--tiles", metavar="Tm=..,Tn=..", help="default: the scheduler's array")
    s.add_argument("--train-last", type=int, default=2, metavar="K")
    s.add_argument("--batch", type=int, default=32)
    s.add_argument("--steps", type=int, default=300, help="adaptation steps")
    s.add_argument("--eval-every", type=int, default=10, metavar="N",
                   help="test evaluation every N steps")
    s.add_argument("--pretrain-epochs", type=int, default=10)
    s.add_argument("--pretrain-lr", type=float, default=0.05)
    s.add_argument("--lr", type=float, default=0.01)
    s.add_argument("--momentum", type=float, default=0.9)
    s.add_argument("--weight-decay", type=float, default=5e-4)
    s.add_argument("--seed", type=int, default=0, help="split, init and batch order")
    s.add_argument("-o", "--output", metavar="DIR", help="default: build/adapt-<net>")
    s.add_argument("--force", action="store_true",
                   help="replace -o DIR even if it holds files efgen did not write")
    s.set_defaults(func=cmd_adapt)

    s = sub.add_parser("golden", help="train with the numpy golden model on synthetic data")
    s.add_argument("--net", required=True, metavar="NAME|PATH")
    s.add_argument("--batch", type=int, default=8)
    s.add_argument("--steps", type=int, default=1)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--lr", type=float, default=0.01)
    s.add_argument("--momentum", type=float, default=0.9)
    s.add_argument("--weight-decay", type=float, default=5e-4)
    s.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    s.add_argument("--train-last", type=int, metavar="K")
    s.add_argument("--training", metavar="FILE",
                   help="training methods (a training: section; default: the net file's own)")
    s.add_argument("--weights", metavar="W.npz",
                   help="start from these parameters (default: an .onnx net's own, "
                        "else a seeded random init)")
    s.set_defaults(func=cmd_golden)

    s = sub.add_parser("import", help="convert an ONNX model to a net YAML (+ its weights)")
    s.add_argument("model", metavar="MODEL.onnx")
    s.add_argument("-o", "--output", metavar="NET.yaml",
                   help="default: MODEL.yaml next to the model")
    s.add_argument("--weights", metavar="OUT.npz", help="also save the trained parameters")
    s.set_defaults(func=cmd_import)

    s = sub.add_parser("export", help="write a net (and its weights) as an ONNX model")
    s.add_argument("net", metavar="NAME|PATH")
    s.add_argument("-o", "--output", required=True, metavar="NET.onnx")
    s.add_argument("--weights", metavar="W.npz",
                   help="parameters saved by 'efgen import --weights' (default: random)")
    s.add_argument("--seed", type=int, default=0, help="seed of the random parameters")
    s.set_defaults(func=cmd_export)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            if args.command == "net":
                raise EfgenError("missing action", where="efgen net",
                                 fix="use 'efgen net show NAME|PATH'")
            parser.print_help()
            return 2
        return args.func(args)
    except EfgenError as exc:
        print(f"efgen: error: {exc.message()}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `efgen net show resnet18 | head`
        return 0
    except KeyboardInterrupt:
        print("efgen: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
