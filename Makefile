# efgen — two commands on a fresh machine:  `make demo`  and  `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: install test demo bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

test: install
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# The main job as it exists so far: the catalogues, one net in detail, and three golden
# training steps of ResNet-20 on synthetic data.
demo: install
	$(BIN)/efgen nets
	$(BIN)/efgen boards
	$(BIN)/efgen net show resnet20
	$(BIN)/efgen golden --net resnet20 --batch 8 --steps 3

bench: install
	$(BIN)/python benchmarks/bench_golden.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .hypothesis
