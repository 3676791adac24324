# The two commands: `make demo` and `make test`. Both set everything up from a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# uv (bootstrapped into the venv by pip, so Python alone is still all a clone needs) resolves and
# installs the pinned set in about 5 s where pip takes about 45 s: most of a fresh `make test`'s setup.
UV_INSTALL := $(BIN)/uv pip install --quiet --python $(BIN)/python -c constraints.txt \
	$(if $(PYTHONDONTWRITEBYTECODE),--compile-bytecode)
# Where Python may not write .pyc files (PYTHONDONTWRITEBYTECODE, common in containers and CI),
# every command compiled its ~3,000 imported modules from source again: about 10 s of CPU of
# each `alter-pipeline sync` (profiled, issue 18). There uv compiles them once at install
# (~30 s on 2 cores); elsewhere Python caches them on first import anyway.
# The dbt project's manifest, which Dagster loads the models from (alter_pipeline/analytics.py)
DBT_MANIFEST := analytics/target/manifest.json
DBT_SOURCES := $(shell find analytics -path analytics/target -prune -o \( -name '*.sql' -o -name '*.yml' \) -print)
export DBT_SEND_ANONYMOUS_USAGE_STATS := false
export DAGSTER_HOME ?= $(CURDIR)/dagster_home$(if $(filter postgres,$(ALTER_DAGSTER_STORAGE)),/postgres)

.PHONY: demo test lint ui install clean bench bench-quick bench-selfcheck analytics report

$(STAMP): pyproject.toml constraints.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -c constraints.txt uv
	$(UV_INSTALL) -e ".[dev,s3,postgres]"
	touch $(STAMP)

$(DBT_MANIFEST): $(STAMP) $(DBT_SOURCES)
	cd analytics && ../$(BIN)/dbt parse --quiet

install: $(STAMP) $(DBT_MANIFEST)

lint: $(STAMP)
	$(BIN)/ruff check alter_pipeline tests benchmarks
	$(BIN)/ruff format --check alter_pipeline tests benchmarks
	$(BIN)/lint-imports
	$(BIN)/mypy

# One worker per core (at most 4: each starts its own emulator and S3 server); run a single
# file or test with plain `$(BIN)/pytest` as usual.
test: install lint
	$(BIN)/pytest -q -n auto --maxprocesses 4

demo: install
	$(BIN)/python -m alter_pipeline.demo

ui: install
	$(BIN)/alter-pipeline ui

# After adding or changing a model under analytics/models: re-parse, rebuild, run its tests,
# and redraw the report (README.md, "Analytics").
analytics: install
	$(BIN)/alter-pipeline analytics

report: install
	$(BIN)/alter-pipeline report

clean:
	rm -rf data/* dagster_home/storage dagster_home/history dagster_home/logs dagster_home/schedules

# Benchmarks (docs/performance.md). The bench extra (dlt, matplotlib, psutil) is installed on
# first use; `bench-quick` runs with whatever is installed (dlt is skipped without it).
BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): $(STAMP) $(DBT_MANIFEST)
	$(UV_INSTALL) -e ".[dev,s3,postgres,bench]"
	touch $(BENCH_STAMP)

# The run's figures go into docs/performance.md and the README (between their markers).
bench: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks.syncbench
	$(BIN)/python -m benchmarks.syncbench.docs

bench-quick: install
	$(BIN)/python -m benchmarks.syncbench --quick

# What the sync's self-check costs at 100,000 orders, and a live-traffic scenario (README).
bench-selfcheck: $(STAMP)
	$(BIN)/python benchmarks/selfcheck_cost.py

# Ten minutes of dagster dev (schedules, sensors) against the live emulator under faults, then
# checks and figures (not part of `make test`): tests/reliability/soak.py, docs/reliability.md.
.PHONY: soak
soak: $(STAMP)
	$(BIN)/python tests/reliability/soak.py

# Break each documented guarantee once and run the tests named for it (not part of
# `make test`): tests/reliability/mutation.py prints caught / missed.
.PHONY: mutation
mutation: $(STAMP)
	$(BIN)/python tests/reliability/mutation.py
