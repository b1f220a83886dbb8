#!/usr/bin/env bash
# Train a run on the GPU box for at most MINUTES, then copy what comes back to $OUT (≤ 8 files, ≤ 64 MiB in all):
# the run's small files (run_files.tar), student.pt when finished (else last.pt, to resume here or elsewhere), and
# the students of this piece's step checkpoints, 3 to a file (for the curve: evaluated afterwards on the CPU
# machine with bench/eval_checkpoints.py, since the LFW crops do not travel). Choose EVERY so that a piece makes
# at most 9 step checkpoints (3 bundles of 15 MB + 16 MB last.pt fit; more are left out).
#   bash bench/gpu/3_train.sh CONFIG new MINUTES EVERY            # a new run
#   bash bench/gpu/3_train.sh CONFIG SEED_LAST_PT MINUTES EVERY   # resume a run begun elsewhere (its last.pt)
#   bash bench/gpu/3_train.sh CONFIG - MINUTES EVERY              # continue it here
set -euo pipefail
source "$(dirname "$0")/env.sh"
CONFIG=$1 SEED=$2 MINUTES=$3 EVERY=$4
NAME=$(python3 -c "import yaml; print(yaml.safe_load(open('$CONFIG'))['name'])")
RUN=$SF/runs/$NAME
RESUME=--resume
if [ "$SEED" = new ]; then
  RESUME=
elif [ ! -f "$RUN/checkpoints/last.pt" ]; then   # first piece here: the run's files + the other machine's last.pt
  mkdir -p "$RUN/checkpoints"
  cp "runs/$NAME"/{log.jsonl,command.txt} "$RUN/"
  cp "$SEED" "$RUN/checkpoints/last.pt"
fi
python3 -P -m shrinkface train run "$CONFIG" $RESUME --device cuda --quiet --time-limit "$MINUTES" \
  --set output_dir=$SF/runs --set data.workers=12 --set threads=4 --set eval.period=0 --set eval.at_end=false \
  --set checkpoint.period="$EVERY" --set checkpoint.keep=1000 || echo "TRAIN EXIT $?"
grep -v '"event": "eval"' "$RUN/log.jsonl" | tail -n 3
tar -C "$RUN" -cf "$OUT/run_files.tar" log.jsonl command.txt config.yaml data_report.json
if [ -f "$RUN/student.pt" ]; then cp "$RUN/student.pt" "$OUT/"; else cp "$RUN/checkpoints/last.pt" "$OUT/"; fi
python3 -P - "$RUN" "$OUT" <<'PY'
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
