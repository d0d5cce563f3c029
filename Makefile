# routecast — one Makefile for set-up, demo, tests and benchmarks.
PY_BOOT ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
UV      := $(BIN)/uv
STAMP   := $(VENV)/.installed
HOST    ?= 127.0.0.1
PORT    ?= 8000

.PHONY: setup run demo serve test test-fast lint bench bench-full lock clean

setup: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PY_BOOT) -m venv $(VENV)
	@test -x $(UV) || $(BIN)/python -m pip install -q "uv==0.13.9"
	$(UV) pip sync --python $(BIN)/python -q requirements.lock
	$(UV) pip install --python $(BIN)/python -q --no-deps -e .
	@touch $(STAMP)

lock:
	$(UV) pip compile pyproject.toml --extra dev --python-version 3.11 -q -o requirements.lock

demo: setup
	$(BIN)/routecast demo

run: demo
	$(BIN)/routecast serve --host $(HOST) --port $(PORT)

# Serve what is already built (no demo rebuild): `make demo` once, then `make serve`.
serve: setup
	$(BIN)/routecast serve --host $(HOST) --port $(PORT)

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

bench: setup
	$(BIN)/python -m benchmarks.run --quick

bench-full: setup
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf .routecast
