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


def _stats(values: list[float] | np.ndarray) -> dict:
    v = np.asarray(values, dtype=np.float64)
    if len(v) == 0:
        return {"median": None, "p90": None, "n": 0}
    return {"median": round(float(np.median(v)), 3), "p90": round(float(np.percentile(v, 90)), 3), "n": len(v)}


def time_camera(model: str, card: Path | None, scene: dict, pause: bool, window: int = 5, repeats: int = 3) -> dict:
    """Run the loop over the video with ROI tracking (the default) and with full-frame detection on every
    frame, each after a warm-up run; both timed runs happen in one paused window, tracking first. The pair is
    timed ``repeats`` times (a shared host's load moves a median by ~1 ms between runs); the tables report the
    repeat whose ROI-tracking whole-frame median is the median of all, and ``repeats`` lists every one."""
    from shrinkface.runtime.camera import DEFAULT_TRACK, open_frames, run_loop
    from shrinkface.runtime.gallery import Gallery
    from shrinkface.runtime.recognizer import Recognizer

    cv2.setNumThreads(1)
    rec = Recognizer.load(model, scene["gallery"], card)
    with Gallery(scene["gallery"]) as g:
        templates = g.templates(rec.sha256)
    thr = rec.threshold()
    modes = {"roi_tracking": DEFAULT_TRACK, "full_frame": None}
    for track in modes.values():
        run_loop(open_frames(scene["video"], "opencv", 30), rec.pipeline, templates, thr, window, track=track)
    trials = []
    for _ in range(max(1, repeats)):
        runs = {}
        if pause:
            _pause("STOP")
        try:
            time.sleep(0.2)
            for mode, track in modes.items():
                stamps = [time.perf_counter()]
                summary = run_loop(
                    open_frames(scene["video"], "opencv"),
                    rec.pipeline,
                    templates,
                    thr,
                    window,
                    on_frame=lambda _, s=stamps: s.append(time.perf_counter()),
                    track=track,
                )
                runs[mode] = (summary, np.diff(stamps) * 1e3)
        finally:
            if pause:
                _pause("CONT")
        trials.append(runs)
    medians = [float(np.median(t["roi_tracking"][1])) for t in trials]
    runs = trials[int(np.argsort(medians)[len(medians) // 2])]
    out = {
        "frame_size": [FRAME_W, FRAME_H],
        "window": window,
        "threshold": thr,
        "card": rec.card_source,
        "enrolled_from": scene["enrolled_from"],
        "tracking": {k: getattr(DEFAULT_TRACK, k) for k in ("scale", "side", "full_every", "border")},
        "repeats": [
            {mode: round(float(np.median(t[mode][1])), 3) for mode in modes} for t in trials
        ],  # whole-frame median ms of every timed repeat
    }
    for mode, (summary, whole) in runs.items():
        out[mode] = _run_report(summary, whole, scene["truth"], thr)
    a, b = (out[m].pop("_accepts") for m in modes)
    da, db = (out[m].pop("_decisions") for m in modes)
    out["same_frame_accepts"] = f"{sum(x == y for x, y in zip(a, b, strict=True))}/{len(a)}"
    out["same_window_decisions"] = f"{sum(x == y for x, y in zip(da, db, strict=True))}/{len(da)}"
    return out


def _run_report(summary, whole: np.ndarray, truth_all: list, thr: float) -> dict:
    """Timings, detection kinds and accepted frames of one loop run."""
    from shrinkface.runtime.camera import STAGES
    from shrinkface.runtime.track import DETECT_KINDS

    frames = summary.frames
    stages = {s: _stats([f.timings[s] for f in frames if s in f.timings]) for s in STAGES}
    kinds = {
        k: _stats([f.timings["detect"] for f in frames if f.detect_kind == k])
        for k in DETECT_KINDS
        if any(f.detect_kind == k for f in frames)
    }
    truth = truth_all[: len(frames)]
    accepts = [f.scores is not None and float(f.scores[0]) >= thr for f in frames]
    mine = [a for a, t in zip(accepts, truth, strict=True) if t]
    theirs = [a for a, t in zip(accepts, truth, strict=True) if not t]
    return {
        "frames": len(frames),
        "stage_ms": stages,
        "detect_ms_by_kind": kinds,
        "whole_frame_ms": _stats(whole),
        "whole_frame_mean_ms": round(float(np.mean(whole)), 3),
        "whole_frame_with_face_ms": _stats(whole[[f.scores is not None for f in frames]]),
        "fps": round(summary.fps, 1),
        "no_face_frames": sum(f.status != "face" for f in frames),
        "enrolled_frames_accepted": f"{sum(mine)}/{len(mine)}",
        "stranger_frames_accepted": f"{sum(theirs)}/{len(theirs)}",
        "unlocked_during_enrolled": any(f.decision for f, t in zip(frames, truth, strict=True) if t),
        "unlocked_during_strangers": any(f.decision for f, t in zip(frames, truth, strict=True) if not t),
        "_accepts": accepts,
        "_decisions": [f.decision for f in frames],
    }


def roi_alignment(model: str, lfw_dir: Path, pairs: lfw.LfwPairs, n: int = 200) -> dict:
    """Cosine between embeddings aligned with ROI landmarks and with full-frame landmarks, on ``n`` LFW
    images outside pairs.txt placed into 320×240 frames (the ROI built from the full-frame box, as the
    tracker does on the next frame). Reference: the same full-frame detection on the frame shifted by 1 px,
    i.e. YuNet's own landmark noise."""
    from shrinkface.runtime.align import align_face
    from shrinkface.runtime.camera import DEFAULT_TRACK
    from shrinkface.runtime.embed import resolve_embedder
    from shrinkface.runtime.image import load_image
    from shrinkface.runtime.recognizer import _detector
    from shrinkface.runtime.track import detect_in_roi, roi_square

    detector, embedder = _detector(), resolve_embedder(model, threads=1)
    template, size = embedder.card.template_array(), embedder.card.input_size
    keys = [k for k in lfw.list_images(lfw_dir / "images") if k not in set(pairs.image_keys)]
    keys = [keys[i] for i in np.linspace(0, len(keys) - 1, n).round().astype(int)]

    def emb(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        return embedder.embed(align_face(image, landmarks, template, size)[None])[0]

    roi_cos, shift_cos, dev, missed = [], [], [], 0
    for key in keys:
        frame = _frame(load_image(lfw_dir / "images" / key))
        faces = detector.detect(frame)
        if not faces:
            continue
        full = max(faces, key=lambda f: f.area)
        roi = roi_square(full.box, frame.shape[:2], DEFAULT_TRACK.scale)
        found = detect_in_roi(detector, frame, roi, DEFAULT_TRACK.side)
        if not found:
            missed += 1
            continue
        near = max(found, key=lambda f: f.area)
        shifted = np.roll(frame, (1, 1), axis=(0, 1))
        again = max(detector.detect(shifted), key=lambda f: f.area)
        ref = emb(frame, full.landmarks)
        roi_cos.append(float(ref @ emb(frame, near.landmarks)))
        shift_cos.append(float(ref @ emb(shifted, again.landmarks)))
        dev.append(float(np.abs(near.landmarks - full.landmarks).mean()))

    def summary(values: list[float]) -> dict:
        return {
            "mean": round(float(np.mean(values)), 4),
            "min": round(float(np.min(values)), 4),
            "p10": round(float(np.percentile(values, 10)), 4),
        }

    return {
        "images": len(roi_cos),
        "roi_missed": missed,
        "roi_vs_full_cosine": summary(roi_cos),
        "shift1px_vs_full_cosine": summary(shift_cos),
        "roi_landmark_mean_abs_px": round(float(np.mean(dev)), 2),
    }


def _ms_cell(stats: dict | None) -> str:
    return "– | –" if not stats else f"{stats['median']:.2f} | {stats['p90']:.2f}"


def render_camera(cam: dict, ra: dict) -> list[str]:
    """Markdown lines for the camera loop (both detection modes) and the ROI alignment comparison."""
    roi, full, opts = cam["roi_tracking"], cam["full_frame"], cam["tracking"]
    track_text = (
        f"ROI {opts['scale']}× the last box, resized to ≤ {opts['side']} px, full frame every "
        f"{opts['full_every']} frames or when the ROI loses the face"
    )
    return [
        f"## Camera loop, {cam['frame_size'][0]}×{cam['frame_size'][1]}, one thread",
        "",
        f"{roi['frames']} frames of an MJPG video (LFW photographs scaled into the frame, each held 10 frames; "
        f"{ENROL_PERSON} enrolled from 2 images outside pairs.txt, then 12 of his other non-pair images and 12 "
        f"people in no pair), threshold {cam['threshold']:.4f} from `{cam['card']}`, window {cam['window']}. "
        f"Run twice in one paused window: with ROI tracking detection (the loop's default; {track_text}) and "
        "with full-frame YuNet on every frame (`--no-track`).",
        "",
        f"Timed {len(cam.get('repeats', [])) or 1} times; whole-frame median of each repeat (ROI tracking / full "
        "frame, ms): "
        + ", ".join(f"{r['roi_tracking']:.2f} / {r['full_frame']:.2f}" for r in cam.get("repeats", []))
        + ". The tables below are the repeat with the median ROI-tracking figure.",
        "",
        "| stage | ROI tracking median ms | p90 | full-frame median ms | p90 |",
        "|---|---|---|---|---|",
        *[
            f"| {s} | {v['median']:.2f} | {v['p90']:.2f} | {full['stage_ms'][s]['median']:.2f} | "
            f"{full['stage_ms'][s]['p90']:.2f} |"
            for s, v in roi["stage_ms"].items()
        ],
        *[
            f"| detect, {k} frames ({v['n']} / {full['detect_ms_by_kind'].get(k, {}).get('n', 0)}) | "
            f"{v['median']:.2f} | {v['p90']:.2f} | {_ms_cell(full['detect_ms_by_kind'].get(k))} |"
            for k, v in roi["detect_ms_by_kind"].items()
        ],
        f"| **whole frame**, all frames (read + decode + stages + vote) | **{roi['whole_frame_ms']['median']:.2f}** "
        f"| {roi['whole_frame_ms']['p90']:.2f} | **{full['whole_frame_ms']['median']:.2f}** | "
        f"{full['whole_frame_ms']['p90']:.2f} |",
        f"| **whole frame**, frames with a face | **{roi['whole_frame_with_face_ms']['median']:.2f}** | "
        f"{roi['whole_frame_with_face_ms']['p90']:.2f} | **{full['whole_frame_with_face_ms']['median']:.2f}** | "
        f"{full['whole_frame_with_face_ms']['p90']:.2f} |",
        f"| whole frame, mean | {roi['whole_frame_mean_ms']:.2f} | | {full['whole_frame_mean_ms']:.2f} | |",
        "",
        "| | ROI tracking | full frame |",
        "|---|---|---|",
        f"| FPS | {roi['fps']} | {full['fps']} |",
        f"| frames accepted, enrolled person | {roi['enrolled_frames_accepted']} | "
        f"{full['enrolled_frames_accepted']} |",
        f"| frames accepted, strangers | {roi['stranger_frames_accepted']} | {full['stranger_frames_accepted']} |",
        f"| frames without a usable face | {roi['no_face_frames']} | {full['no_face_frames']} |",
        f"| unlocked while the enrolled person / a stranger is shown | {roi['unlocked_during_enrolled']} / "
        f"{roi['unlocked_during_strangers']} | {full['unlocked_during_enrolled']} / "
        f"{full['unlocked_during_strangers']} |",
        "",
        f"Same per-frame accept/reject in both runs: {cam['same_frame_accepts']} frames; same window decision: "
        f"{cam['same_window_decisions']}.",
        "",
        f"### ROI vs full-frame landmarks ({ra['images']} LFW images outside pairs.txt in 320×240 frames)",
        "",
        "Embeddings of the same frame aligned with the landmarks YuNet finds in the ROI (built from the "
        "full-frame box, as on the next frame) vs on the full frame; for scale, the full-frame landmarks of the "
        "frame shifted by 1 px (YuNet's own noise).",
        "",
        "| comparison | mean cosine | p10 | min |",
        "|---|---|---|---|",
        f"| ROI vs full frame | {ra['roi_vs_full_cosine']['mean']:.4f} | {ra['roi_vs_full_cosine']['p10']:.4f} | "
        f"{ra['roi_vs_full_cosine']['min']:.4f} |",
        f"| full frame shifted 1 px vs full frame | {ra['shift1px_vs_full_cosine']['mean']:.4f} | "
        f"{ra['shift1px_vs_full_cosine']['p10']:.4f} | {ra['shift1px_vs_full_cosine']['min']:.4f} |",
        "",
        f"ROI landmarks differ from full-frame ones by {ra['roi_landmark_mean_abs_px']:.2f} px (mean absolute, "
        f"per coordinate); the ROI found no face on {ra['roi_missed']} images.",
        "",
    ]
