"""The one 5-point face alignment used by training, evaluation and the runtime.

A least-squares similarity transform (rotation, uniform scale, translation; Umeyama 1991) maps the detector's
five landmarks (eye, eye, nose tip, mouth corner, mouth corner — image-left first) onto a template, and OpenCV
warps the image with it. The standard template is insightface's 112×112 ArcFace layout.
"""

from __future__ import annotations

import cv2
import numpy as np

#: insightface's 112×112 ArcFace template: left eye, right eye, nose, left mouth corner, right mouth corner
#: (as seen in the image).
ARCFACE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)

TEMPLATES: dict[str, np.ndarray] = {"arcface_112": ARCFACE_112}


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2×3 matrix of the least-squares similarity transform taking ``src`` points onto ``dst`` (Umeyama)."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(f"need two matching (N≥2, 2) point sets, got {src.shape} and {dst.shape}")
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    cov = dst_c.T @ src_c / len(src)
    u, sing, vt = np.linalg.svd(cov)
    d = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[1, 1] = -1.0
    rot = u @ d @ vt
    var_src = (src_c**2).sum() / len(src)
    if var_src <= 0:
        raise ValueError("source points are all identical")
    scale = float(np.trace(np.diag(sing) @ d) / var_src)
    matrix = np.empty((2, 3), dtype=np.float64)
    matrix[:, :2] = scale * rot
    matrix[:, 2] = dst_mean - scale * rot @ src_mean
    return matrix


def align_face(
    image: np.ndarray,
    landmarks: np.ndarray,
    template: np.ndarray = ARCFACE_112,
    output_size: tuple[int, int] = (112, 112),
) -> np.ndarray:
    """Warp ``image`` (H×W×3 uint8) so its 5 ``landmarks`` land on ``template``; returns an
    ``output_size`` (height, width) crop of the same channel order."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    template = np.asarray(template, dtype=np.float64)
    if landmarks.shape not in ((5, 2), (10,)) or template.shape not in ((5, 2), (10,)):
        raise ValueError(
            f"alignment needs 5 landmarks and a 5-point template as (5, 2) or flat (10,) arrays, "
            f"got {landmarks.shape} and {template.shape}"
        )
    landmarks, template = landmarks.reshape(5, 2), template.reshape(5, 2)
    matrix = similarity_transform(landmarks, template)
    height, width = output_size
    return cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR, borderValue=0.0)


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 2×3 affine ``matrix`` to (N, 2) ``points``."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return points @ matrix[:, :2].T + matrix[:, 2]
