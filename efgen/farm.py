"""Run independent tasks on Dask: a LocalCluster of processes, or an existing cluster.

``Farm(jobs, cluster)`` opens a ``distributed.Client``:

* ``cluster`` (``--cluster tcp://HOST:PORT``) or ``$DASK_SCHEDULER_ADDRESS``: that
  scheduler; its workers must have efgen installed (the same version).
* otherwise a ``LocalCluster`` of ``jobs`` single-threaded worker processes here.
* ``jobs == 1`` and no cluster: no Dask at all; the tasks run in this process, in order.

:meth:`Farm.map` submits every task with ``retries`` (a worker that dies mid-task has
its tasks re-run elsewhere by the scheduler, and a task that raises is tried again) and
returns the results in the order of the inputs, never of completion, so what callers
write does not depend on the worker count or on which worker ran what.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any, Callable, Sequence

from efgen.errors import EfgenError

__all__ = ["Farm", "scheduler_address", "RETRIES", "add_arguments"]

#: Times a task is re-run after its worker died or it raised.
RETRIES = 3
_ADDR_RE = re.compile(r"^(tcp|tls|inproc|ucx|ws|wss)://[^\s/]+$")


def scheduler_address(cluster: str | None) -> str | None:
    """The scheduler to use: ``cluster``, else ``$DASK_SCHEDULER_ADDRESS``, else None."""
    addr = cluster if cluster else os.environ.get("DASK_SCHEDULER_ADDRESS") or None
    if addr is None:
        return None
    where = "--cluster" if cluster else "DASK_SCHEDULER_ADDRESS"
    if not _ADDR_RE.match(addr):
        raise EfgenError(f"{where} {addr!r} is not a Dask scheduler address", where=where,
                         fix="give e.g. tcp://10.0.0.5:8786 (the address 'dask scheduler' "
                             "prints), or leave it out for a local cluster")
    return addr


class Farm:
    """A context manager: ``with Farm(2) as farm: results = farm.map(f, items)``."""

    def __init__(self, jobs: int = 1, cluster: str | None = None, *,
                 retries: int = RETRIES, client=None):
        self.jobs, self.retries = jobs, retries
        self.address = scheduler_address(cluster)
        self.client = client
        self._own: list = []

    @property
    def local(self) -> bool:
        """True when tasks run in this process (one job, no cluster)."""
        return self.client is None and self.address is None and self.jobs == 1

    @property
    def workers(self) -> int:
        if self.client is None:
            return 1
        return max(1, len(self.client.scheduler_info(n_workers=-1)["workers"]))

    def __enter__(self) -> "Farm":
        if self.client is not None or self.local:
            return self
        from distributed import Client, LocalCluster

        if self.address is not None:
            try:
                self.client = Client(self.address, timeout="10s")
            except (OSError, TimeoutError) as exc:
                raise EfgenError(f"cannot reach the Dask scheduler at {self.address} "
                                 f"({exc.__class__.__name__})", where="--cluster",
                                 fix="start it ('dask scheduler', then 'dask worker "
                                     "ADDRESS' on each machine) or check the address"
                                 ) from None
            self._own.append(self.client)
            return self
        cluster = LocalCluster(n_workers=self.jobs, threads_per_worker=1, processes=True,
                               dashboard_address=":0", silence_logs=logging.ERROR)
        self._own.append(cluster)
        self.client = Client(cluster)
        self._own.append(self.client)
        return self

    def __exit__(self, *exc) -> None:
        own, self._own = self._own, []
        for obj in reversed(own):
            try:
                obj.close()
            except Exception:       # pragma: no cover - closing a dead cluster
                pass
        if own:
            self.client = None

    def map(self, fn: Callable[..., Any], items: Sequence[Any], *args: Any,
            on_done: Callable[[int, Any], None] | None = None) -> list[Any]:
        """``[fn(item, *args) for item in items]``, spread over the workers.

        ``on_done(i, result)`` is called in this process as each task finishes (in
        completion order: for progress bars; the returned list is in input order)."""
        out: list[Any] = [None] * len(items)
        if self.client is None:
            for i, it in enumerate(items):
                out[i] = fn(it, *args)
                if on_done:
                    on_done(i, out[i])
            return out
        from distributed import as_completed

        futs = [self.client.submit(fn, it, *args, retries=self.retries, pure=False)
                for it in items]
        index = {f.key: i for i, f in enumerate(futs)}
        try:
            for fut in as_completed(futs):
                i = index[fut.key]
                out[i] = fut.result()
                if on_done:
                    on_done(i, out[i])
        except BaseException:
            self.client.cancel(futs)
            raise
        return out


def add_arguments(parser, what: str = "worker processes",
                  default_jobs: str = "every core") -> None:
    """``--jobs``, ``--cluster``, ``--cache DIR`` and ``--no-cache`` (sweep and cosim)."""
    parser.add_argument("--jobs", type=int, metavar="N",
                        help=f"{what} on a local Dask cluster of worker processes "
                             f"(default: {default_jobs}; 1: in this process)")
    parser.add_argument("--cluster", metavar="tcp://HOST:PORT",
                        help="run on this existing Dask scheduler instead (default: "
                             "$DASK_SCHEDULER_ADDRESS if set); its workers need efgen")
    parser.add_argument("--cache", metavar="DIR", dest="cache_dir",
                        help="result cache (default: $EFGEN_CACHE_DIR, else "
                             "$XDG_CACHE_HOME/efgen, else ~/.cache/efgen)")
    parser.add_argument("--no-cache", action="store_true",
                        help="recompute everything; neither read nor write the cache")
