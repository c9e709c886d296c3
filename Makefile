# llmsched: `make run` starts the whole stack with emulators; `make test` runs the test suite.
# Both install what a fresh Debian machine lacks (redis-server, python3-venv) and a virtualenv in .venv.

VENV      ?= .venv
PY        := $(VENV)/bin/python
LLMSCHED  := $(VENV)/bin/llmsched
APT       := DEBIAN_FRONTEND=noninteractive apt-get -y -qq
SUDO      := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help install system-deps browser-deps run test test-faults bench-api bench-scoring bench-routing bench-scrape lint clean

help:
	@echo "make run         the whole stack on this machine: private Redis, emulated BIG-IP and engines, demo traffic"
	@echo "make test        the test suite (starts its own Redis)"
	@echo "make bench-api   decision API throughput and latency (connection per request, like the iRule)"
	@echo "make bench-scoring  metrics-to-score latency through a real scoring worker"
	@echo "make bench-scrape   engines per scraper CPU-second, cycle time and data age, 100-5000 members, 1-4 scrapers"

system-deps:
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	python3 -c 'import venv, ensurepip' 2>/dev/null || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; $(SUDO) apt-get update -qq && $(SUDO) $(APT) install $$missing; fi

# Headless Chromium for the status page test (tests/api/test_ui.py). If it cannot be installed (no apt, no
# network) the test suite still runs and that test is skipped, saying why.
browser-deps:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || { \
	  echo "installing: chromium (for the status page test)"; \
	  ($(SUDO) apt-get update -qq && $(SUDO) $(APT) install chromium) \
	  || echo "warning: chromium could not be installed; tests/api/test_ui.py will be skipped"; }

$(VENV)/.installed: pyproject.toml
	@$(MAKE) --no-print-directory system-deps
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@touch $@

install: $(VENV)/.installed

run: install
	$(LLMSCHED) demo

test: install browser-deps lint
	$(PY) -m pytest -q -m "not faults"

# ruff (lint and format check) over the whole tree; mypy over the package as installed (llmsched.*), through
# build/typeview/llmsched: links to the repository's folders, because the repository root is the package itself.
TYPED := shared scorer api
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	@mkdir -p build/typeview/llmsched
	@for d in __init__.py api bench cli collectors emulators scorer shared; do ln -sfn ../../../$$d build/typeview/llmsched/$$d; done
	$(VENV)/bin/mypy $(foreach p,$(TYPED),-p llmsched.$(p))

bench-scoring: install
	$(PY) -m llmsched.bench.scoring_bench

# Scrape capacity (docs/benchmarks.md): fake engines serving a 56 KB vLLM 0.10 body on N ports, 1..4 scrapers.
# BENCH_SCRAPE_ARGS passes options, e.g. BENCH_SCRAPE_ARGS="--duration 30 --members 2000 --scrapers 1 2 --kill".
bench-scrape: install
	$(PY) -m llmsched.bench.scrape_bench $(BENCH_SCRAPE_ARGS)

bench-api: install
	@command -v wrk >/dev/null || ($(SUDO) apt-get update -qq && $(SUDO) $(APT) install wrk)
	$(PY) -m llmsched.bench.api_bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

# Routing simulator: every shipped scenario (bench/scenarios), every policy, tables as in docs/routing.md.
bench-routing: install
	$(LLMSCHED) bench routing --all

# Fault injection against real processes (tests/faults, docs/reliability.md): Redis, BIG-IP and engine outages,
# HA takeovers, Sentinel failover, API and config fuzzing, secrets audit, signals. A few minutes; prints the
# table of measured figures at the end (also written to .pytest-faults.json). `make test` runs its quick core.
test-faults: install
	$(PY) -m pytest -q -m faults
