"""Combining several teachers' embeddings into one target (loss-side ensemble helpers).

Luo et al. (AAAI 2016) distilled an ensemble of DeepID2+ nets by selecting neurons from all of them; for the
angular losses a common target direction is needed. With weights w_k (Σ w_k = 1, uniform by default):
- ``concat_teachers``: [√w_1·t̂¹, …, √w_K·t̂ᴷ], a unit vector whose cosines are Σ_k w_k cos_k, for teachers
  of any sizes (feed it to ``AngularDistillation`` through a ``ProjectionHead``, or to neuron selection);
- ``mean_teachers``: normalise(Σ_k w_k t̂ᵏ) for teachers that share one embedding space.
``SampleDistribution`` also takes a list of teacher batches directly.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from shrinkface.train.losses.common import LossInputError, check_batch, l2n


def ensemble_weights(weights: Sequence[float] | None, count: int) -> list[float]:
    """Normalised teacher weights (uniform when ``weights`` is None)."""
    if count == 0:
        raise LossInputError("need at least one teacher")
    if weights is None:
        return [1.0 / count] * count
    if len(weights) != count or min(weights) < 0 or sum(weights) <= 0:
        raise LossInputError(f"need {count} non-negative teacher weights with a positive sum, got {weights}")
    total = float(sum(weights))
    return [float(w) / total for w in weights]


def _check(teachers: Sequence[torch.Tensor]) -> None:
    for i, t in enumerate(teachers):
        check_batch(f"teacher {i}", t)
        if t.shape[0] != teachers[0].shape[0]:
            raise LossInputError(f"teacher batches differ in size: {t.shape[0]} vs {teachers[0].shape[0]}")


@torch.no_grad()
def concat_teachers(teachers: Sequence[torch.Tensor], weights: Sequence[float] | None = None) -> torch.Tensor:
    """[√w_k·t̂ᵏ]_k concatenated along the feature axis (N × Σ_k D_k, unit rows)."""
    w = ensemble_weights(weights, len(teachers))
    _check(teachers)
    return torch.cat([wk**0.5 * l2n(t.float()) for wk, t in zip(w, teachers, strict=True)], dim=1)


@torch.no_grad()
def mean_teachers(teachers: Sequence[torch.Tensor], weights: Sequence[float] | None = None) -> torch.Tensor:
    """normalise(Σ_k w_k t̂ᵏ) for teachers of one size (N × D, unit rows)."""
    w = ensemble_weights(weights, len(teachers))
    _check(teachers)
    if len({t.shape[1] for t in teachers}) != 1:
        raise LossInputError("mean_teachers needs teachers of one embedding size; use concat_teachers")
    return l2n(sum(wk * l2n(t.float()) for wk, t in zip(w, teachers, strict=True)))
