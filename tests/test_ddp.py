"""DDP with torchrun on the CPU (gloo): two processes, the unchanged trainer, identical final weights.

The Glint crops of the data folder are already 112×112 ArcFace-aligned, so this test uses them as they are.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from shrinkface.train.checkpoint import load_checkpoint  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent(
    """
    import os, sys, torch
    from shrinkface.train.config import load_config
    from shrinkface.train.trainer import train

    cfg = load_config(sys.argv[1], sys.argv[3:])
    result = train(cfg, progress=False)
    state = {"student": result.student.state_dict(), "objective": result.objective.state_dict()}
    torch.save(state, os.path.join(sys.argv[2], f"rank{os.environ['RANK']}.pt"))
    """
)


def test_two_processes_end_with_identical_weights(tmp_path: Path, data_dir: Path) -> None:
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    sets = [
        f"data.sources.0.path={data_dir / 'glint-celeb6' / 'images'}",
        "data.sources.0.limit_per_class=8",
        "data.workers=0",
        f"output_dir={tmp_path / 'runs'}",
        "steps=4",
        "batch_size=8",
        "log_period=1",
        "checkpoint.period=2",
    ]
    env = dict(os.environ, SHRINKFACE_DATA=str(data_dir), OMP_NUM_THREADS="1")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(script),
        str(REPO / "configs" / "ci_tiny.yaml"),
        str(tmp_path),
        *sets,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]

    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    for part in ("student", "objective"):
        a, b = ranks[0][part], ranks[1][part]
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), part  # parameters and BN statistics
    final = ranks[0]["student"]
    ckpt = load_checkpoint(tmp_path / "runs" / "ci_tiny" / "checkpoints" / "last.pt")
    assert ckpt["step"] == 4 and ckpt["world"] == 2
    assert all(torch.equal(ckpt["student"][k], v) for k, v in final.items())
    log = (tmp_path / "runs" / "ci_tiny" / "log.jsonl").read_text().splitlines()
    assert '"world": 2' in log[0] and sum('"loss"' in line for line in log) == 4
    # each process saw half of every global batch: 48 crops → 24 per rank → 6 batches of 4 per epoch
    assert '"steps_per_epoch": 6' in log[0]
