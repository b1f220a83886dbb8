"""Everything a run needs before its first step: the training set, the crop pack, teachers and their caches.

A white-box teacher runs online on each augmented batch, so its cache is filled only when a loss term reads the
cached embeddings (class centres, neuron selection: ``objective.CACHED_KINDS``). On the session-9 GPU box that
fill was 5:47 of device time for SFace + faceplugin that the run never read.

Under DDP the main process scans, packs and fills the caches while the others wait; they then receive the
scanned set and open the same files. ``shrinkface train cache CONFIG`` runs just this.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch.distributed as dist

from shrinkface.runtime.config import cache_dir
from shrinkface.train.cache import TeacherCache
from shrinkface.train.config import TrainConfig, expand_path
from shrinkface.train.data import (
    TargetSource,
    TrainingSet,
    build_crop_pack,
    flip_mean_rows,
    scan_training_set,
)
from shrinkface.train.distributed import DistInfo, barrier
from shrinkface.train.objective import teachers_needing_cache
from shrinkface.train.teachers import Teacher, build_teacher


@dataclass
class Prepared:
    """The training set, its crop pack, the teachers, each teacher's cache rows and plain embeddings."""

    trainset: TrainingSet
    pack: Path
    teachers: list[Teacher]
    targets: dict[str, TargetSource]  # teacher name → cached (image, mirror) embeddings
    cached: dict[str, np.ndarray]  # teacher name → (N, D) embeddings of the un-mirrored crops
    # (both hold every black-box teacher, and a white-box one only when a loss term reads its cache)


def train_cache_root(cfg: TrainConfig) -> Path:
    """``cfg.cache_dir`` or ``$SHRINKFACE_CACHE``, + ``train/``."""
    root = expand_path(cfg.cache_dir) if cfg.cache_dir else cache_dir()
    path = root / "train"
    path.mkdir(parents=True, exist_ok=True)
    return path


def prepare(cfg: TrainConfig, info: DistInfo | None = None, progress: bool = True) -> Prepared:
    """Scan, pack, load the teachers and fill their caches (main process first, then the others)."""
    main = info is None or info.main
    root = train_cache_root(cfg)
    trainset: TrainingSet | None = None
    if main:
        trainset = scan_training_set(cfg.data, progress=progress)
    if info is not None and info.distributed:
        box = [trainset]
        dist.broadcast_object_list(box, src=0)
        trainset = box[0]
    assert trainset is not None
    teachers = [build_teacher(t) for t in cfg.teachers]
    need = teachers_needing_cache(cfg.losses, [t.name for t in teachers])
    cached_teachers = [t for t in teachers if t.module is None or t.name in need]
    if main:
        pack = build_crop_pack(trainset.paths, trainset.keys, root, progress=progress)
        for t in cached_teachers:
            cache = TeacherCache(root / "teachers", t.name, t.fingerprint, t.dim)
            cache.fill(
                trainset.paths,
                trainset.keys,
                embedder=t.embedder,
                factory=t.factory,
                processes=cfg.data.cache_processes,
                progress=progress,
            )
    if info is not None:
        barrier(info)
    pack = build_crop_pack(trainset.paths, trainset.keys, root)  # already there: just its path
    targets: dict[str, TargetSource] = {}
    cached: dict[str, np.ndarray] = {}
    for t in cached_teachers:
        cache = TeacherCache(root / "teachers", t.name, t.fingerprint, t.dim)
        rows = cache.rows_for(trainset.keys)
        flip_mean = t.cfg.target == "flip_mean"
        targets[t.name] = TargetSource(str(cache.emb_path), rows, flip_mean)
        emb = np.load(cache.emb_path, mmap_mode="r")  # read only the rows (and views) this target needs
        cached[t.name] = flip_mean_rows(emb[rows]) if flip_mean else np.asarray(emb[rows, 0], dtype=np.float32)
    return Prepared(trainset, pack, teachers, targets, cached)
