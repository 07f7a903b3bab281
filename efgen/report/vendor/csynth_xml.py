"""``csynth.xml`` (Vivado HLS 2018.2-2020.1, Vitis HLS 2020.1-2023.2): elements found by tag."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from efgen.errors import EfgenError
from efgen.report.vendor.common import (
    _FIX_RERUN,
    KIND_CSYNTH_XML,
    UNKNOWN,
    HlsReport,
    LoopInfo,
    Number,
    Range,
    Resources,
    _int,
    _ns,
    _range_text,
    _tool_for,
)

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
