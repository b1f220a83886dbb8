"""Knowledge transfer from face classification (Wang et al., arXiv 1709.02929, 2017).

Stage 1 [ours, after the abstract]: train the student as a classifier on the teacher's soft targets (Hinton KD
with a temperature), the teacher's logits being its cosines to the class centres W. Stage 2: initialise the
verification student from stage 1 and its margin classifier from W (the "initialisation trick",
``init_classifier_from_centres``), then fine-tune with a margin softmax plus an angular loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from shrinkface.train.losses.common import LossInputError, check_batch, check_labels, check_pair, l2n
from shrinkface.train.losses.margin import CosineClassifier


class CosineKD(nn.Module):
    """Hinton KD (arXiv 1503.02531) on cosine logits against class centres.

    Teacher logits z^t_ij = s·t̂_i·Ŵ_j (W = teacher centres, frozen); student logits z^s_ij = s·ŝ_i·V̂_j with
    a trained student classifier V (initialised from W when the sizes match, small random otherwise).
    L = α·T²·mean_i KL(softmax(z^t_i/T) ‖ softmax(z^s_i/T)) + (1 − α)·CE(z^s_i, y_i); the T² keeps the
    gradient scale independent of T. Defaults s = 64, T = 4 (effective scale 16), α = 1 (soft targets only;
    labels are needed only when α < 1).
    """

    def __init__(
        self,
        centres: torch.Tensor,
        s: float = 64.0,
        temperature: float = 4.0,
        alpha: float = 1.0,
        student_dim: int | None = None,
    ) -> None:
        super().__init__()
        check_batch("centres", centres, min_rows=2)
        if s <= 0 or temperature <= 0 or not 0.0 <= alpha <= 1.0:
            raise LossInputError(f"need s > 0, temperature > 0, 0 ≤ alpha ≤ 1; got {s}, {temperature}, {alpha}")
        self.register_buffer("centres", l2n(centres.detach().float()))
        self.num_classes, teacher_dim = self.centres.shape
        self.student_dim = teacher_dim if student_dim is None else student_dim
        self.s, self.temperature, self.alpha = float(s), float(temperature), float(alpha)
        self.weight = nn.Parameter(torch.empty(self.num_classes, self.student_dim))
        with torch.no_grad():
            if self.student_dim == teacher_dim:
                self.weight.copy_(self.centres)
            else:
                nn.init.normal_(self.weight, 0.0, 0.01)

    def teacher_logits(self, teacher: torch.Tensor) -> torch.Tensor:
        check_batch("teacher", teacher)
        if teacher.shape[1] != self.centres.shape[1]:
            raise LossInputError(f"teacher is {teacher.shape[1]}-d, the centres are {self.centres.shape[1]}-d")
        return self.s * l2n(teacher.detach().to(self.centres.dtype)) @ self.centres.t()

    def student_logits(self, student: torch.Tensor) -> torch.Tensor:
        check_batch("student", student)
        if student.shape[1] != self.student_dim:
            raise LossInputError(f"expected {self.student_dim}-d student embeddings, got {student.shape[1]}-d")
        return self.s * l2n(student) @ l2n(self.weight).t()

    def forward(self, student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        check_pair(student, teacher, same_dim=False)
        z_s = self.student_logits(student)
        z_t = self.teacher_logits(teacher).to(z_s.dtype)
        t = self.temperature
        kd = F.kl_div(
            F.log_softmax(z_s / t, dim=1),
            F.log_softmax(z_t / t, dim=1),
            reduction="batchmean",
            log_target=True,
        )
        loss = self.alpha * t * t * kd
        if self.alpha < 1.0:
            if labels is None:
                raise LossInputError("CosineKD with alpha < 1 needs labels for its hard-label term")
            check_labels(labels, student.shape[0], self.num_classes)
            loss = loss + (1.0 - self.alpha) * F.cross_entropy(z_s, labels)
        return loss


def init_classifier_from_centres(classifier: CosineClassifier | CosineKD, centres: torch.Tensor) -> None:
    """The stage-2 initialisation trick: set a cosine classifier's class weights to the (normalised) teacher
    centres, e.g. ``init_classifier_from_centres(ArcFace(512, C), teacher_class_centres(t, y))``."""
    if isinstance(classifier, CosineClassifier):
        classifier.init_from_centres(centres)
        return
    if tuple(centres.shape) != tuple(classifier.weight.shape):
        raise LossInputError(
            f"centres shape {tuple(centres.shape)} does not match the classifier {tuple(classifier.weight.shape)}"
        )
    with torch.no_grad():
        classifier.weight.copy_(l2n(centres.to(classifier.weight)))
