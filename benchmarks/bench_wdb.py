"""Issue 13 requirement 3: double-buffered weight chunks (``--weight-db``, HwParams.wdb).

With one weight buffer every chunk's weight load is exposed (the array waits for it);
with two, chunk k+1's weights load while the array computes chunk k (the reference RTL's
weight streamer, measured in co-simulation: tests/test_rtl_top.py
test_double_buffered_weights; efgen/model/engine.py prices what it measured).

Prints, from the analytical model:

* vgg16-bn-224 / zcu102 / batch 2 configured like EF-Train (``--tiles Tm=16,Tn=16
  --clock 100``): per conv5 FP/BP layer-phase the exposed weight-load share (the weight
  load cycles the phase pays over its cycles) with one and with two weight buffers, and
  the whole step's GFLOPS and BRAM18 both ways;
* resnet20 / zcu102 / batch 32 at the default build (board clock) with ``--weight-db
  off``, ``on`` and ``auto`` (the scheduler weighs the second buffer's BRAM): array,
  BRAM18, step GFLOPS.

* WU's write-back beside the next chunk's accumulation (two weight buffers: the HLS C++'s
  run_chunk_wu_wdb, and the reference RTL's, measured in co-simulation:
  tests/test_rtl_top.py test_double_buffered_weights): per WU layer-phase and for the
  whole step, the write-back cycles and what the overlap hides, the sum over chunk
  boundaries of min(S_k, C_{k+1}) (the model's ``wu_wb_hidden``, counted in its cycles),
  for vgg16-bn-224 / batch 2 and resnet20 / batch 32 (zcu102, 100 MHz,
  ``--weight-db on``).

The schedules are the scheduler's for each setting (the tiling may change with the
option); ``same tiling`` re-prices the single-buffer design's own tiling with two buffers.
"""

from __future__ import annotations

import argparse
from dataclasses import replace


def _eval(net, board, d):
    from efgen.model import engine
    from efgen.model.evaluate import ddr_bytes_per_cycle, evaluate_design
    from efgen.model.coeffs import word_bits

    ev = evaluate_design(net, d, board)
    jobs = engine.jobs_for(net, d.batch)
    tiles = [(d.tiling(j.layer, j.phase).tr, d.tiling(j.layer, j.phase).tc,
              d.tiling(j.layer, j.phase).mc, d.tiling(j.layer, j.phase).order) for j in jobs]
    res = engine.evaluate_chosen(jobs, tiles, d.hw, word_bits(d.hw.precision) / 8,
                                 ddr_bytes_per_cycle(board, d.hw.clock_mhz), d.layout,
                                 d.sgd_momentum)
    per = {(j.layer, j.phase): (float(res["wload_cycles"][i]), float(res["cycles"][i]))
           for i, j in enumerate(jobs)}
    wu = {j.layer: (float(res["sgd_cycles"][i]), float(res["wu_wb_hidden"][i]),
                    float(res["cycles"][i]))
          for i, j in enumerate(jobs) if j.phase == "wu"}
    return ev, per, wu


def wu_overlap(name: str, batch: int, clock: float = 100.0, **req) -> list[str]:
    """WU's write-back beside the next chunk's accumulation: what it hides (counted by the
    model; see the module docstring)."""
    from efgen.frontend import load_net
    from efgen.frontend.boards import load_board
    from efgen.model.schedule import Request, schedule

    net, board = load_net(name), load_board("zcu102")
    d = schedule(Request(net, board, batch=batch, clock_mhz=clock, weight_db="on", **req))
    ev, _, wu = _eval(net, board, d)
    t = ev["totals"]
    out = [f"{name} / zcu102 / batch {batch} / {d.hw.tm}x{d.hw.tn} / {clock:g} MHz / "
           "--weight-db on: WU write-back overlap (counted)"]
    out.append(f"  {'WU layer-phase':18s} {'cycles':>12s} {'write-back':>11s} "
               f"{'hidden':>10s} {'of WU':>6s}")
    # (sgd_cycles is the exposed write-back: the whole one is it plus what is hidden)
    for layer, (sgd, hide, cyc) in wu.items():
        if hide > 0:
            out.append(f"  {layer:18s} {cyc:>12,.0f} {sgd + hide:>11,.0f} {hide:>10,.0f} "
                       f"{100 * hide / (cyc + hide):5.1f}%")
    sgd = sum(v[0] + v[1] for v in wu.values())
    hide = sum(v[1] for v in wu.values())
    cyc = t["cycles"]
    if hide == 0:
        out.append("  (every WU layer-phase is one weight chunk: nothing to overlap)")
    out.append(f"  step: {cyc:,.0f} cycles, WU write-back {sgd:,.0f} "
               f"({100 * sgd / (cyc + hide):.1f}% without the overlap), hidden {hide:,.0f} "
               f"({100 * hide / (cyc + hide):.1f}%): {t['effective_gflops'] * cyc / (cyc + hide):.2f}"
               f" -> {t['effective_gflops']:.2f} GFLOPS")
    return out


def vgg16_conv5(clock: float = 100.0) -> list[str]:
    from efgen.frontend import load_net
    from efgen.frontend.boards import load_board
    from efgen.model.resources import resource_use
    from efgen.model.schedule import Request, schedule

    net, board = load_net("vgg16-bn-224"), load_board("zcu102")
    out = [f"vgg16-bn-224 / zcu102 / batch 2 / Tm=16,Tn=16 / {clock:g} MHz"]
    ds = {k: schedule(Request(net, board, batch=2, clock_mhz=clock, tm=16, tn=16, weight_db=k))
          for k in ("off", "on")}
    same = replace(ds["off"], hw=replace(ds["off"].hw, wdb=True))
    evs = {k: _eval(net, board, d)[:2] for k, d in (("off", ds["off"]), ("on", ds["on"]),
                                                     ("same", same))}
    conv5 = [l.name for l in net if l.op == "conv" and "conv5" in l.name] or \
        [l.name for l in net if l.op == "conv"][-3:]
    out.append(f"  {'layer-phase':22s} {'one buffer':>18s} {'two (same tiling)':>22s} "
               f"{'two (scheduled)':>20s}")
    for name in conv5:
        for ph in ("fp", "bp"):
            cells = []
            for k in ("off", "same", "on"):
                w, c = evs[k][1][(name, ph)]
                cells.append(f"{100 * w / c:5.1f}% of {c:>9,.0f}")
            out.append(f"  {name + ' ' + ph.upper():22s} " + "  ".join(cells))
    for k, label in (("off", "one buffer"), ("same", "two, same tiling"), ("on", "two, scheduled")):
        ev = evs[k][0]
        d = ds["off"] if k == "off" else (same if k == "same" else ds["on"])
        use = resource_use(d.hw, board)
        t = ev["totals"]
        out.append(f"  step, {label:18s}: {t['effective_gflops']:6.2f} GFLOPS "
                   f"({100 * t['roofline_fraction']:.1f}% of {t['peak_gflops']:.1f}), "
                   f"{t['cycles']:,.0f} cycles, BRAM18 {use.bram18:,} (weights {use.bram_wbuf:,})")
    return out


def resnet20() -> list[str]:
    from efgen.frontend import load_net
    from efgen.frontend.boards import load_board
    from efgen.model.evaluate import evaluate_design
    from efgen.model.resources import resource_use
    from efgen.model.schedule import Request, schedule

    net, board = load_net("resnet20"), load_board("zcu102")
    out = [f"resnet20 / zcu102 / batch 32 / default build ({board.clock_mhz:g} MHz)"]
    for k in ("off", "on", "auto"):
        d = schedule(Request(net, board, batch=32, weight_db=k))
        t = evaluate_design(net, d, board)["totals"]
        use = resource_use(d.hw, board)
        out.append(f"  --weight-db {k:4s}: {d.hw.tm}x{d.hw.tn} wdb={d.hw.wdb!s:5s} "
                   f"wbuf {d.hw.wbuf_depth} BRAM18 {use.bram18:,} (weights {use.bram_wbuf:,}) "
                   f"DSP {use.dsp:,.0f} LUT {use.lut:,}: {t['effective_gflops']:6.2f} GFLOPS "
                   f"({100 * t['roofline_fraction']:.1f}% of peak), {t['cycles']:,.0f} cycles")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-resnet20", action="store_true")
    args = ap.parse_args()
    for line in vgg16_conv5():
        print(line)
    if not args.skip_resnet20:
        for line in resnet20():
            print(line)
    for line in wu_overlap("vgg16-bn-224", 2, tm=16, tn=16):
        print(line)
    if not args.skip_resnet20:
        for line in wu_overlap("resnet20", 32):
            print(line)


if __name__ == "__main__":
    main()
