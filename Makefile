# ember's entry points. Each target creates .venv (python3 -m venv) on a fresh machine and installs
# what it needs; a stamp file per extra re-runs pip only when pyproject.toml changes.
#
#   make demo       train a small MLP with ember's autograd (examples/train_mlp.py)
#   make test       the fast test suite (slow tests deselected), on 2 workers
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
# bench scripts that need several ranks run through `ember run -n $(BENCH_RANKS)`; the rest run plainly
BENCHES_MPI ?= $(wildcard bench/allreduce.py)
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

demo: $(VENV)/.stamp-base
	$(PY) examples/train_mlp.py

test: $(VENV)/.stamp-test
	OMP_NUM_THREADS=$(TEST_THREADS) $(PY) -m pytest -q $(PYTEST_ARGS)

test-all: $(VENV)/.stamp-test
	OMP_NUM_THREADS=$(TEST_THREADS) $(PY) -m pytest -q $(PYTEST_ARGS) -m "slow or not slow"

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
