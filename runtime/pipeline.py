"""Image → face → aligned crop → embedding, with the card's template and crop size and per-stage timings."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from shrinkface.runtime.align import align_face
from shrinkface.runtime.detect import Face, FaceDetector, Policy
from shrinkface.runtime.embed import Embedder, load_asset_embedder
from shrinkface.runtime.errors import ImageError
from shrinkface.runtime.image import load_image

ImageInput = str | Path | bytes | np.ndarray


class FacePipeline:
    """YuNet detection + the one 5-point alignment + an embedder.

    ``policy`` picks the face when several are found (``largest``, ``central`` or ``single``). After each
    ``embed_image`` call, ``timings`` holds milliseconds per stage: load, detect, align, embed.
    """

    def __init__(
        self, detector: FaceDetector, embedder: Embedder, policy: Policy = "largest", flip: bool | None = None
    ) -> None:
        self.detector = detector
        self.embedder = embedder
        self.policy = policy
        self.flip = flip
        self.timings: dict[str, float] = {}

    @classmethod
    def from_assets(cls, embedder: str = "faceplugin", policy: Policy = "largest", threads: int = 1) -> FacePipeline:
        """YuNet plus a teacher from the asset manifest."""
        from shrinkface.runtime.assets import asset_path

        return cls(FaceDetector(asset_path("yunet")), load_asset_embedder(embedder, threads=threads), policy)

    @staticmethod
    def image(source: ImageInput) -> np.ndarray:
        """An RGB uint8 H×W×3 array from a path, encoded bytes or an array (taken as RGB)."""
        if isinstance(source, np.ndarray):
            if source.ndim != 3 or source.shape[2] != 3 or source.dtype != np.uint8:
                raise ImageError(f"expected an H×W×3 uint8 RGB array, got {source.shape} {source.dtype}")
            return source
        return load_image(source)

    def face(self, image: np.ndarray) -> Face:
        """The face to use under the pipeline's policy (``NoFaceError`` / ``ManyFacesError`` otherwise)."""
        return self.detector.detect_one(image, self.policy)

    def crop(self, image: np.ndarray, face: Face) -> np.ndarray:
        """The aligned crop of ``face`` the embedder expects (its card's template and input size)."""
        card = self.embedder.card
        return align_face(image, face.landmarks, card.template_array(), card.input_size)

    def embed_image(self, source: ImageInput) -> tuple[np.ndarray, Face]:
        """(D,) unit-norm embedding of the selected face, and that face."""
        t0 = time.perf_counter()
        image = self.image(source)
        t1 = time.perf_counter()
        face = self.face(image)
        t2 = time.perf_counter()
        crop = self.crop(image, face)
        t3 = time.perf_counter()
        embedding = self.embedder.embed_one(crop, flip=self.flip)
        t4 = time.perf_counter()
        self.timings = {
            "load": (t1 - t0) * 1e3,
            "detect": (t2 - t1) * 1e3,
            "align": (t3 - t2) * 1e3,
            "embed": (t4 - t3) * 1e3,
        }
        return embedding, face
