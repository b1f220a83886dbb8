"""ShrinkTeaNet's angular distillation (Duong et al., arXiv 1905.10620, 2019).

Final stage: match the *direction* of the student's embedding to the teacher's on the hypersphere; sample
distribution: match the teacher's pairwise angles inside a batch; intermediate stages: the same angular loss
on feature maps through 1×1 conv adapters (or on pooled vectors). Teacher inputs are detached: the teacher
is never trained by these losses. The project notes (methods.md §1) say which parts are the paper's and
which are ours.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from shrinkface.train.losses.common import LossInputError, ProjectionHead, check_pair, l2n
from shrinkface.train.losses.ensemble import ensemble_weights


def angular_terms(student: torch.Tensor, teacher: torch.Tensor, squared: bool) -> torch.Tensor:
    """Per-sample 1 − ŝ·t̂ (or its square)."""
    d = 1.0 - (l2n(student) * l2n(teacher.detach())).sum(dim=1)
    return d * d if squared else d


class AngularDistillation(nn.Module):
    """Final-stage angular distillation loss (ADL), arXiv 1905.10620.

    L_adl = mean_i (1 − ŝ_i·t̂_i) = mean_i ½‖ŝ_i − t̂_i‖²; with ``squared``: mean_i (1 − ŝ_i·t̂_i)²
    (VarGFaceNet's Eq. 4, arXiv 1910.04985). ŝ = s/‖s‖ after the optional ``projection`` (a
    ``ProjectionHead(student_dim, teacher_dim)`` when the sizes differ; it is trained with the student and
    dropped at export). Usually added to a margin softmax: L = L_arcface + λ·L_adl.
    """

    def __init__(self, squared: bool = False, projection: nn.Module | None = None) -> None:
        super().__init__()
        self.squared = squared
        self.projection = projection if projection is not None else nn.Identity()

    @classmethod
    def for_dims(cls, student_dim: int, teacher_dim: int, squared: bool = False) -> AngularDistillation:
        """An ADL with a ``ProjectionHead`` when the student and teacher sizes differ, none otherwise."""
        projection = ProjectionHead(student_dim, teacher_dim) if student_dim != teacher_dim else None
        return cls(squared=squared, projection=projection)

    def forward(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        projected = self.projection(student)
        check_pair(projected, teacher)
        return angular_terms(projected, teacher, self.squared).mean()


def gram(x: torch.Tensor) -> torch.Tensor:
    """Cosine-similarity matrix x̂ x̂ᵀ of a batch."""
    xn = l2n(x)
    return xn @ xn.t()


class SampleDistribution(nn.Module):
    """Sample-distribution term [ours, after the abstract of arXiv 1905.10620]: match pairwise angles.

    L_sd = mean_{i≠j} (ŝ_i·ŝ_j − t̂_i·t̂_j)², over the B(B−1) ordered pairs of the batch. It needs no common
    embedding size. For an ensemble pass a list of teacher batches: the target is the weighted mean of their
    cosine matrices, Σ_k w_k t̂ᵏ_i·t̂ᵏ_j with Σ_k w_k = 1 (``weights``, uniform by default).
    """

    def forward(
        self,
        student: torch.Tensor,
        teacher: torch.Tensor | Sequence[torch.Tensor],
        weights: Sequence[float] | None = None,
    ) -> torch.Tensor:
        teachers = [teacher] if isinstance(teacher, torch.Tensor) else list(teacher)
        if not teachers:
            raise LossInputError("SampleDistribution needs at least one teacher batch")
        for t in teachers:
            check_pair(student, t, same_dim=False, min_rows=2)
        w = ensemble_weights(weights, len(teachers))
        target = sum(wk * gram(t.detach()) for wk, t in zip(w, teachers, strict=True))
        diff = gram(student) - target
        n = student.shape[0]
        off_diagonal = ~torch.eye(n, dtype=torch.bool, device=student.device)
        return (diff * diff)[off_diagonal].mean()


class IntermediateAngularDistillation(nn.Module):
    """Intermediate-stage ADL [ours, after arXiv 1905.10620]: the angular loss on stage feature maps.

    For each tapped stage k with student map S (N×C_s×H×W) and teacher map T (N×C_t×H'×W'):
    - ``mode="adapter"``: A_k = 1×1 conv C_s → C_t (trained, dropped at export); both maps are average-pooled
      to the smaller spatial size, flattened to vectors u = vec(A_k S), v = vec(T), and
      L_k = mean_i (1 − û_i·v̂_i);
    - ``mode="pool"``: global average pooling to N×C, a bias-free linear C_s → C_t when the channels differ,
      then the same angular term.
    L = Σ_k w_k L_k / Σ_k w_k (uniform w by default); ``squared`` squares each 1 − cos as in
    ``AngularDistillation``.
    ``channels`` maps a stage key (e.g. the students' ``s4``, ``s8``, ``s16``) to (student C, teacher C).
    """

    def __init__(
        self,
        channels: Mapping[str, tuple[int, int]],
        mode: Literal["adapter", "pool"] = "adapter",
        squared: bool = False,
        weights: Mapping[str, float] | None = None,
    ) -> None:
        super().__init__()
        if not channels:
            raise LossInputError("IntermediateAngularDistillation needs at least one stage")
        if mode not in ("adapter", "pool"):
            raise LossInputError(f"mode must be 'adapter' or 'pool', got {mode!r}")
        self.mode = mode
        self.squared = squared
        self.keys = list(channels)
        self.weights = {k: float((weights or {}).get(k, 1.0)) for k in self.keys}
        if min(self.weights.values()) < 0 or sum(self.weights.values()) <= 0:
            raise LossInputError(f"stage weights must be non-negative with a positive sum, got {self.weights}")
        self.channels = {k: (int(cs), int(ct)) for k, (cs, ct) in channels.items()}
        adapters: dict[str, nn.Module] = {}
        for key, (cs, ct) in self.channels.items():
            if mode == "adapter":
                adapters[key] = nn.Conv2d(cs, ct, 1, bias=False)
            else:
                adapters[key] = nn.Linear(cs, ct, bias=False) if cs != ct else nn.Identity()
        self.adapters = nn.ModuleDict(adapters)

    def stage_loss(self, key: str, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        """L_k for one stage."""
        cs, ct = self.channels[key]
        if student.dim() != 4 or teacher.dim() != 4:
            raise LossInputError(f"stage {key!r}: feature maps must be N×C×H×W")
        if student.shape[1] != cs or teacher.shape[1] != ct or student.shape[0] != teacher.shape[0]:
            raise LossInputError(
                f"stage {key!r}: expected student N×{cs}×H×W and teacher N×{ct}×H×W with the same N, got "
                f"{tuple(student.shape)} and {tuple(teacher.shape)}"
            )
        teacher = teacher.detach()
        if self.mode == "pool":
            u = self.adapters[key](student.mean(dim=(2, 3)))
            v = teacher.mean(dim=(2, 3))
        else:
            u = self.adapters[key](student)
            size = (min(u.shape[2], teacher.shape[2]), min(u.shape[3], teacher.shape[3]))
            if tuple(u.shape[2:]) != size:
                u = F.adaptive_avg_pool2d(u, size)
            if tuple(teacher.shape[2:]) != size:
                teacher = F.adaptive_avg_pool2d(teacher, size)
            u, v = u.flatten(1), teacher.flatten(1)
        return angular_terms(u, v, self.squared).mean()

    def forward(self, student: Mapping[str, torch.Tensor], teacher: Mapping[str, torch.Tensor]) -> torch.Tensor:
        missing = [k for k in self.keys if k not in student or k not in teacher]
        if missing:
            raise LossInputError(
                f"feature maps missing for stages {missing}; have student {sorted(student)}, teacher {sorted(teacher)}"
            )
        total = sum(self.weights.values())
        return sum(self.weights[k] * self.stage_loss(k, student[k], teacher[k]) for k in self.keys) / total
