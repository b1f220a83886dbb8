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
	@$(BIN)/python -m pytest -q tests; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: that is a failure" >&2; fi; exit $$rc

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache

# -- Android core (android_demo/core): plain-JVM logic shared with the app, tested here with javac + JUnit 4 --
.PHONY: test-android-core setup-android-core
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

## setup-android-core: JDK 17 + JUnit 4 from Debian (apt) when missing; CI calls it before `make test`
setup-android-core:
	@if javac -version 2>&1 | grep -Eq 'javac (1[7-9]|[2-9][0-9])' && [ -f /usr/share/java/junit4.jar ] \
	  && [ -f /usr/share/java/hamcrest.jar ]; then \
	  echo "setup-android-core: javac and junit4 already installed"; \
	else \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends openjdk-17-jdk-headless junit4; \
	fi

## test-android-core: compile android_demo/core with javac and run its JUnit tests against tests/golden/core_*.json
test-android-core:
	android_demo/core/run-jvm-tests.sh

# -- export: a trained student → TFLite / ONNX (float + int8, the model card inside each file) + parity report --
# make export-tflite [CHECKPOINT=runs/<name>/student.pt] (default: the committed warm_ensemble_abc_6ep student) [EXPORT_ARGS="--qat --calib-size 2971"] [PARITY_ARGS="--max-pairs 600"]
# Files, export.json and parity-<format>/ (JSON, markdown, histogram) land in artifacts/<name>/. The parity gate
# (float: cosine ≥ 0.9999, int8: cosine ≥ 0.99, decision agreement ≥ 99 % on LFW) fails the target loudly.
CHECKPOINT ?= runs/warm_ensemble_abc_6ep/student.pt
# The int8 file: PTQ on 256 glint-celeb6 faces (never LFW); the 1×1 convs and the embedding layer (93 % of the
# MACs) int8, input and output int8; float inside it: the stem, the head's GDConv (XNNPACK's int8 7×7 depthwise
# kernel is ~15× slower than float: 0.86 vs 0.05 ms) and every depthwise block whose PReLU is per-channel (XNNPACK
# has no int8 per-channel PReLU, so it runs float anyway; the depthwise conv between two such PReLUs float too
# saves a QUANTIZE/DEQUANTIZE pair each). docs/results/parity.md, shipped student: embed 1.56-1.83 vs 2.01-2.31 ms
# with only stem + GDConv float, cosine 0.9970 vs 0.9959, agreement 99.85 vs 99.92 %. A ReLU or one-slope (prelu1)
# student has int8 activations and keeps its depthwise blocks int8 (float was slower for them).
# EXPORT_ARGS="--float-modules stem,head.gdc" gives the previous file; EXPORT_ARGS="--qat --calib-size 2971" the
# all-int8 QAT file (~15 min). The other settings are the CLI's defaults: activation equalisation, float residual
# adds, per-channel PReLU as float PRELU islands where one is left (a one-slope prelu1 student: int8 LEAKY_RELU).
EXPORT_ARGS ?= --float-modules stem,head.gdc,depthwise-prelu
EXPORT_OUT ?= artifacts/$(notdir $(patsubst %/,%,$(dir $(CHECKPOINT))))
LFW_ALIGNED ?= $(or $(SHRINKFACE_CACHE),$(HOME)/.cache/shrinkface)/aligned/lfw
.PHONY: export-need-checkpoint export-lfw-aligned

export-need-checkpoint:
	@test -n "$(CHECKPOINT)" || { echo "usage: make $(MAKECMDGOALS) CHECKPOINT=runs/<name>/student.pt" >&2; exit 2; }

## export-lfw-aligned: aligned LFW crops for the parity report (made once; an existing folder is used as it is)
export-lfw-aligned:
	@test -f $(LFW_ALIGNED)/align.json || $(BIN)/shrinkface data align $(SHRINKFACE_DATA)/lfw/images $(LFW_ALIGNED) --quiet

## export-tflite: CHECKPOINT → float + full-int8 TFLite (NHWC, int8 in/out), then parity on LFW
export-tflite: export-need-checkpoint export-lfw-aligned
	$(BIN)/shrinkface export $(CHECKPOINT) --formats tflite --quant float,int8 --out $(EXPORT_OUT) $(EXPORT_ARGS)
	$(BIN)/shrinkface parity $(CHECKPOINT) $(EXPORT_OUT)/*.tflite --aligned $(LFW_ALIGNED) \
	  --out $(EXPORT_OUT)/parity-tflite $(PARITY_ARGS)

## export-onnx: CHECKPOINT → float + int8 QDQ ONNX (opset 20, free batch), then parity on LFW
export-onnx: export-need-checkpoint export-lfw-aligned
	$(BIN)/shrinkface export $(CHECKPOINT) --formats onnx --quant float,int8 --out $(EXPORT_OUT) $(EXPORT_ARGS)
	$(BIN)/shrinkface parity $(CHECKPOINT) $(EXPORT_OUT)/*.onnx --aligned $(LFW_ALIGNED) \
	  --out $(EXPORT_OUT)/parity-onnx $(PARITY_ARGS)
