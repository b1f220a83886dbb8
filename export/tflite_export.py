"""TFLite files with the model card inside, converted straight from torch by litert-torch.

Float: the (folded) float module. int8: the PT2E-converted graph from ``qat.py`` with litert-torch's
``QuantConfig``; int8 input and int8 output, every conv/add int8, each PReLU a float island (``litert_prelu.py``:
XNNPACK has no int8 PReLU). The input is NHWC by default
(``litert_torch.to_channel_last_io``: camera frames are NHWC) and the batch is fixed at 1, the usual shape
on a phone. The int8 input/output scale and zero point written into the card are read back from the
converted file's own tensors (never assumed), and the interpreter must run the file before it is written.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from shrinkface.export.formats import ExportError
from shrinkface.export.litert_prelu import float_prelu_islands, native_prelu, prelu_slopes
from shrinkface.runtime.card import ModelCard
from shrinkface.runtime.card_io import write_card_tflite


def _interpreter(data: bytes) -> Any:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=data, num_threads=1)
    interpreter.allocate_tensors()
    return interpreter


def delegate_partitions(data: bytes) -> int:
    """How many XNNPACK partitions LiteRT makes of a .tflite file (1 = every op delegated; more = an op the
    delegate refuses splits the graph, and each split costs time)."""
    from shrinkface.runtime.bench_models import litert_ops

    return int(litert_ops(_interpreter(data))["delegate_partitions"])


def tflite_io(data: bytes) -> dict[str, Any]:
    """Input/output dtype, shape and (scale, zero point) of TFLite bytes, from the tensors themselves."""
    interpreter = _interpreter(data)

    def describe(details: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for d in details:
            params = d.get("quantization_parameters", {})
            scales, zps = list(params.get("scales", [])), list(params.get("zero_points", []))
            out.append(
                {
                    "name": d["name"],
                    "dtype": np.dtype(d["dtype"]).name,
                    "shape": [int(v) for v in d.get("shape_signature", d["shape"])],
                    "scale": float(scales[0]) if len(scales) == 1 else None,
                    "zero_point": int(zps[0]) if len(zps) == 1 else None,
                }
            )
        return out

    return {
        "inputs": describe(interpreter.get_input_details()),
        "outputs": describe(interpreter.get_output_details()),
    }


def card_for_tflite(data: bytes, card: ModelCard, layout: str) -> ModelCard:
    """``card`` completed from the converted file: layout, input dtype, fixed batch, int8 scale/zero point."""
    io = tflite_io(data)
    if len(io["inputs"]) != 1 or len(io["outputs"]) != 1:
        raise ExportError(
            f"the TFLite model has {len(io['inputs'])} inputs / {len(io['outputs'])} outputs, expected 1/1"
        )
    inp, out = io["inputs"][0], io["outputs"][0]
    changes: dict[str, Any] = {"layout": layout, "input_dtype": inp["dtype"], "fixed_batch": inp["shape"][0]}
    if inp["dtype"] in ("int8", "uint8"):
        if inp["scale"] is None:
            raise ExportError("the int8 TFLite input has no per-tensor scale/zero point")
        changes.update(input_scale=inp["scale"], input_zero_point=inp["zero_point"])
    elif inp["dtype"] != "float32":
        raise ExportError(f"unexpected TFLite input type {inp['dtype']}")
    if out["dtype"] in ("int8", "uint8"):
        if out["scale"] is None:
            raise ExportError("the int8 TFLite output has no per-tensor scale/zero point")
        changes.update(output_scale=out["scale"], output_zero_point=out["zero_point"])
    else:
        changes.update(output_scale=None, output_zero_point=None)
    return card.replace(**changes)


def convert_tflite(module: torch.nn.Module, card: ModelCard, layout: str = "NHWC", quantizer: Any = None) -> bytes:
    """litert-torch conversion of an NCHW module or graph (``quantizer``: the PT2E quantiser it came from)."""
    os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")  # its progress lines would go to stdout
    import litert_torch
    from litert_torch._convert.to_channel_last_io import to_channel_last_io
    from litert_torch.quantize.quant_config import QuantConfig

    if isinstance(module, torch.fx.GraphModule):
        from torchao.quantization.pt2e import allow_exported_model_train_eval

        allow_exported_model_train_eval(module)  # lets .eval() on a wrapper reach the exported graph
    h, w = card.input_size
    if layout == "NHWC":
        wrapped = to_channel_last_io(module, args=[0]).eval()
        sample = torch.zeros(1, h, w, 3)
    else:
        wrapped, sample = module.eval(), torch.zeros(1, 3, h, w)
    config = QuantConfig(pt2e_quantizer=quantizer) if quantizer is not None else None
    try:
        with native_prelu():  # one PRELU op per PReLU (litert_prelu.py)
            edge = litert_torch.convert(wrapped, (sample,), quant_config=config)
    except Exception as exc:
        raise ExportError(f"litert-torch conversion failed: {type(exc).__name__}: {exc}") from exc
    data = bytes(edge.model_content())
    if quantizer is not None:  # int8 PRELU → DEQUANTIZE, float PRELU, QUANTIZE: XNNPACK has no int8 PReLU
        data, _ = float_prelu_islands(data, prelu_slopes(module))
    return data


def _check_float(interpreter: Any, module: torch.nn.Module, card: ModelCard, layout: str) -> None:
    """A float file must reproduce the torch module on a random input (relative error < 1e-4)."""
    h, w = card.input_size
    x = torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = module.eval()(x).numpy()
    feed = x.permute(0, 2, 3, 1) if layout == "NHWC" else x
    detail = interpreter.get_input_details()[0]
    interpreter.set_tensor(detail["index"], np.ascontiguousarray(feed.numpy(), dtype=np.float32))
    interpreter.invoke()
    out = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    err = float(np.abs(out - ref).max() / max(float(np.abs(ref).max()), 1e-12))
    if not err < 1e-4:
        raise ExportError(f"the float TFLite model does not reproduce the torch model (relative error {err:.2e})")


def export_tflite(
    module: torch.nn.Module, card: ModelCard, path: str | Path, layout: str = "NHWC", quantizer: Any = None
) -> tuple[bytes, ModelCard]:
    """Convert, complete the card from the file's tensors, embed it, check that it runs, write ``path``."""
    raw = convert_tflite(module, card, layout, quantizer)
    full_card = card_for_tflite(raw, card, layout)
    if quantizer is not None and full_card.input_dtype != "int8":
        raise ExportError(f"the int8 TFLite model has a {full_card.input_dtype} input, expected int8")
    if quantizer is not None and full_card.output_scale is None:
        raise ExportError("the int8 TFLite model has a float output, expected int8 (is an op left unquantised?)")
    data = write_card_tflite(raw, full_card)
    try:
        interpreter = _interpreter(data)
        detail = interpreter.get_input_details()[0]
        interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
        interpreter.invoke()
    except Exception as exc:
        raise ExportError(f"the TFLite interpreter cannot run the exported model: {exc}") from exc
    if quantizer is None:
        _check_float(interpreter, module, card, layout)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data, full_card
