"""Write tests/golden/embed_*.json: golden vectors from LFW image to embedding for the exported test student.

The student is the one tests/test_export.py and tests/test_parity.py export (tests/export_fixtures.py: a
MobileFaceNet warm-started from faceplugin's MIT-licensed ``fr_feature.onnx``, PReLU, 512-d), with the same
export settings (ONNX + TFLite, float + int8 PTQ on 128 glint-celeb6 faces), so the test session rebuilds the
very files these vectors were made with and compares them. Format: tests/golden/README.md.

Run: ``SHRINKFACE_DATA=/work/shared/data .venv/bin/python tests/golden/make_embed_golden.py``
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import export_fixtures as fx  # noqa: E402
import torch  # noqa: E402

from shrinkface.export.checkpoint import load_student_checkpoint  # noqa: E402
from shrinkface.export.cli import GOLDEN_IMAGES  # noqa: E402
from shrinkface.export.golden import write_golden  # noqa: E402
from shrinkface.runtime.config import data_dir  # noqa: E402


def main() -> None:
    """Export the student in a temporary folder and write one golden file per image of ``GOLDEN_IMAGES``."""
    torch.set_num_threads(1)
    data = data_dir()
    with tempfile.TemporaryDirectory(prefix="shrinkface-golden-") as tmp:
        base = Path(tmp)
        files = [a.path for a in fx.exports("prelu", base, data).artifacts]
        model, card = load_student_checkpoint(fx.checkpoint("prelu", base, data))
        for path in write_golden(GOLDEN_IMAGES, data / "lfw" / "images", model, card, files, HERE):
            print(f"wrote {path.relative_to(HERE.parent.parent)} ({path.stat().st_size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
