"""`efgen build`: named steps, FINN-style, each declaring what it writes.

:data:`BUILD_STEPS` is the list, in order; ``efgen build --steps`` selects some and
``--stop-after`` ends the list early (``efgen build --help`` prints it):

* ``estimate``: schedule the net on the board and write design.json, report.json,
  report.md and the plots (time per layer, roofline). Every build runs it: the other
  steps read its Design.
* ``hls``: emit the Vitis HLS project of the same Design into hls/ (kernel, params
  header, descriptor table, host runtime, testbenches, run_hls.tcl, and the small
  co-simulation case's cosim_in.bin and cosim_ref.bin, tens of KB).
* ``rtl``: the reference RTL of the same Design into rtl/ (Verilog-2005, top module
  ``efgen_top``, :func:`efgen.rtl.top.rtl_verilog`) and rtl/rtl.json, what ``efgen synth
  --yosys DIR`` synthesizes and predicts (:func:`efgen.rtl.synth.top_spec`). The RTL is
  an extra: a Design it does not support (see :func:`efgen.rtl.top.rtl_params`) is built
  without rtl/, and the build says why in one line. With the RTL comes driver/
  (efgen_driver.py, :mod:`efgen.runtime.board`): the PYNQ host program that trains through
  the RTL's register map.
* ``csim`` (``--csim``): compile the project with g++ and train one or more steps in
  C-simulation against the golden model; writes the whole-step testbench data into hls/
  (two DRAM images: 130 MB each for ResNet-20 at batch 32, so only this step writes
  them; run_hls.tcl refuses to start without them and prints this build's command with
  ``--csim``). Needs ``hls``.

The build folder is written to a temporary sibling and renamed into place at the end,
so a failure never leaves a half-written folder; ``csim`` runs in the finished folder.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from efgen.design import Design
from efgen.errors import EfgenError
from efgen.frontend.boards import Board
from efgen.frontend.ir import Net, parse_net
from efgen.model.evaluate import ddr_bytes_per_cycle, evaluate_design
from efgen.model.schedule import Request, evaluate_for_report, schedule, schedule_fixed
from efgen.outdir import check_output_dir, make_temp, publish
from efgen.report.summary import report_dict, report_json, report_markdown


@dataclass(frozen=True)
class Step:
    """One build step: its name, what it writes into the build folder, the steps it needs."""

    name: str
    writes: tuple[str, ...]
    summary: str
    needs: tuple[str, ...] = ()


BUILD_STEPS = (
    Step("estimate", ("design.json", "report.json", "report.md", "time_per_layer.png",
                      "roofline.png"),
         "schedule the net and price it with the model (always runs)"),
    Step("hls", ("hls/", "hls/cosim_in.bin", "hls/cosim_ref.bin", "vivado/"),
         "the Vitis HLS project of the Design (with its small co-simulation data)",
         ("estimate",)),
    Step("rtl", ("rtl/", "driver/", "vivado/"), "the reference RTL, rtl.json (Yosys) and "
         "the board driver", ("estimate",)),
    Step("csim", ("hls/dram_in.bin", "hls/dram_ref.bin", "hls/labels.bin"),
         "C-simulation of the HLS C++ against the golden model", ("estimate", "hls")),
)
STEPS = tuple(s.name for s in BUILD_STEPS)
# Top-level names a build folder may hold (its steps' files, and csim's compile folder):
# a folder holding anything else is not replaced without --force (efgen.outdir).
OWNED = tuple(sorted({w.split("/")[0] for s in BUILD_STEPS for w in s.writes} | {"csim"}))
DEFAULT_STEPS = ("estimate", "hls", "rtl")


def steps_help() -> str:
    """The step list ``efgen build --help`` prints: name, files written, what it does."""
    lines = ["build steps (--steps, --stop-after), in order:"]
    for s in BUILD_STEPS:
        needs = f"; needs {', '.join(n for n in s.needs if n != 'estimate')}" if any(
            n != "estimate" for n in s.needs) else ""
        lines.append(f"  {s.name:<9} {s.summary}{needs}")
        lines.append(f"  {'':<9} writes {', '.join(s.writes)}")
    return "\n".join(lines)


def select_steps(steps: str | None = None, stop_after: str | None = None,
                 csim: bool = False) -> tuple[str, ...]:
    """The steps to run, in build order: ``steps`` (comma-separated names; default
    estimate,hls,rtl, plus csim with ``csim``) with what they need, cut after
    ``stop_after``."""
    if steps is None:
        chosen = list(DEFAULT_STEPS) + (["csim"] if csim else [])
    else:
        chosen = [s.strip() for s in str(steps).split(",") if s.strip()]
        if not chosen:
            raise EfgenError("--steps is empty", where="--steps",
                             fix=f"name steps from {', '.join(STEPS)}, e.g. estimate,hls")
        if csim:
            chosen.append("csim")
    for name in chosen + ([stop_after] if stop_after is not None else []):
        if name not in STEPS:
            flag = "--stop-after" if name == stop_after else "--steps"
            raise EfgenError(f"unknown build step {name!r}", where=flag,
                             fix=f"use one of {', '.join(STEPS)}")
    by_name = {s.name: s for s in BUILD_STEPS}
    want = set(chosen)
    for name in list(want):
        want.update(by_name[name].needs)
    want.add("estimate")
    order = [s for s in STEPS if s in want]
    if stop_after is not None:
        if stop_after not in order:
            raise EfgenError(f"step {stop_after!r} is not among the selected steps",
                             where="--stop-after",
                             fix=f"stop after one of {', '.join(order)}")
        order = order[:order.index(stop_after) + 1]
    return tuple(order)


# The reference RTL's FP32 units (efgen.rtl.fpu.IMPLS); the first is the default: "dsp"
# puts the adders' shifts into DSP48E2, which is what lets large arrays fit the LUTs.
RTL_IMPLS = ("dsp", "synth", "behav")
DEFAULT_RTL_IMPL = RTL_IMPLS[0]


def request_words(args) -> tuple[str, ...]:
    """The command that made this build, as words without ``-o`` and the build steps:
    ``("build", "--board", "zcu102", "--net", "resnet20", "--batch", "32", ...)``, with
    every option that changes the Design or the C-simulation's data. run_hls.tcl prints
    it (with the output folder) when testbench data is missing
    (:func:`efgen.hls.emit.write_hls` sanitises it for Tcl)."""
    command = "csim" if getattr(args, "command", "build") == "csim" else "build"

    def where(value: str, is_path: bool) -> str:      # a file: absolute, a name: as typed
        return str(Path(value).resolve()) if is_path and Path(value).is_file() else value

    board, net = str(args.board), str(args.net)
    board_is_path = "/" in board or board.endswith((".yaml", ".yml"))
    net_is_path = "/" in net or Path(net).suffix.lower() in (".yaml", ".yml", ".onnx")
    words = [command, "--board", where(board, board_is_path), "--net", where(net, net_is_path),
             "--batch", str(args.batch)]
    optional = (("--clock", "clock", None), ("--objective", "objective", "latency"),
                ("--precision", "precision", "fp32"), ("--train-last", "train_last", None),
                ("--tiles", "tiles", None), ("--overrides", "overrides", None),
                ("--training", "training", None), ("--seed", "seed", 0), ("--lr", "lr", 0.01), ("--momentum", "momentum", 0.9),
                ("--weight-decay", "weight_decay", 5e-4))
    for flag, attr, default in optional:
        value = getattr(args, attr, default)
        if value is not None and value != default:
            text = repr(value) if isinstance(value, float) else str(value)
            words += [flag, where(text, flag in ("--overrides", "--training"))]
    if getattr(args, "no_momentum", False):
        words.append("--no-momentum")
    if getattr(args, "fuse", False):
        words.append("--fuse")
    if getattr(args, "parray", False):
        words.append("--parray")
    if getattr(args, "pack", None) is not None:
        words.append("--pack" if args.pack else "--no-pack")
    if getattr(args, "weight_db", "off") != "off":
        words += ["--weight-db", str(args.weight_db)]
    if command == "build" and getattr(args, "rtl_impl", DEFAULT_RTL_IMPL) != DEFAULT_RTL_IMPL:
        words += ["--rtl-impl", str(args.rtl_impl)]
    if command == "build" and getattr(args, "target", "hls") != "hls":
        words += ["--target", str(args.target)]
    return tuple(words)


def net_of(design: Design) -> Net:
    """The Design's parsed net (:attr:`Design.net_ir`)."""
    return design.net_ir


def estimate(req: Request, progress=print) -> tuple[Design, dict, dict | None]:
    progress(f"efgen: scheduling {req.net.name} on {req.board.name} ...")
    design = schedule(req)
    ev = evaluate_for_report(req.net, design, req.board)
    full = None
    if req.train_last is not None:
        full_net = parse_net({**design.net, "layers": [
            {**l, "trainable": True} if "trainable" in l else l for l in design.net["layers"]]},
            req.net.source)
        full_design = schedule_fixed(Request(**{**req.__dict__, "net": full_net,
                                                "train_last": None, "overrides": {}}),
                                     design.hw)
        if full_design is not None:
            full = evaluate_design(full_net, full_design, req.board)
    if req.training is not None:
        from efgen.methods.compare import comparison_for

        ev["totals"]["methods"]["comparison"] = comparison_for(req, design)
    return design, ev, full


def write_rtl(design: Design, rtl_dir: Path, impl: str = DEFAULT_RTL_IMPL) -> str:
    """Write ``rtl_dir``/*.v and rtl.json for ``design``; returns the one-line note.

    Raises :class:`EfgenError` when the reference RTL does not support the Design.
    """
    from efgen.rtl.synth import top_spec
    from efgen.rtl.top import TOP, rtl_params, rtl_verilog

    if impl not in RTL_IMPLS:
        raise EfgenError(f"RTL impl {impl!r} unknown", where="--rtl-impl",
                         fix=f"use one of {', '.join(RTL_IMPLS)}")
    try:
        p = rtl_params(design, design.layout, impl=impl)
    except ValueError as exc:      # RtlParams / EngineParams restrictions
        raise EfgenError(str(exc)) from None
    files = rtl_verilog(p)
    rtl_dir.mkdir()
    for name in sorted(files):
        (rtl_dir / name).write_text(files[name])
    (rtl_dir / "rtl.json").write_text(top_spec(p).dumps())
    e = p.engine
    what = ("'efgen synth --yosys DIR' synthesizes it" if impl != "behav"
            else "behavioural FP32 units: simulation only")
    fused = ", the fused datapath: the restructured-BN program" if p.fuse else ""
    return (f"rtl/: {TOP} ({len(files)} Verilog files, {e.shape} engine, {impl} FP32 "
            f"units, {p.layout} layout{fused}); {what}")


def check_out_dir(out_dir: str | Path, force: bool = False) -> Path:
    """``out_dir`` resolved, if a build may write it (see :mod:`efgen.outdir`)."""
    return check_output_dir(out_dir, marker="design.json", owned=OWNED,
                            what="efgen build folder", force=force)


def write_build(out_dir: Path, design: Design, board: Board, ev: dict,
                full: dict | None, hls: bool = True, rtl: str | None = DEFAULT_RTL_IMPL,
                force: bool = False, request: tuple[str, ...] | None = None
                ) -> tuple[dict, list[str], str | None]:
    """Write the estimate artefacts into ``out_dir`` atomically; returns (report, files,
    rtl note). ``rtl``: the FP32 units of the reference RTL in rtl/ (``"dsp"``,
    ``"synth"`` or ``"behav"``), None for no rtl/. An existing ``out_dir`` is replaced only when it is an
    earlier build (or with ``force``). ``request``: :func:`request_words`, for hls/."""
    from efgen.report import plots

    rep = report_dict(design, board, ev, full)
    out_dir = check_out_dir(out_dir, force)
    methods_note = None
    if design.training and rtl is not None:
        # The reference RTL and its runtime run full back-propagation only; the HLS C++
        # runs gradient filtering, error-map pruning, mini-batch dropping, instance
        # filtering and selective layer update (efgen.hls.methods), nothing else.
        from efgen.hls.methods import SUPPORTED, runs_in_cpp

        methods_note = "rtl/ not written: the reference RTL runs full back-propagation"
        if hls and not runs_in_cpp(design.training):
            methods_note = ("hls/ and rtl/ not written: the generated C++ runs "
                            f"{', '.join(SUPPORTED)} only (not layer_update with "
                            "instance_filter), the RTL neither (efgen prices the methods; "
                            "see README.md)")
            hls = False
        rtl = None
    tmp = make_temp(out_dir)
    try:
        (tmp / "design.json").write_text(design.to_json())
        (tmp / "report.json").write_text(report_json(rep))
        (tmp / "report.md").write_text(report_markdown(design, board, rep))
        hw = design.hw
        title = f"{design.net['name']} on {board.name} ({hw.precision}, {hw.tm}x{hw.tn})"
        plots.plot_layer_times(ev["rows"], tmp / "time_per_layer.png", title,
                               clock_mhz=hw.clock_mhz)
        plots.plot_roofline(ev["rows"], hw, plots.memory_roof_gbps(hw, board.ddr.peak_gbps),
                            tmp / "roofline.png", title)
        if hls:
            from efgen.hls.emit import write_hls
            from efgen.hls.program import build_program

            write_hls(build_program(design.net_ir, design), board, tmp / "hls", request)
        note = None
        if rtl is not None:
            try:
                note = write_rtl(design, tmp / "rtl", rtl)
            except EfgenError as exc:
                shutil.rmtree(tmp / "rtl", ignore_errors=True)
                note = f"rtl/ not written: {exc.message()}"
            else:
                from efgen.rtl.cost import rtl_report_lines
                from efgen.runtime.board import write_driver

                with open(tmp / "report.md", "a", encoding="utf-8") as fh:
                    fh.write("\n".join(rtl_report_lines(design, board, rtl)))

                write_driver(tmp / "driver", design)
        from efgen.vivado.emit import write_vivado

        write_vivado(tmp / "vivado", design, board, hls=hls, rtl=(tmp / "rtl").is_dir())
        files = sorted(p.name for p in tmp.iterdir())
        publish(tmp, out_dir)
        note = methods_note or note
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return rep, files, note


__all__ = ["estimate", "write_build", "write_rtl", "request_words", "check_out_dir", "STEPS",
           "BUILD_STEPS", "DEFAULT_STEPS", "select_steps",
           "steps_help", "RTL_IMPLS", "DEFAULT_RTL_IMPL", "ddr_bytes_per_cycle"]
