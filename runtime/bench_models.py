"""Latency of exported embedders (``shrinkface bench models``): batch-1 inference, median of many runs.

Each file is loaded with ``runtime.embed.load_embedder`` (the card inside the file decides preprocessing),
warmed up, then timed per stage on real aligned crops: ``preprocess`` (``card.preprocess``), ``invoke``
(the runtime alone) and ``embed`` (the whole ``Embedder.embed`` call). The runtime actually used is reported
(onnxruntime's execution providers, LiteRT's delegate), because a mismatched build silently falls back to
another one. Torch-free: it can run on the device itself.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def call_times_ms(fn: Any, runs: int, warmup: int) -> np.ndarray:
    """Milliseconds of ``runs`` timed calls of ``fn()`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    out = np.empty(runs)
    for i in range(runs):
        t0 = time.perf_counter()
        fn()
        out[i] = time.perf_counter() - t0
    return out * 1000.0


def median_call_ms(fn: Any, runs: int, warmup: int) -> float:
    """Median of ``call_times_ms(fn, runs, warmup)``, rounded to µs."""
    return round(float(np.median(call_times_ms(fn, runs, warmup))), 3)


def _summary(ms: np.ndarray) -> dict[str, float]:
    return {
        "median_ms": round(float(np.median(ms)), 4),
        "p10_ms": round(float(np.percentile(ms, 10)), 4),
        "p90_ms": round(float(np.percentile(ms, 90)), 4),
        "min_ms": round(float(ms.min()), 4),
    }


def bench_model(
    path: str | Path, crops: np.ndarray, threads: int = 1, runs: int = 200, warmup: int = 20
) -> dict[str, Any]:
    """Latency of one model file on single crops (cycled through ``crops``)."""
    from shrinkface.runtime.embed import load_embedder

    t0 = time.perf_counter()
    embedder = load_embedder(path, threads=threads)
    load_s = time.perf_counter() - t0
    state = {"i": 0}

    def next_crop() -> np.ndarray:
        state["i"] = (state["i"] + 1) % len(crops)
        return crops[state["i"] : state["i"] + 1]

    x = embedder.card.preprocess(crops[:1])
    if embedder.batch and embedder.batch > 1:
        x = np.repeat(x, embedder.batch, axis=0)
    row: dict[str, Any] = {
        "file": Path(path).name,
        "path": str(path),
        "sha256": embedder.sha256,
        "backend": embedder.backend,
        "bytes": Path(path).stat().st_size,
        "threads": threads,
        "runs": runs,
        "load_s": round(load_s, 3),
        "input_dtype": embedder.card.input_dtype,
        "layout": embedder.card.layout,
        "runtime": runtime_info(embedder),
        "preprocess": _summary(call_times_ms(lambda: embedder.card.preprocess(next_crop()), runs, warmup)),
        "invoke": _summary(call_times_ms(lambda: embedder._run(x), runs, warmup)),
        "embed": _summary(call_times_ms(lambda: embedder.embed(next_crop(), flip=False), runs, warmup)),
    }
    return row


def runtime_info(embedder: Any) -> dict[str, Any]:
    """What actually runs the model: ORT providers, or the LiteRT interpreter."""
    session = getattr(embedder, "session", None) or getattr(embedder, "_session", None)
    if session is not None and hasattr(session, "get_providers"):
        import onnxruntime as ort

        return {"onnxruntime": ort.__version__, "providers": session.get_providers()}
    info: dict[str, Any] = {"backend": embedder.backend}
    try:
        from importlib.metadata import version

        info["ai-edge-litert"] = version("ai-edge-litert")
    except Exception:  # pragma: no cover - version lookup is informational only
        pass
    interpreter = getattr(embedder, "interpreter", None)
    if interpreter is not None and hasattr(interpreter, "_get_ops_details"):
        info.update(litert_ops(interpreter))
    return info


def litert_ops(interpreter: Any) -> dict[str, Any]:
    """How a LiteRT graph runs: its op counts and the number of XNNPACK (delegate) partitions.

    ``_get_ops_details`` lists the file's own ops plus one ``DELEGATE`` node per delegated partition; a graph
    split into several partitions (an op the delegate refuses) is slow, and the count shows it.
    """
    ops = interpreter._get_ops_details()
    counts: dict[str, int] = {}
    for op in ops:
        counts[op["op_name"]] = counts.get(op["op_name"], 0) + 1
    partitions = counts.pop("DELEGATE", 0)
    return {"delegate_partitions": partitions, "ops": dict(sorted(counts.items()))}


def bench_models(
    paths: Sequence[str | Path],
    crops: np.ndarray,
    threads: Sequence[int] = (1,),
    runs: int = 200,
    warmup: int = 20,
) -> dict[str, Any]:
    """Every file × every thread count, interleaved per thread count so that machine noise hits all alike."""
    from shrinkface.runtime.bench_runtime import machine_info

    rows = [bench_model(p, crops, t, runs, warmup) for t in threads for p in paths]
    return {
        "machine": machine_info(),
        "crops": len(crops),
        "results": rows,
    }


def render_markdown(report: dict[str, Any]) -> str:
    """A markdown table of the medians."""
    lines = [
        f"Machine: {report['machine']['platform']} ({report['machine']['processor']}); batch 1; "
        f"median of {report['results'][0]['runs'] if report['results'] else 0} runs.",
        "",
        "| file | backend | input | threads | invoke ms | embed ms (preprocess + invoke + normalise) | MB "
        "| delegate partitions |",
        "|---|---|---|---|---|---|---|---|",
    ]
    names = [r["file"] for r in report["results"]]
    for r in report["results"]:
        label = r["file"]
        if names.count(label) > 1 and r.get("path"):  # same file name in several folders: say which
            label = f"{Path(r['path']).parent.name}/{label}"
        lines.append(
            f"| {label} | {r['backend']} | {r['input_dtype']} {r['layout']} | {r['threads']} | "
            f"{r['invoke']['median_ms']:.3f} | {r['embed']['median_ms']:.3f} | {r['bytes'] / 1e6:.2f} | "
            f"{r['runtime'].get('delegate_partitions', '—')} |"
        )
    return "\n".join(lines) + "\n"
