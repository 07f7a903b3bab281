"""The training methods of issue 15 on ResNet-20 (CIFAR) and ResNet-18 (ImageNet), ZCU102.

For each net: full back-propagation, gradient filtering (r = 2, 4 on the last 2 and the
last 4 convs), error-map pruning (keep 0.9, 0.7 on every conv), stochastic mini-batch
dropping (p = 0.5), selective layer update (keep 0.5 on every skippable residual block,
with the gates and the host runtime's gathers, add and scatter), and MobileTL (BN shift-only, last 3 residual blocks trained; next to
the same freezing with full BN). Every configuration is scheduled on the baseline's
hardware (the design efgen generates for full back-propagation), so the rows differ by
the method only. Figures are the analytical model's, per training step (expected over the
SMD drop), batch 32, FP32: MACs per phase, cycles, images/s, DRAM traffic,
saved-activation memory (words kept from FP for the backward pass, 4 bytes each) and
energy (estimated constants: rank, do not quote).

    .venv/bin/python benchmarks/bench_methods.py [--nets resnet20,resnet18] [--batch 32]
"""

from __future__ import annotations

import argparse
import time

from efgen.frontend import load_net
from efgen.frontend.boards import load_board
from efgen.methods.compare import evaluate_config
from efgen.methods.spec import parse_training
from efgen.model.schedule import Request, schedule
from efgen.textable import format_table

CONFIGS = [
    ("baseline (full BP)", None),
    ("GF r=2, last 2 convs", {"gradient_filter": {"r": 2, "last": 2}}),
    ("GF r=2, last 4 convs", {"gradient_filter": {"r": 2, "last": 4}}),
    ("GF r=4, last 2 convs", {"gradient_filter": {"r": 4, "last": 2}}),
    ("GF r=4, last 4 convs", {"gradient_filter": {"r": 4, "last": 4}}),
    ("EMP keep 0.9", {"error_pruning": {"keep": 0.9, "layers": "all"}}),
    ("EMP keep 0.7", {"error_pruning": {"keep": 0.7, "layers": "all"}}),
    ("SMD p=0.5", {"minibatch_drop": {"p": 0.5}}),
    ("SLU keep 0.5, skippable blocks", {"layer_update": {"keep": 0.5}}),
    ("last 3 blocks, full BN", {"train_last_blocks": 3}),
    ("MobileTL: BN shift-only, last 3 blocks", {"batchnorm": "shift_only",
                                                "train_last_blocks": 3}),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nets", default="resnet20,resnet18")
    ap.add_argument("--board", default="zcu102")
    ap.add_argument("--batch", type=int, default=32)
    args = ap.parse_args()
    board = load_board(args.board)
    for name in args.nets.split(","):
        t0 = time.perf_counter()
        net = load_net(name)
        req = Request(net=net, board=board, batch=args.batch)
        hw = schedule(req).hw
        rows = []
        base = None
        for label, doc in CONFIGS:
            t = parse_training(doc, net, "bench_methods") if doc else None
            r = evaluate_config(net, t, board, hw, args.batch, req)
            base = base or r
            m = r["macs"]
            rows.append([label, f"{m['fp'] / 1e9:.2f}", f"{m['bp'] / 1e9:.2f}",
                         f"{m['wu'] / 1e9:.2f}", f"{r['cycles'] / 1e6:.2f}",
                         f"{1 - r['cycles'] / base['cycles']:.1%}",
                         f"{r['images_per_s']:.1f}", f"{r['dram_bytes'] / 1e6:.1f}",
                         f"{r['saved_words'] * 4 / 1e6:.1f}", f"{r['energy_j']:.3f}"])
        print(f"\n{name} on {board.name}, batch {args.batch}, fp32, Tm x Tn = {hw.tm} x "
              f"{hw.tn} at {hw.clock_mhz:g} MHz (the baseline's hardware for every row); "
              f"{time.perf_counter() - t0:.1f} s")
        print(format_table(["configuration", "FP GMAC", "BP GMAC", "WU GMAC", "Mcycles",
                            "cycle saving", "images/s", "DRAM MB", "saved act. MB",
                            "energy J"], rows))
    print("\nPer training step; SMD rows are expected values (half the steps run no "
          "FP/BP/WU but still apply the SGD update, as E2-Train does). Accuracy is not "
          "modelled: measure it for your data (README.md).")


if __name__ == "__main__":
    main()
