"""Shared by the losses: the typed input error, shape checks, L2 normalisation, the projection head."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from shrinkface.runtime.errors import ExitCode, ShrinkfaceError

EPS = 1e-12


class LossInputError(ShrinkfaceError, ValueError):
    """A loss was given inputs or settings it cannot use (shapes, dimensions, labels, hyper-parameters)."""

    exit_code = ExitCode.USAGE


def l2n(x: torch.Tensor) -> torch.Tensor:
    """Row-wise L2 normalisation (zero rows stay zero instead of NaN)."""
    return F.normalize(x, dim=-1, eps=EPS)


def check_batch(name: str, x: torch.Tensor, min_rows: int = 1) -> None:
    """``x`` must be a float N×D matrix with at least ``min_rows`` rows."""
    if x.dim() != 2:
        raise LossInputError(f"{name} must be a batch of vectors (N×D), got shape {tuple(x.shape)}")
    if x.shape[0] < min_rows:
        raise LossInputError(f"{name} needs at least {min_rows} rows, got {x.shape[0]}")
    if not x.is_floating_point():
        raise LossInputError(f"{name} must be a floating-point tensor, got {x.dtype}")


def check_pair(student: torch.Tensor, teacher: torch.Tensor, same_dim: bool = True, min_rows: int = 1) -> None:
    """Student and teacher batches: same number of rows, and the same width when ``same_dim``."""
    check_batch("student", student, min_rows)
    check_batch("teacher", teacher, min_rows)
    if student.shape[0] != teacher.shape[0]:
        raise LossInputError(f"student and teacher batches differ in size: {student.shape[0]} vs {teacher.shape[0]}")
    if same_dim and student.shape[1] != teacher.shape[1]:
        raise LossInputError(
            f"student ({student.shape[1]}-d) and teacher ({teacher.shape[1]}-d) embeddings differ in size: "
            "pass a ProjectionHead(student_dim, teacher_dim)"
        )


def check_labels(labels: torch.Tensor, batch: int, num_classes: int) -> None:
    """Integer labels, one per row, in [0, num_classes)."""
    if labels.dim() != 1 or labels.shape[0] != batch:
        raise LossInputError(f"labels must be a vector of {batch} class indices, got shape {tuple(labels.shape)}")
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise LossInputError(f"labels must be integer class indices, got {labels.dtype}")
    if batch and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise LossInputError(f"labels must lie in [0, {num_classes}), got [{int(labels.min())}, {int(labels.max())}]")


class ProjectionHead(nn.Module):
    """A bias-free linear map from the student's embedding size to the teacher's, used only in training."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        if in_dim <= 0 or out_dim <= 0:
            raise LossInputError(f"ProjectionHead needs positive sizes, got {in_dim} → {out_dim}")
        self.in_dim = in_dim
        self.out_dim = out_dim
        self.linear = nn.Linear(in_dim, out_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.in_dim:
            raise LossInputError(f"ProjectionHead expects {self.in_dim}-d input, got {x.shape[-1]}-d")
        return self.linear(x)
