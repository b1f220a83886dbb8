"""Median latency of .tflite files under LiteRT's run options: the classic ``Interpreter`` (what the runtime
uses) and the ``CompiledModel`` API with XNNPACK, built-in kernels, YNNPACK and XNNPACK flags.

One thread, random input of the file's dtype, 30 warm-up + 300 timed runs each. Flags are XNNPACK delegate
flags: 1 | 2 = int8 (QS8 | QU8), 4 = force fp16, 32 = transient indirection buffer, 64 = latest operators,
256 = Slinky. Measured in session 5 (docs/results/bench_models.md, "Delegate"); none gave an int8 speed-up.

    .venv/bin/python bench/litert_options.py artifacts/warm_ensemble_abc_6ep/student.int8.tflite > options.jsonl
"""

from __future__ import annotations

import json
import sys

from ai_edge_litert.compiled_model import CompiledModel
from ai_edge_litert.cpu_kernel_mode import CpuKernelMode
from ai_edge_litert.hardware_accelerator import HardwareAccelerator
from ai_edge_litert.interpreter import Interpreter
from ai_edge_litert.options import CpuOptions, Options
from tflite_ops import random_input  # bench/ is on sys.path when run as a script

from shrinkface.runtime.bench_models import median_call_ms

RUNS, WARMUP = 300, 30

VARIANTS: dict[str, CpuOptions] = {
    "xnnpack": CpuOptions(num_threads=1),
    "ynnpack": CpuOptions(num_threads=1, enable_ynnpack=True),
    "builtin": CpuOptions(num_threads=1, kernel_mode=CpuKernelMode.BUILTIN),
    **{f"xnnpack_flags={f}": CpuOptions(num_threads=1, xnnpack_flags=f) for f in (3, 3 | 64, 3 | 256, 3 | 32, 3 | 4)},
}


def main(paths: list[str]) -> None:
    for path in paths:
        interpreter = Interpreter(model_path=path, num_threads=1)
        interpreter.allocate_tensors()
        detail = interpreter.get_input_details()[0]
        x = random_input(detail)
        interpreter.set_tensor(detail["index"], x)
        ms = median_call_ms(interpreter.invoke, RUNS, WARMUP)
        print(json.dumps({"file": path, "api": "Interpreter", "median_ms": ms}), flush=True)
        for name, cpu in VARIANTS.items():
            row: dict[str, object] = {"file": path, "api": "CompiledModel", "cpu": name}
            try:
                options = Options(hardware_accelerators=HardwareAccelerator.CPU, cpu_options=cpu)
                model = CompiledModel.from_file(path, options=options)
                inputs, outputs = model.create_input_buffers(0), model.create_output_buffers(0)
                inputs[0].write(x)
                run = lambda m=model, i=inputs, o=outputs: m.run_by_index(0, i, o)  # noqa: E731
                row["median_ms"] = median_call_ms(run, RUNS, WARMUP)
            except Exception as exc:  # an option this build lacks (YNNPACK) fails at creation
                row["error"] = str(exc).splitlines()[0][:200]
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
