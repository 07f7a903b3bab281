"""Combinational paths from a module's input ports to its output ports, on the netlist.

AMBA AXI (IHI 0022, "Clock and reset"): on master and slave interfaces there must be
no combinational path between input and output signals. :func:`io_paths` checks a
generated design for that on Yosys's word-level netlist: ``read_verilog; hierarchy;
proc; flatten; memory -nomap; opt_clean; write_json``, then a walk from every input bit
through the combinational cells and the asynchronous read ports of memories, stopping
at flip-flops and synchronous memory reads. Every (input port, output port) pair the
walk connects is a combinational path. Bitwise cells (``$and``, ``$mux``, ...) join bit
i to bit i; every other cell (adders, compares, ``$pmux``, shifts) joins all its input
bits to all its output bits, which can only add paths: a design it finds clean is clean
(techmapping to gates would be exact, at 4x Yosys's time).
A black-boxed module (``netlist(blackbox=...)``) is taken to join all its inputs to all
its outputs.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections import defaultdict
from pathlib import Path

from efgen.errors import EfgenError

# techmap's sequential cells: no combinational arc from any input to Q
_SEQ_PREFIXES = ("$_DFF", "$_SDFF", "$_DFFE", "$_SDFFE", "$_SDFFCE", "$_ALDFF", "$_DFFSR",
                 "$_DFFSRE", "$_ALDFFE", "$_SR_", "$_FF_")


_SEQ_CELLS = {"$dff", "$dffe", "$sdff", "$sdffe", "$sdffce", "$adff", "$adffe", "$aldff",
              "$aldffe", "$dffsr", "$dffsre", "$ff"}
# word-level cells whose output bit i depends on input bit i only (and $mux's select)
_BITWISE = {"$and", "$or", "$xor", "$xnor", "$not", "$pos", "$buf", "$mux", "$_AND_",
            "$_OR_", "$_XOR_", "$_NOT_", "$_MUX_", "$_BUF_"}


def _is_seq(cell_type: str) -> bool:
    return cell_type in _SEQ_CELLS or cell_type.startswith(_SEQ_PREFIXES)


def netlist(files: dict[str, str], top: str, workdir: Path | None = None,
            blackbox: tuple[str, ...] = ()) -> dict:
    """Yosys's flattened gate-level netlist of ``top`` (``write_json``), as a dict.

    Modules named in ``blackbox`` stay cells (:func:`io_paths` then takes every one of
    their inputs to reach every output: conservative, so a design clean with them boxed
    is clean); boxing the FP32 units cuts Yosys's time on a 2x2 array from ~100 s to a few."""
    import shutil

    exe = shutil.which("yosys")
    if exe is None:
        raise EfgenError("yosys not found", where="efgen.rtl.paths",
                         fix="apt-get install yosys")
    with tempfile.TemporaryDirectory(prefix="efgen-paths-") as tmp:
        work = Path(workdir) if workdir is not None else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        names = []
        for name, text in sorted(files.items()):
            (work / name).write_text(text)
            names.append(name)
        box = f"blackbox {' '.join(blackbox)}; " if blackbox else ""
        script = (f"read_verilog {' '.join(names)}; {box}hierarchy -check -top {top}; proc; "
                  "flatten; memory -nomap; opt_clean; "
                  "write_json net.json")
        r = subprocess.run([exe, "-q", "-p", script], cwd=work, capture_output=True,
                           text=True)
        if r.returncode != 0:
            raise EfgenError(f"yosys failed on {top}: {(r.stderr or r.stdout).strip()[-400:]}",
                             where="efgen.rtl.paths")
        return json.loads((work / "net.json").read_text())


def io_paths(net: dict, top: str) -> set[tuple[str, str]]:
    """Every (input port, output port) of ``top`` joined by a combinational path."""
    mod = net["modules"][top]
    fanout: dict[int, set[int]] = defaultdict(set)
    for cell in mod["cells"].values():
        t, conns, dirs = cell["type"], cell["connections"], cell.get("port_directions", {})
        if _is_seq(t):
            continue
        if t == "$mem_v2":
            p = cell["parameters"]
            nrd = int(p["RD_PORTS"], 2) if isinstance(p["RD_PORTS"], str) else int(p["RD_PORTS"])
            clk_en = p["RD_CLK_ENABLE"]
            clk_en = str(clk_en) if isinstance(clk_en, str) else format(int(clk_en), f"0{nrd}b")
            abits = len(conns["RD_ADDR"]) // max(nrd, 1)
            dbits = len(conns["RD_DATA"]) // max(nrd, 1)
            for k in range(nrd):
                if clk_en[len(clk_en) - 1 - k] == "1":
                    continue          # a synchronous read: the data comes from a register
                for a in conns["RD_ADDR"][k * abits:(k + 1) * abits]:
                    for d in conns["RD_DATA"][k * dbits:(k + 1) * dbits]:
                        if isinstance(a, int) and isinstance(d, int):
                            fanout[a].add(d)
            continue
        if not dirs:
            raise ValueError(f"cell type {t} has no port directions in the netlist")
        if t in _BITWISE:              # bit i of each data input to bit i of Y only
            y = conns["Y"]
            for pn in ("A", "B"):
                for i, b in enumerate(conns.get(pn, ())):
                    if isinstance(b, int) and i < len(y) and isinstance(y[i], int):
                        fanout[b].add(y[i])
            for b in conns.get("S", ()):
                if isinstance(b, int):
                    fanout[b].update(x for x in y if isinstance(x, int))
            continue
        ins = [b for pn, bits in conns.items() if dirs.get(pn) == "input" for b in bits
               if isinstance(b, int)]
        outs = [b for pn, bits in conns.items() if dirs.get(pn) == "output" for b in bits
                if isinstance(b, int)]
        for i in ins:
            fanout[i].update(outs)
    # netnames that alias bits need nothing: Yosys numbers a net's bits once
    out_bits: dict[int, str] = {}
    for name, port in mod["ports"].items():
        if port["direction"] == "output":
            for b in port["bits"]:
                if isinstance(b, int):
                    out_bits[b] = name
    found: set[tuple[str, str]] = set()
    for name, port in mod["ports"].items():
        if port["direction"] != "input":
            continue
        seen: set[int] = set()
        stack = [b for b in port["bits"] if isinstance(b, int)]
        while stack:
            b = stack.pop()
            if b in seen:
                continue
            seen.add(b)
            if b in out_bits:
                found.add((name, out_bits[b]))
            stack.extend(fanout.get(b, ()))
    return found


__all__ = ["netlist", "io_paths"]
