"""Board clocks with a basis (efgen/rtl/clocks.py) and the calibrated energy model
(efgen/model/energy.py): the issue-14 figures the report and the board files rest on."""

from __future__ import annotations

import pytest

from efgen import api
from efgen.frontend.boards import load_board
from efgen.model.coeffs import coefficients
from efgen.model.energy import clock_power_w
from efgen.report.summary import report_markdown
from efgen.rtl.clocks import (
    DS925_DSP_FMAX,
    clock_basis,
    default_clock_mhz,
    grade_scale,
    ps_clock_at_most,
    ps_clocks,
    speed_grade,
)

BOARDS = ("zcu102", "zcu104", "kv260", "ultra96v2", "pynq-z2", "zedboard")


@pytest.mark.parametrize("part,grade", [("xczu9eg-ffvb1156-2-e", "-2"),
                                        ("xczu3eg-sbva484-1-i", "-1"),
                                        ("xck26-sfvc784-2LV-c", "-2L"),
                                        ("xc7z020clg400-1", "-1")])
def test_speed_grade(part, grade):
    assert speed_grade(part) == grade


def test_grade_scale_follows_ds925():
    assert grade_scale("zynq-ultrascale+", "xczu9eg-ffvb1156-2-e") == 1.0
    assert grade_scale("zynq-ultrascale+", "xczu3eg-sbva484-1-i") == pytest.approx(775 / 645)
    assert DS925_DSP_FMAX["-2L"] == 644.0
    with pytest.raises(ValueError):
        grade_scale("zynq-7000", "xc7z020clg400-2")


def test_ps_clocks_are_pll_divisions():
    us = ps_clocks("zynq-ultrascale+")
    assert {300.0, 250.0, 187.5, 150.0, 125.0, 100.0} <= set(us)
    assert 200.0 not in us          # 1500 / 7.5: not an integer division of the IOPLL
    assert ps_clock_at_most(199.9, "zynq-ultrascale+") == 187.5
    assert ps_clock_at_most(155.0, "zynq-ultrascale+") == 150.0
    assert ps_clock_at_most(99.0, "zynq-7000") == 90.9


@pytest.mark.parametrize("name", BOARDS)
def test_board_clock_is_the_derived_default(name):
    """Each board file's clock_mhz is what the recorded timing estimate supports for its
    part (and the file says where it comes from)."""
    b = load_board(name)
    assert b.clock_mhz == default_clock_mhz(b.family, b.part)
    assert b.clock_basis == clock_basis(b.family, b.part)
    assert "efgen synth --timing" in b.clock_basis


@pytest.mark.parametrize("name", BOARDS)
def test_board_clock_rederived_from_the_recorded_estimate(name):
    """The derivation of efgen/rtl/clocks.py done again here by other means (DS925's
    figures and the PLL frequencies written out, every divider pair enumerated), so a
    wrong derivation fails even if the board file was regenerated from it: the default
    is the fastest PLL / (d0 * d1) at or below the grade-scaled slow end, and the board's
    clock_basis quotes the estimate it came from."""
    b = load_board(name)
    fam = {"zynq-ultrascale+": "xcup", "zynq-7000": "xc7"}[b.family]
    est = coefficients()["clock_estimate"][fam]
    lo, hi = float(est["fmax_mhz_lo"]), float(est["fmax_mhz_hi"])
    # DS925 DSP48 FMAX, all registers used: -2 775, -1 645, -2LV (0.72 V) 644 MHz;
    # efgen's UltraScale+ delays are -2 figures, its 7-series ones -1 figures
    grade = {"xczu9eg-ffvb1156-2-e": 775 / 775, "xczu7ev-ffvc1156-2-e": 775 / 775,
             "xck26-sfvc784-2LV-c": 644 / 775, "xczu3eg-sbva484-1-i": 645 / 775,
             "xc7z020clg400-1": 1.0, "xc7z020clg484-1": 1.0}[b.part]
    pll = {"xcup": 1500.0, "xc7": 1000.0}[fam]      # IOPLL (UG1085) / IO PLL (UG585)
    ok = [pll / (d0 * d1) for d0 in range(1, 64) for d1 in range(1, 64)
          if pll / (d0 * d1) <= lo * grade]
    assert b.clock_mhz == round(max(ok), 1)
    assert b.clock_mhz <= lo * grade           # the margin: at or below the slow end
    assert f"estimate {lo:g}..{hi:g} MHz" in b.clock_basis
    assert f"at or below the slow end {lo * grade:.0f} MHz" in b.clock_basis


def test_report_says_where_the_clock_comes_from():
    acc = api.build("tiny", "zcu102", batch=2)
    b = acc.board
    md = report_markdown(acc.design, b, acc.report)
    assert f"Clock: {b.clock_mhz:g} MHz, the default of board zcu102 ({b.clock_basis})." in md
    acc = api.build("tiny", "zcu102", batch=2, clock=100)
    md = report_markdown(acc.design, b, acc.report)
    assert "Clock: 100 MHz, set with --clock" in md


def test_ef_train_calibration_point():
    """EF-Train's measured 7.72 W (46.99 GFLOPS at 6.09 GFLOPS/W; ZCU102, 16x16 FP32 at
    100 MHz, VGG-16 at batch 2) is what the fitted model gives, within the rounding of
    the fitted pl_scale."""
    # (EF-Train's design runs batchnorm as separate passes: the unfused step, --no-fuse)
    acc = api.build("vgg16-bn-224", "zcu102", batch=2, tiles=(16, 16), clock=100, fuse=False)
    t = acc.evaluation["totals"]
    watts = t["energy_j"] / (t["ms_per_step"] / 1e3)
    assert watts == pytest.approx(7.72, rel=0.01)
    assert t["gflops_per_w"] == pytest.approx(t["effective_gflops"] / watts)


def test_clock_power_grows_with_the_array_and_the_clock():
    b = load_board("zcu102")
    small = api.build("tiny", b, batch=2, tiles=(4, 4)).design.hw
    big = api.build("tiny", b, batch=2, tiles=(16, 16)).design.hw
    fast = api.build("tiny", b, batch=2, tiles=(16, 16), clock=200).design.hw
    assert 0 < clock_power_w(b, small) < clock_power_w(b, big)
    assert clock_power_w(b, fast) == pytest.approx(2 * clock_power_w(b, big.__class__(
        **{**big.__dict__, "clock_mhz": 100.0})))
    assert coefficients()["energy"]["zynq-7000"]["pl_scale"] == 1.0   # not fitted


def test_report_says_what_the_energy_rests_on():
    """report.md names the fitted coefficient (or says the family is not fitted) and
    flags the board's static power as a placeholder while it is one."""
    for name, fitted in (("zcu102", True), ("pynq-z2", False)):
        acc = api.build("tiny", name, batch=2)
        md = report_markdown(acc.design, acc.board, acc.report)
        scale = coefficients()["energy"][acc.board.family]["pl_scale"]
        if fitted:
            assert f"pl_scale = {scale:g}, fitted on EF-Train's measured 7.72 W" in md
        else:
            assert "pl_scale not fitted for zynq-7000" in md
        assert acc.board.power.placeholder
        assert f"static power {acc.board.power.static_w:g} W is a placeholder" in md
