# `make` lists the targets. Every target installs into .venv first when needed.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# The project's own runs send no telemetry and need no network.
export DVC_NO_ANALYTICS := 1
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1
export TF_CPP_MIN_LOG_LEVEL := 2
export PATH := $(CURDIR)/$(BIN):$(PATH)

.DEFAULT_GOAL := help
.PHONY: help install params repro plots test test-fast ui serve bench samples lint clean

# PROFILE=<name>: `make params` and `make repro` first write params.yaml from
# profiles/<name>.yaml over the defaults (PROFILE=study: the study's values). Empty: as it is.
PROFILE ?=

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  make %-10s %s\n",$$1,$$2}'

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $@

install: $(STAMP) ## create .venv and install the pinned dependencies

params: $(STAMP) ## write params.yaml for PROFILE=<name> (profiles/<name>.yaml; study: the defaults) and check it
	$(BIN)/python -m deepfake_detector.params_check $(if $(PROFILE),--profile $(PROFILE))

repro: $(STAMP) ## run the whole pipeline (dvc repro; PROFILE=<name> writes params.yaml first) and print the test metrics
	@test -d .git || { echo "make repro needs a git checkout (DVC tracks the pipeline in git)"; exit 2; }
	@# params.yaml checked as the stages read it (keys, values, YAML alias bombs) before DVC parses it
	$(BIN)/python -m deepfake_detector.params_check $(if $(PROFILE),--profile $(PROFILE))
	dvc repro
	@echo; echo "Test metrics (metrics/summary.csv; every key: dvc metrics show):"
	@column -s, -t metrics/summary.csv 2>/dev/null || cat metrics/summary.csv
	@echo; echo "Explanations: reports/explain/index.html; their scores: metrics/explain.json"
	@echo "Registered: models/registered.json (alias challenger). Next: $(BIN)/deepfake promote, then make serve"

plots: $(STAMP) ## DVC's plots as dvc_plots/index.html, drawn with no network (vega inlined)
	$(BIN)/python -m deepfake_detector.offline_plots -o dvc_plots

test: $(STAMP) ## run the whole test suite (slow tests included)
	$(BIN)/pytest

test-fast: $(STAMP) ## run the tests not marked slow
	$(BIN)/pytest -m "not slow"

ui: $(STAMP) ## MLflow UI on 127.0.0.1:5000 over the project's store
	@url=$$($(BIN)/python -c "from pathlib import Path; from deepfake_detector.tracking import ui_url; print(ui_url(Path.cwd()))" 2>/dev/null) || url=http://127.0.0.1:5000/; \
	echo "MLflow UI: $$url  (opens on the runs table; models: http://127.0.0.1:5000/#/models)"
	$(BIN)/mlflow ui --backend-store-uri "$${MLFLOW_TRACKING_URI:-sqlite:///$(CURDIR)/mlflow.db}" --host 127.0.0.1 --port 5000

serve: $(STAMP) ## the detection web page and JSON API on 127.0.0.1:8000 (the champion model)
	$(BIN)/deepfake serve

bench: $(STAMP) ## benchmarks: preprocess decoding, LIME (train_throughput.py, real_data.py: by hand)
	$(BIN)/python benchmarks/preprocess.py
	$(BIN)/python benchmarks/explain.py

samples: $(STAMP) ## redraw docs/synthetic_samples.png from the built-in dataset
	$(BIN)/python -m deepfake_detector.synthetic docs/synthetic_samples.png

lint: $(STAMP) ## ruff check
	$(BIN)/ruff check src stages tests benchmarks

clean: ## remove workspace outputs (data/, models/, dvc_plots/, test-artifacts/) and tool caches; keeps .venv, .dvc/cache, mlflow.db, downloads
	rm -rf data models dvc_plots test-artifacts .pytest_cache .ruff_cache
