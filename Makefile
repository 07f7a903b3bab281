# efgen — two commands on a fresh machine:  `make demo`  and  `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: install test demo bench clean hls cosim vivado adapt

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

# The tests, one pytest-xdist worker per core (at most TEST_JOBS_MAX; TEST_JOBS=0 runs them
# in one process), a test file per worker so each file's fixtures (RTL builds, Yosys runs)
# are made once; the few long co-simulations and syntheses (marker slow,
# tests/conftest.py) run in `make cosim`.
TEST_JOBS ?= auto
TEST_JOBS_MAX ?= 8
test: install
	$(BIN)/python -m pytest -q -m "not slow" -n $(TEST_JOBS) --maxprocesses=$(TEST_JOBS_MAX) --dist loadfile --durations=15 $(PYTEST_ARGS)

# The main job: the catalogues, the accelerator for ResNet-20 on a ZCU102 (schedule,
# report, plots, Vitis HLS project), and one training step of the generated C++ in
# C-simulation against the golden model.
demo: install
	$(BIN)/efgen nets
	$(BIN)/efgen boards
	$(BIN)/efgen build --board zcu102 --net resnet20 -o build/resnet20-zcu102
	sed -n '1,45p' build/resnet20-zcu102/report.md
	$(BIN)/efgen csim --board zcu102 --net resnet20 --batch 2 -o build/resnet20-zcu102-csim

# The reference RTL under cocotb/Verilator: every distinct ResNet-20 layer shape in all
# three phases and both DRAM layouts (8x8 array, batch 1), then one training step of tiny
# with its conv/linear layer-phases on the RTL; measured cycles next to the model's; then
# the long tests that `make test` leaves out (marker slow).
cosim: install
	$(BIN)/efgen cosim --net resnet20 --tiles Tm=8,Tn=8 --batch 1 --distinct --layout both -o build/cosim-resnet20
	$(BIN)/efgen cosim --net tiny --tiles Tm=4,Tn=4 --batch 2 --step -o build/cosim-tiny-step
	$(BIN)/efgen cosim --net resnet20 --tiles Tm=8,Tn=8 --batch 2 --step --fuse -o build/cosim-resnet20-step-fused
	$(BIN)/python -m pytest -q -m slow

# Proof that the generated accelerator learns on real data: LeNet-5 pretrained on digits
# 0-4 (golden), adapted to 0-9 with --train-last 2 in C-simulation of the ZCU102 design
# and in the golden model (300 steps of batch 32; about 3 minutes on 2 cores).
adapt: install
	$(BIN)/efgen adapt --net lenet5 --board zcu102 -o build/adapt-lenet5

bench: install
	$(BIN)/python benchmarks/bench_golden.py
	$(BIN)/python benchmarks/bench_ops.py
	$(BIN)/python benchmarks/bench_build.py
	$(BIN)/python benchmarks/bench_sweep.py
	$(BIN)/python benchmarks/bench_dask.py
	$(BIN)/python benchmarks/bench_clock.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .hypothesis

# The vendor flow, where Vitis HLS exists:  make hls DESIGN=build/resnet20-zcu102
hls:
	@test -n "$(DESIGN)" || { echo "usage: make hls DESIGN=<build folder>"; exit 2; }
	@command -v vitis_hls >/dev/null 2>&1 || { echo "vitis_hls not found: the vendor flow (csynth, cosim, export) needs AMD Vitis HLS 2022.2+, which this machine does not have. C-simulation runs without it: efgen build ... --csim"; exit 2; }
	cd $(DESIGN)/hls && vitis_hls -f run_hls.tcl

# Vivado, where it exists: package the IP, block design with the PS, bitstream and .hwh.
#   make vivado DESIGN=build/resnet20-zcu102 IP=hls   (the Vitis HLS IP: run make hls first)
#   make vivado DESIGN=build/resnet20-zcu102 IP=rtl   (the reference RTL of rtl/)
IP ?= hls
vivado:
	@test -n "$(DESIGN)" || { echo "usage: make vivado DESIGN=<build folder> [IP=hls|rtl]"; exit 2; }
	@command -v vivado >/dev/null 2>&1 || { echo "vivado not found: $(DESIGN)/vivado/build.tcl (IP packaging, block design, bitstream and .hwh) needs AMD Vivado 2022.2+, which this machine does not have; IP=hls also needs the Vitis HLS IP (make hls DESIGN=$(DESIGN))"; exit 2; }
	cd $(DESIGN)/vivado && vivado -mode batch -source build.tcl -tclargs $(IP)
