"""Tests for the board catalogue (configs/boards/*.yaml) and efgen/frontend/boards.py."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

from efgen.errors import EfgenError
from efgen.frontend.boards import (
    Board,
    board_from_mapping,
    boards_dir,
    boards_table,
    list_boards,
    load_board,
)
from efgen.rtl.clocks import default_clock_mhz

# board: (part, family, dsp_type, DSP, BRAM18, URAM, LUT, FF, DDR peak GB/s, AXI width)
EXPECTED = {
    "zcu102": ("xczu9eg-ffvb1156-2-e", "zynq-ultrascale+", "DSP48E2",
               2520, 1824, 0, 274080, 548160, 17.07, 128),
    "zcu104": ("xczu7ev-ffvc1156-2-e", "zynq-ultrascale+", "DSP48E2",
               1728, 624, 96, 230400, 460800, 17.07, 128),
    "kv260": ("xck26-sfvc784-2LV-c", "zynq-ultrascale+", "DSP48E2",
              1248, 288, 64, 117120, 234240, 19.2, 128),
    "ultra96v2": ("xczu3eg-sbva484-1-i", "zynq-ultrascale+", "DSP48E2",
                  360, 432, 0, 70560, 141120, 4.26, 128),
    "pynq-z2": ("xc7z020clg400-1", "zynq-7000", "DSP48E1",
                220, 280, 0, 53200, 106400, 2.13, 64),
    "zedboard": ("xc7z020clg484-1", "zynq-7000", "DSP48E1",
                 220, 280, 0, 53200, 106400, 4.26, 64),
}

RESOURCES = ("dsp", "bram18", "uram", "lut", "ff")


# --------------------------------------------------------------------------- catalogue

def test_list_boards_is_the_sorted_catalogue():
    assert list_boards() == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_catalogue_board_figures(name):
    part, family, dsp_type, dsp, bram18, uram, lut, ff, peak, axi_w = EXPECTED[name]
    b = load_board(name)
    assert isinstance(b, Board)
    assert b.name == name
    assert b.part == part
    assert b.family == family
    assert b.dsp_type == dsp_type
    assert b.resources.dsp == dsp
    assert b.resources.bram18 == bram18
    assert b.resources.uram == uram
    assert b.resources.lut == lut
    assert b.resources.ff == ff
    assert b.ddr.peak_gbps == pytest.approx(peak)
    assert b.axi.hp_ports == 4
    assert b.axi.width_bits == axi_w
    assert b.ddr.description
    assert b.ddr.width_bits / 8 * b.ddr.rate_mts / 1000 == pytest.approx(peak, rel=0.01)
    # the default clock is derived from the timing estimate (efgen/rtl/clocks.py; the
    # derivation itself is re-done independently in tests/test_clock_power.py)
    assert b.clock_mhz == default_clock_mhz(family, part)
    assert b.power.placeholder is True      # no sourced static power: still a placeholder
    assert Path(b.source) == (boards_dir() / f"{name}.yaml").resolve()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_catalogue_caps_default_to_080(name):
    b = load_board(name)
    for r in RESOURCES:
        assert b.caps[r] == pytest.approx(0.80)
        total = b.resources[r]
        assert b.cap(r) == (total * 4) // 5  # floor(total x 0.80), exactly
    assert b.capped().dsp == b.cap("dsp")


def test_cap_is_exact_floor():
    b = load_board("zcu102")
    assert b.cap("dsp") == 2016
    assert b.cap("bram18") == 1459          # 1459.2
    assert b.cap("uram") == 0
    assert load_board("zcu104").cap("bram18") == 499   # 499.2, float gives 499.20000000000005
    assert load_board("kv260").cap("uram") == 51       # 51.2


def test_cap_unknown_resource():
    with pytest.raises(EfgenError, match="did you mean 'dsp'"):
        load_board("zcu102").cap("dsps")


def test_load_by_name_is_case_insensitive_and_by_path(tmp_path):
    assert load_board("ZCU102").name == "zcu102"
    path = boards_dir() / "kv260.yaml"
    assert load_board(str(path)) == load_board("kv260")
    copy_path = tmp_path / "mine.yaml"
    copy_path.write_text(path.read_text())
    b = load_board(copy_path)
    assert b.name == "kv260"  # outside the catalogue the name need not match the file
    assert b.source == str(copy_path.resolve())


def test_boards_table():
    table = boards_table()
    lines = table.splitlines()
    assert lines[0].split() == ["name", "part", "family", "DSP", "BRAM18", "URAM", "LUT",
                                "FF", "DDR", "GB/s", "clock", "MHz"]
    assert len(lines) == 2 + len(EXPECTED)
    for name, exp in EXPECTED.items():
        row = next(line for line in lines if line.split()[0] == name)
        cells = row.split()
        assert cells[1] == exp[0] and cells[2] == exp[1]
        assert [int(c) for c in cells[3:8]] == list(exp[3:8])
        assert float(cells[8]) == pytest.approx(exp[8])
        assert cells[9] == f"{load_board(name).clock_mhz:g}"
    # aligned: every row has the clock column ending at the same place
    assert len({len(line) for line in lines[2:]}) == 1


NUMBER_LINE = re.compile(r"^\s*[A-Za-z_][\w-]*:\s*[-+]?(\d|\.\d)")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_figure_has_a_source_comment(name):
    text = (boards_dir() / f"{name}.yaml").read_text()
    lines = text.splitlines()
    figures = [line for line in lines if NUMBER_LINE.match(line)]
    assert len(figures) >= 5 + 4 + 2 + 1  # resources, ddr numbers, axi, clock
    for line in figures:
        assert "#" in line, f"{name}.yaml: figure without a source comment: {line!r}"
    for key in ("part", "family", "dsp_type", "type"):
        line = next(ln for ln in lines if ln.strip().startswith(f"{key}:"))
        assert "#" in line, f"{name}.yaml: {key} without a source comment"
    # the power section is flagged and explained as a placeholder
    assert "placeholder: true" in text
    assert "NOT measured" in text


# --------------------------------------------------------------------------- validation

def _base() -> dict:
    with open(boards_dir() / "zcu102.yaml") as fh:
        return yaml.safe_load(fh)


def _write(tmp_path: Path, data, name: str = "bad.yaml") -> Path:
    path = tmp_path / name
    if isinstance(data, str):
        path.write_text(data)
    else:
        path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _error(path: Path) -> str:
    with pytest.raises(EfgenError) as info:
        load_board(str(path))
    msg = str(info.value)
    assert str(path) in msg, msg          # names the file
    assert "\n" not in msg
    assert info.value.fix, msg            # says how to fix it
    return msg


def _mutated(tmp_path: Path, dotted: str, value, *, delete: bool = False) -> str:
    data = copy.deepcopy(_base())
    *parents, last = dotted.split(".")
    node = data
    for p in parents:
        node = node[p]
    if delete:
        del node[last]
    else:
        node[last] = value
    return _error(_write(tmp_path, data))


def test_valid_copy_loads(tmp_path):
    b = load_board(str(_write(tmp_path, _base(), "ok.yaml")))
    assert b.resources.dsp == 2520


def test_yaml_syntax_error_has_line(tmp_path):
    path = _write(tmp_path, "name: x\nresources:\n  dsp: [1, 2\n  lut: 3\n")
    msg = _error(path)
    assert "YAML syntax error" in msg
    assert re.search(r"line \d+", msg)


def test_tabs_are_explained(tmp_path):
    path = _write(tmp_path, "name: x\nresources:\n\tdsp: 1\n")
    msg = _error(path)
    assert "line 3" in msg and "tabs" in msg


def test_duplicate_key(tmp_path):
    text = (boards_dir() / "zcu102.yaml").read_text().replace(
        "  dsp: 2520", "  dsp: 2520\n  dsp: 2000", 1)
    msg = _error(_write(tmp_path, text))
    assert "duplicate key 'dsp'" in msg and "line" in msg


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", "42\n", ""])
def test_top_level_not_a_mapping(tmp_path, text):
    msg = _error(_write(tmp_path, text))
    assert "top level" in msg or "empty" in msg


@pytest.mark.parametrize("key", ["name", "part", "family", "dsp_type", "clock_mhz",
                                 "resources", "ddr", "axi", "power",
                                 "resources.dsp", "resources.bram18", "resources.uram",
                                 "resources.lut", "resources.ff", "ddr.peak_gbps",
                                 "ddr.description", "axi.hp_ports", "axi.width_bits",
                                 "power.placeholder", "power.static_w"])
def test_missing_key(tmp_path, key):
    msg = _mutated(tmp_path, key, None, delete=True)
    assert "missing key" in msg
    assert key in msg
    assert "add" in msg


def test_missing_key_points_at_section_line(tmp_path):
    text = (boards_dir() / "zcu102.yaml").read_text()
    text = "\n".join(ln for ln in text.splitlines() if not ln.strip().startswith("lut:"))
    msg = _error(_write(tmp_path, text))
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if ln.startswith("resources:"))
    assert f"resources.lut (line {line})" in msg


def test_caps_section_and_keys_are_optional(tmp_path):
    data = _base()
    del data["caps"]
    b = load_board(str(_write(tmp_path, data, "nocaps.yaml")))
    assert all(b.caps[r] == 0.80 for r in RESOURCES)
    data["caps"] = {"dsp": 0.5}
    b = load_board(str(_write(tmp_path, data, "somecaps.yaml")))
    assert b.caps.dsp == 0.5 and b.caps.lut == 0.80
    assert b.cap("dsp") == 1260
    data["caps"] = None   # 'caps:' with everything commented out
    b = load_board(str(_write(tmp_path, data, "emptycaps.yaml")))
    assert b.caps.ff == 0.80


def test_unknown_key_suggests_closest(tmp_path):
    data = _base()
    data["resources"]["dps"] = data["resources"].pop("dsp")
    msg = _error(_write(tmp_path, data))
    assert "unknown key 'dps'" in msg
    assert "resources.dps" in msg
    assert "did you mean 'dsp'" in msg


def test_unknown_top_level_key_suggests_closest(tmp_path):
    data = _base()
    data["clock_mz"] = data.pop("clock_mhz")
    msg = _error(_write(tmp_path, data))
    assert "unknown key 'clock_mz'" in msg and "did you mean 'clock_mhz'" in msg


@pytest.mark.parametrize("key", ["pl_dynamic_w_max", "ddr_w"])
def test_retired_power_keys_say_what_replaced_them(tmp_path, key):
    data = _base()
    data["power"][key] = 8.0
    msg = _error(_write(tmp_path, data))
    assert f"key '{key}' is no longer read" in msg and f"power.{key}" in msg
    assert "delete it" in msg and "coefficients.yaml energy" in msg


def test_key_in_wrong_section_is_explained(tmp_path):
    data = _base()
    data["dsp"] = 10
    msg = _error(_write(tmp_path, data))
    assert "unknown key 'dsp'" in msg and "belongs under resources" in msg


def test_unknown_key_without_close_match_lists_valid_keys(tmp_path):
    data = _base()
    data["axi"]["zzzzzz"] = 1
    msg = _error(_write(tmp_path, data))
    assert "axi.zzzzzz" in msg and "hp_ports, width_bits" in msg


@pytest.mark.parametrize("key, value, words", [
    ("resources.dsp", "2520", ["whole number", "string"]),
    ("resources.dsp", "2,520", ["whole number", "no thousands separators"]),
    ("resources.dsp", True, ["whole number", "boolean"]),
    ("resources.lut", 2520.5, ["whole number"]),
    ("resources.ff", 548160.0, ["without a decimal point"]),
    ("resources.bram18", [1, 2], ["list"]),
    ("resources.uram", None, ["empty"]),
    ("axi.hp_ports", False, ["boolean"]),
    ("clock_mhz", "100MHz", ["must be a number", "no units"]),
    ("clock_mhz", True, ["boolean"]),
    ("ddr.peak_gbps", "fast", ["must be a number"]),
    ("ddr.peak_gbps", float("nan"), ["finite"]),
    ("caps.dsp", "80%", ["must be a number"]),
    ("caps.lut", True, ["boolean"]),
    ("power.placeholder", "yes please", ["true or false"]),
    ("power.static_w", True, ["boolean"]),
    ("name", 102, ["must be text"]),
    ("part", None, ["must be text"]),
    ("part", "  ", ["empty"]),
    ("name", "my board", ["not a valid board name"]),
    ("resources", 5, ["must be a mapping"]),
    ("ddr", [1, 2], ["must be a mapping"]),
])
def test_wrong_type(tmp_path, key, value, words):
    msg = _mutated(tmp_path, key, value)
    assert key in msg
    for w in words:
        assert w in msg, msg


@pytest.mark.parametrize("key, value", [
    ("resources.dsp", 0), ("resources.dsp", -1), ("resources.bram18", 0),
    ("resources.lut", -53200), ("resources.ff", 0), ("resources.uram", -1),
    ("ddr.peak_gbps", 0), ("ddr.peak_gbps", -17.07), ("ddr.width_bits", 0),
    ("ddr.rate_mts", -2133), ("axi.hp_ports", 0), ("axi.width_bits", -128),
    ("clock_mhz", 0), ("clock_mhz", -100), ("power.static_w", -1.0),
])
def test_zero_or_negative_sizes(tmp_path, key, value):
    msg = _mutated(tmp_path, key, value)
    assert key in msg
    assert "must be positive" in msg or "must not be negative" in msg


def test_zero_uram_and_zero_power_are_allowed(tmp_path):
    data = _base()
    data["resources"]["uram"] = 0
    data["power"]["static_w"] = 0
    assert load_board(str(_write(tmp_path, data, "ok.yaml"))).power.static_w == 0.0


def test_clock_in_hz_is_caught(tmp_path):
    msg = _mutated(tmp_path, "clock_mhz", 100_000_000)
    assert "clock_mhz" in msg and "implausibly large" in msg


@pytest.mark.parametrize("value", [0, 0.0, -0.1, 1.01, 80, 100])
def test_cap_outside_unit_interval(tmp_path, value):
    msg = _mutated(tmp_path, "caps.bram18", value)
    assert "caps.bram18" in msg and "outside (0, 1]" in msg


def test_cap_percent_hint(tmp_path):
    msg = _mutated(tmp_path, "caps.dsp", 80)
    assert "did you mean 0.8?" in msg


def test_cap_of_one_is_allowed(tmp_path):
    data = _base()
    data["caps"]["dsp"] = 1
    b = load_board(str(_write(tmp_path, data, "ok.yaml")))
    assert b.cap("dsp") == 2520


def test_unknown_family_suggests(tmp_path):
    msg = _mutated(tmp_path, "family", "zynq-ultrascale")
    assert "family" in msg and "did you mean 'zynq-ultrascale+'" in msg


def test_dsp_type_must_match_family(tmp_path):
    msg = _mutated(tmp_path, "dsp_type", "DSP48E1")
    assert "dsp_type" in msg and "DSP48E2" in msg


def test_zynq7000_has_no_uram_and_64bit_hp(tmp_path):
    data = _base()
    data["family"], data["dsp_type"] = "zynq-7000", "DSP48E1"
    data["resources"]["uram"] = 4
    msg = _error(_write(tmp_path, data))
    assert "resources.uram" in msg and "no UltraRAM" in msg
    data["resources"]["uram"] = 0
    msg = _error(_write(tmp_path, data))
    assert "axi.width_bits" in msg and "32, 64" in msg


def test_ddr_peak_cannot_exceed_bus(tmp_path):
    msg = _mutated(tmp_path, "ddr.peak_gbps", 34.0)
    assert "ddr.peak_gbps" in msg and "17.06 GB/s" in msg


def test_ddr_width_multiple_of_8(tmp_path):
    msg = _mutated(tmp_path, "ddr.width_bits", 60)
    assert "ddr.width_bits" in msg and "multiple of 8" in msg


def test_error_message_carries_line_of_the_key(tmp_path):
    text = (boards_dir() / "zcu102.yaml").read_text().replace("  dsp: 2520", "  dsp: lots")
    msg = _error(_write(tmp_path, text))
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if "dsp: lots" in ln)
    assert f"resources.dsp (line {line})" in msg


def test_catalogue_name_must_match_file():
    data = _base()
    with pytest.raises(EfgenError, match="does not match the file name 'zcu104.yaml'"):
        board_from_mapping(data, file="configs/boards/zcu104.yaml", catalogue_stem="zcu104")


# --------------------------------------------------------------------------- lookup errors

def test_unknown_board_lists_valid_names():
    with pytest.raises(EfgenError) as info:
        load_board("zcu106")
    msg = str(info.value)
    assert "unknown board 'zcu106'" in msg
    for name in EXPECTED:
        assert name in msg
    assert "did you mean" in msg


def test_unknown_board_without_close_match():
    with pytest.raises(EfgenError) as info:
        load_board("arty")
    msg = str(info.value)
    assert "unknown board 'arty'" in msg and "zedboard" in msg and "path" in msg


def test_missing_board_file(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(EfgenError) as info:
        load_board(str(path))
    assert "not found" in str(info.value) and str(path) in str(info.value)


def test_directory_instead_of_file(tmp_path):
    d = tmp_path / "dir.yaml"
    d.mkdir()
    with pytest.raises(EfgenError, match="directory"):
        load_board(str(d))


def test_non_utf8_file(tmp_path):
    path = tmp_path / "bin.yaml"
    path.write_bytes(b"name: \xff\xfe\n")
    msg = _error(path)
    assert "UTF-8" in msg


def test_yaml_boolean_key_is_explained(tmp_path):
    text = (boards_dir() / "zcu102.yaml").read_text() + "on: 3\n"
    msg = _error(_write(tmp_path, text))
    assert "unknown key 'true'" in msg and "quote it" in msg
