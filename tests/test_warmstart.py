"""The warm start reproduces teacher C (faceplugin ONNX, run by onnxruntime) exactly in our student class."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from shrinkface.runtime.embed import load_asset_embedder  # noqa: E402
from shrinkface.runtime.errors import ModelError  # noqa: E402
from shrinkface.train.students import build_student  # noqa: E402
from shrinkface.train.warmstart import warm_start_from_onnx  # noqa: E402


def _crops(data_dir: Path, count: int = 6) -> np.ndarray:
    files = sorted((data_dir / "glint-celeb6" / "images").glob("*/*.jpg"))[::400][:count]
    return np.stack([cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB) for f in files])


def test_warm_start_matches_onnxruntime(data_dir: Path, asset_file) -> None:
    torch.set_num_threads(1)
    crops = _crops(data_dir)
    teacher = load_asset_embedder("faceplugin")
    student = warm_start_from_onnx(build_student("mobilefacenet", embedding_size=512), asset_file("faceplugin"))
    with torch.no_grad():
        out = student.eval()(torch.from_numpy(teacher.card.preprocess(crops))).numpy()
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    cosine = (out * teacher.embed(crops)).sum(axis=1)
    assert cosine.min() > 0.9999, cosine


def test_warm_start_refuses_wrong_student(asset_file) -> None:
    with pytest.raises(ModelError, match=r"weight \(64, 3, 3, 3\) does not fit \(32, 3, 3, 3\)"):
        warm_start_from_onnx(build_student("mobilefacenet", embedding_size=512, width=0.5), asset_file("faceplugin"))
    with pytest.raises(ModelError, match="embedding_size=512"):
        warm_start_from_onnx(build_student("mobilenetv2", embedding_size=512), asset_file("faceplugin"))


def test_relu_twin_takes_the_convolutions_and_drops_the_slopes(asset_file) -> None:
    prelu = warm_start_from_onnx(build_student("mobilefacenet", embedding_size=512), asset_file("faceplugin"))
    relu = warm_start_from_onnx(
        build_student("mobilefacenet", embedding_size=512, activation="relu"), asset_file("faceplugin")
    )
    assert not any(isinstance(m, torch.nn.PReLU) for m in relu.modules())
    weights = {k: v for k, v in prelu.state_dict().items() if not k.endswith("num_batches_tracked")}
    relu_state = relu.state_dict()
    shared = [k for k in weights if k in relu_state]
    assert len(shared) == len(relu_state) - sum(k.endswith("num_batches_tracked") for k in relu_state)
    assert all(torch.equal(weights[k], relu_state[k]) for k in shared)
