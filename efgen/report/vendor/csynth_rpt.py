"""``csynth.rpt`` in the classic per-module layout and the 2022+ "Synthesis Summary
Report" tree layout."""

from __future__ import annotations

import re

from efgen.errors import EfgenError
from efgen.report.vendor.common import (
    _FIX_RERUN,
    KIND_COSIM_RPT,
    KIND_CSYNTH_RPT,
    KIND_CSYNTH_SUMMARY_RPT,
    UNKNOWN,
    VITIS_HLS,
    HlsReport,
    InstanceInfo,
    LoopInfo,
    Range,
    Resources,
    _int,
    _ns,
    _range_text,
)
from efgen.report.vendor.tables import (
    _INT_AVG,
    _INT_MAX,
    _INT_MIN,
    _LAT_AVG,
    _LAT_MAX,
    _LAT_MIN,
    _RES_COLS,
    _check_closed,
    _missing,
    _need_col,
    _resources_from_row,
    _Row,
    _scan_tables,
    _Table,
)

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
