"""Mutual relation distillation on the teacher's hardest negatives (after CoupleFace, Liu et al., ECCV 2022,
arXiv 2204.05502).

ADL matches each student embedding to its own teacher embedding; what decides a face-unlock at FAR 1e-4 is how
close a face lands to *other* people's faces. CoupleFace's mutual relation distillation (MRD) transfers that:
the cosine between the student's embedding of sample i and the teacher's embedding of another sample j must equal
the teacher's own cosine of i and j, on the informative pairs, i.e. j among i's nearest other-identity neighbours
in the teacher's space (mined once, offline, over the whole training set: the teacher is fixed).

Ours where the paper differs: the pairs are each sample's k nearest neighbours under the teacher (ensemble)
similarity that do not share its label; CoupleFace's relation-aware weighting is replaced by a plain mean; for a
teacher of another size the student is first mapped by the ADL term's projection head.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from shrinkface.train.losses.common import LossInputError, check_batch, l2n


def hard_negatives(
    banks: Sequence[np.ndarray],
    k: int,
    labels: np.ndarray | None = None,
    weights: Sequence[float] | None = None,
    chunk: int = 2048,
) -> np.ndarray:
    """(N, k) indices: each row's k most teacher-similar other rows, by Σ_m w_m t̂ᵐ_i·t̂ᵐ_j.

    ``banks``: one (N, D_m) embedding matrix per teacher (any sizes); ``labels`` ≥ 0 mark identities whose
    other faces are not negatives (−1 or a unique pseudo-label: only the row itself is excluded).
    """
    if not banks:
        raise LossInputError("hard_negatives needs at least one teacher bank")
    n = banks[0].shape[0]
    if any(b.shape[0] != n for b in banks):
        raise LossInputError("the teacher banks differ in rows")
    w = np.full(len(banks), 1.0 / len(banks)) if weights is None else np.asarray(weights, dtype=np.float64)
    if len(w) != len(banks):
        raise LossInputError(f"{len(banks)} banks but {len(w)} weights")
    lab = np.full(n, -1, dtype=np.int64) if labels is None else np.asarray(labels, dtype=np.int64)
    allowed = n - max(1, int(np.bincount(lab[lab >= 0]).max()) if (lab >= 0).any() else 1)  # minus self/class
    if not 1 <= k <= allowed:
        raise LossInputError(f"k must lie in [1, {allowed}] for {n} rows, got {k}")
    units = [b.astype(np.float32) / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12) for b in banks]
    out = np.empty((n, k), dtype=np.int64)
    for lo in range(0, n, chunk):
        hi = min(lo + chunk, n)
        sim = sum(float(wm) * (u[lo:hi] @ u.T) for wm, u in zip(w, units, strict=True))
        rows = np.arange(lo, hi)
        sim[rows - lo, rows] = -np.inf
        same = (lab[lo:hi, None] == lab[None, :]) & (lab[lo:hi, None] >= 0)
        sim[same] = -np.inf
        top = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sim, top, axis=1), axis=1, kind="stable")
        out[lo:hi] = np.take_along_axis(top, order, axis=1)
    return out


class MutualRelation(nn.Module):
    """MRD loss (arXiv 2204.05502): L = mean_{i, j ∈ N(i)} (ŝ_i·t̂_j − t̂_i·t̂_j)².

    ŝ_i: the student's (projected) embedding of sample i, t̂_i: the teacher's embedding of the same view, t̂_j:
    the teacher's embeddings of i's mined negatives N(i) (``negatives``: B × k × D). Teacher inputs are detached.
    At ŝ_i = t̂_i the loss is 0; it penalises only the part of ŝ_i − t̂_i that points at other people's faces.
    """

    def forward(self, student: torch.Tensor, teacher: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
        check_batch("student", student)
        check_batch("teacher", teacher)
        if negatives.dim() != 3 or negatives.shape[0] != student.shape[0]:
            raise LossInputError(f"negatives must be B × k × D, B = {student.shape[0]}; got {tuple(negatives.shape)}")
        if not student.shape[1] == teacher.shape[1] == negatives.shape[2]:
            raise LossInputError(
                f"student ({student.shape[1]}-d), teacher ({teacher.shape[1]}-d) and negatives "
                f"({negatives.shape[2]}-d) must share one size: project the student first"
            )
        neg = l2n(negatives.detach().to(student.dtype))
        s_rel = torch.einsum("bd,bkd->bk", l2n(student), neg)
        t_rel = torch.einsum("bd,bkd->bk", l2n(teacher.detach().to(student.dtype)), neg)
        return ((s_rel - t_rel) ** 2).mean()
