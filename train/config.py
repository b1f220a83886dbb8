"""Typed training configuration: dataclasses loaded from YAML (``yaml.safe_load``), with ``--set`` overrides.

One YAML per experiment in ``configs/``. Every key is checked against the dataclass fields: an unknown key, a
value of the wrong type or a choice outside a ``Literal`` is a ``ConfigError`` naming the key path and what is
allowed. ``--set optim.lr=0.01`` converts the text by the field's declared type; ``teachers.0.weight=2``
indexes a list and ``losses.adl.weight=7`` a dict. Paths may hold ``${ENV}`` variables, expanded on use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from shrinkface.train.config_parse import ConfigError, apply_override, expand_path, from_dict, to_dict

__all__ = ["ConfigError", "TrainConfig", "dump_config", "expand_path", "load_config"]


@dataclass
class SourceConfig:
    """A folder of aligned 112×112 crops: ``<path>/<Identity>/*.png`` (labelled) or any tree (unlabelled)."""

    path: str
    kind: Literal["labelled", "unlabelled"] = "labelled"
    limit: int | None = None  # at most this many images (a deterministic, evenly spread subset)
    limit_per_class: int | None = None


@dataclass
class AugmentConfig:
    """Training augmentation; each random draw comes from a generator seeded by (seed, epoch, batch, rank)."""

    mirror: float = 0.5  # probability; the mirrored crop is paired with the teacher's mirrored embedding
    shift_px: float = 6.0  # uniform ± translation in pixels
    scale: float = 0.05  # uniform ± relative scale
    brightness: float = 0.2  # multiplicative factor in [1 − b, 1 + b]
    contrast: float = 0.2
    saturation: float = 0.2
    grayscale: float = 0.1  # probability
    blur: float = 0.1  # probability of a Gaussian blur
    blur_sigma: float = 1.2  # its σ is uniform in [0.3, blur_sigma]
    erase: float = 0.0  # probability of erasing one rectangle (random grey)
    erase_area: float = 0.15  # its maximum area fraction


@dataclass
class DataConfig:
    """Training images and the identity-disjointness check against the evaluation pairs."""

    sources: list[SourceConfig] = field(default_factory=list)
    pairs: str | None = "${SHRINKFACE_DATA}/lfw/pairs.txt"  # evaluation pairs whose identities must not train
    on_overlap: Literal["refuse", "exclude"] = "refuse"
    unlabelled_labels: Literal["ignore", "pseudo"] = "ignore"  # −1 (distillation only) or one class per image
    workers: int = 2  # loader worker processes
    cache_processes: int = 1  # processes that fill the teacher cache
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass
class StudentConfig:
    """Arguments of ``shrinkface.train.students.build_student``."""

    arch: str = "mobilefacenet"
    embedding_size: int = 128
    width: float = 1.0
    activation: str = "prelu"
    #: Start from a pretrained MobileFaceNet-class ONNX model (asset name or path; see train/warmstart.py).
    warm_start: str | None = None
    #: Keep BatchNorm running statistics fixed (use with warm_start: the folded statistics stay valid).
    freeze_bn: bool = False
    #: activation relu or prelu1 only: start from per-channel PReLU slopes (init_from or warm_start) and fade them
    #: linearly to 0 (relu) or to each layer's mean slope (prelu1) over this many steps (train/students/fade.py);
    #: 0 = off.
    fade_prelu_steps: int = 0
    #: Keep every PReLU slope at its starting value (``init_from`` / ``warm_start``): continuing a faded prelu1
    #: student this way keeps its snapped-to-0 layers exact ReLUs, which int8 export needs (train/students/fade.py).
    freeze_slopes: bool = False
    #: activation prelu1 only: activation modules (e.g. "stage8.1.0.block.0.2") that keep per-channel slopes
    #: (float islands in int8 TFLite; bench/slope_sensitivity.py measures which layers need them).
    channel_slopes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.fade_prelu_steps < 0:
            raise ConfigError(f"student.fade_prelu_steps must be ≥ 0, got {self.fade_prelu_steps}")
        if self.channel_slopes and self.activation != "prelu1":
            raise ConfigError(
                f"student.channel_slopes are per-channel exceptions in a prelu1 student; activation is "
                f"{self.activation!r}"
            )
        if self.fade_prelu_steps and self.activation not in ("relu", "prelu1"):
            raise ConfigError(
                f"student.fade_prelu_steps turns PReLU slopes into ReLU or one slope per layer: it needs activation "
                f"relu or prelu1, got {self.activation!r}"
            )

    def build_args(self) -> dict[str, Any]:
        """The ``build_student`` keyword arguments (everything but ``warm_start``; ``channel_slopes`` if any)."""
        args: dict[str, Any] = {
            "arch": self.arch,
            "embedding_size": self.embedding_size,
            "width": self.width,
            "activation": self.activation,
        }
        if self.channel_slopes:
            args["channel_slopes"] = list(self.channel_slopes)
        return args


@dataclass
class TeacherConfig:
    """A teacher: black box (a cached runtime embedder) or white box (a torch module from an ONNX file)."""

    name: str
    asset: str = "faceplugin"  # runtime asset name, or a path to an .onnx file (white box)
    kind: Literal["blackbox", "whitebox"] = "blackbox"
    weight: float = 1.0
    features: list[str] = field(default_factory=list)  # white box: graph node names exposed as features
    #: black box: the target of a view. ``view``: the teacher's embedding of that view (the crop, or its mirror
    #: when the view is mirrored); ``flip_mean``: the normalised mean of the crop's and the mirror's embeddings for
    #: either view, i.e. the student learns from one view what the teacher gives with test-time flip.
    target: Literal["view", "flip_mean"] = "view"


@dataclass
class LossConfig:
    """One weighted term of the objective; ``params`` go to the loss constructor."""

    kind: str
    weight: float = 1.0
    teachers: list[str] = field(default_factory=list)  # teacher names it uses (empty: all)
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimConfig:
    """SGD (momentum, optional Nesterov) or AdamW."""

    name: Literal["sgd", "adamw"] = "sgd"
    lr: float = 0.1
    weight_decay: float = 5e-4
    momentum: float = 0.9
    nesterov: bool = False
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float | None = None  # max global gradient norm


@dataclass
class ScheduleConfig:
    """Linear warm-up from ``warmup_start`` × lr, then cosine down to ``min_lr`` × lr."""

    warmup: float = 0.03  # < 1: fraction of the total steps; ≥ 1: a number of steps
    warmup_start: float = 0.01
    min_lr: float = 0.0


@dataclass
class EvalConfig:
    """Periodic LFW evaluation through the runtime harness on aligned LFW crops."""

    period: int = 0  # steps between evaluations (0: never during training)
    at_end: bool = False
    lfw_aligned: str | None = None  # folder written by `shrinkface data align` for LFW
    pairs: str = "${SHRINKFACE_DATA}/lfw/pairs.txt"
    max_pairs: int | None = 600  # evaluate on an evenly spread subset (None: all 6000)
    flip: bool = True
    batch_size: int = 64
    tar_far: float | None = None  # also report TAR at this FAR, all-vs-all over the evaluated images


@dataclass
class CheckpointConfig:
    """Atomic checkpoints every ``period`` steps (and at the end); the ``keep`` newest numbered ones stay."""

    period: int = 500
    keep: int = 2


@dataclass
class TrainConfig:
    """A whole experiment."""

    name: str
    data: DataConfig = field(default_factory=DataConfig)
    student: StudentConfig = field(default_factory=StudentConfig)
    teachers: list[TeacherConfig] = field(default_factory=list)
    losses: dict[str, LossConfig] = field(default_factory=dict)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    steps: int | None = None  # total optimiser steps; or
    epochs: float | None = None  # passes over the training set
    batch_size: int = 128  # global batch (split across DDP processes)
    seed: int = 0
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    threads: int | None = None  # torch intra-op threads (None: torch's default)
    channels_last: bool = True
    amp: bool = False  # bf16 autocast (CUDA; on CPU only where it helps)
    init_from: str | None = None  # a checkpoint whose student (and same-named objective) weights start this run
    init_map: dict[str, str] = field(default_factory=dict)  # objective key ← key in init_from's objective
    output_dir: str = "runs"  # the run folder is <output_dir>/<name>
    cache_dir: str | None = None  # teacher cache and crop packs (default: $SHRINKFACE_CACHE)
    log_period: int = 10
    eval: EvalConfig = field(default_factory=EvalConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)

    def __post_init__(self) -> None:
        problems = []
        if (self.steps is None) == (self.epochs is None):
            problems.append("give exactly one of `steps` and `epochs`")
        if (self.steps is not None and self.steps <= 0) or (self.epochs is not None and self.epochs <= 0):
            problems.append("`steps`/`epochs` must be positive")
        if self.batch_size <= 0:
            problems.append("`batch_size` must be positive")
        if not self.losses:
            problems.append("no loss terms in `losses`")
        names = [t.name for t in self.teachers]
        if len(set(names)) != len(names):
            problems.append(f"teacher names must be unique, got {names}")
        for t in self.teachers:
            if t.target == "flip_mean" and t.kind != "blackbox":
                problems.append(f"teacher {t.name}: target flip_mean needs a blackbox (cached) teacher")
        for key, loss in self.losses.items():
            unknown = sorted(set(loss.teachers) - set(names))
            if unknown:
                problems.append(f"losses.{key}.teachers names unknown teachers {unknown} (have {names})")
        if not self.data.sources:
            problems.append("data.sources is empty")
        if self.student.fade_prelu_steps and not (self.init_from or self.student.warm_start):
            problems.append("student.fade_prelu_steps needs PReLU slopes to fade: set init_from or student.warm_start")
        if self.student.fade_prelu_steps and self.steps is not None and self.student.fade_prelu_steps > self.steps:
            problems.append(f"student.fade_prelu_steps {self.student.fade_prelu_steps} > steps {self.steps}")
        if problems:
            raise ConfigError(f"config {self.name!r}: " + "; ".join(problems))

    @property
    def run_dir(self) -> Path:
        """``<output_dir>/<name>``."""
        return expand_path(self.output_dir) / self.name


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """Read a YAML experiment (safe_load), apply ``key=value`` overrides, return the checked config."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    raw.setdefault("name", path.stem)
    for assignment in overrides:
        apply_override(raw, assignment, TrainConfig)
    return from_dict(TrainConfig, raw)


def config_from_dict(raw: dict[str, Any], overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """Like ``load_config`` for an in-memory mapping (copied first)."""
    raw = yaml.safe_load(yaml.safe_dump(raw))
    for assignment in overrides:
        apply_override(raw, assignment, TrainConfig)
    return from_dict(TrainConfig, raw)


def dump_config(cfg: TrainConfig) -> str:
    """The resolved config as YAML text."""
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)
