"""The Android core module (android_demo/core) under `make test`.

1. The golden files it is tested against still describe the Python runtime: re-running ``align_face`` and
   ``ModelCard.preprocess`` on their stored source bytes and landmarks gives the stored matrix, crop and
   tensors (if align.py or card.py change, regenerate with tests/golden/make_core_golden.py).
2. Its JVM unit tests (javac 17 + JUnit 4, `make test-android-core`) pass: the Java alignment, preprocessing,
   card parsing, TFLite metadata reader and matcher reproduce those files.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from shrinkface.runtime.align import align_face, similarity_transform
from shrinkface.runtime.card import ModelCard

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden"
SCRIPT = ROOT / "android_demo" / "core" / "run-jvm-tests.sh"
CASES = sorted(p for p in GOLDEN.glob("core_*.json") if p.name != "core_tflite_metadata.json")


def _decode(array: dict) -> np.ndarray:
    raw = gzip.decompress(base64.b64decode(array["data"]))
    return np.frombuffer(raw, dtype=np.dtype(array["dtype"]).newbyteorder("<")).reshape(array["shape"])


def test_core_golden_files_exist_and_are_small() -> None:
    assert len(CASES) >= 3
    total = sum(p.stat().st_size for p in GOLDEN.glob("core_*.json"))
    assert total < 1_000_000, f"core golden files take {total} bytes"


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_core_golden_still_matches_python_runtime(path: Path) -> None:
    record = json.loads(path.read_text())
    image = np.zeros((record["image_height"], record["image_width"], 3), np.uint8)
    region = record["source_region"]
    x, y, w, h = region["x"], region["y"], region["width"], region["height"]
    image[y : y + h, x : x + w] = _decode(record["source_rgb"])
    landmarks = np.asarray(record["landmarks"], np.float64)
    template = np.asarray(record["template"], np.float64)
    np.testing.assert_array_equal(similarity_transform(landmarks, template), np.asarray(record["matrix"]))
    crop = align_face(image, landmarks, template, tuple(record["output_size"]))
    np.testing.assert_array_equal(crop, _decode(record["crop_rgb"]))
    for key, item in record["cards"].items():
        tensor = ModelCard.from_json(item["card_json"]).preprocess(crop)[0]
        expected = _decode(item["tensor"])
        assert tensor.dtype == expected.dtype, key
        np.testing.assert_array_equal(tensor, expected, err_msg=key)


def test_android_core_jvm_unit_tests_pass() -> None:
    if shutil.which("javac") is None or not Path("/usr/share/java/junit4.jar").is_file():
        pytest.fail("javac 17 and junit4 are needed: run `make setup-android-core`")
    proc = subprocess.run([str(SCRIPT)], capture_output=True, text=True, timeout=600, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"JVM tests failed (rc {proc.returncode}):\n{output[-6000:]}"
    passed = re.search(r"^OK \((\d+) tests\)", output, re.MULTILINE)
    assert passed and int(passed.group(1)) >= 25, output[-3000:]
    crops = re.search(r"all crops: (\d+) of (\d+) values differ, (\d+) by more than 1", output)
    assert crops, "the golden crop test did not run"
    assert int(crops.group(3)) * 1000 <= int(crops.group(2)), crops.group(0)
    decisions = re.search(r"(\d+) unlock decisions equal Python's", output)
    assert decisions and int(decisions.group(1)) >= 100, "the exported-model decision test did not run"


def test_embed_decision_golden_is_fresh() -> None:
    """unlock_decisions.json (Python's unlock decisions the JVM test must reach) matches the embed_*.json files."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_decision_golden", GOLDEN / "make_decision_golden.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    stored = json.loads((GOLDEN / "unlock_decisions.json").read_text())
    assert module.build(GOLDEN) == stored, "stale: run .venv/bin/python tests/golden/make_decision_golden.py"
    for model in stored["models"]:  # every pair is seen accepted and rejected
        columns = list(zip(*model["accepted"], strict=True))
        assert all(any(c) and not all(c) for c in columns), model["file"]
