"""Build and run a cocotb testbench with cocotb 1.9's Python runner, from pytest or a script.

Each build gets its own directory, ``<build_root>/<sim>-<hash>``, where the hash covers
the simulator, the toplevel, the text of every source and the build arguments: cocotb
runners overwrite a shared build directory, so two parameter sets never share one.
Callers pass a per-session ``build_root`` (pytest's ``tmp_path_factory``), which keeps
parallel runs apart. The testbenches themselves (the repository's ``sim/``) are files this
module is given, never imports.

:func:`run_cocotb` raises ``AssertionError`` when a cocotb test fails, also outside
pytest (the runner itself only raises under pytest).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping, Sequence

with warnings.catch_warnings():   # "Python runners ... experimental" (cocotb 1.9)
    warnings.simplefilter("ignore", UserWarning)
    from cocotb.runner import get_results, get_runner


# Simulator name for cocotb -> the executable it needs.
SIMULATORS = {"verilator": "verilator", "icarus": "iverilog"}

# Verilator 5.006 knows -Wno-WIDTH but not -Wno-WIDTHEXPAND; the RTL is lint-clean, so
# no warning is waived here.
BUILD_ARGS = {"verilator": [], "icarus": []}


def available(sim: str) -> bool:
    """True if the simulator's executable is on PATH."""
    return shutil.which(SIMULATORS[sim]) is not None


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def build_key(sim: str, toplevel: str, sources: Mapping[str, str],
              build_args: Sequence[str]) -> str:
    """12 hex digits naming one simulator + parameter set."""
    blob = json.dumps({"sim": sim, "toplevel": toplevel, "build_args": list(build_args),
                       "sources": {k: _digest(v) for k, v in sorted(sources.items())}},
                      sort_keys=True)
    return _digest(blob)[:12]


def _package_root(tb_dir: Path) -> Path:
    """The folder holding the package ``tb_dir`` lies in (a testbench may import its
    siblings through it, e.g. ``sim.dma.cocotb_dma``); ``tb_dir`` if it lies in none."""
    top = None
    for d in [Path(tb_dir).resolve(), *Path(tb_dir).resolve().parents]:
        if (d / "__init__.py").is_file():
            top = d
        elif top is not None:
            break
    return top.parent if top is not None else Path(tb_dir).resolve()


@contextmanager
def _import_path(*dirs: Path) -> Iterator[None]:
    """Put ``dirs`` on sys.path while cocotb copies it into the simulator's PYTHONPATH."""
    added = [str(d) for d in dirs if str(d) not in sys.path]
    sys.path[:0] = added
    try:
        yield
    finally:
        for d in added:
            sys.path.remove(d)


def run_cocotb(sim: str, *, toplevel: str, sources: Mapping[str, str], test_module: str,
               tb_dir: Path, build_root: Path, extra_env: Mapping[str, str] | None = None,
               build_args: Sequence[str] = (), plusargs: Sequence[str] = (),
               test_dir: Path | None = None) -> Path:
    """Build ``sources`` (file name -> Verilog text) and run cocotb ``test_module``.

    ``tb_dir`` holds ``test_module`` and the helpers it imports. ``test_dir`` (default:
    the build directory) receives the results XML and the test log: simulations that
    share one build run at the same time only with their own ``test_dir``. Returns the
    results XML path; raises ``AssertionError`` if any cocotb test failed.
    """
    args = list(BUILD_ARGS[sim]) + list(build_args)
    build_dir = Path(build_root) / f"{sim}-{build_key(sim, toplevel, sources, args)}"
    src_dir = build_dir / "src"
    src_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in sorted(sources.items()):
        p = src_dir / name
        if not p.exists() or p.read_text() != text:   # unchanged files keep their mtime
            p.write_text(text)
        paths.append(p)

    runner = get_runner(sim)
    if sim == "verilator":
        # The runner's make step is serial; build's own os.environ copy wins if set.
        runner.env["MAKEFLAGS"] = f"-j{os.cpu_count() or 1}"
    build_log = build_dir / "build.log"
    test_log = Path(test_dir or build_dir) / f"{test_module}.log"
    # cocotb reports failures as SystemExit; turn them into test failures with the log.
    # The directory's name hashes every input of the build, so a finished build is reused
    # as it is (cocotb's Verilator runner would re-run verilator and make every time).
    stamp = build_dir / "efgen-build.ok"
    if not stamp.is_file():
        try:
            runner.build(sources=paths, hdl_toplevel=toplevel, build_dir=build_dir,
                         build_args=args, log_file=build_log)
        except SystemExit as e:
            raise AssertionError(f"{sim} build failed ({e}); {build_log}:\n{_tail(build_log)}")
        stamp.write_text(json.dumps({"sim": sim, "toplevel": toplevel, "build_args": args}))
    try:
        with _import_path(Path(tb_dir), _package_root(tb_dir)):
            results = Path(runner.test(test_module=test_module, hdl_toplevel=toplevel,
                                       hdl_toplevel_lang="verilog", build_dir=build_dir,
                                       test_dir=test_dir, extra_env=dict(extra_env or {}),
                                       plusargs=list(plusargs),
                                       log_file=test_log))
        n_tests, n_failed = get_results(results)
    except SystemExit as e:
        raise AssertionError(f"{sim} simulation failed ({e}); {test_log}:\n{_tail(test_log)}")
    if n_failed or not n_tests:
        raise AssertionError(f"{sim}: {n_failed} of {n_tests} cocotb tests failed; "
                             f"{test_log}:\n{_tail(test_log)}")
    return results


def _tail(path: Path, chars: int = 6000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


def read_sources(*paths: Path) -> dict[str, str]:
    """File name -> text of hand-written testbench sources."""
    return {Path(p).name: Path(p).read_text() for p in paths}
