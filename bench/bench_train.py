"""Training throughput on this machine: steps with the teacher cache, the data loader alone, cache building.

    .venv/bin/python bench/bench_train.py [CONFIG] [--set key=value ...] [--threads 1 2] [--steps 3]
        [--warmup 1] [--loader-batches 8] [--cache-images 256] [--out docs/results/bench_train]

CONFIG (default configs/warm_ensemble.yaml) must have its crop pack and teacher caches built
(``shrinkface train cache CONFIG``). Measured, each as wall and main-process CPU time (time.process_time):
- training: the trainer's step (loader → student forward/backward → objective → AdamW) at the config's batch
  size, ``--warmup`` steps discarded, then ``--steps`` timed, for each ``--threads`` value;
- data loader alone: ``--loader-batches`` augmented batches (with teacher targets) through the config's
  loader workers, and in-process (workers 0) for the CPU cost of a batch;
- teacher cache: a fresh cache of ``--cache-images`` training crops per teacher in a temporary folder (one
  process: decode + embed the crop and its mirror), as crops per second.
Writes ``OUT.json`` and ``OUT.md`` (with the command and the load average: the machine may be shared).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from shrinkface.train.cache import TeacherCache
from shrinkface.train.config import TrainConfig, load_config
from shrinkface.train.cpu_tuning import tune_cpu_process
from shrinkface.train.data import BatchDataset, EpochBatches, make_loader, to_input
from shrinkface.train.objective import TrainModule, build_objective
from shrinkface.train.prepare import Prepared, prepare
from shrinkface.train.students import build_student
from shrinkface.train.teachers import build_teacher, resolve_model_path
from shrinkface.train.trainer import build_optimizer
from shrinkface.train.warmstart import warm_start_from_onnx


class Clock:
    """Wall and CPU seconds of a ``with`` block."""

    def __enter__(self) -> Clock:
        self.w0, self.c0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *_: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self.w0, time.process_time() - self.c0


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _dataset(cfg: TrainConfig, prepared: Prepared) -> BatchDataset:
    return BatchDataset(prepared.pack, prepared.trainset.labels, prepared.targets, cfg.data.augment)


def bench_training(
    cfg: TrainConfig, prepared: Prepared, threads: int, warmup: int, steps: int, tuned: bool = True
) -> dict[str, Any]:
    """The trainer's inner loop (no checkpoints, no evaluation) on the config's student and objective;
    ``tuned=False``: without ``tune_cpu_process`` (subnormals kept, glibc defaults), for comparison."""
    torch.set_num_threads(threads)
    if tuned:
        tune_cpu_process()
    else:
        torch.set_flush_denormal(False)
    torch.manual_seed(cfg.seed)
    student = build_student(**cfg.student.build_args())
    if cfg.student.warm_start:
        warm_start_from_onnx(student, resolve_model_path(cfg.student.warm_start))
    student.freeze_bn = cfg.student.freeze_bn
    objective = build_objective(
        cfg.losses, student, prepared.teachers, prepared.cached, prepared.trainset.labels, prepared.trainset.num_classes
    )
    memory = torch.channels_last if cfg.channels_last else torch.contiguous_format
    module = TrainModule(student, objective).to(memory_format=memory)
    optimizer = build_optimizer(cfg, module)
    batches = EpochBatches(len(prepared.trainset), cfg.batch_size, cfg.seed)
    loader = iter(make_loader(_dataset(cfg, prepared), batches, 0, 0, cfg.data.workers))
    module.train()
    walls, cpus = [], []
    for k in range(warmup + steps):
        with Clock() as c:
            batch = next(loader)
            x = to_input(batch["images"], channels_last=cfg.channels_last)
            loss, _ = module(x, batch["labels"], batch["targets"], {})
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if k >= warmup:
            walls.append(c.wall)
            cpus.append(c.cpu)
    del loader
    n = cfg.batch_size
    return {
        "threads": threads,
        "cpu_tuning": tuned,
        "batch_size": n,
        "steps": steps,
        "step_wall_s": round(float(np.mean(walls)), 3),
        "step_cpu_s": round(float(np.mean(cpus)), 3),
        "images_per_s": round(n * steps / float(np.sum(walls)), 2),
        "images_per_cpu_s": round(n * steps / float(np.sum(cpus)), 2),
    }


def bench_loader(cfg: TrainConfig, prepared: Prepared, count: int) -> dict[str, Any]:
    """Augmented batches per second through the configured workers, and the CPU cost of one in-process."""
    torch.set_num_threads(1)
    dataset = _dataset(cfg, prepared)
    batches = EpochBatches(len(prepared.trainset), cfg.batch_size, cfg.seed)
    loader = iter(make_loader(dataset, batches, 1, 0, cfg.data.workers))
    next(loader)  # workers started, first batch ready
    with Clock() as c:
        for _ in range(count):
            next(loader)
    del loader
    specs = batches.iterate(2)
    dataset[next(specs)]  # memmaps opened
    with Clock() as inproc:
        for _ in range(count):
            dataset[next(specs)]
    n = cfg.batch_size * count
    return {
        "workers": cfg.data.workers,
        "batch_size": cfg.batch_size,
        "batches": count,
        "images_per_s": round(n / c.wall, 1),
        "in_process_images_per_s": round(n / inproc.wall, 1),
        "in_process_cpu_ms_per_batch": round(1e3 * inproc.cpu / count, 1),
    }


def bench_cache(cfg: TrainConfig, prepared: Prepared, images: int) -> list[dict[str, Any]]:
    """Fill a fresh cache of ``images`` spread training crops per teacher (one process)."""
    paths, keys = prepared.trainset.paths, prepared.trainset.keys
    pick = np.linspace(0, len(paths) - 1, min(images, len(paths))).round().astype(int)
    out = []
    for tcfg in cfg.teachers:
        teacher = build_teacher(tcfg)
        with tempfile.TemporaryDirectory() as tmp:
            cache = TeacherCache(tmp, teacher.name, teacher.fingerprint, teacher.dim)
            with Clock() as c:
                cache.fill([paths[i] for i in pick], [keys[i] for i in pick], embedder=teacher.embedder, progress=False)
        out.append(
            {
                "teacher": teacher.name,
                "asset": tcfg.asset,
                "dim": teacher.dim,
                "images": len(pick),
                "wall_s": round(c.wall, 2),
                "cpu_s": round(c.cpu, 2),
                "images_per_s": round(len(pick) / c.wall, 1),
                "images_per_cpu_s": round(len(pick) / c.cpu, 1),
            }
        )
    return out


def write_markdown(path: Path, result: dict[str, Any]) -> None:
    """A short report of ``result`` with the command that produced it."""
    lines = [
        "# Training throughput (`bench/bench_train.py`)",
        "",
        f"Command: `{result['command']}`",
        "",
        f"Host: {result['host']['cpu']} ({result['host']['cores']} cores), torch {result['host']['torch']}; "
        f"load average at start {result['load_average']['start']}, at end {result['load_average']['end']} "
        "(a shared machine: other jobs' load slows the wall-clock figures).",
        f"Config `{result['config']}`: {result['images']} training images, batch {result['batch_size']}, "
        f"teachers cached.",
        "",
        "## Training steps",
        "",
        "| threads | step wall (s) | step CPU (s) | images/s | images per CPU-second |",
        "|---|---|---|---|---|",
    ]
    for r in result["training"]:
        lines.append(
            f"| {r['threads']} | {r['step_wall_s']} | {r['step_cpu_s']} | {r['images_per_s']} | "
            f"{r['images_per_cpu_s']} |"
        )
    lo = result["loader"]
    lines += [
        "",
        f"Each row: {result['training'][0]['steps']} steps after {result['warmup']} warm-up step(s); "
        "CPU = the main process (the loader workers are extra). More threads help only when the other cores "
        "are idle: with another job on one of 2 cores the intra-op threads wait on each other.",
        "",
        "## Data loader alone",
        "",
        f"{lo['images_per_s']} images/s through {lo['workers']} workers; in process "
        f"{lo['in_process_images_per_s']} images/s, {lo['in_process_cpu_ms_per_batch']} ms CPU per batch of "
        f"{lo['batch_size']} (read from the crop pack, augment, gather the teacher targets).",
        "",
        "## Teacher cache building (fresh, one process)",
        "",
        "| teacher | dim | images | wall (s) | images/s | images per CPU-second |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["cache"]:
        lines.append(
            f"| {r['teacher']} | {r['dim']} | {r['images']} | {r['wall_s']} | {r['images_per_s']} | "
            f"{r['images_per_cpu_s']} |"
        )
    lines += ["", "An image here is the crop and its mirror (two teacher forwards) plus the JPEG/PNG decode.", ""]
    path.write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", nargs="?", default="configs/warm_ensemble.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="override a config key")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--loader-batches", type=int, default=8)
    parser.add_argument("--cache-images", type=int, default=256)
    parser.add_argument("--untuned", action="store_true", help="training only, without tune_cpu_process")
    parser.add_argument("--out", default="docs/results/bench_train", help="output path without suffix")
    args = parser.parse_args()

    load_start = [round(x, 2) for x in os.getloadavg()]
    cfg = load_config(Path(args.config), args.overrides)
    prepared = prepare(cfg, progress=False)
    result: dict[str, Any] = {
        "command": shlex.join([".venv/bin/python", "bench/bench_train.py", *sys.argv[1:]]),
        "config": args.config,
        "images": len(prepared.trainset),
        "batch_size": cfg.batch_size,
        "warmup": args.warmup,
        "host": {
            "cpu": _cpu_name(),
            "cores": os.cpu_count(),
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
    }
    if args.untuned:  # a comparison run: print only, keep the report
        for threads in args.threads:
            row = bench_training(cfg, prepared, threads, args.warmup, args.steps, tuned=False)
            print(json.dumps(row), flush=True)
        return
    result["loader"] = bench_loader(cfg, prepared, args.loader_batches)
    print(json.dumps(result["loader"]), flush=True)
    result["training"] = []
    for threads in args.threads:
        result["training"].append(bench_training(cfg, prepared, threads, args.warmup, args.steps))
        print(json.dumps(result["training"][-1]), flush=True)
    result["cache"] = bench_cache(cfg, prepared, args.cache_images)
    print(json.dumps(result["cache"]), flush=True)
    result["load_average"] = {"start": load_start, "end": [round(x, 2) for x in os.getloadavg()]}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    write_markdown(out.with_suffix(".md"), result)
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
