"""The untrained one-slope twin of a per-channel PReLU student: each layer's slopes replaced by their mean.

This is where slope fading starts from in the other direction (train/students/fade.py at λ = 0 without any
training): it measures how much of a student's function its per-channel slopes carry, and it is the speed
probe for a prelu1 export before anything is trained (docs/results/parity.md, "One slope per layer").

    .venv/bin/python bench/mean_slope_twin.py runs/warm_ensemble_abc_6ep/student.pt artifacts/twin/student.pt
    shrinkface export artifacts/twin/student.pt --formats tflite --quant float,int8 \\
      --float-modules stem,head.gdc --out artifacts/twin
    shrinkface parity artifacts/twin/student.pt artifacts/twin/student.float.tflite --out artifacts/twin/parity

``--keep stem.0.2,neck.2`` keeps those layers' per-channel slopes (``student.channel_slopes``).
"""

from __future__ import annotations

import argparse

from shrinkface.export.checkpoint import save_student_checkpoint
from shrinkface.train.checkpoint import load_checkpoint
from shrinkface.train.students.fade import one_slope_twin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="a per-channel PReLU student checkpoint (student.pt)")
    parser.add_argument("out", help="where to write the prelu1 twin checkpoint")
    parser.add_argument("--keep", default="", help="activation modules that keep per-channel slopes (comma list)")
    args = parser.parse_args()
    ckpt = load_checkpoint(args.source)
    keep = [name for name in args.keep.split(",") if name]
    twin, config = one_slope_twin(ckpt["student"], ckpt["student_config"], keep)
    print(save_student_checkpoint(twin, config, args.out))


if __name__ == "__main__":
    main()
