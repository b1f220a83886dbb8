"""Periodic LFW evaluation of the torch student through the runtime harness (``runtime/lfw_eval.py``).

The student embeds the aligned LFW crops written by ``shrinkface data align`` (flip-augmented: the embedding
of the crop plus that of its mirror, then L2-normalised, as the papers do); the runtime harness maps pairs to
crops and scores them by the 10-fold protocol. ``max_pairs`` picks an evenly spread subset with the same
number of same/different pairs in every fold (a quick signal during training; the full 6000 pairs for
reported figures). ``tar_far`` adds TAR at that FAR over every pair of the evaluated images (all-vs-all: with
the 7,701 images of the 6000 pairs, 29.6 M impostor pairs, so FAR = 1e-4 is resolvable).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from shrinkface.runtime import lfw
from shrinkface.runtime.allvsall import all_vs_all_roc
from shrinkface.runtime.lfw_eval import crop_index, lfw_accuracy, read_crops
from shrinkface.runtime.metrics import KFoldResult, tar_at_far
from shrinkface.train.config import ConfigError, EvalConfig, expand_path
from shrinkface.train.data import to_input


def subset_pairs(pairs: lfw.LfwPairs, max_pairs: int | None) -> lfw.LfwPairs:
    """The first ``max_pairs / (2·folds)`` same and different pairs of every fold (all when None)."""
    if max_pairs is None or max_pairs >= len(pairs):
        return pairs
    per_kind = max(1, max_pairs // (2 * pairs.n_folds))
    chosen = []
    for fold in range(pairs.n_folds):
        in_fold = [p for p in pairs.pairs if p.fold == fold]
        chosen += [p for p in in_fold if p.same][:per_kind] + [p for p in in_fold if not p.same][:per_kind]
    return lfw.LfwPairs(tuple(chosen), pairs.n_folds, per_kind)


@torch.no_grad()
def embed_crops(
    student: torch.nn.Module,
    crops: np.ndarray,
    device: torch.device,
    batch: int = 64,
    flip: bool = True,
    channels_last: bool = True,
) -> np.ndarray:
    """(N, D) L2-normalised student embeddings of RGB uint8 crops (N, 112, 112, 3)."""
    was_training = student.training
    student.eval()
    out = []
    try:
        for i in range(0, len(crops), batch):
            images = torch.from_numpy(np.ascontiguousarray(crops[i : i + batch])).to(device)
            emb = student(to_input(images, channels_last=channels_last)).float()
            if flip:
                emb = emb + student(to_input(images.flip(2), channels_last=channels_last)).float()
            out.append(torch.nn.functional.normalize(emb, dim=1).cpu().numpy())
    finally:
        student.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


class LfwEvaluator:
    """Loads the pair subset and its crops once; ``__call__(student)`` → accuracy dict."""

    def __init__(self, cfg: EvalConfig, device: torch.device, channels_last: bool = True) -> None:
        if cfg.lfw_aligned is None:
            raise ConfigError("eval.lfw_aligned is not set: align LFW with `shrinkface data align` and point to it")
        self.cfg, self.device, self.channels_last = cfg, device, channels_last
        self.pairs = subset_pairs(lfw.parse_pairs(expand_path(cfg.pairs)), cfg.max_pairs)
        self.keys = self.pairs.image_keys
        index = crop_index(expand_path(cfg.lfw_aligned), self.keys)
        self.have = np.array([k in index.paths for k in self.keys])
        self.crops = read_crops([index.paths[k] for k in np.asarray(self.keys)[self.have]], index.size)
        self.failed = len(index.failed)
        self.labels = lfw.labels_of(self.keys)  # identities, for the all-vs-all TAR

    def __call__(self, student: torch.nn.Module) -> dict[str, Any]:
        t0 = time.perf_counter()
        emb = embed_crops(student, self.crops, self.device, self.cfg.batch_size, self.cfg.flip, self.channels_last)
        out = self.score(emb)
        out["eval_s"] = round(time.perf_counter() - t0, 2)
        return out

    def _full(self, emb: np.ndarray) -> np.ndarray:
        """Embeddings of ``self.crops`` spread over every key (NaN rows: no crop)."""
        if emb.shape[0] != int(self.have.sum()):
            raise ValueError(f"{emb.shape[0]} embeddings for {int(self.have.sum())} crops")
        full = np.full((len(self.keys), emb.shape[1]), np.nan, np.float32)
        full[self.have] = emb
        return full

    def kfold(self, emb: np.ndarray) -> KFoldResult:
        """10-fold result (per-fold accuracies, thresholds, per-pair decisions) of embeddings of ``self.crops``."""
        return lfw_accuracy(self.pairs, self.keys, self._full(emb))

    def score(self, emb: np.ndarray) -> dict[str, Any]:
        """Accuracy dict of (N, D) L2-normalised embeddings of ``self.crops`` (the rows of the found crops)."""
        full = self._full(emb)
        result = lfw_accuracy(self.pairs, self.keys, full)
        out: dict[str, Any] = {
            "lfw_acc": round(result.mean, 5),
            "lfw_std": round(result.std, 5),
            "lfw_pairs": len(self.pairs),
            "lfw_missing_crops": self.failed,
            "lfw_flip": self.cfg.flip,
        }
        if self.cfg.tar_far is not None:
            # a face-less image keeps its pairs in the counts (rejected), as in the runtime harness
            roc = all_vs_all_roc(np.nan_to_num(full), self.labels, self.have)
            (point,) = tar_at_far(roc, [self.cfg.tar_far])
            out.update(tar=round(point.tar, 5), tar_far=point.far, tar_impostor_pairs=roc.n_neg)
        return out
