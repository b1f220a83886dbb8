"""Margin softmax losses on a cosine classifier: ArcFace and CosFace (the no-distillation baselines).

Both normalise the embedding x and the class weights W (rows) so that logit_j = s·cos θ_j, cos θ_j = x̂·Ŵ_j,
then add a margin to the target class only and take the cross-entropy.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from shrinkface.train.losses.common import LossInputError, check_batch, check_labels, l2n


def arc_margin_target(cos_y: torch.Tensor, m: float | torch.Tensor, easy_margin: bool = False) -> torch.Tensor:
    """cos(θ_y + m) for the target cosines, with insightface's fallback where θ_y + m would pass π.

    ``cos(θ+m) = cos θ·cos m − sin θ·sin m``. cos is not monotonic beyond π, so (insightface
    ``ArcMarginProduct``) where θ_y > π − m, i.e. cos θ_y ≤ th = cos(π − m), the logit becomes the
    CosFace-like ``cos θ_y − mm`` with mm = sin(π − m)·m (monotonic in θ; a small step of 1 − cos m − m·sin m
    at the switch).
    ``easy_margin`` instead applies the margin only where cos θ_y > 0 and leaves it off elsewhere.
    ``m`` is a float or a per-sample tensor shaped like ``cos_y``.
    """
    m_t = torch.as_tensor(m, dtype=cos_y.dtype, device=cos_y.device)
    cos_m, sin_m = torch.cos(m_t), torch.sin(m_t)
    sin2 = 1.0 - cos_y * cos_y
    positive = sin2 > 0  # at cos θ = ±1, sin θ = 0 with a zero (not NaN) gradient
    sin_y = torch.where(positive, torch.sqrt(torch.where(positive, sin2, torch.ones_like(sin2))), 0.0)
    phi = cos_y * cos_m - sin_y * sin_m
    if easy_margin:
        return torch.where(cos_y > 0, phi, cos_y)
    th = torch.cos(math.pi - m_t)
    mm = torch.sin(math.pi - m_t) * m_t
    return torch.where(cos_y > th, phi, cos_y - mm)


def arcface_logits(
    cos: torch.Tensor, labels: torch.Tensor, s: float, m: float | torch.Tensor, easy_margin: bool = False
) -> torch.Tensor:
    """s·cos θ_j for j ≠ y and s·cos(θ_y + m) for the target (``m`` float or per-sample N-vector)."""
    idx = labels.view(-1, 1)
    cos_y = cos.gather(1, idx).squeeze(1)
    target = arc_margin_target(cos_y, m, easy_margin)
    return s * cos.scatter(1, idx, target.unsqueeze(1).to(cos.dtype))


class CosineClassifier(nn.Module):
    """Class weights W (num_classes × embedding_size); ``cosine(x)`` = x̂ Ŵᵀ clamped to [−1, 1]."""

    def __init__(self, embedding_size: int, num_classes: int, s: float) -> None:
        super().__init__()
        if embedding_size <= 0 or num_classes < 2:
            raise LossInputError(f"need embedding_size > 0 and at least 2 classes, got {embedding_size}, {num_classes}")
        if s <= 0:
            raise LossInputError(f"scale s must be positive, got {s}")
        self.embedding_size = embedding_size
        self.num_classes = num_classes
        self.s = float(s)
        self.weight = nn.Parameter(torch.empty(num_classes, embedding_size))
        nn.init.normal_(self.weight, 0.0, 0.01)

    def cosine(self, embeddings: torch.Tensor) -> torch.Tensor:
        check_batch("embeddings", embeddings)
        if embeddings.shape[1] != self.embedding_size:
            raise LossInputError(
                f"{type(self).__name__} expects {self.embedding_size}-d embeddings, got {embeddings.shape[1]}-d"
            )
        w = l2n(self.weight).to(embeddings.dtype)
        return (l2n(embeddings) @ w.t()).clamp(-1.0, 1.0)

    @torch.no_grad()
    def init_from_centres(self, centres: torch.Tensor) -> None:
        """Copy (normalised) class centres into W: the stage-2 'initialisation trick' (Wang et al. 2017)."""
        if tuple(centres.shape) != tuple(self.weight.shape):
            raise LossInputError(
                f"centres shape {tuple(centres.shape)} does not match the classifier {tuple(self.weight.shape)}"
            )
        self.weight.copy_(l2n(centres.to(self.weight)))

    def logits(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of the margin logits."""
        return F.cross_entropy(self.logits(embeddings, labels), labels)


class ArcFace(CosineClassifier):
    """Additive angular margin (Deng et al., ArcFace, arXiv 1801.07698).

    L = −mean_i log( e^{s·cos(θ_{y_i}+m)} / (e^{s·cos(θ_{y_i}+m)} + Σ_{j≠y_i} e^{s·cos θ_j}) ),
    s = 64, m = 0.5.
    Where θ_y + m > π the target logit falls back to s·(cos θ_y − sin(m)·m) (insightface's ``th``/``mm``), or,
    with ``easy_margin``, the margin is applied only where cos θ_y > 0. See ``arc_margin_target``.
    """

    def __init__(
        self,
        embedding_size: int,
        num_classes: int,
        s: float = 64.0,
        m: float = 0.5,
        easy_margin: bool = False,
    ) -> None:
        super().__init__(embedding_size, num_classes, s)
        if not 0.0 <= m < math.pi / 2:
            raise LossInputError(f"ArcFace margin m must be in [0, π/2), got {m}")
        self.m = float(m)
        self.easy_margin = easy_margin

    def logits(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cos = self.cosine(embeddings)
        check_labels(labels, cos.shape[0], self.num_classes)
        return arcface_logits(cos, labels, self.s, self.m, self.easy_margin)


class CosFace(CosineClassifier):
    """Additive cosine margin (Wang et al., CosFace, arXiv 1801.09414; = AM-Softmax, arXiv 1801.05599).

    L = −mean_i log( e^{s(cos θ_{y_i} − m)} / (e^{s(cos θ_{y_i} − m)} + Σ_{j≠y_i} e^{s·cos θ_j}) ), s = 64,
    m = 0.35 (the paper's choice; insightface uses 0.4).
    """

    def __init__(self, embedding_size: int, num_classes: int, s: float = 64.0, m: float = 0.35) -> None:
        super().__init__(embedding_size, num_classes, s)
        if not 0.0 <= m < 1.0:
            raise LossInputError(f"CosFace margin m must be in [0, 1), got {m}")
        self.m = float(m)

    def logits(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cos = self.cosine(embeddings)
        check_labels(labels, cos.shape[0], self.num_classes)
        margin = F.one_hot(labels, self.num_classes).to(cos.dtype) * self.m
        return self.s * (cos - margin)
