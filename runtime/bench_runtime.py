"""Per-stage latency of the torch-free face pipeline (``shrinkface bench runtime``).

For each model: decode (JPEG bytes → RGB), detect (YuNet), align (5-point warp) and embed (one crop), each timed
separately on real images, one thread everywhere, after a warm-up; medians of ``runs`` runs. Written as JSON
and markdown so the README can quote it.
"""

from __future__ import annotations

import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from shrinkface.runtime.align import align_face
from shrinkface.runtime.bench_models import median_call_ms
from shrinkface.runtime.detect import FaceDetector
from shrinkface.runtime.image import load_image

STAGES = ("decode", "detect", "align", "embed")


def machine_info() -> dict[str, str]:
    """Platform, processor and Python version, for a benchmark report."""
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
    }


def bench_runtime(
    models: Sequence[str], images: Sequence[Path], detector_path: Path, runs: int = 100, warmup: int = 10
) -> dict[str, Any]:
    """Median per-stage milliseconds of each model's pipeline, cycling over ``images``."""
    from shrinkface.runtime.embed import resolve_embedder

    cv2.setNumThreads(1)
    blobs = [Path(p).read_bytes() for p in images]
    rgbs = [load_image(b) for b in blobs]
    detector = FaceDetector(detector_path)
    faces = [detector.detect_one(img) for img in rgbs]
    counter = {"i": 0}

    def cycle() -> int:
        counter["i"] = (counter["i"] + 1) % len(blobs)
        return counter["i"]

    shared = {
        "decode": median_call_ms(lambda: load_image(blobs[cycle()]), runs, warmup),
        "detect": median_call_ms(lambda: detector.detect(rgbs[cycle()]), runs, warmup),
    }
    results = []
    for spec in models:
        embedder = resolve_embedder(spec, threads=1)
        card = embedder.card
        template, size = card.template_array(), card.input_size
        crops = [align_face(img, f.landmarks, template, size) for img, f in zip(rgbs, faces, strict=True)]
        row = dict(shared)

        def align_one(template: np.ndarray = template, size: tuple[int, int] = size) -> np.ndarray:
            i = cycle()
            return align_face(rgbs[i], faces[i].landmarks, template, size)

        def embed_one(embedder: Any = embedder, crops: list[np.ndarray] = crops) -> np.ndarray:
            return embedder.embed(crops[cycle()][None])

        row["align"] = median_call_ms(align_one, runs, warmup)
        row["embed"] = median_call_ms(embed_one, runs, warmup)
        row["total"] = round(sum(row[s] for s in STAGES), 3)
        results.append({"model": spec, "card": card.name, "embedding_size": card.embedding_size, **row})
    return {
        "runs": runs,
        "warmup": warmup,
        "threads": 1,
        "images": [str(p) for p in images],
        "image_sizes": sorted({f"{img.shape[1]}x{img.shape[0]}" for img in rgbs}),
        "machine": machine_info(),
        "results": results,
    }


def render_markdown(report: dict[str, Any]) -> str:
    """A markdown table of the per-stage medians."""
    lines = [
        f"Median ms per stage, one thread, {report['runs']} runs after {report['warmup']} warm-up, "
        f"images {', '.join(report['image_sizes'])}.",
        "",
        "| model | " + " | ".join(STAGES) + " | total |",
        "|---|" + "---|" * (len(STAGES) + 1),
    ]
    for r in report["results"]:
        lines.append(f"| {r['model']} | " + " | ".join(f"{r[s]:.2f}" for s in STAGES) + f" | {r['total']:.2f} |")
    return "\n".join(lines) + "\n"
