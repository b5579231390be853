# Everything a fresh machine needs is installed by these targets.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PIP_PIN := pip==26.3

.PHONY: install browsers test run stop monitor demo bench bench-celery bench-plone chaos docs clean distclean

install: $(VENV)/.installed

$(VENV)/.installed: setup.py constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q $(PIP_PIN)
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[test]"
	touch $@

## Debian's Chromium and its driver for the browser tests (src/.../browser/tests);
## skipped when both are there already.
CHROMIUM := /usr/bin/chromium
CHROMEDRIVER := /usr/bin/chromedriver
browsers:
	@if [ -x $(CHROMIUM) ] && [ -x $(CHROMEDRIVER) ]; then \
		echo "chromium and chromedriver are installed"; \
	else \
		apt-get update && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
			chromium chromium-driver; \
	fi

## Run every test: unit, integration, multi-process (ZEO, PostgreSQL), the
## browser tests (headless Chromium) and doctests.
test: install browsers
	$(BIN)/python -m pytest
	$(BIN)/python -m sphinx -W -q -b html docs docs/_build/html

## Run Plone with the add-on: buildout (base.cfg) with a ZEO server (8100), an
## instance (8080, monitor 8081) and a worker (8082, monitor 8083); creates
## the site if missing.  The first run builds the buildout (a few minutes).
run: install
	$(BIN)/python -m plone.app.asyncjobs.deployment run

## Stop what `make run` started.
stop:
	test ! -x $(BIN)/python || $(BIN)/python -m plone.app.asyncjobs.deployment stop

## Send a monitor command without nc: make monitor PORT=8083 CMD='asyncdb status'
PORT ?= 8083
CMD ?= help
monitor:
	$(BIN)/python -m plone.app.asyncjobs.deployment monitor $(PORT) $(CMD)

## Regenerate buildout's versions.cfg from constraints.txt.
versions.cfg: constraints.txt
	$(BIN)/python -m plone.app.asyncjobs.deployment.versions constraints.txt versions.cfg

## The standalone engine demo: a ZEO server, two worker processes, jobs queued and run.
demo: install
	$(BIN)/python -m plone.app.asyncjobs.engine.demo

## Benchmarks print rates and ratios against a baseline measured in the same run.
bench: install
	$(BIN)/python bench/engine_throughput.py

## The engine's figures and, in the same run, Celery + Redis's drain
## (bench/celery_drain.py) in a virtualenv of its own: Celery pins versions
## the project's environment cannot share.  Needs Redis on 127.0.0.1:6379.
PEERS := .venv-peers
bench-celery: install $(PEERS)/.installed
	$(BIN)/python bench/engine_throughput.py --compare-celery $(PEERS)/bin/python

## Plone jobs drained by a real worker instance of the buildout deployment
## (bench/plone_drain.py), against plain jobs drained by the same worker.
bench-plone: install
	$(BIN)/python bench/plone_drain.py

$(PEERS)/.installed:
	test -x $(PEERS)/bin/python || $(PYTHON) -m venv $(PEERS)
	$(PEERS)/bin/python -m pip install -q "celery[redis]==5.7.0"
	touch $@

## The chaos suite (docs/reliability.rst): kill storms, ZEO and PostgreSQL
## outages, paused workers, poison jobs, unloadable arguments, against real
## processes; prints one table row per scenario and retry policy.
chaos: install
	$(BIN)/python -m plone.app.asyncjobs.engine.testing.chaos

docs: install
	$(BIN)/python -m sphinx -W -b html docs docs/_build/html

clean:
	rm -rf $(VENV) docs/_build .pytest_cache .venv-buildout bin parts develop-eggs .installed.cfg

## Also drop the buildout eggs cache (the next `make run` downloads again).
distclean: clean
	rm -rf .cache var
