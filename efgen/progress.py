"""Progress bars of the long commands (sweep, cosim, csim, synth), from tqdm.

On a terminal the bar is tqdm's own, redrawn in place on stderr. Anywhere else (a log
file, CI, a pipe) the same tqdm line is written once per tenth of the work, so logs stay
short and free of carriage returns. ``enabled=False`` (``--no-progress``) shows nothing.
"""

from __future__ import annotations

import sys

from tqdm import tqdm

__all__ = ["bar"]


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
