"""A ready-to-use recogniser: model + detector + pipeline + the card whose threshold decides.

Resolves ``--model`` (a model file, or an asset name such as ``faceplugin``) and the card that decides: an
explicit ``--card`` JSON wins; else a calibrated sidecar (``<model file>.card.json`` next to a model file, else
``<card name>.card.json`` next to the gallery) is loaded automatically; else the card inside the model file
(or the asset manifest's). A card JSON calibrated for another model file (its ``extra.calibration.model_sha256``)
is refused. Turns images into quality-checked embeddings and loads the gallery templates of this model only.
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from shrinkface.runtime.card import ModelCard
from shrinkface.runtime.decide import card_path_for, load_card, threshold_of
from shrinkface.runtime.errors import AssetError, ModelCardError, ModelError
from shrinkface.runtime.gallery import NewTemplate
from shrinkface.runtime.quality import QualityPolicy, QualityReport, assess, check, subject

MODEL_ENV = "SHRINKFACE_MODEL"
#: Until the distilled student ships, the default model is the fast 512-d teacher from the asset manifest.
DEFAULT_MODEL = "faceplugin"


@functools.lru_cache(maxsize=8)
def _embedder(model: str, card_file: str | None = None) -> Any:
    from shrinkface.runtime.embed import resolve_embedder

    path = Path(model).expanduser()
    sidecar = path.with_name(path.name + ".card.json")
    card_json = Path(card_file) if card_file is not None else sidecar if path.is_file() and sidecar.is_file() else None
    card = None
    if card_json is not None:  # refuse a card calibrated for another file before it configures the model
        sha = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
        card = load_card(card_json, sha)
    try:
        return resolve_embedder(model, card=card)
    except AssetError as exc:
        raise ModelError(f"--model {model!r} is neither a model file nor a usable asset: {exc}") from exc


@functools.lru_cache(maxsize=1)
def _detector() -> Any:
    from shrinkface.runtime.assets import asset_path
    from shrinkface.runtime.detect import FaceDetector

    return FaceDetector(asset_path("yunet"))


@dataclass
class Enrolment:
    """One accepted enrolment image: its crop, quality report and source."""

    crop: np.ndarray
    report: QualityReport
    source: str


@dataclass
class Recognizer:
    """The model, its effective card (calibrated threshold included) and the face pipeline."""

    model: str
    gallery_path: Path
    embedder: Any
    card: ModelCard
    card_source: str
    policy: QualityPolicy = field(default_factory=QualityPolicy)

    @classmethod
    def load(cls, model: str | None, gallery_path: str | Path, card: str | Path | None = None) -> Recognizer:
        """Resolve ``model`` (default ``$SHRINKFACE_MODEL`` or ``faceplugin``) and the card that decides:
        ``card`` (a card JSON) if given, else the calibrated sidecar when present, else the model's own."""
        name = model or os.environ.get(MODEL_ENV) or DEFAULT_MODEL
        gallery_path = Path(gallery_path).expanduser()
        if card is not None:
            card_file = Path(card).expanduser()
            if not card_file.is_file():
                raise ModelCardError(f"--card {card_file}: no such file")
            embedder = _embedder(name, str(card_file))
            return cls(name, gallery_path, embedder, load_card(card_file, embedder.sha256), str(card_file))
        embedder = _embedder(name)
        model_file = name if Path(name).expanduser().is_file() else None
        effective, card_source = embedder.card, "model"
        sidecar = card_path_for(model_file, embedder.card.name, gallery_path)
        if sidecar.is_file():
            effective, card_source = load_card(sidecar, embedder.sha256), str(sidecar)
        return cls(name, gallery_path, embedder, effective, card_source)

    @property
    def sha256(self) -> str:
        """sha256 of the model file: the identity of the embedding space templates belong to."""
        return str(self.embedder.sha256)

    @functools.cached_property
    def pipeline(self) -> Any:
        """The ``FacePipeline`` (YuNet + alignment + this embedder)."""
        from shrinkface.runtime.pipeline import FacePipeline

        return FacePipeline(_detector(), self.embedder, "largest")

    def threshold(self, override: float | None = None) -> float:
        """The decision threshold: ``override``, else the card's."""
        return threshold_of(self.card, override)

    def face_crop(self, image: np.ndarray) -> tuple[np.ndarray, Any, int]:
        """(aligned crop, face, background faces) of the one person in ``image``."""
        faces = self.pipeline.detector.detect(image)
        face, background = subject(faces, self.policy)
        return self.pipeline.crop(image, face), face, background

    def embed_image(self, source: str | Path | np.ndarray) -> tuple[np.ndarray, Any]:
        """(D,) embedding of the one person in an image file or RGB array, and their face."""
        image = self.pipeline.image(source)
        crop, face, _ = self.face_crop(image)
        return self.embedder.embed(crop[None])[0], face

    def enrolment(self, source: str | Path, quality: bool = True) -> Enrolment:
        """Load, detect and quality-check one enrolment image (``QualityError`` etc. name the file)."""
        from shrinkface.runtime.errors import ShrinkfaceError

        try:
            image = self.pipeline.image(source)
            crop, face, background = self.face_crop(image)
        except ShrinkfaceError as exc:
            if str(source) in str(exc):
                raise
            raise type(exc)(f"{source}: {exc}") from exc
        report = assess(face, crop, background)
        if quality:
            check(report, self.policy, str(source))
        return Enrolment(crop, report, str(source))

    def templates(self, enrolments: list[Enrolment]) -> list[NewTemplate]:
        """Embed accepted enrolment images (one batch) into gallery templates of this model."""
        embeddings = self.embedder.embed(np.stack([e.crop for e in enrolments]))
        return [
            NewTemplate(emb, self.sha256, e.report.to_dict(), e.source)
            for emb, e in zip(embeddings, enrolments, strict=True)
        ]
