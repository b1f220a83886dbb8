"""Parity of exported files with the float torch model, on aligned LFW crops (evaluation only).

Per artifact: the cosine between its embedding and the float model's for every image (mean, 1st percentile,
min), the fraction of LFW pairs on which both take the same decision at the operating threshold (the card's
``threshold``, else the float model's 10-fold LFW threshold), and the artifact's own LFW 10-fold accuracy and
TAR@FAR=1e-4 (all-vs-all over the embedded images) next to the float model's. Embeddings are not
flip-augmented here: parity compares one forward pass with one forward pass.

The gate fails loudly (``ParityGateError``): float files need cosine mean ≥ 0.9999 and agreement ≥ 99.9 %,
int8 files cosine mean ≥ 0.99 and agreement ≥ 99 %. Outputs: ``parity.json``, ``parity.md``,
``parity_hist.png`` (per-image cosine histograms) and ``parity_cosines.npz``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shrinkface.runtime import lfw
from shrinkface.runtime.allvsall import all_vs_all_roc
from shrinkface.runtime.card import ModelCard
from shrinkface.runtime.errors import DataError, ExitCode, ShrinkfaceError
from shrinkface.runtime.lfw_eval import pair_scores
from shrinkface.runtime.metrics import kfold_accuracy, tar_at_far

FAR = 1e-4


class ParityGateError(ShrinkfaceError):
    """An exported file does not reproduce the float model closely enough."""

    exit_code = ExitCode.MODEL


@dataclass(frozen=True)
class Gates:
    """Minimum per-image cosine mean and decision agreement, per quantisation."""

    float_cosine_mean: float = 0.9999
    float_agreement: float = 0.999
    int8_cosine_mean: float = 0.99
    int8_agreement: float = 0.99

    def limits(self, quant: str) -> tuple[float, float]:
        """(cosine mean, agreement) limits for ``float`` or ``int8``."""
        if quant == "float":
            return self.float_cosine_mean, self.float_agreement
        return self.int8_cosine_mean, self.int8_agreement


def artifact_quant(card: ModelCard) -> str:
    """``int8`` or ``float``, from the card's export settings (an int8 ONNX keeps a float32 input)."""
    export = card.extra.get("export", {}) if isinstance(card.extra, dict) else {}
    if export.get("quant") in ("float", "int8"):
        return str(export["quant"])
    return "int8" if card.input_dtype != "float32" or card.output_scale is not None else "float"


def load_lfw_crops(
    aligned_dir: str | Path, pairs_path: str | Path, max_pairs: int | None = None
) -> tuple[lfw.LfwPairs, list[str], np.ndarray]:
    """The protocol pairs (an even subset of every fold when ``max_pairs``), the keys of their images that
    have an aligned crop in ``aligned_dir`` (from ``shrinkface data align``), and those crops."""
    from shrinkface.runtime.lfw_eval import crop_index, read_crops
    from shrinkface.train.evaluate import subset_pairs

    pairs = subset_pairs(lfw.parse_pairs(pairs_path), max_pairs)
    index = crop_index(aligned_dir, pairs.image_keys)
    keys = [k for k in pairs.image_keys if k in index.paths]
    if not keys:
        raise DataError(f"{aligned_dir} holds no aligned crop of the LFW pair images: run `shrinkface data align`")
    return pairs, keys, read_crops([index.paths[k] for k in keys], index.size)


def _chunks(n: int, size: int, label: str, progress: bool) -> Any:
    from tqdm import tqdm

    return tqdm(range(0, n, size), desc=label, unit=f"×{size} img", disable=not progress, leave=False)


def torch_embeddings(
    model: Any, card: ModelCard, crops: np.ndarray, batch: int = 8, progress: bool = False
) -> np.ndarray:
    """(N, D) L2-normalised float torch embeddings of RGB uint8 crops, preprocessed by ``card``."""
    import torch

    model = model.eval()
    out = []
    with torch.no_grad():
        for i in _chunks(len(crops), batch, "float torch", progress):
            y = model(torch.from_numpy(card.preprocess(crops[i : i + batch]))).float()
            out.append(torch.nn.functional.normalize(y, dim=1).numpy())
    return np.concatenate(out) if out else np.zeros((0, card.embedding_size), np.float32)


def lfw_metrics(pairs: lfw.LfwPairs, keys: Sequence[str], emb: np.ndarray) -> dict[str, Any]:
    """10-fold accuracy on ``pairs`` and TAR@FAR=1e-4 over every pair of the embedded images."""
    scores, valid = pair_scores(pairs, keys, emb)
    kf = kfold_accuracy(scores, pairs.issame, pairs.folds, valid)
    roc = all_vs_all_roc(emb, lfw.labels_of(keys))
    tar = tar_at_far(roc, [FAR])[0]
    return {
        "accuracy": round(kf.mean, 6),
        "accuracy_std": round(kf.std, 6),
        "threshold": kf.mean_threshold,
        "tar_at_far_1e-4": round(tar.tar, 6),
        "far_resolvable": tar.resolvable,
        "impostor_pairs": roc.n_neg,
        "genuine_pairs": roc.n_pos,
    }


def compare(
    ref: np.ndarray, emb: np.ndarray, pairs: lfw.LfwPairs, keys: Sequence[str], threshold: float
) -> dict[str, Any]:
    """Per-image cosine statistics and pair-decision agreement of ``emb`` with ``ref`` (both normalised)."""
    cos = np.einsum("ij,ij->i", ref.astype(np.float64), emb.astype(np.float64))
    s_ref, valid = pair_scores(pairs, keys, ref)
    s_art, _ = pair_scores(pairs, keys, emb)
    agree = ((s_ref >= threshold) == (s_art >= threshold))[valid]
    return {
        "cosine_mean": float(cos.mean()),
        "cosine_p1": float(np.percentile(cos, 1)),
        "cosine_min": float(cos.min()),
        "cosine_median": float(np.median(cos)),
        "agreement": float(agree.mean()),
        "disagreeing_pairs": int((~agree).sum()),
        "pairs": int(valid.sum()),
        "images": len(cos),
        "cosines": cos,
    }


@dataclass
class ArtifactParity:
    """One artifact's row of the report."""

    file: str
    sha256: str
    quant: str
    method: str | None
    layout: str
    input_dtype: str
    cosine_mean: float
    cosine_p1: float
    cosine_min: float
    cosine_median: float
    agreement: float
    disagreeing_pairs: int
    lfw: dict[str, Any]
    gate_cosine: float
    gate_agreement: float

    @property
    def passed(self) -> bool:
        """Whether both gates hold."""
        return self.cosine_mean >= self.gate_cosine and self.agreement >= self.gate_agreement


def artifact_labels(paths: Sequence[str | Path]) -> list[str]:
    """A name per artifact for the report: the file name, with as many parent folders as it takes to tell
    files of the same name apart (``a/student.int8.tflite``, ``b/student.int8.tflite``)."""
    parts = [Path(p).parts for p in paths]
    depth = [1] * len(parts)
    while True:
        labels = ["/".join(p[-d:]) for p, d in zip(parts, depth, strict=True)]
        clash = [i for i, lab in enumerate(labels) if labels.count(lab) > 1 and depth[i] < len(parts[i])]
        if not clash:
            return labels
        for i in clash:
            depth[i] += 1


def parity_report(
    model: Any,
    card: ModelCard,
    artifacts: Sequence[str | Path],
    pairs: lfw.LfwPairs,
    keys: Sequence[str],
    crops: np.ndarray,
    gates: Gates = Gates(),
    progress: bool = False,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The report dict and the per-image cosines of each artifact (for the histogram)."""
    from shrinkface.runtime.embed import load_embedder

    ref = torch_embeddings(model, card, crops, progress=progress)
    float_lfw = lfw_metrics(pairs, keys, ref)
    threshold = card.threshold if card.threshold is not None else float_lfw["threshold"]
    rows: list[ArtifactParity] = []
    cosines: dict[str, np.ndarray] = {}
    for path, label in zip(artifacts, artifact_labels(artifacts), strict=True):
        embedder = load_embedder(path)
        emb = np.concatenate(
            [embedder.embed(crops[i : i + 256], flip=False) for i in _chunks(len(crops), 256, label, progress)]
        )
        stats = compare(ref, emb, pairs, keys, threshold)
        quant = artifact_quant(embedder.card)
        export = embedder.card.extra.get("export", {})
        gate_cos, gate_agree = gates.limits(quant)
        cosines[label] = stats.pop("cosines")
        rows.append(
            ArtifactParity(
                file=label,
                sha256=embedder.sha256,
                quant=quant,
                method=(export.get("quantization") or {}).get("method") if quant == "int8" else None,
                layout=embedder.card.layout,
                input_dtype=embedder.card.input_dtype,
                cosine_mean=stats["cosine_mean"],
                cosine_p1=stats["cosine_p1"],
                cosine_min=stats["cosine_min"],
                cosine_median=stats["cosine_median"],
                agreement=stats["agreement"],
                disagreeing_pairs=stats["disagreeing_pairs"],
                lfw=lfw_metrics(pairs, keys, emb),
                gate_cosine=gate_cos,
                gate_agreement=gate_agree,
            )
        )
    report = {
        "float_model": {"name": card.name, "source_sha256": card.source_sha256, "lfw": float_lfw},
        "threshold": {
            "value": threshold,
            "source": "card" if card.threshold is not None else "float 10-fold LFW",
        },
        "pairs": len(pairs),
        "images": len(keys),
        "flip": False,
        "gates": asdict(gates),
        "artifacts": [{**asdict(r), "passed": r.passed} for r in rows],
        "passed": all(r.passed for r in rows),
    }
    return report, cosines


def gate_failures(report: dict[str, Any]) -> list[str]:
    """One line per failed gate (empty when every artifact passes)."""
    lines = []
    for a in report["artifacts"]:
        if a["cosine_mean"] < a["gate_cosine"]:
            lines.append(f"{a['file']}: cosine mean {a['cosine_mean']:.5f} < {a['gate_cosine']}")
        if a["agreement"] < a["gate_agreement"]:
            lines.append(f"{a['file']}: decision agreement {a['agreement']:.4f} < {a['gate_agreement']}")
    return lines


def render_markdown(report: dict[str, Any]) -> str:
    """The report as a markdown table."""
    f = report["float_model"]["lfw"]
    thr = report["threshold"]
    lines = [
        f"# Parity with the float model `{report['float_model']['name']}`",
        "",
        f"{report['images']} aligned LFW images, {report['pairs']} pairs, no flip; threshold "
        f"{thr['value']:.4f} ({thr['source']}).",
        "",
        "| file | quant | method | cos mean | cos p1 | cos min | agreement | LFW acc | TAR@FAR=1e-4 | gate |",
        "|---|---|---|---|---|---|---|---|---|---|",
        f"| float torch | float | — | 1 | 1 | 1 | 100 % | {100 * f['accuracy']:.2f} % | "
        f"{100 * f['tar_at_far_1e-4']:.2f} % | — |",
    ]
    for a in report["artifacts"]:
        lines.append(
            f"| {a['file']} | {a['quant']} | {a['method'] or '—'} | {a['cosine_mean']:.5f} | "
            f"{a['cosine_p1']:.5f} | "
            f"{a['cosine_min']:.5f} | {100 * a['agreement']:.2f} % | {100 * a['lfw']['accuracy']:.2f} % | "
            f"{100 * a['lfw']['tar_at_far_1e-4']:.2f} % | {'pass' if a['passed'] else '**FAIL**'} |"
        )
    lines += ["", f"Gates: {json.dumps(report['gates'])}", ""]
    return "\n".join(lines)


def plot_histogram(cosines: dict[str, np.ndarray], path: str | Path) -> Path:
    """Histogram of per-image cosine (artifact vs float), one panel per artifact."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = max(len(cosines), 1)
    fig, axes = plt.subplots(n, 1, figsize=(7, 2.2 * n), squeeze=False)
    for ax, (name, cos) in zip(axes[:, 0], cosines.items(), strict=False):
        lo = min(float(cos.min()), 0.99)
        ax.hist(np.minimum(cos, 1.0), bins=np.linspace(lo, 1.0, 60), color="tab:blue")  # rounding: cos may be 1 + ε
        ax.set_yscale("log")
        ax.set_title(f"{name}: mean {cos.mean():.5f}, min {cos.min():.5f}", fontsize=9)
        ax.set_xlabel("cosine to the float torch embedding")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_parity(report: dict[str, Any], cosines: dict[str, np.ndarray], out_dir: str | Path) -> dict[str, Path]:
    """Write parity.json, parity.md, parity_hist.png and the per-image cosines (parity_cosines.npz, one float32
    array per file, in the report's image order) into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out / "parity.json",
        "markdown": out / "parity.md",
        "histogram": out / "parity_hist.png",
        "cosines": out / "parity_cosines.npz",
    }
    paths["json"].write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
    paths["markdown"].write_text(render_markdown(report))
    plot_histogram(cosines, paths["histogram"])
    np.savez_compressed(paths["cosines"], **{name: c.astype(np.float32) for name, c in cosines.items()})
    return paths
