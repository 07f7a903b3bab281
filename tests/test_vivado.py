"""vivado/: the Vivado scripts of a build, checked as far as tools without Vivado go.

Each script runs under tclsh with stand-ins for the Vivado commands
(tests/fixtures/vivado_stub.tcl) that record every call, so the script's own control
flow executes. :func:`problems` then checks the recorded calls against the generated
sources: the part is the board file's, the PL clock is the Design's, every port of
rtl/efgen_top.v is mapped once into a declared interface, every interface and pin the
block design uses exists on the IP (the RTL as packaged, or the HLS top as its INTERFACE
pragmas make it), each of the three masters reaches its own HP port (the board has
them) and the control slave a PS master, and the reset polarity matches the RTL.
Renaming a port or a bundle makes the check fail (the mutation tests).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from efgen.cli import main
from efgen.frontend.boards import Board, load_board
from efgen.vivado.emit import PS_FAMILIES, render_vivado

ROOT = Path(__file__).resolve().parent.parent
STUB = ROOT / "tests" / "fixtures" / "vivado_stub.tcl"
# Vitis HLS's block-level ports (ap_ctrl_hs on an s_axilite return): fixed by the tool.
HLS_PINS = {"clk": "ap_clk", "rst": "ap_rst_n", "irq": "interrupt"}
# the PS's interrupt input and the DDR segments each master maps, per family
PS_IRQ = {"zynq-ultrascale+": ("pl_ps_irq0", "CONFIG.PSU__USE__IRQ0"),
          "zynq-7000": ("IRQ_F2P", "CONFIG.PCW_USE_FABRIC_INTERRUPT")}
PS_DDR = {"zynq-ultrascale+": ("DDR_LOW", "DDR_HIGH"), "zynq-7000": ("DDR_LOWOCM",)}
AXI4 = {f"{ch}{s}" for ch in ("AR", "AW") for s in (
    "ID", "ADDR", "LEN", "SIZE", "BURST", "LOCK", "CACHE", "PROT", "QOS", "REGION", "USER",
    "VALID", "READY")} | {"WDATA", "WSTRB", "WLAST", "WVALID", "WREADY", "WUSER", "BID",
                          "BRESP", "BVALID", "BREADY", "BUSER", "RID", "RDATA", "RRESP",
                          "RLAST", "RVALID", "RREADY", "RUSER"}
AXI4_LITE = {"AWADDR", "AWPROT", "AWVALID", "AWREADY", "WDATA", "WSTRB", "WVALID", "WREADY",
             "BRESP", "BVALID", "BREADY", "ARADDR", "ARPROT", "ARVALID", "ARREADY", "RDATA",
             "RRESP", "RVALID", "RREADY"}
# board -> --clock (not its 100 MHz default), --tiles (what fits)
BOARDS = {"zcu102": ("125", "Tm=4,Tn=4"), "pynq-z2": ("62.5", "Tm=2,Tn=4")}


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    """board -> a build of tiny (zcu102: UltraScale+ MPSoC, pynq-z2: Zynq-7000)."""
    out = {}
    for board, (clock, tiles) in BOARDS.items():
        d = tmp_path_factory.mktemp(board) / "build"
        assert main(["build", "--board", board, "--net", "tiny", "--batch", "2", "--tiles",
                     tiles, "--clock", clock, "-o", str(d)]) == 0
        out[board] = d
    return out


def _copy(build: Path, tmp_path: Path) -> Path:
    """A copy of ``build`` to run the scripts in (they write prj_*/ and out_*/)."""
    dst = tmp_path / "b"
    shutil.copytree(build, dst)
    return dst


def run_tcl(build: Path, script: str, *args: str, slack: str | None = None):
    """Run vivado/``script`` under the stub; (exit code, calls, stdout, stderr)."""
    if shutil.which("tclsh") is None:
        pytest.fail("tclsh not installed (Debian package tcl)")
    log = build / "stub-log.jsonl"
    env = dict(os.environ)
    if slack is not None:
        env["STUB_SLACK"] = slack
    proc = subprocess.run(["tclsh", str(STUB), str(log), str(build / "vivado" / script), *args],
                          cwd=build.parent, capture_output=True, text=True, timeout=60, env=env)
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return proc.returncode, calls, proc.stdout, proc.stderr


# ---------------------------------------------------------------- the sources' names

def verilog_ports(path: Path, module: str = "efgen_top") -> list[str]:
    """The port names of ``module`` in a Verilog-2005 file (ANSI port list)."""
    text = re.sub(r"//[^\n]*", "", path.read_text())
    head = re.search(rf"\bmodule\s+{module}\s*\((.*?)\);", text, re.S)
    assert head, f"no module {module} in {path}"
    return re.findall(r"\b(?:input|output|inout)\s+(?:wire\s+|reg\s+)?(?:\[[^\]]*\]\s*)?(\w+)",
                      head.group(1))


def hls_interfaces(cpp: Path) -> dict[str, str]:
    """Block-design interface name -> kind (m_axi | s_axilite) of the Vitis HLS top, from
    its INTERFACE pragmas: Vitis names them m_axi_<bundle> and s_axi_<bundle>."""
    out = {}
    for kind, opts in re.findall(r"INTERFACE\s+(m_axi|s_axilite)\s+([^)\n]*)", cpp.read_text()):
        bundle = dict(re.findall(r"(\w+)=(\S+)", opts))["bundle"]
        out[("m_axi_" if kind == "m_axi" else "s_axi_") + bundle] = kind
    return out


def hls_vlnv(run_hls: Path) -> str:
    opts = dict(re.findall(r"-(\w+) (\S+)",
                           re.search(r"^export_design (.*)$", run_hls.read_text(), re.M).group(1)))
    return ":".join((opts["vendor"], opts["library"], opts["ipname"], opts["version"]))


def packaged(calls) -> tuple[str, dict[str, dict]]:
    """The RTL IP as package_rtl_ip.tcl declared it: (VLNV, interface -> {mode,
    abstraction_type_vlnv, ..., ports: logical -> physical, params})."""
    vlnv = dict.fromkeys(("vendor", "library", "name", "version"))
    ifs: dict[str, dict] = {}
    for c in calls:
        if c[0] == "ipx::package_project":
            vlnv.update(vendor=c[c.index("-vendor") + 1], library=c[c.index("-library") + 1])
        elif c[0] == "set_property" and c[-1] == "core" and c[1] in ("name", "version"):
            vlnv[c[1]] = c[2]
        elif c[0] == "ipx::add_bus_interface":
            assert c[1] not in ifs, f"interface {c[1]} declared twice"
            ifs[c[1]] = {"ports": {}, "params": {}}
        elif c[0] == "set_property" and c[-1].startswith("bi:"):
            ifs[c[-1][3:]][c[1]] = c[2]
        elif c[0] == "set_property" and c[1] == "physical_name":
            _, _, bi, logical = c[3].split(":")
            assert logical not in ifs[bi]["ports"], f"{bi}.{logical} mapped twice"
            ifs[bi]["ports"][logical] = c[2]
        elif c[0] == "set_property" and c[1] == "value" and c[3].startswith("bp:"):
            _, _, bi, param = c[3].split(":")
            ifs[bi]["params"][param] = c[2]
    return ":".join(vlnv.values()), ifs


def nets(calls, cmd: str) -> list[set[str]]:
    return [set(c[1:]) for c in calls if c[0] == cmd]


def net_of(pin: str, groups: list[set[str]]) -> set[str]:
    found = [g for g in groups if pin in g]
    return found[0] if len(found) == 1 else set()


# ---------------------------------------------------------------- the check

def problems(build: Path, board: Board, ip: str, calls) -> list[str]:
    """What is wrong with the recorded Vivado calls of build.tcl ``ip`` (empty: nothing)."""
    design = json.loads((build / "design.json").read_text())
    fam = PS_FAMILIES[board.family]
    ps = fam["cell"]
    bad = []
    # The part, the PS, its clock and its ports.
    parts = [c[c.index("-part") + 1] for c in calls if c[0] == "create_project"]
    if len(parts) != (2 if ip == "rtl" else 1) or set(parts) != {board.part}:
        bad.append(f"create_project parts {parts}, not the board's {board.part}")
    cells = {c[-1]: c[c.index("-vlnv") + 1] for c in calls if c[0] == "create_bd_cell"}
    if cells.get(ps) != f"{fam['ip']}:10.2":            # the newest the stub offers
        bad.append(f"PS cell {ps}: {cells.get(ps)}")
    config = {}
    for c in calls:
        if c[0] == "set_property" and c[1] == "-dict" and c[3] == ps:
            words = c[2].split()
            config.update(zip(words[::2], words[1::2]))
    if float(config.get(fam["clock"], "nan")) != design["hw"]["clock_mhz"]:
        bad.append(f"PL clock {config.get(fam['clock'])} MHz, the Design's is "
                   f"{design['hw']['clock_mhz']}")
    # The accelerator IP and its names.
    if ip == "rtl":
        vlnv, ifs = packaged(calls)
        ports = Counter(p for bi in ifs.values() for p in bi["ports"].values())
        verilog = Counter(verilog_ports(build / "rtl" / "efgen_top.v"))
        for port in sorted((ports - verilog) + (verilog - ports)):
            bad.append(f"port {port}: mapped {ports[port]}x, in efgen_top.v {verilog[port]}x")
        def of_bus(vlnv):
            return [n for n, bi in ifs.items() if bi.get("bus_type_vlnv") == vlnv]

        axi = {n: ifs[n] for n in of_bus("xilinx.com:interface:aximm:1.0")}
        clk, rst = of_bus("xilinx.com:signal:clock:1.0"), of_bus("xilinx.com:signal:reset:1.0")
        irq = of_bus("xilinx.com:signal:interrupt:1.0")
        if len(clk) != 1 or len(rst) != 1 or len(irq) != 1:
            return bad + [f"clock interfaces {clk}, reset interfaces {rst}, interrupts {irq}"]
        clk_pin, rst_pin = ifs[clk[0]]["ports"].get("CLK"), ifs[rst[0]]["ports"].get("RST")
        irq_pin = ifs[irq[0]]["ports"].get("INTERRUPT")
        if ifs[rst[0]]["params"].get("POLARITY") != "ACTIVE_LOW":
            bad.append(f"reset {rst_pin} is not declared ACTIVE_LOW")
        if ifs[irq[0]]["params"].get("SENSITIVITY") != "LEVEL_HIGH" or \
                ifs[irq[0]]["interface_mode"] != "master":
            bad.append(f"interrupt {irq_pin} is not a level-high interrupt output")
        if set(ifs[clk[0]]["params"].get("ASSOCIATED_BUSIF", "").split(":")) != set(axi):
            bad.append(f"clock {clk_pin} is not associated with every AXI interface {sorted(axi)}")
        if ifs[clk[0]]["params"].get("ASSOCIATED_RESET") != rst[0]:
            bad.append(f"clock {clk_pin} is not associated with reset {rst[0]}")
        masters = sorted(n for n, bi in axi.items() if bi["interface_mode"] == "master")
        slaves = sorted(n for n, bi in axi.items() if bi["interface_mode"] == "slave")
        for n, bi in axi.items():
            allowed = AXI4_LITE if bi["interface_mode"] == "slave" else AXI4
            if set(bi["ports"]) - allowed:
                bad.append(f"{n}: not AXI signals {sorted(set(bi['ports']) - allowed)}")
        spaces = sorted(c[1] for c in calls if c[0] == "ipx::add_address_space")
        if spaces != masters:
            bad.append(f"address spaces {spaces} for masters {masters}")
        if not any(c[:2] == ["ipx::add_memory_map", slaves[0] if slaves else "?"] for c in calls):
            bad.append("the AXI4-Lite slave has no memory map")
    else:
        vlnv = hls_vlnv(build / "hls" / "run_hls.tcl")
        kinds = hls_interfaces(build / "hls" / "efgen_top.cpp")
        masters = sorted(n for n, k in kinds.items() if k == "m_axi")
        slaves = sorted(n for n, k in kinds.items() if k == "s_axilite")
        axi = kinds
        clk_pin, rst_pin, irq_pin = HLS_PINS["clk"], HLS_PINS["rst"], HLS_PINS["irq"]
    reset_src = "rst_pl_0/peripheral_aresetn"           # ap_rst_n is active low on both IPs
    irq_sink, irq_use = PS_IRQ[board.family]
    if config.get(irq_use) != "1":
        bad.append(f"the PS's interrupt input is not enabled ({irq_use})")
    if cells.get("efgen_0") != vlnv:
        bad.append(f"efgen_0 is {cells.get('efgen_0')}, the IP is {vlnv}")
    if len(masters) != 3 or len(slaves) != 1:
        bad.append(f"masters {masters}, slaves {slaves}")
    intf = nets(calls, "connect_bd_intf_net")
    wires = nets(calls, "connect_bd_net")
    for pin in sorted({p for g in intf for p in g if p.startswith("efgen_0/")}):
        if pin[8:] not in axi:
            bad.append(f"{pin}: no such interface on the IP ({sorted(axi)})")
    for pin in sorted({p for g in wires for p in g if p.startswith("efgen_0/")}):
        if pin[8:] not in (clk_pin, rst_pin, irq_pin):
            bad.append(f"{pin}: no such clock, reset or interrupt pin on the IP")
    # Where each master and the slave go: through one SmartConnect to the PS.
    smc = {n for n, v in cells.items() if ":smartconnect:" in v}

    def through(pin: str) -> str | None:
        peer = [p for g in intf if pin in g for p in g - {pin}]
        if len(peer) != 1:
            return None
        cell, port = peer[0].split("/")
        if cell not in smc:
            return peer[0]
        other = "M" if port.startswith("S") else "S"      # across the SmartConnect
        outs = {p for g in intf for p in g if p.startswith(f"{cell}/{other}")}
        ends = [p for o in sorted(outs) for g in intf if o in g for p in g - {o}]
        return ends[0] if len(ends) == 1 else None

    hp_re = re.compile(re.escape(f"{ps}/") + fam["hp"].replace("{j}", r"(\d+)") + r"\Z")
    hp_of = {}
    for m in masters:
        end = through(f"efgen_0/{m}")
        hit = hp_re.match(end or "")
        if not hit:
            bad.append(f"master {m} reaches {end}, not a PS HP port")
            continue
        hp_of[m] = int(hit.group(1))
    used = sorted(set(hp_of.values()))
    if any(j >= board.axi.hp_ports for j in used):
        bad.append(f"HP ports {used} on a board with {board.axi.hp_ports}")
    if len(used) != design["hw"]["ports"]:   # the ports the model prices
        bad.append(f"the masters use HP ports {hp_of}, the Design {design['hw']['ports']}")
    enabled = sorted(int(re.search(r"(\d+)", k[len("CONFIG."):]).group(1)) - fam["hp_offset"]
                     for k, v in config.items()
                     if re.fullmatch(fam["hp_use"].replace("{g}", r"\d+"), k) and v == "1")
    if enabled != used:
        bad.append(f"PS enables HP ports {enabled}, the masters use {used}")
    widths = {k: v for k, v in config.items()
              if re.fullmatch(fam["hp_width"].replace("{g}", r"\d+"), k)}
    if set(widths.values()) != {str(board.axi.width_bits)}:
        bad.append(f"HP widths {widths}, the board's is {board.axi.width_bits}")
    for n, v in cells.items():
        if n in smc:
            si = [p for g in intf for p in g if p.startswith(f"{n}/S")]
            want = [f"{n}/S{k:02d}_AXI" for k in range(len(si))]
            num = [c[2] for c in calls if c[:2] == ["set_property", "-dict"] and c[3] == n]
            if sorted(si) != want or f"CONFIG.NUM_SI {len(si)}" not in " ".join(num):
                bad.append(f"{n}: slave ports {sorted(si)}, config {num}")
    for s in slaves:
        if through(f"efgen_0/{s}") != f"{ps}/{fam['gp']}":
            bad.append(f"slave {s} reaches {through(f'efgen_0/{s}')}, not {ps}/{fam['gp']}")
    # One clock, the resets.
    clock = net_of(f"{ps}/{fam['pl_clk']}", wires)
    need = {f"efgen_0/{clk_pin}", "rst_pl_0/slowest_sync_clk", f"{ps}/{fam['gp_clk']}",
            *(f"{n}/aclk" for n in smc), *(f"{ps}/{fam['hp_clk'].format(j=j)}" for j in used)}
    if need - clock:
        bad.append(f"not on the PL clock: {sorted(need - clock)}")
    if net_of(f"efgen_0/{rst_pin}", wires) != {f"efgen_0/{rst_pin}", reset_src}:
        bad.append(f"efgen_0/{rst_pin} is driven by {net_of(f'efgen_0/{rst_pin}', wires)}, "
                   f"not {reset_src}")
    if net_of("rst_pl_0/interconnect_aresetn", wires) != {"rst_pl_0/interconnect_aresetn",
                                                          *(f"{n}/aresetn" for n in smc)}:
        bad.append("the SmartConnects are not reset by interconnect_aresetn")
    if net_of(f"{ps}/{fam['pl_resetn']}", wires) != {f"{ps}/{fam['pl_resetn']}",
                                                     "rst_pl_0/ext_reset_in"}:
        bad.append("proc_sys_reset is not reset by the PS")
    if net_of(f"efgen_0/{irq_pin}", wires) != {f"efgen_0/{irq_pin}", f"{ps}/{irq_sink}"}:
        bad.append(f"efgen_0/{irq_pin} reaches {net_of(f'efgen_0/{irq_pin}', wires)}, "
                   f"not {ps}/{irq_sink}")
    # Addresses: each master sees the low DDR of its own HP port; the PS sees the slave.
    assigned = [(c[c.index("-target_address_space") + 1], c[-1]) for c in calls
                if c[0] == "assign_bd_address"]
    want = sorted([(f"space:efgen_0/{m}", f"seg:{ps}/{fam['hp'].format(j=j)}")
                   for m, j in hp_of.items() for _ in PS_DDR[board.family]] +
                  [(f"space:{ps}/{fam['gp']}", f"seg:efgen_0/{s}") for s in slaves])
    if sorted(assigned) != want:
        bad.append(f"addresses {sorted(assigned)}, expected {want}")
    segs = [c for c in calls if c[0] == "get_bd_addr_segs" and c[2].startswith(f"{ps}/")]
    ddr = {f"NAME =~ *{seg}*" for seg in PS_DDR[board.family]}
    if any(c[-2] != "-filter" or c[-1] not in ddr for c in segs) or \
            {c[-1] for c in segs} != ddr:
        bad.append(f"the masters map {sorted({c[-1] for c in segs})}, not the DDR {sorted(ddr)}")
    # The flow: validate, synthesize, implement to the bitstream, in that order.
    order = [c[0] if c[0] != "launch_runs" else f"launch_runs {c[1]}" for c in calls
             if c[0] in ("validate_bd_design", "launch_runs", "open_run")]
    if order != ["validate_bd_design", "launch_runs synth_1", "launch_runs impl_1", "open_run"]:
        bad.append(f"flow order {order}")
    impl = [c for c in calls if c[:2] == ["launch_runs", "impl_1"]]
    if not impl or impl[0][-2:] != ["-to_step", "write_bitstream"]:
        bad.append(f"impl_1 does not run to the bitstream: {impl}")
    return bad


# ---------------------------------------------------------------- tests

@pytest.mark.parametrize("board", list(BOARDS))
@pytest.mark.parametrize("ip", ["rtl", "hls"])
def test_build_tcl_runs_and_connects_what_exists(builds, board, ip, tmp_path):
    b = _copy(builds[board], tmp_path)
    if ip == "hls":     # what vitis_hls -f run_hls.tcl exports
        code, calls, _, err = run_tcl(b, "build.tcl", "hls")
        assert code == 2 and calls == []
        assert err.startswith("build.tcl: the Vitis HLS IP is missing") and "make hls" in err
        repo = b / "hls" / "efgen_prj" / "solution1" / "impl" / "ip"
        repo.mkdir(parents=True)
        (repo / "component.xml").write_text("<component/>\n")
    code, calls, out, err = run_tcl(b, "build.tcl", ip)
    assert (code, err) == (0, ""), err
    assert problems(b, load_board(board), ip, calls) == []
    # PYNQ's pair: the same base name, in one folder
    assert sorted(q.name for q in (b / "vivado" / f"out_{ip}").glob("efgen.*")) == [
        "efgen.bit", "efgen.hwh"]
    assert f"wrote {b / 'vivado' / f'out_{ip}'}/efgen.bit and efgen.hwh ({ip} IP" in out
    # the script works in its own folder, whatever the caller's
    assert not (tmp_path / f"prj_{ip}").exists() and (b / "vivado" / f"prj_{ip}").is_dir()


def test_a_renamed_rtl_port_fails_the_check(builds, tmp_path):
    b = _copy(builds["zcu102"], tmp_path)
    top = b / "rtl" / "efgen_top.v"
    text = top.read_text()
    assert text.count("m_axi1_araddr,") == 1
    top.write_text(text.replace("m_axi1_araddr,", "m_axi1_addr,"))
    code, calls, _, _ = run_tcl(b, "build.tcl", "rtl")
    assert code == 0
    found = problems(b, load_board("zcu102"), "rtl", calls)
    assert found == ["port m_axi1_addr: mapped 0x, in efgen_top.v 1x",
                     "port m_axi1_araddr: mapped 1x, in efgen_top.v 0x"]


def test_a_renamed_hls_bundle_fails_the_check(builds, tmp_path):
    b = _copy(builds["pynq-z2"], tmp_path)
    cpp = b / "hls" / "efgen_top.cpp"
    cpp.write_text(cpp.read_text().replace("bundle=gmem2", "bundle=gmem_out"))
    repo = b / "hls" / "efgen_prj" / "solution1" / "impl" / "ip"
    repo.mkdir(parents=True)
    (repo / "component.xml").write_text("<component/>\n")
    code, calls, _, _ = run_tcl(b, "build.tcl", "hls")
    assert code == 0
    found = problems(b, load_board("pynq-z2"), "hls", calls)
    assert "efgen_0/m_axi_gmem2: no such interface on the IP " \
           "(['m_axi_gmem0', 'm_axi_gmem1', 'm_axi_gmem_out', 's_axi_control'])" in found
    assert "master m_axi_gmem_out reaches None, not a PS HP port" in found


def test_an_hp_port_the_board_lacks_fails_the_check(builds, tmp_path):
    b = _copy(builds["zcu102"], tmp_path)
    bd = b / "vivado" / "block_design.tcl"
    bd.write_text(bd.read_text().replace("S_AXI_HP2_FPD", "S_AXI_HP4_FPD"))
    _, calls, _, _ = run_tcl(b, "build.tcl", "rtl")
    found = problems(b, load_board("zcu102"), "rtl", calls)
    assert "HP ports [0, 1, 4] on a board with 4" in found
    assert "PS enables HP ports [0, 1, 2], the masters use [0, 1, 4]" in found


def test_rtl_reset_is_active_low_and_synchronised(builds):
    """What package_rtl_ip.tcl declares (ap_rst_n, POLARITY ACTIVE_LOW) is what the RTL
    does: efgen_top takes ap_rst_n into two flip-flops (rst = its inverse, two cycles
    later), every process resets on `if (rst)` inside a clock edge, none on a reset edge;
    the X_INTERFACE attributes say the same to a packager that reads them."""
    top = (builds["zcu102"] / "rtl" / "efgen_top.v").read_text()
    assert "ap_rst_n" in verilog_ports(builds["zcu102"] / "rtl" / "efgen_top.v")
    assert "rst" not in verilog_ports(builds["zcu102"] / "rtl" / "efgen_top.v")
    assert re.search(r"rst_q <= \{rst_q\[0\], ~ap_rst_n\};", top)
    assert re.search(r"wire\s+rst = rst_q\[1\];", top)
    assert '"xilinx.com:signal:reset:1.0 ap_rst_n RST"' in top
    assert '"POLARITY ACTIVE_LOW"' in top and "ASSOCIATED_RESET ap_rst_n" in top
    assert '"xilinx.com:signal:interrupt:1.0 interrupt INTERRUPT"' in top
    for k in (0, 1, 2):
        assert f"XIL_INTERFACENAME m_axi{k}, PROTOCOL AXI4" in top and "ADDR_WIDTH 40" in top
    text = "\n".join(p.read_text() for p in sorted((builds["zcu102"] / "rtl").glob("*.v")))
    assert re.search(r"\bif\s*\(\s*rst\s*\)", text)
    assert not re.search(r"(posedge|negedge)\s+\w*rst", text)
    assert not re.search(r"if\s*\(\s*[!~]\s*\w*rst\b", text)


def test_masters_share_ports_on_a_board_with_two(tmp_path, builds):
    src = (ROOT / "configs" / "boards" / "zcu102.yaml").read_text()
    board = tmp_path / "two-hp.yaml"
    board.write_text(src.replace("name: zcu102", "name: two-hp")
                     .replace("hp_ports: 4 ", "hp_ports: 2 "))
    out = tmp_path / "two"
    assert main(["build", "--board", str(board), "--net", "tiny", "--batch", "2",
                 "--tiles", "Tm=4,Tn=4", "-o", str(out)]) == 0
    _, calls, _, _ = run_tcl(out, "build.tcl", "rtl")
    intf = nets(calls, "connect_bd_intf_net")
    assert {"efgen_0/m_axi2", "axi_smc_hp0/S01_AXI"} in intf     # masters 0 and 2 share HP0
    assert {"axi_smc_hp1/M00_AXI", "zynq_ultra_ps_e_0/S_AXI_HP1_FPD"} in intf
    assert not [p for g in intf for p in g if "HP2" in p or "HP3" in p]
    two = load_board(str(board))
    assert two.axi.hp_ports == 2 and problems(out, two, "rtl", calls) == []
    # the same calls on a board with one HP port: two ports are one too many
    one = dataclasses.replace(two, axi=dataclasses.replace(two.axi, hp_ports=1))
    assert "HP ports [0, 1] on a board with 1" in problems(out, one, "rtl", calls)


def test_fused_rtl_maps_the_read_channel_of_m_axi2(tmp_path):
    """A --fuse build's rtl/ (RtlParams.fuse) has m_axi2's AR/R ports (the second load
    stream); package_rtl_ip.tcl maps every one of them, the block design is unchanged."""
    out = tmp_path / "fz"
    assert main(["build", "--board", "zcu102", "--net", "tiny", "--batch", "2",
                 "--tiles", "Tm=4,Tn=4", "--fuse", "-o", str(out)]) == 0
    assert "m_axi2_rready" in verilog_ports(out / "rtl" / "efgen_top.v")
    code, calls, _, err = run_tcl(out, "build.tcl", "rtl")
    assert (code, err) == (0, ""), err
    assert problems(out, load_board("zcu102"), "rtl", calls) == []
    _, ifs = packaged(calls)
    assert {"ARVALID", "RDATA", "AWVALID", "WDATA"} <= set(ifs["m_axi2"]["ports"])


def test_build_tcl_arguments(builds, tmp_path):
    b = _copy(builds["zcu102"], tmp_path)
    usage = "build.tcl: usage: vivado -mode batch -source build.tcl -tclargs hls|rtl [jobs]\n"
    for args in ((), ("rtl", "2", "x")):
        assert run_tcl(b, "build.tcl", *args)[::3] == (2, usage)
    code, calls, _, err = run_tcl(b, "build.tcl", "vhdl")
    assert (code, calls) == (2, []) and err.startswith("build.tcl: unknown IP 'vhdl'")
    code, calls, _, err = run_tcl(b, "build.tcl", "rtl", "0")
    assert (code, calls) == (2, []) and "jobs '0' is not a positive whole number" in err
    code, calls, _, _ = run_tcl(b, "build.tcl", "rtl", "3")
    assert code == 0 and all(c[c.index("-jobs") + 1] == "3" for c in calls
                             if c[0] == "launch_runs")
    # timing not met: the bitstream is still copied, the exit code says so
    code, _, _, err = run_tcl(b, "build.tcl", "rtl", slack="-0.125")
    assert code == 1 and "timing NOT met at 125 MHz (worst setup slack '-0.125' ns)" in err
    assert (b / "vivado" / "out_rtl" / "efgen.bit").is_file()
    # block_design.tcl alone says who sources it
    code, calls, _, err = run_tcl(b, "block_design.tcl")
    assert (code, calls) == (2, []) and "source it from build.tcl" in err


def test_build_without_rtl_has_no_rtl_flow(tmp_path):
    out = tmp_path / "f16"
    assert main(["build", "--board", "kv260", "--net", "tiny", "--batch", "2",
                 "--precision", "fp16", "-o", str(out)]) == 0
    assert sorted(q.name for q in (out / "vivado").iterdir()) == ["block_design.tcl",
                                                                  "build.tcl"]
    code, calls, _, err = run_tcl(out, "build.tcl", "rtl")
    assert (code, calls) == (2, []) and err.startswith("build.tcl: this build has no rtl/")
    bd = (out / "vivado" / "block_design.tcl").read_text()
    assert "hls {vlnv" in bd and "rtl {vlnv" not in bd
    # and without hls/ or rtl/, no vivado/
    est = tmp_path / "est"
    assert main(["build", "--board", "kv260", "--net", "tiny", "--batch", "2", "--steps",
                 "estimate", "-o", str(est)]) == 0
    assert not (est / "vivado").exists()


def test_vivado_scripts_are_deterministic_and_parse(builds, tmp_path):
    b = builds["zcu102"]
    again = tmp_path / "elsewhere"
    assert main(["build", "--board", "zcu102", "--net", "tiny", "--batch", "2", "--tiles",
                 "Tm=4,Tn=4", "--clock", "125", "-o", str(again)]) == 0
    names = sorted(q.name for q in (b / "vivado").iterdir())
    assert names == ["block_design.tcl", "build.tcl", "package_rtl_ip.tcl"]
    for n in names:
        text = (b / "vivado" / n).read_text()
        assert (again / "vivado" / n).read_text() == text, n
        assert str(b) not in text and str(again) not in text
        proc = subprocess.run(["tclsh"], input=f"puts [info complete {{{text}}}]",
                              capture_output=True, text=True, timeout=30)
        assert proc.stdout.strip() == "1", n


def test_part_that_is_not_a_part_number_is_refused(tmp_path, run_cli):
    src = (ROOT / "configs" / "boards" / "pynq-z2.yaml").read_text()
    board = tmp_path / "evil.yaml"
    board.write_text(src.replace("name: pynq-z2", "name: evil").replace(
        "part: xc7z020clg400-1", 'part: "xc7z020[exec touch pwned]"'))
    out = tmp_path / "out"
    code, _, err = run_cli("build", "--board", board, "--net", "tiny", "--batch", "2",
                           "-o", out)
    assert code == 2 and err.count("\n") == 1
    assert f"{board}:part" in err and "not a Xilinx part number" in err
    assert not out.exists()


def test_names_reach_the_scripts_only_as_identifiers(tmp_path):
    """The net's name (user text) appears only in comments, reduced to [A-Za-z0-9_]."""
    from efgen.frontend import load_net
    from efgen.model.schedule import Request, schedule

    net = load_net("tiny")
    board = load_board("zcu102")
    design = schedule(Request(net, board, batch=2))
    design = dataclasses.replace(design, net={**design.net,
                                              "name": 'x"; exec rm -rf / ;[puts y]'})
    files = render_vivado(design, board)
    for text in files.values():
        assert "net x___exec_rm__rf_____puts_y_" in text
        assert "exec" not in text.replace("x___exec_rm", "") and "puts y" not in text


def test_make_vivado_says_what_it_needs(builds, tmp_path):
    if shutil.which("make") is None:
        pytest.fail("make not installed")
    env = {**os.environ, "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(["make", "-s", "-C", str(ROOT), "vivado"], capture_output=True,
                          text=True, env=env, timeout=60)
    assert proc.returncode == 2 and "usage: make vivado DESIGN=<build folder>" in proc.stdout
    proc = subprocess.run(["make", "-s", "-C", str(ROOT), "vivado",
                           f"DESIGN={builds['zcu102']}", "IP=rtl"], capture_output=True,
                          text=True, env=env, timeout=60)
    assert proc.returncode == 2
    assert "vivado not found" in proc.stdout and "AMD Vivado" in proc.stdout


def test_an_unconnected_interrupt_or_wrong_reset_fails_the_check(builds, tmp_path):
    b = _copy(builds["zcu102"], tmp_path)
    bd = b / "vivado" / "block_design.tcl"
    text = bd.read_text()
    line = "connect_bd_net [get_bd_pins efgen_0/[dict get $efgen_v irq]]"
    assert text.count(line) == 1
    bd.write_text("\n".join(x for x in text.split("\n") if not x.startswith(line)))
    _, calls, _, _ = run_tcl(b, "build.tcl", "rtl")
    assert "efgen_0/irq reaches set(), not zynq_ultra_ps_e_0/pl_ps_irq0" in \
        problems(b, load_board("zcu102"), "rtl", calls)
    pkg = b / "vivado" / "package_rtl_ip.tcl"
    bd.write_text(text)
    pkg.write_text(pkg.read_text().replace("POLARITY ACTIVE_LOW", "POLARITY ACTIVE_HIGH"))
    _, calls, _, _ = run_tcl(b, "build.tcl", "rtl")
    assert "reset ap_rst_n is not declared ACTIVE_LOW" in \
        problems(b, load_board("zcu102"), "rtl", calls)
