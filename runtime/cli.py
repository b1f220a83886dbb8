"""The ``shrinkface`` command line.

Device-side commands live in ``runtime/cli_*.py`` modules, each with a ``register(app)`` function. The training
and export commands are added only when their extras (and torch) are installed, so a Raspberry Pi with
``shrinkface[runtime]`` gets a working CLI and a clear message for ``shrinkface train``.
"""

from __future__ import annotations

import importlib
import sys

import typer
from rich.console import Console
from rich.text import Text

from shrinkface.runtime.errors import ExitCode, ShrinkfaceError

app = typer.Typer(
    name="shrinkface",
    help="Face recognition from a big teacher to a phone or a Raspberry Pi.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)

#: Modules that add commands; runtime ones always load, the others only with their extras.
RUNTIME_COMMANDS = [
    "shrinkface.runtime.cli_assets",
    "shrinkface.runtime.cli_bench",
    "shrinkface.runtime.cli_data",
    "shrinkface.runtime.cli_unlock",
    "shrinkface.runtime.cli_eval",
]
OPTIONAL_COMMANDS = {
    "shrinkface.train.cli": ("train", "pip install 'shrinkface[train]'"),
    "shrinkface.export.cli": ("export", "pip install 'shrinkface[export]'"),
}


def _register_all() -> None:
    for module in RUNTIME_COMMANDS:
        importlib.import_module(module).register(app)
    for module, (name, how) in OPTIONAL_COMMANDS.items():
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if not (exc.name or "").startswith(("torch", "torchao", "litert_torch", "onnx2torch", "yaml", module)):
                raise

            def missing(how: str = how, name: str = name, why: str = str(exc)) -> None:
                err.print(f"`shrinkface {name}` needs the {name} extra ({why}): {how}", markup=False)
                raise typer.Exit(ExitCode.ERROR)

            app.command(name, help=f"(not installed: {how})", add_help_option=False)(missing)
            continue
        mod.register(app)


def main() -> None:
    """Console-script entry point: run the app, turning ShrinkfaceError into its exit code."""
    _register_all()
    try:
        code = app(standalone_mode=False)  # with standalone_mode=False click returns typer.Exit's code
        if isinstance(code, int) and code:
            sys.exit(code)
    except ShrinkfaceError as exc:
        # one unbroken line (rich would wrap at 80 columns when stderr is not a terminal, splitting paths and
        # messages that scripts grep for), and the message as plain text: a path may hold "[...]"
        err.print(Text.assemble(("error:", "red"), " ", str(exc)), soft_wrap=True)
        sys.exit(int(exc.exit_code))
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        err.print("aborted")
        sys.exit(int(ExitCode.ERROR))
    except Exception as exc:  # click usage errors (typer vendors click as typer._click: duck-typed)
        show, code = getattr(exc, "show", None), getattr(exc, "exit_code", None)
        if callable(show) and isinstance(code, int):
            show()
            sys.exit(code)
        raise
