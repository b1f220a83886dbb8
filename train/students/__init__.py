"""Student networks for face embedding: a registry and ``build_student``.

>>> model = build_student("mobilefacenet", embedding_size=128, width=1.0, activation="prelu")

Every student maps a normalised RGB NCHW batch ((x − 127.5)/127.5, 112×112) to an embedding and exposes
``forward_features(x)`` → {"s4", "s8", "s16", "embedding"} for intermediate-stage distillation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import nn

from shrinkface.train.students.common import (
    ACTIVATIONS,
    FEATURE_KEYS,
    ConvBNAct,
    FaceStudent,
    StudentConfigError,
)
from shrinkface.train.students.mobilefacenet import MobileFaceNet
from shrinkface.train.students.mobilenetv2 import MobileNetV2Face

StudentFactory = Callable[..., FaceStudent]

#: arch name → constructor(embedding_size=, width=, activation=, input_size=).
STUDENTS: dict[str, StudentFactory] = {
    "mobilefacenet": MobileFaceNet,
    "mobilenetv2": MobileNetV2Face,
}


def register_student(name: str, factory: StudentFactory) -> None:
    """Add a student architecture under ``name`` (refuses to overwrite one)."""
    if name in STUDENTS:
        raise StudentConfigError(f"a student named {name!r} is already registered")
    STUDENTS[name] = factory


def build_student(
    arch: str,
    embedding_size: int = 128,
    width: float = 1.0,
    activation: str = "prelu",
    input_size: int = 112,
    channel_slopes: Sequence[str] = (),
) -> FaceStudent:
    """Build a freshly initialised student by registry name.

    ``channel_slopes`` (a ``prelu1`` student only): names of activation modules (e.g. ``"stage8.1.0.block.0.2"``)
    that keep one PReLU slope per channel; int8 TFLite runs each as a float island (export/litert_prelu.py), so
    only the few layers whose slope diversity carries the function are worth it (bench/slope_sensitivity.py)."""
    key = arch.lower().replace("-", "").replace("_", "")
    if key not in STUDENTS:
        raise StudentConfigError(f"unknown student {arch!r}; available: {', '.join(sorted(STUDENTS))}")
    model = STUDENTS[key](embedding_size=embedding_size, width=width, activation=activation, input_size=input_size)
    if channel_slopes:
        keep_channel_slopes(model, activation, channel_slopes)
    return model


def keep_channel_slopes(model: FaceStudent, activation: str, names: Sequence[str]) -> None:
    """Make the named one-slope PReLUs of a prelu1 student per-channel PReLUs again (in place) and record the
    names as ``model.channel_slopes``."""
    if activation != "prelu1":
        raise StudentConfigError(f"channel_slopes are exceptions in a prelu1 student; the activation is {activation!r}")
    modules = dict(model.named_modules())
    shared = [n for n, m in modules.items() if isinstance(m, nn.PReLU) and m.num_parameters == 1]
    for name in names:
        parent = modules.get(name.rpartition(".")[0])
        if name not in shared or not isinstance(parent, ConvBNAct):
            raise StudentConfigError(f"channel_slopes: {name!r} is not an activation of this student: {shared}")
        parent[2] = nn.PReLU(parent[1].num_features)
    model.channel_slopes = tuple(names)


__all__ = [
    "ACTIVATIONS",
    "FEATURE_KEYS",
    "STUDENTS",
    "FaceStudent",
    "MobileFaceNet",
    "MobileNetV2Face",
    "StudentConfigError",
    "build_student",
    "keep_channel_slopes",
    "register_student",
]
