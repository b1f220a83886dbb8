"""Export one student checkpoint to the requested files, with the card inside each and a JSON log beside them.

Float files come from the checkpoint's model with the embedding BatchNorm folded (the same function). int8
files come from that model after activation equalisation (``equalize.py``, exact in float) and PT2E
PTQ/QAT (``qat.py``); one quantisation result serves every int8 file of a request (TFLite full-integer and
ONNX QDQ), or, with ``onnx_int8=ort``, onnxruntime's ``quantize_static`` on the equalised float ONNX.
The log ``export.json`` records, per file: format, quantisation, method used (and why, after a QAT fallback),
seconds, bytes and sha256; plus the source checkpoint's sha256, the calibration set and the tool versions.
The same inputs give the same bytes: no time or path that varies between runs goes into a file (only the log).
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from shrinkface.export.calib import default_calibration_dir, load_calibration_crops
from shrinkface.export.checkpoint import load_student_checkpoint
from shrinkface.export.formats import ExportTarget
from shrinkface.export.leaky import shared_prelu_as_leaky
from shrinkface.runtime.card import ModelCard

LOG_NAME = "export.json"
TOOLS = ("torch", "torchao", "onnx", "onnxscript", "onnxruntime", "litert-torch", "ai-edge-litert")


def tool_versions() -> dict[str, str]:
    """Installed versions of the conversion tools (written into cards and logs)."""
    out = {}
    for name in TOOLS:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


@dataclass
class Artifact:
    """One written file."""

    path: Path
    target: ExportTarget
    card: ModelCard
    seconds: float
    sha256: str
    size: int
    method: str | None = None
    #: XNNPACK partitions of a .tflite file (None for ONNX)
    partitions: int | None = None

    def log(self) -> dict[str, Any]:
        """JSON row of the export log."""
        return {
            "file": self.path.name,
            "format": self.target.format,
            "quant": self.target.quant,
            "method": self.method,
            "layout": self.card.layout,
            "input_dtype": self.card.input_dtype,
            "seconds": round(self.seconds, 2),
            "bytes": self.size,
            "sha256": self.sha256,
            "options": self.target.options,
            **({"delegate_partitions": self.partitions} if self.partitions is not None else {}),
        }


@dataclass
class ExportResult:
    """Everything one ``export_checkpoint`` call produced."""

    artifacts: list[Artifact]
    log_path: Path
    log: dict[str, Any] = field(default_factory=dict)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def export_checkpoint(
    checkpoint: str | Path,
    out_dir: str | Path,
    targets: list[ExportTarget],
    calib_dir: str | Path | None = None,
    stem: str | None = None,
    equalise: bool = True,
    say: Callable[[str], None] = lambda _msg: None,
) -> ExportResult:
    """Write every target for ``checkpoint`` into ``out_dir`` and the log ``export.json``; returns both."""
    from shrinkface.export.onnx_export import export_onnx, quantize_onnx_static
    from shrinkface.export.qat import fold_embedding_bn, quantize
    from shrinkface.export.tflite_export import delegate_partitions, export_tflite

    t_start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model, base = load_student_checkpoint(checkpoint)
    stem = stem or Path(checkpoint).stem
    folded, _ = shared_prelu_as_leaky(fold_embedding_bn(model, base.input_size))
    versions = tool_versions()
    int8 = [t for t in targets if t.quant == "int8"]
    calib_info: dict[str, Any] = {}
    quant_model, quant_result, calib_x = folded, None, None
    if int8:
        source = Path(calib_dir) if calib_dir is not None else default_calibration_dir()
        count = int(int8[0].options.get("calib_size", 256))
        crops, names = load_calibration_crops(source, count, base)
        calib_x = torch.from_numpy(base.preprocess(crops))
        calib_info = {
            "source": "/".join(source.resolve().parts[-2:]),
            "images": len(names),
            "list_sha256": _sha("\n".join(names).encode()),
        }
        say(f"calibration: {len(names)} aligned faces from {source}")
        eq_report: list[dict[str, Any]] = []
        if equalise:
            from shrinkface.export.equalize import equalize

            quant_model, eq_report = equalize(folded, calib_x[: min(len(calib_x), 128)])
        calib_info["equalised_chains"] = len(eq_report)
        method = int8[0].method or "ptq"
        if any(t.format == "tflite" or t.options.get("onnx_int8") == "pt2e" for t in int8):
            say(f"int8: {method} with torchao PT2E")
            quant_result = quantize(
                quant_model,
                calib_x,
                method,
                int8[0].options,
                progress=lambda step, loss: say(f"  QAT step {step}: loss {loss:.5f}"),
            )
            if quant_result.fallback_reason:
                say(f"  {quant_result.fallback_reason}")
    artifacts: list[Artifact] = []
    float_onnx_eq: bytes | None = None
    for target in targets:
        t0 = time.perf_counter()
        path = out / target.filename(stem)
        method_used = None
        settings: dict[str, Any] = {
            "format": target.format,
            "quant": target.quant,
            "layout": target.layout,
            "versions": versions,
            **{k: v for k, v in target.options.items()},
        }
        if target.quant == "int8":
            settings["calibration"] = calib_info
        if target.format == "onnx":
            if target.quant == "float":
                card = _card(base, settings, layout="NCHW")
                data = export_onnx(folded, card, path, opset=target.options["opset"])
            elif target.options.get("onnx_int8") == "pt2e" and quant_result is not None:
                method_used = quant_result.method
                settings["quantization"] = {**quant_result.summary(), "tool": "torchao-pt2e"}
                card = _card(base, settings, layout="NCHW")
                data = export_onnx(quant_result.onnx_graph, card, path, opset=target.options["opset"])
            else:
                method_used = "ptq"
                settings["quantization"] = {
                    "method": "ptq",
                    "requested": target.method or "ptq",
                    "tool": "onnxruntime.quantize_static",
                    "calib_images": len(calib_x),
                    "scheme": "QDQ per-channel S8S8 MinMax",
                }
                card = _card(base, settings, layout="NCHW")
                if float_onnx_eq is None:
                    float_onnx_eq = export_onnx(
                        quant_model, _card(base, {}, layout="NCHW"), None, opset=target.options["opset"]
                    )
                data = quantize_onnx_static(float_onnx_eq, calib_x.numpy(), card, path)
        else:
            if target.quant == "float":
                card = _card(base, settings, layout=target.layout)
                data, card = export_tflite(folded, card, path, layout=target.layout)
            else:
                assert quant_result is not None
                method_used = quant_result.method
                settings["quantization"] = {**quant_result.summary(), "tool": "torchao-pt2e + litert-torch"}
                card = _card(base, settings, layout=target.layout)
                data, card = export_tflite(
                    quant_result.graph, card, path, layout=target.layout, quantizer=quant_result.quantizer
                )
        art = Artifact(path, target, card, time.perf_counter() - t0, _sha(data), len(data), method_used)
        say(f"wrote {path} ({art.size / 1e6:.2f} MB, {art.seconds:.1f} s, sha256 {art.sha256[:12]}…)")
        if target.format == "tflite":
            art.partitions = delegate_partitions(data)
            if art.partitions != 1:
                say(f"  warning: XNNPACK runs {path.name} in {art.partitions} partitions (an op it refuses: slow)")
        artifacts.append(art)
    log = {
        "source": {"checkpoint": str(Path(checkpoint)), "sha256": base.source_sha256},
        "card": base.to_dict(),
        "calibration": calib_info or None,
        "quantization": quant_result.summary() if quant_result else None,
        "quantization_seconds": round(quant_result.seconds, 2) if quant_result else None,
        "artifacts": [a.log() for a in artifacts],
        "versions": versions,
        "python": platform.python_version(),
        "torch_threads": torch.get_num_threads(),
        "seconds": round(time.perf_counter() - t_start, 2),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    log_path = out / LOG_NAME
    log_path.write_text(json.dumps(log, indent=1, sort_keys=True) + "\n")
    return ExportResult(artifacts, log_path, log)


def _card(base: ModelCard, settings: dict[str, Any], layout: str) -> ModelCard:
    """The checkpoint's card with this file's layout and export settings (float32 until told otherwise)."""
    extra = dict(base.extra)
    if settings:
        extra["export"] = json.loads(json.dumps(settings, sort_keys=True, default=str))
    return base.replace(layout=layout, extra=extra)
