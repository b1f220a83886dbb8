"""Insightface ``.bin`` verification sets: round trips with real LFW JPEG bytes, Python-2 files, and
refusal of pickles that would run code or build anything but bytes / bool / uint8 arrays."""

from __future__ import annotations

import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from shrinkface.runtime.binset import loads_bin, read_bin, write_bin
from shrinkface.runtime.errors import DataError

PAIRS = [("Aaron_Peirsol", 1, "Aaron_Peirsol", 2), ("Abel_Pacheco", 1, "Akhmed_Zakayev", 1)]


@pytest.fixture(scope="module")
def jpegs(lfw_image) -> list[bytes]:
    out = []
    for n1, i1, n2, i2 in PAIRS:
        out += [lfw_image(n1, i1).read_bytes(), lfw_image(n2, i2).read_bytes()]
    return out


def test_round_trip_real_jpegs(tmp_path: Path, jpegs: list[bytes]) -> None:
    path = write_bin(tmp_path / "lfw_mini.bin", jpegs, [True, False])
    # the file is what insightface's loader expects: pickle of (list of bytes, list of bool)
    with open(path, "rb") as fh:
        bins, issame = pickle.load(fh, encoding="bytes")
    assert bins == jpegs and issame == [True, False]
    ours = read_bin(path)
    assert ours.images == jpegs and ours.issame.tolist() == [True, False] and len(ours) == 2
    assert ours.pair(1) == (jpegs[2], jpegs[3])
    img = ours.decode(0)
    assert img.shape == (250, 250, 3) and img.dtype == np.uint8  # LFW deep-funnelled images are 250×250


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_numpy_variants(jpegs: list[bytes], protocol: int) -> None:
    bins = [np.frombuffer(b, dtype=np.uint8).copy() for b in jpegs]
    for issame in (np.array([True, False]), [np.bool_(True), np.bool_(False)], (True, False)):
        data = pickle.dumps((bins, issame), protocol=protocol)
        got = loads_bin(data)
        assert got.images == jpegs and got.issame.tolist() == [True, False]


def _py2_pickle(blobs: list[bytes], flags: list[bool]) -> bytes:
    """Python 2's ``pickle.dump((bins, issame), f, protocol=2)`` output (str = BINSTRING), assembled here."""
    out = b"\x80\x02]("  # PROTO 2, EMPTY_LIST, MARK
    for b in blobs:
        out += b"T" + struct.pack("<I", len(b)) + b  # BINSTRING
    out += b"e](" + b"".join(b"\x88" if f else b"\x89" for f in flags) + b"e\x86."  # APPENDS, bools, TUPLE2, STOP
    return out


def test_python2_file(tmp_path: Path, jpegs: list[bytes]) -> None:
    path = tmp_path / "py2.bin"
    path.write_bytes(_py2_pickle(jpegs, [True, False]))
    got = read_bin(path)
    assert got.images == jpegs and got.issame.tolist() == [True, False]


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_code_execution_refused(tmp_path: Path, jpegs: list[bytes]) -> None:
    marker = tmp_path / "pwned"
    for payload in ([_Evil(marker), jpegs[1]], [True]), (jpegs[:2], _Evil(marker)):
        path = tmp_path / "evil.bin"
        path.write_bytes(pickle.dumps(payload, protocol=2))
        with pytest.raises(DataError, match="refusing to load"):
            read_bin(path)
    assert not marker.exists()
    data = pickle.dumps(([eval, b"x"], [True]))  # any global outside the allow-list
    with pytest.raises(DataError, match=r"builtins\.eval"):
        loads_bin(data)


def test_disallowed_numpy_content_refused(jpegs: list[bytes]) -> None:
    objects = np.array([b"a", b"b"], dtype=object)
    with pytest.raises(DataError, match="dtype"):
        loads_bin(pickle.dumps((objects, [True])))
    floats = [np.zeros(3, np.float32), np.zeros(3, np.float32)]
    with pytest.raises(DataError, match="dtype"):
        loads_bin(pickle.dumps((floats, [True])))


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"a": 1}, "expected a pickled"),
        (([b"a"], [True]), "need exactly two"),
        (([b"a", 3], [True]), "not encoded image bytes"),
        (([b"a", b"b"], [1]), "booleans"),
        ((b"ab", [True]), "bins must be a list"),
    ],
)
def test_wrong_structure(payload: object, message: str) -> None:
    with pytest.raises(DataError, match=message):
        loads_bin(pickle.dumps(payload))


def test_garbage_and_missing(tmp_path: Path, jpegs: list[bytes]) -> None:
    data = pickle.dumps((jpegs, [True, False]))
    with pytest.raises(DataError, match="not a readable"):
        loads_bin(data[: len(data) // 2])
    with pytest.raises(DataError, match="not found"):
        read_bin(tmp_path / "missing.bin")
    with pytest.raises(DataError, match="two images per pair"):
        write_bin(tmp_path / "bad.bin", jpegs[:3], [True, False])
    assert not (tmp_path / "bad.bin").exists()
