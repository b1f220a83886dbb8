"""Enrolment quality checks: exactly one face, big enough, sharp enough, facing the camera.

Measured from the detector's box and 5 landmarks (eye, eye, nose, mouth corner, mouth corner) and the aligned
crop:
- size: inter-eye distance and the box's shorter side, in image pixels;
- blur: variance of the Laplacian of the aligned crop's grey levels (Pech-Pacheco et al., 2000);
- roll: angle of the eye line, in degrees;
- yaw: horizontal offset of the nose tip from the eye midpoint, measured along the eye line and divided by
  the inter-eye distance (0 for a frontal face, about ±0.5 near profile);
- face count: faces whose size is at least ``other_face_ratio`` of the largest one count; smaller ones are
  background faces and are ignored (reported in ``background_faces``).
A rejected image raises ``QualityError`` (or ``NoFaceError`` / ``ManyFacesError``) that says why.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from shrinkface.runtime.detect import Face
from shrinkface.runtime.errors import ManyFacesError, NoFaceError, QualityError


@dataclass(frozen=True)
class QualityPolicy:
    """Limits for an acceptable enrolment image (set from LFW people outside pairs.txt, see tests)."""

    min_eye_distance: float = 24.0  # pixels
    min_box: float = 48.0  # pixels, shorter side of the detector box
    min_blur: float = 25.0  # variance of the Laplacian on the aligned crop
    max_yaw: float = 0.3  # |nose offset| / eye distance
    max_roll: float = 15.0  # degrees (YuNet's landmarks under-report strong tilts: 40° reads as ~5–18°)
    min_score: float = 0.7  # detector confidence
    other_face_ratio: float = 0.5  # a face this large relative to the largest one counts as a second face


@dataclass(frozen=True)
class QualityReport:
    """What was measured on one image (stored with the template as JSON)."""

    eye_distance: float
    box: float
    blur: float
    yaw: float
    roll: float
    score: float
    background_faces: int

    def to_dict(self) -> dict[str, float | int]:
        """JSON-ready, rounded."""
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}

    def problems(self, policy: QualityPolicy) -> list[str]:
        """Human-readable reasons this image fails ``policy`` (empty when it passes)."""
        out = []
        if self.eye_distance < policy.min_eye_distance:
            out.append(
                f"face too small: eyes {self.eye_distance:.0f} px apart "
                f"(need ≥ {policy.min_eye_distance:.0f}); move closer or use a larger image"
            )
        if self.box < policy.min_box:
            out.append(f"face too small: {self.box:.0f} px box (need ≥ {policy.min_box:.0f})")
        if self.blur < policy.min_blur:
            out.append(f"image too blurred: sharpness {self.blur:.0f} (need ≥ {policy.min_blur:.0f}); hold still")
        if abs(self.yaw) > policy.max_yaw:
            side = "right" if self.yaw > 0 else "left"
            out.append(
                f"head turned to the image's {side}: yaw {self.yaw:+.2f} (limit ±{policy.max_yaw:.2f}); "
                "look straight at the camera"
            )
        if abs(self.roll) > policy.max_roll:
            out.append(f"head tilted {self.roll:+.0f}° (limit ±{policy.max_roll:.0f}°); hold your head upright")
        if self.score < policy.min_score:
            out.append(f"unclear face: detector confidence {self.score:.2f} (need ≥ {policy.min_score:.2f})")
        return out


def face_size(face: Face) -> float:
    """The size used to compare faces: the square root of the box area."""
    return math.sqrt(max(face.area, 0.0))


def subject(faces: list[Face], policy: QualityPolicy | None = None) -> tuple[Face, int]:
    """The one face the image is about, and how many (much smaller) background faces were ignored.

    ``NoFaceError`` when there is none; ``ManyFacesError`` when a second face is at least
    ``other_face_ratio`` as large as the largest.
    """
    policy = policy or QualityPolicy()
    if not faces:
        raise NoFaceError("no face found in the image")
    ranked = sorted(faces, key=face_size, reverse=True)
    main = ranked[0]
    rivals = [f for f in ranked[1:] if face_size(f) >= policy.other_face_ratio * face_size(main)]
    if rivals:
        raise ManyFacesError(
            f"{1 + len(rivals)} faces of similar size found; exactly one person must be in the picture"
        )
    return main, len(ranked) - 1


def pose(landmarks: np.ndarray) -> tuple[float, float, float]:
    """(yaw ratio, roll in degrees, inter-eye distance) from 5 landmarks in image pixels."""
    pts = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    left_eye, right_eye, nose = pts[0], pts[1], pts[2]
    eye_line = right_eye - left_eye
    distance = float(np.hypot(*eye_line))
    if distance < 1e-6:
        return 0.0, 0.0, 0.0
    roll = math.degrees(math.atan2(eye_line[1], eye_line[0]))
    along = eye_line / distance  # unit vector along the eye line: removes roll from the nose offset
    yaw = float(np.dot(nose - (left_eye + right_eye) / 2.0, along) / distance)
    return yaw, roll, distance


def sharpness(crop_rgb: np.ndarray) -> float:
    """Variance of the Laplacian of the crop's grey levels (higher = sharper)."""
    grey = cv2.cvtColor(np.ascontiguousarray(crop_rgb), cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def assess(face: Face, crop_rgb: np.ndarray, background_faces: int = 0) -> QualityReport:
    """Measure one detected face and its aligned crop."""
    yaw, roll, distance = pose(face.landmarks)
    return QualityReport(
        eye_distance=distance,
        box=float(min(face.box[2], face.box[3])),
        blur=sharpness(crop_rgb),
        yaw=yaw,
        roll=roll,
        score=float(face.score),
        background_faces=background_faces,
    )


def check(report: QualityReport, policy: QualityPolicy | None = None, source: str = "") -> QualityReport:
    """Return ``report`` if it passes ``policy``; otherwise raise ``QualityError`` with every reason."""
    problems = report.problems(policy or QualityPolicy())
    if problems:
        where = f"{source}: " if source else ""
        raise QualityError(where + "rejected for enrolment: " + "; ".join(problems))
    return report
