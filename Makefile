# stochthermo — every target creates .venv (python3 -m venv + pip install -e '.[dev]')
# when it is missing or older than pyproject.toml.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_WORKERS ?= 2

.PHONY: all venv run test test-standard tour book chromium bench lint format clean

all: test

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

## The headline experiment, default settings.
run: $(STAMP)
	$(PY) -m experiments run headline

## The test suite (pytest-xdist on 2 workers), under strict dtype and rank promotion.
test: $(STAMP)
	$(PY) -m pytest -n $(PYTEST_WORKERS) -m "not slow" tests

## The suite under JAX's standard promotion (to tell a promotion error from a numerical one).
test-standard: $(STAMP)
	STOCHTHERMO_STRICT_PROMOTION=0 $(PY) -m pytest -n $(PYTEST_WORKERS) -m "not slow" tests

## Run the README's Python blocks as written (python -m experiments.readme_tour).
tour: $(STAMP)
	$(PY) -m experiments.readme_tour

## Build the book; every chapter is executed, warnings are errors; then every page is
## rendered offline in headless Chromium (math typeset, images, no traceback, screenshots).
book: $(STAMP) chromium
	$(PY) -m experiments.book_build

## Debian's chromium, for the book's browser check (installed only when missing).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
chromium:
	@command -v chromium >/dev/null || { $(SUDO) apt-get update && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; }

## Timed comparisons against peers (pymbar, blackjax, jax-md), measured in the same run.
bench: $(STAMP)
	$(PY) -m experiments.benchmarks

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf book/_build .pytest_cache .ruff_cache .jax_cache
