"""MobileFaceNet (Chen, Liu, Gao, Han, arXiv 1804.07573, 2018), Table 1, at width 1: 0.99 M parameters and
≈ 221 M multiply-adds for a 112×112 input and a 128-d embedding.

| input      | operator               | t | c   | n | s |
|------------|------------------------|---|-----|---|---|
| 112²×3     | conv 3×3               | - | 64  | 1 | 2 |
| 56²×64     | depthwise conv 3×3     | - | 64  | 1 | 1 |
| 56²×64     | bottleneck             | 2 | 64  | 5 | 2 |
| 28²×64     | bottleneck             | 4 | 128 | 1 | 2 |
| 14²×128    | bottleneck             | 2 | 128 | 6 | 1 |
| 14²×128    | bottleneck             | 4 | 128 | 1 | 2 |
| 7²×128     | bottleneck             | 2 | 128 | 2 | 1 |
| 7²×128     | conv 1×1               | - | 512 | 1 | 1 |
| 7²×512     | linear GDConv 7×7      | - | 512 | 1 | 1 |
| 1²×512     | linear conv 1×1 (+ BN) | - | 128 | 1 | 1 |

Non-linearity PReLU (default; ReLU/ReLU6 as int8-friendly options). The width multiplier scales every channel
count (rounded to a multiple of 8), the 512-channel neck included; the embedding size is separate.
Feature taps: ``s4`` = after the first bottleneck stage (28², 64), ``s8`` = after the 6 × 128 stage (14²),
``s16`` = after the last bottleneck stage (7², 128), for a 112² input.
"""

from __future__ import annotations

from torch import nn

from shrinkface.train.students.common import (
    ConvBNAct,
    FaceStudent,
    GDCHead,
    bottleneck_stage,
    init_weights,
    make_divisible,
)

#: (expansion t, channels c, repeats n, stride s) of the bottleneck stages, from the paper's Table 1.
MOBILEFACENET_SETTING: tuple[tuple[int, int, int, int], ...] = (
    (2, 64, 5, 2),
    (4, 128, 1, 2),
    (2, 128, 6, 1),
    (4, 128, 1, 2),
    (2, 128, 2, 1),
)


class MobileFaceNet(FaceStudent):
    """MobileFaceNet with a GDC head; see the module docstring for the layer table."""

    def __init__(
        self,
        embedding_size: int = 128,
        width: float = 1.0,
        activation: str = "prelu",
        input_size: int = 112,
    ) -> None:
        super().__init__("mobilefacenet", embedding_size, width, activation, input_size)
        stem_c = make_divisible(64 * width)
        neck_c = make_divisible(512 * width)
        self.stem = nn.Sequential(
            ConvBNAct(3, stem_c, 3, 2, activation=activation),
            ConvBNAct(stem_c, stem_c, 3, 1, groups=stem_c, activation=activation),
        )
        stages: list[nn.Module] = []
        channels = stem_c
        for t, c, n, s in MOBILEFACENET_SETTING:
            out_c = make_divisible(c * width)
            stages.append(bottleneck_stage(channels, out_c, t, n, s, activation))
            channels = out_c
        self.stage4 = stages[0]
        self.stage8 = nn.Sequential(stages[1], stages[2])
        self.stage16 = nn.Sequential(stages[3], stages[4])
        self.neck = ConvBNAct(channels, neck_c, 1, activation=activation)
        self.head = GDCHead(neck_c, embedding_size, input_size // 16)
        self.feature_channels = {
            "s4": make_divisible(MOBILEFACENET_SETTING[0][1] * width),
            "s8": make_divisible(MOBILEFACENET_SETTING[2][1] * width),
            "s16": channels,
        }
        init_weights(self)
