"""Warm start: map a pretrained MobileFaceNet-class ONNX model (BN folded into conv biases) into our student.

Teacher C (faceplugin ``fr_feature.onnx``, MIT, 1.19 M parameters, 512-d) is a MobileFaceNet whose every
BatchNorm was folded into the preceding convolution. Its 50 convolutions and 33 PReLUs, in graph order, match
``MobileFaceNet(embedding_size=512)``'s 49 convolutions + 1 embedding Linear and 33 PReLUs in module order.
Each folded bias becomes an identity BatchNorm (γ = 1, β = bias, running mean 0, running variance 1 − ε), so the
student reproduces the ONNX model exactly in eval mode; training may then update every parameter.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from shrinkface.runtime.errors import ModelError
from shrinkface.train.students.common import FaceStudent


def _onnx_layers(path: Path) -> tuple[list[tuple[np.ndarray, np.ndarray | None]], list[np.ndarray]]:
    """(conv weight, bias) pairs and PReLU slopes of an ONNX graph, in node order."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    weights = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    convs: list[tuple[np.ndarray, np.ndarray | None]] = []
    slopes: list[np.ndarray] = []
    for node in model.graph.node:
        if node.op_type == "Conv":
            bias = weights.get(node.input[2]) if len(node.input) > 2 else None
            convs.append((weights[node.input[1]], bias))
        elif node.op_type == "PRelu":
            slopes.append(weights[node.input[1]])
        elif node.op_type not in ("Add", "Reshape", "Flatten"):
            raise ModelError(f"{path.name}: unexpected op {node.op_type} for a MobileFaceNet warm start")
    return convs, slopes


def _identity_bn(bn: nn.BatchNorm1d | nn.BatchNorm2d, bias: np.ndarray | None) -> None:
    with torch.no_grad():
        bn.weight.fill_(1.0)
        bn.bias.copy_(torch.from_numpy(bias.astype(np.float32)) if bias is not None else torch.zeros_like(bn.bias))
        bn.running_mean.zero_()
        bn.running_var.fill_(1.0 - bn.eps)


def warm_start_from_onnx(student: FaceStudent, onnx_path: str | Path) -> FaceStudent:
    """Load ``onnx_path``'s weights into ``student`` in place (shapes must match exactly) and return it.

    A student without PReLUs (activation ``relu``/``relu6``) gets the convolutions and not the slopes.
    """
    path = Path(onnx_path)
    convs, slopes = _onnx_layers(path)
    targets: list[tuple[nn.Module, nn.Module]] = []  # (conv or linear, the BN that follows it)
    modules = list(student.modules())
    for index, module in enumerate(modules):
        if isinstance(module, nn.Conv2d | nn.Linear):
            bn = next(m for m in modules[index + 1 :] if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d))
            targets.append((module, bn))
    prelus = [m for m in modules if isinstance(m, nn.PReLU)]
    # A ReLU/ReLU6 twin takes the convolutions only: the slopes are dropped, distillation re-learns the rest.
    if len(targets) != len(convs) or len(prelus) not in (0, len(slopes)):
        raise ModelError(
            f"{path.name} has {len(convs)} convs / {len(slopes)} PReLUs, the student {len(targets)} / "
            f"{len(prelus)}: build it as mobilefacenet with embedding_size=512, width 1, PReLU"
        )
    with torch.no_grad():
        for (layer, bn), (weight, bias) in zip(targets, convs, strict=True):
            w = torch.from_numpy(weight.astype(np.float32))
            if isinstance(layer, nn.Linear):
                w = w.reshape(w.shape[0], -1)
            if tuple(w.shape) != tuple(layer.weight.shape):
                raise ModelError(f"{path.name}: weight {tuple(w.shape)} does not fit {tuple(layer.weight.shape)}")
            layer.weight.copy_(w)
            _identity_bn(bn, bias)
        for prelu, slope in zip(prelus, slopes if prelus else [], strict=True):
            prelu.weight.copy_(torch.from_numpy(slope.astype(np.float32).reshape(-1)))
    return student
