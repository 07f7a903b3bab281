"""Resources of the reference RTL (the RTL flow), in board terms, for the scheduler and
the report.

The HLS flow's resources (:mod:`efgen.model.resources`) describe Vitis HLS's cores; the
reference RTL instantiates its own FP32 units, buffers and controller. Their counts come
from :func:`efgen.rtl.synth.predict_top` (Yosys 0.23 ``synth_xilinx -family xcup``:
DSP48E2 and RAMB exact, LUT/FF from the Yosys-measured units plus a fitted remainder,
configs/model/coefficients.yaml ``rtl_yosys``). Mapping onto a board's resources:
``dsp`` = DSP48E2, ``bram18`` = RAMB18E2 + 2 x RAMB36E2, ``lut`` = LUT + LUT as RAM,
``ff`` = FF, ``uram`` = 0 (the RTL's weight banks are block or LUT RAM).

``efgen build --target rtl`` schedules only arrays whose RTL fits the board's caps
(:func:`rtl_over_caps`).
"""

from __future__ import annotations

from functools import lru_cache

from efgen.frontend.boards import Board

TARGETS = ("hls", "rtl")
RTL_RESOURCES = (("dsp", "DSP48E2"), ("bram18", "RAMB18-eq"), ("lut", "LUT"), ("ff", "FF"))


def board_use(pred: dict) -> dict[str, int]:
    """Board resources (dsp, bram18, uram, lut, ff) of a :func:`predict_top` result."""
    return {"dsp": int(pred["DSP48E2"]), "bram18": int(pred["RAMB18-eq"]), "uram": 0,
            "lut": int(round(pred["LUT"] + pred["LUTRAM"])), "ff": int(round(pred["FF"]))}


@lru_cache(maxsize=4096)
def _use_of(tm: int, tn: int, ifm_depth: int, ofm_depth: int, wbuf_depth: int, kmax: int,
            max_burst: int, impl: str, axi_width: int = 32,
            wdb: bool = False, fuse: bool = False,
            addr_width: int = 32, pack: bool = False,
            p: int = 1) -> tuple[tuple[str, int], ...]:
    from efgen.rtl.synth import predict_top
    from efgen.rtl.top import rtl_params_hw

    rp = rtl_params_hw(tm, tn, ifm_depth, ofm_depth, wbuf_depth, kmax, max_burst, impl=impl,
                       axi_width=axi_width, wdb=wdb, fuse=fuse, addr_width=addr_width,
                       pack=pack, p=p)
    return tuple(board_use(predict_top(rp)).items())


def fp_dsp(macs: int, impl: str) -> int:
    """DSP48E2 of the FP32 units alone: a lower bound of :func:`rtl_use`'s ``dsp``
    (one fp32_mul and one fp32_add a MAC, plus sgd_wb's, vec_unit's, bn_unit's and
    pool_unit's, and at least one of tile_wr's FP bias adders (store_words of them) and
    one of layer_seq's WU bias adders (load_words of them), efgen.rtl.synth.top_spec)."""
    from efgen.model.coeffs import coefficients
    from efgen.rtl.synth import BN_FP_ADDS, BN_FP_MULS, POOL_FP_ADDS, VEC_FP_ADDS, add_unit

    y = coefficients()["rtl_yosys"]
    return ((macs + 3 + BN_FP_MULS) * y["fp32_mul"]["dsp"]
            + (macs + 4 + VEC_FP_ADDS + BN_FP_ADDS + POOL_FP_ADDS + 2) * y[add_unit(impl)]["dsp"])


def rtl_use(hw, kmax: int, impl: str, addr_width: int = 32) -> dict[str, int]:
    """Board resources of the reference RTL for ``hw`` (HwParams) on a net whose largest
    conv kernel is ``kmax``, FP32 units ``impl``. Raises ValueError when the reference RTL
    cannot implement ``hw`` (efgen.rtl.engine.EngineParams' restrictions). The DMA engines
    are as wide as ``hw``'s ports (``port_words`` FP32 words a beat: the board's HP width,
    as :func:`efgen.rtl.top.rtl_params` builds them; ``hw.fuse``: with the fused datapath,
    as rtl_params builds a fused Design's); ``addr_width``: AXI address bits, the
    board's PS's (:data:`efgen.frontend.boards.PS_ADDR_BITS`), as rtl_params builds them."""
    axi = 32 * hw.port_words if hw.port_words in (1, 2, 4) else 32
    return dict(_use_of(hw.tm, hw.tn, hw.ifm_depth, hw.ofm_depth, hw.wbuf_depth, kmax,
                        hw.max_burst_beats, impl, axi, bool(hw.wdb), bool(hw.fuse),
                        addr_width, bool(hw.pack), hw.p))


def rtl_over_caps(use: dict[str, int], board: Board) -> list[tuple[str, float, int]]:
    """Resources of :func:`rtl_use` above the board's caps: (name, needed, allowed)."""
    return [(r, use[r], board.cap(r)) for r in ("dsp", "bram18", "lut", "ff")
            if use[r] > board.cap(r)]


def rtl_report_lines(design, board: Board, impl: str) -> list[str]:
    """report.md's section on the RTL that rtl/ holds (``design`` with FP32 units
    ``impl``; behavioural units are priced as the ``dsp`` ones they stand in for)."""
    from efgen.rtl.fpu import FTZ_IMPLS
    from efgen.rtl.top import rtl_params

    p = rtl_params(design, design.layout, impl=impl if impl in FTZ_IMPLS else "dsp")
    lines = rtl_resources_markdown(p, board)
    if impl not in FTZ_IMPLS:
        lines.insert(2, f"rtl/ holds {impl} (simulation-only) FP32 units; the figures are "
                        "those of the synthesizable dsp units (--rtl-impl dsp).")
        lines.insert(3, "")
    return lines


def rtl_resources_markdown(p, board: Board) -> list[str]:
    """report.md's section on the RTL in rtl/ (RtlParams ``p``)."""
    from efgen.model.coeffs import coefficients
    from efgen.rtl.synth import predict_top

    pred = predict_top(p)
    use = board_use(pred)
    y = coefficients()["rtl_yosys"]
    add = y["fp32_add_dsp" if p.impl == "dsp" else "fp32_add"]
    d = pred["detail"]
    L = ["## Resources of the reference RTL (rtl/)", "",
         f"What rtl/ instantiates ({p.engine.shape} engine, {p.impl} FP32 units): "
         f"{d['fp32_mul']} fp32_mul ({y['fp32_mul']['dsp']} DSP, {y['fp32_mul']['lut']} LUT "
         f"each) and {d['fp32_add']} fp32_add ({add['dsp']} DSP, {add['lut']} LUT each), "
         "measured with Yosys 0.23; the table above describes the Vitis HLS build.", "",
         "| resource | RTL model | cap | board | utilisation |",
         "| --- | ---: | ---: | ---: | ---: |"]
    for r, _key in RTL_RESOURCES:
        total = getattr(board.resources, r)
        L.append(f"| {r.upper()} | {use[r]:,} | {board.cap(r):,} | {total:,} | "
                 f"{use[r] / total:.1%} |")
    bad = rtl_over_caps(use, board)
    L.append("")
    if bad:
        L.append("Above the caps: " + ", ".join(f"{r.upper()} {n:,.0f} > {a:,}" for r, n, a in bad)
                 + ". Schedule with `--target rtl` for an array whose RTL fits.")
    else:
        L.append("Within the board's caps.")
    L.append("DSP48E2 and RAMB are the counts Yosys produces (checked exactly by "
             "tests/test_rtl_synth.py); LUT and FF are Yosys's, which run above Vivado's "
             "(Yosys keeps the adders around the DSP products in fabric); `efgen synth "
             "--yosys DIR` measures them. Only Vivado implementation gives the real figures.")
    L.append("")
    return L
