"""User-facing errors.

Every error a user can cause (bad YAML, unknown names, infeasible requests) is raised as
:class:`EfgenError`. The CLI prints it as one line,
``efgen: error: <what> in <file>:<where> — <how to fix>``, and exits with code 2.
"""

from __future__ import annotations


class EfgenError(Exception):
    """An error caused by user input; printed as one line, exit code 2."""

    def __init__(self, what: str, *, file: str | None = None, where: str | None = None,
                 fix: str | None = None):
        self.what = what
        self.file = file
        self.where = where
        self.fix = fix
        super().__init__(self.message())

    def message(self) -> str:
        msg = self.what
        loc = ""
        if self.file:
            loc = str(self.file)
        if self.where:
            loc = f"{loc}:{self.where}" if loc else self.where
        if loc:
            msg += f" in {loc}"
        if self.fix:
            msg += f" — {self.fix}"
        # One line, always: user strings may carry newlines.
        return " ".join(msg.split())
