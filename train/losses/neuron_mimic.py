"""Distilling knowledge from selected teacher neurons (Luo, Zhu, Liu, Wang, Tang, "Face model compression by
distilling knowledge from neurons", AAAI 2016; code: liuziwei7/mobile-id).

The student regresses a *selected subset* of the teacher's top-layer neurons instead of soft labels. The
paper selected neurons with attribute knowledge; without attribute labels [ours] each teacher dimension is
scored by its Fisher ratio over identities and kept greedily when it is not too correlated with the ones
already kept. For an ensemble, select from the concatenated teachers (``ensemble.concat_teachers``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from shrinkface.train.losses.common import LossInputError, check_batch


def _as_features(features: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels)
    if x.ndim != 2 or y.ndim != 1 or x.shape[0] != y.shape[0]:
        raise LossInputError(f"need N×D features and N labels, got {x.shape} and {y.shape}")
    if len(np.unique(y)) < 2:
        raise LossInputError("neuron selection needs at least two identities")
    if not np.isfinite(x).all():
        raise LossInputError("features contain NaN or infinite values")
    return x, y


def fisher_ratio(features: np.ndarray, labels: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Per dimension d: S_B/S_W with S_B = Σ_c n_c(μ_cd − μ_d)²/N and S_W = Σ_i (x_id − μ_{y_i}d)²/N."""
    x, y = _as_features(features, labels)
    _, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    order = np.argsort(inverse, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    means = np.add.reduceat(x[order], starts, axis=0) / counts[:, None]
    grand = x.mean(axis=0)
    between = (counts[:, None] * (means - grand) ** 2).sum(axis=0) / x.shape[0]
    within = ((x - means[inverse]) ** 2).sum(axis=0) / x.shape[0]
    return between / np.maximum(within, eps)


def select_neurons(
    features: np.ndarray,
    labels: np.ndarray,
    k: int,
    corr_bound: float = 0.5,
    scores: np.ndarray | None = None,
) -> np.ndarray:
    """Greedy decorrelated selection: walk the dimensions by decreasing score (Fisher ratio by default)
    and keep one when |Pearson correlation| with every kept dimension is < ``corr_bound``; stop at ``k``.

    Returns the kept indices in selection order (fewer than ``k`` if the bound rejects the rest). Constant
    dimensions are never kept.
    """
    x, y = _as_features(features, labels)
    if k < 1:
        raise LossInputError(f"k must be ≥ 1, got {k}")
    if not 0.0 < corr_bound <= 1.0:
        raise LossInputError(f"corr_bound must be in (0, 1], got {corr_bound}")
    scores = fisher_ratio(x, y) if scores is None else np.asarray(scores, dtype=np.float64)
    if scores.shape != (x.shape[1],):
        raise LossInputError(f"need one score per dimension ({x.shape[1]}), got {scores.shape}")
    std = x.std(axis=0)
    z = (x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)
    corr = np.abs(z.T @ z) / x.shape[0]  # |Pearson correlation| between every pair of dimensions
    kept: list[int] = []
    for d in np.argsort(-scores, kind="stable"):
        if std[d] == 0 or (kept and corr[d, kept].max() >= corr_bound):
            continue
        kept.append(int(d))
        if len(kept) == k:
            break
    return np.asarray(kept, dtype=np.int64)


@dataclass(frozen=True)
class NeuronSelection:
    """Selected teacher dimensions and the statistics that standardise them: z = (t[indices] − mean)/std."""

    indices: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    teacher_dim: int

    @classmethod
    def fit(cls, features: np.ndarray, labels: np.ndarray, k: int, corr_bound: float = 0.5) -> NeuronSelection:
        """Select up to ``k`` neurons from teacher features (N×D, e.g. the training cache) and their stats."""
        indices = select_neurons(features, labels, k, corr_bound)
        chosen = np.asarray(features, dtype=np.float64)[:, indices]
        return cls(indices, chosen.mean(axis=0), chosen.std(axis=0), int(np.asarray(features).shape[1]))

    @property
    def k(self) -> int:
        return len(self.indices)


class NeuronMimic(nn.Module):
    """Regress the standardised selected teacher neurons (Luo et al., AAAI 2016).

    L = mean_i ‖P·s_i − z_i‖², z_i = (t_i[sel] − μ_sel)/σ_sel, with P a linear head (with bias) on the
    student's embedding (trained, dropped at export), ‖·‖² summed over the k selected neurons. The selection
    and its statistics are buffers, so they travel in the state dict.
    """

    def __init__(self, student_dim: int, selection: NeuronSelection) -> None:
        super().__init__()
        if selection.k == 0:
            raise LossInputError("the neuron selection is empty")
        self.teacher_dim = selection.teacher_dim
        self.register_buffer("indices", torch.as_tensor(selection.indices, dtype=torch.long))
        self.register_buffer("mean", torch.as_tensor(selection.mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(np.maximum(selection.std, 1e-8), dtype=torch.float32))
        self.head = nn.Linear(student_dim, selection.k)

    def targets(self, teacher: torch.Tensor) -> torch.Tensor:
        """z = (t[sel] − μ)/σ for full teacher embeddings (N × teacher_dim)."""
        check_batch("teacher", teacher)
        if teacher.shape[1] != self.teacher_dim:
            raise LossInputError(f"expected {self.teacher_dim}-d teacher embeddings, got {teacher.shape[1]}-d")
        return (teacher.detach()[:, self.indices] - self.mean) / self.std

    def forward(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        check_batch("student", student)
        z = self.targets(teacher)
        if student.shape[0] != z.shape[0]:
            raise LossInputError(f"student and teacher batches differ: {student.shape[0]} vs {z.shape[0]}")
        return ((self.head(student) - z.to(student.dtype)) ** 2).sum(dim=1).mean()
