"""Experiment: a per-channel PReLU kept int8 in the TFLite file, instead of a float ``PRELU`` island.

XNNPACK (LiteRT 2.3) has no int8 ``PRELU``; the exporter runs each one as ``DEQUANTIZE → PRELU (float32) →
QUANTIZE`` (``export/litert_prelu.py``). For slopes α ≤ 1 the identity

    PReLU_α(x) = x + max(0, (α − 1)·x)        (x ≥ 0: x;  x < 0: x + (1 − α)(−x) = α·x)

gives the same function as two int8 ops XNNPACK takes: ``t = relu(c·x)`` with ``c = α − 1`` per channel, then
``ADD(x, t)``. ``--op mul``: ``t`` by an int8 ``MUL`` with a fused RELU (``c`` per-tensor int8, scale max|c|/127);
``--op dwconv``: by a 1×1 ``DEPTHWISE_CONV_2D`` with fused RELU (``c`` per-channel int8, exact up to rounding).
``t``'s int8 range is bounded from x's own: 0 … max|c|·(−x_min). Islands with a slope > 1 stay as they are.

Result on this machine (docs/results/parity.md, "int8 PReLU chains"): both chains are *slower* than the float
islands, so the exporter does not use them; kept so that the measurement can be repeated.

    .venv/bin/python bench/prelu_int8_chain.py artifacts/X/student.int8.tflite OUT.tflite --op mul|dwconv
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from shrinkface.runtime.card_io import TFLITE_IDENTIFIER, _aligned_buffer_type, _schema


def _name(tensor: Any) -> str:
    return tensor.name.decode() if isinstance(tensor.name, bytes) else str(tensor.name or "")


class Rewriter:
    """Adds tensors, constant buffers and operators to an unpacked TFLite model (object API)."""

    def __init__(self, data: bytes) -> None:
        self.s = _schema()
        self.model = self.s.ModelT.InitFromPackedBuf(data, 0)
        self.graph = self.model.subgraphs[0]

    def builtin(self, op: Any) -> int:
        c = self.model.operatorCodes[op.opcodeIndex]
        return int(max(c.builtinCode, c.deprecatedBuiltinCode))

    def code(self, builtin: int, version: int) -> int:
        for i, c in enumerate(self.model.operatorCodes):
            if max(c.builtinCode, c.deprecatedBuiltinCode) == builtin:
                c.version = max(int(c.version), version)
                return i
        new = self.s.OperatorCodeT()
        new.builtinCode, new.deprecatedBuiltinCode, new.version = builtin, min(builtin, 127), version
        self.model.operatorCodes.append(new)
        return len(self.model.operatorCodes) - 1

    def tensor(
        self,
        shape: list[int],
        dtype: int,
        scale: list[float],
        zero: list[int],
        axis: int,
        name: str,
        values: np.ndarray | None = None,
    ) -> int:
        t = self.s.TensorT()
        t.shape, t.type, t.name, t.buffer = shape, dtype, name, 0
        q = self.s.QuantizationParametersT()
        q.scale, q.zeroPoint, q.quantizedDimension = scale, zero, axis
        t.quantization = q
        if values is not None:
            buffer = self.s.BufferT()
            buffer.data = np.frombuffer(values.tobytes(), np.uint8)
            self.model.buffers.append(buffer)
            t.buffer = len(self.model.buffers) - 1
        self.graph.tensors.append(t)
        return len(self.graph.tensors) - 1

    def operator(self, builtin: int, version: int, inputs: list[int], outputs: list[int], options: Any) -> Any:
        op = self.s.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = self.code(builtin, version), inputs, outputs
        op.builtinOptionsType, op.builtinOptions = options
        return op

    def pack(self) -> bytes:
        import flatbuffers

        aligned = _aligned_buffer_type(self.s)
        self.model.buffers = [aligned(b.data, b.offset, b.size) for b in self.model.buffers]
        builder = flatbuffers.Builder(1 << 22)
        builder.Finish(self.model.Pack(builder), file_identifier=TFLITE_IDENTIFIER)
        return bytes(builder.Output())


def int8_chains(data: bytes, op_kind: str) -> tuple[bytes, int]:
    """Every float PReLU island of ``data`` as ``t = relu(c·x)`` (``op_kind``: mul or dwconv) + ``ADD(x, t)``."""
    r = Rewriter(data)
    s, g, ops = r.s, r.graph, r.s.BuiltinOperator
    int8, int32, relu = s.TensorType.INT8, s.TensorType.INT32, s.ActivationFunctionType.RELU
    by_output = {int(op.outputs[0]): op for op in g.operators}
    readers: dict[int, list[Any]] = {}
    for op in g.operators:
        for i in op.inputs:
            readers.setdefault(int(i), []).append(op)
    replace: dict[int, list[Any]] = {}
    drop: set[int] = set()
    c_range = [np.inf, -np.inf]
    for op in g.operators:
        if r.builtin(op) != ops.PRELU or g.tensors[op.inputs[0]].type != s.TensorType.FLOAT32:
            continue
        deq, after = by_output.get(int(op.inputs[0])), readers.get(int(op.outputs[0]), [])
        if deq is None or r.builtin(deq) != ops.DEQUANTIZE or len(after) != 1 or r.builtin(after[0]) != ops.QUANTIZE:
            continue
        x_i, y_i = int(deq.inputs[0]), int(after[0].outputs[0])
        x, alpha = g.tensors[x_i], g.tensors[op.inputs[1]]
        slope = np.frombuffer(bytes(bytearray(r.model.buffers[alpha.buffer].data)), np.float32)
        c = slope.astype(np.float64) - 1.0
        x_min = float(x.quantization.scale[0]) * (-128 - int(x.quantization.zeroPoint[0]))
        if x.type != int8 or c.max() >= 0 or x_min >= 0 or len(readers[int(op.inputs[0])]) != 1:
            continue
        c_range = [min(c_range[0], float(c.min())), max(c_range[1], float(c.max()))]
        t = r.tensor(list(x.shape), int8, [float(np.abs(c).max() * -x_min / 255)], [-128], 0, _name(x) + "/neg")
        if op_kind == "mul":
            cs = float(np.abs(c).max()) / 127
            const = r.tensor(list(alpha.shape), int8, [cs], [0], 0, _name(x) + "/c", np.round(c / cs).astype(np.int8))
            options = s.MulOptionsT()
            options.fusedActivationFunction = relu
            first = r.operator(
                ops.MUL,
                2,
                [
                    x_i,
                    const,
                ],
                [t],
                (s.BuiltinOptions.MulOptions, options),
            )
        else:
            n, ws = c.size, [float(v) for v in np.abs(c) / 127]
            w = r.tensor([1, 1, 1, n], int8, ws, [0] * n, 3, _name(x) + "/w", np.full(n, -127, np.int8))
            sx = float(x.quantization.scale[0])
            b = r.tensor([n], int32, [sx * v for v in ws], [0] * n, 0, _name(x) + "/b", np.zeros(n, np.int32))
            options = s.DepthwiseConv2DOptionsT()
            options.padding, options.strideW, options.strideH, options.depthMultiplier = s.Padding.VALID, 1, 1, 1
            options.dilationWFactor = options.dilationHFactor = 1
            options.fusedActivationFunction = relu
            first = r.operator(
                ops.DEPTHWISE_CONV_2D, 3, [x_i, w, b], [t], (s.BuiltinOptions.DepthwiseConv2DOptions, options)
            )
        add = r.operator(ops.ADD, 2, [x_i, t], [y_i], (s.BuiltinOptions.AddOptions, s.AddOptionsT()))
        replace[id(after[0])] = [first, add]
        drop.update({id(deq), id(op)})
    g.operators = [new for op in g.operators if id(op) not in drop for new in replace.get(id(op), [op])]
    print(f"slopes − 1 of the replaced PReLUs: {c_range[0]:.3f} … {c_range[1]:.3f}")
    return r.pack(), len(replace)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--op", choices=("mul", "dwconv"), default="mul")
    args = parser.parse_args()
    data, n = int8_chains(args.file.read_bytes(), args.op)
    args.out.write_bytes(data)
    print(f"{n} PReLU islands → int8 {args.op} + ADD: {args.out}")


if __name__ == "__main__":
    main()
