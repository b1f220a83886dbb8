#!/usr/bin/env bash
# Install shrinkface (no deps: the box has torch, opencv, onnxruntime; litert/onnx2torch came as wheels), check
# the assets' sha256, fill the teacher caches for CONFIG, and smoke-test 5 CUDA steps of it in a throw-away run.
#   bash bench/gpu/2_prepare.sh configs/scratch_long.yaml
# Session 7: its one run hit the call's time limit inside the cache fill (the white-box workers did not flush
# subnormal floats then: 6–7× slower; fixed in train/teachers.py TorchEmbedder.embed), the fill was finished by hand with the same
# `train cache` command (--processes 1, then 14), and the smoke test was skipped: the training call ran directly.
set -euo pipefail
source "$(dirname "$0")/env.sh"
python3 -m pip install -q --no-deps --no-build-isolation --no-index . 2>&1 | tail -2
python3 -P -m shrinkface assets verify || true   # lists every asset; only the config's teachers must be ok
time python3 -P -m shrinkface train cache "$1" --processes 14 --set data.workers=1
python3 -P -m shrinkface train run "$1" --device cuda --quiet --stop-at 5 --set name=smoke \
  --set output_dir=/tmp/smoke --set eval.period=0 --set eval.at_end=false --set data.workers=8
tail -n 3 /tmp/smoke/smoke/log.jsonl
