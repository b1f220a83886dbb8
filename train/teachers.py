"""Teachers: black box (a runtime embedder whose embeddings are cached) or white box (a torch module).

- Black box: ``shrinkface.runtime.embed.load_asset_embedder(name)`` (or ``load_embedder(path)``); only its
  embeddings of each training crop and its mirror are used, from the cache (``cache.py``).
- White box: an ONNX float teacher (or one with weight-only int8 blocks, folded to float first: ``onnx_fold.py``)
  converted with onnx2torch (a ``torch.fx.GraphModule``), or a float TFLite teacher run as a torch graph
  (``tflite_torch.py``; expo's MobileFaceNet). An ONNX Reshape whose constant shape starts with a batch of 1
  (faceplugin's ``[1, -1]``) is rewritten to ``[0, -1]`` (keep the batch dimension). Intermediate feature maps
  are exposed by node name, or as ``s4``/``s8``/``s16`` (the keys the students use): at stride 4/8/16 (one
  shape probe), the last node with the fewest channels, i.e. the last bottleneck-stage output before the next
  expansion (faceplugin: Add_32, Add_73, Add_90).
- Ensemble: several teachers of any sizes with weights (normalised per loss term); the losses that need a
  common size get per-teacher projection heads in the objective.
Every teacher has a ``fingerprint`` (sha256 of model bytes + the card's embedding facts) keying its cache.
"""

from __future__ import annotations

import functools
import hashlib
import json
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from shrinkface.runtime.card import ModelCard
from shrinkface.runtime.errors import ModelError
from shrinkface.train.config import TeacherConfig, expand_path
from shrinkface.train.onnx_fold import fold_weight_quantization

STRIDE_KEYS = {"s4": 4, "s8": 8, "s16": 16}


#: Card fields that change what the teacher computes from a crop (a calibrated threshold, licence or origin
#: text does not, so it keeps the cache valid).
EMBEDDING_FIELDS = (
    "embedding_size",
    "input_size",
    "layout",
    "channel_order",
    "mean",
    "std",
    "input_dtype",
    "input_scale",
    "input_zero_point",
    "output_scale",
    "output_zero_point",
    "template",
)


def fingerprint(model_sha256: str, card: ModelCard) -> str:
    """sha256 over the model file's sha256 and the card fields that affect the embeddings."""
    facts = {k: v for k, v in card.to_dict().items() if k in EMBEDDING_FIELDS}
    return hashlib.sha256(f"{model_sha256}\n{json.dumps(facts, sort_keys=True)}".encode()).hexdigest()


def _resolve(asset: str) -> tuple[Path, ModelCard | None]:
    """An asset name (with its manifest card) or a model file path (card from inside the file)."""
    from shrinkface.runtime.assets import asset_path, load_manifest

    manifest = load_manifest()
    if asset in manifest:
        return asset_path(asset), manifest[asset].card
    path = expand_path(asset)
    if not path.is_file():
        raise ModelError(f"teacher {asset!r} is neither an asset name ({', '.join(sorted(manifest))}) nor a file")
    return path, None


def resolve_model_path(asset: str) -> Path:
    """The file of an asset name or a model path (checked)."""
    return _resolve(asset)[0]


def load_blackbox_embedder(asset: str) -> Any:
    """The runtime embedder of an asset name or model file (picklable as ``functools.partial``)."""
    from shrinkface.runtime.assets import load_manifest
    from shrinkface.runtime.embed import load_asset_embedder, load_embedder

    if asset in load_manifest():
        return load_asset_embedder(asset)
    path, _ = _resolve(asset)  # a clear error for a name that is neither an asset nor a file
    return load_embedder(path)


# -- onnx2torch ----------------------------------------------------------------------------------------------
def _import_onnx2torch() -> Any:
    """Import onnx2torch; if a broken torchvision (e.g. a CUDA wheel beside CPU torch) stops it, retry with a
    stand-in torchvision whose ops raise — face embedders use no NMS/RoIAlign."""
    try:
        import onnx2torch

        return onnx2torch
    except Exception as exc:  # torchvision fails with RuntimeError/OSError/ImportError when mismatched
        if "torchvision" not in str(exc) and not any(n.startswith("torchvision") for n in sys.modules):
            raise
        for name in [n for n in sys.modules if n.startswith(("torchvision", "onnx2torch"))]:
            del sys.modules[name]

        why = str(exc)

        def broken(*_: Any, **__: Any) -> Any:
            raise ModelError(f"torchvision is unusable here ({why}); reinstall it to match torch")

        tv, ops = types.ModuleType("torchvision"), types.ModuleType("torchvision.ops")
        ops.nms = ops.batched_nms = ops.box_convert = ops.roi_align = broken  # type: ignore[attr-defined]
        tv.ops = ops  # type: ignore[attr-defined]
        sys.modules["torchvision"], sys.modules["torchvision.ops"] = tv, ops
        import onnx2torch

        return onnx2torch


def onnx_to_torch(path: Path) -> torch.fx.GraphModule:
    """Convert an ONNX float model to a torch.fx GraphModule that accepts any batch size."""
    import onnx
    from onnx import numpy_helper

    model, _ = fold_weight_quantization(onnx.load(str(path)))  # SFace's int8 blocks → float weights
    inits = {init.name: init for init in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Reshape" and len(node.input) > 1 and node.input[1] in inits:
            shape = numpy_helper.to_array(inits[node.input[1]])
            if shape.ndim == 1 and len(shape) >= 2 and shape[0] == 1:
                fixed = shape.copy()
                fixed[0] = 0  # ONNX Reshape: 0 copies the input's dimension (the batch)
                inits[node.input[1]].CopyFrom(numpy_helper.from_array(fixed, node.input[1]))
    for inp in model.graph.input:  # a frozen batch of 1 in the declared input shape
        dims = inp.type.tensor_type.shape.dim
        if len(dims) == 4 and dims[0].dim_value == 1:
            dims[0].dim_param = "N"
    try:
        return _import_onnx2torch().convert(model)
    except Exception as exc:
        raise ModelError(f"onnx2torch cannot convert {path}: {exc}") from exc


class WhiteBoxTeacher(nn.Module):
    """A frozen torch teacher: ``forward(uint8 NHWC RGB) → (L2-normalised embedding, {feature: map})``."""

    def __init__(self, graph: nn.Module, card: ModelCard, features: list[str] | None = None) -> None:
        super().__init__()
        if card.layout != "NCHW" or card.input_dtype != "float32":
            raise ModelError(
                f"white-box teacher {card.name}: needs a float NCHW model, the card says "
                f"{card.input_dtype} {card.layout}"
            )
        self.net = graph.eval()
        self.card = card
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.register_buffer("mean", torch.tensor(card.mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(card.std, dtype=torch.float32).view(1, 3, 1, 1))
        self.feature_names = self._resolve_features(list(features or []))
        self._captured: dict[str, torch.Tensor] = {}
        modules = dict(self.net.named_modules())
        for key, node in self.feature_names.items():
            modules[node].register_forward_hook(functools.partial(self._capture, key))

    def _capture(self, key: str, _module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        self._captured[key] = output

    def node_shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        """(module name, output shape) of every graph module in execution order, for one input."""
        h, w = self.card.input_size
        shapes: list[tuple[str, tuple[int, ...]]] = []
        hooks = [
            m.register_forward_hook(lambda _m, _i, o, n=name: shapes.append((n, tuple(o.shape))))
            for name, m in self.net.named_modules()
            if name and not list(m.children()) and name != "initializers"
        ]
        try:
            with torch.no_grad():
                self.net(torch.zeros(1, 3, h, w))
        finally:
            for hook in hooks:
                hook.remove()
        return [(n, s) for n, s in shapes if isinstance(s, tuple)]

    def _resolve_features(self, requested: list[str]) -> dict[str, str]:
        if not requested:
            return {}
        shapes = self.node_shapes()
        names = {n for n, _ in shapes}
        out: dict[str, str] = {}
        h = self.card.input_size[0]
        for req in requested:
            if req in STRIDE_KEYS:
                at = [(n, s[1]) for n, s in shapes if len(s) == 4 and s[2] == h // STRIDE_KEYS[req]]
                if not at:
                    raise ModelError(f"{self.card.name}: no feature map at stride {STRIDE_KEYS[req]}")
                narrow = min(c for _, c in at)  # the linear-bottleneck (stage output) width
                out[req] = [n for n, c in at if c == narrow][-1]
            elif req in names:
                out[req] = req
            else:
                raise ModelError(f"{self.card.name}: no graph node {req!r}; nodes: {sorted(names)[:20]} …")
        return out

    def feature_channels(self) -> dict[str, int]:
        """Channels of each exposed feature map."""
        shapes = dict(self.node_shapes())
        return {key: shapes[node][1] for key, node in self.feature_names.items()}

    @property
    def embedding_size(self) -> int:
        return self.card.embedding_size

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 NHWC RGB → the model's float NCHW input per its card."""
        x = images.permute(0, 3, 1, 2).float()
        if self.card.channel_order == "BGR":
            x = x.flip(1)
        return (x - self.mean) / self.std

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        self._captured = {}
        emb = self.net(self.preprocess(images)).flatten(1)
        feats, self._captured = self._captured, {}
        return F.normalize(emb.float(), dim=1), feats


class TorchEmbedder:
    """The runtime embedder interface (``embed``, ``card``, ``sha256``) over a white-box teacher, so the
    teacher cache treats both kinds alike."""

    def __init__(self, teacher: WhiteBoxTeacher, sha256: str, batch: int = 64) -> None:
        self.teacher, self.card, self.sha256, self.batch = teacher, teacher.card, sha256, batch

    def embed(self, crops_rgb: np.ndarray, flip: bool | None = False) -> np.ndarray:
        """L2-normalised embeddings; ``flip`` adds the mirrored crop's embedding first (default off).

        Flushes subnormal floats in the calling thread first (``fast_float_mode``): faceplugin's activations are
        full of them, and the teacher cache filled 6–7× slower without (15.3 vs 90–105 crops/s on one idle core,
        identical embeddings: bench/whitebox_denormal.py). Here, not at construction, because creating an ONNX
        Runtime session (a black-box teacher built later) clears the flag again."""
        from shrinkface.train.cpu_tuning import fast_float_mode

        fast_float_mode()
        if flip:
            both = self.embed(np.concatenate([crops_rgb, crops_rgb[:, :, ::-1]]), flip=False)
            n = len(crops_rgb)
            summed = both[:n] + both[n:]
            return summed / np.linalg.norm(summed, axis=1, keepdims=True)
        out = [
            self.teacher(torch.from_numpy(np.ascontiguousarray(crops_rgb[i : i + self.batch])))[0].numpy()
            for i in range(0, len(crops_rgb), self.batch)
        ]
        return np.concatenate(out).astype(np.float32)


def load_whitebox(asset: str, features: tuple[str, ...] = ()) -> tuple[WhiteBoxTeacher, str]:
    """(white-box teacher, model sha256) for an asset name or .onnx path."""
    from shrinkface.runtime.assets import sha256_file
    from shrinkface.runtime.card_io import read_card

    path, card = _resolve(asset)
    card = card or read_card(path)
    if card is None:
        raise ModelError(f"{path} carries no model card; a white-box teacher needs its preprocessing facts")
    if path.suffix == ".tflite":  # e.g. expo's MobileFaceNet; the torch graph takes NCHW whatever the file does
        from shrinkface.train.tflite_torch import TFLiteGraph

        return WhiteBoxTeacher(TFLiteGraph(path), card.replace(layout="NCHW"), list(features)), sha256_file(path)
    return WhiteBoxTeacher(onnx_to_torch(path), card, list(features)), sha256_file(path)


def whitebox_embedder(asset: str) -> TorchEmbedder:
    """A ``TorchEmbedder`` for an asset (module-level, so ``functools.partial`` of it pickles)."""
    torch.set_num_threads(1)
    teacher, sha = load_whitebox(asset)
    return TorchEmbedder(teacher, sha)


@dataclass
class Teacher:
    """One configured teacher: its embedder (for the cache), fingerprint, size, weight, and the torch module
    of a white-box teacher."""

    cfg: TeacherConfig
    embedder: Any
    factory: Any
    fingerprint: str
    dim: int
    module: WhiteBoxTeacher | None = None

    @property
    def name(self) -> str:
        return self.cfg.name

    @property
    def weight(self) -> float:
        return self.cfg.weight


def build_teacher(cfg: TeacherConfig) -> Teacher:
    """Load a configured teacher."""
    if cfg.kind == "whitebox":
        module, sha = load_whitebox(cfg.asset, tuple(cfg.features))
        embedder = TorchEmbedder(module, sha)
        factory = functools.partial(whitebox_embedder, cfg.asset)
    else:
        if cfg.features:
            raise ModelError(f"teacher {cfg.name!r}: a black-box teacher exposes no features; use kind: whitebox")
        embedder = load_blackbox_embedder(cfg.asset)
        factory, module = functools.partial(load_blackbox_embedder, cfg.asset), None
    card = embedder.card
    return Teacher(cfg, embedder, factory, fingerprint(embedder.sha256, card), card.embedding_size, module)


def ensemble_weights(teachers: list[Teacher]) -> list[float]:
    """Teacher weights normalised to sum 1."""
    total = sum(t.weight for t in teachers)
    if total <= 0 or min(t.weight for t in teachers) < 0:
        raise ModelError(f"teacher weights must be ≥ 0 with a positive sum, got {[t.weight for t in teachers]}")
    return [t.weight / total for t in teachers]
