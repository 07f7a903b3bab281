"""Output folders that never lose a user's files.

Every command that writes a folder (``efgen build``, ``efgen csim``, ``efgen sweep``)
writes it into a temporary sibling and moves it into place at the end, so a failure
never leaves a half-written folder. An existing folder is replaced only when it is
recognisably an earlier output of the same command:

* it holds the command's marker file (``design.json`` for builds, ``points.json`` for
  sweeps), and
* every entry at its top level is a name the command writes.

Anything else is refused with one line naming the foreign entries, unless the user
passes ``--force``. The folder holding the current working directory is never replaced
unless it is an earlier output (``-o .`` inside a build folder works; inside a checkout it
is refused even with ``--force``).

The replacement moves entries, not the folder itself: the folder keeps its inode, its
mode and its place, which also makes ``-o .`` and mount points work. New folders get the
user's umask (``tempfile.mkdtemp`` would leave them 0700).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from efgen.errors import EfgenError

_LISTED = 4     # foreign entries named in the error


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _contains_cwd(folder: Path) -> bool:
    try:
        cwd = Path.cwd().resolve()
    except OSError:
        return False
    return cwd == folder or folder in cwd.parents


def check_output_dir(out: str | Path, *, marker: str, owned: Iterable[str], what: str,
                     force: bool = False, flag: str = "-o") -> Path:
    """Check that ``out`` may be written; returns it resolved. Raises EfgenError (exit 2)
    before anything is created when it may not."""
    path = Path(out)
    shown = str(out)
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        raise EfgenError("the output path exists and is not a folder", file=shown,
                         where=flag, fix=f"choose another {flag} DIR")
    out = path.resolve()
    if not out.exists():
        parent = out.parent
        while not parent.exists():
            parent = parent.parent
        if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            raise EfgenError(f"cannot create the output folder: {parent} is not writable",
                             file=shown, where=flag, fix=f"choose another {flag} DIR")
        return out
    entries = sorted(out.iterdir())
    if not entries:
        return out
    owned = set(owned)
    foreign = [p.name + ("/" if p.is_dir() else "") for p in entries if p.name not in owned]
    ours = (out / marker).is_file()
    if ours and not foreign:
        return out
    if _contains_cwd(out):
        raise EfgenError(f"refusing to replace {out}: it holds the current folder and is not "
                         f"an earlier {what}", file=shown, where=flag,
                         fix=f"choose another {flag} DIR")
    if force:
        return out
    named = ", ".join(foreign[:_LISTED]) + (f" and {len(foreign) - _LISTED} more"
                                           if len(foreign) > _LISTED else "")
    if ours:
        why = f"holds files efgen did not write ({named})"
    else:
        why = f"is not an earlier {what} (it has no {marker}; it holds {named})"
    raise EfgenError(f"the output folder {why}", file=shown, where=flag,
                     fix=f"choose another {flag} DIR, or pass --force to replace it")


def make_temp(out: Path) -> Path:
    """An empty temporary folder beside ``out`` (same file system), with the user's umask."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name or 'out'}.tmp-", dir=out.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    return tmp


def publish(tmp: Path, out: Path) -> None:
    """Move the finished ``tmp`` into place as ``out``, replacing what ``out`` held.

    Entries are moved, never the existing folder itself; on a failure part-way, the old
    entries are put back.
    """
    tmp, out = Path(tmp), Path(out)
    if not out.exists():
        os.replace(tmp, out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name or 'out'}.old-", dir=out.parent))
    moved_old: list[str] = []
    moved_new: list[str] = []
    try:
        for p in sorted(out.iterdir()):
            os.replace(p, old / p.name)
            moved_old.append(p.name)
        for p in sorted(tmp.iterdir()):
            os.replace(p, out / p.name)
            moved_new.append(p.name)
    except BaseException:
        for name in moved_new:
            os.replace(out / name, tmp / name)
        for name in moved_old:
            os.replace(old / name, out / name)
        shutil.rmtree(old, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(tmp, ignore_errors=True)
