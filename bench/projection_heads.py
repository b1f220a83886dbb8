"""LFW of a distilled student scored through its distillation projections (an ensemble head) too.

An ensemble-distilled student is trained so that P_k·s points where teacher k's embedding points, for each
teacher k (ADL with a bias-free ``ProjectionHead`` when the sizes differ, the identity when they match). The
teacher ensemble itself scores a pair by the weighted sum of the teachers' cosines (99.43 on LFW here, each
teacher alone ≤ 99.37). The student's counterpart of that score costs one 512 × Σd matrix product more:

    score(i, j) = Σ_k w_k · cos(P_k s_i, P_k s_j)
                = e_i · e_j,   e = concat_k(√w_k · P_k s / ‖P_k s‖)      (w_k: the run's teacher weights)

With flip, s is the sum of the crop's and its mirror's raw embeddings (as ``train/evaluate.py`` does), then the
heads. Every row is scored by the trainer's own ``LfwEvaluator.score`` (10-fold accuracy, all-vs-all TAR).

Pre-registered (written before any figure of it was seen, session 8): the ensemble head of the shipped student
``runs/warm_ensemble_abc_6ep`` (its ``checkpoints/last.pt`` holds the projections) replaces the student's own
embedding as the shipped output if, on all 6000 pairs with flip, LFW ≥ 99.30 **and** TAR @ FAR 1e-4 ≥ 95.43 %
(the shipped embedding's figure). The single-teacher heads are printed as diagnostics only, never chosen; the
identity head (teacher C, same size as the student) must reproduce the student's own figures exactly.

    python bench/projection_heads.py runs/warm_ensemble_abc_6ep/checkpoints/last.pt --out docs/results/heads
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from shrinkface.train.checkpoint import load_checkpoint, student_from_checkpoint
from shrinkface.train.config import EvalConfig, config_from_dict
from shrinkface.train.cpu_tuning import tune_cpu_process
from shrinkface.train.evaluate import LfwEvaluator, embed_crops

LFW_ALIGNED = "${SHRINKFACE_ALIGNED}/lfw"


class RawHeads(torch.nn.Module):
    """The student's raw embedding through each teacher's projection, concatenated: [P_1 s, …, P_K s]."""

    def __init__(self, student: torch.nn.Module, projections: list[torch.Tensor]) -> None:
        super().__init__()
        self.student = student
        self.projections = [p.float() for p in projections]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.student(x).float()
        return torch.cat([s @ p.T for p in self.projections], dim=1)


def projections_of(ckpt: dict, names: list[str], dim: int) -> list[torch.Tensor]:
    """Each teacher's projection matrix (d_k × dim) from the checkpoint's objective; the identity when it has none."""
    objective = ckpt.get("objective") or {}
    out = []
    for name in names:
        key = f"terms.adl.adl.{name}.projection.linear.weight"
        out.append(objective[key] if key in objective else torch.eye(dim))
    return out


def head_embeddings(raw: np.ndarray, dims: list[int], weights: list[float]) -> np.ndarray:
    """concat_k(√w_k · piece_k / ‖piece_k‖) of the raw concatenation (pieces of sizes ``dims``)."""
    pieces, start = [], 0
    for d, w in zip(dims, weights, strict=True):
        piece = raw[:, start : start + d]
        pieces.append(np.sqrt(w) * piece / np.linalg.norm(piece, axis=1, keepdims=True))
        start += d
    return np.concatenate(pieces, axis=1).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path, help="A training checkpoint (it holds the ADL projections).")
    parser.add_argument("--out", type=Path, required=True, help="Folder for heads.json and heads.md.")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tune_cpu_process()

    ckpt = load_checkpoint(args.checkpoint)
    cfg = config_from_dict(yaml.safe_load(ckpt["config"]))
    names = [t.name for t in cfg.teachers]
    total = sum(t.weight for t in cfg.teachers)
    weights = [t.weight / total for t in cfg.teachers]
    student = student_from_checkpoint(ckpt, args.checkpoint)
    dim = int(ckpt["student_config"]["embedding_size"])
    projections = projections_of(ckpt, names, dim)
    dims = [int(p.shape[0]) for p in projections]
    model = RawHeads(student, projections).eval()

    rows = []
    cpu = torch.device("cpu")
    for flip in (True, False):
        evaluator = LfwEvaluator(EvalConfig(lfw_aligned=LFW_ALIGNED, max_pairs=None, flip=flip, tar_far=1e-4), cpu)
        t0 = time.perf_counter()
        raw = embed_crops(model, evaluator.crops, cpu, flip=flip)
        own = embed_crops(student, evaluator.crops, cpu, flip=flip)  # the trainer's path: the identity head's check
        variants = {
            "student's own embedding": own,
            "ensemble head (pre-registered)": head_embeddings(raw, dims, weights),
        }
        start = 0
        for name, d in zip(names, dims, strict=True):
            variants[f"{name} head alone (diagnostic)"] = head_embeddings(raw[:, start : start + d], [d], [1.0])
            start += d
        for variant, emb in variants.items():
            row = {"variant": variant, "dim": int(emb.shape[1]), **evaluator.score(emb)}
            rows.append(row)
            print(json.dumps(row), flush=True)
        print(f"flip={flip}: {time.perf_counter() - t0:.0f} s", flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    meta = {"checkpoint": str(args.checkpoint), "step": ckpt.get("step"), "teachers": names, "weights": weights}
    (args.out / "heads.json").write_text(json.dumps({**meta, "rows": rows}, indent=1) + "\n")
    lines = ["| variant | dim | flip | LFW % | TAR @ FAR 1e-4 % |", "|---|---|---|---|---|"]
    lines += [
        f"| {r['variant']} | {r['dim']} | {r['lfw_flip']} | {100 * r['lfw_acc']:.2f} ± {100 * r['lfw_std']:.2f} "
        f"| {100 * r['tar']:.2f} |"
        for r in rows
    ]
    (args.out / "heads.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}/heads.json, heads.md")


if __name__ == "__main__":
    main()
