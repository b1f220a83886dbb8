"""``shrinkface enroll|unlock|identify|calibrate`` and ``shrinkface gallery list|remove|export|import``.

Human output by default, one JSON object with ``--json`` (errors too). Exit codes come from
``errors.ExitCode``: 0 unlocked/identified, 1 rejected/unknown, 3 no face, 4 several faces, 5 bad image or
video, 6 model, 7 gallery, 10 enrolment quality. A failing command never changes the gallery.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from shrinkface.runtime.errors import ExitCode, ShrinkfaceError

console = Console()
err = Console(stderr=True)

GALLERY_HELP = "Gallery file (default $SHRINKFACE_GALLERY or ~/.local/share/shrinkface/gallery.db)."
MODEL_HELP = "Model file (.onnx/.tflite) or asset name (default $SHRINKFACE_MODEL or faceplugin)."
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object (errors included).")]
ModelOpt = Annotated[str | None, typer.Option("--model", help=MODEL_HELP)]
GalleryOpt = Annotated[Path | None, typer.Option("--gallery", help=GALLERY_HELP)]
ThresholdOpt = Annotated[float | None, typer.Option("--threshold", help="Override the model card's threshold.")]
ReduceOpt = Annotated[str, typer.Option("--reduce", help="Score over a person's templates: max or mean.")]
CARD_HELP = (
    "Model card JSON to use (default: the calibrated <model>.card.json beside the model file when present, "
    "else the card inside the model)."
)
TRACK_HELP = (
    "Camera/video: detect inside a small region around the last face (full-frame detection on the first "
    "frame, every 15th frame and when the face is lost); --no-track detects on every full frame."
)
CardOpt = Annotated[Path | None, typer.Option("--card", help=CARD_HELP)]


def _gallery_path(gallery: Path | None) -> Path:
    from shrinkface.runtime.gallery import default_gallery_path

    return Path(gallery).expanduser() if gallery else default_gallery_path()


def _emit(as_json: bool, payload: dict[str, Any], human: Callable[[], None]) -> None:
    if as_json:
        typer.echo(json.dumps(payload, sort_keys=True))
    else:
        human()


def _errors_as_json(func: Callable[..., Any]) -> Callable[..., Any]:
    """With ``--json`` a ``ShrinkfaceError`` becomes ``{"error": …, "exit_code": …}`` on stdout + code."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ShrinkfaceError as exc:
            if not kwargs.get("as_json"):
                raise
            payload = {"error": str(exc), "kind": type(exc).__name__, "exit_code": int(exc.exit_code)}
            typer.echo(json.dumps(payload, sort_keys=True))
            raise typer.Exit(int(exc.exit_code)) from exc

    return wrapper


def _decision_exit(accepted: bool) -> None:
    raise typer.Exit(int(ExitCode.OK if accepted else ExitCode.REJECTED))


def register(app: typer.Typer) -> None:
    """Add the enrol/unlock/identify/calibrate commands and the ``gallery`` group to ``app``."""
    from shrinkface.runtime.decide import identify as identify_fn
    from shrinkface.runtime.decide import verify as verify_fn
    from shrinkface.runtime.gallery import Gallery
    from shrinkface.runtime.recognizer import Recognizer

    @app.command("enroll")
    @_errors_as_json
    def enroll(
        name: Annotated[str, typer.Argument(help="The person's name.")],
        images: Annotated[list[Path], typer.Argument(help="One or more images of that person.")],
        model: ModelOpt = None,
        card: CardOpt = None,
        gallery: GalleryOpt = None,
        no_quality: Annotated[bool, typer.Option("--no-quality", help="Skip size/blur/pose checks.")] = False,
        skip_bad: Annotated[
            bool, typer.Option("--skip-bad", help="Enrol the good images, report the bad ones.")
        ] = False,
        as_json: JsonOpt = False,
    ) -> None:
        """Enrol NAME from IMAGEs (each: exactly one clear, frontal face); all or nothing is stored."""
        path = _gallery_path(gallery)
        if path.exists():
            Gallery(path).close()  # a damaged or newer gallery fails here, before the slow part
        rec = Recognizer.load(model, path, card)
        accepted, failures = [], []
        for image in images:
            try:
                accepted.append(rec.enrolment(image, quality=not no_quality))
            except ShrinkfaceError as exc:
                if not skip_bad:
                    raise
                failures.append((image, exc))
        if not accepted:
            raise failures[0][1]  # --skip-bad, but every image was bad: the first reason and its exit code
        rejected = [{"image": str(i), "error": str(e), "exit_code": int(e.exit_code)} for i, e in failures]
        templates = rec.templates(accepted)
        with Gallery(path, create=True) as store:
            added = store.enroll(name, templates)
        payload = {
            "name": name,
            "enrolled": added,
            "rejected": rejected,
            "model": rec.card.name,
            "model_sha256": rec.sha256,
            "gallery": str(path),
        }

        def human() -> None:
            console.print(f"[green]enrolled[/green] {name}: {added} template(s) with {rec.card.name} in {path}")
            for bad in rejected:
                console.print(f"[yellow]skipped[/yellow] {bad['error']}")

        _emit(as_json, payload, human)

    @app.command("unlock")
    @_errors_as_json
    def unlock(
        image: Annotated[Path | None, typer.Argument(help="An image to check (or use --camera / --video).")] = None,
        camera: Annotated[str | None, typer.Option("--camera", help="Camera index (or 'picamera').")] = None,
        video: Annotated[Path | None, typer.Option("--video", help="A video file.")] = None,
        name: Annotated[
            str | None, typer.Option("--name", help="Claimed person (1:1); default: anyone enrolled.")
        ] = None,
        model: ModelOpt = None,
        card: CardOpt = None,
        gallery: GalleryOpt = None,
        threshold: ThresholdOpt = None,
        reduce: ReduceOpt = "max",
        window: Annotated[int, typer.Option("--window", min=1, help="Frames the camera decision looks at.")] = 5,
        vote: Annotated[str, typer.Option("--vote", help="Camera decision: mean score or majority.")] = "mean",
        frames: Annotated[int | None, typer.Option("--frames", min=1, help="Stop after this many frames.")] = None,
        keep_going: Annotated[bool, typer.Option("--keep-going", help="Do not stop at the first unlock.")] = False,
        preview: Annotated[bool, typer.Option("--preview", help="Show a window (needs OpenCV with GUI).")] = False,
        track: Annotated[bool, typer.Option("--track/--no-track", help=TRACK_HELP)] = True,
        as_json: JsonOpt = False,
    ) -> None:
        """Unlock from an image, a camera or a video: exit 0 when accepted, 1 when rejected."""
        sources = [s for s in (image, camera, video) if s is not None]
        if len(sources) != 1:
            raise typer.BadParameter("give exactly one of IMAGE, --camera N or --video FILE")
        if reduce not in ("max", "mean") or vote not in ("mean", "majority"):
            raise typer.BadParameter("--reduce is max|mean and --vote is mean|majority")
        path = _gallery_path(gallery)
        with Gallery(path) as store:
            rec = Recognizer.load(model, path, card)
            templates = store.templates(rec.sha256, name)  # a gallery/model mismatch is reported first
            thr = rec.threshold(threshold)
        if image is not None:
            embedding, _ = rec.embed_image(image)
            decide = verify_fn if name else None
            result = (
                decide(templates, embedding, name, thr, reduce)  # type: ignore[arg-type]
                if decide
                else identify_fn(templates, embedding, thr, reduce)  # type: ignore[arg-type]
            )
            payload = {
                "decision": "unlocked" if result.accepted else "rejected",
                **result.to_dict(),
                "model": rec.card.name,
                "card": rec.card_source,
            }

            def human() -> None:
                if result.accepted:
                    console.print(f"[green]unlocked[/green]: {result.name} (score {result.score:.3f} ≥ {thr:.3f})")
                else:
                    console.print(
                        f"[red]rejected[/red]: best match {result.candidate} scored {result.score:.3f} < {thr:.3f}"
                    )

            _emit(as_json, payload, human)
            _decision_exit(result.accepted)
        summary = _run_camera(
            rec, templates, thr, camera, video, window, vote, reduce, frames, keep_going, preview, as_json, track
        )
        who = summary.unlocked_by if not keep_going else summary.decision
        payload = {
            "decision": "unlocked" if who else "rejected",
            "name": who,
            "threshold": thr,
            "model": rec.card.name,
            "card": rec.card_source,
            **summary.to_dict(),
        }

        def human_loop() -> None:
            stages = ", ".join(f"{k} {v:.1f} ms" for k, v in summary.stage_ms().items())
            console.print(f"{len(summary.frames)} frames, {summary.fps:.1f} FPS ({stages})")
            kinds = ", ".join(f"{k} {v['frames']} × {v['median_ms']:.1f} ms" for k, v in summary.detect_ms().items())
            console.print(f"detection: {kinds}")
            when = "at the last frame" if keep_going else "in any window"
            verdict = f"[green]unlocked[/green]: {who}" if who else f"[red]rejected[/red]: nobody accepted {when}"
            console.print(verdict)
            if keep_going and summary.unlocked_by and not who:
                console.print(f"(earlier frames had unlocked {summary.unlocked_by})")

        _emit(as_json, payload, human_loop)
        _decision_exit(bool(who))

    @app.command("identify")
    @_errors_as_json
    def identify(
        image: Annotated[Path, typer.Argument(help="An image with one face.")],
        model: ModelOpt = None,
        card: CardOpt = None,
        gallery: GalleryOpt = None,
        threshold: ThresholdOpt = None,
        reduce: ReduceOpt = "max",
        top: Annotated[int, typer.Option("--top", min=1, help="How many candidates to show.")] = 3,
        as_json: JsonOpt = False,
    ) -> None:
        """Who is this? The best enrolled person above the threshold (exit 0), else unknown (exit 1)."""
        if reduce not in ("max", "mean"):
            raise typer.BadParameter("--reduce is max or mean")
        path = _gallery_path(gallery)
        with Gallery(path) as store:
            rec = Recognizer.load(model, path, card)
            templates = store.templates(rec.sha256)  # a gallery/model mismatch is reported first
            thr = rec.threshold(threshold)
        embedding, _ = rec.embed_image(image)
        result = identify_fn(templates, embedding, thr, reduce, top_k=top)  # type: ignore[arg-type]
        payload = {"identity": result.name, **result.to_dict(), "model": rec.card.name, "card": rec.card_source}

        def human() -> None:
            head = f"[green]{result.name}[/green]" if result.accepted else "[red]unknown[/red]"
            console.print(f"{head} (threshold {thr:.3f})")
            for who, score in result.top:
                console.print(f"  {who}: {score:.3f}")

        _emit(as_json, payload, human)
        _decision_exit(result.accepted)

    from shrinkface.runtime.cli_gallery import register_calibrate, register_gallery

    register_gallery(app)
    register_calibrate(app)


def _run_camera(
    rec: Any,
    templates: Any,
    thr: float,
    camera: str | None,
    video: Path | None,
    window: int,
    vote: str,
    reduce: str,
    frames: int | None,
    keep_going: bool,
    preview: bool,
    as_json: bool,
    track: bool = True,
) -> Any:
    from shrinkface.runtime.camera import DEFAULT_TRACK, open_frames, run_loop

    if camera is not None:
        backend = "picamera2" if camera in ("pi", "picamera") else "auto"
        index = 0 if backend == "picamera2" else _camera_index(camera)
        source: int | str = index
    else:
        backend, source = "opencv", str(video)
    stream = open_frames(source, backend, frames)  # type: ignore[arg-type]

    def show(result: Any) -> None:
        if not as_json and result.decision:
            err.print(f"frame {result.index}: {result.decision} ({result.score:.3f})")

    return run_loop(
        stream,
        rec.pipeline,
        templates,
        thr,
        window,
        vote,
        reduce,  # type: ignore[arg-type]
        stop_when_accepted=not keep_going,
        preview=preview,
        on_frame=show,
        track=DEFAULT_TRACK if track else None,
    )


def _camera_index(text: str) -> int:
    try:
        index = int(text)
    except ValueError:
        raise typer.BadParameter(f"--camera takes an index (0, 1, …) or 'picamera', got {text!r}") from None
    if index < 0:
        raise typer.BadParameter("--camera index must be ≥ 0")
    return index
