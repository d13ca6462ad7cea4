# One command each on a fresh machine with Python 3.11+ and make:
#   make demo   -- run the demo (an example app behind the middleware, with curl lines to try)
#   make test   -- run the whole test suite
#   make test-fast -- the inner loop: every test that starts no process, with a small Hypothesis budget
#   make bench  -- run the benchmarks (see bench/README.md)
#   make load   -- two hosts sharing Redis under mixed load, with a stall and a failover (bench/README.md)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-dev

.PHONY: demo test test-fast bench load lint clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/jwt-wsgi demo

test: $(STAMP)
	$(PY) -m pytest

# The inner loop: no test that starts a process (marker `slow`), a tenth of the Hypothesis
# budget (tests/fuzz.py), on every core (pytest-xdist). `make test` runs everything, serially,
# with the full budget.
FAST_FUZZ_EXAMPLES ?= 30
test-fast: $(STAMP)
	FUZZ_EXAMPLES=$(FAST_FUZZ_EXAMPLES) $(PY) -m pytest -q -m 'not slow' -n auto

bench: $(STAMP)
	$(PY) -m bench

load: $(STAMP)
	$(PY) -m bench.load

lint: $(STAMP)
	$(VENV)/bin/ruff check jwt_wsgi tests examples bench
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache
