"""Progress bars of the long commands (sweep, cosim, csim, synth), from tqdm.

On a terminal the bar is tqdm's own, redrawn in place on stderr. Anywhere else (a log
file, CI, a pipe) :func:`bar` writes the same tqdm line once per tenth of the work, as
``efgen sweep`` always did, so logs stay short and free of carriage returns; csim and
synth show theirs on a terminal only (as ``efgen build`` decides for its messages).
``enabled=False`` (``--no-progress``) shows nothing.
"""

from __future__ import annotations

import sys
import threading
from contextlib import contextmanager
from typing import Iterator

from tqdm import tqdm

__all__ = ["bar", "ticker", "on_tty"]


class _LogBar(tqdm):
    """A tqdm bar for a non-terminal stream: one full line per tenth of the total."""

    def __init__(self, *args, **kwargs):
        self._decile = -1
        super().__init__(*args, **kwargs)

    def display(self, msg=None, pos=None):
        total = self.total or 0
        decile = int(10 * self.n / total) if total else 10
        if decile == self._decile:
            return True
        self._decile = decile
        self.fp.write((msg if msg is not None else self.__str__()) + "\n")
        self.fp.flush()
        return True

    def close(self):
        if self.disable:
            return
        self.disable = True      # tqdm's own close would redraw with a carriage return
        with self._lock:
            self._instances.discard(self)


def bar(total: int, desc: str = "", *, unit: str = "it", enabled: bool = True,
        stream=None) -> tqdm:
    """A progress bar over ``total`` units on ``stream`` (default stderr)."""
    stream = stream if stream is not None else sys.stderr
    off = not enabled or total <= 0
    tty = bool(getattr(stream, "isatty", lambda: False)())
    if off:
        return tqdm(total=total, disable=True)
    if tty:
        return tqdm(total=total, desc=desc or None, unit=unit, file=stream,
                    dynamic_ncols=True, leave=True)
    return _LogBar(total=total, desc=desc or None, unit=unit, file=stream, mininterval=0,
                   miniters=1, ncols=120, ascii=True)


@contextmanager
def ticker(desc: str, *, enabled: bool = True, stream=None) -> Iterator[None]:
    """Elapsed time of one long call (a Yosys run) on a terminal, redrawn twice a second
    by tqdm; nothing on a non-terminal (a log gets the caller's own summary line)."""
    stream = stream if stream is not None else sys.stderr
    if not enabled or not getattr(stream, "isatty", lambda: False)():
        yield
        return
    t = tqdm(total=None, desc=desc, file=stream, bar_format="{desc}: {elapsed}", leave=False)
    stop = threading.Event()

    def tick():
        while not stop.wait(0.5):
            t.refresh()

    th = threading.Thread(target=tick, daemon=True)
    th.start()
    try:
        yield
    finally:
        stop.set()
        th.join()
        t.close()


def on_tty(stream=None) -> bool:
    """True when ``stream`` (default stderr) is a terminal."""
    stream = stream if stream is not None else sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())
