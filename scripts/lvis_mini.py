"""An LVIS-shaped mini set: every file the real-LVIS configs download, in miniature.

``make`` writes, under one folder laid out as the real download URLs' paths:

- ``LVIS/lvis_{v0.5,v1}_{train,val}.json.zip``, each holding ``lvis_<version>_<split>.json``
  with the version's real category list (id, name, synset, frequency, image_count and
  instance_count from ``lvis_<version>_train_category_stats.json``), ``neg_category_ids`` and
  ``not_exhaustive_category_ids``. v0.5 images carry COCO 2014 ``file_name``s, as the real ones
  do; v1 images have none. Both address their image by ``coco_url``, and v1 val draws from
  both train2017 and val2017.
- ``zips/train2017.zip`` and ``zips/val2017.zip`` (``train2017/<12-digit id>.jpg``, ...).
- ``annotations/annotations_trainval2017.zip`` with ``annotations/instances_{train,val}2017.json``:
  COCO's 80 categories under their real ids 1..90.
- ``models/fasterrcnn_resnet50_fpn_coco-258fb6c6.pth``: torchvision's COCO R50-FPN checkpoint
  format (its key names and shapes) with random values.
- ``manifest.json`` (written last): the size and sha256 of each file.

The images are drawn like the synthetic set's (shapes on noise), a few dozen in all. A handful
of each version's categories have boxes, chosen so that their mini instance counts fall in the
same BAGS group as their real ones: one category with 1000 boxes, two with 100, three with
10 to 40 and four rare ones with their real count (1 to 9). With the real group edges the BAGS
head is then as wide as on real LVIS (1236 logits for v0.5, 1209 for v1).
"""

from __future__ import annotations

import argparse
import io
import json
import math
import sys
import zipfile
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import yaml
from PIL import Image

from bags.data.drawing import class_names, render
from bags.data.synthetic import SyntheticSpec
from bags.digest import sha256_file
from bags.io import atomic_path, write_text_atomic

VERSIONS = ("v0.5", "v1")
CATEGORIES = {"v0.5": 1230, "v1": 1203}  # bags-spec section 8
LOGITS = {"v0.5": 1236, "v1": 1209}  # classes + background + 5 group logits
COCO_URL = "http://images.cocodataset.org"
WEIGHTS = "models/fasterrcnn_resnet50_fpn_coco-258fb6c6.pth"
# (real instance counts [low, high), mini instance count of each chosen category; None: real)
TIERS = (
    ((1000, math.inf), [1000]),
    ((100, 1000), [100, 120]),
    ((10, 100), [10, 20, 40]),
    ((1, 10), [None, None, None, None]),
)
TRAIN_IMAGES, VAL_IMAGES = 16, 8
IMAGE = SyntheticSpec(train_counts=[[1, 1, 1]], image_size=128, min_size=6, max_size=14)
VAL_IMAGE = SyntheticSpec(train_counts=[[1, 1, 1]], image_size=128, min_size=14, max_size=30)
# Image ids (COCO's are up to 12 digits); v1 val's first half lies in train2017.
FIRST_ID = {("v0.5", "train"): 100001, ("v0.5", "val"): 300001}
FIRST_ID |= {("v1", "train"): 200001, ("v1", "val"): 400001}
SUPERCATEGORIES = (  # COCO's supercategory of ids up to each bound
    (1, "person"), (9, "vehicle"), (15, "outdoor"), (25, "animal"), (33, "accessory"),
    (43, "sports"), (51, "kitchen"), (61, "food"), (70, "furniture"), (77, "electronic"),
    (83, "appliance"), (90, "indoor"),
)  # fmt: skip


def coco_categories() -> list[dict]:
    """COCO's 80 detection categories with their real ids (1..90, with gaps)."""
    from torchvision.models.detection import FasterRCNN_ResNet50_FPN_Weights

    names = FasterRCNN_ResNet50_FPN_Weights.COCO_V1.meta["categories"]
    return [
        {"id": i, "name": name, "supercategory": next(s for b, s in SUPERCATEGORIES if i <= b)}
        for i, name in enumerate(names)
        if i > 0 and name != "N/A"
    ]


def chosen_categories(stats: list[dict], rng: np.random.Generator) -> list[tuple[dict, int]]:
    """(category, mini instance count) of the categories that get boxes, tier by tier."""
    chosen = []
    for (low, high), counts in TIERS:
        tier = [c for c in stats if low <= c["instance_count"] < high]
        picks = rng.choice(len(tier), size=len(counts), replace=False)
        for index, count in zip(sorted(picks), counts):
            category = tier[index]
            chosen.append((category, category["instance_count"] if count is None else count))
    return chosen


def _split(labels: list[int], images: int, rng: np.random.Generator) -> list[list[int]]:
    labels = list(rng.permutation(labels))
    return [[int(v) for v in part] for part in np.array_split(labels, images)]


def _image_labels(counts: list[int], rng: np.random.Generator) -> dict[str, list[list[int]]]:
    """Per split, per image: slot indices (1-based) of its objects. Val shows every chosen
    category twice, so APr, APc and APf all have ground truth."""
    train = [slot for slot, n in enumerate(counts, start=1) for _ in range(n)]
    val = [slot for slot in range(1, len(counts) + 1) for _ in range(2)]
    return {"train": _split(train, TRAIN_IMAGES, rng), "val": _split(val, VAL_IMAGES, rng)}


def _folder(version: str, split: str, index: int) -> str:
    """The COCO 2017 folder an image lies in: v1 val takes its first half from train2017."""
    if split == "train" or (version == "v1" and index < VAL_IMAGES // 2):
        return "train2017"
    return "val2017"


def _version_set(version, stats, rng, names, jpegs, coco_boxes):
    """The train and val documents of one version; adds its images to ``jpegs`` (path ->
    bytes) and its boxes to ``coco_boxes`` (folder -> list of (image record, boxes))."""
    chosen = chosen_categories(stats, rng)
    ids = [c["id"] for c, _ in chosen]
    all_ids = [c["id"] for c in stats]
    categories = [
        {k: c[k] for k in ("id", "name", "synset", "frequency", "image_count", "instance_count")}
        for c in stats
    ]
    documents = {}
    for split, per_image in _image_labels([n for _, n in chosen], rng).items():
        spec = IMAGE if split == "train" else VAL_IMAGE
        images, annotations = [], []
        for index, slots in enumerate(per_image):
            image_id = FIRST_ID[version, split] + index
            pixels, boxes, _ = render(rng, slots, names, spec)
            folder = _folder(version, split, index)
            buffer = io.BytesIO()
            Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
            jpegs[f"{folder}/{image_id:012d}.jpg"] = buffer.getvalue()
            present = sorted({ids[s - 1] for s in slots})
            absent = [i for i in ids if i not in present]
            others = rng.choice([i for i in all_ids if i not in ids], size=3, replace=False)
            record = {
                "id": image_id,
                "coco_url": f"{COCO_URL}/{folder}/{image_id:012d}.jpg",
                "height": spec.image_size,
                "width": spec.image_size,
                "license": 1,
                "date_captured": "2013-11-14 11:18:45",
                "neg_category_ids": sorted([*absent, *(int(i) for i in others)]),
                "not_exhaustive_category_ids": present[:1] if index % 2 else [],
            }
            if version == "v0.5":  # COCO 2014 names, which the 2017 folders do not use
                year2014 = "train2014" if split == "train" else "val2014"
                record["file_name"] = f"COCO_{year2014}_{image_id:012d}.jpg"
            images.append(record)
            for slot, (x, y, w, h) in zip(slots, boxes):
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": image_id,
                        "category_id": ids[slot - 1],
                        "bbox": [x, y, w, h],
                        "area": w * h,
                        "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]],
                    }
                )
            coco_boxes.setdefault(folder, []).append((record, boxes))
        documents[split] = {
            "info": {"description": f"LVIS {version}-shaped mini set (scripts/lvis_mini.py)"},
            "licenses": [{"id": 1, "name": "CC BY 4.0", "url": ""}],
            "images": images,
            "annotations": annotations,
            "categories": categories,
        }
    return documents


def _coco_instances(entries: list[tuple[dict, list]], categories: list[dict]) -> dict:
    """A COCO instances file over the given images, their boxes labelled by COCO category in
    turn, plus one crowd region (the pipeline leaves crowds out)."""
    images, annotations = [], []
    for record, boxes in entries:
        name = record["coco_url"].rsplit("/", 1)[1]
        keep = ("id", "coco_url", "height", "width", "license", "date_captured")
        images.append({"file_name": name, **{k: record[k] for k in keep}})
        for x, y, w, h in boxes:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": record["id"],
                    "category_id": categories[len(annotations) % len(categories)]["id"],
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                    "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]],
                }
            )
    first = images[0]
    annotations.append(
        {
            "id": len(annotations) + 1,
            "image_id": first["id"],
            "category_id": 1,
            "bbox": [0.0, 0.0, 8.0, 8.0],
            "area": 64.0,
            "iscrowd": 1,
            "segmentation": {"counts": [0, 64, first["height"] * first["width"] - 64],
                             "size": [first["height"], first["width"]]},
        }
    )  # fmt: skip
    return {
        "info": {"description": "COCO 2017-shaped mini set (scripts/lvis_mini.py)"},
        "licenses": [{"id": 1, "name": "CC BY-NC-SA 2.0", "url": ""}],
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }


def _write_zip(path: Path, members: dict[str, bytes]) -> None:
    """A zip with fixed member dates: the same members give the same bytes."""
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            member = zipfile.ZipInfo(name, date_time=(2017, 9, 1, 0, 0, 0))
            archive.writestr(member, data, compress_type=zipfile.ZIP_DEFLATED)


def _write_weights(path: Path, seed: int) -> None:
    """torchvision's COCO R50-FPN checkpoint format: the state dict of a 91-class
    ``fasterrcnn_resnet50_fpn`` (random values)."""
    import torch
    from torchvision.models.detection import fasterrcnn_resnet50_fpn

    torch.manual_seed(seed)
    model = fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91)
    with atomic_path(path) as tmp:
        torch.save(model.state_dict(), tmp)


def make(stats_dir: Path, out: Path, seed: int = 0) -> dict:
    """Write the mini set under ``out`` (see the module's docstring); returns the manifest."""
    stats_dir, out = Path(stats_dir), Path(out)
    rng = np.random.default_rng(seed)
    names = [class_names()[i * 6 + i % 6] for i in range(sum(len(c) for _, c in TIERS))]
    jpegs: dict[str, bytes] = {}
    coco_boxes: dict[str, list] = {}
    for version in VERSIONS:
        stats_file = stats_dir / f"lvis_{version}_train_category_stats.json"
        stats = json.loads(stats_file.read_text())["categories"]
        if len(stats) != CATEGORIES[version]:
            raise ValueError(f"{stats_file}: {len(stats)} categories, LVIS {version} has "
                             f"{CATEGORIES[version]}")  # fmt: skip
        documents = _version_set(version, stats, rng, names, jpegs, coco_boxes)
        for split, document in documents.items():
            member = f"lvis_{version}_{split}.json"
            _write_zip(out / "LVIS" / f"{member}.zip", {member: json.dumps(document).encode()})
    for folder in ("train2017", "val2017"):
        members = {path: data for path, data in jpegs.items() if path.startswith(folder + "/")}
        _write_zip(out / "zips" / f"{folder}.zip", members)
    categories = coco_categories()
    instances = {
        f"annotations/instances_{folder}.json": json.dumps(
            _coco_instances(entries, categories)
        ).encode()
        for folder, entries in sorted(coco_boxes.items())
    }
    _write_zip(out / "annotations" / "annotations_trainval2017.zip", instances)
    _write_weights(out / WEIGHTS, seed)
    files = sorted(p for p in out.rglob("*") if p.is_file() and p.name != "manifest.json")
    manifest = {
        str(p.relative_to(out)): {"size": p.stat().st_size, "sha256": sha256_file(p)} for p in files
    }
    write_text_atomic(out / "manifest.json", json.dumps(manifest, indent=1) + "\n")
    return manifest


def downloads(config: Path, mini: Path, base_url: str) -> dict:
    """The ``downloads`` section that points a real config at the mini set served from
    ``base_url``: each URL's path kept, the host replaced, with the served file's size and
    sha256 (the real weights' sha256 prefix cannot match random weights: it is dropped)."""
    manifest = json.loads((Path(mini) / "manifest.json").read_text())
    section = {}
    for name, entry in yaml.safe_load(Path(config).read_text())["downloads"].items():
        path = urlsplit(entry["url"]).path.lstrip("/")
        if path not in manifest:
            raise ValueError(f"{config}: downloads.{name}: the mini set has no {path}")
        section[name] = {
            "url": f"{base_url.rstrip('/')}/{path}",
            **manifest[path],
            "sha256_prefix": None,
        }
    return {"downloads": section}


def check(results: Path, version: str) -> list[str]:
    """What is wrong with a smoke run's outputs in ``results`` (results/<experiment>/)."""
    results = Path(results)
    problems = []
    groups = results / "groups" / "bags.json"
    if not groups.is_file():
        return [f"{groups}: missing"]
    logits = json.loads(groups.read_text())["num_logits"]
    if logits != LOGITS[version]:
        problems.append(f"{groups}: {logits} logits, LVIS {version} needs {LOGITS[version]}")
    counts = (results / "counts" / "longtail.csv").read_text().splitlines()
    if len(counts) - 1 != CATEGORIES[version]:
        problems.append(f"counts/longtail.csv: {len(counts) - 1} categories")
    val = json.loads((results / "data" / "longtail" / "val.json").read_text())
    if len(val["categories"]) != CATEGORIES[version]:
        problems.append(f"data/longtail/val.json: {len(val['categories'])} categories")
    runs = sorted((results / "runs" / "longtail").glob("*/seed*"))
    if not runs:
        problems.append("no runs under runs/longtail")
    for run in runs:
        metrics = json.loads((run / "metrics.json").read_text())
        for key in ("AP", "APr", "APc", "APf", "AP1", "AP2", "AP3", "AP4"):
            if not isinstance(metrics.get(key), float):
                problems.append(f"{run}/metrics.json: {key} is {metrics.get(key)!r}")
    tables = ["comparison", "ablation_groups", "ablation_beta", "ablation_finetune"]
    figures = ["weight_norms", "weight_norms_bags", "weight_norms_methods", "per_bin_ap"]
    expected = [f"tables/{t}.{e}" for t in tables for e in ("csv", "md", "tex")]
    expected += [f"figures/{f}.{e}" for f in figures for e in ("pdf", "png")] + ["claims.md"]
    problems += [f"{name}: missing" for name in expected if not (results / name).is_file()]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python scripts/lvis_mini.py", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    made = sub.add_parser("make", help="write the mini set")
    made.add_argument("--stats", type=Path, required=True, help="folder of *_category_stats.json")
    made.add_argument("--out", type=Path, required=True)
    served = sub.add_parser("downloads", help="a config's downloads section, served locally")
    served.add_argument("--config", type=Path, required=True, help="configs/lvis_<version>.yaml")
    served.add_argument("--mini", type=Path, required=True)
    served.add_argument("--base-url", required=True)
    served.add_argument("--out", type=Path, required=True)
    checked = sub.add_parser("check", help="check a smoke run's outputs")
    checked.add_argument("--results", type=Path, required=True, help="results/<experiment>")
    checked.add_argument("--version", choices=VERSIONS, required=True)
    args = parser.parse_args(argv)
    if args.command == "make":
        make(args.stats, args.out)
    elif args.command == "downloads":
        section = downloads(args.config, args.mini, args.base_url)
        write_text_atomic(args.out, yaml.safe_dump(section, sort_keys=False))
    else:
        problems = check(args.results, args.version)
        for problem in problems:
            print(f"lvis smoke check: {problem}", file=sys.stderr)
        if problems:
            return 1
        print(f"lvis smoke check: LVIS {args.version} outputs complete ({LOGITS[args.version]} "
              "BAGS logits)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
