"""Mutual relation distillation (CoupleFace's MRD) and its hard-negative mining, against loops in numpy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from real_faces import glint_people  # noqa: E402

from shrinkface.runtime.embed import load_asset_embedder  # noqa: E402
from shrinkface.train.losses import LossInputError, MutualRelation, hard_negatives  # noqa: E402

pytestmark = pytest.mark.torch


@pytest.fixture(scope="module")
def real_banks(data_dir: Path) -> tuple[list[np.ndarray], np.ndarray]:
    """faceplugin (512-d) and expo (192-d) embeddings of 6 real aligned crops of each of the 6 glint people."""
    crops, labels = glint_people(data_dir, 6)
    banks = [load_asset_embedder(name).raw(crops).astype(np.float32) for name in ("faceplugin", "expo_mobilefacenet")]
    return banks, labels


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _brute_negatives(banks, k, labels, weights) -> np.ndarray:
    """For each row, every allowed other row sorted by the weighted cosine, one at a time."""
    n, out = len(labels), []
    for i in range(n):
        scores = []
        for j in range(n):
            if j == i or (labels[i] >= 0 and labels[i] == labels[j]):
                continue
            cos = sum(w * float(_unit(b[i]) @ _unit(b[j])) for w, b in zip(weights, banks, strict=True))
            scores.append((-cos, j))
        out.append([j for _, j in sorted(scores)[:k]])
    return np.asarray(out)


def test_mutual_relation_matches_a_loop_and_vanishes_at_the_teacher() -> None:
    rng = np.random.default_rng(3)
    s, t, neg = rng.normal(size=(5, 7)), rng.normal(size=(5, 7)), rng.normal(size=(5, 4, 7))
    want = np.mean(
        [(_unit(s[i]) @ _unit(neg[i, j]) - _unit(t[i]) @ _unit(neg[i, j])) ** 2 for i in range(5) for j in range(4)]
    )
    student = torch.tensor(s, requires_grad=True)
    teacher = torch.tensor(t, requires_grad=True)
    loss = MutualRelation()(student, teacher, torch.tensor(neg))
    assert float(loss.detach()) == pytest.approx(want, rel=1e-6)
    loss.backward()
    assert student.grad.abs().sum() > 0 and teacher.grad is None  # the teacher is detached
    assert float(MutualRelation()(torch.tensor(3.0 * t), torch.tensor(t), torch.tensor(neg))) == pytest.approx(
        0, abs=1e-12
    )
    with pytest.raises(LossInputError, match="share one size"):
        MutualRelation()(torch.tensor(s), torch.tensor(t), torch.tensor(neg[:, :, :5]))
    with pytest.raises(LossInputError, match="B × k × D"):
        MutualRelation()(torch.tensor(s), torch.tensor(t), torch.tensor(neg[:3]))


def test_hard_negatives_match_brute_force_on_real_embeddings(real_banks) -> None:
    banks, labels = real_banks
    weights = [0.25, 0.75]
    labelled = hard_negatives(banks, 5, labels, weights, chunk=7)  # chunks that cut through identities
    np.testing.assert_array_equal(labelled, _brute_negatives(banks, 5, labels, weights))
    assert all(labels[i] != labels[j] for i in range(len(labels)) for j in labelled[i])
    # pseudo-labels (UTKFace: one per face): only the row itself is excluded, so a same-person face comes first
    unlabelled = hard_negatives(banks, 3, np.arange(len(labels)), weights)
    np.testing.assert_array_equal(unlabelled, _brute_negatives(banks, 3, np.arange(len(labels)), weights))
    assert np.mean(labels[unlabelled[:, 0]] == labels) > 0.9
    with pytest.raises(LossInputError, match="k must lie in"):
        hard_negatives(banks, len(labels) - 5, labels)  # 36 rows, 6 per identity: at most 30 negatives
    with pytest.raises(LossInputError, match="differ in rows"):
        hard_negatives([banks[0], banks[1][:-1]], 2)
