import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: Long co-simulations and syntheses that `make test` leaves to `make cosim` (marker
#: ``slow``; `make test` runs ``-m "not slow"``). Each has a shorter representative that
#: stays in `make test`, named beside it.
SLOW = {
    # the whole efgen_top through `efgen synth --yosys` (minutes); test_yosys_efgen_top_4x4
    # checks the same resource model on efgen_top 4x4 directly
    "tests/test_rtl_synth.py::test_cli_synth_efgen_top_2x2",
    # efgen_top 4x4 with double-buffered weights through Yosys (minutes);
    # test_double_buffered_weights_double_the_weight_rams checks the model's side
    "tests/test_rtl_synth.py::test_yosys_efgen_top_4x4_wdb",
    # efgen_top 4x4 with first-layer tap packing through Yosys (minutes);
    # test_tap_packing_adds_no_dsp_or_ram checks the model's side
    "tests/test_rtl_synth.py::test_yosys_efgen_top_4x4_pack",
    # efgen_top 2x4 with P = 2 pixel lanes through Yosys (about 12 minutes);
    # test_yosys_engine_core_pixel_lanes checks the P-lane buffers and array on engine_core
    "tests/test_rtl_synth.py::test_yosys_efgen_top_2x4_pixel_lanes",
    # efgen_top 16x8x2 fused through Yosys, hierarchical (14 minutes);
    # test_top_remainder_is_priced_per_mac_of_the_pixel_lanes checks the model's side
    "tests/test_rtl_synth.py::test_yosys_efgen_top_16x8x2_fused_prices_the_pixel_lanes",
    # the whole top with P = 4 pixel lanes (a build and 15 layer-phases, and the C++ twin
    # on their images); the P = 2 set (2x4x2) stays in make test, and so do
    # tests/test_rtl_engine.py's pixel-lane cases (engine blocks at 2x3x2 and 2x2x4)
    "tests/test_rtl_top.py::test_pixel_lane_layer_phases[2x2-reshaped-p4]",
    "tests/test_rtl_top.py::test_pixel_lane_hls_cpp_is_the_rtls_bit_exact_twin[2x2-reshaped-p4]",
    # the 2x8 whole-top packing set (a build and its layer-phases, and the C++ twin): the
    # 4x4 128-bit pack set stays, and so do test_rtl_engine.py's pack-2x8 engine cases (the
    # 3-channel 3x3 first layer on 8 lanes, bit- and cycle-exact)
    "tests/test_rtl_top.py::test_packed_layer_phases[2x8-reshaped-pack]",
    "tests/test_rtl_top.py::test_packed_hls_cpp_is_the_rtls_bit_exact_twin[2x8-reshaped-pack]",
    # random AXI stalls on the double-buffered 2x4 build (a build and four passes);
    # test_double_buffered_weights runs the same RTL unstalled
    "tests/test_rtl_top.py::test_backpressure_is_bit_identical[2x4-nchw-wdb]",
    # pool_unit at 2x4 NCHW (T = 1): a second efgen_top build; the 4x4 blocked case stays
    "tests/test_rtl_pool.py::test_pool_ops_match_the_interpreter[2-4-nchw-verilator]",
    # the fabric FP32 adder in efgen_top; the default DSP adder stays
    "tests/test_rtl_top.py::test_synthesizable_fp_units[synth]",
    # layer_seq's logic depth (a minute of Yosys); every other module stays
    "tests/test_rtl_timing.py::test_every_module_stays_within_the_stated_depth[layer_seq]",
    # bn_unit on NCHW (T = 1), 16x16 and a larger N*H*W (two Verilator builds: minutes);
    # test_bn_ops_match_the_interpreter runs the same checks at 4x4, 32 and 128 bits
    "tests/test_rtl_bn.py::test_bn_ops_more_geometries[2x4-nchw]",
    "tests/test_rtl_bn.py::test_bn_ops_more_geometries[16x16]",
    "tests/test_rtl_bn.py::test_bn_ops_more_geometries[4x4-nhw192]",
    # bn_unit's logic depth (a minute or two of Yosys: its per-lane registers); its
    # slowest parts alone, fp32_div and fp32_sqrt, stay
    "tests/test_rtl_timing.py::test_every_module_stays_within_the_stated_depth[bn_unit]",
    # extracts commit BEFORE_P with `git archive`: needs the repository's history (a shallow
    # CI clone has none); the P / packing tests in the same file stay
    "tests/test_parray.py::test_p1_reproduces_the_designs_and_cycles_before_issue_13",
    # tiny's whole fused step on the RTL (290k cycles, three times fused-chain's: 40 s);
    # test_cli_cosim_fused_step_runs_whole_on_the_rtl runs fused-chain's on the same build
    "tests/test_rtl_fused_step.py::test_tiny_fused_training_step",
    # the fused datapath behind one shared port (a fused 128-bit build of its own: 50 s);
    # test_wu_step_completes_on_one_shared_port runs the unfused one there
    "tests/test_rtl_axi.py::test_fused_datapath_completes_on_one_shared_port",
    # the 16x16 efgen_top of the ZCU102 in Yosys, hierarchical (issue 19's fit: 6.5 - 9
    # minutes); test_yosys_efgen_top_4x4 checks the same model at 4x4
    "tests/test_rtl_synth.py::test_yosys_efgen_top_16x16_fits_the_zcu102",
}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    found = set()
    for item in items:
        if item.nodeid in SLOW:
            item.add_marker(pytest.mark.slow)
            found.add(item.nodeid)
    # a renamed test must not silently fall out of both runs: every SLOW name in a file
    # that was collected whole must exist
    if not config.getoption("-k") and not any("::" in a for a in config.args):
        files = {item.nodeid.split("::")[0] for item in items}
        missing = sorted(n for n in SLOW - found if n.split("::")[0] in files)
        if missing:
            raise pytest.UsageError("tests/conftest.py SLOW names tests that do not exist: "
                                    + ", ".join(missing))


@pytest.fixture
def run_cli(capsys):
    """Run `efgen ARGS...` in-process; returns (exit code, stdout, stderr)."""
    from efgen.cli import main

    def run(*args):
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture(scope="session", autouse=True)
def _result_cache_in_tmp(tmp_path_factory):
    """efgen's result cache (sweep points, cosim runs) goes to a session folder, never to
    the user's ~/.cache; a test that wants its own passes cache_dir / --cache."""
    import os

    old = os.environ.get("EFGEN_CACHE_DIR")
    os.environ["EFGEN_CACHE_DIR"] = str(tmp_path_factory.mktemp("efgen-cache"))
    yield
    if old is None:
        os.environ.pop("EFGEN_CACHE_DIR", None)
    else:
        os.environ["EFGEN_CACHE_DIR"] = old


@pytest.fixture(scope="module")
def build_cache(tmp_path_factory, request):
    """Verilator builds of the RTL shared by one test module's co-simulations
    (efgen.cosim.layers.BUILD_CACHE pointed at a temporary directory for the module;
    tests/test_rtl_top.py shares one across the session)."""
    from efgen.cosim import layers as cosim

    d = tmp_path_factory.mktemp(f"{request.module.__name__.rsplit('.', 1)[-1]}-builds")
    old, cosim.BUILD_CACHE = cosim.BUILD_CACHE, d
    yield d
    cosim.BUILD_CACHE = old


def require_tool(tool: str) -> None:
    """The open tools are project requirements (.ci/run installs them): a missing one fails
    with the install command, never a silent skip. The RTL tests import it as ``_require``."""
    if shutil.which(tool) is None:
        pytest.fail(f"{tool} not installed: apt-get install {tool}")
