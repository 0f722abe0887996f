# Atelier — `make run` serves the demo school, `make test` runs the whole suite.
# Every step installs what it needs; nothing is expected to be installed by hand.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY_STAMP   := $(VENV)/.installed
NODE_STAMP := tests/interop/node_modules/.installed
# The bench's load generators (tests/bench drives bench/loadgen/storm.mjs).
LOADGEN_STAMP := bench/loadgen/node_modules/.installed
CLIENT_STAMP := client_demo/node_modules/.installed
CLIENT_DIST  := client_demo/dist/index.html
CLIENT_SRC   := $(shell find client_demo/src client_demo/public -type f 2>/dev/null) \
                client_demo/index.html client_demo/vite.config.js client_demo/package-lock.json
BENCH_STAMP := $(VENV)/.bench-installed
# The Tiptap page of tests/browser/test_tiptap.py: its own packages, bundled by esbuild.
TIPTAP_STAMP := tests/tiptap/node_modules/.installed
TIPTAP_DIST  := tests/tiptap/dist/page.js
PYTEST_ARGS ?=

.PHONY: install client run test screenshots lint typecheck bench bench-micro bench-assignments bench-erasure clean

$(PY_STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 needed"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

$(NODE_STAMP): tests/interop/package.json tests/interop/package-lock.json
	npm ci --prefix tests/interop --no-audit --no-fund --loglevel=error
	touch $@

$(LOADGEN_STAMP): bench/loadgen/package.json bench/loadgen/package-lock.json
	npm ci --prefix bench/loadgen --no-audit --no-fund --loglevel=error
	touch $@

$(TIPTAP_STAMP): tests/tiptap/package.json tests/tiptap/package-lock.json
	npm ci --prefix tests/tiptap --no-audit --no-fund --loglevel=error
	touch $@

$(TIPTAP_DIST): $(TIPTAP_STAMP) tests/tiptap/page.js tests/tiptap/page.html
	npm run build --prefix tests/tiptap --silent

$(CLIENT_STAMP): client_demo/package.json client_demo/package-lock.json
	npm ci --prefix client_demo --no-audit --no-fund --loglevel=error
	touch $@

# The web client, built by Vite into client_demo/dist (served at / by `atelier serve`)
# when it is missing or older than its sources.
$(CLIENT_DIST): $(CLIENT_STAMP) $(CLIENT_SRC)
	npm run build --prefix client_demo --silent
	touch $@

install: $(PY_STAMP)

client: $(CLIENT_DIST)

run: $(PY_STAMP) $(CLIENT_DIST)
	mkdir -p data
	$(BIN)/atelier migrate
	$(BIN)/atelier seed-demo --if-empty
	ATELIER_DEMO=true $(BIN)/atelier serve --host 127.0.0.1 --port 8000

lint: $(PY_STAMP)
	$(BIN)/ruff check server tests bench
	$(BIN)/ruff format --check server tests bench

typecheck: $(PY_STAMP)
	$(BIN)/mypy

test: $(PY_STAMP) $(NODE_STAMP) $(LOADGEN_STAMP) $(TIPTAP_DIST) $(CLIENT_STAMP) $(CLIENT_DIST) lint typecheck
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Refresh the README's pictures: the browser suite saving its screenshots in docs/screenshots.
screenshots: $(PY_STAMP) $(CLIENT_STAMP) $(CLIENT_DIST)
	ATELIER_SCREENSHOTS=docs/screenshots $(BIN)/python -m pytest tests/browser -q

$(BENCH_STAMP): $(PY_STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $@

# The whole benchmark set, Atelier beside its peers (installed by the bench itself in
# bench/peers/): bench/results/latest.md and latest.png. At most ~15 minutes.
bench: $(BENCH_STAMP)
	$(BIN)/python -m bench

bench-micro: $(PY_STAMP)
	$(BIN)/python -m bench.micro
	$(BIN)/python -m bench.micro_wire

# Assignments: notification fan-out to a class of 35 and its parents, the webhook, the
# rendus' export, N classes publishing at once; real servers on a throwaway PostgreSQL
# database and Redis. ~3 minutes; bench/results/raw/assignments-<stamp>.json.
bench-assignments: $(PY_STAMP)
	$(BIN)/python -m bench.assignments

# Data protection: a student's export and erasure after a school year (36 weeks) of
# activity, on SQLite and a throwaway PostgreSQL database; real server processes.
# ~2 minutes; bench/results/raw/erasure-<stamp>.json.
bench-erasure: $(PY_STAMP)
	$(BIN)/python -m bench.erasure

clean:
	rm -rf $(VENV) tests/interop/node_modules bench/loadgen/node_modules tests/tiptap/node_modules tests/tiptap/dist client_demo/node_modules client_demo/dist .pytest_cache .mypy_cache .ruff_cache
