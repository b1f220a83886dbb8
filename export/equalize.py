"""Activation equalisation before int8: even out the per-channel ranges of activations that feed a
convolution, without changing what the float model computes.

int8 activations are quantised per tensor, so a channel whose range is 10× smaller than the widest one keeps
only a tenth of the 256 levels. For a chain ``Conv2d → BatchNorm2d → act → Conv2d`` with a positively
homogeneous ``act`` (ReLU, PReLU: act(s·x) = s·act(x) for s > 0), scaling channel i of the BatchNorm's affine
output by s_i and dividing the next convolution's input channel i by s_i leaves the function unchanged
(cross-layer equalisation: Nagel et al., "Data-Free Quantization", ICCV 2019; migration strength as in
SmoothQuant, Xiao et al., ICML 2023). Here s_i = clip((max_j r_j / r_i)^α, 1, max_scale), where r_i is the
largest |pre-activation| of channel i on calibration faces (what the quantiser sees at the conv output). A
depthwise next conv has one filter per channel, quantised per channel, so the rescaling is free (α = 1); a
dense next conv shares each output row across input channels, so α = ``dense_strength`` (0.5) splits the
range between activations and weights.

Chains are found by running the model once with hooks (which module's output feeds which module). Each
chain's rescaling is checked on a few faces and undone if it changes the output (an activation that also
feeds a residual add cannot be rescaled); the whole copy must reproduce the original (relative error < 1e-4).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

HOMOGENEOUS = (nn.ReLU, nn.PReLU, nn.LeakyReLU, nn.Identity)


@dataclass(frozen=True)
class Chain:
    """One equalisable chain: names of the BatchNorm, the activation and the next conv."""

    bn: str
    act: str
    conv: str
    depthwise: bool


def _is_depthwise(m: nn.Module) -> bool:
    return isinstance(m, nn.Conv2d) and m.groups == m.in_channels == m.out_channels and m.groups > 1


def _is_dense(m: nn.Module) -> bool:
    return isinstance(m, nn.Conv2d) and m.groups == 1


def find_chains(model: nn.Module, example: torch.Tensor) -> list[Chain]:
    """Every ``Conv2d → BatchNorm2d → homogeneous act → Conv2d`` chain seen in one forward pass."""
    names = {m: n for n, m in model.named_modules()}
    calls: list[tuple[nn.Module, int, int]] = []
    alive: list[object] = []  # keep every tensor referenced so that no id() is reused during the pass

    def record(mod: nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        alive.extend((inp[0], out))
        calls.append((mod, id(inp[0]), id(out)))

    hooks = [m.register_forward_hook(record) for m in model.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for h in hooks:
            h.remove()
    chains: list[Chain] = []
    producer: dict[int, int] = {}  # tensor id → index of the call that produced it (latest)
    source: list[int | None] = []  # call index → index of the call that produced its input
    for index, (_, in_id, out_id) in enumerate(calls):
        source.append(producer.get(in_id))
        producer[out_id] = index
    for index, (mod, _, _) in enumerate(calls):
        a = source[index]
        if not (_is_depthwise(mod) or _is_dense(mod)) or a is None:
            continue
        act = calls[a][0]
        if not isinstance(act, HOMOGENEOUS) or isinstance(act, nn.ReLU6):
            continue
        b = source[a]
        bn = calls[b][0] if b is not None else None
        c = source[b] if b is not None else None
        conv = calls[c][0] if c is not None else None
        if isinstance(bn, nn.BatchNorm2d) and isinstance(conv, nn.Conv2d) and bn.num_features == mod.in_channels:
            chains.append(Chain(names[bn], names[act], names[mod], _is_depthwise(mod)))
    return chains


def _channel_absmax(
    model: nn.Module, modules: list[nn.Module], inputs: torch.Tensor, batch: int = 8
) -> list[torch.Tensor]:
    """Per-channel max |output| of each of ``modules`` over ``inputs`` (one pass)."""
    peaks: list[list[torch.Tensor]] = [[] for _ in modules]
    hooks = [
        m.register_forward_hook(lambda mod, inp, out, k=k: peaks[k].append(out.detach().abs().amax(dim=(0, 2, 3))))
        for k, m in enumerate(modules)
    ]
    try:
        with torch.no_grad():
            for i in range(0, len(inputs), batch):
                model(inputs[i : i + batch])
    finally:
        for h in hooks:
            h.remove()
    return [torch.stack(p).amax(0) for p in peaks]


def _rescale(modules: dict[str, nn.Module], chain: Chain, scale: torch.Tensor) -> None:
    """Multiply the BatchNorm's output channel i by scale_i and divide the next conv's input channel i by it."""
    bn, conv = modules[chain.bn], modules[chain.conv]
    shape = (-1, 1, 1, 1) if chain.depthwise else (1, -1, 1, 1)
    bn.weight.mul_(scale)
    bn.bias.mul_(scale)
    conv.weight.div_(scale.view(shape))


def _max_rel_error(ref: torch.Tensor, out: torch.Tensor) -> float:
    return float((ref - out).abs().max() / ref.abs().max().clamp_min(1e-12))


def equalize(
    model: nn.Module,
    inputs: torch.Tensor,
    max_scale: float = 64.0,
    dense_strength: float = 0.5,
) -> tuple[nn.Module, list[dict[str, float | str]]]:
    """A rescaled copy of ``model`` (eval mode) and, per chain, the spread of channel ranges before/after."""
    eq = copy.deepcopy(model).eval()
    modules = dict(eq.named_modules())
    report: list[dict[str, float | str]] = []
    chains = find_chains(eq, inputs[:2])
    peaks = _channel_absmax(eq, [modules[c.bn] for c in chains], inputs)
    plans = []
    for chain, peak in zip(chains, peaks, strict=True):
        live = peak > 1e-6 * peak.max().clamp_min(1e-12)
        if not live.any():
            continue
        strength = 1.0 if chain.depthwise else dense_strength
        scale = torch.ones_like(peak)
        scale[live] = (peak.max() / peak[live]).pow(strength).clamp(1.0, max_scale)
        plans.append((chain, scale, peak, live))
    probe = inputs[: min(len(inputs), 4)]
    with torch.no_grad():
        ref = model.eval()(probe)
        for chain, scale, _, _ in plans:
            _rescale(modules, chain, scale)
        if _max_rel_error(ref, eq(probe)) > 1e-5:  # some activation also feeds something else: go one by one
            for chain, scale, _, _ in plans:
                _rescale(modules, chain, 1.0 / scale)
            kept = []
            for plan in plans:
                _rescale(modules, plan[0], plan[1])
                if _max_rel_error(ref, eq(probe)) > 1e-5:
                    _rescale(modules, plan[0], 1.0 / plan[1])
                else:
                    kept.append(plan)
            plans = kept
    for chain, scale, peak, live in plans:
        report.append(
            {
                "chain": chain.act,
                "next": "depthwise" if chain.depthwise else "dense",
                "spread_before": round(float(peak.max() / peak[live].median()), 3),
                "spread_after": round(float((peak * scale).max() / (peak * scale)[live].median()), 3),
            }
        )
    with torch.no_grad():
        check = inputs[: min(len(inputs), 16)]
        err = _max_rel_error(model(check), eq(check))
    if not err < 1e-4:
        raise RuntimeError(f"equalisation changed the float outputs (relative error {err:.2e})")
    return eq, report
