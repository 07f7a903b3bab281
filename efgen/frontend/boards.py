"""Board catalogue: what each FPGA board offers to a generated accelerator.

One YAML file per board lives in ``configs/boards/<name>.yaml``; :func:`load_board` also
accepts a path to any board file written to the same schema. Every figure in a catalogue
file carries its source (data sheet, user guide or "efgen policy") as a comment beside it.

Schema (all keys are required unless marked optional)::

    name: zcu102                  # board name; for catalogue files it equals the file stem
    part: xczu9eg-ffvb1156-2-e    # full Xilinx part number
    family: zynq-ultrascale+      # zynq-ultrascale+ | zynq-7000
    dsp_type: DSP48E2             # DSP48E2 (UltraScale+) | DSP48E1 (7-series); must match family
    resources:                    # device totals (whole numbers)
      dsp: 2520                   #   DSP slices                          > 0
      bram18: 1824                #   18 Kb block RAMs (one RAMB36 = 2)   > 0
      uram: 0                     #   288 Kb UltraRAM blocks              >= 0 (0 on zynq-7000)
      lut: 274080                 #   CLB LUTs                            > 0
      ff: 548160                  #   CLB flip-flops                      > 0
    ddr:                          # PS-side DRAM
      type: DDR4                  #   memory type (free text, e.g. DDR4, LPDDR4, DDR3)
      width_bits: 64              #   data bus width in bits, multiple of 8
      rate_mts: 2133              #   transfer rate in MT/s
      peak_gbps: 17.07            #   theoretical peak in GB/s; may not exceed width/8 x rate
      description: "..."          #   free text: size, type, width, rate
    axi:                          # PL-to-PS high-performance AXI ports used for DMA
      hp_ports: 4                 #   number of S_AXI_HP ports (HPC ports not counted)
      width_bits: 128             #   data width per port: 32/64/128 (US+), 32/64 (zynq-7000)
    clock_mhz: 100                # default PL clock in MHz, 0 < f <= 1000
    clock_basis: "..."            # optional: where the default clock comes from (free text;
                                  #   efgen's report.md quotes it)
    caps:                         # optional: utilisation caps, fractions in (0, 1]
      dsp: 0.80                   #   each key optional, default 0.80
      bram18: 0.80
      uram: 0.80
      lut: 0.80
      ff: 0.80
    power:                        # the board's own power figure (efgen/model/energy.py prices PL
                                  #   dynamic and DRAM energy from configs/model/coefficients.yaml)
      placeholder: true           #   true while static_w is not sourced
      static_w: 3.5               #   PS + PL static power, W                     >= 0

The file is validated *before* any object is built. Every problem (YAML syntax, wrong
top level, missing/unknown/duplicate keys, wrong types -- a boolean is not a number --,
non-positive sizes, caps outside (0, 1], inconsistent family/DSP type, unknown board
names) raises :class:`~efgen.errors.EfgenError` naming the file, the key path (e.g.
``resources.dsp``) with its line, what is wrong and how to fix it.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from dataclasses import dataclass, fields
from fractions import Fraction
from pathlib import Path
from typing import Any

from efgen.errors import EfgenError
from efgen.frontend.yamlio import LineMap, describe_value, parse_yaml
from efgen.resources import configs_dir

__all__ = [
    "RESOURCE_NAMES", "FAMILIES", "DEFAULT_CAP",
    "Resources", "Caps", "Ddr", "Axi", "Power", "Board",
    "boards_dir", "list_boards", "load_board", "board_from_mapping", "boards_table",
]

RESOURCE_NAMES = ("dsp", "bram18", "uram", "lut", "ff")
DEFAULT_CAP = 0.80

# family -> (DSP primitive, allowed AXI HP port widths in bits)
FAMILIES: dict[str, tuple[str, tuple[int, ...]]] = {
    "zynq-ultrascale+": ("DSP48E2", (32, 64, 128)),
    "zynq-7000": ("DSP48E1", (32, 64)),
}
#: family -> address bits of the PS's AXI slave ports (the PL masters' reach): Zynq
#: UltraScale+ HP ports take 40-bit addresses (UG1085: DDR up to 0x8_7FFF_FFFF), Zynq-7000
#: 32-bit (UG585)
PS_ADDR_BITS: dict[str, int] = {"zynq-ultrascale+": 40, "zynq-7000": 32}
DSP_TYPES = ("DSP48E1", "DSP48E2")
MAX_CLOCK_MHZ = 1000.0


# --------------------------------------------------------------------------- objects

@dataclass(frozen=True)
class Resources:
    """Device resource totals (or capped budgets)."""

    dsp: int
    bram18: int
    uram: int
    lut: int
    ff: int

    def __getitem__(self, resource: str) -> int:
        return getattr(self, _resource_name(resource))

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class Caps:
    """Utilisation caps as fractions of the device totals, in (0, 1]."""

    dsp: float = DEFAULT_CAP
    bram18: float = DEFAULT_CAP
    uram: float = DEFAULT_CAP
    lut: float = DEFAULT_CAP
    ff: float = DEFAULT_CAP

    def __getitem__(self, resource: str) -> float:
        return getattr(self, _resource_name(resource))

    def as_dict(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class Ddr:
    """PS-side DRAM: type, bus width, transfer rate and theoretical peak bandwidth."""

    type: str
    width_bits: int
    rate_mts: float
    peak_gbps: float
    description: str

    @property
    def peak_bytes_per_s(self) -> float:
        return self.peak_gbps * 1e9


@dataclass(frozen=True)
class Axi:
    """PL-to-PS high-performance AXI ports available for DMA."""

    hp_ports: int
    width_bits: int

    @property
    def bytes_per_cycle(self) -> int:
        """Bytes per PL clock cycle over all HP ports together."""
        return self.hp_ports * self.width_bits // 8


@dataclass(frozen=True)
class Power:
    """The board's power figure. ``placeholder`` is True while ``static_w`` is a guess,
    not a sourced figure. (PL dynamic and DRAM energy are priced per resource and per
    byte by efgen/model/energy.py from configs/model/coefficients.yaml ``energy``.)"""

    placeholder: bool
    static_w: float


@dataclass(frozen=True)
class Board:
    """One validated board description."""

    name: str
    part: str
    family: str
    dsp_type: str
    resources: Resources
    ddr: Ddr
    axi: Axi
    clock_mhz: float
    caps: Caps
    power: Power
    source: str  # the file it was loaded from
    clock_basis: str = "not stated in the board file"   # where clock_mhz comes from

    def cap(self, resource: str) -> int:
        """Usable amount of ``resource``: floor(total x cap), exact for decimal caps."""
        name = _resource_name(resource)
        total = self.resources[name]
        # Fraction(repr(0.8)) == 4/5 exactly, so 1824 x 0.80 gives 1459, never 1458.
        return math.floor(total * Fraction(repr(self.caps[name])))

    def capped(self) -> Resources:
        """All resources after applying the caps."""
        return Resources(**{r: self.cap(r) for r in RESOURCE_NAMES})

    @property
    def ddr_bytes_per_cycle(self) -> float:
        """Peak DDR bytes per PL clock cycle at ``clock_mhz``."""
        return self.ddr.peak_gbps * 1e3 / self.clock_mhz


def _resource_name(resource: str) -> str:
    if resource in RESOURCE_NAMES:
        return resource
    close = difflib.get_close_matches(str(resource), RESOURCE_NAMES, n=1, cutoff=0.5)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise EfgenError(f"unknown resource '{resource}'", where="caps",
                     fix=f"{hint}valid resources: {', '.join(RESOURCE_NAMES)}")


# --------------------------------------------------------------------------- schema

@dataclass(frozen=True)
class _Field:
    kind: str                     # str | name | choice | count | number | fraction | bool
    doc: str                      # what the value means, for fix hints
    example: Any
    required: bool = True
    default: Any = None
    allow_zero: bool = False      # count/number: >= 0 instead of > 0
    max_value: float | None = None
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Section:
    fields: dict[str, Any]        # key -> _Field | _Section
    doc: str
    required: bool = True


def _count(doc: str, example: int, **kw: Any) -> _Field:
    return _Field("count", doc, example, **kw)


def _cap(res: str) -> _Field:
    return _Field("fraction", f"largest fraction of the {res} the design may use",
                  DEFAULT_CAP, required=False, default=DEFAULT_CAP)


_SCHEMA = _Section(doc="board", fields={
    "name": _Field("name", "board name (letters, digits, '-', '_', '.')", "my-board"),
    "part": _Field("str", "full Xilinx part number", "xczu9eg-ffvb1156-2-e"),
    "family": _Field("choice", "device family", "zynq-ultrascale+",
                     choices=tuple(FAMILIES)),
    "dsp_type": _Field("choice", "DSP primitive of the family", "DSP48E2", choices=DSP_TYPES),
    "resources": _Section(doc="device resource totals from the data sheet", fields={
        "dsp": _count("number of DSP slices", 2520),
        "bram18": _count("number of 18 Kb block RAMs (one RAMB36 counts as 2)", 1824),
        "uram": _count("number of UltraRAM blocks (0 if the device has none)", 0,
                       allow_zero=True),
        "lut": _count("number of CLB LUTs", 274080),
        "ff": _count("number of CLB flip-flops", 548160),
    }),
    "ddr": _Section(doc="PS-side DRAM", fields={
        "type": _Field("str", "memory type", "DDR4"),
        "width_bits": _count("DRAM data bus width in bits", 64),
        "rate_mts": _Field("number", "transfer rate in MT/s", 2133),
        "peak_gbps": _Field("number", "theoretical peak bandwidth in GB/s", 17.07),
        "description": _Field("str", "free-text description", "4 GB DDR4-2133, 64-bit"),
    }),
    "axi": _Section(doc="PL-to-PS high-performance AXI ports", fields={
        "hp_ports": _count("number of S_AXI_HP ports", 4),
        "width_bits": _count("data width per HP port in bits", 128),
    }),
    "clock_mhz": _Field("number", "default PL clock in MHz", 100, max_value=MAX_CLOCK_MHZ),
    "clock_basis": _Field("str", "where the default clock comes from (free text)",
                          "efgen synth --timing estimate", required=False,
                          default="not stated in the board file"),
    "caps": _Section(doc="utilisation caps", required=False,
                     fields={r: _cap(r) for r in RESOURCE_NAMES}),
    "power": _Section(doc="the board's static power", fields={
        "placeholder": _Field("bool", "true while static_w is not sourced", True),
        "static_w": _Field("number", "PS + PL static power in W", 3.5, allow_zero=True),
    }),
})

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


def _key_homes(section: _Section, prefix: str = "") -> dict[str, list[str]]:
    """key -> the section paths it is valid in (to say "`dsp` belongs under resources")."""
    homes: dict[str, list[str]] = {}
    for key, item in section.fields.items():
        homes.setdefault(key, []).append(prefix or "(top level)")
        if isinstance(item, _Section):
            sub = _key_homes(item, f"{prefix}.{key}" if prefix else key)
            for k, v in sub.items():
                homes.setdefault(k, []).extend(v)
    return homes


_KEY_HOMES = _key_homes(_SCHEMA)

# Keys earlier board files had that nothing reads any more: what replaced them.
_RETIRED_KEYS = {
    "power.pl_dynamic_w_max": "efgen/model/energy.py prices PL dynamic power per used "
                              "resource from configs/model/coefficients.yaml energy",
    "power.ddr_w": "efgen/model/energy.py prices DRAM energy per byte from "
                   "configs/model/coefficients.yaml energy",
}


# --------------------------------------------------------------------------- YAML

# --------------------------------------------------------------------------- validation

_describe = describe_value


class _Ctx:
    def __init__(self, file: str):
        self.file = file

    def where(self, path: str, mapping: Any = None, key: Any = None) -> str:
        line = None
        if isinstance(mapping, LineMap):
            line = mapping.key_lines.get(key) if key is not None else mapping.line
        return f"{path} (line {line})" if line else path

    def error(self, what: str, path: str, fix: str, mapping: Any = None,
              key: Any = None) -> EfgenError:
        return EfgenError(what, file=self.file, where=self.where(path, mapping, key), fix=fix)


def _join(prefix: str, key: Any) -> str:
    return f"{prefix}.{key}" if prefix else str(key)


def _check_section(data: Any, section: _Section, path: str, ctx: _Ctx,
                   parent: Any = None, key_in_parent: Any = None) -> dict[str, Any]:
    if not isinstance(data, dict):
        if not path:
            what = ("the file is empty" if data is None else
                    f"the top level must be a mapping of keys, got {_describe(data)}")
            raise EfgenError(what, file=ctx.file, where="line 1",
                             fix="write the board as 'key: value' lines; see the schema "
                                 "in efgen/frontend/boards.py or copy configs/boards/zcu102.yaml")
        if data is None and not section.required:
            data = {}  # an optional section with every key commented out: all defaults
        else:
            raise ctx.error(f"{path} must be a mapping ({section.doc}), got {_describe(data)}",
                            path, f"write '{path.rsplit('.', 1)[-1]}:' on its own line with "
                            f"the keys {', '.join(section.fields)} indented under it",
                            parent, key_in_parent)

    valid = list(section.fields)
    for key in data:
        if isinstance(key, str) and key in section.fields:
            continue
        text = str(key) if isinstance(key, str) else str(key).lower()
        kpath = _join(path, text)
        close = difflib.get_close_matches(text, valid, n=1, cutoff=0.5)
        homes = [h for h in _KEY_HOMES.get(text, []) if h != (path or "(top level)")]
        if kpath in _RETIRED_KEYS:
            raise ctx.error(f"key '{text}' is no longer read", kpath,
                            f"delete it: {_RETIRED_KEYS[kpath]}", data, key)
        if not isinstance(key, str):
            hint = (f"YAML reads this key as {_describe(key)}, not a name (YAML turns "
                    "on/off/yes/no into booleans); quote it if you meant it; ")
        elif homes:
            hint = f"'{text}' belongs under {' or '.join(homes)}; "
        elif close:
            hint = f"did you mean '{close[0]}'? "
        else:
            hint = ""
        scope = f"under '{path}'" if path else "at the top level"
        raise ctx.error(f"unknown key '{text}'", kpath,
                        f"{hint}valid keys {scope}: {', '.join(valid)}", data, key)

    out: dict[str, Any] = {}
    for key, item in section.fields.items():
        kpath = _join(path, key)
        if key not in data:
            if item.required:
                what = f"missing key '{key}'" + (f" under '{path}'" if path else "")
                if isinstance(item, _Section):
                    fix = (f"add a '{key}:' section ({item.doc}) with keys "
                           f"{', '.join(item.fields)}")
                else:
                    fix = f"add '{key}: {item.example}' ({item.doc})"
                    if path:
                        fix += f" under '{path}:'"
                # point at the section header line ('resources:'), or just name the key
                raise ctx.error(what, kpath, fix, parent, key_in_parent)
            out[key] = (_check_section({}, item, kpath, ctx) if isinstance(item, _Section)
                        else item.default)
            continue
        if isinstance(item, _Section):
            out[key] = _check_section(data[key], item, kpath, ctx, data, key)
        else:
            out[key] = _check_field(data[key], item, key, kpath, ctx, data)
    return out


def _check_field(value: Any, f: _Field, key: str, path: str, ctx: _Ctx, mapping: Any) -> Any:
    def err(what: str, fix: str) -> EfgenError:
        return ctx.error(what, path, fix, mapping, key)

    example = f"'{key}: {f.example}'"

    if f.kind in ("str", "name", "choice"):
        if not isinstance(value, str):
            raise err(f"{path} must be text ({f.doc}), got {_describe(value)}",
                      f"write e.g. {example}; quote it if YAML reads it as a number or "
                      "boolean")
        if not value.strip():
            raise err(f"{path} is empty", f"give the {f.doc}, e.g. {example}")
        if f.kind == "name" and not _NAME_RE.match(value):
            raise err(f"{path} {value!r} is not a valid board name",
                      "use letters, digits, '-', '_', '.' or '+', starting with a letter "
                      f"or digit, e.g. {example}")
        if f.kind == "choice" and value not in f.choices:
            close = difflib.get_close_matches(value, f.choices, n=1, cutoff=0.4)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise err(f"unknown {path} {value!r}",
                      f"{hint}valid values: {', '.join(f.choices)}")
        return value

    if f.kind == "bool":
        if not isinstance(value, bool):
            raise err(f"{path} must be true or false ({f.doc}), got {_describe(value)}",
                      f"write e.g. {example} without quotes")
        return value

    # numeric kinds: a YAML boolean is never a number, even though Python says bool <: int
    if f.kind == "count":
        if isinstance(value, bool) or not isinstance(value, int):
            fix = f"write a whole number, e.g. {example}"
            if isinstance(value, str):
                fix += " (no quotes, no thousands separators)"
            elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
                fix = f"write it without a decimal point: '{key}: {int(value)}'"
            raise err(f"{path} must be a whole number ({f.doc}), got {_describe(value)}",
                      fix)
    else:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            fix = f"write a number, e.g. {example}"
            if isinstance(value, str):
                fix += " (no quotes, no units)"
            raise err(f"{path} must be a number ({f.doc}), got {_describe(value)}", fix)
        if not math.isfinite(value):
            raise err(f"{path} must be a finite number, got {value!r}",
                      f"write e.g. {example}")

    if f.kind == "fraction":
        if not 0 < value <= 1:
            hint = (f"did you mean {value / 100:g}? " if 1 < value <= 100 else "")
            raise err(f"{path} = {value!r} is outside (0, 1]",
                      f"{hint}caps are fractions of the device total, e.g. "
                      f"'{key}: 0.80' for 80%")
        return float(value)

    if f.allow_zero:
        if value < 0:
            raise err(f"{path} must not be negative, got {value!r}",
                      f"give the {f.doc}, e.g. {example}")
    elif value <= 0:
        raise err(f"{path} must be positive, got {value!r}",
                  f"give the {f.doc} (> 0), e.g. {example}; check it against the data sheet")
    if f.max_value is not None and value > f.max_value:
        raise err(f"{path} = {value!r} is implausibly large (limit {f.max_value:g})",
                  f"give the {f.doc}, e.g. {example}")
    return value if f.kind == "count" else float(value)


def _cross_check(raw: dict, v: dict[str, Any], ctx: _Ctx, catalogue_stem: str | None) -> None:
    """Checks between keys, run after every key is individually valid."""
    def at(*keys: str) -> tuple[Any, Any]:
        mapping: Any = raw
        for k in keys[:-1]:
            mapping = mapping.get(k) if isinstance(mapping, dict) else None
        return mapping, keys[-1]

    family = v["family"]
    dsp_type, axi_widths = FAMILIES[family]
    if catalogue_stem is not None and v["name"] != catalogue_stem:
        raise ctx.error(f"name {v['name']!r} does not match the file name "
                        f"'{catalogue_stem}.yaml'", "name",
                        f"write 'name: {catalogue_stem}' or rename the file",
                        *at("name"))
    if v["dsp_type"] != dsp_type:
        raise ctx.error(f"dsp_type {v['dsp_type']} does not match family {family}",
                        "dsp_type", f"{family} devices have {dsp_type} slices: write "
                        f"'dsp_type: {dsp_type}' (or fix 'family')", *at("dsp_type"))
    if family == "zynq-7000" and v["resources"]["uram"] != 0:
        raise ctx.error(f"resources.uram is {v['resources']['uram']} but {family} devices "
                        "have no UltraRAM", "resources.uram",
                        "write 'uram: 0' (or fix 'family')", *at("resources", "uram"))
    if v["axi"]["width_bits"] not in axi_widths:
        raise ctx.error(f"axi.width_bits {v['axi']['width_bits']} is not a {family} HP "
                        "port width", "axi.width_bits",
                        f"use one of {', '.join(map(str, axi_widths))}",
                        *at("axi", "width_bits"))
    ddr = v["ddr"]
    if ddr["width_bits"] % 8:
        raise ctx.error(f"ddr.width_bits {ddr['width_bits']} is not a whole number of "
                        "bytes", "ddr.width_bits", "use a multiple of 8, e.g. 16, 32 or 64",
                        *at("ddr", "width_bits"))
    bus_peak = ddr["width_bits"] / 8 * ddr["rate_mts"] / 1000
    if ddr["peak_gbps"] > bus_peak * 1.01:
        raise ctx.error(f"ddr.peak_gbps {ddr['peak_gbps']:g} exceeds what a "
                        f"{ddr['width_bits']}-bit bus at {ddr['rate_mts']:g} MT/s can carry "
                        f"({bus_peak:.2f} GB/s)", "ddr.peak_gbps",
                        "peak_gbps = width_bits / 8 x rate_mts / 1000; fix whichever of "
                        "the three is wrong", *at("ddr", "peak_gbps"))


def board_from_mapping(data: Any, *, file: str = "<board>", source: str | None = None,
                       catalogue_stem: str | None = None) -> Board:
    """Validate an already-parsed board mapping and build the :class:`Board`.

    ``file`` is used in error messages; ``source`` is stored on the board (defaults to
    ``file``); when ``catalogue_stem`` is given, ``name`` must equal it.
    """
    ctx = _Ctx(file)
    v = _check_section(data, _SCHEMA, "", ctx)
    _cross_check(data, v, ctx, catalogue_stem)
    return Board(
        name=v["name"], part=v["part"], family=v["family"], dsp_type=v["dsp_type"],
        resources=Resources(**v["resources"]),
        ddr=Ddr(**v["ddr"]),
        axi=Axi(**v["axi"]),
        clock_mhz=v["clock_mhz"],
        caps=Caps(**v["caps"]),
        power=Power(**v["power"]),
        source=source if source is not None else file,
        clock_basis=v["clock_basis"],
    )


# --------------------------------------------------------------------------- catalogue

def boards_dir() -> Path:
    return configs_dir() / "boards"


def list_boards() -> list[str]:
    """Sorted names of the catalogue boards (configs/boards/*.yaml)."""
    d = boards_dir()
    if not d.is_dir():
        return []
    return sorted(p.stem for p in d.glob("*.yaml") if p.is_file())


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


def _looks_like_path(s: str) -> bool:
    return (s.lower().endswith((".yaml", ".yml")) or "/" in s or os.sep in s
            or (os.altsep is not None and os.altsep in s))


def load_board(name_or_path: str | os.PathLike[str]) -> Board:
    """Load a board by catalogue name (``zcu102``) or from a ``.yaml`` file path."""
    s = os.fspath(name_or_path)
    catalogue_stem = None
    if _looks_like_path(s):
        path = Path(s).expanduser()
        if not path.is_file():
            what = ("board path is a directory, not a file" if path.is_dir()
                    else "board file not found")
            raise EfgenError(what, file=s,
                             fix="check the path, or give a catalogue board name: "
                                 + ", ".join(list_boards()))
    else:
        names = list_boards()
        key = s.strip().lower()
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1, cutoff=0.5)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise EfgenError(f"unknown board '{s}'", file=_display(boards_dir()),
                             fix=f"{hint}valid boards: {', '.join(names) or '(none)'}; "
                                 "or pass the path to a board .yaml file")
        path = boards_dir() / f"{key}.yaml"
        catalogue_stem = key
    if catalogue_stem is None and path.resolve().parent == boards_dir().resolve():
        catalogue_stem = path.stem

    shown = _display(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise EfgenError(f"board file is not UTF-8 text (byte {exc.start})", file=shown,
                         fix="save the file as UTF-8") from None
    except OSError as exc:
        raise EfgenError(f"cannot read board file: {exc.strerror or exc}", file=shown,
                         fix="check the path and its permissions") from None
    data = parse_yaml(text, shown)
    return board_from_mapping(data, file=shown, source=str(path.resolve()),
                              catalogue_stem=catalogue_stem)


def boards_table() -> str:
    """Plain-text aligned table of the catalogue, for ``efgen boards``."""
    header = ["name", "part", "family", "DSP", "BRAM18", "URAM", "LUT", "FF",
              "DDR GB/s", "clock MHz"]
    numeric = [False, False, False, True, True, True, True, True, True, True]
    rows = [header]
    for name in list_boards():
        b = load_board(name)
        r = b.resources
        rows.append([b.name, b.part, b.family, str(r.dsp), str(r.bram18), str(r.uram),
                     str(r.lut), str(r.ff), f"{b.ddr.peak_gbps:.2f}", f"{b.clock_mhz:g}"])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]

    def fmt(row: list[str]) -> str:
        cells = [c.rjust(w) if num else c.ljust(w)
                 for c, w, num in zip(row, widths, numeric)]
        return "  ".join(cells).rstrip()

    lines = [fmt(rows[0]), "  ".join("-" * w for w in widths)]
    lines += [fmt(row) for row in rows[1:]]
    return "\n".join(lines) + "\n"
