"""The SQLite gallery: schema, WAL, model separation, export/import, and all-or-nothing enrolment.

An exception, Ctrl-C or SIGKILL in the middle of an enrolment must leave the file sound and none of that
enrolment's templates.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from shrinkface.runtime.errors import GalleryError
from shrinkface.runtime.gallery import Gallery, NewTemplate

SHA_A, SHA_B = "a" * 64, "b" * 64


def _vectors(n: int, d: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d))


def _templates(n: int, d: int = 16, seed: int = 0, sha: str = SHA_A) -> list[NewTemplate]:
    return [NewTemplate(v, sha, {"blur": 100.0}, f"img{i}.jpg") for i, v in enumerate(_vectors(n, d, seed))]


def _snapshot(path: Path) -> list[tuple]:
    """Every row of both tables, read with plain sqlite3 (not the code under test)."""
    with sqlite3.connect(path) as db:
        return (
            db.execute("SELECT * FROM people ORDER BY id").fetchall()
            + db.execute("SELECT * FROM templates ORDER BY id").fetchall()
        )


@pytest.fixture()
def gallery(tmp_path: Path) -> Path:
    path = tmp_path / "g.db"
    with Gallery(path, create=True) as g:
        g.enroll("alice", _templates(3, seed=1))
        g.enroll("bob", _templates(2, seed=2))
    return path


def test_enrol_list_match_and_remove(gallery: Path) -> None:
    with sqlite3.connect(gallery) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(1,)]
        blob, dim = db.execute("SELECT embedding, dim FROM templates ORDER BY id LIMIT 1").fetchone()
    first = _vectors(3, seed=1)[0]
    np.testing.assert_allclose(np.frombuffer(blob, "<f4"), first / np.linalg.norm(first), atol=1e-6)
    assert dim == 16
    with Gallery(gallery) as g:
        assert [(p.name, p.templates) for p in g.people()] == [("alice", {SHA_A: 3}), ("bob", {SHA_A: 2})]
        ts = g.templates(SHA_A)
        assert ts.names == ("alice", "bob") and list(ts.counts) == [3, 2]
        assert g.templates(SHA_A, "bob").embeddings.shape == (2, 16)
        assert g.enroll("alice", _templates(1, seed=3)) == 1  # a later enrolment adds templates
        assert g.remove("bob") == 2
        assert [p.name for p in g.people()] == ["alice"]
        with pytest.raises(GalleryError, match="no person named"):
            g.remove("bob")
        assert g.integrity_check() == "ok"


def test_templates_of_another_model_are_never_compared(gallery: Path) -> None:
    with Gallery(gallery) as g:
        with pytest.raises(GalleryError, match="never compared"):
            g.templates(SHA_B)
        g.enroll("carol", _templates(1, d=8, sha=SHA_B))
        assert g.templates(SHA_B).names == ("carol",)  # only carol: alice and bob belong to model A
        with pytest.raises(GalleryError, match="not enrolled for the current model"):
            g.templates(SHA_B, "alice")
        before = _snapshot(gallery)
        with pytest.raises(GalleryError, match="8-d"):  # model B's templates are 8-d
            g.enroll("dave", _templates(1, d=4, sha=SHA_B))
        assert _snapshot(gallery) == before


def test_bad_galleries_and_bad_input(tmp_path: Path, gallery: Path) -> None:
    missing = tmp_path / "none.db"
    with pytest.raises(GalleryError, match="no gallery"):
        Gallery(missing)
    assert not missing.exists()  # reading never creates a gallery
    junk = tmp_path / "junk.db"
    junk.write_bytes(os.urandom(4096))
    with pytest.raises(GalleryError, match="not a usable"):
        Gallery(junk)
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE t (x)")
    with pytest.raises(GalleryError, match="not a shrinkface gallery"):
        Gallery(other)
    empty = tmp_path / "empty.db"
    Gallery(empty, create=True).close()
    with Gallery(empty) as g, pytest.raises(GalleryError, match="empty"):
        g.templates(SHA_A)
    before = _snapshot(gallery)
    with Gallery(gallery) as g:
        for name, items, match in [
            ("", _templates(1), "empty"),
            ("a\x07b", _templates(1), "control"),
            ("eve", [], "nothing to enrol"),
            ("eve", [NewTemplate(np.zeros(16), SHA_A)], "all zeros"),
            ("eve", [NewTemplate(np.full(16, np.nan), SHA_A)], "NaN"),
            ("eve", [NewTemplate(np.ones(16), "not-a-sha")], "64 hex"),
        ]:
            with pytest.raises(GalleryError, match=match):
                g.enroll(name, items)
    assert _snapshot(gallery) == before


def test_newer_schema_is_refused(gallery: Path) -> None:
    with sqlite3.connect(gallery) as db:
        db.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(GalleryError, match="schema 99, newer"):
        Gallery(gallery)


@pytest.mark.parametrize("interrupt", [RuntimeError("disk on fire"), KeyboardInterrupt()])
def test_interrupted_enrolment_keeps_nothing(gallery: Path, interrupt: BaseException) -> None:
    before = _snapshot(gallery)
    produced = []

    def lazy():
        for item in _templates(3, seed=9):
            produced.append(item)
            yield item
            if len(produced) == 2:  # two templates already inserted in the open transaction
                raise interrupt

    with Gallery(gallery) as g:
        with pytest.raises(type(interrupt)):
            g.enroll("mallory", lazy())
        assert g.integrity_check() == "ok"
        assert _snapshot(gallery) == before
        g.enroll("trent", _templates(1))  # the connection is still usable
    assert len(produced) == 2


CHILD = """
import sys, time, numpy as np
from pathlib import Path
from shrinkface.runtime.gallery import Gallery, NewTemplate
path, marker = sys.argv[1], Path(sys.argv[2])
g = Gallery(path)
g._db.execute("PRAGMA cache_size = 20")  # small page cache: uncommitted pages spill into the WAL file
rng = np.random.default_rng(0)
def lazy():
    for i in range(10_000):
        yield NewTemplate(rng.normal(size=512), "a" * 64, {}, f"frame{i}")
        if i == 1500:
            marker.write_text("inside")
            time.sleep(60)
g.enroll("victim", lazy())
"""


def test_sigkill_mid_enrolment_keeps_nothing(gallery: Path, tmp_path: Path) -> None:
    with Gallery(gallery) as g:  # 512-d templates need their own model id: move alice/bob's out of the way
        g.remove("alice")
        g.remove("bob")
        g.enroll("alice", [NewTemplate(v, SHA_A) for v in _vectors(2, 512, 4)])
    before = _snapshot(gallery)
    marker = tmp_path / "marker"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(gallery), str(marker)])
    try:
        deadline = time.time() + 60
        while not marker.exists() and child.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert marker.exists(), "the child never reached the middle of its enrolment"
        wal = gallery.with_name(gallery.name + "-wal")
        assert wal.stat().st_size > 1_000_000  # uncommitted templates really reached the disk
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == -signal.SIGKILL
    with sqlite3.connect(gallery) as db:  # an independent reader first
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert _snapshot(gallery) == before
    with Gallery(gallery) as g:
        assert [p.name for p in g.people()] == ["alice"]
        assert g.enroll("victim", [NewTemplate(np.ones(512), SHA_A)]) == 1  # the write lock was released


@pytest.mark.parametrize("suffix", [".json", ".npz"])
def test_export_import_round_trip(gallery: Path, tmp_path: Path, suffix: str) -> None:
    with Gallery(gallery) as g:
        g.enroll("carol", _templates(1, d=8, sha=SHA_B))
        out = tmp_path / f"export{suffix}"
        assert g.export(out) == 6
        assert g.export(tmp_path / f"b{suffix}", SHA_B) == 1
        rows = g.rows()
    copy = tmp_path / "copy.db"
    with Gallery(copy, create=True) as h:
        assert h.import_(out) == (6, 0)
        assert h.rows() == rows  # names, embedding bytes, model sha256, quality, source, dates
        assert h.import_(out) == (0, 6)  # identical templates are not stored twice
    corrupt = tmp_path / f"corrupt{suffix}"
    corrupt.write_bytes(out.read_bytes()[: len(out.read_bytes()) // 2])
    before = _snapshot(copy)
    with Gallery(copy) as h:
        with pytest.raises(GalleryError):
            h.import_(corrupt)
        with pytest.raises(GalleryError, match="no such file"):
            h.import_(tmp_path / f"missing{suffix}")
    assert _snapshot(copy) == before


def test_import_validates_everything_before_writing(gallery: Path, tmp_path: Path) -> None:
    import json

    with Gallery(gallery) as g:
        g.export(tmp_path / "e.json")
    data = json.loads((tmp_path / "e.json").read_text())
    data["records"][-1]["model_sha256"] = "nope"  # the last record is bad: nothing may be imported
    (tmp_path / "bad.json").write_text(json.dumps(data))
    target = tmp_path / "t.db"
    Gallery(target, create=True).close()
    before = _snapshot(target)
    with Gallery(target) as h, pytest.raises(GalleryError, match="64 hex"):
        h.import_(tmp_path / "bad.json")
    assert _snapshot(target) == before
    (tmp_path / "other.json").write_text(json.dumps({"format": "something-else", "records": []}))
    with Gallery(target) as h, pytest.raises(GalleryError, match="not a shrinkface gallery export"):
        h.import_(tmp_path / "other.json")


def test_default_path(monkeypatch, tmp_path: Path) -> None:
    from shrinkface.runtime.gallery import default_gallery_path

    monkeypatch.delenv("SHRINKFACE_GALLERY", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_gallery_path() == tmp_path / ".local" / "share" / "shrinkface" / "gallery.db"
    monkeypatch.setenv("SHRINKFACE_GALLERY", str(tmp_path / "x.db"))
    assert default_gallery_path() == tmp_path / "x.db"
    with Gallery(create=True) as g:  # parent folders are created for a new gallery
        assert g.path == tmp_path / "x.db"
    assert (tmp_path / "x.db").is_file()
