# Everything a fresh machine needs is installed by these targets.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PIP_PIN := pip==26.3

.PHONY: install test run bench docs clean

install: $(VENV)/.installed

$(VENV)/.installed: setup.py constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q $(PIP_PIN)
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[test]"
	touch $@

## Run every test: unit, integration, multi-process (ZEO, PostgreSQL) and doctests.
test: install
	$(BIN)/python -m pytest
	$(BIN)/python -m sphinx -W -q -b html docs docs/_build/html

## Run the standalone demo: a ZEO server, two worker processes, jobs queued and run.
run: install
	$(BIN)/python -m plone.app.asyncjobs.engine.demo

## Benchmarks print rates and ratios against a baseline measured in the same run.
bench: install
	$(BIN)/python bench/engine_throughput.py

docs: install
	$(BIN)/python -m sphinx -W -b html docs docs/_build/html

clean:
	rm -rf $(VENV) docs/_build .pytest_cache
