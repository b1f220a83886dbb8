"""Where a .tflite file spends its time: the median invoke latency of every prefix of its op list.

LiteRT's Python API has no per-op profiler, and XNNPACK runs the whole graph as one delegate node. This script
cuts the graph after op k (ops 1..k kept, op k's output made the graph output), times each prefix (one thread,
XNNPACK, 20 warm-up + 200 timed runs, best median of two rounds) and reports the increment over the previous
prefix as op k's cost. Increments are noisy (± 0.02 ms) and an op whose output is float may shift cost to the
next one, but a slow op stands out: this is how the int8 GDConv (7×7 depthwise to 1×1) was found to take
0.86 ms of the shipped file's 3.0 (docs/results/parity.md, gdconv_profile/).

    .venv/bin/python bench/tflite_prefix_profile.py FILE [--cuts -3,-2,-1,0] > profile.jsonl

``--cuts``: only these prefix lengths (negative or 0: counted from the end; default: every prefix).
"""

from __future__ import annotations

import argparse
import copy
import json

import numpy as np
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter
from ai_edge_litert.tools import flatbuffer_utils
from tflite_ops import invoke_times  # bench/ is on sys.path when run as a script

OP_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}


def median_ms(interpreter: Interpreter) -> float:
    """Median ``invoke`` time in ms (20 warm-up, 200 timed runs)."""
    return 1000 * float(np.median(invoke_times(interpreter)))


def prefix_bytes(model: object, length: int) -> bytes:
    """The model with only its first ``length`` ops, the last one's outputs as the graph outputs."""
    cut = copy.deepcopy(model)
    graph = cut.subgraphs[0]
    graph.operators = graph.operators[:length]
    graph.outputs = list(graph.operators[-1].outputs)
    cut.signatureDefs = []
    return bytes(flatbuffer_utils.convert_object_to_bytearray(cut))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file")
    parser.add_argument("--cuts", default="", help="comma-separated prefix lengths (≤ 0: from the end)")
    args = parser.parse_args()
    model = flatbuffer_utils.read_model(args.file)
    ops = model.subgraphs[0].operators
    names = [OP_NAMES[model.operatorCodes[op.opcodeIndex].builtinCode] for op in ops]
    n = len(ops)
    cuts = [int(c) if int(c) > 0 else n + int(c) for c in args.cuts.split(",")] if args.cuts else range(1, n + 1)
    previous = 0.0
    for k in cuts:
        interpreter = Interpreter(model_content=prefix_bytes(model, k), num_threads=1)
        interpreter.allocate_tensors()
        ms = min(median_ms(interpreter) for _ in range(2))
        shape = [int(d) for d in interpreter.get_output_details()[0]["shape"]]
        row = {"ops": k, "op": names[k - 1], "ms": round(ms, 3), "delta_ms": round(ms - previous, 3), "out": shape}
        print(json.dumps(row), flush=True)
        previous = ms


if __name__ == "__main__":
    main()
