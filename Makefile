# llmsched: `make run` starts the whole stack with emulators; `make test` runs the test suite.
# Both install what a fresh Debian machine lacks (redis-server, python3-venv) and a virtualenv in .venv.

VENV      ?= .venv
PY        := $(VENV)/bin/python
LLMSCHED  := $(VENV)/bin/llmsched
APT       := DEBIAN_FRONTEND=noninteractive apt-get -y -qq
SUDO      := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help install system-deps browser-deps run test test-faults bench-api bench-scoring bench-routing bench-scrape lint clean

help: ## this list: every target and what it does
	@awk 'BEGIN { FS = ":.*## " } /^[a-z-]+:.*## / { printf "make %-14s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

# tcl gives tclsh, which runs the iRules' behavioural tests (tests/deploy); tcllib's sha1 stands in for BIG-IP's
# sha1 command in the prefix-fingerprint tests.
system-deps: ## install what a fresh Debian machine lacks: redis-server, python3-venv, tcl (tclsh), tcllib
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	python3 -c 'import venv, ensurepip' 2>/dev/null || missing="$$missing python3-venv"; \
	command -v tclsh >/dev/null || missing="$$missing tcl"; \
	echo 'puts [package require sha1]' | tclsh >/dev/null 2>&1 || missing="$$missing tcllib"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; $(SUDO) apt-get update -qq && $(SUDO) $(APT) install $$missing; fi

# Headless Chromium for the status page test (tests/api/test_ui.py): Debian's package is `chromium`, Ubuntu's
# `chromium-browser`. If neither installs (no apt, no network) the suite still runs, the status page test is
# skipped, and `make test` says so in a banner at the end of the run.
CHROMIUM_MISSING := echo; echo "********************************************************************************"; \
	echo "* SKIPPED: the status page test (tests/api/test_ui.py): chromium is not installed and could not be"; \
	echo "* installed (make browser-deps). Install chromium and run make test again for a run without skips."; \
	echo "********************************************************************************"
HAVE_CHROMIUM := command -v chromium >/dev/null || command -v chromium-browser >/dev/null

browser-deps: ## install headless Chromium for the status page test (loud warning if it cannot)
	@$(HAVE_CHROMIUM) || { \
	  echo "installing: chromium (for the status page test)"; \
	  $(SUDO) apt-get update -qq && { $(SUDO) $(APT) install chromium || $(SUDO) $(APT) install chromium-browser; }; \
	  $(HAVE_CHROMIUM) || { $(CHROMIUM_MISSING); }; }

$(VENV)/.installed: pyproject.toml
	@$(MAKE) --no-print-directory system-deps
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@touch $@

install: $(VENV)/.installed ## the virtualenv in .venv with llmsched and its test tools (.venv/bin/llmsched)

run: install ## the whole stack on this machine: private Redis, emulated BIG-IP and engines, demo traffic
	$(LLMSCHED) demo

test: install browser-deps lint ## lint, then the test suite (starts its own Redis); skips are listed at the end
	@status=0; $(PY) -m pytest -q -rs -m "not faults" || status=$$?; \
	$(HAVE_CHROMIUM) || { $(CHROMIUM_MISSING); }; exit $$status

# ruff (lint and format check) over the whole tree; mypy over the package as installed (llmsched.*), through
# build/typeview/llmsched: links to the repository's folders, because the repository root is the package itself.
TYPED := shared scorer api
lint: install ## ruff (lint and format check) over the tree, mypy over llmsched.shared/scorer/api
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	@mkdir -p build/typeview/llmsched
	@for d in __init__.py api bench cli collectors emulators scorer shared; do ln -sfn ../../../$$d build/typeview/llmsched/$$d; done
	$(VENV)/bin/mypy $(foreach p,$(TYPED),-p llmsched.$(p))

bench-scoring: install ## metrics-to-score latency through a real scoring worker
	$(PY) -m llmsched.bench.scoring_bench

# Scrape capacity (docs/benchmarks.md): fake engines serving a 56 KB vLLM 0.10 body on N ports, 1..4 scrapers.
# BENCH_SCRAPE_ARGS passes options, e.g. BENCH_SCRAPE_ARGS="--duration 30 --members 2000 --scrapers 1 2 --kill".
bench-scrape: install ## engines per scraper CPU-second, cycle time and data age, 100-5000 members, 1-4 scrapers
	$(PY) -m llmsched.bench.scrape_bench $(BENCH_SCRAPE_ARGS)

bench-api: install ## decision API throughput and latency (connection per request, like the iRule)
	@command -v wrk >/dev/null || ($(SUDO) apt-get update -qq && $(SUDO) $(APT) install wrk)
	$(PY) -m llmsched.bench.api_bench --stack

clean: ## remove .venv, build/ and caches
	rm -rf $(VENV) build *.egg-info .pytest_cache

# The routing simulator (docs/routing.md): the original's two published GPU sweeps, each row beside the
# simulated one (the homogeneous one also with its servers calibrated to the stated knee), then every shipped
# scenario. About three minutes on two cores.
bench-routing: install ## routing simulator: the published GPU sweeps side by side, then every scenario
	$(LLMSCHED) bench routing --sweep published_heterogeneous --sweep published_homogeneous --sweep published_homogeneous_knee
	$(LLMSCHED) bench routing --all

# Fault injection against real processes (tests/faults, docs/reliability.md): Redis, BIG-IP and engine outages,
# HA takeovers, Sentinel failover, API and config fuzzing, secrets audit, signals. A few minutes; prints the
# table of measured figures at the end (also written to .pytest-faults.json). `make test` runs its quick core.
test-faults: install ## fault injection against real processes (a few minutes; docs/reliability.md)
	$(PY) -m pytest -q -m faults
