"""`efgen build` and `efgen report`: outputs (design, report, plots, hls/, rtl/),
determinism, bad input, vendor comparison."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import require_tool as _require

from efgen.design import Design
from efgen.frontend.boards import load_board

FIXTURES = Path(__file__).parent / "fixtures" / "vitis_reports"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    from efgen.cli import main

    out = tmp_path_factory.mktemp("b") / "r20"
    assert main(["build", "--board", "zcu102", "--net", "resnet20", "-o", str(out)]) == 0
    return out


def test_build_writes_everything(built):
    assert sorted(p.name for p in built.iterdir()) == [
        "design.json", "driver", "hls", "report.json", "report.md", "roofline.png", "rtl",
        "time_per_layer.png", "vivado"]
    assert sorted(p.name for p in (built / "vivado").iterdir()) == [
        "block_design.tcl", "build.tcl", "package_rtl_ip.tcl"]
    hls = sorted(p.name for p in (built / "hls").iterdir())
    assert hls == ["cosim_in.bin", "cosim_ref.bin", "efgen_cosim_tb.cpp", "efgen_host.cpp",
                   "efgen_params.h", "efgen_program.h", "efgen_tb.cpp", "efgen_top.cpp",
                   "hls_kernels", "manifest.json", "program.json", "run_hls.tcl"]
    rep = json.loads((built / "report.json").read_text())
    t = rep["totals"]
    assert t["cycles"] > 0 and 0 < t["roofline_fraction"] < 1
    assert rep["board"] == "zcu102" and rep["net"] == "resnet20"
    md = (built / "report.md").read_text()
    assert "## Per layer and phase" in md and "| s3b3_b_conv | wu | conv |" in md
    for png in ("roofline.png", "time_per_layer.png"):
        assert (built / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_design_json_regenerates_the_report(built):
    from efgen.flow import net_of
    from efgen.frontend.boards import load_board
    from efgen.model.evaluate import evaluate_design
    from efgen.report.summary import report_dict, report_json

    design = Design.from_json((built / "design.json").read_text())
    board = load_board(design.board)
    ev = evaluate_design(net_of(design), design, board)
    assert report_json(report_dict(design, board, ev)) == (built / "report.json").read_text()


def test_build_is_deterministic(built, tmp_path, run_cli):
    code, _, _ = run_cli("build", "--board", "zcu102", "--net", "resnet20", "-o", tmp_path / "again")
    assert code == 0
    for p in built.rglob("*"):
        if p.is_file():
            q = tmp_path / "again" / p.relative_to(built)
            assert q.read_bytes() == p.read_bytes(), p.name


def test_build_summary_and_rebuild_in_place(tmp_path, run_cli):
    out = tmp_path / "t"
    code, stdout, _ = run_cli("build", "--board", "kv260", "--net", "tiny", "--batch", "4",
                              "-o", out)
    assert code == 0 and "ms/step" in stdout and "GFLOPS" in stdout
    code, _, _ = run_cli("build", "--board", "kv260", "--net", "tiny", "--batch", "4", "-o", out)
    assert code == 0 and (out / "design.json").is_file()      # an earlier build: replaced
    # A file efgen did not write is a user's: the rebuild refuses (issue 11 changed this
    # from silently deleting it) unless --force says otherwise.
    (out / "stale.txt").write_text("x")
    code, _, _ = run_cli("build", "--board", "kv260", "--net", "tiny", "--batch", "4", "-o", out)
    assert code == 2 and (out / "stale.txt").read_text() == "x"
    code, _, _ = run_cli("build", "--board", "kv260", "--net", "tiny", "--batch", "4", "-o", out,
                         "--force")
    assert code == 0 and not (out / "stale.txt").exists()


def test_tiles_override_is_honoured(tmp_path, run_cli):
    code, _, _ = run_cli("build", "--board", "zcu102", "--net", "lenet5", "--tiles",
                         "Tm=8,Tn=4", "-o", tmp_path / "o")
    assert code == 0
    d = Design.from_json((tmp_path / "o" / "design.json").read_text())
    assert (d.hw.tm, d.hw.tn) == (8, 4)


def test_infeasible_tiles_name_the_binding_resource(tmp_path, run_cli):
    code, out, err = run_cli("build", "--board", "pynq-z2", "--net", "resnet20", "--tiles",
                             "Tm=64,Tn=64", "-o", tmp_path / "x")
    assert code == 2 and out == ""
    # the array's 64*64*5 DSP plus the kernel's other float operators, vs 80% of 220
    need = int(re.search(r"needs ([\d,]+) DSP", err).group(1).replace(",", ""))
    assert need > 64 * 64 * 5 and "176" in err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("text,needle", [
    ("layers:\n  nope_conv:\n    fp: {tr: 4, tc: 4}\n", "'nope_conv' is not a conv"),
    ("layers:\n  conv1_conv:\n    xp: {tr: 4, tc: 4}\n", "unknown phase 'xp'"),
    ("layers:\n  conv1_conv:\n    fp: {tr: 0, tc: 4}\n", "'tr' must be a positive integer"),
    ("layers:\n  conv1_conv:\n    fp: {tr: 4}\n", "needs both 'tr' and 'tc'"),
    ("layers:\n  conv1_conv:\n    fp: {tr: 4, tc: 4, order: zz}\n", "unknown loop order"),
    ("layers: [\n", "YAML syntax error"),
    ("layer: {}\n", "one key 'layers'"),
])
def test_bad_override_file(text, needle, tmp_path, run_cli):
    f = tmp_path / "ov.yaml"
    f.write_text(text)
    code, _, err = run_cli("build", "--board", "zcu102", "--net", "resnet20", "--overrides", f,
                           "-o", tmp_path / "x")
    assert code == 2 and needle in err and str(f) in err
    assert not (tmp_path / "x").exists()


def test_override_that_does_not_fit(tmp_path, run_cli):
    f = tmp_path / "ov.yaml"
    f.write_text("layers:\n  conv1_conv:\n    fp: {tr: 32, tc: 32, order: io, mc: 1}\n")
    code, _, _ = run_cli("build", "--board", "zcu102", "--net", "resnet20", "--overrides", f,
                         "-o", tmp_path / "ok")
    # 34x34 input halo = 1,156 words fits an IFM bank of the chosen design.
    assert code == 0
    d = Design.from_json((tmp_path / "ok" / "design.json").read_text())
    t = d.tiling("conv1_conv", "fp")
    assert (t.tr, t.tc, t.order, t.mc) == (32, 32, "io", 1)
    # A 224x224 tile needs a 226x226 input halo: no IFM bank of any design holds it.
    f.write_text("layers:\n  conv1_1_conv:\n    fp: {tr: 224, tc: 224}\n")
    code, _, err = run_cli("build", "--board", "zcu102", "--net", "vgg16-bn-224",
                           "--overrides", f, "-o", tmp_path / "x")
    assert code == 2 and "no tiling of conv1_1_conv FP fits" in err
    assert not (tmp_path / "x").exists()


def test_train_last_reports_saving(tmp_path, run_cli):
    code, out, _ = run_cli("build", "--board", "zcu102", "--net", "resnet20", "--train-last",
                           "2", "-o", tmp_path / "p")
    assert code == 0 and "vs full training" in out
    rep = json.loads((tmp_path / "p" / "report.json").read_text())
    assert rep["partial_training"]["cycle_saving"] > 0.5


def test_report_dir_without_vendor_reports(built, run_cli):
    code, out, _ = run_cli("report", built)
    assert code == 0 and "no Vitis/Vivado HLS reports" in out


def test_report_dir_compares_with_vendor(built, tmp_path, run_cli):
    d = tmp_path / "withvendor"
    shutil.copytree(built, d)
    rep_dir = d / "hls" / "solution1" / "syn" / "report"
    rep_dir.mkdir(parents=True)
    shutil.copy(FIXTURES / "vitis2023.2_z7020_nms_csynth.xml", rep_dir / "nms_csynth.xml")
    from efgen.flow import net_of
    from efgen.frontend.boards import load_board
    from efgen.model.evaluate import evaluate_design
    from efgen.report.summary import vendor_comparison

    design = Design.from_json((d / "design.json").read_text())
    ev = evaluate_design(net_of(design), design, load_board("zcu102"))
    found = vendor_comparison(design, ev, d)
    assert len(found) == 1
    rows = {r.figure: r for r in found[0][1]}
    dsp = ev["totals"]["resources"]["dsp"]
    assert rows["dsp"].vendor == 27 and rows["dsp"].model == dsp
    assert rows["dsp"].error_pct == pytest.approx((dsp - 27) / 27 * 100)
    assert rows["lut"].vendor == 19329 and rows["ff"].vendor == 8709
    assert rows["latency"].vendor is None and rows["latency"].error_pct is None  # '?'
    code, out, _ = run_cli("report", d)
    assert code == 0 and "nms_csynth.xml" in out and "n/a" in out


def test_report_dir_missing_design(tmp_path, run_cli):
    code, _, err = run_cli("report", tmp_path)
    assert code == 2 and "design.json not found" in err


def test_params_header_agrees_with_the_report(built):
    import re

    rep = json.loads((built / "report.json").read_text())
    text = (built / "hls" / "efgen_params.h").read_text()
    defs = dict(re.findall(r"#define (EFGEN_\w+) (\S+)", text))
    hw = rep["hw"]
    assert int(defs["EFGEN_TM"]) == hw["tm"] and int(defs["EFGEN_TN"]) == hw["tn"]
    assert int(defs["EFGEN_IFM_DEPTH"]) == hw["ifm_depth"]
    assert int(defs["EFGEN_OFM_DEPTH"]) == hw["ofm_depth"]
    assert int(defs["EFGEN_WBUF_DEPTH"]) == hw["wbuf_depth"]
    assert int(defs["EFGEN_BATCH"]) == rep["batch"]
    tcl = (built / "hls" / "run_hls.tcl").read_text()
    assert hw["clock_mhz"] == load_board("zcu102").clock_mhz    # no --clock: the board's
    period = 1e3 / hw["clock_mhz"]
    assert f"set_part {rep['part']}" in tcl and f"create_clock -period {period:.3f}" in tcl


# ------------------------------------------------------------------ rtl/



def test_build_writes_the_reference_rtl(built):
    from efgen.rtl.synth import load_rtl_json, top_spec
    from efgen.rtl.top import rtl_params, rtl_verilog

    design = Design.from_json((built / "design.json").read_text())
    p = rtl_params(design, design.layout, impl="dsp")      # efgen build's default units
    rtl = built / "rtl"
    files = rtl_verilog(p)
    assert sorted(q.name for q in rtl.iterdir()) == sorted([*files, "rtl.json"])
    assert "efgen_top.v" in files
    for name, text in files.items():
        assert (rtl / name).read_text() == text, name
    spec = load_rtl_json(rtl / "rtl.json")
    assert spec == top_spec(p) and spec.top == "efgen_top"
    assert (spec.engine.tm, spec.engine.tn) == (design.hw.tm, design.hw.tn)


def test_built_rtl_lints_with_verilator_and_icarus(built, tmp_path):
    _require("verilator")
    _require("iverilog")
    vs = sorted(str(q) for q in (built / "rtl").glob("*.v"))
    # -Wno-WIDTH: the sequencer truncates widths on purpose
    r = subprocess.run(["verilator", "--lint-only", "-Wno-WIDTH", "--top-module", "efgen_top",
                        *vs], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    r = subprocess.run(["iverilog", "-g2005", "-s", "efgen_top", "-o", str(tmp_path / "t.vvp"),
                        *vs], capture_output=True, text=True)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]


def test_build_without_rtl_says_why(tmp_path, run_cli):
    # the reference RTL is FP32 only: the build succeeds, without rtl/, and says why
    out = tmp_path / "f16"
    code, stdout, err = run_cli("build", "--board", "kv260", "--net", "tiny", "--batch", "2",
                                "--precision", "fp16", "-o", out)
    assert code == 0, err
    assert (out / "hls").is_dir() and not (out / "rtl").exists()
    lines = [ln for ln in stdout.splitlines() if "rtl/" in ln and "not written" in ln]
    assert len(lines) == 1 and "FP32 only" in lines[0]
    # a lane block gcd(Tm, Tn) that is not a power of two
    code, stdout, err = run_cli("build", "--board", "kv260", "--net", "tiny", "--batch", "2",
                                "--tiles", "Tm=6,Tn=3", "-o", tmp_path / "t63")
    assert code == 0, err
    assert not (tmp_path / "t63" / "rtl").exists() and "power of two" in stdout


def test_build_rtl_impl_behav(tmp_path, run_cli):
    out = tmp_path / "behav"
    code, stdout, err = run_cli("build", "--board", "kv260", "--net", "tiny", "--batch", "2",
                                "--rtl-impl", "behav", "-o", out)
    assert code == 0, err
    assert json.loads((out / "rtl" / "rtl.json").read_text())["engine"]["impl"] == "behav"
    assert "simulation only" in stdout
    # not synthesizable: efgen synth refuses it in one line, before running Yosys
    code, _, err = run_cli("synth", "--yosys", out)
    assert code == 2 and err.count("\n") == 1 and "simulation-only" in err
    code, _, err = run_cli("build", "--board", "kv260", "--net", "tiny", "--rtl-impl", "x",
                           "-o", tmp_path / "x")
    assert code == 2 and err.count("\n") == 1 and "--rtl-impl" in err


def _tree(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_build_steps_select_what_is_written(tmp_path):
    """Two step selections write their own step's files, and the files both write are
    byte-identical (the steps share one Design), but for the Vivado scripts: each offers
    the IP its build holds."""
    from efgen.cli import main

    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["build", "--board", "zcu102", "--net", "tiny", "--steps", "estimate,rtl",
                 "-o", str(a)]) == 0
    assert main(["build", "--board", "zcu102", "--net", "tiny", "--stop-after", "hls",
                 "-o", str(b)]) == 0
    ta, tb = _tree(a), _tree(b)
    assert sorted(p.name for p in a.iterdir()) == [
        "design.json", "driver", "report.json", "report.md", "roofline.png", "rtl",
        "time_per_layer.png", "vivado"]
    assert sorted(p.name for p in b.iterdir()) == [
        "design.json", "hls", "report.json", "report.md", "roofline.png", "time_per_layer.png",
        "vivado"]
    shared = sorted(set(ta) & set(tb))
    assert shared == ["design.json", "report.json", "report.md", "roofline.png",
                      "time_per_layer.png", "vivado/block_design.tcl", "vivado/build.tcl"]
    # report.md gains the RTL's own resources where rtl/ is written (efgen.rtl.cost)
    assert [k for k in shared if ta[k] != tb[k]] == ["report.md", "vivado/block_design.tcl",
                                                     "vivado/build.tcl"]
    assert "## Resources of the reference RTL" in ta["report.md"].decode()
    assert "## Resources of the reference RTL" not in tb["report.md"].decode()
    assert "package_rtl_ip.tcl" in ta["vivado/build.tcl"].decode()
    assert "package_rtl_ip.tcl" not in tb["vivado/build.tcl"].decode()


def test_build_step_selection_rules():
    from efgen.flow import BUILD_STEPS, STEPS, select_steps, steps_help
    from efgen.errors import EfgenError

    assert select_steps() == ("estimate", "hls", "rtl")
    assert select_steps(csim=True) == STEPS
    assert select_steps("rtl") == ("estimate", "rtl")            # estimate always runs
    assert select_steps("csim") == ("estimate", "hls", "csim")    # csim needs hls
    assert select_steps(None, "hls", csim=True) == ("estimate", "hls")
    for bad in (("hls,nope", None), (None, "nope"), ("rtl", "hls"), (" , ", None)):
        with pytest.raises(EfgenError):
            select_steps(*bad)
    text = steps_help()
    for s in BUILD_STEPS:       # --help lists every step and what it writes
        assert s.name in text and ", ".join(s.writes) in text


def test_build_help_lists_steps():
    proc = subprocess.run([sys.executable, "-m", "efgen.cli", "build", "--help"],
                          capture_output=True, text=True)
    assert proc.returncode == 0
    assert "build steps" in proc.stdout and "writes hls/" in proc.stdout
    assert "--stop-after" in proc.stdout
