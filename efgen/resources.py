"""Where the shipped data (configs/, templates/, hls_kernels/) lives.

In a source checkout they sit at the top of the repository; in an installed wheel they
are packaged as efgen/configs, efgen/templates and efgen/hls_kernels.
"""

from __future__ import annotations

from pathlib import Path

_PKG = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """Return the directory of shipped data ``name`` ("configs", "templates", ...)."""
    installed = _PKG / name
    if installed.is_dir():
        return installed
    return _PKG.parent / name


def configs_dir() -> Path:
    return data_dir("configs")
