"""Issue 13: the third unrolled dimension P and first-layer tap packing (``--parray``).

For each net (resnet20 / zcu102 / batch 32 / 100 MHz with and without fusion, and
vgg16-bn-224 at batch 2, resnet18 and vgg16-cifar at batch 32, all with and without
fusion) it schedules the design twice: *before*, P = 1 without packing (today's
designs, the default build), and *after*, ``--parray`` (the scheduler searches
(Tm, Tn, P) and packs shallow layers); when *after* picks another Tm x Tn, *same* is
``--parray`` on the *before* design's Tm x Tn. Per design it prints the array (Tm, Tn, P), its
DSP/LUT/BRAM18, the conv layer-phases' efficiency against the array's peak (useful MACs
over cycles x Tm*Tn*P), conv1's FP and WU lane use (useful MACs over compute cycles x
the array's MACs; the phase's efficiency with its loads in brackets), and the whole
step's GFLOPS and share of the array's peak.

Then the comparison that chose what P spans (``--decide``, default on): the net's conv
jobs on fixed arrays with the P lanes over adjacent output pixels of a tile row (the
design) or over images of the batch (efgen.model.engine.evaluate's ``p_dim``).

``--target rtl``: the reference RTL flow instead (``efgen build --target rtl``: arrays
whose RTL fits the board's caps, P in 1, 2, 4, packing at P = 1 only, ``--pack`` for the
*same* row's packing), with the RTL's own DSP/LUT/BRAM18 (efgen.rtl.cost.rtl_use).

Every figure is the analytical model's; P > 1 and packing run in C-simulation
(tests/test_csim.py) and, P in 1, 2, 4 or packing at P = 1, in the RTL's co-simulation
(tests/test_rtl_top.py PIX_SETS and PACK_SETS, within 3% of the model).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

NETS = (("resnet20", 32), ("vgg16-bn-224", 2), ("resnet18", 32), ("vgg16-cifar", 32))
TARGETS = {"resnet20": {"conv": 0.85, "conv1": 0.50, "step_fused": 0.75},
           "vgg16-bn-224": {"step_fused": 0.88}}


def figures(net_name: str, board_name: str, batch: int, clock: float, fuse: bool,
            parray: bool, tiles: tuple[int, int] | None = None, target: str = "hls") -> dict:
    from efgen.frontend import load_net
    from efgen.frontend.boards import load_board
    from efgen.model.evaluate import evaluate_design
    from efgen.model.resources import resource_use
    from efgen.model.schedule import Request, schedule

    net, board = load_net(net_name), load_board(board_name)
    t0 = time.perf_counter()
    tm, tn = tiles or (None, None)
    rtl = target == "rtl"
    d = schedule(Request(net, board, batch=batch, clock_mhz=clock, fuse=fuse, parray=parray,
                         tm=tm, tn=tn, target=target,
                         # the RTL packs only when asked, at P = 1: the *same* row asks
                         pack=True if rtl and parray and tiles else None,
                         p=1 if rtl and parray and tiles else None))
    secs = time.perf_counter() - t0
    ev = evaluate_design(net, d, board)
    hw, t = d.hw, ev["totals"]
    conv = [r for r in ev["rows"] if r.engine == "conv"]
    macs, cyc = sum(r.macs for r in conv), sum(r.cycles for r in conv)
    first = [l.name for l in net if l.op == "conv"][0]
    c1 = {r.phase: (r.macs / (r.compute_cycles * hw.macs), r.macs / (r.cycles * hw.macs))
          for r in conv if r.layer == first}
    if rtl:
        from efgen.frontend.boards import PS_ADDR_BITS
        from efgen.rtl.cost import rtl_use
        from efgen.rtl.top import net_kmax

        u = rtl_use(hw, net_kmax(net), "dsp", PS_ADDR_BITS.get(board.family, 32))
        dsp, lut, bram18 = u["dsp"], u["lut"], u["bram18"]
    else:
        use = resource_use(hw, board)
        dsp, lut, bram18 = use.dsp, use.lut, use.bram18
    return {"array": (hw.tm, hw.tn, hw.p), "pack": hw.pack, "dsp": dsp, "lut": lut,
            "bram18": bram18, "conv_eff": macs / (cyc * hw.macs), "conv1": c1,
            "gflops": t["effective_gflops"], "peak_frac": t["roofline_fraction"],
            "peak": t["peak_gflops"], "fused": d.fusion is not None, "secs": secs}


def fmt(f: dict) -> str:
    tm, tn, p = f["array"]
    c1 = " ".join(f"{ph} {a:4.0%} ({b:3.0%})" for ph, (a, b) in sorted(f["conv1"].items())
                  if ph in ("fp", "wu"))
    return (f"{tm:2d}x{tn:2d}x{p}{'+pack' if f['pack'] else '     '} {f['dsp']:6,.0f} "
            f"{f['lut']:8,d} {f['bram18']:6,d}  {f['conv_eff']:5.1%}  {c1:26s} "
            f"{f['gflops']:6.2f} {f['peak_frac']:6.1%}")


def decide(board_name: str, clock: float) -> list[str]:
    """Conv-engine cycles of each net with P over pixels and over images, same arrays."""
    import numpy as np

    from efgen.frontend import load_net
    from efgen.frontend.boards import load_board
    from efgen.model import engine
    from efgen.model.evaluate import ddr_bytes_per_cycle
    from efgen.model.schedule import Request, schedule

    board = load_board(board_name)
    out = [f"{'net':14s} {'batch':>5s} {'array':>8s} {'pixels':>8s} {'images':>8s}"]
    for name, batch in NETS:
        net = load_net(name)
        hw0 = schedule(Request(net, board, batch=batch, clock_mhz=clock, tm=16, tn=16, p=1)).hw
        jobs = engine.jobs_for(net, batch)
        macs = sum(j.macs for j in jobs)
        for tm, tn, p in ((16, 8, 2), (8, 8, 4)):
            hw = replace(hw0, tm=tm, tn=tn, p=p)
            eff = []
            for dim in ("pixels", "images"):
                r = engine.choose(jobs, hw, 4, ddr_bytes_per_cycle(board, clock), p_dim=dim)
                eff.append(macs / (float(np.sum(r["cycles"])) * hw.macs))
            out.append(f"{name:14s} {batch:5d} {tm:2d}x{tn:2d}x{p} {eff[0]:8.1%} {eff[1]:8.1%}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--board", default="zcu102")
    ap.add_argument("--clock", type=float, default=100.0)
    ap.add_argument("--nets", nargs="*", default=[n for n, _ in NETS])
    ap.add_argument("--no-decide", action="store_true", help="skip the pixels/images table")
    ap.add_argument("--target", choices=("hls", "rtl"), default="hls",
                    help="the flow whose designs and resources to report (default hls)")
    args = ap.parse_args()
    batches = dict(NETS)
    print(f"{args.board}, {args.clock:g} MHz, {args.target} flow (model figures)")
    print(f"{'net':15s} {'fuse':4s} {'':6s} {'TmxTnxP':13s} {'DSP':>6s} {'LUT':>8s} "
          f"{'BRAM18':>6s}  {'conv':>5s}  {'conv1 lane use (phase)':26s} {'GFLOPS':>6s} "
          f"{'peak':>6s}")
    for name in args.nets:
        batch = batches.get(name, 32)
        for fuse in (False, True):
            kw = {"target": args.target}
            before = figures(name, args.board, batch, args.clock, fuse, False, **kw)
            after = figures(name, args.board, batch, args.clock, fuse, True, **kw)
            # --parray with the before design's Tm x Tn (P searched, packing): what P and
            # packing do on the same array when the scheduler's pick is another one
            same = (figures(name, args.board, batch, args.clock, fuse, True, before["array"][:2],
                            **kw)
                    if after["array"][:2] != before["array"][:2] else None)
            for tag, f in (("before", before), ("after", after), ("same", same)):
                if f is not None:
                    print(f"{name + '/b' + str(batch):15s} {'yes' if f['fused'] else 'no':4s} "
                          f"{tag:6s} {fmt(f)}   ({f['secs']:.1f} s)")
    if not args.no_decide and args.target == "hls":
        print("\nWhat P spans: conv-engine efficiency (useful MACs / cycles x Tm*Tn*P), "
              "unfused jobs")
        print("\n".join(decide(args.board, args.clock)))


if __name__ == "__main__":
    main()
