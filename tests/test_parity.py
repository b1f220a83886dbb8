"""Parity of exported files with the float torch model on aligned LFW faces, the gate that fails loudly, and the
golden vectors in tests/golden/embed_*.json (landmarks → crop → input tensor → embedding)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("litert_torch")

import export_fixtures as fx  # noqa: E402

from shrinkface.export.checkpoint import load_student_checkpoint  # noqa: E402
from shrinkface.export.golden import FORMAT, decode  # noqa: E402
from shrinkface.export.parity import (  # noqa: E402
    Gates,
    artifact_labels,
    gate_failures,
    parity_report,
    write_parity,
)
from shrinkface.runtime.align import align_face  # noqa: E402
from shrinkface.runtime.card import ModelCard  # noqa: E402
from shrinkface.runtime.embed import load_embedder  # noqa: E402
from shrinkface.runtime.image import load_image  # noqa: E402

pytestmark = pytest.mark.torch
GOLDEN = Path(__file__).parent / "golden"


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.getbasetemp() / "export"


def test_parity_report_and_gate_on_warm_started_student(base: Path, data_dir: Path, tmp_path: Path) -> None:
    pairs, keys, _ = fx.lfw_subset(base, data_dir)
    files = [a.path for a in fx.exports("prelu", base, data_dir).artifacts]
    report, cosines = fx.parity("prelu", base, data_dir)
    assert report["images"] == len(keys) >= 0.9 * len(pairs.image_keys) and report["pairs"] == fx.PAIRS
    assert report["float_model"]["lfw"]["accuracy"] >= 0.96  # teacher C's weights: a real face model
    rows = {a["file"]: a for a in report["artifacts"]}
    assert set(rows) == {p.name for p in files}
    for name, row in rows.items():
        assert row["passed"], (name, row)  # cosine mean ≥ 0.99 (int8) / 0.9999 (float), agreement ≥ 99 %
        assert row["cosine_min"] <= row["cosine_p1"] <= row["cosine_median"] <= 1.0 + 1e-6
        assert abs(row["lfw"]["accuracy"] - report["float_model"]["lfw"]["accuracy"]) <= 0.02
        assert len(cosines[name]) == len(keys)
    assert gate_failures(report) == []
    paths = write_parity(report, cosines, tmp_path)
    assert json.loads(paths["json"].read_text())["passed"] is True
    assert "| prelu.int8.tflite | int8 | ptq |" in paths["markdown"].read_text()
    assert paths["histogram"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with np.load(paths["cosines"]) as saved:
        assert set(saved.files) == set(rows) and np.allclose(saved["prelu.int8.onnx"], cosines["prelu.int8.onnx"])


def test_gate_catches_an_untrained_int8_model(base: Path, data_dir: Path) -> None:
    pairs, keys, crops = fx.lfw_subset(base, data_dir)
    model, card = load_student_checkpoint(fx.checkpoint("relu", base, data_dir))
    files = [a.path for a in fx.exports("relu", base, data_dir).artifacts]
    report, _ = fx.parity("relu", base, data_dir)
    rows = {a["file"]: a for a in report["artifacts"]}
    assert rows["relu.float.onnx"]["passed"] and rows["relu.float.tflite"]["passed"]
    assert not rows["relu.int8.tflite"]["passed"]  # random weights: int8 cosine ≈ 0.8, well below 0.99
    assert any(line.startswith("relu.int8.tflite: cosine mean") for line in gate_failures(report))
    strict = Gates(float_agreement=1.01)  # no file can agree on more than every pair
    report, _ = parity_report(model, card, files[:1], pairs, keys, crops, strict)
    assert not report["passed"] and gate_failures(report) == ["relu.float.onnx: decision agreement 1.0000 < 1.01"]


def test_parity_cli_exits_6_when_the_gate_fails(base: Path, data_dir: Path, tmp_path: Path) -> None:
    import typer
    from typer.testing import CliRunner

    from shrinkface.export.cli import register
    from shrinkface.export.parity import ParityGateError
    from shrinkface.runtime.errors import ExitCode

    fx.lfw_subset(base, data_dir)
    aligned = base / "lfw-aligned"
    app = typer.Typer()
    register(app)
    relu_int8 = next(a.path for a in fx.exports("relu", base, data_dir).artifacts if a.path.name == "relu.int8.tflite")
    args = [
        "parity",
        str(fx.checkpoint("relu", base, data_dir)),
        str(relu_int8),
        "--aligned",
        str(aligned),
        "--max-pairs",
        str(fx.PAIRS),
        "--out",
        str(tmp_path),
    ]
    result = CliRunner().invoke(app, args)
    assert isinstance(result.exception, ParityGateError) and result.exception.exit_code == ExitCode.MODEL == 6
    assert "relu.int8.tflite: cosine mean" in str(result.exception)
    assert (tmp_path / "parity.json").is_file() and (tmp_path / "parity_hist.png").is_file()
    assert CliRunner().invoke(app, [*args, "--no-gate"]).exit_code == 0


# -- golden vectors ------------------------------------------------------------------------------------------
def _golden_files() -> list[Path]:
    return sorted(GOLDEN.glob("embed_*.json"))


def test_artifact_labels_tell_files_of_the_same_name_apart() -> None:
    # two exports of one student into two folders used to share one row name (and one histogram panel)
    paths = ["artifacts/a/student.int8.tflite", "artifacts/b/student.int8.tflite", "x/student.float.tflite"]
    assert artifact_labels(paths) == ["a/student.int8.tflite", "b/student.int8.tflite", "student.float.tflite"]
    assert artifact_labels([Path("m.onnx")]) == ["m.onnx"]
    assert artifact_labels(["p/a/m.onnx", "q/a/m.onnx"]) == ["p/a/m.onnx", "q/a/m.onnx"]
    assert artifact_labels(["m.onnx", "m.onnx"]) == ["m.onnx", "m.onnx"]  # the same file twice: nothing to add


def test_golden_files_exist_and_are_small() -> None:
    files = _golden_files()
    assert len(files) >= 4, "run tests/golden/make_embed_golden.py"
    assert sum(f.stat().st_size for f in files) < 2_000_000


@pytest.mark.parametrize("path", _golden_files(), ids=lambda p: p.stem)
def test_golden_vector(path: Path, base: Path, data_dir: Path) -> None:
    record = json.loads(path.read_text())
    assert record["format"] == FORMAT
    source = data_dir / record["source"]
    data = source.read_bytes()
    assert hashlib.sha256(data).hexdigest() == record["source_sha256"]
    # landmarks → crop, recomputed by the one alignment function
    image = load_image(data)
    crop = decode(record["crop"])
    size = tuple(crop.shape[:2])
    assert np.array_equal(align_face(image, np.array(record["landmarks"]), np.array(record["template"]), size), crop)
    # the float torch model of the recorded checkpoint gives the reference embedding
    ckpt = fx.checkpoint("prelu", base, data_dir)
    model, card = load_student_checkpoint(ckpt)
    assert record["reference"]["source_sha256"] == card.source_sha256, "the golden files come from another student"
    with torch.no_grad():
        raw = model(torch.from_numpy(card.preprocess(crop[None])))[0].numpy()
    np.testing.assert_allclose(raw, record["reference"]["raw_output"], rtol=1e-4, atol=1e-4)
    exported = {a.path.name: a for a in fx.exports("prelu", base, data_dir).artifacts}
    for entry in record["models"]:
        model_card = ModelCard.from_dict(entry["card"])
        x = model_card.preprocess(crop[None])  # crop → exact input tensor
        stored = decode(record["inputs"][entry["input"]])
        assert x.dtype == stored.dtype and np.array_equal(x, stored), entry["file"]
        art = exported[entry["file"]]
        embedder = load_embedder(art.path)
        emb = embedder.embed(crop[None], flip=False)[0]
        if art.sha256 == entry["sha256"]:  # the same file: the same numbers
            np.testing.assert_allclose(emb, entry["embedding"], atol=2e-6)
        else:  # int8 calibration may differ on another CPU; the float files must not
            assert entry["card"]["extra"]["export"]["quant"] == "int8", f"{entry['file']} is not reproducible"
            assert float(np.dot(emb, entry["embedding"])) > 0.99
        assert float(np.dot(emb, record["reference"]["embedding"])) == pytest.approx(
            entry["cosine_to_reference"], abs=1e-5 if art.sha256 == entry["sha256"] else 0.01
        )
