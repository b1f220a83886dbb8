"""Which layers' per-channel PReLU slopes carry the function? One part at a time gets one slope per layer.

For each part of a per-channel PReLU student, every PReLU in it has its slopes replaced by their mean (0 where
the mean is below ``fade.SNAP``: ``fade.snapped_mean``, the rule of the prelu1 fade), untrained; the cosine of
the result to the original student on held-out aligned training faces (no LFW) says how much of the function
that part's slope diversity holds. A part kept float in the int8 export (the stem) could keep per-channel
slopes for free:

    .venv/bin/python bench/slope_sensitivity.py runs/warm_ensemble_abc_6ep/student.pt \\
        --heldout ~/.cache/shrinkface/aligned/utkface --out docs/results/slope_sensitivity

Writes ``sensitivity.json`` and ``sensitivity.md``; with ``--per-layer`` one variant per PReLU layer instead
(``per_layer.json``, ``per_layer.md``).
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import torch
from torch import nn

from shrinkface.export.calib import load_calibration_crops
from shrinkface.export.checkpoint import load_student_checkpoint
from shrinkface.train.students.fade import snapped_mean

#: the parts made one-slope, one variant each; "*" = every part, "*-stem" = every part but the stem
PARTS = ("stem", "stage4", "stage8", "stage16", "neck", "*-stem", "*")


def one_slope(model: nn.Module, part: str) -> tuple[nn.Module, int]:
    """A copy of ``model`` whose PReLUs in ``part`` have every slope set to their (snapped) mean."""
    twin = copy.deepcopy(model).eval()
    count = 0
    for name, module in twin.named_modules():
        top = name.split(".")[0]
        chosen = part == "*" or (part == "*-stem" and top != "stem") or top == part or name == part
        if isinstance(module, nn.PReLU) and chosen:
            with torch.no_grad():
                module.weight.fill_(float(snapped_mean(module.weight)))
            count += 1
    return twin, count


def main() -> None:
    """Measure every part and write the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--heldout", type=Path, required=True, help="Aligned training faces (never LFW).")
    parser.add_argument("--heldout-size", type=int, default=300)
    parser.add_argument("--per-layer", action="store_true", help="One variant per PReLU layer instead of per part.")
    parser.add_argument("--out", type=Path, default=Path("docs/results/slope_sensitivity"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    model, card = load_student_checkpoint(args.checkpoint)
    model.eval()
    crops, _ = load_calibration_crops(args.heldout, args.heldout_size, card)
    x = torch.from_numpy(card.preprocess(crops))
    with torch.no_grad():
        reference = torch.cat([model(c) for c in x.split(32)])
    rows = []
    parts = [n for n, m in model.named_modules() if isinstance(m, nn.PReLU)] if args.per_layer else PARTS
    for part in parts:
        twin, count = one_slope(model, part)
        with torch.no_grad():
            y = torch.cat([twin(c) for c in x.split(32)])
        cos = nn.functional.cosine_similarity(y, reference, dim=1)
        rows.append(
            {
                "part": part,
                "prelus": count,
                "cos_mean": round(float(cos.mean()), 5),
                "cos_p1": round(float(cos.quantile(0.01)), 5),
                "cos_min": round(float(cos.min()), 5),
            }
        )
        print(rows[-1], flush=True)
    report = {"checkpoint": str(args.checkpoint), "heldout": f"{len(x)} faces from {args.heldout}", "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "per_layer" if args.per_layer else "sensitivity"
    (args.out / f"{stem}.json").write_text(json.dumps(report, indent=1) + "\n")
    command = (
        f".venv/bin/python bench/slope_sensitivity.py {args.checkpoint} --heldout {args.heldout} "
        f"--heldout-size {args.heldout_size}{' --per-layer' if args.per_layer else ''} --out {args.out}"
    )
    unit = "layer" if args.per_layer else "part"
    lines = [
        f"# One slope per layer, one {unit} at a time: `{args.checkpoint}` (untrained)",
        "",
        f"Cosine to the per-channel student on {report['heldout']} (no LFW). `*` = every part, `*-stem` = all but",
        f"the stem. Command: `{command}`.",
        "",
        "| part made one-slope | PReLUs | cos mean | cos p1 | cos min |",
        "|---|---|---|---|---|",
        *[
            f"| {r['part']} | {r['prelus']} | {r['cos_mean']:.5f} | {r['cos_p1']:.5f} | {r['cos_min']:.5f} |"
            for r in rows
        ],
        "",
    ]
    (args.out / f"{stem}.md").write_text("\n".join(lines))
    print(f"wrote {args.out / stem}.md")


if __name__ == "__main__":
    main()
