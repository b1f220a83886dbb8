"""`shrinkface bench models` is torch-free (runtime/): it times real model files carrying a card, on real aligned
training crops, and refuses LFW crops. Timings are not asserted, only their consistency."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shrinkface.runtime.aligned_crops import load_aligned_crops
from shrinkface.runtime.assets import asset_path, get_asset
from shrinkface.runtime.bench_models import bench_models, render_markdown
from shrinkface.runtime.card_io import write_card_onnx, write_card_tflite
from shrinkface.runtime.errors import DataError


@pytest.fixture(scope="module")
def carded(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The installed expo MobileFaceNet (.tflite) and faceplugin (.onnx) with their manifest card inside."""
    out = tmp_path_factory.mktemp("carded")
    tfl = out / "expo.tflite"
    tfl.write_bytes(
        write_card_tflite(asset_path("expo_mobilefacenet").read_bytes(), get_asset("expo_mobilefacenet").card)
    )
    onnx = out / "faceplugin.onnx"
    onnx.write_bytes(write_card_onnx(asset_path("faceplugin").read_bytes(), get_asset("faceplugin").card))
    return [tfl, onnx]


def test_bench_models_rows(carded: list[Path], data_dir: Path) -> None:
    card = get_asset("expo_mobilefacenet").card
    crops, names = load_aligned_crops(data_dir / "glint-celeb6" / "images", 4, card)
    assert crops.shape == (4, 112, 112, 3) and len(set(names)) == 4
    report = bench_models(carded, crops, threads=(1,), runs=5, warmup=1)
    rows = {r["file"]: r for r in report["results"]}
    assert set(rows) == {"expo.tflite", "faceplugin.onnx"}
    for path in carded:
        row = rows[path.name]
        assert row["bytes"] == path.stat().st_size and row["runs"] == 5 and row["threads"] == 1
        stats = row["invoke"]
        assert 0 < stats["min_ms"] <= stats["p10_ms"] <= stats["median_ms"] <= stats["p90_ms"]
    assert rows["faceplugin.onnx"]["runtime"]["providers"] == ["CPUExecutionProvider"]
    lite = rows["expo.tflite"]["runtime"]
    assert lite["backend"] == "litert" and lite["delegate_partitions"] >= 1  # XNNPACK is applied
    assert lite["ops"]["CONV_2D"] > 10 and "DELEGATE" not in lite["ops"]
    assert "| expo.tflite | litert |" in render_markdown(report)
    twice = dict(report, results=[rows["expo.tflite"], {**rows["expo.tflite"], "path": "other/expo.tflite"}])
    table = render_markdown(twice)  # two files of one name: the folder tells them apart
    assert f"| {carded[0].parent.name}/expo.tflite | litert |" in table and "| other/expo.tflite |" in table


def test_bench_models_cli_without_torch(carded: list[Path], data_dir: Path, tmp_path: Path) -> None:
    """The runtime CLI (what a Pi has) registers `bench models`; torch/export stay unimported."""
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from shrinkface.runtime import cli_bench\n"
        "import typer\n"
        "app = typer.Typer()\n"
        "cli_bench.register(app)\n"
        f"r = CliRunner().invoke(app, ['bench', 'models', {str(carded[0])!r}, '--runs', '3', '--warmup', '1',"
        f" '--out', {str(tmp_path)!r}])\n"
        "print(r.output)\n"
        "bad = sorted(n for n in sys.modules if n.split('.')[0] in ('torch', 'torchao', 'litert_torch')"
        " or n.startswith(('shrinkface.train', 'shrinkface.export')))\n"
        "sys.exit(r.exit_code or (3 if bad else 0))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    report = json.loads((tmp_path / "bench.json").read_text())
    assert [r["file"] for r in report["results"]] == ["expo.tflite"] and report["crops"] == 32
    assert "expo.tflite" in (tmp_path / "bench.md").read_text()


def test_bench_models_refuses_lfw_crops(carded: list[Path], data_dir: Path) -> None:
    import typer

    from shrinkface.runtime.cli_bench import register

    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(app, ["bench", "models", str(carded[0]), "--crops", str(data_dir / "lfw" / "images")])
    assert isinstance(result.exception, DataError) and "LFW" in str(result.exception)
    with pytest.raises(DataError, match="LFW"):
        load_aligned_crops(data_dir / "lfw" / "images", 4, get_asset("expo_mobilefacenet").card)
