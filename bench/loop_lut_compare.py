"""Camera loop in one window, alternating: two int8 files × int8 input preprocessing through the per-channel table
(``ModelCard.preprocess``, current) or through the float formula (the code path before the table).

Run with nothing else on the machine (training jobs are SIGSTOPped while timing):
    SHRINKFACE_DATA=… .venv/bin/python bench/loop_lut_compare.py A.int8.tflite B.int8.tflite --out docs/results/loop_lut
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from unlock_camera import build_scene, time_camera

from shrinkface.runtime import lfw
from shrinkface.runtime.card import ModelCard
from shrinkface.runtime.config import data_dir

TABLE = ModelCard.preprocess


def float_formula(self: ModelCard, crops: np.ndarray) -> np.ndarray:
    """Preprocessing without the table: float (x − mean)/std, round, clip (what ``_normalise`` computes)."""
    crops = np.asarray(crops)
    crops = crops[None] if crops.ndim == 3 else crops
    x = self._normalise(crops)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2) if self.layout == "NCHW" else x)


def main() -> None:
    """Time each model × preprocessing once per round, ``--rounds`` rounds; write loop_lut.json/.md."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("models", nargs="+")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    lfw_dir = data_dir() / "lfw"
    pairs = lfw.parse_pairs(lfw_dir / "pairs.txt")
    rows: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for rnd in range(args.rounds):
            for i, model in enumerate(args.models):
                scene = build_scene(lfw_dir, pairs, Path(tmp) / f"{i}_{rnd}", model, None, 10)
                for label, fn in (("table", TABLE), ("float formula", float_formula)):
                    ModelCard.preprocess = fn  # type: ignore[method-assign]
                    try:
                        cam = time_camera(model, None, scene, True, repeats=1)
                    finally:
                        ModelCard.preprocess = TABLE  # type: ignore[method-assign]
                    stages = cam["roi_tracking"]["stage_ms"]
                    rows.setdefault(f"{model} | {label}", []).append(
                        {
                            "whole_frame_ms": cam["repeats"][0]["roi_tracking"],
                            "embed_ms": stages["embed"]["median"],
                            "detect_ms": stages["detect"]["median"],
                        }
                    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "loop_lut.json").write_text(json.dumps({"command": sys.argv, "rows": rows}, indent=1))
    lines = [
        "| model | int8 input preprocessing | whole frame ms (ROI tracking), each round | embed ms | detect ms |",
        "|---|---|---|---|---|",
    ]
    for key, runs in rows.items():
        model, label = key.split(" | ")
        cells = [" / ".join(f"{r[k]:.2f}" for r in runs) for k in ("whole_frame_ms", "embed_ms", "detect_ms")]
        lines.append(f"| {model} | {label} | " + " | ".join(cells) + " |")
    (args.out / "loop_lut.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
