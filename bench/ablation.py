"""The distillation ablation (issue 3): one config per (method, start), same student, data, steps and seed.

    python bench/ablation.py write            # (re)writes configs/ablation/*.yaml from the table below
    python bench/ablation.py run --lane 0/2   # trains this lane's share of the rows, one after another
    python bench/ablation.py run --only ensemble   # just that method's rows
    python bench/ablation.py table            # docs/results/ablation.{md,json} from runs/ablation/*/log.jsonl

The YAML files are the record (committed); this script only writes them from one table so that nothing but
the loss terms differs between rows. Each run is ``shrinkface train run configs/ablation/<row>.yaml``; a row
whose log already holds its final evaluation is skipped, an interrupted one resumes from its checkpoint.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = ROOT / "configs" / "ablation"
RUN_DIR = ROOT / "runs" / "ablation"
STEPS = 60
BATCH = 64

FACEPLUGIN = {"name": "faceplugin", "asset": "faceplugin", "kind": "blackbox", "weight": 1.0}
FACEPLUGIN_WB = {**FACEPLUGIN, "kind": "whitebox", "features": ["s4", "s8", "s16"]}
EXPO = {"name": "expo", "asset": "expo_mobilefacenet", "kind": "blackbox", "weight": 0.5}
ARCFACE = {"kind": "arcface", "weight": 1.0, "params": {"s": 64.0, "m": 0.5}}
ADL = {"kind": "adl", "weight": 1.0}
SD = {"kind": "sample_distribution", "weight": 4.0}

#: row → (what the table calls it, teachers, loss terms[, stage-2 of a two-stage method])
METHODS: dict[str, dict[str, Any]] = {
    "baseline_arcface": {"label": "no KD: ArcFace (s 64, m 0.5)", "teachers": [], "losses": {"arcface": ARCFACE}},
    "adl_final": {
        "label": "ShrinkTeaNet ADL, final stage (1 − cos)",
        "teachers": [FACEPLUGIN],
        "losses": {"adl": ADL},
    },
    "adl_final_sd": {
        "label": "ADL final + pairwise sample distribution",
        "teachers": [FACEPLUGIN],
        "losses": {"adl": ADL, "sd": SD},
    },
    "adl_intermediate": {
        "label": "ADL final + intermediate (s4, s8, s16 adapters) + SD",
        "teachers": [FACEPLUGIN_WB],
        "losses": {
            "adl": ADL,
            "sd": SD,
            "adl_int": {"kind": "adl_intermediate", "weight": 1.0, "params": {"stages": ["s4", "s8", "s16"]}},
        },
    },
    # added in session 13 (its rows ran then, on that session's rebuilt crops; the other rows are session 3's)
    "adl_final_sd_mrd": {
        "label": "ADL final + SD + mutual relation on mined hard negatives (CoupleFace, k 16)",
        "teachers": [FACEPLUGIN],
        "losses": {"adl": ADL, "sd": SD, "mrd": {"kind": "mutual_relation", "weight": 4.0, "params": {"k": 16}}},
    },
    "margin_distillation": {
        "label": "MarginDistillation (teacher centres, per-sample margin)",
        "teachers": [FACEPLUGIN],
        "losses": {"md": {"kind": "margin_distillation", "weight": 1.0, "params": {"s": 64.0, "m_max": 0.5}}},
    },
    "neuron_mimic": {
        "label": "Luo et al. neuron-selection mimic (k 128) + ArcFace",
        "teachers": [FACEPLUGIN],
        "losses": {
            "arcface": ARCFACE,
            "mimic": {"kind": "neuron_mimic", "weight": 0.1, "params": {"k": 128, "corr_bound": 0.5}},
        },
    },
    "wang_transfer": {
        "label": "Wang et al.: cosine KD (T 4) → verification fine-tune (ArcFace + ADL)",
        "teachers": [FACEPLUGIN],
        "losses": {"kd": {"kind": "wang_kd", "weight": 1.0, "params": {"s": 64.0, "temperature": 4.0}}},
        "stage2": {
            "losses": {"arcface": ARCFACE, "adl": ADL},
            "init_map": {"terms.arcface.loss.weight": "terms.kd.loss.weight"},
        },
    },
    "ensemble": {
        "label": "ensemble teacher (faceplugin + expo): ADL + SD",
        "teachers": [{**FACEPLUGIN, "weight": 0.5}, EXPO],
        "losses": {"adl": {**ADL, "params": {"ensemble": "sum"}}, "sd": SD},
    },
    # fixed before any result was seen (choosing it from the LFW rows would tune on the test set)
    "combination": {
        "label": "combination: ensemble ADL + SD + intermediate ADL (faceplugin white box)",
        "teachers": [{**FACEPLUGIN_WB, "weight": 0.5}, EXPO],
        "losses": {
            "adl": {**ADL, "params": {"ensemble": "sum"}},
            "sd": SD,
            "adl_int": {
                "kind": "adl_intermediate",
                "weight": 1.0,
                "teachers": ["faceplugin"],
                "params": {"stages": ["s4", "s8", "s16"]},
            },
        },
    },
}

STARTS: dict[str, dict[str, Any]] = {
    # from scratch: AdamW 4e-3 (the feasibility run's setting), BatchNorm trained
    "scratch": {
        "student": {"arch": "mobilefacenet", "embedding_size": 512, "width": 1.0, "activation": "prelu"},
        "optim": {"name": "adamw", "lr": 0.004, "weight_decay": 0.05},
        "schedule": {"warmup": 0.05, "min_lr": 0.0},
    },
    # warm start from teacher C's weights (train/warmstart.py), BatchNorm statistics frozen, small lr
    "warm": {
        "student": {
            "arch": "mobilefacenet",
            "embedding_size": 512,
            "width": 1.0,
            "activation": "prelu",
            "warm_start": "faceplugin",
            "freeze_bn": True,
        },
        "optim": {"name": "adamw", "lr": 0.0002, "weight_decay": 0.01},
        "schedule": {"warmup": 0.05, "min_lr": 0.0},
    },
}

DATA = {
    "sources": [
        {"path": "${SHRINKFACE_ALIGNED}/glint", "kind": "labelled"},
        # LFW people who are NOT in pairs.txt (identity-disjoint by construction): on_overlap drops the others
        {"path": "${SHRINKFACE_ALIGNED}/lfw", "kind": "labelled"},
        {"path": "${SHRINKFACE_ALIGNED}/utkface", "kind": "unlabelled"},
    ],
    "on_overlap": "exclude",
    "unlabelled_labels": "pseudo",  # one class per UTKFace face (mostly one photo per person)
    "workers": 1,
    "augment": {"mirror": 0.5, "shift_px": 3.0, "scale": 0.03, "grayscale": 0.1, "blur": 0.05, "erase": 0.0},
}


def row_config(method: str, start: str, stage: int = 1) -> dict[str, Any]:
    """The experiment mapping of one row (stage 2 only for two-stage methods)."""
    m, s = METHODS[method], STARTS[start]
    two_stage = "stage2" in m
    name = f"{method}_{start}" + ("_stage2" if stage == 2 else "")
    steps = STEPS // 2 if two_stage else STEPS
    cfg: dict[str, Any] = {
        "name": name,
        "data": DATA,
        "student": s["student"],
        "teachers": m["teachers"],
        "losses": m["stage2"]["losses"] if stage == 2 else m["losses"],
        "optim": s["optim"],
        "schedule": s["schedule"],
        "steps": steps,
        "batch_size": BATCH,
        "seed": 0,
        "device": "cpu",
        "threads": 1,
        "eval": {
            "period": 0,
            "at_end": stage == 2 or not two_stage,
            "lfw_aligned": "${SHRINKFACE_ALIGNED}/lfw",
            "max_pairs": None,
            "flip": False,
            "tar_far": 1e-4,
        },
        "checkpoint": {"period": 30, "keep": 1},
        "output_dir": "runs/ablation",
    }
    if stage == 2:
        cfg["init_from"] = f"runs/ablation/{method}_{start}/checkpoints/last.pt"
        cfg["init_map"] = m["stage2"]["init_map"]
        cfg["student"] = {k: v for k, v in s["student"].items() if k != "warm_start"}
    return cfg


def rows() -> list[tuple[str, str, list[str]]]:
    """(method, start, [config names in run order])."""
    out = []
    for start in STARTS:
        for method, m in METHODS.items():
            names = [f"{method}_{start}"] + ([f"{method}_{start}_stage2"] if "stage2" in m else [])
            out.append((method, start, names))
    return out


def write() -> None:
    CONFIG_DIR.mkdir(parents=True, exist_ok=True)
    head = "# Written by bench/ablation.py (edit the table there, then `python bench/ablation.py write`).\n"
    for method, start, names in rows():
        for stage, name in enumerate(names, start=1):
            text = head + yaml.safe_dump(row_config(method, start, stage), sort_keys=False, width=120)
            (CONFIG_DIR / f"{name}.yaml").write_text(text)
    print(f"wrote {len(list(CONFIG_DIR.glob('*.yaml')))} configs to {CONFIG_DIR}")


def read_log(name: str) -> list[dict[str, Any]]:
    """The events of ``runs/ablation/<name>/log.jsonl`` (none when the run has not started)."""
    log = RUN_DIR / name / "log.jsonl"
    return [json.loads(x) for x in log.read_text().splitlines() if x.strip()] if log.is_file() else []


def final_eval(name: str) -> dict[str, Any] | None:
    """The last evaluation event of a run, or None."""
    evals = [e for e in read_log(name) if e.get("event") == "eval"]
    return evals[-1] if evals else None


def run(lane: str, only: str | None = None) -> None:
    k, n = (int(x) for x in lane.split("/"))
    todo = [r for i, r in enumerate(rows()) if i % n == k and (only is None or r[0] == only)]
    shrinkface = str(Path(sys.executable).with_name("shrinkface"))
    for _method, _start, names in todo:
        last = names[-1]
        if final_eval(last) is not None:
            print(f"[skip] {last}: done", flush=True)
            continue
        for name in names:
            if name != last and (RUN_DIR / name / "student.pt").is_file():
                continue
            resume = (RUN_DIR / name / "checkpoints" / "last.pt").is_file()
            cmd = [shrinkface, "train", "run", f"configs/ablation/{name}.yaml", "--quiet"] + (
                ["--resume"] if resume else []
            )
            print("[run]", " ".join(cmd), flush=True)
            rc = subprocess.call(cmd, cwd=ROOT, env=os.environ.copy())
            if rc != 0:
                print(f"[fail] {name}: exit {rc}", flush=True)
                break


if __name__ == "__main__":
    action = sys.argv[1] if len(sys.argv) > 1 else ""
    if action == "write":
        write()
    elif action == "run":
        only = sys.argv[sys.argv.index("--only") + 1] if "--only" in sys.argv else None
        run(sys.argv[sys.argv.index("--lane") + 1] if "--lane" in sys.argv else "0/1", only)
    elif action == "table":
        from ablation_table import table

        table()
    else:
        sys.exit(__doc__)
