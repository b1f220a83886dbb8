"""The model card inside real ONNX and TFLite files: round trips, replacement, corrupt cards, wrong files.

Independent checks: onnxruntime's own ``custom_metadata_map`` and the ``onnx`` package read what card_io
wrote; the TFLite interpreter gives bit-identical outputs before and after the card is inserted.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from ai_edge_litert import schema_py_generated as tfl
from ai_edge_litert.interpreter import Interpreter

from shrinkface.runtime import card_io
from shrinkface.runtime.card import CARD_KEY, ModelCard
from shrinkface.runtime.errors import ModelCardError, ModelError
from shrinkface.runtime.image import load_image

CARD = ModelCard(
    name="card-io-test",
    embedding_size=512,
    fixed_batch=1,
    threshold=0.31,
    licence="MIT",
    extra={"note": "round trip ✓"},
)


@pytest.fixture(scope="module")
def glint_crops(data_dir: Path) -> np.ndarray:
    """Two real faces already aligned to the 112×112 ArcFace template (Glint sample)."""
    folder = sorted((data_dir / "glint-celeb6" / "images").iterdir())[0]
    files = sorted(folder.glob("*.jpg"))[:2]
    return np.stack([load_image(f) for f in files])


def _ort_output(model: str | bytes, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def _tflite_output(model: bytes, x: np.ndarray) -> np.ndarray:
    interpreter = Interpreter(model_content=model, num_threads=1)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).copy()


def test_onnx_round_trip_in_place(tmp_path: Path, asset_file, glint_crops: np.ndarray) -> None:
    path = tmp_path / "fp.onnx"
    shutil.copy(asset_file("faceplugin"), path)
    assert card_io.read_card(path) is None
    x = ((glint_crops[:1].astype(np.float32) - 127.5) / 127.5).transpose(0, 3, 1, 2).copy()
    before = _ort_output(str(path), x)

    assert card_io.write_card_onnx(path, CARD) == path
    assert card_io.read_card(path) == CARD
    # onnxruntime reads the same entry on its own
    meta = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_modelmeta()
    assert meta.custom_metadata_map[CARD_KEY] == CARD.to_json()
    np.testing.assert_array_equal(_ort_output(str(path), x), before)


def test_onnx_card_is_replaced_not_duplicated(tmp_path: Path, asset_file) -> None:
    onnx = pytest.importorskip("onnx")
    data = asset_file("faceplugin").read_bytes()
    once = card_io.write_card_onnx(data, CARD)
    twice = card_io.write_card_onnx(once, CARD.replace(threshold=0.4))
    model = onnx.load_from_string(twice)
    entries = [p.value for p in model.metadata_props if p.key == CARD_KEY]
    assert len(entries) == 1
    assert ModelCard.from_json(entries[0]).threshold == 0.4
    onnx.checker.check_model(model)


def test_onnx_writer_accepts_a_model_proto(tmp_path: Path, asset_file) -> None:
    onnx = pytest.importorskip("onnx")
    model = onnx.load(str(asset_file("faceplugin")))
    assert card_io.write_card_onnx(model, CARD) is model
    path = tmp_path / "proto.onnx"
    onnx.save(model, str(path))
    assert card_io.read_card(path) == CARD


@pytest.mark.parametrize("value", ["{not json", '{"name": "x", "embedding_size": 8, "colour": "blue"}', "[1, 2]"])
def test_corrupt_onnx_card_raises(tmp_path: Path, asset_file, value: str) -> None:
    onnx = pytest.importorskip("onnx")
    model = onnx.load(str(asset_file("faceplugin")))
    entry = model.metadata_props.add()
    entry.key, entry.value = CARD_KEY, value
    path = tmp_path / "corrupt.onnx"
    onnx.save(model, str(path))
    with pytest.raises(ModelCardError, match="corrupt"):
        card_io.read_card(path)


def test_tflite_round_trip_keeps_outputs_identical(tmp_path: Path, asset_file, glint_crops: np.ndarray) -> None:
    original = asset_file("expo_mobilefacenet").read_bytes()
    assert card_io.card_from_bytes(original) is None
    card = ModelCard(name="expo", embedding_size=192, layout="NHWC", std=(128.0,) * 3, fixed_batch=2)
    written = card_io.write_card_tflite(original, card)
    path = tmp_path / "carded.tflite"
    path.write_bytes(written)
    assert card_io.read_card(path) == card

    x = (glint_crops.astype(np.float32) - 127.5) / 128.0
    np.testing.assert_array_equal(_tflite_output(written, x), _tflite_output(original, x))

    # a second card replaces the first: still one metadata entry, one extra buffer
    again = card_io.write_card_tflite(written, card.replace(threshold=0.5))
    model = tfl.Model.GetRootAs(again, 0)
    names = [model.Metadata(i).Name() for i in range(model.MetadataLength())]
    assert names == [CARD_KEY.encode()]
    assert model.BuffersLength() == tfl.Model.GetRootAs(original, 0).BuffersLength() + 1
    assert card_io.card_from_bytes(again).threshold == 0.5
    np.testing.assert_array_equal(_tflite_output(again, x), _tflite_output(original, x))


def test_corrupt_tflite_card_raises(asset_file) -> None:
    data = card_io.write_metadata_tflite(asset_file("expo_mobilefacenet").read_bytes(), CARD_KEY, b"\xff\x00oops")
    with pytest.raises(ModelCardError, match="corrupt"):
        card_io.card_from_bytes(data)


def test_wrong_files_raise_model_error(tmp_path: Path, asset_file, lfw_image) -> None:
    jpeg = tmp_path / "photo.onnx"
    shutil.copy(lfw_image("Abel_Pacheco", 1), jpeg)
    half_tflite = tmp_path / "half.tflite"
    half_tflite.write_bytes(asset_file("expo_mobilefacenet").read_bytes()[:2_000_000])
    half_onnx = tmp_path / "half.onnx"
    half_onnx.write_bytes(asset_file("faceplugin").read_bytes()[:1_000_000])
    empty = tmp_path / "empty.tflite"
    empty.write_bytes(b"")
    for path in (jpeg, half_tflite, half_onnx, empty, tmp_path / "missing.onnx"):
        with pytest.raises(ModelError) as info:
            card_io.read_card(path)
        assert not isinstance(info.value, ModelCardError), path
    with pytest.raises(ModelError, match="TFLite"):
        card_io.write_card_tflite(asset_file("faceplugin").read_bytes(), CARD)


def test_format_is_told_by_bytes_not_name(tmp_path: Path, asset_file) -> None:
    assert card_io.model_format(asset_file("expo_mobilefacenet").read_bytes()) == "tflite"
    assert card_io.model_format(asset_file("sface").read_bytes()) == "onnx"
    assert card_io.model_format(asset_file("yunet").read_bytes()) == "onnx"


def test_strip_initializer_inputs_fixes_sface(asset_file) -> None:
    data = asset_file("sface").read_bytes()
    with pytest.raises(ValueError, match="missing from input feed"):  # the bug being fixed
        _ort_output(data, np.zeros((1, 3, 112, 112), np.float32))
    fixed, dropped = card_io.strip_initializer_inputs(data)
    assert "conv_1_conv2d_weight" in dropped and "data" not in dropped
    session = ort.InferenceSession(fixed, providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["data"]
    assert session.run(None, {"data": np.zeros((1, 3, 112, 112), np.float32)})[0].shape == (1, 128)
    untouched = asset_file("faceplugin").read_bytes()
    assert card_io.strip_initializer_inputs(untouched) == (untouched, [])
