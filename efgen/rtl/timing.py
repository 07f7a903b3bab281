"""Clock-frequency estimate of the reference RTL from open tools (``efgen synth --timing``).

Method (logic only: no placement, no routing, no clock tree):

1. Yosys ``synth_xilinx -family <xcup|xc7> -flatten -noiopad`` maps one module onto
   Xilinx cells (LUT1..6, MUXF7/8/9, CARRY4, DSP48E1/E2, RAMB*, LUT RAM, FD*), written
   out with ``write_json``.
2. :func:`analyse` walks that netlist as a static timing analyser would: every flip-flop
   output, block-RAM output and module input starts a path at time 0 (module ports are
   taken as registered, see *Limits*); every combinational cell adds its delay; every
   flip-flop / block-RAM / DSP data input and module output ends one. Each path gets
   two figures: its *logic depth* in LUT levels (a LUT or a LUT-RAM read is one level;
   MUXF and carry cells are fractions, :data:`DELAYS`) and a delay in ns from
   per-cell delays, once with the optimistic and once with the pessimistic figure of
   every cell; the endpoint overhead (clock-to-out + setup + clock uncertainty) is added.
3. fmax = 1 / worst path, as a range ``[fmax_lo, fmax_hi]``, clipped at the family's
   ceiling (the clock a well-pipelined, vendor-placed design on the same part reaches).

Yosys 0.23's own ``sta`` is not used: with ``-abc9`` it only has 7-series delays (for
``xcup`` it warns and uses 7-series timing), and CARRY4/MUXF7/MUXF8 have no timing arcs
there, so a path through an adder is cut at the carry chain (measured on fp32_add).

Per-cell delays (:data:`DELAYS`, ns; lo = optimistic, hi = pessimistic). Sources:

* LUT + its net: Yosys 0.23's ``techlibs/xilinx/cells_sim.v`` specify blocks give LUT6
  input-to-output delays of 0.127 .. 0.642 ns depending on the pin (mean 0.48 ns), from
  Project X-Ray's Artix-7 timing database (prjxray-db ``artix7/timings/slicel.sdf``).
  UG949 (UltraFast Design Methodology, "Datapath Delay and Logic Levels") calls a path
  route-dominated when route delay exceeds 75 % of it on 7 series and 50 % on
  UltraScale(+). 7 series: 0.48 ns per LUT with its net taking 50 .. 75 % of the level
  -> 0.95 .. 1.9 ns. UltraScale+ -2: 0.45 .. 0.75 ns is an engineering estimate (no
  public per-LUT figure was found; DS925 lists block FMAX, not LUT delays): about 0.45x
  the 7-series range with UG949's 50 % route share. It is the weakest figure here, and
  the range is wide on purpose.
* CARRY4 (4 bits of carry chain, CIN->COUT): 0.05 .. 0.12 ns per cell (a dedicated
  chain, no general routing; prjxray ``CARRY4`` SDF order of magnitude).
* MUXF7/8/9: 0.10 .. 0.20 ns (in-slice, no routing).
* DSP48E1/E2 passed combinationally (Yosys maps the FP significand product without any
  DSP register): DS925 (Zynq UltraScale+ -2) FMAX_NOPIPELINEREG 410 MHz = 2.44 ns
  register to register through the slice; lo 2.0 ns (the register overheads removed),
  hi 2.44 ns. 7 series: x 1 / 0.6.
* Block RAM clock-to-out: UG949 ("Optimizing Paths with Dedicated Blocks and Macro
  Primitives"): about 1.5 ns without the optional output register, 0.4 ns with it;
  lo 1.2, hi 1.6 ns without. engine_ram has the output register (issue 19), but Yosys
  never enables DOA_REG/DOB_REG: it keeps that register as flip-flops right after the
  RAM, so a path from a RAM here is the RAM's clock-to-out into one flip-flop.
  UG949 also asks for 500 ps of setup slack on paths into such blocks before placement:
  added to every path ending in a DSP or block RAM (hi only).
* Endpoint overhead (FF clock-to-out + setup + clock uncertainty): 0.35 .. 0.60 ns.

Ceilings (:data:`CEILING_MHZ`): the Xilinx DPU (DPUCZDX8G) runs at 281 MHz on the ZCU102
and 300 MHz on the ZCU104 (UG1354, Vitis AI Library User Guide, performance tables);
efgen's estimate never claims more than 300 MHz on UltraScale+ (these figures are as
quoted in issue 14, not re-read here). Zynq-7000: 200 MHz, efgen's existing ``fmax_mhz``
limit for the family (an estimate in configs/model/coefficients.yaml, no public
reference), kept as a ceiling, not a claim.

Fan-out (issue 19): the same netlist gives every net's load count (cell input pins, clock
pins and the global clock buffer's net left out): :func:`fanout`. A net that fans out to
hundreds of loads across the die routes slowly however shallow its logic (UG949 advises
coding the register copies by hand where a specific fan-out is wanted; MAX_FANOUT only
asks synthesis and the placer to try), which the logic-depth figure does not see. Each
report carries its module's largest fan-out and the nets above :data:`FANOUT_LIMIT`.
``engine_core`` (the whole Tm x Tn array's buffers, muxes and controller) is analysed with
its FP32 units as black boxes (:data:`ARRAY_MODULES`): their inputs end paths and their
registered outputs start them, so the figure is the array's glue logic, and a net's loads
count a unit's input pin once.

Limits: logic only (no placement or routing congestion, no clock skew beyond the fixed
uncertainty, no hold); per module, so a path that crosses a module boundary
combinationally is cut at the port (inputs are taken as registered, except the block-RAM
read data of :data:`RAM_INPUTS`, which starts at the RAM's clock-to-out); Yosys's mapping is not
Vivado's (Vivado packs DSP registers and retimes; Yosys does neither), so the estimate
tends to be pessimistic for DSP paths. A range, never a guarantee: only Vivado
place-and-route on the part tells.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from efgen.errors import EfgenError

TIMING_FAMILIES = ("xcup", "xc7")

# ns, (lo, hi) per cell kind; see the module docstring for every source.
_US = {"lut": (0.45, 0.75), "carry": (0.05, 0.12), "muxf": (0.10, 0.20),
       "dsp": (2.00, 2.44), "bram_cko": (1.20, 1.60), "ff": (0.35, 0.60),
       "macro_setup": (0.0, 0.50)}
_X7 = {"lut": (0.95, 1.90), "carry": (0.08, 0.20), "muxf": (0.15, 0.30),
       "dsp": (3.33, 4.07), "bram_cko": (1.80, 2.50), "ff": (0.50, 0.90),
       "macro_setup": (0.0, 0.50)}
DELAYS = {"xcup": _US, "xc7": _X7}
# Logic depth weights (LUT levels) of the fast in-slice cells.
LEVELS = {"lut": 1.0, "carry": 0.15, "muxf": 0.25, "dsp": 4.0}
CEILING_MHZ = {"xcup": 300.0, "xc7": 200.0}
FAMILY_NAMES = {"xcup": "UltraScale+ -2", "xc7": "7-series / Zynq-7000 -1"}

_SEQ = re.compile(r"FD[CPRS]E(_1)?|SRL16E|SRLC32E|SRLC16E")
_BRAM = re.compile(r"RAMB(18|36)E[12]|URAM288|FIFO(18|36)E[12]")
_LUTRAM = re.compile(r"RAM(32|64|128|256|512)X1[SD]|RAM(32|64)M(8|16)?|RAM32X16DR8|RAM64X8SW")
_LUT = re.compile(r"LUT[1-6]|INV")
_MUXF = re.compile(r"MUXF[789]")
_CARRY = re.compile(r"CARRY[48]")
_DSP = re.compile(r"DSP48E[12]")
_LUTRAM_READ = re.compile(r"ADDR[A-H]|A\d?|A[0-7]|DPRA\d?")
_IGNORE = re.compile(r"BUFG|BUFGCTRL|IBUF|OBUF|GND|VCC")
# Pins that do not carry data (clock, clock enables of block RAM are still data).
_CLOCK_PINS = re.compile(r"C|CLK|CLKA|CLKB|CLKARDCLK|CLKBWRCLK|WCLK|CLKU?|RDCLK|WRCLK")


@dataclass
class PathReport:
    """The worst register-to-register path of one module.

    ``levels``: logic depth of the deepest path in LUT levels; ``ns_lo``/``ns_hi``: the
    slowest path with the optimistic / pessimistic cell delays (endpoint overhead
    included); ``start``/``end``: the cells (type, name) of the pessimistic worst path.
    """

    module: str
    family: str
    levels: float
    ns_lo: float
    ns_hi: float
    start: str
    end: str
    cells: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    path: list[str] = field(default_factory=list)
    # the largest fan-out (loads) and its net; the nets (buses) above FANOUT_LIMIT
    fanout: int = 0
    fanout_net: str = ""
    high_fanout: list[tuple[int, str]] = field(default_factory=list)

    @property
    def fmax_lo(self) -> float:
        """Pessimistic fmax estimate, MHz (never above the family ceiling)."""
        return min(CEILING_MHZ[self.family], 1e3 / self.ns_hi)

    @property
    def fmax_hi(self) -> float:
        """Optimistic fmax estimate, MHz (never above the family ceiling)."""
        return min(CEILING_MHZ[self.family], 1e3 / self.ns_lo)

    def as_dict(self) -> dict[str, Any]:
        return {"module": self.module, "family": self.family, "levels": round(self.levels, 2),
                "ns_lo": round(self.ns_lo, 3), "ns_hi": round(self.ns_hi, 3),
                "fmax_mhz_lo": round(self.fmax_lo, 1), "fmax_mhz_hi": round(self.fmax_hi, 1),
                "start": self.start, "end": self.end, "path": self.path,
                "max_fanout": self.fanout, "max_fanout_net": self.fanout_net,
                "high_fanout": [[n, net] for n, net in self.high_fanout],
                "seconds": round(self.seconds, 2)}


# A net with more loads than this is listed by the fan-out check (efgen synth --timing).
# The bound: the largest fan-out of a flip-flop copy of engine_ctrl's replicated selects
# at 16 x 16 is 394, and UG912's MAX_FANOUT example sets 50; a net above 128 loads in a
# module is one efgen should replicate by hand (UG949), not leave to the placer.
FANOUT_LIMIT = 128
# Black-box cells (the FP32 units) of ARRAY_MODULES: registered outputs, inputs end paths.
BOXES = ("fp32_mul", "fp32_add")
# Estimated with the FP32 units as black boxes (Yosys reads their files with -lib).
ARRAY_MODULES = ("engine_core",)

_KINDS = (("seq", _SEQ), ("bram", _BRAM), ("lutram", _LUTRAM), ("lut", _LUT), ("muxf", _MUXF),
          ("carry", _CARRY), ("dsp", _DSP), ("ignore", _IGNORE))


def _kind(ctype: str) -> str:
    """The delay class of a Xilinx cell type ("unknown" when efgen has no model for it)."""
    return next((k for k, rx in _KINDS if rx.fullmatch(ctype)), "unknown")


def _dsp_registered_out(params: dict[str, str]) -> bool:
    return int(params.get("PREG", "0"), 2) != 0


def _dsp_registered_in(params: dict[str, str]) -> bool:
    return any(int(params.get(k, "0"), 2) != 0 for k in ("AREG", "BREG", "MREG"))


# Module inputs driven straight by a block RAM's read data (no register between): their
# paths start at the RAM's clock-to-out instead of 0. None since issue 19: engine_ram
# registers its read data (the block RAM's output register, DOB_REG), so sgd_wb's
# wb_rd_data starts at a register's clock-to-out, as every other input.
RAM_INPUTS: dict[str, tuple[str, ...]] = {}


def _net_names(mod: dict[str, Any]) -> dict[int, str]:
    """bit -> the most user-visible name of its net (``name`` or ``name[i]``)."""
    names: dict[int, str] = {}
    for nname, n in sorted(mod.get("netnames", {}).items(),
                           key=lambda kv: (kv[1].get("hide_name", 0), kv[0].count("$"),
                                          kv[0].count("."), kv[0])):
        for i, bit in enumerate(n["bits"]):
            if isinstance(bit, int) and bit not in names:
                names[bit] = nname if len(n["bits"]) == 1 else f"{nname}[{i}]"
    return names


def _is_clock_pin(port: str) -> bool:
    return bool(_CLOCK_PINS.fullmatch(port)) or port == "clk"


def fanout(mod: dict[str, Any], limit: int = FANOUT_LIMIT
           ) -> tuple[int, str, list[tuple[int, str]]]:
    """Fan-out of one module of a Yosys ``write_json`` netlist: (the largest load count,
    its net, the nets above ``limit`` as (loads, net), largest first, one entry per bus:
    ``name[*]`` with its largest bit). Loads are cell input pins; clock pins and nets
    driven by a global clock buffer are left out. A net without a user-visible name is
    named by its driver: ``LUT2(a[0], b)`` (its inputs' names)."""
    names = _net_names(mod)
    loads: dict[int, int] = {}
    driver: dict[int, tuple[str, dict]] = {}
    for _, c in sorted(mod["cells"].items()):
        dirs = c.get("port_directions", {})
        for port, bits in c["connections"].items():
            for b in bits:
                if not isinstance(b, int):
                    continue
                if dirs.get(port) == "output":
                    driver[b] = (c["type"], c)
                elif dirs.get(port) == "input" and not _is_clock_pin(port):
                    loads[b] = loads.get(b, 0) + 1

    def label(b: int) -> str:
        n = names.get(b, "")
        if n and not n.startswith("$"):
            return n
        ctype, c = driver.get(b, ("?", {}))
        ins = [names.get(x, "?") for p, bits in sorted(c.get("connections", {}).items())
               if c.get("port_directions", {}).get(p) == "input" for x in bits
               if isinstance(x, int)]
        ins = [i if not i.startswith("$") else "..." for i in ins]
        return f"{ctype}({', '.join(dict.fromkeys(ins))})"

    nets: dict[str, int] = {}
    best = (0, "")
    for b in sorted(loads):
        if _kind(driver.get(b, ("input",))[0]) == "ignore":   # the clock buffer's net
            continue
        n = loads[b]
        if n > best[0]:
            best = (n, label(b))
        if n > limit:
            bus = re.sub(r"\[\d+\]$", "[*]", label(b))
            nets[bus] = max(nets.get(bus, 0), n)
    high = sorted(((n, net) for net, n in nets.items()), key=lambda t: (-t[0], t[1]))
    return best[0], best[1], high


def analyse(netlist: dict[str, Any], module: str, family: str = "xcup",
            boxes: tuple[str, ...] = ()) -> PathReport:
    """Worst path of ``module`` in a Yosys ``write_json`` netlist (mapped, flattened), and
    its fan-out (:func:`fanout`). ``boxes``: black-box cell types whose outputs are
    registers (paths start there) and whose inputs end paths."""
    if family not in DELAYS:
        raise ValueError(f"family {family!r}: expected one of {TIMING_FAMILIES}")
    d = DELAYS[family]
    mod = netlist["modules"][module]
    # driver[bit] = (cell name, kind, ctype, params); module inputs drive at time 0.
    driver: dict[int, tuple[str, str, str, dict]] = {}
    cell_inputs: dict[str, list[int]] = {}
    counts: dict[str, int] = {}
    for name, c in mod["cells"].items():
        ctype = c["type"]
        counts[ctype] = counts.get(ctype, 0) + 1
        kind = "box" if ctype in boxes else _kind(ctype)
        dirs = c.get("port_directions", {})
        ins = []
        for port, bits in c["connections"].items():
            dirn = dirs.get(port)
            for b in bits:
                if not isinstance(b, int):
                    continue
                if dirn == "output":
                    driver[b] = (name, kind, ctype, c.get("parameters", {}))
                elif dirn == "input" and not _is_clock_pin(port):
                    # a LUT RAM's output follows its read address only: data and write
                    # enable are taken at the clock edge (they end paths, below)
                    if kind != "lutram" or _LUTRAM_READ.fullmatch(port):
                        ins.append(b)
        cell_inputs[name] = ins
    if any(_kind(t) == "unknown" and t not in boxes for t in counts):
        unknown = sorted(t for t in counts if _kind(t) == "unknown" and t not in boxes)
        raise ValueError(f"{module}: cell types without a delay model: {unknown}")

    # arrival[bit] = (t_lo, t_hi, levels, predecessor bit, cell name)
    arrival: dict[int, tuple[float, float, float, int | None, str]] = {}
    ff_lo, ff_hi = d["ff"]

    def start_time(kind, params):
        if kind == "bram":
            return d["bram_cko"][0], d["bram_cko"][1], 0.0
        if kind in ("seq", "box"):
            return 0.0, 0.0, 0.0
        if kind == "dsp" and _dsp_registered_out(params):
            return 0.3, 0.4, 0.0
        if kind == "dsp" and _dsp_registered_in(params):
            # from the slice's own input/pipeline registers through to P
            return d["dsp"][0], d["dsp"][1], LEVELS["dsp"]
        return None

    def comb_delay(kind):
        w = LEVELS.get(kind, 1.0)
        if kind in ("lut", "lutram"):
            return d["lut"][0], d["lut"][1], 1.0
        return d[kind][0], d[kind][1], w

    visiting: set[int] = set()
    ram_bits = {b for port in RAM_INPUTS.get(module, ()) if port in mod["ports"]
                for b in mod["ports"][port]["bits"] if isinstance(b, int)}

    def arrive(bit: int):
        stack = [bit]
        while stack:
            b = stack[-1]
            if b in arrival:
                stack.pop()
                visiting.discard(b)
                continue
            drv = driver.get(b)
            if drv is None:   # module input or constant
                arrival[b] = ((d["bram_cko"][0], d["bram_cko"][1], 0.0, None, "RAM input")
                              if b in ram_bits else (0.0, 0.0, 0.0, None, "input"))
                stack.pop()
                continue
            name, kind, ctype, params = drv
            st = start_time(kind, params)
            if st is not None:
                arrival[b] = (st[0], st[1], st[2], None, f"{ctype} {name}")
                stack.pop()
                continue
            if kind == "ignore":
                arrival[b] = (0.0, 0.0, 0.0, None, f"{ctype} {name}")
                stack.pop()
                continue
            pending = [i for i in cell_inputs[name] if i not in arrival]
            if pending:
                if b in visiting:   # its inputs were expanded and one of them needs b
                    raise ValueError(f"{module}: combinational loop through {ctype} {name}")
                visiting.add(b)
                stack.extend(pending)
                continue
            best = (0.0, 0.0, 0.0, None)
            for i in cell_inputs[name]:
                a = arrival[i]
                if best[3] is None or a[1] > best[1] or (a[1] == best[1] and a[2] > best[2]):
                    best = (a[0], a[1], a[2], i)
            lo, hi, lv = comb_delay(kind)
            arrival[b] = (best[0] + lo, best[1] + hi, best[2] + lv, best[3], f"{ctype} {name}")
            stack.pop()
            visiting.discard(b)
        return arrival[bit]

    worst = (0.0, 0.0, 0.0, None, "none", "none")
    deepest = 0.0
    worst_lo = 0.0
    ends: list[tuple[int, str, bool]] = []
    for name, c in mod["cells"].items():
        kind = "box" if c["type"] in boxes else _kind(c["type"])
        if kind in ("seq", "bram", "box") or (kind == "dsp" and _dsp_registered_in(c.get("parameters", {}))):
            macro = kind in ("bram", "dsp")
            for b in cell_inputs[name]:
                ends.append((b, f"{c['type']} {name}", macro))
        elif kind == "lutram":
            # the write side (data, address, write enable) is synchronous
            dirs = c.get("port_directions", {})
            for port, bits in c["connections"].items():
                if dirs.get(port) == "input" and port.startswith(("D", "WE", "WA", "A")) \
                        and not _CLOCK_PINS.fullmatch(port):
                    ends += [(b, f"{c['type']} {name}", False) for b in bits if isinstance(b, int)]
    for pname, p in mod["ports"].items():
        if p["direction"] == "output":
            ends += [(b, f"output {pname}", False) for b in p["bits"] if isinstance(b, int)]
    for b, what, macro in ends:
        a = arrive(b)
        lo = a[0] + ff_lo + (d["macro_setup"][0] if macro else 0.0)
        hi = a[1] + ff_hi + (d["macro_setup"][1] if macro else 0.0)
        deepest = max(deepest, a[2])
        worst_lo = max(worst_lo, lo)
        if hi > worst[1]:
            worst = (lo, hi, a[2], b, a[4], what)
    # the worst path's cells, start to end, with a user-visible net name where one exists
    names = _net_names(mod)
    path = []
    b = worst[3]
    while b is not None and b in arrival:
        a = arrival[b]
        path.append(f"{a[4].split()[0]} -> {names.get(b, '?')}")
        b = a[3]
    path.reverse()
    fo, fo_net, high = fanout(mod)
    return PathReport(module=module, family=family, levels=deepest, ns_lo=max(worst_lo, ff_lo),
                      ns_hi=max(worst[1], ff_hi), start=path[0].split()[0] if path else "none",
                      end=worst[5], cells=counts, path=path, fanout=fo, fanout_net=fo_net,
                      high_fanout=high)


_COMMENT = re.compile(r"//[^\n]*|/\*.*?\*/|\"(?:[^\"\\\n]|\\.)*\"", re.S)
_MODULE_DEF = re.compile(r"^\s*module\s+(\w+)", re.M)


def module_files(files: dict[str, str], top: str) -> dict[str, str]:
    """The files of ``top``'s hierarchy: the file defining ``top`` and, transitively, the
    files of every module it instantiates (found in the Verilog text: a defined module's
    name followed by ``#(`` or an instance name and ``(``).

    The estimate synthesizes only these: Yosys/ABC's mapping of a module moves with the
    unrelated modules read beside it (fp32_add measured 192.7 and 200.4 MHz, layer_seq
    180.2 and 200.0, unchanged, with different neighbours), so one module's figure must
    not depend on the rest of the design."""
    text = {name: _COMMENT.sub(" ", t) for name, t in files.items()}
    defined: dict[str, str] = {}
    for name in sorted(text):
        for m in _MODULE_DEF.findall(text[name]):
            defined.setdefault(m, name)
    if top not in defined:
        raise EfgenError(f"module {top} is not defined in any file", where="efgen synth --timing",
                         fix="regenerate the RTL with 'efgen build'")
    inst = {m: re.compile(rf"\b{m}\b\s*(?:#\s*\(|\w+\s*(?:\[[^\]]*\]\s*)?\()")
            for m in defined}
    keep: list[str] = []
    todo = [defined[top]]
    while todo:
        name = todo.pop()
        if name in keep:
            continue
        keep.append(name)
        own = set(_MODULE_DEF.findall(text[name]))
        todo += [defined[m] for m in sorted(defined) if m not in own and inst[m].search(text[name])]
    return {name: files[name] for name in sorted(keep)}


def run_timing(files: dict[str, str] | Path | str, top: str, family: str = "xcup",
               timeout: float | None = None, boxes: tuple[str, ...] | None = None) -> PathReport:
    """Yosys-map ``top`` for ``family`` and :func:`analyse` it. ``files``: name -> Verilog
    text, or a folder of ``*.v``; only the files of ``top``'s hierarchy
    (:func:`module_files`) are read, so the estimate does not depend on the others.
    ``boxes``: modules kept as black boxes (their files read with ``-lib``); default
    :data:`BOXES` for the modules of :data:`ARRAY_MODULES`, none otherwise."""
    from efgen.rtl.synth import _yosys

    if family not in TIMING_FAMILIES:
        raise EfgenError(f"timing family {family!r} not supported", where="efgen synth --timing",
                         fix=f"use one of {', '.join(TIMING_FAMILIES)}")
    exe = _yosys()
    if isinstance(files, (str, Path)):
        files = {p.name: p.read_text() for p in sorted(Path(files).glob("*.v"))}
    files = module_files(files, top)
    if boxes is None:
        boxes = BOXES if top in ARRAY_MODULES else ()
    boxed = {name for name, text in files.items()
             if set(_MODULE_DEF.findall(_COMMENT.sub(" ", text))) & set(boxes)}
    with tempfile.TemporaryDirectory(prefix="efgen-timing-") as tmp:
        work = Path(tmp)
        # read by a relative name (the folder is the working directory): Yosys puts the
        # file name into net names, and a temporary folder's name would vary between runs
        paths = []
        for i, (name, text) in enumerate(sorted(files.items())):
            local = name if re.fullmatch(r"[\w.-]+\.s?v", name) else f"file{i}.v"
            (work / local).write_text(text)
            paths.append(("-lib " if name in boxed else "") + f'"{local}"')
        script = work / "timing.ys"
        script.write_text("".join(f'read_verilog -sv {p}\n' for p in paths)
                          + f"synth_xilinx -family {family} -top {top} -flatten -noiopad\n"
                          + "write_json netlist.json\n")
        t0 = time.perf_counter()
        try:
            r = subprocess.run([exe, "-q", "-s", str(script)], cwd=work, capture_output=True,
                               text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise EfgenError(f"yosys did not finish within {timeout:g} s", where=top,
                             fix="estimate a smaller module") from None
        if r.returncode != 0 or not (work / "netlist.json").exists():
            errs = [ln for ln in (r.stdout + r.stderr).splitlines() if "ERROR" in ln]
            raise EfgenError(f"yosys failed on {top}: "
                             f"{errs[0].strip() if errs else 'exit code ' + str(r.returncode)}",
                             where=top, fix="check the Verilog with yosys by hand")
        netlist = json.loads((work / "netlist.json").read_text())
        seconds = time.perf_counter() - t0
    rep = analyse(netlist, top, family, boxes=tuple(boxes))
    rep.seconds = seconds
    return rep


# Modules estimated by ``efgen synth --timing DIR``, in the order of the table. Not
# estimated alone: engine_array / efgen_top (a 2x2 top takes Yosys ~150 s here): every
# stage of the array is an fp32_mul or fp32_add stage (the adder tree is pipelined by its
# adders, so its per-stage depth does not grow with Tn), and the buffer read ports are
# engine_ram's registered reads. engine_core follows them (ARRAY_MODULES), with the FP32
# units as black boxes: its buffers, muxes and their fan-out.
MODULES = ("fp32_add", "fp32_mul", "engine_ctrl", "engine_wload", "tile_rd", "tile_wr",
           "axi_dma_rd", "axi_dma_wr", "desc_regs", "layer_seq", "sgd_wb", "vec_unit",
           "bn_unit", "fp32_div", "fp32_sqrt", "pool_unit")
# Only in a build whose AXI data is wider than one word (efgen_top's beat adapters).
WIDE_MODULES = ("beat_pack", "beat_unpack")


def summary(reports: list[PathReport]) -> dict[str, Any]:
    """The design's estimate: the slowest module bounds the clock."""
    worst = min(reports, key=lambda r: r.fmax_lo)
    return {"family": worst.family, "fmax_mhz_lo": round(min(r.fmax_lo for r in reports), 1),
            "fmax_mhz_hi": round(min(r.fmax_hi for r in reports), 1),
            "limited_by": worst.module, "levels": round(max(r.levels for r in reports), 2),
            "max_fanout": max(r.fanout for r in reports),
            "max_fanout_net": next(f"{r.module}: {r.fanout_net}" for r in reports
                                   if r.fanout == max(q.fanout for q in reports))}


def format_timing(reports: list[PathReport]) -> str:
    from efgen.textable import format_table as table

    def net(n: str) -> str:
        return n if len(n) <= 48 else n[:45] + "..."

    rows = [[r.module, f"{r.levels:.1f}", f"{r.ns_lo:.2f} .. {r.ns_hi:.2f}",
             f"{r.fmax_lo:.0f} .. {r.fmax_hi:.0f}", f"{r.fanout} {net(r.fanout_net)}",
             f"{r.seconds:.1f}"] for r in reports]
    s = summary(reports)
    high = [f"  {r.module}: " + ", ".join(f"{net(n)} {k}" for k, n in r.high_fanout[:6])
            + (f" (+{len(r.high_fanout) - 6} more)" if len(r.high_fanout) > 6 else "")
            for r in reports if r.high_fanout]
    return (table(["module", "LUT levels", "worst path ns", "fmax MHz", "max fan-out (net)",
                   "yosys s"], rows)
            + f"\n{FAMILY_NAMES[s['family']]}: fmax estimate {s['fmax_mhz_lo']:.0f} .. "
            f"{s['fmax_mhz_hi']:.0f} MHz (limited by {s['limited_by']}); logic only, no "
            "placement or routing: an estimate, not a guarantee (efgen/rtl/timing.py)."
            + (f"\nNets above {FANOUT_LIMIT} loads (candidates for register copies):\n"
               + "\n".join(high) if high else
               f"\nNo net above {FANOUT_LIMIT} loads (clock excluded)."))


def timing_build_dir(build_dir: Path | str, family: str = "xcup",
                     modules: tuple[str, ...] = MODULES,
                     array: bool = True) -> tuple[list[PathReport], Path]:
    """``efgen synth --timing DIR``: every module of :data:`MODULES` in ``DIR/rtl/*.v``
    (and the beat adapters and, with ``array``, :data:`ARRAY_MODULES` where present);
    writes ``DIR/rtl/timing.json``."""
    d = Path(build_dir)
    rtl = d / "rtl"
    if not rtl.is_dir():
        raise EfgenError("no rtl/ folder", file=str(d),
                         fix="generate the RTL with 'efgen build' (it writes DIR/rtl/*.v)")
    files = {p.name: p.read_text() for p in sorted(rtl.glob("*.v"))}
    extra = WIDE_MODULES + (ARRAY_MODULES if array else ())
    modules = tuple(modules) + tuple(m for m in extra if f"{m}.v" in files and m not in modules)
    missing = [m for m in modules if f"{m}.v" not in files]
    if missing:
        raise EfgenError(f"{missing[0]}.v not found", file=str(rtl),
                         fix="regenerate the RTL with 'efgen build' (impl dsp or synth)")
    if "$bitstoreal" in files["fp32_add.v"]:
        raise EfgenError("the FP32 units are the behavioural (real) ones", file=str(rtl),
                         fix="build with the synthesizable units (--rtl-impl dsp or synth)")
    reports = [run_timing(files, m, family) for m in modules]
    out = {"method": "yosys synth_xilinx + efgen logic-depth STA (efgen/rtl/timing.py)",
           "family": family, "summary": summary(reports),
           "modules": [r.as_dict() for r in reports]}
    path = rtl / "timing.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    return reports, path
