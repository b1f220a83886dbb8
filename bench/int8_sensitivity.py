"""Where does int8 lose cosine? PTQ the student with one part left in float at a time.

Each variant runs the export's own int8 recipe (embedding BatchNorm folded, activation equalisation on 128
calibration faces, litert-torch's PT2E quantiser, PTQ on the calibration faces), then bypasses the
quantize/dequantize pairs that feed the part kept float (``export.qat.keep_float``, what ``shrinkface export
--float-modules`` does; the model input stays quantised), and compares the converted (quantize/dequantize)
torch graph with the float model on held-out aligned faces that calibration never saw. The converted graph is
the one litert-torch turns into the int8 .tflite, so its cosine tracks the file's (parity.md reports the files
themselves on LFW).

    .venv/bin/python bench/int8_sensitivity.py runs/warm_ensemble_abc/student.pt \\
        --heldout ~/.cache/shrinkface/aligned/utkface --out docs/results/int8_sensitivity

Writes ``sensitivity.json`` and ``sensitivity.md``. No LFW image is used (neither for calibration nor here).
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch

from shrinkface.export.calib import default_calibration_dir, load_calibration_crops
from shrinkface.export.checkpoint import load_student_checkpoint
from shrinkface.export.equalize import equalize
from shrinkface.export.qat import _batches, calibrate_ptq, fold_embedding_bn, keep_float

#: the parts kept float, one variant each ("" = everything int8, the shipped recipe)
PARTS = ("", "stem", "stage4", "stage8", "stage16", "neck", "head.gdc", "head.linear", "head")


def ptq_variant(prepared: torch.fx.GraphModule, part: str) -> tuple[torch.fx.GraphModule, int]:
    """Convert a copy of the calibrated ``prepared`` graph, then module ``part`` (or nothing for "") in float."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    graph = convert_pt2e(copy.deepcopy(prepared), fold_quantize=False)
    return graph, keep_float(graph, part) if part else 0


def cosines(graph: torch.nn.Module, reference: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-face cosine between ``graph``'s embeddings of ``x`` and ``reference``."""
    with torch.no_grad():
        y = torch.cat([graph(c) for c in _batches(x, 8)])
    return torch.nn.functional.cosine_similarity(y, reference, dim=1)


def main() -> None:
    """Run every variant and write the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--heldout", type=Path, required=True, help="Aligned faces never used for calibration.")
    parser.add_argument("--calib", type=Path, default=None, help="Calibration faces (default glint-celeb6).")
    parser.add_argument("--calib-size", type=int, default=256)
    parser.add_argument("--heldout-size", type=int, default=300)
    parser.add_argument("--out", type=Path, default=Path("docs/results/int8_sensitivity"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    model, card = load_student_checkpoint(args.checkpoint)
    folded = fold_embedding_bn(model, card.input_size)
    calib_crops, _ = load_calibration_crops(args.calib or default_calibration_dir(), args.calib_size, card)
    held_crops, _ = load_calibration_crops(args.heldout, args.heldout_size, card)
    calib = torch.from_numpy(card.preprocess(calib_crops))
    held = torch.from_numpy(card.preprocess(held_crops))
    quant_model, _ = equalize(folded, calib[:128])
    with torch.no_grad():
        reference = torch.cat([folded(c) for c in _batches(held, 8)])
    prepared, _ = calibrate_ptq(quant_model, calib)  # once: every variant shares the calibration
    rows = []
    for part in PARTS:
        t0 = time.perf_counter()
        graph, bypassed = ptq_variant(prepared, part)
        cos = cosines(graph, reference, held)
        rows.append(
            {
                "float_part": part or "(none: all int8)",
                "qdq_pairs_bypassed": bypassed,
                "cos_mean": round(float(cos.mean()), 5),
                "cos_p1": round(float(cos.quantile(0.01)), 5),
                "cos_min": round(float(cos.min()), 5),
                "seconds": round(time.perf_counter() - t0, 1),
            }
        )
        print(rows[-1], flush=True)
    report = {
        "checkpoint": str(args.checkpoint),
        "calibration": f"{len(calib)} faces from {args.calib or default_calibration_dir()}",
        "heldout": f"{len(held)} faces from {args.heldout}",
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sensitivity.json").write_text(json.dumps(report, indent=1) + "\n")
    base = rows[0]["cos_mean"]
    lines = [
        f"# int8 sensitivity of `{args.checkpoint}` (PTQ, one part kept float)",
        "",
        f"Calibration: {report['calibration']}; cosine to the float model on {report['heldout']} "
        "(never calibrated on). Command: `.venv/bin/python bench/int8_sensitivity.py "
        f"{args.checkpoint} --heldout {args.heldout}`.",
        "",
        "| kept float | Q/DQ pairs bypassed | cos mean | gain vs all int8 | cos p1 | cos min |",
        "|---|---|---|---|---|---|",
        *[
            f"| {r['float_part']} | {r['qdq_pairs_bypassed']} | {r['cos_mean']:.5f} | {r['cos_mean'] - base:+.5f} | "
            f"{r['cos_p1']:.5f} | {r['cos_min']:.5f} |"
            for r in rows
        ],
        "",
    ]
    (args.out / "sensitivity.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
