"""Student networks for face embedding: a registry and ``build_student``.

>>> model = build_student("mobilefacenet", embedding_size=128, width=1.0, activation="prelu")

Every student maps a normalised RGB NCHW batch ((x − 127.5)/127.5, 112×112) to an embedding and exposes
``forward_features(x)`` → {"s4", "s8", "s16", "embedding"} for intermediate-stage distillation.
"""

from __future__ import annotations

from collections.abc import Callable

from shrinkface.train.students.common import (
    ACTIVATIONS,
    FEATURE_KEYS,
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
) -> FaceStudent:
    """Build a freshly initialised student by registry name."""
    key = arch.lower().replace("-", "").replace("_", "")
    if key not in STUDENTS:
        raise StudentConfigError(f"unknown student {arch!r}; available: {', '.join(sorted(STUDENTS))}")
    return STUDENTS[key](embedding_size=embedding_size, width=width, activation=activation, input_size=input_size)


__all__ = [
    "ACTIVATIONS",
    "FEATURE_KEYS",
    "STUDENTS",
    "FaceStudent",
    "MobileFaceNet",
    "MobileNetV2Face",
    "StudentConfigError",
    "build_student",
    "register_student",
]
