"""ModelCard: every preprocessing fact of an embedding model, in one place.

The card travels from training into the exported files (ONNX metadata_props, TFLite metadata) and into the
apps; nothing downstream re-guesses input size, layout, channel order, normalisation, quantisation, alignment
template or threshold. ``ModelCard.preprocess`` is the only place where a crop becomes a model input.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass, field
from typing import Any, Literal

import cv2
import numpy as np

from shrinkface.runtime.align import ARCFACE_112
from shrinkface.runtime.errors import ModelCardError

#: Key under which the card is stored inside ONNX metadata_props and TFLite metadata.
CARD_KEY = "shrinkface.model_card"
CARD_SCHEMA = 1

Layout = Literal["NCHW", "NHWC"]
ChannelOrder = Literal["RGB", "BGR"]
InputDType = Literal["float32", "int8", "uint8"]


@dataclass(frozen=True)
class ModelCard:
    """What a face-embedding model expects and produces.

    Model input = quantise((crop[channel_order] − mean) / std) laid out as ``layout``; when ``input_dtype`` is
    int8/uint8, q = round(x / input_scale) + input_zero_point (clipped). Outputs are dequantised with
    ``output_scale``/``output_zero_point`` when given, then L2-normalised by the embedder.
    """

    name: str
    embedding_size: int
    input_size: tuple[int, int] = (112, 112)  # (height, width)
    layout: Layout = "NCHW"
    channel_order: ChannelOrder = "RGB"
    mean: tuple[float, float, float] = (127.5, 127.5, 127.5)
    std: tuple[float, float, float] = (127.5, 127.5, 127.5)
    input_dtype: InputDType = "float32"
    input_scale: float | None = None
    input_zero_point: int | None = None
    output_scale: float | None = None
    output_zero_point: int | None = None
    fixed_batch: int | None = None  # a model whose batch dimension is frozen (e.g. 2)
    template: tuple[tuple[float, float], ...] = tuple(tuple(p) for p in ARCFACE_112.tolist())
    threshold: float | None = None  # cosine similarity at or above which two faces are the same person
    threshold_far: float | None = None  # the false-accept rate the threshold was calibrated for
    flip: bool = False  # add the mirrored crop's embedding before normalising
    licence: str = ""
    origin: str = ""
    source_sha256: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # export settings, training run, …
    schema: int = CARD_SCHEMA

    def __post_init__(self) -> None:
        problems: list[str] = []
        if self.embedding_size <= 0:
            problems.append(f"embedding_size must be positive, got {self.embedding_size}")
        if len(self.input_size) != 2 or min(self.input_size) <= 0:
            problems.append(f"input_size must be (height, width), got {self.input_size}")
        if self.layout not in ("NCHW", "NHWC"):
            problems.append(f"layout must be NCHW or NHWC, got {self.layout!r}")
        if self.channel_order not in ("RGB", "BGR"):
            problems.append(f"channel_order must be RGB or BGR, got {self.channel_order!r}")
        if self.input_dtype not in ("float32", "int8", "uint8"):
            problems.append(f"input_dtype must be float32, int8 or uint8, got {self.input_dtype!r}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            problems.append("mean and std need three values each, std > 0")
        if self.input_dtype != "float32" and (self.input_scale is None or self.input_zero_point is None):
            problems.append(f"{self.input_dtype} input needs input_scale and input_zero_point")
        if len(self.template) != 5:
            problems.append("template needs 5 points")
        if self.schema > CARD_SCHEMA:
            problems.append(f"card schema {self.schema} is newer than this shrinkface understands ({CARD_SCHEMA})")
        if problems:
            raise ModelCardError(f"invalid model card {self.name!r}: " + "; ".join(problems))

    # -- preprocessing --------------------------------------------------------------------------------------
    def template_array(self) -> np.ndarray:
        """The alignment template as a (5, 2) float64 array in crop pixels."""
        return np.asarray(self.template, dtype=np.float64)

    def _normalise(self, x: np.ndarray) -> np.ndarray:
        """Float (x[channel_order] − mean) / std, then quantised when the input is integer (NHWC in, NHWC out)."""
        x = x.astype(np.float32)
        if self.channel_order == "BGR":
            x = x[..., ::-1]
        x = (x - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        if self.input_dtype == "float32":
            return x
        info = np.iinfo(np.int8 if self.input_dtype == "int8" else np.uint8)
        q = np.round(x / self.input_scale) + self.input_zero_point
        return np.clip(q, info.min, info.max).astype(info.dtype)

    @functools.cached_property
    def _lookup(self) -> np.ndarray:
        """(256, 3) table: every uint8 value of every output channel through ``_normalise`` (same float ops)."""
        return np.ascontiguousarray(self._normalise(np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)))

    def preprocess(self, crops_rgb: np.ndarray) -> np.ndarray:
        """Turn aligned RGB uint8 crops (N, H, W, 3) into the model's input tensor.

        Integer inputs (int8/uint8 models) go through a 256-entry table per channel built with the same float
        arithmetic, so the result is bit-identical to the float path at a fraction of its cost."""
        crops_rgb = np.asarray(crops_rgb)
        if crops_rgb.ndim == 3:
            crops_rgb = crops_rgb[None]
        height, width = self.input_size
        if crops_rgb.shape[1:] != (height, width, 3):
            raise ValueError(f"{self.name} expects {height}×{width}×3 crops, got {crops_rgb.shape[1:]}")
        if self.input_dtype != "float32" and crops_rgb.dtype == np.uint8:
            src = crops_rgb[..., ::-1] if self.channel_order == "BGR" else crops_rgb
            rows = np.ascontiguousarray(src).reshape(-1, width, 3)  # cv2.LUT takes one 2-D, 3-channel image
            x = cv2.LUT(rows, self._lookup.reshape(256, 1, 3)).reshape(crops_rgb.shape)
        else:
            x = self._normalise(crops_rgb)
        if self.layout == "NCHW":
            x = x.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(x)

    def dequantize_output(self, y: np.ndarray) -> np.ndarray:
        """Model output → float32 (dequantised when the output is integer)."""
        y = np.asarray(y)
        if self.output_scale is not None and np.issubdtype(y.dtype, np.integer):
            return (y.astype(np.float32) - float(self.output_zero_point or 0)) * float(self.output_scale)
        return y.astype(np.float32)

    # -- (de)serialisation ----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        data = dataclasses.asdict(self)
        data["input_size"] = list(self.input_size)
        data["template"] = [list(p) for p in self.template]
        return data

    def to_json(self) -> str:
        """Canonical JSON (sorted keys) so that the same card gives the same bytes."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelCard:
        """Build a card from a dict, refusing unknown keys with a clear message."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ModelCardError(f"model card has unknown fields {sorted(unknown)}")
        if "name" not in data or "embedding_size" not in data:
            raise ModelCardError("model card needs at least 'name' and 'embedding_size'")
        kwargs = dict(data)
        for key in ("input_size", "mean", "std"):
            if key in kwargs:
                kwargs[key] = tuple(kwargs[key])
        if "template" in kwargs:
            kwargs["template"] = tuple(tuple(float(v) for v in p) for p in kwargs["template"])
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise ModelCardError(f"invalid model card: {exc}") from exc

    @classmethod
    def from_json(cls, text: str | bytes) -> ModelCard:
        """Parse a card from JSON text."""
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ModelCardError(f"model card is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ModelCardError("model card JSON must be an object")
        return cls.from_dict(data)

    def replace(self, **changes: Any) -> ModelCard:
        """A copy with some fields changed (e.g. a calibrated threshold)."""
        return dataclasses.replace(self, **changes)
