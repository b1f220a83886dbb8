"""The enrolment gallery: people and their face templates in an embedded SQLite file.

One file (default ``~/.local/share/shrinkface/gallery.db``) in WAL mode. Every write runs in one
``BEGIN IMMEDIATE … COMMIT`` transaction, so an enrolment interrupted at any point (an exception, Ctrl-C, a
killed process) leaves either all of its templates or none. Each template records the sha256 of the model that
made it; matching only ever uses templates of the current model (a template of another model lives in another
embedding space, and comparing with it would be meaningless).
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from shrinkface.runtime.decide import TemplateSet
from shrinkface.runtime.errors import GalleryError

SCHEMA_VERSION = 1
GALLERY_ENV = "SHRINKFACE_GALLERY"
MAX_NAME_LENGTH = 100
_SHA256 = re.compile(r"^[0-9a-f]{64}$")

_SCHEMA = """
CREATE TABLE schema_version (version INTEGER NOT NULL);
CREATE TABLE people (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created TEXT NOT NULL
);
CREATE TABLE templates (
    id INTEGER PRIMARY KEY,
    person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    embedding BLOB NOT NULL,
    dim INTEGER NOT NULL CHECK (dim > 0),
    model_sha256 TEXT NOT NULL,
    created TEXT NOT NULL,
    quality TEXT NOT NULL DEFAULT '{}',
    source TEXT NOT NULL DEFAULT '',
    CHECK (length(embedding) = 4 * dim)
);
CREATE INDEX templates_by_model ON templates(model_sha256, person_id, id);
"""


def default_gallery_path() -> Path:
    """``$SHRINKFACE_GALLERY``, else ``$XDG_DATA_HOME/shrinkface/gallery.db`` (~/.local/share by default)."""
    if os.environ.get(GALLERY_ENV):
        return Path(os.environ[GALLERY_ENV]).expanduser()
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "shrinkface" / "gallery.db"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def check_name(name: str) -> str:
    """A person's name, stripped; refuses empty, over-long or control-character names."""
    clean = name.strip()
    if not clean:
        raise GalleryError("a person's name cannot be empty")
    if len(clean) > MAX_NAME_LENGTH:
        raise GalleryError(f"name {clean[:20]!r}… is longer than {MAX_NAME_LENGTH} characters")
    if any(ord(c) < 32 for c in clean):
        raise GalleryError(f"name {clean!r} contains control characters")
    return clean


def _unit(embedding: Any, where: str) -> np.ndarray:
    """A finite, non-zero 1-D embedding as a unit-norm little-endian float32 vector."""
    vec = np.asarray(embedding, dtype=np.float64)
    if vec.ndim != 1 or vec.size == 0:
        raise GalleryError(f"{where}: an embedding must be a non-empty 1-D vector, got shape {vec.shape}")
    if not np.all(np.isfinite(vec)):
        raise GalleryError(f"{where}: the embedding contains NaN or infinity")
    norm = float(np.linalg.norm(vec))
    if norm < 1e-6:
        raise GalleryError(f"{where}: the embedding is all zeros")
    return (vec / norm).astype("<f4")


def _check_sha(sha: str, where: str) -> str:
    sha = str(sha).lower()
    if not _SHA256.match(sha):
        raise GalleryError(f"{where}: model_sha256 must be 64 hex digits, got {sha[:80]!r}")
    return sha


@dataclass(frozen=True)
class NewTemplate:
    """One template to enrol: an embedding, the model that made it, its quality report and its source."""

    embedding: np.ndarray
    model_sha256: str
    quality: dict[str, Any] = field(default_factory=dict)
    source: str = ""


@dataclass(frozen=True)
class Person:
    """A gallery entry: name, creation time and how many templates each model has for it."""

    name: str
    created: str
    templates: dict[str, int]  # model_sha256 → count

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"name": self.name, "created": self.created, "templates": dict(self.templates)}


class Gallery:
    """An open gallery file. Use as a context manager, or call ``close()``."""

    def __init__(self, path: str | Path | None = None, create: bool = False, timeout: float = 10.0) -> None:
        self.path = Path(path).expanduser() if path is not None else default_gallery_path()
        if not self.path.exists():
            if not create:
                raise GalleryError(f"no gallery at {self.path}: enrol someone first (`shrinkface enroll NAME IMAGE…`)")
            self.path.parent.mkdir(parents=True, exist_ok=True)
        elif not self.path.is_file():
            raise GalleryError(f"gallery path {self.path} is not a file")
        try:
            # isolation_level=None: no implicit transactions; every write uses the explicit ones below.
            self._db = sqlite3.connect(str(self.path), timeout=timeout, isolation_level=None)
            self._db.execute("PRAGMA foreign_keys = ON")
            self._setup()
        except sqlite3.DatabaseError as exc:
            if hasattr(self, "_db"):
                self._db.close()
            raise GalleryError(f"{self.path} is not a usable shrinkface gallery (SQLite said: {exc})") from exc

    # -- lifecycle ------------------------------------------------------------------------------------------
    def _setup(self) -> None:
        tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "schema_version" not in tables:
            if tables:
                raise GalleryError(f"{self.path} is an SQLite file but not a shrinkface gallery")
            if self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0].lower() != "wal":
                raise GalleryError(f"{self.path}: SQLite could not switch the file to WAL journal mode")
            with self.transaction() as db:
                for statement in filter(str.strip, _SCHEMA.split(";")):  # not executescript: it commits
                    db.execute(statement)
                db.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
        row = self._db.execute("SELECT max(version) FROM schema_version").fetchone()
        version = row[0] if row else None
        if version is None:
            raise GalleryError(f"{self.path}: the schema_version table is empty; the gallery is damaged")
        if version > SCHEMA_VERSION:
            raise GalleryError(
                f"{self.path} has gallery schema {version}, newer than this shrinkface understands "
                f"({SCHEMA_VERSION}): upgrade shrinkface, or use another --gallery"
            )
        self._db.execute("PRAGMA synchronous = FULL")

    def close(self) -> None:
        """Close the connection (SQLite checkpoints the WAL into the main file)."""
        self._db.close()

    def __enter__(self) -> Gallery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT``; any exception, KeyboardInterrupt included, rolls back."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            if self._db.in_transaction:  # SQLite may already have rolled back (e.g. after SQLITE_FULL)
                self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def integrity_check(self) -> str:
        """SQLite's ``PRAGMA integrity_check`` plus a foreign-key check: "ok" when the file is sound."""
        result = self._db.execute("PRAGMA integrity_check").fetchone()[0]
        if result == "ok" and self._db.execute("PRAGMA foreign_key_check").fetchone() is not None:
            return "foreign key violation"
        return result

    # -- writes ---------------------------------------------------------------------------------------------
    def _person_id(self, db: sqlite3.Connection, name: str, create: bool, created: str | None = None) -> int | None:
        row = db.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()
        if row is not None:
            return int(row[0])
        if not create:
            return None
        cursor = db.execute("INSERT INTO people (name, created) VALUES (?, ?)", (name, created or _now()))
        return int(cursor.lastrowid)

    def _insert(self, db: sqlite3.Connection, person_id: int, item: NewTemplate, created: str, where: str) -> None:
        vec = _unit(item.embedding, where)
        sha = _check_sha(item.model_sha256, where)
        row = db.execute("SELECT dim FROM templates WHERE model_sha256 = ? LIMIT 1", (sha,)).fetchone()
        if row is not None and row[0] != vec.size:
            raise GalleryError(f"{where}: {vec.size}-d embedding, but this model's templates are {row[0]}-d")
        db.execute(
            "INSERT INTO templates (person_id, embedding, dim, model_sha256, created, quality, source) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                person_id,
                vec.tobytes(),
                vec.size,
                sha,
                created,
                json.dumps(item.quality, sort_keys=True),
                item.source,
            ),
        )

    def enroll(self, name: str, templates: Iterable[NewTemplate]) -> int:
        """Add ``templates`` to ``name`` (created if new) in one transaction; returns how many were added.

        ``templates`` may be lazy: if producing or storing any of them fails, none of them is kept.
        """
        name = check_name(name)
        count = 0
        with self.transaction() as db:
            person_id = self._person_id(db, name, create=True)
            assert person_id is not None
            created = _now()
            for count, item in enumerate(templates, start=1):
                self._insert(db, person_id, item, created, f"template {count} of {name!r}")
            if count == 0:
                raise GalleryError(f"nothing to enrol for {name!r}: no templates given")
        return count

    def remove(self, name: str) -> int:
        """Delete a person and all their templates; returns the number of templates removed."""
        name = check_name(name)
        with self.transaction() as db:
            person_id = self._person_id(db, name, create=False)
            if person_id is None:
                raise GalleryError(f"no person named {name!r} in {self.path}")
            removed = db.execute("DELETE FROM templates WHERE person_id = ?", (person_id,)).rowcount
            db.execute("DELETE FROM people WHERE id = ?", (person_id,))
        return removed

    # -- reads ----------------------------------------------------------------------------------------------
    def people(self) -> list[Person]:
        """Everyone enrolled, by name, with their template counts per model."""
        rows = self._db.execute(
            "SELECT p.name, p.created, t.model_sha256, count(t.id) FROM people p "
            "LEFT JOIN templates t ON t.person_id = p.id GROUP BY p.id, t.model_sha256 ORDER BY p.name"
        ).fetchall()
        people: dict[str, Person] = {}
        for name, created, sha, n in rows:
            person = people.setdefault(name, Person(name, created, {}))
            if sha is not None:
                person.templates[sha] = int(n)
        return list(people.values())

    def models(self) -> dict[str, int]:
        """Template counts by model sha256."""
        rows = self._db.execute("SELECT model_sha256, count(*) FROM templates GROUP BY model_sha256")
        return {sha: int(n) for sha, n in rows}

    def templates(self, model_sha256: str, name: str | None = None) -> TemplateSet:
        """The templates made by ``model_sha256`` (optionally of one person), ready for matching.

        Raises ``GalleryError`` when the gallery is empty, when no template of this model exists (templates
        of other models are never compared), or when ``name`` is not enrolled for this model.
        """
        sha = _check_sha(model_sha256, "model")
        query = (
            "SELECT p.name, t.embedding, t.dim FROM templates t JOIN people p ON p.id = t.person_id "
            "WHERE t.model_sha256 = ?"
        )
        args: tuple[Any, ...] = (sha,)
        if name is not None:
            query += " AND p.name = ?"
            args = (sha, check_name(name))
        rows = self._db.execute(query + " ORDER BY t.person_id, t.id", args).fetchall()
        if not rows:
            self._explain_missing(sha, name)
        dims = {r[2] for r in rows}
        if len(dims) != 1:
            raise GalleryError(f"{self.path}: templates of model {sha[:12]} have mixed sizes {sorted(dims)}")
        matrix = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(len(rows), dims.pop())
        owners = [r[0] for r in rows]
        return TemplateSet.from_owners(owners, matrix.astype(np.float32), model_sha256=sha)

    def _explain_missing(self, sha: str, name: str | None) -> None:
        models = self.models()
        if not models:
            raise GalleryError(f"the gallery {self.path} is empty: enrol someone first (`shrinkface enroll`)")
        if sha not in models:
            others = ", ".join(f"{s[:12]}… ({n} templates)" for s, n in sorted(models.items()))
            raise GalleryError(
                f"the gallery has no templates made by the current model ({sha[:12]}…), only by {others}. "
                "Templates of another model are never compared: re-enrol with this model, or pass the "
                "--model that made them"
            )
        known = sorted(p.name for p in self.people() if sha in p.templates)
        shown = ", ".join(known[:20]) + (" …" if len(known) > 20 else "")
        raise GalleryError(f"{name!r} is not enrolled for the current model; enrolled: {shown}")

    def rows(self) -> list[tuple[Any, ...]]:
        """Every template row with its person (for export and for tests that compare galleries)."""
        return self._db.execute(
            "SELECT p.name, p.created, t.embedding, t.dim, t.model_sha256, t.created, t.quality, t.source "
            "FROM templates t JOIN people p ON p.id = t.person_id ORDER BY p.name, t.id"
        ).fetchall()

    # -- export / import ------------------------------------------------------------------------------------
    def export(self, path: str | Path, model_sha256: str | None = None) -> int:
        """Write the gallery (or one model's templates) to ``.json`` or ``.npz``; returns the count."""
        from shrinkface.runtime.gallery_io import write_export

        rows = self.rows()
        if model_sha256 is not None:
            rows = [r for r in rows if r[4] == _check_sha(model_sha256, "model")]
        if not rows:
            raise GalleryError(f"nothing to export from {self.path}: no templates (for this model)")
        write_export(Path(path), rows)
        return len(rows)

    def import_(self, path: str | Path) -> tuple[int, int]:
        """Merge an export into the gallery in one transaction (identical templates are skipped).

        Returns (templates added, duplicates skipped). The whole file is validated before anything is written.
        """
        from shrinkface.runtime.gallery_io import read_export

        records = read_export(Path(path))
        checked = []
        for i, rec in enumerate(records):
            where = f"{path}: template {i + 1}"
            vec = _unit(rec["embedding"], where)
            if int(rec["dim"]) != vec.size:
                raise GalleryError(f"{where}: dim {rec['dim']} but {vec.size} values")
            checked.append((check_name(rec["name"]), rec, vec, _check_sha(rec["model_sha256"], where)))
        added = skipped = 0
        with self.transaction() as db:
            for name, rec, vec, sha in checked:
                person_id = self._person_id(db, name, True, rec.get("person_created") or None)
                assert person_id is not None
                dup = db.execute(
                    "SELECT 1 FROM templates WHERE person_id = ? AND model_sha256 = ? AND embedding = ?",
                    (person_id, sha, vec.tobytes()),
                ).fetchone()
                if dup:
                    skipped += 1
                    continue
                item = NewTemplate(vec, sha, rec.get("quality") or {}, str(rec.get("source", "")))
                self._insert(db, person_id, item, str(rec.get("created") or _now()), f"{path}: {name!r}")
                added += 1
        return added, skipped
