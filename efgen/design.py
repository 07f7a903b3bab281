"""The Design: hardware parameters plus the per-layer, per-phase schedule.

A frozen, JSON-serialisable value and the single source of truth that the analytical
model, the code generators and the tests all read. ``design.json`` holds enough to
regenerate everything: the net itself (as its YAML document), the board name, the
batch, the hardware parameters and every layer-phase's tiling.

The net is parsed once, on first use of :attr:`Design.net_ir`; every generator (the HLS
program, the RTL, the reports) reads that parsed :class:`~efgen.frontend.ir.Net`.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from functools import cached_property
from typing import Any

from efgen._version import __version__
from efgen.errors import EfgenError
from efgen.frontend.ir import Net, parse_net

PRECISIONS = ("fp32", "fp16", "bf16", "fix16", "int8")
PHASES = ("fp", "bp", "wu")          # phases the convolution engine runs
LOOP_ORDERS = ("wo", "io")           # see HwParams docstring / efgen/model/engine.py
LAYOUTS = ("reshaped", "nchw")
OBJECTIVES = ("latency", "energy", "edp", "dram")


@dataclass(frozen=True)
class HwParams:
    """The accelerator's hardware parameters.

    Buffers are counted per *bank* (one bank per lane) and per ping-pong half:

    * ``ifm_depth``: words per IFM bank (``tn`` banks, two halves) - input tiles with
      their halo in FP and WU, the dilated error tile in BP.
    * ``ofm_depth``: words per OFM bank (``tm`` banks, two halves) - output tiles in
      FP/BP, error tiles in WU.
    * ``wbuf_depth``: words per weight bank (``tm * tn`` banks, one copy) - a chunk of
      the layer's weights in FP/BP, gradient accumulators in WU. With ``wdb`` (issue 13)
      two copies: the next chunk's weights load into one while the array computes from
      the other (ping-pong weight chunks; twice the weight buffer's BRAM).
    """

    precision: str = "fp32"
    tm: int = 16
    tn: int = 16
    ifm_depth: int = 2048
    ofm_depth: int = 2048
    wbuf_depth: int = 512
    clock_mhz: float = 100.0
    port_words: int = 4            # words per AXI beat on each port
    ports: int = 3                 # AXI masters: input/error reads, weight reads, writes
    dma_start: int = 20            # cycles of overhead per DRAM burst
    max_burst_beats: int = 256
    mac_depth: int = 7             # MAC pipeline depth (multiplier + adder), cycles
    weight_mem: str = "bram"       # "bram" or "uram"
    # Finer timing terms; the defaults describe the HLS engine (none of them), the
    # reference RTL sets them (efgen.cosim.validate.rtl_hw):
    wu_depth: int | None = None    # WU pipeline depth (None: mac_depth)
    acc_dist: int = 1              # FP/BP: min cycles between two updates of one accumulator
    dram_latency: int = 0          # cycles from a read command to its first word, per transfer
    load_overhead: int = 0         # cycles of set-up per tile/chunk load
    load_setup: int = 0            # of load_overhead, the tile set-up an FP/BP chunk's first
                                   # tile does during the chunk's weight load (not exposed)
    wrun_overhead: int | None = None   # cycles of set-up per weight-load run (None: load_overhead)
    store_overhead: int = 0        # cycles of set-up per tile store
    block_overhead: int = 0        # cycles of control per compute block
    step_overhead: int = 0         # cycles of control per step (shared by its io/WU blocks)
    wpair_overhead: int = 0        # BP weight load: cycles between (Tm, Tn) pairs of a run
    wload_drain: int = 0           # FP/BP weight load: cycles per chunk after the last beat (RTL pipeline)
    job_overhead: int = 0          # cycles of set-up and drain per layer-phase
    bias_overhead: int = 0         # > 0: an FP job with a bias (Job.bias) first loads it on the
                                   # weight port, this many cycles beyond the DRAM latency and
                                   # its words (the reference RTL's layer_seq L_BIAS)
    bias_store: int = 0            # FP with a bias: cycles the store path's adder adds per store
    xf_overhead: int = 0           # > 0: the reference RTL's fused datapath (RtlParams.fuse):
                                   # a job with a side record (Job.xf or Job.acc) reads it, and
                                   # a load transform's constants, this many cycles beyond the
                                   # DRAM latency and the words, each (efgen.model.engine)
    xf_depth: int = 0              # the reference RTL's load transform: cycles of pipeline
                                   # every transformed input-tile load adds (and every BP store
                                   # through the recomputed mask's transform, Job.mk)
    dx_depth: int = 0              # the reference RTL's BN BP dx in the loads (CONV_BP, record
                                   # LMODE 1): cycles of pipeline every input-tile load adds
    stats_overhead: int = 0        # a job whose store accumulates the BN sums (Job.acc: FP's,
                                   # or BP's with Job.mk) on the reference RTL: the sums'
                                   # fold and write beyond their words (t_stats)
    wub_overhead: int = 0          # > 0: a WU job with a bias (Job.bias) ends with the reference
                                   # RTL's bias pass (sgd_wb on the out-channel partial sums:
                                   # max(slots, 3) cycles a channel, the DRAM latency and this)
    outstanding: int = 0           # read bursts in flight per port (0: no limit modelled)
    mask_port: bool = False        # BP mask tiles come on a port of their own (not after the store)
    sgd_piece: int = 0             # > 0: the write-back writes pieces of this many words
    sgd_overhead: int = 0          # > 0: word-serial SGD write-back, this many cycles per chunk
    load_words: int = 0            # > 0: words a cycle the input-tile loader takes (else port_words)
    wload_words: int = 0           # > 0: words a cycle the weight loader takes (else port_words)
    store_words: int = 0           # > 0: words a cycle the output-tile storer hands to its port
                                   # (and the BP mask tiles beside it; else port_words)
    fuse: bool = False             # restructured BN: transform units in the engine's loads and
                                   # stores (efgen/model/restructure.py; a model, see README)
    # Issue 13: the third unrolled dimension and first-layer packing (efgen/model/engine.py)
    p: int = 1                     # pixel lanes: P adjacent output pixels of a tile row a cycle
    pack: bool = False             # shallow FP/WU jobs (red < Tn) carry kernel taps in the
                                   # spare reduction lanes ((channel, tap) pairs)
    wdb: bool = False              # double-buffered weight chunks (2 x wbuf_depth a bank)
    wu_tree_level: int | None = None   # P > 1: cycles a level of WU's adder tree over the P
                                   # pixel lanes adds to wu_depth (None: the HLS engine's
                                   # estimate, mac_depth - mac_depth // 2; the reference RTL:
                                   # its adder's latency, efgen.cosim.validate.rtl_hw)

    @property
    def lanes(self) -> int:
        """Feature-map layout lane block T = gcd(Tm, Tn), also the vector engine's width.

        Every input tile (Tn channels) and output tile (Tm channels) is then a whole
        number of lane blocks, so no write ever touches half a block.
        """
        return math.gcd(self.tm, self.tn)

    @property
    def macs(self) -> int:
        """MACs of the whole array: Tm x Tn x P."""
        return self.tm * self.tn * self.p

    def peak_gflops(self) -> float:
        """2 FLOP per MAC per cycle over the whole array."""
        return 2.0 * self.macs * self.clock_mhz * 1e6 / 1e9


@dataclass(frozen=True)
class PhaseSchedule:
    """Tiling of one layer-phase on the convolution engine.

    ``tr`` x ``tc``: output rows x columns per tile (for BP: rows of the input error;
    for linear layers the "map" is 1 x batch). ``mc``: output-lane blocks whose weights
    (FP/BP) or gradients (WU) share one weight-buffer chunk. ``order``: ``"wo"``
    (reduction innermost, input tiles re-read per output block) or ``"io"`` (output
    blocks innermost, each input tile read once per chunk; needs ``mc`` output tiles
    in the OFM buffer).
    """

    layer: str
    phase: str
    tr: int
    tc: int
    mc: int
    order: str = "wo"


#: HwParams keys a Design's JSON leaves out at these values: the features that came
#: later (fusion; the reference-RTL model's overhead and HP-width beats, issue 19; P,
#: packing and double-buffered weights, issue 13; the RTL's FP bias load and add, and its WU
#: bias pass, issue 12)
_HW_OMITTED_AT = {"fuse": False, "wrun_overhead": None, "load_words": 0, "wload_words": 0,
                  "store_words": 0, "p": 1, "pack": False, "wdb": False,
                  "bias_overhead": 0, "bias_store": 0, "wub_overhead": 0, "stats_overhead": 0,
                  "xf_overhead": 0, "xf_depth": 0, "dx_depth": 0, "wu_tree_level": None,
                  "load_setup": 0}


@dataclass(frozen=True)
class Design:
    net: dict[str, Any]                 # the net's YAML document (efgen.frontend.ir.net_to_doc)
    board: str
    batch: int
    hw: HwParams
    schedule: tuple[PhaseSchedule, ...]
    train_last: int | None = None
    objective: str = "latency"
    layout: str = "reshaped"
    sgd_momentum: bool = True           # the SGD write-back carries a momentum buffer
    training: dict[str, Any] | None = None   # training methods (efgen.methods.spec.Training.to_doc)
    fusion: dict[str, Any] | None = None     # restructured-BN decisions (efgen.model.restructure.Plan)
    efgen_version: str = __version__
    notes: tuple[str, ...] = field(default_factory=tuple)

    @cached_property
    def net_ir(self) -> Net:
        """The parsed net of :attr:`net` (parsed on first use, then kept)."""
        return parse_net(self.net, "design.json:net")

    def tiling(self, layer: str, phase: str) -> PhaseSchedule:
        for s in self.schedule:
            if s.layer == layer and s.phase == phase:
                return s
        raise KeyError((layer, phase))

    def with_hw(self, **kw) -> "Design":
        return replace(self, hw=replace(self.hw, **kw))

    # ---- JSON -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["schedule"] = [asdict(s) for s in self.schedule]
        d["notes"] = list(self.notes)
        # a Design that does not use a later feature writes the JSON it wrote before it
        # (byte for byte): those keys are left out at their defaults
        if d["fusion"] is None:
            del d["fusion"]
        for key, default in _HW_OMITTED_AT.items():
            if d["hw"][key] == default:
                del d["hw"][key]
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, d: dict[str, Any], file: str = "<design>") -> "Design":
        try:
            hw = HwParams(**d["hw"])
            sched = tuple(PhaseSchedule(**s) for s in d["schedule"])
            kw = {f.name: d[f.name] for f in fields(cls)
                  if f.name not in ("hw", "schedule", "notes") and f.name in d}
            return cls(hw=hw, schedule=sched, notes=tuple(d.get("notes", ())), **kw)
        except (KeyError, TypeError) as exc:
            raise EfgenError(f"not a valid design.json ({exc.__class__.__name__}: {exc})",
                             file=file, fix="regenerate it with 'efgen build'") from None

    @classmethod
    def from_json(cls, text: str, file: str = "<design>") -> "Design":
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            raise EfgenError(f"invalid JSON: {exc.msg}", file=file,
                             where=f"line {exc.lineno}",
                             fix="regenerate it with 'efgen build'") from None
        return cls.from_dict(d, file)
