"""The restructured-BN datapath's descriptor-level encoding (efgen/hls/program.py's
docstring): the side record of a FLAG_XF descriptor, the BN constants block, and their
numpy twins (what the conv engine's fused load and store, and BN_FIN, compute), used by
the program builder, the DRAM image and :mod:`efgen.csim.interp`.
"""

from __future__ import annotations

import numpy as np

from efgen.frontend.ir import INPUT
from efgen.hls.desc import XF_FIELDS, XF_WORDS

ADDR_FIELDS = ("LK1", "LX2", "LK2", "SK", "SSUM", "DBG", "MK")
# CONV_BP's error operand SE (another sender's error, added in the store) sits in the
# words of CONV_WU's DBG.

# The BN constants block bnk:<bn>, 8*C words: the C-word vectors in this order.
BNK = ("s1", "s2", "mean", "invstd", "gamma", "beta", "sdy", "sdyx")
BNK_LOAD = BNK.index("mean")      # a consumer's LK points at bnk + BNK_LOAD*C


def xf_record(lk1: int = 0, lx2: int = 0, lk2: int = 0, relu: bool = False, sk: int = 0,
              ssum: int = 0, dbg: int = 0, mk: int = 0, lmode: int = 0,
              se: int = 0) -> np.ndarray:
    """The 16-word side record, as float32 words of the DRAM image (addresses as two
    32-bit words, low first; bit patterns). ``se``: CONV_BP's error operand (the words
    of CONV_WU's ``dbg``)."""
    if se and dbg:
        raise ValueError("SE and DBG share the record's words 12-13")
    dbg = dbg or se
    words = np.zeros(XF_WORDS, np.uint32)
    for name, v in zip(ADDR_FIELDS, (lk1, lx2, lk2, sk, ssum, dbg, mk)):
        v = int(v)
        if v < 0 or v >= 1 << 63:
            raise ValueError(f"{name}: address {v} out of range")
        words[XF_FIELDS[name]] = v & 0xFFFFFFFF
        words[XF_FIELDS[name] + 1] = v >> 32
    words[XF_FIELDS["LRELU"]] = 1 if relu else 0
    words[XF_FIELDS["LMODE"]] = int(lmode)
    return words.view(np.float32)


def read_record(mem: np.ndarray, addr: int) -> dict:
    """The fields of the side record at word ``addr`` of the image ``mem``."""
    w = np.asarray(mem[addr:addr + XF_WORDS], np.float32).view(np.uint32).astype(np.int64)
    rec = {n: int(w[XF_FIELDS[n]] | (w[XF_FIELDS[n] + 1] << 32)) for n in ADDR_FIELDS}
    rec["SE"] = rec["DBG"]
    rec["LRELU"] = bool(w[XF_FIELDS["LRELU"]])
    rec["LMODE"] = int(w[XF_FIELDS["LMODE"]])
    return rec


def bn_term(y: np.ndarray, k: np.ndarray) -> np.ndarray:
    """gamma*((y - mean)*invstd) + beta per channel (axis 1), k = (mean, invstd, gamma,
    beta) rows: the golden's order of operations (efgen.golden.restructured)."""
    ch = lambda v: v[None, :, None, None]  # noqa: E731
    mean, invstd, gamma, beta = k
    return ch(gamma) * ((y - ch(mean)) * ch(invstd)) + ch(beta)


def load_value(x1: np.ndarray, rec: dict, get_fm, get_vec) -> np.ndarray:
    """The dense value a FLAG_XF load stream delivers: relu?(term1 + term2).
    ``get_fm(addr)`` reads a tensor of x1's shape; ``get_vec(addr, n)`` a plain vector."""
    C = x1.shape[1]
    consts = lambda a: get_vec(a, 4 * C).reshape(4, C)  # noqa: E731
    v = bn_term(x1, consts(rec["LK1"])) if rec["LK1"] else x1
    if rec["LX2"]:
        x2 = get_fm(rec["LX2"])
        v = v + (bn_term(x2, consts(rec["LK2"])) if rec["LK2"] else x2)
    if rec["LRELU"]:
        v = np.where(v > 0, v, 0).astype(v.dtype) if not np.isnan(v).any() else \
            np.where((v > 0) | np.isnan(v), v, 0).astype(v.dtype)
    return v.astype(np.float64 if x1.dtype == np.float64 else np.float32)


def bndx_value(dz: np.ndarray, y: np.ndarray, rec: dict, get_vec) -> np.ndarray:
    """The BN BP dx a LMODE 1 load delivers: coef*((n*dz - sdy) - x_hat*sdyx)."""
    C = dz.shape[1]
    ch = lambda v: v[None, :, None, None]  # noqa: E731
    mean, invstd, coef, n = get_vec(rec["LK1"], 4 * C).reshape(4, C)
    sdy, sdyx = get_vec(rec["LK2"], 2 * C).reshape(2, C)
    xhat = (y - ch(mean)) * ch(invstd)
    return (ch(coef) * ((ch(n) * dz - ch(sdy)) - xhat * ch(sdyx))).astype(
        np.float64 if dz.dtype == np.float64 else np.float32)


def stats_sums(y: np.ndarray, k: np.ndarray) -> np.ndarray:
    """sum(y - k) then sum((y - k)^2) per channel (2*C words), what FLAG_STATS writes."""
    v = (y.astype(np.float64) - k[None, :, None, None])
    return np.concatenate([v.sum(axis=(0, 2, 3)), (v * v).sum(axis=(0, 2, 3))]).astype(np.float32)


def bn_finalise(s1, s2, k, n: int, eps: float):
    """BN_FIN: mean, biased var and invstd from the shifted sums (float32, the order of
    efgen.golden.restructured; float64 when an input is: the local check's diagnosis)."""
    f = np.float64 if any(np.asarray(a).dtype == np.float64 for a in (s1, s2, k)) \
        else np.float32
    s1, s2, k = (np.asarray(a, f) for a in (s1, s2, k))
    d = s1 / f(n)
    mean = k + d
    var = s2 / f(n) - d * d
    invstd = (f(1) / np.sqrt(var + f(eps))).astype(f)
    return mean.astype(f), var.astype(f), invstd


# ---- the program: which tensors a fused design stores, and the descriptors' records --------

class Fusion:
    """The restructured-BN part of a program (efgen.hls.program._Builder, ``fuse``).

    * ``stats``: batchnorm -> the conv/linear whose FP store accumulates its sums
      (:func:`efgen.model.restructure.stats_producer`); its BN_FP becomes BN_FIN.
    * ``load``: DRAM tensors (a BN's output, or the ReLU fused into it) that are never
      stored: every consumer is a conv/linear whose FP and WU loads apply bn (and the
      ReLU), and the ReLU's error has one sender, a conv/linear whose BP store
      recomputes the mask from the BN's input (record MK); only where the model's plan
      (Design.fusion) fuses the group (efgen.model.restructure.loadable is the same
      rule). Every other BN output is materialised by its BN_FIN (a[7]), a residual add
      after it with FLAG_ADDX (:meth:`_addx`). :meth:`differences` lists every way the
      program departs from what the model prices.
    """

    def __init__(self, b):
        from efgen.model import restructure as R

        net = b.net
        self.b = b
        self.stats: dict[str, str] = {}
        for l in net:
            if l.op == "batchnorm" and (p := R.stats_producer(net, l)):
                self.stats[l.name] = p
        self.conv_bn = {p: bn for bn, p in self.stats.items()}
        self.load: dict[str, tuple[str, bool]] = {}
        self.se = {}
        self.addx = {}
        self.defer = {}
        self.held: dict[str, list] = {}       # layer -> BN_FIN steps held until after it
        self.store_sums = {}
        if b.training is not None:       # the methods' host ops read stored tensors
            return
        # The model's plan (Design.fusion): a group it materialises is stored here too.
        self.plan = R.Plan.from_doc(b.design.fusion) if b.design.fusion else None
        for bn in self.stats:
            d = b.dram(bn)
            relu = d != bn
            if self.plan is not None and d in self.plan.materialise:
                continue
            cons = R._consumers(net, d)
            if not cons or any(c.op not in ("conv", "linear") for c in cons):
                continue
            if relu and net[d].needs_error:
                contrib = b.contributors(d)
                if len(contrib) != 1 or contrib[0].op not in ("conv", "linear") \
                        or contrib[0].name not in b.masks:
                    continue
            self.load[d] = (bn, relu)
        self.records: dict[str, dict] = {}     # record region -> {field: (region, words)}
        # conv/linear -> the other sender's error region its BP store adds (record SE)
        self.se: dict[str, str] = {}
        # BN -> the residual add its BN_FIN materialises (FLAG_ADDX)
        self.addx: dict[str, str] = self._addx()
        # BN (output stored) -> the conv/linear whose BP store accumulates its BP sums
        self.store_sums: dict[str, str] = {}

    def _addx(self) -> dict[str, str]:
        """BNs whose BN_FIN writes the residual add after them (FLAG_ADDX): the BN has no
        ReLU of its own, the add is its only consumer and has two inputs, the other one
        stored. The BN's own output is then never stored and the add needs no ADD_FP
        pass: one pass reads the conv's y and the other operand and writes relu?(bn(y) +
        x2), the group's materialisation as the model prices it (two sources). Where
        the other operand comes later in the net (an option-A shortcut after the block),
        BN_FIN is deferred to just after it (:meth:`emit_fp`): nothing else reads the
        BN's output, and the other operand cannot depend on it (the add is the BN's only
        consumer)."""
        b, net = self.b, self.b.net
        order = {l.name: i for i, l in enumerate(net)}
        out = {}
        self.defer: dict[str, str] = {}       # BN -> the layer its BN_FIN waits for
        for bn in reversed(list(self.stats)):    # the later of two BN operands first
            if bn in b.fused_into:
                continue
            cons = net.consumers(bn)
            if len(cons) != 1 or cons[0].op != "add" or len(cons[0].inputs) != 2:
                continue
            add = cons[0]
            other = [x for x in add.inputs if x != bn]
            if len(other) != 1 or other[0] == INPUT:
                continue
            if b.dram(other[0]) in self.load or b.dram(bn) in self.load:
                continue
            if add.name in out.values():      # both operands BNs: the later one writes it
                continue
            out[bn] = add.name
        for bn, add in out.items():
            other = [x for x in net[add].inputs if x != bn][0]
            if order[other] > order[bn]:
                self.defer[bn] = other
        return out

    def emit_fp(self, fp: list, bn: str, step) -> None:
        """Append BN_FIN's step, or hold it until its add's other operand is written."""
        if bn in self.defer:
            self.held.setdefault(self.defer[bn], []).append(step)
        else:
            fp.append(step)

    def flush_fp(self, fp: list, layer: str) -> None:
        """Before ``layer``'s FP: the held BN_FIN steps whose operand's layer came before
        it (``layer`` is the next in the net after the operand's)."""
        order = {l.name: i for i, l in enumerate(self.b.net)}
        for name in sorted([k for k in self.held if order[k] < order[layer]],
                           key=lambda k: order[k]):
            fp.extend(self.held.pop(name))

    def add_absorbed(self, l) -> bool:
        """The add's FP pass is done by its BN's BN_FIN (FLAG_ADDX)."""
        return l.name in self.addx.values()

    def sum_in_store(self, d: str, contrib: list, srcs: list[str], masked: bool) -> bool:
        """Route the error of DRAM tensor ``d`` (two senders) through its last sender's
        BP store (efgen.model.restructure.finalisers: the sender earliest in the net runs
        BP last): that store reads the other sender's error beside its tile (record SE),
        adds it, applies the ReLU mask and writes the final error; no ERRSUM pass. Only a
        conv/linear whose BP the conv engine runs (and a stored ``d``: a fused load's
        mask has one sender by construction)."""
        b = self.b
        if b.training is not None or len(srcs) != 2 or d in self.load:
            return False
        order = {l.name: i for i, l in enumerate(b.net)}
        last = min(contrib, key=lambda c: order[c.name])
        if last.op not in ("conv", "linear") or not last.runs_bp:
            return False
        part = b.dst_of[(last.name, d)][0]
        other = [s for s in srcs if s != part]
        if len(other) != 1:
            return False
        b.regions.pop(part)
        b.dst_of[(last.name, d)] = (b.err(d).name, ["MASK"] if masked else [],
                                    {6: f"act:{d}"} if masked else {})
        self.se[last.name] = other[0]
        return True

    # ---- regions ---------------------------------------------------------------------
    def bp_sums(self) -> list[str]:
        """BNs whose BP sums the finalising BP store accumulates: those whose fused ReLU's
        error that store masks (the mask source is y, so x_hat costs no extra stream)."""
        net = self.b.net
        return [bn for d, (bn, relu) in self.load.items()
                if relu and net[d].needs_error and net[bn].needs_error]

    def dx_fused(self) -> dict[str, str]:
        """BN -> its producing conv whose BP and WU loads apply the BN's BP dx (LMODE 1):
        the conv has no bias and runs BP or WU; the BN runs BP. A conv whose input is a
        fused load has both in its WU record: the input transform in LK1/LX2/LK2/LRELU,
        the dx constants at MK and y at SK."""
        net, out = self.b.net, {}
        plan = getattr(self, "plan", None)
        for bn, p in self.stats.items():
            lp = net[p]
            if not net[bn].runs_bp or lp.bias or not (lp.trainable or lp.runs_bp):
                continue
            if plan is not None and bn in plan.dx_materialise:
                continue
            out[bn] = p
        return out

    def memory_map(self) -> None:
        for bn in self.dx_fused():       # the dx constants BN_BP writes for the loads
            self.b.add(f"bnx:{bn}", "vec", (8 * self.b.net[bn].in_shape[0],))
        for bn in self.stats:
            c = self.b.net[bn].in_shape[0]
            # FLAG_ADDX: the add operand's address in two more words (resolve)
            self.b.add(f"bnk:{bn}", "vec", (len(BNK) * c + (2 if bn in self.addx else 0),))
        for bn in self.bp_sums():      # stats: mean, var, then sum(dy), sum(dy*x_hat)
            r = self.b.regions[f"stats:{bn}"]
            c = self.b.net[bn].in_shape[0]
            r.shape, r.words = (4 * c,), 4 * c

    def stored(self, d: str) -> bool:
        return d not in self.load and d not in self.addx

    def _record(self, name: str, **fields) -> str:
        self.b.add(name, "vec", (XF_WORDS,))
        self.records[name] = fields
        return name

    def _lk(self, bn: str):
        return (f"bnk:{bn}", BNK_LOAD * self.b.net[bn].in_shape[0])

    def _load_fields(self, d: str) -> dict:
        if d not in self.load:
            return {}
        bn, relu = self.load[d]
        return {"lk1": self._lk(bn), "relu": relu}

    def source(self, d: str) -> str:
        """The region a consumer's load reads for DRAM tensor ``d``."""
        if d in self.load:
            return f"act:{self.b.dram(self.b.net[self.load[d][0]].inputs[0])}"
        return f"act:{d}"

    # ---- descriptors -----------------------------------------------------------------
    def conv_fp(self, l, a: dict, fl: list) -> None:
        d = self.b.dram(l.inputs[0])
        fields = self._load_fields(d)
        a[0] = self.source(d)
        if l.name in self.conv_bn:
            bn = self.conv_bn[l.name]
            fields.update(sk=(f"rm:{bn}", 0), ssum=(f"bnk:{bn}", 0))
            fl.append("STATS")
        if fields:
            fl.append("XF")
            a[3] = self._record(f"xf:{l.name}:fp", **fields)

    def bn_fp(self, l, relu: list, x: str, y: str):
        """BN_FIN's address slots and flags (None: the BN keeps its BN_FP pass)."""
        if l.name not in self.stats:
            return None
        a = {0: x, 1: f"gamma:{l.name}", 2: f"beta:{l.name}", 3: f"stats:{l.name}",
             4: f"rm:{l.name}", 5: f"rv:{l.name}", 6: f"bnk:{l.name}"}
        if l.name in self.addx:           # the residual add's output, relu?(bn(y) + x2)
            add = self.addx[l.name]
            a[7] = f"act:{self.b.dram(add)}"
            return a, ["ADDX"] + (["RELU"] if add in self.b.fused_into else [])
        if self.b.dram(l.name) not in self.load:
            a[7] = y
        return a, relu

    def conv_bp(self, l, a: dict, fl: list) -> None:
        d = self.b.dram(l.inputs[0])
        dz = self.dz_of(l)
        fields: dict = {}
        if dz:
            a[0] = dz[0]
            fields.update(dz[1])
        if d in self.load and "MASK" in fl:
            bn, _ = self.load[d]
            a[6] = self.source(d)
            fields["mk"] = self._lk(bn)
            if bn in self.bp_sums():
                fl.append("STATS")
                fields["ssum"] = (f"stats:{bn}", 2 * self.b.net[bn].in_shape[0])
        if l.name in self.se:
            fields["se"] = (self.se[l.name], 0)
        if "mk" not in fields and (bn := self._store_sums_bn(l, d, a, fl)):
            c = self.b.net[bn].in_shape[0]
            fields.update(sk=(f"act:{self.b.net[bn].inputs[0]}", 0), mk=self._lk(bn),
                          ssum=(f"stats:{bn}", 2 * c))
            fl.append("STATS")
            r = self.b.regions[f"stats:{bn}"]      # mean, var, then the sums this store writes
            r.shape, r.words = (4 * c,), 4 * c
            self.store_sums[bn] = l.name
        if fields:
            fl.append("XF")
            a[3] = self._record(f"xf:{l.name}:bp", **fields)

    def _store_sums_bn(self, l, d: str, a: dict, fl: list) -> str | None:
        """A BN whose dy is the error this BP store finalises (``d``'s, masked by a stored
        ReLU output) and whose output is stored: the store accumulates its BP sums
        sum(dy), sum(dy*x_hat), x_hat from the BN's input y (record SK, one more stream
        read beside the store; MK: its mean and invstd), so BN_BP skips its sums pass.
        One BN per store; the first in the net."""
        from efgen.model import restructure as R

        b, net = self.b, self.b.net
        if b.training is not None or "MASK" not in fl or a.get(7) != f"err:{d}":
            return None
        for bn in self.stats:
            lb = net[bn]
            y = lb.inputs[0]
            if not (lb.runs_bp or lb.trainable) or bn in self.bp_sums() \
                    or bn in self.store_sums or R._dz_tensor(net, bn) != d \
                    or b.dram(y) != y or f"act:{y}" not in b.regions:
                continue
            return bn
        return None

    def bn_bp(self, l, fl: list, a: dict) -> None:
        if l.name in self.bp_sums() or l.name in self.store_sums:
            fl.append("SUMS")
        if l.name in self.dx_fused():    # no dx pass: the constants for the conv's loads
            fl.remove("DX")
            fl.append("DXK")
            a[7] = f"bnx:{l.name}"

    def dz_of(self, l):
        """A conv whose BP/WU loads apply its BN's dx: (the BN's dy region, the fields)."""
        bn = {p: b for b, p in self.dx_fused().items()}.get(l.name)
        if bn is None:
            return None
        c = self.b.net[bn].in_shape[0]
        return (f"err:{self.b.dram(bn)}",
                {"lk1": (f"bnx:{bn}", 0), "lk2": (f"bnx:{bn}", 4 * c),
                 "lx2": (f"act:{l.name}", 0), "lmode": 1})

    def conv_wu(self, l, a: dict, fl: list) -> None:
        d = self.b.dram(l.inputs[0])
        dz = self.dz_of(l)
        fields: dict = {}
        if d in self.load:
            a[1] = self.source(d)
            fields = self._load_fields(d)
        if dz:
            a[0] = dz[0]
            if fields:      # both: the dx constants at MK, y at SK
                k = dz[1]
                fields.update(mk=k["lk1"], sk=k["lx2"], lmode=1)
            else:
                fields.update(dz[1])
        if not fields:
            return
        if 7 in a:
            fields["dbg"] = (a.pop(7), 0)
        fl.append("XF")
        a[7] = self._record(f"xf:{l.name}:wu", **fields)

    def not_stored(self) -> set[str]:
        """Golden tensors the fused loads keep out of DRAM."""
        return ({f"{d}:y" for d in self.load} | {f"{p}:dy" for p in self.dx_fused().values()}
                | {f"{bn}:y" for bn in self.addx})

    def drop_regions(self, regions: dict) -> None:
        """The error regions no descriptor writes: a BN dx the conv's loads apply."""
        for p in self.dx_fused().values():
            regions.pop(f"err:{p}", None)

    def resolve(self, regions: dict) -> None:
        """Every record's words (and FLAG_ADDX's operand addresses), now that the regions
        are placed."""
        for bn, add in self.addx.items():
            other = [x for x in self.b.net[add].inputs if x != bn][0]
            r = regions[f"bnk:{bn}"]
            v = regions[f"act:{self.b.dram(other)}"].offset
            words = np.zeros(r.words, np.uint32)
            words[-2:] = (v & 0xFFFFFFFF, v >> 32)
            r.init = "data"
            r.data = words.view(np.float32)  # type: ignore[attr-defined]
        for name, fields in self.records.items():
            kw = {k: (v if k in ("relu", "lmode") else regions[v[0]].offset + v[1])
                  for k, v in fields.items()}
            r = regions[name]
            r.init = "data"
            r.data = xf_record(**kw)  # type: ignore[attr-defined]

    def differences(self) -> list[str]:
        """Each way the program differs from what the model prices for the design's plan
        (efgen.model.restructure: fused_jobs, fused_aux): empty when the model prices
        exactly the loads, stores and passes this program runs."""
        from efgen.model import restructure as R

        b, net = self.b, self.b.net
        plan = getattr(self, "plan", None)
        if plan is None:
            plan = R.initial_plan(net)
        doc = plan.to_doc(net)
        fin = R.finalisers(net)
        fused = R._fused_relus(net)
        model = {
            "groups fused into loads": set(doc["groups_fused"]),
            "BN BP dx in loads": set(doc["bn_dx_fused"]),
            "BN BP sums in a BP store": {bn for t in fin for bn in R._bns_finalised_at(net, t)},
            "error sums in a BP store": {w for t, (w, s) in fin.items() if w and len(s) == 2},
            "error sum/mask passes": {t for t, (w, s) in fin.items()
                                      if not w and (len(s) > 1 or t in fused)},
            "adds in BN_FIN": {f"{bn}->{l.name}" for l in net if l.op == "add"
                               and (bn := R.addx_bn(net, l.name))},
            "BN statistics in stores": {l.name for l in net if l.op == "batchnorm"
                                        and R.stats_producer(net, l)},
        }
        prog = {
            "groups fused into loads": set(self.load),
            "BN BP dx in loads": set(self.dx_fused()),
            "BN BP sums in a BP store": set(self.bp_sums()) | set(self.store_sums),
            "error sums in a BP store": set(self.se),
            "error sum/mask passes": set(b.sums),
            "adds in BN_FIN": {f"{bn}->{add}" for bn, add in self.addx.items()},
            "BN statistics in stores": set(self.stats),
        }
        out = []
        for k, m in model.items():
            p = prog[k]
            for x in sorted(m - p):
                out.append(f"{k}: {x} (model: yes, program: no)")
            for x in sorted(p - m):
                out.append(f"{k}: {x} (model: no, program: yes)")
        return out

    def summary(self) -> dict:
        """What the generated C++ fuses, against the model's plan (Design.fusion): the
        report's and the C-simulation's statement of what is and is not built."""
        net, doc = self.b.net, self.b.design.fusion or {}
        mat = sorted(bn for bn in self.stats if self.b.dram(bn) not in self.load)
        plan_fused = set(doc.get("groups_fused", ()))
        return {
            "bn_stats_in_store": sorted(self.stats),
            "bn_fp_pass": sorted(l.name for l in net
                                 if l.op == "batchnorm" and l.name not in self.stats),
            "fused_into_loads": sorted(self.load),
            "materialised_by_bn_fin": mat,
            "plan_fused_groups_materialised": sorted(plan_fused - set(self.load)),
            "bn_bp_sums_in_store": sorted(self.bp_sums() + list(self.store_sums)),
            "bn_dx_in_loads": sorted(self.dx_fused()),
            "error_sums_in_store": sorted(self.se),
            "adds_in_bn_fin": sorted(self.addx.values()),
            "differences": self.differences(),
            # what neither the program nor the model's plan does (the model materialises
            # or runs a pass there, and prices it so)
            "not_built": ["BN BP sums whose error a vector pass finalises, or a second BN's "
                          "at the same store (a BN_BP sums pass); the BN BP dx in the "
                          "loads of a conv with a bias (a dx pass)",
                          "residual adds and two-source groups in the consumers' loads, "
                          "and the BN transform in vector passes' loads (the group is "
                          "materialised once: BN_FIN, with FLAG_ADDX for an add after a "
                          "BN; other adds keep their ADD_FP pass)",
                          "error sums of three or more senders, or whose last sender is "
                          "not a conv/linear (ERRSUM pass)"],
        }


def whole_tensor_passes(prog) -> tuple[int, dict]:
    """The vector engine's whole-tensor passes a program runs (one loop over a feature
    map or error each): BN_FP three (mean, centred variance, normalise), BN_FIN one when
    it materialises (a[7]), BN_BP one for its sums unless a BP store accumulated them
    (FLAG_SUMS) and one for its dx (FLAG_DX), every other vector descriptor one. The
    conv engine's descriptors are not passes. Returns (total, per op)."""
    from efgen.hls.desc import FLAGS, OPS

    inv = {v: k for k, v in OPS.items()}
    n, per_op = 0, {}
    for s in prog.fp + prog.bp:
        op, fl = inv[s.desc.op], s.desc.flags
        if op.startswith("CONV"):
            continue
        k = {"BN_FP": 3, "BN_FIN": int(s.desc.a[7] != 0),
             "BN_BP": int(not fl & FLAGS["SUMS"]) + int(bool(fl & FLAGS["DX"]))}.get(op, 1)
        n += k
        if k:
            per_op[op] = per_op.get(op, 0) + k
    return n, dict(sorted(per_op.items()))


def job_streams(prog) -> dict:
    """(layer, phase) -> the extra DRAM streams of each conv-engine descriptor as the
    program encodes them (flags and side record), in the model's terms
    (efgen.model.engine.Job): ``in_extra`` (a second load stream: LX2, or y of an LMODE 1
    dx load), ``eo_extra`` (WU's error tiles through the dx load), ``st_extra`` (streams
    read beside the BP store: SE, the mask source a[6], SK) and ``acc`` (FLAG_STATS)."""
    from efgen.hls.desc import FLAGS, OPS

    inv = {v: k for k, v in OPS.items()}
    out = {}
    for s in prog.fp + prog.bp:
        if not inv[s.desc.op].startswith("CONV"):
            continue
        fl = s.desc.flags
        rec = None
        if fl & FLAGS["XF"]:
            rec = read_record(np.asarray(prog.regions[f"xf:{s.layer}:{s.what}"].data), 0)
        has = lambda k: int(bool(rec and rec[k]))  # noqa: E731
        dx = int(bool(rec and rec["LMODE"] == 1))
        acc = int(bool(fl & FLAGS["STATS"]))
        if s.what == "fp":
            out[(s.layer, "fp")] = dict(in_extra=has("LX2"), acc=acc)
        elif s.what == "bp":
            out[(s.layer, "bp")] = dict(in_extra=dx, acc=acc, st_extra=has("SE") + has("SK")
                                        + int(bool(fl & FLAGS["MASK"])))
        else:      # WU: with MK the dx's y is at SK and LX2 is the input's second operand
            out[(s.layer, "wu")] = dict(eo_extra=dx, in_extra=has("LX2") if (
                not dx or has("MK")) else 0)
    return out
