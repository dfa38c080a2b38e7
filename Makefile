# `make demo` and `make test` work from a fresh clone: both create (or reuse)
# the virtual environment in .venv and install rnnkit into it, with torch
# pinned by constraints.txt to the CPU build.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.rnnkit-installed

.PHONY: demo test lint format bench clean

$(STAMP): pyproject.toml constraints.txt Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev,forecast,classify,transcribe,music,speech]'
	touch $(STAMP)

# The main job: a character model trained for two minutes on Python's own
# standard library (always on disk), then a streamed sample from it.
demo: $(STAMP)
	@run=runs/demo-$$(date +%Y%m%d-%H%M%S); \
	$(BIN)/rnnkit text train --minutes 2 --out $$run && \
	$(BIN)/rnnkit text sample $$run --prime "def " --length 600

# one pytest worker per core (pytest-xdist); tests/conftest.py gives each its share of threads
test: $(STAMP)
	$(BIN)/python -m pytest -n auto --dist worksteal

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python benchmarks/cells.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
