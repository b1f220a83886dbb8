"""Golden vectors: for a few real LFW images, every step from landmarks to each exported file's embedding.

One JSON file per image (format ``shrinkface.embed_golden/1``, documented in tests/golden/README.md):
source image key and sha256, YuNet landmarks, template, the aligned crop, and for each model file (by sha256)
its card, the exact input tensor that ``ModelCard.preprocess`` makes, the raw output and the L2-normalised
embedding, plus the float torch model's embedding as reference. Arrays use the same encoding as the core
golden files (``{"dtype", "shape", "encoding": "gzip+base64", "data"}``, little-endian, C order); embeddings
are plain float lists. Another runtime (the Android core module, a Pi) reproduces each stage and compares.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from shrinkface.runtime.align import align_face
from shrinkface.runtime.card import ModelCard

FORMAT = "shrinkface.embed_golden/1"


def encode(array: np.ndarray) -> dict[str, Any]:
    """An array as ``{"dtype", "shape", "encoding": "gzip+base64", "data"}`` (little-endian, C order)."""
    array = np.ascontiguousarray(array)
    raw = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
    return {
        "dtype": array.dtype.name,
        "shape": list(array.shape),
        "encoding": "gzip+base64",
        "data": base64.b64encode(gzip.compress(raw, compresslevel=9, mtime=0)).decode("ascii"),
    }


def decode(entry: dict[str, Any]) -> np.ndarray:
    """The inverse of ``encode``."""
    if entry.get("encoding") != "gzip+base64":
        raise ValueError(f"unknown array encoding {entry.get('encoding')!r}")
    raw = gzip.decompress(base64.b64decode(entry["data"]))
    return np.frombuffer(raw, dtype=np.dtype(entry["dtype"]).newbyteorder("<")).reshape(entry["shape"]).copy()


def floats(values: np.ndarray) -> list[float]:
    """float32 values as JSON floats (the shortest decimal that reads back as the same float32)."""
    return [float(np.format_float_positional(v, unique=True)) for v in np.asarray(values, np.float32).ravel()]


def golden_case(
    source_key: str,
    image_rgb: np.ndarray,
    source_bytes: bytes,
    landmarks: np.ndarray,
    reference: tuple[ModelCard, np.ndarray],
    models: Sequence[Any],
) -> dict[str, Any]:
    """Golden record of one image; ``reference``: (float card, raw torch output); ``models``: embedders."""
    ref_card, ref_raw = reference
    crop = align_face(image_rgb, landmarks, ref_card.template_array(), tuple(ref_card.input_size))
    ref_emb = ref_raw / np.linalg.norm(ref_raw)
    inputs: dict[str, dict[str, Any]] = {}
    entries = []
    for emb in models:
        x = emb.card.preprocess(crop[None])
        key = hashlib.sha256(x.tobytes() + str(x.dtype).encode() + str(x.shape).encode()).hexdigest()[:16]
        inputs.setdefault(key, encode(x))
        raw = emb.raw(crop[None])[0]
        vec = raw / np.linalg.norm(raw)
        entry: dict[str, Any] = {
            "file": Path(emb.path).name if emb.path else None,
            "sha256": emb.sha256,
            "backend": emb.backend,
            "card": emb.card.to_dict(),
            "input": key,
            "raw_output": floats(raw),
            "embedding": floats(vec),
            "cosine_to_reference": float(np.dot(vec.astype(np.float64), ref_emb)),
        }
        if emb.card.output_scale is not None:  # the integer output the model produced
            q = np.round(raw / emb.card.output_scale + (emb.card.output_zero_point or 0)).astype(np.int64)
            entry["output_quantized"] = q.tolist()
        entries.append(entry)
    return {
        "format": FORMAT,
        "source": f"lfw/images/{source_key}",
        "source_sha256": hashlib.sha256(source_bytes).hexdigest(),
        "image_hw": list(image_rgb.shape[:2]),
        "landmarks": [[float(v) for v in p] for p in np.asarray(landmarks, np.float64)],
        "template": [list(p) for p in ref_card.template],
        "crop": encode(crop),
        "reference": {
            "what": "float torch model, no flip",
            "source_sha256": ref_card.source_sha256,
            "raw_output": floats(ref_raw),
            "embedding": floats(ref_emb),
        },
        "inputs": inputs,
        "models": entries,
    }


def write_golden(
    keys: Sequence[str],
    lfw_images: str | Path,
    model: Any,
    card: ModelCard,
    artifacts: Sequence[str | Path],
    out_dir: str | Path,
    prefix: str = "embed_",
    policy: str = "central",
) -> list[Path]:
    """Detect (YuNet), align and embed each LFW image ``keys``; one ``<prefix><Name_NNNN>.json`` per image."""
    import torch

    from shrinkface.runtime.assets import asset_path
    from shrinkface.runtime.detect import FaceDetector
    from shrinkface.runtime.embed import load_embedder
    from shrinkface.runtime.image import load_image

    detector = FaceDetector(asset_path("yunet"))
    embedders = [load_embedder(p) for p in artifacts]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for key in keys:
        path = Path(lfw_images) / key
        data = path.read_bytes()
        image = load_image(data)
        face = detector.detect_one(image, policy=policy)  # type: ignore[arg-type]
        crop = align_face(image, face.landmarks, card.template_array(), tuple(card.input_size))
        with torch.no_grad():
            raw = model.eval()(torch.from_numpy(card.preprocess(crop[None])))[0].numpy()
        record = golden_case(key, image, data, face.landmarks, (card, raw), embedders)
        target = out / f"{prefix}{Path(key).stem}.json"
        target.write_text(json.dumps(record, indent=1) + "\n")
        written.append(target)
    return written
