"""`bench runtime` measures each stage on real images and reports consistent numbers (no timing asserts)."""

from __future__ import annotations

from pathlib import Path

from shrinkface.runtime.bench_runtime import STAGES, bench_runtime, render_markdown


def test_bench_runtime_reports_every_stage(lfw_image, asset_file) -> None:
    images = [lfw_image("Aaron_Peirsol", 1), lfw_image("Abel_Pacheco", 1)]
    report = bench_runtime(["expo_mobilefacenet"], images, Path(asset_file("yunet")), runs=3, warmup=1)
    (row,) = report["results"]
    assert row["model"] == "expo_mobilefacenet" and row["embedding_size"] == 192
    assert all(row[s] > 0 for s in STAGES)
    assert abs(row["total"] - sum(row[s] for s in STAGES)) < 1e-2
    assert report["image_sizes"] == ["250x250"]
    assert "| expo_mobilefacenet |" in render_markdown(report)
