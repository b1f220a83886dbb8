"""Evaluate embedders on LFW from ``shrinkface data align`` crops: 6000 pairs, all-vs-all, ensembles.

Every image needed is embedded once per model (slow models in two worker processes), then scored: the 6000
View-2 pairs by the 10-fold protocol and, optionally, every pair of the 13,233 images for TAR@FAR. An
image without an aligned crop is listed in the report and its pairs count as errors / rejections; nothing
is dropped.
Embeddings can be cached (``.npz`` per model, keyed by the model's sha256, flip and image list).
"""

from __future__ import annotations

import multiprocessing as mp
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shrinkface.runtime import lfw
from shrinkface.runtime.allvsall import all_vs_all_roc, ensemble_embeddings
from shrinkface.runtime.embed import Embedder, resolve_embedder
from shrinkface.runtime.errors import DataError, ModelCardError, ModelError
from shrinkface.runtime.metrics import KFoldResult, ensemble_scores, kfold_accuracy, pair_roc
from shrinkface.runtime.report import summarise

#: Seconds per image above which embedding moves to worker processes.
SLOW_MODEL_S = 0.02
CHUNK = 64


@dataclass(frozen=True)
class CropIndex:
    """Aligned crops of LFW images by key, the reasons of those without one, and the alignment settings."""

    paths: dict[str, Path]
    failed: dict[str, str]
    size: int
    template: np.ndarray
    fingerprint: str = ""  # changes when the aligned folder is rewritten (stale embedding caches are ignored)


def _key(src: str) -> str:
    """Manifest source path → LFW key (alignment may have been run on ``lfw/`` or ``lfw/images/``)."""
    for prefix in ("lfw/images/", "images/"):
        if src.startswith(prefix):
            return src[len(prefix) :]
    return src


def crop_index(aligned_dir: str | Path, keys: Sequence[str]) -> CropIndex:
    """Where each key's crop is, from the folder's manifest; keys with no ``ok`` record are failures."""
    from shrinkface.runtime.dataset import load_align_settings, load_aligned_manifest

    settings = load_align_settings(aligned_dir)
    records = {_key(r.src): r for r in load_aligned_manifest(aligned_dir, include_failed=True)}
    paths, failed = {}, {}
    for k in keys:
        r = records.get(k)
        if r is not None and r.status == "ok" and r.crop is not None:
            paths[k] = r.crop
        else:
            failed[k] = f"{r.error}: {r.reason}" if r is not None else "not in the aligned manifest"
    stat = (Path(aligned_dir) / "manifest.jsonl").stat()
    fingerprint = f"{Path(aligned_dir).resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    return CropIndex(paths, failed, settings.size, settings.template_points(), fingerprint)


def check_crops_fit(index: CropIndex, embedder: Embedder) -> None:
    """The crops must have the size and template the model card asks for (pain point: preprocessing drift)."""
    card = embedder.card
    if tuple(card.input_size) != (index.size, index.size):
        raise ModelCardError(
            f"{card.name} expects {card.input_size[0]}×{card.input_size[1]} crops, the aligned folder holds "
            f"{index.size}×{index.size}: align again with --size"
        )
    if not np.allclose(card.template_array(), index.template, atol=1e-3):
        raise ModelCardError(f"{card.name} uses another alignment template than the aligned folder")


def read_crops(paths: Sequence[Path], size: int) -> np.ndarray:
    """(N, size, size, 3) RGB uint8 crops."""
    import cv2

    out = np.empty((len(paths), size, size, 3), np.uint8)
    for i, p in enumerate(paths):
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if img is None or img.shape[:2] != (size, size):
            raise DataError(f"{p}: unreadable or not a {size}×{size} aligned crop; re-run `shrinkface data align`")
        out[i] = img[..., ::-1]
    return out


_WORKER: dict[str, Any] = {}


def _init_worker(spec: str) -> None:
    import cv2

    cv2.setNumThreads(1)
    _WORKER["embedder"] = resolve_embedder(spec, threads=1)


def _embed_chunk(task: tuple[int, list[Path], int, bool | None]) -> tuple[int, np.ndarray]:
    start, paths, size, flip = task
    return start, _WORKER["embedder"].embed(read_crops(paths, size), flip=flip)


def embed_paths(
    spec: str,
    embedder: Embedder,
    paths: Sequence[Path],
    flip: bool | None,
    workers: int | None = None,
    progress: bool = True,
) -> np.ndarray:
    """(N, D) embeddings of the crops at ``paths``; ``workers`` None: 2 processes if the model is slow."""
    from tqdm import tqdm

    size = embedder.card.input_size[0]
    out = np.empty((len(paths), embedder.embedding_size), np.float32)
    bar = tqdm(total=len(paths), unit="img", desc=f"embed {Path(spec).name}", disable=not progress)
    done = 0
    with bar:
        if workers is None:  # embed one chunk here (after a short warm-up) and time it to decide
            warm = min(8, len(paths))
            out[:warm] = embedder.embed(read_crops(paths[:warm], size), flip=flip)
            done = min(CHUNK, len(paths))
            t0 = time.perf_counter()
            out[warm:done] = embedder.embed(read_crops(paths[warm:done], size), flip=flip)
            bar.update(done)
            workers = 2 if (time.perf_counter() - t0) / max(done - warm, 1) > SLOW_MODEL_S else 1
        tasks = [(s, list(paths[s : s + CHUNK]), size, flip) for s in range(done, len(paths), CHUNK)]
        if workers <= 1:
            for start, chunk, _, _ in tasks:
                out[start : start + len(chunk)] = embedder.embed(read_crops(chunk, size), flip=flip)
                bar.update(len(chunk))
        elif tasks:
            with mp.get_context("spawn").Pool(workers, _init_worker, (spec,)) as pool:
                for start, emb in pool.imap_unordered(_embed_chunk, tasks):
                    out[start : start + len(emb)] = emb
                    bar.update(len(emb))
    return out


def _cached_embeddings(
    cache: Path | None,
    spec: str,
    embedder: Embedder,
    keys: list[str],
    index: CropIndex,
    flip: bool | None,
    workers: int | None,
    progress: bool,
) -> np.ndarray:
    """(N, D) embeddings for ``keys`` (NaN rows for failed images), from the cache file when it matches."""
    effective_flip = embedder.card.flip if flip is None else flip
    tag = {"sha256": embedder.sha256, "flip": effective_flip, "crops": index.fingerprint}
    name = f"{Path(spec).stem}-{embedder.sha256[:12]}{'-flip' if effective_flip else ''}.npz"
    file = cache / name if cache else None
    if file is not None and file.is_file():
        with np.load(file, allow_pickle=False) as z:
            if z["keys"].tolist() == keys and str(z["tag"]) == repr(tag):
                return z["emb"]
    emb = np.full((len(keys), embedder.embedding_size), np.nan, np.float32)
    ok = [i for i, k in enumerate(keys) if k in index.paths]
    emb[ok] = embed_paths(spec, embedder, [index.paths[keys[i]] for i in ok], flip, workers, progress)
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        np.savez(file, keys=np.array(keys), emb=emb, tag=np.array(repr(tag)))
    return emb


def pair_scores(pairs: lfw.LfwPairs, keys: Sequence[str], emb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cosine score of every protocol pair and whether both images have an embedding (finite row)."""
    idx = pairs.index_pairs({k: i for i, k in enumerate(keys)})
    has = np.isfinite(emb).all(axis=1)
    valid = (idx >= 0).all(axis=1)
    valid[valid] &= has[idx[valid, 0]] & has[idx[valid, 1]]
    scores = np.zeros(len(pairs))
    a, b = idx[valid, 0], idx[valid, 1]
    scores[valid] = np.einsum("ij,ij->i", emb[a].astype(np.float64), emb[b].astype(np.float64))
    return scores, valid


def lfw_accuracy(pairs: lfw.LfwPairs, keys: Sequence[str], emb: np.ndarray) -> KFoldResult:
    """10-fold accuracy from embeddings of ``keys`` (rows of NaN: image without a crop, its pairs wrong)."""
    scores, valid = pair_scores(pairs, keys, emb)
    return kfold_accuracy(scores, pairs.issame, pairs.folds, valid)


def _labels(specs: Sequence[str]) -> list[str]:
    labels: list[str] = []
    for s in specs:
        base = Path(s).stem if Path(s).expanduser().is_file() else s
        label, n = base, 2
        while label in labels:
            label, n = f"{base}#{n}", n + 1
        labels.append(label)
    return labels


def evaluate_lfw(
    models: Sequence[str],
    lfw_dir: str | Path,
    aligned_dir: str | Path,
    flip: bool | None = None,
    all_vs_all: bool = True,
    fars: Sequence[float] = (1e-3, 1e-4, 1e-5),
    workers: int | None = None,
    cache: str | Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """The full report dict (see ``report.py``) for each model and, with several models, their ensemble."""
    if not models:
        raise ModelError("give at least one --model")
    t0 = time.perf_counter()
    lfw_dir = Path(lfw_dir)
    pairs = lfw.parse_pairs(lfw_dir / "pairs.txt")
    images = lfw_dir / "images"
    missing = lfw.missing_images(pairs, images)
    if missing:
        raise DataError(f"{len(missing)} pair images are missing under {images}, e.g. {missing[:3]}")
    keys = lfw.list_images(images) if all_vs_all else pairs.image_keys
    index = crop_index(aligned_dir, keys)
    valid_img = np.array([k in index.paths for k in keys])
    labels = lfw.labels_of(keys)
    results, embs, model_info, per_model_scores = [], [], [], []
    pair_valid = None
    for label, spec in zip(_labels(models), models, strict=True):
        embedder = resolve_embedder(spec)
        check_crops_fit(index, embedder)
        emb = _cached_embeddings(Path(cache) if cache else None, spec, embedder, keys, index, flip, workers, progress)
        scores, pair_valid = pair_scores(pairs, keys, emb)
        per_model_scores.append(scores)
        embs.append(emb)
        kf = kfold_accuracy(scores, pairs.issame, pairs.folds, pair_valid)
        avsa = all_vs_all_roc(emb, labels, valid_img, progress=progress) if all_vs_all else None
        results.append(summarise(label, kf, pair_roc(scores, pairs.issame, pair_valid), avsa, fars))
        model_info.append(
            {
                "label": label,
                "spec": spec,
                "card": embedder.card.name,
                "sha256": embedder.sha256,
                "embedding_size": embedder.embedding_size,
                "backend": embedder.backend,
                "flip": embedder.card.flip if flip is None else flip,
            }
        )
    if len(models) > 1:
        assert pair_valid is not None
        ens = np.zeros(len(pairs))
        ens[pair_valid] = ensemble_scores([s[pair_valid] for s in per_model_scores])
        kf = kfold_accuracy(ens, pairs.issame, pairs.folds, pair_valid)
        avsa = None
        if all_vs_all:
            cat, offset, _ = ensemble_embeddings(embs, valid_img)
            avsa = all_vs_all_roc(cat, labels, valid_img, offset=offset, progress=progress)
        label = "ensemble(" + "+".join(r["model"] for r in results) + ")"
        results.append(summarise(label, kf, pair_roc(ens, pairs.issame, pair_valid), avsa, fars))
    return {
        "kind": "shrinkface.lfw_eval/1",
        "n_pairs": len(pairs),
        "n_images": len(keys),
        "n_identities_in_pairs": len(lfw.pair_identities(pairs)),
        "failed_images": [{"key": k, "reason": r} for k, r in sorted(index.failed.items())],
        "invalid_pairs": int((~pair_valid).sum()) if pair_valid is not None else 0,
        "settings": {
            "models": model_info,
            "flip": all(m["flip"] for m in model_info),
            "all_vs_all": all_vs_all,
            "fars": list(fars),
            "lfw_dir": str(lfw_dir),
            "aligned_dir": str(aligned_dir),
            "crop_size": index.size,
        },
        "seconds": round(time.perf_counter() - t0, 1),
        "results": results,
    }
