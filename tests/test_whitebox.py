"""White-box forms of the black-box teachers, checked against independent computations: folding SFace's int8
weight blocks into float weights (train/onnx_fold.py) against ONNX's reference evaluator and ONNX Runtime, and
expo's TFLite graph run in torch (train/tflite_torch.py) against the LiteRT interpreter, on real aligned faces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

from shrinkface.runtime.image import load_image  # noqa: E402
from shrinkface.train.onnx_fold import dequantize, fold_weight_quantization  # noqa: E402


@pytest.mark.parametrize(
    ("shape", "axis", "block", "zero_point"),
    [((8, 3, 3, 3), 0, 0, True), ((128, 70), 1, 32, False), ((128, 70), 0, 64, True), ((5, 4), 1, 0, False)],
)
def test_dequantize_matches_onnx_reference(shape, axis, block, zero_point) -> None:
    """Per-axis and blockwise (a last block shorter than the rest) DequantizeLinear, opset 21."""
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, size=shape).astype(np.int8)
    sshape = list(shape)
    sshape[axis] = -(-shape[axis] // block) if block else shape[axis]
    if not block:
        sshape = [shape[axis]]
    scale = rng.uniform(0.001, 0.1, size=sshape).astype(np.float32)
    zp = rng.integers(-5, 5, size=sshape).astype(np.int8) if zero_point else None
    attrs = {"axis": axis, **({"block_size": block} if block else {})}
    names = ["x", "s"] + (["z"] if zp is not None else [])
    node = helper.make_node("DequantizeLinear", names, ["y"], **attrs)
    inits = [numpy_helper.from_array(a, n) for a, n in zip([x, scale, zp], names, strict=False)]
    graph = helper.make_graph([node], "g", [], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    want = ReferenceEvaluator(model).run(None, {})[0]
    np.testing.assert_array_equal(dequantize(x, scale, zp, axis, block), want)


def test_fold_leaves_a_float_model_unchanged(asset_file) -> None:
    """faceplugin (float) has nothing to fold: same nodes, 0 folded."""
    model = onnx.load(str(asset_file("faceplugin")))
    before = [n.op_type for n in model.graph.node]
    model, count = fold_weight_quantization(model)
    assert count == 0 and [n.op_type for n in model.graph.node] == before


@pytest.fixture(scope="module")
def lfw_crops(lfw_image, detector) -> np.ndarray:
    """Five real LFW faces (an odd count: expo's file takes pairs), detected and aligned by the runtime."""
    from shrinkface.runtime.align import align_face

    crops = []
    for name, number in [("Aaron_Peirsol", 1), ("Aaron_Peirsol", 2), ("Abel_Pacheco", 1), ("Akhmed_Zakayev", 1),
                         ("Aaron_Sorkin", 1)]:  # fmt: skip
        image = load_image(Path(lfw_image(name, number)))  # RGB
        crops.append(align_face(image, detector.detect_one(image, "central").landmarks))
    return np.ascontiguousarray(np.stack(crops))


def test_whitebox_sface_matches_onnx_runtime_on_real_faces(asset_file, lfw_crops) -> None:
    """The folded SFace as a torch teacher gives ONNX Runtime's int8bq embeddings on real aligned LFW faces."""
    from shrinkface.runtime.embed import load_asset_embedder
    from shrinkface.train.teachers import load_whitebox

    model, count = fold_weight_quantization(onnx.load(str(asset_file("sface"))))
    kinds = {n.op_type for n in model.graph.node}
    assert count > 0 and "DequantizeLinear" not in kinds and [i.name for i in model.graph.input] == ["data"]
    teacher, sha = load_whitebox("sface")
    with torch.no_grad():
        mine = teacher(torch.from_numpy(lfw_crops))[0].numpy()
    ort = load_asset_embedder("sface").embed(lfw_crops)
    assert sha == load_asset_embedder("sface").sha256
    assert mine.shape == ort.shape == (5, 128)
    np.testing.assert_allclose(mine, ort, atol=1e-5)


def test_whitebox_expo_matches_litert_on_real_faces(lfw_crops) -> None:
    """expo's TFLite graph in torch (any batch, NCHW, on its card's preprocessing) gives the LiteRT interpreter's
    embeddings, and exposes stride-8 features like the onnx2torch teachers."""
    from shrinkface.runtime.embed import load_asset_embedder
    from shrinkface.train.teachers import load_whitebox

    teacher, _ = load_whitebox("expo_mobilefacenet", ("s8",))
    assert teacher.card.layout == "NCHW" and teacher.feature_channels()["s8"] > 0
    with torch.no_grad():
        mine, feats = teacher(torch.from_numpy(lfw_crops))
    litert = load_asset_embedder("expo_mobilefacenet").embed(lfw_crops)
    assert mine.shape == litert.shape == (5, 192) and feats["s8"].shape[-1] == 14
    np.testing.assert_allclose(mine.numpy(), litert, atol=1e-5)


def test_tflite_graph_refuses_a_file_that_is_not_a_tflite_model(tmp_path, asset_file) -> None:
    """Bytes that are no TFLite flatbuffer are refused (the exported int8 and float files: tests/test_export.py)."""
    from shrinkface.runtime.errors import ModelError
    from shrinkface.train.tflite_torch import TFLiteGraph

    bad = tmp_path / "x.tflite"
    bad.write_bytes(Path(asset_file("faceplugin")).read_bytes()[:4096])
    with pytest.raises(ModelError, match="not a TFLite model"):
        TFLiteGraph(bad)


def test_nhwc_constants_broadcast_in_nchw_and_keep_their_layout_after_a_reshape() -> None:
    """A per-channel constant of a rank-4 op becomes (1, C, 1, 1); after a RESHAPE to (N, C) it stays (C,)."""
    from shrinkface.train.tflite_torch import nchw_constant

    c = np.array([1.0, 2.0, 3.0], np.float32)
    x = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 2, 2, 3)  # NHWC
    want = (x * torch.from_numpy(c)).permute(0, 3, 1, 2)  # TFLite's NHWC product, viewed NCHW
    torch.testing.assert_close(x.permute(0, 3, 1, 2) * nchw_constant(c), want)
    torch.testing.assert_close(nchw_constant(c.reshape(1, 1, 1, 3)), nchw_constant(c))
    assert nchw_constant(c, rank=2).shape == (3,)
