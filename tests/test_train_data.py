"""Training data: identity disjointness against LFW pairs, scanning, crop packs, seeded augmentation, batches.

Real crops from glint-celeb6 (already 112×112 aligned) and the real LFW pairs.txt.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("torch")

from shrinkface.runtime.errors import DataError
from shrinkface.train.augment import augment_batch
from shrinkface.train.config import AugmentConfig, DataConfig, SourceConfig
from shrinkface.train.data import (
    BatchDataset,
    EpochBatches,
    IdentityOverlapError,
    TargetSource,
    build_crop_pack,
    decode_crop,
    make_loader,
    normalise_name,
    open_pack,
    read_pair_names,
    scan_training_set,
)

NO_AUG = AugmentConfig(
    mirror=0.0,
    shift_px=0.0,
    scale=0.0,
    brightness=0.0,
    contrast=0.0,
    saturation=0.0,
    grayscale=0.0,
    blur=0.0,
    erase=0.0,
)


@pytest.fixture(scope="module")
def glint(data_dir: Path) -> Path:
    return data_dir / "glint-celeb6" / "images"


@pytest.fixture(scope="module")
def crops(glint: Path) -> np.ndarray:
    """16 real aligned crops (RGB uint8)."""
    files = sorted(glint.glob("*/*.jpg"))[::97][:16]
    return np.stack([decode_crop(p) for p in files])


def _class_tree(root: Path, glint: Path, names: dict[str, str], per: int = 3) -> Path:
    """root/<display name>/<copies of `per` crops of glint person>."""
    for display, person in names.items():
        (root / display).mkdir(parents=True)
        for p in sorted((glint / person).glob("*.jpg"))[:per]:
            shutil.copy(p, root / display / p.name)
    return root


def test_name_normalisation_matches_case_spaces_underscores_accents() -> None:
    assert normalise_name("Hugh_Jackman") == "hugh jackman"
    assert normalise_name("  HUGH-jackman ") == "hugh jackman"
    assert normalise_name("Hugh  Jackman") == "hugh jackman"
    assert normalise_name("José_María") == "jose maria"
    assert normalise_name("Robert Downey Jr.") == normalise_name("Robert_Downey_Jr")
    assert normalise_name("Hugh_Laurie") != normalise_name("Hugh_Jackman")


def test_pair_names_from_the_real_lfw_file(lfw_dir: Path) -> None:
    names = read_pair_names(lfw_dir / "pairs.txt")
    assert len(names) == 4281  # the data README: 6,000 pairs over 4,281 people
    assert {"Abel_Pacheco", "Akhmed_Zakayev", "Amber_Tamblyn"} <= names  # the file's first lines


def test_glint_identities_are_disjoint_from_lfw_pairs(glint: Path, lfw_dir: Path) -> None:
    cfg = DataConfig(sources=[SourceConfig(str(glint), limit_per_class=2)], pairs=str(lfw_dir / "pairs.txt"))
    ts = scan_training_set(cfg)
    assert ts.report["excluded_identities"] == [] and ts.report["identities"] == 6
    assert sorted(ts.classes) == sorted(p.name for p in glint.iterdir())
    assert len(ts) == 12 and list(np.bincount(ts.labels)) == [2] * 6


def test_training_on_an_evaluation_identity_is_refused(tmp_path: Path, glint: Path, lfw_dir: Path) -> None:
    # a folder named like an LFW pairs person under another spelling must still be caught
    root = _class_tree(
        tmp_path / "train",
        glint,
        {"abel pacheco": "Hugh_Laurie", "Barack_Obama": "Barack_Obama", "AMBER-TAMBLYN": "Miley_Cyrus"},
    )
    cfg = DataConfig(sources=[SourceConfig(str(root))], pairs=str(lfw_dir / "pairs.txt"))
    with pytest.raises(IdentityOverlapError) as err:
        scan_training_set(cfg)
    assert "abel pacheco" in str(err.value) and "AMBER-TAMBLYN" in str(err.value)
    assert "Barack_Obama" not in str(err.value)
    assert isinstance(err.value, DataError)

    cfg.on_overlap = "exclude"
    ts = scan_training_set(cfg)
    assert sorted(ts.report["excluded_identities"]) == ["AMBER-TAMBLYN", "abel pacheco"]
    assert ts.report["excluded_images"] == 6
    assert ts.classes == ["Barack_Obama"] and len(ts) == 3


def test_unlabelled_rows_get_minus_one_or_pseudo_classes(tmp_path: Path, glint: Path) -> None:
    flat = tmp_path / "flat"
    flat.mkdir()
    for p in sorted((glint / "Mark_Ruffalo").glob("*.jpg"))[:4]:
        shutil.copy(p, flat / p.name)
    labelled = _class_tree(tmp_path / "lab", glint, {"Barack_Obama": "Barack_Obama", "Hugh_Laurie": "Hugh_Laurie"}, 2)
    sources = [SourceConfig(str(labelled)), SourceConfig(str(flat), kind="unlabelled")]
    ts = scan_training_set(DataConfig(sources=sources, pairs=None))
    assert list(ts.labels) == [0, 0, 1, 1, -1, -1, -1, -1]
    assert "NOT checked" in ts.report["warning"] and "unlabelled_note" in ts.report
    ts = scan_training_set(DataConfig(sources=sources, pairs=None, unlabelled_labels="pseudo"))
    assert list(ts.labels) == [0, 0, 1, 1, 2, 3, 4, 5] and ts.num_classes == 6


def test_keys_are_sha256_of_file_bytes(tmp_path: Path, glint: Path) -> None:
    import hashlib

    root = _class_tree(tmp_path / "t", glint, {"Barack_Obama": "Barack_Obama"}, 2)
    ts = scan_training_set(DataConfig(sources=[SourceConfig(str(root))], pairs=None))
    assert ts.keys == [hashlib.sha256(p.read_bytes()).hexdigest() for p in ts.paths]


def test_crop_pack_holds_the_decoded_rgb_crops(tmp_path: Path, glint: Path) -> None:
    import cv2

    files = sorted((glint / "Hugh_Jackman").glob("*.jpg"))[:5]
    pack = open_pack(build_crop_pack(files, [str(i) for i in range(5)], tmp_path))
    for i, f in enumerate(files):
        assert np.array_equal(pack[i], cv2.imread(str(f))[..., ::-1])  # BGR → RGB independently


def test_a_crop_that_is_not_112_is_a_data_error(tmp_path: Path, lfw_image) -> None:
    with pytest.raises(DataError, match="not an aligned 112×112 crop"):
        build_crop_pack([lfw_image("Aaron_Peirsol", 1)], ["k"], tmp_path)


def test_augmentation_is_seeded_and_mirror_is_a_pure_flip(crops: np.ndarray) -> None:
    x = torch.from_numpy(crops)
    cfg = AugmentConfig(erase=0.3)
    a, ma = augment_batch(x, cfg, seed=7)
    b, mb = augment_batch(x, cfg, seed=7)
    c, _ = augment_batch(x, cfg, seed=8)
    assert torch.equal(a, b) and torch.equal(ma, mb)
    assert not torch.equal(a, c)
    assert a.dtype == torch.uint8 and a.shape == x.shape
    only_mirror = AugmentConfig(**{**NO_AUG.__dict__, "mirror": 0.5})
    out, flags = augment_batch(x, only_mirror, seed=3)
    assert 0 < int(flags.sum()) < len(flags)
    for i in range(len(x)):
        expected = crops[i, :, ::-1] if flags[i] else crops[i]
        assert np.array_equal(out[i].numpy(), expected)


def test_jitter_moves_pixels_but_keeps_the_face(crops: np.ndarray) -> None:
    cfg = AugmentConfig(**{**NO_AUG.__dict__, "shift_px": 6.0, "scale": 0.05})
    out, _ = augment_batch(torch.from_numpy(crops), cfg, seed=1)
    diff = np.abs(out.numpy().astype(int) - crops.astype(int)).mean(axis=(1, 2, 3))
    assert (diff > 0.5).all()  # every crop moved
    corr = [np.corrcoef(out[i].numpy().ravel(), crops[i].ravel())[0, 1] for i in range(len(crops))]
    assert min(corr) > 0.5  # small jitter, same face


def test_batches_pair_mirrored_crops_with_mirrored_teacher_embeddings(tmp_path: Path, glint: Path) -> None:
    files = sorted((glint / "James_Spader").glob("*.jpg"))[:12]
    pack = build_crop_pack(files, [f"j{i}" for i in range(12)], tmp_path)
    emb = np.zeros((20, 2, 4), np.float32)  # rows 8..19 used, in reverse order
    rows = np.arange(19, 7, -1)
    emb[rows, 0, 0] = np.arange(12)  # un-mirrored: +index
    emb[rows, 1, 0] = -np.arange(12) - 100  # mirrored: a different value
    np.save(tmp_path / "emb.npy", emb)
    ds = BatchDataset(
        pack,
        np.arange(12),
        {"t": TargetSource(str(tmp_path / "emb.npy"), rows)},
        AugmentConfig(**{**NO_AUG.__dict__, "mirror": 0.5}),
    )
    batch = ds[([5, 0, 11, 3, 7, 2], 42)]
    idx, flags = batch["index"].numpy(), batch["mirrored"].numpy()
    assert flags.any() and not flags.all()
    expected = np.where(flags, -idx - 100, idx)
    assert np.array_equal(batch["targets"]["t"][:, 0].numpy(), expected)
    raw = open_pack(pack)
    for j, i in enumerate(idx):
        assert np.array_equal(batch["images"][j].numpy(), raw[i, :, ::-1] if flags[j] else raw[i])


def test_flip_mean_targets_are_the_same_normalised_mean_for_both_views(tmp_path: Path, glint: Path) -> None:
    files = sorted((glint / "James_Spader").glob("*.jpg"))[:6]
    pack = build_crop_pack(files, [f"j{i}" for i in range(6)], tmp_path)
    emb = np.zeros((6, 2, 2), np.float32)
    emb[:, 0] = [1.0, 0.0]  # crop: along x
    emb[:, 1] = [0.6, 0.8]  # mirror: unit length, 53.13 degrees away
    np.save(tmp_path / "emb.npy", emb)
    ds = BatchDataset(
        pack,
        np.arange(6),
        {"t": TargetSource(str(tmp_path / "emb.npy"), np.arange(6), flip_mean=True)},
        AugmentConfig(**{**NO_AUG.__dict__, "mirror": 0.5}),
    )
    batch = ds[([0, 1, 2, 3, 4, 5], 42)]
    flags = batch["mirrored"].numpy()
    assert flags.any() and not flags.all()
    # (1, 0) + (0.6, 0.8) = (1.6, 0.8), length sqrt(3.2): the bisector at 26.57 degrees, for either view
    half = np.deg2rad(np.rad2deg(np.arctan2(0.8, 0.6)) / 2)
    expected = np.array([np.cos(half), np.sin(half)], np.float32)
    assert np.allclose(batch["targets"]["t"].numpy(), expected[None].repeat(6, 0), atol=1e-6)


def test_loader_is_identical_with_or_without_workers_and_resumes_mid_epoch(tmp_path: Path, glint: Path) -> None:
    files = sorted((glint / "Hugh_Laurie").glob("*.jpg"))[:40]
    pack = build_crop_pack(files, [f"h{i}" for i in range(40)], tmp_path)
    ds = BatchDataset(pack, np.arange(40), {}, AugmentConfig())
    batches = EpochBatches(40, 8, seed=5)
    plain = [b["images"] for b in make_loader(ds, batches, epoch=1, start=0, workers=0)]
    workers = [b["images"] for b in make_loader(ds, batches, epoch=1, start=0, workers=2)]
    resumed = [b["images"] for b in make_loader(ds, batches, epoch=1, start=3, workers=2)]
    assert len(plain) == 5
    assert all(torch.equal(a, b) for a, b in zip(plain, workers, strict=True))
    assert all(torch.equal(a, b) for a, b in zip(plain[3:], resumed, strict=True))
    assert batches.indices(1) != batches.indices(2)  # reshuffled every epoch


def test_ranks_get_disjoint_shards_of_the_same_permutation() -> None:
    r0, r1 = EpochBatches(50, 8, seed=1, rank=0, world=2), EpochBatches(50, 8, seed=1, rank=1, world=2)
    a, b = r0.indices(0), r1.indices(0)
    assert len(a) == len(b) == 25 and not set(a) & set(b)
    assert len(r0) == len(r1) == 6  # 25 // 4 batches of 4 per rank
    with pytest.raises(DataError, match="does not split"):
        EpochBatches(50, 7, seed=1, world=2)
