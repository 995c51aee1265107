"""Differences between two rows of a finished run, per seed, as mean ± std over the seeds.

    python scripts/differences.py results/synthetic bags baseline x2 baseline bags crt
    python scripts/differences.py results/synthetic bags baseline --metrics AP AP_fixed AP_pool

Each pair A B prints A minus B in each metric (AP and APr unless named), taken seed by seed from
``runs/longtail/<method>/seed<k>/metrics.json`` over the seeds both rows have (the std is the
sample std, as the tables' is).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def seeds_of(runs: Path, method: str) -> dict[int, dict]:
    found = {}
    for path in sorted((runs / method).glob("seed*/metrics.json")):
        found[int(path.parent.name.removeprefix("seed"))] = json.loads(path.read_text())
    if not found:
        raise SystemExit(f"{runs / method}: no seed*/metrics.json (is the method's name right?)")
    return found


def spread(values: list[float]) -> str:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):+.1f} ± {std:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="an experiment's results folder")
    parser.add_argument("pairs", nargs="+", help="method names, two by two: A B (A minus B)")
    parser.add_argument("--dataset", default="longtail")
    parser.add_argument("--metrics", nargs="+", default=["AP", "APr"], help="keys of metrics.json")
    args = parser.parse_args()
    if len(args.pairs) % 2:
        parser.error("methods come in pairs: A B")
    runs = args.results / "runs" / args.dataset
    keys = args.metrics
    print("| A minus B | seeds | " + " | ".join(keys) + " |")
    print("| --- | ---: | " + " | ".join("---:" for _ in keys) + " |")
    for a, b in zip(args.pairs[::2], args.pairs[1::2]):
        first, second = seeds_of(runs, a), seeds_of(runs, b)
        seeds = sorted(first.keys() & second.keys())
        missing = [k for k in keys for s in seeds if k not in first[s] or k not in second[s]]
        if missing:
            raise SystemExit(f"{a} or {b}: a seed's metrics.json has no {missing[0]!r}")
        cells = [spread([first[s][k] - second[s][k] for s in seeds]) for k in keys]
        print(f"| {a} minus {b} | {len(seeds)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
