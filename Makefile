# Two entry points for a fresh machine: `make demo` and `make test`. Both create .venv first.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: setup demo test lint

# PYTHONWARNINGS: setuptools warns, in nine lines, that a folder named like the package in the
# working directory may shadow it; here that folder is the package itself (a comment inside the
# recipe would be echoed too).
$(BIN)/pricer-installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	PYTHONWARNINGS='ignore:Editable installation' $(BIN)/pip install --quiet -e '.[dev]'
	touch $@

setup: $(BIN)/pricer-installed

# The leaderboard of every classical family on the embedded synthetic data: no network, no keys.
demo: setup
	$(BIN)/python -m pricer.leaderboard

test: setup
	$(BIN)/python -m ruff check .
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/python -m ruff check .
	$(BIN)/python -m ruff format --check .
