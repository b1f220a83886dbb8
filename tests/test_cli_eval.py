"""``shrinkface eval lfw`` end to end on a 12-pair mini LFW made of real LFW images (one made unalignable)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from shrinkface.runtime import cli_eval, lfw, lfw_eval
from shrinkface.runtime.dataset import align_folder
from shrinkface.runtime.embed import load_asset_embedder
from shrinkface.runtime.errors import ModelCardError, ModelError
from shrinkface.runtime.metrics import kfold_accuracy

PER_FOLD = 3


@pytest.fixture(scope="module")
def mini(tmp_path_factory: pytest.TempPathFactory, lfw_dir: Path) -> dict:
    """A data root with lfw/pairs.txt (2 folds × 3 + 3 real pairs) and symlinked images, aligned once."""
    root = tmp_path_factory.mktemp("mini")
    lines = (lfw_dir / "pairs.txt").read_text().splitlines()
    chosen = []
    for fold in range(2):
        start = 1 + fold * 600
        chosen += lines[start : start + PER_FOLD] + lines[start + 300 : start + 300 + PER_FOLD]
    (root / "lfw").mkdir()
    (root / "lfw" / "pairs.txt").write_text(f"2\t{PER_FOLD}\n" + "\n".join(chosen) + "\n")
    pairs = lfw.parse_pairs(root / "lfw" / "pairs.txt")
    broken = pairs.pairs[1].right  # a same-person pair of fold 0 loses one image to a face-less picture
    for key in pairs.image_keys:
        dst = root / "lfw" / "images" / key
        dst.parent.mkdir(parents=True, exist_ok=True)
        if key == broken:
            cv2.imwrite(str(dst), np.full((250, 250, 3), 128, np.uint8))
        else:
            dst.symlink_to(lfw_dir / "images" / key)
    aligned = root / "aligned"
    align_folder(root / "lfw" / "images", aligned, workers=0, progress=False)
    return {"root": root, "pairs": pairs, "broken": broken, "aligned": aligned}


def test_evaluate_lfw_counts_failed_pairs_as_wrong(mini: dict) -> None:
    report = lfw_eval.evaluate_lfw(["faceplugin"], mini["root"] / "lfw", mini["aligned"], flip=False, progress=False)
    pairs = mini["pairs"]
    uses_broken = [mini["broken"] in (p.left, p.right) for p in pairs.pairs]
    assert sum(uses_broken) == 2  # Akhmed_Zakayev 1 3 and 2 3
    assert report["n_pairs"] == 12 and report["invalid_pairs"] == 2
    assert [f["key"] for f in report["failed_images"]] == [mini["broken"]]
    assert "NoFaceError" in report["failed_images"][0]["reason"]
    # independent recomputation: embed the crops directly, score the valid pairs, run the fold protocol
    embedder = load_asset_embedder("faceplugin")
    crop = {
        k: cv2.imread(str(mini["aligned"] / k).replace(".jpg", ".png"))[..., ::-1]
        for k in pairs.image_keys
        if k != mini["broken"]
    }
    scores, valid = np.zeros(12), np.ones(12, bool)
    for i, p in enumerate(pairs.pairs):
        if p.left in crop and p.right in crop:
            a, b = embedder.embed(np.stack([crop[p.left], crop[p.right]]), flip=False)
            scores[i] = float(a @ b)
        else:
            valid[i] = False
    want = kfold_accuracy(scores, pairs.issame, pairs.folds, valid)
    got = report["results"][0]["lfw_10fold"]
    np.testing.assert_allclose(got["fold_accuracies"], want.accuracies, atol=1e-9)
    assert got["fold_accuracies"][0] <= 4 / 6  # the two broken pairs can never be right
    avsa = report["results"][0]["all_vs_all"]
    n = report["n_images"]
    assert avsa["n_genuine"] + avsa["n_impostor"] == n * (n - 1) // 2


def test_cli_eval_ensemble_writes_report(mini: dict, tmp_path: Path) -> None:
    app = typer.Typer()
    cli_eval.register(app)
    out = tmp_path / "out"
    args = [
        "eval",
        "lfw",
        "-m",
        "faceplugin",
        "-m",
        "expo_mobilefacenet",
        "--flip",
        "--aligned",
        str(mini["aligned"]),
        "--data-dir",
        str(mini["root"]),
        "--out",
        str(out),
        "--far",
        "0.01",
        "--far",
        "0.1",
        "--cache-dir",
        str(tmp_path / "emb"),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "lfw.json").read_text())
    assert [r["model"] for r in report["results"]] == [
        "faceplugin",
        "expo_mobilefacenet",
        "ensemble(faceplugin+expo_mobilefacenet)",
    ]
    assert report["settings"]["flip"] is True
    assert [t["far"] for t in report["results"][2]["all_vs_all"]["tar_at_far"]] == [0.01, 0.1]
    assert "| ensemble(faceplugin+expo_mobilefacenet) |" in (out / "lfw.md").read_text()
    assert (out / "lfw_roc.png").stat().st_size > 1000
    cached = list((tmp_path / "emb").glob("*.npz"))
    assert len(cached) == 2  # a second run reuses them
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0
    assert json.loads((out / "lfw.json").read_text())["results"] == report["results"]


def test_two_worker_processes_match_in_process(mini: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lfw_eval, "CHUNK", 6)
    paths = sorted(mini["aligned"].glob("*/*.png"))
    embedder = lfw_eval.resolve_embedder("faceplugin")
    one = lfw_eval.embed_paths("faceplugin", embedder, paths, flip=False, workers=1, progress=False)
    two = lfw_eval.embed_paths("faceplugin", embedder, paths, flip=False, workers=2, progress=False)
    np.testing.assert_allclose(one, two, atol=1e-6)


def test_bad_model_and_mismatched_crops(mini: dict) -> None:
    with pytest.raises(ModelError, match="neither a model file nor an asset"):
        lfw_eval.resolve_embedder("no_such_model")
    index = lfw_eval.crop_index(mini["aligned"], mini["pairs"].image_keys)
    small = lfw_eval.CropIndex(index.paths, index.failed, 96, index.template * 96 / 112)
    with pytest.raises(ModelCardError, match="96×96"):
        lfw_eval.check_crops_fit(small, lfw_eval.resolve_embedder("faceplugin"))
