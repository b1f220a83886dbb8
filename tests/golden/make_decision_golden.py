"""Write tests/golden/unlock_decisions.json: Python's unlock decisions between the golden embeddings.

For each exported model in tests/golden/embed_*.json and each pair of its golden images (a enrolled with one
template, b the probe), the score and decision of the runtime's own 1:1 path
(``decide.TemplateSet.from_owners`` + ``decide.verify``) at a set of thresholds: the card's threshold when it
has one, the midpoint between each two consecutive distinct scores, and one below / above all of them, so every
pair is seen both accepted and rejected. The Android core (EmbedGoldenTest.java) must reach the same decisions
from its own embeddings (crop → its input tensor → the golden model output → dequantise → normalise).

Run (after make_embed_golden.py): ``.venv/bin/python tests/golden/make_decision_golden.py``
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np

from shrinkface.runtime.decide import TemplateSet, verify

HERE = Path(__file__).resolve().parent
FORMAT = "shrinkface.decision_golden/1"


def _image(path: Path) -> str:
    return path.stem.removeprefix("embed_")


def build(golden_dir: Path = HERE) -> dict:
    """The decision record for every embed_*.json in ``golden_dir`` (images sorted by name)."""
    files = sorted(golden_dir.glob("embed_*.json"))
    records = {_image(f): json.loads(f.read_text()) for f in files}
    images = sorted(records)
    first = records[images[0]]["models"]
    models = []
    for m_index, model in enumerate(first):
        emb = {}
        for name in images:
            entry = records[name]["models"][m_index]
            if entry["file"] != model["file"] or entry["sha256"] != model["sha256"]:
                raise SystemExit(f"{name}: model {m_index} is {entry['file']}, not {model['file']}: regenerate all")
            emb[name] = np.asarray(entry["embedding"], dtype=np.float32)
        pairs = []
        for a, b in itertools.combinations(images, 2):
            templates = TemplateSet.from_owners([a], emb[a][None])
            score = verify(templates, emb[b], a, 0.0).score
            same = a.rsplit("_", 1)[0] == b.rsplit("_", 1)[0]
            pairs.append({"enrolled": a, "probe": b, "same_person": same, "score": score})
        ordered = sorted({p["score"] for p in pairs})
        thresholds = [ordered[0] - 0.05, *((x + y) / 2 for x, y in itertools.pairwise(ordered)), ordered[-1] + 0.05]
        card_threshold = model["card"].get("threshold")
        if card_threshold is not None:
            thresholds.insert(0, float(card_threshold))
        decisions = [
            [verify(TemplateSet.from_owners([p["enrolled"]], emb[p["enrolled"]][None]), emb[p["probe"]],
                    p["enrolled"], t).accepted for p in pairs]
            for t in thresholds
        ]  # fmt: skip
        models.append(
            {
                "file": model["file"],
                "sha256": model["sha256"],
                "card_threshold": card_threshold,
                "pairs": pairs,
                "thresholds": thresholds,
                "accepted": decisions,
            }
        )
    return {
        "format": FORMAT,
        "what": "decide.verify (one template, max) between the golden embeddings; accepted when score ≥ threshold",
        "images": images,
        "models": models,
    }


def main() -> None:
    """Write the file next to this script."""
    out = HERE / "unlock_decisions.json"
    out.write_text(json.dumps(build(), indent=1) + "\n")
    print(f"wrote {out.relative_to(HERE.parent.parent)}")


if __name__ == "__main__":
    main()
