# Entry points: `make test` (lint, types, all tests against a real Kafka broker), `make run`,
# `make broker`. The virtualenv is (re)built when pyproject.toml changes.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := test

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: setup .venv test run broker

setup .venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q -e '.[dev]' </dev/null
	touch $@

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/python -m pytest -q

run: $(STAMP)
	$(VENV)/bin/python -m pipeline run --from pipeline/sample/stream.jsonl --to -

broker: $(STAMP)
	$(VENV)/bin/python -m tools.broker
