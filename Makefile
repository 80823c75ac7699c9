# FaceSearch: `make demo` sets up and runs the local demo; `make test` runs the whole test suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
MODELS_DIR ?= build/models

.PHONY: setup models demo test lint bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

models: setup
	$(BIN)/python layers/models/build_pack.py --out $(MODELS_DIR)

demo: models
	$(BIN)/facesearch demo

lint: setup
	$(BIN)/ruff check src tests bench layers
	$(BIN)/ruff format --check src tests bench layers

test: models lint
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) build .aws-sam
