"""Wall time of `efgen build --board zcu102 --net resnet20` (target: at most 3 s).

Runs the real command in a fresh process (interpreter start-up and imports included)
several times and prints the median, plus the scheduler's own share.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--board", default="zcu102")
    ap.add_argument("--net", default="resnet20")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    times = []
    with tempfile.TemporaryDirectory() as d:
        for i in range(args.repeat):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "efgen.cli", "build", "--board", args.board,
                            "--net", args.net, "-o", f"{d}/b{i}"], check=True,
                           capture_output=True)
            times.append(time.perf_counter() - t0)
    from efgen.frontend import load_net
    from efgen.frontend.boards import load_board
    from efgen.model.schedule import Request, schedule

    net, board = load_net(args.net), load_board(args.board)
    t0 = time.perf_counter()
    d = schedule(Request(net, board))
    t_sched = time.perf_counter() - t0
    print(f"efgen build --board {args.board} --net {args.net}: median {statistics.median(times):.2f} s "
          f"wall (min {min(times):.2f}, max {max(times):.2f}, {args.repeat} runs); "
          f"scheduler alone {t_sched:.2f} s ({d.notes[0]})")


if __name__ == "__main__":
    main()
