"""The vendor reports' data model (:class:`HlsReport`, :class:`CosimReport`) and the
helpers every format's parser shares: reading a file, and turning cells into numbers.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from efgen.errors import EfgenError

KIND_CSYNTH_XML = "csynth-xml"
KIND_CSYNTH_RPT = "csynth-rpt"                    # classic per-module layout
KIND_CSYNTH_SUMMARY_RPT = "csynth-summary-rpt"    # 2022+ "Synthesis Summary Report" tree layout
KIND_COSIM_RPT = "cosim-rpt"

VITIS_HLS = "Vitis HLS"
VIVADO_HLS = "Vivado HLS"

_EXPECTED = "a Vitis/Vivado HLS report (csynth.xml, csynth.rpt or cosim.rpt)"
_EXPECTED_XML = "a Vitis/Vivado HLS csynth.xml"
_EXPECTED_RPT = "a Vitis/Vivado HLS csynth.rpt"
_EXPECTED_COSIM = "a Vitis/Vivado HLS cosim.rpt"
_FIX_RERUN = "copy the complete file again, or re-run the HLS step that writes it"


# --------------------------------------------------------------------------------------
# Data model
# --------------------------------------------------------------------------------------

Number = int | float


@dataclass(frozen=True)
class Range:
    """A figure the tool may give as min/max/average. ``None`` means unknown or not stated.

    One exact value is ``Range(v, v)``, and ``avg`` is set only where the report gives an
    average. The summary layout prints one value per cell, the worst case (for example
    ``0 ~ 98`` appears as ``98``), so that value is stored as ``Range(max=v)``.
    """

    min: Number | None = None
    max: Number | None = None
    avg: Number | None = None

    @property
    def known(self) -> bool:
        """True when both bounds are known."""
        return self.min is not None and self.max is not None

    @property
    def value(self) -> Number | None:
        """The single value when min == max, else None."""
        return self.min if self.known and self.min == self.max else None

    def __str__(self) -> str:
        lo = "?" if self.min is None else str(self.min)
        hi = "?" if self.max is None else str(self.max)
        if self.min is None and self.max is None:
            return "?"
        return lo if lo == hi else f"{lo}..{hi}"


UNKNOWN = Range()


@dataclass(frozen=True)
class Resources:
    """Resource counts. ``None`` means the report does not list that resource."""

    bram_18k: int | None = None
    dsp: int | None = None      # "DSP48E" in Vivado HLS reports
    ff: int | None = None
    lut: int | None = None
    uram: int | None = None

    def as_dict(self) -> dict[str, int | None]:
        return {"bram_18k": self.bram_18k, "dsp": self.dsp, "ff": self.ff,
                "lut": self.lut, "uram": self.uram}


@dataclass(frozen=True)
class LoopInfo:
    """One loop of a module.

    ``name`` is written as in the file: ``Loop 3.1`` in .rpt and ``Loop3.1`` in XML.
    :meth:`HlsReport.loop` matches names with spaces ignored.
    """

    name: str
    module: str                         # module the loop belongs to
    parent: str | None                  # enclosing loop in the same module, or None
    trip_count: Range = UNKNOWN
    latency: Range = UNKNOWN            # whole loop, in cycles
    iteration_latency: Range = UNKNOWN
    ii: int | None = None               # achieved initiation interval (pipelined loops)
    ii_target: int | None = None        # only the classic .rpt states the target II
    pipeline_depth: int | None = None   # only csynth.xml states the depth (<PipelineDepth>)
    pipelined: bool | None = None
    slack_ns: float | None = None       # Vitis 2023+ XML / summary layout


@dataclass(frozen=True)
class InstanceInfo:
    """One sub-module instance (function call or operator core)."""

    name: str                           # instance name (the module name in the summary layout)
    module: str | None
    latency: Range = UNKNOWN
    interval: Range = UNKNOWN
    pipeline_type: str | None = None
    resources: Resources | None = None  # None when the report gives no resources for it


@dataclass(frozen=True)
class HlsReport:
    """A C-synthesis report (csynth.xml or csynth.rpt).

    What each kind fills in:

    * csynth.xml: everything except ``instances`` (these XML files list no sub-modules) and
      ``build``. Loops have ``pipeline_depth`` but no ``ii_target``.
    * classic csynth.rpt: everything. Loops have ``ii_target`` and ``iteration_latency``
      but no ``pipeline_depth``. ``instances`` merges the latency and utilisation tables.
    * summary csynth.rpt: no clock figures (the layout has none) and no ``available``.
      ``loops`` covers every module and ``instances`` holds every non-top module. Each
      one-value cell is a worst case, ``Range(max=v)``.
    """

    tool: str                           # "Vitis HLS" or "Vivado HLS"
    version: str                        # e.g. "2023.2"
    kind: str                           # KIND_CSYNTH_XML, KIND_CSYNTH_RPT or
    #                                     KIND_CSYNTH_SUMMARY_RPT
    part: str
    top: str
    target_clock_ns: float | None
    estimated_clock_ns: float | None
    clock_uncertainty_ns: float | None
    latency: Range
    interval: Range
    loops: tuple[LoopInfo, ...]
    resources: Resources
    instances: tuple[InstanceInfo, ...]
    source: str
    build: str | None = None
    family: str | None = None
    flow_target: str | None = None      # "vivado" (IP flow) or "vitis" (kernel flow)
    pipeline_type: str | None = None    # "none"/"no"/"dataflow"/...
    available: Resources | None = None

    def loop(self, name: str, module: str | None = None) -> LoopInfo:
        """The first loop called ``name`` (spaces ignored: "Loop 3.1" == "Loop3.1").

        The summary layout lists loops of every module, and two modules can both have a
        "Loop 1"; pass ``module`` to choose one.
        """
        key = name.replace(" ", "")
        for lp in self.loops:
            if lp.name.replace(" ", "") == key and module in (None, lp.module):
                return lp
        raise KeyError(name if module is None else f"{module}/{name}")

    def instance(self, name: str) -> InstanceInfo:
        """The instance called ``name``, else the first instance of module ``name``."""
        for inst in self.instances:
            if inst.name == name:
                return inst
        for inst in self.instances:
            if inst.module == name:
                return inst
        raise KeyError(name)


@dataclass(frozen=True)
class CosimRun:
    """One row of the co-simulation table (one RTL language)."""

    rtl: str                            # "Verilog" / "VHDL"
    status: str | None                  # "Pass" / "Fail"; None when NA (not run)
    latency: Range = UNKNOWN
    interval: Range = UNKNOWN
    total_cycles: int | None = None     # "Total Execution Time"; None if NA or no such column


@dataclass(frozen=True)
class CosimReport:
    """A C/RTL co-simulation report (cosim.rpt)."""

    runs: tuple[CosimRun, ...]
    source: str
    simulator: str | None = None        # "xsim", "modelsim", ...
    solution: str | None = None
    report_time: str | None = None
    kind: str = KIND_COSIM_RPT

    @property
    def result(self) -> CosimRun | None:
        """The run that was simulated (a failed run first, then a passing one)."""
        ran = [r for r in self.runs if r.status is not None]
        failed = [r for r in ran if r.status.lower() != "pass"]
        return (failed or ran or [None])[0]

    @property
    def status(self) -> str | None:
        """The result's status: "Pass", "Fail", or None when nothing ran."""
        r = self.result
        return r.status if r else None

    @property
    def latency(self) -> Range:
        r = self.result
        return r.latency if r else UNKNOWN

    @property
    def interval(self) -> Range:
        r = self.result
        return r.interval if r else UNKNOWN

    @property
    def total_cycles(self) -> int | None:
        r = self.result
        return r.total_cycles if r else None


# --------------------------------------------------------------------------------------
# Reading files
# --------------------------------------------------------------------------------------

def _read_bytes(path: Path, expected: str = _EXPECTED) -> bytes:
    shown = str(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise EfgenError("report file not found", file=shown,
                         fix="check the path, or use find_reports() on the HLS project "
                             "folder") from None
    except IsADirectoryError:
        raise EfgenError("expected a report file, got a folder", file=shown,
                         fix="pass a csynth.xml, csynth.rpt or cosim.rpt file") from None
    except OSError as exc:
        raise EfgenError(f"cannot read report file: {exc.strerror or exc}", file=shown) from None
    if not data.strip():
        raise EfgenError(f"empty file, expected {expected}", file=shown, fix=_FIX_RERUN)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    return data


_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")


def _decode_text(data: bytes, shown: str, expected: str = _EXPECTED) -> str:
    # Reports are UTF-8, but a locale-specific "Report time" line might not be. Bytes that are
    # not UTF-8 become U+FFFD; control characters never occur in reports, so they mean binary.
    text = data.decode("utf-8", errors="replace")
    m = _CONTROL.search(text)
    if m:
        line = text.count("\n", 0, m.start()) + 1
        raise EfgenError(f"binary data, expected {expected}", file=shown, where=f"line {line}",
                         fix="pass the text report written by the HLS tool")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _looks_like_xml(data: bytes) -> bool:
    return data.lstrip().startswith(b"<")


# --------------------------------------------------------------------------------------
# Cell / value helpers
# --------------------------------------------------------------------------------------

_UNKNOWN_TOKENS = {"", "?", "undef", "-", "na", "n/a", "none"}


def _num(text: str, what: str, file: str, where: str) -> Number | None:
    """A cycle count or plain number. Unknown tokens give None."""
    t = text.strip().replace(",", "")
    if t.lower() in _UNKNOWN_TOKENS:
        return None
    try:
        return int(t)
    except ValueError:
        pass
    try:
        v = float(t)
    except ValueError:
        raise EfgenError(f"{what}: expected a number, got '{text.strip()}'", file=file,
                         where=where, fix="the report looks damaged; " + _FIX_RERUN) from None
    if not math.isfinite(v):
        raise EfgenError(f"{what}: expected a finite number, got '{text.strip()}'",
                         file=file, where=where)
    return v


def _int(text: str, what: str, file: str, where: str) -> int | None:
    v = _num(text, what, file, where)
    if v is None:
        return None
    if isinstance(v, float):
        if not v.is_integer():
            raise EfgenError(f"{what}: expected a whole number, got '{text.strip()}'",
                             file=file, where=where)
        v = int(v)
    return v


def _range_text(text: str, what: str, file: str, where: str, *,
                single_is_max: bool = False) -> Range:
    """``5``, ``0 ~ 65535``, ``?`` or ``-`` as a Range."""
    t = text.strip()
    if "~" in t:
        lo, _, hi = t.partition("~")
        return Range(_int(lo, what, file, where), _int(hi, what, file, where))
    v = _int(t, what, file, where)
    if v is None:
        return UNKNOWN
    return Range(max=v) if single_is_max else Range(v, v)


_TIME_UNITS = {"ps": 1e-3, "ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}


def _ns(text: str | None, what: str, file: str, where: str) -> float | None:
    """``10.00``, ``10.00 ns`` or ``7.3`` as nanoseconds; unknown tokens give None."""
    if text is None:
        return None
    t = text.strip()
    m = re.fullmatch(r"([-+0-9.eE]+)\s*([a-z]*)", t)
    if t.lower() in _UNKNOWN_TOKENS:
        return None
    if not m or (m.group(2) and m.group(2) not in _TIME_UNITS):
        raise EfgenError(f"{what}: expected a time in ns, got '{t}'", file=file, where=where,
                         fix="the report looks damaged; " + _FIX_RERUN)
    v = _num(m.group(1), what, file, where)
    return None if v is None else float(v) * _TIME_UNITS[m.group(2) or "ns"]


def _resource_cell(text: str, what: str, file: str, where: str, *,
                   dash_is_zero: bool) -> int | None:
    """``38``, ``38 (13%)``, ``15 (~0%)``; ``-`` is 0 where ``dash_is_zero``."""
    t = text.strip()
    if t == "-" and dash_is_zero:
        return 0
    t = re.sub(r"\s*\([^)]*\)\s*$", "", t)
    return _int(t, what, file, where)


def _tool_for(version: str, flow_target: str | None) -> str:
    """Vivado HLS up to 2020.1 (the last release); Vitis HLS from 2020.1 (has FlowTarget) on."""
    m = re.match(r"(\d{4})\.(\d+)", version)
    if flow_target is not None:
        return VITIS_HLS
    if m and (int(m.group(1)), int(m.group(2))) >= (2020, 2):
        return VITIS_HLS
    return VIVADO_HLS
