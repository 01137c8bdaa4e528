# The two front-door commands (see README): `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
# A CPU build of torch that installs from this machine's disk; override elsewhere, e.g.
# `make test TORCH_SPEC=torch` for the platform's default build.
TORCH_SPEC ?= torch==2.13.0
# Data: ../shared/data beside this checkout, else beside the local repository it was cloned
# from (a fresh clone in a temporary folder), else ../shared/data (the tests then say so).
ORIGIN := $(shell git config --get remote.origin.url 2>/dev/null)
EVO_NAS_DATA ?= $(firstword $(wildcard $(abspath ../shared/data)) \
	$(if $(ORIGIN),$(wildcard $(abspath $(ORIGIN)/../shared/data))) $(abspath ../shared/data))
export EVO_NAS_DATA

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q "$(TORCH_SPEC)"
	$(VENV)/bin/pip install -q -e ".[test,dask,ray,tensorboard,dashboard]"
	touch $@

.PHONY: setup demo test lint
setup: $(VENV)/.installed

demo: setup
	$(VENV)/bin/evo-nas run examples/quickstart.yaml --overwrite

test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python -m pytest -q

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .
