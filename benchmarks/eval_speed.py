"""Time the two LVIS evaluation backends on an LVIS-like set: CPU, wall time and peak memory.

    python benchmarks/eval_speed.py [--images 5000] [--dets 300] [--seed 0]

The ground truth is the real 100-image LVIS v0.5 val file, replicated with new image and
annotation ids to --images images. Each image gets --dets detections: noisy copies of its
ground-truth boxes and random boxes, of its own, its negative, its not-exhaustive and random
categories, scored to 3 decimals (so scores tie). Each backend runs `bags.evaluation.evaluate`
in a fresh Python process, so CPU time (user + sys) and peak RSS are that process's own; both
include the interpreter start and the JSON reading.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LVIS_DATA = Path(__file__).resolve().parents[1] / "data" / "lvis"
BACKENDS = ("lvis", "faster")


def lvis_like_set(num_images: int, dets_per_image: int, seed: int) -> tuple[dict, list[dict]]:
    """The 100 val images replicated to ``num_images`` images, and detections for them."""
    source = json.loads((LVIS_DATA / "lvis_v0.5_val_100.json").read_text())
    anns_of: dict[int, list[dict]] = {}
    for ann in source["annotations"]:
        anns_of.setdefault(ann["image_id"], []).append(ann)
    cat_ids = [c["id"] for c in source["categories"]]
    rng = random.Random(seed)
    images, annotations, detections = [], [], []
    for image_id in range(1, num_images + 1):
        image = source["images"][(image_id - 1) % len(source["images"])]
        anns = anns_of.get(image["id"], [])
        images.append(image | {"id": image_id})
        for ann in anns:
            annotations.append(ann | {"id": len(annotations) + 1, "image_id": image_id})
        own = sorted({a["category_id"] for a in anns})
        labelled = own + image["neg_category_ids"] + image["not_exhaustive_category_ids"]
        width, height = image["width"], image["height"]
        for i in range(dets_per_image):
            if anns and i % 3 == 0:  # a third: noisy copies of ground-truth boxes
                ann = rng.choice(anns)
                x, y, w, h = ann["bbox"]
                box = [x + rng.gauss(0, 0.1) * w, y + rng.gauss(0, 0.1) * h]
                box += [w * rng.uniform(0.8, 1.25), h * rng.uniform(0.8, 1.25)]
                category = ann["category_id"] if rng.random() < 0.7 else rng.choice(cat_ids)
            else:
                x, y = rng.uniform(0, width - 2), rng.uniform(0, height - 2)
                box = [x, y, rng.uniform(1, width - x), rng.uniform(1, height - y)]
                category = rng.choice(labelled if labelled and rng.random() < 0.5 else cat_ids)
            detections.append(
                {
                    "image_id": image_id,
                    "category_id": category,
                    "bbox": [round(v, 2) for v in box],
                    "score": round(rng.random(), 3),
                }
            )
    gt = source | {"images": images, "annotations": annotations}
    return gt, detections


def instance_counts() -> dict[int, int]:
    stats = json.loads((LVIS_DATA / "lvis_v0.5_train_category_stats.json").read_text())
    return {c["id"]: c["instance_count"] for c in stats["categories"]}


def child(backend: str, folder: Path) -> None:
    """Evaluate the set in ``folder`` with one backend; write the metrics next to it."""
    from bags.evaluation import evaluate

    metrics = evaluate(
        folder / "gt.json", folder / "results.json", instance_counts(), backend=backend
    )
    (folder / f"metrics_{backend}.json").write_text(json.dumps(metrics))


def measure(backend: str, folder: Path) -> dict:
    """CPU seconds, wall seconds and peak RSS (MiB) of one backend in its own process."""
    command = [sys.executable, __file__, "--child", backend, "--folder", str(folder)]
    start = time.perf_counter()
    process = subprocess.Popen(command)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise SystemExit(f"the {backend} run failed (exit status {process.returncode})")
    metrics = json.loads((folder / f"metrics_{backend}.json").read_text())
    return {
        "cpu": usage.ru_utime + usage.ru_stime,
        "wall": wall,
        "rss": usage.ru_maxrss / 1024,  # Linux reports KiB
        "metrics": metrics,
    }


def largest_difference(a: dict, b: dict) -> float:
    if a.keys() != b.keys() or any((a[k] is None) != (b[k] is None) for k in a):
        return float("inf")
    return max((abs(a[k] - b[k]) for k in a if a[k] is not None), default=0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--dets", type=int, default=300, help="detections per image")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", choices=BACKENDS, help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.folder)
        return

    gt, detections = lvis_like_set(args.images, args.dets, args.seed)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        (folder / "gt.json").write_text(json.dumps(gt))
        (folder / "results.json").write_text(json.dumps(detections))
        print(
            f"{len(gt['images'])} images, {len(gt['annotations'])} ground-truth boxes, "
            f"{len(detections)} detections ({args.dets} per image), "
            f"{len(gt['categories'])} categories; load average "
            + " ".join(f"{x:.2f}" for x in os.getloadavg())
        )
        del gt, detections
        runs = {backend: measure(backend, folder) for backend in BACKENDS}

    lvis, faster = runs["lvis"], runs["faster"]
    print(f"{'':14}{'lvis':>10}{'faster':>10}{'lvis/faster':>13}")
    for key, label in (("cpu", "CPU s"), ("wall", "wall s"), ("rss", "peak RSS MiB")):
        ratio = lvis[key] / faster[key]
        print(f"{label:14}{lvis[key]:10.1f}{faster[key]:10.1f}{ratio:13.2f}")
    difference = largest_difference(lvis["metrics"], faster["metrics"])
    print(
        f"largest |difference| over {len(lvis['metrics'])} metrics "
        f"({', '.join(lvis['metrics'])}): {difference:.1e}"
    )
    print(f"AP (lvis) {lvis['metrics']['AP']:.4f}  AP (faster) {faster['metrics']['AP']:.4f}")


if __name__ == "__main__":
    main()
