"""``efgen cosim``: co-simulate a net's conv/linear layer-phases (or one training step) on
the reference RTL and set the analytical model's cycles next to the measured ones."""

from __future__ import annotations

import json
import time
from pathlib import Path

from efgen.errors import EfgenError

PHASE_CHOICES = ("fp", "bp", "wu")


def design_for(args):
    """The Design ``efgen cosim`` simulates: the scheduler's, for the board and batch."""
    from efgen.frontend import load_net
    from efgen.frontend.boards import load_board
    from efgen.model.schedule import Request, parse_tiles, schedule

    net = load_net(args.net)
    board = load_board(args.board)
    tm = tn = None
    if args.tiles:
        tm, tn = parse_tiles(args.tiles)
    if args.batch < 1:
        raise EfgenError("--batch must be at least 1", where="efgen cosim",
                         fix="give a positive batch")
    return net, schedule(Request(net, board, batch=args.batch, tm=tm, tn=tn))


def format_rows(rows, title: str) -> str:
    lines = [title,
             f"{'layer-phase':24s} {'max rel err':>11s} {'cycles':>9s} {'model':>9s} "
             f"{'model err':>9s} {'bursts':>7s} {'model':>7s}"]
    for r in rows:
        lines.append(f"{r.label:24s} {r.max_rel:11.2e} {r.cycles:9d} {r.model:9.0f} "
                     f"{r.err_pct:+8.1f}% {r.bursts:7d} {r.model_bursts:7.0f}")
    if rows:
        worst = max(rows, key=lambda r: abs(r.err_pct))
        lines.append(f"{len(rows)} layer-phases; worst model error {worst.err_pct:+.1f}% "
                     f"({worst.label}); worst relative error "
                     f"{max(r.max_rel for r in rows):.2e}")
    return "\n".join(lines)


def cosim_main(args) -> int:
    from efgen.cosim import layers as cosim
    from efgen.cosim.validate import model_rows
    from efgen.rtl.top import rtl_params

    net, design = design_for(args)
    layouts = ("reshaped", "nchw") if args.layout == "both" else (args.layout,)
    out_dir = Path(args.output) if args.output else None
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
        if cosim.BUILD_CACHE is None:         # keep the simulator builds with the results
            cosim.BUILD_CACHE = out_dir / "sim-build"
    report = {"net": net.name, "board": design.board, "batch": design.batch,
              "tm": design.hw.tm, "tn": design.hw.tn, "sim": args.sim}
    ok = True
    if args.step:
        from efgen.cosim.step import format_step, run_rtl_step

        p = rtl_params(design, layout="reshaped", impl=args.impl)
        t0 = time.perf_counter()
        res = run_rtl_step(net, design, p, sim=args.sim,
                           workdir=(out_dir / "step") if out_dir else None)
        lps = {lp.label: lp for lp in cosim.layer_phases(net, design, p)}
        model = _step_model(p, res, lps)
        print(f"efgen cosim --step: {net.name}, batch {design.batch}, "
              f"{p.tm}x{p.tn} RTL ({p.impl} FP32), {args.sim}, {time.perf_counter() - t0:.1f} s")
        print(format_step(res, model))
        report["step"] = {"loss": res.loss, "golden_loss": res.golden_loss,
                          "max_rel": res.max_rel, "ran": [vars(r) for r in res.ran],
                          "model": model}
        ok = res.ok
    else:
        report["layouts"] = {}
        for layout in layouts:
            p = rtl_params(design, layout=layout, impl=args.impl)
            lps = cosim.layer_phases(net, design, p)
            if args.layer:
                lps = [lp for lp in lps if lp.name == args.layer]
                if not lps:
                    raise EfgenError(f"no conv/linear layer {args.layer!r} in {net.name}",
                                     where="efgen cosim --layer",
                                     fix="use a name from 'efgen net show'")
            if args.phase:
                lps = [lp for lp in lps if lp.phase == args.phase]
            if args.distinct:
                lps = cosim.distinct(lps)
            if not lps:
                raise EfgenError("nothing to simulate", where="efgen cosim",
                                 fix="check --layer/--phase (frozen layers have no WU)")
            t0 = time.perf_counter()
            res = cosim.run_layer_phases(p, lps, sim=args.sim,
                                         workdir=(out_dir / layout) if out_dir else None)
            rows = model_rows(p, res)
            print(format_rows(rows, f"efgen cosim: {net.name}, batch {design.batch}, "
                                    f"{p.tm}x{p.tn} RTL ({p.impl} FP32), {layout} layout, "
                                    f"{args.sim}, {time.perf_counter() - t0:.1f} s"))
            report["layouts"][layout] = [dict(vars(r), err_pct=r.err_pct) for r in rows]
            ok = ok and all(r.ok for r in res)
    if out_dir:
        (out_dir / "cosim.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    return 0 if ok else 1


def _step_model(p, res, lps: dict) -> dict:
    """Model cycles of the step's RTL layer-phases."""
    from efgen.cosim.layers import Result
    from efgen.cosim.validate import model_rows

    results = [Result(lps[f"{r.layer}:{r.phase}"], 0.0, {}, r.cycles, (0, 0, 0), (0, 0, 0))
               for r in res.ran if r.where == "rtl" and f"{r.layer}:{r.phase}" in lps]
    return {row.label: row.model for row in model_rows(p, results)}
