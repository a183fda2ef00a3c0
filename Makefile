# The README's commands. `make dev` sets up and starts the platform; `make test` sets up and tests.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
# Where `make data` puts the Punk API dump: the platform's default data folder (git-ignored).
# PLATFORM_DATA_DIR, when set, is read by the platform and the tests; the dump is fetched here
# regardless, so the defaults of a fresh machine always have it.
DEFAULT_DATA_DIR := $(CURDIR)/data
# Dagster's opt-ins for range runs (docs/decisions/0004-dagster-event-opt-ins.md): one
# "planned" event per asset instead of one per asset and day (trade-off: partitions of a run
# that fails show as missing, not failed) ...
export DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS ?= 1
# ... and a step output's per-day materializations stored in batches of up to 100
# (PostgreSQL writes a batch in one insert; SQLite still stores them one by one).
export DAGSTER_EVENT_BATCH_SIZE ?= 100
PUNKAPI_DB := punkapi-db@2.6.0

.PHONY: setup data dev test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev]"
	touch $@

# Fill ./data (git-ignored) with what a fresh machine lacks and a package registry has: the
# Punk API dump ships in the npm package punkapi-db. (The UCI wine files ship in the package;
# the sensor-profile drop folder is generated on first use.)
data:
	@if [ ! -f "$(DEFAULT_DATA_DIR)/punkapi/beers.json" ]; then \
	  echo "fetching $(PUNKAPI_DB) into $(DEFAULT_DATA_DIR)/punkapi"; \
	  tmp=$$(mktemp -d) && (cd $$tmp && npm pack --silent $(PUNKAPI_DB) >/dev/null && \
	    tar xzf punkapi-db-*.tgz) && mkdir -p "$(DEFAULT_DATA_DIR)/punkapi" && \
	  $(BIN)/python -c "import json,sys; d=sorted(json.load(open(sys.argv[1])), key=lambda r: r['id']); json.dump(d, open(sys.argv[2], 'w'), indent=1)" \
	    $$tmp/package/data.json "$(DEFAULT_DATA_DIR)/punkapi/beers.json" && rm -rf $$tmp; \
	fi
	@test -f "$(DEFAULT_DATA_DIR)/punkapi/beers.json" || \
	  { echo "missing $(DEFAULT_DATA_DIR)/punkapi/beers.json: npm pack $(PUNKAPI_DB) failed" >&2; exit 1; }

setup: $(VENV)/.installed data

# Dagster (UI + daemon), the barrel simulator (SIMULATE=0: off) and wine-api; Ctrl-C stops all.
dev: setup
	$(BIN)/platform-dev

test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: setup
	mkdir -p bench-results
	$(BIN)/python benchmarks/ibu_model.py --json bench-results/ibu_model.json
	$(BIN)/python benchmarks/beer_graph.py --json bench-results/beer_graph.json
	$(BIN)/python benchmarks/prediction_api.py --json bench-results/prediction_api.json
	$(BIN)/python benchmarks/drift.py --json bench-results/drift.json
	$(BIN)/python benchmarks/topology.py --json bench-results/topology.json
	$(BIN)/python benchmarks/wine_model.py --json bench-results/wine_model.json
	$(BIN)/python benchmarks/reading_latency.py --json bench-results/reading_latency.json
	$(BIN)/python benchmarks/batch_scoring.py --json bench-results/batch_scoring.json
	$(BIN)/python benchmarks/sensor_profiles.py --json bench-results/sensor_profiles.json
	$(BIN)/python benchmarks/first_run.py --json bench-results/first_run.json
	$(BIN)/python benchmarks/mutations.py --json bench-results/mutations.json

clean:
	rm -rf $(VENV) .dagster_home .platform
