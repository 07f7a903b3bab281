"""The scheduler: choose the hardware parameters and every layer-phase's tiling.

Search (documented pruning, deterministic ties):

1. Hardware candidates: Tm, Tn from :data:`ARRAY_SIDES` (or the ``--tiles`` values);
   IFM and OFM bank depths from :data:`DEPTHS`; weight-bank depth the smallest that
   holds one output block of every layer (rounded up to a whole RAMB18), or twice
   that; weight buffer in BRAM, or in URAM where the board has it.
2. Resources are computed for every candidate; those above any board cap are dropped.
   With ``target="rtl"`` the resources are those of the reference RTL
   (:mod:`efgen.rtl.cost`: its own FP32 units and power-of-two buffers, no URAM).
3. Pruning: (a) arrays with fewer than 3/4 of the MACs of the largest array that fits
   are dropped, as are arrays with Tm/Tn or Tn/Tm above 2; (b) buffer depths are kept
   only when no other fitting choice is at least as deep in all three buffers (deeper
   buffers only ever admit more tilings, so a dominated choice cannot be faster).
4. Every remaining candidate is fully scheduled: each layer-phase's tiling is the best
   of the candidate grid of :mod:`efgen.model.engine` (evaluated at once with numpy).
5. The objective (latency, energy, energy-delay product, or DRAM bytes per step) picks
   the candidate; ties go to fewer DSPs, then fewer BRAMs, then the smaller (Tm, Tn,
   depths) tuple. ``dram`` picks each tiling (and, fused, each fuse/materialise decision)
   by the bytes it moves, cycles breaking ties: for a PL that shares the PS's DDR.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from efgen.design import (
    LOOP_ORDERS,
    OBJECTIVES,
    PHASES,
    PRECISIONS,
    Design,
    HwParams,
    PhaseSchedule,
)
from efgen.errors import EfgenError
from efgen.frontend.boards import PS_ADDR_BITS, Board
from efgen.frontend.ir import Net, net_to_doc
from efgen.frontend.yamlio import read_yaml
from efgen.model import engine
from efgen.model.aux import aux_costs
from efgen.model.coeffs import acc_bits, bram18_units, coefficients, fmax_mhz, mac_cost, word_bits
from efgen.model.energy import energy_constants, energy_joules
from efgen.model.evaluate import bram_accesses_per_cycle, ddr_bytes_per_cycle, evaluate_design
from efgen.model.resources import RESOURCES, over_caps, resource_use

ARRAY_SIDES = (1, 2, 4, 8, 12, 16, 20, 24, 32, 48, 64)
P_SIDES = (1, 2, 3, 4, 5, 6, 8)   # pixel lanes searched with --parray (issue 13)
DEPTHS = (1024, 2048, 4096, 8192)
MAX_RATIO = 2
MIN_MAC_FRACTION = 0.75


@dataclass(frozen=True)
class Request:
    net: Net
    board: Board
    batch: int = 32
    clock_mhz: float | None = None
    objective: str = "latency"
    precision: str = "fp32"
    tm: int | None = None
    tn: int | None = None
    overrides: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    train_last: int | None = None
    momentum: bool = True
    training: Any = None          # efgen.methods.spec.Training: the jobs it changes
    target: str = "hls"           # whose resources must fit the caps: "hls" or "rtl"
    rtl_impl: str = "dsp"         # the reference RTL's FP32 units (target "rtl")
    fuse: bool = False            # restructured BN (efgen.model.restructure); not with training
    # Issue 13 (the reference RTL builds P = 1, with or without packing):
    parray: bool = False          # search P (pixel lanes) and pack shallow layers' taps
    p: int | None = None          # fix P; None: searched with parray, else 1
    pack: bool | None = None      # tap packing; None: with parray or a fixed P > 1
    # double-buffered weight chunks (HwParams.wdb): "off", "on", or "auto" (both searched,
    # the second weight buffer priced in BRAM)
    weight_db: str = "off"


def request_jobs(req: Request) -> list[engine.Job]:
    """The engine jobs to schedule: the net's, or those the training methods make."""
    if req.training is not None:
        from efgen.methods.cost import method_jobs

        return method_jobs(req.net, req.batch, req.training)
    return engine.jobs_for(req.net, req.batch)


def base_hw(req: Request) -> HwParams:
    """Fixed parameters of every candidate: clock, ports, DMA, pipeline depth."""
    c = coefficients()
    wb = word_bits(req.precision)
    clock = req.clock_mhz if req.clock_mhz is not None else req.board.clock_mhz
    return HwParams(precision=req.precision, clock_mhz=float(clock),
                    port_words=max(1, req.board.axi.width_bits // wb),
                    ports=min(3, req.board.axi.hp_ports),
                    dma_start=int(c["dma"]["start_cycles"]),
                    max_burst_beats=int(c["dma"]["max_burst_beats"]),
                    mac_depth=int(mac_cost(req.board.dsp_type, req.precision)["depth"]),
                    fuse=fused(req))


def fused(req: Request) -> bool:
    """The request schedules the restructured-BN datapath (training methods keep the
    unfused one: efgen.methods prices its own jobs; a net with no batchnorm and no
    residual add has nothing to fuse, and its units would only cost DSPs)."""
    if not req.fuse or req.training is not None:
        return False
    from efgen.model.restructure import groups

    return bool(groups(req.net))


def _bank_round(depth: int, bits: int) -> int:
    """Round a bank depth up to what its RAMB18s hold anyway."""
    per = max(d for w, d in coefficients()["bram18_modes"] if w >= bits) if bits <= 36 else 512
    return int(math.ceil(depth / per) * per)


def hardware_candidates(req: Request, jobs: list[engine.Job]) -> list[HwParams]:
    base = base_hw(req)
    board = req.board
    tms = (req.tm,) if req.tm else ARRAY_SIDES
    tns = (req.tn,) if req.tn else ARRAY_SIDES
    ps = p_candidates(req)
    wdbs = wdb_candidates(req)
    mems = ("bram", "uram") if board.resources.uram > 0 and req.target == "hls" else ("bram",)
    fits = _rtl_fits(req) if req.target == "rtl" else None
    ab = acc_bits(req.precision)
    fitting: list[tuple[HwParams, Any]] = []
    for tm in tms:
        for tn in tns:
            if not (req.tm and req.tn) and max(tm / tn, tn / tm) > MAX_RATIO:
                continue
            wmin = _bank_round(engine.min_wbuf_depth(jobs, tn), ab)
            pack = packs(req, jobs, tn)
            for p in ps:
                for mem in mems:
                    for wd in (wmin, 2 * wmin):
                        for di in DEPTHS:
                            for do in DEPTHS:
                                for wdb in wdbs:
                                    hw = replace(base, tm=tm, tn=tn, ifm_depth=di, ofm_depth=do,
                                                 wbuf_depth=wd, weight_mem=mem, p=p, pack=pack,
                                                 wdb=wdb)
                                    use = resource_use(hw, board)
                                    if fits(hw) if fits else not over_caps(use, board):
                                        fitting.append((hw, use))
    if not fitting and base.fuse:
        # the restructured-BN units do not fit beside any array: the unfused step
        return hardware_candidates(replace(req, fuse=False), jobs)
    if not fitting:
        raise _infeasible(req, base, jobs)
    best_macs = max(hw.macs for hw, _ in fitting)
    keep = [(hw, u) for hw, u in fitting
            if (req.tm and req.tn) or hw.macs >= MIN_MAC_FRACTION * best_macs]
    # Keep only buffer choices not dominated by a deeper fitting choice of the same array.
    out = []
    for hw, u in keep:
        dominated = any(o.tm == hw.tm and o.tn == hw.tn and o.p == hw.p
                        and o.weight_mem == hw.weight_mem and o.wdb == hw.wdb
                        and o.ifm_depth >= hw.ifm_depth and o.ofm_depth >= hw.ofm_depth
                        and o.wbuf_depth >= hw.wbuf_depth and o != hw for o, _ in keep)
        if not dominated:
            out.append(hw)
    return out


WEIGHT_DB = ("off", "on", "auto")


def wdb_candidates(req: Request) -> tuple[bool, ...]:
    """Weight-buffer copies the scheduler tries: one (``off``), two (``on``), or both
    (``auto``: the second copy costs BRAM, :func:`efgen.model.resources.resource_use`)."""
    if req.weight_db not in WEIGHT_DB:
        raise EfgenError(f"--weight-db {req.weight_db!r} is not one of {', '.join(WEIGHT_DB)}",
                         where="--weight-db", fix="use --weight-db off, on or auto")
    return {"off": (False,), "on": (True,), "auto": (False, True)}[req.weight_db]


def p_candidates(req: Request) -> tuple[int, ...]:
    """Pixel-lane counts the scheduler tries: ``req.p``, :data:`P_SIDES` with
    ``req.parray``, else 1. The reference RTL (``--target rtl``) builds P in
    :data:`efgen.rtl.engine.PIXEL_LANES` (1, 2, 4): --parray searches those, a fixed P
    outside them is refused."""
    if req.p is not None and (isinstance(req.p, bool) or not isinstance(req.p, int) or req.p < 1):
        raise EfgenError(f"P = {req.p!r} is not a positive integer", where="--tiles P",
                         fix="write --tiles Tm=16,Tn=16,P=2")
    if req.target == "rtl":
        from efgen.rtl.engine import PIXEL_LANES

        if req.p is not None and req.p not in PIXEL_LANES:
            raise EfgenError(f"the reference RTL builds P in {PIXEL_LANES}, not P = {req.p}",
                             where="--tiles P",
                             fix=f"pick P from {PIXEL_LANES} for --target rtl, or build the "
                                 "HLS C++ (--target hls)")
        if req.p is not None and req.p > 1 and req.pack:
            raise EfgenError(f"the reference RTL packs taps at P = 1 only, not P = {req.p}",
                             where="--pack", fix="drop --pack, or P= from --tiles, for "
                             "--target rtl")
        if req.p is not None:
            return (req.p,)
        return PIXEL_LANES if req.parray else (1,)
    if req.p is not None:
        return (req.p,)
    return P_SIDES if req.parray else (1,)


def packs(req: Request, jobs, tn: int) -> bool:
    """Whether the design packs kernel taps into idle reduction lanes: with ``req.pack``,
    or (None) with ``req.parray`` or a fixed P > 1, when some FP/WU job of the net is
    shallow enough on ``tn`` lanes to use it (the reference RTL: with ``req.pack`` only)."""
    if req.pack is False or (req.target == "rtl" and not req.pack):
        return False
    if req.pack is None and not (req.parray or (req.p or 1) > 1):
        return False
    probe = HwParams(tn=tn, pack=True)
    return any(float(engine.packed_taps(j.red, j.k, engine.PHASE_CODE[j.phase], j.img_major,
                                        probe)) > 1 for j in jobs)


def _rtl_fits(req: Request):
    """hw -> whether the reference RTL of ``hw`` fits the board's caps (target "rtl")."""
    from efgen.rtl.cost import fp_dsp, rtl_over_caps, rtl_use
    from efgen.rtl.fpu import FTZ_IMPLS
    from efgen.rtl.top import net_kmax

    if req.precision != "fp32" or req.rtl_impl not in FTZ_IMPLS:
        raise EfgenError(f"--target rtl needs fp32 and synthesizable FP32 units, got "
                         f"{req.precision} with --rtl-impl {req.rtl_impl}", where="--target",
                         fix="use --precision fp32 and --rtl-impl dsp or synth")
    kmax = net_kmax(req.net)
    abits = PS_ADDR_BITS.get(req.board.family, 32)

    def fits(hw: HwParams) -> bool:
        if fp_dsp(hw.macs, req.rtl_impl) > req.board.cap("dsp"):
            return False          # cheap bound first: EngineParams checks are O((Tm*Tn)^2)
        try:
            return not rtl_over_caps(rtl_use(hw, kmax, req.rtl_impl, abits), req.board)
        except ValueError:        # an array the reference RTL cannot build
            return False
    return fits


def _infeasible(req: Request, base: HwParams, jobs) -> EfgenError:
    """Name the binding resource of the smallest design the request allows."""
    tm, tn = req.tm or 1, req.tn or 1
    ab = acc_bits(req.precision)
    hw = replace(base, tm=tm, tn=tn, ifm_depth=DEPTHS[0], ofm_depth=DEPTHS[0],
                 wbuf_depth=_bank_round(engine.min_wbuf_depth(jobs, tn), ab), p=req.p or 1)
    use = resource_use(hw, req.board)
    bad = over_caps(use, req.board) or [("bram18", use.bram18, req.board.cap("bram18"))]
    if req.target == "rtl":
        from efgen.rtl.cost import rtl_over_caps, rtl_use
        from efgen.rtl.top import net_kmax

        try:
            bad = rtl_over_caps(rtl_use(hw, net_kmax(req.net), req.rtl_impl,
                                        PS_ADDR_BITS.get(req.board.family, 32)),
                                req.board) or bad
        except ValueError as exc:
            return EfgenError(f"the reference RTL cannot build Tm={tm}, Tn={tn}: {exc}",
                              where="--tiles", fix="pick an array whose gcd(Tm, Tn) is a "
                              "power of two, e.g. --tiles Tm=8,Tn=8")
    r, need, allowed = max(bad, key=lambda b: b[1] / max(b[2], 1))
    total = getattr(req.board.resources, r)
    cap = getattr(req.board.caps, r)
    return EfgenError(
        f"no design fits {req.board.name}: Tm={tm}, Tn={tn} ({req.precision}) needs "
        f"{need:,.0f} {r.upper()}{' in the RTL flow' if req.target == 'rtl' else ''}, the "
        f"board allows {allowed:,} ({cap:.0%} of {total:,})",
        where=f"board {req.board.name}",
        fix="use smaller --tiles, a lower precision, or a larger board")


def _aux_totals(req: Request, hw: HwParams, plan=None) -> tuple[float, float, float]:
    """(cycles, DRAM words, elements) of the vector engine, which tiling does not change."""
    if plan is not None:
        from efgen.model.restructure import fused_aux

        a = fused_aux(req.net, req.batch, hw, word_bits(hw.precision),
                      ddr_bytes_per_cycle(req.board, hw.clock_mhz), plan, req.momentum)
    elif req.training is not None:
        from efgen.methods.cost import method_aux

        a = method_aux(req.net, req.batch, hw, word_bits(hw.precision),
                       ddr_bytes_per_cycle(req.board, hw.clock_mhz), "reshaped",
                       req.momentum, req.training)
    else:
        a = aux_costs(req.net, req.batch, hw, word_bits(hw.precision),
                      ddr_bytes_per_cycle(req.board, hw.clock_mhz), "reshaped", req.momentum)
    return (sum(x.cycles for x in a), sum(x.read_words + x.write_words for x in a),
            sum(x.elements for x in a))


def _fixed(jobs, req: Request) -> dict[int, dict]:
    out = {}
    for i, j in enumerate(jobs):
        f = req.overrides.get((j.layer, j.phase))
        if f:
            out[i] = f
    return out


def _score(req: Request, hw: HwParams, jobs, res, aux) -> tuple[float, float, float]:
    """(seconds, joules, DRAM bytes) of one fully scheduled candidate."""
    clock = hw.clock_mhz * 1e6
    cycles = float(np.sum(res["cycles"])) + aux[0]
    seconds = cycles / clock
    k = energy_constants(req.board, hw.precision, hw)
    wbytes = word_bits(hw.precision) / 8
    flops = 2.0 * sum(j.macs for j in jobs) + aux[2]
    bram = sum(float(res["compute_cycles"][i]) * bram_accesses_per_cycle(hw, j.phase)
               for i, j in enumerate(jobs))
    words = float(np.sum(res["read_words"] + res["write_words"])) + aux[1]
    return (seconds, float(energy_joules(seconds, flops, bram + words, words * wbytes, k)),
            words * wbytes)


def schedule(req: Request) -> Design:
    """Schedule ``req`` and return the Design (raises EfgenError when nothing fits)."""
    if req.objective not in OBJECTIVES:
        raise EfgenError(f"unknown objective '{req.objective}'", where="--objective",
                         fix=f"use one of {', '.join(OBJECTIVES)}")
    if req.precision not in PRECISIONS:
        raise EfgenError(f"unknown precision '{req.precision}'", where="--precision",
                         fix=f"use one of {', '.join(PRECISIONS)}")
    if req.batch < 1:
        raise EfgenError("--batch must be at least 1", where="--batch", fix="give a batch >= 1")
    clock = req.clock_mhz if req.clock_mhz is not None else req.board.clock_mhz
    limit = fmax_mhz(req.board.family)
    if clock > limit:
        raise EfgenError(f"a {clock:g} MHz clock is above the {limit:g} MHz that efgen expects "
                         f"{req.board.family} designs to close timing at", where="--clock",
                         fix=f"give --clock {limit:g} or less")
    engine.tune_allocator()
    jobs = request_jobs(req)
    cands = hardware_candidates(req, jobs)
    fixed = _fixed(jobs, req)
    best = None
    # (fused: the candidates are ranked with the initial plan, which fuses every group
    # the loader can take; the winner's plan is then decided on the model, per tensor)
    for hw in cands:
        point = _schedule_point(req, hw, jobs, fixed, decide=False)
        if point is None:
            continue
        if best is None or point[0] < best[0]:
            best = point
    if best is not None and best[1].fuse:
        best = _schedule_point(req, best[1], jobs, fixed) or best
    if best is None:
        bad = _first_unfit(jobs, cands, req, fixed)
        raise EfgenError(f"no tiling of {bad.layer} {bad.phase.upper()} fits the buffers "
                         "of any design that fits the board", where=f"layer {bad.layer}",
                         fix="check the schedule overrides, or use a larger board")
    notes = (f"{len(cands)} hardware candidates fully scheduled",)
    if fused(req) and not best[1].fuse:
        notes += ("--fuse: the restructured-BN units fit beside no array; unfused",)
    return _design(req, best[1], jobs, best[2], notes, best[3])


def _tiling_score(req: Request, hw: HwParams, jobs):
    """Per layer-phase score of a tiling: cycles for latency (and EDP, which does not
    split by layer), joules for the energy objective, words moved for dram."""
    if req.objective == "dram":
        return engine.dram_score
    if req.objective != "energy":
        return None
    k = energy_constants(req.board, hw.precision, hw)
    wbytes = word_bits(hw.precision) / 8
    acc = np.asarray([bram_accesses_per_cycle(hw, j.phase) for j in jobs])[:, None]

    def score(res):
        words = res["read_words"] + res["write_words"]
        return energy_joules(res["cycles"] / (hw.clock_mhz * 1e6), 0.0,
                             res["compute_cycles"] * acc + words, words * wbytes, k)
    return score


def _schedule_point(req: Request, hw: HwParams, jobs, fixed, plan=None, decide=True):
    """(sort key, hw, per-job choice, plan) for one hardware point, or None if a job
    cannot fit. With ``hw.fuse`` the restructured-BN plan is ``plan``, or decided here
    on cycles (``decide``), or the initial plan (efgen.model.restructure)."""
    if hw.fuse:
        from efgen.model import restructure

        if plan is None and decide:
            k = (energy_constants(req.board, hw.precision, hw)
                 if req.objective == "energy" else None)
            plan, _res = restructure.decide(req.net, req.batch, hw, word_bits(hw.precision) / 8,
                                            ddr_bytes_per_cycle(req.board, hw.clock_mhz),
                                            req.momentum, fixed, energy=k,
                                            dram=req.objective == "dram")
        elif plan is None:
            plan = restructure.initial_plan(req.net)
        jobs = restructure.fused_jobs(req.net, req.batch, plan)
    res = engine.choose(jobs, hw, word_bits(hw.precision) / 8,
                        ddr_bytes_per_cycle(req.board, hw.clock_mhz), fixed=fixed,
                        score=_tiling_score(req, hw, jobs))
    if not np.all(np.isfinite(res["cycles"])):
        return None
    seconds, joules, dram = _score(req, hw, jobs, res, _aux_totals(req, hw, plan))
    obj = {"latency": seconds, "energy": joules, "edp": seconds * joules,
           "dram": dram + 1e-12 * seconds}[req.objective]
    use = resource_use(hw, req.board)
    key = (round(obj, 15), use.dsp, use.bram18,
           (hw.tm, hw.tn, hw.p, hw.ifm_depth, hw.ofm_depth, hw.wbuf_depth, hw.weight_mem))
    return key, hw, res, plan


def _design(req: Request, hw: HwParams, jobs, res, notes=(), plan=None) -> Design:
    sched = tuple(PhaseSchedule(j.layer, j.phase, int(res["tr"][i]), int(res["tc"][i]),
                                int(res["mc"][i]), engine.ORDERS[int(res["order"][i])])
                  for i, j in enumerate(jobs))
    return Design(net=net_to_doc(req.net), board=req.board.name, batch=req.batch, hw=hw,
                  schedule=sched, train_last=req.train_last, objective=req.objective,
                  sgd_momentum=req.momentum, notes=tuple(notes),
                  training=req.training.to_doc() if req.training is not None else None,
                  fusion=plan.to_doc(req.net) if plan is not None else None)


def schedule_fixed(req: Request, hw: HwParams) -> Design | None:
    """Schedule every layer-phase on the given hardware; None if some layer cannot fit
    its buffers. Resources are not checked here (see efgen.model.resources.over_caps)."""
    jobs = request_jobs(req)
    point = _schedule_point(req, hw, jobs, _fixed(jobs, req))
    return None if point is None else _design(req, hw, jobs, point[2], plan=point[3])


def _first_unfit(jobs, cands, req, fixed):
    hw = cands[-1] if cands else base_hw(req)
    res = engine.choose(jobs, hw, word_bits(hw.precision) / 8,
                        ddr_bytes_per_cycle(req.board, hw.clock_mhz), fixed=fixed)
    for i, j in enumerate(jobs):
        if not np.isfinite(res["cycles"][i]):
            return j
    return jobs[0]


# ---- user input: --tiles and the override file ---------------------------------------------

def parse_tiles(text: str) -> tuple[int, int]:
    """``Tm=16,Tn=16`` -> (16, 16). A P other than 1 is refused: the caller (adapt) runs
    a P = 1 array."""
    tm, tn, p = parse_array(text)
    if p not in (None, 1):
        raise EfgenError(f"--tiles '{text}': this command runs P = 1 only",
                         where="--tiles P", fix="drop P= from --tiles (efgen build and "
                         "efgen cosim take P)")
    return tm, tn


def parse_array(text: str) -> tuple[int, int, int | None]:
    """``Tm=16,Tn=16[,P=2]`` -> (16, 16, 2 or None)."""
    vals: dict[str, int] = {}
    for part in text.split(","):
        key, _, v = part.partition("=")
        key = key.strip().lower()
        if key not in ("tm", "tn", "p") or not v.strip().isdigit() or int(v) < 1:
            raise EfgenError(f"cannot read --tiles '{text}'", where="--tiles",
                             fix="write --tiles Tm=16,Tn=16 or Tm=16,Tn=8,P=2 (positive integers)")
        vals[key] = int(v)
    if not {"tm", "tn"} <= set(vals):
        raise EfgenError(f"--tiles '{text}' must give both Tm and Tn", where="--tiles",
                         fix="write --tiles Tm=16,Tn=16")
    return vals["tm"], vals["tn"], vals.get("p")


OVERRIDE_KEYS = {"tr": int, "tc": int, "mc": int, "order": str}


def load_overrides(path: str, net: Net) -> dict[tuple[str, str], dict[str, Any]]:
    """Per-layer schedule overrides::

        layers:
          conv1_conv:
            fp: {tr: 8, tc: 32, order: wo}     # mc optional (default: largest that fits)
    """
    doc = read_yaml(path, "override file")
    if not isinstance(doc, dict) or set(doc) != {"layers"} or not isinstance(doc["layers"], dict):
        raise EfgenError("an override file is a mapping with one key 'layers'", file=path,
                         fix="write layers: {<layer>: {fp: {tr: .., tc: ..}}}")
    names = {l.name: l for l in net}
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for lname, phases in doc["layers"].items():
        where = f"layers.{lname}"
        if lname not in names or not names[lname].is_weighted:
            from efgen.frontend.ir import did_you_mean
            hint = did_you_mean(str(lname), [n for n, l in names.items() if l.is_weighted])
            raise EfgenError(f"'{lname}' is not a conv or linear layer of {net.name}",
                             file=path, where=where, fix=f"{hint}name a conv/linear layer")
        if not isinstance(phases, dict):
            raise EfgenError("expected a mapping of phases", file=path, where=where,
                             fix="write fp: {tr: .., tc: ..}")
        for ph, spec in phases.items():
            w = f"{where}.{ph}"
            if ph not in PHASES:
                raise EfgenError(f"unknown phase '{ph}'", file=path, where=w,
                                 fix=f"use one of {', '.join(PHASES)}")
            if not isinstance(spec, dict):
                raise EfgenError("expected {tr: .., tc: .., order: ..}", file=path, where=w,
                                 fix="write e.g. {tr: 8, tc: 32}")
            for k, v in spec.items():
                if k not in OVERRIDE_KEYS:
                    raise EfgenError(f"unknown key '{k}'", file=path, where=f"{w}.{k}",
                                     fix=f"valid keys: {', '.join(OVERRIDE_KEYS)}")
                t = OVERRIDE_KEYS[k]
                if not isinstance(v, t) or isinstance(v, bool) or (t is int and v < 1):
                    raise EfgenError(f"'{k}' must be {'a positive integer' if t is int else 'a string'}"
                                     f", got {v!r}", file=path, where=f"{w}.{k}",
                                     fix="fix the value")
            if "order" in spec and spec["order"] not in LOOP_ORDERS:
                raise EfgenError(f"unknown loop order '{spec['order']}'", file=path,
                                 where=f"{w}.order", fix=f"use one of {', '.join(LOOP_ORDERS)}")
            if "tr" not in spec or "tc" not in spec:
                raise EfgenError("an override needs both 'tr' and 'tc'", file=path, where=w,
                                 fix="add the missing one")
            out[(lname, ph)] = {"tr": spec["tr"], "tc": spec["tc"],
                                "order": spec.get("order", "wo"), "mc": spec.get("mc")}
    return out


__all__ = ["Request", "schedule", "schedule_fixed", "base_hw", "parse_tiles", "load_overrides", "hardware_candidates",
           "RESOURCES", "bram18_units"]


def fusion_comparison(net: Net, design: Design, board: Board, ev: dict) -> dict:
    """The fused Design's decisions and its totals next to the unfused step's on the
    same array and buffers (what ``--no-fuse`` schedules there, without overrides), for
    the report; a function of the Design alone, so design.json regenerates it. Here, not
    in evaluate, because it schedules."""
    from efgen.model.restructure import figures

    hw = design.hw
    req = Request(net=net, board=board, batch=design.batch, clock_mhz=hw.clock_mhz,
                  objective=design.objective, precision=hw.precision, tm=hw.tm, tn=hw.tn,
                  train_last=design.train_last, momentum=design.sgd_momentum, p=hw.p,
                  pack=hw.pack)
    plain = schedule_fixed(req, replace(hw, fuse=False))
    t = ev["totals"]
    out = {"decisions": dict(design.fusion), "fused": figures(t, ev["rows"])}
    if plain is not None:
        ev0 = evaluate_design(net, plain, board)
        out["no_fuse"] = figures(ev0["totals"], ev0["rows"])
    return out


def evaluate_for_report(net: Net, design: Design, board: Board) -> dict:
    """:func:`efgen.model.evaluate.evaluate_design`, with the fused-vs-unfused comparison
    of a fused Design in its totals (``fusion``)."""
    ev = evaluate_design(net, design, board)
    if design.fusion is not None:
        ev["totals"]["fusion"] = fusion_comparison(net, design, board, ev)
    return ev
