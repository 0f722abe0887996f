# Atelier — `make run` serves the demo school, `make test` runs the whole suite.
# Every step installs what it needs; nothing is expected to be installed by hand.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY_STAMP   := $(VENV)/.installed
NODE_STAMP := tests/interop/node_modules/.installed
CLIENT_STAMP := client_demo/node_modules/.installed
PYTEST_ARGS ?=

.PHONY: install run test lint typecheck bench clean

$(PY_STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 needed"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

$(NODE_STAMP): tests/interop/package.json tests/interop/package-lock.json
	npm ci --prefix tests/interop --no-audit --no-fund --loglevel=error
	touch $@

$(CLIENT_STAMP): client_demo/package.json client_demo/package-lock.json
	npm ci --prefix client_demo --no-audit --no-fund --loglevel=error
	touch $@

install: $(PY_STAMP)

run: $(PY_STAMP)
	mkdir -p data
	$(BIN)/atelier migrate
	$(BIN)/atelier seed-demo --if-empty
	ATELIER_DEMO=true $(BIN)/atelier serve --host 127.0.0.1 --port 8000

lint: $(PY_STAMP)
	$(BIN)/ruff check server tests bench
	$(BIN)/ruff format --check server tests bench

typecheck: $(PY_STAMP)
	$(BIN)/mypy

test: $(PY_STAMP) $(NODE_STAMP) $(CLIENT_STAMP) lint typecheck
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(PY_STAMP)
	$(BIN)/python -m bench.micro

clean:
	rm -rf $(VENV) tests/interop/node_modules client_demo/node_modules .pytest_cache .mypy_cache .ruff_cache
