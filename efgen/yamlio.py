"""Strict YAML reading shared by every config loader (nets, boards, sweeps, overrides).

PyYAML silently keeps the last of two equal keys; a user who writes ``stride`` twice
meant something, so duplicates are an error here. Syntax errors become one-line
:class:`EfgenError` messages that carry the file and the line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from efgen.errors import EfgenError


class _StrictLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False):
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise EfgenError(
                f"duplicate key '{key}'",
                where=f"line {key_node.start_mark.line + 1}",
                fix=f"keep one '{key}' (the first is on line {seen[key] + 1})",
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_yaml(path: str | Path) -> Any:
    """Parse ``path``; any problem is an EfgenError naming the file (and line)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EfgenError("file not found", file=str(path), fix="check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise EfgenError(f"cannot read file ({exc.__class__.__name__})", file=str(path),
                         fix="pass a readable UTF-8 YAML file") from None
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - SafeLoader subclass
    except EfgenError as exc:
        raise EfgenError(exc.what, file=str(path), where=exc.where, fix=exc.fix) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else None
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise EfgenError(f"YAML syntax error: {problem}", file=str(path), where=where,
                         fix="fix the YAML syntax at that position") from None
