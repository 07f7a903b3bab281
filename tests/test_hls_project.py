"""The generated Vitis HLS project as Vitis would run it, without Vitis:

* every C++ file compiles warning-free under g++ -std=c++14 (what Vitis HLS 2022.2 to
  2023.2 compile C-simulation with) and -std=c++17;
* float literals are exact decimals (no C++17 hex floats) that read back bit for bit.
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from efgen.errors import EfgenError
from efgen.frontend import load_net
from efgen.frontend.boards import load_board
from efgen.hls.emit import _f32_nearest, c_float, render, write_hls
from efgen.hls.program import build_program
from efgen.model.schedule import Request, schedule

CXX = ["g++", "-O2", "-Wall", "-Wextra", "-Werror", "-ffp-contract=off"]
NETS = {"tiny": 2, "lenet5": 2, "resnet20": 32}     # net -> batch


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
    return out


# ---------------------------------------------------------------- C++14 / C++17

@pytest.mark.parametrize("std", ["c++14", "c++17"])
@pytest.mark.parametrize("name", list(NETS))
def test_project_compiles_warning_free(projects, name, std, tmp_path):
    """Each file as Vitis compiles it (-I. -Ihls_kernels), then the whole-step testbench
    linked with the host and the kernel."""
    _need("g++")
    hls = projects[name]
    objs = []
    for src in ("efgen_top.cpp", "efgen_host.cpp", "efgen_tb.cpp"):
        obj = tmp_path / f"{src}.o"
        proc = subprocess.run([*CXX, f"-std={std}", "-I.", "-Ihls_kernels", "-c", src,
                               "-o", str(obj)], cwd=hls, capture_output=True, text=True)
        assert proc.returncode == 0, f"{src}: {proc.stderr[:2000]}"
        assert proc.stderr == "", proc.stderr[:2000]      # not even a note
        objs.append(obj)
    subprocess.run(["g++", *map(str, objs), "-o", str(tmp_path / "tb")], check=True)


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


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
