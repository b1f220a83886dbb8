"""runtime/ is what a phone-side or Pi install runs: it must never pull in torch, train/ or export/."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import shrinkface.runtime


def test_runtime_imports_no_torch_nor_train_or_export() -> None:
    modules = [f"shrinkface.runtime.{m.name}" for m in pkgutil.iter_modules(shrinkface.runtime.__path__)]
    assert len(modules) > 10, modules
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "bad = sorted(n for n in sys.modules if n.split('.')[0] in ('torch', 'torchao', 'litert_torch')"
        " or n.startswith(('shrinkface.train', 'shrinkface.export')))\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"runtime pulled in: {result.stdout} {result.stderr[-2000:]}"


def test_cli_loads_without_train_extra() -> None:
    """The Pi CLI: `shrinkface --help` works and lists the runtime commands."""
    result = subprocess.run([sys.executable, "-m", "shrinkface", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for command in ("assets", "data", "eval", "enroll", "unlock", "identify", "gallery"):
        assert command in result.stdout, command
