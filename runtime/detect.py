"""Face detection with YuNet through ``cv2.FaceDetectorYN``: boxes, 5 landmarks and scores.

Landmark order (image coordinates): eye on the image's left, eye on the right, nose tip, left mouth corner,
right mouth corner — the order of the alignment template. Which face to use when several are found is a
documented policy (``largest``, ``central`` or ``single``, which refuses more than one).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from shrinkface.runtime.errors import ManyFacesError, ModelError, NoFaceError

Policy = Literal["largest", "central", "single"]


@dataclass(frozen=True)
class Face:
    """One detection: box (x, y, w, h), 5 landmarks (5×2, image pixels) and a confidence score."""

    box: np.ndarray
    landmarks: np.ndarray
    score: float

    @property
    def area(self) -> float:
        """Box area in pixels²."""
        return float(self.box[2] * self.box[3])


class FaceDetector:
    """YuNet on any image size; images larger than ``max_side`` are downscaled for detection only."""

    def __init__(
        self,
        model_path: str | Path,
        score_threshold: float = 0.6,
        nms_threshold: float = 0.3,
        top_k: int = 50,
        max_side: int = 640,
    ) -> None:
        path = Path(model_path)
        if not path.is_file():
            raise ModelError(f"face detector model {path} not found (run `shrinkface assets fetch`)")
        try:
            self._yunet = cv2.FaceDetectorYN.create(str(path), "", (320, 320), score_threshold, nms_threshold, top_k)
        except cv2.error as exc:
            raise ModelError(f"{path} is not a YuNet detector model OpenCV can load: {exc.err}") from exc
        self.path = path
        self.max_side = max_side
        self.score_threshold = score_threshold
        # An ONNX file that is not YuNet loads but fails on its first run: make that happen here.
        self._run(np.zeros((64, 64, 3), dtype=np.uint8))

    def _run(self, bgr: np.ndarray) -> np.ndarray | None:
        self._yunet.setInputSize((bgr.shape[1], bgr.shape[0]))
        try:
            return self._yunet.detect(bgr)[1]
        except cv2.error as exc:
            raise ModelError(f"{self.path} does not run as a YuNet face detector: {exc.err}") from exc

    def detect(self, image_rgb: np.ndarray) -> list[Face]:
        """All faces in an RGB uint8 image, best score first."""
        height, width = image_rgb.shape[:2]
        scale = min(1.0, self.max_side / max(height, width))
        bgr = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR)
        if scale < 1.0:
            bgr = cv2.resize(bgr, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
        raw = self._run(bgr)
        if raw is None:
            return []
        # Back to original pixels with the per-axis scale of the actual resize, pixel centres mapped as
        # cv2.resize maps them (x_orig = (x + 0.5) / s − 0.5); box width/height scale without that shift.
        sxy = np.array([bgr.shape[1] / width, bgr.shape[0] / height])
        faces = []
        for row in raw.astype(np.float64):
            corner = (row[0:2] + 0.5) / sxy - 0.5
            landmarks = (row[4:14].reshape(5, 2) + 0.5) / sxy - 0.5
            box = np.concatenate([corner, row[2:4] / sxy])
            faces.append(Face(box=box.astype(np.float32), landmarks=landmarks.astype(np.float32), score=float(row[14])))
        return sorted(faces, key=lambda f: -f.score)

    def detect_one(self, image_rgb: np.ndarray, policy: Policy = "largest") -> Face:
        """The face to use under ``policy``; raises ``NoFaceError`` / ``ManyFacesError``."""
        return select_face(self.detect(image_rgb), image_rgb.shape[:2], policy)


def select_face(faces: list[Face], image_hw: tuple[int, int], policy: Policy = "largest") -> Face:
    """Pick one face: the largest box, the one closest to the image centre, or exactly one (``single``)."""
    if not faces:
        raise NoFaceError("no face found in the image")
    if policy == "single":
        if len(faces) > 1:
            raise ManyFacesError(f"{len(faces)} faces found; exactly one is required")
        return faces[0]
    if policy == "largest":
        return max(faces, key=lambda f: f.area)
    if policy == "central":
        centre = np.array([image_hw[1] / 2.0, image_hw[0] / 2.0])
        return min(faces, key=lambda f: float(np.linalg.norm(f.box[:2] + f.box[2:4] / 2 - centre)))
    raise ValueError(f"unknown face policy {policy!r}")
