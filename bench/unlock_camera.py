"""The camera-loop part of bench/unlock_report.py: a 320×240 video of real LFW photographs, a one-person
gallery, and the loop timed headless on one thread with the card ``shrinkface unlock`` would load."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import cv2
import numpy as np

from shrinkface.runtime import lfw
from shrinkface.runtime.errors import ShrinkfaceError

FRAME_W, FRAME_H = 320, 240
ENROL_PERSON = "Tony_Blair"  # images outside pairs.txt only (enrolment and probe frames)
TRAIN_PATTERN = "shrinkface " + "train run"  # split so this script's own command line never matches


def _frame(image: np.ndarray) -> np.ndarray:
    """An RGB photograph scaled to fit a 320×240 frame, centred on a grey background."""
    scale = min(FRAME_W / image.shape[1], FRAME_H / image.shape[0])
    w, h = round(image.shape[1] * scale), round(image.shape[0] * scale)
    out = np.full((FRAME_H, FRAME_W, 3), 96, np.uint8)
    x, y = (FRAME_W - w) // 2, (FRAME_H - h) // 2
    out[y : y + h, x : x + w] = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
    return out


def build_scene(lfw_dir: Path, pairs: lfw.LfwPairs, root: Path, model: str, card: Path | None, repeat: int) -> dict:
    """Gallery with ENROL_PERSON (2 images outside pairs.txt) and a video: their other non-pair images, then
    people who are in no pair at all; each photograph held for ``repeat`` frames."""
    from shrinkface.runtime.gallery import Gallery
    from shrinkface.runtime.image import load_image
    from shrinkface.runtime.recognizer import Recognizer

    in_pairs = set(pairs.image_keys)
    mine = [k for k in lfw.list_images(lfw_dir / "images") if lfw.identity_of(k) == ENROL_PERSON]
    mine = [k for k in mine if k not in in_pairs]
    gallery = root / "gallery.db"
    rec = Recognizer.load(model, gallery, card)
    enrolments, used = [], []
    for k in mine:
        if len(enrolments) == 2:
            break
        try:
            enrolments.append(rec.enrolment(lfw_dir / "images" / k))
            used.append(k)
        except ShrinkfaceError:  # a turned head, a second face: try the next image
            continue
    with Gallery(gallery, create=True) as g:
        g.enroll(ENROL_PERSON, rec.templates(enrolments))
    others = sorted(set(lfw.list_images(lfw_dir / "images")) - in_pairs)
    others = [k for k in others if lfw.identity_of(k) not in lfw.pair_identities(pairs)]
    strangers = [others[i] for i in np.linspace(0, len(others) - 1, 12).round().astype(int)]
    probes = [k for k in mine if k not in used][:12]
    frames, truth = [], []
    for key, who in [*((k, ENROL_PERSON) for k in probes), *((k, None) for k in strangers)]:
        frame = _frame(load_image(lfw_dir / "images" / key))
        frames += [frame] * repeat
        truth += [who] * repeat
    video = root / "scene.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 15.0, (FRAME_W, FRAME_H))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return {"gallery": gallery, "video": video, "truth": truth, "enrolled_from": used, "probes": probes}


def _pause(signal_name: str) -> None:
    subprocess.run(["pkill", f"-{signal_name}", "-f", TRAIN_PATTERN], check=False)


def time_camera(model: str, card: Path | None, scene: dict, pause: bool, window: int = 5) -> dict:
    """Run the loop twice over the video (the first run warms up), timing the second."""
    from shrinkface.runtime.camera import STAGES, open_frames, run_loop
    from shrinkface.runtime.gallery import Gallery
    from shrinkface.runtime.recognizer import Recognizer

    cv2.setNumThreads(1)
    rec = Recognizer.load(model, scene["gallery"], card)
    with Gallery(scene["gallery"]) as g:
        templates = g.templates(rec.sha256)
    thr = rec.threshold()
    run_loop(open_frames(scene["video"], "opencv", 30), rec.pipeline, templates, thr, window)  # warm-up
    stamps: list[float] = []
    if pause:
        _pause("STOP")
    try:
        time.sleep(0.2)
        stamps.append(time.perf_counter())
        summary = run_loop(
            open_frames(scene["video"], "opencv"),
            rec.pipeline,
            templates,
            thr,
            window,
            on_frame=lambda _: stamps.append(time.perf_counter()),
        )
    finally:
        if pause:
            _pause("CONT")
    whole = np.diff(stamps) * 1e3

    def stats(values: list[float] | np.ndarray) -> dict:
        v = np.asarray(values, dtype=np.float64)
        return {"median": round(float(np.median(v)), 3), "p90": round(float(np.percentile(v, 90)), 3), "n": len(v)}

    stages = {s: stats([f.timings[s] for f in summary.frames if s in f.timings]) for s in STAGES}
    truth = scene["truth"][: len(summary.frames)]
    scores = [None if f.scores is None else float(f.scores[0]) for f in summary.frames]
    frame_accepts = [s is not None and s >= thr for s in scores]
    mine = [a for a, t in zip(frame_accepts, truth, strict=True) if t]
    theirs = [a for a, t in zip(frame_accepts, truth, strict=True) if not t]
    return {
        "frame_size": [FRAME_W, FRAME_H],
        "frames": len(summary.frames),
        "window": window,
        "threshold": thr,
        "card": rec.card_source,
        "stage_ms": stages,
        "whole_frame_ms": stats(whole),
        "whole_frame_with_face_ms": stats(whole[[f.scores is not None for f in summary.frames]]),
        "fps": round(summary.fps, 1),
        "no_face_frames": sum(f.status != "face" for f in summary.frames),
        "enrolled_frames_accepted": f"{sum(mine)}/{len(mine)}",
        "stranger_frames_accepted": f"{sum(theirs)}/{len(theirs)}",
        "unlocked_during_enrolled": any(f.decision for f, t in zip(summary.frames, truth, strict=True) if t),
        "unlocked_during_strangers": any(f.decision for f, t in zip(summary.frames, truth, strict=True) if not t),
        "enrolled_from": scene["enrolled_from"],
    }
