# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test fuzz install lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[dev,aiedge]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/edgeopt demo --out out/demo

test: $(STAMP)
	$(BIN)/python -m pytest -q tests -m 'not fuzz_full'

fuzz: $(STAMP)
	$(BIN)/python -m pytest -q tests/fuzz -m fuzz_full

lint: $(STAMP)
	$(BIN)/ruff check edgeopt tests benchmarks sample_models

clean:
	rm -rf out .pytest_cache
