"""A ReLU twin of the shipped student for latency comparisons: ``runs/warm_ensemble/student.pt``'s architecture
(MobileFaceNet-512, width 1) with ReLU instead of PReLU, random weights, BatchNorm statistics recalibrated on
96 real glint-celeb6 crops. Not a face model (no accuracy is claimed for it): latency and op lists only.

    SHRINKFACE_DATA=/work/shared/data .venv/bin/python bench/relu_shape_checkpoint.py artifacts/relu_shape/relu_shape.pt
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from shrinkface.export.calib import default_calibration_dir, load_calibration_crops
from shrinkface.export.checkpoint import load_student_checkpoint, save_student_checkpoint
from shrinkface.train.students import build_student
from shrinkface.train.students.common import recalibrate_batchnorm


def main(out: Path, source: Path = Path("runs/warm_ensemble/student.pt")) -> Path:
    """Write the ReLU-twin checkpoint to ``out``."""
    torch.manual_seed(0)
    torch.set_num_threads(1)
    _, card = load_student_checkpoint(source)
    config = dict(torch.load(source, map_location="cpu", weights_only=False)["student_config"], activation="relu")
    model = build_student(**config)
    crops, _ = load_calibration_crops(default_calibration_dir(), 96, card)
    x = torch.from_numpy(card.preprocess(np.ascontiguousarray(crops)))
    return save_student_checkpoint(recalibrate_batchnorm(model, x), config, out)


if __name__ == "__main__":
    print(main(Path(sys.argv[1] if len(sys.argv) > 1 else "artifacts/relu_shape/relu_shape.pt")))
