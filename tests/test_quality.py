"""Enrolment quality checks on real LFW faces (people/images outside pairs.txt) and on exact geometry."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from shrinkface.runtime.align import ARCFACE_112, align_face
from shrinkface.runtime.detect import Face
from shrinkface.runtime.errors import ManyFacesError, NoFaceError, QualityError
from shrinkface.runtime.image import load_image
from shrinkface.runtime.quality import QualityPolicy, assess, check, pose, sharpness, subject


def _report(detector, image):
    face, background = subject(detector.detect(image))
    return assess(face, align_face(image, face.landmarks), background)


def test_pose_from_landmarks_geometry() -> None:
    pts = ARCFACE_112.copy()
    yaw, roll, dist = pose(pts)
    eye = pts[1] - pts[0]
    assert dist == pytest.approx(np.hypot(*eye))
    assert roll == pytest.approx(np.degrees(np.arctan2(eye[1], eye[0])))
    assert yaw == pytest.approx((pts[2, 0] - (pts[0, 0] + pts[1, 0]) / 2) / dist, abs=0.01)
    # rotating the whole face by 30° changes the roll by 30° and leaves the yaw alone
    a = np.radians(30)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    yaw_r, roll_r, dist_r = pose(pts @ rot.T)
    assert roll_r == pytest.approx(roll + 30)
    assert yaw_r == pytest.approx(yaw) and dist_r == pytest.approx(dist)
    # a nose moved along the eye line by 0.2 eye distances: yaw grows by 0.2
    moved = pts.copy()
    moved[2] += 0.2 * eye
    assert pose(moved)[0] == pytest.approx(yaw + 0.2)


def test_sharpness_is_laplacian_variance(lfw_image) -> None:
    grey = cv2.cvtColor(load_image(lfw_image("Colin_Powell", 2)), cv2.COLOR_RGB2GRAY)[60:172, 60:172]
    padded = np.pad(grey.astype(np.float64), 1, mode="reflect")  # = OpenCV's BORDER_REFLECT_101
    lap = padded[:-2, 1:-1] + padded[2:, 1:-1] + padded[1:-1, :-2] + padded[1:-1, 2:] - 4 * padded[1:-1, 1:-1]
    assert sharpness(np.dstack([grey] * 3)) == pytest.approx(lap.var(), rel=1e-9)


def test_good_real_faces_pass(detector, lfw_image) -> None:
    good = [("George_W_Bush", 1), ("Colin_Powell", 2), ("Tony_Blair", 2), ("Donald_Rumsfeld", 1)]
    for name, number in good:
        report = check(_report(detector, load_image(lfw_image(name, number))))
        assert report.eye_distance > 30 and report.blur > 25 and abs(report.roll) < 10


def test_bad_real_faces_say_why(detector, lfw_image) -> None:
    image = load_image(lfw_image("George_W_Bush", 8))
    blurred = cv2.GaussianBlur(image, (0, 0), 3.0)
    with pytest.raises(QualityError, match="blurred"):
        check(_report(detector, blurred))
    # a tilted head: the real face's landmarks turned by 40° about the eye midpoint (YuNet itself reports
    # only part of a real image rotation, see quality.QualityPolicy.max_roll)
    face, _ = subject(detector.detect(image))
    mid = face.landmarks[:2].mean(axis=0)
    a = np.radians(40)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    tilted = Face(face.box, ((face.landmarks - mid) @ rot.T + mid).astype(np.float32), face.score)
    with pytest.raises(QualityError, match="tilted"):
        check(assess(tilted, align_face(image, tilted.landmarks)))
    small = np.zeros_like(image)
    small[100:150, 100:150] = cv2.resize(image, (50, 50), interpolation=cv2.INTER_AREA)
    with pytest.raises(QualityError, match="too small"):
        check(_report(detector, small))
    turned = load_image(lfw_image("Tony_Blair", 4))  # a real head turn (yaw ≈ −0.3)
    with pytest.raises(QualityError, match="turned to the image's left"):
        check(_report(detector, turned), source="Tony_Blair_0004.jpg")
    # with looser limits the same image passes: the policy is a parameter
    check(_report(detector, turned), QualityPolicy(max_yaw=0.5))


def test_face_count(detector, lfw_image) -> None:
    with pytest.raises(ManyFacesError, match="2 faces"):
        _report(detector, load_image(lfw_image("Tony_Blair", 1)))  # Blair and a second person side by side
    with pytest.raises(NoFaceError):
        _report(detector, np.full((200, 200, 3), 128, np.uint8))
    # a much smaller face in the background is ignored, and counted
    main = load_image(lfw_image("Colin_Powell", 2))
    canvas = np.zeros((250, 400, 3), np.uint8)
    canvas[:, :250] = main
    canvas[150:225, 300:375] = cv2.resize(load_image(lfw_image("George_W_Bush", 1)), (75, 75))
    faces = detector.detect(canvas)
    assert len(faces) == 2
    face, background = subject(faces)
    assert background == 1 and face.box[0] < 250
    with pytest.raises(ManyFacesError):
        subject(faces, QualityPolicy(other_face_ratio=0.2))


def test_subject_rules_on_boxes() -> None:
    def box(size: float) -> Face:
        return Face(np.array([0, 0, size, size], np.float32), np.zeros((5, 2), np.float32), 0.9)

    face, background = subject([box(49), box(100)])
    assert face.box[2] == 100 and background == 1
    with pytest.raises(ManyFacesError, match="2 faces"):
        subject([box(10), box(100), box(60)])
