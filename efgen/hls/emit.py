"""Emit the Vitis HLS project of a Design into DIR/hls/ (Jinja templates in templates/hls,
building blocks copied from hls_kernels/).

Files: efgen_params.h, efgen_program.h (the descriptor table), efgen_top.cpp (the
kernel), efgen_host.cpp (the runtime of one training step), efgen_tb.cpp (the csim
testbench of a whole step), efgen_cosim_tb.cpp with cosim_in.bin and cosim_ref.bin (the
small co-simulation case, :mod:`efgen.hls.cosim_case`), run_hls.tcl, program.json
(memory map and descriptors, for tools and tests), and hls_kernels/*.h. Output is
deterministic: same Design (and request), same bytes.

The C++ is C++14 (what Vitis HLS 2022.2 to 2023.2 compile C-simulation with): float
literals are exact decimals (:func:`c_float`), never C++17 hex floats.

User strings (net and layer names) reach C++ only through :func:`c_text`, which keeps
letters, digits and ``_.:-`` and replaces everything else; they reach Tcl only through
:func:`tcl_text`, which escapes every character that Tcl could substitute.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
from fractions import Fraction
from pathlib import Path

import jinja2
import numpy as np

from efgen._version import __version__
from efgen.errors import EfgenError
from efgen.frontend.boards import Board, boards_dir
from efgen.hls.conv_job import tripcounts
from efgen.hls.cosim_case import CosimCase, cosim_case
from efgen.hls.desc import OPS, EfgenDesc
from efgen.hls.manifest import project_manifest, vector_params
from efgen.hls.program import Program
from efgen.resources import data_dir
from efgen.rtl.engine import ACC_DIST
from efgen.vivado.emit import HLS_VLNV

_SAFE = re.compile(r"[^A-Za-z0-9_.:\-]")
OP_NAMES = {v: k for k, v in OPS.items()}


def c_text(s: str, limit: int = 60) -> str:
    """A user string made safe for a C++ comment or string literal."""
    out = _SAFE.sub("_", str(s))[:limit]
    return out or "_"


def _f32_nearest(x: Fraction) -> np.float32:
    """The float32 nearest to the exact rational ``x`` (ties to even): how a C++
    compiler reads a decimal float literal with an ``f`` suffix."""
    with np.errstate(over="ignore"):
        guess = np.float32(float(x))        # float(Fraction) is correctly rounded
        if not np.isfinite(guess):
            return guess
        around = (np.nextafter(guess, np.float32(-np.inf)), guess,
                  np.nextafter(guess, np.float32(np.inf)))
    best = None
    for c in around:
        if not np.isfinite(c):
            continue
        dist = abs(Fraction(float(c)) - x)
        even = int(np.array(c, np.float32).view(np.uint32)) % 2 == 0
        key = (dist, not even)
        if best is None or key < best[0]:
            best = (key, c)
    return best[1]


def c_float(v: float, what: str = "value") -> str:
    """An exact float32 literal in decimal (C++14; hex floats are C++17): the shortest
    decimal that reads back as the same float32, checked bit for bit.

    Raises :class:`EfgenError` naming ``what`` for inf and nan (or a value float32
    cannot hold)."""
    with np.errstate(over="ignore", invalid="ignore"):
        f = np.float32(v)
    if not np.isfinite(f):
        raise EfgenError(f"{what} is {float(v)!r}, not a finite float32",
                         fix="descriptor floats come from --lr, --momentum and "
                             "--weight-decay: give finite values with |x| < 3.4e38")
    if f == 0:
        return "-0.0f" if np.signbit(f) else "0.0f"
    a = abs(float(f))
    if 1e-4 <= a < 1e7:
        text = np.format_float_positional(f, unique=True, trim="0")
    else:
        text = np.format_float_scientific(f, unique=True, trim="-")
    back = _f32_nearest(Fraction(text))
    if np.array(back, np.float32).view(np.uint32) != np.array(f, np.float32).view(np.uint32):
        raise AssertionError(f"float literal {text} does not read back as {float(f)!r}")
    return f"{text}f"


DESC_FLOATS = ("lr", "momentum", "weight_decay", "eps", "bn_momentum")


def desc_init(d: EfgenDesc, where: str = "descriptor") -> str:
    """The C++ aggregate initialiser of descriptor ``d`` (``where`` names it in errors)."""
    ints = [d.op, d.flags, d.batch, d.in_c, d.in_h, d.in_w, d.out_c, d.out_h, d.out_w,
            d.kh, d.kw, d.stride, d.pad, d.tr, d.tc, d.mc, d.order, d.n_src]
    a = ", ".join(f"{int(x)}L" for x in d.a)
    fl = ", ".join(c_float(getattr(d, f), f"{where} field {f}") for f in DESC_FLOATS)
    return "{" + ", ".join(str(int(i)) for i in ints) + ", {" + a + "}, " + fl + "}"


def desc_dict(d: EfgenDesc) -> dict:
    out = {}
    for name, _ in EfgenDesc._fields_:
        v = getattr(d, name)
        if name == "a":
            v = [int(x) for x in v]
        elif name == "op":
            v = OP_NAMES[int(v)]
        elif isinstance(v, float):
            v = float(np.float32(v))
        out[name] = v
    return out


def _env() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(data_dir("templates") / "hls")),
                              undefined=jinja2.StrictUndefined, trim_blocks=True,
                              lstrip_blocks=True, keep_trailing_newline=True,
                              autoescape=False)


TEMPLATES = ("efgen_params.h", "efgen_program.h", "efgen_top.cpp", "efgen_host.cpp",
             "efgen_tb.cpp", "efgen_cosim_tb.cpp", "run_hls.tcl")
# Written next to them (not templates): the small co-simulation's DRAM images.
COSIM_DATA = ("cosim_in.bin", "cosim_ref.bin")
# What run_hls.tcl's C-simulation reads; `efgen build` writes it only with the csim step
# (efgen/csim/csim.py, DramImage.write_tb_data): ResNet-20 at batch 32 is 130 MB a file.
CSIM_DATA = ("dram_in.bin", "dram_ref.bin", "labels.bin")
_TCL_SAFE = re.compile(r"[A-Za-z0-9 _.,:/=+@%-]")


def tcl_text(s: str) -> str:
    """A user string as the body of a Tcl double-quoted word, with nothing Tcl
    substitutes: printable ASCII outside letters, digits and `` _.,:/=+@%-`` becomes a
    ``\\u00XX`` escape (so the text reads back exactly), other characters ``\\uXXXX``
    when Tcl 8.5 can write them, and control characters (line breaks) ``?``, so the
    text stays on one line."""
    out = []
    for ch in str(s):
        o = ord(ch)
        if _TCL_SAFE.fullmatch(ch):
            out.append(ch)
        elif o < 32 or o == 127 or 0x80 <= o < 0xA0 or o > 0xFFFF:
            out.append("?")
        else:
            out.append(f"\\u{o:04x}")
    return "".join(out)


def shell_words(words) -> str:
    """Words joined as one shell command line (quoted where a shell needs it); control
    characters become ``?``."""
    clean = [re.sub(r"[\x00-\x1f\x7f-\x9f]", "?", str(w)) for w in words]
    return shlex.join(clean)


def default_request(prog: Program, board: Board) -> tuple[str, ...]:
    """The ``efgen build`` options that make this Design, as far as the Design and the
    board say (:func:`write_hls` gets the exact ones from the command line): catalogue
    board and net by name (a board file by its path), the batch, and the options the
    Design records."""
    d = prog.design
    src = Path(board.source) if board.source else None
    on_disk = src is not None and src.is_file()
    in_catalogue = on_disk and src.resolve().parent == boards_dir().resolve()
    words = ["build", "--board", board.name if in_catalogue or not on_disk else str(src),
             "--net", prog.net.name, "--batch", str(d.batch)]
    if abs(d.hw.clock_mhz - board.clock_mhz) > 1e-9:
        words += ["--clock", f"{d.hw.clock_mhz:g}"]
    if d.objective != "latency":
        words += ["--objective", d.objective]
    if d.hw.precision != "fp32":
        words += ["--precision", d.hw.precision]
    if d.train_last is not None:
        words += ["--train-last", str(d.train_last)]
    if not d.sgd_momentum:
        words += ["--no-momentum"]
    for flag, value, default in zip(("--lr", "--momentum", "--weight-decay"), prog.sgd,
                                    (0.01, 0.9, 5e-4)):
        if value != default:
            words += [flag, repr(float(value))]
    return tuple(words)


def check_desc_floats(prog: Program) -> None:
    """Every float of every descriptor is finite in float32 (one-line EfgenError
    naming the descriptor and field otherwise)."""
    for phase, steps in (("FP", prog.fp), ("BP/WU", prog.bp), ("drop", prog.drop),
                         ("filter", prog.filter),
                         ("SLU", prog.slu.zero if prog.slu is not None else [])):
        for i, s in enumerate(steps):
            for f in DESC_FLOATS:
                c_float(getattr(s.desc, f),
                        f"{phase} descriptor {i} ({c_text(s.layer)} {s.what}) field {f}")


def project_ctx(prog: Program, board: Board, request: tuple[str, ...] | None,
                ctx: dict) -> dict:
    """Template values of the project's flow: the small co-simulation case, the AXI
    interface settings and the commands that rewrite missing testbench data."""
    case = cosim_case(prog.design, ctx["max_c"], ctx["max_tr"], ctx["max_tc"])
    req = tuple(request) if request else default_request(prog, board)
    return {
        "cosim_case": case,
        "axi_bytes": board.axi.width_bits // 8,
        "cosim_words": case.words,
        "cosim_steps": [{"init": desc_init(dd, f"co-simulation descriptor {i}"),
                         "note": c_text(note, 120)}
                        for i, (note, dd) in enumerate(case.steps)],
        "cosim_checks": [{"name": r.name, "offset": r.offset, "words": r.words}
                         for r in case.checks()],
        "csim_bytes": dict(zip(CSIM_DATA, (4 * prog.words, 4 * prog.words,
                                           4 * prog.design.batch))),
        "cosim_bytes": dict(zip(COSIM_DATA, (4 * case.words, 4 * case.words))),
        "csim_mb": f"{4 * prog.words / 1e6:.1f}",
        # The command that rewrites the build, without its output folder: run_hls.tcl
        # adds "-o <its parent folder>" when it runs (so the same build in another
        # folder is the same bytes), then --csim for the C-simulation data.
        "rebuild": tcl_text("efgen " + shell_words(req)),
        "csim_flag": "" if req[0] == "csim" else " --csim",
    }


def checks(prog: Program) -> list[dict]:
    """Regions the testbench compares: those holding golden tensors (aliases once)."""
    out, seen = [], set()
    for r in prog.regions.values():
        if not r.traces or r.offset in seen:
            continue
        seen.add(r.offset)
        out.append({"name": c_text(r.name), "offset": r.offset, "words": r.words})
    return out


def render(prog: Program, board: Board, request: tuple[str, ...] | None = None
           ) -> dict[str, str]:
    """File name -> text of every generated file (not the copied kernels, not the
    co-simulation data: :func:`write_hls`). ``request``: see :func:`write_hls`."""
    return _render(prog, board, request)[0]


def _render(prog: Program, board: Board, request: tuple[str, ...] | None
            ) -> tuple[dict[str, str], CosimCase]:
    from efgen.hls.eif import filter_net

    check_desc_floats(prog)
    d = prog.design
    hw = d.hw
    net = prog.net
    conv_steps = [s for s in prog.filter + prog.fp + prog.bp if s.desc.op in (1, 2, 3)]
    nets = [net] + ([filter_net(prog)] if prog.filter else [])
    ctx = {
        "version": __version__,
        "net_comment": c_text(net.name),
        "board": c_text(board.name),
        "part": c_text(board.part),
        "hw": hw,
        "batch": prog.main_batch,
        "in_batch": d.batch,
        "mem_words": prog.words,
        "max_c": max(max(max(l.out_shape[0] for l in n if l.out_shape), n.input_shape[0],
                         max(l.in_shape[0] for l in n if l.in_shapes)) for n in nets),
        "max_tr": max([s.desc.tr for s in conv_steps] or [1]),
        "max_tc": max([s.desc.tc for s in conv_steps] or [1]),
        "max_k": max([s.desc.kh for s in conv_steps] or [1]),
        "classes": net.num_classes,
        "logits": prog.regions[prog.logits].offset,
        "dlogits": prog.regions[prog.dlogits].offset,
        "fp": [{"init": desc_init(s.desc), "note": f"{c_text(s.layer)} {s.what}"} for s in prog.fp],
        "bp": [{"init": desc_init(s.desc), "note": f"{c_text(s.layer)} {s.what}"} for s in prog.bp],
        "drop": [{"init": desc_init(s.desc), "note": f"{c_text(s.layer)} {s.what}"}
                 for s in prog.drop],
        "filter": [{"init": desc_init(s.desc), "note": f"{c_text(s.layer)} {s.what}"}
                   for s in prog.filter],
        "slu": _slu_ctx(prog),
        "eif": ({"labels": prog.regions["eif:labels"].offset,
                 "keep": prog.regions["eif:keep"].offset} if prog.filter else None),
        "checks": checks(prog),
        "period_ns": f"{1000.0 / hw.clock_mhz:.3f}",
        "axi_bits": board.axi.width_bits,
        "ip_vlnv": HLS_VLNV.split(":"),         # what vivado/block_design.tcl places
        "acc_dist": ACC_DIST,
        "conv_bounds": sorted(tripcounts([s.desc for s in conv_steps], hw.tm, hw.tn, hw.lanes,
                                         hw.wbuf_depth, ACC_DIST, hw.p, hw.pack).items()),
    }
    ctx.update(project_ctx(prog, board, request, ctx))
    ctx["vec_params"] = vector_params(prog, ctx["max_c"])
    env = _env()
    files = {}
    for name in TEMPLATES:
        files[name] = env.get_template(f"{name}.j2").render(**ctx)
    files["program.json"] = json.dumps(program_json(prog), indent=1, sort_keys=True) + "\n"
    vp = ctx["vec_params"]
    man = project_manifest(hw, board, dict(ctx["conv_bounds"]), ACC_DIST, ctx["max_c"],
                           vp["EFGEN_MAX_W"], vp["EFGEN_VEC_CHUNK"])
    files["manifest.json"] = json.dumps(man, indent=1, sort_keys=True) + "\n"
    return files, ctx["cosim_case"]


def _slu_ctx(prog: Program) -> dict | None:
    """SLU (efgen.hls.slu): the run-flag regions, each step's gated block (-1: none) and
    the updates of a block no image ran."""
    p = prog.slu
    if p is None:
        return None
    return {"run": [prog.regions[r].offset for r in p.run],
            "blocks": [c_text(n) for n in p.blocks],
            "fp_block": [s.block for s in prog.fp], "bp_block": [s.block for s in prog.bp],
            "zero": [{"init": desc_init(s.desc), "note": f"{c_text(s.layer)} {s.what}",
                      "block": s.block} for s in p.zero]}


def program_json(prog: Program) -> dict:
    regions = []
    for r in prog.regions.values():
        regions.append({"name": r.name, "kind": r.kind, "shape": list(r.shape),
                        "offset": r.offset, "words": r.words,
                        "alias_of": getattr(r, "alias_of", None),
                        "traces": [{"key": t.key, "shape": list(t.shape), "start": t.start}
                                   for t in r.traces],
                        # a fused design's side records: words the host writes as they are
                        **({"data_u32": [int(w) for w in r.data.view("<u4")]}
                           if r.init == "data" else {})})
    steps = lambda ss: [{"layer": s.layer, "what": s.what, "desc": desc_dict(s.desc)}  # noqa: E731
                        for s in ss]
    return {"efgen_version": __version__, "net": prog.net.name, "mem_words": prog.words,
            "lanes": prog.design.hw.lanes, "tm": prog.design.hw.tm, "tn": prog.design.hw.tn,
            "logits": prog.logits, "dlogits": prog.dlogits, "regions": regions,
            "fp": steps(prog.fp), "bp": steps(prog.bp), "not_in_dram": prog.not_in_dram,
            **({"drop": steps(prog.drop)} if prog.drop else {}),
            **({"filter": steps(prog.filter)} if prog.filter else {}),
            **({"slu": {"blocks": prog.slu.blocks, "run": prog.slu.run,
                        "fp_block": [s.block for s in prog.fp],
                        "bp_block": [s.block for s in prog.bp],
                        "zero": [dict(b, block=s.block) for b, s in
                                 zip(steps(prog.slu.zero), prog.slu.zero)]}}
               if prog.slu is not None else {}),
            # a fused design: what the C++ fuses, against the model's plan
            **({"fusion": prog.fusion} if prog.fusion is not None else {})}


def write_hls(prog: Program, board: Board, out_dir: Path,
              request: tuple[str, ...] | None = None) -> list[str]:
    """Write the HLS project into ``out_dir`` (created); returns the file names.

    ``request``: the efgen command that made this Design, as words without ``-o``
    (``("build", "--board", "zcu102", "--net", "resnet20", "--batch", "32", ...)``);
    run_hls.tcl prints it, completed with the output folder, as the fix when testbench
    data is missing. Default: :func:`default_request`.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files, case = _render(prog, board, request)
    for name, text in files.items():
        (out_dir / name).write_text(text)
    case.image_in.astype("<f4").tofile(out_dir / "cosim_in.bin")
    case.image_ref.astype("<f4").tofile(out_dir / "cosim_ref.bin")
    kdir = out_dir / "hls_kernels"
    kdir.mkdir(exist_ok=True)
    for h in sorted(data_dir("hls_kernels").glob("*.h")):
        shutil.copyfile(h, kdir / h.name)
    return sorted([*files, *COSIM_DATA]) + [f"hls_kernels/{h.name}"
                                            for h in sorted(kdir.glob("*.h"))]
