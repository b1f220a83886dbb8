"""The LFW View-2 protocol: parse ``pairs.txt``, map pairs to image keys, list the images for all-vs-all.

``pairs.txt`` (Huang et al., 2007): a header ``10 300`` (folds, pairs of each kind per fold), then for each
fold 300 matched lines ``Name n1 n2`` followed by 300 mismatched lines ``Name1 n1 Name2 n2``. An image is
named by its *key*, the path relative to ``lfw/images``: ``Name/Name_0001.jpg``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from shrinkface.runtime.errors import DataError

_NAME = re.compile(r"^[^/\\\s]+$")


def image_key(name: str, number: int) -> str:
    """The key (relative path) of image ``number`` of ``name``: ``Name/Name_0001.jpg``."""
    return f"{name}/{name}_{number:04d}.jpg"


def identity_of(key: str) -> str:
    """The person's name in an image key."""
    return key.split("/", 1)[0]


@dataclass(frozen=True)
class Pair:
    """One protocol pair: two image keys, whether they show the same person, and the fold (0-based)."""

    left: str
    right: str
    same: bool
    fold: int


@dataclass(frozen=True)
class LfwPairs:
    """The parsed protocol (pairs in file order)."""

    pairs: tuple[Pair, ...]
    n_folds: int
    per_fold: int  # pairs of each kind (same / different) in one fold

    def __len__(self) -> int:
        return len(self.pairs)

    @cached_property
    def issame(self) -> np.ndarray:
        """(P,) bool: True for matched pairs."""
        return np.array([p.same for p in self.pairs], dtype=bool)

    @cached_property
    def folds(self) -> np.ndarray:
        """(P,) int: the fold of each pair."""
        return np.array([p.fold for p in self.pairs], dtype=np.int64)

    @cached_property
    def image_keys(self) -> list[str]:
        """Every image key used by some pair, sorted."""
        return sorted({k for p in self.pairs for k in (p.left, p.right)})

    def index_pairs(self, index: dict[str, int]) -> np.ndarray:
        """(P, 2) int array of ``index[key]`` for both images of each pair; -1 where a key is absent."""
        return np.array([[index.get(p.left, -1), index.get(p.right, -1)] for p in self.pairs], dtype=np.int64)

    def paths(self, images_dir: str | Path) -> list[tuple[Path, Path]]:
        """Both image paths of every pair under ``images_dir`` (``lfw/images``)."""
        root = Path(images_dir)
        return [(root / p.left, root / p.right) for p in self.pairs]


def _number(token: str, where: str) -> int:
    if not token.isdigit() or int(token) < 1:
        raise DataError(f"{where}: image number {token!r} is not a positive integer")
    return int(token)


def _name(token: str, where: str) -> str:
    if not _NAME.match(token):
        raise DataError(f"{where}: {token!r} is not a valid person name")
    return token


def parse_pairs_lines(lines: Iterable[str], source: str = "pairs.txt") -> LfwPairs:
    """Parse the lines of a View-2 style ``pairs.txt``; any malformed line raises ``DataError``."""
    rows = [(i + 1, line.split()) for i, line in enumerate(lines)]
    rows = [(n, toks) for n, toks in rows if toks]  # blank lines (a trailing newline) are harmless
    if not rows:
        raise DataError(f"{source}: empty file")
    line_no, header = rows[0]
    if len(header) == 1:
        header = ["1", header[0]]  # View-1 files (pairsDevTest.txt) carry only the per-fold count
    if len(header) != 2 or not all(t.isdigit() and int(t) > 0 for t in header):
        raise DataError(f"{source}:{line_no}: header must be '<folds> <pairs per kind>', got {' '.join(header)!r}")
    n_folds, per_fold = int(header[0]), int(header[1])
    body = rows[1:]
    expected = n_folds * 2 * per_fold
    if len(body) != expected:
        raise DataError(f"{source}: header announces {n_folds}×2×{per_fold} = {expected} pairs, found {len(body)}")
    pairs: list[Pair] = []
    for k, (line_no, toks) in enumerate(body):
        where = f"{source}:{line_no}"
        fold, within = divmod(k, 2 * per_fold)
        want_same = within < per_fold
        if len(toks) == 3:
            if not want_same:
                raise DataError(f"{where}: expected a different-person line 'Name1 n1 Name2 n2', got a same line")
            name = _name(toks[0], where)
            a, b = _number(toks[1], where), _number(toks[2], where)
            if a == b:
                raise DataError(f"{where}: a same-person pair must use two different images, got {a} twice")
            pairs.append(Pair(image_key(name, a), image_key(name, b), True, fold))
        elif len(toks) == 4:
            if want_same:
                raise DataError(f"{where}: expected a same-person line 'Name n1 n2', got a different-person line")
            n1, n2 = _name(toks[0], where), _name(toks[2], where)
            if n1 == n2:
                raise DataError(f"{where}: a different-person pair names {n1} twice")
            pairs.append(
                Pair(
                    image_key(n1, _number(toks[1], where)),
                    image_key(n2, _number(toks[3], where)),
                    False,
                    fold,
                )
            )
        else:
            raise DataError(f"{where}: expected 3 or 4 fields, got {len(toks)}: {' '.join(toks)!r}")
    return LfwPairs(tuple(pairs), n_folds, per_fold)


def parse_pairs(path: str | Path) -> LfwPairs:
    """Parse an LFW ``pairs.txt`` file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: LFW pairs file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a text file ({exc})") from exc
    return parse_pairs_lines(text.splitlines(), source=str(path))


def pair_identities(pairs: LfwPairs | Sequence[Pair]) -> set[str]:
    """Every person named in the pairs (for checking that training identities are disjoint)."""
    items = pairs.pairs if isinstance(pairs, LfwPairs) else pairs
    return {identity_of(k) for p in items for k in (p.left, p.right)}


def missing_images(pairs: LfwPairs, images_dir: str | Path) -> list[str]:
    """Keys of pair images that are not files under ``images_dir``."""
    root = Path(images_dir)
    return [k for k in pairs.image_keys if not (root / k).is_file()]


def list_images(images_dir: str | Path) -> list[str]:
    """Every ``Name/Name_NNNN.jpg`` key under ``lfw/images``, sorted (the all-vs-all image set)."""
    root = Path(images_dir)
    if not root.is_dir():
        raise DataError(f"{root}: LFW images folder not found")
    keys = sorted(f"{p.parent.name}/{p.name}" for p in root.glob("*/*.jpg") if p.name.startswith(p.parent.name))
    if not keys:
        raise DataError(f"{root}: no Name/Name_NNNN.jpg images found")
    return keys


def labels_of(keys: Sequence[str]) -> np.ndarray:
    """(N,) int identity labels for image keys (same name → same label, numbered in sorted name order)."""
    names = [identity_of(k) for k in keys]
    lookup = {n: i for i, n in enumerate(sorted(set(names)))}
    return np.array([lookup[n] for n in names], dtype=np.int64)
