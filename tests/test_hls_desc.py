"""The Python descriptor mirror has the C++ struct's exact layout."""

import ctypes
import subprocess

from efgen.csim.cc import hls_kernels_dir
from efgen.hls.desc import FIELD_NAMES, OPS, EfgenDesc


def test_offsets_match_cpp(tmp_path):
    src = tmp_path / "off.cpp"
    lines = ['#include <cstdio>', '#include <cstddef>', '#include "efgen_desc.h"', "int main() {",
             '  std::printf("%zu\\n", sizeof(EfgenDesc));']
    lines += [f'  std::printf("%zu\\n", offsetof(EfgenDesc, {f}));' for f in FIELD_NAMES]
    lines += ["  return 0;", "}"]
    src.write_text("\n".join(lines) + "\n")
    exe = tmp_path / "off"
    subprocess.run(["g++", "-std=c++17", "-Wall", "-Wextra", "-Werror", f"-I{hls_kernels_dir()}",
                    str(src), "-o", str(exe)], check=True)
    out = [int(x) for x in subprocess.run([str(exe)], capture_output=True, text=True,
                                          check=True).stdout.split()]
    assert out[0] == ctypes.sizeof(EfgenDesc)
    assert out[1:] == [getattr(EfgenDesc, f).offset for f in FIELD_NAMES]


def test_op_codes_match_cpp():
    text = (hls_kernels_dir() / "efgen_desc.h").read_text()
    for name, code in OPS.items():
        assert f"EFGEN_OP_{name} = {code}," in text, name
