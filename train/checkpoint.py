"""Checkpoints: atomic writes, ``torch.load(weights_only=True)`` reads, and exact-resume state.

A checkpoint holds the student, the objective (classifier weights, projection heads, adapters), optimiser,
scheduler, the RNG states of torch (and CUDA), NumPy and Python, and the data position (step, epoch, batch).
Everything in it is a tensor or a plain Python value, so the safe unpickler reads it. It is written to a
temporary file, flushed to disk and renamed, so a crash never leaves a half-written ``last.pt``.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from shrinkface.runtime.errors import ModelError

FORMAT = 1


def rng_state() -> dict[str, Any]:
    """The RNG states of torch (+ CUDA), NumPy's global generator and Python's ``random``."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": name,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "python": {"version": version, "internal": list(internal), "gauss": gauss},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what ``rng_state`` captured."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file in the same folder, fsync, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with the safe (weights-only) unpickler."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"checkpoint {path} not found")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise ModelError(f"{path} is not a readable shrinkface checkpoint: {exc}") from exc
    return check_checkpoint(ckpt, path)


def check_checkpoint(ckpt: Any, source: str | Path) -> dict[str, Any]:
    """``ckpt`` when it is a loaded shrinkface checkpoint dict, else ``ModelError``."""
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ModelError(f"{source} is not a shrinkface checkpoint (format {FORMAT})")
    return ckpt


def save_run_checkpoint(run_dir: Path, state: dict[str, Any], keep: int) -> Path:
    """Write ``checkpoints/step_NNNNNNN.pt`` atomically, point ``last.pt`` at it, keep the newest ``keep``."""
    folder = run_dir / "checkpoints"
    target = folder / f"step_{state['step']:07d}.pt"
    atomic_save({"format": FORMAT, **state}, target)
    link = folder / f".last.{os.getpid()}.tmp"
    link.unlink(missing_ok=True)
    try:
        os.link(target, link)
    except OSError:  # a file system without hard links: write the bytes again
        atomic_save({"format": FORMAT, **state}, link)
    link.replace(folder / "last.pt")
    numbered = sorted(folder.glob("step_*.pt"))
    for old in numbered[: max(0, len(numbered) - max(keep, 1))]:
        old.unlink(missing_ok=True)
    return target


def student_from_checkpoint(ckpt: dict[str, Any], source: str | Path) -> torch.nn.Module:
    """The student of a loaded checkpoint dict, in eval mode (``ModelError`` when the weights do not fit)."""
    from shrinkface.train.students import build_student

    if "student" not in ckpt or "student_config" not in ckpt:
        raise ModelError(f"{source} holds no student weights/config: it was not written by the shrinkface trainer")
    student = build_student(**ckpt["student_config"])
    try:
        student.load_state_dict(ckpt["student"])
    except RuntimeError as exc:
        raise ModelError(f"{source}: the weights do not fit {ckpt['student_config']}: {exc}") from exc
    return student.eval()


def load_student(path: str | Path) -> torch.nn.Module:
    """Rebuild the trained student from a checkpoint (``last.pt`` or ``student.pt``), in eval mode."""
    return student_from_checkpoint(load_checkpoint(path), path)
