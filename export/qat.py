"""int8 quantisation with torchao's PT2E flow: post-training calibration (PTQ) or quantisation-aware
fine-tuning (QAT), both ending in a converted (quantize/dequantize) graph that litert-torch turns into a
full-integer TFLite file and ``torch.onnx`` into a QDQ ONNX file.

Flow: fold the embedding ``BatchNorm1d`` into its ``Linear`` (so the last op is quantised and the TFLite
output is int8) → ``torch.export.export`` with a batch of 2 and a dynamic batch dimension (a size-1 dimension
would be specialised) → ``prepare_pt2e`` + calibration, or ``prepare_qat_pt2e`` + fine-tuning →
``convert_pt2e``.
The quantiser is litert-torch's ``PT2EQuantizer`` (per-channel symmetric int8 weights, per-tensor affine
int8 activations).

QAT objective: the angular distance to the float model's own embedding of the same crop (mirrored with
probability ½), ``L = mean_i (1 − cos(f_q(x_i), f(x_i)))`` — final-stage angular distillation (Duong et al.,
ShrinkTeaNet, arXiv 1905.10620) with the float model as teacher. The BatchNorm statistics stay frozen (a
short fine-tune of a trained model): the conv BatchNorms are folded into their convolutions before export
(``fold_conv_bn``), so the QAT graph holds plain fake-quantised convolutions; the observers follow the activations until
``observer_freeze`` of the steps and are frozen after. Data: real aligned training faces only (``calib.py``).

Mixed precision: ``float_modules`` (export option ``--float-modules stem,head.gdc,depthwise-prelu``) runs named student
modules in float inside the int8 graph (``mixed.py``), chosen with ``bench/int8_sensitivity.py`` on held-out faces
and ``shrinkface bench models``.
"""

from __future__ import annotations

import copy
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from shrinkface.export.formats import ExportError
from shrinkface.export.mixed import expand_float_modules, keep_modules_float

_PATCHED = False


def patch_litert_qat() -> None:
    """Make litert-torch 0.10.0's QAT annotators work with torchao 0.18 (idempotent).

    ``pt2e_quantizer_utils._do_annotate_conv_bn`` hands a plain function to torchao's
    ``_get_aten_graph_module_for_pattern``, which calls ``torch.export.export`` on it; torch 2.13 refuses
    ("Expected mod to be an instance of torch.nn.Module, got function"). Wrapping the pattern in torchao's
    ``WrapperModule`` (a module whose forward calls the function) is what torchao itself does for its own
    patterns. Only litert-torch's module-level reference is replaced.
    """
    global _PATCHED
    if _PATCHED:
        return
    import litert_torch.quantize.pt2e_quantizer_utils as utils
    from torchao.quantization.pt2e.export_utils import WrapperModule

    original = utils._get_aten_graph_module_for_pattern

    def wrapped(pattern: Any, example_inputs: Any, is_cuda: bool = False, **kwargs: Any) -> Any:
        if not isinstance(pattern, nn.Module):
            pattern = WrapperModule(pattern)
        return original(pattern, example_inputs, is_cuda, **kwargs)

    utils._get_aten_graph_module_for_pattern = wrapped
    _PATCHED = True


patch_litert_qat()  # at import: every quantiser made after this sees the fixed pattern export


def make_quantizer(qat: bool) -> Any:
    """litert-torch's PT2E quantiser: int8 per-channel symmetric weights, per-tensor int8 activations.

    It leaves two things float, both kept on purpose (docs/results/parity.md): PReLU (run as float PRELU islands
    in TFLite, ``litert_prelu.py``: LiteRT 2.3's XNNPACK has no int8 PReLU) and the residual adds (it finds adds
    by ``source_fn_stack`` metadata, which torch 2.13's ``torch.export`` no longer records). Annotating the
    adds as int8 was measured: 1 % faster, cosine 0.99264 instead of 0.99292 and 99.80 % instead of 99.83 %
    decision agreement on LFW, so they stay float.
    """
    patch_litert_qat()
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config

    return PT2EQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, is_qat=qat))


def fold_embedding_bn(model: nn.Module, input_size: tuple[int, int] = (112, 112)) -> nn.Module:
    """A copy of ``model`` (eval mode) with every ``Linear → BatchNorm1d`` folded into the ``Linear``.

    Handles a head module with ``linear`` and ``bn`` attributes (the students' ``GDCHead``) and adjacent
    ``Linear, BatchNorm1d`` pairs inside ``nn.Sequential``. The folded copy must reproduce the original's
    outputs; a ``BatchNorm1d`` left unfolded is an ``ExportError`` (it would leave a float op after the last
    quantised one, and the int8 TFLite output would be float).
    """
    from torch.nn.utils.fusion import fuse_linear_bn_eval

    folded = copy.deepcopy(model).eval()
    for module in folded.modules():
        linear, bn = getattr(module, "linear", None), getattr(module, "bn", None)
        if isinstance(linear, nn.Linear) and isinstance(bn, nn.BatchNorm1d):
            module.linear = fuse_linear_bn_eval(linear, bn)
            module.bn = nn.Identity()
        if isinstance(module, nn.Sequential):
            children = list(module.named_children())
            for (name_a, a), (name_b, b) in itertools.pairwise(children):
                if isinstance(a, nn.Linear) and isinstance(b, nn.BatchNorm1d):
                    setattr(module, name_a, fuse_linear_bn_eval(a, b))
                    setattr(module, name_b, nn.Identity())
    left = [name for name, m in folded.named_modules() if isinstance(m, nn.BatchNorm1d)]
    if left:
        raise ExportError(f"cannot fold the embedding BatchNorm1d {left} into a preceding Linear")
    probe = torch.randn(4, 3, *input_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref, out = model.eval()(probe), folded(probe)
    err = float((ref - out).abs().max() / ref.abs().max().clamp_min(1e-12))
    if not err < 1e-4:
        raise ExportError(f"folding the embedding BatchNorm changed the outputs (relative error {err:.2e})")
    return folded


def fold_conv_bn(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (eval mode) with every ``Conv2d → BatchNorm2d`` pair inside an ``nn.Sequential``
    folded into the ``Conv2d`` (which gains a bias).

    Used before QAT: with the BatchNorm statistics frozen, the folded graph computes the same function, and
    ``prepare_qat_pt2e`` then fake-quantises plain convolutions instead of its conv-BN training pattern (which
    runs every convolution twice to simulate the BatchNorm fold).
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    folded = copy.deepcopy(model).eval()
    for module in folded.modules():
        if isinstance(module, nn.Sequential):
            for (name_a, a), (name_b, b) in itertools.pairwise(list(module.named_children())):
                if isinstance(a, nn.Conv2d) and isinstance(b, nn.BatchNorm2d):
                    setattr(module, name_a, fuse_conv_bn_eval(a, b))
                    setattr(module, name_b, nn.Identity())
    return folded


def export_graph(model: nn.Module, input_size: tuple[int, int]) -> torch.fx.GraphModule:
    """``torch.export`` with a batch of 2 and a dynamic batch dimension, as a GraphModule."""
    example = torch.randn(2, 3, *input_size, generator=torch.Generator().manual_seed(0))
    batch = torch.export.Dim("batch", min=1, max=4096)
    try:
        program = torch.export.export(model.eval(), (example,), dynamic_shapes=({0: batch},))
    except Exception as exc:
        raise ExportError(f"torch.export failed: {type(exc).__name__}: {exc}") from exc
    return program.module()


@dataclass
class QuantResult:
    """The converted (QDQ) graphs and how they were made.

    ``graph`` keeps float weights behind quantize/dequantize pairs (what litert-torch converts); ``onnx_graph``
    is the same quantisation with the weight quantisation folded into int8 constants (half the ONNX size).
    """

    graph: torch.fx.GraphModule
    onnx_graph: torch.fx.GraphModule
    quantizer: Any
    method: str  # what was used: "ptq" or "qat"
    requested: str
    fallback_reason: str | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    calib_count: int = 0
    seconds: float = 0.0
    heldout_cosine: float | None = None  # fake-quant vs float on held-out training crops (QAT only)
    float_modules: tuple[str, ...] = ()  # the student modules run float (``depthwise`` expanded)

    def summary(self) -> dict[str, Any]:
        """JSON-ready description for logs and model cards."""
        out: dict[str, Any] = {
            "method": self.method,
            "requested": self.requested,
            "calib_images": self.calib_count,
        }
        if self.fallback_reason:
            out["fallback_reason"] = self.fallback_reason
        if self.history:
            out["qat_steps"] = int(self.history[-1]["step"])
            out["qat_first_loss"] = round(self.history[0]["loss"], 6)
            out["qat_last_loss"] = round(self.history[-1]["loss"], 6)
        if self.heldout_cosine is not None:
            out["heldout_cosine"] = round(self.heldout_cosine, 6)
        if self.float_modules:
            out["float_modules"] = list(self.float_modules)
        return out


def _convert(
    prepared: torch.fx.GraphModule, float_modules: tuple[str, ...] = ()
) -> tuple[torch.fx.GraphModule, torch.fx.GraphModule]:
    """(graph for litert-torch, graph with int8 weight constants for ONNX) from one calibrated model, with
    ``float_modules`` run in float (``keep_float``).

    ``convert_pt2e`` runs once (with QAT it re-matches every conv-BN pattern, which is slow); the ONNX copy then
    gets the constant folding that ``convert_pt2e(fold_quantize=True)`` would have applied.
    """
    from torchao.quantization.pt2e import move_exported_model_to_eval
    from torchao.quantization.pt2e.constant_fold import constant_fold
    from torchao.quantization.pt2e.quantize_pt2e import _quant_node_constraint, convert_pt2e

    graph = convert_pt2e(prepared, fold_quantize=False)
    move_exported_model_to_eval(graph)  # inference ops (a no-op after PTQ's eval-mode export)
    for module in graph.modules():  # and say so: exported graphs refuse .eval(), and torch.onnx.export warns
        module.training = False  # about a module left in training mode
    keep_modules_float(graph, float_modules)
    folded = copy.deepcopy(graph)
    constant_fold(folded, _quant_node_constraint)
    return graph, folded


def _batches(x: torch.Tensor, size: int) -> list[torch.Tensor]:
    """Chunks of ``size`` (8 by default in this package: on CPU a MobileFaceNet runs ~3× faster per image in
    batches of 8 than of 16 or more, whose activations no longer fit the caches)."""
    return [x[i : i + size] for i in range(0, len(x), size)]


def calibrate_ptq(model: nn.Module, inputs: torch.Tensor, batch_size: int = 8) -> tuple[torch.fx.GraphModule, Any]:
    """The exported graph of ``model`` with PTQ observers, run over ``inputs``; and its quantiser."""
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e

    quantizer = make_quantizer(qat=False)
    prepared = prepare_pt2e(export_graph(model, tuple(inputs.shape[2:])), quantizer)
    with torch.no_grad():
        for chunk in _batches(inputs, batch_size):
            prepared(chunk)
    return prepared, quantizer


def quantize_ptq(
    model: nn.Module, inputs: torch.Tensor, batch_size: int = 8, float_modules: str | tuple[str, ...] = ()
) -> QuantResult:
    """Post-training quantisation: calibrate the (folded) float ``model`` on ``inputs`` (N, 3, H, W)."""
    t0 = time.perf_counter()
    prepared, quantizer = calibrate_ptq(model, inputs, batch_size)
    keep = expand_float_modules(model, float_modules)
    graph, onnx_graph = _convert(prepared, keep)
    return QuantResult(
        graph,
        onnx_graph,
        quantizer,
        "ptq",
        "ptq",
        calib_count=len(inputs),
        seconds=time.perf_counter() - t0,
        float_modules=keep,
    )


def _cosine_loss(y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return (1.0 - nn.functional.cosine_similarity(y, t, dim=1)).mean()


def quantize_qat(
    model: nn.Module,
    inputs: torch.Tensor,
    steps: int,
    batch_size: int = 32,
    lr: float = 1e-5,
    seed: int = 0,
    heldout: float = 0.1,
    observer_freeze: float = 0.75,
    log_every: int = 10,
    progress: Callable[[int, float], None] | None = None,
    float_modules: str | tuple[str, ...] = (),
) -> QuantResult:
    """Quantisation-aware fine-tuning towards the float model's embeddings (see the module docstring).

    ``inputs`` (N, 3, H, W) are preprocessed real training crops; the last ``heldout`` fraction is kept out
    of training to report the fake-quantised model's cosine to the float model.
    """
    from torchao.quantization.pt2e import move_exported_model_to_eval
    from torchao.quantization.pt2e.fake_quantize import disable_observer
    from torchao.quantization.pt2e.quantize_pt2e import prepare_qat_pt2e

    t0 = time.perf_counter()
    n_hold = max(1, round(len(inputs) * heldout)) if len(inputs) > 8 else 0
    train_x, hold_x = inputs[: len(inputs) - n_hold], inputs[len(inputs) - n_hold :]
    with torch.no_grad():
        targets = torch.cat([model(c) for c in _batches(train_x, 8)])
        targets_flip = torch.cat([model(c.flip(3)) for c in _batches(train_x, 8)])
        hold_t = torch.cat([model(c) for c in _batches(hold_x, 8)]) if n_hold else None
    quantizer = make_quantizer(qat=True)
    prepared = prepare_qat_pt2e(export_graph(fold_conv_bn(model), tuple(inputs.shape[2:])), quantizer)
    move_exported_model_to_eval(prepared)  # frozen BN statistics; fake-quant and observers stay active
    params = [p for p in prepared.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=lr)
    gen = torch.Generator().manual_seed(seed)
    history: list[dict[str, float]] = []
    window: list[float] = []
    freeze_at = max(1, int(steps * observer_freeze))
    for step in range(1, steps + 1):
        idx = torch.randint(len(train_x), (min(batch_size, len(train_x)),), generator=gen)
        flip = torch.rand(len(idx), generator=gen) < 0.5
        x = torch.where(flip[:, None, None, None], train_x[idx].flip(3), train_x[idx])
        t = torch.where(flip[:, None], targets_flip[idx], targets[idx])
        loss = _cosine_loss(prepared(x), t)
        if not torch.isfinite(loss):
            raise ExportError(f"QAT diverged at step {step} (loss {float(loss)}); lower --qat-lr")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        window.append(loss.item())
        if step == freeze_at:
            prepared.apply(disable_observer)
        if step % log_every == 0 or step == steps:
            history.append({"step": step, "loss": float(np.mean(window))})
            window = []
            if progress:
                progress(step, history[-1]["loss"])
    heldout_cos = None
    if hold_t is not None:
        with torch.no_grad():
            y = torch.cat([prepared(c) for c in _batches(hold_x, 8)])
        heldout_cos = float(nn.functional.cosine_similarity(y, hold_t, dim=1).mean())
    keep = expand_float_modules(model, float_modules)
    graph, onnx_graph = _convert(prepared, keep)
    return QuantResult(
        graph,
        onnx_graph,
        quantizer,
        "qat",
        "qat",
        history=history,
        calib_count=len(inputs),
        seconds=time.perf_counter() - t0,
        heldout_cosine=heldout_cos,
        float_modules=keep,
    )


def quantize(
    model: nn.Module,
    inputs: torch.Tensor,
    method: str,
    qat_options: dict[str, Any] | None = None,
    progress: Callable[[int, float], None] | None = None,
) -> QuantResult:
    """PTQ, or QAT with a fallback to PTQ when QAT fails (the result says which was used and why)."""
    opts = qat_options or {}
    keep = opts.get("float_modules") or ()
    if method == "ptq":
        return quantize_ptq(model, inputs, float_modules=keep)
    try:
        return quantize_qat(
            model,
            inputs,
            steps=int(opts.get("qat_steps", 300)),
            batch_size=int(opts.get("qat_batch", 32)),
            lr=float(opts.get("qat_lr", 1e-5)),
            progress=progress,
            float_modules=keep,
        )
    except Exception as exc:  # any QAT failure: keep going with calibration only, and say so
        result = quantize_ptq(model, inputs, float_modules=keep)
        result.requested = "qat"
        result.fallback_reason = f"QAT failed ({type(exc).__name__}: {str(exc)[:300]}); used PTQ"
        return result
