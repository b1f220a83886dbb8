"""End to end on real LFW faces through the CLI: enrol three people, unlock and identify them from other
photos, reject impostors, and refuse every kind of bad input with its own exit code and an unchanged gallery.

Images are LFW positions that are not in pairs.txt; this is evaluation at the model card's threshold (nothing
here is tuned on LFW). The embedder is the fast 512-d faceplugin teacher; its card's threshold is the one
calibrated in docs/results/calibration_faceplugin.json (glint-celeb6 + UTKFace, FAR 2e-5), and every decision
here is checked to use exactly that threshold. A model file's calibrated sidecar card (``<model>.card.json``)
is loaded automatically, ``--card`` overrides it, and a sidecar calibrated for another file is refused.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import typer

from shrinkface.runtime import cli_unlock
from shrinkface.runtime.errors import ExitCode, ShrinkfaceError

ENROL = {"George_W_Bush": [1, 2], "Colin_Powell": [1, 2], "Tony_Blair": [2, 3]}
PROBE = {"George_W_Bush": [5, 6], "Colin_Powell": [3, 4], "Tony_Blair": [6, 7]}
IMPOSTORS = [("Donald_Rumsfeld", 1), ("Gerhard_Schroeder", 1), ("George_Clooney", 3)]


def _cli(args: list[str], capsys) -> tuple[int, str]:
    """Run a command in-process the way ``shrinkface`` does (errors → their exit codes)."""
    app = typer.Typer()
    cli_unlock.register(app)
    try:
        code = app([str(a) for a in args], standalone_mode=False)
    except ShrinkfaceError as exc:
        code = int(exc.exit_code)
    except typer.TyperException as exc:  # click's usage errors, as typer vendors them
        code = exc.exit_code
    return int(code or 0), capsys.readouterr().out


def _state(path: Path) -> tuple[bytes, list[tuple]]:
    """The gallery file's bytes and all rows (read with plain sqlite3)."""
    data = path.read_bytes()
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT * FROM people").fetchall() + db.execute("SELECT * FROM templates").fetchall()
    return data, rows


@pytest.fixture(scope="module")
def enrolled(tmp_path_factory, lfw_image) -> Path:
    """A gallery with three enrolled people (2 images each), made through the CLI."""
    gallery = tmp_path_factory.mktemp("e2e") / "gallery.db"
    app = typer.Typer()
    cli_unlock.register(app)
    for name, numbers in ENROL.items():
        code = app(
            ["enroll", name, *[str(lfw_image(name, i)) for i in numbers], "--gallery", str(gallery)],
            standalone_mode=False,
        )
        assert not code
    return gallery


@pytest.fixture()
def gallery(enrolled: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "gallery.db"
    shutil.copy(enrolled, copy)
    return copy


ROOT = Path(__file__).resolve().parents[1]
CALIBRATED = json.loads((ROOT / "docs" / "results" / "calibration_faceplugin.json").read_text())["threshold"]


def test_enrolled_people_unlock_and_impostors_do_not(gallery, lfw_image, capsys) -> None:
    code, out = _cli(["gallery", "list", "--gallery", gallery, "--json"], capsys)
    people = json.loads(out)["people"]
    assert code == 0 and [(p["name"], sum(p["templates"].values())) for p in people] == [
        ("Colin_Powell", 2),
        ("George_W_Bush", 2),
        ("Tony_Blair", 2),
    ]
    for name, numbers in PROBE.items():
        for number in numbers:
            image = lfw_image(name, number)
            code, out = _cli(["unlock", image, "--name", name, "--gallery", gallery, "--json"], capsys)
            result = json.loads(out)
            assert code == ExitCode.OK and result["decision"] == "unlocked", (name, number, result)
            assert result["score"] >= result["threshold"] == CALIBRATED and result["card"] == "model"
            code, out = _cli(["identify", image, "--gallery", gallery, "--json"], capsys)
            assert code == ExitCode.OK and json.loads(out)["identity"] == name
            assert json.loads(out)["threshold"] == CALIBRATED
    for name, number in IMPOSTORS:
        image = lfw_image(name, number)
        code, out = _cli(["unlock", image, "--name", "George_W_Bush", "--gallery", gallery, "--json"], capsys)
        assert code == ExitCode.REJECTED and json.loads(out)["decision"] == "rejected"
        assert json.loads(out)["threshold"] == CALIBRATED
        code, out = _cli(["identify", image, "--gallery", gallery, "--json"], capsys)
        result = json.loads(out)
        assert code == ExitCode.REJECTED and result["identity"] is None
        assert result["score"] < result["threshold"] == CALIBRATED and len(result["top"]) == 3


def test_model_file_sidecar_card_is_used_and_checked(gallery, tmp_path, asset_file, lfw_image, capsys) -> None:
    import hashlib

    from shrinkface.runtime import decide
    from shrinkface.runtime.assets import get_asset

    model = tmp_path / "teacher.onnx"  # the same bytes as the asset: the gallery's templates belong to it
    shutil.copy(asset_file("faceplugin"), model)
    sha = hashlib.sha256(model.read_bytes()).hexdigest()
    card = get_asset("faceplugin").card
    fit = decide.calibrate(np.linspace(-0.3, 0.5, 50_001), np.linspace(0.3, 0.9, 100))  # FAR 1/50,000
    sidecar = decide.save_card(decide.calibrated_card(card, fit, sha, "unit test"), tmp_path / "teacher.onnx.card.json")
    saved = json.loads(sidecar.read_text())["extra"]["calibration"]
    assert saved["model_sha256"] == sha and saved["dataset"] == "unit test" and saved["date"][:2] == "20"
    probe = lfw_image("Colin_Powell", 3)
    args = ["unlock", probe, "--name", "Colin_Powell", "--model", model, "--gallery", gallery, "--json"]
    code, out = _cli(args, capsys)  # the file carries no card: the sidecar supplies it, threshold included
    result = json.loads(out)
    assert code == ExitCode.OK and result["threshold"] == fit.threshold and result["card"] == str(sidecar)
    other = decide.save_card(card.replace(threshold=0.99), tmp_path / "strict.card.json")
    code, out = _cli([*args, "--card", other], capsys)  # --card wins over the sidecar
    assert code == ExitCode.REJECTED and json.loads(out)["threshold"] == 0.99
    decide.save_card(decide.calibrated_card(card, fit, "ab" * 32, "another model"), sidecar)
    code, out = _cli(args, capsys)
    error = json.loads(out)
    assert code == ExitCode.MODEL and "calibrated for model abababababab" in error["error"]


def test_bad_input_gets_its_exit_code_and_leaves_the_gallery_alone(gallery, tmp_path, lfw_image, capsys):
    good = lfw_image("George_W_Bush", 5)
    grey = tmp_path / "grey.png"
    import cv2

    cv2.imwrite(str(grey), np.full((240, 320, 3), 128, np.uint8))
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[:4000])
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    junk_model = tmp_path / "junk.onnx"
    junk_model.write_bytes(os.urandom(2048))
    empty_gallery = tmp_path / "empty.db"
    from shrinkface.runtime.gallery import Gallery

    Gallery(empty_gallery, create=True).close()
    g = ["--gallery", gallery]
    cases = [
        (["enroll", "X", grey, *g], ExitCode.NO_FACE),
        (["enroll", "X", lfw_image("Tony_Blair", 1), *g], ExitCode.MANY_FACES),  # two people in the photo
        (["enroll", "X", truncated, *g], ExitCode.BAD_IMAGE),
        (["enroll", "X", empty, *g], ExitCode.BAD_IMAGE),
        (["enroll", "X", tmp_path / "missing.jpg", *g], ExitCode.BAD_IMAGE),
        (["enroll", "X", lfw_image("Tony_Blair", 4), *g], ExitCode.QUALITY),  # head turned away
        (["enroll", "X", good, grey, *g], ExitCode.NO_FACE),  # one bad image: nothing is stored
        (["enroll", "George_W_Bush", good, "--model", junk_model, *g], ExitCode.MODEL),
        (["unlock", good, "--name", "Nobody", *g], ExitCode.GALLERY),
        (["unlock", good, "--model", "sface", *g], ExitCode.GALLERY),  # templates of another model
        (["unlock", good, "--model", tmp_path / "missing.onnx", *g], ExitCode.MODEL),
        (["unlock", good, "--model", "no_such_asset", *g], ExitCode.MODEL),
        (["unlock", good, "--model", junk_model, *g], ExitCode.MODEL),
        (["unlock", grey, *g], ExitCode.NO_FACE),
        (["unlock", lfw_image("Tony_Blair", 1), *g], ExitCode.MANY_FACES),
        (["identify", truncated, *g], ExitCode.BAD_IMAGE),
        (["unlock", good, "--gallery", tmp_path / "none.db"], ExitCode.GALLERY),
        (["identify", good, "--gallery", empty_gallery], ExitCode.GALLERY),
        (["gallery", "remove", "Nobody", *g], ExitCode.GALLERY),
        (["gallery", "import", truncated, *g], ExitCode.GALLERY),
        (["unlock", *g], ExitCode.USAGE),
    ]
    before = _state(gallery)
    for args, expected in cases:
        code, _ = _cli(args, capsys)
        assert code == expected, (args, code)
        assert _state(gallery) == before, args
    assert not (tmp_path / "none.db").exists()
    code, out = _cli(["unlock", grey, *g, "--json"], capsys)
    error = json.loads(out)
    assert code == ExitCode.NO_FACE and error["exit_code"] == 3 and "no face" in error["error"]


def test_gallery_export_import_remove(gallery, tmp_path, capsys) -> None:
    for suffix in (".json", ".npz"):
        out_file = tmp_path / f"export{suffix}"
        code, _ = _cli(["gallery", "export", out_file, "--gallery", gallery], capsys)
        assert code == 0
        copy = tmp_path / f"copy{suffix}.db"
        code, out = _cli(["gallery", "import", out_file, "--gallery", copy, "--json"], capsys)
        assert code == 0 and json.loads(out) == {"added": 6, "skipped": 0, "gallery": str(copy)}
        with sqlite3.connect(gallery) as a, sqlite3.connect(copy) as b:
            query = "SELECT name, embedding, model_sha256 FROM templates JOIN people p ON p.id = person_id"
            assert sorted(a.execute(query).fetchall()) == sorted(b.execute(query).fetchall())
    code, out = _cli(["gallery", "remove", "Tony_Blair", "--gallery", gallery, "--json"], capsys)
    assert code == 0 and json.loads(out)["removed"] == 2
    code, out = _cli(["gallery", "list", "--gallery", gallery, "--json"], capsys)
    assert [p["name"] for p in json.loads(out)["people"]] == ["Colin_Powell", "George_W_Bush"]


def test_calibrate_writes_the_card_that_unlock_uses(gallery, tmp_path, data_dir, lfw_image, capsys) -> None:
    rng = np.random.default_rng(0)
    impostor, genuine = rng.normal(0.05, 0.1, 60_000), rng.normal(0.6, 0.1, 500)
    np.savez(tmp_path / "scores.npz", impostor=impostor, genuine=genuine)
    code, out = _cli(["calibrate", "--scores", tmp_path / "scores.npz", "--gallery", gallery, "--json"], capsys)
    result = json.loads(out)
    # independent: with 60,000 scores, FAR 1/50,000 allows one false accept → just above the 2nd highest
    expected = float(np.nextafter(np.sort(impostor)[-2], np.inf))
    assert code == 0 and result["threshold"] == expected
    assert result["tar"] == pytest.approx(np.mean(genuine >= expected))
    card = gallery.parent / "faceplugin.card.json"
    assert Path(result["card"]) == card and json.loads(card.read_text())["threshold"] == expected
    code, out = _cli(["unlock", lfw_image("Colin_Powell", 3), "--gallery", gallery, "--json"], capsys)
    assert json.loads(out)["threshold"] == expected and json.loads(out)["card"] == str(card)
    # calibration from labelled, aligned non-LFW faces
    people = data_dir / "glint-celeb6" / "images"
    code, out = _cli(
        [
            "calibrate",
            "--people",
            people,
            "--aligned",
            "--per-person",
            "4",
            "--far",
            "0.01",
            "--gallery",
            gallery,
            "--json",
        ],
        capsys,
    )
    result = json.loads(out)
    assert code == 0 and result["n_genuine"] == 6 * 6 and result["n_impostor"] == 24 * 23 // 2 - 36
    # strangers that are already aligned crops (--strangers-aligned): 4 labelled people, 3 crops of the others
    people4, strangers = tmp_path / "people4", tmp_path / "strangers"
    strangers.mkdir()
    for i, person in enumerate(sorted(p for p in people.iterdir() if p.is_dir())):
        if i < 4:
            people4.mkdir(exist_ok=True)
            (people4 / person.name).symlink_to(person)
        else:
            for crop in sorted(person.glob("*.jpg"))[: 2 if i == 4 else 1]:
                shutil.copy(crop, strangers / f"{person.name}_{crop.name}")
    args = ["calibrate", "--people", people4, "--aligned", "--per-person", "4", "--strangers", strangers]
    code, out = _cli([*args, "--strangers-aligned", "--far", "0.01", "--gallery", gallery, "--json"], capsys)
    result = json.loads(out)
    assert code == 0 and result["n_genuine"] == 4 * 6 and result["n_impostor"] == 16 * 15 // 2 - 24 + 3 * 16
    # LFW is the test set: calibrating on it is refused
    code, _ = _cli(["calibrate", "--people", data_dir / "lfw" / "images", "--gallery", gallery], capsys)
    assert code == ExitCode.DATA
    aligned_lfw = tmp_path / "aligned_lfw"  # an aligned copy is LFW too (its align.json names the source)
    aligned_lfw.mkdir()
    (aligned_lfw / "align.json").write_text(json.dumps({"src": str(data_dir / "lfw" / "images")}))
    code, _ = _cli(["calibrate", "--people", aligned_lfw, "--aligned", "--gallery", gallery], capsys)
    assert code == ExitCode.DATA


def test_installed_command_exit_codes(enrolled, lfw_image, tmp_path) -> None:
    exe = Path(sys.executable).with_name("shrinkface")
    env = {**os.environ, "SHRINKFACE_MODEL": "faceplugin"}

    def run(*args: object) -> subprocess.CompletedProcess:
        return subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, env=env, timeout=120)

    accepted = run("unlock", lfw_image("Tony_Blair", 6), "--gallery", enrolled, "--name", "Tony_Blair")
    assert accepted.returncode == 0 and "unlocked" in accepted.stdout
    rejected = run("unlock", lfw_image("George_Clooney", 3), "--gallery", enrolled, "--json")
    assert rejected.returncode == 1 and json.loads(rejected.stdout)["decision"] == "rejected"
    missing = run("identify", tmp_path / "nope.jpg", "--gallery", enrolled)
    assert missing.returncode == 5 and "no such file" in missing.stderr
    # the message is one unbroken line (not wrapped at 80 columns off a terminal) and a "[...]" in it is kept
    long = tmp_path / ("d" * 120) / "[x] nope.jpg"
    missing = run("identify", long, "--gallery", enrolled)
    assert missing.returncode == 5 and f"error: {long}: no such file\n" in missing.stderr


def test_skip_bad_and_stored_quality(gallery, tmp_path, lfw_image, capsys) -> None:
    grey = tmp_path / "grey.png"
    import cv2

    cv2.imwrite(str(grey), np.full((200, 200, 3), 128, np.uint8))
    good = lfw_image("Donald_Rumsfeld", 2)
    args = ["enroll", "Donald_Rumsfeld", good, grey, "--skip-bad", "--gallery", gallery, "--json"]
    code, out = _cli(args, capsys)
    result = json.loads(out)
    assert code == 0 and result["enrolled"] == 1
    assert [(r["image"], r["exit_code"]) for r in result["rejected"]] == [(str(grey), ExitCode.NO_FACE)]
    with sqlite3.connect(gallery) as db:
        quality, source = db.execute(
            "SELECT quality, source FROM templates JOIN people p ON p.id = person_id WHERE name = ?",
            ("Donald_Rumsfeld",),
        ).fetchone()
    report = json.loads(quality)
    assert source == str(good) and {"eye_distance", "blur", "yaw", "roll", "box"} <= set(report)
    assert report["blur"] > 25 and abs(report["yaw"]) < 0.3
    code, _ = _cli(["enroll", "Nobody", grey, "--skip-bad", "--gallery", gallery], capsys)
    assert code == ExitCode.NO_FACE  # every image bad: the first reason's code
