"""Losses against independent numpy computations (or hand values), gradients, edge cases, typed errors."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from real_faces import glint_people  # noqa: E402

from shrinkface.runtime.embed import load_asset_embedder  # noqa: E402
from shrinkface.train.losses import (  # noqa: E402
    AngularDistillation,
    ArcFace,
    CosFace,
    CosineKD,
    IntermediateAngularDistillation,
    LossInputError,
    MarginDistillation,
    NeuronMimic,
    NeuronSelection,
    ProjectionHead,
    SampleDistribution,
    concat_teachers,
    fisher_ratio,
    init_classifier_from_centres,
    mean_teachers,
    select_neurons,
    teacher_class_centres,
)
from shrinkface.train.students import build_student  # noqa: E402

pytestmark = pytest.mark.torch


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def real_teacher(data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """Teacher C (faceplugin, 512-d) embeddings of 8 real aligned crops of each of the 6 glint people."""
    crops, labels = glint_people(data_dir, 8)
    return load_asset_embedder("faceplugin").raw(crops).astype(np.float64), labels


# -- independent numpy references ----------------------------------------------------------------------------
def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def np_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    z = logits - logits.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(labels)), labels].mean())


def np_arcface(x, w, y, s, m, easy=False) -> float:
    """ArcFace via θ = arccos: cos(θ+m) if θ+m ≤ π else cos θ − m·sin m (easy: no margin where cos θ ≤ 0)."""
    cos = np.clip(unit(x) @ unit(w).T, -1, 1)
    m = np.broadcast_to(np.asarray(m, dtype=np.float64), y.shape)
    logits = s * cos
    for i, (label, mi) in enumerate(zip(y, m, strict=True)):
        c = cos[i, label]
        theta = math.acos(c)
        if easy:
            target = math.cos(theta + mi) if c > 0 else c
        else:
            target = math.cos(theta + mi) if theta + mi < math.pi else c - mi * math.sin(mi)
        logits[i, label] = s * target
    return np_cross_entropy(logits, y)


def t64(a) -> torch.Tensor:
    return torch.tensor(np.asarray(a), dtype=torch.float64)


def test_arcface_hand_value_and_numpy_golden() -> None:
    # one sample at cos θ_y = 0.6 (sin 0.8), m = 0.5: cos(θ+m) = 0.6·0.8775826 − 0.8·0.4794255 = 0.1430092
    loss = ArcFace(2, 2, s=1.0, m=0.5).double()
    with torch.no_grad():
        loss.weight.copy_(t64([[1.0, 0.0], [0.0, 1.0]]))
    logits = loss.logits(t64([[0.6, 0.8]]), torch.tensor([0]))
    np.testing.assert_allclose(logits.detach().numpy(), [[0.1430092, 0.8]], atol=1e-6)

    rng = np.random.default_rng(1)
    w = rng.normal(size=(5, 4))
    x = rng.normal(size=(6, 4))
    x[0] = -w[2] + 0.01 * rng.normal(size=4)  # θ near π: the fallback branch
    x[1] = 3.0 * w[1]  # cos θ = 1 exactly
    y = np.array([2, 1, 0, 3, 4, 0])
    for easy in (False, True):
        arc = ArcFace(4, 5, s=64.0, m=0.5, easy_margin=easy).double()
        with torch.no_grad():
            arc.weight.copy_(t64(w))
        xt = t64(x).requires_grad_(True)
        value = arc(xt, torch.tensor(y))
        assert value.item() == pytest.approx(np_arcface(x, w, y, 64.0, 0.5, easy), rel=1e-9)
        value.backward()
        assert torch.isfinite(xt.grad).all() and torch.isfinite(arc.weight.grad).all()
        assert arc.weight.grad.abs().sum() > 0


def test_arcface_fallback_is_monotonic_past_pi_minus_m() -> None:
    arc = ArcFace(2, 2, s=1.0, m=0.5).double()
    with torch.no_grad():
        arc.weight.copy_(t64([[1.0, 0.0], [0.0, 1.0]]))
    angles = np.linspace(0.0, math.pi, 181)
    x = t64(np.stack([np.cos(angles), np.sin(angles)], axis=1))
    target = arc.logits(x, torch.zeros(181, dtype=torch.long))[:, 0].detach().numpy()
    assert np.all(np.diff(target) < 0)  # unguarded cos(θ+m) would rise again beyond π − m
    assert target[-1] == pytest.approx(-1.0 - 0.5 * math.sin(0.5))


def test_cosface_numpy_golden_and_gradients() -> None:
    rng = np.random.default_rng(2)
    w, x, y = rng.normal(size=(4, 3)), rng.normal(size=(5, 3)), np.array([0, 1, 2, 3, 1])
    cos = unit(x) @ unit(w).T
    cos[np.arange(5), y] -= 0.35
    expected = np_cross_entropy(30.0 * cos, y)
    loss = CosFace(3, 4, s=30.0, m=0.35).double()
    with torch.no_grad():
        loss.weight.copy_(t64(w))
    xt = t64(x).requires_grad_(True)
    value = loss(xt, torch.tensor(y))
    assert value.item() == pytest.approx(expected, rel=1e-9)
    value.backward()
    assert xt.grad.abs().sum() > 0


def test_margin_losses_reject_bad_input() -> None:
    arc = ArcFace(8, 3)
    with pytest.raises(LossInputError, match="labels must lie"):
        arc(torch.randn(2, 8), torch.tensor([0, 3]))
    with pytest.raises(LossInputError, match="8-d"):
        arc(torch.randn(2, 7), torch.tensor([0, 1]))
    with pytest.raises(LossInputError, match="integer"):
        arc(torch.randn(2, 8), torch.tensor([0.0, 1.0]))
    with pytest.raises(LossInputError, match="margin"):
        ArcFace(8, 3, m=2.0)


def test_angular_distillation_numpy_golden() -> None:
    rng = np.random.default_rng(3)
    s, t = rng.normal(size=(4, 6)), rng.normal(size=(4, 6))
    cos = (unit(s) * unit(t)).sum(axis=1)
    half_sq = 0.5 * (np.linalg.norm(unit(s) - unit(t), axis=1) ** 2).mean()
    assert AngularDistillation()(t64(s), t64(t)).item() == pytest.approx(half_sq, rel=1e-9)
    assert AngularDistillation()(t64(s), t64(t)).item() == pytest.approx((1 - cos).mean(), rel=1e-9)
    assert AngularDistillation(squared=True)(t64(s), t64(t)).item() == pytest.approx(((1 - cos) ** 2).mean())
    assert AngularDistillation()(t64(t * 3.0), t64(t)).item() == pytest.approx(0.0, abs=1e-12)


def test_angular_distillation_projection_and_gradients() -> None:
    with pytest.raises(LossInputError, match="ProjectionHead"):
        AngularDistillation()(torch.randn(3, 128), torch.randn(3, 512))
    adl = AngularDistillation.for_dims(128, 512)
    assert isinstance(adl.projection, ProjectionHead)
    s = torch.randn(3, 128, requires_grad=True)
    t = torch.randn(3, 512, requires_grad=True)
    adl(s, t).backward()
    assert s.grad.abs().sum() > 0 and adl.projection.linear.weight.grad.abs().sum() > 0
    assert t.grad is None  # the teacher is detached
    assert not isinstance(AngularDistillation.for_dims(128, 128).projection, ProjectionHead)


def np_sample_distribution(s: np.ndarray, target_gram: np.ndarray) -> float:
    su = unit(s)
    terms = [(su[i] @ su[j] - target_gram[i, j]) ** 2 for i in range(len(s)) for j in range(len(s)) if i != j]
    return float(np.mean(terms))


def test_sample_distribution_numpy_golden_any_dims_and_ensemble() -> None:
    rng = np.random.default_rng(4)
    s, t1, t2 = rng.normal(size=(5, 4)), rng.normal(size=(5, 7)), rng.normal(size=(5, 3))
    g1, g2 = unit(t1) @ unit(t1).T, unit(t2) @ unit(t2).T
    loss = SampleDistribution()
    assert loss(t64(s), t64(t1)).item() == pytest.approx(np_sample_distribution(s, g1), rel=1e-9)
    ensemble = loss(t64(s), [t64(t1), t64(t2)], weights=[1.0, 3.0]).item()
    assert ensemble == pytest.approx(np_sample_distribution(s, 0.25 * g1 + 0.75 * g2), rel=1e-9)
    st = t64(s).requires_grad_(True)
    loss(st, t64(t1)).backward()
    assert st.grad.abs().sum() > 0
    with pytest.raises(LossInputError, match="at least 2"):
        loss(torch.randn(1, 4), torch.randn(1, 4))
    with pytest.raises(LossInputError, match="weights"):
        loss(t64(s), [t64(t1), t64(t2)], weights=[1.0])


def test_intermediate_adl_adapter_and_pool_golden() -> None:
    rng = np.random.default_rng(5)
    s_map, t_map = rng.normal(size=(2, 3, 4, 4)), rng.normal(size=(2, 5, 2, 2))
    a = rng.normal(size=(5, 3))
    # adapter: 1×1 conv (a), 2×2 average pooling to the teacher's 2×2, flatten, 1 − cos
    u = np.einsum("oc,nchw->nohw", a, s_map).reshape(2, 5, 2, 2, 2, 2).mean(axis=(3, 5))
    expected = (1 - (unit(u.reshape(2, -1)) * unit(t_map.reshape(2, -1))).sum(axis=1)).mean()
    loss = IntermediateAngularDistillation({"s8": (3, 5)}, mode="adapter").double()
    with torch.no_grad():
        loss.adapters["s8"].weight.copy_(t64(a)[:, :, None, None])
    sm = t64(s_map).requires_grad_(True)
    value = loss({"s8": sm, "s4": sm}, {"s8": t64(t_map)})
    assert value.item() == pytest.approx(expected, rel=1e-9)
    value.backward()
    assert sm.grad.abs().sum() > 0 and loss.adapters["s8"].weight.grad.abs().sum() > 0
    # pool: global average, linear map, 1 − cos; two stages averaged with weights 1 and 3
    pool = IntermediateAngularDistillation({"a": (3, 5), "b": (5, 5)}, mode="pool", weights={"a": 1, "b": 3})
    with torch.no_grad():
        pool.adapters["a"].weight.copy_(t64(a).float())
    pt = unit(t_map.mean(axis=(2, 3)))
    la = (1 - (unit(s_map.mean(axis=(2, 3)) @ a.T) * pt).sum(axis=1)).mean()
    lb = (1 - (pt[::-1] * pt).sum(axis=1)).mean()  # identity adapter: student b = teacher with rows swapped
    got = pool.double()({"a": t64(s_map), "b": t64(t_map[::-1].copy())}, {"a": t64(t_map), "b": t64(t_map)})
    assert got.item() == pytest.approx((la + 3 * lb) / 4, rel=1e-6)
    with pytest.raises(LossInputError, match="missing"):
        loss({"s4": sm}, {"s8": t64(t_map)})
    with pytest.raises(LossInputError, match="expected student"):
        loss({"s8": t64(t_map)}, {"s8": t64(t_map)})


def test_intermediate_adl_between_two_real_students() -> None:
    student = build_student("mobilefacenet", width=0.5)
    teacher = build_student("mobilefacenet").eval()
    x = torch.randn(2, 3, 112, 112)
    with torch.no_grad():
        t_feats = teacher.forward_features(x)
    keys = ("s4", "s8", "s16")
    loss = IntermediateAngularDistillation(
        {k: (student.feature_channels[k], teacher.feature_channels[k]) for k in keys}
    )
    value = loss(student.forward_features(x), t_feats)
    value.backward()
    assert 0.0 < value.item() < 2.0
    assert student.stem[0][0].weight.grad.abs().sum() > 0


def test_teacher_class_centres_numpy_golden_and_errors() -> None:
    rng = np.random.default_rng(6)
    t, y = rng.normal(size=(9, 4)), np.array([0, 1, 2, 0, 1, 2, 0, 0, 1])
    expected = unit(np.stack([unit(t[y == c]).mean(axis=0) for c in range(3)]))
    np.testing.assert_allclose(teacher_class_centres(t, y).numpy(), expected, rtol=1e-6)
    with pytest.raises(LossInputError, match="without teacher embeddings"):
        teacher_class_centres(t, y, num_classes=4)


def test_margin_distillation_margins_by_hand_and_loss_golden() -> None:
    centres = np.eye(3)
    # c_i = t̂_i·W_{y_i} = 0.9, 0.45, 0 → D_max = 0.9, m_i = 0.3/0.9·c_i + 0.2 = 0.5, 0.35, 0.2
    teacher = np.array([[0.9, math.sqrt(1 - 0.81), 0.0], [0.0, 0.45, math.sqrt(1 - 0.2025)], [0.0, 1.0, 0.0]])
    labels = np.array([0, 1, 2])
    md = MarginDistillation(t64(centres).float(), s=64.0)
    np.testing.assert_allclose(
        md.margins(t64(teacher).float(), torch.tensor(labels)).numpy(), [0.5, 0.35, 0.2], atol=1e-6
    )
    rng = np.random.default_rng(7)
    student = rng.normal(size=(3, 3))
    st = torch.tensor(student, dtype=torch.float32, requires_grad=True)
    value = md(st, t64(teacher).float(), torch.tensor(labels))
    expected = np_arcface(student, centres, labels, 64.0, np.array([0.5, 0.35, 0.2]))
    assert value.item() == pytest.approx(expected, rel=1e-4)
    value.backward()
    assert st.grad.abs().sum() > 0
    assert not list(md.parameters()) and "centres" in md.state_dict()  # frozen centres, saved with the loss


def test_margin_distillation_on_real_teacher_embeddings(real_teacher) -> None:
    t, y = real_teacher
    centres = teacher_class_centres(t, y)
    own = (unit(t) @ centres.numpy().T).argmax(axis=1)
    assert (own == y).mean() > 0.9  # a real teacher puts its samples nearest their own centre
    md = MarginDistillation(centres, projection=ProjectionHead(128, 512))
    m = md.margins(torch.tensor(t, dtype=torch.float32), torch.tensor(y))
    assert m.max().item() == pytest.approx(0.5) and m.min().item() >= 0.2
    value = md(torch.randn(len(y), 128), torch.tensor(t, dtype=torch.float32), torch.tensor(y))
    assert torch.isfinite(value)


def test_fisher_ratio_hand_value_and_numpy_golden() -> None:
    # dim 0: class A {0, 2}, class B {4, 6}: μ = 3, μ_A = 1, μ_B = 5 → S_B = 4, S_W = 1, ratio 4
    x = np.array([[0.0, 1.0], [2.0, 0.0], [4.0, 1.0], [6.0, 0.0]])
    y = np.array([0, 0, 1, 1])
    assert fisher_ratio(x, y)[0] == pytest.approx(4.0)
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=(40, 5)), rng.integers(0, 4, size=40)
    within = sum(((x[y == c] - x[y == c].mean(axis=0)) ** 2).sum(axis=0) for c in range(4)) / 40
    total = x.var(axis=0)  # = S_B + S_W
    np.testing.assert_allclose(fisher_ratio(x, y), (total - within) / within, rtol=1e-9)


def test_select_neurons_drops_redundant_copies() -> None:
    rng = np.random.default_rng(9)
    y = np.repeat(np.arange(10), 20)
    identity = rng.normal(size=10)[y]
    x = np.stack(
        [
            identity + 0.1 * rng.normal(size=200),  # 0: strongly identity-driven
            identity + 0.1 * rng.normal(size=200),  # 1: a near copy of 0
            rng.normal(size=10)[y] + 0.3 * rng.normal(size=200),  # 2: another identity signal
            rng.normal(size=200),  # 3: noise
            np.zeros(200),  # 4: constant
        ],
        axis=1,
    )
    kept = select_neurons(x, y, k=3, corr_bound=0.5)
    assert len(kept) == 3 and {0, 1} - set(kept.tolist()) and 2 in kept and 4 not in kept
    corr = np.corrcoef(x[:, kept].T)
    assert np.abs(corr[np.triu_indices(3, 1)]).max() < 0.5
    assert len(select_neurons(x, y, k=1)) == 1
    with pytest.raises(LossInputError, match="two identities"):
        select_neurons(x, np.zeros(200), k=2)


def test_neuron_mimic_golden_and_real_selection(real_teacher) -> None:
    t, y = real_teacher
    selection = NeuronSelection.fit(t, y, k=32, corr_bound=0.5)
    assert selection.k == 32 and selection.teacher_dim == 512
    corr = np.corrcoef(t[:, selection.indices].T)
    assert np.abs(corr[np.triu_indices(32, 1)]).max() < 0.5
    ratios = fisher_ratio(t, y)
    assert ratios[selection.indices[0]] == ratios.max()
    mimic = NeuronMimic(16, selection).double()
    rng = np.random.default_rng(10)
    p, b = rng.normal(size=(32, 16)), rng.normal(size=32)
    with torch.no_grad():
        mimic.head.weight.copy_(t64(p))
        mimic.head.bias.copy_(t64(b))
    s = rng.normal(size=(len(y), 16))
    chosen = t[:, selection.indices]
    z = (chosen - chosen.mean(axis=0)) / chosen.std(axis=0)
    expected = (((s @ p.T + b) - z) ** 2).sum(axis=1).mean()
    st = t64(s).requires_grad_(True)
    value = mimic(st, t64(t))
    assert value.item() == pytest.approx(expected, rel=1e-6)
    value.backward()
    assert st.grad.abs().sum() > 0
    with pytest.raises(LossInputError, match="512-d"):
        mimic(st, t64(t[:, :128]))


def np_softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_cosine_kd_numpy_golden() -> None:
    rng = np.random.default_rng(11)
    w, s, t, y = (
        rng.normal(size=(4, 6)),
        rng.normal(size=(3, 6)),
        rng.normal(size=(3, 6)),
        np.array([0, 2, 3]),
    )
    v = rng.normal(size=(4, 6))
    kd = CosineKD(t64(w), s=16.0, temperature=2.0, alpha=0.7).double()
    with torch.no_grad():
        kd.weight.copy_(t64(v))
    p_t = np_softmax(16.0 * unit(t) @ unit(w).T / 2.0)
    z_s = 16.0 * unit(s) @ unit(v).T
    p_s = np_softmax(z_s / 2.0)
    kl = (p_t * (np.log(p_t) - np.log(p_s))).sum(axis=1).mean()
    expected = 0.7 * 4.0 * kl + 0.3 * np_cross_entropy(z_s, y)
    # the centres are stored as float32 buffers: agreement to float32 precision
    assert kd(t64(s), t64(t), torch.tensor(y)).item() == pytest.approx(expected, rel=1e-6)
    with pytest.raises(LossInputError, match="labels"):
        kd(t64(s), t64(t))
    # initialised from the centres, a student equal to its teacher has nothing left to learn
    fresh = CosineKD(t64(w)).double()
    assert fresh(t64(t), t64(t)).item() == pytest.approx(0.0, abs=1e-9)


def test_init_classifier_from_centres() -> None:
    centres = torch.randn(5, 8)
    arc = ArcFace(8, 5)
    init_classifier_from_centres(arc, centres)
    torch.testing.assert_close(arc.weight.data, centres / centres.norm(dim=1, keepdim=True))
    with pytest.raises(LossInputError, match="does not match"):
        init_classifier_from_centres(ArcFace(8, 6), centres)


def test_ensemble_targets_numpy_golden() -> None:
    rng = np.random.default_rng(12)
    a, b, c = rng.normal(size=(4, 3)), rng.normal(size=(4, 5)), rng.normal(size=(4, 3))
    cat = concat_teachers([t64(a), t64(b)], weights=[1.0, 3.0]).double().numpy()
    cos_a, cos_b = unit(a) @ unit(a).T, unit(b) @ unit(b).T
    np.testing.assert_allclose(cat @ cat.T, 0.25 * cos_a + 0.75 * cos_b, atol=1e-6)
    np.testing.assert_allclose(mean_teachers([t64(a), t64(c)]).numpy(), unit(unit(a) + unit(c)), rtol=1e-6)
    with pytest.raises(LossInputError, match="one embedding size"):
        mean_teachers([t64(a), t64(b)])
