"""Training data: aligned crops in class-per-folder trees (labelled) or any tree (unlabelled, e.g. UTKFace).

- Every image is keyed by the sha256 of its file bytes (the teacher cache uses the same key).
- Identity disjointness: the training identities are compared with the names in the evaluation pairs file
  (LFW ``pairs.txt``), normalised (case, ``_``/``-``/spaces, accents, punctuation). An overlap stops training
  with an ``IdentityOverlapError`` listing the names, unless ``data.on_overlap: exclude`` drops them
  (and reports them).
  Unlabelled sources carry no names, so they cannot be checked: the report says so.
- Crops are decoded once with OpenCV into a uint8 memmap "pack" (N, 112, 112, 3, RGB) in the cache folder;
  a batch is one fancy-index into it plus batched, seeded augmentation (``augment.py``) in a loader worker.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import cv2
import numpy as np
import torch
from tqdm import tqdm

from shrinkface.runtime.errors import DataError
from shrinkface.train.augment import augment_batch
from shrinkface.train.config import AugmentConfig, DataConfig, expand_path

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}
CROP_SHAPE = (112, 112, 3)


class IdentityOverlapError(DataError):
    """Training identities appear in the evaluation pairs."""


# -- identities ----------------------------------------------------------------------------------------------
def normalise_name(name: str) -> str:
    """``"Hugh_Jackman"``, ``"hugh jackman"``, ``"Hugh-Jackman"`` → ``"hugh jackman"`` (no accents, dots)."""
    text = unicodedata.normalize("NFKD", name)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).lower()
    text = re.sub(r"[_\-\s]+", " ", text)
    text = re.sub(r"[^\w ]", "", text)
    return " ".join(text.split())


def read_pair_names(path: str | Path) -> set[str]:
    """Identity names in an LFW-format pairs file (parsed by the runtime's ``lfw.parse_pairs``)."""
    from shrinkface.runtime import lfw

    return lfw.pair_identities(lfw.parse_pairs(path))


# -- scanning ------------------------------------------------------------------------------------------------
def _images_in(folder: Path, recursive: bool) -> list[Path]:
    pattern = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in pattern if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _aligned_records(root: Path) -> list[tuple[str | None, Path]] | None:
    """(identity, crop) of the ``ok`` records of a ``shrinkface data align`` folder (None: not one)."""
    if not (root / "manifest.jsonl").is_file():
        return None
    from shrinkface.runtime.dataset import load_align_settings, load_aligned_manifest

    size = load_align_settings(root).size
    if size != CROP_SHAPE[0]:
        raise DataError(f"{root} holds {size}×{size} crops; training needs 112×112")
    return [
        (PurePosixPath(r.identity).name if r.identity else None, r.crop)
        for r in load_aligned_manifest(root)
        if r.crop is not None
    ]


def _spread(items: list[Any], limit: int | None) -> list[Any]:
    """An evenly spread, deterministic subset of at most ``limit`` items."""
    if limit is None or len(items) <= limit:
        return items
    return [items[i] for i in np.linspace(0, len(items) - 1, limit).round().astype(int)]


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class TrainingSet:
    """The training images: paths, content keys, labels (−1: no identity) and the class names."""

    paths: list[Path]
    keys: list[str]
    labels: np.ndarray
    classes: list[str]
    report: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def num_classes(self) -> int:
        """Number of labels (identities plus pseudo-classes)."""
        return len(self.classes)


def scan_training_set(cfg: DataConfig, progress: bool = False) -> TrainingSet:
    """Collect the images of ``cfg.sources``, check identity disjointness, assign labels."""
    labelled: dict[str, list[Path]] = {}  # normalised identity → paths
    display: dict[str, str] = {}
    unlabelled: list[Path] = []
    recoded: dict[str, Any] = {}
    for src in cfg.sources:
        root = expand_path(src.path)
        if not root.is_dir():
            raise DataError(f"training source {root} is not a folder")
        records = _aligned_records(root)
        if records is not None and (note := json.loads((root / "align.json").read_text()).get("recoded")):
            recoded[str(root)] = note  # `shrinkface data recode`: lossy crops, say so in the report
        if src.kind == "unlabelled":
            found = [p for _, p in records] if records is not None else _images_in(root, recursive=True)
            files = _spread(found, src.limit)
            if not files:
                raise DataError(f"unlabelled source {root} holds no images")
            unlabelled += files
            continue
        grouped: dict[str, list[Path]] = {}
        if records is not None:
            for identity, crop in records:
                if identity is None:
                    raise DataError(f"{root}: {crop} is not inside an <identity>/ folder (use kind: unlabelled)")
                grouped.setdefault(identity, []).append(crop)
        else:
            grouped = {d.name: _images_in(d, recursive=False) for d in sorted(root.iterdir()) if d.is_dir()}
        per_class = {k: _spread(sorted(v), src.limit_per_class) for k, v in sorted(grouped.items()) if v}
        if not per_class:
            raise DataError(f"labelled source {root} has no <identity>/<image> folders with images")
        flat = _spread([(name, p) for name, files in per_class.items() for p in files], src.limit)
        for name, p in flat:
            key = normalise_name(name)
            display.setdefault(key, name)
            labelled.setdefault(key, []).append(p)

    report: dict[str, Any] = {
        "identities_checked_against": None,
        "excluded_identities": [],
        "excluded_images": 0,
    }
    if cfg.pairs is not None and labelled:
        pairs_path = expand_path(cfg.pairs)
        evaluation = {normalise_name(n) for n in read_pair_names(pairs_path)}
        overlap = sorted(set(labelled) & evaluation)
        report["identities_checked_against"] = str(pairs_path)
        if overlap and cfg.on_overlap == "refuse":
            names = ", ".join(display[k] for k in overlap)
            raise IdentityOverlapError(
                f"{len(overlap)} training identities are in the evaluation pairs {pairs_path}: {names}. "
                "Remove them from the training data or set data.on_overlap=exclude."
            )
        for key in overlap:
            report["excluded_identities"].append(display[key])
            report["excluded_images"] += len(labelled.pop(key))
    elif labelled:
        report["warning"] = "data.pairs is null: identity disjointness was NOT checked"
    if recoded:
        report["recoded_sources"] = recoded
    if unlabelled:
        report["unlabelled_note"] = "unlabelled images carry no names and cannot be checked against the pairs"

    classes = [display[k] for k in sorted(labelled)]
    paths = [p for k in sorted(labelled) for p in labelled[k]]
    labels = [i for i, k in enumerate(sorted(labelled)) for _ in labelled[k]]
    if cfg.unlabelled_labels == "pseudo":
        labels += list(range(len(classes), len(classes) + len(unlabelled)))
        classes += [f"~{p.name}" for p in unlabelled]
    else:
        labels += [-1] * len(unlabelled)
    paths += unlabelled
    if not paths:
        raise DataError("no training images left after the identity check")
    it = tqdm(paths, desc="hashing crops", unit="img", disable=not progress, leave=False)
    keys = [file_sha256(p) for p in it]
    report.update(
        images=len(paths),
        labelled_images=len(paths) - len(unlabelled),
        unlabelled_images=len(unlabelled),
        identities=len(labelled),
    )
    return TrainingSet(paths, keys, np.asarray(labels, dtype=np.int64), classes, report)


# -- crop pack -----------------------------------------------------------------------------------------------
def decode_crop(path: Path) -> np.ndarray:
    """One aligned crop as RGB uint8 (112, 112, 3); anything else is a ``DataError``."""
    buf = np.fromfile(path, dtype=np.uint8)
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR) if buf.size else None
    if img is None:
        raise DataError(f"{path}: not a decodable image")
    if img.shape != CROP_SHAPE:
        raise DataError(
            f"{path}: {img.shape[1]}×{img.shape[0]} is not an aligned 112×112 crop "
            "(align the source first: `shrinkface data align SRC DST`)"
        )
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def build_crop_pack(paths: Sequence[Path], keys: Sequence[str], cache: Path, progress: bool = False) -> Path:
    """Decode all crops once into ``cache/crops/<digest>.npy`` (uint8 memmap); reused while the keys match."""
    digest = hashlib.sha256("\n".join(keys).encode()).hexdigest()[:24]
    target = cache / "crops" / f"{digest}.npy"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".tmp{np.random.randint(1 << 30)}.npy")
    pack = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(paths), *CROP_SHAPE))
    try:
        for i, p in enumerate(tqdm(paths, desc="packing crops", unit="img", disable=not progress, leave=False)):
            pack[i] = decode_crop(Path(p))
        pack.flush()
        del pack
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def open_pack(path: Path) -> np.ndarray:
    """The crop pack, memory-mapped read-only."""
    return np.load(path, mmap_mode="r")


# -- batches -------------------------------------------------------------------------------------------------
def flip_mean_rows(both: np.ndarray) -> np.ndarray:
    """(N, 2, D) cached rows (crop, mirror) → (N, D) float32: their sum, L2-normalised (the test-time-flip
    embedding of the teacher, from the two normalised views)."""
    total = np.asarray(both[:, 0], dtype=np.float32) + np.asarray(both[:, 1], dtype=np.float32)
    return total / np.maximum(np.linalg.norm(total, axis=1, keepdims=True), 1e-12)


@dataclass(frozen=True)
class TargetSource:
    """A teacher's cached embeddings: memmap file (M, 2, D) and this training set's row in it per image;
    ``flip_mean``: every view's target is the crop's and the mirror's normalised mean (``flip_mean_rows``)."""

    path: str
    rows: np.ndarray
    flip_mean: bool = False


class BatchDataset(torch.utils.data.Dataset):
    """``dataset[(indices, seed)]`` → one augmented batch dict; memmaps open lazily in each worker."""

    def __init__(
        self,
        pack: Path,
        labels: np.ndarray,
        targets: dict[str, TargetSource],
        augment: AugmentConfig | None,
    ) -> None:
        self.pack_path = str(pack)
        self.labels = labels
        self.targets = targets
        self.augment = augment
        self._pack: np.ndarray | None = None
        self._emb: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.labels)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_pack"], state["_emb"] = None, {}
        return state

    def __getitem__(self, item: tuple[Sequence[int], int]) -> dict[str, Any]:
        indices, seed = item
        idx = np.asarray(indices, dtype=np.int64)
        if self._pack is None:
            self._pack = open_pack(Path(self.pack_path))
            self._emb = {k: np.load(t.path, mmap_mode="r") for k, t in self.targets.items()}
        images = torch.from_numpy(np.ascontiguousarray(self._pack[idx]))
        if self.augment is not None:
            images, mirrored = augment_batch(images, self.augment, seed)
        else:
            mirrored = torch.zeros(len(idx), dtype=torch.bool)
        batch: dict[str, Any] = {
            "images": images,
            "labels": torch.from_numpy(self.labels[idx]),
            "index": torch.from_numpy(idx),
            "mirrored": mirrored,
            "targets": {},
        }
        flip = mirrored.numpy().astype(np.int64)
        for name, src in self.targets.items():
            if src.flip_mean:
                emb = flip_mean_rows(self._emb[name][src.rows[idx]])
            else:
                emb = np.asarray(self._emb[name][src.rows[idx], flip], dtype=np.float32)
            batch["targets"][name] = torch.from_numpy(emb)
        return batch


def batch_seed(seed: int, epoch: int, batch: int, rank: int) -> int:
    """The augmentation seed of one batch: independent of workers, reproducible after a resume."""
    return int(np.random.SeedSequence([seed, epoch, batch, rank]).generate_state(1, dtype=np.uint64)[0] >> 1)


class EpochBatches:
    """Per-rank batches of an epoch via ``DistributedSampler`` (a global shuffle by seed+epoch), startable at
    any batch so a resume continues the exact order. Yields ``(indices, augmentation seed)``."""

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world: int = 1) -> None:
        if batch_size % world:
            raise DataError(f"batch size {batch_size} does not split over {world} processes")
        self.n, self.per_rank, self.seed, self.rank, self.world = n, batch_size // world, seed, rank, world
        self.per_epoch = (n // world) // self.per_rank
        if self.per_epoch == 0:
            raise DataError(f"{n} images are fewer than one batch of {batch_size}")

    def __len__(self) -> int:
        return self.per_epoch

    def indices(self, epoch: int) -> list[int]:
        """This rank's shuffled indices of ``epoch``."""
        sampler = torch.utils.data.DistributedSampler(
            range(self.n),
            num_replicas=self.world,
            rank=self.rank,
            shuffle=True,
            seed=self.seed,
            drop_last=True,
        )
        sampler.set_epoch(epoch)
        return list(sampler)

    def iterate(self, epoch: int, start: int = 0) -> Iterator[tuple[list[int], int]]:
        """Batches ``start …`` of ``epoch``."""
        order = self.indices(epoch)
        for b in range(start, self.per_epoch):
            yield (
                order[b * self.per_rank : (b + 1) * self.per_rank],
                batch_seed(self.seed, epoch, b, self.rank),
            )


class _Spec(torch.utils.data.Sampler):
    def __init__(self, batches: EpochBatches, epoch: int, start: int) -> None:
        self.batches, self.epoch, self.start = batches, epoch, start

    def __iter__(self) -> Iterator[tuple[list[int], int]]:
        return self.batches.iterate(self.epoch, self.start)

    def __len__(self) -> int:
        return len(self.batches) - self.start


def _background_worker(_worker_id: int) -> None:
    """A loader worker yields the cores to the training step: a lower priority (a batch costs ~2 % of a CPU
    step, and 4 batches per worker are prefetched). Torch already runs 1 thread here; ``cv2.setNumThreads``
    must not be called: in a forked child of a parent that used OpenCV's pool it deadlocks."""
    with contextlib.suppress(OSError):  # not permitted: keep the priority
        os.nice(10)


def make_loader(
    dataset: BatchDataset, batches: EpochBatches, epoch: int, start: int, workers: int, pin: bool = False
) -> torch.utils.data.DataLoader:
    """A loader over batches ``start …`` of ``epoch``; its own generator keeps the global RNG untouched."""
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=None,
        sampler=_Spec(batches, epoch, start),
        num_workers=workers,
        pin_memory=pin,
        generator=torch.Generator().manual_seed(0),
        prefetch_factor=4 if workers else None,
        worker_init_fn=_background_worker if workers else None,
    )


def to_input(
    images: torch.Tensor,
    mean: Sequence[float] = (127.5, 127.5, 127.5),
    std: Sequence[float] = (127.5, 127.5, 127.5),
    channels_last: bool = True,
) -> torch.Tensor:
    """uint8 NHWC RGB → float NCHW ``(x − mean) / std`` (channels_last memory when asked)."""
    x = images.permute(0, 3, 1, 2).float()
    m = torch.tensor(mean, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(std, device=x.device).view(1, 3, 1, 1)
    x = (x - m) / s
    return x.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
