"""PReLU in TFLite files: one native ``PRELU`` op instead of litert-torch's ``RELU, MUL, MUL, SUB`` chain.

litert-torch 0.10 decomposes ``aten._prelu_kernel`` into ``relu(x) - w·relu(-x)`` (its GPU delegate rejects
the ``GREATER + SELECT`` of torch's own decomposition); XNNPACK then runs four elementwise passes per PReLU,
and in an int8 file the chain stays float between DEQUANTIZE and QUANTIZE. Lowered instead to StableHLO as
``max(x, 0) + (-w)·max(-x, 0)`` with the slope reshaped to rank(x) − 1 (``native_prelu``), the TFLite
converter's ``MatchPRelu`` pattern fuses it into one ``PRELU`` op. Float: XNNPACK runs it (shipped
MobileFaceNet 5.4 → 3.8 ms, one thread). int8: the converter makes it an int8 ``PRELU``, which LiteRT 2.3's
XNNPACK does not take (34 delegate partitions, 18.5 ms), so ``float_prelu_islands`` rewrites each one as
``DEQUANTIZE → PRELU (float32, the model's own slopes) → QUANTIZE``: one partition, 4.8 → 3.1 ms.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch


def _lower_prelu(lctx: Any, x: Any, w: Any) -> Any:
    """StableHLO for ``_prelu_kernel(x, w)``: ``max(x, 0) + (-w)·max(-x, 0)`` (the form ``MatchPRelu`` fuses)."""
    from litert_converter.mlir import ir
    from litert_converter.mlir.dialects import stablehlo
    from litert_torch.backend.lowerings import utils

    ty = x.type
    rank = len(ty.shape)
    zero = stablehlo.broadcast_in_dim(ty, utils.splat(0.0, ty.element_type), ir.DenseI64ArrayAttr.get([]))
    neg_w = stablehlo.negate(w)
    shape = list(w.type.shape)
    while len(shape) > rank - 1 and shape and shape[0] == 1:
        shape = shape[1:]
    channel_last = len(shape) <= rank - 1 and (all(d == 1 for d in shape) or shape[-1] == ty.shape[-1])
    if channel_last:  # TFLite PRELU wants the slope without the batch dimension: [1, 1, C]
        slope = [1] * (rank - 1 - len(shape)) + shape
        neg_w = stablehlo.reshape(ir.RankedTensorType.get(slope, ty.element_type), neg_w)
        neg_w = stablehlo.broadcast_in_dim(ty, neg_w, ir.DenseI64ArrayAttr.get(list(range(1, rank))))
    else:  # any other broadcast: numpy-style, still exact (no PRELU fusion)
        _, neg_w = utils.broadcast_args_if_needed(x, neg_w)
    positive = stablehlo.maximum(x, zero)
    negative = stablehlo.maximum(stablehlo.negate(x), zero)
    return stablehlo.add(positive, stablehlo.multiply(negative, neg_w))


def _get(table: Any, op: Any) -> Any:
    """``table[op]`` or None (torch's ``CustomDecompTable.get`` returns None for keys it holds lazily)."""
    return table[op] if op in table else None  # noqa: SIM401 (.get misses lazily held keys)


@contextmanager
def native_prelu() -> Iterator[None]:
    """Within the block, litert-torch lowers PReLU with ``_lower_prelu``; its own decomposition comes back after."""
    import litert_torch  # noqa: F401  (registers litert-torch's own decompositions before they are saved)
    from litert_torch import fx_infra
    from litert_torch.backend.lowerings import registry

    ops = [torch.ops.aten._prelu_kernel.default]
    decomp, lowerings = fx_infra.decomp, registry.global_registry.registered_ops
    saved = [(o, _get(decomp._pre_convert_decomp, o), _get(decomp._pre_lower_decomp, o), lowerings.get(o)) for o in ops]
    for op in ops:
        decomp.remove_pre_lower_decomp(op)
        registry.global_registry.register(op, _lower_prelu)
    try:
        yield
    finally:
        for op, convert, lower, lowering in saved:
            if convert is not None:
                decomp._pre_convert_decomp[op] = convert
            if lower is not None:
                decomp._pre_lower_decomp[op] = lower
            if lowering is None:
                lowerings.pop(op, None)
            else:
                registry.global_registry.register(op, lowering)


def prelu_slopes(module: torch.nn.Module) -> list[np.ndarray]:
    """The float PReLU slopes of ``module`` in execution order (an exported graph's ``aten.prelu`` nodes, or the
    ``nn.PReLU`` modules of a plain sequential model)."""
    if isinstance(module, torch.fx.GraphModule):
        out = []
        for node in module.graph.nodes:
            if node.op == "call_function" and node.target == torch.ops.aten.prelu.default:
                weight = node.args[1]
                if not (isinstance(weight, torch.fx.Node) and weight.op == "get_attr"):
                    return []
                value = module
                for part in str(weight.target).split("."):
                    value = getattr(value, part)
                out.append(torch.as_tensor(value).detach().float().reshape(-1).numpy())
        return out
    return [m.weight.detach().float().reshape(-1).numpy() for m in module.modules() if isinstance(m, torch.nn.PReLU)]


def float_prelu_islands(data: bytes, slopes: list[np.ndarray] | None = None) -> tuple[bytes, int]:
    """Replace every int8 ``PRELU`` of TFLite ``data`` by ``DEQUANTIZE → PRELU (float32) → QUANTIZE``.

    XNNPACK (LiteRT 2.3) runs float PReLU but not int8 PReLU, so the int8 op splits the graph into one delegate
    partition per PReLU; the float island keeps one partition and costs one op where litert-torch's default
    ``RELU, MUL, MUL, SUB`` chain costs four (shipped student: 3.1 ms instead of 4.8). The slope is ``slopes[k]``
    for the k-th PReLU when their count and sizes match the file's, else the file's int8 slope dequantised.
    Returns the new bytes and the number of PReLUs replaced.
    """
    import flatbuffers

    from shrinkface.runtime.card_io import TFLITE_IDENTIFIER, _aligned_buffer_type, _schema

    schema = _schema()
    model = schema.ModelT.InitFromPackedBuf(data, 0)
    codes = model.operatorCodes

    def code(builtin: int) -> int:
        for i, c in enumerate(codes):
            if max(c.builtinCode, c.deprecatedBuiltinCode) == builtin:
                return i
        new = schema.OperatorCodeT()
        new.builtinCode, new.deprecatedBuiltinCode, new.version = builtin, min(builtin, 127), 1
        codes.append(new)
        return len(codes) - 1

    ops = schema.BuiltinOperator
    prelu = next((i for i, c in enumerate(codes) if max(c.builtinCode, c.deprecatedBuiltinCode) == ops.PRELU), None)
    if prelu is None:
        return data, 0
    dequantize, quantize = code(ops.DEQUANTIZE), code(ops.QUANTIZE)
    replaced = 0
    for graph in model.subgraphs:
        found = [op for op in graph.operators if op.opcodeIndex == prelu]
        int8 = [op for op in found if graph.tensors[op.inputs[0]].type == schema.TensorType.INT8]
        exact = slopes is not None and len(slopes) == len(int8)
        new_ops = []
        for op in graph.operators:
            if op not in int8:
                new_ops.append(op)
                continue
            x, alpha, y = (graph.tensors[i] for i in (op.inputs[0], op.inputs[1], op.outputs[0]))
            values = _dequantize(schema, model.buffers[alpha.buffer], alpha)
            k = int8.index(op)
            if exact and slopes is not None and slopes[k].size == values.size:
                values = slopes[k].reshape(values.shape).astype(np.float32)
            buffer = schema.BufferT()
            buffer.data = np.frombuffer(values.tobytes(), np.uint8)
            model.buffers.append(buffer)
            xf = _float_tensor(schema, graph, x, "/float")
            af = _float_tensor(schema, graph, alpha, "/float", len(model.buffers) - 1)
            yf = _float_tensor(schema, graph, y, "/float")
            new_ops += [
                _operator(schema, dequantize, [op.inputs[0]], [xf]),
                _operator(schema, prelu, [xf, af], [yf]),
                _operator(schema, quantize, [yf], [op.outputs[0]]),
            ]
            replaced += 1
        graph.operators = new_ops
    aligned = _aligned_buffer_type(schema)
    model.buffers = [aligned(b.data, b.offset, b.size) for b in model.buffers]
    builder = flatbuffers.Builder(len(data) + (1 << 16))
    builder.Finish(model.Pack(builder), file_identifier=TFLITE_IDENTIFIER)
    return bytes(builder.Output()), replaced


def _dequantize(schema: Any, buffer: Any, tensor: Any) -> np.ndarray:
    q = np.frombuffer(bytes(bytearray(buffer.data)), np.int8).astype(np.float32).reshape(tensor.shape)
    scale = np.asarray(tensor.quantization.scale, np.float32)
    zero = np.asarray(tensor.quantization.zeroPoint, np.float32)
    if scale.size > 1:
        shape = [1] * q.ndim
        shape[tensor.quantization.quantizedDimension] = -1
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    return ((q - zero) * scale).astype(np.float32)


def _float_tensor(schema: Any, graph: Any, like: Any, suffix: str, buffer: int = 0) -> int:
    tensor = schema.TensorT()
    tensor.shape, tensor.shapeSignature = list(like.shape), like.shapeSignature
    tensor.type, tensor.buffer = schema.TensorType.FLOAT32, buffer
    tensor.name = (like.name.decode() if isinstance(like.name, bytes) else str(like.name or "")) + suffix
    graph.tensors.append(tensor)
    return len(graph.tensors) - 1


def _operator(schema: Any, opcode: int, inputs: list[int], outputs: list[int]) -> Any:
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = opcode, inputs, outputs
    return op
