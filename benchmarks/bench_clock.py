"""Clock and power figures of issue 14: fmax estimates of the reference RTL, the
training-step figures at the board's default clock, and the EF-Train energy calibration.

1. fmax table (efgen/rtl/timing.py: Yosys 0.23 synth_xilinx + efgen's logic-depth STA):
   family x array size, FP32 units --impl dsp (default) or synth (efgen's own; the vendor Floating-Point
   Operator needs Vivado, not here). The array-independent modules are estimated once
   at the largest array, the array-dependent ones (engine_wload: bank decode; sgd_wb:
   bank mux; engine_ctrl, layer_seq: Tm/Tn constants) at every size.
2. resnet20 and vgg16-bn-224 on zcu102 at its default clock: GFLOPS and GFLOPS/W.
3. EF-Train's measured point (ZCU102, 16x16 FP32 at 100 MHz, vgg16-bn-224 at batch 2:
   46.99 GFLOPS, 6.09 GFLOPS/W, 7.72 W) against the model, unfitted and fitted
   (energy.pl_scale in configs/model/coefficients.yaml), and the pl_scale that fits.
4. The energy/latency front of a tile sweep on zcu102.

Takes about 25 minutes on 2 loaded cores (Yosys); --quick skips the xc7 family and the
16x16 size; --family picks one family, --table-only stops after the fmax table.
"""

from __future__ import annotations

import argparse
import time

EF_TRAIN = {"gflops": 46.99, "gflops_per_w": 6.09, "watts": 7.72}


def fmax_table(quick: bool, impl: str = "dsp", families: tuple[str, ...] = ("xcup", "xc7")
               ) -> list[tuple]:
    from efgen.rtl.engine import EngineParams
    from efgen.rtl.timing import MODULES, WIDE_MODULES, run_timing
    from efgen.rtl.top import RtlParams, rtl_verilog, wload_words

    dependent = ("engine_wload", "sgd_wb", "engine_ctrl", "layer_seq", "vec_unit")
    fams = ()
    if "xcup" in families:
        fams += (("xcup", ((4, 4), (8, 8), (16, 24)) if quick else ((4, 4), (8, 8), (16, 16), (16, 24))),)
    if not quick and "xc7" in families:
        fams += (("xc7", ((4, 4), (8, 8), (16, 16))),)
    rows = []
    for fam, sizes in fams:
        big = sizes[-1]

        # the boards' HP port width: 128-bit beats on Zynq UltraScale+, 64 on Zynq-7000
        width = 128 if fam == "xcup" else 64

        def files(tm, tn):
            e = EngineParams(tm=tm, tn=tn, ifm_depth=1024, ofm_depth=512, wbuf_depth=512,
                             kmax=3, smax=4, impl=impl, wl_words=wload_words(tm, tn, width // 32))
            return rtl_verilog(RtlParams(engine=e, axi_width=width))

        fixed = [run_timing(files(*big), m, fam) for m in MODULES + WIDE_MODULES
                 if m not in dependent]
        for tm, tn in sizes:
            t0 = time.perf_counter()
            f = files(tm, tn)
            reps = fixed + [run_timing(f, m, fam) for m in dependent]
            worst = min(reps, key=lambda r: r.fmax_lo)
            deepest = max(reps, key=lambda r: r.levels)
            rows.append((fam, f"{tm}x{tn}", impl, min(r.fmax_lo for r in reps),
                         min(r.fmax_hi for r in reps), worst.module, deepest.levels,
                         deepest.module, {r.module: (r.fmax_lo, r.fmax_hi, r.levels) for r in reps}))
            print(f"  {fam} {tm}x{tn}: {rows[-1][3]:.0f} .. {rows[-1][4]:.0f} MHz, limited by "
                  f"{worst.module}; deepest {deepest.module} {deepest.levels:.1f} LUT levels "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
            print("    " + ", ".join(f"{r.module} {r.fmax_lo:.1f} - {r.fmax_hi:.1f} ({r.levels:.2f})"
                                     for r in sorted(reps, key=lambda r: r.fmax_lo)), flush=True)
    return rows


def step_figures():
    from efgen import api
    from efgen.frontend.boards import load_board

    b = load_board("zcu102")
    out = []
    for net, batch in (("resnet20", 32), ("vgg16-bn-224", 2)):
        for clock in (b.clock_mhz, 100.0):
            a = api.build(net, "zcu102", batch=batch, clock=clock)
            t = a.evaluation["totals"]
            hw = a.design.hw
            out.append((net, batch, clock, hw.tm, hw.tn, t["effective_gflops"],
                        t["gflops_per_w"], t["energy_j"] / t["ms_per_step"] * 1e3))
    return b, out


def ef_train_point():
    from efgen import api
    from efgen.model.coeffs import coefficients

    fam = coefficients()["energy"]["zynq-ultrascale+"]
    fitted = float(fam["pl_scale"])

    def run(scale):
        fam["pl_scale"] = scale
        a = api.build("vgg16-bn-224", "zcu102", batch=2, tiles=(16, 16), clock=100)
        t = a.evaluation["totals"]
        return t, t["ms_per_step"] / 1e3

    try:
        t1, sec = run(1.0)
        t2, _ = run(2.0)
        tf, _ = run(fitted)
    finally:
        fam["pl_scale"] = fitted
    # energy is linear in pl_scale: E(s) = A + s * B
    b = t2["energy_j"] - t1["energy_j"]
    a = t1["energy_j"] - b
    s_fit = (EF_TRAIN["watts"] * sec - a) / b
    return {"unfitted_w": t1["energy_j"] / sec, "fitted_w": tf["energy_j"] / sec,
            "pl_scale": fitted, "pl_scale_exact": s_fit, "gflops": tf["effective_gflops"],
            "gflops_per_w": tf["gflops_per_w"], "static_j": a, "seconds": sec}


def front():
    from efgen import api

    pts = []
    for tm, tn in ((4, 4), (8, 8), (8, 16), (16, 16), (16, 24)):
        try:
            a = api.build("resnet20", "zcu102", batch=32, tiles=(tm, tn))
        except Exception as exc:   # a tile pair that does not fit the board
            print(f"  {tm}x{tn}: {str(exc)[:80]}")
            continue
        t = a.evaluation["totals"]
        pts.append((f"{tm}x{tn}", t["ms_per_step"], t["energy_j"]))
    pareto = [p for p in pts if not any(q[1] <= p[1] and q[2] <= p[2] and q != p for q in pts)]
    return pts, pareto


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="UltraScale+ only, three sizes")
    ap.add_argument("--impl", choices=["dsp", "synth"], default="dsp",
                    help="FP32 units of the RTL (default dsp, efgen build's default)")
    ap.add_argument("--family", choices=["xcup", "xc7", "both"], default="both",
                    help="the fmax table's families (default both; --quick: xcup only)")
    ap.add_argument("--table-only", action="store_true", help="only part 1, the fmax table")
    args = ap.parse_args()

    print("1. fmax estimate of the reference RTL (efgen synth --timing; logic only, a range)")
    t0 = time.perf_counter()
    rows = fmax_table(args.quick, args.impl,
                      ("xcup", "xc7") if args.family == "both" else (args.family,))
    print(f"\n{'family':7s} {'array':6s} {'FP32':6s} {'fmax MHz (range)':>18s}  limited by     "
          "deepest (LUT levels)")
    for fam, arr, impl, lo, hi, worst, lv, deep, _ in rows:
        print(f"{fam:7s} {arr:6s} {impl:6s} {lo:8.0f} .. {hi:5.0f}  {worst:14s} {deep} {lv:.1f}")
    print(f"(vendor FP32 operators: not estimable without Vivado; {time.perf_counter() - t0:.0f} s)")
    print("\n   per module, slow end MHz (LUT levels), the five slowest:")
    for fam, arr, _, _, _, _, _, _, per in rows:
        worst5 = sorted(per.items(), key=lambda kv: kv[1][0])[:5]
        print(f"   {fam:5s} {arr:6s} " + ", ".join(f"{m} {lo:.1f} ({lv:.2f})"
                                                  for m, (lo, _, lv) in worst5))
    if args.table_only:
        return

    from efgen.frontend.boards import load_board
    from efgen.rtl.clocks import default_clock_mhz, estimate
    print("\n   board defaults from the recorded estimate (configs/model/coefficients.yaml "
          "clock_estimate):")
    for name in ("zcu102", "zcu104", "kv260", "ultra96v2", "pynq-z2", "zedboard"):
        b = load_board(name)
        print(f"   {name:10s} {b.part:22s} file {b.clock_mhz:6.1f} MHz, derived "
              f"{default_clock_mhz(b.family, b.part):6.1f} MHz")
    for fam in ("zynq-ultrascale+", "zynq-7000"):
        print(f"   recorded {fam}: {estimate(fam)}")

    print("\n2. training step on zcu102 (model)")
    b, figs = step_figures()
    print(f"   {'net':14s} batch  MHz   Tm x Tn  GFLOPS  GFLOPS/W   W")
    for net, batch, clock, tm, tn, gf, gfw, w in figs:
        tag = " (default)" if clock == b.clock_mhz else " (EF-Train clock)"
        print(f"   {net:14s} {batch:5d} {clock:5.0f} {tm:4d} x {tn:<3d} {gf:7.2f} {gfw:8.2f} "
              f"{w:5.2f}{tag}")

    print("\n3. EF-Train calibration: vgg16-bn-224, zcu102, batch 2, --tiles Tm=16,Tn=16 --clock 100")
    c = ef_train_point()
    print(f"   measured (Tang et al. 2022): {EF_TRAIN['gflops']} GFLOPS, "
          f"{EF_TRAIN['gflops_per_w']} GFLOPS/W, {EF_TRAIN['watts']} W")
    print(f"   model unfitted (pl_scale 1.0): {c['unfitted_w']:.2f} W "
          f"({100 * (c['unfitted_w'] / EF_TRAIN['watts'] - 1):+.1f}%)")
    print(f"   model fitted (pl_scale {c['pl_scale']}; exact fit {c['pl_scale_exact']:.3f}): "
          f"{c['fitted_w']:.2f} W, {c['gflops']:.2f} GFLOPS, {c['gflops_per_w']:.2f} GFLOPS/W")
    print(f"   static + DRAM share of the step's energy: "
          f"{c['static_j'] / (c['fitted_w'] * c['seconds']):.0%}")

    print("\n4. energy/latency front of a tile sweep (resnet20, zcu102, default clock)")
    pts, pareto = front()
    for name, ms, j in pts:
        print(f"   {name:6s} {ms:9.2f} ms {j:8.3f} J" + ("  <- front" if (name, ms, j) in pareto else ""))
    print(f"   front: {len(pareto)} of {len(pts)} points")


if __name__ == "__main__":
    main()
