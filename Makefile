# promo-analysis — `make help` lists the targets.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SAMPLE := data/sample
REGIONS ?= guangxi,shanxi,beijing,zhejiang
SCALE  ?= 0.01
SEED   ?= 0
export SPARK_LOCAL_IP ?= 127.0.0.1
export MPLBACKEND ?= Agg

.DEFAULT_GOAL := help
.PHONY: help setup test test-fast test-spark lint data reports bench clean

help: ## Show this help
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | \
	  awk 'BEGIN {FS = ":.*?## "} {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP) ## Create .venv and install the package with its dev extra (re-runs only when pyproject.toml changed)

test: setup ## Run the whole test suite (unit, statistical, notebooks; Spark parity: test-spark)
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q -m "not spark"

test-spark: setup ## DuckDB-vs-Spark parity tests (installs the spark extra; needs Java 17)
	$(BIN)/python -m pip install --quiet -e '.[dev,spark]'
	$(BIN)/python -m pytest -q -p no:cacheprovider -m spark tests/spark

test-fast: setup ## Unit tests only
	$(BIN)/python -m pytest -q tests/unit

lint: setup ## Ruff on the package, tests and notebooks
	$(BIN)/ruff check src tests notebooks benchmarks scripts

$(SAMPLE)/dataset.json: | setup
	$(BIN)/promo-analysis simulate --scenario china-post-2022 --scale $(SCALE) \
	  --regions $(REGIONS) --seed $(SEED) --out $(SAMPLE)

data: $(SAMPLE)/dataset.json ## Build the embedded sample dataset (guangxi, shanxi, beijing, zhejiang)

reports: setup data ## Set up, build the sample if missing, render every region's report
	$(BIN)/promo-analysis report --data $(SAMPLE) --out reports

bench: setup ## Speed and memory benchmarks (writes benchmarks/results/)
	$(BIN)/python benchmarks/run.py

clean: ## Remove generated data, reports and caches (keeps .venv)
	rm -rf $(SAMPLE) reports/*/ reports/latest .pytest_cache .ruff_cache
