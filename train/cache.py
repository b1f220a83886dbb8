"""Teacher-embedding cache: each training crop and its mirror embedded once by a runtime embedder.

Layout of one teacher's cache, ``<root>/<teacher name>-<fingerprint[:16]>/``:
  ``meta.json``  the teacher's full fingerprint (sha256 of model file + model card) and embedding size
  ``keys.npy``   (M,) the sha256 (hex) of each cached crop's file bytes
  ``emb.npy``    (M, 2, D) float32, memory-mapped: [:, 0] the crop, [:, 1] its horizontal mirror
  ``done.npy``   (M,) bool: rows that hold finished embeddings
A changed teacher gets another folder (and the stale folder of the same name is removed); a changed crop has
another key and is computed again. Progress is flushed every chunk, so an interrupted build resumes where it
stopped. ``processes > 1`` embeds chunks in worker processes, each with its own embedder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from tqdm import tqdm

from shrinkface.runtime.errors import DataError
from shrinkface.train.data import decode_crop

CACHE_VERSION = 1


class Embedder(Protocol):
    """What the runtime embedder offers (``shrinkface.runtime.embed``)."""

    def embed(self, crops_rgb: np.ndarray, flip: bool | None = None) -> np.ndarray: ...


def embed_with_mirror(embedder: Embedder, crops: np.ndarray) -> np.ndarray:
    """(N, 2, D): the embeddings of ``crops`` and of their horizontal mirrors (never flip-summed, whatever
    the card's ``flip`` says)."""
    plain = np.asarray(embedder.embed(crops, flip=False), dtype=np.float32)
    mirror = np.asarray(embedder.embed(np.ascontiguousarray(crops[:, :, ::-1]), flip=False), dtype=np.float32)
    return np.stack([plain, mirror], axis=1)


# -- worker processes ----------------------------------------------------------------------------------------
_WORKER_EMBEDDER: Any = None


def _init_worker(factory: Callable[[], Embedder]) -> None:
    global _WORKER_EMBEDDER
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _WORKER_EMBEDDER = factory()


def _embed_files(paths: list[str]) -> np.ndarray:
    crops = np.stack([decode_crop(Path(p)) for p in paths])
    return embed_with_mirror(_WORKER_EMBEDDER, crops)


def _atomic_save(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(path.name + ".tmp.npy")
    np.save(tmp, array)
    tmp.replace(path)


class TeacherCache:
    """One teacher's content-addressed embedding store (see the module docstring)."""

    def __init__(self, root: str | Path, teacher: str, fingerprint: str, dim: int) -> None:
        if not re.fullmatch(r"[0-9a-f]{16,}", fingerprint):
            raise DataError(f"teacher fingerprint must be a hex digest, got {fingerprint!r}")
        safe = re.sub(r"[^\w.-]", "_", teacher)
        self.root = Path(root)
        self.dir = self.root / f"{safe}-{fingerprint[:16]}"
        self.fingerprint, self.dim, self.teacher = fingerprint, int(dim), teacher
        self._open()

    @property
    def emb_path(self) -> Path:
        """The (M, 2, D) float32 .npy file."""
        return self.dir / "emb.npy"

    def _open(self) -> None:
        meta = {
            "version": CACHE_VERSION,
            "teacher": self.teacher,
            "fingerprint": self.fingerprint,
            "dim": self.dim,
        }
        meta_path = self.dir / "meta.json"
        if meta_path.is_file() and json.loads(meta_path.read_text()) != meta:
            shutil.rmtree(self.dir)  # same folder name, other teacher or layout: invalid
        pattern = re.compile(re.escape(self.dir.name[:-17]) + r"-[0-9a-f]{16}")
        for stale in self.root.glob("*"):
            if stale != self.dir and pattern.fullmatch(stale.name) and (stale / "meta.json").is_file():
                shutil.rmtree(stale)  # this teacher's cache for an older model/card
        self.dir.mkdir(parents=True, exist_ok=True)
        if not meta_path.is_file():
            _atomic_save(self.dir / "keys.npy", np.zeros(0, dtype="S64"))
            _atomic_save(self.emb_path, np.zeros((0, 2, self.dim), dtype=np.float32))
            _atomic_save(self.dir / "done.npy", np.zeros(0, dtype=bool))
            meta_path.write_text(json.dumps(meta))
        self.keys = np.load(self.dir / "keys.npy")
        self.index = {k.decode(): i for i, k in enumerate(self.keys)}

    def __len__(self) -> int:
        return len(self.keys)

    def done(self) -> np.ndarray:
        """A read-only view of the finished-row flags."""
        return np.load(self.dir / "done.npy", mmap_mode="r")

    def rows_for(self, keys: Sequence[str]) -> np.ndarray:
        """Row of each key, adding rows (not yet computed) for unseen keys; returns (N,) int64."""
        new = list(dict.fromkeys(k for k in keys if k not in self.index))
        if new:
            old_n, total = len(self.keys), len(self.keys) + len(new)
            old_emb = np.load(self.emb_path, mmap_mode="r")
            tmp = self.emb_path.with_name("emb.grow.npy")
            emb = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(total, 2, self.dim))
            emb[:old_n] = old_emb
            emb.flush()
            del emb, old_emb
            done = np.zeros(total, dtype=bool)
            done[:old_n] = np.load(self.dir / "done.npy")
            grown = np.concatenate([self.keys, np.asarray(new, dtype="S64")])
            # order matters for a crash in between: embeddings first, then flags, then keys
            tmp.replace(self.emb_path)
            _atomic_save(self.dir / "done.npy", done)
            _atomic_save(self.dir / "keys.npy", grown)
            self.keys = grown
            self.index.update({k: old_n + i for i, k in enumerate(new)})
        return np.asarray([self.index[k] for k in keys], dtype=np.int64)

    def missing(self, rows: np.ndarray) -> np.ndarray:
        """The unique rows among ``rows`` not computed yet."""
        done = self.done()
        rows = np.unique(rows)
        return rows[~done[rows]]

    def fill(
        self,
        paths: Sequence[str | Path],
        keys: Sequence[str],
        embedder: Embedder | None = None,
        factory: Callable[[], Embedder] | None = None,
        processes: int = 1,
        chunk: int = 256,
        progress: bool = True,
    ) -> np.ndarray:
        """Make sure every crop (and its mirror) is embedded; returns each crop's row in ``emb.npy``.

        With ``processes > 1`` a picklable ``factory`` builds one embedder per worker process."""
        if len(paths) != len(keys):
            raise ValueError("paths and keys differ in length")
        rows = self.rows_for(keys)
        todo = self.missing(rows)
        if len(todo) == 0:
            return rows
        path_of = {int(r): str(p) for r, p in zip(rows, paths, strict=True)}
        chunks = [todo[i : i + chunk] for i in range(0, len(todo), chunk)]
        emb = np.load(self.emb_path, mmap_mode="r+")
        done = np.load(self.dir / "done.npy", mmap_mode="r+")
        bar = tqdm(total=len(todo), desc=f"teacher {self.teacher}", unit="img", disable=not progress)

        def store(part: np.ndarray, values: np.ndarray) -> None:
            emb[part] = values
            emb.flush()
            done[part] = True
            done.flush()
            bar.update(len(part))

        try:
            if processes > 1:
                if factory is None:
                    raise ValueError("processes > 1 needs a picklable embedder factory")
                with ProcessPoolExecutor(
                    processes, mp_context=get_context("spawn"), initializer=_init_worker, initargs=(factory,)
                ) as pool:
                    work = [[path_of[int(r)] for r in part] for part in chunks]
                    for part, values in zip(chunks, pool.map(_embed_files, work), strict=True):
                        store(part, values)
            else:
                if embedder is None:
                    embedder = factory() if factory is not None else None
                if embedder is None:
                    raise ValueError("fill needs an embedder or a factory")
                for part in chunks:
                    crops = np.stack([decode_crop(Path(path_of[int(r)])) for r in part])
                    store(part, embed_with_mirror(embedder, crops))
        finally:
            bar.close()
        return rows
