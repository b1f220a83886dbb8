"""Re-encode an aligned folder (``shrinkface data align`` output) compactly, to move a training set to a
training machine: ``shrinkface data recode SRC DST --quality 90``.

The aligned crops are lossless PNG (~21–23 KB each); WebP at quality 90 makes them ~2.2 KB with a mean
absolute error of 1.6–1.7 grey levels (measured on this project's training sets; reported by every run).
DST is itself an aligned folder: the same records (landmarks, box, identity, failures with their reasons), each
``ok`` crop re-encoded to ``rel.webp``, and ``align.json`` with a ``recoded`` entry (format, quality, source,
error). Training reads it like any aligned folder (its ``data_report.json`` lists the recoded sources); its
crops are other files, so their content keys (and teacher-cache rows) are their own.

``exclude`` drops the records of some identities (e.g. the LFW pairs' people, which training excludes anyway)
to make DST smaller. Crops are written under a temporary name and renamed, and the manifest is written last
(atomically), so an interrupted run leaves no aligned folder that looks complete: run it again.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import cv2
import numpy as np
from tqdm import tqdm

from shrinkface.runtime.dataset import MANIFEST, SETTINGS, load_align_settings, manifest_records, write_bytes_atomic
from shrinkface.runtime.errors import DataError

FORMATS = {"webp": (".webp", cv2.IMWRITE_WEBP_QUALITY), "jpg": (".jpg", cv2.IMWRITE_JPEG_QUALITY)}


@dataclass
class RecodeSummary:
    """What a recode did: crops re-encoded, failed records kept, records excluded, bytes, pixel error."""

    recoded: int = 0
    failed_kept: int = 0
    excluded: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    mean_abs_error: float = 0.0  # grey levels, over every pixel of every recoded crop
    max_abs_error: int = 0


def recode_aligned(
    src: str | Path,
    dst: str | Path,
    fmt: str = "webp",
    quality: int = 90,
    exclude: Collection[str] = (),
    progress: bool = True,
) -> RecodeSummary:
    """Re-encode every ``ok`` crop of the aligned folder ``src`` into ``dst`` (see the module docstring)."""
    src, dst = Path(src), Path(dst)
    if fmt not in FORMATS:
        raise DataError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    if not 1 <= quality <= 100:
        raise DataError(f"quality {quality} is outside 1–100")
    if src.resolve() == dst.resolve():
        raise DataError("recode writes a new folder: DST must differ from SRC")
    if (dst / MANIFEST).exists():
        raise DataError(f"{dst / MANIFEST} exists: recode into a new folder")
    load_align_settings(src)  # a readable align.json, else DataError
    settings = json.loads((src / SETTINGS).read_text())
    suffix, flag = FORMATS[fmt]
    records = manifest_records(src)
    summary = RecodeSummary()
    err_sum, pixels = 0, 0
    out: list[dict] = []
    for record in tqdm(records, desc=f"recode {src.name}", unit="img", disable=not progress):
        if record.get("identity") in exclude:
            summary.excluded += 1
            continue
        if record["status"] != "ok":
            summary.failed_kept += 1
            out.append(record)
            continue
        crop_path = src / record["crop"]
        raw = np.fromfile(crop_path, dtype=np.uint8) if crop_path.is_file() else np.zeros(0, np.uint8)
        image = cv2.imdecode(raw, cv2.IMREAD_COLOR) if raw.size else None
        if image is None:
            raise DataError(f"{crop_path}: listed as ok in {src / MANIFEST} but missing or not decodable")
        ok, buf = cv2.imencode(suffix, image, [flag, quality])
        decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else None
        if decoded is None or decoded.shape != image.shape:
            raise DataError(f"{crop_path}: {fmt} encoding failed")
        diff = np.abs(decoded.astype(np.int16) - image.astype(np.int16))
        err_sum, pixels = err_sum + int(diff.sum()), pixels + diff.size
        summary.max_abs_error = max(summary.max_abs_error, int(diff.max()))
        rel = str(PurePosixPath(record["crop"]).with_suffix(suffix))
        write_bytes_atomic(dst / rel, buf.tobytes())
        summary.recoded += 1
        summary.bytes_in += raw.size
        summary.bytes_out += buf.size
        out.append({**record, "crop": rel})
    summary.mean_abs_error = round(err_sum / pixels, 4) if pixels else 0.0
    settings["recoded"] = {
        "format": fmt,
        "quality": quality,
        "from": str(src),
        "mean_abs_error": summary.mean_abs_error,
        "max_abs_error": summary.max_abs_error,
        "excluded_records": summary.excluded,
    }
    write_bytes_atomic(dst / SETTINGS, json.dumps(settings, indent=1).encode())
    write_bytes_atomic(dst / MANIFEST, "".join(json.dumps(r) + "\n" for r in out).encode())
    return summary
