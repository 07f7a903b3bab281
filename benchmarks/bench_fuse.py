"""Restructured batchnorm (issue 12): the fused step against ``--no-fuse`` on the same array.

For resnet20 / zcu102 / batch 32 / --clock 100 it prints the issue's three targets:
the vector engine's share of the step's cycles (target <= 10%), whole-step GFLOPS
(target >= 45) and DRAM bytes per step (target <= 60% of the unfused step's), then the
same figures for resnet20-b, resnet18, vgg16-cifar and vgg16-bn-224.

Every figure is the analytical model's (efgen/model/restructure.py): the generated HLS
C++ and the reference RTL run the unfused step, so the fused figures are not measured.
The no-fuse column schedules the fused design's array and buffers without fusion
(``efgen.model.schedule.fusion_comparison``); ``--no-fuse`` as scheduled from scratch is
printed beside it when it picks another array.
"""

from __future__ import annotations

import argparse
import time

NETS = ("resnet20", "resnet20-b", "resnet18", "vgg16-cifar", "vgg16-bn-224")


def figures(net: str, board: str, batch: int, clock: float) -> dict:
    import efgen

    t0 = time.perf_counter()
    acc = efgen.build(net, board, batch, clock=clock, fuse=True)
    t_fused = time.perf_counter() - t0
    plain = efgen.build(net, board, batch, clock=clock, fuse=False)
    f = acc.evaluation["totals"]["fusion"]
    hw, hw0 = acc.design.hw, plain.design.hw
    return {"fused": f["fused"], "same_array": f["no_fuse"],
            "no_fuse": plain.evaluation["totals"], "array": (hw.tm, hw.tn),
            "array_no_fuse": (hw0.tm, hw0.tn), "decisions": f["decisions"],
            "build_s": t_fused}


def compute_bound(net_name: str, board_name: str, batch: int, clock: float):
    """(compute-only GFLOPS cap, best whole fused-step GFLOPS, their arrays) over every
    Tm x Tn x P (with tap packing) that fits the board: the step's FLOPs over the conv
    jobs' compute cycles alone, i.e. with every load, store and vector pass free."""
    from efgen.errors import EfgenError
    from efgen.frontend import load_net
    from efgen.frontend.boards import load_board
    from efgen.model.evaluate import evaluate_design
    from efgen.model.schedule import Request, schedule

    net, board = load_net(net_name), load_board(board_name)
    cap, whole = (0.0, ""), (0.0, "")
    for tm in (4, 8, 12, 16, 20, 24, 32):
        for tn in (4, 8, 12, 16, 20, 24, 32):
            for p in (1, 2, 3, 4, 5, 6, 8):
                if not 128 <= tm * tn * p <= 512:
                    continue
                try:
                    d = schedule(Request(net, board, batch=batch, clock_mhz=clock, fuse=True,
                                         tm=tm, tn=tn, p=p, pack=True))
                except EfgenError:
                    continue
                ev = evaluate_design(net, d, board)
                t = ev["totals"]
                flops = t["effective_gflops"] * t["cycles"] / (clock * 1e6)
                comp = sum(r.compute_cycles for r in ev["rows"] if r.engine == "conv")
                name = f"{tm}x{tn}x{p}"
                cap = max(cap, (flops / (comp / (clock * 1e6)), name))
                whole = max(whole, (t["effective_gflops"], name))
    return cap[0], whole[0], cap[1], whole[1]


def stream_floor(acc) -> float:
    """DRAM bytes of ``acc``'s fused step if every conv/linear job read each of its
    streams once, with no halo and no re-read (any tiling moves at least this), plus the
    design's other rows as priced (vector passes, the weights' SGD); pad lanes of the
    reduction are not counted, so this is a lower bound, not a design."""
    from efgen.model import restructure as rs

    net, d = acc.net, acc.design
    words = 0.0
    for j in rs.fused_jobs(net, d.batch, rs.Plan.from_doc(d.fusion)):
        x = j.red * j.hs * j.ws * j.images
        o = j.out * j.ro * j.co * j.images
        words += x * (1 + j.in_extra) + (int(j.mask) + j.st_extra) * o
        # (WU: the error tiles and their y; its weights move in the SGD row)
        words += o * (1 + j.eo_extra) if j.phase == "wu" else o + j.out * j.red * j.k * j.k
    rest = sum(r.dram_bytes for r in acc.evaluation["rows"] if r.engine != "conv")
    return 4.0 * words + rest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--board", default="zcu102")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--clock", type=float, default=100.0)
    ap.add_argument("--nets", nargs="*", default=list(NETS))
    args = ap.parse_args()
    print(f"{args.board}, batch {args.batch}, {args.clock:g} MHz (model figures, not measured)")
    for net in args.nets:
        r = figures(net, args.board, args.batch, args.clock)
        a, b = r["fused"], r["same_array"]
        tm, tn = r["array"]
        print(f"\n{net}: fused Tm x Tn = {tm} x {tn} (build {r['build_s']:.1f} s)")
        print(f"  {'':34s} {'fused':>12s} {'no-fuse':>12s}")
        print(f"  {'cycles per step':34s} {a['cycles']:12,.0f} {b['cycles']:12,.0f}")
        print(f"  {'vector-engine share of cycles':34s} {a['vector_share']:12.1%} "
              f"{b['vector_share']:12.1%}")
        print(f"  {'whole-step GFLOPS':34s} {a['effective_gflops']:12.2f} "
              f"{b['effective_gflops']:12.2f}")
        print(f"  {'DRAM MB per step':34s} {a['dram_bytes'] / 1e6:12.1f} "
              f"{b['dram_bytes'] / 1e6:12.1f}   (fused/no-fuse {a['dram_bytes'] / b['dram_bytes']:.1%})")
        print(f"  {'DSP':34s} {a['dsp']:12,.0f} {b['dsp']:12,.0f}")
        if r["array_no_fuse"] != r["array"]:
            t = r["no_fuse"]
            print(f"  (--no-fuse from scratch picks {r['array_no_fuse'][0]} x "
                  f"{r['array_no_fuse'][1]}: {t['effective_gflops']:.2f} GFLOPS, "
                  f"{t['dram_bytes'] / 1e6:.1f} MB)")
        d = r["decisions"]
        print(f"  groups fused {len(d['groups_fused'])}, materialised "
              f"{len(d['groups_materialised'])} ({', '.join(d['groups_materialised']) or '-'}); "
              f"BN dx fused {len(d['bn_dx_fused'])}, materialised {len(d['bn_dx_materialised'])}")
        if net == "resnet20" and args.board == "zcu102" and args.batch == 32 and args.clock == 100:
            ok = lambda c: "met" if c else "NOT met"  # noqa: E731
            print(f"  issue 12 targets: vector share <= 10%: {ok(a['vector_share'] <= 0.10)}; "
                  f">= 45 GFLOPS: {ok(a['effective_gflops'] >= 45)}; DRAM <= 60%: "
                  f"{ok(a['dram_bytes'] <= 0.6 * b['dram_bytes'])}")
            conv0 = b["cycles"] - b["vector_cycles"]
            print(f"  bound: the unfused conv engine alone takes {conv0:,.0f} cycles, "
                  f"{a['effective_gflops'] * a['cycles'] / conv0:.2f} GFLOPS with no vector "
                  "work and no fused-load cost at all (filling the array is another issue)")
            import efgen

            e = efgen.build(net, args.board, args.batch, clock=args.clock, objective="energy",
                            fuse=True)
            fe = e.evaluation["totals"]["fusion"]["fused"]
            print(f"  --objective energy (tilings that move fewer bytes): "
                  f"{fe['effective_gflops']:.2f} GFLOPS, {fe['dram_bytes'] / 1e6:.1f} MB "
                  f"({fe['dram_bytes'] / b['dram_bytes']:.1%} of the latency design's no-fuse)")
            m = efgen.build(net, args.board, args.batch, clock=args.clock, objective="dram",
                            fuse=True)
            fm = m.evaluation["totals"]["fusion"]["fused"]
            print(f"  --objective dram (plan and tilings by bytes; {m.design.hw.tm} x "
                  f"{m.design.hw.tn}): {fm['effective_gflops']:.2f} GFLOPS, "
                  f"{fm['dram_bytes'] / 1e6:.1f} MB ({fm['dram_bytes'] / b['dram_bytes']:.1%} "
                  "of the latency design's no-fuse)")
            best = compute_bound(net, args.board, args.batch, args.clock)
            print(f"  every array that fits (Tm, Tn up to 32, P up to 8, packing): the conv "
                  f"engine's compute alone (no load, no vector pass) caps the step at "
                  f"{best[0]:.2f} GFLOPS ({best[2]}), the best whole fused step is "
                  f"{best[1]:.2f} GFLOPS ({best[3]})")
            lo = stream_floor(m)
            print(f"  floor: the dram design's plan with every stream of every conv job read "
                  f"once (no halo, no re-read) and its vector passes: {lo / 1e6:.1f} MB "
                  f"({lo / b['dram_bytes']:.1%})")


if __name__ == "__main__":
    main()
