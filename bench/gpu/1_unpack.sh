#!/usr/bin/env bash
# Unpack recoded aligned folders (zip files made from `shrinkface data recode` output) on the GPU box.
#   bash bench/gpu/1_unpack.sh BUNDLE_DIR     (BUNDLE_DIR/*.zip, optional pairs.txt, assets/, whl/)
set -euo pipefail
source "$(dirname "$0")/env.sh"
B=$(realpath "$1")
for z in "$B"/*.zip; do (cd "$SHRINKFACE_ALIGNED" && python3 -m zipfile -e "$z" .); done
[ -f "$B/pairs.txt" ] && cp "$B/pairs.txt" "$SHRINKFACE_DATA/lfw/"
[ -d "$B/assets" ] && cp -r "$B"/assets/* "$SHRINKFACE_CACHE/assets/"
if [ -d "$B/whl" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$B"/whl/*.whl
fi
for d in "$SHRINKFACE_ALIGNED"/*/; do echo "$d: $(find "$d" -type f | wc -l) files"; done
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import sys, torch; print(sys.version.split()[0], torch.__version__, torch.cuda.is_available())"
nproc; df -h /root | tail -1
