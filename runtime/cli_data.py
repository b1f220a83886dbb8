"""``shrinkface data align SRC DST``: detect, align and crop a folder of face images (resumable)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from shrinkface.runtime import dataset

console = Console(stderr=True)


def register(app: typer.Typer) -> None:
    """Add the ``data`` command group to ``app``."""
    group = typer.Typer(help="Prepare face data: aligned crops and their manifest.")
    app.add_typer(group, name="data")

    @group.command("align")
    def align(
        src: Annotated[Path, typer.Argument(help="Images: <Name>/*.jpg (LFW) or flat.")],
        dst: Annotated[Path, typer.Argument(help="Output: .png crops + manifest.jsonl.")],
        pad: Annotated[
            float,
            typer.Option(help="Border per side before detection (UTKFace: 0.25)."),
        ] = 0.0,
        workers: Annotated[int, typer.Option(help="Worker processes (0: in this process).")] = 2,
        score: Annotated[float, typer.Option(help="YuNet score threshold.")] = 0.6,
        policy: Annotated[
            str,
            typer.Option(help="Face to use: central (default; datasets centre their subject), largest or single."),
        ] = "central",
        size: Annotated[int, typer.Option(help="Crop size (template scaled).")] = 112,
        retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Redo failed ones.")] = False,
        quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
    ) -> None:
        """Align every image under SRC (YuNet + 5-point ArcFace template); skips images already done."""
        settings = dataset.AlignSettings(size=size, pad=pad, score=score, policy=policy)  # type: ignore[arg-type]
        summary = dataset.align_folder(
            src, dst, settings, workers=workers, retry_failed=retry_failed, progress=not quiet
        )
        done = summary.ok + summary.failed
        rate = f", {done / summary.seconds:.1f} img/s" if done and summary.seconds > 0 else ""
        colour = "red" if summary.failed else "green"
        console.print(
            f"{summary.total} images: {summary.skipped} already done, {summary.ok} aligned, "
            f"[{colour}]{summary.failed} failed[/{colour}] in {summary.seconds:.1f} s{rate}"
        )
        if summary.failures:
            table = Table("error", "images")
            for error, count in summary.failures.most_common():
                table.add_row(error, str(count))
            console.print(table)
            console.print(f'reasons per image: {dst / dataset.MANIFEST} (status "failed")')
