"""Per-rule time and memory of a finished DAG, from Snakemake's benchmark files.

    python benchmarks/dag_times.py [results/synthetic] [--seed K]

Each rule's `benchmark:` file records its job's wall seconds and peak memory. This sums them by
rule (jobs side by side overlap, so the sum exceeds the DAG's wall clock on several cores) and
prints a Markdown table, the largest first. A rule's shortest job approximates the fixed cost
of one of its jobs (interpreter and torch start-up, reading inputs). With --seed K, only the
jobs of seed K (those named ..._seedK): one seed's share of a run with several.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pandas as pd


def rule_of(path: Path, root: Path) -> str:
    """The rule a benchmark file belongs to: its folder under benchmarks/ (or its own name)."""
    parts = path.relative_to(root).parts
    return parts[0] if len(parts) > 1 else path.stem


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment", nargs="?", default="results/synthetic", type=Path)
    parser.add_argument("--seed", type=int, help="only the jobs of this seed")
    args = parser.parse_args()
    root = args.experiment / "benchmarks"
    rows = []
    for path in sorted(root.rglob("*.tsv")):
        if args.seed is not None and not re.search(rf"(^|_)seed{args.seed}$", path.stem):
            continue
        table = pd.read_csv(path, sep="\t")
        rows.append(
            {
                "rule": rule_of(path, root),
                "job": path.stem,
                "s": float(table["s"].iloc[-1]),
                "max_rss": float(table["max_rss"].iloc[-1]),
            }
        )
    if not rows:
        which = "" if args.seed is None else f" of seed {args.seed}"
        raise SystemExit(f"no benchmark files{which} under {root}")
    jobs = pd.DataFrame(rows)
    summary = jobs.groupby("rule").agg(
        jobs=("job", "count"),
        seconds=("s", "sum"),
        shortest=("s", "min"),
        peak_mb=("max_rss", "max"),
    )
    summary = summary.sort_values("seconds", ascending=False)
    print("| rule | jobs | seconds | shortest job (s) | peak MB |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for rule, row in summary.iterrows():
        cells = [rule, int(row.jobs), f"{row.seconds:.0f}", f"{row.shortest:.1f}"]
        print("| " + " | ".join(map(str, cells)) + f" | {row.peak_mb:.0f} |")
    print(f"| **sum** | {len(jobs)} | **{jobs['s'].sum():.0f}** | | |")
    for name in ("train",):
        part = jobs[jobs["rule"] == name].sort_values("s", ascending=False)
        if len(part):
            print(
                f"\n{name} jobs: " + ", ".join(f"{j} {s:.0f} s" for j, s in zip(part.job, part.s))
            )


if __name__ == "__main__":
    main()
