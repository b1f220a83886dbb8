"""Run a TFLite face embedder with ``ai_edge_litert.interpreter.Interpreter`` (XNNPACK, 1 thread by default).

int8/uint8 inputs and outputs are quantised/dequantised with the card's parameters, which must agree with the
tensors' own quantisation parameters. A free batch dimension is resized on demand; a frozen one (expo
MobileFaceNet: 2) is padded by ``Embedder``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from shrinkface.runtime.card import ModelCard
from shrinkface.runtime.embed import Embedder, check_io
from shrinkface.runtime.errors import ModelCardError, ModelError


def _dims(detail: dict[str, Any]) -> list[int | None]:
    signature = detail.get("shape_signature", detail["shape"])
    return [int(d) if d > 0 else None for d in signature]


def _quant(detail: dict[str, Any]) -> tuple[float, int]:
    params = detail.get("quantization_parameters", {})
    scales, zero_points = params.get("scales", []), params.get("zero_points", [])
    if len(scales) == 1:
        return float(scales[0]), int(zero_points[0])
    scale, zero_point = detail.get("quantization", (0.0, 0))
    return float(scale), int(zero_point)


def _check_quant(card: ModelCard, detail: dict[str, Any], which: str, scale: float | None, zp: int | None) -> None:
    if np.dtype(detail["dtype"]).kind not in "iu":
        return
    own_scale, own_zp = _quant(detail)
    if scale is None or zp is None:
        raise ModelCardError(
            f"model card {card.name!r}: the model's {which} is {np.dtype(detail['dtype'])} "
            f"(scale {own_scale:g}, zero point {own_zp}) but the card gives no "
            f"{which}_scale/{which}_zero_point"
        )
    if not np.isclose(scale, own_scale, rtol=1e-5, atol=0.0) or zp != own_zp:
        raise ModelCardError(
            f"model card {card.name!r}: {which} quantisation is scale {scale:g}, zero point {zp} in the card "
            f"but scale {own_scale:g}, zero point {own_zp} in the model"
        )


class TFLiteEmbedder(Embedder):
    """A TFLite embedder."""

    backend = "litert"

    def __init__(self, model: bytes, card: ModelCard, sha256: str, path: Path | None = None, threads: int = 1) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ModuleNotFoundError as exc:  # pragma: no cover - the runtime extra installs it
            raise ModelError("running .tflite models needs ai-edge-litert: pip install 'shrinkface[runtime]'") from exc
        source = str(path) if path else "<tflite bytes>"
        try:
            self.interpreter = Interpreter(model_content=model, num_threads=threads)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"LiteRT cannot load {source} (truncated or corrupt?): {exc}") from exc
        self._model = model  # the interpreter reads from this buffer
        self.threads = threads
        inputs, outputs = self.interpreter.get_input_details(), self.interpreter.get_output_details()
        if len(inputs) != 1:
            raise ModelError(f"{source} has {len(inputs)} inputs; an embedder has one")
        self._in, self._out = inputs[0], outputs[0]
        dtype = np.dtype(self._in["dtype"]).name
        batch = check_io(card, _dims(self._in), dtype, _dims(self._out), source)
        _check_quant(card, self._in, "input", card.input_scale, card.input_zero_point)
        _check_quant(card, self._out, "output", card.output_scale, card.output_zero_point)
        self._shape = tuple(int(d) for d in self._in["shape"])
        super().__init__(card, sha256, path, batch)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        if batch.shape != self._shape:  # a free dimension: resize, then re-plan memory
            self.interpreter.resize_tensor_input(self._in["index"], list(batch.shape), strict=True)
            self.interpreter.allocate_tensors()
            self._shape = batch.shape
        self.interpreter.set_tensor(self._in["index"], batch)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._out["index"]).copy()
