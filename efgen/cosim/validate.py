"""The analytical model against the reference RTL: the same layer-phases, the same Design.

:func:`rtl_hw` states the RTL's hardware parameters in the model's terms
(:class:`efgen.design.HwParams`): its Tm x Tn and buffers, one word a cycle on each of
its three AXI ports (the port moves ``RtlParams.wpb`` words a beat; the SGD write-back
takes one word a cycle, the input-tile loader and the output-tile storer a whole beat in
the reshaped layout (``load_words``, ``store_words``), the weight loader ``wl_words``;
bursts are ``max_burst`` beats of ``wpb`` words), its MAC pipeline depths, its DRAM latency and per-transfer
overheads. :func:`model_rows` evaluates :func:`efgen.model.engine.evaluate` on exactly
the co-simulated layer-phases (their tiling fixed) and sets its cycles and bursts
against the measured ones. The model is not fitted per case: the constants below are
structural facts of the generated RTL (documented in templates/rtl/*.v.j2).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from efgen.cosim.layers import ALIGN, DRAM_LATENCY, LayerPhase, Result
from efgen.design import HwParams
from efgen.model.engine import Job, evaluate_chosen, phase_job
from efgen.rtl.dma import PAGE_BYTES, axi_bursts
from efgen.rtl.engine import ACC_DIST, WLOAD_LATENCY, pipeline_depth
from efgen.rtl.fpu import ADD_LATENCY
from efgen.rtl.sgd import PIECE as SGD_PIECE
from efgen.rtl.top import DX_DEPTH, XF_DEPTH, RtlParams

# Cycles the RTL spends around each transfer and block, beyond DRAM latency and words
# (layer_seq.v: the loader's tile set-up steps and the handshake states; tile_rd/tile_wr
# command and FIFO stages; axi_dma_rd's 7 cycles from command to first word, 2 of them
# its read buffer's registered block-RAM read).
LOAD_OVERHEAD = 29        # a step's tile load beyond the DRAM latency and its words, start to start: the tile set-up after the engine takes the other half (16: 9 steps, 7 of them followed by a hold for the registered set-up product), tile_rd's command to first word and last word to done (9: axi_dma_rd's 7 with its read buffer's 2), done to the engine's start (4) (measured on load-bound layer-phases at 2x2 and 2x4, issue 13; was 24 without the 4 and 1 of the 9)
LOAD_SETUP = 16           # of which the set-up: an FP/BP chunk's first tile does it during the weight load
STORE_OVERHEAD = 19       # tile set-up (8 steps, 6 of them followed by a hold for the registered set-up product) + store-path read and FIFO (5: engine_ram's read and output register since issue 19)
BLOCK_OVERHEAD = 2        # computer, per engine block: block start, wait
STEP_OVERHEAD = 3         # computer, per step (one IFM half; io/WU: its mc blocks): step, after, next
SGD_OVERHEAD = 72         # sgd_wb: pipeline (incl. the two bank-mux registers; fp32_mul 4, fp32_add 5 cycles, groups of 5 words), one piece of 16 words in flight, drain (efgen.rtl.sgd: +9 on the G = 1 closed form since issue 14 part 2, +1 for engine_ram's output register, issue 19)
WLOAD_DRAIN = WLOAD_LATENCY - 1   # engine_wload pipeline beyond the bank register (L_WEND)
WRUN_OVERHEAD = 19        # weight-load run: the set-up steps (16, as a tile load) and 3 holds for the registered set-up product (BP: per DRAM row; FP: 2 per chunk)
WPAIR_OVERHEAD = 2        # BP weight load: engine_wload set up per pair (L_WCFG, L_WCFG2), stream stalled
BIAS_OVERHEAD = 8         # (the store path's bias add: ADD_LATENCY + its operand register per store, HwParams.bias_store)
                          # FP with a bias: layer_seq's L_BIAS/L_BDAT (command, the last row's write, back to L_STEP) and axi_dma_rd's command to first word (7) beyond the DRAM latency and the rows
WUB_OVERHEAD = 62         # WU with a bias: layer_seq's C_BSET (4 cycles: sgd_wb's cfg_k/cfg_g settle), C_BGO, C_BW and sgd_wb's bias pass beyond the DRAM latency, its last channel's fold and the velocity and gradient pieces after it (efgen.model.engine: t_wub; measured on the WU bias cases of 4x4/128 and 2x4 NCHW: 60-66)
XF_OVERHEAD = 10          # the fused datapath (RtlParams.fuse; efgen.model.engine: t_rec, t_xk): per side-record read and per constants load beyond the DRAM latency and the words: the loader's states (L_REC/L_RDAT/L_RCHK, L_KCMD/L_KDAT) and axi_dma_rd's command to first word
STATS_OVERHEAD = 20       # FP with the BN sums in the store (t_stats): beyond the DRAM latency, k's words, the bias load's overhead and the fold's passes: tile_wr's drain of its chains before and after the fold (2 x 8), the output's read, FIFO and the write engine's AW and B response, S_SOUT/S_SOW (with XF_OVERHEAD measured on s1-s3 of 4x4/128 and 2x4 NCHW: 23-41 beyond each case's unfused twin's own error)
JOB_OVERHEAD = 45         # descriptor set-up steps (18, 15 of them waiting a cycle for the registered set-up product), start/done handshakes, last write's B
# vec_unit (templates/rtl/vec_unit.v.j2), measured on Verilator and Icarus at DRAM latency 24
# (tests/test_rtl_vec.py checks them on every run there)
VEC_SETUP = 52            # the start cycle and the shift-add N: 3 factors x (16 bits + a transfer)
VEC_PASS_OVERHEAD = 20    # per pass beyond the DRAM latency, the words and the write tail: pass set-up and commands, axi_dma_rd's command to first word (7), the operand register and the adder (1 + 5) and FIFO, the write engine's AW and the last B response


assert ALIGN * 4 % PAGE_BYTES == 0, "page_splits assumes page-aligned tensor bases"


def rtl_hw(p: RtlParams, latency: int = DRAM_LATENCY) -> HwParams:
    e = p.engine
    return HwParams(precision="fp32", tm=e.tm, tn=e.tn, ifm_depth=e.ifm_depth,
                    ofm_depth=e.ofm_depth, wbuf_depth=e.wbuf_depth, clock_mhz=100.0,
                    # the rate: one word a cycle (word-serial sgd_wb behind
                    # beat_unpack/beat_pack); a burst: max_burst beats of wpb words
                    port_words=1, ports=3, dma_start=0, max_burst_beats=p.max_burst * p.wpb,
                    load_words=p.load_words, wload_words=e.wl_words,
                    store_words=p.store_words,
                    mac_depth=pipeline_depth("conv", e.tn),
                    wu_depth=pipeline_depth("wu", e.tn), acc_dist=ACC_DIST,
                    dram_latency=latency, load_overhead=LOAD_OVERHEAD,
                    load_setup=LOAD_SETUP, wrun_overhead=WRUN_OVERHEAD,
                    store_overhead=STORE_OVERHEAD, block_overhead=BLOCK_OVERHEAD,
                    step_overhead=STEP_OVERHEAD, wpair_overhead=WPAIR_OVERHEAD,
                    wload_drain=WLOAD_DRAIN,
                    job_overhead=JOB_OVERHEAD, sgd_overhead=SGD_OVERHEAD,
                    bias_overhead=BIAS_OVERHEAD, bias_store=ADD_LATENCY + 1,
                    wub_overhead=WUB_OVERHEAD,
                    stats_overhead=STATS_OVERHEAD if p.fuse else 0,
                    xf_overhead=XF_OVERHEAD if p.fuse else 0,
                    xf_depth=XF_DEPTH if p.fuse else 0,
                    dx_depth=DX_DEPTH if p.fuse else 0,
                    outstanding=p.outstanding, sgd_piece=SGD_PIECE, mask_port=True,
                    wdb=e.wdb, pack=e.pack, p=e.p,
                    # WU's adder tree over the P pixel lanes: ADD_LATENCY a level
                    # (efgen.rtl.engine.pipeline_depth("wu", tn, p))
                    wu_tree_level=ADD_LATENCY if e.p > 1 else None)


def vec_words(desc, tl: int) -> int:
    """Words vec_unit streams per pass: batch * ceil(out_c/T) * out_h * out_w * T."""
    return desc.batch * -(-desc.out_c // tl) * desc.out_h * desc.out_w * tl


def vec_passes(desc) -> int:
    """vec_unit's passes over the tensor: max(1, streams - 1) (sources, then gates)."""
    from efgen.hls.desc import FLAGS, OPS

    op = desc.op
    k = desc.n_src if op == OPS["ERRSUM"] else (1 if op == OPS["RELU_FP"] else 2)
    k += bool(desc.flags & FLAGS["MASK"]) and op in (OPS["RELU_BP"], OPS["ERRSUM"])
    return max(1, k - 1)


def vec_cycles(p: RtlParams, desc, latency: int = DRAM_LATENCY, base_words: int = 0) -> int:
    """CYCLES of an element-wise descriptor on vec_unit (RtlParams ``p``; its a[7] at
    word ``base_words + a[7]`` of the bus). Per pass: DRAM latency, one word a cycle, and
    the write tail - axi_dma_wr addresses a burst only once its beats are buffered and
    streams one beat a cycle, so after the last word comes in, the W channel still owes
    what the burst recurrence below leaves (the largest burst, without page splits). At
    ``p.wpb`` words a beat a burst fills in wpb words' cycles a beat and drains in one."""
    n = vec_words(desc, p.tl)
    addr = base_words + int(desc.a[7])
    start = end = 0
    left, off = n, addr % p.wpb           # words of the stream; the first beat's offset
    for b in axi_bursts(addr, n, p.axi_width, p.max_burst):
        words = min(left, b.beats * p.wpb - off)
        left, off = left - words, 0
        start += words                    # its last word in: one word a cycle (beat_pack
        end = max(start, end) + b.beats   # packs them); its W beats, after the previous burst's
    return VEC_SETUP + vec_passes(desc) * (VEC_PASS_OVERHEAD + latency + n + end - start)


def job_of(lp: LayerPhase) -> Job:
    """The model's job for a co-simulated layer-phase."""
    ho, wo = lp.out_hw
    job = phase_job(lp.name, lp.phase, lp.op, lp.n, lp.m, lp.batch, h=lp.h, w=lp.w, ho=ho,
                    wo=wo, k=lp.k, s=lp.s, p=lp.p, mask=lp.mask, bias=lp.bias)
    return replace(job, acc=int(lp.stats), xf=int(lp.xf > 0 or lp.dx),
                   in_extra=int(lp.dx and lp.phase == "bp"),
                   eo_extra=int(lp.dx and lp.phase == "wu"), st_extra=int(lp.se) + int(lp.sk),
                   mk=int(lp.mk or (lp.dx and lp.xf > 0 and lp.phase == "wu")))


@dataclass(frozen=True)
class Row:
    label: str
    max_rel: float
    cycles: int
    model: float
    bursts: int
    model_bursts: float
    page_splits: float = 0.0     # of model_bursts: runs the DMA splits at a 4 KiB page

    @property
    def err_pct(self) -> float:
        return 100.0 * (self.model - self.cycles) / self.cycles


def model_rows(p: RtlParams, results: list[Result], latency: int = DRAM_LATENCY) -> list[Row]:
    if not results:
        return []
    hw = rtl_hw(p, latency)
    jobs = [job_of(r.lp) for r in results]
    tiles = [(r.lp.tr, r.lp.tc, r.lp.mc, r.lp.order) for r in results]
    # bursts with their 4 KiB page splits: the driver starts every tensor on a page (ALIGN)
    m = evaluate_chosen(jobs, tiles, hw, 4.0, 1e9, p.layout, weights_blocked=True,
                        page_words=PAGE_BYTES // 4, beat_words=p.wpb)
    return [Row(r.lp.label, r.max_rel, r.cycles, float(m["cycles"][i]), sum(r.bursts),
                float(m["bursts"][i]), float(m["page_splits"][i]))
            for i, r in enumerate(results)]


# bn_unit (templates/rtl/bn_unit.v.j2, efgen.rtl.bn): constants of the generated RTL,
# measured on Icarus and Verilator at DRAM latency 24 (tests/test_rtl_bn.py checks them)
BN_SETUP = 70             # the start cycle, 4 shift-add set-up products (17 cycles each), the check, done
BN_STEP = 2               # every micro-program step: fetch, execute (a skipped step: these only)
BN_VRD_OVERHEAD = 9       # a vector read beyond the DRAM latency and its words: command to first word, the step's end test
BN_VWR_OVERHEAD = 9       # a vector write beyond its words and beats (the bus answers writes without the read latency): FIFO, AW, the B response
BN_RUN_OVERHEAD = 9       # a stream run (one image of one pass) beyond the DRAM latency and its words: commands, first word
BN_WRUN_OVERHEAD = 7      # a writing run's tail beyond its chain and W beats: FIFO, AW, the B response
BN_DRAIN = 25             # after a pass's last run: the chain empties (the sums' last adds)
BN_ACC_GAP = 7            # an accumulating pass: a lane's words at least this many cycles apart (its sum read at the take)
BN_CHAIN = {"FC": 20, "BE": 24, "FX": 26}   # a writing pass's chain: taken word to its output register
BN_X2 = 10                # BN_FIN with FLAG_ADDX: x2's address (2 words) beyond the DRAM latency: command, first word, the check
BN_DIV_CYCLES = 31        # fp32_div / fp32_sqrt a lane: issue and operand registers, 28 cycles, the result register and its write


def _bn_write_tail(addr: int, n: int, p) -> int:
    """The W beats the write engine still owes once the last of ``n`` words (one a
    cycle from word ``addr``) is in (vec_cycles' burst recurrence)."""
    start = end = 0
    left, off = n, addr % p.wpb
    for b in axi_bursts(addr, n, p.axi_width, p.max_burst):
        words = min(left, b.beats * p.wpb - off)
        left, off = left - words, 0
        start += words
        end = max(start, end) + b.beats
    return end - start


def bn_cycles(p: RtlParams, desc, latency: int = DRAM_LATENCY, base_words: int = 0) -> int:
    """CYCLES of a BN_FP / BN_BP / BN_FIN descriptor on bn_unit: its micro-program
    (efgen.rtl.bn.program) step by step, per channel block of T lanes."""
    from efgen.hls.desc import FLAGS, OPS
    from efgen.rtl import bn
    from efgen.rtl.fpu import ADD_LATENCY, MUL_LATENCY

    tl = p.tl
    B, C, H, W = desc.batch, desc.in_c, desc.in_h, desc.in_w
    fl = desc.flags
    a = [base_words + int(v) for v in desc.a]
    hwt = H * W * tl
    cb_n = -(-C // tl)
    count = B * H * W
    conv = 1 + max(24 - count.bit_length(), 24 - max(1, count - 1).bit_length())
    total = BN_SETUP + conv
    is_bp, is_fin = desc.op == OPS["BN_BP"], desc.op == OPS["BN_FIN"]
    y = is_fin and a[7] != base_words
    addx = bool(fl & FLAGS["ADDX"])
    conds = {"": True, "DX": bool(fl & FLAGS["DX"]), "TRAIN": bool(fl & FLAGS["TRAIN"]),
             "DBG": bool(fl & FLAGS["TRAIN"]) and a[6] != base_words,
             "Y": y and not addx, "YX": y and addx, "SUMS": bool(fl & FLAGS["SUMS"]),
             "NOSUMS": not fl & FLAGS["SUMS"],
             "DXK": bool(fl & FLAGS["DXK"]) and not fl & FLAGS["DX"]}
    if conds["YX"]:
        total += BN_X2 + latency
    lat = {"ADD": ADD_LATENCY, "MUL": MUL_LATENCY}

    def op_cycles(unit, n):
        if unit in lat:
            return n + lat[unit] + 3      # + the operand and the result registers
        return BN_DIV_CYCLES * n + 1

    steps = [] if is_bp else list(bn.FP_PRE)
    for cb in range(cb_n):
        cv = min(tl, C - cb * tl)
        block = bn.BP_BLOCK if is_bp else bn.FIN_BLOCK if is_fin else bn.FP_BLOCK
        for s in (list(steps) if cb == 0 else []) + block:
            kind, cond, unit, dst, _, _, _, ai, plus_c = s
            total += BN_STEP
            if not conds[cond]:
                continue
            if kind == "OP":
                total += op_cycles(unit, 1 if dst in bn.SCALARS else cv)
            elif kind == "VRD":
                total += BN_VRD_OVERHEAD + latency + cv
            elif kind == "VWR":
                addr = a[ai] + int(plus_c) * C + cb * tl
                total += BN_VWR_OVERHEAD + cv + _bn_write_tail(addr, cv, p)
            elif kind == "PASS":
                gap = max(tl, BN_ACC_GAP)
                for b in range(B):
                    if unit in bn.ACC_PASSES:
                        words = H * W * gap - (gap - tl)
                        total += BN_RUN_OVERHEAD + latency + words
                    else:
                        off = (b * cb_n + cb) * hwt
                        total += (BN_RUN_OVERHEAD + latency + hwt + BN_CHAIN[unit]
                                  + BN_WRUN_OVERHEAD + _bn_write_tail(a[7] + off, hwt, p))
                total += BN_DRAIN
        steps = []
    return total

# pool_unit (templates/rtl/pool_unit.v.j2): its control steps, one a cycle (measured on
# Verilator and Icarus at DRAM latency 24; tests/test_rtl_pool.py checks them on every run)
POOL_SETUP = 116          # the start cycle, the sizes, the geometry check (4), six shift-add products (18 cycles each), the rejection test
POOL_PASS = 1             # per pass: its write command (and the mask stream's)
POOL_LOAD = 18            # per source row loaded: its offset sy * row words (18) ...
POOL_LOAD_DMA = 7         # ... and axi_dma_rd's command to first word beyond the DRAM latency
POOL_WORD = 6             # per output word: x * s - pad, its columns, its window, first tap, result, push
POOL_TAP = 7              # per tap: column and next tap, buffer addresses, two reads, operands, the operation
POOL_ADD = 6              # per add: fp32_add_fb's 5 stages and the result
POOL_TAIL = 20            # per pass after the last word: the write engine's last burst and B response
FLAT_PLANE = 12           # flatten, per plane beyond the DRAM latency and its words: the plane's set-up (2), its read command, axi_dma_rd's command to first word (7), the emit set-up and the next plane
FLAT_TAIL = 5             # flatten, after the last word issues beyond the write engine's last burst (its W beats): the read pipeline (2), AW, the B response, done; + 1 at wpb > 1 (beat_pack's registered beat)


def pool_geometry(desc, tl: int) -> dict:
    """pool_unit's view of a descriptor (pool_unit.v.j2's S_CHK): source and output sizes
    (B, C, H, W), window, stride, pad, slots, AVGPOOL_FP's contiguous (pairwise) window."""
    from efgen.hls.desc import FLAGS, OPS

    op = {v: k for k, v in OPS.items()}[desc.op]
    fp = op.endswith("_FP")
    X = (desc.batch, desc.in_c, desc.in_h, desc.in_w)
    Y = (desc.batch, desc.out_c, desc.out_h, desc.out_w)
    src, out = (X, Y) if fp else (Y, X)
    sc = op.startswith("SHORTCUT")
    mx = op.startswith("MAXPOOL")
    gl = op.startswith("AVGPOOL") and desc.kh != desc.kw
    kh, kw = (1, 1) if sc else (desc.kh, desc.kw)
    s = 1 if gl else desc.stride
    p = 0 if (sc or gl) else desc.pad
    lo = (desc.out_c - desc.in_c) // 2 if sc else 0
    return dict(op=op, fp=fp, sc=sc, mx=mx, av=op.startswith("AVGPOOL"), src=src, out=out,
                kh=kh, kw=kw, s=s, p=p, co=(-lo if fp else lo) if sc else 0,
                ns=2 if sc else (2 * kh if (mx and not fp) else kh),
                pw=op == "AVGPOOL_FP" and kw == X[3] + 2 * p,
                mask=not fp and bool(desc.flags & FLAGS["MASK"]))


def pool_cycles(p: RtlParams, desc, latency: int = DRAM_LATENCY, base_words: int = 0) -> int:
    """CYCLES of a pooling / shortcut descriptor on pool_unit (RtlParams ``p``): the set-up;
    per pass (MAXPOOL_FP: two) per output row the source rows it loads (each: its offset,
    the DRAM latency and its words), per output word its window's valid taps one at a time
    (an add waits for fp32_add_fb), and the write tail. The walk is pool_unit's own, counted
    here without its data (which taps are valid depends on the geometry only)."""
    from efgen.hls.desc import OPS

    if desc.op in (OPS["FLATTEN_FP"], OPS["FLATTEN_BP"]):
        return flatten_cycles(p, desc, latency, base_words)
    g = pool_geometry(desc, p.tl)
    T = p.tl
    B, Cs, Hs, Ws = g["src"]
    _, Co, Ho, Wo = g["out"]
    kh, kw, s, pd, fp = g["kh"], g["kw"], g["s"], g["p"], g["fp"]
    rw = Ws * T
    cbs, cbo = -(-Cs // T), -(-Co // T)
    nt = kh * kw
    nt8 = nt & ~7

    def rows_ok(y):
        """The slots' validity for output row y."""
        if g["sc"]:
            if not fp and y % s:
                return [False, False]
            return None                   # depends on the block: below
        ok = []
        for k in range(g["ns"]):
            i = k % kh
            if fp:
                sy = y * s - pd + i
                ok.append(0 <= sy < Hs)
            else:
                num = y + pd - i
                ok.append(num >= 0 and num % s == 0 and num // s < Hs)
        return ok

    def cols(x):
        if fp:
            return [j for j in range(kw) if 0 <= x * s - pd + j < Ws]
        return [j for j in range(kw) if x + pd - j >= 0 and (x + pd - j) % s == 0
                and (x + pd - j) // s < Ws]

    # per output row: its loads; per word: its control cycles (walk pool_unit's decisions)
    def word_cycles(y, x, rok):
        im = [i for i in range(kh) if rok[i]]
        jm = cols(x)
        c = POOL_WORD
        if not im or not jm:
            return c
        taps = [(i, j) for i in im for j in jm]
        c += POOL_TAP * len(taps)
        if g["mx"] and fp:
            return c
        if not fp:                                    # hits after the first: an add each
            if g["mx"]:
                return None                           # data-dependent: counted by the caller
            return c + POOL_ADD * (len(taps) - 1)
        if not g["pw"]:                               # row sums, summed
            adds = sum(len(jm) - 1 for _ in im) + len(im) - 1
            return c + POOL_ADD * adds
        if nt < 8:
            return c + POOL_ADD * (len(taps) - 1)
        tree = 7 * (1 + POOL_ADD) + 1
        es = [i * kw + j for i, j in taps]
        adds = sum(1 for e in es if 8 <= e < nt8) + sum(1 for e in es if e >= nt8)
        tail = any(e >= nt8 for e in es)
        return c + POOL_ADD * adds + tree + (1 if tail else 0)

    total = POOL_SETUP
    passes = 2 if (g["mx"] and fp) else 1
    for _ in range(passes):
        c = POOL_PASS
        for b in range(B):
            for cb in range(cbo):
                for y in range(Ho):
                    rok = rows_ok(y)
                    if rok is None:                       # shortcut: blocks in range
                        d = (cb * T + g["co"]) // T
                        rok = [0 <= d + k < cbs for k in range(2)]
                    c += 2 * g["ns"] + 2                  # y * s - pad, 2 per slot (its row, its check), the last
                    for ok in rok:
                        c += (POOL_LOAD + POOL_LOAD_DMA + latency + rw) if ok else 1
                    for x in range(Wo):
                        if g["sc"]:
                            wc = POOL_WORD
                            ok_x = fp or x % s == 0
                            for t in range(T):
                                n = cb * T + t + g["co"]
                                if (ok_x and 0 <= n < Cs and cb * T + t < Co
                                        and rok[n // T - (cb * T + g["co"]) // T]):
                                    c += POOL_TAP
                                c += wc
                            continue
                        wc = word_cycles(y, x, rok)
                        if wc is None:                    # MAXPOOL_BP: one hit per window
                            im = [i for i in range(kh) if rok[i]]
                            jm = cols(x)
                            wc = (POOL_WORD + POOL_TAP * len(im) * len(jm)
                                  + POOL_ADD * _maxbp_adds(len(im) * len(jm), kh * kw))
                        c += wc * T
        total += c + POOL_TAIL
    return int(round(total))



def flatten_cycles(p: RtlParams, desc, latency: int = DRAM_LATENCY, base_words: int = 0) -> int:
    """CYCLES of a FLATTEN_FP / FLATTEN_BP descriptor on pool_unit: the set-up; per (image,
    channel block) plane of X (H*W*T words) one read into the row buffer (FP: the plane;
    BP: its valid lanes' words of the flat side, min(T, C - c0) * H*W), then its words out
    one a cycle (FP: the valid lanes' words, and after the image's last plane its pad words
    FW - F; BP: the plane's H*W*T words, pad lanes 0); the write tail: axi_dma_wr
    addresses a burst once its last word is in and streams its beats one a cycle after
    the previous burst's (the words' own issue times, so the gaps of the plane loads
    count)."""
    from efgen.hls.desc import OPS

    T = p.tl
    B, C, H, W = desc.batch, desc.in_c, desc.in_h, desc.in_w
    hw, cb_n = H * W, -(-C // T)
    f = C * hw
    zt = -(-f // T) * T - f
    fp = desc.op == OPS["FLATTEN_FP"]
    t = POOL_SETUP + POOL_PASS
    runs = []                         # (first word's issue cycle, words) of every plane
    for _ in range(B):
        for cb in range(cb_n):
            valid = min(T, C - cb * T) * hw
            load = hw * T if fp else valid
            emit = (valid + (zt if cb == cb_n - 1 else 0)) if fp else hw * T
            t += FLAT_PLANE + latency + load
            runs.append((t, emit))
            t += emit
    # the write engine: burst by burst, each once its last word is in
    addr = base_words + int(desc.a[7])
    n = sum(e for _, e in runs)
    end, k, ri, done = 0, 0, 0, 0      # k: words so far; runs[ri] holds word k
    left, off = n, addr % p.wpb
    for b in axi_bursts(addr, n, p.axi_width, p.max_burst):
        words = min(left, b.beats * p.wpb - off)
        left, off, k = left - words, 0, k + words
        while done + runs[ri][1] < k:
            done += runs[ri][1]
            ri += 1
        last = runs[ri][0] + (k - done) - 1          # its last word's issue cycle
        end = max(last, end) + b.beats
    return t + (end - (t - 1)) + FLAT_TAIL + (p.wpb > 1)


def _maxbp_adds(nwin: int, taps: int) -> float:
    """MAXPOOL_BP: the adds of a dX word, hits - 1 where hits is how many of the nwin windows
    that cover it route their maximum to it - data, not geometry: the model takes its
    expectation with each window picking it with probability 1 / taps (0 without overlap)."""
    if nwin <= 1:
        return 0.0
    q = 1.0 / taps
    return nwin * q - (1.0 - (1.0 - q) ** nwin)
