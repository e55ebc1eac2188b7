# Two commands: `make up` runs MLBuffet on this machine, `make test` runs the whole suite.
# Each creates .venv with python3 if it is missing and installs the project into it; a
# second run installs nothing unless pyproject.toml changed. Extra arguments: ARGS="...".
# `make test` first prepares the machine (scripts/prepare-test-machine: apt packages, a Docker
# daemon, the trainer tests' image; about half a second once done), since python3-venv may be
# missing before .venv can even be made; `make pytest` is the suite alone.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ARGS ?=

.PHONY: up test pytest venv clean-venv

up: $(VENV)/.installed-run
	$(BIN)/mlbuffet up $(ARGS)

test:
	scripts/prepare-test-machine
	@$(MAKE) --no-print-directory pytest

pytest: $(VENV)/.installed-test
	$(BIN)/pytest -n auto $(ARGS)

venv: $(BIN)/python

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Stamps: reinstall only when the project's dependencies may have changed.
$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@ $(VENV)/.installed-run

clean-venv:
	rm -rf $(VENV)
