# Gatehouse — the commands that matter on a fresh machine.
#   make run    install into .venv, migrate the SQLite default, seed a demo workspace, serve :8000
#               with the background task worker and the notification sweep beside it
#   make test   install, then run the whole suite (browser tests included)
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Django 6.1 needs Python >= 3.12. pyenv shims refuse to run unless their version is selected, so
# try real interpreters: $PYTHON, plain names on PATH, then pyenv's versions folder.
PYTHON_CANDIDATES := $(PYTHON) python3.13 python3.12 python3 \
	$(wildcard $(shell pyenv root 2>/dev/null)/versions/3.1[3-9]*/bin/python3) \
	$(wildcard $(shell pyenv root 2>/dev/null)/versions/3.12*/bin/python3) \
	$(wildcard $(HOME)/.pyenv/versions/3.1[2-9]*/bin/python3)
find_python = $(firstword $(foreach p,$(PYTHON_CANDIDATES),$(shell $(p) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1 && command -v $(p))))

.PHONY: help install run test lint bench clean

help:
	@echo "make run     install, migrate, seed the demo workspace, serve on http://127.0.0.1:8000 (+ task worker)"
	@echo "make test    install, then run the whole test suite (browser tests included)"
	@echo "make lint    ruff check and the import layers (lint-imports)"
	@echo "make bench   benchmark against the no-auth baseline and the DRF peer"

$(STAMP): pyproject.toml
	@py="$(call find_python)"; \
	if [ -z "$$py" ]; then \
	  echo "error: no Python >= 3.12 found. Install one (e.g. 'pyenv install 3.13') or run 'make PYTHON=/path/to/python3.13 ...'." >&2; \
	  exit 1; \
	fi; \
	echo "Using $$py ($$($$py --version))"; \
	[ -x $(BIN)/python ] || $$py -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_demo
	PY=$(BIN)/python scripts/run-dev

test: install
	@scripts/ensure-browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports

bench: install
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python -m bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) db.sqlite3 staticfiles
