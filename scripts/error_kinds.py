"""Where a row's AP goes at one IoU threshold: how much the classes of one LVIS frequency would
gain if one kind of false positive were gone.

    python scripts/error_kinds.py VAL_JSON DETECTIONS_JSON [...] [--frequency r] [--iou 0.5]

Detections of a class are matched greedily by score to its unmatched objects at IoU >= the
threshold, as the LVIS evaluation matches them, on the images where the class is evaluated
(present or in ``neg_category_ids``). Each false positive is of one kind: on another class's
object (IoU >= the threshold; by that class's frequency), a duplicate of a matched object, poor
localisation (IoU 0.1 up to the threshold with any object) or background. The table gives the
frequency's AP at the threshold (101 recall points, as LVIS) and, per kind, its gain when the
false positives of that kind are dropped; one column per detections file.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

KINDS = (
    "another class's object: r",
    "another class's object: c",
    "another class's object: f",
    "duplicate",
    "poor localisation",
    "background",
)


def iou(a: list[float], b: list[float]) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = w * h
    return inter / (aw * ah + bw * bh - inter)


def ranked_kinds(
    gt: dict, detections: list[dict], frequency: str, threshold: float
) -> list[tuple[list, int]]:
    """Per ``frequency`` class: its detections' kinds by falling score (None: a true positive)
    and its number of objects."""
    frequency_of = {c["id"]: c["frequency"] for c in gt["categories"]}
    objects, count = defaultdict(list), Counter()
    for a in gt["annotations"]:
        objects[a["image_id"]].append(a)
        count[a["category_id"]] += 1
    evaluated = defaultdict(set)
    for image in gt["images"]:
        evaluated[image["id"]].update(image.get("neg_category_ids", []))
    for a in gt["annotations"]:
        evaluated[a["image_id"]].add(a["category_id"])
    by_class = defaultdict(list)
    for d in detections:
        if d["category_id"] in evaluated[d["image_id"]]:
            by_class[d["category_id"]].append(d)
    classes = []
    for c in sorted(frequency_of):
        if frequency_of[c] != frequency:
            continue
        mine = by_class[c]
        matched, ranked = set(), []
        for d in sorted(mine, key=lambda d: -d["score"]):
            overlaps = [(iou(d["bbox"], a["bbox"]), a) for a in objects[d["image_id"]]]
            free = [
                (v, a["id"])
                for v, a in overlaps
                if a["category_id"] == c and a["id"] not in matched and v >= threshold
            ]
            if free:
                matched.add(max(free)[1])
                ranked.append(None)
                continue
            best = max(overlaps, default=(0.0, None), key=lambda pair: pair[0])
            if best[0] >= threshold and best[1]["category_id"] != c:
                ranked.append(f"another class's object: {frequency_of[best[1]['category_id']]}")
            elif best[0] >= threshold:
                ranked.append("duplicate")
            elif best[0] >= 0.1:
                ranked.append("poor localisation")
            else:
                ranked.append("background")
        if count[c]:
            classes.append((ranked, count[c]))
    return classes


def ap(ranked: list, count: int) -> float:
    """AP from kinds by falling score (None: a true positive), 101 recall points as LVIS."""
    hits = np.cumsum([kind is None for kind in ranked])
    precision = hits / np.arange(1, len(ranked) + 1)
    precision = np.maximum.accumulate(precision[::-1])[::-1]  # interpolated
    recall = hits / count
    points = np.searchsorted(recall, np.linspace(0, 1, 101), side="left")
    return float(np.mean([precision[i] if i < len(ranked) else 0.0 for i in points]))


def error_gains(
    gt: dict, detections: list[dict], frequency: str = "r", threshold: float = 0.5
) -> dict[str, float]:
    """AP (%) of the frequency's classes at the IoU threshold, then its gain with each kind of
    false positive gone."""
    classes = ranked_kinds(gt, detections, frequency, threshold)
    base = np.mean([ap(ranked, count) for ranked, count in classes])
    gains = {"AP": 100 * base}
    for kind in KINDS:
        kept = [([k for k in ranked if k != kind], count) for ranked, count in classes]
        gains[kind] = 100 * (np.mean([ap(ranked, count) for ranked, count in kept]) - base)
    return gains


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("val", type=Path, help="the LVIS-format file the detections are scored on")
    parser.add_argument("detections", type=Path, nargs="+")
    parser.add_argument("--frequency", choices="rcf", default="r")
    parser.add_argument("--iou", type=float, default=0.5, help="IoU threshold of a match")
    args = parser.parse_args()
    gt = json.loads(args.val.read_text())
    gains = [
        error_gains(gt, json.loads(p.read_text()), args.frequency, args.iou)
        for p in args.detections
    ]
    names = [p.parent.parent.name + "/" + p.parent.name for p in args.detections]
    print(f"| frequency {args.frequency}, IoU {args.iou} | " + " | ".join(names) + " |")
    print("| --- |" + " ---: |" * len(names))
    print("| AP | " + " | ".join(f"{g['AP']:.1f}" for g in gains) + " |")
    for kind in KINDS:
        print(f"| + without {kind} | " + " | ".join(f"{g[kind]:+.1f}" for g in gains) + " |")


if __name__ == "__main__":
    main()
