"""FacePipeline on real LFW images: path/bytes/array inputs agree, the crop is the card's alignment, real
pairs separate, and images without a usable face fail with typed errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shrinkface.runtime.align import ARCFACE_112, align_face
from shrinkface.runtime.embed import load_asset_embedder
from shrinkface.runtime.errors import CorruptImageError, ImageError, NoFaceError
from shrinkface.runtime.image import load_image
from shrinkface.runtime.lfw import parse_pairs
from shrinkface.runtime.pipeline import FacePipeline


def first_pairs(lfw_dir: Path, count: int) -> list[tuple[Path, Path, bool]]:
    """The first ``count`` same and first ``count`` different pairs of pairs.txt, in file order."""
    protocol = parse_pairs(lfw_dir / "pairs.txt")
    both = [(lfw_dir / "images" / p.left, lfw_dir / "images" / p.right, p.same) for p in protocol.pairs]
    return [t for t in both if t[2]][:count] + [t for t in both if not t[2]][:count]


@pytest.fixture(scope="module")
def pipeline(detector) -> FacePipeline:
    return FacePipeline(detector, load_asset_embedder("expo_mobilefacenet"))


def test_embed_image_from_path_bytes_and_array_agree(pipeline: FacePipeline, lfw_image) -> None:
    path = lfw_image("Abel_Pacheco", 1)
    emb, face = pipeline.embed_image(path)
    assert emb.shape == (192,) and abs(float(np.linalg.norm(emb)) - 1.0) < 1e-5
    assert face.score > 0.6 and face.landmarks.shape == (5, 2)
    assert set(pipeline.timings) == {"load", "detect", "align", "embed"}
    assert all(ms >= 0 for ms in pipeline.timings.values())
    from_bytes, _ = pipeline.embed_image(path.read_bytes())
    from_array, _ = pipeline.embed_image(load_image(path))
    np.testing.assert_array_equal(from_bytes, emb)
    np.testing.assert_array_equal(from_array, emb)


def test_crop_is_the_cards_alignment(pipeline: FacePipeline, lfw_image) -> None:
    image = load_image(lfw_image("Abel_Pacheco", 1))
    face = pipeline.face(image)
    crop = pipeline.crop(image, face)
    assert crop.shape == (112, 112, 3) and crop.dtype == np.uint8
    np.testing.assert_array_equal(crop, align_face(image, face.landmarks, ARCFACE_112, (112, 112)))
    # LFW deep-funnelled images are face-centred: the chosen face's landmarks lie in the middle of 250×250
    centre = face.landmarks.mean(axis=0)
    assert 80 < centre[0] < 170 and 80 < centre[1] < 170


def test_pipeline_separates_first_lfw_pairs(pipeline: FacePipeline, lfw_dir: Path) -> None:
    cos = {True: [], False: []}
    for a, b, same in first_pairs(lfw_dir, count=2):
        ea, _ = pipeline.embed_image(a)
        eb, _ = pipeline.embed_image(b)
        cos[same].append(float(ea @ eb))
    assert min(cos[True]) > max(cos[False]) + 0.2, cos


def test_images_without_a_usable_face(pipeline: FacePipeline, lfw_image) -> None:
    with pytest.raises(NoFaceError):
        pipeline.embed_image(np.full((240, 320, 3), 128, np.uint8))
    with pytest.raises(ImageError, match="uint8"):
        pipeline.embed_image(np.zeros((112, 112, 3), np.float32))
    data = lfw_image("Abel_Pacheco", 1).read_bytes()
    with pytest.raises(CorruptImageError):
        pipeline.embed_image(data[: len(data) // 2])


def test_from_assets_uses_the_teachers_card() -> None:
    pipeline = FacePipeline.from_assets("sface", policy="single")
    assert pipeline.embedder.card.name == "sface" and pipeline.embedder.batch == 1
    assert pipeline.policy == "single"
