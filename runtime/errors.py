"""Typed errors of the shrinkface pipeline and the process exit codes they map to.

Every error a user can cause (bad image, no face, wrong model file, …) is a subclass of ``ShrinkfaceError``
with a message that says what went wrong and what to do; the CLI turns it into a distinct exit code.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes a shell script can rely on."""

    OK = 0  # success / unlocked / identified
    REJECTED = 1  # a face was found but did not match
    USAGE = 2  # bad command line (typer/click's own code)
    NO_FACE = 3
    MANY_FACES = 4
    BAD_IMAGE = 5
    MODEL = 6  # wrong, missing or card-less model file
    GALLERY = 7  # gallery missing, empty, schema or model mismatch
    DATA = 8  # data directory or dataset problem
    ASSET = 9  # asset missing or checksum mismatch
    QUALITY = 10  # enrolment image rejected by quality checks
    ERROR = 20  # anything else


class ShrinkfaceError(Exception):
    """Base class: a failure with a message meant for the user."""

    exit_code: ExitCode = ExitCode.ERROR


class ImageError(ShrinkfaceError):
    """The input image cannot be used."""

    exit_code = ExitCode.BAD_IMAGE


class EmptyImageError(ImageError):
    """A 0-byte file or empty buffer."""


class CorruptImageError(ImageError):
    """The bytes do not decode as a supported image."""


class TruncatedImageError(CorruptImageError):
    """The image file ends early (a partial download or copy)."""


class ImageTooLargeError(ImageError):
    """The file or its decoded pixel count exceeds the configured limit."""


class FaceError(ShrinkfaceError):
    """Base class for detection outcomes that are not a single usable face."""


class NoFaceError(FaceError):
    """No face was found."""

    exit_code = ExitCode.NO_FACE


class ManyFacesError(FaceError):
    """More than one face was found where exactly one is required."""

    exit_code = ExitCode.MANY_FACES


class ModelError(ShrinkfaceError):
    """A model file is missing, of the wrong kind, or carries no/invalid model card."""

    exit_code = ExitCode.MODEL


class ModelCardError(ModelError):
    """A model card is missing or invalid."""


class AssetError(ShrinkfaceError):
    """A third-party asset is missing, unknown or fails its sha256 check."""

    exit_code = ExitCode.ASSET


class DataError(ShrinkfaceError):
    """The data directory or a dataset in it is missing or malformed."""

    exit_code = ExitCode.DATA


class GalleryError(ShrinkfaceError):
    """The enrolment gallery cannot serve the request."""

    exit_code = ExitCode.GALLERY


class QualityError(ShrinkfaceError):
    """An enrolment image failed a quality check (size, blur, pose, face count)."""

    exit_code = ExitCode.QUALITY
