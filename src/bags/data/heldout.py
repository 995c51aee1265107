"""A share of the training images set aside for choosing post-hoc settings (never val)."""

from __future__ import annotations

import json
import random
from pathlib import Path

from bags.data.annotations import load_annotations
from bags.io import write_text_atomic


def heldout_split(annotations: Path, share: float, seed: int, out: Path, on_bad: str) -> None:
    """``out``: the training annotations cut to a random ``share`` of their images (at least
    one), the same for the same seed."""
    data = load_annotations(annotations, on_bad, keep_segmentation=False)
    ids = sorted(image["id"] for image in data["images"])
    if not ids:
        raise ValueError(f"{annotations}: no images to hold out")
    chosen = set(random.Random(seed).sample(ids, max(1, round(share * len(ids)))))
    data["images"] = [image for image in data["images"] if image["id"] in chosen]
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] in chosen]
    write_text_atomic(out, json.dumps(data))
