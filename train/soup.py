"""Uniform model soup: the element-wise mean of the weights of students fine-tuned from one checkpoint.

Wortsman et al., "Model soups: averaging weights of multiple fine-tuned models improves accuracy without
increasing inference time", ICML 2022 (arXiv 2203.05482): θ_soup = (1/K) Σ_k θ_k for K models fine-tuned from
the same initialisation (they share one low-loss basin); the *uniform* soup needs no held-out data to choose its
ingredients (the greedy soup does, and LFW may not be used for that). The result is one student of the same
architecture and cost, written as a ``student.pt`` the exporter reads like any other.

Refused, with the reason: different architectures or preprocessing, integer buffers that differ (e.g. BatchNorm
batch counts), or BatchNorm running statistics that differ (averaging statistics of different networks is not
the statistics of the average; the soups here come from runs with ``freeze_bn``, whose statistics are equal).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from shrinkface.runtime.assets import sha256_file
from shrinkface.runtime.errors import ModelError
from shrinkface.train.checkpoint import FORMAT, atomic_save, check_checkpoint, load_checkpoint


def _same(key: str, first: Any, other: Any, source: Path) -> None:
    if first != other:
        raise ModelError(f"{source}: its {key} differs from the first ingredient's ({other} vs {first})")


def uniform_soup(paths: Sequence[str | Path], name: str) -> dict[str, Any]:
    """A student checkpoint dict whose weights are the mean of the ingredients' (at least two); its training
    config is the first ingredient's under the soup's ``name`` (the exported card's name)."""
    import yaml

    if len(paths) < 2:
        raise ModelError("a soup needs at least two students")
    ckpts = [check_checkpoint(load_checkpoint(p), p) for p in paths]
    first = ckpts[0]
    if "student" not in first or "student_config" not in first:
        raise ModelError(f"{paths[0]} holds no student weights: not written by the shrinkface trainer")
    states = []
    for path, ck in zip(paths, ckpts, strict=True):
        _same("student_config", first["student_config"], ck.get("student_config"), Path(path))
        _same("preprocess", first.get("preprocess"), ck.get("preprocess"), Path(path))
        _same("weight names", list(first["student"]), list(ck["student"]), Path(path))
        states.append(ck["student"])
    soup: dict[str, torch.Tensor] = {}
    for key, ref in states[0].items():
        if not ref.is_floating_point() or "running_" in key:
            for path, state in zip(paths[1:], states[1:], strict=True):
                if not torch.equal(state[key], ref):
                    raise ModelError(f"{path}: {key} differs from the first ingredient's; it cannot be averaged")
            soup[key] = ref.clone()
        else:
            soup[key] = torch.stack([s[key].double() for s in states]).mean(0).to(ref.dtype)
    ingredients = [
        {"path": str(p), "sha256": sha256_file(p), "step": ck.get("step")} for p, ck in zip(paths, ckpts, strict=True)
    ]
    config = yaml.safe_load(first.get("config") or "") or {}
    config["name"] = name
    fused = hashlib.sha256("".join(i["sha256"] for i in ingredients).encode()).hexdigest()
    return {
        "format": FORMAT,
        "student": soup,
        "student_config": dict(first["student_config"]),
        "preprocess": first.get("preprocess"),
        "config": yaml.safe_dump(config, sort_keys=False),
        "soup": {"kind": "uniform", "ingredients": ingredients, "ingredients_sha256": fused},
    }  # no "step": the soup is no point of one run (each ingredient's step is listed under "soup")


def write_soup(paths: Sequence[str | Path], out: str | Path, name: str) -> Path:
    """``uniform_soup(paths, name)`` saved to ``out`` (atomically)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_save(uniform_soup(paths, name), out)
    return out
