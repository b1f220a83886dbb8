"""Real aligned faces shared by tests that need labelled identities (imported like export_fixtures)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def glint_people(data_dir: Path, per_person: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``per_person`` aligned 112×112 RGB crops of each glint-celeb6 person, and their labels 0..5."""
    root = data_dir / "glint-celeb6" / "images"
    crops, labels = [], []
    for label, person in enumerate(sorted(p for p in root.iterdir() if p.is_dir())):
        for f in sorted(person.glob("*.jpg"))[:per_person]:
            crops.append(cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB))
            labels.append(label)
    return np.stack(crops), np.asarray(labels)
