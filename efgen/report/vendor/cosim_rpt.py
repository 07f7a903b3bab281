"""``<top>_cosim.rpt`` in both co-simulation layouts."""

from __future__ import annotations

import re

from efgen.report.vendor.common import _UNKNOWN_TOKENS, CosimReport, CosimRun, _int
from efgen.report.vendor.csynth_rpt import _lat_int
from efgen.report.vendor.tables import _check_closed, _missing, _scan_tables

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
