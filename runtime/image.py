"""Load any user image into an RGB uint8 array, or fail with a typed, explanatory error.

JPEG/PNG/BMP/WebP (whatever OpenCV decodes); EXIF orientation is honoured; grayscale, RGBA and 16-bit images
are converted to 8-bit RGB. Empty, corrupt, truncated and oversized inputs raise ``ImageError`` subclasses
rather than crashing or silently returning a half-grey picture.
"""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np

from shrinkface.runtime.errors import (
    CorruptImageError,
    EmptyImageError,
    ImageError,
    ImageTooLargeError,
    TruncatedImageError,
)

MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_PIXELS = 50_000_000


def _read_bytes(source: str | Path | bytes | bytearray | memoryview) -> tuple[bytes, str]:
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source), "<bytes>"
    path = Path(source)
    if not path.exists():
        raise ImageError(f"{path}: no such file")
    if not path.is_file():
        raise ImageError(f"{path}: not a file")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ImageTooLargeError(f"{path}: {size} bytes is over the {MAX_FILE_BYTES}-byte limit")
    return path.read_bytes(), str(path)


def _check_complete(data: bytes, name: str) -> None:
    """Catch truncated JPEG/PNG files, which some decoders return as partly grey images."""
    if data[:2] == b"\xff\xd8" and b"\xff\xd9" not in data[-4096:]:
        raise TruncatedImageError(f"{name}: JPEG data ends early (no end-of-image marker); the file is truncated")
    if data[:8] == b"\x89PNG\r\n\x1a\n" and b"IEND" not in data[-64:]:
        raise TruncatedImageError(f"{name}: PNG data ends early (no IEND chunk); the file is truncated")


#: JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic); they carry the image size.
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _declared_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG IHDR or JPEG SOF header without decoding; None for other formats."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if data[:2] != b"\xff\xd8":
        return None
    pos = 2
    while pos + 9 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _JPEG_SOF:
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return width, height
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length field
            pos += 2
            continue
        pos += 2 + struct.unpack(">H", data[pos + 2 : pos + 4])[0]
    return None


def _to_rgb8(img: np.ndarray) -> np.ndarray:
    if img.dtype == np.uint16:
        img = (img.astype(np.uint32) * 255 // 65535).astype(np.uint8)
    elif img.dtype in (np.float32, np.float64):
        img = np.clip(img * 255.0, 0, 255).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise CorruptImageError(f"unsupported pixel type {img.dtype}")
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    channels = img.shape[2]
    if channels == 1:
        return cv2.cvtColor(img[..., 0], cv2.COLOR_GRAY2RGB)
    if channels == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def load_image(source: str | Path | bytes | bytearray | memoryview) -> np.ndarray:
    """Decode ``source`` (a path or encoded bytes) into an H×W×3 RGB uint8 array."""
    data, name = _read_bytes(source)
    if not data:
        raise EmptyImageError(f"{name}: the file is empty (0 bytes)")
    if len(data) > MAX_FILE_BYTES:
        raise ImageTooLargeError(f"{name}: {len(data)} bytes is over the {MAX_FILE_BYTES}-byte limit")
    declared = _declared_size(data)
    if declared is not None and declared[0] * declared[1] > MAX_PIXELS:
        raise ImageTooLargeError(
            f"{name}: the header declares {declared[0]}×{declared[1]}, over the {MAX_PIXELS}-pixel limit"
        )
    _check_complete(data, name)
    buf = np.frombuffer(data, dtype=np.uint8)
    # IMREAD_COLOR applies the EXIF orientation; ANYDEPTH keeps 16-bit samples for an exact conversion.
    try:
        img = cv2.imdecode(buf, cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH)
    except cv2.error as exc:  # OpenCV refuses images over OPENCV_IO_MAX_IMAGE_PIXELS
        raise ImageTooLargeError(f"{name}: the decoder refused the image ({exc.err})") from exc
    if img is None:
        raise CorruptImageError(f"{name}: not a decodable image (JPEG, PNG, BMP or WebP expected)")
    if img.shape[0] * img.shape[1] > MAX_PIXELS:
        raise ImageTooLargeError(f"{name}: {img.shape[1]}×{img.shape[0]} is over the {MAX_PIXELS}-pixel limit")
    if min(img.shape[:2]) < 8:
        raise CorruptImageError(f"{name}: {img.shape[1]}×{img.shape[0]} is too small to hold a face")
    return _to_rgb8(img)
