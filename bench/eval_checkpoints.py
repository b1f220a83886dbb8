"""LFW evaluation of a run's students after the fact, with the trainer's own evaluator (train/evaluate.py).

For runs trained where the aligned LFW crops were not (bench/gpu/: only the training set travels), so the
periodic evaluation was off there. Two uses:

    # the curve: the 600-pair, no-flip subset of the periodic evaluation, appended to RUN/evals_posthoc.jsonl
    python bench/eval_checkpoints.py runs/scratch_40ep artifacts/gpu_s7/scratch_40ep/students_*.pt
    # the reported figure: all 6000 pairs, with and without flip, TAR @ FAR 1e-4 → RUN/final_eval.json
    python bench/eval_checkpoints.py runs/scratch_40ep runs/scratch_40ep/student.pt --full

A students file is a list of {"step", "student", "student_config"} (bench/gpu/3_train.sh packs them); a
``student.pt`` / checkpoint is read with the trainer's safe loader. Nothing here trains or chooses anything.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from shrinkface.train.checkpoint import check_checkpoint, load_checkpoint, student_from_checkpoint
from shrinkface.train.config import EvalConfig
from shrinkface.train.cpu_tuning import tune_cpu_process
from shrinkface.train.evaluate import LfwEvaluator

LFW_ALIGNED = "${SHRINKFACE_ALIGNED}/lfw"


def students_in(path: Path) -> list[tuple[int | None, dict[str, Any]]]:
    """(step, checkpoint-like dict) of every student in a students bundle (a list) or a checkpoint file."""
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # load_checkpoint says what is wrong with the file
        return [(None, load_checkpoint(path))]  # (it raises)
    if isinstance(loaded, list):  # bench/gpu/3_train.sh's bundle of step students
        return [(int(s["step"]), s) for s in loaded]
    ckpt = check_checkpoint(loaded, path)  # the trainer's own check and message
    return [(int(ckpt["step"]) if "step" in ckpt else None, ckpt)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="The run folder (results are written there).")
    parser.add_argument("files", nargs="+", type=Path, help="students_*.pt bundles or student.pt / checkpoints.")
    parser.add_argument("--full", action="store_true", help="All 6000 pairs, flip and no flip, TAR @ 1e-4.")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    tune_cpu_process()
    cpu = torch.device("cpu")
    if args.full:
        evaluators = [
            LfwEvaluator(EvalConfig(lfw_aligned=LFW_ALIGNED, max_pairs=None, flip=flip, tar_far=1e-4), cpu)
            for flip in (True, False)
        ]
    else:  # what the trainer's periodic evaluation of these runs' configs does
        evaluators = [LfwEvaluator(EvalConfig(lfw_aligned=LFW_ALIGNED, max_pairs=600, flip=False), cpu)]
    results = []
    for path in args.files:
        for step, ckpt in students_in(path):
            student = student_from_checkpoint(ckpt, path)
            for evaluator in evaluators:
                t0 = time.perf_counter()
                row = {"event": "eval", "step": step, "posthoc": True, "source": str(path), **evaluator(student)}
                results.append(row)
                print(json.dumps(row), f"({time.perf_counter() - t0:.0f} s)", flush=True)
    if args.full:
        out = args.run / "final_eval.json"
        out.write_text(json.dumps(results, indent=1) + "\n")
    else:
        out = args.run / "evals_posthoc.jsonl"
        with out.open("a") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in results)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
