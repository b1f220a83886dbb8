"""PReLU → ReLU by fading the slopes: turn a trained PReLU student into an int8-friendly ReLU student.

A ReLU student warm-started by simply dropping a PReLU model's slopes loses most of its function (the ReLU twin of
teacher C: 74.9 % LFW after 300 CPU steps, docs/results/parity.md). Fading keeps the function while training
moves it: every ReLU of a ``ConvBNAct`` becomes a ``FadingPReLU`` that holds the source model's slopes ``a``
(frozen) and computes

    f(x) = max(x, 0) + λ · a · min(x, 0),   λ = max(0, 1 − step / fade_steps),

so the run starts as the PReLU model (λ = 1) and is an exact ReLU network from step ``fade_steps`` on (λ = 0);
the steps after that train the pure ReLU network. The faders' state-dict keys are the PReLU student's
(``….2.weight``), so a PReLU checkpoint (``init_from``) or the ONNX warm start loads into them unchanged, and
``relu_state_dict`` drops them again for the final ReLU ``student.pt``. The schedule is linear; the slopes stay
frozen, so only the weights adapt while the negative half of each activation is switched off. Measured:
docs/results/parity.md (PReLU vs ReLU) and runs/relu_fade/MODEL.md.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from shrinkface.train.students.common import ConvBNAct, StudentConfigError


class FadingPReLU(nn.PReLU):
    """``max(x, 0) + fade · a · min(x, 0)`` with frozen per-channel slopes ``a`` (``weight``); fade 0 is ReLU."""

    def __init__(self, channels: int) -> None:
        super().__init__(channels)
        self.weight.requires_grad_(False)
        self.fade = 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The faded PReLU (plain ReLU once ``fade`` is 0)."""
        if self.fade == 0.0:
            return F.relu(x)
        return F.prelu(x, self.weight * self.fade)


def attach_faders(student: nn.Module) -> list[FadingPReLU]:
    """Replace every ``nn.ReLU`` of the student's conv-BN-activation blocks by a ``FadingPReLU`` (in place)."""
    faders: list[FadingPReLU] = []
    for block in student.modules():
        if isinstance(block, ConvBNAct) and len(block) == 3:
            act = block[2]
            if isinstance(act, nn.ReLU6) or not isinstance(act, nn.ReLU):
                raise StudentConfigError(
                    f"slope fading turns PReLU into ReLU: the student's activation is {type(act).__name__}, "
                    "build it with activation relu"
                )
            fader = FadingPReLU(block[1].num_features)
            block[2] = fader
            faders.append(fader)
    if not faders:
        raise StudentConfigError("slope fading found no conv-BN-ReLU block in the student")
    return faders


def fade_at(step: int, fade_steps: int) -> float:
    """λ at ``step``: 1 at step 0, linear down to 0 at ``fade_steps``, 0 afterwards."""
    if fade_steps <= 0:
        return 0.0
    return max(0.0, 1.0 - step / fade_steps)


def set_fade(faders: list[FadingPReLU], value: float) -> None:
    """Set λ of every fader."""
    for fader in faders:
        fader.fade = float(value)


def relu_state_dict(student: nn.Module) -> dict[str, torch.Tensor]:
    """The student's state dict without the faders' slopes: what a plain ReLU student loads.

    Refuses while any fader still has λ > 0 (the network would not be the ReLU network it claims to be)."""
    drop = set()
    for name, module in student.named_modules():
        if isinstance(module, FadingPReLU):
            if module.fade != 0.0:
                raise StudentConfigError(f"{name}: slopes not faded out yet (λ = {module.fade}); train longer")
            drop.add(f"{name}.weight")
    return {k: v for k, v in student.state_dict().items() if k not in drop}
