"""What the generated C++ of a fused step runs (issue 12, part 3): the vector engine's
whole-tensor passes and the DRAM image of one training step's program, fused against
``--no-fuse`` on the same array (efgen.hls.program.build_program; no simulation, the
program's structure only).

A whole-tensor pass is one loop of the vector engine over a feature map or error: BN_FP
three (mean, centred variance, normalise), BN_FIN one when it materialises the BN's
output (a[7]), BN_BP one for its sums unless a BP store accumulated them (FLAG_SUMS) and
one for its dx (FLAG_DX), every other vector descriptor one
(efgen.hls.fused.whole_tensor_passes). For the fused program the model's count of the
same passes (efgen.model.restructure.whole_tensor_passes) and the differences between
the model's plan and the program (program.json's ``fusion``: none expected) are printed
beside it. The C-simulation of these programs is checked against the golden step in
tests/test_fused_csim.py.

    python benchmarks/bench_fused_program.py [--nets resnet20 ...] [--batch 32]
"""

from __future__ import annotations

import argparse

NETS = ("tiny", "resnet20", "resnet20-b", "vgg16-cifar")


def passes(prog) -> tuple[int, dict]:
    from efgen.hls.fused import whole_tensor_passes

    return whole_tensor_passes(prog)


def main() -> None:
    from efgen.frontend import load_net
    from efgen.frontend.boards import load_board
    from efgen.hls.program import build_program
    from efgen.model import restructure as R
    from efgen.model.evaluate import ddr_bytes_per_cycle
    from efgen.model.schedule import Request, schedule

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--board", default="zcu102")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--array", default="16x16", help="Tm x Tn (both builds)")
    ap.add_argument("--nets", nargs="*", default=list(NETS))
    args = ap.parse_args()
    tm, tn = (int(v) for v in args.array.split("x"))
    board = load_board(args.board)
    print(f"{args.board}, batch {args.batch}, {tm}x{tn}: the generated program's vector "
          "passes and DRAM image")
    for name in args.nets:
        net = load_net(name)
        for fuse in (False, True):
            design = schedule(Request(net, board, batch=args.batch, tm=tm, tn=tn, fuse=fuse))
            prog = build_program(net, design)
            n, per_op = passes(prog)
            print(f"  {name:12s} {'fused' if fuse else 'no-fuse':8s} whole-tensor vector passes "
                  f"{n:4d}  image words {prog.words:>12,}  {per_op}")
            if fuse and design.hw.fuse:
                aux = R.fused_aux(net, args.batch, design.hw, 32,
                                  ddr_bytes_per_cycle(board, design.hw.clock_mhz),
                                  R.Plan.from_doc(design.fusion))
                print(f"  {'':12s} {'':8s} the model's passes {R.whole_tensor_passes(aux):4d}; "
                      f"differences from the plan: {prog.fusion['differences'] or 'none'}")


if __name__ == "__main__":
    main()
