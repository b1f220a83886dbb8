"""Run an ONNX face embedder with onnxruntime on the CPU (one thread by default).

Before the session is built, graph inputs that are really weights are dropped with a small protobuf edit
(``card_io.strip_initializer_inputs``; SFace int8bq needs it), so neither ``onnx`` nor a rewritten file is
needed. The execution provider actually in use is checked, so a mismatched onnxruntime build cannot fall back
silently.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from shrinkface.runtime.card import ModelCard
from shrinkface.runtime.card_io import strip_initializer_inputs
from shrinkface.runtime.embed import Embedder, check_io
from shrinkface.runtime.errors import ModelError

_ORT_TYPES = {"tensor(float)": "float32", "tensor(int8)": "int8", "tensor(uint8)": "uint8"}


def _dims(shape: list[int | str | None]) -> list[int | None]:
    return [d if isinstance(d, int) and d > 0 else None for d in shape]


class OnnxEmbedder(Embedder):
    """An ONNX embedder; ``providers`` defaults to the CPU provider."""

    backend = "onnxruntime"

    def __init__(
        self,
        model: bytes,
        card: ModelCard,
        sha256: str,
        path: Path | None = None,
        threads: int = 1,
        providers: tuple[str, ...] = ("CPUExecutionProvider",),
    ) -> None:
        try:
            import onnxruntime as ort
        except ModuleNotFoundError as exc:  # pragma: no cover - the runtime extra installs it
            raise ModelError("running .onnx models needs onnxruntime: pip install 'shrinkface[runtime]'") from exc
        source = str(path) if path else "<onnx bytes>"
        missing = [p for p in providers if p not in ort.get_available_providers()]
        if missing:
            raise ModelError(
                f"onnxruntime {ort.__version__} has no {', '.join(missing)} "
                f"(available: {', '.join(ort.get_available_providers())})"
            )
        model, self.dropped_inputs = strip_initializer_inputs(model)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        # ORT's layout pass (NCHWc) makes these depthwise-heavy nets ~3× slower on one x86 core (measured:
        # faceplugin 67 ms → 23 ms CPU per image); the extended level keeps every fusion but that one.
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        if path is not None:  # the model is passed as bytes: tell onnxruntime where external weights live
            options.add_session_config_entry(
                "session.model_external_initializers_file_folder_path", str(path.resolve().parent)
            )
        try:
            self.session = ort.InferenceSession(model, options, providers=list(providers))
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/… types
            raise ModelError(f"onnxruntime cannot load {source}: {exc}") from exc
        used = self.session.get_providers()
        if not used or used[0] != providers[0]:
            raise ModelError(f"asked onnxruntime for {providers[0]}, but the session runs on {used}")
        self.provider = used[0]
        self.threads = threads
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1:
            raise ModelError(f"{source} needs {len(inputs)} inputs ({[i.name for i in inputs]}); an embedder has one")
        self._input, self._output = inputs[0].name, outputs[0].name
        dtype = _ORT_TYPES.get(inputs[0].type, inputs[0].type)
        batch = check_io(card, _dims(inputs[0].shape), dtype, _dims(outputs[0].shape), source)
        super().__init__(card, sha256, path, batch)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run([self._output], {self._input: batch})[0]
