"""Test cases of sgd_wb: the driver script (see cocotb_sgd.py) and the checks.

:func:`case` builds one chunk: a random weight buffer (the G partial-sum copies of every
word, NaN in the rows just past the chunk), random W and V in DRAM inside random guard
words, and the hyper-parameters; :meth:`Case.check` compares the DRAM windows after the
run with the bit-exact model (:func:`efgen.rtl.sgd.sgd_wb_model`), the guard words with
their old values, the cycles with :func:`efgen.rtl.sgd.sgd_cycles` and the write bursts
with the pieces' commands.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from efgen.rtl.dma import axi_bursts
from efgen.rtl.engine import EngineParams, wu_copies
from efgen.rtl.sgd import PIECE, chunk_words, f32_bits, sgd_cycles, sgd_wb_model

MAX_BURST = 64        # sgd_tb's DMA engines (tests/test_rtl_sgd.py builds them so)
GUARD = 37            # words checked on either side of the W and V regions
PAGE_WORDS = 1024
NAN = 0x7FC00001      # a signalling-looking NaN payload in unused weight-buffer rows


def bits(a) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(a, np.float32)).view(np.uint32)


def _specials(rng, n) -> np.ndarray:
    """Signed zeros, subnormals, tiny and huge normals (float32)."""
    pool = np.array([0.0, -0.0, 1e-40, -3e-39, 1.2e-38, -1.17549435e-38, 3e38, -2e38, 1.0,
                     -1.0], np.float32)
    return rng.choice(pool, n)


@dataclass
class Case:
    name: str
    script: dict
    expect: list                 # [(addr, uint32 array)] per window
    cycles: list                 # expected cycles, per run
    aw: list                     # expected (byte addr, beats) of every write burst
    info: dict = field(default_factory=dict)
    stall: float = 0.0

    def check(self, results: dict) -> list[str]:
        r = results[self.name]
        errs = []
        for (addr, want), got in zip(self.expect, r["windows"]):
            got = np.array(got, np.uint32)
            bad = np.nonzero(got != want)[0]
            # NaN results: the RTL's NaN is canonical, numpy's may carry a payload
            bad = [i for i in bad
                   if not (np.isnan(want[i:i + 1].view(np.float32))[0]
                           and got[i] == 0x7FC00000)]
            if bad:
                i = bad[0]
                errs.append(f"{self.name}: {len(bad)} DRAM words differ from the model, first "
                            f"at word {addr + i}: {got[i]:#010x} != {want[i]:#010x}")
        if self.stall:     # stalls only add cycles
            if any(a < b for a, b in zip(r["cycles"], self.cycles)):
                errs.append(f"{self.name}: {r['cycles']} cycles < sgd_cycles {self.cycles}")
        elif r["cycles"] != self.cycles:
            errs.append(f"{self.name}: {r['cycles']} cycles, sgd_cycles gives {self.cycles}")
        if r["done_pulses"] != len(self.cycles):
            errs.append(f"{self.name}: done high in {r['done_pulses']} cycles, "
                        f"expected {len(self.cycles)}")
        if not r["busy_ok"]:
            errs.append(f"{self.name}: busy not high from start to done")
        if not r["dma_idle"]:
            errs.append(f"{self.name}: a DMA engine still busy after done")
        if [tuple(a) for a in r["aw"]] != [tuple(a) for a in self.aw]:
            errs.append(f"{self.name}: write bursts {r['aw'][:6]}... != {self.aw[:6]}...")
        return errs


def case(p: EngineParams, name: str, *, k: int, nblk: int, seed: int, latency: int = 10,
         lr: float = 0.05, mom: float = 0.9, wd: float = 5e-4, special: bool = False,
         w_addr: int | None = None, v_addr: int | None = None, restart: bool = False,
         again: bool = False, stall: float = 0.0, piece: int = PIECE) -> Case:
    """One chunk of ``nblk`` blocks of kernel ``k`` (G = wu_copies(k)), DRAM read latency
    ``latency``. ``special``: a quarter of the words are signed zeros, subnormals, huge
    values; ``restart``: a start pulse with other settings while busy (ignored);
    ``again``: a second run on the updated W and V, started in the first one's done
    cycle; ``stall``: the probability of a stall on every DRAM channel each cycle (the
    cycles are then only bounded below by sgd_cycles)."""
    rng = np.random.default_rng(seed)
    g = wu_copies(k)
    words = chunk_words(p, k, nblk)
    banks, rows = p.tm * p.tn, nblk * g * k * k
    assert rows + 4 <= p.wbuf_depth
    wbuf = (rng.standard_normal((banks, rows + 4)) * 0.3).astype(np.float32)
    wbuf[:, rows:] = np.uint32(NAN).view(np.float32)          # past the chunk: never read
    w = rng.standard_normal(words).astype(np.float32)
    v = (rng.standard_normal(words) * 0.1).astype(np.float32)
    if special:
        for arr in (w, v):
            idx = rng.choice(words, max(1, words // 4), replace=False)
            arr[idx] = _specials(rng, len(idx))
        flat = wbuf[:, :rows].reshape(-1)
        idx = rng.choice(flat.size, max(1, flat.size // 4), replace=False)
        flat[idx] = _specials(rng, len(idx))
        wbuf[:, :rows] = flat.reshape(banks, rows)
    if w_addr is None:   # straddle a 4 KiB page: the DMA splits the bursts there
        w_addr = PAGE_WORDS * int(rng.integers(1, 8)) - int(rng.integers(1, words + 1))
    if v_addr is None:
        v_addr = w_addr + words + 2 * GUARD + int(rng.integers(0, 300))
    w_new, v_new = w, v
    for _ in range(2 if again else 1):
        w_new, v_new = sgd_wb_model(wbuf, w_new, v_new, p, k=k, g=g, nblk=nblk, lr=lr,
                                    mom=mom, wd=wd)

    dram, expect = [], []
    for base, old, new in ((w_addr, w, w_new), (v_addr, v, v_new)):
        lo = rng.integers(0, 1 << 32, GUARD, dtype=np.uint64).astype(np.uint32)
        hi = rng.integers(0, 1 << 32, GUARD, dtype=np.uint64).astype(np.uint32)
        dram.append([base - GUARD, [int(x) for x in np.concatenate([lo, bits(old), hi])]])
        expect.append((base - GUARD, np.concatenate([lo, bits(new), hi])))
    cfg = {"k": k, "g": g, "nblk": nblk, "w_addr": w_addr, "v_addr": v_addr,
           "lr": f32_bits(lr), "mom": f32_bits(mom), "wd": f32_bits(wd)}
    script = {
        "name": name, "latency": latency, "dram": dram,
        "wbuf": [[a, [int(x) for x in bits(wbuf[:, a])]] for a in range(rows + 4)],
        "cfg": cfg,
        "restart": [5, {**cfg, "k": 1, "g": 1, "nblk": 1, "w_addr": 7, "v_addr": 9}]
        if restart else None,
        "again": again,
        "stall": stall,
        "windows": [[a, len(e)] for a, e in expect],
    }
    aw = []
    for s in range(0, words, piece):
        n = min(piece, words - s)
        for base in (w_addr, v_addr):
            aw += [tuple(b) for b in axi_bursts(base + s, n, 32, MAX_BURST)]
    runs = 2 if again else 1
    return Case(name, script, expect, [sgd_cycles(words, g, latency, piece)] * runs, aw * runs,
                {"words": words, "G": g, "L": latency}, stall)
