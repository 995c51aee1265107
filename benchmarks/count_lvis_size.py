"""Count and group a full-size LVIS v1-like train annotation file; time and size each step.

    python benchmarks/count_lvis_size.py [--out-dir DIR] [--keep] [--polygon-numbers 68]

Writes (streaming) an annotation file with the real LVIS v1 train category list and counts:
exactly ``instance_count`` boxes per category over ``image_count`` distinct images, about 100k
images in all. Then runs ``python -m bags count`` and ``python -m bags groups`` on it, each in a
fresh process, and reports wall time and peak RSS against the targets (60 s and 6 GB for both
steps together). Exits non-zero if a target or a check fails.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LVIS_STATS = Path(__file__).resolve().parents[1] / "data/lvis/lvis_v1_train_category_stats.json"
NUM_IMAGES = 100_170
MAX_SECONDS = 60.0
MAX_RSS_MB = 6 * 1024.0
EXPECTED_SIZES = [200, 412, 334, 257]
EXPECTED_LOGITS = 1209
IMAGE_SIZES = [(640, 480), (480, 640), (640, 427), (427, 640), (500, 375), (640, 512)]


def load_categories() -> list[dict]:
    categories = json.loads(LVIS_STATS.read_text())["categories"]
    return sorted(categories, key=lambda c: c["id"])


def write_annotation_file(
    path: Path, categories: list[dict], polygon_numbers: int, seed: int = 0
) -> None:
    """Stream an LVIS v1-style train JSON to ``path``: images, annotations, categories."""
    rng = random.Random(seed)
    image_ids = sorted(rng.sample(range(1, 600_000), NUM_IMAGES))
    sizes = [rng.choice(IMAGE_SIZES) for _ in image_ids]
    category_ids = [c["id"] for c in categories]
    # Each category takes the next image_count images of one cyclic shuffled order: distinct
    # images within a category (image_count < NUM_IMAGES), and every image gets some box.
    order = list(range(NUM_IMAGES))
    rng.shuffle(order)
    cursor = 0
    with path.open("w", encoding="ascii", buffering=1 << 20) as out:
        out.write('{"info": {"description": "LVIS v1-like benchmark file"}, "licenses": [],\n')
        out.write('"images": [\n')
        for k, (image_id, (width, height)) in enumerate(zip(image_ids, sizes)):
            neg = sorted(rng.sample(category_ids, rng.randint(0, 6)))
            not_exhaustive = sorted(rng.sample(category_ids, rng.randint(0, 2)))
            out.write(
                f'{"," if k else ""}{{"id": {image_id}, "width": {width}, "height": {height}, '
                f'"coco_url": "http://images.cocodataset.org/train2017/{image_id:012d}.jpg", '
                f'"neg_category_ids": {neg}, "not_exhaustive_category_ids": {not_exhaustive}}}\n'
            )
        out.write('],\n"annotations": [\n')
        annotation_id = 0
        for category in categories:
            n, k = category["instance_count"], category["image_count"]
            picked = [order[(cursor + i) % NUM_IMAGES] for i in range(k)]
            cursor = (cursor + k) % NUM_IMAGES
            per_image = [1] * k
            for i in rng.choices(range(k), k=n - k):
                per_image[i] += 1
            lines = []
            for index, count in zip(picked, per_image):
                width, height = sizes[index]
                for _ in range(count):
                    annotation_id += 1
                    w = rng.uniform(1.0, width / 2)
                    h = rng.uniform(1.0, height / 2)
                    x = rng.uniform(0.0, width - w)
                    y = rng.uniform(0.0, height - h)
                    polygon = ", ".join(
                        f"{x + rng.uniform(0, w):.2f}, {y + rng.uniform(0, h):.2f}"
                        for _ in range(polygon_numbers // 2)
                    )
                    lines.append(
                        f'{"," if annotation_id > 1 else ""}{{"id": {annotation_id}, '
                        f'"image_id": {image_ids[index]}, "category_id": {category["id"]}, '
                        f'"bbox": [{x:.2f}, {y:.2f}, {w:.2f}, {h:.2f}], "area": {w * h:.2f}, '
                        f'"segmentation": [[{polygon}]]}}\n'
                    )
            out.write("".join(lines))
        out.write('],\n"categories": [\n')
        out.write(",\n".join(json.dumps(c) for c in categories))
        out.write("\n]}\n")


def measure(command: list[str], log_path: Path) -> tuple[float, float, int]:
    """Run ``command`` in a fresh process; return (wall seconds, peak RSS MB, exit code).

    ``os.wait4`` gives the resource usage of this one child, not the max over all children.
    """
    with log_path.open("w") as log:
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    # ru_maxrss is in KiB on Linux.
    return seconds, usage.ru_maxrss / 1024, process.returncode


def check_counts(csv_path: Path, categories: list[dict]) -> list[str]:
    with csv_path.open(newline="") as handle:
        rows = {int(row["category_id"]): row for row in csv.DictReader(handle)}
    problems = []
    if len(rows) != len(categories):
        problems.append(f"counts CSV has {len(rows)} categories, expected {len(categories)}")
    for category in categories:
        row = rows.get(category["id"])
        if row is None:
            problems.append(f"category {category['id']} missing from the counts CSV")
            continue
        for field in ("instance_count", "image_count"):
            if int(row[field]) != category[field]:
                problems.append(
                    f"category {category['id']} {field}: counted {row[field]}, "
                    f"stats file {category[field]}"
                )
    return problems


def check_groups(json_path: Path) -> list[str]:
    document = json.loads(json_path.read_text())
    sizes = [len(group["classes"]) for group in document["groups"]]
    problems = []
    if sizes != EXPECTED_SIZES:
        problems.append(f"group sizes {sizes}, expected {EXPECTED_SIZES}")
    if document["num_logits"] != EXPECTED_LOGITS:
        problems.append(f"{document['num_logits']} logits, expected {EXPECTED_LOGITS}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, help="where to write (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the files written")
    parser.add_argument(
        "--polygon-numbers",
        type=int,
        default=68,
        help="numbers per segmentation polygon (68, the average of real LVIS val boxes)",
    )
    args = parser.parse_args()

    categories = load_categories()
    if args.out_dir is not None:
        args.out_dir.mkdir(parents=True, exist_ok=True)
        out_dir = args.out_dir
    else:
        out_dir = Path(tempfile.mkdtemp(prefix="bags_lvis_size_"))
    annotations = out_dir / "lvis_v1_train_like.json"
    counts_csv = out_dir / "counts.csv"
    groups_json = out_dir / "groups.json"
    try:
        start = time.perf_counter()
        write_annotation_file(annotations, categories, args.polygon_numbers)
        write_seconds = time.perf_counter() - start
        size_mb = annotations.stat().st_size / 2**20
        total_boxes = sum(c["instance_count"] for c in categories)
        print(
            f"wrote {annotations}: {size_mb:.0f} MB, {total_boxes} boxes, {len(categories)} "
            f"categories, {NUM_IMAGES} images in {write_seconds:.1f} s (not measured)"
        )

        python = [sys.executable, "-m", "bags"]
        steps = [
            (
                "count",
                [*python, "count", "--annotations", str(annotations), "--out", str(counts_csv)],
            ),
            ("groups", [*python, "groups", "--counts", str(counts_csv), "--out", str(groups_json)]),
        ]
        results = []
        problems = []
        for name, command in steps:
            seconds, peak_mb, code = measure(command, out_dir / f"{name}.log")
            results.append((name, seconds, peak_mb))
            if code != 0:
                log_text = (out_dir / f"{name}.log").read_text()
                problems.append(f"{name} exited {code}:\n{log_text[-3000:]}")
                break
        else:
            problems += check_counts(counts_csv, categories)
            problems += check_groups(groups_json)

        total_seconds = sum(seconds for _, seconds, _ in results)
        total_peak = max((peak for _, _, peak in results), default=0.0)
        fits = total_seconds <= MAX_SECONDS and total_peak <= MAX_RSS_MB and len(results) == 2
        print(f"\n{'step':<16}{'seconds':>10}{'peak RSS MB':>14}  target")
        for name, seconds, peak_mb in results:
            print(f"{name:<16}{seconds:>10.1f}{peak_mb:>14.0f}")
        print(
            f"{'count + groups':<16}{total_seconds:>10.1f}{total_peak:>14.0f}  "
            f"{'PASS' if fits else 'FAIL'} (<= {MAX_SECONDS:.0f} s, <= {MAX_RSS_MB:.0f} MB)"
        )
        print(f"checks: {'PASS' if not problems else 'FAIL'}")
        for problem in problems[:20]:
            print(f"  {problem}")
        return 0 if fits and not problems else 1
    finally:
        if args.keep:
            print(f"kept files in {out_dir}")
        elif args.out_dir is None:
            shutil.rmtree(out_dir, ignore_errors=True)
        else:
            for path in (annotations, counts_csv, groups_json, *out_dir.glob("*.log")):
                path.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
