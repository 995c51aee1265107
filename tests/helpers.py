"""Small datasets and models made on the fly for tests."""

from __future__ import annotations

from pathlib import Path

from bags.data.synthetic import SyntheticSpec, generate

TINY_SPEC = {"train_counts": [[2, 2, 3], [2, 10, 12], [1, 30, 30]], "val_per_class": 2, "seed": 3}
TINY_ARCH = {"name": "small", "channels": 8, "layers": 2, "representation": 32}
TINY_TRAIN = {"epochs": 2, "batch_size": 8, "lr": 0.01, "warmup_iters": 2}


def make_tiny_dataset(root: Path) -> Path:
    generate(SyntheticSpec(**TINY_SPEC), root)
    return root
