"""Compile C++ into a shared library with the project's warning bar, and load it."""

from __future__ import annotations

import ctypes
import hashlib
import shutil
import subprocess
from pathlib import Path

from efgen.errors import EfgenError
from efgen.resources import data_dir

# -ffp-contract=off: no fused multiply-adds, so float results match the golden model's
# separately rounded multiply and add on every host.
# -pthread: the C-simulation model of the kernels' DATAFLOW regions runs processes as threads.
CXXFLAGS = ["-std=c++17", "-O2", "-Wall", "-Wextra", "-Werror", "-ffp-contract=off", "-fPIC",
            "-shared", "-pthread"]


def hls_kernels_dir() -> Path:
    return data_dir("hls_kernels")


def compile_shared(sources: list[Path], out: Path, include_dirs: list[Path] = (),
                   extra_flags: list[str] = ()) -> Path:
    """g++ -std=c++17 -O2 -Wall -Wextra -Werror -shared; raises EfgenError on failure.

    The library name carries a hash of the sources and flags, so a changed source is
    never served from a stale library loaded earlier in the same process.
    """
    cxx = shutil.which("g++")
    if cxx is None:
        raise EfgenError("g++ not found", where="C-simulation",
                         fix="install g++ (Debian: apt-get install g++)")
    inc = [f"-I{d}" for d in [*include_dirs, hls_kernels_dir()]]
    h = hashlib.sha256()
    for s in sources:
        h.update(Path(s).read_bytes())
    for d in [*include_dirs, hls_kernels_dir()]:
        for f in sorted(Path(d).glob("*.h")):
            h.update(f.read_bytes())
    h.update(" ".join([*CXXFLAGS, *extra_flags]).encode())
    out = Path(out)
    lib = out.with_name(f"{out.stem}-{h.hexdigest()[:12]}.so")
    if not lib.exists():
        cmd = [cxx, *CXXFLAGS, *extra_flags, *inc, *map(str, sources), "-o", str(lib)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            first = (proc.stderr.strip().splitlines() or ["(no output)"])[0]
            raise EfgenError(f"g++ failed: {first}", where=str(sources[0]),
                             fix="this is a bug in efgen's generated C++; please report it "
                                 "with the build folder")
    return lib


def load(lib: Path) -> ctypes.CDLL:
    return ctypes.CDLL(str(lib))
