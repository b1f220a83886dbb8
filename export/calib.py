"""Real aligned face crops for int8 calibration and QAT: never LFW.

The loader is torch-free and lives in ``runtime/aligned_crops.py`` (``shrinkface bench models`` uses it on the
device too); this module keeps export's names for it.
"""

from __future__ import annotations

from shrinkface.runtime.aligned_crops import IMAGE_SUFFIXES, list_crop_files
from shrinkface.runtime.aligned_crops import default_crops_dir as default_calibration_dir
from shrinkface.runtime.aligned_crops import load_aligned_crops as load_calibration_crops

__all__ = ["IMAGE_SUFFIXES", "default_calibration_dir", "list_crop_files", "load_calibration_crops"]
