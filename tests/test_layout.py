"""DRAM layouts (efgen.layout): addresses, pack/unpack, burst lists."""

import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from efgen.layout import FeatureMapLayout, WeightLayout

FM_LAYOUTS = st.one_of(
    st.builds(FeatureMapLayout, st.just("blocked"), st.integers(1, 9)),
    st.just(FeatureMapLayout("nchw")),
)
W_LAYOUTS = st.one_of(
    st.builds(WeightLayout, st.just("blocked"), st.integers(1, 6), st.integers(1, 6)),
    st.just(WeightLayout("oihw")),
)
FM_SHAPES = st.tuples(st.integers(1, 3), st.integers(1, 20), st.integers(1, 6),
                      st.integers(1, 6))
W_SHAPES = st.one_of(
    st.tuples(st.integers(1, 13), st.integers(1, 13)).flatmap(
        lambda mn: st.sampled_from([1, 3, 5]).map(lambda k: (*mn, k, k))),
    st.tuples(st.integers(1, 13), st.integers(1, 13)),  # linear layers
)


def _random(shape, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    # No zeros, so pad words (zeros) can be told apart from data.
    return (rng.integers(1, 1000, size=shape)).astype(dtype)


def _coverage(bursts, size):
    """How many times each word is covered; also checks order and maximality."""
    cover = np.zeros(size, dtype=np.int64)
    for a, n in bursts:
        assert n > 0 and 0 <= a and a + n <= size
        cover[a:a + n] += 1
    return cover


def _check_burst_list(bursts, max_burst=None):
    """Ascending, disjoint; without max_burst also maximal (no two runs touch)."""
    for (a0, n0), (a1, _) in zip(bursts, bursts[1:]):
        assert a0 + n0 <= a1
        if max_burst is None:
            assert a0 + n0 < a1
    if max_burst is not None:
        assert all(n <= max_burst for _, n in bursts)


# ------------------------------------------------------------------ hand-worked addresses

def test_blocked_fm_addresses_by_hand():
    # shape (2, 5, 3, 4), T = 4: ceil(5/4) = 2 blocks, H*W = 12 pixels.
    lay, shape = FeatureMapLayout("blocked", 4), (2, 5, 3, 4)
    assert lay.size(shape) == 2 * 2 * 12 * 4 == 192
    assert lay.addr(shape, 0, 0, 0, 0) == 0
    assert lay.addr(shape, 0, 1, 0, 0) == 1            # next lane
    assert lay.addr(shape, 0, 0, 0, 1) == 4            # next pixel = next lane vector
    assert lay.addr(shape, 0, 3, 0, 1) == 1 * 4 + 3    # 7
    assert lay.addr(shape, 0, 0, 1, 0) == 4 * 4        # next row: W vectors on
    assert lay.addr(shape, 0, 4, 0, 0) == 12 * 4       # block 1 starts after 12 vectors
    assert lay.addr(shape, 1, 2, 2, 3) == ((1 * 2 + 0) * 12 + 2 * 4 + 3) * 4 + 2 == 142
    assert lay.addr(shape, 1, 4, 2, 3) == ((1 * 2 + 1) * 12 + 11) * 4 == 188
    flat = lay.pack(_random(shape))
    assert (flat[189:192] == 0).all()                  # pad lanes 5..7 of the last vector


def test_nchw_addresses_by_hand():
    lay, shape = FeatureMapLayout("nchw"), (2, 5, 3, 4)
    assert lay.size(shape) == 120
    assert lay.addr(shape, 1, 2, 2, 3) == ((1 * 5 + 2) * 3 + 2) * 4 + 3 == 95
    assert lay.addr(shape, 0, 1, 0, 0) == 12


def test_blocked_weight_addresses_by_hand():
    # shape (5, 3, 3, 3), Tm = Tn = 2: 3 m-blocks x 2 n-blocks, 9*2*2 = 36 words a pair.
    lay, shape = WeightLayout("blocked", 2, 2), (5, 3, 3, 3)
    assert lay.size(shape) == 3 * 2 * 36 == 216
    assert lay.addr(shape, 0, 0, 0, 0) == 0
    assert lay.addr(shape, 0, 1, 0, 0) == 1            # n lanes innermost
    assert lay.addr(shape, 1, 0, 0, 0) == 2            # then m lanes
    assert lay.addr(shape, 0, 0, 0, 1) == 4            # next kernel offset: next Tm*Tn vector
    assert lay.addr(shape, 0, 2, 0, 0) == 36           # pair (0, 1)
    assert lay.addr(shape, 2, 0, 0, 0) == 72           # pair (1, 0)
    # m=3, n=2, (i, j)=(1, 2): pair (1, 1) at 108, offset ((1*3+2)*2 + 1)*2 + 0 = 22.
    assert lay.addr(shape, 3, 2, 1, 2) == 130
    assert WeightLayout("oihw").addr(shape, 3, 2, 1, 2) == ((3 * 3 + 2) * 3 + 1) * 3 + 2


def test_linear_weights_and_activations_are_k1():
    w = np.arange(1, 7 * 5 + 1, dtype=np.float64).reshape(7, 5)
    lay = WeightLayout("blocked", 4, 2)
    flat = lay.pack(w)
    assert flat.size == lay.size((7, 5)) == 2 * 3 * 8
    assert np.array_equal(lay.unpack(flat, (7, 5)), w)
    assert lay.addr((7, 5), 5, 3) == lay.addr((7, 5, 1, 1), 5, 3, 0, 0) == (1 * 3 + 1) * 8 + 1 * 2 + 1
    x = np.arange(1, 3 * 6 + 1).reshape(3, 6)
    fl = FeatureMapLayout("blocked", 4)
    assert fl.size((3, 6)) == 3 * 2 * 4
    assert np.array_equal(fl.unpack(fl.pack(x), (3, 6)), x)


def test_scalar_addr_is_python_int():
    assert type(FeatureMapLayout("blocked", 4).addr((1, 5, 2, 2), np.int64(0), 4, 1, 1)) is int
    assert type(WeightLayout("blocked", 2, 2).addr((3, 3, 3, 3), 2, 2, 2, 2)) is int


# ----------------------------------------------------------------- pack/unpack/addr props

@settings(max_examples=200, deadline=None)
@given(lay=FM_LAYOUTS, shape=FM_SHAPES, dtype=st.sampled_from([np.float32, np.int16]))
def test_fm_pack_roundtrip_and_addr(lay, shape, dtype):
    arr = _random(shape, dtype=dtype)
    flat = lay.pack(arr)
    assert flat.ndim == 1 and flat.dtype == dtype and flat.size == lay.size(shape)
    assert np.array_equal(lay.unpack(flat, shape), arr)
    # addr agrees with pack for every element (one vectorised call, broadcast indices).
    b, c, r, x = np.indices(shape, dtype=np.int32)
    a = lay.addr(shape, b, c, r, x)
    assert a.shape == shape
    assert np.array_equal(flat[a], arr)
    assert np.unique(a).size == arr.size                       # injective
    pad = np.ones(flat.size, dtype=bool)
    pad[a.ravel()] = False
    assert (flat[pad] == 0).all()                              # everything else is zero
    assert pad.sum() == lay.size(shape) - arr.size
    # broadcasting: a channel vector against a scalar pixel
    cs = np.arange(shape[1])
    assert np.array_equal(lay.addr(shape, 0, cs, 0, 0), a[0, :, 0, 0])


@settings(max_examples=200, deadline=None)
@given(lay=W_LAYOUTS, shape=W_SHAPES)
def test_weight_pack_roundtrip_and_addr(lay, shape):
    arr = _random(shape, dtype=np.float64)
    flat = lay.pack(arr)
    assert flat.ndim == 1 and flat.dtype == arr.dtype and flat.size == lay.size(shape)
    assert np.array_equal(lay.unpack(flat, shape), arr)
    idx = np.indices(shape)
    if len(shape) == 2:
        a = lay.addr(shape, idx[0], idx[1])
    else:
        a = lay.addr(shape, *idx)
    assert np.array_equal(flat[a], arr)
    assert np.unique(a).size == arr.size
    pad = np.ones(flat.size, dtype=bool)
    pad[a.ravel()] = False
    assert (flat[pad] == 0).all()


def test_blocked_with_more_lanes_than_channels():
    lay, shape = FeatureMapLayout("blocked", 16), (2, 3, 2, 2)   # EF-Train's first layer
    flat = lay.pack(_random(shape))
    assert flat.size == 2 * 1 * 4 * 16
    assert (flat.reshape(2, 4, 16)[:, :, 3:] == 0).all()
    assert np.count_nonzero(flat) == 2 * 3 * 4


def test_lanes_one_blocked_is_nchw():
    shape = (2, 5, 3, 4)
    arr = _random(shape)
    assert np.array_equal(FeatureMapLayout("blocked", 1).pack(arr), arr.ravel())
    w = _random((4, 3, 3, 3))
    assert np.array_equal(WeightLayout("blocked", 1, 1).pack(w), w.ravel())


def test_pack_is_vectorised_and_fast():
    arr = np.random.default_rng(0).standard_normal((32, 64, 32, 32)).astype(np.float32)
    lay = FeatureMapLayout("blocked", 16)
    lay.pack(arr)  # warm-up
    t0 = time.perf_counter()
    flat = lay.pack(arr)
    back = lay.unpack(flat, arr.shape)
    elapsed = time.perf_counter() - t0
    assert np.array_equal(back, arr)
    assert elapsed < 0.5, elapsed  # milliseconds in practice; generous for slow CI


# -------------------------------------------------------------------------------- bursts

@st.composite
def fm_tiling(draw):
    lay = draw(FM_LAYOUTS)
    shape = draw(FM_SHAPES)
    if lay.kind == "blocked":
        # Tiles must be whole lane blocks, otherwise two tiles move the same block.
        tc = lay.lanes * draw(st.integers(1, 3))
    else:
        tc = draw(st.integers(1, shape[1]))
    tr = draw(st.integers(1, shape[2]))
    tx = draw(st.integers(1, shape[3]))
    tb = draw(st.integers(1, shape[0]))
    max_burst = draw(st.one_of(st.none(), st.integers(1, 40)))
    return lay, shape, (tb, tc, tr, tx), max_burst


def _tiles(n, t):
    return [(lo, min(lo + t, n)) for lo in range(0, n, t)]


@settings(max_examples=200, deadline=None)
@given(fm_tiling())
def test_fm_tiles_cover_every_word_once(case):
    lay, shape, (tb, tc, tr, tx), max_burst = case
    B, C, H, W = shape
    cover = np.zeros(lay.size(shape), dtype=np.int64)
    for bt in _tiles(B, tb):
        for ct in _tiles(C, tc):
            for rt in _tiles(H, tr):
                for xt in _tiles(W, tx):
                    bursts = lay.tile_bursts(shape, bt, ct, rt, xt, max_burst=max_burst)
                    _check_burst_list(bursts, max_burst)
                    words = sum(n for _, n in bursts)
                    assert words == lay.tile_words(shape, bt, ct, rt, xt)
                    assert len(bursts) == lay.tile_burst_count(shape, bt, ct, rt, xt,
                                                               max_burst=max_burst)
                    cover += _coverage(bursts, cover.size)
    assert (cover == 1).all()   # every word (pad lanes included) exactly once


@settings(max_examples=200, deadline=None)
@given(lay=FM_LAYOUTS, shape=FM_SHAPES, data=st.data())
def test_fm_tile_bursts_are_exactly_the_tile_words(lay, shape, data):
    """Any tile (not only aligned ones): the bursts are the addresses of its elements,
    plus, in the blocked layout, the other lanes of every block it touches."""
    def rng(n):
        lo = data.draw(st.integers(0, n - 1))
        return (lo, data.draw(st.integers(lo + 1, n)))
    B, C, H, W = shape
    b, cr, rr, xr = rng(B), rng(C), rng(H), rng(W)
    bursts = lay.tile_bursts(shape, range(*b), cr, rr, xr)
    _check_burst_list(bursts)
    got = np.flatnonzero(_coverage(bursts, lay.size(shape)))
    if lay.kind == "blocked":
        t = lay.lanes
        cr = (cr[0] // t * t, -(-cr[1] // t) * t)   # whole blocks
    idx = np.ix_(np.arange(*b), np.arange(*cr), np.arange(*rr), np.arange(*xr))
    expect = np.zeros(lay.size(shape), dtype=bool)
    bb, cc, rr_, xx = np.broadcast_arrays(*idx)
    real = cc < C
    expect[lay.addr(shape, bb[real], cc[real], rr_[real], xx[real])] = True
    if lay.kind == "blocked":   # pad lanes: their address follows the formula too
        t, cb = lay.lanes, lay.blocks(C)
        pad = ((bb * cb + cc // t) * H * W + rr_ * W + xx) * t + cc % t
        expect[pad[~real]] = True
    assert np.array_equal(got, np.flatnonzero(expect))


def test_full_width_row_tiles_blocked_vs_nchw():
    """The point of data reshaping: a (one block) x (Tr full-width rows) tile is ONE
    burst in the blocked layout, and one burst per channel in NCHW."""
    shape = (2, 32, 16, 16)
    blocked, nchw = FeatureMapLayout("blocked", 16), FeatureMapLayout("nchw")
    for c_range in [(0, 16), (16, 32)]:
        for r_range in [(0, 4), (4, 8), (12, 16)]:
            bb = blocked.tile_bursts(shape, 1, c_range, r_range, (0, 16))
            assert bb == [(blocked.addr(shape, 1, c_range[0], r_range[0], 0), 4 * 16 * 16)]
            nb = nchw.tile_bursts(shape, 1, c_range, r_range, (0, 16))
            assert len(nb) == 16 and all(n == 4 * 16 for _, n in nb)
    # A channel range inside one block, but not the whole block: still one burst,
    # and it moves the whole block (all 16 lanes).
    bb = blocked.tile_bursts(shape, 0, (3, 9), (4, 8), (0, 16))
    assert bb == [(4 * 16 * 16, 4 * 16 * 16)]
    assert blocked.tile_words(shape, 0, (3, 9), (4, 8), (0, 16)) == 1024
    assert nchw.tile_words(shape, 0, (3, 9), (4, 8), (0, 16)) == 6 * 64
    # Spanning two blocks: one burst per block.
    assert len(blocked.tile_bursts(shape, 0, (8, 24), (4, 8), (0, 16))) == 2
    # Whole-height tiles merge with the neighbouring block (and image): one burst.
    assert blocked.tile_bursts(shape, (0, 2), (0, 32), (0, 16), (0, 16)) == [(0, 2 * 32 * 256)]
    # Column tiles: one burst per row in both layouts (per row and channel in NCHW).
    assert len(blocked.tile_bursts(shape, 0, (0, 16), (0, 4), (0, 8))) == 4
    assert len(nchw.tile_bursts(shape, 0, (0, 16), (0, 4), (0, 8))) == 16 * 4


def test_max_burst_splitting_example():
    shape, lay = (2, 32, 16, 16), FeatureMapLayout("blocked", 16)
    bursts = lay.tile_bursts(shape, 1, (16, 32), (4, 8), (0, 16), max_burst=256)
    base = lay.addr(shape, 1, 16, 4, 0)
    assert bursts == [(base + k * 256, 256) for k in range(4)]
    bursts = lay.tile_bursts(shape, 1, (16, 32), (4, 8), (0, 16), max_burst=300)
    assert [n for _, n in bursts] == [300, 300, 300, 124]
    assert lay.tile_burst_count(shape, 1, (16, 32), (4, 8), (0, 16), max_burst=300) == 4


@settings(max_examples=100, deadline=None)
@given(lay=FM_LAYOUTS, shape=FM_SHAPES, max_burst=st.integers(1, 50), data=st.data())
def test_max_burst_split_covers_the_same_words(lay, shape, max_burst, data):
    B, C, H, W = shape
    c0 = data.draw(st.integers(0, C - 1))
    r0 = data.draw(st.integers(0, H - 1))
    args = (shape, (0, B), (c0, C), (r0, H), (0, W))
    whole = lay.tile_bursts(*args)
    split = lay.tile_bursts(*args, max_burst=max_burst)
    _check_burst_list(split, max_burst)
    assert np.array_equal(_coverage(whole, lay.size(shape)),
                          _coverage(split, lay.size(shape)))
    assert len(split) == lay.tile_burst_count(*args, max_burst=max_burst)


@settings(max_examples=200, deadline=None)
@given(lay=W_LAYOUTS, shape=W_SHAPES, data=st.data(), max_burst=st.one_of(st.none(), st.integers(1, 60)))
def test_weight_tiles_cover_every_word_once(lay, shape, data, max_burst):
    M, N = shape[:2]
    if lay.kind == "blocked":
        tm = lay.tm * data.draw(st.integers(1, 3))
        tn = lay.tn * data.draw(st.integers(1, 3))
    else:
        tm, tn = data.draw(st.integers(1, M)), data.draw(st.integers(1, N))
    cover = np.zeros(lay.size(shape), dtype=np.int64)
    for mr in _tiles(M, tm):
        for nr in _tiles(N, tn):
            bursts = lay.tile_bursts(shape, mr, nr, max_burst=max_burst)
            _check_burst_list(bursts, max_burst)
            assert sum(n for _, n in bursts) == lay.tile_words(shape, mr, nr)
            assert len(bursts) == lay.tile_burst_count(shape, mr, nr, max_burst=max_burst)
            cover += _coverage(bursts, cover.size)
    assert (cover == 1).all()


def test_weight_pair_is_one_burst_blocked_many_in_oihw():
    shape = (64, 32, 3, 3)
    blocked, oihw = WeightLayout("blocked", 16, 16), WeightLayout("oihw")
    pair = 9 * 16 * 16
    for mb in range(4):
        for nb in range(2):
            mr, nr = (16 * mb, 16 * mb + 16), (16 * nb, 16 * nb + 16)
            assert blocked.tile_bursts(shape, mr, nr) == [((mb * 2 + nb) * pair, pair)]
            ob = oihw.tile_bursts(shape, mr, nr)
            assert len(ob) == 16 and all(n == 16 * 9 for _, n in ob)
    # BP reads one m-block row (all n-blocks): consecutive pairs, one burst.
    assert blocked.tile_bursts(shape, (16, 32), (0, 32)) == [(2 * pair, 2 * pair)]
    # FP's weight tile of one n-block over several m-blocks: one burst per pair.
    assert len(blocked.tile_bursts(shape, (0, 64), (16, 32))) == 4
    # Partial channel ranges still move the whole pair (pad lanes included).
    assert blocked.tile_bursts(shape, (3, 5), (17, 18)) == [(1 * pair, pair)]
    assert blocked.tile_words(shape, (3, 5), (17, 18)) == pair
    # max_burst splitting of a pair
    assert [n for _, n in blocked.tile_bursts(shape, (0, 16), (0, 16), max_burst=1000)] \
        == [1000, 1000, 304]


def test_weight_blocked_pair_with_padding():
    lay, shape = WeightLayout("blocked", 4, 4), (6, 3, 5, 5)   # M, N not multiples
    assert lay.size(shape) == 2 * 1 * 25 * 16
    assert lay.tile_bursts(shape, (4, 6), (0, 3)) == [(400, 400)]
    flat = lay.pack(_random(shape))
    assert np.count_nonzero(flat) == 6 * 3 * 25


def test_empty_tiles():
    lay = FeatureMapLayout("blocked", 4)
    assert lay.tile_bursts((1, 5, 3, 4), 0, (2, 2), (0, 3), (0, 4)) == []
    assert lay.tile_words((1, 5, 3, 4), 0, (2, 2), (0, 3), (0, 4)) == 0
    assert lay.tile_burst_count((1, 5, 3, 4), 0, (2, 2), (0, 3), (0, 4)) == 0
    assert WeightLayout("oihw").tile_bursts((4, 4, 3, 3), (1, 1), (0, 4)) == []


# ---------------------------------------------------------------------------- validation

@pytest.mark.parametrize("make", [
    lambda: FeatureMapLayout("nhwc"),
    lambda: FeatureMapLayout("blocked", 0),
    lambda: FeatureMapLayout("blocked", 2.0),
    lambda: FeatureMapLayout("blocked", True),
    lambda: WeightLayout("hwio"),
    lambda: WeightLayout("blocked", 0, 4),
    lambda: WeightLayout("blocked", 4, -1),
])
def test_bad_layouts(make):
    with pytest.raises(ValueError):
        make()


def test_unblocked_kinds_ignore_lane_counts():
    assert FeatureMapLayout("nchw", 16) == FeatureMapLayout("nchw")
    assert WeightLayout("oihw", 16, 8) == WeightLayout("oihw")


@pytest.mark.parametrize("call", [
    lambda: FeatureMapLayout("blocked", 4).addr((1, 5, 3, 4), 0, 5, 0, 0),
    lambda: FeatureMapLayout("blocked", 4).addr((1, 5, 3, 4), 0, np.array([0, 7]), 0, 0),
    lambda: FeatureMapLayout("blocked", 4).addr((1, 5, 3, 4), 0, 0.5, 0, 0),
    lambda: FeatureMapLayout("nchw").size((1, 5, 3)),
    lambda: FeatureMapLayout("nchw").size((1, 0, 3, 3)),
    lambda: FeatureMapLayout("nchw").unpack(np.zeros(10), (1, 5, 3, 4)),
    lambda: FeatureMapLayout("nchw").tile_bursts((1, 5, 3, 4), 0, (0, 6), (0, 3), (0, 4)),
    lambda: FeatureMapLayout("nchw").tile_bursts((1, 5, 3, 4), 0, (3, 2), (0, 3), (0, 4)),
    lambda: FeatureMapLayout("nchw").tile_bursts((1, 5, 3, 4), range(0, 2, 2), (0, 5)),
    lambda: FeatureMapLayout("nchw").tile_bursts((1, 5, 3, 4), 0, (0, 5), max_burst=0),
    lambda: WeightLayout("blocked", 2, 2).unpack(np.zeros(10), (4, 4, 3, 3)),
    lambda: WeightLayout("blocked", 2, 2).tile_bursts((4, 4, 3, 3), (0, 5), (0, 4)),
])
def test_bad_arguments(call):
    with pytest.raises(ValueError):
        call()
