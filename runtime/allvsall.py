"""All-vs-all verification: every pair of images, genuine = same person, impostor = different people.

On LFW's 13,233 images that is ~242 k genuine and ~87.3 M impostor pairs, enough to measure TAR at FAR 1e-5.
Nothing of size N² is kept: genuine scores are computed per identity and kept (they are few); impostor scores
are computed by row blocks of the embedding matrix (upper triangle only) and each is binned among the
sorted distinct genuine scores with ``np.searchsorted``. Those counts give the exact ROC at every genuine
score, which holds every optimal operating point, and so exact TAR@FAR, AUC and EER (ties between a genuine
and an impostor score are kept as ties, as ``sklearn.metrics.roc_curve`` does).

Ensemble: z-scoring is affine, so Σ_m (e_m,i·e_m,j − μ_m)/σ_m = ê_i·ê_j − Σ_m μ_m/σ_m with ê = [e_m/√σ_m]_m;
``ensemble_embeddings`` returns ê and the offset, with μ_m, σ_m the mean and std of model m's scores over ALL
pairs i < j (genuine + impostor, no labels used), computed in closed form from Σe and EᵀE.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from shrinkface.runtime.metrics import Roc


def _pair_counts(labels: np.ndarray) -> tuple[int, int]:
    """(genuine, impostor) pair counts among ``labels``."""
    _, counts = np.unique(labels, return_counts=True)
    n = labels.size
    gen = int((counts * (counts - 1) // 2).sum())
    return gen, n * (n - 1) // 2 - gen


def genuine_scores(emb: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Scores of all same-label pairs i < j (float32), computed identity by identity."""
    order = np.argsort(labels, kind="stable")
    lab = labels[order]
    starts = np.flatnonzero(np.r_[True, lab[1:] != lab[:-1]])
    ends = np.r_[starts[1:], lab.size]
    parts = []
    for s, e in zip(starts, ends, strict=True):
        if e - s < 2:
            continue
        g = emb[order[s:e]]
        parts.append((g @ g.T)[np.triu_indices(e - s, k=1)])
    return np.concatenate(parts).astype(np.float32) if parts else np.empty(0, np.float32)


def all_vs_all_roc(
    emb: np.ndarray,
    labels: np.ndarray,
    valid: np.ndarray | None = None,
    offset: float = 0.0,
    block: int = 1024,
    progress: bool = False,
) -> Roc:
    """Exact ROC over every image pair; score(i, j) = emb_i · emb_j − offset.

    ``valid`` marks images that have an embedding; pairs involving an invalid image still count (score −∞: a
    genuine one is never accepted), so a failed image lowers TAR instead of vanishing.
    """
    emb = np.asarray(emb, dtype=np.float32)
    labels = np.asarray(labels)
    if emb.ndim != 2 or labels.shape != (emb.shape[0],):
        raise ValueError(f"need emb (N, D) and labels (N,), got {emb.shape} and {labels.shape}")
    valid = np.ones(labels.shape, dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    if valid.shape != labels.shape:
        raise ValueError("valid must have one entry per image")
    n_gen_all, n_imp_all = _pair_counts(labels)
    e, lab = emb[valid], labels[valid]
    if not np.isfinite(e).all():
        raise ValueError("embeddings of valid images contain NaN or infinity")
    gen = genuine_scores(e, lab)
    n_gen, n_imp = _pair_counts(lab)
    if n_gen == 0 or n_imp == 0:
        raise ValueError("all-vs-all needs at least one genuine and one impostor pair among the valid images")
    u, g_count = np.unique(gen, return_counts=True)
    m = u.size
    above = np.zeros(m + 1, np.int64)  # impostors strictly between u[r-1] and u[r] (r = #u below them)
    ties = np.zeros(m, np.int64)  # impostors equal to u[k]
    n = lab.size
    starts = range(0, n, block)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc="all-vs-all", unit="block")
    for i0 in starts:
        i1 = min(i0 + block, n)
        s = e[i0:i1] @ e[i0:].T
        rows = np.arange(i0, i1)[:, None]
        cols = np.arange(i0, n)[None, :]
        x = s[(cols > rows) & (lab[i0:i1, None] != lab[None, i0:])]
        r = np.searchsorted(u, x, side="right")
        tie = u[np.maximum(r - 1, 0)] == x
        tie &= r > 0
        ties += np.bincount(r[tie] - 1, minlength=m)
        above += np.bincount(r[~tie], minlength=m + 1)
    # counts at each genuine threshold: "> u[k]" (end of a horizontal run) and ">= u[k]" (the vertex)
    imp_gt = np.cumsum((above[1:] + np.r_[ties[1:], 0])[::-1])[::-1]
    imp_ge = imp_gt + ties
    gen_ge = np.cumsum(g_count[::-1])[::-1]
    gen_gt = gen_ge - g_count
    above_thr = np.nextafter(u, np.float32(np.inf)).astype(np.float64)
    fp = np.column_stack([imp_gt, imp_ge])[::-1].ravel()
    tp = np.column_stack([gen_gt, gen_ge])[::-1].ravel()
    thr = np.column_stack([above_thr, u.astype(np.float64)])[::-1].ravel() - offset
    fp = np.r_[0, fp, n_imp]
    tp = np.r_[0, tp, n_gen]
    thr = np.r_[np.inf, thr, -np.finfo(np.float64).max]
    if n_imp_all > n_imp or n_gen_all > n_gen:
        fp, tp, thr = np.r_[fp, n_imp_all], np.r_[tp, n_gen_all], np.r_[thr, -np.inf]
    else:
        thr[-1] = -np.inf
    keep = np.r_[True, (np.diff(fp) != 0) | (np.diff(tp) != 0)]
    return Roc(fp[keep], tp[keep], thr[keep], n_gen_all, n_imp_all)


def all_pair_stats(emb: np.ndarray) -> tuple[float, float]:
    """Mean and population std of emb_i · emb_j over all pairs i < j, in closed form (float64).

    Σ_{i<j} s_ij = (‖Σ_i e_i‖² − Σ_i ‖e_i‖²) / 2 and Σ_{i<j} s_ij² = (‖EᵀE‖_F² − Σ_i ‖e_i‖⁴) / 2.
    """
    e = np.asarray(emb, dtype=np.float64)
    n = e.shape[0]
    if n < 3:
        raise ValueError("pair statistics need at least 3 images")
    sq = (e * e).sum(axis=1)
    pairs = n * (n - 1) / 2
    s1 = (np.square(e.sum(axis=0)).sum() - sq.sum()) / 2
    s2 = (np.square(e.T @ e).sum() - np.square(sq).sum()) / 2
    mean = s1 / pairs
    var = s2 / pairs - mean**2
    if var <= 0:
        raise ValueError("all pair scores are equal; cannot z-score")
    return float(mean), float(np.sqrt(var))


def ensemble_embeddings(
    embeddings: Sequence[np.ndarray], valid: np.ndarray | None = None
) -> tuple[np.ndarray, float, list[tuple[float, float]]]:
    """(ê, offset, [(μ_m, σ_m)]) so that ê_i·ê_j − offset = Σ_m z-scored model-m score of pair (i, j)."""
    if not embeddings:
        raise ValueError("an ensemble needs at least one model")
    n = embeddings[0].shape[0]
    if any(np.ndim(x) != 2 or x.shape[0] != n for x in embeddings):
        raise ValueError("every model's embeddings must be (N, D_m) over the same N images")
    valid = np.ones(n, dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    parts, offset, stats = [], 0.0, []
    for x in embeddings:
        x = np.asarray(x, dtype=np.float64)
        mean, std = all_pair_stats(x[valid])
        stats.append((mean, std))
        parts.append(x / np.sqrt(std))
        offset += mean / std
    return np.concatenate(parts, axis=1).astype(np.float32), offset, stats
