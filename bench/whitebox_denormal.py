"""Crops/s of the faceplugin white-box teacher (onnx2torch) on one thread, with and without flushing subnormal
floats: why ``train.teachers.TorchEmbedder.embed`` turns flush-to-zero on (the teacher cache).

    .venv/bin/python bench/whitebox_denormal.py [--crops 128]

Each setting runs in a fresh process (the flag is process-wide); both embed the same real training crops and the
script prints crops/s and the largest difference between the two sets of embeddings.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import json, sys, time
import numpy as np, torch
from shrinkface.runtime.config import cache_dir
from shrinkface.train.teachers import load_whitebox
torch.set_num_threads(1)
torch.set_flush_denormal(sys.argv[1] == "1")
teacher, _ = load_whitebox("faceplugin")  # the module itself: TorchEmbedder.embed would turn flushing on
pack = max((cache_dir() / "train" / "crops").glob("*.npy"), key=lambda p: p.stat().st_size)
crops = torch.from_numpy(np.ascontiguousarray(np.load(pack, mmap_mode="r")[: int(sys.argv[2])]))
embed = lambda x: torch.cat([teacher(x[i : i + 64])[0] for i in range(0, len(x), 64)])
with torch.no_grad():
    embed(crops[:16])
    t0 = time.perf_counter()
    emb = embed(crops).numpy()
np.save(sys.argv[3], emb)
print(json.dumps({"flush": sys.argv[1] == "1", "crops_per_s": round(len(crops) / (time.perf_counter() - t0), 1)}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crops", type=int, default=128, help="Crops from the largest training crop pack.")
    args = parser.parse_args()
    import numpy as np

    with tempfile.TemporaryDirectory() as tmp:
        out = {}
        for flush in ("0", "1"):
            path = Path(tmp) / f"{flush}.npy"
            run = subprocess.run(
                [sys.executable, "-c", CHILD, flush, str(args.crops), str(path)], capture_output=True, text=True
            )
            if run.returncode:
                raise SystemExit(run.stderr[-2000:])
            out[flush] = json.loads(run.stdout.strip().splitlines()[-1]) | {"emb": np.load(path)}
        diff = float(np.abs(out["0"]["emb"] - out["1"]["emb"]).max())
    for flush in ("0", "1"):
        print(f"flush subnormals {'on ' if flush == '1' else 'off'}: {out[flush]['crops_per_s']} crops/s")
    print(f"largest embedding difference: {diff:.2e}")


if __name__ == "__main__":
    main()
