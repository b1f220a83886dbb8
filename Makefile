# shrinkface — the two commands a new machine needs: `make setup` then `make test`.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
# Face data root (LFW, training faces). Override: make test SHRINKFACE_DATA=/path/to/data
SHRINKFACE_DATA ?= $(abspath ../shared/data)
export SHRINKFACE_DATA
TORCH_PIN := torch==2.13.0

.PHONY: setup test lint bench-runtime eval-teachers export-tflite export-onnx clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

## setup: create .venv, install pinned packages (torch CPU pinned in the same pip command) and fetch assets
setup: $(BIN)/python
	$(BIN)/pip install --quiet -c constraints.txt "$(TORCH_PIN)" -e ".[runtime,eval,train,export,dev]"
	$(BIN)/shrinkface assets fetch

## test: the whole test suite (exit 5, "no tests collected", is a failure)
test:
	$(BIN)/python -m pytest -q tests

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
