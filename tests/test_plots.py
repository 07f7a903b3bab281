"""Plots (efgen/report/plots.py): valid PNGs, no software/date metadata, byte-identical reruns."""

from __future__ import annotations

import struct
import zlib

import pytest

from efgen.report import plots

PNG_SIG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def tiny_eval():
    from efgen.frontend import load_net
    from efgen.frontend.boards import load_board
    from efgen.model.evaluate import evaluate_design
    from efgen.model.schedule import Request, schedule

    net, board = load_net("tiny"), load_board("zcu102")
    design = schedule(Request(net, board, batch=4))
    return design, board, evaluate_design(net, design, board)["rows"]


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, body) of every PNG chunk; checks the CRCs."""
    assert data[:8] == PNG_SIG
    pos, out = 8, []
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        (crc,) = struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])
        assert zlib.crc32(kind + body) == crc
        out.append((kind, body))
        pos += 12 + n
    return out


def _check_png(path, size=None) -> bytes:
    data = path.read_bytes()
    chunks = _chunks(data)
    assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND"
    w, h = struct.unpack(">II", chunks[0][1][:8])
    if size:
        assert (w, h) == size
    for kind, body in chunks:
        assert kind not in (b"tIME",)
        if kind in (b"tEXt", b"iTXt", b"zTXt"):
            assert not body.startswith((b"Software", b"Creation Time", b"Date"))
    return data


def _twice(fn, tmp_path, name):
    a, b = tmp_path / f"a-{name}.png", tmp_path / f"b-{name}.png"
    fn(a)
    fn(b)
    return a, b


def test_layer_times(tiny_eval, tmp_path):
    design, _, rows = tiny_eval
    a, b = _twice(lambda p: plots.plot_layer_times(rows, p, "tiny: cycles per layer"),
                  tmp_path, "layers")
    assert _check_png(a) == _check_png(b)
    c = tmp_path / "ms.png"
    plots.plot_layer_times(rows, c, "tiny: ms per layer", clock_mhz=design.hw.clock_mhz)
    assert _check_png(c) != a.read_bytes()


def test_roofline(tiny_eval, tmp_path):
    design, board, rows = tiny_eval
    bw = plots.memory_roof_gbps(design.hw, board.ddr.peak_gbps)
    a, b = _twice(lambda p: plots.plot_roofline(rows, design.hw, bw, p, "tiny roofline"),
                  tmp_path, "roof")
    assert _check_png(a, (800, 600)) == _check_png(b)


def test_memory_roof_is_the_smaller_of_ddr_and_the_ports():
    from efgen.design import HwParams

    hw = HwParams(precision="fp32", clock_mhz=100.0, ports=3, port_words=4)
    assert plots.memory_roof_gbps(hw, 17.07) == pytest.approx(4.8)    # 3 x 4 x 4 B x 100 MHz
    assert plots.memory_roof_gbps(hw, 2.13) == 2.13
    assert plots.memory_roof_gbps(HwParams(precision="int8", clock_mhz=100.0, ports=3,
                                           port_words=16), 17.07) == pytest.approx(4.8)


def test_pareto(tmp_path):
    pts = [{"index": i, "dsp": 10 * (i % 7 + 1), "images_per_s": (i * 37 % 11) + 1.0,
            "board": "ab"[i % 2]} for i in range(30)]
    mask = [p["images_per_s"] >= 11.0 for p in pts]
    for kw in ({}, {"color_by": "board"}, {"logx": True, "logy": False}):
        a, b = _twice(lambda p: plots.plot_pareto(pts, "dsp", "images_per_s", p, "front",
                                                  mask, **kw), tmp_path, "pareto")
        assert _check_png(a, (800, 600)) == _check_png(b)
    with pytest.raises(ValueError):
        plots.plot_pareto(pts, "dsp", "images_per_s", tmp_path / "x.png", "t", mask[:-1])


def test_empty_inputs_still_give_a_png(tmp_path):
    plots.plot_pareto([], "dsp", "images_per_s", tmp_path / "e.png", "nothing fits", [])
    plots.plot_layer_times([], tmp_path / "l.png", "no rows")
    _check_png(tmp_path / "e.png")
    _check_png(tmp_path / "l.png")


def test_user_rcparams_do_not_change_the_bytes(tiny_eval, tmp_path):
    import matplotlib

    _, _, rows = tiny_eval
    plots.plot_layer_times(rows, tmp_path / "a.png", "t")
    with matplotlib.rc_context({"axes.facecolor": "red", "font.size": 20}):
        plots.plot_layer_times(rows, tmp_path / "b.png", "t")
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
