"""Evaluation reports: one JSON (every figure, plus the curves), a markdown table and a ROC plot (PNG).

The PNG is drawn from the JSON's curves alone (matplotlib, Agg backend, imported only when plotting), so a
report can be re-plotted or compared later without recomputing anything.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from shrinkface.runtime.metrics import KFoldResult, Roc, auc, eer, tar_at_far, tar_curve

#: Points per decade of FAR in the stored curves.
CURVE_DENSITY = 10


def _curve(roc: Roc) -> dict[str, list[float]]:
    lowest = math.floor(math.log10(1.0 / max(roc.n_neg, 1)))
    fars = np.logspace(lowest, 0, CURVE_DENSITY * (-lowest) + 1)
    fars = fars[fars * roc.n_neg >= 1 - 1e-9]  # below one false accept the curve says nothing
    return {"far": [float(f) for f in fars], "tar": [round(float(t), 6) for t in tar_curve(roc, fars)]}


def _roc_summary(roc: Roc, fars: Sequence[float]) -> dict[str, Any]:
    return {
        "n_genuine": roc.n_pos,
        "n_impostor": roc.n_neg,
        "auc": auc(roc),
        "eer": eer(roc),
        "tar_at_far": [
            {
                "far": t.far,
                "tar": t.tar,
                "threshold": t.threshold if math.isfinite(t.threshold) else None,
                "far_actual": t.far_actual,
                "resolvable": t.resolvable,
            }
            for t in tar_at_far(roc, fars)
        ],
        "curve": _curve(roc),
    }


def summarise(
    label: str,
    kfold: KFoldResult,
    pair_roc: Roc,
    all_vs_all: Roc | None = None,
    fars: Sequence[float] = (1e-3, 1e-4, 1e-5),
) -> dict[str, Any]:
    """One model's (or ensemble's) results as a JSON-ready dict."""
    out: dict[str, Any] = {
        "model": label,
        "lfw_10fold": {
            "accuracy_mean": kfold.mean,
            "accuracy_std": kfold.std,
            "fold_accuracies": [float(a) for a in kfold.accuracies],
            "fold_thresholds": [float(t) for t in kfold.thresholds],
            "mean_threshold": kfold.mean_threshold,
            "invalid_pairs": kfold.n_invalid,
        },
        "lfw_pairs_roc": _roc_summary(pair_roc, fars),
    }
    if all_vs_all is not None:
        out["all_vs_all"] = _roc_summary(all_vs_all, fars)
    return out


def _pct(value: float) -> str:
    return f"{100 * value:.2f}"


def _tar_cell(entry: dict[str, Any]) -> str:
    cell = _pct(entry["tar"])
    return cell if entry["resolvable"] else f"({cell})"


def render_markdown(report: dict[str, Any]) -> str:
    """A markdown section: the results table and the notes a reader needs to interpret it."""
    results = report["results"]
    fars = [t["far"] for t in results[0].get("all_vs_all", results[0]["lfw_pairs_roc"])["tar_at_far"]]
    avsa = all("all_vs_all" in r for r in results)
    head = ["model", "LFW acc % (10-fold)", "mean thr", "AUC (pairs)", "EER % (pairs)"]
    if avsa:
        head += [f"TAR % @ FAR {f:g}" for f in fars] + ["EER % (all-vs-all)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        k, p = r["lfw_10fold"], r["lfw_pairs_roc"]
        row = [
            r["model"],
            f"{_pct(k['accuracy_mean'])} ± {_pct(k['accuracy_std'])}",
            f"{k['mean_threshold']:.4f}",
            f"{p['auc']:.5f}",
            _pct(p["eer"]),
        ]
        if avsa:
            a = r["all_vs_all"]
            row += [_tar_cell(t) for t in a["tar_at_far"]] + [_pct(a["eer"])]
        lines.append("| " + " | ".join(row) + " |")
    info = report.get("settings", {})
    flip_text = "sum of the crop's and its mirror's, L2-normalised" if info.get("flip") else "no flip"
    notes = [
        f"- Protocol: LFW View-2, {report.get('n_pairs', '?')} pairs, 10 folds; the threshold of each fold "
        "is the accuracy-maximising one on the other 9 folds; ± is the population std over folds.",
        f"- Embedding: {flip_text}; score = cosine similarity; ensembles sum per-model z-scored scores.",
    ]
    if avsa:
        a0 = results[0]["all_vs_all"]
        notes.append(
            f"- All-vs-all: {a0['n_genuine']:,} genuine and {a0['n_impostor']:,} impostor pairs over "
            f"{report.get('n_images', '?'):,} images; TAR in brackets: the FAR target allows no false accept."
        )
    failed = report.get("failed_images", [])
    notes.append(
        f"- Images without an aligned face: {len(failed)} (their pairs count as errors / rejections, never dropped)."
    )
    if info.get("command"):
        notes.append(f"- Command: `{info['command']}`")
    return "\n".join([*lines, "", *notes]) + "\n"


def plot_roc(report: dict[str, Any], path: str | Path) -> Path:
    """TAR vs FAR (log axis): all-vs-all curves when present, else the 6000-pair ROC; saved as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5), dpi=120)
    for r in report["results"]:
        for key, style, tag in (("all_vs_all", "-", "all-vs-all"), ("lfw_pairs_roc", ":", "6000 pairs")):
            if key in r:
                c = r[key]["curve"]
                ax.plot(c["far"], c["tar"], style, label=f"{r['model']} ({tag})")
    ax.set_xscale("log")
    ax.set_xlabel("false accept rate")
    ax.set_ylabel("true accept rate")
    ax.set_title("LFW verification ROC")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def write_report(report: dict[str, Any], out_dir: str | Path, stem: str = "lfw") -> dict[str, Path]:
    """Write ``<stem>.json``, ``<stem>.md`` and ``<stem>_roc.png`` into ``out_dir``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / f"{stem}.json", "markdown": out / f"{stem}.md", "roc": out / f"{stem}_roc.png"}
    paths["json"].write_text(json.dumps(report, indent=1) + "\n")
    paths["markdown"].write_text(render_markdown(report))
    plot_roc(report, paths["roc"])
    return paths
