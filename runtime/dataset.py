"""Align a folder of face images into crops plus a manifest: resumable, multiprocess, no silent drops.

Layout: ``SRC`` is any tree of images (LFW's ``<Name>/<Name>_NNNN.jpg``, class-per-folder ``<Name>/*.jpg``,
or a flat folder such as UTKFace). For every source image ``rel`` the aligned crop is written losslessly to
``DST/rel`` with a ``.png`` suffix, and ``DST/manifest.jsonl`` gets one record:

``{"src": rel, "status": "ok"|"failed", "crop": "rel.png"|null, "identity": "<Name>"|null,
"landmarks": [[x, y]×5], "box": [x, y, w, h], "score": s, "n_faces": n, "image_hw": [h, w],
"error": null|"NoFaceError"|…, "reason": null|"…"}``

Landmarks and box are in the ORIGINAL image's pixel coordinates. With ``pad`` > 0 the image first gets a
replicated border of ``round(pad·h)`` rows and ``round(pad·w)`` columns on each side (tightly cropped faces
such as UTKFace need it for detection), and the crop is warped from that padded image; so the crop equals
``align_face(pad_image(image, pad)[0], landmarks + offset, template, (size, size))``, and with ``pad`` 0
simply ``align_face(image, landmarks, …)``. The template is ``ARCFACE_112`` scaled by ``size / 112``.

Settings live in ``DST/align.json``; a re-run with other settings is refused. A re-run skips every source
already in the manifest (``ok`` with its crop present, or ``failed`` unless ``retry_failed``). Crops are
written under a temporary name and renamed, and a manifest line is only written after its crop exists, so an
interrupted run leaves no half-written crop and is finished by running it again.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from shrinkface.runtime.align import TEMPLATES, align_face
from shrinkface.runtime.assets import asset_path
from shrinkface.runtime.detect import FaceDetector, Policy, select_face
from shrinkface.runtime.errors import DataError, ShrinkfaceError
from shrinkface.runtime.image import load_image

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
MANIFEST = "manifest.jsonl"
SETTINGS = "align.json"
FORMAT = "shrinkface.aligned/1"
TMP_SUFFIX = ".tmp"


@dataclass(frozen=True)
class AlignSettings:
    """What determines a crop: size, border padding, detector score threshold, face policy, template."""

    size: int = 112
    pad: float = 0.0
    score: float = 0.6
    policy: Policy = "central"  # datasets centre their subject (LFW labels the central face)
    template: str = "arcface_112"

    def __post_init__(self) -> None:
        if self.template not in TEMPLATES:
            raise DataError(f"unknown template {self.template!r}; known: {', '.join(TEMPLATES)}")
        if not 16 <= self.size <= 1024:
            raise DataError(f"crop size {self.size} is outside 16–1024")
        if not 0.0 <= self.pad <= 2.0:
            raise DataError(f"pad {self.pad} is outside 0–2 (a fraction of the image size)")
        if self.policy not in ("largest", "central", "single"):
            raise DataError(f"unknown face policy {self.policy!r} (largest, central or single)")

    def template_points(self) -> np.ndarray:
        """The 5 template points for a ``size``×``size`` crop."""
        return TEMPLATES[self.template] * (self.size / 112.0)


@dataclass(frozen=True)
class AlignedRecord:
    """One manifest record; ``crop`` is an absolute path (None when the image failed)."""

    src: str
    status: str
    crop: Path | None
    identity: str | None
    landmarks: np.ndarray | None
    box: np.ndarray | None
    score: float | None
    error: str | None
    reason: str | None


@dataclass
class AlignSummary:
    """What a run did: sources found, already done before, newly aligned ok / failed, failures by error."""

    total: int
    skipped: int
    ok: int = 0
    failed: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0


def pad_image(image: np.ndarray, pad: float) -> tuple[np.ndarray, np.ndarray]:
    """A replicated border of ``round(pad·h)`` rows / ``round(pad·w)`` columns per side; returns the padded
    image and the (x, y) offset of the original inside it."""
    if pad <= 0:
        return image, np.zeros(2)
    dy, dx = round(pad * image.shape[0]), round(pad * image.shape[1])
    padded = cv2.copyMakeBorder(image, dy, dy, dx, dx, cv2.BORDER_REPLICATE)
    return padded, np.array([dx, dy], dtype=np.float64)


def crop_relpath(src_rel: str) -> str:
    """Where the crop of ``src_rel`` goes, relative to DST: same path, ``.png`` suffix."""
    return PurePosixPath(src_rel).with_suffix(".png").as_posix()


def list_images(src: Path, exclude: Path | None = None) -> list[str]:
    """Relative posix paths of every image under ``src`` (hidden files/folders and ``exclude`` skipped)."""
    found = []
    exclude = exclude.resolve() if exclude is not None else None
    for root, dirs, files in os.walk(src):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and Path(root, d).resolve() != exclude)
        for name in files:
            if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES:
                found.append(Path(root, name).relative_to(src).as_posix())
    return sorted(found)


def _identity(src_rel: str) -> str | None:
    parent = PurePosixPath(src_rel).parent.as_posix()
    return None if parent == "." else parent


def _failed_record(src_rel: str, **extra: Any) -> dict[str, Any]:
    record: dict[str, Any] = {"src": src_rel, "status": "failed", "crop": None}
    record["identity"] = _identity(src_rel)
    record |= {"landmarks": None, "box": None, "score": None, "n_faces": None, "image_hw": None}
    return record | extra


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` under a temporary name beside ``path``, then rename: no half-written file at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}{TMP_SUFFIX}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _write_png_atomic(path: Path, rgb: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise DataError(f"{path}: PNG encoding failed")
    write_bytes_atomic(path, buf.tobytes())


def align_one(
    src_root: Path, dst_root: Path, src_rel: str, detector: FaceDetector, settings: AlignSettings
) -> dict[str, Any]:
    """Align one source image, write its crop, and return its manifest record (failures included)."""
    record: dict[str, Any] = {
        "src": src_rel,
        "status": "failed",
        "crop": None,
        "identity": _identity(src_rel),
    }
    record |= {"landmarks": None, "box": None, "score": None, "n_faces": None, "image_hw": None}
    try:
        image = load_image(src_root / src_rel)
        record["image_hw"] = list(image.shape[:2])
        padded, offset = pad_image(image, settings.pad)
        faces = detector.detect(padded)
        record["n_faces"] = len(faces)
        face = select_face(faces, padded.shape[:2], settings.policy)
        crop = align_face(padded, face.landmarks, settings.template_points(), (settings.size, settings.size))
        out_rel = crop_relpath(src_rel)
        _write_png_atomic(dst_root / out_rel, crop)
    except ShrinkfaceError as exc:
        return record | {"error": type(exc).__name__, "reason": str(exc)}
    except Exception as exc:  # a bug or an OS error must not stop a 100k-image run; it is recorded
        return record | {"error": "UnexpectedError", "reason": f"{type(exc).__name__}: {exc}"}
    box = face.box.astype(np.float64)
    return record | {
        "status": "ok",
        "crop": out_rel,
        "landmarks": (face.landmarks.astype(np.float64) - offset).tolist(),
        "box": [box[0] - offset[0], box[1] - offset[1], box[2], box[3]],
        "score": face.score,
        "error": None,
        "reason": None,
    }


# -- worker processes --------------------------------------------------------------------------------
_WORKER: dict[str, Any] = {}


def _init_worker(src: Path, dst: Path, settings: AlignSettings, detector_path: Path) -> None:
    cv2.setNumThreads(1)
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # one harmless DNN warning per worker
    _WORKER.update(src=src, dst=dst, settings=settings)
    _WORKER["detector"] = FaceDetector(detector_path, score_threshold=settings.score)


def _work(src_rel: str) -> dict[str, Any]:
    return align_one(_WORKER["src"], _WORKER["dst"], src_rel, _WORKER["detector"], _WORKER["settings"])


# -- manifest ----------------------------------------------------------------------------------------
def _read_manifest_lines(path: Path) -> tuple[list[dict[str, Any]], int]:
    """Parsed records and the byte length of the complete part (a line cut by a kill is dropped)."""
    if not path.is_file():
        return [], 0
    data = path.read_bytes()
    complete = data.rfind(b"\n") + 1
    records = []
    for lineno, line in enumerate(data[:complete].splitlines(), 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{lineno}: not a JSON record ({exc})") from exc
    return records, complete


def _check_settings(dst: Path, settings: AlignSettings, src: Path) -> None:
    wanted = {"format": FORMAT, **asdict(settings), "src": str(src.resolve())}
    path = dst / SETTINGS
    if path.is_file():
        have = json.loads(path.read_text())
        if have != wanted:
            diff = {k: (have.get(k), v) for k, v in wanted.items() if have.get(k) != v}
            raise DataError(
                f"{dst} was aligned with other settings ({diff}, as (before, now)); use another DST "
                "folder or delete this one"
            )
    else:
        path.write_text(json.dumps(wanted, indent=1) + "\n")


def _compact(manifest: Path) -> None:
    """Keep one record per source (the latest) after retries, rewriting the manifest atomically."""
    records, _ = _read_manifest_lines(manifest)
    latest = {r["src"]: r for r in records}
    if len(latest) == len(records):
        return
    tmp = manifest.with_name(f".{manifest.name}{TMP_SUFFIX}")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in latest.values()))
    os.replace(tmp, manifest)


def _remove_stale_temps(dst: Path) -> None:
    for root, _, files in os.walk(dst):
        for name in files:
            if name.startswith(".") and name.endswith(TMP_SUFFIX):
                Path(root, name).unlink(missing_ok=True)


def _results(
    todo: list[str], src: Path, dst: Path, settings: AlignSettings, detector_path: Path, workers: int
) -> Iterator[dict[str, Any]]:
    if workers <= 0:  # in-process (debugging, tiny sets)
        detector = FaceDetector(detector_path, score_threshold=settings.score)
        for rel in todo:
            yield align_one(src, dst, rel, detector, settings)
        return
    ctx = mp.get_context("spawn")  # no fork of a process whose OpenCV thread pool is running
    with ctx.Pool(workers, _init_worker, (src, dst, settings, detector_path)) as pool:
        yield from pool.imap_unordered(_work, todo, chunksize=8)


def align_folder(
    src: str | Path,
    dst: str | Path,
    settings: AlignSettings | None = None,
    workers: int = 2,
    retry_failed: bool = False,
    progress: bool = True,
    detector_path: str | Path | None = None,
) -> AlignSummary:
    """Align every image under ``src`` into ``dst`` (see the module docstring); returns what was done."""
    settings = settings or AlignSettings()
    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise DataError(f"source folder {src} does not exist")
    sources = list_images(src, exclude=dst)
    if not sources:
        raise DataError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {src}")
    dst.mkdir(parents=True, exist_ok=True)
    _check_settings(dst, settings, src)
    detector_path = Path(detector_path) if detector_path else asset_path("yunet")
    FaceDetector(detector_path)  # a bad model fails here, once, not in every worker
    _remove_stale_temps(dst)

    manifest = dst / MANIFEST
    previous, complete = _read_manifest_lines(manifest)
    latest = {r["src"]: r for r in previous}
    done = {
        rel
        for rel, r in latest.items()
        if (r["status"] == "ok" and (dst / r["crop"]).is_file()) or (r["status"] != "ok" and not retry_failed)
    }
    todo: list[str] = []
    duplicates: list[dict[str, Any]] = []
    owner: dict[str, str] = {}
    summary = AlignSummary(total=len(sources), skipped=0)
    for rel in sources:
        out = crop_relpath(rel)
        if rel in done:
            summary.skipped += 1
        elif out in owner:  # e.g. a.jpg and a.png in one folder: both would become a.png
            reason = f"{out} is already the crop of {owner[out]}"
            duplicates.append(_failed_record(rel, error="DuplicateOutput", reason=reason))
        else:
            todo.append(rel)
        owner.setdefault(out, rel)
    if complete < (manifest.stat().st_size if manifest.exists() else 0):
        with open(manifest, "r+b") as fh:
            fh.truncate(complete)  # drop a line cut short by an interrupted run
    if not todo and not duplicates:
        return summary  # nothing to do: the folder is left untouched

    start = time.perf_counter()
    with open(manifest, "ab") as fh:

        def write(record: dict[str, Any]) -> None:
            fh.write((json.dumps(record) + "\n").encode())
            fh.flush()
            if record["status"] == "ok":
                summary.ok += 1
            else:
                summary.failed += 1
                summary.failures[record["error"]] += 1

        for record in duplicates:
            write(record)
        bar = tqdm(total=len(todo), unit="img", desc="align", disable=not progress or not todo)
        try:
            for record in _results(todo, src, dst, settings, detector_path, workers):
                write(record)
                bar.update()
        finally:
            bar.close()
    summary.seconds = time.perf_counter() - start
    _compact(manifest)
    return summary


def manifest_records(dst: str | Path) -> list[dict[str, Any]]:
    """The raw manifest records of an aligned folder, one per source (the last wins), sorted by source path."""
    manifest = Path(dst) / MANIFEST
    if not manifest.is_file():
        raise DataError(f"{manifest} not found: run `shrinkface data align SRC {dst}` first")
    raw, _ = _read_manifest_lines(manifest)
    latest = {r["src"]: r for r in raw}
    return [latest[rel] for rel in sorted(latest)]


def load_aligned_manifest(dst: str | Path, include_failed: bool = False) -> list[AlignedRecord]:
    """The records of an aligned folder, sorted by source path (the last record of a source wins).

    ``ok`` records only unless ``include_failed``; every ``ok`` crop must exist (else ``DataError``).
    """
    dst = Path(dst)
    manifest = dst / MANIFEST
    records = []
    for r in manifest_records(dst):
        if r["status"] != "ok" and not include_failed:
            continue
        crop = dst / r["crop"] if r["status"] == "ok" else None
        if crop is not None and not crop.is_file():
            raise DataError(f"{crop}: listed in {manifest} but missing; re-run `shrinkface data align`")
        records.append(
            AlignedRecord(
                src=r["src"],
                status=r["status"],
                crop=crop,
                identity=r.get("identity"),
                landmarks=None if r.get("landmarks") is None else np.asarray(r["landmarks"], np.float64),
                box=None if r.get("box") is None else np.asarray(r["box"], np.float64),
                score=r.get("score"),
                error=r.get("error"),
                reason=r.get("reason"),
            )
        )
    return records


def load_align_settings(dst: str | Path) -> AlignSettings:
    """The settings an aligned folder was made with."""
    path = Path(dst) / SETTINGS
    if not path.is_file():
        raise DataError(f"{path} not found: {dst} is not an aligned folder")
    raw = json.loads(path.read_text())
    return AlignSettings(**{k: raw[k] for k in ("size", "pad", "score", "policy", "template")})
