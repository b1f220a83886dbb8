#!/usr/bin/env bash
# Put the two models the app needs into app/src/main/assets/ (they are git-ignored):
#   student_int8.tflite  the exported int8 student with its model card in the TFLite metadata (`make export-tflite`)
#   yunet.onnx           the YuNet detector the Python runtime uses (installed by `make setup` / `shrinkface assets fetch`)
# Usage: android_demo/copy-models.sh PATH/TO/student_int8.tflite   (default: $SHRINKFACE_TFLITE or artifacts/student_int8.tflite)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"
tflite="${1:-${SHRINKFACE_TFLITE:-$repo/artifacts/student_int8.tflite}}"
assets="$here/app/src/main/assets"
if [ ! -f "$tflite" ]; then
  echo "no model at $tflite: run \`make export-tflite\` or pass the .tflite path" >&2
  exit 1
fi
yunet="$("$repo/.venv/bin/python" -c 'from shrinkface.runtime.assets import asset_path; print(asset_path("yunet"))')"
mkdir -p "$assets"
cp "$tflite" "$assets/student_int8.tflite"
cp "$yunet" "$assets/yunet.onnx"
ls -l "$assets"
