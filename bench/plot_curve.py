"""LFW accuracy versus epochs of training runs, from their ``log.jsonl`` evaluation events, as a PNG.

    .venv/bin/python bench/plot_curve.py runs/scratch_long [runs/other ...] --out docs/results/curve.png

Each run's ``eval`` events give (step, lfw_acc, lfw_std, lfw_pairs): those of ``log.jsonl`` (the periodic
evaluation) and of ``evals_posthoc.jsonl`` (bench/eval_checkpoints.py: the same evaluation of step checkpoints
of pieces trained where LFW was not, e.g. on a GPU box). The step is turned into epochs with the run's ``start``
event (``steps_per_epoch``). Points are drawn with their fold standard deviation; a run's ``final_eval.json``
(bench/eval_checkpoints.py --full) adds its end-of-run 6000-pair figure (no flip) as a star.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def read_curve(run_dir: Path) -> tuple[list[float], list[float], list[float], set[int], int]:
    """(epochs, accuracy %, std %, pair counts, steps per epoch) of one run's evaluations."""
    events = [json.loads(x) for x in (run_dir / "log.jsonl").read_text().splitlines() if x.strip()]
    starts = [e for e in events if e.get("event") == "start"]
    if not starts:
        raise SystemExit(f"{run_dir}/log.jsonl has no start event")
    per_epoch = starts[-1]["steps_per_epoch"]
    posthoc = run_dir / "evals_posthoc.jsonl"
    if posthoc.is_file():
        events += [json.loads(x) for x in posthoc.read_text().splitlines() if x.strip()]
    evals = sorted((e for e in events if e.get("event") == "eval"), key=lambda e: e["step"])
    return (
        [e["step"] / per_epoch for e in evals],
        [100 * e["lfw_acc"] for e in evals],
        [100 * e["lfw_std"] for e in evals],
        {e["lfw_pairs"] for e in evals},
        per_epoch,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--title", default="LFW accuracy of from-scratch students")
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    for run in args.runs:
        x, y, err, pairs, per_epoch = read_curve(run)
        label = f"{run.name} ({'/'.join(str(p) for p in sorted(pairs))} pairs)"
        line = ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=label)
        final = run / "final_eval.json"  # bench/eval_checkpoints.py --full: the reported end-of-run figure
        if final.is_file():
            (end,) = [e for e in json.loads(final.read_text()) if not e["lfw_flip"]]
            colour = line[0].get_color()
            ax.errorbar(
                [end["step"] / per_epoch],
                [100 * end["lfw_acc"]],
                yerr=[100 * end["lfw_std"]],
                marker="*",
                markersize=12,
                capsize=3,
                color=colour,
                linestyle="none",
                label=f"{run.name} at its end, all 6000 pairs",
            )
    ax.set_xlabel("epochs")
    ax.set_ylabel("LFW accuracy % (10-fold, mean ± std)")
    ax.set_title(args.title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
