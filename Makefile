# replyclock: `make demo` shows it working, `make test` proves it. Both set up .venv themselves.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo test lint typecheck unit servers bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $@

# The live demo runs for two minutes (`replyclock demo` alone runs until Ctrl-C).
DEMO_SECONDS ?= 120

demo: $(STAMP)
	$(BIN)/replyclock demo --duration $(DEMO_SECONDS)

servers:
	@sh .ci/install-servers

lint: $(STAMP)
	$(BIN)/ruff check monitor tests bench
	$(BIN)/ruff format --check monitor tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/python -m pytest

test: $(STAMP) servers lint typecheck unit

bench: $(STAMP) servers
	$(BIN)/python bench/imap_sync.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
