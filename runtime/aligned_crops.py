"""Real aligned face crops (never LFW) for int8 calibration, QAT and latency benchmarks; torch-free.

A source is either a folder written by ``shrinkface data align`` (``manifest.jsonl`` + ``align.json``; its
size and template must be the model card's) or a folder tree of images that are already aligned at the card's
input size (e.g. ``glint-celeb6/images``: 112×112 ArcFace-template crops). The subset is deterministic: the
sorted list, evenly spread, so the same request always calibrates on the same faces. LFW is the evaluation
set: a source inside ``$SHRINKFACE_DATA/lfw`` or an aligned folder made from LFW is refused.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np

from shrinkface.runtime.card import ModelCard
from shrinkface.runtime.config import DATA_ENV
from shrinkface.runtime.errors import DataError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def default_crops_dir() -> Path:
    """``$SHRINKFACE_DATA/glint-celeb6/images`` (aligned 112×112, identities disjoint from LFW)."""
    from shrinkface.runtime.config import data_dir

    return data_dir() / "glint-celeb6" / "images"


def _is_lfw(path: Path) -> bool:
    """True if ``path`` is (inside) the LFW data, or an aligned folder made from it."""
    resolved = path.resolve()
    roots = []
    if os.environ.get(DATA_ENV):
        roots.append((Path(os.environ[DATA_ENV]).expanduser() / "lfw").resolve())
    for root in roots:
        if resolved == root or root in resolved.parents:
            return True
    settings = path / "align.json"
    if settings.is_file():
        try:
            src = str(json.loads(settings.read_text()).get("src", ""))
        except (json.JSONDecodeError, OSError):
            src = ""
        if "/lfw/" in src.replace("\\", "/") + "/" or any(p.name == "lfw" for p in Path(src).parents):
            return True
    return any(part.lower() == "lfw" for part in resolved.parts)


def _spread(items: list[Path], count: int) -> list[Path]:
    if count >= len(items):
        return items
    idx = np.linspace(0, len(items) - 1, count).round().astype(int)
    return [items[i] for i in idx]


def list_crop_files(source: str | Path) -> list[Path]:
    """Every crop file of ``source`` (an aligned folder's ``ok`` crops, or every image under it), sorted."""
    root = Path(source).expanduser()
    if not root.is_dir():
        raise DataError(f"calibration folder {root} does not exist")
    if _is_lfw(root):
        raise DataError(
            f"{root} is LFW data: LFW is the evaluation set and must never calibrate or fine-tune a model; "
            "use training faces (glint-celeb6, UTKFace crops)"
        )
    if (root / "manifest.jsonl").is_file():
        from shrinkface.runtime.dataset import load_aligned_manifest

        files = sorted(r.crop for r in load_aligned_manifest(root) if r.crop is not None)
    else:
        files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise DataError(f"no images found under {root}")
    return files


def load_aligned_crops(source: str | Path, count: int, card: ModelCard) -> tuple[np.ndarray, list[str]]:
    """``count`` aligned RGB uint8 crops (N, H, W, 3) from ``source`` and their paths relative to it."""
    root = Path(source).expanduser()
    files = _spread(list_crop_files(root), count)
    settings = root / "align.json"
    if settings.is_file():
        info = json.loads(settings.read_text())
        if int(info.get("size", 0)) != card.input_size[0] or info.get("template", "arcface_112") != "arcface_112":
            raise DataError(
                f"{root} holds {info.get('size')}px {info.get('template')} crops; the model wants "
                f"{card.input_size[0]}px arcface_112: align again with the model's settings"
            )
    height, width = card.input_size
    crops = np.empty((len(files), height, width, 3), np.uint8)
    for i, path in enumerate(files):
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            raise DataError(f"{path}: not a readable image")
        if img.shape[:2] != (height, width):
            raise DataError(
                f"{path} is {img.shape[1]}×{img.shape[0]}, not an aligned {width}×{height} crop: align the "
                "folder first (`shrinkface data align`)"
            )
        crops[i] = img[..., ::-1]
    return crops, [str(p.relative_to(root)) for p in files]
