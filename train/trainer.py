"""The training loop: SGD/AdamW, warm-up + cosine, channels_last, atomic checkpoints, exact resume, DDP.

Exact resume: the data order of a step is a function of (seed, epoch, batch) and the augmentation of
(seed, epoch, batch, rank), the loader draws from its own generator, and a checkpoint holds model, objective,
optimiser, scheduler and RNG states, so N steps straight and N/2 + resume + N/2 give identical weights.
The run folder ``<output_dir>/<name>/`` gets ``command.txt`` (every invocation), ``config.yaml`` (resolved),
``data_report.json``, ``log.jsonl`` (one JSON object per logged step / evaluation), ``checkpoints/`` and,
at the end, ``student.pt`` (the student only, for export).
"""

from __future__ import annotations

import json
import math
import os
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn
from tqdm import tqdm

from shrinkface.runtime.errors import ShrinkfaceError
from shrinkface.train.checkpoint import (
    FORMAT,
    atomic_save,
    load_checkpoint,
    rng_state,
    save_run_checkpoint,
    set_rng_state,
)
from shrinkface.train.config import ConfigError, TrainConfig, dump_config, expand_path
from shrinkface.train.cpu_tuning import fast_float_mode, tune_cpu_process
from shrinkface.train.data import BatchDataset, EpochBatches, make_loader, to_input
from shrinkface.train.distributed import DistInfo, barrier, broadcast_buffers, init_distributed, shutdown
from shrinkface.train.objective import TrainModule, build_objective
from shrinkface.train.prepare import Prepared, prepare
from shrinkface.train.students.fade import (
    attach_faders,
    fade_at,
    faded_state_dict,
    finished_fade_state,
    freeze_slopes,
    set_fade,
)

#: The student's input normalisation (what the exported model card must say).
PREPROCESS = {
    "mean": [127.5, 127.5, 127.5],
    "std": [127.5, 127.5, 127.5],
    "channel_order": "RGB",
    "layout": "NCHW",
    "input_size": [112, 112],
}


class TrainingDiverged(ShrinkfaceError):
    """The loss became NaN or infinite."""


@dataclass
class TrainResult:
    """What a finished ``train`` call returns."""

    student: nn.Module
    objective: nn.Module
    run_dir: Path
    step: int
    history: list[dict[str, Any]] = field(default_factory=list)
    last_eval: dict[str, Any] | None = None


def lr_factor(step: int, total: int, warmup: float, start: float, floor: float) -> float:
    """Linear warm-up from ``start`` to 1, then cosine from 1 to ``floor``, as a multiple of the base lr."""
    warm = round(warmup * total) if warmup < 1 else int(warmup)
    if step < warm:
        return start + (1.0 - start) * step / warm
    progress = min(1.0, (step - warm) / max(1, total - warm))
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_optimizer(cfg: TrainConfig, module: nn.Module) -> torch.optim.Optimizer:
    """Weight decay on weight matrices/kernels only (not on BN, biases, PReLU slopes)."""
    decay = [p for p in module.parameters() if p.requires_grad and p.ndim > 1]
    plain = [p for p in module.parameters() if p.requires_grad and p.ndim <= 1]
    groups = [
        {"params": decay, "weight_decay": cfg.optim.weight_decay},
        {"params": plain, "weight_decay": 0.0},
    ]
    o = cfg.optim
    if o.name == "sgd":
        return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum, nesterov=o.nesterov)
    return torch.optim.AdamW(groups, lr=o.lr, betas=o.betas)


class RunLog:
    """The run folder's JSONL log (main process only)."""

    def __init__(self, path: Path | None) -> None:
        self.fh = open(path, "a") if path else None  # noqa: SIM115 - closed in close()
        self.rows: list[dict[str, Any]] = []

    def write(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        if self.fh:
            self.fh.write(json.dumps(row) + "\n")
            self.fh.flush()

    def close(self) -> None:
        if self.fh:
            self.fh.close()


def _write_run_files(
    run_dir: Path, cfg: TrainConfig, argv: list[str] | None, resume: bool, info: DistInfo, prepared: Prepared
) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    command = shlex.join(argv if argv is not None else sys.argv)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    with open(run_dir / "command.txt", "a") as fh:
        fh.write(f"# {stamp} cwd={os.getcwd()} world={info.world}{' resume' if resume else ''}\n{command}\n")
    (run_dir / "config.yaml").write_text(dump_config(cfg))
    report = dict(
        prepared.trainset.report,
        classes=prepared.trainset.num_classes,
        teachers={t.name: {"fingerprint": t.fingerprint, "dim": t.dim, "kind": t.cfg.kind} for t in prepared.teachers},
    )
    (run_dir / "data_report.json").write_text(json.dumps(report, indent=1))


def initialise_from(cfg: TrainConfig, module: TrainModule) -> None:
    """Copy the student and the same-named (or ``cfg.init_map``-ed) objective tensors of ``cfg.init_from``; a
    periodic checkpoint of a slope-fading run gives its student at λ = 0 (refused while it was still fading)."""
    ckpt = load_checkpoint(expand_path(cfg.init_from or ""))
    student_state = ckpt["student"]
    fade_steps = int((yaml.safe_load(ckpt.get("config") or "") or {}).get("student", {}).get("fade_prelu_steps", 0))
    if fade_steps and "optimizer" in ckpt:  # a periodic checkpoint: the student as it was fading (student.pt is not)
        if int(ckpt["step"]) < fade_steps:
            raise ConfigError(
                f"init_from {cfg.init_from}: its run was still fading PReLU slopes (step {ckpt['step']} of "
                f"{fade_steps}); start from a checkpoint at or after step {fade_steps}"
            )
        student_state = finished_fade_state(student_state, ckpt["student_config"])
    module.student.load_state_dict(student_state)
    source = ckpt.get("objective", {})
    own = module.objective.state_dict()
    for key, value in own.items():
        src_key = cfg.init_map.get(key, key)
        if src_key in source and tuple(source[src_key].shape) == tuple(value.shape):
            value.copy_(source[src_key])
    module.objective.load_state_dict(own)


def train(
    cfg: TrainConfig,
    resume: bool = False,
    argv: list[str] | None = None,
    progress: bool = True,
    stop_at: int | None = None,
    time_limit: float | None = None,
) -> TrainResult:
    """Run (or resume) the experiment ``cfg``; returns the trained student and the run folder.

    ``stop_at`` (a step) or ``time_limit`` (seconds of training) end this session early with a checkpoint,
    to be continued with ``resume=True`` (long CPU runs over several sessions)."""
    info = init_distributed(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    run_dir = cfg.run_dir
    last = run_dir / "checkpoints" / "last.pt"
    if info.main and last.exists() and not resume:
        raise ConfigError(f"{run_dir} already holds a run: pass --resume to continue it, or another name")
    if resume and not last.exists():
        raise ConfigError(f"--resume: {last} does not exist")
    prepared = prepare(cfg, info, progress=progress and info.main)
    if info.main:
        _write_run_files(run_dir, cfg, argv, resume, info, prepared)
    device = info.device
    # after prepare(): an ONNX Runtime session (a black-box teacher) clears the subnormal flags of its thread
    tuning = tune_cpu_process() if device.type == "cpu" else {"flush_denormal": fast_float_mode()}
    trainset = prepared.trainset
    memory = torch.channels_last if cfg.channels_last else torch.contiguous_format

    torch.manual_seed(cfg.seed)
    from shrinkface.train.students import build_student

    student = build_student(**cfg.student.build_args())
    faders = attach_faders(student) if cfg.student.fade_prelu_steps else []
    if cfg.student.warm_start and not resume:
        from shrinkface.train.teachers import resolve_model_path
        from shrinkface.train.warmstart import warm_start_from_onnx

        warm_start_from_onnx(student, resolve_model_path(cfg.student.warm_start))
    student.freeze_bn = cfg.student.freeze_bn
    objective = build_objective(
        cfg.losses, student, prepared.teachers, prepared.cached, trainset.labels, trainset.num_classes
    )
    module = TrainModule(student, objective).to(device=device, memory_format=memory)
    if cfg.init_from and not resume:
        initialise_from(cfg, module)
    if cfg.student.freeze_slopes:
        freeze_slopes(student)
    whitebox = [t for t in prepared.teachers if t.module is not None]
    for t in whitebox:
        t.module.to(device=device, memory_format=memory)
    model: nn.Module = module
    if info.distributed:
        model = nn.parallel.DistributedDataParallel(
            module, device_ids=[device.index] if device.type == "cuda" else None
        )
    optimizer = build_optimizer(cfg, module)

    batches = EpochBatches(len(trainset), cfg.batch_size, cfg.seed, info.rank, info.world)
    per_epoch = len(batches)
    total = cfg.steps if cfg.steps is not None else math.ceil(cfg.epochs * per_epoch)  # type: ignore[operator]
    if cfg.student.fade_prelu_steps > total:
        raise ConfigError(f"student.fade_prelu_steps {cfg.student.fade_prelu_steps} > the run's {total} steps")
    s = cfg.schedule
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda k: lr_factor(k, total, s.warmup, s.warmup_start, s.min_lr)
    )
    step = 0
    log = RunLog(run_dir / "log.jsonl" if info.main else None)
    if resume:
        ckpt = load_checkpoint(last)
        module.student.load_state_dict(ckpt["student"])
        module.objective.load_state_dict(ckpt["objective"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        set_rng_state(ckpt["rng"])
        step = int(ckpt["step"])
        log.write({"event": "resume", "step": step, "config_changed": ckpt["config"] != dump_config(cfg)})
    else:
        log.write(
            {
                "event": "start",
                "total_steps": total,
                "steps_per_epoch": per_epoch,
                "images": len(trainset),
                "world": info.world,
                "device": str(device),
                "cpu_tuning": tuning,
            }
        )

    dataset = BatchDataset(
        prepared.pack,
        trainset.labels,
        {k: v for k, v in prepared.targets.items() if k not in {t.name for t in whitebox}},
        cfg.data.augment,
    )
    evaluator = None
    if info.main and (cfg.eval.period or cfg.eval.at_end):
        from shrinkface.train.evaluate import LfwEvaluator

        evaluator = LfwEvaluator(cfg.eval, device, cfg.channels_last)

    def state() -> dict[str, Any]:
        return {
            "step": step,
            "epoch": step // per_epoch,
            "batch": step % per_epoch,
            "student": module.student.state_dict(),
            "objective": module.objective.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": rng_state(),
            "config": dump_config(cfg),
            "student_config": cfg.student.build_args(),
            "preprocess": PREPROCESS,
            "world": info.world,
        }

    def evaluate() -> dict[str, Any] | None:
        if evaluator is None:
            return None
        result = {"event": "eval", "step": step, **evaluator(module.student)}
        log.write(result)
        return result

    last_eval = None
    t_start = time.perf_counter()
    bar = tqdm(total=total, initial=step, desc=cfg.name, unit="step", disable=not (progress and info.main))
    window: dict[str, Any] = {}  # summed loss terms since the last log row, over `in_window` steps
    in_window = 0
    pause = False
    seen, t_last = 0, time.perf_counter()
    model.train()
    try:
        while step < total:
            epoch, start = divmod(step, per_epoch)
            loader = make_loader(dataset, batches, epoch, start, cfg.data.workers, pin=device.type == "cuda")
            for batch in loader:
                images = batch["images"].to(device, non_blocking=True)
                labels = batch["labels"].to(device, non_blocking=True)
                targets = {k: v.to(device, non_blocking=True) for k, v in batch["targets"].items()}
                if faders:
                    set_fade(faders, fade_at(step, cfg.student.fade_prelu_steps))
                features = {}
                for t in whitebox:
                    targets[t.name], features[t.name] = t.module(images)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.amp):
                    x = to_input(images, channels_last=cfg.channels_last)
                    loss, parts = model(x, labels, targets, features, batch["index"].to(device, non_blocking=True))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.optim.grad_clip:
                    nn.utils.clip_grad_norm_(module.parameters(), cfg.optim.grad_clip)
                optimizer.step()
                scheduler.step()
                step += 1
                seen += cfg.batch_size
                for name, value in {"loss": loss, **parts}.items():
                    window[name] = window.get(name, 0.0) + value.detach().float()
                in_window += 1
                bar.update()
                if step % cfg.log_period == 0 or step == total:
                    means = {k: float(v) / in_window for k, v in window.items()}  # a resumed run's first row too
                    if not math.isfinite(means["loss"]):
                        raise TrainingDiverged(f"the loss is {means['loss']} near step {step}; lower optim.lr")
                    dt = time.perf_counter() - t_last
                    row = {
                        "step": step,
                        "epoch": round(step / per_epoch, 4),
                        "lr": scheduler.get_last_lr()[0],
                        **{k: round(v, 6) for k, v in means.items()},
                        "images_per_s": round(seen / dt, 1),
                    }
                    log.write(row)
                    bar.set_postfix(loss=f"{row['loss']:.4f}", img_s=row["images_per_s"])
                    window, in_window, seen, t_last = {}, 0, 0, time.perf_counter()
                out_of_time = time_limit is not None and time.perf_counter() - t_start > time_limit
                if info.distributed and time_limit is not None:  # every rank must stop at the same step
                    flag = torch.tensor([float(out_of_time)], device=device)
                    torch.distributed.all_reduce(flag)
                    out_of_time = bool(flag.item())
                pause = out_of_time or (stop_at is not None and step >= stop_at)
                if step % cfg.checkpoint.period == 0 or step == total or pause:
                    if step == total:
                        broadcast_buffers(module, info)
                    if info.main:
                        save_run_checkpoint(run_dir, state(), cfg.checkpoint.keep)
                    barrier(info)
                if cfg.eval.period and step % cfg.eval.period == 0:
                    last_eval = evaluate() or last_eval
                    barrier(info)
                if step >= total or pause:
                    break
            del loader
            if step < total and pause:
                log.write({"event": "pause", "step": step})
                break
        if info.main and step >= total:
            set_fade(faders, fade_at(step, cfg.student.fade_prelu_steps))
            atomic_save(
                {
                    "format": FORMAT,
                    "student": faded_state_dict(module.student) if faders else module.student.state_dict(),
                    "student_config": cfg.student.build_args(),
                    "preprocess": PREPROCESS,
                    "config": dump_config(cfg),
                    "step": step,
                },
                run_dir / "student.pt",
            )
            if cfg.eval.at_end and not (cfg.eval.period and step % cfg.eval.period == 0):
                last_eval = evaluate() or last_eval
        barrier(info)
    finally:
        bar.close()
        log.close()
    shutdown(info)
    return TrainResult(module.student, module.objective, run_dir, step, log.rows, last_eval)
