"""Verification metrics on similarity scores (higher = more alike; a pair is accepted when score ≥ threshold).

- ``kfold_accuracy``: the LFW 10-fold protocol. For each fold, the threshold that maximises accuracy on the
  other nine folds is applied to the held-out fold; mean ± std (population std, ddof=0, as insightface
  reports) over folds. The best threshold is found exactly over every distinct training score (insightface
  scans a fixed grid); ties between equally good thresholds take the middle one.
- ``pair_roc`` (scikit-learn ``roc_curve``), ``tar_at_far``, ``eer``, ``auc`` on a ``Roc`` of integer counts.
- ``ensemble_scores``: z-score each model's scores with that model's own mean and std, then sum.

Pairs whose image could not be used (failed alignment) are marked invalid, never dropped: they never influence
a threshold and always count as errors in accuracy; in a ROC they score −∞ (a genuine pair is always rejected,
an impostor pair is accepted only at threshold −∞).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def _check_scores(scores: np.ndarray, issame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64)
    issame = np.asarray(issame)
    if scores.ndim != 1 or scores.shape != issame.shape:
        raise ValueError(f"scores {scores.shape} and issame {issame.shape} must be 1-D of the same length")
    if issame.dtype != bool:
        raise ValueError(f"issame must be bool, got {issame.dtype}")
    if not np.isfinite(scores).all():
        raise ValueError("scores contain NaN or infinity; mark unusable pairs with valid=False instead")
    return scores, issame


def accuracy(scores: np.ndarray, issame: np.ndarray, threshold: float) -> float:
    """Fraction of pairs decided correctly by ``score >= threshold`` → same person."""
    scores, issame = _check_scores(scores, issame)
    if scores.size == 0:
        raise ValueError("no pairs")
    return float(np.mean((scores >= threshold) == issame))


def best_threshold(scores: np.ndarray, issame: np.ndarray) -> tuple[float, float]:
    """The accuracy-maximising threshold and its accuracy, exact over all distinct scores.

    Candidates: just below the lowest score (accept all), the midpoints between consecutive distinct scores,
    just above the highest (accept none). Ties: the middle candidate among the maximisers.
    """
    scores, issame = _check_scores(scores, issame)
    if scores.size == 0:
        raise ValueError("no pairs to choose a threshold on")
    u = np.unique(scores)
    pos = np.sort(scores[issame])
    neg = np.sort(scores[~issame])
    # Candidate k accepts exactly the scores >= u[k] (k = 0..M-1); candidate M accepts none.
    pos_below = np.searchsorted(pos, u, side="left")
    neg_below = np.searchsorted(neg, u, side="left")
    correct = np.concatenate([(pos.size - pos_below) + neg_below, [neg.size]])
    best = np.flatnonzero(correct == correct.max())
    k = int(best[len(best) // 2])
    if k == 0:
        thr = np.nextafter(u[0], -np.inf)
    elif k == u.size:
        thr = np.nextafter(u[-1], np.inf)
    else:
        thr = (u[k - 1] + u[k]) / 2.0
    return float(thr), float(correct[k] / scores.size)


@dataclass(frozen=True)
class KFoldResult:
    """Per-fold accuracies and the thresholds chosen on the other folds."""

    accuracies: np.ndarray
    thresholds: np.ndarray
    n_invalid: int = 0
    right: np.ndarray | None = None  # per pair: decided correctly at its fold's threshold (invalid: False)

    @property
    def mean(self) -> float:
        """Mean accuracy over folds."""
        return float(self.accuracies.mean())

    @property
    def std(self) -> float:
        """Population std (ddof=0) of the fold accuracies."""
        return float(self.accuracies.std())

    @property
    def mean_threshold(self) -> float:
        """Mean of the per-fold thresholds."""
        return float(self.thresholds.mean())


def kfold_accuracy(
    scores: np.ndarray, issame: np.ndarray, folds: np.ndarray, valid: np.ndarray | None = None
) -> KFoldResult:
    """Leave-one-fold-out accuracy: threshold from the other folds' valid pairs; invalid ones count wrong."""
    issame = np.asarray(issame)
    valid = np.ones(len(issame), dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    scores = np.where(valid, np.asarray(scores, dtype=np.float64), 0.0)  # invalid scores are never used
    scores, issame = _check_scores(scores, issame)
    folds = np.asarray(folds)
    if folds.shape != scores.shape or valid.shape != scores.shape:
        raise ValueError("folds and valid must match scores in shape")
    fold_ids = np.unique(folds)
    if fold_ids.size < 2:
        raise ValueError(f"k-fold accuracy needs at least 2 folds, got {fold_ids.size}")
    accs, thrs = [], []
    right = np.zeros(scores.shape, dtype=bool)
    for f in fold_ids:
        test = folds == f
        train = ~test & valid
        thr, _ = best_threshold(scores[train], issame[train])
        right[test] = valid[test] & ((scores[test] >= thr) == issame[test])
        accs.append(right[test].mean())
        thrs.append(thr)
    return KFoldResult(np.array(accs), np.array(thrs), int((~valid).sum()), right)


def mcnemar_exact(b: int, c: int) -> float:
    """McNemar's exact two-sided p for paired decisions (McNemar 1947): b pairs only the first gets right, c only
    the second; p = min(1, 2 · P(X ≤ min(b, c))), X ~ Binomial(b + c, ½); 1 when b + c = 0."""
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1))
    return min(1.0, 2 * tail / 2**n)


@dataclass(frozen=True)
class Roc:
    """A ROC curve as integer counts, thresholds decreasing (accept score ≥ threshold); starts at (0, 0)."""

    fp: np.ndarray
    tp: np.ndarray
    thresholds: np.ndarray
    n_pos: int
    n_neg: int

    @property
    def fpr(self) -> np.ndarray:
        """False-accept rate at each threshold."""
        return self.fp / max(self.n_neg, 1)

    @property
    def tpr(self) -> np.ndarray:
        """True-accept rate at each threshold."""
        return self.tp / max(self.n_pos, 1)


def pair_roc(scores: np.ndarray, issame: np.ndarray, valid: np.ndarray | None = None) -> Roc:
    """ROC of scored pairs via ``sklearn.metrics.roc_curve``; invalid pairs score below every other pair."""
    from sklearn.metrics import roc_curve

    scores, issame = _check_scores(scores, issame)
    valid = np.ones(scores.shape, dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    if issame.all() or not issame.any():
        raise ValueError("a ROC needs both genuine and impostor pairs")
    fpr, tpr, thr = roc_curve(issame[valid], scores[valid], drop_intermediate=False)
    n_pos, n_neg = int(issame.sum()), int((~issame).sum())
    fp = np.rint(fpr * (~issame[valid]).sum()).astype(np.int64)
    tp = np.rint(tpr * issame[valid].sum()).astype(np.int64)
    if (~valid).any():  # the invalid pairs join only at threshold −∞
        fp, tp, thr = np.append(fp, n_neg), np.append(tp, n_pos), np.append(thr, -np.inf)
    return Roc(fp, tp, thr.astype(np.float64), n_pos, n_neg)


def auc(roc: Roc) -> float:
    """Area under the ROC (trapezoids; ties count one half, as in ``roc_auc_score``)."""
    return float(np.trapezoid(roc.tpr, roc.fpr))


def eer(roc: Roc) -> float:
    """Equal error rate: where FAR = 1 − TAR, linearly interpolated between ROC points."""
    fpr, fnr = roc.fpr, 1.0 - roc.tpr
    d = fnr - fpr  # decreasing from 1 to −1 along the curve
    i = int(np.argmax(d <= 0))
    if i == 0:
        return float(fpr[0])
    t = d[i - 1] / (d[i - 1] - d[i])
    return float(fpr[i - 1] + t * (fpr[i] - fpr[i - 1]))


@dataclass(frozen=True)
class TarAtFar:
    """TAR at one FAR target: the best point whose false accepts stay within ``floor(far · n_neg)``."""

    far: float
    tar: float
    threshold: float  # the strictest threshold reaching this TAR (accept score ≥ threshold)
    far_actual: float
    resolvable: bool  # far · n_neg ≥ 1: the target FAR allows at least one false accept


def tar_at_far(roc: Roc, fars: Sequence[float] = (1e-3, 1e-4, 1e-5)) -> list[TarAtFar]:
    """Largest TAR with FAR ≤ target for each target (one entry per target)."""
    out = []
    for far in fars:
        allowed = int(np.floor(far * roc.n_neg + 1e-9))
        ok = np.flatnonzero(roc.fp <= allowed)  # a prefix: fp is non-decreasing
        best_tp = roc.tp[ok[-1]]
        i = int(ok[np.argmax(roc.tp[ok] == best_tp)])  # first (strictest) point with that TAR
        out.append(
            TarAtFar(
                far=float(far),
                tar=float(best_tp / max(roc.n_pos, 1)),
                threshold=float(roc.thresholds[i]),
                far_actual=float(roc.fp[i] / max(roc.n_neg, 1)),
                resolvable=far * roc.n_neg >= 1,
            )
        )
    return out


def zscore_stats(scores: np.ndarray) -> tuple[float, float]:
    """Mean and (population) std of one model's scores; the std must be positive."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size < 2 or not np.isfinite(scores).all():
        raise ValueError("z-scoring needs at least two finite scores")
    std = float(scores.std())
    if std <= 0:
        raise ValueError("z-scoring needs scores that are not all equal")
    return float(scores.mean()), std


def ensemble_scores(score_arrays: Sequence[np.ndarray]) -> np.ndarray:
    """Score-level ensemble: Σ_m (s_m − mean(s_m)) / std(s_m), each model z-scored on its own scores.

    Every array holds one model's scores of the same pairs, in the same order. The statistics use no labels
    (only the score distribution), so a threshold can still be chosen by the 10-fold protocol afterwards.
    """
    if len(score_arrays) == 0:
        raise ValueError("an ensemble needs at least one model's scores")
    arrays = [np.asarray(s, dtype=np.float64) for s in score_arrays]
    shape = arrays[0].shape
    if any(a.shape != shape or a.ndim != 1 for a in arrays):
        raise ValueError(f"all score arrays must be 1-D with the same length, got {[a.shape for a in arrays]}")
    total = np.zeros(shape)
    for a in arrays:
        mean, std = zscore_stats(a)
        total += (a - mean) / std
    return total


def tar_curve(roc: Roc, fars: np.ndarray) -> np.ndarray:
    """TAR at each FAR of ``fars`` (vectorised ``tar_at_far``), for plotting on a log-FAR axis."""
    allowed = np.floor(np.asarray(fars, dtype=np.float64) * roc.n_neg + 1e-9)
    idx = np.searchsorted(roc.fp, allowed, side="right") - 1
    return roc.tp[np.maximum(idx, 0)] / max(roc.n_pos, 1)
