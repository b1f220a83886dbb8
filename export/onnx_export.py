"""ONNX files with the model card inside: float (``torch.onnx.export(dynamo=True)``) and int8 QDQ.

int8 comes two ways: ``quantize_onnx_static`` runs onnxruntime's ``quantize_static`` on the float file (QDQ,
per-channel, signed int8 weights and activations, MinMax calibration on real aligned training faces), or
``export_onnx`` is given the PT2E-converted graph from ``qat.py`` (its quantize/dequantize ops become
QuantizeLinear/DequantizeLinear). Either way the file's input and output stay float32 NCHW with a free batch
dimension, ``onnx.checker`` must pass, and onnxruntime must load and run it before the file is written.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from shrinkface.export.formats import ExportError
from shrinkface.runtime.card import ModelCard
from shrinkface.runtime.card_io import write_card_onnx

INPUT_NAME = "input"
OUTPUT_NAME = "embedding"


def _check_and_write(proto: Any, card: ModelCard, path: Path | None) -> bytes:
    """Put the card in, run the checker and onnxruntime once, write ``path`` (if given); returns the bytes."""
    import onnx
    import onnxruntime as ort

    for node in proto.graph.node:  # exporter debug info (stack traces with absolute source paths): the same
        del node.metadata_props[:]  # inputs must give the same bytes in any checkout
        node.doc_string = ""
    write_card_onnx(proto, card)
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"onnx.checker rejects the exported model: {exc}") from exc
    data = proto.SerializeToString()
    try:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        h, w = card.input_size
        session.run(None, {session.get_inputs()[0].name: np.zeros((2, 3, h, w), np.float32)})
    except Exception as exc:
        raise ExportError(f"onnxruntime cannot run the exported model: {exc}") from exc
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return data


def export_onnx(module: torch.nn.Module, card: ModelCard, path: str | Path | None, opset: int = 20) -> bytes:
    """Export an NCHW float module (or a PT2E-converted QDQ graph) with ``card`` inside; written to ``path``
    unless it is None. Returns the file's bytes."""
    h, w = card.input_size
    example = torch.randn(2, 3, h, w, generator=torch.Generator().manual_seed(0))
    batch = torch.export.Dim("batch", min=1, max=4096)
    try:
        program = torch.onnx.export(
            module,
            (example,),
            dynamo=True,
            opset_version=opset,
            dynamic_shapes=({0: batch},),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            verbose=False,
        )
    except Exception as exc:
        raise ExportError(f"torch.onnx.export failed: {type(exc).__name__}: {exc}") from exc
    if program is None:
        raise ExportError("torch.onnx.export returned no program")
    proto = program.model_proto
    proto.producer_name, proto.doc_string = "shrinkface", f"{card.name}: face embedding, card inside"
    return _check_and_write(proto, card, Path(path) if path is not None else None)


def quantize_onnx_static(
    float_onnx: bytes, inputs: np.ndarray, card: ModelCard, path: str | Path, batch: int = 16
) -> bytes:
    """int8 QDQ ONNX from float ONNX bytes, calibrated on preprocessed real faces ``inputs`` (N, 3, H, W)."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.calibrate import CalibrationDataReader

    class Reader(CalibrationDataReader):
        """The calibration faces in batches of ``batch``."""

        def __init__(self, x: np.ndarray) -> None:
            self._chunks = iter([{INPUT_NAME: x[i : i + batch]} for i in range(0, len(x), batch)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._chunks, None)

    reader = Reader(np.ascontiguousarray(inputs, dtype=np.float32))
    with tempfile.TemporaryDirectory(prefix="shrinkface-ortq-") as tmp:
        src, dst = Path(tmp) / "float.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(float_onnx)
        try:
            quantize_static(
                str(src),
                str(dst),
                reader,
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
                extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
            )
        except Exception as exc:
            raise ExportError(f"onnxruntime quantize_static failed: {type(exc).__name__}: {exc}") from exc
        proto = onnx.load(str(dst))
    del proto.metadata_props[:]  # the float file's card goes; the int8 card comes in _check_and_write
    return _check_and_write(proto, card, Path(path))


def onnx_io(data: bytes) -> dict[str, Any]:
    """Input/output names, element types and shapes of ONNX bytes (for cards and logs)."""
    import onnx

    proto = onnx.load_from_string(data)

    def describe(values: Any) -> list[dict[str, Any]]:
        out = []
        for v in values:
            t = v.type.tensor_type
            dims = [d.dim_param or d.dim_value for d in t.shape.dim]
            out.append(
                {
                    "name": v.name,
                    "dtype": onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name,
                    "shape": dims,
                }
            )
        return out

    return {"inputs": describe(proto.graph.input), "outputs": describe(proto.graph.output)}
