"""The camera loop: frames → detect → align → embed → decide over the last N frames.

Frames come from ``cv2.VideoCapture`` (a camera index or a video file) or, on a Raspberry Pi where it is
installed, ``picamera2``. Each frame gets a score per enrolled person (only the claimed person for an
unlock); the decision uses the last ``window`` frames: ``mean`` averages the per-person scores of the frames
with a face, ``majority`` needs more than half of the window's frames to accept the same person. Detection
tracks the face in a small region around its last position by default (``track.FaceTracker``: full-frame
detection on the first frame, every ``full_every``-th frame and whenever the region loses the face;
``track=None`` detects every frame on the full frame). Per-stage timings (detection split by kind) and the
FPS are recorded; a preview window is optional (headless OpenCV builds have none).
"""

from __future__ import annotations

import importlib.util
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from shrinkface.runtime.decide import Reduce, TemplateSet, person_scores
from shrinkface.runtime.errors import FaceError, ImageError, ManyFacesError, ShrinkfaceError
from shrinkface.runtime.quality import QualityPolicy, subject
from shrinkface.runtime.track import DETECT_KINDS, FaceTracker, TrackOptions

Vote = Literal["mean", "majority"]
Backend = Literal["auto", "opencv", "picamera2"]
STAGES = ("detect", "align", "embed", "decide")
DEFAULT_TRACK = TrackOptions()


class CameraError(ImageError):
    """The camera or video cannot be opened or read."""


class PreviewError(ShrinkfaceError):
    """A preview window was asked for, but this OpenCV build has no GUI."""


def picamera2_available() -> bool:
    """Whether the Raspberry Pi camera library is importable."""
    return importlib.util.find_spec("picamera2") is not None


def _opencv_frames(source: int | str, max_frames: int | None) -> Iterator[np.ndarray]:
    if isinstance(source, str) and not Path(source).is_file():
        raise CameraError(f"video file {source} not found")
    cap = cv2.VideoCapture(source)
    try:
        if not cap.isOpened():
            what = f"camera {source}" if isinstance(source, int) else f"video {source}"
            raise CameraError(f"cannot open {what} (OpenCV VideoCapture failed; is it connected / a video?)")
        count = 0
        while max_frames is None or count < max_frames:
            ok, bgr = cap.read()
            if not ok or bgr is None:
                if count == 0:
                    raise CameraError(f"no frame could be read from {source}")
                return
            count += 1
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    finally:
        cap.release()


def _picamera2_frames(index: int, max_frames: int | None, size: tuple[int, int]) -> Iterator[np.ndarray]:
    from picamera2 import Picamera2  # only on a Raspberry Pi

    try:
        cam = Picamera2(index)
        cam.configure(cam.create_preview_configuration(main={"format": "RGB888", "size": size}))
        cam.start()
    except Exception as exc:  # the library raises plain RuntimeError/IndexError
        raise CameraError(f"cannot open Raspberry Pi camera {index}: {exc}") from exc
    try:
        count = 0
        while max_frames is None or count < max_frames:
            count += 1
            yield cv2.cvtColor(cam.capture_array(), cv2.COLOR_BGR2RGB)  # "RGB888" is laid out B, G, R
    finally:
        cam.stop()
        cam.close()


def open_frames(
    source: int | str | Path,
    backend: Backend = "auto",
    max_frames: int | None = None,
    size: tuple[int, int] = (640, 480),
) -> Iterator[np.ndarray]:
    """RGB frames from a camera index (picamera2 when ``auto`` finds it, else OpenCV) or a video file."""
    if isinstance(source, Path):
        source = str(source)
    if isinstance(source, int) and backend != "opencv" and (backend == "picamera2" or picamera2_available()):
        if not picamera2_available():
            raise CameraError("picamera2 is not installed (sudo apt install python3-picamera2)")
        return _picamera2_frames(source, max_frames, size)
    return _opencv_frames(source, max_frames)


# -- per-frame results and the vote ---------------------------------------------------------------------
@dataclass
class FrameResult:
    """One frame: its per-person scores (None without a usable face) and the window decision after it."""

    index: int
    scores: np.ndarray | None
    status: str  # "face", "no face", "many faces"
    timings: dict[str, float]  # milliseconds per stage
    decision: str | None = None  # accepted person after this frame's vote, else None
    score: float | None = None  # the vote's score for the best person
    box: np.ndarray | None = None
    detect_kind: str = "full"  # "full", "roi" or "fallback" (ROI missed, then full frame), see track.py


class Voter:
    """Decides from the last ``window`` frames."""

    def __init__(self, names: tuple[str, ...], threshold: float, window: int = 5, vote: Vote = "mean") -> None:
        if window < 1:
            raise ValueError("window must be ≥ 1")
        if vote not in ("mean", "majority"):
            raise ValueError(f"vote must be 'mean' or 'majority', got {vote!r}")
        self.names, self.threshold, self.window, self.vote = names, threshold, window, vote
        self.recent: deque[np.ndarray | None] = deque(maxlen=window)

    def push(self, scores: np.ndarray | None) -> tuple[str | None, float | None]:
        """Add a frame's scores; returns (accepted name or None, best vote score or None)."""
        self.recent.append(scores)
        seen = [s for s in self.recent if s is not None]
        if not seen:
            return None, None
        if self.vote == "mean":
            mean = np.mean(seen, axis=0)
            best = int(np.argmax(mean))
            # A decision needs faces in more than half of the window, so one lucky frame cannot unlock.
            enough = len(seen) * 2 > self.window
            accepted = enough and mean[best] >= self.threshold
            return (self.names[best] if accepted else None), float(mean[best])
        stacked = np.stack(seen)
        votes = [int(np.argmax(s)) for s in seen if float(np.max(s)) >= self.threshold]
        if not votes:
            best = int(np.argmax(stacked.mean(axis=0)))
            return None, float(stacked[:, best].mean())
        counts = np.bincount(votes, minlength=len(self.names))
        best = int(np.argmax(counts))
        accepted = counts[best] * 2 > self.window  # more than half of the window, frames without a face included
        return (self.names[best] if accepted else None), float(stacked[:, best].mean())


@dataclass
class LoopSummary:
    """What a camera run did: frames, FPS, median stage timings, and the decisions."""

    frames: list[FrameResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def fps(self) -> float:
        """Frames per second over the whole run."""
        return len(self.frames) / self.seconds if self.seconds > 0 else 0.0

    @property
    def decision(self) -> str | None:
        """The accepted person after the last frame (None: locked / unknown)."""
        return self.frames[-1].decision if self.frames else None

    @property
    def unlocked_by(self) -> str | None:
        """The first person ever accepted during the run."""
        return next((f.decision for f in self.frames if f.decision), None)

    def stage_ms(self) -> dict[str, float]:
        """Median milliseconds per stage over the frames that ran it."""
        out = {}
        for stage in STAGES:
            values = [f.timings[stage] for f in self.frames if stage in f.timings]
            if values:
                out[stage] = float(np.median(values))
        return out

    def detect_ms(self) -> dict[str, dict[str, float | int]]:
        """Per detection kind (full, roi, fallback): frame count and median detect milliseconds."""
        out: dict[str, dict[str, float | int]] = {}
        for kind in DETECT_KINDS:
            values = [f.timings["detect"] for f in self.frames if f.detect_kind == kind and "detect" in f.timings]
            if values:
                out[kind] = {"frames": len(values), "median_ms": round(float(np.median(values)), 3)}
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        status = [f.status for f in self.frames]
        return {
            "frames": len(self.frames),
            "fps": round(self.fps, 2),
            "stage_ms": {k: round(v, 3) for k, v in self.stage_ms().items()},
            "detect_ms": self.detect_ms(),
            "no_face_frames": status.count("no face"),
            "many_face_frames": status.count("many faces"),
            "last_decision": self.decision,
            "unlocked_by": self.unlocked_by,
            "decisions": [f.decision for f in self.frames],
            "scores": [None if f.score is None else round(f.score, 4) for f in self.frames],
        }


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


def process_frame(
    image: np.ndarray,
    index: int,
    pipeline: Any,
    templates: TemplateSet,
    reduce: Reduce = "max",
    policy: QualityPolicy | None = None,
    tracker: FaceTracker | None = None,
) -> FrameResult:
    """detect (full frame, or through ``tracker``) → align → embed → score one RGB frame, timing each stage."""
    timings: dict[str, float] = {}
    start = time.perf_counter()
    faces, kind = tracker.detect(image) if tracker is not None else (pipeline.detector.detect(image), "full")
    try:
        face, _ = subject(faces, policy)
    except FaceError as exc:
        if tracker is not None:
            tracker.follow(None)
        timings["detect"] = _ms(start)
        status = "many faces" if isinstance(exc, ManyFacesError) else "no face"
        return FrameResult(index, None, status, timings, detect_kind=kind)
    if tracker is not None:
        tracker.follow(face)
    timings["detect"] = _ms(start)
    start = time.perf_counter()
    crop = pipeline.crop(image, face)
    timings["align"] = _ms(start)
    start = time.perf_counter()
    embedding = pipeline.embedder.embed(crop[None])[0]
    timings["embed"] = _ms(start)
    start = time.perf_counter()
    scores = person_scores(templates, embedding, reduce)[0]
    timings["decide"] = _ms(start)
    return FrameResult(index, scores, "face", timings, box=face.box, detect_kind=kind)


# -- preview ------------------------------------------------------------------------------------------------
def check_preview() -> None:
    """Raise ``PreviewError`` unless OpenCV can open a window (opencv-python-headless cannot)."""
    try:
        cv2.namedWindow("shrinkface")
    except cv2.error as exc:
        raise PreviewError(
            "--preview needs an OpenCV build with GUI support; this one is headless "
            "(opencv-python-headless). Install opencv-python instead, or run without --preview"
        ) from exc


def _show(image: np.ndarray, result: FrameResult, threshold: float) -> bool:
    """Draw the box and decision; returns False when the user pressed q or Esc."""
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    colour = (0, 200, 0) if result.decision else (0, 0, 220)
    if result.box is not None:
        x, y, w, h = (round(float(v)) for v in result.box)
        cv2.rectangle(bgr, (x, y), (x + w, y + h), colour, 2)
    label = result.decision or ("locked" if result.status == "face" else result.status)
    if result.score is not None:
        label += f" {result.score:.2f}/{threshold:.2f}"
    cv2.putText(bgr, label, (10, 25), cv2.FONT_HERSHEY_SIMPLEX, 0.7, colour, 2)
    cv2.imshow("shrinkface", bgr)
    return (cv2.waitKey(1) & 0xFF) not in (ord("q"), 27)


def run_loop(
    frames: Iterable[np.ndarray],
    pipeline: Any,
    templates: TemplateSet,
    threshold: float,
    window: int = 5,
    vote: Vote = "mean",
    reduce: Reduce = "max",
    stop_when_accepted: bool = False,
    preview: bool = False,
    on_frame: Callable[[FrameResult], None] | None = None,
    track: TrackOptions | None = DEFAULT_TRACK,
) -> LoopSummary:
    """Run the loop over ``frames``; ``templates`` may hold just the claimed person (unlock) or everyone.

    ``track``: ROI tracking detection with these options (the default), or ``None`` for full-frame detection
    on every frame.
    """
    if preview:
        check_preview()
    tracker = FaceTracker(pipeline.detector, track) if track is not None else None
    voter = Voter(templates.names, threshold, window, vote)
    summary = LoopSummary()
    start = time.perf_counter()
    try:
        for index, image in enumerate(frames):
            result = process_frame(image, index, pipeline, templates, reduce, tracker=tracker)
            result.decision, result.score = voter.push(result.scores)
            summary.frames.append(result)
            if on_frame is not None:
                on_frame(result)
            if preview and not _show(image, result, threshold):
                break
            if stop_when_accepted and result.decision:
                break
    finally:
        summary.seconds = time.perf_counter() - start
        if preview:
            cv2.destroyAllWindows()
    return summary
