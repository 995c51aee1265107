"""Small datasets and models made on the fly for tests."""

from __future__ import annotations

import json
from pathlib import Path

from bags.data.synthetic import SyntheticSpec, generate

TINY_SPEC = {"train_counts": [[2, 2, 3], [2, 10, 12], [1, 30, 30]], "val_per_class": 2, "seed": 3}
TINY_ARCH = {"name": "small", "channels": 8, "layers": 2, "representation": 32}
TINY_TRAIN = {"epochs": 2, "batch_size": 8, "lr": 0.01, "warmup_iters": 2}


def make_tiny_dataset(root: Path) -> Path:
    generate(SyntheticSpec(**TINY_SPEC), root)
    return root


def counts_file(root: Path) -> Path:
    """The counts CSV of a tiny dataset's training file (made once, beside it)."""
    from bags.data.counts import write_counts

    path = root / "counts.csv"
    if not path.exists():
        write_counts(root / "train.json", path)
    return path


def train_command(
    root: Path,
    out: Path,
    work: Path,
    settings: dict | None = None,
    method: dict | None = None,
    start: Path | None = None,
    groups: Path | None = None,
    arch: dict | None = None,
) -> list[str]:
    """``bags train`` arguments as the rules pass them, on a tiny dataset in ``root``."""
    args = [
        "train", "--annotations", root / "train.json", "--images", root / "images",
        "--counts", counts_file(root), "--on-bad", "stop", "--image-paths", "file_name",
        "--arch", json.dumps(arch or TINY_ARCH), "--settings", json.dumps(settings or TINY_TRAIN),
        "--method", json.dumps(method or {}), "--out", out,
        "--epoch-log", Path(out).with_suffix(".csv"), "--work-dir", work, "--threads", 1,
        *(["--start", start] if start else []), *(["--groups-file", groups] if groups else []),
    ]  # fmt: skip
    return [str(a) for a in args]
