"""``shrinkface export`` and ``shrinkface parity`` (``shrinkface bench models`` is torch-free: runtime/cli_bench.py).

    shrinkface export CHECKPOINT --formats onnx,tflite --quant float,int8 [--qat/--ptq] [--calib DIR]
                      [--out DIR]
    shrinkface parity FLOAT_CHECKPOINT ARTIFACT… [--aligned DIR] [--max-pairs N] [--out DIR] [--golden DIR]

Every option is checked against the format table (``formats.py``): one that the chosen formats or quantisation
do not take is an error (exit 2), not silently ignored. A failed parity gate exits with code 6.
"""

from __future__ import annotations

import importlib.util
import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from shrinkface.export.formats import ExportConfigError, describe_formats

console = Console(stderr=True)

# Without the export extra, fail at import: runtime/cli.py then shows `shrinkface export` as "not installed".
for _needed in ("torch", "torchao", "litert_torch"):
    if importlib.util.find_spec(_needed) is None:
        raise ModuleNotFoundError(f"No module named {_needed!r}", name=_needed)

#: Four LFW images for golden vectors: a same-person pair and two other people (pairs.txt fold 1).
GOLDEN_IMAGES = (
    "Abel_Pacheco/Abel_Pacheco_0001.jpg",
    "Abel_Pacheco/Abel_Pacheco_0004.jpg",
    "Jong_Thae_Hwa/Jong_Thae_Hwa_0002.jpg",
    "Akhmed_Zakayev/Akhmed_Zakayev_0002.jpg",
)


def _threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


def register(app: typer.Typer) -> None:
    """Add ``export`` and ``parity`` to the main app."""

    @app.command("export", help="Export a student checkpoint to ONNX/TFLite, float and int8.\n\n" + describe_formats())
    def export(
        checkpoint: Annotated[Path, typer.Argument(help="Student checkpoint (student.pt / last.pt).")],
        formats: Annotated[
            str, typer.Option("--formats", help="onnx, tflite or both (comma-separated).")
        ] = "onnx,tflite",
        quant: Annotated[str, typer.Option("--quant", help="float, int8 or both (comma-separated).")] = "float,int8",
        qat: Annotated[bool | None, typer.Option("--qat/--ptq", help="int8 by QAT (falls back to PTQ) or PTQ.")] = None,
        calib: Annotated[
            Path | None,
            typer.Option("--calib", help="Aligned training faces (never LFW); default glint-celeb6."),
        ] = None,
        out: Annotated[
            Path | None, typer.Option("--out", help="Output folder (default artifacts/<checkpoint stem>).")
        ] = None,
        layout: Annotated[
            str | None, typer.Option("--layout", help="Input layout: TFLite NHWC (default) or NCHW.")
        ] = None,
        opset: Annotated[int | None, typer.Option("--opset", help="ONNX opset (18–21, default 20).")] = None,
        calib_size: Annotated[int | None, typer.Option("--calib-size", help="Calibration faces (default 256).")] = None,
        onnx_int8: Annotated[
            str | None, typer.Option("--onnx-int8", help="ONNX int8 from pt2e (default) or ort (quantize_static).")
        ] = None,
        qat_steps: Annotated[int | None, typer.Option("--qat-steps", help="QAT steps (default 300).")] = None,
        qat_batch: Annotated[int | None, typer.Option("--qat-batch", help="QAT batch (default 32).")] = None,
        qat_lr: Annotated[float | None, typer.Option("--qat-lr", help="QAT learning rate (default 1e-5).")] = None,
        float_modules: Annotated[
            str | None,
            typer.Option(
                "--float-modules",
                help="Student modules kept float in the int8 files (e.g. stem,head.gdc; depthwise = every "
                "depthwise conv block, depthwise-prelu = those with a per-channel PReLU).",
            ),
        ] = None,
        equalise: Annotated[
            bool, typer.Option("--equalise/--no-equalise", help="Activation equalisation before int8.")
        ] = True,
        stem: Annotated[str | None, typer.Option("--stem", help="File name stem (default: checkpoint stem).")] = None,
        threads: Annotated[
            int | None,
            typer.Option(
                "--threads",
                help="torch threads (default 1: int8 calibration ranges depend on the float summation order, "
                "so the files are byte-identical across machines only at the same thread count).",
            ),
        ] = 1,
    ) -> None:
        """Export CHECKPOINT; writes the files, with the model card inside each, and export.json."""
        from shrinkface.export.exporter import export_checkpoint
        from shrinkface.export.formats import plan_exports

        _threads(threads)
        options = {
            "opset": opset,
            "calib_size": calib_size,
            "onnx_int8": onnx_int8,
            "qat_steps": qat_steps,
            "qat_batch": qat_batch,
            "qat_lr": qat_lr,
            "float_modules": float_modules,
        }
        targets = plan_exports(formats, quant, "qat" if qat else "ptq", layout, options)
        has_int8 = any(t.quant == "int8" for t in targets)
        if not has_int8 and (qat is not None or calib is not None or not equalise):
            raise ExportConfigError(
                "--qat/--ptq, --calib and --no-equalise only apply to int8 exports (add --quant int8)"
            )
        out_dir = out or Path("artifacts") / checkpoint.stem
        result = export_checkpoint(
            checkpoint,
            out_dir,
            targets,
            calib_dir=calib,
            stem=stem,
            equalise=equalise,
            say=lambda msg: console.print(msg, markup=False, highlight=False, soft_wrap=True),
        )
        for art in result.artifacts:
            typer.echo(f"{art.path}\t{art.size}\t{art.sha256}")
        console.print(f"[green]log[/green]: {result.log_path}")

    @app.command("parity")
    def parity(
        checkpoint: Annotated[Path, typer.Argument(help="The float student checkpoint the files came from.")],
        artifacts: Annotated[list[Path], typer.Argument(help="Exported .onnx/.tflite files.")],
        aligned: Annotated[
            Path | None, typer.Option("--aligned", help="Aligned LFW (default CACHE/aligned/lfw).")
        ] = None,
        pairs: Annotated[Path | None, typer.Option("--pairs", help="pairs.txt (default DATA/lfw/pairs.txt).")] = None,
        max_pairs: Annotated[int | None, typer.Option("--max-pairs", help="An even subset of the 6000 pairs.")] = None,
        out: Annotated[
            Path | None, typer.Option("--out", help="Report folder (default: next to the first file).")
        ] = None,
        gate: Annotated[bool, typer.Option("--gate/--no-gate", help="Exit 6 when a parity gate fails.")] = True,
        golden: Annotated[
            Path | None, typer.Option("--golden", help="Also write golden vectors into this folder.")
        ] = None,
        threads: Annotated[int | None, typer.Option("--threads", help="torch threads.")] = None,
    ) -> None:
        """Per-image cosine, decision agreement, LFW accuracy and TAR@FAR=1e-4 of each file vs float torch."""
        from shrinkface.export.checkpoint import load_student_checkpoint
        from shrinkface.export.parity import (
            ParityGateError,
            gate_failures,
            load_lfw_crops,
            parity_report,
            write_parity,
        )
        from shrinkface.runtime.config import cache_dir, data_dir

        _threads(threads)
        model, card = load_student_checkpoint(checkpoint)
        aligned_dir = aligned or cache_dir() / "aligned" / "lfw"
        lfw_pairs, keys, crops = load_lfw_crops(aligned_dir, pairs or data_dir() / "lfw" / "pairs.txt", max_pairs)
        report, cosines = parity_report(model, card, artifacts, lfw_pairs, keys, crops, progress=sys.stderr.isatty())
        report["settings"] = {
            "command": "shrinkface " + shlex.join(sys.argv[1:]),
            "checkpoint": str(checkpoint),
            "aligned": str(aligned_dir),
            "max_pairs": max_pairs,
        }
        paths = write_parity(report, cosines, out or artifacts[0].parent / "parity")
        typer.echo(paths["markdown"].read_text())
        if golden is not None:
            from shrinkface.export.golden import write_golden

            files = write_golden(GOLDEN_IMAGES, data_dir() / "lfw" / "images", model, card, artifacts, golden)
            console.print(f"[green]golden vectors[/green]: {', '.join(str(f) for f in files)}")
        failures = gate_failures(report)
        if failures and gate:
            raise ParityGateError("parity gate failed:\n  " + "\n  ".join(failures))
