"""Embedders on real LFW faces: the three teacher assets, preprocessing checked by hand, batching, flip,
card checks and wrong files.

Pairs are the first three 'same' and the first three 'different' lines of LFW's pairs.txt (not picked).
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from ai_edge_litert.interpreter import Interpreter

from shrinkface.runtime.align import ARCFACE_112, align_face
from shrinkface.runtime.assets import get_asset
from shrinkface.runtime.card import ModelCard
from shrinkface.runtime.card_io import write_card_onnx
from shrinkface.runtime.embed import Embedder, load_asset_embedder, load_embedder
from shrinkface.runtime.errors import AssetError, ModelCardError, ModelError
from shrinkface.runtime.image import load_image
from shrinkface.runtime.lfw import parse_pairs

TEACHERS = ["sface", "expo_mobilefacenet", "faceplugin"]


def first_pairs(lfw_dir: Path, count: int = 3) -> list[tuple[Path, Path, bool]]:
    """The first ``count`` same and first ``count`` different pairs of pairs.txt, in file order."""
    protocol = parse_pairs(lfw_dir / "pairs.txt")
    both = [(lfw_dir / "images" / p.left, lfw_dir / "images" / p.right, p.same) for p in protocol.pairs]
    return [t for t in both if t[2]][:count] + [t for t in both if not t[2]][:count]


@pytest.fixture(scope="module")
def pairs(lfw_dir: Path) -> list[tuple[Path, Path, bool]]:
    return first_pairs(lfw_dir)


@pytest.fixture(scope="module")
def crops(pairs, detector) -> dict[Path, np.ndarray]:
    """Aligned 112×112 RGB crops of every image in ``pairs`` (YuNet + the ArcFace template)."""
    out = {}
    for a, b, _ in pairs:
        for path in (a, b):
            if path not in out:
                image = load_image(path)
                out[path] = align_face(image, detector.detect_one(image).landmarks, ARCFACE_112, (112, 112))
    return out


@pytest.fixture(scope="module")
def embedders() -> dict[str, Embedder]:
    return {name: load_asset_embedder(name) for name in TEACHERS}


def pair_cosines(emb: np.ndarray, crops, pairs) -> tuple[np.ndarray, np.ndarray]:
    """Cosines of the 'same' and the 'different' pairs, ``emb`` being in the order of ``crops``."""
    index = {path: i for i, path in enumerate(crops)}
    cos = np.array([float(emb[index[a]] @ emb[index[b]]) for a, b, _ in pairs])
    same = np.array([s for _, _, s in pairs])
    return cos[same], cos[~same]


@pytest.mark.parametrize("name", TEACHERS)
def test_teacher_separates_real_pairs(name: str, embedders, crops, pairs) -> None:
    embedder = embedders[name]
    emb = embedder.embed(np.stack(list(crops.values())))
    assert emb.dtype == np.float32 and emb.shape == (len(crops), embedder.card.embedding_size)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    same, diff = pair_cosines(emb, crops, pairs)
    assert same.min() > diff.max() + 0.2, (same, diff)
    assert same.mean() - diff.mean() > 0.5, (same, diff)


@pytest.mark.parametrize("name", TEACHERS)
def test_flip_changes_embedding_but_keeps_identity(name: str, embedders, crops, pairs) -> None:
    embedder = embedders[name]
    batch = np.stack(list(crops.values()))
    raw, raw_mirrored = embedder.raw(batch), embedder.raw(batch[:, :, ::-1])
    plain = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    flipped = embedder.embed(batch, flip=True)
    # flip-averaging = normalise(raw(crop) + raw(mirrored crop)), computed here from the raw outputs
    both = raw + raw_mirrored
    np.testing.assert_allclose(flipped, both / np.linalg.norm(both, axis=1, keepdims=True), atol=1e-5)
    agreement = np.sum(plain * flipped, axis=1)
    assert np.all(agreement < 0.9999) and np.all(agreement > 0.95), agreement
    same, diff = pair_cosines(flipped, crops, pairs)
    assert same.min() > diff.max() + 0.2, (same, diff)


# What assets.md says each teacher expects, written out by hand (not taken from the card).
HAND_PREPROCESS = {
    "sface": lambda c: c.astype(np.float32).transpose(0, 3, 1, 2),
    "expo_mobilefacenet": lambda c: (c.astype(np.float32) - 127.5) / 128.0,
    "faceplugin": lambda c: ((c.astype(np.float32) - 127.5) / 127.5).transpose(0, 3, 1, 2),
}


@pytest.mark.parametrize("name", TEACHERS)
def test_card_preprocess_matches_assets_notes(name: str, crops) -> None:
    batch = np.stack(list(crops.values())[:3])
    expected = HAND_PREPROCESS[name](batch)
    got = get_asset(name).card.preprocess(batch)
    assert got.dtype == np.float32 and got.flags.c_contiguous
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    ("layout", "order", "dtype", "mean", "std", "scale", "zp"),
    [
        ("NHWC", "RGB", "int8", (127.5,) * 3, (127.5,) * 3, 0.0078431377, 0),  # the exported students
        ("NCHW", "BGR", "int8", (104.0, 117.0, 123.0), (58.0, 57.0, 59.0), 0.0193, -3),
        ("NHWC", "BGR", "uint8", (0.0,) * 3, (1.0,) * 3, 1.0, 0),
    ],
)
def test_integer_input_table_is_bit_identical_to_the_float_formula(layout, order, dtype, mean, std, scale, zp) -> None:
    """Every uint8 value in every channel (and a real-sized random batch) against the formula written out here."""
    card = ModelCard(
        name="t", embedding_size=8, layout=layout, channel_order=order, mean=mean, std=std,
        input_dtype=dtype, input_scale=scale, input_zero_point=zp,
    )  # fmt: skip
    rng = np.random.default_rng(0)
    ramp = (np.arange(112 * 112) % 256).astype(np.uint8).reshape(112, 112)  # every uint8 value, 49 times
    every = np.stack([ramp, ramp[::-1, ::-1], ramp.T], axis=-1)[None]  # channels differ within one pixel
    crops = np.concatenate([every, rng.integers(0, 256, (3, 112, 112, 3), dtype=np.uint8)])
    x = crops.astype(np.float32)[..., ::-1] if order == "BGR" else crops.astype(np.float32)
    x = (x - np.float32(mean)) / np.float32(std)
    info = np.iinfo(dtype)
    expected = np.clip(np.round(x / scale) + zp, info.min, info.max).astype(dtype)
    if layout == "NCHW":
        expected = expected.transpose(0, 3, 1, 2)
    got = card.preprocess(crops)
    assert got.dtype == np.dtype(dtype) and got.flags.c_contiguous
    np.testing.assert_array_equal(got, expected)


def test_onnx_embedding_matches_a_direct_onnxruntime_run(embedders, crops, asset_file) -> None:
    crop = next(iter(crops.values()))
    session = ort.InferenceSession(str(asset_file("faceplugin")), providers=["CPUExecutionProvider"])
    raw = session.run(None, {"input": HAND_PREPROCESS["faceplugin"](crop[None])})[0][0]
    np.testing.assert_allclose(embedders["faceplugin"].embed_one(crop), raw / np.linalg.norm(raw), atol=1e-5)
    assert embedders["faceplugin"].provider == "CPUExecutionProvider"


def test_tflite_fixed_batch_padding_matches_a_direct_run(embedders, crops, asset_file) -> None:
    """Expo's batch is frozen at 2: one or three crops are padded, and every face gets its own embedding."""
    batch = np.stack(list(crops.values())[:3])
    interpreter = Interpreter(model_path=str(asset_file("expo_mobilefacenet")), num_threads=1)
    interpreter.allocate_tensors()
    direct = []
    for pair in (batch[:2], batch[[2, 2]]):
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], HAND_PREPROCESS["expo_mobilefacenet"](pair))
        interpreter.invoke()
        direct.append(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).copy())
    raw = np.concatenate(direct)[:3]
    expected = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    embedder = embedders["expo_mobilefacenet"]
    assert embedder.batch == 2
    np.testing.assert_allclose(embedder.embed(batch), expected, atol=1e-5)
    np.testing.assert_allclose(embedder.embed(batch[:1])[0], expected[0], atol=1e-5)
    assert embedder.embed(batch[:0]).shape == (0, 192)


def test_bad_crops_are_refused(embedders, crops) -> None:
    crop = next(iter(crops.values()))
    embedder = embedders["expo_mobilefacenet"]
    with pytest.raises(ValueError, match="112, 112, 3"):
        embedder.embed(crop[:100])
    with pytest.raises(ValueError, match="uint8"):
        embedder.embed(crop.astype(np.float32))


def test_card_in_file_is_used_and_sha256_reported(tmp_path: Path, asset_file) -> None:
    path = tmp_path / "carded.onnx"
    shutil.copy(asset_file("faceplugin"), path)
    write_card_onnx(path, get_asset("faceplugin").card.replace(name="faceplugin-carded"))
    embedder = load_embedder(path)
    assert embedder.card.name == "faceplugin-carded"
    assert embedder.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_cardless_file_raises_model_card_error(tmp_path: Path, asset_file) -> None:
    path = tmp_path / "plain.onnx"
    shutil.copy(asset_file("faceplugin"), path)
    with pytest.raises(ModelCardError, match=r"carries no shrinkface model card; pass card=.*shrinkface export"):
        load_embedder(path)


@pytest.mark.parametrize(
    ("name", "changes", "message"),
    [
        ("faceplugin", {"embedding_size": 128}, "512"),
        ("faceplugin", {"layout": "NHWC"}, "looks NCHW"),
        ("expo_mobilefacenet", {"fixed_batch": 1}, "fixed at 2"),
        (
            "expo_mobilefacenet",
            {"input_dtype": "int8", "input_scale": 0.0078125, "input_zero_point": 0},
            "float32",
        ),
        ("sface", {"input_size": (112, 96)}, "NCHW"),
    ],
)
def test_card_that_does_not_fit_the_model_raises(name: str, changes: dict, message: str, asset_file) -> None:
    card = get_asset(name).card.replace(**changes)
    with pytest.raises(ModelCardError, match=message):
        load_embedder(asset_file(name), card=card)


def test_wrong_files_raise_model_error(tmp_path: Path, asset_file, lfw_image) -> None:
    jpeg = tmp_path / "face.onnx"
    shutil.copy(lfw_image("Abel_Pacheco", 1), jpeg)
    truncated = tmp_path / "cut.tflite"
    truncated.write_bytes(asset_file("expo_mobilefacenet").read_bytes()[:-10])  # tail cut: only LiteRT sees it
    card = get_asset("expo_mobilefacenet").card
    for path in (jpeg, truncated, tmp_path / "missing.tflite"):
        with pytest.raises(ModelError) as info:
            load_embedder(path, card=card)
        assert not isinstance(info.value, ModelCardError)
    with pytest.raises(AssetError, match="not a face embedder"):
        load_asset_embedder("yunet")


def test_format_comes_from_bytes_not_extension(tmp_path: Path, asset_file) -> None:
    disguised = tmp_path / "really_tflite.onnx"
    shutil.copy(asset_file("expo_mobilefacenet"), disguised)
    embedder = load_embedder(disguised, card=get_asset("expo_mobilefacenet").card)
    assert embedder.backend == "litert"
