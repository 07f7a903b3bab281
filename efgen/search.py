"""``efgen sweep FILE --search nsga2 --budget N``: search a sweep's space for its Pareto
fronts instead of enumerating it.

The space is the sweep file's (every key's list of values; a search lifts the sweep's
limit on the product, so spaces of millions of points are fine). Optuna's NSGA-II
(``optuna.samplers.NSGAIISampler``, seeded) proposes points a generation at a time; each
is scheduled and evaluated exactly as by the exhaustive sweep (same cache, same Dask
farm) with three objectives, all minimised: ms per step, energy per step and DSP. Both
fronts the sweep writes are projections of that 3-D front (images/s is batch / ms).
Points over the board caps or whose buffers fit no tiling are infeasible (Optuna's
constraints, Trial.set_constraint; the amount over the tightest cap guides the search back into the board).

The budget counts *distinct* points evaluated: a point the sampler proposes again is
answered from memory. Outputs are the sweep's (points.csv/json hold the evaluated points,
with their index in the full product order, so rows are identical to the exhaustive
sweep's) plus ``search.json``: sampler, seed, budget, trials and the evaluation order.
For the same file, seed and budget the outputs are byte-identical whatever the workers.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Sequence

from efgen.errors import EfgenError

__all__ = ["run_search", "hypervolume_2d", "front_hypervolume"]

OBJECTIVES = ("ms_per_step", "energy_j", "dsp")
_INFEASIBLE = 1e30


def hypervolume_2d(points: Sequence[tuple[float, float]], ref: tuple[float, float]) -> float:
    """Exact area dominated by ``points`` (both coordinates minimised) and bounded by
    ``ref``; points not strictly better than ``ref`` in both add nothing."""
    pts = sorted((x, y) for x, y in points if x < ref[0] and y < ref[1])
    area, best_y = 0.0, ref[1]
    for x, y in pts:          # by x: each new lowest y adds a slab out to ref[0]
        if y >= best_y:
            continue
        area += (ref[0] - x) * (best_y - y)
        best_y = y
    return area


def front_hypervolume(records: Sequence[dict], front: str, ref: tuple[float, float]) -> float:
    """Hypervolume of the fitting ``records`` in one of the sweep's fronts (FRONTS), both
    axes turned to minimisation (a maximised key is negated; so is its ``ref``)."""
    from efgen.dse import FRONTS

    (xk, xg), (yk, yg) = FRONTS[front]
    sx = 1.0 if xg == "min" else -1.0
    sy = 1.0 if yg == "min" else -1.0
    pts = [(sx * float(r[xk]), sy * float(r[yk])) for r in records if r["fits"]]
    return hypervolume_2d(pts, (sx * ref[0], sy * ref[1]))


def _space(sw) -> list[tuple[str, tuple, list[int], bool]]:
    """Per swept key (more than one value): (key, values, order, ordinal). Ordinal keys
    (all numbers) are searched as an integer over the values sorted; the rest as
    categories."""
    out = []
    for key, vals in sw.values.items():
        if len(vals) < 2:
            continue
        ordinal = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals)
        order = sorted(range(len(vals)), key=lambda i: vals[i]) if ordinal else list(
            range(len(vals)))
        out.append((key, vals, order, ordinal))
    return out


def _point(sw, choice: dict[str, int]) -> tuple:
    """The point tuple (index first) of per-key value positions ``choice``."""
    index, vals = 0, []
    for key, values in sw.values.items():
        i = choice.get(key, 0)
        index = index * len(values) + i
        vals.append(values[i])
    return (index, *vals)


def _violation(rec: dict) -> float:
    """0 for a fitting point; else how far it is from fitting (> 0)."""
    if rec["fits"]:
        return 0.0
    from efgen.dse import RESOURCES

    over = max((rec.get(f"{r}_util") or 0.0) for r in RESOURCES) - 1.0
    return max(over, 0.0) + 1e-3


def run_search(path: str | os.PathLike, out_dir: str | os.PathLike | None = None, *,
               budget: int | None, jobs: int | None = None, seed: int = 0,
               progress: bool = True, cluster: str | None = None,
               cache_dir: str | os.PathLike | None = None, no_cache: bool = False,
               client=None, population: int | None = None) -> dict[str, Any]:
    """Search the space of the sweep file ``path`` with NSGA-II for at most ``budget``
    distinct evaluations; writes the sweep's outputs for the evaluated points plus
    search.json and returns run_sweep's summary with a ``search`` entry."""
    import optuna

    import efgen.dse as S
    from efgen.farm import Farm
    from efgen.progress import bar

    t0 = time.perf_counter()
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise EfgenError(f"--budget must be a positive integer, got {budget!r}",
                         where="--budget", fix="give e.g. --budget 400 (points to evaluate)")
    jobs = S.check_jobs(jobs)
    sw = S.load_sweep(path, max_points=None)
    out = Path(out_dir) if out_dir is not None else Path(f"sweep-{sw.name}")
    S._check_out_dir(out)
    budget = min(budget, sw.n_points)
    space = _space(sw)
    pop = population or max(8, min(50, budget // 10))

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.NSGAIISampler(population_size=pop, seed=seed)
    study = optuna.create_study(directions=["minimize"] * len(OBJECTIVES), sampler=sampler)

    cache = S._cache_for(cache_dir, no_cache)
    seen: dict[int, dict] = {}
    order: list[int] = []
    trials = 0
    with Farm(jobs, cluster, client=client) as farm, \
            bar(budget, f"search {sw.name}", unit="pt", enabled=progress) as b:
        workers = farm.workers
        # stop when the budget is spent, or when the sampler only repeats itself
        while len(seen) < budget and trials < 20 * budget:
            asked = [study.ask() for _ in range(pop)]
            trials += len(asked)
            pts = []
            for t in asked:
                choice = {}
                for key, vals, order_k, ordinal in space:
                    if ordinal:
                        choice[key] = order_k[t.suggest_int(key, 0, len(vals) - 1)]
                    else:
                        choice[key] = t.suggest_categorical(key, order_k)
                pts.append(_point(sw, choice))
            new: list[tuple] = []
            for p in pts:
                if p[0] not in seen and p[0] not in {q[0] for q in new} \
                        and len(seen) + len(new) < budget:
                    new.append(p)
            for rec in S._evaluate(sw, new, farm, cache, b):
                seen[rec["index"]] = rec
                order.append(rec["index"])
            for t, p in zip(asked, pts):
                rec = seen.get(p[0])
                if rec is None:                    # over the budget: not evaluated
                    study.tell(t, state=optuna.trial.TrialState.FAIL)
                    continue
                t.set_constraint("violation", _violation(rec))
                study.tell(t, [float(rec[k]) if rec["fits"] else _INFEASIBLE
                               for k in OBJECTIVES])

    records = [seen[i] for i in sorted(seen)]
    info = {"sampler": "optuna NSGAIISampler", "optuna_version": optuna.__version__,
            "seed": seed, "population": pop, "budget": budget, "space": sw.n_points,
            "objectives": list(OBJECTIVES), "trials": trials, "evaluated": len(records),
            "order": order}
    s = S._finish(sw, out, records, cache, workers, t0,
                  extra={"search.json": S._json(info)})
    s["search"] = info
    return s
