"""runtime/recode.py and `shrinkface data recode` on real aligned LFW crops (+ a face-less image): records kept,
crops re-encoded within a small pixel error (checked against the PNGs with numpy), exclusions, bad inputs, and
the training scan reading the recoded folder like the original."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from shrinkface.runtime import cli_data
from shrinkface.runtime.dataset import MANIFEST, SETTINGS, align_folder, load_align_settings, load_aligned_manifest
from shrinkface.runtime.errors import DataError
from shrinkface.runtime.recode import recode_aligned

PEOPLE = ["Al_Gore", "Amelia_Vega"]  # 8 + 7 real LFW images


@pytest.fixture(scope="module")
def aligned(tmp_path_factory, lfw_dir) -> Path:
    src = tmp_path_factory.mktemp("src")
    for name in PEOPLE:
        shutil.copytree(lfw_dir / "images" / name, src / name)
    cv2.imwrite(str(src / "Amelia_Vega" / "wall.png"), np.full((200, 180, 3), (40, 160, 90), np.uint8))
    dst = tmp_path_factory.mktemp("aligned")
    summary = align_folder(src, dst, workers=0, progress=False)
    assert summary.ok == 15 and summary.failed == 1, summary
    return dst


def test_recode_keeps_records_and_crops_within_error(aligned, tmp_path):
    dst = tmp_path / "webp"
    s = recode_aligned(aligned, dst, "webp", 90, progress=False)
    before = {r.src: r for r in load_aligned_manifest(aligned, include_failed=True)}
    after = {r.src: r for r in load_aligned_manifest(dst, include_failed=True)}
    assert after.keys() == before.keys()
    assert (s.recoded, s.failed_kept, s.excluded) == (15, 1, 0)
    errors, total = [], 0
    for rel, r in after.items():
        b = before[rel]
        assert (r.status, r.identity, r.error) == (b.status, b.identity, b.error)
        if r.status != "ok":
            assert r.crop is None
            continue
        assert r.crop.suffix == ".webp" and r.crop.parent.name == b.crop.parent.name
        np.testing.assert_array_equal(r.landmarks, b.landmarks)
        new = cv2.imread(str(r.crop)).astype(np.int32)
        old = cv2.imread(str(b.crop)).astype(np.int32)
        assert new.shape == old.shape == (112, 112, 3)
        errors.append(np.abs(new - old))
        total += b.crop.stat().st_size
    diff = np.stack(errors)
    assert s.mean_abs_error == pytest.approx(diff.mean(), abs=1e-4) and 0 < s.mean_abs_error < 3
    assert s.max_abs_error == diff.max()
    assert s.bytes_in == total and s.bytes_out < total / 5
    meta = json.loads((dst / SETTINGS).read_text())["recoded"]
    assert (meta["format"], meta["quality"], meta["from"]) == ("webp", 90, str(aligned))
    assert load_align_settings(dst) == load_align_settings(aligned)


def test_exclude_and_bad_inputs(aligned, tmp_path):
    s = recode_aligned(aligned, tmp_path / "a", "jpg", 95, exclude={"Al_Gore"}, progress=False)
    assert (s.recoded, s.failed_kept, s.excluded) == (7, 1, 8)
    assert {r.identity for r in load_aligned_manifest(tmp_path / "a")} == {"Amelia_Vega"}
    with pytest.raises(DataError, match="exists"):
        recode_aligned(aligned, tmp_path / "a", progress=False)
    with pytest.raises(DataError, match="unknown format"):
        recode_aligned(aligned, tmp_path / "b", "avif", progress=False)
    with pytest.raises(DataError, match="not an aligned folder"):
        recode_aligned(tmp_path, tmp_path / "c", progress=False)
    broken = tmp_path / "broken"
    shutil.copytree(aligned, broken)
    first = next(r for r in load_aligned_manifest(broken))
    first.crop.write_bytes(b"not a png")
    with pytest.raises(DataError, match="not decodable"):
        recode_aligned(broken, tmp_path / "d", progress=False)
    assert not (tmp_path / "d" / MANIFEST).exists()  # no manifest: nothing looks complete


def test_cli_and_training_scan(aligned, tmp_path, lfw_dir):
    from shrinkface.train.config import DataConfig, SourceConfig
    from shrinkface.train.data import scan_training_set

    app = typer.Typer()
    cli_data.register(app)
    dst = tmp_path / "webp"
    pairs = tmp_path / "pairs.txt"  # one fold naming Al_Gore: --exclude-pairs drops him
    pairs.write_text("1\t1\nAl_Gore\t1\t2\nAl_Gore\t3\tBen_Affleck\t1\n")
    result = CliRunner().invoke(app, ["data", "recode", str(aligned), str(dst), "--exclude-pairs", str(pairs)])
    assert result.exit_code == 0, result.output
    assert "7 crops re-encoded" in result.output and "8 excluded" in result.output
    cfg = DataConfig(sources=[SourceConfig(path=str(dst), kind="labelled")], pairs=None)
    recoded = scan_training_set(cfg)
    original = scan_training_set(
        DataConfig(sources=[SourceConfig(path=str(aligned), kind="labelled")], pairs=str(pairs), on_overlap="exclude")
    )
    assert recoded.classes == original.classes == ["Amelia_Vega"]
    assert len(recoded) == len(original) == 7
    assert set(recoded.keys).isdisjoint(original.keys)  # other files, other content keys
    assert recoded.report["recoded_sources"][str(dst)]["quality"] == 90  # the run's data report says so
    assert "recoded_sources" not in original.report
