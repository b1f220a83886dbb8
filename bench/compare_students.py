"""Paired comparison of students on the same 6000 LFW pairs: is a difference of a few pairs more than chance?

Each student embeds the aligned LFW crops with the trainer's own path (``train/evaluate.py``), scores the View-2
pairs and decides each pair at its fold's 10-fold threshold (``runtime/metrics.kfold_accuracy``). Against the
first student (the reference) it counts the discordant pairs — b: the reference right and the other wrong, c: the
reverse — and gives McNemar's exact two-sided p-value (binomial test of min(b, c) among b + c at ½; McNemar 1947).
A small p says the two students decide differently more often one way than chance would; a large one says the
accuracy difference (c − b)/6000 is within what two equally good students would show on these pairs. The per-pair
decisions reproduce ``kfold_accuracy``'s per-fold accuracies exactly (checked on every run). Nothing here trains
or chooses anything.

    python bench/compare_students.py runs/warm_ensemble_abc_6ep/student.pt runs/warm_ensemble_abc_cont_6ep/student.pt \
        --out docs/results/compare
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from shrinkface.runtime.lfw_eval import pair_scores
from shrinkface.runtime.metrics import kfold_accuracy
from shrinkface.train.checkpoint import load_student
from shrinkface.train.config import EvalConfig
from shrinkface.train.cpu_tuning import tune_cpu_process
from shrinkface.train.evaluate import LfwEvaluator, embed_crops

LFW_ALIGNED = "${SHRINKFACE_ALIGNED}/lfw"


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p: 2 · P(X ≤ min(b, c)), X ~ Binomial(b + c, ½), capped at 1 (1 when b + c = 0)."""
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1))
    return min(1.0, 2 * tail / 2**n)


def pair_decisions(evaluator: LfwEvaluator, emb: np.ndarray) -> tuple[np.ndarray, float]:
    """(per-pair right/wrong at each fold's 10-fold threshold, mean accuracy) of embeddings of the found crops."""
    full = np.full((len(evaluator.keys), emb.shape[1]), np.nan, np.float32)
    full[evaluator.have] = emb
    pairs = evaluator.pairs
    scores, valid = pair_scores(pairs, evaluator.keys, full)
    result = kfold_accuracy(scores, pairs.issame, pairs.folds, valid)
    folds = np.asarray(pairs.folds)
    fold_ids = np.unique(folds)
    thr = result.thresholds[np.searchsorted(fold_ids, folds)]
    right = valid & ((np.asarray(scores) >= thr) == np.asarray(pairs.issame))
    per_fold = np.array([right[folds == f].mean() for f in fold_ids])
    if not np.array_equal(per_fold, result.accuracies):
        raise AssertionError("per-pair decisions do not reproduce kfold_accuracy")
    return right, result.mean


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("students", nargs="+", type=Path, help="student.pt / checkpoints; the first is the reference")
    parser.add_argument("--out", type=Path, required=True, help="Folder for compare.json and compare.md.")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if len(args.students) < 2:
        parser.error("give a reference and at least one other student")
    torch.set_num_threads(args.threads)
    tune_cpu_process()
    cpu = torch.device("cpu")
    models = [load_student(p) for p in args.students]

    rows: list[dict[str, Any]] = []
    for flip in (True, False):
        evaluator = LfwEvaluator(EvalConfig(lfw_aligned=LFW_ALIGNED, max_pairs=None, flip=flip), cpu)
        decided = [pair_decisions(evaluator, embed_crops(m, evaluator.crops, cpu, flip=flip)) for m in models]
        ref_right, ref_acc = decided[0]
        for path, (right, acc) in zip(args.students[1:], decided[1:], strict=True):
            b = int((ref_right & ~right).sum())
            c = int((~ref_right & right).sum())
            p = mcnemar_exact(b, c)
            row = {
                "reference": str(args.students[0]),
                "student": str(path),
                "flip": flip,
                "reference_acc": round(ref_acc, 5),
                "acc": round(acc, 5),
                "ref_right_other_wrong": b,
                "ref_wrong_other_right": c,
                "mcnemar_p": round(p, 4),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "compare.json").write_text(json.dumps(rows, indent=1) + "\n")
    lines = [
        f"Reference: `{args.students[0]}`. b: pairs the reference gets right and the student wrong; c: the reverse.",
        "",
        "| student | flip | LFW % reference | LFW % student | b | c | McNemar exact p |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| `{r['student']}` | {r['flip']} | {100 * r['reference_acc']:.2f} | {100 * r['acc']:.2f} "
        f"| {r['ref_right_other_wrong']} | {r['ref_wrong_other_right']} | {r['mcnemar_p']:.3f} |"
        for r in rows
    ]
    (args.out / "compare.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}/compare.json, compare.md")


if __name__ == "__main__":
    main()
