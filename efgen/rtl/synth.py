"""Synthesis of the reference RTL with Yosys, and the model's prediction for that flow.

:func:`run_yosys` runs ``yosys synth_xilinx -family xcup -flatten -noiopad`` on a set of
Verilog files and returns the cell counts (:class:`SynthResult`); :func:`predict_rtl` is
what the model expects Yosys to produce for an engine (:class:`EngineParams`) plus the
extra units a full top adds; :func:`format_table` puts the two side by side.
:func:`synth_build_dir` is ``efgen synth --yosys DIR``.

The prediction, from configs/model/coefficients.yaml (``rtl_yosys``; every figure
measured with Yosys 0.23 or read off its techlibs):

* DSP48E2: 2 per ``fp32_mul`` (Yosys maps the 24x24 significand product onto two
  DSP48E2 tiles), 0 per ``fp32_add`` (on UltraScale+ Yosys puts only multipliers into
  DSPs), plus one per integer multiplier of the controller and the weight-load path that
  Yosys's ``mul2dsp`` rule sends to a DSP (:func:`control_multipliers`: result at least
  9 bits wide as used, both operands at least 2 bits).
* Block RAM: every ``engine_ram`` (simple dual port, registered read; its output
  register, issue 19, stays flip-flops in Yosys: ``width`` FF per RAM in FF; so do the
  per-row address copies, :func:`efgen.rtl.engine.replica_ff`) goes to the
  cheapest mapping of Yosys's ``memory_libmap`` cost model (:func:`ram_cells`): LUT RAM
  (RAM32M16, RAM64M8; cost scaled by the width used) or RAMB18E2 / RAMB36E2 in their
  best aspect ratio. A 32-bit RAM is LUT RAM up to 64 words, one RAMB18E2 from 128 to
  512 words, one RAMB36E2 at 1024, ``depth / 1024`` RAMB36E2 beyond.
* LUT and FF: the FP32 units at their Yosys costs; for ``engine_core`` alone an estimate
  per Tm/Tn lane; for ``efgen_top`` (``shell``) the units beside the engine at their own
  Yosys-measured cells (``units``, :func:`unit_cost`: vec_unit, bn_unit, pool_unit,
  fp32_div, fp32_sqrt) and a remainder a + b x Tm*Tn (``rest_top``), both from
  hierarchical Yosys runs of efgen_top (a flattened run counts fewer LUTs).

Engine buffers (``engine_core``): IFM ``tn`` RAMs of ``2 * ifm_depth`` x 32, OFM
``2 * tm`` RAMs of ``ofm_depth`` x 32, weights ``tm * tn`` RAMs of ``wbuf_depth`` x 32.

``rtl.json``, the contract between ``efgen build`` (which writes ``DIR/rtl/*.v``) and
``efgen synth --yosys DIR``::

    {"top": "<top module>",
     "engine": {<EngineParams fields: tm, tn, ifm_depth, ofm_depth, wbuf_depth, kmax,
                smax, wl_words, impl>},
     "extra_fp_muls": <int, fp32_mul instances outside engine_core>,
     "extra_fp_adds": <int, optional, fp32_add instances outside engine_core>,
     "extra_rams": [[<width bits>, <depth words>], ...],
     "extra_muls": [[<what>, <a bits>, <b bits>, <result bits used>], ...],
     "extra_mems": [[<what>, <width bits>, <depth words>, <transparent>], ...],
     "shell": <bool, optional: add efgen_top's fitted LUT/FF remainder (rest_top)>,
     "units": [[<unit of rtl_yosys.top_units>, <lanes T>], ...]}

``extra_rams`` lists RAMs outside the engine written in ``engine_ram``'s style (one
write port, one registered read port), each at least 16 words deep. ``extra_muls``:
unsigned integer multipliers outside ``engine_core`` as Yosys sees them after width
reduction (a constant operand counts the bits of its odd part: Yosys shifts out its
trailing zeros). ``extra_mems``: other memories of any depth with one write port and one
read port, read either through a data register (``transparent`` false) or
asynchronously at a registered address (FIFO heads: ``transparent`` true, which Yosys
maps as a transparent synchronous port and charges soft transparency logic for).
Every ``extra_*`` key is optional. :func:`top_spec` derives the whole list for the
accelerator top ``efgen_top`` from its :class:`~efgen.rtl.top.RtlParams`:

* ``sgd_wb``: 3 fp32_mul and 4 fp32_add; its FIFOs (W and V in: 16 words, W', V' and
  the WU bias gradient's G' out: 64 words at the default PIECE, asynchronous read: LUT
  RAM); K*K (KW x KW),
  K*K*(Tm*Tn) (2KW x the odd part of Tm*Tn, when that is not 1), words = nblk times
  that (WA x (2KW + the odd part's bits)) and G*K*K (GW x 2KW, WA bits used).
* ``layer_seq``: the three shared 16 x 30-bit multipliers (set-up, loader, storer; 30
  bits of the product used, 46 of the registered set-up product: 2 DSP48E2 each); its
  products of tile indices by Tm and Tn are shift-adds (no DSP); the tile-window table (5 x
  (IA+1) bits x 2, registered read: LUT RAM) and the tile pixel counts (OA bits x 2,
  read at a registered address: flip-flops while OA < 10); the WU bias RAM
  (``load_words`` banks of efgen.rtl.top.BIAS_BUF * WUB_SLOTS / load_words words,
  registered read) and its ``load_words`` fp32_add_fb (counted as fp32_add: the bias
  gradient's adds on the error tiles' words).
* ``tile_wr``: a 16-entry FIFO of ``store_words`` words (LUT RAM), the FP bias buffer
  (efgen.rtl.top.BIAS_BUF words in rows of ``store_words``, registered read) and
  ``store_words`` fp32_add_fb (counted as fp32_add: the bias add on the store lanes);
  ``tile_rd`` and ``desc_regs``: registers only.
* ``vec_unit``: one fp32_add_fb (counted as an fp32_add) and a 16-word output FIFO (asynchronous read: LUT RAM); its
  N = batch * blocks * H * W is a shift-add loop (no multiplier).
* ``bn_unit``: 4 fp32_add_fb (counted as fp32_add) and 5 fp32_mul (its stream chain and
  its scalar operations), fp32_div and fp32_sqrt (iterative: compares and subtractions in
  fabric, no DSP), a 32-word output FIFO (asynchronous read: LUT RAM); its register file
  (12 registers x T lanes, one write port) octal-port LUT RAM, 16 RAM32M16 a lane
  (``top_units``), its sums and delay lines flip-flops, its set-up products shift-adds
  (no multiplier).
* ``pool_unit``: one fp32_add_fb (counted as an fp32_add), its row buffer
  (efgen.rtl.top.POOL_BUF words, registered read: block RAM), a 16-word output FIFO
  (asynchronous read: LUT RAM) and its 16-entry table of i * kw (8 bits, read at a
  registered index); its products are shift-add loops (no multiplier).
* the DMA engines: each has a command FIFO of 2*OUTSTANDING words of {lane, length}
  (LUT RAM) and a per-burst FIFO of OUTSTANDING beat addresses (for FAIL_ADDR; LUT RAM;
  ``axi_dma_wr``'s also holds the burst's last-of-command bit); ``axi_dma_wr`` also the
  per-burst AWLEN FIFO (8 bits, LUT RAM). Each read engine has a read buffer of
  2**ceil(log2(OUTSTANDING * MAX_BURST)) beats and the write engine a write buffer of
  2 * MAX_BURST beats of {WSTRB, data} (registered reads: block RAM at the usual sizes),
  the space the AXI rules of issue 19 reserve (reads issued only against free buffer,
  AW only with its burst's data).

A memory goes to flip-flops when Yosys's ``memory_libmap`` finds no RAM cheaper than
``width * depth`` (one cost unit a bit); a RAM's cost is :func:`ram_cells`'s plus 2 (one
read port) plus 6 for soft transparency (:func:`memory_cells`).
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from efgen.errors import EfgenError
from efgen.model.coeffs import coefficients
from efgen.rtl.engine import EngineParams, replica_ff
from efgen.rtl.fpu import FTZ_IMPLS

FAMILIES = ("xcup", "xcu")   # UltraScale+ and UltraScale: DSP48E2, RAMB18E2/RAMB36E2
INSTALL_HINT = "install Yosys 0.23 or later: apt-get install yosys"
MIN_RAM_DEPTH = 16

# LUTs a distributed-RAM cell occupies (UG574).
LUTRAM_LUTS = {"RAM32M16": 8, "RAM64M8": 8, "RAM32M": 4, "RAM64M": 4, "RAM32X1D": 2,
               "RAM64X1D": 2, "RAM128X1D": 4, "RAM256X1D": 8, "RAM32X1S": 1,
               "RAM64X1S": 1, "RAM128X1S": 2, "RAM256X1S": 4, "RAM512X1S": 8,
               "RAM32X16DR8": 8, "RAM64X8SW": 8}
_LUT = re.compile(r"LUT[1-6]|INV")
_FF = re.compile(r"FD[CPRS]E(_1)?")
_SRL = re.compile(r"SRL16E|SRLC16E|SRLC32E")
_CARRY = re.compile(r"CARRY[48]")

# Keys of the counts dicts (prediction and measurement), in table order.
ROWS = (("DSP48E2", "DSP48E2"), ("RAMB18E2", "RAMB18E2"), ("RAMB36E2", "RAMB36E2"),
        ("RAMB18-eq", "RAMB18-equivalent"), ("LUTRAM", "LUT as RAM"), ("LUT", "LUT"),
        ("FF", "FF"))


def _c() -> dict[str, Any]:
    return coefficients()["rtl_yosys"]


def c_lane() -> str:
    lane = coefficients()["per_lane"]
    return f"{lane['lut']} LUT / {lane['ff']} FF"


# ------------------------------------------------------------------ Yosys results

def summarize(cells: dict[str, int]) -> dict[str, int]:
    """Resource counts from Yosys's cells by type.

    ``LUT``: LUT1..LUT6 and INV (a LUT1 in the fabric); ``LUTRAM``: LUTs used as
    distributed RAM; ``FF``: FDRE/FDSE/FDCE/FDPE; ``RAMB18-eq``: RAMB18E2 + 2 x RAMB36E2.
    """
    def total(rx):
        return sum(v for k, v in cells.items() if rx.fullmatch(k))

    r18, r36 = cells.get("RAMB18E2", 0), cells.get("RAMB36E2", 0)
    return {
        "DSP48E2": cells.get("DSP48E2", 0),
        "RAMB18E2": r18,
        "RAMB36E2": r36,
        "RAMB18-eq": r18 + 2 * r36,
        "URAM288": cells.get("URAM288", 0),
        "LUTRAM": sum(n * LUTRAM_LUTS[k] for k, n in cells.items() if k in LUTRAM_LUTS),
        "LUT": total(_LUT),
        "FF": total(_FF),
        "SRL": total(_SRL),
        "CARRY": total(_CARRY),
    }


def parse_stat(text: str) -> dict[str, int]:
    """Cells by type from Yosys's ``stat -json`` output or its plain ``stat`` text.

    Text: the ``design hierarchy`` totals when present (an unflattened design), else the
    last module printed.
    """
    if text.lstrip().startswith("{"):
        data = json.loads(text)
        if "design" in data:
            return {k: int(v) for k, v in data["design"]["num_cells_by_type"].items()}
        mods = list(data.get("modules", {}).values())
        if len(mods) != 1:
            raise ValueError("stat -json output without design totals: pass -top")
        return {k: int(v) for k, v in mods[0]["num_cells_by_type"].items()}
    sections = re.split(r"^=== (.+?) ===\s*$", text, flags=re.M)
    if len(sections) < 3:
        raise ValueError("no '=== module ===' section in the stat text")
    names, bodies = sections[1::2], sections[2::2]
    body = bodies[names.index("design hierarchy")] if "design hierarchy" in names else bodies[-1]
    cells, inside = {}, False
    for line in body.splitlines():
        if re.match(r"\s*Number of cells:", line):
            inside = True
            continue
        if inside:
            m = re.fullmatch(r"\s+(\S+)\s+(\d+)\s*", line)
            if not m:
                if cells:
                    break
                continue
            cells[m.group(1)] = int(m.group(2))
    return cells


@dataclass
class SynthResult:
    top: str
    family: str
    cells: dict[str, int]   # every cell type Yosys reports
    seconds: float          # Yosys wall time
    version: str
    log: Path | None = None

    @property
    def counts(self) -> dict[str, int]:
        return summarize(self.cells)


def _yosys() -> str:
    exe = shutil.which("yosys")
    if exe is None:
        raise EfgenError("yosys not found on PATH", where="efgen synth", fix=INSTALL_HINT)
    return exe


def yosys_version() -> str:
    """``yosys -V``, e.g. ``Yosys 0.23 (git sha1 7ce5011c24b)``."""
    r = subprocess.run([_yosys(), "-V"], capture_output=True, text=True)
    return r.stdout.strip()


def run_yosys(files: dict[str, str] | Path | str, top: str, family: str = "xcup",
              workdir: Path | str | None = None, log: Path | str | None = None,
              timeout: float | None = None, flatten: bool = True) -> SynthResult:
    """Synthesize ``files`` (file name -> Verilog text, or a folder whose ``*.v`` are
    read) for ``family`` with ``top`` on top; the cell counts and the wall time.

    The script is ``read_verilog <files>; synth_xilinx -family <family> -top <top>
    -flatten -noiopad; stat`` (``flatten`` false: without ``-flatten``, the hierarchical
    run the ``rest_top`` remainder is fitted to; the counts are the design's totals).
    Scratch files (script, stat output, the texts of ``files``)
    go to ``workdir`` (default: a temporary folder); the full log to ``log`` (default:
    ``workdir/yosys.log``). A missing yosys or a failed run is an :class:`EfgenError`.
    """
    if family not in FAMILIES:
        raise EfgenError(f"family {family!r} not supported", where="efgen synth",
                         fix=f"use one of {', '.join(FAMILIES)}")
    exe = _yosys()
    version = yosys_version()
    with tempfile.TemporaryDirectory(prefix="efgen-yosys-") as tmp:
        work = Path(workdir) if workdir is not None else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        if isinstance(files, (str, Path)):
            src = Path(files)
            paths = sorted(p.resolve() for p in src.glob("*.v"))
            if not paths:
                raise EfgenError("no Verilog files (*.v)", file=str(src),
                                 fix="generate the RTL into this folder first")
        else:
            src = work
            paths = []
            for name, text in sorted(files.items()):
                (work / name).write_text(text)
                paths.append((work / name).resolve())
        log_path = Path(log) if log is not None else work / "yosys.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        stat_json = work / "stat.json"
        script = work / "synth.ys"
        script.write_text(
            "".join(f'read_verilog "{p}"\n' for p in paths)
            + f"synth_xilinx -family {family} -top {top}{' -flatten' if flatten else ''} -noiopad\n"
            + "tee -q -o stat.json stat -json\n"
            + "tee -o stat.txt stat\n")
        t0 = time.perf_counter()
        from efgen.progress import ticker

        try:
            with ticker(f"yosys synth_xilinx -top {top}"):
                r = subprocess.run([exe, "-q", "-l", str(log_path.resolve()), "-s",
                                    str(script.resolve())], cwd=work, capture_output=True,
                                   text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise EfgenError(f"yosys did not finish within {timeout:g} s", file=str(src),
                             where=top, fix="synthesize a smaller design") from None
        seconds = time.perf_counter() - t0
        if r.returncode != 0 or not stat_json.exists():
            text = log_path.read_text(errors="replace") if log_path.exists() else ""
            errs = [ln for ln in (text + "\n" + r.stderr).splitlines() if "ERROR" in ln]
            why = errs[0].strip() if errs else f"exit code {r.returncode}"
            raise EfgenError(f"yosys failed on top module {top}: {why}", file=str(src),
                             fix=f"see the full log {log_path}")
        # a hierarchical run's `stat -json` is not valid JSON in Yosys 0.23 (its design
        # section), so its totals come from the text's "design hierarchy" section
        cells = parse_stat((work / "stat.txt").read_text() if not flatten
                           else stat_json.read_text())
    return SynthResult(top=top, family=family, cells=cells, seconds=seconds,
                       version=version, log=log_path if log is not None else None)


# ------------------------------------------------------------------ model

def mul_dsp(a_bits: int, b_bits: int, y_bits: int) -> int:
    """DSP48E2 tiles Yosys's mul2dsp gives an unsigned ``a x b`` product of which
    ``y_bits`` are used (0: the product stays in LUTs)."""
    m = _c()["mul2dsp"]
    if min(a_bits, b_bits) < m["min_width"] or y_bits < m["y_min_width"]:
        return 0
    a, b = max(a_bits, b_bits), min(a_bits, b_bits)
    # DSP_SIGNEDONLY: unsigned operands take one bit more, so tiles hold 26 x 17 bits.
    return math.ceil(a / (m["a_max"] - 1)) * math.ceil(b / (m["b_max"] - 1))


def _clog2(n: int) -> int:
    return max(1, math.ceil(math.log2(n))) if n > 1 else 1


def control_multipliers(p: EngineParams) -> list[tuple[str, int, int, int]]:
    """The integer multipliers of ``engine_ctrl`` and ``engine_wload`` as Yosys sees
    them after width reduction: ``(what, a bits, b bits, result bits used)``.

    From templates/rtl/engine_ctrl.v.j2 and engine_wload.v.j2; the widths of the two
    weight-load address products (BW, then WA) were checked against Yosys runs.
    """
    w = p.widths
    bw = max(w["WA"], w["LW"]) + 1
    out = [("engine_ctrl tr*tc", w["TW"], w["TW"], w["TW"]),
           ("engine_ctrl S*in_w", w["SW"], w["IA"] + 1, w["IA"] + 1),
           ("engine_ctrl K*K", w["KW"], w["KW"], w["K2W"]),
           ("engine_wload K*K", w["KW"], w["KW"], w["K2W"])]
    for g in range(p.wl_words):
        out.append((f"engine_wload word {g} (ob-first)*nbred", bw, w["WA"], bw))
        out.append((f"engine_wload word {g} (...)*K*K", bw, w["K2W"], w["WA"]))
    return out


def ram_cells(width: int, depth: int) -> tuple[str, int]:
    """``(cell, count)`` Yosys's memory_libmap picks for one ``width x depth`` RAM in
    ``engine_ram``'s style (simple dual port, registered read): the cheapest of LUT RAM
    (cost scaled by the width used) and RAMB18E2/RAMB36E2 in their best aspect ratio."""
    if width < 1 or depth < MIN_RAM_DEPTH:
        raise ValueError(f"RAM {width} x {depth}: width must be >= 1 bit and depth >= "
                         f"{MIN_RAM_DEPTH} words (shallower memories: memory_cells)")
    _cost, cell, n = _ram_choice(width, depth)
    return cell, n


def _ram_choice(width: int, depth: int) -> tuple[float, str, int]:
    """(cost, cell, count): the cheapest RAM mapping of memory_libmap's cost model."""
    best = None
    for cell, d, wbits, cost, _luts in _c()["lutram_sdp"]:
        rows = math.ceil(depth / d)
        c = rows * width * cost / wbits
        if best is None or c <= best[0]:     # ties: the deeper cell, as Yosys picks
            best = (c, cell, rows * math.ceil(width / wbits))
    for cell, cost, modes in _c()["bram_sdp"]:
        n = min(math.ceil(width / mw) * math.ceil(depth / md) for mw, md in modes)
        if n * cost < best[0]:
            best = (n * cost, cell, n)
    return best


def memory_cells(width: int, depth: int, transparent: bool = False) -> tuple[str, int]:
    """``(cell, count)`` for a memory of any depth with one write port and one read
    port; ``("FF", width * depth)`` when Yosys keeps it in flip-flops.

    memory_libmap keeps a memory in logic unless a RAM costs less than ``width * depth``
    (Yosys truncates that to an integer); a RAM's cost is the :func:`ram_cells` cost plus
    2 (emulation score 1 for its read port, weighted 2) plus 6 when the read port is
    transparent (a registered address read asynchronously: soft transparency logic,
    score 3). Checked on 80 memories of 1..32 bits x 2..16 words, both kinds of read
    port; on efgen_top 1 x 8 and 8 x 2 transparent go to FFs, 8 x 8 and 32 x 4
    transparent and 10 x 2 registered to RAM32M16.
    """
    if width < 1 or depth < 1:
        raise ValueError(f"memory {width} x {depth}: width and depth must be >= 1")
    y = _c()["memory_libmap"]
    cost, cell, n = _ram_choice(width, depth)
    cost += y["read_port"] + (y["transparency"] if transparent else 0)
    if not cost < int(width * depth * y["logic_per_bit"]):
        return "FF", width * depth
    return cell, n


def engine_rams(p: EngineParams) -> list[tuple[str, int, int, int]]:
    """``(buffer, instances, width, depth)`` of the engine_ram instances of engine_core.
    With P > 1 pixel lanes (issue 13): the IFM is ``Tn * P/2 * 2`` engine_ram2 (a
    read/write and a read port: ``IFM2``, :data:`TWO_PORT_RAMS`) of ``ifm_depth`` words
    (P/2 copies x 2 halves a bank), the OFM ``2 * Tm * P`` RAMs of ``ofm_depth / P``.
    Double-buffered weights (``wdb``): two RAMs of ``wbuf_depth`` a bank, one a chunk bank
    (a WU chunk accumulates into one while sgd_wb reads the other)."""
    wts = ("weights", (2 if p.wdb else 1) * p.tm * p.tn, 32, p.wbuf_depth)
    if p.p > 1:
        return [("IFM2", p.tn * p.p, 32, p.ifm_depth),
                ("OFM", 2 * p.tm * p.p, 32, p.ofm_depth // p.p), wts]
    return [("IFM", p.tn, 32, 2 * p.ifm_depth), ("OFM", 2 * p.tm, 32, p.ofm_depth), wts]


#: engine_rams buffers of engine_ram2 (two read ports): block RAM in true dual port mode,
#: whose RAMB18E2 ports are at most 18 bits wide (``bram_tdp``); two output registers
TWO_PORT_RAMS = ("IFM2",)


def ram_cells_tdp(width: int, depth: int) -> tuple[str, int]:
    """``(cell, count)`` for one engine_ram2 (port A read/write, port B read, registered
    reads): the cheapest block RAM in true dual port mode (UG573: RAMB18E2 up to 18 bits
    a port, RAMB36E2 up to 36). Measured with Yosys (synth_xilinx -family xcup): 32 bits
    x 256, 512, 1024 words one RAMB36E2, x 2048 two."""
    best = None
    for cell, cost, modes in _c()["bram_tdp"]:
        n = min(math.ceil(width / mw) * math.ceil(depth / md) for mw, md in modes)
        if best is None or n * cost < best[0]:
            best = (n * cost, cell, n)
    return best[1], best[2]


def add_unit(impl: str) -> str:
    """The ``rtl_yosys`` coefficients key of the fp32_add that ``impl`` instantiates."""
    return "fp32_add_dsp" if impl == "dsp" else "fp32_add"


def unit_cost(name: str, lanes: int) -> dict[str, Any]:
    """LUT, FF and LUT RAM cells of one of efgen_top's units (``rtl_yosys.top_units``:
    vec_unit, bn_unit, pool_unit, fp32_div, fp32_sqrt; fused_logic with RtlParams.fuse) at
    ``lanes`` (T) lanes: its own
    logic, as Yosys maps it in a hierarchical run, without the FP32 units priced as such
    (fp32_mul, fp32_add) and the memories :func:`top_memories` lists."""
    tab = _c()["top_units"]
    if name not in tab:
        raise ValueError(f"unknown unit {name!r}: expected one of {', '.join(tab)}")
    if lanes < 1:
        raise ValueError(f"unit {name}: lanes must be >= 1, got {lanes}")
    u = tab[name]
    cells = {k[: -len("_per_lane")]: int(v) * lanes for k, v in u.items()
             if k.endswith("_per_lane") and not k.startswith(("lut", "ff"))}
    return {"lut": int(u["lut"] + u.get("lut_per_lane", 0) * lanes),
            "ff": int(u["ff"] + u.get("ff_per_lane", 0) * lanes),
            "cells": {k: v for k, v in cells.items() if v}}


def predict_rtl(params: EngineParams, extra_fp_muls: int = 0,
                extra_rams: list[tuple[int, int]] | tuple = (),
                extra_fp_adds: int = 0, extra_muls: list | tuple = (),
                extra_mems: list | tuple = (), shell: bool = False,
                units: list | tuple = ()) -> dict[str, Any]:
    """The model's resources for the RTL flow (Yosys ``synth_xilinx -family xcup``) of
    ``engine_core`` with ``params``, plus ``extra_fp_muls``/``extra_fp_adds`` FP32 units,
    ``extra_rams`` ``(width, depth)``, ``extra_muls`` ``(what, a, b, y)`` and
    ``extra_mems`` ``(what, width, depth, transparent)`` outside it (see the module
    docstring; :func:`predict_top` for the whole accelerator). ``shell``: add the
    Yosys-measured remainder of efgen_top (``rest_top``) to LUT and FF. ``units``:
    ``(module, T)`` of efgen_top's units beside the engine (``top_units``: their own
    logic at T lanes, without the FP32 units counted above; :func:`unit_cost`).

    Keys as :func:`summarize` (DSP48E2, RAMB18E2, RAMB36E2, RAMB18-eq, URAM288, LUTRAM,
    LUT, FF) and ``detail``: the breakdown (units, multipliers, RAMs and their cells).
    """
    c = coefficients()
    y = c["rtl_yosys"]
    n_mul = params.tm * params.tn * params.p + extra_fp_muls     # Tm x Tn x P array
    n_add = params.tm * params.tn * params.p + extra_fp_adds
    muls = [(what, a, b, yb, mul_dsp(a, b, yb)) for what, a, b, yb in control_multipliers(params)]
    muls += [(str(what), int(a), int(b), int(yb), mul_dsp(int(a), int(b), int(yb)))
             for what, a, b, yb in extra_muls]
    add = y[add_unit(params.impl)]
    dsp_fp = n_mul * y["fp32_mul"]["dsp"] + n_add * add["dsp"]
    dsp_ctrl = sum(m[-1] for m in muls)
    rams = [(what, n, w, d, False) for what, n, w, d in engine_rams(params)]
    rams += [("extra", 1, int(w), int(d), None) for w, d in extra_rams]
    rams += [(str(what), 1, int(w), int(d), bool(t)) for what, w, d, t in extra_mems]
    cells: dict[str, int] = {}
    ram_rows = []
    for what, n, w, d, transparent in rams:
        if what in TWO_PORT_RAMS:
            cell, k = ram_cells_tdp(w, d)
        else:
            cell, k = ram_cells(w, d) if transparent is None else memory_cells(w, d, transparent)
        if cell != "FF":
            cells[cell] = cells.get(cell, 0) + n * k
        ram_rows.append({"buffer": what, "instances": n, "width": w, "depth": d,
                         "transparent": bool(transparent), "cell": cell, "cells_each": k})
    unit_rows = []
    for name, t in units:
        u = unit_cost(str(name), int(t))
        unit_rows.append({"unit": str(name), "lanes": int(t), **u})
        for cell, k in u["cells"].items():
            cells[cell] = cells.get(cell, 0) + k
    lutram_luts = {row[0]: row[4] for row in y["lutram_sdp"]}
    lanes = params.tm + params.tn
    r18, r36 = cells.get("RAMB18E2", 0), cells.get("RAMB36E2", 0)
    # (per MAC of the Tm x Tn x P array: with P pixel lanes engine_core's own logic grows
    # with the lanes as with Tm x Tn, hierarchical Yosys 0.23 of efgen_top 16x8 fused at
    # 128 bits, 2026-12-05: engine_core 17,172 -> 36,620 LUT and engine_array 7,680 ->
    # 16,384 from P = 1 to 2; priced per Tm*Tn only, the model missed 19,671 LUT of it)
    macs = params.tm * params.tn * params.p
    if shell:      # the whole efgen_top: Yosys-measured remainder (rest_top)
        rest = {k: y["rest_top"][k] + y["rest_top"][f"{k}_per_mac"] * macs for k in ("lut", "ff")}
    else:          # engine_core alone: the per-lane estimate
        rest = {k: lanes * c["per_lane"][k] for k in ("lut", "ff")}
    # engine_ram's output register (issue 19, after rest_top was fitted): Yosys keeps it
    # as width flip-flops per buffer RAM (Vivado puts it into the block RAM, DOB_REG)
    oreg_ff = sum(n * w * (2 if what in TWO_PORT_RAMS else 1)
                  for what, n, w, _ in engine_rams(params))
    # the per-row address copies and per-lane store ops (issue 19, after rest_top too)
    rep_ff = replica_ff(params)
    return {
        "DSP48E2": dsp_fp + dsp_ctrl,
        "RAMB18E2": r18,
        "RAMB36E2": r36,
        "RAMB18-eq": r18 + 2 * r36,
        "URAM288": 0,
        "LUTRAM": sum(n * lutram_luts[k] for k, n in cells.items() if k in lutram_luts),
        "LUT": n_mul * y["fp32_mul"]["lut"] + n_add * add["lut"] + rest["lut"]
               + sum(u["lut"] for u in unit_rows),
        "FF": n_mul * y["fp32_mul"]["ff"] + n_add * add["ff"] + rest["ff"] + oreg_ff + rep_ff
              + sum(u["ff"] for u in unit_rows),
        "detail": {
            "fp32_mul": n_mul, "fp32_add": n_add,
            "dsp_per_fp32_mul": y["fp32_mul"]["dsp"], "dsp_per_fp32_add": add["dsp"],
            "dsp_fp": dsp_fp, "dsp_control": dsp_ctrl,
            "control_multipliers": [{"what": m[0], "a": m[1], "b": m[2], "y": m[3],
                                     "dsp": m[4]} for m in muls],
            "rams": ram_rows, "ram_cells": cells, "shell": bool(shell),
            "ram_output_register_ff": oreg_ff, "replica_ff": rep_ff, "units": unit_rows,
        },
    }


# ------------------------------------------------------------------ the accelerator top

#: layer_seq's counter width (templates/rtl/layer_seq.v.j2 ``CW``): tile indices, geometry.
SEQ_CW = 16
#: layer_seq's three shared multipliers: a CW-bit factor times a 30-bit one (DRAM word
#: addresses and strides), 30 bits of the product used.
SEQ_SHARED = ("su_a*su_b (set-up)", "lmul_a*lmul_b (loader)", "smul_a*smul_b (storer)")
#: tile_wr's output FIFO (entries of RtlParams.store_words words; templates/rtl/tile_wr.v.j2):
#: 16 since the FP bias add (8 used without it).
TILE_WR_FIFO = 16
#: vec_unit's FP32 adders (templates/rtl/vec_unit.v.j2); its FIFO is efgen.rtl.top.VEC_FIFO.
VEC_FP_ADDS = 1
#: bn_unit's FP32 units (templates/rtl/bn_unit.v.j2): U1, U4, U5 and the scalar adder;
#: U2, U3, U6, U7 and the scalar multiplier. Its FIFO is efgen.rtl.bn.BN_FIFO.
BN_FP_ADDS = 4
BN_FP_MULS = 5
#: pool_unit's FP32 adders (templates/rtl/pool_unit.v.j2); its row buffer is
#: efgen.rtl.top.POOL_BUF words, its FIFO VEC_FIFO.
POOL_FP_ADDS = 1
#: efgen_top's units priced by their own Yosys-measured logic (rtl_yosys.top_units) at the
#: feature maps' lane block T (RtlParams.tl), beside their FP32 units and memories
TOP_UNITS = ("vec_unit", "bn_unit", "pool_unit", "fp32_div", "fp32_sqrt")
#: RtlParams.fuse's own logic (layer_seq, tile_rd, tile_wr), measured as fused minus
#: unfused efgen_top (rtl_yosys.top_units.fused_logic)
FUSED_UNITS = ("fused_logic",)


def _odd(n: int) -> tuple[int, int]:
    """(odd part, trailing zeros) of n >= 1."""
    tz = (n & -n).bit_length() - 1
    return n >> tz, tz


def _const_mul(what: str, a_bits: int, k: int, y_bits: int) -> list[tuple[str, int, int, int]]:
    """``x * k`` (x of ``a_bits``, ``y_bits`` of the result kept) as Yosys sees it: a shift
    for a power of two, else the odd part of ``k`` (b bits) times x, of which
    ``min(a + b, y_bits - trailing zeros of k)`` bits are used (measured: Tm = 3, 6 and
    Tn = 3 in layer_seq; Tm*Tn = 6, 24 in sgd_wb)."""
    odd, tz = _odd(k)
    if odd == 1:
        return []
    b = odd.bit_length()
    return [(what, a_bits, b, min(a_bits + b, y_bits - tz))]


def top_multipliers(p) -> list[tuple[str, int, int, int]]:
    """The integer multipliers of efgen_top outside engine_core (which
    :func:`control_multipliers` covers): ``(what, a bits, b bits, result bits used)``."""
    e = p.engine
    w = e.widths
    kw, wa, gw = w["KW"], w["WA"], w["GW"]
    # the set-up product is registered whole (46 bits: its buffer checks read the top);
    # the products by Tm and Tn are shift-adds (mulc in layer_seq.v.j2), no $mul
    out = [(f"layer_seq {m}", SEQ_CW, 30, 30 + SEQ_CW if m.startswith("su_") else 30)
           for m in SEQ_SHARED]
    # sgd_wb: K*K; K*K*(Tm*Tn) (registered), then words = nblk * that, in 32 bits;
    # G*K*K in WA bits. A constant's trailing zeros are shifted out (measured: (4, 2, 6)
    # and (6, 6, 12) at Tm*Tn = 6 and 24, (6, 4, 10) at 4)
    out.append(("sgd_wb K*K", kw, kw, 2 * kw))
    tmtn = e.tm * e.tn
    out += _const_mul(f"sgd_wb K*K*{tmtn}", 2 * kw, tmtn, 32)
    odd, tz = _odd(tmtn)
    kb = 2 * kw + (odd.bit_length() if odd > 1 else 0)
    out.append(("sgd_wb nblk*(K*K*Tm*Tn)", wa, kb, min(32 - tz, wa + kb)))
    out.append(("sgd_wb G*K*K", gw, 2 * kw, min(wa, gw + 2 * kw)))
    return out


def top_memories(p) -> list[tuple[str, int, int, bool]]:
    """The memories of efgen_top outside engine_core: ``(what, width, depth,
    transparent read)`` (see the module docstring)."""
    from efgen.model.engine import sgd_rpiece
    from efgen.rtl.sgd import IN_FLIGHT, PIECE, in_log
    from efgen.rtl.bn import BN_FIFO
    from efgen.rtl.top import (BIAS_BUF, POOL_BUF, VEC_FIFO, WUB_SLOTS, bias_addr_bits,
                               store_buf_beats)

    e = p.engine
    w = e.widths
    d = p.dma
    out_log = math.ceil(math.log2(PIECE + IN_FLIGHT))
    wpb = d.data_width // 32
    cq_w = d.len_width + (wpb.bit_length() - 1 if wpb > 1 else 0)
    cq_depth = 2 ** (max(0, math.ceil(math.log2(d.outstanding))) + 1)
    bq_depth = 2 ** (math.ceil(math.log2(d.outstanding)) if d.outstanding > 1 else 1)
    # (W and V in: two read pieces each with double-buffered weights)
    il = in_log(e, sgd_rpiece(d.max_burst * wpb))
    mems = [("sgd_wb W in", 32, 2 ** il, True), ("sgd_wb V in", 32, 2 ** il, True),
            ("sgd_wb W' out", 32, 2 ** out_log, True), ("sgd_wb V' out", 32, 2 ** out_log, True),
            ("sgd_wb G' out", 32, 2 ** out_log, True)]
    mems += [(f"layer_seq win_{n}", w["IA"] + 1, 2, False)
             for n in ("ulo", "uhi", "vlo", "vhi", "ec")]
    mems.append(("layer_seq win_p", w["OA"], 2, True))
    # the WU bias RAM: one bank a word of a tile_rd beat (load_words), BIAS_BUF * WUB_SLOTS
    # words in all, registered read (its output register beside it)
    mems += [(f"layer_seq WU bias RAM {i}", 32, BIAS_BUF * WUB_SLOTS // p.load_words, False)
             for i in range(p.load_words)]
    # (a whole beat an entry when it stores whole beats: RtlParams.store_words)
    mems.append(("tile_wr FIFO", 32 * p.store_words, TILE_WR_FIFO, True))
    # the FP bias buffer: rows of store_words words, registered read plus output register
    mems.append(("tile_wr bias buffer", 32 * p.store_words, BIAS_BUF // p.store_words, False))
    if p.fuse:
        # the BN FP sums (RtlParams.fuse): s1 and s2, a bank a store word, BIAS_BUF *
        # WUB_SLOTS words each, registered read
        mems += [(f"tile_wr BN sum {s} RAM {i}", 32, BIAS_BUF * WUB_SLOTS // p.store_words, False)
                 for s in (1, 2) for i in range(p.store_words)]
        # the load transform's constant vectors (mean, invstd, gamma, beta; BN BP dx's
        # sdy, sdyx): a bank a load word, BIAS_BUF words each, registered read
        mems += [(f"layer_seq {v} RAM {i}", 32, BIAS_BUF // p.load_words, False)
                 for v in ("mean", "invstd", "gamma", "beta", "sdy", "sdyx")
                 for i in range(p.load_words)]
        # (WU with both transforms, the C++'s wdx2: the input tiles' affine constants)
        mems += [(f"layer_seq wdx2 {v} RAM {i}", 32, BIAS_BUF // p.load_words, False)
                 for v in ("mean", "invstd", "gamma", "beta") for i in range(p.load_words)]
        # BP's recomputed mask (record MK): its constant vectors in tile_wr (a bank a store
        # word, registered read), the FIFO entries' row, slot and valid lanes beside the
        # FIFO, and the 32-entry output FIFO behind the mask transform
        mems += [(f"tile_wr mask {v} RAM {i}", 32, BIAS_BUF // p.store_words, False)
                 for v in ("mean", "invstd", "gamma", "beta") for i in range(p.store_words)]
        mems.append(("tile_wr FIFO side", bias_addr_bits(p) + 3 + p.store_words, TILE_WR_FIFO,
                     True))
        mems.append(("tile_wr output FIFO", 32 * p.store_words, 32, True))
        # BP's store operands, read in passes before each store: the error operand (SE)
        # and the BN sums' y (SK), a whole store tile each in beats, registered read
        mems += [(f"tile_wr {v} buffer", 32 * p.store_words, store_buf_beats(p), False)
                 for v in ("SE", "SK")]
    mems.append(("vec_unit FIFO", 32, VEC_FIFO, True))
    mems.append(("bn_unit FIFO", 32, BN_FIFO, True))
    mems += [("pool_unit row buffer", 32, POOL_BUF, False), ("pool_unit FIFO", 32, VEC_FIFO, True),
             ("pool_unit i*kw", 8, 16, True)]
    beat_aw = d.addr_width - (d.data_width // 8).bit_length() + 1
    rd = (0, 1, 2) if p.fuse else (0, 1)        # (fuse: m_axi2's read channel, the y stream)
    mems += [(f"axi_dma_rd {k} commands", cq_w, cq_depth, True) for k in rd]
    mems += [(f"axi_dma_rd {k} burst address", beat_aw, bq_depth, True) for k in rd]
    size_log = (d.data_width // 8).bit_length() - 1
    mems += [("axi_dma_wr commands", cq_w, cq_depth, True),
             ("axi_dma_wr AW commands", d.addr_width - size_log + d.len_width, cq_depth, True),
             ("axi_dma_wr burst AWLEN", 8, bq_depth, True),
             ("axi_dma_wr burst last + address", 1 + beat_aw, bq_depth, True)]
    rb_depth = 2 ** math.ceil(math.log2(d.outstanding * d.max_burst))
    mems += [(f"axi_dma_rd {k} read buffer", d.data_width, rb_depth, False) for k in rd]
    mems.append(("axi_dma_wr write buffer", d.data_width + d.data_width // 8,
                 2 * d.max_burst, False))
    if d.data_width > 32:
        # beat_pack's queue of write-command lengths, as deep as axi_dma_wr's (pack_qlog)
        mems.append(("beat_pack command lengths", 32, cq_depth, True))
    return mems


def top_spec(p) -> "RtlSpec":
    """The rtl.json of ``rtl_verilog(p)`` (:class:`~efgen.rtl.top.RtlParams`): top
    ``efgen_top``, the engine, and sgd_wb's FP32 units, the multipliers and memories of
    the sequencer, tile storer, SGD write-back and DMA engines."""
    from efgen.rtl.top import TOP

    # (RtlParams.fuse: tile_wr's BN sums, an fp32_mul and two fp32_add_fb a store word, and
    # its mask transform, two of each a store word, and the error operand's (SE) adder a
    # store word; layer_seq's load transform, two of each a
    # load word, and BN BP dx's n * dz, - sdy and coef *: two fp32_mul and an fp32_add_fb
    # more a load word)
    fx = p.store_words if p.fuse else 0
    fl = p.load_words if p.fuse else 0
    return RtlSpec(top=TOP, engine=p.engine, extra_fp_muls=3 + BN_FP_MULS + 3 * fx + 4 * fl,
                   extra_fp_adds=(4 + VEC_FP_ADDS + BN_FP_ADDS + POOL_FP_ADDS + p.store_words
                                  + p.load_words + 5 * fx + 3 * fl),
                   extra_muls=tuple(top_multipliers(p)), extra_mems=tuple(top_memories(p)),
                   shell=True, units=tuple((u, p.tl) for u in TOP_UNITS + FUSED_UNITS * p.fuse))


def predict_spec(spec: "RtlSpec") -> dict[str, Any]:
    """:func:`predict_rtl` for an rtl.json."""
    return predict_rtl(spec.engine, spec.extra_fp_muls, spec.extra_rams, spec.extra_fp_adds,
                       spec.extra_muls, spec.extra_mems, spec.shell, spec.units)


def predict_top(p) -> dict[str, Any]:
    """The model's resources for the RTL flow of the whole accelerator ``efgen_top``
    (:func:`efgen.rtl.top.rtl_verilog` of ``p``), from its RtlParams alone."""
    return predict_spec(top_spec(p))


def error_pct(model: float, got: float) -> float | None:
    """(got - model) / model in %, None when the model says 0."""
    return None if model == 0 else 100.0 * (got - model) / model


def format_table(pred: dict[str, Any], got: SynthResult | dict[str, int]) -> str:
    """Model vs Yosys, one row per resource, with the footnote on LUT and FF."""
    from efgen.textable import fmt_int
    from efgen.textable import format_table as table

    counts = got.counts if isinstance(got, SynthResult) else got
    rows = []
    for key, label in ROWS:
        m, g = pred[key], counts.get(key, 0)
        e = error_pct(m, g)
        err = ("-" if g == 0 else "n/a") if e is None else f"{e:+.1f}%"
        rows.append([label + (" *" if key in ("LUT", "FF") else ""), fmt_int(m), fmt_int(g), err])
    y = _c()
    units = (f"the FP32 units as Yosys maps them (fp32_mul {y['fp32_mul']['lut']} LUT / "
             f"{y['fp32_mul']['ff']} FF on {y['fp32_mul']['dsp']} DSP; fp32_add synth "
             f"{y['fp32_add']['lut']} LUT, dsp {y['fp32_add_dsp']['lut']} LUT on "
             f"{y['fp32_add_dsp']['dsp']} DSP)")
    if pred.get("detail", {}).get("shell"):
        r = y["rest_top"]
        note = (f"* LUT/FF model: {units}, plus the rest of efgen_top (controller, sequencer, "
                f"DMA, SGD write-back, buffer muxes) fitted to Yosys runs of efgen_top: "
                f"{r['lut']:,} LUT + {r['lut_per_mac']} per MAC, {r['ff']:,} FF + "
                f"{r['ff_per_mac']} per MAC ({r['source']}), and vec_unit, bn_unit, pool_unit, "
                f"fp32_div and fp32_sqrt at their own measured cells. Yosys keeps the adders and "
                "registers around DSP products in fabric, so its LUT/FF run above Vivado's; "
                "its DSP48E2 and RAMB counts are the ones to trust.")
    else:
        note = (f"* LUT/FF model: {units}, plus an estimate of {c_lane()} per Tm/Tn lane. "
                "Yosys's LUT/FF run above Vivado's; trust its DSP48E2 and RAMB counts.")
    import textwrap

    return table(["resource", "model", "yosys", "error"], rows) + "\n" + textwrap.fill(note, 88)


# ------------------------------------------------------------------ efgen synth --yosys DIR

@dataclass(frozen=True)
class RtlSpec:
    """The contents of ``DIR/rtl/rtl.json`` (see the module docstring)."""

    top: str
    engine: EngineParams
    extra_fp_muls: int = 0
    extra_fp_adds: int = 0
    extra_rams: tuple[tuple[int, int], ...] = ()
    extra_muls: tuple[tuple[str, int, int, int], ...] = ()
    extra_mems: tuple[tuple[str, int, int, bool], ...] = ()
    shell: bool = False
    units: tuple[tuple[str, int], ...] = ()

    def to_json(self) -> dict[str, Any]:
        d = {"top": self.top, "engine": self.engine.as_dict(),
             "extra_fp_muls": self.extra_fp_muls, "extra_fp_adds": self.extra_fp_adds,
             "extra_rams": [list(r) for r in self.extra_rams]}
        if self.extra_muls:
            d["extra_muls"] = [list(m) for m in self.extra_muls]
        if self.extra_mems:
            d["extra_mems"] = [list(m) for m in self.extra_mems]
        if self.shell:
            d["shell"] = True
        if self.units:
            d["units"] = [list(u) for u in self.units]
        return d

    def dumps(self) -> str:
        """rtl.json text: one key a line, one list item a line (deterministic)."""
        lines = []
        for k, v in self.to_json().items():
            if isinstance(v, list) and v:
                items = ",\n".join(f"    {json.dumps(x)}" for x in v)
                lines.append(f'  {json.dumps(k)}: [\n{items}\n  ]')
            else:
                lines.append(f"  {json.dumps(k)}: {json.dumps(v)}")
        return "{\n" + ",\n".join(lines) + "\n}\n"


def load_rtl_json(path: Path | str) -> RtlSpec:
    """Read and check ``rtl.json``; problems are one-line :class:`EfgenError`s."""
    path = Path(path)
    f = str(path)
    fix = ("rewrite it with 'efgen build' (keys: top, engine, extra_fp_muls, extra_fp_adds, "
           "extra_rams, extra_muls, extra_mems, shell, units)")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EfgenError("rtl.json not found", file=f,
                         fix="generate the RTL with 'efgen build' first") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise EfgenError(f"cannot read rtl.json ({exc.__class__.__name__})", file=f,
                         fix=fix) from None
    except json.JSONDecodeError as exc:
        raise EfgenError(f"rtl.json is not valid JSON ({exc.msg})", file=f,
                         where=f"{exc.lineno}:{exc.colno}", fix=fix) from None
    if not isinstance(doc, dict):
        raise EfgenError("rtl.json must hold a JSON object", file=f, fix=fix)
    unknown = sorted(set(doc) - {"top", "engine", "extra_fp_muls", "extra_fp_adds",
                                 "extra_rams", "extra_muls", "extra_mems", "shell",
                                 "units"})
    if unknown:
        raise EfgenError(f"unknown key {unknown[0]!r}", file=f, where=unknown[0], fix=fix)
    for key in ("top", "engine"):
        if key not in doc:
            raise EfgenError(f"missing key {key!r}", file=f, where=key, fix=fix)
    top = doc["top"]
    if not isinstance(top, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*", top):
        raise EfgenError(f"top {top!r} is not a Verilog module name", file=f, where="top",
                         fix="give the name of the top module")
    eng = doc["engine"]
    if not isinstance(eng, dict):
        raise EfgenError("engine must be an object of EngineParams fields", file=f,
                         where="engine", fix=fix)
    names = {fl.name for fl in fields(EngineParams)}
    bad = sorted(set(eng) - names)
    if bad:
        raise EfgenError(f"unknown engine field {bad[0]!r}", file=f, where=f"engine.{bad[0]}",
                         fix=f"use the EngineParams fields: {', '.join(sorted(names))}")
    try:
        params = EngineParams(**eng)
    except (TypeError, ValueError) as exc:
        raise EfgenError(f"bad engine parameters: {exc}", file=f, where="engine",
                         fix=fix) from None
    if params.impl not in FTZ_IMPLS:
        raise EfgenError(f"engine impl {params.impl!r} is simulation-only (real "
                         "arithmetic), not synthesizable", file=f, where="engine.impl",
                         fix="generate the RTL with impl 'dsp' or 'synth'")
    counts = {}
    for key in ("extra_fp_muls", "extra_fp_adds"):
        v = doc.get(key, 0)
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise EfgenError(f"{key} must be a non-negative integer, got {v!r}", file=f,
                             where=key, fix=fix)
        counts[key] = v
    rams = doc.get("extra_rams", [])
    if not isinstance(rams, list):
        raise EfgenError("extra_rams must be a list of [width, depth]", file=f,
                         where="extra_rams", fix=fix)
    out_rams = []
    for i, r in enumerate(rams):
        ok = (isinstance(r, list) and len(r) == 2
              and all(isinstance(v, int) and not isinstance(v, bool) for v in r)
              and r[0] >= 1 and r[1] >= MIN_RAM_DEPTH)
        if not ok:
            raise EfgenError(f"extra_rams[{i}] = {r!r} is not [width >= 1, depth >= "
                             f"{MIN_RAM_DEPTH}]", file=f, where=f"extra_rams[{i}]", fix=fix)
        out_rams.append((r[0], r[1]))

    def _int(v, lo):
        return isinstance(v, int) and not isinstance(v, bool) and v >= lo

    items = {}
    for key, shape, check in (
            ("extra_muls", "[what, a bits >= 1, b bits >= 1, result bits >= 1]",
             lambda r: isinstance(r[0], str) and all(_int(v, 1) for v in r[1:])),
            ("extra_mems", "[what, width >= 1, depth >= 1, transparent (bool)]",
             lambda r: isinstance(r[0], str) and _int(r[1], 1) and _int(r[2], 1)
             and isinstance(r[3], bool))):
        v = doc.get(key, [])
        if not isinstance(v, list):
            raise EfgenError(f"{key} must be a list of {shape}", file=f, where=key, fix=fix)
        for i, r in enumerate(v):
            if not (isinstance(r, list) and len(r) == 4 and check(r)):
                raise EfgenError(f"{key}[{i}] = {r!r} is not {shape}", file=f,
                                 where=f"{key}[{i}]", fix=fix)
        items[key] = tuple(tuple(r) for r in v)
    shell = doc.get("shell", False)
    if not isinstance(shell, bool):
        raise EfgenError(f"shell must be true or false, got {shell!r}", file=f, where="shell",
                         fix=fix)
    units = doc.get("units", [])
    known = _c()["top_units"]
    if not isinstance(units, list):
        raise EfgenError("units must be a list of [unit, lanes]", file=f, where="units",
                         fix=fix)
    for i, u in enumerate(units):
        if not (isinstance(u, list) and len(u) == 2 and u[0] in known and _int(u[1], 1)):
            raise EfgenError(f"units[{i}] = {u!r} is not [unit, lanes >= 1] with a unit of "
                             f"{', '.join(known)}", file=f, where=f"units[{i}]", fix=fix)
    return RtlSpec(top=top, engine=params, extra_rams=tuple(out_rams), shell=shell,
                   units=tuple(tuple(u) for u in units), **items, **counts)


def synth_build_dir(build_dir: Path | str, family: str = "xcup"
                    ) -> tuple[RtlSpec, dict[str, Any], SynthResult]:
    """``efgen synth --yosys DIR``: Yosys on ``DIR/rtl/*.v`` with the top of
    ``DIR/rtl/rtl.json``; writes ``DIR/rtl/yosys.log`` and ``DIR/rtl/synth.json``."""
    d = Path(build_dir)
    rtl = d / "rtl"
    if not d.is_dir():
        raise EfgenError("build folder not found", file=str(d),
                         fix="pass the folder 'efgen build' wrote")
    if not rtl.is_dir():
        raise EfgenError("no rtl/ folder", file=str(d),
                         fix="generate the RTL with 'efgen build' (it writes DIR/rtl/*.v "
                             "and DIR/rtl/rtl.json)")
    spec = load_rtl_json(rtl / "rtl.json")
    pred = predict_spec(spec)
    res = run_yosys(rtl, spec.top, family, log=rtl / "yosys.log")
    got = res.counts
    out = {
        "top": spec.top, "family": family, "yosys": res.version,
        "script": f"synth_xilinx -family {family} -top {spec.top} -flatten -noiopad",
        "seconds": round(res.seconds, 2), "rtl": spec.to_json(),
        "model": {k: v for k, v in pred.items() if k != "detail"},
        "measured": got,
        "error_pct": {k: error_pct(pred[k], got[k]) for k, _ in ROWS},
        "cells": res.cells, "model_detail": pred["detail"],
    }
    (rtl / "synth.json").write_text(json.dumps(out, indent=2) + "\n")
    return spec, pred, res
