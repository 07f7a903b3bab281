"""The generated Vitis HLS project as Vitis would run it, without Vitis:

* every C++ file compiles warning-free under g++ -std=c++14 (what Vitis HLS 2022.2 to
  2023.2 compile C-simulation with) and -std=c++17;
* float literals are exact decimals (no C++17 hex floats) that read back bit for bit;
* run_hls.tcl, under tclsh with the Vitis commands stubbed, refuses before open_project
  when testbench data is missing (one line naming the file and the command that writes
  it, exit 2) and otherwise runs the two projects in order;
* the small co-simulation testbench passes on its data and fails on a perturbed word.
"""

import re
import shlex
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from efgen.errors import EfgenError
from efgen.frontend import load_net
from efgen.frontend.boards import load_board
from efgen.hls.emit import _f32_nearest, c_float, render, tcl_text, write_hls
from efgen.hls.program import build_program
from efgen.model.schedule import Request, schedule

ROOT = Path(__file__).resolve().parent.parent
STUBS = ROOT / "tests" / "fixtures" / "vitis_stub"    # Vitis headers the kernels include
CXX = ["g++", "-O2", "-Wall", "-Wextra", "-Werror", "-ffp-contract=off"]
NETS = {"tiny": 2, "lenet5": 2, "resnet20": 32}     # net -> batch
VITIS = ("open_project", "set_top", "add_files", "open_solution", "set_part", "create_clock",
         "config_interface", "csim_design", "csynth_design", "cosim_design", "export_design",
         "close_project")


def _need(tool):
    if shutil.which(tool) is None:
        pytest.fail(f"{tool} not installed")


@pytest.fixture(scope="module")
def projects(tmp_path_factory):
    """net -> hls folder of its zcu102 design (the default schedule)."""
    board = load_board("zcu102")
    out = {}
    for name, batch in NETS.items():
        net = load_net(name)
        design = schedule(Request(net, board, batch=batch))
        hls = tmp_path_factory.mktemp(name) / "hls"
        write_hls(build_program(net, design), board, hls)
        out[name] = hls
    # double-buffered weight chunks (issue 13, --weight-db on: EFGEN_WDB, run_chunk_wdb)
    net = load_net("tiny")
    design = schedule(Request(net, board, batch=2, weight_db="on"))
    hls = tmp_path_factory.mktemp("tiny-wdb") / "hls"
    write_hls(build_program(net, design), board, hls)
    assert "#define EFGEN_WDB 1" in (hls / "efgen_params.h").read_text()
    out["tiny-wdb"] = hls
    return out


def _cosim_words(hls: Path) -> int:
    return int(re.search(r"#define EFGEN_COSIM_WORDS (\d+)L",
                         (hls / "efgen_cosim_tb.cpp").read_text()).group(1))


def _cosim_checks(hls: Path) -> dict[str, tuple[int, int]]:
    text = (hls / "efgen_cosim_tb.cpp").read_text()
    return {m[0]: (int(m[1]), int(m[2]))
            for m in re.findall(r'\{"(\w+)", (\d+)L, (\d+)L\}', text)}


# ---------------------------------------------------------------- C++14 / C++17

@pytest.mark.parametrize("std", ["c++14", "c++17"])
@pytest.mark.parametrize("name", list(NETS) + ["tiny-wdb"])
def test_project_compiles_warning_free(projects, name, std, tmp_path):
    """Each file as Vitis compiles it (-I. -Ihls_kernels), then linked: the whole-step
    testbench with the host and the kernel, the co-simulation testbench with the kernel
    at its small m_axi depth (as run_hls.tcl's second project compiles both)."""
    _need("g++")
    hls = projects[name]
    small = f"-DEFGEN_AXI_DEPTH={_cosim_words(hls)}"
    units = [("efgen_top.cpp", []), ("efgen_host.cpp", []), ("efgen_tb.cpp", []),
             ("efgen_top.cpp", [small]), ("efgen_cosim_tb.cpp", [small])]
    objs = []
    for i, (src, extra) in enumerate(units):
        obj = tmp_path / f"{i}.o"
        proc = subprocess.run([*CXX, f"-std={std}", "-I.", "-Ihls_kernels", *extra, "-c", src,
                               "-o", str(obj)], cwd=hls, capture_output=True, text=True)
        assert proc.returncode == 0, f"{src} {extra}: {proc.stderr[:2000]}"
        assert proc.stderr == "", proc.stderr[:2000]      # not even a note
        objs.append(obj)
    for exe, parts in (("tb", objs[:3]), ("cosim", objs[3:])):
        subprocess.run(["g++", *map(str, parts), "-o", str(tmp_path / exe)], check=True)
    # The co-simulation testbench refuses to compile without its depth.
    proc = subprocess.run([*CXX, f"-std={std}", "-I.", "-Ihls_kernels", "-fsyntax-only",
                           "efgen_cosim_tb.cpp"], cwd=hls, capture_output=True, text=True)
    assert proc.returncode != 0 and "-DEFGEN_AXI_DEPTH=" in proc.stderr


def test_no_hex_float_literals(projects):
    hexfloat = re.compile(r"\b0[xX][0-9a-fA-F.]*[pP][+-]?\d+")
    for hls in projects.values():
        for f in hls.glob("*.[ch]*"):
            assert not hexfloat.search(f.read_text()), f.name


def test_float_literals_round_trip_through_gxx(tmp_path):
    """c_float's literals, read by g++ -std=c++14, are the same float32 bit patterns:
    random bit patterns (normal and subnormal), the extremes, the SGD/BN defaults."""
    _need("g++")
    rng = np.random.default_rng(7)
    bits = rng.integers(0, 2**32, 3000, dtype=np.uint64).astype(np.uint32)
    vals = bits.view(np.float32)
    vals = vals[np.isfinite(vals)]
    f32 = np.finfo(np.float32)
    extra = np.array([0.0, -0.0, 1.0, -1.0, 0.01, 0.9, 5e-4, 1e-5, 0.1, 1 / 3, f32.max,
                      -f32.max, f32.tiny, f32.smallest_subnormal, 1e7, 9999999.0, 1e-4,
                      9.999999e-5, 16777216.0, 123456789.0], np.float32)
    vals = np.concatenate([extra, vals])
    lits = [c_float(float(v)) for v in vals]
    assert all(re.fullmatch(r"-?\d+(\.\d+)?(e[+-]\d+)?f", s) for s in lits), lits[:20]
    src = tmp_path / "lit.cpp"
    src.write_text("#include <cstdio>\n#include <cstring>\n#include <cstdint>\n"
                   "static const float V[] = {\n" + ",\n".join(lits) + "};\n"
                   "int main() { for (float v : V) { uint32_t b; std::memcpy(&b, &v, 4); "
                   "std::printf(\"%u\\n\", static_cast<unsigned>(b)); } return 0; }\n")
    subprocess.run(["g++", "-std=c++14", "-Wall", "-Wextra", "-Werror", str(src), "-o",
                    str(tmp_path / "lit")], check=True)
    out = subprocess.run([str(tmp_path / "lit")], capture_output=True, text=True, check=True)
    got = np.array([int(x) for x in out.stdout.split()], np.uint32)
    assert np.array_equal(got, vals.view(np.uint32))


def test_exact_float32_reader_rounds_to_nearest_even():
    from fractions import Fraction

    one = np.float32(1.0)
    up = np.nextafter(one, np.float32(2))
    half = (Fraction(1) + Fraction(float(up))) / 2            # a tie: even mantissa wins
    assert _f32_nearest(half) == one
    assert _f32_nearest(half + Fraction(1, 10**30)) == up


@pytest.mark.parametrize("bad", [float("inf"), float("-inf"), float("nan"), 1e39])
def test_nonfinite_descriptor_float_is_a_one_line_error(bad):
    net = load_net("tiny")
    design = schedule(Request(net, load_board("zcu102"), batch=2, tm=8, tn=4))
    with pytest.raises(EfgenError) as exc:
        render(build_program(net, design, lr=bad), load_board("zcu102"))
    msg = exc.value.message()
    assert "\n" not in msg and "field lr" in msg and "conv1 fp" in msg and "FP descriptor 0" in msg


def test_nonfinite_sgd_flag_fails_before_any_folder(tmp_path, run_cli):
    out = tmp_path / "c"
    code, _, err = run_cli("csim", "--board", "zcu102", "--net", "tiny", "--lr", "nan",
                           "-o", out)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--lr is nan" in err
    assert not out.exists()


# ---------------------------------------------------------------- m_axi depth, interface

def test_axi_depth_is_one_literal_in_the_pragmas(projects, tmp_path):
    """depth= comes from EFGEN_AXI_DEPTH: the whole image by default, overridable with -D;
    the pragma Vitis sees holds the literal."""
    _need("g++")
    hls = projects["tiny"]
    params = (hls / "efgen_params.h").read_text()
    words = int(re.search(r"#define EFGEN_MEM_WORDS (\d+)L", params).group(1))
    assert re.search(rf"#define EFGEN_AXI_DEPTH {words}\n", params)
    top = (hls / "efgen_top.cpp").read_text()
    assert top.count("depth=EFGEN_AXI_DEPTH") == 3 and not re.search(r"depth=\d", top)
    for extra, depth in (([], words), (["-DEFGEN_AXI_DEPTH=4096"], 4096)):
        pre = subprocess.run(["g++", "-std=c++14", "-E", "-D__SYNTHESIS__", "-I.", "-Ihls_kernels",
                              f"-I{STUBS}", *extra, "efgen_top.cpp"], cwd=hls,
                             capture_output=True, text=True, check=True).stdout
        pragmas = re.findall(r"#pragma HLS INTERFACE m_axi .*", pre)
        assert len(pragmas) == 3
        for p in pragmas:
            assert f" depth={depth} " in p and "EFGEN" not in p, p


def test_tcl_sets_the_board_axi_interface(projects):
    tcl = (projects["resnet20"] / "run_hls.tcl").read_text()
    line = "config_interface -m_axi_alignment_byte_size 16 -m_axi_max_widen_bitwidth 128"
    assert tcl.count(line) == 2 and "UG1399" in tcl
    board = load_board("pynq-z2")                      # 64-bit HP ports
    net = load_net("tiny")
    text = render(build_program(net, schedule(Request(net, board, batch=2))), board)
    assert "-m_axi_alignment_byte_size 8 -m_axi_max_widen_bitwidth 64" in text["run_hls.tcl"]


# ---------------------------------------------------------------- run_hls.tcl under tclsh

STUB = """\
foreach p {%s} {
  proc $p {args} "puts \\"CALL $p \\$args\\""
}
source [lindex $argv 0]
""" % " ".join(VITIS)


def _tcl(hls: Path, tmp_path: Path, cwd: Path | None = None):
    _need("tclsh")
    stub = tmp_path / "stub.tcl"
    stub.write_text(STUB)
    proc = subprocess.run(["tclsh", str(stub), str(hls / "run_hls.tcl")], cwd=cwd or tmp_path,
                          capture_output=True, text=True, timeout=60)
    calls = [line[5:] for line in proc.stdout.splitlines() if line.startswith("CALL ")]
    assert len(calls) == len(proc.stdout.splitlines()), proc.stdout   # nothing else printed
    return proc.returncode, calls, proc.stderr


def _fake_csim_data(hls: Path):
    words = int(re.search(r"#define EFGEN_MEM_WORDS (\d+)L",
                          (hls / "efgen_params.h").read_text()).group(1))
    batch = int(re.search(r"#define EFGEN_BATCH (\d+)", (hls / "efgen_params.h").read_text())
                .group(1))
    for f in ("dram_in.bin", "dram_ref.bin"):
        with open(hls / f, "wb") as fh:
            fh.truncate(4 * words)
    (hls / "labels.bin").write_bytes(b"\0" * 4 * batch)


@pytest.fixture
def tiny_build(tmp_path, run_cli):
    out = tmp_path / "my build"            # a space: the printed -o needs quoting
    code, _, _ = run_cli("build", "--board", "zcu102", "--net", "tiny", "--batch", "2",
                         "--tiles", "Tm=8,Tn=4", "-o", out)
    assert code == 0
    return out


def _fix_command(err: str) -> list[str]:
    line = err.strip()
    assert "\n" not in line
    return shlex.split(line.split("; write it with: ", 1)[1])


def test_tcl_refuses_without_csim_data(tiny_build, tmp_path):
    hls = tiny_build / "hls"
    code, calls, err = _tcl(hls, tmp_path)
    assert code == 2 and calls == []                   # before open_project
    assert err.startswith("run_hls.tcl: dram_in.bin is missing")
    assert _fix_command(err) == ["efgen", "build", "--board", "zcu102", "--net", "tiny",
                                 "--batch", "2", "--tiles", "Tm=8,Tn=4",
                                 "-o", str(tiny_build.resolve()), "--csim"]
    # Each file is checked, by name, and so is its size.
    _fake_csim_data(hls)
    (hls / "labels.bin").unlink()
    code, calls, err = _tcl(hls, tmp_path)
    assert code == 2 and calls == [] and err.startswith("run_hls.tcl: labels.bin is missing")
    (hls / "labels.bin").write_bytes(b"\0" * 4)        # batch 2 needs 8 bytes
    code, calls, err = _tcl(hls, tmp_path)
    assert code == 2 and calls == []
    assert err.startswith("run_hls.tcl: labels.bin has 4 bytes, not the 8 of this design")
    _fake_csim_data(hls)
    (hls / "cosim_ref.bin").unlink()
    code, calls, err = _tcl(hls, tmp_path)
    assert code == 2 and calls == [] and "cosim_ref.bin is missing" in err
    assert _fix_command(err)[-2:] == ["-o", str(tiny_build.resolve())]


def test_tcl_flow_with_the_data_the_printed_command_writes(tiny_build, tmp_path, run_cli):
    """The command run_hls.tcl prints writes what it lacks; then both projects run."""
    hls = tiny_build / "hls"
    _, _, err = _tcl(hls, tmp_path)
    cmd = _fix_command(err)
    assert cmd[0] == "efgen"
    code, out, _ = run_cli(*cmd[1:])
    assert code == 0 and "step 1: PASS" in out
    code, calls, err = _tcl(hls, tmp_path, cwd=Path("/"))    # from any folder
    assert code == 0 and err == ""
    words = _cosim_words(hls)
    flags = "{-std=c++14 -pthread -I. -Ihls_kernels}"
    small = f"{{-std=c++14 -pthread -I. -Ihls_kernels -DEFGEN_AXI_DEPTH={words}}}"
    # zcu102's default clock (configs/boards/zcu102.yaml clock_mhz, from its clock_basis)
    period = 1e3 / load_board("zcu102").clock_mhz
    head = ["set_part xczu9eg-ffvb1156-2-e", f"create_clock -period {period:.3f} -name default",
            "config_interface -m_axi_alignment_byte_size 16 -m_axi_max_widen_bitwidth 128"]
    assert calls == [
        "open_project -reset efgen_prj", "set_top efgen_top",
        f"add_files efgen_top.cpp -cflags {flags}", f"add_files -tb efgen_tb.cpp -cflags {flags}",
        f"add_files -tb efgen_host.cpp -cflags {flags}", "add_files -tb dram_in.bin",
        "add_files -tb dram_ref.bin", "add_files -tb labels.bin",
        "open_solution -reset solution1 -flow_target vivado", *head,
        "csim_design -ldflags -pthread", "csynth_design ", "export_design -format ip_catalog -vendor xilinx.com -library hls -ipname efgen_top -version 1.0",
        "close_project ",
        "open_project -reset efgen_cosim_prj", "set_top efgen_top",
        f"add_files efgen_top.cpp -cflags {small}",
        f"add_files -tb efgen_cosim_tb.cpp -cflags {small}", "add_files -tb cosim_in.bin",
        "add_files -tb cosim_ref.bin", "open_solution -reset cosim_small -flow_target vivado",
        *head, "csim_design -ldflags -pthread", "csynth_design ", "cosim_design -ldflags -pthread",
        "close_project "]


HOSTILE = ['net$(rm -rf ~)[exit 0]"{}', "b\\oard\nputs pwned; ' x", "dir é;`id`"]


def test_tcl_never_runs_user_strings(tmp_path):
    """Request words (net and board as the user typed them) and the folder reach Tcl
    escaped: the printed command holds them exactly (control characters as '?'), and
    nothing in them runs."""
    net = load_net("tiny")
    board = load_board("zcu102")
    design = schedule(Request(net, board, batch=2, tm=8, tn=4))
    build = tmp_path / "it's $HOME [x]"
    hls = build / "hls"
    request = ("build", "--board", HOSTILE[1], "--net", HOSTILE[0], "--batch", "2",
               "--overrides", HOSTILE[2])
    write_hls(build_program(net, design), board, hls, request)
    tcl = (hls / "run_hls.tcl").read_text()
    for h in HOSTILE:
        assert h not in tcl
    code, calls, err = _tcl(hls, tmp_path)
    assert code == 2 and calls == []
    assert len(err.strip().splitlines()) == 1
    assert _fix_command(err) == ["efgen", "build", "--board", HOSTILE[1].replace("\n", "?"),
                                 "--net", HOSTILE[0], "--batch", "2", "--overrides",
                                 HOSTILE[2], "-o", str(build.resolve()), "--csim"]
    assert tcl_text("a\nb$[c]") == "a?b\\u0024\\u005bc\\u005d"


# ---------------------------------------------------------------- the small co-simulation

@pytest.mark.parametrize("name", list(NETS))
def test_cosim_testbench_passes_and_fails(projects, name, tmp_path):
    """C-simulation of efgen_cosim_tb.cpp (what cosim_design runs against the RTL): exit 0
    on the data efgen wrote; 1 when one reference word is off (a conv output by a lot,
    a BN variance by 0.1%, or a word no descriptor writes); 2 when data is short."""
    _need("g++")
    src = projects[name]
    hls = tmp_path / "hls"
    shutil.copytree(src, hls)
    words = _cosim_words(hls)
    exe = tmp_path / "cosim"
    subprocess.run([*CXX, "-std=c++14", "-I.", "-Ihls_kernels", f"-DEFGEN_AXI_DEPTH={words}",
                    "efgen_cosim_tb.cpp", "efgen_top.cpp", "-o", str(exe)], cwd=hls, check=True)

    def run():
        p = subprocess.run([str(exe)], cwd=hls, capture_output=True, text=True, timeout=120)
        return p.returncode, p.stdout

    code, out = run()
    assert code == 0, out
    assert "2 descriptors, 0 of 5 output regions differ" in out
    checks = _cosim_checks(hls)
    assert list(checks) == ["conv_y", "bn_stats", "bn_running_mean", "bn_running_var", "bn_y"]
    ref = (hls / "cosim_ref.bin").read_bytes()
    inp = (hls / "cosim_in.bin").read_bytes()
    assert len(ref) == len(inp) == 4 * words

    def perturbed(word, f):
        b = bytearray(ref)
        (v,) = struct.unpack_from("<f", b, 4 * word)
        struct.pack_into("<f", b, 4 * word, f(v))
        (hls / "cosim_ref.bin").write_bytes(bytes(b))
        return run()

    off, n = checks["conv_y"]
    code, out = perturbed(off + n // 3, lambda v: v + 1e3)
    assert code == 1 and "MISMATCH conv_y" in out, out
    off, n = checks["bn_stats"]
    code, out = perturbed(off + n - 1, lambda v: v * 1.001)       # a variance
    assert code == 1 and "MISMATCH bn_stats" in out, out
    code, out = perturbed(checks["conv_y"][0] - 1, lambda v: v + 1.0)   # not an output
    assert code == 1 and "words outside the outputs changed" in out, out
    (hls / "cosim_ref.bin").write_bytes(ref[:-4])
    assert run()[0] == 2
    (hls / "cosim_ref.bin").write_bytes(ref + b"\0\0\0\0")
    assert run()[0] == 2


def test_cosim_testbench_merges_the_ports(projects, tmp_path):
    """The testbench gives each m_axi port its own copy of the image (as co-simulation
    does): a word written through one port is taken from that port; a word written
    through two ports is an error. Shown with a stand-in efgen_top."""
    _need("g++")
    hls = projects["tiny"]
    words = _cosim_words(hls)
    off, _ = _cosim_checks(hls)["conv_y"]
    for clash, expect in ((False, "words outside the outputs changed"),
                          (True, "written through more than one m_axi port")):
        stub = tmp_path / f"top{int(clash)}.cpp"
        stub.write_text(
            '#include "efgen_desc.h"\n'
            'extern "C" void efgen_top(const EfgenDesc desc, float* gmem_in, float* gmem_w,\n'
            '                          float* gmem_out) {\n'
            '  (void)desc; (void)gmem_w; (void)gmem_out;\n'
            f'  gmem_in[{off - 1}] = 1.5f;\n'
            + (f'  gmem_w[{off - 1}] = 2.5f;\n' if clash else "") + "}\n")
        exe = tmp_path / f"tb{int(clash)}"
        subprocess.run([*CXX, "-std=c++14", "-I.", "-Ihls_kernels", f"-DEFGEN_AXI_DEPTH={words}",
                        "efgen_cosim_tb.cpp", str(stub), "-o", str(exe)], cwd=hls, check=True)
        p = subprocess.run([str(exe)], cwd=hls, capture_output=True, text=True, timeout=60)
        assert p.returncode == 1 and expect in p.stdout, p.stdout
        assert "MISMATCH conv_y" in p.stdout           # the stand-in computes nothing


def test_cosim_case_exercises_the_array(projects):
    """The conv descriptor spans Tn+1 input and Tm+1 output channels of the design, with
    edge tiles; its image is small (co-simulation runs on it)."""
    for name, hls in projects.items():
        params = (hls / "efgen_params.h").read_text()
        tm = int(re.search(r"#define EFGEN_TM (\d+)", params).group(1))
        tn = int(re.search(r"#define EFGEN_TN (\d+)", params).group(1))
        text = (hls / "efgen_cosim_tb.cpp").read_text()
        conv = re.search(r"\{1, 5, 2, (\d+), 7, 7, (\d+), 7, 7, 3, 3, 1, 1, (\d+), (\d+), 1, 0,",
                         text)
        assert conv, text
        assert (int(conv[1]), int(conv[2])) == (tn + 1, tm + 1)
        assert 7 % int(conv[3]) and 7 % int(conv[4])           # edge tiles
        assert re.search(r"\{10, 0, 2, (\d+), 7, 7, \1, 7, 7,", text)   # BN FP
        assert _cosim_words(hls) * 4 < 100_000, name


def test_cosim_data_is_deterministic_and_listed(tmp_path):
    from efgen.flow import BUILD_STEPS

    net = load_net("lenet5")
    board = load_board("zcu102")
    design = schedule(Request(net, board, batch=2))
    a = write_hls(build_program(net, design), board, tmp_path / "a")
    b = write_hls(build_program(net, design), board, tmp_path / "b")
    assert a == b and {"cosim_in.bin", "cosim_ref.bin", "efgen_cosim_tb.cpp"} <= set(a)
    for f in a:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    hls_step = next(s for s in BUILD_STEPS if s.name == "hls")
    assert {"hls/cosim_in.bin", "hls/cosim_ref.bin"} <= set(hls_step.writes)
    readme = (ROOT / "README.md").read_text()
    for f in ("efgen_cosim_tb.cpp", "cosim_in.bin", "cosim_ref.bin", "EFGEN_AXI_DEPTH"):
        assert f in readme, f


def test_whole_step_testbench_runs_under_cxx14(tiny_build, tmp_path, run_cli):
    """efgen_tb.cpp (solution1's C-simulation) built as C++14 passes on the data of the
    build's csim step."""
    _need("g++")
    hls = tiny_build / "hls"
    code, _, _ = run_cli("build", "--board", "zcu102", "--net", "tiny", "--batch", "2",
                         "--tiles", "Tm=8,Tn=4", "-o", tiny_build, "--csim")
    assert code == 0
    exe = tmp_path / "tb"
    subprocess.run([*CXX, "-std=c++14", "-I.", "-Ihls_kernels", "efgen_tb.cpp", "efgen_host.cpp",
                    "efgen_top.cpp", "-o", str(exe)], cwd=hls, check=True)
    p = subprocess.run([str(exe)], cwd=hls, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and " 0 of " in p.stdout, p.stdout


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
