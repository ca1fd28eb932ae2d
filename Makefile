# ember's entry points. Each target creates .venv (python3 -m venv) on a fresh machine and installs
# what it needs; a stamp file per extra re-runs pip only when pyproject.toml changes.
#
#   make demo       train the default GPT (compiled) on the Python stdlib source (~1 min), print a sample
#   make test       the fast test suite (slow tests deselected): 2 workers, then MPI tests alone
#   make test-all   every test, slow ones included
#   make bench      the benchmark scripts in bench/ (ember against NumPy / PyTorch)
#   make lint       ruff
#   make info       `ember info`: versions, BLAS, threads, C compiler

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := PIP_NO_INPUT=1 $(PY) -m pip
# 2 pytest workers, one BLAS/OpenMP thread each: a 2-core machine runs the suite fastest this way
# (two workers with two BLAS threads each oversubscribe the cores). Override: make test PYTEST_ARGS=...
PYTEST_ARGS ?= -n 2
TEST_THREADS ?= 1
# tests that start several processes of their own (MPI ranks) and wait on timeouts: they run after
# the rest, in one pytest process, so no xdist worker competes with their ranks for the cores
SERIAL_TESTS ?= $(wildcard tests/distributed)
PYTEST = OMP_NUM_THREADS=$(TEST_THREADS) $(PY) -m pytest -q
# bench scripts whose docstring says `usage: ember run -n ...` need several ranks: they run through
# `ember run -n $(BENCH_RANKS)`; the rest run plainly
BENCHES_MPI ?= $(sort $(shell grep -l 'usage: ember run -n' bench/*.py 2>/dev/null))
BENCH_RANKS ?= 2
BENCHES ?= $(filter-out bench/common.py $(BENCHES_MPI),$(sort $(wildcard bench/*.py)))

.PHONY: help demo test test-all bench lint info clean

help:
	@sed -n '4,10p' Makefile | cut -c 5-

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch==2.13.0 (test/bench only) is pinned in pyproject.toml and comes from pip's local find-links,
# so no requirement can pull another torch build in.
$(VENV)/.stamp-base: pyproject.toml | $(PY)
	$(PIP) install -q -e .
	@touch $@

$(VENV)/.stamp-test: pyproject.toml | $(PY)
	$(PIP) install -q -e '.[test]'
	@touch $@ $(VENV)/.stamp-base

$(VENV)/.stamp-bench: pyproject.toml | $(PY)
	$(PIP) install -q -e '.[test,bench]'
	@touch $@ $(VENV)/.stamp-test $(VENV)/.stamp-base

# `ember train` with its defaults: GPT on the source text of the Python standard library (no download)
DEMO_STEPS ?= 600
demo: $(VENV)/.stamp-base
	$(VENV)/bin/ember train --steps $(DEMO_STEPS) --eval-every 200 --compile --out runs/demo

# $(call pytest_two_phases,EXTRA_ARGS): the parallel phase, then SERIAL_TESTS; fails if either does
define pytest_two_phases
	@status=0; \
	echo '$(PYTEST) $(PYTEST_ARGS) $(1) $(addprefix --ignore=,$(SERIAL_TESTS))'; \
	$(PYTEST) $(PYTEST_ARGS) $(1) $(addprefix --ignore=,$(SERIAL_TESTS)) || status=$$?; \
	$(if $(SERIAL_TESTS),echo '$(PYTEST) $(1) $(SERIAL_TESTS)'; \
	$(PYTEST) $(1) $(SERIAL_TESTS) || status=$$?;) \
	exit $$status
endef

test: $(VENV)/.stamp-test
	$(call pytest_two_phases,)

test-all: $(VENV)/.stamp-test
	$(call pytest_two_phases,-m "slow or not slow")

bench: $(VENV)/.stamp-bench
	@for f in $(BENCHES); do echo "== $$f"; $(PY) $$f || exit 1; echo; done
	@for f in $(BENCHES_MPI); do echo "== ember run -n $(BENCH_RANKS) $$f"; \
		$(VENV)/bin/ember run -n $(BENCH_RANKS) $$f || exit 1; echo; done

lint: $(VENV)/.stamp-test
	$(VENV)/bin/ruff check .

info: $(VENV)/.stamp-base
	$(VENV)/bin/ember info

clean:
	rm -rf build dist .pytest_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -not -path './$(VENV)/*' -exec rm -rf {} +
