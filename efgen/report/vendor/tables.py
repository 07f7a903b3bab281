"""The ``+---+`` text tables of the ``.rpt`` layouts, read by column *name*."""

from __future__ import annotations

import re
from dataclasses import dataclass

from efgen.errors import EfgenError
from efgen.report.vendor.common import _FIX_RERUN, Resources, _resource_cell

# --------------------------------------------------------------------------------------
# Text tables
# --------------------------------------------------------------------------------------

_BORDER = re.compile(r"\+[-+]*\+")


@dataclass
class _Row:
    cells: list[str]        # stripped
    raw: list[str]          # unstripped (tree indentation lives here)
    line: int

    def get(self, col: int | None) -> str:
        return "" if col is None else self.cells[col]


@dataclass
class _Table:
    headers: list[str]
    norm: list[str]
    rows: list[_Row]
    line: int               # line of the top border (1-based)
    section: str
    plus: str
    star: str
    closed: bool
    end_line: int

    def col(self, *patterns: str) -> int | None:
        for pat in patterns:
            rx = re.compile(pat)
            for i, h in enumerate(self.norm):
                if rx.fullmatch(h):
                    return i
        return None

    def has(self, *patterns: str) -> bool:
        return self.col(*patterns) is not None


def _norm_header(h: str) -> str:
    return re.sub(r"[^a-z0-9%]+", " ", h.lower()).strip()


def _separators(s: str) -> list[int]:
    return [i for i, c in enumerate(s) if c in "|+"]


def _segments(s: str) -> list[tuple[int, int, str]]:
    seps = _separators(s)
    return [(a, b, s[a + 1:b]) for a, b in zip(seps, seps[1:])]


def _scan_tables(text: str) -> list[_Table]:
    """Every ``+---+`` table in the text, with the headings it sits under."""
    lines = text.split("\n")
    tables: list[_Table] = []
    section = plus = star = ""
    i, n = 0, len(lines)
    while i < n:
        raw = lines[i]
        s = raw.strip()
        if s.startswith("==") and s.strip("=").strip():
            section = s.strip("=").strip()
            plus = star = ""
        elif s.startswith("+ ") and not _BORDER.fullmatch(s):
            label = s[2:].split(":")[0].strip()
            if raw[:1] == "+":
                plus, star = label, ""
            else:
                star = ""
        elif s.startswith("* "):
            star = s[2:].split(":")[0].strip()
        elif _BORDER.fullmatch(s):
            table, i = _read_table(lines, i, section, plus, star)
            tables.append(table)
            continue
        i += 1
    return tables


def _read_table(lines: list[str], i: int, section: str, plus: str,
                star: str) -> tuple[_Table, int]:
    top = lines[i].strip()
    width = len(top)
    start = i
    header_lines: list[str] = []
    j = i + 1
    n = len(lines)
    while j < n:
        s = lines[j].strip()
        if _BORDER.fullmatch(s):
            break
        if not s.startswith(("|", "+")):
            break
        header_lines.append(s)
        j += 1
    if j >= n or not _BORDER.fullmatch(lines[j].strip()) or len(lines[j].strip()) != width:
        # Header never closed: truncated (or a headerless fragment).
        return _Table([], [], [], start + 1, section, plus, star, False, j), max(j, i + 1)
    header_border = lines[j].strip()
    j += 1

    # Column boundaries: every separator position in the header area.
    bounds = set(_separators(top)) | set(_separators(header_border))
    for h in header_lines:
        bounds |= set(_separators(h))
    cols = sorted(b for b in bounds if b < width)
    spans = list(zip(cols, cols[1:]))

    headers = []
    for a, b in spans:
        parts = []
        for h in header_lines:
            for sa, sb, txt in _segments(h):
                if sa <= a and b <= sb:
                    t = txt.strip()
                    if t and set(t) != {"-"}:
                        parts.append(t)
                    break
        headers.append(" ".join(parts))

    rows: list[_Row] = []
    closed = False
    while j < n:
        s = lines[j].strip()
        if _BORDER.fullmatch(s):
            closed = len(s) == width
            if not closed:
                j += 1
                break
        elif s.startswith("|"):
            closed = False
            raw_cells = s.split("|")[1:-1] if s.endswith("|") else None
            if raw_cells is None or len(raw_cells) != len(spans):
                raw_cells = [s[a + 1:b] for a, b in spans]   # positional fallback
            rows.append(_Row([c.strip() for c in raw_cells], raw_cells, j + 1))
        elif s.startswith("+"):
            closed = False
            j += 1
            break
        else:
            break
        j += 1
    return _Table(headers, [_norm_header(h) for h in headers], rows, start + 1, section, plus,
                  star, closed, j), j


def _check_closed(tables: list[_Table], file: str) -> None:
    for t in tables:
        if not t.closed:
            raise EfgenError(f"table starting at line {t.line} is not closed by a +---+ border: "
                             "the report is truncated or damaged", file=file,
                             where=f"line {t.end_line}", fix=_FIX_RERUN)


def _missing(what: str, file: str) -> EfgenError:
    return EfgenError(f"report has no {what}; the file is truncated or not a complete HLS "
                      "report", file=file, fix=_FIX_RERUN)


def _need_col(t: _Table, file: str, label: str, *patterns: str) -> int:
    c = t.col(*patterns)
    if c is None:
        raise EfgenError(f"table has no '{label}' column (columns: {', '.join(t.headers)})",
                         file=file, where=f"line {t.line}",
                         fix="this report layout is not supported yet; please send a copy "
                             "to the efgen maintainers")
    return c


# Column-name patterns (applied to normalised header names).
_LAT_MIN = r"latency( cycles| clock cycles)? min"
_LAT_MAX = r"latency( cycles| clock cycles)? max"
_LAT_AVG = r"latency( cycles| clock cycles)? avg"
_INT_MIN = r"interval( cycles| clock cycles)? min"
_INT_MAX = r"interval( cycles| clock cycles)? max"
_INT_AVG = r"interval( cycles| clock cycles)? avg"
_RES_COLS = {"bram_18k": (r"bram 18k", r"bram"), "dsp": (r"dsp", r"dsp48e", r"dsp48"),
             "ff": (r"ff",), "lut": (r"lut",), "uram": (r"uram",)}


def _resources_from_row(t: _Table, row: _Row, file: str, *, dash_is_zero: bool) -> Resources:
    vals = {}
    for key, pats in _RES_COLS.items():
        c = t.col(*pats)
        vals[key] = None if c is None else _resource_cell(
            row.cells[c], t.headers[c], file, f"line {row.line}", dash_is_zero=dash_is_zero)
    return Resources(**vals)
