"""Folding weight-only int8 blocks into float weights (train/onnx_fold.py), checked against independent
computations: ONNX's reference evaluator for DequantizeLinear, and ONNX Runtime running SFace's int8bq file on
real aligned faces for the white-box SFace teacher."""

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


def test_whitebox_sface_matches_onnx_runtime_on_real_faces(asset_file, lfw_image, detector) -> None:
    """The folded SFace as a torch teacher gives ONNX Runtime's int8bq embeddings on real aligned LFW faces."""
    from shrinkface.runtime.align import align_face
    from shrinkface.runtime.embed import load_asset_embedder
    from shrinkface.train.teachers import load_whitebox

    model, count = fold_weight_quantization(onnx.load(str(asset_file("sface"))))
    kinds = {n.op_type for n in model.graph.node}
    assert count > 0 and "DequantizeLinear" not in kinds and [i.name for i in model.graph.input] == ["data"]
    crops = []
    for name, number in [("Aaron_Peirsol", 1), ("Aaron_Peirsol", 2), ("Abel_Pacheco", 1), ("Akhmed_Zakayev", 1)]:
        image = load_image(Path(lfw_image(name, number)))  # RGB
        crops.append(align_face(image, detector.detect_one(image, "central").landmarks))
    crops_rgb = np.ascontiguousarray(np.stack(crops))
    teacher, sha = load_whitebox("sface")
    with torch.no_grad():
        mine = teacher(torch.from_numpy(crops_rgb))[0].numpy()
    ort = load_asset_embedder("sface").embed(crops_rgb)
    assert sha == load_asset_embedder("sface").sha256
    assert mine.shape == ort.shape == (4, 128)
    np.testing.assert_allclose(mine, ort, atol=1e-5)
