"""ROI tracking detection for the camera loop: after a face is found, look for it only near where it was.

YuNet's cost grows with its input area (one x86 core: 3.9 ms on a 320×240 frame, 1.2 ms on 160×160,
0.8 ms on 128×128), and downscaling the whole frame to save time shrinks small faces further. So, once the
loop has accepted a face, the next frame is detected inside a square region of interest (ROI): ``scale`` ×
the longer side of the previous box, centred on it, shifted (not cut) to stay inside the frame, and resized
down to at most ``side`` pixels (a face stays ≥ side / scale pixels across, 80 px by default). Detections are
mapped back to frame pixels for alignment. YuNet's landmarks move by about 2 px (mean, per coordinate) with
any change of context (ROI crop, or even the photograph's own square in the frame): bench/unlock_report.py
measures what that does to embeddings and decisions.

A frame falls back to full-frame detection (``"fallback"``) when the ROI finds no face or a face that comes
within ``border`` × the ROI side of an ROI edge that is not a frame edge (it moved or is cut off). A full
frame (``"full"``) also runs when nothing is tracked (first frame, after no face or several faces) and every
``full_every``-th frame, so a second face appearing outside the ROI is noticed within ``full_every`` frames.

Several faces: the ROI only follows the one face the loop's policy accepted (``follow``). All faces an ROI
frame finds are returned, so a rival face inside the ROI is judged by the policy as on a full frame; a
rival outside the ROI is seen at the next full frame, where the policy (``quality.subject``: a second face of
similar size → "many faces") stops the tracking until a single face remains.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from shrinkface.runtime.detect import Face, FaceDetector

DetectKind = Literal["full", "roi", "fallback"]
DETECT_KINDS: tuple[DetectKind, ...] = ("full", "roi", "fallback")


@dataclass(frozen=True)
class TrackOptions:
    """ROI tracking parameters (see the module docstring)."""

    scale: float = 1.6  # ROI side = scale × longer side of the previous face box
    side: int = 128  # the ROI is resized down to at most side × side before YuNet (a multiple of 32 is cheapest)
    full_every: int = 15  # every full_every-th frame is detected on the full frame (1: always full)
    border: float = 0.03  # a face this close (× ROI side) to an inner ROI edge sends the frame to full detection

    def __post_init__(self) -> None:
        if self.scale < 1.0 or self.side < 32 or self.full_every < 1 or not 0.0 <= self.border < 0.5:
            raise ValueError(f"bad tracking options {self}: need scale ≥ 1, side ≥ 32, full_every ≥ 1, border < 0.5")


def roi_square(box: np.ndarray, frame_hw: tuple[int, int], scale: float) -> tuple[int, int, int]:
    """(x0, y0, side) of the square ROI around ``box`` (x, y, w, h), shifted to lie inside the frame."""
    height, width = frame_hw
    side = int(min(round(scale * float(max(box[2], box[3]))), height, width))
    side = max(side, 1)
    cx, cy = float(box[0] + box[2] / 2), float(box[1] + box[3] / 2)
    x0 = int(np.clip(round(cx - side / 2), 0, width - side))
    y0 = int(np.clip(round(cy - side / 2), 0, height - side))
    return x0, y0, side


def detect_in_roi(detector: FaceDetector, image: np.ndarray, roi: tuple[int, int, int], side: int) -> list[Face]:
    """Faces found in ``image[roi]`` resized to at most ``side`` pixels, in frame pixel coordinates.

    Pixel centres map back as ``cv2.resize`` maps them: x_frame = (x + 0.5) / s − 0.5 + x0.
    """
    x0, y0, size = roi
    crop = image[y0 : y0 + size, x0 : x0 + size]
    if size > side:
        crop = cv2.resize(crop, (side, side), interpolation=cv2.INTER_AREA)
    s = crop.shape[0] / size
    offset = np.array([x0, y0], dtype=np.float64)
    faces = []
    for face in detector.detect(crop):
        corner = (face.box[:2].astype(np.float64) + 0.5) / s - 0.5 + offset
        landmarks = (face.landmarks.astype(np.float64) + 0.5) / s - 0.5 + offset
        box = np.concatenate([corner, face.box[2:4].astype(np.float64) / s]).astype(np.float32)
        faces.append(Face(box=box, landmarks=landmarks.astype(np.float32), score=face.score))
    return faces


def touches_edge(box: np.ndarray, roi: tuple[int, int, int], frame_hw: tuple[int, int], border: float) -> bool:
    """Whether ``box`` comes within ``border`` × ROI side of an ROI edge that is not also a frame edge."""
    x0, y0, size = roi
    height, width = frame_hw
    margin = border * size
    x, y, w, h = (float(v) for v in box)
    return bool(
        (x0 > 0 and x < x0 + margin)
        or (y0 > 0 and y < y0 + margin)
        or (x0 + size < width and x + w > x0 + size - margin)
        or (y0 + size < height and y + h > y0 + size - margin)
    )


class FaceTracker:
    """Full-frame or ROI detection per frame; call ``follow`` with the face the loop used (None if none)."""

    def __init__(self, detector: FaceDetector, options: TrackOptions | None = None) -> None:
        self.detector = detector
        self.options = options or TrackOptions()
        self.box: np.ndarray | None = None
        self.since_full = 0  # frames detected through the ROI since the last full-frame detection

    def detect(self, image: np.ndarray) -> tuple[list[Face], DetectKind]:
        """This frame's faces (frame pixels, best score first) and how they were found."""
        opts = self.options
        if self.box is None or self.since_full + 1 >= opts.full_every:
            self.since_full = 0
            return self.detector.detect(image), "full"
        hw = (image.shape[0], image.shape[1])
        roi = roi_square(self.box, hw, opts.scale)
        faces = detect_in_roi(self.detector, image, roi, opts.side)
        if faces and not any(touches_edge(f.box, roi, hw, opts.border) for f in faces):
            self.since_full += 1
            return faces, "roi"
        self.since_full = 0
        return self.detector.detect(image), "fallback"

    def follow(self, face: Face | None) -> None:
        """Track ``face`` from the next frame on; ``None`` (no face, several faces) means full detection next."""
        self.box = None if face is None else np.array(face.box, dtype=np.float32)
        if face is None:
            self.since_full = 0
