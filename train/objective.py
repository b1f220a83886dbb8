"""The training objective: the weighted sum of the configured loss terms, L = Σ_k λ_k L_k.

Each term adapts one loss of ``shrinkface.train.losses`` to a batch (student outputs, labels with −1 for
unlabelled crops, per-teacher embeddings and white-box feature maps). Loss kinds:

| kind                | loss (``train/losses``)               | needs                                     |
|---------------------|---------------------------------------|-------------------------------------------|
| arcface, cosface    | ArcFace / CosFace (s, m)              | labels                                    |
| adl                 | AngularDistillation per teacher       | teacher embeddings (projection heads)     |
| sample_distribution | SampleDistribution (teacher ensemble) | teacher embeddings, any sizes             |
| adl_intermediate    | IntermediateAngularDistillation       | white-box teacher with s4/s8/s16 features |
| margin_distillation | MarginDistillation (teacher centres)  | labels, one teacher                       |
| neuron_mimic        | NeuronMimic (Fisher-selected neurons) | teacher embeddings; labels to select      |
| wang_kd             | CosineKD (soft targets vs centres)    | teacher embeddings; labels for centres    |
| mutual_relation     | MutualRelation (CoupleFace's MRD)     | an adl term's heads; cached embeddings    |

Teacher weights (``teachers[].weight``) are normalised over a term's teachers. Terms restricted to labelled
rows use only the rows with a label ≥ 0; a term with no usable rows in a batch contributes 0 while keeping
every parameter in the graph (so DDP needs no unused-parameter search).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from shrinkface.train import losses as L
from shrinkface.train.config import ConfigError, LossConfig
from shrinkface.train.teachers import Teacher, ensemble_weights


@dataclass
class BatchView:
    """What a term sees: student outputs, labels and the teachers' targets for one batch."""

    student: dict[str, torch.Tensor]  # "embedding" and, when asked, "s4"/"s8"/"s16"
    labels: torch.Tensor
    targets: dict[str, torch.Tensor]  # teacher name → (B, D) L2-normalised embedding
    features: dict[str, dict[str, torch.Tensor]]  # white-box teacher name → stage maps
    index: torch.Tensor | None = None  # each row's position in the training set (mined-negative lookups)

    @property
    def embedding(self) -> torch.Tensor:
        return self.student["embedding"]


def _zero(module: nn.Module, like: torch.Tensor) -> torch.Tensor:
    """A zero that still touches every parameter of ``module`` (and the student through ``like``)."""
    total = like.sum() * 0.0
    for p in module.parameters():
        if p.requires_grad:
            total = total + p.sum() * 0.0
    return total


def _take(params: dict[str, Any], allowed: set[str], kind: str) -> dict[str, Any]:
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ConfigError(f"loss {kind!r}: unknown params {unknown}; allowed: {sorted(allowed)}")
    return dict(params)


class Term(nn.Module):
    """Base class: ``forward(view) → scalar``; ``needs_features`` asks the student for stage maps."""

    needs_features = False


class MarginTerm(Term):
    """ArcFace / CosFace on the labelled rows."""

    def __init__(self, kind: str, dim: int, num_classes: int, params: dict[str, Any]) -> None:
        super().__init__()
        if num_classes < 2:
            raise ConfigError(f"{kind} needs at least 2 labelled classes, the training set has {num_classes}")
        cls = L.ArcFace if kind == "arcface" else L.CosFace
        allowed = {"s", "m", "easy_margin"} if kind == "arcface" else {"s", "m"}
        self.loss = cls(dim, num_classes, **_take(params, allowed, kind))

    def forward(self, view: BatchView) -> torch.Tensor:
        keep = view.labels >= 0
        if not bool(keep.any()):
            return _zero(self, view.embedding)
        return self.loss(view.embedding[keep], view.labels[keep])


class AdlTerm(Term):
    """Σ_k w_k · AngularDistillation(P_k s, t_k); or one ADL against the concatenated ensemble."""

    def __init__(self, dim: int, teachers: list[Teacher], params: dict[str, Any]) -> None:
        super().__init__()
        p = _take(params, {"squared", "ensemble"}, "adl")
        self.mode = p.get("ensemble", "sum")
        if self.mode not in ("sum", "concat"):
            raise ConfigError(f"adl: ensemble must be 'sum' or 'concat', got {self.mode!r}")
        self.names = [t.name for t in teachers]
        self.weights = ensemble_weights(teachers)
        squared = bool(p.get("squared", False))
        if self.mode == "concat":
            self.adl = nn.ModuleDict(
                {"concat": L.AngularDistillation.for_dims(dim, sum(t.dim for t in teachers), squared)}
            )
        else:
            self.adl = nn.ModuleDict({t.name: L.AngularDistillation.for_dims(dim, t.dim, squared) for t in teachers})

    def forward(self, view: BatchView) -> torch.Tensor:
        ts = [view.targets[n] for n in self.names]
        if self.mode == "concat":
            return self.adl["concat"](view.embedding, L.concat_teachers(ts, self.weights))
        return sum(w * self.adl[n](view.embedding, t) for n, w, t in zip(self.names, self.weights, ts, strict=True))


class SampleDistributionTerm(Term):
    """mean_{i≠j} (ŝ_i·ŝ_j − Σ_k w_k t̂ᵏ_i·t̂ᵏ_j)²."""

    def __init__(self, teachers: list[Teacher], params: dict[str, Any]) -> None:
        super().__init__()
        _take(params, set(), "sample_distribution")
        self.names, self.weights = [t.name for t in teachers], ensemble_weights(teachers)
        self.loss = L.SampleDistribution()

    def forward(self, view: BatchView) -> torch.Tensor:
        return self.loss(view.embedding, [view.targets[n] for n in self.names], self.weights)


class IntermediateTerm(Term):
    """Σ_k w_k · IntermediateAngularDistillation(student stages, white-box teacher k's stages)."""

    needs_features = True

    def __init__(self, student: nn.Module, teachers: list[Teacher], params: dict[str, Any]) -> None:
        super().__init__()
        p = _take(params, {"stages", "mode", "squared", "stage_weights"}, "adl_intermediate")
        stages = list(p.get("stages", ["s4", "s8", "s16"]))
        self.names, self.weights = [t.name for t in teachers], ensemble_weights(teachers)
        losses = {}
        for t in teachers:
            if t.module is None:
                raise ConfigError(f"adl_intermediate needs white-box teachers; {t.name!r} is a black box")
            have = t.module.feature_channels()
            missing = [s for s in stages if s not in have or s not in student.feature_channels]
            if missing:
                raise ConfigError(
                    f"adl_intermediate: stages {missing} missing (teacher {t.name!r} exposes "
                    f"{sorted(have)}: add them to its `features`)"
                )
            channels = {s: (student.feature_channels[s], have[s]) for s in stages}
            losses[t.name] = L.IntermediateAngularDistillation(
                channels,
                mode=p.get("mode", "adapter"),
                squared=bool(p.get("squared", False)),
                weights=p.get("stage_weights"),
            )
        self.loss = nn.ModuleDict(losses)

    def forward(self, view: BatchView) -> torch.Tensor:
        return sum(
            w * self.loss[n](view.student, view.features[n]) for n, w in zip(self.names, self.weights, strict=True)
        )


def _centres(teacher: Teacher, cached: dict[str, np.ndarray], labels: np.ndarray, kind: str) -> torch.Tensor:
    keep = labels >= 0
    if len(np.unique(labels[keep])) < 2:
        raise ConfigError(f"{kind} needs teacher class centres: at least 2 labelled identities")
    num = int(labels[keep].max()) + 1
    return L.teacher_class_centres(cached[teacher.name][keep], labels[keep], num)


class MarginDistillationTerm(Term):
    """MarginDistillation against the (first) teacher's class centres, labelled rows only."""

    def __init__(
        self,
        dim: int,
        teacher: Teacher,
        cached: dict[str, np.ndarray],
        labels: np.ndarray,
        params: dict[str, Any],
    ) -> None:
        super().__init__()
        p = _take(params, {"s", "m_max", "m_min", "easy_margin"}, "margin_distillation")
        projection = L.ProjectionHead(dim, teacher.dim) if dim != teacher.dim else None
        self.name = teacher.name
        self.loss = L.MarginDistillation(
            _centres(teacher, cached, labels, "margin_distillation"), projection=projection, **p
        )

    def forward(self, view: BatchView) -> torch.Tensor:
        keep = (view.labels >= 0) & (view.labels < self.loss.num_classes)
        if not bool(keep.any()):
            return _zero(self, view.embedding)
        return self.loss(view.embedding[keep], view.targets[self.name][keep], view.labels[keep])


class NeuronMimicTerm(Term):
    """NeuronMimic on neurons selected (Fisher ratio, decorrelated) from the teachers' cached embeddings."""

    def __init__(
        self,
        dim: int,
        teachers: list[Teacher],
        cached: dict[str, np.ndarray],
        labels: np.ndarray,
        params: dict[str, Any],
    ) -> None:
        super().__init__()
        p = _take(params, {"k", "corr_bound"}, "neuron_mimic")
        self.names, self.weights = [t.name for t in teachers], ensemble_weights(teachers)
        keep = labels >= 0
        feats = self._join([torch.from_numpy(cached[n][keep]) for n in self.names]).numpy()
        selection = L.NeuronSelection.fit(feats, labels[keep], int(p.get("k", 128)), float(p.get("corr_bound", 0.5)))
        self.loss = L.NeuronMimic(dim, selection)

    def _join(self, ts: list[torch.Tensor]) -> torch.Tensor:
        return ts[0].float() if len(ts) == 1 else L.concat_teachers(ts, self.weights)

    def forward(self, view: BatchView) -> torch.Tensor:
        return self.loss(view.embedding, self._join([view.targets[n] for n in self.names]))


class CosineKDTerm(Term):
    """Wang et al.'s stage 1: Hinton KD on cosine logits against the teacher's class centres."""

    def __init__(
        self,
        dim: int,
        teacher: Teacher,
        cached: dict[str, np.ndarray],
        labels: np.ndarray,
        params: dict[str, Any],
    ) -> None:
        super().__init__()
        p = _take(params, {"s", "temperature", "alpha"}, "wang_kd")
        self.name = teacher.name
        self.loss = L.CosineKD(_centres(teacher, cached, labels, "wang_kd"), student_dim=dim, **p)

    def forward(self, view: BatchView) -> torch.Tensor:
        if self.loss.alpha >= 1.0:
            return self.loss(view.embedding, view.targets[self.name])
        keep = (view.labels >= 0) & (view.labels < self.loss.num_classes)
        if not bool(keep.any()):
            return _zero(self, view.embedding)
        return self.loss(view.embedding[keep], view.targets[self.name][keep], view.labels[keep])


class RelationTerm(Term):
    """Σ_k w_k · MutualRelation(P_k s_i, t^k_i, t^k_{N(i)}): N(i) mined once from the teachers' cached crops, P_k
    the projection heads of the ADL term (shared, not copied: the relation is read through the same map)."""

    def __init__(
        self, adl: AdlTerm, teachers: list[Teacher], cached: dict[str, np.ndarray], labels: np.ndarray, params: dict
    ) -> None:
        super().__init__()
        p = _take(params, {"k"}, "mutual_relation")
        self.names, self.weights = [t.name for t in teachers], ensemble_weights(teachers)
        missing = [n for n in self.names if n not in adl.names]
        if adl.mode != "sum" or missing:
            raise ConfigError(f"mutual_relation reads an `adl` term's per-teacher heads (ensemble: sum) for {missing}")
        self._adl = [adl]  # a plain list: the heads stay registered (and trained, and saved) under the ADL term
        negatives = L.hard_negatives([cached[n] for n in self.names], int(p.get("k", 16)), labels, self.weights)
        # plain tensors, not buffers: DDP would broadcast buffers every step, and these are fixed and equal on all ranks
        self._tables = {"negatives": torch.from_numpy(negatives)}
        self._tables |= {n: torch.from_numpy(np.ascontiguousarray(cached[n], dtype=np.float32)) for n in self.names}
        self.loss = L.MutualRelation()

    @property
    def negatives(self) -> torch.Tensor:
        """(N, k) training-set indices of each face's mined negatives."""
        return self._tables["negatives"]

    def _table(self, name: str, device: torch.device) -> torch.Tensor:
        self._tables[name] = table = self._tables[name].to(device)  # the same tensor once it is there
        return table

    def forward(self, view: BatchView) -> torch.Tensor:
        if view.index is None:
            raise ConfigError("mutual_relation needs each row's training-set index (BatchView.index)")
        device = view.embedding.device
        neg = self._table("negatives", device)[view.index.to(device)]
        heads = self._adl[0].adl
        return sum(
            w * self.loss(heads[n].projection(view.embedding), view.targets[n], self._table(n, device)[neg])
            for n, w in zip(self.names, self.weights, strict=True)
        )


KINDS = (
    "arcface",
    "cosface",
    "adl",
    "sample_distribution",
    "adl_intermediate",
    "margin_distillation",
    "neuron_mimic",
    "wang_kd",
    "mutual_relation",
)


class Objective(nn.Module):
    """The configured terms and their weights; ``forward(view) → (total, {term: value})``."""

    def __init__(self, terms: dict[str, Term], weights: dict[str, float]) -> None:
        super().__init__()
        self.terms = nn.ModuleDict(terms)
        self.weights = dict(weights)

    @property
    def needs_features(self) -> bool:
        return any(t.needs_features for t in self.terms.values())

    def forward(self, view: BatchView) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        parts = {name: term(view) for name, term in self.terms.items()}
        total = sum(self.weights[name] * value for name, value in parts.items())
        return total, parts


#: Loss kinds that read teachers' cached embeddings of the whole training set (class centres, neuron selection);
#: the others read the batch's targets only, which a white-box teacher computes online.
CACHED_KINDS = {"margin_distillation": "first", "neuron_mimic": "all", "wang_kd": "first", "mutual_relation": "all"}


def teachers_needing_cache(losses: dict[str, LossConfig], names: list[str]) -> set[str]:
    """Names of the teachers whose cached embeddings some loss term reads (white-box ones not in it need none)."""
    need: set[str] = set()
    for cfg in losses.values():
        chosen = list(cfg.teachers) or names
        if cfg.kind in CACHED_KINDS and chosen:
            need |= set(chosen[:1] if CACHED_KINDS[cfg.kind] == "first" else chosen)
    return need


def build_objective(
    losses: dict[str, LossConfig],
    student: nn.Module,
    teachers: list[Teacher],
    cached: dict[str, np.ndarray],
    labels: np.ndarray,
    num_classes: int,
) -> Objective:
    """Build the terms. ``cached``: teacher name → (N, D) embeddings of the training crops (un-mirrored)."""
    dim = int(student.embedding_size)
    by_name = {t.name: t for t in teachers}
    terms: dict[str, Term] = {}
    for name, cfg in losses.items():
        kind = cfg.kind
        chosen = [by_name[n] for n in cfg.teachers] if cfg.teachers else list(teachers)
        if kind not in KINDS:
            raise ConfigError(f"losses.{name}: unknown kind {kind!r}; known: {', '.join(KINDS)}")
        if kind not in ("arcface", "cosface") and not chosen:
            raise ConfigError(f"losses.{name}: {kind} needs a teacher (the config has none)")
        if kind in ("arcface", "cosface"):
            terms[name] = MarginTerm(kind, dim, num_classes, cfg.params)
        elif kind == "adl":
            terms[name] = AdlTerm(dim, chosen, cfg.params)
        elif kind == "sample_distribution":
            terms[name] = SampleDistributionTerm(chosen, cfg.params)
        elif kind == "adl_intermediate":
            terms[name] = IntermediateTerm(student, chosen, cfg.params)
        elif kind == "margin_distillation":
            terms[name] = MarginDistillationTerm(dim, chosen[0], cached, labels, cfg.params)
        elif kind == "neuron_mimic":
            terms[name] = NeuronMimicTerm(dim, chosen, cached, labels, cfg.params)
        elif kind == "mutual_relation":
            adl = [t for t in terms.values() if isinstance(t, AdlTerm)]
            if not adl:
                raise ConfigError(f"losses.{name}: mutual_relation needs an `adl` term listed before it")
            terms[name] = RelationTerm(adl[0], chosen, cached, labels, cfg.params)
        else:
            terms[name] = CosineKDTerm(dim, chosen[0], cached, labels, cfg.params)
    return Objective(terms, {n: c.weight for n, c in losses.items()})


class TrainModule(nn.Module):
    """Student + objective in one module, so one DDP wrapper synchronises every trained parameter."""

    def __init__(self, student: nn.Module, objective: Objective) -> None:
        super().__init__()
        self.student = student
        self.objective = objective

    def forward(
        self,
        x: torch.Tensor,
        labels: torch.Tensor,
        targets: dict[str, torch.Tensor],
        features: dict[str, dict[str, torch.Tensor]],
        index: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if self.objective.needs_features:
            out = self.student.forward_features(x)
        else:
            out = {"embedding": self.student(x)}
        out = {k: (v.float() if v.is_floating_point() else v) for k, v in out.items()}
        return self.objective(BatchView(out, labels, targets, features, index))
