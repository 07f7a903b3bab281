"""Read Vitis HLS / Vivado HLS reports: csynth.xml, csynth.rpt (both layouts) and cosim.rpt.

The figures land in frozen dataclasses (:class:`HlsReport`, :class:`CosimReport`), so the
analytical model's estimates can be compared with what the vendor tool reported
(:func:`compare_table`, :func:`format_comparison`).

One module per format: :mod:`.csynth_xml`, :mod:`.csynth_rpt` (with the shared text
tables of :mod:`.tables`), :mod:`.cosim_rpt`; the data model in :mod:`.common`; the
model-vs-vendor table in :mod:`.compare`.

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

from pathlib import Path

from efgen.errors import EfgenError
from efgen.report.vendor.common import (  # noqa: F401
    _EXPECTED,
    _EXPECTED_COSIM,
    _EXPECTED_RPT,
    _EXPECTED_XML,
    KIND_COSIM_RPT,
    KIND_CSYNTH_RPT,
    KIND_CSYNTH_SUMMARY_RPT,
    KIND_CSYNTH_XML,
    CosimReport,
    CosimRun,
    HlsReport,
    InstanceInfo,
    LoopInfo,
    Range,
    Resources,
    _decode_text,
    _looks_like_xml,
    _read_bytes,
)
from efgen.report.vendor.compare import (  # noqa: F401
    ComparisonRow,
    ProcessRow,
    compare_table,
    format_comparison,
    format_processes,
    process_rows,
    vendor_figures,
)
from efgen.report.vendor.cosim_rpt import _parse_cosim_text
from efgen.report.vendor.csynth_rpt import _detect_text_kind, _parse_csynth_text
from efgen.report.vendor.csynth_xml import _parse_csynth_xml_bytes


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


__all__ = [
    "Range", "Resources", "LoopInfo", "InstanceInfo", "HlsReport", "CosimRun", "CosimReport",
    "ComparisonRow", "parse_report", "parse_csynth_xml", "parse_csynth_rpt", "parse_cosim_rpt",
    "find_reports", "vendor_figures", "compare_table", "format_comparison",
    "process_rows", "format_processes", "ProcessRow",
    "KIND_CSYNTH_XML", "KIND_CSYNTH_RPT", "KIND_CSYNTH_SUMMARY_RPT", "KIND_COSIM_RPT",
]
