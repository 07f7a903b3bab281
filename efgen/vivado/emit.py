"""Render DIR/vivado/: the Vivado scripts of one Design on one board.

Two accelerator IPs fit the same block design, chosen when build.tcl runs
(``-tclargs hls`` or ``-tclargs rtl``):

* ``hls``: the Vitis HLS IP that hls/run_hls.tcl exports (:data:`HLS_VLNV`, in
  hls/efgen_prj/solution1/impl/ip): interfaces m_axi_gmem0..2 and s_axi_control (the
  bundles of efgen_top.cpp's INTERFACE pragmas), clock ap_clk, reset ap_rst_n (active low),
  interrupt pin ``interrupt``.
* ``rtl``: the reference RTL of rtl/, packaged by package_rtl_ip.tcl as :data:`RTL_VLNV`:
  AXI4 read masters m_axi0 and m_axi1, AXI4 write master m_axi2 (a fused build's reads
  too: :data:`RTL_INTERFACES_FUSED`), AXI4-Lite slave s_axil (every port mapped
  explicitly, :data:`RTL_INTERFACES`), clock clk, reset ap_rst_n
  (active low, like the HLS IP's: driven by proc_sys_reset's peripheral_aresetn), the
  interrupt on pin ``irq`` (interface ``interrupt``).

Both IPs' interrupts go to the PS (pl_ps_irq0 on Zynq UltraScale+, IRQ_F2P on
Zynq-7000): the same register map (efgen.rtl.regmap) and the same driver for both.

The block design places the board family's PS (zynq_ultra_ps_e or processing_system7),
connects the three masters to the Design's ``hw.ports`` HP ports (min(3, axi.hp_ports), as
the model prices them) through one SmartConnect per port, the control slave to the PS's
first general-purpose master, and runs the PL at the Design's clock.

Only the board's part number and family reach the scripts (the part checked against
the shape of a Xilinx part number); the board and net names appear only in comments,
reduced to ``[A-Za-z0-9_]``. Output is deterministic.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import jinja2

from efgen._version import __version__
from efgen.design import Design
from efgen.errors import EfgenError
from efgen.frontend.boards import PS_ADDR_BITS, Board
from efgen.resources import data_dir

HLS_VLNV = "xilinx.com:hls:efgen_top:1.0"     # run_hls.tcl's export_design names it
RTL_VLNV = "efgen:efgen:efgen_rtl:1.0"
BD_NAME = "efgen_bd"
MASTERS = 3          # the accelerator's AXI4 masters (feature maps, weights, outputs)

_AR = ("ARID", "ARADDR", "ARLEN", "ARSIZE", "ARBURST", "ARLOCK", "ARCACHE", "ARPROT",
       "ARVALID", "ARREADY", "RID", "RDATA", "RRESP", "RLAST", "RVALID", "RREADY")
_AW = ("AWID", "AWADDR", "AWLEN", "AWSIZE", "AWBURST", "AWLOCK", "AWCACHE", "AWPROT",
       "AWVALID", "AWREADY", "WDATA", "WSTRB", "WLAST", "WVALID", "WREADY", "BID", "BRESP",
       "BVALID", "BREADY")
_LITE = ("AWADDR", "AWPROT", "AWVALID", "AWREADY", "WDATA", "WSTRB", "WVALID", "WREADY",
         "BRESP", "BVALID", "BREADY", "ARADDR", "ARPROT", "ARVALID", "ARREADY", "RDATA",
         "RRESP", "RVALID", "RREADY")


@dataclass(frozen=True)
class BusInterface:
    """One AXI interface of the RTL IP: name, mode, logical -> physical port names."""

    name: str
    mode: str                           # master | slave
    ports: tuple[tuple[str, str], ...]  # (AXI signal, Verilog port)


def _bus(name: str, mode: str, signals: tuple[str, ...]) -> BusInterface:
    return BusInterface(name, mode, tuple((s, f"{name}_{s.lower()}") for s in signals))


#: The AXI interfaces of efgen_top (templates/rtl/efgen_top.v.j2), as package_rtl_ip.tcl
#: declares them; with clk and rst they are every port of the module.
RTL_INTERFACES = (_bus("s_axil", "slave", _LITE), _bus("m_axi0", "master", _AR),
                  _bus("m_axi1", "master", _AR), _bus("m_axi2", "master", _AW))
#: A fused build's efgen_top (RtlParams.fuse): m_axi2 also reads (the second load stream)
RTL_INTERFACES_FUSED = RTL_INTERFACES[:3] + (_bus("m_axi2", "master", _AW + _AR),)
RTL_CLOCK, RTL_RESET, RTL_IRQ = "clk", "ap_rst_n", "irq"


def rtl_interfaces(design: Design) -> tuple[BusInterface, ...]:
    """The AXI interfaces of ``design``'s efgen_top (:func:`efgen.rtl.top.rtl_params`:
    a fused Design's has m_axi2's read channel)."""
    return RTL_INTERFACES_FUSED if design.hw.fuse else RTL_INTERFACES

#: Per accelerator IP: the block design's names of its pins and interfaces.
VARIANTS = {
    "hls": {"vlnv": HLS_VLNV, "clk": "ap_clk", "rst": "ap_rst_n",
            "rst_src": "peripheral_aresetn", "ctrl": "s_axi_control", "irq": "interrupt",
            "masters": ("m_axi_gmem0", "m_axi_gmem1", "m_axi_gmem2")},
    "rtl": {"vlnv": RTL_VLNV, "clk": RTL_CLOCK, "rst": RTL_RESET,
            "rst_src": "peripheral_aresetn", "ctrl": "s_axil", "irq": RTL_IRQ,
            "masters": ("m_axi0", "m_axi1", "m_axi2")},
}

# Per board family: the PS IP and the names of its ports (UG1085/PG201 zynq_ultra_ps_e,
# UG585/PG082 processing_system7). HP port j: its interface, its clock pin, the CONFIG
# properties that enable it and set its width.
PS_FAMILIES = {
    "zynq-ultrascale+": {
        "ip": "xilinx.com:ip:zynq_ultra_ps_e", "cell": "zynq_ultra_ps_e_0",
        "pl_clk": "pl_clk0", "pl_resetn": "pl_resetn0",
        "gp": "M_AXI_HPM0_FPD", "gp_clk": "maxihpm0_fpd_aclk",
        "hp": "S_AXI_HP{j}_FPD", "hp_clk": "saxihp{j}_fpd_aclk",
        # S_AXI_HP0..3_FPD are the PS's slave ports GP2..GP5 in its CONFIG names
        "hp_use": "CONFIG.PSU__USE__S_AXI_GP{g}", "hp_width": "CONFIG.PSU__SAXIGP{g}__DATA_WIDTH",
        "hp_offset": 2,
        "clock": "CONFIG.PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ",
        "fixed": (("CONFIG.PSU__FPGA_PL0_ENABLE", "1"), ("CONFIG.PSU__USE__M_AXI_GP0", "1"),
                  ("CONFIG.PSU__USE__M_AXI_GP1", "0"), ("CONFIG.PSU__USE__M_AXI_GP2", "0"),
                  ("CONFIG.PSU__USE__IRQ0", "1")),
        "irq": "pl_ps_irq0",
        # the DDR segments a master maps: both, for 40-bit addresses (upper DDR at 32 GB)
        "ddr": ("DDR_LOW", "DDR_HIGH"),
        "external": (),
    },
    "zynq-7000": {
        "ip": "xilinx.com:ip:processing_system7", "cell": "processing_system7_0",
        "pl_clk": "FCLK_CLK0", "pl_resetn": "FCLK_RESET0_N",
        "gp": "M_AXI_GP0", "gp_clk": "M_AXI_GP0_ACLK",
        "hp": "S_AXI_HP{j}", "hp_clk": "S_AXI_HP{j}_ACLK",
        "hp_use": "CONFIG.PCW_USE_S_AXI_HP{g}", "hp_width": "CONFIG.PCW_S_AXI_HP{g}_DATA_WIDTH",
        "hp_offset": 0,
        "clock": "CONFIG.PCW_FPGA0_PERIPHERAL_FREQMHZ",
        "fixed": (("CONFIG.PCW_EN_CLK0_PORT", "1"), ("CONFIG.PCW_EN_RST0_PORT", "1"),
                  ("CONFIG.PCW_USE_M_AXI_GP0", "1"), ("CONFIG.PCW_USE_FABRIC_INTERRUPT", "1"),
                  ("CONFIG.PCW_IRQ_F2P_INTR", "1")),
        "irq": "IRQ_F2P",
        "ddr": ("DDR_LOWOCM",),
        # The PS7's DDR and MIO pins leave the block design as top-level ports.
        "external": ("DDR", "FIXED_IO"),
    },
}

# A Xilinx part number: letters, digits and dashes (xczu9eg-ffvb1156-2-e).
_PART_RE = re.compile(r"[A-Za-z0-9]+(-[A-Za-z0-9]+)*\Z")
TEMPLATES = ("block_design.tcl", "build.tcl", "package_rtl_ip.tcl")


def ident(s: str) -> str:
    """A user string reduced to ``[A-Za-z0-9_]`` (for comments in the scripts)."""
    return re.sub(r"[^A-Za-z0-9_]", "_", str(s)) or "_"


def clock_text(mhz: float) -> str:
    """The PL clock in MHz as the PS's CONFIG property takes it: shortest exact decimal."""
    text = repr(float(mhz))
    return text[:-2] if text.endswith(".0") else text


def hp_ports(design: Design) -> list[int]:
    """Master i -> the index of the HP port it uses: the Design's ``hw.ports`` ports (what
    the model prices: min(3, the board's HP ports)), shared round robin below three."""
    n = design.hw.ports
    return [i % n for i in range(MASTERS)]


def _check_board(board: Board, design: Design) -> None:
    if board.family not in PS_FAMILIES:
        raise EfgenError(f"board family {board.family!r} has no Vivado block design",
                         file=board.source, where="family",
                         fix=f"use one of {', '.join(PS_FAMILIES)}")
    if not _PART_RE.match(board.part):
        raise EfgenError(f"part {ident(board.part)!r} is not a Xilinx part number",
                         file=board.source, where="part",
                         fix="give the full part number, letters, digits and '-', "
                             "e.g. xczu9eg-ffvb1156-2-e")
    if not 1 <= design.hw.ports <= min(MASTERS, board.axi.hp_ports):
        raise EfgenError(f"the Design uses {design.hw.ports} AXI ports, the board has "
                         f"{board.axi.hp_ports} HP ports", file=board.source,
                         where="axi.hp_ports", fix="give the board's HP port count (1 or more)")


def _env() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(data_dir("templates") / "vivado")),
                              undefined=jinja2.StrictUndefined, trim_blocks=True,
                              lstrip_blocks=True, keep_trailing_newline=True,
                              autoescape=False)


def render_vivado(design: Design, board: Board, hls: bool = True, rtl: bool = True
                  ) -> dict[str, str]:
    """File name -> text of DIR/vivado/ for the IPs the build holds (``hls``: hls/ was
    written; ``rtl``: rtl/ was written). package_rtl_ip.tcl only with ``rtl``."""
    from efgen.rtl.dma import AXIL_ADDR_WIDTH
    from efgen.rtl.top import TOP

    _check_board(board, design)
    if not (hls or rtl):
        raise ValueError("render_vivado: neither hls/ nor rtl/ to integrate")
    fam = PS_FAMILIES[board.family]
    ports = hp_ports(design)
    used = sorted(set(ports))
    ps_config = [(fam["clock"], clock_text(design.hw.clock_mhz)), *fam["fixed"]]
    for j in used:
        g = j + fam["hp_offset"]
        ps_config += [(fam["hp_use"].format(g=g), "1"),
                      (fam["hp_width"].format(g=g), str(board.axi.width_bits))]
    ctx = {
        "version": __version__,
        "net": ident(design.net["name"]),
        "board": ident(board.name),
        "family": board.family,
        "part": board.part,
        "clock_mhz": clock_text(design.hw.clock_mhz),
        "axi_bits": board.axi.width_bits,
        "hp_count": board.axi.hp_ports,
        "variants": [v for v, ok in (("hls", hls), ("rtl", rtl)) if ok],
        "all_variants": VARIANTS,
        "ps": fam,
        "ps_config": ps_config,
        "hp_of_master": ports,
        "hp_used": [{"j": j, "intf": fam["hp"].format(j=j), "clk": fam["hp_clk"].format(j=j),
                     "masters": [i for i, p in enumerate(ports) if p == j]} for j in used],
        "bd": BD_NAME,
        "top": TOP,
        "rtl_vlnv": RTL_VLNV.split(":"),
        "rtl_interfaces": rtl_interfaces(design),
        "rtl_clock": RTL_CLOCK,
        "rtl_reset": RTL_RESET,
        "rtl_irq": RTL_IRQ,
        # each master's address space: the board PS's address bits (40: 1 TB, 32: 4 GB)
        "addr_bits": PS_ADDR_BITS[board.family],
        "addr_range": {40: "1T", 32: "4G"}[PS_ADDR_BITS[board.family]],
        # desc_regs decodes AXIL_ADDR_WIDTH bits; a PS master maps at least 4 KB.
        "axil_range": max(4096, 1 << AXIL_ADDR_WIDTH),
    }
    env = _env()
    names = [n for n in TEMPLATES if rtl or n != "package_rtl_ip.tcl"]
    return {n: env.get_template(f"{n}.j2").render(**ctx) for n in names}


def write_vivado(out_dir: Path, design: Design, board: Board, hls: bool = True,
                 rtl: bool = True) -> list[str]:
    """Write DIR/vivado/ (``out_dir``, created) when the build holds hls/ or rtl/;
    returns the file names (none without either)."""
    if not (hls or rtl):
        return []
    files = render_vivado(design, board, hls=hls, rtl=rtl)
    out_dir = Path(out_dir)
    out_dir.mkdir()
    for name in sorted(files):
        (out_dir / name).write_text(files[name])
    return sorted(files)


__all__ = ["render_vivado", "write_vivado", "RTL_INTERFACES", "RTL_INTERFACES_FUSED",
           "rtl_interfaces", "VARIANTS", "PS_FAMILIES",
           "HLS_VLNV", "RTL_VLNV", "hp_ports", "ident", "clock_text"]
