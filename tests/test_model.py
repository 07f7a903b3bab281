"""The analytical model: hand-worked counts, bursts against the layout's burst
generator, resources, and whole-design invariants."""

import math
from dataclasses import replace

import numpy as np
import pytest

from efgen.design import HwParams
from efgen.frontend import load_net
from efgen.frontend.boards import load_board
from efgen.frontend.ir import parse_net
from efgen.layout import FeatureMapLayout
from efgen.model import engine
from efgen.model.coeffs import bram18_units
from efgen.model.evaluate import evaluate_design
from efgen.model.resources import resource_use
from efgen.model.schedule import Request, schedule

HW = HwParams(tm=4, tn=4, ifm_depth=8192, ofm_depth=8192, wbuf_depth=4096, port_words=4,
              ports=3, dma_start=10, mac_depth=5, max_burst_beats=256)
FAST_DDR = 1e6  # bytes/cycle: the ports, not the DDR, limit bandwidth


def one_conv(n, m, h, k, s, p, bias=False, batch=1):
    doc = {"name": "one", "input": [n, h, h], "num_classes": 2, "layers": [
        {"name": "c0", "op": "conv", "out_channels": n, "kernel": 1},   # so c BP runs
        {"name": "c", "op": "conv", "out_channels": m, "kernel": k, "stride": s,
         "padding": p, "bias": bias},
        {"name": "f", "op": "flatten"}, {"name": "fc", "op": "linear", "out_features": 2},
        {"name": "loss", "op": "softmax_ce"}]}
    net = parse_net(doc, "one")
    return net, [j for j in engine.jobs_for(net, batch) if j.layer == "c"]


def run(jobs, tiles, hw=HW, layout="reshaped"):
    return engine.evaluate_chosen(jobs, tiles, hw, 4, FAST_DDR, layout)


# ---- hand-worked ----------------------------------------------------------------------------

def test_hand_worked_fp_single_tile():
    """4->4 channels, 4x4 map, K3 S1 P1, Tm=Tn=4, one 4x4 tile.

    Input tile: rows [-1,5) clipped to 4, cols likewise: 4 lanes x 16 = 64 words, one
    burst: L = 10 + 64/4 = 26. Store: 64 words, one burst: s = 26. Compute:
    4*4*9 + 5 = 149. Group (NB=1): max(L, C, s) = 149. Weights: 4*4*9 = 144 words,
    one burst: 10 + 36 = 46. Fill: first load + last store = 52. Total 247.
    """
    _, jobs = one_conv(4, 4, 4, 3, 1, 1)
    fp = jobs[0]
    assert fp.phase == "fp"
    r = run([fp], [(4, 4, 1, "wo")])
    assert r["cycles"][0] == 247
    assert r["in_words"][0] == 64 and r["out_words"][0] == 64 and r["w_words"][0] == 144
    assert r["in_bursts"][0] == 1 and r["out_bursts"][0] == 1 and r["w_bursts"][0] == 1
    assert r["read_words"][0] == 64 + 144 and r["write_words"][0] == 64
    assert r["compute_cycles"][0] == 149


def test_hand_worked_fp_row_tiles_and_reduction_blocks():
    """8->4 channels (NB=2), 4x4 map, K3 S1 P1, tr=2 full-width rows.

    Row tiles: tile 0 loads rows [-1,3) -> 3 rows, tile 1 loads [1,5) -> 3 rows.
    Per step: 4 lanes x 3 rows x 4 cols = 48 words in 1 burst: L = 10 + 12 = 22.
    Compute 2*4*9 + 5 = 77; store 4x2x4 = 32 words, 1 burst: s = 18.
    Group per tile: (2-1)*max(22,77) + max(22,77,18) = 154; two tiles: 308.
    Weights 4x8x9 = 288 words, 1 burst: 10 + 72 = 82. Fill 22 + 18 = 40. Total 430.
    """
    _, jobs = one_conv(8, 4, 4, 3, 1, 1)
    r = run([jobs[0]], [(2, 4, 1, "wo")])
    assert r["cycles"][0] == 430
    assert r["in_words"][0] == 2 * 2 * 48 and r["in_bursts"][0] == 4
    assert r["out_words"][0] == 64 and r["out_bursts"][0] == 2


def test_hand_worked_bp_and_wu():
    """BP of the 4->4 K3 S1 P1 layer is the same engine with M and N swapped; WU
    loads the error block first: max(L + E, C) with E the error load."""
    _, jobs = one_conv(4, 4, 4, 3, 1, 1)
    bp, wu = [j for j in jobs if j.phase == "bp"][0], [j for j in jobs if j.phase == "wu"][0]
    r = run([bp], [(4, 4, 1, "wo")])
    # BP: error rows needed for input rows [0,4): dilated window [0,6), lo = 1 -> 4 rows.
    assert r["in_words"][0] == 64 and r["cycles"][0] == 247
    r = run([wu], [(4, 4, 1, "wo")])
    # WU: L = 26, E = 26 (4x4x4 error words), C = 149: max(52, 149) = 149. No weight
    # load; write-back with momentum: read W and V, write W and V: 2 x 46 = 92.
    # Fill: the chunk's first input tile and its error tile, 26 + 26. Total 149 + 92 +
    # 52 = 293.
    assert r["cycles"][0] == 293
    assert r["sgd_cycles"][0] == 92
    assert r["read_words"][0] == 64 + 64 + 2 * 144 and r["write_words"][0] == 2 * 144


def test_idle_lanes_cost_cycles_not_macs():
    """A 3-channel first layer on 16 lanes takes as many cycles as a 16-channel one."""
    hw16 = replace(HW, tm=16, tn=16)
    _, a = one_conv(3, 16, 8, 3, 1, 1)
    _, b = one_conv(16, 16, 8, 3, 1, 1)
    ra = run([a[0]], [(8, 8, 1, "wo")], hw16)
    rb = run([b[0]], [(8, 8, 1, "wo")], hw16)
    assert ra["compute_cycles"][0] == rb["compute_cycles"][0]
    assert a[0].macs * 16 == b[0].macs * 3


def test_io_order_reads_inputs_once_per_chunk():
    _, jobs = one_conv(4, 16, 8, 3, 1, 1)
    wo = run([jobs[0]], [(8, 8, 4, "wo")])
    io = run([jobs[0]], [(8, 8, 4, "io")])
    assert wo["in_words"][0] == 4 * io["in_words"][0]
    assert wo["out_words"][0] == io["out_words"][0]


# ---- bursts and words against the layout's burst generator --------------------------------

def _generator_counts(job, tiles, hw, layout):
    """Walk every tile of an FP/BP/WU job and ask efgen.layout for its bursts and words."""
    tr, tc, mc, order = tiles
    blocked = layout == "reshaped"
    fm = FeatureMapLayout("blocked" if blocked else "nchw", hw.lanes)
    maxb = hw.max_burst_beats * hw.port_words
    MB = math.ceil(job.out / hw.tm)
    chunks = math.ceil(MB / mc)
    reps = chunks if (order == "io" or job.phase == "wu") else MB
    src_shape = (job.images, job.red, job.hs, job.ws)
    out_shape = (job.images, job.out, job.ro, job.co)
    in_b = in_w = out_b = out_w = 0
    for b in range(job.images):
        for r0 in range(0, job.ro, tr):
            orr = min(tr, job.ro - r0)
            for c0 in range(0, job.co, tc):
                occ = min(tc, job.co - c0)
                if job.phase == "bp":
                    lo = job.lo
                    rows = [h for h in range(job.hs) if r0 <= lo + h * job.dil < r0 + orr + job.k - 1]
                    cols = [w for w in range(job.ws) if c0 <= lo + w * job.dil < c0 + occ + job.k - 1]
                else:
                    rows = [h for h in range(job.hs)
                            if r0 * job.s - job.lo <= h < r0 * job.s - job.lo + (orr - 1) * job.s + job.k]
                    cols = [w for w in range(job.ws)
                            if c0 * job.s - job.lo <= w < c0 * job.s - job.lo + (occ - 1) * job.s + job.k]
                for n0 in range(0, job.red, hw.tn):
                    ch = (n0, min(n0 + hw.tn, job.red))
                    if rows and cols:
                        args = (src_shape, b, ch, (rows[0], rows[-1] + 1), (cols[0], cols[-1] + 1))
                        in_b += reps * len(fm.tile_bursts(*args, max_burst=maxb))
                        in_w += reps * fm.tile_words(*args)
                for m0 in range(0, job.out, hw.tm):
                    args = (out_shape, b, (m0, min(m0 + hw.tm, job.out)), (r0, r0 + orr), (c0, c0 + occ))
                    out_b += len(fm.tile_bursts(*args, max_burst=maxb))
                    out_w += fm.tile_words(*args)
    return in_b, in_w, out_b, out_w


LAYERS = [  # (N, M, H, K, S, P, tr, tc, mc, order, batch)
    (4, 4, 4, 3, 1, 1, 4, 4, 1, "wo", 1),
    (8, 12, 9, 3, 1, 1, 3, 9, 2, "wo", 2),
    (8, 12, 9, 3, 1, 1, 4, 5, 3, "io", 1),
    (6, 8, 8, 3, 2, 1, 2, 4, 1, "wo", 2),
    (16, 8, 8, 1, 2, 0, 4, 4, 2, "io", 1),
    (3, 16, 10, 5, 1, 2, 5, 10, 4, "wo", 1),
    (32, 4, 6, 3, 1, 1, 6, 6, 1, "wo", 1),   # runs longer than a small max burst
]


@pytest.mark.parametrize("layout", ["reshaped", "nchw"])
@pytest.mark.parametrize("case", LAYERS, ids=lambda c: "N{}M{}H{}K{}S{}P{}_{}x{}_mc{}{}_B{}".format(*c))
def test_bursts_match_the_layout_generator(case, layout):
    n, m, h, k, s, p, tr, tc, mc, order, batch = case
    hw = replace(HW, max_burst_beats=8)   # 32-word bursts, so splitting is exercised
    _, jobs = one_conv(n, m, h, k, s, p, batch=batch)
    for job in jobs:
        t_r = min(tr, job.ro)
        t_c = min(tc, job.co)
        r = run([job], [(t_r, t_c, mc, order)], hw, layout)
        in_b, in_w, out_b, out_w = _generator_counts(job, (t_r, t_c, mc, order), hw, layout)
        assert r["in_words"][0] == in_w, job.phase
        assert r["out_words"][0] == out_w, job.phase
        if layout == "nchw" or hw.lanes == hw.tn:
            # NB-averaged run lengths are exact when every step moves whole blocks.
            assert r["in_bursts"][0] == pytest.approx(in_b, rel=0.02), job.phase
        assert r["out_bursts"][0] == pytest.approx(out_b, rel=0.02), job.phase


def test_reshaped_layout_needs_fewer_bursts():
    _, jobs = one_conv(16, 16, 16, 3, 1, 1)
    tiles = [(4, 16, 1, "wo")] * len(jobs)
    hw = replace(HW, tm=16, tn=16)
    a = run(jobs, tiles, hw, "reshaped")
    b = run(jobs, tiles, hw, "nchw")
    assert np.all(a["in_bursts"] * 8 <= b["in_bursts"])


# ---- resources ------------------------------------------------------------------------------

def test_fp32_16x16_is_1280_dsp():
    use = resource_use(HwParams(tm=16, tn=16, precision="fp32"), load_board("zcu102"))
    assert use.dsp_array == 1280


@pytest.mark.parametrize("prec,per_mac", [("fix16", 1), ("int8", 0.5)])
def test_dsp_per_mac_by_precision(prec, per_mac):
    use = resource_use(HwParams(tm=8, tn=8, precision=prec), load_board("zcu104"))
    assert use.dsp_array == 64 * per_mac


def test_int8_on_dsp48e1_takes_a_whole_dsp():
    use = resource_use(HwParams(tm=8, tn=8, precision="int8"), load_board("pynq-z2"))
    assert use.dsp_array == 64


@pytest.mark.parametrize("bits,depth,units", [(32, 512, 1), (32, 513, 2), (32, 1024, 2),
                                               (16, 1024, 1), (8, 2048, 1), (32, 100, 1),
                                               (36, 512, 1), (40, 512, 2), (1, 16384, 1)])
def test_bram18_port_width_rules(bits, depth, units):
    assert bram18_units(bits, depth) == units


def test_buffers_in_bram_count():
    hw = HwParams(tm=16, tn=16, ifm_depth=2048, ofm_depth=1024, wbuf_depth=512)
    use = resource_use(hw, load_board("zcu102"))
    assert use.bram_ifm == 16 * 2 * 4      # 2048 x 32 bit = 4 RAMB18 per bank, ping-pong
    assert use.bram_ofm == 16 * 2 * 2
    assert use.bram_wbuf == 256


def test_uram_weight_buffer():
    hw = HwParams(tm=8, tn=8, wbuf_depth=4096, weight_mem="uram")
    use = resource_use(hw, load_board("zcu104"))
    assert use.uram == 64 and use.bram_wbuf == 0


# ---- whole designs --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def resnet20_zcu102():
    net, board = load_net("resnet20"), load_board("zcu102")
    d = schedule(Request(net, board, batch=32))
    return net, board, d, evaluate_design(net, d, board)


def test_chosen_design_respects_every_cap(resnet20_zcu102):
    _, board, d, ev = resnet20_zcu102
    res = ev["totals"]["resources"]
    for r in ("dsp", "bram18", "uram", "lut", "ff"):
        assert res[r] <= board.cap(r), r


def test_every_tile_fits_its_buffer(resnet20_zcu102):
    net, _, d, _ = resnet20_zcu102
    hw = d.hw
    jobs = {(j.layer, j.phase): j for j in engine.jobs_for(net, d.batch)}
    assert set(jobs) == {(s.layer, s.phase) for s in d.schedule}
    for s in d.schedule:
        j = jobs[(s.layer, s.phase)]
        if j.phase == "bp":
            rows, cols = s.tr + j.k - 1, s.tc + j.k - 1
        else:
            rows, cols = (s.tr - 1) * j.s + j.k, (s.tc - 1) * j.s + j.k
        if j.img_major:
            rows, cols = 1, s.tc
        assert rows * cols <= hw.ifm_depth, s
        ofm = s.tr * s.tc * (s.mc if (s.order == "io" or s.phase == "wu") else 1)
        assert ofm <= hw.ofm_depth, s
        assert s.mc * math.ceil(j.red / hw.tn) * j.k * j.k <= hw.wbuf_depth, s
        assert 1 <= s.mc <= math.ceil(j.out / hw.tm)


def test_totals_are_sums_of_rows(resnet20_zcu102):
    _, _, d, ev = resnet20_zcu102
    t, rows = ev["totals"], ev["rows"]
    assert t["cycles"] == pytest.approx(sum(r.cycles for r in rows), rel=1e-12)
    assert t["dram_bytes"] == pytest.approx(sum(r.dram_bytes for r in rows), rel=1e-12)
    assert t["energy_j"] == pytest.approx(sum(r.energy_j for r in rows), rel=1e-12)
    assert t["ms_per_step"] == pytest.approx(t["cycles"] / (d.hw.clock_mhz * 1e3))
    # Every layer-phase the IR says runs appears once.
    conv = {(r.layer, r.phase) for r in rows if r.engine == "conv"}
    assert conv == {(s.layer, s.phase) for s in d.schedule}


def test_throughput_is_plausible(resnet20_zcu102):
    """Effective GFLOPS below the array peak; convs close to the compute bound."""
    _, _, d, ev = resnet20_zcu102
    t = ev["totals"]
    assert 0 < t["effective_gflops"] < t["peak_gflops"]
    conv_rows = [r for r in ev["rows"] if r.engine == "conv" and r.phase == "fp"
                 and r.layer != "conv1_conv" and r.layer != "fc"]
    for r in conv_rows:
        eff = r.macs / (r.cycles * d.hw.macs)
        assert 0.5 < eff <= 1.0, (r.layer, eff)


def test_design_json_round_trips(resnet20_zcu102):
    from efgen.design import Design

    _, _, d, _ = resnet20_zcu102
    again = Design.from_json(d.to_json())
    assert again == d
    assert again.to_json() == d.to_json()


def test_train_last_saves_work():
    board = load_board("zcu102")
    full = load_net("resnet20")
    part = load_net("resnet20", train_last=3)
    tf = evaluate_design(full, schedule(Request(full, board)), board)["totals"]
    tp = evaluate_design(part, schedule(Request(part, board, train_last=3)), board)["totals"]
    assert tp["cycles"] < 0.6 * tf["cycles"]


def test_objectives_trade_off():
    net, board = load_net("resnet20"), load_board("zcu102")
    lat = evaluate_design(net, schedule(Request(net, board, objective="latency")), board)["totals"]
    en = evaluate_design(net, schedule(Request(net, board, objective="energy")), board)["totals"]
    assert lat["cycles"] <= en["cycles"]
    assert en["energy_j"] <= lat["energy_j"] * (1 + 1e-9)


@pytest.mark.parametrize("fuse", [False, True])
def test_dram_objective_moves_the_fewest_bytes(fuse):
    """``--objective dram``: no other objective's design moves fewer DRAM bytes, and on
    the dram design's own hardware each layer-phase's tiling moves no more words than
    the latency tiling of that job (the plan and tilings are chosen by bytes)."""
    from dataclasses import replace

    from efgen.model import engine, restructure
    from efgen.model.evaluate import ddr_bytes_per_cycle

    net, board = load_net("resnet20"), load_board("zcu102")
    tot = {}
    for obj in ("latency", "energy", "dram"):
        d = schedule(Request(net, board, clock_mhz=100, fuse=fuse, objective=obj))
        tot[obj] = evaluate_design(net, d, board)["totals"]
        if obj == "dram":
            hw = d.hw
            jobs = (restructure.fused_jobs(net, 32, restructure.Plan.from_doc(d.fusion))
                    if fuse else engine.jobs_for(net, 32))
    assert tot["dram"]["dram_bytes"] <= min(t["dram_bytes"] for t in tot.values())
    assert tot["dram"]["dram_bytes"] < 0.97 * tot["latency"]["dram_bytes"]   # it matters
    bpc = ddr_bytes_per_cycle(board, hw.clock_mhz)
    by_bytes = engine.choose(jobs, hw, 4, bpc, score=engine.dram_score)
    by_cycles = engine.choose(jobs, replace(hw), 4, bpc)
    w = lambda r: r["read_words"] + r["write_words"]  # noqa: E731
    assert (w(by_bytes) <= w(by_cycles) + 1e-6).all()
    assert (by_bytes["cycles"] >= by_cycles["cycles"] - 1e-6).all()


def test_clock_above_fmax_is_refused():
    from efgen.errors import EfgenError

    net, board = load_net("tiny"), load_board("pynq-z2")
    with pytest.raises(EfgenError) as exc:
        schedule(Request(net, board, clock_mhz=400))
    assert "200 MHz" in exc.value.message() and "--clock" in exc.value.message()


def test_read_and_written_bytes_split(resnet20_zcu102):
    _, _, _, ev = resnet20_zcu102
    t = ev["totals"]
    assert 0 < t["dram_write_bytes"] < t["dram_read_bytes"]
    assert t["dram_read_bytes"] + t["dram_write_bytes"] == pytest.approx(t["dram_bytes"])
    for r in ev["rows"]:
        assert 0 <= r.dram_read_bytes <= r.dram_bytes + 1e-6, (r.layer, r.phase)


# ---- double-buffered weight chunks (issue 13, HwParams.wdb) -------------------------------------

def test_double_buffered_weights_hide_chunk_loads():
    """With two weight buffers a chunk's load overlaps the previous chunk's compute: on a
    compute-bound conv only the first chunk's load beyond the first input tile is exposed
    (the reference RTL's co-simulation measures it, tests/test_rtl_top.py); WU (no weight
    load) saves only its write-backs beside the next chunks' accumulation (the model's
    wu_wb_hidden); one chunk saves only the first tile's overlap."""
    _, jobs = one_conv(32, 32, 16, 3, 1, 1, batch=2)
    fp = [j for j in jobs if j.phase != "wu"]
    wu = [j for j in jobs if j.phase == "wu"]
    on = replace(HW, wdb=True, wbuf_depth=512)
    off = replace(HW, wbuf_depth=512)
    tiles = [(16, 16, 2, "wo")] * len(fp)          # 8 output blocks, 4 chunks of 2
    a, b = run(fp, tiles, off), run(fp, tiles, on)
    first = b["load_cycles"] / (2 * 8 * 8)         # one input tile (images x blocks x NB)
    n = 4
    w = a["wload_cycles"] / n                       # equal chunks
    assert np.all(b["cycles"] < a["cycles"])
    assert b["wload_cycles"] == pytest.approx(np.maximum(w - first, 0.0))
    # the chunks after the first no longer restart the tile pipeline either
    assert np.all(a["cycles"] - b["cycles"] >= (n - 1) * w)
    wa, wb = run(wu, [(16, 16, 2, "io")], off), run(wu, [(16, 16, 2, "io")], on)
    assert np.all(wb["wu_wb_hidden"] > 0) and np.all(wa["wu_wb_hidden"] == 0)
    assert wb["cycles"] == pytest.approx(wa["cycles"] - wb["wu_wb_hidden"])
    one = [(16, 16, 8, "wo")] * len(fp)           # one chunk: only the first tile overlaps
    a1, b1 = run(fp, one, off), run(fp, one, on)
    assert b1["cycles"] == pytest.approx(a1["cycles"] - np.minimum(a1["wload_cycles"], first))


def test_double_buffered_weights_cost_bram_and_the_scheduler_weighs_them():
    board = load_board("zcu102")
    hw = HwParams(tm=16, tn=16, ifm_depth=2048, ofm_depth=1024, wbuf_depth=512)
    one, two = resource_use(hw, board), resource_use(replace(hw, wdb=True), board)
    assert two.bram_wbuf == 2 * one.bram_wbuf and two.bram18 - one.bram18 == one.bram_wbuf
    net = load_net("resnet20")
    off = schedule(Request(net, board, batch=32, clock_mhz=100.0))
    on = schedule(Request(net, board, batch=32, clock_mhz=100.0, weight_db="on"))
    auto = schedule(Request(net, board, batch=32, clock_mhz=100.0, weight_db="auto"))
    assert not off.hw.wdb and on.hw.wdb and '"wdb"' not in off.to_json()
    cyc = {k: evaluate_design(net, d, board)["totals"]["cycles"]
           for k, d in (("off", off), ("on", on), ("auto", auto))}
    assert cyc["auto"] <= min(cyc["off"], cyc["on"]) * (1 + 1e-9)
    for d in (on, auto):
        res = evaluate_design(net, d, board)["totals"]["resources"]
        assert all(res[r] <= board.cap(r) for r in ("dsp", "bram18", "uram", "lut", "ff"))
    from efgen.errors import EfgenError
    with pytest.raises(EfgenError, match="--weight-db"):
        schedule(Request(net, board, batch=32, weight_db="yes"))
