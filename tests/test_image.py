"""runtime/image.py on real LFW images: format round trips, EXIF orientation, pixel formats, typed errors."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from shrinkface.runtime import image as image_mod
from shrinkface.runtime.errors import (
    CorruptImageError,
    EmptyImageError,
    ImageError,
    ImageTooLargeError,
    TruncatedImageError,
)
from shrinkface.runtime.image import load_image


@pytest.fixture(scope="module")
def lfw_rgb(lfw_image) -> np.ndarray:
    """A real LFW face as RGB, decoded by Pillow (independent of the code under test)."""
    return np.asarray(Image.open(lfw_image("Aaron_Peirsol", 1)).convert("RGB"))


def _png(width: int, height: int, idat: bytes = b"", colour_type: int = 2) -> bytes:
    """A PNG byte string with a given IHDR and IDAT (CRCs correct, pixel data as given)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_lfw_jpeg_decodes_to_rgb_like_pillow(lfw_image, lfw_rgb):
    img = load_image(lfw_image("Aaron_Peirsol", 1))
    assert img.shape == (250, 250, 3) and img.dtype == np.uint8
    # Two different JPEG decoders (libjpeg-turbo builds, IDCT/upsampling choices) agree to a few levels; a
    # BGR/RGB swap would differ by tens.
    diff = np.abs(img.astype(int) - lfw_rgb.astype(int))
    assert diff.mean() < 1.0 and np.percentile(diff, 99) <= 4


@pytest.mark.parametrize("ext", [".png", ".bmp", ".webp"])
def test_lossless_round_trip(tmp_path, lfw_rgb, ext):
    params = [cv2.IMWRITE_WEBP_QUALITY, 101] if ext == ".webp" else []  # quality > 100 = lossless WebP
    ok, buf = cv2.imencode(ext, cv2.cvtColor(lfw_rgb, cv2.COLOR_RGB2BGR), params)
    assert ok
    path = tmp_path / f"face{ext}"
    path.write_bytes(buf.tobytes())
    np.testing.assert_array_equal(load_image(path), lfw_rgb)
    np.testing.assert_array_equal(load_image(buf.tobytes()), lfw_rgb)  # bytes input too


def test_jpeg_round_trip_is_close(tmp_path, lfw_rgb):
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(lfw_rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 98])
    assert ok
    path = tmp_path / "face.jpg"
    path.write_bytes(buf.tobytes())
    img = load_image(path)
    assert img.shape == lfw_rgb.shape
    assert np.abs(img.astype(int) - lfw_rgb.astype(int)).mean() < 2.0


@pytest.mark.parametrize(
    ("orientation", "rotate"),
    [
        (1, None),
        (3, Image.Transpose.ROTATE_180),
        (6, Image.Transpose.ROTATE_270),
        (8, Image.Transpose.ROTATE_90),
    ],
)
def test_exif_orientation_is_honoured(lfw_rgb, orientation, rotate):
    # A non-square image so that a 90° rotation shows in the shape; encoded losslessly-ish (q100) by Pillow.
    stored = np.ascontiguousarray(lfw_rgb[:, :180])
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    Image.fromarray(stored).save(buf, "JPEG", quality=100, exif=exif.tobytes())
    # What a viewer shows: Pillow's own transpose of the stored pixels (6 = rotate 90° clockwise to display).
    expected = np.asarray(Image.fromarray(stored).transpose(rotate)) if rotate else stored
    img = load_image(buf.getvalue())
    assert img.shape == expected.shape
    assert np.abs(img.astype(int) - expected.astype(int)).mean() < 2.0
    if orientation != 1:  # and it is really different from the raw pixel layout
        assert img.shape != stored.shape or np.abs(img.astype(int) - stored.astype(int)).mean() > 20


def test_grayscale_png_becomes_rgb(lfw_rgb):
    gray = cv2.cvtColor(lfw_rgb, cv2.COLOR_RGB2GRAY)
    img = load_image(cv2.imencode(".png", gray)[1].tobytes())
    assert img.shape == (250, 250, 3) and img.dtype == np.uint8
    for c in range(3):
        np.testing.assert_array_equal(img[..., c], gray)


def test_rgba_png_drops_alpha(lfw_rgb):
    alpha = np.full(lfw_rgb.shape[:2], 77, np.uint8)
    bgra = np.dstack([cv2.cvtColor(lfw_rgb, cv2.COLOR_RGB2BGR), alpha])
    img = load_image(cv2.imencode(".png", bgra)[1].tobytes())
    np.testing.assert_array_equal(img, lfw_rgb)


def test_16bit_png_becomes_8bit(lfw_rgb):
    deep = lfw_rgb.astype(np.uint16) * 257  # 8-bit v → 16-bit v·257, whose exact 8-bit value is v
    img = load_image(cv2.imencode(".png", cv2.cvtColor(deep, cv2.COLOR_RGB2BGR))[1].tobytes())
    assert img.dtype == np.uint8
    np.testing.assert_array_equal(img, lfw_rgb)
    gray16 = cv2.cvtColor(lfw_rgb, cv2.COLOR_RGB2GRAY).astype(np.uint16) * 257
    img = load_image(cv2.imencode(".png", gray16)[1].tobytes())
    assert img.shape == (250, 250, 3) and img.dtype == np.uint8
    np.testing.assert_array_equal(img[..., 1], cv2.cvtColor(lfw_rgb, cv2.COLOR_RGB2GRAY))


# --- bad input: each class raises its typed error with a message that names the problem ---


def test_empty_file(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(EmptyImageError, match="empty"):
        load_image(path)
    with pytest.raises(EmptyImageError):
        load_image(b"")


def test_random_bytes(tmp_path):
    path = tmp_path / "noise.jpg"
    path.write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(CorruptImageError, match="not a decodable image") as info:
        load_image(path)
    assert str(path) in str(info.value)
    assert not isinstance(info.value, TruncatedImageError)


def test_truncated_jpeg(tmp_path, lfw_image):
    data = lfw_image("Aaron_Peirsol", 1).read_bytes()
    path = tmp_path / "half.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(TruncatedImageError, match="truncated"):
        load_image(path)


def test_truncated_png(tmp_path, lfw_rgb):
    data = cv2.imencode(".png", lfw_rgb)[1].tobytes()
    path = tmp_path / "half.png"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(TruncatedImageError, match="truncated"):
        load_image(path)


def test_png_declaring_a_huge_size_is_refused_before_decoding(monkeypatch):
    # A decompression bomb: 8000×8000 = 64 Mpx of valid deflate data (rows of zeros) in under 100 kB. Over
    # MAX_PIXELS (50 M) yet under OpenCV's own limit, so it must be refused from its header, before a 192 MB
    # buffer is decoded: the decoder must not even be called.
    rows = zlib.compress(b"\x00" * (8000 + 1) * 8000, 9)
    bomb = _png(8000, 8000, rows, colour_type=0)
    assert len(bomb) < 100_000
    calls = []
    monkeypatch.setattr(image_mod.cv2, "imdecode", lambda *a: calls.append(a))
    with pytest.raises(ImageTooLargeError, match="8000×8000"):
        load_image(bomb)
    assert calls == []
    monkeypatch.undo()
    # 100000×100000 with no pixel data: refused too (header check, or OpenCV's own limit behind it).
    with pytest.raises(ImageTooLargeError):
        load_image(_png(100_000, 100_000, zlib.compress(b"\x00" * 10)))


def test_over_max_pixels_real_images(monkeypatch, lfw_image, lfw_rgb):
    monkeypatch.setattr(image_mod, "MAX_PIXELS", 250 * 250 - 1)
    with pytest.raises(ImageTooLargeError, match="250×250"):
        load_image(lfw_image("Aaron_Peirsol", 1))  # JPEG: SOF header
    with pytest.raises(ImageTooLargeError, match="pixel limit"):
        load_image(cv2.imencode(".bmp", lfw_rgb)[1].tobytes())  # BMP: checked after decoding
    monkeypatch.setattr(image_mod, "MAX_PIXELS", 250 * 250)
    assert load_image(lfw_image("Aaron_Peirsol", 1)).shape == (250, 250, 3)  # the limit is inclusive


def test_over_size_file(monkeypatch, lfw_image):
    path = lfw_image("Aaron_Peirsol", 1)
    size = path.stat().st_size
    monkeypatch.setattr(image_mod, "MAX_FILE_BYTES", size - 1)
    with pytest.raises(ImageTooLargeError, match=f"{size} bytes"):
        load_image(path)
    with pytest.raises(ImageTooLargeError):
        load_image(path.read_bytes())


def test_directory_and_missing_path(tmp_path):
    with pytest.raises(ImageError, match="not a file"):
        load_image(tmp_path)
    missing = tmp_path / "nope.jpg"
    with pytest.raises(ImageError, match="no such file"):
        load_image(missing)


def test_tiny_image_is_refused():
    with pytest.raises(CorruptImageError, match="too small"):
        load_image(cv2.imencode(".png", np.zeros((4, 40, 3), np.uint8))[1].tobytes())


def test_errors_carry_the_bad_image_exit_code(tmp_path: Path):
    from shrinkface.runtime.errors import ExitCode

    for exc in (EmptyImageError, CorruptImageError, TruncatedImageError, ImageTooLargeError):
        assert exc("x").exit_code == ExitCode.BAD_IMAGE
