"""Face embedders: aligned RGB crops → L2-normalised embeddings, whatever runs the model.

``Embedder`` does everything that is not the runtime itself: the card's preprocessing, batching around a
frozen batch size (the last batch is padded), optional flip-averaging, dequantisation and normalisation.
Backends (``onnx_backend.OnnxEmbedder``, ``tflite_backend.TFLiteEmbedder``) only run one input tensor.
``load_embedder`` tells ONNX from TFLite by the file's bytes and takes the model card from inside the file.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from shrinkface.runtime.card import ModelCard
from shrinkface.runtime.card_io import card_from_bytes, model_format, read_model_bytes
from shrinkface.runtime.errors import AssetError, ModelCardError, ModelError

#: Largest batch handed to a model whose batch dimension is free.
MAX_BATCH = 32


class Embedder(ABC):
    """A face-embedding model with its card. Subclasses implement ``_run`` (one batch, raw first output)."""

    backend: str = ""

    def __init__(self, card: ModelCard, sha256: str, path: Path | None = None, batch: int | None = None) -> None:
        self.card = card
        self.sha256 = sha256
        self.path = path
        #: the batch size every call to ``_run`` must have (None: any size up to ``MAX_BATCH``)
        self.batch = batch

    @property
    def embedding_size(self) -> int:
        """Length D of an embedding."""
        return self.card.embedding_size

    @abstractmethod
    def _run(self, batch: np.ndarray) -> np.ndarray:
        """Run the model on one preprocessed batch; returns its first output, batch first."""

    def __repr__(self) -> str:
        where = self.path.name if self.path else "<memory>"
        return f"{type(self).__name__}({self.card.name!r}, {where}, D={self.embedding_size})"

    def _check_crops(self, crops: np.ndarray) -> np.ndarray:
        crops = np.asarray(crops)
        if crops.ndim == 3:
            crops = crops[None]
        height, width = self.card.input_size
        if crops.ndim != 4 or crops.shape[1:] != (height, width, 3):
            raise ValueError(f"{self.card.name} expects (N, {height}, {width}, 3) RGB crops, got {crops.shape}")
        if crops.dtype != np.uint8:
            raise ValueError(f"{self.card.name} expects uint8 crops (0–255), got {crops.dtype}")
        return crops

    def raw(self, crops_rgb: np.ndarray) -> np.ndarray:
        """Dequantised, unnormalised model outputs (N, D) for aligned RGB uint8 crops (N, H, W, 3)."""
        crops = self._check_crops(crops_rgb)
        count = len(crops)
        out = np.empty((count, self.embedding_size), dtype=np.float32)
        step = self.batch or MAX_BATCH
        for start in range(0, count, step):
            x = self.card.preprocess(crops[start : start + step])
            real = len(x)
            if self.batch and real < self.batch:  # pad a frozen batch with copies of the first row
                x = np.concatenate([x, np.repeat(x[:1], self.batch - real, axis=0)])
            y = self.card.dequantize_output(self._run(x)).reshape(len(x), -1)
            if y.shape[1] != self.embedding_size:
                raise ModelCardError(
                    f"{self.card.name}: the model gave {y.shape[1]} values per face, the card says "
                    f"{self.embedding_size}"
                )
            out[start : start + real] = y[:real]
        return out

    def embed(self, crops_rgb: np.ndarray, flip: bool | None = None) -> np.ndarray:
        """L2-normalised float32 embeddings (N, D) of aligned RGB uint8 crops (N, H, W, 3).

        With ``flip`` (default: ``card.flip``) the raw embedding of the mirrored crop is added first.
        """
        crops = self._check_crops(crops_rgb)
        flip = self.card.flip if flip is None else flip
        if flip and len(crops):
            both = self.raw(np.concatenate([crops, crops[:, :, ::-1]]))
            y = both[: len(crops)] + both[len(crops) :]
        else:
            y = self.raw(crops)
        norms = np.linalg.norm(y, axis=1, keepdims=True)
        return (y / np.maximum(norms, 1e-12)).astype(np.float32)

    def embed_one(self, crop_rgb: np.ndarray, flip: bool | None = None) -> np.ndarray:
        """The (D,) embedding of one crop."""
        return self.embed(np.asarray(crop_rgb)[None], flip=flip)[0]


def check_io(
    card: ModelCard,
    input_shape: Sequence[int | None],
    input_dtype: str,
    output_shape: Sequence[int | None],
    source: str,
) -> int | None:
    """Compare the card with a model's input/output (None = free dimension); returns the frozen batch size.

    Raises ``ModelCardError`` naming every mismatch.
    """
    height, width = card.input_size
    problems = []
    dims = list(input_shape)
    if len(dims) != 4:
        problems.append(f"the model input has rank {len(dims)}, expected 4 ({card.layout})")
    else:
        want = {"NCHW": [3, height, width], "NHWC": [height, width, 3]}
        if any(d is not None and d != w for d, w in zip(dims[1:], want[card.layout], strict=True)):
            other = "NHWC" if card.layout == "NCHW" else "NCHW"
            hint = (
                f" (it looks {other})"
                if all(d is None or d == w for d, w in zip(dims[1:], want[other], strict=True))
                else ""
            )
            problems.append(f"the model input is {dims[1:]}{hint}, the card says {card.layout} {want[card.layout]}")
    if input_dtype != card.input_dtype:
        problems.append(f"the model input is {input_dtype}, the card says {card.input_dtype}")
    rest = list(output_shape)[1:]
    if rest and all(d is not None for d in rest) and int(np.prod(rest)) != card.embedding_size:
        problems.append(f"the model output is {list(output_shape)}, the card says {card.embedding_size}-d")
    model_batch = dims[0] if dims else None
    if card.fixed_batch and model_batch is not None and model_batch != card.fixed_batch:
        problems.append(f"the model's batch is fixed at {model_batch}, the card says {card.fixed_batch}")
    if problems:
        raise ModelCardError(f"model card {card.name!r} does not fit {source}: " + "; ".join(problems))
    return model_batch if model_batch is not None else card.fixed_batch


def load_embedder(path: str | Path, card: ModelCard | None = None, threads: int = 1) -> Embedder:
    """An embedder for an .onnx or .tflite file (told apart by its bytes), using the card inside the file.

    ``card`` overrides the file's card (needed for third-party files that carry none). Wrong or truncated
    files raise ``ModelError``; a missing or unfitting card raises ``ModelCardError``.
    """
    path = Path(path)
    data = read_model_bytes(path)
    kind = model_format(data, str(path))
    if card is None:
        card = card_from_bytes(data, str(path))
    if card is None:
        raise ModelCardError(
            f"{path} carries no shrinkface model card; pass card=… (a ModelCard) or export it with `shrinkface export`"
        )
    sha256 = hashlib.sha256(data).hexdigest()
    if kind == "onnx":
        from shrinkface.runtime.onnx_backend import OnnxEmbedder

        return OnnxEmbedder(data, card, sha256=sha256, path=path, threads=threads)
    from shrinkface.runtime.tflite_backend import TFLiteEmbedder

    return TFLiteEmbedder(data, card, sha256=sha256, path=path, threads=threads)


def load_asset_embedder(name: str, threads: int = 1) -> Embedder:
    """A third-party teacher from the asset manifest (``sface``, ``expo_mobilefacenet``, ``faceplugin``),
    with the manifest's card."""
    from shrinkface.runtime.assets import asset_path, get_asset

    asset = get_asset(name)
    if asset.card is None:
        raise AssetError(f"asset {name!r} ({asset.role}) is not a face embedder: it has no model card")
    return load_embedder(asset_path(name), card=asset.card, threads=threads)


def resolve_embedder(spec: str, card: ModelCard | None = None, threads: int = 1) -> Embedder:
    """``spec`` is a model file (.onnx/.tflite with a card, or ``card`` given) or an asset name (``faceplugin``…)."""
    from shrinkface.runtime.assets import load_manifest

    path = Path(spec).expanduser()
    if path.is_file():
        return load_embedder(path, card=card, threads=threads)
    if path.suffix.lower() in (".onnx", ".tflite") or "/" in spec:
        raise ModelError(f"model file {spec} not found")
    if spec in load_manifest():
        return load_asset_embedder(spec, threads=threads)
    raise ModelError(f"model {spec!r} is neither a model file nor an asset name (see `shrinkface assets list`)")
