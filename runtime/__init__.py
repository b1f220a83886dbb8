"""Torch-free face pipeline: image → detect → align → embed → decide.

Nothing in this package imports torch, ``shrinkface.train`` or ``shrinkface.export``; it is what a phone-side
or Raspberry Pi install (``pip install shrinkface[runtime]``) runs.
"""

import os as _os

# Refuse decompression bombs inside OpenCV's decoders (read once, before the first decode).
_os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(100_000_000))
