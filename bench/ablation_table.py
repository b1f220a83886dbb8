"""docs/results/ablation.{md,json}: the ablation rows' final LFW figures, read from runs/ablation/*/log.jsonl.

Called by ``python bench/ablation.py table``. The reference row (the warm start itself, 0 steps) is evaluated
here with the trainer's own evaluator and the same eval settings as the rows (cached in runs/ablation/).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ablation import BATCH, CONFIG_DIR, METHODS, RUN_DIR, STEPS, final_eval, read_log, row_config, rows

ROOT = CONFIG_DIR.parents[1]
OUT = ROOT / "docs" / "results" / "ablation"


def _log_stats(name: str) -> dict[str, Any]:
    steps = [e for e in read_log(name) if "step" in e and "loss" in e]
    ips = [e["images_per_s"] for e in steps if "images_per_s" in e]
    return {
        "first_loss": steps[0]["loss"] if steps else None,
        "last_loss": steps[-1]["loss"] if steps else None,
        "images_per_s": round(sorted(ips)[len(ips) // 2], 1) if ips else None,
    }


def warm_start_point() -> dict[str, Any]:
    """LFW of the warm-start student before any step, with the rows' evaluator settings (cached)."""
    path = RUN_DIR / "warm_start_point.json"
    if path.is_file():
        return json.loads(path.read_text())
    import torch

    from shrinkface.train.config import config_from_dict
    from shrinkface.train.cpu_tuning import tune_cpu_process
    from shrinkface.train.evaluate import LfwEvaluator
    from shrinkface.train.students import build_student
    from shrinkface.train.teachers import resolve_model_path
    from shrinkface.train.warmstart import warm_start_from_onnx

    torch.set_num_threads(1)
    tune_cpu_process()  # the warm-started net floods the CPU with subnormal floats otherwise (7× slower)
    cfg = config_from_dict(row_config("adl_final", "warm"))
    student = build_student(**cfg.student.build_args())
    warm_start_from_onnx(student, resolve_model_path(cfg.student.warm_start))
    result = LfwEvaluator(cfg.eval, torch.device("cpu"))(student)
    path.write_text(json.dumps(result, indent=1))
    return result


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.2f}"


def table() -> None:
    """Write docs/results/ablation/{ablation.json,table.md}."""
    OUT.mkdir(parents=True, exist_ok=True)
    records = []
    for method, start, names in rows():
        ev = final_eval(names[-1])
        stats = [_log_stats(n) for n in names]
        records.append(
            {
                "method": method,
                "label": METHODS[method]["label"],
                "start": start,
                "configs": [f"configs/ablation/{n}.yaml" for n in names],
                "logs": [f"runs/ablation/{n}/log.jsonl" for n in names],
                "eval": ev,
                "loss_first_last": [(s["first_loss"], s["last_loss"]) for s in stats],
                "images_per_s": [s["images_per_s"] for s in stats],
            }
        )
    ref = warm_start_point()
    (OUT / "ablation.json").write_text(
        json.dumps({"steps": STEPS, "batch_size": BATCH, "warm_start_point": ref, "rows": records}, indent=1)
    )
    lines = [
        "| start | method | LFW % (6000 pairs, mean ± std) | TAR @ FAR 1e-4 % | loss first → last | img/s "
        "| config · log |",
        "|---|---|---|---|---|---|---|",
        f"| warm | *reference: the warm start itself, 0 steps* | {_pct(ref['lfw_acc'])} ± {_pct(ref['lfw_std'])} "
        f"| {_pct(ref.get('tar'))} | — | — | `python bench/ablation.py table` |",
    ]
    for r in records:
        ev = r["eval"]
        acc = "not run" if ev is None else f"{_pct(ev['lfw_acc'])} ± {_pct(ev['lfw_std'])}"
        tar = "—" if ev is None else _pct(ev.get("tar"))
        loss = " ; ".join(f"{a:.3f} → {b:.3f}" for a, b in r["loss_first_last"] if a is not None) or "—"
        ips = " ; ".join(str(x) for x in r["images_per_s"] if x is not None) or "—"
        links = " · ".join(
            f"[{Path(c).stem}](../../../{c}) · [log](../../../{lg})"
            for c, lg in zip(r["configs"], r["logs"], strict=True)
        )
        lines.append(f"| {r['start']} | {r['label']} | {acc} | {tar} | {loss} | {ips} | {links} |")
    (OUT / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
