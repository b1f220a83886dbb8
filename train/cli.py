"""``shrinkface train``: run an experiment, or fill its teacher cache.

    shrinkface train CONFIG [--set key=value ...] [--device cpu|cuda|auto] [--resume]
    shrinkface train cache CONFIG [--set key=value ...] [--processes N]

``train CONFIG`` is short for ``train run CONFIG``. Under torchrun the same command trains with DDP:
``torchrun --nproc_per_node 2 -m shrinkface.train.cli CONFIG``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import click
import typer
from rich.console import Console
from typer.core import TyperGroup

console = Console()


class _DefaultRun(TyperGroup):
    """A group whose unknown first word is the CONFIG of the default ``run`` command."""

    def resolve_command(self, ctx: click.Context, args: list[str]):  # type: ignore[no-untyped-def]
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            return "run", self.commands["run"], args
        return super().resolve_command(ctx, args)


def _load(config: Path, overrides: list[str] | None, device: str | None = None):  # type: ignore[no-untyped-def]
    from shrinkface.train.config import load_config

    sets = list(overrides or [])
    if device:
        sets.append(f"device={device}")
    return load_config(config, sets)


def register(app: typer.Typer) -> None:
    """Add the ``train`` command group to the main app."""
    group = typer.Typer(
        cls=_DefaultRun,
        help="Train a student (`shrinkface train CONFIG`) or fill its cache.",
        no_args_is_help=True,
    )
    app.add_typer(group, name="train")

    @group.command("run")
    def run(
        config: Annotated[Path, typer.Argument(help="Experiment YAML (configs/*.yaml).")],
        overrides: Annotated[list[str] | None, typer.Option("--set", help="Override a key: optim.lr=0.01")] = None,
        device: Annotated[str | None, typer.Option(help="cpu, cuda or auto (overrides the config).")] = None,
        resume: Annotated[bool, typer.Option(help="Continue the run from its last checkpoint.")] = False,
        stop_at: Annotated[int | None, typer.Option(help="Pause (checkpoint and exit) at this step.")] = None,
        time_limit: Annotated[float | None, typer.Option(help="Pause after this many minutes.")] = None,
        quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
    ) -> None:
        """Train (or resume) the experiment CONFIG."""
        from shrinkface.train.trainer import train

        cfg = _load(config, overrides, device)
        result = train(
            cfg,
            resume=resume,
            argv=["shrinkface", *sys.argv[1:]],
            progress=not quiet,
            stop_at=stop_at,
            time_limit=time_limit * 60 if time_limit else None,
        )
        summary = {"run_dir": str(result.run_dir), "step": result.step, "last_eval": result.last_eval}
        console.print_json(json.dumps(summary))

    @group.command("cache")
    def cache(
        config: Annotated[Path, typer.Argument(help="Experiment YAML.")],
        overrides: Annotated[list[str] | None, typer.Option("--set", help="Override a config key.")] = None,
        processes: Annotated[int | None, typer.Option(help="Worker processes (default data.cache_processes).")] = None,
    ) -> None:
        """Pack the training crops and embed them (and their mirrors) with every teacher; resumable."""
        from shrinkface.train.prepare import prepare

        sets = list(overrides or []) + ([f"data.cache_processes={processes}"] if processes else [])
        prepared = prepare(_load(config, sets))
        summary = {
            "images": len(prepared.trainset),
            "pack": str(prepared.pack),
            "teachers": {n: t.path for n, t in prepared.targets.items()},
            "report": prepared.trainset.report,
        }
        console.print_json(json.dumps(summary, default=str))

    @group.command("soup")
    def soup(
        out: Annotated[Path, typer.Argument(help="The soup's student.pt.")],
        students: Annotated[list[Path], typer.Argument(help="Students fine-tuned from one checkpoint (≥ 2).")],
        name: Annotated[str, typer.Option(help="The soup's name (its model card's).")] = "soup",
    ) -> None:
        """Average the weights of students fine-tuned from one checkpoint (a uniform model soup)."""
        from shrinkface.train.soup import write_soup

        path = write_soup(students, out, name)
        console.print_json(json.dumps({"soup": str(path), "ingredients": [str(s) for s in students]}))


def main() -> None:
    """``python -m shrinkface.train.cli CONFIG …`` (what torchrun launches): the ``train run`` command."""
    from shrinkface.runtime.cli import main as root_main

    sys.argv = [sys.argv[0], "train", *sys.argv[1:]]
    root_main()


if __name__ == "__main__":
    main()
