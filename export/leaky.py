"""One-slope PReLU → ``nn.LeakyReLU`` for export: the same function, an op every target runs in int8.

A ``prelu1`` student (train/students/common.py: He et al. 2015's channel-shared PReLU, one learnt slope ``a`` per
layer) computes ``max(x, 0) + a·min(x, 0)``, which is ``LeakyReLU(negative_slope=a)`` exactly. Exported as a
PReLU, the int8 TFLite file would get an int8 ``PRELU`` that LiteRT 2.3's XNNPACK does not run (litert_prelu.py
then makes it a float island: DEQUANTIZE → PRELU → QUANTIZE); as a LeakyReLU, litert-torch writes an int8
``LEAKY_RELU`` that XNNPACK runs in int8 inside the one partition (ONNX: ``LeakyRelu``). Per-channel PReLUs are
left as they are.
"""

from __future__ import annotations

from torch import nn


def shared_prelu_as_leaky(model: nn.Module) -> tuple[nn.Module, int]:
    """Replace, in place, every ``nn.PReLU`` with one parameter by ``nn.LeakyReLU`` of its slope (``nn.ReLU``
    for a slope of exactly 0, which export fuses into the convolution: slope fading snaps tiny slopes to 0).

    Returns the model and the number of modules replaced."""
    targets = [
        (parent, name, child)
        for parent in model.modules()
        for name, child in parent.named_children()
        if isinstance(child, nn.PReLU) and child.num_parameters == 1
    ]
    for parent, name, child in targets:
        slope = float(child.weight.detach().reshape(()))
        setattr(parent, name, nn.ReLU() if slope == 0.0 else nn.LeakyReLU(negative_slope=slope))
    return model, len(targets)
