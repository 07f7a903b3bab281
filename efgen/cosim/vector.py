"""Vector-unit descriptors (``vec_unit`` of the reference RTL) in co-simulation.

:func:`run_descriptors` writes a DRAM image into the simulated bus, runs a list of
descriptors on ``efgen_top`` one after the other (each through the register map, as the
host's driver does, the pointers at 0 so ``a[i]`` are word addresses of the image) and
returns the image afterwards with every run's STATUS and CYCLES. :func:`expected` runs
the same descriptors on a copy of the image with :class:`efgen.csim.interp.Interp` (the
numpy interpreter the C-simulation is checked against): the reference the RTL's image is
compared with.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from efgen.hls.desc import EfgenDesc


def run_descriptors(p, mem: np.ndarray, descs: list[EfgenDesc], *, sim: str = "verilator",
                    workdir: Path | None = None, latency: int | None = None, pause=None,
                    abort_at: dict | None = None) -> tuple[np.ndarray, list[dict]]:
    """Run ``descs`` in order on the RTL of ``p`` (RtlParams) over the float32 image
    ``mem`` (word 0 at byte 0 of the bus). Returns (the image after, per run the
    testbench's figures: ``status``, ``cycles``, ``bursts``, ``beats``). ``pause``: an
    efgen.cosim.layers.Pause (random back-pressure on every AXI channel); ``abort_at``:
    {run index: cycles after START at which the host writes ABORT}."""
    from efgen.cosim.layers import DRAM_LATENCY, simulate
    from efgen.rtl.dma import desc_register_writes

    work = (Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="efgen-vec-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    np.save(work / "image.npy", np.ascontiguousarray(mem, np.float32).view(np.uint32))
    runs = [{"tag": str(i), "regs": desc_register_writes(d)} for i, d in enumerate(descs)]
    for i, at in (abort_at or {}).items():
        runs[i]["abort_at"] = int(at)
    script = {"image": str(work / "image.npy"), "dump": str(work / "dump.npy"),
              "latency": DRAM_LATENCY if latency is None else latency, "runs": runs,
              "pause": vars(pause) if pause else None}
    got = simulate(p, work, script, sim=sim)
    dump = np.load(work / "dump.npy").astype("<u4").view(np.float32)
    return dump, [got[str(i)] for i in range(len(descs))]


def expected(mem: np.ndarray, descs: list[EfgenDesc], lanes: int) -> np.ndarray:
    """The image after ``descs`` run in order by the numpy interpreter (``lanes``: the
    feature-map layout's T)."""
    from efgen.csim.interp import Interp

    out = np.array(mem, np.float32, copy=True)
    it = Interp(out, lanes, lanes, lanes)
    for d in descs:
        it.run(d)
    return out


__all__ = ["expected", "run_descriptors"]
