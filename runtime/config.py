"""Where shrinkface finds its data and keeps its cache (environment variables, overridable per call)."""

from __future__ import annotations

import os
from pathlib import Path

from shrinkface.runtime.errors import DataError

DATA_ENV = "SHRINKFACE_DATA"
CACHE_ENV = "SHRINKFACE_CACHE"


def data_dir(override: str | Path | None = None) -> Path:
    """The face-data root: ``override``, else ``$SHRINKFACE_DATA``; it must exist."""
    raw = override if override is not None else os.environ.get(DATA_ENV)
    if not raw:
        raise DataError(f"no data directory: pass --data-dir or set {DATA_ENV}")
    path = Path(raw).expanduser()
    if not path.is_dir():
        raise DataError(f"data directory {path} does not exist")
    return path


def cache_dir(override: str | Path | None = None) -> Path:
    """The cache root for assets and derived data: ``override``, ``$SHRINKFACE_CACHE`` or ~/.cache/shrinkface."""
    raw = override if override is not None else os.environ.get(CACHE_ENV)
    path = Path(raw).expanduser() if raw else Path.home() / ".cache" / "shrinkface"
    path.mkdir(parents=True, exist_ok=True)
    return path
