"""Median latency of 1:N identify against a large gallery of random unit templates (numpy only).

    .venv/bin/python bench/bench_identify.py [--templates 100000] [--dim 128] [--per-person 4] [--out PATH]

Writes JSON (default docs/results/bench_identify.json): median/p90 milliseconds per query for ``identify``
(one matrix product + ``np.maximum.reduceat``) with max and mean reduction, the template count, and the host.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from shrinkface.runtime.decide import TemplateSet, identify


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.standard_normal((n, d), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def bench(templates: int, dim: int, per_person: int, queries: int, seed: int = 0) -> dict[str, object]:
    """Build the gallery, warm up, then time ``queries`` single-query identifies per reduction."""
    rng = np.random.default_rng(seed)
    owners = [f"person{i // per_person:06d}" for i in range(templates)]
    start = time.perf_counter()
    gallery = TemplateSet.from_owners(owners, _unit(rng, templates, dim))
    build_s = time.perf_counter() - start
    probes = _unit(rng, queries, dim)
    out: dict[str, object] = {
        "templates": templates,
        "people": len(gallery.names),
        "dim": dim,
        "queries": queries,
        "build_s": round(build_s, 3),
    }
    for reduce in ("max", "mean"):
        identify(gallery, probes[0], 0.5, reduce)  # warm-up
        times = []
        for q in probes:
            t0 = time.perf_counter()
            identify(gallery, q, 0.5, reduce)
            times.append((time.perf_counter() - t0) * 1e3)
        out[f"{reduce}_median_ms"] = round(float(np.median(times)), 3)
        out[f"{reduce}_p90_ms"] = round(float(np.percentile(times, 90)), 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--templates", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--per-person", type=int, default=4)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path("docs/results/bench_identify.json"))
    args = parser.parse_args()
    result = bench(args.templates, args.dim, args.per_person, args.queries)
    result["host"] = {
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }
    result["command"] = "python bench/bench_identify.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "out"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
