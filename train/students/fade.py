"""PReLU → ReLU or → channel-shared PReLU by fading the slopes: int8-friendly students from a trained PReLU one.

A ReLU student warm-started by simply dropping a PReLU model's slopes loses most of its function (the ReLU twin of
teacher C: 74.9 % LFW after 300 CPU steps, docs/results/parity.md). Fading keeps the function while training
moves it: every activation of a ``ConvBNAct`` becomes a ``FadingPReLU`` that holds the source model's per-channel
slopes ``a`` (frozen) and computes

    f(x) = max(x, 0) + (λ · a + (1 − λ) · t) · min(x, 0),   λ = max(0, 1 − step / fade_steps),

so the run starts as the PReLU model (λ = 1) and is exactly the target network from step ``fade_steps`` on
(λ = 0); the steps after that train the target network. The target slope ``t`` is 0 for a ``relu`` student (a
ReLU network) and, for a ``prelu1`` student (He et al. 2015's channel-shared PReLU, one slope per layer), the
mean of the layer's source slopes ``ā`` (frozen; the least-squares single slope when every channel's negative
half weighs the same), or 0 where ``|ā| < SNAP`` (0.01). Why ``prelu1``: int8 TFLite runs a one-slope PReLU as an
int8 ``LEAKY_RELU`` inside XNNPACK, where a per-channel PReLU needs a float island (export/litert_prelu.py); XNNPACK
(LiteRT 2.3) refuses an int8 LEAKY_RELU whose slope times its input/output scale ratio is below 1/256 (measured:
the shipped student's layers with ā = 0.0011 and 0.0015 fell out of the delegate), so such a layer becomes an
exact ReLU instead, which export fuses into its convolution.

A prelu1 student may keep per-channel slopes in a few named layers (``student.channel_slopes``: they do not fade
and train as plain PReLUs; bench/slope_sensitivity.py finds the layers whose slope diversity carries the
function), and a faded student can be trained further from its run's checkpoint with its slopes fixed
(``init_from`` + ``student.freeze_slopes``).

The faders' state-dict keys are the PReLU student's (``….2.weight``), so a PReLU checkpoint (``init_from``) or the
ONNX warm start loads into them unchanged; ``faded_state_dict`` turns them into the target student's keys again
(dropped for ReLU, ``[ā]`` for prelu1) for the final ``student.pt``. The schedule is linear; the slopes stay
frozen, so only the weights adapt while the activations move. Measured: docs/results/parity.md (PReLU vs ReLU),
runs/relu_fade/MODEL.md and runs/prelu1_fade/MODEL.md.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from shrinkface.train.students.common import ConvBNAct, StudentConfigError

#: A shared target slope smaller than this in magnitude is 0 (the layer becomes a ReLU; see the module docstring).
SNAP = 0.01


def snapped_mean(slopes: torch.Tensor) -> torch.Tensor:
    """One slope for a layer's per-channel ``slopes``, shape [1]: their mean, or 0 where it is below ``SNAP``."""
    mean = slopes.mean().reshape(1)
    return torch.where(mean.abs() >= SNAP, mean, torch.zeros_like(mean))  # no host sync on a GPU


class FadingPReLU(nn.PReLU):
    """``max(x, 0) + (λ·a + (1 − λ)·t) · min(x, 0)`` with frozen per-channel slopes ``a`` (``weight``) and target
    ``t`` = 0 (``shared=False``: ReLU at λ = 0) or ``t`` = mean(a), 0 if below ``SNAP`` (``shared=True``: one-slope
    PReLU at λ = 0)."""

    def __init__(self, channels: int, shared: bool = False) -> None:
        super().__init__(channels)
        self.weight.requires_grad_(False)
        self.shared = shared
        self.fade = 1.0

    def target(self) -> torch.Tensor:
        """The slope at λ = 0, shape [1]: 0, or the mean of the source slopes when it is at least ``SNAP``."""
        if not self.shared:
            return self.weight.new_zeros(1)
        return snapped_mean(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The faded PReLU (the target activation once ``fade`` is 0)."""
        if self.fade == 0.0:
            return F.prelu(x, self.target()) if self.shared else F.relu(x)
        if self.shared:
            return F.prelu(x, self.weight * self.fade + self.target() * (1.0 - self.fade))
        return F.prelu(x, self.weight * self.fade)


def attach_faders(student: nn.Module) -> list[FadingPReLU]:
    """Replace every activation of the student's conv-BN-activation blocks by a ``FadingPReLU`` (in place):
    ``nn.ReLU`` (a relu student) fades to ReLU, a one-slope ``nn.PReLU`` (a prelu1 student) to the mean slope;
    a prelu1 student's ``channel_slopes`` keep their per-channel PReLU (no fade)."""
    faders: list[FadingPReLU] = []
    keep = {name.rpartition(".")[0] for name in getattr(student, "channel_slopes", ())}
    for block_name, block in student.named_modules():
        if block_name in keep:  # a prelu1 student's per-channel exception: trains as a plain PReLU
            continue
        if isinstance(block, ConvBNAct) and len(block) == 3:
            act = block[2]
            shared = isinstance(act, nn.PReLU) and act.num_parameters == 1
            if not shared and (isinstance(act, nn.ReLU6) or not isinstance(act, nn.ReLU)):
                raise StudentConfigError(
                    "slope fading turns per-channel PReLU into ReLU or a one-slope PReLU: the student's activation "
                    f"is {type(act).__name__}, build it with activation relu or prelu1"
                )
            fader = FadingPReLU(block[1].num_features, shared=shared)
            block[2] = fader
            faders.append(fader)
    if not faders:
        raise StudentConfigError("slope fading found no conv-BN-activation block in the student")
    return faders


def freeze_slopes(student: nn.Module) -> None:
    """Keep every PReLU slope of the student fixed (``requires_grad`` off, so the optimiser never moves it):
    a prelu1 student continued from a faded one keeps its snapped-to-0 slopes exactly 0. Refuses a student
    that has none."""
    prelus = [m for m in student.modules() if isinstance(m, nn.PReLU)]
    if not prelus:
        raise StudentConfigError("student.freeze_slopes: the student has no PReLU slopes to freeze")
    for m in prelus:
        m.weight.requires_grad_(False)


def fade_at(step: int, fade_steps: int) -> float:
    """λ at ``step``: 1 at step 0, linear down to 0 at ``fade_steps``, 0 afterwards."""
    if fade_steps <= 0:
        return 0.0
    return max(0.0, 1.0 - step / fade_steps)


def set_fade(faders: list[FadingPReLU], value: float) -> None:
    """Set λ of every fader."""
    for fader in faders:
        fader.fade = float(value)


def faded_state_dict(student: nn.Module) -> dict[str, torch.Tensor]:
    """The student's state dict with every fader as its target: what a plain relu / prelu1 student loads
    (a ReLU fader's slopes dropped, a shared one's replaced by ``[mean(a)]``).

    Refuses while any fader still has λ > 0 (the network would not be the network it claims to be)."""
    state = student.state_dict()
    for name, module in student.named_modules():
        if isinstance(module, FadingPReLU):
            if module.fade != 0.0:
                raise StudentConfigError(f"{name}: slopes not faded out yet (λ = {module.fade}); train longer")
            key = f"{name}.weight"
            if module.shared:
                state[key] = module.target().detach().clone()
            else:
                del state[key]
    return state


def finished_fade_state(state: dict[str, torch.Tensor], student_config: dict) -> dict[str, torch.Tensor]:
    """A fading student's state dict (per-channel source slopes under the PReLU keys, as a run's periodic
    checkpoint holds it) as the plain relu / prelu1 student of ``student_config`` loads it: every fader at λ = 0
    (``faded_state_dict``). Used to start a run from another run's checkpoint after its fade."""
    from shrinkface.train.students import build_student

    faded = build_student(**student_config)
    faders = attach_faders(faded)
    faded.load_state_dict(state)
    set_fade(faders, 0.0)
    return faded_state_dict(faded)


def one_slope_twin(
    state: dict[str, torch.Tensor], student_config: dict, channel_slopes: list[str] | None = None
) -> tuple[nn.Module, dict]:
    """The untrained prelu1 twin of a per-channel PReLU student (its ``state_dict`` and ``build_student``
    arguments): every layer's slopes replaced by their mean at once (λ = 0 without training), except the
    ``channel_slopes`` layers, which keep theirs. Returns the twin in eval mode and its ``build_student``
    arguments."""
    from shrinkface.train.students import build_student

    config = {**student_config, "activation": "prelu1"}
    if channel_slopes:
        config["channel_slopes"] = list(channel_slopes)
    twin = build_student(**config)
    twin.load_state_dict(finished_fade_state(state, config))
    return twin.eval(), config
