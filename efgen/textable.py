"""Plain-text tables for the terminal (right-aligned numbers, left-aligned text)."""

from __future__ import annotations

from collections.abc import Sequence


def fmt_int(n: int) -> str:
    return f"{n:,}"


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    numeric = [all(_is_num(r[i]) for r in cells[1:]) and len(cells) > 1
               for i in range(len(headers))]

    def line(r):
        return "  ".join(c.rjust(w) if num else c.ljust(w)
                         for c, w, num in zip(r, widths, numeric)).rstrip()

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), sep] + [line(r) for r in cells[1:]])


def _is_num(s: str) -> bool:
    s = s.replace(",", "").replace("%", "").strip()
    if s in ("", "-"):
        return True
    try:
        float(s)
        return True
    except ValueError:
        return False
