"""Time one golden training step (FP + loss + BP + WU + SGD) of ResNet-20, batch 32.

Target (foundation issue): at most 2 s on a 2-core machine. Prints the median of
several runs and the per-phase breakdown is left to profilers; this is the figure.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from efgen.frontend import load_net
from efgen.golden.model import init_state, synthetic_batch, train_step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--net", default="resnet20")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    net = load_net(args.net)
    state = init_state(net, seed=0, dtype=np.float32)
    x, labels = synthetic_batch(net, args.batch, seed=1)
    train_step(net, state, x, labels)  # warm-up (BLAS threads, caches)
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        train_step(net, state, x, labels)
        times.append(time.perf_counter() - t0)
    macs = 3 * net.totals()["fp_macs"] * args.batch
    med = statistics.median(times)
    print(f"golden train_step {args.net} batch {args.batch} float32: "
          f"median {med:.3f} s, min {min(times):.3f} s, max {max(times):.3f} s "
          f"over {args.repeat} runs ({2 * macs / med / 1e9:.1f} GFLOP/s of FP+BP+WU conv/linear work)")


if __name__ == "__main__":
    main()
