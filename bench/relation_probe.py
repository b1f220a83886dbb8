"""The mutual-relation term before training: mining cost, how alike the mined negatives are, and the loss terms'
sizes at the warm start, on random training batches (no LFW). The figures quoted by configs/warm_relation_6ep.yaml
and docs/results/distillation.md ("Mutual relation distillation"):

    .venv/bin/python bench/relation_probe.py configs/warm_relation_6ep.yaml --out docs/results/relation_probe.json

The warm-start student is teacher C's weights (BN frozen), the projection heads of SFace and expo untrained,
exactly as step 0 of the run; the batches are drawn with a fixed seed and augmented as in training.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from shrinkface.train.config import load_config
from shrinkface.train.data import BatchDataset, to_input
from shrinkface.train.objective import BatchView, RelationTerm, build_objective
from shrinkface.train.prepare import prepare
from shrinkface.train.students import build_student
from shrinkface.train.teachers import resolve_model_path
from shrinkface.train.warmstart import warm_start_from_onnx


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config", type=Path)
    ap.add_argument("--batches", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(2)
    cfg = load_config(args.config, [])
    prep = prepare(cfg, progress=False)
    torch.manual_seed(cfg.seed)  # as the trainer: the same untrained projection heads as the run's step 0
    student = build_student(**cfg.student.build_args())
    warm_start_from_onnx(student, resolve_model_path(cfg.student.warm_start))
    student.freeze_bn = cfg.student.freeze_bn
    t0 = time.perf_counter()
    objective = build_objective(
        cfg.losses, student, prep.teachers, prep.cached, prep.trainset.labels, prep.trainset.num_classes
    )
    build_s = time.perf_counter() - t0
    term = next(t for t in objective.terms.values() if isinstance(t, RelationTerm))
    negatives = term.negatives.numpy()
    rows = np.arange(0, len(negatives), 97)  # every 97th face: the cosines of its mined negatives, by rank
    units = {n: prep.cached[n] / np.linalg.norm(prep.cached[n], axis=1, keepdims=True) for n in term.names}
    cos = sum(
        w * np.einsum("nd,nkd->nk", units[n][rows], units[n][negatives[rows]])
        for n, w in zip(term.names, term.weights, strict=True)
    )
    ds = BatchDataset(prep.pack, prep.trainset.labels, prep.targets, cfg.data.augment)
    rng = np.random.default_rng(args.seed)
    student.train()
    parts_sum: dict[str, list[float]] = {}
    for b in range(args.batches):
        batch = ds[(list(rng.choice(len(prep.trainset), cfg.batch_size, replace=False)), b)]
        with torch.no_grad():
            emb = student(to_input(batch["images"]))
            view = BatchView({"embedding": emb}, batch["labels"], batch["targets"], {}, batch["index"])
            _, parts = objective(view)
        for k, v in parts.items():
            parts_sum.setdefault(k, []).append(float(v))
    result = {
        "config": str(args.config),
        "faces": len(prep.trainset),
        "k": int(negatives.shape[1]),
        "build_objective_s": round(build_s, 1),
        "negative_cosine_rows": len(rows),
        "negative_cosine_mean_by_rank": [round(float(c), 3) for c in cos.mean(axis=0)],
        "loss_terms_at_warm_start": {k: round(float(np.mean(v)), 5) for k, v in parts_sum.items()},
        "batches": args.batches,
    }
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
