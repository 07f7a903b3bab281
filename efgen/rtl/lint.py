"""Declare-before-use check of generated Verilog (issue 19, review point 8).

Under ```default_nettype none`` a name used before its declaration is an error for some
tools (Vivado's parser reads a module once, top to bottom) and silently accepted by
others (Verilator and Icarus resolve names at elaboration), so neither simulator catches
it. :func:`used_before_declared` finds every such name: a signal, parameter or variable
declared in a module (``input``/``output``/``inout``, ``wire``, ``reg``, ``integer``,
``genvar``, ``localparam``, ``parameter``) whose first mention comes before its
declaration. Functions and tasks may be called before their definition and are not
checked; hierarchical names (``u.x``) are not either.
"""

from __future__ import annotations

import re

_KEYWORDS = ("input", "output", "inout", "wire", "reg", "integer", "genvar", "localparam",
             "parameter")
_DECL = re.compile(r"\b(" + "|".join(_KEYWORDS) + r")\b")
_IDENT = re.compile(r"(?<![\w$.'`])([A-Za-z_]\w*)")
_SKIP = {"wire", "reg", "signed", "unsigned", "integer", "input", "output", "inout"}


def _strip(text: str) -> str:
    """Comments, strings and attributes blanked out (positions kept)."""
    def blank(m):
        return re.sub(r"[^\n]", " ", m.group(0))
    text = re.sub(r"/\*.*?\*/", blank, text, flags=re.S)
    text = re.sub(r"//[^\n]*", blank, text)
    text = re.sub(r"\(\*.*?\*\)", blank, text, flags=re.S)
    return re.sub(r'"(?:\\.|[^"\\])*"', blank, text)


def _declared(body: str) -> dict[str, int]:
    """name -> position of its declaration in a module body."""
    out: dict[str, int] = {}
    for m in _DECL.finditer(body):
        # the declaration runs to the next ';' (or, in a port list, ',' or ')' ends an item)
        end = body.find(";", m.end())
        end = len(body) if end < 0 else end
        seg = body[m.end():end]
        if m.group(1) in ("input", "output", "inout"):
            cut = re.search(r"[,)]", seg)
            seg = seg[:cut.start()] if cut else seg
            items = [seg]
        else:
            depth, items, cur = 0, [], ""
            for ch in seg:               # top-level commas separate declared names
                depth += ch in "([{"
                depth -= ch in ")]}"
                if ch == "," and depth == 0:
                    items.append(cur)
                    cur = ""
                else:
                    cur += ch
            items.append(cur)
        for item in items:
            head = re.split(r"=", item, maxsplit=1)[0]
            head = re.sub(r"\[[^\]]*\]", " ", head)          # ranges, memory dimensions
            names = [n for n in re.findall(r"[A-Za-z_]\w*", head) if n not in _SKIP]
            if names:
                out.setdefault(names[-1], m.start())
    return out


def used_before_declared(text: str) -> list[tuple[str, str]]:
    """(module, name) for every name used before its declaration in ``text``."""
    text = _strip(text)
    found = []
    for mod in re.finditer(r"\bmodule\s+(\w+)(.*?)\bendmodule\b", text, re.S):
        body = mod.group(2)
        decl = _declared(body)
        funcs = set(re.findall(r"\b(?:function|task)\s+(?:\[[^\]]*\]\s*)?(\w+)", body))
        first: dict[str, int] = {}
        for m in _IDENT.finditer(body):
            first.setdefault(m.group(1), m.start())
        for name, at in decl.items():
            if name not in funcs and first.get(name, at) < at:
                found.append((mod.group(1), name))
    return sorted(found)


__all__ = ["used_before_declared"]
