"""Time a full design-space sweep: every point fully scheduled and evaluated.

Usage: python3 benchmarks/bench_sweep.py [--file configs/sweeps/zcu102-resnet20.yaml]
                                         [--jobs N] [--points-only]

Prints the cost of one hardware point (schedule_fixed, evaluate_design), then runs the
sweep into a temporary folder (deleted afterwards) and prints the wall time, the number
of points fully scheduled, and points per second. Target (issue): at least 2,000 fully
scheduled ResNet-20 points in at most 60 s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))   # run from a checkout
from efgen import dse as sweep  # noqa: E402


def one_point_ms(repeat: int = 20) -> tuple[float, float]:
    """Best-of-``repeat`` ms of schedule_fixed and of evaluate_design for ResNet-20 on a
    16 x 16 fp32 ZCU102 array (in this process, with the sweep's allocator settings)."""
    from efgen.frontend import load_net
    from efgen.frontend.boards import load_board
    from efgen.model.evaluate import evaluate_design
    from efgen.model.schedule import Request, base_hw, schedule_fixed

    from efgen.model.engine import tune_allocator

    tune_allocator()
    net, board = load_net("resnet20"), load_board("zcu102")
    req = Request(net, board, batch=32)
    hw = replace(base_hw(req), tm=16, tn=16, wbuf_depth=1024)
    ts, te = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        d = schedule_fixed(req, hw)
        t1 = time.perf_counter()
        evaluate_design(net, d, board)
        t2 = time.perf_counter()
        ts.append(t1 - t0)
        te.append(t2 - t1)
    return 1e3 * min(ts), 1e3 * min(te)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--file", default=str(ROOT / "configs/sweeps/zcu102-resnet20.yaml"))
    ap.add_argument("--jobs", type=int, default=None)
    ap.add_argument("--points-only", action="store_true",
                    help="only time one point, do not run the sweep")
    args = ap.parse_args(argv)

    s_ms, e_ms = one_point_ms()
    print(f"one ResNet-20 point (16x16 fp32, zcu102): schedule_fixed {s_ms:.1f} ms, "
          f"evaluate_design {e_ms:.1f} ms")
    if args.points_only:
        return
    jobs = args.jobs or sweep.default_jobs()
    tmp = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    try:
        t0 = time.perf_counter()
        s = sweep.run_sweep(args.file, tmp / "out", jobs=jobs, progress=sys.stderr.isatty())
        wall = time.perf_counter() - t0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    scheduled = s["fitting"] + s["unschedulable"]
    print(f"sweep {s['name']}: {s['points']:,} points, {scheduled:,} fully scheduled "
          f"({s['fitting']:,} fit, {s['unschedulable']:,} fit no tiling, "
          f"{s['over_caps']:,} over the caps: not scheduled)")
    print(f"wall time {wall:.1f} s with --jobs {jobs} on {os.cpu_count()} CPUs: "
          f"{scheduled / wall:.1f} scheduled points/s, "
          f"{1e3 * wall * jobs / max(scheduled, 1):.1f} core-ms per scheduled point "
          f"(incl. outputs and plots)")
    ok = scheduled >= 2000 and wall <= 60.0
    print(f"target (>= 2,000 scheduled points in <= 60 s): {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
