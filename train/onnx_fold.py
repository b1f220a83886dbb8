"""Fold weight-only quantisation of an ONNX model into float initializers, so onnx2torch can convert it.

SFace's ``int8bq`` file (teacher A) keeps every Conv/Gemm weight as int8 blocks with one scale per 64 values
(``DequantizeLinear`` with ``block_size``, opset 21) followed by a ``Reshape``; its activations are float. ONNX
Runtime dequantises those constants at every call; doing it once here gives the same float weights, so the folded
graph computes the same function (checked against ONNX Runtime on real crops in tests/test_whitebox.py) and
becomes a white-box teacher that runs on a GPU, on the very view the student sees.

Only constant subgraphs are folded: ``DequantizeLinear`` and ``Reshape`` whose inputs are all initializers (or
outputs of ``Constant`` nodes or of nodes folded before). Initializers that the graph also lists as inputs (an
old exporter habit; ONNX Runtime then asks for them), and inputs no node reads (SFace still lists the float
weights its quantiser replaced), are dropped from the inputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shrinkface.runtime.errors import ModelError

FOLDABLE = ("DequantizeLinear", "Reshape")
#: The newest default-domain opset onnx2torch 1.5 converts; a folded graph above it is down-converted by ONNX's
#: own version converter (SFace: opset 21 → 17, only float Conv/BN/PRelu/Gemm left, which it adapts).
MAX_OPSET = 17


def dequantize(x: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None, axis: int, block: int) -> np.ndarray:
    """ONNX DequantizeLinear: y = (x − zero_point) · scale, per tensor, per axis, or per block along ``axis``."""
    xf = x.astype(np.float32)
    zp = np.zeros_like(scale, dtype=np.float32) if zero_point is None else zero_point.astype(np.float32)
    s = scale.astype(np.float32)
    if s.ndim == 0:
        return (xf - zp) * s
    axis = axis % x.ndim
    if block > 0:  # scale has x's shape with ceil(x.shape[axis] / block) along axis
        s = np.repeat(s, block, axis=axis).take(range(x.shape[axis]), axis=axis)
        zp = np.repeat(zp, block, axis=axis).take(range(x.shape[axis]), axis=axis)
        return (xf - zp) * s
    shape = [1] * x.ndim
    shape[axis] = -1
    return (xf - zp.reshape(shape)) * s.reshape(shape)


def _reshape(data: np.ndarray, shape: np.ndarray) -> np.ndarray:
    """ONNX Reshape (allowzero = 0): a 0 copies the input's dimension, −1 is inferred."""
    dims = [int(data.shape[i]) if int(d) == 0 else int(d) for i, d in enumerate(shape)]
    return data.reshape(dims)


def fold_weight_quantization(model: Any) -> tuple[Any, int]:
    """(the model with constant DequantizeLinear/Reshape nodes folded into float initializers, nodes folded).

    The model is changed in place (and down-converted to ``MAX_OPSET`` if newer); a model without such nodes
    comes back unchanged (0)."""
    from onnx import helper, numpy_helper

    graph = model.graph
    const: dict[str, np.ndarray] = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            const[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    folded: dict[str, np.ndarray] = {}
    keep = []
    for node in graph.node:
        inputs = [n for n in node.input if n]
        if node.op_type not in FOLDABLE or not all(n in const for n in inputs):
            keep.append(node)
            continue
        args = [const[n] for n in inputs]
        if node.op_type == "DequantizeLinear":
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            zero_point = args[2] if len(args) > 2 else None
            out = dequantize(args[0], args[1], zero_point, int(attrs.get("axis", 1)), int(attrs.get("block_size", 0)))
        else:
            out = _reshape(args[0], args[1])
        const[node.output[0]] = folded[node.output[0]] = out
    if not folded:
        return model, 0
    used = {n for node in keep for n in node.input} | {o.name for o in graph.output}
    if not any(name in used for name in folded):
        raise ModelError("folding the quantised weights left none of them used: unexpected graph")
    graph.ClearField("node")
    graph.node.extend(keep)
    olds = [i for i in graph.initializer if i.name in used]
    graph.ClearField("initializer")
    graph.initializer.extend(olds)
    graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in folded.items() if k in used)
    names = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in names and i.name in used]
    graph.ClearField("input")
    graph.input.extend(inputs)
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=MAX_OPSET)
    if opset > MAX_OPSET:
        from onnx import version_converter

        model = version_converter.convert_version(model, MAX_OPSET)
    return model, len(folded)
