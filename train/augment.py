"""Batched, seeded training augmentation on uint8 RGB crops (N, H, W, 3).

Every random number comes from one ``torch.Generator`` seeded per batch, so a batch is the same whatever the
number of loader workers and after a resume. Order: mirror → scale/shift jitter → colour (brightness,
contrast, saturation, greyscale) → Gaussian blur → random erasing. The mirror flags are returned so the
caller can pair a mirrored crop with the teacher's embedding of the mirrored crop.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from shrinkface.train.config import AugmentConfig

_GREY = torch.tensor([0.299, 0.587, 0.114])


def _uniform(n: int, lo: float, hi: float, gen: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen)


def _jitter(images: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """Per-sample uniform scale (1 ± cfg.scale, about the crop centre) and shift (± cfg.shift_px), bilinear
    with border replication, on the uint8 crops (one ``cv2.warpAffine`` each)."""
    n, h, w, _ = images.shape
    scale = _uniform(n, 1.0 - cfg.scale, 1.0 + cfg.scale, gen).numpy().astype(np.float64)
    dx = _uniform(n, -cfg.shift_px, cfg.shift_px, gen).numpy().astype(np.float64)
    dy = _uniform(n, -cfg.shift_px, cfg.shift_px, gen).numpy().astype(np.float64)
    src = images.numpy()
    out = np.empty_like(src)
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    for i in range(n):
        k = scale[i]
        m = np.array([[k, 0.0, (1 - k) * cx + dx[i]], [0.0, k, (1 - k) * cy + dy[i]]])
        out[i] = cv2.warpAffine(src[i], m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return torch.from_numpy(out)


def _colour(x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """Brightness b, contrast c (about the mean grey level), saturation s (about each pixel's grey), or full
    greyscale, folded into per-sample affine maps: with g = grey(x), μ = mean(g), a = b·c, o = b·μ·(1 − c):
    x' = a·x + o, g' = a·g + o, out = s·x' + (1 − s)·g' (or g' for greyscale)."""
    n = x.shape[0]
    b = _uniform(n, 1 - cfg.brightness, 1 + cfg.brightness, gen).view(n, 1, 1, 1)
    c = _uniform(n, 1 - cfg.contrast, 1 + cfg.contrast, gen).view(n, 1, 1, 1)
    s = _uniform(n, 1 - cfg.saturation, 1 + cfg.saturation, gen).view(n, 1, 1, 1)
    to_grey = (torch.rand(n, generator=gen) < cfg.grayscale).view(n, 1, 1, 1)
    grey = torch.einsum("nchw,c->nhw", x, _GREY).unsqueeze(1)
    a = b * c
    o = b * grey.mean(dim=(2, 3), keepdim=True) * (1 - c)
    grey_out = grey * a + o
    s = torch.where(to_grey, torch.zeros_like(s), s)
    return x * (a * s) + (o * s + grey_out * (1 - s))


def _blur(x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """Separable Gaussian blur, σ ~ U[0.3, blur_sigma], on the samples drawn with probability ``cfg.blur``."""
    n, ch, h, w = x.shape
    chosen = torch.rand(n, generator=gen) < cfg.blur
    sigma = _uniform(n, 0.3, max(cfg.blur_sigma, 0.3), gen)
    if not bool(chosen.any()):
        return x
    radius = max(1, math.ceil(2.5 * max(cfg.blur_sigma, 0.3)))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    idx = chosen.nonzero().flatten()
    k = torch.exp(-(t.view(1, -1) ** 2) / (2 * sigma[idx].view(-1, 1) ** 2))
    k = k / k.sum(1, keepdim=True)  # (m, 2r+1)
    m = len(idx)
    kk = k.repeat_interleave(ch, 0)  # one kernel per (sample, channel)
    sub = x[idx].reshape(1, m * ch, h, w)
    sub = F.pad(sub, (radius, radius, radius, radius), mode="replicate")
    sub = F.conv2d(sub, kk.view(m * ch, 1, 1, -1), groups=m * ch)
    sub = F.conv2d(sub, kk.view(m * ch, 1, -1, 1), groups=m * ch)
    x = x.clone()
    x[idx] = sub.view(m, ch, h, w)
    return x


def _erase(x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """Fill one rectangle (area ∈ [2 %, erase_area], aspect ∈ [0.3, 3.3]) with a random grey level."""
    n, _, h, w = x.shape
    chosen = torch.rand(n, generator=gen) < cfg.erase
    area = _uniform(n, 0.02, max(cfg.erase_area, 0.02), gen) * h * w
    log_ratio = _uniform(n, math.log(0.3), math.log(3.3), gen)
    eh = torch.sqrt(area * torch.exp(log_ratio)).clamp(1, h)
    ew = torch.sqrt(area / torch.exp(log_ratio)).clamp(1, w)
    y0 = torch.rand(n, generator=gen) * (h - eh)
    x0 = torch.rand(n, generator=gen) * (w - ew)
    fill = torch.rand(n, generator=gen) * 255.0
    rows = torch.arange(h).view(1, h, 1)
    cols = torch.arange(w).view(1, 1, w)
    inside = (
        (rows >= y0.view(n, 1, 1))
        & (rows < (y0 + eh).view(n, 1, 1))
        & (cols >= x0.view(n, 1, 1))
        & (cols < (x0 + ew).view(n, 1, 1))
        & chosen.view(n, 1, 1)
    )
    return torch.where(inside.unsqueeze(1), fill.view(n, 1, 1, 1), x)


def augment_batch(images: torch.Tensor, cfg: AugmentConfig, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Augment uint8 NHWC RGB ``images``; returns (uint8 NHWC images, bool mirror flags)."""
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected uint8 (N, H, W, 3) crops, got {images.dtype} {tuple(images.shape)}")
    gen = torch.Generator().manual_seed(int(seed))
    n = images.shape[0]
    mirrored = torch.rand(n, generator=gen) < cfg.mirror
    out = images.clone()
    if bool(mirrored.any()):
        out[mirrored] = out[mirrored].flip(2)
    if cfg.scale > 0 or cfg.shift_px > 0:
        out = _jitter(out, cfg, gen)
    colour = cfg.brightness > 0 or cfg.contrast > 0 or cfg.saturation > 0 or cfg.grayscale > 0
    if not (colour or cfg.blur > 0 or cfg.erase > 0):
        return out, mirrored
    x = out.permute(0, 3, 1, 2).float()
    if colour:
        x = _colour(x, cfg, gen)
    if cfg.blur > 0:
        x = _blur(x, cfg, gen)
    if cfg.erase > 0:
        x = _erase(x, cfg, gen)
    out = x.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()
    return out, mirrored
