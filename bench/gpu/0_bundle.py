"""Pack what a GPU box needs into carry folders of at most BUDGET bytes each: recoded aligned folders (one zip
each), assets, wheels and an optional checkpoint. Prints the calls to make (bench/gpu/README.md).

    .venv/bin/python bench/gpu/0_bundle.py --aligned ~/.cache/shrinkface/aligned/{glint,lfw,utkface} \\
        --pairs ../shared/data/lfw/pairs.txt --assets faceplugin expo_mobilefacenet --wheels /tmp/whl \\
        --checkpoint runs/scratch_long/checkpoints/last.pt

Each item goes whole into the first folder with room (largest first); an item larger than the budget is an
error. The budget defaults to 64 MiB minus the working tree that travels with every call (`git ls-files`).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import zipfile
from pathlib import Path

from shrinkface.runtime import lfw
from shrinkface.runtime.config import cache_dir
from shrinkface.runtime.recode import recode_aligned

LIMIT = 64 * 2**20


def tracked_bytes() -> int:
    """Bytes of the files git tracks here (they travel with every call)."""
    names = subprocess.run(["git", "ls-files", "-z"], capture_output=True, check=True).stdout.split(b"\0")
    return sum(Path(n.decode()).stat().st_size for n in names if n and Path(n.decode()).is_file())


def zip_folder(folder: Path, target: Path) -> Path:
    """``folder`` as one zip (named entries ``<folder name>/…``): JSON deflated, images stored."""
    with zipfile.ZipFile(target, "w") as zf:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            packed = zipfile.ZIP_DEFLATED if path.suffix in {".json", ".jsonl"} else zipfile.ZIP_STORED
            zf.write(path, f"{folder.name}/{path.relative_to(folder)}", compress_type=packed)
    return target


def size_of(path: Path) -> int:
    """Bytes of a file, or of every file under a folder."""
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--aligned", nargs="*", type=Path, default=[], help="Aligned folders to move (recoded).")
    parser.add_argument("--pairs", type=Path, help="Drop these LFW pairs' identities (training excludes them).")
    parser.add_argument("--quality", type=int, default=90)
    parser.add_argument("--assets", nargs="*", default=[], help="Asset names under the cache's assets/.")
    parser.add_argument("--wheels", type=Path, help="A folder of wheels to install there (--target /tmp/site).")
    parser.add_argument("--checkpoint", type=Path, help="A last.pt to resume from there.")
    parser.add_argument("--work", type=Path, default=Path("/tmp/shrinkface_recoded"))
    parser.add_argument("--out", type=Path, default=Path(".gpu"))
    parser.add_argument("--budget", type=int, help="Bytes a folder may hold (default: 64 MiB − tracked files).")
    args = parser.parse_args()

    if (args.out / ".git").exists() or args.out.resolve() in (Path.cwd().resolve(), Path.home().resolve()):
        raise SystemExit(f"--out {args.out} is emptied first: name a folder of its own (default .gpu)")
    exclude = lfw.pair_identities(lfw.parse_pairs(args.pairs)) if args.pairs else set()
    staging = args.out / "staging"
    shutil.rmtree(args.out, ignore_errors=True)
    staging.mkdir(parents=True)
    items: list[tuple[Path, str]] = []  # (file or folder to carry, its place in the bundle)
    for folder in args.aligned:
        recoded = args.work / folder.name
        if not (recoded / "manifest.jsonl").is_file():
            s = recode_aligned(folder, recoded, "webp", args.quality, exclude, progress=True)
            print(f"{folder.name}: {s.recoded} crops, {s.bytes_in / 1e6:.1f} → {s.bytes_out / 1e6:.1f} MB")
        items.append((zip_folder(recoded, staging / f"{folder.name}.zip"), f"{folder.name}.zip"))
    if args.pairs:
        items.append((args.pairs, "pairs.txt"))
    items += [(cache_dir() / "assets" / name, f"assets/{name}") for name in args.assets]
    if args.wheels:
        items += [(w, f"whl/{w.name}") for w in sorted(args.wheels.glob("*.whl"))]
    if args.checkpoint:
        items.append((args.checkpoint, "last.pt"))

    budget = args.budget or LIMIT - tracked_bytes() - 2**20  # 1 MiB for untracked files
    bundles: list[list[tuple[Path, str]]] = []
    used: list[int] = []
    for path, name in sorted(items, key=lambda item: -size_of(item[0])):
        size = size_of(path)
        if size > budget:
            raise SystemExit(f"{path} ({size / 2**20:.1f} MiB) is larger than a call's budget ({budget / 2**20:.1f})")
        slot = next((i for i, u in enumerate(used) if u + size <= budget), None)
        if slot is None:
            bundles.append([])
            used.append(0)
            slot = len(bundles) - 1
        bundles[slot].append((path, name))
        used[slot] += size
    for i, bundle in enumerate(bundles, 1):
        for path, name in bundle:
            dst = args.out / str(i) / name
            dst.parent.mkdir(parents=True, exist_ok=True)
            (shutil.copytree if path.is_dir() else shutil.copy)(path, dst)
        mib = used[i - 1] / 2**20
        print(f'call {i}: carry ["{args.out}/{i}"] ({mib:.1f} MiB): bash bench/gpu/1_unpack.sh {args.out}/{i}')
    shutil.rmtree(staging)
    print(f"budget per call {budget / 2**20:.1f} MiB; the working tree adds {tracked_bytes() / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
