"""bn_unit: BN_FP, BN_BP and BN_FIN of the step program on the reference RTL (bn_unit.v.j2).

The unit works one channel block (T lanes) at a time, as a short micro-program per block
(:data:`PROGRAM`): vector reads and writes of T per-channel words (gamma, beta, the
statistics, the running statistics, the velocities), lane-parallel scalar operations
(one fp32_add, fp32_mul, fp32_div or fp32_sqrt over the block's valid lanes, in lane
order) and stream passes over the block's feature-map runs (one run of H*W*T words per
image, read through ports 0 (x) and 1 (dy), written through the write port). The
operations and their order are numpy's in :mod:`efgen.csim.interp` (BN_FP, BN_BP): only
the sums (per channel, images then pixels, in order) differ from numpy's pairwise sums.

BN_FIN (the restructured batchnorm's finalisation, :data:`FIN_BLOCK`) has no pass over
the statistics: mean, var and invstd come from the shifted sums at a[6]
(efgen.hls.fused.bn_finalise's order), and a[7] != 0 adds one writing pass (FC, or FX:
FC plus x2, read on port 1, before the ReLU). BN_BP's FLAG_SUMS reads the sums into ACC1
and ACC2 instead of the BD pass; FLAG_DXK writes the dx constants block instead of dx.

Micro-op fields: (kind, cond, unit, dst, src_a, src_b, neg_b, a_index, plus_c); a vector
read or write addresses a[a_index] + plus_c * C (+ the block's first channel).
"""

from __future__ import annotations

# per-lane registers (one word a lane of the block)
REGS = {"MEAN": 0, "VAR": 1, "INV": 2, "GAM": 3, "BET": 4, "ACC1": 5, "ACC2": 6, "RM": 7,
        "RV": 8, "T1": 9, "T2": 10, "COEF": 11}
# scalars (one word for the descriptor)
#: bn_unit's lane registers (REGS fit in them; templates/rtl/bn_unit.v.j2's rf)
N_RF = 12
SCALARS = {"ONE": 16, "N": 17, "NM1": 18, "EPS": 19, "MOM": 20, "KEEP": 21, "FAC": 22,
           "LR": 23, "SMOM": 24, "WD": 25}
KINDS = {"OP": 0, "VRD": 1, "VWR": 2, "PASS": 3, "INIT": 4, "NEXT": 5, "END": 6}
UNITS = {"ADD": 0, "MUL": 1, "DIV": 2, "SQRT": 3}
PASSES = {"FA": 0, "FB": 1, "FC": 2, "BD": 3, "BE": 4, "FX": 5}
#: stream passes that accumulate per lane (a word of a lane at most every ACC_GAP cycles)
ACC_PASSES = ("FA", "FB", "BD")
#: stream passes that write a tensor
WRITE_PASSES = ("FC", "BE", "FX")
#: step conditions: DX, TRAIN (FLAG_DX, FLAG_TRAIN), DBG (TRAIN and a[6] != 0), Y (BN_FIN
#: with a[7] != 0, no FLAG_ADDX), YX (BN_FIN with a[7] != 0 and FLAG_ADDX), SUMS /
#: NOSUMS (FLAG_SUMS set / clear), DXK (FLAG_DXK without FLAG_DX)
CONDS = {"": 0, "DX": 1, "TRAIN": 2, "DBG": 3, "Y": 4, "YX": 5, "SUMS": 6, "NOSUMS": 7,
         "DXK": 8}


def _op(unit, dst, a, b="ONE", neg=False, cond=""):
    return ("OP", cond, unit, dst, a, b, neg, 0, False)


def _vrd(dst, ai, plus_c=0, cond=""):
    return ("VRD", cond, "ADD", dst, "ONE", "ONE", False, ai, plus_c)


def _vwr(src, ai, plus_c=0, cond=""):
    return ("VWR", cond, "ADD", "T1", src, "ONE", False, ai, plus_c)


def _pass(p, cond=""):
    return ("PASS", cond, p, "T1", "ONE", "ONE", False, 0, False)


def _ctl(kind):
    return (kind, "", "ADD", "T1", "ONE", "ONE", False, 0, False)


_INVSTD = [_op("ADD", "T1", "VAR", "EPS"), _op("SQRT", "T2", "T1"),
           _op("DIV", "INV", "ONE", "T2")]

FP_PRE = [_op("ADD", "KEEP", "ONE", "MOM", neg=True), _op("DIV", "FAC", "N", "NM1")]
FP_BLOCK = [
    _vrd("GAM", 1), _vrd("BET", 2), _vrd("RM", 4), _vrd("RV", 5), _ctl("INIT"),
    _pass("FA"), _op("DIV", "MEAN", "ACC1", "N"),
    _pass("FB"), _op("DIV", "VAR", "ACC2", "N"), *_INVSTD,
    _pass("FC"),
    _op("MUL", "T1", "KEEP", "RM"), _op("MUL", "T2", "MOM", "MEAN"), _op("ADD", "RM", "T1", "T2"),
    _op("MUL", "T1", "VAR", "FAC"), _op("MUL", "T2", "MOM", "T1"), _op("MUL", "T1", "KEEP", "RV"),
    _op("ADD", "RV", "T1", "T2"),
    _vwr("MEAN", 3), _vwr("VAR", 3, True), _vwr("RM", 4), _vwr("RV", 5), _ctl("NEXT"),
]
BP_BLOCK = [
    _vrd("MEAN", 2), _vrd("VAR", 2, True), _vrd("GAM", 3), _vrd("BET", 4),
    _vrd("RM", 5, cond="TRAIN"), _vrd("RV", 5, True, cond="TRAIN"), *_INVSTD, _ctl("INIT"),
    _pass("BD", cond="NOSUMS"), _vrd("ACC1", 2, 2, cond="SUMS"), _vrd("ACC2", 2, 3, cond="SUMS"),
    _op("MUL", "T1", "GAM", "INV"), _op("DIV", "COEF", "T1", "N"),
    _pass("BE", cond="DX"),
    # FLAG_DXK: mean | invstd | coef | n | dbeta | dgamma | 0 | 0 to a[7]
    _vwr("MEAN", 7, 0, "DXK"), _vwr("INV", 7, 1, "DXK"), _vwr("COEF", 7, 2, "DXK"),
    _op("MUL", "T1", "N", "ONE", cond="DXK"), _vwr("T1", 7, 3, "DXK"),
    _vwr("ACC1", 7, 4, "DXK"), _vwr("ACC2", 7, 5, "DXK"),
    _op("ADD", "T2", "ONE", "ONE", True, "DXK"), _vwr("T2", 7, 6, "DXK"), _vwr("T2", 7, 7, "DXK"),
    # SGD (efgen.golden.ops.sgd_update): g = grad + wd*p; v = mom*v + g; p = p - lr*v
    _op("MUL", "T1", "WD", "GAM", cond="TRAIN"), _op("ADD", "T1", "ACC2", "T1", cond="TRAIN"),
    _op("MUL", "T2", "SMOM", "RM", cond="TRAIN"), _op("ADD", "RM", "T2", "T1", cond="TRAIN"),
    _op("MUL", "T1", "LR", "RM", cond="TRAIN"), _op("ADD", "GAM", "GAM", "T1", True, "TRAIN"),
    _op("MUL", "T1", "WD", "BET", cond="TRAIN"), _op("ADD", "T1", "ACC1", "T1", cond="TRAIN"),
    _op("MUL", "T2", "SMOM", "RV", cond="TRAIN"), _op("ADD", "RV", "T2", "T1", cond="TRAIN"),
    _op("MUL", "T1", "LR", "RV", cond="TRAIN"), _op("ADD", "BET", "BET", "T1", True, "TRAIN"),
    _vwr("GAM", 3, cond="TRAIN"), _vwr("BET", 4, cond="TRAIN"), _vwr("RM", 5, cond="TRAIN"),
    _vwr("RV", 5, True, cond="TRAIN"), _vwr("ACC2", 6, cond="DBG"),
    _vwr("ACC1", 6, True, cond="DBG"), _ctl("NEXT"),
]


FIN_BLOCK = [
    _vrd("GAM", 1), _vrd("BET", 2), _vrd("RM", 4), _vrd("RV", 5),
    # fused.bn_finalise: d = s1 / n; mean = k + d; var = s2 / n - d * d (k: the running mean)
    _vrd("T1", 6), _op("DIV", "COEF", "T1", "N"), _op("ADD", "MEAN", "RM", "COEF"),
    _vrd("T1", 6, 1), _op("DIV", "T2", "T1", "N"), _op("MUL", "T1", "COEF", "COEF"),
    _op("ADD", "VAR", "T2", "T1", neg=True), *_INVSTD,
    _vwr("MEAN", 6, 2), _vwr("INV", 6, 3), _vwr("GAM", 6, 4), _vwr("BET", 6, 5),
    _vwr("MEAN", 3), _vwr("VAR", 3, 1),
    _op("MUL", "T1", "KEEP", "RM"), _op("MUL", "T2", "MOM", "MEAN"), _op("ADD", "RM", "T1", "T2"),
    _op("MUL", "T1", "VAR", "FAC"), _op("MUL", "T2", "MOM", "T1"), _op("MUL", "T1", "KEEP", "RV"),
    _op("ADD", "RV", "T1", "T2"),
    _vwr("RM", 4), _vwr("RV", 5),
    _pass("FC", cond="Y"), _pass("FX", cond="YX"), _ctl("NEXT"),
]

#: the ROM's program counter bits
PC_BITS = 7


def program() -> tuple[list[dict], dict]:
    """The ROM (a list of encoded steps) and its entry points: FP_PRE, then the FP block
    (looped by NEXT), then the BP block (its own loop), FP_PRE again and the BN_FIN block
    (its loop), END."""
    steps, labels = [], {}
    for name, part in (("fp_pre", FP_PRE), ("fp_blk", FP_BLOCK), ("bp_blk", BP_BLOCK),
                       ("fin_pre", FP_PRE), ("fin_blk", FIN_BLOCK), ("end", [_ctl("END")])):
        labels[name] = len(steps)
        steps += part
    rom = []
    allregs = {**REGS, **SCALARS}
    for kind, cond, unit, dst, a, b, neg, ai, pc in steps:
        # bn_unit keeps ACC1 and ACC2 apart from its register file, whose one write port
        # serves OP and VRD only (templates/rtl/bn_unit.v.j2), and has 12 lane registers;
        # a vector read of the sums (FLAG_SUMS) goes to rf's words 5 and 6, which stand
        # for them while FLAG_SUMS; an operation may not write them
        if kind == "OP" and dst in ("ACC1", "ACC2"):
            raise ValueError(f"bn_unit: {kind} cannot write {dst} (the stream passes' sums)")
        if dst in REGS and REGS[dst] >= N_RF:
            raise ValueError(f"bn_unit: register {dst} beyond its {N_RF} lane registers")
        if not 0 <= int(pc) <= 7:
            raise ValueError(f"bn_unit: a vector at a + {pc} C (at most 7 C)")
        rom.append({"kind": KINDS[kind], "cond": CONDS[cond],
                    "unit": PASSES[unit] if kind == "PASS" else UNITS[unit],
                    "dst": allregs[dst], "a": allregs[a], "b": allregs[b], "neg": int(neg),
                    "ai": ai, "pc": int(pc)})
    if len(rom) > 2 ** PC_BITS:
        raise ValueError(f"bn_unit: {len(rom)} steps beyond its {2 ** PC_BITS}-step ROM")
    return rom, labels


#: bn_unit's output FIFO (words; a power of two): room for every word in its chain
BN_FIFO = 32


def bn_verilog(ctx: dict) -> dict[str, str]:
    """``bn_unit.v`` and the FP32 units it adds (fp32_div, fp32_sqrt) for the top's
    template context ``ctx`` (efgen.rtl.top.rtl_verilog)."""
    from efgen.rtl.fpu import _env, fp_divsqrt_verilog

    rom, labels = program()
    files = dict(fp_divsqrt_verilog())
    files["bn_unit.v"] = _env().get_template("bn_unit.v.j2").render(
        module="bn_unit", rom=rom, labels=labels, fifo_depth=BN_FIFO, n_rf=N_RF, pc_bits=PC_BITS,
        fifo_log=BN_FIFO.bit_length() - 1, **ctx)
    return files
