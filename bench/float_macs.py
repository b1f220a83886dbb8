"""How many of a student's multiply-accumulates an int8 export runs in float, for a ``--float-modules`` value.

Counts the MACs of every Conv2d and Linear for one image (forward hooks) and splits them by whether the layer
sits inside one of the modules ``--float-modules`` keeps float (``depthwise`` expanded as the exporter does).

    .venv/bin/python bench/float_macs.py runs/warm_ensemble_abc_6ep/student.pt --float-modules stem,depthwise
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

import torch
from torch import nn

from shrinkface.export.checkpoint import load_student_checkpoint
from shrinkface.export.mixed import expand_float_modules


def layer_macs(model: nn.Module, size: tuple[int, int]) -> dict[str, int]:
    """Name → MACs of each Conv2d / Linear of ``model`` for one ``size`` image."""
    macs: dict[str, int] = {}

    def recorder(name: str) -> Callable[[nn.Module, object, torch.Tensor], None]:
        def record(module: nn.Module, _inputs: object, out: torch.Tensor) -> None:
            if isinstance(module, nn.Linear):
                per_output = module.in_features
            else:
                per_output = module.in_channels // module.groups * math.prod(module.kernel_size)
            macs[name] = out[0].numel() * per_output

        return record

    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    handles = [m.register_forward_hook(recorder(n)) for n, m in layers]
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, *size))
    for h in handles:
        h.remove()
    return macs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--float-modules", default="stem,depthwise")
    args = parser.parse_args()
    model, card = load_student_checkpoint(args.checkpoint)
    keep = expand_float_modules(model, args.float_modules)
    macs = layer_macs(model, tuple(card.input_size))
    inside = {n: v for n, v in macs.items() if any(n == k or n.startswith(k + ".") for k in keep)}
    total, flt = sum(macs.values()), sum(inside.values())
    print(f"float modules ({len(keep)}): {', '.join(keep)}")
    print(
        f"MACs: {total / 1e6:.1f} M in all, {flt / 1e6:.1f} M float ({100 * flt / total:.1f} %), "
        f"{(total - flt) / 1e6:.1f} M int8 ({100 * (total - flt) / total:.1f} %)"
    )


if __name__ == "__main__":
    main()
