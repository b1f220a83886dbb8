"""A float TFLite model's graph as a torch module, so a TFLite teacher (expo's MobileFaceNet, teacher B) can be a
white box: run on a GPU, on the very augmented view the student sees.

The flatbuffer is read with LiteRT's own generated schema (``ai_edge_litert.schema_py_generated``); each operator
becomes a small ``nn.Module`` run in the file's order (so forward hooks and ``WhiteBoxTeacher.node_shapes`` see
them). Tensors are NCHW inside: the module takes NCHW input, TFLite's OHWI / 1HWC filters and NHWC-shaped constants
are permuted once at load time, and RESHAPE goes through NHWC so it keeps TFLite's element order. The batch size is
free (expo's file fixes it at 2). Only float32 graphs and the operators below are converted; anything else is a
``ModelError`` naming the operator, never a silent approximation. Checked against the LiteRT interpreter on real
faces in tests/test_whitebox.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from shrinkface.runtime.errors import ModelError

ACTIVATIONS = {0: None, 1: F.relu, 3: F.relu6}  # ActivationFunctionType NONE, RELU, RELU6
SUPPORTED = ("CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "SUB", "MUL", "RELU", "RELU6", "ABS", "PRELU", "RESHAPE")


def nchw_constant(value: np.ndarray, rank: int = 4) -> torch.Tensor:
    """An NHWC-broadcastable constant ((C,), (1, 1, 1, C), scalar …) in NCHW broadcast form, for an operation on
    rank-4 tensors; for other ranks (after a RESHAPE) TFLite's layout is already torch's and it stays as it is."""
    v = np.asarray(value, dtype=np.float32)
    if v.ndim == 0 or rank != 4:
        return torch.from_numpy(v.copy())
    v = v.reshape((1,) * (4 - v.ndim) + v.shape)
    return torch.from_numpy(v.transpose(0, 3, 1, 2).copy())


def same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow's SAME padding (before, after) along one axis: the extra pixel goes after."""
    effective = (kernel - 1) * dilation + 1
    total = max((-(-size // stride) - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


class Op(nn.Module):
    """One operator: reads ``inputs`` (tensor indices) from the environment, writes ``output``."""

    def __init__(self, kind: str, inputs: list[int], output: int) -> None:
        super().__init__()
        self.kind, self.inputs, self.output = kind, inputs, output

    def run(self, *xs: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, env: dict[int, torch.Tensor]) -> torch.Tensor:
        return self.run(*[env[i] for i in self.inputs])


class Conv(Op):
    """CONV_2D / DEPTHWISE_CONV_2D with TensorFlow padding and a fused activation."""

    def __init__(self, kind: str, x: int, out: int, weight: np.ndarray, bias: np.ndarray | None, opts: Any,
                 in_hw: tuple[int, int]) -> None:  # fmt: skip
        super().__init__(kind, [x], out)
        if kind == "DEPTHWISE_CONV_2D":  # 1 × H × W × (C·m) → (C·m) × 1 × H × W
            w = weight.transpose(3, 0, 1, 2)
            groups = w.shape[0] // max(int(opts.depthMultiplier), 1)
        else:  # O × H × W × I → O × I × H × W
            w, groups = weight.transpose(0, 3, 1, 2), 1
        self.conv = nn.Conv2d(w.shape[1] * groups, w.shape[0], tuple(w.shape[2:]), (opts.strideH, opts.strideW),
                              dilation=(opts.dilationHFactor, opts.dilationWFactor), groups=groups,
                              bias=bias is not None)  # fmt: skip
        with torch.no_grad():
            self.conv.weight.copy_(torch.from_numpy(np.array(w, dtype=np.float32)))
            if bias is not None:
                self.conv.bias.copy_(torch.from_numpy(bias.astype(np.float32)))
        if opts.padding == 0:  # SAME
            ph = same_padding(in_hw[0], w.shape[2], opts.strideH, opts.dilationHFactor)
            pw = same_padding(in_hw[1], w.shape[3], opts.strideW, opts.dilationWFactor)
            self.pad = (pw[0], pw[1], ph[0], ph[1])
        else:
            self.pad = (0, 0, 0, 0)
        self.act = _activation(opts.fusedActivationFunction, kind)

    def run(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(F.pad(x, self.pad) if any(self.pad) else x)
        return self.act(y) if self.act else y


class Elementwise(Op):
    """ADD / SUB / MUL (a constant operand is stored in NCHW broadcast form), RELU, RELU6, ABS, PRELU."""

    FUNCS: ClassVar[dict[str, Any]] = {"ADD": torch.add, "SUB": torch.sub, "MUL": torch.mul}

    def __init__(
        self, kind: str, inputs: list[int], out: int, consts: dict[int, np.ndarray], act: int, rank: int = 4
    ) -> None:
        super().__init__(kind, [i for i in inputs if i not in consts], out)
        self.slots = [(i in consts) for i in inputs]  # which operand positions are constants
        self.const_names = [f"c{k}" for k in range(sum(self.slots))]
        for name, i in zip(self.const_names, [i for i in inputs if i in consts], strict=True):
            self.register_buffer(name, nchw_constant(consts[i], rank))
        self.act = _activation(act, kind)

    def run(self, *xs: torch.Tensor) -> torch.Tensor:
        live, consts = iter(xs), iter(getattr(self, name) for name in self.const_names)
        args = [next(consts) if is_const else next(live) for is_const in self.slots]
        if self.kind in self.FUNCS:
            y = self.FUNCS[self.kind](args[0], args[1])
        elif self.kind == "PRELU":
            y = F.relu(args[0]) - args[1] * F.relu(-args[0])
        else:
            y = {"RELU": F.relu, "RELU6": F.relu6, "ABS": torch.abs}[self.kind](args[0])
        return self.act(y) if self.act else y


class Reshape(Op):
    """RESHAPE in TFLite's NHWC element order; the batch dimension stays free."""

    def __init__(self, x: int, out: int, shape: list[int]) -> None:
        super().__init__("RESHAPE", [x], out)
        self.shape = [-1, *[int(d) for d in shape[1:]]]

    def run(self, x: torch.Tensor) -> torch.Tensor:
        y = (x.permute(0, 2, 3, 1) if x.ndim == 4 else x).reshape(self.shape)
        return y.permute(0, 3, 1, 2) if y.ndim == 4 else y


def _activation(code: int, kind: str) -> Any:
    if code not in ACTIVATIONS:
        raise ModelError(f"TFLite {kind}: fused activation {code} is not supported")
    return ACTIVATIONS[code]


class TFLiteGraph(nn.Module):
    """``forward(x: N × C × H × W float) → the model's (first) output`` of a float TFLite file."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        from ai_edge_litert import schema_py_generated as schema

        data = Path(path).read_bytes()
        if not schema.Model.ModelBufferHasIdentifier(data, 0):
            raise ModelError(f"{path} is not a TFLite model (no TFL3 flatbuffer identifier)")
        model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(data, 0))
        names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
        graph = model.subgraphs[0]
        if len(graph.inputs) != 1:
            raise ModelError(f"{path}: {len(graph.inputs)} inputs; a face embedder has one")
        for t in graph.tensors:
            if t.type != schema.TensorType.FLOAT32 and t.buffer and model.buffers[t.buffer].data is None:
                name = t.name.decode() if isinstance(t.name, bytes) else t.name
                raise ModelError(f"{path}: tensor {name!r} is not float32: only float TFLite graphs convert")

        def const(i: int) -> np.ndarray | None:
            t = graph.tensors[i]
            data = model.buffers[t.buffer].data if t.buffer < len(model.buffers) else None
            if data is None or len(data) == 0:
                return None
            dtype = np.int32 if t.type == schema.TensorType.INT32 else np.float32
            return np.frombuffer(np.asarray(data, dtype=np.uint8).tobytes(), dtype=dtype).reshape(t.shape)

        ops: list[Op] = []
        for op in graph.operators:
            code = model.operatorCodes[op.opcodeIndex]
            kind = names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "?")
            if kind not in SUPPORTED:
                raise ModelError(
                    f"{path}: TFLite operator {kind} cannot be converted to torch ({', '.join(SUPPORTED)})"
                )
            ins, out = [int(i) for i in op.inputs], int(op.outputs[0])
            consts = {i: c for i in ins if i >= 0 and (c := const(i)) is not None}
            opts = op.builtinOptions
            if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
                shape = graph.tensors[ins[0]].shape
                bias = consts.get(ins[2]) if len(ins) > 2 and ins[2] >= 0 else None
                ops.append(Conv(kind, ins[0], out, consts[ins[1]], bias, opts, (int(shape[1]), int(shape[2]))))
            elif kind == "RESHAPE":
                target = consts[ins[1]] if len(ins) > 1 and ins[1] in consts else opts.newShape
                ops.append(Reshape(ins[0], out, list(np.asarray(target).ravel())))
            else:
                act = int(getattr(opts, "fusedActivationFunction", 0) or 0)
                ops.append(Elementwise(kind, ins, out, consts, act, len(graph.tensors[out].shape)))
        self.ops = nn.ModuleList(ops)
        self.input_index, self.output_index = int(graph.inputs[0]), int(graph.outputs[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        env = {self.input_index: x}
        for op in self.ops:
            env[op.output] = op(env)
        return env[self.output_index]
