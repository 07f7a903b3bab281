"""``efgen cosim``: co-simulate a net's conv/linear layer-phases (or one training step) on
the reference RTL and set the analytical model's cycles next to the measured ones."""

from __future__ import annotations

import json
import time
from pathlib import Path

from efgen.errors import EfgenError
from efgen.frontend.ir import INPUT

PHASE_CHOICES = ("fp", "bp", "wu")


def design_for(args):
    """The Design ``efgen cosim`` simulates: the scheduler's, for the board and batch
    (``--fuse``: the restructured-BN program, on the RTL with its fused datapath)."""
    from efgen.frontend import load_net
    from efgen.frontend.boards import load_board
    from efgen.model.schedule import Request, parse_array, schedule

    net = load_net(args.net)
    board = load_board(args.board)
    tm = tn = p = None
    if args.tiles is not None:
        tm, tn, p = parse_array(args.tiles)
    if args.batch < 1:
        raise EfgenError("--batch must be at least 1", where="efgen cosim",
                         fix="give a positive batch")
    # P pixel lanes (issue 13): the reference RTL builds P in (1, 2, 4), tap packing at
    # P = 1 only, so a P > 1 design here does not pack (efgen.rtl.top.rtl_params)
    many = p is not None and p > 1
    return net, schedule(Request(net, board, batch=args.batch, tm=tm, tn=tn, p=p,
                                 pack=False if many else None,
                                 weight_db=getattr(args, "weight_db", "off"),
                                 fuse=bool(getattr(args, "fuse", False))))


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


# Simulated cycles per second of one MAC lane (Verilator 5.006, one core of this
# machine, measured on the 4x4 and 8x8 make-cosim runs); the first ETA divides the
# model's cycles by RATE / (Tm * Tn + RATE_FIXED), later ones use the measured rate.
RATE = {"verilator": 9.0e6, "icarus": 3.0e5}
RATE_FIXED = 64


def _select(net, design, lps, args, layout: str):
    """The layer-phases ``--layer``/``--phase``/``--distinct`` pick, or a one-line error
    saying why there are none."""
    if args.layer:
        lps = [lp for lp in lps if lp.name == args.layer]
        if not lps:
            raise EfgenError(f"no conv/linear layer {args.layer!r} in {net.name}",
                             where="efgen cosim --layer",
                             fix="use a conv/linear name from 'efgen net show'")
    if args.phase:
        picked = [lp for lp in lps if lp.phase == args.phase]
        if not picked:
            if args.layer:
                l = net[args.layer]
                if args.phase == "wu":
                    why = "it is frozen, and frozen layers have no WU"
                elif INPUT in l.inputs:
                    why = "it reads the net's input, which needs no error"
                else:
                    why = "no error is needed below the lowest trainable layer"
                raise EfgenError(f"{args.layer} has no {args.phase.upper()} layer-phase: "
                                 f"{why}", where="efgen cosim --phase",
                                 fix=f"use one of {', '.join(sorted({lp.phase for lp in lps}))}")
            raise EfgenError(f"no {args.phase.upper()} layer-phase in {net.name}",
                             where="efgen cosim --phase", fix="pick another --phase")
        lps = picked
    if args.distinct:
        from efgen.cosim import layers as cosim

        lps = cosim.distinct(lps)
    return lps


def _plan(args):
    """Everything ``efgen cosim`` will simulate, checked before anything is created."""
    from efgen.cosim import layers as cosim
    from efgen.rtl.top import rtl_params

    net, design = design_for(args)
    if args.step:
        p = rtl_params(design, layout="reshaped", impl=args.impl)
        return net, design, [("reshaped", p, None)]
    layouts = ("reshaped", "nchw") if args.layout == "both" else (args.layout,)
    plan = []
    for layout in layouts:
        p = rtl_params(design, layout=layout, impl=args.impl)
        lps = _select(net, design, cosim.layer_phases(net, design, p), args, layout)
        cosim.check_params(p, lps)
        plan.append((layout, p, lps))
    return net, design, plan


def _write_json(path: Path, report: dict) -> None:
    """Write ``report`` atomically (an interrupted run keeps the last complete file)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=1, default=str) + "\n")
    tmp.replace(path)


def _eta(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m}:{s:02d}" if m < 60 else f"{m // 60}h{m % 60:02d}"


def cosim_main(args) -> int:
    import tempfile

    from efgen.cosim import layers as cosim

    net, design, plan = _plan(args)           # every check before anything is created
    out_dir = Path(args.output) if args.output else None
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
    scratch = None
    if cosim.BUILD_CACHE is None:             # one simulator build per parameter set
        if out_dir:
            cosim.BUILD_CACHE = out_dir / "sim-build"
        else:
            scratch = tempfile.TemporaryDirectory(prefix="efgen-cosim-")
            cosim.BUILD_CACHE = Path(scratch.name) / "sim-build"
    report = {"net": net.name, "board": design.board, "batch": design.batch,
              "tm": design.hw.tm, "tn": design.hw.tn, "sim": args.sim}
    try:
        if args.step:
            return _run_step(args, net, design, plan[0][1], report, out_dir)
        return _run_layer_phases(args, net, design, plan, report, out_dir)
    finally:
        if scratch is not None:
            cosim.BUILD_CACHE = None
            scratch.cleanup()


def _run_step(args, net, design, p, report: dict, out_dir: Path | None) -> int:
    from efgen.cosim import layers as cosim
    from efgen.cosim.step import format_step, run_rtl_step

    t0 = time.perf_counter()
    res = run_rtl_step(net, design, p, sim=args.sim, pause=_pause(args),
                       workdir=(out_dir / "step") if out_dir else None)
    lps = {lp.label: lp for lp in cosim.layer_phases(net, design, p)}
    model = _step_model(p, res, lps, design)
    print(f"efgen cosim --step: {net.name}, batch {design.batch}, "
          f"{p.engine.shape} RTL ({p.impl} FP32), {args.sim}, {time.perf_counter() - t0:.1f} s")
    print(format_step(res, model))
    report["step"] = {"loss": res.loss, "golden_loss": res.golden_loss,
                      "ok": res.ok, "max_rel": res.max_rel,
                      "local_max_rel": max((r.rel_err for r in res.local), default=0.0),
                      "flips": [f.describe() for f in res.flips],
                      "ran": [vars(r) for r in res.ran],
                      "model": model}
    if out_dir:
        _write_json(out_dir / "cosim.json", report)
    return 0 if res.ok else 1


def _run_layer_phases(args, net, design, plan, report: dict, out_dir: Path | None) -> int:
    """One build per layout, one simulation per layer-phase, on ``--jobs`` workers (or
    ``--cluster``; efgen.cosim.farm), cached results reused; a progress bar and an
    updated cosim.json as each layer-phase finishes, so an interrupted run keeps what
    finished."""
    import sys

    from efgen.cosim import layers as cosim
    from efgen.cosim.farm import KIND, run_farm
    from efgen.cosim.validate import model_rows

    def zero(lp):
        return cosim.Result(lp, 0.0, {}, 0, (0, 0, 0), (0, 0, 0))

    model = {layout: {r.label: r.model for r in model_rows(p, [zero(lp) for lp in lps])}
             for layout, p, lps in plan}
    total = sum(sum(m.values()) for m in model.values())
    n = sum(len(lps) for _, _, lps in plan)
    macs = plan[0][1].tm * plan[0][1].tn
    print(f"efgen cosim: {n} layer-phase(s) of {net.name}; the model expects "
          f"{total:,.0f} cycles, about {_eta(total / (RATE[args.sim] / (macs + RATE_FIXED)))} "
          f"of simulation on {args.sim} (plus one build per layout), "
          f"on {getattr(args, 'jobs', None) or 1} job(s)", file=sys.stderr)
    report["layouts"] = {layout: [] for layout, _, _ in plan}
    import efgen.farm as farm_mod
    from efgen.progress import bar
    from efgen.resultcache import Cache, default_dir
    from efgen.dse import check_jobs

    jobs = check_jobs(getattr(args, "jobs", None) or 1)
    cache = Cache(KIND, None if getattr(args, "no_cache", False)
                  else (getattr(args, "cache_dir", None) or default_dir()))
    rows: dict[str, dict] = {}

    def progress(layout, p, res):
        [row] = model_rows(p, [res])
        rows[f"{layout} {res.lp.label}"] = dict(vars(row), err_pct=row.err_pct)
        b.set_postfix_str(f"{layout} {res.lp.label}: {res.cycles:,} cycles", refresh=False)
        b.update(1)
        # cosim.json keeps what finished, in the plan's order, for an interrupted run
        report["layouts"] = {layout: [rows[k] for k in (f"{layout} {lp.label}"
                                                         for lp in lps) if k in rows]
                             for layout, _, lps in plan}
        if out_dir:
            _write_json(out_dir / "cosim.json", report)

    ok = True
    t0 = time.perf_counter()
    work_root = out_dir if out_dir else Path(cosim.BUILD_CACHE).parent
    try:
        with farm_mod.Farm(jobs, getattr(args, "cluster", None)) as farm, \
                bar(n, "cosim", unit="sim",
                    enabled=not getattr(args, "no_progress", False)) as b:
            res_by = run_farm(plan, sim=args.sim, farm=farm, cache=cache,
                              build_root=Path(cosim.BUILD_CACHE), work_root=work_root,
                              pause=_pause(args), on_result=progress)
            workers = farm.workers
        for layout, p, lps in plan:
            res = res_by[layout]
            rows_l = model_rows(p, res)
            print(format_rows(rows_l, f"efgen cosim: {net.name}, batch {design.batch}, "
                                      f"{p.engine.shape} RTL ({p.impl} FP32), {layout} layout, "
                                      f"{args.sim}, {time.perf_counter() - t0:.1f} s on "
                                      f"{workers} worker{'s' if workers != 1 else ''}"
                                      + (f", {cache.hits} from the cache" if cache.hits else "")
                                      + (f", back-pressure seed {args.backpressure}"
                                         if args.backpressure is not None else "")))
            for r in res:
                if r.error:
                    print(f"{r.lp.label}: {r.error}")
            ok = ok and all(r.ok for r in res)
            report["layouts"][layout] = [dict(vars(r), err_pct=r.err_pct) for r in rows_l]
    except KeyboardInterrupt:
        report["interrupted"] = True
        if out_dir:
            _write_json(out_dir / "cosim.json", report)
        done = sum(len(v) for v in report["layouts"].values())
        print(f"efgen cosim: interrupted after {done} of {n} layer-phase(s)"
              + (f"; {out_dir / 'cosim.json'} holds them" if out_dir else ""), file=sys.stderr)
        return 130
    if out_dir:
        _write_json(out_dir / "cosim.json", report)
    return 0 if ok else 1


def _pause(args):
    from efgen.cosim.layers import Pause

    seed = getattr(args, "backpressure", None)
    return None if seed is None else Pause(seed)


def _step_model(p, res, lps: dict, design) -> dict:
    """Model cycles of the step's RTL layer-phases and element-wise descriptors."""
    from efgen.cosim.layers import Result
    from efgen.cosim.validate import model_rows

    results = [Result(lps[f"{r.layer}:{r.phase}"], 0.0, {}, r.cycles, (0, 0, 0), (0, 0, 0))
               for r in res.ran if r.where == "rtl" and f"{r.layer}:{r.phase}" in lps]
    out = {row.label: row.model for row in model_rows(p, results)}
    out.update(_vec_model(p, design))
    return out


def _vec_model(p, design) -> dict:
    """Model cycles of the step's element-wise, batchnorm and pooling / shortcut / flatten
    descriptors on vec_unit, bn_unit and pool_unit (image at word 0; pool_cycles prices
    FLATTEN_FP/BP with flatten_cycles)."""
    from efgen.cosim.validate import bn_cycles, pool_cycles, vec_cycles
    from efgen.hls.desc import OPS
    from efgen.hls.program import build_program
    from efgen.rtl.top import POOL_OPS
    from efgen.runtime.trainer import VEC_OPS

    pool = {OPS[k] for k in POOL_OPS}
    prog = build_program(design.net_ir, design, 0.01, 0.9, 5e-4)
    bn = (OPS["BN_FP"], OPS["BN_BP"], OPS["BN_FIN"])

    def cycles(d):
        return (bn_cycles if d.op in bn else pool_cycles if d.op in pool else vec_cycles)(p, d)

    return {f"{s.layer}:{s.what}": float(cycles(s.desc))
            for s in prog.fp + prog.bp if s.desc.op in VEC_OPS}
