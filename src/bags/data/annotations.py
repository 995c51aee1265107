"""Reading LVIS/COCO-format annotation files, with one clear error per problem."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class AnnotationError(ValueError):
    """A malformed annotation file; the message names the file, the record and the field."""


def _fail(path: Path, what: str) -> AnnotationError:
    return AnnotationError(f"{path}: {what}")


def load_annotations(path: Path | str) -> dict[str, Any]:
    """Load and check an annotation file: images, annotations and categories, ids consistent."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: annotation file not found")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise _fail(path, f"not valid JSON ({error})") from error
    if not isinstance(data, dict):
        raise _fail(path, "expected a JSON object with images, annotations and categories")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise _fail(path, f"missing or non-list field {key!r}")
    category_ids = set()
    for category in data["categories"]:
        if not isinstance(category, dict) or not isinstance(category.get("id"), int):
            raise _fail(path, f"category {category!r}: expected an integer 'id'")
        category_ids.add(category["id"])
    image_ids = set()
    for image in data["images"]:
        if not isinstance(image, dict) or not isinstance(image.get("id"), int):
            raise _fail(path, f"image {image!r}: expected an integer 'id'")
        for field in ("width", "height"):
            if not isinstance(image.get(field), int) or image[field] <= 0:
                raise _fail(path, f"image {image['id']}: {field!r} must be a positive integer")
        if "file_name" not in image and "coco_url" not in image:
            raise _fail(path, f"image {image['id']}: needs 'file_name' or 'coco_url'")
        image_ids.add(image["id"])
    for annotation in data["annotations"]:
        _check_annotation(path, annotation, image_ids, category_ids)
    return data


def _check_annotation(path: Path, annotation: Any, image_ids: set, category_ids: set) -> None:
    if not isinstance(annotation, dict):
        raise _fail(path, f"annotation {annotation!r}: expected an object")
    name = f"annotation {annotation.get('id')!r}"
    if annotation.get("image_id") not in image_ids:
        raise _fail(path, f"{name}: unknown image_id {annotation.get('image_id')!r}")
    if annotation.get("category_id") not in category_ids:
        raise _fail(path, f"{name}: unknown category_id {annotation.get('category_id')!r}")
    box = annotation.get("bbox")
    if (
        not isinstance(box, list)
        or len(box) != 4
        or not all(isinstance(v, int | float) for v in box)
    ):
        raise _fail(path, f"{name}: 'bbox' must be [x, y, width, height], got {box!r}")
    if box[2] <= 0 or box[3] <= 0:
        raise _fail(path, f"{name}: bbox width and height must be > 0, got {box!r}")


def image_path(image: dict[str, Any]) -> str:
    """Path of an image under the image root: LVIS v0.5/COCO ``file_name``, else from ``coco_url``
    (LVIS v1: ``.../train2017/000000391895.jpg`` -> ``train2017/000000391895.jpg``)."""
    if "file_name" in image:
        return image["file_name"]
    return "/".join(image["coco_url"].split("/")[-2:])


def contiguous_ids(data: dict[str, Any]) -> dict[int, int]:
    """Category id -> contiguous class 1..C, in ascending id order (0 is background)."""
    return {cid: k for k, cid in enumerate(sorted(c["id"] for c in data["categories"]), start=1)}
