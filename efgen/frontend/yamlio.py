"""Strict YAML reading shared by every config loader (nets, boards, sweeps, overrides).

PyYAML silently keeps the last of two equal keys; a user who writes ``stride`` twice
meant something, so duplicates are an error here. Every mapping comes back as a
:class:`LineMap` (a dict that remembers the 1-based line of each key), so validators can
point at the line. Syntax errors become one-line :class:`EfgenError` messages that
carry the file and the line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from efgen.errors import EfgenError


class LineMap(dict):
    """A YAML mapping that remembers the line (1-based) of itself and of each key."""

    line: int = 0
    key_lines: dict[Any, int]

    def line_of(self, key: Any) -> int | None:
        return getattr(self, "key_lines", {}).get(key)


class _DuplicateKey(Exception):
    def __init__(self, key: Any, line: int, first: int):
        super().__init__(key)
        self.key, self.line, self.first = key, line, first


class _Loader(yaml.SafeLoader):
    pass


def _construct_map(loader: _Loader, node: yaml.MappingNode) -> LineMap:
    loader.flatten_mapping(node)
    result = LineMap()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark,
                "found an unhashable key", key_node.start_mark) from None
        if key in result:
            raise _DuplicateKey(key, line, result.key_lines[key])
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = line
    return result


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_map)


def parse_yaml(text: str, file: str) -> Any:
    """Parse YAML ``text`` read from ``file`` (used in messages only)."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - SafeLoader subclass
    except _DuplicateKey as exc:
        raise EfgenError(f"duplicate key '{exc.key}' (first defined on line {exc.first})",
                         file=file, where=f"line {exc.line}",
                         fix="keep only one of the two entries") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        context = getattr(exc, "context", None)
        what = f"YAML syntax error: {problem}"
        if context:
            what += f" ({context})"
        where = _where(text, exc)
        if "\\t" in problem or "\t" in problem:
            fix = "indent with spaces, not tabs"
        else:
            fix = ("fix the YAML at that line: check the indentation, that every key is "
                   "followed by ': ' and that quotes are closed")
        raise EfgenError(what, file=file, where=where, fix=fix) from None


def _where(text: str, exc) -> str | None:
    """1-based "line L, column C" of a syntax error: where the mistake is, which is not
    always where PyYAML noticed it. An unclosed quote is reported where it opened. In a
    flow collection (``{...}``, ``[...]``) opened on an earlier line, a missing ',' or
    closing bracket is noticed only on a later line (a plain scalar runs on into the next
    line), so the mistake is at the end of the content line before the one noticed."""
    mark = getattr(exc, "problem_mark", None)
    if mark is None:
        return None
    ctx, context = getattr(exc, "context_mark", None), getattr(exc, "context", None) or ""
    line, col = mark.line, mark.column
    lines = text.splitlines()
    noticed = f"line {line + 1}, column {col + 1}"
    if ctx is not None and ctx.line < line <= len(lines):
        if "quoted scalar" in context:
            return f"line {ctx.line + 1}, column {ctx.column + 1} (the quote opened there)"
        if "flow" in context:
            j = line - 1
            while j > ctx.line and (not lines[j].strip() or lines[j].lstrip().startswith("#")):
                j -= 1
            return f"line {j + 1}, column {len(lines[j].rstrip()) + 1} (noticed at {noticed})"
    return noticed


def read_text(path: str | Path, what: str = "file") -> str:
    """Read a UTF-8 text file; problems are EfgenErrors naming the file."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EfgenError(f"{what} not found", file=str(path), fix="check the path") from None
    except IsADirectoryError:
        raise EfgenError(f"{what} is a directory", file=str(path),
                         fix="pass a YAML file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise EfgenError(f"cannot read {what} ({exc.__class__.__name__})", file=str(path),
                         fix="pass a readable UTF-8 YAML file") from None


def read_yaml(path: str | Path, what: str = "file") -> Any:
    """Read and parse ``path``; any problem is an EfgenError naming the file (and line)."""
    return parse_yaml(read_text(path, what), str(path))


def describe_value(v: Any) -> str:
    """How a YAML value reads in an error message: 'an integer (3)', 'a list', ..."""
    if v is None:
        return "nothing (the value is empty or null)"
    if isinstance(v, bool):
        return f"a boolean ({str(v).lower()})"
    if isinstance(v, int):
        return f"an integer ({v})"
    if isinstance(v, float):
        return f"a number ({v!r})"
    if isinstance(v, str):
        return f"a string ({v!r})"
    if isinstance(v, list):
        return "a list"
    if isinstance(v, dict):
        return "a mapping"
    return f"a {type(v).__name__}"
