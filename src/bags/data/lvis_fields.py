"""The fields LVIS evaluation needs, added to a COCO-format val file."""

from __future__ import annotations

import json
from pathlib import Path

from bags.data.annotations import FREQUENCIES, AnnotationError, frequency, load_annotations
from bags.io import write_text_atomic
from bags.values import is_int, is_number


def add_lvis_fields(val_file: Path | str, image_counts: dict[int, int]) -> dict:
    """The val annotations with ``neg_category_ids`` (every category absent from an image: COCO
    annotation is exhaustive), empty ``not_exhaustive_category_ids`` and each category's
    ``frequency`` from its training image count, wherever the file lacks them."""
    data = load_annotations(val_file)
    present: dict[int, set[int]] = {}
    for annotation in data["annotations"]:
        present.setdefault(annotation["image_id"], set()).add(annotation["category_id"])
    all_ids = {c["id"] for c in data["categories"]}
    for image in data["images"]:
        if "neg_category_ids" not in image:
            image["neg_category_ids"] = sorted(all_ids - present.get(image["id"], set()))
        image.setdefault("not_exhaustive_category_ids", [])
    for category in data["categories"]:
        if "frequency" not in category:
            category["frequency"] = frequency(image_counts.get(category["id"], 0))
    for annotation in data["annotations"]:
        _, _, w, h = annotation["bbox"]
        annotation.setdefault("area", w * h)
    return data


def check_lvis_fields(data: dict, path: Path) -> None:
    """The fields LVIS evaluation reads, checked on annotations that passed
    ``check_annotations``: each image's ``neg_category_ids`` and ``not_exhaustive_category_ids``
    lists of known category ids, each category's ``frequency`` r, c or f, each annotation's
    ``area`` a finite number >= 0."""
    known = {category["id"] for category in data["categories"]}
    for image in data["images"]:
        for field in ("neg_category_ids", "not_exhaustive_category_ids"):
            ids = image.get(field)
            if not isinstance(ids, list) or not all(is_int(i) and i in known for i in ids):
                raise AnnotationError(
                    f"{path}: image {image['id']}: {field!r} must be a list of known category "
                    f"ids, got {ids!r}"[:300]
                )
    for category in data["categories"]:
        if category.get("frequency") not in FREQUENCIES:
            raise AnnotationError(
                f"{path}: category {category['id']}: 'frequency' must be r, c or f, got "
                f"{category.get('frequency')!r}"
            )
    for annotation in data["annotations"]:
        area = annotation.get("area")
        if not (is_number(area) and area >= 0):
            raise AnnotationError(
                f"{path}: annotation {annotation.get('id')!r}: 'area' must be a finite number "
                f">= 0, got {area!r}"
            )


def lvis_fields_job(annotations: Path, counts: Path, out: Path) -> None:
    """``add_lvis_fields`` with image counts from the training counts CSV, as a file."""
    from bags.data.counts import read_counts

    table = read_counts(counts)
    if "image_count" not in table.columns:
        raise ValueError(f"{counts}: counts CSV lacks column 'image_count'")
    image_counts = dict(zip(table["category_id"], table["image_count"]))
    write_text_atomic(out, json.dumps(add_lvis_fields(annotations, image_counts)))
