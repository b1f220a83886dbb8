"""Paired comparison of students on the same 6000 LFW pairs: is a difference of a few pairs more than chance?

Each student embeds the aligned LFW crops with the trainer's own path (``train/evaluate.py``), scores the View-2
pairs and decides each pair at its fold's threshold (``KFoldResult.right``, runtime/metrics.py). Against the
first student (the reference) it counts the discordant pairs — b: the reference right and the other wrong, c: the
reverse — and gives McNemar's exact two-sided p-value (``runtime/metrics.mcnemar_exact``).
A small p says the two students decide differently more often one way than chance would; a large one says the
accuracy difference (c − b)/6000 is within what two equally good students would show on these pairs. Nothing here
trains or chooses anything.

    python bench/compare_students.py runs/warm_ensemble_abc_6ep/student.pt runs/warm_ensemble_abc_cont_6ep/student.pt \
        --out docs/results/compare
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch

from shrinkface.runtime.metrics import mcnemar_exact
from shrinkface.train.checkpoint import load_student
from shrinkface.train.config import EvalConfig
from shrinkface.train.cpu_tuning import tune_cpu_process
from shrinkface.train.evaluate import LfwEvaluator, embed_crops

LFW_ALIGNED = "${SHRINKFACE_ALIGNED}/lfw"


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
        results = [evaluator.kfold(embed_crops(m, evaluator.crops, cpu, flip=flip)) for m in models]
        ref = results[0]
        for path, result in zip(args.students[1:], results[1:], strict=True):
            b = int((ref.right & ~result.right).sum())
            c = int((~ref.right & result.right).sum())
            p = mcnemar_exact(b, c)
            row = {
                "reference": str(args.students[0]),
                "student": str(path),
                "flip": flip,
                "reference_acc": round(ref.mean, 5),
                "acc": round(result.mean, 5),
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
