"""Time the golden conv ops on ResNet-20 (CIFAR-10, batch 32) layer shapes.

Usage: python3 benchmarks/bench_ops.py [--batch 32] [--repeat 5] [--dtype float32]

Prints ms per call of conv_fp / conv_bp / conv_wu for each distinct layer shape, then
an estimate of one full ResNet-20 training step's convolution time (each shape times
the number of such layers in the network; the first layer skips BP, as in training).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # run from a checkout
from efgen.golden import ops  # noqa: E402

# (name, N in, M out, H in, K, stride, padding, layers of this shape in ResNet-20, runs BP)
RESNET20_CONVS = [
    ("conv1  3->16 32x32 K3 S1", 3, 16, 32, 3, 1, 1, 1, False),
    ("16->16 32x32 K3 S1", 16, 16, 32, 3, 1, 1, 6, True),
    ("16->32 32x32 K3 S2", 16, 32, 32, 3, 2, 1, 1, True),
    ("32->32 16x16 K3 S1", 32, 32, 16, 3, 1, 1, 5, True),
    ("32->64 16x16 K3 S2", 32, 64, 16, 3, 2, 1, 1, True),
    ("64->64  8x8  K3 S1", 64, 64, 8, 3, 1, 1, 5, True),
]


def best_ms(fn, repeat: int) -> float:
    """Best wall time of ``repeat`` calls, in ms (best-of filters scheduler noise)."""
    fn()                                         # warm-up: allocator, BLAS threads
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * min(times)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    dt = np.dtype(args.dtype)
    print(f"batch {args.batch}, {dt}, best of {args.repeat}; ms per call")
    print(f"{'layer':28s} {'FP':>8s} {'BP':>8s} {'WU':>8s}   x layers")
    total = 0.0
    for name, n, m, h, k, s, p, count, bp in RESNET20_CONVS:
        x = rng.standard_normal((args.batch, n, h, h)).astype(dt)
        w = rng.standard_normal((m, n, k, k)).astype(dt)
        ho = ops.conv_out_size(h, k, s, p)
        dy = rng.standard_normal((args.batch, m, ho, ho)).astype(dt)
        t_fp = best_ms(lambda: ops.conv_fp(x, w, None, s, p), args.repeat)
        t_bp = best_ms(lambda: ops.conv_bp(dy, w, s, p, (h, h)), args.repeat)
        t_wu = best_ms(lambda: ops.conv_wu(dy, x, s, p, k), args.repeat)
        total += count * (t_fp + (t_bp if bp else 0.0) + t_wu)
        print(f"{name:28s} {t_fp:8.2f} {t_bp if bp else float('nan'):8.2f} {t_wu:8.2f}   x{count}")
    print(f"ResNet-20 convs, one training step (FP+BP+WU): {total:.0f} ms")


if __name__ == "__main__":
    main()
