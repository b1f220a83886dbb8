"""MarginDistillation (Svitov & Alyamkin, arXiv 2003.02586, 2020; code: david-svitov/margindistillation).

The student is trained with ArcFace against the teacher's class centres W (frozen), with a per-sample margin
that grows with how close the teacher puts the sample to its class centre.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from shrinkface.train.losses.common import LossInputError, check_batch, check_labels, check_pair, l2n
from shrinkface.train.losses.margin import arcface_logits


@torch.no_grad()
def teacher_class_centres(
    embeddings: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray, num_classes: int | None = None
) -> torch.Tensor:
    """W_y = normalise(mean_{i: y_i = y} t̂_i): class centres from teacher embeddings (float32, C×D).

    For black-box teachers without a classifier [ours]: computed once from the teacher cache. Every class in
    [0, num_classes) needs at least one sample.
    """
    t = torch.as_tensor(np.asarray(embeddings) if isinstance(embeddings, np.ndarray) else embeddings)
    y = torch.as_tensor(np.asarray(labels) if isinstance(labels, np.ndarray) else labels)
    check_batch("teacher embeddings", t.float())
    num_classes = int(y.max()) + 1 if num_classes is None else num_classes
    check_labels(y.long(), t.shape[0], num_classes)
    y = y.long()
    counts = torch.bincount(y, minlength=num_classes)
    empty = torch.nonzero(counts == 0).flatten().tolist()
    if empty:
        raise LossInputError(f"classes without teacher embeddings: {empty[:10]}{' …' if len(empty) > 10 else ''}")
    sums = torch.zeros(num_classes, t.shape[1], dtype=torch.float64)
    sums.index_add_(0, y, l2n(t.double()))
    return l2n(sums / counts.unsqueeze(1)).float()


class MarginDistillation(nn.Module):
    """ArcFace with the teacher's frozen class centres and a per-sample margin (arXiv 2003.02586).

    c_i = t̂_i·W_{y_i}, D_max = max_{i∈B} c_i, m_i = (m_max − m_min)/D_max·c_i + m_min (m_max = 0.5,
    m_min = 0.2), and L = −mean_i log softmax(z_i)_{y_i} with z_ij = s·cos θ_ij for j ≠ y_i and
    z_{i,y_i} = s·cos(θ_{i,y_i} + m_i), cos θ_ij = ŝ_i·W_j, s = 64. W is a buffer (never trained).
    [ours] c_i is clipped to [0, D_max] (D_max ≥ 1e-6) so that m_i ∈ [m_min, m_max] even for a teacher sample
    on the wrong side of its centre (identical to the paper whenever every c_i > 0), and θ + m > π falls back
    to insightface's cos θ − sin(m)·m (see ``margin.arc_margin_target``); the authors' code used cos(θ + m)
    unguarded. ``projection`` maps a student of another size to the teacher's (e.g. ``ProjectionHead``).
    """

    def __init__(
        self,
        centres: torch.Tensor,
        s: float = 64.0,
        m_max: float = 0.5,
        m_min: float = 0.2,
        easy_margin: bool = False,
        projection: nn.Module | None = None,
    ) -> None:
        super().__init__()
        check_batch("centres", centres, min_rows=2)
        if not 0.0 <= m_min <= m_max < np.pi / 2:
            raise LossInputError(f"need 0 ≤ m_min ≤ m_max < π/2, got m_min={m_min}, m_max={m_max}")
        if s <= 0:
            raise LossInputError(f"scale s must be positive, got {s}")
        self.register_buffer("centres", l2n(centres.detach().float()))
        self.num_classes, self.embedding_size = self.centres.shape
        self.s = float(s)
        self.m_max = float(m_max)
        self.m_min = float(m_min)
        self.easy_margin = easy_margin
        self.projection = projection if projection is not None else nn.Identity()

    @torch.no_grad()
    def margins(self, teacher: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Per-sample margins m_i (N,)."""
        check_batch("teacher", teacher)
        if teacher.shape[1] != self.embedding_size:
            raise LossInputError(f"teacher is {teacher.shape[1]}-d, the centres are {self.embedding_size}-d")
        check_labels(labels, teacher.shape[0], self.num_classes)
        c = (l2n(teacher.detach().to(self.centres.dtype)) * self.centres[labels]).sum(dim=1).clamp(min=0.0)
        d_max = c.max().clamp(min=1e-6)
        return (self.m_max - self.m_min) / d_max * c + self.m_min

    def logits(self, student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        projected = self.projection(student)
        check_pair(projected, teacher)
        m = self.margins(teacher, labels).to(projected.dtype)
        cos = (l2n(projected) @ self.centres.to(projected.dtype).t()).clamp(-1.0, 1.0)
        return arcface_logits(cos, labels, self.s, m, self.easy_margin)

    def forward(self, student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of the per-sample-margin ArcFace logits."""
        return F.cross_entropy(self.logits(student, teacher, labels), labels)
