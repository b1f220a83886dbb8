"""MobileNetV2 face student (Sandler et al., arXiv 1801.04381) with a GDC embedding head.

The ImageNet network reduces 224² by 32; for 112² face crops the stride of the 160-channel stage is set to 1
so that the last map is 7×7 (total stride 16). The 1×1 expansion to 1280 channels (kept at 1280 for
width < 1, as in the paper) feeds the GDC head of MobileFaceNet (linear 7×7 depthwise conv, linear 1×1 to
the embedding, BN).

| input   | operator   | t | c    | n | s          |
|---------|------------|---|------|---|------------|
| 112²×3  | conv 3×3   | - | 32   | 1 | 2          |
| 56²×32  | bottleneck | 1 | 16   | 1 | 1          |
| 56²×16  | bottleneck | 6 | 24   | 2 | 2 → ``s4`` |
| 28²×24  | bottleneck | 6 | 32   | 3 | 2 → ``s8`` |
| 14²×32  | bottleneck | 6 | 64   | 4 | 2          |
| 7²×64   | bottleneck | 6 | 96   | 3 | 1          |
| 7²×96   | bottleneck | 6 | 160  | 3 | 1 (was 2)  |
| 7²×160  | bottleneck | 6 | 320  | 1 | 1 → ``s16``|
| 7²×320  | conv 1×1   | - | 1280 | 1 | 1          |
| 7²×1280 | GDC head   | - | D    | 1 | -          |
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

#: (expansion t, channels c, repeats n, stride s); the 160-channel stage strides 1 instead of 2.
MOBILENETV2_FACE_SETTING: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 1),
    (6, 320, 1, 1),
)


class MobileNetV2Face(FaceStudent):
    """MobileNetV2 backbone at total stride 16 + GDC head; see the module docstring."""

    def __init__(
        self,
        embedding_size: int = 128,
        width: float = 1.0,
        activation: str = "prelu",
        input_size: int = 112,
    ) -> None:
        super().__init__("mobilenetv2", embedding_size, width, activation, input_size)
        stem_c = make_divisible(32 * width)
        neck_c = make_divisible(1280 * max(1.0, width))
        stages: list[nn.Module] = []
        channels = stem_c
        for t, c, n, s in MOBILENETV2_FACE_SETTING:
            out_c = make_divisible(c * width)
            stages.append(bottleneck_stage(channels, out_c, t, n, s, activation))
            channels = out_c
        self.stem = nn.Sequential(ConvBNAct(3, stem_c, 3, 2, activation=activation), stages[0])
        self.stage4 = stages[1]
        self.stage8 = stages[2]
        self.stage16 = nn.Sequential(*stages[3:])
        self.neck = ConvBNAct(channels, neck_c, 1, activation=activation)
        self.head = GDCHead(neck_c, embedding_size, input_size // 16)
        self.feature_channels = {
            "s4": make_divisible(24 * width),
            "s8": make_divisible(32 * width),
            "s16": channels,
        }
        init_weights(self)
