# Two entry points for a fresh machine: `make run` and `make test`.
# Each creates the virtual environment and installs what it needs first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench report

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.runtime: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.runtime

# The playground when no deployment is configured (no SLACK_*, TOKENDESK_DB, TOKENDESK_DATABASE_URL
# nor TOKENDESK_SECRET_KEY in the environment or .env); the app, exactly as python -m bot, else.
run: $(VENV)/.runtime
	$(BIN)/python -m playground.launch

test: $(VENV)/.dev
	$(BIN)/python -m pytest

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(VENV)/.dev
	$(BIN)/python bench/store.py
	$(BIN)/python bench/list.py
	$(BIN)/python bench/home.py
	$(BIN)/python bench/authcheck.py
	$(BIN)/python bench/rotation.py
	$(BIN)/python bench/metrics.py
	$(BIN)/python bench/scheduler.py
	$(BIN)/python bench/leakscan.py
	$(BIN)/python bench/leakburst.py
	$(BIN)/python bench/instances.py
	$(BIN)/python bench/mixedload.py --postgres

report: $(VENV)/.dev
	$(BIN)/python bench/report.py
