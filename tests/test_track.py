"""ROI tracking detection (runtime/track.py) on real LFW photographs placed into 320×240 frames."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from shrinkface.runtime.detect import FaceDetector
from shrinkface.runtime.image import load_image
from shrinkface.runtime.track import FaceTracker, TrackOptions, detect_in_roi, roi_square, touches_edge

# LFW images outside pairs.txt (pairs.txt images are kept for evaluation).
PEOPLE = [("Tony_Blair", 6), ("Tony_Blair", 9), ("George_Clooney", 3), ("Colin_Powell", 3), ("George_W_Bush", 5)]
W, H = 320, 240
OFFSET = np.array([100.0, 40.0])  # where the photo sits in the frame


def _place(photos: list[tuple[np.ndarray, int, int, int]]) -> np.ndarray:
    """A grey 320×240 frame with each (photo, side, x, y) scaled to side×side at (x, y)."""
    frame = np.full((H, W, 3), 96, np.uint8)
    for photo, side, x, y in photos:
        frame[y : y + side, x : x + side] = cv2.resize(photo, (side, side), interpolation=cv2.INTER_AREA)
    return frame


@pytest.fixture(scope="module")
def photos(lfw_image) -> list[np.ndarray]:
    return [load_image(lfw_image(name, number)) for name, number in PEOPLE]


def test_roi_maps_back_to_frame_pixels(detector, asset_file, photos) -> None:
    """The ROI crop is exactly the photo: ROI landmarks = the photo's own detection + the ROI offset."""
    photo = cv2.resize(photos[0], (160, 160), interpolation=cv2.INTER_AREA)
    frame = _place([(photo, 160, 100, 40)])
    direct = max(detector.detect(photo), key=lambda f: f.area)
    roi = max(detect_in_roi(detector, frame, (100, 40, 160), 160), key=lambda f: f.area)
    assert np.allclose(roi.landmarks, direct.landmarks + OFFSET, atol=1e-3)
    assert np.allclose(roi.box[:2], direct.box[:2] + OFFSET, atol=1e-3)
    # Resized ROI: detect.py's own downscale-and-map-back path (max_side 128) is the independent reference.
    small = max(FaceDetector(asset_file("yunet"), max_side=128).detect(photo), key=lambda f: f.area)
    roi = max(detect_in_roi(detector, frame, (100, 40, 160), 128), key=lambda f: f.area)
    assert np.allclose(roi.landmarks, small.landmarks + OFFSET, atol=1e-3)
    assert np.allclose(roi.box, np.r_[small.box[:2] + OFFSET, small.box[2:]], atol=1e-3)


def test_roi_square_stays_in_frame() -> None:
    assert roi_square(np.array([100, 50, 60, 80]), (H, W), 1.5) == (70, 30, 120)  # centre (130, 90), side 120
    assert roi_square(np.array([-10, 200, 60, 80]), (H, W), 1.5) == (0, 120, 120)  # shifted inside, not cut
    assert roi_square(np.array([0, 0, 300, 300]), (H, W), 2.0) == (30, 0, 240)  # never larger than the frame
    roi = (70, 30, 120)
    assert not touches_edge(np.array([100, 50, 60, 80]), roi, (H, W), 0.03)
    assert touches_edge(np.array([72, 50, 60, 80]), roi, (H, W), 0.03)  # 2 px from the ROI's left edge
    assert not touches_edge(np.array([2, 50, 60, 80]), (0, 30, 120), (H, W), 0.03)  # that edge is the frame's


def test_roi_frames_match_full_frame_landmarks(detector, photos) -> None:
    """Same frame, tracked vs full-frame detection. Tolerance: YuNet's landmarks on the same frame shifted by
    1 px move by up to ~0.18 inter-eye distances (80 LFW frames, bench/unlock_camera.py), and any context
    change moves them by ~2 px on average; a mapping error would instead shift every landmark by the ROI
    offset (tens of px) or rescale the face, and a swapped landmark sits ≥ ~0.7 eye distances away."""
    deviations = []
    for photo in photos:
        frame = _place([(photo, 240, 40, 0)])
        tracker = FaceTracker(detector)
        faces, kind = tracker.detect(frame)
        assert kind == "full" and len(faces) >= 1
        full = max(faces, key=lambda f: f.area)
        tracker.follow(full)
        faces, kind = tracker.detect(frame)
        assert kind == "roi"
        tracked = max(faces, key=lambda f: f.area)
        eye = float(np.linalg.norm(full.landmarks[1] - full.landmarks[0]))
        error = np.linalg.norm(tracked.landmarks - full.landmarks, axis=1) / eye
        assert error.max() < 0.35, (error, eye)
        deviations.append(error.mean())
        assert abs(tracked.box[2] / full.box[2] - 1) < 0.15  # same face size
    assert np.mean(deviations) < 0.12


def test_fallback_when_the_face_leaves_the_roi(detector, photos) -> None:
    left, right = _place([(photos[2], 140, 0, 50)]), _place([(photos[2], 140, 180, 50)])
    blank = np.full((H, W, 3), 96, np.uint8)
    tracker = FaceTracker(detector)
    faces, kind = tracker.detect(left)
    tracker.follow(max(faces, key=lambda f: f.area))
    faces, kind = tracker.detect(right)  # the ROI around the left face sees grey (or an edge of the photo)
    assert kind == "fallback"
    full = max(detector.detect(right), key=lambda f: f.area)
    found = max(faces, key=lambda f: f.area)
    assert np.allclose(found.landmarks, full.landmarks) and found.box[0] > 180
    tracker.follow(found)
    assert tracker.detect(right)[1] == "roi"
    faces, kind = tracker.detect(blank)  # face gone: full frame, nothing
    assert kind == "fallback" and faces == []
    tracker.follow(None)
    assert tracker.detect(left)[1] == "full"


def test_second_face_is_noticed_at_the_next_full_frame(detector, photos) -> None:
    """Policy semantics: the ROI follows one face; a second face outside it shows up on the periodic full frame."""
    one = _place([(photos[0], 150, 0, 45)])
    two = _place([(photos[0], 150, 0, 45), (photos[2], 150, 170, 45)])
    tracker = FaceTracker(detector, TrackOptions(full_every=3))
    seen = []
    for frame in (one, two, two, two, two):
        faces, kind = tracker.detect(frame)
        seen.append((kind, len(faces)))
        tracker.follow(max(faces, key=lambda f: f.area) if len(faces) == 1 else None)  # loop: several → lost
    assert seen == [("full", 1), ("roi", 1), ("roi", 1), ("full", 2), ("full", 2)]


def test_bad_options() -> None:
    for bad in ({"scale": 0.9}, {"side": 16}, {"full_every": 0}, {"border": 0.5}):
        with pytest.raises(ValueError, match="tracking options"):
            TrackOptions(**bad)
