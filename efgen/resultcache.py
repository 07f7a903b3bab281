"""A content-addressed cache of results (scheduled sweep points, co-simulation runs).

A result is stored under the SHA-256 of everything that determines it, as canonical JSON
(``key``): the caller passes the inputs (net, board, hardware parameters, ...) and this
module adds what every result depends on: the efgen version, the model coefficients
(configs/model/coefficients.yaml) and the source of the code that computes it. A re-run
therefore recomputes exactly the results whose inputs changed.

Location: ``--cache DIR``, else ``$EFGEN_CACHE_DIR``, else ``$XDG_CACHE_HOME/efgen``, else
``~/.cache/efgen``. Files are ``DIR/<kind>/<2 hex>/<64 hex>.json``. Every write goes to a
temporary file in the same folder, then ``os.replace``: a reader (another worker, another
efgen) sees the whole file or none. A file that does not parse is a miss.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable

from efgen._version import __version__

__all__ = ["Cache", "default_dir", "digest", "code_digest"]

_PKG = Path(__file__).resolve().parent


def default_dir() -> Path:
    """``$EFGEN_CACHE_DIR``, ``$XDG_CACHE_HOME/efgen`` or ``~/.cache/efgen``."""
    env = os.environ.get("EFGEN_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "efgen"


def digest(obj: Any) -> str:
    """SHA-256 (hex) of ``obj`` as canonical JSON (``repr`` for what JSON cannot hold)."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=repr)
    return hashlib.sha256(blob.encode()).hexdigest()


@functools.lru_cache(maxsize=None)
def _files_digest(paths: tuple[tuple[str, str], ...]) -> str:
    h = hashlib.sha256()
    for rel, p in paths:
        h.update(rel.encode() + b"\0" + Path(p).read_bytes() + b"\0")
    return h.hexdigest()


def code_digest(*globs: str) -> str:
    """SHA-256 of the files matching ``globs`` (relative to the efgen package; the shipped
    configs/ and templates/ live at ``efgen/configs``, ``efgen/templates`` when
    installed, at the top of a checkout otherwise)."""
    paths: dict[str, str] = {}          # path relative to its root -> path
    for g in globs:
        for root in (_PKG, _PKG.parent):
            for p in root.glob(g):
                if p.is_file() and "__pycache__" not in p.parts:
                    paths.setdefault(p.relative_to(root).as_posix(), str(p))
    return _files_digest(tuple(sorted(paths.items())))


class Cache:
    """Results of one ``kind`` (e.g. ``"sweep-point"``) in ``root``; ``root=None``: off."""

    def __init__(self, kind: str, root: str | os.PathLike | None):
        self.kind = kind
        self.dir = Path(root).expanduser() / kind if root is not None else None
        self.hits = self.misses = 0

    @property
    def enabled(self) -> bool:
        return self.dir is not None

    def key(self, inputs: Any, code: Iterable[str] = ()) -> str:
        """The key of a result computed from ``inputs`` by the code in ``code`` (globs)."""
        return digest({"efgen": __version__, "kind": self.kind, "inputs": inputs,
                       "coefficients": code_digest("configs/model/*.yaml"),
                       "code": code_digest(*code) if code else ""})

    def _path(self, key: str) -> Path:
        assert self.dir is not None
        return self.dir / key[:2] / f"{key}.json"

    def get(self, key: str) -> Any | None:
        """The stored result, or None (absent, cache off, or unreadable)."""
        if self.dir is None:
            return None
        try:
            value = json.loads(self._path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self.misses += 1
            return None
        self.hits += 1
        return value

    def put(self, key: str, value: Any) -> None:
        """Store ``value`` (JSON) atomically; a cache that cannot be written is skipped."""
        if self.dir is None:
            return
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    json.dump(value, f, sort_keys=True, allow_nan=True)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError:
            pass
