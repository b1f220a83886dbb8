#!/usr/bin/env bash
# Resume (or continue) a run on the GPU box for MINUTES, then copy what comes back to $OUT: last.pt, the run's
# small files, student.pt when finished, and the students of every EVERY-th step checkpoint (for the curve;
# evaluated afterwards on the CPU machine with bench/eval_checkpoints.py, since LFW crops do not travel).
#   bash bench/gpu/3_train.sh configs/scratch_long.yaml RUN_DIR_SEED_CHECKPOINT MINUTES EVERY
set -euo pipefail
source "$(dirname "$0")/env.sh"
CONFIG=$1 SEED=$2 MINUTES=$3 EVERY=$4
NAME=$(python3 -c "import yaml,sys; print(yaml.safe_load(open('$CONFIG'))['name'])")
RUN=$SF/runs/$NAME
if [ ! -f "$RUN/checkpoints/last.pt" ]; then   # first piece here: the run's files + the CPU machine's last.pt
  mkdir -p "$RUN/checkpoints"
  cp "runs/$NAME"/{log.jsonl,command.txt} "$RUN/"
  cp "$SEED" "$RUN/checkpoints/last.pt"
fi
python3 -m shrinkface train run "$CONFIG" --resume --device cuda --quiet --time-limit "$MINUTES" \
  --set output_dir=$SF/runs --set data.workers=12 --set threads=4 --set eval.period=0 --set eval.at_end=false \
  --set checkpoint.period=$EVERY --set checkpoint.keep=1000 || echo "TRAIN EXIT $?"
grep -v '"event": "eval"' "$RUN/log.jsonl" | tail -n 4
cp "$RUN/checkpoints/last.pt" "$OUT/"
tar -C "$RUN" -cf "$OUT/run_files.tar" log.jsonl command.txt config.yaml data_report.json
[ -f "$RUN/student.pt" ] && cp "$RUN/student.pt" "$OUT/"
python3 - "$RUN" "$OUT" <<'PY'
import pathlib
import sys

import torch

from shrinkface.train.checkpoint import load_checkpoint

run, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
ckpts = sorted(run.glob("checkpoints/step_*.pt"))
group = []
for p in ckpts:  # this piece's step checkpoints (earlier pieces' were packed and removed)
    ck = load_checkpoint(p)
    group.append({"step": ck["step"], "student": ck["student"], "student_config": ck["student_config"]})
for i in range(0, len(group), 3):  # ≤ 16 MiB a file: 3 students of ~5 MB
    part = group[i : i + 3]
    torch.save(part, out / f"students_{part[0]['step']:07d}.pt")
for p in ckpts:
    p.unlink()
print("students at steps", [g["step"] for g in group])
PY
ls -la "$OUT"
