"""Read Vitis HLS / Vivado HLS reports: csynth.xml, csynth.rpt (both layouts) and cosim.rpt.

The figures land in frozen dataclasses (:class:`HlsReport`, :class:`CosimReport`), so the
analytical model's estimates can be compared with what the vendor tool reported
(:func:`compare_table`, :func:`format_comparison`).

Supported inputs (each checked against a real report in ``tests/fixtures/vitis_reports``):

* ``<top>_csynth.xml`` / ``csynth.xml`` written by Vivado HLS 2018.2, 2019.1 and 2020.1 and
  by Vitis HLS 2020.1, 2022.1 and 2023.2.
* ``csynth.rpt`` in the classic per-module layout ("Vivado HLS Report for 'x'" /
  "Vitis HLS Report for 'x'") and in the 2022+ "Synthesis Summary Report" tree layout.
* ``<top>_cosim.rpt`` in both co-simulation layouts: with and without the "Total Execution
  Time" column.

Parsing rules:

* XML elements are found by tag name and text tables are read by column *name*, never by
  position. Each ``+---+`` table's header rows are merged into one name per column (for
  example ``Latency (cycles) min`` or ``Initiation Interval achieved``). The parser looks
  columns up by those names and ignores extra columns, so columns added, dropped or
  reordered between tool versions do no harm.
* ``undef``, ``?``, ``NA`` and ``-`` in a cycle or latency field mean *unknown* (``None``).
  A ranged trip count or latency, ``0 ~ 65535`` in text or
  ``<range><min>0</min><max>65535</max></range>`` in XML, becomes ``Range(min, max)``.
* The old DSP column and element, ``DSP48E``, is normalised to ``Resources.dsp``.
* A resource that the report does not list is ``None`` ("not reported"), never 0. Example:
  Vivado HLS 2018.2 has no URAM column in its per-instance table. A ``-`` in a resource cell
  of the summary layout's tree table means the tool counted none, so it is 0.
* Each file's own fields are read as they are. No figure is derived from another one (for
  example, the interval is not worked out from the latency). A value the file does not state
  stays ``None``.

Malformed input (empty, truncated, binary, or a foreign XML or text file) raises
:class:`efgen.errors.EfgenError`. The error names the file, and the line where there is one.
Truncation policy for the text layouts:

* Every ``+---+`` table must be closed by a full-width border. A table cut off part-way is an
  error.
* Each layout must contain the sections that the figures come from. The classic layout must
  also contain its final ``Interface`` section: the tool always writes it last, so when it is
  missing the file was cut.
* The summary layout has no fixed last section. A summary report cut *between* tables
  after the "Performance & Resource Estimates" table still parses, with the same figures as
  the complete file, because that table holds everything this module reads.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from efgen.errors import EfgenError

__all__ = [
    "Range", "Resources", "LoopInfo", "InstanceInfo", "HlsReport", "CosimRun", "CosimReport",
    "ComparisonRow", "parse_report", "parse_csynth_xml", "parse_csynth_rpt", "parse_cosim_rpt",
    "find_reports", "vendor_figures", "compare_table", "format_comparison",
    "KIND_CSYNTH_XML", "KIND_CSYNTH_RPT", "KIND_CSYNTH_SUMMARY_RPT", "KIND_COSIM_RPT",
]

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


def parse_report(path: str | Path) -> HlsReport | CosimReport:
    """Parse any supported report. The kind comes from the content, not the file name."""
    path = Path(path)
    data = _read_bytes(path)
    if _looks_like_xml(data):
        return _parse_csynth_xml_bytes(data, str(path))
    text = _decode_text(data, str(path))
    kind = _detect_text_kind(text)
    if kind == KIND_COSIM_RPT:
        return _parse_cosim_text(text, str(path))
    if kind in (KIND_CSYNTH_RPT, KIND_CSYNTH_SUMMARY_RPT):
        return _parse_csynth_text(text, str(path))
    raise EfgenError(f"not a recognised HLS report, expected {_EXPECTED}", file=str(path),
                     fix="pass syn/report/<top>_csynth.xml, syn/report/csynth.rpt or "
                         "sim/report/<top>_cosim.rpt from the HLS solution folder")


def parse_csynth_xml(path: str | Path) -> HlsReport:
    """Parse a ``csynth.xml`` / ``<top>_csynth.xml``."""
    path = Path(path)
    data = _read_bytes(path, _EXPECTED_XML)
    if not _looks_like_xml(data):
        _decode_text(data, str(path), _EXPECTED_XML)   # binary garbage gets its own message
        raise EfgenError("not XML, expected a Vitis/Vivado HLS csynth.xml", file=str(path),
                         where="line 1", fix="pass syn/report/<top>_csynth.xml")
    return _parse_csynth_xml_bytes(data, str(path))


def parse_csynth_rpt(path: str | Path) -> HlsReport:
    """Parse a ``csynth.rpt``: the classic per-module layout or the summary layout."""
    path = Path(path)
    data = _read_bytes(path, _EXPECTED_RPT)
    text = _decode_text(data, str(path), _EXPECTED_RPT)
    if _detect_text_kind(text) not in (KIND_CSYNTH_RPT, KIND_CSYNTH_SUMMARY_RPT):
        raise EfgenError("not a Vitis/Vivado HLS csynth.rpt (no \"HLS Report for '<top>'\" or "
                         "\"Synthesis Summary Report of '<top>'\" title)", file=str(path),
                         fix="pass syn/report/csynth.rpt or syn/report/<top>_csynth.rpt")
    return _parse_csynth_text(text, str(path))


def parse_cosim_rpt(path: str | Path) -> CosimReport:
    """Parse a C/RTL co-simulation report (``sim/report/<top>_cosim.rpt``)."""
    path = Path(path)
    data = _read_bytes(path, _EXPECTED_COSIM)
    text = _decode_text(data, str(path), _EXPECTED_COSIM)
    if _detect_text_kind(text) != KIND_COSIM_RPT:
        raise EfgenError("not a Vitis/Vivado HLS cosim.rpt (no table with RTL and Status "
                         "columns)", file=str(path), fix="pass sim/report/<top>_cosim.rpt")
    return _parse_cosim_text(text, str(path))


_REPORT_GLOBS = (
    "**/syn/report/*csynth.xml",
    "**/syn/report/*csynth.rpt",
    "**/sim/report/*cosim.rpt",
)


def find_reports(directory: str | Path) -> list[Path]:
    """Vendor reports under an HLS build folder, sorted by path.

    Finds ``**/syn/report/*csynth.xml``, ``**/syn/report/*csynth.rpt`` (the top's own
    ``csynth.*``, ``<top>_csynth.*`` and one per sub-module) and ``**/sim/report/*cosim.rpt``.
    ``directory`` may be the project folder, a solution folder or a ``report`` folder.
    """
    d = Path(directory)
    if not d.is_dir():
        raise EfgenError("not a folder", file=str(d),
                         fix="pass the HLS project or solution folder (the one holding "
                             "syn/ and sim/)")
    found: set[Path] = set()
    for pattern in _REPORT_GLOBS:
        found.update(p for p in d.glob(pattern) if p.is_file())
    # The folder may itself be syn/report or sim/report.
    if d.name == "report":
        kind_dir = d.parent.name
        if kind_dir == "syn":
            found.update(p for p in d.glob("*csynth.xml") if p.is_file())
            found.update(p for p in d.glob("*csynth.rpt") if p.is_file())
        elif kind_dir == "sim":
            found.update(p for p in d.glob("*cosim.rpt") if p.is_file())
    return sorted(found)


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


# --------------------------------------------------------------------------------------
# csynth.xml
# --------------------------------------------------------------------------------------

_LOOP_FIELDS = {"TripCount", "Latency", "AbsoluteTimeLatency", "IterationLatency", "PipelineII",
                "PipelineDepth", "Slack", "InstanceList", "PipelineType", "unit"}


class _Xml:
    """Helpers that know the file name for error messages."""

    def __init__(self, root: ET.Element, file: str):
        self.root = root
        self.file = file

    def req(self, parent: ET.Element, tag: str, path: str) -> ET.Element:
        el = parent.find(tag)
        if el is None:
            raise EfgenError(f"csynth.xml has no <{tag}> element in <{path}>", file=self.file,
                             where=f"{path}/{tag}",
                             fix="the file is incomplete or not a csynth.xml; " + _FIX_RERUN)
        return el

    def text(self, parent: ET.Element | None, tag: str) -> str | None:
        if parent is None:
            return None
        el = parent.find(tag)
        if el is None or el.text is None:
            return None
        return el.text.strip()

    def range_of(self, el: ET.Element | None, path: str) -> Range:
        """``<X>5</X>``, ``<X>undef</X>`` or ``<X><range><min/><max/></range></X>``."""
        if el is None:
            return UNKNOWN
        rng = el.find("range")
        if rng is not None:
            return Range(_int(self.text(rng, "min") or "", f"<{el.tag}> min", self.file, path),
                         _int(self.text(rng, "max") or "", f"<{el.tag}> max", self.file, path))
        return _range_text(el.text or "", f"<{el.tag}>", self.file, path)

    def int_of(self, parent: ET.Element, tag: str, path: str) -> int | None:
        el = parent.find(tag)
        if el is None:
            return None
        if el.find("range") is not None:        # a ranged II: keep the worst case
            return self.range_of(el, f"{path}/{tag}").max
        return _int(el.text or "", f"<{tag}>", self.file, f"{path}/{tag}")


def _parse_csynth_xml_bytes(data: bytes, file: str) -> HlsReport:
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise EfgenError("XML with a DOCTYPE/ENTITY declaration is not a Vitis/Vivado HLS "
                         "csynth.xml", file=file, fix="pass syn/report/<top>_csynth.xml")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        line = exc.position[0] if getattr(exc, "position", None) else None
        raise EfgenError(f"truncated or malformed XML ({exc}), expected a complete "
                         "Vitis/Vivado HLS csynth.xml", file=file,
                         where=f"line {line}" if line else None, fix=_FIX_RERUN) from None
    if root.tag != "profile" or root.find("ReportVersion") is None:
        raise EfgenError(f"not a Vitis/Vivado HLS csynth.xml (root element <{root.tag}>, expected "
                         "<profile> holding <ReportVersion>)", file=file, where="line 1",
                         fix="pass syn/report/<top>_csynth.xml from the HLS solution folder")
    x = _Xml(root, file)

    version = x.text(x.req(root, "ReportVersion", "profile"), "Version")
    if not version:
        raise EfgenError("csynth.xml has no <Version> in <ReportVersion>", file=file,
                         where="profile/ReportVersion", fix=_FIX_RERUN)
    ua = x.req(root, "UserAssignments", "profile")
    part = x.text(ua, "Part")
    top = x.text(ua, "TopModelName")
    for tag, val in (("Part", part), ("TopModelName", top)):
        if not val:
            raise EfgenError(f"csynth.xml has no <{tag}> in <UserAssignments>", file=file,
                             where=f"profile/UserAssignments/{tag}", fix=_FIX_RERUN)
    flow = x.text(ua, "FlowTarget")
    p_ua = "profile/UserAssignments"
    target = _ns(x.text(ua, "TargetClockPeriod"), "<TargetClockPeriod>", file, p_ua)
    uncertainty = _ns(x.text(ua, "ClockUncertainty"), "<ClockUncertainty>", file, p_ua)

    perf = x.req(root, "PerformanceEstimates", "profile")
    p_perf = "profile/PerformanceEstimates"
    estimated = _ns(x.text(perf.find("SummaryOfTimingAnalysis"), "EstimatedClockPeriod"),
                    "<EstimatedClockPeriod>", file, p_perf + "/SummaryOfTimingAnalysis")
    lat = x.req(perf, "SummaryOfOverallLatency", p_perf)
    p_lat = p_perf + "/SummaryOfOverallLatency"

    def cyc(tag: str) -> Number | None:
        v = x.text(lat, tag)
        return None if v is None else _int(v, f"<{tag}>", file, f"{p_lat}/{tag}")

    latency = Range(cyc("Best-caseLatency"), cyc("Worst-caseLatency"), cyc("Average-caseLatency"))
    interval = Range(cyc("Interval-min"), cyc("Interval-max"))

    loops: list[LoopInfo] = []
    sol = perf.find("SummaryOfLoopLatency")
    if sol is not None:
        _xml_loops(x, sol, top, None, p_perf + "/SummaryOfLoopLatency", loops)

    area = x.req(root, "AreaEstimates", "profile")
    resources = _xml_resources(x, x.req(area, "Resources", "profile/AreaEstimates"),
                               "profile/AreaEstimates/Resources")
    avail_el = area.find("AvailableResources")
    available = (_xml_resources(x, avail_el, "profile/AreaEstimates/AvailableResources")
                 if avail_el is not None else None)

    return HlsReport(
        tool=_tool_for(version, flow), version=version, kind=KIND_CSYNTH_XML, part=part, top=top,
        target_clock_ns=target, estimated_clock_ns=estimated, clock_uncertainty_ns=uncertainty,
        latency=latency, interval=interval, loops=tuple(loops), resources=resources,
        instances=(), source=file, family=x.text(ua, "ProductFamily"), flow_target=flow,
        pipeline_type=x.text(perf, "PipelineType"), available=available,
    )


def _is_xml_loop(el: ET.Element) -> bool:
    return el.tag not in _LOOP_FIELDS and (el.find("TripCount") is not None
                                           or el.find("Latency") is not None)


def _xml_loops(x: _Xml, parent_el: ET.Element, module: str, parent: str | None, path: str,
               out: list[LoopInfo]) -> None:
    for el in parent_el:
        if not _is_xml_loop(el):
            continue
        p = f"{path}/{el.tag}"
        slack = x.text(el, "Slack")
        ii = x.int_of(el, "PipelineII", p)
        out.append(LoopInfo(
            name=el.tag, module=module, parent=parent,
            trip_count=x.range_of(el.find("TripCount"), p + "/TripCount"),
            latency=x.range_of(el.find("Latency"), p + "/Latency"),
            iteration_latency=x.range_of(el.find("IterationLatency"), p + "/IterationLatency"),
            ii=ii,
            pipeline_depth=x.int_of(el, "PipelineDepth", p),
            pipelined=el.find("PipelineII") is not None,
            slack_ns=_ns(slack, "<Slack>", x.file, p + "/Slack"),
        ))
        _xml_loops(x, el, module, el.tag, p, out)


def _xml_resources(x: _Xml, el: ET.Element, path: str) -> Resources:
    def get(*tags: str) -> int | None:
        for tag in tags:
            if el.find(tag) is not None:
                return x.int_of(el, tag, path)
        return None

    return Resources(bram_18k=get("BRAM_18K", "BRAM"), dsp=get("DSP", "DSP48E"), ff=get("FF"),
                     lut=get("LUT"), uram=get("URAM"))


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


# --------------------------------------------------------------------------------------
# csynth.rpt
# --------------------------------------------------------------------------------------

_TITLE_CLASSIC = re.compile(r"^==\s*(Vitis HLS|Vivado HLS) Report for '([^']*)'", re.M)
_TITLE_SUMMARY = re.compile(r"^==\s*Synthesis Summary Report of '([^']*)'", re.M)
_COSIM_HINT = re.compile(r"^\s*Simulation tool\s*:|^\s*\+\s*RTL\s*\+\s*Status\s*\+", re.M)


def _detect_text_kind(text: str) -> str | None:
    if _TITLE_SUMMARY.search(text):
        return KIND_CSYNTH_SUMMARY_RPT
    if _TITLE_CLASSIC.search(text):
        return KIND_CSYNTH_RPT
    if _COSIM_HINT.search(text):
        return KIND_COSIM_RPT
    return None


def _header_fields(text: str) -> dict[str, tuple[str, int]]:
    """``* Key: value`` lines (first occurrence), with their line numbers."""
    out: dict[str, tuple[str, int]] = {}
    for ln, line in enumerate(text.split("\n"), 1):
        m = re.match(r"\s*\*\s*([A-Za-z][A-Za-z ]*?)\s*:\s*(\S.*?)\s*$", line)
        if m and m.group(1) not in out:
            out[m.group(1)] = (m.group(2), ln)
    return out


def _version_fields(fields: dict[str, tuple[str, int]],
                    file: str) -> tuple[str, str | None, str, str | None, str | None]:
    """(version, build, part, family, flow target) from the ``* Key: value`` header."""
    if "Version" not in fields:
        raise _missing("'* Version:' line", file)
    vtext, vline = fields["Version"]
    m = re.match(r"(\d{4}\.\d+(?:\.\d+)?)(?:\s*\(Build\s+(\d+))?", vtext)
    if not m:
        raise EfgenError(f"cannot read the tool version from '{vtext}'", file=file,
                         where=f"line {vline}", fix=_FIX_RERUN)
    if "Target device" not in fields:
        raise _missing("'* Target device:' line", file)
    part = fields["Target device"][0]
    family = fields.get("Product family", (None, 0))[0]
    solution = fields.get("Solution", ("", 0))[0]
    flow = None
    fm = re.search(r"\((\w+) (?:IP|Kernel) Flow Target\)", solution)
    if fm:
        flow = fm.group(1).lower()
    return m.group(1), m.group(2), part, family, flow


def _parse_csynth_text(text: str, file: str) -> HlsReport:
    if _TITLE_SUMMARY.search(text):
        return _parse_summary_rpt(text, file)
    return _parse_classic_rpt(text, file)


def _parse_classic_rpt(text: str, file: str) -> HlsReport:
    titles = list(_TITLE_CLASSIC.finditer(text))
    first = titles[0]
    # Only the first report if several were concatenated.
    body = text[first.start(): titles[1].start()] if len(titles) > 1 else text[first.start():]
    line_offset = text.count("\n", 0, first.start())
    tool, top = first.group(1), first.group(2)
    tables = _scan_tables(body)
    for t in tables:
        t.line += line_offset
        t.end_line += line_offset
        for r in t.rows:
            r.line += line_offset
    _check_closed(tables, file)
    version, build, part, family, flow = _version_fields(_header_fields(body), file)

    perf = [t for t in tables if t.section.startswith("Performance Estimates")]
    util = [t for t in tables if t.section.startswith("Utilization Estimates")]

    # Timing summary.
    timing = next((t for t in perf if t.has("clock") and t.has("estimated")), None)
    if timing is None or not timing.rows:
        raise _missing("timing summary table (Performance Estimates > Timing)", file)
    trow = next((r for r in timing.rows if r.cells[_need_col(timing, file, "Clock", "clock")]),
                timing.rows[0])
    where = f"line {trow.line}"
    target = _ns(trow.get(timing.col("target")), "clock target", file, where)
    estimated = _ns(trow.get(timing.col("estimated")), "estimated clock", file, where)
    uncertainty = _ns(trow.get(timing.col("uncertainty")), "clock uncertainty", file, where)

    # Latency summary: has latency + interval columns, no instance/loop column.
    lat_t = next((t for t in perf if t.has(_LAT_MIN) and t.has(_INT_MIN)
                  and not t.has("instance", "loop name")), None)
    if lat_t is None or not lat_t.rows:
        raise _missing("latency summary table (Performance Estimates > Latency)", file)
    lrow = lat_t.rows[0]
    latency, interval = _lat_int(lat_t, lrow, file)
    ptype_col = lat_t.col(r"pipeline type")
    pipeline_type = lrow.get(ptype_col) or None

    # Instance latencies.
    inst_lat: dict[str, tuple[str | None, Range, Range, str | None]] = {}
    for t in perf:
        if t.has("instance") and t.has("module") and t.has(_LAT_MIN):
            ci, cm, cp = t.col("instance"), t.col("module"), t.col(r"pipeline type")
            for r in t.rows:
                if not r.cells[ci] or r.cells[ci] == "Total":
                    continue
                lt, it = _lat_int(t, r, file)
                inst_lat[r.cells[ci]] = (r.cells[cm] or None, lt, it, r.get(cp) or None)

    # Loops.
    loops: list[LoopInfo] = []
    for t in perf:
        if t.has("loop name"):
            loops.extend(_classic_loops(t, top, file))

    # Utilisation summary.
    usum = next((t for t in util if t.has("name") and any(r.cells[t.col("name")] == "Total"
                                                          for r in t.rows)), None)
    if usum is None:
        raise _missing("utilisation summary table with a 'Total' row (Utilization Estimates > "
                       "Summary)", file)
    cname = usum.col("name")
    resources = _resources_from_row(usum, next(r for r in usum.rows if r.cells[cname] == "Total"),
                                    file, dash_is_zero=False)
    arow = next((r for r in usum.rows if r.cells[cname] == "Available"), None)
    available = _resources_from_row(usum, arow, file, dash_is_zero=False) if arow else None

    # Instance resources (Utilization Estimates > Detail > Instance).
    inst_res: dict[str, tuple[str | None, Resources]] = {}
    for t in util:
        if t.star == "Instance" and t.has("instance") and t.has(*_RES_COLS["lut"]):
            ci, cm = t.col("instance"), t.col("module")
            for r in t.rows:
                if not r.cells[ci] or r.cells[ci] == "Total":
                    continue
                inst_res[r.cells[ci]] = (r.get(cm) or None,
                                         _resources_from_row(t, r, file, dash_is_zero=False))

    instances = []
    for name, (mod, res) in inst_res.items():
        lt = inst_lat.get(name)
        instances.append(InstanceInfo(name=name, module=mod or (lt[0] if lt else None),
                                      latency=lt[1] if lt else UNKNOWN,
                                      interval=lt[2] if lt else UNKNOWN,
                                      pipeline_type=lt[3] if lt else None, resources=res))
    for name, (mod, lt, it, pt) in inst_lat.items():
        if name not in inst_res:
            instances.append(InstanceInfo(name=name, module=mod, latency=lt, interval=it,
                                          pipeline_type=pt))

    # The classic layout always ends with the Interface section.
    if not any(t.section.startswith("Interface") for t in tables):
        raise _missing("'Interface' section (the last section of a csynth.rpt)", file)

    return HlsReport(
        tool=tool, version=version, kind=KIND_CSYNTH_RPT, part=part, top=top,
        target_clock_ns=target, estimated_clock_ns=estimated, clock_uncertainty_ns=uncertainty,
        latency=latency, interval=interval, loops=tuple(loops), resources=resources,
        instances=tuple(instances), source=file, build=build, family=family, flow_target=flow,
        pipeline_type=pipeline_type, available=available,
    )


def _lat_int(t: _Table, r: _Row, file: str) -> tuple[Range, Range]:
    w = f"line {r.line}"

    def g(pat: str, what: str) -> int | None:
        c = t.col(pat)
        return None if c is None else _int(r.cells[c], what, file, w)

    return (Range(g(_LAT_MIN, "latency min"), g(_LAT_MAX, "latency max"),
                  g(_LAT_AVG, "latency avg")),
            Range(g(_INT_MIN, "interval min"), g(_INT_MAX, "interval max"),
                  g(_INT_AVG, "interval avg")))


def _tree_level(raw: str, markers: str) -> tuple[int, str, str] | None:
    """(indent, marker, name) from a tree cell like ``' + VITIS_LOOP_27_3 '``."""
    m = re.match(r"^( *)([" + re.escape(markers) + r"]) (.*?)\s*$", raw)
    if not m:
        return None
    return len(m.group(1)), m.group(2), m.group(3)


def _yes_no(text: str) -> bool | None:
    t = text.strip().lower()
    if t in ("yes", "dataflow"):
        return True
    if t == "no":
        return False
    return None


def _classic_loops(t: _Table, top: str, file: str) -> list[LoopInfo]:
    cn = _need_col(t, file, "Loop Name", "loop name")
    c_it = t.col(r"iteration latency")
    c_ii = t.col(r"initiation interval achieved", r"ii achieved", r"initiation interval")
    c_iit = t.col(r"initiation interval target", r"ii target")
    c_tc = t.col(r"trip count")
    c_pl = t.col(r"pipelined")
    out: list[LoopInfo] = []
    stack: list[tuple[int, str]] = []
    for r in t.rows:
        w = f"line {r.line}"
        tree = _tree_level(r.raw[cn], "-+")
        if tree is None:
            if not r.cells[cn]:
                continue
            indent, name = 0, r.cells[cn]
        else:
            indent, _, name = tree
        while stack and stack[-1][0] >= indent:
            stack.pop()
        parent = stack[-1][1] if stack else None
        stack.append((indent, name))
        lat, _ = _lat_int(t, r, file)
        out.append(LoopInfo(
            name=name, module=top, parent=parent,
            trip_count=(_range_text(r.get(c_tc), "trip count", file, w)
                        if c_tc is not None else UNKNOWN),
            latency=Range(lat.min, lat.max),
            iteration_latency=(_range_text(r.get(c_it), "iteration latency", file, w)
                               if c_it is not None else UNKNOWN),
            ii=_int(r.get(c_ii), "achieved II", file, w),
            ii_target=_int(r.get(c_iit), "target II", file, w),
            pipelined=_yes_no(r.get(c_pl)) if c_pl is not None else None,
        ))
    return out


def _parse_summary_rpt(text: str, file: str) -> HlsReport:
    m = _TITLE_SUMMARY.search(text)
    top = m.group(1)
    tables = _scan_tables(text)
    _check_closed(tables, file)
    version, build, part, family, flow = _version_fields(_header_fields(text), file)

    tree = next((t for t in tables if t.has(r"modules loops", r"modules")), None)
    if tree is None or not tree.rows:
        raise _missing("'Performance & Resource Estimates' table", file)
    cn = _need_col(tree, file, "Modules & Loops", r"modules loops", r"modules")
    c_lat = tree.col(r"latency cycles", r"latency")
    c_it = tree.col(r"iteration latency")
    c_int = tree.col(r"interval")
    c_tc = tree.col(r"trip count")
    c_pl = tree.col(r"pipelined")
    c_sl = tree.col(r"slack")

    def single(r: _Row, c: int | None, what: str) -> Range:
        return UNKNOWN if c is None else _range_text(r.cells[c], what, file, f"line {r.line}",
                                                     single_is_max=True)

    loops: list[LoopInfo] = []
    instances: list[InstanceInfo] = []
    top_row: _Row | None = None
    top_dataflow = False
    stack: list[tuple[int, str, str]] = []          # (indent, kind, name)
    for r in tree.rows:
        w = f"line {r.line}"
        node = _tree_level(r.raw[cn], "+o*")
        if node is None:
            continue
        indent, marker, name = node
        dataflow = marker == "*" or name.endswith("*")
        name = name.rstrip("*").strip()
        kind = "loop" if marker == "o" else "module"
        while stack and stack[-1][0] >= indent:
            stack.pop()
        module = next((n for _, k, n in reversed(stack) if k == "module"), top)
        parent = None
        for _, k, n in reversed(stack):
            if k == "module":
                break
            parent = parent or n
        stack.append((indent, kind, name))
        pipelined_cell = r.get(c_pl)
        if kind == "module":
            if top_row is None:
                top_row, top_dataflow = r, dataflow or pipelined_cell.lower() == "dataflow"
                continue
            instances.append(InstanceInfo(
                name=name, module=name, latency=single(r, c_lat, "latency"),
                interval=single(r, c_int, "interval"),
                pipeline_type="dataflow" if dataflow else (pipelined_cell or None),
                resources=_resources_from_row(tree, r, file, dash_is_zero=True)))
        else:
            loops.append(LoopInfo(
                name=name, module=module, parent=parent,
                trip_count=single(r, c_tc, "trip count"), latency=single(r, c_lat, "latency"),
                iteration_latency=single(r, c_it, "iteration latency"),
                ii=_int(r.get(c_int), "interval", file, w),
                pipelined=_yes_no(pipelined_cell) if c_pl is not None else None,
                slack_ns=_ns(r.get(c_sl), "slack", file, w) if c_sl is not None else None))
    if top_row is None:
        raise _missing(f"row for the top module '{top}' in the Performance & Resource "
                       "Estimates table", file)
    return HlsReport(
        tool=VITIS_HLS, version=version, kind=KIND_CSYNTH_SUMMARY_RPT, part=part, top=top,
        target_clock_ns=None, estimated_clock_ns=None, clock_uncertainty_ns=None,
        latency=single(top_row, c_lat, "latency"), interval=single(top_row, c_int, "interval"),
        loops=tuple(loops), resources=_resources_from_row(tree, top_row, file, dash_is_zero=True),
        instances=tuple(instances), source=file, build=build, family=family, flow_target=flow,
        pipeline_type="dataflow" if top_dataflow else (top_row.get(c_pl) or None),
        available=None,
    )


# --------------------------------------------------------------------------------------
# cosim.rpt
# --------------------------------------------------------------------------------------

def _parse_cosim_text(text: str, file: str) -> CosimReport:
    tables = _scan_tables(text)
    _check_closed(tables, file)
    t = next((t for t in tables if t.has("rtl") and t.has("status")), None)
    if t is None:
        raise _missing("co-simulation table with RTL and Status columns", file)
    if not t.rows:
        raise _missing("co-simulation result rows", file)
    c_rtl, c_st = t.col("rtl"), t.col("status")
    c_tot = t.col(r"total execution time( clock cycles)?")
    runs = []
    for r in t.rows:
        lat, itv = _lat_int(t, r, file)
        st = r.cells[c_st]
        runs.append(CosimRun(
            rtl=r.cells[c_rtl], status=None if st.lower() in _UNKNOWN_TOKENS else st,
            latency=lat, interval=itv,
            total_cycles=_int(r.get(c_tot), "total execution time", file, f"line {r.line}")))
    head = {}
    for line in text.split("\n"):
        mm = re.match(r"\s*(Report time|Solution|Simulation tool)\s*:\s*(.*?)\.?\s*$", line)
        if mm and mm.group(1) not in head:
            head[mm.group(1)] = mm.group(2)
    return CosimReport(runs=tuple(runs), source=file, simulator=head.get("Simulation tool"),
                       solution=head.get("Solution"), report_time=head.get("Report time"))


# --------------------------------------------------------------------------------------
# Model-vs-vendor comparison
# --------------------------------------------------------------------------------------

# (key, label) in display order.
FIGURES: tuple[tuple[str, str], ...] = (
    ("latency", "Latency (cycles)"),
    ("interval", "Interval (cycles)"),
    ("dsp", "DSP"),
    ("bram_18k", "BRAM_18K"),
    ("lut", "LUT"),
    ("ff", "FF"),
    ("uram", "URAM"),
)
_ALIASES = {"latency_cycles": "latency", "interval_cycles": "interval", "ii": "interval",
            "dsp48e": "dsp", "dsp48": "dsp", "bram": "bram_18k", "bram18k": "bram_18k"}


@dataclass(frozen=True)
class ComparisonRow:
    figure: str                 # canonical key ("latency", "dsp", ...)
    label: str                  # display name
    model: float | None
    vendor: float | None
    error_pct: float | None     # (model - vendor) / vendor * 100; None = n/a


def _canon(key: str) -> str:
    k = key.strip().lower()
    return _ALIASES.get(k, k)


def vendor_figures(report: HlsReport | CosimReport,
                   statistic: str = "max") -> dict[str, float | None]:
    """The vendor side of :func:`compare_table`, taken from a parsed report.

    ``statistic`` ("min", "max" or "avg") picks which latency/interval figure is used. A
    csynth report also gives its design resources; a co-simulation gives only cycles.
    """
    if statistic not in ("min", "max", "avg"):
        raise ValueError(f"statistic must be 'min', 'max' or 'avg', not {statistic!r}")
    out: dict[str, float | None] = {"latency": getattr(report.latency, statistic),
                                    "interval": getattr(report.interval, statistic)}
    if isinstance(report, HlsReport):
        out.update(report.resources.as_dict())
    return out


def compare_table(model: Mapping[str, float | None],
                  vendor: Mapping[str, float | None]) -> list[ComparisonRow]:
    """One row per figure found in either dict: model value, vendor value and % error.

    Keys are case-insensitive: ``latency``, ``interval``, ``dsp`` (or ``DSP48E``),
    ``bram_18k``, ``lut``, ``ff``, ``uram``. Other keys are kept, after these, in the order they
    first appear. % error is ``(model - vendor) / vendor * 100``. It is None ("n/a") when
    either value is unknown, or when the vendor value is 0 and the model value is not
    (0 vs 0 is 0 %).
    """
    m = {_canon(k): v for k, v in model.items()}
    v = {_canon(k): x for k, x in vendor.items()}
    labels = dict(FIGURES)
    order = [k for k, _ in FIGURES if k in m or k in v]
    for k in list(m) + list(v):
        if k not in labels and k not in order:
            order.append(k)
    rows = []
    for k in order:
        mv, vv = m.get(k), v.get(k)
        rows.append(ComparisonRow(figure=k, label=labels.get(k, k), model=mv, vendor=vv,
                                  error_pct=_error_pct(mv, vv)))
    return rows


def _error_pct(model: float | None, vendor: float | None) -> float | None:
    if model is None or vendor is None:
        return None
    if not (math.isfinite(model) and math.isfinite(vendor)):
        return None
    if vendor == 0:
        return 0.0 if model == 0 else None
    return (model - vendor) / vendor * 100.0


def _fmt_value(x: float | None) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float) and not x.is_integer():
        return f"{x:,.2f}"
    return f"{int(x):,}"


def format_comparison(rows: Iterable[ComparisonRow]) -> str:
    """A plain-text table: figure, model, vendor, % error (``n/a`` where unknown)."""
    header = ("Figure", "Model", "Vendor", "Error")
    body = [(r.label, _fmt_value(r.model), _fmt_value(r.vendor),
             "n/a" if r.error_pct is None else f"{r.error_pct:+.1f}%") for r in rows]
    cells = [header, *body]
    widths = [max(len(row[i]) for row in cells) for i in range(4)]

    def line(row: tuple[str, ...]) -> str:
        return "  ".join([row[0].ljust(widths[0])] +
                         [c.rjust(w) for c, w in zip(row[1:], widths[1:])]).rstrip()

    return "\n".join([line(header), "  ".join("-" * w for w in widths)] + [line(r) for r in body])
