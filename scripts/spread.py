"""The seed-to-seed spread of a table's rows, for tables side by side.

    python scripts/spread.py results/synthetic/tables/comparison.csv \
        docs/runs/large/tables/comparison.csv

Each file is a table the DAG wrote over several seeds (a mean and an ``_std`` column per metric).
For each metric, the median and the largest std over the table's rows, one column per table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

METRICS = ("AP", "APr", "APc", "APf")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tables", nargs="+", type=Path)
    args = parser.parse_args()
    frames = {path: pd.read_csv(path) for path in args.tables}
    for path, frame in frames.items():
        missing = [f"{m}_std" for m in METRICS if f"{m}_std" not in frame]
        if missing:
            raise SystemExit(f"{path}: no {', '.join(missing)} (a table of one seed?)")
    print("| std over seeds | " + " | ".join(str(p) for p in frames) + " |")
    print("| --- |" + " ---: |" * len(frames))
    for metric in METRICS:
        cells = []
        for frame in frames.values():
            std = frame[f"{metric}_std"]
            cells.append(f"median {std.median():.1f}, largest {std.max():.1f}")
        print(f"| {metric} | " + " | ".join(cells) + " |")
    print("| seeds | " + " | ".join(str(int(f["seeds"].min())) for f in frames.values()) + " |")


if __name__ == "__main__":
    main()
