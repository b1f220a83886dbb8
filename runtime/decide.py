"""Decisions on embeddings: 1:1 unlock, 1:N identify, and the threshold for a target false-accept rate.

Scores are cosine similarities of L2-normalised embeddings. A person's score is the max (or mean) over their
templates, computed for the whole gallery with one matrix product and ``np.maximum.reduceat`` over the
person-sorted template rows, so 100,000 templates take milliseconds. A pair is accepted when its score is at
or above the threshold.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from shrinkface.runtime.card import ModelCard
from shrinkface.runtime.errors import GalleryError, ModelCardError, ShrinkfaceError

Reduce = Literal["max", "mean"]
DEFAULT_FAR = 1 / 50_000


@dataclass(frozen=True)
class TemplateSet:
    """Templates grouped by person: rows of ``embeddings`` for person i are ``starts[i]:starts[i+1]``."""

    names: tuple[str, ...]
    starts: np.ndarray  # (P,) int64, first row of each person
    embeddings: np.ndarray  # (M, D) float32, unit rows
    model_sha256: str = ""

    @classmethod
    def from_owners(cls, owners: Sequence[str], embeddings: np.ndarray, model_sha256: str = "") -> TemplateSet:
        """Group rows by owner name (stable: a person's templates keep their order)."""
        emb = np.asarray(embeddings, dtype=np.float32)
        if emb.ndim != 2 or len(emb) != len(owners) or len(emb) == 0:
            raise GalleryError(f"need one owner per template row, got {len(owners)} owners and {emb.shape}")
        names, inverse = np.unique(np.asarray(owners, dtype=object).astype(str), return_inverse=True)
        order = np.argsort(inverse, kind="stable")
        starts = np.searchsorted(inverse[order], np.arange(len(names)))
        emb = emb[order]
        emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
        return cls(tuple(str(n) for n in names), starts.astype(np.int64), np.ascontiguousarray(emb), model_sha256)

    @property
    def counts(self) -> np.ndarray:
        """Templates per person."""
        return np.diff(np.append(self.starts, len(self.embeddings)))

    def index(self, name: str) -> int:
        """Position of ``name``; ``GalleryError`` listing who is enrolled when absent."""
        try:
            return self.names.index(name)
        except ValueError:
            shown = ", ".join(self.names[:20]) + (" …" if len(self.names) > 20 else "")
            raise GalleryError(f"{name!r} is not enrolled; enrolled: {shown}") from None


def _queries(query: np.ndarray, dim: int) -> np.ndarray:
    q = np.asarray(query, dtype=np.float32)
    q = q[None] if q.ndim == 1 else q
    if q.ndim != 2 or q.shape[1] != dim:
        raise GalleryError(f"query embedding has shape {np.shape(query)}, the gallery's templates are {dim}-d")
    norms = np.linalg.norm(q, axis=1, keepdims=True)
    if not np.all(np.isfinite(q)) or np.any(norms < 1e-6):
        raise GalleryError("query embedding is zero or not finite")
    return q / norms


def person_scores(templates: TemplateSet, query: np.ndarray, reduce: Reduce = "max") -> np.ndarray:
    """(Q, P) score of each query against each person: max or mean cosine over that person's templates."""
    q = _queries(query, templates.embeddings.shape[1])
    sims = templates.embeddings @ q.T  # (M, Q): one matrix product for the whole gallery
    if reduce == "max":
        per_person = np.maximum.reduceat(sims, templates.starts, axis=0)
    elif reduce == "mean":
        per_person = np.add.reduceat(sims, templates.starts, axis=0) / templates.counts[:, None]
    else:
        raise ValueError(f"reduce must be 'max' or 'mean', got {reduce!r}")
    return per_person.T


@dataclass(frozen=True)
class Decision:
    """The outcome of unlock (1:1) or identify (1:N): ``name`` is None when nobody was accepted."""

    name: str | None
    score: float  # the best (or the claimed person's) score
    threshold: float
    candidate: str  # the best-scoring person, accepted or not
    top: tuple[tuple[str, float], ...] = ()

    @property
    def accepted(self) -> bool:
        """Whether the face was accepted."""
        return self.name is not None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "accepted": self.accepted,
            "name": self.name,
            "score": round(self.score, 6),
            "threshold": self.threshold,
            "candidate": self.candidate,
            "top": [{"name": n, "score": round(s, 6)} for n, s in self.top],
        }


def identify(
    templates: TemplateSet, query: np.ndarray, threshold: float, reduce: Reduce = "max", top_k: int = 3
) -> Decision:
    """1:N: the best-scoring person if their score ≥ ``threshold``, else unknown (``name`` None)."""
    scores = person_scores(templates, query, reduce)[0]
    k = min(top_k, len(scores))
    top = np.argpartition(-scores, k - 1)[:k]
    top = top[np.argsort(-scores[top], kind="stable")]
    best = int(top[0])
    score = float(scores[best])
    name = templates.names[best] if score >= threshold else None
    ranked = tuple((templates.names[i], float(scores[i])) for i in top)
    return Decision(name, score, float(threshold), templates.names[best], ranked)


def verify(templates: TemplateSet, query: np.ndarray, name: str, threshold: float, reduce: Reduce = "max") -> Decision:
    """1:1: does ``query`` match the claimed person ``name`` (their score ≥ ``threshold``)?"""
    i = templates.index(name)
    rows = slice(int(templates.starts[i]), int(templates.starts[i]) + int(templates.counts[i]))
    sub = TemplateSet((name,), np.zeros(1, np.int64), templates.embeddings[rows], templates.model_sha256)
    score = float(person_scores(sub, query, reduce)[0, 0])
    return Decision(name if score >= threshold else None, score, float(threshold), name, ((name, score),))


# -- threshold calibration ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Calibration:
    """A threshold chosen for a target FAR, with what it achieves on the calibration scores."""

    threshold: float
    far_target: float
    far: float  # achieved on the impostor scores
    tar: float | None  # on the genuine scores (None when none were given)
    n_impostor: int
    n_genuine: int

    @property
    def resolvable(self) -> bool:
        """Whether there were enough impostor pairs to measure the target FAR (n ≥ 1/FAR)."""
        return self.n_impostor * self.far_target >= 1.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "threshold": self.threshold,
            "far_target": self.far_target,
            "far": self.far,
            "tar": self.tar,
            "n_impostor": self.n_impostor,
            "n_genuine": self.n_genuine,
            "resolvable": self.resolvable,
        }


def _scores(values: Any, what: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).ravel()
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what} scores contain NaN or infinity")
    return arr


def calibrate(impostor_scores: Any, genuine_scores: Any = None, far: float = DEFAULT_FAR) -> Calibration:
    """The smallest threshold t with FAR(t) = #{impostor ≥ t} / n ≤ ``far``, and TAR(t) on the genuine scores.

    With k = ⌊far·n⌋ false accepts allowed, t is the next float above the (k+1)-th highest impostor score, so
    ties at that score are all rejected. With fewer than 1/far impostors, t lies just above the highest one
    (``resolvable`` is then False: the target FAR cannot be measured on so few pairs).
    """
    if not 0.0 < far < 1.0:
        raise ValueError(f"far must be in (0, 1), got {far}")
    imp = _scores(impostor_scores, "impostor")
    if imp.size == 0:
        raise ValueError("calibration needs at least one impostor score")
    gen = _scores(genuine_scores, "genuine") if genuine_scores is not None else np.empty(0)
    allowed = math.floor(far * imp.size + 1e-9)
    kth = np.partition(imp, imp.size - 1 - allowed)[imp.size - 1 - allowed] if allowed < imp.size else -np.inf
    threshold = float(np.nextafter(kth, np.inf))
    achieved = float(np.count_nonzero(imp >= threshold) / imp.size)
    tar = float(np.count_nonzero(gen >= threshold) / gen.size) if gen.size else None
    return Calibration(threshold, float(far), achieved, tar, int(imp.size), int(gen.size))


def pair_scores(
    embeddings: np.ndarray, labels: Sequence[Any], strangers: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """All-pairs cosine scores of labelled embeddings: (impostor scores, genuine scores), each pair once.

    ``strangers`` (unlabelled faces, each assumed to be someone not among the labelled people) add impostor
    pairs with every labelled face, but are never paired with each other: a folder of strangers may hold the
    same person twice, and such a pair would pose as an impostor.
    """
    emb = np.asarray(embeddings, dtype=np.float32)
    emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    lab = np.asarray(labels)
    if len(lab) != len(emb) or len(emb) < 2:
        raise ValueError(f"need ≥ 2 embeddings with one label each, got {len(emb)} and {len(lab)}")
    sims = emb @ emb.T
    upper = np.triu_indices(len(emb), k=1)
    same = (lab[:, None] == lab[None, :])[upper]
    values = sims[upper].astype(np.float64)
    impostor = values[~same]
    if strangers is not None and len(strangers):
        other = np.asarray(strangers, dtype=np.float32)
        other = other / np.linalg.norm(other, axis=1, keepdims=True)
        impostor = np.concatenate([impostor, (other @ emb.T).ravel().astype(np.float64)])
    return impostor, values[same]


# -- the threshold stored with the model card ---------------------------------------------------------------
def calibrated_card(
    card: ModelCard, result: Calibration, model_sha256: str, dataset: str = "", date: str | None = None
) -> ModelCard:
    """``card`` with the calibrated threshold, its FAR, and the calibration provenance in ``extra``: the
    impostor/genuine set (``dataset``), target and achieved FAR, TAR, pair counts, model sha256 and UTC date."""
    from datetime import UTC, datetime

    extra = dict(card.extra)
    when = date or datetime.now(UTC).isoformat(timespec="seconds")
    extra["calibration"] = {**result.to_dict(), "model_sha256": model_sha256, "dataset": dataset, "date": when}
    return card.replace(threshold=result.threshold, threshold_far=result.far_target, extra=extra)


def card_path_for(model: str | Path | None, card_name: str, gallery: str | Path) -> Path:
    """Where a calibrated card lives: ``<model>.card.json`` next to a model file, else
    ``<card name>.card.json`` next to the gallery (asset models live in a read-only cache)."""
    if model is not None and Path(model).is_file():
        path = Path(model)
        return path.with_name(path.name + ".card.json")
    return Path(gallery).expanduser().parent / f"{card_name}.card.json"


def save_card(card: ModelCard, path: str | Path) -> Path:
    """Write the card JSON atomically (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(card.to_dict(), indent=1, sort_keys=True) + "\n")
    tmp.replace(path)
    return path


def load_card(path: str | Path, model_sha256: str | None = None) -> ModelCard:
    """Read a card JSON; with ``model_sha256``, refuse a card calibrated for another model file."""
    path = Path(path)
    try:
        card = ModelCard.from_json(path.read_bytes())
    except OSError as exc:
        raise ModelCardError(f"cannot read model card {path}: {exc}") from exc
    calibrated_for = card.extra.get("calibration", {}).get("model_sha256")
    if model_sha256 and calibrated_for and calibrated_for != model_sha256:
        raise ModelCardError(
            f"{path} was calibrated for model {calibrated_for[:12]}…, not for {model_sha256[:12]}…: "
            "calibrate again (`shrinkface calibrate`) or delete the file"
        )
    return card


def threshold_of(card: ModelCard, override: float | None = None) -> float:
    """``override`` if given, else the card's threshold; a card without one is an error saying what to do."""
    if override is not None:
        if not -1.0 <= override <= 1.0:
            raise ShrinkfaceError(f"--threshold must be a cosine in [-1, 1], got {override}")
        return float(override)
    if card.threshold is None:
        raise ModelCardError(
            f"model {card.name!r} has no decision threshold: run `shrinkface calibrate` or pass --threshold"
        )
    return float(card.threshold)
