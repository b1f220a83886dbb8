"""Insightface-style verification sets (``lfw.bin``, ``agedb_30.bin``, …): read safely, write compatibly.

A ``.bin`` is a pickle of ``(bins, issame_list)`` (insightface writes it with
``pickle.dump((bins, issame_list), f, protocol=pickle.HIGHEST_PROTOCOL)``): ``bins`` holds 2·P encoded images
(JPEG/PNG bytes; Python-2 files hold ``str``, read here as bytes; some writers store uint8 numpy arrays),
pair p being images 2p and 2p+1; ``issame_list`` holds P booleans (a list, or a numpy bool array).

A pickle can run any code on load, so ``read_bin`` never calls ``pickle.load`` unrestricted: its unpickler
resolves only the few globals those files use (numpy's array/dtype/scalar reconstructors and
``_codecs.encode`` for bytes written at protocol 2), each replaced by a checking stand-in that builds only
uint8 or bool arrays with ``np.frombuffer``; numpy never sees a dtype or state taken from the file. Anything
else is a ``DataError``.
"""

from __future__ import annotations

import io
import os
import pickle
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shrinkface.runtime.errors import DataError

_DTYPES = {"u1": np.dtype(np.uint8), "|u1": np.dtype(np.uint8), "b1": np.dtype(bool), "|b1": np.dtype(bool)}


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, str):
        return value
    raise DataError(f"unexpected {type(value).__name__} where a string was expected")


class _NdarrayType:
    """Stands for ``numpy.ndarray`` as the first argument of ``_reconstruct``; it cannot be called."""


class _DType:
    """A uint8 or bool dtype named in the file; its pickled state is checked and otherwise ignored."""

    def __init__(self, spec: Any, align: Any = False, copy: Any = False) -> None:
        key = _text(spec)
        if key not in _DTYPES:
            raise DataError(f"refusing numpy dtype {key!r} (only uint8 and bool arrays are allowed)")
        self.dtype = _DTYPES[key]

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) < 2 or _text(state[1]) not in ("|", "=", "<", ">"):
            raise DataError("malformed numpy dtype state")
        if any(part is not None for part in state[2:5]):
            raise DataError("refusing a structured numpy dtype")


class _ArrayStub:
    """Collects an ndarray's pickled state; ``array`` is built from it with ``np.frombuffer``."""

    def __init__(self) -> None:
        self.array: np.ndarray | None = None

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) != 5:
            raise DataError("malformed numpy array state")
        _version, shape, dtype, fortran, raw = state
        self.array = _build_array(raw, dtype, shape, "F" if fortran else "C")


def _shape(shape: Any) -> tuple[int, ...]:
    if not isinstance(shape, tuple) or len(shape) > 4 or not all(type(s) is int and s >= 0 for s in shape):
        raise DataError(f"malformed numpy array shape {shape!r}")
    return shape


def _build_array(raw: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    if not isinstance(dtype, _DType):
        raise DataError("numpy array without an allowed dtype")
    if isinstance(raw, str):  # protocol 0-2 writers of Python 3 / latin-1 decoded Python 2 strings
        raw = raw.encode("latin-1")
    if not isinstance(raw, bytes | bytearray):
        raise DataError("numpy array data must be bytes")
    shape = _shape(shape)
    if int(np.prod(shape)) * dtype.dtype.itemsize != len(raw):
        raise DataError(f"numpy array data has {len(raw)} bytes, shape {shape} needs another size")
    return np.frombuffer(bytes(raw), dtype=dtype.dtype).reshape(shape, order=_text(order))


def _reconstruct(subtype: Any, shape: Any, dtype: Any) -> _ArrayStub:
    if not isinstance(subtype, _NdarrayType):
        raise DataError("numpy _reconstruct of something that is not an ndarray")
    return _ArrayStub()


def _frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    return _build_array(buf, dtype, shape, order)


def _scalar(dtype: Any, data: Any = None) -> np.generic:
    if not isinstance(dtype, _DType) or not isinstance(data, bytes | str) or len(data) != 1:
        raise DataError("malformed numpy scalar")
    return _build_array(data, dtype, (1,), "C")[0]


def _encode(text: Any, encoding: Any = "latin1") -> bytes:
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise DataError("refusing _codecs.encode with unexpected arguments")
    return text.encode("latin-1")


_NDARRAY = _NdarrayType()
_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _DType,
    ("_codecs", "encode"): _encode,
}
for _mod in ("numpy.core", "numpy._core"):
    _GLOBALS[(f"{_mod}.multiarray", "_reconstruct")] = _reconstruct
    _GLOBALS[(f"{_mod}.multiarray", "scalar")] = _scalar
    _GLOBALS[(f"{_mod}.numeric", "_frombuffer")] = _frombuffer


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _GLOBALS[(module, name)]
        except KeyError:
            raise DataError(
                f"refusing to load {module}.{name} from a .bin file: only lists, bytes, booleans and "
                "uint8/bool numpy arrays are allowed (the file is not a verification set, or is malicious)"
            ) from None


def _unstub(value: Any) -> Any:
    if isinstance(value, _ArrayStub):
        if value.array is None:
            raise DataError("numpy array without data")
        return value.array
    return value


@dataclass(frozen=True)
class BinSet:
    """A verification set: 2·P encoded images and P same/different flags."""

    images: list[bytes]
    issame: np.ndarray

    def __len__(self) -> int:
        return int(self.issame.size)

    def pair(self, p: int) -> tuple[bytes, bytes]:
        """The encoded images of pair ``p``."""
        return self.images[2 * p], self.images[2 * p + 1]

    def decode(self, i: int) -> np.ndarray:
        """Image ``i`` decoded to RGB uint8 (needs opencv: the runtime extra)."""
        from shrinkface.runtime.image import load_image

        return load_image(self.images[i])


def loads_bin(data: bytes, source: str = "<bytes>") -> BinSet:
    """Parse the bytes of a ``.bin`` file with the restricted unpickler and check its structure."""
    try:
        obj = _RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except DataError as exc:
        raise DataError(f"{source}: {exc}") from None
    except Exception as exc:  # truncated or garbage input: pickle raises many kinds
        raise DataError(f"{source}: not a readable verification .bin ({type(exc).__name__}: {exc})") from None
    if not isinstance(obj, tuple | list) or len(obj) != 2:
        raise DataError(f"{source}: expected a pickled (bins, issame_list) pair, got {type(obj).__name__}")
    bins, issame = (_unstub(v) for v in obj)
    if not isinstance(bins, list | tuple):
        raise DataError(f"{source}: bins must be a list, got {type(bins).__name__}")
    images = []
    for i, b in enumerate(bins):
        b = _unstub(b)
        if isinstance(b, np.ndarray) and b.dtype == np.uint8 and b.ndim == 1:
            b = b.tobytes()
        if not isinstance(b, bytes | bytearray):
            raise DataError(f"{source}: image {i} is a {type(b).__name__}, not encoded image bytes")
        images.append(bytes(b))
    if isinstance(issame, np.ndarray):
        if issame.dtype != bool or issame.ndim != 1:
            raise DataError(f"{source}: issame array must be 1-D bool")
        flags = issame.copy()
    elif isinstance(issame, list | tuple) and all(isinstance(v, bool | np.bool_) for v in issame):
        flags = np.array(issame, dtype=bool)
    else:
        raise DataError(f"{source}: issame_list must hold booleans")
    if len(images) != 2 * flags.size:
        raise DataError(f"{source}: {len(images)} images for {flags.size} pairs (need exactly two per pair)")
    return BinSet(images, flags)


def read_bin(path: str | Path) -> BinSet:
    """Read an insightface ``.bin`` verification set safely."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: verification .bin not found")
    return loads_bin(path.read_bytes(), str(path))


def write_bin(path: str | Path, images: Sequence[bytes], issame: Sequence[bool] | np.ndarray) -> Path:
    """Write ``(list of image bytes, list of bool)`` as insightface does (atomically; HIGHEST_PROTOCOL)."""
    flags = [bool(v) for v in np.asarray(issame, dtype=bool).ravel()]
    blobs = [bytes(b) for b in images]
    if len(blobs) != 2 * len(flags):
        raise DataError(f"{len(blobs)} images for {len(flags)} pairs: need exactly two images per pair")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            pickle.dump((blobs, flags), fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
