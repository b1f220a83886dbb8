"""The uniform model soup (train/soup.py): the mean of the ingredients' weights, refusals with reasons, and a soup
the exporter's reader loads like any student."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from shrinkface.export.checkpoint import load_student_checkpoint, save_student_checkpoint  # noqa: E402
from shrinkface.runtime.errors import ModelError  # noqa: E402
from shrinkface.train.checkpoint import load_checkpoint  # noqa: E402
from shrinkface.train.soup import write_soup  # noqa: E402
from shrinkface.train.students import build_student  # noqa: E402

CONFIG = {"arch": "mobilefacenet", "embedding_size": 128, "width": 0.5, "activation": "prelu"}


def _students(tmp_path: Path, shifts: list[float]) -> list[Path]:
    """Copies of one student whose weights (not BN statistics) are moved by ``shift`` each."""
    torch.manual_seed(0)
    base = build_student(**CONFIG).eval()
    paths = []
    for i, shift in enumerate(shifts):
        model = build_student(**CONFIG)
        model.load_state_dict(base.state_dict())
        with torch.no_grad():
            for p in model.parameters():
                p.add_(shift)
        paths.append(save_student_checkpoint(model, CONFIG, tmp_path / f"s{i}.pt"))
    return paths


def test_soup_is_the_mean_of_the_weights(tmp_path) -> None:
    """Ingredients θ + 0.1, θ + 0.2, θ + 0.6 give θ + 0.3 in every parameter; buffers stay as they were."""
    paths = _students(tmp_path, [0.1, 0.2, 0.6])
    out = write_soup(paths, tmp_path / "soup.pt", "mean3")
    soup, first = load_checkpoint(out), load_checkpoint(paths[0])
    params = {n for n, _ in build_student(**CONFIG).named_parameters()}
    for key, value in soup["student"].items():
        if key in params:
            torch.testing.assert_close(value, first["student"][key] + 0.2, atol=1e-6, rtol=0)
        else:
            assert torch.equal(value, first["student"][key]), key
    assert [i["path"] for i in soup["soup"]["ingredients"]] == [str(p) for p in paths]
    model, card = load_student_checkpoint(out)  # the exporter reads it
    assert card.name == "mean3" and card.embedding_size == 128
    x = torch.rand(2, 3, 112, 112) * 2 - 1
    assert model(x).shape == (2, 128)


def test_soup_refuses_what_cannot_be_averaged(tmp_path) -> None:
    """One student alone, another architecture, or different BatchNorm running statistics: clear errors."""
    a, b = _students(tmp_path, [0.0, 0.1])
    with pytest.raises(ModelError, match="at least two"):
        write_soup([a], tmp_path / "x.pt", "x")
    wide = {**CONFIG, "width": 1.0}
    other = save_student_checkpoint(build_student(**wide), wide, tmp_path / "w.pt")
    with pytest.raises(ModelError, match="student_config differs"):
        write_soup([a, other], tmp_path / "x.pt", "x")
    ck = load_checkpoint(b)
    key = next(k for k in ck["student"] if k.endswith("running_mean"))
    ck["student"][key] = ck["student"][key] + 1.0
    torch.save(ck, tmp_path / "bn.pt")
    with pytest.raises(ModelError, match="running_mean differs"):
        write_soup([a, tmp_path / "bn.pt"], tmp_path / "x.pt", "x")
    assert not (tmp_path / "x.pt").exists()
