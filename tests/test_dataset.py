"""runtime/dataset.py and `shrinkface data align` on real LFW / UTKFace images (+ a corrupt file, a face-less
image and a name collision): crops, manifest, failures listed with reasons, resumability, padding."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from shrinkface.runtime import cli, cli_data
from shrinkface.runtime.align import ARCFACE_112, align_face
from shrinkface.runtime.dataset import (
    MANIFEST,
    AlignSettings,
    align_folder,
    load_align_settings,
    load_aligned_manifest,
)
from shrinkface.runtime.errors import DataError, ModelError
from shrinkface.runtime.image import load_image

PEOPLE = ["Al_Gore", "Amelia_Vega", "Ben_Affleck"]  # 8 + 7 + 7 real LFW images
BAD = {
    "Al_Gore/Al_Gore_cut.jpg": "TruncatedImageError",  # first half of a real JPEG
    "Amelia_Vega/wall.png": "NoFaceError",  # a flat-colour image
    "Ben_Affleck/Ben_Affleck_0001.png": "DuplicateOutput",  # its crop name collides with the .jpg's
}


@pytest.fixture(scope="module")
def src_dir(tmp_path_factory, lfw_dir) -> Path:
    src = tmp_path_factory.mktemp("src")
    for name in PEOPLE:
        shutil.copytree(lfw_dir / "images" / name, src / name)
    data = (src / "Al_Gore" / "Al_Gore_0001.jpg").read_bytes()
    (src / "Al_Gore" / "Al_Gore_cut.jpg").write_bytes(data[: len(data) // 2])
    cv2.imwrite(str(src / "Amelia_Vega" / "wall.png"), np.full((200, 180, 3), (40, 160, 90), np.uint8))
    shutil.copy(src / "Ben_Affleck" / "Ben_Affleck_0001.jpg", src / "Ben_Affleck" / "Ben_Affleck_0001.png")
    (src / ".hidden.jpg").write_bytes(b"not listed")
    (src / "notes.txt").write_text("not an image")
    return src


@pytest.fixture(scope="module")
def aligned(src_dir, tmp_path_factory):
    """One run with 2 worker processes; returns (dst, summary)."""
    dst = tmp_path_factory.mktemp("aligned")
    return dst, align_folder(src_dir, dst, workers=2, progress=False)


def _manifest_lines(dst: Path) -> list[dict]:
    return [json.loads(line) for line in (dst / MANIFEST).read_text().splitlines()]


def test_summary_and_one_record_per_source(src_dir, aligned):
    dst, summary = aligned
    n_lfw = sum(len(list((src_dir / n).glob("*.jpg"))) for n in PEOPLE) - 1  # minus the cut file
    assert n_lfw == 22
    assert (summary.total, summary.skipped, summary.ok, summary.failed) == (25, 0, 22, 3)
    assert dict(summary.failures) == {"TruncatedImageError": 1, "NoFaceError": 1, "DuplicateOutput": 1}
    records = _manifest_lines(dst)
    assert sorted(r["src"] for r in records) == sorted(
        p.relative_to(src_dir).as_posix()
        for p in src_dir.rglob("*.*")
        if p.suffix in (".jpg", ".png") and not p.name.startswith(".")
    )
    assert len(records) == 25  # one per source image, nothing dropped


def test_failures_are_listed_with_reasons(aligned):
    dst, _ = aligned
    failed = {r["src"]: r for r in _manifest_lines(dst) if r["status"] == "failed"}
    assert {k: v["error"] for k, v in failed.items()} == BAD
    assert "truncated" in failed["Al_Gore/Al_Gore_cut.jpg"]["reason"]
    assert "no face" in failed["Amelia_Vega/wall.png"]["reason"]
    assert "Ben_Affleck_0001.jpg" in failed["Ben_Affleck/Ben_Affleck_0001.png"]["reason"]
    assert failed["Amelia_Vega/wall.png"]["image_hw"] == [200, 180]
    for r in failed.values():
        assert r["crop"] is None
    assert not (dst / "Al_Gore" / "Al_Gore_cut.png").exists()
    assert not (dst / "Amelia_Vega" / "wall.png").exists()


def test_crops_equal_align_face_applied_directly(src_dir, aligned, detector):
    dst, _ = aligned
    records = load_aligned_manifest(dst)
    assert len(records) == 22 and {r.identity for r in records} == set(PEOPLE)
    for record in records:
        assert record.crop == dst / Path(record.src).with_suffix(".png")
        crop = load_image(record.crop)  # PNG: lossless, RGB like the source
        image = load_image(src_dir / record.src)
        np.testing.assert_array_equal(crop, align_face(image, record.landmarks, ARCFACE_112, (112, 112)))
        # landmarks and box are the detector's, in original image coordinates
        face = detector.detect_one(image, "largest")
        np.testing.assert_allclose(record.landmarks, face.landmarks, atol=1e-4)
        np.testing.assert_allclose(record.box, face.box, atol=1e-4)
        assert record.score == pytest.approx(face.score)
    assert len(load_aligned_manifest(dst, include_failed=True)) == 25
    assert load_align_settings(dst) == AlignSettings()


def test_rerun_does_no_work(src_dir, aligned):
    dst, _ = aligned
    before = {p: p.stat().st_mtime_ns for p in dst.rglob("*")}
    manifest = (dst / MANIFEST).read_bytes()
    summary = align_folder(src_dir, dst, workers=2, progress=False)
    assert (summary.skipped, summary.ok, summary.failed) == (25, 0, 0)
    assert (dst / MANIFEST).read_bytes() == manifest
    assert {p: p.stat().st_mtime_ns for p in dst.rglob("*")} == before


def test_interrupted_run_is_finished_by_a_rerun(src_dir, aligned, tmp_path):
    dst = tmp_path / "dst"
    shutil.copytree(aligned[0], dst)
    lines = (dst / MANIFEST).read_bytes().splitlines(keepends=True)
    ok = [json.loads(line) for line in lines if b'"ok"' in line]
    cut, lost_crop = ok[-1], ok[0]
    assert json.loads(lines[-1]) == cut or b'"failed"' in lines[-1]
    # a kill mid-write: the last ok record cut in half, preceded by everything but that record
    kept = [line for line in lines if json.loads(line)["src"] != cut["src"]]
    half = json.dumps(cut).encode()[:40]
    (dst / MANIFEST).write_bytes(b"".join(kept) + half)
    # a crop whose file vanished, and a temp file left by a killed worker
    (dst / lost_crop["crop"]).unlink()
    stale = dst / "Al_Gore" / ".Al_Gore_0002.png.12345.tmp"
    stale.write_bytes(b"\x89PNG half")
    summary = align_folder(src_dir, dst, workers=0, progress=False)
    assert (summary.ok, summary.failed, summary.skipped) == (2, 0, 23)
    assert not stale.exists()
    records = _manifest_lines(dst)  # every line parses again
    assert len({r["src"] for r in records}) == 25
    for record in (cut, lost_crop):
        np.testing.assert_array_equal(load_image(dst / record["crop"]), load_image(aligned[0] / record["crop"]))
    assert len(load_aligned_manifest(dst)) == 22


def test_retry_failed_and_other_settings(src_dir, aligned, tmp_path):
    dst = tmp_path / "dst"
    shutil.copytree(aligned[0], dst)
    summary = align_folder(src_dir, dst, workers=0, progress=False, retry_failed=True)
    assert (summary.ok, summary.failed, summary.skipped) == (0, 3, 22)  # the 3 bad ones fail again
    assert len(_manifest_lines(dst)) == 25  # still one record per source: the retried ones replaced
    with pytest.raises(DataError, match="other settings"):
        align_folder(src_dir, dst, AlignSettings(pad=0.1), workers=0, progress=False)


def test_bad_inputs(tmp_path, src_dir):
    with pytest.raises(DataError, match="does not exist"):
        align_folder(tmp_path / "missing", tmp_path / "out", workers=0)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images"):
        align_folder(tmp_path / "empty", tmp_path / "out", workers=0)
    with pytest.raises(ModelError):
        align_folder(src_dir, tmp_path / "out2", workers=0, detector_path=src_dir / "notes.txt")
    with pytest.raises(DataError, match="not found"):
        load_aligned_manifest(tmp_path / "empty")
    with pytest.raises(DataError):
        AlignSettings(policy="biggest")  # type: ignore[arg-type]


def test_cli_flat_folder_with_pad(tmp_path, data_dir):
    """UTKFace-like flat folder (tight 160-px crops): --pad 0.25 adds 40 px of replicated border per side;
    landmarks come back in original coordinates and the crop is align_face of the padded image."""
    src = tmp_path / "utk"
    src.mkdir()
    for path in sorted((data_dir / "utkface" / "images").glob("*.jpg"))[:4]:
        shutil.copy(path, src / path.name)
    dst = tmp_path / "utk_aligned"
    assert "shrinkface.runtime.cli_data" in cli.RUNTIME_COMMANDS
    app = typer.Typer()
    cli_data.register(app)
    app.command("noop")(lambda: None)  # keep `data` a sub-command group
    args = ["data", "align", str(src), str(dst), "--pad", "0.25", "--workers", "0", "--quiet"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "4 images" in result.output
    records = load_aligned_manifest(dst, include_failed=True)
    assert len(records) == 4
    ok = [r for r in records if r.status == "ok"]
    assert len(ok) >= 3
    for record in ok:
        assert record.identity is None and record.crop.parent == dst
        image = load_image(src / record.src)
        assert image.shape == (160, 160, 3)
        padded = cv2.copyMakeBorder(image, 40, 40, 40, 40, cv2.BORDER_REPLICATE)
        expected = align_face(padded, record.landmarks + 40, ARCFACE_112, (112, 112))
        np.testing.assert_array_equal(load_image(record.crop), expected)
        # a tightly cropped face: its eyes and mouth are inside the original 160×160 frame
        assert (record.landmarks > 0).all() and (record.landmarks < 160).all()
    rerun = CliRunner().invoke(app, args)
    assert rerun.exit_code == 0 and "4 already done" in rerun.output
    other = CliRunner().invoke(app, [*args[:4], "--pad", "0.1", "--workers", "0", "--quiet"])
    assert isinstance(other.exception, DataError)
