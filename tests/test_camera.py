"""The camera/video loop on a real video: LFW frames of an enrolled person, a blank frame, then a stranger,
written with cv2.VideoWriter (MJPG in .avi) and read back through cv2.VideoCapture."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import typer

from shrinkface.runtime import cli_unlock
from shrinkface.runtime.camera import (
    DEFAULT_TRACK,
    CameraError,
    PreviewError,
    Voter,
    check_preview,
    open_frames,
    picamera2_available,
    run_loop,
)
from shrinkface.runtime.errors import ShrinkfaceError
from shrinkface.runtime.gallery import Gallery
from shrinkface.runtime.image import load_image
from shrinkface.runtime.recognizer import Recognizer
from shrinkface.runtime.track import TrackOptions

ENROLLED = ("Tony_Blair", [2, 3])  # LFW images outside pairs.txt
SEEN = ("Tony_Blair", [6, 7, 9, 10])
STRANGER = ("George_Clooney", [3, 4, 5, 6, 7])  # not enrolled (and not in pairs.txt at all)


def _write_video(path: Path, frames: list[np.ndarray], fps: float = 5.0) -> Path:
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    assert writer.isOpened(), "OpenCV cannot write MJPG .avi here"
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


@pytest.fixture(scope="module")
def scene(tmp_path_factory, lfw_image) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("camera")
    images = {(n, i): load_image(lfw_image(n, i)) for n, nums in (SEEN, STRANGER) for i in nums}
    blank = np.full((250, 250, 3), 90, np.uint8)
    seen = [images[(SEEN[0], i)] for i in SEEN[1]]
    stranger = [images[(STRANGER[0], i)] for i in STRANGER[1]]
    gallery = root / "g.db"
    rec = Recognizer.load("faceplugin", gallery)
    enrolments = [rec.enrolment(lfw_image(ENROLLED[0], i)) for i in ENROLLED[1]]
    with Gallery(gallery, create=True) as g:
        g.enroll(ENROLLED[0], rec.templates(enrolments))
    return {
        "gallery": gallery,
        "mixed": _write_video(root / "mixed.avi", [*seen, blank, *stranger]),
        "stranger": _write_video(root / "stranger.avi", stranger),
    }


def _loop(scene, vote: str, track: TrackOptions | None = DEFAULT_TRACK):
    rec = Recognizer.load("faceplugin", scene["gallery"])
    with Gallery(scene["gallery"]) as g:
        templates = g.templates(rec.sha256)
    frames = open_frames(scene["mixed"], backend="opencv")
    return run_loop(frames, rec.pipeline, templates, rec.threshold(), window=3, vote=vote, track=track)


def test_video_round_trip_keeps_frames(scene) -> None:
    frames = list(open_frames(scene["mixed"], backend="opencv"))
    assert len(frames) == 10 and frames[0].shape == (250, 250, 3)
    assert len(list(open_frames(scene["mixed"], backend="opencv", max_frames=4))) == 4


def test_majority_vote_unlocks_then_locks(scene) -> None:
    summary = _loop(scene, "majority")
    blair = ENROLLED[0]
    # window 3, more than half (2 frames) must accept the same person; frame 4 is blank, 5–9 the stranger
    assert [f.decision for f in summary.frames] == [None, blair, blair, blair, blair] + [None] * 5
    assert [f.status for f in summary.frames].count("no face") == 1
    assert summary.unlocked_by == blair and summary.decision is None
    info = summary.to_dict()
    assert set(info["stage_ms"]) == {"detect", "align", "embed", "decide"}
    assert info["fps"] > 0 and info["no_face_frames"] == 1
    # the stranger's own frames never reach the threshold; the enrolled person's all do
    thr = Recognizer.load("faceplugin", scene["gallery"]).threshold()
    assert all(float(f.scores[0]) >= thr for f in summary.frames[:4])
    assert all(float(f.scores[0]) < thr for f in summary.frames[5:])


def test_mean_vote(scene) -> None:
    decisions = [f.decision for f in _loop(scene, "mean").frames]
    blair = ENROLLED[0]
    assert decisions[:5] == [None, blair, blair, blair, blair]  # frame 0: one face in a window of 3
    assert decisions[6:] == [None] * 4  # frame 5 mixes Blair and the stranger: either outcome is fair


def test_tracking_gives_the_same_decisions(scene) -> None:
    """The default loop tracks the face in an ROI; full-frame detection on every frame decides the same
    (per-frame scores against the threshold: test_majority_vote_unlocks_then_locks, which runs tracked)."""
    for vote in ("majority", "mean"):
        tracked, full = _loop(scene, vote), _loop(scene, vote, track=None)
        assert [f.decision for f in tracked.frames] == [f.decision for f in full.frames]
        assert [f.status for f in tracked.frames] == [f.status for f in full.frames]
    kinds = [f.detect_kind for f in tracked.frames]
    # frame 0 full; the same person's next photos through the ROI; the blank frame 4 makes the ROI lose the
    # face (fallback), so frame 5 (the stranger) is detected on the full frame, then tracked again
    assert kinds[:6] == ["full", "roi", "roi", "roi", "fallback", "full"] and set(kinds[6:]) <= {"roi", "full"}
    assert {f.detect_kind for f in full.frames} == {"full"}
    info = tracked.to_dict()["detect_ms"]
    assert info["roi"]["frames"] == kinds.count("roi") and info["full"]["frames"] == kinds.count("full")
    assert set(full.to_dict()["detect_ms"]) == {"full"}


def test_voter_rules() -> None:
    fresh = Voter(("a", "b"), 0.5, 3, "mean")
    assert fresh.push(np.array([0.9, 0.1]))[0] is None  # 1 of 3 frames
    assert fresh.push(np.array([0.3, 0.2]))[0] == "a"  # mean 0.6 over 2 of 3 frames
    assert fresh.push(None)[0] == "a"
    assert fresh.push(np.array([0.2, 0.1]))[0] is None  # window (0.3, None, 0.2): mean 0.25
    major = Voter(("a", "b"), 0.5, 3, "majority")
    assert major.push(np.array([0.9, 0.1]))[0] is None
    assert major.push(np.array([0.1, 0.8]))[0] is None  # one vote each
    assert major.push(np.array([0.7, 0.1]))[0] == "a"  # a: 2 of 3
    with pytest.raises(ValueError):
        Voter(("a",), 0.5, 0)


def _cli(args: list[str], capsys) -> tuple[int, str]:
    app = typer.Typer()
    cli_unlock.register(app)
    try:
        code = app(args, standalone_mode=False)
    except ShrinkfaceError as exc:
        code = int(exc.exit_code)
    except typer.TyperException as exc:  # click's usage errors, as typer vendors them
        code = exc.exit_code
    return int(code or 0), capsys.readouterr().out


def test_unlock_cli_on_videos(scene, capsys) -> None:
    base = ["--gallery", str(scene["gallery"]), "--model", "faceplugin", "--window", "3", "--json"]
    code, out = _cli(["unlock", "--video", str(scene["mixed"]), "--name", ENROLLED[0], *base], capsys)
    result = json.loads(out)
    assert code == 0 and result["decision"] == "unlocked" and result["name"] == ENROLLED[0]
    assert result["frames"] == 2  # stops at the first unlock
    code, out = _cli(["unlock", "--video", str(scene["stranger"]), *base], capsys)
    assert code == 1 and json.loads(out)["decision"] == "rejected" and json.loads(out)["frames"] == 5
    assert json.loads(out)["detect_ms"]["roi"]["frames"] >= 1  # tracking is the default
    code, out = _cli(["unlock", "--video", str(scene["stranger"]), "--no-track", *base], capsys)
    result = json.loads(out)
    assert code == 1 and result["decision"] == "rejected" and result["detect_ms"]["full"]["frames"] == 5


def test_bad_sources(tmp_path, scene, capsys) -> None:
    with pytest.raises(CameraError, match="not found"):
        next(open_frames(tmp_path / "missing.avi"))
    text = tmp_path / "notes.avi"
    text.write_text("not a video")
    with pytest.raises(CameraError):
        next(open_frames(text, backend="opencv"))
    with pytest.raises(CameraError):
        next(open_frames(57, backend="opencv"))  # no such camera
    if not picamera2_available():
        with pytest.raises(CameraError, match="picamera2 is not installed"):
            open_frames(0, backend="picamera2")
    code, out = _cli(["unlock", "--video", str(text), "--gallery", str(scene["gallery"]), "--json"], capsys)
    assert code == 5 and "error" in json.loads(out)


def test_preview_needs_a_gui() -> None:
    if re.search(r"GUI:\s*NONE", cv2.getBuildInformation()) is None:
        pytest.skip("this OpenCV build has a GUI")
    with pytest.raises(PreviewError, match="opencv-python-headless"):
        check_preview()
