"""The SGD write-back of the reference RTL (``sgd_wb``): renderer, bit-exact model, cycles.

After the WU phase of a layer chunk has accumulated its gradients in the engine's
weight buffer (``G = wu_copies(K)`` partial-sum copies per word, see
:mod:`efgen.rtl.engine`), ``sgd_wb`` reads them out through ``engine_core``'s
weight-buffer read port, reads the weights W and the momentum buffer V from DRAM
(two ``axi_dma_rd``), applies SGD with momentum and weight decay exactly as
:func:`efgen.golden.ops.sgd_update` rounds it, and writes W' and V' back through one
``axi_dma_wr``::

    grad = ((copy0 + copy1) + copy2) + ...      (efgen.rtl.engine.wu_gradient)
    g  = grad + wd * w
    v' = mom * v + g
    w' = w + (-(lr * v'))                        (= w - lr * v', bit for bit)

one float32 rounding per operation, with the FP32 units of :mod:`efgen.rtl.fpu`
(``impl="behav"``: numpy float32; ``"synth"``: flush-to-zero, :mod:`efgen.golden.ftz`).

:func:`sgd_verilog` renders ``templates/rtl/sgd_wb.v.j2`` (and its FIFO,
``sgd_fifo.v.j2``) for one :class:`efgen.rtl.engine.EngineParams`; the header comment of
the generated file states the interface, the schedule and the cycle formula.
:func:`sgd_wb_model` is the bit-exact model (DRAM order in, DRAM order out);
:func:`sgd_cycles` the cycle count from ``start`` to ``done``.

The gradient adder starts every word's sum from -0: it computes ``(-0 + copy0) +
copy1 ...`` rather than ``copy0 + copy1 ...``, which keeps the adder's feedback loop free
of a bypass. ``-0 + x`` is ``x`` for every ``x`` in both implementations, except that a
``synth`` adder flushes a subnormal ``x`` to zero and that NaN payloads become the
canonical NaN; both differences vanish in the next operation (``g = grad + wd*w``
flushes its inputs in ``synth`` and canonicalises NaN in both), so W' and V' are those of
:func:`efgen.rtl.engine.wu_gradient` bit for bit (tests/test_rtl_sgd.py checks this on
subnormals, signed zeros, infinities and NaNs).
"""

from __future__ import annotations

import numpy as np

from efgen._version import __version__
from efgen.rtl.engine import RAM_LATENCY, EngineParams, _clog2, _ops, _zext, wu_gradient
from efgen.rtl.fpu import ADD_LATENCY, MUL_LATENCY, _env, fp_add_fb_verilog, fp_units_verilog

#: output channels the RTL holds a bias for: tile_wr's bias buffer (FP with FLAG_BIAS, loaded
#: at the job's start) and layer_seq's WU bias RAM (below); a descriptor with more output
#: channels is rejected, ERR_BIAS
BIAS_BUF = 256

#: the WU bias gradient's partial sums a channel (layer_seq's bias RAM: BIAS_BUF channels x
#: WUB_SLOTS words; a slot of a lane is written again no sooner than WUB_SLOTS positions
#: later, as the engine's accumulators: ACC_DIST = RAM read + adder + write)
WUB_SLOTS = 8


def wub_addr_bits(rw: int) -> int:
    """Address bits of layer_seq's WU bias RAM: BIAS_BUF * WUB_SLOTS words in rows of
    ``rw`` words (one bank a word of a tile_rd beat)."""
    return (BIAS_BUF * WUB_SLOTS // rw - 1).bit_length()


GROUP = ADD_LATENCY          # words interleaved in the gradient adder's feedback loop
PIECE = 16                   # default words per write command
IN_LOG = 4                   # W and V input FIFOs: 16 words
RPIECE = 16                  # wdb: default words per read command (W and V share an engine)


def in_log(p: EngineParams, rpiece: int = RPIECE) -> int:
    """log2 of the W and V input FIFOs' words: IN_LOG, or with ``p.wdb`` (W and V pieces of
    ``rpiece`` words on one read engine) room for two pieces each."""
    return max(IN_LOG, (2 * rpiece - 1).bit_length()) if p.wdb else IN_LOG
IN_FLIGHT = 32               # room the W'/V' FIFOs keep beyond one piece (words)

# Gradient read latency: engine_ram's registered read and output register (RAM_LATENCY,
# 2 since issue 19), then sgd_wb's two-level registered
# Tm*Tn-way bank mux (groups of 16 banks, then the group; issue 14: the mux of the
# unregistered RAM outputs fed the adder directly, the slowest path of the design).
RD_LATENCY = RAM_LATENCY + 2
# Pipeline offsets (cycles) from the cycle a word's last copy address is on wb_rd_addr.
W_POP = RD_LATENCY + ADD_LATENCY - MUL_LATENCY        # pop w, wd*w in
V_POP = RD_LATENCY + 2 * ADD_LATENCY - MUL_LATENCY    # pop v, mom*v in
VO_PUSH = RD_LATENCY + 3 * ADD_LATENCY                # v' into the V' FIFO, lr*v' in
WO_PUSH = RD_LATENCY + 4 * ADD_LATENCY + MUL_LATENCY  # w' into the W' FIFO
W_DLY = (RD_LATENCY + 3 * ADD_LATENCY + MUL_LATENCY) - W_POP


def _check_piece(piece: int) -> None:
    if isinstance(piece, bool) or not isinstance(piece, int) or piece < GROUP \
            or piece & (piece - 1):
        raise ValueError(f"piece={piece!r}: expected a power of two >= {GROUP}")


def chunk_words(p: EngineParams, k: int, nblk: int) -> int:
    """Words of a chunk: ``nblk`` blocks of ``K*K*Tm*Tn``."""
    return nblk * k * k * p.tm * p.tn


# ------------------------------------------------------------------ cycles

#: Cycles from ``start`` (t0) to the first group's start, less the DRAM read latency and
#: the words the group waits for: read commands at t0+1, axi_dma_rd's first word L + 5
#: cycles later, the FIFO count one cycle after the push.
FIRST_GROUP = 6
#: From the cycle a group is started to the cycle the write stream can take w' of the
#: group's word j, less GROUP*(G-1) (the passes before the last) and j: the slot
#: counters and the read-address register (2), the pipeline (WO_PUSH), the W' FIFO (1).
STREAM = 2 + WO_PUSH + 1
#: axi_dma_wr buffers a whole burst before its AW (issue 19: write addresses only with
#: their data), so a command's W beats follow its last word into the engine by a few
#: cycles (buffer write, AW decision, W register), and done follows its last W beat
#: (AxiRam's B response, the done pulse, sgd_wb's done register). The queue below needs
#: only their sum, minus the cycle of the first beat: 8, from the cycle-exact simulation.
WRITE_LAG = 8

def word_ready(i: int, words: int, g: int, latency: int) -> int:
    """Cycle (from t0) in which w' of word ``i`` can be taken by the write stream
    (its v' 7 cycles earlier), when groups run back to back."""
    per = GROUP * max(g, 2)
    first = latency + FIRST_GROUP + min(words, GROUP)
    return first + STREAM + GROUP * (g - 1) + per * (i // GROUP) + i % GROUP



def _stream(words: int, g: int, latency: int, piece: int):
    """Yield ``(a, n)`` per write command in order (W' of piece k, then its V'):
    ``n`` words, the last one taken by the write stream in cycle ``a``::

        T_k = max(T_(k-1) + n_k, ready(e_k)) + n_k;   W'_k: a = T_k - n_k;   V'_k: a = T_k
    """
    t = None
    for s in range(0, words, piece):
        n = min(piece, words - s)
        ready = word_ready(s + n - 1, words, g, latency)
        t = (ready if t is None else max(t + n, ready)) + n
        yield t - n, n
        yield t, n


def sgd_cycles(words: int, g: int, latency: int, piece: int = PIECE) -> int:
    """Cycles from ``start`` (cycle t0) to ``done`` (high in t0 + sgd_cycles), exact.

    ``words``: words of the chunk; ``g``: partial-sum copies per word; ``latency``:
    DRAM read latency L (AR handshake to the data, as AxiRam with sim/dma's
    add_read_latency(L) models it; writes answered at once). Assumes the read DMAs
    stream at one word a cycle (OUTSTANDING * MAX_BURST >= L + 4 + MAX_BURST), the
    write side takes a word a cycle, 32-bit beats and ``piece <= MAX_BURST`` (a command
    is then one burst, or two back to back where it crosses a 4 KiB page); DRAM stalls
    only add cycles.

    Two queues. The write stream: piece k (``n_k`` words, the last one at word
    ``e_k``) hands over its W' words, each when ready (:func:`word_ready`) and at most
    one a cycle, then its V' words, which are ready by then; command c (W'_k or V'_k)
    has its last word in at ``a_c`` (:func:`_stream`). The W channel: a command's beats
    go out one a cycle once all of it is buffered, after the previous command's::

        s_c = max(a_c, s_(c-1) + n_(c-1));     done = s_last + n_last + WRITE_LAG

    Closed forms (:func:`sgd_cycles_closed`): G <= 2, more than one piece:
    ``L + 2*words + 38 + 5*G + min(words, 5) + max_k (n_k + max_(j<=k) (n_j - e_j % 5))``
    (GROUP = 5; ``2*PIECE - GROUP + 1`` for the last term when GROUP divides PIECE) — the
    rate is the write port's 2 cycles a word, and the W channel trails the stream by
    about one whole piece;
    otherwise ``max(ready(words - 1), ready(words - n_last - 1) + 2*PIECE) + 2*n_last +
    WRITE_LAG`` (the second term only with several pieces: a short last piece can wait
    for the W channel to finish the previous piece's V').
    """
    _check_piece(piece)
    if words < 1 or g < 1 or latency < 0:
        raise ValueError(f"sgd_cycles(words={words}, g={g}, latency={latency})")
    s = prev = None
    for a, n in _stream(words, g, latency, piece):
        s = a if s is None else max(a, s + prev)
        prev = n
    return s + prev + WRITE_LAG


def sgd_cycles_closed(words: int, g: int, latency: int, piece: int = PIECE) -> int:
    """:func:`sgd_cycles` in closed form, for G <= 2 or a single piece, or when G is
    large enough that every piece's W' waits for its words (G >= 3 and PIECE <=
    GROUP*(G - 1)); raises ValueError otherwise."""
    if words > piece and g <= 2:
        # ready(i) = C + 2i - i % GROUP, so T_K = C + 2(words - 1) + max over pieces j of
        # (n_j - e_j % GROUP), and both write commands of piece k end their beats by the
        # same bound: cycles = C + 2(words - 1) + WRITE_LAG + max_k (n_k + max_(j<=k) ...).
        # Pieces of PIECE words end at e = j*PIECE - 1, so with full pieces dominating:
        return (latency + FIRST_GROUP + min(words, GROUP) + STREAM + GROUP * (g - 1)
                + 2 * (words - 1) + WRITE_LAG + _piece_term(words, piece))
    if words <= piece or piece <= GROUP * (g - 1):
        n_last = words - (-(-words // piece) - 1) * piece
        start = word_ready(words - 1, words, g, latency)     # the last piece's W' beats
        if words > piece:      # ... unless the W channel still sends the previous V'
            start = max(start, word_ready(words - n_last - 1, words, g, latency) + 2 * piece)
        return start + 2 * n_last + WRITE_LAG
    raise ValueError(f"no closed form for G={g}, PIECE={piece}: use sgd_cycles")


def _piece_term(words: int, piece: int) -> int:
    """``max_k (n_k + max_(j<=k) (n_j - e_j % GROUP))`` over the pieces (``n`` words,
    last word ``e``) of a chunk: the W channel's bound for G <= 2 (sgd_cycles_closed).
    ``2*PIECE - GROUP + 1`` when GROUP divides PIECE."""
    best = run = None
    for s in range(0, words, piece):
        n = min(piece, words - s)
        e = s + n - 1
        run = n - e % GROUP if run is None else max(run, n - e % GROUP)
        best = n + run if best is None else max(best, n + run)
    return best


def formula_lines() -> list[str]:
    """The cycle formula as the generated header states it."""
    return [
        f"ready(i) = L + {FIRST_GROUP} + min(words, {GROUP}) + {STREAM} + {GROUP}*(G-1)"
        f" + {GROUP}*max(G,2)*(i / {GROUP}) + i % {GROUP}",
        "           (cycle the write stream can take w' of word i; v' is ready before)",
        "T_k = max(T_(k-1) + n_k, ready(e_k)) + n_k    (piece k: n_k words, last word e_k;",
        "           W' words one a cycle as they become ready, then its V' words)",
        "a_c = T_k - n_k (command W'_k), T_k (V'_k)     (its last word into axi_dma_wr)",
        "s_c = max(a_c, s_(c-1) + n_(c-1))              (its W beats, once all are buffered)",
        f"cycles = s_last + n_last + {WRITE_LAG}",
        f"G <= 2, words > PIECE: cycles = L + 2*words + {FIRST_GROUP + STREAM - GROUP - 2 + WRITE_LAG}"
        f" + {GROUP}*G + min(words, {GROUP}) + max_k (n_k + max_(j<=k) (n_j - e_j % {GROUP}))",
    ]


# ------------------------------------------------------------------ Verilog

def sgd_verilog(p: EngineParams, piece: int = PIECE, bias_rw: int = 1,
                rpiece: int = RPIECE) -> dict[str, str]:
    """File name -> Verilog text of ``sgd_wb`` (default ``PIECE`` = ``piece``), its FIFO
    and the FP32 units. Deterministic for equal arguments. The DMA engines are not
    included (:func:`efgen.rtl.dma.dma_verilog`). ``bias_rw``: words a row of layer_seq's
    WU bias RAM (:func:`wub_addr_bits`), which sgd_wb reads in bias mode.

    ``p.wdb`` (double-buffered weights): W and V share one read engine, as commands of
    ``rpiece`` words (a power of two; the top gives whole bursts, ``max_burst * wpb``, so
    that the bursts are those of one command per tensor), W piece k then V piece k, into
    input FIFOs of ``2 * rpiece`` words (:func:`in_log`)."""
    if not isinstance(p, EngineParams):
        raise TypeError(f"sgd_verilog expects EngineParams, got {type(p).__name__}")
    _check_piece(piece)
    if p.wdb and (rpiece < 1 or rpiece & (rpiece - 1)):
        raise ValueError(f"rpiece={rpiece!r}: expected a power of two")
    assert 2 <= GROUP <= 7, "the group's word counter (g_j) and nv of sgd_wb.v.j2 are three bits"
    env = _env()
    ctx = {
        "version": __version__, "p": p, "w": p.widths, "lane_w": _clog2(p.tm * p.tn),
        "zext": _zext, "piece": piece, "group": GROUP, "in_log": in_log(p, rpiece),
        "rpiece": rpiece,
        "in_flight": IN_FLIGHT, "ram": RD_LATENCY, "ram_latency": RAM_LATENCY, "add": ADD_LATENCY, "mul": MUL_LATENCY,
        "w_pop": W_POP, "v_pop": V_POP, "w_dly": W_DLY, "vo_push": VO_PUSH,
        "wo_push": WO_PUSH, "formula": formula_lines(),
        "bias_rw": bias_rw, "bias_aw": wub_addr_bits(bias_rw),
    }
    if p.pack:
        from efgen.rtl.engine import pack_table
        ctx["pack_table"] = pack_table(p)
    files = {**fp_units_verilog(p.impl), **fp_add_fb_verilog(p.impl)}
    for mod in ("sgd_fifo", "sgd_wb"):
        files[f"{mod}.v"] = env.get_template(f"{mod}.v.j2").render(module=mod, **ctx)
    return files


# ------------------------------------------------------------------ bit-exact model

def wbuf_addresses(p: EngineParams, k: int, g: int, nblk: int) -> tuple[np.ndarray, np.ndarray]:
    """(bank, address of copy 0) of every chunk word, DRAM order; copy q is at
    address + q*K*K."""
    i = np.arange(chunk_words(p, k, nblk))
    tmtn, k2 = p.tm * p.tn, k * k
    bank = i % tmtn
    kk = (i // tmtn) % k2
    blk = i // (tmtn * k2)
    return bank, blk * g * k2 + kk


def gradient_copies(wbuf: np.ndarray, p: EngineParams, k: int, g: int, nblk: int) -> np.ndarray:
    """(words, G): the G partial-sum copies of every chunk word, DRAM order, from the
    weight buffer ``wbuf`` (Tm*Tn banks, depth), bank ``mm*Tn + nn``."""
    wbuf = np.asarray(wbuf)
    bank, a0 = wbuf_addresses(p, k, g, nblk)
    return np.stack([wbuf[bank, a0 + q * k * k] for q in range(g)], axis=1)


def sgd_words(w, v, grad, lr, mom, wd, impl: str = "behav"):
    """SGD on float32 words in the RTL's order of roundings: (w', v')."""
    add, mul = _ops(impl)
    f = np.float32
    w, v, grad = (np.asarray(a, np.float32) for a in (w, v, grad))
    g = add(grad, mul(f(wd), w))
    vn = add(mul(f(mom), v), g)
    wn = add(w, np.negative(mul(f(lr), vn)))
    return wn, vn


def sgd_wb_model(wbuf, w, v, p: EngineParams, *, k: int, g: int, nblk: int, lr: float,
                 mom: float, wd: float, impl: str | None = None):
    """What ``sgd_wb`` writes: (W', V') float32 in DRAM order, from the weight buffer
    ``wbuf`` (Tm*Tn banks x depth, float32) and the chunk's W and V (DRAM order)."""
    impl = impl or p.impl
    copies = gradient_copies(np.asarray(wbuf, np.float32), p, k, g, nblk)
    grad = wu_gradient(copies[:, None, :, None], impl)[:, 0, 0]
    return sgd_words(w, v, grad, lr, mom, wd, impl)


def rtl_gradient(copies, impl: str) -> np.ndarray:
    """The gradient adder literally: ((-0 + copy0) + copy1) + ...  (words, G) -> words."""
    add, _ = _ops(impl)
    copies = np.asarray(copies, np.float32)
    acc = np.full(copies.shape[0], -0.0, np.float32)
    for q in range(copies.shape[1]):
        acc = add(acc, copies[:, q])
    return acc


def f32_bits(x: float) -> int:
    """The float32 bit pattern of ``x`` (for cfg_lr, cfg_mom, cfg_wd)."""
    return int(np.asarray(x, np.float32).view(np.uint32))


__all__ = ["GROUP", "PIECE", "sgd_verilog", "sgd_wb_model", "sgd_words", "sgd_cycles",
           "gradient_copies", "wbuf_addresses", "rtl_gradient", "chunk_words", "f32_bits",
           "formula_lines", "sgd_cycles_closed", "word_ready"]
