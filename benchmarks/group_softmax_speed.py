"""Time BAGS loss + backward and the inference merge against plain softmax CE at LVIS size.

    python benchmarks/group_softmax_speed.py [--classes 1230] [--rois 8192] [--threads 2]

Labels: 25% foreground (as the RoI sampler gives), foreground classes drawn in proportion to
the LVIS v0.5 training instance counts, so every group sees the imbalance it sees in training.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils import benchmark

from bags.group_softmax import group_softmax_loss, group_softmax_scores
from bags.groups import assign_groups

LVIS_STATS = Path(__file__).resolve().parents[1] / "data/lvis/lvis_v0.5_train_category_stats.json"


def instance_counts(num_classes: int) -> list[int]:
    if num_classes == 1230 and LVIS_STATS.is_file():
        categories = sorted(json.loads(LVIS_STATS.read_text())["categories"], key=lambda c: c["id"])
        return [c["instance_count"] for c in categories]
    # A Zipf-like long tail spanning all four bins.
    return [max(1, int(50000 / (c + 1) ** 1.3)) for c in range(num_classes)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=1230)
    parser.add_argument("--rois", type=int, default=16 * 512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--min-run-time", type=float, default=3.0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    counts = instance_counts(args.classes)
    groups = assign_groups(counts)
    weights = torch.tensor(counts, dtype=torch.float)
    foreground = torch.rand(args.rois) < 0.25
    labels = torch.where(foreground, torch.multinomial(weights, args.rois, replacement=True) + 1, 0)
    plain = torch.randn(args.rois, args.classes + 1, requires_grad=True)
    grouped = torch.randn(args.rois, groups.num_logits, requires_grad=True)
    generator = torch.Generator().manual_seed(0)

    def plain_step() -> None:
        F.cross_entropy(plain, labels).backward()

    def bags_step() -> None:
        group_softmax_loss(grouped, labels, groups, 8.0, generator).backward()

    def plain_merge() -> None:
        with torch.no_grad():
            F.softmax(plain, dim=1)

    def bags_merge() -> None:
        with torch.no_grad():
            group_softmax_scores(grouped, groups)

    def measure(fn) -> float:
        timer = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=args.threads)
        return timer.blocked_autorange(min_run_time=args.min_run_time).median * 1e3

    print(
        f"{args.classes} classes in groups of {groups.sizes} ({groups.num_logits} logits), "
        f"{args.rois} RoIs, {args.threads} threads"
    )
    rows = [
        ("loss + backward", measure(plain_step), measure(bags_step)),
        ("inference merge", measure(plain_merge), measure(bags_merge)),
    ]
    print(f"{'':18}{'softmax CE ms':>15}{'BAGS ms':>10}{'ratio':>8}")
    rows.append(("both", sum(r[1] for r in rows), sum(r[2] for r in rows)))
    for name, base, ours in rows:
        print(f"{name:18}{base:15.2f}{ours:10.2f}{ours / base:8.2f}x")


if __name__ == "__main__":
    main()
