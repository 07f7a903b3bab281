"""Sweeps on Dask (efgen/farm.py): a LocalCluster of 2 worker processes, a worker killed
mid-task, the result cache (efgen/resultcache.py), the NSGA-II search (efgen/search.py)
and the progress bars (efgen/progress.py)."""

from __future__ import annotations

import io
import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from efgen import dse as sweep
from efgen.errors import EfgenError
from efgen.farm import Farm, scheduler_address
from efgen.resultcache import Cache

# 2 x 2 x 3 x 2 = 24 ResNet-20 points (tens of ms each): long enough to kill a worker
# while it schedules one.
KILL = """\
name: kill
boards: [zcu102]
nets: [resnet20]
batch: [8]
tm: [4, 8]
tn: [4, 8]
ifm_depth: [1024, 2048, 4096]
ofm_depth: [2048, 4096]
"""
TINY = """\
name: tiny
boards: [zcu102, pynq-z2]
nets: [tiny]
batch: [4]
clock_mhz: [100, 200]
tm: [1, 2, 4, 8, 16]
tn: [1, 2, 4, 8, 16]
ifm_depth: [1024, 2048]
"""


def _files(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


def _write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_a_worker_killed_mid_task_loses_and_duplicates_nothing(tmp_path):
    from distributed import Client, LocalCluster

    f = _write(tmp_path, KILL)
    ref = sweep.run_sweep(f, tmp_path / "one", jobs=1, progress=False, no_cache=True)
    killed: dict = {}
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        box: dict = {}

        def run():
            try:
                box["s"] = sweep.run_sweep(f, tmp_path / "two", progress=False,
                                           no_cache=True, client=client)
            except BaseException as exc:      # re-raised below
                box["exc"] = exc

        th = threading.Thread(target=run)
        th.start()
        pids = client.run(os.getpid)            # worker address -> its process id
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            busy = {w: ts for w, ts in client.processing().items() if ts}
            if busy:
                w = sorted(busy)[0]
                killed.update(worker=w, tasks=list(busy[w]))
                os.kill(pids[w], signal.SIGKILL)
            time.sleep(0.01)
        th.join(120)
        assert not th.is_alive()
        if "exc" in box:
            raise box["exc"]
    assert killed and killed["tasks"], "no worker was busy: nothing was killed"
    assert _files(tmp_path / "two") == _files(tmp_path / "one")
    idx = [p["index"] for p in json.loads((tmp_path / "two" / "points.json").read_text())
           ["points"]]
    assert idx == list(range(ref["points"]))


def test_cache_computes_only_what_changed(tmp_path):
    cache = tmp_path / "cache"
    f = _write(tmp_path, TINY)
    s1 = sweep.run_sweep(f, tmp_path / "a", jobs=1, progress=False, cache_dir=cache)
    assert s1["cached"] == 0 and s1["computed"] == s1["points"] == 200
    s2 = sweep.run_sweep(f, tmp_path / "b", jobs=1, progress=False, cache_dir=cache)
    assert s2["cached"] == 200 and s2["computed"] == 0
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    # one more tm value: only its 40 points are new; the rest come from the cache
    f2 = _write(tmp_path, TINY.replace("tm: [1, 2, 4, 8, 16]", "tm: [1, 2, 4, 8, 16, 32]"),
                "s2.yaml")
    s3 = sweep.run_sweep(f2, tmp_path / "c", jobs=1, progress=False, cache_dir=cache)
    assert (s3["cached"], s3["computed"]) == (200, 40)
    fresh = sweep.run_sweep(f2, tmp_path / "d", jobs=1, progress=False, no_cache=True)
    assert fresh["cached"] == 0
    assert _files(tmp_path / "c") == _files(tmp_path / "d")


def test_cache_key_covers_the_inputs_and_a_torn_file_is_a_miss(tmp_path):
    f = _write(tmp_path, TINY)
    sw = sweep.load_sweep(f)
    c = Cache("sweep-point", tmp_path / "cache")
    pts = sw.points()
    keys = sweep._point_keys(sw, c, pts)
    assert len(set(keys)) == len(pts)            # every point its own key
    other = sweep.load_sweep(_write(tmp_path, TINY.replace("name: tiny", "name: other")
                                    + "objective: energy\n", "o.yaml"))
    assert sweep._point_keys(other, c, pts[:1]) != keys[:1]     # the objective counts
    c.put(keys[0], {"x": 1})
    path = c._path(keys[0])
    assert c.get(keys[0]) == {"x": 1}
    path.write_text('{"x": ')                    # half a file
    assert c.get(keys[0]) is None
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".tmp-")]


def test_no_cache_writes_nothing(tmp_path):
    f = _write(tmp_path, TINY)
    sweep.run_sweep(f, tmp_path / "a", jobs=1, progress=False, no_cache=True,
                    cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


def test_cache_dir_defaults(monkeypatch, tmp_path):
    from efgen.resultcache import default_dir

    monkeypatch.setenv("EFGEN_CACHE_DIR", str(tmp_path / "e"))
    assert default_dir() == tmp_path / "e"
    monkeypatch.delenv("EFGEN_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert default_dir() == tmp_path / "x" / "efgen"


@pytest.mark.parametrize("addr", ["localhost:8786", "tcp://", "http://h:1", "tcp://a b:1"])
def test_bad_cluster_address(addr):
    with pytest.raises(EfgenError, match="not a Dask scheduler address"):
        scheduler_address(addr)


def test_unreachable_cluster_is_a_one_line_error(tmp_path, run_cli):
    import socket

    with socket.socket() as s:                  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    f = _write(tmp_path, TINY)
    code, out, err = run_cli("sweep", f, "-o", tmp_path / "o", "--no-progress",
                             "--cluster", f"tcp://127.0.0.1:{port}")
    assert code == 2 and "cannot reach the Dask scheduler" in err
    assert "Traceback" not in err and not (tmp_path / "o").exists()


def test_farm_map_keeps_input_order():
    with Farm(1) as farm:
        assert farm.local and farm.map(pow, [3, 2, 5], 2) == [9, 4, 25]


# ---- search ----------------------------------------------------------------------------

def test_search_is_deterministic_and_spends_its_budget(tmp_path):
    from efgen.search import front_hypervolume, run_search

    f = _write(tmp_path, TINY)
    a = run_search(f, tmp_path / "a", budget=60, jobs=1, seed=3, progress=False,
                   no_cache=True)
    b = run_search(f, tmp_path / "b", budget=60, jobs=1, seed=3, progress=False,
                   cache_dir=tmp_path / "cache")
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    info = json.loads((tmp_path / "a" / "search.json").read_text())
    assert info["evaluated"] == a["points"] == 60 and len(set(info["order"])) == 60
    assert info["space"] == 200 and info["trials"] >= 60
    # every searched row is the exhaustive sweep's row of the same index
    full = sweep.run_sweep(f, tmp_path / "full", jobs=1, progress=False, no_cache=True)
    rows = {p["index"]: p for p in json.loads((tmp_path / "full" / "points.json")
                                               .read_text())["points"]}
    got = json.loads((tmp_path / "a" / "points.json").read_text())["points"]
    assert all(p == rows[p["index"]] for p in got)
    # the searched front cannot beat the exhaustive one, and it is not empty
    for front, ref in (("throughput", (1e5, 0.0)), ("energy", (1e6, 1e6))):
        hs = front_hypervolume(got, front, ref)
        he = front_hypervolume(list(rows.values()), front, ref)
        assert 0 < hs <= he
    assert b["points"] == 60 and full["points"] == 200


def test_search_arguments(tmp_path, run_cli):
    f = _write(tmp_path, TINY)
    code, _, err = run_cli("sweep", f, "--budget", "5", "-o", tmp_path / "o")
    assert code == 2 and "--budget is only for --search" in err
    code, _, err = run_cli("sweep", f, "--search", "nsga2", "-o", tmp_path / "o")
    assert code == 2 and "--budget must be a positive integer" in err
    code, out, _ = run_cli("sweep", f, "--search", "nsga2", "--budget", "20", "--jobs", "1",
                           "--no-progress", "-o", tmp_path / "o")
    assert code == 0 and "20 of 200 points evaluated" in out
    assert (tmp_path / "o" / "search.json").is_file()


def test_search_lifts_the_enumeration_limit(tmp_path):
    from efgen.search import run_search

    big = TINY + "ofm_depth: [" + ", ".join(str(1024 + 8 * i) for i in range(1100)) + "]\n"
    f = _write(tmp_path, big)
    with pytest.raises(EfgenError, match="--search nsga2"):
        sweep.load_sweep(f)                       # 220,000 points: too many to enumerate
    s = run_search(f, tmp_path / "o", budget=16, jobs=1, progress=False, no_cache=True)
    assert s["search"]["space"] == 220_000 and s["points"] == 16


def test_hypervolume_2d_by_brute_force():
    import random

    from efgen.search import hypervolume_2d

    rng = random.Random(1)
    for _ in range(30):
        pts = [(rng.randint(0, 9), rng.randint(0, 9)) for _ in range(rng.randint(0, 8))]
        ref = (10, 10)
        cells = sum(1 for cx in range(10) for cy in range(10)
                    if any(x <= cx and y <= cy for x, y in pts))
        assert hypervolume_2d(pts, ref) == cells


# ---- progress --------------------------------------------------------------------------

def test_progress_on_a_log_is_a_line_per_tenth():
    from efgen.progress import bar

    s = io.StringIO()
    with bar(1000, "sweep x", unit="pt", stream=s) as b:
        for _ in range(1000):
            b.update(1)
    lines = s.getvalue().splitlines()
    assert "\r" not in s.getvalue() and 2 <= len(lines) <= 11
    assert lines[-1].startswith("sweep x: 100%") and "1000/1000" in lines[-1]
    off = io.StringIO()
    with bar(10, "x", enabled=False, stream=off) as b:
        b.update(10)
    assert off.getvalue() == ""
