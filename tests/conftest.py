"""Shared fixtures: the real face data (``$SHRINKFACE_DATA``) and the installed assets.

Tests use small real subsets; the full runs are benchmarks. A missing data directory is an error, not a skip:
``make test`` sets ``SHRINKFACE_DATA`` (default ../shared/data).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shrinkface.runtime import assets
from shrinkface.runtime.config import data_dir as _data_dir
from shrinkface.runtime.dataset import AlignSettings, align_folder


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The face-data root."""
    return _data_dir()


@pytest.fixture(scope="session")
def lfw_dir(data_dir: Path) -> Path:
    """LFW deep-funnelled: images/<Name>/<Name>_NNNN.jpg and pairs.txt."""
    return data_dir / "lfw"


@pytest.fixture(scope="session")
def lfw_image(lfw_dir: Path):
    """Path of one LFW image: lfw_image("Aaron_Peirsol", 1)."""

    def get(name: str, number: int) -> Path:
        return lfw_dir / "images" / name / f"{name}_{number:04d}.jpg"

    return get


@pytest.fixture(scope="session")
def asset_file():
    """Path of an installed, sha256-verified asset by manifest name."""
    return lambda name: assets.asset_path(name)


@pytest.fixture(scope="session")
def detector(asset_file):
    """The YuNet face detector."""
    from shrinkface.runtime.detect import FaceDetector

    return FaceDetector(asset_file("yunet"))


@pytest.fixture(scope="session")
def aligned_glint(tmp_path_factory, data_dir: Path) -> Path:
    """50 crops per Glint person, re-aligned: the folder's crops are already ArcFace-aligned, but YuNet finds
    the faces again on a 25 % replicated border, so training sees the runtime's own alignment."""
    src = tmp_path_factory.mktemp("glint_src")
    for person in sorted((data_dir / "glint-celeb6" / "images").iterdir()):
        files = sorted(person.glob("*.jpg"))
        (src / person.name).mkdir()
        for i in np.linspace(0, len(files) - 1, 50).round().astype(int):
            (src / person.name / files[i].name).symlink_to(files[i])
    dst = tmp_path_factory.mktemp("glint_aligned")
    summary = align_folder(src, dst, AlignSettings(pad=0.25), workers=0, progress=False)
    assert summary.ok >= 295, summary  # detection works on these crops
    return dst
