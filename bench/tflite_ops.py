"""Op list, XNNPACK partitions and median invoke latency of .tflite files, with or without the default delegate.

Works on files without a model card (e.g. conversion variants): random input of the file's own dtype, one
thread, batch 1, 20 warm-up + 200 timed runs. ``FILE@nodelegate`` runs FILE with the default delegates off.

    .venv/bin/python bench/tflite_ops.py a.tflite a.tflite@nodelegate b.tflite > ops.jsonl
"""

from __future__ import annotations

import collections
import json
import sys

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from shrinkface.runtime.bench_models import call_times_ms


def random_input(detail: dict) -> np.ndarray:
    """A seeded random tensor of an input's shape and dtype (normal for float32, full int range otherwise)."""
    rng = np.random.default_rng(0)
    if np.dtype(detail["dtype"]) == np.float32:
        return rng.standard_normal(detail["shape"]).astype(np.float32)
    return rng.integers(-128, 127, detail["shape"]).astype(detail["dtype"])


def invoke_times(interpreter: Interpreter, runs: int = 200, warmup: int = 20) -> np.ndarray:
    """Seconds of ``runs`` timed ``invoke`` calls after ``warmup`` untimed ones."""
    return call_times_ms(interpreter.invoke, runs, warmup) / 1000.0


def measure(spec: str, runs: int = 200, warmup: int = 20) -> dict[str, object]:
    """One JSON row for ``spec`` (``PATH`` or ``PATH@nodelegate``)."""
    path, _, mode = spec.partition("@")
    resolver = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES if mode == "nodelegate" else OpResolverType.AUTO
    interpreter = Interpreter(model_path=path, num_threads=1, experimental_op_resolver_type=resolver)
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    interpreter.set_tensor(detail["index"], random_input(detail))
    times = invoke_times(interpreter, runs, warmup)
    ops = collections.Counter(o["op_name"] for o in interpreter._get_ops_details())
    return {
        "file": path,
        "resolver": mode or "default (XNNPACK)",
        "median_ms": round(1000 * float(np.median(times)), 3),
        "p10_ms": round(1000 * float(np.percentile(times, 10)), 3),
        "delegate_partitions": ops.pop("DELEGATE", 0),
        "ops": dict(sorted(ops.items())),
    }


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(json.dumps(measure(arg)), flush=True)
