"""LFW protocol parsing, verification metrics, all-vs-all TAR@FAR, ensembles and reports.

Golden values are hand-computed or come from brute-force loops / scikit-learn written here, never from the
code under test.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from shrinkface.runtime import lfw
from shrinkface.runtime.allvsall import all_pair_stats, all_vs_all_roc, ensemble_embeddings
from shrinkface.runtime.errors import DataError
from shrinkface.runtime.metrics import (
    auc,
    best_threshold,
    eer,
    ensemble_scores,
    kfold_accuracy,
    mcnemar_exact,
    pair_roc,
    tar_at_far,
)
from shrinkface.runtime.report import summarise, write_report


# -- pairs.txt -----------------------------------------------------------------------------------------------
def test_real_pairs_file(lfw_dir: Path) -> None:
    pairs = lfw.parse_pairs(lfw_dir / "pairs.txt")
    assert len(pairs) == 6000 and pairs.issame.sum() == 3000
    assert pairs.n_folds == 10 and pairs.per_fold == 300
    assert np.bincount(pairs.folds).tolist() == [600] * 10
    assert all(pairs.issame[pairs.folds == f].sum() == 300 for f in range(10))
    first, last = pairs.pairs[0], pairs.pairs[-1]  # lines 2 and 6001 of the file
    assert (first.left, first.right, first.same) == (
        "Abel_Pacheco/Abel_Pacheco_0001.jpg",
        "Abel_Pacheco/Abel_Pacheco_0004.jpg",
        True,
    )
    assert not last.same and last.fold == 9
    assert len(lfw.pair_identities(pairs)) == 4281  # the data README's count
    assert lfw.missing_images(pairs, lfw_dir / "images") == []
    assert len(pairs.image_keys) == len(set(pairs.image_keys)) < 12000


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("2 x\nA 1 2\n", "header"),
        ("1 1\nA 1 2\n", "found 1"),
        ("1 1\nA 1 2\nB 1\n", "3 or 4 fields"),
        ("1 1\nA 1 2\nB 1 C 2 5\n", "3 or 4 fields"),
        ("1 1\nA 1 2\nB 1 2\n", "different-person line"),
        ("1 1\nA 1 B 2\nB 1 C 2\n", "same-person line"),
        ("1 1\nA 1 x\nB 1 C 2\n", "not a positive integer"),
        ("1 1\nA 0 1\nB 1 C 2\n", "not a positive integer"),
        ("1 1\nA 1 1\nB 1 C 2\n", "two different images"),
        ("1 1\nA 1 2\nB 1 B 2\n", "names B twice"),
        ("1 1\nA/.. 1 2\nB 1 C 2\n", "valid person name"),
    ],
)
def test_malformed_pairs(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "pairs.txt"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        lfw.parse_pairs(path)


def test_pairs_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        lfw.parse_pairs(tmp_path / "nope.txt")


def test_small_pairs_mapping(tmp_path: Path) -> None:
    pairs = lfw.parse_pairs_lines(["2 1", "Ann 1 3", "Bob 2 Cid 10", "Dee 1 2", "Ann 1 Cid 1"])
    assert pairs.issame.tolist() == [True, False, True, False]
    assert pairs.folds.tolist() == [0, 0, 1, 1]
    assert lfw.pair_identities(pairs) == {"Ann", "Bob", "Cid", "Dee"}
    index = {"Ann/Ann_0001.jpg": 0, "Ann/Ann_0003.jpg": 1, "Cid/Cid_0010.jpg": 2}
    assert pairs.index_pairs(index).tolist() == [[0, 1], [-1, 2], [-1, -1], [0, -1]]
    assert pairs.paths(tmp_path)[1] == (tmp_path / "Bob/Bob_0002.jpg", tmp_path / "Cid/Cid_0010.jpg")
    assert lfw.labels_of(["B/B_1", "A/A_1", "B/B_2"]).tolist() == [1, 0, 1]


# -- accuracy and 10-fold ------------------------------------------------------------------------------------
def test_best_threshold_hand_case() -> None:
    # accept-all, >=0.7 and >=0.9 each get 3/5 right; the middle maximiser (>=0.7) gives threshold (0.3+0.7)/2
    scores = np.array([0.9, 0.8, 0.7, 0.3, 0.2])
    issame = np.array([True, False, True, False, True])
    thr, acc = best_threshold(scores, issame)
    assert thr == pytest.approx(0.5) and acc == pytest.approx(0.6)


def test_separable_scores_are_perfect() -> None:
    rng = np.random.default_rng(1)
    issame = np.tile([True, False], 50)
    scores = np.where(issame, rng.uniform(0.5, 1.0, 100), rng.uniform(-1.0, 0.4, 100))
    folds = np.repeat(np.arange(10), 10)
    res = kfold_accuracy(scores, issame, folds)
    assert res.accuracies.tolist() == [1.0] * 10 and res.std == 0.0
    assert all(0.4 <= t <= 0.5 for t in res.thresholds)
    roc = pair_roc(scores, issame)
    assert auc(roc) == 1.0 and eer(roc) == 0.0
    assert [t.tar for t in tar_at_far(roc, [0.01, 0.1])] == [1.0, 1.0]


def _brute_threshold(scores: list[float], same: list[bool]) -> float:
    """Independent: try every midpoint / outside value, middle maximiser, accuracy by plain loops."""
    u = sorted(set(scores))
    cands = [u[0] - 1e-9] + [(a + b) / 2 for a, b in itertools.pairwise(u)] + [u[-1] + 1e-9]
    accs = [sum((s >= c) == y for s, y in zip(scores, same, strict=True)) for c in cands]
    best = [c for c, a in zip(cands, accs, strict=True) if a == max(accs)]
    return best[len(best) // 2]


def test_kfold_matches_brute_force() -> None:
    rng = np.random.default_rng(7)
    n = 60
    issame = rng.random(n) < 0.5
    scores = np.round(np.where(issame, rng.normal(0.5, 0.25, n), rng.normal(0.1, 0.25, n)), 1)  # many ties
    folds = np.repeat(np.arange(4), n // 4)
    valid = rng.random(n) > 0.1
    res = kfold_accuracy(scores, issame, folds, valid)
    for f in range(4):
        train = [i for i in range(n) if folds[i] != f and valid[i]]
        thr = _brute_threshold([scores[i] for i in train], [bool(issame[i]) for i in train])
        test = [i for i in range(n) if folds[i] == f]
        right = sum(valid[i] and ((scores[i] >= thr) == issame[i]) for i in test)
        assert res.accuracies[f] == pytest.approx(right / len(test))
        brute = [bool(valid[i] and ((scores[i] >= thr) == issame[i])) for i in test]
        assert [bool(res.right[i]) for i in test] == brute
        assert res.thresholds[f] == pytest.approx(thr, abs=1e-8)
    assert res.n_invalid == int((~valid).sum())
    assert res.std == pytest.approx(np.sqrt(np.mean((res.accuracies - res.accuracies.mean()) ** 2)))


@pytest.mark.parametrize("b, c", [(0, 0), (3, 5), (10, 2), (7, 7), (0, 6), (20, 35), (1, 8)])
def test_mcnemar_exact_matches_scipy_binomial_test(b: int, c: int) -> None:
    from scipy.stats import binomtest  # an independent implementation (scipy comes with scikit-learn)

    expected = binomtest(min(b, c), b + c, 0.5).pvalue if b + c else 1.0
    assert mcnemar_exact(b, c) == pytest.approx(expected, rel=1e-12)
    assert mcnemar_exact(b, c) == mcnemar_exact(c, b)


def test_metric_input_errors() -> None:
    with pytest.raises(ValueError, match="same length"):
        best_threshold(np.zeros(3), np.zeros(2, bool))
    with pytest.raises(ValueError, match="bool"):
        best_threshold(np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match="NaN"):
        best_threshold(np.array([0.1, np.nan]), np.array([True, False]))
    with pytest.raises(ValueError, match="2 folds"):
        kfold_accuracy(np.zeros(4), np.array([True, False] * 2), np.zeros(4))
    with pytest.raises(ValueError, match="both genuine and impostor"):
        pair_roc(np.zeros(3), np.ones(3, bool))


# -- ROC, EER, TAR@FAR ---------------------------------------------------------------------------------------
def test_pair_roc_agrees_with_sklearn() -> None:
    rng = np.random.default_rng(3)
    issame = rng.random(500) < 0.4
    scores = np.round(rng.normal(issame * 1.0, 1.0), 2)
    roc = pair_roc(scores, issame)
    fpr, tpr, _ = roc_curve(issame, scores, drop_intermediate=False)
    np.testing.assert_allclose(roc.fpr, fpr)
    np.testing.assert_allclose(roc.tpr, tpr)
    assert auc(roc) == pytest.approx(roc_auc_score(issame, scores), abs=1e-12)
    for far in (0.001, 0.01, 0.1, 0.5):
        (res,) = tar_at_far(roc, [far])
        gen, imp = scores[issame], scores[~issame]
        best = max(np.mean(gen >= t) for t in np.r_[np.inf, np.unique(scores)] if np.sum(imp >= t) <= far * imp.size)
        assert res.tar == pytest.approx(best)
        assert np.mean(imp >= res.threshold) == pytest.approx(res.far_actual) and res.far_actual <= far
        assert np.mean(gen >= res.threshold) == pytest.approx(res.tar)


def test_eer_hand_case() -> None:
    # threshold 0.65 rejects one of 4 genuine and accepts one of 4 impostors: FAR = FRR = 0.25
    scores = np.array([0.6, 0.7, 0.8, 0.9, 0.1, 0.2, 0.3, 0.65])
    issame = np.array([True] * 4 + [False] * 4)
    roc = pair_roc(scores, issame)
    assert eer(roc) == pytest.approx(0.25)
    assert auc(roc) == pytest.approx(15 / 16)  # 15 of 16 genuine/impostor orderings are right
    loose, strict = tar_at_far(roc, [0.25, 0.1])
    assert (loose.tar, loose.threshold, loose.far_actual, loose.resolvable) == (1.0, 0.6, 0.25, True)
    # 4 impostors cannot measure FAR 10 %: no false accept allowed, flagged as not resolvable
    assert (strict.tar, strict.threshold, strict.far_actual, strict.resolvable) == (0.75, 0.7, 0.0, False)


def _brute_all_pairs(emb: np.ndarray, labels: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores, same = [], []
    for i, j in itertools.combinations(range(len(labels)), 2):
        ok = valid[i] and valid[j]
        scores.append(float(np.dot(emb[i], emb[j])) if ok else -np.inf)
        same.append(labels[i] == labels[j])
    return np.array(scores), np.array(same)


@pytest.mark.parametrize("with_invalid", [False, True])
def test_all_vs_all_matches_brute_force(with_invalid: bool) -> None:
    rng = np.random.default_rng(11)
    n = 90
    labels = rng.integers(0, 15, n)
    # small integers: every dot product is exact in float32, and ties between scores happen
    emb = (rng.integers(-2, 3, (n, 5)) + np.eye(15, 5)[labels] * 3).astype(np.float32)
    valid = rng.random(n) > 0.08 if with_invalid else np.ones(n, bool)
    roc = all_vs_all_roc(emb, labels, valid, block=16)
    scores, same = _brute_all_pairs(emb, labels, valid)
    assert (roc.n_pos, roc.n_neg) == (same.sum(), (~same).sum())
    finite = np.isfinite(scores)
    if not with_invalid:
        assert auc(roc) == pytest.approx(roc_auc_score(same, scores), abs=1e-12)
        fpr, tpr, _ = roc_curve(same, scores, drop_intermediate=False)
        fps, tps = np.rint(fpr * roc.n_neg).astype(int), np.rint(tpr * roc.n_pos).astype(int)
        sk = set(zip(fps.tolist(), tps.tolist(), strict=True))
        assert set(zip(roc.fp.tolist(), roc.tp.tolist(), strict=True)) <= sk  # all points are on sklearn's curve
    cands = np.r_[np.inf, np.unique(scores[finite])]
    for far in (1e-3, 1e-2, 0.05, 0.2):
        (res,) = tar_at_far(roc, [far])
        best = max(
            np.sum(same & (scores >= t)) / same.sum()
            for t in cands
            if np.sum(~same & (scores >= t)) <= np.floor(far * (~same).sum())
        )
        assert res.tar == pytest.approx(best)
        assert np.sum(~same & (scores >= res.threshold)) / (~same).sum() == pytest.approx(res.far_actual)
    assert roc.fp[-1] == roc.n_neg and roc.tp[-1] == roc.n_pos


def test_all_vs_all_offset_shifts_thresholds() -> None:
    rng = np.random.default_rng(2)
    emb = rng.integers(-2, 3, (40, 4)).astype(np.float32)
    labels = rng.integers(0, 8, 40)
    a, b = all_vs_all_roc(emb, labels), all_vs_all_roc(emb, labels, offset=2.5)
    np.testing.assert_array_equal(a.tp, b.tp)
    np.testing.assert_allclose(a.thresholds[1:-1] - 2.5, b.thresholds[1:-1])


# -- ensembles -----------------------------------------------------------------------------------------------
def test_ensemble_scores_zscore_sum() -> None:
    a, b = np.array([1.0, 2.0, 3.0, 6.0]), np.array([10.0, 10.0, 30.0, 30.0])
    za = (a - 3.0) / np.sqrt(3.5)  # mean 3, population variance (4+1+0+9)/4
    zb = (b - 20.0) / 10.0
    np.testing.assert_allclose(ensemble_scores([a, b]), za + zb)
    with pytest.raises(ValueError, match="same length"):
        ensemble_scores([a, b[:3]])
    with pytest.raises(ValueError, match="not all equal"):
        ensemble_scores([a, np.ones(4)])


def test_ensemble_embeddings_equal_summed_zscores() -> None:
    rng = np.random.default_rng(5)
    e1, e2 = rng.normal(size=(30, 4)), rng.normal(size=(30, 6)) + 0.3
    valid = np.ones(30, bool)
    valid[[3, 17]] = False
    cat, offset, stats = ensemble_embeddings([e1, e2], valid)
    idx = np.flatnonzero(valid)
    pairs = list(itertools.combinations(idx, 2))
    s1 = np.array([e1[i] @ e1[j] for i, j in pairs])
    s2 = np.array([e2[i] @ e2[j] for i, j in pairs])
    assert stats[0] == pytest.approx((s1.mean(), s1.std()))
    assert all_pair_stats(e2[valid]) == pytest.approx((s2.mean(), s2.std()))
    want = (s1 - s1.mean()) / s1.std() + (s2 - s2.mean()) / s2.std()
    got = np.array([cat[i] @ cat[j] for i, j in pairs]) - offset
    np.testing.assert_allclose(got, want, atol=1e-4)


# -- report --------------------------------------------------------------------------------------------------
def _strict_json(text: str) -> dict:
    def refuse(name: str) -> None:
        raise AssertionError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def test_report_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    issame = np.tile([True, False], 60)
    scores = rng.normal(issame * 2.0, 1.0)
    folds = np.repeat(np.arange(10), 12)
    labels = rng.integers(0, 10, 60)
    emb = (rng.normal(size=(60, 8)) + np.eye(10, 8)[labels] * 2).astype(np.float32)
    result = summarise(
        "toy", kfold_accuracy(scores, issame, folds), pair_roc(scores, issame), all_vs_all_roc(emb, labels)
    )
    report = {
        "n_pairs": 120,
        "n_images": 60,
        "failed_images": [],
        "settings": {"flip": True},
        "results": [result],
    }
    paths = write_report(report, tmp_path)
    data = _strict_json(paths["json"].read_text())
    assert data["results"][0]["lfw_10fold"]["accuracy_mean"] == pytest.approx(
        np.mean(data["results"][0]["lfw_10fold"]["fold_accuracies"])
    )
    assert [t["far"] for t in data["results"][0]["all_vs_all"]["tar_at_far"]] == [1e-3, 1e-4, 1e-5]
    md = paths["markdown"].read_text()
    assert md.startswith("| model |") and "| toy |" in md and "TAR % @ FAR 0.001" in md
    assert paths["roc"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
