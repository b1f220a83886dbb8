"""``shrinkface bench runtime|models``: latency benchmarks that write JSON and markdown (torch-free).

shrinkface bench runtime [-m MODEL]… [--runs N] [--out DIR]
shrinkface bench models ARTIFACT… [--threads 1,4] [--runs N] [--crops DIR] [--out DIR]
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console()


def _lfw_sample(data_dir: Path | None, count: int) -> list[Path]:
    """``count`` LFW images spread over the alphabet (real photographs, 250×250)."""
    from shrinkface.runtime.config import data_dir as resolve_data_dir

    images = sorted((resolve_data_dir(data_dir) / "lfw" / "images").glob("*/*.jpg"))
    step = max(1, len(images) // count)
    return images[::step][:count]


def register(app: typer.Typer) -> None:
    """Add the ``bench`` command group to ``app``."""
    group = typer.Typer(help="Latency benchmarks (JSON + markdown).", no_args_is_help=True)
    app.add_typer(group, name="bench")

    @group.command("runtime")
    def runtime(
        models: Annotated[
            list[str] | None, typer.Option("--model", "-m", help="Model file or asset (repeatable).")
        ] = None,
        runs: Annotated[int, typer.Option(help="Timed runs per stage (≥ 100).")] = 100,
        images: Annotated[int, typer.Option(help="LFW images to cycle over.")] = 20,
        data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Face-data root.")] = None,
        out: Annotated[Path, typer.Option("--out", help="Report folder.")] = Path("bench-runtime"),
    ) -> None:
        """Median per-stage latency (decode, detect, align, embed), one thread, for each model."""
        from shrinkface.runtime.assets import asset_path
        from shrinkface.runtime.bench_runtime import bench_runtime, render_markdown

        specs = models or ["sface", "expo_mobilefacenet", "faceplugin"]
        report = bench_runtime(specs, _lfw_sample(data_dir, images), asset_path("yunet"), runs=runs)
        out.mkdir(parents=True, exist_ok=True)
        (out / "bench_runtime.json").write_text(json.dumps(report, indent=1) + "\n")
        markdown = render_markdown(report)
        (out / "bench_runtime.md").write_text(markdown)
        console.print(markdown)

    @group.command("models")
    def models(
        artifacts: Annotated[list[Path], typer.Argument(help="Exported .onnx/.tflite files.")],
        threads: Annotated[str, typer.Option("--threads", help="Thread counts, comma-separated.")] = "1",
        runs: Annotated[int, typer.Option("--runs", help="Timed runs per file.")] = 200,
        warmup: Annotated[int, typer.Option("--warmup", help="Untimed runs first.")] = 20,
        crops_dir: Annotated[
            Path | None, typer.Option("--crops", help="Aligned training crops, never LFW (default glint-celeb6).")
        ] = None,
        out: Annotated[Path | None, typer.Option("--out", help="Write bench.json and bench.md here.")] = None,
    ) -> None:
        """Batch-1 latency (median of RUNS) per stage, preprocess, invoke and embed, plus each file's size."""
        from shrinkface.runtime.aligned_crops import default_crops_dir, load_aligned_crops
        from shrinkface.runtime.bench_models import bench_models, render_markdown
        from shrinkface.runtime.embed import load_embedder

        counts = [int(t) for t in threads.split(",") if t.strip()]
        card = load_embedder(artifacts[0]).card
        crops, _ = load_aligned_crops(crops_dir or default_crops_dir(), 32, card)
        report = bench_models(artifacts, crops, counts, runs, warmup)
        text = render_markdown(report)
        typer.echo(text)
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            (out / "bench.json").write_text(json.dumps(report, indent=1) + "\n")
            (out / "bench.md").write_text(text)
