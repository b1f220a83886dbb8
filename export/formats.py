"""What each export format supports, and the validation of an export request against it.

``FORMATS`` is the one table: format → file suffix, quantisation modes, int8 methods, input layouts and the
format-specific options with their defaults. ``plan_exports`` turns a request (formats × quant modes, method,
options) into ``ExportTarget`` rows and refuses anything the table does not list: an option that a chosen
format does not take, an int8 method for a float-only request, a layout a format cannot give, … Each refusal
is an ``ExportConfigError`` (exit code 2) that says what is allowed.

int8 methods: ``ptq`` (post-training quantisation: calibration on real aligned faces only) and ``qat``
(quantisation-aware fine-tuning with torchao PT2E; falls back to PTQ if QAT fails, and the report says so).
Both formats' int8 files come from the same PT2E-converted graph (one quantisation per request): TFLite with
int8 input and output (a per-channel PReLU and the residual adds run in float inside, see ``litert_prelu.py``;
a one-slope PReLU is an int8 ``LEAKY_RELU``, ``leaky.py``), ONNX as QDQ
(float32 input and output). ONNX can instead use
onnxruntime's ``quantize_static`` on the float ONNX (``onnx_int8=ort``: QDQ, per-channel, S8S8, MinMax; PTQ
only); on a warm-started MobileFaceNet it gave cosine 0.986 to the float model where PT2E gave 0.992.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from shrinkface.runtime.errors import ExitCode, ShrinkfaceError

FormatName = Literal["onnx", "tflite"]
QuantMode = Literal["float", "int8"]
Int8Method = Literal["ptq", "qat"]


class ExportConfigError(ShrinkfaceError, ValueError):
    """An export request names something the format table does not support."""

    exit_code = ExitCode.USAGE


class ExportError(ShrinkfaceError):
    """A conversion step failed or produced a model that does not run."""

    exit_code = ExitCode.MODEL


@dataclass(frozen=True)
class OptionSpec:
    """One format-specific option: its type, default and allowed values (or inclusive range)."""

    kind: type
    default: Any
    choices: tuple[Any, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    help: str = ""
    int8_only: bool = False  # only meaningful when the format is exported as int8

    def check(self, name: str, value: Any) -> Any:
        """The value converted to ``kind``, or ``ExportConfigError``."""
        try:
            value = self.kind(value)
        except (TypeError, ValueError) as exc:
            raise ExportConfigError(f"option {name}={value!r} is not a {self.kind.__name__}") from exc
        if self.choices and value not in self.choices:
            raise ExportConfigError(f"option {name}={value!r}: choose one of {', '.join(map(str, self.choices))}")
        if (self.minimum is not None and value < self.minimum) or (self.maximum is not None and value > self.maximum):
            raise ExportConfigError(f"option {name}={value!r} is outside {self.minimum}–{self.maximum}")
        return value


@dataclass(frozen=True)
class FormatSpec:
    """What one format supports."""

    name: FormatName
    suffix: str
    quant_modes: tuple[QuantMode, ...]
    int8_methods: tuple[Int8Method, ...]
    layouts: tuple[str, ...]  # the first is the default
    options: dict[str, OptionSpec] = field(default_factory=dict)
    int8_io: str = ""  # what an int8 file's input/output are


FORMATS: dict[str, FormatSpec] = {
    "onnx": FormatSpec(
        name="onnx",
        suffix=".onnx",
        quant_modes=("float", "int8"),
        int8_methods=("ptq", "qat"),
        layouts=("NCHW",),
        options={
            "opset": OptionSpec(int, 20, minimum=18, maximum=21, help="ONNX opset (torch.onnx dynamo exporter)"),
            "onnx_int8": OptionSpec(
                str,
                "pt2e",
                choices=("pt2e", "ort"),
                int8_only=True,
                help="int8 ONNX from the PT2E graph, or onnxruntime quantize_static (PTQ only)",
            ),
        },
        int8_io="float32 input and output around QDQ int8 operators",
    ),
    "tflite": FormatSpec(
        name="tflite",
        suffix=".tflite",
        quant_modes=("float", "int8"),
        int8_methods=("ptq", "qat"),
        layouts=("NHWC", "NCHW"),
        options={},
        int8_io=(
            "int8 input and int8 output; convs int8 (but --float-modules: e.g. stem,head.gdc,depthwise-prelu); "
            "per-channel PReLU and the residual adds float inside, a one-slope (prelu1) PReLU int8 LEAKY_RELU"
        ),
    ),
}

#: Options that only matter when some target is int8 (calibration and QAT settings).
INT8_OPTIONS: dict[str, OptionSpec] = {
    "calib_size": OptionSpec(int, 256, minimum=8, maximum=20000, help="aligned faces used to calibrate"),
    "float_modules": OptionSpec(
        str,
        "",
        help="comma-separated student modules kept float inside the int8 file (e.g. stem, head.gdc; 'depthwise': "
        "every depthwise conv block, 'depthwise-prelu': those with a per-channel PReLU); I/O stays int8",
    ),
}
QAT_OPTIONS: dict[str, OptionSpec] = {
    "qat_steps": OptionSpec(int, 300, minimum=1, maximum=100000, help="QAT optimiser steps"),
    "qat_batch": OptionSpec(int, 32, minimum=2, maximum=1024, help="QAT batch size"),
    "qat_lr": OptionSpec(float, 1e-5, help="QAT learning rate (Adam)"),
}


@dataclass(frozen=True)
class ExportTarget:
    """One file to write: format, quantisation, int8 method (None for float), layout and options."""

    format: FormatName
    quant: QuantMode
    method: Int8Method | None
    layout: str
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def spec(self) -> FormatSpec:
        """The format's table row."""
        return FORMATS[self.format]

    @property
    def stem_suffix(self) -> str:
        """``float`` or ``int8`` (the method is in the card and the log, not in the file name)."""
        return self.quant

    def filename(self, stem: str) -> str:
        """``<stem>.<quant>.<suffix>`` e.g. ``student.int8.tflite``."""
        return f"{stem}.{self.quant}{self.spec.suffix}"


def _split(value: str | list[str] | tuple[str, ...], what: str) -> list[str]:
    items = value.split(",") if isinstance(value, str) else list(value)
    items = [i.strip().lower() for i in items if i.strip()]
    if not items:
        raise ExportConfigError(f"no {what} given")
    if len(set(items)) != len(items):
        raise ExportConfigError(f"{what} listed twice: {', '.join(items)}")
    return items


def plan_exports(
    formats: str | list[str],
    quants: str | list[str],
    method: str = "ptq",
    layout: str | None = None,
    options: dict[str, Any] | None = None,
) -> list[ExportTarget]:
    """Validate a request against ``FORMATS`` and list the files it makes (format-major order).

    ``options`` holds format options (``opset``) and int8 settings (``calib_size``, ``qat_*``); ``None``
    values are treated as not given. Anything not applicable to the request is an ``ExportConfigError``.
    """
    fmt_names = _split(formats, "formats")
    quant_names = _split(quants, "quantisation modes")
    given = {k: v for k, v in (options or {}).items() if v is not None}
    for name in fmt_names:
        if name not in FORMATS:
            raise ExportConfigError(f"unknown format {name!r}; supported: {', '.join(FORMATS)}")
    for q in quant_names:
        if q not in ("float", "int8"):
            raise ExportConfigError(f"unknown quantisation {q!r}; supported: float, int8")
    method = method.lower()
    if method not in ("ptq", "qat"):
        raise ExportConfigError(f"unknown int8 method {method!r}; supported: ptq, qat")
    wants_int8 = "int8" in quant_names
    for key in given:
        known_fmt = [f for f in fmt_names if key in FORMATS[f].options]
        if key in INT8_OPTIONS or key in QAT_OPTIONS:
            if not wants_int8:
                raise ExportConfigError(f"option {key} only applies to int8 exports (add --quant int8)")
            if key in QAT_OPTIONS and method != "qat":
                raise ExportConfigError(f"option {key} only applies to --qat")
        elif known_fmt and not wants_int8 and all(FORMATS[f].options[key].int8_only for f in known_fmt):
            raise ExportConfigError(f"option {key} only applies to int8 exports (add --quant int8)")
        elif not known_fmt:
            owners = [f for f, s in FORMATS.items() if key in s.options]
            where = f"only {', '.join(owners)} takes it" if owners else "no format takes it"
            raise ExportConfigError(f"option {key} does not apply to {', '.join(fmt_names)}: {where}")
    targets: list[ExportTarget] = []
    for name in fmt_names:
        spec = FORMATS[name]
        chosen_layout = (layout or spec.layouts[0]).upper()
        if chosen_layout not in spec.layouts:
            raise ExportConfigError(f"{name} cannot give a {chosen_layout} input; supported: {', '.join(spec.layouts)}")
        for q in quant_names:
            if q not in spec.quant_modes:
                raise ExportConfigError(f"{name} does not support {q}; supported: {', '.join(spec.quant_modes)}")
            if q == "int8" and method not in spec.int8_methods:
                raise ExportConfigError(f"{name} int8 does not support {method}; supported: {spec.int8_methods}")
            opts = {
                k: s.check(k, given.get(k, s.default))
                for k, s in spec.options.items()
                if q == "int8" or not s.int8_only
            }
            if opts.get("onnx_int8") == "ort" and given.get("float_modules"):
                raise ExportConfigError("onnx_int8=ort quantises every op; float_modules needs the default pt2e")
            if opts.get("onnx_int8") == "ort" and method == "qat":
                raise ExportConfigError("onnx_int8=ort is post-training only; use the default pt2e with --qat")
            if q == "int8":
                opts.update({k: s.check(k, given.get(k, s.default)) for k, s in INT8_OPTIONS.items()})
                if method == "qat":
                    opts.update({k: s.check(k, given.get(k, s.default)) for k, s in QAT_OPTIONS.items()})
            targets.append(ExportTarget(name, q, method if q == "int8" else None, chosen_layout, opts))  # type: ignore[arg-type]
    return targets


def describe_formats() -> str:
    """A human-readable table of ``FORMATS`` (for ``--help`` and the docs)."""
    lines = []
    for spec in FORMATS.values():
        opts = ", ".join(f"{k} (default {s.default})" for k, s in spec.options.items()) or "none"
        lines.append(
            f"{spec.name}: quant {'/'.join(spec.quant_modes)}; int8 by {'/'.join(spec.int8_methods)} "
            f"({spec.int8_io}); layout {'/'.join(spec.layouts)}; options: {opts}"
        )
    return "\n".join(lines)
