"""Teacher-embedding cache: values equal a direct call of the runtime embedder (crop and mirror), resumable
after an interruption, invalidated by a changed teacher or a changed crop, same values from 2 processes."""

from __future__ import annotations

import functools
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("torch")

from shrinkface.runtime.embed import load_asset_embedder
from shrinkface.runtime.errors import DataError
from shrinkface.train.cache import TeacherCache
from shrinkface.train.data import decode_crop, file_sha256
from shrinkface.train.teachers import fingerprint

TEACHER = "faceplugin"


@pytest.fixture(scope="module")
def embedder():
    return load_asset_embedder(TEACHER)


@pytest.fixture(scope="module")
def files(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "glint-celeb6" / "images").glob("*/*.jpg"))[::211][:6]


@pytest.fixture(scope="module")
def direct(embedder, files: list[Path]) -> np.ndarray:
    """(6, 2, D) computed straight from the runtime embedder, image by image."""
    out = []
    for f in files:
        crop = cv2.imread(str(f))[..., ::-1]
        out.append([embedder.embed(crop[None])[0], embedder.embed(np.ascontiguousarray(crop[:, ::-1])[None])[0]])
    return np.asarray(out, np.float32)


class Counting:
    """Wraps an embedder; counts crops and can fail after ``fail_after`` calls (a simulated crash)."""

    def __init__(self, inner, fail_after: int | None = None) -> None:
        self.inner, self.card, self.sha256 = inner, inner.card, inner.sha256
        self.crops, self.calls, self.fail_after = 0, 0, fail_after

    def embed(self, crops: np.ndarray, flip: bool | None = None) -> np.ndarray:
        assert flip is False  # the cache stores crop and mirror separately
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt("simulated interruption")
        self.calls += 1
        self.crops += len(crops)
        return self.inner.embed(crops, flip=flip)


def _cache(root: Path, embedder, fp: str | None = None) -> TeacherCache:
    return TeacherCache(root, TEACHER, fp or fingerprint(embedder.sha256, embedder.card), embedder.card.embedding_size)


def test_cached_values_equal_the_embedder_for_crop_and_mirror(tmp_path, embedder, files, direct) -> None:
    keys = [file_sha256(f) for f in files]
    cache = _cache(tmp_path, embedder)
    rows = cache.fill(files, keys, embedder=embedder, chunk=4, progress=False)
    emb = np.load(cache.emb_path, mmap_mode="r")
    assert emb.shape[1:] == (2, 512)
    np.testing.assert_allclose(emb[rows], direct, atol=1e-5)
    assert (np.linalg.norm(emb[rows], axis=2) > 0.999).all()
    # a second call computes nothing and returns the same rows, also for a shuffled request
    counting = Counting(embedder)
    again = cache.fill(files[::-1], keys[::-1], embedder=counting, progress=False)
    assert counting.crops == 0 and list(again) == list(rows[::-1])
    reopened = _cache(tmp_path, embedder)
    assert list(reopened.rows_for(keys)) == list(rows) and reopened.missing(rows).size == 0


def test_an_interrupted_fill_resumes_where_it_stopped(tmp_path, embedder, files, direct) -> None:
    keys = [file_sha256(f) for f in files]
    crashing = Counting(embedder, fail_after=2)  # chunk 2 → 1 chunk = 2 calls (crop, mirror) then a crash
    with pytest.raises(KeyboardInterrupt):
        _cache(tmp_path, embedder).fill(files, keys, embedder=crashing, chunk=2, progress=False)
    cache = _cache(tmp_path, embedder)
    rows = cache.rows_for(keys)
    assert cache.missing(rows).size == 4  # the first chunk of 2 was saved
    counting = Counting(embedder)
    rows = cache.fill(files, keys, embedder=counting, chunk=2, progress=False)
    assert counting.crops == 2 * 4  # only the 4 missing crops (and their mirrors)
    np.testing.assert_allclose(np.load(cache.emb_path)[rows], direct, atol=1e-5)


def test_a_changed_teacher_or_crop_is_recomputed(tmp_path, embedder, files) -> None:
    work = tmp_path / "crops"
    work.mkdir()
    copies = [Path(shutil.copy(f, work / f"{i}.png")) for i, f in enumerate(files[:3])]
    keys = [file_sha256(f) for f in copies]
    first = _cache(tmp_path / "c", embedder)
    first.fill(copies, keys, embedder=embedder, progress=False)
    old_dir = first.dir
    # same teacher bytes under another card → another fingerprint → the old cache is dropped
    other = "f" * 64
    counting = Counting(embedder)
    second = TeacherCache(tmp_path / "c", TEACHER, other, 512)
    second.fill(copies, keys, embedder=counting, progress=False)
    assert counting.crops == 6 and not old_dir.exists() and second.dir.exists()
    # the same pixels re-encoded (other bytes) are a new key: only that crop is embedded again
    img = cv2.imread(str(copies[1]))
    cv2.imwrite(str(copies[1]), img, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    assert np.array_equal(decode_crop(copies[1]), img[..., ::-1])
    new_keys = [file_sha256(f) for f in copies]
    assert new_keys[1] != keys[1] and new_keys[0] == keys[0]
    counting = Counting(embedder)
    second.fill(copies, new_keys, embedder=counting, progress=False)
    assert counting.crops == 2


def test_two_processes_give_the_same_values(tmp_path, embedder, files, direct) -> None:
    keys = [file_sha256(f) for f in files]
    cache = _cache(tmp_path, embedder)
    factory = functools.partial(load_asset_embedder, TEACHER)
    rows = cache.fill(files, keys, factory=factory, processes=2, chunk=3, progress=False)
    np.testing.assert_allclose(np.load(cache.emb_path)[rows], direct, atol=1e-5)


def test_bad_fingerprint_is_refused(tmp_path) -> None:
    with pytest.raises(DataError, match="hex digest"):
        TeacherCache(tmp_path, TEACHER, "not-a-hash", 512)
