"""The training: section's interface (validation, CLI, net files) and the cost model and
scheduler of the training methods (issue 15)."""

from __future__ import annotations

import json
import math

import pytest
import yaml

from efgen.cli import main
from efgen.design import Design
from efgen.errors import EfgenError
from efgen.frontend import load_net
from efgen.frontend.boards import load_board
from efgen.frontend.ir import net_to_doc
from efgen.methods.cost import layer_counts, method_jobs, saved_words
from efgen.methods.spec import apply_to_net, parse_training, residual_blocks
from efgen.model.evaluate import evaluate_design
from efgen.model.schedule import Request, schedule


@pytest.fixture(scope="module")
def r20():
    return load_net("resnet20")


# ---- validation ---------------------------------------------------------------------------

@pytest.mark.parametrize("doc,where,word", [
    ({"gradient_filter": {"r": 0, "last": 2}}, "training.gradient_filter.r", "positive"),
    ({"gradient_filter": {"r": 2}}, "training.gradient_filter", "'layers' and 'last'"),
    ({"gradient_filter": {"r": 2, "last": 99}}, "training.gradient_filter.last", "between 1"),
    ({"gradient_filter": {"r": 2, "layers": ["s3b3_a_cnv"]}},
     "training.gradient_filter.layers[0]", "did you mean 's3b3_a_conv'"),
    ({"gradient_filter": {"r": 2, "layers": ["s3b3_a_bn"]}},
     "training.gradient_filter.layers[0]", "not a conv"),
    ({"error_pruning": {"keep": 1.5, "layers": "all"}}, "training.error_pruning.keep", "<= 1"),
    ({"error_pruning": {"keep": 0.5, "layers": "all", "x": 1}}, "training.error_pruning.x",
     "unknown key"),
    ({"minibatch_drop": {"p": 1.0}}, "training.minibatch_drop.p", "< 1"),
    ({"minibatch_drop": {"p": 0.5, "update_on_drop": "yes"}},
     "training.minibatch_drop.update_on_drop", "true or false"),
    ({"layer_update": {"keep": {"s9b1": 0.5}}}, "training.layer_update.keep.s9b1",
     "not a residual block"),
    ({"instance_filter": {"keep": 0.3, "filter_net": "lenet5"}},
     "training.instance_filter.filter_net", "input shape"),
    ({"batchnorm": "scale_only"}, "training.batchnorm", "shift_only"),
    ({"train_last_blocks": 10}, "training.train_last_blocks", "between 1 and 9"),
    ({"gradient_filtr": {"r": 2}}, "training.gradient_filtr", "did you mean 'gradient_filter'"),
])
def test_bad_sections_name_the_key(r20, doc, where, word):
    with pytest.raises(EfgenError) as e:
        parse_training(doc, r20, "t.yaml")
    assert e.value.where == where and e.value.file == "t.yaml"
    assert word in e.value.message() and "\n" not in e.value.message()


def test_cli_rejects_a_bad_training_file_with_one_line(tmp_path, capsys):
    f = tmp_path / "t.yaml"
    f.write_text("training:\n  error_pruning: {keep: 0, layers: all}\n")
    for argv in (["net", "show", "resnet20", "--training", str(f)],
                 ["build", "--board", "zcu102", "--net", "resnet20", "--training", str(f),
                  "-o", str(tmp_path / "b")],
                 ["golden", "--net", "resnet20", "--training", str(f)]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and "training.error_pruning.keep" in err and str(f) in err
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("section,word", [
    ("  batchnorm: shift_only\n", "does not implement batchnorm"),
    ("  layer_update: {keep: 0.5}\n  instance_filter: {keep: 0.5, filter_net: resnet20}\n",
     "selective layer update with instance filtering")])
def test_csim_with_methods_is_refused_before_writing(tmp_path, capsys, section, word):
    f = tmp_path / "t.yaml"
    f.write_text("training:\n" + section)
    out = tmp_path / "c"
    assert main(["csim", "--board", "zcu102", "--net", "resnet20", "--batch", "2",
                 "--training", str(f), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert word in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_a_net_files_own_training_section_is_used(tmp_path, r20, capsys):
    doc = net_to_doc(r20)
    doc["training"] = {"gradient_filter": {"r": 4, "last": 4}}
    f = tmp_path / "r20gf.yaml"
    f.write_text(yaml.safe_dump(doc))
    assert main(["net", "show", str(f)]) == 0
    out = capsys.readouterr().out
    assert "gradient filter r=4 on 4 conv(s)" in out
    # s3b3_b_conv: 64 -> 64 channels, 8x8 output, r = 4: 2x2 patches
    assert "2,359,296 -> 16,384" in out
    bad = dict(doc, training={"gradient_filter": {"r": 4}})
    f.write_text(yaml.safe_dump(bad))
    assert main(["net", "show", str(f)]) == 2
    assert f"{f}:training.gradient_filter" in capsys.readouterr().err


# ---- cost model ---------------------------------------------------------------------------

def _schedule(net, t, batch=8):
    net = apply_to_net(net, t)
    board = load_board("zcu102")
    d = schedule(Request(net=net, board=board, batch=batch, training=t))
    return net, d, evaluate_design(net, d, board)


def test_gradient_filter_jobs_are_1x1_on_pooled_maps(r20):
    t = parse_training({"gradient_filter": {"r": 2, "layers": ["s2b1_a_conv"]}}, r20)
    jobs = {(j.layer, j.phase): j for j in method_jobs(r20, 8, t)}
    bp, wu = jobs[("s2b1_a_conv", "bp")], jobs[("s2b1_a_conv", "wu")]
    # 16 -> 32 channels, stride 2, 16x16 output -> 8x8 patches
    assert (bp.k, bp.s, bp.ro, bp.co, bp.out, bp.red) == (1, 1, 8, 8, 16, 32)
    assert (wu.k, wu.out, wu.red) == (1, 32, 16)
    assert bp.macs == wu.macs == 8 * 16 * 32 * 8 * 8
    assert jobs[("s2b1_a_conv", "fp")].k == 3                      # FP unchanged
    net, d, ev = _schedule(r20, t)
    assert d.tiling("s2b1_a_conv", "bp").tr <= 8                   # tiled as the 1x1 job
    ops = {(r.layer, r.engine) for r in ev["rows"]}
    assert {("s2b1_a_conv", "gf error pooling"), ("s2b1_a_conv", "gf copy-back"),
            ("s2b1_a_conv", "gf input patch sums"),
            ("s2b1_a_conv", "sgd (gf taps broadcast)")} <= ops
    # saved words: the input (16x32x32) becomes 16 x 8x8 patch sums, (r*s)^2 = 16x fewer
    base, gf = saved_words(r20, 8, None), saved_words(r20, 8, t)
    assert base["s2b1_a_conv"] == 8 * 16 * 32 * 32
    assert gf["s2b1_a_conv"] == 8 * 16 * 8 * 8 == base["s2b1_a_conv"] / (2 * 2) ** 2


def test_error_pruning_prices_the_kept_channels(r20):
    t = parse_training({"error_pruning": {"keep": 0.7, "layers": ["s3b1_b_conv"]}}, r20)
    jobs = {(j.layer, j.phase): j for j in method_jobs(r20, 4, t)}
    base = {(j.layer, j.phase): j for j in method_jobs(r20, 4, None)}
    kept = math.ceil(0.7 * 64)
    assert jobs[("s3b1_b_conv", "bp")].red == kept and jobs[("s3b1_b_conv", "wu")].out == kept
    assert jobs[("s3b1_b_conv", "bp")].macs == round(base[("s3b1_b_conv", "bp")].macs
                                                     * kept / 64)
    assert jobs[("s3b1_b_conv", "fp")] == base[("s3b1_b_conv", "fp")]
    _, _, ev = _schedule(r20, t)
    _, _, ev0 = _schedule(r20, None)
    assert ev["totals"]["cycles"] < ev0["totals"]["cycles"]


def test_minibatch_drop_scales_the_expected_step(r20):
    t = parse_training({"minibatch_drop": {"p": 0.25}}, r20)
    _, _, ev = _schedule(r20, t)
    _, _, ev0 = _schedule(r20, None)
    rows0 = {(r.layer, r.phase, r.engine): r for r in ev0["rows"]}
    for r in ev["rows"]:
        r0 = rows0[(r.layer, r.phase, r.engine)]
        f = 1.0 if r.phase == "sgd" else 0.75
        assert r.cycles == pytest.approx(r0.cycles * f) and r.macs == pytest.approx(
            r0.macs * f)
    t2 = parse_training({"minibatch_drop": {"p": 0.25, "update_on_drop": False}}, r20)
    _, _, ev2 = _schedule(r20, t2)
    assert ev2["totals"]["cycles"] == pytest.approx(ev0["totals"]["cycles"] * 0.75)


def test_layer_update_and_instance_filter_run_fewer_images(r20):
    t = parse_training({"layer_update": {"keep": {"s2b2": 0.5}}}, r20)
    jobs = {(j.layer, j.phase): j for j in method_jobs(r20, 8, t)}
    assert jobs[("s2b2_a_conv", "fp")].images == 4 and jobs[("s2b1_a_conv", "fp")].images == 8
    _, _, ev = _schedule(r20, t)
    assert any(r.engine.startswith("slu gate") and r.layer == "s2b2_add" for r in ev["rows"])
    tiny = load_net("tiny")
    te = parse_training({"instance_filter": {"keep": 0.25, "filter_net": "tiny"}}, tiny)
    jobs = method_jobs(tiny, 8, te)
    fjobs = [j for j in jobs if j.layer.startswith("filter/")]
    assert fjobs and all(j.phase == "fp" for j in fjobs)
    main = [j for j in jobs if not j.layer.startswith("filter/") and j.phase == "fp"]
    assert all(j.images in (2, 1) for j in main)     # ceil(0.25 * 8) images (linear: 1 map)
    _, d, ev = _schedule(tiny, te)
    assert ev["totals"]["methods"]["main_batch"] == 2


def test_host_ops_are_priced_as_the_runtime_runs_them(r20):
    """The generated runtime's host ops are priced as vector-engine passes: EIF's filter
    batchnorms in inference mode (HOST_BN_EVAL, one pass, cheaper than training BN's
    two) and HOST_EIF's selection; SLU's gathers, add and scatter around each gated
    branch (the add reads the branch at k images, not B)."""
    tiny = load_net("tiny")
    te = parse_training({"instance_filter": {"keep": 0.25, "filter_net": "tiny"}}, tiny)
    _, _, ev = _schedule(tiny, te)
    rows = {(r.layer, r.phase, r.engine): r for r in ev["rows"]}
    bn = [r for (l, p, e), r in rows.items() if l.startswith("filter/bn") and p == "fp"]
    assert bn and all("HOST_BN_EVAL" in r.engine for r in bn)
    _, _, plain = _schedule(tiny, None)
    train_bn = next(r for r in plain["rows"] if r.layer == "bn1" and r.phase == "fp")
    eval_bn = next(r for r in bn if r.layer == "filter/bn1")
    assert eval_bn.cycles < train_bn.cycles and eval_bn.dram_bytes < train_bn.dram_bytes
    assert any(l == "filter/loss" and "HOST_EIF" in e and r.cycles > 0
               for (l, p, e), r in rows.items())
    t = parse_training({"layer_update": {"keep": {"s2b2": 0.5}}}, r20)
    _, _, ev = _schedule(r20, t)
    got = {(r.layer, r.phase, r.engine.split(" (")[0]) for r in ev["rows"]}
    assert {("s2b2_a_conv", "fp", "slu gather of the block input"),
            ("s2b2_add", "fp", "slu add"), ("s2b2_add", "bp", "slu gather of the add's error"),
            ("s2b2_a_conv", "bp", "slu scatter of the branch's input error")} <= got
    _, _, full = _schedule(r20, None)
    add = lambda e: next(r for r in e["rows"] if r.layer == "s2b2_add" and r.phase == "fp"  # noqa
                         and r.engine.split(" (")[0] in ("add", "slu add"))
    assert add(ev).dram_bytes < add(full).dram_bytes       # the branch at 4 of 8 images


def test_mobiletl_saves_bn_and_relu_memory(r20):
    t = parse_training({"batchnorm": "shift_only", "train_last_blocks": 3}, r20)
    net = apply_to_net(r20, t)
    assert [l.name for l in net if l.is_weighted and l.trainable][0] == "s3b1_a_conv"
    base_net = apply_to_net(r20, parse_training({"train_last_blocks": 3}, r20))
    s0, s1 = saved_words(base_net, 1, None), saved_words(net, 1, t)
    assert s0["s3b2_a_bn"] == 64 * 8 * 8 and s1["s3b2_a_bn"] == 0
    assert s1["s3b2_a_relu"] == math.ceil(64 * 8 * 8 / 32)
    board = load_board("zcu102")
    d0 = schedule(Request(net=base_net, board=board, batch=8))
    ev0 = evaluate_design(base_net, d0, board)
    _, d, ev = _schedule(r20, t)
    bn0 = [r for r in ev0["rows"] if r.layer == "s3b2_a_bn" and r.phase == "bp"]
    bn1 = [r for r in ev["rows"] if r.layer == "s3b2_a_bn" and r.phase == "bp"]
    assert sum(r.dram_bytes for r in bn1) < 0.5 * sum(r.dram_bytes for r in bn0)
    assert ev["totals"]["dram_bytes"] < ev0["totals"]["dram_bytes"]


def test_design_json_keeps_the_methods(r20):
    t = parse_training({"gradient_filter": {"r": 2, "last": 2},
                        "error_pruning": {"keep": 0.9, "layers": "all"}}, r20)
    net, d, ev = _schedule(r20, t)
    d2 = Design.from_json(d.to_json())
    assert d2.training == d.training and d2.training["gradient_filter"]["layers"] == [
        "s3b3_a_conv", "s3b3_b_conv"]
    ev2 = evaluate_design(d2.net_ir, d2, load_board("zcu102"))
    assert ev2["totals"]["cycles"] == ev["totals"]["cycles"]


def test_build_report_shows_each_method(tmp_path, capsys):
    f = tmp_path / "t.yaml"
    f.write_text("training:\n  gradient_filter: {r: 2, last: 2}\n  minibatch_drop: {p: 0.5}\n")
    out = tmp_path / "b"
    assert main(["build", "--board", "zcu102", "--net", "resnet20", "--batch", "8",
                 "--training", str(f), "-o", str(out)]) == 0
    out_text = capsys.readouterr().out     # SMD runs in the generated host runtime
    assert "rtl/ not written" in out_text and "hls/ and rtl/" not in out_text
    md = (out / "report.md").read_text()
    assert "## Training methods" in md
    for name in ("full back-propagation", "gradient filter r=2 on 2 conv(s)",
                 "mini-batch drop p=0.5", "all: "):
        assert f"| {name}" in md
    rep = json.loads((out / "report.json").read_text())
    comp = rep["totals"]["methods"]["comparison"]
    assert comp[2]["cycles"] < comp[0]["cycles"] and comp[1]["macs"]["bp"] < comp[0]["macs"]["bp"]
    assert " sgd0" in (out / "hls" / "efgen_program.h").read_text()   # the dropped update


def test_layer_counts_before_after(r20):
    t = parse_training({"minibatch_drop": {"p": 0.5}}, r20)
    before, after = layer_counts(r20, None), layer_counts(r20, t)
    assert sum(r["fp"] for r in after) == sum(r["fp"] for r in before) / 2
    assert sum(r["saved"] for r in after) == sum(r["saved"] for r in before)
    assert len(residual_blocks(r20)) == 9


# ---- sweeps -------------------------------------------------------------------------------

def test_sweep_takes_method_axes(tmp_path):
    from efgen.dse import load_sweep, run_sweep

    f = tmp_path / "s.yaml"
    f.write_text("name: m\nboards: [zcu102]\nnets: [resnet20]\ntm: [16]\ntn: [16]\n"
                 "training: {gradient_filter: {r: 2, last: 2}}\n"
                 "gradient_filter.r: [1, 2, 4]\nminibatch_drop.p: [0.0, 0.5]\n")
    sw = load_sweep(f)
    assert sw.values["training"] == (
        "gradient_filter.r=1,minibatch_drop.p=0.0", "gradient_filter.r=1,minibatch_drop.p=0.5",
        "gradient_filter.r=2,minibatch_drop.p=0.0", "gradient_filter.r=2,minibatch_drop.p=0.5",
        "gradient_filter.r=4,minibatch_drop.p=0.0", "gradient_filter.r=4,minibatch_drop.p=0.5")
    out = run_sweep(f, tmp_path / "o", 1, progress=False, no_cache=True)
    pts = json.loads((tmp_path / "o" / "points.json").read_text())["points"]
    assert out["points"] == 6 and [p["training"] for p in pts] == list(sw.values["training"])
    cyc = {p["training"]: p["cycles"] for p in pts}
    assert cyc["gradient_filter.r=4,minibatch_drop.p=0.0"] < \
        cyc["gradient_filter.r=1,minibatch_drop.p=0.0"]
    assert cyc["gradient_filter.r=2,minibatch_drop.p=0.5"] < \
        0.6 * cyc["gradient_filter.r=2,minibatch_drop.p=0.0"]
    f.write_text("name: m\nboards: [zcu102]\nnets: [resnet20]\ntm: [16]\ntn: [16]\n"
                 "training: {gradient_filter: {r: 2, last: 2}}\ngradient_filter.r: [2, 0]\n")
    with pytest.raises(EfgenError) as e:
        load_sweep(f)
    assert e.value.where == "gradient_filter.r[1]" and "positive" in e.value.message()


def test_build_with_gf_and_emp_writes_the_hls_project(tmp_path, capsys):
    f = tmp_path / "t.yaml"
    f.write_text("training:\n  gradient_filter: {r: 2, last: 2}\n"
                 "  error_pruning: {keep: 0.7, layers: all}\n")
    out = tmp_path / "b"
    assert main(["build", "--board", "zcu102", "--net", "resnet20", "--batch", "4",
                 "--training", str(f), "-o", str(out)]) == 0
    assert "rtl/ not written" in capsys.readouterr().out
    assert (out / "hls" / "efgen_host.cpp").is_file() and not (out / "rtl").exists()
    prog = (out / "hls" / "efgen_program.h").read_text()
    assert "s3b3_b_conv" in prog and "gf_tapsgd" in prog and "emp" in prog
