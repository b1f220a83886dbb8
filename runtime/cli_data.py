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

    @group.command("recode")
    def recode(
        src: Annotated[Path, typer.Argument(help="An aligned folder (`shrinkface data align` output).")],
        dst: Annotated[Path, typer.Argument(help="New aligned folder with re-encoded crops.")],
        fmt: Annotated[str, typer.Option("--format", help="webp or jpg.")] = "webp",
        quality: Annotated[int, typer.Option(help="Encoder quality 1–100.")] = 90,
        exclude_pairs: Annotated[
            Path | None,
            typer.Option(help="Drop the identities of this LFW pairs file (training excludes them anyway)."),
        ] = None,
        quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
    ) -> None:
        """Re-encode an aligned folder compactly (WebP q90: ~9× smaller) to move a training set to another machine."""
        from shrinkface.runtime import lfw
        from shrinkface.runtime.recode import recode_aligned

        exclude = lfw.pair_identities(lfw.parse_pairs(exclude_pairs)) if exclude_pairs else set()
        s = recode_aligned(src, dst, fmt, quality, exclude, progress=not quiet)
        ratio = s.bytes_in / s.bytes_out if s.bytes_out else 0.0
        console.print(
            f"{s.recoded} crops re-encoded ({s.bytes_in / 1e6:.1f} MB → {s.bytes_out / 1e6:.1f} MB, {ratio:.1f}×; "
            f"mean |error| {s.mean_abs_error} grey levels, max {s.max_abs_error}), {s.failed_kept} failed records "
            f"kept, {s.excluded} excluded"
        )
