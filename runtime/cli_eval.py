"""``shrinkface eval lfw``: the LFW 10-fold protocol and all-vs-all TAR@FAR for one model or an ensemble."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console()


def register(app: typer.Typer) -> None:
    """Add the ``eval`` command group to ``app``."""
    group = typer.Typer(help="Evaluate face embedders (LFW protocol, TAR@FAR, ROC).", no_args_is_help=True)
    app.add_typer(group, name="eval")

    @group.command("lfw")
    def lfw_cmd(
        model: Annotated[
            list[str],
            typer.Option(
                "--model",
                "-m",
                help="Model file (.onnx/.tflite, with a card) or asset name; repeat for an ensemble.",
            ),
        ],
        flip: Annotated[
            bool | None,
            typer.Option("--flip/--no-flip", help="Add the mirrored crop's embedding (default: the card's)."),
        ] = None,
        aligned: Annotated[
            Path | None,
            typer.Option(help="Aligned LFW folder from `shrinkface data align` (default: CACHE/aligned/lfw)."),
        ] = None,
        out: Annotated[Path, typer.Option(help="Report folder: lfw.json, lfw.md, lfw_roc.png.")] = Path("eval-lfw"),
        data_dir: Annotated[
            Path | None, typer.Option(help="Face-data root holding lfw/ (default: $SHRINKFACE_DATA).")
        ] = None,
        all_vs_all: Annotated[
            bool,
            typer.Option("--all-vs-all/--pairs-only", help="Also score every pair of the 13,233 images."),
        ] = True,
        far: Annotated[
            list[float] | None, typer.Option(help="FAR targets (repeatable; default 1e-3 1e-4 1e-5).")
        ] = None,
        workers: Annotated[int, typer.Option(help="Embedding processes (0: two when the model is slow).")] = 0,
        cache: Annotated[bool, typer.Option("--cache/--no-cache", help="Keep and reuse the embeddings.")] = True,
        cache_dir_: Annotated[
            Path | None,
            typer.Option("--cache-dir", help="Where cached embeddings live (default: CACHE/embeddings/lfw)."),
        ] = None,
    ) -> None:
        """LFW View-2 10-fold accuracy (mean ± std), AUC/EER and all-vs-all TAR@FAR → JSON, markdown, PNG."""
        from shrinkface.runtime.config import cache_dir
        from shrinkface.runtime.config import data_dir as resolve_data_dir
        from shrinkface.runtime.lfw_eval import evaluate_lfw
        from shrinkface.runtime.report import render_markdown, write_report

        lfw_dir = resolve_data_dir(data_dir) / "lfw"
        aligned_dir = aligned if aligned is not None else cache_dir() / "aligned" / "lfw"
        report = evaluate_lfw(
            model,
            lfw_dir,
            aligned_dir,
            flip=flip,
            all_vs_all=all_vs_all,
            fars=far or (1e-3, 1e-4, 1e-5),
            workers=workers or None,
            cache=(cache_dir_ or cache_dir() / "embeddings" / "lfw") if cache else None,
            progress=sys.stderr.isatty(),
        )
        if Path(sys.argv[0]).name == "shrinkface":
            report["settings"]["command"] = "shrinkface " + shlex.join(sys.argv[1:])
        paths = write_report(report, out)
        typer.echo(render_markdown(report))
        n_failed = len(report["failed_images"])
        if n_failed:
            console.print(f"[yellow]{n_failed} images had no aligned face; see {paths['json']}[/yellow]")
        for kind, path in paths.items():
            console.print(f"[green]wrote[/green] {kind}: {path}")
