"""The verification-evaluation API in one import (torch-free; scikit-learn and matplotlib: ``eval`` extra).

- ``lfw``: the View-2 ``pairs.txt`` protocol (``parse_pairs``, ``pair_identities``, ``list_images``).
- ``metrics``: 10-fold accuracy, ROC/AUC/EER, TAR@FAR, score-level z-score ensembles.
- ``allvsall``: exact ROC over every image pair (tens of millions of impostors) by blocks.
- ``report``: JSON, markdown table and ROC PNG.
- ``binset``: insightface ``.bin`` verification sets, read with a restricted unpickler.
- ``lfw_eval``: embed aligned LFW crops with one or more models, build the report (``shrinkface eval lfw``).
"""

from __future__ import annotations

from shrinkface.runtime.allvsall import all_pair_stats, all_vs_all_roc, ensemble_embeddings, genuine_scores
from shrinkface.runtime.binset import BinSet, loads_bin, read_bin, write_bin
from shrinkface.runtime.lfw import LfwPairs, Pair, list_images, pair_identities, parse_pairs
from shrinkface.runtime.metrics import (
    KFoldResult,
    Roc,
    TarAtFar,
    accuracy,
    auc,
    best_threshold,
    eer,
    ensemble_scores,
    kfold_accuracy,
    pair_roc,
    tar_at_far,
    tar_curve,
)
from shrinkface.runtime.report import render_markdown, summarise, write_report

__all__ = [
    "BinSet",
    "KFoldResult",
    "LfwPairs",
    "Pair",
    "Roc",
    "TarAtFar",
    "accuracy",
    "all_pair_stats",
    "all_vs_all_roc",
    "auc",
    "best_threshold",
    "eer",
    "ensemble_embeddings",
    "ensemble_scores",
    "genuine_scores",
    "kfold_accuracy",
    "list_images",
    "loads_bin",
    "pair_identities",
    "pair_roc",
    "parse_pairs",
    "read_bin",
    "render_markdown",
    "summarise",
    "tar_at_far",
    "tar_curve",
    "write_bin",
    "write_report",
]
