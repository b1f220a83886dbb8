"""Building blocks shared by the students: conv-BN-activation, inverted residual, GDC embedding head.

Every student is a ``FaceStudent``: ``forward(x)`` maps a normalised RGB NCHW batch ((x − 127.5)/127.5,
112×112 by default) to an un-normalised embedding; ``forward_features(x)`` also returns the stage outputs at
strides 1/4, 1/8, 1/16 under the keys ``s4``, ``s8``, ``s16`` (plus ``embedding``), which intermediate-stage
angular distillation consumes. The head ends in ``BatchNorm1d`` so export can fold it into the ``Linear``.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from shrinkface.runtime.errors import ExitCode, ShrinkfaceError

Activation = Literal["prelu", "prelu1", "relu", "relu6"]
ACTIVATIONS: tuple[str, ...] = ("prelu", "prelu1", "relu", "relu6")
FEATURE_KEYS: tuple[str, ...] = ("s4", "s8", "s16")


class StudentConfigError(ShrinkfaceError, ValueError):
    """A student cannot be built with the requested architecture or options."""

    exit_code = ExitCode.USAGE


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a channel count to a multiple of ``divisor`` without dropping more than 10 % (MobileNetV2)."""
    min_value = min_value or divisor
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


def make_activation(name: str, channels: int) -> nn.Module:
    """PReLU (one slope per channel, as in MobileFaceNet), ``prelu1`` (He et al. 2015's channel-shared PReLU:
    one learnt slope per layer, which int8 TFLite runs as an int8 ``LEAKY_RELU``), ReLU or ReLU6 (int8-friendly)."""
    if name == "prelu":
        return nn.PReLU(channels)
    if name == "prelu1":
        return nn.PReLU(1)
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "relu6":
        return nn.ReLU6(inplace=True)
    raise StudentConfigError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}")


class ConvBNAct(nn.Sequential):
    """Conv2d (no bias) → BatchNorm2d → activation; ``activation=None`` makes it linear."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        activation: str | None = "prelu",
        padding: int | None = None,
    ) -> None:
        padding = kernel_size // 2 if padding is None else padding
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        if activation is not None:
            layers.append(make_activation(activation, out_channels))
        super().__init__(*layers)


class InvertedResidual(nn.Module):
    """MobileNetV2 bottleneck: 1×1 expand → 3×3 depthwise (stride) → 1×1 linear projection; residual when the
    shapes match."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expansion: float, activation: str) -> None:
        super().__init__()
        hidden = round(in_channels * expansion)
        self.use_residual = stride == 1 and in_channels == out_channels
        layers: list[nn.Module] = []
        if expansion != 1:
            layers.append(ConvBNAct(in_channels, hidden, 1, activation=activation))
        layers += [
            ConvBNAct(hidden, hidden, 3, stride, groups=hidden, activation=activation),
            ConvBNAct(hidden, out_channels, 1, activation=None),
        ]
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return x + out if self.use_residual else out


def bottleneck_stage(
    in_channels: int, out_channels: int, expansion: float, repeats: int, stride: int, activation: str
) -> nn.Sequential:
    """``repeats`` inverted residuals; only the first one strides."""
    blocks = [
        InvertedResidual(
            in_channels if i == 0 else out_channels,
            out_channels,
            stride if i == 0 else 1,
            expansion,
            activation,
        )
        for i in range(repeats)
    ]
    return nn.Sequential(*blocks)


class GDCHead(nn.Module):
    """Global depthwise convolution head (Chen et al. 2018): linear 7×7 depthwise conv + BN, flatten,
    linear 1×1 conv to the embedding (a bias-free ``Linear``), ``BatchNorm1d``."""

    def __init__(self, channels: int, embedding_size: int, map_size: int = 7) -> None:
        super().__init__()
        self.gdc = ConvBNAct(channels, channels, map_size, groups=channels, activation=None, padding=0)
        self.flatten = nn.Flatten(1)
        self.linear = nn.Linear(channels, embedding_size, bias=False)
        self.bn = nn.BatchNorm1d(embedding_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.linear(self.flatten(self.gdc(x))))


class FaceStudent(nn.Module):
    """Base class: subclasses fill ``stem``, ``stage4``/``stage8``/``stage16`` (outputs at stride 4/8/16),
    ``neck`` and ``head``.

    Attributes: ``embedding_size``, ``input_size`` (H, W), ``feature_channels`` (key → channels),
    ``feature_strides`` (key → stride), ``arch``, ``width``, ``activation``.
    """

    stem: nn.Module
    stage4: nn.Module
    stage8: nn.Module
    stage16: nn.Module
    neck: nn.Module
    head: GDCHead

    def __init__(self, arch: str, embedding_size: int, width: float, activation: str, input_size: int) -> None:
        super().__init__()
        check_options(embedding_size, width, activation, input_size)
        self.arch = arch
        self.embedding_size = embedding_size
        self.width = width
        self.activation = activation
        self.input_size = (input_size, input_size)
        self.feature_strides = {"s4": 4, "s8": 8, "s16": 16}
        self.feature_channels: dict[str, int] = {}
        self.freeze_bn = False  # keep BatchNorm running statistics fixed while training (warm starts)

    def train(self, mode: bool = True) -> FaceStudent:
        """As ``nn.Module.train``, but BatchNorm layers stay in eval mode when ``freeze_bn`` is set."""
        super().train(mode)
        if mode and self.freeze_bn:
            for module in self.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != 3 or tuple(x.shape[2:]) != self.input_size:
            raise StudentConfigError(
                f"{self.arch} expects a float N×3×{self.input_size[0]}×{self.input_size[1]} batch "
                f"((RGB − 127.5)/127.5), got shape {tuple(x.shape)}"
            )

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Stage outputs ``s4``, ``s8``, ``s16`` (N×C×H×W) and the ``embedding`` (N×D)."""
        self._check_input(x)
        s4 = self.stage4(self.stem(x))
        s8 = self.stage8(s4)
        s16 = self.stage16(s8)
        return {"s4": s4, "s8": s8, "s16": s16, "embedding": self.head(self.neck(s16))}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The embedding (N×D, not L2-normalised)."""
        self._check_input(x)
        return self.head(self.neck(self.stage16(self.stage8(self.stage4(self.stem(x))))))


def check_options(embedding_size: int, width: float, activation: str, input_size: int) -> None:
    """Refuse options that cannot build a student, with a message that says why."""
    if not isinstance(embedding_size, int) or embedding_size <= 0:
        raise StudentConfigError(f"embedding_size must be a positive integer, got {embedding_size!r}")
    if not 0.1 <= float(width) <= 4.0:
        raise StudentConfigError(f"width multiplier must be in [0.1, 4], got {width!r}")
    if activation not in ACTIVATIONS:
        raise StudentConfigError(f"unknown activation {activation!r}; choose one of {', '.join(ACTIVATIONS)}")
    if input_size % 16 != 0 or input_size < 32:
        raise StudentConfigError(f"input size must be a multiple of 16 and ≥ 32, got {input_size}")


def init_weights(model: nn.Module) -> None:
    """Kaiming-normal convs (fan_out), unit BN, small normal Linear (as insightface's MobileFaceNet)."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d | nn.BatchNorm1d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0.0, 0.01)


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, inputs: torch.Tensor, batch: int = 32) -> nn.Module:
    """Replace every BatchNorm's running statistics by the cumulative average over ``inputs`` (N, C, H, W)."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the batches below
    model.train()
    for i in range(0, len(inputs), batch):
        model(inputs[i : i + batch])
    return model.eval()
