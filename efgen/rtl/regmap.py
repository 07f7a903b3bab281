"""The s_axilite register map Vitis HLS gives the HLS top, derived from its source.

:func:`hls_top_arguments` reads ``templates/hls/efgen_top.cpp.j2``: the arguments of
``efgen_top`` in order and, from its INTERFACE pragmas, which of them sit on the
``control`` s_axilite bundle and how wide their registers are: a struct passed by value
on s_axilite is one aggregated argument of the struct's C size (padding included:
Vitis pads an aggregate rather than packing it on AXI interfaces, UG1399 "Structs on the
Interface"); an m_axi pointer with ``offset=slave`` has a 64-bit address register in the
bundle. :func:`vitis_axilite_map` lays them out as Vitis does (UG1399 "S_AXILITE Control
Register Map", ap_ctrl_hs): 0x00 AP_CTRL, 0x04 GIE, 0x08 IER, 0x0C ISR, then from 0x10
each argument in order, ceil(bits / 32) data words followed by one reserved word.

efgen.rtl.dma builds the RTL's ``desc_regs`` map from this, and tests check the rendered
RTL against it, so both builds answer one driver. **Only a Vitis run confirms it**: the
generated ``xefgen_top_hw.h`` (``solution1/impl/misc/drivers``) lists the offsets; the
tail padding of the 156-byte EfgenDesc to 160 bytes (40 data words) is the one figure
the documentation leaves open.
"""

from __future__ import annotations

import ctypes
import re

from efgen.hls.desc import EfgenDesc
from efgen.resources import data_dir

CTRL_WORDS = 4                # AP_CTRL, GIE, IER, ISR
POINTER_BITS = 64             # m_axi offset=slave: a 64-bit address register
_STRUCTS = {"EfgenDesc": ctypes.sizeof(EfgenDesc) * 8}


def hls_top_arguments(text: str | None = None) -> list[tuple[str, int]]:
    """``(argument, register bits)`` of every s_axilite argument of the HLS top, in order.

    ``text``: the HLS top's source (default: the template ``efgen_top.cpp.j2``)."""
    if text is None:
        text = (data_dir("templates") / "hls" / "efgen_top.cpp.j2").read_text()
    m = re.search(r'extern\s+"C"\s+void\s+efgen_top\s*\(([^)]*)\)', text)
    if m is None:
        raise ValueError("no 'extern \"C\" void efgen_top(...)' in the HLS top")
    args = []
    for a in m.group(1).split(","):
        decl = " ".join(a.split())
        am = re.fullmatch(r"(?:const\s+)?(\w+)\s*(\*?)\s*(\w+)", decl)
        if am is None:
            raise ValueError(f"cannot parse argument {decl!r} of efgen_top")
        args.append((am.group(3), am.group(1), bool(am.group(2))))
    pragmas = re.findall(r"INTERFACE\s+(\w+)\s+([^)\n]*)", text)
    iface = {}
    for mode, opts in pragmas:
        kv = dict(re.findall(r"(\w+)=(\S+)", opts))
        iface[kv.get("port")] = (mode, kv)
    out = []
    for name, ctype, pointer in args:
        mode, kv = iface.get(name, (None, {}))
        if mode == "m_axi":
            if kv.get("offset") != "slave":
                raise ValueError(f"m_axi argument {name}: only offset=slave puts its "
                                 "address in the control bundle")
            out.append((name, POINTER_BITS))
        elif mode == "s_axilite" and not pointer:
            if ctype not in _STRUCTS:
                raise ValueError(f"s_axilite argument {name}: unknown type {ctype}")
            out.append((name, _STRUCTS[ctype]))
        else:
            raise ValueError(f"argument {name} of efgen_top has no s_axilite register "
                             f"(interface {mode!r})")
    return out


def vitis_axilite_map(args: list[tuple[str, int]]) -> dict[str, tuple[int, int]]:
    """argument -> (byte offset of its first data word, data words), Vitis's layout."""
    out = {}
    off = 4 * CTRL_WORDS
    for name, bits in args:
        words = -(-bits // 32)
        out[name] = (off, words)
        off += 4 * (words + 1)          # the data words and one reserved word
    return out


__all__ = ["hls_top_arguments", "vitis_axilite_map", "CTRL_WORDS", "POINTER_BITS"]
