"""Sweeps and co-simulation on Dask, the result cache and the NSGA-II search.

Usage: python3 benchmarks/bench_dask.py [--file configs/sweeps/zcu102-resnet20.yaml]
           [--workers 1,2,4] [--budgets 157,314,470] [--big configs/sweeps/big-space.yaml]
           [--big-budgets 500,1000,2000] [--cosim-net NET] [--cosim-phase fp]
           [--skip-cosim | --cosim-only]

Prints, each on its own line:
* points/s of the whole sweep (``--no-cache``) for 1, 2 and 4 workers (1: in this
  process; 2 and 4: a LocalCluster of that many worker processes, its start included);
* the cache-hit speed-up: the same sweep again with a warm cache, wall time cold/warm;
* the search: for each budget (distinct evaluations), the hypervolume of each searched
  front as a fraction of the exhaustive front's, at two stated reference points (loose:
  the nadir of all fitting points; tight: the nadir of the exhaustive front itself, out
  by 10% of its extent);
* the search on a space too big to enumerate: hypervolume against evaluations;
* co-simulation wall time of ResNet-20's distinct layer-phases (8x8, batch 1, reshaped
  layout: ``make cosim``'s first command, one layout) with --jobs 1 and --jobs 2
  (``--cosim-phase fp``: a subset; ``--cosim-net tiny --cosim-tiles Tm=4,Tn=4``: a
  small net).
Everything runs in temporary folders (deleted afterwards); the cache too.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))   # run from a checkout
from efgen import dse as sweep  # noqa: E402
from efgen.search import front_hypervolume, run_search  # noqa: E402


def _points(out: Path) -> list[dict]:
    return json.loads((out / "points.json").read_text())["points"]


def refs(records: list[dict], tight: bool = False) -> dict[str, tuple[float, float]]:
    """Reference points for each front.

    loose: the nadir of the exhaustive sweep's fitting points (the worst x and the worst
    y; images/s worst = smallest). tight: the nadir of the exhaustive Pareto front itself,
    moved out by 10% of the front's extent on each axis (the usual hypervolume convention;
    10% of the value where the front has no extent), so the score is decided by the
    front's shape, not by reaching far-off corners."""
    fit = [r for r in records if r["fits"]]
    out = {}
    for name, (x, y) in sweep.FRONTS.items():
        pts = fit
        if tight:
            pts = [r for r, m in zip(fit, sweep.pareto_mask(fit, x, y)) if m]
        ref = []
        for k, g in (x, y):
            vals = [float(r[k]) for r in pts]
            worst, best = (max(vals), min(vals)) if g == "min" else (min(vals), max(vals))
            if tight:
                span = abs(worst - best) or abs(worst)
                worst += 0.1 * span if g == "min" else -0.1 * span
            ref.append(worst)
        out[name] = (ref[0], ref[1])
    return out


def bench_workers(f: str, workers: list[int], tmp: Path) -> list[dict]:
    rows = []
    for n in workers:
        t0 = time.perf_counter()
        s = sweep.run_sweep(f, tmp / f"w{n}", jobs=n, progress=False, no_cache=True)
        wall = time.perf_counter() - t0
        print(f"sweep {s['name']}, {n} worker{'s' if n > 1 else ''}: {s['points']:,} points "
              f"in {wall:.1f} s = {s['points'] / wall:.1f} points/s "
              f"({(s['fitting'] + s['unschedulable']) / wall:.1f} scheduled points/s)",
              flush=True)
        rows.append({"workers": n, "wall_s": wall})
    same = len({(tmp / f"w{n}" / "points.csv").read_bytes() for n in workers}) == 1
    print(f"points.csv byte-identical across {workers} workers: {same}")
    return _points(tmp / f"w{workers[0]}")


def bench_cache(f: str, tmp: Path, jobs: int) -> None:
    cache = tmp / "cache"
    t0 = time.perf_counter()
    sweep.run_sweep(f, tmp / "cold", jobs=jobs, progress=False, cache_dir=cache)
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    s = sweep.run_sweep(f, tmp / "warm", jobs=jobs, progress=False, cache_dir=cache)
    warm = time.perf_counter() - t0
    same = (tmp / "cold" / "points.json").read_bytes() == (tmp / "warm" / "points.json").read_bytes()
    print(f"cache (--jobs {jobs}): cold {cold:.1f} s, warm {warm:.1f} s ({s['cached']:,} of "
          f"{s['points']:,} points from the cache, outputs and plots included): "
          f"{cold / warm:.1f}x speed-up; identical outputs: {same}", flush=True)


def bench_search(f: str, records: list[dict], budgets: list[int], tmp: Path, jobs: int,
                 seeds: list[int]) -> None:
    n = len(records)
    ref = {"loose": refs(records), "tight": refs(records, tight=True)}
    full = {t: {k: front_hypervolume(records, k, r) for k, r in rs.items()}
            for t, rs in ref.items()}
    for t, rs in ref.items():
        print(f"search reference points, {t} (nadir of the exhaustive "
              f"{'fitting points' if t == 'loose' else 'Pareto front + 10% of its extent'}): " + "; ".join(
                  f"{k}: ({sweep.FRONTS[k][0][0]}={r[0]:g}, {sweep.FRONTS[k][1][0]}={r[1]:g})"
                  for k, r in rs.items()))
    for b in budgets:
        for seed in seeds:
            s = run_search(f, tmp / f"s{b}-{seed}", budget=b, jobs=jobs, seed=seed,
                           progress=False, cache_dir=tmp / "cache")
            got = _points(tmp / f"s{b}-{seed}")
            parts = []
            for t, rs in ref.items():
                fr = {k: front_hypervolume(got, k, r) / full[t][k] for k, r in rs.items()}
                ok = all(v >= 0.98 for v in fr.values()) and b <= 0.15 * n
                parts.append(f"{t}: " + ", ".join(f"{k} {100 * v:.2f}%" for k, v in fr.items())
                             + (" [>=98% with <=15%: met]" if ok else ""))
            print(f"search nsga2 budget {b} ({100 * b / n:.1f}% of {n:,}), seed {seed}: "
                  f"{s['search']['evaluated']} evaluated in {s['search']['trials']} trials; "
                  f"hypervolume of the exhaustive front's: " + "; ".join(parts), flush=True)


def bench_big(f: str, budgets: list[int], tmp: Path, jobs: int) -> None:
    sw = sweep.load_sweep(f, max_points=None)
    prev = None
    for b in budgets:
        t0 = time.perf_counter()
        s = run_search(f, tmp / f"big{b}", budget=b, jobs=jobs, seed=0, progress=False,
                       cache_dir=tmp / "cache")
        wall = time.perf_counter() - t0
        got = _points(tmp / f"big{b}")
        if prev is None:
            prev = refs(got)    # fixed for every budget: the first run's nadir
        hv = {k: front_hypervolume(got, k, r) for k, r in prev.items()}
        print(f"big space {sw.name}: {sw.n_points:,} points; budget {b}: "
              f"{s['search']['evaluated']} evaluated, {s['fitting']} fit, {wall:.1f} s; "
              f"hypervolume " + ", ".join(f"{k} {v:.4g}" for k, v in hv.items()), flush=True)
    print(f"  (big-space reference points: the nadir of the budget-{budgets[0]} run's "
          f"fitting points: " + "; ".join(f"{k} ({r[0]:g}, {r[1]:g})" for k, r in prev.items())
          + ")")


def bench_cosim(tmp: Path, net: str, tiles: str, phase: str | None) -> None:
    efgen = [sys.executable, "-c", "import sys; from efgen.cli import main; "
             "sys.exit(main(sys.argv[1:]))"]
    base = ["cosim", "--net", net, "--tiles", tiles, "--batch", "1",
            "--distinct", "--layout", "reshaped", "--no-cache", "--no-progress"]
    if phase:
        base += ["--phase", phase]
    walls = {}
    for jobs in (1, 2):
        out = tmp / f"cosim-j{jobs}"
        t0 = time.perf_counter()
        r = subprocess.run(efgen + base + ["--jobs", str(jobs), "-o", str(out)],
                           capture_output=True, text=True, cwd=ROOT)
        walls[jobs] = time.perf_counter() - t0
        if r.returncode != 0:
            print(f"cosim --jobs {jobs} failed ({r.returncode}):\n{r.stdout[-2000:]}"
                  f"{r.stderr[-2000:]}")
            return
        n = len(json.loads((out / "cosim.json").read_text())["layouts"]["reshaped"])
        print(f"cosim {net} distinct layer-phases ({n}{', ' + phase if phase else ''}), "
              f"{tiles}, reshaped, --jobs {jobs}: "
              f"{walls[jobs]:.1f} s (build included)", flush=True)
    print(f"cosim speed-up with 2 jobs: {walls[1] / walls[2]:.2f}x")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--file", default=str(ROOT / "configs/sweeps/zcu102-resnet20.yaml"))
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--budgets", default="157,314,470")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--big", default=str(ROOT / "configs/sweeps/big-space.yaml"))
    ap.add_argument("--big-budgets", default="500,1000,2000")
    ap.add_argument("--cosim-net", default="resnet20")
    ap.add_argument("--cosim-tiles", default="Tm=8,Tn=8")
    ap.add_argument("--cosim-phase", choices=["fp", "bp", "wu"], default=None,
                    help="a representative subset: only this phase")
    ap.add_argument("--skip-cosim", action="store_true")
    ap.add_argument("--cosim-only", action="store_true", help="only the co-simulation farm")
    args = ap.parse_args(argv)
    ints = lambda s: [int(x) for x in s.split(",") if x]  # noqa: E731
    jobs = sweep.default_jobs()
    print(f"{os.cpu_count()} CPUs; --jobs default {jobs}", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="bench-dask-"))
    try:
        if args.cosim_only:
            bench_cosim(tmp, args.cosim_net, args.cosim_tiles, args.cosim_phase)
            return
        records = bench_workers(args.file, ints(args.workers), tmp)
        bench_cache(args.file, tmp, jobs)
        bench_search(args.file, records, ints(args.budgets), tmp, jobs, ints(args.seeds))
        bench_big(args.big, ints(args.big_budgets), tmp, jobs)
        if not args.skip_cosim:
            bench_cosim(tmp, args.cosim_net, args.cosim_tiles, args.cosim_phase)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
