"""Read a trained student checkpoint into (model, model card) for export.

The trainer (``shrinkface.train.trainer``) writes ``student.pt`` / ``checkpoints/*.pt`` as a dict with
``format``, ``student`` (state_dict), ``student_config`` (``build_student`` arguments) and ``preprocess``
(input size, layout, channel order, mean, std). A ``card`` dict (``ModelCard.to_dict()``), when present,
wins over what is derived here (e.g. a calibrated threshold). The card's ``source_sha256`` is always the
checkpoint file's own sha256, so every exported file names the exact weights it came from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from shrinkface.runtime.assets import sha256_file
from shrinkface.runtime.card import ModelCard
from shrinkface.runtime.errors import ModelCardError, ModelError
from shrinkface.train.checkpoint import FORMAT, atomic_save, load_checkpoint, student_from_checkpoint

_PREPROCESS_KEYS = ("input_size", "layout", "channel_order", "mean", "std")


def card_from_checkpoint(ckpt: dict[str, Any], name: str, sha256: str) -> ModelCard:
    """The float (NCHW) model card of a checkpoint dict."""
    student = ckpt.get("student_config")
    if not isinstance(student, dict) or ("embedding_size" not in student and "arch" not in student):
        raise ModelError("checkpoint has no student_config: it was not written by the shrinkface trainer")
    if isinstance(ckpt.get("card"), dict):
        base = ModelCard.from_dict(ckpt["card"])
        return base.replace(source_sha256=sha256)
    pre = ckpt.get("preprocess")
    if not isinstance(pre, dict):
        raise ModelCardError("checkpoint has neither a 'card' nor a 'preprocess' entry: its input is unknown")
    fields: dict[str, Any] = {k: pre[k] for k in _PREPROCESS_KEYS if k in pre}
    for key in ("input_size", "mean", "std"):
        if key in fields:
            fields[key] = tuple(fields[key])
    if fields.get("layout", "NCHW") != "NCHW":
        raise ModelCardError(f"the student takes {fields['layout']} input; export expects NCHW torch models")
    cfg = ckpt.get("config")
    if isinstance(cfg, str):  # the trainer stores its config as YAML text
        import yaml

        try:
            cfg = yaml.safe_load(cfg)
        except yaml.YAMLError:
            cfg = None
    cfg = cfg if isinstance(cfg, dict) else {}
    extra = {"student": dict(student)}
    if "step" in ckpt:
        extra["step"] = int(ckpt["step"])
    if cfg.get("name"):
        extra["run"] = cfg["name"]
    return ModelCard(
        name=str(cfg.get("name") or name),
        embedding_size=int(student.get("embedding_size", 128)),
        origin=f"shrinkface student {student.get('arch', '?')} ({student.get('activation', '?')})",
        source_sha256=sha256,
        extra=extra,
        **fields,
    )


def load_student_checkpoint(path: str | Path) -> tuple[torch.nn.Module, ModelCard]:
    """The student in eval mode and its float model card (``ModelError`` for a wrong or unreadable file)."""
    path = Path(path)
    ckpt = load_checkpoint(path)
    model = student_from_checkpoint(ckpt, path)
    card = card_from_checkpoint(ckpt, path.stem, sha256_file(path))
    if tuple(getattr(model, "input_size", card.input_size)) != tuple(card.input_size):
        raise ModelCardError(f"{path}: the student takes {model.input_size}, the card says {card.input_size}")
    return model.eval(), card


def save_student_checkpoint(
    model: torch.nn.Module,
    student_config: dict[str, Any],
    path: str | Path,
    card: ModelCard | None = None,
    preprocess: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint in the trainer's format (for warm-started or externally trained students)."""
    from shrinkface.train.trainer import PREPROCESS

    state: dict[str, Any] = {
        "format": FORMAT,
        "student": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "student_config": dict(student_config),
        "preprocess": dict(preprocess or PREPROCESS),
    }
    if card is not None:
        state["card"] = card.to_dict()
    path = Path(path)
    atomic_save(state, path)
    return path
