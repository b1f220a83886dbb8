"""Gallery export files: JSON (embeddings as exact float lists) or npz (plain arrays, no pickle).

Every template carries its model's sha256, so an imported template is matched only by the model that made it.
"""

from __future__ import annotations

import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from shrinkface.runtime.errors import GalleryError

EXPORT_FORMAT = "shrinkface-gallery"
EXPORT_SCHEMA = 1


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


_FIELDS = ("name", "person_created", "embedding", "dim", "model_sha256", "created", "quality", "source")


def write_export(path: Path, rows: list[tuple[Any, ...]]) -> None:
    """Rows of ``Gallery.rows()`` → JSON (embeddings as float lists, exact) or npz (no pickled objects)."""
    records = [dict(zip(_FIELDS, r, strict=True)) for r in rows]
    for rec in records:
        rec["embedding"] = np.frombuffer(rec["embedding"], dtype="<f4")
        rec["quality"] = json.loads(rec["quality"] or "{}")
    header = {"format": EXPORT_FORMAT, "schema": EXPORT_SCHEMA, "exported": _now(), "templates": len(records)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    if path.suffix.lower() == ".json":
        for rec in records:
            rec["embedding"] = [float(v) for v in rec["embedding"]]
        tmp.write_text(json.dumps({**header, "records": records}, indent=1))
    elif path.suffix.lower() == ".npz":
        dim_set = {len(r["embedding"]) for r in records}
        width = max(dim_set)
        emb = np.zeros((len(records), width), np.float32)
        for i, rec in enumerate(records):
            emb[i, : len(rec["embedding"])] = rec["embedding"]
        with open(tmp, "wb") as fh:
            np.savez_compressed(
                fh,
                header=np.array(json.dumps(header)),
                embedding=emb,
                **{k: np.array([r[k] for r in records]) for k in ("name", "dim", "model_sha256", "created", "source")},
                person_created=np.array([r["person_created"] for r in records]),
                quality=np.array([json.dumps(r["quality"], sort_keys=True) for r in records]),
            )
    else:
        raise GalleryError(f"{path}: export to .json or .npz")
    tmp.replace(path)


def read_export(path: Path) -> list[dict[str, Any]]:
    """Read and shape-check an export written by ``write_export``; anything else is a ``GalleryError``."""
    if not path.is_file():
        raise GalleryError(f"{path}: no such file to import")
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(path.read_text())
            header, records = data, data.get("records") if isinstance(data, dict) else None
        elif path.suffix.lower() == ".npz":
            with np.load(path, allow_pickle=False) as npz:
                header = json.loads(str(npz["header"]))
                n = int(header.get("templates", -1))
                cols = {
                    k: npz[k] for k in ("name", "dim", "model_sha256", "created", "source", "quality", "person_created")
                }
                emb = npz["embedding"]
            records = [
                {
                    "name": str(cols["name"][i]),
                    "dim": int(cols["dim"][i]),
                    "embedding": emb[i, : int(cols["dim"][i])],
                    "model_sha256": str(cols["model_sha256"][i]),
                    "created": str(cols["created"][i]),
                    "source": str(cols["source"][i]),
                    "quality": json.loads(str(cols["quality"][i])),
                    "person_created": str(cols["person_created"][i]),
                }
                for i in range(n)
            ]
        else:
            raise GalleryError(f"{path}: import a .json or .npz gallery export")
    except (ValueError, KeyError, IndexError, OSError, TypeError, EOFError, zipfile.BadZipFile) as exc:
        raise GalleryError(f"{path} is not a readable shrinkface gallery export: {exc}") from exc
    if not isinstance(header, dict) or header.get("format") != EXPORT_FORMAT:
        raise GalleryError(f"{path} is not a shrinkface gallery export (format tag missing)")
    if int(header.get("schema", 0)) > EXPORT_SCHEMA:
        raise GalleryError(f"{path} was exported with gallery schema {header['schema']}; upgrade shrinkface")
    if not isinstance(records, list) or not records or not all(isinstance(r, dict) for r in records):
        raise GalleryError(f"{path} holds no templates")
    missing = [k for k in ("name", "embedding", "dim", "model_sha256") if any(k not in r for r in records)]
    if missing:
        raise GalleryError(f"{path}: templates lack the fields {missing}")
    return records
