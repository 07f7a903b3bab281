"""Co-simulation farms: ``efgen cosim --jobs N`` / ``--cluster`` runs layer-phases in
parallel on Dask (:class:`efgen.farm.Farm`), with a result cache.

Each layer-phase is one task: its own DRAM image (seeded; the same whatever the worker
count), its own work folder, one simulation. Tasks of one RTL parameter set share one
simulator build directory (``<build root>/<sim>-<hash>``, efgen.cosim.runner). Builds
never race: the first layer-phase of every distinct parameter set runs first (and
builds); the rest fan out once those builds exist. A worker needs the build root on a
file system it can see (a local cluster always does; on a remote cluster, give
``-o DIR`` on a shared file system).

A result is cached under a hash of the RTL parameters, the layer-phase and its tiling,
the simulator, the DRAM latency, back-pressure, efgen's version and the source of the
RTL generators, Verilog templates, testbench and golden model (efgen.resultcache).
"""

from __future__ import annotations

from pathlib import Path

from efgen.cosim import layers as cosim

__all__ = ["run_farm", "KIND"]

KIND = "cosim-layer-phase"
#: Everything a co-simulated layer-phase's result depends on besides its inputs.
CODE = ("rtl/*.py", "cosim/*.py", "golden/*.py", "layout.py", "hls/desc.py",
        "templates/rtl/**/*", "sim/top/*")


def _task(item, sim: str, build_root: str, pause, plusargs: tuple) -> cosim.Result:
    """Simulate one layer-phase (runs on a worker)."""
    layout, p, lp, work = item
    old, cosim.BUILD_CACHE = cosim.BUILD_CACHE, Path(build_root)
    try:
        [res] = cosim.run_layer_phases(p, [lp], sim=sim, workdir=work, pause=pause,
                                       plusargs=plusargs)
    finally:
        cosim.BUILD_CACHE = old
    return res


def _to_json(r: cosim.Result) -> dict:
    return {"max_rel": r.max_rel, "errors": r.errors, "cycles": r.cycles,
            "bursts": list(r.bursts), "beats": list(r.beats), "status": r.status,
            "fail_addr": r.fail_addr, "faulted": list(r.faulted) if r.faulted else None}


def _from_json(lp, d: dict) -> cosim.Result:
    return cosim.Result(lp, float(d["max_rel"]), dict(d["errors"]), int(d["cycles"]),
                        tuple(d["bursts"]), tuple(d["beats"]), int(d["status"]),
                        int(d["fail_addr"]), tuple(d["faulted"]) if d["faulted"] else None)


def _safe(label: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in label)


def run_farm(plan, *, sim: str, farm, cache, build_root: Path, work_root: Path,
             pause=None, plusargs: tuple = (), on_result=None) -> dict[str, list]:
    """Co-simulate every layer-phase of ``plan`` ([(layout, RtlParams, [LayerPhase])]);
    returns layout -> results in the plan's order. ``on_result(layout, p, Result)`` is
    called as each one is known (cached ones first)."""
    items = [(layout, p, lp, str(work_root / layout / _safe(lp.label)))
             for layout, p, lps in plan for lp in lps]
    keys = [cache.key({"params": repr(p), "lp": repr(lp), "sim": sim,
                       "latency": cosim.DRAM_LATENCY, "seed": 0, "pause": repr(pause),
                       "plusargs": list(plusargs)}, CODE) if cache.enabled else None
            for _, p, lp, _ in items]
    results: list = [None] * len(items)
    todo = []
    for i, (it, k) in enumerate(zip(items, keys)):
        hit = cache.get(k) if k is not None else None
        if hit is not None:
            results[i] = _from_json(it[2], hit)
            if on_result:
                on_result(it[0], it[1], results[i])
        else:
            todo.append(i)

    def done(j, res, order):
        i = order[j]
        results[i] = res
        if keys[i] is not None:
            cache.put(keys[i], _to_json(res))
        if on_result:
            on_result(items[i][0], items[i][1], res)

    # builds first: one layer-phase per distinct parameter set, then the rest
    first: dict[str, int] = {}
    for i in todo:
        first.setdefault(repr(items[i][1]), i)
    waves = [list(first.values()), [i for i in todo if i not in first.values()]]
    for wave in waves:
        farm.map(_task, [items[i] for i in wave], sim, str(build_root), pause, plusargs,
                 on_done=lambda j, res, wave=wave: done(j, res, wave))
    out: dict[str, list] = {layout: [] for layout, _, _ in plan}
    for it, r in zip(items, results):
        out[it[0]].append(r)
    return out
