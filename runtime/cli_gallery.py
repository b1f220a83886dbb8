"""``shrinkface gallery list|remove|export|import`` and ``shrinkface calibrate`` (added by cli_unlock)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.table import Table

from shrinkface.runtime.cli_unlock import (
    CardOpt,
    GalleryOpt,
    JsonOpt,
    ModelOpt,
    _emit,
    _errors_as_json,
    _gallery_path,
    console,
    err,
)
from shrinkface.runtime.errors import DataError, ShrinkfaceError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def register_gallery(app: typer.Typer) -> None:
    """Add the ``gallery`` command group."""
    from shrinkface.runtime.gallery import Gallery

    group = typer.Typer(help="List, remove, export and import enrolled people.", no_args_is_help=True)
    app.add_typer(group, name="gallery")

    @group.command("list")
    @_errors_as_json
    def list_(gallery: GalleryOpt = None, as_json: JsonOpt = False) -> None:
        """Everyone enrolled, with template counts per model (sha256 prefix)."""
        path = _gallery_path(gallery)
        with Gallery(path) as store:
            people = store.people()
        payload = {"gallery": str(path), "people": [p.to_dict() for p in people]}

        def human() -> None:
            out = Table("name", "templates", "models", "enrolled")
            for p in people:
                models = ", ".join(f"{sha[:12]}×{n}" for sha, n in sorted(p.templates.items()))
                out.add_row(p.name, str(sum(p.templates.values())), models, p.created)
            console.print(out)
            console.print(f"{len(people)} people in {path}")

        _emit(as_json, payload, human)

    @group.command("remove")
    @_errors_as_json
    def remove(
        name: Annotated[str, typer.Argument(help="The person to delete, with all their templates.")],
        gallery: GalleryOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Delete a person and all their templates."""
        path = _gallery_path(gallery)
        with Gallery(path) as store:
            removed = store.remove(name)
        _emit(
            as_json,
            {"name": name, "removed": removed},
            lambda: console.print(f"removed {name} ({removed} template(s))"),
        )

    @group.command("export")
    @_errors_as_json
    def export(
        out: Annotated[Path, typer.Argument(help="Target file: .json or .npz.")],
        gallery: GalleryOpt = None,
        model_sha256: Annotated[str | None, typer.Option("--model-sha256", help="Only this model's templates.")] = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Write every template (with its model's sha256) to a JSON or npz file."""
        path = _gallery_path(gallery)
        with Gallery(path) as store:
            count = store.export(out, model_sha256)
        _emit(
            as_json,
            {"exported": count, "file": str(out)},
            lambda: console.print(f"exported {count} template(s) to {out}"),
        )

    @group.command("import")
    @_errors_as_json
    def import_(
        source: Annotated[Path, typer.Argument(help="A .json or .npz file written by `gallery export`.")],
        gallery: GalleryOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Merge an export into the gallery (all or nothing; identical templates are skipped)."""
        path = _gallery_path(gallery)
        from shrinkface.runtime.gallery_io import read_export

        read_export(source)  # validate before a new gallery file is created
        with Gallery(path, create=True) as store:
            added, skipped = store.import_(source)
        _emit(
            as_json,
            {"added": added, "skipped": skipped, "gallery": str(path)},
            lambda: console.print(f"imported {added} template(s), {skipped} already present"),
        )


def _spread(files: list[Path], count: int) -> list[Path]:
    """``count`` files spread evenly over the sorted list (deterministic)."""
    if len(files) <= count:
        return files
    return [files[i] for i in np.linspace(0, len(files) - 1, count).round().astype(int)]


def _images(folder: Path) -> list[Path]:
    return sorted(f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)


def _people_images(root: Path, per_person: int) -> list[tuple[str, Path]]:
    if not root.is_dir():
        raise DataError(f"{root} is not a folder of people (one sub-folder of images per person)")
    out = []
    for person in sorted(p for p in root.iterdir() if p.is_dir()):
        out += [(person.name, f) for f in _spread(_images(person), per_person)]
    if len({name for name, _ in out}) < 2:
        raise DataError(f"{root}: calibration needs at least two people (sub-folders with images)")
    return out


def _stranger_images(root: Path, count: int, pattern: str = "*") -> list[tuple[str, Path]]:
    if not root.is_dir():
        raise DataError(f"{root} is not a folder of images")
    files = [f for f in _images(root) if f.match(pattern)]
    if not files:
        raise DataError(f"{root}: no image matches {pattern!r}")
    return [(f"/stranger/{f.name}", f) for f in _spread(files, count)]


def _crop(rec: Any, path: Path, aligned: bool, pad: float) -> np.ndarray:
    import cv2

    from shrinkface.runtime.image import load_image

    image = load_image(path)
    if aligned:
        height, width = rec.card.input_size
        if image.shape[:2] != (height, width):
            raise DataError(f"{path}: {image.shape[1]}×{image.shape[0]}, not a {width}×{height} aligned crop")
        return image
    if pad > 0:  # tightly cropped faces (UTKFace) need a border for the detector
        dy, dx = round(pad * image.shape[0]), round(pad * image.shape[1])
        image = cv2.copyMakeBorder(image, dy, dy, dx, dx, cv2.BORDER_REPLICATE)
    return rec.face_crop(image)[0]


def _embed(rec: Any, items: list[tuple[str, Path, bool]], pad: float) -> tuple[np.ndarray, list[str], int]:
    """Embeddings and labels of the usable images; unreadable or face-less ones are skipped and counted."""
    crops, labels, skipped = [], [], 0
    for name, path, aligned in items:
        try:
            crops.append(_crop(rec, path, aligned, pad))
        except DataError:
            raise
        except ShrinkfaceError:  # unreadable image, no face, several faces
            skipped += 1
            continue
        labels.append(name)
    if len({label for label in labels if not label.startswith("/stranger/")}) < 2:
        raise DataError("fewer than two people had usable faces for calibration")
    embeddings = np.concatenate([rec.embedder.embed(np.stack(crops[i : i + 64])) for i in range(0, len(crops), 64)])
    return embeddings, labels, skipped


def _beside_pairs(folder: Path) -> bool:
    """Whether ``folder`` (or, for an aligned folder, the source its align.json names) sits beside a pairs.txt."""
    import contextlib
    import json

    roots = [folder]
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        roots.append(Path(json.loads((folder / "align.json").read_text())["src"]))
    return any((p / "pairs.txt").exists() for r in roots for p in (r, r.parent))


def register_calibrate(app: typer.Typer) -> None:
    """Add ``calibrate``."""
    from shrinkface.runtime import decide
    from shrinkface.runtime.recognizer import Recognizer

    @app.command("calibrate")
    @_errors_as_json
    def calibrate(
        people: Annotated[Path | None, typer.Option("--people", help="One sub-folder of images per person.")] = None,
        scores: Annotated[Path | None, typer.Option("--scores", help="npz: impostor, genuine arrays.")] = None,
        strangers: Annotated[Path | None, typer.Option("--strangers", help="Folder of other people's faces.")] = None,
        n_strangers: Annotated[int, typer.Option("--n-strangers", min=1, help="Stranger images used.")] = 400,
        glob: Annotated[
            str,
            typer.Option("--glob", help="Only strangers whose file name matches (UTKFace adults: '[2-9][0-9]_*')."),
        ] = "*",
        pad: Annotated[float, typer.Option("--pad", min=0, help="Border (fraction) before detection.")] = 0.0,
        aligned: Annotated[bool, typer.Option("--aligned", help="--people images are already aligned crops.")] = False,
        strangers_aligned: Annotated[
            bool, typer.Option("--strangers-aligned", help="--strangers images are already aligned crops.")
        ] = False,
        per_person: Annotated[int, typer.Option("--per-person", min=2, help="Images used per person.")] = 100,
        far: Annotated[float, typer.Option("--far", help="Target false-accept rate.")] = decide.DEFAULT_FAR,
        model: ModelOpt = None,
        card: CardOpt = None,
        gallery: GalleryOpt = None,
        out: Annotated[Path | None, typer.Option("--out", help="Card JSON (default: by model or gallery).")] = None,
        allow_eval_data: Annotated[bool, typer.Option("--allow-eval-data", help="Allow a pairs.txt folder.")] = False,
        as_json: JsonOpt = False,
    ) -> None:
        """Pick the threshold for a target FAR from labelled faces (never the LFW test pairs) and store it in
        the model card JSON that `unlock` and `identify` read."""
        if (people is None) == (scores is None):
            raise typer.BadParameter("give exactly one of --people DIR or --scores FILE.npz")
        if not 0 < far < 1:
            raise typer.BadParameter("--far must be between 0 and 1")
        path = _gallery_path(gallery)
        rec = Recognizer.load(model, path, card)
        if scores is not None:
            try:
                with np.load(scores, allow_pickle=False) as npz:
                    impostor = npz["impostor"]
                    genuine = npz["genuine"] if "genuine" in npz.files else None
            except (OSError, KeyError, ValueError) as exc:
                raise DataError(f"{scores}: need an .npz with an 'impostor' array ({exc})") from exc
            dataset, skipped = str(scores), 0
        else:
            folders = [people] + ([strangers] if strangers else [])
            if not allow_eval_data and any(_beside_pairs(f) for f in folders):
                raise DataError(
                    f"{people} looks like LFW (pairs.txt beside it): it is test data, never calibrate on it. "
                    "Use other identities, or --allow-eval-data if these people are not in the test pairs"
                )
            items = [(n, f, aligned) for n, f in _people_images(people, per_person)]
            if strangers is not None:
                items += [(n, f, strangers_aligned) for n, f in _stranger_images(strangers, n_strangers, glob)]
            embeddings, labels, skipped = _embed(rec, items, pad)
            is_stranger = np.array([label.startswith("/stranger/") for label in labels])
            known = [label for label, s in zip(labels, is_stranger, strict=True) if not s]
            impostor, genuine = decide.pair_scores(embeddings[~is_stranger], known, embeddings[is_stranger])
            n_str = int(is_stranger.sum())
            dataset = f"{people}: {len(labels) - n_str} images of {len(set(labels)) - n_str} people"
            if strangers is not None:
                dataset += f"; {strangers}: {n_str} strangers matching {glob!r} (pad {pad:g})"
        try:
            result = decide.calibrate(impostor, genuine, far)
        except ValueError as exc:
            raise DataError(f"calibration failed: {exc}") from exc
        card = decide.calibrated_card(rec.card, result, rec.sha256, dataset)
        model_file = rec.model if Path(rec.model).expanduser().is_file() else None
        target = decide.save_card(card, out or decide.card_path_for(model_file, rec.card.name, path))
        payload = {
            **result.to_dict(),
            "card": str(target),
            "model": rec.card.name,
            "skipped_images": skipped,
            "dataset": dataset,
        }

        def human() -> None:
            tar = "n/a" if result.tar is None else f"{result.tar:.4f}"
            console.print(
                f"threshold {result.threshold:.4f} for FAR {far:g} (achieved {result.far:.2e} on "
                f"{result.n_impostor} impostor pairs), TAR {tar} on {result.n_genuine} genuine pairs"
            )
            console.print(f"card written to {target}")
            if not result.resolvable:
                err.print(
                    f"[yellow]warning[/yellow]: {result.n_impostor} impostor pairs cannot measure FAR {far:g}"
                    f" (need ≥ {int(1 / far)}); the threshold sits just above the highest impostor score"
                )

        _emit(as_json, payload, human)
