# routecast — one Makefile for set-up, demo, tests and benchmarks.
PY_BOOT ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
UV      := $(BIN)/uv
STAMP   := $(VENV)/.installed
HOST    ?= 127.0.0.1
PORT    ?= 8000
# Extra serve options, e.g. SERVE_FLAGS="--simulated-clock --refresh-every 1d" for
# `routecast operate --url` (README).
SERVE_FLAGS ?=

.PHONY: setup browser run demo serve test test-fast lint bench bench-full backtest reliability lock clean

setup: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PY_BOOT) -m venv $(VENV)
	@test -x $(UV) || $(BIN)/python -m pip install -q "uv==0.13.9"
	$(UV) pip sync --python $(BIN)/python -q --compile-bytecode requirements.lock
	$(UV) pip install --python $(BIN)/python -q --no-deps -e .
	@touch $(STAMP)

# The console's browser test drives Debian's Chromium (no browser download); needs root for apt.
browser:
	@test -x /usr/bin/chromium || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; }

lock:
	$(UV) pip compile pyproject.toml --extra dev --python-version 3.11 -q -o requirements.lock

demo: setup
	$(BIN)/routecast demo

run: demo
	$(BIN)/routecast serve --host $(HOST) --port $(PORT) $(SERVE_FLAGS)

# Serve what is already built (no demo rebuild): `make demo` once, then `make serve`.
serve: setup
	$(BIN)/routecast serve --host $(HOST) --port $(PORT) $(SERVE_FLAGS)

test: setup
	$(BIN)/python -m pytest -n 2 --dist loadgroup

# The inner loop: everything not marked slow (no demo world, no trained models).
test-fast: setup
	$(BIN)/python -m pytest -n 2 --dist loadgroup -m "not slow" -q

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# Benchmarks (docs/benchmarks.md): quick form, and the full one (resumes an interrupted run).
bench: setup
	nice -n 5 $(BIN)/python -m benchmarks.run --quick

bench-full: setup
	nice -n 5 $(BIN)/python -m benchmarks.run --resume

# Policy backtest on the medium world: two seeds, then perfect inventory records (long: see docs).
BACKTEST_SCALE ?= medium
BACKTEST_DAYS  ?= 28
BACKTEST_SEEDS ?= 11 23
BACKTEST_OUT   ?= .routecast/backtest/results
backtest: setup
	@for s in $(BACKTEST_SEEDS); do \
	  nice -n 10 $(BIN)/routecast backtest --scale $(BACKTEST_SCALE) --seed $$s \
	    --days $(BACKTEST_DAYS) --out $(BACKTEST_OUT)/$(BACKTEST_SCALE)-seed$$s || exit 1; \
	done
	nice -n 10 $(BIN)/routecast backtest --scale $(BACKTEST_SCALE) \
	  --seed $(firstword $(BACKTEST_SEEDS)) --days $(BACKTEST_DAYS) \
	  --policies predictive,distance --inventory-accuracy 1.0 \
	  --out $(BACKTEST_OUT)/$(BACKTEST_SCALE)-seed$(firstword $(BACKTEST_SEEDS))-accurate

# Storms, faults and fuzzing; writes docs/RELIABILITY.md. QUICK=1 for the few-minute form.
reliability: setup
	nice -n 10 $(BIN)/python -m benchmarks.reliability $(if $(QUICK),--quick,)

clean:
	rm -rf .routecast
