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

# Quiet, and on stderr: `make run`'s stdout is the events.
$(STAMP): pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV) >&2
	@echo "installing into $(VENV)" >&2
	@$(VENV)/bin/pip install -q -e '.[dev]' </dev/null >&2
	@touch $@

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/python -m pytest -q

# `@`: make's own echo of the command would land in the events on stdout.
run: $(STAMP)
	@$(VENV)/bin/python -m pipeline run --from pipeline/sample/stream.jsonl --to -

# Flags for the launcher: make broker ARGS='--data-dir /tmp/kafka'
broker: $(STAMP)
	$(VENV)/bin/python -m tools.broker $(ARGS)
