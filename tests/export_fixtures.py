"""Shared, cached inputs of tests/test_export.py and tests/test_parity.py (and tests/golden/make_embed_golden.py).

Two students go through the whole export path:

* ``prelu``: MobileFaceNet (PReLU, 512-d) warm-started from teacher C (faceplugin ``fr_feature.onnx``), i.e.
  real trained weights at no training cost (99.3 % on 600 LFW pairs). The int8 parity gate is checked on it.
* ``relu``: a narrow ReLU MobileFaceNet (width 0.25, 128-d), randomly initialised with its BatchNorm
  statistics re-estimated on real training faces: realistic activation ranges, untrained weights. It goes
  through every code path, its int8 files by QAT (a few steps: the mechanics, not the quality), but it is no
  model to hold to the int8 gate (cosine ≈ 0.8): that needs a trained ReLU checkpoint.

Everything heavy is computed once per session and cached here by key; the LFW faces are a small, evenly spread
subset of the View-2 pairs, aligned by the project's own pipeline (YuNet + ArcFace template).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

#: Export settings shared by the tests and the golden-vector script (the golden files record the result).
CALIB_SIZE = 128
PAIRS = 200  # LFW pairs (an even subset of the 10 folds)
PRELU = {"arch": "mobilefacenet", "embedding_size": 512, "width": 1.0, "activation": "prelu"}
RELU = {"arch": "mobilefacenet", "embedding_size": 128, "width": 0.25, "activation": "relu"}
#: The ReLU student's int8 files come from a short QAT run (mechanics only).
RELU_QAT = {"calib_size": 32, "qat_steps": 3, "qat_batch": 8}

_CACHE: dict[str, Any] = {}


def glint_crops(data_dir: Path, count: int, offset: int = 1) -> np.ndarray:
    """``count`` aligned 112×112 training crops (glint-celeb6), every 7th file from ``offset``."""
    import cv2

    files = sorted((data_dir / "glint-celeb6" / "images").glob("*/*.jpg"))[offset::7][:count]
    return np.stack([cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB) for f in files])


def make_checkpoint(kind: str, folder: Path, data_dir: Path) -> Path:
    """The ``prelu`` (warm-started) or ``relu`` (BN-recalibrated) student as a trainer-format checkpoint."""
    import torch

    from shrinkface.export.checkpoint import save_student_checkpoint
    from shrinkface.runtime.assets import asset_path
    from shrinkface.runtime.card import ModelCard
    from shrinkface.train.students import build_student
    from shrinkface.train.students.common import recalibrate_batchnorm

    torch.manual_seed(0)
    config = PRELU if kind == "prelu" else RELU
    model = build_student(**config)
    if kind == "prelu":
        from shrinkface.train.warmstart import warm_start_from_onnx

        warm_start_from_onnx(model, asset_path("faceplugin"))
    else:
        x = torch.from_numpy(ModelCard(name="x", embedding_size=128).preprocess(glint_crops(data_dir, 96, 3)))
        recalibrate_batchnorm(model, x)
    folder.mkdir(parents=True, exist_ok=True)
    return save_student_checkpoint(model, config, folder / f"{kind}.pt")


def checkpoint(kind: str, base: Path, data_dir: Path) -> Path:
    """Cached ``make_checkpoint``."""
    key = f"ckpt-{kind}"
    if key not in _CACHE:
        _CACHE[key] = make_checkpoint(kind, base / "checkpoints", data_dir)
    return _CACHE[key]


def exports(kind: str, base: Path, data_dir: Path) -> Any:
    """Cached ``export_checkpoint`` of a student: ONNX + TFLite, float + int8 (prelu: PTQ on CALIB_SIZE faces;
    relu: QAT with ``RELU_QAT``)."""
    key = f"export-{kind}"
    if key not in _CACHE:
        from shrinkface.export.exporter import export_checkpoint
        from shrinkface.export.formats import plan_exports

        os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")
        if kind == "prelu":
            targets = plan_exports("onnx,tflite", "float,int8", "ptq", options={"calib_size": CALIB_SIZE})
        else:
            targets = plan_exports("onnx,tflite", "float,int8", "qat", options=RELU_QAT)
        _CACHE[key] = export_checkpoint(checkpoint(kind, base, data_dir), base / f"out-{kind}", targets)
    return _CACHE[key]


def lfw_subset(base: Path, data_dir: Path) -> tuple[Any, list[str], np.ndarray]:
    """(pairs, keys, crops): the first pairs of every fold, their images aligned with ``shrinkface data align``."""
    if "lfw" not in _CACHE:
        from shrinkface.export.parity import load_lfw_crops
        from shrinkface.runtime import lfw
        from shrinkface.runtime.dataset import AlignSettings, align_folder
        from shrinkface.train.evaluate import subset_pairs

        pairs = subset_pairs(lfw.parse_pairs(data_dir / "lfw" / "pairs.txt"), PAIRS)
        src = base / "lfw-src" / "images"
        for key in pairs.image_keys:
            link = src / key
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.exists():
                link.symlink_to(data_dir / "lfw" / "images" / key)
        aligned = base / "lfw-aligned"
        align_folder(src, aligned, AlignSettings(policy="central"), workers=0, progress=False)
        _CACHE["lfw"] = load_lfw_crops(aligned, data_dir / "lfw" / "pairs.txt", PAIRS)
    return _CACHE["lfw"]


def parity(kind: str, base: Path, data_dir: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Cached parity report (and per-image cosines) of a student's four exported files on the LFW subset."""
    key = f"parity-{kind}"
    if key not in _CACHE:
        from shrinkface.export.checkpoint import load_student_checkpoint
        from shrinkface.export.parity import parity_report

        pairs, keys, crops = lfw_subset(base, data_dir)
        model, card = load_student_checkpoint(checkpoint(kind, base, data_dir))
        files = [a.path for a in exports(kind, base, data_dir).artifacts]
        _CACHE[key] = parity_report(model, card, files, pairs, keys, crops)
    return _CACHE[key]
